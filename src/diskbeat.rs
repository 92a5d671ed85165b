//! The disk heartbeat slot: what each node writes, every `heartbeat_interval`, into its own 4096-byte slot of
//! the shared `[cluster] disk_heartbeat` device, and what every node reads back for its peers. Pure: bytes in,
//! typed slot out, never a panic. The I/O (O_DIRECT|O_DSYNC pwrite, pread of the whole area) is the driver's.
//!
//! # Slot layout (frozen, version 1)
//!
//! Node `i` (its position in the configuration's `[[node]]` list, see [`slot_index`]; the list order is part of
//! the configuration digest, so every node agrees) owns bytes `i * SLOT_BYTES .. (i + 1) * SLOT_BYTES`:
//!
//! ```text
//! offset    length  content
//! 0         8       magic: ASCII "FODDISK" followed by SLOT_VERSION (0x01)
//! 8         2       body length n, big-endian; 1 <= n <= SLOT_BYTES - 10 - 32
//! 10        n       body: the DiskSlot in postcard encoding (cluster: String, node: String,
//!                   incarnation: u64 varint, seq: u64 varint; see protocol.rs for the postcard rules)
//! 10 + n    32      tag: HMAC-SHA256(key, "failoverd-disk-slot-v1" || 0x00 || bytes[0 .. 10 + n])
//! 42 + n    ...     zero up to SLOT_BYTES
//! ```
//!
//! A slot that is all zero was never written ([`SlotError::Empty`]). The MAC is keyed with the cluster key (the
//! active one; the next one is accepted on read during a key roll) and domain-separated from datagrams, so a
//! slot can never be replayed as a datagram or the other way round. Reading checks, in order: the length, all
//! zero, the magic, the body length, the MAC in constant time, then the body.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::Config;
use crate::protocol::Keys;

/// Bytes per node on the device (one page; a multiple of every logical sector size, as O_DIRECT needs).
pub const SLOT_BYTES: usize = 4096;

/// Format version, the last byte of [`SLOT_MAGIC`].
pub const SLOT_VERSION: u8 = 1;

/// The first 8 bytes of every written slot.
pub const SLOT_MAGIC: [u8; 8] = [b'F', b'O', b'D', b'D', b'I', b'S', b'K', SLOT_VERSION];

/// Magic and body length.
const HEAD: usize = SLOT_MAGIC.len() + 2;
const MAC_LEN: usize = 32;
/// Longest body that fits a slot.
pub const MAX_BODY: usize = SLOT_BYTES - HEAD - MAC_LEN;
/// Domain label hashed before the slot bytes, so a slot tag never authenticates a datagram.
const DOMAIN: &[u8] = b"failoverd-disk-slot-v1\0";

type HmacSha256 = Hmac<Sha256>;

/// What a node writes into its slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSlot {
    /// The cluster name (a slot of another cluster sharing the device and the key is not this peer's).
    pub cluster: String,
    /// The writer's node name (a slot found at another node's index is not that node's).
    pub node: String,
    /// The writer's incarnation (bumped at every start).
    pub incarnation: u64,
    /// Per-incarnation counter, bumped at every write: (incarnation, seq) advancing is the sign of life.
    pub seq: u64,
}

/// Why a slot read back does not hold a valid [`DiskSlot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotError {
    /// All zero: never written.
    Empty,
    /// Not a failoverd slot of this version (another use of the device, or garbage).
    BadMagic,
    /// The tag does not match under any key: another key, or damaged bytes.
    BadMac,
    /// Framed and authenticated but not decodable, or the wrong size.
    Malformed(String),
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotError::Empty => f.write_str("empty (never written)"),
            SlotError::BadMagic => f.write_str("not a failoverd disk heartbeat slot (bad magic)"),
            SlotError::BadMac => f.write_str("bad MAC (another cluster key, or damaged)"),
            SlotError::Malformed(why) => write!(f, "malformed: {why}"),
        }
    }
}

