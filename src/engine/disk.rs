//! The disk heartbeat channel (`[cluster] disk_heartbeat`): one more liveness channel beside the network links.
//!
//! Every `heartbeat_interval` the engine asks its driver to write this node's slot ([`Output::DiskBeat`]); the
//! driver answers with [`Input::DiskRound`]: the write's latency (or its error) and every peer's slot as read
//! back. From those rounds the engine knows:
//!
//! - **this node's path**: healthy while a write succeeded within `dead_after`. A hung device sends no round
//!   at all, which ages the same way as failing writes.
//! - **each peer's slot**: alive while its (incarnation, seq) advanced within `dead_after`. The first value
//!   read after this node started is not an advance (a stale slot of a crashed node is not a sign of life);
//!   a restarted peer writes a higher incarnation, which is one. A slot naming another node or cluster, with
//!   a bad MAC or never written does not advance.
//! - **a peer's slot stopped**: a successful round (own write ok, the peer's slot read) at least `dead_after`
//!   after the slot last advanced, after this node started watching, *and* after this node's own path last
//!   came back (its writes failing or hung for `dead_after`, or a write error). Judged at the time of that
//!   round, not of `now`, so a node whose own path hangs never sees its peers' slots as stopped, and a node
//!   whose path has just come back watches the slots for `dead_after` before it calls one stopped: the slot
//!   of a peer whose path failed meanwhile is old too (swarm seed 66774: both paths hung, then came back at
//!   once; each node read the other's stale slot at its first good round, took the peer for crashed, fenced
//!   it without the race delay, and both were powered off).
//!
//! The rules (see `fence_control.rs`): the disk only makes this node more careful — a peer silent on every
//! link is dead only once a round of this node with a successful write found its slot stopped (an advancing
//! slot, or one not judged yet, keeps it alive: no fence, no move), and a node whose own writes fail fences
//! nobody — except for one: a peer silent on every link whose slot stopped while this node's own writes
//! succeed is down, not partitioned away, so it is fenced without the two-node race delay.
//!
//! Why "stopped" and not "not advanced within `dead_after` of now": a node whose path just hung still counts
//! its writes as healthy for `dead_after` after the last good one, while its view of the peers' slots is
//! already getting old. Judging slots at the time of the last good round makes the two age together, so a
//! node whose path fails cannot take a live peer for dead (and fence it while the peer, seeing this node's
//! slot stop, fences it too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diskbeat::{DiskSlot, SlotError};
use crate::time::Time;

use super::{Engine, Event, Output};

/// What this node knows about one peer's slot.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerSlot {
    /// The latest (incarnation, seq) read from the slot.
    pub last: Option<(u64, u64)>,
    /// When the slot was last seen advancing.
    pub advanced_at: Option<Time>,
    /// Why the last read of the slot gave no valid slot of this peer.
    pub error: Option<String>,
    /// The slot stopped (see the module documentation): judged at the latest successful round.
    pub stopped: bool,
    /// `peer_alive_on_disk_only` was reported for the current network silence.
    pub disk_only_reported: bool,
    /// `peer_disk_silent` was reported for the current silence of the slot.
    pub silent_reported: bool,
    /// `fence_held_disk_failing` was reported for the current silence of this peer.
    pub held_reported: bool,
}

/// The channel's state.
#[derive(Clone, Debug)]
pub(crate) struct DiskChannel {
    pub device: PathBuf,
    /// Counter written in this node's slot (per incarnation).
    pub seq: u64,
    /// When the next round is due (one per `heartbeat_interval`, whatever makes network heartbeats go early).
    pub next_beat: Time,
    /// When this node started watching (a peer never seen advancing is judged from here).
    pub since: Time,
    /// The last successful write, and its latency.
    pub last_write_ok: Option<Time>,
    pub last_latency: Option<Duration>,
    /// The last failed write's error (cleared by a successful one).
    pub last_error: Option<String>,
    /// When the last round (successful or not) came back.
    pub last_round: Option<Time>,
    /// `disk_heartbeat_failed` was reported and not yet followed by `disk_heartbeat_restored`.
    pub failing_reported: bool,
    /// Since when this node's writes succeed without a gap of `dead_after` or an error (`None` after an error):
    /// a slot is judged stopped only after this node watched it that long with a working path.
    pub path_good_since: Option<Time>,
    pub peers: BTreeMap<String, PeerSlot>,
}

