//! Membership: heartbeats in, liveness and quorum out, plus config agreement and the witness vote.

use crate::protocol::{Body, Envelope, Heartbeat, WitnessQuery, WitnessReply};
use crate::time::Time;

use super::detector::Change;
use super::quorum::{self, Membership};
use super::{Engine, Event};

/// What `status` lists for a peer whose configuration differs from ours in a cluster-wide setting while every
/// target's definition agrees.
pub(crate) const CLUSTER_WIDE_MISMATCH: &str =
    "cluster-wide settings (timings, links, nodes or fencing): compare the nodes' files with `failoverd check-config FILE...`";

impl Engine {
    pub(crate) fn on_datagram(&mut self, now: Time, link: usize, env: Envelope) {
        if env.cluster != self.cfg.cluster.name {
            return;
        }
        match env.body {
            Body::Heartbeat(hb) => self.on_heartbeat(now, link, &env.sender, env.incarnation, env.seq, hb),
            Body::WitnessReply(r) => self.on_witness_reply(now, r),
            Body::WitnessQuery(_) => {}
        }
    }

    fn on_heartbeat(&mut self, now: Time, link: usize, sender: &str, incarnation: u64, seq: u64, hb: Heartbeat) {
        let Some(peer) = self.peers.get_mut(sender) else { return };
        match peer.on_heartbeat(now, link, incarnation, seq, &hb) {
            Ok(changes) => {
                for c in changes {
                    if let Change::PeerRestarted { new, .. } = c {
                        self.emit(now, Event::PeerRestarted { node: sender.to_string(), incarnation: new });
                        self.peer_restarted(now, sender, new);
                    }
                }
                self.check_fence_lied(now, sender, incarnation);
                self.set_maintenance(now, hb.maintenance_epoch, hb.maintenance);
                self.set_standby(now, hb.standby_epoch, hb.standby.iter().cloned().collect());
                self.check_config_agreement(now, sender, &hb);
            }
            Err(super::Rejected::SecondIncarnation { current, other, first }) => {
                // two daemons claim this node (an operator's slip, or a restart after a stray one): both are
                // signs of life, nobody is convicted or fenced over it; an operator must stop one of them
                if first {
                    self.emit(now, Event::NodeConflict { node: sender.to_string(), incarnations: vec![current, other] });
                }
            }
            Err(why) => {
                // replays are expected under attack or on a flapping link: report, never act on them
                self.emit(now, Event::HeartbeatRejected { node: sender.to_string(), link, reason: why.reason() });
            }
        }
    }

    /// A node we confirmed off is heard again. In a newer incarnation than when it was fenced (or when we
    /// never heard it before the fence), it rebooted: the fence record is spent. In the same incarnation, the
    /// fence did not cut its power: the device lied.
    fn check_fence_lied(&mut self, now: Time, sender: &str, incarnation: u64) {
        let Some(r) = self.fenced.get(sender) else { return };
        // a datagram sent just before the power cut may still be in flight: allow two intervals
        let margin = self.cfg.cluster.heartbeat_interval * 2;
        let rebooted = r.incarnation.is_none_or(|i| incarnation > i);
        let lied = !rebooted && !r.by_operator && now > r.at + margin;
        if rebooted || lied {
            self.fenced.remove(sender);
            self.off_checked.remove(sender);
            self.journal_dirty = true;
        }
        if lied {
            self.emit(now, Event::FenceLied { node: sender.to_string() });
        }
    }

    /// A peer restarted: it holds nothing it has not rediscovered, and a fence record of it is spent.
    fn peer_restarted(&mut self, _now: Time, node: &str, _incarnation: u64) {
        if self.fenced.remove(node).is_some() {
            self.journal_dirty = true;
        }
        self.off_checked.remove(node);
    }

    fn check_config_agreement(&mut self, now: Time, sender: &str, hb: &Heartbeat) {
        let differing: Vec<String> = if hb.config_digest == self.config_digest {
            Vec::new()
        } else {
            self.cfg
                .targets
                .iter()
                .filter(|t| {
                    let mine = self.target_digests.iter().find(|(n, _)| n == &t.name).map(|(_, d)| *d);
                    let theirs = hb.target_digests.iter().find(|(n, _)| n == &t.name).map(|(_, d)| *d);
                    mine != theirs
                })
                .map(|t| t.name.clone())
                .collect()
        };
        let mismatch = hb.config_digest != self.config_digest;
        // every target agrees, so a cluster-wide setting differs (timings, links, nodes, fencing): say so, so
        // that status and metrics show it (this entry names no target, so it blocks no takeover by itself)
        let differing = if mismatch && differing.is_empty() { vec![CLUSTER_WIDE_MISMATCH.to_string()] } else { differing };
        let known = self.mismatches.get(sender);
        if mismatch && known != Some(&differing) {
            self.mismatches.insert(sender.to_string(), differing.clone());
            self.emit(now, Event::ConfigMismatch { node: sender.to_string(), targets: differing });
        } else if !mismatch && known.is_some() {
            self.mismatches.remove(sender);
            self.emit(now, Event::ConfigAgreed { node: sender.to_string() });
        }
    }

    /// True when some peer's definition of `target` differs from ours: no automatic takeover of it.
    pub(crate) fn target_disputed(&self, target: &str) -> bool {
        self.mismatches.values().any(|ts| ts.iter().any(|t| t == target))
    }

    pub(crate) fn witness_query(&self) -> WitnessQuery {
        WitnessQuery { sees: self.alive_set().into_iter().collect(), cluster_size: self.cfg.nodes.len() as u8 }
    }

