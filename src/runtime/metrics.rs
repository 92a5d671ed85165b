//! Prometheus metrics: what the daemon sees, served as text on `cluster.metrics_listen` (`GET /metrics`).
//!
//! Two sources feed the series:
//! - **Events** ([`Metrics::on_event`], called by the daemon for every engine event): fence attempts and
//!   outcomes, sequence durations and failures, a count per event name. These are counters and a histogram,
//!   so nothing between two scrapes is lost.
//! - **The engine's status** ([`Metrics::refresh`], called by the daemon loop when a scrape asks for it):
//!   peers, links, last-heard ages, quorum, maintenance, the targets this node owns, and the datagram
//!   counters of the links. A scrape asks the daemon loop through a channel and waits at most
//!   [`REFRESH_WAIT`]; a loop that does not answer in time (a stalled process) gets the previous values served.
//!
//! The series (all prefixed `failoverd_`):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `info` | gauge (1) | `node`, `cluster`, `version` |
//! | `peer_alive` | gauge 0/1 | `node` |
//! | `peer_config_mismatch` | gauge 0/1: the peer's cluster-wide configuration differs from this node's | `node` |
//! | `config_mismatch` | gauge 1 per differing cluster-wide setting (absent when they agree; key `(unknown)` while the peer has not said which) | `peer`, `key` (as `failoverd check-config` names it: `cluster.dead_after`) |
//! | `peer_link_up` | gauge 0/1 | `node`, `link` |
//! | `peer_last_heard_seconds` | gauge, age of the last valid heartbeat (absent until one arrived) | `node`, `link` |
//! | `quorate`, `quorum_votes`, `quorum_votes_needed`, `witness_vote`, `maintenance` | gauge | |
//! | `target_owned` | gauge 0/1: this node holds the target | `target` |
//! | `target_blocked` | gauge 0/1: the target is blocked until an operator acts (`failoverd status` says why) | `target` |
//! | `fence_attempts_total` | counter: fence attempts started by this node | `node` (the victim) |
//! | `fence_outcomes_total` | counter | `node`, `outcome` = `confirmed`, `level_failed`, `failed`, `needs_operator`, `cancelled`, `confirmed_by_operator`, `lied` |
//! | `migration_duration_seconds` | histogram of completed sequences on this node | `kind` = `forced` (takeover after a fence), `controlled` (import and mount without force: the receiving half of a controlled migration, or a first start), `release` (umount and export: the giving half) |
//! | `migration_failures_total` | counter of failed sequences | `kind` |
//! | `target_recovering` | gauge 0/1: a Lustre target verified here is in its recovery window (`target_recovering` until `target_recovered`) | `target` |
//! | `recovery_duration_seconds` | histogram: from a target's verification here to the end of its Lustre recovery as followed (`target_recovered`'s `followed_ms`) | `outcome` |
//! | `step_duration_seconds` | histogram of completed steps of target sequences on this node | `step` (`label_check`, `import`, `mount`, ... as in `step_done` events) |
//! | `events_total` | counter | `event` (the event names of the logs and `notify`) |
//! | `datagrams_received_total` | counter: authenticated datagrams | |
//! | `datagrams_rejected_total` | counter | `reason` = `too_short`, `too_large`, `bad_magic`, `bad_version`, `bad_mac`, `malformed` |
//! | `datagram_send_failures_total` | counter | |
//! | `disk_heartbeat_write_ok` | gauge 0/1: the last round's O_DIRECT\|O_DSYNC write and the read after it succeeded (series present only with `cluster.disk_heartbeat`, like all below) | |
//! | `disk_heartbeat_last_write_seconds` | gauge: latency of the last successful slot write | |
//! | `disk_heartbeat_write_seconds` | histogram of slot write latencies | |
//! | `disk_heartbeat_rounds_total` | counter of rounds that came back | `result` = `ok`, `failed` |
//! | `disk_heartbeat_skipped_total` | counter: beats skipped because the previous round had not come back (a hung device) | |
//! | `peer_disk_slot_age_seconds` | gauge: since the peer's slot last advanced as read here (absent until read once) | `node` |
//! | `peer_disk_slot_valid` | gauge 0/1: the peer's slot last read was valid (cluster, node, MAC) | `node` |
//!
//! The HTTP side is deliberately small: HTTP/1.0, one request per connection, the request head read with a
//! size cap ([`MAX_REQUEST_HEAD`]) and a timeout ([`IO_TIMEOUT`]), at most [`MAX_CONNECTIONS`] at once (more
//! are closed at once). `GET` or `HEAD` of `/metrics` is answered with the Prometheus text format (0.0.4);
//! any other path is 404, any other method 405, anything unreadable 400. There is no authentication: bind it
//! to a management address.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::engine::{Event, Status};
use crate::storage::SequenceKind;

