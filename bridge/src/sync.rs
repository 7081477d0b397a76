//! Catch-up: two nodes reconcile what they missed when they (re)connect.
//!
//! NIP-77's negentropy set reconciliation, carried over a libp2p request-response protocol
//! (`/dephy/<network>/sync/1.0.0`, CBOR) instead of a WebSocket. When a connection to a peer
//! is established each side runs [`catch_up`] as the initiator over the events with
//! `created_at` in the last `catchup_window_secs`:
//!
//! 1. `Reconcile` rounds until negentropy has found the ids the peer holds and we do not;
//! 2. `Fetch` those ids in batches and put each event through verification, the relay's write
//!    policy and the ordinary ingest path.
//!
//! The peer does the same in the other direction, so after a partition heals both hold the
//! union.
//!
//! The relay's policy includes its rate limits (per author, per peer). A fetched event over
//! them is not stored and not lost: it stays among the ids the peer holds and we do not, so the
//! next session with that peer finds and fetches it again. [`Report::deferred`] counts such
//! events, and a follow-up session runs after a pause while any were deferred
//! ([`crate::catchups`]), so an honest federation heals even when a burst exceeds a node's
//! limits.
//!
//! The responder ([`answer`]) is stateless: each round rebuilds the window's inventory from the
//! database, as negentropy allows.

use std::sync::Arc;

use libp2p::PeerId;
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use nostr::{Event, JsonUtil as _};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::identity::wallet_of;
use crate::metrics as m;
use crate::network::MAX_SYNC_RESPONSE;
use crate::port::{Ingested, RelayPort, is_rate_limited};

