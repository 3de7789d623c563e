#![no_main]
//! `Block`: gossiped by its owner and sent in sync responses.
//! Property: decoding never panics, and whatever decodes re-encodes to the same bytes;
//! the checks a replica runs first never panic.

use fapiao_fuzz::{canonical, fixed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(v) = canonical::<fapiao_core::Block>(data) else { return };
    let (_, network) = fixed();
    let _ = v.check_entries();
    let _ = v.header.verify(fapiao_fuzz::epochs(), network);
});
