//! A SQLite database written under the old tag index layout (migrations 0001-0003: a rowid
//! `tags` table with text values and two indexes) is migrated by 0004 when the relay starts:
//! its events are still found by every tag filter, deleting or replacing an old event still
//! removes its tag rows, and the verifiable log still passes `dephy-relay audit`.
//! Log leaves that stored their event id (before SQLite 0005, PostgreSQL 0006) lose it when
//! the relay starts, on both backends: every leaf's id is still found (deleted and replaced
//! events' ids from log_tombstones, restored from the leaf where it was missing), proofs of
//! deleted events still verify, the audit passes, and a leaf without an id is an error.
//! Events stored before the events indexes broke ties by id prefix (SQLite 0006, PostgreSQL
//! 0007) get their prefix when the relay starts, on both backends, and are served in NIP-01
//! order by it.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use dephy_log::Hash;
use nostr::prelude::*;
use serde_json::{Value, json};

backend_tests!(leaves_keep_event_ids_without_the_column, events_get_their_id_prefix);

const CONFIG: &str = "[log]\ncheckpoint_interval_secs = 1\n";
/// Longest the relay may take to sign a checkpoint covering what was published.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest one audit run may take.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Gives SQLite log leaves back their event id column (0002's layout), drops the tombstones'
/// seq index and forgets that 0005 ran.
const SQLITE_LEAVES_DOWNGRADE: &[&str] = &[
    "CREATE TABLE log_leaves_old (idx INTEGER PRIMARY KEY, event_id BLOB NOT NULL, \
     received_at INTEGER NOT NULL, seq INTEGER NOT NULL)",
    "INSERT INTO log_leaves_old (idx, event_id, received_at, seq) \
     SELECT l.idx, COALESCE(e.id, t.event_id), l.received_at, l.seq FROM log_leaves l \
     LEFT JOIN events e ON e.seq = l.seq LEFT JOIN log_tombstones t ON t.seq = l.seq",
    "DROP TABLE log_leaves",
    "ALTER TABLE log_leaves_old RENAME TO log_leaves",
    "CREATE INDEX log_leaves_seq ON log_leaves (seq)",
    "DROP INDEX log_tombstones_seq",
    "DELETE FROM _sqlx_migrations WHERE version = 5",
];

/// The same for PostgreSQL (0006).
const POSTGRES_LEAVES_DOWNGRADE: &[&str] = &[
    "ALTER TABLE log_leaves ADD COLUMN event_id BYTEA",
    "UPDATE log_leaves l SET event_id = COALESCE((SELECT e.id FROM events e WHERE e.seq = l.seq), \
     (SELECT t.event_id FROM log_tombstones t WHERE t.seq = l.seq))",
    "ALTER TABLE log_leaves ALTER COLUMN event_id SET NOT NULL",
    "DROP INDEX log_tombstones_seq",
    "DELETE FROM _sqlx_migrations WHERE version = 6",
];

/// Takes the events' id prefix column away (the indexes break ties by the whole id again), the
/// same on both backends; then the backend forgets that the migration ran (SQLite 0006,
/// PostgreSQL 0007, see `events_get_their_id_prefix`).
const ID_PREFIX_DOWNGRADE: &[&str] = &[
    "DROP INDEX events_created",
    "DROP INDEX events_kind",
    "DROP INDEX events_author",
    "ALTER TABLE events DROP COLUMN idp",
    "CREATE INDEX events_created ON events (created_at DESC, id)",
    "CREATE INDEX events_kind ON events (kind, created_at DESC, id)",
    "CREATE INDEX events_author ON events (pubkey, kind, created_at DESC, id)",
];

/// Turns the 0004 tag index back into the layout of 0001 (text values, rowid table, lookup
/// and seq indexes), gives events back their received_at column and forgets that 0004 ran:
/// after [`SQLITE_LEAVES_DOWNGRADE`], the database as the release before 0004 left it (but
/// for the level-1 log nodes, which 0004 deletes and which are recomputed either way).
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

/// A single integer from `statement`, on either backend.
async fn sql_scalar(db: &TestDb, statement: &str) -> i64 {
    use sqlx::Connection as _;
    let n: Result<i64, _> = match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite database");
            let n = sqlx::query_scalar(sqlx::AssertSqlSafe(statement.to_string())).fetch_one(&mut conn).await;
            let _ = conn.close().await;
            n
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("open the PostgreSQL database");
            let n = sqlx::query_scalar(sqlx::AssertSqlSafe(statement.to_string())).fetch_one(&mut conn).await;
            let _ = conn.close().await;
            n
        }
    };
    n.unwrap_or_else(|e| panic!("{statement}: {e}"))
}

