//! `relay-bench`: load generator and latency benchmark for dephy-relay, or any NIP-01 relay
//! reachable over plain `ws://`.
//!
//! This file only parses the command line and dispatches to one module per benchmark. Every
//! benchmark prints human-readable lines and ends with a single-line JSON summary on stdout.

mod abuse;
mod calibrate;
mod conn;
mod disk;
mod events;
mod fanout;
mod idle;
mod ingest;
mod nagle;
mod populate;
mod proc_cpu;
mod proc_status;
mod proofs;
mod req;
mod req_cpu;
mod rlimit;
mod sender;
mod soak;
mod stats;
mod summary;
mod workload;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "relay-bench", version, about = "Benchmark a Nostr (NIP-01) relay over WebSocket")]
struct Cli {
    /// WebSocket URL of the relay under test (plain ws:// only).
    #[arg(long, global = true, env = "RELAY_BENCH_URL", default_value = "ws://127.0.0.1:8000")]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pipelined EVENT publishing from many connections; reports acknowledged events/s.
    Ingest(ingest::Args),
    /// Fill the relay's database with DePHY-style events spread over the past 30 days.
    Populate(populate::Args),
    /// DePHY-style REQ latency (REQ sent to EOSE received) against a populated database.
    Req(req::Args),
    /// Bytes on disk per stored event (SQLite: DB + WAL + SHM after the relay checkpointed).
    Disk(disk::Args),
    /// Relay CPU time per simple REQ (one tag value, `limit 1`) from many connections.
    ReqCpu(req_cpu::Args),
    /// Live delivery latency from one publisher to many subscribers.
    Fanout(fanout::Args),
    /// Hold many idle connections open and report the relay's memory.
    Idle(idle::Args),
    /// REQ round trip for a client with Nagle on that sends CLOSE then REQ back to back.
    Nagle(nagle::Args),
    /// Verifiable-log proof latency over HTTP (inclusion and consistency).
    Proofs(proofs::Args),
    /// Memory under hostile readers: many connections send a large REQ and never read.
    Abuse(abuse::Args),
    /// CPU time of one Schnorr signature check on this machine now (no relay needed): the
    /// unit that makes CPU-per-event figures from noisy shared cores comparable.
    Calibrate(calibrate::Args),
    /// A long mixed run (ingest, REQs, live subscribers, slow readers, reconnect storms,
    /// oversized frames) sampling the relay's memory and open files; not part of CI.
    Soak(soak::Args),
}

/// Clap value parser for counts that must be at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    if !cli.url.starts_with("ws://") {
        bail!(
            "--url {} is not a ws:// URL: relay-bench speaks plain WebSocket only; point it at the \
             relay's own listen address (e.g. ws://127.0.0.1:8000), not at a TLS proxy",
            cli.url
        );
    }
    if let Command::Calibrate(args) = cli.command {
        return calibrate::run(args);
    }
    let fd_limit = rlimit::raise_nofile_limit()?;
    conn::probe(&cli.url).await?;
    let url = cli.url.as_str();
    match cli.command {
        Command::Ingest(args) => ingest::run(url, args).await,
        Command::Populate(args) => populate::run(url, args).await,
        Command::Req(args) => req::run(url, args).await,
        Command::Disk(args) => disk::run(url, args).await,
        Command::ReqCpu(args) => req_cpu::run(url, args, fd_limit).await,
        Command::Fanout(args) => fanout::run(url, args, fd_limit).await,
        Command::Idle(args) => idle::run(url, args, fd_limit).await,
        Command::Nagle(args) => nagle::run(url, args).await,
        Command::Proofs(args) => proofs::run(url, args).await,
        Command::Abuse(args) => abuse::run(url, args, fd_limit).await,
        Command::Soak(args) => soak::run(url, args).await,
        Command::Calibrate(_) => unreachable!("run before the relay is probed"),
    }
}
