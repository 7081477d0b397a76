//! NIP-09 deletion, NIP-11 information document, NIP-40 expiration, NIP-42 authentication,
//! NIP-45 COUNT, NIP-70 protected events, plus /health and /metrics. Both backends.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use nostr::prelude::*;
use serde_json::json;

backend_tests!(
    nip09_deletion_by_e_and_a_tags,
    nip09_cannot_delete_others,
    nip09_replaceable_and_live,
    nip11_document,
    nip11_key_file_and_persistence,
    nip11_accept_header_variants,
    nip40_expiration,
    nip40_expired_rows_purged,
    nip42_auth_handshake,
    nip42_required_for_write,
    nip42_required_for_read,
    nip42_configured_relay_url,
    nip45_count,
    nip70_protected_events,
    health_and_metrics,
);

async fn nip09_deletion_by_e_and_a_tags(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let alice = Keys::generate();
    let bob = Keys::generate();
    let (ap, bp) = (pk(&alice), pk(&bob));
    let t = now() - 100;
    let e1 = dephy(&alice, "e1", &[], t);
    let e2 = dephy(&alice, "e2", &[], t + 1);
    let ax = sign(&alice, 30573, "ax", &[&["d", "x"]], Some(t + 2));
    let ay = sign(&alice, 30573, "ay", &[&["d", "y"]], Some(t + 3));
    let b1 = dephy(&bob, "b1", &[], t + 4);
    let bx = sign(&bob, 30573, "bx", &[&["d", "x"]], Some(t + 5));
    for e in [&e1, &e2, &ax, &ay, &b1, &bx] {
        c.publish_ok(e).await;
    }
    let a_x = format!("30573:{ap}:x");
    let b_x = format!("30573:{bp}:x");
    let del = sign(
        &alice,
        5,
        "cleanup",
        &[&["e", &e1.id.to_hex()], &["e", &b1.id.to_hex()], &["a", &a_x], &["a", &b_x]],
        Some(t + 10),
    );
    c.publish_ok(&del).await;

    let got = c.req_ids("alice", &[json!({"authors": [ap]})]).await;
    assert_eq!(
        got,
        vec![del.id.to_hex(), ay.id.to_hex(), e2.id.to_hex()],
        "alice's e1 and ax deleted, deletion stored"
    );
    let got = c.req_ids("ids", &[json!({"ids": [e1.id.to_hex(), ax.id.to_hex()]})]).await;
    assert!(got.is_empty(), "deleted events not returned by id: {got:?}");
    let got = c.req_ids("bob", &[json!({"authors": [bp]})]).await;
    assert_eq!(got, vec![bx.id.to_hex(), b1.id.to_hex()], "bob's events are untouched");
    let got = c.req("k5", &[json!({"kinds": [5]})]).await;
    assert_eq!(got.len(), 1);
    assert_same_event(&got[0], &del);
    assert_eq!(c.count("n", &[json!({"authors": [ap], "kinds": [1573]})]).await, 1);

    // Resubmitting a deleted event is blocked, on any connection.
    c.publish_refused(&e1, "blocked:").await;
    let mut c2 = relay.connect().await;
    c2.publish_refused(&e1, "blocked:").await;
    // Bob's event referenced by alice's deletion is still accepted (duplicate).
    let (ok, msg) = c2.publish(&b1).await;
    assert!(ok, "bob's event must not be blocked by alice's deletion: {msg:?}");

    // A newer version of the deleted address (created after the deletion) is accepted.
    let ax_new = sign(&alice, 30573, "ax-new", &[&["d", "x"]], Some(t + 20));
    c.publish_ok(&ax_new).await;
    let got = c.req_ids("ax", &[json!({"authors": [ap], "#d": ["x"]})]).await;
    assert_eq!(got, vec![ax_new.id.to_hex()]);
    // An older version of the deleted address stays deleted.
    let ax_old = sign(&alice, 30573, "ax-old", &[&["d", "x"]], Some(t + 8));
    let _ = c.publish(&ax_old).await;
    let got = c.req_ids("ax2", &[json!({"authors": [ap], "#d": ["x"]})]).await;
    assert_eq!(got, vec![ax_new.id.to_hex()]);
}

