//! Failure detection, per peer and per link.
//!
//! A peer is alive while *some* link delivered a valid heartbeat within `dead_after`; a link of a peer is down
//! when that link alone has been silent for `dead_after` (a warning, never a failover). Replay protection:
//! on each link, a datagram is accepted only if its (incarnation, seq) is newer than the last one accepted on
//! that link from that sender, so a captured packet replayed later never makes a dead node look alive.

use std::time::Duration;

use crate::protocol::Heartbeat;
use crate::time::Time;

/// Why a heartbeat was not accepted by the detector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// (incarnation, seq) not newer than what this link already accepted from that sender.
    Replayed { incarnation: u64, seq: u64 },
    /// The heartbeat names another link than the one it arrived on.
    WrongLink { claimed: u8, arrived: usize },
    /// The link index is not configured.
    UnknownLink(usize),
    /// A live process of this node runs with another incarnation than the current one (`other`, not a replay:
    /// its seq is newer than anything heard from it): two daemons claim the node. The datagram counts as a
    /// sign of life only; its content is not used. `first` is true when the conflict starts.
    SecondIncarnation { current: u64, other: u64, first: bool },
}

impl Rejected {
    /// A stable snake_case reason for events and logs.
    pub fn reason(&self) -> String {
        match self {
            Rejected::Replayed { incarnation, seq } => format!("replayed (incarnation {incarnation}, seq {seq} not newer than the last accepted)"),
            Rejected::WrongLink { claimed, arrived } => format!("wrong_link (claims link {claimed}, arrived on link {arrived})"),
            Rejected::UnknownLink(l) => format!("unknown_link ({l})"),
            Rejected::SecondIncarnation { current, other, .. } => {
                format!("second_incarnation (incarnation {other} heard while {current} is current)")
            }
        }
    }
}

/// What changed when the detector looked at the clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    PeerAlive,
    PeerDead,
    LinkUp(usize),
    LinkDown(usize),
    /// The peer is heard with a higher incarnation: it restarted.
    PeerRestarted { old: u64, new: u64 },
    /// Two incarnations are no longer heard at once: `incarnation` is the one that goes on (when it is not the
    /// one that was current, the other went silent and the peer's replay window now follows this one).
    ConflictEnded { incarnation: u64 },
}

/// One link of one peer.
#[derive(Clone, Debug, Default)]
struct LinkState {
    last_heard: Option<Time>,
    accepted: Option<(u64, u64)>,
    up: bool,
}

/// Everything the detector knows about one peer.
#[derive(Clone, Debug)]
pub struct PeerLiveness {
    links: Vec<LinkState>,
    alive: bool,
    /// Seen alive at least once since this process started.
    pub ever_seen: bool,
    /// Highest incarnation accepted from this peer.
    pub incarnation: Option<u64>,
    /// Latest accepted heartbeat content (from any link).
    pub last_heartbeat: Option<Heartbeat>,
    /// Latest (incarnation, seq) whose content is in `last_heartbeat`.
    latest: Option<(u64, u64)>,
    /// After a local stall, nobody is convicted before this time (Cassandra's guard).
    grace_until: Option<Time>,
    /// When the peer was last declared dead (for detection-time measurements).
    pub died_at: Option<Time>,
    /// Incarnations accepted before the current one (at most [`OLDER_KEPT`]), with the highest seq heard.
    older: std::collections::BTreeMap<u64, Vec<u64>>,
    /// Another incarnation heard live while the current one also is: (incarnation, last heard).
    conflict: Option<(u64, Time, u32)>,
    /// An incarnation dropped after a conflict (a stray daemon that went silent), with its highest seq:
    /// its captured datagrams stay replays.
    retired: Option<(u64, u64)>,
}

/// How many earlier incarnations of a peer are remembered for conflict detection.
const OLDER_KEPT: usize = 8;
/// The how-manieth datagram of a second live incarnation raises the conflict.
const CONFLICT_AFTER: u32 = 3;

