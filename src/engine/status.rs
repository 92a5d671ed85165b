//! A snapshot of the engine for `failoverd status`, the control socket and the simulator's report.

use serde::{Deserialize, Serialize};

use crate::storage::{SequenceKind, Step};
use crate::time::Time;

use super::quorum::QuorumView;
use super::{Engine, Event, KeyDiff};

/// One link of one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub link: String,
    pub up: bool,
    pub last_heard_ms: Option<u64>,
}

/// One peer as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub node: String,
    pub alive: bool,
    pub ever_seen: bool,
    pub incarnation: Option<u64>,
    pub links: Vec<LinkStatus>,
    pub fenced: bool,
    /// Its configuration differs from this node's (known from its last heartbeats, kept while it is silent).
    #[serde(default)]
    pub config_mismatch: Option<ConfigMismatchStatus>,
    /// Its last heartbeat said it was leaving and it is silent now: a graceful stop, not a failure.
    #[serde(default)]
    pub left: bool,
    /// Another incarnation of this node heard live at the same time (two daemons claim it).
    #[serde(default)]
    pub conflict_incarnation: Option<u64>,
}

/// How a peer's configuration differs from this node's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMismatchStatus {
    /// Every differing setting with both values (empty while `keys_known` is false).
    pub keys: Vec<KeyDiff>,
    /// False until the peer's summary arrived (a peer of an older version never sends one).
    pub keys_known: bool,
    /// Targets whose definitions differ: not taken over automatically.
    pub targets: Vec<String>,
    /// The peer is not fenced automatically (a cluster-wide setting differs, or which one is not known).
    pub blocks_fencing: bool,
}

/// One target: who runs it and in what state, as this node knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub target: String,
    pub owner: Option<String>,
    pub state: String,
    pub local: String,
    pub blocked: Option<String>,
    /// The sequence under way here (`forced`, `acquire`, `release`), its current step and how long the step
    /// and the whole sequence have run.
    #[serde(default)]
    pub sequence: Option<SequenceKind>,
    #[serde(default, with = "crate::storage::step_name::option")]
    pub step: Option<Step>,
    #[serde(default)]
    pub step_ms: Option<u64>,
    #[serde(default)]
    pub sequence_ms: Option<u64>,
    /// Step number (1-based) and number of steps of the sequence.
    #[serde(default)]
    pub step_of: Option<(usize, usize)>,
    /// How long this start's `zpool import` ran (while it runs: so far). A forced import of a `multihost=on`
    /// pool spends most of it in the MMP activity check.
    #[serde(default)]
    pub import_ms: Option<u64>,
    /// The import is `zpool import -f` (the label named the fenced host): the one that waits out MMP.
    #[serde(default)]
    pub import_forced: bool,
    /// The forced import waits for these forced imports of this node to end, and for how long.
    #[serde(default)]
    pub import_waits_for: Vec<String>,
    #[serde(default)]
    pub import_wait_ms: Option<u64>,
    /// The mount step waits for these lower start_order targets to be verified here, and for how long.
    #[serde(default)]
    pub mount_waits_for: Vec<String>,
    #[serde(default)]
    pub mount_wait_ms: Option<u64>,
    /// The Lustre recovery of a target running here, in words (`recovering 37/99 clients, 120 s left`), or why
    /// it is not followed.
    #[serde(default)]
    pub recovery: Option<String>,
}

/// A fencing job in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceJobStatus {
    pub victim: String,
    pub action: String,
    pub attempt: u32,
    pub reason: String,
    /// `running` (a fence device is being driven), `operator` (manual level: an operator must power the node
    /// off and run `failoverd confirm-fenced`), `backoff` (every level failed; retry at `retry_in_ms`).
    #[serde(default)]
    pub waiting: String,
    #[serde(default)]
    pub retry_in_ms: Option<u64>,
    #[serde(default)]
    pub running_ms: u64,
}

/// A fence that will start unless the victim is heard again (the fence delay of a two-node race).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFence {
    pub victim: String,
    pub in_ms: u64,
}

