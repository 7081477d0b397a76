//! The libp2p stack of a node: transports, protocols, and the network-scoped names.
//!
//! TCP and QUIC (plus DNS resolution, and circuit relay v2 as a transport for nodes behind
//! NAT), noise, yamux. Protocols, in the order they see a new connection: the registry
//! [`Gate`], relay client and server, DCUtR hole punching, identify, Kademlia, GossipSub, and
//! the catch-up request-response protocol. Every protocol id of our own and the GossipSub
//! topic contain the network name, so two networks on the same machines never exchange an
//! event; identify carries it too and a peer announcing another network is disconnected.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, Swarm, dcutr, identify, kad, noise, relay, tcp, yamux};

use crate::authorize::Authorizer;
use crate::gate::Gate;
use crate::sync::{SyncRequest, SyncResponse};

/// Largest catch-up response (a batch of fetched events).
pub const MAX_SYNC_RESPONSE: u64 = 32 * 1024 * 1024;
/// Largest catch-up request.
pub const MAX_SYNC_REQUEST: u64 = 1024 * 1024;

/// The names that keep networks apart.
#[derive(Debug, Clone)]
pub struct Names {
    pub topic: IdentTopic,
    /// Announced in identify; a peer with another value is disconnected.
    pub identify_version: String,
    pub kad: StreamProtocol,
    pub gossipsub_prefix: String,
    pub sync: StreamProtocol,
}

impl Names {
    pub fn new(network: &str) -> anyhow::Result<Self> {
        let proto =
            |s: String| StreamProtocol::try_from_owned(s.clone()).with_context(|| format!("invalid protocol id {s}"));
        Ok(Self {
            topic: IdentTopic::new(format!("dephy/{network}/events/1")),
            identify_version: format!("/dephy/{network}/1.0.0"),
            kad: proto(format!("/dephy/{network}/kad/1.0.0"))?,
            gossipsub_prefix: format!("/dephy/{network}/meshsub"),
            sync: proto(format!("/dephy/{network}/sync/2.0.0"))?,
        })
    }
}

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub gate: Gate,
    pub relay_client: relay::client::Behaviour,
    pub relay: relay::Behaviour,
    pub dcutr: dcutr::Behaviour,
    pub identify: identify::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
}

/// Builds the swarm. `max_message` bounds one gossip message (the relay's max event size
/// plus framing), raising GossipSub's 64 KiB default.
pub fn build_swarm(
    keypair: Keypair,
    names: &Names,
    authorizer: Arc<Authorizer>,
    max_message: usize,
) -> anyhow::Result<Swarm<Behaviour>> {
    let names = names.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .context("cannot set up the TCP transport")?
        .with_quic()
        .with_dns()
        .context("cannot set up DNS resolution (is /etc/resolv.conf readable?)")?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .context("cannot set up the circuit relay transport")?
        .with_behaviour(|key, relay_client| {
            let local = key.public().to_peer_id();
            let gossipsub_config = gossipsub::ConfigBuilder::default()
                .protocol_id_prefix(names.gossipsub_prefix.clone())
                .max_transmit_size(max_message)
                .validation_mode(ValidationMode::Strict)
                .validate_messages()
                .heartbeat_interval(Duration::from_millis(700))
                // Gossip message id = the Nostr event id (the first 32 bytes of the payload).
                .message_id_fn(|msg: &gossipsub::Message| MessageId::from(msg.data.get(..32).unwrap_or(&msg.data)))
                .build()
                .map_err(|e| format!("invalid GossipSub configuration: {e}"))?;
            let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossipsub_config)
                .map_err(|e| format!("cannot start GossipSub: {e}"))?;
            gossipsub.subscribe(&names.topic).map_err(|e| format!("cannot subscribe: {e}"))?;

            let mut kad_config = kad::Config::new(names.kad.clone());
            kad_config.set_query_timeout(Duration::from_secs(30));
            let mut kad = kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_config);
            kad.set_mode(Some(kad::Mode::Server));

            let codec = request_response::cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_SYNC_REQUEST)
                .set_response_size_maximum(MAX_SYNC_RESPONSE);
            let sync = request_response::Behaviour::with_codec(
                codec,
                [(names.sync.clone(), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
            );

            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Behaviour {
                gate: Gate::new(authorizer, local),
                relay_client,
                relay: relay::Behaviour::new(local, relay::Config::default()),
                dcutr: dcutr::Behaviour::new(local),
                identify: identify::Behaviour::new(
                    identify::Config::new(names.identify_version.clone(), key.public())
                        .with_agent_version(format!("dephy-bridge/{}", env!("CARGO_PKG_VERSION"))),
                ),
                kad,
                gossipsub,
                sync,
            })
        })
        .map_err(|e| anyhow::anyhow!("cannot set up the bridge protocols: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}
