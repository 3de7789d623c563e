//! The state tree: a compact sparse Merkle tree over 256-bit key hashes.
//!
//! A key's path is `H_state-key(key)`, read most significant bit first. A leaf sits at
//! the shallowest depth where no other key shares its path prefix; a subtree with no
//! keys hashes to 32 zero bytes; an inner node always has at least two keys below it
//! (a single remaining leaf moves up), so every set of key-value pairs has exactly one
//! tree and one root, whatever order the updates came in.
//!
//! - `leaf = H_state-leaf(key_hash || value_hash)`, `value_hash = H_state-value(value)`
//! - `inner = H_state-node(left || right)`, empty = `00` × 32
//!
//! A proof for a key lists the sibling hashes from the root down to where the key's leaf
//! is (or would be), and the leaf found there if any; it proves presence with a value, or
//! absence. The update algorithm works over any [`NodeStore`] (RocksDB in the node, a
//! map in tests), buffering changed nodes in a [`TreeUpdate`].

use crate::hash::{hash, hash_parts, Domain, Hash32};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A hash map keyed by tree positions, hashed with foldhash rather than SipHash: a
/// block's update reads and writes tens of thousands of nodes, and a position is the
/// prefix of a hash, nothing a client chooses. [`TreeUpdate`] keeps its changes in one
/// and hands them on as the block's index of changed nodes.
pub type NodeMap<V> = foldhash::HashMap<NodeKey, V>;

/// The root of the empty tree.
pub const EMPTY: Hash32 = Hash32::ZERO;

/// Where a node sits: its depth (0 = root) and its path prefix (bits at and below
/// `depth` cleared).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct NodeKey {
    /// Depth, 0 for the root.
    pub depth: u8,
    /// The first `depth` bits of the path, the rest zero.
    pub prefix: Hash32,
}

impl NodeKey {
    /// The node at `depth` on the path `path`.
    pub fn on_path(depth: u8, path: &Hash32) -> Self {
        // Each byte masked to the bits of it that lie above `depth`: a fixed loop over
        // the 32 bytes, without a copy of variable length (the store finds the page of
        // every node it reads and writes this way; a copy of `depth / 8` bytes and a
        // branch took 8% of the block writer).
        let mut prefix = path.0;
        for (i, b) in prefix.iter_mut().enumerate() {
            let kept = (depth as u32).saturating_sub(8 * i as u32).min(8);
            *b &= !0xffu8.checked_shr(kept).unwrap_or(0);
        }
        NodeKey {
            depth,
            prefix: Hash32(prefix),
        }
    }

    /// The child on side `bit` (0 left, 1 right).
    fn child(&self, bit: u8) -> NodeKey {
        let mut prefix = self.prefix;
        if bit == 1 {
            let d = self.depth as usize;
            prefix.0[d / 8] |= 0x80 >> (d % 8);
        }
        NodeKey {
            depth: self.depth + 1,
            prefix,
        }
    }
}

/// A stored node.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Node {
    /// A key and its value hash.
    Leaf {
        /// The key's path.
        key_hash: Hash32,
        /// The value's hash.
        value_hash: Hash32,
    },
    /// An inner node with its children's hashes.
    Inner {
        /// Left child hash (bit 0), or [`EMPTY`].
        left: Hash32,
        /// Right child hash (bit 1), or [`EMPTY`].
        right: Hash32,
    },
}

impl Node {
    /// The node's hash.
    pub fn hash(&self) -> Hash32 {
        match self {
            Node::Leaf { key_hash, value_hash } => leaf_hash(key_hash, value_hash),
            Node::Inner { left, right } => inner_hash(left, right),
        }
    }
}

/// `H_state-key(key)`: the key's path.
pub fn key_hash(key: &[u8]) -> Hash32 {
    hash(Domain::StateKey, key)
}

/// `H_state-value(value)`.
pub fn value_hash(value: &[u8]) -> Hash32 {
    hash(Domain::StateValue, value)
}