    /// Remember what a query said, so its reply is only trusted for that same view.
    pub(crate) fn witness_asked(&mut self, seq: u64, q: &WitnessQuery) {
        self.witness_queries.push_back((seq, q.sees.clone()));
        while self.witness_queries.len() > 16 {
            self.witness_queries.pop_front();
        }
    }

    fn on_witness_reply(&mut self, now: Time, r: WitnessReply) {
        if r.node != self.me.name {
            return;
        }
        let Some((_, sees)) = self.witness_queries.iter().find(|(s, _)| *s == r.query_seq).cloned() else { return };
        // a grant is for the view the query described: once this node's view changes, it needs a new one
        self.witness_grant = r.granted.then(|| (now + self.cfg.cluster.dead_after, sees));
    }

    fn witness_granted(&self, now: Time) -> bool {
        let view: Vec<String> = self.alive_set().into_iter().collect();
        self.witness_grant.as_ref().is_some_and(|(until, sees)| now < *until && *sees == view)
    }

    /// Re-evaluate liveness of every peer, wait_for_all and quorum.
    pub(crate) fn evaluate_membership(&mut self, now: Time) {
        let dead_after = self.cfg.cluster.dead_after;
        let names: Vec<String> = self.peers.keys().cloned().collect();
        for name in names {
            let changes = self.peers.get_mut(&name).map(|p| p.evaluate(now, dead_after)).unwrap_or_default();
            for c in changes {
                let ev = match c {
                    Change::PeerAlive => Event::PeerAlive { node: name.clone() },
                    Change::PeerDead if self.peer_left(&name) => Event::PeerLeft { node: name.clone() },
                    Change::PeerDead => {
                        let silent = self.peers[&name].last_heard().map_or(0, |t| now.since(t).as_millis() as u64);
                        Event::PeerDead { node: name.clone(), silent_ms: silent }
                    }
                    Change::ConflictEnded { incarnation } => Event::NodeConflictEnded { node: name.clone(), incarnation },
                    Change::LinkUp(l) => Event::LinkUp { node: name.clone(), link: l },
                    Change::LinkDown(l) => Event::LinkDown { node: name.clone(), link: l },
                    Change::PeerRestarted { new, .. } => Event::PeerRestarted { node: name.clone(), incarnation: new },
                };
                self.emit(now, ev);
            }
        }
        // a node confirmed off in an earlier run, and found off again by a status read in this one, is
        // accounted for: it cannot be partitioned away and fence us (what wait_for_all guards against)
        let missing: Vec<String> = self
            .peers
            .iter()
            .filter(|(n, p)| !p.alive() && (!self.off_checked.contains(*n) || !self.fenced.contains_key(*n)))
            .map(|(n, _)| n.clone())
            .collect();
        if !self.all_seen && missing.is_empty() {
            self.all_seen = true;
            self.emit(now, Event::AllNodesSeen);
        }
        self.report_wait_for_all(now, &missing);
        self.update_quorum(now);
    }

    /// Still waiting for all nodes once the start-up grace (`dead_after`) is over, and no status read is under
    /// way that could settle it: say who is missing and what the operator may run, once per set of missing nodes.
    fn report_wait_for_all(&mut self, now: Time, missing: &[String]) {
        let waiting = self.cfg.cluster.wait_for_all && !self.all_seen && !self.wfa_overridden;
        if !waiting || missing.is_empty() || now.since(self.started_at) < self.cfg.cluster.dead_after * 2 {
            return;
        }
        let checking = missing.iter().any(|n| self.fence_jobs.contains_key(n) || self.recheck_power.get(n).is_some_and(|t| *t <= now));
        if checking || self.wfa_stuck_reported.as_deref() == Some(missing) {
            return;
        }
        self.wfa_stuck_reported = Some(missing.to_vec());
        let reason = missing
            .iter()
            .map(|n| match (self.fenced.contains_key(n), self.off_checked.contains(n)) {
                (true, false) => format!("{n} was fenced before this node restarted, but its power could not be read as off now"),
                _ => format!("{n} has not been heard since this node started"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let command = "failoverd override-wait-for-all".to_string();
        self.emit(now, Event::WaitForAllStuck { missing: missing.to_vec(), reason, command });
    }

    fn update_quorum(&mut self, now: Time) {
        let alive = self.alive_set();
        let witness_granted = self.witness_granted(now);
        let m = Membership {
            nodes: &self.cfg.nodes,
            alive: &alive,
            witness_configured: self.cfg.witness.is_some(),
            witness_granted,
            waiting_for_all: self.cfg.cluster.wait_for_all && !self.all_seen && !self.wfa_overridden,
        };
        let q = quorum::compute(&m);
        if q.quorate != self.quorum.quorate {
            let ev = if q.quorate {
                Event::QuorumGained { votes: q.votes, total: q.total }
            } else {
                Event::QuorumLost { reason: q.reason.clone() }
            };
            // the very first evaluation at start is not a loss
            if q.quorate || self.last_now.is_some() {
                self.emit(now, ev);
            }
        }
        self.quorum = q;
    }

    /// `node`'s last heartbeat said it was leaving (a graceful stop): its silence is a departure, not a death.
    pub(crate) fn peer_left(&self, node: &str) -> bool {
        self.peers.get(node).is_some_and(|p| !p.alive() && p.last_heartbeat.as_ref().is_some_and(|hb| hb.leaving))
    }

    /// The latest heartbeat of `node`, if any.
    pub(crate) fn last_heartbeat(&self, node: &str) -> Option<&Heartbeat> {
        self.peers.get(node).and_then(|p| p.last_heartbeat.as_ref())
    }

    pub(crate) fn peer_alive(&self, node: &str) -> bool {
        node == self.me.name || self.peers.get(node).is_some_and(|p| p.alive())
    }
}
