//! The simulated world: hosts running the real engine, links, power, fence devices and the shared SAN, on a
//! virtual clock with one seeded RNG. Same scenario and seed ⇒ byte-identical trace.
//!
//! After every event the safety invariants are checked (README.md "Safety rules"; ARCHITECTURE.md says where each is enforced): never a pool imported or a target
//! mounted on two powered hosts; never a forced import by a node that has not confirmed the previous owner
//! off; never a fence started by a node without quorum. At the end, the scenario's expectations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::command::Command;
use crate::config::{Config, FenceDeviceKind, TargetKind};
use crate::engine::{AdminRequest, CommandId, ConfigFacts, Engine, Event, FaultSwitches, FenceReason, Input, Journal, Output, Purpose};
use crate::protocol::{self, Envelope, Keys};
use crate::storage::SequenceKind;
use crate::time::Time;
use crate::witness::WitnessServer;

use super::checker;
use super::hardware::{Hardware, HwPending};
use super::network::Network;
use super::scenario::{FaultAction, OrphanFate, Scenario};
use super::storage::{Pending, PoolSpec, PoolStart, SharedStorage};

mod disk;
mod duplicate;
mod liveness;

/// How one run is done.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub seed: u64,
    /// Keep the trace lines (for `--trace`); the hash is always computed.
    pub keep_trace: bool,
    /// Test-only engine faults (prove the checker can fail).
    pub faults: FaultSwitches,
}

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub violations: Vec<String>,
    pub unmet: Vec<String>,
    pub detect_ms: Vec<u64>,
    pub failover_ms: Vec<u64>,
    /// From the loss of a node to the end of the Lustre recovery of every target it held (clients served
    /// again), per completed failover; a target without a recovery window counts at its verification.
    pub restored_ms: Vec<u64>,
    pub fences: u32,
    pub false_failovers: u32,
    /// `zpool import`s started on a host while another import of another pool ran there (parallel takeover).
    pub overlapping_imports: u32,
    pub sim_time: Duration,
    pub trace_sha256: String,
    pub trace: Vec<String>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.unmet.is_empty()
    }
}

/// Things that happen at a point of virtual time.
#[derive(Clone, Debug)]
enum Ev {
    Boot { host: String },
    Tick { host: Arc<str>, boot: u32 },
    /// A datagram as the bytes on the wire (postcard + HMAC, encoded once by the sender), decoded and
    /// authenticated at delivery by each receiver, as the daemon does. `replayed`: a captured datagram sent
    /// again by the scenario (its rejection is expected, an honest one's is a violation).
    Deliver { to: Arc<str>, link: usize, bytes: Arc<Vec<u8>>, replayed: bool },
    WitnessQuery { bytes: Arc<Vec<u8>> },
    WitnessReply { to: String, bytes: Arc<Vec<u8>> },
    StorageDone { host: String, boot: u32, id: CommandId, pending: Box<Pending> },
    /// The daemon of `host` (run `boot`) has seen the previous run's commands gone (`Input::OrphansGone`).
    OrphansGone { host: String, boot: u32 },
    /// A disk heartbeat round of `host`'s daemon run `boot` completes (`world/disk.rs`).
    DiskDone { host: String, boot: u32 },
    HardwareDone { host: String, boot: u32, id: CommandId, pending: Box<HwPending> },
    Fault(usize),
    /// A paused daemon (`pause` with a duration) gets SIGCONT.
    Resume { host: String, since: Time },
    /// After a settle: undo the operator's maintenance and standby.
    UndoOperator,
    /// After a settle: has the cluster converged?
    ConvergeCheck,
}

/// One simulated server.
struct Host {
    /// The host's name, shared by the events addressed to it.
    name: Arc<str>,
    engine: Option<Engine>,
    powered: bool,
    boot: u32,
    /// How many times the host lost power: its kernel boot (journals are stamped with it).
    kernel_boot: u32,
    incarnation: u64,
    journal: Option<Journal>,
    tick_at: Option<Time>,
    sent: Vec<(usize, Arc<Vec<u8>>)>,
    /// Commands running on this host, by (daemon run, id): what a restarted daemon finds left over.
    inflight: BTreeMap<(u32, u64), String>,
    /// The current daemon waits for unkillable leftovers of an earlier run to end.
    orphans_waited: bool,
    /// The daemon is stopped (SIGSTOP) since then: it gets no input until it resumes.
    paused_since: Option<Time>,
    /// What reached the paused daemon (datagrams in its sockets, finished commands, admin requests).
    paused_inputs: Vec<Input>,
    /// When the daemon last resumed from a pause (SIGCONT).
    resumed_at: Option<Time>,
    /// When the current daemon started (`None`: no daemon runs).
    started_at: Option<Time>,
}

impl Host {
    fn new(name: &str) -> Host {
        Host {
            name: name.into(),
            engine: None,
            powered: true,
            boot: 0,
            kernel_boot: 0,
            incarnation: 0,
            journal: None,
            tick_at: None,
            sent: Vec::new(),
            inflight: BTreeMap::new(),
            orphans_waited: false,
            paused_since: None,
            paused_inputs: Vec::new(),
            resumed_at: None,
            started_at: None,
        }
    }
}

/// How many inputs a paused daemon's sockets and pipes hold; later datagrams are dropped (a full socket buffer).
const PAUSED_INPUTS: usize = 2000;

const STORAGE_TOOLS: &[&str] = &["zdb", "zpool", "zfs", "mkdir", "mount", "umount", "df", "lctl", "cat"];
/// How many datagrams per host are kept for `replay`.
const CAPTURE: usize = 400;
/// How long a starting daemon takes to kill and reap the commands its previous run left (`runtime/orphans.rs`).
const ORPHAN_REAP: Duration = Duration::from_millis(50);
/// How often a daemon looks again for leftovers that did not die (`runtime/daemon.rs` `ORPHAN_RECHECK`).
const ORPHAN_RECHECK: Duration = Duration::from_secs(2);
/// A powered-on host boots this long before its daemon starts.
const BOOT_TIME: Duration = Duration::from_secs(20);