/// `H_state-leaf(key_hash || value_hash)`.
pub fn leaf_hash(key_hash: &Hash32, value_hash: &Hash32) -> Hash32 {
    hash_parts(Domain::StateLeaf, &[key_hash.as_bytes(), value_hash.as_bytes()])
}

/// `H_state-node(left || right)`.
pub fn inner_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    hash_parts(Domain::StateNode, &[left.as_bytes(), right.as_bytes()])
}

/// Bit `i` of a path, most significant first.
pub fn bit(path: &Hash32, i: u8) -> u8 {
    (path.0[i as usize / 8] >> (7 - i % 8)) & 1
}

/// Read access to stored nodes.
pub trait NodeStore {
    /// The store's read error.
    type Error;
    /// The node at `at`, if any.
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, Self::Error>;
}

/// An in-memory node store (tests and tools).
#[derive(Default, Clone, Debug)]
pub struct MemNodes(pub BTreeMap<NodeKey, Node>);

impl NodeStore for MemNodes {
    type Error = std::convert::Infallible;
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, Self::Error> {
        Ok(self.0.get(at).copied())
    }
}

impl MemNodes {
    /// Applies the changes of a finished update.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = (NodeKey, Option<Node>)>) {
        for (k, v) in changes {
            match v {
                Some(n) => self.0.insert(k, n),
                None => self.0.remove(&k),
            };
        }
    }
}

/// A batch of updates over a store: reads see earlier writes of the batch.
pub struct TreeUpdate<'a, S> {
    store: &'a S,
    changes: NodeMap<Option<Node>>,
}

/// A state tree with a corrupt shape (an inner node where a leaf must be, a path deeper
/// than 255): only possible if storage was damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError<E> {
    /// The store failed.
    #[error("state tree read failed: {0}")]
    Read(E),
    /// The stored tree is not a valid tree.
    #[error("state tree is corrupt at depth {0}")]
    Corrupt(u8),
}

impl<'a, S: NodeStore> TreeUpdate<'a, S> {
    /// A new batch over `store`.
    pub fn new(store: &'a S) -> Self {
        TreeUpdate {
            store,
            changes: NodeMap::default(),
        }
    }

    fn get(&self, at: &NodeKey) -> Result<Option<Node>, TreeError<S::Error>> {
        match self.changes.get(at) {
            Some(v) => Ok(*v),
            None => self.store.node(at).map_err(TreeError::Read),
        }
    }

    fn put(&mut self, at: NodeKey, node: Option<Node>) {
        self.changes.insert(at, node);
    }

    /// Sets (`Some`) or removes (`None`) the value hash of `key_hash`.
    pub fn set(&mut self, key_hash: &Hash32, value_hash: Option<&Hash32>) -> Result<(), TreeError<S::Error>> {
        let root = self.root()?;
        self.update(NodeKey::on_path(0, key_hash), key_hash, value_hash, root)?;
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) many keys in one pass: `ops` sorted by key
    /// hash, each key at most once. Each node the batch changes is read, checked and
    /// hashed once, however many of the keys pass through it, where [`Self::set`] per key
    /// would rehash the shared upper levels once per key. The nodes written are those
    /// the keys set one by one would leave, so the tree and its root are the same.
    pub fn set_sorted(&mut self, ops: &[(Hash32, Option<Hash32>)]) -> Result<(), TreeError<S::Error>> {
        assert!(
            ops.windows(2).all(|w| w[0].0 < w[1].0),
            "set_sorted takes keys in strictly increasing order"
        );
        let root = self.root()?;
        self.update_many(NodeKey::on_path(0, &EMPTY), ops, root)?;
        Ok(())
    }

