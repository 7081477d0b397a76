//! The SQLite read connections that serve REQ (key pages and JSON batches), leased without
//! sqlx's pool.
//!
//! Every SQLite connection runs on its own worker thread, and each statement is a round trip
//! to it. sqlx's pool adds another on every release (it pings the connection before taking it
//! back), which doubled the thread hand-offs of a small REQ. A lease here is a semaphore
//! permit and a connection from a list; connections open on first need, up to the pool size.
//! A lease dropped mid-statement (its REQ was cancelled) returns its connection as is: the
//! worker finishes or abandons that statement before it runs the next one.

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

pub struct Readers {
    opts: SqliteConnectOptions,
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
    free: Semaphore,
}

/// One leased read connection; back to the list when dropped.
pub struct Lease<'a> {
    conn: Option<SqliteConnection>,
    readers: &'a Readers,
    _permit: SemaphorePermit<'a>,
}

impl Readers {
    /// At most `size` connections opened with `opts` (at least one).
    pub fn new(opts: SqliteConnectOptions, size: usize) -> Self {
        Self { opts, idle: std::sync::Mutex::new(Vec::new()), free: Semaphore::new(size.max(1)) }
    }

    /// An idle connection, or a new one while fewer than the pool size exist; waits otherwise.
    pub async fn lease(&self) -> Result<Lease<'_>, sqlx::Error> {
        let permit = self.free.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().expect("readers lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.opts.connect().await?,
        };
        Ok(Lease { conn: Some(conn), readers: self, _permit: permit })
    }

    /// Closes the idle connections and refuses further leases.
    pub async fn close(&self) {
        self.free.close();
        let idle = std::mem::take(&mut *self.idle.lock().expect("readers lock"));
        for conn in idle {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("a lease holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.idle.lock().expect("readers lock").push(conn);
        }
    }
}
