//! The pure engine: failure detection, quorum, fencing and target migration as one deterministic state
//! machine. It never reads a clock, opens a socket or runs a process.
//!
//! A driver (the daemon in `runtime/`, the simulator in `sim/`) is a loop:
//! wait for the earliest of (datagram, finished command, admin request, [`Engine::next_deadline`]) →
//! [`Engine::handle`]`(now, input)` → drain [`Engine::poll_output`] until `None` and carry out each output.
//! Outputs are queued, never dropped: every heartbeat, command, journal write and event comes out in order.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

pub mod admin;
mod detector;
mod disk;
mod events;
mod fence_control;
mod fencing;
mod journal;
mod ledger;
mod membership;
pub mod quorum;
mod recovery;
#[cfg(test)]
pub(crate) mod test_support;
mod status;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult};
use crate::config::{Config, NodeConfig};
use crate::fence::FenceAction;
use crate::protocol::{Body, Envelope, Heartbeat, PeerView};
use crate::storage::{HostIdentity, SequenceKind, StorageTimeouts};
use crate::time::Time;

pub use admin::AdminError;
pub use detector::{PeerLiveness, Rejected};
pub use events::{Event, FenceReason, KeyDiff, Severity};
pub use fencing::{FenceJob, JobProgress};
pub use journal::{FencedRecord, Journal};
pub use quorum::QuorumView;
pub use status::{ConfigMismatchStatus, DiskPeerStatus, DiskStatus, FenceJobStatus, LinkStatus, PeerStatus, PendingFence, Status, TargetStatus};
pub use targets::Local;

/// Identifies a command the engine asked for, so its result finds its way back (a stale one is ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommandId(pub u64);

/// What a command is for: lets drivers log it with structured fields and lets the simulator check invariants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    Fence { victim: String, device: String, level: usize, action: FenceAction },
    Storage {
        target: String,
        sequence: SequenceKind,
        #[serde(with = "crate::storage::step_name")]
        step: crate::storage::Step,
    },
    /// `lctl get_param -n <type>.<target>.recovery_status`, followed after a takeover.
    RecoveryStatus { target: String },
    Discover,
}

/// Everything that can happen to the engine.
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed (the deadline the engine asked for, or any wake-up).
    Tick,
    /// A datagram that passed the MAC check and decoding, received on `link`.
    Datagram { link: usize, envelope: Envelope },
    /// A command finished.
    CommandDone { id: CommandId, result: CommandResult },
    /// An operator's request through the control socket; answered with `Output::AdminReply { id }`.
    Admin { id: u64, request: AdminRequest },
    /// The driver noticed that its own loop stalled for `late` (GC-like pause, VM freeze, swap storm).
    Stalled { late: Duration },
    /// The commands an earlier run of this node left running (a `zpool import` in its MMP wait, a `mount`) are
    /// gone: killed and reaped, or there were none. Until the driver says so, the engine does not look at the
    /// storage: startup discovery starts only after this input, and until discovery is done the heartbeats
    /// say `discovered: false`, so no peer starts a target this node may hold (see `targets.rs`
    /// `peer_knows_its_holdings`).
    OrphansGone,
    /// Commands of an earlier run did not die when killed (stuck in the kernel): the engine stays undiscovered
    /// and alerts; the driver sends [`Input::OrphansGone`] once they have ended.
    OrphansStuck { commands: Vec<String> },
    /// The result of the disk heartbeat round the driver ran for the last [`Output::DiskBeat`]: this node's
    /// write (its latency, or the error naming the device), then every peer's slot as read back after it. A
    /// driver whose device hangs sends nothing; the engine treats no successful write for `dead_after` as
    /// failing writes.
    DiskRound {
        write: Result<Duration, String>,
        slots: Vec<(String, Result<crate::diskbeat::DiskSlot, crate::diskbeat::SlotError>)>,
    },
}

