//! Configured limits: event shape limits, REQ limits, rate limits, connection limits, oversized
//! messages and slow readers. Both backends.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use nostr::prelude::*;
use serde_json::{Value, json};

backend_tests!(
    event_shape_limits,
    created_at_bounds,
    req_limits,
    subscription_count_limit,
    oversized_message,
    rate_limit_events_per_ip,
    rate_limit_events_per_pubkey,
    rate_limit_reqs_per_ip,
    max_connections_per_ip,
    max_connections_total,
    slow_reader_disconnected,
    large_stored_result_with_small_outbound_queue,
    connection_output_budget_closes_slow_reader,
    total_output_budget_closes_largest_first,
    big_req_streams_distinct_events_in_order_then_live,
    blocked_write_times_out,
);

const SHAPE_CONFIG: &str = r#"
[limits]
max_event_tags = 5
max_content_bytes = 200
max_event_bytes = 1200
max_message_bytes = 100000
"#;

async fn event_shape_limits(backend: Backend) {
    let (_db, relay) = Relay::start(backend, SHAPE_CONFIG).await;
    let mut c = relay.connect().await;
    let k = Keys::generate();

    // Exactly at the limits: accepted.
    let five: Vec<Vec<String>> = (0..5).map(|i| vec!["t".to_string(), format!("v{i}")]).collect();
    let five_refs: Vec<Vec<&str>> = five.iter().map(|t| t.iter().map(String::as_str).collect()).collect();
    let five_slices: Vec<&[&str]> = five_refs.iter().map(|v| v.as_slice()).collect();
    c.publish_ok(&sign(&k, DEPHY_KIND, "five tags", &five_slices, None)).await;
    c.publish_ok(&sign(&k, DEPHY_KIND, &"c".repeat(200), &[], None)).await;

    // Too many tags.
    let six: Vec<Vec<String>> = (0..6).map(|i| vec!["t".to_string(), format!("v{i}")]).collect();
    let six_refs: Vec<Vec<&str>> = six.iter().map(|t| t.iter().map(String::as_str).collect()).collect();
    let six_slices: Vec<&[&str]> = six_refs.iter().map(|v| v.as_slice()).collect();
    let e = sign(&k, DEPHY_KIND, "six tags", &six_slices, None);
    c.publish_refused(&e, "invalid:").await;

    // Content too large (bytes, not chars: 101 two-byte chars = 202 bytes).
    let e = sign(&k, DEPHY_KIND, &"c".repeat(201), &[], None);
    c.publish_refused(&e, "invalid:").await;
    let e_utf8 = sign(&k, DEPHY_KIND, &"é".repeat(101), &[], None);
    c.publish_refused(&e_utf8, "invalid:").await;

    // Event too large although tags and content are within their limits.
    let big = "x".repeat(190);
    let big_tags: Vec<[&str; 2]> = (0..5).map(|_| ["b", big.as_str()]).collect();
    let big_slices: Vec<&[&str]> = big_tags.iter().map(|t| &t[..]).collect();
    let e_big = sign(&k, DEPHY_KIND, &"y".repeat(150), &big_slices, None);
    assert!(ev_json(&e_big).to_string().len() > 1200);
    c.publish_refused(&e_big, "invalid:").await;

    // Nothing refused was stored.
    assert_eq!(c.count("n", &[json!({"authors": [pk(&k)]})]).await, 2);
}

async fn created_at_bounds(backend: Backend) {
    let cfg = "[limits]\ncreated_at_future_secs = 60\ncreated_at_past_secs = 3600\n";
    let (_db, relay) = Relay::start(backend, cfg).await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    c.publish_refused(&sign(&k, DEPHY_KIND, "future", &[], Some(now() + 3600)), "invalid:").await;
    c.publish_refused(&sign(&k, DEPHY_KIND, "past", &[], Some(now() - 7200)), "invalid:").await;
    c.publish_ok(&sign(&k, DEPHY_KIND, "near future", &[], Some(now() + 30))).await;
    c.publish_ok(&sign(&k, DEPHY_KIND, "recent past", &[], Some(now() - 1800))).await;
    assert_eq!(c.count("n", &[json!({"authors": [pk(&k)]})]).await, 2);

    // Default config: 15 minutes into the future is the bound, no lower bound.
    let (_db2, relay2) = Relay::start(backend, "").await;
    let mut c2 = relay2.connect().await;
    c2.publish_refused(&sign(&k, DEPHY_KIND, "future", &[], Some(now() + 3600)), "invalid:").await;
    c2.publish_ok(&sign(&k, DEPHY_KIND, "ancient", &[], Some(1_000_000))).await;
}

