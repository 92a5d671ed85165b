//! The Lustre recovery window of the simulated servers, answering `lctl get_param -n
//! <mdt|obdfilter>.<device>.recovery_status` in Lustre's format (see `storage/recovery.rs`).
//!
//! The model (facts from Lustre's defaults, `docs/reference/storage-tools-formats.md` §4; the figures of the
//! client side are the model's own, not measured):
//!
//! - A device that served clients once (it was mounted before in this run) opens a recovery window at its
//!   next mount; a first mount has nobody to recover: `INACTIVE`. The MGS has no window.
//! - The window starts when the first client reconnects (`WAITING_FOR_CLIENTS` until then). Clients
//!   reconnect 5–70 s after the mount (their own timeouts and reconnect backoff find the new server), or 1–6 s
//!   with Imperative Recovery: the MGS tells them at once. IR helps only when the MGS kept running through the
//!   failure (it was mounted before the device went down); an MGS that failed over with the target cannot.
//! - Each client replays for 0.5–2 s. Recovery is COMPLETE when the last client has replayed, or, when some
//!   clients never come back (`lustre_clients_lost`), when the soft window ends: `recovery_time_soft` 300 s
//!   after the first reconnect, 150 s with IR (`soft x ir_factor 5 / 10`, floored at 120 s); the hard limit
//!   (900 s) bounds it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::time::Time;

/// Lustre's default `recovery_time_soft` (3 x obd_timeout 100 s) and `recovery_time_hard` (9 x).
pub const SOFT: Duration = Duration::from_secs(300);
pub const HARD: Duration = Duration::from_secs(900);
/// With Imperative Recovery: soft x ir_factor (5) / 10, at least OBD_RECOVERY_TIME_MIN (120 s).
pub const SOFT_IR: Duration = Duration::from_secs(150);

/// Default number of Lustre clients of a simulated file system.
pub const DEFAULT_CLIENTS: u32 = 8;

/// The recovery state of every device of the simulated file system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryModel {
    /// Clients of the file system, and how many of them never come back after a failover.
    pub clients: u32,
    pub lost_clients: u32,
    /// Devices that served clients (mounted once): their next mount recovers.
    pub served: BTreeSet<String>,
    /// When each device's last mount went away (umount or power loss).
    pub down_at: BTreeMap<String, Time>,
    /// The window of each mounted device that recovers.
    pub windows: BTreeMap<String, Window>,
}

/// One recovery window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub mounted: Time,
    /// When each returning client reconnects, and when it has replayed (sorted by reconnect).
    pub clients: Vec<(Time, Time)>,
    pub total: u32,
    pub ir: bool,
    pub soft: Duration,
    /// When the recovery is over.
    pub end: Time,
}

impl Window {
    fn start(&self) -> Option<Time> {
        self.clients.first().map(|c| c.0)
    }
}

