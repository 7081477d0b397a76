//! NIP-77 negentropy syncing against a real relay process (SQLite and PostgreSQL).
//!
//! Reconciliation is checked against an independent implementation: nostr-tools' JavaScript
//! port of hoytech's negentropy (`tests/support/negentropy_client.js`, npm nostr-tools@2.25.2,
//! which scripts/test installs into target/npm-nostr-tools), and nostr-sdk's `sync` (its own
//! client side, uploading and downloading what differs). The JS client holds a set partly
//! overlapping the relay's and must learn exactly the two set differences, over several rounds
//! (the relay's frame limit is the minimum). The rest drives the protocol over raw WebSockets:
//! the filter (kinds, authors, tags, since/until, limit), the record cap, bad messages,
//! NEG-CLOSE, replaced and idle sessions, the session cap, read auth and the output budget.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use negentropy::{Negentropy, NegentropyStorageVector};
use nostr::prelude::*;
use serde_json::{Value, json};

backend_tests!(
    js_client_learns_exact_set_differences,
    filter_decides_the_relay_side_set,
    too_many_records_is_blocked,
    protocol_errors_and_session_lifecycle,
    idle_sessions_are_closed,
    read_auth_is_required_like_req,
    session_records_count_in_the_output_budget,
    nostr_sdk_syncs_both_ways,
);

/// No checkpoint events (kind 1574, signed by the relay) appear in the middle of a test's set.
const NO_CHECKPOINTS: &str = "[log]\ncheckpoint_interval_secs = 0\ncheckpoint_every_events = 0\n";

// ---------------------------------------------------------------------------------------------
// The independent client
// ---------------------------------------------------------------------------------------------

fn node_path() -> String {
    std::env::var("NODE_PATH").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/npm-nostr-tools/node_modules")
            .to_string_lossy()
            .into_owned()
    })
}

/// Runs one NIP-77 session with the JS client holding `items` (`(created_at, id)`); returns its
/// JSON result: `{have, need, rounds}` or `{error, rounds}`. `extra` adds input fields.
async fn js_sync(port: u16, filter: Value, items: &[(u64, String)], extra: Value) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input = json!({
        "url": format!("ws://127.0.0.1:{port}"),
        "filter": filter,
        "items": items.iter().map(|(t, id)| json!([t, id])).collect::<Vec<_>>(),
        "timeoutMs": 30_000,
    });
    if let Value::Object(extra) = extra {
        input.as_object_mut().unwrap().extend(extra);
    }
    let path = dir.path().join("input.json");
    std::fs::write(&path, input.to_string()).expect("write input");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/negentropy_client.js");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node").arg(&script).arg(&path).env("NODE_PATH", node_path()).output(),
    )
    .await
    .expect("the JS client ended within 60 s")
    .unwrap_or_else(|e| panic!("cannot run `node {}` (is Node.js >= 20.10 installed?): {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "JS negentropy client failed ({}); is nostr-tools on NODE_PATH ({})? scripts/test installs it\n{stderr}",
        out.status,
        node_path()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        let shown: String = stdout.chars().take(400).collect();
        panic!("JS output ({} bytes) is not one JSON line: {e}: {shown}...", stdout.len())
    })
}

fn id_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("id list expected, got {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().into())
        .collect()
}

fn items_of(events: &[&Event]) -> Vec<(u64, String)> {
    events.iter().map(|e| (e.created_at.as_secs(), e.id.to_hex())).collect()
}

fn ids(events: &[&Event]) -> BTreeSet<String> {
    events.iter().map(|e| e.id.to_hex()).collect()
}

/// Asserts a completed session with exactly these differences, as sets: when the responder's
/// frames are cut at its frame limit, an initiator may report an id more than once (hoytech's
/// algorithm in the negentropy crate does the same against itself; clients deduplicate).
fn assert_sync(result: &Value, have: &BTreeSet<String>, need: &BTreeSet<String>) {
    assert!(result.get("error").is_none(), "session refused: {result}");
    for (key, want, what) in [
        ("have", have, "ids the client holds and the relay does not"),
        ("need", need, "ids the relay holds and the client does not"),
    ] {
        let got = id_set(&result[key]);
        let (missing, extra): (Vec<_>, Vec<_>) = (want.difference(&got).collect(), got.difference(want).collect());
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{key} ({what}): {} distinct reported, {} expected; missing {missing:?}, unexpected {extra:?}",
            got.len(),
            want.len()
        );
    }
}

