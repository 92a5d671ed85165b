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
}

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
        }
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
        let state = &mut self.links[link];
        if state.accepted.is_some_and(|prev| (incarnation, seq) <= prev) {
            return Err(Rejected::Replayed { incarnation, seq });
        }
        state.accepted = Some((incarnation, seq));
        state.last_heard = Some(now);
        let mut changes = Vec::new();
        match self.incarnation {
            Some(old) if incarnation > old => changes.push(Change::PeerRestarted { old, new: incarnation }),
            _ => {}
        }
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
        for (i, l) in self.links.iter_mut().enumerate() {
            let fresh = l.last_heard.is_some_and(|t| now.since(t) < dead_after);
            let up = fresh || (in_grace && l.up);
            if up != l.up {
                l.up = up;
                changes.push(if up { Change::LinkUp(i) } else { Change::LinkDown(i) });
            }
        }
        let any_fresh = self.links.iter().any(|l| l.last_heard.is_some_and(|t| now.since(t) < dead_after));
        let alive = any_fresh || (in_grace && self.alive);
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
        self.links
            .iter()
            .filter(|l| l.up)
            .filter_map(|l| l.last_heard)
            .map(|t| {
                let d = t + dead_after;
                grace.map_or(d, |g| d.max(g))
            })
            .min()
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
