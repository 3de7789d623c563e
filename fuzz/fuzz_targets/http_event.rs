#![no_main]
//! The event decoder and admission behind `/v1/events` and `/v1/events/batch`, reached
//! through the real router: the fuzzed bytes travel as hex inside a valid JSON envelope,
//! so the body always parses and the bytes reach the canonical decoder and beyond.
//!
//! The first input byte picks the mode (low two bits) and the signer (next two bits):
//! - 0: the rest, as the one event of `/v1/events`;
//! - 1: the rest, split into events at each `0xff` byte, as a `/v1/events/batch`;
//! - 2, 3: the rest decoded as an `EventBody`, given this node's network and chain (mode 2)
//!   or left as it is (mode 3), and signed by the merchant, the operator, the verifier or
//!   a non-member key, so that it passes the signature check and reaches authorisation,
//!   the business-id dedupe and, once admitted, the ledger rules in the block producer.
//!   Bytes that are not an `EventBody` are sent as in mode 0.
//!
//! Property: that of `http_body` (never a 5xx other than 503, no panic in any thread).

use fapiao_core::{codec, EventBody};
use fapiao_fuzz::http::harness;
use fapiao_fuzz::{fixed, key};
use libfuzzer_sys::fuzz_target;

fn single(event: &[u8]) -> Vec<u8> {
    serde_json::json!({ "event": hex::encode(event) }).to_string().into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let h = harness();
    match pick & 3 {
        0 => {
            h.post("/v1/events", single(rest));
        }
        1 => {
            let events: Vec<String> = rest.split(|b| *b == 0xff).map(hex::encode).collect();
            let body = serde_json::json!({ "events": events }).to_string().into_bytes();
            h.post("/v1/events/batch", body);
        }
        mode => {
            let Ok(mut body) = codec::decode::<EventBody>(rest) else {
                h.post("/v1/events", single(rest));
                return;
            };
            if mode == 2 {
                body.network = fixed().1;
                body.chain = h.engine.chain();
            }
            let signer = key(1 + (pick >> 2) % 4);
            body.author = signer.public();
            let event = body.sign(&signer);
            h.post("/v1/events", single(&codec::to_bytes(&event)));
        }
    }
});