async fn req_limits(backend: Backend) {
    let cfg = "[limits]\nmax_limit = 3\ndefault_limit = 2\nmax_filters = 2\nmax_subid_length = 10\n";
    let (_db, relay) = Relay::start(backend, cfg).await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let t = now() - 100;
    let evs: Vec<Event> = (0..6).map(|i| dephy(&k, &format!("{i}"), &[], t + i)).collect();
    for e in &evs {
        c.publish_ok(e).await;
    }
    let refs: Vec<&Event> = evs.iter().collect();
    let want = expected_order(&refs);
    let a = pk(&k);
    assert_eq!(
        c.req_ids("big", &[json!({"authors": [a], "limit": 100})]).await,
        want[..3].to_vec(),
        "limit clamped to max_limit"
    );
    assert_eq!(c.req_ids("none", &[json!({"authors": [a]})]).await, want[..2].to_vec(), "default_limit applies");
    assert_eq!(c.req_ids("one", &[json!({"authors": [a], "limit": 1})]).await, want[..1].to_vec());
    // COUNT is not truncated by the limits.
    assert_eq!(c.count("cnt", &[json!({"authors": [a]})]).await, 6);

    let m = c.req_closed("three", &[json!({}), json!({}), json!({})]).await;
    assert!(m.starts_with("invalid:"), "3 filters > max_filters 2: {m:?}");
    assert_eq!(c.req("two", &[json!({"authors": [a], "limit": 1}), json!({"ids": [want[5].clone()]})]).await.len(), 2);
    let m = c.req_closed("elevenchars", &[json!({})]).await;
    assert!(m.starts_with("invalid:"), "sub id of 11 > 10: {m:?}");
    assert!(c.req("tenchars10", &[json!({"limit": 0})]).await.is_empty());
    match c.count_result("c3", &[json!({}), json!({}), json!({})]).await {
        Err(m) => assert!(m.starts_with("invalid:"), "COUNT with 3 filters: {m:?}"),
        Ok(n) => panic!("COUNT with too many filters answered {n}"),
    }
}

async fn subscription_count_limit(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nmax_subscriptions = 2\n").await;
    let mut c = relay.connect().await;
    c.req("s1", &[json!({"kinds": [1]})]).await;
    c.req("s2", &[json!({"kinds": [2]})]).await;
    let m = c.req_closed("s3", &[json!({"kinds": [3]})]).await;
    let prefix = m.split(':').next().unwrap_or("");
    assert!(
        m.contains(':') && ["blocked", "restricted", "rate-limited", "error", "invalid"].contains(&prefix),
        "too many subscriptions: machine-readable prefix expected, got {m:?}"
    );
    // Replacing an existing id does not count as a new subscription.
    c.req("s1", &[json!({"kinds": [4]})]).await;
    // Closing frees a slot.
    c.close_sub("s2").await;
    c.req("s3", &[json!({"kinds": [3]})]).await;
    // Limit is per connection.
    let mut c2 = relay.connect().await;
    c2.req("a", &[json!({})]).await;
    c2.req("b", &[json!({})]).await;
    // And the open subscriptions still deliver.
    let k = Keys::generate();
    let e = sign(&k, 3, "kind 3", &[], None);
    c2.publish_ok(&e).await;
    assert_eq!(c.next_event("s3").await["id"], json!(e.id.to_hex()));
}

