//! The node: one task that owns the libp2p swarm and reacts to everything that happens.
//!
//! Inputs, each a bounded queue or a timer:
//! - local events to publish (from the relay's writer, via [`crate::Bridge::outgoing`]),
//!   batched into frames by the [`Outbox`], and the outbox's timer (a frame is due
//!   [`crate::outbox::LINGER`] after its first event);
//! - swarm events: connections, identify, Kademlia discoveries, GossipSub messages, catch-up
//!   requests and responses;
//! - validation verdicts from the validator task;
//! - registry changes (revocations, newly authorized nodes) from the refresher task;
//! - catch-up requests of running sessions (one session per peer as initiator, see
//!   [`crate::catchups`]; peers' requests admitted by the [`Responder`]'s limits, the others
//!   refused at once);
//! - a retry timer: addresses of bootstrap and authorized nodes it is not connected to are
//!   redialled with exponential backoff and jitter per address ([`crate::redial`]).
//!
//! What the operator sees, at most once a minute per peer: a peer of another network; a peer
//! on another frame format's topic (another dephy-bridge version: gossip does not reach it,
//! catch-up still does); a peer
//! that closes our outbound connections right after they open, before its identify arrives
//! (it refuses us: our wallet is not active in its registry, or it is on another network):
//! the warning says so once and the redial backs off instead of repeating `catch-up failed`;
//! a registry entry whose `domain` is unusable (skipped).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::authorize::Authorizer;
use crate::catchups::{CatchUps, RESYNC_DELAY};
use crate::identity::{peer_of, wallet_of};
use crate::metrics as m;
use crate::mirror::{self, Checked, Verdict};
use crate::network::{Behaviour, BehaviourEvent, Names, events_topic_prefix};
use crate::outbox::{Frame, Outbox};
use crate::port::{Ingested, Outgoing, RelayPort, is_rate_limited};
use crate::redial::Backoff;
use crate::registry::NodeEntry;
use crate::seen::Seen;
use crate::status::Status;
use crate::sync::{self, Requester, Responder, SyncResponse};
use crate::throttle::KeyedThrottle;

/// An outbound connection the peer closes within this time, before its identify arrived, is
/// taken as a refusal.
const REFUSAL_WINDOW: Duration = Duration::from_secs(10);
/// Catch-up error when the peer does not speak our sync protocol (another network, or another
/// version): not worth a warning per connection, the identify check says it once.
pub(crate) const NO_SYNC_PROTOCOL: &str =
    "the peer does not speak this network's sync protocol (another bridge.network?)";
/// At most one warning per peer (or registry entry) per interval.
const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// Frames waiting for the validator; beyond this a frame is dropped (catch-up repairs).
const VALIDATE_QUEUE: usize = 2048;
/// Local events taken from the outgoing queue at once, before the loop turns to other work.
const OUTGOING_BURST: usize = 1024;
/// Events the validator remembers having taken (see [`Seen`]).
const SEEN_EVENTS: usize = 65_536;

/// What the loop remembers of each connected peer, for the operator's logs.
struct Session {
    since: Instant,
    /// We dialled it (some connection to it is outbound).
    dialer: bool,
    /// Its identify arrived (it accepted us).
    identified: bool,
}

/// Throttles of the node's warnings.
pub struct Warnings {
    /// Per peer: refused us, other network.
    peers: KeyedThrottle<PeerId>,
    /// Per registry entry: unusable domain.
    domains: KeyedThrottle<[u8; 32]>,
}

impl Default for Warnings {
    fn default() -> Self {
        Self { peers: KeyedThrottle::new(WARN_INTERVAL), domains: KeyedThrottle::new(WARN_INTERVAL) }
    }
}

/// A registry change the node acts on.
pub enum Control {
    /// These wallets lost their authorization: disconnect them.
    Revoked(Vec<[u8; 32]>),
    /// These nodes are authorized (newly, or after a lookup): dial their addresses.
    Authorized(Vec<NodeEntry>),
}

