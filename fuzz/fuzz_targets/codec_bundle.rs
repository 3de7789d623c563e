#![no_main]
//! `Bundle`: a proof bundle, as `fapiao verify` reads it from a file or the node serves
//! it (`/v1/verify/{number}`), through its bounded decoder (`Bundle::from_bytes`).
//! Property: decoding never panics, and whatever decodes re-encodes to the same bytes.

use fapiao_fuzz::assert_reencodes;
use fapiao_proof::Bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Bundle::from_bytes(data) {
        assert_reencodes(&b, data);
    }
});
