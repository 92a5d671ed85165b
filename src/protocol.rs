//! The wire format of failoverd datagrams: versioned, compact (serde + postcard), authenticated with a keyed
//! MAC over the whole datagram, and bounded in size. Pure: bytes in, typed message out, never a panic.
//!
//! (The codec is filled in by the protocol work; the message types below are the contract.)

use serde::{Deserialize, Serialize};

/// Format version carried in every datagram; a receiver drops other versions.
pub const PROTOCOL_VERSION: u8 = 1;

/// Hard upper bound of an encoded datagram, MAC included (fits a 1500-byte MTU with room to spare).
pub const MAX_DATAGRAM: usize = 1200;

/// Length of the MAC tag appended to each datagram.
pub const MAC_LEN: usize = 32;

/// Every datagram: who sent it, in which incarnation, with which sequence number, and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub cluster: String,
    pub sender: String,
    /// Bumped and persisted at every start of the sender: (incarnation, seq) orders all its datagrams.
    pub incarnation: u64,
    pub seq: u64,
    pub body: Body,
}

/// The kinds of datagrams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Heartbeat(Heartbeat),
    /// Node → witness: "this is what I see; do I hold your vote?"
    WitnessQuery(WitnessQuery),
    /// Witness → node: the answer to the query with sequence `query_seq`.
    WitnessReply(WitnessReply),
}

/// What a node tells its peers every `heartbeat_interval` on every link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Index of the link this copy was sent on.
    pub link: u8,
    /// The sender's view of its peers.
    pub peers: Vec<PeerView>,
    pub quorate: bool,
    /// The sender knows what it holds locally (startup discovery finished).
    pub discovered: bool,
    /// The sender is leaving on purpose (graceful stop): do not fence it.
    pub leaving: bool,
    /// The cluster is in maintenance on the sender: no automatic action.
    pub maintenance: bool,
    /// Version of the maintenance setting: the highest (epoch, value) wins cluster-wide.
    pub maintenance_epoch: u64,
    /// The sender cannot release a target cleanly and asks to be fenced so a peer can take over.
    pub fence_me: bool,
    /// Digest of the cluster-wide configuration.
    pub config_digest: [u8; 16],
    /// Targets the sender holds or is moving, with their state.
    pub targets: Vec<TargetView>,
    /// Digest of each target's definition, so peers block takeover of targets whose definitions differ.
    pub target_digests: Vec<(String, u32)>,
    /// Controlled migrations the sender asks the owner to perform: (target, destination node).
    pub move_requests: Vec<(String, String)>,
}

/// One peer as the sender sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub node: String,
    /// Bit i set: link i delivered a valid heartbeat from that peer within dead_after.
    pub links_up: u8,
    pub alive: bool,
}

/// A target as its holder reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    pub name: String,
    pub state: TargetState,
}

/// Lifecycle of a target on the node that reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetState {
    /// Import/mount under way.
    Starting,
    /// Mounted and verified.
    Running,
    /// umount/export under way, for a move to `to` (None: stopping in place).
    Releasing { to: Option<String> },
    /// Cleanly exported and handed to `to`: the destination may import it without -f.
    HandedOff { to: String },
    /// A step failed: the sender may still hold part of it (pool imported, not mounted...).
    Failed,
}

/// Node → witness query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessQuery {
    /// Nodes the sender currently sees alive (itself included).
    pub sees: Vec<String>,
    /// Total number of nodes in the cluster.
    pub cluster_size: u8,
}

/// Witness → node reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessReply {
    /// The `seq` of the query this answers.
    pub query_seq: u64,
    /// The node the witness answered.
    pub node: String,
    /// The witness's vote is granted to the partition of `node`.
    pub granted: bool,
    /// The node currently holding the vote, if any.
    pub holder: Option<String>,
}

/// Why a datagram was rejected. Every malformed input maps to one of these; decode never panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("datagram too short ({0} bytes)")]
    TooShort(usize),
    #[error("datagram too large ({0} bytes, limit {MAX_DATAGRAM})")]
    TooLarge(usize),
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    #[error("MAC check failed (wrong key or corrupted datagram)")]
    BadMac,
    #[error("malformed body: {0}")]
    Malformed(String),
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("encoded datagram would be {0} bytes, limit {MAX_DATAGRAM}")]
    TooLarge(usize),
    #[error("serialization failed: {0}")]
    Serialize(String),
}

/// The cluster key (and, during a key roll, the next one).
#[derive(Clone)]
pub struct Keys {
    pub active: Vec<u8>,
    pub next: Option<Vec<u8>>,
}

/// Encode `env` as an authenticated datagram with `key`.
pub fn encode(env: &Envelope, key: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let _ = (env, key);
    Err(EncodeError::Serialize("codec not implemented yet".into()))
}

/// Decode and authenticate a datagram with any of `keys` (active first, then next).
pub fn decode(bytes: &[u8], keys: &Keys) -> Result<Envelope, DecodeError> {
    let _ = keys;
    Err(DecodeError::TooShort(bytes.len()))
}