async fn oversized_message(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nmax_message_bytes = 4000\n").await;
    let mut c = relay.connect().await;
    let ids: Vec<String> = (0..100).map(|i| format!("{i:064x}")).collect();
    let msg = json!(["REQ", "big", {"ids": ids}]).to_string();
    assert!(msg.len() > 4000);
    let sent = c.try_send_text(msg).await;
    if sent.is_ok() {
        match c.try_recv(Duration::from_secs(5)).await {
            None => assert!(c.closed, "no reply and connection not closed for an oversized message"),
            Some(v) => {
                let ok = v[0] == "NOTICE"
                    && v[1].as_str().is_some_and(|s| s.starts_with("error:") || s.starts_with("invalid:"));
                let closed = v[0] == "CLOSED"
                    && v[2].as_str().is_some_and(|s| s.starts_with("error:") || s.starts_with("invalid:"));
                assert!(ok || closed, "oversized message: expected NOTICE error:/invalid: or close, got {v}");
            }
        }
    }
    // Oversized EVENT as well, on a fresh connection.
    let mut c2 = relay.connect().await;
    let k = Keys::generate();
    let e = sign(&k, DEPHY_KIND, &"z".repeat(5000), &[], None);
    if c2.try_send_text(json!(["EVENT", ev_json(&e)]).to_string()).await.is_ok()
        && let Some(v) = c2.try_recv(Duration::from_secs(5)).await
    {
        let text = v.to_string();
        assert!(
            (v[0] == "NOTICE" || (v[0] == "OK" && v[2] == json!(false)))
                && (text.contains("error:") || text.contains("invalid:")),
            "oversized EVENT: {v}"
        );
    }
    // The relay keeps serving other connections.
    let mut c3 = relay.connect().await;
    let e = sign(&k, DEPHY_KIND, "small", &[], None);
    c3.publish_ok(&e).await;
    assert_eq!(c3.count("n", &[json!({"authors": [pk(&k)]})]).await, 1, "the oversized event is not stored");
    let h = http_get(relay.port, "/health", &[]).await.unwrap();
    assert_eq!(h.status, 200);
}

async fn rate_limit_events_per_ip(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nevents_per_sec_per_ip = 5\n").await;
    let mut c = relay.connect().await;
    let keys: Vec<Keys> = (0..20).map(|_| Keys::generate()).collect();
    let events: Vec<Event> = keys.iter().map(|k| sign(k, DEPHY_KIND, "rl", &[], None)).collect();
    let res = c.publish_pipelined(&events).await;
    let accepted = res.iter().filter(|(ok, _)| *ok).count();
    let limited: Vec<&String> = res.iter().filter(|(ok, _)| !*ok).map(|(_, m)| m).collect();
    assert!(accepted >= 5, "burst of 5 accepted, got {accepted}: {res:?}");
    assert!(!limited.is_empty(), "20 events at once with 5/s must be rate limited: {res:?}");
    for m in &limited {
        assert!(m.starts_with("rate-limited:"), "refusal prefix: {m:?}");
    }
    for (ok, m) in &res {
        if *ok {
            assert_eq!(m, "", "accepted events have an empty message");
        }
    }
    let n = c.count("n", &[json!({"kinds": [DEPHY_KIND]})]).await;
    assert_eq!(n as usize, accepted, "exactly the accepted events are stored");
    // Tokens come back.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = sign(&Keys::generate(), DEPHY_KIND, "later", &[], None);
    c.publish_ok(&e).await;
}

async fn rate_limit_events_per_pubkey(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nevents_per_sec_per_pubkey = 3\n").await;
    let mut c = relay.connect().await;
    let noisy = Keys::generate();
    let events: Vec<Event> = (0..12).map(|i| sign(&noisy, DEPHY_KIND, &format!("n{i}"), &[], None)).collect();
    let res = c.publish_pipelined(&events).await;
    let accepted = res.iter().filter(|(ok, _)| *ok).count();
    assert!(accepted >= 3, "burst of 3 accepted: {res:?}");
    assert!(accepted < 12, "12 events at once from one key with 3/s must be limited: {res:?}");
    for (ok, m) in &res {
        if !ok {
            assert!(m.starts_with("rate-limited:"), "refusal prefix: {m:?}");
        }
    }
    // Another author on the same connection/IP is not affected.
    let quiet = Keys::generate();
    c.publish_ok(&sign(&quiet, DEPHY_KIND, "quiet", &[], None)).await;
    assert_eq!(c.count("n", &[json!({"authors": [pk(&noisy)]})]).await as usize, accepted);
}