/// Operator requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Controlled migration of `target` to node `to`.
    Migrate { target: String, to: String },
    /// The operator confirms `node` is powered off (manual fencing).
    ConfirmFenced { node: String },
    /// Operator fencing through the configured levels.
    Fence { node: String, action: FenceAction },
    /// Cluster-wide maintenance: keep heartbeating, take no action.
    Maintenance { on: bool },
    /// Put `node` in standby (`on`): its targets move away by controlled migrations and it takes none until
    /// `on = false`. Cluster-wide, like maintenance.
    Standby { node: String, on: bool },
    /// Act without having seen every node once (wait_for_all override).
    OverrideWaitForAll,
    /// Graceful stop: move targets away (unless in maintenance), then tell peers we are leaving.
    Leave,
    /// Cancel the fence job of `node` (`failoverd fence --cancel NODE`): one that waits on an operator or a
    /// backoff, or any job of an operator's. No automatic fence of `node` starts again until it is heard alive.
    FenceCancel { node: String },
}

impl Input {
    /// The input for a timer the driver served `late` after its deadline: [`Input::Stalled`] when later than
    /// `stall_threshold` (this process itself stalled: nobody is convicted on that gap), [`Input::Tick`]
    /// otherwise. The daemon and the simulator both decide here, so they cannot disagree on what a stall is.
    pub fn timer(late: Duration, stall_threshold: Duration) -> Input {
        if late > stall_threshold {
            Input::Stalled { late }
        } else {
            Input::Tick
        }
    }
}

/// Everything the engine asks its driver to do.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send this envelope to every peer on `link`.
    Send { link: usize, envelope: Envelope },
    /// Send this envelope to the witness.
    SendWitness { envelope: Envelope },
    /// Run a command and report `Input::CommandDone { id }`.
    Run { id: CommandId, command: Command, purpose: Purpose },
    /// Write the journal to `state_dir` (atomically).
    Persist(Journal),
    /// Something happened.
    Event(Event),
    /// The answer to `Input::Admin { id }`.
    AdminReply { id: u64, result: Result<String, AdminError> },
    /// The node finished leaving (graceful stop): the driver may exit.
    Left,
    /// Write this slot into this node's slot of `[cluster] disk_heartbeat` (encoded with the active key, at
    /// `slot_index * SLOT_BYTES`, O_DIRECT|O_DSYNC), read every peer's slot back, and answer with
    /// [`Input::DiskRound`]. Once per `heartbeat_interval`, only when `disk_heartbeat` is configured. A round
    /// still in flight when the next one comes: skip (and count) the new one.
    DiskBeat { slot: crate::diskbeat::DiskSlot },
}

/// Test-only fault switches: let the simulator prove that its invariant checker catches a broken engine.
/// Production code never sets them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSwitches {
    /// Treat every fence as confirmed at once without running any device.
    pub skip_fence: bool,
    /// Driver fault (the simulator's world): a restarted daemon neither kills nor waits for the commands its
    /// previous run left running, and tells the engine at once that they are gone.
    #[serde(default)]
    pub ignore_orphans: bool,
    /// Mount every target as soon as its pool is imported, whatever its start_order (an MDT before its MGT).
    #[serde(default)]
    pub ignore_start_order: bool,
    /// Engine fault (self-test of the liveness checker): never take a peer's shared fence confirmation, as
    /// before simulations/fencer-not-candidate.toml was fixed (a target whose nodes leave out the designated
    /// fencer then stays down after its owner is fenced).
    #[serde(default)]
    pub ignore_peer_confirmations: bool,
}

/// Who is waiting for a command result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Waiter {
    Fence { victim: String },
    Target { target: String, monitor: bool },
    Recovery { target: String },
    Discover { which: usize },
}

