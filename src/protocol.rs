//! The wire format of failoverd datagrams: versioned, compact (serde + postcard), authenticated with a keyed
//! MAC over the whole datagram, and bounded in size. Pure: bytes in, typed message out, never a panic.
//!
//! # Datagram layout (frozen, version 5: version 4 had no `incarnation` in `PeerView`, version 3 no `fenced` in
//! heartbeats, version 2 no `ConfigSummary`, version 1 no standby fields)
//!
//! One UDP datagram carries exactly one [`Envelope`]:
//!
//! ```text
//! offset    length  content
//! 0         3       magic: ASCII "FOD" (0x46 0x4F 0x44)
//! 3         1       format version: PROTOCOL_VERSION (0x05)
//! 4         n       body: the Envelope in postcard encoding, n >= 1
//! 4 + n     32      tag: HMAC-SHA256(key, bytes[0 .. 4 + n])  (header and body, everything before the tag)
//! ```
//!
//! The total length `4 + n + 32` is at least [`MIN_DATAGRAM`] (37) and at most [`MAX_DATAGRAM`] (1200) bytes, so
//! the body is at most 1164 bytes. The first four bytes ([`HEADER`]) stay the same in every future version, so
//! any receiver can tell "not ours" ([`DecodeError::BadMagic`]) from "ours, other version"
//! ([`DecodeError::BadVersion`]) before touching anything else.
//!
//! The body is serialized with postcard 1.x. The design card named bincode; bincode is unmaintained
//! (RUSTSEC-2025-0141), so postcard, whose wire format is specified and stable across 1.x, is used instead.
//! Postcard writes no field names and no type tags, so the body is fully determined by the rules and the field
//! lists below:
//!
//! | type | bytes |
//! |---|---|
//! | `u8` | 1 raw byte |
//! | `u32`, `u64` | unsigned LEB128 varint: 7 bits per byte, least significant group first, bit 7 set on every byte but the last (at most 5 / 10 bytes) |
//! | `bool` | `0x00` false, `0x01` true; any other byte is rejected |
//! | `String` | varint byte length, then that many bytes of UTF-8 (invalid UTF-8 is rejected) |
//! | `Vec<T>` | varint element count, then the elements |
//! | `Option<T>` | `0x00` for None, or `0x01` followed by the value |
//! | `[u8; 16]` | 16 raw bytes, no length |
//! | tuple `(A, B)` | A then B |
//! | struct | its fields in declaration order |
//! | enum | varint variant index (declaration order, from 0), then the variant's fields |
//!
//! Field order of the body (all messages):
//!
//! ```text
//! Envelope     = cluster: String, sender: String, incarnation: u64, seq: u64, body: Body
//! Body         = 0 Heartbeat | 1 WitnessQuery | 2 WitnessReply | 3 ConfigSummary
//! Heartbeat    = link: u8, peers: Vec<PeerView>, quorate: bool, discovered: bool, leaving: bool,
//!                maintenance: bool, maintenance_epoch: u64 (varint), standby: Vec<String>, standby_epoch: u64 (varint),
//!                fence_me: bool, config_digest: [u8; 16], targets: Vec<TargetView>,
//!                target_digests: Vec<(String, u32)>, move_requests: Vec<(String, String)>,
//!                fenced: Vec<FenceConfirmation>
//! PeerView     = node: String, links_up: u8, alive: bool, incarnation: u64 (varint)
//! FenceConfirmation = node: String, incarnation: Option<u64>, age_ms: u64, level: u8
//! TargetView   = name: String, state: TargetState
//! TargetState  = 0 Starting | 1 Running | 2 Releasing { to: Option<String> } | 3 HandedOff { to: String }
//!                | 4 Failed
//! WitnessQuery = sees: Vec<String>, cluster_size: u8
//! WitnessReply = query_seq: u64, node: String, granted: bool, holder: Option<String>
//! ConfigSummary = digest: [u8; 16], part: u8, parts: u8, entries: Vec<(String, String)>
//! ```
//!
//! Example: `Envelope { cluster: "c1", sender: "n1", incarnation: 1, seq: 2, body: WitnessQuery { sees: ["n1"],
//! cluster_size: 2 } }` has the body `02 63 31 02 6e 31 01 02 01 01 02 6e 31 02` (the `format_is_frozen` test
//! pins the whole datagram).
//!
//! Senders always write the shortest varints; receivers accept whatever postcard accepts. Reordering, adding or
//! removing a field or a variant changes the wire format and requires a new [`PROTOCOL_VERSION`].
//!
//! # Receive pipeline
//!
//! [`decode`] checks, in this order, and stops at the first failure: the length ([`DecodeError::TooShort`],
//! [`DecodeError::TooLarge`]), the magic and version, the MAC in constant time under the active key and then
//! under the next key ([`DecodeError::BadMac`]), and only then deserializes the body ([`DecodeError::Malformed`]:
//! a postcard error, bytes left over after the envelope, or contents no correct sender produces, see
//! [`validate`]). Nothing a sender without the key writes reaches the deserializer. Replay and cluster-name
//! checks depend on the receiver's state and are done by the engine, not here.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Format version carried in every datagram; a receiver drops other versions.
pub const PROTOCOL_VERSION: u8 = 5;

/// Most datagrams one [`ConfigSummary`] may span (`parts`). A configuration whose summary needs more is
/// refused at start, like one whose heartbeat would not fit.
pub const MAX_SUMMARY_PARTS: u8 = 64;

/// Hard upper bound of an encoded datagram, MAC included (fits a 1500-byte MTU with room to spare).
pub const MAX_DATAGRAM: usize = 1200;

/// Length of the MAC tag appended to each datagram.
pub const MAC_LEN: usize = 32;

/// Marks a datagram as failoverd's, so stray traffic on the port is told apart from a peer on another version.
pub const MAGIC: [u8; 3] = *b"FOD";

