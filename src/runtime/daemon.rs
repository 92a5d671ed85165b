//! `failoverd run`: the daemon.
//!
//! Start-up, in this order (each step's error names what failed and stops the start):
//! 1. load the configuration and the keys (`cluster.key_file`, `cluster.next_key_file`);
//! 2. choose the node: `--node`, else this host's name (`gethostname`, then its part before the first dot);
//! 3. open `cluster.state_dir`, bind `cluster.control_socket` (a daemon already answering there stops this
//!    start: no two daemons per node), bind one UDP socket per link;
//! 4. read the journal, bump the incarnation counter durably, build the [`Engine`] (seeded from the
//!    incarnation and the node name);
//! 5. `mlockall` if `cluster.lock_memory` (a failure is a warning).
//! 6. listen on `cluster.metrics_listen` if set (Prometheus metrics, see [`super::metrics`]).
//!
//! Then one loop on a single-threaded tokio runtime waits for the earliest of: a datagram on any link, a
//! finished command, a control request, the engine's next deadline, a signal, a metrics scrape. Each but the
//! scrape becomes one engine input, and every output is carried out before waiting again; a scrape only reads
//! `Engine::status` into the metric series.
//!
//! A deadline served later than `cluster.stall_threshold` means this process itself stalled (VM freeze,
//! swap storm, SIGSTOP): the engine gets `Input::Stalled` and convicts nobody on that gap.
//!
//! SIGTERM or SIGINT asks the engine to leave (move targets away unless in maintenance, tell the peers); the
//! daemon exits 0 when the engine says `Left`, or after [`LEAVE_GRACE`] with a warning. A second SIGTERM or
//! SIGINT exits at once (status 1). SIGHUP is logged and otherwise ignored: a new configuration needs a
//! restart (the incarnation changes and peers notice).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::command::Command;
use crate::config::{load_key, Config, KeyCheck};
use crate::diskbeat::{decode_slot, encode_slot, slot_index, DiskSlot, SlotError};
use crate::engine::{AdminRequest, CommandId, Engine, Event, Input, Output, Severity};
use crate::protocol::Keys;
use crate::time::Time;

use super::clock::Clock;
use super::control::{self, ControlRequest, ControlSocket, Pending};
use super::disk_heartbeat::{DiskStats, DiskWorker, NotStarted, RoundResult, SlotSeen};
use super::exec::{self, Executor, Label, Processes};
use super::metrics::{self, Metrics, RefreshRequest};
use super::net::{Links, NetCounters, Received};
use super::state::StateDir;
use super::{Result, RuntimeError};

/// How long a leaving daemon waits for the engine to finish moving targets away before it exits anyway.
pub const LEAVE_GRACE: Duration = Duration::from_secs(30);

/// How often the commands of a previous run that did not die at start are looked for again.
const ORPHAN_RECHECK: Duration = Duration::from_secs(2);

/// How long a starting daemon waits for the commands of its previous run to die (see [`super::orphans`]).
pub const ORPHAN_WAIT: Duration = Duration::from_secs(30);

/// Timeout of one run of the `cluster.notify` program.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// `notify` programs running at once; events beyond that are not notified (and say so in the log).
const MAX_NOTIFY_RUNNING: usize = 8;

/// At most this many `heartbeat_rejected` events are logged and notified per [`REJECT_WINDOW`] (a replay
/// flood must not flood the journal or page someone ten thousand times).
const REJECT_BURST: u32 = 5;
const REJECT_WINDOW: Duration = Duration::from_secs(60);

/// Read and validate the configuration file (checking the key files exist and are long enough).
pub fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| RuntimeError::config(prefix_lines(path, &e.to_string())))
}

/// Read the configuration without touching the key files (for `status` and friends, run by users who may not
/// read the key).
pub fn load_config_without_keys(path: &Path) -> Result<Config> {
    Config::load_with(path, KeyCheck::Skip).map_err(|e| RuntimeError::config(prefix_lines(path, &e.to_string())))
}

fn prefix_lines(path: &Path, text: &str) -> String {
    text.lines().map(|l| format!("{}: {l}", path.display())).collect::<Vec<_>>().join("\n")
}

