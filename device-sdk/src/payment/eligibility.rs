//! On-chain eligibility of a payment authorization (feature `solana-rpc`), as DePHY's
//! `check_eligible` decides before a machine starts, with a typed [`Refusal`] for each reason.
//!
//! [`check`] parses the Request's payload, then reads the user's `["USER", user]` account, the
//! `["VAULT", user]` PDA and the `["NAMESPACE", namespace_id]` account in **one**
//! `getMultipleAccounts` call, and accepts when:
//! - the UserAccount exists and its `nonce` **equals** the payload's nonce (the balance-payment
//!   program locks at the current on-chain nonce and then increments it, so an authorization
//!   for any other nonce can never be redeemed);
//! - the NamespaceAccount exists; its `name` (case-sensitive) is the one the signed digest uses;
//! - the ed25519 signature of the user's wallet verifies over that digest (unlike DePHY's code,
//!   a signature that does not verify is refused);
//! - `now < deadline`;
//! - `vault lamports - locked_amount >= amount`.
//!
//! Account data are decoded with [`super::accounts`] (discriminator and bounds checks), after an
//! owner check (the program for USER and NAMESPACE; the system program, or no account, for the
//! vault).

use ed25519_dalek::{Signature, VerifyingKey};
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;

use super::accounts::{self, NamespaceAccount, UserAccount};
use super::authorization;
use crate::controller::Decision;
use crate::message::Payload;

/// The system program (all zeros): the owner of a vault PDA that holds lamports.
const SYSTEM_PROGRAM: [u8; 32] = [0; 32];

/// Why an authorization is not eligible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request payload is not a payment authorization: {0}")]
    BadPayload(String),
    #[error("the payment is for namespace {actual}, this machine takes namespace {expected}")]
    WrongNamespace { expected: u64, actual: u64 },
    #[error("namespace {namespace_id} does not exist in the payment program (no account at {account})")]
    UnknownNamespace { namespace_id: u64, account: Pubkey },
    #[error("user {user} is not registered with the payment program (no account at {account})")]
    NotRegistered { user: Pubkey, account: Pubkey },
    #[error("the authorization is for nonce {signed}, the user's on-chain nonce is {on_chain}")]
    StaleNonce { on_chain: u64, signed: u64 },
    #[error("the payment signature does not verify for user {user} in namespace {namespace:?}")]
    BadSignature { user: Pubkey, namespace: String },
    #[error("the authorization expired at {deadline} (now {now})")]
    Expired { deadline: i64, now: i64 },
    #[error("the user's vault has {available} lamports available, the charge is {amount}")]
    InsufficientBalance { available: u64, amount: u64 },
    #[error("account {account} is not what the payment program would hold: {reason}")]
    BadAccount { account: Pubkey, reason: String },
    #[error("Solana RPC error: {0}")]
    Rpc(String),
}

/// An eligible authorization, with what was read on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligible {
    pub user: Pubkey,
    pub namespace_id: u64,
    /// The namespace's on-chain name (used in the digest).
    pub namespace: String,
    /// The user's on-chain nonce, equal to the signed one.
    pub nonce: u64,
    pub deadline: i64,
    /// `vault lamports - locked_amount`.
    pub available: u64,
    pub amount: u64,
}

impl From<Result<Eligible, Refusal>> for Decision {
    fn from(result: Result<Eligible, Refusal>) -> Decision {
        match result {
            Ok(_) => Decision::Accept,
            Err(refusal) => Decision::Refuse(refusal.to_string()),
        }
    }
}

/// What a machine requires of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The balance-payment program ([`accounts::program_id`] for DePHY's).
    pub program: Pubkey,
    /// The namespace the machine takes payments in (DePHY: 0 DeCharge, 1 Gacha); `None`
    /// accepts any namespace that exists on chain.
    pub namespace_id: Option<u64>,
    /// The amount (lamports) that must be available in the vault.
    pub amount: u64,
}

