//! SQLite backend: two writer connections that take turns (group commits: batches of plain
//! events through `bulk_writer`, in one call each; every other write through sqlx), read
//! connections (a sqlx pool, and the REQ read connections in `readers`, which run without a
//! worker thread), WAL journal, `synchronous = FULL` so an acknowledged event survives a crash
//! or power loss, and one memory map of the database file shared by the REQ read connections
//! (`shared_map`); the other connections read with `pread`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::ops::{self, WriteSql};
use super::sql::{Built, Dialect};
use super::stream::Key;
use super::{IndexedEvent, StoreError, StoredEvent, WriteOutcome};
use crate::config::StoreConfig;

/// How long a connection waits for a lock held by another.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page size of a new database. Rows of ~600-byte events fill 8 KiB pages better than 4 KiB
/// ones (less slack at the end of each page); an existing database keeps its page size.
const PAGE_SIZE: u32 = 8192;

/// WAL file size kept when the WAL is rewound (`journal_size_limit`), as a multiple of the
/// size at which it is rewound (`store.wal_restart_bytes`): more than a rewind leaves behind,
/// so that a busy WAL is overwritten in place. Writing into a file cut short costs the kernel
/// a block allocation and a zeroed page per frame (~10.5 µs of system time per 8 KiB frame on
/// these machines, against ~6.8 µs to overwrite); an idle WAL is still truncated to nothing
/// (see `checkpoint_wal`).
const WAL_KEEP_FACTOR: i64 = 2;

/// How long the idle truncation of a fully checkpointed WAL may wait for readers of an older
/// snapshot (it holds back the writer meanwhile); it is simply retried on a later tick.
const TRUNCATE_WAIT_MS: u32 = 50;

/// Page cache of each read connection, KiB (anonymous memory: 2 x 8 readers x 2 MiB at
/// most). The REQ read connections read the database file's pages through the shared map,
/// which bypasses this cache; it holds the pages they read from the WAL.
const READER_CACHE_KIB: u32 = 2048;

/// Page cache of each writer connection, KiB. Inserts land on random leaves of the id, author and tag
/// indexes: a smaller cache (8 MiB) cost ~13 µs of CPU per ingested event in page reads. It is
/// given back when writes pause (see `store::writer`).
const WRITER_CACHE_KIB: u32 = 32768;

/// Prepared statements the sqlx writer keeps (the bulk writer has its own, see `bulk_writer`).
/// Bulk inserts are one statement text per row count,
/// and row counts are powers of two (`ops::bulk_chunks`): up to 10-11 texts for each of the
/// five bulk statements (events, tags, log leaves, log nodes, chain heads; ~2 MiB prepared in
/// all), beside the fixed ones. sqlx's default of 100 kept ~10 MiB of them when any row count
/// could occur.
const WRITER_STATEMENTS: usize = 64;

/// Rows the writer's SQLite worker thread may queue for the writer task. sqlx's default of
/// 50 is less than one bulk INSERT returns (`RETURNING seq, id`, up to 512 rows): once the
/// queue was full, the worker thread and the writer task handed it back and forth one row at a
/// time (~0.8 context switches per ingested event). Every write statement is collected whole
/// (`fetch_all`), so this changes no memory bound.
const WRITER_ROW_QUEUE: usize = 1024;

/// Read statements of at most this many rows run on the calling thread (see `SqliteStore::read`):
/// a DePHY page of 50-100 events takes ~0.3-0.6 ms there, less than the two thread hand-offs
/// of the blocking pool cost it (with pages read through the shared map, no statement waits
/// for a `pread`); the step budget still bounds any one of them.
const INLINE_READ_ROWS: usize = 128;

mod bulk_writer;
mod readers;
mod shared_map;
mod vfs;
mod wal_buffer;

/// Runs `f`, a batch's whole transaction, on this thread: on a multi-threaded runtime the
/// thread's other tasks move to another thread meanwhile (`block_in_place`), so that none of
/// them waits for the commit.
fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Turns off SQLite's memory statistics, once, before the first connection opens. With them
/// on (the default), every allocation SQLite makes takes one process-wide mutex, and the
/// writer and the read connections, each on its own thread, queued on it (a tenth of a
/// simple REQ's CPU went to futex waits and wake-ups). Nothing here reads those statistics.
/// Has no effect (SQLITE_MISUSE, ignored) if SQLite was already initialized.
fn without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called with its documented (int) argument; SQLite only
        // accepts it before initialization and refuses it (with an error code) afterwards.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int);
        }
    });
}

#[derive(Clone)]
pub struct SqliteStore {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    /// The read connections of REQ (key pages and JSON batches).
    readers: std::sync::Arc<readers::Readers>,
    checkpointer: SqlitePool,
    /// The writer's connection for batches of plain events (see `bulk_writer`).
    bulk: std::sync::Arc<bulk_writer::BulkWriter>,
    sql: std::sync::Arc<WriteSql>,
}

