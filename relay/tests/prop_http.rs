//! Property test of the HTTP query parameters (`logapi`): a real relay (SQLite and PostgreSQL)
//! with a few stored events gets random and malicious query strings on `/log/checkpoint(s)`,
//! `/log/proof/inclusion`, `/log/proof/consistency`, `/log/entries`, `/events` and
//! `/sessions/{author}/{session}/events`. Never a 5xx, never a hang (each request is read
//! to its end under the harness's 5 s bound), every 4xx says what is wrong, every 200 is
//! JSON within the page size.
//!
//! Cases: `PROPTEST_CASES` (default below); long run:
//! `PROPTEST_CASES=20000 cargo test --release -p dephy-relay --test prop_http`.

mod common;

use common::*;
use nostr::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::Value;

const DEFAULT_CASES: u32 = 300;
/// Most entries, checkpoints or events one response carries (`logapi::MAX_PAGE`).
const MAX_PAGE: usize = 1000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    ProptestConfig { cases, failure_persistence: None, max_shrink_iters: 128, ..ProptestConfig::default() }
}

/// What the relay holds, for parameters that hit real rows.
#[derive(Clone)]
struct Known {
    ids: Vec<String>,
    author: String,
    session: String,
}

/// A parameter value before encoding: numbers at every edge, ids, junk.
#[derive(Debug, Clone)]
enum Val {
    Num(String),
    KnownId(prop::sample::Index),
    Text(String),
    /// Inserted verbatim (broken percent-encoding, `+`, an empty value).
    Raw(&'static str),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        4 => prop_oneof![
            (0u64..20).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            prop::sample::select(vec![
                "0", "-1", "1000", "1001", "9223372036854775807", "9223372036854775808", "18446744073709551615",
                "18446744073709551616", "99999999999999999999999", "1e3", "1.0", "0x10", " 1", "+1", "-0", "00001",
            ])
            .prop_map(str::to_string),
        ]
        .prop_map(Val::Num),
        2 => any::<prop::sample::Index>().prop_map(Val::KnownId),
        2 => prop_oneof![any::<String>(), "[0-9a-fA-F]{62,66}", "[\\x00-\\x1f%&=#?/]{0,6}"].prop_map(Val::Text),
        1 => prop::sample::select(vec!["%", "%zz", "%0", "%FF", "%C0%80", "%00", "+", "", "%2F..%2F", "&", "=="]).prop_map(Val::Raw),
    ]
}

/// Percent-encodes everything outside RFC 3986's unreserved set.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn render(v: &Val, known: &Known) -> String {
    match v {
        Val::Num(n) => encode(n),
        Val::KnownId(i) => i.get(&known.ids).clone(),
        Val::Text(t) => encode(t),
        Val::Raw(r) => r.to_string(),
    }
}

#[derive(Debug, Clone)]
struct Request {
    endpoint: usize,
    params: Vec<(String, Val)>,
    author: Val,
    session: Val,
}

const ENDPOINTS: [&str; 7] = [
    "/log/checkpoint",
    "/log/checkpoints",
    "/log/proof/inclusion",
    "/log/proof/consistency",
    "/log/entries",
    "/events",
    "/sessions",
];

fn request() -> impl Strategy<Value = Request> {
    let name = prop_oneof![
        8 => prop::sample::select(vec![
            "from", "limit", "id", "tree_size", "first", "second", "start", "end", "after",
        ])
        .prop_map(str::to_string),
        1 => "[a-z_%]{0,6}",
    ];
    let author = prop_oneof![Just(Val::Raw("AUTHOR")), val()];
    // NUL, invalid UTF-8, overlong encodings, slashes and dots in the session segment.
    let nasty = prop::sample::select(vec!["%00", "a%00b", "%FF", "%C0%80", "%2F", "..", "%20", "%E2%80%AE"]);
    let session = prop_oneof![1 => Just(Val::Raw("SESSION")), 1 => nasty.prop_map(Val::Raw), 2 => val()];
    // The sessions endpoint (two path segments and two parameters) gets a third of the cases.
    let endpoint = prop_oneof![2 => 0..ENDPOINTS.len() - 1, 1 => Just(ENDPOINTS.len() - 1)];
    (endpoint, prop::collection::vec((name, val()), 0..5), author, session)
        .prop_map(|(endpoint, params, author, session)| Request { endpoint, params, author, session })
}

fn path_of(r: &Request, known: &Known) -> String {
    let mut path = match ENDPOINTS[r.endpoint] {
        "/sessions" => {
            let seg = |v: &Val, real: &str| match v {
                Val::Raw("AUTHOR" | "SESSION") => encode(real),
                // An empty segment would not route at all; the handler is what is under test.
                other => Some(render(other, known)).filter(|s| !s.is_empty()).unwrap_or_else(|| "x".into()),
            };
            format!("/sessions/{}/{}/events", seg(&r.author, &known.author), seg(&r.session, &known.session))
        }
        e => e.to_string(),
    };
    if !r.params.is_empty() {
        path.push('?');
        let pairs: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={}", render(v, known))).collect();
        path.push_str(&pairs.join("&"));
    }
    path
}

