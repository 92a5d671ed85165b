//! The daemon's subcommands: `run`, and the operator's commands that talk to a running daemon over its control
//! socket (`status`, `migrate`, `confirm-fenced`, `fence`, `maintenance`, `standby`, `unstandby`,
//! `override-wait-for-all`).
//!
//! `main.rs` holds one enum variant per subcommand with the `*Args` struct below, and calls the function of
//! the same name. Every function returns the process exit code: 0 on success, 1 when the daemon refused or
//! could not be reached (the reason is printed on stderr).

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::engine::{AdminError, AdminRequest, Status};
use crate::fence::FenceAction;
use crate::storage::Step;

use super::follow::{follow, Goal};
use super::logging::LogFormat;
use super::{Result, RuntimeError};

/// Where the control socket is when neither `--socket` nor `--config` is given.
pub const DEFAULT_SOCKET: &str = "/run/failoverd/control.sock";

/// `failoverd run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The cluster configuration file.
    #[arg(long, short, value_name = "FILE", default_value = crate::manpages::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// This node's name in the configuration (default: the host name, or its part before the first dot).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Log format on stderr (default: journald when stderr is the journal, human otherwise).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Which daemon to talk to.
#[derive(clap::Args, Debug, Clone)]
pub struct SocketArgs {
    /// Find the control socket in this configuration file (`cluster.control_socket`).
    #[arg(long, short, value_name = "FILE", conflicts_with = "socket")]
    pub config: Option<PathBuf>,
    /// The daemon's control socket [default: /run/failoverd/control.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// `failoverd status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Print the daemon's whole status as JSON (times as RFC 3339 wall-clock times in `time` and `events`).
    #[arg(long)]
    pub json: bool,
    /// Redraw the status every --interval until interrupted.
    #[arg(long, short)]
    pub watch: bool,
    /// How often --watch redraws.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

/// `failoverd migrate`.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The target to move (its `[[target]]` name).
    pub target: String,
    /// The node to move it to.
    #[arg(long, value_name = "NODE")]
    pub to: String,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// How `migrate` and `standby` wait for the move.
#[derive(clap::Args, Debug, Clone)]
pub struct WaitArgs {
    /// Return once the daemon accepted the request, without following the move.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up following after this long (the move goes on in the daemons).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub wait_timeout: Duration,
}

/// `failoverd standby` and `failoverd unstandby`.
#[derive(clap::Args, Debug)]
pub struct StandbyArgs {
    /// The node to put in (or take out of) standby.
    pub node: String,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `failoverd confirm-fenced`.
#[derive(clap::Args, Debug)]
pub struct ConfirmFencedArgs {
    /// The node you have verified is powered off.
    pub node: String,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// Fence actions an operator can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FenceActionArg {
    Off,
    On,
    Status,
    Reboot,
}

impl From<FenceActionArg> for FenceAction {
    fn from(a: FenceActionArg) -> FenceAction {
        match a {
            FenceActionArg::Off => FenceAction::Off,
            FenceActionArg::On => FenceAction::On,
            FenceActionArg::Status => FenceAction::Status,
            FenceActionArg::Reboot => FenceAction::Reboot,
        }
    }
}

/// `failoverd fence`.
#[derive(clap::Args, Debug)]
pub struct FenceArgs {
    /// The node to fence.
    pub node: String,
    /// What to do to its power. off, on and reboot go through the running daemon; status asks every fence
    /// device of the node directly, from this process, and needs --config.
    #[arg(long, value_enum, default_value = "off")]
    pub action: FenceActionArg,
    /// Cancel the node's fence job instead: one waiting on an operator (manual level) or on a retry backoff,
    /// or any job an operator started. The node is then not fenced automatically until it is heard again.
    #[arg(long, conflicts_with = "action")]
    pub cancel: bool,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `failoverd history`.
#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// Read `cluster.state_dir` from this configuration file.
    #[arg(long, short, value_name = "FILE", conflicts_with = "state_dir")]
    pub config: Option<PathBuf>,
    /// The daemon's state directory [default: /var/lib/failoverd].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Only the last N entries.
    #[arg(long, short = 'n', value_name = "N")]
    pub last: Option<usize>,
    /// One JSON object per line, as stored.
    #[arg(long)]
    pub json: bool,
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// `failoverd maintenance`.
#[derive(clap::Args, Debug)]
pub struct MaintenanceArgs {
    /// `on`: keep heartbeating but take no automatic action anywhere in the cluster; `off`: resume.
    #[arg(value_enum)]
    pub state: OnOff,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `failoverd override-wait-for-all`.
#[derive(clap::Args, Debug)]
pub struct OverrideWaitForAllArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// Give SIGPIPE back its default action, so that a command whose reader went away (`failoverd status | head`)
/// ends quietly, as `ls | head` does, instead of panicking in `println!` (Rust ignores SIGPIPE).
///
/// Only once the command has no child process left to talk to: with the default action, a write to the
/// stdin of a fence agent or tool that exited without reading it kills the writer (`doctor` and
/// `fence --action status` died that way, by a race, before their report was printed). The long-running
/// processes (`run`, `witness`, `demo`) never call it: a closed pipe or socket must never kill them.
pub fn end_quietly_when_the_reader_goes() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_DFL installs no handler code; sigaction is process-wide and safe to call from any thread.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn fail(cmd: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("failoverd {cmd}: {e}");
    ExitCode::FAILURE
}

/// `failoverd run --config FILE [--node NAME] [--log-format human|json]`. Errors are logged (in the chosen
/// log format) by the daemon itself.
pub fn run(args: RunArgs) -> ExitCode {
    match super::daemon::run(&args.config, args.node, args.log_format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

impl SocketArgs {
    /// The control socket: `--socket`, else `cluster.control_socket` of `--config`, else the default.
    pub fn path(&self) -> Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        if let Some(c) = &self.config {
            return Ok(super::daemon::load_config_without_keys(c)?.cluster.control_socket);
        }
        Ok(PathBuf::from(DEFAULT_SOCKET))
    }
}

/// Send one request line and read one reply line, waiting at most `timeout` for it.
pub fn request(socket: &Path, req: &Value, timeout: Duration) -> Result<Value> {
    let hint = |e: &std::io::Error| match e.kind() {
        std::io::ErrorKind::PermissionDenied => " (run as root or as a uid in cluster.control_allowed_uids)",
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            " (is failoverd running? is this its cluster.control_socket?)"
        }
        _ => "",
    };
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| RuntimeError::daemon(format!("cannot reach failoverd at {}: {e}{}", socket.display(), hint(&e))))?;
    let io = |e: std::io::Error| RuntimeError::daemon(format!("talking to failoverd at {}: {e}", socket.display()));
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| RuntimeError::daemon(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => RuntimeError::daemon(format!(
            "no answer from failoverd at {} within {}s; the request may still be in progress: see `failoverd status`",
            socket.display(),
            timeout.as_secs()
        )),
        _ => io(e),
    })?;
    if reply.is_empty() {
        return Err(RuntimeError::daemon(format!("failoverd at {} closed the connection without replying", socket.display())));
    }
    serde_json::from_str(&reply).map_err(|e| RuntimeError::daemon(format!("unreadable reply from failoverd: {e}")))
}

/// Send an admin request and print the daemon's answer.
fn admin(cmd: &str, socket: &SocketArgs, req: AdminRequest, timeout: Duration) -> ExitCode {
    match admin_request(socket, req, timeout) {
        Ok((_, message)) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => e.fail(cmd),
    }
}

/// Exit status of an admin command the daemon refused for now (no quorum, maintenance, a target busy, a node
/// not ready): the same command may succeed later. Other refusals and errors exit with 1, a malformed
/// command line with 2 (clap).
pub const EXIT_RETRY_LATER: u8 = 3;

/// Why an admin request did not succeed: the daemon could not be asked, or it refused (typed when the daemon
/// sent the refusal's `kind`).
#[derive(Debug)]
enum AdminFailure {
    Unasked(RuntimeError),
    Refused { text: String, why: Option<AdminError> },
}

impl From<RuntimeError> for AdminFailure {
    fn from(e: RuntimeError) -> Self {
        AdminFailure::Unasked(e)
    }
}

impl std::fmt::Display for AdminFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminFailure::Unasked(e) => write!(f, "{e}"),
            AdminFailure::Refused { text, .. } => write!(f, "{text}"),
        }
    }
}

