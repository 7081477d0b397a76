//! The verify stage: the event id is the hash of its content, and the Schnorr signature is
//! the author's.
//!
//! The id is recomputed by streaming the NIP-01 serialization `[0,pubkey,created_at,kind,tags,
//! content]` straight into a buffer (nostr's `verify_id` builds a `serde_json::Value` tree of
//! the tags first); the bytes hashed are the same. Each connection task verifies its own
//! events, so verification already runs on every core the runtime has.

use nostr::Event;
use nostr::hashes::{Hash, sha256};

/// Checks id then signature; the error is an `invalid:` OK message.
pub fn verify(event: &Event) -> Result<(), String> {
    if computed_id(event) != event.id.to_bytes() {
        return Err("invalid: event id does not match the event's content".into());
    }
    if !event.verify_signature() {
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
        assert!(verify(&ev).is_ok());
        let tampered = ev.as_json().replace("hello", "hellx");
        let ev2 = Event::from_json(tampered).unwrap();
        assert!(verify(&ev2).unwrap_err().contains("id does not match"));
        let other = EventBuilder::text_note("other").sign_with_keys(&keys).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&ev.as_json()).unwrap();
        v["sig"] = serde_json::Value::String(other.sig.to_string());
        let ev3 = Event::from_json(v.to_string()).unwrap();
        assert_eq!(verify(&ev3).unwrap_err(), "invalid: bad signature");
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
        assert!(verify(&ev).is_ok());
    }
}