async fn nip09_cannot_delete_others(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let alice = Keys::generate();
    let mallory = Keys::generate();
    let e = dephy(&alice, "mine", &[], now() - 10);
    let a = sign(&alice, 30573, "addr", &[&["d", "z"]], Some(now() - 10));
    c.publish_ok(&e).await;
    c.publish_ok(&a).await;
    let coord = format!("30573:{}:z", pk(&alice));
    let del = sign(&mallory, 5, "", &[&["e", &e.id.to_hex()], &["a", &coord]], None);
    c.publish_ok(&del).await;
    let got = c.req_ids("q", &[json!({"authors": [pk(&alice)]})]).await;
    assert_eq!(sorted(got), sorted(vec![e.id.to_hex(), a.id.to_hex()]), "other authors' deletions have no effect");
    let (ok, msg) = c.publish(&e).await;
    assert!(ok, "not blocked: {msg:?}");
    // The deletion request itself is stored.
    assert_eq!(c.req_ids("d", &[json!({"kinds": [5]})]).await, vec![del.id.to_hex()]);
}

async fn nip09_replaceable_and_live(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let mut sub = relay.connect().await;
    let k = Keys::generate();
    let a = pk(&k);
    let t = now() - 100;
    let r = sign(&k, 10573, "replaceable", &[], Some(t));
    let meta = sign(&k, 0, "{}", &[], Some(t));
    c.publish_ok(&r).await;
    c.publish_ok(&meta).await;
    assert!(sub.req("del", &[json!({"kinds": [5], "authors": [a]})]).await.is_empty());
    // Replaceable events are addressed as `kind:pubkey:` (empty d).
    let del = sign(&k, 5, "", &[&["a", &format!("10573:{a}:")], &["a", &format!("0:{a}:")]], Some(t + 10));
    c.publish_ok(&del).await;
    assert_same_event(&sub.next_event("del").await, &del);
    let got = c.req_ids("q", &[json!({"authors": [a], "kinds": [0, 10573]})]).await;
    assert!(got.is_empty(), "replaceable events deleted by `a` coordinate: {got:?}");
    // A deletion by id of an event that is then resubmitted on a new connection: blocked.
    let e = dephy(&k, "x", &[], t);
    c.publish_ok(&e).await;
    c.publish_ok(&sign(&k, 5, "", &[&["e", &e.id.to_hex()]], None)).await;
    let mut c2 = relay.connect().await;
    c2.publish_refused(&e, "blocked:").await;
    assert!(c2.req_ids("q2", &[json!({"ids": [e.id.to_hex()]})]).await.is_empty());
}

const NIP11_CONFIG: &str = r#"
[info]
name = "test-relay-name"
description = "integration test relay"
contact = "mailto:ops@example.com"

[limits]
max_message_bytes = 123456
max_event_bytes = 65432
max_event_tags = 321
max_content_bytes = 54321
created_at_future_secs = 600
max_subscriptions = 17
max_filters = 7
max_limit = 777
default_limit = 77
max_subid_length = 33
"#;

