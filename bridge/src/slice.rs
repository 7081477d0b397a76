//! Slices of the event set that catch-up reconciles one at a time.
//!
//! Events are ordered by the key `(created_at, id)`, as negentropy orders them. A [`Slice`]
//! is a half-open key range `[from, to)`. Catch-up never loads more than a configured number
//! of events at once: a slice that holds more (on either side) is [split](Slice::split) at
//! the midpoint of its two keys, read as 320-bit integers, so a slice narrows from days to
//! seconds and, within one second, to a range of ids. Any slice of two or more keys can be
//! split, so however the events are spread, every slice ends up small enough.

use serde::{Deserialize, Serialize};

/// `(created_at, event id)`: the order of events in reconciliation.
pub type Key = (u64, [u8; 32]);

/// The smallest key with this `created_at`.
pub const fn at(secs: u64) -> Key {
    (secs, [0; 32])
}

/// The events with `from <= (created_at, id) < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slice {
    pub from: Key,
    pub to: Key,
}

impl Slice {
    /// The events with `since <= created_at <= until` (seconds).
    pub fn seconds(since: u64, until: u64) -> Slice {
        Slice { from: at(since), to: until.checked_add(1).map_or((u64::MAX, [0xff; 32]), at) }
    }

    pub fn is_empty(&self) -> bool {
        self.from >= self.to
    }

    pub fn contains(&self, key: &Key) -> bool {
        &self.from <= key && key < &self.to
    }

    /// The part of this slice inside `other` (possibly empty).
    pub fn clamp(&self, other: &Slice) -> Slice {
        Slice { from: self.from.max(other.from), to: self.to.min(other.to) }
    }

    /// The two halves, lower first; `None` when the slice holds at most one key.
    pub fn split(&self) -> Option<(Slice, Slice)> {
        if self.is_empty() {
            return None;
        }
        let mid = from_bytes(midpoint(&to_bytes(&self.from), &to_bytes(&self.to)));
        (mid > self.from).then_some((Slice { from: self.from, to: mid }, Slice { from: mid, to: self.to }))
    }
}

fn to_bytes(key: &Key) -> [u8; 40] {
    let mut out = [0; 40];
    out[..8].copy_from_slice(&key.0.to_be_bytes());
    out[8..].copy_from_slice(&key.1);
    out
}

fn from_bytes(bytes: [u8; 40]) -> Key {
    let mut secs = [0; 8];
    secs.copy_from_slice(&bytes[..8]);
    let mut id = [0; 32];
    id.copy_from_slice(&bytes[8..]);
    (u64::from_be_bytes(secs), id)
}

/// `floor((a + b) / 2)` of two big-endian 320-bit integers.
fn midpoint(a: &[u8; 40], b: &[u8; 40]) -> [u8; 40] {
    let mut sum = [0u16; 40];
    let mut carry = 0u16;
    for i in (0..40).rev() {
        let s = a[i] as u16 + b[i] as u16 + carry;
        sum[i] = s & 0xff;
        carry = s >> 8;
    }
    // Shift the 321-bit sum (carry, sum) right by one.
    let mut out = [0u8; 40];
    let mut high = carry;
    for i in 0..40 {
        out[i] = ((high << 7) | (sum[i] >> 1)) as u8;
        high = sum[i] & 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_halves_cover_the_slice_and_narrow_to_single_keys() {
        let whole = Slice::seconds(0, u64::MAX);
        assert_eq!(whole.to, (u64::MAX, [0xff; 32]));
        let (lo, hi) = whole.split().unwrap();
        assert_eq!((lo.from, lo.to, hi.to), (whole.from, hi.from, whole.to));
        assert_eq!(lo.to.0, u64::MAX / 2);

        // Within one second the split goes by id, down to a slice of one key.
        let mut s = Slice::seconds(100, 100);
        let mut steps = 0;
        while let Some((lo, hi)) = s.split() {
            assert!(lo.from < lo.to && hi.from < hi.to && lo.to == hi.from);
            assert!(lo.from == at(100) && hi.to == s.to && hi.to <= at(101));
            s = lo;
            steps += 1;
        }
        assert_eq!(steps, 256);
        assert_eq!(
            s.to,
            (100, {
                let mut id = [0; 32];
                id[31] = 1;
                id
            })
        );
        assert!(Slice { from: at(5), to: at(5) }.split().is_none());
    }

    #[test]
    fn clamp_and_contains() {
        let s = Slice::seconds(10, 20);
        assert!(s.contains(&(20, [0xff; 32])) && !s.contains(&at(21)) && s.contains(&at(10)));
        assert_eq!(Slice::seconds(0, u64::MAX).clamp(&s), s);
        assert!(Slice::seconds(30, 40).clamp(&s).is_empty());
    }
}
