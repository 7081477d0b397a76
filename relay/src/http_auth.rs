//! NIP-98 HTTP Auth on the HTTP paths that return event content (`/events`, `/sessions/...`).
//!
//! With `[auth] required_for_read = true`, a request must carry `Authorization: Nostr <base64>`,
//! the base64 of a signed kind-27235 event whose `u` tag is the absolute request URL (query
//! included) and whose `method` tag is the request method, created within 60 s of now. The URL's
//! scheme and host come from `relay_url` when configured (ws→http, wss→https), else the Host
//! header (http or https). Anything else is answered 401 with `WWW-Authenticate: Nostr` and a
//! body saying what to send. `/log/*` (hashes, ids, checkpoints) stays public.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nostr::{Event, JsonUtil, PublicKey};

use crate::server::AppState;

/// The NIP-98 event kind.
pub const KIND: u16 = 27235;
/// How far a NIP-98 event's `created_at` may be from now (NIP-98 suggests 60 s).
pub const MAX_SKEW_SECS: i64 = 60;
/// Longest `Authorization` header accepted; a NIP-98 event with a long URL is well under 4 KiB.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Middleware for the content routes: passes the request on when read auth is off or the
/// request carries a valid NIP-98 token for itself; otherwise answers 401.
pub async fn require_read(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !state.cfg.auth.required_for_read {
        return next.run(req).await;
    }
    let path_and_query = req.uri().path_and_query().map_or_else(|| req.uri().path(), |p| p.as_str());
    let target = Target {
        method: req.method().as_str(),
        path_and_query,
        relay_url: state.cfg.relay_url.as_deref(),
        host: req.headers().get(header::HOST).and_then(|h| h.to_str().ok()),
    };
    match verify(req.headers(), &target, crate::store::now_secs()) {
        Ok(_pubkey) => next.run(req).await,
        Err(reason) => unauthorized(&reason, &target),
    }
}

/// The request a token must name.
pub struct Target<'a> {
    pub method: &'a str,
    /// Path and query exactly as received (`/events?after=0`).
    pub path_and_query: &'a str,
    /// The configured public URL of the relay (`ws://` or `wss://`), if any.
    pub relay_url: Option<&'a str>,
    /// The Host header.
    pub host: Option<&'a str>,
}

/// Checks the `Authorization` header of a request; returns the authenticated pubkey or why not.
pub fn verify(headers: &HeaderMap, target: &Target<'_>, now: i64) -> Result<PublicKey, String> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err("no (or more than one) Authorization header".into());
    };
    if value.len() > MAX_HEADER_BYTES {
        return Err(format!("Authorization header is longer than {MAX_HEADER_BYTES} bytes"));
    }
    let value = value.to_str().map_err(|_| "Authorization header is not ASCII".to_string())?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Nostr") {
        return Err("Authorization scheme must be `Nostr`".into());
    }
    let json = decode_base64(token.trim()).ok_or("Authorization token is not valid base64")?;
    let event = Event::from_json(&json).map_err(|e| format!("Authorization token is not a Nostr event: {e}"))?;
    check_event(&event, target, now)?;
    Ok(event.pubkey)
}

/// The NIP-98 checks on a decoded event.
pub fn check_event(event: &Event, target: &Target<'_>, now: i64) -> Result<(), String> {
    if event.kind.as_u16() != KIND {
        return Err(format!("event kind is {}, must be {KIND}", event.kind.as_u16()));
    }
    if !event.verify_id() {
        return Err("event id does not match the event".into());
    }
    if !event.verify_signature() {
        return Err("bad signature".into());
    }
    let skew = crate::store::ts(event.created_at).saturating_sub(now).saturating_abs();
    if skew > MAX_SKEW_SECS {
        return Err(format!("created_at is {skew} s from now, must be within {MAX_SKEW_SECS} s"));
    }
    let tag = |name: &str| {
        event.tags.iter().find_map(|t| match t.as_slice() {
            [n, v, ..] if n == name => Some(v.as_str()),
            _ => None,
        })
    };
    let method = tag("method").ok_or("event has no method tag")?;
    if !method.eq_ignore_ascii_case(target.method) {
        return Err(format!("method tag is {method:?}, this request is {}", target.method));
    }
    let url = tag("u").ok_or("event has no u tag")?;
    if !url_matches(url, target) {
        return Err(format!("u tag {url:?} is not this request's URL"));
    }
    Ok(())
}

/// Whether `url` is the absolute URL of the request: the configured relay URL's scheme
/// (ws→http, wss→https), host and path, or any http(s) URL on the Host header's host; then
/// the path and query exactly as received.
fn url_matches(url: &str, target: &Target<'_>) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else { return false };
    let split = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    match (target.relay_url, target.host) {
        (Some(relay), _) => {
            let Some((rs, rrest)) = relay.split_once("://") else { return false };
            let rsplit = rrest.find('/').unwrap_or(rrest.len());
            let (rauth, rpath) = rrest.split_at(rsplit);
            let rpath = rpath.trim_end_matches('/');
            http_scheme(scheme) == http_scheme(rs)
                && http_scheme(scheme).is_some()
                && authority.eq_ignore_ascii_case(rauth)
                && path.strip_prefix(rpath) == Some(target.path_and_query)
        }
        (None, host) => {
            http_scheme(scheme).is_some()
                && host.is_none_or(|h| authority.eq_ignore_ascii_case(h))
                && path == target.path_and_query
        }
    }
}

