//! The policy stage: what this relay accepts, beyond a valid signature. Each refusal is an OK
//! message with a NIP-01 prefix.

use std::collections::HashSet;

use nostr::{Event, Kind, PublicKey};

use crate::config::{AuthConfig, LimitsConfig};

pub fn check_size(raw_len: usize, l: &LimitsConfig) -> Result<(), String> {
    if raw_len > l.max_event_bytes {
        return Err(format!("invalid: event is {raw_len} bytes, the limit is {}", l.max_event_bytes));
    }
    Ok(())
}

/// Limits on tags, content and time; NIP-40 expiry; reserved kinds.
pub fn check_event(event: &Event, now: i64, l: &LimitsConfig) -> Result<(), String> {
    if event.tags.len() > l.max_event_tags {
        return Err(format!("invalid: {} tags, the limit is {}", event.tags.len(), l.max_event_tags));
    }
    if event.content.len() > l.max_content_bytes {
        return Err(format!("invalid: content is {} bytes, the limit is {}", event.content.len(), l.max_content_bytes));
    }
    let created_at = crate::store::ts(event.created_at);
    if created_at > now.saturating_add(l.created_at_future_secs as i64) {
        return Err(format!("invalid: created_at is more than {} seconds in the future", l.created_at_future_secs));
    }
    if l.created_at_past_secs > 0 && created_at < now - l.created_at_past_secs as i64 {
        return Err(format!("invalid: created_at is more than {} seconds in the past", l.created_at_past_secs));
    }
    if let Some(exp) = event.tags.expiration()
        && crate::store::ts(*exp) <= now
    {
        return Err("invalid: event has expired".into());
    }
    if event.kind == Kind::Authentication {
        return Err("invalid: kind 22242 is only for AUTH messages".into());
    }
    Ok(())
}

/// The NIP-62 `relay` tag value that names every relay.
pub const ALL_RELAYS: &str = "ALL_RELAYS";

/// NIP-62: a request to vanish applies here only if a `relay` tag names `ALL_RELAYS` or this
/// relay's configured `relay_url` (compared by scheme, host and port, see
/// [`crate::auth::same_relay`]); without a `relay_url`, only `ALL_RELAYS`. The Host header a
/// client connected with does not count, and neither does anything about a federation peer:
/// a request mirrored from a peer names the relay it was addressed to, which is seldom this one.
pub fn check_vanish(event: &Event, relay_url: Option<&str>) -> Result<(), String> {
    if event.kind != Kind::from(62u16) {
        return Ok(());
    }
    let names_us = event.tags.iter().any(|t| match t.as_slice() {
        [n, v, ..] if n == "relay" => v == ALL_RELAYS || relay_url.is_some_and(|url| crate::auth::same_relay(v, url)),
        _ => false,
    });
    match (names_us, relay_url) {
        (true, _) => Ok(()),
        (false, Some(url)) => Err(format!(
            "invalid: this request to vanish does not name this relay; to apply it here, tag it \
             [\"relay\", \"{url}\"] or [\"relay\", \"{ALL_RELAYS}\"]"
        )),
        (false, None) => Err(format!(
            "invalid: this request to vanish does not name this relay; this relay has no relay_url \
             configured, so only [\"relay\", \"{ALL_RELAYS}\"] applies here"
        )),
    }
}

/// NIP-42 write requirement and NIP-70 protected events.
pub fn check_auth(event: &Event, authed: &HashSet<PublicKey>, a: &AuthConfig) -> Result<(), String> {
    if a.required_for_write && authed.is_empty() {
        return Err("auth-required: this relay only accepts events from authenticated clients".into());
    }
    if event.is_protected() {
        if authed.is_empty() {
            return Err("auth-required: this event may only be published by its author".into());
        }
        if !authed.contains(&event.pubkey) {
            return Err("restricted: this protected event may only be published by its author".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys, Tag, Timestamp};

    #[test]
    fn refuses_future_and_expired_events() {
        let keys = Keys::generate();
        let l = LimitsConfig::default();
        let now = Timestamp::now().as_secs() as i64;
        let future = EventBuilder::text_note("x")
            .custom_created_at(Timestamp::from((now + 3600) as u64))
            .sign_with_keys(&keys)
            .unwrap();
        assert!(check_event(&future, now, &l).unwrap_err().contains("future"));
        let expired = EventBuilder::text_note("x")
            .tags([Tag::expiration(Timestamp::from((now - 1) as u64))])
            .sign_with_keys(&keys)
            .unwrap();
        assert_eq!(check_event(&expired, now, &l).unwrap_err(), "invalid: event has expired");
    }

    #[test]
    fn protected_events_need_their_author() {
        let author = Keys::generate();
        let other = Keys::generate();
        let ev = EventBuilder::text_note("x").tags([Tag::protected()]).sign_with_keys(&author).unwrap();
        let a = AuthConfig::default();
        assert!(check_auth(&ev, &HashSet::new(), &a).unwrap_err().starts_with("auth-required:"));
        let others = HashSet::from([other.public_key()]);
        assert!(check_auth(&ev, &others, &a).unwrap_err().starts_with("restricted:"));
        assert!(check_auth(&ev, &HashSet::from([author.public_key()]), &a).is_ok());
    }

    #[test]
    fn vanish_requests_apply_only_to_this_relay_or_all_relays() {
        let keys = Keys::generate();
        let vanish = |relay: &str| {
            EventBuilder::new(Kind::from(62u16), "")
                .tags([Tag::parse(["relay", relay]).unwrap()])
                .sign_with_keys(&keys)
                .unwrap()
        };
        let here = Some("wss://a.example.com");
        assert!(check_vanish(&vanish("wss://A.example.com/"), here).is_ok());
        assert!(check_vanish(&vanish(ALL_RELAYS), here).is_ok());
        assert!(check_vanish(&vanish(ALL_RELAYS), None).is_ok());
        let err = check_vanish(&vanish("wss://b.example.com"), here).unwrap_err();
        assert!(
            err.starts_with("invalid:") && err.contains("wss://a.example.com") && err.contains(ALL_RELAYS),
            "{err}"
        );
        // Without a relay_url, a URL (even of the host the client connected to) does not name us.
        let err = check_vanish(&vanish("ws://127.0.0.1:8000"), None).unwrap_err();
        assert!(err.starts_with("invalid:") && err.contains("relay_url") && err.contains(ALL_RELAYS), "{err}");
        let untagged = EventBuilder::new(Kind::from(62u16), "").sign_with_keys(&keys).unwrap();
        assert!(check_vanish(&untagged, None).is_err());
        let note = EventBuilder::text_note("x").sign_with_keys(&keys).unwrap();
        assert!(check_vanish(&note, None).is_ok());
    }
}
