//! The JavaScript client (`clients/js`, npm `@dephy/relay-client`) against the Rust SDK and log,
//! in both directions, and its Node test suite against a real relay:
//!
//! - vectors the JavaScript client makes (`clients/js/test-support/js_vectors.js`: DePHY events and
//!   messages, payment authorizations signed through a wallet's `signMessage`, RFC 9162 roots and
//!   proofs, signed checkpoints) must pass the Rust verifiers and equal what Rust makes from the
//!   same inputs, and tampered copies must fail;
//! - vectors Rust makes are written to a file that `clients/js/test/crosscheck.test.js` must
//!   reproduce byte for byte or verify (and whose bad cases it must reject with the same error);
//! - `node --test clients/js/test/` runs against the relay started here (in-process, real
//!   WebSocket and HTTP on 127.0.0.1, SQLite file, checkpoints every second, NIP-42 auth required
//!   for reads), with `DEPHY_RELAY_URL` and `DEPHY_RUST_VECTORS` set; any failing or skipped
//!   JavaScript test fails this test.
//!
//! Needs Node.js >= 20 and `npm ci --prefix clients/js` (scripts/test runs it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dephy_device_sdk::event::{self, EventError};
use dephy_device_sdk::message::{Message, Payload, Reason, RecoverInfo, Status};
use dephy_device_sdk::payment::authorization;
use dephy_log::{Checkpoint, Frontier, Hash, NodeId};
use ed25519_dalek::SigningKey;
use nostr::{Event, EventBuilder, EventId, JsonUtil as _, Keys, Kind, SecretKey, Tag, Timestamp};
use serde_json::{Value, json};

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js")
}

/// Node.js with the global WebSocket (Node 20 needs the flag; later versions accept it).
fn node() -> Command {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/@noble/curves/package.json").exists(),
        "clients/js/node_modules is missing: run `npm ci --prefix clients/js` (scripts/test does)"
    );
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir).arg("--experimental-websocket");
    cmd
}

fn hex32(text: &str) -> [u8; 32] {
    let mut out = [0; 32];
    hex::decode_to_slice(text, &mut out).unwrap_or_else(|e| panic!("{text:?} is not 32 bytes of hex: {e}"));
    out
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or_else(|| panic!("expected a u64, got {v}"))
}

fn i64_of(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or_else(|| panic!("expected an i64, got {v}"))
}

fn event_of(v: &Value) -> Event {
    Event::from_json(v.to_string()).unwrap_or_else(|e| panic!("not a Nostr event ({e}): {v}"))
}

/// A leaf store and frontier over `leaves`, for Rust's own roots and proofs.
fn rust_tree(leaves: &[Hash]) -> (Vec<Hash>, HashMap<NodeId, Hash>) {
    let mut frontier = Frontier::new();
    let mut store = HashMap::new();
    let mut roots = Vec::new();
    for leaf in leaves {
        store.extend(frontier.push(*leaf));
        roots.push(frontier.root());
    }
    (roots, store)
}

fn hashes_of(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(|h| hex32(str_of(h))).collect()
}

fn hex_list(hashes: &[Hash]) -> Value {
    json!(hashes.iter().map(hex::encode).collect::<Vec<_>>())
}