    /// Updates the subtree at `at`, whose hash is `expected` now, with `ops` (sorted, all
    /// below `at`), and returns its new hash.
    fn update_many(
        &mut self,
        at: NodeKey,
        ops: &[(Hash32, Option<Hash32>)],
        expected: Hash32,
    ) -> Result<Hash32, TreeError<S::Error>> {
        match ops {
            [] => return Ok(expected),
            [(kh, vh)] => return self.update(at, kh, vh.as_ref(), expected),
            _ => {}
        }
        // The leaves the ops set (deletions dropped), for a subtree built afresh.
        let set = || -> Vec<(Hash32, Hash32)> { ops.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect() };
        match self.get_checked(&at, &expected)? {
            None => self.build(at, &set()),
            Some(Node::Leaf { key_hash, value_hash }) => {
                let mut leaves = set();
                if ops.binary_search_by(|(k, _)| k.cmp(&key_hash)).is_err() {
                    // No op names the leaf's key: it stays, among the new leaves.
                    if leaves.is_empty() {
                        return Ok(expected);
                    }
                    let j = leaves.partition_point(|(k, _)| *k < key_hash);
                    leaves.insert(j, (key_hash, value_hash));
                }
                self.put(at, None);
                self.build(at, &leaves)
            }
            Some(Node::Inner { left, right }) => {
                if at.depth == u8::MAX {
                    return Err(TreeError::Corrupt(at.depth));
                }
                let split = ops.partition_point(|(k, _)| bit(k, at.depth) == 0);
                let l = self.update_many(at.child(0), &ops[..split], left)?;
                let r = self.update_many(at.child(1), &ops[split..], right)?;
                self.settle(at, l, r)
            }
        }
    }

    /// Writes the inner node at `at` over children now hashing to `l` and `r`, keeping
    /// the tree canonical: no node over an empty subtree, no lone leaf below an inner
    /// node (it moves up to `at`).
    fn settle(&mut self, at: NodeKey, l: Hash32, r: Hash32) -> Result<Hash32, TreeError<S::Error>> {
        if l == EMPTY && r == EMPTY {
            self.put(at, None);
            return Ok(EMPTY);
        }
        if l == EMPTY || r == EMPTY {
            let other = at.child(if l == EMPTY { 1 } else { 0 });
            let other_hash = if l == EMPTY { r } else { l };
            if let Some(leaf @ Node::Leaf { .. }) = self.get_checked(&other, &other_hash)? {
                self.put(other, None);
                self.put(at, Some(leaf));
                return Ok(leaf.hash());
            }
        }
        let inner = Node::Inner { left: l, right: r };
        self.put(at, Some(inner));
        Ok(inner.hash())
    }

    /// Builds the subtree at `at`, where nothing is stored now, holding exactly
    /// `leaves` (sorted, all below `at`), and returns its hash.
    fn build(&mut self, at: NodeKey, leaves: &[(Hash32, Hash32)]) -> Result<Hash32, TreeError<S::Error>> {
        match leaves {
            [] => Ok(EMPTY),
            [(kh, vh)] => Ok(self.put_leaf(at, kh, vh)),
            _ => {
                if at.depth == u8::MAX {
                    return Err(TreeError::Corrupt(at.depth));
                }
                let split = leaves.partition_point(|(k, _)| bit(k, at.depth) == 0);
                let l = self.build(at.child(0), &leaves[..split])?;
                let r = self.build(at.child(1), &leaves[split..])?;
                let inner = Node::Inner { left: l, right: r };
                self.put(at, Some(inner));
                Ok(inner.hash())
            }
        }
    }

    /// The node at `at`, which its parent records as hashing to `expected`: a stored
    /// node that does not is damage, and building on it would sign a wrong root.
    fn get_checked(&self, at: &NodeKey, expected: &Hash32) -> Result<Option<Node>, TreeError<S::Error>> {
        let node = self.get(at)?;
        if node.map(|n| n.hash()).unwrap_or(EMPTY) != *expected {
            return Err(TreeError::Corrupt(at.depth));
        }
        Ok(node)
    }

    /// The root after the updates so far.
    pub fn root(&self) -> Result<Hash32, TreeError<S::Error>> {
        Ok(self
            .get(&NodeKey::on_path(0, &EMPTY))?
            .map(|n| n.hash())
            .unwrap_or(EMPTY))
    }

