//! Builds the SQL for NIP-01 filters, for both SQLite (`?N`) and PostgreSQL (`$N`).
//!
//! Plan: a filter with a single-valued tag condition (DePHY's `#p` / `#s`) is driven from the
//! `tags` index `(name, value, kind, created_at, idp)`, which yields rows already in NIP-01
//! order (newest first, ties by id), so `LIMIT 1` stops after one index probe; a multi-valued
//! tag condition drives through an `IN (SELECT seq FROM tags ...)`; other tag conditions
//! become `EXISTS`.
//! Without tags, the `events` indexes on id, (pubkey, kind, created_at) and (kind, created_at)
//! serve. Results are newest first, ties by lowest id (NIP-01).

use std::fmt::Write;

use nostr::Filter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bind parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
}

/// SQL text with its parameters in placeholder order.
#[derive(Debug, Clone)]
pub struct Built {
    pub sql: String,
    pub params: Vec<Param>,
}

struct Builder {
    dialect: Dialect,
    params: Vec<Param>,
}

impl Builder {
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        match self.dialect {
            // Parameters are bound in textual order, so SQLite can take anonymous `?` (sqlx
            // resolves numbered ones by name, quadratic in the parameter count).
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${}", self.params.len()),
        }
    }

    /// The keyset condition of a newest-first page resumed after `(created_at, id)`, on the
    /// rows of `table` (`t` or `e`): older rows, or as old with a larger id prefix.
    fn after_key(&mut self, table: &str, created_at: i64, id: &[u8; 32]) -> String {
        let p1 = self.bind(Param::Int(created_at));
        let p2 = self.bind(Param::Int(created_at));
        let p3 = self.bind(Param::Int(super::id_prefix(id)));
        format!(" AND ({table}.created_at < {p1} OR ({table}.created_at = {p2} AND {table}.idp > {p3}))")
    }

    /// `(p1,p2,...)` for `IN`; an empty list (a filter's `[]`) is `(NULL)`, which matches
    /// nothing on both backends (PostgreSQL has no `IN ()`).
    fn list(&mut self, items: impl IntoIterator<Item = Param>) -> String {
        let mut s = String::from("(");
        for (i, p) in items.into_iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&self.bind(p));
        }
        if s.len() == 1 {
            s.push_str("NULL");
        }
        s.push(')');
        s
    }
}

/// Tag letters in the order we prefer them to drive a query (most selective first in DePHY
/// traffic: a machine `p` or an event `e` has far fewer events than a session `s`).
fn tag_preference(letter: char) -> u8 {
    match letter {
        'e' => 0,
        'p' => 1,
        'a' => 2,
        'd' => 3,
        's' => 9,
        _ => 5,
    }
}

/// How rows are ordered: by the tag index (join) or by the events indexes.
#[derive(Clone, Copy)]
enum Order {
    Tag,
    Event,
}

impl Order {
    fn clause(self) -> &'static str {
        match self {
            Order::Tag => "ORDER BY t.created_at DESC, t.idp ASC",
            Order::Event => "ORDER BY e.created_at DESC, e.idp ASC",
        }
    }
}

/// The tag condition a filter's rows are driven from: a single-valued one if any (most
/// selective letter first), else a multi-valued one; none when ids pin the rows already.
fn driver(tags: &[(char, Vec<String>)], f: &Filter) -> Option<usize> {
    if f.ids.is_some() {
        return None;
    }
    tags.iter().enumerate().min_by_key(|(_, (c, v))| (v.len() > 1, tag_preference(*c))).map(|(i, _)| i)
}

/// Whether `f` is driven from one tag value without `kinds`: the tag index has `kind` before
/// `created_at`, so newest-first order needs every row of the value joined and sorted unless
/// the query pins the kind (see [`select_keys`]'s `kind_guard`).
pub fn has_kindless_tag_driver(f: &Filter) -> bool {
    let tags: Vec<(char, Vec<String>)> =
        f.generic_tags.iter().map(|(t, v)| (t.as_char(), v.iter().cloned().collect())).collect();
    f.kinds.is_none() && driver(&tags, f).is_some_and(|i| tags[i].1.len() == 1)
}