impl PeerLiveness {
    pub fn new(links: usize) -> PeerLiveness {
        PeerLiveness {
            links: vec![LinkState::default(); links],
            alive: false,
            ever_seen: false,
            incarnation: None,
            last_heartbeat: None,
            latest: None,
            grace_until: None,
            died_at: None,
            older: std::collections::BTreeMap::new(),
            conflict: None,
            retired: None,
        }
    }

    /// Another incarnation of this peer heard live at the same time as the current one, if any.
    pub fn conflict(&self) -> Option<u64> {
        self.conflict.filter(|c| c.2 >= CONFLICT_AFTER).map(|(i, _, _)| i)
    }

    pub fn alive(&self) -> bool {
        self.alive
    }

    /// Bit i set: link i is up.
    pub fn links_up_mask(&self) -> u8 {
        self.links.iter().enumerate().filter(|(_, l)| l.up).fold(0u8, |m, (i, _)| m | (1 << i.min(7)))
    }

    pub fn link_up(&self, link: usize) -> bool {
        self.links.get(link).is_some_and(|l| l.up)
    }

    pub fn link_last_heard(&self, link: usize) -> Option<Time> {
        self.links.get(link).and_then(|l| l.last_heard)
    }

    /// Most recent valid heartbeat on any link.
    pub fn last_heard(&self) -> Option<Time> {
        self.links.iter().filter_map(|l| l.last_heard).max()
    }

    /// Accept or reject a heartbeat that arrived on `link` at `now`. Returns the changes it caused
    /// (a restart is reported; liveness changes are reported by `evaluate`).
    pub fn on_heartbeat(
        &mut self,
        now: Time,
        link: usize,
        incarnation: u64,
        seq: u64,
        hb: &Heartbeat,
    ) -> Result<Vec<Change>, Rejected> {
        if link >= self.links.len() {
            return Err(Rejected::UnknownLink(link));
        }
        if hb.link as usize != link {
            return Err(Rejected::WrongLink { claimed: hb.link, arrived: link });
        }
        if let Some(current) = self.incarnation.filter(|c| incarnation < *c) {
            // An older incarnation: a replay, unless it is newer than anything heard from it (a daemon of an
            // incarnation we accepted that still runs) or newer than every incarnation before the current one
            // (a restart after a stray daemon with a higher incarnation): then two processes claim this node.
            let plausible = match self.older.get(&incarnation) {
                Some(max) => seq > max.get(link).copied().unwrap_or(0),
                None => self.older.keys().next_back().is_some_and(|m| incarnation > *m),
            };
            if !plausible {
                return Err(Rejected::Replayed { incarnation, seq });
            }
            let n = self.links.len();
            let entry = self.older.entry(incarnation).or_insert_with(|| vec![0; n]);
            entry[link] = entry[link].max(seq);
            // a datagram or two still in flight from before a restart are not a conflict: the third is
            let count = match self.conflict {
                Some((i, _, n)) if i == incarnation => n.saturating_add(1),
                _ => 1,
            };
            let first = count == CONFLICT_AFTER;
            self.conflict = Some((incarnation, now, count));
            return Err(Rejected::SecondIncarnation { current, other: incarnation, first });
        }
        if self.retired.is_some_and(|(ri, rs)| incarnation == ri && seq <= rs) {
            return Err(Rejected::Replayed { incarnation, seq });
        }
        if self.links[link].accepted.is_some_and(|prev| (incarnation, seq) <= prev) {
            return Err(Rejected::Replayed { incarnation, seq });
        }
        let mut changes = Vec::new();
        match self.incarnation {
            Some(old) if incarnation > old => {
                changes.push(Change::PeerRestarted { old, new: incarnation });
                // what each link heard last from the old incarnation: more from it later is a second daemon
                let per_link = self.links.iter().map(|l| l.accepted.filter(|(i, _)| *i == old).map_or(0, |(_, s)| s)).collect();
                self.older.insert(old, per_link);
                while self.older.len() > OLDER_KEPT {
                    self.older.pop_first();
                }
            }
            _ => {}
        }
        let state = &mut self.links[link];
        state.accepted = Some((incarnation, seq));
        state.last_heard = Some(now);
        if self.incarnation.is_none_or(|old| incarnation > old) {
            self.incarnation = Some(incarnation);
        }
        if self.latest.is_none_or(|prev| (incarnation, seq) > prev) {
            self.latest = Some((incarnation, seq));
            self.last_heartbeat = Some(hb.clone());
        }
        Ok(changes)
    }

