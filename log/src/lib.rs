//! The verifiable event log of a DePHY Nostr relay, modelled on Certificate
//! Transparency (RFC 9162, RFC 6962) and Trillian.
//!
//! The relay appends every event it stores, in arrival order, as one leaf of an
//! append-only Merkle tree, and periodically signs a [`Checkpoint`] (tree size
//! and root hash) as a Nostr event. Anyone holding a checkpoint can check that
//! an event is in the log ([`verify_inclusion`]) and that a later checkpoint
//! extends an earlier one ([`verify_consistency`]).
//!
//! This crate holds everything that needs no server, so that the relay, the
//! device SDK and the audit CLI share one implementation: hashing ([`hash`]),
//! tree geometry and the append [`Frontier`] ([`tree`]), proof assembly from
//! stored nodes and proof verification ([`proof`]), and the checkpoint format
//! ([`checkpoint`]). It performs no I/O.
//!
//! # Leaf encoding
//!
//! Leaf `i` of the log is the `i`-th event the relay stored (counting from 0).
//! Its leaf data is exactly 40 bytes:
//!
//! | bytes    | content                                                          |
//! |----------|------------------------------------------------------------------|
//! | `0..32`  | the NIP-01 event id, as its 32 raw bytes (not hex)               |
//! | `32..40` | the time the relay received the event, in milliseconds since the Unix epoch, as an unsigned 64-bit big-endian integer |
//!
//! The leaf hash is the RFC 9162 §2.1.1 leaf hash of these bytes,
//! `SHA-256(0x00 || event_id || received_ms_be)`, a SHA-256 over 41 bytes
//! ([`leaf_data`], [`event_leaf_hash`]). Interior nodes are
//! `SHA-256(0x01 || left || right)` and the root of the empty tree is
//! `SHA-256("")`.
//!
//! # Storage model
//!
//! The relay stores the hash of every *perfect* subtree, addressed by
//! [`NodeId`]: node `(level, index)` covers leaves
//! `[index << level, (index + 1) << level)`, and level 0 holds the leaf hashes.
//! [`Frontier::push`] returns exactly the nodes to store for each new leaf.
//! A proof then needs O(log n) stored nodes ([`inclusion_proof_nodes`],
//! [`consistency_proof_nodes`]), fetched in one query, from which
//! [`inclusion_proof`] and [`consistency_proof`] assemble RFC 9162 proofs
//! without rehashing leaves.

pub mod checkpoint;
pub mod error;
pub mod hash;
pub mod proof;
pub mod tree;

pub use checkpoint::{CHECKPOINT_KIND, Checkpoint};
pub use error::Error;
pub use hash::{Hash, empty_root, event_leaf_hash, leaf_data, leaf_hash, node_hash};
pub use proof::{
    consistency_proof, consistency_proof_nodes, inclusion_proof, inclusion_proof_nodes, root_from_nodes,
    verify_consistency, verify_inclusion,
};
pub use tree::{Frontier, NodeId, perfect_decomposition};
