//! Connection gating: only authorized wallets get a connection.
//!
//! A libp2p behaviour with no protocol of its own. It sits first in the composed behaviour,
//! so its verdict comes before any other protocol sees the peer:
//! - inbound: refused right after the security handshake, when the PeerId (= wallet) is known;
//! - outbound: a dial to a known unauthorized PeerId is never started; a dial to an address
//!   without a PeerId is checked once the handshake reveals it.
//!
//! An unknown wallet is refused for now and queued for one registry lookup (see
//! `authorize.rs`); if the registry says yes, the peer's next attempt passes. A refusal is
//! logged with the wallet and the reason at most once per wallet per minute
//! ([`Authorizer::log_refusal`]).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    dummy,
};
use libp2p::{Multiaddr, PeerId};

use crate::authorize::{Access, Authorizer, Refusal};
use crate::identity::wallet_of;
use crate::metrics as m;

/// Why a connection was refused.
#[derive(Debug)]
pub struct NotAuthorized(pub PeerId, pub Refusal);

impl fmt::Display for NotAuthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {} is not an active node of the registry: {}", self.0, self.1)
    }
}

impl std::error::Error for NotAuthorized {}

pub struct Gate {
    authorizer: Arc<Authorizer>,
    local: PeerId,
}

impl Gate {
    pub fn new(authorizer: Arc<Authorizer>, local: PeerId) -> Self {
        Self { authorizer, local }
    }

    fn admit(&self, peer: PeerId, direction: &'static str) -> Result<(), ConnectionDenied> {
        if peer == self.local {
            return Ok(());
        }
        // A PeerId that is not an ed25519 key has no wallet: never registered.
        let access = wallet_of(&peer).map(|w| (w, self.authorizer.check(&w)));
        let why = match access {
            Some((_, Access::Allowed)) => return Ok(()),
            Some((wallet, Access::Denied(why))) => {
                self.authorizer.log_refusal(&wallet, why, direction);
                why
            }
            None => Refusal::NotRegistered,
        };
        metrics::counter!(m::DENIED, "direction" => direction).increment(1);
        tracing::debug!(%peer, direction, reason = %why, "connection refused");
        Err(ConnectionDenied::new(NotAuthorized(peer, why)))
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(peer, "inbound")?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _id: ConnectionId,
        maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = maybe_peer {
            self.admit(peer, "outbound")?;
        }
        Ok(vec![])
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(peer, "outbound")?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _event: FromSwarm) {}

    fn on_connection_handler_event(&mut self, _peer: PeerId, _id: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
