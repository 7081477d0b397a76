//! `req-cpu`: the relay's CPU time per simple REQ. Many connections each send REQ, wait for
//! EOSE, CLOSE, and go on with the next, all with the simplest selective shape: one tag value
//! (`#p`, one machine of the `populate` population) and `limit: 1`. With `--relay-pid`, the
//! relay's user + system CPU time over the measured queries (from `/proc/PID/stat`) is divided
//! by their number, and the relay's memory is read once the load is over.
//!
//! A warm-up round (not measured) runs first, so the figures are about a warm relay.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Footprint, RelayMessage, Ws};
use crate::proc_cpu::cpu_time;
use crate::proc_status::{Memory, mib};
use crate::req::splitmix64;
use crate::stats::{Percentiles, round3};
use crate::summary;
use crate::workload::Population;

/// Longest silence tolerated while waiting for EOSE.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measured queries, in total.
    #[arg(long, default_value_t = 20_000, value_parser = crate::at_least_one)]
    queries: usize,
    /// Unmeasured queries run first.
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
    /// Concurrent connections, each running its queries one after the other.
    #[arg(long, default_value_t = 50, value_parser = crate::at_least_one)]
    connections: usize,
    /// Process id of the relay, for its CPU time per REQ and its memory after the load
    /// (e.g. `$(pgrep dephy-relay)`).
    #[arg(long)]
    relay_pid: Option<u32>,
    #[command(flatten)]
    population: Population,
}

pub async fn run(url: &str, args: Args, fd_limit: u64) -> Result<()> {
    crate::rlimit::ensure_fds(args.connections, fd_limit)?;
    let population = args.population;
    population.validate()?;
    let machines: Vec<String> = population.machine_pubkeys().iter().map(|pk| pk.to_hex()).collect();
    let connections = args.connections.min(args.queries);
    println!(
        "req-cpu: {} queries (+{} warm-up) of {{\"#p\":[one machine],\"limit\":1}} over {connections} connections \
         ({} machines)",
        args.queries, args.warmup, population.machines
    );
    let mut sockets: Vec<Ws> = stream::iter(0..connections)
        .map(|_| conn::connect(url, Footprint::Lean))
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let relay_pid = args.relay_pid.map(|pid| pid.to_string());

    let (warm, returned) = round(&mut sockets, &machines, 0, args.warmup).await?;
    if args.warmup > 0 {
        println!("warm-up: {} queries, {returned} events returned", warm.len());
    }
    let cpu_before = relay_pid.as_deref().map(cpu_time).transpose()?;
    let started = Instant::now();
    let (latencies, returned) = round(&mut sockets, &machines, args.warmup, args.queries).await?;
    let elapsed = started.elapsed();
    let cpu_after = relay_pid.as_deref().map(cpu_time).transpose()?;
    if returned < args.queries {
        bail!(
            "only {returned} of {} queries returned an event: populate the relay first with the same \
             --sessions/--machines/--controllers (`relay-bench populate`)",
            args.queries
        );
    }

    let stats = Percentiles::of(latencies);
    let per_sec = args.queries as f64 / elapsed.as_secs_f64().max(1e-9);
    println!("latency: {stats}; {per_sec:.0} queries/s over {:.2}s", elapsed.as_secs_f64());
    let mut fields = Map::new();
    fields.insert("queries".into(), json!(args.queries));
    fields.insert("connections".into(), json!(connections));
    fields.insert("queries_per_sec".into(), json!(per_sec.round()));
    if let Value::Object(latency) = stats.json() {
        fields.extend(latency);
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu = after.saturating_sub(before);
        let us_per_req = cpu.as_secs_f64() * 1e6 / args.queries as f64;
        println!("relay CPU: {:.2}s user+system, {us_per_req:.1} us per REQ", cpu.as_secs_f64());
        fields.insert("relay_cpu_secs".into(), json!(round3(cpu.as_secs_f64())));
        fields.insert("relay_cpu_us_per_req".into(), json!(round3(us_per_req)));
    }
    for ws in &mut sockets {
        // The run is measured; a failed goodbye changes nothing.
        let _ = ws.close(None).await;
    }
    if let Some(pid) = relay_pid.as_deref() {
        let memory = Memory::of(pid)?;
        println!("relay after the load: {memory}");
        fields.insert("relay_rss_mib".into(), json!(round3(mib(memory.rss))));
        fields.insert("relay_anon_mib".into(), json!(round3(mib(memory.anon))));
        fields.insert("relay_file_mib".into(), json!(round3(mib(memory.file))));
        fields.insert("relay_hwm_mib".into(), json!(round3(mib(memory.hwm))));
    }
    summary::print("req-cpu", Value::Object(fields));
    Ok(())
}

/// Queries `first..first + count` spread over the connections; their latencies and the number
/// of events returned.
async fn round(sockets: &mut [Ws], machines: &[String], first: usize, count: usize) -> Result<(Vec<Duration>, usize)> {
    let n = sockets.len();
    let tasks = sockets.iter_mut().enumerate().map(|(c, ws)| {
        let mine: Vec<usize> = (first..first + count).filter(|i| i % n == c).collect();
        run_queries(ws, machines, mine)
    });
    let results: Vec<(Vec<Duration>, usize)> = futures_util::future::try_join_all(tasks).await?;
    let returned = results.iter().map(|(_, r)| r).sum();
    Ok((results.into_iter().flat_map(|(l, _)| l).collect(), returned))
}

/// One connection's queries, one after the other: REQ, events until EOSE, CLOSE.
async fn run_queries(ws: &mut Ws, machines: &[String], indexes: Vec<usize>) -> Result<(Vec<Duration>, usize)> {
    let mut latencies = Vec::with_capacity(indexes.len());
    let mut returned = 0;
    for index in indexes {
        let sub_id = format!("c{index}");
        let machine = &machines[splitmix64(index as u64) as usize % machines.len()];
        let req = json!(["REQ", sub_id, {"#p": [machine], "limit": 1}]).to_string();
        let started = Instant::now();
        ws.send(Message::text(req)).await.context("cannot send REQ")?;
        loop {
            match conn::recv(ws, REPLY_TIMEOUT).await.with_context(|| format!("waiting for EOSE of {sub_id}"))? {
                RelayMessage::Event { sub_id: id, .. } if id == sub_id => returned += 1,
                RelayMessage::Eose { sub_id: id } if id == sub_id => break,
                RelayMessage::Closed { sub_id: id, message } if id == sub_id => {
                    bail!("the relay answered {sub_id} with CLOSED: {message}")
                }
                _ => {}
            }
        }
        latencies.push(started.elapsed());
        ws.send(Message::text(json!(["CLOSE", sub_id]).to_string())).await.context("cannot send CLOSE")?;
    }
    Ok((latencies, returned))
}