impl AdminFailure {
    /// The exit status: [`EXIT_RETRY_LATER`] for a refusal that may not hold later, 2 for a command line that
    /// lacks something (`--yes` without a terminal), else 1.
    fn exit_status(&self) -> u8 {
        match self {
            AdminFailure::Refused { why: Some(why), .. } if why.retry_later() => EXIT_RETRY_LATER,
            AdminFailure::Unasked(RuntimeError::Usage(_)) => 2,
            _ => 1,
        }
    }

    /// Print the failure and exit with its status.
    fn fail(&self, cmd: &str) -> ExitCode {
        eprintln!("failoverd {cmd}: {self}");
        ExitCode::from(self.exit_status())
    }
}

/// Send an admin request; on success, the socket path and the daemon's message.
fn admin_request(socket: &SocketArgs, req: AdminRequest, timeout: Duration) -> std::result::Result<(PathBuf, String), AdminFailure> {
    let path = socket.path()?;
    let value = serde_json::to_value(&req).map_err(|e| RuntimeError::daemon(e.to_string()))?;
    let reply = request(&path, &value, timeout)?;
    if reply["ok"] == json!(true) {
        Ok((path, reply["message"].as_str().unwrap_or("ok").to_string()))
    } else {
        let text = reply["error"].as_str().unwrap_or("the daemon refused (no reason given)").to_string();
        Err(AdminFailure::Refused { text, why: serde_json::from_value(reply).ok() })
    }
}

