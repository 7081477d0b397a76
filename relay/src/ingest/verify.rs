//! The verify stage: the event id is the hash of its content, and the Schnorr signature is
//! the author's.

use nostr::Event;

/// Checks id then signature; the error is an `invalid:` OK message.
pub fn verify(event: &Event) -> Result<(), String> {
    if !event.verify_id() {
        return Err("invalid: event id does not match the event's content".into());
    }
    if !event.verify_signature() {
        return Err("invalid: bad signature".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, JsonUtil, Keys};

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
}
