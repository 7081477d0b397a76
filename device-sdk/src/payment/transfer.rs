//! Direct payment by SOL transfer (feature `solana-rpc`): the user pays the device owner with one
//! transaction holding a System transfer and an SPL Memo whose text is the id (64 hex) of the
//! Request event being paid for. The device verifies the *confirmed* transaction over RPC
//! (succeeded, the recipient gained at least the price, the memo names the request) and
//! records the signature in a [`PaymentLedger`] so one payment cannot be used twice.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use nostr::EventId;
use solana_commitment_config::CommitmentConfig;
use solana_instruction::Instruction;
use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client::rpc_client::GetConfirmedSignaturesForAddress2Config;
use solana_rpc_client_api::config::RpcTransactionConfig;
use solana_signature::Signature;
use solana_signer::Signer as _;
use solana_transaction::Transaction;
use solana_transaction_status_client_types::{EncodedTransaction, UiMessage, UiTransactionEncoding};

/// The SPL Memo program (v2).
pub const MEMO_PROGRAM_ID: &str = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";

/// Why a payment could not be made or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("Solana RPC error: {0}")]
    Rpc(String),
    #[error("{0:?} is not a base58 transaction signature")]
    BadSignature(String),
    #[error("transaction {0} is not confirmed (unknown to the RPC node at confirmed commitment)")]
    NotConfirmed(String),
    #[error("transaction {signature} failed on chain: {error}")]
    Failed { signature: String, error: String },
    #[error("transaction {signature} does not pay {expected}")]
    WrongRecipient { signature: String, expected: String },
    #[error("transaction {signature} pays {actual} lamports, expected at least {expected}")]
    WrongAmount { signature: String, expected: u64, actual: u64 },
    #[error("transaction {signature} has memo {found:?}, expected the request id {expected}")]
    WrongMemo { signature: String, expected: String, found: Vec<String> },
    #[error("transaction {0} already paid for a request")]
    Replayed(String),
    #[error("cannot record used payments in {path}: {source}")]
    Store { path: PathBuf, source: std::io::Error },
}

fn rpc_err(e: impl std::fmt::Display) -> TransferError {
    TransferError::Rpc(e.to_string())
}

/// The memo that pays for `request`: its id in lowercase hex.
pub fn memo_text(request: &EventId) -> String {
    request.to_hex()
}

fn memo_program() -> Pubkey {
    Pubkey::from_str(MEMO_PROGRAM_ID).expect("valid program id")
}

/// The user's side: transfers `lamports` from `payer` to `recipient` with the memo naming
/// `request`, and waits for confirmation. Returns the transaction signature.
pub async fn pay(
    rpc: &RpcClient,
    payer: &Keypair,
    recipient: &Pubkey,
    lamports: u64,
    request: &EventId,
) -> Result<Signature, TransferError> {
    let tx = payment_transaction(rpc, payer, recipient, lamports, request).await?;
    rpc.send_and_confirm_transaction(&tx).await.map_err(rpc_err)
}

/// The signed payment transaction, not sent.
pub async fn payment_transaction(
    rpc: &RpcClient,
    payer: &Keypair,
    recipient: &Pubkey,
    lamports: u64,
    request: &EventId,
) -> Result<Transaction, TransferError> {
    let transfer = solana_system_interface::instruction::transfer(&payer.pubkey(), recipient, lamports);
    let memo = Instruction::new_with_bytes(memo_program(), memo_text(request).as_bytes(), vec![]);
    let blockhash = rpc.get_latest_blockhash().await.map_err(rpc_err)?;
    Ok(Transaction::new_signed_with_payer(&[transfer, memo], Some(&payer.pubkey()), &[payer], blockhash))
}

/// What a verified payment was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    pub signature: String,
    pub payer: String,
    pub lamports: u64,
    pub slot: u64,
}

