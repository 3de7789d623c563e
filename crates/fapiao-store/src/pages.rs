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

use fapiao_core::smt::{bit, Node, NodeKey, NodeMap};
use fapiao_core::Hash32;
use serde::{Deserialize, Serialize};

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

/// The first byte of a [`PageDelta`]'s stored bytes. A whole page's bytes, the version
/// rows of ledgers written before deltas, begin with its node count (0 to 15).
const DELTA_MARK: u8 = 0xff;

/// The bytes of one node in a [`PageDelta`]: its variant (0 leaf, 1 inner) and its two
/// hashes.
const DELTA_NODE_BYTES: usize = 1 + 32 + 32;

/// What one block overwrote in one tree page: which slots held a node before the block,
/// and, of the slots the block changed, the node each held. A version of a page is kept
/// this way rather than as the whole page before the block: a block changes a path of
/// four nodes in most of the pages it touches, and the whole page is up to fifteen, so
/// the whole page stored as a version was about two and a half times the bytes, which
/// the commit's batch, the log, the memtables and the compactions all carried.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct PageDelta {
    /// The slots holding a node before the block: bit `s - 1` for slot `s`.
    occupied: u16,
    /// The slots the block changed, the same way.
    changed: u16,
    /// Each changed slot's node before the block (`None` for slots not changed, or empty).
    old: [Option<Node>; SLOTS],
}

impl PageDelta {
    /// What a block that applies `changes` overwrites in the page `old` (`None`: there
    /// was no page).
    pub fn of(old: Option<&Page>, changes: &[(NodeKey, Option<Node>)]) -> PageDelta {
        let mut d = PageDelta::default();
        if let Some(page) = old {
            for (i, n) in page.slots.iter().enumerate() {
                if n.is_some() {
                    d.occupied |= 1 << i;
                }
            }
        }
        for (at, _) in changes {
            let i = slot(at) - 1;
            d.changed |= 1 << i;
            d.old[i] = old.and_then(|p| p.slots[i]);
        }
        d
    }

    /// The stored bytes: [`DELTA_MARK`], the occupied and changed slot masks (little-endian
    /// `u16`), then, in slot order, each changed slot that held a node: its variant (one
    /// byte: 0 leaf, 1 inner) and two hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let stored = self.changed & self.occupied;
        let mut out = Vec::with_capacity(5 + stored.count_ones() as usize * DELTA_NODE_BYTES);
        out.push(DELTA_MARK);
        out.extend_from_slice(&self.occupied.to_le_bytes());
        out.extend_from_slice(&self.changed.to_le_bytes());
        for node in (0..SLOTS).filter(|i| stored & (1 << i) != 0).map(|i| self.old[i]) {
            let (variant, a, b) = match node {
                Some(Node::Leaf { key_hash, value_hash }) => (0u8, key_hash, value_hash),
                Some(Node::Inner { left, right }) => (1u8, left, right),
                None => unreachable!("an occupied slot holds a node"),
            };
            out.push(variant);
            out.extend_from_slice(&a.0);
            out.extend_from_slice(&b.0);
        }
        out
    }

    /// The delta `bytes` encode ([`PageDelta::to_bytes`]); other bytes are refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<PageDelta, String> {
        let (head, mut rest) = bytes
            .split_at_checked(5)
            .ok_or("a page delta's bytes end before its slot masks")?;
        if head[0] != DELTA_MARK {
            return Err(format!("a page delta begins with {:#04x}", head[0]));
        }
        let mut d = PageDelta {
            occupied: u16::from_le_bytes([head[1], head[2]]),
            changed: u16::from_le_bytes([head[3], head[4]]),
            old: [None; SLOTS],
        };
        if (d.occupied | d.changed) >> SLOTS != 0 {
            return Err("a page delta names a slot past the page's fifteen".into());
        }
        let stored = d.changed & d.occupied;
        if rest.len() != stored.count_ones() as usize * DELTA_NODE_BYTES {
            return Err(format!(
                "a page delta of {} old nodes cannot be {} bytes long",
                stored.count_ones(),
                bytes.len()
            ));
        }
        for i in (0..SLOTS).filter(|i| stored & (1 << i) != 0) {
            let (node, tail) = rest.split_at(DELTA_NODE_BYTES);
            rest = tail;
            let (a, b) = node[1..].split_at(32);
            let (a, b) = (
                Hash32(a.try_into().map_err(|_| "a hash")?),
                Hash32(b.try_into().map_err(|_| "a hash")?),
            );
            d.old[i] = Some(match node[0] {
                0 => Node::Leaf {
                    key_hash: a,
                    value_hash: b,
                },
                1 => Node::Inner { left: a, right: b },
                v => return Err(format!("node variant {v} is neither a leaf nor an inner node")),
            });
        }
        Ok(d)
    }
}