impl DiskChannel {
    pub(crate) fn new(device: &Path, now: Time) -> DiskChannel {
        DiskChannel {
            device: device.to_path_buf(),
            seq: 0,
            next_beat: now,
            since: now,
            last_write_ok: None,
            last_latency: None,
            last_error: None,
            last_round: None,
            failing_reported: false,
            path_good_since: None,
            peers: BTreeMap::new(),
        }
    }

    /// This node's writes succeeded within `dead_after`.
    pub(crate) fn path_ok(&self, now: Time, dead_after: Duration) -> bool {
        self.last_write_ok.is_some_and(|t| now < t + dead_after)
    }

    /// `peer`'s slot advanced within `dead_after`.
    pub(crate) fn peer_alive(&self, peer: &str, now: Time, dead_after: Duration) -> bool {
        self.peers.get(peer).and_then(|p| p.advanced_at).is_some_and(|t| now < t + dead_after)
    }

    /// `peer`'s slot stopped while this node's own writes succeed (now and at the round that judged it).
    pub(crate) fn peer_stopped(&self, peer: &str, now: Time, dead_after: Duration) -> bool {
        self.path_ok(now, dead_after) && self.peers.get(peer).is_some_and(|p| p.stopped)
    }

    /// Age of `peer`'s slot: time since it last advanced (or since this node started watching).
    pub(crate) fn slot_age(&self, peer: &str, now: Time) -> Duration {
        now.since(self.peers.get(peer).and_then(|p| p.advanced_at).unwrap_or(self.since))
    }
}

impl Engine {
    /// Ask the driver for one round (once per heartbeat interval).
    pub(crate) fn disk_beat(&mut self, now: Time) {
        if self.left {
            return;
        }
        let (cluster, node, incarnation) = (self.cfg.cluster.name.clone(), self.me.name.clone(), self.incarnation);
        let interval = self.cfg.cluster.heartbeat_interval;
        let Some(disk) = self.disk.as_mut() else { return };
        if now < disk.next_beat {
            return;
        }
        disk.next_beat = now + interval;
        disk.seq += 1;
        let slot = DiskSlot { cluster, node, incarnation, seq: disk.seq };
        self.outputs.push_back(Output::DiskBeat { slot });
    }

    /// A round came back.
    pub(crate) fn on_disk_round(&mut self, now: Time, write: Result<Duration, String>, slots: Vec<(String, Result<DiskSlot, SlotError>)>) {
        let dead_after = self.cfg.cluster.dead_after;
        let cluster = self.cfg.cluster.name.clone();
        let peers: Vec<String> = self.peers.keys().cloned().collect();
        let Some(disk) = self.disk.as_mut() else { return };
        disk.last_round = Some(now);
        let write_ok = match write {
            Ok(latency) => {
                // a good write after an error, or after none for `dead_after` (a hung device): the path is back now
                if disk.path_good_since.is_none() || !disk.path_ok(now, dead_after) {
                    disk.path_good_since = Some(now);
                }
                disk.last_write_ok = Some(now);
                disk.last_latency = Some(latency);
                disk.last_error = None;
                true
            }
            Err(e) => {
                disk.last_error = Some(e);
                disk.path_good_since = None;
                false
            }
        };
        for (node, read) in slots {
            if !peers.contains(&node) {
                continue;
            }
            let since = disk.since.max(disk.path_good_since.unwrap_or(disk.since));
            let p = disk.peers.entry(node.clone()).or_default();
            match read {
                Ok(s) if s.cluster == cluster && s.node == node => {
                    let value = (s.incarnation, s.seq);
                    match p.last {
                        None => {}
                        Some(prev) if value > prev => p.advanced_at = Some(now),
                        Some(_) => {}
                    }
                    p.last = Some(p.last.map_or(value, |prev| prev.max(value)));
                    p.error = None;
                }
                Ok(s) => p.error = Some(format!("the slot holds node {} of cluster {}", s.node, s.cluster)),
                Err(e) => p.error = Some(e.to_string()),
            }
            // judged only on a round whose own write succeeded: a node that cannot write cannot judge
            if write_ok {
                let base = p.advanced_at.unwrap_or(since).max(since);
                p.stopped = now >= base + dead_after;
            }
        }
    }
}

