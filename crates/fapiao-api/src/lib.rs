//! Fapiao's HTTP/JSON API: the axum server, its DTOs, the OpenAPI document, a typed
//! client, and the client's durable outbox.
//!
//! Architecture invariant: this is the only crate that knows HTTP and JSON shapes;
//! ledger types are converted to DTOs explicitly (`dto`), never serialised directly.
//! Events travel as their canonical bytes (hex), because those bytes are what is
//! signed. The one exception is a proof bundle's JSON form, which is by definition the
//! canonical structure field for field (FORMAT.md §12), next to its canonical hex.

pub mod client;
pub mod dto;
pub mod outbox;
mod verify;
pub mod xml;

pub use verify::esc as escape_html;
mod server;

pub use client::{Client, ClientError};
pub use outbox::{Backoff, FlushReport, Outbox, OutboxError};
pub use server::{router, ApiConfig, ApiDoc};
