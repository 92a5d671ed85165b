//! Membership: heartbeats in, liveness and quorum out, plus config agreement and the witness vote.

use std::collections::BTreeMap;

use crate::protocol::{Body, ConfigSummary, Envelope, Heartbeat, WitnessQuery, WitnessReply, HEADER_LEN, MAC_LEN, MAX_DATAGRAM, MAX_SUMMARY_PARTS};
use crate::time::Time;

use super::events::KeyDiff;

use super::detector::Change;
use super::quorum::{self, Membership};
use super::{Engine, Event};

/// How long a node waits for a peer's [`ConfigSummary`] before it reports a digest mismatch without the keys.
pub(crate) fn summary_grace(cfg: &crate::config::Config) -> std::time::Duration {
    cfg.cluster.dead_after
}

/// How often a node sends its summary again while some peer's digest differs (a part may be lost, a peer may
/// restart).
pub(crate) const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A peer whose configuration digest differs from ours, as known from its last heartbeats. It stays known
/// after the peer goes silent: that is when it matters.
#[derive(Clone, Debug)]
pub(crate) struct Mismatch {
    /// The peer's digest this record is about.
    pub digest: [u8; 16],
    /// Targets whose definition digests differ.
    pub targets: Vec<String>,
    /// Every differing key with both values, once the peer's summary arrived.
    pub keys: Option<Vec<KeyDiff>>,
    pub since: Time,
    /// What the last `config_mismatch` said (targets, keys known, keys).
    pub reported: Option<(Vec<String>, bool, Vec<KeyDiff>)>,
}

impl Mismatch {
    /// Automatic fencing of the peer (and so the takeover of what it holds) is blocked unless the summary shows
    /// that only target definitions differ: timings, links, the node list or the fencing topology may make
    /// this node fence the wrong host, or at the wrong time. Unexplained differences block too.
    pub(crate) fn blocks_fencing(&self) -> bool {
        match &self.keys {
            None => true,
            Some(keys) => keys.is_empty() || keys.iter().any(|k| k.target().is_none()),
        }
    }

    /// The differences in words, for alerts and status: `cluster.dead_after: 3s here, 5s on mds2; ...`.
    pub(crate) fn describe(&self, node: &str) -> String {
        match &self.keys {
            None => "which settings differ is not known yet (no summary from the peer yet): compare the files with \
                     `failoverd check-config A B`"
                .to_string(),
            Some(keys) if keys.is_empty() => "a setting not shown in clear differs (an agent's secret option, or a key \
                 of another failoverd version): compare the files with `failoverd check-config A B`"
                .to_string(),
            Some(keys) => keys.iter().map(|k| k.describe(node)).collect::<Vec<_>>().join("; "),
        }
    }
}

/// A summary being received from one peer.
#[derive(Clone, Debug, Default)]
pub(crate) struct PartialSummary {
    pub digest: [u8; 16],
    pub parts: Vec<Option<Vec<(String, String)>>>,
}

impl PartialSummary {
    fn complete(&self) -> Option<BTreeMap<String, String>> {
        if self.parts.iter().any(Option::is_none) {
            return None;
        }
        Some(self.parts.iter().flatten().flatten().cloned().collect())
    }
}

/// Split this node's agreement values into [`ConfigSummary`] parts that each fit one datagram of this
/// cluster (the longest sender name, the largest incarnation and sequence number). A value too long for one
/// datagram is cut (with `…`). `Err` when more than [`MAX_SUMMARY_PARTS`] would be needed.
pub(crate) fn summary_parts(cfg: &crate::config::Config, digest: [u8; 16]) -> Result<Vec<ConfigSummary>, String> {
    summary_parts_of(cfg, digest, &cfg.agreement_values())
}

