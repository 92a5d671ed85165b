//! Targets: who holds what, and the storage sequences that move them.
//!
//! Ownership comes from this node's own state and its peers' heartbeats. A target is started (or taken
//! over) by exactly one node: the first node of the target's preference list that is eligible in this
//! node's view — and only when every other node that may run it is alive (and says it does not hold it)
//! or confirmed off. A target held by a node that died is taken over by the forced sequence only after
//! that node is confirmed off (README.md "Safety rules" 1–3).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::command::CommandResult;
use crate::config::TargetConfig;
use crate::protocol::{TargetState, TargetView};
use crate::storage::{self, SequenceKind, SequenceRun, Step, StepVerdict, StorageError};
use crate::time::Time;

use super::journal::JournalOp;
use super::{AdminError, Engine, Event, Purpose, Waiter};

/// What this node is doing with a target.
#[derive(Clone, Debug)]
pub enum Local {
    Stopped,
    /// Import/mount under way (forced after a fence when `from` is set). The sequences of every target start at
    /// once; `import_waits` is set (since when) while a forced import waits for another forced import of this
    /// node to end (OpenZFS runs the MMP activity checks of one kernel one at a time: see `import_blockers`);
    /// `mount_waits` is set (since when) while the mount step waits for a lower `start_order` target of this
    /// node to be verified here (an MDT needs its MGS). `import_ms` is how long the import took.
    Starting {
        run: Box<SequenceRun>,
        from: Option<String>,
        started: Time,
        step_started: Time,
        import_waits: Option<Time>,
        mount_waits: Option<Time>,
        import_ms: Option<u64>,
    },
    Running { since: Time },
    /// umount/export under way; `cleanup` = undoing a failed start, not a move.
    Releasing { run: Box<SequenceRun>, to: Option<String>, started: Time, step_started: Time, cleanup: bool },
    /// Cleanly exported for `to`, which may import it without -f.
    HandedOff { to: String, at: Time },
    /// A release failed: part of it may still be held here; this node asked to be fenced.
    Failed { reason: String },
}

impl Local {
    pub fn name(&self) -> &'static str {
        match self {
            Local::Stopped => "stopped",
            Local::Starting { .. } => "starting",
            Local::Running { .. } => "running",
            Local::Releasing { .. } => "releasing",
            Local::HandedOff { .. } => "handed-off",
            Local::Failed { .. } => "failed",
        }
    }
}

/// One configured target on this node.
#[derive(Clone, Debug)]
pub struct Slot {
    pub cfg: TargetConfig,
    pub local: Local,
    pub monitor: Option<Box<SequenceRun>>,
    pub next_monitor: Time,
    pub monitor_failures: u32,
    /// Automatic action stopped until an operator acts (foreign owner, MMP refusal...).
    pub blocked: Option<String>,
    pub retry_at: Option<Time>,
    pub start_failures: u32,
    /// The Lustre recovery being followed after this node started the target (`recovery.rs`).
    pub recovery: Option<super::recovery::RecoveryFollow>,
    /// How the last followed recovery ended (outcome, last read), for `status`.
    pub recovered: Option<(String, crate::storage::recovery::RecoveryStatus)>,
    /// Why the recovery of this target is not followed (MGS, plain ZFS dataset, budget 0).
    pub recovery_none: Option<&'static str>,
    /// The cluster node whose name the pool's label showed ACTIVE (never exported) when a controlled acquire
    /// here refused it: once that node is confirmed off, the next start is a forced one from it.
    pub label_owner: Option<String>,
}

/// How a target is to be started here.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StartKind {
    Forced { from: String },
    Acquire,
}

/// Pause before asking again what is imported and mounted here, after discovery failed.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// Start failures after which a target is blocked until an operator acts.
const MAX_START_FAILURES: u32 = 3;

impl Slot {
    pub fn new(cfg: TargetConfig, now: Time) -> Slot {
        Slot {
            cfg,
            local: Local::Stopped,
            monitor: None,
            next_monitor: now,
            monitor_failures: 0,
            blocked: None,
            retry_at: None,
            start_failures: 0,
            recovery: None,
            recovered: None,
            recovery_none: None,
            label_owner: None,
        }
    }

    /// How this node advertises the target in its heartbeats.
    pub fn view(&self) -> Option<TargetView> {
        let state = match &self.local {
            Local::Stopped => return None,
            Local::Starting { .. } => TargetState::Starting,
            Local::Running { .. } => TargetState::Running,
            Local::Releasing { to, .. } => TargetState::Releasing { to: to.clone() },
            Local::HandedOff { to, .. } => TargetState::HandedOff { to: to.clone() },
            Local::Failed { .. } => TargetState::Failed,
        };
        Some(TargetView { name: self.cfg.name.clone(), state })
    }

    /// This node holds (part of) the target.
    pub fn holds(&self) -> bool {
        matches!(self.local, Local::Starting { .. } | Local::Running { .. } | Local::Releasing { .. } | Local::Failed { .. })
    }

    /// A sequence is running.
    pub fn is_busy(&self) -> bool {
        matches!(self.local, Local::Starting { .. } | Local::Releasing { .. })
    }

    pub fn next_deadline(&self) -> Option<Time> {
        let monitor = match self.local {
            Local::Running { .. } if self.monitor.is_none() => Some(self.next_monitor),
            _ => None,
        };
        monitor.into_iter().chain(self.retry_at).min()
    }

    pub fn journal_op(&self) -> Option<JournalOp> {
        let name = self.cfg.name.clone();
        match &self.local {
            Local::Starting { run, from, .. } => Some(JournalOp { target: name, sequence: run.kind(), to: None, from: from.clone() }),
            Local::Releasing { run, to, .. } => Some(JournalOp { target: name, sequence: run.kind(), to: to.clone(), from: None }),
            _ => None,
        }
    }
}

/// Holding states a peer advertises.
fn holding(state: &TargetState) -> bool {
    matches!(state, TargetState::Starting | TargetState::Running | TargetState::Releasing { .. } | TargetState::Failed)
}

/// Errors after which nothing is retried automatically: a human must look.
fn needs_operator(e: &StorageError) -> bool {
    matches!(e, StorageError::ForeignOwner { .. } | StorageError::MmpActive { .. } | StorageError::NotExported { .. })
}

impl Engine {
    // ----- discovery -------------------------------------------------------------------------------

