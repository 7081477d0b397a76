//! RFC 9162 inclusion (§2.1.3) and consistency (§2.1.4) proofs: which stored
//! nodes a proof needs, proof assembly from those nodes, and verification.
//!
//! Every element of an RFC 9162 proof is the `MTH` of a subtree range of the
//! tree. Ranges inside the tree are perfect subtrees, stored as one node; only
//! a range on the right edge may be imperfect, and its hash is folded from the
//! stored perfect nodes of its [`perfect_decomposition`]. A proof therefore
//! costs O(log n) stored nodes and no leaf rehashing.

use std::ops::Range;

use crate::error::Error;
use crate::hash::{Hash, node_hash};
use crate::tree::{NodeId, fold_subtrees, perfect_decomposition, split_point};

/// The subtree ranges whose hashes form RFC 9162 `PATH(index, D[0:size])`, in
/// proof order (bottom-up). Requires `index < size`.
fn inclusion_ranges(index: u64, size: u64) -> Vec<Range<u64>> {
    let (mut lo, mut hi) = (0, size);
    let mut ranges = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            ranges.push(mid..hi);
            hi = mid;
        } else {
            ranges.push(lo..mid);
            lo = mid;
        }
    }
    ranges.reverse();
    ranges
}

/// The subtree ranges whose hashes form RFC 9162 `PROOF(m, D[0:n])`, in proof
/// order (bottom-up). Requires `0 < m <= n`.
fn consistency_ranges(m: u64, n: u64) -> Vec<Range<u64>> {
    // SUBPROOF(m, D[lo:hi], b), with m counted from leaf 0 rather than from lo.
    let (mut lo, mut hi) = (0, n);
    let mut b = true;
    let mut ranges = Vec::new();
    while m < hi {
        let mid = lo + split_point(hi - lo);
        if m <= mid {
            ranges.push(mid..hi);
            hi = mid;
        } else {
            ranges.push(lo..mid);
            lo = mid;
            b = false;
        }
    }
    // Here m == hi: SUBPROOF(m, D[lo:m], b) is {} if b, else {MTH(D[lo:m])}.
    if !b {
        ranges.push(lo..hi);
    }
    ranges.reverse();
    ranges
}

/// Every stored node needed by the given ranges; they are disjoint, so no
/// node repeats.
fn nodes_of(ranges: &[Range<u64>]) -> Vec<NodeId> {
    ranges.iter().flat_map(|range| perfect_decomposition(range.start, range.end)).collect()
}