/// Send an admin request that starts a move, print the answer, then follow the move until `goal` (unless
/// `--no-wait`).
fn admin_and_follow(cmd: &str, socket: &SocketArgs, req: AdminRequest, wait: &WaitArgs, goal: Goal) -> ExitCode {
    let (path, message) = match admin_request(socket, req, Duration::from_secs(60)) {
        Ok(r) => r,
        Err(e) => return e.fail(cmd),
    };
    println!("{message}");
    if wait.no_wait {
        return ExitCode::SUCCESS;
    }
    match follow(&path, &goal, wait.wait_timeout) {
        Ok(()) => {
            println!("done");
            ExitCode::SUCCESS
        }
        Err(e) => fail(cmd, e),
    }
}

/// Ask the operator to type `expected` (on a terminal). Errors when stdin is not a terminal.
fn confirm(prompt: &str, expected: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(RuntimeError::usage("stdin is not a terminal: pass --yes to confirm"));
    }
    eprint!("{prompt}\ntype the node name to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| RuntimeError::io(e.to_string()))?;
    Ok(answer.trim() == expected)
}

/// `failoverd migrate TARGET --to NODE`.
pub fn migrate(args: MigrateArgs) -> ExitCode {
    let goal = Goal::TargetOn { target: args.target.clone(), node: args.to.clone() };
    admin_and_follow("migrate", &args.socket, AdminRequest::Migrate { target: args.target, to: args.to }, &args.wait, goal)
}

/// `failoverd standby NODE`: move every target off NODE (controlled migrations) and keep it off; waits until
/// NODE holds nothing unless `--no-wait`.
pub fn standby(args: StandbyArgs) -> ExitCode {
    let goal = Goal::NodeEmpty { node: args.node.clone() };
    admin_and_follow("standby", &args.socket, AdminRequest::Standby { node: args.node, on: true }, &args.wait, goal)
}

/// `failoverd unstandby NODE`: NODE may run targets again (nothing moves back by itself).
pub fn unstandby(args: StandbyArgs) -> ExitCode {
    admin("unstandby", &args.socket, AdminRequest::Standby { node: args.node, on: false }, Duration::from_secs(60))
}

/// `failoverd confirm-fenced NODE [--yes]`.
pub fn confirm_fenced(args: ConfirmFencedArgs) -> ExitCode {
    if !args.yes {
        let prompt = format!(
            "You are confirming that node {} is POWERED OFF. failoverd will then force-import its pools here.\n\
             If it is still running, both hosts will write the same pools and the file system will be corrupted.",
            args.node
        );
        match confirm(&prompt, &args.node) {
            Ok(true) => {}
            Ok(false) => return fail("confirm-fenced", "not confirmed; nothing done"),
            Err(e) => return AdminFailure::from(e).fail("confirm-fenced"),
        }
    }
    admin("confirm-fenced", &args.socket, AdminRequest::ConfirmFenced { node: args.node }, Duration::from_secs(60))
}

/// How long `failoverd fence` waits for the fence job to end (every level, every device, status polls).
pub const FENCE_WAIT: Duration = Duration::from_secs(600);

