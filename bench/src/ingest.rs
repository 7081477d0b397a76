//! `ingest`: write throughput. Pre-signed DePHY events (created now, in a session unique to the
//! run so reruns never produce duplicates) are pipelined over many connections; the result is
//! acknowledged events per second, the relay sending OK only once an event is committed. With
//! `--relay-pid`, also the relay's CPU per event, in microseconds and in Schnorr signature checks
//! measured before and after the run (see `calibrate`).

use anyhow::Result;
use serde_json::json;

use crate::events;
use crate::stats::round3;
use crate::{calibrate, proc_cpu, sender, summary};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent connections, each sending an equal share of the events.
    #[arg(long, default_value_t = 50, value_parser = crate::at_least_one)]
    connections: usize,
    /// Events to send in total.
    #[arg(long, default_value_t = 200_000, value_parser = crate::at_least_one)]
    events: usize,
    /// Unacknowledged EVENTs allowed in flight per connection.
    #[arg(long, default_value_t = 64, value_parser = crate::at_least_one)]
    window: usize,
    /// Distinct author keys, used round-robin (keeps each under per-pubkey rate limits).
    #[arg(long, default_value_t = 16, value_parser = crate::at_least_one)]
    authors: usize,
    /// Process id of the relay (e.g. `$(pgrep dephy-relay)`): reports its CPU time (utime +
    /// stime from /proc) per acknowledged event, counted from before the connections open to
    /// after the last OK, and its threads' context switches per event.
    #[arg(long)]
    relay_pid: Option<u32>,
}

pub async fn run(url: &str, args: Args) -> Result<()> {
    let session = events::unique_session("ingest");
    println!(
        "ingest: {} events over {} connections, window {}, {} authors, session {session}",
        args.events, args.connections, args.window, args.authors
    );
    let messages = events::sign_now(args.events, &session, "ingest-author", args.authors).await?;

    // The machine's speed now, before and after the run (see `calibrate`).
    let verify_before = calibrate::schnorr_verify_us()?;
    let cpu_before = args.relay_pid.map(proc_cpu::cpu_time).transpose()?;
    let switches_before = args.relay_pid.map(proc_cpu::context_switches).transpose()?;
    let report = sender::send_all(url, messages, args.connections, args.window, None).await?;
    report.print();
    // Relay CPU microseconds per acknowledged event.
    let cpu_us_per_event = match (args.relay_pid, cpu_before) {
        (Some(pid), Some(before)) => {
            let used = proc_cpu::cpu_time(pid)?.saturating_sub(before);
            let per_event = used.as_secs_f64() * 1e6 / report.accepted.max(1) as f64;
            println!("relay CPU {:.2}s (utime+stime): {per_event:.1} us per acknowledged event", used.as_secs_f64());
            Some(per_event.round())
        }
        _ => None,
    };
    // Relay context switches per acknowledged event (thread hand-offs and waits).
    let switches_per_event = match (args.relay_pid, switches_before) {
        (Some(pid), Some(before)) => {
            let switches = proc_cpu::context_switches(pid)?.saturating_sub(before);
            let per_event = switches as f64 / report.accepted.max(1) as f64;
            println!("relay context switches: {switches} ({per_event:.3} per acknowledged event)");
            Some(round3(per_event))
        }
        _ => None,
    };
    let verify_us = (verify_before + calibrate::schnorr_verify_us()?) / 2.0;
    println!("one Schnorr signature check here: {verify_us:.2} us of CPU (mean of before and after)");
    // The relay's CPU per event in units of signature checks: comparable across noisy runs.
    let cpu_in_verifies = cpu_us_per_event.map(|us| (us / verify_us * 100.0).round() / 100.0);
    summary::print(
        "ingest",
        json!({
            "events": args.events,
            "connections": args.connections,
            "window": args.window,
            "accepted": report.accepted,
            "relay_cpu_us_per_event": cpu_us_per_event,
            "relay_cpu_per_event_in_verifies": cpu_in_verifies,
            "schnorr_verify_us": round3(verify_us),
            "relay_switches_per_event": switches_per_event,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "secs": round3(report.elapsed.as_secs_f64()),
            "events_per_sec": report.accepted_per_sec().round(),
        }),
    );
    Ok(())
}