async fn nip11_document(backend: Backend) {
    let (_db, relay) = Relay::start(backend, NIP11_CONFIG).await;
    let r = relay.nip11().await;
    assert_eq!(r.status, 200, "NIP-11 status; body {}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "CORS header: {:?}", r.headers);
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.contains("json"), "content-type is JSON: {ct:?}");
    let doc = r.json();
    assert_eq!(doc["name"], json!("test-relay-name"));
    assert_eq!(doc["description"], json!("integration test relay"));
    assert_eq!(doc["contact"], json!("mailto:ops@example.com"));
    let pubkey = doc["pubkey"].as_str().expect("pubkey string");
    assert_eq!(pubkey.len(), 64, "pubkey is 64 hex chars: {pubkey}");
    assert!(pubkey.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "lowercase hex: {pubkey}");
    assert!(PublicKey::from_hex(pubkey).is_ok(), "pubkey is a valid x-only key");
    let nips: Vec<u64> = doc["supported_nips"]
        .as_array()
        .expect("supported_nips array")
        .iter()
        .map(|v| v.as_u64().expect("nip numbers are integers"))
        .collect();
    for n in [1, 9, 11, 40, 42, 45, 62, 70, 77] {
        assert!(nips.contains(&n), "supported_nips contains {n}: {nips:?}");
    }
    assert!(doc["software"].as_str().is_some_and(|s| !s.is_empty()), "software: {doc}");
    assert!(doc["version"].as_str().is_some_and(|s| !s.is_empty()), "version: {doc}");
    let l = &doc["limitation"];
    assert_eq!(l["max_message_length"], json!(123456), "{l}");
    assert_eq!(l["max_subscriptions"], json!(17), "{l}");
    assert_eq!(l["max_limit"], json!(777), "{l}");
    assert_eq!(l["max_event_tags"], json!(321), "{l}");
    assert_eq!(l["max_content_length"], json!(54321), "{l}");
    assert_eq!(l["default_limit"], json!(77), "{l}");
    assert_eq!(l["created_at_upper_limit"], json!(600), "{l}");
    assert_eq!(l["auth_required"], json!(false), "{l}");
    assert_eq!(l["restricted_writes"], json!(false), "{l}");
    if !l["max_subid_length"].is_null() {
        assert_eq!(l["max_subid_length"], json!(33), "{l}");
    }
    if !l["max_filters"].is_null() {
        assert_eq!(l["max_filters"], json!(7), "{l}");
    }

    // The limits reported are the limits enforced.
    let mut c = relay.connect().await;
    let filters: Vec<serde_json::Value> = (0..8).map(|_| json!({"limit": 1})).collect();
    let m = c.req_closed("f", &filters).await;
    assert!(m.starts_with("invalid:"), "8 filters > max_filters 7: {m:?}");

    // With auth required, the document says so.
    let cfg = format!("{NIP11_CONFIG}\n[auth]\nrequired_for_write = true\nrequired_for_read = true\n");
    let (_db2, relay2) = Relay::start(backend, &cfg).await;
    let doc = relay2.nip11().await.json();
    assert_eq!(doc["limitation"]["auth_required"], json!(true), "{doc}");
    assert_eq!(doc["limitation"]["restricted_writes"], json!(true), "{doc}");
}

