//! Lustre recovery after a target is mounted: which parameter to read, and its parser.
//!
//! A Lustre MDT or OST that starts on a new server (after a failover, and after any restart that its clients
//! saw) opens a *recovery window*: clients reconnect and replay what the old server had not committed; new
//! requests wait until every known client is back or the window runs out (`recovery_time_soft`, 300 s by
//! default, about half with Imperative Recovery, up to `recovery_time_hard`, 900 s). The mount and `lctl dl`
//! say nothing about it: the target is "up" but does not serve new requests yet. failoverd follows it with
//!
//! ```text
//! lctl get_param -n mdt.<fsname>-MDT0000.recovery_status        (obdfilter.<fsname>-OST0000 for an OST)
//! ```
//!
//! whose text is printed by `lprocfs_recovery_status_seq_show()` (lustre-release
//! `lustre/obdclass/lprocfs_status_server.c`; samples in `tests/fixtures/derived/recovery-status-*.txt`):
//!
//! | status | fields that follow |
//! |---|---|
//! | `INACTIVE` | none: no client to recover (a first start) |
//! | `WAITING_FOR_CLIENTS` | none: the window has not started, no client has connected yet |
//! | `WAITING` | `non-ready MDTs:`, `recovery_start:`, `time_waited:` (DNE: waiting for other MDTs) |
//! | `RECOVERING` | `recovery_start`, `time_remaining`, `connected_clients: n/m`, `req_replay_clients`, `lock_repay_clients` (sic), `completed_clients: n`, `evicted_clients`, `replayed_requests`, `queued_requests`, `next_transno` |
//! | `COMPLETE` | `recovery_start`, `recovery_duration`, `completed_clients: n/m`, `replayed_requests`, `last_transno`, `VBR:`, `IR: ENABLED\|DISABLED` |
//!
//! Recovery is over at `COMPLETE` or `INACTIVE` (Lustre's own test-framework waits for the same two).
//! The MGS has no recovery window of its own (clients fetch the configuration again), and a plain ZFS dataset
//! (`fstype = "zfs"`) is no Lustre target: neither is followed ([`recovery_param`] says why).

use crate::config::{TargetConfig, TargetKind};

/// The `status:` line of `recovery_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryState {
    Inactive,
    WaitingForClients,
    Waiting,
    Recovering,
    Complete,
}

impl RecoveryState {
    /// The recovery is over: the target serves new requests.
    pub fn is_over(self) -> bool {
        matches!(self, RecoveryState::Complete | RecoveryState::Inactive)
    }

    /// As Lustre prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryState::Inactive => "INACTIVE",
            RecoveryState::WaitingForClients => "WAITING_FOR_CLIENTS",
            RecoveryState::Waiting => "WAITING",
            RecoveryState::Recovering => "RECOVERING",
            RecoveryState::Complete => "COMPLETE",
        }
    }
}

/// One read of `recovery_status`. Fields a status does not print are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryStatus {
    pub state: Option<RecoveryState>,
    /// Unix time the window opened.
    pub recovery_start: Option<u64>,
    /// Seconds left in the soft window (RECOVERING).
    pub time_remaining: Option<u64>,
    /// Clients reconnected so far (RECOVERING), and the clients the target knew (RECOVERING and COMPLETE).
    pub connected_clients: Option<u32>,
    pub total_clients: Option<u32>,
    /// Clients done replaying (RECOVERING: `completed_clients: n`; COMPLETE: the `n` of `n/m`).
    pub completed_clients: Option<u32>,
    pub evicted_clients: Option<u32>,
    /// Seconds the recovery took (COMPLETE).
    pub recovery_duration: Option<u64>,
    /// Seconds waited for other MDTs (WAITING).
    pub time_waited: Option<u64>,
    /// Imperative Recovery (COMPLETE prints `IR: ENABLED|DISABLED`).
    pub ir: Option<bool>,
}

impl RecoveryStatus {
    /// The state; a parsed status always has one.
    pub fn state(&self) -> RecoveryState {
        self.state.unwrap_or(RecoveryState::Inactive)
    }

