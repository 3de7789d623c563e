//! RFC 6962 (as restated in RFC 9162, section 2.1) Merkle tree hashing, inclusion and
//! consistency proofs.
//!
//! `leaf = SHA-256(0x00 || data)`, `node = SHA-256(0x01 || left || right)`, the empty
//! tree hashes to `SHA-256("")`. A tree of `n > 1` leaves splits at `k`, the largest
//! power of two below `n`. Functions take leaf *hashes* (see [`leaf_hash`]) so callers
//! hash each leaf once.

use crate::hash::{sha256, Hash32};

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash32 {
    sha256(&[&[0x00], data])
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    sha256(&[&[0x01], left.as_bytes(), right.as_bytes()])
}

/// The hash of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash32 {
    sha256(&[])
}

fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    // Largest power of two strictly below n.
    let mut k = 1usize;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of the given leaf hashes.
pub fn root(leaves: &[Hash32]) -> Hash32 {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// Why a proof did not verify or could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for the sizes given.
    #[error("proof has the wrong length")]
    WrongLength,
    /// The recomputed root does not match.
    #[error("recomputed root does not match")]
    RootMismatch,
    /// A consistency proof was asked for from a larger to a smaller tree.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizesOutOfOrder {
        /// The first size.
        old: u64,
        /// The second size.
        new: u64,
    },
}

/// The audit path for the leaf at `index`: sibling hashes from the leaf up.
pub fn inclusion_proof(leaves: &[Hash32], index: usize) -> Result<Vec<Hash32>, MerkleError> {
    if index >= leaves.len() {
        return Err(MerkleError::IndexOutOfRange {
            index: index as u64,
            size: leaves.len() as u64,
        });
    }
    let mut path = Vec::new();
    path_rec(leaves, index, &mut path);
    Ok(path)
}

