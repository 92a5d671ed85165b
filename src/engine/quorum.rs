//! Quorum: who may act. Pure functions over a membership view.
//!
//! - Every node has one vote; a configured witness adds one. A partition is quorate with a strict majority.
//! - Two nodes without a witness ("two_node", as corosync's votequorum): a single node is quorate, and the
//!   symmetric partition is settled by a fence race with a deliberate delay — the node with the higher
//!   `fence_priority` fences at once, the other waits `fence_delay` first.
//! - wait_for_all: until every node has been seen alive at the same time once since start, nobody is quorate
//!   (unless the operator overrides). This is what stops a rebooted, still-partitioned node from fencing the
//!   survivor: the fence loop.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::NodeConfig;

/// The quorum picture at one moment, for decisions and for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumView {
    pub votes: u32,
    pub total: u32,
    pub needed: u32,
    pub quorate: bool,
    pub two_node: bool,
    pub witness_vote: bool,
    /// Why not quorate, or "ok".
    pub reason: String,
}

/// The membership facts quorum is computed from.
#[derive(Clone, Debug)]
pub struct Membership<'a> {
    pub nodes: &'a [NodeConfig],
    /// Nodes alive in this node's view, itself included.
    pub alive: &'a BTreeSet<String>,
    pub witness_configured: bool,
    /// The witness currently grants its vote to this node's partition.
    pub witness_granted: bool,
    /// wait_for_all is on and not yet satisfied (nor overridden).
    pub waiting_for_all: bool,
}

/// Compute the quorum view.
pub fn compute(m: &Membership<'_>) -> QuorumView {
    let nodes = m.nodes.len() as u32;
    let two_node = nodes == 2 && !m.witness_configured;
    let total = nodes + u32::from(m.witness_configured);
    let node_votes = m.nodes.iter().filter(|n| m.alive.contains(&n.name)).count() as u32;
    let witness_vote = m.witness_configured && m.witness_granted;
    let votes = node_votes + u32::from(witness_vote);
    let needed = if two_node { 1 } else { total / 2 + 1 };
    let (quorate, reason) = if m.waiting_for_all {
        (false, "waiting for all nodes to be seen once (wait_for_all)".to_string())
    } else if votes >= needed {
        (true, "ok".to_string())
    } else {
        (false, format!("{votes} of {total} votes, {needed} needed"))
    };
    QuorumView { votes, total, needed, quorate, two_node, witness_vote, reason }
}

/// True when `a` wins a fence race against `b`: higher `fence_priority`, ties broken by the smaller name.
pub fn outranks(a: &NodeConfig, b: &NodeConfig) -> bool {
    (a.fence_priority, std::cmp::Reverse(&a.name)) > (b.fence_priority, std::cmp::Reverse(&b.name))
}

/// The one node among `alive` that should fence a dead peer: the highest-ranked one. Every survivor with
/// the same view computes the same answer, so a three-node cluster fences a node once, not twice.
pub fn designated_fencer<'a>(nodes: &'a [NodeConfig], alive: &BTreeSet<String>) -> Option<&'a NodeConfig> {
    nodes.iter().filter(|n| alive.contains(&n.name)).fold(None, |best: Option<&NodeConfig>, n| match best {
        Some(b) if outranks(b, n) => Some(b),
        _ => Some(n),
    })
}

/// How long `me` must wait before fencing `victim`: in two-node mode without a witness, the lower-ranked
/// node waits `fence_delay` so the higher-ranked one wins a symmetric partition. Otherwise no delay.
pub fn race_delay(me: &NodeConfig, victim: &NodeConfig, two_node: bool, fence_delay: Duration) -> Duration {
    if two_node && outranks(victim, me) {
        fence_delay
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FencingMode;

    fn node(name: &str, prio: u32) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            addresses: vec![],
            hostid: 1,
            hostname: None,
            fence_priority: prio,
            fence_levels: vec![],
            fencing: FencingMode::ManualOnly,
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn two_node_without_witness_is_quorate_alone_once_all_were_seen() {
        let nodes = vec![node("a", 1), node("b", 0)];
        let alive = set(&["a"]);
        let m = Membership { nodes: &nodes, alive: &alive, witness_configured: false, witness_granted: false, waiting_for_all: false };
        let q = compute(&m);
        assert!(q.quorate && q.two_node);
        let q = compute(&Membership { waiting_for_all: true, ..m });
        assert!(!q.quorate);
        assert!(q.reason.contains("wait_for_all"));
    }

    #[test]
    fn two_node_with_witness_needs_the_witness_vote_when_alone() {
        let nodes = vec![node("a", 1), node("b", 0)];
        let alone = set(&["b"]);
        let both = set(&["a", "b"]);
        let m = Membership { nodes: &nodes, alive: &alone, witness_configured: true, witness_granted: false, waiting_for_all: false };
        assert!(!compute(&m).quorate);
        assert!(compute(&Membership { witness_granted: true, ..m.clone() }).quorate);
        assert!(compute(&Membership { alive: &both, ..m }).quorate);
    }

    #[test]
    fn three_nodes_need_a_majority() {
        let nodes = vec![node("a", 0), node("b", 0), node("c", 0)];
        let two = set(&["a", "b"]);
        let one = set(&["c"]);
        let m = Membership { nodes: &nodes, alive: &two, witness_configured: false, witness_granted: false, waiting_for_all: false };
        let q = compute(&m);
        assert!(q.quorate && !q.two_node && q.needed == 2);
        let q = compute(&Membership { alive: &one, ..m });
        assert!(!q.quorate);
        assert_eq!(q.reason, "1 of 3 votes, 2 needed");
    }

    #[test]
    fn fence_race_ranks_by_priority_then_name() {
        let a = node("mds1", 10);
        let b = node("mds2", 5);
        assert!(outranks(&a, &b) && !outranks(&b, &a));
        let d = Duration::from_secs(10);
        assert_eq!(race_delay(&a, &b, true, d), Duration::ZERO);
        assert_eq!(race_delay(&b, &a, true, d), d);
        assert_eq!(race_delay(&b, &a, false, d), Duration::ZERO);
        let (x, y) = (node("x", 1), node("y", 1));
        assert!(outranks(&x, &y));
        let nodes = vec![node("c", 3), node("a", 3), node("b", 9)];
        assert_eq!(designated_fencer(&nodes, &set(&["a", "c"])).unwrap().name, "a");
        assert_eq!(designated_fencer(&nodes, &set(&["a", "b", "c"])).unwrap().name, "b");
    }
}