#[test]
fn js_vectors_pass_the_rust_verifiers() {
    let out = node().arg("test-support/js_vectors.js").output().expect("run node");
    assert!(out.status.success(), "js_vectors.js failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("js_vectors.js prints JSON");

    // Payment authorizations: same digest as Rust, the same ed25519 signature as the Rust SDK
    // makes with the same wallet key (deterministic), verifying; tampered nonce fails.
    let wallet = SigningKey::from_bytes(&[0x44; 32]);
    assert_eq!(str_of(&v["wallet"]), authorization::wallet_address(&wallet));
    for a in v["authorizations"].as_array().unwrap() {
        let text = str_of(&a["payload"]);
        let payload = Payload::parse(text).unwrap();
        assert_eq!(payload.to_json(), text, "the payload JSON is byte-identical to Rust's");
        let info = payload.recover_info().unwrap();
        let extra: [u8; 64] = info.extra_data.as_slice().try_into().unwrap();
        let (ns, ns_id, nonce, deadline) =
            (str_of(&a["namespace"]), u64_of(&a["namespace_id"]), u64_of(&a["nonce"]), i64_of(&a["deadline"]));
        assert_eq!(authorization::digest(ns, &extra, ns_id, nonce, deadline), str_of(&a["digest"]));
        let rust = authorization::signed_payload(&wallet, ns, ns_id, nonce, deadline, extra);
        assert_eq!(rust.to_json(), text, "JS and Rust sign the same authorization identically");
        authorization::verify(&payload, ns_id, ns, i64::MIN).unwrap();
        let tampered = Payload { nonce: nonce ^ 1, ..payload.clone() };
        assert!(matches!(
            authorization::verify(&tampered, ns_id, ns, i64::MIN),
            Err(authorization::AuthorizationError::BadSignature { .. })
        ));
    }

    // DePHY events: valid, parsed, content byte-identical to Rust's serialization; tampering fails.
    for e in v["events"].as_array().unwrap() {
        let event = event_of(e);
        let parsed = event::parse(&event).unwrap_or_else(|err| panic!("Rust rejects a JS event ({err}): {e}"));
        assert_eq!(parsed.message.to_json(), event.content);
        assert_eq!(parsed.session, "js-session");
        let mut tampered = event.clone();
        tampered.content = tampered.content.replacen('"', " \"", 1);
        assert!(matches!(event::parse(&tampered), Err(EventError::Invalid(_))));
    }
    let request = event::parse(&event_of(&v["events"][0])).unwrap();
    let Message::Request { payload, .. } = &request.message else { panic!("the first JS event is a Request") };
    authorization::verify(&Payload::parse(payload).unwrap(), 1, "DeCharge", 0).unwrap();
    for m in v["messages"].as_array().unwrap() {
        let content = str_of(&m["content"]);
        let parsed = Message::parse(content).unwrap_or_else(|e| panic!("Rust rejects JS content {content}: {e}"));
        assert_eq!(parsed.to_json(), content);
        assert_eq!(parsed.name(), str_of(&m["message"]["type"]));
    }

    // The log: leaf hashes, every root, and every inclusion and consistency proof equal Rust's
    // and verify with the Rust verifiers; a flipped proof hash fails.
    let leaves: Vec<Hash> = v["log"]["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let computed = dephy_log::event_leaf_hash(&hex32(str_of(&l["event_id"])), u64_of(&l["received_ms"]));
            assert_eq!(hex::encode(computed), str_of(&l["leaf_hash"]));
            computed
        })
        .collect();
    let (roots, store) = rust_tree(&leaves);
    assert_eq!(json!(roots.iter().map(hex::encode).collect::<Vec<_>>()), v["log"]["roots"]);
    let lookup = |id: NodeId| store.get(&id).copied();
    for p in v["log"]["inclusion"].as_array().unwrap() {
        let (index, size) = (u64_of(&p["index"]), u64_of(&p["size"]));
        let proof = hashes_of(&p["proof"]);
        assert_eq!(dephy_log::inclusion_proof(index, size, lookup).unwrap(), proof, "inclusion {index} of {size}");
        let root = roots[size as usize - 1];
        dephy_log::verify_inclusion(&leaves[index as usize], index, size, &proof, &root).unwrap();
        if let Some(first) = proof.first() {
            let mut bad = proof.clone();
            bad[0] = dephy_log::node_hash(first, first);
            assert!(dephy_log::verify_inclusion(&leaves[index as usize], index, size, &bad, &root).is_err());
        }
    }
    for p in v["log"]["consistency"].as_array().unwrap() {
        let (m, n) = (u64_of(&p["m"]), u64_of(&p["n"]));
        let proof = hashes_of(&p["proof"]);
        assert_eq!(dephy_log::consistency_proof(m, n, lookup).unwrap(), proof, "consistency {m} -> {n}");
        let (old, new) = (roots[m as usize - 1], roots[n as usize - 1]);
        dephy_log::verify_consistency(m, n, &proof, &old, &new).unwrap();
        if let Some(last) = proof.last() {
            let mut bad = proof.clone();
            *bad.last_mut().unwrap() = dephy_log::node_hash(last, last);
            assert!(dephy_log::verify_consistency(m, n, &bad, &old, &new).is_err());
        }
    }

    // Checkpoints signed by the JS client pass Checkpoint::from_event with the relay key.
    let relay_pk = nostr::PublicKey::from_hex(str_of(&v["relay_pubkey"])).unwrap();
    for c in v["checkpoints"].as_array().unwrap() {
        let event = event_of(c);
        let cp = Checkpoint::from_event(&event, Some(&relay_pk)).unwrap();
        assert_eq!(hex::encode(cp.root_hash), str_of(&v["log"]["roots"][cp.tree_size as usize - 1]));
        let mut tampered = event.clone();
        tampered.content = tampered.content.replace("\"timestamp\":", "\"timestamp\": ");
        assert!(Checkpoint::from_event(&tampered, Some(&relay_pk)).is_err());
    }
}

