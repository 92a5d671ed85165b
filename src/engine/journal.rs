//! What the engine persists in `state_dir` so a restart is safe: cluster maintenance, fence confirmations and
//! the operations in progress. Discovery of what is really imported/mounted always has the last word.

use serde::{Deserialize, Serialize};

use crate::storage::SequenceKind;
use crate::time::Time;

use super::Engine;

/// A node confirmed off (by a fence device or an operator), and in which incarnation it was last heard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedRecord {
    pub node: String,
    pub at: Time,
    /// The victim's incarnation when it was fenced: hearing it again in the same one means the fence lied.
    pub incarnation: Option<u64>,
    pub by_operator: bool,
    /// The fence level (1-based) whose devices confirmed it off; 0 for an operator's confirmation (and in
    /// journals written before levels were recorded).
    #[serde(default)]
    pub level: u8,
    /// The peer whose confirmation this node took as its own (`fence_confirmed_by_peer`); None: this node
    /// confirmed it itself. Only a node's own confirmations are shared in its heartbeats.
    #[serde(default)]
    pub from_peer: Option<String>,
    /// Restored from the journal in this run: shared with peers only once a fresh status read found it off.
    #[serde(skip)]
    pub restored: bool,
}

/// A storage sequence that was running when the journal was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalOp {
    pub target: String,
    pub sequence: SequenceKind,
    pub to: Option<String>,
    pub from: Option<String>,
}

/// The operations journal (written atomically by the driver: temp file, fsync, rename).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub node: String,
    pub incarnation: u64,
    pub maintenance_epoch: u64,
    pub maintenance: bool,
    /// Version of the standby set (absent in journals written before standby existed).
    #[serde(default)]
    pub standby_epoch: u64,
    /// Nodes in standby.
    #[serde(default)]
    pub standby: Vec<String>,
    pub fenced: Vec<FencedRecord>,
    pub operations: Vec<JournalOp>,
    pub asking_to_be_fenced: Option<String>,
}

impl Engine {
    pub(crate) fn journal(&self) -> Journal {
        Journal {
            node: self.me.name.clone(),
            incarnation: self.incarnation,
            maintenance_epoch: self.maintenance.0,
            maintenance: self.maintenance.1,
            standby_epoch: self.standby.0,
            standby: self.standby.1.iter().cloned().collect(),
            fenced: self.fenced.values().cloned().collect(),
            operations: self.targets.values().filter_map(|s| s.journal_op()).collect(),
            asking_to_be_fenced: self.fence_me.clone(),
        }
    }

    /// Take over what a previous run persisted. In-flight operations are not resumed: startup discovery
    /// finds what is really imported and mounted, and a half-held target is released cleanly.
    pub(crate) fn restore(&mut self, j: Journal, now: Time) {
        self.maintenance = (j.maintenance_epoch, j.maintenance);
        self.standby = (j.standby_epoch, j.standby.into_iter().filter(|n| self.cfg.node(n).is_some()).collect());
        for mut r in j.fenced {
            if self.cfg.node(&r.node).is_some() {
                // times of the previous run are in its own time base: count from this start
                r.at = now;
                r.restored = true;
                // a status read confirms the node is still off before it counts as seen (wait_for_all)
                self.recheck_power.insert(r.node.clone(), now);
                self.fenced.restored_from_journal(r);
            }
        }
    }
}
