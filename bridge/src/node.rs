//! The node: one task that owns the libp2p swarm and reacts to everything that happens.
//!
//! Inputs, each a bounded queue or a timer:
//! - local events to publish (from the relay's writer, via [`crate::Bridge::outgoing`]);
//! - swarm events: connections, identify, Kademlia discoveries, GossipSub messages, catch-up
//!   requests and responses;
//! - validation verdicts from the validator task;
//! - registry changes (revocations, newly authorized nodes) from the refresher task;
//! - catch-up requests of running sessions (one session per peer as initiator; peers'
//!   requests admitted by the [`Responder`]'s limits, the others refused at once);
//! - a retry timer: while the node has no peer it redials every bootstrap address.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use crate::identity::{peer_of, wallet_of};
use crate::metrics as m;
use crate::mirror::{self, Verdict};
use crate::network::{Behaviour, BehaviourEvent, Names};
use crate::port::{Ingested, Outgoing, RelayPort};
use crate::registry::NodeEntry;
use crate::status::Status;
use crate::sync::{self, Requester, Responder, SyncResponse};

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
    pub retry: Duration,
    pub sync: sync::SyncLimits,
    pub outgoing: mpsc::Receiver<Outgoing>,
    pub control: mpsc::Receiver<Control>,
    pub shutdown: CancellationToken,
}

type Verdicts = (MessageId, PeerId, MessageAcceptance);