/// The world of one run.
pub struct World {
    scenario: Arc<Scenario>,
    cfg: Arc<Config>,
    /// What engines derive from their configuration, computed at the first boot that needs it: `None` for the
    /// cluster's configuration, `Some(host)` for a host of `[node_config]`.
    facts: BTreeMap<Option<String>, Result<Arc<ConfigFacts>, String>>,
    opts: RunOptions,
    now: Time,
    seq: u64,
    queue: BTreeMap<(Time, u64), Ev>,
    rng: ChaCha8Rng,
    hosts: BTreeMap<String, Host>,
    net: Network,
    storage: SharedStorage,
    hardware: Hardware,
    /// The witness's byte-level core, the one `failoverd witness` runs (replay window, keys, vote).
    witness: Option<WitnessServer>,
    key: Vec<u8>,
    keys: Keys,
    hasher: Sha256,
    report: RunReport,
    seen_violations: BTreeSet<String>,
    events_seen: BTreeSet<String>,
    /// `expect.messages` not yet found in any event's message.
    messages_missing: BTreeSet<String>,
    detect_pending: BTreeMap<String, Time>,
    failover_pending: Vec<(Time, String, BTreeSet<String>)>,
    running_on: BTreeMap<String, String>,
    /// The scenario replays captured datagrams: every send is encoded and kept.
    captures: bool,
    /// (fencer, victim) → when the fencer's engine last confirmed the victim off (device or operator).
    confirmed_off: BTreeMap<(String, String), Time>,
    /// (fencer, victim) pairs whose last confirmation was a lie: the victim was powered when it was made.
    lied_off: BTreeSet<(String, String)>,
    /// (fencer, victim) → the victim's kernel boot when the fencer last started fencing it.
    fence_started_boot: BTreeMap<(String, String), u32>,
    /// (fencer, victim) pairs for which the fencer ran a power-off command on some device.
    fence_commands: BTreeSet<(String, String)>,
    /// Leftover commands (host, run, id) a restarted daemon killed: they end without effect.
    killed: BTreeSet<(String, u32, u64)>,
    /// The shared storage or the hosts' power changed since the storage invariants were last checked (they
    /// depend on nothing else, so an unchanged SAN cannot break them).
    storage_dirty: bool,
    /// When every fault stopped (`settle`): liveness is judged from then on.
    settled_at: Option<Time>,
    /// Alerts raised (time, host, event): what may explain a liveness failure.
    alerts: Vec<(Time, String, Event)>,
    /// Did an operator action put the cluster in maintenance, and which nodes in standby (undone by `settle`).
    operator_touched: (bool, BTreeSet<String>),
    /// Nodes whose timers fire late (`clock`): by how much.
    clock_faults: BTreeMap<String, Duration>,
    /// The cluster converged after the settle: the run ended early.
    converged: bool,
    /// (host, target): a start sequence (forced or acquire) under way there, not verified yet.
    starting: BTreeSet<(String, String)>,
    /// The disk heartbeat area and the hosts' paths to it (`[cluster] disk_heartbeat`).
    disk: Option<disk::DiskArea>,
}

