//! Several relay processes on ONE PostgreSQL database: cross-process live delivery (LISTEN /
//! NOTIFY), shared storage, concurrent writes without errors, no duplicate delivery.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use nostr::prelude::*;
use serde_json::json;

async fn two_relays() -> (TestDb, Relay, Relay) {
    let db = TestDb::new(Backend::Postgres).await;
    let a = Relay::spawn(&db, "a", "").await;
    let b = Relay::spawn(&db, "b", "").await;
    (db, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_process_live_delivery_and_reads() {
    let (_db, a, b) = two_relays().await;
    let k = Keys::generate();
    let mut sub_b = b.connect().await;
    let mut sub_a = a.connect().await;
    assert!(sub_b.req("live", &[json!({"#s": ["mp"]})]).await.is_empty());
    assert!(sub_a.req("live", &[json!({"#s": ["mp"]})]).await.is_empty());

    // Published to A, delivered live on B (and on A).
    let mut pub_a = a.connect().await;
    let e1 = dephy(&k, "from A", &[&["s", "mp"]], now());
    pub_a.publish_ok(&e1).await;
    assert_same_event(&sub_b.next_event("live").await, &e1);
    assert_same_event(&sub_a.next_event("live").await, &e1);

    // Published to B, delivered live on A (and on B).
    let mut pub_b = b.connect().await;
    let e2 = dephy(&k, "from B", &[&["s", "mp"]], now());
    pub_b.publish_ok(&e2).await;
    assert_same_event(&sub_a.next_event("live").await, &e2);
    assert_same_event(&sub_b.next_event("live").await, &e2);

    // No duplicate delivery (local + NOTIFY): a marker is the next event on both.
    let marker = dephy(&k, "marker", &[&["s", "mp"]], now());
    pub_a.publish_ok(&marker).await;
    assert_eq!(sub_a.next_event("live").await["id"], json!(marker.id.to_hex()), "duplicate delivery on A");
    assert_eq!(sub_b.next_event("live").await["id"], json!(marker.id.to_hex()), "duplicate delivery on B");
    sub_a.expect_silence(Duration::from_millis(300)).await;
    sub_b.expect_silence(Duration::from_millis(300)).await;

    // Stored events are visible from both processes.
    let mut q = b.connect().await;
    let got = q.req_ids("q", &[json!({"ids": [e1.id.to_hex()]})]).await;
    assert_eq!(got, vec![e1.id.to_hex()], "REQ on B returns the event accepted by A");
    let mut q = a.connect().await;
    let got = q.req_ids("q", &[json!({"authors": [pk(&k)]})]).await;
    assert_eq!(got.len(), 3);

    // Duplicate across processes.
    let (ok, msg) = pub_b.publish(&e1).await;
    assert!(ok && msg.starts_with("duplicate:"), "e1 resubmitted to B: ({ok}, {msg:?})");

    // Ephemeral events cross processes too, and are not stored.
    let eph = sign(&k, 20573, "ephemeral", &[&["s", "mp"]], None);
    pub_b.publish_ok(&eph).await;
    assert_eq!(sub_a.next_event("live").await["id"], json!(eph.id.to_hex()));
    assert_eq!(sub_b.next_event("live").await["id"], json!(eph.id.to_hex()));
    assert!(q.req("eph", &[json!({"ids": [eph.id.to_hex()]})]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_two_processes() {
    let (_db, a, b) = two_relays().await;
    const PER: usize = 150;
    let mut sub = b.connect().await;
    assert!(sub.req("all", &[json!({"#s": ["concurrent"]})]).await.is_empty());

    async fn write(port: u16, tag: &'static str) -> Vec<String> {
        let mut c = Conn::connect(port).await;
        let k = Keys::generate();
        let mut ids = Vec::new();
        let events: Vec<Event> =
            (0..PER).map(|i| sign(&k, DEPHY_KIND, &format!("{tag}{i}"), &[&["s", "concurrent"]], None)).collect();
        for chunk in events.chunks(25) {
            for e in chunk {
                c.send_json(&json!(["EVENT", ev_json(e)])).await;
            }
            for e in chunk {
                let id = e.id.to_hex();
                let v = c.recv_matching("OK", |v| v[0] == "OK" && v[1] == json!(id)).await;
                assert_eq!(v[2], json!(true), "{tag}: event refused: {v}");
                assert_eq!(v[3], json!(""), "{tag}: unexpected message: {v}");
                ids.push(e.id.to_hex());
            }
        }
        ids
    }
    let (ra, rb) = tokio::join!(tokio::spawn(write(a.port, "a")), tokio::spawn(write(b.port, "b")));
    let mut all: Vec<String> = ra.unwrap();
    all.extend(rb.unwrap());

    // The live subscriber on B receives all 2*PER exactly once.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < all.len() && Instant::now() < deadline {
        let e = sub.next_event("all").await;
        *seen.entry(e["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let extra = sub.drain(Duration::from_millis(500)).await;
    for v in extra {
        if v[0] == "EVENT" {
            *seen.entry(v[2]["id"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let want: HashSet<String> = all.iter().cloned().collect();
    let got: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(got, want, "live delivery on B of everything written to A and B");
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "events delivered more than once: {dups:?}");

    // Both processes see everything.
    for r in [&a, &b] {
        let mut c = r.connect().await;
        assert_eq!(c.count("n", &[json!({"#s": ["concurrent"]})]).await as usize, 2 * PER);
        let got: HashSet<String> =
            c.req_ids("q", &[json!({"#s": ["concurrent"], "limit": 2 * PER})]).await.into_iter().collect();
        assert_eq!(got, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_event_and_replaceable_races_across_processes() {
    let (_db, a, b) = two_relays().await;
    let mut ca = a.connect().await;
    let mut cb = b.connect().await;
    for round in 0..10 {
        // The same event to both at once: both OK true, one copy stored.
        let k = Keys::generate();
        let e = dephy(&k, &format!("race {round}"), &[], now());
        let (ra, rb) = tokio::join!(ca.publish(&e), cb.publish(&e));
        assert!(ra.0 && rb.0, "round {round}: same event to A and B: {ra:?} {rb:?}");
        for (_, m) in [&ra, &rb] {
            assert!(m.is_empty() || m.starts_with("duplicate:"), "round {round}: message {m:?}");
        }
        assert!(ra.1.is_empty() || rb.1.is_empty(), "round {round}: one of them is the first: {ra:?} {rb:?}");
        assert_eq!(ca.count("n", &[json!({"ids": [e.id.to_hex()]})]).await, 1);

        // Two versions of a replaceable event at once: exactly the newest survives.
        let t = now() - 100;
        let old = sign(&k, 10573, "old", &[], Some(t));
        let new = sign(&k, 10573, "new", &[], Some(t + 1));
        let (ra, rb) = tokio::join!(ca.publish(&old), cb.publish(&new));
        assert!(rb.0, "round {round}: newest replaceable refused: {rb:?}");
        let _ = ra;
        for c in [&mut ca, &mut cb] {
            let got = c.req_ids(&format!("r{round}"), &[json!({"authors": [pk(&k)], "kinds": [10573]})]).await;
            c.close_sub(&format!("r{round}")).await;
            assert_eq!(got, vec![new.id.to_hex()], "round {round}: exactly the newest version");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_on_one_process_applies_to_the_other() {
    let (_db, a, b) = two_relays().await;
    let mut ca = a.connect().await;
    let mut cb = b.connect().await;
    let k = Keys::generate();
    let e = dephy(&k, "to delete", &[], now() - 10);
    ca.publish_ok(&e).await;
    assert_eq!(cb.req_ids("q", &[json!({"ids": [e.id.to_hex()]})]).await, vec![e.id.to_hex()]);
    let del = sign(&k, 5, "", &[&["e", &e.id.to_hex()]], None);
    cb.publish_ok(&del).await;
    assert!(ca.req_ids("q", &[json!({"ids": [e.id.to_hex()]})]).await.is_empty(), "deleted via B, still on A");
    ca.publish_refused(&e, "blocked:").await;
}

/// PostgreSQL NOTIFY payloads are limited to 8000 bytes: large events (stored and ephemeral)
/// must still reach subscribers of the other process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_cross_processes() {
    let (_db, a, b) = two_relays().await;
    let mut sub_b = b.connect().await;
    assert!(sub_b.req("big", &[json!({"#s": ["big"]})]).await.is_empty());
    let mut pub_a = a.connect().await;
    let k = Keys::generate();
    let stored = dephy(&k, &"s".repeat(50_000), &[&["s", "big"]], now());
    pub_a.publish_ok(&stored).await;
    assert_same_event(&sub_b.next_event("big").await, &stored);
    let many_tags: Vec<[String; 2]> =
        (0..500).map(|i| ["t".to_string(), format!("tag-{i:04}-{}", "x".repeat(20))]).collect();
    let tag_refs: Vec<[&str; 2]> = many_tags.iter().map(|[a, b]| [a.as_str(), b.as_str()]).collect();
    let mut slices: Vec<&[&str]> = tag_refs.iter().map(|t| &t[..]).collect();
    slices.push(&["s", "big"]);
    let tagged = dephy(&k, "many tags", &slices, now());
    pub_a.publish_ok(&tagged).await;
    assert_same_event(&sub_b.next_event("big").await, &tagged);

    // Ephemeral events are not stored, so they must travel some other way than a seq range.
    let small_eph = sign(&k, 20573, "small ephemeral", &[&["s", "big"]], None);
    pub_a.publish_ok(&small_eph).await;
    assert_same_event(&sub_b.next_event("big").await, &small_eph);
    let eph = sign(&k, 20573, &"e".repeat(50_000), &[&["s", "big"]], None);
    pub_a.publish_ok(&eph).await;
    let marker = sign(&k, 20573, "marker after the large ephemeral", &[&["s", "big"]], None);
    pub_a.publish_ok(&marker).await;
    let got = sub_b.next_event("big").await;
    assert_eq!(
        got["id"],
        json!(eph.id.to_hex()),
        "a 50 kB ephemeral event accepted by A (OK true) never reached the live subscriber on B; \
         the next event there was {}",
        if got["id"] == json!(marker.id.to_hex()) {
            "the small marker published after it".to_string()
        } else {
            got.to_string()
        }
    );
    assert_same_event(&got, &eph);
}

/// If the database drops the relays' connections (e.g. a PostgreSQL restart or failover),
/// cross-process delivery resumes once they reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_process_delivery_survives_connection_loss() {
    let (db, a, b) = two_relays().await;
    let mut sub_b = b.connect().await;
    assert!(sub_b.req("live", &[json!({"#s": ["reconnect"]})]).await.is_empty());
    let mut pub_a = a.connect().await;
    let k = Keys::generate();
    let first = dephy(&k, "before", &[&["s", "reconnect"]], now());
    pub_a.publish_ok(&first).await;
    assert_eq!(sub_b.next_event("live").await["id"], json!(first.id.to_hex()));

    // Kill every backend connected to the test database.
    {
        use sqlx::Connection as _;
        let name = &db.pg.as_ref().unwrap().name;
        let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
        let sql = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut admin).await.unwrap();
        assert!(n >= 2, "expected the relays' connections to be terminated, got {n}");
        let _ = admin.close().await;
    }

    // Keep publishing on A (accepting may fail briefly); one of them must reach B live.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut published = Vec::new();
    let mut delivered = None;
    while std::time::Instant::now() < deadline && delivered.is_none() {
        let e = dephy(&k, &format!("after {}", published.len()), &[&["s", "reconnect"]], now());
        let (ok, _msg) = pub_a.publish(&e).await;
        if ok {
            published.push(e.id.to_hex());
        }
        if let Some(v) = sub_b.try_recv(Duration::from_millis(500)).await
            && v[0] == "EVENT"
            && v[1] == "live"
        {
            delivered = Some(v[2]["id"].as_str().unwrap().to_string());
        }
    }
    let delivered =
        delivered.expect("no cross-process delivery within 15 s after the database dropped the connections");
    assert!(published.contains(&delivered));
    // Both relays serve reads again.
    let mut q = b.connect().await;
    assert_eq!(q.count("n", &[json!({"#s": ["reconnect"]})]).await as usize, published.len() + 1);
}

/// `pg_stat_activity` row of relay `r`'s LISTEN connection once it is idle after its LISTEN and
/// is not one of `killed`; waits for it (bounded).
async fn listening_backend(admin: &mut sqlx::PgConnection, db: &str, r: &Relay, killed: &HashSet<i32>) -> i32 {
    let app = format!("dephy-relay listener {}", r.pid());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 \
             AND state = 'idle' AND query LIKE 'LISTEN %'",
        )
        .bind(db)
        .bind(&app)
        .fetch_all(&mut *admin)
        .await
        .unwrap();
        if let Some(pid) = pids.into_iter().find(|p| !killed.contains(p)) {
            return pid;
        }
        assert!(Instant::now() < deadline, "relay {} has no LISTEN connection ({app}) within 30 s", r.port);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Terminates backend `pid` and waits (bounded) until it is gone.
async fn terminate_backend(admin: &mut sqlx::PgConnection, pid: i32) {
    let done: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&mut *admin).await.unwrap();
    assert!(done, "backend {pid} could not be terminated");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alive: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
            .bind(pid)
            .fetch_one(&mut *admin)
            .await
            .unwrap();
        if !alive {
            return;
        }
        assert!(Instant::now() < deadline, "backend {pid} still alive 30 s after pg_terminate_backend");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Live events for `sub` until every event of `stops` has arrived (those excluded); any other
/// message fails.
async fn live_until(c: &mut Conn, sub: &str, stops: &[&str]) -> Vec<String> {
    let mut got = Vec::new();
    let mut left: HashSet<&str> = stops.iter().copied().collect();
    while !left.is_empty() {
        let v = c.recv_json().await;
        assert!(v[0] == "EVENT" && v[1] == sub, "unexpected message while collecting live events: {v}");
        let id = v[2]["id"].as_str().unwrap().to_string();
        if !left.remove(id.as_str()) {
            got.push(id);
        }
    }
    got
}

/// The deterministic form of "no gap while the listener reconnects": A's LISTEN connection is
/// terminated 20 times, each time after checking it is back and listening, while B accepts
/// 2,000 events (half of each round in flight when the kill lands, half sent after the backend
/// is gone) and A a few of its own in between (so each process's tail must skip its own rows
/// amid the other's). Both subscribers must get every event exactly once, each process's events
/// in arrival order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_terminated_20_times_under_load_misses_and_repeats_nothing() {
    use sqlx::Connection as _;
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 100;
    const PER_ROUND_ON_A: usize = 10;
    let (db, a, b) = two_relays().await;
    let name = db.pg.as_ref().unwrap().name.clone();
    let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
    let filter = [json!({"#s": ["storm"]})];
    let (mut sub_a, mut sub_b) = (a.connect().await, b.connect().await);
    assert!(sub_a.req("live", &filter).await.is_empty());
    assert!(sub_b.req("live", &filter).await.is_empty());
    let (mut pub_a, mut pub_b) = (a.connect().await, b.connect().await);
    let k = Keys::generate();

    let mut killed = HashSet::new();
    let (mut published_a, mut published_b) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let pid = listening_backend(&mut admin, &name, &a, &killed).await;
        let events: Vec<Event> =
            (0..PER_ROUND).map(|i| dephy(&k, &format!("storm {round}/{i}"), &[&["s", "storm"]], now())).collect();
        let on_a: Vec<Event> =
            (0..PER_ROUND_ON_A).map(|i| dephy(&k, &format!("on A {round}/{i}"), &[&["s", "storm"]], now())).collect();
        let (in_flight, after) = events.split_at(PER_ROUND / 2);
        for (i, e) in in_flight.iter().enumerate() {
            pub_b.send_json(&json!(["EVENT", ev_json(e)])).await;
            if let Some(e) = on_a.get(i) {
                pub_a.send_json(&json!(["EVENT", ev_json(e)])).await;
            }
        }
        terminate_backend(&mut admin, pid).await;
        killed.insert(pid);
        for e in after {
            pub_b.send_json(&json!(["EVENT", ev_json(e)])).await;
        }
        for (c, evs, out) in [(&mut pub_b, &events, &mut published_b), (&mut pub_a, &on_a, &mut published_a)] {
            for e in evs {
                let id = e.id.to_hex();
                let v = c.recv_matching("OK", |v| v[0] == "OK" && v[1] == json!(id)).await;
                assert_eq!((&v[2], &v[3]), (&json!(true), &json!("")), "round {round}: event refused: {v}");
                out.push(id);
            }
        }
    }
    assert_eq!(killed.len(), ROUNDS);

    // Each marker follows, in its process's order, everything that process accepted before it;
    // once both arrived, any missed or repeated event would have shown up.
    let marker_b = dephy(&k, "marker from B", &[&["s", "storm"]], now());
    pub_b.publish_ok(&marker_b).await;
    let marker_a = dephy(&k, "marker from A", &[&["s", "storm"]], now());
    pub_a.publish_ok(&marker_a).await;
    let markers = [marker_a.id.to_hex(), marker_b.id.to_hex()];
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
    let got_a = live_until(&mut sub_a, "live", &markers).await;
    let got_b = live_until(&mut sub_b, "live", &markers).await;

    // The arrival order, from the database.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let order: Vec<String> =
        sqlx::query_scalar("SELECT encode(id, 'hex') FROM events ORDER BY seq").fetch_all(&mut conn).await.unwrap();
    let in_order = |published: &[String]| -> Vec<String> {
        let set: HashSet<&String> = published.iter().collect();
        order.iter().filter(|id| set.contains(id)).cloned().collect()
    };
    let (order_a, order_b) = (in_order(&published_a), in_order(&published_b));
    assert_eq!((order_a.len(), order_b.len()), (ROUNDS * PER_ROUND_ON_A, ROUNDS * PER_ROUND));

    for (who, got) in [("A", &got_a), ("B", &got_b)] {
        let mut count: HashMap<&String, usize> = HashMap::new();
        for id in got.iter() {
            *count.entry(id).or_default() += 1;
        }
        let missing = order_a.iter().chain(&order_b).filter(|id| !count.contains_key(id)).count();
        let repeated = count.values().filter(|n| **n > 1).count();
        assert_eq!(
            (missing, repeated),
            (0, 0),
            "live subscriber on {who}: {missing} of {} events missing, {repeated} delivered more than once",
            order_a.len() + order_b.len()
        );
        for (from, want) in [("A", &order_a), ("B", &order_b)] {
            let set: HashSet<&String> = want.iter().collect();
            let seen: Vec<&String> = got.iter().filter(|id| set.contains(id)).collect();
            assert!(
                seen.iter().copied().eq(want.iter()),
                "live subscriber on {who}: events accepted by {from} not in arrival order"
            );
        }
    }

    // Every kill was noticed and recovered from by A. The last reconnection is counted once
    // LISTEN is re-issued; A's polling may have delivered the markers before that.
    let reconnects = || async {
        let metrics = http_get(a.port, "/metrics", &[]).await.expect("http").text();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("relay_pg_listener_reconnects_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let recovered = eventually(Duration::from_secs(10), || async { reconnects().await >= ROUNDS as f64 }).await;
    assert!(recovered, "A counted {} listener reconnects for {ROUNDS} terminations", reconnects().await);
}

async fn publish_all(c: &mut Conn, evs: &[Event]) {
    for e in evs {
        c.publish_ok(e).await;
    }
}

/// Two processes appending concurrently build ONE log: contiguous leaf indexes, arrival
/// sequence increasing with the index, every event exactly once, and both processes serve the
/// same proofs, which verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_log_across_processes() {
    let (_db, a, b) = two_relays().await;
    let k = Keys::generate();
    let evs: Vec<Event> =
        (0..200).map(|i| dephy(&k, &format!("log {i}"), &[&["s", "mplog"]], now() - 300 + i)).collect();
    let (mut ca, mut cb) = (a.connect().await, b.connect().await);
    let (first, second) = evs.split_at(100);
    tokio::join!(publish_all(&mut ca, first), publish_all(&mut cb, second));

    let entries = http_get(a.port, "/log/entries?start=0&end=1000", &[]).await.expect("http").json();
    let entries = entries["entries"].as_array().expect("entries").clone();
    assert_eq!(entries.len(), 200, "one leaf per event");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["index"].as_u64(), Some(i as u64), "contiguous leaf indexes");
    }
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "arrival sequence increases with the leaf index");
    let ids: HashSet<&str> = entries.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    let want: HashSet<String> = evs.iter().map(|e| e.id.to_hex()).collect();
    assert_eq!(ids, want.iter().map(String::as_str).collect::<HashSet<_>>(), "every event exactly once");

    for e in [&evs[0], &evs[150]] {
        let path = format!("/log/proof/inclusion?id={}&tree_size=200", e.id.to_hex());
        let pa = http_get(a.port, &path, &[]).await.expect("http").json();
        let pb = http_get(b.port, &path, &[]).await.expect("http").json();
        assert_eq!(pa, pb, "both processes serve the same proof");
        let hash = |v: &serde_json::Value| {
            let mut h = [0u8; 32];
            hex::decode_to_slice(v.as_str().unwrap(), &mut h).unwrap();
            h
        };
        let path: Vec<[u8; 32]> = pa["audit_path"].as_array().unwrap().iter().map(hash).collect();
        dephy_log::verify_inclusion(
            &hash(&pa["leaf_hash"]),
            pa["leaf_index"].as_u64().unwrap(),
            200,
            &path,
            &hash(&pa["root_hash"]),
        )
        .expect("proof verifies");
    }
}

/// Only one of the processes on a database signs checkpoints, so an auditor sees one key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkpoint_signer_across_processes() {
    let db = TestDb::new(Backend::Postgres).await;
    let cfg = "[log]\ncheckpoint_interval_secs = 1\n";
    let a = Relay::spawn(&db, "a", cfg).await;
    let b = Relay::spawn(&db, "b", cfg).await;
    let k = Keys::generate();
    let (mut ca, mut cb) = (a.connect().await, b.connect().await);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    let checkpoints = loop {
        round += 1;
        ca.publish_ok(&dephy(&k, &format!("a{round}"), &[], now())).await;
        cb.publish_ok(&dephy(&k, &format!("b{round}"), &[], now())).await;
        let body = http_get(a.port, "/log/checkpoints?from=0&limit=100", &[]).await.expect("http").json();
        let list = body["checkpoints"].as_array().cloned().unwrap_or_default();
        if list.len() >= 3 {
            break list;
        }
        assert!(Instant::now() < deadline, "fewer than 3 checkpoints within 20 s: {body}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    };
    let signers: HashSet<&str> = checkpoints.iter().map(|c| c["event"]["pubkey"].as_str().unwrap()).collect();
    assert_eq!(signers.len(), 1, "checkpoints signed by one process only: {signers:?}");
    let sizes: Vec<u64> = checkpoints.iter().map(|c| c["tree_size"].as_u64().unwrap()).collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "one checkpoint per tree size: {sizes:?}");
}
