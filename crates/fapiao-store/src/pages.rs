//! How the state tree is laid out in RocksDB: binary nodes packed into pages.
//!
//! The state tree (FORMAT.md §10) is binary, about 20 levels deep on a chain with a
//! million records. Stored one node per row, every record read checked against the tree
//! and every leaf update cost about 20 point lookups, and a block of a few thousand
//! writes put tens of thousands of rows into the memtable: RocksDB's per-key work was
//! most of the producer's time. A page holds the four levels of a subtree whose root
//! sits at a depth divisible by four (at most 1 + 2 + 4 + 8 = 15 nodes), like one node of
//! a radix-16 tree, so a path is about five rows and a block rewrites about a fifth as
//! many keys.
//!
//! Only the storage changes: the tree, its hashes, its root and its proofs are the binary
//! ones of FORMAT.md §10, and a page is rebuilt from the node changes a block's tree
//! update produces ([`apply`]). A page is keyed by its root's position (depth, path
//! prefix), and its stored bytes list the nodes it holds by slot (1 for the page's root,
//! then `2s` and `2s + 1` for the children of slot `s`), in ascending slot order, so
//! equal pages have equal bytes (replay compares them row by row).

use fapiao_core::smt::{bit, Node, NodeKey};
use fapiao_core::Hash32;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tree levels per page.
pub const PAGE_LEVELS: u8 = 4;

/// Node slots per page: 2^[`PAGE_LEVELS`] - 1.
const SLOTS: usize = (1 << PAGE_LEVELS) - 1;

/// The position of the page that holds the node at `at`: the node on its path at the
/// nearest depth at or above it that is divisible by [`PAGE_LEVELS`].
pub fn page_of(at: &NodeKey) -> NodeKey {
    NodeKey::on_path(at.depth - at.depth % PAGE_LEVELS, &at.prefix)
}

/// The slot of `at` in its page (1 to 15).
fn slot(at: &NodeKey) -> usize {
    let base = at.depth - at.depth % PAGE_LEVELS;
    (base..at.depth).fold(1usize, |s, d| 2 * s + bit(&at.prefix, d) as usize)
}

/// Up to 15 nodes of one four-level subtree.
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "Vec<(u8, Node)>", into = "Vec<(u8, Node)>")]
pub struct Page {
    slots: [Option<Node>; SLOTS],
}

impl Page {
    /// The node at `at`, which must lie in this page (see [`page_of`]).
    pub fn node(&self, at: &NodeKey) -> Option<Node> {
        self.slots[slot(at) - 1]
    }

    /// Sets or clears the node at `at`, which must lie in this page.
    pub fn set(&mut self, at: &NodeKey, node: Option<Node>) {
        self.slots[slot(at) - 1] = node;
    }

    /// Whether the page holds no node (its row is deleted).
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

/// The stored bytes of one node of a page: its slot, its variant (a little-endian `u32`:
/// 0 leaf, 1 inner) and its two hashes.
const NODE_BYTES: usize = 1 + 4 + 32 + 32;

impl Page {
    /// The page's stored bytes: exactly its canonical encoding (`codec::to_bytes`), a
    /// little-endian `u64` count then each node's [`NODE_BYTES`], written directly.
    pub fn to_bytes(&self) -> Vec<u8> {
        let nodes: Vec<(u8, Node)> = (1u8..).zip(self.slots).filter_map(|(s, n)| n.map(|n| (s, n))).collect();
        let mut out = Vec::with_capacity(8 + nodes.len() * NODE_BYTES);
        out.extend_from_slice(&(nodes.len() as u64).to_le_bytes());
        for (s, node) in nodes {
            out.push(s);
            let (variant, a, b) = match node {
                Node::Leaf { key_hash, value_hash } => (0u32, key_hash, value_hash),
                Node::Inner { left, right } => (1u32, left, right),
            };
            out.extend_from_slice(&variant.to_le_bytes());
            out.extend_from_slice(&a.0);
            out.extend_from_slice(&b.0);
        }
        out
    }

