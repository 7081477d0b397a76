//! The fan-out stage: delivers committed (and ephemeral) events to live subscriptions.
//!
//! One task receives [`Delivery`]s in commit order from the writer (and, on PostgreSQL, from
//! other relay processes via LISTEN/NOTIFY), matches them against every registered
//! connection's filters and puts them on that connection's outbound queue, charging the
//! bytes to the connection's output budget ([`crate::budget`]). A connection whose queue is
//! full (messages) or over its byte budget is a slow reader: it is told to disconnect, so it
//! can never stall the relay or other subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use nostr::filter::MatchEventOptions;
use nostr::{Event, Filter};
use tokio::sync::mpsc;

use crate::budget::{Budget, Usage};
use crate::metrics as m;

/// Deliveries offered under one hold of the registry's read lock (bounds how long a REQ's
/// registration waits).
const DELIVERIES_PER_LOCK: usize = 256;

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

impl Outbound {
    /// What the message is charged to the output budget: about its frame's length.
    pub fn cost(&self) -> usize {
        let Outbound::Event { sub, json, .. } = self;
        cost(sub, json)
    }
}

fn cost(sub: &str, json: &str) -> usize {
    json.len() + sub.len() + 32
}

/// One connection's live subscriptions and its outbound queue.
pub struct Subscriber {
    tx: mpsc::Sender<Outbound>,
    subs: Mutex<HashMap<Arc<str>, Arc<[Filter]>>>,
    budget: Arc<Budget>,
    /// The connection's output bytes; its token is cancelled when it must be dropped.
    pub usage: Arc<Usage>,
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
                if self.usage.is_closing() {
                    return;
                }
                let n = cost(sub, &d.json);
                // Charged before it is queued, so the socket task never releases more than was charged.
                self.budget.charge_live(&self.usage, n);
                let msg = Outbound::Event { sub: sub.clone(), seq: d.seq, json: d.json.clone() };
                match self.tx.try_send(msg) {
                    Ok(()) => metrics::counter!(m::EVENTS_DELIVERED).increment(1),
                    Err(e) => {
                        self.budget.release_live(&self.usage, n);
                        if let mpsc::error::TrySendError::Full(_) = e {
                            let reason = "slow reader: outbound queue full".to_string();
                            self.budget.kick(&self.usage, reason, "queue_full");
                        }
                        return;
                    }
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
///
/// A REQ sets its filters, registers (taking the registry write lock), THEN reads the mark as
/// `visible`; live copies at or below it are skipped (its stored query, which is not bounded
/// by the mark, has them or left them out by `limit`). The fan-out stage raises the mark for a
/// delivery before it releases the registry read lock under which it offered it, so an event
/// offered before the REQ registered is always at or below `visible`: the mark never lags
/// behind what this process has dispatched. (Bounding the stored query by the mark instead
/// would drop another process's acknowledged event on PostgreSQL until its NOTIFY arrives.)
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
    budget: Arc<Budget>,
}

impl Fanout {
    pub fn new(last_seq: i64) -> Self {
        let f = Self::default();
        f.committed.raise(last_seq);
        f
    }

    /// Charges connections' output to `budget` (default: unlimited).
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = Arc::new(budget);
        self
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The committed high-water mark (raised by the writer and by this stage).
    pub fn committed(&self) -> &CommittedSeq {
        &self.committed
    }

    /// Creates a subscriber with an outbound queue of `capacity` messages.
    pub fn subscriber(&self, capacity: usize) -> (u64, Arc<Subscriber>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let usage = self.budget.open(id);
        let sub = Arc::new(Subscriber { tx, subs: Mutex::default(), budget: self.budget.clone(), usage });
        (id, sub, rx)
    }

    /// Makes a subscriber visible to the fan-out (idempotent). Connections register on their
    /// first REQ, so idle connections cost the fan-out nothing. Always takes the write lock:
    /// a REQ relies on it as a barrier against an offer in progress (see [`CommittedSeq`]).
    pub fn register(&self, id: u64, sub: &Arc<Subscriber>) {
        self.registry.write().expect("registry lock").entry(id).or_insert_with(|| sub.clone());
    }

    /// Removes a connection (also from the output budget, releasing what it held).
    pub fn unregister(&self, id: u64) {
        self.registry.write().expect("registry lock").remove(&id);
        self.budget.close(id);
    }

    /// The stage loop: runs until every sender of `rx` is dropped.
    pub async fn run(self, mut rx: mpsc::Receiver<Delivery>) {
        let mut ready = Vec::with_capacity(DELIVERIES_PER_LOCK);
        // Whatever is queued is offered under one registry lock (a group commit arrives at once).
        while rx.recv_many(&mut ready, DELIVERIES_PER_LOCK).await > 0 {
            let registry = self.registry.read().expect("registry lock");
            for d in ready.drain(..) {
                for sub in registry.values() {
                    sub.offer(&d);
                }
                // Before the lock is released: see `CommittedSeq` for why.
                if let Some(seq) = d.seq {
                    self.committed.raise(seq);
                }
            }
        }
    }
}
