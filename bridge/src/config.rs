//! The `[bridge]` section of the relay's configuration.
//!
//! ```toml
//! [bridge]
//! network = "dephy-mainnet"                 # part of every topic and protocol id
//! keypair_file = "data/node-keypair.json"   # Solana keypair = libp2p identity (created if absent)
//! listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
//! bootstrap = ["/dns/seed.example.org/tcp/4001/p2p/12D3KooW..."]
//! retry_secs = 3                            # first redial delay of an unreachable address...
//! retry_max_secs = 120                      # ...doubling (with jitter) up to this
//! registry_max_shrink_percent = 50          # a refresh dropping more of the set is suspect...
//! registry_shrink_confirmations = 3         # ...until confirmed, or seen this many times in a row
//! catchup_window_secs = 86400               # how far back peers reconcile on (re)connect
//! sync_max_items = 20000                    # most events in one reconciled slice (memory bound)
//! sync_sessions_per_peer = 2                # catch-up requests of one peer answered at a time
//! sync_max_sessions = 8                     # catch-up requests answered at a time, in all
//!
//! [bridge.registry]
//! backend = "solana"                        # or "static" with nodes = [{ wallet = "...", address = "..." }]
//! rpc_urls = ["https://api.devnet.solana.com", "https://rpc.example.org"]
//! program_id = "..."
//! registry = "..."
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use libp2p::Multiaddr;
use serde::Deserialize;

use crate::registry::solana::SolanaRegistryConfig;
use crate::registry::static_list::StaticNode;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Network name: nodes of different networks never exchange events.
    #[serde(default = "default_network")]
    pub network: String,
    /// Solana keypair JSON file (64-byte array); the node's wallet and libp2p identity.
    #[serde(default = "default_keypair_file")]
    pub keypair_file: PathBuf,
    /// libp2p listen addresses (TCP and QUIC).
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Addresses this node announces to peers besides what it observes (e.g. a public IP).
    #[serde(default)]
    pub external_addresses: Vec<String>,
    /// Bootstrap peers, in addition to the registry's `domain` addresses.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Circuit relay (v2) servers to reserve a slot on, for a node behind NAT
    /// (`/ip4/.../tcp/4001/p2p/<relay peer id>`); peers then reach it through them and
    /// upgrade to a direct connection with DCUtR where possible.
    #[serde(default)]
    pub relays: Vec<String>,
    /// Seconds between refreshes of the authorized set from the registry.
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u64,
    /// First delay before redialling an address that failed (or whose peer refused us); it
    /// doubles, with jitter, on each further failure up to `retry_max_secs`.
    #[serde(default = "default_retry_secs")]
    pub retry_secs: u64,
    /// Longest delay between redials of one address.
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// A registry refresh that would drop more than this percentage of the authorized set is
    /// held back as suspect (100: never).
    #[serde(default = "default_max_shrink_percent")]
    pub registry_max_shrink_percent: u8,
    /// A suspect shrink is accepted when another RPC endpoint gives the same answer, or after
    /// this many consecutive refreshes (1: at once).
    #[serde(default = "default_shrink_confirmations")]
    pub registry_shrink_confirmations: u32,
    /// How far back (seconds of `created_at`) two nodes reconcile when they (re)connect.
    #[serde(default = "default_catchup_window_secs")]
    pub catchup_window_secs: u64,
    /// Most events in one catch-up slice's inventory, on either side: a slice holding more is
    /// split (by time, then by id), so a session's memory is bounded by this whatever the gap.
    #[serde(default = "default_sync_max_items")]
    pub sync_max_items: usize,
    /// Catch-up requests of one peer answered at a time (more: `rate-limited:`).
    #[serde(default = "default_sync_sessions_per_peer")]
    pub sync_sessions_per_peer: usize,
    /// Catch-up requests answered at a time, all peers together (more: `rate-limited:`).
    #[serde(default = "default_sync_max_sessions")]
    pub sync_max_sessions: usize,
    /// Port assumed for registry domains that name none.
    #[serde(default = "default_port")]
    pub default_port: u16,
    pub registry: RegistryConfig,
}

/// Where the authorized node list comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum RegistryConfig {
    /// A fixed list, for local development.
    Static {
        #[serde(default)]
        nodes: Vec<StaticNode>,
    },
    /// Node entries of a registry program on Solana.
    Solana(SolanaRegistryConfig),
}

fn default_network() -> String {
    "dephy".into()
}
fn default_keypair_file() -> PathBuf {
    PathBuf::from("data/node-keypair.json")
}
fn default_listen() -> Vec<String> {
    vec!["/ip4/0.0.0.0/tcp/4001".into(), "/ip4/0.0.0.0/udp/4001/quic-v1".into()]
}
fn default_refresh_secs() -> u64 {
    30
}
fn default_retry_secs() -> u64 {
    3
}
fn default_retry_max_secs() -> u64 {
    120
}
fn default_max_shrink_percent() -> u8 {
    crate::authorize::DEFAULT_MAX_SHRINK_PERCENT
}
fn default_shrink_confirmations() -> u32 {
    crate::authorize::DEFAULT_SHRINK_CONFIRMATIONS
}
fn default_catchup_window_secs() -> u64 {
    24 * 3600
}
fn default_sync_max_items() -> usize {
    20_000
}
fn default_sync_sessions_per_peer() -> usize {
    2
}
fn default_sync_max_sessions() -> usize {
    8
}
fn default_port() -> u16 {
    4001
}

/// Parsed, checked addresses.
pub struct Addresses {
    pub listen: Vec<Multiaddr>,
    pub external: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub relays: Vec<Multiaddr>,
}

