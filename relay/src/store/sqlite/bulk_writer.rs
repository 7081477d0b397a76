//! The writer's connection for batches of plain events (regular kinds that replace and delete
//! nothing: nearly all device traffic), each batch run start to end in one call.
//!
//! Through sqlx every statement of a batch is a round trip to the connection's worker thread:
//! BEGIN, each bulk INSERT, the log's reads and inserts, COMMIT; about fifteen for a
//! follower's batch of tens of events. Each is a wake-up on both sides, and every value bound
//! is first copied into sqlx's argument list. This connection (rusqlite, on the very SQLite
//! library sqlx links, as `readers`) runs the whole transaction on the calling thread, binding
//! the batch's own bytes, with the write path's own SQL (`ops`, `log`). A batch with any other
//! event goes through sqlx as before (`SqliteStore::write_batch`).
//!
//! Two connections now write the database, one at a time: the caller holds the sqlx writer's
//! only connection while this one writes. Only this one combines its WAL writes
//! (`wal_buffer`): a transaction that spilled frames and then rolled back can leave them
//! buffered, and another connection may meanwhile write that part of the WAL, so after any
//! error the connection is closed (which flushes its buffer while no one else writes) and
//! opened again for the next batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use dephy_log::{Frontier, Hash, NodeId};
use rusqlite::{Connection, OpenFlags, Statement};

use super::super::log::{self, NodeReads};
use super::super::ops::{self, BULK_EVENTS, BULK_TAGS, bulk_chunks};
use super::super::sql::{Dialect, Param};
use super::super::{IndexedEvent, StoreError, WriteOutcome};

/// Prepared statements kept: as for the sqlx writer (`WRITER_STATEMENTS`), each bulk
/// statement's power-of-two row counts, plus the log's frontier reads (one text per frontier
/// size, about log2 of the log's size).
const STATEMENTS: usize = 96;

const DIALECT: Dialect = Dialect::Sqlite;

