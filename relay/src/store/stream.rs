//! Streamed stored results: one keyset cursor per filter, merged in NIP-01 order, read in
//! byte-bounded batches.
//!
//! A REQ never holds its whole result. Each filter's cursor reads small pages of keys
//! (`seq, created_at, id, size`, a few dozen bytes a row) with [`sql::select_keys`], continuing
//! after the last key it saw; the cursors' heads are merged (newest first, ties by lowest id;
//! arrival order in `after_seq` cursor mode), and an event matched by several filters meets
//! itself at the heads, so it is emitted once without a set of everything sent. The JSON of
//! the next keys is then read in one batch of about `target_bytes`. Memory per running query:
//! O(filters x page) keys plus one batch; a pooled connection is held only during a query.
//!
//! Small pages (at most [`INLINE_ROWS`] keys in a round, the usual `limit 1` to a few
//! hundred) bring the JSON of small events with their keys, so most REQs are one statement
//! per filter and no JSON batch read.
//!
//! [`KeyPages`] reads only the keys of one filter's matches, page by page: the inventory a
//! NIP-77 negentropy session reconciles (`socket/negentropy.rs`).

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

use nostr::Filter;

use super::sql::{self, Resume};
use super::{Store, StoreError, StoredEvent};

/// Keys the first pages of one REQ read together, split between its filters: a typical REQ
/// (`limit` up to a few hundred) is one key query per filter. Each query sorts what its filter
/// matches (without a usable index order, all of it), so fewer, larger pages are cheaper.
const FIRST_KEYS: usize = 512;
/// Most keys one REQ's cursors read per round (about 56 bytes each: ~110 KiB), split between
/// its filters; pages double from the first up to this share.
const KEYS_PER_ROUND: usize = 2048;
/// Smallest page, however many filters share the budget.
const MIN_PAGE: usize = 16;
/// The first page of each of `filters` cursors.
const fn first_page(filters: usize) -> usize {
    let p = FIRST_KEYS / if filters == 0 { 1 } else { filters };
    if p < MIN_PAGE { MIN_PAGE } else { p }
}
/// The largest page of each of `filters` cursors.
const fn max_page(filters: usize) -> usize {
    let p = KEYS_PER_ROUND / if filters == 0 { 1 } else { filters };
    if p < MIN_PAGE { MIN_PAGE } else { p }
}
/// Most events in one batch of JSON.
const MAX_BATCH: usize = 64;
/// Most keys of one round that carry their JSON (at most [`sql::INLINE_RAW_BYTES`] each, so
/// at most 1 MiB), split between the filters.
const INLINE_ROWS: usize = 256;

/// The sort key and size of one stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub seq: i64,
    pub created_at: i64,
    pub id: [u8; 32],
    /// Size of the stored JSON, bytes.
    pub bytes: usize,
    /// The stored JSON, when the page read it along (see [`sql::select_keys`]).
    pub raw: Option<String>,
}

/// One filter's position in its result.
struct Cursor {
    filter: Filter,
    /// Events this filter may still emit (its own `limit`).
    remaining: usize,
    /// Size of the next page.
    page: usize,
    /// Largest page (this cursor's share of [`KEYS_PER_ROUND`]).
    max_page: usize,
    /// Largest page that reads the JSON along (this cursor's share of [`INLINE_ROWS`]).
    inline_rows: usize,
    buf: VecDeque<Key>,
    resume: Resume,
    /// The database has no more rows for this filter.
    exhausted: bool,
    /// Driven from one tag value without kinds: pages are first read with the kind guard.
    kindless: bool,
}

impl Cursor {
    fn head(&self) -> Option<&Key> {
        if self.remaining == 0 { None } else { self.buf.front() }
    }

    fn needs_page(&self) -> bool {
        self.remaining > 0 && self.buf.is_empty() && !self.exhausted
    }
}

/// The stored part of one REQ (or of [`Store::query`]), read on demand.
pub struct ResultStream {
    cursors: Vec<Cursor>,
    after: Option<i64>,
    upto: i64,
    now: i64,
    finished: bool,
}

