//! The initiator's side of catch-up: one session with one peer, slice by slice.
//!
//! Bounded whatever the peer claims: our inventory of a slice holds at most `max_items`
//! events (a larger slice is split before anything is sent), each answer at most
//! [`MAX_FRAME_IN`] bytes, the ids the peer claims in one slice at most `max_items` (beyond,
//! the slice is split, as when the peer answers `Split`: it may allow larger slices), and the
//! ids are fetched (in batches of [`FETCH_BATCH`]) as each round yields them, so nothing
//! accumulates across rounds or slices. Ids we hold and the peer lacks are only counted: the
//! peer fetches them in its own session.
//!
//! The relay's policy includes its rate limits (per author, per peer). A fetched event over
//! them is not stored and not lost: it stays among the ids the peer holds and we do not, so the
//! next session with that peer finds and fetches it again. [`Report::deferred`] counts such
//! events, and a follow-up session runs after a pause while any were deferred
//! ([`crate::catchups`]), so an honest federation heals even when a burst exceeds a node's
//! limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use negentropy::{Id, Negentropy, NegentropyStorageVector};

use super::{
    FETCH_BATCH, FRAME_LIMIT, FUTURE_SLACK_SECS, MAX_FRAME_IN, MAX_ROUNDS_PER_SLICE, MAX_SLICES, Requester, SyncLimits,
    SyncRequest, SyncResponse,
};
use crate::identity::wallet_of;
use crate::metrics as m;
use crate::port::{Ingested, Received, RelayPort, is_rate_limited};
use crate::slice::Slice;

/// Interval of the progress log line of a long session.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What one catch-up session did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Ids the peer held and we did not.
    pub needed: usize,
    /// Of those, events stored (or delivered) here.
    pub stored: usize,
    /// Ids we hold and the peer does not (it fetches them in its own session).
    pub offered: usize,
    /// Slices reconciled.
    pub slices: usize,
    /// Slices split because one side held more than `max_items` events in them.
    pub splits: usize,
    /// Reconcile rounds.
    pub rounds: usize,
    /// Events refused by the relay's rate limits: the next session offers them again.
    pub deferred: usize,
}

/// Runs one catch-up session as initiator with `peer` over `[now - window, now + slack]`.
pub async fn catch_up(
    peer: PeerId,
    requester: &Requester,
    relay: &Arc<dyn RelayPort>,
    limits: &SyncLimits,
) -> Result<Report, String> {
    let wallet = wallet_of(&peer).ok_or_else(|| format!("peer {peer} has no wallet in its PeerId"))?;
    let now = nostr::Timestamp::now().as_secs();
    let window = Slice::seconds(now.saturating_sub(limits.window_secs), now.saturating_add(FUTURE_SLACK_SECS));
    tracing::info!(%peer, window_secs = limits.window_secs, max_items = limits.max_items, "catch-up started");
    let mut session = Session {
        peer,
        requester,
        relay,
        wallet,
        max_items: limits.max_items.max(1),
        session: {
            use std::hash::{BuildHasher as _, Hasher as _};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        },
        report: Report::default(),
        last_progress: Instant::now(),
    };
    // Depth first, lower half first: events arrive roughly in creation order, and the stack
    // holds at most one pending half per level of splitting (320 levels at most).
    let mut stack = vec![window];
    let mut seen = 0usize;
    while let Some(slice) = stack.pop() {
        seen += 1;
        if seen > MAX_SLICES {
            return Err(format!("more than {MAX_SLICES} slices in one session; stopped"));
        }
        if session.reconcile(slice).await? {
            session.report.slices += 1;
            metrics::counter!(m::SYNC_SLICES).increment(1);
        } else {
            let (lower, upper) = slice
                .split()
                .ok_or("the peer claims too many events in a slice of a single key (it splits or claims endlessly)")?;
            session.report.splits += 1;
            stack.push(upper);
            stack.push(lower);
        }
        session.progress(stack.len());
    }
    metrics::counter!(m::SYNC_DEFERRED).increment(session.report.deferred as u64);
    Ok(session.report)
}

struct Session<'a> {
    peer: PeerId,
    requester: &'a Requester,
    relay: &'a Arc<dyn RelayPort>,
    /// The peer's wallet: the rate-limit key of its events.
    wallet: [u8; 32],
    max_items: usize,
    /// Random: names this session to the responder's inventory cache.
    session: u64,
    report: Report,
    last_progress: Instant,
}

