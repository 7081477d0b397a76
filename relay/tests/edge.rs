//! Edge cases: special characters, many filter values, events that land in the same write batch,
//! abrupt disconnects. Both backends.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use nostr::prelude::*;
use serde_json::{Value, json};

backend_tests!(
    special_characters_roundtrip,
    huge_filter_value_lists,
    same_batch_duplicates_and_replacements,
    same_batch_event_and_deletion,
    abrupt_disconnects_release_connection_slots,
    close_unknown_subscription_is_harmless,
    bad_event_does_not_fail_other_events_in_its_batch,
    extreme_since_until,
    malformed_events_answered_ok_false,
    uppercase_hex_event,
    preemptive_deletion_by_other_author,
    created_at_beyond_i64_refused,
    far_future_expiration_accepted,
    count_does_not_replace_subscription,
    deleting_a_deletion_has_no_effect,
    fanout_to_many_subscribers,
    nostr_sdk_auto_auth_for_write,
    many_indexed_tags_per_event,
);

async fn special_characters_roundtrip(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let mut sub = relay.connect().await;
    assert!(sub.req("live", &[json!({"#t": ["spécial"]})]).await.is_empty());
    let k = Keys::generate();
    let contents = [
        "quotes \" and backslash \\ and slash / ",
        "newlines\nand\ttabs\r\n and form feed \u{000c} and bell \u{0007}",
        "unicode: żółw 日本語 Ελληνικά العربية 🚀🦀 \u{2028}\u{2029}",
        "nul byte in content: \u{0000} end",
        "",
        "sql: ' OR 1=1; DROP TABLE events; --",
    ];
    let mut evs = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        // A NUL inside an indexed (single-letter) tag value is tested separately below.
        let x = content.replace('\u{0000}', "");
        let e = sign(
            &k,
            DEPHY_KIND,
            content,
            &[&["t", "spécial"], &["x", &x], &["s", &format!("{i}")], &["empty", ""]],
            Some(now() - 100 + i as u64),
        );
        let (ok, msg) = c.publish(&e).await;
        assert!(ok && msg.is_empty(), "content #{i} {content:?} refused: {msg:?}");
        evs.push(e);
    }
    for e in &evs {
        assert_same_event(&sub.next_event("live").await, e);
    }
    let got = c.req("all", &[json!({"authors": [pk(&k)]})]).await;
    assert_eq!(got.len(), evs.len());
    for (g, e) in got.iter().zip(evs.iter().rev()) {
        assert_same_event(g, e);
        // The stored event still verifies.
        let parsed = Event::from_json(g.to_string()).expect("returned event parses");
        assert!(parsed.verify().is_ok(), "returned event does not verify: {g}");
    }
    // Tag queries with special values.
    for (i, content) in contents.iter().enumerate() {
        let x = content.replace('\u{0000}', "");
        let got = c.req_ids(&format!("x{i}"), &[json!({"#x": [x]})]).await;
        assert_eq!(got, vec![evs[i].id.to_hex()], "#x query for {content:?}");
    }
    let got = c.req_ids("empty", &[json!({"#empty": [""]})]).await;
    assert_eq!(got.len(), evs.len(), "empty tag values are queryable");

    // NUL in a multi-letter (not indexed) tag value, then in an indexed single-letter tag.
    let e = sign(&k, DEPHY_KIND, "nul in long tag", &[&["long", "a\u{0000}b"]], None);
    let (ok, msg) = c.publish(&e).await;
    assert!(ok && msg.is_empty(), "NUL in a multi-letter tag value refused: {msg:?}");
    let e = sign(&k, DEPHY_KIND, "nul in indexed tag", &[&["z", "a\u{0000}b"]], None);
    let (ok, msg) = c.publish(&e).await;
    assert!(ok && msg.is_empty(), "NUL in a single-letter tag value: expected stored, got ({ok}, {msg:?})");
    let got = c.req_ids("z", &[json!({"#z": ["a\u{0000}b"]})]).await;
    assert_eq!(got, vec![e.id.to_hex()], "#z query with a NUL value");
}

