//! Anchoring checkpoints on Solana (off by default; on when `[anchor] rpc_url` is set).
//!
//! Before the relay signs a checkpoint, it writes the checkpoint's tree size and root to
//! Solana: one transaction, fee payer and only signer the keypair of `[anchor] keypair_file`,
//! holding one instruction of the SPL Memo program
//! (`MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr`, no accounts) whose data is exactly the
//! UTF-8 text
//!
//! ```text
//! dephy-log checkpoint tree_size=<N> root=<64 lowercase hex>
//! ```
//!
//! (`N` in decimal, no padding; single spaces; no trailing newline; see [`memo_text`]). The
//! transaction signature (base58) becomes the checkpoint's `anchor`, which is part of the
//! content the relay signs. [`verify`] is the auditor's side: it fetches the transaction over
//! RPC and checks that it succeeded and carries exactly that memo.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use solana_commitment_config::CommitmentConfig;
use solana_instruction::Instruction;
use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::config::RpcTransactionConfig;
use solana_signature::Signature;
use solana_signer::Signer as _;
use solana_transaction::Transaction;
use solana_transaction_status_client_types::{EncodedTransaction, UiMessage, UiTransactionEncoding};

use crate::config::AnchorConfig;

/// Longest one anchor (send and confirm) may take before the checkpoint goes out unanchored.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// The SPL Memo program (v2), base58.
pub const MEMO_PROGRAM_ID: &str = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";

fn memo_program() -> Pubkey {
    Pubkey::from_str(MEMO_PROGRAM_ID).expect("the memo program id is valid base58")
}

/// The memo that anchors the checkpoint `(tree_size, root)`:
/// `dephy-log checkpoint tree_size=<N> root=<64 lowercase hex>`.
pub fn memo_text(tree_size: u64, root: &[u8; 32]) -> String {
    format!("dephy-log checkpoint tree_size={tree_size} root={}", hex::encode(root))
}

/// Parses a commitment level name (`processed`, `confirmed`, `finalized`).
pub fn parse_commitment(name: &str) -> anyhow::Result<CommitmentConfig> {
    CommitmentConfig::from_str(name).map_err(|_| {
        anyhow::anyhow!("invalid [anchor] commitment {name:?}: expected processed, confirmed or finalized")
    })
}

/// Writes checkpoint roots to Solana.
pub struct Anchor {
    rpc: RpcClient,
    keypair: Keypair,
    rpc_url: String,
}

impl Anchor {
    /// `None` when anchoring is off (no `rpc_url`); an error when the keypair file or the
    /// commitment is unusable.
    pub fn from_config(cfg: &AnchorConfig) -> anyhow::Result<Option<Anchor>> {
        let Some(rpc_url) = cfg.rpc_url.clone() else { return Ok(None) };
        let keypair = load_keypair(&cfg.keypair_file)?;
        let commitment = match &cfg.commitment {
            Some(name) => parse_commitment(name)?,
            None => CommitmentConfig::confirmed(),
        };
        let rpc = RpcClient::new_with_commitment(rpc_url.clone(), commitment);
        Ok(Some(Anchor { rpc, keypair, rpc_url }))
    }

    /// The fee payer's address (base58).
    pub fn pubkey(&self) -> Pubkey {
        self.keypair.pubkey()
    }

    pub fn rpc_url(&self) -> &str {
        &self.rpc_url
    }

    /// Sends the memo transaction anchoring `(tree_size, root)`, waits for confirmation at the
    /// configured commitment, and returns its signature (base58).
    pub async fn anchor(&self, tree_size: u64, root: &[u8; 32]) -> anyhow::Result<String> {
        let memo = Instruction::new_with_bytes(memo_program(), memo_text(tree_size, root).as_bytes(), vec![]);
        let payer = self.keypair.pubkey();
        let blockhash = self
            .rpc
            .get_latest_blockhash()
            .await
            .with_context(|| format!("cannot get a recent blockhash from {}", self.rpc_url))?;
        let tx = Transaction::new_signed_with_payer(&[memo], Some(&payer), &[&self.keypair], blockhash);
        let sent =
            tokio::time::timeout(SEND_TIMEOUT, self.rpc.send_and_confirm_transaction(&tx)).await.map_err(|_| {
                anyhow::anyhow!(
                    "the anchor transaction {} was not confirmed on {} within {SEND_TIMEOUT:?}",
                    tx.signatures[0],
                    self.rpc_url
                )
            })?;
        let signature = sent.with_context(|| {
            format!("the anchor transaction (fee payer {payer}) failed or was not confirmed on {}", self.rpc_url)
        })?;
        Ok(signature.to_string())
    }
}

