//! The stored nodes a proof needs grow as O(log n): at most
//! `2 * ceil(log2 n) + 2`, checked up to 2^20 leaves without building trees.

use std::collections::BTreeSet;

use dephy_log::{NodeId, consistency_proof_nodes, inclusion_proof_nodes};

fn bound(n: u64) -> usize {
    2 * n.next_power_of_two().trailing_zeros() as usize + 2
}

fn assert_small(nodes: &[NodeId], n: u64, what: &str) {
    assert!(nodes.len() <= bound(n), "{what}: {} nodes, more than {}", nodes.len(), bound(n));
    let distinct: BTreeSet<&NodeId> = nodes.iter().collect();
    assert_eq!(distinct.len(), nodes.len(), "{what}: repeated node");
    assert!(nodes.iter().all(|node| node.leaves().end <= n), "{what}: node beyond the tree");
}

/// Tree sizes up to 2^20 around and between powers of two, and leaf counts
/// (indices or old sizes) at interesting places in each.
fn samples() -> impl Iterator<Item = (u64, Vec<u64>)> {
    let sizes = (1..=20u32).flat_map(|k| {
        let p = 1u64 << k;
        [p - 1, p, p + 1, p / 3 * 2, p - p / 3]
    });
    sizes.filter(|n| (1..=1 << 20).contains(n)).map(|n| {
        let mut points = vec![0, 1, n / 3, n / 2, n.saturating_sub(2), n - 1];
        points.extend((0..20).flat_map(|j| [(1u64 << j) - 1, 1 << j, (1 << j) + 1]));
        points.retain(|&p| p < n);
        (n, points)
    })
}

#[test]
fn inclusion_nodes_are_logarithmic() {
    for n in 1..=512 {
        for index in 0..n {
            assert_small(&inclusion_proof_nodes(index, n), n, &format!("PATH({index}, {n})"));
        }
    }
    for (n, indices) in samples() {
        for index in indices {
            assert_small(&inclusion_proof_nodes(index, n), n, &format!("PATH({index}, {n})"));
        }
    }
    // The worst case: the first leaf of a tree whose right half is imperfect
    // at every level.
    assert_eq!(inclusion_proof_nodes(0, (1 << 20) - 1).len(), 38);
}

#[test]
fn consistency_nodes_are_logarithmic() {
    for n in 1..=512 {
        for m in 1..=n {
            assert_small(&consistency_proof_nodes(m, n), n, &format!("PROOF({m}, {n})"));
        }
    }
    for (n, old_sizes) in samples() {
        for m in old_sizes.into_iter().filter(|&m| m > 0) {
            assert_small(&consistency_proof_nodes(m, n), n, &format!("PROOF({m}, {n})"));
        }
    }
}
