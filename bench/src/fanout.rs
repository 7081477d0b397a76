//! `fanout`: live delivery latency. Many subscribers each REQ the run's session
//! (`{"kinds":[1573],"#s":[<session>],"since":now}`) and wait for EOSE; then one publisher sends
//! pre-signed events at a fixed rate. Every (event, subscriber) delivery is timed from the
//! instant the publisher handed the EVENT to its socket to the instant the subscriber read it.
//! With `--publish-url` the publisher talks to another relay, which measures propagation
//! through a federation (scripts/bench-federation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt, TryStreamExt, stream};
use nostr::prelude::*;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Footprint, RelayMessage, Ws};
use crate::events::{self, DEPHY_KIND, Dephy};
use crate::rlimit;
use crate::stats::{Percentiles, round3};
use crate::summary;
use crate::workload::derive_keys;

/// Longest wait for a subscriber's EOSE, or for the publisher's OKs.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000, value_parser = crate::at_least_one)]
    subscribers: usize,
    /// Events the publisher sends.
    #[arg(long, default_value_t = 200, value_parser = crate::at_least_one)]
    events: usize,
    /// Events per second the publisher sends.
    #[arg(long, default_value_t = 50, value_parser = crate::at_least_one)]
    rate: usize,
    /// Subscriber connections being opened at the same time.
    #[arg(long, default_value_t = 100, value_parser = crate::at_least_one)]
    connect_concurrency: usize,
    /// After the last event is sent, how long to wait for deliveries still missing.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
    /// Publish to this relay instead of `--url` (federation: subscribers on one relay, the
    /// publisher on another, events mirrored between them by their bridges).
    #[arg(long)]
    publish_url: Option<String>,
}

/// A subscriber's receipts: (event index, when it was read).
type Receipts = Vec<(usize, Instant)>;

pub async fn run(url: &str, args: Args, fd_limit: u64) -> Result<()> {
    rlimit::ensure_fds(args.subscribers + 1, fd_limit)?;
    let session = events::unique_session("fanout");
    println!("fanout: {} subscribers, {} events at {}/s, session {session}", args.subscribers, args.events, args.rate);
    let author = derive_keys("fanout-publisher", 0);
    let machine = derive_keys("machine", 0).public_key();
    let created_at = Timestamp::now();
    let signed = {
        let session = session.clone();
        events::sign_parallel(args.events, move |i| {
            let event =
                Dephy { author: &author, session: &session, machine: &machine, created_at, seq: i as u64 }.sign()?;
            Ok((event.id.to_hex(), events::wire(&event)))
        })
        .await?
    };
    let (ids, messages): (Vec<String>, Vec<String>) = signed.into_iter().unzip();
    let index_of: Arc<HashMap<String, usize>> = Arc::new(ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect());

    let filter = json!({ "kinds": [DEPHY_KIND], "#s": [session], "since": created_at.as_secs() });
    println!("opening {} subscriptions...", args.subscribers);
    let opening = Instant::now();
    let subscribers: Vec<Ws> = stream::iter(0..args.subscribers)
        .map(|i| subscribe(url, i, &filter))
        .buffer_unordered(args.connect_concurrency)
        .try_collect()
        .await?;
    println!("{} subscriptions live in {:.2}s", subscribers.len(), opening.elapsed().as_secs_f64());

    let (stop_tx, stop_rx) = watch::channel(false);
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, index_of.clone(), args.events, stop_rx.clone())))
        .collect();

    let publish_url = args.publish_url.as_deref().unwrap_or(url);
    if !publish_url.starts_with("ws://") {
        bail!("--publish-url {publish_url} is not a ws:// URL");
    }
    let (send_times, rejected) = publish(publish_url, messages, args.rate).await?;
    if rejected > 0 {
        println!("the relay rejected {rejected} of {} events (OK false)", args.events);
    }
    let grace = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(args.grace_secs)).await;
        // Every reader may have finished already and dropped its receiver; nothing to stop then.
        let _ = stop_tx.send(true);
    });
    let mut latencies = Vec::with_capacity(args.subscribers * args.events);
    let mut failures = 0;
    for reader in readers {
        let received = reader.await.context("a subscriber task panicked")?;
        latencies.extend(received.receipts.into_iter().map(|(i, at)| at.saturating_duration_since(send_times[i])));
        if let Some(failure) = received.failure {
            if failures == 0 {
                println!("a subscriber stopped early: {failure:#}");
            }
            failures += 1;
        }
    }
    grace.abort();
    if failures > 0 {
        println!("{failures} of {} subscribers stopped early", args.subscribers);
    }

    let expected = args.subscribers * args.events;
    let stats = Percentiles::of(latencies);
    println!("delivered {} of {expected} (event, subscriber) pairs", stats.count);
    println!("delivery latency: {stats}");
    let mut fields = json!({
        "subscribers": args.subscribers,
        "events": args.events,
        "rate": args.rate,
        "publish_url": publish_url,
        "rejected": rejected,
        "failed_subscribers": failures,
        "deliveries": stats.count,
        "expected": expected,
        "delivered_ratio": round3(stats.count as f64 / expected as f64),
    });
    if let (Some(fields), serde_json::Value::Object(percentiles)) = (fields.as_object_mut(), stats.json()) {
        fields.extend(percentiles.into_iter().filter(|(key, _)| key != "count"));
    }
    summary::print("fanout", fields);
    Ok(())
}

