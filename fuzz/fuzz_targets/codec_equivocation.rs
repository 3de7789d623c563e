#![no_main]
//! `Equivocation`: evidence, gossiped and stored.
//! Property: decoding never panics, and whatever decodes re-encodes to the same bytes;
//! checking it against the genesis never panics.

use fapiao_fuzz::{canonical, fixed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(v) = canonical::<fapiao_core::Equivocation>(data) else { return };
    let (_, network) = fixed();
    let _ = v.verify(fapiao_fuzz::epochs(), network);
});
