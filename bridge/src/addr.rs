//! Bootstrap addresses: turning a registry entry's `domain` into a dialable multiaddr.
//!
//! A domain may be a multiaddr (`/ip4/1.2.3.4/tcp/4001`), `host:port`, or a bare host (the
//! configured default port is used). The node's PeerId, derived from its wallet, is appended
//! so the dial is checked against the registry before it starts.

use std::net::IpAddr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// The dialable address of a registry entry, if its domain gives one.
pub fn from_domain(domain: &str, peer: PeerId, default_port: u16) -> Option<Multiaddr> {
    let domain = domain.trim();
    if domain.is_empty() {
        return None;
    }
    let addr: Multiaddr = if domain.starts_with('/') {
        domain.parse().ok()?
    } else {
        let (host, port) = match domain.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                (h.trim_start_matches('[').trim_end_matches(']'), p.parse().ok()?)
            }
            _ => (domain, default_port),
        };
        let mut addr = Multiaddr::empty();
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => addr.push(Protocol::Ip4(ip)),
            Ok(IpAddr::V6(ip)) => addr.push(Protocol::Ip6(ip)),
            Err(_) => addr.push(Protocol::Dns(host.to_string().into())),
        }
        addr.push(Protocol::Tcp(port));
        addr
    };
    with_peer(addr, peer)
}

/// Appends `/p2p/<peer>` unless the address already names a peer (a different one: `None`).
pub fn with_peer(addr: Multiaddr, peer: PeerId) -> Option<Multiaddr> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) if p == peer => Some(addr),
        Some(Protocol::P2p(_)) => None,
        _ => Some(addr.with(Protocol::P2p(peer))),
    }
}

/// The peer an address names (its trailing `/p2p/...`).
pub fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_become_multiaddrs() {
        let peer = PeerId::random();
        let p = format!("/p2p/{peer}");
        assert_eq!(from_domain("", peer, 4001), None);
        assert_eq!(from_domain("1.2.3.4", peer, 4001).unwrap().to_string(), format!("/ip4/1.2.3.4/tcp/4001{p}"));
        assert_eq!(from_domain("1.2.3.4:9", peer, 4001).unwrap().to_string(), format!("/ip4/1.2.3.4/tcp/9{p}"));
        assert_eq!(
            from_domain("node.example.org", peer, 4001).unwrap().to_string(),
            format!("/dns/node.example.org/tcp/4001{p}")
        );
        assert_eq!(from_domain("[::1]:7", peer, 4001).unwrap().to_string(), format!("/ip6/::1/tcp/7{p}"));
        assert_eq!(
            from_domain("/ip4/127.0.0.1/udp/5/quic-v1", peer, 4001).unwrap().to_string(),
            format!("/ip4/127.0.0.1/udp/5/quic-v1{p}")
        );
        let other = PeerId::random();
        assert_eq!(from_domain(&format!("/ip4/127.0.0.1/tcp/5/p2p/{other}"), peer, 4001), None);
        assert_eq!(from_domain("host:notaport", peer, 4001), None);
    }
}
