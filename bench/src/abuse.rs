//! `abuse`: memory under hostile readers. Stores `--events` large events (~`--event-bytes`
//! each), then opens `--connections` connections that each send one REQ with `--filters`
//! filters matching all of them and never read a byte again. Meanwhile a well-behaved client
//! on its own connection keeps asking a small REQ and timing it (REQ sent to EOSE), and the
//! relay's resident memory is sampled every 250 ms. At the end each abusive connection is
//! read once more, to learn whether (and why) the relay closed it.
//!
//! The abusive connections are spread over `--source-ips` loopback addresses (127.0.0.2,
//! 127.0.0.3, ...) so that a per-address connection limit does not turn the test into a test
//! of that limit; the relay's byte budgets are what is under test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt, stream};
use nostr::prelude::*;
use serde_json::json;
use tokio::net::TcpSocket;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::conn::{self, Footprint, RelayMessage, Ws};
use crate::proc_status::{Memory, mib};
use crate::stats::{Percentiles, round3};
use crate::{events, rlimit, sender, summary};

/// Longest wait for one probe REQ's EOSE.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the final read of each abusive connection may take to find its fate.
const FATE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Large events to store first.
    #[arg(long, default_value_t = 600, value_parser = crate::at_least_one)]
    events: usize,
    /// Approximate size of each event's content, bytes (the relay's default content limit is 65536).
    #[arg(long, default_value_t = 60_000)]
    event_bytes: usize,
    /// Abusive connections: one REQ each, then never read.
    #[arg(long, default_value_t = 500, value_parser = crate::at_least_one)]
    connections: usize,
    /// Filters in each abusive REQ (all match every stored event).
    #[arg(long, default_value_t = 16, value_parser = crate::at_least_one)]
    filters: usize,
    /// Seconds to keep the abusive connections open while probing.
    #[arg(long, default_value_t = 30)]
    hold_secs: u64,
    /// Loopback source addresses to spread the abusive connections over (127.0.0.2 onwards).
    #[arg(long, default_value_t = 8, value_parser = crate::at_least_one)]
    source_ips: usize,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 50, value_parser = crate::at_least_one)]
    connect_concurrency: usize,
    /// Process id of the relay, to sample its memory (e.g. `$(pgrep dephy-relay)`).
    #[arg(long)]
    relay_pid: Option<u32>,
    /// Pause between two probe REQs of the well-behaved client, milliseconds.
    #[arg(long, default_value_t = 20)]
    probe_interval_ms: u64,
}

