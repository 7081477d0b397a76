//! The relay client: one or more relays, one live subscription, an on-disk outbox, and a
//! persisted resume position.
//!
//! Guarantees, per relay:
//! - **Subscribe before publish**: the live subscription is sent, and its stored events are
//!   received (EOSE), before any event of the outbox is sent on a connection.
//! - **Publish with retry**: [`Client::publish`] writes the event to the outbox
//!   ([`outbox`]) first; it is sent, and re-sent after `ack_timeout` or after a reconnect, until
//!   the relay answers `OK true` (or a duplicate) or refuses it for good. Connections are
//!   re-established with exponential backoff.
//! - **Resume**: events are handed out by [`Client::recv`]; an event counts as processed when the
//!   application asks for the next one (or calls [`Client::commit`]), and the position
//!   ([`cursor`]) is saved then. After a disconnect or a restart the client asks the relay for
//!   what came after that position: by arrival sequence (`after_seq`) when the relay offers it,
//!   else by `since` minus an overlap, skipping ids already processed. Events that arrive from
//!   several relays are handed out once.
//! - **Subscriptions that change at runtime**: [`Client::set_filters`] replaces the live filter
//!   set on the open connections (a new REQ, the old one CLOSEd) and keeps it across reconnects.
//!   The new set resumes from the client's current position, like the old one: an added filter
//!   receives what arrives from then on (with the cursor: after the last sequence received; with
//!   `since`: from the newest `created_at` received minus the overlap, ids already handed out
//!   skipped), not the relay's older history (use [`Client::query`] for that); events the relay
//!   receives after `set_filters` has returned are delivered only if the new set matches them
//!   (events already handed to the client before the switch are still handed out).

mod connection;
pub mod cursor;
pub mod outbox;
mod tls;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr::{Event, EventId, Filter};
use tokio::sync::{mpsc, oneshot, watch};

use cursor::Cursor;
use outbox::Outbox;

/// Client settings. [`ClientConfig::new`] has the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Relay WebSocket URLs (`ws://` or `wss://`).
    pub relays: Vec<String>,
    /// PEM files of root certificates to trust for `wss://` besides Mozilla's (webpki-roots),
    /// for a relay whose certificate a private CA issued.
    pub root_certificates: Vec<PathBuf>,
    /// Directory for the outbox and the resume position (created).
    pub state_dir: PathBuf,
    /// The initial live subscription; empty for a client that only publishes and queries.
    /// [`Client::set_filters`] replaces it at runtime.
    pub filters: Vec<Filter>,
    /// How far back `since` reaches on a relay without the cursor (DePHY uses 120 s).
    pub overlap: Duration,
    /// Events asked per catch-up page with the cursor.
    pub page_limit: usize,
    /// A sent event without an `OK` after this long is sent again.
    pub ack_timeout: Duration,
    /// Reconnect backoff: starts at `backoff_min`, doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Longest a connection attempt may take.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    pub fn new(relays: impl IntoIterator<Item = impl Into<String>>, state_dir: impl Into<PathBuf>) -> ClientConfig {
        ClientConfig {
            relays: relays.into_iter().map(Into::into).collect(),
            root_certificates: Vec::new(),
            state_dir: state_dir.into(),
            filters: Vec::new(),
            overlap: Duration::from_secs(120),
            page_limit: 500,
            ack_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the live subscription.
    pub fn subscribe(mut self, filters: impl IntoIterator<Item = Filter>) -> ClientConfig {
        self.filters = filters.into_iter().collect();
        self
    }
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no relay configured: pass at least one ws:// or wss:// URL")]
    NoRelay,
    #[error("relay URL {0:?} must start with ws:// or wss://")]
    BadUrl(String),
    #[error("cannot use the TLS root certificate file {path}: {reason}")]
    Tls { path: PathBuf, reason: String },
    #[error("cannot use the client state file {path}: {source}")]
    State { path: PathBuf, source: std::io::Error },
    #[error("the client state file {path} is corrupt ({reason}); move it away to start afresh")]
    CorruptState { path: PathBuf, reason: String },
    #[error("every relay refused event {id}: {reasons}")]
    Refused { id: EventId, reasons: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("relay {relay} closed the query: {message}")]
    Closed { relay: String, message: String },
    #[error("the client is shut down")]
    Shutdown,
}

/// An event handed out by [`Client::recv`].
#[derive(Debug, Clone)]
pub struct Received {
    pub event: Event,
    /// The relay it came from first.
    pub relay: String,
    /// Its arrival sequence on that relay, when the relay offers the cursor.
    pub seq: Option<u64>,
}

enum Command {
    Publish(Event),
    /// The live filter set changed ([`Shared::filters`]): subscribe again.
    Resubscribe,
    Query {
        filters: Vec<Filter>,
        reply: mpsc::UnboundedSender<Result<Vec<Event>, ClientError>>,
    },
}