impl Engine {
    /// Whether the disk says `victim` is alive (its slot advances): then it is not dead, whatever the network
    /// says. False without a disk heartbeat.
    pub(crate) fn alive_on_disk(&self, now: Time, victim: &str) -> bool {
        self.disk.as_ref().is_some_and(|d| d.peer_alive(victim, now, self.cfg.cluster.dead_after))
    }

    /// This node's disk heartbeat is configured and its writes failed or hung for `dead_after`: it fences
    /// nobody automatically.
    pub(crate) fn own_disk_failing(&self, now: Time) -> bool {
        self.disk.as_ref().is_some_and(|d| !d.path_ok(now, self.cfg.cluster.dead_after))
    }

    /// `victim`'s slot stopped while this node's writes succeed: it crashed and cannot be partitioned away,
    /// so no race delay.
    pub(crate) fn stopped_on_disk(&self, now: Time, victim: &str) -> bool {
        self.disk.as_ref().is_some_and(|d| d.peer_stopped(victim, now, self.cfg.cluster.dead_after))
    }

    /// Report what the channel says: this node's writes failing or back, peers alive on the disk only, slots
    /// that stopped.
    pub(crate) fn evaluate_disk(&mut self, now: Time) {
        let dead_after = self.cfg.cluster.dead_after;
        let Some(d) = self.disk.as_mut() else { return };
        let peers = &self.peers;
        // (this runs at every step: the device's name is only made into a String for an event)
        let device = |d: &DiskChannel| d.device.display().to_string();
        let mut events = Vec::new();
        let ok = d.path_ok(now, dead_after);
        if !ok && now >= d.since + dead_after && !d.failing_reported {
            d.failing_reported = true;
            let error = match (&d.last_error, d.last_write_ok) {
                (Some(e), _) => e.clone(),
                (None, Some(t)) => format!("no write completed for {} ms (the device hangs?)", now.since(t).as_millis()),
                (None, None) => "no write completed since this daemon started (the device hangs?)".to_string(),
            };
            events.push(Event::DiskHeartbeatFailed { device: device(d), error });
        } else if ok && d.failing_reported {
            d.failing_reported = false;
            events.push(Event::DiskHeartbeatRestored { device: device(d) });
        }
        for (node, live) in peers {
            let alive = live.alive();
            let disk_alive = d.peer_alive(node, now, dead_after);
            let stopped = d.peer_stopped(node, now, dead_after);
            let age = d.slot_age(node, now);
            if !d.peers.contains_key(node) {
                d.peers.insert(node.clone(), PeerSlot::default());
            }
            let Some(p) = d.peers.get_mut(node) else { continue };
            if alive {
                p.held_reported = false;
            }
            if !alive && disk_alive {
                if !p.disk_only_reported {
                    p.disk_only_reported = true;
                    events.push(Event::PeerAliveOnDiskOnly { node: node.clone(), device: d.device.display().to_string() });
                }
            } else {
                p.disk_only_reported = false;
            }
            if stopped && !p.silent_reported {
                p.silent_reported = true;
                events.push(Event::PeerDiskSilent {
                    node: node.clone(),
                    device: d.device.display().to_string(),
                    silent_ms: age.as_millis() as u64,
                    error: p.error.clone(),
                });
            } else if disk_alive {
                p.silent_reported = false;
            }
        }
        for ev in events {
            self.emit(now, ev);
        }
    }
}
