//! The responder's side of catch-up: answers peers' `Reconcile` and `Fetch` requests.
//!
//! Every request is bounded by this node's own settings, not the peer's:
//! - the slice is clamped to this node's catch-up window (`catchup_window_secs` back, up to
//!   [`FUTURE_SLACK_SECS`] ahead, a few minutes' grace for clock skew); outside it the
//!   responder answers as if it held nothing, so a request for `0..u64::MAX` costs no more
//!   than one for the window;
//! - at most `max_items + 1` events of a slice are read; more, and the answer is
//!   [`SyncResponse::Split`];
//! - negentropy frames are cut at [`FRAME_LIMIT`];
//! - the inventories of the last [`CACHE_SLICES`] slices are kept for [`CACHE_TTL`], for the
//!   following rounds of the same session (peer and session number): the rounds over one
//!   slice read the database once, and a new session always sees the current events;
//! - [`Responder::admit`] allows `sessions_per_peer` requests of one peer and `max_sessions`
//!   in all at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use negentropy::{Id, Negentropy, NegentropyStorageVector};

use super::{FETCH_BATCH, FRAME_LIMIT, FUTURE_SLACK_SECS, SyncLimits, SyncRequest, SyncResponse};
use crate::metrics as m;
use crate::network::MAX_SYNC_RESPONSE;
use crate::port::RelayPort;
use crate::slice::Slice;

/// Inventories kept for the next rounds (each at most `max_items` events, 40 bytes each).
pub const CACHE_SLICES: usize = 4;
/// How long a cached inventory is used.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Tolerance for the initiator's clock, on both ends of the window.
const CLOCK_GRACE_SECS: u64 = 300;
/// The window's ends are rounded to this many seconds, so the clamped slice (the cache key)
/// stays the same across the rounds of a session.
const WINDOW_STEP_SECS: u64 = 60;

/// One slice's inventory; `None`: more than `max_items` events.
type Inventory = Option<Arc<NegentropyStorageVector>>;
/// Whose session, which session, which (clamped) slice.
type CacheKey = (PeerId, u64, Slice);

pub struct Responder {
    relay: Arc<dyn RelayPort>,
    limits: SyncLimits,
    cache: Mutex<VecDeque<(CacheKey, Instant, Inventory)>>,
    sessions: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    total: usize,
    per_peer: HashMap<PeerId, usize>,
}

/// A request being answered; counted against the limits until dropped.
pub struct Permit {
    responder: Arc<Responder>,
    peer: PeerId,
}

impl Permit {
    /// Answers the admitted request.
    pub async fn answer(&self, request: SyncRequest) -> SyncResponse {
        self.responder.answer(self.peer, request).await
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.responder.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.total -= 1;
        if let Some(n) = s.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                s.per_peer.remove(&self.peer);
            }
        }
    }
}

impl Responder {
    pub fn new(relay: Arc<dyn RelayPort>, limits: SyncLimits) -> Arc<Self> {
        Arc::new(Self { relay, limits, cache: Mutex::new(VecDeque::new()), sessions: Mutex::default() })
    }

    /// A permit to answer one request of `peer`, or the `rate-limited:` refusal to send back.
    pub fn admit(self: &Arc<Self>, peer: PeerId) -> Result<Permit, String> {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mine = s.per_peer.get(&peer).copied().unwrap_or(0);
        let refusal = if mine >= self.limits.sessions_per_peer {
            Some((
                "peer",
                format!("rate-limited: at most {} catch-up requests at a time", self.limits.sessions_per_peer),
            ))
        } else if s.total >= self.limits.max_sessions {
            Some(("total", "rate-limited: this node is answering as many catch-up requests as it allows".to_string()))
        } else {
            None
        };
        if let Some((reason, message)) = refusal {
            metrics::counter!(m::SYNC_REFUSED, "reason" => if reason == "peer" { "peer_busy" } else { "node_busy" })
                .increment(1);
            return Err(message);
        }
        s.total += 1;
        *s.per_peer.entry(peer).or_default() += 1;
        Ok(Permit { responder: self.clone(), peer })
    }

