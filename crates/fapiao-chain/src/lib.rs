//! Fapiao replication core: how members validate, witness and certify each other's
//! chains, detect equivocation and catch up, as a sans-IO state machine
//! ([`replica::Replica`]), plus the deterministic simulator that tests it ([`sim`]).
//!
//! Architecture invariant: no IO, no clock, no randomness, no threads. Time comes in
//! with every input; the chain store is reached only through [`replica::Ledger`]; the
//! simulator's randomness is a seeded generator of its own.

pub mod disk;
pub mod replica;
/// The simulator: built only with the `sim` feature, which the crate's own tests and
/// `fapiao sim` (the node's `sim` feature) enable; a node never carries it.
#[cfg(feature = "sim")]
pub mod sim;
pub mod sync;
pub mod validate;

pub use replica::{Config, Fatal, HeadSummary, Input, Ledger, Output, Persisted, Replica, StoredHead, Verdict};
pub use validate::{reexecute, Invalid, ReadError, Reexecuted};