    /// The node changes to persist (`None` = delete), in key order.
    pub fn into_changes(self) -> BTreeMap<NodeKey, Option<Node>> {
        self.changes.into_iter().collect()
    }

    /// The node changes to persist (`None` = delete), unordered.
    pub fn into_map(self) -> NodeMap<Option<Node>> {
        self.changes
    }

    fn put_leaf(&mut self, at: NodeKey, kh: &Hash32, vh: &Hash32) -> Hash32 {
        let leaf = Node::Leaf {
            key_hash: *kh,
            value_hash: *vh,
        };
        self.put(at, Some(leaf));
        leaf.hash()
    }

    /// Updates the subtree at `at` (on `kh`'s path), whose hash is `expected` now, and
    /// returns its new hash.
    fn update(
        &mut self,
        at: NodeKey,
        kh: &Hash32,
        vh: Option<&Hash32>,
        expected: Hash32,
    ) -> Result<Hash32, TreeError<S::Error>> {
        match self.get_checked(&at, &expected)? {
            None => match vh {
                Some(v) => Ok(self.put_leaf(at, kh, v)),
                None => Ok(EMPTY),
            },
            Some(Node::Leaf { key_hash, .. }) if key_hash == *kh => match vh {
                Some(v) => Ok(self.put_leaf(at, kh, v)),
                None => {
                    self.put(at, None);
                    Ok(EMPTY)
                }
            },
            Some(existing @ Node::Leaf { key_hash, value_hash }) => match vh {
                None => Ok(existing.hash()),
                Some(v) => {
                    self.put(at, None);
                    self.place_two(at, (*kh, *v), (key_hash, value_hash))
                }
            },
            Some(Node::Inner { left, right }) => {
                if at.depth == u8::MAX {
                    return Err(TreeError::Corrupt(at.depth));
                }
                let side = bit(kh, at.depth);
                let below = if side == 0 { left } else { right };
                let child = self.update(at.child(side), kh, vh, below)?;
                let (l, r) = if side == 0 { (child, right) } else { (left, child) };
                self.settle(at, l, r)
            }
        }
    }

    /// Builds the subtree at `at` holding exactly two leaves.
    fn place_two(
        &mut self,
        at: NodeKey,
        a: (Hash32, Hash32),
        b: (Hash32, Hash32),
    ) -> Result<Hash32, TreeError<S::Error>> {
        if at.depth == u8::MAX {
            return Err(TreeError::Corrupt(at.depth));
        }
        let (ba, bb) = (bit(&a.0, at.depth), bit(&b.0, at.depth));
        let (l, r) = if ba == bb {
            let child = self.place_two(at.child(ba), a, b)?;
            if ba == 0 {
                (child, EMPTY)
            } else {
                (EMPTY, child)
            }
        } else {
            let la = Node::Leaf {
                key_hash: a.0,
                value_hash: a.1,
            };
            let lb = Node::Leaf {
                key_hash: b.0,
                value_hash: b.1,
            };
            self.put(at.child(ba), Some(la));
            self.put(at.child(bb), Some(lb));
            if ba == 0 {
                (la.hash(), lb.hash())
            } else {
                (lb.hash(), la.hash())
            }
        };
        let inner = Node::Inner { left: l, right: r };
        self.put(at, Some(inner));
        Ok(inner.hash())
    }
}

/// A proof of a key's value (or absence) against a root.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StateProof {
    /// Sibling hashes from the root (depth 0) down.
    pub siblings: Vec<Hash32>,
    /// The leaf where the walk ended, if any: `(key_hash, value_hash)`.
    pub leaf: Option<(Hash32, Hash32)>,
}

