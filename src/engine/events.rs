//! What the engine reports: every state change as an [`Event`], so the daemon can log it, run the operator's
//! `notify` program, count it in metrics, and the simulator can measure detection and failover times.

use serde::{Deserialize, Serialize};

use crate::fence::FenceAction;
use crate::storage::SequenceKind;

/// How loudly an event should be reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Info,
    Warning,
    /// Needs a human: fencing failed, a takeover was aborted, a node asks to be fenced...
    Alert,
}

/// Why a node is being fenced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FenceReason {
    /// Silent on every link for `dead_after`.
    PeerDead,
    /// The node itself asked to be fenced (it could not release a target cleanly).
    PeerAsked,
    /// An operator ran `failoverd fence`.
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
    AllNodesSeen,
    /// This process stalled (a tick served `late_ms` late): nobody is convicted on it; detection re-armed.
    LocalStall { late_ms: u64 },
    ConfigMismatch { node: String, targets: Vec<String> },
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
    /// A node confirmed off was heard again in the same incarnation: the fence device lied.
    FenceLied { node: String },
    StepStarted { target: String, sequence: SequenceKind, step: String, command: String },
    StepDone { target: String, sequence: SequenceKind, step: String, ms: u64 },
    SequenceStarted { target: String, sequence: SequenceKind, from: Option<String> },
    SequenceDone { target: String, sequence: SequenceKind, ms: u64 },
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
}

impl Event {
    pub fn severity(&self) -> Severity {
        use Event::*;
        match self {
            PeerDead { .. } | QuorumLost { .. } | FenceFailed { .. } | FenceNeedsOperator { .. } | FenceLied { .. }
            | SequenceFailed { .. } | TargetBlocked { .. } | AskingToBeFenced { .. } | ConfigMismatch { .. }
            | TargetHasNoNode { .. } | OrphansStuck { .. } | WaitForAllStuck { .. } => {
                Severity::Alert
            }
            LinkDown { .. } | HeartbeatRejected { .. } | LocalStall { .. } | FenceLevelFailed { .. }
            | MonitorFailed { .. } | FenceStarted { .. } | FenceDelayed { .. } | TargetMoving { .. } | Standby { .. }
            | PoolRemark { .. } => {
                Severity::Warning
            }
            _ => Severity::Info,
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