fn mac_of(key: &[u8], signed: &[u8]) -> Option<HmacSha256> {
    if key.is_empty() {
        return None;
    }
    let mac = HmacSha256::new_from_slice(key).ok()?;
    Some(mac.chain_update(DOMAIN).chain_update(signed))
}

/// Encode `slot` with `key` into exactly [`SLOT_BYTES`] bytes. With an empty key, or a slot whose names are
/// too long for a slot (a validated configuration's names, at most 64 bytes each, always fit), the result
/// is all zero, which every reader takes as [`SlotError::Empty`]: never a sign of life.
pub fn encode_slot(slot: &DiskSlot, key: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; SLOT_BYTES];
    let Ok(body) = postcard::to_allocvec(slot) else { return out };
    if body.is_empty() || body.len() > MAX_BODY {
        return out;
    }
    out[..SLOT_MAGIC.len()].copy_from_slice(&SLOT_MAGIC);
    out[SLOT_MAGIC.len()..HEAD].copy_from_slice(&(body.len() as u16).to_be_bytes());
    out[HEAD..HEAD + body.len()].copy_from_slice(&body);
    let signed_end = HEAD + body.len();
    let Some(mac) = mac_of(key, &out[..signed_end]) else { return vec![0u8; SLOT_BYTES] };
    let tag = mac.finalize().into_bytes();
    out[signed_end..signed_end + MAC_LEN].copy_from_slice(&tag);
    out
}

/// Decode and authenticate one slot (exactly [`SLOT_BYTES`] bytes) with the active key, then the next one.
pub fn decode_slot(bytes: &[u8], keys: &Keys) -> Result<DiskSlot, SlotError> {
    if bytes.len() != SLOT_BYTES {
        return Err(SlotError::Malformed(format!("{} bytes, a slot has {SLOT_BYTES}", bytes.len())));
    }
    // (the magic first: a slot that has it is not all zero, and the 4 KiB scan is only made for one without)
    if bytes[..SLOT_MAGIC.len()] != SLOT_MAGIC {
        if bytes.iter().all(|b| *b == 0) {
            return Err(SlotError::Empty);
        }
        return Err(SlotError::BadMagic);
    }
    let n = u16::from_be_bytes([bytes[SLOT_MAGIC.len()], bytes[SLOT_MAGIC.len() + 1]]) as usize;
    if n == 0 || n > MAX_BODY {
        return Err(SlotError::Malformed(format!("body length {n} (1 to {MAX_BODY})")));
    }
    let (signed, rest) = bytes.split_at(HEAD + n);
    let tag = &rest[..MAC_LEN];
    // the keys' HMAC states are keyed already: a reader checks every peer's slot at every beat
    let ok = |mac: Option<&HmacSha256>| mac.is_some_and(|m| m.clone().chain_update(DOMAIN).chain_update(signed).verify_slice(tag).is_ok());
    if !keys.keyed_macs().into_iter().any(ok) {
        return Err(SlotError::BadMac);
    }
    let (slot, left) = postcard::take_from_bytes::<DiskSlot>(&signed[HEAD..]).map_err(|e| SlotError::Malformed(e.to_string()))?;
    if !left.is_empty() {
        return Err(SlotError::Malformed(format!("{} trailing bytes after the slot", left.len())));
    }
    Ok(slot)
}

/// The slot index of `node`: its position in the `[[node]]` list.
pub fn slot_index(cfg: &Config, node: &str) -> Option<usize> {
    cfg.nodes.iter().position(|n| n.name == node)
}

