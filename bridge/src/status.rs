//! The node's state as `/health`, `/federation/*` and the metrics show it: peers (with when
//! each was last seen), readiness, registry health and entries.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Most peers remembered after they disconnect (the connected ones are always kept); the
/// longest-gone are forgotten first.
pub const MAX_REMEMBERED_PEERS: usize = 1024;
/// Most rows in one `/federation/*` answer (peers or registry entries); the rest is cut and
/// the answer says `truncated`.
pub const MAX_LISTED: usize = 1000;

#[derive(Default)]
struct Inner {
    peers: Vec<String>,
    listen: Vec<String>,
    /// Every peer seen since start (bounded by [`MAX_REMEMBERED_PEERS`]), by PeerId.
    seen: HashMap<PeerId, Seen>,
}

/// When a peer connected and was last seen (unix seconds).
#[derive(Clone, Copy)]
struct Seen {
    connected_since: Option<u64>,
    last_seen: u64,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Status {
    pub fn new(network: &str, peer_id: PeerId, wallet: String, authorizer: Arc<Authorizer>) -> Self {
        metrics::gauge!(m::PEERS).set(0.0);
        metrics::gauge!(m::READY).set(0.0);
        Self { network: network.into(), peer_id, wallet, authorizer, inner: Mutex::default() }
    }

    pub fn set_peers(&self, peers: &HashSet<PeerId>) {
        let now = unix_now();
        let mut inner = self.inner.lock().expect("status lock");
        inner.peers = peers.iter().map(|p| p.to_string()).collect();
        inner.peers.sort();
        for seen in inner.seen.values_mut() {
            if seen.connected_since.is_some() {
                seen.last_seen = now;
            }
        }
        for (peer, seen) in inner.seen.iter_mut() {
            if !peers.contains(peer) {
                seen.connected_since = None;
            }
        }
        for peer in peers {
            let seen = inner.seen.entry(*peer).or_insert(Seen { connected_since: None, last_seen: now });
            seen.connected_since.get_or_insert(now);
            seen.last_seen = now;
        }
        if inner.seen.len() > MAX_REMEMBERED_PEERS {
            let mut gone: Vec<(u64, PeerId)> = inner
                .seen
                .iter()
                .filter(|(_, s)| s.connected_since.is_none())
                .map(|(p, s)| (s.last_seen, *p))
                .collect();
            gone.sort();
            let excess = inner.seen.len() - MAX_REMEMBERED_PEERS;
            for (_, peer) in gone.into_iter().take(excess) {
                inner.seen.remove(&peer);
            }
        }
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

    /// This node (identity, network, readiness, listen addresses) and every peer seen since
    /// start: wallet, PeerId, whether connected now, since when, last seen (unix seconds; now
    /// for a connected peer), registry standing. At most [`MAX_LISTED`] peers, connected first.
    pub fn peers_json(&self) -> Value {
        let now = unix_now();
        let inner = self.inner.lock().expect("status lock");
        let mut rows: Vec<(PeerId, Seen)> = inner.seen.iter().map(|(p, s)| (*p, *s)).collect();
        rows.sort_by(|a, b| {
            (b.1.connected_since.is_some(), b.1.last_seen, b.0.to_string()).cmp(&(
                a.1.connected_since.is_some(),
                a.1.last_seen,
                a.0.to_string(),
            ))
        });
        let truncated = rows.len() > MAX_LISTED;
        let peers: Vec<Value> = rows
            .into_iter()
            .take(MAX_LISTED)
            .map(|(peer, seen)| {
                let wallet = crate::identity::wallet_of(&peer);
                json!({
                    "peer_id": peer.to_string(),
                    "wallet": wallet.map(|w| bs58::encode(w).into_string()),
                    "online": seen.connected_since.is_some(),
                    "connected_since": seen.connected_since,
                    "last_seen": if seen.connected_since.is_some() { now } else { seen.last_seen },
                    "registry": wallet.map(|w| self.authorizer.standing(&w)),
                })
            })
            .collect();
        json!({
            "node": {
                "network": self.network,
                "peer_id": self.peer_id.to_string(),
                "wallet": self.wallet,
                "ready": !inner.peers.is_empty(),
                "listen": inner.listen,
            },
            "now": now,
            "peers": peers,
            "truncated": truncated,
        })
    }

    /// The registry's health (backend, last refresh, staleness) and its entries as this node
    /// holds them: wallet, PeerId, active, the registry's `online` field, whether the node is
    /// connected to it now and when it was last seen. At most [`MAX_LISTED`] entries, by wallet.
    pub fn registry_json(&self) -> Value {
        let now = unix_now();
        let mut entries = self.authorizer.registry_entries();
        entries.sort_by_key(|e| e.wallet);
        let truncated = entries.len() > MAX_LISTED;
        let inner = self.inner.lock().expect("status lock");
        let rows: Vec<Value> = entries
            .into_iter()
            .take(MAX_LISTED)
            .map(|e| {
                let peer = crate::identity::peer_of(&e.wallet);
                let seen = peer.and_then(|p| inner.seen.get(&p).copied());
                let connected = seen.is_some_and(|s| s.connected_since.is_some());
                json!({
                    "wallet": e.wallet_base58(),
                    "peer_id": peer.map(|p| p.to_string()),
                    "active": e.active,
                    "online": e.online,
                    "domain": e.domain,
                    "connected": connected,
                    "last_seen": seen.map(|s| if connected { now } else { s.last_seen }),
                    "self": e.wallet_base58() == self.wallet,
                })
            })
            .collect();
        let status = self.authorizer.status();
        let age = status.last_refresh.map(|t| now.saturating_sub(t));
        json!({
            "network": self.network,
            "status": status,
            "refresh_age_secs": age,
            "now": now,
            "entries": rows,
            "truncated": truncated,
        })
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::identity::wallet_of;
    use crate::registry::{NodeEntry, StaticRegistry};

    fn peer() -> (PeerId, [u8; 32]) {
        let peer = libp2p::identity::Keypair::generate_ed25519().public().to_peer_id();
        (peer, wallet_of(&peer).unwrap())
    }

    #[tokio::test]
    async fn peers_and_registry_entries_with_last_seen() {
        let (me, my_wallet) = peer();
        let (b, b_wallet) = peer();
        let (c, c_wallet) = peer();
        let entries = vec![
            NodeEntry { wallet: my_wallet, domain: "/ip4/127.0.0.1/tcp/1".into(), online: 1, active: true },
            NodeEntry { wallet: b_wallet, domain: "/ip4/127.0.0.1/tcp/2".into(), online: 1, active: true },
            NodeEntry { wallet: c_wallet, domain: String::new(), online: 0, active: false },
        ];
        let (auth, _rx) = Authorizer::new(Arc::new(StaticRegistry::new(entries)), Duration::from_secs(60));
        auth.refresh().await.unwrap();
        let status = Status::new("net", me, bs58::encode(my_wallet).into_string(), auth);

        status.set_peers(&HashSet::from([b, c]));
        let peers = status.peers_json();
        assert_eq!(peers["node"]["ready"], true);
        let list = peers["peers"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|p| p["online"] == true && p["last_seen"] == peers["now"]));
        let standing = |w: [u8; 32]| {
            let w = bs58::encode(w).into_string();
            list.iter().find(|p| p["wallet"] == w).unwrap()["registry"].clone()
        };
        assert_eq!((standing(b_wallet), standing(c_wallet)), (json!("active"), json!("inactive")));

        // B leaves: still listed, offline, last seen when it left; connected peers first.
        status.set_peers(&HashSet::from([c]));
        let peers = status.peers_json();
        let list = peers["peers"].as_array().unwrap();
        assert_eq!(list[0]["peer_id"], c.to_string());
        assert_eq!(list[1]["peer_id"], b.to_string());
        assert_eq!(list[1]["online"], false);
        assert_eq!(list[1]["connected_since"], Value::Null);
        assert!(list[1]["last_seen"].as_u64().unwrap() <= peers["now"].as_u64().unwrap());

        let reg = status.registry_json();
        assert_eq!(reg["status"]["authorized_nodes"], 2);
        let rows = reg["entries"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let row = |w: [u8; 32]| rows.iter().find(|r| r["wallet"] == bs58::encode(w).into_string()).unwrap().clone();
        assert_eq!(row(my_wallet)["self"], true);
        assert_eq!((row(b_wallet)["active"].clone(), row(b_wallet)["connected"].clone()), (json!(true), json!(false)));
        assert!(row(b_wallet)["last_seen"].is_u64());
        assert_eq!((row(c_wallet)["active"].clone(), row(c_wallet)["connected"].clone()), (json!(false), json!(true)));
    }

    #[tokio::test]
    async fn remembered_peers_are_bounded() {
        let (auth, _rx) = Authorizer::new(Arc::new(StaticRegistry::new(vec![])), Duration::from_secs(60));
        let (me, my_wallet) = peer();
        let status = Status::new("net", me, bs58::encode(my_wallet).into_string(), auth);
        for _ in 0..MAX_REMEMBERED_PEERS + 10 {
            status.set_peers(&HashSet::from([peer().0]));
        }
        let peers = status.peers_json();
        assert_eq!(status.inner.lock().unwrap().seen.len(), MAX_REMEMBERED_PEERS);
        assert_eq!(peers["peers"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(peers["truncated"], true);
        assert_eq!(peers["peers"][0]["online"], true, "the connected peer comes first");
    }
}
