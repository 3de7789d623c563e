#![no_main]
//! The genesis TOML parser (`Genesis::from_toml`), which reads the file people write.
//! Property: never panics; a genesis that parses is canonical under both of its forms:
//! its own TOML (`to_toml`) parses back to the same genesis, and its canonical bytes
//! decode back to it through `Genesis::from_canonical` (which re-validates).

use fapiao_core::{codec, Genesis};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(genesis) = Genesis::from_toml(text) else { return };
    let toml = genesis.to_toml();
    match Genesis::from_toml(&toml) {
        Ok(again) => assert_eq!(again, genesis, "to_toml does not read back the same genesis:\n{toml}"),
        Err(e) => panic!("to_toml of a valid genesis does not parse ({e}):\n{toml}"),
    }
    match Genesis::from_canonical(&codec::to_bytes(&genesis)) {
        Ok(again) => assert_eq!(again, genesis),
        Err(e) => panic!("the canonical bytes of a valid genesis are refused: {e}"),
    }
});