    /// Re-arm after a local stall: nobody is convicted before `until`.
    pub fn rearm(&mut self, until: Time) {
        self.grace_until = Some(self.grace_until.map_or(until, |g| g.max(until)));
    }

    /// Recompute link and peer liveness at `now`.
    pub fn evaluate(&mut self, now: Time, dead_after: Duration) -> Vec<Change> {
        let mut changes = Vec::new();
        let in_grace = self.grace_until.is_some_and(|g| now < g);
        let any_fresh = self.links.iter().any(|l| l.last_heard.is_some_and(|t| now.since(t) < dead_after));
        // a second live incarnation is a sign of life too: nobody is convicted over a conflict
        let conflict_fresh = self.conflict.is_some_and(|(_, t, _)| now.since(t) < dead_after);
        if let Some((other, heard, count)) = self.conflict {
            if !conflict_fresh {
                self.conflict = None;
                if let Some(i) = self.incarnation.filter(|_| count >= CONFLICT_AFTER) {
                    changes.push(Change::ConflictEnded { incarnation: i });
                }
            } else if !any_fresh {
                // the current incarnation went silent, the other goes on: follow it from now on
                let retired = self.latest.or(self.incarnation.map(|i| (i, 0)));
                self.retired = retired.max(self.retired);
                let seqs = self.older.remove(&other).unwrap_or_default();
                self.incarnation = Some(other);
                self.latest = None;
                for (i, l) in self.links.iter_mut().enumerate() {
                    l.accepted = Some((other, seqs.get(i).copied().unwrap_or(0)));
                    // the incarnation followed from now on was heard then (on some link): its next heartbeats
                    // on each link keep the links up
                    l.last_heard = Some(heard);
                }
                self.conflict = None;
                changes.push(Change::ConflictEnded { incarnation: other });
            }
        }
        for (i, l) in self.links.iter_mut().enumerate() {
            let fresh = l.last_heard.is_some_and(|t| now.since(t) < dead_after);
            let up = fresh || (in_grace && l.up);
            if up != l.up {
                l.up = up;
                changes.push(if up { Change::LinkUp(i) } else { Change::LinkDown(i) });
            }
        }
        let any_fresh = self.links.iter().any(|l| l.last_heard.is_some_and(|t| now.since(t) < dead_after));
        let alive = any_fresh || conflict_fresh || (in_grace && self.alive);
        if alive != self.alive {
            self.alive = alive;
            if alive {
                self.ever_seen = true;
                changes.push(Change::PeerAlive);
            } else {
                self.died_at = Some(now);
                changes.push(Change::PeerDead);
            }
        }
        if !in_grace {
            self.grace_until = None;
        }
        changes
    }

