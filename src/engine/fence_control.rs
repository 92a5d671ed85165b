//! When to fence, who fences, and driving fence jobs to a confirmed power state.
//!
//! Rules enforced here (README.md "Safety rules"; ARCHITECTURE.md says where each is enforced): no fence without quorum (rule 4); one designated fencer per view;
//! the two-node fence race delay (rule 5); retries with backoff when every level fails, loudly (rule 6);
//! a node never seen since start is not fenced while wait_for_all holds.

use std::sync::Arc;
use std::time::Duration;

use crate::command::CommandResult;
use crate::fence::{FenceAction, PowerState};
use crate::protocol::FenceConfirmation;
use crate::time::Time;

use super::events::FenceReason;
use super::fencing::{FenceJob, JobProgress};
use super::journal::FencedRecord;
use super::quorum;
use super::{AdminError, Engine, Event, Output, Purpose, Waiter};

impl Engine {
    pub(crate) fn drive_fencing(&mut self, now: Time) {
        self.drop_stale_fence_jobs(now);
        self.adopt_peer_confirmations(now);
        self.wake_fence_jobs(now);
        self.start_power_rechecks(now);
        let peers = Arc::clone(&self.peer_names);
        for victim in peers.iter() {
            self.consider_fencing(now, victim);
        }
    }

    fn wake_fence_jobs(&mut self, now: Time) {
        let due: Vec<String> = self.fence_waits.iter().filter(|(_, t)| now >= **t).map(|(v, _)| v.clone()).collect();
        for victim in due {
            self.fence_waits.remove(&victim);
            let Some(mut job) = self.fence_jobs.remove(&victim) else { continue };
            let progress = if job.waiting_retry {
                job.waiting_retry = false;
                if let Some(reason) = self.fence_no_longer_wanted(now, &victim, &job) {
                    self.emit(now, Event::FenceCancelled { node: victim.clone(), reason });
                    continue;
                }
                let progress = job.start_attempt(&self.cfg, now);
                self.emit_fence_started(now, &job);
                progress
            } else {
                job.on_wake(&self.cfg, now)
            };
            self.fence_jobs.insert(victim.clone(), job);
            self.apply_fence_progress(now, &victim, progress);
        }
    }

    /// Why a fence job should make no new attempt (at a retry, or before its next level after one failed):
    /// the victim of a `PeerDead` fence is heard again, or its disk slot is not stopped (or this node's own
    /// writes fail); a fence that needs quorum lost it, or its configuration now blocks it.
    fn fence_no_longer_wanted(&self, now: Time, victim: &str, job: &FenceJob) -> Option<String> {
        if job.reason == FenceReason::PeerDead && self.peer_alive(victim) {
            return Some("the node is heard again".into());
        }
        if job.reason == FenceReason::PeerDead && self.disk.is_some() && !self.stopped_on_disk(now, victim) {
            return Some(if self.own_disk_failing(now) { "this node's own disk heartbeat writes fail" } else { "its disk heartbeat slot is not stopped" }.into());
        }
        if job.reason.needs_quorum() && (!self.quorum.quorate || self.in_maintenance()) {
            return Some(format!("no action allowed: {}", self.no_action_reason()));
        }
        job.reason.needs_quorum().then(|| self.fence_blocked_by_config(victim)).flatten()
    }

    pub(crate) fn no_action_reason(&self) -> String {
        if self.in_maintenance() {
            "maintenance mode".into()
        } else if !self.quorum.quorate {
            format!("no quorum ({})", self.quorum.reason)
        } else {
            "ok".into()
        }
    }

    /// A restarted node holds fence confirmations from its journal. The victim cannot be heard (it is off), so
    /// wait_for_all would keep this node without quorum for ever: read its power instead. A node a fresh status
    /// read finds off counts as seen ([`ledger::FenceLedger::power_read`](super::ledger::FenceLedger::power_read)); one found on, or whose devices cannot say,
    /// raises [`Event::WaitForAllStuck`] with the command an operator may run. Hearing the node again in a new
    /// incarnation voids the record as before.
    fn start_power_rechecks(&mut self, now: Time) {
        let due: Vec<String> = self
            .recheck_power
            .iter()
            .filter(|(n, at)| now >= **at && self.fenced.contains_key(n) && !self.fence_jobs.contains_key(*n) && !self.peer_alive(n))
            .map(|(n, _)| n.clone())
            .collect();
        for node in due {
            self.recheck_power.remove(&node);
            let Some(victim) = self.cfg.node(&node).cloned() else { continue };
            self.start_fence_job(now, FenceJob::new(&victim, FenceAction::Status, FenceReason::Recheck, now));
        }
        let fenced = &self.fenced;
        self.recheck_power.retain(|n, _| fenced.contains_key(n));
    }

