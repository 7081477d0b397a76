//! The store stage: durable events in SQLite (embedded default) or PostgreSQL.
//!
//! - [`IndexedEvent`]: an accepted event with the columns the database indexes.
//! - [`Store`]: one type over both backends; writes are batched by [`writer`] (group commit),
//!   reads are built by [`sql`] for either SQL dialect.
//!
//! Every stored event gets `seq`, a strictly increasing arrival sequence in commit order.

mod migrations;
mod ops;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod writer;

use std::sync::Arc;

use nostr::{Event, Filter, JsonUtil, Kind, TagKind};

use crate::config::StoreConfig;

/// Errors from the database, reported to clients as `error:` without internals.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Config(String),
}

/// What happened to one event handed to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Committed with this arrival sequence number.
    Stored { seq: i64 },
    /// The same event id is already stored.
    Duplicate,
    /// A replaceable/addressable event older than the version already stored.
    Superseded,
    /// The author deleted this event (NIP-09) before it arrived.
    Deleted,
}

/// A stored event as read back: its arrival sequence and its JSON.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub json: String,
}

/// How a kind is stored (NIP-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindClass {
    Regular,
    Replaceable,
    Ephemeral,
    Addressable,
}

impl KindClass {
    pub fn of(kind: Kind) -> Self {
        let k = kind.as_u16();
        match k {
            0 | 3 | 10_000..=19_999 => Self::Replaceable,
            20_000..=29_999 => Self::Ephemeral,
            30_000..=39_999 => Self::Addressable,
            _ => Self::Regular,
        }
    }
}

/// An accepted event with the values the database stores and indexes.
#[derive(Debug, Clone)]
pub struct IndexedEvent {
    pub event: Arc<Event>,
    pub id: [u8; 32],
    pub pubkey: [u8; 32],
    pub kind: i64,
    pub created_at: i64,
    /// The first 8 bytes of the id as a signed integer that sorts like the id (sign bit
    /// flipped), so tag index scans can break created_at ties by id without a sort.
    pub id_prefix: i64,
    pub expires_at: Option<i64>,
    /// `Some("")` for replaceable kinds, `Some(d)` for addressable ones, `None` otherwise.
    pub dtag: Option<String>,
    /// `kind:pubkey:d` for replaceable and addressable events (NIP-09 `a` deletion target).
    pub coordinate: Option<String>,
    /// Distinct (single-letter name, first value) pairs: what tag filters match on.
    pub tags: Vec<(String, String)>,
    pub json: String,
    pub received_ms: i64,
    /// For kind 5: the event ids and coordinates this deletion request targets (own only).
    pub deletes_ids: Vec<[u8; 32]>,
    pub deletes_coords: Vec<(i64, String)>,
}

