//! The simulated SAN as real commands: `failoverd sim-tool TOOL ARGS...` and `failoverd sim-san ...`.
//!
//! The multi-host lab (tests/it/lab.rs) runs each host's `failoverd run` in its own network namespace. Those
//! hosts have no ZFS or Lustre, so their `zpool`, `zdb`, `zfs`, `mount`, `umount`, `df`, `lctl` (and the
//! `mkdir -p` and `cat /proc/mounts` of the sequences) are tiny shell wrappers put first on the daemon's PATH
//! (`sim-san wrappers`) that exec `failoverd sim-tool TOOL ARGS...`. Every host's wrappers answer from one
//! shared directory, the "SAN": an import on one host is visible on the others, and an import of a pool
//! that a powered host holds is refused by MMP, exactly as [`SharedStorage`] models it for the simulator.
//!
//! # The SAN directory
//! * `san.json`: the [`SanState`] (the [`SharedStorage`] model, the targets, violations seen, counters).
//! * `san.lock`: every read-modify-write of `san.json` holds an exclusive `flock` on it.
//! * `history.jsonl`: one [`HistoryRecord`] per line (every command with its exit, power changes,
//!   violations), appended under the same lock: what tests check ("no `-f`", "powered off before the
//!   forced import").
//!
//! # Time
//! The model's [`Time`] is `CLOCK_MONOTONIC` in microseconds. That clock is shared by every network
//! namespace (they are not time namespaces), so all hosts' commands see one timeline.
//!
//! # One command
//! `sim-tool` takes the lock, checks the host is powered, and calls [`SharedStorage::begin`]; it releases the
//! lock and sleeps until the op's `finish_at` (the model's duration: 4 s for `zdb -e`, the MMP activity check
//! for an import...), re-takes the lock and calls [`SharedStorage::finish`] with the state of that moment.
//! If the host lost power meanwhile (its boot counter moved), the process kills itself with SIGKILL: a
//! command of a powered-off host never completes. Its stdout, stderr and exit status are the model's answer.
//! A command the model says hangs sleeps until the caller's timeout kills it.
//!
//! The safety invariants ([`crate::sim::checker`]) and rule 2 (no `zpool import -f` while the
//! pool's last owner is still powered) are checked at every mutation; `sim-san check` reports every one ever
//! seen.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::sim::checker;
use crate::sim::storage::{Backing, PoolSpec, PoolStart, SharedStorage, StorageTiming};
use crate::sim::tools_common::stable_hash;
use crate::command::{Command, CommandResult, Exit};
use crate::config::{Config, KeyCheck, TargetKind};
use crate::time::Time;

/// Environment variable naming the simulated host a `sim-tool` runs on.
pub const ENV_HOST: &str = "FAILOVERD_SIM_HOST";
/// Environment variable naming the SAN directory.
pub const ENV_SAN: &str = "FAILOVERD_SAN";
/// The model's state in the SAN directory.
pub const STATE_FILE: &str = "san.json";
/// The lock file every access holds.
pub const LOCK_FILE: &str = "san.lock";
/// Append-only record of commands, power changes and violations.
pub const HISTORY_FILE: &str = "history.jsonl";
/// Programs `sim-san wrappers` writes. `cat` is answered by the SAN only for `/proc/mounts`.
pub const WRAPPED_TOOLS: &[&str] = &["zpool", "zdb", "zfs", "mount", "umount", "df", "lctl", "mkdir", "cat"];

/// Exit status of `sim-tool` when the SAN itself cannot be used (not the tool's answer).
const SAN_UNUSABLE: u8 = 125;

/// The `CLOCK_MONOTONIC` time now, as the model's [`Time`].
pub fn now() -> Time {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => {
            let us = (ts.tv_sec() as u64).saturating_mul(1_000_000).saturating_add(ts.tv_nsec() as u64 / 1000);
            Time::from_micros(us)
        }
        // CLOCK_MONOTONIC cannot fail on Linux; if it ever did, time standing still is the safe reading
        Err(_) => Time::ZERO,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A failure of the SAN directory itself (not of a simulated tool), by what failed; the text names the file,
/// host or setting involved.
#[derive(Debug, thiserror::Error)]
pub enum SanError {
    /// No SAN directory was given.
    #[error("no SAN directory: give --san DIR or set {ENV_SAN}")]
    NoSan,
    /// A file of the SAN directory (its state, history, lock or wrapper scripts) cannot be read or written.
    #[error("{0}")]
    File(String),
    /// A host the SAN does not know.
    #[error("{0}")]
    UnknownHost(String),
    /// The configuration or a placement (`--owner`) the SAN is made from cannot be used.
    #[error("{0}")]
    Setup(String),
}

fn file_err(msg: impl Into<String>) -> SanError {
    SanError::File(msg.into())
}

fn host_err(msg: impl Into<String>) -> SanError {
    SanError::UnknownHost(msg.into())
}

fn setup_err(msg: impl Into<String>) -> SanError {
    SanError::Setup(msg.into())
}

/// One Lustre target of the SAN, as `sim-san init` took it from the cluster configuration, so that
/// `show` can say where each target runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SanTarget {
    pub name: String,
    /// ZFS pool, `None` for ldiskfs.
    pub pool: Option<String>,
    /// What `mount -t lustre` mounts (dataset or device).
    pub source: String,
    pub mountpoint: String,
}

