//! Property tests of the client-message parser (`dephy_relay::protocol::parse`), the first
//! code that sees a WebSocket frame: arbitrary text and structured-but-mutated messages never
//! panic and fail only with the documented error kinds; valid messages round-trip; the
//! bounds (filters, values, subscription id) decide acceptance exactly.
//!
//! Cases per property: `PROPTEST_CASES` (default below, sized for `scripts/test`); a long run is
//! `PROPTEST_CASES=100000 cargo test --release -p dephy-relay --test prop_protocol`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use dephy_relay::protocol::{Bounds, ClientMessage, ParseError, out, parse};
use nostr::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Value, json};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

const BOUNDS: Bounds = Bounds { max_filters: 10, max_subid: 64, max_values: 20 };

/// A few real keys: `authors` must be valid curve points.
fn keys() -> &'static [Keys] {
    static KEYS: OnceLock<Vec<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| (0..4).map(|_| Keys::generate()).collect())
}

/// Strings that stress JSON escaping: control characters, NUL, quotes, backslashes, astral
/// plane characters, lone `#`.
fn weird_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\"\\\\#a-z\u{7f}\u{fffd}\u{1F600}é]{0,12}",
        Just(String::new()),
        "[a-z]{60,70}",
    ]
}

fn hex64() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}"
}

/// Keys a filter object may carry: the real fields, tag keys (valid or not) and junk.
fn filter_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["ids", "authors", "kinds", "since", "until", "limit", "after_seq", "search"])
            .prop_map(str::to_string),
        "#[a-zA-Z0-9#é]",
        weird_string(),
    ]
}

/// Any JSON value, nested a few levels, with extreme numbers and strings.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0u64, 1, 65535, 65536, i64::MAX as u64, u64::MAX]).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        weird_string().prop_map(Value::String),
        hex64().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((filter_key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A message type: the real ones most of the time.
fn message_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::sample::select(vec!["EVENT", "REQ", "COUNT", "CLOSE", "AUTH", "NEG-OPEN", "NEG-MSG", "NEG-CLOSE"])
            .prop_map(Value::from),
        1 => weird_string().prop_map(Value::from),
        1 => arb_json(),
    ]
}

/// Text-level damage applied to a serialized message.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Insert(usize, String),
    HugeNumber(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "\u{0}",
                "\n",
                "\u{1b}",
                "\\",
                "\"",
                "]",
                "}",
                "[",
                "{",
                ",",
                ":",
                "\\u0000",
                "\\ud800",
                "\u{fffd}",
                "1e400",
                "-0",
                "NaN",
                "[[[[[[[[",
                "\"#p\":[1]"
            ])
            .prop_map(str::to_string)
        )
            .prop_map(|(at, s)| Mutation::Insert(at, s)),
        any::<usize>().prop_map(Mutation::HugeNumber),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
    ]
}

fn char_boundary(s: &str, at: usize) -> usize {
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut s: String, m: &Mutation) -> String {
    match m {
        Mutation::Truncate(at) => {
            s.truncate(char_boundary(&s, *at));
        }
        Mutation::Insert(at, what) => {
            let at = char_boundary(&s, *at);
            s.insert_str(at, what);
        }
        Mutation::HugeNumber(at) => {
            let at = char_boundary(&s, *at);
            s.insert_str(at, "123456789012345678901234567890123456789");
        }
        Mutation::Duplicate(at, n) => {
            let a = char_boundary(&s, *at);
            let b = char_boundary(&s, a.saturating_add(*n).min(s.len()));
            let chunk = s[a..b].to_string();
            s.insert_str(b, &chunk);
        }
    }
    s
}