/// Most arms (tag values x kinds) of a merged key page (see [`merged_keys`]).
pub const MERGE_MAX_ARMS: usize = 32;

/// The tag condition whose values a newest-first key page merges (see [`merged_keys`]): the
/// multi-valued one that would drive the query (no single-valued or empty tag condition, which
/// drives ahead of it; e.g. a dApp's `#p` of five machines), with `kinds` given, at most
/// [`MERGE_MAX_ARMS`] arms. Beside a single-valued tag (DePHY's session `#s`) the plan stays
/// driven by that one: which is cheaper depends on how many of the single value's rows match
/// (a machine's history in other sessions made merged `#p` ranges the slower plan).
fn merge_driver(f: &Filter) -> Option<nostr::SingleLetterTag> {
    if f.ids.is_some() || f.generic_tags.values().any(|v| v.len() <= 1) {
        return None;
    }
    let kinds = f.kinds.as_ref().filter(|k| !k.is_empty())?;
    let (tag, values) = f.generic_tags.iter().min_by_key(|(t, _)| tag_preference(t.as_char()))?;
    (values.len() * kinds.len() <= MERGE_MAX_ARMS).then_some(*tag)
}

/// The `FROM ... WHERE ...` part shared by SELECT and COUNT. With `kind_guard`, a kindless
/// single-valued tag driver only matches when every row of its value has one kind, and is
/// then pinned to it (index order, so `LIMIT` stops early).
fn from_where(b: &mut Builder, f: &Filter, now: i64, kind_guard: bool) -> (String, Order) {
    let mut tags: Vec<(char, Vec<String>)> = f
        .generic_tags
        .iter()
        .map(|(t, vals)| (t.as_char(), vals.iter().map(|v| super::index_text(v)).collect()))
        .collect();
    // Drive from one tag condition unless ids pin the rows already: a single-valued one
    // (joined, so the index yields rows in order) if any, else a multi-valued one (IN subquery).
    let driver = driver(&tags, f).map(|i| tags.remove(i));
    // On the tag-driven plan, a single value of another tag bounds the scan from above: no row
    // newer than that value's newest of the kind can match. The driver's range (a machine's
    // `#p`) then starts there, one index seek, instead of walking (a probe each) every newer row
    // of the value in other sessions (`#s`). It needs a single kind (MAX on the index's order)
    // and replaces `until`, which the bound applies already: SQLite seeks on one upper bound.
    let one_kind = f.kinds.as_ref().filter(|k| k.len() == 1).and_then(|k| k.iter().next()).copied();
    let bound_by = match (&driver, one_kind) {
        (Some((_, driver_values)), Some(kind)) if driver_values.len() == 1 => {
            tags.iter().find_map(|(letter, values)| match values.as_slice() {
                [value] => Some((*letter, value.as_str(), kind)),
                _ => None,
            })
        }
        _ => None,
    };
    let kinds =
        |b: &mut Builder| f.kinds.as_ref().map(|kinds| b.list(kinds.iter().map(|k| Param::Int(k.as_u16() as i64))));
    let since = |b: &mut Builder| f.since.map(|t| b.bind(Param::Int(super::ts(t))));
    let until = |b: &mut Builder| f.until.map(|t| b.bind(Param::Int(super::ts(t))));

    let mut sql = String::from(" FROM events e");
    let mut conds: Vec<String> = Vec::new();
    let order;
    match &driver {
        Some((letter, values)) if values.len() == 1 => {
            order = Order::Tag;
            let name = b.bind(Param::Text(letter.to_string()));
            let value = b.bind(super::tag_value(&values[0], b.dialect));
            write!(sql, " JOIN tags t ON t.seq = e.seq AND t.name = {name} AND t.value = {value}").ok();
            if let Some(l) = kinds(b) {
                conds.push(format!("t.kind IN {l}"));
            } else if kind_guard {
                let mut of_value = |agg: &str| {
                    let n = b.bind(Param::Text(letter.to_string()));
                    let v = b.bind(super::tag_value(&values[0], b.dialect));
                    format!("(SELECT {agg}(g.kind) FROM tags g WHERE g.name = {n} AND g.value = {v})")
                };
                let (pin, min, max) = (of_value("MIN"), of_value("MIN"), of_value("MAX"));
                conds.push(format!("t.kind = {pin} AND {min} = {max}"));
            }
            if let Some(p) = since(b) {
                conds.push(format!("t.created_at >= {p}"));
            }
            if bound_by.is_none()
                && let Some(p) = until(b)
            {
                conds.push(format!("t.created_at <= {p}"));
            }
        }
        Some((letter, values)) => {
            order = Order::Event;
            let name = b.bind(Param::Text(letter.to_string()));
            let l = b.list(values.iter().map(|v| super::tag_value(v, b.dialect)).collect::<Vec<_>>());
            let mut sub = format!("e.seq IN (SELECT t.seq FROM tags t WHERE t.name = {name} AND t.value IN {l}");
            if let Some(l) = kinds(b) {
                write!(sub, " AND t.kind IN {l}").ok();
            }
            if let Some(p) = since(b) {
                write!(sub, " AND t.created_at >= {p}").ok();
            }
            if let Some(p) = until(b) {
                write!(sub, " AND t.created_at <= {p}").ok();
            }
            sub.push(')');
            conds.push(sub);
        }
        None => {
            order = Order::Event;
            if let Some(l) = kinds(b) {
                conds.push(format!("e.kind IN {l}"));
            }
            if let Some(p) = since(b) {
                conds.push(format!("e.created_at >= {p}"));
            }
            if let Some(p) = until(b) {
                conds.push(format!("e.created_at <= {p}"));
            }
        }
    }
    if let Some(ids) = &f.ids {
        let l = b.list(ids.iter().map(|id| Param::Bytes(id.to_bytes().to_vec())));
        conds.push(format!("e.id IN {l}"));
    }
    if let Some(authors) = &f.authors {
        let l = b.list(authors.iter().map(|pk| Param::Bytes(pk.to_bytes().to_vec())));
        conds.push(format!("e.pubkey IN {l}"));
    }
    // On the tag-driven plan the condition reads the driver's tag row (same seq, kind and
    // created_at as the event), so a row it rules out is dropped before its event is read.
    let row = match order {
        Order::Tag => "t",
        Order::Event => "e",
    };
    for (letter, values) in &tags {
        let name = b.bind(Param::Text(letter.to_string()));
        let l = b.list(values.iter().map(|v| super::tag_value(v, b.dialect)).collect::<Vec<_>>());
        // kind and created_at pin the row within the (name, value) range of the tag index.
        conds.push(format!(
            "EXISTS (SELECT 1 FROM tags x WHERE x.name = {name} AND x.value IN {l} \
             AND x.kind = {row}.kind AND x.created_at = {row}.created_at AND x.seq = {row}.seq)"
        ));
    }
    if let Some((letter, value, kind)) = bound_by {
        let name = b.bind(Param::Text(letter.to_string()));
        let value = b.bind(super::tag_value(value, b.dialect));
        let kind = b.bind(Param::Int(kind.as_u16() as i64));
        let until = until(b).map(|p| format!(" AND y.created_at <= {p}")).unwrap_or_default();
        conds.push(format!(
            "t.created_at <= (SELECT MAX(y.created_at) FROM tags y \
             WHERE y.name = {name} AND y.value = {value} AND y.kind = {kind}{until})"
        ));
    }
    let now = b.bind(Param::Int(now));
    conds.push(format!("(e.expires_at IS NULL OR e.expires_at > {now})"));
    sql.push_str(" WHERE ");
    sql.push_str(&conds.join(" AND "));
    (sql, order)
}

