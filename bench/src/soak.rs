//! `soak`: a long mixed run against a live relay, to find leaks and stuck states rather than
//! peak speed. For `--duration-secs` it runs, all at once:
//!
//! - publishers at `--rate` events/s in total (DePHY kind 1573, one soak session);
//! - live subscribers to that session, which must receive every accepted event exactly once;
//! - clients asking REQs of several shapes and timing them;
//! - slow readers that send a large REQ and never read (up to `--slow-readers` at a time,
//!   replaced every few seconds);
//! - reconnect storms: `--storm` connections opened and dropped abruptly every 10 s;
//! - oversized frames (just above the relay's default message limit), which must be answered
//!   with a NOTICE or a close, never crash anything.
//!
//! Every `--sample-secs` it prints the relay's resident memory, open files and the counters so
//! far; at the end a summary with the peaks and the live-delivery check. Not part of CI.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::*;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Footprint, RelayMessage};
use crate::proc_status::{Memory, mib};
use crate::stats::{Percentiles, round3};
use crate::{events, summary};

/// Longest silence tolerated by a client that expects an answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long to run, seconds.
    #[arg(long, default_value_t = 1800)]
    duration_secs: u64,
    /// Events published per second, in total.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Publishing connections.
    #[arg(long, default_value_t = 4, value_parser = crate::at_least_one)]
    publishers: usize,
    /// Live subscribers to the soak session.
    #[arg(long, default_value_t = 20)]
    subscribers: usize,
    /// Connections asking REQs one after another.
    #[arg(long, default_value_t = 4)]
    readers: usize,
    /// Slow readers (large REQ, never read) open at a time.
    #[arg(long, default_value_t = 20)]
    slow_readers: usize,
    /// Connections opened and dropped abruptly every 10 s.
    #[arg(long, default_value_t = 200)]
    storm: usize,
    /// Bytes of an oversized frame (above the relay's max_message_bytes, 262144 by default).
    #[arg(long, default_value_t = 300_000)]
    oversized_bytes: usize,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    sample_secs: u64,
    /// Process id of the relay, to sample its memory and open files (e.g. `$(pgrep dephy-relay)`).
    #[arg(long)]
    relay_pid: Option<u32>,
}

/// Counters shared by every activity.
#[derive(Default)]
struct Counters {
    published: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    publish_errors: AtomicU64,
    reqs: AtomicU64,
    req_errors: AtomicU64,
    slow_opened: AtomicU64,
    slow_closed_by_relay: AtomicU64,
    storm_connections: AtomicU64,
    storm_errors: AtomicU64,
    oversized_sent: AtomicU64,
    oversized_answered: AtomicU64,
    oversized_unanswered: AtomicU64,
    subscriber_errors: AtomicU64,
}

impl Counters {
    fn json(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "published": g(&self.published),
            "accepted": g(&self.accepted),
            "rejected": g(&self.rejected),
            "publish_errors": g(&self.publish_errors),
            "reqs": g(&self.reqs),
            "req_errors": g(&self.req_errors),
            "slow_opened": g(&self.slow_opened),
            "slow_closed_by_relay": g(&self.slow_closed_by_relay),
            "storm_connections": g(&self.storm_connections),
            "storm_errors": g(&self.storm_errors),
            "oversized_sent": g(&self.oversized_sent),
            "oversized_answered": g(&self.oversized_answered),
            "oversized_unanswered": g(&self.oversized_unanswered),
            "subscriber_errors": g(&self.subscriber_errors),
        })
    }
}