fn path_rec(leaves: &[Hash32], m: usize, out: &mut Vec<Hash32>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_rec(&leaves[..k], m, out);
        out.push(root(&leaves[k..]));
    } else {
        path_rec(&leaves[k..], m - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// Checks that `leaf` is at `index` in the tree of `size` leaves whose root is `root`
/// (RFC 9162, 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash32,
    index: u64,
    size: u64,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(MerkleError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(MerkleError::WrongLength);
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// The proof that the tree of the first `old` leaves is a prefix of the tree of all
/// `leaves` (RFC 9162, 2.1.4.1). Empty when `old` is 0 or equals the size.
pub fn consistency_proof(leaves: &[Hash32], old: usize) -> Result<Vec<Hash32>, MerkleError> {
    let n = leaves.len();
    if old > n {
        return Err(MerkleError::SizesOutOfOrder {
            old: old as u64,
            new: n as u64,
        });
    }
    let mut out = Vec::new();
    if old > 0 && old < n {
        subproof(old, leaves, true, &mut out);
    }
    Ok(out)
}

fn subproof(m: usize, leaves: &[Hash32], complete: bool, out: &mut Vec<Hash32>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Checks a consistency proof between a tree of `old` leaves with root `old_root` and a
/// tree of `new` leaves with root `new_root` (RFC 9162, 2.1.4.2; a tree of size 0 is
/// consistent with every tree, with an empty proof).
// Long: RFC 6962's consistency-proof algorithm, step for step as specified.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash32,
    new_root: &Hash32,
    proof: &[Hash32],
) -> Result<(), MerkleError> {
    if old > new {
        return Err(MerkleError::SizesOutOfOrder { old, new });
    }
    if old == 0 {
        if !proof.is_empty() {
            return Err(MerkleError::WrongLength);
        }
        return if *old_root == empty_root() {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    if old == new {
        if !proof.is_empty() {
            return Err(MerkleError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    let mut path: Vec<Hash32> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(MerkleError::WrongLength);
    };
    let mut f_n = old - 1;
    let mut s_n = new - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut f_r = *first;
    let mut s_r = *first;
    for c in rest {
        if s_n == 0 {
            return Err(MerkleError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(MerkleError::WrongLength);
    }
    if f_r != *old_root || s_r != *new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash32> {
        (0..n).map(|i| leaf_hash(&(i as u64).to_le_bytes())).collect()
    }

    /// One tampering per position: flip a bit of each proof hash, drop the last hash,
    /// add an extra hash.
    fn tamperings(proof: &[Hash32]) -> Vec<Vec<Hash32>> {
        let mut out = Vec::new();
        for i in 0..proof.len() {
            let mut p = proof.to_vec();
            p[i].0[i % 32] ^= 0x40;
            out.push(p);
        }
        if !proof.is_empty() {
            out.push(proof[..proof.len() - 1].to_vec());
        }
        let mut longer = proof.to_vec();
        longer.push(Hash32([9; 32]));
        out.push(longer);
        out
    }

    #[test]
    fn known_roots() {
        // SHA-256("") and a one-leaf tree.
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(root(&[leaf_hash(b"")]), leaf_hash(b""));
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn every_inclusion_proof_verifies_and_every_tampering_fails_up_to_64() {
        for n in 0..=64usize {
            let l = leaves(n);
            let r = root(&l);
            assert!(inclusion_proof(&l, n).is_err());
            for i in 0..n {
                let p = inclusion_proof(&l, i).unwrap();
                verify_inclusion(&l[i], i as u64, n as u64, &p, &r).unwrap();
                for t in tamperings(&p) {
                    assert!(
                        verify_inclusion(&l[i], i as u64, n as u64, &t, &r).is_err(),
                        "n={n} i={i}"
                    );
                }
                // Wrong leaf, wrong index, wrong root.
                let mut wrong_leaf = l[i];
                wrong_leaf.0[0] ^= 1;
                assert!(verify_inclusion(&wrong_leaf, i as u64, n as u64, &p, &r).is_err());
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(verify_inclusion(&l[i], j as u64, n as u64, &p, &r).is_err());
                }
                // (A different tree size is not checked: a path can have the same shape for
                // two sizes, and then proves the same root. The size is bound by the signed
                // header's event_count, which the verifier takes from there.)
                let mut wrong_root = r;
                wrong_root.0[31] ^= 1;
                assert!(verify_inclusion(&l[i], i as u64, n as u64, &p, &wrong_root).is_err());
            }
        }
    }

    #[test]
    fn consistency_between_every_pair_up_to_64() {
        let all = leaves(64);
        for n in 0..=64usize {
            let new_root = root(&all[..n]);
            for m in 0..=n {
                let old_root = root(&all[..m]);
                let p = consistency_proof(&all[..n], m).unwrap();
                verify_consistency(m as u64, n as u64, &old_root, &new_root, &p)
                    .unwrap_or_else(|e| panic!("m={m} n={n}: {e}"));
                for t in tamperings(&p) {
                    assert!(
                        verify_consistency(m as u64, n as u64, &old_root, &new_root, &t).is_err(),
                        "tampered m={m} n={n}"
                    );
                }
                if m > 0 && m < n {
                    // An old root that is not a prefix of the new tree must fail.
                    let mut other = all[..m].to_vec();
                    other[0].0[0] ^= 1;
                    assert!(verify_consistency(m as u64, n as u64, &root(&other), &new_root, &p).is_err());
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_larger_trees(n in 65usize..2000, seed in any::<u64>()) {
            let l: Vec<Hash32> = (0..n).map(|i| leaf_hash(&(seed ^ i as u64).to_le_bytes())).collect();
            let r = root(&l);
            let i = (seed as usize) % n;
            let p = inclusion_proof(&l, i).unwrap();
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &p, &r).is_ok());
            for t in tamperings(&p) {
                prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &t, &r).is_err());
            }
            let m = 1 + (seed as usize / 7) % (n - 1);
            let c = consistency_proof(&l, m).unwrap();
            prop_assert!(verify_consistency(m as u64, n as u64, &root(&l[..m]), &r, &c).is_ok());
            for t in tamperings(&c) {
                prop_assert!(verify_consistency(m as u64, n as u64, &root(&l[..m]), &r, &t).is_err());
            }
        }
    }
}
