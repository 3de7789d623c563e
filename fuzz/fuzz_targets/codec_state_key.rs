#![no_main]
//! `StateKey`: a state record's key (store rows, proof bundles).
//! Property: decoding never panics, and whatever decodes re-encodes to the same bytes;
//! hashing it into a tree path never panics.

use fapiao_fuzz::canonical;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(v) = canonical::<fapiao_core::state::StateKey>(data) else { return };
    let _ = fapiao_core::smt::key_hash(&v.to_bytes());
});
