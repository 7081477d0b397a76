//! The registry as a fixed list from the configuration (no Solana), replaceable at run time
//! with [`StaticRegistry::set`] (configuration reload, tests revoking a node).

use std::sync::RwLock;

use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::{NodeEntry, Registry, RegistryError, parse_address};

fn yes() -> bool {
    true
}

/// One node of the static list, as configured.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct StaticNode {
    /// The node's Solana wallet (base58).
    pub wallet: String,
    /// The node's address, a multiaddr (`/ip4/10.0.0.2/tcp/4001`, `/dns4/node.example.org/tcp/4001`;
    /// a trailing `/p2p/<PeerId>` is optional and must be this wallet's); may be empty.
    #[serde(default)]
    pub address: String,
    #[serde(default = "yes")]
    pub active: bool,
}

/// A registry answering from memory.
#[derive(Debug, Default)]
pub struct StaticRegistry {
    entries: RwLock<Vec<NodeEntry>>,
}

impl StaticRegistry {
    pub fn new(entries: Vec<NodeEntry>) -> Self {
        StaticRegistry { entries: RwLock::new(entries) }
    }

    /// Builds the list from the configured nodes; an error names the entry (its index in
    /// `bridge.registry.nodes`) whose wallet is not a base58 Solana address or is listed twice,
    /// or whose address is not a multiaddr (or names another peer).
    pub fn from_config(nodes: &[StaticNode]) -> Result<Self, RegistryError> {
        let mut entries: Vec<NodeEntry> = Vec::with_capacity(nodes.len());
        for (index, node) in nodes.iter().enumerate() {
            let key = format!("bridge.registry.nodes[{index}].wallet");
            let wallet = parse_address(&key, &node.wallet)?;
            if let Some(first) = entries.iter().position(|e| e.wallet == wallet) {
                return Err(RegistryError::Config(format!(
                    "{key} = {:?} is already listed at bridge.registry.nodes[{first}]",
                    node.wallet
                )));
            }
            let address = node.address.trim();
            if !address.is_empty() {
                check_address(index, address, &wallet)?;
            }
            entries.push(NodeEntry { wallet, domain: address.to_string(), online: 0, active: node.active });
        }
        Ok(Self::new(entries))
    }

    /// Replaces the whole list.
    pub fn set(&self, entries: Vec<NodeEntry>) {
        *self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = entries;
    }

    fn snapshot(&self) -> Vec<NodeEntry> {
        self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn find(&self, wallet: &[u8; 32]) -> Option<NodeEntry> {
        let entries = self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.iter().find(|e| &e.wallet == wallet).cloned()
    }
}

/// A static node's address must be a multiaddr (unlike an on-chain `domain`, no `host:port`
/// shorthand), and a `/p2p/...` in it must be the node's own PeerId.
fn check_address(index: usize, address: &str, wallet: &[u8; 32]) -> Result<(), RegistryError> {
    let key = format!("bridge.registry.nodes[{index}].address");
    let addr: libp2p::Multiaddr = address.parse().map_err(|e| {
        RegistryError::Config(format!(
            "{key} = {address:?} is not a multiaddr ({e}); write e.g. \"/ip4/10.0.0.2/tcp/4001\" or \
             \"/dns4/node.example.org/tcp/4001\""
        ))
    })?;
    // (A wallet that is not an ed25519 key never matches a PeerId; it is refused at the gate.)
    if let Some(peer) = crate::identity::peer_of(wallet)
        && crate::addr::with_peer(addr, peer).is_none()
    {
        return Err(RegistryError::Config(format!(
            "{key} = {address:?} names another peer than this entry's wallet ({peer}); drop the /p2p/... part"
        )));
    }
    Ok(())
}

impl Registry for StaticRegistry {
    fn backend(&self) -> &'static str {
        "static"
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<NodeEntry>, RegistryError>> {
        Box::pin(std::future::ready(Ok(self.snapshot())))
    }