    /// The next time `evaluate` could change something: when the freshest link ages past `dead_after`,
    /// or a grace period ends.
    pub fn next_deadline(&self, dead_after: Duration) -> Option<Time> {
        let grace = self.grace_until;
        let links = self
            .links
            .iter()
            .filter(|l| l.up)
            .filter_map(|l| l.last_heard)
            .map(|t| {
                let d = t + dead_after;
                grace.map_or(d, |g| d.max(g))
            })
            .min();
        let conflict = self.conflict.map(|(_, t, _)| t + dead_after);
        match (links, conflict) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(link: u8) -> Heartbeat {
        crate::engine::test_support::heartbeat(link, vec![])
    }

    const DEAD: Duration = Duration::from_millis(3000);

    #[test]
    fn alive_until_every_link_is_silent_for_dead_after() {
        let mut p = PeerLiveness::new(2);
        p.on_heartbeat(Time::from_millis(0), 0, 1, 1, &hb(0)).unwrap();
        p.on_heartbeat(Time::from_millis(100), 1, 1, 2, &hb(1)).unwrap();
        assert_eq!(p.evaluate(Time::from_millis(100), DEAD), vec![Change::LinkUp(0), Change::LinkUp(1), Change::PeerAlive]);
        // link 0 keeps talking, link 1 goes silent: link down, peer alive
        for i in 1..40u64 {
            p.on_heartbeat(Time::from_millis(100 * i), 0, 1, 2 + i, &hb(0)).unwrap();
        }
        let c = p.evaluate(Time::from_millis(3950), DEAD);
        assert_eq!(c, vec![Change::LinkDown(1)]);
        assert!(p.alive());
        assert_eq!(p.links_up_mask(), 0b01);
        // now link 0 goes silent too: last heard at 3900 → dead at 6900, not before
        assert!(p.evaluate(Time::from_millis(6899), DEAD).is_empty());
        assert_eq!(p.next_deadline(DEAD), Some(Time::from_millis(6900)));
        assert_eq!(p.evaluate(Time::from_millis(6900), DEAD), vec![Change::LinkDown(0), Change::PeerDead]);
        assert!(!p.alive());
        assert_eq!(p.died_at, Some(Time::from_millis(6900)));
    }

    #[test]
    fn replayed_and_misrouted_heartbeats_are_rejected() {
        let mut p = PeerLiveness::new(2);
        p.on_heartbeat(Time::from_millis(0), 0, 5, 10, &hb(0)).unwrap();
        assert_eq!(p.on_heartbeat(Time::from_millis(1), 0, 5, 10, &hb(0)), Err(Rejected::Replayed { incarnation: 5, seq: 10 }));
        assert_eq!(p.on_heartbeat(Time::from_millis(1), 0, 5, 9, &hb(0)), Err(Rejected::Replayed { incarnation: 5, seq: 9 }));
        assert_eq!(p.on_heartbeat(Time::from_millis(1), 0, 4, 99, &hb(0)), Err(Rejected::Replayed { incarnation: 4, seq: 99 }));
        assert_eq!(p.on_heartbeat(Time::from_millis(1), 1, 5, 11, &hb(0)), Err(Rejected::WrongLink { claimed: 0, arrived: 1 }));
        assert_eq!(p.on_heartbeat(Time::from_millis(1), 2, 5, 11, &hb(2)), Err(Rejected::UnknownLink(2)));
        // links are independent windows: a copy with a lower seq on the other link is fine
        p.on_heartbeat(Time::from_millis(2), 0, 5, 12, &hb(0)).unwrap();
        p.on_heartbeat(Time::from_millis(2), 1, 5, 11, &hb(1)).unwrap();
    }

    #[test]
    fn replay_of_a_dead_peer_does_not_revive_it() {
        let mut p = PeerLiveness::new(1);
        for s in 1..=5 {
            p.on_heartbeat(Time::from_millis(s * 100), 0, 1, s, &hb(0)).unwrap();
        }
        p.evaluate(Time::from_millis(500), DEAD);
        p.evaluate(Time::from_millis(4000), DEAD);
        assert!(!p.alive());
        for s in 1..=5 {
            assert!(p.on_heartbeat(Time::from_millis(5000), 0, 1, s, &hb(0)).is_err());
        }
        assert!(p.evaluate(Time::from_millis(5000), DEAD).is_empty());
        assert!(!p.alive());
    }

    #[test]
    fn restart_is_reported_and_accepted() {
        let mut p = PeerLiveness::new(1);
        p.on_heartbeat(Time::from_millis(0), 0, 3, 500, &hb(0)).unwrap();
        let c = p.on_heartbeat(Time::from_millis(10), 0, 4, 1, &hb(0)).unwrap();
        assert_eq!(c, vec![Change::PeerRestarted { old: 3, new: 4 }]);
        assert_eq!(p.incarnation, Some(4));
    }

    #[test]
    fn two_live_incarnations_are_a_conflict_not_a_death() {
        let mut p = PeerLiveness::new(1);
        // the real daemon, incarnation 5
        for s in 1..=3 {
            p.on_heartbeat(Time::from_millis(s * 100), 0, 5, s, &hb(0)).unwrap();
        }
        p.evaluate(Time::from_millis(300), DEAD);
        // a stray daemon of the same node starts with a higher incarnation: looks like a restart
        assert_eq!(p.on_heartbeat(Time::from_millis(400), 0, 900, 1, &hb(0)).unwrap(), vec![Change::PeerRestarted { old: 5, new: 900 }]);
        // the real one keeps talking: a conflict (once), not a replay
        assert_eq!(
            p.on_heartbeat(Time::from_millis(450), 0, 5, 4, &hb(0)),
            Err(Rejected::SecondIncarnation { current: 900, other: 5, first: false })
        );
        assert_eq!(p.conflict(), None, "one datagram in flight from before a restart is no conflict");
        p.on_heartbeat(Time::from_millis(500), 0, 5, 5, &hb(0)).unwrap_err();
        assert_eq!(
            p.on_heartbeat(Time::from_millis(550), 0, 5, 6, &hb(0)),
            Err(Rejected::SecondIncarnation { current: 900, other: 5, first: true })
        );
        // a replay of the real one's old datagrams is still a replay
        assert_eq!(p.on_heartbeat(Time::from_millis(560), 0, 5, 2, &hb(0)), Err(Rejected::Replayed { incarnation: 5, seq: 2 }));
        assert_eq!(p.conflict(), Some(5));
        // the stray stops at 400 ms; the real one goes on: never dead, and its window follows it again
        let mut changes = Vec::new();
        for (seq, t) in (7..).zip((650..6000).step_by(100)) {
            let _ = p.on_heartbeat(Time::from_millis(t), 0, 5, seq, &hb(0));
            changes.extend(p.evaluate(Time::from_millis(t), DEAD));
            assert!(p.alive(), "declared dead at {t} ms while a daemon of the node talks");
        }
        assert!(changes.contains(&Change::ConflictEnded { incarnation: 5 }), "{changes:?}");
        assert_eq!(p.incarnation, Some(5));
        assert_eq!(p.conflict(), None);
        // the stray's captured datagrams stay replays
        assert!(p.on_heartbeat(Time::from_millis(6000), 0, 900, 1, &hb(0)).is_err());
    }

    #[test]
    fn a_restart_after_a_stray_incarnation_is_not_locked_out() {
        let mut p = PeerLiveness::new(1);
        p.on_heartbeat(Time::from_millis(0), 0, 5, 1, &hb(0)).unwrap();
        p.evaluate(Time::from_millis(0), DEAD);
        // a stray daemon with a huge incarnation, then the real node restarts with the next counter value
        p.on_heartbeat(Time::from_millis(100), 0, 1_700_000_000, 1, &hb(0)).unwrap();
        p.evaluate(Time::from_millis(100), DEAD);
        // the stray dies at 100 ms, the real node (incarnation 6) talks from 200 ms on
        let mut alive_throughout = true;
        for (i, t) in (200..8000).step_by(100).enumerate() {
            let _ = p.on_heartbeat(Time::from_millis(t), 0, 6, i as u64 + 1, &hb(0));
            p.evaluate(Time::from_millis(t), DEAD);
            alive_throughout &= p.alive();
        }
        assert!(alive_throughout);
        assert_eq!(p.incarnation, Some(6), "the restarted incarnation is followed again");
        // and an older incarnation than any accepted before the stray is still a replay
        assert!(matches!(p.on_heartbeat(Time::from_millis(8000), 0, 4, 99, &hb(0)), Err(Rejected::Replayed { .. })));
    }

    #[test]
    fn stall_grace_prevents_conviction_then_expires() {
        let mut p = PeerLiveness::new(1);
        p.on_heartbeat(Time::from_millis(0), 0, 1, 1, &hb(0)).unwrap();
        p.evaluate(Time::from_millis(0), DEAD);
        // we stalled from 100ms to 5000ms; the driver reports it and we re-arm for dead_after
        p.rearm(Time::from_millis(8000));
        assert!(p.evaluate(Time::from_millis(5000), DEAD).is_empty());
        assert!(p.alive());
        assert_eq!(p.next_deadline(DEAD), Some(Time::from_millis(8000)));
        assert_eq!(p.evaluate(Time::from_millis(8000), DEAD), vec![Change::LinkDown(0), Change::PeerDead]);
    }
}
