//! The witness: a third-party vote for two-node clusters, as corosync-qnetd gives one. Pure logic; the
//! `failoverd witness` daemon wraps it with sockets. One witness serves many clusters, keyed by name.
//!
//! The vote is an exclusive lease held by one node. A node that sees every node of its cluster is granted
//! the vote freely (it is quorate anyway). A node in a degraded partition gets it only if it holds the
//! lease, or the lease expired (its holder stopped asking): so in a symmetric partition the side that held
//! the lease wins, and a crashed holder's lease passes to the survivor after `lease`.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

use std::collections::BTreeMap;
use std::time::Duration;

use crate::protocol::{WitnessQuery, WitnessReply};
use crate::time::Time;

/// The vote state of one cluster.
#[derive(Clone, Debug, Default)]
struct ClusterVote {
    holder: Option<String>,
    last_query: BTreeMap<String, Time>,
}

/// Witness vote logic for any number of clusters.
#[derive(Clone, Debug)]
pub struct Witness {
    lease: Duration,
    clusters: BTreeMap<String, ClusterVote>,
}

impl Witness {
    /// `lease`: how long a holder keeps the vote after its last query (use the clusters' `dead_after`).
    pub fn new(lease: Duration) -> Witness {
        Witness { lease, clusters: BTreeMap::new() }
    }

    /// Answer a query from `node` of `cluster` sent with sequence `seq`.
    pub fn on_query(&mut self, now: Time, cluster: &str, node: &str, seq: u64, q: &WitnessQuery) -> WitnessReply {
        let lease = self.lease;
        let c = self.clusters.entry(cluster.to_string()).or_default();
        c.last_query.insert(node.to_string(), now);
        let holder_fresh = c.holder.as_ref().and_then(|h| c.last_query.get(h)).is_some_and(|t| now.since(*t) < lease);
        if !holder_fresh {
            c.holder = Some(node.to_string());
        }
        let holder = c.holder.clone();
        let sees_all = q.sees.len() >= usize::from(q.cluster_size) && q.sees.iter().any(|s| s == node);
        let granted = holder.as_deref() == Some(node) || sees_all;
        WitnessReply { query_seq: seq, node: node.to_string(), granted, holder }
    }

    /// The current holder of a cluster's vote.
    pub fn holder(&self, cluster: &str) -> Option<&str> {
        self.clusters.get(cluster).and_then(|c| c.holder.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(sees: &[&str]) -> WitnessQuery {
        WitnessQuery { sees: sees.iter().map(|s| s.to_string()).collect(), cluster_size: 2 }
    }

    #[test]
    fn symmetric_partition_goes_to_the_holder() {
        let mut w = Witness::new(Duration::from_secs(3));
        let t = Time::from_millis;
        assert!(w.on_query(t(0), "c", "a", 1, &q(&["a", "b"])).granted);
        assert!(w.on_query(t(10), "c", "b", 1, &q(&["a", "b"])).granted);
        assert_eq!(w.holder("c"), Some("a"));
        // partition: each sees only itself
        assert!(w.on_query(t(3000), "c", "a", 2, &q(&["a"])).granted);
        assert!(!w.on_query(t(3010), "c", "b", 2, &q(&["b"])).granted);
        assert!(w.on_query(t(3250), "c", "a", 3, &q(&["a"])).granted);
        assert!(!w.on_query(t(3260), "c", "b", 3, &q(&["b"])).granted);
    }

    #[test]
    fn a_dead_holder_loses_the_vote_after_the_lease() {
        let mut w = Witness::new(Duration::from_secs(3));
        let t = Time::from_millis;
        w.on_query(t(0), "c", "a", 1, &q(&["a", "b"]));
        assert!(!w.on_query(t(2000), "c", "b", 2, &q(&["b"])).granted);
        let r = w.on_query(t(3001), "c", "b", 3, &q(&["b"]));
        assert!(r.granted);
        assert_eq!(r.holder.as_deref(), Some("b"));
        // clusters are independent
        assert!(w.on_query(t(3002), "other", "x", 1, &q(&["x"])).granted);
    }
}
