//! Signed checkpoints: the relay's commitment to a tree size and root hash,
//! published as a Nostr event.
//!
//! A checkpoint is an event of kind [`CHECKPOINT_KIND`] (1574) signed with the
//! relay's key, with
//!
//! - `created_at`: the checkpoint's timestamp (Unix seconds);
//! - `content`: the canonical JSON
//!   `{"tree_size":N,"root_hash":"<64 lowercase hex>","timestamp":T}`, with
//!   `,"anchor":"<transaction signature>"` before the closing brace when the
//!   checkpoint is anchored; keys in this order, no whitespace;
//! - `tags`: exactly one `["tree_size","N"]` and one
//!   `["root","<64 lowercase hex>"]`, agreeing with the content.

use nostr::{Event, EventBuilder, Keys, Kind, PublicKey, Tag, TagKind, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::hash::Hash;
use crate::proof::verify_consistency;

/// The Nostr kind of checkpoint events.
///
/// A *regular* kind (NIP-01: `1000 <= kind < 10000`): relays store every
/// checkpoint rather than replacing older ones, so the history of checkpoints
/// stays auditable.
pub const CHECKPOINT_KIND: u16 = 1574;

const TREE_SIZE_TAG: &str = "tree_size";
const ROOT_TAG: &str = "root";

/// The relay's signed statement that its log had `tree_size` leaves with root
/// `root_hash` at `timestamp`.
///
/// Its JSON form is the event content described in the [module
/// docs](self); `anchor` is omitted when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The number of leaves in the tree.
    pub tree_size: u64,
    /// RFC 9162 `MTH` of the tree, hex-encoded in JSON.
    #[serde(with = "hex_hash")]
    pub root_hash: Hash,
    /// When the relay made the checkpoint, in Unix seconds.
    pub timestamp: u64,
    /// The signature of the Solana transaction anchoring this checkpoint, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
}

impl Checkpoint {
    /// The canonical JSON content of the checkpoint event.
    fn content(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint always serializes to JSON")
    }

    /// The tags of the checkpoint event, as (name, value) pairs.
    fn tag_values(&self) -> [(&'static str, String); 2] {
        [(TREE_SIZE_TAG, self.tree_size.to_string()), (ROOT_TAG, hex::encode(self.root_hash))]
    }

    /// The checkpoint as a Nostr event signed with `keys`, created at
    /// `timestamp`.
    pub fn to_event(&self, keys: &Keys) -> Event {
        let tags = self.tag_values().into_iter().map(|(name, value)| Tag::custom(TagKind::custom(name), [value]));
        EventBuilder::new(Kind::from(CHECKPOINT_KIND), self.content())
            .tags(tags)
            .custom_created_at(Timestamp::from(self.timestamp))
            .sign_with_keys(keys)
            .expect("signing with in-memory keys cannot fail")
    }

    /// Parses and authenticates a checkpoint event.
    ///
    /// Checks the kind, the author when `relay_pubkey` is given, the event id
    /// and signature, that the content is a checkpoint in canonical JSON, and
    /// that `created_at` and the tags agree with it.
    pub fn from_event(event: &Event, relay_pubkey: Option<&PublicKey>) -> Result<Self, Error> {
        if event.kind.as_u16() != CHECKPOINT_KIND {
            return Err(Error::WrongKind(event.kind.as_u16()));
        }
        if let Some(relay_pubkey) = relay_pubkey
            && event.pubkey != *relay_pubkey
        {
            return Err(Error::WrongAuthor);
        }
        event.verify().map_err(Error::InvalidEvent)?;

        let checkpoint: Self = serde_json::from_str(&event.content).map_err(Error::MalformedContent)?;
        if checkpoint.content() != event.content {
            return Err(Error::NonCanonicalContent);
        }
        if event.created_at.as_secs() != checkpoint.timestamp {
            return Err(Error::TimestampMismatch {
                created_at: event.created_at.as_secs(),
                timestamp: checkpoint.timestamp,
            });
        }
        for (name, value) in checkpoint.tag_values() {
            let mut named = event.tags.iter().filter(|tag| tag.as_slice().first().is_some_and(|first| first == name));
            match (named.next(), named.next()) {
                (Some(tag), None) if tag.as_slice() == [name, value.as_str()] => {}
                _ => return Err(Error::TagMismatch(name)),
            }
        }
        Ok(checkpoint)
    }

    /// Verifies that `newer` extends this checkpoint's tree, given the RFC 9162
    /// consistency proof from `self.tree_size` to `newer.tree_size`
    /// (see [`verify_consistency`]).
    pub fn verify_consistency_with(&self, newer: &Checkpoint, proof: &[Hash]) -> Result<(), Error> {
        verify_consistency(self.tree_size, newer.tree_size, proof, &self.root_hash, &newer.root_hash)
    }
}

/// Serde codec of a [`Hash`] as 64 hex digits (lowercase when written).
mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::hash::Hash;

    pub fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let digits = String::deserialize(deserializer)?;
        let mut hash = [0; 32];
        hex::decode_to_slice(&digits, &mut hash).map_err(D::Error::custom)?;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn checkpoint() -> Checkpoint {
        Checkpoint { tree_size: 42, root_hash: leaf_hash(b"root"), timestamp: 1_700_000_000, anchor: None }
    }

    /// Signs an event with arbitrary kind, content and tags.
    fn signed(keys: &Keys, kind: u16, content: &str, created_at: u64, tags: &[[&str; 2]]) -> Event {
        let tags = tags.iter().map(|tag| Tag::parse(*tag).unwrap());
        EventBuilder::new(Kind::from(kind), content)
            .tags(tags)
            .custom_created_at(Timestamp::from(created_at))
            .sign_with_keys(keys)
            .unwrap()
    }

