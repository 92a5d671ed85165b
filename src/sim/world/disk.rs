//! The disk heartbeat area of the simulated SAN (`[cluster] disk_heartbeat`): one 4096-byte slot per node,
//! written and read with the real codec (`crate::diskbeat`), and each host's storage path to it, which can
//! fail (`storage` fault `path-down`: every round ends with an I/O error) or stall (`path-stall`: a round
//! never completes, as on a hung multipath device with queue_if_no_path, until `path-restore` or `settle`).
//!
//! The world plays the daemon's I/O thread: on `Output::DiskBeat` it starts one round unless one is still in
//! flight (that beat is skipped, as the driver contract says), and after a small latency writes the slot and
//! answers `Input::DiskRound` with every peer's slot as read back. A crashed or powered-off host writes
//! nothing more; a network partition does not touch the disk. The RNG of the area is its own, so scenarios
//! without a disk heartbeat run exactly as before.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::diskbeat::{decode_slot, encode_slot, slot_index, DiskSlot, SLOT_BYTES};
use crate::engine::{Event, FenceReason, Input};
use crate::time::Time;

use super::{Ev, World};

/// A host's path to the heartbeat device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PathState {
    Ok,
    Down,
    Stall,
}

/// One round in flight on a host: the daemon run that asked, the slot to write, whether its completion is
/// scheduled (a stalled round is not).
#[derive(Clone, Debug)]
pub(super) struct Round {
    boot: u32,
    slot: DiskSlot,
    scheduled: bool,
}

/// The heartbeat area and the hosts' paths to it.
pub(super) struct DiskArea {
    device: String,
    bytes: Vec<u8>,
    paths: BTreeMap<String, (PathState, Time)>,
    inflight: BTreeMap<String, Round>,
    rng: ChaCha8Rng,
    /// Beats skipped because a round was still in flight.
    pub(super) skipped: u64,
}

impl DiskArea {
    pub(super) fn new(device: String, nodes: &[String], seed: u64) -> DiskArea {
        DiskArea {
            device,
            bytes: vec![0u8; nodes.len() * SLOT_BYTES],
            paths: nodes.iter().map(|n| (n.clone(), (PathState::Ok, Time::ZERO))).collect(),
            inflight: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xd15c_0b3a_7000_0001),
            skipped: 0,
        }
    }

    fn path(&self, host: &str) -> PathState {
        self.paths.get(host).map_or(PathState::Ok, |p| p.0)
    }

    /// How long the host's path has been in its current state.
    fn path_since(&self, host: &str) -> Time {
        self.paths.get(host).map_or(Time::ZERO, |p| p.1)
    }

    fn latency(&mut self, state: PathState) -> Duration {
        match state {
            PathState::Down => Duration::from_millis(self.rng.random_range(1..30)),
            _ => Duration::from_micros(self.rng.random_range(200..3000)),
        }
    }
}

impl World {
    /// `host`'s daemon asks for a round.
    pub(super) fn disk_beat(&mut self, host: &str, slot: DiskSlot) {
        let Some(boot) = self.hosts.get(host).map(|h| h.boot) else { return };
        let now = self.now;
        let Some(d) = self.disk.as_mut() else { return };
        if d.inflight.get(host).is_some_and(|r| r.boot == boot) {
            d.skipped += 1;
            return;
        }
        let state = d.path(host);
        let scheduled = state != PathState::Stall;
        d.inflight.insert(host.to_string(), Round { boot, slot, scheduled });
        if scheduled {
            let at = now + d.latency(state);
            self.schedule(at, Ev::DiskDone { host: host.to_string(), boot });
        }
    }

