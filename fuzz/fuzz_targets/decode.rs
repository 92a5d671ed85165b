//! Fuzz target for the datagram codec: `cargo +nightly fuzz run decode` (from the repository root).
//!
//! Each input is tried twice:
//! 1. as a raw datagram, as anyone on the network can send it: `decode` must reject or accept it without
//!    panicking;
//! 2. as a body sealed with the fuzz key (header + input + valid HMAC), so the fuzzer also reaches the postcard
//!    deserializer and the validation behind the MAC. Whatever is accepted there must re-encode and decode back
//!    to the same envelope.

#![no_main]

use failoverd::protocol::{decode, encode, Keys, HEADER};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const ACTIVE: &[u8] = b"failoverd-fuzz-active-key-0123456";
const NEXT: &[u8] = b"failoverd-fuzz-next-key-987654321";

fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    out.extend_from_slice(body);
    let tag = Hmac::<Sha256>::new_from_slice(ACTIVE)
        .expect("HMAC takes any key length")
        .chain_update(&out)
        .finalize()
        .into_bytes();
    out.extend_from_slice(&tag);
    out
}

fuzz_target!(|data: &[u8]| {
    let keys = Keys::new(ACTIVE.to_vec(), Some(NEXT.to_vec()));

    let _ = decode(data, &keys);

    if let Ok(env) = decode(&seal(data), &keys) {
        let again = encode(&env, ACTIVE).expect("an accepted envelope re-encodes");
        assert_eq!(decode(&again, &keys), Ok(env));
    }
});