/// The first bytes of every datagram this version writes: [`MAGIC`] followed by [`PROTOCOL_VERSION`].
pub const HEADER: [u8; 4] = [MAGIC[0], MAGIC[1], MAGIC[2], PROTOCOL_VERSION];

/// Length of [`HEADER`].
pub const HEADER_LEN: usize = HEADER.len();

/// Shortest datagram worth looking at: header, at least one body byte, and the tag.
pub const MIN_DATAGRAM: usize = HEADER_LEN + 1 + MAC_LEN;

/// Number of links a heartbeat can describe: `PeerView::links_up` is a one-byte bitmask, so link indices run
/// from 0 to 7.
pub const MAX_LINKS: u8 = 8;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Every datagram: who sent it, in which incarnation, with which sequence number, and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Cluster id: a receiver drops datagrams of another cluster that happen to share the key.
    pub cluster: String,
    /// Node name of the sender, as in the cluster configuration.
    pub sender: String,
    /// Bumped and persisted at every start of the sender: (incarnation, seq) orders all its datagrams.
    pub incarnation: u64,
    /// Per-incarnation sequence number, so a replayed or reordered datagram is recognised as not newer.
    pub seq: u64,
    /// What the datagram says.
    pub body: Body,
}

/// The kinds of datagrams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Node → peers: liveness and the sender's view (see [`Heartbeat`]).
    Heartbeat(Heartbeat),
    /// Node → witness: "this is what I see; do I hold your vote?"
    WitnessQuery(WitnessQuery),
    /// Witness → node: the answer to the query with sequence `query_seq`.
    WitnessReply(WitnessReply),
    /// Node → peers, only while some peer's heartbeats carry another `config_digest`: one part of the
    /// sender's cluster-wide settings, so that the peers can name every differing key with both values.
    ConfigSummary(ConfigSummary),
}

/// One part of a node's cluster-wide settings (`Config::agreement_values`: `key`, `value` as
/// `failoverd check-config` prints them, secrets replaced), sent only while a peer's digest differs. The
/// entries of all `parts` parts, in key order, are the whole list; a receiver uses a summary only when its
/// `digest` is the one the sender's latest accepted heartbeat carried, so a replayed or stale one is ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSummary {
    /// The sender's `config_digest` (the same as in its heartbeats).
    pub digest: [u8; 16],
    /// This part's index, from 0.
    pub part: u8,
    /// How many parts the summary has (1 to [`MAX_SUMMARY_PARTS`]).
    pub parts: u8,
    /// (key, value) pairs in key order.
    pub entries: Vec<(String, String)>,
}

/// What a node tells its peers every `heartbeat_interval` on every link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Index of the link this copy was sent on.
    pub link: u8,
    /// The sender's view of its peers.
    pub peers: Vec<PeerView>,
    /// The sender currently holds quorum.
    pub quorate: bool,
    /// The sender knows what it holds locally (startup discovery finished).
    pub discovered: bool,
    /// The sender is leaving on purpose (graceful stop): do not fence it.
    pub leaving: bool,
    /// The cluster is in maintenance on the sender: no automatic action.
    pub maintenance: bool,
    /// Version of the maintenance setting: the highest (epoch, value) wins cluster-wide.
    pub maintenance_epoch: u64,
    /// Nodes in standby (they run no target), as the sender knows it.
    pub standby: Vec<String>,
    /// Version of the standby set: the highest (epoch, set) wins cluster-wide.
    pub standby_epoch: u64,
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
    /// The fence confirmations the sender made itself (by a fence device or an operator on the sender) and
    /// still holds, so a node that may take over the fenced node's targets but did not fence it learns that
    /// the node is off (see `engine/fence_control.rs`, `adopt_peer_confirmations`).
    pub fenced: Vec<FenceConfirmation>,
}

/// "`node` is confirmed powered off": one fence confirmation a node shares with its peers in its heartbeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceConfirmation {
    /// The fenced node.
    pub node: String,
    /// Its incarnation as the sender last heard it before the fence (None: never heard in the sender's run).
    /// A receiver that heard the node in a newer incarnation ignores the confirmation: the node rebooted.
    pub incarnation: Option<u64>,
    /// How long ago the sender recorded the confirmation, in milliseconds (the nodes' clocks share no epoch;
    /// an age does not need one). A receiver that heard the node after that moment ignores it.
    pub age_ms: u64,
    /// The fence level (1-based, of the node's `fence_levels`) whose devices confirmed it off; 0: an operator
    /// confirmed it (`failoverd confirm-fenced` on the sender).
    pub level: u8,
}

/// One peer as the sender sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// Node name of the peer.
    pub node: String,
    /// Bit i set: link i delivered a valid heartbeat from that peer within dead_after.
    pub links_up: u8,
    /// The sender considers the peer alive.
    pub alive: bool,
    /// The peer's incarnation the sender last accepted (0: never heard). A node that restarted trusts a peer's
    /// view of it only once it names the new incarnation: a heartbeat captured before the restart and
    /// replayed cannot (see `Engine::heard_this_run`).
    pub incarnation: u64,
}

