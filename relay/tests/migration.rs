//! A SQLite database written under the old tag index layout (migrations 0001-0003: a rowid
//! `tags` table with text values and two indexes) is migrated by 0004 when the relay starts:
//! its events are still found by every tag filter, deleting or replacing an old event still
//! removes its tag rows, and the verifiable log still passes `dephy-relay audit`.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::*;
use nostr::prelude::*;
use serde_json::json;

const CONFIG: &str = "[log]\ncheckpoint_interval_secs = 1\n";
/// Longest the relay may take to sign a checkpoint covering what was published.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest one audit run may take.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Turns the 0004 tag index back into the layout of 0001 (text values, rowid table, lookup
/// and seq indexes), gives events back their received_at column and forgets that 0004 ran:
/// the database as the previous release left it (but for the level-1 log nodes, which 0004
/// deletes and which are recomputed either way).
const DOWNGRADE: &[&str] = &[
    "CREATE TABLE tags_old (seq INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, \
     kind INTEGER NOT NULL, created_at INTEGER NOT NULL, idp INTEGER NOT NULL)",
    "INSERT INTO tags_old (seq, name, value, kind, created_at, idp) SELECT seq, name, \
     CASE WHEN typeof(value) = 'blob' THEN lower(hex(value)) ELSE value END, kind, created_at, idp FROM tags",
    "DROP TABLE tags",
    "ALTER TABLE tags_old RENAME TO tags",
    "CREATE INDEX tags_lookup ON tags (name, value, kind, created_at DESC, idp)",
    "CREATE INDEX tags_seq ON tags (seq)",
    "ALTER TABLE events ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0",
    "DELETE FROM _sqlx_migrations WHERE version = 4",
];

async fn sql_scalar(db: &TestDb, statement: &str) -> i64 {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite database");
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(statement.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    let _ = conn.close().await;
    n
}

async fn downgrade(db: &TestDb) {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite database");
    for statement in DOWNGRADE {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let _ = conn.close().await;
}

async fn wait_checkpoint(relay: &Relay) {
    let resp = http_get(relay.port, "/log/entries?start=0&end=1000", &[]).await.expect("http");
    let size = resp.json()["tree_size"].as_u64().expect("tree_size");
    let deadline = Instant::now() + CHECKPOINT_TIMEOUT;
    loop {
        let resp = http_get(relay.port, "/log/checkpoint", &[]).await.expect("http");
        if resp.status == 200 && resp.json()["tree_size"].as_u64() >= Some(size) {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint of tree_size >= {size} within {CHECKPOINT_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn audit_passes(relay: &Relay) {
    let run = tokio::process::Command::new(relay_bin()).arg("audit").arg(relay.url()).kill_on_drop(true).output();
    let out = tokio::time::timeout(AUDIT_TIMEOUT, run).await.expect("audit finishes").expect("run dephy-relay audit");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[tokio::test]
async fn old_tag_index_is_migrated() {
    let (db, mut relay) = Relay::start(Backend::Sqlite, CONFIG).await;
    let author = Keys::generate();
    let machine = Keys::generate().public_key().to_hex();
    let upper = machine.to_uppercase();
    let t = now() - 100;
    let mut c = relay.connect().await;
    let a = dephy(&author, "a", &[&["s", "session-1"], &["p", &machine]], t);
    let b = dephy(&author, "b", &[&["s", "session-1"], &["p", &machine]], t + 1);
    let shouting = dephy(&author, "upper", &[&["p", &upper]], t + 2);
    let profile = sign(&author, 0, "{\"name\":\"old\"}", &[&["p", &machine]], Some(t));
    for e in [&a, &b, &shouting, &profile] {
        c.publish_ok(e).await;
    }
    wait_checkpoint(&relay).await;
    drop(c);
    relay.terminate(Duration::from_secs(10)).await;

    downgrade(&db).await;
    assert_eq!(sql_scalar(&db, "SELECT count(*) FROM tags WHERE typeof(value) = 'blob'").await, 0);
    let old_rows = sql_scalar(&db, "SELECT count(*) FROM tags").await;
    assert_eq!(old_rows, 6, "a and b: s and p; shouting: p; profile: p");

    relay.restart(&db).await;
    assert_eq!(sql_scalar(&db, "SELECT count(*) FROM tags").await, old_rows, "every tag row migrated");
    assert_eq!(sql_scalar(&db, "SELECT count(*) FROM tags WHERE typeof(value) = 'blob'").await, 3);
    let mut c = relay.connect().await;
    assert_eq!(c.req_ids("p", &[json!({"#p": [machine], "kinds": [DEPHY_KIND]})]).await, hex_ids(&[&b, &a]));
    assert_eq!(c.req_ids("p1", &[json!({"#p": [machine], "limit": 1})]).await, hex_ids(&[&b]));
    assert_eq!(c.req_ids("upper", &[json!({"#p": [upper]})]).await, hex_ids(&[&shouting]));
    assert_eq!(
        c.req_ids("both", &[json!({"#p": [machine, upper], "kinds": [DEPHY_KIND]})]).await,
        hex_ids(&[&shouting, &b, &a])
    );
    assert_eq!(
        c.req_ids("s+p", &[json!({"#s": ["session-1"], "#p": [machine], "authors": [pk(&author)]})]).await,
        hex_ids(&[&b, &a])
    );

    // Deleting and replacing events stored before the migration removes their tag rows.
    let deletion = sign(&author, 5, "", &[&["e", &a.id.to_hex()]], None);
    c.publish_ok(&deletion).await;
    let newer = sign(&author, 0, "{\"name\":\"new\"}", &[], Some(t + 5));
    c.publish_ok(&newer).await;
    assert_eq!(c.req_ids("after", &[json!({"#p": [machine]})]).await, hex_ids(&[&b]));
    // a lost s and p, profile its p; the deletion request added its e tag.
    assert_eq!(sql_scalar(&db, "SELECT count(*) FROM tags").await, old_rows - 3 + 1);

    wait_checkpoint(&relay).await;
    audit_passes(&relay).await;
}