use super::net::NetCounters;
use super::{Result, RuntimeError};

/// Largest request head read; a longer one is answered 400.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Time allowed to read a request head, and to write the response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more are closed without an answer.
pub const MAX_CONNECTIONS: usize = 8;

/// How long, and how many bytes, of a request's unread rest are drained after the response (lingering close).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// How long a scrape waits for the daemon loop to refresh the status-based series.
pub const REFRESH_WAIT: Duration = Duration::from_secs(2);

/// Every `outcome` label of `fence_outcomes_total` (see [`Metrics::on_event`]).
const FENCE_OUTCOMES: [&str; 7] = ["confirmed", "level_failed", "failed", "needs_operator", "cancelled", "confirmed_by_operator", "lied"];

/// Buckets of `migration_duration_seconds`: an import with an MMP activity check takes 20 to 50 s.
const DURATION_BUCKETS: [f64; 13] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    node: String,
    cluster: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MismatchLabels {
    peer: String,
    key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    node: String,
    link: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    node: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Buckets of `recovery_duration_seconds`: Lustre's recovery window is 0 s (no client) up to 300 s soft (about
/// 150 s with Imperative Recovery) and 900 s hard.
const RECOVERY_BUCKETS: [f64; 10] = [2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0];

fn recovery_histogram() -> Histogram {
    Histogram::new(RECOVERY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeOnlyLabels {
    outcome: String,
}

type SecondsGauge = Gauge<f64, AtomicU64>;

/// The daemon's metric series and their registry. Shared (in an `Arc`) by the daemon loop, which updates
/// them, and the HTTP server, which encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    peer_alive: Family<NodeLabels, Gauge>,
    peer_config_mismatch: Family<NodeLabels, Gauge>,
    config_mismatch: Family<MismatchLabels, Gauge>,
    link_up: Family<LinkLabels, Gauge>,
    last_heard: Family<LinkLabels, SecondsGauge>,
    quorate: Gauge,
    votes: Gauge,
    votes_needed: Gauge,
    witness_vote: Gauge,
    maintenance: Gauge,
    target_owned: Family<TargetLabels, Gauge>,
    target_blocked: Family<TargetLabels, Gauge>,
    step_duration: Family<StepLabels, Histogram, fn() -> Histogram>,
    fence_attempts: Family<NodeLabels, Counter>,
    fence_outcomes: Family<OutcomeLabels, Counter>,
    migration_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    migration_failures: Family<KindLabels, Counter>,
    target_recovering: Family<TargetLabels, Gauge>,
    recovery_duration: Family<OutcomeOnlyLabels, Histogram, fn() -> Histogram>,
    events: Family<EventLabels, Counter>,
    received: Counter,
    rejected: Family<ReasonLabels, Counter>,
    send_failures: Counter,
    disk_write_ok: Gauge,
    disk_last_write: SecondsGauge,
    disk_write_latency: Histogram,
    disk_rounds: Family<ResultLabels, Counter>,
    disk_skipped: Counter,
    disk_slot_age: Family<NodeLabels, SecondsGauge>,
    disk_slot_valid: Family<NodeLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

/// Buckets of `disk_heartbeat_write_seconds`: an O_DIRECT|O_DSYNC write of 4 KiB takes 0.1-1 ms on a healthy
/// SAN LUN; seconds mean a path is failing over or the array is in trouble.
const DISK_WRITE_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0];

impl Metrics {
    /// Every series, registered; `info` names this node and cluster.
    pub fn new(node: &str, cluster: &str) -> Metrics {
        let mut registry = Registry::with_prefix("failoverd");
        let info: Family<InfoLabels, Gauge> = Family::default();
        info.get_or_create(&InfoLabels { node: node.into(), cluster: cluster.into(), version: env!("CARGO_PKG_VERSION").into() })
            .set(1);
        registry.register("info", "This failoverd daemon: node, cluster and version (always 1)", info);
        let m = Metrics {
            peer_alive: Family::default(),
            peer_config_mismatch: Family::default(),
            config_mismatch: Family::default(),
            link_up: Family::default(),
            last_heard: Family::default(),
            quorate: Gauge::default(),
            votes: Gauge::default(),
            votes_needed: Gauge::default(),
            witness_vote: Gauge::default(),
            maintenance: Gauge::default(),
            target_owned: Family::default(),
            target_blocked: Family::default(),
            step_duration: Family::new_with_constructor(duration_histogram),
            fence_attempts: Family::default(),
            fence_outcomes: Family::default(),
            migration_duration: Family::new_with_constructor(duration_histogram),
            migration_failures: Family::default(),
            target_recovering: Family::default(),
            recovery_duration: Family::new_with_constructor(recovery_histogram),
            events: Family::default(),
            received: Counter::default(),
            rejected: Family::default(),
            send_failures: Counter::default(),
            disk_write_ok: Gauge::default(),
            disk_last_write: SecondsGauge::default(),
            disk_write_latency: Histogram::new(DISK_WRITE_BUCKETS),
            disk_rounds: Family::default(),
            disk_skipped: Counter::default(),
            disk_slot_age: Family::default(),
            disk_slot_valid: Family::default(),
            registry: Registry::default(),
        };
        registry.register("peer_alive", "1 when this node considers the peer alive", m.peer_alive.clone());
        registry.register(
            "peer_config_mismatch",
            "1 when the peer's cluster-wide configuration differs from this node's",
            m.peer_config_mismatch.clone(),
        );
        registry.register(
            "config_mismatch",
            "1 for each cluster-wide setting on which the peer's configuration differs from this node's (key `(unknown)` while the peer has not said)",
            m.config_mismatch.clone(),
        );
        registry.register("peer_link_up", "1 when the link delivered a valid heartbeat from the peer within dead_after", m.link_up.clone());
        registry.register(
            "peer_last_heard_seconds",
            "Seconds since the last valid heartbeat from the peer on the link",
            m.last_heard.clone(),
        );
        registry.register("quorate", "1 when this node's partition holds quorum", m.quorate.clone());
        registry.register("quorum_votes", "Votes this node's partition holds (the witness's included)", m.votes.clone());
        registry.register("quorum_votes_needed", "Votes needed for quorum", m.votes_needed.clone());
        registry.register("witness_vote", "1 when the witness currently grants its vote to this node's partition", m.witness_vote.clone());
        registry.register("maintenance", "1 when the cluster is in maintenance (no automatic action)", m.maintenance.clone());
        registry.register("target_owned", "1 when this node holds the target", m.target_owned.clone());
        registry.register("target_blocked", "1 when the target is blocked until an operator acts", m.target_blocked.clone());
        registry.register(
            "step_duration_seconds",
            "Duration of completed steps of target sequences on this node, by step",
            m.step_duration.clone(),
        );
        registry.register("fence_attempts", "Fence attempts this node started, by victim", m.fence_attempts.clone());
        registry.register("fence_outcomes", "Fence outcomes seen by this node, by victim and outcome", m.fence_outcomes.clone());
        registry.register(
            "migration_duration_seconds",
            "Duration of completed target sequences on this node: forced takeover, controlled import, release",
            m.migration_duration.clone(),
        );
        registry.register("migration_failures", "Target sequences that failed on this node", m.migration_failures.clone());
        registry.register(
            "target_recovering",
            "1 while a Lustre target verified here is in its recovery window (clients reconnecting and replaying)",
            m.target_recovering.clone(),
        );
        registry.register(
            "recovery_duration_seconds",
            "From a target's verification here to the end of its Lustre recovery as followed, by outcome",
            m.recovery_duration.clone(),
        );
        registry.register("events", "Engine events, by name", m.events.clone());
        registry.register("datagrams_received", "Authenticated datagrams received on the heartbeat links", m.received.clone());
        registry.register("datagrams_rejected", "Datagrams dropped on the heartbeat links, by reason", m.rejected.clone());
        registry.register("datagram_send_failures", "Datagrams that could not be sent", m.send_failures.clone());
        Metrics { registry, ..m }
    }

    /// Register the disk heartbeat series (only when `cluster.disk_heartbeat` is set, so a cluster without it
    /// shows none of them).
    pub fn with_disk_heartbeat(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register("disk_heartbeat_write_ok", "1 when this node's last disk heartbeat write (and the read after it) succeeded", self.disk_write_ok.clone());
        r.register("disk_heartbeat_last_write_seconds", "Latency of this node's last successful O_DIRECT|O_DSYNC slot write", self.disk_last_write.clone());
        r.register("disk_heartbeat_write_seconds", "Latency of this node's O_DIRECT|O_DSYNC slot writes", self.disk_write_latency.clone());
        r.register("disk_heartbeat_rounds", "Disk heartbeat rounds (write then read back) that came back, by result (ok, failed)", self.disk_rounds.clone());
        r.register(
            "disk_heartbeat_skipped",
            "Disk heartbeats skipped because the previous round had not come back (a slow or hung device)",
            self.disk_skipped.clone(),
        );
        r.register("peer_disk_slot_age_seconds", "Seconds since the peer's disk heartbeat slot last advanced, as this node read it", self.disk_slot_age.clone());
        r.register("peer_disk_slot_valid", "1 when the peer's slot last read was valid (right cluster, node and MAC)", self.disk_slot_valid.clone());
        for result in ["ok", "failed"] {
            let _ = self.disk_rounds.get_or_create(&ResultLabels { result: result.into() });
        }
        self
    }

    /// A disk heartbeat round came back: its write latency, or its failure.
    pub fn on_disk_round(&self, write: &std::result::Result<Duration, String>) {
        match write {
            Ok(d) => {
                self.disk_write_ok.set(1);
                self.disk_last_write.set(d.as_secs_f64());
                self.disk_write_latency.observe(d.as_secs_f64());
                self.disk_rounds.get_or_create(&ResultLabels { result: "ok".into() }).inc();
            }
            Err(_) => {
                self.disk_write_ok.set(0);
                self.disk_rounds.get_or_create(&ResultLabels { result: "failed".into() }).inc();
            }
        }
    }

    /// Set the disk heartbeat series that are read at a scrape: skipped beats and every peer's slot age.
    pub fn refresh_disk(&self, stats: &super::disk_heartbeat::DiskStats, now: std::time::Instant) {
        self.disk_skipped.inner().store(stats.skipped, Ordering::Relaxed);
        for p in &stats.peers {
            let labels = NodeLabels { node: p.node.clone() };
            match p.advanced_at {
                Some(t) => {
                    self.disk_slot_age.get_or_create(&labels).set(now.saturating_duration_since(t).as_secs_f64());
                }
                None => {
                    self.disk_slot_age.remove(&labels);
                }
            }
            self.disk_slot_valid.get_or_create(&labels).set(i64::from(p.last.is_some() && p.problem.is_none()));
        }
    }

    /// Count an engine event.
    pub fn on_event(&self, event: &Event) {
        self.events.get_or_create(&EventLabels { event: event.name() }).inc();
        let outcome = |node: &str, outcome: &str| {
            self.fence_outcomes.get_or_create(&OutcomeLabels { node: node.into(), outcome: outcome.into() }).inc();
        };
        match event {
            Event::FenceStarted { node, .. } => {
                self.fence_attempts.get_or_create(&NodeLabels { node: node.clone() }).inc();
            }
            Event::FenceConfirmed { node, .. } => outcome(node, "confirmed"),
            Event::FenceLevelFailed { node, .. } => outcome(node, "level_failed"),
            Event::FenceFailed { node, .. } => outcome(node, "failed"),
            Event::FenceNeedsOperator { node } => outcome(node, "needs_operator"),
            Event::FenceCancelled { node, .. } => outcome(node, "cancelled"),
            Event::FenceConfirmedByOperator { node } => outcome(node, "confirmed_by_operator"),
            Event::FenceLied { node } => outcome(node, "lied"),
            Event::ConfigMismatch { node, .. } => {
                self.peer_config_mismatch.get_or_create(&NodeLabels { node: node.clone() }).set(1);
            }
            Event::ConfigAgreed { node } => {
                self.peer_config_mismatch.get_or_create(&NodeLabels { node: node.clone() }).set(0);
            }
            Event::StepDone { step, ms, .. } => {
                self.step_duration.get_or_create(&StepLabels { step: step.name().to_string() }).observe(*ms as f64 / 1000.0);
            }
            Event::SequenceDone { sequence, ms, .. } => {
                if let Some(kind) = migration_kind(*sequence) {
                    self.migration_duration.get_or_create(&KindLabels { kind: kind.into() }).observe(*ms as f64 / 1000.0);
                }
            }
            Event::TargetRecovering { target, .. } => {
                self.target_recovering.get_or_create(&TargetLabels { target: target.clone() }).set(1);
            }
            Event::TargetRecovered { target, outcome, followed_ms, .. } => {
                self.target_recovering.get_or_create(&TargetLabels { target: target.clone() }).set(0);
                self.recovery_duration.get_or_create(&OutcomeOnlyLabels { outcome: outcome.clone() }).observe(*followed_ms as f64 / 1000.0);
            }
            Event::SequenceFailed { sequence, .. } => {
                if let Some(kind) = migration_kind(*sequence) {
                    self.migration_failures.get_or_create(&KindLabels { kind: kind.into() }).inc();
                }
            }
            _ => {}
        }
    }

    /// Set the status-based series from the engine's status and the links' counters.
    pub fn refresh(&self, status: &Status, net: &NetCounters) {
        self.config_mismatch.clear();
        for p in &status.peers {
            for key in p.config_mismatch.iter().flat_map(|m| {
                let keys: Vec<String> = m.keys.iter().map(|k| k.key.clone()).collect();
                if keys.is_empty() { vec!["(unknown)".to_string()] } else { keys }
            }) {
                self.config_mismatch.get_or_create(&MismatchLabels { peer: p.node.clone(), key }).set(1);
            }
            self.peer_alive.get_or_create(&NodeLabels { node: p.node.clone() }).set(i64::from(p.alive));
            // Present (0) for every peer from the first scrape on, so that `increase()` in alert rules sees the
            // first fence (a series born at 1 shows no increase); the events move them.
            self.peer_config_mismatch.get_or_create(&NodeLabels { node: p.node.clone() }).set(i64::from(p.config_mismatch.is_some()));
            let _ = self.fence_attempts.get_or_create(&NodeLabels { node: p.node.clone() });
            for outcome in FENCE_OUTCOMES {
                let _ = self.fence_outcomes.get_or_create(&OutcomeLabels { node: p.node.clone(), outcome: outcome.into() });
            }
            for l in &p.links {
                let labels = LinkLabels { node: p.node.clone(), link: l.link.clone() };
                self.link_up.get_or_create(&labels).set(i64::from(l.up));
                match l.last_heard_ms {
                    Some(ms) => {
                        self.last_heard.get_or_create(&labels).set(ms as f64 / 1000.0);
                    }
                    None => {
                        self.last_heard.remove(&labels);
                    }
                }
            }
        }
        for kind in ["forced", "controlled", "release"] {
            let _ = self.migration_failures.get_or_create(&KindLabels { kind: kind.into() });
        }
        self.quorate.set(i64::from(status.quorum.quorate));
        self.votes.set(i64::from(status.quorum.votes));
        self.votes_needed.set(i64::from(status.quorum.needed));
        self.witness_vote.set(i64::from(status.quorum.witness_vote));
        self.maintenance.set(i64::from(status.maintenance));
        for t in &status.targets {
            let owned = t.owner.as_deref() == Some(status.node.as_str());
            self.target_owned.get_or_create(&TargetLabels { target: t.target.clone() }).set(i64::from(owned));
            self.target_blocked.get_or_create(&TargetLabels { target: t.target.clone() }).set(i64::from(t.blocked.is_some()));
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.received.inner().store(load(&net.accepted), Ordering::Relaxed);
        self.send_failures.inner().store(load(&net.send_failed), Ordering::Relaxed);
        for (reason, c) in [
            ("too_short", &net.too_short),
            ("too_large", &net.too_large),
            ("bad_magic", &net.bad_magic),
            ("bad_version", &net.bad_version),
            ("bad_mac", &net.bad_mac),
            ("malformed", &net.malformed),
        ] {
            self.rejected.get_or_create(&ReasonLabels { reason: reason.into() }).inner().store(load(c), Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // writing into a String cannot fail
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The `kind` label of a sequence (`None` for the monitor, which is no migration).
fn migration_kind(sequence: SequenceKind) -> Option<&'static str> {
    match sequence {
        SequenceKind::Forced => Some("forced"),
        SequenceKind::Acquire => Some("controlled"),
        SequenceKind::Release => Some("release"),
        SequenceKind::Monitor => None,
    }
}

/// A request to the daemon loop: refresh the status-based series, then answer.
pub type RefreshRequest = oneshot::Sender<()>;

/// Bind the metrics listener (errors name `cluster.metrics_listen`).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| RuntimeError::io(format!("cluster.metrics_listen: cannot listen on TCP {addr}: {e}")))
}

/// Serve `GET /metrics` on `listener` until the daemon ends. Each scrape first asks the daemon loop to
/// refresh through `refresh`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, refresh: mpsc::Sender<RefreshRequest>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin
                tracing::warn!(error = %e, "metrics: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%from, "metrics: too many connections; closing this one");
            continue;
        };
        let metrics = metrics.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &metrics, &refresh).await {
                tracing::debug!(%from, error = %e, "metrics: connection ended badly");
            }
            drop(slot);
        });
    }
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (`head_only` for `HEAD`).
    Metrics { head_only: bool },
    /// Another path: 404.
    NotFound,
    /// Another method: 405.
    MethodNotAllowed,
    /// Not an HTTP request line: 400.
    BadRequest,
}

