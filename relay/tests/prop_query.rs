//! Property test of filter-to-SQL (`store::sql` through `Store::query` and `Store::count`):
//! on a real SQLite file and a real PostgreSQL database, the rows a random filter set returns
//! equal a naive in-memory evaluation of the same filters over the same events (nostr's
//! `Filter::match_event`, NIP-40 expiry, NIP-01 order: newest first, ties by lowest id), in
//! plain mode and in `after_seq` cursor mode (arrival order).
//!
//! One database per backend per run; every case writes fresh events into it and the model
//! evaluates over everything written so far, so cases (and shrinking) never interfere.
//! Cases: `PROPTEST_CASES` (default below); long run:
//! `PROPTEST_CASES=5000 cargo test --release -p dephy-relay --test prop_query`.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Backend, TestDb};
use dephy_relay::config::StoreConfig;
use dephy_relay::store::{IndexedEvent, Store, WriteOutcome, now_secs};
use nostr::prelude::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

const DEFAULT_CASES: u32 = 150;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    ProptestConfig { cases, failure_persistence: None, max_shrink_iters: 256, ..ProptestConfig::default() }
}

/// Small pools, so filters and events meet often and `created_at` ties are common.
const KINDS: [u16; 4] = [1, 7, 1573, 4000];
const LETTERS: [char; 5] = ['p', 's', 'e', 't', 'T'];
const VALUES: [&str; 6] = ["a", "b", "c", "", "x\0y", "é"];
const BASE_TIME: u64 = 1_700_000_000;
/// Authors 0..3 write events; author 3 never does (a filter may still name it).
const AUTHORS: usize = 4;

#[derive(Debug, Clone)]
enum Expiry {
    None,
    Past,
    Future,
}

#[derive(Debug, Clone)]
struct EventSpec {
    author: usize,
    kind: u16,
    created_at: u64,
    tags: Vec<(char, &'static str)>,
    expiry: Expiry,
}

#[derive(Debug, Clone)]
struct FilterSpec {
    /// Known ids (picked among all written events) and whether to add one never written.
    ids: Option<(Vec<Index>, bool)>,
    authors: Option<BTreeSet<usize>>,
    kinds: Option<BTreeSet<u16>>,
    tags: Vec<(char, BTreeSet<&'static str>)>,
    since: Option<u64>,
    until: Option<u64>,
    limit: Option<usize>,
}

#[derive(Debug, Clone)]
struct Case {
    events: Vec<EventSpec>,
    filters: Vec<FilterSpec>,
    /// `Some(None)`: cursor from 0; `Some(Some(i))`: after the seq of a written event.
    cursor: Option<Option<Index>>,
    default_limit: usize,
    max_limit: usize,
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let tag = (prop::sample::select(LETTERS.to_vec()), prop::sample::select(VALUES.to_vec()));
    let expiry = prop_oneof![6 => Just(Expiry::None), 1 => Just(Expiry::Past), 1 => Just(Expiry::Future)];
    (0..AUTHORS - 1, prop::sample::select(KINDS.to_vec()), 0u64..6, prop::collection::vec(tag, 0..4), expiry).prop_map(
        |(author, kind, dt, tags, expiry)| EventSpec { author, kind, created_at: BASE_TIME + dt, tags, expiry },
    )
}

fn time_bound() -> impl Strategy<Value = u64> {
    prop_oneof![8 => BASE_TIME - 1..BASE_TIME + 7, 1 => Just(0u64), 1 => Just(u64::MAX), 1 => Just(i64::MAX as u64 + 1)]
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    let ids = prop::option::weighted(0.2, (prop::collection::vec(any::<Index>(), 0..3), any::<bool>()));
    let authors = prop::option::weighted(0.3, prop::collection::btree_set(0..AUTHORS, 0..3));
    let kinds = prop::option::weighted(0.4, prop::collection::btree_set(prop::sample::select(KINDS.to_vec()), 0..3));
    let tags = prop::collection::vec(
        (
            prop::sample::select(LETTERS.to_vec()),
            prop::collection::btree_set(prop::sample::select(VALUES.to_vec()), 0..3),
        ),
        0..3,
    );
    let times = (prop::option::weighted(0.3, time_bound()), prop::option::weighted(0.3, time_bound()));
    let limit = prop::option::weighted(0.6, 0usize..8);
    (ids, authors, kinds, tags, times, limit).prop_map(|(ids, authors, kinds, tags, (since, until), limit)| {
        FilterSpec { ids, authors, kinds, tags, since, until, limit }
    })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(event_spec(), 0..10),
        prop::collection::vec(filter_spec(), 1..4),
        prop::option::weighted(0.3, prop::option::of(any::<Index>())),
        1usize..10,
        1usize..10,
    )
        .prop_map(|(events, filters, cursor, default_limit, max_limit)| Case {
            events,
            filters,
            cursor,
            default_limit,
            max_limit,
        })
}

/// A stored event as the model knows it.
#[derive(Clone)]
struct Written {
    event: Event,
    seq: i64,
    expires_at: Option<u64>,
}

struct World {
    store: Store,
    keys: Vec<Keys>,
    written: Vec<Written>,
    unique: AtomicU64,
    now: u64,
}

impl World {
    fn build_event(&self, spec: &EventSpec) -> (Event, Option<u64>) {
        let mut tags: Vec<Tag> =
            spec.tags.iter().map(|(c, v)| Tag::parse([c.to_string(), v.to_string()]).expect("tag")).collect();
        let expires_at = match spec.expiry {
            Expiry::None => None,
            Expiry::Past => Some(self.now - 100_000),
            Expiry::Future => Some(self.now + 100_000),
        };
        if let Some(t) = expires_at {
            tags.push(Tag::expiration(Timestamp::from(t)));
        }
        // Unique content: every case writes new events (new ids).
        let n = self.unique.fetch_add(1, Ordering::Relaxed);
        let event = EventBuilder::new(Kind::from(spec.kind), format!("e{n}"))
            .tags(tags)
            .custom_created_at(Timestamp::from(spec.created_at))
            .sign_with_keys(&self.keys[spec.author])
            .expect("sign");
        (event, expires_at)
    }

