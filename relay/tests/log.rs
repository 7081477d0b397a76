//! The verifiable log over HTTP: inclusion and consistency proofs checked with the shared
//! `dephy-log` verifier, leaves that outlive deleted events, signed checkpoints, session chains
//! (`prev` forks), the session replay endpoint, NIP-62 request to vanish, and 4xx answers.
//! Both backends.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use dephy_log::{Checkpoint, Hash};
use nostr::prelude::*;
use serde_json::{Value, json};

backend_tests!(
    proofs_verify_and_leaves_outlive_deletion,
    checkpoints_are_signed_and_published,
    session_chains_reject_forks,
    log_api_rejects_bad_parameters,
    nip62_vanish_keeps_leaves,
    catch_up_cursor,
);

fn hash(v: &Value) -> Hash {
    let mut h = [0u8; 32];
    hex::decode_to_slice(v.as_str().expect("hex string"), &mut h).expect("64 hex chars");
    h
}

async fn get(relay: &Relay, path: &str) -> (u16, Value) {
    let resp = http_get(relay.port, path, &[]).await.expect("http");
    (resp.status, resp.json())
}

async fn inclusion(relay: &Relay, id: &str, size: u64) -> Value {
    let (status, body) = get(relay, &format!("/log/proof/inclusion?id={id}&tree_size={size}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn verify_inclusion(proof: &Value) -> Hash {
    let path: Vec<Hash> = proof["audit_path"].as_array().unwrap().iter().map(hash).collect();
    let root = hash(&proof["root_hash"]);
    let mut id = [0u8; 32];
    hex::decode_to_slice(proof["event_id"].as_str().unwrap(), &mut id).unwrap();
    let leaf = dephy_log::event_leaf_hash(&id, proof["received_ms"].as_u64().unwrap());
    assert_eq!(leaf, hash(&proof["leaf_hash"]), "leaf hash is H(0x00 || id || received_ms_be)");
    dephy_log::verify_inclusion(
        &leaf,
        proof["leaf_index"].as_u64().unwrap(),
        proof["tree_size"].as_u64().unwrap(),
        &path,
        &root,
    )
    .expect("inclusion proof verifies");
    root
}

async fn proofs_verify_and_leaves_outlive_deletion(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let keys = Keys::generate();
    let t = now() - 50;
    let events: Vec<Event> = (0..20).map(|i| dephy(&keys, &format!("e{i}"), &[&["s", "log-test"]], t + i)).collect();
    for e in &events {
        c.publish_ok(e).await;
    }

    // Entries are the events in arrival order, with increasing arrival sequence numbers.
    let (status, body) = get(&relay, "/log/entries?start=0&end=20").await;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        events.iter().map(|e| e.id.to_hex()).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>()
    );
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence strictly increases: {seqs:?}");

    // Every event is included at tree size 20; all proofs share one root.
    let mut root20 = None;
    for (i, e) in events.iter().enumerate() {
        let proof = inclusion(&relay, &e.id.to_hex(), 20).await;
        assert_eq!(proof["leaf_index"], json!(i));
        let root = verify_inclusion(&proof);
        assert_eq!(*root20.get_or_insert(root), root);
    }
    let root20 = root20.unwrap();

    // Consistency between tree sizes 7 and 20.
    let root7 = verify_inclusion(&inclusion(&relay, &events[3].id.to_hex(), 7).await);
    let (status, body) = get(&relay, "/log/proof/consistency?first=7&second=20").await;
    assert_eq!(status, 200, "{body}");
    let proof: Vec<Hash> = body["proof"].as_array().unwrap().iter().map(hash).collect();
    dephy_log::verify_consistency(7, 20, &proof, &root7, &root20).expect("consistency proof verifies");
    let mut bad = proof.clone();
    bad[0][0] ^= 1;
    assert!(dephy_log::verify_consistency(7, 20, &bad, &root7, &root20).is_err(), "a tampered proof fails");

    // A deleted event disappears from queries, but its leaf and proofs stay.
    let victim = &events[5];
    let del = sign(&keys, 5, "", &[&["e", &victim.id.to_hex()]], None);
    c.publish_ok(&del).await;
    assert!(c.req_ids("gone", &[json!({"ids": [victim.id.to_hex()]})]).await.is_empty());
    let proof = inclusion(&relay, &victim.id.to_hex(), 20).await;
    assert_eq!(verify_inclusion(&proof), root20, "old proofs still verify after deletion");
    let (_, body) = get(&relay, "/log/entries?start=0&end=100").await;
    assert_eq!(body["entries"].as_array().unwrap().len(), 21, "20 events + the deletion request, nothing removed");
}

async fn checkpoints_are_signed_and_published(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[log]\ncheckpoint_interval_secs = 1\n").await;
    let relay_pk = PublicKey::from_hex(relay.nip11().await.json()["pubkey"].as_str().unwrap()).unwrap();
    let mut c = relay.connect().await;
    let keys = Keys::generate();
    let events: Vec<Event> = (0..5).map(|i| dephy(&keys, &format!("c{i}"), &[], now() - 10 + i)).collect();
    for e in &events {
        c.publish_ok(e).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = get(&relay, "/log/checkpoint").await;
        if status == 200 && body["tree_size"].as_u64() >= Some(5) {
            break body;
        }
        assert!(Instant::now() < deadline, "no checkpoint within 15 s: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let event = Event::from_json(body["event"].to_string()).unwrap();
    let cp = Checkpoint::from_event(&event, Some(&relay_pk)).expect("checkpoint signed by the relay key");
    // At least the five events: a checkpoint signed while they were being published is itself
    // a leaf, and the next one counts it too.
    assert!(cp.tree_size >= 5, "{cp:?}");
    let proof = inclusion(&relay, &events[4].id.to_hex(), cp.tree_size).await;
    assert_eq!(verify_inclusion(&proof), cp.root_hash, "checkpoint root matches the proofs");
    assert!(Checkpoint::from_event(&event, Some(&keys.public_key())).is_err(), "wrong author is rejected");

    // The checkpoint is an ordinary stored event, served over REQ.
    let got = c.req_ids("cp", &[json!({"kinds": [dephy_log::CHECKPOINT_KIND], "authors": [relay_pk.to_hex()]})]).await;
    assert!(got.contains(&event.id.to_hex()), "{got:?}");
    let (status, body) = get(&relay, "/log/checkpoints?from=0&limit=10").await;
    assert_eq!(status, 200);
    assert_eq!(body["checkpoints"][0]["tree_size"], json!(5));
}

async fn session_chains_reject_forks(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let dev = Keys::generate();
    let t = now() - 20;
    let e1 = dephy(&dev, "1", &[&["s", "chain"]], t);
    c.publish_ok(&e1).await;
    let e2 = dephy(&dev, "2", &[&["s", "chain"], &["prev", &e1.id.to_hex()]], t + 1);
    c.publish_ok(&e2).await;
    let fork = dephy(&dev, "2'", &[&["s", "chain"], &["prev", &e1.id.to_hex()]], t + 2);
    let msg = c.publish_refused(&fork, "invalid:").await;
    assert!(msg.contains("fork"), "{msg}");
    // Another session of the same author is another chain.
    let other = dephy(&dev, "x", &[&["s", "other"], &["prev", &e2.id.to_hex()]], t + 2);
    c.publish_refused(&other, "invalid: fork").await;

    // Two publishers race on the same head: exactly one wins.
    let mut c2 = relay.connect().await;
    let a = dephy(&dev, "3a", &[&["s", "chain"], &["prev", &e2.id.to_hex()]], t + 3);
    let b = dephy(&dev, "3b", &[&["s", "chain"], &["prev", &e2.id.to_hex()]], t + 3);
    let (ra, rb) = tokio::join!(c.publish(&a), c2.publish(&b));
    assert!(ra.0 ^ rb.0, "exactly one of two racing successors is accepted: {ra:?} {rb:?}");
    let (winner, loser) = if ra.0 { (&a, rb) } else { (&b, ra) };
    assert!(loser.1.starts_with("invalid: fork"), "{loser:?}");

    // Replay: the chain in arrival order with log positions.
    let (status, body) = get(&relay, &format!("/sessions/{}/chain/events", dev.public_key().to_hex())).await;
    assert_eq!(status, 200, "{body}");
    let got: Vec<&str> =
        body["events"].as_array().unwrap().iter().map(|e| e["event"]["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![e1.id.to_hex(), e2.id.to_hex(), winner.id.to_hex()]);
    let positions: Vec<u64> =
        body["events"].as_array().unwrap().iter().map(|e| e["log_index"].as_u64().unwrap()).collect();
    assert_eq!(positions, vec![0, 1, 2]);
}

async fn log_api_rejects_bad_parameters(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let keys = Keys::generate();
    let e = dephy(&keys, "only", &[], now());
    c.publish_ok(&e).await;
    let id = e.id.to_hex();
    for (path, needle) in [
        ("/log/proof/inclusion?id=zz&tree_size=1", "64-character hex"),
        (&format!("/log/proof/inclusion?id={id}&tree_size=5") as &str, "larger than the log"),
        (&format!("/log/proof/inclusion?id={id}&tree_size=abc"), "integer"),
        ("/log/proof/consistency?first=0&second=1", "0 < first"),
        ("/log/proof/consistency?first=1&second=9", "0 < first"),
        ("/log/entries?start=5&end=1", "start < end"),
        ("/log/entries?start=3&end=4", "beyond the log"),
        ("/log/checkpoints?limit=0", "limit must be"),
        ("/sessions/nothex/s/events", "64-character hex"),
    ] {
        let (status, body) = get(&relay, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{path}: {body}");
    }
    let unknown = "00".repeat(32);
    let (status, body) = get(&relay, &format!("/log/proof/inclusion?id={unknown}&tree_size=1")).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = get(&relay, "/log/checkpoint").await;
    assert_eq!(status, 404, "no checkpoint yet");
}

async fn nip62_vanish_keeps_leaves(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "relay_url = \"wss://relay.example.com\"\n").await;
    let mut c = relay.connect().await;
    let (alice, bob) = (Keys::generate(), Keys::generate());
    let t = now() - 100;
    let a: Vec<Event> = (0..3).map(|i| dephy(&alice, &format!("a{i}"), &[&["s", "v"]], t + i)).collect();
    let b = dephy(&bob, "b", &[&["s", "v"]], t);
    for e in a.iter().chain([&b]) {
        c.publish_ok(e).await;
    }
    let size_before = get(&relay, "/log/entries?start=0&end=10").await.1["tree_size"].as_u64().unwrap();

    // A request naming another relay is refused; one naming this relay's relay_url is honoured.
    let elsewhere = sign(&alice, 62, "", &[&["relay", "wss://elsewhere.example"]], Some(t + 10));
    c.publish_refused(&elsewhere, "invalid:").await;
    let vanish = sign(&alice, 62, "bye", &[&["relay", "wss://relay.example.com/"]], Some(t + 10));
    c.publish_ok(&vanish).await;

    let left = c.req_ids("all", &[json!({"kinds": [DEPHY_KIND]})]).await;
    assert_eq!(left, vec![b.id.to_hex()], "alice's events are gone, bob's stay");
    c.publish_refused(&a[0], "blocked:").await;
    let later = dephy(&alice, "back", &[], now());
    c.publish_ok(&later).await;

    // The log kept every leaf: old proofs for vanished events still verify.
    let (_, body) = get(&relay, "/log/entries?start=0&end=100").await;
    assert_eq!(
        body["tree_size"].as_u64().unwrap(),
        size_before + 2,
        "vanish request + later event appended, nothing removed"
    );
    let proof = inclusion(&relay, &a[1].id.to_hex(), size_before).await;
    verify_inclusion(&proof);
}

async fn catch_up_cursor(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let keys = Keys::generate();
    // created_at deliberately out of order: the cursor follows arrival, not created_at.
    let evs: Vec<Event> = [50, 10, 40, 20, 30].iter().map(|d| dephy(&keys, "c", &[&["s", "cur"]], now() - d)).collect();
    for e in &evs {
        c.publish_ok(e).await;
    }
    let (_, body) = get(&relay, "/events?after=0&limit=10").await;
    let all: Vec<(i64, String)> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["seq"].as_i64().unwrap(), e["event"]["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        all.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(),
        hex_ids(&evs.iter().collect::<Vec<_>>()),
        "arrival order"
    );
    let cursor = all[1].0;

    // Over WebSocket: after_seq in the filter, each EVENT carries its seq; live ones too.
    c.send_json(&json!(["REQ", "cur", {"#s": ["cur"], "after_seq": cursor}])).await;
    let mut got = Vec::new();
    loop {
        let msg = c.recv_matching("cursor results", |m| m[1] == json!("cur")).await;
        if msg[0] == json!("EOSE") {
            break;
        }
        got.push((msg[3]["seq"].as_i64().expect("seq as 4th element"), msg[2]["id"].as_str().unwrap().to_string()));
    }
    assert_eq!(got, all[2..].to_vec(), "everything after the cursor, oldest first, with sequence numbers");
    let live = dephy(&keys, "live", &[&["s", "cur"]], now() - 100);
    let mut p = relay.connect().await;
    p.publish_ok(&live).await;
    let msg = c.recv_matching("live cursor event", |m| m[0] == json!("EVENT") && m[1] == json!("cur")).await;
    assert_eq!(msg[2]["id"], json!(live.id.to_hex()));
    assert!(msg[3]["seq"].as_i64().unwrap() > all[4].0, "live events carry their (higher) sequence");

    let (status, _) = get(&relay, "/events?after=-1").await;
    assert_eq!(status, 400);
}
