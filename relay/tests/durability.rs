//! Durability: every event acknowledged with `OK true` survives SIGKILL and SIGTERM; graceful
//! shutdown exits 0 promptly; `migrate` is idempotent. Both backends.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use nostr::prelude::*;
use serde_json::{Value, json};

backend_tests!(
    acked_events_survive_sigkill,
    acked_events_survive_sigterm_under_load,
    sigterm_with_idle_connections_exits_zero,
    migrate_is_idempotent,
    sigterm_with_stuck_reader_exits,
);

const WRITERS: usize = 4;
const BATCH: usize = 25;
/// Upper bound on events per writer, so the test stays bounded even on a fast machine.
const MAX_PER_WRITER: usize = 4000;

/// Publishes batches of pipelined events until the connection dies (or the cap); returns the ids
/// acknowledged with OK true.
async fn writer(port: u16, w: usize) -> Vec<String> {
    let mut conn = match Conn::try_connect(port).await {
        Ok(c) => c,
        Err(_) => return Vec::new(),
    };
    let keys = Keys::generate();
    let mut acked = Vec::new();
    let mut n = 0usize;
    'outer: while n < MAX_PER_WRITER {
        let batch: Vec<Event> = (0..BATCH)
            .map(|i| sign(&keys, DEPHY_KIND, &format!("w{w}-{}", n + i), &[&["s", "durability"]], None))
            .collect();
        n += BATCH;
        let mut waiting: HashSet<String> = batch.iter().map(|e| e.id.to_hex()).collect();
        for e in &batch {
            if conn.try_send_text(json!(["EVENT", ev_json(e)]).to_string()).await.is_err() {
                break;
            }
        }
        while !waiting.is_empty() {
            match conn.try_recv(Duration::from_secs(5)).await {
                Some(v) if v[0] == "OK" => {
                    let id = v[1].as_str().unwrap_or("").to_string();
                    if waiting.remove(&id) && v[2] == json!(true) {
                        acked.push(id);
                    }
                }
                Some(_) => {}
                None => break 'outer,
            }
        }
    }
    acked
}

async fn run_writers(port: u16) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..WRITERS).map(|w| tokio::spawn(writer(port, w))).collect()
}

/// Asserts that every id in `acked` is stored (REQ by ids, in chunks).
async fn assert_all_present(relay: &Relay, acked: &[String]) {
    let mut c = relay.connect().await;
    let mut missing = Vec::new();
    for (i, chunk) in acked.chunks(200).enumerate() {
        let sub = format!("chk{i}");
        let got: HashSet<String> =
            c.req_ids(&sub, &[json!({"ids": chunk, "limit": chunk.len()})]).await.into_iter().collect();
        // One subscription at a time: past 64 open ones the relay refuses more (`max_subscriptions`),
        // and more than 64 chunks are acknowledged when the writers get over 12,800 events in.
        c.close_sub(&sub).await;
        for id in chunk {
            if !got.contains(id) {
                missing.push(id.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    let total = c.count("total", &[json!({"#s": ["durability"]})]).await;
    assert!(total as usize >= acked.len(), "COUNT {total} < acknowledged {}", acked.len());
}

async fn acked_events_survive_sigkill(backend: Backend) {
    let (db, mut relay) = Relay::start(backend, "").await;
    let handles = run_writers(relay.port).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    relay.kill(); // SIGKILL mid-load
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.expect("writer task"));
    }
    assert!(!acked.is_empty(), "no event was acknowledged before the kill");
    eprintln!("{} events acknowledged before SIGKILL", acked.len());
    relay.restart(&db).await;
    assert_all_present(&relay, &acked).await;
    // Still writable after recovery.
    let mut c = relay.connect().await;
    c.publish_ok(&sign(&Keys::generate(), DEPHY_KIND, "after recovery", &[], None)).await;
}

async fn acked_events_survive_sigterm_under_load(backend: Backend) {
    let (db, mut relay) = Relay::start(backend, "").await;
    let handles = run_writers(relay.port).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let status = relay.terminate(Duration::from_secs(15)).await;
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.expect("writer task"));
    }
    let status = status.expect("relay did not exit within 15 s of SIGTERM under load");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert!(!acked.is_empty());
    relay.restart(&db).await;
    assert_all_present(&relay, &acked).await;
}

