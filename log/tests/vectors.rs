//! RFC 6962 test vectors from transparency-dev/merkle (proof/verify_test.go,
//! formerly certificate-transparency-go): eight leaves, the roots of their
//! prefixes, and known inclusion and consistency proofs.

use std::collections::HashMap;

use dephy_log::{Frontier, Hash, consistency_proof, inclusion_proof, leaf_hash, verify_consistency, verify_inclusion};

const LEAVES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// `ROOTS[s - 1]` is the root of the first `s` leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, proof); the source lists 1-based leaf numbers.
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn hash(digits: &str) -> Hash {
    let mut hash = [0; 32];
    hex::decode_to_slice(digits, &mut hash).unwrap();
    hash
}

fn hashes(digits: &[&str]) -> Vec<Hash> {
    digits.iter().map(|d| hash(d)).collect()
}

fn root(size: u64) -> Hash {
    hash(ROOTS[size as usize - 1])
}

/// The node store of the eight leaves, filled by [`Frontier::push`], and
/// the frontier's root after each leaf.
fn build() -> (HashMap<dephy_log::NodeId, Hash>, Vec<Hash>) {
    let mut frontier = Frontier::new();
    let mut store = HashMap::new();
    let mut roots = Vec::new();
    for leaf in LEAVES {
        store.extend(frontier.push(leaf_hash(leaf)));
        roots.push(frontier.root());
    }
    (store, roots)
}

#[test]
fn roots() {
    let (_, roots) = build();
    assert_eq!(roots, hashes(&ROOTS));
}

#[test]
fn inclusion() {
    let (store, _) = build();
    for (index, size, expected) in INCLUSION {
        let expected = hashes(expected);
        let proof = inclusion_proof(index, size, |id| store.get(&id).copied()).unwrap();
        assert_eq!(proof, expected, "index {index}, size {size}");
        let leaf = leaf_hash(LEAVES[index as usize]);
        verify_inclusion(&leaf, index, size, &expected, &root(size)).unwrap();
    }
}

#[test]
fn consistency() {
    let (store, _) = build();
    for (m, n, expected) in CONSISTENCY {
        let expected = hashes(expected);
        let proof = consistency_proof(m, n, |id| store.get(&id).copied()).unwrap();
        assert_eq!(proof, expected, "m {m}, n {n}");
        verify_consistency(m, n, &expected, &root(m), &root(n)).unwrap();
    }
}