/// [`summary_parts`] of agreement values already computed (`cfg.agreement_values()`).
pub(crate) fn summary_parts_of(cfg: &crate::config::Config, digest: [u8; 16], values: &BTreeMap<String, String>) -> Result<Vec<ConfigSummary>, String> {
    let longest = cfg.nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
    // envelope: two strings with 1-2 byte lengths, two 10-byte varints, the variant, digest, part, parts, count
    let overhead = HEADER_LEN + MAC_LEN + cfg.cluster.name.len() + longest + 4 + 20 + 1 + 16 + 2 + 2;
    let budget = MAX_DATAGRAM - overhead - 8;
    let mut parts: Vec<Vec<(String, String)>> = vec![Vec::new()];
    let mut used = 0;
    for (key, value) in values {
        let (key, mut value) = (key.clone(), value.clone());
        let size = |k: &str, v: &str| k.len() + v.len() + 4;
        if size(&key, &value) > budget {
            let keep = budget.saturating_sub(key.len() + 4 + 3);
            let mut cut = keep.min(value.len());
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value = format!("{}…", &value[..cut]);
        }
        let n = size(&key, &value);
        if used + n > budget {
            parts.push(Vec::new());
            used = 0;
        }
        used += n;
        parts.last_mut().expect("one part at least").push((key, value));
    }
    if parts.len() > MAX_SUMMARY_PARTS as usize {
        return Err(format!(
            "the cluster-wide settings of this configuration would take {} datagrams to summarize (at most {MAX_SUMMARY_PARTS}); \
             use shorter names or fewer devices and targets per cluster",
            parts.len()
        ));
    }
    let count = parts.len() as u8;
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, entries)| ConfigSummary { digest, part: i as u8, parts: count, entries })
        .collect())
}

impl Engine {
    pub(crate) fn on_datagram(&mut self, now: Time, link: usize, env: Envelope) {
        if env.cluster != self.cfg.cluster.name {
            return;
        }
        match env.body {
            Body::Heartbeat(hb) => self.on_heartbeat(now, link, &env.sender, env.incarnation, env.seq, hb),
            Body::WitnessReply(r) => self.on_witness_reply(now, r),
            Body::ConfigSummary(c) => self.on_config_summary(now, &env.sender, c),
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
                // (the common case, the same standby set as ours, without building a set on every heartbeat)
                if hb.standby_epoch > self.standby.0 || (hb.standby_epoch == self.standby.0 && !hb.standby.iter().eq(self.standby.1.iter())) {
                    self.set_standby(now, hb.standby_epoch, hb.standby.iter().cloned().collect());
                }
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
            self.fenced.void(sender);
            self.journal_dirty = true;
        }
        if lied {
            self.emit(now, Event::FenceLied { node: sender.to_string() });
        }
    }

    /// A peer restarted: it holds nothing it has not rediscovered, and a fence record of it is spent.
    fn peer_restarted(&mut self, _now: Time, node: &str, _incarnation: u64) {
        if self.fenced.void(node) {
            self.journal_dirty = true;
        }
    }

    fn check_config_agreement(&mut self, now: Time, sender: &str, hb: &Heartbeat) {
        if hb.config_digest == self.facts.config_digest {
            if let Some(m) = self.mismatches.remove(sender) {
                if m.reported.is_some() {
                    self.emit(now, Event::ConfigAgreed { node: sender.to_string() });
                }
            }
            return;
        }
        let targets: Vec<String> = self
            .cfg
            .targets
            .iter()
            .filter(|t| {
                let mine = self.facts.target_digests.iter().find(|(n, _)| n == &t.name).map(|(_, d)| *d);
                let theirs = hb.target_digests.iter().find(|(n, _)| n == &t.name).map(|(_, d)| *d);
                mine != theirs
            })
            .map(|t| t.name.clone())
            .collect();
        match self.mismatches.get_mut(sender) {
            Some(m) if m.digest == hb.config_digest => m.targets = targets,
            _ => {
                let keys = self.summary_keys(sender, hb.config_digest);
                let m = Mismatch { digest: hb.config_digest, targets, keys, since: now, reported: None };
                self.mismatches.insert(sender.to_string(), m);
                // tell the peers what this node runs with, so they can name the differences too
                self.next_summary = Some(self.next_summary.map_or(now, |t| t.min(now)));
            }
        }
    }

    /// A part of a peer's summary. Parts are gathered per digest; once all are in and the digest is the one
    /// the peer's heartbeats carry, the differences are known.
    fn on_config_summary(&mut self, now: Time, sender: &str, c: ConfigSummary) {
        if !self.peers.contains_key(sender) {
            return;
        }
        let partial = self.summaries_in.entry(sender.to_string()).or_default();
        if partial.digest != c.digest || partial.parts.len() != c.parts as usize {
            *partial = PartialSummary { digest: c.digest, parts: vec![None; c.parts as usize] };
        }
        partial.parts[c.part as usize] = Some(c.entries);
        let digest = c.digest;
        if self.mismatches.get(sender).is_some_and(|m| m.digest == digest && m.keys.is_none()) {
            if let Some(keys) = self.summary_keys(sender, digest) {
                if let Some(m) = self.mismatches.get_mut(sender) {
                    m.keys = Some(keys);
                }
                self.report_mismatches(now);
            }
        }
    }