    /// For `failoverd status`: `recovering 37/99 clients, 120 s left`.
    pub fn words(&self) -> String {
        match self.state() {
            RecoveryState::Recovering => {
                let clients = match (self.connected_clients, self.total_clients) {
                    (Some(c), Some(t)) => format!(" {c}/{t} clients"),
                    _ => String::new(),
                };
                let left = self.time_remaining.map(|s| format!(", {s} s left")).unwrap_or_default();
                format!("recovering{clients}{left}")
            }
            RecoveryState::WaitingForClients => "recovery waiting for the first client".into(),
            RecoveryState::Waiting => {
                format!("recovery waiting for other MDTs{}", self.time_waited.map(|s| format!(" ({s} s)")).unwrap_or_default())
            }
            RecoveryState::Complete => {
                let clients = match (self.completed_clients, self.total_clients) {
                    (Some(c), Some(t)) => format!(", {c}/{t} clients"),
                    _ => String::new(),
                };
                format!("recovery complete{}{clients}", self.recovery_duration.map(|s| format!(" in {s} s")).unwrap_or_default())
            }
            RecoveryState::Inactive => "no recovery (no client to recover)".into(),
        }
    }
}

/// Parse the output of `lctl get_param [-n] <type>.<target>.recovery_status`. A leading `name=` line (without
/// `-n`) is skipped; unknown lines are ignored (later Lustre releases add fields); a missing or unknown
/// `status:` is an error.
pub fn parse_recovery_status(text: &str) -> Result<RecoveryStatus, String> {
    let mut s = RecoveryStatus::default();
    let num = |v: &str| v.trim().parse::<u64>().ok();
    let pair = |v: &str| -> Option<(u32, u32)> {
        let (a, b) = v.trim().split_once('/')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "status" => {
                s.state = Some(match value {
                    "INACTIVE" => RecoveryState::Inactive,
                    "WAITING_FOR_CLIENTS" => RecoveryState::WaitingForClients,
                    "WAITING" => RecoveryState::Waiting,
                    "RECOVERING" => RecoveryState::Recovering,
                    "COMPLETE" => RecoveryState::Complete,
                    other => return Err(format!("unknown recovery status `{other}`")),
                })
            }
            "recovery_start" => s.recovery_start = num(value),
            "time_remaining" => s.time_remaining = num(value),
            "recovery_duration" => s.recovery_duration = num(value),
            "time_waited" => s.time_waited = num(value),
            "evicted_clients" => s.evicted_clients = num(value).map(|n| n as u32),
            "connected_clients" => {
                if let Some((c, t)) = pair(value) {
                    s.connected_clients = Some(c);
                    s.total_clients = Some(t);
                }
            }
            "completed_clients" => match pair(value) {
                Some((c, t)) => {
                    s.completed_clients = Some(c);
                    s.total_clients = Some(t);
                }
                None => s.completed_clients = num(value).map(|n| n as u32),
            },
            "IR" => s.ir = Some(value == "ENABLED"),
            _ => {}
        }
    }
    if s.state.is_none() {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("(empty)");
        return Err(format!("no `status:` line (first line: `{first}`)"));
    }
    Ok(s)
}

/// Why a target's recovery is not followed, or the parameter to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryParam {
    /// `mdt.<device>.recovery_status` or `obdfilter.<device>.recovery_status`.
    Param(String),
    /// No recovery to follow, and why (said in `status` and the log).
    None(&'static str),
}

/// The `recovery_status` parameter of a target, from its `lctl_device` (`<fsname>-MDT<index>` → `mdt.`,
/// `<fsname>-OST<index>` → `obdfilter.`).
pub fn recovery_param(target: &TargetConfig) -> RecoveryParam {
    if let TargetKind::ZfsDataset { .. } = target.kind {
        return RecoveryParam::None("plain ZFS dataset (fstype = \"zfs\"): no Lustre recovery");
    }
    let dev = target.lctl_device.as_str();
    let kind = |tag: &str| {
        dev.rfind(tag).is_some_and(|i| {
            let index = &dev[i + tag.len()..];
            i > 0 && index.len() == 4 && index.chars().all(|c| c.is_ascii_hexdigit())
        })
    };
    if kind("-MDT") {
        RecoveryParam::Param(format!("mdt.{dev}.recovery_status"))
    } else if kind("-OST") {
        RecoveryParam::Param(format!("obdfilter.{dev}.recovery_status"))
    } else if dev == "MGS" || dev.ends_with("-MGS") {
        RecoveryParam::None("MGS: no client recovery window")
    } else {
        RecoveryParam::None("lctl_device is neither <fsname>-MDTxxxx nor <fsname>-OSTxxxx: recovery not followed")
    }
}