/// Route a request by its head (request line and headers). Pure.
pub fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else { return Route::BadRequest };
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Route::BadRequest;
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Route::BadRequest;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    if path == "/metrics" {
        Route::Metrics { head_only }
    } else {
        Route::NotFound
    }
}

/// The end of a request head (`\r\n\r\n`, or a bare `\n\n`), if the buffer holds it.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(Some(buf));
        }
        if buf.len() >= MAX_REQUEST_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            // the client closed before finishing its head: answer what we have, or nothing
            return Ok(if buf.is_empty() { None } else { Some(buf) });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics, refresh: &mpsc::Sender<RefreshRequest>) -> std::io::Result<()> {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Ok(r) => r?,
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request head not read in time")),
    };
    let (status, content_type, body, head_only) = match head.as_deref().map(route).unwrap_or(Route::BadRequest) {
        Route::Metrics { head_only } => {
            let (tx, rx) = oneshot::channel();
            // bounded as a whole: a stalled loop may leave the channel full as well as the request unanswered
            let refreshed = tokio::time::timeout(REFRESH_WAIT, async { refresh.send(tx).await.is_ok() && rx.await.is_ok() }).await;
            if !matches!(refreshed, Ok(true)) {
                tracing::warn!("metrics: the daemon loop did not refresh the status in time; serving older values");
            }
            ("200 OK", prometheus_text::CONTENT_TYPE, metrics.encode(), head_only)
        }
        Route::NotFound => ("404 Not Found", "text/plain; charset=utf-8", "not found: the metrics are at /metrics\n".into(), false),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET and HEAD\n".into(), false),
        Route::BadRequest => ("400 Bad Request", "text/plain; charset=utf-8", "bad request\n".into(), false),
    };
    let mut response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if status.starts_with("405") { "Allow: GET, HEAD\r\n" } else { "" }
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    match tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await
    {
        Ok(r) => r?,
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "response not written in time")),
    }
    // Lingering close: closing with unread request bytes (an oversized head) makes the kernel send a reset,
    // which can destroy the response before the client reads it. Read and drop what is left, bounded.
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 4096];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{LinkStatus, PeerStatus, TargetStatus};
    use crate::engine::FenceReason;
    use crate::fence::FenceAction;

    #[test]
    fn requests_are_routed() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics { head_only: false });
        assert_eq!(route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics { head_only: true });
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
        assert_eq!(route(b""), Route::BadRequest);
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n"), None);
    }

    fn status() -> Status {
        let json = serde_json::json!({
            "node": "n1", "incarnation": 3, "maintenance": false,
            "quorum": { "votes": 3, "total": 3, "needed": 2, "quorate": true, "two_node": false, "witness_vote": true, "reason": "ok" },
            "all_nodes_seen": true, "discovered": true, "asking_to_be_fenced": null,
            "peers": [], "targets": [], "fencing": [], "recent_events": []
        });
        let mut s: Status = serde_json::from_value(json).unwrap();
        s.peers.push(PeerStatus {
            node: "n2".into(),
            alive: true,
            ever_seen: true,
            incarnation: Some(1),
            links: vec![
                LinkStatus { link: "ring0".into(), up: true, last_heard_ms: Some(250) },
                LinkStatus { link: "ring1".into(), up: false, last_heard_ms: None },
            ],
            fenced: false,
            config_mismatch: None,
            left: false,
            conflict_incarnation: None,
        });
        let mut n5 = s.peers[0].clone();
        n5.node = "n5".into();
        n5.config_mismatch = Some(crate::engine::ConfigMismatchStatus {
            keys: vec![crate::engine::KeyDiff { key: "cluster.dead_after".into(), here: Some("3s".into()), there: Some("5s".into()) }],
            keys_known: true,
            targets: vec![],
            blocks_fencing: true,
        });
        s.peers.push(n5);
        s.targets.push(TargetStatus { target: "MGT".into(), owner: Some("n1".into()), state: "running".into(), local: "running".into(), blocked: None, sequence: None, step: None, step_ms: None, sequence_ms: None, step_of: None, ..TargetStatus::default() });
        s.targets.push(TargetStatus {
            target: "MDT0".into(),
            owner: Some("n2".into()),
            state: "running".into(),
            local: "stopped".into(),
            blocked: Some("label names a foreign host".into()),
            sequence: None,
            step: None,
            step_ms: None,
            sequence_ms: None,
            step_of: None,
            ..TargetStatus::default()
        });
        s
    }

    #[test]
    fn recovery_events_become_series() {
        let m = Metrics::new("n1", "c1");
        let recovering = Event::TargetRecovering {
            target: "MDT0".into(),
            status: "RECOVERING".into(),
            connected_clients: Some(3),
            total_clients: Some(8),
            time_remaining_s: Some(120),
        };
        m.on_event(&recovering);
        assert!(m.encode().contains("failoverd_target_recovering{target=\"MDT0\"} 1\n"), "{}", m.encode());
        m.on_event(&Event::TargetRecovered {
            target: "MDT0".into(),
            outcome: "complete".into(),
            followed_ms: 42_000,
            recovery_duration_s: Some(41),
            completed_clients: Some(8),
            total_clients: Some(8),
            evicted_clients: Some(0),
            ir: Some(true),
            error: None,
        });
        let text = m.encode();
        assert!(text.contains("failoverd_target_recovering{target=\"MDT0\"} 0\n"), "{text}");
        assert!(text.contains("failoverd_recovery_duration_seconds_sum{outcome=\"complete\"} 42.0\n"), "{text}");
        assert!(text.contains("failoverd_recovery_duration_seconds_bucket{outcome=\"complete\",le=\"60\"} 1\n"), "{text}");
    }

    #[test]
    fn status_and_events_become_series() {
        let m = Metrics::new("n1", "c1");
        let net = NetCounters::default();
        net.accepted.store(42, Ordering::Relaxed);
        net.bad_mac.store(3, Ordering::Relaxed);
        m.refresh(&status(), &net);
        m.on_event(&Event::FenceStarted { node: "n2".into(), reason: FenceReason::PeerDead, action: FenceAction::Off, attempt: 1 });
        m.on_event(&Event::FenceConfirmed { node: "n2".into(), level: 0, devices: vec!["bmc".into()], action: FenceAction::Off });
        m.on_event(&Event::SequenceDone { target: "MDT0".into(), sequence: SequenceKind::Forced, ms: 25_500 });
        m.on_event(&Event::SequenceDone { target: "MDT0".into(), sequence: SequenceKind::Monitor, ms: 10 });
        m.on_event(&Event::StepDone { target: "MDT0".into(), sequence: SequenceKind::Forced, step: crate::storage::Step::Import, ms: 21_000 });
        let mismatch = |node: &str, targets: Vec<String>| Event::ConfigMismatch { node: node.into(), targets, keys: vec![], keys_known: false, blocks_fencing: true };
        m.on_event(&mismatch("n3", vec![]));
        m.on_event(&mismatch("n4", vec!["MGT".into()]));
        m.on_event(&Event::ConfigAgreed { node: "n4".into() });
        let text = m.encode();
        for line in [
            "failoverd_info{node=\"n1\",cluster=\"c1\",version=\"",
            "failoverd_peer_alive{node=\"n2\"} 1\n",
            "failoverd_peer_config_mismatch{node=\"n2\"} 0\n",
            "failoverd_peer_link_up{node=\"n2\",link=\"ring0\"} 1\n",
            "failoverd_peer_link_up{node=\"n2\",link=\"ring1\"} 0\n",
            "failoverd_peer_last_heard_seconds{node=\"n2\",link=\"ring0\"} 0.25\n",
            "failoverd_quorate 1\n",
            "failoverd_quorum_votes 3\n",
            "failoverd_witness_vote 1\n",
            "failoverd_maintenance 0\n",
            "failoverd_target_owned{target=\"MGT\"} 1\n",
            "failoverd_target_owned{target=\"MDT0\"} 0\n",
            "failoverd_target_blocked{target=\"MGT\"} 0\n",
            "failoverd_target_blocked{target=\"MDT0\"} 1\n",
            "failoverd_peer_config_mismatch{node=\"n2\"} 0\n",
            "failoverd_peer_config_mismatch{node=\"n3\"} 1\n",
            "failoverd_peer_config_mismatch{node=\"n4\"} 0\n",
            "failoverd_peer_config_mismatch{node=\"n5\"} 1\n",
            "failoverd_config_mismatch{peer=\"n5\",key=\"cluster.dead_after\"} 1\n",
            "failoverd_step_duration_seconds_count{step=\"import\"} 1\n",
            "failoverd_fence_outcomes_total{node=\"n2\",outcome=\"failed\"} 0\n",
            "failoverd_migration_failures_total{kind=\"forced\"} 0\n",
            "failoverd_step_duration_seconds_bucket{step=\"import\",le=\"30\"} 1\n",
            "failoverd_fence_attempts_total{node=\"n2\"} 1\n",
            "failoverd_fence_outcomes_total{node=\"n2\",outcome=\"confirmed\"} 1\n",
            "failoverd_migration_duration_seconds_count{kind=\"forced\"} 1\n",
            "failoverd_migration_duration_seconds_sum{kind=\"forced\"} 25.5\n",
            "failoverd_migration_duration_seconds_bucket{kind=\"forced\",le=\"30\"} 1\n",
            "failoverd_migration_duration_seconds_bucket{kind=\"forced\",le=\"20\"} 0\n",
            "failoverd_events_total{event=\"fence_started\"} 1\n",
            "failoverd_datagrams_received_total 42\n",
            "failoverd_datagrams_rejected_total{reason=\"bad_mac\"} 3\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("link=\"ring1\"} 0.") && !text.contains("kind=\"monitor\""), "{text}");
        assert!(!text.contains("failoverd_config_mismatch{peer=\"n2\""), "{text}");
        // once they agree, the series is gone at the next refresh
        let mut agreed = status();
        agreed.peers[1].config_mismatch = None;
        m.refresh(&agreed, &net);
        assert!(!m.encode().contains("failoverd_config_mismatch{"), "{}", m.encode());
    }
}
