//! Rate limits of the bridge's own work: a per-key throttle for log lines (at most one line per
//! key per interval, e.g. one "refused peer" line per wallet per minute) and a token bucket
//! (global bound on registry lookups of unknown wallets). Both are bounded in memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys a [`KeyedThrottle`] remembers; when full, a new key is let through only after the
/// expired ones are dropped (so a flood of keys cannot grow the map, and costs at most one line
/// per key per interval once it is drained).
const MAX_KEYS: usize = 4096;

/// Lets an action through at most once per key per interval.
pub struct KeyedThrottle<K> {
    interval: Duration,
    last: Mutex<HashMap<K, Instant>>,
}

impl<K: Eq + Hash + Clone> KeyedThrottle<K> {
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: Mutex::new(HashMap::new()) }
    }

    /// True when `key` was not let through within the interval (and records it).
    pub fn allow(&self, key: &K) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = last.get(key)
            && now.duration_since(*at) < self.interval
        {
            return false;
        }
        if last.len() >= MAX_KEYS && !last.contains_key(key) {
            let interval = self.interval;
            last.retain(|_, at| now.duration_since(*at) < interval);
            if last.len() >= MAX_KEYS {
                return false;
            }
        }
        last.insert(key.clone(), now);
        true
    }
}

/// A token bucket: `burst` tokens, refilled at `per_sec` tokens per second.
pub struct TokenBucket {
    burst: f64,
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(burst: u32, per_sec: f64) -> Self {
        let burst = f64::from(burst.max(1));
        Self { burst, per_sec, state: Mutex::new((burst, Instant::now())) }
    }

    /// Takes one token if there is one.
    pub fn take(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, at) = *state;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.per_sec).min(self.burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_throttle_lets_each_key_through_once_per_interval() {
        let throttle = KeyedThrottle::new(Duration::from_millis(200));
        assert!(throttle.allow(&1));
        assert!(!throttle.allow(&1));
        assert!(throttle.allow(&2), "keys are independent");
        std::thread::sleep(Duration::from_millis(250));
        assert!(throttle.allow(&1), "again after the interval");
    }

    #[test]
    fn keyed_throttle_is_bounded() {
        let throttle = KeyedThrottle::new(Duration::from_secs(60));
        for key in 0..MAX_KEYS {
            assert!(throttle.allow(&key));
        }
        assert!(!throttle.allow(&MAX_KEYS), "full of unexpired keys: refused rather than grown");
        assert_eq!(throttle.last.lock().unwrap().len(), MAX_KEYS);
    }

    #[test]
    fn token_bucket_allows_a_burst_then_the_rate() {
        let bucket = TokenBucket::new(3, 10.0);
        assert!(bucket.take() && bucket.take() && bucket.take());
        assert!(!bucket.take(), "burst spent");
        std::thread::sleep(Duration::from_millis(150));
        assert!(bucket.take(), "refilled at 10 per second");
    }
}