    /// The differences between this node's settings and `sender`'s complete summary of `digest`, if received.
    fn summary_keys(&self, sender: &str, digest: [u8; 16]) -> Option<Vec<KeyDiff>> {
        let partial = self.summaries_in.get(sender).filter(|p| p.digest == digest)?;
        let theirs = partial.complete()?;
        let diffs = crate::config::diff_settings(&[&self.facts.agreement_values, &theirs]);
        Some(
            diffs
                .into_iter()
                .map(|d| {
                    let mut values = d.values.into_iter();
                    KeyDiff { key: d.key, here: values.next().flatten(), there: values.next().flatten() }
                })
                .collect(),
        )
    }

    /// Raise `config_mismatch` once the differences are known (or the peer's summary is overdue), and again
    /// whenever what differs changes.
    pub(crate) fn report_mismatches(&mut self, now: Time) {
        let grace = summary_grace(&self.cfg);
        let due: Vec<(String, Event)> = self
            .mismatches
            .iter()
            .filter(|(_, m)| m.keys.is_some() || now >= m.since + grace)
            .filter_map(|(node, m)| {
                let content = (m.targets.clone(), m.keys.is_some(), m.keys.clone().unwrap_or_default());
                (m.reported.as_ref() != Some(&content)).then(|| {
                    let ev = Event::ConfigMismatch {
                        node: node.clone(),
                        targets: m.targets.clone(),
                        keys: content.2.clone(),
                        keys_known: content.1,
                        blocks_fencing: m.blocks_fencing(),
                    };
                    (node.clone(), ev)
                })
            })
            .collect();
        for (node, ev) in due {
            if let (Some(m), Event::ConfigMismatch { targets, keys, keys_known, .. }) = (self.mismatches.get_mut(&node), &ev) {
                m.reported = Some((targets.clone(), *keys_known, keys.clone()));
            }
            self.emit(now, ev);
        }
    }

    /// While some peer's digest differs: send this node's summary on every link now and then.
    pub(crate) fn send_summaries(&mut self, now: Time) {
        let Some(at) = self.next_summary else { return };
        if now < at {
            return;
        }
        if self.mismatches.is_empty() || self.left {
            self.next_summary = None;
            return;
        }
        self.next_summary = Some(now + SUMMARY_EVERY);
        for link in 0..self.cfg.link_count() {
            for part in self.facts.summary_parts.clone() {
                let env = self.next_envelope(Body::ConfigSummary(part));
                self.outputs.push_back(super::Output::Send { link, envelope: env });
            }
        }
    }

    /// True when some peer's definition of `target` differs from ours: no automatic takeover of it.
    /// `peer`'s latest heartbeat says it does not hear this node (it holds this node dead, or fenced).
    /// `peer`'s latest heartbeat names this run of this node (its incarnation) as alive: the peer heard this
    /// daemon since it started. A heartbeat captured before this node restarted and replayed to it cannot
    /// (swarm seed 404748: a freshly restarted node took replayed heartbeats of a peer for a live peer that
    /// held nothing, and imported a pool that peer's orphaned forced import was about to land).
    pub(crate) fn heard_this_run(&self, peer: &str) -> bool {
        let me = self.me.name.as_str();
        self.last_heartbeat(peer).is_some_and(|hb| hb.peers.iter().any(|v| v.node == me && v.alive && v.incarnation == self.incarnation))
    }

    pub(crate) fn does_not_hear_me(&self, peer: &str) -> bool {
        let me = self.me.name.as_str();
        self.last_heartbeat(peer).is_some_and(|hb| hb.peers.iter().any(|v| v.node == me && !v.alive))
    }

    pub(crate) fn target_disputed(&self, target: &str) -> bool {
        self.mismatches.values().any(|m| {
            m.targets.iter().any(|t| t == target) || m.keys.iter().flatten().any(|k| k.target() == Some(target))
        })
    }

