//! Storage of the verifiable log: leaves and perfect-subtree nodes.
//!
//! [`append`] runs inside the writer's transaction, so an event is acknowledged only when it
//! and its leaf are durable. Proofs read the O(log n) nodes they need in one query and are
//! assembled by `dephy-log`, without rehashing leaves.

use std::collections::HashMap;

use dephy_log::{Frontier, Hash, NodeId};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, Row, Type};

use super::IndexedEvent;
use super::ops::{BULK_EVENTS, bulk_chunks, bulk_param as ph, insert_into, values_rows};
use super::sql::Dialect;

/// One log entry as served by `/log/entries`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub index: u64,
    pub seq: i64,
    pub event_id: String,
    pub received_ms: i64,
}

/// The leaves joined with their event ids: a leaf stores only its event's seq, and the id is
/// in `events` while the event is stored, in `log_tombstones` once it is deleted, replaced or
/// expired (both looked up by seq). Select `COALESCE(e.id, t.event_id)` from it.
const LEAVES_WITH_IDS: &str =
    "log_leaves l LEFT JOIN events e ON e.seq = l.seq LEFT JOIN log_tombstones t ON t.seq = l.seq";

/// The 32-byte event id of leaf `index`, as read through [`LEAVES_WITH_IDS`]. A leaf whose id
/// is missing or malformed is an error: its hash cannot be computed, and must not be guessed.
fn leaf_event_id(index: i64, id: Option<Vec<u8>>) -> Result<[u8; 32], sqlx::Error> {
    let id = id.ok_or_else(|| {
        sqlx::Error::Protocol(format!(
            "log leaf {index} has no event id (its seq is in neither events nor log_tombstones)"
        ))
    })?;
    <[u8; 32]>::try_from(id.as_slice())
        .map_err(|_| sqlx::Error::Protocol(format!("log leaf {index} has an event id of {} bytes", id.len())))
}