/// Runs `statements` in order on either backend.
async fn sql_run(db: &TestDb, statements: &[&str]) {
    use sqlx::Connection as _;
    // The same loop on either connection type (they share no object-safe executor).
    macro_rules! run_each {
        ($conn:expr) => {{
            let mut conn = $conn;
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            let _ = conn.close().await;
        }};
    }
    match db.backend {
        Backend::Sqlite => {
            run_each!(sqlx::SqliteConnection::connect(&db.url).await.expect("open the SQLite database"))
        }
        Backend::Postgres => {
            run_each!(sqlx::PgConnection::connect(&db.url).await.expect("open the PostgreSQL database"))
        }
    }
}

async fn downgrade(db: &TestDb) {
    sql_run(db, SQLITE_LEAVES_DOWNGRADE).await;
    sql_run(db, DOWNGRADE).await;
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

async fn get(relay: &Relay, path: &str) -> (u16, Value) {
    let resp = http_get(relay.port, path, &[]).await.expect("http");
    (resp.status, resp.json())
}

fn hash(v: &Value) -> Hash {
    let mut h = [0u8; 32];
    hex::decode_to_slice(v.as_str().expect("hex string"), &mut h).expect("64 hex chars");
    h
}

/// The latest signed checkpoint (signature checked): (tree size, root).
async fn signed_root(relay: &Relay) -> (u64, Hash) {
    let (status, body) = get(relay, "/log/checkpoint").await;
    assert_eq!(status, 200, "{body}");
    let event = Event::from_json(body["event"].to_string()).expect("checkpoint event");
    let cp = dephy_log::Checkpoint::from_event(&event, None).expect("a valid checkpoint");
    (cp.tree_size, cp.root_hash)
}

/// Checks the inclusion proof of `event` at `size` against `root` and returns its leaf index.
async fn inclusion_verifies(relay: &Relay, event: &Event, size: u64, root: &Hash) -> u64 {
    let (status, proof) = get(relay, &format!("/log/proof/inclusion?id={}&tree_size={size}", event.id)).await;
    assert_eq!(status, 200, "{proof}");
    let index = proof["leaf_index"].as_u64().expect("leaf_index");
    let leaf = dephy_log::event_leaf_hash(event.id.as_bytes(), proof["received_ms"].as_u64().expect("received_ms"));
    assert_eq!(leaf, hash(&proof["leaf_hash"]));
    let path: Vec<Hash> = proof["audit_path"].as_array().expect("audit_path").iter().map(hash).collect();
    dephy_log::verify_inclusion(&leaf, index, size, &path, root).expect("inclusion proof verifies");
    index
}

async fn leaves_keep_event_ids_without_the_column(backend: Backend) {
    let (db, mut relay) = Relay::start(backend, CONFIG).await;
    let author = Keys::generate();
    let t = now() - 100;
    let mut c = relay.connect().await;
    let deleted = dephy(&author, "deleted", &[], t);
    let kept = dephy(&author, "kept", &[], t + 1);
    let replaced = sign(&author, 0, "{\"name\":\"old\"}", &[], Some(t + 2));
    let profile = sign(&author, 0, "{\"name\":\"new\"}", &[], Some(t + 3));
    let deletion = sign(&author, 5, "", &[&["e", &deleted.id.to_hex()]], None);
    let events = [&deleted, &kept, &replaced, &profile, &deletion];
    for e in events {
        c.publish_ok(e).await;
    }
    assert!(c.req_ids("gone", &[json!({"ids": [deleted.id.to_hex(), replaced.id.to_hex()]})]).await.is_empty());
    wait_checkpoint(&relay).await;
    let (size, root) = signed_root(&relay).await;
    let mut indexes = Vec::new();
    for e in events {
        indexes.push(inclusion_verifies(&relay, e, size, &root).await);
    }
    let entries = format!("/log/entries?start=0&end={size}");
    let (status, before) = get(&relay, &entries).await;
    assert_eq!(status, 200, "{before}");
    drop(c);
    relay.terminate(Duration::from_secs(10)).await;

    // The previous schema: leaves with their event id. An older code path removed the deleted
    // event without its tombstone: only its leaf still holds its id.
    let deleted_leaf = &before["entries"][indexes[0] as usize];
    assert_eq!(deleted_leaf["event_id"], json!(deleted.id.to_hex()));
    let deleted_seq = deleted_leaf["seq"].as_i64().expect("seq");
    match backend {
        Backend::Sqlite => sql_run(&db, SQLITE_LEAVES_DOWNGRADE).await,
        Backend::Postgres => sql_run(&db, POSTGRES_LEAVES_DOWNGRADE).await,
    }
    assert_eq!(sql_scalar(&db, "SELECT count(*) FROM log_tombstones").await, 2, "deleted and replaced");
    sql_run(&db, &[&format!("DELETE FROM log_tombstones WHERE seq = {deleted_seq}")]).await;
    let leaves = sql_scalar(&db, "SELECT count(*) FROM log_leaves").await;
    assert!(leaves >= size as i64, "{leaves} leaves, checkpoint of {size}");
    let id_columns = match backend {
        Backend::Sqlite => "SELECT count(*) FROM pragma_table_info('log_leaves') WHERE name = 'event_id'",
        Backend::Postgres => {
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'log_leaves' AND column_name = 'event_id'"
        }
    };
    assert_eq!(sql_scalar(&db, id_columns).await, 1);

    relay.restart(&db).await;
    assert_eq!(sql_scalar(&db, id_columns).await, 0, "the migration dropped log_leaves.event_id");
    assert_eq!(sql_scalar(&db, "SELECT count(*) FROM log_tombstones").await, 2, "the missing tombstone is back");
    let (status, after) = get(&relay, &entries).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["entries"], before["entries"], "every leaf has its event id, seq and receive time");
    for (e, index) in events.iter().zip(&indexes) {
        assert_eq!(inclusion_verifies(&relay, e, size, &root).await, *index, "{}", e.content);
    }

    // Appending reads the frontier's leaves through their ids; the audit rehashes every leaf
    // and checks every checkpoint.
    let mut c = relay.connect().await;
    c.publish_ok(&dephy(&author, "later", &[], t + 4)).await;
    wait_checkpoint(&relay).await;
    audit_passes(&relay).await;
    let (size2, root2) = signed_root(&relay).await;
    assert!(size2 > size);
    assert_eq!(inclusion_verifies(&relay, &deleted, size2, &root2).await, indexes[0]);

    // A leaf whose id is nowhere any more cannot be hashed: the proof of its sibling and the
    // entries that hold it fail instead of hashing something else.
    sql_run(&db, &[&format!("DELETE FROM log_tombstones WHERE seq = {deleted_seq}")]).await;
    let sibling = after["entries"][(indexes[0] ^ 1) as usize]["event_id"].as_str().expect("sibling leaf").to_string();
    let (status, body) = get(&relay, &format!("/log/proof/inclusion?id={sibling}&tree_size={size}")).await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = get(&relay, &format!("/log/entries?start={}&end={}", indexes[0], indexes[0] + 1)).await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = get(&relay, &format!("/log/entries?start={}&end={}", indexes[1], indexes[1] + 1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"][0]["event_id"], json!(kept.id.to_hex()));
}

/// The id prefix the relay orders by: the first 8 bytes, big-endian, top bit flipped.
fn id_prefix(event: &Event) -> i64 {
    let bytes: [u8; 8] = event.id.as_bytes()[..8].try_into().expect("8 bytes");
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

async fn events_get_their_id_prefix(backend: Backend) {
    let (db, mut relay) = Relay::start(backend, CONFIG).await;
    let author = Keys::generate();
    let t = now() - 100;
    let mut c = relay.connect().await;
    // Twelve events of one second (ties broken by id only), one older.
    let mut tied: Vec<Event> = (0..12).map(|i| dephy(&author, &format!("tied {i}"), &[], t)).collect();
    let older = dephy(&author, "older", &[], t - 1);
    for e in tied.iter().chain([&older]) {
        c.publish_ok(e).await;
    }
    drop(c);
    relay.terminate(Duration::from_secs(10)).await;

    sql_run(&db, ID_PREFIX_DOWNGRADE).await;
    let version = match backend {
        Backend::Sqlite => 6,
        Backend::Postgres => 7,
    };
    sql_run(&db, &[&format!("DELETE FROM _sqlx_migrations WHERE version = {version}")]).await;
    relay.restart(&db).await;
    for e in tied.iter().chain([&older]) {
        let literal = match backend {
            Backend::Sqlite => format!("X'{}'", e.id.to_hex()),
            Backend::Postgres => format!("'\\x{}'::bytea", e.id.to_hex()),
        };
        let stored = sql_scalar(&db, &format!("SELECT idp FROM events WHERE id = {literal}")).await;
        assert_eq!(stored, id_prefix(e), "{}", e.content);
    }

    // Newest first, ties by lowest id, with and without a limit, on the author and time indexes.
    tied.sort_by_key(|e| e.id);
    let mut expected: Vec<&Event> = tied.iter().collect();
    expected.push(&older);
    let mut c = relay.connect().await;
    let filter = json!({"authors": [pk(&author)], "kinds": [DEPHY_KIND]});
    assert_eq!(c.req_ids("all", std::slice::from_ref(&filter)).await, hex_ids(&expected));
    let mut limited = filter.clone();
    limited["limit"] = json!(5);
    assert_eq!(c.req_ids("five", &[limited]).await, hex_ids(&expected[..5]));
    assert_eq!(c.req_ids("by time", &[json!({"since": t - 1, "until": t})]).await, hex_ids(&expected));
    // A new event of the same second sorts among the migrated ones.
    let late = dephy(&author, "late", &[], t);
    c.publish_ok(&late).await;
    tied.push(late);
    tied.sort_by_key(|e| e.id);
    let mut expected: Vec<&Event> = tied.iter().collect();
    expected.push(&older);
    assert_eq!(c.req_ids("after", &[filter]).await, hex_ids(&expected));
}