impl World {
    pub fn new(scenario: Arc<Scenario>, opts: RunOptions) -> Result<World, String> {
        let cfg = Arc::new(scenario.config.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let key: Vec<u8> = (0..32).map(|_| rng.random()).collect();
        let w = &scenario.world;
        let mut world = World {
            net: Network::new(cfg.link_count(), w.link_delay, w.link_jitter),
            storage: SharedStorage::new(),
            hardware: build_hardware(&cfg)?,
            witness: cfg.witness.as_ref().map(|_| {
                let clusters = BTreeMap::from([(cfg.cluster.name.clone(), Keys::new(key.clone(), None))]);
                WitnessServer::new(clusters, cfg.cluster.dead_after, 1)
            }),
            keys: Keys::new(key.clone(), None),
            key,
            scenario: scenario.clone(),
            cfg,
            facts: BTreeMap::new(),
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            rng,
            hosts: BTreeMap::new(),
            hasher: Sha256::new(),
            report: RunReport { scenario: scenario.name.clone(), seed: opts.seed, ..RunReport::default() },
            opts,
            seen_violations: BTreeSet::new(),
            events_seen: BTreeSet::new(),
            messages_missing: scenario.expect.messages.iter().cloned().collect(),
            detect_pending: BTreeMap::new(),
            failover_pending: Vec::new(),
            running_on: BTreeMap::new(),
            confirmed_off: BTreeMap::new(),
            lied_off: BTreeSet::new(),
            fence_started_boot: BTreeMap::new(),
            captures: scenario.faults.iter().any(|f| matches!(f.action, FaultAction::Replay { .. })),
            fence_commands: BTreeSet::new(),
            killed: BTreeSet::new(),
            storage_dirty: true,
            settled_at: None,
            alerts: Vec::new(),
            operator_touched: (false, BTreeSet::new()),
            clock_faults: BTreeMap::new(),
            converged: false,
            starting: BTreeSet::new(),
            disk: None,
        };
        if let Some(device) = &world.cfg.cluster.disk_heartbeat {
            let nodes: Vec<String> = world.cfg.nodes.iter().map(|n| n.name.clone()).collect();
            world.disk = Some(disk::DiskArea::new(device.display().to_string(), &nodes, world.opts.seed));
        }
        world.setup()?;
        Ok(world)
    }

    // ----- setup ------------------------------------------------------------------------------------

    fn setup(&mut self) -> Result<(), String> {
        let cfg = self.cfg.clone();
        self.storage.timing.forced_double_check_percent = self.scenario.world.openzfs.forced_double_check_percent();
        self.storage.recovery =
            super::recovery::RecoveryModel::new(self.scenario.world.lustre_clients, self.scenario.world.lustre_clients_lost);
        for n in &cfg.nodes {
            self.storage.add_host(&n.name, n.hostid).map_err(|e| e.to_string())?;
            if let (Some(domain), Some(h)) = (&self.scenario.world.domain, self.storage.hosts.get_mut(&n.name)) {
                h.uname = Some(format!("{}.{domain}", n.name));
            }
            self.hosts.insert(n.name.clone(), Host::new(&n.name));
            let start = Duration::from_millis(self.rng.random_range(0..200));
            self.schedule(Time::ZERO + start, Ev::Boot { host: n.name.clone() });
        }
        let mut pools: BTreeMap<String, (PoolSpec, String)> = BTreeMap::new();
        for t in &cfg.targets {
            let owner = self.scenario.world.initial_owners.get(&t.name).cloned().unwrap_or_else(|| t.nodes[0].clone());
            match &t.kind {
                TargetKind::Zfs { pool, dataset } | TargetKind::ZfsDataset { pool, dataset } => {
                    let guid = self.rng.random::<u64>() | 1;
                    let entry = pools.entry(pool.clone()).or_insert_with(|| (PoolSpec::new(pool, guid).multihost(self.scenario.world.multihost), owner.clone()));
                    entry.0 = entry.0.clone().target(dataset, &t.lctl_device);
                }
                TargetKind::Ldiskfs { device } => {
                    self.storage.add_ldiskfs(&device.display().to_string(), &t.lctl_device, true).map_err(|e| e.to_string())?;
                }
            }
        }
        for (_, (spec, owner)) in pools {
            self.storage.add_pool(spec, PoolStart::ImportedOn(owner), Time::ZERO).map_err(|e| e.to_string())?;
        }
        for t in &cfg.targets {
            let owner = self.scenario.world.initial_owners.get(&t.name).cloned().unwrap_or_else(|| t.nodes[0].clone());
            let mp = t.mountpoint.display().to_string();
            self.setup_command(&owner, &["mkdir", "-p", &mp])?;
            self.setup_command(&owner, &["mount", "-t", t.kind.fstype().as_str(), &t.kind.mount_source(), &mp])?;
            self.running_on.insert(t.name.clone(), owner);
        }
        let times: Vec<Duration> = self.scenario.faults.iter().map(|f| f.at).collect();
        for (i, at) in times.into_iter().enumerate() {
            self.schedule(Time::ZERO + at, Ev::Fault(i));
        }
        Ok(())
    }

    fn setup_command(&mut self, host: &str, argv: &[&str]) -> Result<(), String> {
        let cmd = Command::new(argv.iter().copied(), Duration::from_secs(300));
        let p = self.storage.begin(host, &cmd, Time::ZERO, &mut self.rng);
        let r = self.storage.finish(host, p.op, Time::ZERO);
        if r.success() {
            Ok(())
        } else {
            Err(format!("setup on {host}: `{}`: {}", cmd.display(), r.summary()))
        }
    }

    // ----- the loop ---------------------------------------------------------------------------------

    fn schedule(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Run to the end of the scenario and judge it.
    pub fn run(mut self) -> RunReport {
        let end = Time::ZERO + self.scenario.duration;
        while let Some(((t, _), ev)) = self.queue.pop_first() {
            if t > end {
                break;
            }
            self.now = t;
            self.process(ev);
            if self.storage_dirty {
                self.storage_dirty = false;
                self.check_storage_invariants();
            }
            if self.converged {
                break;
            }
        }
        if !self.converged {
            self.now = end;
        }
        self.finish()
    }

    fn process(&mut self, ev: Ev) {
        match ev {
            Ev::Boot { host } => self.boot(&host),
            Ev::Tick { host, boot } => {
                let current = self.hosts.get(&*host).is_some_and(|h| h.boot == boot && h.tick_at == Some(self.now));
                if current {
                    self.hosts.get_mut(&*host).expect("host").tick_at = None;
                    // as the daemon does: a deadline served later than stall_threshold is a stall of its own
                    let late = self.clock_faults.get(&*host).copied().unwrap_or_default();
                    self.feed(&host, Input::timer(late, self.cfg.cluster.stall_threshold));
                }
            }
            // a host whose daemon is not running reads nothing (an honest datagram decodes for every receiver,
            // so none is lost to the check below)
            Ev::Deliver { to, replayed: false, .. } if self.hosts.get(&*to).is_none_or(|h| h.engine.is_none()) => {}
            Ev::Deliver { to, link, bytes, replayed } => match protocol::decode(&bytes, &self.keys) {
                Ok(envelope) => self.feed(&to, Input::Datagram { link, envelope }),
                Err(e) if replayed => self.trace(&to, &format!("datagram rejected: {e}")),
                Err(e) => self.violation(format!("{to}: an honest datagram does not decode: {e}")),
            },
            Ev::WitnessQuery { bytes } => self.witness_query(&bytes),
            Ev::WitnessReply { to, bytes } => {
                if let Ok(envelope) = protocol::decode(&bytes, &self.keys) {
                    self.feed(&to, Input::Datagram { link: 0, envelope });
                }
            }
            Ev::StorageDone { host, boot, id, pending } => {
                let powered = self.hosts.get(&host).is_some_and(|h| h.powered);
                if !powered {
                    return; // the host lost power: the command never finished
                }
                // a command of a run whose host has lost power since died with it (power_off forgets them all),
                // even when the host is powered again by now
                let died = !self.hosts.get(&host).is_some_and(|h| h.inflight.contains_key(&(boot, id.0)));
                if self.command_ended(&host, boot, id) || died {
                    return; // killed by the restarted daemon before it looked at the storage, or died
                }
                self.storage_dirty = true;
                let result = self.storage.finish(&host, pending.op, self.now);
                self.trace(&host, &format!("done #{} {}", id.0, result.summary()));
                if self.hosts[&host].boot == boot {
                    self.feed(&host, Input::CommandDone { id, result });
                }
            }
            Ev::HardwareDone { host, boot, id, pending } => {
                if self.command_ended(&host, boot, id) {
                    return;
                }
                let (result, effects) = self.hardware.finish(pending.op, self.now);
                for e in effects {
                    self.trace("world", &format!("power {} {}", e.node, if e.powered { "on" } else { "off" }));
                    if e.powered {
                        self.power_on(&e.node);
                    } else {
                        self.power_off(&e.node);
                    }
                }
                self.trace(&host, &format!("done #{} {}", id.0, result.summary()));
                let live = self.hosts.get(&host).is_some_and(|h| h.powered && h.boot == boot);
                if live {
                    self.feed(&host, Input::CommandDone { id, result });
                }
            }
            Ev::Fault(i) => self.fault(i),
            Ev::DiskDone { host, boot } => self.disk_done(&host, boot),
            Ev::Resume { host, since } => {
                if self.hosts.get(&host).is_some_and(|h| h.paused_since == Some(since)) {
                    self.resume(&host);
                }
            }
            Ev::UndoOperator => self.undo_operator(),
            Ev::ConvergeCheck => {
                if self.converged() {
                    self.trace("CHECK", "converged after the faults stopped: the run ends");
                    self.converged = true;
                } else {
                    let at = self.now + liveness::CONVERGE_CHECK;
                    self.schedule(at, Ev::ConvergeCheck);
                }
            }
            Ev::OrphansGone { host, boot } => {
                let current = self.hosts.get(&host).is_some_and(|h| h.boot == boot && h.engine.is_some());
                if current {
                    self.trace(&host, "the previous run's commands are gone: discovery may start");
                    self.hosts.get_mut(&host).expect("host").orphans_waited = false;
                    self.feed(&host, Input::OrphansGone);
                }
            }
        }
    }

    /// A command of `host`'s daemon run `boot` ends now. True when a restarted daemon killed it (no effect,
    /// nobody told). When it was the last leftover a new daemon waited for, that daemon sees it gone at its
    /// next look.
    fn command_ended(&mut self, host: &str, boot: u32, id: CommandId) -> bool {
        if self.killed.remove(&(host.to_string(), boot, id.0)) {
            return true;
        }
        let Some(h) = self.hosts.get_mut(host) else { return false };
        h.inflight.remove(&(boot, id.0));
        let current = h.boot;
        if h.orphans_waited && h.engine.is_some() && !h.inflight.keys().any(|(b, _)| *b < current) {
            let at = self.now + ORPHAN_RECHECK;
            self.schedule(at, Ev::OrphansGone { host: host.to_string(), boot: current });
        }
        false
    }

    /// A daemon starts on a host whose previous daemon may have left commands running: as `failoverd run`
    /// does, it kills them and waits before it looks at the storage (or, when they cannot be killed, waits
    /// for them to end).
    fn reap_orphans(&mut self, host: &str) {
        let Some(h) = self.hosts.get_mut(host) else { return };
        let boot = h.boot;
        let left: Vec<((u32, u64), String)> = h.inflight.iter().filter(|((b, _), _)| *b < boot).map(|(k, v)| (*k, v.clone())).collect();
        if left.is_empty() || self.opts.faults.ignore_orphans {
            self.feed(host, Input::OrphansGone);
            return;
        }
        match self.scenario.world.orphans {
            OrphanFate::Killed => {
                for ((b, id), _) in &left {
                    h.inflight.remove(&(*b, *id));
                    self.killed.insert((host.to_string(), *b, *id));
                }
                for (_, cmd) in &left {
                    self.trace(host, &format!("killed a command of the previous run: {cmd}"));
                }
                let at = self.now + ORPHAN_REAP;
                self.schedule(at, Ev::OrphansGone { host: host.to_string(), boot });
            }
            OrphanFate::Unkillable => {
                h.orphans_waited = true;
                let commands: Vec<String> = left.into_iter().map(|(_, c)| c).collect();
                self.feed(host, Input::OrphansStuck { commands });
            }
        }
    }

    fn boot(&mut self, host: &str) {
        let Some(h) = self.hosts.get_mut(host) else { return };
        if !h.powered || h.engine.is_some() {
            return;
        }
        h.boot += 1;
        h.incarnation += 1;
        // each boot draws one number from the world's RNG (it was the engine's seed, when the engine had an RNG
        // it never used): drawn still, so that every seed's schedule stays what it was
        let _ = self.rng.random::<u64>();
        let kernel_boot = h.kernel_boot.to_string();
        let (journal, dropped) = h.journal.clone().map(|j| j.for_boot(Some(&kernel_boot))).unzip();
        let inc = h.incarnation;
        if let Some(dropped) = dropped.filter(|d| !d.is_empty()) {
            self.trace(host, &format!("journal: fence confirmations of an earlier boot dropped: {}", dropped.join(", ")));
        }
        // a node of `[node_config]` runs with its own file (an operator's drift); the world itself (power,
        // storage, links) follows the cluster's config
        let own = self.scenario.node_configs.contains_key(host).then(|| host.to_string());
        let facts = match self.facts.get(&own) {
            Some(f) => f.clone(),
            None => {
                let cfg = self.scenario.node_configs.get(host).map_or_else(|| self.cfg.clone(), |c| Arc::new(c.clone()));
                let f = ConfigFacts::of(cfg).map(Arc::new);
                self.facts.insert(own, f.clone());
                f
            }
        };
        match facts.and_then(|f| Engine::from_facts(f, host, inc, journal, self.now)) {
            Ok(mut e) => {
                e.set_faults(self.opts.faults);
                let now = self.now;
                let h = self.hosts.get_mut(host).expect("host");
                h.engine = Some(e);
                h.started_at = Some(now);
                self.trace(host, &format!("daemon started (incarnation {inc})"));
                self.drain(host);
                self.reap_orphans(host);
            }
            Err(e) => self.violation(format!("{host}: engine did not start: {e}")),
        }
    }

    /// Feed an input to a host's engine (if its daemon runs) and carry out what it asks.
    fn feed(&mut self, host: &str, input: Input) {
        let now = self.now;
        if let Some(h) = self.hosts.get_mut(host).filter(|h| h.paused_since.is_some() && h.engine.is_some()) {
            // a stopped process reads nothing: its overdue timer is seen at resume, the rest waits in its sockets
            let timer = matches!(input, Input::Tick | Input::Stalled { .. });
            let socket_full = matches!(input, Input::Datagram { .. }) && h.paused_inputs.len() >= PAUSED_INPUTS;
            if !timer && !socket_full {
                h.paused_inputs.push(input);
            }
            return;
        }
        let Some(engine) = self.hosts.get_mut(host).and_then(|h| h.engine.as_mut()) else { return };
        engine.handle(now, input);
        self.drain(host);
    }

    fn drain(&mut self, host: &str) {
        loop {
            let out = self.hosts.get_mut(host).and_then(|h| h.engine.as_mut()).and_then(Engine::poll_output);
            let Some(out) = out else { break };
            self.output(host, out);
        }
        let Some(h) = self.hosts.get_mut(host) else { return };
        let Some(e) = h.engine.as_ref() else { return };
        let mut next = e.next_deadline().max(self.now);
        if let Some(late) = self.clock_faults.get(host) {
            next = next + *late; // this host's timers fire late
        }
        if h.tick_at.is_none_or(|t| next < t || t < self.now) {
            h.tick_at = Some(next);
            let (boot, name) = (h.boot, h.name.clone());
            self.schedule(next, Ev::Tick { host: name, boot });
        }
    }

    fn output(&mut self, host: &str, out: Output) {
        if matches!(out, Output::Run { .. }) && duplicate::is_duplicate(host) {
            return;
        }
        match out {
            Output::Send { link, envelope } => self.send(host, link, envelope),
            Output::SendWitness { envelope } => {
                if self.witness.is_some() && !self.net.witness_cut.contains(host) {
                    if let Ok(bytes) = protocol::encode_keyed(&envelope, &self.keys) {
                        let at = self.now + self.net.base_delay;
                        self.schedule(at, Ev::WitnessQuery { bytes: Arc::new(bytes) });
                    }
                }
            }
            Output::Run { id, command, purpose } => self.run_command(host, id, command, purpose),
            Output::Persist(mut j) => {
                if let Some(h) = self.hosts.get_mut(host) {
                    j.boot_id = Some(h.kernel_boot.to_string());
                    h.journal = Some(j);
                }
            }
            Output::Event(e) => self.on_event(host, e),
            Output::AdminReply { result, .. } => self.trace(host, &format!("admin reply {result:?}")),
            Output::Left => self.trace(host, "left the cluster"),
            Output::DiskBeat { slot } => self.disk_beat(host, slot),
        }
    }

    fn send(&mut self, host: &str, link: usize, envelope: Envelope) {
        // what the daemon does: encode (postcard + HMAC) once, and every receiver decodes the bytes
        let bytes = match protocol::encode_keyed(&envelope, &self.keys) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                self.violation(format!("{host}: heartbeat could not be encoded: {e}"));
                return;
            }
        };
        if self.captures {
            let h = self.hosts.get_mut(host).expect("host");
            h.sent.push((link, bytes.clone()));
            if h.sent.len() > CAPTURE {
                h.sent.remove(0);
            }
        }
        for (name, h) in self.hosts.iter().filter(|(n, _)| *n != host) {
            if let Some(d) = self.net.transit(&mut self.rng, link, host, name) {
                // (`schedule` inlined: the hosts are borrowed)
                self.seq += 1;
                let ev = Ev::Deliver { to: h.name.clone(), link, bytes: bytes.clone(), replayed: false };
                self.queue.insert((self.now + d, self.seq), ev);
            }
        }
    }

