//! `failoverd demo`: a two-node MDS pair fails over inside one process, on a fresh machine with nothing but a
//! Rust toolchain.
//!
//! What is real: two daemons (mds1 and mds2), each the same [`Daemon`] as `failoverd run` with its engine,
//! its state directory, its control socket and two UDP heartbeat sockets on 127.0.0.1 (links `ring0` and
//! `ring1`, authenticated datagrams, the real codec); the fence and storage command lines the engine builds
//! and the parsers that judge their output. What is simulated: the hardware those commands act on. Instead
//! of spawning `zpool` or `ipmitool`, each daemon hands its commands to a `SimExecutor`, which answers them
//! from the simulator's shared SAN ([`SharedStorage`]) and power hardware ([`Hardware`]): one of each for the
//! pair, behind a mutex, in real time. A command begins now, its simulated duration is slept for real, and it
//! finishes against the state of that moment.
//!
//! The run:
//! 1. mds1 holds MGT (`mgspool/mgt`) and MDT0000 (`mdt0pool/mdt0`), imported and mounted. Both daemons start,
//!    see each other on both links and discover their storage; the demo shows both nodes' status.
//! 2. A few seconds later mds1 fails: by default its power fails (`--fault power-loss`; its BMC still
//!    answers on standby power), or its kernel hangs with the power on (`--fault hang`), and then it is
//!    mds2's fence that powers it off. Either way mds1's daemon stops: its task is aborted, which drops its
//!    engine, control socket and links (each link's socket closes as soon as its receive task sees the next
//!    datagram). A host that loses power is also marked unpowered in the SAN: its imports and mounts vanish.
//! 3. mds2 declares mds1 dead, waits `fence_delay` (it has the lower `fence_priority`), fences mds1 through
//!    its BMC and confirms it off, then takes MGT and then MDT0000 over with the forced sequence: zdb label
//!    check, `zpool import -f`, checks, mount, verification. Each step is printed as it happens, in
//!    milliseconds since mds1 failed.
//! 4. A final status table (mds2's view from its control socket, plus the SAN's own record of imports and
//!    mounts). The demo exits 0 only if both targets run on mds2, verified, and the SAN never saw a pool
//!    imported or a target mounted on two powered hosts, nor a forced import while the pool's last owner was
//!    still powered.
//!
//! The simulated MMP activity check (20–25 s on real OpenZFS) is shortened to [`DEMO_ACTIVITY_CHECK`], and
//! the demo says so. Everything is bounded by [`HARD_TIMEOUT`]; the temporary directory (state, control
//! sockets, configuration) is removed at the end, also on failure.


/// `println!` that never panics: the demo goes on (and cleans up) when its reader has gone away
/// (`failoverd demo | head`); the text is for a human only.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that never panics (see `outln!`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::UdpSocket;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use crate::command::{Command, CommandResult, Exit};
use crate::config::Config;
use crate::engine::{Event, Status};
use crate::protocol::Keys;
use crate::sim::checker;
use crate::sim::hardware::{HwOp, Hardware, PowerEffect};
use crate::sim::storage::{PendingOp, PoolSpec, PoolStart, SharedStorage, StorageTiming};
use crate::storage::parse::parse_zdb_mos_config;
use crate::storage::SequenceKind;
use crate::time::Time;

use crate::runtime::clock::Clock;
use crate::runtime::daemon::Daemon;
use crate::runtime::exec::{Executor, Label};
use crate::runtime::logging::{self, LogFormat};

/// The whole demo is stopped (and fails) if it has not finished after this long.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(60);

/// The simulated MMP activity check of a forced import, instead of OpenZFS's 20–25 s.
pub const DEMO_ACTIVITY_CHECK: Duration = Duration::from_secs(5);

/// How long the pair may take to start, see each other and discover its storage.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the settled pair runs (heartbeating, mds1 serving) before mds1 fails.
const STEADY: Duration = Duration::from_secs(2);

/// How often the demo asks the daemons for their status while it waits for something.
const POLL: Duration = Duration::from_millis(100);

/// Attempts at binding the UDP ports (free ports are picked first, but another program may take one).
const START_ATTEMPTS: usize = 5;

/// Seed of the simulated hardware's random latencies: the same draws every run.
const SEED: u64 = 0x00de_4d0f_a110_7e25;

/// Heartbeat timing of the demo cluster (the production defaults are 250 ms and 3 s).
const HEARTBEAT_INTERVAL_MS: u64 = 100;
const DEAD_AFTER_MS: u64 = 500;
const STALL_THRESHOLD_MS: u64 = 400;
const FENCE_DELAY_MS: u64 = 2000;

/// The node that fails and the node that takes over.
const VICTIM: &str = "mds1";
const SURVIVOR: &str = "mds2";

/// One node of the demo pair.
struct NodeSpec {
    name: &'static str,
    hostid: u32,
    fence_priority: u32,
    /// Address of its simulated BMC (a documentation address: nothing is sent there).
    bmc: &'static str,
}

const NODES: [NodeSpec; 2] = [
    NodeSpec { name: VICTIM, hostid: 0xa1b2_c3d4, fence_priority: 10, bmc: "192.0.2.1" },
    NodeSpec { name: SURVIVOR, hostid: 0xb2c3_d4e5, fence_priority: 5, bmc: "192.0.2.2" },
];

/// What happens to mds1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoFault {
    /// mds1's power fails (its BMC still answers on standby power); mds2 fences it and finds it off.
    PowerLoss,
    /// mds1's kernel hangs with the power on; mds2's fence is what powers it off.
    Hang,
}

/// `failoverd demo`: options.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// What happens to mds1 a few seconds after the pair started.
    #[arg(long, value_enum, default_value_t = DemoFault::PowerLoss)]
    pub fault: DemoFault,
    /// Set both daemons' `cluster.notify` to this program: see what on-call would receive (one JSON event on
    /// stdin per run, README "Events").
    #[arg(long, value_name = "PROGRAM")]
    pub notify: Option<PathBuf>,
}

