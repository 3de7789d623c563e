//! Fapiao storage on RocksDB: typed column families, atomic block commits, durable
//! pending events, the state tree's pages, and replay.
//!
//! Architecture invariant: this crate knows nothing about the network, HTTP or tokio.
//! It stores what it is given and checks the chain invariants before writing; it does
//! not decide what goes into a block (the engine does) nor whether a block is valid
//! beyond hash links and roots (the domain and replication do).

mod chain_read;
pub mod pages;
pub mod replay;
mod set_aside;
mod store;
pub mod tables;

pub use store::{failure_index, BlockCommit, ChainView, PreparedState, RawRow, Row, StateAt, Store, StoreOptions};
pub use tables::{EntryLoc, Head, RejectedInfo, Written};

/// How many of its latest blocks each chain keeps the state versions of, whatever their
/// age: the state as of any of those heights can be read and proven (a proof as of the
/// newest certified height, or as of an earlier height or date).
pub const STATE_VERSIONS_KEPT: u64 = 256;

/// How many days of block time each chain keeps the state versions of by default (besides
/// its last [`STATE_VERSIONS_KEPT`] blocks): a monthly VAT return is filed by the 15th of
/// the next month, so a tax office can ask for any invoice's status as of any day of
/// the period being filed. `StoreOptions::state_history_days` sets it.
pub const STATE_HISTORY_DAYS: u64 = 45;

/// At most how many of its oldest blocks' versions one block's commit prunes: enough to
/// catch up after the retention is shortened, bounded so a commit stays one small write.
pub const PRUNE_PER_COMMIT: u64 = 8;

use fapiao_core::MemberCode;
use std::path::PathBuf;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the database at {path}: {message}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// RocksDB's message.
        message: String,
    },
    /// A database file is damaged (a truncated or corrupted table file or log).
    #[error("the database at {path} has a damaged file: {message}. The node refuses to start. Repair: `fapiao rebuild-state --config <node config>` rebuilds the state and index tables from the blocks (it drops their files, damaged ones too); if the damage is in the blocks themselves, restore the ledger directory from a checkpoint (`fapiao backup`) or from another member")]
    Damaged {
        /// The directory.
        path: PathBuf,
        /// RocksDB's message, naming the file.
        message: String,
    },
    /// RocksDB failed.
    #[error("database error: {0}")]
    Rocks(String),
    /// A stored value does not decode: the file is damaged.
    #[error("corrupt value in table {table} at key {key}: {message}; restore from a checkpoint or run `fapiao rebuild-state`")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The key, hex.
        key: String,
        /// The decode error.
        message: String,
    },
    /// The stored chain or state does not match itself.
    #[error("chain {chain}: {detail}. The node refuses to start; repair with `fapiao rebuild-state --config <node config>` (it replays every block) or restore a checkpoint")]
    Inconsistent {
        /// The chain.
        chain: MemberCode,
        /// What is wrong.
        detail: String,
    },
    /// A state record does not match the state tree's leaf for its key: it was changed
    /// outside a block. It is never served or executed against.
    #[error("chain {chain}: state record {key} fails its integrity check: {detail}. Run `fapiao replay --data <node data>` to list every damaged row, then repair with `fapiao rebuild-state --config <node config>` or restore a checkpoint")]
    Tampered {
        /// The chain.
        chain: MemberCode,
        /// The record's key.
        key: String,
        /// What does not match.
        detail: String,
    },
    /// A write on a read-only store.
    #[error("the store is open read-only")]
    ReadOnly,
    /// A file operation outside RocksDB (copying a checkpoint).
    #[error("file error: {0}")]
    Io(String),
}

impl StoreError {
    /// Damage to one stored value (undecodable, or failing its integrity check): a
    /// reader of that value cannot go on, but the store as a whole can.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. } | StoreError::Tampered { .. } | StoreError::Damaged { .. }
        ) || matches!(self, StoreError::Rocks(m) if m.starts_with("Corruption"))
    }

    /// The file system is out of space (RocksDB's `NoSpace`, the OS's `ENOSPC`).
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Rocks(m) | StoreError::Io(m) if m.contains("No space left") || m.contains("NoSpace"))
    }
}

impl StoreError {
    /// A failure of executing against the store: the store's own error where there is
    /// one (an IO failure is not damage), or a record of the wrong type for its key,
    /// which is damage to that record of `chain` (when known).
    pub fn from_exec(e: fapiao_domain::state::ExecError<StoreError>, chain: Option<fapiao_core::MemberCode>) -> Self {
        match e {
            fapiao_domain::state::ExecError::Read(e) => e,
            fapiao_domain::state::ExecError::Corrupt(k) => StoreError::Corrupt {
                table: "state",
                key: match chain {
                    Some(c) => format!("chain {c} {k:?}"),
                    None => format!("{k:?}"),
                },
                message: "value has the wrong type for its key".into(),
            },
        }
    }

    /// A failure of reading `chain`'s state during a block's execution or tree update
    /// (`fapiao_chain::ReadError`): the store's own error where there is one (an IO
    /// failure is not damage), damage to a record or to the tree otherwise.
    pub fn from_read(e: fapiao_chain::ReadError<StoreError>, chain: fapiao_core::MemberCode) -> Self {
        match e {
            fapiao_chain::ReadError::State(e) => StoreError::from_exec(e, Some(chain)),
            fapiao_chain::ReadError::Tree(e) => store::tree_err(chain, e),
        }
    }

    fn rocks(e: rocksdb::Error) -> Self {
        StoreError::Rocks(e.to_string())
    }
}