    fn witness_query(&mut self, bytes: &[u8]) {
        let Some(w) = self.witness.as_mut() else { return };
        match w.handle(self.now, bytes) {
            Ok(answer) => {
                if self.net.witness_cut.contains(&answer.node) {
                    return; // the query arrived, the reply is lost
                }
                let at = self.now + self.net.base_delay;
                self.schedule(at, Ev::WitnessReply { to: answer.node, bytes: Arc::new(answer.bytes) });
            }
            Err(why) => self.trace("witness", &format!("witness dropped a datagram ({}): {why}", why.kind())),
        }
    }

    // ----- commands and invariants ------------------------------------------------------------------

    fn run_command(&mut self, host: &str, id: CommandId, cmd: Command, purpose: Purpose) {
        self.trace(host, &format!("run #{} {}", id.0, cmd.display()));
        self.check_command_invariants(host, &cmd, &purpose);
        let boot = self.hosts[host].boot;
        if let Some(h) = self.hosts.get_mut(host) {
            h.inflight.insert((boot, id.0), cmd.display());
        }
        if STORAGE_TOOLS.contains(&cmd.program()) {
            self.storage_dirty = true;
            let pending = self.storage.begin(host, &cmd, self.now, &mut self.rng);
            let at = pending.finish_at.max(self.now);
            self.schedule(at, Ev::StorageDone { host: host.to_string(), boot, id, pending: Box::new(pending) });
        } else {
            let pending = self.hardware.begin(host, &cmd, self.now, &mut self.rng);
            let at = pending.finish_at.max(self.now);
            self.schedule(at, Ev::HardwareDone { host: host.to_string(), boot, id, pending: Box::new(pending) });
        }
    }

