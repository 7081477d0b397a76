//! Exhaustive checks, for every tree of up to 70 leaves, against a naive
//! transcription of RFC 9162's `MTH`, `PATH` and `PROOF` over a list of leaves:
//! the frontier, the node store it fills, the proofs assembled from that store,
//! verification, and rejection of tampered proofs.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use dephy_log::{
    Error, Frontier, Hash, NodeId, consistency_proof, consistency_proof_nodes, empty_root, event_leaf_hash,
    inclusion_proof, inclusion_proof_nodes, node_hash, root_from_nodes, verify_consistency, verify_inclusion,
};

const MAX_SIZE: usize = 70;

/// The largest power of two strictly less than `n >= 2`.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 9162 §2.1.1 `MTH(D[n])`.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 9162 §2.1.3.1 `PATH(m, D[n])`.
fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n == 1 {
        return Vec::new();
    }
    let k = split(n);
    let (mut proof, sibling) =
        if m < k { (path(m, &leaves[..k]), mth(&leaves[k..])) } else { (path(m - k, &leaves[k..]), mth(&leaves[..k])) };
    proof.push(sibling);
    proof
}

/// RFC 9162 §2.1.4.1 `SUBPROOF(m, D[n], b)`.
fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = split(n);
    let (mut proof, sibling) = if m <= k {
        (subproof(m, &leaves[..k], b), mth(&leaves[k..]))
    } else {
        (subproof(m - k, &leaves[k..], false), mth(&leaves[..k]))
    };
    proof.push(sibling);
    proof
}

/// A log of `MAX_SIZE` leaves appended through a [`Frontier`], with the store
/// of every node it returned and its state after each append.
struct Log {
    leaves: Vec<Hash>,
    store: HashMap<NodeId, Hash>,
    /// `frontiers[s]` is the frontier of the first `s` leaves.
    frontiers: Vec<Frontier>,
}

impl Log {
    fn new() -> Self {
        let leaves: Vec<Hash> =
            (0..MAX_SIZE as u64).map(|i| event_leaf_hash(&[i as u8; 32], 1_700_000_000_000 + i)).collect();
        let mut frontier = Frontier::new();
        let mut frontiers = vec![frontier.clone()];
        let mut store = HashMap::new();
        for leaf in &leaves {
            for (id, hash) in frontier.push(*leaf) {
                assert!(store.insert(id, hash).is_none(), "node {id} stored twice");
            }
            frontiers.push(frontier.clone());
        }
        Self { leaves, store, frontiers }
    }

    /// A lookup into the store as it was when the tree had `size` leaves,
    /// recording every node asked for.
    fn lookup<'a>(&'a self, size: u64, asked: &'a RefCell<Vec<NodeId>>) -> impl Fn(NodeId) -> Option<Hash> + 'a {
        move |id| {
            asked.borrow_mut().push(id);
            if id.leaves().end <= size { self.store.get(&id).copied() } else { None }
        }
    }

    fn root(&self, size: u64) -> Hash {
        self.frontiers[size as usize].root()
    }
}

/// Asserts that `nodes` has no repetition and is the set of nodes `asked` for.
fn assert_same_nodes(nodes: &[NodeId], asked: &RefCell<Vec<NodeId>>) {
    let set: BTreeSet<NodeId> = nodes.iter().copied().collect();
    assert_eq!(set.len(), nodes.len(), "repeated node in {nodes:?}");
    let asked: BTreeSet<NodeId> = asked.take().into_iter().collect();
    assert_eq!(set, asked);
}

#[test]
fn stored_nodes_are_subtree_hashes() {
    let log = Log::new();
    // 2n - 1 perfect subtrees can be complete at most; a tree of 70 leaves has
    // 70 + 35 + 17 + 8 + 4 + 2 + 1 of them.
    assert_eq!(log.store.len(), 137);
    for (id, hash) in &log.store {
        let leaves = id.leaves();
        assert_eq!(*hash, mth(&log.leaves[leaves.start as usize..leaves.end as usize]), "node {id}");
    }
}

