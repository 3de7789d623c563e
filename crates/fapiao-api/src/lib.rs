//! Fapiao's HTTP/JSON API: the axum server, its DTOs, the OpenAPI document, and a
//! typed client.
//!
//! Architecture invariant: this is the only crate that knows HTTP and JSON shapes;
//! ledger types are converted to DTOs explicitly (`dto`), never serialised directly.
//! Events travel as their canonical bytes (hex), because those bytes are what is
//! signed.

pub mod client;
pub mod dto;
mod server;

pub use client::{Client, ClientError};
pub use server::{router, ApiConfig, ApiDoc};
