//! `dephy-relay audit` against live relays, on both backends: a healthy log passes, and passes
//! again against the state file it wrote; a tampered log leaf, a tampered stored event and a
//! rewritten history (same relay key, new database) fail with exit code 1 and a message naming
//! what is wrong. TLS URLs and unreachable relays are exit code 2.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use nostr::prelude::*;
use serde_json::{Value, json};

backend_tests!(
    healthy_relay_passes_twice,
    tampered_leaf_is_named,
    tampered_event_is_named,
    rewritten_history_is_detected,
);

const CONFIG: &str = "[log]\ncheckpoint_interval_secs = 1\n";
/// Longest one audit run may take.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest the relay may take to sign a checkpoint covering what was published.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(15);

/// The outcome of one `dephy-relay audit` run.
struct Audit {
    code: Option<i32>,
    /// stdout, then stderr.
    output: String,
}

/// Runs `dephy-relay audit <args>` (bounded).
async fn audit(args: &[&str]) -> Audit {
    let run = tokio::process::Command::new(relay_bin()).arg("audit").args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(AUDIT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("`dephy-relay audit {args:?}` did not finish within {AUDIT_TIMEOUT:?}"))
        .expect("run dephy-relay audit");
    Audit {
        code: out.status.code(),
        output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    }
}

async fn audit_relay(relay: &Relay, state: &Path) -> Audit {
    audit(&[&relay.url(), "--state", state.to_str().expect("UTF-8 temp path")]).await
}

async fn get(relay: &Relay, path: &str) -> (u16, Value) {
    let resp = http_get(relay.port, path, &[]).await.expect("http");
    (resp.status, resp.json())
}

/// Publishes `n` events with contents `{prefix}{i}`, then waits for a checkpoint covering the
/// whole log.
async fn publish_checkpointed(relay: &Relay, prefix: &str, n: u64) -> Vec<Event> {
    let mut c = relay.connect().await;
    let keys = Keys::generate();
    let t = now() - 100;
    let events: Vec<Event> = (0..n).map(|i| dephy(&keys, &format!("{prefix}{i}"), &[], t + i)).collect();
    for e in &events {
        c.publish_ok(e).await;
    }
    let (status, body) = get(relay, "/log/entries?start=0&end=1000").await;
    assert_eq!(status, 200, "{body}");
    let size = body["tree_size"].as_u64().expect("tree_size");
    let deadline = Instant::now() + CHECKPOINT_TIMEOUT;
    loop {
        let (status, body) = get(relay, "/log/checkpoint").await;
        if status == 200 && body["tree_size"].as_u64() >= Some(size) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of tree_size >= {size} within {CHECKPOINT_TIMEOUT:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs one SQL statement on the relay's database behind its back; returns the rows affected.
async fn execute(db: &TestDb, statement: &str) -> u64 {
    use sqlx::Connection as _;
    let sql = sqlx::AssertSqlSafe(statement.to_string());
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite database");
            let done = sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
            let _ = conn.close().await;
            done.rows_affected()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect to the PostgreSQL database");
            let done = sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
            let _ = conn.close().await;
            done.rows_affected()
        }
    }
}

fn saved_state(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("state file written")).expect("state file is JSON")
}

async fn healthy_relay_passes_twice(backend: Backend) {
    let (db, relay) = Relay::start(backend, CONFIG).await;
    publish_checkpointed(&relay, "healthy-", 30).await;
    let state = db.dir.path().join("audit-state.json");

    let first = audit_relay(&relay, &state).await;
    assert_eq!(first.code, Some(0), "{}", first.output);
    assert!(first.output.contains("audit: OK (tree_size "), "{}", first.output);
    assert!(first.output.contains("this audit starts the history"), "{}", first.output);
    let saved = saved_state(&state);
    assert_eq!(saved["relay_pubkey"], relay.nip11().await.json()["pubkey"]);
    let first_size = saved["tree_size"].as_u64().expect("tree_size");
    assert!(first_size >= 30, "{saved}");

    // The log grows; the next audit checks that its new checkpoint extends the saved one.
    publish_checkpointed(&relay, "more-", 5).await;
    let second = audit_relay(&relay, &state).await;
    assert_eq!(second.code, Some(0), "{}", second.output);
    assert!(
        second.output.contains(&format!("extends the one seen earlier (tree_size {first_size} -> ")),
        "{}",
        second.output
    );
    assert!(saved_state(&state)["tree_size"].as_u64() > Some(first_size));
}

