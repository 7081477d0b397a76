//! Catch-up: two nodes reconcile what they missed when they (re)connect.
//!
//! NIP-77's negentropy set reconciliation, carried over a libp2p request-response protocol
//! (`/dephy/<network>/sync/2.0.0`, CBOR) instead of a WebSocket. When a connection to a peer
//! is established each side runs [`catch_up`] as the initiator over the events with
//! `created_at` in the last `catchup_window_secs` (and up to an hour ahead), one
//! [`Slice`](crate::slice::Slice) at a time:
//!
//! 1. the initiator loads its own events of the slice, at most `sync_max_items` of them;
//! 2. `Reconcile` rounds until negentropy has found the ids the peer holds and we do not,
//!    `Fetch`ing those ids in batches as each round yields them and putting each event
//!    through verification, the relay's write policy and the ordinary ingest path;
//! 3. a slice that holds more than `sync_max_items` events on either side (the responder
//!    answers [`SyncResponse::Split`]) is split in two and each half is reconciled in turn.
//!
//! So memory per session is bounded by `sync_max_items` whatever the size of the database or
//! of the gap: a partition of hundreds of thousands of events heals slice by slice. The peer
//! does the same in the other direction, so after a partition heals both hold the union.
//!
//! The responder ([`Responder`]) treats every request as hostile: it reconciles only the
//! part of a slice inside its own catch-up window (the rest is answered as if it held
//! nothing there), loads at most `sync_max_items + 1` events per slice, keeps a few recent
//! slices' inventories for the following rounds of the same session, caps its negentropy frames at
//! [`FRAME_LIMIT`], and answers at most `sync_sessions_per_peer` requests of one peer and
//! `sync_max_sessions` in all at a time (the others get `Error { "rate-limited: ..." }`).

mod initiator;
mod responder;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use initiator::{Report, catch_up};
pub use responder::{Permit, Responder};

use crate::slice::Slice;

/// Most ids asked for in one `Fetch`.
pub const FETCH_BATCH: usize = 200;
/// Negentropy frame size limit of both sides' messages.
pub const FRAME_LIMIT: u64 = 256 * 1024;
/// Largest negentropy message the initiator accepts from a responder (the responder may
/// overshoot [`FRAME_LIMIT`] by one range's worth).
pub const MAX_FRAME_IN: usize = FRAME_LIMIT as usize + 16 * 1024;
/// Most reconciliation rounds over one slice before a session gives up.
pub const MAX_ROUNDS_PER_SLICE: usize = 64;
/// Most slices in one session (splits included) before it gives up.
pub const MAX_SLICES: usize = 16_384;
/// How far ahead of now catch-up looks (events up to the relay's future tolerance).
pub const FUTURE_SLACK_SECS: u64 = 3600;

/// Limits of catch-up, from the `[bridge]` configuration.
#[derive(Debug, Clone, Copy)]
pub struct SyncLimits {
    /// `catchup_window_secs`: how far back both sides reconcile.
    pub window_secs: u64,
    /// `sync_max_items`: most events in one slice's inventory, on either side.
    pub max_items: usize,
    /// `sync_sessions_per_peer`: requests of one peer answered at a time.
    pub sessions_per_peer: usize,
    /// `sync_max_sessions`: requests answered at a time, all peers together.
    pub max_sessions: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SyncRequest {
    /// One negentropy round over the events of `slice`. `session` is the initiator's random
    /// number for this session: the responder reuses an inventory only within one session.
    Reconcile { session: u64, slice: Slice, msg: Vec<u8> },
    /// The events with these ids.
    Fetch { ids: Vec<[u8; 32]> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SyncResponse {
    Reconcile {
        msg: Vec<u8>,
    },
    /// The responder holds more than its `sync_max_items` events in the slice: split it.
    Split,
    Events {
        events: Vec<String>,
    },
    Error {
        message: String,
    },
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