/// The engine of one node.
pub struct Engine {
    pub(crate) cfg: Arc<Config>,
    pub(crate) me: NodeConfig,
    pub(crate) incarnation: u64,
    pub(crate) seq: u64,
    pub(crate) started_at: Time,
    pub(crate) last_now: Option<Time>,
    pub(crate) peers: BTreeMap<String, PeerLiveness>,
    pub(crate) quorum: QuorumView,
    pub(crate) all_seen: bool,
    pub(crate) wfa_overridden: bool,
    pub(crate) witness_grant: Option<(Time, Vec<String>)>,
    /// The keys of `peers` (fixed for the engine's life), for loops that change the engine as they go.
    pub(crate) peer_names: Arc<[String]>,
    /// What `quorum` was last computed from (see `update_quorum`).
    pub(crate) quorum_inputs: Option<u64>,
    pub(crate) witness_queries: VecDeque<(u64, Vec<String>)>,
    /// The grace after a local stall: no forced import is issued before it ends (`targets.rs`).
    pub(crate) stalled_until: Option<Time>,
    /// When the witness last answered one of this node's queries (granted or not), and whether its silence
    /// was reported ([`Event::WitnessLost`]).
    pub(crate) witness_heard: Option<Time>,
    pub(crate) witness_lost: bool,
    pub(crate) maintenance: (u64, bool),
    /// Nodes in standby, versioned: the highest (epoch, set) seen anywhere wins.
    pub(crate) standby: (u64, BTreeSet<String>),
    /// Targets already reported by [`Event::TargetHasNoNode`] (reported again once they ran somewhere).
    pub(crate) standby_orphans: BTreeSet<String>,
    /// Targets already reported by [`Event::TargetHasNoNode`] because every node of theirs is fenced off.
    pub(crate) fenced_out: BTreeSet<String>,
    pub(crate) leaving: bool,
    pub(crate) left: bool,
    pub(crate) fence_me: Option<String>,
    /// Nodes confirmed off, on what evidence, and which a status read in this run found off; written only
    /// through its evidence methods (`ledger.rs`).
    pub(crate) fenced: ledger::FenceLedger,
    /// Fence records restored from the journal whose power has not been read yet in this run.
    /// (node → not before): a status read failed, it is tried again later.
    pub(crate) recheck_power: BTreeMap<String, Time>,
    /// wait_for_all was reported stuck ([`Event::WaitForAllStuck`]) for this set of missing nodes.
    pub(crate) wfa_stuck_reported: Option<Vec<String>>,
    pub(crate) fence_jobs: BTreeMap<String, FenceJob>,
    pub(crate) fence_waits: BTreeMap<String, Time>,
    pub(crate) fence_not_before: BTreeMap<String, Time>,
    pub(crate) fence_operator_alerted: BTreeSet<String>,
    /// Per fence job: the victim's incarnation when the job started (a newer one heard alive ends the job).
    pub(crate) fence_job_incarnation: BTreeMap<String, Option<u64>>,
    /// Victims whose fencing an operator cancelled: not fenced automatically until heard alive again.
    pub(crate) fence_cancelled: BTreeSet<String>,
    pub(crate) fence_admin_reply: BTreeMap<String, u64>,
    pub(crate) targets: BTreeMap<String, targets::Slot>,
    pub(crate) discovered: bool,
    /// The driver reported the previous run's commands gone ([`Input::OrphansGone`]): discovery may start.
    pub(crate) orphans_gone: bool,
    /// The previous run's commands that did not die, as the driver reported them (for `status` and the alert).
    pub(crate) orphans_stuck: Vec<String>,
    pub(crate) discovery: Vec<Option<CommandResult>>,
    pub(crate) discovery_retry_at: Option<Time>,
    pub(crate) waiters: BTreeMap<CommandId, Waiter>,
    pub(crate) next_cmd: u64,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) next_heartbeat: Time,
    pub(crate) recent: VecDeque<(Time, Event)>,
    pub(crate) move_requests: BTreeMap<String, (String, Time)>,
    /// Peers whose configuration digest differs from ours (kept after they go silent).
    pub(crate) mismatches: BTreeMap<String, membership::Mismatch>,
    /// What follows from the configuration alone: digests, agreement values, the summary datagrams.
    pub(crate) facts: Arc<ConfigFacts>,
    /// Peers' summaries being received.
    pub(crate) summaries_in: BTreeMap<String, membership::PartialSummary>,
    /// When to send this node's summary next (`None`: no peer's digest differs).
    pub(crate) next_summary: Option<Time>,
    /// Victims whose automatic fence a configuration mismatch blocks, with the reason (reported once by
    /// [`Event::FenceBlocked`]).
    pub(crate) fence_blocked: BTreeMap<String, String>,
    /// When this node last became quorate: silence that began before counts toward a fence only `dead_after`
    /// after it (see `fence_control.rs`, `consider_fencing`).
    pub(crate) quorum_gained_at: Option<Time>,
    pub(crate) journal_dirty: bool,
    pub(crate) faults: FaultSwitches,
    /// The disk heartbeat channel (`None`: `disk_heartbeat` not configured).
    pub(crate) disk: Option<disk::DiskChannel>,
}