/// `SELECT seq, json` for one filter, newest first, at most `limit` rows; with a cursor, only
/// events after arrival sequence `after`, oldest first.
pub fn select(f: &Filter, limit: usize, now: i64, after: Option<i64>, dialect: Dialect) -> Built {
    let mut b = Builder { dialect, params: Vec::new() };
    let (fw, order) = from_where(&mut b, f, now, false);
    let (cursor, order) = match after {
        Some(seq) => (format!(" AND e.seq > {}", b.bind(Param::Int(seq))), "ORDER BY e.seq ASC"),
        None => (String::new(), order.clause()),
    };
    // A literal, not a parameter: see `select_keys`.
    let sql = format!("SELECT e.seq, e.raw{fw}{cursor} {order} LIMIT {limit}");
    Built { sql, params: b.params }
}

/// Where a page of a streamed query starts: after the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The first page.
    Start,
    /// Newest-first order: rows strictly after `(created_at, id)` (older, or as old with a
    /// larger id).
    After { created_at: i64, id: [u8; 32] },
    /// Arrival order (`after_seq` cursor mode): rows with a larger sequence.
    Seq(i64),
}

/// JSON of at most this many bytes comes with its key when a page asks for it (see
/// [`select_keys`]); larger events are read afterwards, in batches.
pub const INLINE_RAW_BYTES: usize = 4096;