    /// The page `bytes` encode, read directly: the same answer as `codec::decode`, which
    /// walks each hash a byte at a time through serde (that walk was a seventh of the
    /// producer's time). The same bytes are refused (a test holds the two to it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Page, String> {
        let (count, rest) = bytes
            .split_at_checked(8)
            .ok_or("a page's bytes end before its node count")?;
        let count = u64::from_le_bytes(count.try_into().map_err(|_| "a page's node count")?);
        if count > SLOTS as u64 || rest.len() as u64 != count * NODE_BYTES as u64 {
            return Err(format!("a page of {count} nodes cannot be {} bytes long", bytes.len()));
        }
        let mut page = Page::default();
        let mut last = 0u8;
        for node in rest.chunks_exact(NODE_BYTES) {
            let (&s, node) = node.split_first().ok_or("an empty node")?;
            if s <= last || s as usize > SLOTS {
                return Err(format!("page slot {s} is out of range or out of order"));
            }
            let (variant, hashes) = node.split_at(4);
            let (a, b) = hashes.split_at(32);
            let (a, b) = (
                Hash32(a.try_into().map_err(|_| "a hash")?),
                Hash32(b.try_into().map_err(|_| "a hash")?),
            );
            page.slots[s as usize - 1] = Some(match u32::from_le_bytes(variant.try_into().map_err(|_| "a variant")?) {
                0 => Node::Leaf {
                    key_hash: a,
                    value_hash: b,
                },
                1 => Node::Inner { left: a, right: b },
                v => return Err(format!("node variant {v} is neither a leaf nor an inner node")),
            });
            last = s;
        }
        Ok(page)
    }
}

impl From<Page> for Vec<(u8, Node)> {
    fn from(p: Page) -> Self {
        (1u8..).zip(p.slots).filter_map(|(s, n)| n.map(|n| (s, n))).collect()
    }
}

impl TryFrom<Vec<(u8, Node)>> for Page {
    type Error = String;
    fn try_from(nodes: Vec<(u8, Node)>) -> Result<Self, String> {
        let mut page = Page::default();
        let mut last = 0u8;
        for (s, n) in nodes {
            if s <= last || s as usize > SLOTS {
                return Err(format!("page slot {s} is out of range or out of order"));
            }
            page.slots[s as usize - 1] = Some(n);
            last = s;
        }
        Ok(page)
    }
}

/// The pages a block's node changes touch: the position of each, grouped with the
/// changes that fall in it, in key order.
pub fn group(changes: &BTreeMap<NodeKey, Option<Node>>) -> BTreeMap<NodeKey, Vec<(NodeKey, Option<Node>)>> {
    let mut pages: BTreeMap<NodeKey, Vec<(NodeKey, Option<Node>)>> = BTreeMap::new();
    for (at, node) in changes {
        pages.entry(page_of(at)).or_default().push((*at, *node));
    }
    pages
}

