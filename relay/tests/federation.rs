//! Federation, end to end: real `dephy-relay` processes on 127.0.0.1 federated by their
//! in-process bridges (libp2p over TCP), gated by a node registry in the dTelecom account
//! layout served by a real Solana JSON-RPC server (an offline surfpool from npm, seeded with
//! `surfnet_setAccount`; see bridge/tests/support). Some tests drive a raw libp2p peer built
//! with the bridge's own `network::build_swarm` to send what an honest node never would.
//! Every wait is bounded.

#[macro_use]
mod common;
#[path = "../../bridge/tests/support/registry_seed.rs"]
mod registry_seed;
#[path = "../../bridge/tests/support/surfpool.rs"]
mod surfpool;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use dephy_bridge::identity::NodeIdentity;
use dephy_bridge::registry::NodeEntry;
use dephy_bridge::slice::Slice;
use dephy_bridge::sync::{SyncRequest, SyncResponse};
use nostr::prelude::*;
use registry_seed::RegistrySeed;
use serde_json::{Value, json};
use surfpool::Surfpool;

/// Longest a mirrored event may take to show up in a test (generous: shared, noisy machine).
const PROPAGATION: Duration = Duration::from_secs(20);
/// Longest a set of nodes may take to connect.
const CONNECT: Duration = Duration::from_secs(30);

/// One federated relay's identity and addresses, chosen before it starts.
struct Node {
    name: String,
    keypair: PathBuf,
    wallet: [u8; 32],
    p2p_port: u16,
    quic_port: u16,
}

impl Node {
    fn new(dir: &tempfile::TempDir, name: &str) -> Node {
        let keypair = dir.path().join(format!("{name}-keypair.json"));
        let id = NodeIdentity::load_or_create(&keypair).expect("create node keypair");
        let quic_port = free_port();
        Node { name: name.into(), keypair, wallet: id.wallet, p2p_port: free_port(), quic_port }
    }

    fn addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port)
    }

    fn addr_with_peer(&self) -> String {
        let peer = dephy_bridge::identity::peer_of(&self.wallet).unwrap();
        format!("{}/p2p/{peer}", self.addr())
    }

    fn quic_addr_with_peer(&self) -> String {
        let peer = dephy_bridge::identity::peer_of(&self.wallet).unwrap();
        format!("/ip4/127.0.0.1/udp/{}/quic-v1/p2p/{peer}", self.quic_port)
    }

    fn entry(&self, active: bool) -> NodeEntry {
        NodeEntry { wallet: self.wallet, domain: self.addr(), online: 1, active }
    }

    /// The relay config: a `[bridge]` on `network`, registry section `registry` (TOML body).
    fn config(&self, network: &str, registry: &str, bootstrap: &[String]) -> String {
        self.config_with(network, registry, bootstrap, "")
    }

    /// [`Node::config`] with more `[bridge]` keys (TOML lines).
    fn config_with(&self, network: &str, registry: &str, bootstrap: &[String], extra: &str) -> String {
        format!(
            r#"
[bridge]
network = "{network}"
keypair_file = "{}"
listen = ["{}", "/ip4/127.0.0.1/udp/{}/quic-v1"]
bootstrap = {}
refresh_secs = 1
retry_secs = 1
{extra}

[bridge.registry]
{registry}
"#,
            self.keypair.display(),
            self.addr(),
            self.quic_port,
            serde_json::to_string(bootstrap).unwrap(),
        )
    }
}

/// A surfpool node with one registry.
struct Chain {
    surfpool: Surfpool,
    seed: RegistrySeed,
}

impl Chain {
    async fn new(label: &str) -> Chain {
        let surfpool = Surfpool::start();
        let seed = RegistrySeed::new(&format!("{label}-{:x}", rand::random::<u64>()));
        seed.create(&surfpool, "dephy-test").await;
        Chain { surfpool, seed }
    }

    async fn register(&self, node: &Node, active: bool) {
        self.seed.put_node(&self.surfpool, &node.entry(active)).await;
    }

    fn registry_toml(&self) -> String {
        format!(
            "backend = \"solana\"\nrpc_urls = [\"{}\"]\nprogram_id = \"{}\"\nregistry = \"{}\"\n",
            self.surfpool.rpc_url, self.seed.program, self.seed.registry
        )
    }
}

fn static_registry(nodes: &[&Node]) -> String {
    let list: Vec<String> = nodes
        .iter()
        .map(|n| format!("{{ wallet = \"{}\", address = \"{}\" }}", bs58::encode(n.wallet).into_string(), n.addr()))
        .collect();
    format!("backend = \"static\"\nnodes = [{}]\n", list.join(", "))
}

async fn start(backend: Backend, node: &Node, config: &str) -> (TestDb, Relay) {
    let db = TestDb::new(backend).await;
    let relay = Relay::spawn(&db, &node.name, config).await;
    (db, relay)
}

async fn bridge_status(relay: &Relay) -> Value {
    match http_get(relay.port, "/health", &[]).await {
        Ok(resp) if resp.status == 200 => resp.json()["bridge"].clone(),
        _ => Value::Null,
    }
}

/// Waits until `relay` is connected to at least `n` peers.
async fn wait_peers(relay: &Relay, n: usize) {
    let ok =
        eventually(CONNECT, || async { bridge_status(relay).await["peers"].as_array().map_or(0, Vec::len) >= n }).await;
    assert!(
        ok,
        "relay {} did not reach {n} peers: {}\n--- log ---\n{}",
        relay.port,
        bridge_status(relay).await,
        relay.log_tail(40)
    );
}

