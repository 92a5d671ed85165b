//! What the engine reports: every state change as an [`Event`], so the daemon can log it, run the operator's
//! `notify` program, count it in metrics, and the simulator can measure detection and failover times.

use serde::{Deserialize, Serialize};

use crate::fence::FenceAction;
use crate::storage::SequenceKind;

/// How loudly an event should be reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[serde(alias = "Info")]
    Info,
    #[serde(alias = "Warning")]
    Warning,
    /// Needs a human: fencing failed, a takeover was aborted, a node asks to be fenced...
    #[serde(alias = "Alert")]
    Alert,
}

impl Severity {
    /// `info`, `warning`, `alert`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Alert => "alert",
        }
    }
}

/// Why a node is being fenced. In JSON: `peer_dead`, `peer_asked`, `operator`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceReason {
    /// Silent on every link for `dead_after`.
    #[serde(alias = "PeerDead")]
    PeerDead,
    /// The node itself asked to be fenced (it could not release a target cleanly).
    #[serde(alias = "PeerAsked")]
    PeerAsked,
    /// An operator ran `failoverd fence`.
    #[serde(alias = "Operator")]
    Operator,
    /// After a restart: a fence confirmation from the journal is checked with a status read (no power change).
    Recheck,
}

impl FenceReason {
    /// Fencing for this reason needs quorum (an operator's request and a status read do not).
    pub fn needs_quorum(&self) -> bool {
        matches!(self, FenceReason::PeerDead | FenceReason::PeerAsked)
    }
}

impl FenceReason {
    /// `peer_dead`, `peer_asked`, `operator`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FenceReason::PeerDead => "peer_dead",
            FenceReason::PeerAsked => "peer_asked",
            FenceReason::Operator => "operator",
            FenceReason::Recheck => "recheck",
        }
    }

    /// In words, for status and messages.
    pub fn words(&self) -> &'static str {
        match self {
            FenceReason::PeerDead => "silent on every link",
            FenceReason::PeerAsked => "it asked to be fenced",
            FenceReason::Operator => "an operator asked",
            FenceReason::Recheck => "its power is read again after a restart",
        }
    }
}

/// One cluster-wide setting on which a peer's configuration differs from this node's: its key (as
/// `failoverd check-config` names it: `cluster.dead_after`, `node[mds1].fence_levels`, `target[MGT].mountpoint`)
/// and both values (`None`: not set there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDiff {
    pub key: String,
    pub here: Option<String>,
    pub there: Option<String>,
}

impl KeyDiff {
    /// The target this key belongs to, if it is part of a target's definition.
    pub fn target(&self) -> Option<&str> {
        self.key.strip_prefix("target[").and_then(|rest| rest.split_once(']')).map(|(name, _)| name)
    }

    /// `cluster.dead_after: 3s here, 5s on mds2`.
    pub fn describe(&self, node: &str) -> String {
        let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "not set".into());
        format!("{}: {} here, {} on {node}", self.key, v(&self.here), v(&self.there))
    }
}

