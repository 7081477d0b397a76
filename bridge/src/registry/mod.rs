//! The node registry: which Solana wallets may join the federation.
//!
//! A [`Registry`] answers two questions, always from its source of truth (no authorization is
//! cached here, so a node removed or deactivated in the registry stops being listed on the next
//! call): every [`NodeEntry`] of the registry ([`Registry::list`]) and the entry of one wallet
//! ([`Registry::lookup`]). Two backends: [`solana::SolanaRegistry`] reads the dTelecom-layout
//! registry program's accounts over JSON-RPC (with failover between endpoints), and
//! [`static_list::StaticRegistry`] answers from a list in the configuration.
//! [`layout`] decodes and encodes the on-chain accounts. A suspect answer (one that would drop
//! most of the authorized set) can be checked against another source with
//! [`Registry::list_elsewhere`].

use futures_util::future::BoxFuture;

pub mod layout;
pub mod solana;
pub mod static_list;
pub mod transport;

pub use solana::{SolanaRegistry, SolanaRegistryConfig};
pub use static_list::{StaticNode, StaticRegistry};

/// One registered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node's wallet: its ed25519 public key, i.e. the Solana address bytes.
    pub wallet: [u8; 32],
    /// Bootstrap address hint (may be empty).
    pub domain: String,
    pub online: i32,
    pub active: bool,
}

impl NodeEntry {
    /// The wallet as a Solana address (base58).
    pub fn wallet_base58(&self) -> String {
        bs58::encode(self.wallet).into_string()
    }
}

/// One endpoint's failure, part of [`RegistryError::Rpc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFailure {
    pub endpoint: String,
    pub message: String,
}

impl std::fmt::Display for EndpointFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.endpoint, self.message)
    }
}

/// Why a registry could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Every Solana RPC endpoint failed (transport error, RPC error or timeout); one failure
    /// per endpoint, in the order they were tried.
    #[error("no Solana RPC endpoint answered ({}); check bridge.registry.rpc_urls and that the nodes are reachable",
        .failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Rpc { failures: Vec<EndpointFailure> },
    /// The account at a node's registry address is owned by the registry program but does not
    /// decode as a `NodeEntry` of this registry.
    #[error("account {address} is not a valid NodeEntry of the registry: {source}")]
    InvalidAccount {
        address: String,
        #[source]
        source: layout::LayoutError,
    },
    /// The `NodeEntry` at a wallet's address registers another wallet.
    #[error("account {address} (the NodeEntry address of wallet {expected}) registers wallet {found} instead")]
    WalletMismatch { address: String, expected: String, found: String },
    /// Unusable configuration; the message names the key.
    #[error("{0}")]
    Config(String),
}

/// A source of node entries.
pub trait Registry: Send + Sync + 'static {
    /// "solana" or "static", for logs/health.
    fn backend(&self) -> &'static str;
    /// Every node entry of the registry (active or not).
    fn list(&self) -> BoxFuture<'_, Result<Vec<NodeEntry>, RegistryError>>;
    /// The entry of one wallet, if registered (active or not).
    fn lookup(&self, wallet: [u8; 32]) -> BoxFuture<'_, Result<Option<NodeEntry>, RegistryError>>;
    /// [`Registry::list`] again through another source than the one that answered the last
    /// `list` (another RPC endpoint), to confirm or refute a suspect answer; `None` when the
    /// backend has no other source.
    fn list_elsewhere(&self) -> BoxFuture<'_, Option<Result<Vec<NodeEntry>, RegistryError>>> {
        Box::pin(std::future::ready(None))
    }
}

/// Decodes a base58 Solana address (32 bytes). `key` names the configuration key in the error,
/// e.g. `bridge.registry.program_id`.
pub fn parse_address(key: &str, value: &str) -> Result<[u8; 32], RegistryError> {
    let bytes = bs58::decode(value.trim())
        .into_vec()
        .map_err(|e| RegistryError::Config(format!("{key} = {value:?} is not a base58 Solana address: {e}")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        RegistryError::Config(format!(
            "{key} = {value:?} is not a Solana address: it decodes to {} bytes, expected 32",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_address_accepts_32_bytes_and_names_the_key_otherwise() {
        let wallet = [7u8; 32];
        let text = bs58::encode(wallet).into_string();
        assert_eq!(parse_address("k", &text).unwrap(), wallet);

        let err = parse_address("bridge.registry.program_id", "not-base58!").unwrap_err().to_string();
        assert!(err.contains("bridge.registry.program_id") && err.contains("base58"), "{err}");

        let short = bs58::encode([1u8; 31]).into_string();
        let err = parse_address("bridge.registry.registry", &short).unwrap_err().to_string();
        assert!(err.contains("bridge.registry.registry") && err.contains("31 bytes"), "{err}");
    }

    #[test]
    fn rpc_error_lists_every_endpoint() {
        let err = RegistryError::Rpc {
            failures: vec![
                EndpointFailure { endpoint: "http://a".into(), message: "connection refused".into() },
                EndpointFailure { endpoint: "http://b".into(), message: "no answer within 1s".into() },
            ],
        };
        let text = err.to_string();
        assert!(text.contains("http://a: connection refused; http://b: no answer within 1s"), "{text}");
    }

    #[test]
    fn wallet_base58_is_the_solana_address() {
        let entry = NodeEntry { wallet: [0; 32], domain: String::new(), online: 0, active: true };
        assert_eq!(entry.wallet_base58(), "11111111111111111111111111111111");
    }
}