/// `failoverd fence NODE [--action off|on|status|reboot]`. off, on and reboot go through the running daemon
/// and wait until its fence job ends (at most [`FENCE_WAIT`]; the job goes on in the daemon if this command
/// gives up). status is read-only and needs no daemon: see [`fence_status`].
pub fn fence(args: FenceArgs) -> ExitCode {
    if args.action != FenceActionArg::Status || args.cancel {
        // through the daemon's socket: no fence agent runs in this process
        end_quietly_when_the_reader_goes();
    }
    if args.cancel {
        return admin("fence", &args.socket, AdminRequest::FenceCancel { node: args.node }, Duration::from_secs(60));
    }
    if args.action == FenceActionArg::Status {
        return fence_status(&args);
    }
    admin("fence", &args.socket, AdminRequest::Fence { node: args.node, action: args.action.into() }, FENCE_WAIT)
}

/// `failoverd fence NODE --action status --config FILE`: from this process, ask every fence device of every
/// level of NODE for its power state (and check each agent's options against its metadata), and print one
/// line per device: `level 1  mds1-ipmi  ipmi  off  (41 ms)`. Exit 0 when every device answered, 1 otherwise.
/// Works on any node, the local one included, with or without a running daemon.
fn fence_status(args: &FenceArgs) -> ExitCode {
    let Some(path) = &args.socket.config else {
        return fail(
            "fence",
            "--action status reads the fence devices from the configuration: pass --config FILE (it does not go \
             through the daemon's socket)",
        );
    };
    let cfg = match super::daemon::load_config_without_keys(path) {
        Ok(c) => c,
        Err(e) => return fail("fence", e),
    };
    let Some(node) = cfg.node(&args.node) else {
        let known: Vec<&str> = cfg.nodes.iter().map(|n| n.name.as_str()).collect();
        return fail("fence", format!("unknown node {} (the configuration has {})", args.node, known.join(", ")));
    };
    if node.fence_levels.is_empty() {
        println!("{}: fencing = \"manual\": no fence device to ask; an operator powers it off and runs `failoverd confirm-fenced {}`", node.name, node.name);
        return ExitCode::SUCCESS;
    }
    let probes = super::fence_probe::probe_node(&cfg, &args.node);
    end_quietly_when_the_reader_goes();
    for p in &probes {
        println!("{p}");
    }
    if probes.iter().all(|p| p.ok()) {
        ExitCode::SUCCESS
    } else {
        let failed = probes.iter().filter(|p| !p.ok()).count();
        eprintln!("failoverd fence: {failed} of {} fence device(s) of {} did not answer cleanly", probes.len(), args.node);
        ExitCode::FAILURE
    }
}

