//! The SQLite read connections that serve REQ (key pages and JSON batches), without a worker
//! thread of their own.
//!
//! sqlx runs every SQLite connection on a worker thread of its own and hands each result row
//! back through a channel: a REQ that returns 100 events cost ~100 thread wake-ups, and under
//! query load a quarter of the relay's CPU went to context switches. These connections are
//! plain SQLite handles (rusqlite, on the very SQLite library sqlx links) and each statement
//! runs to completion in one call, reading the database file's pages through the one memory
//! map the connections share (`shared_map`). A small statement (`limit 1` up to a DePHY page
//! of 100 events) runs right on the calling task's thread, with no hand-off at all, within a
//! budget of [`INLINE_BUDGET_OPS`] SQLite VM steps: a statement that needs more (a hostile
//! `limit 1` filter can make SQLite walk many rows) is interrupted and run again on the
//! blocking pool, so no runtime thread is held for long. A larger statement (a page of up to
//! `KEYS_PER_ROUND` keys, see `store::stream`) goes to the blocking pool at once, one hand-off
//! and back whatever its row count (`SqliteStore::read` decides).
//!
//! A statement is prepared once per connection and kept ([`STATEMENTS`] per connection, the
//! least recently used dropped first). Connections are opened on first need and at most
//! `keep` idle ones are kept; at most one is in use per thread, as a statement never awaits,
//! and at most `keep` blocking-pool threads run statements at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::super::sql::{Built, Param};
use super::super::stream::Key;
use super::super::{StoreError, StoredEvent};
use super::shared_map;

/// Prepared statements kept per connection: one per query shape (filter form and literal
/// limit) in recent use.
const STATEMENTS: usize = 48;

/// SQLite VM steps an inline statement may take (roughly a millisecond or two of CPU); past
/// them it is interrupted and run again off the runtime thread. A `limit 1` key page usually
/// takes a few thousand.
pub const INLINE_BUDGET_OPS: i64 = 200_000;

/// Steps between two checks of the budget.
const BUDGET_CHECK_OPS: i64 = 1_000;

/// Where a statement runs: on the calling task's thread within [`INLINE_BUDGET_OPS`], or on
/// the blocking pool without a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Inline,
    OffThread,
}

/// How long a statement waits for a lock (only a WAL reset or recovery takes one a reader
/// must wait for); it then fails with an `error:` to the client rather than stall its thread.
const BUSY_WAIT: Duration = Duration::from_millis(200);

pub struct Readers {
    path: PathBuf,
    /// Page cache of each connection, KiB.
    cache_kib: u32,
    idle: Mutex<Vec<Conn>>,
    keep: usize,
    closed: AtomicBool,
    /// Statements running off their caller's thread (see `SqliteStore::read`).
    off_thread: Arc<Semaphore>,
}

impl Readers {
    /// Read-only connections to the database at `path`, keeping at most `keep` idle ones.
    pub fn new(path: PathBuf, cache_kib: u32, keep: usize) -> Self {
        let keep = keep.max(1);
        Self {
            path,
            cache_kib,
            idle: Mutex::new(Vec::new()),
            keep,
            closed: AtomicBool::new(false),
            off_thread: Arc::new(Semaphore::new(keep)),
        }
    }

    /// A turn to run a statement on the blocking pool: at most `keep` run there at once.
    pub async fn off_thread(&self) -> Result<OwnedSemaphorePermit, StoreError> {
        self.off_thread.clone().acquire_owned().await.map_err(|_| StoreError::Config("the store is closed".into()))
    }

