//! PostgreSQL backend, for several relay processes on one database.
//!
//! - Writers take a transaction-level advisory lock per batch, so arrival sequence numbers are
//!   assigned and committed in one global order across processes.
//! - After a batch, the writer `NOTIFY`s the range of sequence numbers it committed (and
//!   ephemeral events, which are never stored); every process `LISTEN`s and fans out what the
//!   others accepted to its own live subscribers.

use std::sync::Arc;
use std::time::Duration;

use nostr::{Event, JsonUtil};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use super::ops::{self, WriteSql};
use super::sql::{Built, Dialect};
use super::{IndexedEvent, StoreError, StoredEvent, WriteOutcome};
use crate::config::StoreConfig;
use crate::fanout::Delivery;

/// Advisory lock key serializing writers ("DePHY" in ASCII).
const WRITE_LOCK: i64 = 0x0044_6550_4859;
/// Session advisory lock held by the one process that signs log checkpoints.
const CHECKPOINT_LOCK: i64 = WRITE_LOCK + 1;
const STORED_CHANNEL: &str = "dephy_relay_stored";
const EPHEMERAL_CHANNEL: &str = "dephy_relay_ephemeral";
/// NOTIFY payloads must stay below 8000 bytes.
const MAX_NOTIFY_PAYLOAD: usize = 7900;

#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    sql: Arc<WriteSql>,
    url: String,
    /// Identifies this process in notifications, so it skips its own.
    origin: u64,
    /// The connection that holds, or keeps trying for, [`CHECKPOINT_LOCK`].
    signer: Arc<tokio::sync::Mutex<Option<(sqlx::PgConnection, bool)>>>,
}

#[derive(Serialize, Deserialize)]
struct StoredNote {
    o: u64,
    first: i64,
    last: i64,
}

/// An ephemeral event for the other processes: inline (`e`) or in `ephemeral_outbox` (`x`).
#[derive(Serialize, Deserialize)]
struct EphemeralNote {
    o: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<Box<serde_json::value::RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<i64>,
}

