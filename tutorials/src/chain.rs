//! The tutorials' local chain: DePHY's balance-payment accounts on an offline surfpool node.
//!
//! DePHY's program cannot be built or deployed here, so its accounts are written directly into
//! surfpool with the `surfnet_setAccount` cheatcode (its `data` field is hex in surfpool 1.5.0),
//! in the program's exact layout (`dephy_device_sdk::payment::accounts`) and owned by the
//! program id: the NamespaceAccount (id 0 `"DeCharge"`, 1 `"Gacha"`), the user's UserAccount with
//! its nonce, and the VAULT PDA's lamports (the user's deposit). Everything that reads them
//! (the user's nonce, the machine's eligibility check, the settlement service) goes through
//! ordinary JSON-RPC calls, as it would against DePHY's deployed program.

use std::time::Duration;

use anyhow::{Context as _, bail};
use dephy_device_sdk::payment::accounts::{self, NamespaceAccount, UserAccount};
use serde_json::{Value, json};
use solana_commitment_config::CommitmentConfig;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::request::RpcRequest;

/// Lamports given to the program's data accounts (above rent exemption for their sizes).
const ACCOUNT_LAMPORTS: u64 = 10_000_000;

/// DePHY's namespaces: (id, name). The name is case-sensitive and part of the signed digest.
pub const DECHARGE: (u64, &str) = (0, "DeCharge");
pub const GACHA: (u64, &str) = (1, "Gacha");

/// A client of the Solana RPC at `url` (confirmed commitment), after checking that it answers.
pub async fn connect(url: &str) -> anyhow::Result<RpcClient> {
    let rpc = RpcClient::new_with_commitment(url.to_string(), CommitmentConfig::confirmed());
    rpc.get_latest_blockhash()
        .await
        .with_context(|| format!("cannot reach the Solana RPC at {url} (is surfpool running? see the tutorial)"))?;
    Ok(rpc)
}

/// Writes one account with surfpool's `surfnet_setAccount`.
pub async fn set_account(
    rpc: &RpcClient,
    address: &Pubkey,
    lamports: u64,
    data: &[u8],
    owner: &Pubkey,
) -> anyhow::Result<()> {
    let params = json!([address.to_string(), {
        "lamports": lamports,
        "data": hex::encode(data),
        "owner": owner.to_string(),
        "executable": false,
    }]);
    let _: Value = rpc
        .send(RpcRequest::Custom { method: "surfnet_setAccount" }, params)
        .await
        .with_context(|| format!("surfnet_setAccount {address} (is the RPC a surfpool node? see the tutorial)"))?;
    Ok(())
}

/// The namespace account `id`, if there is one.
pub async fn namespace(rpc: &RpcClient, program: &Pubkey, id: u64) -> anyhow::Result<Option<NamespaceAccount>> {
    let address = accounts::namespace_pda(program, id);
    let account = rpc.get_account_with_commitment(&address, rpc.commitment()).await?.value;
    let Some(account) = account else { return Ok(None) };
    if account.owner != *program {
        bail!("namespace {id} ({address}) is owned by {}, not the payment program {program}", account.owner);
    }
    Ok(Some(NamespaceAccount::decode(&account.data).with_context(|| format!("namespace {id} ({address})"))?))
}

/// Writes namespace `id` named `name` with `bot` (the settlement service's key) and `treasury`,
/// as `create_namespace` / `update_namespace` would.
pub async fn seed_namespace(
    rpc: &RpcClient,
    program: &Pubkey,
    (id, name): (u64, &str),
    bot: &Pubkey,
    treasury: &Pubkey,
) -> anyhow::Result<NamespaceAccount> {
    let now = now();
    let ns = NamespaceAccount {
        id,
        name: name.into(),
        authority: *bot,
        bot: *bot,
        treasury: *treasury,
        created_at: now,
        updated_at: now,
    };
    set_account(rpc, &accounts::namespace_pda(program, id), ACCOUNT_LAMPORTS, &ns.encode(), program).await?;
    Ok(ns)
}

/// The namespace `id` as it is on chain, written first (with `bot` as its bot and treasury)
/// when it is missing. An existing namespace keeps its bot: the settlement service sets itself
/// as bot with [`seed_namespace`] when it starts.
pub async fn ensure_namespace(
    rpc: &RpcClient,
    program: &Pubkey,
    ns: (u64, &str),
    bot: &Pubkey,
) -> anyhow::Result<NamespaceAccount> {
    match namespace(rpc, program, ns.0).await? {
        Some(existing) if existing.name == ns.1 => Ok(existing),
        _ => seed_namespace(rpc, program, ns, bot, bot).await,
    }
}

/// Writes `user`'s UserAccount (`nonce`, `locked_amount`) and gives its VAULT PDA
/// `vault_lamports`, as `register` + `deposit` would.
pub async fn seed_user(
    rpc: &RpcClient,
    program: &Pubkey,
    user: &Pubkey,
    nonce: u64,
    locked_amount: u64,
    vault_lamports: u64,
) -> anyhow::Result<UserAccount> {
    let vault = accounts::vault_pda(program, user);
    let account = UserAccount { nonce, locked_amount, vault };
    set_account(rpc, &accounts::user_pda(program, user), ACCOUNT_LAMPORTS, &account.encode(), program).await?;
    set_account(rpc, &vault, vault_lamports, &[], &Pubkey::default()).await?;
    Ok(account)
}

/// `user`'s UserAccount as on chain (what DePHY's dApp reads to get the nonce to sign).
pub async fn user_account(rpc: &RpcClient, program: &Pubkey, user: &Pubkey) -> anyhow::Result<UserAccount> {
    let address = accounts::user_pda(program, user);
    let account = rpc
        .get_account_with_commitment(&address, rpc.commitment())
        .await?
        .value
        .with_context(|| format!("user {user} is not registered (no UserAccount at {address})"))?;
    if account.owner != *program {
        bail!("UserAccount {address} is owned by {}, not the payment program {program}", account.owner);
    }
    UserAccount::decode(&account.data).with_context(|| format!("UserAccount {address}"))
}

/// Airdrops `lamports` to `to` and waits (bounded) until they arrive.
pub async fn airdrop(rpc: &RpcClient, to: &Pubkey, lamports: u64) -> anyhow::Result<()> {
    let before = rpc.get_balance(to).await.unwrap_or(0);
    rpc.request_airdrop(to, lamports).await.with_context(|| format!("requestAirdrop to {to}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rpc.get_balance(to).await.unwrap_or(0) < before.saturating_add(lamports) {
        if tokio::time::Instant::now() > deadline {
            bail!("the airdrop to {to} did not arrive within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