/// Checks the payment authorization in a Request's `payload` on chain at time `now` (Unix
/// seconds). One `getMultipleAccounts` call.
pub async fn check(rpc: &RpcClient, requirement: &Requirement, payload: &str, now: i64) -> Result<Eligible, Refusal> {
    let payload = Payload::parse(payload).map_err(|e| Refusal::BadPayload(e.to_string()))?;
    let info = payload.recover_info().map_err(|e| Refusal::BadPayload(e.to_string()))?;
    let user_bytes: [u8; 32] = bs58::decode(&payload.user)
        .into_vec()
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Refusal::BadPayload(format!("user {:?} is not a base58 Solana public key", payload.user)))?;
    let user = Pubkey::new_from_array(user_bytes);
    if let Some(expected) = requirement.namespace_id
        && expected != payload.namespace_id
    {
        return Err(Refusal::WrongNamespace { expected, actual: payload.namespace_id });
    }
    let program = &requirement.program;
    let keys = [
        accounts::user_pda(program, &user),
        accounts::vault_pda(program, &user),
        accounts::namespace_pda(program, payload.namespace_id),
    ];
    let fetched = rpc.get_multiple_accounts(&keys).await.map_err(|e| Refusal::Rpc(e.to_string()))?;
    if fetched.len() != keys.len() {
        return Err(Refusal::Rpc(format!(
            "getMultipleAccounts returned {} accounts for {}",
            fetched.len(),
            keys.len()
        )));
    }
    let owned_by = |i: usize, owner: &Pubkey| -> Result<(), Refusal> {
        match &fetched[i] {
            Some(a) if a.owner != *owner => {
                Err(Refusal::BadAccount { account: keys[i], reason: format!("owned by {}, not {owner}", a.owner) })
            }
            _ => Ok(()),
        }
    };
    let user_account = fetched[0].as_ref().ok_or(Refusal::NotRegistered { user, account: keys[0] })?;
    owned_by(0, program)?;
    let user_account = UserAccount::decode(&user_account.data)
        .map_err(|e| Refusal::BadAccount { account: keys[0], reason: e.to_string() })?;
    owned_by(1, &Pubkey::new_from_array(SYSTEM_PROGRAM))?;
    let vault_lamports = fetched[1].as_ref().map_or(0, |a| a.lamports);
    let namespace = fetched[2]
        .as_ref()
        .ok_or(Refusal::UnknownNamespace { namespace_id: payload.namespace_id, account: keys[2] })?;
    owned_by(2, program)?;
    let namespace = NamespaceAccount::decode(&namespace.data)
        .map_err(|e| Refusal::BadAccount { account: keys[2], reason: e.to_string() })?;
    if namespace.id != payload.namespace_id {
        return Err(Refusal::BadAccount {
            account: keys[2],
            reason: format!("holds namespace id {}, expected {}", namespace.id, payload.namespace_id),
        });
    }

    if user_account.nonce != payload.nonce {
        return Err(Refusal::StaleNonce { on_chain: user_account.nonce, signed: payload.nonce });
    }
    let extra: [u8; 64] = info.extra_data.as_slice().try_into().expect("RecoverInfo::parse checked 64 bytes");
    let sig: [u8; 64] = info.signature.as_slice().try_into().expect("RecoverInfo::parse checked 64 bytes");
    let text = authorization::digest(&namespace.name, &extra, payload.namespace_id, user_account.nonce, info.deadline);
    let bad_signature = || Refusal::BadSignature { user, namespace: namespace.name.clone() };
    let key = VerifyingKey::from_bytes(&user_bytes).map_err(|_| bad_signature())?;
    key.verify_strict(text.as_bytes(), &Signature::from_bytes(&sig)).map_err(|_| bad_signature())?;
    if now >= info.deadline {
        return Err(Refusal::Expired { deadline: info.deadline, now });
    }
    let available = vault_lamports.saturating_sub(user_account.locked_amount);
    if available < requirement.amount {
        return Err(Refusal::InsufficientBalance { available, amount: requirement.amount });
    }
    Ok(Eligible {
        user,
        namespace_id: payload.namespace_id,
        namespace: namespace.name,
        nonce: user_account.nonce,
        deadline: info.deadline,
        available,
        amount: requirement.amount,
    })
}
