//! Typed column families: each table has a name, a key type with an order-preserving
//! byte encoding, and a value type in the canonical encoding.

use crate::pages::Page;
use fapiao_core::smt::NodeKey;
use fapiao_core::{
    codec, Block, BlockHash, Certificate, Entry, Equivocation, Event, EventId, Hash32, Header, InvoiceNumber,
    MemberCode, Timestamp,
};
use fapiao_domain::{StateKey, StateValue};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// A column family with typed keys and values.
pub trait Table {
    /// The column family name.
    const NAME: &'static str;
    /// The key type.
    type Key;
    /// The value type (canonical encoding).
    type Value: Serialize + DeserializeOwned;
    /// The key's bytes; big-endian numbers so RocksDB order is numeric order.
    fn key(key: &Self::Key) -> Vec<u8>;
    /// The key a stored key's bytes encode: the inverse of [`Table::key`]. Bytes that
    /// encode no key are damage ([`crate::StoreError::Corrupt`]).
    fn decode(bytes: &[u8]) -> Result<Self::Key, crate::StoreError>;
}

fn ch(chain: MemberCode) -> [u8; 4] {
    chain.get().to_be_bytes()
}

fn chain_height(chain: MemberCode, height: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&ch(chain));
    k.extend_from_slice(&height.to_be_bytes());
    k
}

fn chain_text(chain: MemberCode, text: &str) -> Vec<u8> {
    let mut v = ch(chain).to_vec();
    v.extend_from_slice(text.as_bytes());
    v
}

/// Where an entry is: chain, height, index in the block.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EntryLoc {
    /// The chain.
    pub chain: MemberCode,
    /// The block height.
    pub height: u64,
    /// The index among the block's entries.
    pub index: u32,
}

/// A chain's head.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Head {
    /// Height of the last block.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// Its state root.
    pub state_root: Hash32,
    /// Its timestamp.
    pub timestamp: Timestamp,
}

/// What one block wrote in its chain's state: the position of every state tree page and
/// the key of every state record. Each of them has a version row (`tree_versions`,
/// `state_versions`) under this block's height holding what the block overwrote, so
/// the block can be rewound (a chain reset) and its versions pruned together.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Written {
    /// Tree pages, by position.
    pub pages: Vec<NodeKey>,
    /// State records, by key.
    pub records: Vec<StateKey>,
}

/// The key prefix of every version of tree page `at`: a version's key is this prefix
/// and the big-endian height of the block that overwrote it.
pub fn tree_version_prefix(chain: MemberCode, at: &NodeKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + 1 + 32 + 8);
    v.extend_from_slice(&ch(chain));
    v.push(at.depth);
    v.extend_from_slice(at.prefix.as_bytes());
    v
}

/// The key prefix of every version of state record `key`: the record key's length (two
/// bytes, so no key's prefix is another's) and bytes; a version's key adds the
/// big-endian height of the block that overwrote it.
pub fn state_version_prefix(chain: MemberCode, key: &StateKey) -> Vec<u8> {
    let bytes = key.to_bytes();
    let mut v = Vec::with_capacity(4 + 2 + bytes.len() + 8);
    v.extend_from_slice(&ch(chain));
    v.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    v.extend_from_slice(&bytes);
    v
}

/// The tables of state versions: pruned by a retention (`Store::open`'s
/// `state_history_days`), so two stores holding the same blocks may keep different
/// versions. Replay compares the rows of the blocks both keep.
pub const VERSIONED: [&str; 3] = [StateWritten::NAME, TreeVersions::NAME, StateVersions::NAME];

/// The chain and height of the block that wrote a row of a [`VERSIONED`] table, read
/// from the row's key; `None` for another table or a key that encodes no row.
pub fn versioned_row_block(table: &str, key: &[u8]) -> Option<(MemberCode, u64)> {
    match table {
        StateWritten::NAME => StateWritten::decode(key).ok(),
        TreeVersions::NAME => TreeVersions::decode(key).ok().map(|(chain, _, height)| (chain, height)),
        StateVersions::NAME => StateVersions::decode(key)
            .ok()
            .map(|(chain, _, height)| (chain, height)),
        _ => None,
    }
}