/// State shared by the client handle and its relay tasks.
struct Shared {
    config: ClientConfig,
    outbox: Mutex<Outbox>,
    cursor: Mutex<Cursor>,
    /// Ids handed to the application (or about to be), across relays.
    delivered: Mutex<Dedup>,
    /// Waiters of [`Client::publish_and_wait`].
    waiters: Mutex<HashMap<EventId, Waiter>>,
    /// Relays whose live subscription is established (EOSE received).
    subscribed: watch::Sender<HashSet<String>>,
    events: mpsc::Sender<Received>,
    /// The live filter set and its version (bumped by every [`Client::set_filters`]).
    filters: Mutex<(u64, Vec<Filter>)>,
    /// Waiters of [`Client::set_filters`]: relay, version, reply once that relay's subscription
    /// with this version (or a newer one) is established.
    filter_waiters: Mutex<Vec<(String, u64, oneshot::Sender<()>)>>,
    /// TLS settings for `wss://` relays.
    tls: Arc<rustls::ClientConfig>,
}

#[derive(Default)]
struct Waiter {
    senders: Vec<oneshot::Sender<Result<(), ClientError>>>,
    refusals: Vec<String>,
}

/// A bounded set of ids.
#[derive(Default)]
struct Dedup {
    set: HashSet<EventId>,
    order: VecDeque<EventId>,
}

impl Dedup {
    const CAP: usize = 50_000;

    /// True when `id` is new.
    fn insert(&mut self, id: EventId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > Self::CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

impl Shared {
    /// The current live filter set and its version.
    fn filters(&self) -> (u64, Vec<Filter>) {
        self.filters.lock().expect("filters lock").clone()
    }

    /// `relay` established its live subscription with filter version `version`.
    fn filters_established(&self, relay: &str, version: u64) {
        let mut waiters = self.filter_waiters.lock().expect("filter waiters lock");
        let (done, waiting): (Vec<_>, Vec<_>) =
            waiters.drain(..).partition(|(url, v, _)| url == relay && *v <= version);
        *waiters = waiting;
        for (_, _, tx) in done {
            let _ = tx.send(());
        }
    }

    /// A relay answered `OK` for `id`: `Ok(())` accepted, `Err(reason)` refused for good.
    fn acknowledged(&self, relay: &str, id: EventId, result: Result<(), String>) {
        let last = match self.outbox.lock().expect("outbox lock").done(&id, relay) {
            Ok(last) => last,
            Err(e) => {
                tracing::error!(error = %e, "cannot update the outbox");
                false
            }
        };
        let mut waiters = self.waiters.lock().expect("waiters lock");
        match result {
            Ok(()) => {
                if let Some(waiter) = waiters.remove(&id) {
                    for tx in waiter.senders {
                        let _ = tx.send(Ok(()));
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(relay, %id, reason, "relay refused the event");
                if let Some(waiter) = waiters.get_mut(&id) {
                    waiter.refusals.push(format!("{relay}: {reason}"));
                    if last {
                        let waiter = waiters.remove(&id).expect("present");
                        let reasons = waiter.refusals.join("; ");
                        for tx in waiter.senders {
                            let _ = tx.send(Err(ClientError::Refused { id, reasons: reasons.clone() }));
                        }
                    }
                }
            }
        }
    }
}

/// A running client. Dropping it stops its relay tasks; the outbox and position stay on disk.
pub struct Client {
    shared: Arc<Shared>,
    commands: Vec<mpsc::UnboundedSender<Command>>,
    events: mpsc::Receiver<Received>,
    /// Handed out by `recv`, to be committed on the next `recv` or `commit`.
    uncommitted: Option<Received>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Client {
    /// Opens the state directory and starts one task per relay. Returns at once; connections
    /// are made in the background (see [`Client::wait_subscribed`]).
    pub fn start(config: ClientConfig) -> Result<Client, ClientError> {
        if config.relays.is_empty() {
            return Err(ClientError::NoRelay);
        }
        for url in &config.relays {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(ClientError::BadUrl(url.clone()));
            }
        }
        let tls = tls::client_config(&config.root_certificates)?;
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|source| ClientError::State { path: config.state_dir.clone(), source })?;
        let outbox = Outbox::open(&config.state_dir, &config.relays)?;
        let cursor = Cursor::open(&config.state_dir)?;
        let mut delivered = Dedup::default();
        for id in cursor.seen_ids() {
            delivered.insert(*id);
        }
        let (events_tx, events) = mpsc::channel(1024);
        let shared = Arc::new(Shared {
            outbox: Mutex::new(outbox),
            cursor: Mutex::new(cursor),
            delivered: Mutex::new(delivered),
            waiters: Mutex::new(HashMap::new()),
            subscribed: watch::Sender::new(HashSet::new()),
            events: events_tx,
            filters: Mutex::new((0, config.filters.clone())),
            filter_waiters: Mutex::new(Vec::new()),
            tls,
            config,
        });
        let mut commands = Vec::new();
        let mut tasks = Vec::new();
        for url in shared.config.relays.clone() {
            let (tx, rx) = mpsc::unbounded_channel();
            commands.push(tx);
            tasks.push(tokio::spawn(connection::run(shared.clone(), url, rx)));
        }
        Ok(Client { shared, commands, events, uncommitted: None, tasks })
    }

    /// Waits until at least one relay has established the live subscription.
    pub async fn wait_subscribed(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut rx = self.shared.subscribed.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|set| !set.is_empty()))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map(|_| ())
            .map_err(|_| ClientError::Shutdown)
    }

    /// Replaces the live filter set: every relay connection sends a new REQ (and CLOSEs the
    /// old one), and reconnections use the new set. Returns once every relay has established
    /// the new subscription (stored events received, EOSE), or at `timeout` if at least one
    /// has (`Err(Timeout)` if none). Events the relay receives from then on are delivered only
    /// if the new set matches them. Added filters resume from the client's current position (see the
    /// module documentation).
    pub async fn set_filters(&self, filters: Vec<Filter>, timeout: Duration) -> Result<(), ClientError> {
        let version = {
            let mut current = self.shared.filters.lock().expect("filters lock");
            current.0 += 1;
            current.1 = filters;
            current.0
        };
        let mut replies = Vec::new();
        {
            let mut waiters = self.shared.filter_waiters.lock().expect("filter waiters lock");
            for url in &self.shared.config.relays {
                let (tx, rx) = oneshot::channel();
                waiters.push((url.clone(), version, tx));
                replies.push(rx);
            }
        }
        for tx in &self.commands {
            let _ = tx.send(Command::Resubscribe);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut established = 0;
        for rx in replies {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(())) => established += 1,
                Ok(Err(_)) => return Err(ClientError::Shutdown),
                Err(_) => break,
            }
        }
        if established == 0 { Err(ClientError::Timeout(timeout)) } else { Ok(()) }
    }