/// Connect subscriber `index`, REQ `filter` and wait for its EOSE.
async fn subscribe(url: &str, index: usize, filter: &serde_json::Value) -> Result<Ws> {
    let mut ws = conn::connect(url, Footprint::Lean).await?;
    let sub_id = format!("fanout{index}");
    ws.send(Message::text(json!(["REQ", sub_id, filter]).to_string())).await.context("cannot send REQ")?;
    loop {
        match conn::recv(&mut ws, REPLY_TIMEOUT).await.with_context(|| format!("waiting for EOSE of {sub_id}"))? {
            RelayMessage::Eose { sub_id: id } if id == sub_id => return Ok(ws),
            RelayMessage::Closed { message, .. } => {
                bail!("the relay CLOSED subscription {sub_id}: {message}")
            }
            _ => {}
        }
    }
}

/// What one subscriber saw: its receipts, and why it stopped early if it did.
struct Received {
    receipts: Receipts,
    failure: Option<anyhow::Error>,
}

/// Read deliveries until all `expected` arrived or `stop` fires; then close the connection.
async fn receive(
    mut ws: Ws,
    index_of: Arc<HashMap<String, usize>>,
    expected: usize,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut receipts = Vec::with_capacity(expected);
    let outcome = async {
        while receipts.len() < expected {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let at = Instant::now();
                        if let RelayMessage::Event { event_id, .. } = RelayMessage::parse(text.as_str())?
                            && let Some(&index) = index_of.get(&event_id)
                        {
                            receipts.push((index, at));
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => bail!("a subscriber's connection failed: {e}"),
                    None => bail!("the relay dropped a subscriber's connection"),
                },
                _ = stop.changed() => break,
            }
        }
        Ok(())
    }
    .await;
    // The deliveries are counted; a failed goodbye changes nothing.
    let _ = ws.close(None).await;
    Received { receipts, failure: outcome.err() }
}

/// Send `messages` at `rate` per second from a fresh connection; returns when each was handed
/// to the socket, and how many the relay rejected.
async fn publish(url: &str, messages: Vec<String>, rate: usize) -> Result<(Vec<Instant>, usize)> {
    let mut ws = conn::connect(url, Footprint::Throughput).await?;
    let total = messages.len();
    println!("publishing {total} events at {rate}/s...");
    let mut send_times = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for message in messages {
        tick.tick().await;
        send_times.push(Instant::now());
        ws.send(Message::text(message)).await.context("the publisher cannot send EVENT")?;
    }
    let mut replies = 0;
    let mut rejected = 0;
    while replies < total {
        if let RelayMessage::Ok { accepted, .. } =
            conn::recv(&mut ws, REPLY_TIMEOUT).await.context("the publisher is waiting for OKs")?
        {
            replies += 1;
            if !accepted {
                rejected += 1;
            }
        }
    }
    // The events are acknowledged; a failed goodbye changes nothing.
    let _ = ws.close(None).await;
    Ok((send_times, rejected))
}