/// A safety violation the SAN saw, with when (monotonic ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenViolation {
    pub mono_ms: u64,
    pub what: String,
}

/// Everything `san.json` holds: the storage model plus what the front end needs around it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SanState {
    pub storage: SharedStorage,
    pub targets: Vec<SanTarget>,
    /// Power-offs per host: a command begun before a power-off never completes, even if the host is back on.
    pub boots: BTreeMap<String, u64>,
    /// Every violation seen so far, each once, in order.
    pub violations: Vec<SeenViolation>,
    /// Seed of the per-command random generators (latency draws).
    pub seed: u64,
    /// Commands begun so far (each draws from its own generator: `seed` + this counter).
    pub commands: u64,
    /// When the SAN was made (monotonic ms), the zero of `history`.
    pub created_mono_ms: u64,
}

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryRecord {
    /// A command completed (or was refused because its host was off).
    Command {
        host: String,
        argv: Vec<String>,
        started_mono_ms: u64,
        mono_ms: u64,
        unix_ms: u64,
        /// `exit 0`, `killed by signal 9`, ...
        exit: String,
        /// The model's one-line summary (exit and first line of output).
        summary: String,
    },
    /// A host's power changed.
    Power { host: String, on: bool, mono_ms: u64, unix_ms: u64 },
    /// A safety rule was broken (also kept in [`SanState::violations`]).
    Violation { what: String, mono_ms: u64, unix_ms: u64 },
}

/// A SAN directory.
#[derive(Clone, Debug)]
pub struct San {
    dir: PathBuf,
}

/// The exclusive lock on a SAN directory; the state may be read and written while it is held.
pub struct SanLock<'a> {
    san: &'a San,
    _lock: Flock<File>,
}

impl San {
    /// The SAN in `dir` (nothing is read yet).
    pub fn at(dir: impl Into<PathBuf>) -> San {
        San { dir: dir.into() }
    }