/// The column of a key page that carries the event's JSON when it is at most
/// [`INLINE_RAW_BYTES`] (NULL otherwise).
fn inline_raw_column() -> String {
    format!("CASE WHEN octet_length(e.raw) <= {INLINE_RAW_BYTES} THEN e.raw END")
}

/// One page of keys (`seq, created_at, id, octet_length(raw)`) for a streamed query: rows of
/// `f` committed at or below `upto`, continuing after `resume`, at most `limit`. With
/// `inline_raw`, a fifth column holds the event's JSON when it is at most
/// [`INLINE_RAW_BYTES`] (NULL otherwise): the row is read for the filter anyway, so a small
/// result costs one statement instead of a key page and a JSON batch.
///
/// Newest-first pages use a keyset on the plan's own order, so every page is one index range
/// scan: `(created_at, idp)` of the events indexes, or of the tag index on the tag-driven plan
/// (idp, the id's first 8 bytes, sorts like id). With `after` (cursor mode) rows have
/// `seq > after`, in arrival order.
///
/// With `kind_guard` (for [`has_kindless_tag_driver`] filters), the page is read in index
/// order when the tag value's rows all have one kind (the usual case) and is empty otherwise:
/// an empty guarded page is then read again without the guard.
#[allow(clippy::too_many_arguments)]
pub fn select_keys(
    f: &Filter,
    limit: usize,
    now: i64,
    after: Option<i64>,
    upto: i64,
    resume: &Resume,
    inline_raw: bool,
    kind_guard: bool,
    dialect: Dialect,
) -> Built {
    // SQLite only: PostgreSQL planned the merged arms slower than one `IN` over all values
    // (five machines' latest at 200k events: p50 14 ms against 7-8.6 ms).
    if after.is_none()
        && dialect == Dialect::Sqlite
        && let Some(tag) = merge_driver(f)
    {
        return merged_keys(f, tag, limit, now, upto, resume, inline_raw, dialect);
    }
    let mut b = Builder { dialect, params: Vec::new() };
    let (fw, order) = from_where(&mut b, f, now, kind_guard);
    let mut conds = format!(" AND e.seq <= {}", b.bind(Param::Int(upto)));
    let order_by = match after {
        Some(seq) => {
            let from = match resume {
                Resume::Seq(last) => seq.max(*last),
                _ => seq,
            };
            write!(conds, " AND e.seq > {}", b.bind(Param::Int(from))).ok();
            "ORDER BY e.seq ASC"
        }
        None => {
            if let Resume::After { created_at, id } = resume {
                let t = match order {
                    Order::Tag => "t",
                    Order::Event => "e",
                };
                conds.push_str(&b.after_key(t, *created_at, id));
            }
            order.clause()
        }
    };
    // The limit is a literal, not a parameter: SQLite (3.46 and later) reads a bound LIMIT
    // while planning and then re-prepares the statement at every execution, which cost a
    // simple REQ more CPU than running it. Each distinct limit is one more cached statement.
    let raw = match inline_raw {
        true => format!(", {}", inline_raw_column()),
        false => String::new(),
    };
    let sql = format!(
        "SELECT e.seq, e.created_at, e.id, CAST(octet_length(e.raw) AS BIGINT){raw}{fw}{conds} {order_by} LIMIT {limit}"
    );
    Built { sql, params: b.params }
}

