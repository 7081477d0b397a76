//! `req`: read latency of DePHY-style queries against a database filled by `populate` (same
//! `--sessions/--machines/--controllers`), measured from sending REQ to receiving EOSE; each
//! subscription is CLOSEd after its EOSE. Queries rotate through four filter shapes:
//!
//! - `latest`: one machine's latest status in its session from its controller
//!   (`#s`, `#p`, `authors`, `until: now`, `limit: 1`);
//! - `recent`: five machines of a session over the past 3 days (`since`, `limit: 100`);
//! - `session`: a page of a session's history (`limit: 50`);
//! - `machines`: the latest events of five machines, across sessions (`#p` x5, `limit: 20`),
//!   as a dApp showing a fleet asks.
//!
//! With `--relay-pid`, the relay's CPU time per query and its memory after the load are
//! reported too.

use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Footprint, RelayMessage, Ws};
use crate::events::{self, DEPHY_KIND};
use crate::proc_cpu::cpu_time;
use crate::proc_status::{Memory, mib};
use crate::stats::{Percentiles, round3};
use crate::summary;
use crate::workload::{Population, session_name};

/// Longest silence tolerated while waiting for EOSE.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// CLOSED replies quoted in the report.
const QUOTED_CLOSED: usize = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Queries to run in total.
    #[arg(long, default_value_t = 2000, value_parser = crate::at_least_one)]
    queries: usize,
    /// Concurrent connections, each running its queries one after the other.
    #[arg(long, default_value_t = 4, value_parser = crate::at_least_one)]
    connections: usize,
    /// Process id of the relay, for its CPU time per query and its memory after the load
    /// (e.g. `$(pgrep dephy-relay)`).
    #[arg(long)]
    relay_pid: Option<u32>,
    #[command(flatten)]
    population: Population,
}

/// The four filter shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Latest,
    Recent,
    Session,
    Machines,
}

impl Shape {
    const ALL: [Self; 4] = [Self::Latest, Self::Recent, Self::Session, Self::Machines];

    fn name(self) -> &'static str {
        match self {
            Self::Latest => "latest",
            Self::Recent => "recent",
            Self::Session => "session",
            Self::Machines => "machines",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Latest => "#s #p authors until limit 1",
            Self::Recent => "#s 5x#p since -3d limit 100",
            Self::Session => "#s limit 50",
            Self::Machines => "5x#p limit 20",
        }
    }
}

struct Query {
    index: usize,
    shape: Shape,
    filter: Value,
}

struct Outcome {
    shape: Shape,
    events: usize,
    /// Time to EOSE, or the CLOSED message the relay answered instead.
    result: Result<Duration, String>,
}

pub async fn run(url: &str, args: Args) -> Result<()> {
    let population = args.population;
    population.validate()?;
    let queries = plan(&population, args.queries, events::unix_now());
    let connections = args.connections.min(args.queries);
    println!(
        "req: {} queries over {connections} connections ({} sessions, {} machines, {} controllers)",
        args.queries, population.sessions, population.machines, population.controllers
    );
    let sockets: Vec<Ws> = stream::iter(0..connections)
        .map(|_| conn::connect(url, Footprint::Throughput))
        .buffer_unordered(64)
        .try_collect()
        .await?;

    let mut shares: Vec<Vec<Query>> = (0..connections).map(|_| Vec::new()).collect();
    for query in queries {
        shares[query.index % connections].push(query);
    }
    let relay_pid = args.relay_pid.map(|pid| pid.to_string());
    let cpu_before = relay_pid.as_deref().map(cpu_time).transpose()?;
    let started = Instant::now();
    let workers: Vec<_> =
        sockets.into_iter().zip(shares).map(|(ws, share)| tokio::spawn(run_queries(ws, share))).collect();
    let mut outcomes = Vec::with_capacity(args.queries);
    for worker in workers {
        outcomes.extend(worker.await.context("a query task panicked")??);
    }
    let elapsed = started.elapsed();
    let relay = match relay_pid.as_deref() {
        Some(pid) => {
            let cpu = cpu_time(pid)?.saturating_sub(cpu_before.unwrap_or_default());
            Some((cpu, Memory::of(pid)?))
        }
        None => None,
    };
    report(&outcomes, args.queries, connections, elapsed, relay);
    Ok(())
}

