#![no_main]
//! `Header`: inside blocks, proof bundles and equivocation evidence.
//! Property: decoding never panics, and whatever decodes re-encodes to the same bytes;
//! checking the owner's signature never panics.

use fapiao_fuzz::{canonical, fixed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(v) = canonical::<fapiao_core::Header>(data) else { return };
    let (_, network) = fixed();
    let _ = v.verify(fapiao_fuzz::epochs(), network);
});