/// The device's side: checks that `signature` is a confirmed, successful transaction that pays
/// `recipient` at least `lamports` and carries the memo naming `request`.
pub async fn verify(
    rpc: &RpcClient,
    signature: &str,
    recipient: &Pubkey,
    lamports: u64,
    request: &EventId,
) -> Result<Paid, TransferError> {
    let sig = Signature::from_str(signature).map_err(|_| TransferError::BadSignature(signature.into()))?;
    let config = RpcTransactionConfig {
        encoding: Some(UiTransactionEncoding::Json),
        commitment: Some(CommitmentConfig::confirmed()),
        max_supported_transaction_version: Some(0),
    };
    let tx = rpc
        .get_transaction_with_config(&sig, config)
        .await
        .map_err(|_| TransferError::NotConfirmed(signature.into()))?;
    let meta = tx.transaction.meta.as_ref().ok_or_else(|| TransferError::NotConfirmed(signature.into()))?;
    if let Some(err) = &meta.err {
        return Err(TransferError::Failed { signature: signature.into(), error: format!("{err:?}") });
    }
    let EncodedTransaction::Json(ui) = &tx.transaction.transaction else {
        return Err(rpc_err("the RPC did not answer in JSON encoding"));
    };
    let UiMessage::Raw(message) = &ui.message else {
        return Err(rpc_err("the RPC answered a parsed message, expected raw"));
    };
    let recipient_text = recipient.to_string();
    let index = message.account_keys.iter().position(|k| *k == recipient_text).ok_or_else(|| {
        TransferError::WrongRecipient { signature: signature.into(), expected: recipient_text.clone() }
    })?;
    let gained = meta
        .post_balances
        .get(index)
        .copied()
        .unwrap_or(0)
        .saturating_sub(meta.pre_balances.get(index).copied().unwrap_or(0));
    if gained == 0 {
        return Err(TransferError::WrongRecipient { signature: signature.into(), expected: recipient_text });
    }
    if gained < lamports {
        return Err(TransferError::WrongAmount { signature: signature.into(), expected: lamports, actual: gained });
    }
    let expected = memo_text(request);
    let mut memos = Vec::new();
    for ix in &message.instructions {
        if message.account_keys.get(usize::from(ix.program_id_index)).map(String::as_str) != Some(MEMO_PROGRAM_ID) {
            continue;
        }
        let data = bs58::decode(&ix.data).into_vec().map_err(rpc_err)?;
        memos.push(String::from_utf8_lossy(&data).into_owned());
    }
    if !memos.contains(&expected) {
        return Err(TransferError::WrongMemo { signature: signature.into(), expected, found: memos });
    }
    Ok(Paid { signature: signature.into(), payer: message.account_keys[0].clone(), lamports: gained, slot: tx.slot })
}

/// Finds the transaction to `recipient` whose memo names `request` (newest first, among the
/// recipient's last 100 transactions), so the user does not have to send the signature.
pub async fn find(rpc: &RpcClient, recipient: &Pubkey, request: &EventId) -> Result<Option<String>, TransferError> {
    let config = GetConfirmedSignaturesForAddress2Config {
        before: None,
        until: None,
        limit: Some(100),
        commitment: Some(CommitmentConfig::confirmed()),
    };
    let list = rpc.get_signatures_for_address_with_config(recipient, config).await.map_err(rpc_err)?;
    let memo = memo_text(request);
    Ok(list
        .into_iter()
        .find(|s| s.err.is_none() && s.memo.as_deref().is_some_and(|m| m.contains(&memo)))
        .map(|s| s.signature))
}

/// Signatures already accepted as payment, optionally kept in a file (one per line).
#[derive(Debug, Default)]
pub struct PaymentLedger {
    used: HashSet<String>,
    path: Option<PathBuf>,
}

impl PaymentLedger {
    pub fn new() -> PaymentLedger {
        PaymentLedger::default()
    }

    pub fn open(path: &Path) -> Result<PaymentLedger, TransferError> {
        let used = match std::fs::read_to_string(path) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(source) => return Err(TransferError::Store { path: path.into(), source }),
        };
        Ok(PaymentLedger { used, path: Some(path.into()) })
    }

    /// [`verify`], then records the signature; a signature accepted before is refused.
    pub async fn accept(
        &mut self,
        rpc: &RpcClient,
        signature: &str,
        recipient: &Pubkey,
        lamports: u64,
        request: &EventId,
    ) -> Result<Paid, TransferError> {
        if self.used.contains(signature) {
            return Err(TransferError::Replayed(signature.into()));
        }
        let paid = verify(rpc, signature, recipient, lamports, request).await?;
        if let Some(path) = &self.path {
            let store = |source| TransferError::Store { path: path.clone(), source };
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(store)?;
            file.write_all(format!("{signature}\n").as_bytes()).and_then(|()| file.sync_data()).map_err(store)?;
        }
        self.used.insert(signature.into());
        Ok(paid)
    }
}