pub async fn run(url: &str, args: Args, fd_limit: u64) -> Result<()> {
    rlimit::ensure_fds(args.connections + 16, fd_limit)?;
    let relay_pid = args.relay_pid.map(|pid| pid.to_string());
    let relay_memory = || relay_pid.as_deref().map(Memory::of).transpose();
    let addr = socket_addr(url)?;

    // 1. Store the large events.
    let session = events::unique_session("abuse");
    let author = Keys::generate();
    let padding = "x".repeat(args.event_bytes);
    let messages = {
        let (author, session) = (author.clone(), session.clone());
        events::sign_parallel(args.events, move |i| {
            let tags = [Tag::parse(["s", session.as_str()])?, Tag::parse(["n".to_string(), i.to_string()])?];
            let event = EventBuilder::new(Kind::Custom(events::DEPHY_KIND), format!("{i}:{padding}"))
                .tags(tags)
                .custom_created_at(Timestamp::from(events::unix_now() - (i as u64 % 3600)))
                .sign_with_keys(&author)?;
            Ok(events::wire(&event))
        })
        .await?
    };
    let report = sender::send_all(url, messages, 4, 16, None).await?;
    report.print();
    if report.accepted < args.events as u64 {
        bail!(
            "the relay accepted only {} of {} large events; raise its max_content_bytes / max_event_bytes \
             or lower --event-bytes",
            report.accepted,
            args.events
        );
    }
    let before = relay_memory()?;
    if let Some(m) = before {
        println!("relay before the abusive readers: {m}");
    }

    // 2. Sample the relay's memory from now on.
    let peak_rss = Arc::new(AtomicU64::new(before.map_or(0, |m| m.rss)));
    let peak_anon = Arc::new(AtomicU64::new(before.map_or(0, |m| m.anon)));
    let sampler = relay_pid.clone().map(|pid| {
        let (peak, peak_anon) = (peak_rss.clone(), peak_anon.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                match Memory::of(&pid) {
                    Ok(m) => {
                        peak.fetch_max(m.rss, Ordering::Relaxed);
                        peak_anon.fetch_max(m.anon, Ordering::Relaxed);
                    }
                    Err(_) => return false,
                }
            }
        })
    });

    // 3. The well-behaved client probes while the abusive readers connect and sit.
    let probe_filter = json!({ "#s": [session], "limit": 1 });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let probe = {
        let url = url.to_string();
        let interval = Duration::from_millis(args.probe_interval_ms);
        tokio::spawn(probe_loop(url, probe_filter, interval, stop_rx))
    };

    // 4. The abusive readers: REQ, then never read.
    let filters: Vec<serde_json::Value> = (0..args.filters)
        .map(|i| json!({ "#s": [session], "kinds": [events::DEPHY_KIND], "limit": args.events + i }))
        .collect();
    println!(
        "opening {} non-reading connections over {} source addresses, each one REQ with {} filters...",
        args.connections, args.source_ips, args.filters
    );
    let opening = Instant::now();
    let attempts: Vec<Result<Ws>> = stream::iter(0..args.connections)
        .map(|i| {
            let mut req = vec![json!("REQ"), json!(format!("abuse-{i}"))];
            req.extend(filters.iter().cloned());
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % args.source_ips) as u8));
            async move {
                let mut ws = connect_from(url, addr, source).await?;
                ws.send(Message::text(serde_json::Value::from(req).to_string())).await.context("cannot send REQ")?;
                Ok(ws)
            }
        })
        .buffer_unordered(args.connect_concurrency)
        .collect()
        .await;
    let mut abusers = Vec::new();
    let mut refused = 0;
    let mut first_error = None;
    for attempt in attempts {
        match attempt {
            Ok(ws) => abusers.push(ws),
            Err(e) => {
                refused += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    println!("{} open, {refused} refused, in {:.1}s", abusers.len(), opening.elapsed().as_secs_f64());
    if let Some(e) = &first_error {
        println!("first refusal: {e:#}");
    }

    println!("holding them for {}s while the well-behaved client probes...", args.hold_secs);
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let held = relay_memory()?;
    let _ = stop_tx.send(true);
    let probes = probe.await.context("the probe task panicked")?;
    let relay_alive = match &sampler {
        Some(task) => !task.is_finished(),
        None => true,
    };
    if let Some(task) = sampler {
        task.abort();
    }

    // 5. What became of the abusive connections.
    let mut fates: std::collections::BTreeMap<String, usize> = Default::default();
    let outcomes: Vec<String> = stream::iter(abusers).map(fate).buffer_unordered(64).collect().await;
    for outcome in outcomes {
        *fates.entry(outcome).or_default() += 1;
    }

    let (latencies, failures) = probes;
    let percentiles = Percentiles::of(latencies);
    println!("well-behaved client REQ to EOSE: {percentiles}; {failures} failed");
    let peak = peak_rss.load(Ordering::Relaxed);
    let peak_anon = peak_anon.load(Ordering::Relaxed);
    if let Some(m) = held {
        println!(
            "relay after holding: {m}; peak sampled: VmRSS {:.1} MiB, RssAnon {:.1} MiB",
            mib(peak),
            mib(peak_anon)
        );
    }
    println!("relay still running: {relay_alive}");
    println!("abusive connections at the end:");
    for (fate, n) in &fates {
        println!("  {n:>5}  {fate}");
    }
    let mut fields = json!({
        "events": args.events,
        "event_bytes": args.event_bytes,
        "connections": args.connections,
        "filters": args.filters,
        "refused": refused,
        "probe": percentiles.json(),
        "probe_failures": failures,
        "relay_alive": relay_alive,
        "fates": fates,
    });
    if let Some(m) = held {
        fields["relay_rss_mib"] = json!(round3(mib(m.rss)));
        fields["relay_hwm_mib"] = json!(round3(mib(m.hwm)));
        fields["relay_peak_sampled_mib"] = json!(round3(mib(peak)));
        fields["relay_peak_anon_sampled_mib"] = json!(round3(mib(peak_anon)));
    }
    summary::print("abuse", fields);
    Ok(())
}

/// The well-behaved client: one small REQ after another until told to stop.
async fn probe_loop(
    url: String,
    filter: serde_json::Value,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut ws = None;
    let mut n = 0u64;
    while !*stop.borrow() {
        if ws.is_none() {
            match conn::connect(&url, Footprint::Throughput).await {
                Ok(w) => ws = Some(w),
                Err(_) => {
                    failures += 1;
                    tokio::time::sleep(interval).await;
                    continue;
                }
            }
        }
        let w = ws.as_mut().expect("connected above");
        n += 1;
        let sub = format!("probe-{n}");
        let req = json!(["REQ", sub, filter]).to_string();
        let started = Instant::now();
        let answered = async {
            w.send(Message::text(req)).await?;
            loop {
                match conn::recv(w, PROBE_TIMEOUT).await? {
                    RelayMessage::Eose { sub_id } if sub_id == sub => break,
                    RelayMessage::Closed { sub_id, message } if sub_id == sub => bail!("CLOSED {message}"),
                    _ => {}
                }
            }
            w.send(Message::text(json!(["CLOSE", sub]).to_string())).await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match answered {
            Ok(()) => latencies.push(started.elapsed()),
            Err(_) => {
                failures += 1;
                ws = None;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
    (latencies, failures)
}

/// Reads an abusive connection until it ends or goes quiet; names what happened.
async fn fate(mut ws: Ws) -> String {
    let deadline = Instant::now() + FATE_TIMEOUT;
    let mut notice = None;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return "still open (relay kept streaming or waited)".into(),
            Ok(None) => return with_notice("dropped without a close frame", &notice),
            Ok(Some(Err(_))) => return with_notice("reset or broken", &notice),
            Ok(Some(Ok(Message::Close(frame)))) => {
                let reason = frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default();
                return with_notice(&format!("closed by the relay: {reason}"), &notice);
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Ok(RelayMessage::Notice(n)) = RelayMessage::parse(text.as_str()) {
                    notice = Some(n);
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn with_notice(what: &str, notice: &Option<String>) -> String {
    match notice {
        Some(n) => format!("{what} (NOTICE: {n})"),
        None => what.to_string(),
    }
}

/// The relay's socket address from a `ws://host:port/...` URL (loopback expected).
fn socket_addr(url: &str) -> Result<SocketAddr> {
    let rest = url.strip_prefix("ws://").context("--url must be ws://")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:80") };
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {hostport}"))?
        .next()
        .with_context(|| format!("{hostport} resolves to no address"))
}

/// A WebSocket from a chosen local (loopback) address, with a small read buffer.
async fn connect_from(url: &str, addr: SocketAddr, source: IpAddr) -> Result<Ws> {
    let socket = TcpSocket::new_v4().context("cannot create a socket")?;
    socket.bind(SocketAddr::new(source, 0)).with_context(|| format!("cannot bind {source}"))?;
    let tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .context("TCP connect timed out")?
        .with_context(|| format!("cannot connect to {addr} from {source}"))?;
    tcp.set_nodelay(true).ok();
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp), Some(config))
            .await
            .with_context(|| format!("WebSocket handshake with {url} from {source} failed"))?;
    Ok(ws)
}