/// The Rust error variant's name, which the JS client uses as `code`.
fn event_error_code(e: &EventError) -> &'static str {
    match e {
        EventError::WrongKind(_) => "WrongKind",
        EventError::Invalid(_) => "Invalid",
        EventError::MissingSession => "MissingSession",
        EventError::MissingMachine => "MissingMachine",
        EventError::DuplicateTag(..) => "DuplicateTag",
        EventError::BadMachine(_) => "BadMachine",
        EventError::WrongSession { .. } => "WrongSession",
        EventError::Message(_) => "Content",
    }
}

fn checkpoint_error_code(e: &dephy_log::Error) -> String {
    format!("{e:?}").split(['(', ' ', '{']).next().unwrap().to_string()
}

fn signed(keys: &Keys, kind: u16, content: &str, created_at: u64, tags: &[Vec<&str>]) -> Event {
    EventBuilder::new(Kind::from(kind), content)
        .tags(tags.iter().map(|t| Tag::parse(t.clone()).unwrap()))
        .custom_created_at(Timestamp::from(created_at))
        .allow_self_tagging()
        .sign_with_keys(keys)
        .unwrap()
}

/// Everything `crosscheck.test.js` must reproduce, verify or reject.
fn rust_vectors() -> Value {
    let user = Keys::new(SecretKey::from_slice(&[0x51; 32]).unwrap());
    let machine = Keys::new(SecretKey::from_slice(&[0x52; 32]).unwrap());
    let mpk = machine.public_key();

    // Messages with their fields in the JS shape.
    let id = EventId::from_byte_array([0xab; 32]);
    let messages = [
        (
            Message::Request {
                to_status: Status::Working,
                reason: Reason::UserRequest,
                initial_request: EventId::all_zeros(),
                payload: "{\"a\":1}".into(),
            },
            json!({"type":"Request","to_status":"Working","reason":"UserRequest","initial_request":"0".repeat(64),"payload":"{\"a\":1}"}),
        ),
        (
            Message::Status {
                status: Status::Available,
                reason: Reason::LockFailed,
                initial_request: id,
                payload: "tab\t nl\n quote\" bs\\ ctl\u{1} é 😀 \u{2028}".into(),
            },
            json!({"type":"Status","status":"Available","reason":"LockFailed","initial_request":id.to_hex(),"payload":"tab\t nl\n quote\" bs\\ ctl\u{1} é 😀 \u{2028}"}),
        ),
        (
            Message::Transaction { user: "Us3r".into(), tokens: -120 },
            json!({"type":"Transaction","user":"Us3r","tokens":-120}),
        ),
        (
            Message::Transaction { user: "u".into(), tokens: 9_007_199_254_740_991 },
            json!({"type":"Transaction","user":"u","tokens":9_007_199_254_740_991_i64}),
        ),
    ];
    let messages: Vec<Value> =
        messages.iter().map(|(m, fields)| json!({"content": m.to_json(), "message": fields})).collect();

    // Payment authorizations: digests and signatures from fixed wallet seeds (u64/i64 as strings).
    let extra: [u8; 64] = std::array::from_fn(|i| (i * 3) as u8);
    let auths: Vec<Value> = [
        ([1u8; 32], "DeCharge", 1u64, 0u64, 1_900_000_000i64),
        ([0x42; 32], "gacha", 2, 7, 1_767_225_600),
        ([0xfe; 32], "dephy-ns é", u64::MAX, u64::MAX, i64::MIN),
    ]
    .iter()
    .map(|(seed, ns, ns_id, nonce, deadline)| {
        let wallet = SigningKey::from_bytes(seed);
        let payload = authorization::signed_payload(&wallet, ns, *ns_id, *nonce, *deadline, extra);
        let info = payload.recover_info().unwrap();
        json!({
            "seed": hex::encode(seed), "namespace": ns, "namespace_id": ns_id.to_string(), "nonce": nonce.to_string(),
            "deadline": deadline.to_string(), "extra_data": hex::encode(extra),
            "digest": authorization::digest(ns, &extra, *ns_id, *nonce, *deadline),
            "signature": hex::encode(&info.signature), "user": payload.user, "payload": payload.to_json(),
        })
    })
    .collect();

    // DePHY events made by the Rust SDK.
    let info = RecoverInfo { signature: vec![7; 64], extra_data: vec![8; 64], deadline: 1_800_000_000 };
    let pay = Payload { namespace_id: 1, user: "User".into(), nonce: 3, recover_info: info.to_json() }.to_json();
    let req = event::request(&user, "rust-session", &mpk, Status::Working, Reason::UserRequest, None, &pay);
    let events = [
        req.clone(),
        event::status(&machine, "rust-session", Status::Working, Reason::UserRequest, req.id, "ok"),
        event::transaction(&machine, "rust-session", &mpk, "User", -5),
    ];
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let p = event::parse(e).unwrap();
            json!({"event": serde_json::from_str::<Value>(&e.as_json()).unwrap(), "author": p.author.to_hex(), "machine": p.machine.to_hex(), "session": p.session, "content": p.message.to_json()})
        })
        .collect();

    // Bad events with the error Rust gives.
    let good = Message::Transaction { user: "u".into(), tokens: 1 }.to_json();
    let m = mpk.to_hex();
    let mut tampered = signed(&user, 1573, &good, 1_700_000_000, &[vec!["s", "x"], vec!["p", &m]]);
    tampered.content = Message::Transaction { user: "u".into(), tokens: 1000 }.to_json();
    let bad_events = [
        signed(&user, 1, &good, 1_700_000_000, &[vec!["s", "x"], vec!["p", &m]]),
        signed(&user, 1573, &good, 1_700_000_000, &[vec!["p", &m]]),
        signed(&user, 1573, &good, 1_700_000_000, &[vec!["s", "x"]]),
        signed(&user, 1573, &good, 1_700_000_000, &[vec!["s", "x"], vec!["s", "y"], vec!["p", &m]]),
        signed(&user, 1573, &good, 1_700_000_000, &[vec!["s", "x"], vec!["p", "zz"]]),
        signed(&user, 1573, "{}", 1_700_000_000, &[vec!["s", "x"], vec!["p", &m]]),
        signed(
            &user,
            1573,
            r#"{"Status":{"status":"Broken","reason":"Reset","initial_request":"00","payload":""}}"#,
            1_700_000_000,
            &[vec!["s", "x"], vec!["p", &m]],
        ),
        tampered,
    ];
    let bad_events: Vec<Value> = bad_events
        .iter()
        .map(|e| {
            let err = event::parse(e).expect_err("a bad event");
            json!({"event": serde_json::from_str::<Value>(&e.as_json()).unwrap(), "code": event_error_code(&err)})
        })
        .collect();

    // The log: leaves, roots, and proofs from the stored-node assembly.
    let leaves: Vec<(String, u64, Hash)> = (0..21u64)
        .map(|i| {
            let id: [u8; 32] = std::array::from_fn(|k| (i as u8).wrapping_mul(17).wrapping_add(k as u8));
            let ms = 1_700_000_000_000 + i * 997;
            (hex::encode(id), ms, dephy_log::event_leaf_hash(&id, ms))
        })
        .collect();
    let hashes: Vec<Hash> = leaves.iter().map(|l| l.2).collect();
    let (roots, store) = rust_tree(&hashes);
    let lookup = |id: NodeId| store.get(&id).copied();
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for n in 1..=hashes.len() as u64 {
        for i in 0..n {
            inclusion.push(
                json!({"index": i, "size": n, "proof": hex_list(&dephy_log::inclusion_proof(i, n, lookup).unwrap())}),
            );
        }
        for m in 1..=n {
            consistency
                .push(json!({"m": m, "n": n, "proof": hex_list(&dephy_log::consistency_proof(m, n, lookup).unwrap())}));
        }
    }
    let log = json!({
        "leaves": leaves.iter().map(|(id, ms, h)| json!({"event_id": id, "received_ms": ms, "leaf_hash": hex::encode(h)})).collect::<Vec<_>>(),
        "roots": hex_list(&roots), "inclusion": inclusion, "consistency": consistency,
    });

    // Checkpoints signed with a relay key, and bad ones with Rust's error.
    let relay = Keys::new(SecretKey::from_slice(&[0x53; 32]).unwrap());
    let cp = Checkpoint { tree_size: 21, root_hash: roots[20], timestamp: 1_700_000_500, anchor: None };
    let anchored = Checkpoint {
        tree_size: 8,
        root_hash: roots[7],
        timestamp: 1_700_000_400,
        anchor: Some("sig\"with\\escapes".into()),
    };
    let checkpoints: Vec<Value> = [&cp, &anchored]
        .iter()
        .map(|c| json!({"event": serde_json::from_str::<Value>(&c.to_event(&relay).as_json()).unwrap(), "checkpoint": serde_json::to_value(c).unwrap()}))
        .collect();
    let content = serde_json::to_string(&cp).unwrap();
    let root = hex::encode(cp.root_hash);
    let good_tags = vec![vec!["tree_size", "21"], vec!["root", root.as_str()]];
    let mut forged = cp.to_event(&relay);
    forged.content = forged.content.replace("21", "22");
    let other = Keys::new(SecretKey::from_slice(&[0x54; 32]).unwrap());
    let bad_checkpoints = [
        forged,
        cp.to_event(&other),
        signed(&relay, 1, &content, cp.timestamp, &good_tags),
        signed(&relay, 1574, "not json", cp.timestamp, &good_tags),
        signed(&relay, 1574, &content.replace(',', ", "), cp.timestamp, &good_tags),
        signed(&relay, 1574, &content.replace(&root, &root.to_uppercase()), cp.timestamp, &good_tags),
        signed(&relay, 1574, &content.replace('}', r#","anchor":null}"#), cp.timestamp, &good_tags),
        signed(&relay, 1574, &content.replace('}', r#","extra":1}"#), cp.timestamp, &good_tags),
        signed(&relay, 1574, &content, cp.timestamp + 1, &good_tags),
        signed(&relay, 1574, &content, cp.timestamp, &[vec!["tree_size", "20"], vec!["root", root.as_str()]]),
        signed(&relay, 1574, &content, cp.timestamp, &[vec!["tree_size", "21"]]),
        signed(&relay, 1574, &content, cp.timestamp, &[vec!["tree_size", "21"], vec!["root", root.as_str(), "extra"]]),
    ];
    let bad_checkpoints: Vec<Value> = bad_checkpoints
        .iter()
        .map(|e| {
            let err = Checkpoint::from_event(e, Some(&relay.public_key())).expect_err("a bad checkpoint");
            json!({"event": serde_json::from_str::<Value>(&e.as_json()).unwrap(), "code": checkpoint_error_code(&err)})
        })
        .collect();

    json!({
        "messages": messages, "authorizations": auths, "events": events, "bad_events": bad_events, "log": log,
        "relay_pubkey": relay.public_key().to_hex(), "checkpoints": checkpoints, "bad_checkpoints": bad_checkpoints,
    })
}

/// Starts the relay in-process on a free 127.0.0.1 port (SQLite file, checkpoints every second,
/// NIP-42 auth required for reads) and returns its port.
fn start_relay(dir: &Path) -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = dephy_relay::config::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        db: format!("sqlite://{}", dir.join("relay.db").display()),
        key_file: dir.join("relay.key"),
        ..Default::default()
    };
    cfg.log.checkpoint_interval_secs = 1;
    cfg.auth.required_for_read = true;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        if let Err(e) = rt.block_on(dephy_relay::server::serve(cfg)) {
            panic!("the in-process relay stopped: {e:#}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the relay did not listen on {port} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    port
}

#[test]
fn node_suite_passes_against_a_real_relay_with_rust_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = dir.path().join("rust_vectors.json");
    std::fs::write(&vectors, rust_vectors().to_string()).unwrap();
    let port = start_relay(dir.path());

    let out = node()
        .args(["--test", "--test-reporter=tap", "test/"])
        .env("DEPHY_RELAY_URL", format!("ws://127.0.0.1:{port}"))
        .env("DEPHY_RUST_VECTORS", &vectors)
        .output()
        .expect("run node --test");
    let tap = String::from_utf8_lossy(&out.stdout);
    let summary = |name: &str| -> Option<u64> {
        tap.lines().find_map(|l| l.strip_prefix(&format!("# {name} "))).and_then(|n| n.trim().parse().ok())
    };
    assert!(
        out.status.success() && summary("fail") == Some(0),
        "the JavaScript tests failed:\n{tap}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary("skipped"), Some(0), "no JavaScript test may be skipped here:\n{tap}");
    assert_eq!(summary("cancelled"), Some(0), "{tap}");
    assert!(summary("pass").is_some_and(|n| n >= 20), "fewer JavaScript tests ran than expected:\n{tap}");
}