/// Appends the stored events (in arrival order) to the log.
pub async fn append<DB>(
    conn: &mut DB::Connection,
    dialect: Dialect,
    stored: &[(i64, &IndexedEvent)],
) -> Result<(), sqlx::Error>
where
    DB: Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    if stored.is_empty() {
        return Ok(());
    }
    let size = size_on::<DB, _>(&mut *conn).await?;
    let needed = Frontier::nodes_needed(size);
    let found = nodes_on::<DB>(conn, dialect, &needed).await?;
    let nodes = new_nodes(size, &needed, &found, stored)?;
    let mut chunk_start = 0;
    for chunk in bulk_chunks(stored, BULK_EVENTS) {
        let mut q = sqlx::query::<DB>(sqlx::AssertSqlSafe(insert_leaves_sql(dialect, chunk.len())));
        for (i, (seq, ev)) in chunk.iter().enumerate() {
            q = q.bind((size + (chunk_start + i) as u64) as i64).bind(ev.received_ms).bind(*seq);
        }
        q.execute(&mut *conn).await?;
        chunk_start += chunk.len();
    }
    for chunk in bulk_chunks(&nodes, BULK_EVENTS) {
        let mut q = sqlx::query::<DB>(sqlx::AssertSqlSafe(insert_nodes_sql(dialect, chunk.len())));
        for (id, hash) in chunk {
            q = q.bind(id.level as i64).bind(id.index as i64).bind(hash.to_vec());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The log nodes to store for `stored` appended to a log of `size` leaves whose frontier nodes
/// `needed` were read into `found`. Leaves (level 0) and their parents (level 1: half of all
/// nodes) are not stored: they are recomputed from log_leaves. Databases written before keep
/// their level-1 rows, which hold the same hashes and are no longer read.
pub fn new_nodes(
    size: u64,
    needed: &[NodeId],
    found: &HashMap<NodeId, Hash>,
    stored: &[(i64, &IndexedEvent)],
) -> Result<Vec<(NodeId, Hash)>, sqlx::Error> {
    let hashes = needed
        .iter()
        .map(|id| found.get(id).copied().ok_or_else(|| sqlx::Error::Protocol(format!("log node {id} is missing"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut frontier =
        Frontier::from_nodes(size, hashes).map_err(|e| sqlx::Error::Protocol(format!("log frontier: {e}")))?;
    let mut nodes = Vec::new();
    for (_, ev) in stored {
        nodes.extend(frontier.push(dephy_log::event_leaf_hash(&ev.id, ev.received_ms as u64)));
    }
    nodes.retain(|(id, _)| id.level > 1);
    Ok(nodes)
}

/// Inserts `n` leaves, 3 parameters each: index, received ms, seq.
pub fn insert_leaves_sql(dialect: Dialect, n: usize) -> String {
    format!("{} log_leaves (idx, received_at, seq) VALUES {}", insert_into(dialect), values_rows(dialect, n, 3))
}

/// Inserts `n` nodes, 3 parameters each: level, index, hash.
pub fn insert_nodes_sql(dialect: Dialect, n: usize) -> String {
    format!("{} log_nodes (level, idx, hash) VALUES {}", insert_into(dialect), values_rows(dialect, n, 3))
}

/// The SQL that gives the log's size.
pub const SIZE_SQL: &str = "SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves";

/// What [`nodes_on`] reads for `ids`: the level-0 and level-1 nodes among them (hashed from
/// leaves), the leaf indexes those cover, and the stored nodes above.
pub struct NodeReads {
    pub low: Vec<NodeId>,
    pub leaves: Vec<u64>,
    pub inner: Vec<NodeId>,
}

impl NodeReads {
    pub fn of(ids: &[NodeId]) -> Self {
        let (low, inner): (Vec<NodeId>, Vec<NodeId>) = ids.iter().partition(|id| id.level <= 1);
        let leaves = low
            .iter()
            .flat_map(|id| if id.level == 0 { id.index..id.index + 1 } else { 2 * id.index..2 * id.index + 2 })
            .collect();
        Self { low, leaves, inner }
    }

    /// `l.idx, event id, received_at` of each of the leaves, one parameter per leaf index.
    pub fn leaves_sql(&self, dialect: Dialect) -> String {
        let list: Vec<String> = (0..self.leaves.len()).map(|i| ph(dialect, i + 1)).collect();
        format!(
            "SELECT l.idx, COALESCE(e.id, t.event_id), l.received_at FROM {LEAVES_WITH_IDS} WHERE l.idx IN ({})",
            list.join(",")
        )
    }

    /// `level, idx, hash` of the stored nodes, two parameters (level, index) per node.
    pub fn inner_sql(&self, dialect: Dialect) -> String {
        let conds: Vec<String> = (0..self.inner.len())
            .map(|i| format!("(level = {} AND idx = {})", ph(dialect, 2 * i + 1), ph(dialect, 2 * i + 2)))
            .collect();
        format!("SELECT level, idx, hash FROM log_nodes WHERE {}", conds.join(" OR "))
    }

    /// Adds the low nodes' hashes to `out`, from the leaf rows read (index, event id, received ms).
    pub fn hash_low(
        &self,
        rows: impl IntoIterator<Item = (i64, Option<Vec<u8>>, i64)>,
        out: &mut HashMap<NodeId, Hash>,
    ) -> Result<(), sqlx::Error> {
        let mut hashes = HashMap::with_capacity(self.leaves.len());
        for (index, event_id, received) in rows {
            let event_id = leaf_event_id(index, event_id)?;
            if hashes.insert(index as u64, dephy_log::event_leaf_hash(&event_id, received as u64)).is_some() {
                return Err(sqlx::Error::Protocol(format!("log leaf {index} has more than one event id")));
            }
        }
        for id in &self.low {
            let hash = if id.level == 0 {
                hashes.get(&id.index).copied()
            } else {
                hashes
                    .get(&(2 * id.index))
                    .zip(hashes.get(&(2 * id.index + 1)))
                    .map(|(l, r)| dephy_log::node_hash(l, r))
            };
            if let Some(hash) = hash {
                out.insert(*id, hash);
            }
        }
        Ok(())
    }
}

/// Number of leaves in the log.
pub async fn size_on<'e, DB, E>(exec: E) -> Result<u64, sqlx::Error>
where
    DB: Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    E: Executor<'e, Database = DB>,
    for<'t> i64: Decode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let row = sqlx::query::<DB>(SIZE_SQL).fetch_one(exec).await?;
    Ok(row.try_get::<i64, _>(0)? as u64)
}

/// The nodes among `ids` that exist (one query for leaves, from which levels 0 and 1 are
/// hashed, one for the stored nodes above).
pub async fn nodes_on<DB>(
    conn: &mut DB::Connection,
    dialect: Dialect,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, sqlx::Error>
where
    DB: Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Vec<u8>: Decode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut out = HashMap::with_capacity(ids.len());
    let reads = NodeReads::of(ids);
    if !reads.leaves.is_empty() {
        let mut q = sqlx::query::<DB>(sqlx::AssertSqlSafe(reads.leaves_sql(dialect)));
        for index in &reads.leaves {
            q = q.bind(*index as i64);
        }
        let rows = q
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        reads.hash_low(rows, &mut out)?;
    }
    if reads.inner.is_empty() {
        return Ok(out);
    }
    let mut q = sqlx::query::<DB>(sqlx::AssertSqlSafe(reads.inner_sql(dialect)));
    for id in &reads.inner {
        q = q.bind(id.level as i64).bind(id.index as i64);
    }
    for row in q.fetch_all(&mut *conn).await? {
        let (level, index, hash): (i64, i64, Vec<u8>) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if let Ok(hash) = <Hash>::try_from(hash.as_slice()) {
            out.insert(NodeId::new(level as u8, index as u64), hash);
        }
    }
    Ok(out)
}

/// The first leaf holding `event_id`: (leaf index, received ms).
pub async fn leaf_of<'e, DB, E>(
    exec: E,
    dialect: Dialect,
    event_id: &[u8; 32],
) -> Result<Option<(u64, i64)>, sqlx::Error>
where
    DB: Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    E: Executor<'e, Database = DB>,
    for<'t> i64: Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let sql = format!(
        "SELECT idx, received_at FROM log_leaves WHERE seq IN \
         (SELECT seq FROM events WHERE id = {} UNION ALL SELECT seq FROM log_tombstones WHERE event_id = {}) \
         ORDER BY idx LIMIT 1",
        ph(dialect, 1),
        ph(dialect, 2)
    );
    let row = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
        .bind(event_id.to_vec())
        .bind(event_id.to_vec())
        .fetch_optional(exec)
        .await?;
    row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get(1)?))).transpose()
}

/// Entries with leaf index in `[start, end)`.
pub async fn entries<'e, DB, E>(exec: E, dialect: Dialect, start: u64, end: u64) -> Result<Vec<Entry>, sqlx::Error>
where
    DB: Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    E: Executor<'e, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Decode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let sql = format!(
        "SELECT l.idx, l.seq, COALESCE(e.id, t.event_id), l.received_at FROM {LEAVES_WITH_IDS} \
         WHERE l.idx >= {} AND l.idx < {} ORDER BY l.idx",
        ph(dialect, 1),
        ph(dialect, 2)
    );
    let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(start as i64).bind(end as i64).fetch_all(exec).await?;
    let mut out: Vec<Entry> = Vec::with_capacity(rows.len());
    for r in &rows {
        let index: i64 = r.try_get(0)?;
        if out.last().is_some_and(|last| last.index == index as u64) {
            return Err(sqlx::Error::Protocol(format!("log leaf {index} has more than one event id")));
        }
        out.push(Entry {
            index: index as u64,
            seq: r.try_get(1)?,
            event_id: hex::encode(leaf_event_id(index, r.try_get(2)?)?),
            received_ms: r.try_get(3)?,
        });
    }
    Ok(out)
}