/// A page after its node changes; `None` when nothing is left in it.
pub fn apply(old: Option<Page>, changes: &[(NodeKey, Option<Node>)]) -> Option<Page> {
    let mut page = old.unwrap_or_default();
    for (at, node) in changes {
        page.set(at, *node);
    }
    (!page.is_empty()).then_some(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fapiao_core::codec;
    use fapiao_core::smt::{self, MemNodes, NodeStore, TreeUpdate};
    use proptest::prelude::*;

    fn leaf(n: u8) -> Node {
        Node::Leaf {
            key_hash: Hash32([n; 32]),
            value_hash: Hash32([n ^ 0xff; 32]),
        }
    }

    #[test]
    fn every_node_of_a_path_has_its_own_slot_in_the_right_page() {
        let path = Hash32([0b1011_0110; 32]);
        let mut seen = std::collections::BTreeSet::new();
        for depth in 0..=255u8 {
            let at = NodeKey::on_path(depth, &path);
            let page = page_of(&at);
            assert_eq!(page.depth % PAGE_LEVELS, 0);
            assert!(page.depth <= depth && u16::from(depth) < u16::from(page.depth) + u16::from(PAGE_LEVELS));
            assert_eq!(
                page,
                NodeKey::on_path(page.depth, &path),
                "a page sits on its nodes' path"
            );
            let s = slot(&at);
            assert!((1..=SLOTS).contains(&s));
            assert!(seen.insert((page, s)), "two nodes share slot {s} of a page");
        }
        // A node and its sibling share the page and not the slot.
        let left = NodeKey::on_path(7, &Hash32([0; 32]));
        let right = NodeKey::on_path(7, &Hash32([0b0000_0010; 32]));
        assert_eq!(page_of(&left), page_of(&right));
        assert_eq!((slot(&left), slot(&right)), (8, 9));
    }

    #[test]
    fn a_page_reads_back_from_its_canonical_bytes_and_bad_bytes_are_refused() {
        let path = Hash32([0x5a; 32]);
        let mut page = Page::default();
        for d in [8u8, 10, 11] {
            page.set(&NodeKey::on_path(d, &path), Some(leaf(d)));
        }
        let bytes = codec::to_bytes(&page);
        let back: Page = codec::decode(&bytes).unwrap();
        assert_eq!(back, page);
        assert_eq!(codec::to_bytes(&back), bytes);
        for d in [8u8, 10, 11] {
            assert_eq!(back.node(&NodeKey::on_path(d, &path)), Some(leaf(d)));
        }
        assert_eq!(back.node(&NodeKey::on_path(9, &path)), None);
        let unordered = codec::to_bytes(&vec![(3u8, leaf(1)), (2u8, leaf(2))]);
        assert!(codec::decode::<Page>(&unordered).is_err());
        let out_of_range = codec::to_bytes(&vec![(16u8, leaf(1))]);
        assert!(codec::decode::<Page>(&out_of_range).is_err());
    }

    fn any_node() -> impl Strategy<Value = Node> {
        (any::<bool>(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(leaf, a, b)| match leaf {
            true => Node::Leaf {
                key_hash: Hash32(a),
                value_hash: Hash32(b),
            },
            false => Node::Inner {
                left: Hash32(a),
                right: Hash32(b),
            },
        })
    }

    proptest! {
        /// The direct encoding is the canonical one, byte for byte, and the direct
        /// decoding accepts exactly what `codec::decode` accepts, with the same page:
        /// for every page, and for its bytes with one byte changed, cut short or grown.
        #[test]
        fn direct_bytes_are_the_canonical_bytes(
            nodes in proptest::collection::vec(proptest::option::of(any_node()), SLOTS),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in 0usize..8,
        ) {
            let mut page = Page::default();
            page.slots.copy_from_slice(&nodes);
            let bytes = page.to_bytes();
            prop_assert_eq!(&bytes, &codec::to_bytes(&page));
            prop_assert_eq!(Page::from_bytes(&bytes), Ok(page));
            let mut changed = bytes.clone();
            let i = at.index(changed.len());
            changed[i] = byte;
            let mut grown = bytes.clone();
            grown.push(byte);
            let short = &bytes[..bytes.len().saturating_sub(cut)];
            for b in [changed.as_slice(), grown.as_slice(), short] {
                prop_assert_eq!(Page::from_bytes(b).ok(), codec::decode::<Page>(b).ok());
            }
        }
    }

    /// Pages built from a tree update's node changes hold exactly the tree's nodes.
    #[test]
    fn pages_built_from_node_changes_hold_the_same_tree() {
        let mut nodes = MemNodes::default();
        let mut pages: BTreeMap<NodeKey, Page> = BTreeMap::new();
        for round in 0..4u16 {
            let mut u = TreeUpdate::new(&nodes);
            for k in 0..300u16 {
                let key = smt::key_hash(&k.to_le_bytes());
                // Some keys come and go, so pages also empty out.
                let value = (k % 7 != round).then(|| smt::value_hash(&(k + round).to_le_bytes()));
                u.set(&key, value.as_ref()).unwrap();
            }
            let changes = u.into_changes();
            for (at, group) in group(&changes) {
                match apply(pages.remove(&at), &group) {
                    Some(p) => pages.insert(at, p),
                    None => None,
                };
            }
            nodes.apply(changes);
            let mut in_pages = 0;
            for (at, page) in &pages {
                assert!(!page.is_empty());
                for (s, n) in Vec::<(u8, Node)>::from(page.clone()) {
                    in_pages += 1;
                    let found = nodes
                        .0
                        .iter()
                        .find(|(k, v)| page_of(k) == *at && slot(k) == s as usize && **v == n);
                    assert!(found.is_some(), "page {at:?} slot {s} holds a node the tree lacks");
                }
            }
            assert_eq!(in_pages, nodes.0.len());
            for (at, n) in &nodes.0 {
                assert_eq!(pages[&page_of(at)].node(at), Some(*n));
                assert_eq!(nodes.node(at).unwrap(), Some(*n));
            }
        }
    }
}
