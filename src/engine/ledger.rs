//! The fence ledger: which nodes this node holds confirmed off, and on what evidence. Rule 2 of the engine
//! ("no forced takeover of a node's targets without a confirmed fence of that node") reads this ledger, so
//! its records are private to this module: the only ways in are the four kinds of evidence below, each a
//! method, and the only way out is [`FenceLedger::void`]. A new writer cannot appear elsewhere in the engine
//! without a compile error.
//!
//! Evidence that puts a node in the ledger:
//! - [`FenceLedger::confirmed_here`]: a fence device this node ran confirmed the power off, or an operator
//!   confirmed it here (`failoverd confirm-fenced`), in `fence_control.rs`;
//! - [`FenceLedger::adopted_from_peer`]: a quorate peer with the same configuration shared its own
//!   confirmation, consistent with what this node saw (`fence_control.rs`, `adopt_peer_confirmations`);
//! - [`FenceLedger::restored_from_journal`]: a previous run of this node confirmed it (`journal.rs`); it counts
//!   for wait_for_all and is shared with peers only after a fresh status read in this run found it off
//!   ([`FenceLedger::power_read`]).
//!
//! A record is voided when the node is heard again in a newer incarnation (it rebooted: the fence is spent)
//! or in the same one after the confirmation (the device lied), in `membership.rs`.

use std::collections::{btree_map, BTreeMap, BTreeSet};

use super::journal::FencedRecord;

/// Nodes confirmed off, and those a status read in this run found still off.
#[derive(Debug, Default)]
pub(crate) struct FenceLedger {
    records: BTreeMap<String, FencedRecord>,
    /// Nodes in `records` a status read in this run found powered off: they count as seen for wait_for_all.
    off_checked: BTreeSet<String>,
}

impl FenceLedger {
    /// A fence device run by this node, or an operator here, confirmed `record.node` off.
    pub(crate) fn confirmed_here(&mut self, record: FencedRecord) {
        debug_assert!(record.from_peer.is_none() && !record.restored);
        self.records.insert(record.node.clone(), record);
    }

    /// A peer's own confirmation, checked against this node's view by the caller.
    pub(crate) fn adopted_from_peer(&mut self, record: FencedRecord) {
        debug_assert!(record.from_peer.is_some());
        self.records.insert(record.node.clone(), record);
    }

    /// A confirmation from this node's previous run (its journal).
    pub(crate) fn restored_from_journal(&mut self, record: FencedRecord) {
        debug_assert!(record.restored);
        self.records.insert(record.node.clone(), record);
    }

    /// A status read of `node`'s power in this run: `off` or not (on, or the devices could not say). Only a
    /// node in the ledger is marked.
    pub(crate) fn power_read(&mut self, node: &str, off: bool) {
        if off && self.records.contains_key(node) {
            self.off_checked.insert(node.to_string());
        } else {
            self.off_checked.remove(node);
        }
    }

    /// The record of `node` is spent (it rebooted) or was wrong (the device lied): forget it. True when there
    /// was one.
    pub(crate) fn void(&mut self, node: &str) -> bool {
        self.off_checked.remove(node);
        self.records.remove(node).is_some()
    }

    /// Is `node` held confirmed off?
    pub(crate) fn contains_key(&self, node: &str) -> bool {
        self.records.contains_key(node)
    }

    /// Held confirmed off, and found off by a status read in this run.
    pub(crate) fn off_checked(&self, node: &str) -> bool {
        self.off_checked.contains(node) && self.records.contains_key(node)
    }

    pub(crate) fn get(&self, node: &str) -> Option<&FencedRecord> {
        self.records.get(node)
    }

    pub(crate) fn values(&self) -> btree_map::Values<'_, String, FencedRecord> {
        self.records.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Time;

    fn record(node: &str) -> FencedRecord {
        FencedRecord { node: node.into(), at: Time::ZERO, incarnation: Some(1), by_operator: false, level: 1, from_peer: None, restored: false }
    }

    #[test]
    fn a_power_read_marks_only_a_node_in_the_ledger_and_a_void_forgets_both() {
        let mut l = FenceLedger::default();
        l.power_read("n1", true);
        assert!(!l.off_checked("n1"), "a node not confirmed off is not accounted for by a power read");
        l.confirmed_here(record("n1"));
        l.power_read("n1", true);
        assert!(l.contains_key("n1") && l.off_checked("n1"));
        l.power_read("n1", false);
        assert!(!l.off_checked("n1"));
        l.power_read("n1", true);
        assert!(l.void("n1"));
        assert!(!l.contains_key("n1") && !l.off_checked("n1") && !l.void("n1"));
        l.confirmed_here(record("n1"));
        assert!(!l.off_checked("n1"), "a new record needs a new read");
    }
}