    fn build_filter(&self, spec: &FilterSpec) -> Filter {
        let mut f = Filter::new();
        if let Some((picks, unknown)) = &spec.ids {
            let mut ids: BTreeSet<EventId> = BTreeSet::new();
            if !self.written.is_empty() {
                ids.extend(picks.iter().map(|i| i.get(&self.written).event.id));
            }
            if *unknown {
                ids.insert(EventId::from_byte_array([0x42; 32]));
            }
            f.ids = Some(ids);
        }
        f.authors = spec.authors.as_ref().map(|a| a.iter().map(|i| self.keys[*i].public_key()).collect());
        f.kinds = spec.kinds.as_ref().map(|k| k.iter().map(|k| Kind::from(*k)).collect());
        for (c, values) in &spec.tags {
            let tag = SingleLetterTag::from_char(*c).expect("letter");
            f.generic_tags.entry(tag).or_default().extend(values.iter().map(|v| v.to_string()));
        }
        f.since = spec.since.map(Timestamp::from);
        f.until = spec.until.map(Timestamp::from);
        f.limit = spec.limit;
        f
    }
}

/// The model's match: nostr's `match_event`, except that an empty list matches nothing (the
/// relay's rule; nostr's own treats `[]` as no condition), and unexpired (NIP-40) only.
fn matches(f: &Filter, w: &Written, now: u64) -> bool {
    let empty_list = f.ids.as_ref().is_some_and(BTreeSet::is_empty)
        || f.authors.as_ref().is_some_and(BTreeSet::is_empty)
        || f.kinds.as_ref().is_some_and(BTreeSet::is_empty)
        || f.generic_tags.values().any(BTreeSet::is_empty);
    !empty_list && w.expires_at.is_none_or(|t| t > now) && f.match_event(&w.event, MatchEventOptions::new())
}

/// NIP-01 order: newest first, ties by lowest id.
fn nip01_key(e: &Event) -> (std::cmp::Reverse<Timestamp>, EventId) {
    (std::cmp::Reverse(e.created_at), e.id)
}

fn id_of(json: &str) -> Result<EventId, TestCaseError> {
    Event::from_json(json).map(|e| e.id).map_err(|e| TestCaseError::fail(format!("stored JSON unreadable: {e}")))
}

async fn run_case(world: &mut World, case: Case) -> Result<(), TestCaseError> {
    // Write this case's events in one batch.
    let built: Vec<(Event, Option<u64>)> = case.events.iter().map(|s| world.build_event(s)).collect();
    let batch: Vec<IndexedEvent> =
        built.iter().map(|(e, _)| IndexedEvent::new(Arc::new(e.clone()), (world.now * 1000) as i64)).collect();
    let outcomes = world.store.write_batch(&batch).await.map_err(|e| TestCaseError::fail(format!("write: {e}")))?;
    for ((event, expires_at), outcome) in built.into_iter().zip(outcomes) {
        let WriteOutcome::Stored { seq } = outcome else {
            return Err(TestCaseError::fail(format!("a fresh regular event was not stored: {outcome:?}")));
        };
        world.written.push(Written { event, seq, expires_at });
    }

    let filters: Vec<Filter> = case.filters.iter().map(|s| world.build_filter(s)).collect();
    let after = case.cursor.map(|c| match c {
        Some(i) if !world.written.is_empty() => i.get(&world.written).seq,
        _ => 0,
    });
    let got = world
        .store
        .query(&filters, case.default_limit, case.max_limit, after)
        .await
        .map_err(|e| TestCaseError::fail(format!("query {filters:?}: {e}")))?;
    let got_ids: Vec<EventId> = got.iter().map(|s| id_of(&s.json)).collect::<Result<_, _>>()?;
    let seq_of: HashMap<EventId, i64> = world.written.iter().map(|w| (w.event.id, w.seq)).collect();
    for (row, id) in got.iter().zip(&got_ids) {
        prop_assert_eq!(Some(&row.seq), seq_of.get(id), "a row's seq is its event's arrival seq");
    }
    let unique: HashSet<EventId> = got_ids.iter().copied().collect();
    prop_assert_eq!(unique.len(), got_ids.len(), "duplicates in {:?}", got_ids);

    // Each filter's expected rows, in the order that mode promises.
    let per_filter: Vec<Vec<EventId>> = filters
        .iter()
        .map(|f| {
            let limit = f.limit.unwrap_or(case.default_limit).min(case.max_limit);
            let mut rows: Vec<&Written> =
                world.written.iter().filter(|w| matches(f, w, world.now) && after.is_none_or(|a| w.seq > a)).collect();
            match after {
                Some(_) => rows.sort_by_key(|w| w.seq),
                None => rows.sort_by_key(|w| nip01_key(&w.event)),
            }
            rows.into_iter().take(limit).map(|w| w.event.id).collect()
        })
        .collect();
    let expected: HashSet<EventId> = per_filter.iter().flatten().copied().collect();
    prop_assert_eq!(&unique, &expected, "result set != union of each filter's top-limit; filters {:?}", filters);

    if after.is_some() {
        // Cursor mode: everything in arrival order.
        let seqs: Vec<i64> = got.iter().map(|s| s.seq).collect();
        prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "cursor rows not in arrival order: {:?}", seqs);
    } else if filters.len() == 1 {
        prop_assert_eq!(&got_ids, &per_filter[0], "single filter: exact NIP-01 order");
    } else {
        // Several filters: each filter's rows not already contributed by an earlier filter
        // keep NIP-01 order (holds for per-filter append and for a global merge alike).
        let position: HashMap<EventId, usize> = got_ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut earlier: HashSet<EventId> = HashSet::new();
        for rows in &per_filter {
            let new: Vec<usize> = rows.iter().filter(|id| !earlier.contains(id)).map(|id| position[id]).collect();
            prop_assert!(new.windows(2).all(|w| w[0] < w[1]), "a filter's rows out of NIP-01 order: {:?}", got_ids);
            earlier.extend(rows.iter().copied());
        }
    }