/// Reads a Solana keypair file: a JSON array of 64 bytes (32-byte secret seed, then the 32-byte
/// public key), as `solana-keygen new` writes it.
pub fn load_keypair(path: &Path) -> anyhow::Result<Keypair> {
    let expected = "expected a Solana keypair file: a JSON array of 64 numbers (0-255), \
                    the secret seed then the public key, as `solana-keygen new` writes";
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read [anchor] keypair_file {}: {e}", path.display()))?;
    let bytes: Vec<u8> = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid [anchor] keypair_file {}: {e}; {expected}", path.display()))?;
    if bytes.len() != 64 {
        anyhow::bail!("invalid [anchor] keypair_file {}: {} bytes; {expected}", path.display(), bytes.len());
    }
    Keypair::try_from(bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("invalid [anchor] keypair_file {}: {e}; {expected}", path.display()))
}

/// What [`verify`] found: the anchoring transaction's fee payer.
#[derive(Debug, Clone)]
pub struct Verified {
    pub fee_payer: String,
    pub slot: u64,
}

/// Checks that transaction `signature` exists (at `confirmed` commitment), succeeded, and has
/// an SPL Memo instruction whose data is exactly [`memo_text`]`(tree_size, root)`. The error
/// says precisely what does not match.
pub async fn verify(rpc: &RpcClient, signature: &str, tree_size: u64, root: &[u8; 32]) -> Result<Verified, String> {
    let sig = Signature::from_str(signature)
        .map_err(|e| format!("anchor {signature:?} is not a base58 transaction signature: {e}"))?;
    let config = RpcTransactionConfig {
        encoding: Some(UiTransactionEncoding::Json),
        commitment: Some(CommitmentConfig::confirmed()),
        max_supported_transaction_version: Some(0),
    };
    let tx = rpc
        .get_transaction_with_config(&sig, config)
        .await
        .map_err(|e| format!("anchor transaction {signature} was not found on {}: {e}", rpc.url()))?;
    if let Some(meta) = &tx.transaction.meta
        && let Some(err) = &meta.err
    {
        return Err(format!("anchor transaction {signature} failed on chain: {err:?}"));
    }
    let EncodedTransaction::Json(ui) = &tx.transaction.transaction else {
        return Err(format!("anchor transaction {signature}: the RPC did not answer in JSON encoding"));
    };
    let UiMessage::Raw(message) = &ui.message else {
        return Err(format!("anchor transaction {signature}: the RPC answered a parsed message, expected raw"));
    };
    let fee_payer = message.account_keys.first().cloned().unwrap_or_default();
    let expected = memo_text(tree_size, root);
    let mut memos = Vec::new();
    for ix in &message.instructions {
        let program = message.account_keys.get(usize::from(ix.program_id_index));
        if program.map(String::as_str) != Some(MEMO_PROGRAM_ID) {
            continue;
        }
        let data = bs58::decode(&ix.data)
            .into_vec()
            .map_err(|e| format!("anchor transaction {signature}: memo data is not base58: {e}"))?;
        if data == expected.as_bytes() {
            return Ok(Verified { fee_payer, slot: tx.slot });
        }
        memos.push(String::from_utf8_lossy(&data).into_owned());
    }
    Err(if memos.is_empty() {
        format!(
            "anchor transaction {signature} (fee payer {fee_payer}) has no SPL Memo instruction; expected memo {expected:?}"
        )
    } else {
        format!(
            "anchor transaction {signature} (fee payer {fee_payer}) has memo {:?}, expected {expected:?}",
            memos.join(" | ")
        )
    })
}

/// The default keypair path, relative to the working directory.
pub fn default_keypair_file() -> PathBuf {
    PathBuf::from("data/anchor-keypair.json")
}
