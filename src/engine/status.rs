//! A snapshot of the engine for `failoverd status`, the control socket and the simulator's report.

use serde::{Deserialize, Serialize};

use crate::time::Time;

use super::quorum::QuorumView;
use super::{Engine, Event};

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
    pub config_mismatch: Vec<String>,
}

/// One target: who runs it and in what state, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub target: String,
    pub owner: Option<String>,
    pub state: String,
    pub local: String,
    pub blocked: Option<String>,
}

/// A fencing job in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceJobStatus {
    pub victim: String,
    pub action: String,
    pub attempt: u32,
    pub reason: String,
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
}

impl Engine {
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
                config_mismatch: self.mismatches.get(name).cloned().unwrap_or_default(),
            })
            .collect();
        let targets = self
            .targets
            .values()
            .map(|s| {
                let (owner, state) = self.owner_of(&s.cfg.name);
                TargetStatus { target: s.cfg.name.clone(), owner, state, local: s.local.name().to_string(), blocked: s.blocked.clone() }
            })
            .collect();
        let fencing = self
            .fence_jobs
            .values()
            .map(|j| FenceJobStatus { victim: j.victim.name.clone(), action: format!("{:?}", j.action).to_lowercase(), attempt: j.attempt, reason: format!("{:?}", j.reason) })
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
        }
    }
}
