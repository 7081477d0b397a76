//! dephy-relay: a Nostr relay for physical devices.
//!
//! The path of one event through the relay, one module per stage:
//!
//! ```text
//! socket (WebSocket connection) → protocol (parse) → ingest::verify → ingest::policy
//!   → store::writer (group commit into SQLite or PostgreSQL) → fanout (live subscribers)
//! ```
//!
//! Reads go `socket → protocol → store::query`. `server` wires the stages together and serves
//! HTTP (NIP-11, `/health`, `/metrics`) on the same port as the WebSocket.

pub mod auth;
pub mod cli;
pub mod config;
pub mod fanout;
pub mod identity;
pub mod info;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod socket;
pub mod store;