/// Something that happened inside the engine. Serialized as JSON for `notify` programs and logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PeerAlive { node: String },
    PeerDead { node: String, silent_ms: u64 },
    PeerRestarted { node: String, incarnation: u64 },
    LinkDown { node: String, link: usize },
    LinkUp { node: String, link: usize },
    HeartbeatRejected { node: String, link: usize, reason: String },
    QuorumGained { votes: u32, total: u32 },
    QuorumLost { reason: String },
    /// No reply from the `[witness]` at `address` for `silent_ms` (at least `dead_after`): quorum rests on the
    /// nodes' votes alone, so a node failure or a partition from now on may leave no side able to act.
    WitnessLost { address: String, silent_ms: u64 },
    /// The witness at `address` answers again.
    WitnessBack { address: String },
    AllNodesSeen,
    /// This process stalled (a tick served `late_ms` late): nobody is convicted on it; detection re-armed.
    LocalStall { late_ms: u64 },
    /// `node`'s configuration digest differs from this node's. `keys`: every differing setting with both
    /// values (`keys_known` false while the peer sent no summary); `targets` whose definitions differ are not
    /// taken over automatically; `blocks_fencing`: a cluster-wide setting differs (or which one is not known),
    /// so `node` is not fenced automatically either.
    ConfigMismatch { node: String, targets: Vec<String>, keys: Vec<KeyDiff>, keys_known: bool, blocks_fencing: bool },
    ConfigAgreed { node: String },
    FenceDelayed { node: String, delay_ms: u64 },
    FenceStarted { node: String, reason: FenceReason, action: FenceAction, attempt: u32 },
    FenceLevelFailed { node: String, level: usize, error: String },
    FenceConfirmed { node: String, level: usize, devices: Vec<String>, action: FenceAction },
    FenceStatus { node: String, power: String },
    FenceFailed { node: String, attempt: u32, retry_in_ms: u64, errors: Vec<String> },
    FenceNeedsOperator { node: String },
    FenceCancelled { node: String, reason: String },
    FenceConfirmedByOperator { node: String },
    /// `peer` confirmed `node` off (by fence `level`'s `devices`, or an operator there when `level` is 0) and
    /// shared it; this node took the confirmation as its own, so it may take over what `node` held.
    FenceConfirmedByPeer { node: String, peer: String, level: usize, devices: Vec<String> },
    /// A node confirmed off was heard again in the same incarnation: the fence device lied.
    FenceLied { node: String },
    StepStarted {
        target: String,
        sequence: SequenceKind,
        #[serde(with = "crate::storage::step_name")]
        step: crate::storage::Step,
        command: String,
    },
    StepDone {
        target: String,
        sequence: SequenceKind,
        #[serde(with = "crate::storage::step_name")]
        step: crate::storage::Step,
        ms: u64,
    },
    SequenceStarted { target: String, sequence: SequenceKind, from: Option<String> },
    SequenceDone { target: String, sequence: SequenceKind, ms: u64 },
    /// The label of `target`'s pool is checked; its forced import waits until the forced imports of
    /// `waiting_for` end on this node (OpenZFS runs one MMP activity check at a time per kernel).
    ImportWaiting { target: String, waiting_for: Vec<String> },
    /// The pool of `target` is imported and checked; its mount waits until `waiting_for` (lower start_order
    /// targets of this node) are verified here.
    MountWaiting { target: String, waiting_for: Vec<String> },
    /// A Lustre target verified here is in its recovery window (`recovery_status` RECOVERING, WAITING or
    /// WAITING_FOR_CLIENTS): clients reconnect and replay; new requests wait.
    TargetRecovering {
        target: String,
        status: String,
        connected_clients: Option<u32>,
        total_clients: Option<u32>,
        time_remaining_s: Option<u64>,
    },
    /// The recovery of a target verified here is over, or no longer followed: `outcome` is `complete`,
    /// `inactive` (no client to recover), `budget_exceeded` (still recovering after `recovery_budget`) or
    /// `unreadable` (`recovery_status` could not be read). `followed_ms` is from the target's verification.
    TargetRecovered {
        target: String,
        outcome: String,
        followed_ms: u64,
        recovery_duration_s: Option<u64>,
        completed_clients: Option<u32>,
        total_clients: Option<u32>,
        evicted_clients: Option<u32>,
        ir: Option<bool>,
        error: Option<String>,
    },
    SequenceFailed { target: String, sequence: SequenceKind, error: String },
    TargetBlocked { target: String, reason: String },
    TargetDiscovered { target: String, state: String },
    MonitorFailed { target: String, failures: u32, error: String },
    MonitorRecovered { target: String },
    TargetMoving { target: String, to: String, reason: String },
    AskingToBeFenced { reason: String },
    Maintenance { on: bool },
    /// `node` entered (`on`) or left standby.
    Standby { node: String, on: bool },
    /// A target runs nowhere and no node may start it now (its other nodes are in standby, leaving or down):
    /// an operator must act (`failoverd unstandby NODE`).
    TargetHasNoNode { target: String, reason: String },
    WaitForAllOverridden,
    /// Commands of this node's previous run did not die when killed (a process stuck in the kernel). This
    /// node does not look at the storage, claims nothing and keeps its peers from starting what it may hold
    /// until they end; if they never do, power-cycle this node (`failoverd fence NODE --action reboot` from a
    /// peer).
    OrphansStuck { commands: Vec<String> },
    /// `zpool status -x` printed more than "healthy" for a pool that serves data (DEGRADED, or ONLINE with a
    /// `status:` line such as a non-native block size): the target runs; an operator should read `zpool status`.
    PoolRemark { target: String, pool: String, state: String, status: Option<String> },
    /// After a restart, a fence confirmation from the journal was checked against the node's power: `power`
    /// as a fresh status read gave it (`off`, `on`, `unknown`).
    FencePowerChecked { node: String, power: String },
    /// wait_for_all holds this node without quorum after a restart because `missing` were never seen and
    /// could not be confirmed off by a fresh status read: `command` is what an operator may run once sure.
    WaitForAllStuck { missing: Vec<String>, reason: String, command: String },
    /// Two daemons claim `node` at once (heartbeats of two live incarnations interleave): nobody is convicted
    /// or fenced over it; an operator must stop the one that should not run.
    NodeConflict { node: String, incarnations: Vec<u64> },
    /// Only one incarnation of `node` is heard again: `incarnation`.
    NodeConflictEnded { node: String, incarnation: u64 },
    /// `node` stopped gracefully (its last heartbeat said it was leaving): not a failure.
    PeerLeft { node: String },
    /// `node` needs fencing (silent, or it asked) but is not fenced automatically: `reason` (its configuration
    /// differs in a setting that fencing depends on). Its targets stay where they are until an operator acts.
    FenceBlocked { node: String, reason: String },
    /// This node's disk heartbeat writes to `device` failed or hung for `dead_after` (`error`): it fences
    /// nobody until they work again.
    DiskHeartbeatFailed { device: String, error: String },
    /// This node's disk heartbeat writes to `device` succeed again.
    DiskHeartbeatRestored { device: String },
    /// `node` is silent on every network link but its disk heartbeat slot still advances: it is alive, so it
    /// is not fenced and nothing moves; the network between the nodes needs checking.
    PeerAliveOnDiskOnly { node: String, device: String },
    /// `node`'s disk heartbeat slot has not advanced for `silent_ms` while this node's own writes succeed
    /// (while `node` is heard on the network: its path to the device may have failed).
    PeerDiskSilent { node: String, device: String, silent_ms: u64, error: Option<String> },
    /// `node` is silent on every link and its slot does not advance, but this node's own disk heartbeat
    /// writes fail: this node cannot tell a crash from its own fault, so it does not fence `node`.
    FenceHeldDiskFailing { node: String, device: String },
}

