//! `failoverd witness`: the third-party vote for two-node clusters, as a small UDP server.
//!
//! One socket serves any number of clusters, each known by its name and its key (as corosync-qnetd does), so
//! a site with fifty server pairs runs one witness. The vote logic is the pure [`Witness`]; this module is the
//! I/O around it.
//!
//! Each datagram goes through, in this order, and is dropped silently (counted, logged rate-limited) at the
//! first failure:
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
//! (so it verifies at the node whatever stage of a key roll the node is in), sent to the query's source
//! address. Every change of a cluster's vote holder is logged with `cluster` and `node` fields.
//!
//! The witness keeps no state on disk: after a restart the first node to ask holds each cluster's vote.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{defaults, load_key};
use crate::protocol::{self, Body, DecodeError, Envelope, KeySlot, Keys, WitnessReply};
use crate::time::Time;
use crate::witness::Witness;

use super::clock::Clock;
use super::logging::LogFormat;
use super::net::{bind_udp, RECV_BUFFER};
use super::{Result, RuntimeError};

/// The `sender` of every reply.
pub const SENDER: &str = "witness";

/// Nodes tracked per cluster at most (a cluster has at most 255 nodes: `WitnessQuery::cluster_size` is a u8).
pub const MAX_NODES_PER_CLUSTER: usize = u8::MAX as usize;

/// How often a summary of dropped datagrams is logged at most.
const DROP_SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// `failoverd witness`.
#[derive(clap::Args, Debug)]
pub struct WitnessArgs {
    /// UDP address to listen on, e.g. 10.0.0.9:7406 (the `[witness] address` of the clusters' configs).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// A cluster to serve: its `cluster.name` and the path of its `cluster.key_file`. Repeat for each cluster;
    /// give a name twice (key, then next key) during a key roll.
    #[arg(long = "cluster", value_name = "NAME=KEYFILE")]
    pub clusters: Vec<String>,
    /// A file of `NAME=KEYFILE` lines (blank lines and `#` comments ignored), for sites with many clusters.
    #[arg(long, value_name = "FILE")]
    pub cluster_file: Option<PathBuf>,
    /// How long a node keeps the vote after its last query; use the clusters' `dead_after`.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// Log format on stderr (default: journald when stderr is the journal, human otherwise).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
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
            KeySlot::Active => keys.active.clone(),
            KeySlot::Next => keys.next.clone().unwrap_or_default(),
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

/// One `NAME=KEYFILE` argument (from `--cluster` or a line of `--cluster-file`; `origin` says which, for
/// errors).
fn parse_cluster_arg(arg: &str, origin: &str) -> Result<(String, PathBuf)> {
    let Some((name, path)) = arg.split_once('=') else {
        return Err(RuntimeError::new(format!("{origin}: {arg:?} is not NAME=KEYFILE")));
    };
    let (name, path) = (name.trim(), path.trim());
    let valid = !name.is_empty()
        && name.len() <= defaults::MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(RuntimeError::new(format!(
            "{origin}: cluster name {name:?} is not a valid cluster.name ([A-Za-z0-9_.-], 1 to {} characters)",
            defaults::MAX_NAME_LEN
        )));
    }
    if !Path::new(path).is_absolute() {
        return Err(RuntimeError::new(format!("{origin}: key file {path:?} of cluster {name} must be an absolute path")));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// Read every cluster's keys: from `--cluster` arguments, then from `--cluster-file`. A name given twice
/// gets its second key as the next key (key roll); a third time is an error.
pub fn load_clusters(args: &[String], file: Option<&Path>) -> Result<BTreeMap<String, Keys>> {
    let mut entries: Vec<(String, PathBuf, String)> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let origin = format!("--cluster #{}", i + 1);
        let (name, path) = parse_cluster_arg(a, &origin)?;
        entries.push((name, path, origin));
    }
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| RuntimeError::new(format!("--cluster-file {}: cannot read: {e}", file.display())))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let origin = format!("{}:{}", file.display(), i + 1);
            let (name, path) = parse_cluster_arg(line, &origin)?;
            entries.push((name, path, origin));
        }
    }
    if entries.is_empty() {
        return Err(RuntimeError::new("no cluster to serve: give --cluster NAME=KEYFILE (or --cluster-file FILE)"));
    }
    let mut clusters: BTreeMap<String, Keys> = BTreeMap::new();
    for (name, path, origin) in entries {
        let key = load_key(&path).map_err(|e| RuntimeError::new(format!("{origin} (cluster {name}): {e}")))?;
        match clusters.get_mut(&name) {
            None => {
                clusters.insert(name, Keys::new(key, None));
            }
            Some(keys) if keys.next.is_none() => keys.next = Some(key),
            Some(_) => {
                return Err(RuntimeError::new(format!(
                    "{origin}: cluster {name} is given a third time (at most a key and a next key)"
                )))
            }
        }
    }
    Ok(clusters)
}