    /// A status read of a journaled fence came back (`power`), or could not be made (`None`).
    fn power_rechecked(&mut self, now: Time, node: &str, power: Option<PowerState>) {
        let word = match power {
            Some(PowerState::Off) => "off",
            Some(PowerState::On) => "on",
            None => "unknown",
        };
        self.emit(now, Event::FencePowerChecked { node: node.to_string(), power: word.into() });
        if power == Some(PowerState::On) && self.fenced.void(node) {
            // the journaled confirmation no longer holds: the node has power (powered on again, or its fence
            // device lied). It must not allow a forced import any more; silent, the node is judged and fenced
            // afresh (swarm seed 3694 with a BMC that had lied)
            self.journal_dirty = true;
            return;
        }
        self.fenced.power_read(node, power == Some(PowerState::Off));
    }

    /// Why `victim` needs fencing now, if it does.
    fn fence_need(&self, now: Time, victim: &str) -> Option<FenceReason> {
        if self.fenced.contains_key(victim) || self.fence_jobs.contains_key(victim) {
            return None;
        }
        let p = self.peers.get(victim)?;
        let hb = p.last_heartbeat.as_ref();
        if p.alive() {
            return hb.is_some_and(|h| h.fence_me).then_some(FenceReason::PeerAsked);
        }
        if hb.is_some_and(|h| h.leaving) {
            return None;
        }
        // silent on every link but its disk heartbeat slot advances: alive, not dead
        if self.alive_on_disk(now, victim) {
            return None;
        }
        let startup_over = now.since(self.started_at) >= self.cfg.cluster.dead_after;
        let may_judge = p.ever_seen || (startup_over && (!self.cfg.cluster.wait_for_all || self.wfa_overridden));
        may_judge.then_some(FenceReason::PeerDead)
    }

    /// A job that waits (on an operator, or a backoff) for a victim heard alive — in a new incarnation, or at
    /// all when the job was for its silence — has nothing left to do: drop it, and say so.
    fn drop_stale_fence_jobs(&mut self, now: Time) {
        let stale: Vec<(String, String)> = self
            .fence_jobs
            .iter()
            .filter(|(victim, job)| job.waiting_retry || self.fence_operator_alerted.contains(*victim))
            .filter_map(|(victim, job)| {
                let p = self.peers.get(victim).filter(|p| p.alive())?;
                let started_in = self.fence_job_incarnation.get(victim).copied().flatten();
                let restarted = p.incarnation.is_some_and(|i| started_in.is_none_or(|s| i > s));
                if restarted {
                    Some((victim.clone(), format!("{victim} is heard alive in a new incarnation")))
                } else if job.reason == FenceReason::PeerDead {
                    Some((victim.clone(), format!("{victim} is heard again")))
                } else {
                    None
                }
            })
            .collect();
        for (victim, reason) in stale {
            self.end_fence_job(&victim);
            self.emit(now, Event::FenceCancelled { node: victim.clone(), reason: reason.clone() });
            self.reply_fence_admin(&victim, Err(AdminError::FenceCancelled { reason: reason.clone() }));
        }
        // a cancelled victim heard alive again may be fenced automatically again later
        let back: Vec<String> = self.fence_cancelled.iter().filter(|v| self.peer_alive(v)).cloned().collect();
        for v in back {
            self.fence_cancelled.remove(&v);
        }
    }

    fn end_fence_job(&mut self, victim: &str) {
        self.fence_jobs.remove(victim);
        self.fence_waits.remove(victim);
        self.fence_operator_alerted.remove(victim);
        self.fence_job_incarnation.remove(victim);
    }