impl BridgeConfig {
    /// Checks the values serde cannot, with errors that name the key.
    pub fn validate(&self) -> anyhow::Result<Addresses> {
        if self.network.is_empty()
            || self.network.len() > 64
            || !self.network.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            bail!("bridge.network {:?}: use 1-64 characters from a-z, A-Z, 0-9, '-', '_' and '.'", self.network);
        }
        if self.refresh_secs == 0 || self.retry_secs == 0 {
            bail!("bridge.refresh_secs and bridge.retry_secs must be at least 1");
        }
        if self.retry_max_secs < self.retry_secs {
            bail!(
                "bridge.retry_max_secs = {} is below bridge.retry_secs = {}: the longest redial delay must be at least the first",
                self.retry_max_secs,
                self.retry_secs
            );
        }
        if !(1..=100).contains(&self.registry_max_shrink_percent) {
            bail!(
                "bridge.registry_max_shrink_percent = {}: use 1 to 100 (100 turns the shrink guard off)",
                self.registry_max_shrink_percent
            );
        }
        if self.registry_shrink_confirmations == 0 {
            bail!("bridge.registry_shrink_confirmations must be at least 1 (1 accepts a large shrink at once)");
        }
        if self.sync_max_items < 16 || self.sync_max_items > 10_000_000 {
            bail!("bridge.sync_max_items = {}: use 16 to 10000000 (default 20000)", self.sync_max_items);
        }
        if self.sync_sessions_per_peer == 0 || self.sync_max_sessions < self.sync_sessions_per_peer {
            bail!(
                "bridge.sync_sessions_per_peer ({}) must be at least 1 and at most bridge.sync_max_sessions ({})",
                self.sync_sessions_per_peer,
                self.sync_max_sessions
            );
        }
        let parse = |key: &str, list: &[String]| -> anyhow::Result<Vec<Multiaddr>> {
            list.iter()
                .map(|s| {
                    s.parse::<Multiaddr>().with_context(|| {
                        format!("bridge.{key}: {s:?} is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/4001)")
                    })
                })
                .collect()
        };
        let listen = parse("listen", &self.listen)?;
        if listen.is_empty() {
            bail!("bridge.listen is empty: give at least one address, e.g. \"/ip4/0.0.0.0/tcp/4001\"");
        }
        Ok(Addresses {
            listen,
            external: parse("external_addresses", &self.external_addresses)?,
            bootstrap: parse("bootstrap", &self.bootstrap)?,
            relays: parse("relays", &self.relays)?,
        })
    }

    pub fn refresh_interval(&self) -> Duration {
        Duration::from_secs(self.refresh_secs)
    }

    pub fn retry_interval(&self) -> Duration {
        Duration::from_secs(self.retry_secs)
    }

    pub fn retry_max(&self) -> Duration {
        Duration::from_secs(self.retry_max_secs)
    }

    pub fn shrink_guard(&self) -> crate::authorize::ShrinkGuard {
        crate::authorize::ShrinkGuard {
            max_shrink_percent: self.registry_max_shrink_percent,
            confirmations: self.registry_shrink_confirmations,
        }
    }

    pub fn sync_limits(&self) -> crate::sync::SyncLimits {
        crate::sync::SyncLimits {
            window_secs: self.catchup_window_secs,
            max_items: self.sync_max_items,
            sessions_per_peer: self.sync_sessions_per_peer,
            max_sessions: self.sync_max_sessions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_config_parses_and_validates() {
        let cfg: BridgeConfig = toml::from_str(
            r#"
            network = "test-net"
            listen = ["/ip4/127.0.0.1/tcp/0"]
            [registry]
            backend = "static"
            nodes = [{ wallet = "11111111111111111111111111111111", address = "/ip4/127.0.0.1/tcp/1" }]
            "#,
        )
        .unwrap();
        assert!(matches!(cfg.registry, RegistryConfig::Static { ref nodes } if nodes.len() == 1));
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut cfg: BridgeConfig = toml::from_str("[registry]\nbackend = \"static\"\n").unwrap();
        cfg.network = "has space".into();
        assert!(cfg.validate().err().unwrap().to_string().contains("bridge.network"));
        cfg.network = "ok".into();
        cfg.bootstrap = vec!["not-an-addr".into()];
        assert!(cfg.validate().err().unwrap().to_string().contains("bridge.bootstrap"));
        cfg.bootstrap = vec![];
        cfg.retry_max_secs = 1;
        assert!(cfg.validate().err().unwrap().to_string().contains("bridge.retry_max_secs"));
        cfg.retry_max_secs = 120;
        cfg.registry_max_shrink_percent = 0;
        assert!(cfg.validate().err().unwrap().to_string().contains("bridge.registry_max_shrink_percent"));
        cfg.registry_max_shrink_percent = 50;
        cfg.registry_shrink_confirmations = 0;
        assert!(cfg.validate().err().unwrap().to_string().contains("bridge.registry_shrink_confirmations"));
        cfg.registry_shrink_confirmations = 3;
        cfg.validate().unwrap();
        cfg.bootstrap.clear();
        cfg.sync_max_items = 0;
        assert!(cfg.validate().err().unwrap().to_string().contains("bridge.sync_max_items"));
        cfg.sync_max_items = 100;
        cfg.sync_sessions_per_peer = 9;
        assert!(cfg.validate().err().unwrap().to_string().contains("bridge.sync_sessions_per_peer"));
        let err = toml::from_str::<BridgeConfig>("[registry]\nbackend = \"carrier-pigeon\"\n").err().unwrap();
        assert!(err.to_string().contains("carrier-pigeon"), "{err}");
    }
}