impl SqliteStore {
    pub async fn open(url: &str, cfg: &StoreConfig) -> Result<Self, StoreError> {
        without_memory_statistics();
        let restart_bytes = cfg.wal_restart_bytes.min(crate::config::MAX_WAL_RESTART_BYTES) as i64;
        // Settings of every connection here (the REQ read connections, in `readers`, have
        // their own). No memory map of SQLite's own: every pooled connection would map the file
        // anew, and each map's resident pages count in the process's RSS again (9 connections
        // on a 100 MiB database showed as ~900 MiB). The REQ read connections share one map
        // (`readers`, `shared_map`); these connections read through their own caches.
        let common: [(&'static str, String); 4] = [
            ("cache_size", format!("-{WRITER_CACHE_KIB}")),
            ("mmap_size", "0".into()),
            ("temp_store", "memory".into()),
            ("journal_size_limit", (WAL_KEEP_FACTOR * restart_bytes).to_string()),
        ];
        // And of both writers: they never checkpoint the WAL themselves (that would stall
        // group commits); a background connection does, see `checkpoint_wal`.
        let writers: (&'static str, String) = ("wal_autocheckpoint", "0".into());
        let opts = common.iter().fold(
            SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("invalid SQLite URL {url:?}: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(BUSY_TIMEOUT)
                .page_size(PAGE_SIZE),
            |opts, (name, value)| opts.pragma(*name, value.clone()),
        );
        let path = opts.get_filename().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create database directory {}: {e}", dir.display())))?;
        }
        let writer_opts = opts
            .clone()
            .pragma(writers.0, writers.1.clone())
            .statement_cache_capacity(WRITER_STATEMENTS)
            .row_buffer_size(WRITER_ROW_QUEUE);
        // Batches of plain events go through the bulk writer's connection, whose WAL writes
        // are gathered into large ones (`wal_buffer`, which needs `synchronous = FULL`). Only
        // that connection may buffer them (see `bulk_writer`).
        let wal_vfs = match wal_buffer::register() {
            Ok(()) => Some(wal_buffer::VFS_NAME),
            Err(e) => {
                tracing::warn!(error = %e, "WAL writes are not combined; ingest costs more CPU");
                None
            }
        };
        let bulk = std::sync::Arc::new(bulk_writer::BulkWriter::new(
            path.clone(),
            wal_vfs,
            BUSY_TIMEOUT,
            // What sqlx sets for its connections above (`synchronous`; `foreign_keys` is its
            // default), then the same settings.
            [("synchronous", "FULL".into()), ("foreign_keys", "ON".into())]
                .into_iter()
                .chain(common)
                .chain([writers])
                .collect(),
        ));
        // Its only connection is also the turn to write: the bulk writer writes while holding
        // it. No ping before each use: it is a local file handle.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(writer_opts)
            .await?;
        let checkpointer = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
        super::migrations::migrator(super::migrations::SQLITE).await?.run(&writer).await?;
        let read_opts = opts.read_only(true).pragma("cache_size", format!("-{READER_CACHE_KIB}"));
        // A read connection is a local file handle that cannot silently drop: no ping round
        // trip to its worker thread before each query (the pool still pings on release).
        let reader = SqlitePoolOptions::new()
            .max_connections(cfg.read_connections.max(1))
            .test_before_acquire(false)
            .connect_with(read_opts)
            .await?;
        let readers =
            std::sync::Arc::new(readers::Readers::new(path.clone(), READER_CACHE_KIB, cfg.read_connections as usize));
        let sql = std::sync::Arc::new(WriteSql::new(Dialect::Sqlite));
        let store = Self { writer, reader, readers, checkpointer, bulk, sql };
        tokio::spawn(store.clone().checkpoint_wal(restart_bytes));
        Ok(store)
    }

    pub async fn write_batch(&self, batch: &[IndexedEvent]) -> Result<Vec<WriteOutcome>, StoreError> {
        if !batch.is_empty() && batch.iter().all(ops::is_plain) {
            // The turn to write; no other writer connection runs meanwhile.
            let _turn = self.writer.acquire().await?;
            return off_runtime(|| self.bulk.write(batch));
        }
        let mut tx = self.writer.begin().await?;
        let out = ops::write_all::<sqlx::Sqlite>(&mut tx, &self.sql, batch).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub async fn fetch_events(&self, built: Built) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(ops::fetch_events(&self.reader, built).await?)
    }

    /// One page of keys of a streamed query, at most `rows` (see [`SqliteStore::read`]).
    pub async fn fetch_keys(&self, built: Built, rows: usize) -> Result<Vec<Key>, StoreError> {
        self.read(rows, move |readers, run| readers.keys(&built, run)).await
    }

    /// A batch of at most `rows` `(seq, raw)` rows (see [`SqliteStore::read`]).
    pub async fn fetch_raw(&self, built: Built, rows: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(rows, move |readers, run| readers.events(&built, run)).await
    }

    /// Runs a read statement of at most `rows` rows: a small one right here, on the calling
    /// task's thread (no hand-off at all, the common `limit 1` to a few rows), unless it runs
    /// out of its step budget (see `readers`); a larger one, or one out of budget, on the
    /// blocking pool, at most `read_connections` at a time, so that a long slice of one query
    /// does not hold up the other connections' tasks on this runtime thread.
    async fn read<T: Send + 'static>(
        &self,
        rows: usize,
        f: impl Fn(&readers::Readers, readers::Run) -> Result<Option<T>, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if rows <= INLINE_READ_ROWS {
            if let Some(out) = f(&self.readers, readers::Run::Inline)? {
                return Ok(out);
            }
            metrics::counter!(crate::metrics::READS_MOVED_OFF_THREAD).increment(1);
        }
        let permit = self.readers.off_thread().await?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&readers, readers::Run::OffThread)?
                .ok_or_else(|| StoreError::Config("a read statement was interrupted".into()))
        })
        .await
        .map_err(|e| StoreError::Config(format!("a read statement did not finish: {e}")))?
    }

    pub async fn fetch_count(&self, built: Built) -> Result<u64, StoreError> {
        Ok(ops::fetch_count(&self.reader, built).await?)
    }

    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let n = ops::purge_expired::<sqlx::Sqlite>(&mut tx, &self.sql, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events").fetch_one(&self.reader).await?;
        Ok(seq.unwrap_or(0))
    }

    /// Copies committed WAL frames into the database file, off the write path, until the
    /// store is closed. PASSIVE never blocks the writer or readers. A WAL larger than
    /// `restart_bytes` is rewound (RESTART); one that saw no commit for a tick is truncated.
    async fn checkpoint_wal(self, restart_bytes: i64) {
        let page_size: i64 =
            sqlx::query_scalar("PRAGMA page_size").fetch_one(&self.checkpointer).await.unwrap_or(PAGE_SIZE.into());
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        // WAL frames seen at the previous tick: the same count twice means no commit since.
        let mut last_frames = -1;
        loop {
            tick.tick().await;
            if self.checkpointer.is_closed() {
                return;
            }
            let mode = match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&self.checkpointer)
                .await
            {
                // Everything copied and nothing committed for a whole tick, so writes have
                // paused: give the WAL's disk space back, so that an idle relay's WAL does not
                // keep the size of its last burst (a pause between two group commits is not
                // enough: truncating blocks the writer, and emptying its cache costs reads).
                // Checked first: a rewound WAL reports its old frames until the next commit,
                // so a WAL over the restart size when writes stop would otherwise be rewound
                // at every tick and never truncated.
                Ok((_, frames, copied)) if frames > 0 && frames == copied && frames == last_frames => {
                    last_frames = -1;
                    "TRUNCATE"
                }
                // Under a steady write load a passive checkpoint never catches up, and SQLite
                // only rewinds a fully checkpointed WAL: bound its size with a RESTART, which
                // makes the writer wait for the copy.
                Ok((_, frames, _)) if frames * page_size > restart_bytes => {
                    last_frames = frames;
                    "RESTART"
                }
                Ok((_, frames, _)) => {
                    last_frames = frames;
                    continue;
                }
                Err(e) => {
                    if self.checkpointer.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                    continue;
                }
            };
            let wait_ms = if mode == "TRUNCATE" { TRUNCATE_WAIT_MS } else { BUSY_TIMEOUT.as_millis() as u32 };
            let Ok(mut conn) = self.checkpointer.acquire().await else { continue };
            let result = async {
                sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {wait_ms}")))
                    .execute(&mut *conn)
                    .await?;
                let done = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA wal_checkpoint({mode})")))
                    .execute(&mut *conn)
                    .await;
                let millis = BUSY_TIMEOUT.as_millis();
                sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {millis}"))).execute(&mut *conn).await?;
                done
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, mode, "WAL checkpoint failed");
            }
        }
    }

    /// Writes have paused: the writer's page cache (up to [`WRITER_CACHE_KIB`]) is emptied, so
    /// that an idle relay does not keep the memory of its last burst. The next write reads its
    /// pages again.
    pub async fn release_idle_memory(&self) {
        self.bulk.release_idle_memory();
        if let Err(e) = sqlx::query("PRAGMA shrink_memory").execute(&self.writer).await {
            tracing::debug!(error = %e, "could not shrink the writer's page cache");
        }
    }

    pub async fn close(&self) {
        self.checkpointer.close().await;
        self.readers.close();
        self.reader.close().await;
        self.writer.close().await;
        self.bulk.close();
    }
}