/// A target as its holder reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    /// Target name, as in the cluster configuration.
    pub name: String,
    /// Where the target is in its lifecycle on the sender.
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
    /// Shorter than [`MIN_DATAGRAM`] (a truncated datagram, or not one of ours).
    #[error("datagram too short ({0} bytes)")]
    TooShort(usize),
    /// Longer than [`MAX_DATAGRAM`]: no correct sender writes it.
    #[error("datagram too large ({0} bytes, limit {MAX_DATAGRAM})")]
    TooLarge(usize),
    /// The magic is right but the format version is not [`PROTOCOL_VERSION`]: a peer runs another release.
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    /// The first bytes are not [`MAGIC`]: not a failoverd datagram at all (stray traffic on the port).
    #[error("not a failoverd datagram (bad magic)")]
    BadMagic,
    /// The tag matches neither the active nor the next key.
    #[error("MAC check failed (wrong key or corrupted datagram)")]
    BadMac,
    /// Authenticated, but the body does not decode to a sensible [`Envelope`] (a bug or a key holder gone bad).
    #[error("malformed body: {0}")]
    Malformed(String),
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The datagram would exceed [`MAX_DATAGRAM`]; the value is the size it would have had.
    #[error("encoded datagram would be {0} bytes, limit {MAX_DATAGRAM}")]
    TooLarge(usize),
    /// postcard refused the message (not expected for these types; kept so no error is swallowed).
    #[error("serialization failed: {0}")]
    Serialize(String),
    /// An empty key authenticates nothing; refuse to send rather than send unauthenticated datagrams.
    #[error("refusing to sign with an empty key")]
    EmptyKey,
    /// The message holds something every receiver would reject as malformed (see [`validate`]).
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// The cluster key (and, during a key roll, the next one), each with its HMAC state already keyed: a receiver
/// checks every datagram, and keying HMAC-SHA256 costs two SHA-256 blocks of its own.
#[derive(Clone)]
pub struct Keys {
    /// Key used to sign and, first, to verify.
    active: Vec<u8>,
    /// Key also accepted on receive during a key roll.
    next: Option<Vec<u8>>,
    /// HMAC keyed with `active` (`None` for an empty key, which authenticates nothing).
    active_mac: Option<HmacSha256>,
    /// HMAC keyed with `next`.
    next_mac: Option<HmacSha256>,
}

impl Keys {
    /// Keys from the active key and, during a key roll, the next one.
    pub fn new(active: Vec<u8>, next: Option<Vec<u8>>) -> Self {
        let active_mac = new_mac(&active);
        let next_mac = next.as_deref().and_then(new_mac);
        Keys { active, next, active_mac, next_mac }
    }

    /// The key used to sign and, first, to verify.
    pub fn active(&self) -> &[u8] {
        &self.active
    }

    /// The key also accepted on receive during a key roll.
    pub fn next(&self) -> Option<&[u8]> {
        self.next.as_deref()
    }

    /// The HMAC states keyed with the active and the next key (`None`: no such key, or an empty one).
    pub(crate) fn keyed_macs(&self) -> [Option<&HmacSha256>; 2] {
        [self.active_mac.as_ref(), self.next_mac.as_ref()]
    }

    /// Accept `key` on receive too (a key roll's next key).
    pub fn set_next(&mut self, key: Vec<u8>) {
        self.next_mac = new_mac(&key);
        self.next = Some(key);
    }
}

/// Shows key lengths only, so a `{:?}` in a log line never leaks key material.
impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("active", &format_args!("<{} bytes>", self.active.len()))
            .field("next", &self.next.as_ref().map(|k| format!("<{} bytes>", k.len())))
            .finish()
    }
}

/// Which of the [`Keys`] authenticated a datagram, so a key roll can be followed (who still signs with what).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySlot {
    /// [`Keys::active`].
    Active,
    /// [`Keys::next`].
    Next,
}

/// Encode `env` as an authenticated datagram with `key`.
///
/// Fails with [`EncodeError::TooLarge`] when the datagram would exceed [`MAX_DATAGRAM`], with
/// [`EncodeError::Invalid`] when [`validate`] rejects `env` (receivers would drop it), and with
/// [`EncodeError::EmptyKey`] for an empty key.
pub fn encode(env: &Envelope, key: &[u8]) -> Result<Vec<u8>, EncodeError> {
    encode_with(env, new_mac(key))
}

/// [`encode`], signed with the active key of `keys` (keyed once, not at every datagram).
pub fn encode_keyed(env: &Envelope, keys: &Keys) -> Result<Vec<u8>, EncodeError> {
    encode_with(env, keys.active_mac.clone())
}

fn encode_with(env: &Envelope, mac: Option<HmacSha256>) -> Result<Vec<u8>, EncodeError> {
    let mac = mac.ok_or(EncodeError::EmptyKey)?;
    validate(env).map_err(EncodeError::Invalid)?;

    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    out.extend_from_slice(&HEADER);
    let mut out = postcard::to_extend(env, out).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    let total = out.len() + MAC_LEN;
    if total > MAX_DATAGRAM {
        return Err(EncodeError::TooLarge(total));
    }
    let tag = mac.chain_update(&out).finalize().into_bytes();
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decode and authenticate a datagram with any of `keys` (active first, then next).
///
/// See the module documentation for the order of checks. Never panics, whatever `bytes` holds.
pub fn decode(bytes: &[u8], keys: &Keys) -> Result<Envelope, DecodeError> {
    decode_with_key(bytes, keys).map(|(env, _)| env)
}

/// [`decode`], also telling which key authenticated the datagram: during a key roll this shows which peers
/// already sign with the next key.
pub fn decode_with_key(bytes: &[u8], keys: &Keys) -> Result<(Envelope, KeySlot), DecodeError> {
    let (signed, tag) = split_checked(bytes)?;

    let slot = if verify(keys.active_mac.as_ref(), signed, tag) {
        KeySlot::Active
    } else if verify(keys.next_mac.as_ref(), signed, tag) {
        KeySlot::Next
    } else {
        return Err(DecodeError::BadMac);
    };

    let body = &signed[HEADER_LEN..];
    let (env, rest) = postcard::take_from_bytes::<Envelope>(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes after the envelope",
            rest.len()
        )));
    }
    validate(&env).map_err(DecodeError::Malformed)?;
    Ok((env, slot))
}

/// Whether `bytes` is a well-framed datagram (length, magic, version) whose tag is valid under `key`, without
/// decoding the body. For tools that only need to know which key a datagram was signed with.
pub fn mac_ok(bytes: &[u8], key: &[u8]) -> bool {
    match split_checked(bytes) {
        Ok((signed, tag)) => verify(new_mac(key).as_ref(), signed, tag),
        Err(_) => false,
    }
}