pub struct BulkWriter {
    path: PathBuf,
    /// The VFS that combines WAL writes, if it could be registered.
    vfs: Option<&'static str>,
    busy_timeout: Duration,
    /// `PRAGMA name = value`, run on every new connection: the sqlx writer's settings.
    pragmas: Vec<(&'static str, String)>,
    conn: Mutex<Option<Connection>>,
}

impl BulkWriter {
    pub fn new(
        path: PathBuf,
        vfs: Option<&'static str>,
        busy_timeout: Duration,
        pragmas: Vec<(&'static str, String)>,
    ) -> Self {
        Self { path, vfs, busy_timeout, pragmas, conn: Mutex::new(None) }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match self.vfs {
            Some(vfs) => Connection::open_with_flags_and_vfs(&self.path, flags, vfs)?,
            None => Connection::open_with_flags(&self.path, flags)?,
        };
        conn.busy_timeout(self.busy_timeout)?;
        for (name, value) in &self.pragmas {
            conn.pragma_update(None, name, value)?;
        }
        // The combined WAL writes are safe only when every commit syncs (see `wal_buffer`).
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
        if self.vfs.is_some() && synchronous != 2 {
            return Err(StoreError::Config(format!("the bulk writer runs with synchronous = {synchronous}, not FULL")));
        }
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(conn)
    }

    /// Writes `batch` (plain events only, see `ops::is_plain`) in one transaction; outcomes in
    /// input order. The caller makes sure no other connection writes meanwhile.
    pub fn write(&self, batch: &[IndexedEvent]) -> Result<Vec<WriteOutcome>, StoreError> {
        debug_assert!(batch.iter().all(ops::is_plain));
        let mut slot = self.conn.lock().expect("bulk writer lock");
        if slot.is_none() {
            *slot = Some(self.open()?);
        }
        let conn = slot.as_mut().expect("opened above");
        let written = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(StoreError::from)
            .and_then(|()| write_all(conn, batch))
            .and_then(|out| conn.execute_batch("COMMIT").map(|()| out).map_err(StoreError::from));
        if written.is_err() {
            // Nothing of the batch stays: a failed COMMIT may leave the transaction open.
            let _ = conn.execute_batch("ROLLBACK");
            *slot = None;
        }
        written
    }

    /// Writes have paused: the page cache is emptied (see `SqliteStore::release_idle_memory`);
    /// skipped if a batch is being written.
    pub fn release_idle_memory(&self) {
        if let Ok(slot) = self.conn.try_lock()
            && let Some(conn) = slot.as_ref()
            && let Err(e) = conn.execute_batch("PRAGMA shrink_memory")
        {
            tracing::debug!(error = %e, "could not shrink the bulk writer's page cache");
        }
    }

    /// Closes the connection; a later write opens it again.
    pub fn close(&self) {
        self.conn.lock().expect("bulk writer lock").take();
    }
}

/// The batch's events, tags, chain heads and log entries, inside the open transaction.
fn write_all(conn: &Connection, batch: &[IndexedEvent]) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut stored: Vec<(i64, &IndexedEvent)> = Vec::with_capacity(batch.len());
    for chunk in bulk_chunks(batch, BULK_EVENTS) {
        insert_events(conn, chunk, &mut outcomes, &mut stored)?;
    }
    insert_tags(conn, &stored)?;
    for chunk in bulk_chunks(&ops::chain_heads(&stored), BULK_EVENTS) {
        let mut stmt = conn.prepare_cached(&ops::insert_chain_heads_sql(DIALECT, chunk.len()))?;
        let mut b = Binder::new(&mut stmt);
        for ((pubkey, session), head) in chunk {
            b.bind(*pubkey)?.bind(*session)?.bind(*head)?;
        }
        stmt.raw_execute()?;
    }
    append_to_log(conn, &stored)?;
    Ok(outcomes)
}

/// One multi-row INSERT of events (see `ops::write_plain`, whose SQL and outcomes these are).
fn insert_events<'a>(
    conn: &Connection,
    chunk: &'a [IndexedEvent],
    outcomes: &mut Vec<WriteOutcome>,
    stored: &mut Vec<(i64, &'a IndexedEvent)>,
) -> Result<(), StoreError> {
    // The same id twice in one chunk: only the first can be stored.
    let mut first_seen = std::collections::HashSet::with_capacity(chunk.len());
    let unique: Vec<&IndexedEvent> = chunk.iter().filter(|e| first_seen.insert(e.id)).collect();
    let mut stmt = conn.prepare_cached(&ops::insert_events_sql(DIALECT, unique.len()))?;
    let mut b = Binder::new(&mut stmt);
    let mut hex_ids = vec![[0u8; 64]; unique.len()];
    for (ev, hex_id) in unique.iter().zip(&mut hex_ids) {
        hex::encode_to_slice(ev.id, hex_id).expect("64 hex digits for 32 bytes");
        let hex_id = std::str::from_utf8(hex_id).expect("hex is ASCII");
        b.bind(&ev.id[..])?.bind(&ev.pubkey[..])?.bind(ev.kind)?.bind(ev.created_at)?.bind(ev.expires_at)?;
        b.bind(ev.json.as_str())?.bind(hex_id)?.bind(ev.id_prefix)?;
    }
    let mut seqs: HashMap<[u8; 32], i64> = HashMap::with_capacity(unique.len());
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        seqs.insert(row.get(1)?, row.get(0)?);
    }
    drop(rows);
    let mut answered = std::collections::HashSet::with_capacity(seqs.len());
    for ev in chunk {
        outcomes.push(match seqs.get(&ev.id) {
            Some(&seq) if answered.insert(ev.id) => {
                stored.push((seq, ev));
                WriteOutcome::Stored { seq }
            }
            Some(_) => WriteOutcome::Duplicate,
            // Not inserted: already stored, or deleted by its author (rare).
            None => match conn.prepare_cached("SELECT 1 FROM events WHERE id = ?1")?.exists([&ev.id[..]])? {
                true => WriteOutcome::Duplicate,
                false => WriteOutcome::Deleted,
            },
        });
    }
    Ok(())
}

/// The tag rows of the stored events, in multi-row INSERTs.
fn insert_tags(conn: &Connection, stored: &[(i64, &IndexedEvent)]) -> Result<(), StoreError> {
    let tags: Vec<(i64, &IndexedEvent, &str, &str)> = stored
        .iter()
        .flat_map(|(seq, ev)| ev.tags.iter().map(move |(n, v)| (*seq, *ev, n.as_str(), v.as_str())))
        .collect();
    for chunk in bulk_chunks(&tags, BULK_TAGS) {
        let mut stmt = conn.prepare_cached(&ops::insert_tag_rows_sql(DIALECT, chunk.len()))?;
        let mut b = Binder::new(&mut stmt);
        for (seq, ev, name, value) in chunk {
            b.bind(*seq)?.bind(ev.kind)?.bind(ev.created_at)?.bind(ev.id_prefix)?.bind(*name)?;
            match super::super::tag_value(value, DIALECT) {
                Param::Int(v) => b.bind(v)?,
                Param::Bytes(v) => b.bind(v)?,
                Param::Text(v) => b.bind(v)?,
            };
        }
        stmt.raw_execute()?;
    }
    Ok(())
}

