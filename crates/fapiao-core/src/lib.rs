//! Fapiao ledger core: the types, the canonical bytes, hashing, signatures and Merkle
//! proofs that every node and verifier must compute identically.
//!
//! Architecture invariant: this crate knows nothing about RocksDB, libp2p, tokio, HTTP
//! or JSON, and does no IO (the only outside input is the OS random source for
//! [`sig::SecretKey::generate`]).

pub mod block;
pub mod codec;
pub mod config;
pub mod event;
pub mod genesis;
pub mod hash;
pub mod ids;
pub mod keyfile;
pub mod merkle;
pub mod money;
pub mod sig;
pub mod smt;
pub mod state;
pub mod tax;
pub mod uscc;

pub use block::{Attestation, AttestationBody, Block, Certificate, Equivocation, Header, HeaderBody};
pub use config::{ChainReset, Config, ConfigChange, Epochs, Reconfiguration};
pub use event::{Derived, DerivedKind, Entry, Event, EventBody, EventKind};
pub use genesis::{Genesis, Member, Role, Roles};
pub use hash::Hash32;
pub use ids::{BlockHash, CheckCode, EventId, InvoiceNumber, MemberCode, NetworkId, Timestamp};
pub use money::{Fen, Quantity, TaxRate};
pub use sig::{PublicKey, SecretKey, Signature};