    /// The SAN named by `--san` or else by `$FAILOVERD_SAN`.
    pub fn from_arg_or_env(arg: Option<&Path>) -> Result<San, SanError> {
        match arg {
            Some(p) => Ok(San::at(p)),
            None => match std::env::var_os(ENV_SAN) {
                Some(p) if !p.is_empty() => Ok(San::at(PathBuf::from(p))),
                _ => Err(SanError::NoSan),
            },
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the exclusive lock (blocking).
    pub fn lock(&self) -> Result<SanLock<'_>, SanError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| file_err(format!("cannot open {}: {e}", path.display())))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| file_err(format!("cannot lock {}: {e}", path.display())))?;
        Ok(SanLock { san: self, _lock: lock })
    }

    /// Read the history (every line that parses; a torn last line is skipped).
    pub fn history(&self) -> Result<Vec<HistoryRecord>, SanError> {
        let path = self.dir.join(HISTORY_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(file_err(format!("cannot read {}: {e}", path.display()))),
        };
        let mut out = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| file_err(format!("cannot read {}: {e}", path.display())))?;
            if let Ok(r) = serde_json::from_str(&line) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

impl SanLock<'_> {
    /// Read `san.json`.
    pub fn load(&self) -> Result<SanState, SanError> {
        let path = self.san.dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            file_err(format!("cannot read {}: {e} (make the SAN with `failoverd sim-san init`)", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| file_err(format!("{}: not a SAN state: {e}", path.display())))
    }

    /// Whether `san.json` exists.
    pub fn exists(&self) -> bool {
        self.san.dir.join(STATE_FILE).exists()
    }

    /// Write `san.json` (beside it, then renamed over it: a reader never sees half a file).
    pub fn save(&self, state: &SanState) -> Result<(), SanError> {
        let path = self.san.dir.join(STATE_FILE);
        let tmp = self.san.dir.join(format!(".{STATE_FILE}.tmp"));
        let text = serde_json::to_vec(state).map_err(|e| file_err(format!("cannot encode the SAN state: {e}")))?;
        std::fs::write(&tmp, text).map_err(|e| file_err(format!("cannot write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(|e| file_err(format!("cannot replace {}: {e}", path.display())))
    }

    /// Append records to `history.jsonl`.
    pub fn append(&self, records: &[HistoryRecord]) -> Result<(), SanError> {
        if records.is_empty() {
            return Ok(());
        }
        let path = self.san.dir.join(HISTORY_FILE);
        let mut text = String::new();
        for r in records {
            let line = serde_json::to_string(r).map_err(|e| file_err(format!("cannot encode a history record: {e}")))?;
            text.push_str(&line);
            text.push('\n');
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| file_err(format!("cannot open {}: {e}", path.display())))?;
        f.write_all(text.as_bytes()).map_err(|e| file_err(format!("cannot append to {}: {e}", path.display())))
    }
}

impl SanState {
    /// Note every invariant violation the model shows now that was not seen before.
    fn note_violations(&mut self, out: &mut Vec<HistoryRecord>) {
        for what in checker::storage_invariants(&self.storage) {
            self.note_violation(what, out);
        }
    }

    fn note_violation(&mut self, what: String, out: &mut Vec<HistoryRecord>) {
        if self.violations.iter().any(|v| v.what == what) {
            return;
        }
        let mono_ms = now().as_millis();
        tracing::error!(violation = %what, "simulated SAN: safety rule broken");
        out.push(HistoryRecord::Violation { what: what.clone(), mono_ms, unix_ms: unix_ms() });
        self.violations.push(SeenViolation { mono_ms, what });
    }

    /// Rule 2 as the hardware sees it (the SAN knows power, not fence confirmations): see
    /// [`checker::forced_import_after_fence`].
    fn forced_import_too_early(&self, host: &str, cmd: &Command) -> Option<String> {
        checker::forced_import_after_fence(&self.storage, host, cmd, |owner| !self.storage.host(owner).is_some_and(|h| h.powered), "still powered")
    }

    /// Switch a host's power. Returns false when it already was in that state.
    pub fn set_power(&mut self, host: &str, on: bool, out: &mut Vec<HistoryRecord>) -> Result<bool, SanError> {
        let h = self.storage.host(host).ok_or_else(|| host_err(self.unknown_host(host)))?;
        if h.powered == on {
            return Ok(false);
        }
        let t = now();
        self.storage.set_powered(host, on, t);
        if !on {
            *self.boots.entry(host.to_string()).or_insert(0) += 1;
        }
        out.push(HistoryRecord::Power { host: host.into(), on, mono_ms: t.as_millis(), unix_ms: unix_ms() });
        self.note_violations(out);
        Ok(true)
    }

    fn unknown_host(&self, host: &str) -> String {
        let known: Vec<&str> = self.storage.hosts.keys().map(String::as_str).collect();
        format!("{host} is not a host of this SAN (hosts: {})", known.join(", "))
    }

    /// The JSON summary `sim-san show` prints: per host, per pool, per target.
    pub fn summary(&self) -> serde_json::Value {
        let st = &self.storage;
        let hosts: serde_json::Map<String, serde_json::Value> = st
            .hosts
            .values()
            .map(|h| {
                let mounts: Vec<_> = h
                    .mounts
                    .iter()
                    .map(|m| json!({"source": m.source, "mountpoint": m.mountpoint, "lustre_name": m.lustre_name, "stale": m.stale}))
                    .collect();
                let v = json!({
                    "powered": h.powered,
                    "hostid": format!("{:08x}", h.hostid),
                    "boots": self.boots.get(&h.name).copied().unwrap_or(0),
                    "imported": st.imported_pools(&h.name),
                    "mounts": mounts,
                });
                (h.name.clone(), v)
            })
            .collect();
        let pools: serde_json::Map<String, serde_json::Value> = st
            .pools
            .values()
            .map(|p| {
                let suspended: Vec<&String> = p.imported_on.iter().filter(|(_, i)| i.suspended).map(|(h, _)| h).collect();
                let v = json!({
                    "imported_on": p.imported_on.keys().collect::<Vec<_>>(),
                    "suspended_on": suspended,
                    "label": {
                        "state": format!("{:?}", p.label.state).to_uppercase(),
                        "hostname": p.label.hostname,
                        "hostid": format!("{:08x}", p.label.hostid),
                    },
                });
                (p.name.clone(), v)
            })
            .collect();
        let targets: serde_json::Map<String, serde_json::Value> = self
            .targets
            .iter()
            .map(|t| {
                let imported_on: Vec<String> = t.pool.as_deref().map(|p| st.holders(p)).unwrap_or_default();
                let mounted_on: Vec<String> = st
                    .hosts
                    .values()
                    .filter(|h| h.powered)
                    .filter(|h| h.mounts.iter().any(|m| m.source == t.source && live_mount(st, &h.name, m)))
                    .map(|h| h.name.clone())
                    .collect();
                let v = json!({
                    "pool": t.pool,
                    "source": t.source,
                    "mountpoint": t.mountpoint,
                    "imported_on": imported_on,
                    "mounted_on": mounted_on,
                });
                (t.name.clone(), v)
            })
            .collect();
        let violations: Vec<&str> = self.violations.iter().map(|v| v.what.as_str()).collect();
        json!({ "hosts": hosts, "pools": pools, "targets": targets, "violations": violations })
    }
}

/// A mount that can write: not stale, and its pool (if any) not suspended on that host.
fn live_mount(st: &SharedStorage, host: &str, m: &crate::sim::storage::SimMount) -> bool {
    match &m.backing {
        Backing::Ldiskfs => !m.stale,
        Backing::Zfs { pool } => {
            st.health_on(pool, host).is_some_and(|h| h != crate::sim::storage::PoolHealth::Suspended)
        }
    }
}

// ----- sim-tool ----------------------------------------------------------------------------------------------

/// `failoverd sim-tool TOOL ARGS...`: answer one storage command of the host `$FAILOVERD_SIM_HOST` from the SAN
/// `$FAILOVERD_SAN`.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct SimToolArgs {
    /// zpool, zdb, zfs, mount, umount, df, lctl, mkdir or cat.
    pub tool: String,
    /// The tool's own arguments, passed as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// How a `sim-tool` run ends.
enum ToolEnd {
    /// The model's answer.
    Answer(CommandResult),
    /// The host is (or went) off: the process dies as a powered-off host's processes do.
    Killed,
}

/// Run `sim-tool`: print the model's stdout and stderr and exit with its status.
pub fn sim_tool(args: SimToolArgs) -> ExitCode {
    let host = match std::env::var(ENV_HOST) {
        Ok(h) if !h.is_empty() => h,
        _ => {
            eprintln!("failoverd sim-tool: {ENV_HOST} is not set (which simulated host runs this command?)");
            return ExitCode::from(SAN_UNUSABLE);
        }
    };
    let san = match San::from_arg_or_env(None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("failoverd sim-tool: {e}");
            return ExitCode::from(SAN_UNUSABLE);
        }
    };
    let mut argv = vec![args.tool];
    argv.extend(args.args);
    match run_tool(&san, &host, argv) {
        Ok(ToolEnd::Answer(r)) => emit(&r),
        Ok(ToolEnd::Killed) => die_killed(),
        Err(e) => {
            eprintln!("failoverd sim-tool: {e}");
            ExitCode::from(SAN_UNUSABLE)
        }
    }
}

/// Begin under the lock, sleep the model's duration without it, finish under it.
fn run_tool(san: &San, host: &str, argv: Vec<String>) -> Result<ToolEnd, SanError> {
    // No timeout of our own: the caller (the daemon) kills the process group at its timeout, and a command
    // killed before it finishes has no effect, as in the model.
    let cmd = Command::new(argv, Duration::ZERO);
    let (pending, boot) = {
        let lock = san.lock()?;
        let mut st = lock.load()?;
        let Some(h) = st.storage.host(host) else { return Err(host_err(st.unknown_host(host))) };
        if !h.powered {
            return Ok(ToolEnd::Killed);
        }
        let boot = st.boots.get(host).copied().unwrap_or(0);
        let mut rng = ChaCha8Rng::seed_from_u64(st.seed.wrapping_add(st.commands));
        st.commands += 1;
        let mut records = Vec::new();
        if let Some(v) = st.forced_import_too_early(host, &cmd) {
            st.note_violation(v, &mut records);
        }
        let pending = st.storage.begin(host, &cmd, now(), &mut rng);
        lock.save(&st)?;
        lock.append(&records)?;
        (pending, boot)
    };
    sleep_until(pending.finish_at);
    let lock = san.lock()?;
    let mut st = lock.load()?;
    let powered = st.storage.host(host).is_some_and(|h| h.powered);
    if !powered || st.boots.get(host).copied().unwrap_or(0) != boot {
        return Ok(ToolEnd::Killed);
    }
    let started = pending.op.started;
    let t = now().max(pending.finish_at);
    let result = st.storage.finish(host, pending.op, t);
    let mut records = vec![HistoryRecord::Command {
        host: host.into(),
        argv: cmd.argv.clone(),
        started_mono_ms: started.as_millis(),
        mono_ms: t.as_millis(),
        unix_ms: unix_ms(),
        exit: exit_text(&result.exit),
        summary: result.summary(),
    }];
    st.note_violations(&mut records);
    lock.save(&st)?;
    lock.append(&records)?;
    Ok(ToolEnd::Answer(result))
}

fn sleep_until(t: Time) {
    let d = t.since(now());
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}

fn exit_text(e: &Exit) -> String {
    match e {
        Exit::Code(c) => format!("exit {c}"),
        Exit::Signal(s) => format!("killed by signal {s}"),
        Exit::TimedOut => "timed out".into(),
        Exit::SpawnFailed(why) => format!("could not start: {why}"),
    }
}

/// Print the answer and turn its status into this process's.
fn emit(r: &CommandResult) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(r.stdout.as_bytes());
    let _ = out.flush();
    let mut errw = std::io::stderr().lock();
    let _ = errw.write_all(r.stderr.as_bytes());
    let _ = errw.flush();
    match &r.exit {
        Exit::Code(c) => ExitCode::from(u8::try_from(*c).unwrap_or(1)),
        Exit::Signal(_) => die_killed(),
        // what timeout(1) returns for a command it killed
        Exit::TimedOut => ExitCode::from(124),
        Exit::SpawnFailed(why) => {
            let _ = writeln!(errw, "{why}");
            ExitCode::from(127)
        }
    }
}

/// Die by SIGKILL, as every process of a host that loses power does.
fn die_killed() -> ExitCode {
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    // not reached: SIGKILL cannot be caught
    ExitCode::from(137)
}

// ----- sim-san -----------------------------------------------------------------------------------------------

/// `failoverd sim-san`: make, drive and inspect a SAN directory.
#[derive(clap::Args, Debug)]
pub struct SimSanArgs {
    /// The SAN directory [default: $FAILOVERD_SAN].
    #[arg(long, value_name = "DIR", global = true)]
    pub san: Option<PathBuf>,
    #[command(subcommand)]
    pub command: SimSanCommand,
}

/// The `sim-san` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SimSanCommand {
    /// Make the SAN from a cluster configuration: its nodes as hosts, its targets' pools and devices.
    Init(InitArgs),
    /// Switch a host's power (`on`, `off`) or print it (`status`: `on` or `off`).
    Power {
        host: String,
        #[arg(value_enum)]
        action: PowerAction,
    },
    /// Print a JSON summary: hosts (power, imports, mounts), pools (holders, label), targets (where they run).
    Show,
    /// Print every safety violation seen (and any present now); exit 1 if there is one.
    Check,
    /// Print the history: every command with its exit, power changes, violations.
    History {
        /// One JSON object per line, as stored.
        #[arg(long)]
        json: bool,
    },
    /// Write the wrapper scripts (zpool, zdb, zfs, mount, umount, df, lctl, mkdir, cat) into DIR.
    Wrappers {
        dir: PathBuf,
        /// Bake this host name into the wrappers (else they need $FAILOVERD_SIM_HOST).
        #[arg(long)]
        host: Option<String>,
    },
}

/// `sim-san power` actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PowerAction {
    On,
    Off,
    Status,
}

/// `sim-san init` options.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The cluster configuration (nodes with hostids, targets).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Where targets start: `NODE` (every target, imported and mounted there) or `TARGET=NODE`; repeatable.
    /// Targets not named start exported by their first node.
    #[arg(long, value_name = "NODE|TARGET=NODE")]
    pub owner: Vec<String>,
    /// Length of one MMP activity check (OpenZFS: 20 s + up to 25 %); shorten it for labs.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub mmp_wait: Option<Duration>,
    /// Replace an existing SAN in the directory.
    #[arg(long)]
    pub force: bool,
}

