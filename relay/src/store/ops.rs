//! Database operations written once, generic over the sqlx driver (SQLite or PostgreSQL).
//!
//! The SQL is written with `$N` placeholders; [`WriteSql::new`] turns them into SQLite's `?N`.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, Row, Type};

use super::sql::{Built, Dialect, Param};
use super::{IndexedEvent, StoredEvent, WriteOutcome};

/// The driver capabilities the relay needs; implemented by `Sqlite` and `Postgres`.
pub trait Driver: Database
where
    for<'c> &'c mut Self::Connection: Executor<'c, Database = Self>,
{
}

impl Driver for sqlx::Sqlite {}
impl Driver for sqlx::Postgres {}

/// Binds built parameters onto a query.
pub fn bind<'a, DB>(
    mut q: sqlx::query::Query<'a, DB, DB::Arguments>,
    params: Vec<Param>,
) -> sqlx::query::Query<'a, DB, DB::Arguments>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    for p in params {
        q = bind_one(q, p);
    }
    q
}

/// Binds one built parameter onto a query.
pub fn bind_one<'a, DB>(
    q: sqlx::query::Query<'a, DB, DB::Arguments>,
    param: Param,
) -> sqlx::query::Query<'a, DB, DB::Arguments>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    match param {
        Param::Int(v) => q.bind(v),
        Param::Bytes(v) => q.bind(v),
        Param::Text(v) => q.bind(v),
    }
}

/// The statements of the write path, in one dialect.
pub struct WriteSql {
    blocked: String,
    existing_replaceable: String,
    delete_event_seq: String,
    delete_tag: String,
    insert_event: String,
    exists_id: String,
    chain_head: String,
    delete_own_by_id: String,
    delete_own_by_coord: String,
    delete_all_before: String,
    record_deletion: String,
    purge_expired: String,
    dialect: Dialect,
}

impl WriteSql {
    pub fn new(dialect: Dialect) -> Self {
        let d = |s: &str| match dialect {
            Dialect::Postgres => s.to_string(),
            Dialect::Sqlite => s.replace('$', "?"),
        };
        Self {
            blocked: d(
                "SELECT 1 FROM deletions WHERE pubkey = $1 AND (target = $2 OR (target IN ($3, 'vanish') AND created_at >= $4)) LIMIT 1",
            ),
            existing_replaceable: d(
                "SELECT seq, kind, created_at, id, raw FROM events WHERE pubkey = $1 AND kind = $2 AND dtag = $3",
            ),
            delete_event_seq: d("DELETE FROM events WHERE seq = $1"),
            delete_tag: d(
                "DELETE FROM tags WHERE name = $1 AND value = $2 AND kind = $3 AND created_at = $4 AND idp = $5 AND seq = $6",
            ),
            insert_event: d("INSERT INTO events (id, pubkey, kind, created_at, expires_at, dtag, raw, idp) \
                SELECT $1, $2, $3, $4, $5, $6, $7, $10 \
                WHERE NOT EXISTS (SELECT 1 FROM deletions WHERE pubkey = $2 AND (target = $8 OR (target IN ($9, 'vanish') AND created_at >= $4))) \
                ON CONFLICT (id) DO NOTHING RETURNING seq"),
            exists_id: d("SELECT 1 FROM events WHERE id = $1"),
            chain_head: d("SELECT head FROM chain_heads WHERE pubkey = $1 AND session = $2"),
            delete_own_by_id: d(
                "DELETE FROM events WHERE id = $1 AND pubkey = $2 AND kind <> 5 RETURNING seq, kind, created_at, id, raw",
            ),
            delete_all_before: d(
                "DELETE FROM events WHERE pubkey = $1 AND created_at <= $2 AND id <> $3 RETURNING seq, kind, created_at, id, raw",
            ),
            delete_own_by_coord: d(
                "DELETE FROM events WHERE pubkey = $1 AND kind = $2 AND dtag = $3 AND created_at <= $4 RETURNING seq, kind, created_at, id, raw",
            ),
            record_deletion: d("INSERT INTO deletions (target, pubkey, created_at) VALUES ($1, $2, $3) \
                ON CONFLICT (target, pubkey) DO UPDATE SET created_at = \
                CASE WHEN excluded.created_at > deletions.created_at THEN excluded.created_at ELSE deletions.created_at END"),
            purge_expired: d("DELETE FROM events WHERE expires_at IS NOT NULL AND expires_at <= $1 \
                RETURNING seq, kind, created_at, id, raw"),
            dialect,
        }
    }