/// The cluster name a datagram *claims*, read before any MAC check, so that a receiver holding the keys of
/// several clusters (the witness) can pick the key to verify it with. Checks the framing as [`decode`] does
/// (length, magic, version) and reads only the first field of the body (a length-prefixed UTF-8 string).
///
/// The name is unauthenticated: use it only to choose a key, then [`decode`] with that key and trust the
/// envelope that comes out (whose `cluster` is covered by the MAC). Never panics; an empty name is
/// [`DecodeError::Malformed`].
pub fn peek_cluster(bytes: &[u8]) -> Result<&str, DecodeError> {
    let (signed, _tag) = split_checked(bytes)?;
    let body = &signed[HEADER_LEN..];
    let (cluster, _rest) = postcard::take_from_bytes::<&str>(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if cluster.is_empty() {
        return Err(DecodeError::Malformed("empty cluster".into()));
    }
    Ok(cluster)
}

/// Reject contents that no correct sender produces, so the engine never has to cope with them: an empty
/// cluster, node or target name anywhere, or a heartbeat `link` index of [`MAX_LINKS`] or more (it could not be
/// represented in `links_up`). Run by [`encode`] too, so a sender bug shows up at the sender.
pub fn validate(env: &Envelope) -> Result<(), String> {
    fn named(what: &str, value: &str) -> Result<(), String> {
        if value.is_empty() {
            Err(format!("empty {what}"))
        } else {
            Ok(())
        }
    }

    named("cluster", &env.cluster)?;
    named("sender", &env.sender)?;
    match &env.body {
        Body::Heartbeat(hb) => {
            if hb.link >= MAX_LINKS {
                return Err(format!("link index {} out of range (max {})", hb.link, MAX_LINKS - 1));
            }
            for peer in &hb.peers {
                named("peer node", &peer.node)?;
            }
            for target in &hb.targets {
                named("target name", &target.name)?;
                match &target.state {
                    TargetState::Releasing { to: Some(to) } | TargetState::HandedOff { to } => {
                        named("destination node", to)?;
                    }
                    TargetState::Starting
                    | TargetState::Running
                    | TargetState::Releasing { to: None }
                    | TargetState::Failed => {}
                }
            }
            for (target, _) in &hb.target_digests {
                named("digest target name", target)?;
            }
            for (target, to) in &hb.move_requests {
                named("move request target", target)?;
                named("move request destination", to)?;
            }
            for f in &hb.fenced {
                named("fenced node", &f.node)?;
            }
        }
        Body::WitnessQuery(q) => {
            for node in &q.sees {
                named("seen node", node)?;
            }
        }
        Body::WitnessReply(r) => {
            named("reply node", &r.node)?;
            if let Some(holder) = &r.holder {
                named("vote holder", holder)?;
            }
        }
        Body::ConfigSummary(c) => {
            if c.parts == 0 || c.parts > MAX_SUMMARY_PARTS || c.part >= c.parts {
                return Err(format!("summary part {} of {} (at most {MAX_SUMMARY_PARTS} parts)", c.part, c.parts));
            }
            for (key, _) in &c.entries {
                named("summary key", key)?;
            }
            if c.entries.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err("summary keys not in strictly increasing order".into());
            }
        }
    }
    Ok(())
}