struct Shared {
    url: String,
    session: String,
    stop: AtomicBool,
    counters: Counters,
    /// Ids of accepted events, for the live-delivery check.
    accepted_ids: Mutex<Vec<String>>,
    latencies: Mutex<Vec<Duration>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

pub async fn run(url: &str, args: Args) -> Result<()> {
    let shared = Arc::new(Shared {
        url: url.to_string(),
        session: events::unique_session("soak"),
        stop: AtomicBool::new(false),
        counters: Counters::default(),
        accepted_ids: Mutex::default(),
        latencies: Mutex::default(),
    });
    let relay_pid = args.relay_pid.map(|p| p.to_string());
    println!("soak: {}s against {url}, session {}", args.duration_secs, shared.session);

    // Subscribers first, so each must see every accepted event live.
    let mut subscribers = Vec::new();
    let mut seen_by = Vec::new();
    for _ in 0..args.subscribers {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        seen_by.push(seen.clone());
        subscribers.push(tokio::spawn(subscriber(shared.clone(), seen)));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut tasks = Vec::new();
    let per_publisher = (args.rate as f64 / args.publishers as f64).max(0.1);
    for _ in 0..args.publishers {
        tasks.push(tokio::spawn(publisher(shared.clone(), per_publisher)));
    }
    for _ in 0..args.readers {
        tasks.push(tokio::spawn(reader(shared.clone())));
    }
    tasks.push(tokio::spawn(slow_readers(shared.clone(), args.slow_readers)));
    tasks.push(tokio::spawn(storms(shared.clone(), args.storm)));
    tasks.push(tokio::spawn(oversized(shared.clone(), args.oversized_bytes)));

    let started = Instant::now();
    let (mut peak_rss, mut peak_fds, mut first_rss) = (0u64, 0usize, None);
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(args.duration_secs) {
        tokio::time::sleep(Duration::from_secs(args.sample_secs)).await;
        let memory = relay_pid.as_deref().map(Memory::of).transpose()?;
        let fds = relay_pid.as_deref().map(open_files).transpose()?;
        if let Some(m) = memory {
            peak_rss = peak_rss.max(m.rss);
            first_rss.get_or_insert(m.rss);
        }
        if let Some(n) = fds {
            peak_fds = peak_fds.max(n);
        }
        let c = &shared.counters;
        let line = format!(
            "t={:>5}s rss={} fds={} accepted={} rejected={} publish_errors={} reqs={} req_errors={} \
             slow={}/{} closed storms={} oversized answered {}/{}",
            started.elapsed().as_secs(),
            memory.map_or("-".into(), |m| format!("{:.1}MiB", mib(m.rss))),
            fds.map_or("-".into(), |n| n.to_string()),
            c.accepted.load(Ordering::Relaxed),
            c.rejected.load(Ordering::Relaxed),
            c.publish_errors.load(Ordering::Relaxed),
            c.reqs.load(Ordering::Relaxed),
            c.req_errors.load(Ordering::Relaxed),
            c.slow_closed_by_relay.load(Ordering::Relaxed),
            c.slow_opened.load(Ordering::Relaxed),
            c.storm_connections.load(Ordering::Relaxed),
            c.oversized_answered.load(Ordering::Relaxed),
            c.oversized_sent.load(Ordering::Relaxed),
        );
        println!("{line}");
        samples.push(json!({
            "t": started.elapsed().as_secs(),
            "rss_mib": memory.map(|m| round3(mib(m.rss))),
            "fds": fds,
        }));
    }
    shared.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(40), task).await;
    }
    // Let the last live events arrive, then check the subscribers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted: Vec<String> = shared.accepted_ids.lock().await.clone();
    let mut missing_total = 0usize;
    let mut duplicates_total = 0usize;
    let mut failed_subscribers = 0usize;
    for task in subscribers {
        task.abort();
        match task.await {
            Err(e) if e.is_cancelled() => {}
            _ => failed_subscribers += 1,
        }
    }
    for seen in &seen_by {
        let seen = seen.lock().await;
        let missing = accepted.iter().filter(|id| !seen.contains_key(*id)).count();
        let duplicates = seen.values().filter(|n| **n > 1).count();
        missing_total += missing;
        duplicates_total += duplicates;
    }
    let end = relay_pid.as_deref().map(Memory::of).transpose()?;
    let end_fds = relay_pid.as_deref().map(open_files).transpose()?;
    let percentiles = Percentiles::of(shared.latencies.lock().await.clone());
    println!("REQ latency: {percentiles}");
    println!(
        "live delivery to {} subscribers: {missing_total} missing, {duplicates_total} duplicated ({} subscribers failed)",
        args.subscribers, failed_subscribers
    );
    if let Some(m) = end {
        println!("relay at the end: {m}; peak sampled VmRSS {:.1} MiB; open files peak {peak_fds}", mib(peak_rss));
    }
    let mut fields = json!({
        "duration_secs": args.duration_secs,
        "rate": args.rate,
        "counters": shared.counters.json(),
        "req": percentiles.json(),
        "live_missing": missing_total,
        "live_duplicates": duplicates_total,
        "subscribers_failed": failed_subscribers,
        "peak_fds": peak_fds,
        "end_fds": end_fds,
        "samples": samples.len(),
    });
    if let (Some(first), Some(end)) = (first_rss, end) {
        fields["rss_first_sample_mib"] = json!(round3(mib(first)));
        fields["rss_peak_mib"] = json!(round3(mib(peak_rss)));
        fields["rss_end_mib"] = json!(round3(mib(end.rss)));
        fields["hwm_mib"] = json!(round3(mib(end.hwm)));
    }
    summary::print("soak", fields);
    Ok(())
}