    fn insert_tags(&self, n: usize) -> String {
        let p = |i: usize| match self.dialect {
            Dialect::Postgres => format!("${i}"),
            Dialect::Sqlite => format!("?{i}"),
        };
        let mut sql = format!("{} tags (seq, kind, created_at, idp, name, value) VALUES ", insert_into(self.dialect));
        for i in 0..n {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("({}, {}, {}, {}, {}, {})", p(1), p(2), p(3), p(4), p(5 + 2 * i), p(6 + 2 * i)));
        }
        sql
    }
}

/// `INSERT` for the multi-row statements of the write path. On SQLite `OR FAIL`: a failing
/// row fails the statement without undoing the rows before it, so SQLite keeps no statement
/// journal (a copy of every page the statement modifies, taken before the change); nothing is
/// lost, as any error rolls back the writer's whole transaction. PostgreSQL has no such cost.
pub fn insert_into(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "INSERT OR FAIL INTO",
        Dialect::Postgres => "INSERT INTO",
    }
}

/// Placeholder `i` (1-based) of a multi-row statement. Each parameter is used once, in order:
/// SQLite gets anonymous `?`, because sqlx looks up every numbered `?NNN` by name, which is
/// quadratic in the number of parameters.
pub fn bulk_param(dialect: Dialect, i: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${i}"),
        Dialect::Sqlite => "?".to_string(),
    }
}

/// `VALUES` rows of `width` consecutive placeholders each, `rows` of them.
pub fn values_rows(dialect: Dialect, rows: usize, width: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 3);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for k in 1..=width {
            if k > 1 {
                sql.push(',');
            }
            sql.push_str(&bulk_param(dialect, i * width + k));
        }
        sql.push(')');
    }
    sql
}

/// Inserts `n` plain events, 8 parameters each: id, pubkey, kind, created_at, expires_at, raw,
/// id in hex (to match deletion targets), id prefix. Events deleted beforehand by their
/// author and ids already stored are skipped; returns `seq, id` of each row inserted.
pub fn insert_events_sql(dialect: Dialect, n: usize) -> String {
    format!(
        "{} events (id, pubkey, kind, created_at, expires_at, dtag, raw, idp) \
         SELECT column1, column2, column3, column4, column5, NULL, column6, column8 FROM (VALUES {}) AS v \
         WHERE NOT EXISTS (SELECT 1 FROM deletions d WHERE d.pubkey = v.column2 \
         AND (d.target = v.column7 OR (d.target = 'vanish' AND d.created_at >= v.column4))) \
         ON CONFLICT (id) DO NOTHING RETURNING seq, id",
        insert_into(dialect),
        values_rows(dialect, n, 8)
    )
}

/// Inserts `n` tag rows, 6 parameters each: seq, kind, created_at, id prefix, name, value.
pub fn insert_tag_rows_sql(dialect: Dialect, n: usize) -> String {
    format!(
        "{} tags (seq, kind, created_at, idp, name, value) VALUES {}",
        insert_into(dialect),
        values_rows(dialect, n, 6)
    )
}

/// Sets `n` chain heads, 3 parameters each: pubkey, session, head id.
pub fn insert_chain_heads_sql(dialect: Dialect, n: usize) -> String {
    format!(
        "{} chain_heads (pubkey, session, head) VALUES {} ON CONFLICT (pubkey, session) DO UPDATE SET head = excluded.head",
        insert_into(dialect),
        values_rows(dialect, n, 3)
    )
}

