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
//!   The live filter set can be replaced at runtime ([`Client::set_filters`]).
//! - [`filters`]: DePHY's relay filters (a session, requests to machines, a controller's Status
//!   events, the per-machine recovery query).
//! - [`controller`]: the Available/Working state machines of the machines one controller key
//!   drives (DePHY's controller mode: Status signed by the controller, `p` = machine; a single
//!   device is its own controller), machines added and removed at runtime, async eligibility
//!   (in one step or two, so several machines' checks can run concurrently), the Request's
//!   payment payload copied into every Status of its session, `LockFailed` obeyed from the
//!   settlement key only, state recovery with `authors = [controller]`.
//! - [`payment`]: DePHY payment authorizations (ed25519 over keccak256), and, with the
//!   `solana-rpc` feature, on-chain eligibility as DePHY checks it (nonce equal to the
//!   UserAccount's, namespace name from its account, signature, deadline, vault balance minus
//!   locked; typed refusals), direct SOL transfers with a memo, over RPC, and a balance-payment
//!   program client (account decoders and PDAs, instruction builders; checked against Anchor's
//!   TypeScript coder, not executed: the program cannot be deployed here).
//! - [`proof`]: checks the relay's inclusion proofs and signed checkpoints for one's own events.
//!
//! The wire format follows DePHY's public code byte for byte (see `message` and `event`).

pub mod client;
pub mod controller;
pub mod event;
pub mod filters;
pub mod keys;
pub mod message;
pub mod payment;
pub mod proof;

pub use client::{Client, ClientConfig, ClientError, Received};
pub use controller::{Controller, ControllerError, Decision, Hooks, MachineState, Pending, Step};
pub use event::{DEPHY_KIND, EventError, ParsedEvent};
pub use keys::KeyError;
pub use message::{Message, MessageError, Reason, Status};
pub use nostr;