    /// `failoverd fence --cancel NODE`.
    pub(crate) fn admin_fence_cancel(&mut self, now: Time, node: &str) -> Result<String, AdminError> {
        if self.cfg.node(node).is_none() {
            return Err(AdminError::UnknownNode { node: node.into() });
        }
        let Some(job) = self.fence_jobs.get(node) else {
            return Err(AdminError::NoFenceInProgress { node: node.into() });
        };
        let waiting = job.waiting_retry || self.fence_operator_alerted.contains(node);
        if !waiting && job.reason != FenceReason::Operator {
            return Err(AdminError::Refused {
                reason: format!("the fence of {node} is running a fence device now; cancel it once it waits (on an operator or a retry)"),
            });
        }
        self.end_fence_job(node);
        if !self.peer_alive(node) {
            self.fence_cancelled.insert(node.to_string());
        }
        self.emit(now, Event::FenceCancelled { node: node.to_string(), reason: "cancelled by an operator".into() });
        self.reply_fence_admin(node, Err(AdminError::FenceCancelled { reason: "cancelled by an operator".into() }));
        Ok(if self.fence_cancelled.contains(node) {
            format!(
                "fence of {node} cancelled; {node} is not fenced automatically again until it is heard alive, and its \
                 targets stay where they are until it is fenced or confirmed off (`failoverd confirm-fenced {node}`)"
            )
        } else {
            format!("fence of {node} cancelled")
        })
    }

    fn consider_fencing(&mut self, now: Time, victim: &str) {
        if self.fence_cancelled.contains(victim) {
            return;
        }
        let Some(reason) = self.fence_need(now, victim) else {
            self.fence_not_before.remove(victim);
            self.fence_blocked.remove(victim);
            return;
        };
        if !self.quorum.quorate || self.in_maintenance() || self.left || !self.fresh_quorum_against(now, victim) {
            return;
        }
        // Silence counts only while this node is quorate: a peer judged dead while this node was cut off may be
        // heard again moments after the heal that brought the quorum back (swarm seed 562120: the first peer
        // heard after a partition gave the quorum back, and the second, alive, was fenced 66 ms before its first
        // datagram arrived). No fence of a silent peer until dead_after has passed since the quorum returned.
        if reason == FenceReason::PeerDead && self.quorum_gained_at.is_some_and(|q| now < q + self.cfg.cluster.dead_after) {
            return;
        }
        let mut alive = self.alive_set();
        alive.remove(victim);
        let designated = quorum::designated_fencer(&self.cfg.nodes, &alive).map(|n| n.name.clone());
        if designated.as_deref() != Some(self.me.name.as_str()) {
            return;
        }
        // a peer whose timings, links, node list or fencing topology differ from ours: our view of it may be
        // wrong (the wrong outlet, too early), so no automatic fence, and with it no takeover of what it holds
        match self.fence_blocked_by_config(victim) {
            Some(why) => {
                self.fence_not_before.remove(victim);
                if self.fence_blocked.get(victim) != Some(&why) {
                    self.fence_blocked.insert(victim.to_string(), why.clone());
                    self.emit(now, Event::FenceBlocked { node: victim.to_string(), reason: why });
                }
                return;
            }
            None => {
                self.fence_blocked.remove(victim);
            }
        }
        let Some(victim_cfg) = self.cfg.node(victim).cloned() else { return };
        // this node's own disk heartbeat writes fail: it cannot tell the victim's crash from its own fault
        if self.own_disk_failing(now) {
            self.fence_not_before.remove(victim);
            let device = self.disk.as_ref().map(|d| d.device.display().to_string()).unwrap_or_default();
            if let Some(p) = self.disk.as_mut().map(|d| d.peers.entry(victim.to_string()).or_default()) {
                if !p.held_reported {
                    p.held_reported = true;
                    self.emit(now, Event::FenceHeldDiskFailing { node: victim.to_string(), device });
                }
            }
            return;
        }
        if let Some(p) = self.disk.as_mut().and_then(|d| d.peers.get_mut(victim)) {
            p.held_reported = false;
        }
        // with a disk heartbeat, a peer silent on every link is dead only once a round of this node's (its own
        // write ok) found its slot stopped; until then it may be alive on the disk
        if reason == FenceReason::PeerDead && self.disk.is_some() && !self.stopped_on_disk(now, victim) {
            self.fence_not_before.remove(victim);
            return;
        }
        if reason == FenceReason::PeerDead {
            // dead on every link and its slot stopped while this node's writes succeed: it crashed and cannot
            // be partitioned away, so there is no race to delay for
            let stopped = self.stopped_on_disk(now, victim);
            let delay = if stopped {
                Duration::ZERO
            } else {
                let race = quorum::race_delay(&self.me, &victim_cfg, self.quorum.two_node, self.cfg.cluster.fence_delay);
                // The victim's last heartbeat said it no longer heard this node: it judged this node dead first
                // (a one-way loss before the partition) and may be fencing it right now, its own delay running
                // since then. Give it fence_delay more, so the two fences do not cross and power both nodes off
                // (swarm seed 288214: the lower-priority node's delay ended the moment the other declared it
                // dead). The higher-priority node still goes first when both are in this case.
                let judged_first = self.quorum.two_node && self.does_not_hear_me(victim);
                if judged_first { race + self.cfg.cluster.fence_delay } else { race }
            };
            let not_before = match self.fence_not_before.get(victim) {
                Some(t) if stopped => (*t).min(now),
                Some(t) => *t,
                None => {
                    let t = now + delay;
                    self.fence_not_before.insert(victim.to_string(), t);
                    if delay > Duration::ZERO {
                        self.emit(now, Event::FenceDelayed { node: victim.to_string(), delay_ms: delay.as_millis() as u64 });
                    }
                    t
                }
            };
            if now < not_before {
                return;
            }
        }
        self.fence_not_before.remove(victim);
        self.start_fence_job(now, FenceJob::new(&victim_cfg, FenceAction::Off, reason, now));
    }