/// `((author, session), head event id)`: one row of `chain_heads`.
pub type ChainHead<'a> = ((&'a [u8], &'a str), &'a [u8]);

/// The session chain heads a run of stored events leaves: each (author, session) pair's last
/// event, as batches are in arrival order.
pub fn chain_heads<'a>(stored: &[(i64, &'a IndexedEvent)]) -> Vec<ChainHead<'a>> {
    let mut heads: std::collections::HashMap<(&[u8], &str), &[u8]> = std::collections::HashMap::new();
    for (_, ev) in stored {
        if let Some(session) = &ev.session {
            heads.insert((&ev.pubkey[..], session.as_str()), &ev.id[..]);
        }
    }
    heads.into_iter().collect()
}

/// NIP-62 request to vanish.
pub const VANISH_KIND: i64 = 62;

/// Events per multi-row INSERT (8 parameters each, well under both backends' limits); also
/// the most log leaves, log nodes and chain heads per INSERT. A power of two (see
/// [`bulk_chunks`]).
pub const BULK_EVENTS: usize = 512;
/// Tag rows per multi-row INSERT (6 parameters each). A power of two (see [`bulk_chunks`]).
pub const BULK_TAGS: usize = 1024;

/// Splits the rows of a multi-row INSERT into statements of `max` rows (a power of two), then
/// the rest into decreasing powers of two (100 rows: 64, 32, 4). Each row count is its own
/// statement text, prepared once and then found in the connection's statement cache: with
/// any count up to `max`, batches of varying size (a follower's, tens of events each) were
/// parsed and planned anew for almost every statement (3% of a follower's CPU).
pub fn bulk_chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = match rest.len() >= max {
            true => max,
            false => 1 << rest.len().ilog2(),
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Whether an event can take the bulk path: a regular kind that deletes nothing. Replaceable,
/// addressable and deletion events need per-event reads and go through [`write_one`].
pub fn is_plain(ev: &IndexedEvent) -> bool {
    ev.dtag.is_none()
        && ev.deletes_ids.is_empty()
        && ev.deletes_coords.is_empty()
        && ev.kind != 5
        && ev.kind != VANISH_KIND
        && ev.prev.is_none()
}

/// Writes a run of plain events with one INSERT per chunk (and one per chunk of tags),
/// inside the caller's transaction. Outcomes are in input order.
pub async fn write_plain<DB>(
    conn: &mut DB::Connection,
    dialect: Dialect,
    events: &[&IndexedEvent],
) -> Result<Vec<WriteOutcome>, sqlx::Error>
where
    DB: Driver,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut outcomes = Vec::with_capacity(events.len());
    let mut tag_rows: Vec<(i64, &IndexedEvent)> = Vec::new();
    for chunk in bulk_chunks(events, BULK_EVENTS) {
        // The same id twice in one chunk: only the first can be stored.
        let mut first_seen = std::collections::HashSet::new();
        let unique: Vec<&IndexedEvent> = chunk.iter().copied().filter(|e| first_seen.insert(e.id)).collect();
        let sql = insert_events_sql(dialect, unique.len());
        let mut q = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
        for ev in &unique {
            q = q
                .bind(ev.id.to_vec())
                .bind(ev.pubkey.to_vec())
                .bind(ev.kind)
                .bind(ev.created_at)
                .bind(ev.expires_at)
                .bind(ev.json.clone())
                .bind(ev.id_hex())
                .bind(ev.id_prefix);
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut seqs = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let id: Vec<u8> = row.try_get(1)?;
            seqs.insert(id, row.try_get::<i64, _>(0)?);
        }
        let mut answered = std::collections::HashSet::new();
        for ev in chunk {
            let outcome = match seqs.get(&ev.id[..]) {
                Some(&seq) if answered.insert(ev.id) => {
                    tag_rows.push((seq, ev));
                    WriteOutcome::Stored { seq }
                }
                Some(_) => WriteOutcome::Duplicate,
                None => {
                    // Not inserted: already stored, or deleted by its author (rare).
                    let dup = sqlx::query::<DB>(sqlx::AssertSqlSafe(if dialect == Dialect::Sqlite {
                        "SELECT 1 FROM events WHERE id = ?1"
                    } else {
                        "SELECT 1 FROM events WHERE id = $1"
                    }))
                    .bind(ev.id.to_vec())
                    .fetch_optional(&mut *conn)
                    .await?;
                    if dup.is_some() { WriteOutcome::Duplicate } else { WriteOutcome::Deleted }
                }
            };
            outcomes.push(outcome);
        }
    }
    let tags: Vec<(i64, &IndexedEvent, &str, &str)> = tag_rows
        .iter()
        .flat_map(|(seq, ev)| ev.tags.iter().map(move |(n, v)| (*seq, *ev, n.as_str(), v.as_str())))
        .collect();
    for chunk in bulk_chunks(&tags, BULK_TAGS) {
        let mut q = sqlx::query::<DB>(sqlx::AssertSqlSafe(insert_tag_rows_sql(dialect, chunk.len())));
        for (seq, ev, name, value) in chunk {
            q = q.bind(*seq).bind(ev.kind).bind(ev.created_at).bind(ev.id_prefix).bind(name.to_string());
            q = bind_one(q, super::tag_value(value, dialect));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(outcomes)
}

/// Writes a batch inside the caller's transaction: runs of plain events in bulk, the others
/// one by one, in arrival order.
pub async fn write_all<DB>(
    conn: &mut DB::Connection,
    sql: &WriteSql,
    batch: &[IndexedEvent],
) -> Result<Vec<WriteOutcome>, sqlx::Error>
where
    DB: Driver,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> String: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut out: Vec<WriteOutcome> = Vec::with_capacity(batch.len());
    let mut start = 0;
    // Runs of plain events go in bulk; the others one by one. Chain heads advance after each
    // step, so a `prev` may name an event earlier in the same batch.
    while start < batch.len() {
        let end = if is_plain(&batch[start]) {
            start + batch[start..].iter().take_while(|e| is_plain(e)).count()
        } else {
            start + 1
        };
        let step: Vec<&IndexedEvent> = batch[start..end].iter().collect();
        let outcomes = if end - start == 1 && !is_plain(step[0]) {
            vec![write_one::<DB>(conn, sql, step[0]).await?]
        } else {
            write_plain::<DB>(conn, sql.dialect, &step).await?
        };
        advance_chains::<DB>(conn, sql.dialect, &stored_of(&outcomes, &step)).await?;
        out.extend(outcomes);
        start = end;
    }
    let all: Vec<&IndexedEvent> = batch.iter().collect();
    super::log::append::<DB>(conn, sql.dialect, &stored_of(&out, &all)).await?;
    Ok(out)
}

/// The stored events of a step with their sequence numbers, in arrival order.
fn stored_of<'a>(outcomes: &[WriteOutcome], events: &[&'a IndexedEvent]) -> Vec<(i64, &'a IndexedEvent)> {
    outcomes
        .iter()
        .zip(events)
        .filter_map(|(o, ev)| match o {
            WriteOutcome::Stored { seq } => Some((*seq, *ev)),
            _ => None,
        })
        .collect()
}