/// The argv that reads a target's recovery status.
pub fn recovery_argv(param: &str) -> Vec<String> {
    vec!["lctl".into(), "get_param".into(), "-n".into(), param.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/derived/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines().filter(|l| !l.starts_with("### ")).map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn recovering_reads_clients_and_time_left() {
        let s = parse_recovery_status(&fixture("recovery-status-recovering.txt")).unwrap();
        assert_eq!(s.state(), RecoveryState::Recovering);
        assert_eq!((s.connected_clients, s.total_clients, s.completed_clients), (Some(37), Some(99), Some(35)));
        assert_eq!((s.time_remaining, s.recovery_start, s.evicted_clients), (Some(120), Some(1_765_054_800), Some(0)));
        assert!(!s.state().is_over());
        assert_eq!(s.words(), "recovering 37/99 clients, 120 s left");
    }

    #[test]
    fn complete_reads_duration_clients_and_ir() {
        let s = parse_recovery_status(&fixture("recovery-status-complete.txt")).unwrap();
        assert_eq!(s.state(), RecoveryState::Complete);
        assert_eq!((s.recovery_duration, s.completed_clients, s.total_clients, s.ir), (Some(67), Some(99), Some(99), Some(false)));
        assert!(s.state().is_over());
        assert_eq!(s.words(), "recovery complete in 67 s, 99/99 clients");
    }

    #[test]
    fn inactive_waiting_and_a_named_value_parse() {
        let s = parse_recovery_status(&fixture("recovery-status-inactive.txt")).unwrap();
        assert!(s.state().is_over() && s.total_clients.is_none());
        let s = parse_recovery_status(&fixture("recovery-status-waiting-for-clients.txt")).unwrap();
        assert_eq!(s.state(), RecoveryState::WaitingForClients);
        let s = parse_recovery_status(&fixture("recovery-status-waiting-dne.txt")).unwrap();
        assert_eq!((s.state(), s.time_waited), (RecoveryState::Waiting, Some(31)));
        let s = parse_recovery_status(&fixture("recovery-status-with-name.txt")).unwrap();
        assert_eq!((s.state(), s.connected_clients, s.total_clients, s.time_remaining), (RecoveryState::Recovering, Some(3), Some(4), Some(253)));
    }

    #[test]
    fn garbage_and_unknown_states_are_errors() {
        assert!(parse_recovery_status("").unwrap_err().contains("no `status:`"));
        assert!(parse_recovery_status("error: get_param: param_path 'mdt/x/recovery_status': No such file or directory\n").is_err());
        assert!(parse_recovery_status("status: SOMETHING_NEW\n").unwrap_err().contains("SOMETHING_NEW"));
    }

    #[test]
    fn the_parameter_follows_the_device_name() {
        let mut t = crate::engine::test_support::target("lustre-MDT0000", "mdt0pool", "mdt0", 1, "lustre-MDT0000");
        assert_eq!(recovery_param(&t), RecoveryParam::Param("mdt.lustre-MDT0000.recovery_status".into()));
        t.lctl_device = "fs00-OST001f".into();
        assert_eq!(recovery_param(&t), RecoveryParam::Param("obdfilter.fs00-OST001f.recovery_status".into()));
        t.lctl_device = "MGS".into();
        assert!(matches!(recovery_param(&t), RecoveryParam::None(why) if why.contains("MGS")));
        t.lctl_device = "something".into();
        assert!(matches!(recovery_param(&t), RecoveryParam::None(_)));
        t.kind = TargetKind::ZfsDataset { pool: "tank".into(), dataset: "tank/data".into() };
        assert!(matches!(recovery_param(&t), RecoveryParam::None(why) if why.contains("ZFS dataset")));
    }
}
