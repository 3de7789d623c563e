#![no_main]
//! Gossip payloads on the three topics (headers, attestations, evidence), decoded as the
//! transport decodes them: `fapiao_net::wire::decode_gossip`. The first input byte picks
//! the topic, the rest is the payload.
//! Property: never panics; a payload that decodes re-encodes (`encode_gossip`) to itself,
//! and the first checks a node runs on it never panic.

use fapiao_net::wire::{decode_gossip, encode_gossip, Gossip, GossipTopic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else { return };
    let topic = match pick % 3 {
        0 => GossipTopic::Headers,
        1 => GossipTopic::Attestations,
        _ => GossipTopic::Evidence,
    };
    let Ok(gossip) = decode_gossip(topic, payload) else { return };
    assert_eq!(encode_gossip(&gossip), payload, "the payload re-encodes to other bytes");
    let (_, network) = fapiao_fuzz::fixed();
    match &gossip {
        Gossip::Header(h) => {
            let _ = h.verify(fapiao_fuzz::epochs(), network);
        }
        Gossip::Attestation(a) => {
            let _ = a.verify(fapiao_fuzz::epochs(), network);
        }
        Gossip::Evidence(e) => {
            let _ = e.verify(fapiao_fuzz::epochs(), network);
        }
    }
});