/// Accept headers as browsers and libraries send them; media types are case-insensitive
/// (RFC 9110 section 8.3.1).
async fn nip11_accept_header_variants(backend: Backend) {
    let (_db, relay) = Relay::start(backend, NIP11_CONFIG).await;
    let mut failures = Vec::new();
    for accept in [
        "application/nostr+json, text/html;q=0.9",
        "text/html, application/nostr+json;q=0.9",
        "application/nostr+json; charset=utf-8",
        "APPLICATION/NOSTR+JSON",
        "Application/Nostr+JSON",
    ] {
        let r = http_get(relay.port, "/", &[("Accept", accept)]).await.unwrap();
        let ok = r.status == 200
            && serde_json::from_slice::<serde_json::Value>(&r.body)
                .is_ok_and(|d| d["name"] == json!("test-relay-name"));
        if !ok {
            failures.push(format!(
                "Accept: {accept} -> {} {:?}",
                r.status,
                r.text().chars().take(60).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "NIP-11 not served for: {failures:#?}");
}

async fn nip11_key_file_and_persistence(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Generated key: persisted in data/relay.key under the cwd and stable across restarts.
    let mut relay = Relay::spawn(&db, "gen", "").await;
    let pk1 = relay.nip11().await.json()["pubkey"].as_str().unwrap().to_string();
    let key_path = relay.workdir.join("data/relay.key");
    assert!(key_path.exists(), "key file written at {}", key_path.display());
    let secret = std::fs::read_to_string(&key_path).unwrap();
    let keys = Keys::parse(secret.trim()).expect("key file holds a secret key");
    assert_eq!(keys.public_key().to_hex(), pk1, "NIP-11 pubkey is the key file's public key");
    relay.restart(&db).await;
    let pk2 = relay.nip11().await.json()["pubkey"].as_str().unwrap().to_string();
    assert_eq!(pk1, pk2, "pubkey stable across restarts");
    drop(relay);

    // Configured key_file with a known key.
    let known = Keys::generate();
    let path = db.dir.path().join("known.key");
    std::fs::write(&path, known.secret_key().to_secret_hex()).unwrap();
    let cfg = format!("key_file = \"{}\"\n", path.display());
    let relay = Relay::spawn(&db, "known", &cfg).await;
    let doc = relay.nip11().await.json();
    assert_eq!(doc["pubkey"], json!(pk(&known)), "pubkey from the configured key_file");
}

async fn nip40_expiration(backend: Backend) {
    let cfg = "[store]\npurge_interval_secs = 1\n";
    let (_db, relay) = Relay::start(backend, cfg).await;
    let mut c = relay.connect().await;
    let k = Keys::generate();

    let past = now() - 10;
    let expired = sign(&k, DEPHY_KIND, "already expired", &[&["expiration", &past.to_string()]], None);
    c.publish_refused(&expired, "invalid:").await;

    let exp = now() + 2;
    let short = sign(&k, DEPHY_KIND, "expires soon", &[&["expiration", &exp.to_string()]], None);
    let long_exp = now() + 3600;
    let long = sign(&k, DEPHY_KIND, "expires later", &[&["expiration", &long_exp.to_string()]], None);
    c.publish_ok(&short).await;
    c.publish_ok(&long).await;
    let got = c.req_ids("before", &[json!({"authors": [pk(&k)]})]).await;
    assert_eq!(sorted(got), sorted(vec![short.id.to_hex(), long.id.to_hex()]), "both returned before expiry");

    // Wait (bounded) until past the expiration, then it is no longer returned.
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let port = relay.port;
    let sid = short.id.to_hex();
    let gone = eventually(Duration::from_secs(5), || {
        let sid = sid.clone();
        async move {
            let mut c = Conn::connect(port).await;
            c.req_ids("after", &[json!({"ids": [sid]})]).await.is_empty()
        }
    })
    .await;
    assert!(gone, "expired event still returned after its expiration");
    let got = c.req_ids("after2", &[json!({"authors": [pk(&k)]})]).await;
    assert_eq!(got, vec![long.id.to_hex()], "only the unexpired event remains");
    assert_eq!(c.count("n", &[json!({"authors": [pk(&k)]})]).await, 1, "COUNT excludes expired events");
}

/// Counts rows of the relay's `events` table whose `raw` JSON contains `needle` (reads the
/// database directly; relies on the table layout in migrations/).
async fn raw_rows_containing(db: &TestDb, needle: &str) -> i64 {
    use sqlx::Connection as _;
    let pattern = format!("%{needle}%");
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.expect("open sqlite db");
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE raw LIKE ?")
                .bind(pattern)
                .fetch_one(&mut c)
                .await
                .expect("count rows");
            let _ = c.close().await;
            n
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.expect("open pg db");
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE raw LIKE $1")
                .bind(pattern)
                .fetch_one(&mut c)
                .await
                .expect("count rows");
            let _ = c.close().await;
            n
        }
    }
}

async fn nip40_expired_rows_purged(backend: Backend) {
    let (db, relay) = Relay::start(backend, "[store]\npurge_interval_secs = 1\n").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let marker = format!("purge-me-{}", rand::random::<u32>());
    let exp = now() + 2;
    let e = sign(&k, DEPHY_KIND, &marker, &[&["expiration", &exp.to_string()]], None);
    c.publish_ok(&e).await;
    assert_eq!(raw_rows_containing(&db, &marker).await, 1, "stored before expiry");
    let purged = eventually(Duration::from_secs(8), || {
        let (db, marker) = (&db, &marker);
        async move { raw_rows_containing(db, marker).await == 0 }
    })
    .await;
    assert!(purged, "expired event still in the database 6 s after its expiration (purge_interval_secs = 1)");
}

async fn nip42_auth_handshake(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let ch = c.wait_challenge().await;
    assert!(ch.len() >= 8, "challenge is non-trivial: {ch:?}");
    let c2 = relay.connect().await;
    assert_ne!(c2.challenge.as_deref(), Some(ch.as_str()), "challenges differ per connection");

    let k = Keys::generate();
    let url = relay.url();
    // Wrong challenge.
    let (ok, msg) = c.auth_with(&k, &url, "not-the-challenge").await;
    assert!(!ok, "wrong challenge accepted ({msg:?})");
    // Wrong relay URL.
    let (ok, msg) = c.auth_with(&k, "ws://relay.invalid.example:1", &ch).await;
    assert!(!ok, "wrong relay url accepted ({msg:?})");
    // Another connection's challenge.
    let ch2 = c2.challenge.clone().expect("challenge on second connection");
    let (ok, msg) = c.auth_with(&k, &url, &ch2).await;
    assert!(!ok, "another connection's challenge accepted ({msg:?})");
    // Wrong kind.
    let wrong_kind = EventBuilder::new(Kind::from(1u16), "")
        .tags([Tag::parse(["relay", url.as_str()]).unwrap(), Tag::parse(["challenge", ch.as_str()]).unwrap()])
        .sign_with_keys(&k)
        .unwrap();
    c.send_json(&json!(["AUTH", ev_json(&wrong_kind)])).await;
    let id = wrong_kind.id.to_hex();
    let v = c.recv_matching("OK for wrong-kind AUTH", |v| v[0] == "OK" && v[1] == json!(id)).await;
    assert_eq!(v[2], json!(false), "AUTH with kind 1 accepted: {v}");
    // Stale created_at.
    let stale = EventBuilder::new(Kind::from(22242u16), "")
        .tags([Tag::parse(["relay", url.as_str()]).unwrap(), Tag::parse(["challenge", ch.as_str()]).unwrap()])
        .custom_created_at(Timestamp::from_secs(now() - 3600))
        .sign_with_keys(&k)
        .unwrap();
    c.send_json(&json!(["AUTH", ev_json(&stale)])).await;
    let id = stale.id.to_hex();
    let v = c.recv_matching("OK for stale AUTH", |v| v[0] == "OK" && v[1] == json!(id)).await;
    assert_eq!(v[2], json!(false), "AUTH created an hour ago accepted: {v}");

    // Correct.
    let (ok, msg) = c.auth_with(&k, &url, &ch).await;
    assert!(ok, "valid AUTH refused: {msg:?}");
    assert_eq!(msg, "");
    // AUTH events are not stored / served.
    assert!(c.req("a", &[json!({"kinds": [22242]})]).await.is_empty(), "AUTH events must not be stored");
    // Publishing a kind-22242 event via EVENT is not stored either (ephemeral range).
    let _ = c.publish(&sign(&k, 22242, "", &[&["relay", &url], &["challenge", &ch]], None)).await;
    assert!(c.req("a2", &[json!({"kinds": [22242]})]).await.is_empty());
}

async fn nip42_required_for_write(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[auth]\nrequired_for_write = true\n").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let e = sign(&k, DEPHY_KIND, "needs auth", &[], None);
    c.publish_refused(&e, "auth-required:").await;
    // Reads are open.
    assert!(c.req("r", &[json!({"authors": [pk(&k)]})]).await.is_empty());
    assert_eq!(c.count("n", &[json!({"authors": [pk(&k)]})]).await, 0);
    // Authenticating as any key allows writing.
    let authk = Keys::generate();
    c.auth(&authk).await;
    c.publish_ok(&e).await;
    assert_eq!(c.req_ids("r2", &[json!({"authors": [pk(&k)]})]).await, vec![e.id.to_hex()]);
    // Authentication is per connection.
    let mut c2 = relay.connect().await;
    let e2 = sign(&k, DEPHY_KIND, "second connection", &[], None);
    c2.publish_refused(&e2, "auth-required:").await;
}

async fn nip42_required_for_read(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[auth]\nrequired_for_read = true\n").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let e = sign(&k, DEPHY_KIND, "readable after auth", &[], None);
    c.publish_ok(&e).await; // writes are open
    let m = c.req_closed("r", &[json!({"authors": [pk(&k)]})]).await;
    assert!(m.starts_with("auth-required:"), "REQ before AUTH: {m:?}");
    match c.count_result("n", &[json!({"authors": [pk(&k)]})]).await {
        Err(m) => assert!(m.starts_with("auth-required:"), "COUNT before AUTH: {m:?}"),
        Ok(n) => panic!("COUNT before AUTH answered {n}"),
    }
    // The refused subscription was not registered: nothing is delivered live on it.
    let mut other = relay.connect().await;
    let live = sign(&k, DEPHY_KIND, "published while unauthenticated", &[], None);
    other.publish_ok(&live).await;
    c.auth(&k).await;
    assert_eq!(
        sorted(c.req_ids("r2", &[json!({"authors": [pk(&k)]})]).await),
        sorted(vec![e.id.to_hex(), live.id.to_hex()])
    );
    for v in c.drain(Duration::from_millis(300)).await {
        assert!(!(v[0] == "EVENT" && v[1] == "r"), "event delivered on a subscription refused with auth-required: {v}");
    }
    assert_eq!(c.count("n", &[json!({"authors": [pk(&k)]})]).await, 2);
}

async fn nip42_configured_relay_url(backend: Backend) {
    let cfg = "relay_url = \"wss://relay.example.com\"\n[auth]\nrequired_for_write = true\n";
    let (_db, relay) = Relay::start(backend, cfg).await;
    let mut c = relay.connect().await;
    let ch = c.wait_challenge().await;
    let k = Keys::generate();
    let (ok, msg) = c.auth_with(&k, &relay.url(), &ch).await;
    assert!(!ok, "with relay_url set, the Host-derived URL must not be accepted ({msg:?})");
    let (ok, msg) = c.auth_with(&k, "wss://relay.example.com", &ch).await;
    assert!(ok, "configured relay_url refused: {msg:?}");
    c.publish_ok(&sign(&k, DEPHY_KIND, "authed", &[], None)).await;
}

async fn nip45_count(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let a = Keys::generate();
    let b = Keys::generate();
    let t = now() - 100;
    for i in 0..5 {
        c.publish_ok(&dephy(&a, &format!("a{i}"), &[&["s", if i % 2 == 0 { "even" } else { "odd" }]], t + i)).await;
    }
    for i in 0..3 {
        c.publish_ok(&sign(&b, 1574, &format!("b{i}"), &[], Some(t + i))).await;
    }
    assert_eq!(c.count("c1", &[json!({"authors": [pk(&a)]})]).await, 5);
    assert_eq!(c.count("c2", &[json!({"kinds": [1573, 1574]})]).await, 8);
    assert_eq!(c.count("c3", &[json!({"authors": [pk(&a)]}), json!({"authors": [pk(&b)]})]).await, 8, "filters OR'ed");
    assert_eq!(c.count("c4", &[json!({"#s": ["even"]})]).await, 3);
    assert_eq!(c.count("c5", &[json!({"authors": [pk(&a)], "since": t + 3})]).await, 2);
    assert_eq!(c.count("c6", &[json!({"ids": ["00".repeat(32)]})]).await, 0);
    // Exact reply shape.
    c.send_json(&json!(["COUNT", "shape", {"authors": [pk(&b)]}])).await;
    let v = c.recv_matching("COUNT reply", |v| v[0] == "COUNT").await;
    assert_eq!(v, json!(["COUNT", "shape", {"count": 3}]));
}

async fn nip70_protected_events(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let author = Keys::generate();
    let other = Keys::generate();
    let e = sign(&author, DEPHY_KIND, "protected", &[&["-"]], None);

    let mut anon = relay.connect().await;
    anon.publish_refused(&e, "auth-required:").await;

    let mut as_other = relay.connect().await;
    as_other.auth(&other).await;
    as_other.publish_refused(&e, "restricted:").await;

    let mut as_author = relay.connect().await;
    as_author.auth(&author).await;
    as_author.publish_ok(&e).await;

    // Stored and readable by anyone.
    let got = anon.req("q", &[json!({"ids": [e.id.to_hex()]})]).await;
    assert_eq!(got.len(), 1);
    assert_same_event(&got[0], &e);
    // Unprotected events by the same author need no auth.
    anon.publish_ok(&sign(&author, DEPHY_KIND, "open", &[], None)).await;
}

async fn health_and_metrics(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let h = http_get(relay.port, "/health", &[]).await.expect("GET /health");
    assert_eq!(h.status, 200);
    // Some traffic so counters exist.
    let mut c = relay.connect().await;
    let k = Keys::generate();
    c.publish_ok(&sign(&k, DEPHY_KIND, "metrics", &[], None)).await;
    c.req("m", &[json!({"limit": 1})]).await;
    let m = http_get(relay.port, "/metrics", &[]).await.expect("GET /metrics");
    assert_eq!(m.status, 200, "/metrics status");
    let body = m.text();
    let samples: Vec<&str> = body.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(!samples.is_empty(), "metrics has samples after traffic: {body}");
    for line in &samples {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value), "bad sample line {line:?}");
    }
    // NIP-11 only for the right Accept header: a plain GET / is not the NIP-11 JSON with a pubkey
    // (the WebSocket endpoint needs an upgrade), or if it is, it is still a valid response.
    let plain = http_get(relay.port, "/", &[]).await.expect("GET /");
    assert!(plain.status < 500, "plain GET / must not be a server error: {}", plain.status);
}