#[test]
fn roots_match_reference() {
    let log = Log::new();
    for size in 0..=MAX_SIZE as u64 {
        let expected = mth(&log.leaves[..size as usize]);
        assert_eq!(log.frontiers[size as usize].size(), size);
        assert_eq!(log.root(size), expected, "size {size}");

        let asked = RefCell::new(Vec::new());
        let root = root_from_nodes(size, log.lookup(size, &asked)).unwrap();
        assert_eq!(root, expected, "size {size}");
        assert_same_nodes(&Frontier::nodes_needed(size), &asked);
    }
}

#[test]
fn frontier_resumes_from_stored_nodes() {
    let log = Log::new();
    for size in 0..=MAX_SIZE {
        let hashes = Frontier::nodes_needed(size as u64).into_iter().map(|id| log.store[&id]).collect();
        let mut resumed = Frontier::from_nodes(size as u64, hashes).unwrap();
        assert_eq!(resumed, log.frontiers[size]);
        for (offset, leaf) in log.leaves[size..].iter().enumerate() {
            for (id, hash) in resumed.push(*leaf) {
                assert_eq!(log.store[&id], hash, "node {id}");
            }
            assert_eq!(resumed, log.frontiers[size + offset + 1]);
        }
    }
}

#[test]
fn inclusion_proofs_match_reference() {
    let log = Log::new();
    for size in 1..=MAX_SIZE as u64 {
        let root = log.root(size);
        for index in 0..size {
            let asked = RefCell::new(Vec::new());
            let proof = inclusion_proof(index, size, log.lookup(size, &asked)).unwrap();
            assert_eq!(proof, path(index as usize, &log.leaves[..size as usize]), "index {index}, size {size}");
            assert_same_nodes(&inclusion_proof_nodes(index, size), &asked);
            verify_inclusion(&log.leaves[index as usize], index, size, &proof, &root).unwrap();
        }
    }
}

#[test]
fn consistency_proofs_match_reference() {
    let log = Log::new();
    for n in 1..=MAX_SIZE as u64 {
        for m in 1..=n {
            let asked = RefCell::new(Vec::new());
            let proof = consistency_proof(m, n, log.lookup(n, &asked)).unwrap();
            assert_eq!(proof, subproof(m as usize, &log.leaves[..n as usize], true), "m {m}, n {n}");
            assert_same_nodes(&consistency_proof_nodes(m, n), &asked);
            verify_consistency(m, n, &proof, &log.root(m), &log.root(n)).unwrap();
        }
    }
}

/// `proof` with the first byte of element `i` flipped.
fn flipped(proof: &[Hash], i: usize) -> Vec<Hash> {
    let mut proof = proof.to_vec();
    proof[i][0] ^= 0x10;
    proof
}

#[test]
fn tampered_inclusion_proofs_are_rejected() {
    let log = Log::new();
    for size in 1..=MAX_SIZE as u64 {
        let root = log.root(size);
        for index in 0..size {
            let leaf = log.leaves[index as usize];
            let proof = inclusion_proof(index, size, log.lookup(size, &RefCell::default())).unwrap();
            let len = proof.len();
            let check = |leaf: &Hash, index, size, proof: &[Hash], root: &Hash| {
                verify_inclusion(leaf, index, size, proof, root)
            };

            for i in 0..len {
                assert!(matches!(
                    check(&leaf, index, size, &flipped(&proof, i), &root),
                    Err(Error::RootMismatch { size: s }) if s == size
                ));
            }
            if len > 0 {
                assert!(matches!(
                    check(&leaf, index, size, &proof[..len - 1], &root),
                    Err(Error::WrongProofLength { expected, actual }) if expected == len && actual == len - 1
                ));
            }
            let mut longer = proof.clone();
            longer.push(root);
            assert!(matches!(
                check(&leaf, index, size, &longer, &root),
                Err(Error::WrongProofLength { expected, actual }) if expected == len && actual == len + 1
            ));
            let mut preceded = vec![root];
            preceded.extend_from_slice(&proof);
            assert!(check(&leaf, index, size, &preceded, &root).is_err());

            let mut wrong_leaf = leaf;
            wrong_leaf[31] ^= 1;
            assert!(matches!(check(&wrong_leaf, index, size, &proof, &root), Err(Error::RootMismatch { .. })));
            for other in [log.root(size - 1), empty_root(), [0xab; 32]] {
                assert!(matches!(check(&leaf, index, size, &proof, &other), Err(Error::RootMismatch { .. })));
            }

            let mut wrong_indices = vec![index + 1, index ^ 2];
            if index > 0 {
                wrong_indices.push(index - 1);
            }
            for wrong in wrong_indices {
                assert!(
                    check(&leaf, wrong, size, &proof, &root).is_err(),
                    "index {index} accepted as {wrong}, size {size}"
                );
            }
            for wrong in [size * 2, size / 2] {
                assert!(
                    check(&leaf, index, wrong, &proof, &root).is_err(),
                    "size {size} accepted as {wrong}, index {index}"
                );
            }
        }
    }
    assert!(matches!(
        verify_inclusion(&[0; 32], 0, 0, &[], &empty_root()),
        Err(Error::IndexOutOfRange { index: 0, size: 0 })
    ));
}

