#![no_main]
//! The offline verifier (`fapiao_proof::verify`) on arbitrary decoded bundles, against
//! the fixed genesis the committed valid bundle was built for.
//! Property: never panics, and whatever verifies proves exactly what the committed
//! bundle proves (the fuzzer holds no key, so it cannot prove anything else).

use fapiao_fuzz::fixture;
use fapiao_proof::{verify, Bundle, Verified};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn reference() -> &'static (u64, Verified) {
    static R: OnceLock<(u64, Verified)> = OnceLock::new();
    R.get_or_init(|| {
        let (_, now_ms, verified) = fixture::bundle();
        (now_ms, verified)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_bytes(data) else { return };
    let (now_ms, expected) = reference();
    let (genesis, _) = fapiao_fuzz::fixed();
    for max_age in [None, Some(fixture::MAX_AGE_MS), Some(0)] {
        if let Ok(v) = verify(&bundle, genesis, *now_ms, max_age) {
            assert_eq!(&v, expected, "a bundle the fuzzer made verifies and proves something else");
        }
    }
});
