//! `disk`: bytes on disk per stored event. Publishes DePHY-style events (kind 1573, an `s` and
//! a `p` tag, ~550 bytes of JSON) like `ingest`, then measures the relay's SQLite files in
//! `--db-dir` once the relay has checkpointed its WAL.
//!
//! The checkpoint is awaited, not forced: the relay copies committed WAL frames into
//! `relay.db` in the background (a passive checkpoint every 2 s), so once the load stops the
//! database file grows to its final size and then stays put. The measure is taken when the
//! sizes of `relay.db`, `relay.db-wal` and `relay.db-shm` have not changed for `--settle-secs`
//! (default 6 s: three checkpoint periods). Bytes per event = the sum of the three files'
//! sizes (everything: events, tag index, NIP-09 markers, the verifiable log) divided by the
//! events stored (accepted, not duplicate). Run it against a fresh database directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::events;
use crate::stats::round3;
use crate::{sender, summary};

/// The database files, relative to `--db-dir`.
const FILES: [&str; 3] = ["relay.db", "relay.db-wal", "relay.db-shm"];
/// How often the file sizes are polled while waiting for the checkpoint.
const POLL: Duration = Duration::from_secs(1);
/// Give up waiting for the sizes to settle after this long.
const MAX_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The relay's database directory (holding relay.db); should be fresh for this run.
    #[arg(long)]
    db_dir: PathBuf,
    /// Events to publish.
    #[arg(long, default_value_t = 100_000, value_parser = crate::at_least_one)]
    events: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 20, value_parser = crate::at_least_one)]
    connections: usize,
    /// Unacknowledged EVENTs allowed in flight per connection.
    #[arg(long, default_value_t = 64, value_parser = crate::at_least_one)]
    window: usize,
    /// Distinct author keys, used round-robin.
    #[arg(long, default_value_t = 16, value_parser = crate::at_least_one)]
    authors: usize,
    /// Seconds the file sizes must stay unchanged before they are measured.
    #[arg(long, default_value_t = 6)]
    settle_secs: u64,
}

pub async fn run(url: &str, args: Args) -> Result<()> {
    if !args.db_dir.join(FILES[0]).is_file() {
        bail!(
            "--db-dir {}: no {} there; pass the directory of the relay's SQLite database (its \
             `store.url` is sqlite://<dir>/relay.db)",
            args.db_dir.display(),
            FILES[0]
        );
    }
    let before = sizes(&args.db_dir)?;
    let session = events::unique_session("disk");
    println!("disk: {} events over {} connections, session {session}", args.events, args.connections);
    let messages = events::sign_now(args.events, &session, "disk-author", args.authors).await?;
    let json_bytes =
        messages.iter().map(|m| m.len() - r#"["EVENT",]"#.len()).sum::<usize>() as f64 / args.events as f64;

    let report = sender::send_all(url, messages, args.connections, args.window, None).await?;
    report.print();
    let stored = report.accepted - report.duplicates;
    if stored == 0 {
        bail!("the relay stored none of the events; nothing to measure");
    }

    println!("waiting for the relay's WAL checkpoint (sizes unchanged for {}s)...", args.settle_secs);
    let settled = settle(&args.db_dir, Duration::from_secs(args.settle_secs)).await?;
    let total: u64 = settled.iter().sum();
    let grown = total.saturating_sub(before.iter().sum());
    for (name, size) in FILES.iter().zip(&settled) {
        println!("  {name:14} {size:>14} bytes");
    }
    let per_event = grown as f64 / stored as f64;
    println!("{stored} events stored (~{json_bytes:.0} bytes of JSON each): {per_event:.0} bytes on disk per event");
    summary::print(
        "disk",
        json!({
            "events": args.events,
            "stored": stored,
            "json_bytes_per_event": json_bytes.round(),
            "db_bytes": settled[0],
            "wal_bytes": settled[1],
            "shm_bytes": settled[2],
            "bytes_per_event": round3(per_event),
        }),
    );
    Ok(())
}

/// Sizes of the database files (0 for a missing one), in [`FILES`] order.
fn sizes(dir: &Path) -> Result<[u64; 3]> {
    let mut out = [0; 3];
    for (slot, name) in out.iter_mut().zip(FILES) {
        let path = dir.join(name);
        *slot = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
        };
    }
    Ok(out)
}

/// Polls the file sizes until they have not changed for `quiet`.
async fn settle(dir: &Path, quiet: Duration) -> Result<[u64; 3]> {
    let started = tokio::time::Instant::now();
    let mut last = sizes(dir)?;
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(POLL).await;
        let now = sizes(dir)?;
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return Ok(now);
        }
        if started.elapsed() > MAX_WAIT {
            bail!(
                "the database files in {} kept changing for {}s after the load: is something else writing?",
                dir.display(),
                MAX_WAIT.as_secs()
            );
        }
    }
}