/// `failoverd witness --listen ADDR --cluster NAME=KEYFILE [...]`: serve until SIGTERM or SIGINT.
pub fn run(args: WitnessArgs) -> ExitCode {
    super::logging::init(args.log_format);
    let result = (|| {
        if args.lease.is_zero() {
            return Err(RuntimeError::new("--lease must be longer than 0"));
        }
        let clusters = load_clusters(&args.clusters, args.cluster_file.as_deref())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RuntimeError::new(format!("cannot start the event loop: {e}")))?;
        runtime.block_on(async {
            let (socket, _) =
                bind_udp(args.listen).map_err(|e| RuntimeError::new(format!("--listen {}: cannot bind UDP: {e}", args.listen)))?;
            let incarnation = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1);
            let server = WitnessServer::new(clusters, args.lease, incarnation);
            serve(socket, server).await
        })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("failoverd witness stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serve `server` on `socket` until SIGTERM or SIGINT.
pub async fn serve(socket: UdpSocket, mut server: WitnessServer) -> Result<()> {
    let signal_err = |e: std::io::Error| RuntimeError::new(format!("cannot install signal handlers: {e}"));
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_err)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_err)?;
    let local = socket.local_addr().map_err(|e| RuntimeError::new(format!("cannot read the socket's address: {e}")))?;
    let names: Vec<&str> = server.clusters().collect();
    tracing::info!(listen = %local, clusters = %names.join(","), count = names.len(),
        version = env!("CARGO_PKG_VERSION"), "failoverd witness started");

    let clock = Clock::start();
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut last_summary: Option<Instant> = None;
    let mut dropped_at_summary = 0u64;
    let mut send_failed = 0u64;
    loop {
        let (len, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors from an earlier reply surface here on Linux: not fatal, never spin
                    tracing::debug!(error = %e, "receive error on the witness socket");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        match server.handle(clock.now(), &buf[..len]) {
            Ok(answer) => {
                if let Some(previous) = &answer.holder_changed {
                    tracing::info!(cluster = %answer.cluster, node = answer.reply.holder.as_deref().unwrap_or(""),
                        previous = previous.as_deref().unwrap_or("none"), asked_by = %answer.node,
                        "witness vote holder changed");
                }
                tracing::debug!(cluster = %answer.cluster, node = %answer.node, %from, granted = answer.reply.granted,
                    "answered witness query");
                if let Err(e) = socket.try_send_to(&answer.bytes, from) {
                    send_failed += 1;
                    tracing::warn!(cluster = %answer.cluster, node = %answer.node, %from, error = %e, send_failed,
                        "cannot send the witness reply");
                }
            }
            Err(why) => {
                tracing::debug!(%from, len, reason = why.kind(), detail = %why, "dropped datagram");
                let now = Instant::now();
                if last_summary.is_none_or(|t| now.duration_since(t) >= DROP_SUMMARY_EVERY) {
                    let total = server.counters().dropped_total();
                    tracing::warn!(last_from = %from, last_reason = why.kind(), last_detail = %why,
                        dropped_since_last_report = total - dropped_at_summary,
                        "dropping datagrams without reply (unknown cluster, wrong key, replay, or an attack)");
                    dropped_at_summary = total;
                    last_summary = Some(now);
                }
            }
        }
    }
    let c = server.counters();
    tracing::info!(answered = c.answered, dropped = c.dropped_total(), send_failed, "failoverd witness stopping");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::WitnessQuery;

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

    #[test]
    fn cluster_arguments_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a.key");
        let next = dir.path().join("a-next.key");
        std::fs::write(&key, "k".repeat(40)).unwrap();
        std::fs::write(&next, "n".repeat(40)).unwrap();
        let arg = |name: &str, p: &Path| format!("{name}={}", p.display());

        let c = load_clusters(&[arg("a", &key), arg("a", &next)], None).unwrap();
        assert_eq!(c["a"].active, b"k".repeat(40));
        assert_eq!(c["a"].next.as_deref(), Some(&b"n".repeat(40)[..]));

        let err = |args: &[String]| load_clusters(args, None).unwrap_err().to_string();
        assert!(err(&[]).contains("no cluster to serve"));
        assert!(err(&["a".into()]).contains("is not NAME=KEYFILE"));
        assert!(err(&["a=relative.key".into()]).contains("absolute"));
        assert!(err(&[arg("bad name", &key)]).contains("not a valid cluster.name"));
        assert!(err(&[arg("a", &dir.path().join("missing"))]).contains("--cluster #1 (cluster a)"));
        assert!(err(&[arg("a", &key), arg("a", &key), arg("a", &next)]).contains("third time"));

        let file = dir.path().join("clusters");
        std::fs::write(&file, format!("# site witness\n\n{}\nb = {}\n", arg("a", &key), next.display())).unwrap();
        let c = load_clusters(&[], Some(&file)).unwrap();
        assert_eq!(c.keys().collect::<Vec<_>>(), ["a", "b"]);
        std::fs::write(&file, "b\n").unwrap();
        assert!(load_clusters(&[], Some(&file)).unwrap_err().to_string().contains(":1: \"b\" is not NAME=KEYFILE"));
    }
}