    /// One page of keys (`seq, created_at, id, size[, raw]`) of a streamed query; `None` if an
    /// inline statement ran out of budget (run it again [`Run::OffThread`]).
    pub fn keys(&self, built: &Built, run: Run) -> Result<Option<Vec<Key>>, StoreError> {
        self.rows(built, run, |row, with_raw| {
            let id: [u8; 32] = row.get_ref(2)?.as_blob()?.try_into().map_err(|_| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Blob,
                    "stored id is not 32 bytes".into(),
                )
            })?;
            let bytes: i64 = row.get(3)?;
            Ok(Key {
                seq: row.get(0)?,
                created_at: row.get(1)?,
                id,
                bytes: bytes.max(0) as usize,
                raw: if with_raw { row.get(4)? } else { None },
            })
        })
    }

    /// `(seq, raw)` rows: a batch of JSON; `None` as for [`Readers::keys`].
    pub fn events(&self, built: &Built, run: Run) -> Result<Option<Vec<StoredEvent>>, StoreError> {
        self.rows(built, run, |row, _| Ok(StoredEvent { seq: row.get(0)?, json: row.get(1)? }))
    }

    /// Runs `built` (its prepared statement, kept) and maps every row; `map` is also told
    /// whether the statement has more than four columns.
    fn rows<T>(
        &self,
        built: &Built,
        run: Run,
        map: impl Fn(&rusqlite::Row<'_>, bool) -> rusqlite::Result<T>,
    ) -> Result<Option<Vec<T>>, StoreError> {
        self.with(run, |conn| {
            let mut stmt = conn.prepare_cached(&built.sql)?;
            let wide = stmt.column_count() > 4;
            bind(&mut stmt, &built.params)?;
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(map(row, wide)?);
            }
            Ok(out)
        })
    }

    /// Runs `f` on an idle connection (or a new one) and puts it back; `None` if an inline
    /// statement was interrupted for running out of budget.
    fn with<T>(&self, run: Run, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<Option<T>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Config("the store is closed".into()));
        }
        let idle = self.idle.lock().expect("readers lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let budget = match run {
            Run::Inline => INLINE_BUDGET_OPS / BUDGET_CHECK_OPS,
            Run::OffThread => i64::MAX,
        };
        conn.budget.store(budget, Ordering::Relaxed);
        let result = f(&conn.conn);
        let mut idle = self.idle.lock().expect("readers lock");
        if idle.len() < self.keep && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
        match result {
            Ok(out) => Ok(Some(out)),
            Err(e)
                if run == Run::Inline && e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn open(&self) -> rusqlite::Result<Conn> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // Pages of the database file come from the one map the read connections share (see
        // `shared_map`); a positive mmap_size turns SQLite's map path on. Without the VFS,
        // no map at all: each connection's own would count in RSS once more.
        let (conn, mmap_size) = match shared_map::register() {
            Ok(()) => (Connection::open_with_flags_and_vfs(&self.path, flags, shared_map::VFS_NAME)?, 1 << 30),
            Err(e) => {
                tracing::warn!(error = %e, "read connections read the database without a shared map");
                (Connection::open_with_flags(&self.path, flags)?, 0)
            }
        };
        conn.busy_timeout(BUSY_WAIT)?;
        // A small page cache of its own (mapped pages bypass it; WAL pages still use it).
        conn.execute_batch(&format!(
            "PRAGMA mmap_size = {mmap_size}; PRAGMA temp_store = memory; PRAGMA cache_size = -{}",
            self.cache_kib
        ))?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        let budget = Arc::new(AtomicI64::new(i64::MAX));
        let left = budget.clone();
        conn.progress_handler(
            BUDGET_CHECK_OPS as std::ffi::c_int,
            Some(move || left.fetch_sub(1, Ordering::Relaxed) <= 1),
        )?;
        Ok(Conn { conn, budget })
    }

    /// Closes the idle connections and refuses further statements.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.off_thread.close();
        self.idle.lock().expect("readers lock").clear();
    }
}

/// A read connection and the steps its current statement may still take.
struct Conn {
    conn: Connection,
    /// Decremented by SQLite's progress handler every [`BUDGET_CHECK_OPS`] steps; at zero or
    /// below the statement is interrupted.
    budget: Arc<AtomicI64>,
}