fn seed_of(name: &str, now: Time) -> u64 {
    name.bytes().fold(now.0 ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl RecoveryModel {
    /// A model of `clients` clients, `lost` of which never come back.
    pub fn new(clients: u32, lost: u32) -> RecoveryModel {
        RecoveryModel { clients, lost_clients: lost.min(clients), ..RecoveryModel::default() }
    }

    /// `device` was mounted at `now`; `ir` = the MGS ran through the failure (Imperative Recovery works).
    pub fn on_mount(&mut self, device: &str, now: Time, mgs_up_since: Option<Time>) {
        if device == "MGS" || device.ends_with("-MGS") {
            return;
        }
        let recovers = self.served.contains(device) && self.clients > 0;
        self.served.insert(device.to_string());
        self.windows.remove(device);
        if !recovers {
            return;
        }
        let down = self.down_at.get(device).copied().unwrap_or(now);
        let ir = mgs_up_since.is_some_and(|since| since <= down);
        let mut rng = ChaCha8Rng::seed_from_u64(seed_of(device, now));
        let back = self.clients - self.lost_clients;
        let (lo, hi) = if ir { (1_000, 6_000) } else { (5_000, 70_000) };
        let mut clients: Vec<(Time, Time)> = (0..back)
            .map(|_| {
                let connect = now + Duration::from_millis(rng.random_range(lo..=hi));
                (connect, connect + Duration::from_millis(rng.random_range(500..=2_000)))
            })
            .collect();
        clients.sort();
        let soft = if ir { SOFT_IR } else { SOFT };
        let end = match clients.first() {
            None => now, // every client lost: nothing to wait for in this model
            Some(first) => {
                let last = clients.iter().map(|c| c.1).max().unwrap_or(first.1);
                let limit = first.0 + HARD;
                if self.lost_clients > 0 { (first.0 + soft).min(limit) } else { last.min(limit) }
            }
        };
        self.windows.insert(device.to_string(), Window { mounted: now, clients, total: self.clients, ir, soft, end });
    }

    /// `device`'s mount went away at `now`.
    pub fn on_down(&mut self, device: &str, now: Time) {
        self.windows.remove(device);
        self.down_at.insert(device.to_string(), now);
    }

    /// When the recovery of mounted `device` is (or was) over; `None`: it has no window (INACTIVE, MGS).
    pub fn end_of(&self, device: &str) -> Option<Time> {
        self.windows.get(device).map(|w| w.end)
    }

    /// The text of `recovery_status` for a mounted device at `now` (`epoch_unix`: the Unix time of Time 0).
    pub fn status_text(&self, device: &str, now: Time, epoch_unix: u64) -> String {
        let Some(w) = self.windows.get(device) else { return "status: INACTIVE\n".into() };
        let Some(start) = w.start() else { return "status: INACTIVE\n".into() };
        let unix = |t: Time| epoch_unix + t.0 / 1_000_000;
        if now < start {
            return "status: WAITING_FOR_CLIENTS\n".into();
        }
        let connected = w.clients.iter().filter(|c| c.0 <= now).count();
        let replayed = w.clients.iter().filter(|c| c.1 <= now).count();
        if now >= w.end {
            let back = w.clients.len();
            return format!(
                "status: COMPLETE\nrecovery_start: {}\nrecovery_duration: {}\ncompleted_clients: {back}/{}\nreplayed_requests: {}\nlast_transno: {}\nVBR: DISABLED\nIR: {}\n",
                unix(start),
                w.end.since(start).as_secs(),
                w.total,
                back * 12,
                4_294_967_300u64 + back as u64 * 12,
                if w.ir { "ENABLED" } else { "DISABLED" }
            );
        }
        let remaining = (start + w.soft).0.saturating_sub(now.0) / 1_000_000;
        format!(
            "status: RECOVERING\nrecovery_start: {}\ntime_remaining: {remaining}\nconnected_clients: {connected}/{}\nreq_replay_clients: 0\nlock_repay_clients: {}\ncompleted_clients: {replayed}\nevicted_clients: 0\nreplayed_requests: {}\nqueued_requests: 0\nnext_transno: {}\n",
            unix(start),
            w.total,
            connected - replayed,
            replayed * 12,
            4_294_967_301u64 + replayed as u64 * 12
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::recovery::{parse_recovery_status, RecoveryState};

    #[test]
    fn a_first_mount_is_inactive_and_a_remount_recovers_in_lustres_format() {
        let mut m = RecoveryModel::new(8, 0);
        let t0 = Time::from_millis(1_000);
        m.on_mount("lfs-MDT0000", t0, None);
        assert_eq!(m.status_text("lfs-MDT0000", t0, 1_700_000_000), "status: INACTIVE\n");
        m.on_down("lfs-MDT0000", Time::from_millis(60_000));
        let t1 = Time::from_millis(100_000);
        m.on_mount("lfs-MDT0000", t1, Some(Time::from_millis(80_000))); // the MGS came back after: no IR
        let w = m.windows["lfs-MDT0000"].clone();
        assert!(!w.ir && w.clients.len() == 8);
        let s = parse_recovery_status(&m.status_text("lfs-MDT0000", t1, 1_700_000_000)).unwrap();
        assert_eq!(s.state(), RecoveryState::WaitingForClients);
        let mid = w.clients[3].0;
        let s = parse_recovery_status(&m.status_text("lfs-MDT0000", mid, 1_700_000_000)).unwrap();
        assert_eq!((s.state(), s.total_clients), (RecoveryState::Recovering, Some(8)));
        assert!(s.connected_clients.unwrap() >= 4 && s.time_remaining.unwrap() <= 300);
        let s = parse_recovery_status(&m.status_text("lfs-MDT0000", w.end, 1_700_000_000)).unwrap();
        assert_eq!((s.state(), s.completed_clients, s.total_clients, s.ir), (RecoveryState::Complete, Some(8), Some(8), Some(false)));
        assert!(w.end.since(t1) <= Duration::from_secs(72));
    }

    #[test]
    fn ir_shortens_reconnects_and_a_lost_client_holds_recovery_to_the_soft_window() {
        let mut m = RecoveryModel::new(8, 0);
        m.on_mount("lfs-OST0000", Time::ZERO, None);
        m.on_down("lfs-OST0000", Time::from_millis(10_000));
        m.on_mount("lfs-OST0000", Time::from_millis(40_000), Some(Time::ZERO));
        let w = &m.windows["lfs-OST0000"];
        assert!(w.ir && w.end.since(Time::from_millis(40_000)) <= Duration::from_secs(8));
        let mut lost = RecoveryModel::new(8, 1);
        lost.on_mount("lfs-OST0000", Time::ZERO, None);
        lost.on_down("lfs-OST0000", Time::from_millis(10_000));
        lost.on_mount("lfs-OST0000", Time::from_millis(40_000), Some(Time::ZERO));
        let w = &lost.windows["lfs-OST0000"];
        assert_eq!(w.end, w.clients[0].0 + SOFT_IR);
        assert_eq!(RecoveryModel::new(8, 0).end_of("MGS"), None);
    }
}
