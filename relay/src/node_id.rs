//! `dephy-relay node-id`: what an operator needs to know about this node before and after the
//! first start of a federated relay: the wallet to register, the PeerId, and the bootstrap
//! multiaddrs other operators put in their `bridge.bootstrap`.
//!
//! The keypair is the one `serve` uses (`bridge.keypair_file`, created with its parent
//! directories if absent, relative paths from the working directory as for `serve`). Listen
//! addresses on an unspecified IP (`0.0.0.0`, `::`) are not dialable, so they are replaced by
//! `bridge.external_addresses` where given, and otherwise printed with a note saying so.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use dephy_bridge::BridgeConfig;
use dephy_bridge::identity::NodeIdentity;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde_json::json;

use crate::config::Config;

/// What `node-id` prints.
#[derive(Debug)]
pub struct NodeInfo {
    pub wallet: String,
    pub peer_id: String,
    pub network: String,
    pub keypair_file: PathBuf,
    /// The keypair file was created by this call.
    pub created: bool,
    /// Dialable addresses with `/p2p/<peer id>`, for other nodes' `bridge.bootstrap`.
    pub bootstrap: Vec<String>,
    /// Listen addresses that cannot be given to others as they are (unspecified IP).
    pub unspecified: Vec<String>,
    /// The configuration has no `[bridge]` section (defaults were used).
    pub no_bridge_section: bool,
}

/// Loads (or creates) the node identity named by `cfg` and describes it.
pub fn describe(cfg: &Config) -> anyhow::Result<NodeInfo> {
    let (bridge, no_bridge_section) = match &cfg.bridge {
        Some(b) => (b.clone(), false),
        None => (default_bridge(), true),
    };
    let addrs = bridge.validate()?;
    let created = !bridge.keypair_file.exists();
    let identity = NodeIdentity::load_or_create(&bridge.keypair_file)?;
    let peer = identity.peer_id();
    let with_peer = |addr: &Multiaddr| -> String {
        let mut a = addr.clone();
        if !matches!(a.iter().last(), Some(Protocol::P2p(_))) {
            a.push(Protocol::P2p(peer));
        }
        a.to_string()
    };
    let mut bootstrap: Vec<String> = addrs.external.iter().map(with_peer).collect();
    let mut unspecified = Vec::new();
    for addr in &addrs.listen {
        if is_unspecified(addr) {
            unspecified.push(with_peer(addr));
        } else {
            bootstrap.push(with_peer(addr));
        }
    }
    bootstrap.dedup();
    Ok(NodeInfo {
        wallet: identity.wallet_base58(),
        peer_id: peer.to_string(),
        network: bridge.network.clone(),
        keypair_file: bridge.keypair_file.clone(),
        created,
        bootstrap,
        unspecified,
        no_bridge_section,
    })
}

/// Runs the subcommand: prints to stdout (text or JSON), notes to stderr.
pub fn run(config: Option<&Path>, as_json: bool) -> anyhow::Result<()> {
    let cfg = match config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let info = describe(&cfg)?;
    if as_json {
        let body = json!({
            "wallet": info.wallet,
            "peer_id": info.peer_id,
            "network": info.network,
            "keypair_file": info.keypair_file,
            "created": info.created,
            "bootstrap": info.bootstrap,
            "unspecified_listen": info.unspecified,
        });
        println!("{}", serde_json::to_string_pretty(&body).context("cannot encode JSON")?);
    } else {
        println!("wallet     {}", info.wallet);
        println!("peer_id    {}", info.peer_id);
        println!("network    {}", info.network);
        for addr in &info.bootstrap {
            println!("bootstrap  {addr}");
        }
        for addr in &info.unspecified {
            println!("listen     {addr}");
        }
    }
    if info.no_bridge_section {
        eprintln!(
            "note: {} has no [bridge] section: federation is off; these are the defaults (keypair {})",
            config.map_or_else(|| "the default configuration".to_string(), |p| p.display().to_string()),
            info.keypair_file.display()
        );
    }
    if info.created {
        eprintln!(
            "note: created the node keypair {} (keep it: it is this node's identity)",
            info.keypair_file.display()
        );
    }
    eprintln!("note: register wallet {} as an active node in the registry so that peers accept this node", info.wallet);
    if !info.unspecified.is_empty() {
        eprintln!(
            "note: the listen addresses above bind all interfaces; give other nodes this host's address in their place, \
             or list it in bridge.external_addresses (e.g. \"/ip4/203.0.113.7/tcp/4001\")"
        );
    }
    Ok(())
}

fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip == Ipv4Addr::UNSPECIFIED,
        Protocol::Ip6(ip) => ip == Ipv6Addr::UNSPECIFIED,
        _ => false,
    })
}

/// The `[bridge]` defaults, for a configuration without the section.
fn default_bridge() -> BridgeConfig {
    toml::from_str("[registry]\nbackend = \"static\"\n").expect("the default bridge section parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_keypair_and_lists_dialable_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let keypair = dir.path().join("nested/dir/node.json");
        let text = format!(
            r#"
[bridge]
network = "test-net"
keypair_file = "{}"
listen = ["/ip4/127.0.0.1/tcp/4101", "/ip4/0.0.0.0/udp/4101/quic-v1"]
external_addresses = ["/dns4/node.example.org/tcp/4101"]
[bridge.registry]
backend = "static"
"#,
            keypair.display()
        );
        let cfg: Config = toml::from_str(&text).unwrap();
        let first = describe(&cfg).unwrap();
        assert!(first.created && keypair.exists(), "keypair and its parent directories created");
        let again = describe(&cfg).unwrap();
        assert!(!again.created);
        assert_eq!((again.wallet.as_str(), again.peer_id.as_str()), (first.wallet.as_str(), first.peer_id.as_str()));
        let peer = &first.peer_id;
        assert_eq!(
            first.bootstrap,
            vec![format!("/dns4/node.example.org/tcp/4101/p2p/{peer}"), format!("/ip4/127.0.0.1/tcp/4101/p2p/{peer}")]
        );
        assert_eq!(first.unspecified, vec![format!("/ip4/0.0.0.0/udp/4101/quic-v1/p2p/{peer}")]);
        // The PeerId embeds the wallet.
        let wallet = dephy_bridge::identity::wallet_of(&peer.parse().unwrap()).unwrap();
        assert_eq!(bs58::encode(wallet).into_string(), first.wallet);
    }
}