/// The value of a parameter given exactly once as a plain integer.
fn single_u64(r: &Request, name: &str) -> Option<u64> {
    let mut values = r.params.iter().filter(|(k, _)| k == name);
    match (values.next(), values.next()) {
        (Some((_, Val::Num(n))), None) => n.parse().ok(),
        _ => None,
    }
}

async fn check_request(port: u16, r: &Request, path: &str) -> Result<(), TestCaseError> {
    let resp = http_get(port, path, &[]).await.map_err(|e| TestCaseError::fail(format!("GET {path}: {e}")))?;
    let body = resp.text();
    prop_assert!(resp.status < 500, "GET {} -> {} {}", path, resp.status, body);
    match resp.status {
        200 => {
            let v: Value = serde_json::from_str(&body).map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
            for list in ["entries", "checkpoints", "events"] {
                if let Some(a) = v.get(list).and_then(Value::as_array) {
                    prop_assert!(a.len() <= MAX_PAGE, "GET {} returned {} {}", path, a.len(), list);
                }
            }
            // A range parameter is honoured whatever its size (no wrap into negative SQL).
            if let (Some(from), Some(list)) = (single_u64(r, "from"), v.get("checkpoints").and_then(Value::as_array)) {
                for cp in list {
                    let size = cp["tree_size"].as_u64().unwrap_or(0);
                    prop_assert!(size >= from, "GET {} returned a checkpoint of tree size {}", path, size);
                }
            }
        }
        400 | 404 => {
            // Our handlers answer {"error": "..."}; axum's own rejections (an undecodable path)
            // answer plain text: either way, a message.
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or(body.clone());
            prop_assert!(message.trim().len() > 5, "GET {} -> {} without a message: {:?}", path, resp.status, body);
        }
        other => prop_assert!(false, "GET {} -> unexpected {} {}", path, other, body),
    }
    Ok(())
}

async fn setup(backend: Backend) -> (TestDb, Relay, Known) {
    // A checkpoint after the five events, so `/log/checkpoints` has something to return.
    let (db, relay) = Relay::start(backend, "[log]\ncheckpoint_every_events = 5\n").await;
    let keys = Keys::generate();
    let mut conn = relay.connect().await;
    let session = "sess\u{e9}/1 ?&";
    let mut ids = Vec::new();
    let mut prev: Option<String> = None;
    for i in 0..5u64 {
        let mut tags: Vec<Vec<&str>> = vec![vec!["s", session]];
        if let Some(p) = &prev {
            tags.push(vec!["prev", p.as_str()]);
        }
        let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
        let event = dephy(&keys, &format!("m{i}"), &tags, now() - 10 + i);
        conn.publish_ok(&event).await;
        prev = Some(event.id.to_hex());
        ids.push(event.id.to_hex());
    }
    let port = relay.port;
    let signed = eventually(std::time::Duration::from_secs(20), || async move {
        http_get(port, "/log/checkpoints?from=0", &[])
            .await
            .is_ok_and(|r| r.status == 200 && r.json()["checkpoints"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    assert!(signed, "no checkpoint signed after 5 events:\n{}", relay.log_tail(40));
    (db, relay, Known { ids, author: keys.public_key().to_hex(), session: session.to_string() })
}

fn check_backend(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (_db, relay, known) = rt.block_on(setup(backend));
    // The known values really hit rows, so the random cases reach past the parameter checks.
    rt.block_on(async {
        let path = format!("/sessions/{}/{}/events", known.author, encode(&known.session));
        let resp = http_get(relay.port, &path, &[]).await.expect("http");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["events"].as_array().map(Vec::len), Some(5), "{}", resp.text());
    });
    let mut runner = TestRunner::new(config());
    let result = runner.run(&request(), |r| {
        let path = path_of(&r, &known);
        rt.block_on(check_request(relay.port, &r, &path))
    });
    // Still serving after all that.
    let health = rt.block_on(http_get(relay.port, "/health", &[])).expect("health");
    assert_eq!(health.status, 200);
    if let Err(e) = result {
        panic!("{backend:?}: {e}\n--- relay log ---\n{}", relay.log_tail(40));
    }
}

#[test]
fn sqlite_http_parameters_never_5xx() {
    check_backend(Backend::Sqlite);
}

#[test]
fn postgres_http_parameters_never_5xx() {
    check_backend(Backend::Postgres);
}

/// Regressions found by the property above, pinned.
#[test]
fn postgres_session_with_nul_is_not_a_server_error() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let (_db, relay, known) = setup(Backend::Postgres).await;
        let resp = http_get(relay.port, &format!("/sessions/{}/a%00b/events", known.author), &[]).await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["events"], serde_json::json!([]));
    });
}

#[test]
fn checkpoints_from_beyond_i64_is_empty() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let (_db, relay, _known) = setup(Backend::Sqlite).await;
        let resp = http_get(relay.port, "/log/checkpoints?from=18446744073709551615", &[]).await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["checkpoints"], serde_json::json!([]), "from = 2^64-1 wrapped to -1");
    });
}