    fn check_command_invariants(&mut self, host: &str, cmd: &Command, purpose: &Purpose) {
        let display = cmd.display();
        let mut found = Vec::new();
        for never in &self.scenario.expect.never_commands {
            if display.starts_with(never.as_str()) {
                found.push(format!("{host} ran `{display}`, which this scenario forbids"));
            }
        }
        // the quorum of a fence is checked when it starts (Event::FenceStarted)
        if let Purpose::Fence { victim, action: crate::fence::FenceAction::Off | crate::fence::FenceAction::Reboot, .. } = purpose {
            self.fence_commands.insert((host.to_string(), victim.clone()));
        }
        if let Purpose::Storage { target, sequence: SequenceKind::Forced | SequenceKind::Acquire, step } = purpose {
            if *step == crate::storage::Step::Mount {
                found.extend(self.start_order_violation(host, target));
            }
        }
        let import = cmd.program() == "zpool" && cmd.argv.get(1).is_some_and(|a| a == "import");
        if import {
            let pool = cmd.argv.last().cloned().unwrap_or_default();
            let others = self.hosts.get(host).is_some_and(|h| {
                h.inflight.values().any(|c| c.starts_with("zpool import") && c.split_whitespace().last() != Some(pool.as_str()))
            });
            if others {
                self.report.overlapping_imports += 1;
                self.trace("CHECK", &format!("{host}: import of {pool} overlaps another import"));
            }
        }
        // rule 2 with the importer's own knowledge: legitimate when the importer confirmed the label's host
        // off and that host has not imported the pool again since (a rebooted host holds nothing: pools use
        // cachefile=none). A confirmation its fence device lied about (the host was never off) is the
        // exception for that second half: the importer cannot know of the import, as long as it still holds
        // the host fenced (it heard nothing since that voided the record); then MMP must refuse the import,
        // and rule 1 checks that it does (swarm seed 368361)
        let pool = checker::forced_import_pool(cmd).unwrap_or_default().to_string();
        let cleared = |last: &str| {
            let key = (host.to_string(), last.to_string());
            let confirmed_at = self.confirmed_off.get(&key).copied();
            let imported_since = self.storage.pool(&pool).and_then(|p| p.imported_on.get(last)).map(|i| i.since);
            let powered = self.hosts.get(last).is_some_and(|h| h.powered);
            let believed_lie = self.lied_off.contains(&key)
                && self.hosts.get(host).and_then(|h| h.engine.as_ref()).is_some_and(|e| e.is_fenced(last));
            match (confirmed_at, imported_since) {
                (None, _) => false,
                (Some(c), Some(i)) => !(powered && i > c) || believed_lie,
                (Some(_), None) => true,
            }
        };
        found.extend(checker::forced_import_after_fence(&self.storage, host, cmd, cleared, "not confirmed off"));
        for v in found {
            self.violation(v);
        }
    }

    /// start_order: `host` mounts `target` only after every lower start_order target it was starting is
    /// verified there (an MDT needs the MGS of its node).
    fn start_order_violation(&self, host: &str, target: &str) -> Option<String> {
        let order = |t: &str| self.cfg.target(t).map(|c| c.start_order);
        let mine = order(target)?;
        let early: Vec<&str> = self
            .starting
            .iter()
            .filter(|(h, t)| h == host && t != target && order(t).is_some_and(|o| o < mine))
            .map(|(_, t)| t.as_str())
            .collect();
        (!early.is_empty()).then(|| format!("{host} mounted {target} while {} (lower start_order) was not verified there yet", early.join(", ")))
    }

    fn check_storage_invariants(&mut self) {
        for v in checker::storage_invariants(&self.storage) {
            self.violation(v);
        }
    }

    fn violation(&mut self, v: String) {
        if self.seen_violations.insert(v.clone()) {
            self.trace("CHECK", &format!("VIOLATION {v}"));
            self.report.violations.push(format!("t={} {v}", self.now));
        }
    }

    // ----- events and metrics -----------------------------------------------------------------------

    fn on_event(&mut self, host: &str, e: Event) {
        let name = e.name();
        self.trace(host, &format!("event {}", serde_json::to_string(&e).unwrap_or(name.clone())));
        self.events_seen.insert(name);
        if !self.messages_missing.is_empty() {
            let message = e.message();
            self.messages_missing.retain(|m| !message.contains(m.as_str()));
        }
        self.note_alert(host, &e);
        match &e {
            Event::PeerDead { node, .. } => {
                if let Some(t) = self.detect_pending.remove(node) {
                    self.report.detect_ms.push(self.now.since(t).as_millis() as u64);
                }
                // a paused daemon, or one whose timers fire late, is silent or late for real: not a false failover
                let node_fine = self.hosts.get(node).is_some_and(|h| h.powered && h.engine.is_some() && h.paused_since.is_none())
                    && !self.clock_faults.contains_key(node);
                if node_fine && self.net.connected(host, node) && self.net.connected(node, host) && !self.partitioned_recently(node) {
                    self.report.false_failovers += 1;
                }
            }
            Event::FenceStarted { node, reason, attempt, .. } => {
                if let Some(v) = self.hosts.get(node.as_str()) {
                    self.fence_started_boot.insert((host.to_string(), node.clone()), v.kernel_boot);
                }
                if *attempt == 1 {
                    self.report.fences += 1;
                }
                // a healthy node still reachable one way (a one-way loss, a partial partition) is fenced: a false
                // failover the PeerDead count above leaves out for partitioned nodes
                if *attempt == 1 && *reason == FenceReason::PeerDead && self.partitioned_recently(node) && self.healthy_and_reachable(node) {
                    self.report.false_failovers += 1;
                }
                self.check_disk_fence(host, &e);
                let quorate = self.hosts.get(host).and_then(|h| h.engine.as_ref()).is_some_and(Engine::is_quorate);
                if *reason != FenceReason::Operator && !quorate {
                    self.violation(format!("{host} started fencing {node} without quorum"));
                }
            }
            Event::FenceConfirmed { node, action: crate::fence::FenceAction::Off | crate::fence::FenceAction::Reboot, .. } => {
                if !self.fence_commands.contains(&(host.to_string(), node.clone())) {
                    self.violation(format!("{host} recorded {node} as fenced without running any fence device"));
                }
                self.confirmed_off.insert((host.to_string(), node.clone()), self.now);
                // a lie: the victim is powered and did not lose power since this fence started
                let started = self.fence_started_boot.get(&(host.to_string(), node.clone())).copied();
                let lie = self.hosts.get(node.as_str()).is_some_and(|h| h.powered && Some(h.kernel_boot) == started);
                self.set_lied_off(host, node, lie);
            }
            Event::FenceConfirmedByOperator { node } => {
                self.confirmed_off.insert((host.to_string(), node.clone()), self.now);
                self.set_lied_off(host, node, false);
            }
            Event::SequenceStarted { target, sequence: SequenceKind::Forced | SequenceKind::Acquire, .. } => {
                self.starting.insert((host.to_string(), target.clone()));
            }
            Event::SequenceFailed { target, sequence: SequenceKind::Forced | SequenceKind::Acquire, .. } => {
                self.starting.remove(&(host.to_string(), target.clone()));
            }
            // a confirmation taken from a peer counts for rule 2 only if that peer really made it, and from the
            // moment the peer made it (an import by the fenced node after that moment is not cleared)
            Event::FenceConfirmedByPeer { node, peer, .. } => match self.confirmed_off.get(&(peer.clone(), node.clone())).copied() {
                Some(at) => {
                    self.confirmed_off.insert((host.to_string(), node.clone()), at);
                    let lie = self.lied_off.contains(&(peer.clone(), node.clone()));
                    self.set_lied_off(host, node, lie);
                }
                None => self.violation(format!("{host} took {peer}'s confirmation that {node} is off, which {peer} never made")),
            },
            Event::SequenceDone { target, sequence: SequenceKind::Forced | SequenceKind::Acquire, .. } => {
                self.starting.remove(&(host.to_string(), target.clone()));
                self.running_on.insert(target.clone(), host.to_string());
                self.settle_failovers();
            }
            Event::SequenceStarted { target, sequence: SequenceKind::Release, .. } => {
                self.running_on.remove(target);
            }
            _ => {}
        }
    }

