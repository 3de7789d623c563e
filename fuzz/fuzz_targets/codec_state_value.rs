#![no_main]
//! `StateValue`: a state record (store rows, the value a proof bundle proves).
//! Property: decoding never panics, and whatever decodes re-encodes to the same bytes;
//! what the verifier computes from a blue invoice never panics.

use fapiao_fuzz::canonical;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(v) = canonical::<fapiao_core::state::StateValue>(data) else { return };
    if let fapiao_core::state::StateValue::Invoice(fapiao_core::state::InvoiceRecord::Blue(b)) = &v {
        let _ = (b.remaining_total(), b.fully_reversed());
    }
});
