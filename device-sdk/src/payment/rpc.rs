//! A user's balance in DePHY's balance-payment program over Solana RPC (feature `solana-rpc`).
//! The user's SOL sits in the `["VAULT", user]` PDA; the `["USER", user]` account
//! ([`accounts::UserAccount`]) says how much of it is locked by pending charges. A user can be
//! charged `amount` when `vault lamports - locked_amount >= amount`. The full eligibility check
//! of a payment authorization (nonce, namespace, signature, deadline) is
//! [`super::eligibility::check`].

use std::str::FromStr as _;

use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;

use super::accounts;
pub use super::accounts::{BALANCE_PAYMENT_PROGRAM_ID, lock_pda, namespace_pda, program_id, user_pda, vault_pda};

/// Why a balance could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("Solana RPC error: {0}")]
    Rpc(String),
    #[error("user {0:?} is not a base58 Solana public key")]
    BadUser(String),
    #[error("user {user} is not registered with the payment program (no account at {account})")]
    NotRegistered { user: String, account: String },
    #[error("account {account} is not a user account of program {program}: {reason}")]
    BadAccount { account: String, program: String, reason: String },
}

/// A user's balance in the payment program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub vault_lamports: u64,
    pub locked_amount: u64,
    pub nonce: u64,
}

impl Balance {
    /// What the user can still spend.
    pub fn available(&self) -> u64 {
        self.vault_lamports.saturating_sub(self.locked_amount)
    }

    pub fn covers(&self, amount: u64) -> bool {
        self.available() >= amount
    }
}

/// Reads `user`'s vault balance and locked amount from `program` (one getMultipleAccounts).
pub async fn balance(rpc: &RpcClient, program: &Pubkey, user: &str) -> Result<Balance, RpcError> {
    let user_key = Pubkey::from_str(user).map_err(|_| RpcError::BadUser(user.into()))?;
    let account_key = user_pda(program, &user_key);
    let accounts = rpc
        .get_multiple_accounts(&[account_key, vault_pda(program, &user_key)])
        .await
        .map_err(|e| RpcError::Rpc(e.to_string()))?;
    let account = accounts
        .first()
        .and_then(Option::as_ref)
        .ok_or_else(|| RpcError::NotRegistered { user: user.into(), account: account_key.to_string() })?;
    let bad = |reason: String| RpcError::BadAccount {
        account: account_key.to_string(),
        program: program.to_string(),
        reason,
    };
    if account.owner != *program {
        return Err(bad(format!("owned by {}", account.owner)));
    }
    let decoded = accounts::UserAccount::decode(&account.data).map_err(|e| bad(e.to_string()))?;
    let vault_lamports = accounts.get(1).and_then(Option::as_ref).map_or(0, |a| a.lamports);
    Ok(Balance { vault_lamports, locked_amount: decoded.locked_amount, nonce: decoded.nonce })
}