async fn huge_filter_value_lists(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nmax_message_bytes = 1500000\n").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let e = dephy(&k, "needle", &[&["t", "needle"]], now() - 1);
    c.publish_ok(&e).await;
    // Up to limits.max_filter_values (default 10 000) values per filter are served; beyond it
    // (and beyond the databases' bind-parameter limits: SQLite 32 766, PostgreSQL 65 535) the
    // REQ gets a CLOSED that says what to do, and the connection keeps working.
    for n in [9_999usize, 40_000, 70_000] {
        let mut values: Vec<String> = (0..n).map(|i| base36(i as u64)).collect();
        values.push("needle".to_string());
        let r = c.req_result(&format!("many{n}"), &[json!({"#t": values})]).await;
        match &r.closed {
            None if n < 10_000 => {
                assert_eq!(ids_of(&r.events), vec![e.id.to_hex()], "the needle is found among {n} values")
            }
            None => panic!("REQ with {n} tag values was answered; expected CLOSED invalid:"),
            Some(m) if n < 10_000 => panic!("REQ with {n} tag values answered CLOSED {m:?}"),
            Some(m) => assert!(m.starts_with("invalid: a filter has") && m.contains("split it"), "{m}"),
        }
    }
    // 5 000 ids (over the default 256 KiB message size, under this relay's 1 MB).
    let mut ids: Vec<String> = (0..5000).map(|i| format!("{i:064x}")).collect();
    ids.push(e.id.to_hex());
    let got = c.req_ids("ids", &[json!({"ids": ids})]).await;
    assert_eq!(got, vec![e.id.to_hex()]);
    // Many authors across several filters.
    let authors: Vec<String> = (0..4000).map(|i| format!("{:064x}", i + 1)).chain([pk(&k)]).collect();
    let filters: Vec<Value> = (0..4).map(|_| json!({"authors": authors, "kinds": [DEPHY_KIND]})).collect();
    let got = c.req_ids("au", &filters).await;
    assert_eq!(got, vec![e.id.to_hex()]);
    assert_eq!(c.count("n", &filters).await, 1);
    // The connection and relay are fine.
    c.publish_ok(&dephy(&k, "after", &[], now())).await;
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

async fn same_batch_duplicates_and_replacements(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let t = now() - 100;

    // The same event twice back-to-back: one stored, the other a duplicate.
    let e = dephy(&k, "twice", &[], t);
    let res = c.publish_pipelined([&e, &e]).await;
    assert!(res[0].0 && res[1].0, "both OK true: {res:?}");
    let dup = res.iter().filter(|(_, m)| m.starts_with("duplicate:")).count();
    let fresh = res.iter().filter(|(_, m)| m.is_empty()).count();
    assert_eq!((fresh, dup), (1, 1), "one fresh, one duplicate: {res:?}");
    assert_eq!(c.count("n", &[json!({"ids": [e.id.to_hex()]})]).await, 1);

    // Several versions of one replaceable event in one burst, in mixed order: newest wins.
    let versions: Vec<Event> =
        (0..6).map(|i| sign(&k, 10573, &format!("v{i}"), &[], Some(t + [3, 5, 1, 4, 0, 2][i]))).collect();
    let refs: Vec<&Event> = versions.iter().collect();
    let res = c.publish_pipelined(refs.iter().copied()).await;
    assert!(res[1].0, "the newest version is accepted: {res:?}");
    let got = c.req_ids("r", &[json!({"authors": [pk(&k)], "kinds": [10573]})]).await;
    assert_eq!(got, vec![versions[1].id.to_hex()], "newest replaceable wins within a batch");

    // Addressable versions for two d-tags interleaved.
    let a1 = sign(&k, 30573, "a-old", &[&["d", "a"]], Some(t));
    let b1 = sign(&k, 30573, "b-new", &[&["d", "b"]], Some(t + 9));
    let a2 = sign(&k, 30573, "a-new", &[&["d", "a"]], Some(t + 9));
    let b2 = sign(&k, 30573, "b-old", &[&["d", "b"]], Some(t));
    c.publish_pipelined([&a1, &b1, &a2, &b2]).await;
    let got = c.req_ids("a", &[json!({"authors": [pk(&k)], "kinds": [30573]})]).await;
    assert_eq!(sorted(got), sorted(vec![a2.id.to_hex(), b1.id.to_hex()]));

    // Ties in one batch: lowest id wins.
    let x = sign(&k, 10574, "x", &[], Some(t));
    let y = sign(&k, 10574, "y", &[], Some(t));
    let z = sign(&k, 10574, "z", &[], Some(t));
    c.publish_pipelined([&x, &y, &z]).await;
    let lowest = [&x, &y, &z].iter().map(|e| e.id.to_hex()).min().unwrap();
    let got = c.req_ids("tie", &[json!({"authors": [pk(&k)], "kinds": [10574]})]).await;
    assert_eq!(got, vec![lowest]);
}

async fn same_batch_event_and_deletion(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let t = now() - 100;
    let e = dephy(&k, "short-lived", &[], t);
    let del = sign(&k, 5, "", &[&["e", &e.id.to_hex()]], Some(t + 1));
    let res = c.publish_pipelined([&e, &del, &e]).await;
    assert!(res[0].0 && res[1].0, "event and deletion accepted: {res:?}");
    assert!(!res[2].0 && res[2].1.starts_with("blocked:"), "resubmission after deletion in the same burst: {res:?}");
    assert!(c.req_ids("q", &[json!({"ids": [e.id.to_hex()]})]).await.is_empty());
    assert_eq!(c.req_ids("d", &[json!({"kinds": [5], "authors": [pk(&k)]})]).await, vec![del.id.to_hex()]);

    // Addressable event and its `a` deletion in one burst.
    let a = sign(&k, 30573, "addr", &[&["d", "gone"]], Some(t));
    let adel = sign(&k, 5, "", &[&["a", &format!("30573:{}:gone", pk(&k))]], Some(t + 1));
    c.publish_pipelined([&a, &adel]).await;
    assert!(c.req_ids("qa", &[json!({"authors": [pk(&k)], "kinds": [30573]})]).await.is_empty());
}

async fn abrupt_disconnects_release_connection_slots(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "[limits]\nmax_connections_per_ip = 3\n").await;
    let port = relay.port;
    for round in 0..3 {
        // Take every slot. The previous round's check also ended its connections abruptly, so
        // their slots are released only once the relay has seen those sockets close.
        let mut conns = Vec::new();
        for _ in 0..3 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let mut c = loop {
                match Conn::try_connect(port).await {
                    Ok(c) => break c,
                    Err(e) => {
                        assert!(tokio::time::Instant::now() < deadline, "round {round}: no free slot within 5 s: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            };
            c.req("s", &[json!({"limit": 1})]).await;
            conns.push(c);
        }
        // Drop without a close handshake (TCP FIN/RST only).
        drop(conns);
        let ok = eventually(Duration::from_secs(5), || async move {
            // All three slots must be free again.
            let mut v = Vec::new();
            for _ in 0..3 {
                match Conn::try_connect(port).await {
                    Ok(c) => v.push(c),
                    Err(_) => return false,
                }
            }
            true
        })
        .await;
        assert!(ok, "round {round}: connection slots not released after abrupt disconnects");
    }
}

async fn close_unknown_subscription_is_harmless(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    c.close_sub("never-opened").await;
    c.close_sub("never-opened").await;
    let k = Keys::generate();
    let e = dephy(&k, "fine", &[], now());
    c.publish_ok(&e).await;
    let msgs = c.drain(Duration::from_millis(200)).await;
    for m in msgs {
        assert!(m[0] == "NOTICE" || m[0] == "CLOSED", "unexpected reply to CLOSE: {m}");
    }
    assert_eq!(c.req_ids("q", &[json!({"ids": [e.id.to_hex()]})]).await, vec![e.id.to_hex()]);
}

/// Group commit must not make innocent events fail because another event in the same write batch
/// could not be stored. The "poison" here is a NUL character in an indexed tag value (accepted
/// by SQLite; PostgreSQL TEXT cannot hold it).
async fn bad_event_does_not_fail_other_events_in_its_batch(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let port = relay.port;
    let innocent = tokio::spawn(async move {
        let mut c = Conn::connect(port).await;
        let k = Keys::generate();
        let evs: Vec<Event> =
            (0..300).map(|i| dephy(&k, &format!("innocent {i}"), &[&["s", "innocent"]], now())).collect();
        let mut refused = Vec::new();
        for chunk in evs.chunks(30) {
            let refs: Vec<&Event> = chunk.iter().collect();
            for (e, (ok, msg)) in chunk.iter().zip(c.publish_pipelined(refs.iter().copied()).await) {
                if !ok {
                    refused.push((e.id.to_hex(), msg));
                }
            }
        }
        refused
    });
    let mut p = relay.connect().await;
    let k = Keys::generate();
    let mut poison_results = Vec::new();
    for i in 0..20 {
        let e = sign(&k, DEPHY_KIND, &format!("poison {i}"), &[&["z", "a\u{0000}b"]], None);
        p.send_json(&json!(["EVENT", ev_json(&e)])).await;
        let id = e.id.to_hex();
        let v = p.recv_matching("OK poison", |v| v[0] == "OK" && v[1] == json!(id)).await;
        poison_results.push(v[3].as_str().unwrap_or("").to_string());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = innocent.await.unwrap();
    assert!(
        refused.is_empty(),
        "{} valid events from another connection were refused because they shared a write batch with a \
         failing event, e.g. {:?} (the failing events got {:?})",
        refused.len(),
        refused.first(),
        poison_results.first()
    );
    let mut c = relay.connect().await;
    assert_eq!(c.count("n", &[json!({"#s": ["innocent"]})]).await, 300);
}

async fn extreme_since_until(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let old = dephy(&k, "epoch", &[], 0);
    let cur = dephy(&k, "now", &[], now());
    c.publish_ok(&old).await;
    c.publish_ok(&cur).await;
    let a = pk(&k);
    let max = u64::MAX;
    let big = i64::MAX as u64 + 1;
    let mut failures = Vec::new();
    let cases: [(&str, serde_json::Value, Vec<String>); 4] = [
        ("since=u64::MAX", json!({"authors": [a], "since": max}), vec![]),
        ("since=2^63", json!({"authors": [a], "since": big}), vec![]),
        ("until=u64::MAX", json!({"authors": [a], "until": max}), vec![cur.id.to_hex(), old.id.to_hex()]),
        ("until=2^63", json!({"authors": [a], "until": big}), vec![cur.id.to_hex(), old.id.to_hex()]),
    ];
    for (i, (what, filter, want)) in cases.into_iter().enumerate() {
        let r = c.req_result(&format!("x{i}"), &[filter]).await;
        match r.closed {
            None => {
                let got = ids_of(&r.events);
                if got != want {
                    failures.push(format!("{what}: returned {} events, expected {}", got.len(), want.len()));
                }
            }
            Some(m) if m.starts_with("invalid:") => {}
            Some(m) => failures.push(format!("{what}: CLOSED {m:?}")),
        }
    }
    assert!(failures.is_empty(), "out-of-range timestamps in filters: {failures:#?}");
    assert_eq!(c.req_ids("zero", &[json!({"authors": [a], "until": 0})]).await, vec![old.id.to_hex()]);
    assert_eq!(c.req_ids("since0", &[json!({"authors": [a], "since": 0})]).await.len(), 2);
}

async fn malformed_events_answered_ok_false(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let e = dephy(&k, "template", &[], now());
    let id = e.id.to_hex();
    let mut variants = Vec::new();
    let mut j = ev_json(&e);
    j.as_object_mut().unwrap().remove("sig");
    variants.push(("missing sig", j));
    let mut j = ev_json(&e);
    j["kind"] = json!("1573");
    variants.push(("kind as string", j));
    let mut j = ev_json(&e);
    j["tags"] = json!("nope");
    variants.push(("tags not an array", j));
    let mut j = ev_json(&e);
    j["created_at"] = json!(-5);
    variants.push(("negative created_at", j));
    let mut j = ev_json(&e);
    j["pubkey"] = json!("abcd");
    variants.push(("short pubkey", j));
    for (what, j) in variants {
        c.send_json(&json!(["EVENT", j])).await;
        let v = c.recv_json().await;
        if v[0] == "OK" {
            assert_eq!(v[1], json!(id), "{what}: OK for the sent id: {v}");
            assert_eq!(v[2], json!(false), "{what}: accepted: {v}");
            assert!(v[3].as_str().unwrap().starts_with("invalid:"), "{what}: {v}");
        } else {
            panic!("{what}: expected [OK, id, false, \"invalid: ...\"] (the id is readable), got {v}");
        }
    }
    // Not an object at all: NOTICE (no id to answer with).
    c.send_json(&json!(["EVENT", 42])).await;
    let v = c.recv_json().await;
    assert!(v[0] == "NOTICE" || (v[0] == "OK" && v[2] == json!(false)), "EVENT 42: {v}");
    assert_eq!(c.count("n", &[json!({"authors": [pk(&k)]})]).await, 0);
    c.publish_ok(&e).await;
}

/// NIP-01 ids, pubkeys and signatures are lowercase hex. An event sent with uppercase hex must
/// either be refused or be served back in canonical (lowercase) form, so that clients can match
/// it by id.
async fn uppercase_hex_event(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let e = dephy(&k, "shouting", &[], now());
    let mut j = ev_json(&e);
    for f in ["id", "pubkey", "sig"] {
        j[f] = json!(j[f].as_str().unwrap().to_uppercase());
    }
    c.send_json(&json!(["EVENT", j])).await;
    let v = c.recv_matching("OK", |v| v[0] == "OK").await;
    if v[2] == json!(true) {
        let got = c.req("q", &[json!({"ids": [e.id.to_hex()]})]).await;
        assert_eq!(got.len(), 1, "accepted uppercase event not found by its lowercase id");
        assert_eq!(
            got[0]["id"],
            json!(e.id.to_hex()),
            "accepted an uppercase-hex event and serves it with a non-canonical id: {}",
            got[0]
        );
        assert_eq!(got[0]["pubkey"], json!(pk(&k)), "non-canonical pubkey served: {}", got[0]);
    } else {
        assert!(v[3].as_str().unwrap().starts_with("invalid:"), "{v}");
    }
}

/// A deletion request published by someone else BEFORE the target arrives must not block the
/// real author's event (censorship by guessing ids / coordinates).
async fn preemptive_deletion_by_other_author(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let alice = Keys::generate();
    let mallory = Keys::generate();
    let e = dephy(&alice, "future post", &[], now() - 5);
    let coord = format!("30573:{}:board", pk(&alice));
    let del = sign(&mallory, 5, "", &[&["e", &e.id.to_hex()], &["a", &coord]], None);
    c.publish_ok(&del).await;
    c.publish_ok(&e).await;
    let addr = sign(&alice, 30573, "board", &[&["d", "board"]], Some(now() - 5));
    c.publish_ok(&addr).await;
    let got = c.req_ids("q", &[json!({"authors": [pk(&alice)]})]).await;
    assert_eq!(sorted(got), sorted(vec![e.id.to_hex(), addr.id.to_hex()]));
}

/// `created_at` is a u64 in JSON; values above i64::MAX are far in the future and must be
/// refused like any other too-far-future timestamp.
async fn created_at_beyond_i64_refused(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    for ts in [u64::MAX, i64::MAX as u64 + 1] {
        let e = dephy(&k, &format!("from the far future {ts}"), &[], ts);
        let (ok, msg) = c.publish(&e).await;
        assert!(
            !ok && msg.starts_with("invalid:"),
            "created_at={ts} must be refused as too far in the future, got ({ok}, {msg:?})"
        );
    }
    assert_eq!(c.count("n", &[json!({"authors": [pk(&k)]})]).await, 0);
}

/// An expiration far in the future (beyond i64) means "does not expire soon": accepted.
async fn far_future_expiration_accepted(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let e = sign(&k, DEPHY_KIND, "lives long", &[&["expiration", &u64::MAX.to_string()]], None);
    let (ok, msg) = c.publish(&e).await;
    assert!(ok, "expiration={} refused: {msg:?}", u64::MAX);
    assert_eq!(c.req_ids("q", &[json!({"ids": [e.id.to_hex()]})]).await, vec![e.id.to_hex()]);
}

/// COUNT is one-shot: a COUNT with the id of an open REQ subscription must not close it.
async fn count_does_not_replace_subscription(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let mut p = relay.connect().await;
    let k = Keys::generate();
    assert!(c.req("s", &[json!({"authors": [pk(&k)]})]).await.is_empty());
    assert_eq!(c.count("s", &[json!({"authors": [pk(&k)]})]).await, 0);
    let e = dephy(&k, "after count", &[], now());
    p.publish_ok(&e).await;
    assert_eq!(
        c.next_event("s").await["id"],
        json!(e.id.to_hex()),
        "REQ subscription still live after COUNT with its id"
    );
}

/// NIP-09: a deletion request against a deletion request has no effect.
async fn deleting_a_deletion_has_no_effect(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let t = now() - 50;
    let e = dephy(&k, "target", &[], t);
    c.publish_ok(&e).await;
    let del1 = sign(&k, 5, "", &[&["e", &e.id.to_hex()]], Some(t + 1));
    c.publish_ok(&del1).await;
    let del2 = sign(&k, 5, "", &[&["e", &del1.id.to_hex()]], Some(t + 2));
    let _ = c.publish(&del2).await;
    let got = c.req_ids("d", &[json!({"ids": [del1.id.to_hex()]})]).await;
    assert_eq!(got, vec![del1.id.to_hex()], "the first deletion request must remain");
    c.publish_refused(&e, "blocked:").await;
}

async fn fanout_to_many_subscribers(backend: Backend) {
    let (_db, relay) = Relay::start(backend, "").await;
    const SUBS: usize = 40;
    const EVENTS: usize = 20;
    let mut subs = Vec::new();
    for i in 0..SUBS {
        let mut c = relay.connect().await;
        // Half filter by tag, half by kind.
        let f = if i % 2 == 0 { json!({"#s": ["fan"]}) } else { json!({"kinds": [1575]}) };
        assert!(c.req("f", &[f]).await.is_empty());
        subs.push(c);
    }
    let k = Keys::generate();
    let evs: Vec<Event> = (0..EVENTS).map(|i| sign(&k, 1575, &format!("fan {i}"), &[&["s", "fan"]], None)).collect();
    let mut p = relay.connect().await;
    for e in &evs {
        p.publish_ok(e).await;
    }
    let want: Vec<String> = evs.iter().map(|e| e.id.to_hex()).collect();
    let mut handles = Vec::new();
    for (i, mut c) in subs.into_iter().enumerate() {
        let want = want.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..EVENTS {
                got.push(c.next_event("f").await["id"].as_str().unwrap().to_string());
            }
            assert_eq!(got, want, "subscriber {i}");
        }));
    }
    for h in handles {
        h.await.expect("subscriber task");
    }
}

/// nostr-sdk answers `auth-required:` by authenticating (NIP-42) and retrying.
async fn nostr_sdk_auto_auth_for_write(backend: Backend) {
    use nostr_sdk::prelude::*;
    let (_db, relay) = common::Relay::start(backend, "[auth]\nrequired_for_write = true\n").await;
    let keys = Keys::generate();
    let client = Client::new(keys.clone());
    client.add_relay(relay.url()).await.expect("add_relay");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    let event = EventBuilder::new(Kind::Custom(1573), "sdk with auth").sign_with_keys(&keys).unwrap();
    let out = client.send_event(&event).await.expect("send_event");
    assert_eq!(out.success.len(), 1, "nostr-sdk could not publish to an auth-required relay: {:?}", out.failed);
    let got = client.fetch_events(Filter::new().id(event.id), Duration::from_secs(5)).await.expect("fetch_events");
    assert!(got.contains(&event));
    client.disconnect().await;
}

/// Events with as many indexed tags as the configuration allows are stored and queryable, one
/// at a time and several in one burst (group commit).
async fn many_indexed_tags_per_event(backend: Backend) {
    let cfg = "[limits]\nmax_event_tags = 20000\nmax_event_bytes = 1000000\nmax_message_bytes = 2000000\n";
    let (_db, relay) = Relay::start(backend, cfg).await;
    let mut c = relay.connect().await;
    let k = Keys::generate();
    let values: Vec<String> = (0..20000).map(|i| format!("{i}")).collect();
    let tag_arrays: Vec<[&str; 2]> = values.iter().map(|v| ["t", v.as_str()]).collect();
    let tags: Vec<&[&str]> = tag_arrays.iter().map(|t| &t[..]).collect();
    let big = dephy(&k, "20000 tags", &tags, now() - 10);
    c.timeout = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let (ok, msg) = c.publish(&big).await;
    eprintln!("20000-tag event answered in {:?}", started.elapsed());
    assert!(ok && msg.is_empty(), "event with 20000 indexed tags (max_event_tags = 20000): ({ok}, {msg:?})");
    assert_eq!(c.req_ids("q", &[json!({"#t": ["19999"]})]).await, vec![big.id.to_hex()]);

    // A burst of events with 2000 tags each (the default maximum).
    let evs: Vec<Event> = (0..20)
        .map(|n| {
            let vals: Vec<String> = (0..2000).map(|i| format!("b{n}-{i}")).collect();
            let arr: Vec<[&str; 2]> = vals.iter().map(|v| ["t", v.as_str()]).collect();
            let tags: Vec<&[&str]> = arr.iter().map(|t| &t[..]).collect();
            dephy(&k, &format!("burst {n}"), &tags, now() - 5)
        })
        .collect();
    let refs: Vec<&Event> = evs.iter().collect();
    let started = std::time::Instant::now();
    let res = c.publish_pipelined(refs.iter().copied()).await;
    eprintln!("burst of 20 x 2000 tags answered in {:?}", started.elapsed());
    for (i, (ok, msg)) in res.into_iter().enumerate() {
        assert!(ok && msg.is_empty(), "burst event {i} with 2000 tags: ({ok}, {msg:?})");
    }
    assert_eq!(c.req_ids("q2", &[json!({"#t": ["b19-1999"]})]).await, vec![evs[19].id.to_hex()]);
}
