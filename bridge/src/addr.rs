//! Bootstrap addresses: turning a registry entry's `domain` into a dialable multiaddr.
//!
//! A domain may be a multiaddr (`/ip4/1.2.3.4/tcp/4001`), `host:port`, or a bare host (the
//! configured default port is used). The node's PeerId, derived from its wallet, is appended
//! so the dial is checked against the registry before it starts.
//!
//! A Solana registry's `domain` is written on chain by anyone who registers: [`parse_domain`]
//! says why one is unusable (not a multiaddr, a host that is not a DNS name or IP address, a
//! port that is not a number, a multiaddr naming another peer) and the node skips it (see
//! `node.rs`, which logs that at most once a minute per node).

use std::net::IpAddr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// The dialable address of a registry entry, if its domain gives one.
pub fn from_domain(domain: &str, peer: PeerId, default_port: u16) -> Option<Multiaddr> {
    parse_domain(domain, peer, default_port).ok().flatten()
}

/// The dialable address of a registry entry: `Ok(None)` for an empty domain, `Err` (why) for
/// one that is not usable.
pub fn parse_domain(domain: &str, peer: PeerId, default_port: u16) -> Result<Option<Multiaddr>, String> {
    let domain = domain.trim();
    if domain.is_empty() {
        return Ok(None);
    }
    let addr: Multiaddr = if domain.starts_with('/') {
        domain.parse().map_err(|e| format!("not a multiaddr: {e}"))?
    } else {
        let (host, port) = match domain.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse().map_err(|_| format!("port {p:?} is not a number from 0 to 65535"))?,
            ),
            _ => (domain, default_port),
        };
        let mut addr = Multiaddr::empty();
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => addr.push(Protocol::Ip4(ip)),
            Ok(IpAddr::V6(ip)) => addr.push(Protocol::Ip6(ip)),
            Err(_) if is_dns_name(host) => addr.push(Protocol::Dns(host.to_string().into())),
            Err(_) => return Err(format!("{host:?} is neither an IP address nor a DNS name")),
        }
        addr.push(Protocol::Tcp(port));
        addr
    };
    with_peer(addr, peer).map(Some).ok_or_else(|| "the address names another peer (/p2p/...)".to_string())
}

/// A DNS host name: 1-253 characters, dot-separated labels of 1-63 letters, digits, `-` or `_`,
/// not starting or ending with `-`.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
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

    #[test]
    fn hostile_domains_are_refused_with_a_reason() {
        let peer = PeerId::random();
        assert_eq!(parse_domain("  ", peer, 4001), Ok(None));
        for (domain, why) in [
            ("nonsense address", "neither an IP address nor a DNS name"),
            ("a/b", "neither"),
            (":4001", "neither"),
            ("[]:5", "neither"),
            ("-bad.example", "neither"),
            ("host:99999", "port"),
            ("/not/a/multiaddr", "not a multiaddr"),
            ("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", "another peer"),
        ] {
            let err = parse_domain(domain, peer, 4001).expect_err(domain);
            assert!(err.contains(why), "{domain:?}: {err}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(parse_domain(&long, peer, 4001).is_err(), "a label over 63 characters");
        let nul = "host\0.example";
        assert!(parse_domain(nul, peer, 4001).is_err());
        assert!(parse_domain("node_1.example.org.", peer, 4001).unwrap().is_some());
    }
}