/// The documented contract of an error: its kind's NIP-01 prefix, the subscription id a
/// CLOSED needs, and a bounded echo of an unknown type. (The frame is re-read as JSON values
/// to compare; that can fail where the parser's raw split succeeds, e.g. on `1e400` or on
/// nesting deeper than serde_json's value limit, and then only the prefix is checked.)
fn check_error(text: &str, err: &ParseError) {
    let shown = err.to_string();
    let parts: Option<Vec<Value>> = serde_json::from_str(text).ok();
    let first = parts.as_ref().and_then(|p| p.first()).and_then(Value::as_str);
    match err {
        ParseError::Malformed(_) => assert!(shown.starts_with("error: could not parse message: "), "{shown}"),
        ParseError::UnknownType(t) => {
            assert!(shown.starts_with("error: unknown message type: "), "{shown}");
            assert!(t.chars().count() <= 32, "unknown type echoed unbounded: {} chars", t.chars().count());
            if let Some(first) = first {
                assert!(first.starts_with(t.as_str()), "{t:?} is not a prefix of {first:?}");
                assert!(
                    !["EVENT", "REQ", "COUNT", "CLOSE", "AUTH", "NEG-OPEN", "NEG-MSG", "NEG-CLOSE"].contains(&first),
                    "{first} is known"
                );
            }
        }
        ParseError::BadEvent { id, .. } => {
            assert!(shown.starts_with("invalid: "), "{shown}");
            assert!(id.as_ref().is_none_or(|id| id.len() <= text.len()));
            if let Some(first) = first {
                assert!(matches!(first, "EVENT" | "AUTH"), "BadEvent for {first}");
            }
        }
        ParseError::BadFilter { sub_id, .. } => {
            assert!(shown.starts_with("invalid: "), "{shown}");
            if let Some(parts) = &parts {
                assert!(matches!(parts[0].as_str(), Some("REQ" | "COUNT")), "BadFilter for {:?}", parts[0]);
                assert_eq!(Some(sub_id.as_str()), parts[1].as_str(), "CLOSED names the frame's subscription");
            }
        }
        ParseError::BadNeg { sub_id, .. } => {
            assert!(shown.starts_with("invalid: "), "{shown}");
            if let Some(parts) = &parts {
                let kind = parts[0].as_str();
                assert!(matches!(kind, Some("NEG-OPEN" | "NEG-MSG" | "NEG-CLOSE")), "BadNeg for {:?}", parts[0]);
                assert_eq!(Some(sub_id.as_str()), parts[1].as_str(), "NEG-ERR names the frame's subscription");
            }
        }
    }
}

fn parse_checked(text: &str, bounds: Bounds) -> Result<ClientMessage, ParseError> {
    let result = parse(text, bounds);
    if let Err(e) = &result {
        check_error(text, e);
    }
    result
}

/// A valid filter within `BOUNDS`, built with nostr's own types.
fn valid_filter() -> impl Strategy<Value = Filter> {
    let ids = prop::option::of(prop::collection::btree_set(hex64(), 0..3));
    let authors = prop::option::of(prop::collection::btree_set(0..keys().len(), 0..3));
    let kinds = prop::option::of(prop::collection::btree_set(any::<u16>(), 0..4));
    let tags = prop::collection::btree_map(
        prop::char::ranges(vec!['a'..='z', 'A'..='Z'].into()),
        prop::collection::btree_set(weird_string(), 0..4),
        0..3,
    );
    let times = (prop::option::of(any::<u64>()), prop::option::of(any::<u64>()), prop::option::of(0usize..100_000));
    (ids, authors, kinds, tags, times).prop_map(|(ids, authors, kinds, tags, (since, until, limit))| {
        let mut f = Filter::new();
        f.ids = ids.map(|s| s.iter().map(|h| EventId::from_hex(h).unwrap()).collect());
        f.authors = authors.map(|s| s.iter().map(|i| keys()[*i].public_key()).collect());
        f.kinds = kinds.map(|s| s.into_iter().map(Kind::from).collect());
        for (c, values) in tags {
            f.generic_tags.insert(SingleLetterTag::from_char(c).unwrap(), values);
        }
        f.since = since.map(Timestamp::from);
        f.until = until.map(Timestamp::from);
        f.limit = limit;
        f
    })
}

fn values_of(f: &Filter) -> usize {
    f.ids.as_ref().map_or(0, BTreeSet::len)
        + f.authors.as_ref().map_or(0, BTreeSet::len)
        + f.kinds.as_ref().map_or(0, BTreeSet::len)
        + f.generic_tags.values().map(BTreeSet::len).sum::<usize>()
}

fn signed_event() -> impl Strategy<Value = Event> {
    let tag = prop::collection::vec(weird_string(), 1..4);
    (0..keys().len(), any::<u16>(), weird_string(), prop::collection::vec(tag, 0..4), any::<u32>()).prop_map(
        |(k, kind, content, tags, created_at)| {
            let tags = tags.into_iter().map(|t| Tag::parse(t).unwrap());
            EventBuilder::new(Kind::from(kind), content)
                .tags(tags)
                .custom_created_at(Timestamp::from(created_at as u64))
                .sign_with_keys(&keys()[k])
                .unwrap()
        },
    )
}