    pub(crate) fn start_discovery(&mut self) {
        let cmds = storage::discover_commands(self.storage_timeouts());
        self.discovery = vec![None; cmds.len()];
        for (which, cmd) in cmds.into_iter().enumerate() {
            self.run_command(cmd, Purpose::Discover, Waiter::Discover { which });
        }
    }

    pub(crate) fn discovery_done(&mut self, now: Time, which: usize, result: CommandResult) {
        if let Some(slot) = self.discovery.get_mut(which) {
            *slot = Some(result);
        }
        if self.discovery.iter().any(Option::is_none) || self.discovery.len() < 2 {
            return;
        }
        let mut results: Vec<CommandResult> = self.discovery.iter().flatten().cloned().collect();
        // an ldiskfs-only cluster needs no ZFS tools on its hosts
        let any_zfs = self.cfg.targets.iter().any(|t| t.kind.pool().is_some());
        if !any_zfs && matches!(results[0].exit, crate::command::Exit::SpawnFailed(_)) {
            results[0] = CommandResult::exited(0, "", "");
        }
        match storage::parse_discovery(&results[0], &results[1]) {
            Ok(h) => {
                self.apply_discovery(now, &h.pools, &h.lustre_mounts);
                self.discovered = true;
                self.next_heartbeat = now;
            }
            Err(e) => {
                // cannot tell what we hold: ask again shortly, claim nothing meanwhile
                self.emit(now, Event::SequenceFailed { target: "(discovery)".into(), sequence: SequenceKind::Monitor, error: e.to_string() });
                self.discovery.clear();
                self.discovery_retry_at = Some(now + DISCOVERY_RETRY);
            }
        }
    }

    fn apply_discovery(&mut self, now: Time, pools: &[String], mounts: &[String]) {
        let names: Vec<String> = self.targets.keys().cloned().collect();
        for name in names {
            let slot = &self.targets[&name];
            let mounted = mounts.iter().any(|m| std::path::Path::new(m) == slot.cfg.mountpoint);
            let imported = slot.cfg.kind.pool().is_some_and(|p| pools.iter().any(|x| x == p));
            let state = if mounted {
                "running (found mounted here)"
            } else if imported {
                "half-held (pool imported, not mounted): releasing it cleanly"
            } else {
                "not here"
            };
            // what was found is reported before anything is done about it
            self.emit(now, Event::TargetDiscovered { target: name.clone(), state: state.into() });
            if mounted {
                let s = self.targets.get_mut(&name).expect("slot");
                s.local = Local::Running { since: now };
                s.next_monitor = now;
            } else if imported {
                self.start_release(now, &name, None, true);
            }
        }
        self.journal_dirty = true;
    }

    // ----- ownership --------------------------------------------------------------------------------

