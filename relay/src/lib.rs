//! dephy-relay: a Nostr relay for physical devices.
//!
//! The path of one event through the relay, one module per stage:
//!
//! ```text
//! socket (WebSocket connection) → protocol (parse) → ingest::verify → ingest::policy
//!   → store::writer (group commit into SQLite or PostgreSQL) → committed-event stream
//!   → distribute → fanout (live subscribers) and, with federation, the bridge
//! ```
//!
//! Every stored event is also appended to a verifiable Merkle log in the same transaction
//! (`store::log`); `checkpoint` signs its root periodically (optionally anchoring it on
//! Solana first, `anchor`) and `logapi` serves proofs.
//!
//! With a `[bridge]` section the relay federates with other relays (`federation`, crate
//! `dephy-bridge`): committed client events are published to peers over libp2p GossipSub,
//! and peers' events enter the same ingest path.
//!
//! Reads go `socket → protocol → store::query`. `server` wires the stages together and serves
//! HTTP (NIP-11, `/health`, `/metrics`, `/log/*`, `/federation/*` (`fedapi`), the explorer page
//! `/explorer/` (`explorer`)) on the same port as the WebSocket.

pub mod anchor;
pub mod audit;
pub mod auth;
pub mod budget;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod distribute;
pub mod explorer;
pub mod fanout;
pub mod fedapi;
pub mod federation;
pub mod http_auth;
pub mod identity;
pub mod info;
pub mod ingest;
pub mod limits;
pub mod listener;
pub mod logapi;
pub mod memory;
pub mod metrics;
pub mod node_id;
pub mod protocol;
pub mod server;
pub mod socket;
pub mod store;