/// A version row of a tree page: what the block at its height overwrote in the page.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PageVersion {
    /// The whole page before the block (`None`: there was no page). Rows written before
    /// deltas are all whole pages; a block that creates a page still writes `None`.
    Whole(Option<Page>),
    /// The slots the block changed (see [`PageDelta`]).
    Delta(PageDelta),
}

impl PageVersion {
    /// What a block that applies `changes` to the page `old` keeps as its version.
    pub fn of(old: Option<&Page>, changes: &[(NodeKey, Option<Node>)]) -> PageVersion {
        match old {
            None => PageVersion::Whole(None),
            Some(_) => PageVersion::Delta(PageDelta::of(old, changes)),
        }
    }

    /// The row's value (`tables::TreeVersions`): `None`, or the bytes of a whole page
    /// or of a delta.
    pub fn to_stored(&self) -> Option<Vec<u8>> {
        match self {
            PageVersion::Whole(page) => page.as_ref().map(Page::to_bytes),
            PageVersion::Delta(d) => Some(d.to_bytes()),
        }
    }

    /// The version a row's value holds: a delta's bytes begin with [`DELTA_MARK`], a
    /// whole page's with its node count.
    pub fn from_stored(value: Option<&[u8]>) -> Result<PageVersion, String> {
        match value {
            None => Ok(PageVersion::Whole(None)),
            Some(b) if b.first() == Some(&DELTA_MARK) => PageDelta::from_bytes(b).map(PageVersion::Delta),
            Some(b) => Page::from_bytes(b).map(|p| PageVersion::Whole(Some(p))),
        }
    }

    /// The version a stored `tree_versions` value holds: its canonical `Option<bytes>`,
    /// read as [`PageVersion::from_stored`] reads it.
    pub fn from_row(value: &[u8]) -> Result<PageVersion, String> {
        let stored: Option<Vec<u8>> = fapiao_core::codec::decode(value).map_err(|e| e.to_string())?;
        PageVersion::from_stored(stored.as_deref())
    }

    /// The slots that held a node before the block.
    fn occupied(&self) -> u16 {
        match self {
            PageVersion::Whole(None) => 0,
            PageVersion::Whole(Some(p)) => (0..SLOTS).filter(|&i| p.slots[i].is_some()).fold(0, |m, i| m | 1 << i),
            PageVersion::Delta(d) => d.occupied,
        }
    }

    /// The slots whose node before the block this version holds (all, for a whole page).
    fn known(&self) -> u16 {
        match self {
            PageVersion::Whole(_) => (1 << SLOTS) - 1,
            PageVersion::Delta(d) => d.changed,
        }
    }

    /// The node before the block of slot index `i`, which [`PageVersion::known`] holds.
    fn old(&self, i: usize) -> Option<Node> {
        match self {
            PageVersion::Whole(p) => p.as_ref().and_then(|p| p.slots[i]),
            PageVersion::Delta(d) => d.old[i],
        }
    }

    /// Whether `self` and `other`, versions of the same page at the same height, say
    /// the same of it: equal, or one a whole page (a ledger written before deltas) and
    /// the other a delta of it (what the block, executed again, keeps now).
    pub fn agrees_with(&self, other: &PageVersion) -> bool {
        match (self, other) {
            (PageVersion::Whole(_), PageVersion::Delta(_)) => other.agrees_with(self),
            (PageVersion::Delta(d), PageVersion::Whole(Some(_))) => {
                other.occupied() == d.occupied
                    && (0..SLOTS).all(|i| d.changed & (1 << i) == 0 || other.old(i) == d.old[i])
            }
            _ => self == other,
        }
    }