    #[test]
    fn event_layout() {
        let keys = Keys::generate();
        let cp = checkpoint();
        let event = cp.to_event(&keys);
        let root_hex = hex::encode(cp.root_hash);
        assert_eq!(event.kind, Kind::from(1574));
        assert_eq!(event.pubkey, keys.public_key());
        assert_eq!(event.created_at.as_secs(), 1_700_000_000);
        assert_eq!(event.content, format!(r#"{{"tree_size":42,"root_hash":"{root_hex}","timestamp":1700000000}}"#));
        let tags: Vec<&[String]> = event.tags.iter().map(Tag::as_slice).collect();
        assert_eq!(tags, [&["tree_size", "42"][..], &["root", root_hex.as_str()][..]]);
        event.verify().unwrap();
    }

    #[test]
    fn round_trip() {
        let keys = Keys::generate();
        let plain = checkpoint();
        let anchored = Checkpoint { anchor: Some("placeholder-transaction-signature".into()), ..checkpoint() };
        for cp in [plain, anchored] {
            let event = cp.to_event(&keys);
            assert_eq!(event.content.contains("\"anchor\""), cp.anchor.is_some());
            assert_eq!(Checkpoint::from_event(&event, Some(&keys.public_key())).unwrap(), cp);
            assert_eq!(Checkpoint::from_event(&event, None).unwrap(), cp);
        }
    }

    #[test]
    fn rejects_tampered_content() {
        let keys = Keys::generate();
        let mut event = checkpoint().to_event(&keys);
        event.content = event.content.replace("42", "43");
        assert!(matches!(
            Checkpoint::from_event(&event, None),
            Err(Error::InvalidEvent(nostr::event::Error::InvalidId))
        ));
    }

    #[test]
    fn rejects_wrong_author() {
        let event = checkpoint().to_event(&Keys::generate());
        let other = Keys::generate().public_key();
        assert!(matches!(Checkpoint::from_event(&event, Some(&other)), Err(Error::WrongAuthor)));
    }

    #[test]
    fn rejects_wrong_kind() {
        let keys = Keys::generate();
        let cp = checkpoint();
        let root_hex = hex::encode(cp.root_hash);
        let tags = [["tree_size", "42"], ["root", root_hex.as_str()]];
        let event = signed(&keys, 1, &cp.content(), cp.timestamp, &tags);
        assert!(matches!(Checkpoint::from_event(&event, None), Err(Error::WrongKind(1))));
        // The same event with the right kind is accepted.
        let event = signed(&keys, CHECKPOINT_KIND, &cp.content(), cp.timestamp, &tags);
        assert_eq!(Checkpoint::from_event(&event, None).unwrap(), cp);
    }

    #[test]
    fn rejects_signed_but_inconsistent_events() {
        let keys = Keys::generate();
        let cp = checkpoint();
        let content = cp.content();
        let root_hex = hex::encode(cp.root_hash);
        let root = root_hex.as_str();
        let parse = |content: &str, created_at: u64, tags: &[[&str; 2]]| {
            let event = signed(&keys, CHECKPOINT_KIND, content, created_at, tags);
            Checkpoint::from_event(&event, Some(&keys.public_key()))
        };
        let good_tags = [["tree_size", "42"], ["root", root]];

        assert!(matches!(parse("not json", cp.timestamp, &good_tags), Err(Error::MalformedContent(_))));
        let spaced = content.replace(',', ", ");
        assert!(matches!(parse(&spaced, cp.timestamp, &good_tags), Err(Error::NonCanonicalContent)));
        let upper = content.replace(root, &root.to_uppercase());
        assert!(matches!(parse(&upper, cp.timestamp, &good_tags), Err(Error::NonCanonicalContent)));
        let null_anchor = content.replace('}', r#","anchor":null}"#);
        assert!(matches!(parse(&null_anchor, cp.timestamp, &good_tags), Err(Error::NonCanonicalContent)));
        assert!(matches!(parse(&content, cp.timestamp + 1, &good_tags), Err(Error::TimestampMismatch { .. })));
        assert!(matches!(
            parse(&content, cp.timestamp, &[["tree_size", "41"], ["root", root]]),
            Err(Error::TagMismatch("tree_size"))
        ));
        assert!(matches!(parse(&content, cp.timestamp, &[["tree_size", "42"]]), Err(Error::TagMismatch("root"))));
        let other_root = hex::encode([0; 32]);
        let duplicated = [["tree_size", "42"], ["root", root], ["root", other_root.as_str()]];
        assert!(matches!(parse(&content, cp.timestamp, &duplicated), Err(Error::TagMismatch("root"))));
    }

    #[test]
    fn consistency_with_newer_checkpoint() {
        let leaves: Vec<Hash> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
        let mut frontier = crate::Frontier::new();
        let mut store = std::collections::HashMap::new();
        let mut checkpoints = Vec::new();
        for leaf in leaves {
            store.extend(frontier.push(leaf));
            checkpoints.push(Checkpoint {
                tree_size: frontier.size(),
                root_hash: frontier.root(),
                timestamp: 1_700_000_000 + frontier.size(),
                anchor: None,
            });
        }
        let (older, newer) = (&checkpoints[2], &checkpoints[4]);
        let proof = crate::consistency_proof(3, 5, |id| store.get(&id).copied()).unwrap();
        older.verify_consistency_with(newer, &proof).unwrap();
        assert!(matches!(
            checkpoints[1].verify_consistency_with(newer, &proof),
            Err(Error::WrongProofLength { .. } | Error::RootMismatch { .. })
        ));
        assert!(matches!(
            newer.verify_consistency_with(older, &proof),
            Err(Error::InvalidTreeSizes { old: 5, new: 3 })
        ));
    }
}