/// Binds built parameters in order (the SQLite dialect uses anonymous `?`).
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, params: &[Param]) -> rusqlite::Result<()> {
    for (i, p) in params.iter().enumerate() {
        match p {
            Param::Int(v) => stmt.raw_bind_parameter(i + 1, v)?,
            Param::Bytes(v) => stmt.raw_bind_parameter(i + 1, v)?,
            Param::Text(v) => stmt.raw_bind_parameter(i + 1, v)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml` builds the bundled SQLite without `SQLITE_ENABLE_MEMORY_MANAGEMENT`,
    /// so each connection's page cache is its own and takes no process-wide lock.
    #[test]
    fn page_caches_are_per_connection() {
        let conn = Connection::open_in_memory().unwrap();
        let used = |option: &str| -> i64 {
            conn.query_row("SELECT sqlite_compileoption_used(?1)", [option], |r| r.get(0)).unwrap()
        };
        // An option libsqlite3-sys does set reads as set: the check itself works.
        assert_eq!(used("ENABLE_FTS5"), 1);
        assert_eq!(
            used("ENABLE_MEMORY_MANAGEMENT"),
            0,
            "SQLite was built with ENABLE_MEMORY_MANAGEMENT: is LIBSQLITE3_FLAGS from .cargo/config.toml applied?"
        );
    }

    /// A WAL database in a fresh directory (kept while the first value lives) with an
    /// `events (seq, raw)` table, and a connection to it; `pragmas` run first.
    fn events_db(pragmas: &str) -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch(&format!(
                "{pragmas} PRAGMA journal_mode = WAL; CREATE TABLE events (seq INTEGER PRIMARY KEY, raw TEXT NOT NULL);"
            ))
            .unwrap();
        (dir, path, setup)
    }

    /// Small and large pages read the same rows, in statement order, and a closed set of
    /// connections refuses further statements.
    #[test]
    fn reads_rows_then_refuses_after_close() {
        let (_dir, path, setup) = events_db("");
        for seq in 1..=40 {
            setup.execute("INSERT INTO events (seq, raw) VALUES (?1, ?2)", (seq, format!("{{\"n\":{seq}}}"))).unwrap();
        }
        let readers = Readers::new(path, 256, 2);
        let built = |limit: usize| Built {
            sql: format!("SELECT seq, raw FROM events WHERE seq > ? ORDER BY seq LIMIT {limit}"),
            params: vec![Param::Int(5)],
        };
        for (limit, run) in [(1, Run::Inline), (30, Run::OffThread)] {
            let rows = readers.events(&built(limit), run).unwrap().unwrap();
            assert_eq!(rows.len(), limit);
            assert_eq!(rows[0].seq, 6);
            assert_eq!(rows.last().unwrap().json, format!("{{\"n\":{}}}", 5 + limit));
        }
        // Rows committed after a statement are seen by the next (no read transaction is kept).
        setup.execute("INSERT INTO events (seq, raw) VALUES (41, 'x')", []).unwrap();
        assert_eq!(readers.events(&built(100), Run::Inline).unwrap().unwrap().len(), 36);
        readers.close();
        assert!(readers.events(&built(1), Run::Inline).is_err());
    }

    /// Resident KiB of each map of `path` in this process (one entry per map).
    fn maps_of(path: &std::path::Path) -> Vec<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let name = path.to_str().unwrap();
        let mut maps = Vec::new();
        let mut inside = false;
        for line in smaps.lines() {
            let is_header = line.split_whitespace().next().is_some_and(|f| f.contains('-') && !f.ends_with(':'));
            if is_header {
                inside = line.ends_with(name);
            } else if inside && line.starts_with("Rss:") {
                maps.push(line.split_whitespace().nth(1).unwrap().parse().unwrap());
            }
        }
        maps
    }

    /// Several read connections read the database through one map of it (its pages resident
    /// once), see rows written after the map was made (the file grew past the size first
    /// seen) and after the file shrank (VACUUM), and the map goes with the last connection.
    #[test]
    fn read_connections_share_one_map_of_the_database() {
        let (_dir, path, setup) = events_db("PRAGMA page_size = 8192;");
        let fill = |from: i64, to: i64| {
            for seq in from..=to {
                setup.execute("INSERT INTO events (seq, raw) VALUES (?1, ?2)", (seq, "x".repeat(1000))).unwrap();
            }
            // Into the database file, where the map serves pages from (WAL pages are read).
            setup.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        };
        fill(1, 2000);
        let readers = Readers::new(path.clone(), 256, 4);
        let total = |conn: &Conn| -> (i64, i64) {
            conn.conn
                .query_row("SELECT count(*), sum(length(raw)) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
        };
        let conns: Vec<Conn> = (0..4).map(|_| readers.open().unwrap()).collect();
        for conn in &conns {
            assert_eq!(total(conn), (2000, 2_000_000));
        }
        let maps = maps_of(&path);
        assert_eq!(maps.len(), 1, "four read connections, one map: {maps:?}");
        assert!(maps[0] >= 1024, "the rows were read through the map ({} KiB resident)", maps[0]);

        // Grown past the size the map first saw.
        fill(2001, 6000);
        assert_eq!(total(&conns[1]), (6000, 6_000_000));
        let grown = std::fs::metadata(&path).unwrap().len();
        assert!(maps_of(&path)[0] * 1024 > grown / 2, "the new pages were read through the map too");

        // Shrunk: the connections read only what their snapshot holds, within the file.
        setup.execute_batch("DELETE FROM events WHERE seq > 100; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < grown / 10, "VACUUM shrank the file");
        for conn in &conns {
            assert_eq!(total(conn), (100, 100_000));
        }
        drop(conns);
        readers.close();
        assert_eq!(maps_of(&path).len(), 0, "the map is gone with the last connection");
    }

    /// A statement that needs more than the inline step budget is interrupted when inline
    /// (`None`: the caller runs it again off the runtime thread) and completes off-thread; the
    /// connection then serves small inline statements again.
    #[test]
    fn inline_budget_interrupts_a_long_statement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let readers = Readers::new(path, 256, 1);
        let count_to = |n: i64| Built {
            sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
                  SELECT max(x), 'counted' FROM c"
                .into(),
            params: vec![Param::Int(n)],
        };
        // ~10 steps per row: a million rows is far beyond the budget.
        assert!(readers.events(&count_to(1_000_000), Run::Inline).unwrap().is_none());
        let rows = readers.events(&count_to(1_000_000), Run::OffThread).unwrap().unwrap();
        assert_eq!((rows[0].seq, rows[0].json.as_str()), (1_000_000, "counted"));
        let rows = readers.events(&count_to(10), Run::Inline).unwrap().unwrap();
        assert_eq!(rows[0].seq, 10);
    }
}
