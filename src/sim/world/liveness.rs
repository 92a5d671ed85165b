//! Liveness: once every fault stops (`action = "settle"`), every target must end verified on exactly one live
//! node, within the time the scenario leaves after the settle — or the run must have raised the alert that
//! explains why not and names what the operator should run.
//!
//! `settle` is what "the faults stop" means in the world: links healed (no cut, loss or extra delay, the
//! witness reachable), every BMC, PDU and storage fault cleared (a frozen host thawed), every powered-off host
//! powered on, a daemon started on every powered host without one (systemd's `Restart=`), a paused daemon
//! resumed, and the operator's state undone (maintenance off, every node out of standby; asked through a live
//! daemon 30, 60 and 90 s later, once the hosts have booted).
//!
//! What a random schedule cannot promise, and so the checkers accept when the alert was raised:
//! - a target the engine blocked (`target_blocked`: a foreign or unreadable label, MMP, a sequence that kept
//!   failing) waits for an operator by design, whenever it was blocked;
//! - a suspended pool copy (`suspend-pool`) stays suspended until `zpool clear` or a reboot: its host asks to
//!   be fenced (`asking_to_be_fenced`), or the target is blocked;
//! - a node that asked to be fenced after the settle and was fenced stays off: the target must then run on
//!   another node (that is still checked);
//! - wait_for_all after a restart that cannot see a peer (`wait_for_all_stuck`, naming
//!   `failoverd override-wait-for-all`), leftover commands that never die (`orphans_stuck`), a fence that needs
//!   an operator (`fence_needs_operator`, `fence_failed`), raised at or after the settle;
//! - a node whose configuration drifted (`config_mismatch` that blocks fencing, `fence_blocked`), whenever
//!   raised: the settle does not undo an operator's edit.
//!
//! One checker function per invariant; each returns the unmet expectation in words.

use std::time::Duration;

use crate::engine::{AdminRequest, Event, Input, Severity};
use crate::time::Time;

use super::{device_addresses, Ev, World};

/// How often, after the settle, the world looks whether the cluster has converged (it then ends the run early:
/// nothing is left to happen).
pub(super) const CONVERGE_CHECK: Duration = Duration::from_secs(5);
/// The operator's state is undone this long after the settle (and twice more, 30 s apart).
const OPERATOR_UNDO: Duration = Duration::from_secs(30);

impl World {
    /// Every fault stops now.
    pub(super) fn settle(&mut self) {
        self.settled_at = Some(self.now);
        for l in 0..self.net.links.len() {
            self.net.links[l].loss = 0.0;
            self.net.links[l].extra_delay = Duration::ZERO;
        }
        self.net.heal(None);
        self.disk_settle();
        let nodes: Vec<String> = self.cfg.nodes.iter().map(|n| n.name.clone()).collect();
        for n in &nodes {
            for addr in device_addresses(&self.cfg, n, true).into_iter().chain(device_addresses(&self.cfg, n, false)) {
                if let Some(f) = self.hardware.faults_mut(&addr) {
                    *f = Default::default();
                }
            }
            for d in self.cfg.node(n).map(|c| c.fence_levels.iter().flatten().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                if let Some(f) = self.hardware.faults_mut(&d) {
                    *f = Default::default();
                }
            }
            if let Some(f) = self.storage.faults_mut(n) {
                *f = Default::default();
            }
            self.storage.set_frozen(n, false, self.now);
            self.storage_dirty = true;
            self.resume(n);
            self.clock_faults.remove(n);
            let (powered, daemon) = self.hosts.get(n).map_or((true, true), |h| (h.powered, h.engine.is_some()));
            if !powered {
                self.power_on(n);
            } else if !daemon {
                let at = self.now + Duration::from_secs(1);
                self.schedule(at, Ev::Boot { host: n.clone() });
            }
        }
        for k in 1..=3u32 {
            let at = self.now + OPERATOR_UNDO * k;
            self.schedule(at, Ev::UndoOperator);
        }
        let at = self.now + CONVERGE_CHECK;
        self.schedule(at, Ev::ConvergeCheck);
    }

    /// Maintenance off and every node out of standby, asked through the first live daemon.
    pub(super) fn undo_operator(&mut self) {
        let via = self.hosts.iter().find(|(n, h)| h.engine.is_some() && self.cfg.node(n).is_some()).map(|(n, _)| n.clone());
        let Some(via) = via else { return };
        if self.operator_touched.0 {
            self.admin(&via, AdminRequest::Maintenance { on: false });
        }
        let standby: Vec<String> = self.operator_touched.1.iter().cloned().collect();
        for n in standby {
            self.admin(&via, AdminRequest::Standby { node: n, on: false });
        }
    }

    /// After the settle: has the cluster converged? Then the run ends now (`true`).
    pub(super) fn converged(&mut self) -> bool {
        let busy = self.hosts.values().any(|h| h.powered && (h.engine.is_none() || !h.inflight.is_empty()));
        !busy && self.liveness_unmet(false).is_empty()
    }

