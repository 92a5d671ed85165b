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
    /// The host's boot when the journal was written (the driver stamps it: `/proc/sys/kernel/random/boot_id`
    /// in the daemon); absent in journals of older releases.
    #[serde(default)]
    pub boot_id: Option<String>,
}

impl Journal {
    /// The journal as a daemon of host boot `boot` may restore it: fence confirmations written in another boot
    /// of this host (or in an unknown one) are dropped, and their nodes returned. This host went down after it
    /// confirmed them, and its peer may be what powered it off, which would mean the confirmation was wrong (a
    /// fence device that lied; swarm seed 363414: the restored record, confirmed again by the same lying power
    /// read, let a forced takeover import a pool its peer was importing). A node so dropped must be heard, or
    /// fenced afresh once quorate; wait_for_all says so (`wait_for_all_stuck` names the override). A daemon
    /// restarted within one boot keeps its confirmations. With `boot` unknown (`None`) nothing is dropped.
    pub fn for_boot(mut self, boot: Option<&str>) -> (Journal, Vec<String>) {
        let Some(boot) = boot else { return (self, vec![]) };
        if self.boot_id.as_deref() == Some(boot) {
            return (self, vec![]);
        }
        let dropped = std::mem::take(&mut self.fenced).into_iter().map(|r| r.node).collect();
        (self, dropped)
    }
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
            boot_id: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_of_boot(boot: Option<&str>) -> Journal {
        let record = FencedRecord { node: "mds1".into(), at: Time::ZERO, incarnation: Some(3), by_operator: false, level: 1, from_peer: None, restored: false };
        Journal { node: "mds2".into(), incarnation: 4, maintenance: true, fenced: vec![record], boot_id: boot.map(str::to_string), ..Journal::default() }
    }

    #[test]
    fn fence_confirmations_of_another_or_an_unknown_boot_are_dropped_the_rest_is_kept() {
        let (same, dropped) = journal_of_boot(Some("b1")).for_boot(Some("b1"));
        assert_eq!((same.fenced.len(), dropped.len()), (1, 0), "a daemon restarted in the same boot keeps them");
        for written in [Some("b0"), None] {
            let (j, dropped) = journal_of_boot(written).for_boot(Some("b1"));
            assert!(j.fenced.is_empty(), "written in boot {written:?}");
            assert_eq!(dropped, vec!["mds1".to_string()]);
            assert!(j.maintenance && j.incarnation == 4, "only the confirmations go");
        }
        let (unknown, dropped) = journal_of_boot(Some("b0")).for_boot(None);
        assert_eq!((unknown.fenced.len(), dropped.len()), (1, 0), "this boot cannot be read: nothing is dropped");
    }
}
