//! The ingest stage: everything between a parsed EVENT and the writer queue.
//!
//! `verify` (id and signature) → `policy` (limits, expiry, auth, NIP-62 scope, NIP-70, rate
//! limits) → ephemeral events are shared with other relay processes (PostgreSQL) and go
//! straight onto the committed-event stream (`distribute`); the rest are queued for group
//! commit. It all runs in the calling connection's task, so on every core.
//! Events from federation peers take the same path ([`Ingest::check_peer`], then
//! [`Ingest::submit_peer`]), with the forwarding peer's wallet in place of the client's IP.

pub mod policy;
pub mod verify;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use nostr::{Event, PublicKey};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::limits::RateLimits;
use crate::metrics as m;
use crate::store::writer::{Committed, CommittedBatch, WriteResult, Writer};
use crate::store::{IndexedEvent, KindClass, Origin, Store, WriteOutcome};

/// What the connection should do with an EVENT.
pub enum Submitted {
    /// Answer now with this OK message (accepted, message).
    Done { accepted: bool, message: String },
    /// Answer when the write commits.
    Pending(oneshot::Receiver<WriteResult>),
}

impl Submitted {
    fn reject(message: String) -> Self {
        let reason = message.split(':').next().unwrap_or("error").to_string();
        metrics::counter!(m::EVENTS_REJECTED, "reason" => reason).increment(1);
        Self::Done { accepted: false, message }
    }
}

/// Who is sending: the connection's address and the pubkeys it authenticated as (NIP-42).
pub struct Sender<'a> {
    pub ip: IpAddr,
    pub authed: &'a HashSet<PublicKey>,
}

/// The shared ingest stage.
pub struct Ingest {
    cfg: Arc<Config>,
    rates: Arc<RateLimits>,
    writer: Writer,
    /// The committed-event stream, for ephemeral events (never stored).
    committed: mpsc::Sender<CommittedBatch>,
    store: Store,
    /// Decoded keys of recent authors, for signature checks.
    keys: verify::AuthorKeys,
    /// Throttles the log lines of refused peer events.
    refusal_log: LogThrottle,
}

/// Seconds between two log lines about refused peer events (a peer may send thousands).
pub const REFUSAL_LOG_SECS: i64 = 10;

/// Lets one log line through per [`REFUSAL_LOG_SECS`].
#[derive(Default)]
struct LogThrottle {
    last: AtomicI64,
}

