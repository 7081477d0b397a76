//! DePHY device SDK: what a machine (Raspberry-Pi class) or a dApp links to speak DePHY's device
//! protocol over a Nostr relay.
//!
//! - [`keys`]: generate, load and save the device's Nostr key (hex or bech32 `nsec` file).
//! - [`message`]: the typed `Request` / `Status` / `Transaction` content of kind 1573 events, and
//!   its parse errors; [`event`]: builders for signed kind 1573 events with `s` and `p` tags.
//! - [`client`]: a relay client that subscribes before it publishes, publishes with retry and
//!   backoff from an on-disk outbox, and resumes after a disconnect or restart without losing or
//!   duplicating events (the relay's arrival-sequence cursor when offered, `since` with overlap and
//!   id dedup otherwise).
//! - [`controller`]: the Available/Working state machine of a DePHY machine.
//! - [`payment`]: DePHY payment authorizations (ed25519 over keccak256), and, with the
//!   `solana-rpc` feature, vault eligibility and direct SOL transfers with a memo, over RPC,
//!   and a balance-payment program client (account decoders and PDAs, instruction builders;
//!   checked against Anchor's TypeScript coder, not executed: the program cannot be deployed here).
//! - [`proof`]: checks the relay's inclusion proofs and signed checkpoints for one's own events.
//!
//! The wire format follows DePHY's public code byte for byte (see `message` and `event`).

pub mod client;
pub mod controller;
pub mod event;
pub mod keys;
pub mod message;
pub mod payment;
pub mod proof;

pub use client::{Client, ClientConfig, ClientError, Received};
pub use controller::{Controller, ControllerError, Decision, Hooks};
pub use event::{DEPHY_KIND, EventError, ParsedEvent};
pub use keys::KeyError;
pub use message::{Message, MessageError, Reason, Status};
pub use nostr;