impl PgStore {
    pub async fn open(url: &str, cfg: &StoreConfig) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(cfg.read_connections.max(1) + 2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "cannot connect to PostgreSQL at {url}: {e} (is the server running and the database created?)"
                ))
            })?;
        super::migrations::migrator(super::migrations::POSTGRES).await?.run(&pool).await?;
        Ok(Self {
            pool,
            sql: Arc::new(WriteSql::new(Dialect::Postgres)),
            url: url.to_string(),
            origin: rand::random(),
            signer: Arc::default(),
        })
    }

    pub async fn write_batch(&self, batch: &[IndexedEvent]) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
        let out = ops::write_all::<sqlx::Postgres>(&mut tx, &self.sql, batch).await?;
        let seqs = out.iter().filter_map(|o| match o {
            WriteOutcome::Stored { seq } => Some(*seq),
            _ => None,
        });
        if let (Some(first), Some(last)) = (seqs.clone().min(), seqs.max()) {
            let note = serde_json::to_string(&StoredNote { o: self.origin, first, last }).expect("serializable");
            sqlx::query("SELECT pg_notify($1, $2)").bind(STORED_CHANNEL).bind(note).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Whether this process signs checkpoints: of all processes on the database, the one that
    /// holds a session advisory lock. If its connection drops, another process takes over.
    pub async fn is_checkpoint_signer(&self) -> bool {
        use sqlx::Connection;
        let mut signer = self.signer.lock().await;
        if signer.is_none() {
            *signer = sqlx::PgConnection::connect(&self.url).await.ok().map(|conn| (conn, false));
        }
        let Some((conn, held)) = signer.as_mut() else {
            return false;
        };
        let alive = if *held {
            conn.ping().await.is_ok()
        } else {
            match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(CHECKPOINT_LOCK)
                .fetch_one(&mut *conn)
                .await
            {
                Ok(got) => {
                    *held = got;
                    true
                }
                Err(_) => false,
            }
        };
        if !alive {
            // The session (and with it the lock) is gone; reconnect on the next call.
            *signer = None;
            return false;
        }
        signer.as_ref().is_some_and(|(_, held)| *held)
    }

    /// Tells the other relay processes about an ephemeral event (not stored anywhere).
    pub async fn announce_ephemeral(&self, event_json: &str) -> Result<(), StoreError> {
        let e = serde_json::value::RawValue::from_string(event_json.to_string())
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let mut note =
            serde_json::to_string(&EphemeralNote { o: self.origin, e: Some(e), x: None }).expect("serializable");
        if note.len() > MAX_NOTIFY_PAYLOAD {
            let (id,): (i64,) = sqlx::query_as("INSERT INTO ephemeral_outbox (raw, at) VALUES ($1, $2) RETURNING id")
                .bind(event_json)
                .bind(super::now_millis())
                .fetch_one(&self.pool)
                .await?;
            note =
                serde_json::to_string(&EphemeralNote { o: self.origin, e: None, x: Some(id) }).expect("serializable");
        }
        sqlx::query("SELECT pg_notify($1, $2)").bind(EPHEMERAL_CHANNEL).bind(note).execute(&self.pool).await?;
        Ok(())
    }

    /// Listens for events accepted by other processes on this database and hands them to
    /// `deliver` in commit order. Reconnects on error; returns when `deliver` is closed.
    pub async fn listen(&self, deliver: tokio::sync::mpsc::Sender<Delivery>) {
        loop {
            if let Err(e) = self.listen_once(&deliver).await {
                if deliver.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "PostgreSQL listener failed; reconnecting in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                return;
            }
        }
    }

    async fn listen_once(&self, deliver: &tokio::sync::mpsc::Sender<Delivery>) -> Result<(), StoreError> {
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen_all([STORED_CHANNEL, EPHEMERAL_CHANNEL]).await?;
        loop {
            let note = listener.recv().await?;
            let deliveries = match note.channel() {
                STORED_CHANNEL => match serde_json::from_str::<StoredNote>(note.payload()) {
                    Ok(n) if n.o != self.origin => self.range(n.first, n.last).await?,
                    _ => continue,
                },
                _ => match serde_json::from_str::<EphemeralNote>(note.payload()) {
                    Ok(n) if n.o != self.origin => {
                        let raw = match (n.e, n.x) {
                            (Some(e), _) => e.get().to_string(),
                            (None, Some(id)) => {
                                let row: Option<(String,)> =
                                    sqlx::query_as("SELECT raw FROM ephemeral_outbox WHERE id = $1")
                                        .bind(id)
                                        .fetch_optional(&self.pool)
                                        .await?;
                                match row {
                                    Some((raw,)) => raw,
                                    None => continue,
                                }
                            }
                            (None, None) => continue,
                        };
                        match Event::from_json(&raw) {
                            Ok(ev) => vec![Delivery::new(None, Arc::new(ev), raw.into())],
                            Err(_) => continue,
                        }
                    }
                    _ => continue,
                },
            };
            for d in deliveries {
                if deliver.send(d).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    async fn range(&self, first: i64, last: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, raw FROM events WHERE seq BETWEEN $1 AND $2 ORDER BY seq")
                .bind(first)
                .bind(last)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, raw)| {
                let ev = Event::from_json(&raw).ok()?;
                Some(Delivery::new(Some(seq), Arc::new(ev), raw.into()))
            })
            .collect())
    }

    pub async fn fetch_events(&self, built: Built) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(ops::fetch_events(&self.pool, built).await?)
    }

    pub async fn fetch_count(&self, built: Built) -> Result<u64, StoreError> {
        Ok(ops::fetch_count(&self.pool, built).await?)
    }

    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let [tags, events] = ops::purge_sql(Dialect::Postgres);
        sqlx::query(sqlx::AssertSqlSafe(tags)).bind(now).execute(&mut *tx).await?;
        let n = sqlx::query(sqlx::AssertSqlSafe(events)).bind(now).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM ephemeral_outbox WHERE at < $1")
            .bind(super::now_millis() - 60_000)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events").fetch_one(&self.pool).await?;
        Ok(seq.unwrap_or(0))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