/// What an engine derives from its configuration alone, computed once per configuration: a driver that starts
/// many engines of one configuration (the simulator, at every boot of every node) shares one
/// ([`Engine::from_facts`]).
#[derive(Debug)]
pub struct ConfigFacts {
    cfg: Arc<Config>,
    /// `Config::digest`, sent in every heartbeat.
    pub(crate) config_digest: [u8; 16],
    /// This node's agreement values (`Config::agreement_values`), compared with the peers' summaries.
    pub(crate) agreement_values: BTreeMap<String, String>,
    /// This node's summary, ready to send (see `membership.rs`).
    pub(crate) summary_parts: Vec<crate::protocol::ConfigSummary>,
    /// Each target's definition digest (they are sent in every heartbeat).
    pub(crate) target_digests: Vec<(String, u32)>,
}

impl ConfigFacts {
    /// The facts of `cfg`; an error when its heartbeat or its summary would not fit in datagrams (what
    /// [`heartbeat_fits`] checks).
    pub fn of(cfg: Arc<Config>) -> Result<ConfigFacts, String> {
        largest_heartbeat_fits(&cfg)?;
        let config_digest = cfg.digest();
        let agreement_values = cfg.agreement_values();
        let summary_parts = membership::summary_parts_of(&cfg, config_digest, &agreement_values)?;
        let target_digests = cfg.targets.iter().filter_map(|t| cfg.target_digest(&t.name).map(|d| (t.name.clone(), d))).collect();
        Ok(ConfigFacts { cfg, config_digest, agreement_values, summary_parts, target_digests })
    }

    /// The configuration these facts are of.
    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }
}

/// Refuse a configuration whose largest possible heartbeat (every target moving, every move requested,
/// every peer listed and confirmed fenced) would not fit in one datagram: heartbeats must never be cut. Its config summary must
/// fit in [`crate::protocol::MAX_SUMMARY_PARTS`] datagrams as well.
pub fn heartbeat_fits(cfg: &Config) -> Result<(), String> {
    largest_heartbeat_fits(cfg)?;
    membership::summary_parts(cfg, cfg.digest()).map(|_| ())
}

/// The heartbeat half of [`heartbeat_fits`].
fn largest_heartbeat_fits(cfg: &Config) -> Result<(), String> {
    use crate::protocol::{TargetState, TargetView};
    let longest = cfg.nodes.iter().map(|n| n.name.clone()).max_by_key(String::len).unwrap_or_default();
    let hb = Heartbeat {
        link: 0,
        peers: cfg.nodes.iter().map(|n| PeerView { node: n.name.clone(), links_up: u8::MAX, alive: true, incarnation: u64::MAX }).collect(),
        quorate: true,
        discovered: true,
        leaving: true,
        maintenance: true,
        maintenance_epoch: u64::MAX,
        standby: cfg.nodes.iter().map(|n| n.name.clone()).collect(),
        standby_epoch: u64::MAX,
        fence_me: true,
        config_digest: [0xff; 16],
        targets: cfg.targets.iter().map(|t| TargetView { name: t.name.clone(), state: TargetState::Releasing { to: Some(longest.clone()) } }).collect(),
        target_digests: cfg.targets.iter().map(|t| (t.name.clone(), u32::MAX)).collect(),
        move_requests: cfg.targets.iter().map(|t| (t.name.clone(), longest.clone())).collect(),
        fenced: cfg
            .nodes
            .iter()
            .filter(|n| n.name != longest)
            .map(|n| crate::protocol::FenceConfirmation { node: n.name.clone(), incarnation: Some(u64::MAX), age_ms: u64::MAX, level: u8::MAX })
            .collect(),
    };
    let env = Envelope { cluster: cfg.cluster.name.clone(), sender: longest.clone(), incarnation: u64::MAX, seq: u64::MAX, body: Body::Heartbeat(hb) };
    match crate::protocol::encode(&env, &[0u8; 32]) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "the heartbeat of this cluster ({} nodes, {} targets) would not fit in one datagram: {e}; use shorter node/target names or fewer targets per cluster",
            cfg.nodes.len(),
            cfg.targets.len()
        )),
    }
}