/// Appends the stored events to the verifiable log (see `log::append`, whose SQL and node
/// computation these are).
fn append_to_log(conn: &Connection, stored: &[(i64, &IndexedEvent)]) -> Result<(), StoreError> {
    if stored.is_empty() {
        return Ok(());
    }
    let size = conn.prepare_cached(log::SIZE_SQL)?.query_row([], |row| row.get::<_, i64>(0))? as u64;
    let needed = Frontier::nodes_needed(size);
    let found = frontier_nodes(conn, &needed)?;
    let nodes = log::new_nodes(size, &needed, &found, stored)?;
    let mut index = size;
    for chunk in bulk_chunks(stored, BULK_EVENTS) {
        let mut stmt = conn.prepare_cached(&log::insert_leaves_sql(DIALECT, chunk.len()))?;
        let mut b = Binder::new(&mut stmt);
        for (seq, ev) in chunk {
            b.bind(index as i64)?.bind(ev.received_ms)?.bind(*seq)?;
            index += 1;
        }
        stmt.raw_execute()?;
    }
    for chunk in bulk_chunks(&nodes, BULK_EVENTS) {
        let mut stmt = conn.prepare_cached(&log::insert_nodes_sql(DIALECT, chunk.len()))?;
        let mut b = Binder::new(&mut stmt);
        for (id, hash) in chunk {
            b.bind(id.level as i64)?.bind(id.index as i64)?.bind(&hash[..])?;
        }
        stmt.raw_execute()?;
    }
    Ok(())
}

/// The log nodes among `ids` that exist (see `log::nodes_on`).
fn frontier_nodes(conn: &Connection, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    let reads = NodeReads::of(ids);
    if !reads.leaves.is_empty() {
        let mut stmt = conn.prepare_cached(&reads.leaves_sql(DIALECT))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(reads.leaves.iter().map(|i| *i as i64)), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        reads.hash_low(rows, &mut out)?;
    }
    if !reads.inner.is_empty() {
        let mut stmt = conn.prepare_cached(&reads.inner_sql(DIALECT))?;
        let params = reads.inner.iter().flat_map(|id| [id.level as i64, id.index as i64]);
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let (level, index): (i64, i64) = (row.get(0)?, row.get(1)?);
            if let Ok(hash) = row.get::<_, Hash>(2) {
                out.insert(NodeId::new(level as u8, index as u64), hash);
            }
        }
    }
    Ok(out)
}

/// Binds values to a statement's parameters in order, from the first.
struct Binder<'s, 'c> {
    stmt: &'s mut Statement<'c>,
    next: usize,
}

impl<'s, 'c> Binder<'s, 'c> {
    fn new(stmt: &'s mut Statement<'c>) -> Self {
        Self { stmt, next: 1 }
    }

