//! NIP-42 authentication: the challenge and the check of a client's kind-22242 AUTH event.

use nostr::{Event, Kind, PublicKey};

/// How far an AUTH event's `created_at` may be from now.
const MAX_SKEW_SECS: i64 = 600;

/// A fresh random challenge for one connection.
pub fn challenge() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Checks an AUTH event; on success returns the authenticated pubkey, else an `invalid:` /
/// `auth-required:` reason for the OK message.
///
/// `relay_url` is the configured public URL; without one, the `relay` tag must name the host
/// (and port) the client connected to (`host`, from the HTTP Host header).
pub fn verify(
    event: &Event,
    challenge: &str,
    relay_url: Option<&str>,
    host: Option<&str>,
) -> Result<PublicKey, String> {
    if event.kind != Kind::Authentication {
        return Err("invalid: AUTH event must be kind 22242".into());
    }
    if !event.verify_id() {
        return Err("invalid: event id does not match the event".into());
    }
    if !event.verify_signature() {
        return Err("invalid: bad signature".into());
    }
    let skew = crate::store::ts(event.created_at).saturating_sub(crate::store::now_secs()).saturating_abs();
    if skew > MAX_SKEW_SECS {
        return Err("invalid: AUTH event created_at is more than 10 minutes from now".into());
    }
    let tag = |name: &str| {
        event.tags.iter().find_map(|t| match t.as_slice() {
            [n, v, ..] if n == name => Some(v.as_str()),
            _ => None,
        })
    };
    if tag("challenge") != Some(challenge) {
        return Err("auth-required: challenge does not match the one this relay sent".into());
    }
    let Some(url) = tag("relay") else {
        return Err("invalid: AUTH event has no relay tag".into());
    };
    if !names_relay(url, relay_url, host) {
        return Err(format!("invalid: AUTH relay tag {url:?} does not name this relay"));
    }
    Ok(event.pubkey)
}

/// Whether `url` names this relay: the configured public URL if there is one, else the host
/// (and port) the client connected to. With neither, nothing names this relay.
pub fn names_relay(url: &str, relay_url: Option<&str>, host: Option<&str>) -> bool {
    match (relay_url, host) {
        (Some(expected), _) => same_relay(url, expected),
        (None, Some(host)) => url_host(url).eq_ignore_ascii_case(host),
        (None, None) => false,
    }
}

/// `host[:port]` of a ws(s) URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Whether two relay URLs name the same relay: scheme and host compared without case, a
/// default port (80 for ws/http, 443 for wss/https) the same as none, trailing slashes ignored.
pub fn same_relay(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => (String::new(), url),
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let authority = authority.to_ascii_lowercase();
    let host = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("ws" | "http", Some((host, "80"))) | ("wss" | "https", Some((host, "443"))) => host,
        _ => authority.as_str(),
    };
    format!("{scheme}://{host}{}", path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys, RelayUrl, Tag};

    fn auth_event(keys: &Keys, relay: &str, challenge: &str) -> Event {
        EventBuilder::auth(challenge, RelayUrl::parse(relay).unwrap()).sign_with_keys(keys).unwrap()
    }

    #[test]
    fn accepts_matching_challenge_and_host() {
        let keys = Keys::generate();
        let ev = auth_event(&keys, "ws://127.0.0.1:8000", "abc");
        assert_eq!(verify(&ev, "abc", None, Some("127.0.0.1:8000")), Ok(keys.public_key()));
        assert_eq!(verify(&ev, "abc", Some("ws://127.0.0.1:8000/"), None), Ok(keys.public_key()));
    }

    #[test]
    fn rejects_wrong_challenge_relay_or_kind() {
        let keys = Keys::generate();
        let ev = auth_event(&keys, "ws://127.0.0.1:8000", "abc");
        assert!(verify(&ev, "other", None, None).unwrap_err().starts_with("auth-required:"));
        assert!(verify(&ev, "abc", None, Some("example.com")).unwrap_err().starts_with("invalid:"));
        let note = EventBuilder::text_note("x")
            .tags([Tag::parse(["challenge", "abc"]).unwrap()])
            .sign_with_keys(&keys)
            .unwrap();
        assert!(verify(&note, "abc", None, None).unwrap_err().contains("22242"));
        // With neither a relay_url nor a Host header, no relay tag names this relay.
        assert!(verify(&ev, "abc", None, None).unwrap_err().starts_with("invalid:"));
    }

    #[test]
    fn relay_urls_compare_by_scheme_host_and_port() {
        assert!(same_relay("wss://Relay.Example.com/", "wss://relay.example.com"));
        assert!(same_relay("WSS://relay.example.com:443", "wss://relay.example.com/"));
        assert!(same_relay("ws://127.0.0.1:80/", "ws://127.0.0.1"));
        assert!(!same_relay("ws://relay.example.com", "wss://relay.example.com"));
        assert!(!same_relay("wss://relay.example.com:444", "wss://relay.example.com"));
        assert!(!same_relay("wss://relay.example.com.evil", "wss://relay.example.com"));
        assert!(!same_relay("wss://relay.example.com/a", "wss://relay.example.com/b"));
    }
}