/// `failoverd history [--config FILE | --state-dir DIR] [-n N] [--json]`: the fences and takeovers this node
/// saw, oldest first, from `state_dir/history.jsonl` (kept across restarts; no daemon needed).
pub fn history(args: HistoryArgs) -> ExitCode {
    let dir = match (&args.state_dir, &args.config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => match super::daemon::load_config_without_keys(c) {
            Ok(cfg) => cfg.cluster.state_dir,
            Err(e) => return fail("history", e),
        },
        (None, None) => PathBuf::from(crate::config::defaults::STATE_DIR),
    };
    let entries = match super::state::History::read(&dir) {
        Ok(e) => e,
        Err(e) => return fail("history", format!("cannot read {}: {e}", dir.join(super::state::HISTORY_FILE).display())),
    };
    let skip = args.last.map_or(0, |n| entries.len().saturating_sub(n));
    let mut out = String::new();
    if entries.is_empty() && !args.json {
        out.push_str(&format!("no fence or takeover recorded in {}\n", dir.display()));
    }
    for e in &entries[skip..] {
        if args.json {
            out.push_str(&e.to_string());
        } else {
            let ts = e["timestamp"].as_str().unwrap_or("?");
            out.push_str(&format!(
                "{}  {:<6} {:<28} {}",
                ts,
                e["reported_by"].as_str().unwrap_or("?"),
                e["event"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("")
            ));
        }
        out.push('\n');
    }
    print!("{out}");
    ExitCode::SUCCESS
}

/// `failoverd maintenance on|off`.
pub fn maintenance(args: MaintenanceArgs) -> ExitCode {
    admin("maintenance", &args.socket, AdminRequest::Maintenance { on: args.state == OnOff::On }, Duration::from_secs(60))
}

/// `failoverd override-wait-for-all [--yes]`.
pub fn override_wait_for_all(args: OverrideWaitForAllArgs) -> ExitCode {
    if !args.yes {
        let node = match args.socket.path().and_then(|p| request(&p, &json!({"request": "status"}), Duration::from_secs(10))) {
            Ok(v) => v["status"]["node"].as_str().unwrap_or("").to_string(),
            Err(e) => return AdminFailure::from(e).fail("override-wait-for-all"),
        };
        let prompt = format!(
            "Node {node} has not seen every node since it started. Overriding lets it fence and take over from nodes\n\
             it has never heard: only do this when you know the missing nodes are down."
        );
        match confirm(&prompt, &node) {
            Ok(true) => {}
            Ok(false) => return fail("override-wait-for-all", "not confirmed; nothing done"),
            Err(e) => return AdminFailure::from(e).fail("override-wait-for-all"),
        }
    }
    admin("override-wait-for-all", &args.socket, AdminRequest::OverrideWaitForAll, Duration::from_secs(60))
}

/// `failoverd status [--config FILE | --socket PATH] [--json] [--watch]`.
pub fn status(args: StatusArgs) -> ExitCode {
    if args.watch && !args.json {
        return watch(&args);
    }
    let reply = match status_reply(&args.socket) {
        Ok(r) => r,
        Err(e) => return fail("status", e),
    };
    if args.json {
        let mut v = reply["status"].clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("runtime".into(), reply["runtime"].clone());
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    match render_reply(&reply) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail("status", e),
    }
}

fn status_reply(socket: &SocketArgs) -> Result<Value> {
    let reply = request(&socket.path()?, &json!({"request": "status"}), Duration::from_secs(10))?;
    if reply["ok"] != json!(true) {
        return Err(RuntimeError::refused(reply["error"].as_str().unwrap_or("the daemon refused")));
    }
    Ok(reply)
}

fn render_reply(reply: &Value) -> Result<String> {
    let status: Status = serde_json::from_value(reply["status"].clone())
        .map_err(|e| RuntimeError::daemon(format!("unreadable status from the daemon (another version?): {e}")))?;
    Ok(render_status(&status, &reply["runtime"], &reply["status"]["events"]))
}

/// `failoverd status --watch`: redraw every second (clear screen on a terminal), until interrupted.
fn watch(args: &StatusArgs) -> ExitCode {
    let tty = std::io::stdout().is_terminal();
    loop {
        let text = match status_reply(&args.socket).and_then(|r| render_reply(&r)) {
            Ok(t) => t,
            Err(e) => format!("failoverd status: {e}\n"),
        };
        let mut out = std::io::stdout().lock();
        let frame = if tty { format!("\x1b[H\x1b[2J{text}") } else { format!("{text}\n") };
        if out.write_all(frame.as_bytes()).and_then(|_| out.flush()).is_err() {
            return ExitCode::SUCCESS;
        }
        drop(out);
        std::thread::sleep(args.interval);
    }
}

fn age(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// Lay out rows as left-aligned columns separated by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().enumerate().map(|(i, s)| format!("{s:<w$}", w = widths[i])).collect();
        out.push_str("  ");
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `20:11:03` of an RFC 3339 time (`2026-12-06T20:11:03.123Z`); the date is in the header.
fn clock_of(rfc3339: &str) -> String {
    rfc3339.split('T').nth(1).map(|t| t.split('.').next().unwrap_or(t).trim_end_matches('Z').to_string()).unwrap_or_else(|| rfc3339.to_string())
}

/// The disk heartbeat section of `failoverd status` from the daemon's `runtime.disk_heartbeat` (nothing when
/// the channel is not configured):
///
/// ```text
/// disk heartbeat /dev/disk/by-id/wwn-0x5000-part1: writes ok (last 0.41 ms), 1520 rounds, 0 failed, 0 skipped
///   mds2  slot advanced 0.1s ago (incarnation 7, seq 1519)
/// ```
pub fn render_disk_heartbeat(d: &Value) -> String {
    let Some(device) = d["device"].as_str() else { return String::new() };
    let mut out = format!("\ndisk heartbeat {device}: ");
    let counts = format!("{} rounds, {} failed, {} skipped", d["rounds"], d["failed"], d["skipped"]);
    match (d["write_ok"].as_bool(), d["last_write_ms"].as_f64(), d["last_error"].as_str()) {
        (Some(true), Some(ms), _) => out.push_str(&format!("writes ok (last {ms:.2} ms), {counts}\n")),
        (_, _, Some(e)) => {
            let since = d["last_ok_ago_ms"].as_u64().map(|ms| format!("last good write {} ago", age(ms))).unwrap_or_else(|| "no good write yet".into());
            out.push_str(&format!(
                "WRITES FAILING ({since}), {counts}: {e}\n  this node fences nobody on the disk channel's word until its own writes succeed again; check the device's paths (multipath -ll) and the SAN\n"
            ));
        }
        _ => out.push_str(&format!("no round yet, {counts}\n")),
    }
    if d["skipped"].as_u64().unwrap_or(0) > 0 && d["write_ok"] != json!(true) {
        out.push_str("  beats are being skipped: a write or read has not come back (the device hangs?)\n");
    }
    let mut rows = Vec::new();
    for p in d["peers"].as_array().into_iter().flatten() {
        let node = p["node"].as_str().unwrap_or("?").to_string();
        let slot = match (p["age_ms"].as_u64(), p["problem"].as_str()) {
            (_, Some(problem)) => format!("slot unreadable: {problem}"),
            (Some(ms), None) => format!("slot advanced {} ago (incarnation {}, seq {})", age(ms), p["incarnation"], p["seq"]),
            (None, None) => "slot not read yet".into(),
        };
        rows.push(vec![node, slot]);
    }
    out.push_str(&table(&rows));
    out
}

/// The human form of `failoverd status`, laid out like `crm_mon -1`: the cluster and quorum on top, every
/// node (this one included) with its links, fencing with its countdown or what the operator must do, each
/// target with its current step, failed actions, recent events as wall-clock time and one line.
/// `events` is the daemon's list of recent events with wall-clock times (newer daemons); without it, event
/// times are shown as ages.
pub fn render_status(s: &Status, runtime: &Value, events: &Value) -> String {
    let mut out = String::new();
    let now = runtime["now_us"].as_u64();
    let cluster = if s.cluster.is_empty() { "?".to_string() } else { s.cluster.clone() };
    let when = std::time::SystemTime::now();
    out.push_str(&format!(
        "cluster: {cluster}    node: {} (incarnation {})    {}\n",
        s.node,
        s.incarnation,
        humantime::format_rfc3339_seconds(when)
    ));
    let q = &s.quorum;
    if q.quorate {
        out.push_str(&format!("quorum: yes ({} of {} votes, {} needed{})\n", q.votes, q.total, q.needed, if q.two_node { ", two-node" } else { "" }));
    } else {
        out.push_str(&format!("quorum: NO ({} of {} votes, {} needed): {}\n", q.votes, q.total, q.needed, q.reason));
    }
    if s.maintenance {
        out.push_str("MAINTENANCE: on — the cluster takes no automatic action (failoverd maintenance off to resume)\n");
    }
    if !s.all_nodes_seen {
        out.push_str("waiting for all nodes: not every node has been seen since this daemon started (wait_for_all)\n");
    }
    if !s.discovered {
        out.push_str("start-up discovery: still looking at the storage; this node claims nothing yet\n");
    }
    if !s.standby.is_empty() {
        out.push_str(&format!("standby: {} (runs no target; `failoverd unstandby NODE` to undo)\n", s.standby.join(", ")));
    }
    if let Some(why) = &s.asking_to_be_fenced {
        out.push_str(&format!("ASKING TO BE FENCED: {why}\n"));
    }
    if runtime["leaving"] == json!(true) {
        out.push_str("LEAVING: this daemon is stopping (moving its targets away first)\n");
    }

    // nodes, this one first
    out.push_str("\nnodes:\n");
    let links: Vec<String> = s.peers.first().map(|p| p.links.iter().map(|l| l.link.clone()).collect()).unwrap_or_default();
    let mut header = vec!["NODE".to_string(), "STATE".into(), "INCARNATION".into()];
    header.extend(links.iter().map(|l| l.to_uppercase()));
    let mut rows = vec![header];
    let mut me = vec![s.node.clone(), "online (this node)".into(), s.incarnation.to_string()];
    me.extend(links.iter().map(|_| "-".to_string()));
    rows.push(me);
    for p in &s.peers {
        let state = if p.fenced {
            "FENCED (off)".to_string()
        } else if let Some(other) = p.conflict_incarnation {
            format!("CONFLICT: two daemons (incarnations {} and {other})", p.incarnation.unwrap_or(0))
        } else if p.left {
            "LEFT".into()
        } else if p.alive {
            "online".into()
        } else if p.ever_seen {
            "DEAD".into()
        } else {
            "never seen".into()
        };
        let mut row = vec![p.node.clone(), state, p.incarnation.map(|i| i.to_string()).unwrap_or_else(|| "-".into())];
        row.extend(p.links.iter().map(|l| {
            let heard = l.last_heard_ms.map(|ms| format!(" ({} ago)", age(ms))).unwrap_or_default();
            format!("{}{heard}", if l.up { "up" } else { "down" })
        }));
        rows.push(row);
    }
    out.push_str(&table(&rows));
    for p in &s.peers {
        let Some(m) = &p.config_mismatch else { continue };
        let blocked = if m.blocks_fencing {
            format!("no automatic fencing of {} nor takeover from it", p.node)
        } else if !m.targets.is_empty() {
            format!("no automatic takeover of {}", m.targets.join(", "))
        } else {
            "nothing blocked".into()
        };
        out.push_str(&format!("  CONFIG MISMATCH with {} ({blocked}):\n", p.node));
        if !m.keys_known {
            out.push_str(&format!("    which settings differ is not known ({} sent no summary)\n", p.node));
        } else if m.keys.is_empty() {
            out.push_str("    a setting not shown in clear differs (an agent's secret option?)\n");
        }
        for k in &m.keys {
            out.push_str(&format!("    {}\n", k.describe(&p.node)));
        }
        out.push_str("    fix: make the files agree (`failoverd check-config A B` names every difference), then restart the daemon whose file was wrong\n");
    }

    out.push_str(&render_disk_heartbeat(&runtime["disk_heartbeat"]));

    out.push_str("\nfencing:\n");
    if s.fencing.is_empty() && s.fence_pending.is_empty() && s.fence_cancelled.is_empty() && s.fence_blocked.is_empty() {
        out.push_str("  (nothing in progress)\n");
    }
    for f in &s.fence_pending {
        out.push_str(&format!(
            "  {}: will be fenced in {} (fence delay) unless it is heard again\n",
            f.victim,
            age(f.in_ms)
        ));
    }
    for f in &s.fencing {
        let what = match f.waiting.as_str() {
            "operator" => format!(
                "WAITING FOR AN OPERATOR: power {v} off by hand, check it is off, then run `failoverd confirm-fenced {v}` \
                 (or `failoverd fence --cancel {v}`)",
                v = f.victim
            ),
            "backoff" => format!(
                "every fence level FAILED; retry in {} (`failoverd fence --cancel {}` stops it)",
                f.retry_in_ms.map(age).unwrap_or_else(|| "?".into()),
                f.victim
            ),
            _ => format!("fencing now (for {})", age(f.running_ms)),
        };
        out.push_str(&format!("  {}: power {}, attempt {}, reason {}: {what}\n", f.victim, f.action, f.attempt, f.reason));
    }
    for (v, why) in &s.fence_blocked {
        out.push_str(&format!(
            "  {v}: NOT FENCED AUTOMATICALLY: {why}. Fix the files and restart, or act by hand: `failoverd fence {v}` \
             (its targets are then taken over) or power it off and `failoverd confirm-fenced {v}`\n"
        ));
    }
    for v in &s.fence_cancelled {
        out.push_str(&format!("  {v}: fencing cancelled by an operator; not fenced automatically until it is heard again\n"));
    }

    out.push_str("\ntargets:\n");
    if s.targets.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut rows = vec![vec!["TARGET".to_string(), "OWNER".into(), "STATE".into(), "HERE".into(), "STEP".into()]];
        for t in &s.targets {
            let step = match (&t.sequence, &t.step) {
                (Some(seq), Some(step)) => {
                    let of = t.step_of.map(|(i, n)| format!(" {i}/{n}")).unwrap_or_default();
                    let mut line = if !t.import_waits_for.is_empty() {
                        format!(
                            "{seq}{of}: import waits for {} (one MMP activity check at a time), {}",
                            t.import_waits_for.join(", "),
                            age(t.import_wait_ms.unwrap_or(0))
                        )
                    } else if t.mount_waits_for.is_empty() {
                        format!("{seq}{of}: {step}, {}", age(t.step_ms.unwrap_or(0)))
                    } else {
                        format!(
                            "{seq}{of}: mount waits for {} (start_order), {}",
                            t.mount_waits_for.join(", "),
                            age(t.mount_wait_ms.unwrap_or(0))
                        )
                    };
                    if let Some(ms) = t.import_ms.filter(|_| *step != Step::Import) {
                        let import = if t.import_forced { "import -f (MMP activity check)" } else { "import" };
                        line.push_str(&format!("; {import} took {}", age(ms)));
                    } else if *step == Step::Import && t.import_forced && t.import_waits_for.is_empty() {
                        line.push_str(" (-f: MMP activity check)");
                    }
                    line
                }
                _ => match (&t.blocked, &t.recovery) {
                    (Some(b), _) => format!("BLOCKED: {b}"),
                    (None, Some(r)) => r.clone(),
                    (None, None) => String::new(),
                },
            };
            rows.push(vec![t.target.clone(), t.owner.clone().unwrap_or_else(|| "-".into()), t.state.clone(), t.local.clone(), step]);
        }
        out.push_str(&table(&rows));
    }

    // failed actions and recent events
    let lines: Vec<(String, crate::engine::Event)> = match events.as_array() {
        Some(list) => list
            .iter()
            .filter_map(|e| Some((clock_of(e["time"].as_str()?), serde_json::from_value(e["detail"].clone()).ok()?)))
            .collect(),
        None => s
            .recent_events
            .iter()
            .map(|(at, ev)| {
                let when = match now {
                    Some(n) => format!("{} ago", age(n.saturating_sub(at.as_micros()) / 1000)),
                    None => at.to_string(),
                };
                (when, ev.clone())
            })
            .collect(),
    };
    use crate::engine::Event as E;
    let failed: Vec<&(String, E)> = lines
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                E::SequenceFailed { .. }
                    | E::FenceLevelFailed { .. }
                    | E::FenceFailed { .. }
                    | E::MonitorFailed { .. }
                    | E::TargetBlocked { .. }
                    | E::FenceLied { .. }
            )
        })
        .collect();
    if !failed.is_empty() {
        out.push_str("\nfailed actions:\n");
        for (when, e) in failed.iter().rev().take(10).rev() {
            out.push_str(&format!("  {when}  {}\n", e.message()));
        }
    }
    out.push_str("\nrecent events:\n");
    if lines.is_empty() {
        out.push_str("  (none)\n");
    }
    let shown: Vec<&(String, E)> = lines.iter().filter(|(_, e)| !matches!(e, E::StepStarted { .. } | E::StepDone { .. })).collect();
    for (when, e) in shown.iter().rev().take(12).rev() {
        out.push_str(&format!("  {when}  {}\n", e.message()));
    }
    let dropped = runtime["datagrams"]["dropped"].as_u64().unwrap_or(0);
    if dropped > 0 {
        out.push_str(&format!(
            "\ndropped datagrams: {dropped} (bad MAC {}, not failoverd {}, too large {})\n",
            runtime["datagrams"]["bad_mac"], runtime["datagrams"]["bad_magic"], runtime["datagrams"]["too_large"]
        ));
    }
    out
}