    // COUNT: distinct matches of any filter, no limits.
    let count = world.store.count(&filters).await.map_err(|e| TestCaseError::fail(format!("count: {e}")))?;
    let expected_count = world.written.iter().filter(|w| filters.iter().any(|f| matches(f, w, world.now))).count();
    prop_assert_eq!(count, expected_count as u64, "COUNT of {:?}", filters);
    Ok(())
}

fn check_backend(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let db = rt.block_on(TestDb::new(backend));
    let store = rt
        .block_on(Store::open(&db.url, &StoreConfig::default()))
        .unwrap_or_else(|e| panic!("open {backend:?} store: {e}"));
    let world = std::cell::RefCell::new(World {
        store,
        keys: (0..AUTHORS).map(|_| Keys::generate()).collect(),
        written: Vec::new(),
        unique: AtomicU64::new(0),
        now: now_secs() as u64,
    });
    let mut runner = TestRunner::new(config());
    let result = runner.run(&case(), |case| rt.block_on(run_case(&mut world.borrow_mut(), case)));
    rt.block_on(world.borrow().store.close());
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
}

#[test]
fn sqlite_query_equals_naive_evaluation() {
    check_backend(Backend::Sqlite);
}

#[test]
fn postgres_query_equals_naive_evaluation() {
    check_backend(Backend::Postgres);
}