    /// The current live filter set.
    pub fn filters(&self) -> Vec<Filter> {
        self.shared.filters().1
    }

    /// Queues `event` in the outbox (on disk) and sends it to every relay once its live
    /// subscription is established; returns without waiting for acknowledgements.
    pub fn publish(&self, event: &Event) -> Result<EventId, ClientError> {
        self.shared.outbox.lock().expect("outbox lock").add(event, &self.shared.config.relays)?;
        for tx in &self.commands {
            let _ = tx.send(Command::Publish(event.clone()));
        }
        Ok(event.id)
    }

    /// [`Client::publish`], then waits until a relay accepts the event (`Err` if every relay
    /// refuses it, or on timeout; the event stays in the outbox until delivered).
    pub async fn publish_and_wait(&self, event: &Event, timeout: Duration) -> Result<EventId, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.shared.waiters.lock().expect("waiters lock").entry(event.id).or_default().senders.push(tx);
        self.publish(event)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result.map(|()| event.id),
            Ok(Err(_)) => Err(ClientError::Shutdown),
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// Events still waiting in the outbox for some relay's acknowledgement.
    pub fn outbox_len(&self) -> usize {
        self.shared.outbox.lock().expect("outbox lock").len()
    }

    /// The next event of the live subscription, in order, each once. Commits the event returned
    /// by the previous call.
    pub async fn recv(&mut self) -> Option<Received> {
        if let Err(e) = self.commit() {
            tracing::error!(error = %e, "cannot save the resume position");
        }
        let received = self.events.recv().await?;
        self.uncommitted = Some(received.clone());
        Some(received)
    }

    /// [`Client::recv`] with a timeout (`None` when it expires).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Received> {
        if let Err(e) = self.commit() {
            tracing::error!(error = %e, "cannot save the resume position");
        }
        let received = tokio::time::timeout(timeout, self.events.recv()).await.ok()??;
        self.uncommitted = Some(received.clone());
        Some(received)
    }

    /// Marks the last event returned by `recv` as processed and saves the position.
    pub fn commit(&mut self) -> Result<(), ClientError> {
        let Some(r) = self.uncommitted.take() else { return Ok(()) };
        let overlap = self.shared.config.overlap.as_secs();
        self.shared.cursor.lock().expect("cursor lock").commit(
            &r.relay,
            r.event.id,
            r.event.created_at.as_secs(),
            r.seq,
            overlap,
        )
    }

    /// A one-shot query (REQ until EOSE) sent to every relay; the results are merged, newest
    /// first. Returns once every relay answered, or at `timeout` with what the relays that did
    /// answer sent; a CLOSED is an error (as in DePHY's state recovery).
    pub async fn query(&self, filters: Vec<Filter>, timeout: Duration) -> Result<Vec<Event>, ClientError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for cmd in &self.commands {
            let _ = cmd.send(Command::Query { filters: filters.clone(), reply: tx.clone() });
        }
        drop(tx);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut answered = 0;
        let mut events: HashMap<EventId, Event> = HashMap::new();
        while answered < self.commands.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Ok(batch))) => {
                    answered += 1;
                    events.extend(batch.into_iter().map(|e| (e.id, e)));
                }
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => return Err(ClientError::Shutdown),
                Err(_) if answered > 0 => break,
                Err(_) => return Err(ClientError::Timeout(timeout)),
            }
        }
        let mut events: Vec<Event> = events.into_values().collect();
        events.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(events)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.commit();
        for task in &self.tasks {
            task.abort();
        }
    }
}