impl Node {
    pub async fn run(mut self) {
        let local = *self.swarm.local_peer_id();
        let (verdict_tx, mut verdicts) = mpsc::channel::<Verdicts>(4096);
        let (validate_tx, validate_rx) = mpsc::channel::<(PeerId, MessageId, gossipsub::Message)>(8192);
        tokio::spawn(validator(validate_rx, verdict_tx, self.authorizer.clone(), self.relay.clone()));
        let (request_tx, mut requests) = mpsc::channel::<sync::Outbound>(256);
        let requester = Requester(request_tx);
        let (answer_tx, mut answers) = mpsc::channel::<(ResponseChannel<SyncResponse>, SyncResponse)>(256);
        let responder = Responder::new(self.relay.clone(), self.sync);
        // Peers we run a catch-up session with (one at a time per peer), and whether another
        // is due when it ends.
        let initiating: Arc<Mutex<HashMap<PeerId, bool>>> = Arc::default();
        let mut pending: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>> = HashMap::new();
        let mut connected: HashSet<PeerId> = HashSet::new();
        let mut retry = tokio::time::interval(self.retry);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut discovery = tokio::time::interval(Duration::from_secs(30));
        discovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                Some(out) = self.outgoing.recv() => self.publish(out),
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
                        self.status.set_peers(&connected);
                        tracing::info!(peer = %peer_id, wallet = %wallet_str(&peer_id), "peer connected");
                        if endpoint.is_dialer() {
                            self.swarm.behaviour_mut().kad.add_address(&peer_id, endpoint.get_remote_address().clone());
                        }
                        // One session per peer: a connection made while one runs (a quick
                        // reconnect) gets another session once it ends.
                        let running = {
                            let mut sessions = initiating.lock().unwrap_or_else(|e| e.into_inner());
                            match sessions.get_mut(&peer_id) {
                                Some(again) => {
                                    *again = true;
                                    true
                                }
                                None => {
                                    sessions.insert(peer_id, false);
                                    false
                                }
                            }
                        };
                        if running {
                            metrics::counter!(m::SYNC_SKIPPED).increment(1);
                            tracing::debug!(peer = %peer_id, "catch-up with this peer running: another follows");
                        } else {
                            let (requester, relay, limits) = (requester.clone(), self.relay.clone(), self.sync);
                            let initiating = initiating.clone();
                            tokio::spawn(async move {
                                loop {
                                    let started = std::time::Instant::now();
                                    match sync::catch_up(peer_id, &requester, &relay, &limits).await {
                                        Ok(r) => {
                                            metrics::counter!(m::SYNC_SESSIONS, "result" => "ok").increment(1);
                                            tracing::info!(peer = %peer_id, needed = r.needed, stored = r.stored,
                                                offered = r.offered, slices = r.slices, rounds = r.rounds,
                                                secs = started.elapsed().as_secs_f32(), "catch-up done");
                                        }
                                        Err(e) => {
                                            metrics::counter!(m::SYNC_SESSIONS, "result" => "error").increment(1);
                                            tracing::warn!(peer = %peer_id, error = %e, "catch-up failed");
                                        }
                                    }
                                    let mut sessions = initiating.lock().unwrap_or_else(|e| e.into_inner());
                                    match sessions.get_mut(&peer_id) {
                                        Some(again) if *again => *again = false,
                                        _ => {
                                            sessions.remove(&peer_id);
                                            break;
                                        }
                                    }
                                }
                            });
                        }
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. }
                        if connected.contains(&peer_id) =>
                    {
                        connected.remove(&peer_id);
                        self.status.set_peers(&connected);
                        tracing::info!(peer = %peer_id, cause = ?cause, "peer disconnected");
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
                        self.on_behaviour(event, &validate_tx, &answer_tx, &responder, &mut pending, &connected)
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
        validate: &mpsc::Sender<(PeerId, MessageId, gossipsub::Message)>,
        answers: &mpsc::Sender<(ResponseChannel<SyncResponse>, SyncResponse)>,
        responder: &Arc<Responder>,
        pending: &mut HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>>,
        connected: &HashSet<PeerId>,
    ) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                if let Err(mpsc::error::TrySendError::Full((source, id, _))) =
                    validate.try_send((propagation_source, message_id, message))
                {
                    // Overloaded: drop without penalty; catch-up repairs what is missed.
                    metrics::counter!(m::RECEIVED, "result" => "overloaded").increment(1);
                    self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                        &id,
                        &source,
                        MessageAcceptance::Ignore,
                    );
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != self.names.identify_version {
                    metrics::counter!(m::WRONG_NETWORK).increment(1);
                    tracing::info!(peer = %peer_id, theirs = %info.protocol_version, ours = %self.names.identify_version,
                        "disconnecting a peer of another network");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
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
                request_response::Message::Request { request, channel, .. } => match responder.admit(peer) {
                    Ok(permit) => {
                        let answers = answers.clone();
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
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            _ => {}
        }
    }

    fn publish(&mut self, out: Outgoing) {
        let topic = self.names.topic.clone();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, mirror::encode(&out.id, &out.json)) {
            Ok(_) => metrics::counter!(m::PUBLISHED).increment(1),
            Err(PublishError::Duplicate) => {}
            Err(PublishError::NoPeersSubscribedToTopic) => {
                // Peers that connect later reconcile it during catch-up.
                metrics::counter!(m::PUBLISH_FAILED, "reason" => "no_peers").increment(1);
            }
            Err(PublishError::MessageTooLarge) => {
                metrics::counter!(m::PUBLISH_FAILED, "reason" => "too_large").increment(1);
            }
            Err(e) => {
                metrics::counter!(m::PUBLISH_FAILED, "reason" => "error").increment(1);
                tracing::warn!(error = %e, "could not publish an event to peers");
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
                        && !connected.contains(&peer_of(&entry.wallet).expect("valid wallet"))
                    {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
        }
    }

    /// Dials bootstrap addresses: all of them while the node has no peer, otherwise those of
    /// authorized nodes it is not connected to.
    fn redial(&mut self, connected: &HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        let mut targets: Vec<Multiaddr> = self.bootstrap.clone();
        targets.extend(self.authorizer.entries().iter().filter_map(|e| self.entry_addr(e)));
        for addr in targets {
            match crate::addr::peer_in(&addr) {
                Some(peer) if peer == local || connected.contains(&peer) => continue,
                Some(peer) => {
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
                None if connected.is_empty() => {
                    let _ = self.swarm.dial(addr);
                }
                None => {}
            }
        }
    }

    fn entry_addr(&self, entry: &NodeEntry) -> Option<Multiaddr> {
        let peer = peer_of(&entry.wallet)?;
        if peer == *self.swarm.local_peer_id() {
            return None;
        }
        crate::addr::from_domain(&entry.domain, peer, self.default_port)
    }
}

/// Validates gossip messages in arrival order and submits accepted events in that order.
async fn validator(
    mut rx: mpsc::Receiver<(PeerId, MessageId, gossipsub::Message)>,
    verdicts: mpsc::Sender<Verdicts>,
    authorizer: Arc<Authorizer>,
    relay: Arc<dyn RelayPort>,
) {
    while let Some((source, id, message)) = rx.recv().await {
        let verdict = mirror::validate(&message, &source, &authorizer, &relay);
        let _ = verdicts.send((id, source, verdict.acceptance())).await;
        match verdict {
            Verdict::Accept(event) => {
                metrics::counter!(m::RECEIVED, "result" => "accepted").increment(1);
                let committing = relay.submit(event).await;
                tokio::spawn(async move {
                    if committing.await == Ingested::New {
                        metrics::counter!(m::INGESTED).increment(1);
                    }
                });
            }
            Verdict::Reject(reason) => {
                metrics::counter!(m::RECEIVED, "result" => "rejected").increment(1);
                tracing::info!(%source, %reason, "gossip message rejected");
            }
            Verdict::Ignore(reason) => {
                metrics::counter!(m::RECEIVED, "result" => "ignored").increment(1);
                tracing::debug!(%source, %reason, "gossip message ignored by local policy");
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