/// `failoverd demo`: run the demo, print its timeline and final status; exit 0 when mds2 took both targets
/// over and verified them without breaking a safety rule.
pub fn run(args: DemoArgs) -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        logging::init(Some(LogFormat::Human));
    }
    let began = std::time::Instant::now();
    let dir = match DemoDir::create() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("failoverd demo: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("failoverd demo: cannot start the event loop: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(demo(dir.path(), args.fault, args.notify.as_deref()));
    // Stops both daemons' loops, their receive tasks and every simulated command still sleeping: every
    // socket is closed before the directory that holds the control sockets is removed.
    runtime.shutdown_timeout(Duration::from_millis(200));
    drop(dir);
    let took = began.elapsed().as_secs_f64();
    match outcome {
        Ok(summary) => {
            outln!("RESULT: ok: {summary}");
            outln!("demo finished in {took:.1} s");
            ExitCode::SUCCESS
        }
        Err(why) => {
            outln!("RESULT: FAILED: {why}");
            outln!("demo finished in {took:.1} s");
            eprintln!("failoverd demo: failed: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The demo inside the runtime: start, fail mds1, watch, judge. `Ok` carries the one-line summary.
async fn demo(dir: &Path, fault: DemoFault, notify: Option<&Path>) -> Result<String, String> {
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let lab = Lab::new(notes_tx)?;
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let keys = Keys::new(key, None);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let pair = start_pair(dir, &keys, &lab, &events_tx, notify).await?;
    drop(events_tx);
    print_header(&pair, fault);

    let mut show = Show::new(&pair, lab.clone(), events_rx, notes_rx);
    let played = tokio::select! {
        r = tokio::time::timeout(HARD_TIMEOUT.saturating_sub(lab.clock.now().since(Time::ZERO)), show.play(fault)) => match r {
            Ok(r) => r,
            Err(_) => Err(format!("not finished within {} s: {}", HARD_TIMEOUT.as_secs(), show.missing())),
        },
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    if let Err(e) = &played {
        outln!("\n!! {e}");
    }
    let verdict = show.final_report().await;
    for node in &pair.nodes {
        node.join.abort();
    }
    played.and(verdict)
}

// ----- the temporary directory -------------------------------------------------------------------------------

/// A private temporary directory (mode 0700) for the daemons' state, configuration and control sockets,
/// removed with everything in it when dropped.
struct DemoDir {
    path: PathBuf,
}

impl DemoDir {
    fn create() -> std::io::Result<DemoDir> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let mut last = None;
        for attempt in 0..16u32 {
            let path = base.join(format!("failoverd-demo-{}-{nanos:x}-{attempt}", std::process::id()));
            // create, not create_all: never reuse something that is already there
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(DemoDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("failoverd demo: cannot remove {}: {e}", self.path.display());
        }
    }
}

// ----- the simulated world ---------------------------------------------------------------------------------

/// The simulated hardware both daemons' commands act on, with the real clock mapped to the simulator's
/// [`Time`] (zero when the lab was built).
struct Lab {
    clock: Clock,
    world: Mutex<World>,
    notes: mpsc::UnboundedSender<Note>,
}

/// The state behind the lab's mutex.
struct World {
    storage: SharedStorage,
    hardware: Hardware,
    rng: ChaCha8Rng,
    /// The running daemons' tasks, so that a power loss stops them.
    daemons: BTreeMap<String, AbortHandle>,
    /// Safety rules the SAN saw broken, each once.
    violations: Vec<String>,
}

/// What the lab tells the timeline.
#[derive(Debug)]
enum Note {
    /// A command finished (or was cut short because its host lost power).
    Command { at: Instant, label: Label, command: String, result: CommandResult },
    /// A host's power changed.
    Power { at: Instant, node: String, on: bool, cause: String },
    /// A host hung (`--fault hang`).
    Hung { at: Instant, node: String },
    /// A safety rule was broken.
    Violation { at: Instant, what: String },
}

/// A command in flight in the lab.
enum Op {
    Storage(PendingOp),
    Hardware(HwOp),
}

impl Lab {
    /// mds1 and mds2 on one SAN with `mgspool` (MGT) and `mdt0pool` (MDT0000) imported and mounted on mds1,
    /// each node with a BMC; the MMP activity check shortened to [`DEMO_ACTIVITY_CHECK`].
    fn new(notes: mpsc::UnboundedSender<Note>) -> Result<Arc<Lab>, String> {
        let mut storage = SharedStorage::new();
        storage.timing = StorageTiming { activity_check: Some(DEMO_ACTIVITY_CHECK), ..StorageTiming::default() };
        storage.epoch_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        storage.mgs_nid = "127.0.0.1@tcp".into();
        let mut hardware = Hardware::new();
        let setup = |what: &str, e: &dyn std::fmt::Display| format!("simulated hardware: {what}: {e}");
        for n in &NODES {
            storage.add_host(n.name, n.hostid).map_err(|e| setup("add host", &e))?;
            hardware.add_node(n.name).map_err(|e| setup("add node", &e))?;
            hardware.add_bmc(&format!("{}:623", n.bmc), n.name).map_err(|e| setup("add BMC", &e))?;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        for (i, t) in demo_targets().iter().enumerate() {
            let spec = PoolSpec::new(t.pool, 0x5eed_0000_0000_0001 + i as u64).multihost(true).target(t.dataset, t.lctl_device);
            storage.add_pool(spec, PoolStart::ImportedOn(VICTIM.into()), Time::ZERO).map_err(|e| setup("add pool", &e))?;
            for argv in [vec!["mkdir", "-p", t.mountpoint], vec!["mount", "-t", "lustre", t.dataset, t.mountpoint]] {
                let cmd = Command::new(argv, Duration::from_secs(300));
                let p = storage.begin(VICTIM, &cmd, Time::ZERO, &mut rng);
                let r = storage.finish(VICTIM, p.op, Time::ZERO);
                if !r.success() {
                    return Err(format!("simulated hardware: `{}` on {VICTIM}: {}", cmd.display(), r.summary()));
                }
            }
        }
        let world = World { storage, hardware, rng, daemons: BTreeMap::new(), violations: Vec::new() };
        Ok(Arc::new(Lab { clock: Clock::start(), world: Mutex::new(world), notes }))
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // a panic while holding the lock leaves a consistent model (every change is one call): keep going
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run one command of `host` against the models: begin now, sleep until it finishes, finish it then.
    async fn execute(self: Arc<Lab>, host: String, command: Command, label: Label) -> CommandResult {
        let started = self.clock.now();
        let (finish_at, op) = {
            let mut guard = self.lock();
            let w = &mut *guard;
            if !w.running(&host) {
                return killed(Duration::ZERO);
            }
            if Hardware::handles(&command) {
                let p = w.hardware.begin(&host, &command, started, &mut w.rng);
                (p.finish_at, Op::Hardware(p.op))
            } else {
                if let Some(v) = w.forced_import_too_early(&host, &command) {
                    self.violation(w, v);
                }
                let p = w.storage.begin(&host, &command, started, &mut w.rng);
                (p.finish_at, Op::Storage(p.op))
            }
        };
        tokio::time::sleep_until(self.clock.instant_of(finish_at)).await;
        let result = {
            let mut guard = self.lock();
            let w = &mut *guard;
            let now = self.clock.now().max(finish_at);
            if !w.running(&host) {
                // the host lost power (or hung) meanwhile: the command never completed, and nobody hears of it
                return killed(now.since(started));
            }
            let result = match op {
                Op::Storage(op) => w.storage.finish(&host, op, now),
                Op::Hardware(op) => {
                    let (result, effects) = w.hardware.finish(op, now);
                    let cause = format!("{host}'s fence: `{}`", command.argv[command.argv.len().saturating_sub(3)..].join(" "));
                    self.apply_power(w, &effects, now, &cause);
                    result
                }
            };
            self.check_invariants(w);
            result
        };
        let _ = self.notes.send(Note::Command { at: Instant::now(), label, command: command.display(), result: result.clone() });
        result
    }

    /// Carry out power changes: a host that lost power stops (its daemon's task is aborted, see the module
    /// doc) and its imports and mounts vanish from the SAN.
    fn apply_power(&self, w: &mut World, effects: &[PowerEffect], now: Time, cause: &str) {
        for e in effects {
            w.storage.set_powered(&e.node, e.powered, now);
            if !e.powered {
                if let Some(task) = w.daemons.remove(&e.node) {
                    task.abort();
                }
            }
            let _ = self.notes.send(Note::Power { at: Instant::now(), node: e.node.clone(), on: e.powered, cause: cause.to_string() });
        }
    }

    /// mds1 fails as `fault` says.
    fn fail(&self, node: &str, fault: DemoFault) {
        let mut guard = self.lock();
        let w = &mut *guard;
        let now = self.clock.now();
        match fault {
            DemoFault::PowerLoss => {
                let effects = w.hardware.set_chassis(node, false);
                self.apply_power(w, &effects, now, "simulated power failure");
            }
            DemoFault::Hang => {
                // a hung kernel runs nothing: no daemon, no MMP writes, but the power stays on
                w.storage.set_frozen(node, true, now);
                if let Some(task) = w.daemons.remove(node) {
                    task.abort();
                }
                let _ = self.notes.send(Note::Hung { at: Instant::now(), node: node.to_string() });
            }
        }
        self.check_invariants(w);
    }

    fn check_invariants(&self, w: &mut World) {
        for v in checker::storage_invariants(&w.storage) {
            self.violation(w, v);
        }
    }

    fn violation(&self, w: &mut World, what: String) {
        if !w.violations.contains(&what) {
            w.violations.push(what.clone());
            let _ = self.notes.send(Note::Violation { at: Instant::now(), what });
        }
    }

    /// The SAN's own record of one target: where its pool is imported, where it is mounted.
    fn placement(&self, t: &DemoTarget) -> (Vec<String>, Vec<String>) {
        let w = self.lock();
        let imported = w.storage.holders(t.pool);
        let mounted = NODES
            .iter()
            .filter(|n| w.powered(n.name) && w.storage.mounts(n.name).iter().any(|m| m.mountpoint == t.mountpoint && !m.stale))
            .map(|n| n.name.to_string())
            .collect();
        (imported, mounted)
    }

    fn powered(&self, node: &str) -> bool {
        self.lock().powered(node)
    }

    fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }
}

impl World {
    fn powered(&self, node: &str) -> bool {
        self.storage.host(node).is_some_and(|h| h.powered)
    }

    /// Powered and not hung: the host runs commands.
    fn running(&self, node: &str) -> bool {
        self.storage.host(node).is_some_and(|h| h.powered && h.frozen_since.is_none())
    }

    /// Rule 2 as the hardware sees it (the demo's SAN knows power, not fence confirmations): see
    /// [`checker::forced_import_after_fence`].
    fn forced_import_too_early(&self, host: &str, cmd: &Command) -> Option<String> {
        checker::forced_import_after_fence(&self.storage, host, cmd, |owner| !self.hardware.node_powered(owner), "still powered")
    }
}

/// A command cut short because its host lost power.
fn killed(ran: Duration) -> CommandResult {
    CommandResult { exit: Exit::Signal(9), stdout: String::new(), stderr: String::new(), duration: ran }
}

/// The [`Executor`] of one demo node: its commands act on the lab's simulated hardware, not on this machine.
struct SimExecutor {
    node: String,
    lab: Arc<Lab>,
}

impl Executor for SimExecutor {
    fn execute(&self, command: Command, label: Label) -> std::pin::Pin<Box<dyn std::future::Future<Output = CommandResult> + Send>> {
        Box::pin(self.lab.clone().execute(self.node.clone(), command, label))
    }
}

// ----- the cluster -----------------------------------------------------------------------------------------

/// One target of the demo cluster.
struct DemoTarget {
    name: &'static str,
    pool: &'static str,
    dataset: &'static str,
    mountpoint: &'static str,
    lctl_device: &'static str,
    start_order: i32,
}

fn demo_targets() -> [DemoTarget; 2] {
    [
        DemoTarget { name: "MGT", pool: "mgspool", dataset: "mgspool/mgt", mountpoint: "/lustre/mgt", lctl_device: "MGS", start_order: 0 },
        DemoTarget {
            name: "MDT0000",
            pool: "mdt0pool",
            dataset: "mdt0pool/mdt0",
            mountpoint: "/lustre/mdt0",
            lctl_device: "lustre-MDT0000",
            start_order: 1,
        },
    ]
}

/// The configuration of `node`: the same cluster-wide settings for both, its own state directory and control
/// socket. `ports[i]` are node i's ports on ring0 and ring1.
fn config_text(dir: &Path, node: &str, ports: &[[u16; 2]; 2]) -> String {
    let nd = dir.join(node);
    let uid = nix::unistd::getuid().as_raw();
    let allowed = if uid == 0 { String::new() } else { uid.to_string() };
    let mut s = format!(
        "# written by `failoverd demo`; the key is generated in memory and handed to the daemons (key_file is not read)\n\
         [cluster]\nname = \"demo\"\nkey_file = \"{key}\"\nlinks = [\"ring0\", \"ring1\"]\n\
         heartbeat_interval = \"{HEARTBEAT_INTERVAL_MS}ms\"\ndead_after = \"{DEAD_AFTER_MS}ms\"\n\
         stall_threshold = \"{STALL_THRESHOLD_MS}ms\"\nfence_delay = \"{FENCE_DELAY_MS}ms\"\nwait_for_all = true\n\
         state_dir = \"{state}\"\ncontrol_socket = \"{socket}\"\ncontrol_allowed_uids = [{allowed}]\n\n",
        key = dir.join("cluster.key").display(),
        state = nd.join("state").display(),
        socket = nd.join("control.sock").display(),
    );
    for (n, p) in NODES.iter().zip(ports) {
        let _ = write!(
            s,
            "[[node]]\nname = \"{name}\"\naddresses = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\nhostid = \"{:08x}\"\n\
             fence_priority = {}\nfence_levels = [[\"{name}-ipmi\"]]\n\n\
             [[fence_device]]\nname = \"{name}-ipmi\"\nkind = \"ipmi\"\nhost = \"{}\"\nusername = \"admin\"\n\
             password_file = \"{}\"\n\n",
            p[0],
            p[1],
            n.hostid,
            n.fence_priority,
            n.bmc,
            dir.join(format!("{}-bmc.pw", n.name)).display(),
            name = n.name,
        );
    }
    for t in demo_targets() {
        let _ = write!(
            s,
            "[[target]]\nname = \"{}\"\nkind = \"zfs\"\npool = \"{}\"\ndataset = \"{}\"\nmountpoint = \"{}\"\n\
             nodes = [\"{VICTIM}\", \"{SURVIVOR}\"]\nstart_order = {}\nlctl_device = \"{}\"\n\n",
            t.name, t.pool, t.dataset, t.mountpoint, t.start_order, t.lctl_device
        );
    }
    s
}

/// Ports that were free a moment ago on 127.0.0.1 (held together, so they differ).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let held: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot bind a UDP socket on 127.0.0.1: {e}"))?;
    held.iter().map(|s| s.local_addr().map(|a| a.port()).map_err(|e| e.to_string())).collect()
}

/// A running demo daemon.
struct NodeRun {
    name: &'static str,
    socket: PathBuf,
    join: JoinHandle<crate::runtime::Result<()>>,
}

/// Both daemons, running.
struct Pair {
    nodes: Vec<NodeRun>,
    ports: [[u16; 2]; 2],
    cfg: Arc<Config>,
}

/// Start mds1 and mds2 (the real [`Daemon`], with a [`SimExecutor`] and an event observer) and spawn their
/// loops.
async fn start_pair(
    dir: &Path,
    keys: &Keys,
    lab: &Arc<Lab>,
    events: &mpsc::UnboundedSender<(String, Event)>,
    notify: Option<&Path>,
) -> Result<Pair, String> {
    let mut last = String::new();
    for _ in 0..START_ATTEMPTS {
        let p = free_ports(4)?;
        let ports = [[p[0], p[1]], [p[2], p[3]]];
        let mut started = Vec::new();
        let mut bind_failed = None;
        for n in &NODES {
            let mut text = config_text(dir, n.name, &ports);
            if let Some(program) = notify {
                let program = std::path::absolute(program).unwrap_or_else(|_| program.to_path_buf());
                text = text.replacen("[cluster]\n", &format!("[cluster]\nnotify = {:?}\n", program.display().to_string()), 1);
            }
            let cfg = Config::from_toml_str(&text).map_err(|e| format!("the demo's own configuration is invalid (a bug): {e}"))?;
            let nd = dir.join(n.name);
            std::fs::create_dir_all(&nd).map_err(|e| format!("cannot create {}: {e}", nd.display()))?;
            let path = nd.join("failoverd.toml");
            std::fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let cfg = Arc::new(cfg);
            match Daemon::start(cfg.clone(), keys.clone(), n.name, &path).await {
                Ok(d) => started.push((n.name, d, cfg)),
                Err(e) if e.to_string().contains("cannot bind UDP") => {
                    bind_failed = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(format!("{}: {e}", n.name)),
            }
        }
        if let Some(e) = bind_failed {
            last = e;
            continue;
        }
        let mut nodes = Vec::new();
        let mut cfg_out = None;
        let mut w = lab.lock();
        for (name, daemon, cfg) in started {
            let exec = Arc::new(SimExecutor { node: name.to_string(), lab: lab.clone() });
            let daemon = daemon.with_executor(exec).with_event_observer(events.clone());
            let join = tokio::spawn(daemon.run());
            w.daemons.insert(name.to_string(), join.abort_handle());
            nodes.push(NodeRun { name, socket: cfg.cluster.control_socket.clone(), join });
            cfg_out = Some(cfg);
        }
        let cfg = cfg_out.ok_or("no node started")?;
        return Ok(Pair { nodes, ports, cfg });
    }
    Err(format!("could not bind the demo's UDP ports in {START_ATTEMPTS} attempts: {last}"))
}

/// A node's status, asked through its control socket (as `failoverd status` does).
async fn status_of(socket: &Path) -> Result<Status, String> {
    let socket = socket.to_path_buf();
    let reply = tokio::task::spawn_blocking(move || crate::runtime::cli::request(&socket, &json!({ "request": "status" }), Duration::from_secs(2)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if reply["ok"] != json!(true) {
        return Err(reply["error"].as_str().unwrap_or("refused").to_string());
    }
    serde_json::from_value(reply["status"].clone()).map_err(|e| format!("unreadable status: {e}"))
}

fn print_header(pair: &Pair, fault: DemoFault) {
    let [p1, p2] = pair.ports;
    let targets = demo_targets();
    outln!("failoverd demo: a two-node MDS pair in one process, on 127.0.0.1");
    outln!();
    outln!("  nodes      {VICTIM} (fence_priority {}) ring0 udp/{} ring1 udp/{}", NODES[0].fence_priority, p1[0], p1[1]);
    outln!("             {SURVIVOR} (fence_priority {}) ring0 udp/{} ring1 udp/{}", NODES[1].fence_priority, p2[0], p2[1]);
    outln!(
        "  timing     heartbeat_interval {HEARTBEAT_INTERVAL_MS} ms, dead_after {DEAD_AFTER_MS} ms, fence_delay {FENCE_DELAY_MS} ms"
    );
    for t in &targets {
        outln!("  target     {:<8} {} on {} (lctl {}, start_order {}), held by {VICTIM}", t.name, t.dataset, t.mountpoint, t.lctl_device, t.start_order);
    }
    outln!("  fencing    one IPMI BMC per node (ipmitool chassis power off, then status until it reads off)");
    outln!("  real       both daemons: engine, UDP heartbeats (HMAC-SHA256, fresh random key), state dirs, control sockets,");
    outln!("             the exact fence and storage command lines and the parsers that judge their output");
    outln!("  simulated  what those commands act on: the shared pools and Lustre mounts (zdb, zpool, zfs, mount, df, lctl)");
    outln!("             and the power (chassis, BMCs), answered in the real tools' formats, in real time");
    outln!(
        "  (simulated MMP activity check shortened from ~20-25 s to {} s for the demo)",
        DEMO_ACTIVITY_CHECK.as_secs()
    );
    outln!();
    let what = match fault {
        DemoFault::PowerLoss => format!("{VICTIM}'s power fails (its BMC stays reachable on standby power)"),
        DemoFault::Hang => format!("{VICTIM}'s kernel hangs with the power on"),
    };
    outln!("plan: let the pair settle, then {what}; {SURVIVOR} must detect it, fence {VICTIM} and take both targets over.");
    outln!(
        "      {SURVIVOR} has the lower fence_priority: with two nodes and no witness it cannot tell a dead peer from a network\n      \
         partition, so it waits fence_delay ({} s) before fencing; in a real partition {VICTIM} would fence first and win.",
        FENCE_DELAY_MS / 1000
    );
    outln!();
}

// ----- the show --------------------------------------------------------------------------------------------

/// Drives the scenario and turns events and command results into the timeline.
struct Show {
    lab: Arc<Lab>,
    cfg: Arc<Config>,
    sockets: BTreeMap<&'static str, PathBuf>,
    daemons: BTreeMap<&'static str, AbortHandle>,
    events: mpsc::UnboundedReceiver<(String, Event)>,
    notes: mpsc::UnboundedReceiver<Note>,
    /// When mds1 failed: the timeline's zero.
    t0: Option<Instant>,
    /// (node, target) → the command of the step in progress.
    step_commands: BTreeMap<(String, String), String>,
    /// (node, label step) → the last result of that command.
    results: BTreeMap<(String, String, String), CommandResult>,
    /// Targets verified running on the survivor since the failure, with the takeover's duration.
    taken_over: BTreeMap<String, u64>,
    /// Something that stops the demo at once (a blocked target, a dead survivor).
    fatal: Option<String>,
    /// When the last takeover was verified, in ms since the failure.
    verified_at_ms: Option<u64>,
    /// What happened when, in ms since the failure, for the summary line.
    milestones: Vec<(String, u64)>,
}

impl Show {
    fn new(pair: &Pair, lab: Arc<Lab>, events: mpsc::UnboundedReceiver<(String, Event)>, notes: mpsc::UnboundedReceiver<Note>) -> Show {
        let sockets = pair.nodes.iter().map(|n| (n.name, n.socket.clone())).collect();
        let daemons = pair.nodes.iter().map(|n| (n.name, n.join.abort_handle())).collect();
        Show {
            lab,
            cfg: pair.cfg.clone(),
            sockets,
            daemons,
            events,
            notes,
            t0: None,
            step_commands: BTreeMap::new(),
            results: BTreeMap::new(),
            taken_over: BTreeMap::new(),
            fatal: None,
            verified_at_ms: None,
            milestones: Vec::new(),
        }
    }

    /// Settle, fail mds1, follow the takeover until both targets are verified on mds2.
    async fn play(&mut self, fault: DemoFault) -> Result<(), String> {
        let settled_at = self.settle().await?;
        let cut_at = settled_at + STEADY;
        outln!("the pair runs for {} s: heartbeats on both links, {VICTIM} serving MGT and MDT0000 ...", STEADY.as_secs());
        self.pump_until(cut_at).await;
        if let Some(f) = self.fatal.take() {
            return Err(f);
        }
        outln!();
        outln!("timeline (ms since {VICTIM} failed):");
        self.t0 = Some(Instant::now());
        self.lab.fail(VICTIM, fault);
        loop {
            self.pump_until(Instant::now() + POLL).await;
            if let Some(f) = self.fatal.take() {
                return Err(f);
            }
            if self.daemon_stopped(SURVIVOR) {
                return Err(format!("{SURVIVOR}'s daemon stopped"));
            }
            if demo_targets().iter().all(|t| self.taken_over.contains_key(t.name)) {
                return Ok(());
            }
        }
    }

    /// Wait until both daemons have quorum, have seen each other, finished discovery and agree that mds1
    /// runs both targets; then print their status. Returns when that was.
    async fn settle(&mut self) -> Result<Instant, String> {
        let start = Instant::now();
        let deadline = start + SETTLE_TIMEOUT;
        let mut last_problem = String::from("no status yet");
        while Instant::now() < deadline {
            self.pump_until(Instant::now() + POLL).await;
            if let Some(f) = self.fatal.take() {
                return Err(f);
            }
            match self.statuses().await {
                Ok(statuses) => match settled(&statuses) {
                    Ok(()) => {
                        outln!("the pair settled {} ms after start:", self.lab.clock.now().as_millis());
                        out!("{}", self.table(&statuses));
                        outln!();
                        return Ok(Instant::now());
                    }
                    Err(p) => last_problem = p,
                },
                Err(e) => last_problem = e,
            }
        }
        Err(format!("the pair did not settle within {} s: {last_problem}", SETTLE_TIMEOUT.as_secs()))
    }

    /// The status of every node whose daemon runs (None for the others).
    async fn statuses(&self) -> Result<Vec<(&'static str, Option<Status>)>, String> {
        let mut out = Vec::new();
        for n in &NODES {
            if self.daemon_stopped(n.name) {
                out.push((n.name, None));
                continue;
            }
            let socket = &self.sockets[n.name];
            let s = status_of(socket).await.map_err(|e| format!("{}: {e}", n.name))?;
            out.push((n.name, Some(s)));
        }
        Ok(out)
    }

    fn daemon_stopped(&self, node: &str) -> bool {
        self.daemons.get(node).is_none_or(AbortHandle::is_finished)
    }

    /// Handle events and lab notes as they come, until `until`.
    async fn pump_until(&mut self, until: Instant) {
        loop {
            tokio::select! {
                Some((node, event)) = self.events.recv() => {
                    // the lab's note of a command always precedes the event its result causes
                    while let Ok(note) = self.notes.try_recv() {
                        self.on_note(note);
                    }
                    self.on_event(&node, event, Instant::now());
                }
                Some(note) = self.notes.recv() => self.on_note(note),
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }

    /// Milliseconds from the failure to `at` (0 before it).
    fn since_t0(&self, at: Instant) -> u64 {
        self.t0.map_or(0, |t0| at.saturating_duration_since(t0).as_millis() as u64)
    }

    fn stamp(&self, at: Instant) -> String {
        match self.t0 {
            Some(t0) => format!("+{:>6} ms", at.saturating_duration_since(t0).as_millis()),
            None => format!("{:>9}", "(start)"),
        }
    }

    fn line(&self, at: Instant, node: &str, text: &str) {
        outln!("  {}  {node:<5} {text}", self.stamp(at));
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::Command { at, label, command, result } => {
                if label.purpose == "fence" && self.t0.is_some() {
                    let answer = first_line(&result.stdout).or_else(|| first_line(&result.stderr)).unwrap_or("(no output)");
                    let text = format!("  `{command}` -> {answer} ({} ms)", result.duration.as_millis());
                    self.line(at, &label.node, &text);
                }
                self.results.insert((label.node.clone(), label.target.clone(), label.step.clone()), result);
            }
            Note::Power { at, node, on, cause } => {
                let text = if on {
                    format!("powered on ({cause}); the demo does not boot it again")
                } else {
                    format!("POWER OFF ({cause}): the host stops, and its daemon with it")
                };
                self.line(at, &node, &text);
            }
            Note::Hung { at, node } => {
                self.line(at, &node, "HUNG (simulated kernel hang): its daemon stops answering and sending, the power stays on");
            }
            Note::Violation { at, what } => {
                self.line(at, "SAN", &format!("!! SAFETY RULE BROKEN: {what}"));
            }
        }
    }

    fn on_event(&mut self, node: &str, event: Event, at: Instant) {
        if self.t0.is_none() {
            // before the failure only trouble is worth a line
            if event.severity() >= crate::engine::Severity::Warning {
                self.line(at, node, &format!("!! {}", serde_json::to_string(&event).unwrap_or_else(|_| event.name())));
            }
            if let Event::TargetBlocked { target, reason } = &event {
                self.fatal = Some(format!("{node}: {target} blocked: {reason}"));
            }
            return;
        }
        let links = &self.cfg.cluster.links;
        let text = match event {
            Event::LinkDown { node: peer, link } => Some(format!("link {} to {peer} down", links.get(link).map_or("?", String::as_str))),
            Event::LinkUp { node: peer, link } => Some(format!("link {} to {peer} up", links.get(link).map_or("?", String::as_str))),
            Event::PeerDead { node: peer, silent_ms } => {
                self.milestones.push((format!("{peer} declared dead"), self.since_t0(at)));
                Some(format!("{peer} declared dead: silent on {} for {silent_ms} ms (dead_after {DEAD_AFTER_MS} ms)", links.join(" and ")))
            }
            Event::QuorumGained { votes, total } => Some(format!("quorum: {votes} of {total} votes (two-node rule)")),
            Event::QuorumLost { reason } => Some(format!("!! quorum lost: {reason}")),
            Event::FenceDelayed { node: victim, delay_ms } => Some(format!(
                "fence of {victim} delayed {delay_ms} ms: {node} has the lower fence_priority, {victim} gets the first shot in a partition"
            )),
            Event::FenceStarted { node: victim, action, attempt, .. } => {
                Some(format!("fence started: power {} {victim} (attempt {attempt})", format!("{action:?}").to_lowercase()))
            }
            Event::FenceStatus { node: victim, power } => Some(format!("{victim}'s BMC reads power {power}")),
            Event::FenceLevelFailed { node: victim, level, error } => Some(format!("!! fence level {level} of {victim} failed: {error}")),
            Event::FenceFailed { node: victim, attempt, retry_in_ms, .. } => {
                Some(format!("!! fencing {victim} failed (attempt {attempt}); retrying in {retry_in_ms} ms"))
            }
            Event::FenceConfirmed { node: victim, level, devices, .. } => {
                self.milestones.push(("fence confirmed".to_string(), self.since_t0(at)));
                Some(format!("fence confirmed: {victim} is off ({} at level {level}: off sent, status read back off)", devices.join(" + ")))
            }
            Event::SequenceStarted { target, sequence, from } => Some(match from {
                Some(from) => format!("{target}: {} takeover from {from} starts", sequence_name(sequence)),
                None => format!("{target}: {} sequence starts", sequence_name(sequence)),
            }),
            Event::StepStarted { target, step, command, .. } => {
                let forced = command.split_whitespace().any(|a| a == "-f");
                let text = (step == crate::storage::Step::Import).then(|| {
                    let why = if forced { " (-f: the label is ACTIVE and names the fenced host)" } else { "" };
                    format!("{target}  import: `{command}`{why}, MMP activity check running ...")
                });
                self.step_commands.insert((node.to_string(), target), command);
                text
            }
            Event::StepDone { target, sequence, step, ms } => Some(self.step_text(node, &target, sequence, step.name(), ms)),
            Event::ImportWaiting { target, waiting_for } => Some(format!(
                "{target}  label checked; the import waits for {} (OpenZFS runs one MMP activity check at a time)",
                waiting_for.join(", ")
            )),
            Event::SequenceDone { target, sequence: SequenceKind::Forced | SequenceKind::Acquire, ms } if node == SURVIVOR => {
                let since = self.since_t0(at);
                self.taken_over.insert(target.clone(), ms);
                self.milestones.push((format!("{target} verified"), since));
                self.verified_at_ms = Some(since);
                Some(format!("{target}: VERIFIED, running on {node} ({ms} ms for the sequence)"))
            }
            Event::SequenceFailed { target, error, .. } => Some(format!("!! {target}: sequence failed: {error}")),
            Event::TargetBlocked { target, reason } => {
                self.fatal = Some(format!("{node}: {target} blocked: {reason}"));
                Some(format!("!! {target} blocked: {reason}"))
            }
            other if other.severity() >= crate::engine::Severity::Warning => {
                Some(format!("!! {}", serde_json::to_string(&other).unwrap_or_else(|_| other.name())))
            }
            _ => None,
        };
        if let Some(text) = text {
            self.line(at, node, &text);
        }
    }

    /// One finished step of a storage sequence, with what its output showed.
    fn step_text(&self, node: &str, target: &str, sequence: SequenceKind, step: &str, ms: u64) -> String {
        let command = self.step_commands.get(&(node.to_string(), target.to_string())).cloned().unwrap_or_default();
        let label_step = format!("{}/{step}", format!("{sequence:?}").to_lowercase());
        let result = self.results.get(&(node.to_string(), target.to_string(), label_step));
        let stdout = result.map_or("", |r| r.stdout.as_str());
        let t = demo_targets().into_iter().find(|t| t.name == target);
        let detail = match step {
            "zdb-check" => match parse_zdb_mos_config(stdout) {
                Ok(l) => {
                    let whose = if l.hostname == VICTIM { "the fenced host" } else if l.hostname == node { "this host" } else { "another host" };
                    format!(
                        "zdb check: `{command}`: label last imported by {} (hostid {:08x}), state {}: {whose}",
                        l.hostname,
                        l.hostid_or_zero(),
                        l.state
                    )
                }
                Err(_) => format!("zdb check: `{command}`"),
            },
            "import" => {
                let pool = t.map_or("the pool", |t| t.pool);
                format!("import done: {pool} imported on {node}")
            }
            "pool-status" => format!("pool status: `{command}`: {}", first_line(stdout).unwrap_or("")),
            "dataset" => format!("dataset: `{command}`: listed"),
            "mount" => format!("mount: `{command}`"),
            "verify-df" => {
                let shown = t.and_then(|t| stdout.lines().find(|l| l.contains(t.mountpoint))).map(str::trim);
                format!("verified: `{command}`: {}", shown.map(squeeze).unwrap_or_default())
            }
            "verify-lctl" => {
                let shown = t.and_then(|t| stdout.lines().find(|l| l.split_whitespace().any(|w| w == t.lctl_device)));
                format!("verified: `{command}`: {}", shown.map(squeeze).unwrap_or_default())
            }
            other => format!("{other}: `{command}`"),
        };
        format!("{target}  {detail} ({ms} ms)")
    }

    /// What is still missing for success, for a timeout message.
    fn missing(&self) -> String {
        if self.t0.is_none() {
            return "the pair never got to the failure".into();
        }
        let left: Vec<&str> = demo_targets().iter().filter(|t| !self.taken_over.contains_key(t.name)).map(|t| t.name).collect();
        format!("{} not verified on {SURVIVOR}", left.join(" and "))
    }

    /// Print the final status table and judge the run.
    async fn final_report(&mut self) -> Result<String, String> {
        // let the last events and notes land
        self.pump_until(Instant::now() + Duration::from_millis(50)).await;
        let survivor = match self.statuses().await {
            Ok(statuses) => {
                outln!();
                outln!("final status ({SURVIVOR}'s view from its control socket; POOL/MOUNTED from the simulated SAN):");
                out!("{}", self.table(&statuses));
                statuses.into_iter().find(|(n, _)| *n == SURVIVOR).and_then(|(_, s)| s)
            }
            Err(e) => {
                outln!("\n!! no final status: {e}");
                None
            }
        };
        outln!();
        if !self.milestones.is_empty() {
            let m: Vec<String> = self.milestones.iter().map(|(what, ms)| format!("{what} +{ms} ms")).collect();
            outln!("summary: {}", m.join(", "));
        }
        let mut problems = Vec::new();
        for t in demo_targets() {
            let seen = survivor.as_ref().and_then(|s| s.targets.iter().find(|x| x.target == t.name));
            match seen {
                Some(x) if x.owner.as_deref() == Some(SURVIVOR) && x.local == "running" => {}
                Some(x) => problems.push(format!("{} is {} (owner {}) as {SURVIVOR} sees it", t.name, x.local, x.owner.as_deref().unwrap_or("none"))),
                None => problems.push(format!("{SURVIVOR} reports nothing about {}", t.name)),
            }
            let (imported, mounted) = self.lab.placement(&t);
            if imported != [SURVIVOR] || mounted != [SURVIVOR] {
                problems.push(format!(
                    "the SAN shows {} imported on [{}] and mounted on [{}]",
                    t.pool,
                    imported.join(", "),
                    mounted.join(", ")
                ));
            }
        }
        if self.lab.powered(VICTIM) {
            problems.push(format!("{VICTIM} is still powered"));
        }
        let violations = self.lab.violations();
        if violations.is_empty() {
            outln!("safety: no pool imported and no target mounted on two powered hosts; no forced import before the fence");
        } else {
            for v in &violations {
                outln!("!! SAFETY RULE BROKEN: {v}");
            }
            problems.push(format!("{} safety rule(s) broken", violations.len()));
        }
        outln!();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let at = self.verified_at_ms.unwrap_or(0);
        Ok(format!("{SURVIVOR} took MGT and MDT0000 over and verified them {at} ms after {VICTIM} failed"))
    }

    /// The status of the running daemons and the SAN's record, as a table.
    fn table(&self, statuses: &[(&'static str, Option<Status>)]) -> String {
        let mut rows = vec![vec!["NODE".to_string(), "POWER".into(), "DAEMON".into(), "QUORUM".into(), "PEER".into()]];
        for (name, status) in statuses {
            let power = if self.lab.powered(name) { "on" } else { "off" };
            let row = match status {
                Some(s) => {
                    let q = &s.quorum;
                    let quorum = if q.quorate { format!("yes ({} of {} votes)", q.votes, q.total) } else { format!("NO: {}", q.reason) };
                    let peers: Vec<String> = s
                        .peers
                        .iter()
                        .map(|p| {
                            let state = if p.fenced {
                                "fenced"
                            } else if p.alive {
                                "alive"
                            } else {
                                "DEAD"
                            };
                            let links: Vec<String> = p.links.iter().map(|l| format!("{} {}", l.link, if l.up { "up" } else { "down" })).collect();
                            format!("{} {state} ({})", p.node, links.join(", "))
                        })
                        .collect();
                    vec![name.to_string(), power.into(), "running".into(), quorum, peers.join("; ")]
                }
                None => vec![name.to_string(), power.into(), "stopped".into(), "-".into(), "-".into()],
            };
            rows.push(row);
        }
        let mut out = table(&rows);
        out.push('\n');
        let viewer = statuses.iter().rev().find_map(|(_, s)| s.as_ref());
        let mut rows = vec![vec!["TARGET".to_string(), "OWNER".into(), "STATE".into(), "POOL IMPORTED ON".into(), "MOUNTED ON".into()]];
        for t in demo_targets() {
            let seen = viewer.and_then(|s| s.targets.iter().find(|x| x.target == t.name));
            let (owner, state) = match seen {
                Some(x) => (x.owner.clone().unwrap_or_else(|| "-".into()), x.state.clone()),
                None => ("?".into(), "?".into()),
            };
            let (imported, mounted) = self.lab.placement(&t);
            let mounted: Vec<String> = mounted.iter().map(|h| format!("{h}:{}", t.mountpoint)).collect();
            rows.push(vec![t.name.to_string(), owner, state, format!("{} on {}", t.pool, or_none(&imported)), or_none(&mounted)]);
        }
        out.push_str(&table(&rows));
        out
    }
}

/// Both daemons run, have quorum, have seen each other and discovered their storage, and agree that mds1
/// runs every target.
fn settled(statuses: &[(&'static str, Option<Status>)]) -> Result<(), String> {
    for (name, s) in statuses {
        let Some(s) = s else { return Err(format!("{name}'s daemon is not running")) };
        if !s.quorum.quorate || !s.all_nodes_seen || !s.discovered {
            return Err(format!("{name}: quorate {}, all nodes seen {}, discovered {}", s.quorum.quorate, s.all_nodes_seen, s.discovered));
        }
        for t in demo_targets() {
            let ok = s.targets.iter().any(|x| x.target == t.name && x.owner.as_deref() == Some(VICTIM) && x.state == "running");
            if !ok {
                return Err(format!("{name} does not yet see {} running on {VICTIM}", t.name));
            }
        }
    }
    Ok(())
}

fn sequence_name(s: SequenceKind) -> &'static str {
    match s {
        SequenceKind::Forced => "forced",
        SequenceKind::Release => "release",
        SequenceKind::Acquire => "controlled",
        SequenceKind::Monitor => "monitor",
    }
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// Collapse runs of blanks (tool output aligned in columns) to one space.
fn squeeze(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// Left-aligned columns separated by two spaces, indented by two.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r.iter().enumerate().map(|(i, s)| format!("{s:<w$}", w = widths[i])).collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_is_valid_and_the_same_cluster_for_both_nodes() {
        let dir = Path::new("/tmp/failoverd-demo-test");
        let ports = [[7001, 7002], [7003, 7004]];
        let a = Config::from_toml_str(&config_text(dir, VICTIM, &ports)).unwrap();
        let b = Config::from_toml_str(&config_text(dir, SURVIVOR, &ports)).unwrap();
        assert_eq!(a.digest(), b.digest(), "node-local keys only differ");
        assert_ne!(a.cluster.state_dir, b.cluster.state_dir);
        assert_ne!(a.cluster.control_socket, b.cluster.control_socket);
        assert!(a.cluster.stall_threshold < a.cluster.dead_after);
        assert_eq!(a.targets.len(), 2);
        assert!(crate::engine::heartbeat_fits(&a).is_ok());
    }

    #[test]
    fn the_lab_starts_with_mds1_holding_both_targets() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let lab = Lab::new(tx).unwrap();
        for t in demo_targets() {
            assert_eq!(lab.placement(&t), (vec![VICTIM.to_string()], vec![VICTIM.to_string()]));
        }
        assert!(lab.violations().is_empty());
        assert_eq!(lab.lock().storage.timing.activity_check, Some(DEMO_ACTIVITY_CHECK));
    }

    #[test]
    fn forced_import_while_the_owner_is_powered_is_flagged() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let lab = Lab::new(tx).unwrap();
        let cmd = Command::new(["zpool", "import", "-f", "-o", "cachefile=none", "mgspool"], Duration::from_secs(120));
        assert!(lab.lock().forced_import_too_early(SURVIVOR, &cmd).is_some());
        lab.fail(VICTIM, DemoFault::PowerLoss);
        assert!(lab.lock().forced_import_too_early(SURVIVOR, &cmd).is_none());
        assert!(!lab.powered(VICTIM));
        let plain = Command::new(["zpool", "import", "-o", "cachefile=none", "mgspool"], Duration::from_secs(120));
        assert!(lab.lock().forced_import_too_early(SURVIVOR, &plain).is_none());
    }

    #[test]
    fn tables_align() {
        let t = table(&[vec!["A".into(), "BB".into()], vec!["CCC".into(), "D".into()]]);
        assert_eq!(t, "  A    BB\n  CCC  D\n");
    }
}