    /// A round of `host`'s daemon run `boot` completes now (unless the path stalled meanwhile).
    pub(super) fn disk_done(&mut self, host: &str, boot: u32) {
        let powered = self.hosts.get(host).is_some_and(|h| h.powered);
        let Some(d) = self.disk.as_mut() else { return };
        let state = d.path(host);
        let Some(round) = d.inflight.get_mut(host).filter(|r| r.boot == boot) else { return };
        if state == PathState::Stall {
            round.scheduled = false; // completes when the path comes back
            return;
        }
        let Some(round) = d.inflight.remove(host) else { return };
        if !powered {
            return;
        }
        let Some(index) = slot_index(&self.cfg, host) else { return };
        let write = if state == PathState::Down {
            Err(format!("pwrite {} at offset {}: Input/output error (os error 5)", d.device, index * SLOT_BYTES))
        } else {
            let encoded = encode_slot(&round.slot, &self.key);
            d.bytes[index * SLOT_BYTES..(index + 1) * SLOT_BYTES].copy_from_slice(&encoded);
            Ok(Duration::from_micros(d.rng.random_range(200..3000)))
        };
        let slots = match write {
            Ok(_) => self
                .cfg
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.name != host)
                .map(|(i, n)| (n.name.clone(), decode_slot(&d.bytes[i * SLOT_BYTES..(i + 1) * SLOT_BYTES], &self.keys)))
                .collect(),
            Err(_) => Vec::new(),
        };
        let current = self.hosts.get(host).is_some_and(|h| h.boot == boot && h.engine.is_some());
        if current {
            self.feed(host, Input::DiskRound { write, slots });
        }
    }

    /// `storage` faults `path-down`, `path-stall`, `path-restore` on `host`.
    pub(super) fn disk_path(&mut self, host: &str, state: PathState) {
        let now = self.now;
        let Some(d) = self.disk.as_mut() else {
            self.violation(format!("scenario: a storage path fault on {host} but no [cluster] disk_heartbeat"));
            return;
        };
        if d.path(host) != state {
            d.paths.insert(host.to_string(), (state, now));
        }
        // a stalled round completes once the path is back (with an error if it is down)
        let resume = d.inflight.get_mut(host).filter(|r| !r.scheduled && state != PathState::Stall).map(|r| {
            r.scheduled = true;
            r.boot
        });
        let at = now + d.latency(state);
        if let Some(boot) = resume {
            self.schedule(at, Ev::DiskDone { host: host.to_string(), boot });
        }
        self.trace(host, &format!("storage path to the heartbeat device: {state:?}"));
    }

    /// `settle`: every path works again.
    pub(super) fn disk_settle(&mut self) {
        let hosts: Vec<String> = self.cfg.nodes.iter().map(|n| n.name.clone()).collect();
        if self.disk.is_some() {
            for h in hosts {
                self.disk_path(&h, PathState::Ok);
            }
        }
    }

    /// Safety checks of the channel at a fence start: a node whose own path has been down or stalled for
    /// longer than `dead_after` (plus two rounds) must never fence a silent peer; nor may any node fence, as
    /// dead, a peer whose daemon runs (not paused, timers on time) with a working path for that long. A daemon
    /// that resumed from a pause less than that long ago wrote no slot for the whole pause: a peer that judged
    /// it dead then was right (swarm seed 283996: fenced 1 ms after SIGCONT, before its first new write).
    pub(super) fn check_disk_fence(&mut self, fencer: &str, e: &Event) {
        let Event::FenceStarted { node: victim, reason: FenceReason::PeerDead, attempt: 1, .. } = e else { return };
        let Some(d) = self.disk.as_ref() else { return };
        let c = &self.cfg.cluster;
        let margin = c.dead_after + c.heartbeat_interval * 2;
        let long = |host: &str| self.now.since(d.path_since(host)) > margin;
        if d.path(fencer) != PathState::Ok && long(fencer) {
            let why = format!("{fencer} fenced {victim} as dead while its own path to the heartbeat device was {:?}", d.path(fencer));
            self.violation(why);
            return;
        }
        let victim_fine = self.hosts.get(victim.as_str()).is_some_and(|h| {
            h.powered
                && h.engine.is_some()
                && h.paused_since.is_none()
                && h.resumed_at.is_none_or(|t| self.now.since(t) > margin)
                && h.started_at.is_some_and(|t| self.now.since(t) > margin)
        }) && !self.clock_faults.contains_key(victim.as_str());
        if victim_fine && d.path(victim) == PathState::Ok && long(victim) && d.path(fencer) == PathState::Ok && long(fencer) {
            self.violation(format!("{fencer} fenced {victim} as dead while {victim}'s disk heartbeat slot advanced"));
        }
    }
}