/// Why an admitted event did not make it into a block (node-local).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RejectedInfo {
    /// Stable code.
    pub code: String,
    /// Human message.
    pub message: String,
    /// Offending field.
    pub field: Option<String>,
    /// When the block that dropped it was built.
    pub at: Timestamp,
}

macro_rules! table {
    ($(#[$doc:meta])* $name:ident, $cf:literal, $key:ty, $value:ty, |$k:ident| $enc:expr, |$b:ident| $dec:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl Table for $name {
            const NAME: &'static str = $cf;
            type Key = $key;
            type Value = $value;
            fn key($k: &Self::Key) -> Vec<u8> {
                $enc
            }
            fn decode(bytes: &[u8]) -> Result<Self::Key, crate::StoreError> {
                fn parse($b: &[u8]) -> Option<$key> {
                    $dec
                }
                parse(bytes).ok_or_else(|| crate::StoreError::Corrupt {
                    table: $cf,
                    key: bytes.iter().map(|x| format!("{x:02x}")).collect(),
                    message: "these bytes encode no key of this table".into(),
                })
            }
        }
    };
}

/// Defines every table in one place, by kind, and generates [`ALL`] and [`DERIVED`]
/// from the definitions, so no table can be left out of either list.
macro_rules! tables {
    (
        log { $($(#[$ldoc:meta])* $lname:ident, $lcf:literal, $lkey:ty, $lvalue:ty, |$lk:ident| $lenc:expr, |$lb:ident| $ldec:expr;)* }
        derived { $($(#[$ddoc:meta])* $dname:ident, $dcf:literal, $dkey:ty, $dvalue:ty, |$dk:ident| $denc:expr, |$db:ident| $ddec:expr;)* }
        local { $($(#[$odoc:meta])* $oname:ident, $ocf:literal, $okey:ty, $ovalue:ty, |$ok:ident| $oenc:expr, |$ob:ident| $odec:expr;)* }
    ) => {
        $(table!($(#[$ldoc])* $lname, $lcf, $lkey, $lvalue, |$lk| $lenc, |$lb| $ldec);)*
        $(table!($(#[$ddoc])* $dname, $dcf, $dkey, $dvalue, |$dk| $denc, |$db| $ddec);)*
        $(table!($(#[$odoc])* $oname, $ocf, $okey, $ovalue, |$ok| $oenc, |$ob| $odec);)*

        /// Every column family, for opening: the block log, the derived tables, the
        /// node's own.
        pub const ALL: [&str; [$($lcf,)* $($dcf,)* $($ocf,)*].len()] = [$($lcf,)* $($dcf,)* $($ocf,)*];

        /// The column families derived from blocks: dropped and rebuilt by
        /// `rebuild-state`, compared row by row by `replay`.
        pub const DERIVED: [&str; [$($dcf,)*].len()] = [$($dcf,)*];
    };
}

/// A member code, from exactly its 4 bytes.
fn de_chain(b: &[u8]) -> Option<MemberCode> {
    MemberCode::new(u32::from_be_bytes(b.try_into().ok()?))
}

/// A member code from the first 4 bytes, and the rest.
fn de_chain_prefix(b: &[u8]) -> Option<(MemberCode, &[u8])> {
    let (chain, rest) = b.split_at_checked(4)?;
    Some((de_chain(chain)?, rest))
}

/// (chain, height), from exactly 12 bytes.
fn de_chain_height(b: &[u8]) -> Option<(MemberCode, u64)> {
    let (chain, height) = de_chain_prefix(b)?;
    Some((chain, u64::from_be_bytes(height.try_into().ok()?)))
}

/// (chain, height, index), from exactly 16 bytes.
fn de_chain_height_index(b: &[u8]) -> Option<(MemberCode, u64, u32)> {
    let (ch_h, index) = b.split_at_checked(12)?;
    let (chain, height) = de_chain_height(ch_h)?;
    Some((chain, height, u32::from_be_bytes(index.try_into().ok()?)))
}

/// (chain, text), the text in UTF-8.
fn de_chain_text(b: &[u8]) -> Option<(MemberCode, String)> {
    let (chain, text) = de_chain_prefix(b)?;
    Some((chain, std::str::from_utf8(text).ok()?.to_string()))
}

/// An event id, from exactly its 32 bytes.
fn de_event_id(b: &[u8]) -> Option<EventId> {
    Some(EventId(Hash32(b.try_into().ok()?)))
}

tables! {
    // The block log: what the chains hold, as received and certified.
    log {
        /// Block headers by (chain, height).
        Headers, "headers", (MemberCode, u64), Header, |k| chain_height(k.0, k.1), |b| de_chain_height(b);
        /// Block entries by (chain, height, index).
        Entries, "entries", (MemberCode, u64, u32), Entry, |k| {
            let mut v = chain_height(k.0, k.1);
            v.extend_from_slice(&k.2.to_be_bytes());
            v
        }, |b| de_chain_height_index(b);
        /// Certificates by (chain, height).
        Certs, "certs", (MemberCode, u64), Certificate, |k| chain_height(k.0, k.1), |b| de_chain_height(b);
    }
    // Derived from the block log, rebuilt by `rebuild-state` and compared by `replay`.
    derived {
        /// Where every entry (input or derived) is, by id.
        Events, "events", EventId, EntryLoc, |k| k.0 .0.to_vec(), |b| de_event_id(b);
        /// Issued and red-letter invoices by number: where the issuing entry is.
        IdxInvoice, "idx_invoice", InvoiceNumber, EntryLoc, |k| codec::to_bytes(k), |b| codec::decode(b).ok();
        /// Every entry about an invoice, by (invoice, chain, height, index): its history in
        /// ledger order (requests, issue, reversals, claims, bookings, forms and their outcomes).
        IdxInvoiceHistory, "idx_invoice_history", (InvoiceNumber, MemberCode, u64, u32), EntryLoc, |k| {
            let mut v = codec::to_bytes(&k.0);
            v.extend_from_slice(&chain_height(k.1, k.2));
            v.extend_from_slice(&k.3.to_be_bytes());
            v
        }, |b| {
            // The location is the last 16 bytes; the number is everything before them.
            let (number, loc) = b.split_at(b.len().checked_sub(16)?);
            let (chain, height, index) = de_chain_height_index(loc)?;
            Some((codec::decode(number).ok()?, chain, height, index))
        };
        /// Payments by (chain, payment id): where the recording event is.
        IdxPayment, "idx_payment", (MemberCode, String), EntryLoc, |k| chain_text(k.0, &k.1), |b| de_chain_text(b);
        /// Invoice and red-letter requests by (chain, request id).
        IdxRequest, "idx_request", (MemberCode, String), EntryLoc, |k| chain_text(k.0, &k.1), |b| de_chain_text(b);
        /// Failures by (chain, reason index, request id): where the failure entry is.
        IdxFailure, "idx_failure", (MemberCode, u32, String), EntryLoc, |k| {
            let mut v = ch(k.0).to_vec();
            v.extend_from_slice(&k.1.to_be_bytes());
            v.extend_from_slice(k.2.as_bytes());
            v
        }, |b| {
            let (chain, rest) = de_chain_prefix(b)?;
            let (reason, id) = rest.split_at_checked(4)?;
            Some((chain, u32::from_be_bytes(reason.try_into().ok()?), std::str::from_utf8(id).ok()?.to_string()))
        };
        /// Chain state records by (chain, key).
        State, "state", (MemberCode, StateKey), StateValue, |k| {
            let mut v = ch(k.0).to_vec();
            v.extend_from_slice(&k.1.to_bytes());
            v
        }, |b| {
            let (chain, key) = de_chain_prefix(b)?;
            Some((chain, codec::decode(key).ok()?))
        };
        /// State tree pages by (chain, position of the page's root node); see `pages`.
        Tree, "tree", (MemberCode, NodeKey), Page, |k| {
            let mut v = ch(k.0).to_vec();
            v.push(k.1.depth);
            v.extend_from_slice(k.1.prefix.as_bytes());
            v
        }, |b| {
            let (chain, rest) = de_chain_prefix(b)?;
            let (&depth, prefix) = rest.split_first()?;
            Some((chain, NodeKey { depth, prefix: Hash32(prefix.try_into().ok()?) }))
        };
        /// What each block wrote in its chain's state, by (chain, height): kept while the
        /// block's versions are (see [`VERSIONED`]).
        StateWritten, "state_written", (MemberCode, u64), Written, |k| chain_height(k.0, k.1), |b| de_chain_height(b);
        /// Versions of state tree pages by (chain, page position, height of the block that
        /// overwrote it): the page's stored bytes before that block (`None`: there was no
        /// page). The page as of height `v` is its first version above `v`, or, with none,
        /// the current page (`Store::state_at`).
        TreeVersions, "tree_versions", (MemberCode, NodeKey, u64), Option<Vec<u8>>, |k| {
            let mut v = tree_version_prefix(k.0, &k.1);
            v.extend_from_slice(&k.2.to_be_bytes());
            v
        }, |b| {
            let (chain, rest) = de_chain_prefix(b)?;
            let (&depth, rest) = rest.split_first()?;
            let (prefix, height) = rest.split_at_checked(32)?;
            Some((chain, NodeKey { depth, prefix: Hash32(prefix.try_into().ok()?) }, u64::from_be_bytes(height.try_into().ok()?)))
        };
        /// Versions of state records by (chain, record key, height of the block that
        /// overwrote it): the record's stored bytes before that block (`None`: absent).
        StateVersions, "state_versions", (MemberCode, StateKey, u64), Option<Vec<u8>>, |k| {
            let mut v = state_version_prefix(k.0, &k.1);
            v.extend_from_slice(&k.2.to_be_bytes());
            v
        }, |b| {
            let (chain, rest) = de_chain_prefix(b)?;
            let (len, rest) = rest.split_at_checked(2)?;
            let (key, height) = rest.split_at_checked(u16::from_be_bytes(len.try_into().ok()?) as usize)?;
            Some((chain, codec::decode(key).ok()?, u64::from_be_bytes(height.try_into().ok()?)))
        };
    }
    // This node's own records (pending events, votes, heads, evidence).
    local {
        /// Admitted events not yet in a block, by admission sequence (node-local).
        Pending, "pending", u64, Event, |k| k.to_be_bytes().to_vec(), |b| Some(u64::from_be_bytes(b.try_into().ok()?));
        /// This node's attestation votes by (chain, height): persisted before sending.
        Votes, "votes", (MemberCode, u64), BlockHash, |k| chain_height(k.0, k.1), |b| de_chain_height(b);
        /// Admitted events dropped at execution, with why (node-local).
        Rejected, "rejected", EventId, RejectedInfo, |k| k.0 .0.to_vec(), |b| de_event_id(b);
        /// Each chain's head.
        Heads, "heads", MemberCode, Head, |k| ch(*k).to_vec(), |b| de_chain(b);
        /// Equivocation evidence per chain (the first found): the chain is frozen here.
        EvidenceTable, "evidence", MemberCode, Equivocation, |k| ch(*k).to_vec(), |b| de_chain(b);
        /// Per chain, a height up to which every block this node holds is certified (each
        /// certificate checked against the block it certifies), as found at the last start:
        /// the next start resumes from it instead of reading every certificate ever stored
        /// (node-local).
        CertifiedPrefix, "certified_prefix", MemberCode, u64, |k| ch(*k).to_vec(), |b| de_chain(b);
        /// Equivocation evidence a chain reset superseded, by (chain, the reset's epoch):
        /// on record, no longer freezing the chain (node-local).
        EvidenceSuperseded, "evidence_superseded", (MemberCode, u32), Equivocation, |k| {
            let mut v = ch(k.0).to_vec();
            v.extend_from_slice(&k.1.to_be_bytes());
            v
        }, |b| {
            let (chain, epoch) = de_chain_prefix(b)?;
            Some((chain, u32::from_be_bytes(epoch.try_into().ok()?)))
        };
        /// Per chain, the lowest height whose versions are still kept (absent: 1): the
        /// state can be read as of any height from one below it to the head. Older
        /// versions were pruned (node-local: it depends on this node's retention and on
        /// when its ledger took up versions).
        HistoryFrom, "state_history_from", MemberCode, u64, |k| ch(*k).to_vec(), |b| de_chain(b);
        /// Blocks a chain reset set aside, by (chain, height, block hash): kept on record
        /// with their events, which their clients (or this node, for its own chain)
        /// resubmit (node-local).
        SetAsideBlocks, "set_aside", (MemberCode, u64, BlockHash), Block, |k| {
            let mut v = chain_height(k.0, k.1);
            v.extend_from_slice(&k.2 .0 .0);
            v
        }, |b| {
            let (ch_h, hash) = b.split_at_checked(12)?;
            let (chain, height) = de_chain_height(ch_h)?;
            Some((chain, height, BlockHash(Hash32(hash.try_into().ok()?))))
        };
    }
}

/// The (chain, height) key prefix, for scans.
pub fn chain_prefix(chain: MemberCode) -> Vec<u8> {
    ch(chain).to_vec()
}

/// The (chain, height) prefix of a block's entries.
pub fn block_prefix(chain: MemberCode, height: u64) -> Vec<u8> {
    chain_height(chain, height)
}

/// Which chain a row of a block-derived table belongs to, and its key in words, for
/// audit reports. `value` is the row's value (the entry location names the chain of an
/// `events` row).
pub fn describe_row(table: &str, key: &[u8], value: &[u8]) -> (Option<MemberCode>, String) {
    let chain_of = |k: &[u8]| {
        k.get(..4)
            .and_then(|c| c.try_into().ok())
            .and_then(|c| MemberCode::new(u32::from_be_bytes(c)))
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match table {
        "state" => {
            let k = key.get(4..).and_then(|b| codec::decode::<StateKey>(b).ok());
            (
                chain_of(key),
                k.map_or_else(|| format!("undecodable key {}", hex(key)), |k| format!("{k:?}")),
            )
        }
        "tree" => (
            chain_of(key),
            match (key.get(4), key.get(5..)) {
                (Some(d), Some(p)) => format!("tree page at depth {d}, path {}", hex(p)),
                _ => format!("undecodable key {}", hex(key)),
            },
        ),
        "events" => {
            let loc = codec::decode::<EntryLoc>(value).ok();
            (loc.map(|l| l.chain), format!("entry {}", hex(key)))
        }
        "idx_invoice" => match codec::decode::<InvoiceNumber>(key) {
            Ok(n) => (Some(n.member()), format!("invoice {n}")),
            Err(_) => (None, format!("undecodable key {}", hex(key))),
        },
        "idx_invoice_history" => match codec::decode::<EntryLoc>(value) {
            Ok(l) => (
                Some(l.chain),
                format!("history row {} at block {}.{}", hex(key), l.height, l.index),
            ),
            Err(_) => (None, format!("undecodable history row {}", hex(key))),
        },
        "idx_payment" => (chain_of(key), format!("payment {}", text(key.get(4..).unwrap_or(&[])))),
        "idx_request" => (chain_of(key), format!("request {}", text(key.get(4..).unwrap_or(&[])))),
        "idx_failure" => (
            chain_of(key),
            match (key.get(4..8), key.get(8..)) {
                (Some(r), Some(id)) => format!(
                    "failure reason {} of request {}",
                    u32::from_be_bytes(r.try_into().unwrap_or([0; 4])),
                    text(id)
                ),
                _ => format!("undecodable key {}", hex(key)),
            },
        ),
        _ => (chain_of(key), hex(key)),
    }
}