/// Most ids asked for in one `Fetch`.
pub const FETCH_BATCH: usize = 200;
/// Negentropy frame size limit of the initiator's messages.
const FRAME_LIMIT: u64 = 256 * 1024;
/// Most reconciliation rounds before a session gives up.
const MAX_ROUNDS: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SyncRequest {
    /// One negentropy round over the events with `since <= created_at <= until`.
    Reconcile { since: u64, until: u64, msg: Vec<u8> },
    /// The events with these ids.
    Fetch { ids: Vec<[u8; 32]> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SyncResponse {
    Reconcile { msg: Vec<u8> },
    Events { events: Vec<String> },
    Error { message: String },
}

/// A request to send to a peer through the swarm, and where its answer goes.
pub struct Outbound {
    pub peer: PeerId,
    pub request: SyncRequest,
    pub reply: oneshot::Sender<Result<SyncResponse, String>>,
}

/// Sends sync requests through the node's event loop.
#[derive(Clone)]
pub struct Requester(pub mpsc::Sender<Outbound>);

impl Requester {
    async fn ask(&self, peer: PeerId, request: SyncRequest) -> Result<SyncResponse, String> {
        let (reply, rx) = oneshot::channel();
        self.0.send(Outbound { peer, request, reply }).await.map_err(|_| "the bridge is stopping".to_string())?;
        match rx.await.map_err(|_| "the bridge is stopping".to_string())?? {
            SyncResponse::Error { message } => Err(format!("peer refused: {message}")),
            other => Ok(other),
        }
    }
}

/// What one catch-up session did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Ids the peer held and we did not.
    pub needed: usize,
    /// Of those, events stored (or delivered) here.
    pub stored: usize,
    /// Ids we hold and the peer does not (it fetches them in its own session).
    pub offered: usize,
    /// Events refused by the relay's rate limits: the next session offers them again.
    pub deferred: usize,
}

/// Runs one catch-up session as initiator with `peer` over `[now - window, now + slack]`.
pub async fn catch_up(
    peer: PeerId,
    requester: &Requester,
    relay: &Arc<dyn RelayPort>,
    window_secs: u64,
) -> Result<Report, String> {
    let wallet = wallet_of(&peer).ok_or_else(|| format!("peer {peer} has no wallet in its PeerId"))?;
    let now = nostr::Timestamp::now().as_secs();
    let since = now.saturating_sub(window_secs);
    // Events up to the relay's future tolerance are included; a few seconds more are harmless.
    let until = now + 3600;
    let storage = storage(relay, since, until).await?;
    let mut neg = Negentropy::owned(storage, FRAME_LIMIT).map_err(|e| e.to_string())?;
    let mut msg = neg.initiate().map_err(|e| e.to_string())?;
    let (mut have, mut need) = (Vec::<Id>::new(), Vec::<Id>::new());
    let mut rounds = 0;
    loop {
        rounds += 1;
        if rounds > MAX_ROUNDS {
            return Err(format!("reconciliation did not converge in {MAX_ROUNDS} rounds"));
        }
        let answer = match requester.ask(peer, SyncRequest::Reconcile { since, until, msg }).await? {
            SyncResponse::Reconcile { msg } => msg,
            other => return Err(format!("unexpected answer to Reconcile: {other:?}")),
        };
        match neg.reconcile_with_ids(&answer, &mut have, &mut need).map_err(|e| format!("negentropy: {e}"))? {
            Some(next) => msg = next,
            None => break,
        }
    }
    let mut report = Report { needed: need.len(), offered: have.len(), ..Report::default() };
    let need: Vec<[u8; 32]> = need.into_iter().map(|id| *id).collect();
    for batch in need.chunks(FETCH_BATCH) {
        let events = match requester.ask(peer, SyncRequest::Fetch { ids: batch.to_vec() }).await? {
            SyncResponse::Events { events } => events,
            other => return Err(format!("unexpected answer to Fetch: {other:?}")),
        };
        let mut admitted = Vec::with_capacity(events.len());
        for json in events {
            match admit(relay, &json, batch, &wallet) {
                Ok(event) => admitted.push(event),
                Err(reason) if is_rate_limited(&reason) => report.deferred += 1,
                Err(reason) => tracing::debug!(%peer, %reason, "catch-up: event from peer refused"),
            }
        }
        // In creation order, so a session chain's predecessor is written before its successor.
        admitted.sort_by_key(|e| e.created_at);
        let mut pending = Vec::with_capacity(admitted.len());
        for event in admitted {
            pending.push(relay.submit(event).await);
        }
        for outcome in futures_util::future::join_all(pending).await {
            if outcome == Ingested::New {
                report.stored += 1;
            }
        }
    }
    metrics::counter!(m::SYNCED).increment(report.stored as u64);
    metrics::counter!(m::SYNC_DEFERRED).increment(report.deferred as u64);
    Ok(report)
}

/// Checks a fetched event: one we asked for, valid id and signature, within the relay's policy.
fn admit(relay: &Arc<dyn RelayPort>, json: &str, asked: &[[u8; 32]], peer: &[u8; 32]) -> Result<Event, String> {
    let event = Event::from_json(json).map_err(|e| format!("invalid: not an event: {e}"))?;
    if !asked.contains(&event.id.to_bytes()) {
        return Err("invalid: an event that was not asked for".into());
    }
    event.verify().map_err(|e| format!("invalid: {e}"))?;
    relay.check(&event, json.len(), peer)?;
    Ok(event)
}

/// Answers a peer's request (the responder side).
pub async fn answer(relay: Arc<dyn RelayPort>, request: SyncRequest) -> SyncResponse {
    match request {
        SyncRequest::Reconcile { since, until, msg } => {
            let result = async {
                let storage = storage(&relay, since, until).await?;
                let mut neg = Negentropy::owned(storage, 0).map_err(|e| e.to_string())?;
                neg.reconcile(&msg).map_err(|e| format!("negentropy: {e}"))
            }
            .await;
            match result {
                Ok(msg) => SyncResponse::Reconcile { msg },
                Err(message) => SyncResponse::Error { message },
            }
        }
        SyncRequest::Fetch { ids } if ids.len() > FETCH_BATCH => {
            SyncResponse::Error { message: format!("at most {FETCH_BATCH} ids per Fetch") }
        }
        SyncRequest::Fetch { ids } => match relay.fetch(ids).await {
            Ok(mut events) => {
                // Stay under the response size limit; the peer asks again next session.
                let mut total = 0u64;
                events.retain(|e| {
                    total += e.len() as u64 + 16;
                    total < MAX_SYNC_RESPONSE - 4096
                });
                SyncResponse::Events { events }
            }
            Err(message) => SyncResponse::Error { message },
        },
    }
}

async fn storage(relay: &Arc<dyn RelayPort>, since: u64, until: u64) -> Result<NegentropyStorageVector, String> {
    let items = relay.inventory(since, until).await?;
    let mut storage = NegentropyStorageVector::with_capacity(items.len());
    for (created_at, id) in items {
        storage.insert(created_at, Id::from_byte_array(id)).map_err(|e| e.to_string())?;
    }
    storage.seal().map_err(|e| e.to_string())?;
    Ok(storage)
}
