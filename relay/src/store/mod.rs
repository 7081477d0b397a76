//! The store stage: durable events in SQLite (embedded default) or PostgreSQL.
//!
//! - [`IndexedEvent`]: an accepted event with the columns the database indexes.
//! - [`Store`]: one type over both backends; writes are batched by [`writer`] (group commit),
//!   reads are built by [`sql`] for either SQL dialect.
//!
//! Every stored event gets `seq`, a strictly increasing arrival sequence in commit order.

pub mod log;
mod migrations;
mod ops;
mod pg_live;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod stream;
pub mod writer;

use std::sync::Arc;

use nostr::{Event, Filter, JsonUtil, Kind, TagKind};

use crate::config::StoreConfig;

/// Errors from the database, reported to clients as `error:` without internals.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database error: {0}")]
    /// From the connections that bypass sqlx: REQ reads (`sqlite::readers`) and bulk writes
    /// (`sqlite::bulk_writer`).
    Sqlite(#[from] rusqlite::Error),
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
    /// Its `prev` tag does not name the head of its (author, `s`) chain.
    Fork,
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
    /// The first `s` tag value: the session chain this event belongs to.
    pub session: Option<String>,
    /// The `prev` tag: the chain head this event claims to follow.
    pub prev: Option<[u8; 32]>,
    /// Who handed the event in; only client events are mirrored to federation peers.
    pub origin: Origin,
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client of this relay (over WebSocket).
    Client,
    /// A federation peer (through the bridge).
    Peer,
    /// The relay itself (checkpoints).
    Own,
}

impl IndexedEvent {
    /// Indexes an event, serializing it for storage (events the relay made or got from a peer).
    pub fn new(event: Arc<Event>, received_ms: i64) -> Self {
        let json = event.as_json();
        Self::with_json(event, json, received_ms)
    }

    /// Indexes an event whose compact JSON is already at hand (a client's own text, see
    /// `protocol`): stored and served verbatim, not re-serialized.
    pub fn with_json(event: Arc<Event>, json: String, received_ms: i64) -> Self {
        let class = KindClass::of(event.kind);
        let pubkey = event.pubkey.to_bytes();
        let pubkey_hex = event.pubkey.to_hex();
        let dtag = match class {
            KindClass::Replaceable => Some(String::new()),
            KindClass::Addressable => Some(index_text(event.tags.identifier().unwrap_or_default())),
            _ => None,
        };
        let coordinate = dtag.as_ref().map(|d| format!("{}:{}:{}", event.kind.as_u16(), pubkey_hex, d));
        let tags = indexed_tags(event.tags.iter().map(|t| t.as_slice()));
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
                            && matches!(KindClass::of(Kind::from(k)), KindClass::Replaceable | KindClass::Addressable)
                        {
                            deletes_coords.push((k as i64, index_text(v)));
                        }
                    }
                    _ => {}
                }
            }
        }
        let tag_value = |name: &str| {
            event.tags.iter().find_map(|t| match t.as_slice() {
                [n, v, ..] if n == name => Some(v.clone()),
                _ => None,
            })
        };
        let session = tag_value("s").map(|s| index_text(&s));
        // A malformed prev can never name a head: keep it as an impossible id so it forks.
        let prev = tag_value("prev").map(|v| {
            let mut id = [0xffu8; 32];
            if hex::decode_to_slice(&v, &mut id).is_err() {
                id = [0xff; 32];
            }
            id
        });
        Self {
            session,
            prev,
            id: event.id.to_bytes(),
            pubkey,
            kind: event.kind.as_u16() as i64,
            created_at: ts(event.created_at),
            id_prefix: id_prefix(event.id.as_bytes()),
            expires_at: event.tags.expiration().map(|t| ts(*t)),
            dtag,
            coordinate,
            tags,
            json,
            received_ms,
            deletes_ids,
            deletes_coords,
            event,
            origin: Origin::Client,
        }
    }

    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// Runs `$body` with `$pool` bound to the backend's pool for reads (`read`) or writes (`write`).
macro_rules! with_pool {
    ($store:expr, read $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite(s) => {
                let $pool = &s.reader;
                $body
            }
            Store::Postgres(s) => {
                let $pool = &s.pool;
                $body
            }
        }
    };
    ($store:expr, write $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite(s) => {
                let $pool = &s.writer;
                $body
            }
            Store::Postgres(s) => {
                let $pool = &s.pool;
                $body
            }
        }
    };
}

/// An inclusion proof of one event in the log at some tree size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InclusionProof {
    pub event_id: String,
    pub leaf_index: u64,
    pub received_ms: i64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub root_hash: String,
    pub audit_path: Vec<String>,
}