    /// `node` runs (powered, daemon up) and some other running node hears it or is heard by it.
    fn healthy_and_reachable(&self, node: &str) -> bool {
        let running = |n: &str| self.hosts.get(n).is_some_and(|h| h.powered && h.engine.is_some());
        running(node) && self.hosts.keys().any(|x| x != node && running(x) && (self.net.connected(node, x) || self.net.connected(x, node)))
    }

    /// A node cut by a partition, or on a link with extra loss, can be declared dead legitimately.
    fn partitioned_recently(&self, node: &str) -> bool {
        self.net.links.iter().any(|l| l.cuts.iter().any(|(a, b)| a == node || b == node))
    }

    fn settle_failovers(&mut self) {
        let now = self.now;
        let running = &self.running_on;
        let (cfg, recovery) = (&self.cfg, &self.storage.recovery);
        let mut done = Vec::new();
        let mut restored = Vec::new();
        self.failover_pending.retain(|(t, failed, targets)| {
            let ok = targets.iter().all(|tg| running.get(tg).is_some_and(|h| h != failed));
            if ok {
                done.push(now.since(*t).as_millis() as u64);
                // the clients are served again when the last target's recovery window is over
                let end = targets
                    .iter()
                    .filter_map(|tg| cfg.target(tg))
                    .filter_map(|tc| recovery.end_of(&tc.lctl_device))
                    .fold(now, Time::max);
                restored.push(end.since(*t).as_millis() as u64);
            }
            !ok
        });
        self.report.failover_ms.extend(done);
        self.report.restored_ms.extend(restored);
    }

    // ----- faults -----------------------------------------------------------------------------------

    fn node_lost(&mut self, node: &str) {
        self.detect_pending.entry(node.to_string()).or_insert(self.now);
        let held: BTreeSet<String> = self.running_on.iter().filter(|(_, h)| *h == node).map(|(t, _)| t.clone()).collect();
        if !held.is_empty() {
            self.failover_pending.push((self.now, node.to_string(), held));
        }
    }

    fn crash(&mut self, node: &str) {
        self.starting.retain(|(h, _)| h != node);
        if let Some(h) = self.hosts.get_mut(node) {
            if h.engine.take().is_some() {
                h.boot += 1;
                h.tick_at = None;
            }
            h.started_at = None;
            h.paused_since = None; // SIGKILL ends a stopped process too
            h.paused_inputs.clear();
        }
    }

    fn power_off(&mut self, node: &str) {
        let Some(h) = self.hosts.get_mut(node) else { return };
        if !h.powered {
            return;
        }
        h.powered = false;
        self.storage_dirty = true;
        h.engine = None;
        h.started_at = None;
        self.starting.retain(|(h, _)| h != node);
        h.boot += 1;
        h.kernel_boot += 1;
        h.tick_at = None;
        h.inflight.clear(); // every command dies with the power
        h.orphans_waited = false;
        h.paused_since = None;
        h.paused_inputs.clear();
        self.storage.set_powered(node, false, self.now);
        self.hardware.set_chassis(node, false);
        self.running_on.retain(|_, h| h != node);
    }

    fn power_on(&mut self, node: &str) {
        let Some(h) = self.hosts.get_mut(node) else { return };
        if h.powered {
            return;
        }
        h.powered = true;
        self.storage_dirty = true;
        self.storage.set_powered(node, true, self.now);
        self.hardware.set_chassis(node, true);
        for (pdu, outlet) in device_outlets(&self.cfg, node) {
            self.hardware.set_outlet(&pdu, outlet, true);
        }
        let at = self.now + BOOT_TIME;
        self.schedule(at, Ev::Boot { host: node.to_string() });
    }

    fn admin(&mut self, via: &str, request: AdminRequest) {
        self.trace(via, &format!("operator: {}", serde_json::to_string(&request).unwrap_or_default()));
        self.feed(via, Input::Admin { id: self.seq, request });
    }

