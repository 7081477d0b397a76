//! `nagle`: REQ round trip for a client that leaves Nagle's algorithm on (most WebSocket
//! libraries do) and sends `CLOSE` and the next `REQ` back to back, as a dApp that changes its
//! subscription does.
//!
//! The relay answers nothing to a CLOSE, so unless it acknowledges at once, the kernel delays the
//! ACK (Linux: up to 40 ms) hoping to piggyback it on a reply; meanwhile the client's Nagle holds
//! the REQ back until that ACK arrives. The round trip is measured from handing the REQ to the
//! socket to receiving its EOSE.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::SinkExt;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, RelayMessage};
use crate::stats::Percentiles;
use crate::summary;

/// Longest silence tolerated while waiting for EOSE.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// CLOSE + REQ rounds.
    #[arg(long, default_value_t = 200, value_parser = crate::at_least_one)]
    rounds: usize,
    /// Disable Nagle on the client too (the control: what the round trip costs without the stall).
    #[arg(long)]
    nodelay: bool,
}

pub async fn run(url: &str, args: Args) -> Result<()> {
    let mut ws = conn::connect_with_nagle(url, !args.nodelay).await?;
    let filter = json!({"kinds": [1573], "#t": ["relay-bench-nagle"], "limit": 1});
    // The first subscription, so that every round starts with a CLOSE.
    ws.send(Message::text(json!(["REQ", "n0", filter]).to_string())).await?;
    wait_eose(&mut ws, "n0").await?;
    println!(
        "nagle: {} rounds of CLOSE then REQ back to back, client Nagle {}",
        args.rounds,
        if args.nodelay { "off" } else { "on" }
    );
    let mut samples = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        let (old, new) = (format!("n{}", round - 1), format!("n{round}"));
        ws.send(Message::text(json!(["CLOSE", old]).to_string())).await?;
        let start = Instant::now();
        ws.send(Message::text(json!(["REQ", new, filter]).to_string())).await?;
        wait_eose(&mut ws, &new).await?;
        samples.push(start.elapsed());
    }
    let p = Percentiles::of(samples);
    println!("nagle: REQ round trip {p}");
    summary::print("nagle", json!({"client_nagle": !args.nodelay, "round_trip": p.json()}));
    Ok(())
}

async fn wait_eose(ws: &mut conn::Ws, sub: &str) -> Result<()> {
    loop {
        match conn::recv(ws, REPLY_TIMEOUT).await.with_context(|| format!("waiting for EOSE of {sub}"))? {
            RelayMessage::Eose { sub_id } if sub_id == sub => return Ok(()),
            RelayMessage::Closed { sub_id, message } if sub_id == sub => bail!("the relay closed {sub}: {message}"),
            _ => {}
        }
    }
}