/// The queries, rotating through the shapes, targets picked by a fixed pseudo-random sequence.
fn plan(population: &Population, count: usize, now: u64) -> Vec<Query> {
    let machines = population.machine_pubkeys();
    let controllers = population.controller_keys();
    (0..count)
        .map(|index| {
            let shape = Shape::ALL[index % Shape::ALL.len()];
            let random = splitmix64(index as u64);
            let filter = match shape {
                Shape::Latest => {
                    let machine = random as usize % population.machines;
                    json!({
                        "kinds": [DEPHY_KIND],
                        "#s": [session_name(population.session_of(machine))],
                        "#p": [machines[machine].to_hex()],
                        "authors": [controllers[population.controller_of(machine)].public_key().to_hex()],
                        "until": now,
                        "limit": 1,
                    })
                }
                Shape::Recent => {
                    let session = random as usize % population.sessions;
                    let in_session = population.machines_in(session);
                    let first = (random >> 32) as usize % in_session;
                    let picked: Vec<String> = (0..in_session.min(5))
                        .map(|k| machines[population.machine_in(session, (first + k) % in_session)].to_hex())
                        .collect();
                    json!({
                        "kinds": [DEPHY_KIND],
                        "#s": [session_name(session)],
                        "#p": picked,
                        "since": now - 3 * 86_400,
                        "limit": 100,
                    })
                }
                Shape::Session => json!({
                    "kinds": [DEPHY_KIND],
                    "#s": [session_name(random as usize % population.sessions)],
                    "limit": 50,
                }),
                Shape::Machines => {
                    let first = random as usize % population.machines;
                    let picked: Vec<String> = (0..population.machines.min(5))
                        .map(|k| machines[(first + k * 7) % population.machines].to_hex())
                        .collect();
                    json!({ "kinds": [DEPHY_KIND], "#p": picked, "limit": 20 })
                }
            };
            Query { index, shape, filter }
        })
        .collect()
}

/// SplitMix64: a fixed, well-spread pseudo-random sequence, so runs are comparable.
pub fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One connection: each query is REQ, wait for EOSE (counting events), CLOSE.
async fn run_queries(mut ws: Ws, queries: Vec<Query>) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(queries.len());
    for query in queries {
        let sub_id = format!("q{}", query.index);
        let req = json!(["REQ", sub_id, query.filter]).to_string();
        let started = Instant::now();
        ws.send(Message::text(req)).await.context("cannot send REQ")?;
        let mut events = 0;
        let result = loop {
            let reply = conn::recv(&mut ws, REPLY_TIMEOUT)
                .await
                .with_context(|| format!("waiting for EOSE of {sub_id} ({})", query.filter))?;
            match reply {
                RelayMessage::Event { sub_id: id, .. } if id == sub_id => events += 1,
                RelayMessage::Eose { sub_id: id } if id == sub_id => break Ok(started.elapsed()),
                RelayMessage::Closed { sub_id: id, message } if id == sub_id => break Err(message),
                _ => {}
            }
        };
        if result.is_ok() {
            let close = json!(["CLOSE", sub_id]).to_string();
            ws.send(Message::text(close)).await.context("cannot send CLOSE")?;
        }
        outcomes.push(Outcome { shape: query.shape, events, result });
    }
    // The run is measured; a failed goodbye changes nothing.
    let _ = ws.close(None).await;
    Ok(outcomes)
}

/// Print per-shape and overall percentiles, then the JSON summary.
/// `relay`: the relay's CPU time over the run and its memory after it, when its pid is known.
fn report(
    outcomes: &[Outcome],
    queries: usize,
    connections: usize,
    elapsed: Duration,
    relay: Option<(Duration, Memory)>,
) {
    let latencies = |shape: Option<Shape>| -> Vec<Duration> {
        outcomes
            .iter()
            .filter(|o| shape.is_none_or(|s| o.shape == s))
            .filter_map(|o| o.result.as_ref().ok().copied())
            .collect()
    };
    let mut fields = Map::new();
    fields.insert("queries".into(), json!(queries));
    fields.insert("connections".into(), json!(connections));
    fields.insert("queries_per_sec".into(), json!((queries as f64 / elapsed.as_secs_f64().max(1e-9)).round()));
    for shape in Shape::ALL {
        let of_shape = outcomes.iter().filter(|o| o.shape == shape);
        let returned: usize = of_shape.clone().map(|o| o.events).sum();
        let answered = of_shape.count().max(1);
        let stats = Percentiles::of(latencies(Some(shape)));
        println!(
            "{:<8} ({}): {stats}, {:.1} events/query",
            shape.name(),
            shape.description(),
            returned as f64 / answered as f64
        );
        let mut entry = stats.json();
        entry["events"] = json!(returned);
        fields.insert(shape.name().into(), entry);
    }
    let overall = Percentiles::of(latencies(None));
    let returned: usize = outcomes.iter().map(|o| o.events).sum();
    println!("overall: {overall}, {returned} events returned, {:.2}s", elapsed.as_secs_f64());

    let closed: Vec<&str> = outcomes.iter().filter_map(|o| o.result.as_ref().err().map(String::as_str)).collect();
    if !closed.is_empty() {
        println!("{} queries were CLOSED by the relay instead of EOSE; first messages:", closed.len());
        for message in closed.iter().take(QUOTED_CLOSED) {
            println!("  {message}");
        }
    }
    fields.insert("closed".into(), json!(closed.len()));
    fields.insert("events_returned".into(), json!(returned));
    if let Value::Object(overall_fields) = overall.json() {
        fields.extend(overall_fields);
    }
    if let Some((cpu, memory)) = relay {
        let us_per_query = cpu.as_secs_f64() * 1e6 / queries as f64;
        println!("relay: {:.2}s CPU, {us_per_query:.1} us per query; after the load {memory}", cpu.as_secs_f64());
        fields.insert("relay_cpu_us_per_query".into(), json!(round3(us_per_query)));
        fields.insert("relay_rss_mib".into(), json!(round3(mib(memory.rss))));
        fields.insert("relay_anon_mib".into(), json!(round3(mib(memory.anon))));
    }
    summary::print("req", Value::Object(fields));
}