proptest! {
    #![proptest_config(config(2000))]

    /// Any text at all: no panic, only documented errors.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_checked(&text, BOUNDS);
    }

    /// Arbitrary JSON arrays headed by a (mostly real) message type, then damaged as text.
    #[test]
    fn mutated_messages_fail_with_documented_errors(
        kind in message_type(),
        rest in prop::collection::vec(arb_json(), 0..5),
        mutations in prop::collection::vec(mutation(), 0..3),
    ) {
        let mut parts = vec![kind];
        parts.extend(rest);
        let mut text = Value::Array(parts).to_string();
        let _ = parse_checked(&text, BOUNDS);
        for m in &mutations {
            text = apply(text, m);
            let _ = parse_checked(&text, BOUNDS);
        }
    }

    /// REQ/COUNT with filter-shaped objects (real field names, random value types): accepted
    /// filters are exactly what nostr's own parser makes of them.
    #[test]
    fn filter_shaped_objects(
        kind in prop::sample::select(vec!["REQ", "COUNT"]),
        sub in weird_string(),
        filters in prop::collection::vec(prop::collection::vec((filter_key(), arb_json()), 0..5), 0..4),
    ) {
        let filters: Vec<Value> = filters.into_iter().map(|kv| Value::Object(kv.into_iter().collect())).collect();
        let mut parts = vec![json!(kind), json!(sub)];
        parts.extend(filters.iter().cloned());
        let text = Value::Array(parts).to_string();
        match parse_checked(&text, BOUNDS) {
            Ok(ClientMessage::Req { filters: got, .. } | ClientMessage::Count { filters: got, .. }) => {
                prop_assert_eq!(got.len(), filters.len());
                for (g, raw) in got.iter().zip(&filters) {
                    prop_assert_eq!(g, &Filter::from_json(raw.to_string()).unwrap());
                    prop_assert!(g.search.is_none(), "search is refused, never silently ignored");
                }
            }
            Ok(other) => prop_assert!(false, "{kind} parsed as {other:?}"),
            Err(_) => {}
        }
    }

    /// Valid REQ and COUNT messages round-trip, and the bounds decide acceptance exactly.
    #[test]
    fn valid_req_round_trips_within_bounds(
        is_req in any::<bool>(),
        sub in prop_oneof![weird_string(), "[a-z]{1,80}"],
        filters in prop::collection::vec(valid_filter(), 1..6),
        after_seq in prop::option::of(0i64..=i64::MAX),
        max_filters in 1usize..6,
        max_values in 1usize..12,
        max_subid in 1usize..80,
    ) {
        let bounds = Bounds { max_filters, max_subid, max_values };
        let kind = if is_req { "REQ" } else { "COUNT" };
        let mut parts = vec![json!(kind), json!(sub)];
        for f in &filters {
            let mut v: Value = serde_json::from_str(&f.as_json()).unwrap();
            if let (Some(seq), true) = (after_seq, is_req) {
                v["after_seq"] = json!(seq);
            }
            parts.push(v);
        }
        let text = Value::Array(parts).to_string();
        let sub_ok = !sub.is_empty() && sub.len() <= max_subid;
        let total: usize = filters.iter().map(values_of).sum();
        let within = sub_ok
            && filters.len() <= max_filters
            && filters.iter().all(|f| values_of(f) <= max_values)
            && (is_req || total <= 3 * max_values);
        match parse_checked(&text, bounds) {
            Ok(ClientMessage::Req { sub_id, filters: got, after_seq: got_seq }) => {
                prop_assert!(is_req && within);
                prop_assert_eq!(sub_id, sub);
                prop_assert_eq!(got, filters);
                prop_assert_eq!(got_seq, after_seq);
            }
            Ok(ClientMessage::Count { sub_id, filters: got }) => {
                prop_assert!(!is_req && within);
                prop_assert_eq!(sub_id, sub);
                prop_assert_eq!(got, filters);
            }
            Ok(other) => prop_assert!(false, "parsed as {other:?}"),
            Err(e) => {
                prop_assert!(!within, "refused within bounds: {e}");
                prop_assert!(matches!(e, ParseError::BadFilter { .. }), "{e:?}");
            }
        }
    }

    /// Signed events round-trip through EVENT and AUTH, with their size as received.
    #[test]
    fn valid_events_round_trip(event in signed_event(), pretty in any::<bool>()) {
        let json = if pretty { serde_json::to_string_pretty(&event).unwrap() } else { event.as_json() };
        match parse_checked(&format!("[\"EVENT\",{json}]"), BOUNDS) {
            Ok(ClientMessage::Event { event: got, json: stored, raw_len }) => {
                prop_assert_eq!(&*got, &event);
                prop_assert_eq!(raw_len, json.len());
                prop_assert!(got.verify().is_ok());
                // Stored compact: the client's own text, or re-serialized if it was not compact.
                prop_assert_eq!(stored, event.as_json());
            }
            other => prop_assert!(false, "{other:?}"),
        }
        match parse_checked(&format!("[\"AUTH\",{json}]"), BOUNDS) {
            Ok(ClientMessage::Auth { event: got }) => prop_assert_eq!(&*got, &event),
            other => prop_assert!(false, "{other:?}"),
        }
    }

    /// A damaged event is `BadEvent`, carrying its id whenever the id field is a string.
    #[test]
    fn damaged_events_keep_their_id(
        event in signed_event(),
        field in prop::sample::select(vec!["id", "pubkey", "created_at", "kind", "tags", "content", "sig"]),
        replacement in prop::option::of(arb_json()),
    ) {
        let mut v: Value = serde_json::from_str(&event.as_json()).unwrap();
        match replacement {
            Some(r) => v[field] = r,
            None => {
                v.as_object_mut().unwrap().remove(field);
            }
        }
        let text = json!(["EVENT", v]).to_string();
        match parse_checked(&text, BOUNDS) {
            Ok(ClientMessage::Event { event: got, .. }) => {
                // Only a change nostr's parser tolerates: the event it read equals the value sent.
                prop_assert_eq!(serde_json::to_value(&*got).unwrap(), v);
            }
            Ok(other) => prop_assert!(false, "{other:?}"),
            Err(ParseError::BadEvent { id, .. }) => {
                prop_assert_eq!(id.as_deref(), v.get("id").and_then(Value::as_str), "OK false needs the id");
            }
            Err(e) => prop_assert!(false, "a damaged event is BadEvent, got {e:?}"),
        }
    }

    /// CLOSE takes any string as a subscription id (it only looks it up).
    #[test]
    fn close_round_trips(sub in any::<String>()) {
        match parse_checked(&json!(["CLOSE", sub]).to_string(), BOUNDS) {
            Ok(ClientMessage::Close { sub_id }) => prop_assert_eq!(sub_id, sub),
            other => prop_assert!(false, "{other:?}"),
        }
    }

    /// Relay → client builders produce JSON that reads back as the strings they were given.
    #[test]
    fn out_messages_are_valid_json(sub in any::<String>(), msg in any::<String>(), n in any::<u64>(), ok in any::<bool>()) {
        let read = |s: String| serde_json::from_str::<Value>(&s).unwrap();
        prop_assert_eq!(read(out::closed(&sub, &msg)), json!(["CLOSED", sub, msg]));
        prop_assert_eq!(read(out::notice(&msg)), json!(["NOTICE", msg]));
        prop_assert_eq!(read(out::eose(&sub)), json!(["EOSE", sub]));
        prop_assert_eq!(read(out::ok(&sub, ok, &msg)), json!(["OK", sub, ok, msg]));
        prop_assert_eq!(read(out::count(&sub, n)), json!(["COUNT", sub, {"count": n}]));
        prop_assert_eq!(read(out::auth(&msg)), json!(["AUTH", msg]));
        prop_assert_eq!(read(out::event_with_seq(&sub, "{}", n as i64)), json!(["EVENT", sub, {}, {"seq": n as i64}]));
        prop_assert_eq!(read(out::neg_err(&sub, &msg)), json!(["NEG-ERR", sub, msg]));
        prop_assert_eq!(read(out::neg_msg(&sub, msg.as_bytes())), json!(["NEG-MSG", sub, hex::encode(msg.as_bytes())]));
    }

    /// Nesting depth anywhere in a frame ends in an error, not a stack overflow.
    #[test]
    fn deep_nesting_is_an_error(
        depth in 1usize..20_000,
        at in prop::sample::select(vec!["top", "event", "filter", "tag"]),
        open in prop::sample::select(vec!["[", "{\"a\":", "{\"#p\":", "{\"tags\":"]),
    ) {
        let nest = open.repeat(depth);
        let text = match at {
            "top" => nest,
            "event" => format!("[\"EVENT\",{nest}"),
            "filter" => format!("[\"REQ\",\"s\",{nest}"),
            _ => format!("[\"EVENT\",{{\"id\":\"x\",\"tags\":{nest}"),
        };
        prop_assert!(parse_checked(&text, BOUNDS).is_err());
    }
}

/// The same deep nesting, closed properly (valid JSON nesting beyond serde_json's limit).
#[test]
fn closed_deep_nesting_is_an_error() {
    for depth in [127, 128, 129, 1_000, 100_000] {
        let text = format!("[\"REQ\",\"s\",{}{}]", "[".repeat(depth), "]".repeat(depth));
        let err = parse_checked(&text, BOUNDS).unwrap_err();
        assert!(matches!(err, ParseError::Malformed(_) | ParseError::BadFilter { .. }), "{err:?}");
    }
}
