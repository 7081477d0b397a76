//! The pipelined EVENT sender shared by `ingest` and `populate`.
//!
//! Each connection sends its share of pre-signed `["EVENT",...]` messages keeping up to
//! `window` of them unacknowledged, and counts the relay's `OK` replies. The clock runs from the
//! first EVENT (all connections are open by then) to the last OK.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt, TryStreamExt, stream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Footprint, RelayMessage, Ws};

/// Longest silence tolerated while EVENTs are unacknowledged.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Rejections quoted in the report.
const QUOTED_REJECTIONS: usize = 5;

/// How the relay answered.
#[derive(Debug, Default)]
pub struct SendReport {
    /// `OK true`, duplicates included.
    pub accepted: u64,
    /// `OK true` whose message starts with `duplicate:`.
    pub duplicates: u64,
    /// `OK false`.
    pub rejected: u64,
    /// The first few `OK false` replies, as `<id>: <message>`.
    pub first_rejections: Vec<String>,
    /// From the first EVENT sent to the last OK received.
    pub elapsed: Duration,
}

impl SendReport {
    fn merge(&mut self, other: Self) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        let room = QUOTED_REJECTIONS.saturating_sub(self.first_rejections.len());
        self.first_rejections.extend(other.first_rejections.into_iter().take(room));
    }

    /// Acknowledged (accepted) events per second.
    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Print the human-readable lines.
    pub fn print(&self) {
        println!(
            "accepted {} events ({} duplicates) in {:.2}s: {:.0} events/s",
            self.accepted,
            self.duplicates,
            self.elapsed.as_secs_f64(),
            self.accepted_per_sec()
        );
        if self.rejected > 0 {
            println!("rejected {} events (OK false); first replies:", self.rejected);
            for rejection in &self.first_rejections {
                println!("  {rejection}");
            }
        }
    }
}

/// Send `messages` over `connections` connections with `window` EVENTs in flight on each. When
/// `progress_every` is set, a line is printed each time that many more events are acknowledged.
pub async fn send_all(
    url: &str,
    messages: Vec<String>,
    connections: usize,
    window: usize,
    progress_every: Option<u64>,
) -> Result<SendReport> {
    let total = messages.len() as u64;
    let connections = connections.min(messages.len()).max(1);
    println!("opening {connections} connections to {url}...");
    let sockets: Vec<Ws> = stream::iter(0..connections)
        .map(|_| conn::connect(url, Footprint::Throughput))
        .buffer_unordered(64)
        .try_collect()
        .await?;

    let share = messages.len().div_ceil(connections);
    let mut messages = messages.into_iter();
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = progress_every.map(|every| tokio::spawn(print_progress(acked.clone(), every, total)));
    let workers: Vec<_> = sockets
        .into_iter()
        .map(|ws| {
            let batch: Vec<String> = messages.by_ref().take(share).collect();
            tokio::spawn(send_batch(ws, batch, window, acked.clone()))
        })
        .collect();

    let mut report = SendReport::default();
    let mut first_error = None;
    for worker in workers {
        match worker.await.context("a sender task panicked")? {
            Ok(part) => report.merge(part),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    report.elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.abort();
    }
    match first_error {
        Some(e) => Err(e.context(format!(
            "a connection failed after {} of {total} events were acknowledged",
            acked.load(Ordering::Relaxed)
        ))),
        None => Ok(report),
    }
}

/// One connection: keep up to `window` EVENTs unacknowledged until every one got its OK.
async fn send_batch(mut ws: Ws, batch: Vec<String>, window: usize, acked: Arc<AtomicU64>) -> Result<SendReport> {
    let total = batch.len();
    let mut pending = batch.into_iter();
    let mut in_flight = 0;
    let mut replies = 0;
    let mut report = SendReport::default();
    let mut last_notice = None;
    while replies < total {
        let mut fed = false;
        while in_flight < window
            && let Some(message) = pending.next()
        {
            ws.feed(Message::text(message)).await.context("cannot send EVENT")?;
            in_flight += 1;
            fed = true;
        }
        if fed {
            ws.flush().await.context("cannot send EVENT")?;
        }
        let reply = conn::recv(&mut ws, REPLY_TIMEOUT).await.with_context(|| match &last_notice {
            Some(notice) => format!("waiting for OK with {in_flight} EVENTs unacknowledged (last NOTICE: {notice})"),
            None => format!("waiting for OK with {in_flight} EVENTs unacknowledged"),
        })?;
        match reply {
            RelayMessage::Ok { id, accepted, message } => {
                in_flight -= 1;
                replies += 1;
                acked.fetch_add(1, Ordering::Relaxed);
                if accepted {
                    report.accepted += 1;
                    if message.starts_with("duplicate:") {
                        report.duplicates += 1;
                    }
                } else {
                    report.rejected += 1;
                    if report.first_rejections.len() < QUOTED_REJECTIONS {
                        report.first_rejections.push(format!("{id}: {message}"));
                    }
                }
            }
            RelayMessage::Notice(notice) => last_notice = Some(notice),
            _ => {}
        }
    }
    // The run is measured; a failed goodbye changes nothing.
    let _ = ws.close(None).await;
    Ok(report)
}

/// Print a line each time `every` more events are acknowledged; aborted by the caller.
async fn print_progress(acked: Arc<AtomicU64>, every: u64, total: u64) {
    let started = Instant::now();
    let mut next = every;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while next <= total {
        tick.tick().await;
        let done = acked.load(Ordering::Relaxed);
        if done >= next {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            println!("  {done}/{total} acknowledged ({rate:.0} events/s)");
            next = (done / every + 1) * every;
        }
    }
}