    fn bind(&mut self, value: impl rusqlite::ToSql) -> Result<&mut Self, StoreError> {
        self.stmt.raw_bind_parameter(self.next, value)?;
        self.next += 1;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nostr::{EventBuilder, Keys, Kind, Tag};
    use rusqlite::types::Value;

    use super::super::SqliteStore;
    use super::*;
    use crate::config::StoreConfig;

    async fn store(dir: &tempfile::TempDir, name: &str) -> SqliteStore {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        SqliteStore::open(&url, &StoreConfig::default()).await.unwrap()
    }

    /// A DePHY-like event: a session (`s`), a machine (`p`, 64 hex digits, stored as bytes)
    /// and a text tag.
    fn event(keys: &Keys, n: usize, text_tag: &str) -> IndexedEvent {
        let machine = Keys::generate().public_key().to_hex();
        let tags = [
            Tag::parse(["s", &format!("session-{}", n % 3)]).unwrap(),
            Tag::parse(["p", &machine]).unwrap(),
            Tag::parse(["t", text_tag]).unwrap(),
        ];
        let ev = EventBuilder::new(Kind::Custom(1573), format!("state {n}")).tags(tags).sign_with_keys(keys).unwrap();
        IndexedEvent::new(Arc::new(ev), 1_700_000_000_000 + n as i64)
    }

    /// Every row of the tables a write touches, in key order.
    fn dump(dir: &tempfile::TempDir, name: &str) -> Vec<(String, Vec<Vec<Value>>)> {
        let conn = Connection::open_with_flags(dir.path().join(name), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        ["events", "tags", "log_leaves", "log_nodes", "chain_heads", "deletions"]
            .into_iter()
            .map(|table| {
                let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3")).unwrap();
                let width = stmt.column_count();
                let rows = stmt
                    .query_map([], |row| (0..width).map(|i| row.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>())
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                (table.to_string(), rows)
            })
            .collect()
    }

    /// The bulk writer stores exactly what the sqlx path stores, with the same outcomes:
    /// events, tags, chain heads, log leaves and nodes, byte for byte, across batches that
    /// cross the bulk statements' row limit, repeat ids within and across batches, hold an
    /// event its author deleted beforehand, and alternate with batches the sqlx path writes
    /// (a deletion request is not plain).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_what_the_sqlx_path_stores() {
        let dir = tempfile::tempdir().unwrap();
        let (bulk, reference) = (store(&dir, "bulk.db").await, store(&dir, "sqlx.db").await);
        let authors: Vec<Keys> = (0..3).map(|_| Keys::generate()).collect();
        let events: Vec<IndexedEvent> = (0..700).map(|n| event(&authors[n % 3], n, &format!("tag {n}"))).collect();
        let deletion = EventBuilder::new(Kind::EventDeletion, "")
            .tags([Tag::event(events[650].event.id)])
            .sign_with_keys(&authors[650 % 3])
            .unwrap();
        let deletion = IndexedEvent::new(Arc::new(deletion), 1_700_000_001_000);
        let mut first = events[..40].to_vec();
        first.push(events[3].clone());
        let mut second = events[40..690].to_vec();
        second.push(events[10].clone());
        let batches = [first, vec![deletion], second, events[690..].to_vec(), events[..5].to_vec()];
        for (i, batch) in batches.iter().enumerate() {
            let plain = batch.iter().all(ops::is_plain);
            let got = bulk.write_batch(batch).await.unwrap();
            let mut tx = reference.writer.begin().await.unwrap();
            let want = ops::write_all::<sqlx::Sqlite>(&mut tx, &reference.sql, batch).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(got, want, "batch {i} (plain: {plain})");
        }
        assert_eq!(bulk.write_batch(&batches[0]).await.unwrap()[40], WriteOutcome::Duplicate);
        let outcomes = bulk.write_batch(&events[640..660]).await.unwrap();
        assert_eq!(outcomes[10], WriteOutcome::Deleted, "the event deleted beforehand is refused");
        let mut tx = reference.writer.begin().await.unwrap();
        ops::write_all::<sqlx::Sqlite>(&mut tx, &reference.sql, &events[640..660]).await.unwrap();
        tx.commit().await.unwrap();
        bulk.close().await;
        reference.close().await;
        let (got, want) = (dump(&dir, "bulk.db"), dump(&dir, "sqlx.db"));
        for ((table, got), (_, want)) in got.iter().zip(&want) {
            assert!(!got.is_empty() || table == "deletions", "{table} has rows");
            assert_eq!(got, want, "table {table}");
        }
        assert_eq!(got[2].1.len(), 700, "one log leaf per stored event (699 plain, one deletion request)");
    }

    /// A batch that fails part-way leaves nothing behind: its events, tags and log leaves
    /// are rolled back, the next batch is stored on a fresh connection, and the log's leaf
    /// indexes stay contiguous.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_leaves_nothing_and_the_next_one_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, "relay.db").await;
        let keys = Keys::generate();
        let events: Vec<IndexedEvent> = (0..30).map(|n| event(&keys, n, if n == 25 { "boom" } else { "ok" })).collect();
        store.write_batch(&events[..10]).await.unwrap();
        // The tag insert fails after the events of the batch went in.
        sqlx::query(
            "CREATE TRIGGER boom BEFORE INSERT ON tags WHEN NEW.value = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        let err = store.write_batch(&events[10..30]).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert!(store.bulk.conn.lock().unwrap().is_none(), "the connection is closed after an error");
        sqlx::query("DROP TRIGGER boom").execute(&store.writer).await.unwrap();
        let counts = |store: &SqliteStore| {
            let writer = store.writer.clone();
            async move {
                let q = "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM tags), \
                         (SELECT COUNT(*) FROM log_leaves), (SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves)";
                sqlx::query_as::<_, (i64, i64, i64, i64)>(q).fetch_one(&writer).await.unwrap()
            }
        };
        assert_eq!(counts(&store).await, (10, 30, 10, 10), "nothing of the failed batch stays");
        let outcomes = store.write_batch(&events[10..25]).await.unwrap();
        assert!(outcomes.iter().all(|o| matches!(o, WriteOutcome::Stored { .. })), "{outcomes:?}");
        assert_eq!(counts(&store).await, (25, 75, 25, 25));
        store.close().await;
    }
}