async fn sigterm_with_idle_connections_exits_zero(backend: Backend) {
    let (db, mut relay) = Relay::start(backend, "").await;
    let k = Keys::generate();
    let mut c = relay.connect().await;
    let mut evs = Vec::new();
    for i in 0..10 {
        let e = dephy(&k, &format!("{i}"), &[&["s", "durability"]], now() - 10 + i);
        c.publish_ok(&e).await;
        evs.push(e);
    }
    // Open connections with live subscriptions, plus one that never says anything.
    c.req("live", &[json!({"authors": [pk(&k)], "limit": 0})]).await;
    let _idle = relay.connect().await;
    let started = Instant::now();
    let status = relay.terminate(Duration::from_secs(10)).await;
    let status = status.expect("relay did not exit within 10 s of SIGTERM with open connections");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    eprintln!("graceful shutdown took {:?}", started.elapsed());
    // The open connection is closed by the server.
    let drained = c.drain(Duration::from_secs(2)).await;
    for v in &drained {
        assert!(v[0] == "NOTICE" || v[0] == "CLOSED", "unexpected message during shutdown: {v}");
    }
    assert!(c.closed, "client connection not closed after relay exit");

    relay.restart(&db).await;
    let mut c = relay.connect().await;
    let got = c.req_ids("q", &[json!({"authors": [pk(&k)]})]).await;
    let refs: Vec<&Event> = evs.iter().collect();
    assert_eq!(got, expected_order(&refs), "all events present after graceful restart");
}

async fn migrate_is_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.migrate();
    db.migrate();
    let relay = Relay::spawn(&db, "m", "").await;
    let mut c = relay.connect().await;
    let e = sign(&Keys::generate(), DEPHY_KIND, "migrated", &[], None);
    c.publish_ok(&e).await;
    drop(c);
    drop(relay);
    // Migrating an in-use, populated database again is harmless.
    db.migrate();
    let relay = Relay::spawn(&db, "m", "").await;
    let mut c = relay.connect().await;
    assert_eq!(c.req_ids("q", &[json!({"ids": [e.id.to_hex()]})]).await, vec![e.id.to_hex()]);
}

/// A client that stopped reading (its socket buffers are full) must not block graceful shutdown.
async fn sigterm_with_stuck_reader_exits(backend: Backend) {
    let cfg = "[limits]\nmax_content_bytes = 100000\nmax_event_bytes = 200000\nmax_message_bytes = 300000\n";
    let (_db, mut relay) = Relay::start(backend, cfg).await;
    let mut stuck = slow_conn(relay.port).await;
    assert!(stuck.req("flood", &[json!({"kinds": [20573]})]).await.is_empty());
    let mut p = relay.connect().await;
    let k = Keys::generate();
    let payload = "p".repeat(60_000);
    // Enough to fill the stuck client's socket buffers but not necessarily its outbound queue.
    for i in 0..60 {
        let e = sign(&k, 20573, &format!("{i}:{payload}"), &[], None);
        p.publish_ok(&e).await;
    }
    let started = Instant::now();
    let status = relay.terminate(Duration::from_secs(20)).await;
    eprintln!("exit after SIGTERM took {:?}: {status:?}", started.elapsed());
    let status = status.expect(
        "relay did not exit within 20 s of SIGTERM while a client was not reading \
         (observed: ~15 s connection drain + 30 s 'writer did not finish in time' = ~50 s)",
    );
    assert!(status.success(), "exit status: {status:?}");
    drop(stuck);
}

/// An idle relay gives its WAL's disk space back even when writes stop with the WAL over the
/// restart size (`store.wal_restart_bytes`, 8 KiB here, so every commit leaves it over): the
/// checkpointer once rewound such a WAL at every tick (a rewound WAL reports its old frames
/// until the next commit) and never truncated it, leaving hundreds of MB behind a burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_wal_is_truncated_when_writes_stop_over_the_restart_size() {
    let cfg = "[store]\nwal_restart_bytes = 8192\n[log]\ncheckpoint_interval_secs = 0\ncheckpoint_every_events = 0\n";
    let (db, mut relay) = Relay::start(Backend::Sqlite, cfg).await;
    let wal = db.dir.path().join("relay-test.db-wal");
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let author = Keys::generate();
    let mut c = relay.connect().await;
    for i in 0..40 {
        c.publish_ok(&dephy(&author, &format!("burst {i}"), &[&["s", "wal"]], now())).await;
    }
    let written = wal_len();
    // The checkpointer ticks every 2 s; an idle WAL is truncated within two ticks.
    let deadline = Instant::now() + Duration::from_secs(30);
    while wal_len() > 0 {
        assert!(
            Instant::now() < deadline,
            "the WAL of an idle relay is still {} bytes 30 s after the last write ({written} bytes then)",
            wal_len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The events are all still there.
    assert_eq!(c.req_ids("all", &[json!({"#s": ["wal"]})]).await.len(), 40);
    let status = relay.terminate(Duration::from_secs(10)).await.expect("the relay exits");
    assert!(status.success(), "exit status: {status:?}");
}

/// A WAL restart size of 0 is refused at start, naming the key and the range.
#[test]
fn zero_wal_restart_size_is_refused_at_start() {
    let stderr = serve_refuses_config("[store]\nwal_restart_bytes = 0\n");
    assert!(stderr.contains("store.wal_restart_bytes = 0 is out of range: set 1 to"), "{stderr}");
}

#[allow(dead_code)]
fn _v(_: Value) {}
