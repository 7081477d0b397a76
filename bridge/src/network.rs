//! The libp2p stack of a node: transports, protocols, and the network-scoped names.
//!
//! TCP and QUIC (plus DNS resolution, and circuit relay v2 as a transport for nodes behind
//! NAT), noise, yamux. Protocols, in the order they see a new connection: the registry
//! [`Gate`], relay client and server, DCUtR hole punching, identify, Kademlia, GossipSub, and
//! the catch-up request-response protocol. Every protocol id of our own and the GossipSub
//! topic contain the network name, so two networks on the same machines never exchange an
//! event; identify carries it too and a peer announcing another network is disconnected.
//!
//! GossipSub peer scoring ([`score_params`]) is on: a message our validator rejects (see
//! `mirror.rs`) counts as an invalid delivery against the peer that forwarded it, and a peer
//! whose score falls below the graylist threshold has everything it sends dropped unread (and
//! is pruned from the mesh) until the penalty decays.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use libp2p::gossipsub::{
    self, IdentTopic, MessageAuthenticity, PeerScoreParams, PeerScoreThresholds, TopicScoreParams, ValidationMode,
};
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
    /// `bridge.network`.
    pub network: String,
    /// The event topic, `dephy/<network>/events/<frame format>`.
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
            network: network.to_string(),
            topic: IdentTopic::new(format!("{}{}", events_topic_prefix(network), crate::mirror::FORMAT)),
            identify_version: format!("/dephy/{network}/1.0.0"),
            kad: proto(format!("/dephy/{network}/kad/1.0.0"))?,
            gossipsub_prefix: format!("/dephy/{network}/meshsub"),
            sync: proto(format!("/dephy/{network}/sync/2.0.0"))?,
        })
    }
}

/// The event topic of a network without its frame format number: `dephy/<network>/events/`.
/// A peer subscribed to another format's topic runs an incompatible dephy-bridge version.
pub fn events_topic_prefix(network: &str) -> String {
    format!("dephy/{network}/events/")
}

/// GossipSub peer scoring for a small federation whose members are vetted by the registry.
///
/// - P4, invalid messages (the point): `-10 × n²` for `n` invalid deliveries, `n` decaying by
///   0.1 % a second (half-life about 11 minutes). Honest nodes never forward what we reject
///   (they validate before forwarding; a mere difference of registry views or local policy is
///   an `Ignore`, without penalty), so three invalid messages graylist a fresh peer (-90 under
///   -80), four the best-scored one, for about a minute after the last one counted (longer
///   the more it sent); one does not.
/// - P1 (time in mesh, up to +6) and P2 (first deliveries, up to +10) reward honest peers a
///   little, not enough to hide more than a couple of invalid messages.
/// - P3/P3b (mesh delivery deficit) are off: a quiet federation carries few messages and
///   would penalise honest peers for the silence of devices.
/// - IP colocation is off (the registry gates who connects; several nodes may share a host,
///   as in tests on 127.0.0.1), app-specific score is not used.
/// - Behaviour penalty (GRAFT during backoff, broken IWANT promises): `-1 × (n - 6)²`.
/// - Thresholds: gossip -10, publish -50, graylist -80.
pub fn score_params(topic: &IdentTopic) -> (PeerScoreParams, PeerScoreThresholds) {
    let topic_params = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 600.0,
        first_message_deliveries_weight: 0.1,
        first_message_deliveries_decay: 0.99,
        first_message_deliveries_cap: 100.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.999,
        ..TopicScoreParams::default()
    };
    let params = PeerScoreParams {
        topics: [(topic.hash(), topic_params)].into_iter().collect(),
        topic_score_cap: 50.0,
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: -1.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: 0.99,
        decay_interval: Duration::from_secs(1),
        decay_to_zero: 0.01,
        retain_score: Duration::from_secs(3600),
        ..PeerScoreParams::default()
    };
    let thresholds = PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
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

/// Builds the swarm. `max_message` bounds one gossip message (the largest frame plus the
/// protobuf envelope, see `mirror::max_frame_bytes`), raising GossipSub's 64 KiB default.
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
                // Message id: GossipSub's default, publisher and sequence number (every message is
                // signed): a frame's copies from several forwarders are one message. Events are
                // deduplicated by id after that (`seen.rs`, the relay's store).
                .build()
                .map_err(|e| format!("invalid GossipSub configuration: {e}"))?;
            let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossipsub_config)
                .map_err(|e| format!("cannot start GossipSub: {e}"))?;
            let (score, thresholds) = score_params(&names.topic);
            gossipsub.with_peer_score(score, thresholds).map_err(|e| format!("invalid GossipSub peer scoring: {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_parameters_are_valid_and_graylist_repeated_invalid_messages() {
        let names = Names::new("test").unwrap();
        let (params, thresholds) = score_params(&names.topic);
        params.validate().unwrap();
        thresholds.validate().unwrap();
        let topic = &params.topics[&names.topic.hash()];
        // The most an honest peer can earn from P1 and P2 together.
        let best = topic.time_in_mesh_weight * topic.time_in_mesh_cap
            + topic.first_message_deliveries_weight * topic.first_message_deliveries_cap;
        let p4 = |n: f64| topic.topic_weight * topic.invalid_message_deliveries_weight * n * n;
        assert!(p4(1.0) > thresholds.publish_threshold, "one invalid message does not silence a peer");
        assert!(p4(3.0) < thresholds.graylist_threshold, "three graylist a fresh peer");
        assert!(best + p4(4.0) < thresholds.graylist_threshold, "four graylist even the best-scored peer");
        // Graylisted at 3 for about a minute: the counter decays from 3 to sqrt(80 / 10).
        let decay = topic.invalid_message_deliveries_decay;
        let secs = ((-thresholds.graylist_threshold / -topic.invalid_message_deliveries_weight).sqrt() / 3.0).ln()
            / decay.ln()
            * params.decay_interval.as_secs_f64();
        assert!((40.0..120.0).contains(&secs), "{secs}");
    }
}