async fn rate_limit_reqs_per_ip(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nreqs_per_sec_per_ip = 3\n").await;
    let mut c = relay.connect().await;
    for i in 0..12 {
        c.send_json(&json!(["REQ", format!("q{i}"), {"limit": 1}])).await;
    }
    let mut eose = 0;
    let mut limited = 0;
    for i in 0..12 {
        let r = c.collect_until_eose(&format!("q{i}")).await;
        match r.closed {
            None => eose += 1,
            Some(m) => {
                assert!(m.starts_with("rate-limited:"), "REQ refusal prefix: {m:?}");
                limited += 1;
            }
        }
    }
    assert!(eose >= 3, "burst of 3 REQs answered, got {eose}");
    assert!(limited >= 1, "12 REQs at once with 3/s must be rate limited");
    // COUNT is limited by the same budget.
    let mut count_limited = false;
    for i in 0..6 {
        if let Err(m) = c.count_result(&format!("c{i}"), &[json!({})]).await {
            assert!(m.starts_with("rate-limited:"), "COUNT refusal prefix: {m:?}");
            count_limited = true;
        }
    }
    assert!(count_limited, "6 quick COUNTs after the burst must hit the limit");
    // Publishing is not affected by the REQ budget.
    c.publish_ok(&sign(&Keys::generate(), DEPHY_KIND, "w", &[], None)).await;
}

async fn expect_refused_upgrade(port: u16) -> u16 {
    match Conn::try_connect(port).await {
        Ok(_) => panic!("connection over the limit was upgraded"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let s = resp.status().as_u16();
            assert_ne!(s, 101);
            s
        }
        Err(e) => {
            // A reset/closed connection is also a refusal, but it must not be a 101.
            eprintln!("upgrade refused with transport error: {e}");
            0
        }
    }
}

async fn max_connections_per_ip(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nmax_connections_per_ip = 2\n").await;
    let mut c1 = relay.connect().await;
    let mut c2 = relay.connect().await;
    let status = expect_refused_upgrade(relay.port).await;
    assert!(status == 0 || status >= 400, "refusal status {status}");
    // Existing connections still work.
    let k = Keys::generate();
    c1.publish_ok(&sign(&k, DEPHY_KIND, "c1", &[], None)).await;
    assert_eq!(c2.count("n", &[json!({"authors": [pk(&k)]})]).await, 1);
    // HTTP endpoints are not WebSocket connections.
    assert_eq!(http_get(relay.port, "/health", &[]).await.unwrap().status, 200);
    // Closing one frees a slot (bounded retry: the close is asynchronous).
    let _ = c1.ws.close(None).await;
    drop(c1);
    let port = relay.port;
    let freed = eventually(Duration::from_secs(5), || async move { Conn::try_connect(port).await.is_ok() }).await;
    assert!(freed, "a slot frees up after a connection closes");
}

async fn max_connections_total(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nmax_connections = 3\n").await;
    let _a = relay.connect().await;
    let _b = relay.connect().await;
    let mut c = relay.connect().await;
    let status = expect_refused_upgrade(relay.port).await;
    assert!(status == 0 || status >= 400, "refusal status {status}");
    c.publish_ok(&sign(&Keys::generate(), DEPHY_KIND, "still works", &[], None)).await;
}