#[test]
fn tampered_consistency_proofs_are_rejected() {
    let log = Log::new();
    for n in 2..=MAX_SIZE as u64 {
        let root_n = log.root(n);
        for m in 1..n {
            let root_m = log.root(m);
            let proof = consistency_proof(m, n, log.lookup(n, &RefCell::default())).unwrap();
            let len = proof.len();
            let check =
                |m, n, proof: &[Hash], root_m: &Hash, root_n: &Hash| verify_consistency(m, n, proof, root_m, root_n);

            for i in 0..len {
                assert!(matches!(check(m, n, &flipped(&proof, i), &root_m, &root_n), Err(Error::RootMismatch { .. })));
            }
            for shorter in [&proof[..len - 1], &[]] {
                assert!(matches!(
                    check(m, n, shorter, &root_m, &root_n),
                    Err(Error::WrongProofLength { expected, actual }) if expected == len && actual == shorter.len()
                ));
            }
            for extra in [root_m, root_n, proof[0]] {
                let mut longer = proof.clone();
                longer.push(extra);
                assert!(matches!(check(m, n, &longer, &root_m, &root_n), Err(Error::WrongProofLength { .. })));
                let mut preceded = vec![extra];
                preceded.extend_from_slice(&proof);
                assert!(check(m, n, &preceded, &root_m, &root_n).is_err());
            }

            // A power-of-two old root seeds the computation, so a wrong one
            // surfaces in the new root.
            let other = [0xab; 32];
            let expected_size = if m.is_power_of_two() { n } else { m };
            assert!(matches!(
                check(m, n, &proof, &other, &root_n),
                Err(Error::RootMismatch { size }) if size == expected_size
            ));
            assert!(matches!(
                check(m, n, &proof, &root_m, &other),
                Err(Error::RootMismatch { size }) if size == n
            ));
            assert!(check(m, n, &proof, &root_n, &root_m).is_err());

            for wrong in [m - 1, m + 1, m ^ 2] {
                assert!(check(wrong, n, &proof, &root_m, &root_n).is_err(), "m {m} accepted as {wrong}, n {n}");
            }
            for wrong in [n * 2, n / 2] {
                assert!(check(m, wrong, &proof, &root_m, &root_n).is_err(), "n {n} accepted as {wrong}, m {m}");
            }
        }
    }
}

#[test]
fn consistency_edge_cases() {
    let log = Log::new();
    let (root_4, root_5) = (log.root(4), log.root(5));
    // m == n: empty proof, equal roots.
    verify_consistency(5, 5, &[], &root_5, &root_5).unwrap();
    assert!(matches!(verify_consistency(5, 5, &[], &root_4, &root_5), Err(Error::RootMismatch { size: 5 })));
    assert!(matches!(
        verify_consistency(5, 5, &[root_5], &root_5, &root_5),
        Err(Error::WrongProofLength { expected: 0, actual: 1 })
    ));
    // m == 0 and m > n are outside RFC 9162's domain.
    assert!(matches!(
        verify_consistency(0, 5, &[], &empty_root(), &root_5),
        Err(Error::InvalidTreeSizes { old: 0, new: 5 })
    ));
    assert!(matches!(verify_consistency(5, 4, &[], &root_5, &root_4), Err(Error::InvalidTreeSizes { old: 5, new: 4 })));
    // A power-of-two old size: its root is implied, not sent.
    let proof = consistency_proof(4, 5, log.lookup(5, &RefCell::default())).unwrap();
    assert_eq!(proof, [log.leaves[4]]);
    verify_consistency(4, 5, &proof, &root_4, &root_5).unwrap();
}