/// Bytes of the whole heartbeat area of `cfg` (one slot per node), what the driver reads back each round.
pub fn area_bytes(cfg: &Config) -> usize {
    cfg.nodes.len() * SLOT_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> DiskSlot {
        DiskSlot { cluster: "lfs-mds".into(), node: "mds1".into(), incarnation: 7, seq: 12345 }
    }

    fn keys(k: &[u8]) -> Keys {
        Keys::new(k.to_vec(), None)
    }

    const KEY: &[u8] = &[7u8; 32];

    #[test]
    fn slot_round_trip_is_exactly_one_slot() {
        let bytes = encode_slot(&slot(), KEY);
        assert_eq!(bytes.len(), SLOT_BYTES);
        assert_eq!(&bytes[..8], b"FODDISK\x01");
        assert_eq!(decode_slot(&bytes, &keys(KEY)), Ok(slot()));
        // the longest names a configuration allows fit
        let long = DiskSlot { cluster: "c".repeat(64), node: "n".repeat(64), incarnation: u64::MAX, seq: u64::MAX };
        assert_eq!(decode_slot(&encode_slot(&long, KEY), &keys(KEY)), Ok(long));
    }

    #[test]
    fn slot_empty_is_never_written() {
        assert_eq!(decode_slot(&[0u8; SLOT_BYTES], &keys(KEY)), Err(SlotError::Empty));
        // an empty key writes nothing anyone accepts
        assert_eq!(decode_slot(&encode_slot(&slot(), &[]), &keys(KEY)), Err(SlotError::Empty));
        assert!(matches!(decode_slot(&[0u8; 512], &keys(KEY)), Err(SlotError::Malformed(_))));
    }

    #[test]
    fn slot_bad_mac_on_any_flipped_byte() {
        let bytes = encode_slot(&slot(), KEY);
        let n = u16::from_be_bytes([bytes[8], bytes[9]]) as usize;
        for i in 10..10 + n + MAC_LEN {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert_eq!(decode_slot(&b, &keys(KEY)), Err(SlotError::BadMac), "byte {i}");
        }
        let mut b = bytes.clone();
        b[9] ^= 0x01; // another body length: the tag no longer matches
        assert!(decode_slot(&b, &keys(KEY)).is_err());
    }

    #[test]
    fn slot_bad_magic() {
        let mut bytes = encode_slot(&slot(), KEY);
        bytes[0] = b'X';
        assert_eq!(decode_slot(&bytes, &keys(KEY)), Err(SlotError::BadMagic));
        let mut bytes = encode_slot(&slot(), KEY);
        bytes[7] = 2; // another version
        assert_eq!(decode_slot(&bytes, &keys(KEY)), Err(SlotError::BadMagic));
        // a datagram is not a slot (and a slot's first bytes are not a datagram's header)
        let mut garbage = vec![0u8; SLOT_BYTES];
        garbage[..4].copy_from_slice(&crate::protocol::HEADER);
        assert_eq!(decode_slot(&garbage, &keys(KEY)), Err(SlotError::BadMagic));
    }

    #[test]
    fn slot_wrong_key_then_next_key() {
        let bytes = encode_slot(&slot(), KEY);
        assert_eq!(decode_slot(&bytes, &keys(&[8u8; 32])), Err(SlotError::BadMac));
        assert_eq!(decode_slot(&bytes, &keys(&[])), Err(SlotError::BadMac));
        // during a key roll the next key is accepted on read
        let roll = Keys::new(vec![8u8; 32], Some(KEY.to_vec()));
        assert_eq!(decode_slot(&bytes, &roll), Ok(slot()));
    }

    #[test]
    fn slot_bad_length_field_is_malformed() {
        let mut bytes = encode_slot(&slot(), KEY);
        bytes[8] = 0xff;
        bytes[9] = 0xff;
        assert!(matches!(decode_slot(&bytes, &keys(KEY)), Err(SlotError::Malformed(_))));
        bytes[8] = 0;
        bytes[9] = 0;
        assert!(matches!(decode_slot(&bytes, &keys(KEY)), Err(SlotError::Malformed(_))));
    }

    #[test]
    fn slot_never_panics_on_arbitrary_bytes() {
        use proptest::prelude::*;
        proptest!(|(data in proptest::collection::vec(any::<u8>(), 0..SLOT_BYTES + 10), len in 0u16..5000)| {
            let mut b = data.clone();
            b.resize(SLOT_BYTES, 0);
            b[..8].copy_from_slice(&SLOT_MAGIC);
            b[8..10].copy_from_slice(&len.to_be_bytes());
            let _ = decode_slot(&b, &keys(KEY));
            let _ = decode_slot(&data, &keys(KEY));
        });
    }
}
