//! When to dial an address again: exponential backoff with jitter, per address.
//!
//! The node's retry timer asks [`Backoff::due`] for every bootstrap and registry address it is
//! not connected to. An address is dialled at once the first time; after that the delay before
//! the next attempt starts at `base` (`bridge.retry_secs`) and doubles on each attempt up to
//! `max` (`bridge.retry_max_secs`), each delay spread by ±20 % so that nodes restarted together
//! do not dial in lockstep. The schedule of a peer's addresses is reset once the peer accepted
//! us (its identify arrived), or when the registry newly authorizes it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

/// The redial schedule of every address.
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// Address → (earliest next attempt, attempts so far).
    next: HashMap<Multiaddr, (Instant, u32)>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max: max.max(base), next: HashMap::new() }
    }

    /// Whether `addr` may be dialled now; if so, the attempt is recorded and the next one
    /// scheduled.
    pub fn due(&mut self, addr: &Multiaddr, now: Instant) -> bool {
        let attempts = match self.next.get(addr) {
            Some((at, _)) if now < *at => return false,
            Some((_, attempts)) => *attempts,
            None => 0,
        };
        let attempts = attempts.saturating_add(1);
        self.next.insert(addr.clone(), (now + self.delay(attempts), attempts));
        true
    }

    /// The delay after the `attempts`-th attempt: `base * 2^(attempts-1)`, at most `max`, ±20 %.
    pub fn delay(&self, attempts: u32) -> Duration {
        let doubled = self.base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let capped = doubled.min(self.max);
        capped.mul_f64(rand::random_range(0.8..1.2))
    }

    /// Forgets the schedule of `addr` (the next attempt may happen at once).
    pub fn reset(&mut self, addr: &Multiaddr) {
        self.next.remove(addr);
    }

    /// Forgets the schedule of every address of `peer`.
    pub fn reset_peer(&mut self, peer: &PeerId) {
        self.next.retain(|addr, _| crate::addr::peer_in(addr).as_ref() != Some(peer));
    }

    /// Drops addresses that are no longer dial targets (bounded by the targets).
    pub fn retain(&mut self, keep: impl Fn(&Multiaddr) -> bool) {
        self.next.retain(|addr, _| keep(addr));
    }

    /// When `addr` may next be dialled, if it was dialled before.
    pub fn next_attempt(&self, addr: &Multiaddr) -> Option<Instant> {
        self.next.get(addr).map(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        for (attempts, nominal) in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 32.0), (6, 60.0), (30, 60.0)] {
            for _ in 0..20 {
                let d = backoff.delay(attempts).as_secs_f64();
                assert!(d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9, "attempt {attempts}: {d}");
            }
        }
        let spread: std::collections::HashSet<u128> = (0..20).map(|_| backoff.delay(3).as_micros()).collect();
        assert!(spread.len() > 1, "jittered");
    }

    #[test]
    fn an_address_is_dialled_at_once_then_after_growing_delays() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let t0 = Instant::now();
        assert!(backoff.due(&addr, t0), "first attempt at once");
        assert!(!backoff.due(&addr, t0), "not again right away");
        assert!(!backoff.due(&addr, t0 + Duration::from_millis(700)));
        let mut t = t0;
        let mut dials = vec![];
        // Over 60 simulated seconds in 100 ms ticks: attempts at ~0, 1, 3, 7, 15, 23, ...
        while t < t0 + Duration::from_secs(60) {
            t += Duration::from_millis(100);
            if backoff.due(&addr, t) {
                dials.push((t - t0).as_secs_f64());
            }
        }
        assert!((7..=13).contains(&dials.len()), "dials at {dials:?}");
        let gaps: Vec<f64> = dials.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g <= 8.0 * 1.2 + 0.2), "capped: {gaps:?}");

        backoff.reset(&addr);
        assert!(backoff.due(&addr, t), "reset: at once again");
        let peer = PeerId::random();
        let with_peer = addr.clone().with(libp2p::multiaddr::Protocol::P2p(peer));
        assert!(backoff.due(&with_peer, t) && !backoff.due(&with_peer, t));
        backoff.reset_peer(&peer);
        assert!(backoff.due(&with_peer, t));
        assert!(backoff.next_attempt(&addr).is_some());
        backoff.retain(|a| a == &with_peer);
        assert!(backoff.next_attempt(&addr).is_none());
    }
}
