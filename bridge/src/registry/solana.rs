//! The registry on Solana: `NodeEntry` accounts of the registry program read over JSON-RPC,
//! with failover between RPC endpoints.
//!
//! - [`Registry::list`]: `getProgramAccounts(program, filters: [memcmp offset 8 = registry,
//!   dataSize 334], encoding base64)`; an account that does not decode is skipped with a warning.
//! - [`Registry::lookup`]: `getAccountInfo` of the wallet's `NodeEntry` address, the PDA of seeds
//!   `[wallet, registry]` under the program ([`node_entry_address`]).
//!
//! Every call asks the endpoints in order, starting from the last one that answered, and moves
//! on after a transport error, an RPC error or no answer within the timeout; it fails only when
//! every endpoint failed. Nothing is cached: a node deactivated or removed on chain is seen on
//! the next call. [`Registry::list_elsewhere`] asks the endpoints other than the one that
//! answered the last `list` (a second opinion on a suspect answer; see `authorize.rs`).
//!
//! Every reply is bounded by `max_response_bytes` (default 16 MiB) before it is parsed
//! ([`super::transport::CappedSender`]), and each call by `timeout_secs` per endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use solana_account_decoder_client_types::{UiAccount, UiAccountEncoding};
use solana_commitment_config::CommitmentConfig;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client::rpc_client::RpcClientConfig;
use solana_rpc_client_api::client_error::Error as ClientError;
use solana_rpc_client_api::config::{RpcAccountInfoConfig, RpcProgramAccountsConfig};
use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};

use super::layout::{self, NODE_ENTRY_LEN, NODE_ENTRY_REGISTRY_OFFSET};
use super::transport::{CappedSender, DEFAULT_MAX_RESPONSE_BYTES};
use super::{EndpointFailure, NodeEntry, Registry, RegistryError, parse_address};

/// Configuration key prefix used in error messages.
const KEY: &str = "bridge.registry";

/// Default bound on one RPC call to one endpoint.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// Configuration of the Solana backend.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SolanaRegistryConfig {
    /// JSON-RPC endpoints (`http://` or `https://`), tried in order with failover.
    pub rpc_urls: Vec<String>,
    /// The registry program (base58).
    pub program_id: String,
    /// The `Registry` account whose nodes may join (base58).
    pub registry: String,
    /// Bound on one RPC call to one endpoint, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Bound on one JSON-RPC reply, in bytes: a larger reply is an endpoint failure.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

/// The `NodeEntry` address of `wallet` in `registry`: the PDA of seeds `[wallet, registry]`
/// under `program`.
pub fn node_entry_address(program: &Pubkey, registry: &Pubkey, wallet: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[wallet.as_ref(), registry.as_ref()], program).0
}

struct Endpoint {
    url: String,
    client: Arc<RpcClient>,
}

/// The registry read from Solana.
pub struct SolanaRegistry {
    endpoints: Vec<Endpoint>,
    program_id: Pubkey,
    registry: Pubkey,
    timeout: Duration,
    /// Index of the endpoint that answered last; the next call starts there.
    preferred: AtomicUsize,
    /// Index of the endpoint that answered the last `list`.
    last_list: AtomicUsize,
}