impl LogThrottle {
    fn ready(&self) -> bool {
        let now = crate::store::now_secs();
        let last = self.last.load(Ordering::Relaxed);
        now - last >= REFUSAL_LOG_SECS
            && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

impl Ingest {
    pub fn new(
        cfg: Arc<Config>,
        rates: Arc<RateLimits>,
        writer: Writer,
        committed: mpsc::Sender<CommittedBatch>,
        store: Store,
    ) -> Self {
        Self { cfg, rates, writer, committed, store, keys: Default::default(), refusal_log: LogThrottle::default() }
    }

    /// Checks an event and hands it on; see [`Submitted`]. `json` is the event's compact JSON
    /// (stored and served verbatim), `raw_len` its size as received.
    pub async fn submit(&self, event: Box<Event>, json: String, raw_len: usize, from: Sender<'_>) -> Submitted {
        metrics::counter!(m::EVENTS_RECEIVED).increment(1);
        if !self.rates.event_from_ip(from.ip) {
            return Submitted::reject("rate-limited: too many events from your address; slow down".into());
        }
        if let Err(msg) = policy::check_size(raw_len, &self.cfg.limits) {
            return Submitted::reject(msg);
        }
        if let Err(msg) = self.verify(&event) {
            return Submitted::reject(msg);
        }
        let now = crate::store::now_secs();
        if let Err(msg) = policy::check_event(&event, now, &self.cfg.limits) {
            return Submitted::reject(msg);
        }
        if let Err(msg) = policy::check_auth(&event, from.authed, &self.cfg.auth) {
            return Submitted::reject(msg);
        }
        if let Err(msg) = policy::check_vanish(&event, self.cfg.relay_url.as_deref()) {
            return Submitted::reject(msg);
        }
        if !self.rates.event_by_author(event.pubkey.to_bytes()) {
            return Submitted::reject("rate-limited: too many events from this author; slow down".into());
        }

        let event: Arc<Event> = Arc::from(event);
        if KindClass::of(event.kind) == KindClass::Ephemeral {
            self.deliver_ephemeral(event, json.into(), Origin::Client).await;
            return Submitted::Done { accepted: true, message: String::new() };
        }
        let indexed = IndexedEvent::with_json(event, json, crate::store::now_millis());
        Submitted::Pending(self.writer.submit(indexed).await)
    }
}

impl Ingest {
    /// Queues an event the relay made itself (a checkpoint), skipping client policy.
    pub async fn submit_own(&self, event: Event) -> oneshot::Receiver<WriteResult> {
        let indexed = IndexedEvent::new(Arc::new(event), crate::store::now_millis()).with_origin(Origin::Own);
        self.writer.submit(indexed).await
    }

    /// Checks an event's id and signature (an `invalid:` message otherwise): a client's event
    /// in [`Ingest::submit`], a federation peer's in the bridge (through `RelayPort::read`).
    pub fn verify(&self, event: &Event) -> Result<(), String> {
        verify::verify(event, &self.keys)
    }

    /// The write policy for an event from a federation peer, whose id and signature the
    /// bridge has verified; `peer` is the wallet of the peer that forwarded it. The same as a
    /// client's event passes, in the same order: the per-peer rate limit (in place of the
    /// per-IP one), size and content limits, created_at window, expiry, the scope of a request
    /// to vanish (only `ALL_RELAYS` or this relay's `relay_url`, see
    /// [`policy::check_vanish`]), then the per-author rate limit, shared with clients. Protected
    /// events (NIP-70) are not mirrored: only their author may publish them. NIP-42 does not
    /// apply: the peer is authenticated by the registry instead.
    ///
    /// A refusal is counted in `relay_peer_events_refused_total` by reason and logged (at most
    /// one line per [`REFUSAL_LOG_SECS`]); the bridge drops the event without penalising the peer.
    /// What becomes of an event refused by a rate limit is the bridge's concern: gossip drops
    /// it, catch-up fetches it again in a later session (see `dephy_bridge::sync`).
    pub fn check_peer(&self, event: &Event, raw_len: usize, peer: &[u8; 32]) -> Result<(), String> {
        let result = self.peer_policy(event, raw_len, peer);
        if let Err((reason, message)) = &result {
            metrics::counter!(m::PEER_EVENTS_REFUSED, "reason" => *reason).increment(1);
            if self.refusal_log.ready() {
                tracing::warn!(
                    peer = %bs58::encode(peer).into_string(),
                    author = %event.pubkey,
                    id = %event.id,
                    %message,
                    "event from a federation peer refused (further refusals in the next {REFUSAL_LOG_SECS} s are only counted)"
                );
            }
        }
        result.map_err(|(_, message)| message)
    }

    fn peer_policy(&self, event: &Event, raw_len: usize, peer: &[u8; 32]) -> Result<(), (&'static str, String)> {
        let prefixed = |message: String| (m::peer_refuse_reason(&message), message);
        if !self.rates.event_from_peer(*peer) {
            return Err(("rate-limited", "rate-limited: too many events from this peer".into()));
        }
        policy::check_size(raw_len, &self.cfg.limits).map_err(prefixed)?;
        policy::check_event(event, crate::store::now_secs(), &self.cfg.limits).map_err(prefixed)?;
        policy::check_vanish(event, self.cfg.relay_url.as_deref()).map_err(|message| ("vanish", message))?;
        if event.is_protected() {
            return Err(("blocked", "blocked: protected events (NIP-70) are not mirrored".into()));
        }
        if !self.rates.event_by_author(event.pubkey.to_bytes()) {
            return Err(("rate-limited", "rate-limited: too many events from this author".into()));
        }
        Ok(())
    }

    /// Queues an event from a federation peer (checked with [`Ingest::check_peer`]), with its
    /// JSON as stored and served. Ephemeral events go straight to fan-out (`None`); the rest
    /// resolve when committed.
    pub async fn submit_peer(&self, event: Event, json: String) -> Option<oneshot::Receiver<WriteResult>> {
        metrics::counter!(m::EVENTS_RECEIVED_FROM_PEERS).increment(1);
        let event = Arc::new(event);
        if KindClass::of(event.kind) == KindClass::Ephemeral {
            self.deliver_ephemeral(event, json.into(), Origin::Peer).await;
            return None;
        }
        let indexed = IndexedEvent::with_json(event, json, crate::store::now_millis()).with_origin(Origin::Peer);
        Some(self.writer.submit(indexed).await)
    }

    /// An ephemeral event is "committed" once accepted: shared with the other relay processes
    /// and put on the committed-event stream (fan-out, and peers for a client's event).
    async fn deliver_ephemeral(&self, event: Arc<Event>, json: Arc<str>, origin: Origin) {
        if let Err(e) = self.store.announce_ephemeral(&json).await {
            tracing::warn!(error = %e, "could not share an ephemeral event with other relay processes");
        }
        let _ = self.committed.send(vec![Committed { seq: None, event, json, origin }]).await;
    }
}

/// The OK answer for a write result: (accepted, message).
pub fn answer(result: WriteResult) -> (bool, String) {
    let (accepted, message) = match result {
        Ok(WriteOutcome::Stored { .. }) => (true, String::new()),
        Ok(WriteOutcome::Duplicate) => (true, "duplicate: already have this event".into()),
        // An older version of a replaceable/addressable event is refused (relay conformance
        // suites require OK false); resending the stored version itself is `Duplicate` above.
        Ok(WriteOutcome::Superseded) => (false, "duplicate: have a newer version of this replaceable event".into()),
        Ok(WriteOutcome::Deleted) => (false, "blocked: this event was deleted by its author".into()),
        Ok(WriteOutcome::Fork) => (false, "invalid: fork: prev is not the head of this (author, s) chain".into()),
        Err(msg) => (false, format!("error: {msg}")),
    };
    if !accepted {
        let reason = message.split(':').next().unwrap_or("error").to_string();
        metrics::counter!(m::EVENTS_REJECTED, "reason" => reason).increment(1);
    }
    (accepted, message)
}
