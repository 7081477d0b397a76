//! DePHY-style event generation and parallel pre-signing.
//!
//! Every benchmark signs its events before the timed phase (signing is the client's cost, not
//! the relay's), spread over all cores. An event is kind 1573 with an `s` (session) and a `p`
//! (machine) tag and a DePHY `Status` message as content; `seq` in the payload keeps ids unique
//! even when author, tags and `created_at` coincide.

use std::num::NonZero;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use nostr::prelude::*;

/// The DePHY message kind.
pub const DEPHY_KIND: u16 = 1573;

/// What varies between two DePHY events.
pub struct Dephy<'a> {
    pub author: &'a Keys,
    pub session: &'a str,
    pub machine: &'a PublicKey,
    pub created_at: Timestamp,
    pub seq: u64,
}

impl Dephy<'_> {
    /// Build and sign the event.
    pub fn sign(&self) -> Result<Event> {
        let payload = serde_json::json!({ "seq": self.seq }).to_string();
        let content = serde_json::json!({
            "Status": {
                "status": "Working",
                "reason": "UserRequest",
                "initial_request": "0".repeat(64),
                "payload": payload,
            }
        });
        let tags = [Tag::parse(["s", self.session])?, Tag::parse(["p".to_owned(), self.machine.to_hex()])?];
        Ok(EventBuilder::new(Kind::Custom(DEPHY_KIND), content.to_string())
            .tags(tags)
            .custom_created_at(self.created_at)
            .sign_with_keys(self.author)?)
    }
}

/// The client message that publishes `event`: `["EVENT",{...}]`.
pub fn wire(event: &Event) -> String {
    format!(r#"["EVENT",{}]"#, event.as_json())
}

/// Seconds since the UNIX epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A name no earlier run used, e.g. `bench-ingest-1767000000123456789`, so reruns never
/// collide with stored events.
pub fn unique_session(bench: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("bench-{bench}-{nanos}")
}

/// Compute `make(0..count)` on every core and return the results in index order. Meant for
/// signing: `make` builds and signs event `i` and returns whatever the benchmark keeps of it.
pub async fn sign_parallel<T, F>(count: usize, make: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Result<T> + Send + Sync + 'static,
{
    let threads = std::thread::available_parallelism().map_or(1, NonZero::get);
    let started = std::time::Instant::now();
    println!("signing {count} events on {threads} threads...");
    let signed = tokio::task::spawn_blocking(move || {
        let chunk = count.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let make = &make;
            let workers: Vec<_> = (0..count)
                .step_by(chunk)
                .map(|start| scope.spawn(move || (start..count.min(start + chunk)).map(make).collect()))
                .collect();
            let mut all = Vec::with_capacity(count);
            for worker in workers {
                let part: Result<Vec<T>> = worker.join().map_err(|_| anyhow!("a signing thread panicked"))?;
                all.extend(part?);
            }
            Ok::<_, anyhow::Error>(all)
        })
    })
    .await
    .context("the signing task failed")??;
    println!("signed {count} events in {:.1}s", started.elapsed().as_secs_f64());
    Ok(signed)
}

/// Machines the events of [`sign_now`] are spread over (`p` tags).
const NOW_MACHINES: usize = 100;

/// `count` EVENT messages of DePHY events created now in `session`, signed in parallel by
/// `authors` keys derived from `author_label` (round-robin) and spread over 100 machines:
/// the publishing workload of `ingest` and `disk`.
pub async fn sign_now(count: usize, session: &str, author_label: &str, authors: usize) -> Result<Vec<String>> {
    let authors: Vec<Keys> = (0..authors).map(|a| crate::workload::derive_keys(author_label, a)).collect();
    let machines: Vec<PublicKey> =
        (0..NOW_MACHINES).map(|m| crate::workload::derive_keys("machine", m).public_key()).collect();
    let created_at = Timestamp::now();
    let session = session.to_string();
    sign_parallel(count, move |i| {
        let event = Dephy {
            author: &authors[i % authors.len()],
            session: &session,
            machine: &machines[i % machines.len()],
            created_at,
            seq: i as u64,
        }
        .sign()?;
        Ok(wire(&event))
    })
    .await
}