/// `MTH` of a subtree range, folded from its stored perfect nodes.
fn range_hash(range: Range<u64>, lookup: &impl Fn(NodeId) -> Option<Hash>) -> Result<Hash, Error> {
    let hashes = perfect_decomposition(range.start, range.end)
        .into_iter()
        .map(|id| lookup(id).ok_or(Error::MissingNode(id)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fold_subtrees(&hashes))
}

/// The stored nodes [`inclusion_proof`]`(index, size, ..)` reads, without
/// repetition, so that they can be fetched in one query.
///
/// Empty when `index >= size` (then [`inclusion_proof`] fails) and for the
/// single-leaf tree, whose proof is empty.
pub fn inclusion_proof_nodes(index: u64, size: u64) -> Vec<NodeId> {
    if index >= size {
        return Vec::new();
    }
    nodes_of(&inclusion_ranges(index, size))
}

/// The stored nodes [`consistency_proof`]`(m, n, ..)` reads, without
/// repetition, so that they can be fetched in one query.
///
/// Empty unless `0 < m < n` (the other valid case, `m == n`, has an empty proof).
pub fn consistency_proof_nodes(m: u64, n: u64) -> Vec<NodeId> {
    if m == 0 || m > n {
        return Vec::new();
    }
    nodes_of(&consistency_ranges(m, n))
}

/// RFC 9162 `PATH(index, D[0:size])`, the inclusion proof of leaf `index`
/// in the tree of `size` leaves, assembled from stored nodes.
///
/// `lookup` returns the hash of a stored node; it is asked exactly for the
/// nodes of [`inclusion_proof_nodes`]`(index, size)`.
pub fn inclusion_proof(index: u64, size: u64, lookup: impl Fn(NodeId) -> Option<Hash>) -> Result<Vec<Hash>, Error> {
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    inclusion_ranges(index, size).into_iter().map(|range| range_hash(range, &lookup)).collect()
}

/// RFC 9162 `PROOF(m, D[0:n])`, the consistency proof from the tree of `m`
/// leaves to the tree of `n` leaves, assembled from stored nodes.
///
/// Requires `0 < m <= n`; the proof is empty when `m == n`. `lookup` returns
/// the hash of a stored node; it is asked exactly for the nodes of
/// [`consistency_proof_nodes`]`(m, n)`.
pub fn consistency_proof(m: u64, n: u64, lookup: impl Fn(NodeId) -> Option<Hash>) -> Result<Vec<Hash>, Error> {
    if m == 0 || m > n {
        return Err(Error::InvalidTreeSizes { old: m, new: n });
    }
    consistency_ranges(m, n).into_iter().map(|range| range_hash(range, &lookup)).collect()
}

/// RFC 9162 `MTH(D[0:size])` from stored nodes: the hashes of
/// [`Frontier::nodes_needed`](crate::Frontier::nodes_needed)`(size)`.
pub fn root_from_nodes(size: u64, lookup: impl Fn(NodeId) -> Option<Hash>) -> Result<Hash, Error> {
    range_hash(0..size, &lookup)
}

/// The length of `PATH(index, D[0:size])`, for `index < size`: one hash per
/// level below the point where the paths to `index` and to the last leaf
/// diverge, plus one per left sibling above it.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The length of `PROOF(m, D[0:n])`, for `0 < m < n`: the inclusion path of
/// leaf `m - 1` without the levels inside the perfect subtree ending at `m`,
/// plus that subtree's hash unless it is the whole old tree.
fn consistency_proof_len(m: u64, n: u64) -> usize {
    let shared_levels = m.trailing_zeros() as usize;
    let seed = usize::from(!m.is_power_of_two());
    inclusion_proof_len(m - 1, n) - shared_levels + seed
}

/// Verifies an RFC 9162 inclusion proof (§2.1.3.2): that the leaf with hash
/// `leaf_hash` is leaf `index` of the tree of `size` leaves with root `root`.
pub fn verify_inclusion(leaf_hash: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), Error> {
    // Step 1.
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    let wrong_length = || Error::WrongProofLength { expected: inclusion_proof_len(index, size), actual: proof.len() };
    // Steps 2 and 3.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if sn == 0 {
            return Err(wrong_length());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    if sn != 0 {
        return Err(wrong_length());
    }
    if r != *root {
        return Err(Error::RootMismatch { size });
    }
    Ok(())
}

/// Verifies an RFC 9162 consistency proof (§2.1.4.2): that the tree of `n`
/// leaves with root `root_n` extends the tree of `m` leaves with root `root_m`.
///
/// RFC 9162 defines the algorithm for `0 < m < n`. For `m == n` the proof
/// must be empty and the roots equal. `m == 0` is rejected, like `m > n`.
pub fn verify_consistency(m: u64, n: u64, proof: &[Hash], root_m: &Hash, root_n: &Hash) -> Result<(), Error> {
    if m == 0 || m > n {
        return Err(Error::InvalidTreeSizes { old: m, new: n });
    }
    if m == n {
        if !proof.is_empty() {
            return Err(Error::WrongProofLength { expected: 0, actual: proof.len() });
        }
        if root_m != root_n {
            return Err(Error::RootMismatch { size: n });
        }
        return Ok(());
    }
    let wrong_length = || Error::WrongProofLength { expected: consistency_proof_len(m, n), actual: proof.len() };
    // Step 1.
    let Some((first, rest)) = proof.split_first() else {
        return Err(wrong_length());
    };
    // Steps 2 and 5: with `first_hash` prepended when `m` is a power of two,
    // the first element seeds both roots and the remaining ones are iterated.
    let (seed, path) = if m.is_power_of_two() { (root_m, proof) } else { (first, rest) };
    // Step 3.
    let (mut fn_, mut sn) = (m - 1, n - 1);
    // Step 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (*seed, *seed);
    // Step 6.
    for c in path {
        if sn == 0 {
            return Err(wrong_length());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(wrong_length());
    }
    if fr != *root_m {
        return Err(Error::RootMismatch { size: m });
    }
    if sr != *root_n {
        return Err(Error::RootMismatch { size: n });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_rfc_recursion() {
        // PATH(0, D[0:7]) = {d1, MTH(D[2:4]), MTH(D[4:7])}
        assert_eq!(inclusion_ranges(0, 7), [1..2, 2..4, 4..7]);
        // PATH(6, D[0:7]) = {MTH(D[4:6]), MTH(D[0:4])}
        assert_eq!(inclusion_ranges(6, 7), [4..6, 0..4]);
        // RFC 9162 §2.1.5 examples, tree of 7 leaves.
        assert_eq!(consistency_ranges(3, 7), [2..3, 3..4, 0..2, 4..7]);
        assert_eq!(consistency_ranges(4, 7), [Range { start: 4, end: 7 }]);
        assert_eq!(consistency_ranges(6, 7), [4..6, 6..7, 0..4]);
        assert!(consistency_ranges(5, 5).is_empty());
    }

    #[test]
    fn proof_lengths_match_ranges() {
        for n in 1..=300 {
            for index in 0..n {
                assert_eq!(inclusion_proof_len(index, n), inclusion_ranges(index, n).len());
            }
            for m in 1..n {
                assert_eq!(consistency_proof_len(m, n), consistency_ranges(m, n).len());
            }
        }
        assert_eq!(inclusion_proof_len(0, u64::MAX), 64);
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), 63);
    }

    #[test]
    fn out_of_range_arguments() {
        let lookup = |_| Some([0; 32]);
        assert!(matches!(inclusion_proof(0, 0, lookup), Err(Error::IndexOutOfRange { index: 0, size: 0 })));
        assert!(matches!(inclusion_proof(5, 5, lookup), Err(Error::IndexOutOfRange { index: 5, size: 5 })));
        assert!(matches!(consistency_proof(0, 5, lookup), Err(Error::InvalidTreeSizes { old: 0, new: 5 })));
        assert!(matches!(consistency_proof(6, 5, lookup), Err(Error::InvalidTreeSizes { old: 6, new: 5 })));
        assert!(inclusion_proof_nodes(5, 5).is_empty());
        assert!(consistency_proof_nodes(0, 5).is_empty());
        assert!(consistency_proof_nodes(6, 5).is_empty());
        assert_eq!(consistency_proof(5, 5, lookup).unwrap(), Vec::<Hash>::new());
    }

    #[test]
    fn missing_node_is_named() {
        let lookup = |id: NodeId| (id != NodeId::new(1, 1)).then_some([0; 32]);
        assert!(matches!(inclusion_proof(0, 6, lookup), Err(Error::MissingNode(NodeId { level: 1, index: 1 }))));
        assert!(matches!(root_from_nodes(4, |_| None), Err(Error::MissingNode(NodeId { level: 2, index: 0 }))));
        assert_eq!(root_from_nodes(0, |_| None).unwrap(), crate::empty_root());
    }
}