impl IndexedEvent {
    pub fn new(event: Arc<Event>, received_ms: i64) -> Self {
        let class = KindClass::of(event.kind);
        let pubkey = event.pubkey.to_bytes();
        let pubkey_hex = event.pubkey.to_hex();
        let dtag = match class {
            KindClass::Replaceable => Some(String::new()),
            KindClass::Addressable => Some(event.tags.identifier().unwrap_or_default().to_string()),
            _ => None,
        };
        let coordinate =
            dtag.as_ref().map(|d| format!("{}:{}:{}", event.kind.as_u16(), pubkey_hex, d));
        let mut tags: Vec<(String, String)> = Vec::new();
        for tag in event.tags.iter() {
            let parts = tag.as_slice();
            if let [name, value, ..] = parts
                && name.len() == 1
                && name.chars().all(|c| c.is_ascii_alphabetic())
                && !tags.iter().any(|(n, v)| n == name && v == value)
            {
                tags.push((name.clone(), value.clone()));
            }
        }
        let (mut deletes_ids, mut deletes_coords) = (Vec::new(), Vec::new());
        if event.kind == Kind::EventDeletion {
            for tag in event.tags.iter() {
                match (tag.kind(), tag.content()) {
                    (TagKind::SingleLetter(s), Some(v)) if s.as_char() == 'e' => {
                        if let Ok(id) = nostr::EventId::from_hex(v) {
                            deletes_ids.push(id.to_bytes());
                        }
                    }
                    (TagKind::SingleLetter(s), Some(v)) if s.as_char() == 'a' => {
                        // Only the author's own coordinates can be deleted.
                        let mut it = v.splitn(3, ':');
                        if let (Some(k), Some(pk), Some(_)) = (it.next(), it.next(), it.next())
                            && pk == pubkey_hex
                            && let Ok(k) = k.parse::<u16>()
                            && matches!(
                                KindClass::of(Kind::from(k)),
                                KindClass::Replaceable | KindClass::Addressable
                            )
                        {
                            deletes_coords.push((k as i64, v.to_string()));
                        }
                    }
                    _ => {}
                }
            }
        }
        Self {
            id: event.id.to_bytes(),
            pubkey,
            kind: event.kind.as_u16() as i64,
            created_at: event.created_at.as_secs() as i64,
            id_prefix: id_prefix(event.id.as_bytes()),
            expires_at: event.tags.expiration().map(|t| t.as_secs() as i64),
            dtag,
            coordinate,
            tags,
            json: event.as_json(),
            received_ms,
            deletes_ids,
            deletes_coords,
            event,
        }
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// The database behind the relay.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(url: &str, cfg: &StoreConfig) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(sqlite::SqliteStore::open(url, cfg).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(postgres::PgStore::open(url, cfg).await?))
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL {url:?}: use sqlite://PATH or postgres://USER@HOST/DB"
            )))
        }
    }

    /// Writes a batch in one transaction; outcomes are in input order.
    pub async fn write_batch(&self, batch: &[IndexedEvent]) -> Result<Vec<WriteOutcome>, StoreError> {
        match self {
            Self::Sqlite(s) => s.write_batch(batch).await,
            Self::Postgres(s) => s.write_batch(batch).await,
        }
    }

    /// Stored events matching any of `filters`, newest first per filter, without duplicates.
    pub async fn query(
        &self,
        filters: &[Filter],
        default_limit: usize,
        max_limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let now = now_secs();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for filter in filters {
            let limit = filter.limit.unwrap_or(default_limit).min(max_limit);
            if limit == 0 {
                continue;
            }
            let built = sql::select(filter, limit, now, self.dialect());
            let rows = match self {
                Self::Sqlite(s) => s.fetch_events(built).await?,
                Self::Postgres(s) => s.fetch_events(built).await?,
            };
            out.extend(rows.into_iter().filter(|e| seen.insert(e.seq)));
        }
        Ok(out)
    }

    /// Number of distinct stored events matching any of `filters` (NIP-45).
    pub async fn count(&self, filters: &[Filter]) -> Result<u64, StoreError> {
        let built = sql::count(filters, now_secs(), self.dialect());
        match self {
            Self::Sqlite(s) => s.fetch_count(built).await,
            Self::Postgres(s) => s.fetch_count(built).await,
        }
    }

    /// Deletes events whose NIP-40 expiration has passed; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.purge_expired(now_secs()).await,
            Self::Postgres(s) => s.purge_expired(now_secs()).await,
        }
    }

    /// The highest arrival sequence committed so far (0 when empty).
    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        match self {
            Self::Sqlite(s) => s.last_seq().await,
            Self::Postgres(s) => s.last_seq().await,
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }

    pub fn dialect(&self) -> sql::Dialect {
        match self {
            Self::Sqlite(_) => sql::Dialect::Sqlite,
            Self::Postgres(_) => sql::Dialect::Postgres,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// See [`IndexedEvent::id_prefix`].
pub fn id_prefix(id: &[u8; 32]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[..8]);
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