impl Session<'_> {
    /// Reconciles one slice and fetches what we lack; `false` when it must be split first.
    async fn reconcile(&mut self, slice: Slice) -> Result<bool, String> {
        let own = self.relay.inventory(slice, self.max_items + 1).await?;
        if own.len() > self.max_items {
            return Ok(false);
        }
        let mut storage = NegentropyStorageVector::with_capacity(own.len());
        for (created_at, id) in own {
            storage.insert(created_at, Id::from_byte_array(id)).map_err(|e| e.to_string())?;
        }
        storage.seal().map_err(|e| e.to_string())?;
        let mut neg = Negentropy::borrowed(&storage, FRAME_LIMIT).map_err(|e| e.to_string())?;
        let mut msg = neg.initiate().map_err(|e| e.to_string())?;
        let mut claimed = 0usize;
        for _ in 0..MAX_ROUNDS_PER_SLICE {
            self.report.rounds += 1;
            metrics::counter!(m::SYNC_ROUNDS, "role" => "initiator").increment(1);
            let answer = match self
                .requester
                .ask(self.peer, SyncRequest::Reconcile { session: self.session, slice, msg })
                .await?
            {
                SyncResponse::Reconcile { msg } => msg,
                SyncResponse::Split => return Ok(false),
                other => return Err(format!("unexpected answer to Reconcile: {}", kind(&other))),
            };
            if answer.len() > MAX_FRAME_IN {
                return Err(format!("negentropy message of {} bytes (at most {MAX_FRAME_IN})", answer.len()));
            }
            let (mut have, mut need) = (Vec::new(), Vec::new());
            let next = neg.reconcile_with_ids(&answer, &mut have, &mut need).map_err(|e| format!("negentropy: {e}"))?;
            self.report.offered += have.len();
            claimed += need.len();
            if claimed > self.max_items {
                // More than we take in one slice (the peer may allow larger ones): split it.
                // What was fetched so far is stored; the halves find only the rest.
                return Ok(false);
            }
            self.fetch(need).await?;
            match next {
                Some(next) => msg = next,
                None => return Ok(true),
            }
        }
        Err(format!("reconciliation of a slice did not converge in {MAX_ROUNDS_PER_SLICE} rounds"))
    }

    /// Fetches `need` in batches and hands the valid, asked-for events to the relay.
    async fn fetch(&mut self, need: Vec<Id>) -> Result<(), String> {
        self.report.needed += need.len();
        let mut pending = Pending::new(need.len());
        let need: Vec<[u8; 32]> = need.into_iter().map(|id| *id).collect();
        for batch in need.chunks(FETCH_BATCH) {
            let events = match self.requester.ask(self.peer, SyncRequest::Fetch { ids: batch.to_vec() }).await? {
                SyncResponse::Events { events } => events,
                other => return Err(format!("unexpected answer to Fetch: {}", kind(&other))),
            };
            let mut admitted = Vec::with_capacity(events.len().min(batch.len()));
            for json in events {
                match admit(self.relay, &json, batch, &self.wallet) {
                    Ok(event) => admitted.push(event),
                    Err(reason) if is_rate_limited(&reason) => self.report.deferred += 1,
                    Err(reason) => tracing::debug!(peer = %self.peer, %reason, "catch-up: event from peer refused"),
                }
            }
            // In creation order, so a session chain's predecessor is written before its successor.
            admitted.sort_by_key(|e| e.event.created_at);
            let mut committing = Vec::with_capacity(admitted.len());
            for event in admitted {
                committing.push(self.relay.submit(event).await);
            }
            let mut stored = 0;
            for outcome in futures_util::future::join_all(committing).await {
                if outcome == Ingested::New {
                    stored += 1;
                }
            }
            self.report.stored += stored;
            metrics::counter!(m::SYNCED).increment(stored as u64);
            pending.done(batch.len());
            self.progress(0);
        }
        Ok(())
    }

    fn progress(&mut self, queued_slices: usize) {
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            let r = &self.report;
            tracing::info!(peer = %self.peer, slices = r.slices, queued_slices, rounds = r.rounds, needed = r.needed,
                stored = r.stored, offered = r.offered, "catch-up in progress");
        }
    }
}

/// Ids known to be missing and not fetched yet, in the `dephy_bridge_sync_pending_ids` gauge.
struct Pending(usize);

impl Pending {
    fn new(n: usize) -> Self {
        metrics::gauge!(m::SYNC_PENDING).increment(n as f64);
        Pending(n)
    }

    fn done(&mut self, n: usize) {
        let n = n.min(self.0);
        self.0 -= n;
        metrics::gauge!(m::SYNC_PENDING).decrement(n as f64);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        metrics::gauge!(m::SYNC_PENDING).decrement(self.0 as f64);
    }
}

fn kind(response: &SyncResponse) -> &'static str {
    match response {
        SyncResponse::Reconcile { .. } => "Reconcile",
        SyncResponse::Split => "Split",
        SyncResponse::Events { .. } => "Events",
        SyncResponse::Error { .. } => "Error",
    }
}

/// Checks a fetched event: one we asked for, valid id and signature, within the relay's policy.
fn admit(relay: &Arc<dyn RelayPort>, json: &str, asked: &[[u8; 32]], peer: &[u8; 32]) -> Result<Received, String> {
    let received = relay.read(json).map_err(|e| format!("invalid: {}", e.strip_prefix("invalid: ").unwrap_or(&e)))?;
    if !asked.contains(&received.event.id.to_bytes()) {
        return Err("invalid: an event that was not asked for".into());
    }
    relay.check(&received.event, json.len(), peer)?;
    Ok(received)
}
