//! Payments: DePHY's off-chain payment authorization (always available), and with the
//! `solana-rpc` feature, vault eligibility over Solana RPC and direct SOL transfers with a memo.

pub mod authorization;
#[cfg(feature = "solana-rpc")]
pub mod rpc;
#[cfg(feature = "solana-rpc")]
pub mod transfer;

pub use authorization::{AuthorizationError, Authorized, NonceRegistry};
