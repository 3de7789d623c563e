#![no_main]
//! The bodies of the POST endpoints (`/v1/events`, `/v1/events/batch`), sent to the real
//! router over a real engine (see `fapiao_fuzz::http`). The first input byte picks the
//! endpoint, the rest is the body, sent as `application/json`.
//! Property: never panics, never a 5xx other than 503, errors in the `{code, message,
//! field}` shape.

use fapiao_fuzz::http::{harness, POST_PATHS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let path = POST_PATHS[usize::from(pick) % POST_PATHS.len()];
    harness().post(path, body.to_vec());
});