impl Event {
    pub fn severity(&self) -> Severity {
        use Event::*;
        match self {
            PeerDead { .. } | QuorumLost { .. } | FenceFailed { .. } | FenceNeedsOperator { .. } | FenceLied { .. }
            | SequenceFailed { .. } | TargetBlocked { .. } | AskingToBeFenced { .. } | ConfigMismatch { .. }
            | TargetHasNoNode { .. } | OrphansStuck { .. } | WaitForAllStuck { .. } | NodeConflict { .. }
            | FenceBlocked { .. } | DiskHeartbeatFailed { .. } | PeerAliveOnDiskOnly { .. } | FenceHeldDiskFailing { .. } => {
                Severity::Alert
            }
            LinkDown { .. } | HeartbeatRejected { .. } | LocalStall { .. } | FenceLevelFailed { .. }
            | MonitorFailed { .. } | FenceStarted { .. } | FenceDelayed { .. } | TargetMoving { .. } | Standby { .. }
            | PoolRemark { .. } | PeerDiskSilent { .. } | WitnessLost { .. } => {
                Severity::Warning
            }
            TargetRecovered { outcome, .. } if outcome != "complete" && outcome != "inactive" => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// Does the event go to the `notify` program? Every lifecycle event does, recoveries included
    /// (`peer_alive`, `fence_confirmed`, `sequence_done`, `quorum_gained`...); only the steps of a sequence
    /// (`step_started`, `step_done`: progress, several per takeover) and routine health checks do not.
    pub fn notifiable(&self) -> bool {
        use crate::storage::SequenceKind;
        !matches!(
            self,
            Event::StepStarted { .. }
                | Event::StepDone { .. }
                | Event::SequenceStarted { sequence: SequenceKind::Monitor, .. }
                | Event::SequenceDone { sequence: SequenceKind::Monitor, .. }
        )
    }

    /// Does the event belong in the history of fences and takeovers (`failoverd history`)?
    pub fn historic(&self) -> bool {
        use crate::storage::SequenceKind;
        use Event::*;
        match self {
            FenceDelayed { .. } | FenceStarted { .. } | FenceLevelFailed { .. } | FenceConfirmed { .. } | FenceStatus { .. }
            | FenceFailed { .. } | FenceNeedsOperator { .. } | FenceCancelled { .. } | FenceConfirmedByOperator { .. } | FenceConfirmedByPeer { .. }
            | FenceLied { .. } | TargetBlocked { .. } | TargetMoving { .. } | AskingToBeFenced { .. } | NodeConflict { .. }
            | PeerDead { .. } | PeerLeft { .. } | Standby { .. } | Maintenance { .. } | FenceBlocked { .. }
            | FenceHeldDiskFailing { .. } => true,
            SequenceStarted { sequence, .. } | SequenceDone { sequence, .. } | SequenceFailed { sequence, .. } => {
                *sequence != SequenceKind::Monitor
            }
            _ => false,
        }
    }

    /// One line for a human (notify's `message`, `failoverd status`).
    pub fn message(&self) -> String {
        use Event::*;
        let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        match self {
            PeerAlive { node } => format!("{node} is alive (heartbeats received)"),
            PeerDead { node, silent_ms } => format!("{node} is DEAD: silent on every link for {}", secs(*silent_ms)),
            PeerLeft { node } => format!("{node} left the cluster (graceful stop)"),
            PeerRestarted { node, incarnation } => format!("{node} restarted (incarnation {incarnation})"),
            LinkDown { node, link } => format!("link {link} to {node} is down"),
            LinkUp { node, link } => format!("link {link} to {node} is up"),
            HeartbeatRejected { node, link, reason } => format!("a heartbeat claiming to be {node} on link {link} was rejected: {reason}"),
            QuorumGained { votes, total } => format!("quorum gained ({votes} of {total} votes)"),
            QuorumLost { reason } => format!("quorum LOST: {reason}; no automatic action until it is back"),
            WitnessLost { address, silent_ms } => format!(
                "the witness at {address} has not answered for {}: its vote is lost, and quorum now rests on the \
                 nodes' votes alone. If a node fails or the nodes are partitioned now, a side without enough votes \
                 fences nothing and takes nothing over. Check the `failoverd witness` process on that host and \
                 the path to it; `failoverd status` shows the votes",
                secs(*silent_ms)
            ),
            WitnessBack { address } => format!("the witness at {address} answers again"),
            AllNodesSeen => "every node has been seen since this daemon started".into(),
            LocalStall { late_ms } => format!("this daemon stalled for {} (VM pause, swap?): nobody is convicted on that gap", secs(*late_ms)),
            ConfigMismatch { node, targets, keys, keys_known, blocks_fencing } => {
                const SHOWN: usize = 6;
                let what = if !keys_known {
                    format!("{node} sent no summary, so which settings differ is not known")
                } else if keys.is_empty() {
                    "a setting not shown in clear differs (an agent's secret option?)".to_string()
                } else {
                    let mut list: Vec<String> = keys.iter().take(SHOWN).map(|k| k.describe(node)).collect();
                    if keys.len() > SHOWN {
                        list.push(format!("and {} more (failoverd status)", keys.len() - SHOWN));
                    }
                    list.join("; ")
                };
                let blocked = match (*blocks_fencing, targets.is_empty()) {
                    (true, _) => format!("no automatic fencing of {node} nor takeover from it"),
                    (false, false) => format!("no automatic takeover of {}", targets.join(", ")),
                    (false, true) => "nothing blocked".to_string(),
                };
                format!(
                    "{node}'s configuration differs from this node's: {what}; {blocked} until they agree: make the files \
                     agree (`failoverd check-config A B` names every difference) and restart the daemon whose file was wrong"
                )
            }
            ConfigAgreed { node } => format!("{node}'s configuration now agrees with this node's"),
            FenceDelayed { node, delay_ms } => format!("{node} will be fenced in {} unless it is heard again", secs(*delay_ms)),
            FenceStarted { node, reason, action, attempt } => {
                format!("fencing {node} (power {}, attempt {attempt}): {}", action.as_str(), reason.words())
            }
            FenceLevelFailed { node, level, error } => format!("fence level {level} of {node} failed: {error}"),
            FenceConfirmed { node, level, devices, action } => {
                format!("{node} is fenced: power {} confirmed by level {level} ({})", action.as_str(), devices.join(", "))
            }
            FenceStatus { node, power } => format!("{node}'s power reads {power}"),
            FenceFailed { node, attempt, retry_in_ms, .. } => {
                format!("fencing {node} FAILED on every level (attempt {attempt}); retrying in {}", secs(*retry_in_ms))
            }
            FenceNeedsOperator { node } => format!(
                "{node} must be fenced by hand: power it off, check it is off, then run `failoverd confirm-fenced {node}`"
            ),
            FenceCancelled { node, reason } => format!("fencing of {node} cancelled: {reason}"),
            FenceConfirmedByOperator { node } => format!("an operator confirmed that {node} is powered off"),
            FenceConfirmedByPeer { node, peer, level: 0, .. } => {
                format!("an operator on {peer} confirmed that {node} is powered off; this node takes the confirmation as its own")
            }
            FenceConfirmedByPeer { node, peer, level, devices } => format!(
                "{peer} fenced {node}: power off confirmed by level {level} ({}); this node takes the confirmation as its own",
                devices.join(", ")
            ),
            FenceLied { node } => format!(
                "{node} was confirmed off, yet it is alive (heard again in the same run, or still writing to a pool: \
                 MMP refused the import): its fence device LIED. Nothing of {node} is taken over and it is not \
                 fenced automatically again until it is heard alive. Check its power by hand (not through that \
                 device), power it off if it must go, then run `failoverd confirm-fenced {node}`"
            ),
            StepStarted { target, step, .. } => format!("{target}: {} started", step.name()),
            StepDone { target, step, ms, .. } => format!("{target}: {} done in {}", step.name(), secs(*ms)),
            SequenceStarted { target, sequence, from } => match (sequence, from) {
                (crate::storage::SequenceKind::Forced, Some(f)) => format!("{target}: taking over from {f} (fenced)"),
                (crate::storage::SequenceKind::Acquire, Some(f)) => format!("{target}: starting here (moved from {f})"),
                (crate::storage::SequenceKind::Acquire, None) => format!("{target}: starting here"),
                (crate::storage::SequenceKind::Release, _) => format!("{target}: stopping here (moving away)"),
                (k, _) => format!("{target}: {} started", k.as_str()),
            },
            SequenceDone { target, sequence, ms } => match sequence {
                crate::storage::SequenceKind::Forced => format!("{target}: takeover done, running and verified here ({})", secs(*ms)),
                crate::storage::SequenceKind::Acquire => format!("{target}: running and verified here ({})", secs(*ms)),
                crate::storage::SequenceKind::Release => format!("{target}: stopped and exported here ({})", secs(*ms)),
                crate::storage::SequenceKind::Monitor => format!("{target}: healthy"),
            },
            SequenceFailed { target, sequence, error } => format!("{target}: {} FAILED: {error}", sequence.as_str()),
            TargetRecovering { target, status, connected_clients, total_clients, time_remaining_s } => {
                let clients = match (connected_clients, total_clients) {
                    (Some(c), Some(t)) => format!(", {c}/{t} clients reconnected"),
                    _ => String::new(),
                };
                let left = time_remaining_s.map(|s| format!(", {s} s left in the window")).unwrap_or_default();
                format!("{target}: Lustre recovery under way ({status}{clients}{left}); clients are not served new requests yet")
            }
            TargetRecovered { target, outcome, followed_ms, recovery_duration_s, completed_clients, total_clients, evicted_clients, .. } => {
                let clients = match (completed_clients, total_clients) {
                    (Some(c), Some(t)) => format!(", {c}/{t} clients recovered"),
                    _ => String::new(),
                };
                let evicted = evicted_clients.filter(|e| *e > 0).map(|e| format!(", {e} evicted")).unwrap_or_default();
                let took = recovery_duration_s.map(|s| format!(" in {s} s")).unwrap_or_default();
                match outcome.as_str() {
                    "complete" => format!("{target}: Lustre recovery complete{took}{clients}{evicted}: service restored"),
                    "inactive" => format!("{target}: no Lustre recovery needed (no client to recover): service restored"),
                    "budget_exceeded" => format!("{target}: Lustre recovery still not over after {} (recovery_budget): no longer followed; check `lctl get_param *.*.recovery_status`", secs(*followed_ms)),
                    _ => format!("{target}: Lustre recovery status unreadable: no longer followed; see the log"),
                }
            }
            ImportWaiting { target, waiting_for } => {
                format!("{target}: label checked; the forced import waits for {} (OpenZFS runs one MMP activity check at a time)", waiting_for.join(", "))
            }
            MountWaiting { target, waiting_for } => {
                format!("{target}: pool imported and checked; the mount waits for {} (start_order)", waiting_for.join(", "))
            }
            TargetBlocked { target, reason } => format!("{target} is BLOCKED: {reason}"),
            TargetDiscovered { target, state } => format!("{target}: found {state} at start-up"),
            MonitorFailed { target, failures, error } => format!("{target}: health check failed ({failures} in a row): {error}"),
            MonitorRecovered { target } => format!("{target}: health check passes again"),
            TargetMoving { target, to, reason } => format!("{target}: moving to {to} ({reason})"),
            AskingToBeFenced { reason } => format!("this node asks to be fenced: {reason}"),
            Maintenance { on: true } => "maintenance ON: no automatic action anywhere in the cluster".into(),
            Maintenance { on: false } => "maintenance off: automatic actions resume".into(),
            Standby { node, on: true } => format!("{node} is in standby: its targets move away and it takes none"),
            Standby { node, on: false } => format!("{node} is out of standby"),
            TargetHasNoNode { target, reason } => format!("{target} can run nowhere now: {reason}"),
            WaitForAllOverridden => "an operator overrode wait_for_all".into(),
            OrphansStuck { commands } => format!(
                "commands of this node's previous run did not die ({}): not looking at the storage until they end; if they never do, power-cycle this node from a peer (failoverd fence NODE --action reboot)",
                commands.join("; ")
            ),
            PoolRemark { target, pool, state, status } => match status {
                Some(st) => format!("{target}: pool {pool} is {state} and serving: {st} (read `zpool status {pool}`)"),
                None => format!("{target}: pool {pool} is {state} and serving (read `zpool status {pool}`)"),
            },
            FencePowerChecked { node, power } => format!("{node}, fenced before this node restarted, reads power {power}"),
            WaitForAllStuck { missing, reason, command } => {
                format!("no quorum: waiting for {} ({reason}); once you are sure they are off, run `{command}`", missing.join(", "))
            }
            NodeConflict { node, incarnations } => format!(
                "two daemons claim to be {node} (incarnations {}): nobody is fenced over it; stop the one that should not run",
                incarnations.iter().map(u64::to_string).collect::<Vec<_>>().join(" and ")
            ),
            NodeConflictEnded { node, incarnation } => format!("only one daemon of {node} is heard again (incarnation {incarnation})"),
            FenceBlocked { node, reason } => format!(
                "{node} needs fencing but is NOT fenced automatically: {reason}; its targets stay where they are. Make the \
                 files agree (`failoverd check-config A B`) and restart the daemon whose file was wrong, or act by hand: \
                 `failoverd fence {node}` (its targets are then taken over), or power it off yourself and run \
                 `failoverd confirm-fenced {node}`"
            ),
            DiskHeartbeatFailed { device, error } => format!(
                "disk heartbeat writes to {device} FAIL ({error}): this node fences nobody until they work again; check \
                 its path to the device (`multipath -ll`, `dmesg`, `failoverd doctor`)"
            ),
            DiskHeartbeatRestored { device } => format!("disk heartbeat writes to {device} succeed again"),
            PeerAliveOnDiskOnly { node, device } => format!(
                "{node} is silent on every network link but its disk heartbeat slot on {device} advances: it is ALIVE, \
                 so it is not fenced and nothing moves; check the heartbeat links between the nodes (`failoverd \
                 status`, `ip link`, switches)"
            ),
            PeerDiskSilent { node, device, silent_ms, error } => format!(
                "{node}'s disk heartbeat slot on {device} has not advanced for {}{}; check {node}'s path to the device \
                 (`failoverd status` there, `multipath -ll`)",
                secs(*silent_ms),
                error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
            FenceHeldDiskFailing { node, device } => format!(
                "{node} is silent on every link, but this node's own disk heartbeat writes to {device} fail, so it \
                 cannot tell a crash of {node} from its own fault: {node} is NOT fenced from here. Repair this node's \
                 path to the device, or act by hand: `failoverd fence {node}`"
            ),
        }
    }

    /// The event's name as in its JSON form (`peer_dead`, ...).
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_default()
    }
}
