//! `populate`: fill the relay's database with DePHY-style events for the `req` benchmark.
//!
//! Event `i` is about machine `i % machines`, in that machine's session, signed by its
//! controller (see `workload.rs`), with `created_at` rising evenly across the past 30 days, so
//! every machine has a history and the latest 3 days hold a tenth of it.

use anyhow::Result;
use nostr::prelude::*;
use serde_json::json;

use crate::events::{self, Dephy};
use crate::stats::round3;
use crate::workload::{Population, session_name};
use crate::{sender, summary};

/// How far back the history reaches.
const HISTORY_SECS: u64 = 30 * 86_400;
/// Print a progress line every this many acknowledged events.
const PROGRESS_EVERY: u64 = 100_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events to write in total.
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::at_least_one)]
    events: usize,
    #[command(flatten)]
    population: Population,
    /// Concurrent connections.
    #[arg(long, default_value_t = 20, value_parser = crate::at_least_one)]
    connections: usize,
    /// Unacknowledged EVENTs allowed in flight per connection.
    #[arg(long, default_value_t = 64, value_parser = crate::at_least_one)]
    window: usize,
}

pub async fn run(url: &str, args: Args) -> Result<()> {
    let population = args.population;
    population.validate()?;
    println!(
        "populate: {} events, {} sessions, {} machines, {} controllers, over {} connections",
        args.events, population.sessions, population.machines, population.controllers, args.connections
    );
    let machines = population.machine_pubkeys();
    let controllers = population.controller_keys();
    let sessions: Vec<String> = (0..population.sessions).map(session_name).collect();
    let now = events::unix_now();
    let total = args.events as u64;
    let messages = events::sign_parallel(args.events, move |i| {
        let machine = i % population.machines;
        let age = HISTORY_SECS - HISTORY_SECS * i as u64 / total;
        let event = Dephy {
            author: &controllers[population.controller_of(machine)],
            session: &sessions[population.session_of(machine)],
            machine: &machines[machine],
            created_at: Timestamp::from_secs(now - age),
            seq: i as u64,
        }
        .sign()?;
        Ok(events::wire(&event))
    })
    .await?;

    let report = sender::send_all(url, messages, args.connections, args.window, Some(PROGRESS_EVERY)).await?;
    report.print();
    summary::print(
        "populate",
        json!({
            "events": args.events,
            "sessions": population.sessions,
            "machines": population.machines,
            "controllers": population.controllers,
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "secs": round3(report.elapsed.as_secs_f64()),
            "events_per_sec": report.accepted_per_sec().round(),
        }),
    );
    Ok(())
}
