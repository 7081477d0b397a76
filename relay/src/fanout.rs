//! The fan-out stage: delivers committed (and ephemeral) events to live subscriptions.
//!
//! One task receives [`Delivery`]s in commit order from the writer (and, on PostgreSQL, from
//! other relay processes via LISTEN/NOTIFY), matches them against every registered
//! connection's filters and puts them on that connection's bounded outbound queue. A
//! connection whose queue is full is a slow reader: it is told to disconnect, so it can never
//! stall the relay or other subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use nostr::filter::MatchEventOptions;
use nostr::{Event, Filter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics as m;

/// An event on its way to subscribers; `seq` is `None` for ephemeral events.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: Option<i64>,
    pub event: Arc<Event>,
    pub json: Arc<str>,
}

impl Delivery {
    pub fn new(seq: Option<i64>, event: Arc<Event>, json: Arc<str>) -> Self {
        Self { seq, event, json }
    }
}

/// A message queued for one connection.
#[derive(Debug)]
pub enum Outbound {
    /// A live event for subscription `sub`.
    Event { sub: Arc<str>, seq: Option<i64>, json: Arc<str> },
}

/// One connection's live subscriptions and its outbound queue.
pub struct Subscriber {
    tx: mpsc::Sender<Outbound>,
    subs: Mutex<HashMap<Arc<str>, Arc<[Filter]>>>,
    /// Cancelled when the connection must be dropped (slow reader).
    pub kicked: CancellationToken,
}

impl Subscriber {
    pub fn set(&self, sub: Arc<str>, filters: Arc<[Filter]>) {
        self.subs.lock().expect("subs lock").insert(sub, filters);
    }

    pub fn remove(&self, sub: &str) -> bool {
        self.subs.lock().expect("subs lock").remove(sub).is_some()
    }

    pub fn len(&self) -> usize {
        self.subs.lock().expect("subs lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn offer(&self, d: &Delivery) {
        let subs = self.subs.lock().expect("subs lock");
        for (sub, filters) in subs.iter() {
            if filters.iter().any(|f| f.match_event(&d.event, MatchEventOptions::new())) {
                let msg = Outbound::Event { sub: sub.clone(), seq: d.seq, json: d.json.clone() };
                match self.tx.try_send(msg) {
                    Ok(()) => metrics::counter!(m::EVENTS_DELIVERED).increment(1),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        metrics::counter!(m::SLOW_READERS).increment(1);
                        self.kicked.cancel();
                        return;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        }
    }
}

/// The highest arrival sequence known to be committed: every stored event at or below it is
/// visible to a query started now. The writer raises it after each commit, before it answers
/// `OK`, so a `REQ` sent after an `OK` sees that event's sequence here; the fan-out stage raises
/// it for what it dispatches, which covers other processes on the same PostgreSQL (their
/// sequences commit in order under the advisory lock).
#[derive(Clone, Default)]
pub struct CommittedSeq(Arc<AtomicI64>);

impl CommittedSeq {
    pub fn raise(&self, seq: i64) {
        self.0.fetch_max(seq, Ordering::SeqCst);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The registry of connections with live subscriptions.
#[derive(Clone, Default)]
pub struct Fanout {
    registry: Arc<RwLock<HashMap<u64, Arc<Subscriber>>>>,
    next_id: Arc<AtomicU64>,
    committed: CommittedSeq,
}

impl Fanout {
    pub fn new(last_seq: i64) -> Self {
        let f = Self::default();
        f.committed.raise(last_seq);
        f
    }

    /// The committed high-water mark (raised by the writer and by this stage).
    pub fn committed(&self) -> &CommittedSeq {
        &self.committed
    }

    /// Creates a subscriber with an outbound queue of `capacity` messages.
    pub fn subscriber(&self, capacity: usize) -> (u64, Arc<Subscriber>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sub = Arc::new(Subscriber { tx, subs: Mutex::default(), kicked: CancellationToken::new() });
        (self.next_id.fetch_add(1, Ordering::Relaxed), sub, rx)
    }

    /// Makes a subscriber visible to the fan-out (idempotent). Connections register on their
    /// first REQ, so idle connections cost the fan-out nothing.
    pub fn register(&self, id: u64, sub: &Arc<Subscriber>) {
        self.registry.write().expect("registry lock").entry(id).or_insert_with(|| sub.clone());
    }

    pub fn unregister(&self, id: u64) {
        self.registry.write().expect("registry lock").remove(&id);
    }

    /// The stage loop: runs until every sender of `rx` is dropped.
    pub async fn run(self, mut rx: mpsc::Receiver<Delivery>) {
        while let Some(d) = rx.recv().await {
            {
                let registry = self.registry.read().expect("registry lock");
                for sub in registry.values() {
                    sub.offer(&d);
                }
            }
            if let Some(seq) = d.seq {
                self.committed.raise(seq);
            }
        }
    }
}