    fn lookup(&self, wallet: [u8; 32]) -> BoxFuture<'_, Result<Option<NodeEntry>, RegistryError>> {
        Box::pin(std::future::ready(Ok(self.find(&wallet))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(wallet: [u8; 32]) -> StaticNode {
        StaticNode { wallet: bs58::encode(wallet).into_string(), address: String::new(), active: true }
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let wallet = bs58::encode([1u8; 32]).into_string();
        let parsed: StaticNode = serde_json::from_value(serde_json::json!({ "wallet": wallet })).unwrap();
        assert!(parsed.active);
        assert_eq!(parsed.address, "");
        let err = serde_json::from_value::<StaticNode>(serde_json::json!({ "wallet": wallet, "domain": "x" }))
            .unwrap_err()
            .to_string();
        assert!(err.contains("domain"), "{err}");
    }

    #[tokio::test]
    async fn list_lookup_and_set() {
        let nodes = vec![
            StaticNode { address: "/dns4/a.example/tcp/4001".into(), ..node([1; 32]) },
            StaticNode { active: false, ..node([2; 32]) },
        ];
        let registry = StaticRegistry::from_config(&nodes).unwrap();
        assert_eq!(registry.backend(), "static");
        let first = NodeEntry { wallet: [1; 32], domain: "/dns4/a.example/tcp/4001".into(), online: 0, active: true };
        let second = NodeEntry { wallet: [2; 32], domain: String::new(), online: 0, active: false };
        assert_eq!(registry.list().await.unwrap(), vec![first.clone(), second.clone()]);
        assert_eq!(registry.lookup([1; 32]).await.unwrap(), Some(first.clone()));
        assert_eq!(registry.lookup([2; 32]).await.unwrap(), Some(second));
        assert_eq!(registry.lookup([3; 32]).await.unwrap(), None);

        // Revoke the first node, drop the second.
        let revoked = NodeEntry { active: false, ..first };
        registry.set(vec![revoked.clone()]);
        assert_eq!(registry.list().await.unwrap(), vec![revoked.clone()]);
        assert_eq!(registry.lookup([1; 32]).await.unwrap(), Some(revoked));
        assert_eq!(registry.lookup([2; 32]).await.unwrap(), None);
    }

    #[test]
    fn from_config_errors_name_the_entry() {
        let err = |nodes: &[StaticNode]| StaticRegistry::from_config(nodes).unwrap_err().to_string();

        let text = err(&[node([1; 32]), StaticNode { wallet: "not base58 0".into(), ..node([2; 32]) }]);
        assert!(text.starts_with("bridge.registry.nodes[1].wallet = \"not base58 0\""), "{text}");
        assert!(text.contains("base58"), "{text}");

        let short = bs58::encode([1u8; 20]).into_string();
        let text = err(&[StaticNode { wallet: short, ..node([2; 32]) }]);
        assert!(text.starts_with("bridge.registry.nodes[0].wallet") && text.contains("20 bytes"), "{text}");

        let text = err(&[node([1; 32]), StaticNode { address: "nonsense address".into(), ..node([2; 32]) }]);
        assert!(
            text.starts_with("bridge.registry.nodes[1].address = \"nonsense address\" is not a multiaddr"),
            "{text}"
        );
        assert!(text.contains("/ip4/10.0.0.2/tcp/4001"), "an example: {text}");
        let text = err(&[StaticNode { address: "10.0.0.2:4001".into(), ..node([2; 32]) }]);
        assert!(text.starts_with("bridge.registry.nodes[0].address"), "{text}");
        let key = |_| libp2p::identity::Keypair::generate_ed25519().public().to_peer_id();
        let (mine, other) = (key(0), key(1));
        let wallet = crate::identity::wallet_of(&mine).unwrap();
        let ok = StaticNode { address: format!("/ip4/10.0.0.2/tcp/1/p2p/{mine}"), ..node(wallet) };
        StaticRegistry::from_config(&[ok]).expect("its own PeerId is fine");
        let text = err(&[StaticNode { address: format!("/ip4/10.0.0.2/tcp/1/p2p/{other}"), ..node(wallet) }]);
        assert!(text.contains("names another peer"), "{text}");

        let text = err(&[node([1; 32]), node([2; 32]), node([1; 32])]);
        assert!(text.starts_with("bridge.registry.nodes[2].wallet") && text.contains("nodes[0]"), "{text}");

        assert_eq!(
            futures_util::FutureExt::now_or_never(StaticRegistry::from_config(&[]).unwrap().list()).unwrap().unwrap(),
            vec![]
        );
    }
}