    fn fault(&mut self, i: usize) {
        let f = self.scenario.faults[i].clone();
        self.trace("world", &format!("fault {:?}", f.action));
        match f.action {
            FaultAction::Crash { node } => {
                self.node_lost(&node);
                self.crash(&node);
            }
            FaultAction::PowerOff { node } => {
                self.node_lost(&node);
                self.power_off(&node);
            }
            FaultAction::PowerOn { node } => self.power_on(&node),
            FaultAction::Restart { node } => {
                self.crash(&node);
                let at = self.now + Duration::from_secs(1);
                self.schedule(at, Ev::Boot { host: node });
            }
            FaultAction::Partition { groups, link, witness_with } => {
                for g in &groups {
                    for n in g {
                        self.detect_pending.entry(n.clone()).or_insert(self.now);
                    }
                }
                self.net.partition(&groups, link);
                if let Some(w) = witness_with {
                    let side: BTreeSet<String> = groups.iter().find(|g| g.contains(&w)).cloned().unwrap_or_default().into_iter().collect();
                    for n in self.cfg.nodes.iter().filter(|n| !side.contains(&n.name)) {
                        self.net.witness_cut.insert(n.name.clone());
                    }
                }
            }
            FaultAction::Heal { link } => self.net.heal(link),
            FaultAction::Cut { from, to, link } => self.net.cut_one_way(&from, &to, link),
            FaultAction::Loss { link, rate } => self.net.links[link].loss = rate.clamp(0.0, 1.0),
            FaultAction::Delay { link, delay } => self.net.links[link].extra_delay = delay,
            FaultAction::Bmc { node, fault, delay } => self.device_fault(&node, true, &fault, delay),
            FaultAction::Pdu { node, fault } => self.device_fault(&node, false, &fault, None),
            FaultAction::Migrate { target, to, via } => {
                let via = via.or_else(|| self.running_on.get(&target).cloned()).unwrap_or_else(|| to.clone());
                self.admin(&via, AdminRequest::Migrate { target, to });
            }
            FaultAction::Replay { node } => {
                let sent = self.hosts.get(&node).map(|h| h.sent.clone()).unwrap_or_default();
                let others: Vec<Arc<str>> = self.hosts.iter().filter(|(n, _)| **n != node).map(|(_, h)| h.name.clone()).collect();
                for (link, bytes) in sent {
                    for to in &others {
                        let at = self.now + self.net.base_delay;
                        self.schedule(at, Ev::Deliver { to: to.clone(), link, bytes: bytes.clone(), replayed: true });
                    }
                }
            }
            FaultAction::Storage { node, fault, target } => self.storage_fault(&node, &fault, target.as_deref()),
            FaultAction::Maintenance { on, via } => {
                self.operator_touched.0 |= on;
                self.admin(&via, AdminRequest::Maintenance { on })
            }
            FaultAction::Standby { node, on, via } => {
                if on {
                    self.operator_touched.1.insert(node.clone());
                }
                self.admin(&via, AdminRequest::Standby { node, on })
            }
            FaultAction::ConfirmFenced { node, via, checked } => {
                if checked && self.hosts.get(&node).is_some_and(|h| h.powered) {
                    self.trace(&via, &format!("operator: {node} is powered, no confirm-fenced"));
                } else {
                    self.admin(&via, AdminRequest::ConfirmFenced { node });
                }
            }
            FaultAction::OverrideWaitForAll { via } => self.admin(&via, AdminRequest::OverrideWaitForAll),
            FaultAction::Duplicate { node, on } => self.duplicate(&node, on),
            FaultAction::Settle => self.settle(),
            FaultAction::Pause { node, duration } => {
                let now = self.now;
                let Some(h) = self.hosts.get_mut(&node).filter(|h| h.engine.is_some() && h.paused_since.is_none()) else { return };
                h.paused_since = Some(now);
                if let Some(d) = duration {
                    self.schedule(now + d, Ev::Resume { host: node, since: now });
                }
            }
            FaultAction::Resume { node } => self.resume(&node),
            FaultAction::Clock { node, late } => {
                if late.is_zero() {
                    self.clock_faults.remove(&node);
                } else {
                    self.clock_faults.insert(node.clone(), late);
                }
                // re-arm the host's timer with the new lag
                if let Some(h) = self.hosts.get_mut(&node) {
                    h.tick_at = None;
                }
                self.drain(&node);
            }
            FaultAction::WitnessCut { nodes } => {
                for n in nodes {
                    self.net.witness_cut.insert(n);
                }
            }
        }
    }

    /// Set a fault on the node's BMCs (`bmc`) or PDUs.
    fn device_fault(&mut self, node: &str, bmc: bool, fault: &str, delay: Option<Duration>) {
        let addrs = device_addresses(&self.cfg, node, bmc);
        if addrs.is_empty() {
            self.violation(format!("scenario: {node} has no {} device", if bmc { "ipmi" } else { "pdu-snmp" }));
        }
        for a in addrs {
            let Some(f) = self.hardware.faults_mut(&a) else { continue };
            match fault {
                "ok" => *f = Default::default(),
                "unreachable" => f.unreachable = true,
                "slow" => f.slow = Some(delay.unwrap_or(Duration::from_secs(5))),
                "lying" => f.lying = true,
                "wrong-password" => f.wrong_password = true,
                "hang" => f.hang = true,
                other => {
                    let other = other.to_string();
                    self.violation(format!("scenario: unknown device fault {other}"));
                    return;
                }
            }
        }
    }

    fn storage_fault(&mut self, node: &str, fault: &str, target: Option<&str>) {
        self.storage_dirty = true;
        let pool = target.and_then(|t| self.cfg.target(t)).and_then(|t| t.kind.pool().map(str::to_string));
        match fault {
            "suspend-pool" => match pool {
                Some(p) => self.storage.suspend_pool(&p, self.now),
                None => self.violation("scenario: suspend-pool needs a ZFS target".into()),
            },
            "foreign-label" => match pool.and_then(|p| self.storage.pools.get_mut(&p)) {
                // the label now names a host outside the cluster, as if another system had imported the pool
                Some(p) => {
                    p.label.hostname = "oss9".into();
                    p.label.hostid = 0x0999_9999;
                }
                None => self.violation("scenario: foreign-label needs a ZFS target".into()),
            },
            "path-down" => self.disk_path(node, disk::PathState::Down),
            "path-stall" => self.disk_path(node, disk::PathState::Stall),
            "path-restore" => self.disk_path(node, disk::PathState::Ok),
            "degraded" => match pool {
                // a disk of the pool failed: the pool serves data, DEGRADED (`zpool status -x` says so)
                Some(p) => {
                    if let Err(e) = self.storage.set_pool_health(&p, super::storage::PoolHealth::Degraded) {
                        self.violation(format!("scenario: degraded: {e}"));
                    }
                }
                None => self.violation("scenario: degraded needs a ZFS target".into()),
            },
            "freeze" => self.storage.set_frozen(node, true, self.now),
            "thaw" => self.storage.set_frozen(node, false, self.now),
            _ => {
                let Some(f) = self.storage.faults_mut(node) else { return };
                match fault {
                    "not-healthy" => f.health_check = Some("NOT HEALTHY".into()),
                    "healthy" => f.health_check = None,
                    "umount-hang" => {
                        f.hang.insert("umount".into());
                    }
                    "import-fail" => f.import_fails = true,
                    "import-slow" => f.import_extra = Some(Duration::from_secs(60)),
                    "mount-fail" => f.mount_fails = true,
                    "clear" => *f = Default::default(),
                    other => {
                        let other = other.to_string();
                        self.violation(format!("scenario: unknown storage fault {other}"));
                    }
                }
            }
        }
    }

    fn set_lied_off(&mut self, fencer: &str, victim: &str, lie: bool) {
        let key = (fencer.to_string(), victim.to_string());
        if lie {
            self.lied_off.insert(key);
        } else {
            self.lied_off.remove(&key);
        }
    }

    // ----- trace and the end --------------------------------------------------------------------------

