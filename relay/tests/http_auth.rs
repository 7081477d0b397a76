//! Read auth over HTTP (NIP-98): with `[auth] required_for_read = true`, every HTTP path that
//! returns event content (`/events`, `/sessions/...`) refuses requests without a valid kind-27235
//! token (401 + `WWW-Authenticate: Nostr`), and `/log/*` stays public. Also the byte cap on those
//! bodies (`next_after` / `truncated`). Both backends.

#[macro_use]
mod common;

use common::*;
use nostr::prelude::*;
use serde_json::Value;

backend_tests!(
    content_paths_refuse_without_auth,
    bad_tokens_are_refused,
    valid_token_is_accepted_and_log_stays_public,
    bodies_are_capped_in_bytes,
);

const READ_AUTH: &str = "[auth]\nrequired_for_read = true\n";

/// Standard padded base64, written here so the test does not share the relay's decoder.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A NIP-98 event signed with the `nostr` crate.
fn nip98(keys: &Keys, kind: u16, url: &str, method: &str, created_at: u64) -> Event {
    EventBuilder::new(Kind::from(kind), "")
        .tags([Tag::parse(["u", url]).unwrap(), Tag::parse(["method", method]).unwrap()])
        .custom_created_at(Timestamp::from_secs(created_at))
        .sign_with_keys(keys)
        .unwrap()
}

fn header_for(event_json: &str) -> String {
    format!("Nostr {}", base64(event_json.as_bytes()))
}

async fn get(relay: &Relay, path: &str, auth: Option<&str>) -> HttpResponse {
    let headers: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
    http_get(relay.port, path, &headers).await.expect("HTTP request")
}

fn url(relay: &Relay, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", relay.port)
}

/// Publishes `n` events of one session (`s` tag) with `content`; returns them in order.
async fn publish_session(relay: &Relay, keys: &Keys, session: &str, n: usize, content: &str) -> Vec<Event> {
    let mut c = relay.connect().await;
    let base = now() - 100;
    let events: Vec<Event> =
        (0..n).map(|i| dephy(keys, &format!("{content}{i}"), &[&["s", session]], base + i as u64)).collect();
    for e in &events {
        c.publish_ok(e).await;
    }
    events
}

fn assert_refused(resp: &HttpResponse, what: &str, reason: &str) {
    assert_eq!(resp.status, 401, "{what}: expected 401, got {} {}", resp.status, resp.text());
    assert_eq!(resp.header("www-authenticate"), Some("Nostr"), "{what}: WWW-Authenticate hint");
    let err = resp.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("Authorization: Nostr"), "{what}: body says what to send: {err}");
    assert!(err.contains(reason), "{what}: body names the reason {reason:?}: {err}");
    assert!(!resp.text().contains("secret-content"), "{what}: event content leaked");
}

async fn content_paths_refuse_without_auth(backend: Backend) {
    let (_db, relay) = Relay::start(backend, READ_AUTH).await;
    let k = Keys::generate();
    publish_session(&relay, &k, "s1", 2, "secret-content").await;
    for path in ["/events?after=0".to_string(), format!("/sessions/{}/s1/events", k.public_key().to_hex())] {
        let resp = get(&relay, &path, None).await;
        assert_refused(&resp, &path, "no (or more than one) Authorization header");
        let resp = get(&relay, &path, Some("Bearer abc")).await;
        assert_refused(&resp, &path, "scheme");
        let resp = get(&relay, &path, Some("Nostr !!!not-base64")).await;
        assert_refused(&resp, &path, "base64");
        let oversized = format!("Nostr {}", "A".repeat(9000));
        let resp = get(&relay, &path, Some(&oversized)).await;
        assert_refused(&resp, &path, "longer than");
    }
    // The same paths without read auth: open (the policy is what refuses above).
    let (_db2, open) = Relay::start(backend, "").await;
    publish_session(&open, &k, "s1", 1, "secret-content").await;
    assert_eq!(get(&open, "/events?after=0", None).await.status, 200);
}

async fn bad_tokens_are_refused(backend: Backend) {
    let (_db, relay) = Relay::start(backend, READ_AUTH).await;
    let k = Keys::generate();
    publish_session(&relay, &k, "s1", 1, "secret-content").await;
    let paths = ["/events?after=0".to_string(), format!("/sessions/{}/s1/events?after=0", k.public_key().to_hex())];
    for path in &paths {
        let t = now();
        let cases: Vec<(&str, Event, &str)> = vec![
            ("other query", nip98(&k, 27235, &url(&relay, "/events?after=1"), "GET", t), "u tag"),
            ("other host", nip98(&k, 27235, &format!("http://example.com{path}"), "GET", t), "u tag"),
            ("relative url", nip98(&k, 27235, path, "GET", t), "u tag"),
            ("method POST", nip98(&k, 27235, &url(&relay, path), "POST", t), "method"),
            ("stale", nip98(&k, 27235, &url(&relay, path), "GET", t - 120), "created_at"),
            ("future", nip98(&k, 27235, &url(&relay, path), "GET", t + 120), "created_at"),
            ("kind 22242", nip98(&k, 22242, &url(&relay, path), "GET", t), "27235"),
            ("kind 1", nip98(&k, 1, &url(&relay, path), "GET", t), "27235"),
        ];
        for (what, ev, reason) in cases {
            let resp = get(&relay, path, Some(&header_for(&ev.as_json()))).await;
            assert_refused(&resp, &format!("{path} {what}"), reason);
        }
        // A valid token whose signature is altered (one hex digit of `sig` changed).
        let ev = nip98(&k, 27235, &url(&relay, path), "GET", t);
        let mut v: Value = serde_json::from_str(&ev.as_json()).unwrap();
        let sig = v["sig"].as_str().unwrap().to_string();
        let flipped = if sig.starts_with('0') { "1" } else { "0" };
        v["sig"] = Value::String(format!("{flipped}{}", &sig[1..]));
        let resp = get(&relay, path, Some(&header_for(&v.to_string()))).await;
        assert_refused(&resp, &format!("{path} bad signature"), "signature");
        // Another key's signature over this id: id check passes, signature does not.
        let other = nip98(&Keys::generate(), 27235, &url(&relay, path), "GET", t);
        let mut v: Value = serde_json::from_str(&ev.as_json()).unwrap();
        v["sig"] = Value::String(other.sig.to_string());
        let resp = get(&relay, path, Some(&header_for(&v.to_string()))).await;
        assert_refused(&resp, &format!("{path} foreign signature"), "signature");
        // Content altered after signing: the id no longer matches.
        let mut v: Value = serde_json::from_str(&ev.as_json()).unwrap();
        v["content"] = Value::String("x".into());
        let resp = get(&relay, path, Some(&header_for(&v.to_string()))).await;
        assert_refused(&resp, &format!("{path} altered"), "id");
    }
}

