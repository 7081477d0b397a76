//! The verify stage: the event id is the hash of its content, and the Schnorr signature is
//! the author's.
//!
//! The id is recomputed by streaming the NIP-01 serialization `[0,pubkey,created_at,kind,tags,
//! content]` straight into a buffer (nostr's `verify_id` builds a `serde_json::Value` tree of
//! the tags first); the bytes hashed are the same. Authors' keys are kept decoded
//! ([`AuthorKeys`]): decoding an x-only key takes a field square root, and devices publish
//! again and again. Each connection task verifies its own events, so verification already
//! runs on every core the runtime has.

use std::collections::HashMap;
use std::sync::Mutex;

use nostr::hashes::{Hash, sha256};
use nostr::secp256k1::{Message, XOnlyPublicKey};
use nostr::{Event, SECP256K1};

/// Decoded keys kept; past this the cache starts over (a bound, not an eviction policy).
const MAX_KEYS: usize = 16_384;

/// Recently seen authors' decoded public keys.
#[derive(Default)]
pub struct AuthorKeys(Mutex<HashMap<[u8; 32], XOnlyPublicKey>>);

impl AuthorKeys {
    /// The decoded key, or `None` if the bytes are not a point on the curve.
    fn get(&self, pubkey: &[u8; 32]) -> Option<XOnlyPublicKey> {
        if let Some(key) = self.0.lock().expect("author keys lock").get(pubkey) {
            return Some(*key);
        }
        let key = XOnlyPublicKey::from_slice(pubkey).ok()?;
        let mut keys = self.0.lock().expect("author keys lock");
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(*pubkey, key);
        Some(key)
    }
}

/// Checks id then signature; the error is an `invalid:` OK message.
pub fn verify(event: &Event, keys: &AuthorKeys) -> Result<(), String> {
    let id = computed_id(event);
    if id != event.id.to_bytes() {
        return Err("invalid: event id does not match the event's content".into());
    }
    let valid = keys
        .get(event.pubkey.as_bytes())
        .is_some_and(|key| SECP256K1.verify_schnorr(&event.sig, &Message::from_digest(id), &key).is_ok());
    if !valid {
        return Err("invalid: bad signature".into());
    }
    Ok(())
}

/// The NIP-01 id of an event's content: sha256 of its canonical serialization.
fn computed_id(event: &Event) -> [u8; 32] {
    let mut canonical = Vec::with_capacity(192 + event.content.len() + 96 * event.tags.len());
    let fields = (0u8, &event.pubkey, &event.created_at, &event.kind, &event.tags, &event.content);
    serde_json::to_writer(&mut canonical, &fields).expect("event fields serialize to JSON");
    sha256::Hash::hash(&canonical).to_byte_array()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, EventId, JsonUtil, Keys, Tag};

    #[test]
    fn detects_tampered_content_and_signature() {
        let keys = Keys::generate();
        let ev = EventBuilder::text_note("hello").sign_with_keys(&keys).unwrap();
        let cache = AuthorKeys::default();
        assert!(verify(&ev, &cache).is_ok());
        assert!(verify(&ev, &cache).is_ok(), "with the key cached");
        let tampered = ev.as_json().replace("hello", "hellx");
        let ev2 = Event::from_json(tampered).unwrap();
        assert!(verify(&ev2, &cache).unwrap_err().contains("id does not match"));
        let other = EventBuilder::text_note("other").sign_with_keys(&keys).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&ev.as_json()).unwrap();
        v["sig"] = serde_json::Value::String(other.sig.to_string());
        let ev3 = Event::from_json(v.to_string()).unwrap();
        assert_eq!(verify(&ev3, &cache).unwrap_err(), "invalid: bad signature");
        // A pubkey that is not a field element (x >= p), so no curve point: a bad signature.
        let mut v: serde_json::Value = serde_json::from_str(&ev.as_json()).unwrap();
        v["pubkey"] = serde_json::Value::String("ff".repeat(32));
        let mut ev4 = Event::from_json(v.to_string()).unwrap();
        ev4.id = EventId::new(&ev4.pubkey, &ev4.created_at, &ev4.kind, &ev4.tags, &ev4.content);
        assert_eq!(verify(&ev4, &cache).unwrap_err(), "invalid: bad signature");
    }

    #[test]
    fn id_matches_nostr_for_escapes_unicode_and_tags() {
        let keys = Keys::generate();
        let content = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 𝄞 \u{2028} </script>";
        let tags = [
            Tag::parse(["s", "session \"1\""]).unwrap(),
            Tag::parse(["p", &keys.public_key().to_hex(), "wss://r", "\u{1f}"]).unwrap(),
            Tag::parse(["empty"]).unwrap(),
        ];
        let ev = EventBuilder::text_note(content).tags(tags).sign_with_keys(&keys).unwrap();
        let nostr_id = EventId::new(&ev.pubkey, &ev.created_at, &ev.kind, &ev.tags, &ev.content);
        assert_eq!(computed_id(&ev), nostr_id.to_bytes());
        assert!(verify(&ev, &AuthorKeys::default()).is_ok());
    }
}
