//! The valid proof bundle the verifier targets start from: built by the real engine for
//! [`crate::genesis`] (`cargo run --example seeds`, see README.md) and committed, so the
//! fuzz targets do not need a running node.

use fapiao_proof::{Bundle, Verified};

/// The committed bundle's bytes.
pub const BUNDLE: &[u8] = include_bytes!("../fixtures/bundle.bin");

/// Milliseconds after the status header's time at which the targets verify.
pub const AGE_MS: u64 = 60_000;

/// The maximum age the targets verify with.
pub const MAX_AGE_MS: u64 = 24 * 3600 * 1000;

/// The committed bundle, decoded, with "now" for verifying it and what it proves.
/// Panics if it no longer verifies against [`crate::genesis`] (regenerate it then).
pub fn bundle() -> (Bundle, u64, Verified) {
    let bundle = Bundle::from_bytes(BUNDLE).unwrap_or_else(|e| panic!("fixtures/bundle.bin: {e}"));
    let status_header = bundle
        .headers
        .get(bundle.status.header as usize)
        .unwrap_or_else(|| panic!("fixtures/bundle.bin has its status header"));
    let now_ms = status_header.header.body.timestamp.0 + AGE_MS;
    match fapiao_proof::verify(&bundle, &crate::genesis(), now_ms, Some(MAX_AGE_MS)) {
        Ok(v) => (bundle, now_ms, v),
        Err(p) => panic!("fixtures/bundle.bin does not verify against the fixed genesis ({p:?}): regenerate it"),
    }
}