async fn publish_all(relay: &Relay, events: &[Event]) {
    let mut c = relay.connect().await;
    c.timeout = Duration::from_secs(30);
    for (ok, msg) in c.publish_pipelined(events.iter()).await {
        assert!(ok, "publish refused: {msg}");
    }
}

async fn metrics_text(relay: &Relay) -> String {
    http_get(relay.port, "/metrics", &[]).await.expect("GET /metrics").text()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("series {series} not in /metrics:\n{text}"))
}

/// The hex initial message of an initiator holding nothing.
fn empty_initial() -> String {
    let mut storage = NegentropyStorageVector::new();
    storage.seal().unwrap();
    hex::encode(Negentropy::owned(storage, 0).unwrap().initiate().unwrap())
}

async fn neg_reply(c: &mut Conn, sub: &str) -> Value {
    let sub = sub.to_string();
    c.recv_matching(&format!("NEG-MSG/NEG-ERR for {sub}"), move |v| {
        matches!(v[0].as_str(), Some("NEG-MSG" | "NEG-ERR")) && v[1].as_str() == Some(&sub)
    })
    .await
}

async fn expect_neg_err(c: &mut Conn, sub: &str, prefix: &str) -> String {
    let v = neg_reply(c, sub).await;
    assert_eq!(v[0], "NEG-ERR", "expected NEG-ERR {prefix:?} for {sub}, got {v}");
    let msg = v[2].as_str().unwrap().to_string();
    assert!(msg.starts_with(prefix), "NEG-ERR for {sub}: {msg:?} does not start with {prefix:?}");
    msg
}

