//! The witness: a third-party vote for two-node clusters, as corosync-qnetd gives one. Pure logic, bytes in
//! and bytes out: [`WitnessServer::handle`] takes a received datagram and returns the signed reply or why there
//! is none. The `failoverd witness` daemon (runtime/witness_server.rs) wraps it with a socket, and the
//! simulator feeds it the same bytes, so the replay window and the key checks it runs are the daemon's.
//! One witness serves many clusters, keyed by name.
//!
//! Each datagram goes through, in this order, and is dropped (counted by [`Dropped::kind`]) at the first
//! failure:
//! 1. [`protocol::peek_cluster`]: framing checks and the cluster name the datagram *claims*. A name the
//!    witness does not serve is `unknown_cluster`.
//! 2. [`protocol::decode_with_key`] with that cluster's keys (its key, and the next one during a key roll):
//!    `bad_mac` when neither verifies. Only now is anything in the datagram trusted; a datagram signed with
//!    cluster A's key but claiming cluster B fails here, because B's keys do not verify it.
//! 3. Only a [`Body::WitnessQuery`] is answered (`not_a_query` otherwise).
//! 4. Replay protection per (cluster, node): the query's (incarnation, seq) must be newer than the last one
//!    answered for that node, as the engine's detector does per link (`replayed` otherwise). A node restarts
//!    with a higher incarnation, so its first query after a restart is accepted.
//! 5. At most [`MAX_NODES_PER_CLUSTER`] nodes per cluster are tracked (`too_many_nodes`): a key holder cannot
//!    grow the witness's memory without bound.
//!
//! The reply is a [`Body::WitnessReply`] from sender [`SENDER`], signed with the key that verified the query
//! (so it verifies at the node whatever stage of a key roll the node is in).
//!
//! The vote is an exclusive lease held by one node. A node that sees every node of its cluster is granted
//! the vote freely (it is quorate anyway). A node in a degraded partition gets it only if it holds the
//! lease, or the lease expired (its holder stopped asking): so in a symmetric partition the side that held
//! the lease wins, and a crashed holder's lease passes to the survivor after `lease`.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

use std::collections::BTreeMap;
use std::time::Duration;

use crate::protocol::{self, Body, DecodeError, Envelope, KeySlot, Keys, WitnessQuery, WitnessReply};
use crate::time::Time;

/// The `sender` of every reply.
pub const SENDER: &str = "witness";

/// Nodes tracked per cluster at most (a cluster has at most 255 nodes: `WitnessQuery::cluster_size` is a u8).
pub const MAX_NODES_PER_CLUSTER: usize = u8::MAX as usize;


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

/// Why a datagram got no reply. Each has its own counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Framing failed (length, magic, version) or the claimed name is unreadable.
    Invalid(DecodeError),
    /// The datagram claims a cluster this witness does not serve.
    UnknownCluster(String),
    /// The MAC matches none of the claimed cluster's keys (forged, corrupted, or another cluster's key).
    BadMac(String),
    /// Authenticated, but the body is not a sensible envelope.
    Malformed(String, String),
    /// Authenticated, but not a witness query.
    NotAQuery { cluster: String, node: String },
    /// (incarnation, seq) not newer than the last query answered for this node.
    Replayed { cluster: String, node: String, incarnation: u64, seq: u64 },
    /// The cluster already has [`MAX_NODES_PER_CLUSTER`] nodes.
    TooManyNodes { cluster: String, node: String },
}

