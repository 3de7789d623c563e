//! Domain-separated SHA-256.
//!
//! Every hashed type has its own tag, so a hash of one type can never be presented as a
//! hash of another: `H_tag(data) = SHA-256(tag || data)`, where each tag is an ASCII
//! string ending in a NUL byte and no tag is a prefix of another. The RFC 6962 Merkle
//! hashes (see [`crate::merkle`]) use their own one-byte prefixes `0x00` and `0x01`,
//! which no tag starts with.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Hash32(pub [u8; 32]);

/// Byte order, as the derived order of the bytes would be, compared as four big-endian
/// words: the store's ordered maps of tree nodes compare their prefixes on every step,
/// and the derived order called `memcmp` for each (a fifth of the block producer's
/// time in a profile).
impl Ord for Hash32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let word = |h: &Hash32, i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&h.0[8 * i..8 * i + 8]);
            u64::from_be_bytes(w)
        };
        for i in 0..4 {
            match word(self, i).cmp(&word(other, i)) {
                std::cmp::Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        std::cmp::Ordering::Equal
    }
}

impl PartialOrd for Hash32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash32 {
    /// The all-zero value, used as the parent of a chain's first block.
    pub const ZERO: Hash32 = Hash32([0; 32]);

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Hash32(out))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

/// The domain-separation tags, one per hashed type. Documented in `docs/FORMAT.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The canonical genesis; its hash is the network id.
    Genesis,
    /// A signed event body; its hash is the event id.
    EventBody,
    /// A derived event, written by the chain owner during execution.
    DerivedEvent,
    /// A block header body; its hash is the block hash.
    Header,
    /// An attestation body.
    Attestation,
    /// A leaf of a chain's state tree.
    StateLeaf,
    /// A state key, hashed to its path in the state tree.
    StateKey,
    /// A state value, hashed into its leaf.
    StateValue,
    /// An inner node of the state tree.
    StateNode,
    /// An invoice check code.
    CheckCode,
}

impl Domain {
    /// The tag bytes, NUL terminated.
    pub const fn tag(self) -> &'static [u8] {
        match self {
            Domain::Genesis => b"fapiao/v1/genesis\0",
            Domain::EventBody => b"fapiao/v1/event\0",
            Domain::DerivedEvent => b"fapiao/v1/derived\0",
            Domain::Header => b"fapiao/v1/header\0",
            Domain::Attestation => b"fapiao/v1/attestation\0",
            Domain::StateLeaf => b"fapiao/v1/state-leaf\0",
            Domain::StateKey => b"fapiao/v1/state-key\0",
            Domain::StateValue => b"fapiao/v1/state-value\0",
            Domain::StateNode => b"fapiao/v1/state-node\0",
            Domain::CheckCode => b"fapiao/v1/check-code\0",
        }
    }

    /// Every tag, for tests that check they are distinct and prefix-free.
    pub const ALL: [Domain; 10] = [
        Domain::Genesis,
        Domain::EventBody,
        Domain::DerivedEvent,
        Domain::Header,
        Domain::Attestation,
        Domain::StateLeaf,
        Domain::StateKey,
        Domain::StateValue,
        Domain::StateNode,
        Domain::CheckCode,
    ];
}

/// `SHA-256(tag || data)`.
pub fn hash(domain: Domain, data: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(domain.tag());
    h.update(data);
    Hash32(h.finalize().into())
}

/// `SHA-256(tag || part_0 || part_1 || ...)`, for hashing without concatenating first.
pub fn hash_parts(domain: Domain, parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(domain.tag());
    for p in parts {
        h.update(p);
    }
    Hash32(h.finalize().into())
}

/// Plain SHA-256 with no tag (used only by the RFC 6962 Merkle tree).
pub fn sha256(parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash32(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Hashes order as their bytes do, also when they share all but a few bytes.
        #[test]
        fn hashes_order_as_their_bytes(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), shared in 0usize..=32) {
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            prop_assert_eq!(Hash32(a).cmp(&Hash32(b)), a.cmp(&b));
            prop_assert_eq!(Hash32(b).cmp(&Hash32(a)), b.cmp(&a));
            prop_assert_eq!(Hash32(a).partial_cmp(&Hash32(b)), Some(a.cmp(&b)));
        }
    }

    #[test]
    fn tags_are_distinct_prefix_free_and_never_start_with_merkle_prefixes() {
        for a in Domain::ALL {
            assert!(a.tag()[0] != 0x00 && a.tag()[0] != 0x01);
            assert_eq!(*a.tag().last().unwrap(), 0);
            for b in Domain::ALL {
                if a != b {
                    assert!(!b.tag().starts_with(a.tag()), "{a:?} prefixes {b:?}");
                }
            }
        }
    }

    #[test]
    fn same_data_different_domain_different_hash() {
        assert_ne!(hash(Domain::EventBody, b"x"), hash(Domain::Header, b"x"));
        assert_eq!(
            hash(Domain::EventBody, b"xy"),
            hash_parts(Domain::EventBody, &[b"x", b"y"])
        );
    }
}
