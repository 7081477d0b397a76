//! `idle`: connection capacity. Open many WebSocket connections (a bounded number of handshakes
//! at a time), keep them idle for a while (answering pings, which tungstenite does while we
//! read), report the relay's and this process's memory, then close them all.
//!
//! One client IP opening 10,000 connections uses 10,000 ephemeral ports: fine on loopback.
//! The relay needs an open-file limit above the connection count too (`ulimit -n`).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, stream};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::conn::{self, Footprint, Ws};
use crate::proc_status::{Memory, mib};
use crate::rlimit;
use crate::stats::round3;
use crate::summary;

/// Longest wait for one connection's closing handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between the last connection opening and the memory reading, to let the relay settle.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000, value_parser = crate::at_least_one)]
    connections: usize,
    /// Seconds to hold them open once all are connected.
    #[arg(long, default_value_t = 30)]
    hold_secs: u64,
    /// Process id of the relay, to report its VmRSS and VmHWM (e.g. `$(pgrep dephy-relay)`).
    #[arg(long)]
    relay_pid: Option<u32>,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 200, value_parser = crate::at_least_one)]
    connect_concurrency: usize,
}

pub async fn run(url: &str, args: Args, fd_limit: u64) -> Result<()> {
    rlimit::ensure_fds(args.connections, fd_limit)?;
    let relay_pid = args.relay_pid.map(|pid| pid.to_string());
    let relay_memory = || relay_pid.as_deref().map(Memory::of).transpose();
    let baseline = relay_memory()?;
    if let Some(memory) = baseline {
        println!("relay before: {memory}");
    }

    println!("idle: opening {} connections to {url}, {} at a time...", args.connections, args.connect_concurrency);
    let (stop_tx, stop_rx) = watch::channel(false);
    let opening = Instant::now();
    let attempts: Vec<_> = stream::iter(0..args.connections)
        .map(|_| {
            let stop = stop_rx.clone();
            async move {
                let ws = conn::connect(url, Footprint::Lean).await?;
                Ok::<_, anyhow::Error>(tokio::spawn(hold(ws, stop)))
            }
        })
        .buffer_unordered(args.connect_concurrency)
        .collect()
        .await;
    let open_secs = opening.elapsed().as_secs_f64();
    let mut holders = Vec::with_capacity(attempts.len());
    let mut first_error = None;
    for attempt in attempts {
        match attempt {
            Ok(holder) => holders.push(holder),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let opened = holders.len();
    println!("opened {opened} of {} connections in {open_secs:.2}s", args.connections);
    if let Some(e) = first_error {
        if opened == 0 {
            return Err(e);
        }
        println!("{} connections failed; first error: {e:#}", args.connections - opened);
    }

    tokio::time::sleep(SETTLE).await;
    let loaded = relay_memory()?;
    if let Some(memory) = loaded {
        println!("relay with {opened} idle connections: {memory}");
    }
    if let (Some(before), Some(after)) = (baseline, loaded) {
        let per_connection = after.rss.saturating_sub(before.rss) as f64 / opened as f64 / 1024.0;
        println!("relay memory per idle connection: {per_connection:.1} KiB");
    }
    let bench = Memory::of("self")?;
    println!("relay-bench itself: {bench}");

    println!("holding for {}s...", args.hold_secs);
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let held = relay_memory()?;
    if let Some(memory) = held {
        println!("relay after holding: {memory}");
    }
    // Holders that already ended dropped their receivers; the rest stop now.
    let _ = stop_tx.send(true);
    let mut still_open = 0;
    for holder in holders {
        if holder.await.context("a connection task panicked")? {
            still_open += 1;
        }
    }
    let dropped = opened - still_open;
    println!("{still_open} connections were still open at the end, {dropped} were dropped by the relay");

    let mut fields = json!({
        "connections": args.connections,
        "opened": opened,
        "dropped": dropped,
        "open_secs": round3(open_secs),
        "hold_secs": args.hold_secs,
        "bench_rss_mib": round3(mib(bench.rss)),
    });
    if let (Some(before), Some(loaded), Some(held)) = (baseline, loaded, held) {
        fields["relay_rss_before_mib"] = json!(round3(mib(before.rss)));
        fields["relay_rss_mib"] = json!(round3(mib(loaded.rss.max(held.rss))));
        fields["relay_hwm_mib"] = json!(round3(mib(held.hwm)));
    }
    summary::print("idle", fields);
    if opened < args.connections {
        bail!("only {opened} of {} connections could be opened (see the first error above)", args.connections);
    }
    Ok(())
}

/// Keep `ws` open, reading (so pings get answered) until `stop` fires; then close it.
/// Returns whether the connection was still open when stopped.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            frame = ws.next() => if !matches!(frame, Some(Ok(_))) {
                return false;
            },
            _ = stop.changed() => {
                // Closing is best effort: the measurement is already taken.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
                return true;
            }
        }
    }
}
