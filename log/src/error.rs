//! The crate's error type.

use crate::checkpoint::CHECKPOINT_KIND;
use crate::tree::NodeId;

/// Why a proof could not be built or verified, or a checkpoint was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An inclusion proof was asked for, or checked against, a leaf the tree
    /// does not have (this includes every leaf of the empty tree).
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },

    /// A consistency proof needs `0 < old <= new` (RFC 9162 §2.1.4).
    #[error("consistency needs 0 < old size <= new size, got {old} and {new}")]
    InvalidTreeSizes { old: u64, new: u64 },

    /// The proof does not have the number of hashes its tree sizes and index
    /// call for.
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength { expected: usize, actual: usize },

    /// The proof does not lead to the expected root of the tree of `size` leaves.
    #[error("proof does not match the root of the tree of size {size}")]
    RootMismatch { size: u64 },

    /// A node needed to assemble a proof or root is not in storage.
    #[error("stored node {0} is missing")]
    MissingNode(NodeId),

    /// [`Frontier::from_nodes`](crate::Frontier::from_nodes) got the wrong
    /// number of hashes.
    #[error("the frontier of tree size {size} has {expected} nodes, got {actual}")]
    WrongNodeCount { size: u64, expected: usize, actual: usize },

    /// The checkpoint event's id or signature is invalid.
    #[error("checkpoint event is not authentic: {0}")]
    InvalidEvent(#[source] nostr::event::Error),

    /// The event is not a checkpoint.
    #[error("event kind {0} is not the checkpoint kind {CHECKPOINT_KIND}")]
    WrongKind(u16),

    /// The checkpoint event is not signed by the expected relay key.
    #[error("checkpoint event is not signed by the relay's key")]
    WrongAuthor,

    /// The checkpoint content is not a checkpoint in JSON.
    #[error("checkpoint content is malformed: {0}")]
    MalformedContent(#[source] serde_json::Error),

    /// The checkpoint content parses but is not its canonical JSON encoding.
    #[error("checkpoint content is not in canonical form")]
    NonCanonicalContent,

    /// The event's `created_at` differs from the checkpoint's timestamp.
    #[error("checkpoint event created_at {created_at} differs from its timestamp {timestamp}")]
    TimestampMismatch { created_at: u64, timestamp: u64 },

    /// The named tag is missing, repeated, or disagrees with the content.
    #[error("checkpoint tag {0:?} is missing, repeated or disagrees with the content")]
    TagMismatch(&'static str),
}
