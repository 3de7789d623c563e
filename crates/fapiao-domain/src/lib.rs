//! Fapiao ledger rules: payments, invoices, red-letter reversals, claims, fees, policy
//! and client keys, executed deterministically against one chain's state.
//!
//! Architecture invariant: no IO, no clock, no randomness, no hash-map iteration. The
//! state is read through [`state::StateRead`], so the same code runs over RocksDB in a
//! node, over a map in tests and in the simulator, and in replay.

pub mod amounts;
pub mod bounds;
pub mod catalogue;
pub mod code;
pub mod execute;
pub mod state;
/// The USCC check lives in core (genesis validates members' tax ids with it).
pub use fapiao_core::uscc;

pub use bounds::check_event;
pub use code::ErrorCode;
pub use execute::{authorize, check_envelope, execute, execute_block, BlockContext, ChainContext, Executed, Rejection};
pub use state::{MemState, Overlay, StateKey, StateRead, StateValue};
