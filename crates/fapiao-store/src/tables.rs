//! Typed column families: each table has a name, a key type with an order-preserving
//! byte encoding, and a value type in the canonical encoding.

use fapiao_core::smt::{Node, NodeKey};
use fapiao_core::{
    codec, BlockHash, Certificate, Entry, Equivocation, Event, EventId, Hash32, Header, InvoiceNumber, MemberCode,
    Timestamp,
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
    ($(#[$doc:meta])* $name:ident, $cf:literal, $key:ty, $value:ty, |$k:ident| $enc:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl Table for $name {
            const NAME: &'static str = $cf;
            type Key = $key;
            type Value = $value;
            fn key($k: &Self::Key) -> Vec<u8> {
                $enc
            }
        }
    };
}

/// Defines every table in one place, by kind, and generates [`ALL`] and [`DERIVED`]
/// from the definitions, so no table can be left out of either list.
macro_rules! tables {
    (
        log { $($(#[$ldoc:meta])* $lname:ident, $lcf:literal, $lkey:ty, $lvalue:ty, |$lk:ident| $lenc:expr;)* }
        derived { $($(#[$ddoc:meta])* $dname:ident, $dcf:literal, $dkey:ty, $dvalue:ty, |$dk:ident| $denc:expr;)* }
        local { $($(#[$odoc:meta])* $oname:ident, $ocf:literal, $okey:ty, $ovalue:ty, |$ok:ident| $oenc:expr;)* }
    ) => {
        $(table!($(#[$ldoc])* $lname, $lcf, $lkey, $lvalue, |$lk| $lenc);)*
        $(table!($(#[$ddoc])* $dname, $dcf, $dkey, $dvalue, |$dk| $denc);)*
        $(table!($(#[$odoc])* $oname, $ocf, $okey, $ovalue, |$ok| $oenc);)*

        /// Every column family, for opening: the block log, the derived tables, the
        /// node's own.
        pub const ALL: [&str; [$($lcf,)* $($dcf,)* $($ocf,)*].len()] = [$($lcf,)* $($dcf,)* $($ocf,)*];

        /// The column families derived from blocks: dropped and rebuilt by
        /// `rebuild-state`, compared row by row by `replay`.
        pub const DERIVED: [&str; [$($dcf,)*].len()] = [$($dcf,)*];
    };
}

tables! {
    // The block log: what the chains hold, as received and certified.
    log {
        /// Block headers by (chain, height).
        Headers, "headers", (MemberCode, u64), Header, |k| chain_height(k.0, k.1);
        /// Block entries by (chain, height, index).
        Entries, "entries", (MemberCode, u64, u32), Entry, |k| {
            let mut v = chain_height(k.0, k.1);
            v.extend_from_slice(&k.2.to_be_bytes());
            v
        };
        /// Certificates by (chain, height).
        Certs, "certs", (MemberCode, u64), Certificate, |k| chain_height(k.0, k.1);
    }
    // Derived from the block log, rebuilt by `rebuild-state` and compared by `replay`.
    derived {
        /// Where every entry (input or derived) is, by id.
        Events, "events", EventId, EntryLoc, |k| k.0 .0.to_vec();
        /// Issued and red-letter invoices by number: where the issuing entry is.
        IdxInvoice, "idx_invoice", InvoiceNumber, EntryLoc, |k| codec::to_bytes(k);
        /// Every entry about an invoice, by (invoice, chain, height, index): its history in
        /// ledger order (requests, issue, reversals, claims, bookings, forms and their outcomes).
        IdxInvoiceHistory, "idx_invoice_history", (InvoiceNumber, MemberCode, u64, u32), EntryLoc, |k| {
            let mut v = codec::to_bytes(&k.0);
            v.extend_from_slice(&chain_height(k.1, k.2));
            v.extend_from_slice(&k.3.to_be_bytes());
            v
        };
        /// Payments by (chain, payment id): where the recording event is.
        IdxPayment, "idx_payment", (MemberCode, String), EntryLoc, |k| chain_text(k.0, &k.1);
        /// Invoice and red-letter requests by (chain, request id).
        IdxRequest, "idx_request", (MemberCode, String), EntryLoc, |k| chain_text(k.0, &k.1);
        /// Failures by (chain, reason index, request id): where the failure entry is.
        IdxFailure, "idx_failure", (MemberCode, u32, String), EntryLoc, |k| {
            let mut v = ch(k.0).to_vec();
            v.extend_from_slice(&k.1.to_be_bytes());
            v.extend_from_slice(k.2.as_bytes());
            v
        };
        /// Chain state records by (chain, key).
        State, "state", (MemberCode, StateKey), StateValue, |k| {
            let mut v = ch(k.0).to_vec();
            v.extend_from_slice(&k.1.to_bytes());
            v
        };
        /// State tree nodes by (chain, node position).
        Tree, "tree", (MemberCode, NodeKey), Node, |k| {
            let mut v = ch(k.0).to_vec();
            v.push(k.1.depth);
            v.extend_from_slice(k.1.prefix.as_bytes());
            v
        };
    }
    // This node's own records (pending events, votes, heads, evidence).
    local {
        /// Admitted events not yet in a block, by admission sequence (node-local).
        Pending, "pending", u64, Event, |k| k.to_be_bytes().to_vec();
        /// This node's attestation votes by (chain, height): persisted before sending.
        Votes, "votes", (MemberCode, u64), BlockHash, |k| chain_height(k.0, k.1);
        /// Admitted events dropped at execution, with why (node-local).
        Rejected, "rejected", EventId, RejectedInfo, |k| k.0 .0.to_vec();
        /// Each chain's head.
        Heads, "heads", MemberCode, Head, |k| ch(*k).to_vec();
        /// Equivocation evidence per chain (the first found): the chain is frozen here.
        EvidenceTable, "evidence", MemberCode, Equivocation, |k| ch(*k).to_vec();
        /// Per chain, a height up to which every block this node holds is certified (each
        /// certificate checked against the block it certifies), as found at the last start:
        /// the next start resumes from it instead of reading every certificate ever stored
        /// (node-local).
        CertifiedPrefix, "certified_prefix", MemberCode, u64, |k| ch(*k).to_vec();
    }
}

impl IdxFailure {
    /// The (reason index, request id) of a stored key.
    pub fn decode_key(k: &[u8]) -> Result<(u32, String), crate::StoreError> {
        let bad = || crate::StoreError::Corrupt {
            table: Self::NAME,
            key: k.iter().map(|b| format!("{b:02x}")).collect(),
            message: "not a failure index key".into(),
        };
        let reason = k
            .get(4..8)
            .and_then(|r| r.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(bad)?;
        let id = std::str::from_utf8(k.get(8..).ok_or_else(bad)?).map_err(|_| bad())?;
        Ok((reason, id.to_string()))
    }
}

impl Votes {
    /// The (chain, height) of a stored key.
    pub fn decode_key(k: &[u8]) -> Result<(MemberCode, u64), crate::StoreError> {
        chain_height_of(Self::NAME, k)
    }
}

impl Certs {
    /// The (chain, height) of a stored key.
    pub fn decode_key(k: &[u8]) -> Result<(MemberCode, u64), crate::StoreError> {
        chain_height_of(Self::NAME, k)
    }
}

fn chain_height_of(table: &'static str, k: &[u8]) -> Result<(MemberCode, u64), crate::StoreError> {
    let bad = || crate::StoreError::Corrupt {
        table,
        key: k.iter().map(|b| format!("{b:02x}")).collect(),
        message: "not a (chain, height) key".into(),
    };
    if k.len() != 12 {
        return Err(bad());
    }
    let chain = k[..4].try_into().ok().map(u32::from_be_bytes).and_then(MemberCode::new);
    let height = k[4..].try_into().ok().map(u64::from_be_bytes);
    match (chain, height) {
        (Some(c), Some(h)) => Ok((c, h)),
        _ => Err(bad()),
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
                (Some(d), Some(p)) => format!("tree node at depth {d}, path {}", hex(p)),
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
