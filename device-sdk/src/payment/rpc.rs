//! Eligibility over Solana RPC (feature `solana-rpc`): reads a user's balance in DePHY's
//! balance-payment program. The user's SOL sits in the `["VAULT", user]` PDA; the
//! `["USER", user]` account (Anchor: 8-byte discriminator, then `nonce` u64 LE,
//! `locked_amount` u64 LE, `vault` pubkey) says how much of it is locked by pending charges.
//! A user is eligible for a charge when `vault lamports - locked_amount >= amount`.

use std::str::FromStr as _;

use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;

/// DePHY's balance-payment program (devnet).
pub const BALANCE_PAYMENT_PROGRAM_ID: &str = "8Pna6CZRquk83XT6ecisT9TYVfN3hY299GH2yEJk73dL";

/// Why eligibility could not be read.
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

pub fn program_id() -> Pubkey {
    Pubkey::from_str(BALANCE_PAYMENT_PROGRAM_ID).expect("valid program id")
}

/// `["USER", user]`.
pub fn user_pda(program: &Pubkey, user: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[b"USER", user.as_ref()], program).0
}

/// `["VAULT", user]`.
pub fn vault_pda(program: &Pubkey, user: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[b"VAULT", user.as_ref()], program).0
}

/// `["LOCK", user, nonce LE]`.
pub fn lock_pda(program: &Pubkey, user: &Pubkey, nonce: u64) -> Pubkey {
    Pubkey::find_program_address(&[b"LOCK", user.as_ref(), &nonce.to_le_bytes()], program).0
}

/// `["NAMESPACE", id LE]`.
pub fn namespace_pda(program: &Pubkey, namespace_id: u64) -> Pubkey {
    Pubkey::find_program_address(&[b"NAMESPACE", &namespace_id.to_le_bytes()], program).0
}

/// The decoded `["USER", user]` account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserAccount {
    pub nonce: u64,
    pub locked_amount: u64,
}

impl UserAccount {
    /// Decodes account data (discriminator, nonce, locked_amount, ...).
    pub fn decode(data: &[u8]) -> Result<UserAccount, String> {
        if data.len() < 24 {
            return Err(format!("{} bytes, expected at least 24", data.len()));
        }
        let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
        Ok(UserAccount { nonce: u64_at(8), locked_amount: u64_at(16) })
    }
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

/// Reads `user`'s vault balance and locked amount from `program`.
pub async fn balance(rpc: &RpcClient, program: &Pubkey, user: &str) -> Result<Balance, RpcError> {
    let user_key = Pubkey::from_str(user).map_err(|_| RpcError::BadUser(user.into()))?;
    let account_key = user_pda(program, &user_key);
    let accounts = rpc
        .get_multiple_accounts(&[account_key, vault_pda(program, &user_key)])
        .await
        .map_err(|e| RpcError::Rpc(e.to_string()))?;
    let account = accounts[0]
        .as_ref()
        .ok_or_else(|| RpcError::NotRegistered { user: user.into(), account: account_key.to_string() })?;
    let bad = |reason: String| RpcError::BadAccount {
        account: account_key.to_string(),
        program: program.to_string(),
        reason,
    };
    if account.owner != *program {
        return Err(bad(format!("owned by {}", account.owner)));
    }
    let decoded = UserAccount::decode(&account.data).map_err(bad)?;
    let vault_lamports = accounts[1].as_ref().map_or(0, |a| a.lamports);
    Ok(Balance { vault_lamports, locked_amount: decoded.locked_amount, nonce: decoded.nonce })
}