impl Dropped {
    /// The counter this drop goes to.
    pub fn kind(&self) -> &'static str {
        match self {
            Dropped::Invalid(_) => "invalid",
            Dropped::UnknownCluster(_) => "unknown_cluster",
            Dropped::BadMac(_) => "bad_mac",
            Dropped::Malformed(..) => "malformed",
            Dropped::NotAQuery { .. } => "not_a_query",
            Dropped::Replayed { .. } => "replayed",
            Dropped::TooManyNodes { .. } => "too_many_nodes",
        }
    }
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dropped::Invalid(e) => write!(f, "invalid datagram: {e}"),
            Dropped::UnknownCluster(c) => write!(f, "claims cluster {c:?}, which this witness does not serve"),
            Dropped::BadMac(c) => write!(f, "MAC check failed under the keys of cluster {c:?}"),
            Dropped::Malformed(c, e) => write!(f, "cluster {c:?}: malformed body: {e}"),
            Dropped::NotAQuery { cluster, node } => write!(f, "cluster {cluster:?} node {node:?}: not a witness query"),
            Dropped::Replayed { cluster, node, incarnation, seq } => write!(
                f,
                "cluster {cluster:?} node {node:?}: query ({incarnation}, {seq}) is not newer than the last one answered"
            ),
            Dropped::TooManyNodes { cluster, node } => {
                write!(f, "cluster {cluster:?}: node {node:?} would be node number {}", MAX_NODES_PER_CLUSTER + 1)
            }
        }
    }
}

/// An answered query: the reply datagram and what it said.
#[derive(Clone, Debug)]
pub struct Answer {
    pub cluster: String,
    pub node: String,
    pub reply: WitnessReply,
    /// The encoded, signed reply.
    pub bytes: Vec<u8>,
    /// `Some(previous holder)` when this query changed the cluster's vote holder.
    pub holder_changed: Option<Option<String>>,
}

/// Counters of answered and dropped datagrams, by [`Dropped::kind`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessCounters {
    pub answered: u64,
    pub dropped: BTreeMap<&'static str, u64>,
}

impl WitnessCounters {
    /// Datagrams dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// The witness service without its socket: keys per cluster, replay windows, the vote logic. Exists so the
/// whole receive pipeline is testable without I/O; [`serve`] feeds it datagrams.
pub struct WitnessServer {
    /// Per cluster: its keys, the first one signing replies unless the next one verified the query.
    keys: BTreeMap<String, Keys>,
    /// Per cluster, per node: the last (incarnation, seq) answered.
    last: BTreeMap<String, BTreeMap<String, (u64, u64)>>,
    witness: Witness,
    incarnation: u64,
    seq: u64,
    counters: WitnessCounters,
}

impl WitnessServer {
    /// A server for `clusters` (name → keys) with vote lease `lease`. `incarnation` orders this run's replies
    /// after an earlier run's (the wall-clock second of the start is a good one).
    pub fn new(clusters: BTreeMap<String, Keys>, lease: Duration, incarnation: u64) -> WitnessServer {
        WitnessServer {
            keys: clusters,
            last: BTreeMap::new(),
            witness: Witness::new(lease),
            incarnation,
            seq: 0,
            counters: WitnessCounters::default(),
        }
    }

    /// The clusters served, by name.
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// What was answered and dropped so far.
    pub fn counters(&self) -> &WitnessCounters {
        &self.counters
    }

    /// The current vote holder of `cluster`.
    pub fn holder(&self, cluster: &str) -> Option<&str> {
        self.witness.holder(cluster)
    }

    /// Handle one datagram received at `now`: the reply to send back, or why there is none.
    pub fn handle(&mut self, now: Time, bytes: &[u8]) -> std::result::Result<Answer, Dropped> {
        let result = self.answer(now, bytes);
        match &result {
            Ok(_) => self.counters.answered += 1,
            Err(d) => *self.counters.dropped.entry(d.kind()).or_default() += 1,
        }
        result
    }

