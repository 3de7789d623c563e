//! Fapiao replication core: how members validate, witness and certify each other's
//! chains, detect equivocation and catch up, as a sans-IO state machine
//! ([`replica::Replica`]), plus the deterministic simulator that tests it ([`sim`]).
//!
//! It also holds the one block builder ([`build`]) and the one re-execution
//! ([`validate`]) every block goes through: the node's producer, its witnesses, replay
//! and the simulator all call them.
//!
//! Architecture invariant: no IO, no clock, no randomness, no threads of its own (a
//! caller may have signature batches run on every core, `sig::Cores`). Time comes in
//! with every input; the chain store is reached only through [`replica::Ledger`]; the
//! simulator's randomness is a seeded generator of its own.

pub mod build;
pub mod disk;
pub mod replica;
/// The simulator: built only with the `sim` feature, which the crate's own tests and
/// `fapiao sim` (the node's `sim` feature) enable; a node never carries it.
#[cfg(feature = "sim")]
pub mod sim;
pub mod sync;
pub mod validate;

pub use build::{build_block, Built, Refusal};
pub use replica::{Config, Fatal, HeadSummary, Input, Ledger, Output, Persisted, Replica, StoredHead, Verdict};
pub use validate::{reexecute, Invalid, ReadError, Signatures, StateChange};
