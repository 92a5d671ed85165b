//! Why the engine refused an operator's request: a typed error the control socket sends as JSON
//! (`{"ok": false, "error": "<text>", "kind": "<snake_case>", ...fields}`) and the CLI matches to choose its exit
//! status, so a script can tell "ask again later" from "this can never work".

use std::fmt;

use serde::{Deserialize, Serialize};

/// A refused admin request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdminError {
    /// No node of that name in the configuration.
    UnknownNode { node: String },
    /// No target of that name in the configuration.
    UnknownTarget { target: String },
    /// `node` is not in the target's `nodes` list.
    NotACandidate { target: String, node: String, nodes: Vec<String> },
    /// Nothing may be done now: no quorum, maintenance (the reason says which).
    NotNow { reason: String },
    /// `node` cannot take `target` now (not alive, not ready, leaving, fenced or in standby).
    CannotTakeNow { target: String, node: String },
    /// The target runs nowhere (its state says why).
    NotRunning { target: String, state: String },
    /// The target already runs on the node asked for.
    AlreadyThere { target: String, node: String },
    /// The target is busy (starting, stopping, moving) here.
    Busy { target: String, state: String },
    /// A node cannot fence itself, nor confirm itself fenced.
    OnItself { what: String },
    /// `node` is heard alive here: refusing to record it as off.
    PeerAlive { node: String },
    /// `node` has manual fencing (no device): an operator powers it off, then confirms.
    ManualFencing { node: String },
    /// Every fence level failed.
    FenceFailed { errors: Vec<String> },
    /// The fence job was cancelled (by an operator, or because the node was heard again).
    FenceCancelled { reason: String },
    /// No fence of `node` runs on this node.
    NoFenceInProgress { node: String },
    /// Anything else the engine refused, in words.
    Refused { reason: String },
}

impl AdminError {
    /// True when the same request may succeed later without changing it (quorum back, a move finished):
    /// the CLI exits with 3 for these, 1 for the rest (and clap's 2 for a malformed command line).
    pub fn retry_later(&self) -> bool {
        matches!(self, AdminError::NotNow { .. } | AdminError::CannotTakeNow { .. } | AdminError::Busy { .. })
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::UnknownNode { node } => write!(f, "unknown node {node}"),
            AdminError::UnknownTarget { target } => write!(f, "unknown target {target}"),
            AdminError::NotACandidate { target, node, nodes } => {
                write!(f, "{node} is not in target {target}'s nodes ({})", nodes.join(", "))
            }
            AdminError::NotNow { reason } => write!(f, "no action allowed now: {reason}"),
            AdminError::CannotTakeNow { target, node } => {
                write!(f, "{node} cannot take {target} now (not alive, not ready, leaving, fenced or in standby)")
            }
            AdminError::NotRunning { target, state } => write!(f, "{target} is not running anywhere ({state})"),
            AdminError::AlreadyThere { target, node } => write!(f, "{target} already runs on {node}"),
            AdminError::Busy { target, state } => write!(f, "{target} is {state} here; try again when it is running"),
            AdminError::OnItself { what } => write!(f, "{what}"),
            AdminError::PeerAlive { node } => {
                write!(f, "{node} is alive in this node's view (heartbeats arrive): refusing to record it as off")
            }
            AdminError::ManualFencing { node } => {
                write!(f, "{node} has manual fencing: power it off, then run `failoverd confirm-fenced {node}`")
            }
            AdminError::FenceFailed { errors } => write!(f, "every fence level failed: {}", errors.join("; ")),
            AdminError::FenceCancelled { reason } => write!(f, "fence cancelled: {reason}"),
            AdminError::NoFenceInProgress { node } => {
                write!(f, "no fence of {node} is in progress on this node (see `failoverd status`)")
            }
            AdminError::Refused { reason } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for AdminError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_names_the_kind_and_keeps_the_fields() {
        let e = AdminError::NotACandidate { target: "MGT".into(), node: "oss1".into(), nodes: vec!["mds1".into(), "mds2".into()] };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "not_a_candidate");
        assert_eq!(v["nodes"][1], "mds2");
        assert_eq!(serde_json::from_value::<AdminError>(v).unwrap(), e);
        assert_eq!(e.to_string(), "oss1 is not in target MGT's nodes (mds1, mds2)");
        assert!(AdminError::NotNow { reason: "no quorum".into() }.retry_later());
        assert!(!AdminError::UnknownTarget { target: "x".into() }.retry_later());
    }
}