async fn slow_reader_disconnected(backend: Backend) {
    let cfg = r#"
[limits]
outbound_queue = 16
max_content_bytes = 100000
max_event_bytes = 200000
max_message_bytes = 300000
"#;
    let (_db, relay) = Relay::start(backend, cfg).await;
    let mut slow = slow_conn(relay.port).await;
    assert!(slow.req("flood", &[json!({"kinds": [20573]})]).await.is_empty());
    let mut fast = relay.connect().await;
    assert!(fast.req("flood", &[json!({"kinds": [20573]})]).await.is_empty());

    const N: usize = 300;
    let payload = "p".repeat(60_000);
    let k = Keys::generate();
    let events: Vec<Event> = (0..N).map(|i| sign(&k, 20573, &format!("{i}:{payload}"), &[], None)).collect();
    let ids: Vec<String> = events.iter().map(|e| e.id.to_hex()).collect();

    // The fast subscriber reads concurrently.
    let fast_task = tokio::spawn(async move {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < N && Instant::now() < deadline {
            match fast.try_recv(Duration::from_secs(10)).await {
                Some(v) if v[0] == "EVENT" => got.push(v[2]["id"].as_str().unwrap().to_string()),
                Some(_) => {}
                None => break,
            }
        }
        got
    });

    let mut publ = relay.connect().await;
    for chunk in events.chunks(4) {
        let res = publ.publish_pipelined(chunk).await;
        for (ok, m) in res {
            assert!(ok, "ephemeral flood event refused: {m:?}");
        }
    }
    let fast_got = fast_task.await.unwrap();
    assert_eq!(fast_got, ids, "the fast subscriber receives every event, in order");

    // Now read the slow connection: it must have been dropped before getting everything.
    let mut received = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match slow.try_recv(Duration::from_secs(5)).await {
            Some(v) => {
                if v[0] == "EVENT" {
                    received += 1;
                }
                assert!(received < N, "slow reader received all {N} events; it should have been disconnected");
            }
            None => break,
        }
        assert!(Instant::now() < deadline, "slow reader still being fed after 30 s");
    }
    assert!(slow.closed, "slow reader connection was not closed (got {received} events, then silence)");
    assert!(received < N);
    // The relay is fine.
    let mut c = relay.connect().await;
    c.publish_ok(&sign(&k, DEPHY_KIND, "after flood", &[], None)).await;
}

/// The outbound queue bounds slow readers, not result sizes: a client that reads normally gets a
/// stored result much larger than the queue.
async fn large_stored_result_with_small_outbound_queue(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\noutbound_queue = 16\n").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let evs: Vec<Event> = (0..300).map(|i| dephy(&k, &format!("{i}"), &[&["s", "q"]], now() - 1000 + i)).collect();
    for chunk in evs.chunks(10) {
        for (ok, m) in c.publish_pipelined(chunk).await {
            assert!(ok, "{m}");
        }
    }
    let mut reader = relay.connect().await;
    let r = reader.req_result("big", &[json!({"#s": ["q"], "limit": 500})]).await;
    assert!(r.closed.is_none(), "CLOSED {:?}", r.closed);
    assert_eq!(r.events.len(), 300, "all stored events delivered to a reading client");
    // Two filters at once, and COUNT in between.
    let t0 = evs[0].created_at.as_secs();
    let r = reader
        .req_result(
            "big2",
            &[json!({"#s": ["q"], "limit": 200}), json!({"authors": [pk(&k)], "until": t0 + 99, "limit": 200})],
        )
        .await;
    assert!(r.closed.is_none());
    assert_eq!(r.events.len(), 300);
    assert!(!reader.closed);
}

const BUDGET_CONFIG: &str = r#"
[limits]
outbound_queue = 100000
max_content_bytes = 100000
max_event_bytes = 200000
max_message_bytes = 300000
"#;

