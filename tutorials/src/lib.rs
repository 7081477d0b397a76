//! Shared pieces of the tutorial binaries.
//!
//! - [`chain`]: DePHY's balance-payment accounts written into the local surfpool node (the
//!   program itself cannot be deployed here) and read back over RPC.
//! - [`station`]: the machine side: a controller driving one machine (single device) or
//!   several (controller mode), deciding with the SDK's on-chain eligibility check.
//! - [`dapp`]: the user's side: on-chain nonce, signed authorization, Request, Status.
//! - [`paid`]: the DeCharge and Gacha tutorials (one machine and one user in one process).
//! - [`settlement`]: a settlement service like DePHY's (lock, settle, pay, LockFailed).
//!
//! State (keys, outboxes, resume positions) goes under `target/tutorials/<tutorial>/` of the
//! directory the binary runs in (the repository root in the walkthroughs) unless `--state` is
//! given.

use std::path::PathBuf;
use std::time::Duration;

use dephy_device_sdk::nostr::{EventId, Timestamp};

pub mod chain;
pub mod dapp;
pub mod paid;
pub mod settlement;
pub mod station;

/// How long a tutorial waits for each answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The first 12 hex digits of an event id.
pub fn short(id: &EventId) -> String {
    id.to_hex()[..12].to_string()
}

/// Unix seconds.
pub fn now() -> i64 {
    Timestamp::now().as_secs() as i64
}

/// `--state`, or `target/tutorials/<name>`.
pub fn state_dir(given: Option<PathBuf>, name: &str) -> PathBuf {
    given.unwrap_or_else(|| PathBuf::from("target/tutorials").join(name))
}