    /// The confirmations this node shares in its heartbeats: the ones it made itself (a fence device it ran,
    /// or an operator's `confirm-fenced` here), not ones it took from a peer, and a journaled one only once a
    /// fresh status read in this run found the node off.
    pub(crate) fn shared_confirmations(&self, now: Time) -> Vec<FenceConfirmation> {
        self.fenced
            .values()
            .filter(|r| r.from_peer.is_none() && (!r.restored || self.fenced.off_checked(&r.node)))
            .map(|r| FenceConfirmation {
                node: r.node.clone(),
                incarnation: r.incarnation,
                age_ms: now.since(r.at).as_millis() as u64,
                level: if r.by_operator { 0 } else { r.level.max(1) },
            })
            .collect()
    }

    /// Take a peer's fence confirmation as this node's own, when this node may need it and it is consistent.
    ///
    /// Only the designated fencer fences a silent node, but every node that may take over one of its targets
    /// needs the confirmation in its own `fenced` (`start_kind`): without this, a target whose `nodes` do not
    /// include the designated fencer stayed down for ever (simulations/fencer-not-candidate.toml). A
    /// confirmation is taken only if: this node is quorate and the sharing peer is alive, quorate and of the
    /// same configuration (so the same fence topology); the fenced node shares a target with this node, is
    /// silent in this node's view, was not heard here after the moment of the confirmation (allowing two
    /// heartbeat intervals for datagrams in flight), and was not heard here in a newer incarnation than the
    /// confirmed one. From then on the record is this node's: hearing the node again voids it exactly as it
    /// voids one of its own fences (`check_fence_lied`, `peer_restarted`).
    fn adopt_peer_confirmations(&mut self, now: Time) {
        // A node that wait_for_all holds (it restarted and never heard the victim) takes the record too, but
        // only to read the victim's power itself: it counts as seen once that read says off (`off_checked`),
        // and until then the node has no quorum and acts on nothing. Without this, a node restarted while
        // its peer was dying waited for ever for a node a quorate peer had fenced (swarm seed 97419).
        let waiting_for_all = self.cfg.cluster.wait_for_all && !self.all_seen && !self.wfa_overridden;
        if !(self.quorum.quorate || waiting_for_all) || self.faults.ignore_peer_confirmations {
            return;
        }
        let margin = self.cfg.cluster.heartbeat_interval * 2;
        let mut taken: Vec<(String, FencedRecord)> = Vec::new();
        for (peer, p) in &self.peers {
            let Some(hb) = p.last_heartbeat.as_ref() else { continue };
            if !p.alive() || !hb.quorate || hb.config_digest != self.facts.config_digest || hb.fenced.is_empty() {
                continue;
            }
            let Some(received) = p.last_heard() else { continue };
            for c in &hb.fenced {
                if c.node == self.me.name || c.node == *peer || self.fenced.contains_key(&c.node) || taken.iter().any(|(_, r)| r.node == c.node) {
                    continue;
                }
                let shares_a_target = self.cfg.targets.iter().any(|t| t.nodes.contains(&self.me.name) && t.nodes.contains(&c.node));
                let Some(v) = self.peers.get(&c.node) else { continue };
                if !(shares_a_target || waiting_for_all) || v.alive() {
                    continue;
                }
                let age = Duration::from_millis(c.age_ms);
                let confirmed_at = Time::from_micros(received.as_micros().saturating_sub(age.as_micros() as u64));
                if v.last_heard().is_some_and(|h| h > confirmed_at + margin) {
                    continue; // heard here after it was confirmed off: not consistent, not taken
                }
                // The confirmation names the newest incarnation of the victim its fencer had heard; this node
                // may know a newer one (heard while the fencer was cut off from the victim). Heard only before
                // the power was cut, that incarnation was running then and the fence stopped it too: the record
                // takes it (swarm seed 226958: refused, the target stayed down for good). Heard at or after the
                // confirmation (even inside the in-flight margin), it may have booted after the fence: not taken.
                let newer_here = match (v.incarnation, c.incarnation) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(here), Some(there)) => here > there,
                };
                if newer_here && v.last_heard().is_none_or(|h| h >= confirmed_at) {
                    continue;
                }
                let record = FencedRecord {
                    node: c.node.clone(),
                    at: confirmed_at,
                    incarnation: if newer_here { v.incarnation } else { c.incarnation },
                    by_operator: c.level == 0,
                    level: c.level,
                    from_peer: Some(peer.clone()),
                    restored: false,
                };
                taken.push((peer.clone(), record));
            }
        }
        for (peer, record) in taken {
            let node = record.node.clone();
            let level = usize::from(record.level);
            let devices = match level {
                0 => Vec::new(),
                l => self.cfg.node(&node).and_then(|n| n.fence_levels.get(l - 1)).cloned().unwrap_or_default(),
            };
            if waiting_for_all {
                self.recheck_power.insert(node.clone(), now);
            }
            self.fenced.adopted_from_peer(record);
            self.fence_operator_alerted.remove(&node);
            self.journal_dirty = true;
            self.emit(now, Event::FenceConfirmedByPeer { node, peer, level, devices });
        }
    }

    /// Quorum for a fence must rest on fresh evidence. Peers are declared dead one by one, milliseconds
    /// apart: an isolated node must not count a peer it has not yet declared dead — but has not heard for
    /// almost `dead_after` — as a vote to fence another. So only voters heard within `dead_after / 2` count,
    /// and a freshly heard voter that still sees the victim alive vetoes the fence for now (it will agree
    /// within `dead_after` if the victim is really gone).
    fn fresh_quorum_against(&self, now: Time, victim: &str) -> bool {
        let fresh_window = self.cfg.cluster.dead_after / 2;
        let mut fresh = std::collections::BTreeSet::from([self.me.name.clone()]);
        for (name, p) in &self.peers {
            if name == victim || !p.alive() || p.last_heard().is_none_or(|t| now.since(t) > fresh_window) {
                continue;
            }
            let sees_victim = p.last_heartbeat.as_ref().is_some_and(|hb| hb.peers.iter().any(|v| v.node == victim && v.alive));
            let victim_asked = self.peers.get(victim).and_then(|v| v.last_heartbeat.as_ref()).is_some_and(|hb| hb.fence_me);
            if sees_victim && !victim_asked {
                return false;
            }
            fresh.insert(name.clone());
        }
        let witness_granted = self.quorum.witness_vote && fresh.len() == self.alive_count();
        let m = quorum::Membership {
            nodes: &self.cfg.nodes,
            alive: &fresh,
            witness_configured: self.cfg.witness.is_some(),
            witness_granted,
            waiting_for_all: false,
        };
        quorum::compute(&m).quorate
    }

    fn emit_fence_started(&mut self, now: Time, job: &FenceJob) {
        if job.reason == FenceReason::Recheck {
            return; // a status read changes nothing: reported by FencePowerChecked
        }
        self.emit(
            now,
            Event::FenceStarted { node: job.victim.name.clone(), reason: job.reason.clone(), action: job.action, attempt: job.attempt },
        );
    }

    fn start_fence_job(&mut self, now: Time, mut job: FenceJob) {
        let victim = job.victim.name.clone();
        if self.faults.skip_fence && job.action == FenceAction::Off {
            // test-only: pretend the fence worked without touching any device
            self.record_fenced(now, &victim, false, 1);
            self.emit(now, Event::FenceConfirmed { node: victim, level: 0, devices: vec![], action: FenceAction::Off });
            return;
        }
        let progress = job.start_attempt(&self.cfg, now);
        self.emit_fence_started(now, &job);
        let incarnation = self.peers.get(&victim).and_then(|p| p.incarnation);
        self.fence_job_incarnation.insert(victim.clone(), incarnation);
        self.fence_jobs.insert(victim.clone(), job);
        self.apply_fence_progress(now, &victim, progress);
    }

    pub(crate) fn fence_command_done(&mut self, now: Time, victim: &str, result: &CommandResult) {
        let Some(mut job) = self.fence_jobs.remove(victim) else { return };
        let progress = job.on_result(&self.cfg, now, result);
        self.fence_jobs.insert(victim.to_string(), job);
        self.apply_fence_progress(now, victim, progress);
    }

    fn apply_fence_progress(&mut self, now: Time, victim: &str, progress: JobProgress) {
        let failures = self.fence_jobs.get_mut(victim).map(|j| std::mem::take(&mut j.new_level_failures)).unwrap_or_default();
        let level_failed = !failures.is_empty();
        for (level, error) in failures {
            self.emit(now, Event::FenceLevelFailed { node: victim.to_string(), level: level + 1, error });
        }
        // a level failed (the victim's power was not cut) and the next one would start: the checks of a retry
        // first (swarm seed 562120: a node heard alive again for 4 s, after a partition, was powered off by the
        // second level of a fence decided while it was silent)
        if let (true, JobProgress::Run { .. }, Some(job)) = (level_failed, &progress, self.fence_jobs.get(victim)) {
            if let Some(reason) = self.fence_no_longer_wanted(now, victim, job) {
                self.end_fence_job(victim);
                self.emit(now, Event::FenceCancelled { node: victim.to_string(), reason: reason.clone() });
                self.reply_fence_admin(victim, Err(AdminError::FenceCancelled { reason }));
                return;
            }
        }
        match progress {
            JobProgress::Run { command, device, level } => {
                let action = self.fence_jobs.get(victim).map_or(FenceAction::Off, |j| j.action);
                let purpose = Purpose::Fence { victim: victim.to_string(), device, level, action };
                self.run_command(command, purpose, Waiter::Fence { victim: victim.to_string() });
            }
            JobProgress::WaitUntil(t) => {
                self.fence_waits.insert(victim.to_string(), t);
            }
            JobProgress::Confirmed { level, devices, power } => self.fence_confirmed(now, victim, level, devices, power),
            JobProgress::NeedsOperator if self.fence_jobs.get(victim).is_some_and(|j| j.reason == FenceReason::Recheck) => {
                // manual fencing: no device can read the power; wait_for_all reports what the operator may do
                self.fence_jobs.remove(victim);
                self.power_rechecked(now, victim, None);
            }
            JobProgress::NeedsOperator => {
                if self.fence_operator_alerted.insert(victim.to_string()) {
                    self.emit(now, Event::FenceNeedsOperator { node: victim.to_string() });
                }
                self.reply_fence_admin(victim, Err(AdminError::ManualFencing { node: victim.to_string() }));
            }
            JobProgress::AllFailed { errors } => self.fence_all_failed(now, victim, errors),
        }
    }

    fn fence_confirmed(&mut self, now: Time, victim: &str, level: usize, devices: Vec<String>, power: PowerState) {
        let Some(job) = self.fence_jobs.remove(victim) else { return };
        self.fence_waits.remove(victim);
        match job.action {
            FenceAction::Off | FenceAction::Reboot => {
                self.record_fenced(now, victim, false, u8::try_from(level + 1).unwrap_or(u8::MAX));
                self.emit(now, Event::FenceConfirmed { node: victim.to_string(), level: level + 1, devices, action: job.action });
                self.reply_fence_admin(victim, Ok(format!("{victim} confirmed off by level {}", level + 1)));
            }
            FenceAction::On => {
                self.emit(now, Event::FenceConfirmed { node: victim.to_string(), level: level + 1, devices, action: job.action });
                self.reply_fence_admin(victim, Ok(format!("{victim} confirmed on by level {}", level + 1)));
            }
            FenceAction::Status if job.reason == FenceReason::Recheck => self.power_rechecked(now, victim, Some(power)),
            FenceAction::Status => {
                let power = serde_json::to_value(power).ok().and_then(|v| v.as_str().map(str::to_lowercase)).unwrap_or_else(|| format!("{power:?}").to_lowercase());
                self.emit(now, Event::FenceStatus { node: victim.to_string(), power: power.clone() });
                self.reply_fence_admin(victim, Ok(format!("{victim} power is {power} (level {})", level + 1)));
            }
        }
    }

    fn fence_all_failed(&mut self, now: Time, victim: &str, errors: Vec<String>) {
        let Some(job) = self.fence_jobs.get_mut(victim) else { return };
        if job.reason == FenceReason::Recheck {
            // no device answered: tell wait_for_all's report, and read again after a while
            self.fence_jobs.remove(victim);
            self.power_rechecked(now, victim, None);
            self.recheck_power.insert(victim.to_string(), now + self.cfg.cluster.fence_retry_max);
            return;
        }
        if job.reason == FenceReason::Operator {
            self.fence_jobs.remove(victim);
            self.reply_fence_admin(victim, Err(AdminError::FenceFailed { errors }));
            return;
        }
        let c = &self.cfg.cluster;
        let shift = job.attempt.saturating_sub(1).min(16);
        let backoff = (c.fence_retry_initial * (1u32 << shift)).min(c.fence_retry_max);
        job.waiting_retry = true;
        let attempt = job.attempt;
        self.fence_waits.insert(victim.to_string(), now + backoff);
        self.emit(now, Event::FenceFailed { node: victim.to_string(), attempt, retry_in_ms: backoff.as_millis() as u64, errors });
    }

    fn reply_fence_admin(&mut self, victim: &str, result: Result<String, AdminError>) {
        if let Some(id) = self.fence_admin_reply.remove(victim) {
            self.outputs.push_back(Output::AdminReply { id, result });
        }
    }

    /// `level`: the 1-based fence level whose devices confirmed `victim` off (0 for an operator).
    pub(crate) fn record_fenced(&mut self, now: Time, victim: &str, by_operator: bool, level: u8) {
        let incarnation = self.peers.get(victim).and_then(|p| p.incarnation);
        let record = FencedRecord { node: victim.to_string(), at: now, incarnation, by_operator, level, from_peer: None, restored: false };
        self.fenced.confirmed_here(record);
        self.fence_operator_alerted.remove(victim);
        self.journal_dirty = true;
    }

    pub(crate) fn admin_confirm_fenced(&mut self, now: Time, node: &str) -> Result<String, AdminError> {
        if node == self.me.name {
            return Err(AdminError::OnItself { what: "a node cannot confirm itself fenced".into() });
        }
        if !self.peers.contains_key(node) {
            return Err(AdminError::UnknownNode { node: node.into() });
        }
        if self.peer_alive(node) {
            return Err(AdminError::PeerAlive { node: node.into() });
        }
        self.end_fence_job(node);
        self.fence_cancelled.remove(node);
        self.record_fenced(now, node, true, 0);
        self.emit(now, Event::FenceConfirmedByOperator { node: node.to_string() });
        Ok(format!("{node} recorded as powered off by the operator; its targets may now be taken over"))
    }

    pub(crate) fn admin_fence(&mut self, now: Time, node: &str, action: FenceAction) -> Result<(), AdminError> {
        let Some(victim) = self.cfg.node(node).cloned() else { return Err(AdminError::UnknownNode { node: node.into() }) };
        if node == self.me.name {
            return Err(AdminError::OnItself { what: "refusing to fence this node from itself; run the command on a peer".into() });
        }
        if self.fence_jobs.contains_key(node) {
            return Err(AdminError::Refused {
                reason: format!(
                    "a fence of {node} is already in progress (`failoverd status` shows it; `failoverd fence --cancel {node}` ends one that waits)"
                ),
            });
        }
        self.fence_cancelled.remove(node);
        self.start_fence_job(now, FenceJob::new(&victim, action, FenceReason::Operator, now));
        Ok(())
    }
}
