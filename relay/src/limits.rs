//! Abuse limits that span connections: connection counts (total and per IP) and rate limits
//! (per IP, per federation peer and per author pubkey), with `governor`'s keyed GCRA limiters.
//!
//! Events from federation peers pass the same limits as a client's: the per-author limit is
//! shared (an author's events count once per copy received, from a client or a peer), and the
//! per-peer limit, keyed by the forwarding peer's wallet, takes the place of the per-IP one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;

/// Per-IP, per-peer and per-pubkey rate limiters.
pub struct RateLimits {
    events_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Keyed by the wallet of the federation peer that forwarded the event.
    events_per_peer: DefaultKeyedRateLimiter<[u8; 32]>,
    events_per_pubkey: DefaultKeyedRateLimiter<[u8; 32]>,
    reqs_per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

fn quota(per_sec: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(per_sec.max(1)).expect("non-zero"))
}

impl RateLimits {
    pub fn new(cfg: &LimitsConfig) -> Self {
        Self {
            events_per_ip: RateLimiter::keyed(quota(cfg.events_per_sec_per_ip)),
            events_per_peer: RateLimiter::keyed(quota(cfg.events_per_sec_per_peer)),
            events_per_pubkey: RateLimiter::keyed(quota(cfg.events_per_sec_per_pubkey)),
            reqs_per_ip: RateLimiter::keyed(quota(cfg.reqs_per_sec_per_ip)),
        }
    }

    pub fn event_from_ip(&self, ip: IpAddr) -> bool {
        self.events_per_ip.check_key(&ip).is_ok()
    }

    /// An event forwarded by the federation peer with this wallet.
    pub fn event_from_peer(&self, wallet: [u8; 32]) -> bool {
        self.events_per_peer.check_key(&wallet).is_ok()
    }

    pub fn event_by_author(&self, pubkey: [u8; 32]) -> bool {
        self.events_per_pubkey.check_key(&pubkey).is_ok()
    }

    pub fn req_from_ip(&self, ip: IpAddr) -> bool {
        self.reqs_per_ip.check_key(&ip).is_ok()
    }

    /// Forgets keys whose buckets are full again; call periodically to bound memory.
    pub fn forget_idle(&self) {
        self.events_per_ip.retain_recent();
        self.events_per_peer.retain_recent();
        self.events_per_pubkey.retain_recent();
        self.reqs_per_ip.retain_recent();
        self.events_per_ip.shrink_to_fit();
        self.events_per_peer.shrink_to_fit();
        self.events_per_pubkey.shrink_to_fit();
        self.reqs_per_ip.shrink_to_fit();
    }
}

/// Why a new connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyConnections,
    TooManyFromIp,
}

/// Counts open connections, in total and per IP.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Held for the life of a connection; releases its slot on drop.
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(cfg: &LimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            max_total: cfg.max_connections,
            max_per_ip: cfg.max_connections_per_ip,
            open: Mutex::default(),
        })
    }

    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut open = self.open.lock().expect("connection limits lock");
        if open.0 >= self.max_total {
            return Err(Refusal::TooManyConnections);
        }
        let per_ip = open.1.entry(ip).or_default();
        if *per_ip >= self.max_per_ip {
            return Err(Refusal::TooManyFromIp);
        }
        *per_ip += 1;
        open.0 += 1;
        Ok(ConnectionSlot { limits: self.clone(), ip })
    }

    pub fn open(&self) -> usize {
        self.open.lock().expect("connection limits lock").0
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("connection limits lock");
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_slots_are_released_on_drop() {
        let cfg = LimitsConfig { max_connections: 3, max_connections_per_ip: 2, ..Default::default() };
        let limits = ConnectionLimits::new(&cfg);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = limits.acquire(a).unwrap();
        let _s2 = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).err(), Some(Refusal::TooManyFromIp));
        let _s3 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).err(), Some(Refusal::TooManyConnections));
        drop(s1);
        assert!(limits.acquire(a).is_ok());
    }

    #[test]
    fn rate_limit_refuses_beyond_burst() {
        let cfg = LimitsConfig { events_per_sec_per_ip: 3, ..Default::default() };
        let rl = RateLimits::new(&cfg);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let allowed = (0..10).filter(|_| rl.event_from_ip(ip)).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn peers_are_limited_by_wallet() {
        let cfg = LimitsConfig { events_per_sec_per_peer: 2, ..Default::default() };
        let rl = RateLimits::new(&cfg);
        let allowed = (0..10).filter(|_| rl.event_from_peer([1; 32])).count();
        assert_eq!(allowed, 2);
        assert!(rl.event_from_peer([2; 32]), "another peer has its own budget");
    }
}
