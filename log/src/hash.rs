//! RFC 9162 §2.1.1 hashing with SHA-256, and the log's leaf encoding.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefix of leaf hashes.
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of interior node hashes.
const NODE_PREFIX: u8 = 0x01;

/// The root hash of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// The hash of a leaf holding `data`: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new().chain_update([LEAF_PREFIX]).chain_update(data).finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([NODE_PREFIX]).chain_update(left).chain_update(right).finalize().into()
}

/// The 40-byte leaf data of a stored event: the 32-byte event id followed by
/// the relay's receive time in milliseconds since the Unix epoch, as a
/// big-endian `u64`.
pub fn leaf_data(event_id: &[u8; 32], received_ms: u64) -> [u8; 40] {
    let mut data = [0; 40];
    data[..32].copy_from_slice(event_id);
    data[32..].copy_from_slice(&received_ms.to_be_bytes());
    data
}

/// The leaf hash of a stored event: `leaf_hash(leaf_data(event_id, received_ms))`.
pub fn event_leaf_hash(event_id: &[u8; 32], received_ms: u64) -> Hash {
    leaf_hash(&leaf_data(event_id, received_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_hex(s: &str) -> Hash {
        let mut hash = [0; 32];
        hex::decode_to_slice(s, &mut hash).unwrap();
        hash
    }

    // Vectors from transparency-dev/merkle rfc6962/rfc6962_test.go.
    #[test]
    fn rfc6962_vectors() {
        assert_eq!(empty_root(), from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        assert_eq!(leaf_hash(b""), from_hex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"));
        assert_eq!(leaf_hash(b"L123456"), from_hex("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"));
    }

    #[test]
    fn node_hash_is_prefixed_and_ordered() {
        let (a, b) = (leaf_hash(b"Hello"), leaf_hash(b"World"));
        let mut preimage = vec![NODE_PREFIX];
        preimage.extend_from_slice(&a);
        preimage.extend_from_slice(&b);
        let expected: Hash = Sha256::digest(&preimage).into();
        assert_eq!(node_hash(&a, &b), expected);
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
        assert_ne!(node_hash(&a, &b), leaf_hash(&preimage[1..]));
    }

    #[test]
    fn leaf_encoding() {
        let id = [0xab; 32];
        let data = leaf_data(&id, 0x0102_0304_0506_0708);
        assert_eq!(&data[..32], &id);
        assert_eq!(&data[32..], &[1, 2, 3, 4, 5, 6, 7, 8]);

        let mut preimage = vec![LEAF_PREFIX];
        preimage.extend_from_slice(&data);
        let expected: Hash = Sha256::digest(&preimage).into();
        assert_eq!(event_leaf_hash(&id, 0x0102_0304_0506_0708), expected);
    }
}