/// A newest-first key page of a filter whose driving tag has several values (see
/// [`merge_driver`]), as one arm per (value, kind): each arm is the single-valued tag plan, an
/// index range already in NIP-01 order, and `UNION ALL ... ORDER BY ... LIMIT` merges the arms
/// as they stream (SQLite co-routines), so a page reads about `limit` rows in all instead of
/// every candidate of every value (an `IN` list, read and sorted whole). Columns as in
/// [`select_keys`] (the fifth always present, NULL without `inline_raw`), then `idp`. An event
/// with several of the values comes once per value (adjacent: same `created_at` and `idp`);
/// the reader keeps the first (`stream::fetch_page`), and the next page starts after it.
#[allow(clippy::too_many_arguments)]
fn merged_keys(
    f: &Filter,
    tag: nostr::SingleLetterTag,
    limit: usize,
    now: i64,
    upto: i64,
    resume: &Resume,
    inline_raw: bool,
    dialect: Dialect,
) -> Built {
    let mut b = Builder { dialect, params: Vec::new() };
    let raw = match inline_raw {
        true => inline_raw_column(),
        false => "CAST(NULL AS TEXT)".to_string(),
    };
    let values = f.generic_tags.get(&tag).cloned().unwrap_or_default();
    let kinds = f.kinds.clone().unwrap_or_default();
    let mut arms = Vec::with_capacity(values.len() * kinds.len());
    for value in &values {
        for kind in &kinds {
            let mut arm = f.clone();
            arm.generic_tags.insert(tag, std::iter::once(value.clone()).collect());
            arm.kinds = Some(std::iter::once(*kind).collect());
            let (fw, _) = from_where(&mut b, &arm, now, false);
            let mut sql = format!(
                "SELECT e.seq AS seq, t.created_at AS created_at, e.id AS id, \
                 CAST(octet_length(e.raw) AS BIGINT) AS bytes, {raw} AS raw, t.idp AS idp{fw} AND e.seq <= {}",
                b.bind(Param::Int(upto))
            );
            if let Resume::After { created_at, id } = resume {
                sql.push_str(&b.after_key("t", *created_at, id));
            }
            arms.push(sql);
        }
    }
    let sql = format!("{} ORDER BY created_at DESC, idp ASC LIMIT {limit}", arms.join(" UNION ALL "));
    Built { sql, params: b.params }
}

/// `SELECT seq, raw` of the given sequences (any order; rows deleted meanwhile are absent).
///
/// The `IN` list is padded (repeating the last sequence) to a power of two, so a handful of
/// statement texts serve every batch and each read connection keeps them prepared.
pub fn select_raw(seqs: &[i64], dialect: Dialect) -> Built {
    let mut b = Builder { dialect, params: Vec::new() };
    let pad = seqs.last().copied().into_iter().cycle().take(seqs.len().next_power_of_two() - seqs.len());
    let l = b.list(seqs.iter().copied().chain(pad).map(Param::Int));
    Built { sql: format!("SELECT seq, raw FROM events WHERE seq IN {l}"), params: b.params }
}