/// Everything the event loop needs.
pub struct Node {
    pub swarm: Swarm<Behaviour>,
    pub names: Names,
    pub authorizer: Arc<Authorizer>,
    pub relay: Arc<dyn RelayPort>,
    pub status: Arc<Status>,
    pub bootstrap: Vec<Multiaddr>,
    pub default_port: u16,
    /// How often due redials are looked for.
    pub retry: Duration,
    /// Per-address redial schedule.
    pub backoff: Backoff,
    pub warnings: Warnings,
    pub sync: sync::SyncLimits,
    pub outgoing: mpsc::Receiver<Outgoing>,
    pub control: mpsc::Receiver<Control>,
    pub shutdown: CancellationToken,
}

type Verdicts = (MessageId, PeerId, MessageAcceptance);

/// Where the event loop hands work that must not block it: gossip messages to the validator,
/// peers' catch-up requests to the responder (answers come back on `answers`).
struct Workers {
    validate: mpsc::Sender<(PeerId, MessageId, gossipsub::Message)>,
    answers: mpsc::Sender<(ResponseChannel<SyncResponse>, SyncResponse)>,
    responder: Arc<Responder>,
}

impl Node {
    pub async fn run(mut self) {
        let local = *self.swarm.local_peer_id();
        let (request_tx, mut requests) = mpsc::channel::<sync::Outbound>(256);
        let catch_ups = CatchUps::new(Requester(request_tx), self.relay.clone(), self.sync, self.status.clone());
        let (verdict_tx, mut verdicts) = mpsc::channel::<Verdicts>(4096);
        let (validate_tx, validate_rx) = mpsc::channel::<(PeerId, MessageId, gossipsub::Message)>(VALIDATE_QUEUE);
        tokio::spawn(validator(
            validate_rx,
            verdict_tx,
            self.authorizer.clone(),
            self.relay.clone(),
            catch_ups.clone(),
        ));
        let (answer_tx, mut answers) = mpsc::channel::<(ResponseChannel<SyncResponse>, SyncResponse)>(256);
        let workers = Workers {
            validate: validate_tx,
            answers: answer_tx,
            responder: Responder::new(self.relay.clone(), self.sync),
        };
        let mut pending: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>> = HashMap::new();
        let mut connected: HashSet<PeerId> = HashSet::new();
        let mut sessions: HashMap<PeerId, Session> = HashMap::new();
        let mut retry = tokio::time::interval(self.retry);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut discovery = tokio::time::interval(Duration::from_secs(30));
        discovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut outbox = Outbox::default();
        // Fires when the outbox's frame is due; polled only while the outbox holds events.
        let linger = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(linger);

        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                Some(out) = self.outgoing.recv() => {
                    // The event, and whatever else is already waiting, joins the outbox.
                    let was_due = outbox.due();
                    let frame = outbox.push(&out);
                    self.publish(frame);
                    for _ in 1..OUTGOING_BURST {
                        let Ok(out) = self.outgoing.try_recv() else { break };
                        let frame = outbox.push(&out);
                        self.publish(frame);
                    }
                    if let Some(due) = outbox.due()
                        && Some(due) != was_due
                    {
                        linger.as_mut().reset(due);
                    }
                }
                _ = &mut linger, if outbox.due().is_some() => {
                    let frame = outbox.take();
                    self.publish(frame);
                }
                Some((id, source, acceptance)) = verdicts.recv() => {
                    self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &source, acceptance);
                }
                Some(req) = requests.recv() => {
                    if connected.contains(&req.peer) {
                        let id = self.swarm.behaviour_mut().sync.send_request(&req.peer, req.request);
                        pending.insert(id, req.reply);
                    } else {
                        let _ = req.reply.send(Err("peer disconnected".into()));
                    }
                }
                Some((channel, response)) = answers.recv() => {
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                }
                Some(control) = self.control.recv() => self.on_control(control, &connected),
                _ = retry.tick() => self.redial(&connected),
                _ = discovery.tick() => {
                    if !connected.is_empty() {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
                event = self.swarm.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { peer_id, num_established, endpoint, .. }
                        if num_established.get() == 1 && peer_id != local =>
                    {
                        connected.insert(peer_id);
                        sessions.insert(peer_id, Session { since: Instant::now(), dialer: endpoint.is_dialer(), identified: false });
                        self.status.set_peers(&connected);
                        tracing::info!(peer = %peer_id, wallet = %wallet_str(&peer_id), "peer connected");
                        if endpoint.is_dialer() {
                            self.swarm.behaviour_mut().kad.add_address(&peer_id, endpoint.get_remote_address().clone());
                        }
                        catch_ups.request(peer_id, Duration::ZERO);
                    }
                    SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } if endpoint.is_dialer() => {
                        if let Some(session) = sessions.get_mut(&peer_id) {
                            session.dialer = true;
                        }
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. }
                        if connected.contains(&peer_id) =>
                    {
                        connected.remove(&peer_id);
                        self.status.set_peers(&connected);
                        tracing::info!(peer = %peer_id, cause = ?cause, "peer disconnected");
                        if let Some(session) = sessions.remove(&peer_id)
                            && session.dialer
                            && !session.identified
                            && session.since.elapsed() < REFUSAL_WINDOW
                        {
                            self.refused_by(peer_id);
                        }
                    }
                    SwarmEvent::NewListenAddr { address, .. } => {
                        tracing::info!(%address, "bridge listening");
                        self.status.add_listen(&address);
                    }
                    SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                        tracing::debug!(peer = ?peer_id, %error, "dial failed");
                    }
                    SwarmEvent::IncomingConnectionError { error, send_back_addr, .. } => {
                        tracing::debug!(%send_back_addr, %error, "inbound connection failed");
                    }
                    SwarmEvent::Behaviour(event) => {
                        self.on_behaviour(event, &workers, &mut pending, &connected, &mut sessions)
                    }
                    _ => {}
                },
            }
        }
        tracing::info!("bridge stopped");
    }

    fn on_behaviour(
        &mut self,
        event: BehaviourEvent,
        workers: &Workers,
        pending: &mut HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>>,
        connected: &HashSet<PeerId>,
        sessions: &mut HashMap<PeerId, Session>,
    ) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                if let Err(mpsc::error::TrySendError::Full((source, id, message))) =
                    workers.validate.try_send((propagation_source, message_id, message))
                {
                    // Overloaded: drop without penalty; catch-up repairs what is missed.
                    let events = mirror::claimed_count(&message.data).max(1);
                    metrics::counter!(m::RECEIVED, "result" => "overloaded").increment(events as u64);
                    self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                        &id,
                        &source,
                        MessageAcceptance::Ignore,
                    );
                }
            }
            // The rate limiter stays out of the guard: a logging decision must not send the
            // event on to the arms below.
            #[allow(clippy::collapsible_match)]
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic })
                if topic != self.names.topic.hash()
                    && topic.as_str().starts_with(&events_topic_prefix(&self.names.network)) =>
            {
                if self.warnings.peers.allow(&peer_id) {
                    tracing::warn!(peer = %peer_id, wallet = %wallet_str(&peer_id), theirs = %topic,
                        ours = %self.names.topic, "peer publishes events in another frame format (topic {topic}, this node {}): it runs another dephy-bridge version; gossip between the two does not flow, only catch-up brings its events — run the same version on both (logged at most once a minute per peer)",
                        self.names.topic);
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != self.names.identify_version {
                    metrics::counter!(m::WRONG_NETWORK).increment(1);
                    if self.warnings.peers.allow(&peer_id) {
                        tracing::warn!(peer = %peer_id, wallet = %wallet_str(&peer_id), theirs = %info.protocol_version,
                            ours = %self.names.identify_version,
                            "peer refused: other network (it announces {}, this node {}; bridge.network) — disconnecting (logged at most once a minute per peer)",
                            info.protocol_version, self.names.identify_version);
                    }
                    if let Some(session) = sessions.get_mut(&peer_id) {
                        session.identified = true; // it answered: not a refusal of us
                    }
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if let Some(session) = sessions.get_mut(&peer_id) {
                    session.identified = true;
                }
                // It accepted us: its addresses may be dialled at once next time.
                self.backoff.reset_peer(&peer_id);
                for addr in info.listen_addrs {
                    if is_dialable(&addr) {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })
                if !connected.contains(&peer)
                    && wallet_of(&peer).is_some_and(|w| self.authorizer.is_authorized(&w)) =>
            {
                let opts = DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing).build();
                let _ = self.swarm.dial(opts);
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => match message {
                request_response::Message::Request { request, channel, .. } => match workers.responder.admit(peer) {
                    Ok(permit) => {
                        let answers = workers.answers.clone();
                        tracing::trace!(%peer, "sync request");
                        tokio::spawn(async move {
                            let response = permit.answer(request).await;
                            drop(permit);
                            let _ = answers.send((channel, response)).await;
                        });
                    }
                    Err(message) => {
                        tracing::debug!(%peer, %message, "sync request refused");
                        let _ = self.swarm.behaviour_mut().sync.send_response(channel, SyncResponse::Error { message });
                    }
                },
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            BehaviourEvent::Sync(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                if let Some(reply) = pending.remove(&request_id) {
                    let message = match error {
                        request_response::OutboundFailure::UnsupportedProtocols => NO_SYNC_PROTOCOL.to_string(),
                        other => other.to_string(),
                    };
                    let _ = reply.send(Err(message));
                }
            }
            _ => {}
        }
    }

    /// Publishes a frame of local events, if there is one.
    fn publish(&mut self, frame: Option<Frame>) {
        let Some(Frame { data, events }) = frame else { return };
        let events = events as u64;
        let topic = self.names.topic.clone();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            Ok(_) => {
                metrics::counter!(m::PUBLISHED).increment(events);
                metrics::counter!(m::PUBLISHED_FRAMES).increment(1);
            }
            Err(PublishError::Duplicate) => {}
            Err(PublishError::NoPeersSubscribedToTopic) => {
                // Peers that connect later reconcile them during catch-up.
                metrics::counter!(m::PUBLISH_FAILED, "reason" => "no_peers").increment(events);
            }
            Err(PublishError::MessageTooLarge) => {
                metrics::counter!(m::PUBLISH_FAILED, "reason" => "too_large").increment(events);
            }
            Err(e) => {
                metrics::counter!(m::PUBLISH_FAILED, "reason" => "error").increment(events);
                tracing::warn!(error = %e, events, "could not publish a frame of events to peers");
            }
        }
    }

    fn on_control(&mut self, control: Control, connected: &HashSet<PeerId>) {
        match control {
            Control::Revoked(wallets) => {
                for wallet in wallets {
                    let Some(peer) = peer_of(&wallet) else { continue };
                    tracing::warn!(peer = %peer, wallet = %bs58::encode(wallet).into_string(),
                        "registry entry removed or deactivated: disconnecting");
                    self.swarm.behaviour_mut().kad.remove_peer(&peer);
                    if connected.contains(&peer) {
                        metrics::counter!(m::REVOKED).increment(1);
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                }
            }
            Control::Authorized(entries) => {
                for entry in entries {
                    if let Some(addr) = self.entry_addr(&entry)
                        && let Some(peer) = peer_of(&entry.wallet)
                        && !connected.contains(&peer)
                    {
                        // Newly authorized: dial at once, and start its schedule afresh.
                        self.backoff.reset_peer(&peer);
                        self.backoff.due(&addr, Instant::now());
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
        }
    }

    /// A peer closed our outbound connection right after it opened: say once why that may be.
    fn refused_by(&mut self, peer: PeerId) {
        metrics::counter!(m::REFUSED_BY_PEER).increment(1);
        // Out of the routing table, so that Kademlia does not dial it behind the backoff's back.
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        if !self.warnings.peers.allow(&peer) {
            return;
        }
        let ours = self.status.wallet();
        tracing::warn!(peer = %peer, wallet = %wallet_str(&peer), our_wallet = %ours, network = %self.status.network(),
            "peer closes our connections right after they open: it most likely refuses this node — is wallet {ours} an active entry of the registry that peer reads, and is it on network {:?} (bridge.network)? Redialling it with backoff (logged at most once a minute per peer)",
            self.status.network());
    }

    /// Dials bootstrap addresses and those of authorized nodes it is not connected to, each when
    /// its backoff allows; addresses without a PeerId only while the node has no peer.
    fn redial(&mut self, connected: &HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        let mut targets: Vec<Multiaddr> = self.bootstrap.clone();
        targets.extend(self.authorizer.entries().iter().filter_map(|e| self.entry_addr(e)));
        let now = Instant::now();
        self.backoff.retain(|addr| targets.contains(addr));
        for addr in targets {
            match crate::addr::peer_in(&addr) {
                Some(peer) if peer == local || connected.contains(&peer) => continue,
                Some(peer) => {
                    if !self.backoff.due(&addr, now) {
                        continue;
                    }
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
                // (`due` records the attempt: only asked when the address would be dialled.)
                None if connected.is_empty() && self.backoff.due(&addr, now) => {
                    let _ = self.swarm.dial(addr);
                }
                None => {}
            }
        }
    }

    /// The address of an entry, if its domain gives one; an unusable domain (on chain, anyone's
    /// to write) is skipped with a warning at most once a minute per entry.
    fn entry_addr(&self, entry: &NodeEntry) -> Option<Multiaddr> {
        let peer = peer_of(&entry.wallet)?;
        if peer == *self.swarm.local_peer_id() {
            return None;
        }
        match crate::addr::parse_domain(&entry.domain, peer, self.default_port) {
            Ok(addr) => addr,
            Err(why) => {
                if self.warnings.domains.allow(&entry.wallet) {
                    tracing::warn!(wallet = %entry.wallet_base58(), domain = %entry.domain.escape_debug(), reason = %why,
                        "registry entry has an unusable domain; not dialling it (logged at most once a minute per entry)");
                }
                None
            }
        }
    }
}

/// Validates gossip frames in arrival order and submits the events it takes in that order
/// (queued one after the other, their commits awaited together). An event over the relay's
/// rate limits is dropped without penalty and fetched later from its forwarder by a catch-up
/// session (see [`crate::catchups`]).
async fn validator(
    mut rx: mpsc::Receiver<(PeerId, MessageId, gossipsub::Message)>,
    verdicts: mpsc::Sender<Verdicts>,
    authorizer: Arc<Authorizer>,
    relay: Arc<dyn RelayPort>,
    catch_ups: CatchUps,
) {
    let mut seen = Seen::new(SEEN_EVENTS);
    while let Some((source, id, message)) = rx.recv().await {
        let verdict = mirror::validate(&message, &source, &authorizer, &relay, &mut seen);
        let _ = verdicts.send((id, source, verdict.acceptance())).await;
        match verdict {
            Verdict::Accept(events) => {
                let mut committing = Vec::with_capacity(events.len());
                let mut rate_limited = false;
                for checked in events {
                    match checked {
                        Checked::Take(event) => {
                            metrics::counter!(m::RECEIVED, "result" => "accepted").increment(1);
                            committing.push(relay.submit(event).await);
                        }
                        Checked::Seen => metrics::counter!(m::RECEIVED, "result" => "duplicate").increment(1),
                        Checked::Refused(reason) if is_rate_limited(&reason) => {
                            metrics::counter!(m::RECEIVED, "result" => "rate_limited").increment(1);
                            rate_limited = true;
                        }
                        Checked::Refused(reason) => {
                            metrics::counter!(m::RECEIVED, "result" => "ignored").increment(1);
                            tracing::debug!(%source, %reason, "mirrored event ignored by local policy");
                        }
                    }
                }
                if rate_limited {
                    catch_ups.request(source, RESYNC_DELAY);
                }
                if !committing.is_empty() {
                    tokio::spawn(async move {
                        for committed in committing {
                            if committed.await == Ingested::New {
                                metrics::counter!(m::INGESTED).increment(1);
                            }
                        }
                    });
                }
            }
            Verdict::Reject(reason) => {
                let events = mirror::claimed_count(&message.data).max(1);
                metrics::counter!(m::RECEIVED, "result" => "rejected").increment(events as u64);
                tracing::info!(%source, %reason, "gossip frame rejected");
            }
            Verdict::Ignore(reason) => {
                let events = mirror::claimed_count(&message.data).max(1);
                metrics::counter!(m::RECEIVED, "result" => "ignored").increment(events as u64);
                tracing::debug!(%source, %reason, "gossip frame ignored");
            }
        }
    }
}

fn wallet_str(peer: &PeerId) -> String {
    wallet_of(peer).map(|w| bs58::encode(w).into_string()).unwrap_or_default()
}

/// Addresses worth keeping in the routing table (not circuit or unspecified ones).
fn is_dialable(addr: &Multiaddr) -> bool {
    addr.iter().all(|p| !matches!(p, Protocol::P2pCircuit))
        && !addr.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_unspecified(),
            Protocol::Ip6(ip) => ip.is_unspecified(),
            _ => false,
        })
}