    /// Nodes whose claim on `target` stands: this node if it holds it, and peers whose latest heartbeat says
    /// they hold it (dead ones included until they are confirmed off and someone else holds the target).
    fn holders<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let me = self.targets.get(target).is_some_and(Slot::holds).then_some(self.me.name.as_str());
        let peers = self.peers.iter().filter_map(move |(name, p)| {
            let claims = p.last_heartbeat.as_ref().is_some_and(|hb| hb.targets.iter().any(|t| t.name == target && holding(&t.state)));
            (claims && !self.claim_void(name, target)).then_some(name.as_str())
        });
        me.into_iter().chain(peers)
    }

    /// A fenced node's stale claim is void once a live node holds the target.
    fn claim_void(&self, node: &str, target: &str) -> bool {
        self.fenced.contains_key(node) && self.live_holder_exists(target, node)
    }

    fn live_holder_exists(&self, target: &str, except: &str) -> bool {
        if self.targets.get(target).is_some_and(Slot::holds) {
            return true;
        }
        self.peers.iter().any(|(n, p)| {
            n != except && p.alive() && p.last_heartbeat.as_ref().is_some_and(|hb| hb.targets.iter().any(|t| t.name == target && holding(&t.state)))
        })
    }

    /// A peer's advertised hand-off of `target`, if any: the destination.
    fn handoff_of(&self, target: &str) -> Option<String> {
        self.peers.iter().filter(|(_, p)| p.alive()).find_map(|(_, p)| {
            p.last_heartbeat.as_ref().and_then(|hb| {
                hb.targets.iter().find_map(|t| match &t.state {
                    TargetState::HandedOff { to } if t.name == target => Some(to.clone()),
                    _ => None,
                })
            })
        })
    }

    /// (owner, state) of a target as this node knows it.
    pub(crate) fn owner_of(&self, target: &str) -> (Option<String>, String) {
        if let Some(s) = self.targets.get(target) {
            if s.holds() {
                return (Some(self.me.name.clone()), s.local.name().into());
            }
            if let Local::HandedOff { to, .. } = &s.local {
                return (None, format!("handed off to {to}"));
            }
        }
        for (name, p) in &self.peers {
            if let Some(t) = p.last_heartbeat.as_ref().and_then(|hb| hb.targets.iter().find(|t| t.name == target)) {
                if holding(&t.state) && !self.claim_void(name, target) {
                    let mut state = target_state_words(&t.state);
                    if !p.alive() {
                        state = format!("{state} (owner silent{})", if self.fenced.contains_key(name) { ", fenced" } else { "" });
                    }
                    return (Some(name.clone()), state);
                }
            }
        }
        match self.handoff_of(target) {
            Some(to) => (None, format!("handed off to {to}")),
            None => (None, "stopped".into()),
        }
    }

    /// `node`'s heartbeats list what it holds: it is alive and its startup discovery is done, or its last
    /// heartbeat said it left the cluster (a graceful stop), which is its final word on what it holds until it
    /// comes back in a new incarnation (whose first heartbeats are not `discovered` yet).
    fn peer_knows_its_holdings(&self, node: &str) -> bool {
        self.peers.get(node).is_some_and(|p| p.last_heartbeat.as_ref().is_some_and(|hb| hb.discovered && (p.alive() || hb.leaving)))
    }

    /// May `node` run `target` now, in this node's view?
    fn eligible(&self, node: &str, target: &TargetConfig) -> bool {
        if !target.nodes.iter().any(|n| n == node) || self.fenced.contains_key(node) || self.in_standby(node) {
            return false;
        }
        if node == self.me.name {
            return self.discovered && !self.leaving && self.fence_me.is_none();
        }
        let Some(p) = self.peers.get(node) else { return false };
        p.alive() && p.last_heartbeat.as_ref().is_some_and(|hb| hb.discovered && !hb.leaving && !hb.fence_me)
    }

    fn designated(&self, target: &TargetConfig) -> Option<String> {
        target.nodes.iter().find(|n| self.eligible(n, target)).cloned()
    }

    /// Some other node could take the targets this node holds.
    pub(crate) fn can_move_away(&self) -> bool {
        self.targets.values().filter(|s| s.holds()).all(|s| s.cfg.nodes.iter().any(|n| n != &self.me.name && self.eligible(n, &s.cfg)))
    }

    fn actions_allowed(&self) -> bool {
        self.discovered && self.quorum.quorate && !self.in_maintenance() && !self.left && self.fence_me.is_none()
    }

    // ----- decisions --------------------------------------------------------------------------------

    pub(crate) fn drive_targets(&mut self, now: Time) {
        if !self.discovered {
            if self.orphans_gone && self.discovery_retry_at.is_some_and(|t| now >= t) {
                self.discovery_retry_at = None;
                self.start_discovery();
            }
            return;
        }
        self.settle_handoffs(now);
        self.start_monitors(now);
        self.resume_waiting_imports(now);
        self.resume_waiting_mounts(now);
        self.drive_recovery(now);
        if !self.actions_allowed() {
            return;
        }
        self.alert_targets_fenced_out(now);
        self.serve_move_requests(now);
        if self.leaving {
            self.move_everything_away(now, "this node is leaving");
            return;
        }
        if self.in_standby(&self.me.name) {
            self.move_everything_away(now, "this node is in standby");
            self.alert_targets_without_node(now);
            return;
        }
        // every wanted target starts at once: the zdb label check and the import (with its MMP activity check)
        // of each pool run side by side; start_order is kept at the mount step (`mount_blockers`)
        for (target, kind) in self.wanted_starts(now) {
            self.start_target(now, &target, kind);
        }
    }

    /// The targets a mount of `name` here must wait for: those of a lower `start_order` that this node is
    /// starting, or that a live peer is releasing or has handed off to this node and that do not run here yet
    /// (an MDT is mounted only after the MGT of the same node is verified).
    pub(crate) fn mount_blockers(&self, name: &str) -> Vec<String> {
        let Some(order) = self.targets.get(name).map(|s| s.cfg.start_order) else { return Vec::new() };
        if self.faults.ignore_start_order {
            return Vec::new();
        }
        let lower = |s: &Slot| s.cfg.start_order < order;
        let mut out: BTreeSet<String> =
            self.targets.iter().filter(|(n, s)| *n != name && lower(s) && matches!(s.local, Local::Starting { .. })).map(|(n, _)| n.clone()).collect();
        let me = self.me.name.as_str();
        for hb in self.peers.values().filter(|p| p.alive()).filter_map(|p| p.last_heartbeat.as_ref()) {
            for t in &hb.targets {
                let coming = match &t.state {
                    TargetState::Releasing { to: Some(to) } | TargetState::HandedOff { to } => to == me,
                    _ => false,
                };
                let here = self.targets.get(&t.name).filter(|s| matches!(s.local, Local::Stopped) && s.blocked.is_none() && lower(s));
                if coming && here.is_some() {
                    out.insert(t.name.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// The forced imports of this node that an import of `name` must wait for: a forced import (`zpool import
    /// -f` after a fence) waits while another forced import of this node runs. OpenZFS takes its global
    /// `spa_namespace_lock` before the MMP activity check of an import and releases it only after the check
    /// (`spa_load_impl`: the lock is dropped after `spa_ld_mos_with_trusted_config`, which selects the
    /// uberblock and runs the check; `spa_tryimport` holds it throughout), so the checks of one kernel run one
    /// after the other whatever we do: two imports started together both end after about twice the time (the
    /// real-ZFS lab, OpenZFS 2.3.2: ~71 s each instead of ~36 s). Started one at a time, each import's
    /// `import_timeout` covers its own check, not the queue, and the label checks and mounts of the other
    /// targets still overlap the imports. The imports go in `start_order`: a forced import also waits for the
    /// label check of a lower `start_order` target (the MGT's pool imported first, so that its mount, which the
    /// MDT's waits for, overlaps the MDT's import instead of following it).
    pub(crate) fn import_blockers(&self, name: &str) -> Vec<String> {
        let forced = |s: &Slot| matches!(&s.local, Local::Starting { run, .. } if run.kind() == SequenceKind::Forced);
        let Some(order) = self.targets.get(name).filter(|s| forced(s)).map(|s| s.cfg.start_order) else { return Vec::new() };
        self.targets
            .iter()
            .filter(|(n, s)| {
                *n != name
                    && forced(s)
                    && match &s.local {
                        Local::Starting { run, import_waits: None, .. } if run.step() == Some(Step::Import) => true,
                        Local::Starting { run, .. } => {
                            !self.faults.ignore_start_order && run.step() == Some(Step::ZdbCheck) && s.cfg.start_order < order
                        }
                        _ => false,
                    }
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Forced imports that waited for another one: the waiting target of the lowest `start_order` (then name)
    /// runs its import once no other forced import runs here.
    fn resume_waiting_imports(&mut self, now: Time) {
        let mut waiting: Vec<(i32, String)> = self
            .targets
            .iter()
            .filter(|(_, s)| matches!(s.local, Local::Starting { import_waits: Some(_), .. }))
            .map(|(n, s)| (s.cfg.start_order, n.clone()))
            .collect();
        waiting.sort();
        if let Some((_, name)) = waiting.into_iter().next() {
            if self.import_blockers(&name).is_empty() {
                self.issue_step(now, &name, false);
            }
        }
    }

    /// Start sequences whose mount step was waiting for a lower start_order target: issued again, the step
    /// runs if nothing holds it any more.
    fn resume_waiting_mounts(&mut self, now: Time) {
        let waiting: Vec<String> =
            self.targets.iter().filter(|(_, s)| matches!(s.local, Local::Starting { mount_waits: Some(_), .. })).map(|(n, _)| n.clone()).collect();
        for name in waiting {
            if self.mount_blockers(&name).is_empty() {
                self.issue_step(now, &name, false);
            }
        }
    }

    fn wanted_starts(&self, now: Time) -> Vec<(String, StartKind)> {
        let mut out = Vec::new();
        for (name, slot) in &self.targets {
            if !matches!(slot.local, Local::Stopped) || slot.blocked.is_some() || slot.retry_at.is_some_and(|t| now < t) {
                continue;
            }
            if self.target_disputed(name) || self.unseen_by_a_candidate(&slot.cfg).is_some() {
                continue;
            }
            if let Some(kind) = self.start_kind(name, &slot.cfg) {
                out.push((name.clone(), kind));
            }
        }
        out
    }

    /// A live peer that may run this target does not say, in its latest heartbeat, that it hears this run of
    /// this node: it may take the target over at any moment as if this node were dead (a one-way loss, or a
    /// peer that holds this node fenced from before a reboot it has not heard of), and what it says it holds
    /// may be a replay from before this node restarted. Starting the target here as well could import its
    /// pool on both (swarm seeds 19043, 404748): wait until that peer hears this node's current incarnation.
    pub(crate) fn unseen_by_a_candidate<'a>(&self, cfg: &'a TargetConfig) -> Option<&'a str> {
        let me = self.me.name.as_str();
        cfg.nodes.iter().map(String::as_str).filter(|n| *n != me).find(|n| self.peer_alive(n) && !self.heard_this_run(n))
    }

    fn start_kind(&self, name: &str, cfg: &TargetConfig) -> Option<StartKind> {
        if self.holders(name).any(|h| !self.fenced.contains_key(h)) {
            return None; // held by a live node, or by a silent node not yet confirmed off
        }
        // every other node that may run it must be confirmed off, or alive AND done discovering what it
        // holds: a peer still discovering lists nothing, which does not mean it holds nothing
        let others_known = cfg.nodes.iter().filter(|n| **n != self.me.name).all(|n| self.fenced.contains_key(n) || self.peer_knows_its_holdings(n));
        if !others_known {
            return None;
        }
        if let Some(to) = self.handoff_of(name) {
            if to == self.me.name {
                return self.eligible(&to, cfg).then_some(StartKind::Acquire);
            }
            if self.eligible(&to, cfg) {
                return None; // reserved for its destination
            }
        }
        if self.designated(cfg).as_deref() != Some(self.me.name.as_str()) {
            return None;
        }
        let label_owner = self.targets.get(name).and_then(|s| s.label_owner.clone()).filter(|n| self.fenced.contains_key(n));
        Some(match self.holders(name).next().map(str::to_string).or_else(|| self.fenced_unheard(cfg)).or(label_owner) {
            Some(from) => StartKind::Forced { from },
            None => StartKind::Acquire,
        })
    }

    /// A node of the target confirmed off whose holdings this run never heard (this node restarted after the
    /// fence): it may be the pool's last owner, so the label rule must be allowed to name it (a forced start,
    /// `-f` only if the label says ACTIVE on that host). Otherwise the controlled acquire would find the pool
    /// "not exported" and block a takeover the fence already made safe.
    fn fenced_unheard(&self, cfg: &TargetConfig) -> Option<String> {
        cfg.nodes
            .iter()
            .find(|n| **n != self.me.name && self.fenced.contains_key(n) && self.peers.get(*n).is_some_and(|p| p.last_heartbeat.is_none()))
            .cloned()
    }

    fn start_target(&mut self, now: Time, name: &str, kind: StartKind) {
        let me = self.identity(&self.me);
        let known = self.known_hosts();
        let t = self.storage_timeouts();
        let cfg = self.targets[name].cfg.clone();
        let (run, from) = match kind {
            StartKind::Forced { from } => {
                let Some(fenced) = self.cfg.node(&from).map(|n| self.identity(n)) else { return };
                (SequenceRun::forced(&cfg, &me, &fenced, &known, t), Some(from))
            }
            StartKind::Acquire => (SequenceRun::acquire(&cfg, &me, &known, t), None),
        };
        let sequence = run.kind();
        let slot = self.targets.get_mut(name).expect("slot");
        slot.local = Local::Starting { run: Box::new(run), from: from.clone(), started: now, step_started: now, import_waits: None, mount_waits: None, import_ms: None };
        slot.retry_at = None;
        self.move_requests.remove(name);
        self.emit(now, Event::SequenceStarted { target: name.to_string(), sequence, from });
        self.after_local_change(now);
        self.issue_step(now, name, false);
    }

    pub(crate) fn start_release(&mut self, now: Time, name: &str, to: Option<String>, cleanup: bool) {
        let t = self.storage_timeouts();
        let Some(slot) = self.targets.get_mut(name) else { return };
        let run = if cleanup { SequenceRun::cleanup(&slot.cfg, t) } else { SequenceRun::release(&slot.cfg, t) };
        slot.local = Local::Releasing { run: Box::new(run), to, started: now, step_started: now, cleanup };
        slot.monitor = None;
        self.emit(now, Event::SequenceStarted { target: name.to_string(), sequence: SequenceKind::Release, from: None });
        self.after_local_change(now);
        self.issue_step(now, name, false);
    }

    fn after_local_change(&mut self, now: Time) {
        self.journal_dirty = true;
        self.next_heartbeat = now;
    }

    /// Run the current step of the target's main sequence (or of its monitor).
    fn issue_step(&mut self, now: Time, name: &str, monitor: bool) {
        let mount_step = !monitor
            && self.targets.get(name).is_some_and(|s| matches!(&s.local, Local::Starting { run, .. } if run.step() == Some(Step::Mount)));
        let import_step = !monitor
            && self.targets.get(name).is_some_and(|s| matches!(&s.local, Local::Starting { run, .. } if run.step() == Some(Step::Import)));
        let import_blockers = if import_step { self.import_blockers(name) } else { Vec::new() };
        let blockers = if mount_step { self.mount_blockers(name) } else { Vec::new() };
        let Some(slot) = self.targets.get_mut(name) else { return };
        if let Local::Starting { import_waits, .. } = &mut slot.local {
            if !import_blockers.is_empty() {
                // the label is checked; the import waits for the forced import(s) running here
                let first = import_waits.is_none();
                import_waits.get_or_insert(now);
                if first {
                    self.emit(now, Event::ImportWaiting { target: name.into(), waiting_for: import_blockers });
                }
                return;
            }
            *import_waits = None;
        }
        let Some(slot) = self.targets.get_mut(name) else { return };
        if let Local::Starting { mount_waits, .. } = &mut slot.local {
            if !blockers.is_empty() {
                // the pool is imported and checked; the mount waits for the lower start_order target(s)
                let first = mount_waits.is_none();
                mount_waits.get_or_insert(now);
                if first {
                    self.emit(now, Event::MountWaiting { target: name.into(), waiting_for: blockers });
                }
                return;
            }
            *mount_waits = None;
        }
        if import_step {
            if let Some(victim) = self.forced_from_no_longer_off(name) {
                self.abandon_forced_import(now, name, &victim, "is no longer confirmed off (heard again since its fence)");
                return;
            }
            // this daemon was stopped (SIGSTOP, a VM pause) after the label check: what it has not read yet
            // may say the victim is back (swarm seed 542891: 525 inputs waited, the first was the label
            // check's result, the import ran before the datagrams saying the victim had rebooted and taken the
            // pool over). Start again with fresh evidence once the stall's grace is over.
            if let Some(victim) = self.forced_after_stall(name, now) {
                self.abandon_forced_import(now, name, &victim, "was confirmed off before this daemon stalled: no forced import on evidence that old");
                return;
            }
        }
        let Some(slot) = self.targets.get_mut(name) else { return };
        let run = if monitor {
            slot.monitor.as_deref()
        } else {
            match &mut slot.local {
                Local::Starting { run, step_started, .. } | Local::Releasing { run, step_started, .. } => {
                    *step_started = now;
                    Some(&**run)
                }
                _ => None,
            }
        };
        let Some(run) = run else { return };
        let sequence = run.kind();
        let (Some(step), Some((_, command))) = (run.step(), run.current()) else { return };
        if !monitor {
            self.emit(now, Event::StepStarted { target: name.into(), sequence, step, command: command.display() });
        }
        let purpose = Purpose::Storage { target: name.into(), sequence, step };
        self.run_command(command, purpose, Waiter::Target { target: name.into(), monitor });
    }

    /// The node a forced sequence of `name` takes the target from, when this node no longer holds it confirmed
    /// off: its fence record was voided since the sequence started (the node was heard again in the same
    /// incarnation, so its fence device lied, or in a new one, so it rebooted).
    /// The victim of this forced sequence, while the grace after a local stall runs (`stalled_until`).
    fn forced_after_stall(&self, name: &str, now: Time) -> Option<String> {
        if self.stalled_until.is_none_or(|t| now >= t) {
            return None;
        }
        match &self.targets.get(name)?.local {
            Local::Starting { run, from: Some(victim), .. } if run.kind() == SequenceKind::Forced => Some(victim.clone()),
            _ => None,
        }
    }

    fn forced_from_no_longer_off(&self, name: &str) -> Option<String> {
        match &self.targets.get(name)?.local {
            Local::Starting { run, from: Some(victim), .. } if run.kind() == SequenceKind::Forced && !self.fenced.contains_key(victim) => {
                Some(victim.clone())
            }
            _ => None,
        }
    }

    /// No `zpool import -f` without a confirmed fence, also when the confirmation is voided between the label
    /// check and the import (swarm seed 3694: a daemon restarted with a journaled fence that its BMC had lied
    /// about, started a forced takeover, then heard the node alive): the sequence stops before its import. It
    /// has only read the label, so nothing is held; the target is left to whoever holds it, and the alert that
    /// voided the record (`fence_lied`, `peer_restarted`) has told the operator why.
    fn abandon_forced_import(&mut self, now: Time, name: &str, victim: &str, why: &str) {
        let Some(slot) = self.targets.get_mut(name) else { return };
        slot.local = Local::Stopped;
        let error = format!("import: {victim} {why}: no forced import");
        self.emit(now, Event::SequenceFailed { target: name.into(), sequence: SequenceKind::Forced, error });
        self.after_local_change(now);
    }

    // ----- results ----------------------------------------------------------------------------------

    pub(crate) fn target_command_done(&mut self, now: Time, name: &str, monitor: bool, result: &CommandResult) {
        if monitor {
            self.monitor_done(now, name, result);
            return;
        }
        let Some(slot) = self.targets.get_mut(name) else { return };
        let (verdict, step, sequence, step_started, remarks) = match &mut slot.local {
            Local::Starting { run, step_started, .. } | Local::Releasing { run, step_started, .. } => {
                let step = run.step();
                let verdict = run.on_result(result);
                if step == Some(Step::ZdbCheck) {
                    log_zdb_verdict(&self.me.name, name, run, &verdict);
                }
                (verdict, step, run.kind(), *step_started, run.take_remarks())
            }
            _ => return,
        };
        for r in remarks {
            tracing::warn!(node = %self.me.name, target = name, pool = %r.pool, state = %r.state, status = ?r.status,
                "zpool status -x: the pool serves data but is not simply healthy; read `zpool status` on this node");
            self.emit(now, Event::PoolRemark { target: name.into(), pool: r.pool, state: r.state, status: r.status });
        }
        if step == Some(Step::Import) && !matches!(verdict, StepVerdict::Failed(_)) {
            if let Some(Local::Starting { import_ms, .. }) = self.targets.get_mut(name).map(|s| &mut s.local) {
                *import_ms = Some(now.since(step_started).as_millis() as u64);
            }
        }
        let ms = now.since(step_started).as_millis() as u64;
        match verdict {
            StepVerdict::Next => {
                if let Some(step) = step {
                    self.emit(now, Event::StepDone { target: name.into(), sequence, step, ms });
                }
                self.issue_step(now, name, false);
            }
            StepVerdict::Done => {
                if let Some(step) = step {
                    self.emit(now, Event::StepDone { target: name.into(), sequence, step, ms });
                }
                self.sequence_done(now, name);
            }
            StepVerdict::Failed(e) => self.sequence_failed(now, name, step, e),
        }
    }

    fn sequence_done(&mut self, now: Time, name: &str) {
        let interval = self.cfg.cluster.monitor_interval;
        let slot = self.targets.get_mut(name).expect("slot");
        let (sequence, started, next) = match &slot.local {
            Local::Starting { run, started, .. } => (run.kind(), *started, Local::Running { since: now }),
            Local::Releasing { to: Some(to), started, cleanup: false, .. } => (SequenceKind::Release, *started, Local::HandedOff { to: to.clone(), at: now }),
            Local::Releasing { started, .. } => (SequenceKind::Release, *started, Local::Stopped),
            _ => return,
        };
        if matches!(next, Local::Running { .. }) {
            slot.start_failures = 0;
            slot.label_owner = None;
            slot.next_monitor = now + interval;
            slot.monitor_failures = 0;
        }
        let verified = matches!(next, Local::Running { .. });
        slot.local = next;
        self.emit(now, Event::SequenceDone { target: name.into(), sequence, ms: now.since(started).as_millis() as u64 });
        if verified {
            self.start_recovery_follow(now, name);
        }
        self.after_local_change(now);
    }

    fn sequence_failed(&mut self, now: Time, name: &str, step: Option<Step>, e: StorageError) {
        let slot = self.targets.get_mut(name).expect("slot");
        let (sequence, from) = match &slot.local {
            Local::Starting { run, from, .. } => (run.kind(), from.clone()),
            Local::Releasing { run, .. } => (run.kind(), None),
            _ => return,
        };
        if let (StorageError::MmpActive { .. }, Some(fenced)) = (&e, &from) {
            self.distrust_fence(now, fenced, name);
        }
        self.emit(now, Event::SequenceFailed { target: name.into(), sequence, error: e.to_string() });
        let slot = self.targets.get_mut(name).expect("slot");
        if sequence == SequenceKind::Release {
            // a release that fails or hangs leaves the target half-held: ask to be fenced so a peer can
            // take over by the forced sequence — never two owners, never a half-released target
            let reason = format!("{name}: release failed at {}: {e}", step.map_or("", Step::name));
            slot.local = Local::Failed { reason: reason.clone() };
            self.fence_me = Some(reason.clone());
            self.emit(now, Event::AskingToBeFenced { reason });
            self.after_local_change(now);
            return;
        }
        slot.start_failures += 1;
        let held = started_holding(step, &e);
        // A controlled acquire found the pool ACTIVE under a node of the target this node holds confirmed off
        // (it crashed with the pool imported and came back holding nothing, or was fenced since): that is a
        // forced migration's case, which the label rule makes safe; start again at once as one (swarm seed
        // 226958: the target was blocked for an operator instead).
        let label_owner = match &e {
            StorageError::NotExported { hostname, .. } if sequence == SequenceKind::Acquire && slot.cfg.nodes.contains(hostname) => Some(hostname.clone()),
            _ => None,
        };
        let forced_next = label_owner.as_ref().is_some_and(|n| self.fenced.contains_key(n)) && slot.start_failures < MAX_START_FAILURES;
        slot.label_owner = label_owner;
        if forced_next {
            slot.retry_at = None;
        } else if needs_operator(&e) || slot.start_failures >= MAX_START_FAILURES {
            let reason = e.to_string();
            slot.blocked = Some(reason.clone());
            self.emit(now, Event::TargetBlocked { target: name.into(), reason });
        } else {
            let backoff = self.cfg.cluster.fence_retry_initial * (1u32 << slot.start_failures.min(8));
            let slot = self.targets.get_mut(name).expect("slot");
            slot.retry_at = Some(now + backoff);
        }
        let slot = self.targets.get_mut(name).expect("slot");
        slot.local = Local::Stopped;
        if held {
            self.start_release(now, name, None, true);
        } else {
            self.after_local_change(now);
        }
    }

    /// An MMP refusal during a forced takeover proves the node we "fenced" still writes to the pool: its
    /// fence did not cut its power. Stop every takeover from it and alert; an operator must look. The
    /// confirmation is voided, so the other forced takeovers from that node stop before their imports
    /// (swarm seed 307508: after the first refusal, two more `zpool import -f` from the same node ran).
    fn distrust_fence(&mut self, now: Time, node: &str, refused: &str) {
        if self.fenced.void(node) {
            self.journal_dirty = true;
        }
        // ...and that node is not fenced again automatically through the same device until it is heard
        // alive: its next "off" would be worth no more (seed 307508 fenced it four times, one refusal each)
        if !self.peer_alive(node) {
            self.fence_cancelled.insert(node.to_string());
        }
        self.emit(now, Event::FenceLied { node: node.to_string() });
        let claimed: Vec<String> = self
            .last_heartbeat(node)
            .map(|hb| hb.targets.iter().filter(|t| holding(&t.state)).map(|t| t.name.clone()).collect())
            .unwrap_or_default();
        // the other forced takeovers from that node stop before their imports (the record is void): they are
        // blocked as well, for the operator (the refused one is blocked by its own failure)
        let taking_over: Vec<String> = self
            .targets
            .iter()
            .filter(|(_, s)| matches!(&s.local, Local::Starting { run, from: Some(f), .. } if f == node && run.kind() == SequenceKind::Forced))
            .map(|(t, _)| t.clone())
            .collect();
        for t in claimed.into_iter().chain(taking_over).filter(|t| t != refused) {
            if let Some(slot) = self.targets.get_mut(&t) {
                if slot.blocked.is_none() && matches!(slot.local, Local::Stopped | Local::Starting { .. }) {
                    let reason = format!("{node} was reported off by its fence device but still holds pools (MMP)");
                    slot.blocked = Some(reason.clone());
                    self.emit(now, Event::TargetBlocked { target: t.clone(), reason });
                }
            }
        }
    }

    // ----- monitoring -------------------------------------------------------------------------------

    fn start_monitors(&mut self, now: Time) {
        let t = self.storage_timeouts();
        let due: Vec<String> = self
            .targets
            .iter()
            .filter(|(_, s)| matches!(s.local, Local::Running { .. }) && s.monitor.is_none() && now >= s.next_monitor)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let slot = self.targets.get_mut(&name).expect("slot");
            slot.monitor = Some(Box::new(SequenceRun::monitor(&slot.cfg, t)));
            self.issue_step(now, &name, true);
        }
    }

    fn monitor_done(&mut self, now: Time, name: &str, result: &CommandResult) {
        let interval = self.cfg.cluster.monitor_interval;
        let threshold = self.cfg.cluster.monitor_failures;
        let Some(slot) = self.targets.get_mut(name) else { return };
        if !matches!(slot.local, Local::Running { .. }) {
            slot.monitor = None;
            return;
        }
        let Some(run) = slot.monitor.as_mut() else { return };
        match run.on_result(result) {
            StepVerdict::Next => self.issue_step(now, name, true),
            StepVerdict::Done => {
                slot.monitor = None;
                slot.next_monitor = now + interval;
                if slot.monitor_failures > 0 {
                    slot.monitor_failures = 0;
                    self.emit(now, Event::MonitorRecovered { target: name.into() });
                }
            }
            StepVerdict::Failed(e) => {
                slot.monitor = None;
                slot.next_monitor = now + interval;
                slot.monitor_failures += 1;
                let failures = slot.monitor_failures;
                self.emit(now, Event::MonitorFailed { target: name.into(), failures, error: e.to_string() });
                if failures >= threshold {
                    self.move_sick_target(now, name, &e);
                }
            }
        }
    }

    /// After `monitor_failures` failed checks: controlled migration to the next preferred node.
    fn move_sick_target(&mut self, now: Time, name: &str, e: &StorageError) {
        if !self.actions_allowed() {
            return;
        }
        let cfg = self.targets[name].cfg.clone();
        let Some(to) = cfg.nodes.iter().find(|n| **n != self.me.name && self.eligible(n, &cfg)).cloned() else {
            self.emit(now, Event::TargetBlocked { target: name.into(), reason: format!("unhealthy ({e}) and no other node can run it") });
            return;
        };
        self.emit(now, Event::TargetMoving { target: name.into(), to: to.clone(), reason: format!("health check failed: {e}") });
        self.start_release(now, name, Some(to), false);
    }

    // ----- moves ------------------------------------------------------------------------------------

    /// A hand-off is over once its destination holds the target, is confirmed off, or has been heard alive for
    /// the whole hand-off wait without taking it. A destination that falls silent is not gone: it may be paused
    /// or its datagrams late, and it still acts on the hand-off it heard. Dropping the hand-off then let this
    /// node, the target's first node, import the exported pool itself when it heard the destination again,
    /// while the destination imported it too (an exported pool gets no MMP activity check: swarm seeds 885505,
    /// 908786, 925290). The wait starts again whenever the destination is silent.
    fn settle_handoffs(&mut self, now: Time) {
        let wait = self.cfg.cluster.import_timeout + self.cfg.cluster.mount_timeout + self.cfg.cluster.dead_after;
        let mut done = Vec::new();
        let mut silent = Vec::new();
        for (name, s) in &self.targets {
            if let Local::HandedOff { to, at } = &s.local {
                let picked_up = self.last_heartbeat(to).is_some_and(|hb| hb.targets.iter().any(|t| t.name == *name && holding(&t.state)));
                if picked_up || self.fenced.contains_key(to) || (self.peer_alive(to) && now.since(*at) > wait) {
                    done.push(name.clone());
                } else if !self.peer_alive(to) {
                    silent.push(name.clone());
                }
            }
        }
        for name in silent {
            if let Some(Local::HandedOff { at, .. }) = self.targets.get_mut(&name).map(|s| &mut s.local) {
                *at = now;
            }
        }
        for name in done {
            self.targets.get_mut(&name).expect("slot").local = Local::Stopped;
            self.after_local_change(now);
        }
        self.move_requests.retain(|_, (_, exp)| *exp > now);
    }

    fn serve_move_requests(&mut self, now: Time) {
        let mut asks: BTreeSet<(String, String)> = BTreeSet::new();
        for p in self.peers.values().filter(|p| p.alive()) {
            if let Some(hb) = &p.last_heartbeat {
                asks.extend(hb.move_requests.iter().cloned());
            }
        }
        for (target, to) in asks {
            let Some(slot) = self.targets.get(&target) else { continue };
            if matches!(slot.local, Local::Running { .. }) && to != self.me.name && self.eligible(&to, &slot.cfg) {
                self.emit(now, Event::TargetMoving { target: target.clone(), to: to.clone(), reason: "operator request".into() });
                self.start_release(now, &target, Some(to), false);
            }
        }
    }

    fn move_everything_away(&mut self, now: Time, reason: &str) {
        let running: Vec<String> = self.targets.iter().filter(|(_, s)| matches!(s.local, Local::Running { .. })).map(|(n, _)| n.clone()).collect();
        for name in running {
            let cfg = self.targets[&name].cfg.clone();
            if let Some(to) = cfg.nodes.iter().find(|n| **n != self.me.name && self.eligible(n, &cfg)).cloned() {
                self.emit(now, Event::TargetMoving { target: name.clone(), to: to.clone(), reason: reason.into() });
                self.start_release(now, &name, Some(to), false);
            }
        }
    }

    /// On a node in standby: alert (once per target) about each target of this node that runs nowhere while
    /// no node may start it: the standby keeps it down until an operator acts.
    fn alert_targets_without_node(&mut self, now: Time) {
        let mut orphans = Vec::new();
        for (name, slot) in &self.targets {
            let runs = slot.holds() || self.holders(name).any(|h| !self.fenced.contains_key(h));
            let others_known = slot.cfg.nodes.iter().filter(|n| **n != self.me.name).all(|n| self.fenced.contains_key(n) || self.peer_knows_its_holdings(n));
            if !runs && others_known && self.designated(&slot.cfg).is_none() && self.handoff_of(name).is_none() {
                orphans.push(name.clone());
            }
        }
        self.standby_orphans.retain(|t| orphans.contains(t));
        for target in orphans {
            if self.standby_orphans.insert(target.clone()) {
                let standby: Vec<&str> = self.standby.1.iter().map(String::as_str).collect();
                let reason = format!("it runs nowhere and every node that may run it is down, fenced or in standby (standby: {})", standby.join(", "));
                self.emit(now, Event::TargetHasNoNode { target, reason });
            }
        }
    }

    /// Alert (once per target, on every quorate node that sees it) about a target whose every node is held
    /// confirmed off here: a fence is `off`, never a reboot, so the target stays down until an operator powers
    /// one of them on (swarm seeds 54975 and 55219: both candidates of a target lost, then fenced).
    fn alert_targets_fenced_out(&mut self, now: Time) {
        let out: Vec<(String, Vec<String>)> = self
            .cfg
            .targets
            .iter()
            .filter(|t| t.nodes.iter().all(|n| *n != self.me.name && self.fenced.contains_key(n) && !self.peer_alive(n)))
            .map(|t| (t.name.clone(), t.nodes.clone()))
            .collect();
        self.fenced_out.retain(|t| out.iter().any(|(o, _)| o == t));
        for (target, nodes) in out {
            if self.fenced_out.insert(target.clone()) {
                let reason = format!(
                    "every node that may run it ({}) is fenced off; power one on (`failoverd fence {} --action on`, or at its BMC/PDU) and it starts there once its daemon is back",
                    nodes.join(", "),
                    nodes[0]
                );
                self.emit(now, Event::TargetHasNoNode { target, reason });
            }
        }
    }

    pub(crate) fn admin_standby(&mut self, now: Time, node: &str, on: bool) -> Result<String, AdminError> {
        if self.cfg.node(node).is_none() {
            return Err(AdminError::UnknownNode { node: node.into() });
        }
        if on == self.in_standby(node) {
            return Ok(format!("{node} is already {}", if on { "in standby" } else { "out of standby" }));
        }
        let mut set = self.standby.1.clone();
        if on {
            // every target the node runs must have somewhere to go, or standby would leave it stuck there
            let mut stuck = Vec::new();
            let mut moving = Vec::new();
            for t in &self.cfg.targets {
                if self.owner_of(&t.name).0.as_deref() != Some(node) {
                    continue;
                }
                match t.nodes.iter().find(|n| *n != node && self.eligible(n, t)) {
                    Some(to) => moving.push(format!("{} to {to}", t.name)),
                    None => stuck.push(t.name.clone()),
                }
            }
            if !stuck.is_empty() {
                return Err(AdminError::Refused {
                    reason: format!(
                        "refusing: no other node can take {} now (alive, ready, not fenced, not in standby); nothing changed",
                        stuck.join(", ")
                    ),
                });
            }
            if !self.actions_allowed() && !moving.is_empty() {
                return Err(AdminError::NotNow { reason: format!("{}; nothing changed", self.no_action_reason()) });
            }
            set.insert(node.to_string());
            let epoch = self.standby.0 + 1;
            self.set_standby(now, epoch, set);
            Ok(if moving.is_empty() {
                format!("{node} is in standby: it runs no target and will take none")
            } else {
                format!("{node} is in standby: moving {} (controlled migrations)", moving.join(", "))
            })
        } else {
            set.remove(node);
            let epoch = self.standby.0 + 1;
            self.set_standby(now, epoch, set);
            Ok(format!("{node} is out of standby: it may run targets again (nothing moves back by itself)"))
        }
    }

    pub(crate) fn admin_migrate(&mut self, now: Time, target: &str, to: &str) -> Result<String, AdminError> {
        let Some(cfg) = self.cfg.target(target).cloned() else { return Err(AdminError::UnknownTarget { target: target.into() }) };
        if self.cfg.node(to).is_none() {
            return Err(AdminError::UnknownNode { node: to.into() });
        }
        if !cfg.nodes.iter().any(|n| n == to) {
            return Err(AdminError::NotACandidate { target: target.into(), node: to.into(), nodes: cfg.nodes.clone() });
        }
        if !self.actions_allowed() {
            return Err(AdminError::NotNow { reason: self.no_action_reason() });
        }
        if !self.eligible(to, &cfg) {
            return Err(AdminError::CannotTakeNow { target: target.into(), node: to.into() });
        }
        let (owner, state) = self.owner_of(target);
        match owner {
            None => Err(AdminError::NotRunning { target: target.into(), state }),
            Some(o) if o == to => Err(AdminError::AlreadyThere { target: target.into(), node: to.into() }),
            Some(o) if o == self.me.name => {
                if !matches!(self.targets[target].local, Local::Running { .. }) {
                    return Err(AdminError::Busy { target: target.into(), state });
                }
                self.emit(now, Event::TargetMoving { target: target.into(), to: to.into(), reason: "operator request".into() });
                self.start_release(now, target, Some(to.to_string()), false);
                Ok(format!("moving {target} from {o} to {to}: umount, export, then import on {to} without -f"))
            }
            Some(o) => {
                self.move_requests.insert(target.to_string(), (to.to_string(), now + Duration::from_secs(60)));
                self.next_heartbeat = now;
                Ok(format!("asked {o} to move {target} to {to}"))
            }
        }
    }
}

/// After a failed start, might this node hold part of the target (an imported pool)?
fn started_holding(step: Option<Step>, e: &StorageError) -> bool {
    match step {
        Some(Step::ZdbCheck | Step::Mkdir) => false,
        // a refused import imported nothing; a timed-out or otherwise failed one may have
        Some(Step::Import) => !matches!(e, StorageError::MmpActive { .. } | StorageError::NotExported { .. } | StorageError::ForeignOwner { .. }),
        _ => true,
    }
}

/// A peer's target state in words for `status` and `migrate`/`standby` (`releasing to mds2`), never Rust's
/// Debug text.
pub(crate) fn target_state_words(state: &crate::protocol::TargetState) -> String {
    use crate::protocol::TargetState as S;
    match state {
        S::Starting => "starting".into(),
        S::Running => "running".into(),
        S::Releasing { to: Some(to) } => format!("releasing to {to}"),
        S::Releasing { to: None } => "stopping".into(),
        S::HandedOff { to } => format!("handed off to {to}"),
        S::Failed => "failed".into(),
    }
}

/// The daemon log states the label rule's decision, as the demo prints it: what the zdb label says, and
/// whether the import will use `-f` and why.
fn log_zdb_verdict(me: &str, target: &str, run: &SequenceRun, verdict: &StepVerdict) {
    match (run.label(), verdict) {
        (Some(l), StepVerdict::Next | StepVerdict::Done) => {
            let why = if run.used_force() {
                "zpool import -f: the label is ACTIVE and names the fenced host (confirmed off)"
            } else {
                "zpool import without -f: the label does not need it (exported, or last imported by this host)"
            };
            tracing::info!(node = %me, target, pool = %l.name, label_state = ?l.state, label_hostname = %l.hostname,
                label_hostid = %format!("{:08x}", l.hostid_or_zero()), force = run.used_force(), "zdb label check passed: {why}");
        }
        (label, StepVerdict::Failed(e)) => {
            tracing::warn!(node = %me, target, label = ?label, error = %e, "zdb label check refused the import");
        }
        _ => {}
    }
}