#[cfg(test)]
mod admin_failure_tests {
    use super::*;

    /// The daemon's JSON refusal (as `control::admin_reply` writes it) is read back typed, and only a
    /// "not now" refusal exits with 3.
    #[test]
    fn a_refusal_for_now_exits_3_and_the_others_1() {
        let refused = |e: AdminError| {
            let reply = crate::runtime::control::admin_reply(Err(e));
            let text = reply["error"].as_str().unwrap().to_string();
            AdminFailure::Refused { text, why: serde_json::from_value(reply).ok() }
        };
        let no_quorum = refused(AdminError::NotNow { reason: "no quorum (waiting for all nodes)".into() });
        assert_eq!((no_quorum.exit_status(), no_quorum.to_string().as_str()), (3, "no action allowed now: no quorum (waiting for all nodes)"));
        assert_eq!(refused(AdminError::Busy { target: "MGT".into(), state: "starting".into() }).exit_status(), 3);
        assert_eq!(refused(AdminError::UnknownTarget { target: "NOPE".into() }).exit_status(), 1);
        let untyped = AdminFailure::Refused { text: "old daemon".into(), why: None };
        assert_eq!(untyped.exit_status(), 1);
        assert_eq!(AdminFailure::Unasked(RuntimeError::daemon("no socket")).exit_status(), 1);
        assert_eq!(AdminFailure::Unasked(RuntimeError::usage("stdin is not a terminal")).exit_status(), 2);
    }
}