impl std::fmt::Debug for SolanaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolanaRegistry")
            .field("endpoints", &self.endpoints.iter().map(|e| e.url.as_str()).collect::<Vec<_>>())
            .field("program_id", &self.program_id)
            .field("registry", &self.registry)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SolanaRegistry {
    /// A registry read through `endpoints` (JSON-RPC URLs, tried in order), each call bounded by
    /// `timeout` per endpoint. Errors when `endpoints` is empty, a URL is not http(s) or the
    /// timeout is zero.
    pub fn new(
        endpoints: Vec<String>,
        program_id: Pubkey,
        registry: Pubkey,
        timeout: Duration,
    ) -> Result<Self, RegistryError> {
        Self::with_max_response(endpoints, program_id, registry, timeout, DEFAULT_MAX_RESPONSE_BYTES)
    }

    /// Like [`SolanaRegistry::new`], with each reply bounded by `max_response_bytes`.
    pub fn with_max_response(
        endpoints: Vec<String>,
        program_id: Pubkey,
        registry: Pubkey,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<Self, RegistryError> {
        if max_response_bytes < 1024 {
            return Err(RegistryError::Config(format!(
                "{KEY}.max_response_bytes = {max_response_bytes} is too small: at least 1024 (default {DEFAULT_MAX_RESPONSE_BYTES})"
            )));
        }
        if endpoints.is_empty() {
            return Err(RegistryError::Config(format!(
                "{KEY}.rpc_urls is empty: list at least one Solana JSON-RPC URL (http:// or https://)"
            )));
        }
        if timeout.is_zero() {
            return Err(RegistryError::Config(format!("{KEY}.timeout_secs must be at least 1")));
        }
        let endpoints = endpoints
            .into_iter()
            .map(|url| {
                let url = url.trim().to_string();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(RegistryError::Config(format!(
                        "{KEY}.rpc_urls: {url:?} is not an http:// or https:// JSON-RPC URL"
                    )));
                }
                // Each call is bounded by `timeout` (tokio); the HTTP client's own timeout is only
                // a backstop, longer so that the error says which bound was hit.
                let sender = CappedSender::new(url.clone(), timeout * 2, max_response_bytes)
                    .map_err(|e| RegistryError::Config(format!("{KEY}.rpc_urls: {url:?}: {e}")))?;
                let client =
                    RpcClient::new_sender(sender, RpcClientConfig::with_commitment(CommitmentConfig::confirmed()));
                Ok(Endpoint { url, client: Arc::new(client) })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SolanaRegistry {
            endpoints,
            program_id,
            registry,
            timeout,
            preferred: AtomicUsize::new(0),
            last_list: AtomicUsize::new(0),
        })
    }

    /// Builds the registry from its configuration; errors name the offending key.
    pub fn from_config(cfg: &SolanaRegistryConfig) -> Result<Self, RegistryError> {
        let program_id = Pubkey::new_from_array(parse_address(&format!("{KEY}.program_id"), &cfg.program_id)?);
        let registry = Pubkey::new_from_array(parse_address(&format!("{KEY}.registry"), &cfg.registry)?);
        Self::with_max_response(
            cfg.rpc_urls.clone(),
            program_id,
            registry,
            Duration::from_secs(cfg.timeout_secs),
            cfg.max_response_bytes,
        )
    }

    pub fn program_id(&self) -> &Pubkey {
        &self.program_id
    }

    pub fn registry(&self) -> &Pubkey {
        &self.registry
    }

    /// The endpoint the next call starts with (the last one that answered), for logs/health.
    pub fn current_endpoint(&self) -> &str {
        &self.endpoints[self.preferred.load(Ordering::Relaxed) % self.endpoints.len()].url
    }

    /// Runs `call` against the endpoints in failover order; `what` names the request in errors.
    /// Returns the answer and the index of the endpoint that gave it.
    async fn with_failover<T, F, Fut>(&self, what: &str, call: F) -> Result<(T, usize), RegistryError>
    where
        F: Fn(Arc<RpcClient>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let count = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % count;
        self.try_endpoints(what, (0..count).map(|step| (start + step) % count), call).await
    }

    /// Runs `call` against the endpoints at `order` until one answers; the one that answers
    /// becomes the preferred endpoint.
    async fn try_endpoints<T, F, Fut>(
        &self,
        what: &str,
        order: impl Iterator<Item = usize>,
        call: F,
    ) -> Result<(T, usize), RegistryError>
    where
        F: Fn(Arc<RpcClient>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let start = self.preferred.load(Ordering::Relaxed) % self.endpoints.len();
        let mut failures = Vec::new();
        for index in order {
            let endpoint = &self.endpoints[index];
            let message = match tokio::time::timeout(self.timeout, call(endpoint.client.clone())).await {
                Ok(Ok(value)) => {
                    if index != start {
                        self.preferred.store(index, Ordering::Relaxed);
                        tracing::info!(endpoint = %endpoint.url, "registry RPC failed over to this endpoint");
                    }
                    return Ok((value, index));
                }
                Ok(Err(err)) => format!("{what} failed: {err}"),
                Err(_) => format!("{what} got no answer within {:?}", self.timeout),
            };
            tracing::warn!(endpoint = %endpoint.url, error = %message, "registry RPC endpoint failed");
            failures.push(EndpointFailure { endpoint: endpoint.url.clone(), message });
        }
        Err(RegistryError::Rpc { failures })
    }

    async fn list_entries(&self) -> Result<Vec<NodeEntry>, RegistryError> {
        let count = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % count;
        self.list_from((0..count).map(|step| (start + step) % count)).await
    }

    /// `list` through the endpoints other than the one that answered the last `list`.
    async fn list_elsewhere_entries(&self) -> Option<Result<Vec<NodeEntry>, RegistryError>> {
        let count = self.endpoints.len();
        if count < 2 {
            return None;
        }
        let last = self.last_list.load(Ordering::Relaxed) % count;
        Some(self.list_from((1..count).map(|step| (last + step) % count)).await)
    }

    async fn list_from(&self, order: impl Iterator<Item = usize>) -> Result<Vec<NodeEntry>, RegistryError> {
        let config = RpcProgramAccountsConfig {
            filters: Some(vec![
                RpcFilterType::Memcmp(Memcmp::new_base58_encoded(NODE_ENTRY_REGISTRY_OFFSET, self.registry.as_ref())),
                RpcFilterType::DataSize(NODE_ENTRY_LEN as u64),
            ]),
            account_config: account_config(),
            ..RpcProgramAccountsConfig::default()
        };
        let program = self.program_id;
        let (accounts, answered) = self
            .try_endpoints("getProgramAccounts", order, |client| {
                let config = config.clone();
                async move { client.get_program_ui_accounts_with_config(&program, config).await }
            })
            .await?;
        self.last_list.store(answered, Ordering::Relaxed);
        let registry = self.registry.to_bytes();
        let mut entries: Vec<NodeEntry> = accounts
            .into_iter()
            .filter_map(|(address, account)| match decode_account(&account, &registry) {
                Ok(entry) => Some(entry),
                Err(err) => {
                    tracing::warn!(account = %address, registry = %self.registry, error = %err,
                        "skipping a registry program account that is not a valid NodeEntry");
                    None
                }
            })
            .collect();
        entries.sort_by_key(|e| e.wallet);
        Ok(entries)
    }

    async fn lookup_entry(&self, wallet: [u8; 32]) -> Result<Option<NodeEntry>, RegistryError> {
        let address = node_entry_address(&self.program_id, &self.registry, &Pubkey::new_from_array(wallet));
        let (account, _) = self
            .with_failover("getAccountInfo", |client| async move {
                client.get_ui_account_with_config(&address, account_config()).await.map(|response| response.value)
            })
            .await?;
        let Some(account) = account else { return Ok(None) };
        // Anyone can send lamports to the address, leaving a system-owned account there: only an
        // account of the registry program is an entry.
        if account.owner != self.program_id.to_string() {
            tracing::debug!(%address, owner = %account.owner, "NodeEntry address holds an account of another program");
            return Ok(None);
        }
        let entry = decode_account(&account, &self.registry.to_bytes())
            .map_err(|source| RegistryError::InvalidAccount { address: address.to_string(), source })?;
        if entry.wallet != wallet {
            return Err(RegistryError::WalletMismatch {
                address: address.to_string(),
                expected: bs58::encode(wallet).into_string(),
                found: entry.wallet_base58(),
            });
        }
        Ok(Some(entry))
    }
}

/// Plain base64 (no zstd) at `confirmed` commitment.
fn account_config() -> RpcAccountInfoConfig {
    RpcAccountInfoConfig {
        encoding: Some(UiAccountEncoding::Base64),
        commitment: Some(CommitmentConfig::confirmed()),
        ..RpcAccountInfoConfig::default()
    }
}

fn decode_account(account: &UiAccount, registry: &[u8; 32]) -> Result<NodeEntry, layout::LayoutError> {
    // The request asks for base64, which always decodes; an endpoint answering in another
    // encoding yields no bytes, reported as empty data.
    let data = account.data.decode().unwrap_or_default();
    layout::decode_node_entry(&data, registry)
}

impl Registry for SolanaRegistry {
    fn backend(&self) -> &'static str {
        "solana"
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<NodeEntry>, RegistryError>> {
        Box::pin(self.list_entries())
    }

    fn lookup(&self, wallet: [u8; 32]) -> BoxFuture<'_, Result<Option<NodeEntry>, RegistryError>> {
        Box::pin(self.lookup_entry(wallet))
    }

    fn list_elsewhere(&self) -> BoxFuture<'_, Option<Result<Vec<NodeEntry>, RegistryError>>> {
        Box::pin(self.list_elsewhere_entries())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Result<SolanaRegistryConfig, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let cfg = config(serde_json::json!({
            "rpc_urls": ["http://127.0.0.1:8899"],
            "program_id": "11111111111111111111111111111111",
            "registry": "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr",
        }))
        .unwrap();
        assert_eq!(cfg.timeout_secs, DEFAULT_TIMEOUT_SECS);
        assert_eq!(cfg.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        let registry = SolanaRegistry::from_config(&cfg).unwrap();
        assert_eq!(registry.backend(), "solana");
        assert_eq!(registry.current_endpoint(), "http://127.0.0.1:8899");
        assert_eq!(registry.registry().to_string(), "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");

        let err = config(serde_json::json!({
            "rpc_urls": [], "program_id": "", "registry": "", "rpc_url": "x",
        }))
        .unwrap_err();
        assert!(err.to_string().contains("rpc_url"), "{err}");
    }

    #[test]
    fn from_config_errors_name_the_key() {
        let good = "11111111111111111111111111111111".to_string();
        let base = SolanaRegistryConfig {
            rpc_urls: vec!["http://127.0.0.1:1".into()],
            program_id: good.clone(),
            registry: good.clone(),
            timeout_secs: 5,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        };
        let err = |cfg: SolanaRegistryConfig| SolanaRegistry::from_config(&cfg).unwrap_err().to_string();

        let text = err(SolanaRegistryConfig { program_id: "0OIl".into(), ..base.clone() });
        assert!(text.starts_with("bridge.registry.program_id = \"0OIl\""), "{text}");
        let text = err(SolanaRegistryConfig { registry: "abc".into(), ..base.clone() });
        assert!(text.starts_with("bridge.registry.registry = \"abc\"") && text.contains("bytes"), "{text}");
        let text = err(SolanaRegistryConfig { rpc_urls: vec![], ..base.clone() });
        assert!(text.contains("bridge.registry.rpc_urls is empty"), "{text}");
        let text = err(SolanaRegistryConfig { rpc_urls: vec!["127.0.0.1:8899".into()], ..base.clone() });
        assert!(text.contains("bridge.registry.rpc_urls") && text.contains("http://"), "{text}");
        let text = err(SolanaRegistryConfig { max_response_bytes: 10, ..base.clone() });
        assert!(text.contains("bridge.registry.max_response_bytes"), "{text}");
        let text = err(SolanaRegistryConfig { timeout_secs: 0, ..base });
        assert!(text.contains("bridge.registry.timeout_secs"), "{text}");
    }

    #[test]
    fn node_entry_address_is_the_pda_of_wallet_and_registry() {
        let program = Pubkey::new_from_array([1; 32]);
        let registry = Pubkey::new_from_array([2; 32]);
        let wallet = Pubkey::new_from_array([3; 32]);
        let address = node_entry_address(&program, &registry, &wallet);
        let (expected, bump) = Pubkey::find_program_address(&[&[3; 32], &[2; 32]], &program);
        assert_eq!(address, expected);
        assert_eq!(Pubkey::create_program_address(&[&[3; 32], &[2; 32], &[bump]], &program).unwrap(), address);
        assert!(!address.is_on_curve());
        assert_ne!(address, node_entry_address(&program, &Pubkey::new_from_array([4; 32]), &wallet));
    }
}
