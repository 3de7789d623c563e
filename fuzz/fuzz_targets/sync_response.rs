#![no_main]
//! A sync response frame (`/fapiao/sync/1`), as a node reads a peer's answer:
//! `fapiao_net::wire::decode_response_frame`, bounded as the node bounds it.
//! Property: never panics; a frame that decodes re-encodes to the same frame bytes, and
//! the blocks and certificates in it can be checked against the genesis without panic.

use fapiao_net::wire::{decode_response_frame, encode_frame, Response};
use fapiao_net::NetConfig;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn frame_bytes_max() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        NetConfig::new(vec![], fapiao_engine::EngineConfig::default().block_bytes_max).sync_frame_bytes_max
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(response) = decode_response_frame(data, frame_bytes_max()) else { return };
    let frame = encode_frame(&response).unwrap_or_else(|e| panic!("a response encodes: {e}"));
    assert_eq!(frame, data[..frame.len()], "the frame re-encodes to other bytes");
    let (_, network) = fapiao_fuzz::fixed();
    match &response {
        Response::Blocks(blocks) => {
            for (b, c) in blocks {
                let _ = b.check_entries();
                let _ = b.header.verify(fapiao_fuzz::epochs(), network);
                if let Some(c) = c {
                    let _ = c.verify(fapiao_fuzz::epochs(), network);
                }
            }
        }
        Response::Certificates(certs) => {
            for c in certs {
                let _ = c.verify(fapiao_fuzz::epochs(), network);
            }
        }
        Response::Heads(_) | Response::Unavailable | Response::NotEntitled => {}
    }
});
