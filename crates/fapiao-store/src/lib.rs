//! Fapiao storage on RocksDB: typed column families, atomic block commits, durable
//! pending events, the state tree's nodes, and replay.
//!
//! Architecture invariant: this crate knows nothing about the network, HTTP or tokio.
//! It stores what it is given and checks the chain invariants before writing; it does
//! not decide what goes into a block (the engine does) nor whether a block is valid
//! beyond hash links and roots (the domain and replication do).

pub mod replay;
mod store;
pub mod tables;

pub use store::{failure_index, BlockCommit, ChainView, PreparedState, Row, Store, StoreOptions};
pub use tables::{EntryLoc, Head, RejectedInfo};

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
    /// A write on a read-only store.
    #[error("the store is open read-only")]
    ReadOnly,
}

impl StoreError {
    fn rocks(e: rocksdb::Error) -> Self {
        StoreError::Rocks(e.to_string())
    }
}