/// The disk heartbeat channel (`[cluster] disk_heartbeat`) as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    /// The device (this node's path to it).
    pub device: String,
    /// A write of this node's slot succeeded within `dead_after`. False: this node fences nobody.
    pub writes_ok: bool,
    /// Time since the last successful write (none yet: `None`).
    pub last_write_ms: Option<u64>,
    /// Latency of the last successful write (O_DIRECT|O_DSYNC pwrite), in microseconds.
    pub last_latency_us: Option<u64>,
    /// The last write's error, while writes fail.
    pub error: Option<String>,
    pub peers: Vec<DiskPeerStatus>,
}

/// One peer's slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskPeerStatus {
    pub node: String,
    /// The slot advanced within `dead_after`.
    pub alive: bool,
    /// The last round with a successful write found the slot not advanced for `dead_after`: with every link
    /// silent too, the peer is dead (and fenced without the race delay).
    pub stopped: bool,
    /// Time since the slot last advanced (or since this node started watching, if it never did).
    pub slot_age_ms: u64,
    /// The latest (incarnation, seq) read from the slot.
    pub incarnation: Option<u64>,
    pub seq: Option<u64>,
    /// Why the last read gave no valid slot of this peer (`empty (never written)`, `bad MAC ...`).
    pub error: Option<String>,
}

/// The whole picture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    pub incarnation: u64,
    pub maintenance: bool,
    /// Nodes in standby (they run no target).
    #[serde(default)]
    pub standby: Vec<String>,
    pub quorum: QuorumView,
    pub all_nodes_seen: bool,
    pub discovered: bool,
    pub asking_to_be_fenced: Option<String>,
    pub peers: Vec<PeerStatus>,
    pub targets: Vec<TargetStatus>,
    pub fencing: Vec<FenceJobStatus>,
    pub recent_events: Vec<(Time, Event)>,
    /// The cluster's name (`cluster.name`).
    #[serde(default)]
    pub cluster: String,
    /// Fences waiting for their delay to pass.
    #[serde(default)]
    pub fence_pending: Vec<PendingFence>,
    /// Nodes whose automatic fencing an operator cancelled (until they are heard again).
    #[serde(default)]
    pub fence_cancelled: Vec<String>,
    /// Nodes that need fencing but are not fenced automatically, with why (their configuration differs).
    #[serde(default)]
    pub fence_blocked: Vec<(String, String)>,
    /// The time of this snapshot on the engine's clock (to turn event times into wall-clock times).
    #[serde(default)]
    pub now: Time,
    /// The disk heartbeat channel, when `disk_heartbeat` is configured.
    #[serde(default)]
    pub disk: Option<DiskStatus>,
}

impl Engine {
    fn disk_status(&self, now: Time) -> Option<DiskStatus> {
        let d = self.disk.as_ref()?;
        let dead_after = self.cfg.cluster.dead_after;
        let peers = self
            .peers
            .keys()
            .map(|name| {
                let p = d.peers.get(name);
                DiskPeerStatus {
                    node: name.clone(),
                    alive: d.peer_alive(name, now, dead_after),
                    stopped: d.peer_stopped(name, now, dead_after),
                    slot_age_ms: d.slot_age(name, now).as_millis() as u64,
                    incarnation: p.and_then(|p| p.last).map(|(i, _)| i),
                    seq: p.and_then(|p| p.last).map(|(_, s)| s),
                    error: p.and_then(|p| p.error.clone()),
                }
            })
            .collect();
        Some(DiskStatus {
            device: d.device.display().to_string(),
            writes_ok: d.path_ok(now, dead_after),
            last_write_ms: d.last_write_ok.map(|t| now.since(t).as_millis() as u64),
            last_latency_us: d.last_latency.map(|l| l.as_micros() as u64),
            error: d.last_error.clone(),
            peers,
        })
    }