/// The heartbeat keys named by `[cluster]`.
pub fn load_keys(cfg: &Config) -> Result<Keys> {
    let active = load_key(&cfg.cluster.key_file).map_err(|e| RuntimeError::config(format!("cluster.key_file: {e}")))?;
    let next = match &cfg.cluster.next_key_file {
        Some(p) => Some(load_key(p).map_err(|e| RuntimeError::config(format!("cluster.next_key_file: {e}")))?),
        None => None,
    };
    Ok(Keys::new(active, next))
}

/// Which `[[node]]` this host is: `given` (from `--node`) if set, else the host name, else its short form.
pub fn resolve_node(cfg: &Config, given: Option<&str>) -> Result<String> {
    let names = || cfg.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(n) = given {
        return match cfg.node(n) {
            Some(_) => Ok(n.to_string()),
            None => Err(RuntimeError::usage(format!("--node {n}: no [[node]] has this name (nodes: {})", names()))),
        };
    }
    let host = nix::unistd::gethostname()
        .map_err(|e| RuntimeError::io(format!("cannot read this host's name ({e}); pass --node NAME")))?
        .to_string_lossy()
        .into_owned();
    let short = host.split('.').next().unwrap_or(&host).to_string();
    for candidate in [&host, &short] {
        if cfg.node(candidate).is_some() {
            return Ok(candidate.clone());
        }
    }
    Err(RuntimeError::config(format!(
        "this host is called {host:?}, which is no [[node]] name in the configuration (nodes: {}); pass --node NAME",
        names()
    )))
}

/// A daemon not run as root cannot do its job: say plainly what will fail.
fn warn_if_not_root(node: &str) {
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        tracing::warn!(node, uid = uid.as_raw(),
            "not running as root: heartbeats and status work, but fencing (ipmitool, snmpset, fence agents reading \
             root-only secret files), zpool import/export, mount and umount will fail, so this node can neither \
             fence a peer nor take a target over; run failoverd as root (the shipped systemd unit does)");
    }
}

/// `2026-05-01T12:34:56.789Z`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `failoverd run`: set up logging, then run the daemon until it leaves. Returns when the process should exit.
pub fn run(config_path: &Path, node: Option<String>, log_format: Option<super::logging::LogFormat>) -> Result<()> {
    super::logging::init(log_format);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RuntimeError::io(format!("cannot start the event loop: {e}")))?;
    let result = runtime.block_on(async {
        let cfg = load_config(config_path)?;
        let keys = load_keys(&cfg)?;
        let node = resolve_node(&cfg, node.as_deref())?;
        warn_if_not_root(&node);
        let daemon = Daemon::start(Arc::new(cfg), keys, &node, config_path).await?;
        daemon.run().await
    });
    if let Err(e) = &result {
        tracing::error!(kind = e.kind(), "failoverd stopped: {e}");
    }
    // Do not wait for commands still running (a fence agent, a notify program): their process groups were
    // started with kill-on-drop, and nothing they report could be acted on any more.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

/// The running daemon: the engine and everything it drives.
pub struct Daemon {
    /// The previous run's commands that did not die at start: re-checked until they are gone.
    orphans_left: bool,
    cfg: Arc<Config>,
    node: String,
    config_path: PathBuf,
    engine: Engine,
    clock: Clock,
    /// The exclusive lock of `cluster.state_dir`, held until the process exits.
    _lock: super::state::StateLock,
    /// `failoverd history`: fences and takeovers, in `cluster.state_dir`.
    history: super::state::History,
    links: Links,
    counters: Arc<NetCounters>,
    state: StateDir,
    /// This host's boot id, stamped on every journal written (see [`read_boot_id`]).
    boot_id: Option<String>,
    control: ControlSocket,
    net_rx: mpsc::Receiver<Received>,
    done_tx: mpsc::UnboundedSender<(CommandId, crate::command::CommandResult)>,
    done_rx: mpsc::UnboundedReceiver<(CommandId, crate::command::CommandResult)>,
    ctl_rx: mpsc::Receiver<Pending>,
    /// Admin requests waiting for the engine's reply, by request id.
    waiting: BTreeMap<u64, oneshot::Sender<Value>>,
    next_admin_id: u64,
    commands_running: usize,
    notify_running: Arc<AtomicUsize>,
    leave_deadline: Option<Instant>,
    /// `heartbeat_rejected` events seen in the current window: (window start, count).
    rejects: (Instant, u32),
    /// Runs the engine's commands: real processes unless [`Daemon::with_executor`] says otherwise.
    executor: Arc<dyn Executor>,
    /// Also receives every engine event, with this node's name (see [`Daemon::with_event_observer`]).
    observer: Option<mpsc::UnboundedSender<(String, Event)>>,
    /// The Prometheus series, when `cluster.metrics_listen` is set.
    metrics: Option<Arc<Metrics>>,
    /// Scrapes asking for the status-based series to be refreshed.
    metrics_rx: mpsc::Receiver<RefreshRequest>,
    /// The disk heartbeat channel, when `cluster.disk_heartbeat` is set.
    disk: Option<DiskChannel>,
    /// Results of the disk heartbeat rounds (never yields without the channel).
    disk_rx: mpsc::UnboundedReceiver<RoundResult>,
    /// Keeps `disk_rx` open (pending) when there is no channel.
    _disk_idle: Option<mpsc::UnboundedSender<RoundResult>>,
}

