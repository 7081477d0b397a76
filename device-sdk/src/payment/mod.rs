//! Payments: DePHY's off-chain payment authorization (always available), and with the
//! `solana-rpc` feature, on-chain eligibility of an authorization as DePHY checks it
//! (`eligibility`: nonce, namespace, signature, deadline, vault balance, with typed refusals),
//! the vault balance over Solana RPC (`rpc`), direct SOL transfers with a memo,
//! and a client for DePHY's balance-payment program: its accounts (`accounts`: PDAs and
//! decoders) and instructions (`instructions`: register, deposit, withdraw, lock, settle, pay).
//! That program cannot be built or deployed here, so its instructions are checked against an
//! independent encoder (Anchor's TypeScript coder), not executed.

#[cfg(feature = "solana-rpc")]
pub mod accounts;
pub mod authorization;
#[cfg(feature = "solana-rpc")]
pub mod eligibility;
#[cfg(feature = "solana-rpc")]
pub mod instructions;
#[cfg(feature = "solana-rpc")]
pub mod rpc;
#[cfg(feature = "solana-rpc")]
pub mod transfer;

pub use authorization::{AuthorizationError, Authorized, NonceRegistry};