    /// Keep the alerts the liveness checkers may accept as explanations.
    pub(super) fn note_alert(&mut self, host: &str, e: &Event) {
        if e.severity() == Severity::Alert {
            self.alerts.push((self.now, host.to_string(), e.clone()));
        }
    }

    /// The liveness expectations not met now; `explained` accepts the alerts that explain a failure.
    pub(super) fn liveness_unmet(&self, explained: bool) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.cfg.targets {
            if let Err(e) = self.check_target_runs_once(&t.name) {
                match self.explaining_alert(Some(&t.name)).filter(|_| explained) {
                    Some(_) => {}
                    None => out.push(e),
                }
            }
        }
        for n in &self.cfg.nodes {
            if let Err(e) = self.check_node_quorate(&n.name) {
                match self.explaining_alert(None).filter(|_| explained) {
                    Some(_) => {}
                    None => out.push(e),
                }
            }
        }
        out
    }

    /// Invariant: the target is mounted (live) on exactly one powered host, whose daemon runs it.
    fn check_target_runs_once(&self, target: &str) -> Result<(), String> {
        let Some(cfg) = self.cfg.target(target) else { return Ok(()) };
        let on = self.mounted_on(&cfg.mountpoint.display().to_string());
        if on.len() != 1 {
            return Err(format!("liveness: {target} runs on {} hosts ({}) after the faults stopped", on.len(), on.join(", ")));
        }
        let running = self
            .hosts
            .get(&on[0])
            .and_then(|h| h.engine.as_ref())
            .map(|e| e.status(self.now))
            .is_some_and(|s| s.targets.iter().any(|ts| ts.target == target && ts.local == "running"));
        if !running {
            return Err(format!("liveness: {target} is mounted on {} but its daemon does not run it after the faults stopped", on[0]));
        }
        Ok(())
    }

    /// Invariant: every powered host runs a daemon that is quorate (all nodes are back).
    fn check_node_quorate(&self, node: &str) -> Result<(), String> {
        let Some(h) = self.hosts.get(node) else { return Ok(()) };
        if !h.powered {
            return Ok(()); // fenced again after the settle (it asked to be): its targets are checked elsewhere
        }
        match &h.engine {
            None => Err(format!("liveness: {node} is powered but runs no daemon after the faults stopped")),
            Some(e) if !e.is_quorate() => Err(format!("liveness: {node} has no quorum after the faults stopped")),
            Some(_) => Ok(()),
        }
    }

    /// The alert that explains why a target (or, with `None`, a node) is not where liveness wants it: a block
    /// of that target at any time, or an operator-bound alert raised at or after the settle.
    fn explaining_alert(&self, target: Option<&str>) -> Option<&Event> {
        let settled = self.settled_at.unwrap_or(Time::ZERO);
        self.alerts.iter().map(|(t, _, e)| (t, e)).find_map(|(t, e)| {
            let ok = match e {
                Event::TargetBlocked { target: b, .. } | Event::TargetHasNoNode { target: b, .. } => target.is_none_or(|x| x == b),
                Event::AskingToBeFenced { .. } => true,
                // a node runs with another configuration (an operator's drift, which the settle does not undo):
                // fencing the nodes that disagree is blocked until the configurations agree again
                Event::FenceBlocked { .. } | Event::ConfigMismatch { blocks_fencing: true, .. } => true,
                Event::WaitForAllStuck { .. } | Event::OrphansStuck { .. } | Event::FenceNeedsOperator { .. } | Event::FenceFailed { .. } => {
                    *t >= settled
                }
                _ => false,
            };
            ok.then_some(e)
        })
    }

    /// The end of a run with a settle: what liveness left unmet.
    pub(super) fn judge_liveness(&self) -> Vec<String> {
        self.liveness_unmet(true)
    }

    /// Resume a paused daemon (SIGCONT): everything it missed reaches it now, and it notices the gap.
    pub(super) fn resume(&mut self, node: &str) {
        let Some(h) = self.hosts.get_mut(node) else { return };
        let Some(since) = h.paused_since.take() else { return };
        h.resumed_at = Some(self.now);
        let missed = std::mem::take(&mut h.paused_inputs);
        let late = self.now.since(since);
        self.trace(node, &format!("resumed after {} ms ({} inputs waiting)", late.as_millis(), missed.len()));
        // the daemon's loop sees either its overdue timer or a waiting input first (tokio's select! is not
        // biased): both orders happen
        let timer_first = rand::Rng::random_bool(&mut self.rng, 0.5);
        let timer = Input::timer(late, self.cfg.cluster.stall_threshold);
        if timer_first {
            self.feed(node, timer.clone());
        }
        for input in missed {
            self.feed(node, input);
        }
        if !timer_first {
            self.feed(node, timer);
        }
    }
}