async fn valid_token_is_accepted_and_log_stays_public(backend: Backend) {
    let (_db, relay) = Relay::start(backend, &format!("{READ_AUTH}[log]\ncheckpoint_every_events = 1\n")).await;
    let k = Keys::generate();
    let events = publish_session(&relay, &k, "s1", 3, "secret-content").await;
    let reader = Keys::generate();

    let path = "/events?after=0&limit=10";
    let ev = nip98(&reader, 27235, &url(&relay, path), "GET", now());
    let resp = get(&relay, path, Some(&header_for(&ev.as_json()))).await;
    assert_eq!(resp.status, 200, "valid token on {path}: {}", resp.text());
    let ids: Vec<Value> = resp.json()["events"].as_array().unwrap().iter().map(|e| e["event"]["id"].clone()).collect();
    for e in &events {
        assert!(ids.contains(&Value::String(e.id.to_hex())), "{path}: event {} served", e.id);
    }

    let path = format!("/sessions/{}/s1/events", k.public_key().to_hex());
    let ev = nip98(&reader, 27235, &url(&relay, &path), "get", now());
    let resp = get(&relay, &path, Some(&header_for(&ev.as_json()))).await;
    assert_eq!(resp.status, 200, "valid token on {path}: {}", resp.text());
    let got: Vec<String> = resp.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, hex_ids(&events.iter().collect::<Vec<_>>()), "the session in order");

    // A token is bound to its URL: the /events token does not open the session path.
    let ev = nip98(&reader, 27235, &url(&relay, "/events?after=0&limit=10"), "GET", now());
    assert_refused(&get(&relay, &path, Some(&header_for(&ev.as_json()))).await, "token for another path", "u tag");

    // /log/* needs no token: hashes, ids and relay-signed checkpoints.
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            get(&relay, "/log/checkpoint", None).await.status == 200
        })
        .await,
        "/log/checkpoint is public and a checkpoint gets signed"
    );
    for path in ["/log/checkpoints?from=0", "/log/entries?start=0&end=3", "/log/proof/consistency?first=1&second=2"] {
        let resp = get(&relay, path, None).await;
        assert_eq!(resp.status, 200, "{path} is public: {}", resp.text());
    }
    let resp = get(&relay, &format!("/log/proof/inclusion?id={}", events[0].id.to_hex()), None).await;
    assert_eq!(resp.status, 200, "inclusion proof is public: {}", resp.text());
}

async fn bodies_are_capped_in_bytes(backend: Backend) {
    const CAP: usize = 4 * 1024 * 1024;
    let (_db, relay) = Relay::start(backend, "").await;
    let k = Keys::generate();
    // 80 events of ~60 KB: ~4.8 MB, more than one body holds.
    let big = "x".repeat(60_000);
    let events = publish_session(&relay, &k, "big", 80, &big).await;
    let want = hex_ids(&events.iter().collect::<Vec<_>>());

    for base in
        ["/events?limit=1000&after=".to_string(), format!("/sessions/{}/big/events?after=", k.public_key().to_hex())]
    {
        let (mut after, mut got, mut pages, mut truncated_pages) = (0i64, Vec::new(), 0, 0);
        loop {
            pages += 1;
            assert!(pages <= 10, "{base}: paging does not end");
            let resp = get(&relay, &format!("{base}{after}"), None).await;
            assert_eq!(resp.status, 200, "{base}{after}: {}", resp.text());
            assert!(resp.body.len() <= CAP, "{base}{after}: body of {} bytes exceeds the cap", resp.body.len());
            let body = resp.json();
            let page = body["events"].as_array().unwrap();
            if page.is_empty() {
                assert_eq!(body["next_after"].as_i64(), Some(after), "empty page keeps the cursor");
                break;
            }
            let last_seq = page.last().unwrap()["seq"].as_i64().unwrap();
            assert_eq!(body["next_after"].as_i64(), Some(last_seq), "next_after is the last seq served");
            if body["truncated"].as_bool().unwrap() {
                truncated_pages += 1;
            }
            // (/events also serves the relay's own checkpoint events: keep this author's.)
            let author = Value::String(k.public_key().to_hex());
            got.extend(
                page.iter()
                    .filter(|e| e["event"]["pubkey"] == author)
                    .map(|e| e["event"]["id"].as_str().unwrap().to_string()),
            );
            after = last_seq;
        }
        assert!(truncated_pages >= 1, "{base}: the byte cap ended at least one page");
        assert_eq!(got, want, "{base}: all events, in order, none twice, across capped pages");
    }
}