/// Checks length, magic and version; returns (header + body, tag).
fn split_checked(bytes: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let len = bytes.len();
    if len > MAX_DATAGRAM {
        return Err(DecodeError::TooLarge(len));
    }
    if len < MIN_DATAGRAM {
        return Err(DecodeError::TooShort(len));
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = bytes[MAGIC.len()];
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    Ok(bytes.split_at(len - MAC_LEN))
}

/// HMAC-SHA256 keyed with `key`; `None` for an empty key, which must never authenticate anything.
fn new_mac(key: &[u8]) -> Option<HmacSha256> {
    if key.is_empty() {
        return None;
    }
    HmacSha256::new_from_slice(key).ok()
}

/// Constant-time tag check of `signed` under a keyed HMAC (`None`: no key, nothing verifies).
fn verify(mac: Option<&HmacSha256>, signed: &[u8], tag: &[u8]) -> bool {
    match mac {
        Some(mac) => mac.clone().chain_update(signed).verify_slice(tag).is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_A: &[u8] = b"0123456789abcdef0123456789abcdef-active";
    const KEY_B: &[u8] = b"fedcba9876543210fedcba9876543210-next";

    fn keys_a() -> Keys {
        Keys::new(KEY_A.to_vec(), None)
    }

    /// Header + arbitrary body + a valid tag: what only a key holder can produce.
    fn seal(body: &[u8], key: &[u8]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        out.extend_from_slice(body);
        let tag = HmacSha256::new_from_slice(key)
            .expect("HMAC takes any key length")
            .chain_update(&out)
            .finalize();
        out.extend_from_slice(&tag.into_bytes());
        out
    }

    fn name(prefix: &str, len: usize) -> String {
        let mut s = prefix.to_string();
        while s.len() < len {
            s.push('x');
        }
        s.truncate(len);
        s
    }

    /// A 2-node heartbeat: 2 peers, 4 targets (two moving), 4 target digests, one move request; every
    /// name is `len` bytes long.
    fn heartbeat_with_names(len: usize) -> Envelope {
        let node = |i: usize| name(&format!("node{i}."), len);
        let target = |i: usize| name(&format!("lustre-OST{i:04x}."), len);
        Envelope {
            cluster: name("cluster.", len),
            sender: node(1),
            incarnation: 1_734_000_123,
            seq: 987_654,
            body: Body::Heartbeat(Heartbeat {
                link: 1,
                peers: vec![
                    PeerView {
                        node: node(1),
                        links_up: 0b11,
                        alive: true,
                        incarnation: 7,
                    },
                    PeerView {
                        node: node(2),
                        links_up: 0b01,
                        alive: true,
                        incarnation: 7,
                    },
                ],
                quorate: true,
                discovered: true,
                leaving: false,
                maintenance: false,
                maintenance_epoch: 3,
                standby: vec![],
                standby_epoch: 0,
                fence_me: false,
                config_digest: [0xa5; 16],
                targets: vec![
                    TargetView {
                        name: target(0),
                        state: TargetState::Running,
                    },
                    TargetView {
                        name: target(1),
                        state: TargetState::Running,
                    },
                    TargetView {
                        name: target(2),
                        state: TargetState::Releasing { to: Some(node(2)) },
                    },
                    TargetView {
                        name: target(3),
                        state: TargetState::HandedOff { to: node(2) },
                    },
                ],
                target_digests: (0..4)
                    .map(|i| (target(i), 0xdead_beef_u32.wrapping_mul(i as u32 + 1)))
                    .collect(),
                move_requests: vec![(target(2), node(2))],
                fenced: vec![],
            }),
        }
    }

    /// A realistic heartbeat of an MDS pair: short host and target names as Lustre sites use them.
    fn typical_heartbeat() -> Envelope {
        Envelope {
            cluster: "lustre-prod".into(),
            sender: "mds01a".into(),
            incarnation: 42,
            seq: 123_456,
            body: Body::Heartbeat(Heartbeat {
                link: 0,
                peers: vec![
                    PeerView {
                        node: "mds01a".into(),
                        links_up: 0b11,
                        alive: true,
                        incarnation: 7,
                    },
                    PeerView {
                        node: "mds01b".into(),
                        links_up: 0b11,
                        alive: true,
                        incarnation: 7,
                    },
                ],
                quorate: true,
                discovered: true,
                leaving: false,
                maintenance: false,
                maintenance_epoch: 3,
                standby: vec![],
                standby_epoch: 0,
                fence_me: false,
                config_digest: [7; 16],
                targets: vec![
                    TargetView {
                        name: "MGS".into(),
                        state: TargetState::Running,
                    },
                    TargetView {
                        name: "lustre-MDT0000".into(),
                        state: TargetState::Running,
                    },
                    TargetView {
                        name: "lustre-MDT0001".into(),
                        state: TargetState::Starting,
                    },
                    TargetView {
                        name: "lustre-MDT0002".into(),
                        state: TargetState::Releasing {
                            to: Some("mds01b".into()),
                        },
                    },
                ],
                target_digests: vec![
                    ("MGS".into(), 0x1234_5678),
                    ("lustre-MDT0000".into(), 0x9abc_def0),
                    ("lustre-MDT0001".into(), 0x0fed_cba9),
                    ("lustre-MDT0002".into(), 0x8765_4321),
                ],
                move_requests: vec![],
                fenced: vec![FenceConfirmation { node: "mds01c".into(), incarnation: Some(1_734_000_001), age_ms: 86_400_000, level: 1 }],
            }),
        }
    }

    fn fixed_envelopes() -> Vec<Envelope> {
        vec![
            typical_heartbeat(),
            heartbeat_with_names(64),
            Envelope {
                cluster: "c".into(),
                sender: "n".into(),
                incarnation: 0,
                seq: 0,
                body: Body::WitnessQuery(WitnessQuery {
                    sees: vec!["n".into()],
                    cluster_size: 2,
                }),
            },
            Envelope {
                cluster: "lustre-prod".into(),
                sender: "witness".into(),
                incarnation: u64::MAX,
                seq: u64::MAX,
                body: Body::WitnessReply(WitnessReply {
                    query_seq: 77,
                    node: "mds01b".into(),
                    granted: false,
                    holder: Some("mds01a".into()),
                }),
            },
            Envelope {
                cluster: "lustre-prod".into(),
                sender: "mds01b".into(),
                incarnation: 42,
                seq: 9,
                body: Body::ConfigSummary(ConfigSummary {
                    digest: [3; 16],
                    part: 1,
                    parts: 2,
                    entries: vec![
                        ("cluster.dead_after".into(), "5s".into()),
                        ("cluster.fence_delay".into(), "15s".into()),
                        ("node[mds01a].fence_priority".into(), "10".into()),
                    ],
                }),
            },
        ]
    }

    // ---- strategies -------------------------------------------------------------------------------------

    fn ident() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-z0-9][a-z0-9._-]{0,23}",
            1 => "\\PC{1,8}",
        ]
    }

    fn target_state() -> impl Strategy<Value = TargetState> {
        prop_oneof![
            Just(TargetState::Starting),
            Just(TargetState::Running),
            proptest::option::of(ident()).prop_map(|to| TargetState::Releasing { to }),
            ident().prop_map(|to| TargetState::HandedOff { to }),
            Just(TargetState::Failed),
        ]
    }

    fn heartbeat() -> impl Strategy<Value = Heartbeat> {
        (
            0..MAX_LINKS,
            proptest::collection::vec(
                (ident(), any::<u8>(), any::<bool>(), any::<u64>()).prop_map(|(node, links_up, alive, incarnation)| PeerView {
                    node,
                    links_up,
                    alive,
                    incarnation,
                }),
                0..5,
            ),
            any::<[bool; 5]>(),
            any::<[u8; 16]>(),
            proptest::collection::vec(
                (ident(), target_state()).prop_map(|(name, state)| TargetView { name, state }),
                0..5,
            ),
            proptest::collection::vec((ident(), any::<u32>()), 0..5),
            proptest::collection::vec((ident(), ident()), 0..3),
            proptest::collection::vec(
                (ident(), proptest::option::of(any::<u64>()), any::<u64>(), any::<u8>())
                    .prop_map(|(node, incarnation, age_ms, level)| FenceConfirmation { node, incarnation, age_ms, level }),
                0..3,
            ),
        )
            .prop_map(
                |(link, peers, flags, config_digest, targets, target_digests, move_requests, fenced)| Heartbeat {
                    link,
                    peers,
                    quorate: flags[0],
                    discovered: flags[1],
                    leaving: flags[2],
                    maintenance: flags[3],
                    maintenance_epoch: link as u64 * 7,
                    standby: if flags[0] { vec!["n2".into()] } else { vec![] },
                    standby_epoch: link as u64,
                    fence_me: flags[4],
                    config_digest,
                    targets,
                    target_digests,
                    move_requests,
                    fenced,
                },
            )
    }

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            2 => heartbeat().prop_map(Body::Heartbeat),
            1 => (proptest::collection::vec(ident(), 0..8), any::<u8>())
                .prop_map(|(sees, cluster_size)| Body::WitnessQuery(WitnessQuery { sees, cluster_size })),
            1 => (any::<u64>(), ident(), any::<bool>(), proptest::option::of(ident())).prop_map(
                |(query_seq, node, granted, holder)| Body::WitnessReply(WitnessReply { query_seq, node, granted, holder })
            ),
            1 => (any::<[u8; 16]>(), 1..=MAX_SUMMARY_PARTS, any::<prop::sample::Index>(),
                  proptest::collection::btree_map(ident(), "\\PC{0,40}", 0..12))
                .prop_map(|(digest, parts, at, entries)| Body::ConfigSummary(ConfigSummary {
                    digest,
                    part: at.index(parts as usize) as u8,
                    parts,
                    entries: entries.into_iter().collect(),
                })),
        ]
    }

    fn envelope() -> impl Strategy<Value = Envelope> {
        (ident(), ident(), any::<u64>(), any::<u64>(), body()).prop_map(|(cluster, sender, incarnation, seq, body)| {
            Envelope {
                cluster,
                sender,
                incarnation,
                seq,
                body,
            }
        })
    }

    // ---- deterministic tests ----------------------------------------------------------------------------

    #[test]
    fn fixed_envelopes_round_trip() {
        for env in fixed_envelopes() {
            let bytes = encode(&env, KEY_A).expect("fixed envelope encodes");
            assert!(bytes.len() <= MAX_DATAGRAM);
            assert_eq!(bytes[..HEADER_LEN], HEADER);
            assert_eq!(decode(&bytes, &keys_a()), Ok(env));
        }
    }

    #[test]
    fn format_is_frozen() {
        let env = Envelope {
            cluster: "c1".into(),
            sender: "n1".into(),
            incarnation: 1,
            seq: 2,
            body: Body::WitnessQuery(WitnessQuery {
                sees: vec!["n1".into()],
                cluster_size: 2,
            }),
        };
        let bytes = encode(&env, b"key").expect("encodes");
        // Header, then the body spelled out in the module documentation, then HMAC-SHA256("key", header+body).
        let expected = "464f4405\
                        026331026e3101020101026e3102\
                        f5567244803c6c696277a90ba07bfe737f3b0a72eff440c6b65f8e007980aba9";
        assert_eq!(hex::encode(&bytes), expected);
        assert_eq!(decode(&bytes, &Keys::new(b"key".to_vec(), None)), Ok(env));
    }

    #[test]
    fn typical_heartbeat_is_small() {
        let bytes = encode(&typical_heartbeat(), KEY_A).expect("typical heartbeat encodes");
        println!(
            "typical 2-node heartbeat (2 peers, 4 targets + digests, short names): {} bytes",
            bytes.len()
        );
        assert!(bytes.len() < 600, "typical heartbeat is {} bytes", bytes.len());

        // The same shape with every name 64 bytes long still fits, with less headroom: each target name is
        // carried twice (targets and target_digests).
        let long = encode(&heartbeat_with_names(64), KEY_A).expect("64-byte-name heartbeat encodes");
        println!(
            "same heartbeat with 64-byte names: {} bytes (limit {MAX_DATAGRAM})",
            long.len()
        );
        assert!(long.len() <= MAX_DATAGRAM);

        // The plainest shape with 64-byte names: every target Running, no move requests.
        let mut plain = heartbeat_with_names(64);
        if let Body::Heartbeat(hb) = &mut plain.body {
            hb.targets.iter_mut().for_each(|t| t.state = TargetState::Running);
            hb.move_requests.clear();
        }
        let plain = encode(&plain, KEY_A).expect("plain 64-byte-name heartbeat encodes");
        println!("same, all targets Running and no move request: {} bytes", plain.len());
        assert!(plain.len() < long.len());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let keys = Keys::new(KEY_A.to_vec(), Some(KEY_B.to_vec()));
        for env in fixed_envelopes() {
            let good = encode(&env, KEY_A).expect("encodes");
            for bit in 0..good.len() * 8 {
                let mut bad = good.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let err = decode(&bad, &keys).expect_err("a flipped bit must be rejected");
                let expected = match bit / 8 {
                    0..=2 => DecodeError::BadMagic,
                    3 => DecodeError::BadVersion(PROTOCOL_VERSION ^ (1 << (bit % 8))),
                    _ => DecodeError::BadMac,
                };
                assert_eq!(err, expected, "bit {bit} of {} bytes", good.len());
            }
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        for env in fixed_envelopes() {
            let good = encode(&env, KEY_A).expect("encodes");
            for len in 0..good.len() {
                let err = decode(&good[..len], &keys_a()).expect_err("a truncated datagram must be rejected");
                if len < MIN_DATAGRAM {
                    assert_eq!(err, DecodeError::TooShort(len));
                } else {
                    assert_eq!(err, DecodeError::BadMac, "truncated to {len}");
                }
            }
        }
    }

    #[test]
    fn appended_bytes_are_rejected() {
        let good = encode(&typical_heartbeat(), KEY_A).expect("encodes");
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&longer, &keys_a()), Err(DecodeError::BadMac));
    }

    #[test]
    fn oversized_input_is_too_large() {
        assert_eq!(
            decode(&[0u8; MAX_DATAGRAM + 1], &keys_a()),
            Err(DecodeError::TooLarge(MAX_DATAGRAM + 1))
        );
        // Even correctly signed, an oversized datagram is refused before its MAC is looked at.
        let mut body = postcard::to_allocvec(&heartbeat_with_names(64)).expect("serializes");
        body.resize(MAX_DATAGRAM + 1 - HEADER_LEN - MAC_LEN, 0);
        let sealed = seal(&body, KEY_A);
        assert_eq!(sealed.len(), MAX_DATAGRAM + 1);
        assert_eq!(decode(&sealed, &keys_a()), Err(DecodeError::TooLarge(MAX_DATAGRAM + 1)));
        assert!(!mac_ok(&sealed, KEY_A));
    }

    #[test]
    fn header_is_checked_before_the_mac() {
        let good = encode(&typical_heartbeat(), KEY_A).expect("encodes");
        let mut other_version = good.clone();
        other_version[3] = 1;
        assert_eq!(decode(&other_version, &keys_a()), Err(DecodeError::BadVersion(1)));
        let mut other_magic = good;
        other_magic[..3].copy_from_slice(b"XYZ");
        assert_eq!(decode(&other_magic, &keys_a()), Err(DecodeError::BadMagic));
    }

    #[test]
    fn wrong_key_is_bad_mac() {
        let bytes = encode(&typical_heartbeat(), KEY_A).expect("encodes");
        assert_eq!(
            decode(&bytes, &Keys::new(KEY_B.to_vec(), None)),
            Err(DecodeError::BadMac)
        );
        assert_eq!(
            decode(&bytes, &Keys::new(b"k".to_vec(), Some(b"also wrong".to_vec()))),
            Err(DecodeError::BadMac)
        );
        assert!(mac_ok(&bytes, KEY_A));
        assert!(!mac_ok(&bytes, KEY_B));
    }

    #[test]
    fn next_key_is_accepted_only_during_a_roll() {
        let env = typical_heartbeat();
        let under_next = encode(&env, KEY_B).expect("encodes");
        let rolling = Keys::new(KEY_A.to_vec(), Some(KEY_B.to_vec()));
        assert_eq!(decode(&under_next, &rolling), Ok(env.clone()));
        assert_eq!(decode_with_key(&under_next, &rolling), Ok((env.clone(), KeySlot::Next)));
        assert_eq!(decode(&under_next, &keys_a()), Err(DecodeError::BadMac));

        let under_active = encode(&env, KEY_A).expect("encodes");
        assert_eq!(decode_with_key(&under_active, &rolling), Ok((env, KeySlot::Active)));
    }

    #[test]
    fn empty_key_never_authenticates() {
        let env = typical_heartbeat();
        assert_eq!(encode(&env, b""), Err(EncodeError::EmptyKey));
        let body = postcard::to_allocvec(&env).expect("serializes");
        let sealed_with_empty = seal(&body, b"");
        assert_eq!(
            decode(&sealed_with_empty, &Keys::new(Vec::new(), Some(Vec::new()))),
            Err(DecodeError::BadMac)
        );
        assert!(!mac_ok(&sealed_with_empty, b""));
    }

    #[test]
    fn too_big_message_is_refused_by_encode() {
        let mut env = heartbeat_with_names(64);
        if let Body::Heartbeat(hb) = &mut env.body {
            hb.targets = (0..200)
                .map(|i| TargetView {
                    name: name(&format!("t{i}-"), 64),
                    state: TargetState::Running,
                })
                .collect();
        }
        match encode(&env, KEY_A) {
            Err(EncodeError::TooLarge(n)) => assert!(n > MAX_DATAGRAM),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn trailing_bytes_after_the_envelope_are_malformed() {
        let mut body = postcard::to_allocvec(&typical_heartbeat()).expect("serializes");
        body.push(0);
        let err = decode(&seal(&body, KEY_A), &keys_a()).expect_err("trailing byte");
        assert!(
            matches!(err, DecodeError::Malformed(ref m) if m.contains("trailing")),
            "{err:?}"
        );
    }

    #[test]
    fn undecodable_authenticated_body_is_malformed() {
        // Variant index 4 of Body does not exist.
        let body = [0x01, b'c', 0x01, b'n', 0x00, 0x00, 0x04];
        assert!(matches!(
            decode(&seal(&body, KEY_A), &keys_a()),
            Err(DecodeError::Malformed(_))
        ));
        // A bool that is neither 0 nor 1.
        let mut body = postcard::to_allocvec(&fixed_envelopes()[3]).expect("serializes");
        let granted = body.len() - 1 - 1 - "mds01a".len() - 1;
        assert_eq!(body[granted], 0);
        body[granted] = 2;
        assert!(matches!(
            decode(&seal(&body, KEY_A), &keys_a()),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn absurd_contents_are_refused_both_ways() {
        let mut empty_sender = typical_heartbeat();
        empty_sender.sender.clear();
        let mut empty_cluster = typical_heartbeat();
        empty_cluster.cluster.clear();
        let mut bad_link = typical_heartbeat();
        let mut empty_target = typical_heartbeat();
        if let (Body::Heartbeat(a), Body::Heartbeat(b)) = (&mut bad_link.body, &mut empty_target.body) {
            a.link = MAX_LINKS;
            b.targets[1].name.clear();
        }
        let mut empty_holder = fixed_envelopes()[3].clone();
        if let Body::WitnessReply(r) = &mut empty_holder.body {
            r.holder = Some(String::new());
        }
        let summary = |part: u8, parts: u8, entries: Vec<(&str, &str)>| Envelope {
            body: Body::ConfigSummary(ConfigSummary {
                digest: [1; 16],
                part,
                parts,
                entries: entries.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            }),
            ..typical_heartbeat()
        };
        let no_parts = summary(0, 0, vec![]);
        let part_out_of_range = summary(2, 2, vec![]);
        let too_many_parts = summary(0, MAX_SUMMARY_PARTS + 1, vec![]);
        let empty_key = summary(0, 1, vec![("", "x")]);
        let unordered = summary(0, 1, vec![("b", "1"), ("a", "2")]);
        let repeated = summary(0, 1, vec![("a", "1"), ("a", "2")]);
        for env in [
            empty_sender,
            empty_cluster,
            bad_link,
            empty_target,
            empty_holder,
            no_parts,
            part_out_of_range,
            too_many_parts,
            empty_key,
            unordered,
            repeated,
        ] {
            assert!(matches!(encode(&env, KEY_A), Err(EncodeError::Invalid(_))), "{env:?}");
            let sealed = seal(&postcard::to_allocvec(&env).expect("serializes"), KEY_A);
            assert!(
                matches!(decode(&sealed, &keys_a()), Err(DecodeError::Malformed(_))),
                "{env:?}"
            );
        }
    }

    #[test]
    fn peek_cluster_reads_the_claimed_name_without_the_key() {
        for env in fixed_envelopes() {
            let bytes = encode(&env, KEY_A).unwrap();
            assert_eq!(peek_cluster(&bytes), Ok(env.cluster.as_str()));
            // the name is read whatever the tag says: it only chooses the key
            let mut forged = bytes.clone();
            let last = forged.len() - 1;
            forged[last] ^= 1;
            assert_eq!(peek_cluster(&forged), Ok(env.cluster.as_str()));
            assert_eq!(decode(&forged, &keys_a()), Err(DecodeError::BadMac));
        }
        assert_eq!(peek_cluster(b"FOD"), Err(DecodeError::TooShort(3)));
        let mut not_ours = encode(&fixed_envelopes()[0], KEY_A).unwrap();
        not_ours[0] = b'X';
        assert_eq!(peek_cluster(&not_ours), Err(DecodeError::BadMagic));
        // a length prefix running past the datagram, and an empty name
        assert!(matches!(peek_cluster(&seal(&[0x7f, b'a'], KEY_A)), Err(DecodeError::Malformed(_))));
        assert!(matches!(peek_cluster(&seal(&[0x00, 0x00], KEY_A)), Err(DecodeError::Malformed(_))));
        assert!(matches!(peek_cluster(&seal(&[0x02, 0xff, 0xfe], KEY_A)), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn keys_debug_does_not_leak() {
        let shown = format!("{:?}", Keys::new(KEY_A.to_vec(), Some(KEY_B.to_vec())));
        assert!(!shown.contains("0123") && !shown.contains("fedc"), "{shown}");
        assert!(shown.contains(&format!("<{} bytes>", KEY_A.len())), "{shown}");
    }

    // ---- properties -------------------------------------------------------------------------------------

    proptest! {
        #[test]
        fn prop_round_trip(env in envelope()) {
            match encode(&env, KEY_A) {
                Ok(bytes) => {
                    prop_assert!(bytes.len() <= MAX_DATAGRAM);
                    prop_assert_eq!(decode(&bytes, &keys_a()), Ok(env));
                }
                Err(EncodeError::TooLarge(n)) => {
                    prop_assert!(n > MAX_DATAGRAM);
                    let body = postcard::to_allocvec(&env).expect("serializes");
                    prop_assert_eq!(n, HEADER_LEN + body.len() + MAC_LEN);
                }
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn prop_single_bit_flip_rejected(env in envelope(), at in any::<prop::sample::Index>()) {
            if let Ok(good) = encode(&env, KEY_A) {
                let bit = at.index(good.len() * 8);
                let mut bad = good;
                bad[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(decode(&bad, &Keys::new(KEY_A.to_vec(), Some(KEY_B.to_vec()))).is_err());
            }
        }

        #[test]
        fn prop_garbage_is_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let err = decode(&bytes, &keys_a()).expect_err("random bytes carry no valid MAC");
            if bytes.len() > MAX_DATAGRAM {
                prop_assert_eq!(err, DecodeError::TooLarge(bytes.len()));
            } else if bytes.len() < MIN_DATAGRAM {
                prop_assert_eq!(err, DecodeError::TooShort(bytes.len()));
            }
        }

        #[test]
        fn prop_peek_cluster_never_panics_and_agrees_with_decode(
            env in envelope(),
            tail in proptest::collection::vec(any::<u8>(), 0..1300),
        ) {
            let bytes = encode(&env, KEY_A).unwrap();
            prop_assert_eq!(peek_cluster(&bytes), Ok(env.cluster.as_str()));
            let mut garbage = HEADER.to_vec();
            garbage.extend_from_slice(&tail);
            let _ = peek_cluster(&garbage);
        }

        #[test]
        fn prop_garbage_behind_our_header_is_rejected(tail in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let mut bytes = HEADER.to_vec();
            bytes.extend_from_slice(&tail);
            prop_assert!(decode(&bytes, &keys_a()).is_err());
        }

        /// What only a key holder can send: arbitrary bodies with a valid tag reach the deserializer. It must
        /// not panic, and whatever it accepts is valid and survives a re-encode.
        #[test]
        fn prop_signed_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 1..400)) {
            if let Ok(env) = decode(&seal(&body, KEY_A), &keys_a()) {
                prop_assert!(validate(&env).is_ok());
                let again = encode(&env, KEY_A).expect("an accepted envelope re-encodes");
                prop_assert_eq!(decode(&again, &keys_a()), Ok(env));
            }
        }

        /// Mutations of a valid body, re-signed: the deserializer sees almost-right input.
        #[test]
        fn prop_signed_mutations_never_panic(
            env in envelope(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut body = postcard::to_allocvec(&env).expect("serializes");
            for (at, byte) in edits {
                let i = at.index(body.len());
                body[i] = byte;
            }
            if body.len() + HEADER_LEN + MAC_LEN <= MAX_DATAGRAM {
                if let Ok(decoded) = decode(&seal(&body, KEY_A), &keys_a()) {
                    prop_assert!(validate(&decoded).is_ok());
                }
            }
        }
    }
}