    /// Why `victim` must not be fenced automatically, if its configuration differs from ours in a way that
    /// matters for fencing (see [`Mismatch::blocks_fencing`]).
    pub(crate) fn fence_blocked_by_config(&self, victim: &str) -> Option<String> {
        let m = self.mismatches.get(victim).filter(|m| m.blocks_fencing())?;
        Some(format!("its configuration differs from this node's: {}", m.describe(victim)))
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
        self.witness_heard = Some(now);
        if std::mem::take(&mut self.witness_lost) {
            let address = self.cfg.witness.as_ref().map(|w| w.address.to_string()).unwrap_or_default();
            self.emit(now, Event::WitnessBack { address });
        }
        // a grant is for the view the query described: once this node's view changes, it needs a new one
        self.witness_grant = r.granted.then(|| (now + self.cfg.cluster.dead_after, sees));
    }

    /// Report a witness silent for `dead_after` ([`Event::WitnessLost`]), once until it answers again.
    fn check_witness(&mut self, now: Time) {
        let Some(w) = self.cfg.witness.as_ref() else { return };
        if self.witness_lost {
            return;
        }
        let silent = now.since(self.witness_heard.unwrap_or(self.started_at));
        if silent >= self.cfg.cluster.dead_after {
            self.witness_lost = true;
            let address = w.address.to_string();
            self.emit(now, Event::WitnessLost { address, silent_ms: silent.as_millis() as u64 });
        }
    }

    fn witness_granted(&self, now: Time) -> bool {
        let Some((until, sees)) = self.witness_grant.as_ref() else { return false };
        // the view the grant was for equals this node's alive set (both sorted, without duplicates); compared
        // without building the set: this runs on every step
        now < *until
            && sees.len() == self.alive_count()
            && sees.windows(2).all(|w| w[0] < w[1])
            && sees.iter().all(|n| self.peer_alive(n))
    }

    /// Re-evaluate liveness of every peer, wait_for_all and quorum.
    pub(crate) fn evaluate_membership(&mut self, now: Time) {
        let dead_after = self.cfg.cluster.dead_after;
        // (evaluating one peer changes no other, so every peer is evaluated first and its events emitted after)
        let mut changed = Vec::new();
        for (name, p) in self.peers.iter_mut() {
            let changes = p.evaluate(now, dead_after);
            if !changes.is_empty() {
                changed.push((name.clone(), changes));
            }
        }
        for (name, changes) in changed {
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
            .filter(|(n, p)| !p.alive() && !self.fenced.off_checked(n))
            .map(|(n, _)| n.clone())
            .collect();
        if !self.all_seen && missing.is_empty() {
            self.all_seen = true;
            self.emit(now, Event::AllNodesSeen);
        }
        self.report_wait_for_all(now, &missing);
        self.check_witness(now);
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
            .map(|n| match (self.fenced.contains_key(n), self.fenced.off_checked(n)) {
                (true, false) => format!("{n} was fenced before this node restarted, but its power could not be read as off now"),
                _ => format!("{n} has not been heard since this node started"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let command = "failoverd override-wait-for-all".to_string();
        self.emit(now, Event::WaitForAllStuck { missing: missing.to_vec(), reason, command });
    }

    fn update_quorum(&mut self, now: Time) {
        let witness_granted = self.witness_granted(now);
        let waiting_for_all = self.cfg.cluster.wait_for_all && !self.all_seen && !self.wfa_overridden;
        // quorum is a pure function of these inputs (the node list and the witness setting never change in one
        // engine): when they are what they were, so is the quorum, and nothing is recomputed (every step runs this)
        let inputs = self.quorum_inputs(witness_granted, waiting_for_all);
        if inputs.is_some() && inputs == self.quorum_inputs {
            return;
        }
        self.quorum_inputs = inputs;
        let alive = self.alive_set();
        let m = Membership {
            nodes: &self.cfg.nodes,
            alive: &alive,
            witness_configured: self.cfg.witness.is_some(),
            witness_granted,
            waiting_for_all,
        };
        let q = quorum::compute(&m);
        if q.quorate != self.quorum.quorate {
            if q.quorate {
                self.quorum_gained_at = Some(now);
            }
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

    /// The inputs of [`quorum::compute`] that change, as one word (alive node i is bit i; clusters of more than 62
    /// nodes get `None`, and are recomputed every time).
    fn quorum_inputs(&self, witness_granted: bool, waiting_for_all: bool) -> Option<u64> {
        if self.cfg.nodes.len() > 62 {
            return None;
        }
        let alive = self.cfg.nodes.iter().enumerate().filter(|(_, n)| self.peer_alive(&n.name)).fold(0u64, |m, (i, _)| m | (1 << i));
        Some(alive | u64::from(witness_granted) << 62 | u64::from(waiting_for_all) << 63)
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