    /// The status snapshot at `now`.
    pub fn status(&self, now: Time) -> Status {
        let links = &self.cfg.cluster.links;
        let peers = self
            .peers
            .iter()
            .map(|(name, p)| PeerStatus {
                node: name.clone(),
                alive: p.alive(),
                ever_seen: p.ever_seen,
                incarnation: p.incarnation,
                links: links
                    .iter()
                    .enumerate()
                    .map(|(i, l)| LinkStatus {
                        link: l.clone(),
                        up: p.link_up(i),
                        last_heard_ms: p.link_last_heard(i).map(|t| now.since(t).as_millis() as u64),
                    })
                    .collect(),
                fenced: self.fenced.contains_key(name),
                config_mismatch: self.mismatches.get(name).map(|m| ConfigMismatchStatus {
                    keys: m.keys.clone().unwrap_or_default(),
                    keys_known: m.keys.is_some(),
                    targets: m.targets.clone(),
                    blocks_fencing: m.blocks_fencing(),
                }),
                left: self.peer_left(name),
                conflict_incarnation: p.conflict(),
            })
            .collect();
        let targets = self
            .targets
            .values()
            .map(|s| {
                let (owner, state) = self.owner_of(&s.cfg.name);
                let mut t = TargetStatus {
                    target: s.cfg.name.clone(),
                    owner,
                    state,
                    local: s.local.name().to_string(),
                    blocked: s.blocked.clone(),
                    sequence: None,
                    step: None,
                    step_ms: None,
                    sequence_ms: None,
                    step_of: None,
                    import_ms: None,
                    import_forced: false,
                    import_waits_for: Vec::new(),
                    import_wait_ms: None,
                    mount_waits_for: Vec::new(),
                    mount_wait_ms: None,
                    recovery: self.recovery_words(&s.cfg.name, now),
                };
                if let super::Local::Starting { run, started, step_started, .. } | super::Local::Releasing { run, started, step_started, .. } =
                    &s.local
                {
                    t.sequence = Some(run.kind());
                    t.step = run.step();
                    t.step_ms = Some(now.since(*step_started).as_millis() as u64);
                    t.sequence_ms = Some(now.since(*started).as_millis() as u64);
                    t.step_of = Some(((run.steps_done() + 1).min(run.plan().len()), run.plan().len()));
                }
                if let super::Local::Starting { run, step_started, import_waits, mount_waits, import_ms, .. } = &s.local {
                    t.import_forced = run.used_force();
                    t.import_ms = match (run.step(), import_waits) {
                        (Some(crate::storage::Step::Import), None) => Some(now.since(*step_started).as_millis() as u64),
                        (Some(crate::storage::Step::Import), Some(_)) => None,
                        _ => *import_ms,
                    };
                    if let Some(since) = import_waits {
                        t.import_waits_for = self.import_blockers(&s.cfg.name);
                        t.import_wait_ms = Some(now.since(*since).as_millis() as u64);
                    }
                    if let Some(since) = mount_waits {
                        t.mount_waits_for = self.mount_blockers(&s.cfg.name);
                        t.mount_wait_ms = Some(now.since(*since).as_millis() as u64);
                    }
                }
                t
            })
            .collect();
        let fencing = self
            .fence_jobs
            .values()
            .map(|j| {
                let victim = j.victim.name.clone();
                let (waiting, retry_in_ms) = if j.waiting_retry {
                    ("backoff", self.fence_waits.get(&victim).map(|t| t.since(now).as_millis() as u64))
                } else if self.fence_operator_alerted.contains(&victim) {
                    ("operator", None)
                } else {
                    ("running", None)
                };
                FenceJobStatus {
                    action: j.action.as_str().to_string(),
                    attempt: j.attempt,
                    reason: j.reason.as_str().to_string(),
                    waiting: waiting.to_string(),
                    retry_in_ms,
                    running_ms: now.since(j.started_at).as_millis() as u64,
                    victim,
                }
            })
            .collect();
        let fence_pending = self
            .fence_not_before
            .iter()
            .filter(|(v, _)| !self.fence_jobs.contains_key(*v))
            .map(|(v, t)| PendingFence { victim: v.clone(), in_ms: t.since(now).as_millis() as u64 })
            .collect();
        Status {
            node: self.me.name.clone(),
            incarnation: self.incarnation,
            maintenance: self.maintenance.1,
            standby: self.standby.1.iter().cloned().collect(),
            quorum: self.quorum.clone(),
            all_nodes_seen: self.all_seen,
            discovered: self.discovered,
            asking_to_be_fenced: self.fence_me.clone(),
            peers,
            targets,
            fencing,
            recent_events: self.recent.iter().cloned().collect(),
            cluster: self.cfg.cluster.name.clone(),
            fence_pending,
            fence_cancelled: self.fence_cancelled.iter().cloned().collect(),
            fence_blocked: self.fence_blocked.iter().map(|(n, w)| (n.clone(), w.clone())).collect(),
            now,
            disk: self.disk_status(now),
        }
    }
}
