//! The node's state as `/health` and the metrics show it: peers, readiness, registry health.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};

use crate::authorize::Authorizer;
use crate::metrics as m;

pub struct Status {
    network: String,
    peer_id: PeerId,
    wallet: String,
    authorizer: Arc<Authorizer>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    peers: Vec<String>,
    listen: Vec<String>,
}

impl Status {
    pub fn new(network: &str, peer_id: PeerId, wallet: String, authorizer: Arc<Authorizer>) -> Self {
        metrics::gauge!(m::PEERS).set(0.0);
        metrics::gauge!(m::READY).set(0.0);
        Self { network: network.into(), peer_id, wallet, authorizer, inner: Mutex::default() }
    }

    pub fn set_peers(&self, peers: &HashSet<PeerId>) {
        let mut inner = self.inner.lock().expect("status lock");
        inner.peers = peers.iter().map(|p| p.to_string()).collect();
        inner.peers.sort();
        metrics::gauge!(m::PEERS).set(peers.len() as f64);
        metrics::gauge!(m::READY).set(if peers.is_empty() { 0.0 } else { 1.0 });
    }

    pub fn add_listen(&self, addr: &Multiaddr) {
        self.inner.lock().expect("status lock").listen.push(addr.to_string());
    }

    /// Whether `peer` is among the connected peers.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        let peer = peer.to_string();
        self.inner.lock().expect("status lock").peers.contains(&peer)
    }

    /// This node's wallet (base58).
    pub fn wallet(&self) -> &str {
        &self.wallet
    }

    /// The network name (`bridge.network`).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Ready once at least one authorized peer is connected.
    pub fn ready(&self) -> bool {
        !self.inner.lock().expect("status lock").peers.is_empty()
    }

    pub fn json(&self) -> Value {
        let inner = self.inner.lock().expect("status lock");
        json!({
            "network": self.network,
            "peer_id": self.peer_id.to_string(),
            "wallet": self.wallet,
            "ready": !inner.peers.is_empty(),
            "peers": inner.peers,
            "listen": inner.listen,
            "registry": self.authorizer.status(),
        })
    }
}