/// The event loop's side of the disk heartbeat: the I/O thread's handle, the keys that sign and check the
/// slots, every peer's slot index, and the figures for status and metrics.
struct DiskChannel {
    worker: DiskWorker,
    keys: Keys,
    /// (peer, slot index) in configuration order.
    peers: Vec<(String, usize)>,
    stats: DiskStats,
}

impl Daemon {
    /// Open the state, bind the sockets, bump the incarnation and build the engine. Must run inside the
    /// tokio runtime that will run [`Daemon::run`].
    pub async fn start(cfg: Arc<Config>, keys: Keys, node: &str, config_path: &Path) -> Result<Daemon> {
        let state = StateDir::open(&cfg.cluster.state_dir)?;
        // one daemon per node: the state_dir lock, then the control socket, then exclusive UDP binds each
        // refuse a second one at once, naming the running one's pid
        let lock = state.lock()?;
        let mut control = ControlSocket::bind(&cfg.cluster.control_socket, &cfg.cluster.control_allowed_uids)?;
        let disk_keys = keys.clone();
        let links = Links::bind(&cfg, node, keys)?;

        // No other daemon of this node runs (the control socket is ours): commands still running carry our tag
        // because the previous run died. They must end before the engine looks at the storage.
        super::orphans::set_tag(&cfg.cluster.state_dir);
        let mut orphans_left = Vec::new();
        if let Some(tag) = super::orphans::tag() {
            let limit = ORPHAN_WAIT;
            // blocking on purpose: nothing else runs yet, and nothing may run before this is done
            let (found, left) = super::orphans::reap(tag, limit);
            for o in &found {
                tracing::warn!(node, pid = o.pid, command = %o.command,
                    "a command of the previous run was still running: killed it before looking at the storage");
            }
            for o in &left {
                tracing::error!(node, pid = o.pid, command = %o.command, wait_s = limit.as_secs(),
                    "a command of the previous run did not end after SIGKILL (stuck in the kernel?): not looking at the storage and claiming nothing until it ends; if it never does, power-cycle this node from a peer (`failoverd fence {node} --action reboot`)");
            }
            orphans_left = left;
        }

        let journal = match state.load_journal()? {
            Some(j) if j.node != node => {
                tracing::warn!(journal_node = %j.node, node, dir = %state.path().display(),
                    "the journal in cluster.state_dir belongs to another node: ignoring it");
                None
            }
            other => other,
        };
        let boot_id = read_boot_id();
        let journal = journal.map(|j| {
            let (j, dropped) = j.for_boot(boot_id.as_deref());
            if !dropped.is_empty() {
                tracing::warn!(node, nodes = %dropped.join(", "),
                    "fence confirmations journaled before this host last booted are not trusted (this host went down after them, perhaps powered off by one of those very nodes): each must be heard again or fenced afresh; if one stays silent, wait_for_all says so and names the override");
            }
            j
        });
        let floor = journal.as_ref().map(|j| j.incarnation).unwrap_or(0);
        let incarnation = state.bump_incarnation(floor)?;
        let clock = Clock::start();
        let mut engine = Engine::new(cfg.clone(), node, incarnation, journal, clock.now())
            .map_err(|e| RuntimeError::config(format!("cannot start the engine: {e}")))?;
        // the engine looks at the storage only once the previous run's commands are gone
        if orphans_left.is_empty() {
            engine.handle(clock.now(), Input::OrphansGone);
        } else {
            let commands = orphans_left.iter().map(|o| format!("pid {}: {}", o.pid, o.command)).collect();
            engine.handle(clock.now(), Input::OrphansStuck { commands });
        }

        if cfg.cluster.lock_memory {
            use nix::sys::mman::{mlockall, MlockAllFlags};
            match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
                Ok(()) => tracing::info!(node, "memory locked (cluster.lock_memory)"),
                Err(e) => tracing::warn!(node, error = %e,
                    "cluster.lock_memory: mlockall failed (needs CAP_IPC_LOCK or LimitMEMLOCK=infinity); running unlocked"),
            }
        }
        let (refresh_tx, metrics_rx) = mpsc::channel(16);
        let metrics = match cfg.cluster.metrics_listen {
            Some(addr) => {
                let listener = metrics::bind(addr).await?;
                let mut m = Metrics::new(node, &cfg.cluster.name);
                if cfg.cluster.disk_heartbeat.is_some() {
                    m = m.with_disk_heartbeat();
                }
                let m = Arc::new(m);
                tracing::info!(node, %addr, "serving Prometheus metrics at /metrics (cluster.metrics_listen)");
                tokio::spawn(metrics::serve(listener, m.clone(), refresh_tx));
                Some(m)
            }
            None => None,
        };