/// Open files of process `pid`.
fn open_files(pid: &str) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd")).with_context(|| format!("cannot list /proc/{pid}/fd"))?.count())
}

/// A live subscriber to the soak session: counts every event id it receives in `seen` (until
/// aborted).
async fn subscriber(shared: Arc<Shared>, seen: Arc<Mutex<HashMap<String, u32>>>) -> Result<()> {
    let mut ws = conn::connect(&shared.url, Footprint::Lean).await?;
    let since = events::unix_now();
    ws.send(Message::text(json!(["REQ", "live", {"#s": [shared.session], "since": since}]).to_string())).await?;
    loop {
        match conn::recv(&mut ws, Duration::from_secs(3600)).await {
            Ok(RelayMessage::Event { event_id, .. }) => {
                *seen.lock().await.entry(event_id).or_default() += 1;
            }
            Ok(_) => {}
            Err(e) => {
                shared.counters.subscriber_errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

/// Publishes signed DePHY events at `rate` per second, one at a time (waits for each OK).
async fn publisher(shared: Arc<Shared>, rate: f64) {
    let keys = Keys::generate();
    let machine = Keys::generate().public_key();
    let mut seq = 0u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ws = None;
    while !shared.stopped() {
        tick.tick().await;
        if ws.is_none() {
            match conn::connect(&shared.url, Footprint::Lean).await {
                Ok(w) => ws = Some(w),
                Err(_) => {
                    shared.counters.publish_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let w = ws.as_mut().expect("connected");
        seq += 1;
        let event = match (events::Dephy {
            author: &keys,
            session: &shared.session,
            machine: &machine,
            created_at: Timestamp::now(),
            seq,
        })
        .sign()
        {
            Ok(e) => e,
            Err(_) => continue,
        };
        let id = event.id.to_hex();
        shared.counters.published.fetch_add(1, Ordering::Relaxed);
        let answered = async {
            w.send(Message::text(events::wire(&event))).await?;
            loop {
                if let RelayMessage::Ok { id: got, accepted, .. } = conn::recv(w, REPLY_TIMEOUT).await?
                    && got == id
                {
                    return Ok::<_, anyhow::Error>(accepted);
                }
            }
        }
        .await;
        match answered {
            Ok(true) => {
                shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                shared.accepted_ids.lock().await.push(id);
            }
            Ok(false) => {
                shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.counters.publish_errors.fetch_add(1, Ordering::Relaxed);
                ws = None;
            }
        }
    }
}

/// Asks REQs of a few shapes one after another, timing each to EOSE.
async fn reader(shared: Arc<Shared>) {
    let mut n = 0u64;
    let mut ws = None;
    while !shared.stopped() {
        if ws.is_none() {
            match conn::connect(&shared.url, Footprint::Lean).await {
                Ok(w) => ws = Some(w),
                Err(_) => {
                    shared.counters.req_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let w = ws.as_mut().expect("connected");
        n += 1;
        let sub = format!("r{n}");
        let filter = match n % 3 {
            0 => json!({"#s": [shared.session], "limit": 1}),
            1 => json!({"#s": [shared.session], "limit": 100}),
            _ => json!({"kinds": [events::DEPHY_KIND], "since": events::unix_now().saturating_sub(60), "limit": 50}),
        };
        let started = Instant::now();
        let answered = async {
            w.send(Message::text(json!(["REQ", sub, filter]).to_string())).await?;
            loop {
                match conn::recv(w, REPLY_TIMEOUT).await? {
                    RelayMessage::Eose { sub_id } if sub_id == sub => break,
                    RelayMessage::Closed { sub_id, message } if sub_id == sub => anyhow::bail!("CLOSED {message}"),
                    _ => {}
                }
            }
            w.send(Message::text(json!(["CLOSE", sub]).to_string())).await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        shared.counters.reqs.fetch_add(1, Ordering::Relaxed);
        match answered {
            Ok(()) => shared.latencies.lock().await.push(started.elapsed()),
            Err(_) => {
                shared.counters.req_errors.fetch_add(1, Ordering::Relaxed);
                ws = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps up to `max` connections that asked a large REQ and never read; replaces the oldest
/// every 2 s, checking first whether the relay closed it.
async fn slow_readers(shared: Arc<Shared>, max: usize) {
    if max == 0 {
        return;
    }
    let mut open = std::collections::VecDeque::new();
    while !shared.stopped() {
        if let Ok(mut ws) = conn::connect(&shared.url, Footprint::Lean).await {
            let req = json!(["REQ", "slow", {"#s": [shared.session], "limit": 5000}, {"kinds": [events::DEPHY_KIND], "limit": 5000}]);
            if ws.send(Message::text(req.to_string())).await.is_ok() {
                shared.counters.slow_opened.fetch_add(1, Ordering::Relaxed);
                open.push_back(ws);
            }
        }
        if open.len() > max
            && let Some(mut old) = open.pop_front()
        {
            // Did the relay give up on it? Read what is buffered for a moment.
            let closed = tokio::time::timeout(Duration::from_millis(500), async {
                while let Some(frame) = old.next().await {
                    match frame {
                        Ok(Message::Close(_)) | Err(_) => return true,
                        _ => {}
                    }
                }
                true
            })
            .await
            .unwrap_or(false);
            if closed {
                shared.counters.slow_closed_by_relay.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Every 10 s, opens `n` connections and drops them without a closing handshake.
async fn storms(shared: Arc<Shared>, n: usize) {
    while !shared.stopped() {
        let attempts =
            futures_util::future::join_all((0..n).map(|_| conn::connect(&shared.url, Footprint::Lean))).await;
        for attempt in attempts {
            match attempt {
                Ok(ws) => {
                    shared.counters.storm_connections.fetch_add(1, Ordering::Relaxed);
                    drop(ws);
                }
                Err(_) => {
                    shared.counters.storm_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for _ in 0..100 {
            if shared.stopped() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every 5 s, sends one frame above the relay's message limit; expects a NOTICE or a close.
async fn oversized(shared: Arc<Shared>, bytes: usize) {
    let frame = format!(r#"["EVENT",{{"content":"{}"}}]"#, "y".repeat(bytes));
    while !shared.stopped() {
        if let Ok(mut ws) = conn::connect(&shared.url, Footprint::Lean).await {
            shared.counters.oversized_sent.fetch_add(1, Ordering::Relaxed);
            let answered = async {
                ws.send(Message::text(frame.clone())).await.ok()?;
                loop {
                    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()? {
                        Some(Ok(Message::Text(t)))
                            if matches!(
                                RelayMessage::parse(t.as_str()),
                                Ok(RelayMessage::Notice(_) | RelayMessage::Ok { .. })
                            ) =>
                        {
                            return Some(());
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Some(()),
                        _ => {}
                    }
                }
            }
            .await;
            match answered {
                Some(()) => shared.counters.oversized_answered.fetch_add(1, Ordering::Relaxed),
                None => shared.counters.oversized_unanswered.fetch_add(1, Ordering::Relaxed),
            };
        }
        for _ in 0..50 {
            if shared.stopped() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