/// Makes each stored event with an `s` tag the head of its (author, session) chain; within a
/// batch the last one wins, as batches are in arrival order.
async fn advance_chains<DB>(
    conn: &mut DB::Connection,
    dialect: Dialect,
    stored: &[(i64, &IndexedEvent)],
) -> Result<(), sqlx::Error>
where
    DB: Driver,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    let heads = chain_heads(stored);
    for chunk in bulk_chunks(&heads, BULK_EVENTS) {
        let sql = insert_chain_heads_sql(dialect, chunk.len());
        let mut q = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
        for ((pubkey, session), head) in chunk {
            q = q.bind(pubkey.to_vec()).bind(session.to_string()).bind(head.to_vec());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes one event inside the caller's transaction.
pub async fn write_one<DB>(
    conn: &mut DB::Connection,
    sql: &WriteSql,
    ev: &IndexedEvent,
) -> Result<WriteOutcome, sqlx::Error>
where
    DB: Driver,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> String: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let id_hex = ev.id_hex();
    let coord = ev.coordinate.clone().unwrap_or_default();

    // Replaceable and addressable: keep only the newest version (ties: lowest id).
    if let Some(dtag) = &ev.dtag {
        let blocked = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.blocked.as_str()))
            .bind(ev.pubkey.to_vec())
            .bind(id_hex.clone())
            .bind(coord.clone())
            .bind(ev.created_at)
            .fetch_optional(&mut *conn)
            .await?;
        if blocked.is_some() {
            return Ok(WriteOutcome::Deleted);
        }
        let existing = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.existing_replaceable.as_str()))
            .bind(ev.pubkey.to_vec())
            .bind(ev.kind)
            .bind(dtag.clone())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = existing {
            let old = Gone::of::<DB>(&row)?;
            if old.id.as_slice() == ev.id {
                return Ok(WriteOutcome::Duplicate);
            }
            if (old.created_at, std::cmp::Reverse(old.id.as_slice())) >= (ev.created_at, std::cmp::Reverse(&ev.id[..]))
            {
                return Ok(WriteOutcome::Superseded);
            }
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.delete_event_seq.as_str()))
                .bind(old.seq)
                .execute(&mut *conn)
                .await?;
            delete_tags::<DB>(conn, sql, &[old]).await?;
        }
    }

    // Session chains: `prev` must name the chain's current head.
    if let (Some(prev), Some(session)) = (&ev.prev, &ev.session) {
        let head = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.chain_head.as_str()))
            .bind(ev.pubkey.to_vec())
            .bind(session.clone())
            .fetch_optional(&mut *conn)
            .await?;
        let head: Option<Vec<u8>> = head.map(|r| r.try_get(0)).transpose()?;
        if head.as_deref() != Some(&prev[..]) {
            return Ok(WriteOutcome::Fork);
        }
    }

    let inserted = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.insert_event.as_str()))
        .bind(ev.id.to_vec())
        .bind(ev.pubkey.to_vec())
        .bind(ev.kind)
        .bind(ev.created_at)
        .bind(ev.expires_at)
        .bind(ev.dtag.clone())
        .bind(ev.json.clone())
        .bind(id_hex)
        .bind(coord)
        .bind(ev.id_prefix)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = inserted else {
        let dup = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.exists_id.as_str()))
            .bind(ev.id.to_vec())
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(if dup.is_some() { WriteOutcome::Duplicate } else { WriteOutcome::Deleted });
    };
    let seq: i64 = row.try_get(0)?;

    for chunk in ev.tags.chunks(1000) {
        let text = sql.insert_tags(chunk.len());
        let mut q =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(text)).bind(seq).bind(ev.kind).bind(ev.created_at).bind(ev.id_prefix);
        for (name, value) in chunk {
            q = bind_one(q.bind(name.clone()), super::tag_value(value, sql.dialect));
        }
        q.execute(&mut *conn).await?;
    }

    // NIP-09: a deletion request removes the author's own referenced events, and is
    // remembered so that the deleted events cannot be stored again.
    for id in &ev.deletes_ids {
        let gone = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.delete_own_by_id.as_str()))
            .bind(id.to_vec())
            .bind(ev.pubkey.to_vec())
            .fetch_all(&mut *conn)
            .await?;
        let gone = gone.iter().map(Gone::of::<DB>).collect::<Result<Vec<_>, _>>()?;
        delete_tags::<DB>(conn, sql, &gone).await?;
        record_deletion::<DB>(conn, sql, hex::encode(id), ev).await?;
    }
    // NIP-62: everything the author published up to the request goes, and stays gone; the
    // log keeps its leaves.
    if ev.kind == VANISH_KIND {
        let gone = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.delete_all_before.as_str()))
            .bind(ev.pubkey.to_vec())
            .bind(ev.created_at)
            .bind(ev.id.to_vec())
            .fetch_all(&mut *conn)
            .await?;
        let gone = gone.iter().map(Gone::of::<DB>).collect::<Result<Vec<_>, _>>()?;
        delete_tags::<DB>(conn, sql, &gone).await?;
        record_deletion::<DB>(conn, sql, "vanish".to_string(), ev).await?;
    }
    for (kind, coordinate) in &ev.deletes_coords {
        let d = coordinate.splitn(3, ':').nth(2).unwrap_or_default().to_string();
        let gone = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.delete_own_by_coord.as_str()))
            .bind(ev.pubkey.to_vec())
            .bind(*kind)
            .bind(d)
            .bind(ev.created_at)
            .fetch_all(&mut *conn)
            .await?;
        let gone = gone.iter().map(Gone::of::<DB>).collect::<Result<Vec<_>, _>>()?;
        delete_tags::<DB>(conn, sql, &gone).await?;
        record_deletion::<DB>(conn, sql, coordinate.clone(), ev).await?;
    }
    Ok(WriteOutcome::Stored { seq })
}

