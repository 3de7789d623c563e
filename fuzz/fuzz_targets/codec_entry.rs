#![no_main]
//! `Entry`: a block's unit (a signed event or a derived one).
//! Property: decoding never panics, and whatever decodes re-encodes to the same bytes;
//! hashing and checking what decoded never panics.

use fapiao_fuzz::{canonical, fixed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(v) = canonical::<fapiao_core::Entry>(data) else { return };
    let (_, network) = fixed();
    let _ = v.leaf_hash();
    if let fapiao_core::Entry::Event(e) = &v {
        let _ = e.verify(network);
    }
});