async fn expect_neg_msg(c: &mut Conn, sub: &str) -> String {
    let v = neg_reply(c, sub).await;
    assert_eq!(v[0], "NEG-MSG", "expected NEG-MSG for {sub}, got {v}");
    v[2].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// 2,000 events on the relay (created_at ties, two kinds, three authors), 1,700 on the client,
/// 1,400 in common: the JS client learns exactly the 300 it alone holds and the 600 it lacks,
/// over several rounds, since the relay's frames are at the 4 KiB minimum.
async fn js_client_learns_exact_set_differences(backend: Backend) {
    let config = format!("{NO_CHECKPOINTS}[limits]\nnegentropy_frame_bytes = 4096\n");
    let (_db, relay) = Relay::start(backend, &config).await;
    let authors = [Keys::generate(), Keys::generate(), Keys::generate()];
    let base = now() - 10_000;
    let make = |i: u64| {
        let kind = if i.is_multiple_of(3) { 1 } else { DEPHY_KIND };
        // Every created_at is shared by four events: ties are ordered by id.
        sign(&authors[(i % 3) as usize], kind, &format!("e{i}"), &[&["s", "sync"]], Some(base + i / 4))
    };
    let relay_events: Vec<Event> = (0..2000).map(make).collect();
    let client_only: Vec<Event> = (2000..2300).map(make).collect();
    publish_all(&relay, &relay_events).await;

    let mut client: Vec<&Event> = relay_events[..1400].iter().collect();
    client.extend(client_only.iter());
    let relay_only: Vec<&Event> = relay_events[1400..].iter().collect();
    let result = js_sync(relay.port, json!({}), &items_of(&client), json!({})).await;
    assert_sync(&result, &ids(&client_only.iter().collect::<Vec<_>>()), &ids(&relay_only));
    assert!(result["rounds"].as_u64().unwrap() >= 2, "the relay's 4 KiB frames need several rounds: {result}");

    // Both sides equal: nothing to learn. Client empty: everything is needed.
    let all: Vec<&Event> = relay_events.iter().collect();
    let same = js_sync(relay.port, json!({}), &items_of(&all), json!({})).await;
    assert_sync(&same, &BTreeSet::new(), &BTreeSet::new());
    let empty = js_sync(relay.port, json!({}), &[], json!({"frameSizeLimit": 4096})).await;
    assert_sync(&empty, &BTreeSet::new(), &ids(&all));

    let text = metrics_text(&relay).await;
    assert!(metric(&text, "relay_negentropy_sessions_opened_total") >= 3.0, "{text}");
}

/// The relay's side of a session is exactly the events a REQ with the filter would consider:
/// kinds, authors, tag values, since/until, and a limit (newest first).
async fn filter_decides_the_relay_side_set(backend: Backend) {
    let (_db, relay) = Relay::start(backend, NO_CHECKPOINTS).await;
    let (a, b) = (Keys::generate(), Keys::generate());
    let t = now() - 1000;
    let matching: Vec<Event> = (0..5).map(|i| dephy(&a, &format!("m{i}"), &[&["p", "x"]], t + i)).collect();
    let others = vec![
        dephy(&a, "other p", &[&["p", "y"]], t + 1),
        sign(&a, 1, "other kind", &[&["p", "x"]], Some(t + 2)),
        dephy(&b, "other author", &[&["p", "x"]], t + 3),
    ];
    publish_all(&relay, &[matching.clone(), others.clone()].concat()).await;
    let filter = json!({"kinds": [DEPHY_KIND], "authors": [pk(&a)], "#p": ["x"]});

    // The client holds two matching events and one the relay stores outside the filter: under
    // this filter that one is the client's alone.
    let client: Vec<&Event> = vec![&matching[0], &matching[1], &others[2]];
    let result = js_sync(relay.port, filter.clone(), &items_of(&client), json!({})).await;
    assert_sync(&result, &ids(&[&others[2]]), &ids(&matching[2..].iter().collect::<Vec<_>>()));

    // since/until (inclusive) over author a: t+1 .. t+2 holds m1, m2, "other p", "other kind".
    let window = json!({"authors": [pk(&a)], "since": t + 1, "until": t + 2});
    let result = js_sync(relay.port, window, &[], json!({})).await;
    assert_sync(&result, &BTreeSet::new(), &ids(&[&matching[1], &matching[2], &others[0], &others[1]]));

    // A limit keeps the newest: m4, m3.
    let mut limited = filter.clone();
    limited["limit"] = json!(2);
    let result = js_sync(relay.port, limited, &[], json!({})).await;
    assert_sync(&result, &BTreeSet::new(), &ids(&[&matching[4], &matching[3]]));
}

/// Past `max_negentropy_records` the session is refused (strfry's wording); a narrower filter or
/// a limit within the cap is served.
async fn too_many_records_is_blocked(backend: Backend) {
    let config = format!("{NO_CHECKPOINTS}[limits]\nmax_negentropy_records = 50\n");
    let (_db, relay) = Relay::start(backend, &config).await;
    let keys = Keys::generate();
    let t = now() - 1000;
    let events: Vec<Event> = (0..60).map(|i| sign(&keys, 1, &format!("r{i}"), &[], Some(t + i))).collect();
    publish_all(&relay, &events).await;

    let result = js_sync(relay.port, json!({}), &[], json!({})).await;
    let error = result["error"].as_str().unwrap_or_else(|| panic!("expected a NEG-ERR, got {result}"));
    assert!(error.starts_with("blocked: too many records, narrow the filter"), "{error}");
    assert!(error.contains("50"), "the cap is named: {error}");

    let narrow = js_sync(relay.port, json!({"until": t + 39}), &[], json!({})).await;
    assert_sync(&narrow, &BTreeSet::new(), &ids(&events[..40].iter().collect::<Vec<_>>()));
    let exactly_the_cap = js_sync(relay.port, json!({"since": t + 10}), &[], json!({})).await;
    assert_sync(&exactly_the_cap, &BTreeSet::new(), &ids(&events[10..].iter().collect::<Vec<_>>()));
    let limited = js_sync(relay.port, json!({"limit": 50}), &[], json!({})).await;
    assert_eq!(id_set(&limited["need"]).len(), 50, "{limited}");

    let text = metrics_text(&relay).await;
    assert_eq!(metric(&text, "relay_negentropy_sessions_refused_total{reason=\"too_many_records\"}"), 1.0);
    assert_eq!(metric(&text, "relay_negentropy_sessions_opened_total"), 3.0);
}

/// Bad hex, bad negentropy, bad filters and wrong shapes get `NEG-ERR "invalid: ..."` and end
/// the session; NEG-CLOSE frees it (a later NEG-MSG is `closed:`); a NEG-OPEN for an open id
/// replaces it; at most `max_negentropy_sessions` are open; a NEG-MSG is bounded by
/// `max_message_bytes`; the connection keeps working throughout.
async fn protocol_errors_and_session_lifecycle(backend: Backend) {
    let config = "[limits]\nmax_negentropy_sessions = 2\nmax_message_bytes = 65536\n";
    let (_db, relay) = Relay::start(backend, config).await;
    let init = empty_initial();
    let mut c = relay.connect().await;

    for (frame, prefix) in [
        (json!(["NEG-OPEN", "a", {}, "zz"]), "invalid: the message is not hex"),
        (json!(["NEG-OPEN", "a", {}, ""]), "invalid: negentropy"),
        (json!(["NEG-OPEN", "a", {}, "61000005"]), "invalid: negentropy: Unexpected mode"),
        (json!(["NEG-OPEN", "a", {}, "61000001aa"]), "invalid: negentropy: parse ends prematurely"),
        (json!(["NEG-OPEN", "a", {}, "7100"]), "invalid: negentropy"),
        (json!(["NEG-OPEN", "a", {"search": "x"}, init]), "invalid: search"),
        (json!(["NEG-OPEN", "a", {"kinds": [70000]}, init]), "invalid: bad value for filter field"),
        (json!(["NEG-OPEN", "a", {"after_seq": 1}, init]), "invalid: after_seq is not supported"),
        (json!(["NEG-OPEN", "a", {}, {}, init]), "invalid: NEG-OPEN takes"),
    ] {
        c.send_json(&frame).await;
        expect_neg_err(&mut c, "a", prefix).await;
    }

    // A valid session; a bad round ends it, so the next round finds it closed.
    c.send_json(&json!(["NEG-OPEN", "a", {}, init])).await;
    expect_neg_msg(&mut c, "a").await;
    c.send_json(&json!(["NEG-MSG", "a", "not hex"])).await;
    expect_neg_err(&mut c, "a", "invalid: the message is not hex").await;
    c.send_json(&json!(["NEG-MSG", "a", init])).await;
    expect_neg_err(&mut c, "a", "closed: no open negentropy session").await;

    // NEG-CLOSE frees the session.
    c.send_json(&json!(["NEG-OPEN", "b", {}, init])).await;
    expect_neg_msg(&mut c, "b").await;
    c.send_json(&json!(["NEG-MSG", "b", init])).await;
    expect_neg_msg(&mut c, "b").await;
    c.send_json(&json!(["NEG-CLOSE", "b"])).await;
    c.send_json(&json!(["NEG-MSG", "b", init])).await;
    expect_neg_err(&mut c, "b", "closed:").await;

    // Replacing an open id keeps one session; the cap counts open sessions.
    for _ in 0..2 {
        c.send_json(&json!(["NEG-OPEN", "c", {}, init])).await;
        expect_neg_msg(&mut c, "c").await;
    }
    assert_eq!(metric(&metrics_text(&relay).await, "relay_negentropy_sessions"), 1.0, "replaced, not added");
    c.send_json(&json!(["NEG-OPEN", "d", {}, init])).await;
    expect_neg_msg(&mut c, "d").await;
    c.send_json(&json!(["NEG-OPEN", "e", {}, init])).await;
    expect_neg_err(&mut c, "e", "blocked: too many open negentropy sessions (max 2)").await;
    c.send_json(&json!(["NEG-CLOSE", "d"])).await;
    c.send_json(&json!(["NEG-OPEN", "e", {}, init])).await;
    expect_neg_msg(&mut c, "e").await;

    // A NEG-MSG over max_message_bytes is refused like any frame; the session stays open.
    c.send_json(&json!(["NEG-MSG", "e", "61".repeat(40_000)])).await;
    let notice = c.recv_matching("NOTICE for the oversized frame", |v| v[0] == "NOTICE").await;
    assert!(notice[1].as_str().unwrap().starts_with("invalid: message is"), "{notice}");
    c.send_json(&json!(["NEG-MSG", "e", init])).await;
    expect_neg_msg(&mut c, "e").await;

    // REQ still works on the same connection.
    assert!(c.req("r", &[json!({"limit": 1})]).await.is_empty());
    let text = metrics_text(&relay).await;
    assert_eq!(metric(&text, "relay_negentropy_sessions"), 2.0, "c and e are open: {text}");
    assert!(metric(&text, "relay_negentropy_sessions_refused_total{reason=\"invalid\"}") >= 10.0, "{text}");
    assert_eq!(metric(&text, "relay_negentropy_sessions_refused_total{reason=\"too_many_sessions\"}"), 1.0);
    // Disconnecting frees the connection's sessions.
    drop(c);
    let r = &relay;
    let freed = eventually(Duration::from_secs(10), || async move {
        metric(&metrics_text(r).await, "relay_negentropy_sessions") == 0.0
    })
    .await;
    assert!(freed, "sessions of a closed connection are freed");
}

/// A session without a NEG-MSG for `negentropy_idle_secs` is closed with `NEG-ERR "closed: ..."`.
async fn idle_sessions_are_closed(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nnegentropy_idle_secs = 1\n").await;
    let init = empty_initial();
    let mut c = relay.connect().await;
    c.send_json(&json!(["NEG-OPEN", "idle", {}, init])).await;
    expect_neg_msg(&mut c, "idle").await;
    expect_neg_err(&mut c, "idle", "closed: idle for more than 1 s").await;
    c.send_json(&json!(["NEG-MSG", "idle", init])).await;
    expect_neg_err(&mut c, "idle", "closed: no open negentropy session").await;
    let text = metrics_text(&relay).await;
    assert_eq!(metric(&text, "relay_negentropy_sessions_refused_total{reason=\"idle\"}"), 1.0);
    assert_eq!(metric(&text, "relay_negentropy_sessions"), 0.0);
}

/// With `required_for_read`, NEG-OPEN needs NIP-42 AUTH first, as REQ does.
async fn read_auth_is_required_like_req(backend: Backend) {
    let config = format!("{NO_CHECKPOINTS}[auth]\nrequired_for_read = true\n");
    let (_db, relay) = Relay::start(backend, &config).await;
    let keys = Keys::generate();
    let events: Vec<Event> = (0..5).map(|i| sign(&keys, 1, &format!("a{i}"), &[], None)).collect();
    publish_all(&relay, &events).await;

    let refused = js_sync(relay.port, json!({}), &[], json!({})).await;
    let error = refused["error"].as_str().unwrap_or_else(|| panic!("expected NEG-ERR, got {refused}"));
    assert!(error.starts_with("auth-required:"), "{error}");

    let reader = Keys::generate();
    let authed = js_sync(relay.port, json!({}), &[], json!({"authSecret": reader.secret_key().to_secret_hex()})).await;
    assert_sync(&authed, &BTreeSet::new(), &ids(&events.iter().collect::<Vec<_>>()));
    let text = metrics_text(&relay).await;
    assert_eq!(metric(&text, "relay_negentropy_sessions_refused_total{reason=\"auth_required\"}"), 1.0);
}

/// The records a session holds count in the output budget: past `max_output_bytes_total` the
/// connection holding them is closed, saying why, and a smaller session on another is served.
async fn session_records_count_in_the_output_budget(backend: Backend) {
    let config = format!("{NO_CHECKPOINTS}[limits]\nmax_output_bytes_total = 65536\n");
    let (_db, relay) = Relay::start(backend, &config).await;
    let keys = Keys::generate();
    let t = now() - 5000;
    let events: Vec<Event> = (0..3000).map(|i| sign(&keys, 1, "", &[], Some(t + i))).collect();
    publish_all(&relay, &events).await;

    // 3,000 records (about 120 KB) cannot be held within a 64 KiB total.
    let mut big = relay.connect().await;
    big.send_json(&json!(["NEG-OPEN", "big", {}, empty_initial()])).await;
    let notice = big.recv_matching("NOTICE before the close", |v| v[0] == "NOTICE").await;
    assert!(notice[1].as_str().unwrap().contains("relay output budget exhausted"), "{notice}");
    assert!(big.try_recv(Duration::from_secs(5)).await.is_none() && big.closed, "the connection is closed");

    let small = js_sync(relay.port, json!({"limit": 1000}), &[], json!({})).await;
    assert_eq!(id_set(&small["need"]).len(), 1000, "{small}");
    let text = metrics_text(&relay).await;
    assert_eq!(metric(&text, "relay_slow_readers_disconnected_total{reason=\"total_budget\"}"), 1.0, "{text}");
}

/// nostr-sdk's client side of NIP-77 (`Client::sync`, both directions): it reconciles its
/// local database with the relay, uploads what the relay lacks and downloads what it lacks.
async fn nostr_sdk_syncs_both_ways(backend: Backend) {
    use nostr_sdk::prelude::{Client, MemoryDatabase, MemoryDatabaseOptions, SyncDirection, SyncOptions};
    let (_db, relay) = Relay::start(backend, NO_CHECKPOINTS).await;
    let keys = Keys::generate();
    let t = now() - 1000;
    let make = |i: u64| sign(&keys, DEPHY_KIND, &format!("sdk{i}"), &[&["s", "sdk"]], Some(t + i));
    let on_relay: Vec<Event> = (0..120).map(make).collect();
    let on_client: Vec<Event> = (80..200).map(make).collect();
    publish_all(&relay, &on_relay).await;

    // The SDK's in-memory database, storing events (its default only remembers ids).
    let database = MemoryDatabase::with_opts(MemoryDatabaseOptions { events: true, max_events: None });
    let client = Client::builder().signer(keys.clone()).database(database).build();
    for e in &on_client {
        client.database().save_event(e).await.expect("save to the SDK's database");
    }
    client.add_relay(relay.url()).await.expect("add_relay");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    let filter = Filter::new().kind(Kind::Custom(DEPHY_KIND)).author(keys.public_key());
    let opts = SyncOptions::new().direction(SyncDirection::Both);
    let out = tokio::time::timeout(Duration::from_secs(60), client.sync(filter.clone(), &opts))
        .await
        .expect("sync within 60 s")
        .expect("sync");
    let r = out.val;
    let hexes = |s: &std::collections::HashSet<EventId>| s.iter().map(|id| id.to_hex()).collect::<BTreeSet<_>>();
    assert_eq!(hexes(&r.local), ids(&on_client[40..].iter().collect::<Vec<_>>()), "client-only ids");
    assert_eq!(hexes(&r.remote), ids(&on_relay[..80].iter().collect::<Vec<_>>()), "relay-only ids");
    assert_eq!(r.sent.len(), 80, "uploaded: {:?}", r.send_failures);
    assert_eq!(r.received.len(), 80, "downloaded");

    // Both now hold the union.
    let mut c = relay.connect().await;
    let on_relay_now = c.req_ids("all", &[json!({"authors": [pk(&keys)], "limit": 1000})]).await;
    assert_eq!(on_relay_now.len(), 200);
    let local = client.database().query(filter).await.expect("query the SDK's database");
    assert_eq!(local.len(), 200);
    client.disconnect().await;
}

/// A frame limit below the protocol's minimum is refused at start, naming the key.
#[test]
fn frame_limit_below_minimum_is_refused_at_start() {
    let stderr = serve_refuses_config("[limits]\nnegentropy_frame_bytes = 1000\n");
    assert!(stderr.contains("limits.negentropy_frame_bytes = 1000 is too small"), "{stderr}");
}