    /// The page before the block, from the page `after` it.
    pub fn undo(&self, after: Option<Page>) -> Option<Page> {
        match self {
            PageVersion::Whole(before) => before.clone(),
            PageVersion::Delta(d) => {
                let mut page = after.unwrap_or_default();
                for i in (0..SLOTS).filter(|i| d.changed & (1 << i) != 0) {
                    page.slots[i] = d.old[i];
                }
                (!page.is_empty()).then_some(page)
            }
        }
    }
}

/// A page as of a height, from its versions above that height, oldest first: the
/// first tells which slots held a node then; each such slot's node is the one the first
/// version to change it holds, or, when none changed it, the one `current()` (the
/// page now) holds. `versions` is read only until every slot is known, and `current`
/// only if some slot is left. With no version, the page now is the page then.
pub fn page_as_of<E>(
    mut versions: impl Iterator<Item = Result<PageVersion, E>>,
    current: impl FnOnce() -> Result<Option<Page>, E>,
) -> Result<Option<Page>, E> {
    let Some(first) = versions.next().transpose()? else {
        return current();
    };
    let mut page = Page::default();
    let mut missing = first.occupied();
    let mut version = Some(first);
    while missing != 0 {
        let Some(v) = version else {
            let now = current()?.unwrap_or_default();
            for i in (0..SLOTS).filter(|i| missing & (1 << i) != 0) {
                page.slots[i] = now.slots[i];
            }
            break;
        };
        let found = missing & v.known();
        for i in (0..SLOTS).filter(|i| found & (1 << i) != 0) {
            page.slots[i] = v.old(i);
        }
        missing &= !found;
        version = match missing {
            0 => None,
            _ => versions.next().transpose()?,
        };
    }
    Ok((!page.is_empty()).then_some(page))
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

/// A block's node changes (`None` = deleted) by the position of the page that holds
/// them, each page's in key order. Hashed: the next block looks a page up in it for
/// each page it reads, and the commit sorts the positions once.
pub type Changes = NodeMap<Vec<(NodeKey, Option<Node>)>>;

/// The pages a block's node changes touch, with the changes that fall in each ([`Changes`]:
/// the same changes, in whatever order given, group the same).
pub fn group<'a>(changes: impl IntoIterator<Item = (&'a NodeKey, &'a Option<Node>)>) -> Changes {
    let mut pages = Changes::default();
    for (at, node) in changes {
        pages.entry(page_of(at)).or_default().push((*at, *node));
    }
    for changes in pages.values_mut() {
        changes.sort_unstable_by_key(|(at, _)| *at);
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
    use std::collections::BTreeMap;

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

    proptest! {
        /// Every delta reads back from its bytes, and whatever bytes read as a delta are
        /// that delta's own bytes: one delta, one encoding. A whole page's bytes are
        /// never read as a delta.
        #[test]
        fn a_delta_has_one_encoding(
            nodes in proptest::collection::vec(proptest::option::of(any_node()), SLOTS),
            changed in any::<u16>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut page = Page::default();
            page.slots.copy_from_slice(&nodes);
            let changes: Vec<(NodeKey, Option<Node>)> = (0..SLOTS)
                .filter(|i| changed & (1 << i) != 0)
                .map(|i| (slot_key(i + 1), None))
                .collect();
            let delta = PageDelta::of(Some(&page), &changes);
            let bytes = delta.to_bytes();
            prop_assert_eq!(PageDelta::from_bytes(&bytes), Ok(delta));
            let mut other = bytes.clone();
            let i = at.index(other.len());
            other[i] = byte;
            if let Ok(d) = PageDelta::from_bytes(&other) {
                prop_assert_eq!(d.to_bytes(), other);
            }
            prop_assert!(PageDelta::from_bytes(&bytes[..bytes.len() - 1]).is_err());
            prop_assert!(PageDelta::from_bytes(&page.to_bytes()).is_err());
            prop_assert_eq!(
                PageVersion::from_stored(Some(&page.to_bytes())),
                Ok(PageVersion::Whole(Some(page)))
            );
        }
    }

    /// The position of the node in slot `s` of the root page.
    fn slot_key(s: usize) -> NodeKey {
        let depth = s.ilog2() as u8;
        let mut path = [0u8; 32];
        path[0] = ((s - (1 << depth)) as u8) << (8 - depth.max(1));
        let at = NodeKey::on_path(depth, &Hash32(path));
        assert_eq!(slot(&at), s);
        at
    }

    /// A page as of each earlier block, read from the versions of the blocks after it
    /// (`page_as_of`) and undone block by block from the page now (`undo`), is the page
    /// that block left: with deltas, and with whole pages as ledgers written before
    /// deltas kept, mixed.
    #[test]
    fn a_page_as_of_every_block_is_read_back_from_its_versions() {
        let mut nodes = MemNodes::default();
        let mut pages: BTreeMap<NodeKey, Page> = BTreeMap::new();
        // The pages after each block, and each block's version of each page it changed.
        let mut after: Vec<BTreeMap<NodeKey, Page>> = vec![pages.clone()];
        let mut versions: BTreeMap<NodeKey, Vec<(usize, PageVersion)>> = BTreeMap::new();
        for block in 1..=8usize {
            let mut u = TreeUpdate::new(&nodes);
            for k in 0..400u16 {
                // Each block writes a different few keys, and deletes some.
                if (k as usize * 7 + block * 3) % 5 != 0 {
                    continue;
                }
                let key = smt::key_hash(&k.to_le_bytes());
                let value =
                    ((k as usize + block) % 4 != 0).then(|| smt::value_hash(&(k as usize + block).to_le_bytes()));
                u.set(&key, value.as_ref()).unwrap();
            }
            let changes = u.into_changes();
            for (at, group) in group(&changes) {
                let old = pages.remove(&at);
                let version = match block % 3 {
                    // As a ledger written before deltas kept it.
                    0 => PageVersion::Whole(old.clone()),
                    _ => PageVersion::of(old.as_ref(), &group),
                };
                // Through its stored bytes, as the store keeps it.
                let stored = codec::to_bytes(&version.to_stored());
                let back: Option<Vec<u8>> = codec::decode(&stored).unwrap();
                let version = PageVersion::from_stored(back.as_deref()).unwrap();
                versions.entry(at).or_default().push((block, version));
                if let Some(p) = apply(old, &group) {
                    pages.insert(at, p);
                }
            }
            nodes.apply(changes);
            after.push(pages.clone());
        }
        let now = after.last().unwrap().clone();
        let mut read_versions = 0;
        for (v, then) in after.iter().enumerate() {
            for at in versions.keys() {
                let later = versions[at].iter().filter(|(b, _)| *b > v);
                let mut read = 0;
                let got = page_as_of::<()>(
                    later.clone().map(|(_, x)| {
                        read += 1;
                        Ok(x.clone())
                    }),
                    || Ok(now.get(at).cloned()),
                )
                .unwrap();
                read_versions += read;
                assert_eq!(got.as_ref(), then.get(at), "page {at:?} as of block {v}");
                let undone = later.rev().fold(now.get(at).cloned(), |p, (_, x)| x.undo(p));
                assert_eq!(undone.as_ref(), then.get(at), "page {at:?} undone to block {v}");
            }
        }
        assert!(read_versions > 0);
    }

    /// A whole page and the delta of a block that changed it say the same of it; a
    /// delta of another page, or with another changed node, does not.
    #[test]
    fn a_whole_page_agrees_with_its_delta_only() {
        let mut page = Page::default();
        for s in [1, 2, 3, 5, 9] {
            page.slots[s - 1] = Some(leaf(s as u8));
        }
        let changes = [
            (slot_key(2), None),
            (slot_key(5), Some(leaf(7))),
            (slot_key(6), Some(leaf(8))),
        ];
        let whole = PageVersion::Whole(Some(page.clone()));
        let delta = PageVersion::of(Some(&page), &changes);
        assert!(whole.agrees_with(&delta) && delta.agrees_with(&whole));
        assert!(delta.agrees_with(&delta) && whole.agrees_with(&whole));
        let mut other = page.clone();
        other.slots[4] = Some(leaf(99));
        assert!(
            !PageVersion::Whole(Some(other.clone())).agrees_with(&delta),
            "another node of a changed slot"
        );
        other.slots[4] = page.slots[4];
        other.slots[13] = Some(leaf(14));
        assert!(
            !PageVersion::Whole(Some(other)).agrees_with(&delta),
            "another slot held"
        );
        assert!(!PageVersion::Whole(None).agrees_with(&delta));
        assert!(!delta.agrees_with(&PageVersion::of(Some(&page), &changes[..2])));
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