/// Why a log request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
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

    /// Writes have paused: gives back the memory the writer keeps for the next batch (SQLite:
    /// its page cache), then the freed heap.
    pub async fn release_idle_memory(&self) {
        if let Self::Sqlite(s) = self {
            s.release_idle_memory().await;
        }
        crate::memory::release_freed_now().await;
    }

    /// Shares an ephemeral event (never stored) with the other relay processes on the same
    /// database: a NOTIFY on PostgreSQL; nothing to do on SQLite, which one process owns.
    pub async fn announce_ephemeral(&self, event_json: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(_) => Ok(()),
            // Boxed: the query's state is not part of every connection task's future.
            Self::Postgres(s) => Box::pin(s.announce_ephemeral(event_json)).await,
        }
    }

    /// Stored events matching any of `filters`, each distinct event once, newest first (ties by
    /// lowest id); with a cursor, only events after arrival sequence `after`, in arrival order.
    /// Collects the whole result: for bounded use (the log API); REQ streams a
    /// [`stream::ResultStream`] instead.
    pub async fn query(
        &self,
        filters: &[Filter],
        default_limit: usize,
        max_limit: usize,
        after: Option<i64>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stream = stream::ResultStream::new(filters, default_limit, max_limit, after, i64::MAX);
        let mut out = Vec::new();
        loop {
            let batch = stream.next_batch(self, 1 << 20).await?;
            if batch.is_empty() {
                return Ok(out);
            }
            out.extend(batch);
        }
    }

    /// One page of keys of a streamed query (a pooled read connection is held only meanwhile).
    /// `rows` is the page's row limit.
    pub async fn fetch_keys(&self, built: sql::Built, rows: usize) -> Result<Vec<stream::Key>, StoreError> {
        match self {
            Self::Sqlite(s) => s.fetch_keys(built, rows).await,
            Self::Postgres(s) => Ok(ops::fetch_keys(&s.pool, built).await?),
        }
    }

    /// `(seq, json)` of those of `seqs` still stored, in no particular order.
    pub async fn fetch_raw(&self, seqs: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        let built = sql::select_raw(seqs, self.dialect());
        let rows = match self {
            Self::Sqlite(s) => s.fetch_raw(built, seqs.len()).await?,
            Self::Postgres(s) => ops::fetch_events(&s.pool, built).await?,
        };
        Ok(rows.into_iter().map(|e| (e.seq, e.json)).collect())
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

    /// Whether this process signs the log's checkpoints (always, on SQLite; on PostgreSQL,
    /// exactly one of the processes sharing the database).
    pub async fn is_checkpoint_signer(&self) -> bool {
        match self {
            Self::Sqlite(_) => true,
            Self::Postgres(s) => s.is_checkpoint_signer().await,
        }
    }

    /// Number of leaves in the verifiable log.
    pub async fn log_size(&self) -> Result<u64, StoreError> {
        Ok(with_pool!(self, read pool => log::size_on(pool).await)?)
    }

    async fn log_nodes(
        &self,
        ids: &[dephy_log::NodeId],
    ) -> Result<std::collections::HashMap<dephy_log::NodeId, dephy_log::Hash>, StoreError> {
        let dialect = self.dialect();
        Ok(match self {
            Store::Sqlite(s) => log::nodes_on::<sqlx::Sqlite>(&mut *s.reader.acquire().await?, dialect, ids).await,
            Store::Postgres(s) => log::nodes_on::<sqlx::Postgres>(&mut *s.pool.acquire().await?, dialect, ids).await,
        }?)
    }

    /// Root hash of the first `size` leaves.
    pub async fn log_root(&self, size: u64) -> Result<dephy_log::Hash, LogError> {
        let current = self.log_size().await?;
        if size > current {
            return Err(LogError::BadRequest(format!("tree_size {size} is larger than the log ({current} leaves)")));
        }
        let nodes = self.log_nodes(&dephy_log::perfect_decomposition(0, size)).await?;
        dephy_log::root_from_nodes(size, |id| nodes.get(&id).copied())
            .map_err(|e| LogError::Store(StoreError::Config(format!("log is inconsistent: {e}"))))
    }

    /// Proof that event `id` is in the first `tree_size` leaves.
    pub async fn inclusion_proof(&self, id: &[u8; 32], tree_size: u64) -> Result<InclusionProof, LogError> {
        let dialect = self.dialect();
        let leaf = with_pool!(self, read pool => log::leaf_of(pool, dialect, id).await).map_err(StoreError::from)?;
        let Some((index, received_ms)) = leaf else {
            return Err(LogError::NotFound(format!("event {} is not in the log", hex::encode(id))));
        };
        if index >= tree_size {
            return Err(LogError::BadRequest(format!(
                "event {} is leaf {index}, not within tree_size {tree_size}",
                hex::encode(id)
            )));
        }
        let root = self.log_root(tree_size).await?;
        let nodes = self.log_nodes(&dephy_log::inclusion_proof_nodes(index, tree_size)).await?;
        let path = dephy_log::inclusion_proof(index, tree_size, |n| nodes.get(&n).copied())
            .map_err(|e| LogError::Store(StoreError::Config(format!("log is inconsistent: {e}"))))?;
        Ok(InclusionProof {
            event_id: hex::encode(id),
            leaf_index: index,
            received_ms,
            tree_size,
            leaf_hash: hex::encode(dephy_log::event_leaf_hash(id, received_ms as u64)),
            root_hash: hex::encode(root),
            audit_path: path.iter().map(hex::encode).collect(),
        })
    }

    /// Proof that the first `first` leaves are a prefix of the first `second`.
    pub async fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<dephy_log::Hash>, LogError> {
        let current = self.log_size().await?;
        if first == 0 || first > second || second > current {
            return Err(LogError::BadRequest(format!(
                "need 0 < first <= second <= {current} (the log size), got first={first} second={second}"
            )));
        }
        let nodes = self.log_nodes(&dephy_log::consistency_proof_nodes(first, second)).await?;
        dephy_log::consistency_proof(first, second, |n| nodes.get(&n).copied())
            .map_err(|e| LogError::Store(StoreError::Config(format!("log is inconsistent: {e}"))))
    }

    /// Log entries with leaf index in `[start, end)`.
    pub async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<log::Entry>, StoreError> {
        let dialect = self.dialect();
        Ok(with_pool!(self, read pool => log::entries(pool, dialect, start, end).await)?)
    }

    /// Events of one (author, session) chain after arrival sequence `after`, in arrival order:
    /// (seq, log leaf index, event JSON).
    pub async fn session_events(
        &self,
        author: &[u8; 32],
        session: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Option<i64>, String)>, StoreError> {
        let sql = match self.dialect() {
            sql::Dialect::Sqlite => {
                "SELECT e.seq, l.idx, e.raw FROM events e JOIN tags t ON t.seq = e.seq AND t.name = 's' AND t.value = ? \
                LEFT JOIN log_leaves l ON l.seq = e.seq WHERE e.pubkey = ? AND e.seq > ? ORDER BY e.seq LIMIT ?"
            }
            sql::Dialect::Postgres => {
                "SELECT e.seq, l.idx, e.raw FROM events e JOIN tags t ON t.seq = e.seq AND t.name = 's' AND t.value = $1 \
                LEFT JOIN log_leaves l ON l.seq = e.seq WHERE e.pubkey = $2 AND e.seq > $3 ORDER BY e.seq LIMIT $4"
            }
        };
        // Tag values are stored through `index_text` (NUL, which PostgreSQL text cannot hold)
        // and `tag_value`.
        let value = tag_value(&index_text(session), self.dialect());
        Ok(with_pool!(self, read pool => {
            let q = sqlx::query_as(sql);
            match value.clone() {
                sql::Param::Bytes(b) => q.bind(b),
                sql::Param::Text(t) => q.bind(t),
                sql::Param::Int(i) => q.bind(i),
            }
        }
            .bind(author.to_vec())
            .bind(after)
            .bind(limit as i64)
            .fetch_all(pool)
            .await)?)
    }

    /// `(created_at, id)` of at most `limit` stored, unexpired events with
    /// `from <= (created_at, id) < to` not authored by `exclude` (the relay's own key): what
    /// federation peers reconcile, one slice at a time. Which `limit` rows when more match is
    /// unspecified (the caller only learns that the slice holds more).
    pub async fn inventory(
        &self,
        from: (i64, &[u8; 32]),
        to: (i64, &[u8; 32]),
        exclude: &[u8; 32],
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        // The plain `created_at` range lets the `events_created` index bound the scan; the
        // row values cut the ends of the slice by id.
        let sql = match self.dialect() {
            sql::Dialect::Sqlite => {
                "SELECT created_at, id FROM events WHERE created_at >= ? AND created_at <= ? \
                 AND (created_at, id) >= (?, ?) AND (created_at, id) < (?, ?) AND pubkey <> ? \
                 AND (expires_at IS NULL OR expires_at > ?) LIMIT ?"
            }
            sql::Dialect::Postgres => {
                "SELECT created_at, id FROM events WHERE created_at >= $1 AND created_at <= $2 \
                 AND (created_at, id) >= ($3, $4) AND (created_at, id) < ($5, $6) AND pubkey <> $7 \
                 AND (expires_at IS NULL OR expires_at > $8) LIMIT $9"
            }
        };
        Ok(with_pool!(self, read pool => sqlx::query_as(sql)
            .bind(from.0)
            .bind(to.0)
            .bind(from.0)
            .bind(from.1.to_vec())
            .bind(to.0)
            .bind(to.1.to_vec())
            .bind(exclude.to_vec())
            .bind(now_secs())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await)?)
    }

    /// The stored JSON of those of `ids` the relay holds (unexpired), in no particular order.
    pub async fn raw_by_ids(&self, ids: &[[u8; 32]]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = match self.dialect() {
            sql::Dialect::Sqlite => format!(
                "SELECT raw FROM events WHERE id IN ({}) AND (expires_at IS NULL OR expires_at > ?)",
                vec!["?"; ids.len()].join(",")
            ),
            sql::Dialect::Postgres => format!(
                "SELECT raw FROM events WHERE id IN ({}) AND (expires_at IS NULL OR expires_at > ${})",
                (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(","),
                ids.len() + 1
            ),
        };
        let rows: Vec<(String,)> = with_pool!(self, read pool => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for id in ids {
                q = q.bind(id.to_vec());
            }
            q.bind(now_secs()).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(|(raw,)| raw).collect())
    }

    /// Records a signed checkpoint (idempotent per tree size).
    pub async fn save_checkpoint(&self, cp: &dephy_log::Checkpoint, event_json: &str) -> Result<(), StoreError> {
        let sql = match self.dialect() {
            sql::Dialect::Sqlite => {
                "INSERT INTO checkpoints (tree_size, root, timestamp, event, anchor) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING"
            }
            sql::Dialect::Postgres => {
                "INSERT INTO checkpoints (tree_size, root, timestamp, event, anchor) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING"
            }
        };
        with_pool!(self, write pool => sqlx::query(sql)
            .bind(cp.tree_size as i64)
            .bind(cp.root_hash.to_vec())
            .bind(cp.timestamp as i64)
            .bind(event_json.to_string())
            .bind(cp.anchor.clone())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Signed checkpoint events with tree size >= `from`, oldest first, at most `limit`; or
    /// the newest one when `from` is `None`.
    pub async fn checkpoints(&self, from: Option<u64>, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = match (self.dialect(), from) {
            (_, None) => {
                with_pool!(self, read pool => sqlx::query_as("SELECT event FROM checkpoints ORDER BY tree_size DESC LIMIT 1").fetch_all(pool).await)?
            }
            (sql::Dialect::Sqlite, Some(from)) => {
                with_pool!(self, read pool => sqlx::query_as("SELECT event FROM checkpoints WHERE tree_size >= ? ORDER BY tree_size LIMIT ?").bind(from.min(i64::MAX as u64) as i64).bind(limit as i64).fetch_all(pool).await)?
            }
            (sql::Dialect::Postgres, Some(from)) => {
                with_pool!(self, read pool => sqlx::query_as("SELECT event FROM checkpoints WHERE tree_size >= $1 ORDER BY tree_size LIMIT $2").bind(from.min(i64::MAX as u64) as i64).bind(limit as i64).fetch_all(pool).await)?
            }
        };
        Ok(rows.into_iter().map(|(e,)| e).collect())
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

/// A Nostr timestamp as a database integer, saturating at `i64::MAX` (`created_at`,
/// `expiration`, `since` and `until` are u64 on the wire).
pub fn ts(t: nostr::Timestamp) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

/// Distinct (single-letter name, first value) pairs of an event's tags, in tag order: what tag
/// filters match on, one tag index row each. Also used to find the rows of a deleted event.
pub fn indexed_tags<'a>(tags: impl IntoIterator<Item = &'a [String]>) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for tag in tags {
        if let [name, value, ..] = tag
            && name.len() == 1
            && name.chars().all(|c| c.is_ascii_alphabetic())
        {
            let pair = (name.clone(), index_text(value));
            if seen.insert(pair.clone()) {
                out.push(pair);
            }
        }
    }
    out
}

/// A tag value as the tag index stores it, on the write and the query side alike. On SQLite a
/// value of exactly 64 lowercase hex digits (event ids and public keys: most DePHY tag values)
/// is kept as its 32 bytes, half the size; every other value, and every value on PostgreSQL,
/// is the text itself. SQLite never finds a blob equal to a text, so the two cannot collide
/// (an uppercase hex value stays text and matches only itself, as before).
pub fn tag_value(value: &str, dialect: sql::Dialect) -> sql::Param {
    let mut bytes = [0u8; 32];
    if dialect == sql::Dialect::Sqlite
        && value.len() == 64
        && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && hex::decode_to_slice(value, &mut bytes).is_ok()
    {
        sql::Param::Bytes(bytes.to_vec())
    } else {
        sql::Param::Text(value.to_string())
    }
}

/// Text for an indexed column: NUL (which PostgreSQL text cannot hold) becomes U+FFFD, on
/// both backends and on both the write and the query side, so matching is unchanged. The
/// event JSON keeps the exact value.
pub fn index_text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