    /// Answers a request of `peer`.
    pub async fn answer(&self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        match request {
            SyncRequest::Reconcile { session, slice, msg } => {
                metrics::counter!(m::SYNC_ROUNDS, "role" => "responder").increment(1);
                match self.reconcile((peer, session, slice), &msg).await {
                    Ok(response) => response,
                    Err((reason, message)) => {
                        metrics::counter!(m::SYNC_REFUSED, "reason" => reason).increment(1);
                        SyncResponse::Error { message }
                    }
                }
            }
            SyncRequest::Fetch { ids } if ids.len() > FETCH_BATCH => {
                metrics::counter!(m::SYNC_REFUSED, "reason" => "too_many_ids").increment(1);
                SyncResponse::Error { message: format!("invalid: at most {FETCH_BATCH} ids per Fetch") }
            }
            SyncRequest::Fetch { ids } => match self.relay.fetch(ids).await {
                Ok(mut events) => {
                    // Stay under the response size limit; the peer asks again next session.
                    let mut total = 0u64;
                    events.retain(|e| {
                        total += e.len() as u64 + 16;
                        total < MAX_SYNC_RESPONSE - 4096
                    });
                    SyncResponse::Events { events }
                }
                Err(message) => {
                    metrics::counter!(m::SYNC_REFUSED, "reason" => "error").increment(1);
                    SyncResponse::Error { message }
                }
            },
        }
    }

    /// The part of the events this node reconciles with peers now.
    pub fn window(&self) -> Slice {
        let now = nostr::Timestamp::now().as_secs();
        let since = now.saturating_sub(self.limits.window_secs).saturating_sub(CLOCK_GRACE_SECS);
        let until = now.saturating_add(FUTURE_SLACK_SECS + CLOCK_GRACE_SECS);
        Slice::seconds(since / WINDOW_STEP_SECS * WINDOW_STEP_SECS, until.div_ceil(WINDOW_STEP_SECS) * WINDOW_STEP_SECS)
    }

    async fn reconcile(&self, key: CacheKey, msg: &[u8]) -> Result<SyncResponse, (&'static str, String)> {
        let (peer, session, slice) = key;
        let slice = slice.clamp(&self.window());
        let storage = if slice.is_empty() {
            empty()
        } else {
            match self.inventory((peer, session, slice)).await.map_err(|e| ("error", e))? {
                Some(storage) => storage,
                None => {
                    metrics::counter!(m::SYNC_SPLITS).increment(1);
                    return Ok(SyncResponse::Split);
                }
            }
        };
        let mut neg = Negentropy::borrowed(storage.as_ref(), FRAME_LIMIT).map_err(|e| ("error", e.to_string()))?;
        let msg = neg.reconcile(msg).map_err(|e| ("bad_message", format!("invalid: negentropy: {e}")))?;
        Ok(SyncResponse::Reconcile { msg })
    }

    /// The slice's inventory, from the cache or the database (at most `max_items + 1` rows).
    async fn inventory(&self, key: CacheKey) -> Result<Inventory, String> {
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let slice = key.2;
        let max = self.limits.max_items.max(1);
        let items = self.relay.inventory(slice, max + 1).await?;
        let inventory = if items.len() > max {
            None
        } else {
            let mut storage = NegentropyStorageVector::with_capacity(items.len());
            for (created_at, id) in items {
                storage.insert(created_at, Id::from_byte_array(id)).map_err(|e| e.to_string())?;
            }
            storage.seal().map_err(|e| e.to_string())?;
            Some(Arc::new(storage))
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(k, at, _)| k != &key && at.elapsed() < CACHE_TTL);
        while cache.len() >= CACHE_SLICES {
            cache.pop_front();
        }
        cache.push_back((key, Instant::now(), inventory.clone()));
        Ok(inventory)
    }

    fn cached(&self, key: &CacheKey) -> Option<Inventory> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.iter().find(|(k, at, _)| k == key && at.elapsed() < CACHE_TTL).map(|(_, _, inv)| inv.clone())
    }
}

fn empty() -> Arc<NegentropyStorageVector> {
    let mut storage = NegentropyStorageVector::new();
    storage.seal().expect("an empty storage seals");
    Arc::new(storage)
}
