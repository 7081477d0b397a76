//! Tree geometry: stored perfect-subtree nodes, the perfect-subtree
//! decomposition of a leaf range, and the append frontier.

use std::fmt;
use std::ops::Range;

use crate::error::Error;
use crate::hash::{Hash, empty_root, node_hash};

/// A perfect subtree of the log, the unit of storage.
///
/// Node `(level, index)` covers the `2^level` leaves
/// `[index << level, (index + 1) << level)`; level 0 holds the leaf hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves: the node covers `2^level` leaves.
    pub level: u8,
    /// Position among the nodes of the same level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The leaves the node covers.
    pub fn leaves(&self) -> Range<u64> {
        self.index << self.level..(self.index + 1) << self.level
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(level {}, index {})", self.level, self.index)
    }
}

/// The perfect subtrees, left to right, whose hashes RFC 9162's MTH recursion
/// combines for the leaf range `[start, end)`.
///
/// These are the subtrees of the binary decomposition of `end - start`,
/// largest first: `MTH` of the range is their hashes folded from the right,
/// `node_hash(h0, node_hash(h1, ... node_hash(hk-1, hk)))`.
/// An empty range yields no node.
///
/// # Panics
///
/// Precondition: `start <= end`, and `start` is a multiple of the largest
/// power of two not above `end - start`, so that every piece is a stored,
/// aligned node. This holds for every range `[0, n)` and for every subtree
/// range `D[k:n]` met in RFC 9162's recursion (`k` is then a multiple of the
/// smallest power of two not below `n - k`). The function panics otherwise.
pub fn perfect_decomposition(start: u64, end: u64) -> Vec<NodeId> {
    assert!(start <= end, "empty-or-forward range expected, got [{start}, {end})");
    let mut nodes = Vec::with_capacity((end - start).count_ones() as usize);
    let mut position = start;
    while position < end {
        let level = (end - position).ilog2();
        assert!(
            position.trailing_zeros() >= level,
            "[{start}, {end}) does not decompose into aligned perfect subtrees"
        );
        nodes.push(NodeId::new(level as u8, position >> level));
        position += 1 << level;
    }
    nodes
}

/// The largest power of two strictly less than `n`, where RFC 9162 splits a
/// tree of `n >= 2` leaves.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2, "only a tree of two or more leaves splits");
    1 << (n - 1).ilog2()
}

/// RFC 9162 `MTH` of consecutive perfect subtrees given largest first, as
/// produced by [`perfect_decomposition`]; the empty tree's root if there are none.
pub(crate) fn fold_subtrees(hashes: &[Hash]) -> Hash {
    hashes.iter().rev().copied().reduce(|right, left| node_hash(&left, &right)).unwrap_or_else(empty_root)
}