impl ResultStream {
    /// Events matching any of `filters`, each filter honouring its own limit (`default_limit`
    /// when absent, at most `max_limit`), committed at or below sequence `upto`; with `after`,
    /// only events after that sequence, in arrival order.
    pub fn new(filters: &[Filter], default_limit: usize, max_limit: usize, after: Option<i64>, upto: i64) -> Self {
        let cursors = filters
            .iter()
            .map(|f| Cursor {
                filter: f.clone(),
                remaining: f.limit.unwrap_or(default_limit).min(max_limit),
                page: first_page(filters.len()),
                max_page: max_page(filters.len()),
                inline_rows: INLINE_ROWS / filters.len().max(1),
                buf: VecDeque::new(),
                resume: Resume::Start,
                exhausted: false,
                kindless: sql::has_kindless_tag_driver(f),
            })
            .collect();
        Self { cursors, after, upto, now: super::now_secs(), finished: false }
    }

    fn order(&self, a: &Key, b: &Key) -> Ordering {
        match self.after {
            Some(_) => a.seq.cmp(&b.seq),
            None => b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)),
        }
    }

    /// Takes the smallest head once every cursor that can still emit has one loaded: it is
    /// removed from every cursor whose head it is (an event two filters match sits at both
    /// heads, because every key before it in either cursor sorts before it and was emitted).
    fn pick(&mut self) -> Option<Key> {
        let best = self.cursors.iter().filter_map(Cursor::head).min_by(|a, b| self.order(a, b))?.seq;
        let mut picked: Option<Key> = None;
        for c in &mut self.cursors {
            if c.head().is_some_and(|h| h.seq == best) {
                let key = c.buf.pop_front().expect("a cursor with a head has a key");
                c.remaining -= 1;
                if picked.as_ref().is_none_or(|p| p.raw.is_none()) {
                    picked = Some(key);
                }
            }
        }
        picked
    }

    async fn fill(&mut self, store: &Store) -> Result<(), StoreError> {
        let (after, upto, now, dialect) = (self.after, self.upto, self.now, store.dialect());
        for c in self.cursors.iter_mut().filter(|c| c.needs_page()) {
            let k = c.remaining.min(c.page);
            c.page = (c.page * 2).min(c.max_page);
            let inline = k <= c.inline_rows;
            let page = |guard| sql::select_keys(&c.filter, k, now, after, upto, &c.resume, inline, guard, dialect);
            let (keys, read) = fetch_page(store, c.kindless, k, page).await?;
            c.exhausted = read < k;
            if let Some(last) = keys.last() {
                c.resume = match after {
                    Some(_) => Resume::Seq(last.seq),
                    None => Resume::After { created_at: last.created_at, id: last.id },
                };
            }
            c.buf.extend(keys);
        }
        Ok(())
    }

    /// Whether the result is known to be complete (the next batch is empty).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next key in merged order, or `None` at the end.
    pub async fn next_key(&mut self, store: &Store) -> Result<Option<Key>, StoreError> {
        if self.finished {
            return Ok(None);
        }
        self.fill(store).await?;
        let key = self.pick();
        self.finished = key.is_none();
        Ok(key)
    }

    /// The next events, about `target_bytes` of JSON (at least one event unless the result is
    /// done; empty means done). Events deleted since their key was read are skipped.
    pub async fn next_batch(&mut self, store: &Store, target_bytes: usize) -> Result<Vec<StoredEvent>, StoreError> {
        while !self.finished {
            // Keys in order, with their JSON when the page brought it.
            let (mut keys, mut bytes) = (Vec::new(), 0usize);
            while bytes < target_bytes && keys.len() < MAX_BATCH {
                match self.next_key(store).await? {
                    Some(k) => {
                        bytes += k.bytes;
                        keys.push((k.seq, k.raw));
                    }
                    None => break,
                }
            }
            if keys.is_empty() {
                break;
            }
            let missing: Vec<i64> = keys.iter().filter(|(_, raw)| raw.is_none()).map(|(seq, _)| *seq).collect();
            let mut raw: HashMap<i64, String> = match missing.is_empty() {
                true => HashMap::new(),
                false => store.fetch_raw(&missing).await?.into_iter().collect(),
            };
            let out: Vec<StoredEvent> = keys
                .into_iter()
                .filter_map(|(seq, json)| json.or_else(|| raw.remove(&seq)).map(|json| StoredEvent { seq, json }))
                .collect();
            if !out.is_empty() {
                return Ok(out);
            }
        }
        Ok(Vec::new())
    }
}