/// `SELECT COUNT(*)` of distinct events matching any filter.
pub fn count(filters: &[Filter], now: i64, dialect: Dialect) -> Built {
    let mut b = Builder { dialect, params: Vec::new() };
    let parts: Vec<String> = filters
        .iter()
        .map(|f| {
            let (fw, _) = from_where(&mut b, f, now, false);
            format!("SELECT e.seq{fw}")
        })
        .collect();
    let sql = format!("SELECT COUNT(*) FROM ({}) AS matched", parts.join(" UNION "));
    Built { sql, params: b.params }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::JsonUtil;

    #[test]
    fn dephy_state_recovery_drives_from_p_tag() {
        let f = Filter::from_json(
            r##"{"kinds":[1573],"#s":["sess"],"#p":["aa"],"authors":["79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"],"until":100,"limit":1}"##,
        )
        .unwrap();
        let built = select(&f, 1, 50, None, Dialect::Postgres);
        assert!(built.sql.contains("JOIN tags t ON t.seq = e.seq AND t.name = $1 AND t.value = $2"), "{}", built.sql);
        assert_eq!(built.params[0], Param::Text("p".into()));
        assert!(built.sql.contains("ORDER BY t.created_at DESC, t.idp ASC"));
        assert!(built.sql.contains("x.name = "), "s tag becomes EXISTS: {}", built.sql);
        // The session's newest row of the kind up to `until` bounds the machine's range, in
        // place of `until` itself: one upper bound for the index seek.
        let bound = "t.created_at <= (SELECT MAX(y.created_at) FROM tags y \
                     WHERE y.name = $7 AND y.value = $8 AND y.kind = $9 AND y.created_at <= $10)";
        assert!(built.sql.contains(bound), "{}", built.sql);
        assert_eq!(built.sql.matches("t.created_at <=").count(), 1, "{}", built.sql);
        assert_eq!(
            built.params[6..10],
            [Param::Text("s".into()), Param::Text("sess".into()), Param::Int(1573), Param::Int(100)]
        );
        assert_eq!(built.params.len(), 11);
    }

    /// The upper bound from a second tag needs its single value and a single kind (one index
    /// seek); a tag with several values, several kinds or none, or a plan not driven by a tag
    /// row, go without it.
    #[test]
    fn a_second_single_valued_tag_bounds_the_driver_only_with_one_kind() {
        let bounded = |json: &str| {
            let f = Filter::from_json(json).unwrap();
            select(&f, 1, 50, None, Dialect::Sqlite).sql.contains("SELECT MAX(y.created_at)")
        };
        assert!(bounded(r##"{"kinds":[1573],"#s":["sess"],"#p":["aa"]}"##));
        assert!(!bounded(r##"{"kinds":[1573],"#s":["sess","other"],"#p":["aa"]}"##));
        assert!(!bounded(r##"{"kinds":[1573,1],"#s":["sess"],"#p":["aa"]}"##));
        assert!(!bounded(r##"{"#s":["sess"],"#p":["aa"]}"##));
        assert!(!bounded(r##"{"kinds":[1573],"#p":["aa"]}"##));
        assert!(!bounded(r##"{"kinds":[1573],"#s":["sess"],"#p":["aa","bb"]}"##), "driven by #s; #p has two values");
    }

    #[test]
    fn keyset_on_tag_plan_uses_created_at_and_idp() {
        let f = Filter::from_json(r##"{"#p":["aa"],"kinds":[1573]}"##).unwrap();
        let id = [0x80u8; 32];
        let built =
            select_keys(&f, 4, 50, None, 99, &Resume::After { created_at: 7, id }, false, false, Dialect::Postgres);
        assert!(built.sql.contains("AND e.seq <= $"), "{}", built.sql);
        assert!(built.sql.contains("(t.created_at < $6 OR (t.created_at = $7 AND t.idp > $8))"), "{}", built.sql);
        assert!(built.sql.ends_with("ORDER BY t.created_at DESC, t.idp ASC LIMIT 4"), "{}", built.sql);
        assert_eq!(built.params[4], Param::Int(99));
        assert_eq!(built.params[5], Param::Int(7));
        assert_eq!(built.params[7], Param::Int(super::super::id_prefix(&id)));
        assert_eq!(built.params.len(), 8, "the limit is not a parameter");
    }

    #[test]
    fn keyset_on_events_plan_uses_created_at_and_idp() {
        let f = Filter::new().kind(nostr::Kind::from(1u16));
        let id = [3u8; 32];
        let built =
            select_keys(&f, 2, 50, None, 10, &Resume::After { created_at: 5, id }, false, false, Dialect::Sqlite);
        assert!(built.sql.contains("(e.created_at < ? OR (e.created_at = ? AND e.idp > ?))"), "{}", built.sql);
        assert!(built.sql.ends_with("ORDER BY e.created_at DESC, e.idp ASC LIMIT 2"), "{}", built.sql);
        assert_eq!(built.params[5], Param::Int(super::super::id_prefix(&id)));
        // First page: no keyset bound, only the visibility bound.
        let first = select_keys(&f, 2, 50, None, 10, &Resume::Start, true, false, Dialect::Sqlite);
        assert!(!first.sql.contains("created_at <"), "{}", first.sql);
        assert!(first.sql.contains("AND e.seq <= ?"), "{}", first.sql);
        assert!(first.sql.contains(", CASE WHEN octet_length(e.raw) <= 4096 THEN e.raw END FROM"), "{}", first.sql);
    }

    #[test]
    fn keyset_in_cursor_mode_is_on_seq() {
        let f = Filter::new().kind(nostr::Kind::from(1u16));
        let first = select_keys(&f, 8, 50, Some(3), 100, &Resume::Start, false, false, Dialect::Postgres);
        assert!(first.sql.contains("AND e.seq <= $3 AND e.seq > $4 ORDER BY e.seq ASC LIMIT 8"), "{}", first.sql);
        assert_eq!(first.params[3], Param::Int(3));
        let next = select_keys(&f, 8, 50, Some(3), 100, &Resume::Seq(40), false, false, Dialect::Postgres);
        assert_eq!(next.params[3], Param::Int(40));
    }

    #[test]
    fn kindless_tag_driver_is_pinned_to_the_values_only_kind() {
        let f = Filter::from_json(r##"{"#p":["aa"],"limit":1}"##).unwrap();
        assert!(has_kindless_tag_driver(&f));
        let built = select_keys(&f, 1, 50, None, 9, &Resume::Start, true, true, Dialect::Postgres);
        assert!(
            built.sql.contains(
                "t.kind = (SELECT MIN(g.kind) FROM tags g WHERE g.name = $3 AND g.value = $4) AND (SELECT MIN(g.kind) FROM tags g WHERE g.name = $5 AND g.value = $6) = (SELECT MAX(g.kind) FROM tags g WHERE g.name = $7 AND g.value = $8)"
            ),
            "{}",
            built.sql
        );
        assert_eq!(built.params[7], Param::Text("aa".into()));
        // Kinds given, several values, or no tag: nothing to guard.
        for json in [r##"{"#p":["aa"],"kinds":[1]}"##, r##"{"#p":["aa","bb"]}"##, r##"{"kinds":[1]}"##] {
            assert!(!has_kindless_tag_driver(&Filter::from_json(json).unwrap()), "{json}");
        }
    }

    #[test]
    fn several_values_of_the_driving_tag_merge_one_arm_per_value_and_kind() {
        let f = Filter::from_json(
            r##"{"kinds":[1573,1574],"#s":["s1","s2"],"#p":["aa","bb","cc"],"since":10,"limit":100}"##,
        )
        .unwrap();
        let id = [1u8; 32];
        let built =
            select_keys(&f, 100, 50, None, 99, &Resume::After { created_at: 7, id }, true, false, Dialect::Sqlite);
        assert_eq!(built.sql.matches("SELECT e.seq AS seq").count(), 6, "3 values x 2 kinds: {}", built.sql);
        assert_eq!(built.sql.matches(" UNION ALL ").count(), 5);
        assert_eq!(built.sql.matches("JOIN tags t ON t.seq = e.seq AND t.name = ? AND t.value = ?").count(), 6);
        assert_eq!(built.sql.matches("EXISTS (SELECT 1 FROM tags x").count(), 6, "#s checked on each arm's row");
        assert_eq!(built.sql.matches("(t.created_at < ? OR (t.created_at = ? AND t.idp > ?))").count(), 6);
        assert!(built.sql.contains("THEN e.raw END AS raw, t.idp AS idp FROM"), "{}", built.sql);
        assert!(built.sql.ends_with(" ORDER BY created_at DESC, idp ASC LIMIT 100"), "{}", built.sql);
        // Per arm: p, value, kind, s, 2 values, since, now, upto, keyset (3).
        assert_eq!(built.params.len(), 6 * 12);
        assert_eq!(built.params[1], Param::Text("aa".into()));
        assert_eq!(built.params[2], Param::Int(1573));
        assert_eq!(built.params[14], Param::Int(1574));
        let plain = select_keys(&f, 100, 50, None, 99, &Resume::Start, false, false, Dialect::Sqlite);
        assert!(plain.sql.contains("CAST(NULL AS TEXT) AS raw"), "{}", plain.sql);
        assert_eq!(plain.params.len(), 6 * 9, "{}", plain.sql);
        let postgres = select_keys(&f, 100, 50, None, 99, &Resume::Start, false, false, Dialect::Postgres);
        assert!(!postgres.sql.contains("UNION ALL"), "PostgreSQL keeps one IN over the values: {}", postgres.sql);

        // Not merged: beside a single-valued or empty tag condition, without kinds, in cursor
        // mode, with too many arms.
        let many: Vec<String> = (0..MERGE_MAX_ARMS + 1).map(|i| format!("\"v{i}\"")).collect();
        let many = format!(r##"{{"kinds":[1],"#p":[{}]}}"##, many.join(","));
        for json in [
            r##"{"kinds":[1573],"#s":["sess"],"#p":["x","y"]}"##,
            r##"{"kinds":[1],"#e":[],"#p":["x","y"]}"##,
            r##"{"#p":["x","y"]}"##,
            &many,
        ] {
            let f = Filter::from_json(json).unwrap();
            let built = select_keys(&f, 10, 50, None, 99, &Resume::Start, true, false, Dialect::Sqlite);
            assert!(!built.sql.contains("UNION ALL"), "{json}: {}", built.sql);
        }
        let cursor = select_keys(&f, 10, 50, Some(3), 99, &Resume::Start, true, false, Dialect::Sqlite);
        assert!(!cursor.sql.contains("UNION ALL"), "{}", cursor.sql);
    }

    #[test]
    fn raw_batches_pad_to_a_power_of_two() {
        let built = select_raw(&[4, 9, 7], Dialect::Postgres);
        assert!(built.sql.ends_with("WHERE seq IN ($1,$2,$3,$4)"), "{}", built.sql);
        assert_eq!(built.params[3], Param::Int(7));
        assert_eq!(select_raw(&[1, 2, 3, 4], Dialect::Sqlite).params.len(), 4);
    }

    #[test]
    fn count_unions_filters() {
        let f1 = Filter::new().kind(nostr::Kind::from(1u16));
        let f2 = Filter::new().kind(nostr::Kind::from(2u16));
        let built = count(&[f1, f2], 0, Dialect::Sqlite);
        assert!(built.sql.contains(" UNION "));
        assert!(built.sql.starts_with("SELECT COUNT(*) FROM (SELECT e.seq FROM events e WHERE e.kind IN (?)"));
    }
}
