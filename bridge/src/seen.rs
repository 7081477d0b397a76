//! Events this node recently took from peers, so that a copy arriving again in another frame
//! (the same event published by two nodes, or sent again after GossipSub's duplicate cache
//! forgot its frame) is skipped before it is parsed, its id hashed and its signature checked.
//!
//! An entry is the event id and a keyed 64-bit hash of the exact JSON bytes that were verified:
//! only a byte-identical copy is skipped (the key is random per process, so a peer cannot craft
//! other bytes under the same hash); a different serialization under a known id is verified
//! like any new event. The oldest entries are forgotten beyond the capacity.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;

/// Recently taken events, by id.
pub struct Seen {
    digests: HashMap<[u8; 32], u64>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
    key: RandomState,
}

impl Seen {
    /// Remembers up to `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            digests: HashMap::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            key: RandomState::new(),
        }
    }

    /// Whether this exact JSON was taken under this id.
    pub fn contains(&self, id: &[u8; 32], json: &str) -> bool {
        self.digests.get(id).is_some_and(|d| *d == self.key.hash_one(json.as_bytes()))
    }

    /// Records a taken event (verified, and within the relay's policy).
    pub fn insert(&mut self, id: &[u8; 32], json: &str) {
        if self.capacity == 0 {
            return;
        }
        let digest = self.key.hash_one(json.as_bytes());
        if self.digests.insert(*id, digest).is_none() {
            self.order.push_back(*id);
            if self.order.len() > self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.digests.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_byte_identical_copies_of_recent_events_are_seen() {
        let mut seen = Seen::new(2);
        seen.insert(&[1; 32], "{\"a\":1}");
        assert!(seen.contains(&[1; 32], "{\"a\":1}"));
        assert!(!seen.contains(&[1; 32], "{\"a\": 1}"), "another serialization is verified again");
        assert!(!seen.contains(&[2; 32], "{\"a\":1}"), "same bytes under another id");
        seen.insert(&[2; 32], "x");
        seen.insert(&[3; 32], "y");
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains(&[1; 32], "{\"a\":1}"), "the oldest is forgotten beyond the capacity");
        assert!(seen.contains(&[2; 32], "x") && seen.contains(&[3; 32], "y"));
    }
}