/// Builds the proof for `key_hash` from a store.
pub fn prove<S: NodeStore>(store: &S, key_hash: &Hash32) -> Result<StateProof, TreeError<S::Error>> {
    let mut siblings = Vec::new();
    let mut at = NodeKey::on_path(0, key_hash);
    loop {
        match store.node(&at).map_err(TreeError::Read)? {
            None => return Ok(StateProof { siblings, leaf: None }),
            Some(Node::Leaf { key_hash, value_hash }) => {
                return Ok(StateProof {
                    siblings,
                    leaf: Some((key_hash, value_hash)),
                })
            }
            Some(Node::Inner { left, right }) => {
                if at.depth == u8::MAX {
                    return Err(TreeError::Corrupt(at.depth));
                }
                let side = bit(key_hash, at.depth);
                siblings.push(if side == 0 { right } else { left });
                at = at.child(side);
            }
        }
    }
}

/// Why a state proof does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof is deeper than a path.
    #[error("state proof is too long")]
    TooLong,
    /// The leaf does not show what was claimed.
    #[error("state proof's leaf does not match the claim")]
    LeafMismatch,
    /// The recomputed root differs.
    #[error("state proof does not lead to the root")]
    RootMismatch,
}

/// Checks that under `root`, `key_hash` has value hash `value_hash` (`Some`), or is
/// absent (`None`).
pub fn verify(
    root: &Hash32,
    key_hash: &Hash32,
    value_hash: Option<&Hash32>,
    proof: &StateProof,
) -> Result<(), ProofError> {
    if proof.siblings.len() > 255 {
        return Err(ProofError::TooLong);
    }
    let depth = proof.siblings.len() as u8;
    match (value_hash, &proof.leaf) {
        (Some(v), Some((k, pv))) if k == key_hash && pv == v => {}
        (None, None) => {}
        (None, Some((k, _))) if k != key_hash && (0..depth).all(|i| bit(k, i) == bit(key_hash, i)) => {}
        _ => return Err(ProofError::LeafMismatch),
    }
    let mut h = proof.leaf.map(|(k, v)| leaf_hash(&k, &v)).unwrap_or(EMPTY);
    for d in (0..depth).rev() {
        let s = &proof.siblings[d as usize];
        h = if bit(key_hash, d) == 0 {
            inner_hash(&h, s)
        } else {
            inner_hash(s, &h)
        };
    }
    if h != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A node's prefix is its path's first `depth` bits, the rest zero, at every depth.
    #[test]
    fn a_prefix_keeps_exactly_the_bits_above_its_depth() {
        for path in [
            [0xffu8; 32],
            [0xa5; 32],
            std::array::from_fn(|i| (i as u8).wrapping_mul(37)),
        ] {
            let path = Hash32(path);
            for depth in 0..=255u8 {
                let at = NodeKey::on_path(depth, &path);
                for i in 0..=255u8 {
                    let want = if i < depth { bit(&path, i) } else { 0 };
                    assert_eq!(bit(&at.prefix, i), want, "bit {i} at depth {depth}");
                }
            }
        }
    }

    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap as Map;

    fn kh(k: u16) -> Hash32 {
        key_hash(&k.to_le_bytes())
    }
    fn vh(v: u16) -> Hash32 {
        value_hash(&v.to_le_bytes())
    }

    fn apply(nodes: &mut MemNodes, ops: &[(u16, Option<u16>)]) -> Hash32 {
        let mut u = TreeUpdate::new(&*nodes);
        for (k, v) in ops {
            u.set(&kh(*k), v.map(vh).as_ref()).unwrap();
        }
        let root = u.root().unwrap();
        let changes = u.into_changes();
        nodes.apply(changes);
        root
    }

    /// The same batch through [`TreeUpdate::set_sorted`]: the root and the nodes it
    /// leaves must be those of the keys set one by one.
    fn apply_sorted(nodes: &mut MemNodes, ops: &[(u16, Option<u16>)]) -> Hash32 {
        let mut last: Map<Hash32, Option<Hash32>> = Map::new();
        for (k, v) in ops {
            last.insert(kh(*k), v.map(vh));
        }
        let sorted: Vec<(Hash32, Option<Hash32>)> = last.into_iter().collect();
        let mut u = TreeUpdate::new(&*nodes);
        u.set_sorted(&sorted).unwrap();
        let root = u.root().unwrap();
        let changes = u.into_changes();
        nodes.apply(changes);
        root
    }

    /// The root of a set of pairs built from scratch in key order.
    fn fresh_root(model: &Map<u16, u16>) -> Hash32 {
        let mut n = MemNodes::default();
        let ops: Vec<(u16, Option<u16>)> = model.iter().map(|(k, v)| (*k, Some(*v))).collect();
        apply(&mut n, &ops)
    }

    #[test]
    fn a_sorted_batch_refuses_keys_out_of_order() {
        let n = MemNodes::default();
        let mut u = TreeUpdate::new(&n);
        let twice = [(kh(1), Some(vh(1))), (kh(1), None)];
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| u.set_sorted(&twice))).is_err());
    }

    #[test]
    fn empty_and_single() {
        let mut n = MemNodes::default();
        assert_eq!(apply(&mut n, &[]), EMPTY);
        let r = apply(&mut n, &[(1, Some(1))]);
        assert_eq!(r, leaf_hash(&kh(1), &vh(1)));
        let r = apply(&mut n, &[(1, None)]);
        assert_eq!(r, EMPTY);
        assert!(n.0.is_empty(), "deleting the last key leaves no nodes");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Larger batches over a larger tree, where whole subtrees are built, merged
        /// with a leaf, emptied or collapsed in one pass.
        #[test]
        fn a_sorted_batch_leaves_the_tree_of_keys_set_one_by_one(batches in prop::collection::vec(prop::collection::vec((0u16..600, prop::option::of(0u16..4)), 0..300), 1..5)) {
            let (mut one, mut batched) = (MemNodes::default(), MemNodes::default());
            for b in &batches {
                let root = apply(&mut one, b);
                prop_assert_eq!(apply_sorted(&mut batched, b), root);
                prop_assert_eq!(&batched.0, &one.0);
            }
        }

        /// The root depends only on the final contents, and every key's proof verifies
        /// (presence and absence); tampering with any proof hash fails.
        #[test]
        fn canonical_root_and_proofs(batches in prop::collection::vec(prop::collection::vec((0u16..64, prop::option::of(0u16..4)), 0..20), 1..6)) {
            let mut n = MemNodes::default();
            let mut model = Map::new();
            let mut root = EMPTY;
            let mut batched = MemNodes::default();
            for b in &batches {
                root = apply(&mut n, b);
                prop_assert_eq!(apply_sorted(&mut batched, b), root);
                prop_assert_eq!(&batched.0, &n.0, "one sorted batch leaves the nodes the keys set one by one leave");
                for (k, v) in b {
                    match v { Some(v) => { model.insert(*k, *v); } None => { model.remove(k); } }
                }
                prop_assert_eq!(root, fresh_root(&model));
            }
            for k in 0u16..64 {
                let p = prove(&n, &kh(k)).unwrap();
                let want = model.get(&k).map(|v| vh(*v));
                prop_assert!(verify(&root, &kh(k), want.as_ref(), &p).is_ok(), "key {}", k);
                // The opposite claim fails.
                let wrong = match want { Some(_) => None, None => Some(vh(9)) };
                prop_assert!(verify(&root, &kh(k), wrong.as_ref(), &p).is_err());
                for i in 0..p.siblings.len() {
                    let mut t = p.clone();
                    t.siblings[i].0[0] ^= 1;
                    prop_assert!(verify(&root, &kh(k), want.as_ref(), &t).is_err());
                }
            }
            // No inner node has fewer than two leaves below (one side empty and the
            // other a leaf).
            for (at, node) in &n.0 {
                if let Node::Inner { left, right } = node {
                    prop_assert!(!(left == &EMPTY && right == &EMPTY));
                    if left == &EMPTY || right == &EMPTY {
                        let other = at.child(if left == &EMPTY { 1 } else { 0 });
                        prop_assert!(!matches!(n.0.get(&other), Some(Node::Leaf { .. })), "lone leaf below an inner node");
                    }
                }
            }
        }
    }
}