/// An event just deleted (or about to be): what finds its tag index rows.
struct Gone {
    seq: i64,
    kind: i64,
    created_at: i64,
    id: Vec<u8>,
    raw: String,
}

impl Gone {
    /// From a `(seq, kind, created_at, id, raw)` row.
    fn of<DB>(row: &DB::Row) -> Result<Self, sqlx::Error>
    where
        DB: Database,
        for<'t> i64: Decode<'t, DB> + Type<DB>,
        for<'t> Vec<u8>: Decode<'t, DB> + Type<DB>,
        for<'t> String: Decode<'t, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        Ok(Self {
            seq: row.try_get(0)?,
            kind: row.try_get(1)?,
            created_at: row.try_get(2)?,
            id: row.try_get(3)?,
            raw: row.try_get(4)?,
        })
    }
}

/// The tags of a stored event's JSON, as [`IndexedEvent`] indexed them.
#[derive(serde::Deserialize)]
struct RawTags {
    tags: Vec<Vec<String>>,
}

/// Deletes the tag index rows of deleted events. The index has no seq lookup: each row is
/// found by its full key, rebuilt from the event's stored JSON.
async fn delete_tags<DB>(conn: &mut DB::Connection, sql: &WriteSql, gone: &[Gone]) -> Result<(), sqlx::Error>
where
    DB: Driver,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    for ev in gone {
        let tags: RawTags = serde_json::from_str(&ev.raw)
            .map_err(|e| sqlx::Error::Protocol(format!("stored event {} has unreadable JSON: {e}", ev.seq)))?;
        let id: [u8; 32] =
            ev.id.as_slice().try_into().map_err(|_| {
                sqlx::Error::Protocol(format!("stored event {} has an id that is not 32 bytes", ev.seq))
            })?;
        let idp = super::id_prefix(&id);
        for (name, value) in super::indexed_tags(tags.tags.iter().map(Vec::as_slice)) {
            let q = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.delete_tag.as_str())).bind(name);
            bind_one(q, super::tag_value(&value, sql.dialect))
                .bind(ev.kind)
                .bind(ev.created_at)
                .bind(idp)
                .bind(ev.seq)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Deletes the events expired at `now` and their tag rows; returns how many events went.