/// Run `sim-san`.
pub fn sim_san(args: SimSanArgs) -> ExitCode {
    let san = match San::from_arg_or_env(args.san.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("failoverd sim-san: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.command {
        SimSanCommand::Init(a) => init(&san, &a).map(|msg| {
            println!("{msg}");
            ExitCode::SUCCESS
        }),
        SimSanCommand::Power { host, action } => power(&san, &host, action),
        SimSanCommand::Show => show(&san),
        SimSanCommand::Check => check(&san),
        SimSanCommand::History { json } => history(&san, json),
        SimSanCommand::Wrappers { dir, host } => {
            write_wrappers(&san, &dir, host.as_deref()).map(|()| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("failoverd sim-san: {e}");
        ExitCode::FAILURE
    })
}

/// Where each target starts, from the `--owner` options.
fn placements(cfg: &Config, owners: &[String]) -> Result<BTreeMap<String, String>, SanError> {
    let mut out = BTreeMap::new();
    for spec in owners {
        let (targets, node): (Vec<&str>, &str) = match spec.split_once('=') {
            Some((t, n)) => (vec![t], n),
            None => (cfg.targets.iter().map(|t| t.name.as_str()).collect(), spec.as_str()),
        };
        if cfg.node(node).is_none() {
            return Err(setup_err(format!("--owner {spec}: {node} is not a [[node]] of the configuration")));
        }
        for t in targets {
            let Some(tc) = cfg.targets.iter().find(|tc| tc.name == t) else {
                return Err(setup_err(format!("--owner {spec}: {t} is not a [[target]] of the configuration")));
            };
            if !tc.nodes.iter().any(|n| n == node) {
                return Err(setup_err(format!("--owner {spec}: {node} is not in target {t}'s nodes")));
            }
            out.insert(t.to_string(), node.to_string());
        }
    }
    Ok(out)
}

/// Build the initial state from a configuration.
pub fn initial_state(cfg: &Config, owners: &[String], mmp_wait: Option<Duration>) -> Result<SanState, SanError> {
    let places = placements(cfg, owners)?;
    let t0 = now();
    let mut st = SharedStorage::new();
    st.timing = StorageTiming { activity_check: mmp_wait, ..StorageTiming::default() };
    let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    st.epoch_unix = unix_now.saturating_sub(t0.as_micros() / 1_000_000);
    let setup = |what: String, e: &dyn std::fmt::Display| setup_err(format!("{what}: {e}"));
    for n in &cfg.nodes {
        st.add_host(&n.name, n.hostid).map_err(|e| setup(format!("node {}", n.name), &e))?;
    }
    if let Some(mgs_node) = places.get("MGT").or_else(|| cfg.nodes.first().map(|n| &n.name)) {
        if let Some(addr) = cfg.node(mgs_node).and_then(|n| n.addresses.first()) {
            st.mgs_nid = format!("{}@tcp", addr.ip());
        }
    }
    let mut targets = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(stable_hash(&cfg.cluster.name));
    for t in &cfg.targets {
        let owner = places.get(&t.name);
        let first = t.nodes.first().ok_or_else(|| setup_err(format!("target {} has no nodes", t.name)))?;
        let what = format!("target {}", t.name);
        match &t.kind {
            TargetKind::Zfs { pool, dataset } | TargetKind::ZfsDataset { pool, dataset } => {
                let spec = PoolSpec::new(pool, stable_hash(pool)).multihost(true).target(dataset, &t.lctl_device);
                let start = match owner {
                    Some(o) => PoolStart::ImportedOn(o.clone()),
                    None => PoolStart::ExportedBy(first.clone()),
                };
                st.add_pool(spec, start, t0).map_err(|e| setup(what.clone(), &e))?;
            }
            TargetKind::Ldiskfs { device } => {
                st.add_ldiskfs(&device.display().to_string(), &t.lctl_device, true)
                    .map_err(|e| setup(what.clone(), &e))?;
            }
        }
        let source = t.kind.mount_source();
        let mountpoint = t.mountpoint.display().to_string();
        if let Some(o) = owner {
            let fstype = t.kind.fstype().as_str();
            for argv in [vec!["mkdir", "-p", &mountpoint], vec!["mount", "-t", fstype, &source, &mountpoint]] {
                let cmd = Command::new(argv, Duration::ZERO);
                let p = st.begin(o, &cmd, t0, &mut rng);
                let r = st.finish(o, p.op, t0);
                if !r.success() {
                    return Err(setup_err(format!("{what}: `{}` on {o}: {}", cmd.display(), r.summary())));
                }
            }
        }
        targets.push(SanTarget { name: t.name.clone(), pool: t.kind.pool().map(str::to_string), source, mountpoint });
    }
    Ok(SanState {
        storage: st,
        targets,
        boots: BTreeMap::new(),
        violations: Vec::new(),
        seed: stable_hash(&format!("{}{}", cfg.cluster.name, t0.as_micros())),
        commands: 0,
        created_mono_ms: t0.as_millis(),
    })
}

fn init(san: &San, a: &InitArgs) -> Result<String, SanError> {
    let cfg = Config::load_with(&a.config, KeyCheck::Skip)
        .map_err(|e| setup_err(format!("{}: {}", a.config.display(), e.to_string().replace('\n', "; "))))?;
    std::fs::create_dir_all(san.dir()).map_err(|e| file_err(format!("cannot create {}: {e}", san.dir().display())))?;
    let state = initial_state(&cfg, &a.owner, a.mmp_wait)?;
    let lock = san.lock()?;
    if lock.exists() && !a.force {
        return Err(setup_err(format!("{} already holds a SAN (use --force to replace it)", san.dir().display())));
    }
    let history = san.dir().join(HISTORY_FILE);
    if history.exists() {
        std::fs::remove_file(&history).map_err(|e| file_err(format!("cannot remove {}: {e}", history.display())))?;
    }
    lock.save(&state)?;
    let placed: Vec<String> =
        state.targets.iter().map(|t| format!("{} on {}", t.name, state_owner(&state, t))).collect();
    Ok(format!(
        "SAN in {}: hosts {}; {}",
        san.dir().display(),
        state.storage.hosts.keys().cloned().collect::<Vec<_>>().join(", "),
        placed.join(", ")
    ))
}

fn state_owner(st: &SanState, t: &SanTarget) -> String {
    let on: Vec<String> =
        st.storage.hosts.values().filter(|h| h.mounts.iter().any(|m| m.source == t.source)).map(|h| h.name.clone()).collect();
    if on.is_empty() {
        "no host (exported)".into()
    } else {
        on.join(", ")
    }
}

fn power(san: &San, host: &str, action: PowerAction) -> Result<ExitCode, SanError> {
    let lock = san.lock()?;
    let mut st = lock.load()?;
    let powered = st.storage.host(host).map(|h| h.powered).ok_or_else(|| host_err(st.unknown_host(host)))?;
    let on = match action {
        PowerAction::Status => {
            println!("{}", if powered { "on" } else { "off" });
            return Ok(ExitCode::SUCCESS);
        }
        PowerAction::On => true,
        PowerAction::Off => false,
    };
    let mut records = Vec::new();
    let changed = st.set_power(host, on, &mut records)?;
    if changed {
        lock.save(&st)?;
        lock.append(&records)?;
        tracing::info!(host = %host, on, "simulated SAN: power changed");
    }
    let state = if on { "on" } else { "off" };
    println!("{host}: {state}{}", if changed { "" } else { " (already)" });
    Ok(ExitCode::SUCCESS)
}

fn show(san: &San) -> Result<ExitCode, SanError> {
    let st = san.lock()?.load()?;
    println!("{}", serde_json::to_string_pretty(&st.summary()).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

fn check(san: &San) -> Result<ExitCode, SanError> {
    let st = san.lock()?.load()?;
    let now_violations = checker::storage_invariants(&st.storage);
    let mut text = String::new();
    for v in &st.violations {
        let _ = writeln!(text, "VIOLATION at +{:.3}s: {}", ms_since(&st, v.mono_ms), v.what);
    }
    for v in now_violations.iter().filter(|v| !st.violations.iter().any(|s| &s.what == *v)) {
        let _ = writeln!(text, "VIOLATION now: {v}");
    }
    if text.is_empty() {
        println!("ok: no pool or target was ever imported or mounted on two powered hosts, no early forced import");
        Ok(ExitCode::SUCCESS)
    } else {
        print!("{text}");
        Ok(ExitCode::FAILURE)
    }
}

fn ms_since(st: &SanState, mono_ms: u64) -> f64 {
    mono_ms.saturating_sub(st.created_mono_ms) as f64 / 1000.0
}

fn history(san: &San, json_lines: bool) -> Result<ExitCode, SanError> {
    let created = san.lock()?.load()?.created_mono_ms;
    for r in san.history()? {
        if json_lines {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            continue;
        }
        let rel = |ms: u64| ms.saturating_sub(created) as f64 / 1000.0;
        match r {
            HistoryRecord::Command { host, argv, started_mono_ms, mono_ms, summary, .. } => {
                println!("+{:>9.3}s {host:<8} `{}` ({:.3}s) -> {summary}", rel(mono_ms), argv.join(" "), (mono_ms - started_mono_ms.min(mono_ms)) as f64 / 1000.0)
            }
            HistoryRecord::Power { host, on, mono_ms, .. } => {
                println!("+{:>9.3}s {host:<8} power {}", rel(mono_ms), if on { "on" } else { "off" })
            }
            HistoryRecord::Violation { what, mono_ms, .. } => println!("+{:>9.3}s VIOLATION {what}", rel(mono_ms)),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Single-quote a value for sh.
fn sh_quote(s: &str) -> Result<String, SanError> {
    if s.contains('\'') {
        return Err(setup_err(format!("{s:?}: a path with a single quote cannot go into the wrapper scripts")));
    }
    Ok(format!("'{s}'"))
}

/// Write the wrapper scripts into `dir` (created if needed), each exec'ing this very binary.
pub fn write_wrappers(san: &San, dir: &Path, host: Option<&str>) -> Result<(), SanError> {
    let exe = std::env::current_exe().map_err(|e| file_err(format!("cannot find this program's path: {e}")))?;
    let exe = sh_quote(&exe.display().to_string())?;
    let san_dir = std::fs::canonicalize(san.dir())
        .map_err(|e| file_err(format!("SAN directory {}: {e}", san.dir().display())))?;
    let san_q = sh_quote(&san_dir.display().to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| file_err(format!("cannot create {}: {e}", dir.display())))?;
    for tool in WRAPPED_TOOLS {
        let mut s = format!(
            "#!/bin/sh\n# `{tool}` of a simulated host: answered by failoverd's simulated SAN (written by `failoverd sim-san wrappers`)\n\
             export {ENV_SAN}={san_q}\n"
        );
        if let Some(h) = host {
            let _ = writeln!(s, "export {ENV_HOST}={}", sh_quote(h)?);
        }
        if *tool == "cat" {
            // only the mount table is simulated; every other file is the real one
            let _ = writeln!(s, "if [ \"$#\" -eq 1 ] && [ \"$1\" = /proc/mounts ]; then\n  exec {exe} sim-tool cat \"$@\"\nfi\nexec /bin/cat \"$@\"");
        } else {
            let _ = writeln!(s, "exec {exe} sim-tool {tool} \"$@\"");
        }
        let path = dir.join(tool);
        std::fs::write(&path, s).map_err(|e| file_err(format!("cannot write {}: {e}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| file_err(format!("cannot chmod {}: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_toml_str(
            "[cluster]\nname = \"t\"\nkey_file = \"/k\"\nlinks = [\"ring0\"]\n\n\
             [[node]]\nname = \"mds1\"\naddresses = [\"10.9.0.1:7405\"]\nhostid = \"a1b2c3d4\"\nfencing = \"manual\"\n\n\
             [[node]]\nname = \"mds2\"\naddresses = [\"10.9.0.2:7405\"]\nhostid = \"b2c3d4e5\"\nfencing = \"manual\"\n\n\
             [[node]]\nname = \"oss1\"\naddresses = [\"10.9.0.3:7405\"]\nhostid = \"c3d4e5f6\"\nfencing = \"manual\"\n\n\
             [[target]]\nname = \"MGT\"\nkind = \"zfs\"\npool = \"mgspool\"\ndataset = \"mgspool/mgt\"\n\
             mountpoint = \"/lustre/mgt\"\nnodes = [\"mds1\", \"mds2\"]\nlctl_device = \"MGS\"\n\n\
             [[target]]\nname = \"OST0000\"\nkind = \"ldiskfs\"\ndevice = \"/dev/sdb\"\n\
             mountpoint = \"/lustre/ost0\"\nnodes = [\"oss1\", \"mds2\"]\nlctl_device = \"lfs-OST0000\"\n",
        )
        .unwrap()
    }

    #[test]
    fn owners_name_a_node_for_all_targets_or_one_target() {
        let cfg = config();
        let p = placements(&cfg, &["mds2".into()]).unwrap();
        assert_eq!(p.get("MGT").map(String::as_str), Some("mds2"));
        assert_eq!(p.get("OST0000").map(String::as_str), Some("mds2"));
        let p = placements(&cfg, &["OST0000=oss1".into()]).unwrap();
        assert_eq!(p.len(), 1);
        // a node-wide owner must be allowed to run every target
        let e = placements(&cfg, &["mds1".into()]).unwrap_err().to_string();
        assert_eq!(e, "--owner mds1: mds1 is not in target OST0000's nodes");
        let e = placements(&cfg, &["MDT9=mds1".into()]).unwrap_err().to_string();
        assert_eq!(e, "--owner MDT9=mds1: MDT9 is not a [[target]] of the configuration");
    }

    #[test]
    fn initial_state_mounts_on_owners_and_exports_the_rest() {
        let cfg = config();
        let st = initial_state(&cfg, &["OST0000=oss1".into()], Some(Duration::from_secs(2))).unwrap();
        assert_eq!(st.storage.timing.activity_check, Some(Duration::from_secs(2)));
        assert_eq!(st.storage.host("mds2").map(|h| h.hostid), Some(0xb2c3_d4e5));
        let mgs = st.storage.pool("mgspool").unwrap();
        assert!(mgs.imported_on.is_empty());
        assert_eq!((mgs.label.state, mgs.label.hostname.as_str()), (crate::sim::storage::LabelState::Exported, "mds1"));
        let s = st.summary();
        assert_eq!(s["targets"]["OST0000"]["mounted_on"], json!(["oss1"]));
        assert_eq!(s["targets"]["MGT"]["mounted_on"], json!([]));
        assert_eq!(s["hosts"]["oss1"]["mounts"][0]["lustre_name"], "lfs-OST0000");
        assert!(checker::storage_invariants(&st.storage).is_empty());
    }

    #[test]
    fn a_forced_import_is_judged_against_the_owners_power() {
        let cfg = config();
        let mut st = initial_state(&cfg, &["MGT=mds1".into()], None).unwrap();
        let forced = Command::new(["zpool", "import", "-f", "-o", "cachefile=none", "mgspool"], Duration::ZERO);
        let plain = Command::new(["zpool", "import", "-o", "cachefile=none", "mgspool"], Duration::ZERO);
        assert!(st.forced_import_too_early("mds2", &plain).is_none());
        assert!(st.forced_import_too_early("mds2", &forced).is_some());
        let mut records = Vec::new();
        assert!(st.set_power("mds1", false, &mut records).unwrap());
        assert!(!st.set_power("mds1", false, &mut records).unwrap());
        assert_eq!(st.boots.get("mds1"), Some(&1));
        assert!(matches!(records.as_slice(), [HistoryRecord::Power { on: false, .. }]));
        assert!(st.forced_import_too_early("mds2", &forced).is_none());
    }
}