/// `http`/`https` for an http(s) or ws(s) scheme.
fn http_scheme(scheme: &str) -> Option<&'static str> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some("http"),
        "https" | "wss" => Some("https"),
        _ => None,
    }
}

/// 401 with the `WWW-Authenticate: Nostr` hint and a body saying what to send.
fn unauthorized(reason: &str, target: &Target<'_>) -> Response {
    let example = match (target.relay_url, target.host) {
        (Some(relay), _) => {
            let (s, rest) = relay.split_once("://").unwrap_or(("ws", relay));
            format!("{}://{}{}", http_scheme(s).unwrap_or("http"), rest.trim_end_matches('/'), target.path_and_query)
        }
        (None, Some(host)) => format!("http://{host}{}", target.path_and_query),
        (None, None) => format!("http://<host>{}", target.path_and_query),
    };
    let message = format!(
        "auth-required: {reason}. This relay serves events only to authenticated clients (NIP-98): send \
         `Authorization: Nostr <base64 of a signed kind-{KIND} event>` with tags [\"u\", \"{example}\"] and \
         [\"method\", \"{}\"], created_at within {MAX_SKEW_SECS} s of now",
        target.method
    );
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({ "error": message }))).into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Nostr"));
    resp
}

/// Decodes standard or URL-safe base64, padded or not; `None` on any other byte.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover base64 digit cannot encode a byte.
    if bits >= 6 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys, Kind, Tag, Timestamp};

    fn token(keys: &Keys, kind: u16, url: &str, method: &str, created_at: u64) -> Event {
        EventBuilder::new(Kind::from(kind), "")
            .tags([Tag::parse(["u", url]).unwrap(), Tag::parse(["method", method]).unwrap()])
            .custom_created_at(Timestamp::from(created_at))
            .sign_with_keys(keys)
            .unwrap()
    }

    fn target<'a>(relay_url: Option<&'a str>, host: Option<&'a str>) -> Target<'a> {
        Target { method: "GET", path_and_query: "/events?after=0", relay_url, host }
    }

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm9vYg").unwrap(), b"foob");
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("-_8").unwrap(), decode_base64("+/8=").unwrap());
        assert!(decode_base64("Zm9v!").is_none());
        assert!(decode_base64("Z").is_none());
    }

    #[test]
    fn url_from_host_or_relay_url() {
        let now = 1_700_000_000;
        let k = Keys::generate();
        let ev = token(&k, KIND, "http://127.0.0.1:8000/events?after=0", "GET", now);
        assert!(check_event(&ev, &target(None, Some("127.0.0.1:8000")), now as i64).is_ok());
        assert!(check_event(&ev, &target(None, Some("example.com")), now as i64).is_err());
        assert!(check_event(&ev, &target(Some("ws://127.0.0.1:8000/"), None), now as i64).is_ok());
        assert!(check_event(&ev, &target(Some("wss://127.0.0.1:8000"), None), now as i64).is_err());
        let ev = token(&k, KIND, "https://relay.example/nostr/events?after=0", "GET", now);
        assert!(check_event(&ev, &target(Some("wss://relay.example/nostr"), Some("127.0.0.1")), now as i64).is_ok());
        // The query is part of the URL.
        let ev = token(&k, KIND, "http://127.0.0.1:8000/events?after=5", "GET", now);
        assert!(check_event(&ev, &target(None, Some("127.0.0.1:8000")), now as i64).is_err());
    }

    #[test]
    fn rejects_kind_method_and_stale() {
        let now = 1_700_000_000;
        let k = Keys::generate();
        let t = target(None, Some("h"));
        let url = "http://h/events?after=0";
        assert!(check_event(&token(&k, 22242, url, "GET", now), &t, now as i64).unwrap_err().contains("27235"));
        assert!(check_event(&token(&k, KIND, url, "POST", now), &t, now as i64).unwrap_err().contains("method"));
        assert!(
            check_event(&token(&k, KIND, url, "GET", now - 61), &t, now as i64).unwrap_err().contains("created_at")
        );
        assert!(check_event(&token(&k, KIND, url, "GET", now + 60), &t, now as i64).is_ok());
    }

    #[test]
    fn header_is_capped_and_must_be_nostr() {
        let t = target(None, Some("h"));
        let mut h = HeaderMap::new();
        assert!(verify(&h, &t, 0).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&"A".repeat(MAX_HEADER_BYTES + 1)).unwrap());
        assert!(verify(&h, &t, 0).unwrap_err().contains("longer"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(verify(&h, &t, 0).unwrap_err().contains("scheme"));
    }
}