async fn tampered_leaf_is_named(backend: Backend) {
    let (db, relay) = Relay::start(backend, CONFIG).await;
    publish_checkpointed(&relay, "leaf-", 30).await;
    let (_, body) = get(&relay, "/log/entries?start=3&end=4").await;
    let id3 = body["entries"][0]["event_id"].as_str().expect("event id of leaf 3").to_string();
    assert_eq!(execute(&db, "UPDATE log_leaves SET received_at = received_at + 1 WHERE idx = 3").await, 1);

    let state = db.dir.path().join("audit-state.json");
    let out = audit_relay(&relay, &state).await;
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.output.contains("audit: FAILED: "), "{}", out.output);
    assert!(out.output.contains("leaf 3 ") || out.output.contains(&id3), "names leaf 3 ({id3}): {}", out.output);
    assert!(!state.exists(), "a failed audit writes no state");
}

async fn tampered_event_is_named(backend: Backend) {
    let (db, relay) = Relay::start(backend, CONFIG).await;
    let events = publish_checkpointed(&relay, "event-", 30).await;
    let id = events[7].id.to_hex();
    let edited = execute(
        &db,
        r#"UPDATE events SET raw = replace(raw, '"content":"event-7"', '"content":"event-7 (edited)"')
           WHERE raw LIKE '%"content":"event-7"%'"#,
    )
    .await;
    assert_eq!(edited, 1);
    // The relay now serves the edited JSON under the original id.
    let mut c = relay.connect().await;
    let served = c.req("edited", &[json!({"ids": [id]})]).await;
    assert_eq!(served[0]["content"], "event-7 (edited)", "{served:?}");

    let state = db.dir.path().join("audit-state.json");
    let out = audit_relay(&relay, &state).await;
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.output.contains("audit: FAILED: "), "{}", out.output);
    assert!(out.output.contains(&id), "names event {id}: {}", out.output);
    assert!(!state.exists(), "a failed audit writes no state");
}

async fn rewritten_history_is_detected(backend: Backend) {
    let state_dir = tempfile::tempdir().expect("tempdir");
    let state = state_dir.path().join("audit-state.json");
    let (_db, mut relay) = Relay::start(backend, CONFIG).await;
    publish_checkpointed(&relay, "original-", 30).await;
    let first = audit_relay(&relay, &state).await;
    assert_eq!(first.code, Some(0), "{}", first.output);
    let old_size = saved_state(&state)["tree_size"].as_u64().expect("tree_size");
    let pubkey = relay.nip11().await.json()["pubkey"].clone();

    // The same relay key on a fresh database, with other events.
    let key_file = relay.workdir.join("data/relay.key");
    assert!(key_file.exists(), "the relay keeps its key in {}", key_file.display());
    relay.kill();
    let db2 = TestDb::new(backend).await;
    let data = db2.dir.path().join("r0/data");
    std::fs::create_dir_all(&data).expect("create the new relay's data directory");
    std::fs::copy(&key_file, data.join("relay.key")).expect("copy the relay key");
    let relay2 = Relay::spawn(&db2, "r0", CONFIG).await;
    assert_eq!(relay2.nip11().await.json()["pubkey"], pubkey, "same relay key");
    publish_checkpointed(&relay2, "rewritten-", 40).await;
    let (_, latest) = get(&relay2, "/log/checkpoint").await;
    assert!(latest["tree_size"].as_u64() > Some(old_size), "the new log is larger than the old: {latest}");

    let out = audit_relay(&relay2, &state).await;
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.output.contains("audit: FAILED: "), "{}", out.output);
    assert!(out.output.contains("is not consistent with the checkpoint seen earlier"), "{}", out.output);
    assert!(out.output.contains(&format!("tree_size {old_size}")), "{}", out.output);
    assert_eq!(saved_state(&state)["tree_size"].as_u64(), Some(old_size), "the state file is unchanged");
}

#[tokio::test]
async fn tls_bad_urls_and_unreachable_relays_are_usage_errors() {
    let tls = audit(&["wss://relay.example"]).await;
    assert_eq!(tls.code, Some(2), "{}", tls.output);
    assert!(tls.output.contains("TLS") && tls.output.contains("ws://"), "{}", tls.output);

    let bad = audit(&["127.0.0.1:8000"]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.output);
    assert!(bad.output.contains("must start with ws:// or http://"), "{}", bad.output);

    let down = audit(&[&format!("ws://127.0.0.1:{}", free_port())]).await;
    assert_eq!(down.code, Some(2), "{}", down.output);
    assert!(down.output.contains("that the relay is running"), "{}", down.output);
}