/// One page of keys built by `page(kind_guard)`: with `kindless`, the guarded page first (one
/// index range scan when the tag value has one kind), and the unguarded one if that is empty.
/// Also the number of rows the page read: a merged page (`sql::merged_keys`) reads an event
/// once per value it matches, and only the first is kept, so fewer keys than rows does not
/// mean the end.
async fn fetch_page(
    store: &Store,
    kindless: bool,
    rows: usize,
    page: impl Fn(bool) -> sql::Built,
) -> Result<(Vec<Key>, usize), StoreError> {
    let mut keys = store.fetch_keys(page(kindless), rows).await?;
    if kindless && keys.is_empty() {
        keys = store.fetch_keys(page(false), rows).await?;
    }
    let read = keys.len();
    let mut seen = std::collections::HashSet::with_capacity(read);
    keys.retain(|k| seen.insert(k.seq));
    Ok((keys, read))
}

/// The keys of one filter's matches, newest first, in keyset pages (never the events' JSON).
pub struct KeyPages {
    filter: Filter,
    remaining: usize,
    resume: Resume,
    now: i64,
}

impl KeyPages {
    /// At most `most` keys of the events matching `filter` (its own `limit` is the caller's
    /// to apply; expired events are left out as in a REQ).
    pub fn new(filter: &Filter, most: usize) -> Self {
        Self { filter: filter.clone(), remaining: most, resume: Resume::Start, now: super::now_secs() }
    }

    /// The next page of at most `page` keys; empty at the end.
    pub async fn next_page(&mut self, store: &Store, page: usize) -> Result<Vec<Key>, StoreError> {
        let k = self.remaining.min(page);
        if k == 0 {
            return Ok(Vec::new());
        }
        let (now, dialect) = (self.now, store.dialect());
        let page = |guard| sql::select_keys(&self.filter, k, now, None, i64::MAX, &self.resume, false, guard, dialect);
        let (keys, read) = fetch_page(store, sql::has_kindless_tag_driver(&self.filter), k, page).await?;
        self.remaining = if read < k { 0 } else { self.remaining - keys.len() };
        if let Some(last) = keys.last() {
            self.resume = Resume::After { created_at: last.created_at, id: last.id };
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seq: i64, created_at: i64, id: u8) -> Key {
        Key { seq, created_at, id: [id; 32], bytes: 10, raw: None }
    }

    fn stream(after: Option<i64>, lists: Vec<(usize, Vec<Key>)>) -> ResultStream {
        let cursors = lists
            .into_iter()
            .map(|(limit, keys)| Cursor {
                filter: Filter::new(),
                remaining: limit,
                page: first_page(1),
                max_page: max_page(1),
                inline_rows: INLINE_ROWS,
                buf: keys.into(),
                resume: Resume::Start,
                exhausted: true,
                kindless: false,
            })
            .collect();
        ResultStream { cursors, after, upto: i64::MAX, now: 0, finished: false }
    }

    fn drain(mut s: ResultStream) -> Vec<i64> {
        std::iter::from_fn(|| s.pick()).map(|k| k.seq).collect()
    }

    #[test]
    fn merge_is_newest_first_ties_by_id_and_emits_shared_events_once() {
        // seq 3 and 5 match both filters; seq 4 and 2 share created_at 20 (ids 1 < 9).
        let a = vec![key(5, 30, 5), key(4, 20, 9), key(3, 10, 3)];
        let b = vec![key(5, 30, 5), key(2, 20, 1), key(3, 10, 3), key(1, 5, 1)];
        assert_eq!(drain(stream(None, vec![(10, a,), (10, b)])), vec![5, 2, 4, 3, 1]);
    }

    #[test]
    fn each_filter_keeps_its_own_limit() {
        // Filter a may emit 2: 5 and 4; the shared 3 still comes through b.
        let a = vec![key(5, 30, 5), key(4, 20, 9), key(3, 10, 3)];
        let b = vec![key(3, 10, 3), key(1, 5, 1)];
        assert_eq!(drain(stream(None, vec![(2, a), (1, b)])), vec![5, 4, 3]);
        // A shared event counts against both limits.
        let a = vec![key(5, 30, 5), key(4, 20, 9)];
        let b = vec![key(5, 30, 5), key(1, 5, 1)];
        assert_eq!(drain(stream(None, vec![(1, a), (1, b)])), vec![5]);
    }

    #[test]
    fn cursor_mode_merges_in_arrival_order() {
        let a = vec![key(2, 99, 1), key(7, 1, 1), key(9, 50, 1)];
        let b = vec![key(3, 5, 2), key(7, 1, 1), key(8, 70, 2)];
        assert_eq!(drain(stream(Some(0), vec![(10, a), (10, b)])), vec![2, 3, 7, 8, 9]);
    }
}