async fn metric(relay: &Relay, name: &str) -> f64 {
    let text = http_get(relay.port, "/metrics", &[]).await.map(|r| r.text()).unwrap_or_default();
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// Whether `relay` stores the event (bounded wait).
async fn holds(relay: &Relay, id: &EventId, timeout: Duration) -> bool {
    eventually(timeout, || async {
        let mut conn = relay.connect().await;
        !conn.req_ids("held", &[json!({"ids": [id.to_hex()]})]).await.is_empty()
    })
    .await
}

fn dephy_event(keys: &Keys, machine: &str, n: u64) -> Event {
    dephy(keys, &format!("{{\"Status\":{{\"n\":{n}}}}}"), &[&["s", "federation-test"], &["p", machine]], now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relays_mirror_events_to_subscribers_and_stores() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new("three").await;
    let (a, b, c) = (Node::new(&dir, "a"), Node::new(&dir, "b"), Node::new(&dir, "c"));
    for n in [&a, &b, &c] {
        chain.register(n, true).await;
    }
    let reg = chain.registry_toml();
    // No bootstrap lists: every node finds the others through the registry's domains.
    let (_da, ra) = start(Backend::Sqlite, &a, &a.config("fed", &reg, &[])).await;
    let (_db, rb) = start(Backend::Sqlite, &b, &b.config("fed", &reg, &[])).await;
    let (_dc, rc) = start(Backend::Sqlite, &c, &c.config("fed", &reg, &[])).await;
    for r in [&ra, &rb, &rc] {
        wait_peers(r, 2).await;
    }
    let health = bridge_status(&ra).await;
    assert_eq!(health["ready"], true);
    assert_eq!(health["registry"]["backend"], "solana");
    assert_eq!(health["registry"]["authorized_nodes"], 3);
    assert_eq!(health["wallet"], bs58::encode(a.wallet).into_string());

    // A subscriber on C, live.
    let machine = Keys::generate();
    let mut sub = rc.connect().await;
    sub.send_json(&json!(["REQ", "live", {"kinds": [1573], "#p": [pk(&machine)], "since": now() - 5}])).await;
    sub.recv_matching("EOSE", |m| m[0] == "EOSE").await;

    let device = Keys::generate();
    let event = dephy_event(&device, &pk(&machine), 1);
    let mut client = ra.connect().await;
    client.publish_ok(&event).await;

    let got = tokio::time::timeout(PROPAGATION, sub.next_event("live")).await.expect("event reached C's subscriber");
    assert_same_event(&got, &event);
    assert!(holds(&rb, &event.id, PROPAGATION).await, "B stores the event");
    assert!(holds(&rc, &event.id, PROPAGATION).await, "C stores the event");

    // Stored through the ingest path: it is a leaf of C's verifiable log.
    let entries = http_get(rc.port, "/log/entries?start=0&end=100", &[]).await.unwrap().json();
    let logged = entries["entries"].as_array().expect("entries").iter().any(|e| e["event_id"] == event.id.to_hex());
    assert!(logged, "the mirrored event is in C's log: {entries}");

    // Ephemeral events reach subscribers elsewhere but are stored nowhere.
    let mut eph_sub = rb.connect().await;
    eph_sub.send_json(&json!(["REQ", "eph", {"kinds": [20001]}])).await;
    eph_sub.recv_matching("EOSE", |m| m[0] == "EOSE").await;
    let eph = sign(&device, 20001, "ping", &[], None);
    client.publish_ok(&eph).await;
    let got = tokio::time::timeout(PROPAGATION, eph_sub.next_event("eph")).await.expect("ephemeral event reached B");
    assert_same_event(&got, &eph);
    assert!(!holds(&rb, &eph.id, Duration::from_millis(500)).await, "ephemeral events are not stored");

    // Loops end at the event id: each node stored the event once and published it at most once.
    assert_eq!(metric(&ra, "dephy_bridge_published_total").await, 2.0, "A published its two client events");
    assert_eq!(metric(&rb, "dephy_bridge_published_total").await, 0.0, "B re-published nothing");
    assert_eq!(metric(&rc, "dephy_bridge_published_total").await, 0.0, "C re-published nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_node_is_refused_and_its_events_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new("rogue").await;
    let (a, b, rogue) = (Node::new(&dir, "a"), Node::new(&dir, "b"), Node::new(&dir, "rogue"));
    chain.register(&a, true).await;
    chain.register(&b, true).await;
    // A registered but inactive entry is refused too.
    let (_dx, inactive) = (0, Node::new(&dir, "inactive"));
    chain.register(&inactive, false).await;
    let reg = chain.registry_toml();
    let (_da, ra) = start(Backend::Sqlite, &a, &a.config("fed", &reg, &[])).await;
    let (_db, rb) = start(Backend::Sqlite, &b, &b.config("fed", &reg, &[])).await;
    wait_peers(&ra, 1).await;

    // The rogue nodes believe everyone is authorized and dial A directly.
    let lenient = static_registry(&[&a, &b, &rogue, &inactive]);
    let (_dr, rr) = start(Backend::Sqlite, &rogue, &rogue.config("fed", &lenient, &[a.addr_with_peer()])).await;
    let (_di, ri) = start(Backend::Sqlite, &inactive, &inactive.config("fed", &lenient, &[a.addr_with_peer()])).await;
    let denied =
        eventually(CONNECT, || async { metric(&ra, "dephy_bridge_denied_connections_total").await >= 2.0 }).await;
    assert!(denied, "A refused the rogue connections; A log:\n{}", ra.log_tail(40));

    let device = Keys::generate();
    let from_rogue = dephy_event(&device, &pk(&Keys::generate()), 1);
    rr.connect().await.publish_ok(&from_rogue).await;
    ri.connect().await.publish_ok(&dephy_event(&device, &pk(&Keys::generate()), 2)).await;
    // Meanwhile the legitimate federation still works, so absence below is not a dead network.
    let legit = dephy_event(&device, &pk(&Keys::generate()), 3);
    ra.connect().await.publish_ok(&legit).await;
    assert!(holds(&rb, &legit.id, PROPAGATION).await);
    assert!(!holds(&ra, &from_rogue.id, Duration::from_secs(3)).await, "rogue event reached A");
    assert!(!holds(&rb, &from_rogue.id, Duration::from_secs(1)).await, "rogue event reached B");

    for r in [&ra, &rb] {
        let peers = bridge_status(r).await["peers"].clone();
        let rogue_peer = dephy_bridge::identity::peer_of(&rogue.wallet).unwrap().to_string();
        assert!(!peers.as_array().unwrap().iter().any(|p| p == &rogue_peer), "rogue is a peer: {peers}");
    }
    // The rogue nodes may only reach each other (both believe in the lenient list).
    let rogue_peers = bridge_status(&rr).await["peers"].clone();
    for n in [&a, &b] {
        let peer = dephy_bridge::identity::peer_of(&n.wallet).unwrap().to_string();
        assert!(!rogue_peers.as_array().unwrap().iter().any(|p| p == &peer), "{} accepted the rogue", n.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_node_is_disconnected_within_the_refresh_interval() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new("revoke").await;
    let (a, b) = (Node::new(&dir, "a"), Node::new(&dir, "b"));
    chain.register(&a, true).await;
    chain.register(&b, true).await;
    let reg = chain.registry_toml();
    let (_da, ra) = start(Backend::Sqlite, &a, &a.config("fed", &reg, &[])).await;
    let (_db, rb) = start(Backend::Sqlite, &b, &b.config("fed", &reg, &[])).await;
    wait_peers(&ra, 1).await;
    let device = Keys::generate();
    let before = dephy_event(&device, &pk(&Keys::generate()), 1);
    rb.connect().await.publish_ok(&before).await;
    assert!(holds(&ra, &before.id, PROPAGATION).await, "mirrored while authorized");

    // Deactivate B's entry (refresh_secs = 1): A drops it and refuses it from then on.
    chain.register(&b, false).await;
    let dropped = eventually(Duration::from_secs(10), || async {
        bridge_status(&ra).await["peers"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert!(dropped, "A still connected to B: {}\n{}", bridge_status(&ra).await, ra.log_tail(30));
    assert!(metric(&ra, "dephy_bridge_revoked_total").await >= 1.0);
    assert_eq!(bridge_status(&ra).await["registry"]["authorized_nodes"], 1);

    let after = dephy_event(&device, &pk(&Keys::generate()), 2);
    rb.connect().await.publish_ok(&after).await;
    assert!(!holds(&ra, &after.id, Duration::from_secs(4)).await, "a revoked node's event reached A");
    assert!(bridge_status(&ra).await["peers"].as_array().is_some_and(Vec::is_empty), "B reconnected after revocation");

    // Removing the entry entirely works the same; reactivating lets it back in.
    chain.register(&b, true).await;
    wait_peers(&ra, 1).await;
    assert!(holds(&ra, &after.id, PROPAGATION).await, "catch-up after re-authorization");
    chain.seed.remove_node(&chain.surfpool, &b.wallet).await;
    let dropped = eventually(Duration::from_secs(10), || async {
        bridge_status(&ra).await["peers"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert!(dropped, "A still connected to B after its entry was removed");
}

async fn partition_heals_with_catch_up(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new("partition").await;
    let (a, b, c) = (Node::new(&dir, "a"), Node::new(&dir, "b"), Node::new(&dir, "c"));
    for n in [&a, &b, &c] {
        chain.register(n, true).await;
    }
    let reg = chain.registry_toml();
    let (_da, ra) = start(backend, &a, &a.config("fed", &reg, &[])).await;
    let (db_b, mut rb) = start(backend, &b, &b.config("fed", &reg, &[])).await;
    let (_dc, rc) = start(backend, &c, &c.config("fed", &reg, &[])).await;
    for r in [&ra, &rb, &rc] {
        wait_peers(r, 2).await;
    }
    rb.kill();

    let device = Keys::generate();
    let machine = pk(&Keys::generate());
    let missed: Vec<Event> = (0..25).map(|n| dephy_event(&device, &machine, n)).collect();
    let mut conn = ra.connect().await;
    for (ok, msg) in conn.publish_pipelined(&missed).await {
        assert!(ok, "{msg}");
    }
    // B also missed one event C got from a client while B was away.
    let via_c = dephy_event(&device, &machine, 99);
    rc.connect().await.publish_ok(&via_c).await;
    assert!(holds(&ra, &via_c.id, PROPAGATION).await);

    let config = rb.config.clone();
    rb = Relay::spawn(&db_b, &b.name, &config).await;
    wait_peers(&rb, 1).await;
    let want: Vec<String> = missed.iter().chain([&via_c]).map(|e| e.id.to_hex()).collect();
    let caught_up = eventually(PROPAGATION, || async {
        let mut conn = rb.connect().await;
        let got = conn.req_ids("all", &[json!({"authors": [pk(&device)], "limit": 100})]).await;
        want.iter().all(|id| got.contains(id))
    })
    .await;
    assert!(caught_up, "B did not catch up; log:\n{}", rb.log_tail(40));
    // A catch-up batch is counted once all its commits are in, after REQ can see them.
    let counted =
        eventually(PROPAGATION, || async { metric(&rb, "dephy_bridge_synced_events_total").await >= 26.0 }).await;
    assert!(counted, "B counted {} synced events", metric(&rb, "dephy_bridge_synced_events_total").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_started_before_its_bootstrap_joins_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let (a, c) = (Node::new(&dir, "a"), Node::new(&dir, "c"));
    // Static registry without addresses: C only knows A from its bootstrap list.
    let reg = format!(
        "backend = \"static\"\nnodes = [{{ wallet = \"{}\" }}, {{ wallet = \"{}\" }}]\n",
        bs58::encode(a.wallet).into_string(),
        bs58::encode(c.wallet).into_string()
    );
    // Over QUIC this time.
    let (_dc, rc) = start(Backend::Sqlite, &c, &c.config("seed", &reg, &[a.quic_addr_with_peer()])).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = bridge_status(&rc).await;
    assert_eq!(status["ready"], false, "no peer yet: {status}");
    assert_eq!(metric(&rc, "dephy_bridge_ready").await, 0.0);

    let (_da, ra) = start(Backend::Sqlite, &a, &a.config("seed", &reg, &[])).await;
    wait_peers(&rc, 1).await;
    assert_eq!(metric(&rc, "dephy_bridge_ready").await, 1.0);
    let event = dephy_event(&Keys::generate(), &pk(&Keys::generate()), 1);
    ra.connect().await.publish_ok(&event).await;
    assert!(holds(&rc, &event.id, PROPAGATION).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_takes_over_when_the_bootstrap_node_goes_down() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c, d) = (Node::new(&dir, "a"), Node::new(&dir, "b"), Node::new(&dir, "c"), Node::new(&dir, "d"));
    let wallets: Vec<String> = [&a, &b, &c, &d]
        .iter()
        .map(|n| format!("{{ wallet = \"{}\" }}", bs58::encode(n.wallet).into_string()))
        .collect();
    let reg = format!("backend = \"static\"\nnodes = [{}]\n", wallets.join(", "));
    // A is the seed; B and C only know A, and find each other through it (Kademlia).
    let (_da, mut ra) = start(Backend::Sqlite, &a, &a.config("seed", &reg, &[])).await;
    let (_db, rb) = start(Backend::Sqlite, &b, &b.config("seed", &reg, &[a.addr_with_peer()])).await;
    let (_dc, rc) = start(Backend::Sqlite, &c, &c.config("seed", &reg, &[a.addr_with_peer()])).await;
    wait_peers(&rb, 2).await;
    wait_peers(&rc, 2).await;
    ra.kill();

    let event = dephy_event(&Keys::generate(), &pk(&Keys::generate()), 1);
    rb.connect().await.publish_ok(&event).await;
    assert!(holds(&rc, &event.id, PROPAGATION).await, "B and C stay federated without the seed");
    // A newcomer whose first bootstrap node is down joins through the second.
    let (_dd, rd) =
        start(Backend::Sqlite, &d, &d.config("seed", &reg, &[a.addr_with_peer(), b.addr_with_peer()])).await;
    wait_peers(&rd, 1).await;
    assert!(holds(&rd, &event.id, PROPAGATION).await, "D caught up through B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_networks_on_one_machine_stay_separate() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new("networks").await;
    let nodes: Vec<Node> = ["a1", "b1", "a2", "b2"].iter().map(|n| Node::new(&dir, n)).collect();
    for n in &nodes {
        chain.register(n, true).await;
    }
    // One registry lists all four, so they even dial each other; the network name separates them.
    let reg = chain.registry_toml();
    let mut relays = Vec::new();
    for (n, net) in nodes.iter().zip(["alpha", "alpha", "beta", "beta"]) {
        relays.push(start(Backend::Sqlite, n, &n.config(net, &reg, &[])).await);
    }
    for (_, r) in &relays {
        wait_peers(r, 1).await;
    }
    let device = Keys::generate();
    let alpha = dephy_event(&device, &pk(&Keys::generate()), 1);
    let beta = dephy_event(&device, &pk(&Keys::generate()), 2);
    relays[0].1.connect().await.publish_ok(&alpha).await;
    relays[2].1.connect().await.publish_ok(&beta).await;
    assert!(holds(&relays[1].1, &alpha.id, PROPAGATION).await, "alpha event on b1");
    assert!(holds(&relays[3].1, &beta.id, PROPAGATION).await, "beta event on b2");
    for i in [2, 3] {
        assert!(!holds(&relays[i].1, &alpha.id, Duration::from_secs(2)).await, "alpha event leaked to beta");
    }
    for i in [0, 1] {
        assert!(!holds(&relays[i].1, &beta.id, Duration::from_secs(1)).await, "beta event leaked to alpha");
    }
    for (i, (_, r)) in relays.iter().enumerate() {
        let peers = bridge_status(r).await["peers"].as_array().cloned().unwrap_or_default();
        assert!(peers.len() <= 1, "node {i} is connected across networks: {peers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bridge_configs_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(&dir, "bad");
    let db = TestDb::new(Backend::Sqlite).await;
    let bad_network = node.config("has spaces", &static_registry(&[&node]), &[]);
    let port = free_port();
    let err = Relay::spawn_on_port(&db, "bad1", &bad_network, port).await.err().expect("refused");
    assert!(err.contains("bridge.network"), "{err}");
    let bad_wallet = node.config("ok", "backend = \"static\"\nnodes = [{ wallet = \"not-base58!\" }]\n", &[]);
    let err = Relay::spawn_on_port(&db, "bad2", &bad_wallet, free_port()).await.err().expect("refused");
    assert!(err.contains("wallet"), "{err}");
    std::fs::write(&node.keypair, "[1, 2, 3]").unwrap();
    let bad_key = node.config("ok", &static_registry(&[]), &[]);
    let err = Relay::spawn_on_port(&db, "bad3", &bad_key, free_port()).await.err().expect("refused");
    assert!(err.contains("64 bytes"), "{err}");
    // A static address that is not a multiaddr is refused at start, not dialled as a DNS name.
    let other = Node::new(&dir, "other");
    let bad_address = other.config(
        "ok",
        &format!(
            "backend = \"static\"\nnodes = [{{ wallet = \"{}\" }}, {{ wallet = \"{}\", address = \"nonsense address\" }}]\n",
            bs58::encode(other.wallet).into_string(),
            bs58::encode(node.wallet).into_string()
        ),
        &[],
    );
    let err = Relay::spawn_on_port(&db, "bad4", &bad_address, free_port()).await.err().expect("refused");
    assert!(
        err.contains("bridge.registry.nodes[1].address = \"nonsense address\" is not a multiaddr")
            && err.contains("/ip4/10.0.0.2/tcp/4001"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_outage_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new("outage").await;
    let (a, b) = (Node::new(&dir, "a"), Node::new(&dir, "b"));
    chain.register(&a, true).await;
    chain.register(&b, true).await;
    let reg = chain.registry_toml();
    let (_da, ra) = start(Backend::Sqlite, &a, &a.config("fed", &reg, &[])).await;
    let (_db, rb) = start(Backend::Sqlite, &b, &b.config("fed", &reg, &[])).await;
    wait_peers(&ra, 1).await;
    assert_eq!(bridge_status(&ra).await["registry"]["stale"], false);

    drop(chain); // the Solana RPC server goes away
    let stale =
        eventually(Duration::from_secs(15), || async { bridge_status(&ra).await["registry"]["stale"] == true }).await;
    assert!(stale, "/health does not report the outage: {}", bridge_status(&ra).await);
    let status = bridge_status(&ra).await;
    assert!(status["registry"]["last_error"].as_str().unwrap().contains("127.0.0.1"), "{status}");
    assert_eq!(metric(&ra, "dephy_bridge_registry_stale").await, 1.0);
    // The refresher logs the failed refresh after the registry is marked stale.
    let logged = eventually(Duration::from_secs(5), || async {
        ra.log_tail(50).contains("keeping the last good authorized set")
    })
    .await;
    assert!(logged, "{}", ra.log_tail(50));
    // The federation carries on with the last good set.
    assert_eq!(status["registry"]["authorized_nodes"], 2);
    let event = dephy_event(&Keys::generate(), &pk(&Keys::generate()), 1);
    ra.connect().await.publish_ok(&event).await;
    assert!(holds(&rb, &event.id, PROPAGATION).await);
}

/// A's and B's public URLs in the vanish tests (C has none configured).
const A_URL: &str = "wss://a.example.com";
const B_URL: &str = "wss://b.example.com";

/// `node`'s config with a top-level `relay_url` and extra sections appended.
fn config_with(node: &Node, network: &str, registry: &str, relay_url: Option<&str>, extra: &str) -> String {
    let url = relay_url.map(|u| format!("relay_url = \"{u}\"\n")).unwrap_or_default();
    format!("{url}{}\n{extra}", node.config(network, registry, &[]))
}

/// The ids of `author`'s DePHY events that `relay` stores.
async fn ids_by(relay: &Relay, author: &Keys) -> Vec<String> {
    let mut conn = relay.connect().await;
    sorted(conn.req_ids("by", &[json!({"authors": [pk(author)], "kinds": [DEPHY_KIND], "limit": 1000})]).await)
}

/// NIP-62 across the federation: a request to vanish is applied where it is addressed (this
/// relay's `relay_url`, or `ALL_RELAYS`), never merely because a peer mirrored it; a client's
/// request naming another relay, or the Host when no `relay_url` is configured, is refused.
async fn vanish_requests_apply_only_where_addressed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (Node::new(&dir, "a"), Node::new(&dir, "b"), Node::new(&dir, "c"));
    let reg = static_registry(&[&a, &b, &c]);
    let (_da, ra) = start(backend, &a, &config_with(&a, "vanish", &reg, Some(A_URL), "")).await;
    let (_db, rb) = start(backend, &b, &config_with(&b, "vanish", &reg, Some(B_URL), "")).await;
    let (_dc, rc) = start(backend, &c, &config_with(&c, "vanish", &reg, None, "")).await;
    for r in [&ra, &rb, &rc] {
        wait_peers(r, 2).await;
    }
    let (alice, bob) = (Keys::generate(), Keys::generate());
    let t = now() - 60;
    let notes = |keys: &Keys| -> Vec<Event> {
        (0..3).map(|n| dephy(keys, &format!("note {n}"), &[&["s", "vanish-test"]], t + n)).collect()
    };
    let (alice_notes, bob_notes) = (notes(&alice), notes(&bob));
    let (mut on_a, mut on_b) = (ra.connect().await, rb.connect().await);
    for e in &alice_notes {
        on_a.publish_ok(e).await;
    }
    for e in &bob_notes {
        on_b.publish_ok(e).await;
    }
    let alice_ids = sorted(alice_notes.iter().map(|e| e.id.to_hex()).collect());
    for r in [&ra, &rb, &rc] {
        for e in alice_notes.iter().chain(&bob_notes) {
            assert!(holds(r, &e.id, PROPAGATION).await, "{} did not get {}", r.port, e.id);
        }
    }

    // (a) Addressed to A (its relay_url, spelled differently): applied on A; mirrored to B
    // (another relay_url) and C (no relay_url), refused there, and alice's events stay.
    let to_a = sign(&alice, 62, "bye A", &[&["relay", "WSS://A.example.com:443/"]], Some(t + 10));
    on_a.publish_ok(&to_a).await;
    assert!(ids_by(&ra, &alice).await.is_empty(), "A applied the request addressed to it");
    // A's gossip reaches each peer in order: once this marker is there, so was the request.
    let marker = dephy(&Keys::generate(), "marker", &[], now());
    on_a.publish_ok(&marker).await;
    for r in [&rb, &rc] {
        assert!(holds(r, &marker.id, PROPAGATION).await, "relay {} did not get the marker", r.port);
        assert_eq!(ids_by(r, &alice).await, alice_ids, "relay {} applied a request addressed to A", r.port);
        assert!(!holds(r, &to_a.id, Duration::from_millis(300)).await, "the refused request is not stored");
        let refused = metric(r, "relay_peer_events_refused_total{reason=\"vanish\"}").await;
        assert_eq!(refused, 1.0, "relay {} counts the refused request; log:\n{}", r.port, r.log_tail(30));
        assert!(r.log_tail(50).contains("event from a federation peer refused"), "{}", r.log_tail(50));
    }

    // (b) ALL_RELAYS, published on B: applied everywhere.
    let to_all = sign(&bob, 62, "bye all", &[&["relay", "ALL_RELAYS"]], Some(t + 10));
    on_b.publish_ok(&to_all).await;
    for r in [&ra, &rb, &rc] {
        assert!(holds(r, &to_all.id, PROPAGATION).await, "relay {} did not store the ALL_RELAYS request", r.port);
        assert!(ids_by(r, &bob).await.is_empty(), "relay {} kept bob's events", r.port);
    }
    // Alice's events elsewhere are untouched by bob's request.
    assert_eq!(ids_by(&rc, &alice).await, alice_ids);

    // (c) A client's request naming another relay, or (without relay_url) the Host it connected
    // to, is refused with what to do instead.
    let carol = Keys::generate();
    let to_c_host = sign(&carol, 62, "", &[&["relay", &rc.url()]], None);
    let msg = rc.connect().await.publish_refused(&to_c_host, "invalid:").await;
    assert!(msg.contains("relay_url") && msg.contains("ALL_RELAYS"), "{msg}");
    let to_a_on_b = sign(&carol, 62, "", &[&["relay", A_URL]], None);
    let msg = on_b.publish_refused(&to_a_on_b, "invalid:").await;
    assert!(msg.contains(B_URL) && msg.contains("ALL_RELAYS"), "{msg}");
    let to_a_host = sign(&carol, 62, "", &[&["relay", &ra.url()]], None);
    on_a.publish_refused(&to_a_host, "invalid:").await;
}

/// Events from peers pass the author rate limit like a client's: B (5 events/s per author)
/// refuses most of a 30-event burst of one author that A accepted, lets another author's
/// events through, and gets the refused ones later by catch-up, so nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_events_are_rate_limited_by_author_and_caught_up_later() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Node::new(&dir, "a"), Node::new(&dir, "b"));
    let reg = static_registry(&[&a, &b]);
    let (_da, ra) = start(Backend::Sqlite, &a, &config_with(&a, "limits", &reg, None, "")).await;
    let strict = "[limits]\nevents_per_sec_per_pubkey = 5\n";
    let (_db, rb) = start(Backend::Sqlite, &b, &config_with(&b, "limits", &reg, None, strict)).await;
    wait_peers(&ra, 1).await;
    wait_peers(&rb, 1).await;

    let (flood, quiet) = (Keys::generate(), Keys::generate());
    let machine = pk(&Keys::generate());
    let burst: Vec<Event> = (0..30).map(|n| dephy_event(&flood, &machine, n)).collect();
    let others: Vec<Event> = (0..3).map(|n| dephy_event(&quiet, &machine, n)).collect();
    // The other author's events in the middle of the burst.
    let sent: Vec<&Event> = burst[..15].iter().chain(&others).chain(&burst[15..]).collect();
    for (ok, msg) in ra.connect().await.publish_pipelined(sent).await {
        assert!(ok, "A refused: {msg}");
    }
    let burst_ids = sorted(burst.iter().map(|e| e.id.to_hex()).collect());
    assert_eq!(ids_by(&ra, &flood).await, burst_ids, "A keeps the whole burst");

    // The relay counts and logs a refusal while the bridge validates the gossip frame; the
    // bridge counts it after handing GossipSub its verdict. Each is awaited, not read once.
    let refused = eventually(PROPAGATION, || async {
        metric(&rb, "relay_peer_events_refused_total{reason=\"rate-limited\"}").await >= 1.0
            && metric(&rb, "dephy_bridge_received_total{result=\"rate_limited\"}").await >= 1.0
            && rb.log_tail(80).contains("too many events from this author")
    })
    .await;
    assert!(refused, "B did not rate-limit, count and log the burst; log:\n{}", rb.log_tail(80));
    for e in &others {
        assert!(holds(&rb, &e.id, PROPAGATION).await, "another author's event was held back");
    }
    assert_eq!(metric(&ra, "relay_peer_events_refused_total").await, 0.0, "A refused nothing");

    // Nothing is lost: follow-up catch-up sessions fetch the refused events as the limit refills.
    let healed = eventually(Duration::from_secs(90), || async { ids_by(&rb, &flood).await == burst_ids }).await;
    assert!(healed, "B holds {} of 30; log:\n{}", ids_by(&rb, &flood).await.len(), rb.log_tail(40));
    // A session counts what it stored after the commits, and what it deferred when it ends.
    let counted = eventually(PROPAGATION, || async {
        metric(&rb, "dephy_bridge_synced_events_total").await >= 1.0
            && metric(&rb, "dephy_bridge_sync_deferred_events_total").await >= 1.0
    })
    .await;
    assert!(counted, "the excess came by catch-up, some of it deferred; log:\n{}", rb.log_tail(40));
}

backend_tests!(
    partition_heals_with_catch_up,
    vanish_requests_apply_only_where_addressed,
    partition_of_5000_events_heals_in_slices
);

// ---------------------------------------------------------------------------------------------
// Registry faults: one bad RPC answer must not partition the network.
// ---------------------------------------------------------------------------------------------

/// The `[bridge.registry]` body for `chain`'s registry read through `urls`.
fn registry_toml_at(chain: &Chain, urls: &[&str]) -> String {
    format!(
        "backend = \"solana\"\nrpc_urls = {}\nprogram_id = \"{}\"\nregistry = \"{}\"\n",
        serde_json::to_string(urls).unwrap(),
        chain.seed.program,
        chain.seed.registry
    )
}

fn peer_count(status: &Value) -> usize {
    status["peers"].as_array().map_or(0, Vec::len)
}

/// Lines of `relay`'s whole log that contain every one of `needles`.
fn log_lines(relay: &Relay, needles: &[&str]) -> usize {
    let log = std::fs::read_to_string(&relay.log_path).unwrap_or_default();
    log.lines().filter(|l| needles.iter().all(|n| l.contains(n))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_endpoint_answering_an_empty_list_revokes_nobody_until_another_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new("empty").await;
    // A second endpoint serving the same registry (another surfpool, seeded alike).
    let second = Surfpool::start();
    chain.seed.create(&second, "dephy-test").await;
    let (a, b) = (Node::new(&dir, "a"), Node::new(&dir, "b"));
    for n in [&a, &b] {
        chain.register(n, true).await;
        chain.seed.put_node(&second, &n.entry(true)).await;
    }
    let reg = registry_toml_at(&chain, &[&chain.surfpool.rpc_url, &second.rpc_url]);
    let (_da, ra) = start(Backend::Sqlite, &a, &a.config("fed", &reg, &[])).await;
    let (_db, rb) = start(Backend::Sqlite, &b, &b.config("fed", &reg, &[])).await;
    wait_peers(&ra, 1).await;
    wait_peers(&rb, 1).await;

    // The first endpoint (each node's preferred one) loses every account: its
    // getProgramAccounts answers an empty list, which would revoke both nodes.
    // Both at once: a refresh between two removals would see a single deactivation, which
    // takes effect at once.
    tokio::join!(
        chain.seed.remove_node(&chain.surfpool, &a.wallet),
        chain.seed.remove_node(&chain.surfpool, &b.wallet)
    );
    let asked = eventually(Duration::from_secs(15), || async {
        [&ra, &rb].iter().all(|r| log_lines(r, &["another registry endpoint disagrees: using its answer"]) >= 1)
    })
    .await;
    assert!(asked, "the nodes did not ask the second endpoint:\n{}\n{}", ra.log_tail(30), rb.log_tail(30));
    // Several more refreshes (refresh_secs = 1; the guard alone would give in after 3).
    tokio::time::sleep(Duration::from_secs(5)).await;
    for r in [&ra, &rb] {
        let status = bridge_status(r).await;
        assert_eq!(peer_count(&status), 1, "a node was revoked: {status}\n{}", r.log_tail(30));
        assert_eq!(status["registry"]["authorized_nodes"], 2, "{status}");
        assert_eq!(metric(r, "dephy_bridge_revoked_total").await, 0.0);
    }

    // Now the second endpoint loses the accounts too: the two endpoints agree, the shrink is real.
    tokio::join!(chain.seed.remove_node(&second, &a.wallet), chain.seed.remove_node(&second, &b.wallet));
    let dropped = eventually(Duration::from_secs(15), || async { peer_count(&bridge_status(&ra).await) == 0 }).await;
    assert!(dropped, "A still connected: {}\n{}", bridge_status(&ra).await, ra.log_tail(30));
    // Whichever node's refresh comes first revokes the other and disconnects it; A accepts the
    // shrink on its own next refresh.
    let accepted = eventually(Duration::from_secs(5), || async {
        log_lines(&ra, &["another registry endpoint gives the same answer: accepting it"]) >= 1
    })
    .await;
    assert!(accepted, "A did not accept the confirmed shrink:\n{}", ra.log_tail(30));
    let revoked = metric(&ra, "dephy_bridge_revoked_total").await + metric(&rb, "dephy_bridge_revoked_total").await;
    assert!(revoked >= 1.0, "nobody counted the revocation");
    // A learns that its own entry is gone.
    let warned = eventually(Duration::from_secs(5), || async {
        log_lines(&ra, &["this node's wallet is not in the registry", &bs58::encode(a.wallet).into_string()]) == 1
    })
    .await;
    assert!(warned, "A did not warn about its own entry:\n{}", ra.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_registry_shrink_is_held_and_shown_stale_until_it_persists() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new("persist").await;
    let (a, b) = (Node::new(&dir, "a"), Node::new(&dir, "b"));
    chain.register(&a, true).await;
    chain.register(&b, true).await;
    // One endpoint only: no second opinion, the shrink must persist over 5 refreshes.
    let reg = chain.registry_toml();
    let extra = "registry_shrink_confirmations = 5";
    let (_da, ra) = start(Backend::Sqlite, &a, &a.config_with("fed", &reg, &[], extra)).await;
    let (_db, rb) = start(Backend::Sqlite, &b, &b.config_with("fed", &reg, &[], extra)).await;
    wait_peers(&ra, 1).await;

    // Both at once (a single deactivation would take effect at once).
    tokio::join!(
        chain.seed.remove_node(&chain.surfpool, &a.wallet),
        chain.seed.remove_node(&chain.surfpool, &b.wallet)
    );
    let stale =
        eventually(Duration::from_secs(15), || async { bridge_status(&ra).await["registry"]["stale"] == true }).await;
    assert!(stale, "/health does not show the held shrink: {}", bridge_status(&ra).await);
    let status = bridge_status(&ra).await;
    let reason = status["registry"]["stale_reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains("drops 2 of the 2 authorized nodes") && reason.contains("keeping the last good set"),
        "{status}"
    );
    assert_eq!(peer_count(&status), 1, "revoked while held: {status}");
    assert_eq!(status["registry"]["authorized_nodes"], 2);
    assert_eq!(metric(&ra, "dephy_bridge_registry_stale").await, 1.0);
    assert!(metric(&ra, "dephy_bridge_registry_shrinks_held_total").await >= 1.0);

    // It persists: accepted after 5 consecutive refreshes.
    let dropped = eventually(Duration::from_secs(20), || async { peer_count(&bridge_status(&ra).await) == 0 }).await;
    assert!(dropped, "never accepted: {}\n{}", bridge_status(&ra).await, ra.log_tail(30));
    // B may accept first and disconnect A while A still holds the shrink for a refresh or so.
    let accepted = eventually(Duration::from_secs(5), || async {
        log_lines(&ra, &["persisted over 5 consecutive refreshes"]) >= 1
            && bridge_status(&ra).await["registry"]["stale"] == false
    })
    .await;
    assert!(accepted, "A did not accept the persisting shrink: {}\n{}", bridge_status(&ra).await, ra.log_tail(30));
    drop(rb);
}

// ---------------------------------------------------------------------------------------------
// GossipSub peer scoring: a peer that sends invalid messages is graylisted.
// ---------------------------------------------------------------------------------------------

mod raw_peer {
    //! A bridge node run inside the test with the crate's own network stack (same protocols,
    //! topic, gating and scoring), driven by hand so it can publish whatever it likes.

    use std::sync::Arc;
    use std::time::Duration;

    use dephy_bridge::authorize::Authorizer;
    use dephy_bridge::identity::NodeIdentity;
    use dephy_bridge::network::{BehaviourEvent, Names, build_swarm};
    use dephy_bridge::registry::{NodeEntry, StaticRegistry};
    use dephy_bridge::sync::SyncResponse;
    use futures_util::StreamExt as _;
    use libp2p::gossipsub::{self, MessageAcceptance};
    use libp2p::request_response;
    use libp2p::swarm::SwarmEvent;
    use tokio::sync::{mpsc, oneshot};

    enum Cmd {
        Publish(Vec<u8>, oneshot::Sender<Result<(), String>>),
        TopicPeers(oneshot::Sender<usize>),
    }

    pub struct RawPeer {
        cmd: mpsc::Sender<Cmd>,
        task: tokio::task::JoinHandle<()>,
    }

    impl RawPeer {
        /// Starts a node with `identity` on `network` that accepts `allowed` and dials `dial`.
        pub async fn start(identity: NodeIdentity, network: &str, allowed: &[[u8; 32]], dial: &str) -> RawPeer {
            let entries =
                allowed.iter().map(|w| NodeEntry { wallet: *w, domain: String::new(), online: 1, active: true });
            let (auth, _lookups) =
                Authorizer::new(Arc::new(StaticRegistry::new(entries.collect())), Duration::from_secs(60));
            auth.refresh().await.unwrap();
            let names = Names::new(network).unwrap();
            let mut swarm = build_swarm(identity.keypair.clone(), &names, auth, 128 * 1024).unwrap();
            swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
            swarm.dial(dial.parse::<libp2p::Multiaddr>().unwrap()).unwrap();
            let (cmd, mut rx) = mpsc::channel(16);
            let task = tokio::spawn(async move {
                loop {
                    tokio::select! {
                        event = swarm.select_next_some() => match event {
                            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                                propagation_source, message_id, ..
                            })) => {
                                swarm.behaviour_mut().gossipsub.report_message_validation_result(
                                    &message_id, &propagation_source, MessageAcceptance::Ignore);
                            }
                            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                                message: request_response::Message::Request { channel, .. }, ..
                            })) => {
                                let refusal = SyncResponse::Error { message: "raw test peer".into() };
                                let _ = swarm.behaviour_mut().sync.send_response(channel, refusal);
                            }
                            _ => {}
                        },
                        cmd = rx.recv() => match cmd {
                            Some(Cmd::Publish(data, reply)) => {
                                let sent = swarm.behaviour_mut().gossipsub.publish(names.topic.clone(), data);
                                let _ = reply.send(sent.map(|_| ()).map_err(|e| e.to_string()));
                            }
                            Some(Cmd::TopicPeers(reply)) => {
                                let hash = names.topic.hash();
                                let n = swarm.behaviour().gossipsub.all_peers().filter(|(_, t)| t.contains(&&hash)).count();
                                let _ = reply.send(n);
                            }
                            None => break,
                        },
                    }
                }
            });
            RawPeer { cmd, task }
        }

        pub async fn publish(&self, data: Vec<u8>) -> Result<(), String> {
            let (tx, rx) = oneshot::channel();
            self.cmd.send(Cmd::Publish(data, tx)).await.map_err(|_| "raw peer stopped".to_string())?;
            rx.await.map_err(|_| "raw peer stopped".to_string())?
        }

        pub async fn topic_peers(&self) -> usize {
            let (tx, rx) = oneshot::channel();
            if self.cmd.send(Cmd::TopicPeers(tx)).await.is_err() {
                return 0;
            }
            rx.await.unwrap_or(0)
        }
    }

    impl Drop for RawPeer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_invalid_messages_is_graylisted_and_honest_peers_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Node::new(&dir, "a"), Node::new(&dir, "b"));
    let rogue_key = dir.path().join("rogue-keypair.json");
    let rogue = NodeIdentity::load_or_create(&rogue_key).unwrap();
    // A static registry naming the rogue too: its messages pass the gate, only their content is bad.
    let list = |wallets: &[[u8; 32]]| {
        let nodes: Vec<String> =
            wallets.iter().map(|w| format!("{{ wallet = \"{}\" }}", bs58::encode(w).into_string())).collect();
        format!("backend = \"static\"\nnodes = [{}]\n", nodes.join(", "))
    };
    let reg = list(&[a.wallet, b.wallet, rogue.wallet]);
    let (_da, ra) = start(Backend::Sqlite, &a, &a.config("fed", &reg, &[])).await;
    let (_db, rb) = start(Backend::Sqlite, &b, &b.config("fed", &reg, &[a.addr_with_peer()])).await;
    wait_peers(&ra, 1).await;
    let peer = raw_peer::RawPeer::start(rogue, "fed", &[a.wallet], &a.addr_with_peer()).await;
    let subscribed = eventually(CONNECT, || async { peer.topic_peers().await >= 1 }).await;
    assert!(subscribed, "the raw peer never saw A on the topic; A log:\n{}", ra.log_tail(30));

    // 20 tampered events (content changed after signing), each with its own id.
    let device = Keys::generate();
    for n in 0..20 {
        let event = sign(&device, 1573, &format!("original {n}"), &[], None);
        let json = event.as_json();
        let tampered = json.replace(&format!("\"content\":\"original {n}\""), &format!("\"content\":\"forged {n}\""));
        assert_ne!(tampered, json);
        peer.publish(dephy_bridge::mirror::encode(&event.id.to_bytes(), &tampered)).await.expect("publish");
    }
    let rejected = r#"dephy_bridge_received_total{result="rejected"}"#;
    // 3 invalid deliveries score -90, under the graylist threshold (-80): later ones go unread.
    let penalised = eventually(PROPAGATION, || async { metric(&ra, rejected).await >= 3.0 }).await;
    assert!(penalised, "A rejected {} messages; log:\n{}", metric(&ra, rejected).await, ra.log_tail(30));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Its later valid event is not accepted: everything it sends is dropped unread.
    let valid = dephy_event(&device, &pk(&Keys::generate()), 1);
    peer.publish(dephy_bridge::mirror::encode(&valid.id.to_bytes(), &valid.as_json())).await.expect("publish valid");
    // The honest peer is unaffected.
    let honest = dephy_event(&device, &pk(&Keys::generate()), 2);
    rb.connect().await.publish_ok(&honest).await;
    assert!(holds(&ra, &honest.id, PROPAGATION).await, "an honest peer's event did not reach A");
    assert!(!holds(&ra, &valid.id, Duration::from_secs(3)).await, "A accepted a graylisted peer's event");
    assert_eq!(metric(&ra, r#"dephy_bridge_received_total{result="accepted"}"#).await, 1.0, "only the honest event");
}

// ---------------------------------------------------------------------------------------------
// The operator's logs: refusals said once a minute per peer, with the wallet and the reason.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_peers_are_logged_with_wallet_and_reason_once_not_per_dial() {
    let dir = tempfile::tempdir().unwrap();
    let (a, stranger, inactive, foreign) =
        (Node::new(&dir, "a"), Node::new(&dir, "stranger"), Node::new(&dir, "inactive"), Node::new(&dir, "foreign"));
    let wallet = |n: &Node| bs58::encode(n.wallet).into_string();
    // A lists itself, `inactive` (inactive) and `foreign` (on another network); not `stranger`.
    let reg_a = format!(
        "backend = \"static\"\nnodes = [{{ wallet = \"{}\" }}, {{ wallet = \"{}\", active = false }}, {{ wallet = \"{}\" }}]\n",
        wallet(&a),
        wallet(&inactive),
        wallet(&foreign)
    );
    let (_da, ra) = start(Backend::Sqlite, &a, &a.config("fed", &reg_a, &[])).await;
    // Each of them trusts A and dials it (retry_secs = 1). The stranger is not in its own list.
    let trusts_a = |n: Option<&Node>| match n {
        Some(n) => format!(
            "backend = \"static\"\nnodes = [{{ wallet = \"{}\" }}, {{ wallet = \"{}\" }}]\n",
            wallet(&a),
            wallet(n)
        ),
        None => format!("backend = \"static\"\nnodes = [{{ wallet = \"{}\" }}]\n", wallet(&a)),
    };
    let seed = [a.addr_with_peer()];
    let (_ds, rs) = start(Backend::Sqlite, &stranger, &stranger.config("fed", &trusts_a(None), &seed)).await;
    let (_di, ri) = start(Backend::Sqlite, &inactive, &inactive.config("fed", &trusts_a(Some(&inactive)), &seed)).await;
    let (_df, rf) = start(Backend::Sqlite, &foreign, &foreign.config("other", &trusts_a(Some(&foreign)), &seed)).await;

    // Several dials each (the redial backs off: 1, 2, 4 s...).
    let dialled = eventually(Duration::from_secs(40), || async {
        metric(&ra, "dephy_bridge_denied_connections_total").await >= 5.0
            && metric(&ra, "dephy_bridge_wrong_network_total").await >= 2.0
            && metric(&rs, "dephy_bridge_refused_by_peer_total").await >= 2.0
    })
    .await;
    assert!(
        dialled,
        "denied {}, wrong network {}, refused_by {}\nA log:\n{}\nstranger log:\n{}",
        metric(&ra, "dephy_bridge_denied_connections_total").await,
        metric(&ra, "dephy_bridge_wrong_network_total").await,
        metric(&rs, "dephy_bridge_refused_by_peer_total").await,
        ra.log_tail(40),
        rs.log_tail(40)
    );
    // One line per refused peer, naming its wallet and the reason.
    assert_eq!(log_lines(&ra, &["peer refused: not in the registry", &wallet(&stranger)]), 1, "{}", ra.log_tail(60));
    assert_eq!(log_lines(&ra, &["peer refused: registry entry inactive", &wallet(&inactive)]), 1);
    assert_eq!(log_lines(&ra, &["peer refused: other network", &wallet(&foreign)]), 1);
    assert_eq!(log_lines(&ra, &["peer refused"]), 3, "{}", ra.log_tail(60));

    // The refused node learns it once, instead of a catch-up failure per dial.
    let a_peer = dephy_bridge::identity::peer_of(&a.wallet).unwrap().to_string();
    assert_eq!(
        log_lines(&rs, &["it most likely refuses this node", &a_peer, &wallet(&stranger)]),
        1,
        "{}",
        rs.log_tail(40)
    );
    assert_eq!(log_lines(&rs, &["catch-up failed"]), 0, "{}", rs.log_tail(40));
    assert_eq!(log_lines(&ri, &["it most likely refuses this node", &a_peer]), 1, "{}", ri.log_tail(40));
    // The foreign node learns the mismatch from A's identify message when it arrives before A
    // closes the connection, else from A closing it right after it opens (that warning names
    // its `bridge.network` too): which comes first is up to the scheduler, so either counts,
    // once each at most, and at least one of them.
    let told_network = log_lines(&rf, &["peer refused: other network", &wallet(&a)]);
    let told_refused = log_lines(&rf, &["it most likely refuses this node", &a_peer, "network \"other\""]);
    assert!(
        told_network <= 1 && told_refused <= 1 && told_network + told_refused >= 1,
        "other network {told_network}, refused {told_refused}\n{}",
        rf.log_tail(40)
    );
    for r in [&ra, &rf] {
        assert_eq!(log_lines(r, &["catch-up failed"]), 0, "per-dial noise:\n{}", r.log_tail(40));
    }
    // The stranger is not in its own static list: told what that means, not that peers refuse it.
    assert_eq!(log_lines(&rs, &["is not in its own bridge.registry.nodes"]), 1, "{}", rs.log_tail(40));
    assert_eq!(log_lines(&rs, &["refuse it until"]), 0);
}

/// `config` with extra `[bridge]` keys.
fn with_bridge_keys(config: &str, keys: &str) -> String {
    config.replacen("retry_secs = 1\n", &format!("retry_secs = 1\n{keys}\n"), 1)
}

/// Peak and current resident set of a process (`VmHWM`, `VmRSS`, KiB).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Publishes `n` events on `relay` (20 authors, the current second and the minutes before it)
/// and returns their authors.
async fn publish_many(relay: &Relay, n: usize) -> Vec<Keys> {
    let authors: Vec<Keys> = (0..20).map(|_| Keys::generate()).collect();
    let machine = pk(&Keys::generate());
    let mut conn = relay.connect().await;
    let start = now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let events: Vec<Event> = chunk
            .iter()
            .map(|&i| {
                let content = format!("{{\"Status\":{{\"n\":{i}}}}}");
                dephy(
                    &authors[i % authors.len()],
                    &content,
                    &[&["s", "bulk"], &["p", &machine]],
                    start - (i % 300) as u64,
                )
            })
            .collect();
        for (ok, msg) in conn.publish_pipelined(&events).await {
            assert!(ok, "{msg}");
        }
    }
    authors
}

async fn count_by(relay: &Relay, authors: &[Keys]) -> u64 {
    let authors: Vec<String> = authors.iter().map(pk).collect();
    relay.connect().await.count("n", &[json!({"authors": authors})]).await
}

/// A long partition with a small `sync_max_items`: B, down while A took 5,000 events, gets
/// every one of them back, through many slices (neither side ever loads more than 100).
async fn partition_of_5000_events_heals_in_slices(backend: Backend) {
    const EVENTS: usize = 5000;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Node::new(&dir, "a"), Node::new(&dir, "b"));
    let reg = static_registry(&[&a, &b]);
    let small = "sync_max_items = 100";
    let (_da, ra) = start(backend, &a, &with_bridge_keys(&a.config("fed", &reg, &[]), small)).await;
    let (db_b, mut rb) = start(backend, &b, &with_bridge_keys(&b.config("fed", &reg, &[]), small)).await;
    wait_peers(&ra, 1).await;
    rb.kill();

    let authors = publish_many(&ra, EVENTS).await;
    assert_eq!(count_by(&ra, &authors).await, EVENTS as u64);

    let config = rb.config.clone();
    rb = Relay::spawn(&db_b, &b.name, &config).await;
    let healed =
        eventually(Duration::from_secs(120), || async { count_by(&rb, &authors).await == EVENTS as u64 }).await;
    assert!(healed, "B holds {} of {EVENTS}; log:\n{}", count_by(&rb, &authors).await, rb.log_tail(40));
    // The last slice's events are stored before the session ends and logs "catch-up done".
    let done = eventually(Duration::from_secs(30), || async { rb.log_tail(200).contains("catch-up done") }).await;
    assert!(done, "{}", rb.log_tail(40));
    let slices = metric(&rb, "dephy_bridge_sync_slices_total").await;
    assert!(slices >= (EVENTS / 100) as f64, "{slices} slices for {EVENTS} events at 100 per slice");
    assert!(metric(&ra, "dephy_bridge_sync_splits_total").await > 0.0);
    assert_eq!(metric(&rb, "dephy_bridge_sync_pending_ids").await, 0.0);
}

/// A raw libp2p peer (the bridge's own swarm), registered like any node, that sends what an
/// honest node never would.
struct RawPeer {
    swarm: libp2p::Swarm<dephy_bridge::network::Behaviour>,
    target: libp2p::PeerId,
}

impl RawPeer {
    async fn connect(node: &Node, target: &Node, registry: &[&Node]) -> RawPeer {
        use dephy_bridge::registry::StaticRegistry;
        let identity = NodeIdentity::load_or_create(&node.keypair).unwrap();
        let entries = registry.iter().map(|n| n.entry(true)).collect();
        let (authorizer, _lookups) = dephy_bridge::authorize::Authorizer::new(
            std::sync::Arc::new(StaticRegistry::new(entries)),
            Duration::from_secs(60),
        );
        authorizer.refresh().await.unwrap();
        let names = dephy_bridge::network::Names::new("fed").unwrap();
        let swarm = dephy_bridge::network::build_swarm(identity.keypair.clone(), &names, authorizer, 1 << 20).unwrap();
        let target_peer = dephy_bridge::identity::peer_of(&target.wallet).unwrap();
        let mut raw = RawPeer { swarm, target: target_peer };
        raw.swarm.dial(target.addr_with_peer().parse::<libp2p::Multiaddr>().unwrap()).unwrap();
        let connected = tokio::time::timeout(CONNECT, async {
            loop {
                if let libp2p::swarm::SwarmEvent::ConnectionEstablished { peer_id, .. } = raw.next().await
                    && peer_id == target_peer
                {
                    return;
                }
            }
        })
        .await;
        assert!(connected.is_ok(), "the raw peer did not connect");
        raw
    }

    async fn next(&mut self) -> libp2p::swarm::SwarmEvent<dephy_bridge::network::BehaviourEvent> {
        use futures_util::StreamExt as _;
        self.swarm.select_next_some().await
    }

    /// Sends all `requests` at once; their answers (or failures), in order.
    async fn ask(&mut self, requests: Vec<SyncRequest>) -> Vec<Result<SyncResponse, String>> {
        use dephy_bridge::network::BehaviourEvent;
        use libp2p::request_response::{Event, Message};
        use libp2p::swarm::SwarmEvent;
        let ids: Vec<_> =
            requests.into_iter().map(|r| self.swarm.behaviour_mut().sync.send_request(&self.target, r)).collect();
        let mut answers: Vec<Option<Result<SyncResponse, String>>> = vec![None; ids.len()];
        let done = tokio::time::timeout(Duration::from_secs(60), async {
            while answers.iter().any(Option::is_none) {
                let (id, answer) = match self.next().await {
                    SwarmEvent::Behaviour(BehaviourEvent::Sync(Event::Message {
                        message: Message::Response { request_id, response },
                        ..
                    })) => (request_id, Ok(response)),
                    SwarmEvent::Behaviour(BehaviourEvent::Sync(Event::OutboundFailure {
                        request_id, error, ..
                    })) => (request_id, Err(error.to_string())),
                    // The relay's own catch-up requests to us go unanswered.
                    _ => continue,
                };
                if let Some(i) = ids.iter().position(|x| *x == id) {
                    answers[i] = Some(answer);
                }
            }
        })
        .await;
        assert!(done.is_ok(), "no answer within 60 s");
        answers.into_iter().map(Option::unwrap).collect()
    }
}

/// The opening negentropy message of a node holding nothing.
fn opening_of_nothing() -> Vec<u8> {
    let mut storage = negentropy::NegentropyStorageVector::new();
    storage.seal().unwrap();
    negentropy::Negentropy::owned(storage, 0).unwrap().initiate().unwrap()
}

/// A registered peer asks relay A for everything (`0..u64::MAX`), with oversized frames, too
/// many ids and too many requests at once: every answer is bounded (a `Split`, an error, a
/// `rate-limited:` refusal), A's memory stays flat, and an honest node still syncs from A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sync_requests_are_bounded_and_an_honest_peer_still_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, h) = (Node::new(&dir, "a"), Node::new(&dir, "b"), Node::new(&dir, "hostile"));
    let reg = static_registry(&[&a, &b, &h]);
    let keys = "sync_max_items = 200\nsync_sessions_per_peer = 1\nsync_max_sessions = 4";
    let (_da, ra) = start(Backend::Sqlite, &a, &with_bridge_keys(&a.config("fed", &reg, &[]), keys)).await;
    let authors = publish_many(&ra, 2000).await;
    let (hwm_before, _) = memory_kib(ra.pid());

    let mut raw = RawPeer::connect(&h, &a, &[&a, &b, &h]).await;
    let everything = Slice::seconds(0, u64::MAX);
    // 1. The whole timeline: A holds 2,000 events in its window, more than 200: split.
    let answers =
        raw.ask(vec![SyncRequest::Reconcile { session: 1, slice: everything, msg: opening_of_nothing() }]).await;
    assert!(matches!(answers[0], Ok(SyncResponse::Split)), "{:?}", answers[0]);
    // 2. A frame claiming 30,000 ids over an old, empty slice: answered within bounds.
    let mut claim = vec![0x61, 0x00, 0x00, 0x02, 0x81, 0xea, 0x30]; // IdList of 30,000 ids
    claim.extend(std::iter::repeat_n(7u8, 30_000 * 32));
    let old = Slice::seconds(0, now() - 30 * 86_400);
    let answers = raw.ask(vec![SyncRequest::Reconcile { session: 1, slice: old, msg: claim }]).await;
    match &answers[0] {
        Ok(SyncResponse::Reconcile { msg }) => assert!(msg.len() < 1024, "{} bytes", msg.len()),
        other => panic!("{other:?}"),
    }
    // 3. A request over the size limit never reaches the responder.
    let huge = SyncRequest::Reconcile { session: 1, slice: everything, msg: vec![0x61; 2 << 20] };
    assert!(raw.ask(vec![huge]).await[0].is_err());
    // 4. Too many ids in one Fetch.
    let answers = raw.ask(vec![SyncRequest::Fetch { ids: vec![[1; 32]; 5000] }]).await;
    assert!(
        matches!(&answers[0], Ok(SyncResponse::Error { message }) if message.starts_with("invalid:")),
        "{answers:?}"
    );
    // 5. Forty requests at once: one at a time is answered, the others refused at once.
    let flood =
        (0..40).map(|_| SyncRequest::Reconcile { session: 1, slice: everything, msg: opening_of_nothing() }).collect();
    let answers = raw.ask(flood).await;
    let limited = answers
        .iter()
        .filter(|a| matches!(a, Ok(SyncResponse::Error { message }) if message.starts_with("rate-limited:")))
        .count();
    for answer in &answers {
        assert!(
            matches!(answer, Ok(SyncResponse::Split))
                || matches!(answer, Ok(SyncResponse::Error { message }) if message.starts_with("rate-limited:")),
            "{answer:?}"
        );
    }
    assert!(limited >= 1, "40 concurrent requests of one peer, none rate-limited");
    let (hwm_after, rss) = memory_kib(ra.pid());
    eprintln!(
        "relay A: VmHWM {hwm_before} KiB before the hostile requests, {hwm_after} KiB after (VmRSS {rss} KiB); \
         {limited} of 40 concurrent requests rate-limited"
    );
    assert!(hwm_after < hwm_before + 64 * 1024, "A's peak RSS grew by {} KiB", hwm_after - hwm_before);
    assert!(metric(&ra, "dephy_bridge_sync_refused_total{reason=\"too_many_ids\"}").await >= 1.0);
    drop(raw);

    // The honest node B joins and gets all 2,000 events from A, slice by slice.
    let (_db, rb) =
        start(Backend::Sqlite, &b, &with_bridge_keys(&b.config("fed", &reg, &[a.addr_with_peer()]), keys)).await;
    let synced = eventually(Duration::from_secs(60), || async { count_by(&rb, &authors).await == 2000 }).await;
    assert!(synced, "B holds {} of 2000; log:\n{}", count_by(&rb, &authors).await, rb.log_tail(40));
}