pub async fn purge_expired<DB>(conn: &mut DB::Connection, sql: &WriteSql, now: i64) -> Result<u64, sqlx::Error>
where
    DB: Driver,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> String: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let gone =
        sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.purge_expired.as_str())).bind(now).fetch_all(&mut *conn).await?;
    let gone = gone.iter().map(Gone::of::<DB>).collect::<Result<Vec<_>, _>>()?;
    delete_tags::<DB>(conn, sql, &gone).await?;
    Ok(gone.len() as u64)
}

async fn record_deletion<DB>(
    conn: &mut DB::Connection,
    sql: &WriteSql,
    target: String,
    ev: &IndexedEvent,
) -> Result<(), sqlx::Error>
where
    DB: Driver,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.record_deletion.as_str()))
        .bind(target)
        .bind(ev.pubkey.to_vec())
        .bind(ev.created_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Runs a built SELECT of `(seq, raw)` rows.
pub async fn fetch_events<'e, DB, E>(exec: E, built: Built) -> Result<Vec<StoredEvent>, sqlx::Error>
where
    DB: Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    E: Executor<'e, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let rows = bind(sqlx::query::<DB>(sqlx::AssertSqlSafe(built.sql)), built.params).fetch_all(exec).await?;
    rows.iter().map(|r| Ok(StoredEvent { seq: r.try_get(0)?, json: r.try_get(1)? })).collect()
}

