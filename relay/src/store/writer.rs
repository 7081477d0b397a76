//! The write stage: group commit.
//!
//! Connections hand accepted events to one writer task through a bounded queue (backpressure:
//! a full queue makes publishers wait). The writer drains whatever is queued, up to
//! `max_batch`, writes it in one transaction, and only after the commit answers each event and
//! passes the stored ones to the fan-out stage. One fsync covers the whole batch, so durability
//! does not cost throughput.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{IndexedEvent, Origin, Store, WriteOutcome};
use crate::fanout::{CommittedSeq, Delivery};
use crate::metrics as m;

/// The federation hand-off: committed client events for the bridge to publish to peers.
#[derive(Clone)]
pub struct Mirror(pub mpsc::Sender<dephy_bridge::Outgoing>);

impl Mirror {
    /// Offers one event to the bridge without waiting: if its queue is full the event is
    /// counted and left to catch-up, so peers never slow down local clients.
    pub fn offer(&self, id: [u8; 32], json: Arc<str>) {
        if self.0.try_send(dephy_bridge::Outgoing { id, json }).is_err() {
            metrics::counter!(m::MIRROR_DROPPED).increment(1);
        }
    }
}

/// The answer to one write: its outcome, or a message for an `error:` reply.
pub type WriteResult = Result<WriteOutcome, String>;

struct Job {
    event: IndexedEvent,
    reply: oneshot::Sender<WriteResult>,
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer. It stops once every `Writer` handle is dropped and the queue is empty.
    pub fn spawn(
        store: Store,
        fanout: mpsc::Sender<Delivery>,
        committed: CommittedSeq,
        max_batch: usize,
        queue: usize,
        mirror: Option<Mirror>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue);
        let handle = tokio::spawn(run(store, rx, fanout, committed, max_batch.max(1), mirror));
        (Self { tx }, handle)
    }

    /// Queues an event; the receiver resolves once it is committed (or refused).
    pub async fn submit(&self, event: IndexedEvent) -> oneshot::Receiver<WriteResult> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.tx.send(Job { event, reply }).await {
            let _ = job.reply.send(Err("the relay is shutting down".into()));
        }
        rx
    }
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<Job>,
    fanout: mpsc::Sender<Delivery>,
    committed: CommittedSeq,
    max_batch: usize,
    mirror: Option<Mirror>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        metrics::histogram!(m::WRITE_BATCH_SIZE).record(jobs.len() as f64);
        let (events, replies): (Vec<IndexedEvent>, Vec<_>) = jobs.drain(..).map(|j| (j.event, j.reply)).unzip();
        let outcomes: Vec<Option<WriteOutcome>> = match store.write_batch(&events).await {
            Ok(outcomes) => outcomes.into_iter().map(Some).collect(),
            // One bad event must not fail its neighbours: write them one by one.
            Err(e) => {
                tracing::warn!(error = %e, batch = events.len(), "write batch failed; writing its events one by one");
                write_each(&store, &events).await
            }
        };
        // Raised before any OK goes out: a REQ that follows an OK must not get that event live.
        if let Some(max) = outcomes
            .iter()
            .filter_map(|o| match o {
                Some(WriteOutcome::Stored { seq }) => Some(*seq),
                _ => None,
            })
            .max()
        {
            committed.raise(max);
        }
        let mut stored = Vec::new();
        for ((event, reply), outcome) in events.into_iter().zip(replies).zip(outcomes) {
            let _ = reply.send(outcome.ok_or_else(|| "could not store the event; try again".to_string()));
            if let Some(WriteOutcome::Stored { seq }) = outcome {
                let json: Arc<str> = event.json.into();
                if let Some(mirror) = &mirror
                    && event.origin == Origin::Client
                    && !event.event.is_protected()
                {
                    mirror.offer(event.id, json.clone());
                }
                stored.push(Delivery::new(Some(seq), event.event, json));
            }
        }
        metrics::counter!(m::EVENTS_STORED).increment(stored.len() as u64);
        for d in stored {
            if fanout.send(d).await.is_err() {
                break;
            }
        }
    }
    tracing::debug!("writer stopped: queue closed and drained");
}

/// Writes each event in its own transaction; `None` for one that could not be stored.
async fn write_each(store: &Store, events: &[IndexedEvent]) -> Vec<Option<WriteOutcome>> {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        match store.write_batch(std::slice::from_ref(event)).await {
            Ok(mut outcome) => out.push(outcome.pop()),
            Err(e) => {
                tracing::error!(error = %e, id = %event.id_hex(), "event could not be stored");
                out.push(None);
            }
        }
    }
    out
}
