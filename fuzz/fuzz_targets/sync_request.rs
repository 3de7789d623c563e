#![no_main]
//! A sync request frame (`/fapiao/sync/1`), as a member's node reads it from any peer
//! that passed the allowlist: `fapiao_net::wire::decode_request_frame`.
//! Property: never panics; a frame that decodes re-encodes to the same frame bytes.

use fapiao_net::wire::{decode_request_frame, encode_frame};
use libfuzzer_sys::fuzz_target;

/// The sync codec's bound on a request frame (`REQUEST_BYTES_MAX` in
/// crates/fapiao-net/src/codec.rs).
const REQUEST_BYTES_MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = decode_request_frame(data, REQUEST_BYTES_MAX) else { return };
    let frame = encode_frame(&request).unwrap_or_else(|e| panic!("a request encodes: {e}"));
    assert_eq!(frame, data[..frame.len()], "the frame re-encodes to other bytes");
});