/// Runs a built `SELECT COUNT(*)`.
pub async fn fetch_count<'e, DB, E>(exec: E, built: Built) -> Result<u64, sqlx::Error>
where
    DB: Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    E: Executor<'e, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let row = bind(sqlx::query::<DB>(sqlx::AssertSqlSafe(built.sql)), built.params).fetch_one(exec).await?;
    Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
}

/// Runs a built key page ([`super::sql::select_keys`]): `(seq, created_at, id, bytes)` rows,
/// with the JSON as a fifth column when the page asked for it.
pub async fn fetch_keys<'e, DB, E>(exec: E, built: Built) -> Result<Vec<super::stream::Key>, sqlx::Error>
where
    DB: Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    E: Executor<'e, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> String: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let rows = bind(sqlx::query::<DB>(sqlx::AssertSqlSafe(built.sql)), built.params).fetch_all(exec).await?;
    rows.iter()
        .map(|r| {
            let id: Vec<u8> = r.try_get(2)?;
            let id: [u8; 32] = id.try_into().map_err(|_| sqlx::Error::Decode("stored id is not 32 bytes".into()))?;
            let bytes: i64 = r.try_get(3)?;
            let raw: Option<String> = if r.len() > 4 { r.try_get(4)? } else { None };
            Ok(super::stream::Key {
                seq: r.try_get(0)?,
                created_at: r.try_get(1)?,
                id,
                bytes: bytes.max(0) as usize,
                raw,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row once, in order, in statements of at most `max` rows whose counts are powers
    /// of two: whatever the batch sizes, a connection sees at most log2(max) + 1 texts of
    /// each bulk statement, which its statement cache keeps.
    #[test]
    fn bulk_statements_come_in_power_of_two_row_counts() {
        let mut counts = std::collections::BTreeSet::new();
        for len in 0..=2 * BULK_EVENTS + 3 {
            let rows: Vec<usize> = (0..len).collect();
            let chunks: Vec<&[usize]> = bulk_chunks(&rows, BULK_EVENTS).collect();
            assert_eq!(chunks.concat(), rows, "batch of {len}");
            for chunk in &chunks {
                assert!(chunk.len().is_power_of_two() && chunk.len() <= BULK_EVENTS, "batch of {len}: {}", chunk.len());
                counts.insert(chunk.len());
            }
            assert!(chunks.len() <= 2 + BULK_EVENTS.ilog2() as usize, "batch of {len}: {} statements", chunks.len());
        }
        assert_eq!(counts.len(), BULK_EVENTS.ilog2() as usize + 1);
        assert_eq!(bulk_chunks(&[0; 100], BULK_EVENTS).map(<[_]>::len).collect::<Vec<_>>(), [64, 32, 4]);
    }
}