/// The right edge of the tree: enough state to append leaves and compute the
/// root without touching storage.
///
/// For a tree of `n` leaves it holds the hashes of the perfect subtrees of
/// `n`'s binary decomposition, largest first, i.e. the nodes of
/// [`Frontier::nodes_needed`]`(n)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored nodes to load, in order, to resume a tree of `size` leaves
    /// with [`Frontier::from_nodes`].
    pub fn nodes_needed(size: u64) -> Vec<NodeId> {
        perfect_decomposition(0, size)
    }

    /// Resumes a tree of `size` leaves from the hashes of
    /// [`Frontier::nodes_needed`]`(size)`, in that order.
    pub fn from_nodes(size: u64, hashes: Vec<Hash>) -> Result<Self, Error> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(Error::WrongNodeCount { size, expected, actual: hashes.len() });
        }
        Ok(Self { size, hashes })
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// RFC 9162 `MTH` of the whole tree.
    pub fn root(&self) -> Hash {
        fold_subtrees(&self.hashes)
    }

    /// Appends a leaf hash and returns every perfect node to store: the leaf
    /// itself at level 0, then each parent it completes, bottom-up.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let index = self.size;
        self.size = index.checked_add(1).expect("the log holds at most u64::MAX leaves");
        let mut new_nodes = Vec::with_capacity(index.trailing_ones() as usize + 1);
        new_nodes.push((NodeId::new(0, index), leaf));
        let mut hash = leaf;
        let mut level = 0;
        // Each set low bit of the old size is a perfect sibling on the left,
        // the last frontier node, that the new leaf now completes.
        while index >> level & 1 == 1 {
            let left = self.hashes.pop().expect("every set bit of the size has a frontier node");
            hash = node_hash(&left, &hash);
            level += 1;
            new_nodes.push((NodeId::new(level, index >> level), hash));
        }
        self.hashes.push(hash);
        new_nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn decomposition_follows_binary_expansion() {
        assert!(perfect_decomposition(5, 5).is_empty());
        assert_eq!(perfect_decomposition(0, 1), [NodeId::new(0, 0)]);
        assert_eq!(perfect_decomposition(0, 8), [NodeId::new(3, 0)]);
        assert_eq!(perfect_decomposition(0, 7), [NodeId::new(2, 0), NodeId::new(1, 2), NodeId::new(0, 6)]);
        assert_eq!(perfect_decomposition(8, 13), [NodeId::new(2, 2), NodeId::new(0, 12)]);
        assert_eq!(perfect_decomposition(0, u64::MAX).len(), 64, "works up to the largest tree");
    }

    #[test]
    fn decomposition_tiles_the_range() {
        for start in 0u64..64 {
            for end in start..=start + 64 {
                let size = end - start;
                if size != 0 && start % (1 << size.ilog2()) != 0 {
                    continue;
                }
                let mut next = start;
                for node in perfect_decomposition(start, end) {
                    assert_eq!(node.leaves().start, next);
                    next = node.leaves().end;
                }
                assert_eq!(next, end);
            }
        }
    }

    #[test]
    #[should_panic(expected = "aligned")]
    fn decomposition_rejects_unaligned_ranges() {
        perfect_decomposition(1, 3);
    }

    #[test]
    fn node_leaves() {
        assert_eq!(NodeId::new(0, 5).leaves(), 5..6);
        assert_eq!(NodeId::new(3, 2).leaves(), 16..24);
        assert_eq!(NodeId::new(63, 1).leaves().start, 1 << 63);
    }

    #[test]
    fn split_point_is_largest_smaller_power_of_two() {
        let cases = [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (u64::MAX, 1 << 63)];
        for (n, k) in cases {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn push_returns_leaf_then_completed_parents() {
        let leaves: Vec<Hash> = (0u8..4).map(|i| leaf_hash(&[i])).collect();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        assert_eq!(frontier.push(leaves[0]), [(NodeId::new(0, 0), leaves[0])]);
        let h01 = node_hash(&leaves[0], &leaves[1]);
        assert_eq!(frontier.push(leaves[1]), [(NodeId::new(0, 1), leaves[1]), (NodeId::new(1, 0), h01)]);
        assert_eq!(frontier.push(leaves[2]), [(NodeId::new(0, 2), leaves[2])]);
        assert_eq!(frontier.root(), node_hash(&h01, &leaves[2]));
        let h23 = node_hash(&leaves[2], &leaves[3]);
        let h0123 = node_hash(&h01, &h23);
        assert_eq!(
            frontier.push(leaves[3]),
            [(NodeId::new(0, 3), leaves[3]), (NodeId::new(1, 1), h23), (NodeId::new(2, 0), h0123)]
        );
        assert_eq!(frontier.size(), 4);
        assert_eq!(frontier.root(), h0123);
    }

    #[test]
    fn from_nodes_checks_the_count() {
        assert!(matches!(
            Frontier::from_nodes(6, vec![[0; 32]]),
            Err(Error::WrongNodeCount { size: 6, expected: 2, actual: 1 })
        ));
        assert_eq!(Frontier::from_nodes(0, Vec::new()).unwrap(), Frontier::new());
    }
}
