#![no_main]
//! `Event`: a signed event, as clients submit it (hex in `/v1/events`) and as blocks carry it.
//! Property: decoding never panics, and whatever decodes re-encodes to the same bytes;
//! checking the signature of what decoded never panics.

use fapiao_fuzz::{canonical, fixed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(v) = canonical::<fapiao_core::Event>(data) else { return };
    let (_, network) = fixed();
    let _ = v.verify(network);
});
