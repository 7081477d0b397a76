//! The write stage: group commit.
//!
//! Connections hand accepted events to one writer task through a bounded queue (backpressure:
//! a full queue makes publishers wait). The writer drains whatever is queued, up to
//! `max_batch`, writes it in one transaction, and only after the commit raises the committed
//! mark, answers each event, and emits the stored ones as one [`Committed`] batch on its single
//! output stream (consumed by `distribute`). One fsync covers the whole batch, so durability
//! does not cost throughput. The writer knows nothing of subscribers or federation.

use std::sync::Arc;

use nostr::Event;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{IndexedEvent, Origin, Store, WriteOutcome};
use crate::fanout::CommittedSeq;
use crate::metrics as m;

/// How long the writer waits for work before it gives its memory back
/// ([`Store::release_idle_memory`]): once per pause, a pause of at least this long.
const IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The answer to one write: its outcome, or a message for an `error:` reply.
pub type WriteResult = Result<WriteOutcome, String>;

/// An event that is committed (`seq`), or an ephemeral event accepted (`seq` is `None`), on its
/// way to live subscribers and, for client events, to federation peers.
#[derive(Debug, Clone)]
pub struct Committed {
    pub seq: Option<i64>,
    pub event: Arc<Event>,
    pub json: Arc<str>,
    pub origin: Origin,
}

/// Committed events in commit (arrival sequence) order.
pub type CommittedBatch = Vec<Committed>;

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
    /// Starts the writer, emitting what it commits on `output`. It stops once every `Writer`
    /// handle is dropped and the queue is empty.
    pub fn spawn(
        store: Store,
        output: mpsc::Sender<CommittedBatch>,
        committed: CommittedSeq,
        max_batch: usize,
        queue: usize,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue);
        let handle = tokio::spawn(run(store, rx, output, committed, max_batch.max(1)));
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
    output: mpsc::Sender<CommittedBatch>,
    committed: CommittedSeq,
    max_batch: usize,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    let mut released = true;
    loop {
        let received = match released {
            true => rx.recv_many(&mut jobs, max_batch).await,
            false => match tokio::time::timeout(IDLE, rx.recv_many(&mut jobs, max_batch)).await {
                Ok(n) => n,
                Err(_) => {
                    store.release_idle_memory().await;
                    released = true;
                    continue;
                }
            },
        };
        if received == 0 {
            break;
        }
        released = false;
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
        let mut stored = Vec::with_capacity(events.len());
        for ((event, reply), outcome) in events.into_iter().zip(replies).zip(outcomes) {
            let _ = reply.send(outcome.ok_or_else(|| "could not store the event; try again".to_string()));
            if let Some(WriteOutcome::Stored { seq }) = outcome {
                stored.push(Committed {
                    seq: Some(seq),
                    event: event.event,
                    json: event.json.into(),
                    origin: event.origin,
                });
            }
        }
        metrics::counter!(m::EVENTS_STORED).increment(stored.len() as u64);
        if !stored.is_empty() && output.send(stored).await.is_err() {
            tracing::debug!("committed events not distributed: the distribution stage has stopped");
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