    fn trace(&mut self, who: &str, what: &str) {
        let line = format!("{} {who}: {what}", self.now);
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        if self.opts.keep_trace {
            self.report.trace.push(line);
        }
    }

    fn mounted_on(&self, mountpoint: &str) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|(n, h)| h.powered && self.storage.mounts(n).iter().any(|m| m.mountpoint == mountpoint && !m.stale))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn finish(mut self) -> RunReport {
        let e = self.scenario.expect.clone();
        let mut unmet = Vec::new();
        let liveness = e.liveness.unwrap_or(e.not_running.is_empty());
        let settled = self.settled_at.is_some();
        if liveness && settled {
            unmet.extend(self.judge_liveness());
        }
        for t in &self.cfg.targets {
            let on = self.mounted_on(&t.mountpoint.display().to_string());
            if liveness && !settled && on.len() != 1 {
                unmet.push(format!("liveness: {} runs on {} hosts ({})", t.name, on.len(), on.join(", ")));
            }
            if let Some(want) = e.owners.get(&t.name) {
                if on != [want.clone()] {
                    unmet.push(format!("owner of {}: expected {want}, found [{}]", t.name, on.join(", ")));
                }
            }
            if e.not_running.contains(&t.name) && !on.is_empty() {
                unmet.push(format!("{} should run nowhere, runs on {}", t.name, on.join(", ")));
            }
        }
        if let Some(max) = e.max_detect {
            if let Some(worst) = self.report.detect_ms.iter().max().filter(|w| **w > max.as_millis() as u64) {
                unmet.push(format!("detection took {worst} ms > {} ms", max.as_millis()));
            }
            for n in self.detect_pending.keys() {
                unmet.push(format!("{n} was never declared dead"));
            }
        }
        if let Some(max) = e.max_failover {
            if let Some(worst) = self.report.failover_ms.iter().max().filter(|w| **w > max.as_millis() as u64) {
                unmet.push(format!("failover took {worst} ms > {} ms", max.as_millis()));
            }
            for (t, node, targets) in &self.failover_pending {
                unmet.push(format!("failover after losing {node} at {t} never completed ({targets:?})"));
            }
        }
        if e.max_fences.is_some_and(|m| self.report.fences > m) {
            unmet.push(format!("{} fences > max {}", self.report.fences, e.max_fences.unwrap_or(0)));
        }
        if e.min_fences.is_some_and(|m| self.report.fences < m) {
            unmet.push(format!("{} fences < min {}", self.report.fences, e.min_fences.unwrap_or(0)));
        }
        if e.no_false_failovers && self.report.false_failovers > 0 {
            unmet.push(format!("{} false failovers", self.report.false_failovers));
        }
        for ev in &e.events {
            if !self.events_seen.contains(ev) {
                unmet.push(format!("event {ev} never happened"));
            }
        }
        for ev in &e.never_events {
            if self.events_seen.contains(ev) {
                unmet.push(format!("event {ev} happened"));
            }
        }
        for m in &self.messages_missing {
            unmet.push(format!("no event said \"{m}\""));
        }
        if e.overlapping_imports && self.report.overlapping_imports == 0 {
            unmet.push("no two imports overlapped on one host (the pools were imported one after the other)".into());
        }
        for n in &e.powered_off {
            if self.hosts.get(n).is_some_and(|h| h.powered) {
                unmet.push(format!("{n} should be powered off"));
            }
        }
        self.report.unmet = unmet;
        self.report.sim_time = self.now.since(Time::ZERO);
        self.report.trace_sha256 = hex::encode(self.hasher.clone().finalize());
        self.report
    }
}

/// The addresses (`host:port`) of a node's IPMI (`bmc`) or PDU devices.
fn device_addresses(cfg: &Config, node: &str, bmc: bool) -> Vec<String> {
    let Some(n) = cfg.node(node) else { return vec![] };
    let mut out: Vec<String> = n
        .fence_levels
        .iter()
        .flatten()
        .filter_map(|d| cfg.device(d))
        .filter_map(|d| match (&d.kind, bmc) {
            (FenceDeviceKind::Ipmi(i), true) => Some(format!("{}:{}", i.host, i.port)),
            (FenceDeviceKind::PduSnmp(p), false) => Some(format!("{}:{}", p.host, p.port)),
            // a BMC reached through an agent (`fence_ipmilan ip=...`) takes the `bmc` faults too
            (FenceDeviceKind::Agent(a), true) if a.plug.is_none() => {
                a.options.get("ip").map(|ip| format!("{ip}:{}", a.options.get("ipport").map_or("623", String::as_str)))
            }
            _ => None,
        })
        .collect();
    out.dedup();
    out
}

/// The (PDU address, outlet) pairs feeding a node.
fn device_outlets(cfg: &Config, node: &str) -> Vec<(String, u32)> {
    let Some(n) = cfg.node(node) else { return vec![] };
    n.fence_levels
        .iter()
        .flatten()
        .filter_map(|d| cfg.device(d))
        .filter_map(|d| match &d.kind {
            FenceDeviceKind::PduSnmp(p) => Some(p.outlets.iter().map(|o| (format!("{}:{}", p.host, p.port), *o)).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The power side of the world, from the config's fence devices.
fn build_hardware(cfg: &Config) -> Result<Hardware, String> {
    let mut hw = Hardware::new();
    for n in &cfg.nodes {
        hw.add_node(&n.name).map_err(|e| format!("hardware: {e}"))?;
    }
    for n in &cfg.nodes {
        for d in n.fence_levels.iter().flatten().filter_map(|d| cfg.device(d)) {
            match &d.kind {
                FenceDeviceKind::Ipmi(i) => {
                    let _ = hw.add_bmc(&format!("{}:{}", i.host, i.port), &n.name);
                }
                FenceDeviceKind::PduSnmp(p) => {
                    let addr = format!("{}:{}", p.host, p.port);
                    let _ = hw.add_pdu(&addr, p.profile);
                    for o in &p.outlets {
                        hw.add_outlet(&addr, *o, &n.name).map_err(|e| format!("hardware: {e}"))?;
                    }
                }
                FenceDeviceKind::Agent(a) => match (&a.plug, a.options.get("ip")) {
                    // an agent that names a plug switches that plug; one that names an ip talks to a BMC there
                    (Some(plug), _) => {
                        let _ = hw.add_plug(plug, &n.name);
                    }
                    (None, Some(ip)) => {
                        let port = a.options.get("ipport").map_or("623", String::as_str);
                        let _ = hw.add_bmc(&format!("{ip}:{port}"), &n.name);
                    }
                    (None, None) => {}
                },
                FenceDeviceKind::Manual => {}
            }
        }
    }
    Ok(hw)
}

/// Run one scenario with one seed.
pub fn run_once(scenario: Arc<Scenario>, opts: RunOptions) -> RunReport {
    let name = scenario.name.clone();
    let seed = opts.seed;
    match World::new(scenario, opts) {
        Ok(w) => w.run(),
        Err(e) => RunReport { scenario: name, seed, violations: vec![format!("setup: {e}")], ..RunReport::default() },
    }
}