/// The value of a counter (summed over the label set matching `label`) on `/metrics`.
async fn metric(port: u16, name: &str, label: &str) -> f64 {
    let text = http_get(port, "/metrics", &[]).await.map(|r| r.text()).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Publishes `n` ephemeral events of ~60 KB of `kind`.
async fn flood(publ: &mut Conn, k: &Keys, kind: u16, n: usize) {
    let payload = "p".repeat(60_000);
    let events: Vec<Event> = (0..n).map(|i| sign(k, kind, &format!("{i}:{payload}"), &[], None)).collect();
    for chunk in events.chunks(4) {
        for (ok, m) in publ.publish_pipelined(chunk).await {
            assert!(ok, "flood event refused: {m:?}");
        }
    }
}

/// Reads a connection to its end; returns (EVENTs received, NOTICE texts, closed).
async fn read_to_end(c: &mut Conn) -> (usize, Vec<String>) {
    let (mut events, mut notices) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(v) = c.try_recv(Duration::from_secs(10)).await {
        match v[0].as_str() {
            Some("EVENT") => events += 1,
            Some("NOTICE") => notices.push(v[1].as_str().unwrap_or("").to_string()),
            _ => {}
        }
        assert!(Instant::now() < deadline, "still being fed after 60 s");
    }
    (events, notices)
}

/// A connection that does not read while its live queue grows past
/// `max_output_bytes_per_connection` is closed, and says why (NOTICE before the close).
async fn connection_output_budget_closes_slow_reader(backend: Backend) {
    let cfg = format!("{BUDGET_CONFIG}max_output_bytes_per_connection = 1000000\n");
    let (_db, relay) = Relay::start(backend, &cfg).await;
    let mut slow = slow_conn(relay.port).await;
    assert!(slow.req("flood", &[json!({"kinds": [20574]})]).await.is_empty());
    let mut publ = relay.connect().await;
    let k = Keys::generate();
    const N: usize = 200;
    let port = relay.port;
    let mut sent = 0;
    while sent < N && metric(port, "relay_slow_readers_disconnected_total", "connection_budget").await < 1.0 {
        flood(&mut publ, &k, 20574, 10).await;
        sent += 10;
    }
    let kicked = eventually(Duration::from_secs(10), || async move {
        metric(port, "relay_slow_readers_disconnected_total", "connection_budget").await >= 1.0
    })
    .await;
    assert!(kicked, "no connection_budget close after {sent} events of 60 KB to a non-reading client");
    let (received, notices) = read_to_end(&mut slow).await;
    assert!(slow.closed, "the slow reader was not closed");
    assert!(received < sent, "it received all {sent} events");
    assert!(
        notices.iter().any(|n| n.contains("slow reader: more than 1000000 bytes")),
        "no NOTICE with the reason: {notices:?}"
    );
    // The relay and the publisher are fine.
    publ.publish_ok(&sign(&k, DEPHY_KIND, "after", &[], None)).await;
}

/// Past `max_output_bytes_total`, the connection holding the most output is closed first;
/// smaller holders keep their connection and every event.
async fn total_output_budget_closes_largest_first(backend: Backend) {
    let cfg = format!("{BUDGET_CONFIG}max_output_bytes_total = 2000000\n");
    let (_db, relay) = Relay::start(backend, &cfg).await;
    let mut small = slow_conn(relay.port).await;
    assert!(small.req("s", &[json!({"kinds": [20581]})]).await.is_empty());
    let mut mid = slow_conn(relay.port).await;
    assert!(mid.req("m", &[json!({"kinds": [20582]})]).await.is_empty());
    let mut big = slow_conn(relay.port).await;
    assert!(big.req("b", &[json!({"kinds": [20583]})]).await.is_empty());
    let mut publ = relay.connect().await;
    let k = Keys::generate();
    // small holds at most ~300 KB and mid ~600 KB: when the total passes 2 MB, big holds the most.
    flood(&mut publ, &k, 20581, 5).await;
    flood(&mut publ, &k, 20582, 10).await;
    let port = relay.port;
    let mut sent = 0;
    while sent < 300 && metric(port, "relay_slow_readers_disconnected_total", "total_budget").await < 1.0 {
        flood(&mut publ, &k, 20583, 10).await;
        sent += 10;
    }
    let kicked = eventually(Duration::from_secs(10), || async move {
        metric(port, "relay_slow_readers_disconnected_total", "total_budget").await >= 1.0
    })
    .await;
    assert!(kicked, "no total_budget close after {sent} events of 60 KB to a non-reading client");
    let (_, notices) = read_to_end(&mut big).await;
    assert!(big.closed, "the largest holder was not closed");
    assert!(
        notices.iter().any(|n| n.contains("relay output budget exhausted: your connection held the most")),
        "no NOTICE with the reason: {notices:?}"
    );
    assert_eq!(metric(port, "relay_slow_readers_disconnected_total", "total_budget").await, 1.0, "only big closed");
    for (c, n, sub) in [(&mut small, 5, "s"), (&mut mid, 10, "m")] {
        for _ in 0..n {
            let v = c.next_event(sub).await;
            assert_eq!(v["kind"], json!(if sub == "s" { 20581 } else { 20582 }));
        }
        assert!(c.req("after", &[json!({"kinds": [1]})]).await.is_empty(), "{sub} still served");
        assert!(!c.closed);
    }
}

/// A REQ whose result is far larger than the batch size (300 events of 50 KB, two overlapping
/// filters) streams every distinct event once, in NIP-01 order; events published while it
/// streams arrive live after EOSE, once each.
async fn big_req_streams_distinct_events_in_order_then_live(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut publ = relay.connect().await;
    let k = Keys::generate();
    let t0 = now() - 10_000;
    let payload = "x".repeat(50_000);
    let evs: Vec<Event> =
        (0..300u64).map(|i| dephy(&k, &format!("{i}:{payload}"), &[&["s", "big"]], t0 + i / 2)).collect();
    for chunk in evs.chunks(10) {
        for (ok, m) in publ.publish_pipelined(chunk).await {
            assert!(ok, "{m}");
        }
    }
    // f1: the newest 200 (i >= 100); f2: i < 150 (created_at <= t0 + 74), newest 100 (i >= 50).
    let filters = [json!({"#s": ["big"], "limit": 200}), json!({"authors": [pk(&k)], "until": t0 + 74, "limit": 100})];
    let want: Vec<&Event> = evs[50..].iter().collect();
    let want = expected_order(&want);
    let mut reader = relay.connect().await;
    reader.send_json(&json!(["REQ", "big", filters[0], filters[1]])).await;
    let first = reader.next_event("big").await;
    // Published while the stored result streams: live, after EOSE.
    let live: Vec<Event> = (0..3).map(|i| dephy(&k, &format!("live {i}"), &[&["s", "big"]], now())).collect();
    for e in &live {
        publ.publish_ok(e).await;
    }
    let mut got = vec![first["id"].as_str().unwrap().to_string()];
    let rest = reader.collect_until_eose("big").await;
    assert!(rest.closed.is_none(), "CLOSED {:?}", rest.closed);
    got.extend(rest.events.iter().map(|e| e["id"].as_str().unwrap().to_string()));
    assert_eq!(got.len(), want.len(), "250 distinct events");
    assert_eq!(got, want, "every distinct event once, newest first, ties by id");
    let mut live_got = Vec::new();
    for _ in 0..3 {
        live_got.push(reader.next_event("big").await["id"].as_str().unwrap().to_string());
    }
    assert_eq!(sorted(live_got), sorted(hex_ids(&live.iter().collect::<Vec<_>>())));
    reader.expect_silence(Duration::from_millis(300)).await;
}

/// A client that sends a REQ with a large stored result and never reads is closed once a write
/// stays blocked for `write_timeout_secs`, and told why.
async fn blocked_write_times_out(backend: Backend) {
    let cfg = format!("{BUDGET_CONFIG}write_timeout_secs = 1\n");
    let (_db, relay) = Relay::start(backend, &cfg).await;
    let mut publ = relay.connect().await;
    let k = Keys::generate();
    let payload = "p".repeat(60_000);
    const N: usize = 60;
    let evs: Vec<Event> = (0..N).map(|i| sign(&k, DEPHY_KIND, &format!("{i}:{payload}"), &[], None)).collect();
    for chunk in evs.chunks(4) {
        for (ok, m) in publ.publish_pipelined(chunk).await {
            assert!(ok, "{m}");
        }
    }
    let mut slow = slow_conn(relay.port).await;
    slow.send_json(&json!(["REQ", "all", {"kinds": [DEPHY_KIND], "limit": N}])).await;
    let port = relay.port;
    let kicked = eventually(Duration::from_secs(30), || async move {
        metric(port, "relay_slow_readers_disconnected_total", "write_timeout").await >= 1.0
    })
    .await;
    assert!(kicked, "no write_timeout close for a client that never reads 3.6 MB of results");
    let (received, notices) = read_to_end(&mut slow).await;
    assert!(slow.closed, "the blocked connection was not closed");
    assert!(received < N, "it received all {N} events");
    assert!(
        notices.iter().any(|n| n.contains("slow reader: a write was blocked for more than 1 s")),
        "no NOTICE with the reason: {notices:?}"
    );
    publ.publish_ok(&sign(&k, DEPHY_KIND, "after", &[], None)).await;
}

#[allow(dead_code)]
fn _v(_: Value) {}