/// How many events `status` keeps.
const RECENT_EVENTS: usize = 32;

impl Engine {
    /// A new engine for node `me` of `cfg`. `incarnation` must be higher than any earlier run's (the driver
    /// persists and bumps it); `journal` is what the previous run persisted. The engine draws no random number:
    /// what it does follows from its inputs alone.
    pub fn new(cfg: Arc<Config>, me: &str, incarnation: u64, journal: Option<Journal>, now: Time) -> Result<Engine, String> {
        Engine::from_facts(Arc::new(ConfigFacts::of(cfg)?), me, incarnation, journal, now)
    }

    /// [`Engine::new`] with the facts of its configuration computed already (shared between engines).
    pub fn from_facts(facts: Arc<ConfigFacts>, me: &str, incarnation: u64, journal: Option<Journal>, now: Time) -> Result<Engine, String> {
        let cfg = Arc::clone(&facts.cfg);
        let me_cfg = cfg.node(me).cloned().ok_or_else(|| format!("node {me} is not in the configuration (nodes: {})", cfg.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")))?;
        let links = cfg.link_count();
        let peers: BTreeMap<String, PeerLiveness> = cfg.nodes.iter().filter(|n| n.name != me).map(|n| (n.name.clone(), PeerLiveness::new(links))).collect();
        let peer_names: Arc<[String]> = peers.keys().cloned().collect();
        let targets = cfg.targets.iter().map(|t| (t.name.clone(), targets::Slot::new(t.clone(), now))).collect();
        let mut e = Engine {
            cfg,
            me: me_cfg,
            incarnation,
            seq: 0,
            started_at: now,
            last_now: None,
            peers,
            quorum: QuorumView { votes: 0, total: 0, needed: 0, quorate: false, two_node: false, witness_vote: false, reason: "starting".into() },
            all_seen: false,
            wfa_overridden: false,
            witness_grant: None,
            quorum_inputs: None,
            peer_names,
            witness_queries: VecDeque::new(),
            witness_heard: None,
            stalled_until: None,
            witness_lost: false,
            maintenance: (0, false),
            standby: (0, BTreeSet::new()),
            standby_orphans: BTreeSet::new(),
            fenced_out: BTreeSet::new(),
            leaving: false,
            left: false,
            fence_me: None,
            fenced: ledger::FenceLedger::default(),
            recheck_power: BTreeMap::new(),
            wfa_stuck_reported: None,
            fence_jobs: BTreeMap::new(),
            fence_waits: BTreeMap::new(),
            fence_not_before: BTreeMap::new(),
            fence_operator_alerted: BTreeSet::new(),
            fence_job_incarnation: BTreeMap::new(),
            fence_cancelled: BTreeSet::new(),
            fence_admin_reply: BTreeMap::new(),
            targets,
            discovered: false,
            orphans_gone: false,
            orphans_stuck: Vec::new(),
            discovery: Vec::new(),
            discovery_retry_at: None,
            waiters: BTreeMap::new(),
            next_cmd: 0,
            outputs: VecDeque::new(),
            next_heartbeat: now,
            recent: VecDeque::new(),
            move_requests: BTreeMap::new(),
            mismatches: BTreeMap::new(),
            facts,
            summaries_in: BTreeMap::new(),
            next_summary: None,
            fence_blocked: BTreeMap::new(),
            quorum_gained_at: None,
            journal_dirty: true,
            faults: FaultSwitches::default(),
            disk: None,
        };
        e.disk = e.cfg.cluster.disk_heartbeat.as_ref().map(|path| disk::DiskChannel::new(path, now));
        if let Some(j) = journal {
            e.restore(j, now);
        }
        // discovery waits for Input::OrphansGone: what an earlier run left running could still change the storage
        e.step(now);
        Ok(e)
    }

    /// Turn on test-only faults (simulator self-test).
    pub fn set_faults(&mut self, faults: FaultSwitches) {
        self.faults = faults;
    }

    pub fn node_name(&self) -> &str {
        &self.me.name
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn is_quorate(&self) -> bool {
        self.quorum.quorate
    }

    /// Feed one input at time `now`, then drain outputs with `poll_output`.
    pub fn handle(&mut self, now: Time, input: Input) {
        self.check_stall(now, &input);
        match input {
            Input::Tick | Input::Stalled { .. } => {}
            Input::Datagram { link, envelope } => self.on_datagram(now, link, envelope),
            Input::CommandDone { id, result } => self.on_command_done(now, id, result),
            Input::Admin { id, request } => self.on_admin(now, id, request),
            Input::OrphansGone => {
                if !self.orphans_gone {
                    self.orphans_gone = true;
                    self.orphans_stuck.clear();
                    self.start_discovery();
                }
            }
            Input::DiskRound { write, slots } => self.on_disk_round(now, write, slots),
            Input::OrphansStuck { commands } => {
                if !self.orphans_gone && commands != self.orphans_stuck {
                    self.orphans_stuck = commands.clone();
                    self.emit(now, Event::OrphansStuck { commands });
                }
            }
        }
        self.step(now);
        self.last_now = Some(now);
    }

    /// The next output, if any. Drain until `None` after every `handle`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// All queued outputs at once.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        self.outputs.drain(..).collect()
    }

    /// When the engine next needs a `Tick` (it never needs one later than the next heartbeat). Times already
    /// considered by the last `handle` are skipped, so a driver never spins on a deadline in the past.
    pub fn next_deadline(&self) -> Time {
        let dead_after = self.cfg.cluster.dead_after;
        let floor = self.last_now.map_or(Time::ZERO, |t| Time(t.0 + 1));
        // (an iterator, not a Vec: drivers ask after every input)
        let grace = membership::summary_grace(&self.cfg);
        std::iter::once(self.next_heartbeat)
            .chain(self.peers.values().filter_map(|p| p.next_deadline(dead_after)))
            .chain(self.fence_waits.values().chain(self.fence_not_before.values()).chain(self.recheck_power.values()).copied())
            .chain(self.discovery_retry_at)
            .chain(self.next_summary)
            .chain(self.mismatches.values().filter(|m| m.reported.is_none()).map(|m| m.since + grace))
            .chain(self.targets.values().filter_map(|s| s.next_deadline()))
            .chain(self.recovery_deadline())
            .chain(self.disk.as_ref().filter(|_| !self.left).map(|d| d.next_beat))
            .chain(self.quorum_gained_at.map(|q| q + dead_after))
            .filter(|t| *t >= floor)
            .min()
            .unwrap_or(self.next_heartbeat.max(floor))
    }

    /// True when this node holds a confirmation that `node` is powered off (by a device or an operator).
    pub fn is_fenced(&self, node: &str) -> bool {
        self.fenced.contains_key(node)
    }

    fn check_stall(&mut self, now: Time, input: &Input) {
        let c = &self.cfg.cluster;
        let late = match (input, self.last_now) {
            (Input::Stalled { late }, _) => Some(*late),
            (_, Some(last)) => {
                let gap = now.since(last);
                let allowed = c.heartbeat_interval + c.stall_threshold;
                (gap > allowed).then(|| gap - c.heartbeat_interval)
            }
            _ => None,
        };
        if let Some(late) = late {
            if late > c.stall_threshold {
                let until = now + c.dead_after;
                for p in self.peers.values_mut() {
                    p.rearm(until);
                }
                // a fence decided before the stall (waiting out fence_delay) rests on evidence as old as the
                // stall: it waits for fresh evidence as long as a new conviction would (swarm seed 8830)
                for t in self.fence_not_before.values_mut() {
                    *t = (*t).max(until);
                }
                self.stalled_until = Some(until);
                self.emit(now, Event::LocalStall { late_ms: late.as_millis() as u64 });
            }
        }
    }

    /// Everything that follows from the current state: detection, quorum, fencing, targets, heartbeats.
    fn step(&mut self, now: Time) {
        self.evaluate_membership(now);
        self.evaluate_disk(now);
        self.report_mismatches(now);
        self.drive_fencing(now);
        self.drive_targets(now);
        self.drive_leave(now);
        if now >= self.next_heartbeat {
            self.send_heartbeats(now);
            self.next_heartbeat = now + self.cfg.cluster.heartbeat_interval;
        }
        self.disk_beat(now);
        self.send_summaries(now);
        if self.journal_dirty {
            self.journal_dirty = false;
            let j = self.journal();
            self.outputs.push_back(Output::Persist(j));
        }
    }

    pub(crate) fn emit(&mut self, now: Time, event: Event) {
        tracing::debug!(node = %self.me.name, event = %event.name(), "engine event");
        self.recent.push_back((now, event.clone()));
        while self.recent.len() > RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.outputs.push_back(Output::Event(event));
    }

    pub(crate) fn run_command(&mut self, command: Command, purpose: Purpose, waiter: Waiter) -> CommandId {
        self.next_cmd += 1;
        let id = CommandId(self.next_cmd);
        self.waiters.insert(id, waiter);
        self.outputs.push_back(Output::Run { id, command, purpose });
        id
    }

    fn on_command_done(&mut self, now: Time, id: CommandId, result: CommandResult) {
        let Some(waiter) = self.waiters.remove(&id) else { return };
        match waiter {
            Waiter::Fence { victim } => self.fence_command_done(now, &victim, &result),
            Waiter::Target { target, monitor } => self.target_command_done(now, &target, monitor, &result),
            Waiter::Discover { which } => self.discovery_done(now, which, result),
            Waiter::Recovery { target } => self.recovery_command_done(now, &target, &result),
        }
    }

    fn on_admin(&mut self, now: Time, id: u64, request: AdminRequest) {
        let result = match request {
            AdminRequest::Migrate { target, to } => self.admin_migrate(now, &target, &to),
            AdminRequest::ConfirmFenced { node } => self.admin_confirm_fenced(now, &node),
            AdminRequest::Fence { node, action } => match self.admin_fence(now, &node, action) {
                Ok(()) => {
                    // answered when the job ends
                    self.fence_admin_reply.insert(node, id);
                    return;
                }
                Err(e) => Err(e),
            },
            AdminRequest::Maintenance { on } => {
                let epoch = self.maintenance.0 + 1;
                self.set_maintenance(now, epoch, on);
                Ok(format!("maintenance {}", if on { "on" } else { "off" }))
            }
            AdminRequest::Standby { node, on } => self.admin_standby(now, &node, on),
            AdminRequest::OverrideWaitForAll => {
                self.wfa_overridden = true;
                self.emit(now, Event::WaitForAllOverridden);
                Ok("wait_for_all overridden: this node may fence and take over without having seen every node".into())
            }
            AdminRequest::Leave => {
                self.leaving = true;
                Ok("leaving: moving targets away first".into())
            }
            AdminRequest::FenceCancel { node } => self.admin_fence_cancel(now, &node),
        };
        self.outputs.push_back(Output::AdminReply { id, result });
    }

    pub(crate) fn set_maintenance(&mut self, now: Time, epoch: u64, on: bool) {
        if (epoch, on) > self.maintenance {
            let changed = self.maintenance.1 != on;
            self.maintenance = (epoch, on);
            self.journal_dirty = true;
            if changed {
                self.emit(now, Event::Maintenance { on });
            }
        }
    }

    /// Adopt a standby set if it is newer than ours ((epoch, set) order: every node converges on the same one).
    pub(crate) fn set_standby(&mut self, now: Time, epoch: u64, set: BTreeSet<String>) {
        // names that are not nodes of this configuration are ignored (config agreement reports the mismatch)
        let set: BTreeSet<String> = set.into_iter().filter(|n| self.cfg.node(n).is_some()).collect();
        if (epoch, &set) <= (self.standby.0, &self.standby.1) {
            return;
        }
        let old = std::mem::replace(&mut self.standby, (epoch, set));
        self.journal_dirty = true;
        self.next_heartbeat = now;
        for node in old.1.symmetric_difference(&self.standby.1).cloned().collect::<Vec<_>>() {
            let on = self.standby.1.contains(&node);
            self.emit(now, Event::Standby { node, on });
        }
    }

    /// `node` is in standby: it runs no target.
    pub(crate) fn in_standby(&self, node: &str) -> bool {
        self.standby.1.contains(node)
    }

    /// True when no automatic action may be taken.
    pub(crate) fn in_maintenance(&self) -> bool {
        self.maintenance.1
    }

    /// Graceful stop: once no target is held or moving (or in maintenance, at once), say we leave.
    fn drive_leave(&mut self, now: Time) {
        if !self.leaving || self.left {
            return;
        }
        // a hand-off counts until its destination holds the target: leave as a member that was heard to the end
        // (one to a silent destination does not hold the stop: that destination may not come back)
        let busy = self.targets.values().any(|s| s.is_busy() || matches!(&s.local, Local::HandedOff { to, .. } if self.peer_alive(to)));
        let holds = self.targets.values().any(|s| s.holds());
        if self.in_maintenance() || (!busy && !holds) || !self.can_move_away() {
            self.left = true;
            self.send_heartbeats(now);
            self.outputs.push_back(Output::Left);
        }
    }

    pub(crate) fn next_envelope(&mut self, body: Body) -> Envelope {
        self.seq += 1;
        Envelope { cluster: self.cfg.cluster.name.clone(), sender: self.me.name.clone(), incarnation: self.incarnation, seq: self.seq, body }
    }

    fn send_heartbeats(&mut self, now: Time) {
        for link in 0..self.cfg.link_count() {
            let hb = self.build_heartbeat(now, link as u8);
            let env = self.next_envelope(Body::Heartbeat(hb));
            self.outputs.push_back(Output::Send { link, envelope: env });
        }
        if self.cfg.witness.is_some() {
            let q = self.witness_query();
            let env = self.next_envelope(Body::WitnessQuery(q.clone()));
            self.witness_asked(env.seq, &q);
            self.outputs.push_back(Output::SendWitness { envelope: env });
        }
    }

    fn build_heartbeat(&self, now: Time, link: u8) -> Heartbeat {
        let peers = self
            .peers
            .iter()
            .map(|(name, p)| PeerView { node: name.clone(), links_up: p.links_up_mask(), alive: p.alive(), incarnation: p.incarnation.unwrap_or(0) })
            .collect();
        let targets = self.targets.values().filter_map(|s| s.view()).collect();
        let target_digests = self.facts.target_digests.clone();
        let move_requests = self.move_requests.iter().filter(|(_, (_, exp))| *exp > now).map(|(t, (to, _))| (t.clone(), to.clone())).collect();
        Heartbeat {
            link,
            peers,
            quorate: self.quorum.quorate,
            discovered: self.discovered,
            leaving: self.left,
            maintenance: self.maintenance.1,
            maintenance_epoch: self.maintenance.0,
            standby: self.standby.1.iter().cloned().collect(),
            standby_epoch: self.standby.0,
            fence_me: self.fence_me.is_some(),
            config_digest: self.facts.config_digest,
            targets,
            target_digests,
            move_requests,
            fenced: self.shared_confirmations(now),
        }
    }

    pub(crate) fn storage_timeouts(&self) -> StorageTimeouts {
        let c = &self.cfg.cluster;
        StorageTimeouts { import: c.import_timeout, mount: c.mount_timeout, command: c.command_timeout }
    }

    pub(crate) fn identity(&self, node: &NodeConfig) -> HostIdentity {
        HostIdentity::of(node)
    }

    pub(crate) fn known_hosts(&self) -> Vec<HostIdentity> {
        self.cfg.nodes.iter().map(|n| self.identity(n)).collect()
    }

    /// How many nodes are alive in this node's view, itself included (the size of [`Engine::alive_set`]).
    pub(crate) fn alive_count(&self) -> usize {
        1 + self.peers.iter().filter(|(n, p)| p.alive() && **n != self.me.name).count()
    }

    /// Nodes alive in this node's view, itself included.
    pub(crate) fn alive_set(&self) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = self.peers.iter().filter(|(_, p)| p.alive()).map(|(n, _)| n.clone()).collect();
        s.insert(self.me.name.clone());
        s
    }
}
