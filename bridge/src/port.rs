//! What the bridge needs from the relay it runs in, and what it gets from it.
//!
//! The relay implements [`RelayPort`]: events from peers enter through [`RelayPort::submit`],
//! the same ingest path (policy → writer → log → fan-out) as a client's event. In the other
//! direction the relay hands every event a client got accepted to the bridge as an
//! [`Outgoing`] on the channel [`crate::Bridge::outgoing`].

use std::sync::Arc;

use futures_util::future::BoxFuture;
use nostr::{Event, JsonUtil as _};

use crate::slice::Slice;

/// An event a local client got accepted (stored, or ephemeral), to mirror to peers.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: [u8; 32],
    /// The event's JSON, as stored.
    pub json: Arc<str>,
}

/// An event from a peer, read and checked (id and signature) by [`RelayPort::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub event: Event,
    /// The JSON to store and serve: the peer's own text when it is canonical.
    pub json: String,
}

/// What became of an event from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Stored (or, for an ephemeral event, delivered to local subscribers).
    New,
    /// Already held (or superseded by a newer replaceable version).
    Duplicate,
    /// Refused, with the NIP-01 style reason (`blocked: ...`, `invalid: ...`).
    Refused(String),
}

/// Whether a refusal from [`RelayPort::check`] is a rate limit: the event is valid and may be
/// taken later, unlike one refused for what it is.
pub fn is_rate_limited(reason: &str) -> bool {
    reason.starts_with("rate-limited:")
}

/// Resolves once a submitted event is committed (or refused).
pub type Committing = BoxFuture<'static, Ingested>;

/// `(created_at, event id)` pairs of stored events, for reconciliation.
pub type Inventory = Vec<(u64, [u8; 32])>;

/// The relay, seen from the bridge.
pub trait RelayPort: Send + Sync + 'static {
    /// The relay's own write policy for an event from a peer whose id and signature the
    /// bridge has already verified, the same a client's event passes: size, tag and content
    /// limits, created_at window, expiry, the scope of a request to vanish, and rate limits
    /// (per author, and per forwarding peer where a client is limited per IP). `forwarder` is
    /// the wallet of the peer the event came from (the GossipSub forwarder, or the catch-up
    /// peer), not necessarily the node that first published it. `Err` holds the reason with
    /// its NIP-01 prefix (`invalid: ...`, `rate-limited: ...`).
    ///
    /// Checking counts against the rate limits: call it once per received event, right before
    /// [`RelayPort::submit`].
    fn check(&self, event: &Event, json_len: usize, forwarder: &[u8; 32]) -> Result<(), String>;

    /// Reads the JSON of an event received from a peer and checks its id and signature, before
    /// [`RelayPort::check`]. The default is nostr's reading and check, re-serialized; the relay
    /// supplies the path its clients' events take (one-pass reading that keeps a canonical
    /// text as it is, the id hashed in one pass, recent authors' keys kept decoded), since a
    /// follower reads and checks every event it mirrors. `Err` holds the reason.
    fn read(&self, json: &str) -> Result<Received, String> {
        let event = Event::from_json(json).map_err(|e| format!("not a Nostr event: {e}"))?;
        event.verify().map_err(|e| format!("invalid event: {e}"))?;
        let json = event.as_json();
        Ok(Received { event, json })
    }

    /// Hands an event from a peer to the relay's ingest path (stored, or fanned out for
    /// ephemeral kinds). The outer future resolves once the event is queued, so events
    /// submitted one after the other are written in that order (a session chain's `prev`
    /// must arrive before its successor); the returned future resolves once it is committed.
    fn submit(&self, event: Received) -> BoxFuture<'static, Committing>;

    /// `(created_at, id)` of the stored events in `slice` that a peer may hold too (the
    /// relay's own checkpoints excluded), for reconciliation: at most `limit` of them (any
    /// `limit` when more match, so the caller asks for one more than it accepts to learn
    /// that the slice is too large). Keys beyond what the store can represent are an `Err`.
    fn inventory(&self, slice: Slice, limit: usize) -> BoxFuture<'static, Result<Inventory, String>>;

    /// The JSON of the stored events among `ids` (missing ones are left out).
    fn fetch(&self, ids: Vec<[u8; 32]>) -> BoxFuture<'static, Result<Vec<String>, String>>;
}