        let (net_tx, net_rx) = mpsc::channel(1024);
        links.spawn_receivers(net_tx);
        let (ctl_tx, ctl_rx) = mpsc::channel(64);
        control.spawn(ctl_tx);
        let (done_tx, done_rx) = mpsc::unbounded_channel();

        let addrs: Vec<String> = cfg.cluster.links.iter().zip(links.local_addrs()).map(|(l, a)| format!("{l}={a}")).collect();
        tracing::info!(
            node,
            cluster = %cfg.cluster.name,
            incarnation,
            links = %addrs.join(","),
            control_socket = %cfg.cluster.control_socket.display(),
            state_dir = %cfg.cluster.state_dir.display(),
            version = env!("CARGO_PKG_VERSION"),
            "failoverd started"
        );
        let (disk, disk_rx, disk_idle) = start_disk_channel(&cfg, node, disk_keys)?;
        let counters = links.counters();
        let history = super::state::History::open(&cfg.cluster.state_dir);
        Ok(Daemon {
            cfg,
            node: node.to_string(),
            config_path: config_path.to_path_buf(),
            engine,
            clock,
            _lock: lock,
            history,
            links,
            counters,
            boot_id,
            state,
            control,
            net_rx,
            done_tx,
            done_rx,
            ctl_rx,
            waiting: BTreeMap::new(),
            next_admin_id: 0,
            commands_running: 0,
            notify_running: Arc::new(AtomicUsize::new(0)),
            leave_deadline: None,
            rejects: (Instant::now(), 0),
            executor: Arc::new(Processes),
            observer: None,
            metrics,
            metrics_rx,
            orphans_left: !orphans_left.is_empty(),
            disk,
            disk_rx,
            _disk_idle: disk_idle,
        })
    }

    /// Run the engine's commands with `executor` instead of as real processes (`failoverd demo` answers them
    /// from the simulator's models). Call before [`Daemon::run`].
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Daemon {
        self.executor = executor;
        self
    }

    /// Also send every engine event that is logged, tagged with this node's name, to `observer` (besides
    /// logging and notifying it as usual; a flood of `heartbeat_rejected` is cut as in the log). Events are
    /// never held back for a slow observer; a closed one is ignored.
    pub fn with_event_observer(mut self, observer: mpsc::UnboundedSender<(String, Event)>) -> Daemon {
        self.observer = Some(observer);
        self
    }

    /// Run until the engine has left (after SIGTERM/SIGINT or a `leave` request).
    pub async fn run(mut self) -> Result<()> {
        let signal_err = |e: std::io::Error| RuntimeError::io(format!("cannot install signal handlers: {e}"));
        let mut sigterm = signal(SignalKind::terminate()).map_err(signal_err)?;
        let mut sigint = signal(SignalKind::interrupt()).map_err(signal_err)?;
        let mut sighup = signal(SignalKind::hangup()).map_err(signal_err)?;
        // the engine queued its first heartbeats and discovery commands when it was built
        if self.carry_out() {
            return Ok(());
        }
        let mut last_tick: Option<Time> = None;
        loop {
            let deadline = self.engine.next_deadline();
            // never spin: a deadline not after the last tick is served one millisecond later
            let wake = match last_tick {
                Some(t) if deadline <= t => t + Duration::from_millis(1),
                _ => deadline,
            };
            let leave_by = self.leave_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                Some(r) = self.net_rx.recv() => {
                    let now = self.clock.now();
                    self.engine.handle(now, Input::Datagram { link: r.link, envelope: r.envelope });
                }
                Some((id, result)) = self.done_rx.recv() => {
                    self.commands_running = self.commands_running.saturating_sub(1);
                    let now = self.clock.now();
                    self.engine.handle(now, Input::CommandDone { id, result });
                }
                Some(p) = self.ctl_rx.recv() => self.on_control(p),
                Some(round) = self.disk_rx.recv() => self.on_disk_round(round),
                _ = tokio::time::sleep(ORPHAN_RECHECK), if self.orphans_left => self.recheck_orphans(),
                Some(done) = self.metrics_rx.recv(), if self.metrics.is_some() => {
                    self.refresh_metrics();
                    let _ = done.send(());
                }
                _ = tokio::time::sleep_until(self.clock.instant_of(wake)) => {
                    let now = self.clock.now();
                    let late = now.since(deadline.max(wake));
                    let input = Input::timer(late, self.cfg.cluster.stall_threshold);
                    if matches!(input, Input::Stalled { .. }) {
                        tracing::warn!(node = %self.node, late_ms = late.as_millis() as u64,
                            "this process stalled (deadline served late): nobody is convicted on this gap");
                    }
                    self.engine.handle(now, input);
                    last_tick = Some(now);
                }
                _ = sigterm.recv() => self.on_signal("SIGTERM")?,
                _ = sigint.recv() => self.on_signal("SIGINT")?,
                _ = sighup.recv() => {
                    tracing::info!(node = %self.node, config = %self.config_path.display(),
                        "SIGHUP ignored: restart failoverd to apply a new configuration");
                }
                _ = tokio::time::sleep_until(leave_by), if self.leave_deadline.is_some() => {
                    tracing::warn!(node = %self.node, grace_s = LEAVE_GRACE.as_secs(),
                        "did not finish leaving in time (targets still moving?); exiting anyway");
                    return Ok(());
                }
            }
            if self.carry_out() {
                tracing::info!(node = %self.node, "left the cluster; exiting");
                return Ok(());
            }
        }
    }

    /// Commands of the previous run were stuck at start: once none is left, the engine may look at the storage.
    fn recheck_orphans(&mut self) {
        let left = super::orphans::tag().map(super::orphans::find).unwrap_or_default();
        let now = self.clock.now();
        if left.is_empty() {
            tracing::warn!(node = %self.node, "the previous run's stuck commands have ended: looking at the storage now");
            self.orphans_left = false;
            self.engine.handle(now, Input::OrphansGone);
        } else {
            let commands = left.iter().map(|o| format!("pid {}: {}", o.pid, o.command)).collect();
            self.engine.handle(now, Input::OrphansStuck { commands });
        }
    }

    fn on_signal(&mut self, name: &str) -> Result<()> {
        if self.leave_deadline.is_some() {
            return Err(RuntimeError::stopped(format!("second {name}: exiting at once without finishing to leave")));
        }
        tracing::info!(node = %self.node, signal = name, "stopping: leaving the cluster (a second signal exits at once)");
        self.begin_leave();
        self.next_admin_id += 1;
        let now = self.clock.now();
        self.engine.handle(now, Input::Admin { id: self.next_admin_id, request: AdminRequest::Leave });
        Ok(())
    }

    fn begin_leave(&mut self) {
        if self.leave_deadline.is_none() {
            self.leave_deadline = Some(Instant::now() + LEAVE_GRACE);
        }
    }

    fn on_control(&mut self, p: Pending) {
        let now = self.clock.now();
        match p.request {
            ControlRequest::Status => {
                let status = self.engine.status(now);
                let mut value = serde_json::to_value(&status).unwrap_or(Value::Null);
                if let Some(obj) = value.as_object_mut() {
                    let wall = std::time::SystemTime::now();
                    obj.insert("time".into(), json!(rfc3339(wall)));
                    let events: Vec<Value> = status
                        .recent_events
                        .iter()
                        .map(|(at, ev)| {
                            let when = wall.checked_sub(now.since(*at)).unwrap_or(wall);
                            json!({ "time": rfc3339(when), "event": ev.name(), "severity": ev.severity().as_str(),
                                    "message": ev.message(), "detail": ev })
                        })
                        .collect();
                    obj.insert("events".into(), json!(events));
                }
                let reply = json!({ "ok": true, "status": value, "runtime": self.runtime_status(now) });
                let _ = p.reply.send(reply);
            }
            ControlRequest::Admin(request) => {
                if request == AdminRequest::Leave {
                    self.begin_leave();
                }
                self.next_admin_id += 1;
                let id = self.next_admin_id;
                // forget requests whose client gave up waiting
                self.waiting.retain(|_, tx| !tx.is_closed());
                self.waiting.insert(id, p.reply);
                self.engine.handle(now, Input::Admin { id, request });
            }
        }
    }

    fn runtime_status(&self, now: Time) -> Value {
        json!({
            "now_us": now.as_micros(),
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "config": self.config_path.display().to_string(),
            "control_socket": self.control.path().display().to_string(),
            "datagrams": self.counters.snapshot(),
            "commands_running": self.commands_running,
            "leaving": self.leave_deadline.is_some(),
            "disk_heartbeat": self.disk.as_ref().map(|d| d.stats.to_json(std::time::Instant::now())),
        })
    }

    /// Carry out every queued output. True when the engine has left.
    fn carry_out(&mut self) -> bool {
        let mut left = false;
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Send { link, envelope } => self.links.send(link, &envelope),
                Output::SendWitness { envelope } => self.links.send_witness(&envelope),
                Output::Run { id, command, purpose } => {
                    self.commands_running += 1;
                    let label = Label::of(&self.node, &purpose);
                    let tx = self.done_tx.clone();
                    let running = self.executor.execute(command, label);
                    tokio::spawn(async move {
                        let result = running.await;
                        let _ = tx.send((id, result));
                    });
                }
                Output::Persist(mut journal) => {
                    journal.boot_id = self.boot_id.clone();
                    if let Err(e) = self.state.save_journal(&journal) {
                        tracing::error!(node = %self.node, error = %e,
                            "cannot persist the journal: fence confirmations and maintenance will not survive a restart");
                    }
                }
                Output::Event(event) => self.on_event(&event),
                Output::AdminReply { id, result } => match self.waiting.remove(&id) {
                    Some(reply) => {
                        let _ = reply.send(control::admin_reply(result));
                    }
                    None => match result {
                        Ok(m) => tracing::info!(node = %self.node, reply = %m, "engine reply"),
                        Err(e) => tracing::warn!(node = %self.node, error = %e, "engine refused"),
                    },
                },
                Output::Left => left = true,
                Output::DiskBeat { slot } => self.disk_beat(&slot),
            }
        }
        left
    }

    /// Set the status-based metric series from the engine's current status.
    fn refresh_metrics(&self) {
        if let Some(m) = &self.metrics {
            m.refresh(&self.engine.status(self.clock.now()), &self.counters);
            if let Some(d) = &self.disk {
                m.refresh_disk(&d.stats, std::time::Instant::now());
            }
        }
    }

    /// `Output::DiskBeat`: sign the slot and hand it to the I/O thread, unless the last round is still out
    /// (then the beat is skipped and counted: a hung device never queues work).
    fn disk_beat(&mut self, slot: &DiskSlot) {
        let Some(d) = &mut self.disk else { return };
        let bytes = encode_slot(slot, d.keys.active());
        match d.worker.start_round(bytes) {
            Ok(()) => {}
            Err(NotStarted::InFlight) => {
                d.stats.skipped = d.worker.skipped();
                tracing::debug!(node = %self.node, device = %d.worker.path().display(), skipped = d.stats.skipped,
                    "disk heartbeat skipped: the previous round has not come back");
            }
            Err(NotStarted::ThreadGone) => {
                tracing::error!(node = %self.node, device = %d.worker.path().display(),
                    "the disk heartbeat I/O thread is gone: no more slot writes (restart failoverd)");
            }
        }
    }

    /// A disk heartbeat round came back: decode every peer's slot and give the engine `Input::DiskRound`. A
    /// failed read makes the whole round a failure: a node that cannot read the peers' slots must not take
    /// their silence for death while its own writes succeed.
    fn on_disk_round(&mut self, round: RoundResult) {
        let Some(d) = &mut self.disk else { return };
        d.worker.round_done();
        let write = match (&round.write, &round.area) {
            (Ok(latency), Ok(_)) => Ok(*latency),
            (Err(e), _) => Err(e.clone()),
            (Ok(_), Err(e)) => Err(e.clone()),
        };
        let slots: Vec<(String, Result<DiskSlot, SlotError>)> = match &write {
            Ok(_) => d
                .peers
                .iter()
                .map(|(peer, index)| {
                    let decoded = round.slot(*index).map(|b| decode_slot(b, &d.keys)).unwrap_or(Err(SlotError::Empty));
                    (peer.clone(), decoded)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let cluster = &self.cfg.cluster.name;
        let seen: Vec<SlotSeen> = slots
            .iter()
            .map(|(peer, r)| {
                let v = match r {
                    Ok(s) if &s.node != peer || &s.cluster != cluster => {
                        Err(format!("holds node {} of cluster {} (not {peer} of {cluster})", s.node, s.cluster))
                    }
                    Ok(s) => Ok((s.incarnation, s.seq)),
                    Err(e) => Err(e.to_string()),
                };
                (peer.clone(), v)
            })
            .collect();
        d.stats.skipped = d.worker.skipped();
        d.stats.on_round(std::time::Instant::now(), &write, &seen);
        if let Some(m) = &self.metrics {
            m.on_disk_round(&write);
        }
        let now = self.clock.now();
        self.engine.handle(now, Input::DiskRound { write, slots });
    }

    fn on_event(&mut self, event: &Event) {
        // counted before the log's rate limit: the counters stay exact under a flood
        if let Some(m) = &self.metrics {
            m.on_event(event);
        }
        let name = event.name();
        if matches!(event, Event::HeartbeatRejected { .. }) {
            let now = Instant::now();
            if now.duration_since(self.rejects.0) > REJECT_WINDOW {
                if self.rejects.1 > REJECT_BURST {
                    tracing::warn!(node = %self.node, suppressed = self.rejects.1 - REJECT_BURST,
                        "heartbeat_rejected events were not logged individually in the last minute");
                }
                self.rejects = (now, 0);
            }
            self.rejects.1 += 1;
            if self.rejects.1 > REJECT_BURST {
                return;
            }
        }
        if let Some(observer) = &self.observer {
            let _ = observer.send((self.node.clone(), event.clone()));
        }
        let detail = serde_json::to_string(event).unwrap_or_default();
        let severity = event.severity();
        let message = event.message();
        match severity {
            Severity::Info => tracing::info!(node = %self.node, event = %name, summary = %message, detail = %detail, "event"),
            Severity::Warning => tracing::warn!(node = %self.node, event = %name, summary = %message, detail = %detail, "event"),
            Severity::Alert => tracing::error!(node = %self.node, event = %name, summary = %message, detail = %detail, "event"),
        }
        if event.historic() {
            let mut v = serde_json::to_value(event).unwrap_or_else(|_| json!({ "event": name }));
            if let Some(obj) = v.as_object_mut() {
                obj.insert("timestamp".into(), json!(rfc3339(std::time::SystemTime::now())));
                obj.insert("reported_by".into(), json!(self.node));
                obj.insert("message".into(), json!(message));
            }
            if let Err(e) = self.history.append(&v) {
                tracing::warn!(node = %self.node, error = %e, "cannot append to the history in cluster.state_dir");
            }
        }
        if event.notifiable() {
            self.notify(event, &name, severity, &message);
        }
    }

    /// Run `cluster.notify` with the event as JSON on stdin (fire and forget). The JSON is the event's own
    /// (`{"event":"peer_dead","node":"mds1","silent_ms":3012}`, snake_case values only) plus `timestamp`
    /// (wall clock, RFC 3339 UTC), `cluster`, `reported_by` (the node whose daemon saw it), `severity`
    /// (`info`, `warning`, `alert`) and `message` (one line for a human). See README "Events".
    fn notify(&self, event: &Event, name: &str, severity: Severity, message: &str) {
        let Some(program) = &self.cfg.cluster.notify else { return };
        if self.notify_running.load(Ordering::Relaxed) >= MAX_NOTIFY_RUNNING {
            tracing::warn!(node = %self.node, event = %name, notify = %program.display(),
                "too many notify programs still running: this event is not notified");
            return;
        }
        let mut v = serde_json::to_value(event).unwrap_or_else(|_| json!({ "event": name }));
        if let Some(obj) = v.as_object_mut() {
            obj.insert("timestamp".into(), json!(rfc3339(std::time::SystemTime::now())));
            obj.insert("cluster".into(), json!(self.cfg.cluster.name));
            obj.insert("reported_by".into(), json!(self.node));
            obj.insert("severity".into(), json!(severity.as_str()));
            obj.insert("message".into(), json!(message));
        }
        let cmd = Command::new([program.display().to_string()], NOTIFY_TIMEOUT)
            .with_stdin(format!("{v}\n"))
            .with_env("FAILOVERD_EVENT", name)
            .with_env("FAILOVERD_SEVERITY", severity.as_str())
            .with_env("FAILOVERD_NODE", self.node.clone())
            .with_env("FAILOVERD_CLUSTER", self.cfg.cluster.name.clone());
        let label = Label { node: self.node.clone(), purpose: "notify".into(), target: String::new(), step: name.to_string() };
        let running = self.notify_running.clone();
        running.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            exec::run_logged(&cmd, &label).await;
            running.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Start the disk heartbeat's I/O thread when `cluster.disk_heartbeat` is set. The device is opened by the
/// thread at its first round: a device missing at start-up shows as failing writes (and an alert from the
/// engine), not as a daemon that will not start.
#[allow(clippy::type_complexity)]
fn start_disk_channel(
    cfg: &Config,
    node: &str,
    keys: Keys,
) -> Result<(Option<DiskChannel>, mpsc::UnboundedReceiver<RoundResult>, Option<mpsc::UnboundedSender<RoundResult>>)> {
    let Some(device) = &cfg.cluster.disk_heartbeat else {
        let (idle, rx) = mpsc::unbounded_channel();
        return Ok((None, rx, Some(idle)));
    };
    let index = slot_index(cfg, node).ok_or_else(|| RuntimeError::config(format!("cluster.disk_heartbeat: node {node} has no slot")))?;
    let slots = cfg.nodes.len();
    let (worker, rx) = DiskWorker::spawn(device, index, slots)
        .map_err(|e| RuntimeError::io(format!("cluster.disk_heartbeat {}: cannot start its I/O thread: {e}", device.display())))?;
    let peers: Vec<(String, usize)> =
        cfg.nodes.iter().enumerate().filter(|(_, n)| n.name != node).map(|(i, n)| (n.name.clone(), i)).collect();
    let names: Vec<String> = peers.iter().map(|(n, _)| n.clone()).collect();
    tracing::info!(node, device = %device.display(), slot = index, slots,
        "disk heartbeat: writing this node's slot every heartbeat_interval (O_DIRECT|O_DSYNC) and reading the peers'");
    let stats = DiskStats::new(device, &names);
    Ok((Some(DiskChannel { worker, keys, peers, stats }), rx, None))
}

/// This host's boot (`/proc/sys/kernel/random/boot_id`, new at every kernel boot), which journals are stamped
/// with; `None` where it cannot be read (then journaled fence confirmations are always restored).
fn read_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}
