//! The distribution stage: the one consumer of the committed-event stream.
//!
//! The writer emits [`CommittedBatch`]es in commit order, and ingest emits accepted ephemeral
//! events on the same stream. This stage hands every event to the fan-out stage (live
//! subscribers) and, when federation is on, offers client events to the bridge's [`Mirror`]
//! (never waiting on it). Storage and ingest know nothing of federation.

use tokio::sync::mpsc;

use crate::fanout::Delivery;
use crate::metrics as m;
use crate::store::Origin;
use crate::store::writer::{Committed, CommittedBatch};

/// Batches the committed-event stream holds before its producers wait.
pub const STREAM_BATCHES: usize = 1024;

/// The committed-event stream: the writer's (and ingest's, for ephemeral events) output.
pub fn stream() -> (mpsc::Sender<CommittedBatch>, mpsc::Receiver<CommittedBatch>) {
    mpsc::channel(STREAM_BATCHES)
}

/// The federation hand-off: committed client events for the bridge to publish to peers.
#[derive(Clone)]
pub struct Mirror(pub mpsc::Sender<dephy_bridge::Outgoing>);

impl Mirror {
    /// Offers one event to the bridge without waiting: if its queue is full the event is
    /// counted and left to catch-up, so peers never slow down local clients.
    pub fn offer(&self, c: &Committed) {
        let outgoing = dephy_bridge::Outgoing { id: c.event.id.to_bytes(), json: c.json.clone() };
        if self.0.try_send(outgoing).is_err() {
            metrics::counter!(m::MIRROR_DROPPED).increment(1);
        }
    }
}

/// The stage loop: runs until every producer of `rx` is dropped (or fan-out stops).
pub async fn run(mut rx: mpsc::Receiver<CommittedBatch>, fanout: mpsc::Sender<Delivery>, mirror: Option<Mirror>) {
    while let Some(batch) = rx.recv().await {
        for c in batch {
            // Only this relay's clients' events are published; protected ones (NIP-70) only
            // by their author.
            if let Some(mirror) = &mirror
                && c.origin == Origin::Client
                && !c.event.is_protected()
            {
                mirror.offer(&c);
            }
            if fanout.send(Delivery::new(c.seq, c.event, c.json)).await.is_err() {
                return;
            }
        }
    }
}
