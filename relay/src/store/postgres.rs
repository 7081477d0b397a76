//! PostgreSQL backend, for several relay processes on one database.
//!
//! - Writers take a transaction-level advisory lock per batch, so arrival sequence numbers are
//!   assigned and committed in one global order across processes.
//! - After a batch, the writer `NOTIFY`s the range of sequence numbers it committed (and
//!   ephemeral events, which are never stored), and records them as this process's own before
//!   it commits; `pg_live` tails the table and fans out what the others accepted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::ops::{self, WriteSql};
use super::sql::{Built, Dialect};
use super::{IndexedEvent, StoreError, StoredEvent, WriteOutcome};
use crate::config::StoreConfig;

/// Advisory lock key serializing writers ("DePHY" in ASCII).
const WRITE_LOCK: i64 = 0x0044_6550_4859;
/// Session advisory lock held by the one process that signs log checkpoints.
const CHECKPOINT_LOCK: i64 = WRITE_LOCK + 1;
pub(super) const STORED_CHANNEL: &str = "dephy_relay_stored";
pub(super) const EPHEMERAL_CHANNEL: &str = "dephy_relay_ephemeral";
/// NOTIFY payloads must stay below 8000 bytes.
const MAX_NOTIFY_PAYLOAD: usize = 7900;

#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    sql: Arc<WriteSql>,
    pub(super) url: String,
    /// Identifies this process in notifications, so it skips its own.
    pub(super) origin: u64,
    /// Sequence numbers this process's writer is committing or has committed and dispatched
    /// itself, which the cross-process tail (`pg_live`) has not passed yet.
    pub(super) own: Arc<Mutex<BTreeSet<i64>>>,
    /// The connection that holds, or keeps trying for, [`CHECKPOINT_LOCK`].
    signer: Arc<tokio::sync::Mutex<Option<(sqlx::PgConnection, bool)>>>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredNote {
    pub o: u64,
    pub first: i64,
    pub last: i64,
}

/// An ephemeral event for the other processes: inline (`e`) or in `ephemeral_outbox` (`x`).
#[derive(Serialize, Deserialize)]
pub(super) struct EphemeralNote {
    pub o: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<Box<serde_json::value::RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<i64>,
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
            own: Arc::default(),
            signer: Arc::default(),
        })
    }

    pub async fn write_batch(&self, batch: &[IndexedEvent]) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
        let out = ops::write_all::<sqlx::Postgres>(&mut tx, &self.sql, batch).await?;
        let seqs: Vec<i64> = out
            .iter()
            .filter_map(|o| match o {
                WriteOutcome::Stored { seq } => Some(*seq),
                _ => None,
            })
            .collect();
        if let (Some(&first), Some(&last)) = (seqs.iter().min(), seqs.iter().max()) {
            let note = serde_json::to_string(&StoredNote { o: self.origin, first, last }).expect("serializable");
            sqlx::query("SELECT pg_notify($1, $2)").bind(STORED_CHANNEL).bind(note).execute(&mut *tx).await?;
        }
        // Recorded before the commit makes them visible: the tail must never mistake them for
        // another process's events (the writer dispatches them itself once this returns).
        self.own.lock().expect("own seqs lock").extend(seqs.iter().copied());
        if let Err(e) = tx.commit().await {
            // Not dispatched by the writer: if the commit did happen after all, the tail delivers them.
            let mut own = self.own.lock().expect("own seqs lock");
            for seq in &seqs {
                own.remove(seq);
            }
            return Err(e.into());
        }
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

    pub async fn fetch_events(&self, built: Built) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(ops::fetch_events(&self.pool, built).await?)
    }

    pub async fn fetch_count(&self, built: Built) -> Result<u64, StoreError> {
        Ok(ops::fetch_count(&self.pool, built).await?)
    }

    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = ops::purge_expired::<sqlx::Postgres>(&mut tx, &self.sql, now).await?;
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