    fn answer(&mut self, now: Time, bytes: &[u8]) -> std::result::Result<Answer, Dropped> {
        let claimed = protocol::peek_cluster(bytes).map_err(Dropped::Invalid)?;
        let Some(keys) = self.keys.get(claimed) else {
            return Err(Dropped::UnknownCluster(truncate(claimed, 64)));
        };
        let (env, slot) = protocol::decode_with_key(bytes, keys).map_err(|e| match e {
            DecodeError::BadMac => Dropped::BadMac(claimed.to_string()),
            DecodeError::Malformed(m) => Dropped::Malformed(claimed.to_string(), m),
            other => Dropped::Invalid(other),
        })?;
        let signing_key = match slot {
            KeySlot::Active => keys.active().to_vec(),
            KeySlot::Next => keys.next().map(<[u8]>::to_vec).unwrap_or_default(),
        };
        let Envelope { cluster, sender, incarnation, seq, body } = env;
        let Body::WitnessQuery(query) = body else {
            return Err(Dropped::NotAQuery { cluster, node: sender });
        };

        let nodes = self.last.entry(cluster.clone()).or_default();
        match nodes.get(&sender) {
            Some(&last) if (incarnation, seq) <= last => {
                return Err(Dropped::Replayed { cluster, node: sender, incarnation, seq });
            }
            None if nodes.len() >= MAX_NODES_PER_CLUSTER => {
                return Err(Dropped::TooManyNodes { cluster, node: sender });
            }
            _ => {}
        }
        nodes.insert(sender.clone(), (incarnation, seq));

        let before = self.witness.holder(&cluster).map(str::to_string);
        let reply = self.witness.on_query(now, &cluster, &sender, seq, &query);
        let holder_changed = (reply.holder != before).then_some(before);
        self.seq += 1;
        let out = Envelope {
            cluster: cluster.clone(),
            sender: SENDER.to_string(),
            incarnation: self.incarnation,
            seq: self.seq,
            body: Body::WitnessReply(reply.clone()),
        };
        let bytes = protocol::encode(&out, &signing_key)
            .map_err(|e| Dropped::Malformed(cluster.clone(), format!("cannot encode the reply: {e}")))?;
        Ok(Answer { cluster, node: sender, reply, bytes, holder_changed })
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
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

    // ----- the byte-level core (WitnessServer) -----

    const KEY_A: &[u8] = b"cluster-a-key-cluster-a-key-cluster-a-key";
    const KEY_A2: &[u8] = b"cluster-a-next-key-cluster-a-next-key-0000";
    const KEY_B: &[u8] = b"cluster-b-key-cluster-b-key-cluster-b-key";

    fn server() -> WitnessServer {
        let mut clusters = BTreeMap::new();
        clusters.insert("a".to_string(), Keys::new(KEY_A.to_vec(), Some(KEY_A2.to_vec())));
        clusters.insert("b".to_string(), Keys::new(KEY_B.to_vec(), None));
        WitnessServer::new(clusters, Duration::from_secs(3), 7)
    }

    fn query(cluster: &str, node: &str, incarnation: u64, seq: u64, sees: &[&str], key: &[u8]) -> Vec<u8> {
        let env = Envelope {
            cluster: cluster.into(),
            sender: node.into(),
            incarnation,
            seq,
            body: Body::WitnessQuery(WitnessQuery { sees: sees.iter().map(|s| s.to_string()).collect(), cluster_size: 2 }),
        };
        protocol::encode(&env, key).unwrap()
    }

    fn reply_of(answer: &Answer, key: &[u8]) -> Envelope {
        protocol::decode(&answer.bytes, &Keys::new(key.to_vec(), None)).unwrap()
    }

    #[test]
    fn answers_a_query_signed_with_its_clusters_key() {
        let mut s = server();
        let t = Time::from_millis;
        let a = s.handle(t(0), &query("a", "n1", 1, 1, &["n1", "n2"], KEY_A)).unwrap();
        let env = reply_of(&a, KEY_A);
        assert_eq!((env.cluster.as_str(), env.sender.as_str(), env.incarnation, env.seq), ("a", SENDER, 7, 1));
        assert_eq!(env.body, Body::WitnessReply(WitnessReply { query_seq: 1, node: "n1".into(), granted: true, holder: Some("n1".into()) }));
        assert_eq!(a.holder_changed, Some(None));
        // n2 alone, n1 still fresh: not granted, holder unchanged
        let b = s.handle(t(100), &query("a", "n2", 1, 5, &["n2"], KEY_A)).unwrap();
        assert!(!b.reply.granted);
        assert_eq!(b.holder_changed, None);
        assert_eq!(s.holder("a"), Some("n1"));
        // the other cluster is independent, and its reply is signed with its own key
        let c = s.handle(t(200), &query("b", "x", 1, 1, &["x"], KEY_B)).unwrap();
        assert_eq!(reply_of(&c, KEY_B).cluster, "b");
        assert!(protocol::decode(&c.bytes, &Keys::new(KEY_A.to_vec(), None)).is_err());
        assert_eq!(s.counters().answered, 3);
    }

    #[test]
    fn a_query_verified_by_the_next_key_is_answered_with_it() {
        let mut s = server();
        let a = s.handle(Time::ZERO, &query("a", "n1", 1, 1, &["n1"], KEY_A2)).unwrap();
        assert!(protocol::decode(&a.bytes, &Keys::new(KEY_A.to_vec(), None)).is_err());
        assert_eq!(reply_of(&a, KEY_A2).cluster, "a");
    }

    #[test]
    fn forged_foreign_and_unknown_datagrams_get_no_reply() {
        let mut s = server();
        let wrong_key = b"not-the-key-not-the-key-not-the-key-000";
        assert_eq!(s.handle(Time::ZERO, &query("a", "n1", 1, 1, &["n1"], wrong_key)).unwrap_err(), Dropped::BadMac("a".into()));
        // cluster b claimed, signed with a's key
        assert_eq!(s.handle(Time::ZERO, &query("b", "n1", 1, 1, &["n1"], KEY_A)).unwrap_err(), Dropped::BadMac("b".into()));
        assert_eq!(
            s.handle(Time::ZERO, &query("zz", "n1", 1, 1, &["n1"], KEY_A)).unwrap_err(),
            Dropped::UnknownCluster("zz".into())
        );
        assert!(matches!(s.handle(Time::ZERO, b"garbage").unwrap_err(), Dropped::Invalid(DecodeError::TooShort(7))));
        // a heartbeat-shaped or reply-shaped datagram with the right key is not a query
        let reply = Envelope {
            cluster: "a".into(),
            sender: "n1".into(),
            incarnation: 1,
            seq: 1,
            body: Body::WitnessReply(WitnessReply { query_seq: 1, node: "n1".into(), granted: true, holder: None }),
        };
        let bytes = protocol::encode(&reply, KEY_A).unwrap();
        assert_eq!(s.handle(Time::ZERO, &bytes).unwrap_err(), Dropped::NotAQuery { cluster: "a".into(), node: "n1".into() });
        assert_eq!(s.holder("a"), None, "nothing was granted");
        let c = s.counters();
        assert_eq!((c.answered, c.dropped_total()), (0, 5));
        assert_eq!(c.dropped.get("bad_mac"), Some(&2));
    }

    #[test]
    fn replays_are_dropped_per_node_and_a_restart_is_accepted() {
        let mut s = server();
        let t = Time::from_millis;
        let q = query("a", "n1", 3, 10, &["n1"], KEY_A);
        assert!(s.handle(t(0), &q).is_ok());
        assert!(matches!(s.handle(t(1), &q).unwrap_err(), Dropped::Replayed { seq: 10, .. }));
        assert!(s.handle(t(2), &query("a", "n1", 3, 9, &["n1"], KEY_A)).is_err(), "older seq");
        assert!(s.handle(t(3), &query("a", "n1", 2, 50, &["n1"], KEY_A)).is_err(), "older incarnation");
        assert!(s.handle(t(4), &query("a", "n1", 3, 11, &["n1"], KEY_A)).is_ok());
        assert!(s.handle(t(5), &query("a", "n1", 4, 1, &["n1"], KEY_A)).is_ok(), "restarted node");
        // other nodes and clusters have their own windows
        assert!(s.handle(t(6), &query("a", "n2", 1, 1, &["n2"], KEY_A)).is_ok());
        assert!(s.handle(t(7), &query("b", "n1", 1, 1, &["n1"], KEY_B)).is_ok());
    }

    #[test]
    fn a_cluster_tracks_a_bounded_number_of_nodes() {
        let mut s = server();
        for i in 0..MAX_NODES_PER_CLUSTER {
            assert!(s.handle(Time::ZERO, &query("a", &format!("n{i}"), 1, 1, &["x"], KEY_A)).is_ok());
        }
        let extra = s.handle(Time::ZERO, &query("a", "one-more", 1, 1, &["x"], KEY_A)).unwrap_err();
        assert_eq!(extra.kind(), "too_many_nodes");
        // known nodes still get answers
        assert!(s.handle(Time::ZERO, &query("a", "n0", 1, 2, &["x"], KEY_A)).is_ok());
    }

}
