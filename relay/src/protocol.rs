//! The parse stage: NIP-01 client messages in, relay messages out.
//!
//! Client messages are parsed once into borrowed raw JSON parts, so an EVENT's bytes are only
//! deserialized into an [`Event`] once, its size is known without re-serializing, and the
//! event's own JSON text is what the relay stores and serves (see [`parse_event`]).

use std::borrow::Cow;

use nostr::{Event, EventId, Filter, JsonUtil, Kind, PublicKey, Tag, Timestamp};
use serde_json::value::RawValue;

/// A message from a client.
#[derive(Debug)]
pub enum ClientMessage {
    /// `["EVENT", <event>]`; `json` is the event's compact JSON (the client's own text when it
    /// was already compact), `raw_len` the size of the event's JSON as received.
    Event { event: Box<Event>, json: String, raw_len: usize },
    /// `["REQ", <sub id>, <filter>...]`; `after_seq` is this relay's catch-up cursor extension
    /// (a filter field): only events with a higher arrival sequence, oldest first, each EVENT
    /// carrying `{"seq": N}` as a fourth element.
    Req { sub_id: String, filters: Vec<Filter>, after_seq: Option<i64> },
    /// `["COUNT", <sub id>, <filter>...]` (NIP-45)
    Count { sub_id: String, filters: Vec<Filter> },
    /// `["CLOSE", <sub id>]`
    Close { sub_id: String },
    /// `["AUTH", <event>]` (NIP-42)
    Auth { event: Box<Event> },
    /// `["NEG-OPEN", <sub id>, <filter>, <hex message>]` (NIP-77): the client's first
    /// negentropy message over the events matching `filter`.
    NegOpen { sub_id: String, filter: Box<Filter>, msg: Vec<u8> },
    /// `["NEG-MSG", <sub id>, <hex message>]` (NIP-77): the next round of a session.
    NegMsg { sub_id: String, msg: Vec<u8> },
    /// `["NEG-CLOSE", <sub id>]` (NIP-77)
    NegClose { sub_id: String },
}

/// Why a client message could not be parsed, and how to answer it.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON array with a string first element: answered with a NOTICE.
    #[error("error: could not parse message: {0}")]
    Malformed(String),
    /// A message type this relay does not know: answered with a NOTICE.
    #[error("error: unknown message type: {0}")]
    UnknownType(String),
    /// An EVENT whose event could not be parsed: answered with `OK false` when the id is
    /// readable, otherwise a NOTICE.
    #[error("invalid: {reason}")]
    BadEvent { id: Option<String>, reason: String },
    /// A REQ or COUNT with a bad subscription id or filter: answered with CLOSED.
    #[error("invalid: {reason}")]
    BadFilter { sub_id: String, reason: String },
    /// A NEG-OPEN or NEG-MSG with a bad filter or message: answered with NEG-ERR.
    #[error("invalid: {reason}")]
    BadNeg { sub_id: String, reason: String },
}

/// Bounds applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Filters in one REQ or COUNT.
    pub max_filters: usize,
    /// Characters in a subscription id.
    pub max_subid: usize,
    /// Values in one filter; a COUNT's filters together may have three times as many.
    pub max_values: usize,
}

/// Values in a filter (ids, authors, kinds, tag values): what the query binds.
fn filter_values(f: &Filter) -> usize {
    f.ids.as_ref().map_or(0, |v| v.len())
        + f.authors.as_ref().map_or(0, |v| v.len())
        + f.kinds.as_ref().map_or(0, |v| v.len())
        + f.generic_tags.values().map(|v| v.len()).sum::<usize>()
}

/// Parses one text frame.
pub fn parse(text: &str, bounds: Bounds) -> Result<ClientMessage, ParseError> {
    let Bounds { max_filters, max_subid, max_values } = bounds;
    let parts: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| match malformed_event_id(text) {
        // An EVENT frame that is not valid JSON: answer OK false when its id can still be read.
        Some(id) => ParseError::BadEvent { id: Some(id), reason: format!("malformed JSON: {e}") },
        None => ParseError::Malformed(e.to_string()),
    })?;
    let Some((kind, rest)) = parts.split_first() else {
        return Err(ParseError::Malformed("empty array".into()));
    };
    let kind: &str =
        serde_json::from_str(kind.get()).map_err(|_| ParseError::Malformed("first element must be a string".into()))?;
    match kind {
        "EVENT" => {
            let [raw] = rest else {
                return Err(ParseError::Malformed("EVENT takes exactly one event".into()));
            };
            let (event, json) = parse_event(raw)?;
            Ok(ClientMessage::Event { event, json, raw_len: raw.get().len() })
        }
        "AUTH" => {
            let [raw] = rest else {
                return Err(ParseError::Malformed("AUTH takes exactly one event".into()));
            };
            Ok(ClientMessage::Auth { event: parse_event(raw)?.0 })
        }
        "REQ" | "COUNT" => {
            let Some((sub, raw_filters)) = rest.split_first() else {
                return Err(ParseError::Malformed(format!("{kind} needs a subscription id")));
            };
            let sub_id = parse_sub_id(sub, max_subid)?;
            let bad = |reason: String| ParseError::BadFilter { sub_id: sub_id.clone(), reason };
            if raw_filters.is_empty() {
                return Err(bad("at least one filter is required".into()));
            }
            if raw_filters.len() > max_filters {
                return Err(bad(format!("too many filters (max {max_filters})")));
            }
            let parsed =
                raw_filters.iter().map(|raw| parse_filter(raw.get()).map_err(&bad)).collect::<Result<Vec<_>, _>>()?;
            let after_seq = parsed[0].1;
            if parsed.iter().any(|(_, a)| *a != after_seq) {
                return Err(bad("after_seq must be the same in every filter of a REQ".into()));
            }
            let filters: Vec<Filter> = parsed.into_iter().map(|(f, _)| f).collect();
            if let Some(n) = filters.iter().map(filter_values).find(|n| *n > max_values) {
                return Err(bad(format!("a filter has {n} values, the limit is {max_values}; split it")));
            }
            let total: usize = filters.iter().map(filter_values).sum();
            if kind == "COUNT" && total > 3 * max_values {
                return Err(bad(format!("COUNT filters have {total} values, the limit is {}", 3 * max_values)));
            }
            Ok(if kind == "REQ" {
                ClientMessage::Req { sub_id, filters, after_seq }
            } else {
                ClientMessage::Count { sub_id, filters }
            })
        }
        "CLOSE" => {
            let [sub] = rest else {
                return Err(ParseError::Malformed("CLOSE takes exactly one subscription id".into()));
            };
            let sub_id: String = serde_json::from_str(sub.get())
                .map_err(|_| ParseError::Malformed("subscription id must be a string".into()))?;
            Ok(ClientMessage::Close { sub_id })
        }
        "NEG-OPEN" | "NEG-MSG" | "NEG-CLOSE" => parse_neg(kind, rest, bounds),
        other => Err(ParseError::UnknownType(other.chars().take(32).collect())),
    }
}

/// Parses the NIP-77 messages; once the subscription id is read, errors are [`ParseError::BadNeg`].
fn parse_neg(kind: &str, rest: &[&RawValue], bounds: Bounds) -> Result<ClientMessage, ParseError> {
    let Some((sub, args)) = rest.split_first() else {
        return Err(ParseError::Malformed(format!("{kind} needs a subscription id")));
    };
    let sub_id: String = serde_json::from_str(sub.get())
        .map_err(|_| ParseError::Malformed("subscription id must be a string".into()))?;
    let bad = |reason: String| ParseError::BadNeg { sub_id: sub_id.clone(), reason };
    if sub_id.is_empty() || sub_id.len() > bounds.max_subid {
        return Err(bad(format!("subscription id must be 1 to {} characters", bounds.max_subid)));
    }
    let hex_msg = |raw: &RawValue| -> Result<Vec<u8>, ParseError> {
        let text: &str = serde_json::from_str(raw.get()).map_err(|_| bad("the message must be a hex string".into()))?;
        hex::decode(text).map_err(|e| bad(format!("the message is not hex: {e}")))
    };
    match (kind, args) {
        ("NEG-OPEN", [filter, msg]) => {
            let (filter, after_seq) = parse_filter(filter.get()).map_err(&bad)?;
            if after_seq.is_some() {
                return Err(bad("after_seq is not supported in NEG-OPEN".into()));
            }
            let n = filter_values(&filter);
            if n > bounds.max_values {
                return Err(bad(format!("the filter has {n} values, the limit is {}; split it", bounds.max_values)));
            }
            Ok(ClientMessage::NegOpen { filter: Box::new(filter), msg: hex_msg(msg)?, sub_id })
        }
        ("NEG-OPEN", _) => Err(bad("NEG-OPEN takes a subscription id, one filter and a hex message".into())),
        ("NEG-MSG", [msg]) => Ok(ClientMessage::NegMsg { msg: hex_msg(msg)?, sub_id }),
        ("NEG-MSG", _) => Err(bad("NEG-MSG takes a subscription id and a hex message".into())),
        ("NEG-CLOSE", []) => Ok(ClientMessage::NegClose { sub_id }),
        _ => Err(bad("NEG-CLOSE takes only a subscription id".into())),
    }
}

/// Reads one event's JSON (from a federation peer) as an EVENT's event is read: the event and
/// its JSON as stored and served (see [`parse_event`]); the error is an `invalid:` reason.
pub fn read_event(text: &str) -> Result<(Box<Event>, String), String> {
    let raw: &RawValue = serde_json::from_str(text).map_err(|e| format!("invalid: malformed JSON: {e}"))?;
    parse_event(raw).map_err(|e| e.to_string())
}

/// Parses an event and gives its JSON as stored and served: the client's text itself when it
/// has exactly the seven NIP-01 keys and no whitespace outside strings (what every client
/// library sends), so nothing is re-serialized; otherwise (unknown keys, insignificant
/// whitespace) nostr's lenient reading, re-serialized compactly, as before.
fn parse_event(raw: &RawValue) -> Result<(Box<Event>, String), ParseError> {
    let text = raw.get();
    if let Ok(exact) = serde_json::from_str::<ExactEvent>(text)
        && let Ok(kind) = u16::try_from(exact.kind)
        && let (Ok(id), Ok(pubkey), Ok(sig)) = (
            EventId::from_hex(exact.id),
            PublicKey::from_hex(exact.pubkey),
            exact.sig.parse::<nostr::secp256k1::schnorr::Signature>(),
        )
    {
        // Served verbatim only if canonical: compact, and ids, keys and signature in lowercase
        // hex (clients match events by the id string they compute).
        let canonical = is_compact(text) && [exact.id, exact.pubkey, exact.sig].iter().all(|h| is_lower_hex(h));
        let event = Event::new(id, pubkey, exact.created_at, Kind::from(kind), exact.tags, exact.content, sig);
        let json = if canonical { text.to_owned() } else { event.as_json() };
        return Ok((Box::new(event), json));
    }
    let event = parse_event_lenient(raw)?;
    let json = event.as_json();
    Ok((event, json))
}

/// An event with exactly the NIP-01 keys (any order), read in one pass.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExactEvent<'a> {
    id: &'a str,
    pubkey: &'a str,
    created_at: Timestamp,
    kind: u64,
    tags: Vec<Tag>,
    #[serde(borrow)]
    content: Cow<'a, str>,
    sig: &'a str,
}

/// Whether a hex string is in NIP-01's canonical lowercase form.
fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether JSON text has no whitespace outside its strings (one pass, no allocation).
fn is_compact(text: &str) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b' ' | b'\t' | b'\n' | b'\r' => return false,
                _ => {}
            }
        }
    }
    true
}

/// nostr's own reading, which tolerates unknown keys, with this relay's kind bound; its errors
/// are the `invalid:` answers clients get.
fn parse_event_lenient(raw: &RawValue) -> Result<Box<Event>, ParseError> {
    let event = Event::from_json(raw.get())
        .map(Box::new)
        .map_err(|e| ParseError::BadEvent { id: raw_id(raw), reason: format!("malformed event: {e}") })?;
    // nostr reads a kind above 65535 modulo 2^16 (65537 becomes 1, with the same id): refuse it.
    #[derive(serde::Deserialize)]
    struct KindOnly {
        kind: u64,
    }
    match serde_json::from_str::<KindOnly>(raw.get()) {
        Ok(k) if k.kind == event.kind.as_u16() as u64 => Ok(event),
        _ => Err(ParseError::BadEvent { id: raw_id(raw), reason: "kind must be 0 to 65535".into() }),
    }
}

/// The id of an event that could not be parsed, if readable, so the client gets an OK it can match.
fn raw_id(raw: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: String,
    }
    serde_json::from_str::<IdOnly>(raw.get()).ok().map(|x| x.id)
}

/// The id of an EVENT frame that is not valid JSON, read leniently: the frame must start with
/// `["EVENT",` and the first `"id"` key must be followed by `:` and a quoted 64-hex-digit
/// string. One linear pass over the frame (itself bounded by the message size limit).
fn malformed_event_id(text: &str) -> Option<String> {
    fn ws(s: &str) -> &str {
        s.trim_start_matches([' ', '\t', '\n', '\r'])
    }
    let rest = ws(ws(text).strip_prefix('[')?);
    let rest = ws(rest.strip_prefix("\"EVENT\"")?).strip_prefix(',')?;
    let start = rest.find("\"id\"")?;
    let rest = ws(ws(&rest[start + 4..]).strip_prefix(':')?);
    let quoted = rest.strip_prefix('"')?.get(..65)?;
    let (id, close) = quoted.split_at(64);
    (close == "\"" && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

fn parse_sub_id(raw: &RawValue, max_len: usize) -> Result<String, ParseError> {
    let sub_id: String = serde_json::from_str(raw.get())
        .map_err(|_| ParseError::Malformed("subscription id must be a string".into()))?;
    if sub_id.is_empty() || sub_id.len() > max_len {
        return Err(ParseError::BadFilter {
            reason: format!("subscription id must be 1 to {max_len} characters"),
            sub_id,
        });
    }
    Ok(sub_id)
}

/// Parses a filter, rejecting what NIP-01 does not allow (nostr's parser is lenient about
/// unknown keys, which we keep, but tag values must be strings and fields well-typed).
fn parse_filter(json: &str) -> Result<(Filter, Option<i64>), String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let obj = value.as_object().ok_or("a filter must be a JSON object")?;
    for (key, v) in obj {
        let is_tag = key.len() == 2 && key.starts_with('#');
        let ok = match key.as_str() {
            "ids" | "authors" => v.as_array().is_some_and(|a| a.iter().all(is_hex64)),
            "kinds" => v.as_array().is_some_and(|a| a.iter().all(|k| k.as_u64().is_some_and(|k| k <= 65535))),
            "since" | "until" | "limit" => v.as_u64().is_some(),
            "after_seq" => v.as_i64().is_some_and(|s| s >= 0),
            "search" => v.is_string(),
            _ if is_tag => v.as_array().is_some_and(|a| a.iter().all(|s| s.is_string())),
            _ => true,
        };
        if !ok {
            return Err(format!("bad value for filter field {key:?}"));
        }
    }
    if obj.contains_key("search") {
        return Err("search (NIP-50) is not supported".into());
    }
    let after_seq = obj.get("after_seq").and_then(serde_json::Value::as_i64);
    Ok((Filter::from_json(json).map_err(|e| e.to_string())?, after_seq))
}

fn is_hex64(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

/// Builders for relay → client messages. Event JSON is spliced in verbatim.
///
/// The messages sent once per event (EVENT, OK) are written into one buffer of their final
/// size: `format!` with a quoted argument allocated the quoted string, then grew its output
/// (sized from the literal pieces) by reallocation and copy while splicing in ~650 bytes of
/// event, for every event of every REQ.
pub mod out {
    fn quote(s: &str) -> String {
        serde_json::to_string(s).expect("strings serialize")
    }

    /// Appends `s` as a JSON string, exactly as [`quote`] writes it.
    fn push_quoted(out: &mut String, s: &str) {
        // serde_json escapes only `"`, `\` and control characters; anything else is copied.
        if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            out.push_str(&quote(s));
        } else {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
    }

    /// `["EVENT",<sub_id>,<event_json><tail>]` with `extra` bytes of room for the tail.
    fn event_frame(sub_id: &str, event_json: &str, extra: usize) -> String {
        let mut out = String::with_capacity("[\"EVENT\",\"\",]".len() + sub_id.len() + event_json.len() + extra);
        out.push_str("[\"EVENT\",");
        push_quoted(&mut out, sub_id);
        out.push(',');
        out.push_str(event_json);
        out
    }

    pub fn event(sub_id: &str, event_json: &str) -> String {
        let mut out = event_frame(sub_id, event_json, 0);
        out.push(']');
        out
    }

    /// An EVENT for a cursor subscription: the arrival sequence rides as a fourth element.
    pub fn event_with_seq(sub_id: &str, event_json: &str, seq: i64) -> String {
        // `,{"seq":` + at most 20 characters of an i64 + `}`.
        let mut out = event_frame(sub_id, event_json, 29);
        out.push_str(",{\"seq\":");
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{seq}}}]"));
        out
    }

    pub fn ok(id: &str, accepted: bool, message: &str) -> String {
        let mut out = String::with_capacity("[\"OK\",\"\",false,\"\"]".len() + id.len() + message.len());
        out.push_str("[\"OK\",");
        push_quoted(&mut out, id);
        out.push_str(if accepted { ",true," } else { ",false," });
        push_quoted(&mut out, message);
        out.push(']');
        out
    }

    pub fn eose(sub_id: &str) -> String {
        format!("[\"EOSE\",{}]", quote(sub_id))
    }

    pub fn closed(sub_id: &str, message: &str) -> String {
        format!("[\"CLOSED\",{},{}]", quote(sub_id), quote(message))
    }

    pub fn notice(message: &str) -> String {
        format!("[\"NOTICE\",{}]", quote(message))
    }

    pub fn auth(challenge: &str) -> String {
        format!("[\"AUTH\",{}]", quote(challenge))
    }

    pub fn count(sub_id: &str, count: u64) -> String {
        format!("[\"COUNT\",{},{{\"count\":{}}}]", quote(sub_id), count)
    }

    /// A negentropy message (NIP-77), hex-encoded.
    pub fn neg_msg(sub_id: &str, msg: &[u8]) -> String {
        format!("[\"NEG-MSG\",{},\"{}\"]", quote(sub_id), hex::encode(msg))
    }

    /// A negentropy session refused or ended by the relay (NIP-77); the session is closed.
    pub fn neg_err(sub_id: &str, message: &str) -> String {
        format!("[\"NEG-ERR\",{},{}]", quote(sub_id), quote(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds { max_filters: 8, max_subid: 64, max_values: 3 };

    /// EVENT and OK are written by hand into one buffer: byte for byte what `format!` with
    /// serde_json's quoting wrote, for plain ids and for ones that need escapes, and in one
    /// allocation of the final size (no growth while the event is spliced in).
    #[test]
    fn per_event_messages_match_the_formatted_ones_in_one_allocation() {
        let quote = |s: &str| serde_json::to_string(s).unwrap();
        let event = r#"{"id":"ab","content":"x \" \\ é"}"#;
        for sub in ["s", "sub-1 é 𝄞", "q\"uote", "back\\slash", "ctl\u{1}\u{1f}", "del\u{7f}", ""] {
            let plain = out::event(sub, event);
            assert_eq!(plain, format!("[\"EVENT\",{},{}]", quote(sub), event));
            if quote(sub).len() == sub.len() + 2 {
                assert_eq!(plain.capacity(), plain.len(), "{sub:?}: grew or over-reserved");
            }
            serde_json::from_str::<serde_json::Value>(&plain).expect("valid JSON");
            for seq in [0, 42, i64::MAX, i64::MIN] {
                let cursor = out::event_with_seq(sub, event, seq);
                assert_eq!(cursor, format!("[\"EVENT\",{},{},{{\"seq\":{}}}]", quote(sub), event, seq));
            }
            for accepted in [true, false] {
                let ok = out::ok(sub, accepted, "invalid: \"bad\" \u{0}");
                assert_eq!(ok, format!("[\"OK\",{},{},{}]", quote(sub), accepted, quote("invalid: \"bad\" \u{0}")));
            }
        }
        let ok = out::ok(&"a".repeat(64), true, "");
        assert!(ok.capacity() - ok.len() <= 1, "one allocation for an OK: {}", ok.capacity() - ok.len());
    }

    #[test]
    fn after_seq_is_a_cursor_for_the_whole_req() {
        let msg = parse(r##"["REQ","c",{"#s":["x"],"after_seq":42},{"kinds":[1],"after_seq":42}]"##, B).unwrap();
        assert!(matches!(msg, ClientMessage::Req { after_seq: Some(42), .. }));
        let err = parse(r##"["REQ","c",{"after_seq":1},{"after_seq":2}]"##, B).unwrap_err();
        assert!(err.to_string().contains("same in every filter"), "{err}");
        assert!(parse(r##"["REQ","c",{"after_seq":-1}]"##, B).is_err());
    }

    #[test]
    fn bounds_values_per_filter() {
        let err = parse(r##"["REQ","s",{"#p":["a","b","c","d"]}]"##, B).unwrap_err();
        assert!(err.to_string().starts_with("invalid: a filter has 4 values"), "{err}");
        assert!(parse(r##"["REQ","s",{"#p":["a","b","c"]},{"#p":["d","e","f"]}]"##, B).is_ok());
    }

    #[test]
    fn rejects_non_arrays_and_unknown_types() {
        assert!(matches!(parse("{}", B), Err(ParseError::Malformed(_))));
        assert!(matches!(parse("[]", B), Err(ParseError::Malformed(_))));
        assert!(matches!(parse("[\"HELLO\"]", B), Err(ParseError::UnknownType(t)) if t == "HELLO"));
    }

    #[test]
    fn req_filter_errors_name_the_subscription() {
        let err = parse(r#"["REQ","s1",{"ids":["zz"]}]"#, B).unwrap_err();
        assert!(matches!(err, ParseError::BadFilter { ref sub_id, .. } if sub_id == "s1"), "{err:?}");
        let err = parse(r#"["REQ","s1",{},{},{}]"#, Bounds { max_filters: 2, ..B }).unwrap_err();
        assert!(err.to_string().contains("too many filters"), "{err}");
        let err = parse(r##"["REQ","s1",{"#p":[1]}]"##, B).unwrap_err();
        assert!(matches!(err, ParseError::BadFilter { .. }));
    }

    #[test]
    fn parses_req_with_tag_filters() {
        let msg = parse(r##"["REQ","x",{"kinds":[1573],"#s":["a"],"limit":1}]"##, B).unwrap();
        let ClientMessage::Req { sub_id, filters, after_seq } = msg else { panic!("not a REQ") };
        assert_eq!(after_seq, None);
        assert_eq!(sub_id, "x");
        assert_eq!(filters[0].limit, Some(1));
    }

    #[test]
    fn malformed_event_frames_keep_a_readable_id() {
        let id = "ab".repeat(32);
        let frame = format!("[\"EVENT\", {{\"id\" : \"{id}\",\"content\":\"a\u{1}b\"}}]");
        match parse(&frame, B) {
            Err(ParseError::BadEvent { id: Some(got), reason }) => {
                assert_eq!(got, id);
                assert!(reason.starts_with("malformed JSON"), "{reason}");
            }
            other => panic!("expected BadEvent with id, got {other:?}"),
        }
        // No readable id (short, or not an EVENT frame): a NOTICE (Malformed).
        let frame = "[\"EVENT\",{\"id\":\"abc\",\"content\":\"\u{1}\"}]";
        assert!(matches!(parse(frame, B), Err(ParseError::Malformed(_))));
        let frame = format!("[\"REQ\",{{\"id\":\"{id}\",\"x\":\"\u{1}\"}}]");
        assert!(matches!(parse(&frame, B), Err(ParseError::Malformed(_))));
        assert!(malformed_event_id("[\"EVENT\"").is_none());
        assert!(malformed_event_id(&format!("[\"EVENT\",{{\"id\":\"{}\"", "é".repeat(40))).is_none());
    }

    #[test]
    fn event_json_is_the_clients_compact_text_or_reserialized() {
        let keys = nostr::Keys::generate();
        let event = nostr::EventBuilder::text_note("a \"b\" é").sign_with_keys(&keys).unwrap();
        let v: serde_json::Value = serde_json::from_str(&event.as_json()).unwrap();
        // Keys in another order, compact: kept verbatim.
        let reordered = format!(
            r#"{{"sig":{},"content":{},"tags":[],"kind":1,"created_at":{},"pubkey":{},"id":{}}}"#,
            v["sig"], v["content"], v["created_at"], v["pubkey"], v["id"]
        );
        let json_of = |frame: String| match parse(&frame, B) {
            Ok(ClientMessage::Event { event: got, json, .. }) => {
                assert_eq!(*got, event);
                json
            }
            other => panic!("not an EVENT: {other:?}"),
        };
        assert_eq!(json_of(format!("[\"EVENT\",{reordered}]")), reordered);
        // Whitespace outside strings, or an unknown key: re-serialized compactly, as before.
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        assert_eq!(json_of(format!("[\"EVENT\",{pretty}]")), event.as_json());
        let extra = event.as_json().replacen('{', r#"{"extra":1,"#, 1);
        assert_eq!(json_of(format!("[\"EVENT\",{extra}]")), event.as_json());
        // Uppercase hex (valid, but not NIP-01's form): re-serialized in lowercase.
        let upper = event.as_json().replace(&event.id.to_hex(), &event.id.to_hex().to_uppercase());
        assert_eq!(json_of(format!("[\"EVENT\",{upper}]")), event.as_json());
        assert!(is_compact(r#"{"content":"a b\" c","x":[1,2]}"#));
        assert!(!is_compact(r#"{"content":"a\\", "x":1}"#));
    }

    #[test]
    fn kind_above_u16_is_refused_not_wrapped() {
        let keys = nostr::Keys::generate();
        let event = nostr::EventBuilder::new(nostr::Kind::from(1u16), "x").sign_with_keys(&keys).unwrap();
        let json = event.as_json().replace("\"kind\":1,", "\"kind\":65537,");
        assert!(json.contains("65537"));
        let err = parse(&format!("[\"EVENT\",{json}]"), B).unwrap_err();
        assert!(matches!(&err, ParseError::BadEvent { id: Some(id), .. } if *id == event.id.to_hex()), "{err:?}");
        assert!(err.to_string().contains("kind must be 0 to 65535"), "{err}");
    }

    #[test]
    fn negentropy_messages() {
        let msg = parse(r##"["NEG-OPEN","n1",{"kinds":[1],"#p":["x"]},"61AB"]"##, B).unwrap();
        let ClientMessage::NegOpen { sub_id, filter, msg } = msg else { panic!("not a NEG-OPEN") };
        assert_eq!((sub_id.as_str(), msg), ("n1", vec![0x61, 0xab]));
        assert_eq!(filter.kinds.as_ref().map(|k| k.len()), Some(1));
        assert!(matches!(parse(r#"["NEG-MSG","n1","61"]"#, B), Ok(ClientMessage::NegMsg { msg, .. }) if msg == [0x61]));
        assert!(matches!(parse(r#"["NEG-CLOSE","n1"]"#, B), Ok(ClientMessage::NegClose { sub_id }) if sub_id == "n1"));
        // Errors once the subscription id is known are NEG-ERR "invalid: ..." for that id.
        for (frame, want) in [
            (r#"["NEG-OPEN","n1",{},"zz"]"#, "invalid: the message is not hex"),
            (r#"["NEG-OPEN","n1",{},"616"]"#, "invalid: the message is not hex"),
            (r#"["NEG-OPEN","n1",{},61]"#, "invalid: the message must be a hex string"),
            (r#"["NEG-OPEN","n1",{"ids":["zz"]},"61"]"#, "invalid: bad value for filter field"),
            (r#"["NEG-OPEN","n1",{"after_seq":3},"61"]"#, "invalid: after_seq is not supported"),
            (r#"["NEG-OPEN","n1",{"search":"x"},"61"]"#, "invalid: search (NIP-50)"),
            (r##"["NEG-OPEN","n1",{"#p":["a","b","c","d"]},"61"]"##, "invalid: the filter has 4 values"),
            (r#"["NEG-OPEN","n1",{},{},"61"]"#, "invalid: NEG-OPEN takes"),
            (r#"["NEG-OPEN","n1",{},"00","61"]"#, "invalid: NEG-OPEN takes"),
            (r#"["NEG-MSG","n1"]"#, "invalid: NEG-MSG takes"),
            (r#"["NEG-CLOSE","n1","x"]"#, "invalid: NEG-CLOSE takes"),
        ] {
            match parse(frame, B) {
                Err(e @ ParseError::BadNeg { .. }) => assert!(e.to_string().starts_with(want), "{frame}: {e}"),
                other => panic!("{frame}: expected BadNeg, got {other:?}"),
            }
        }
        let long = format!(r#"["NEG-CLOSE","{}"]"#, "x".repeat(65));
        assert!(matches!(parse(&long, B), Err(ParseError::BadNeg { .. })));
        assert!(matches!(parse(r#"["NEG-MSG"]"#, B), Err(ParseError::Malformed(_))));
        assert!(matches!(parse(r#"["NEG-MSG",7,"61"]"#, B), Err(ParseError::Malformed(_))));
        assert_eq!(out::neg_msg("a", &[0x61, 0x0f]), r#"["NEG-MSG","a","610f"]"#);
        assert_eq!(out::neg_err("a", "closed: x"), r#"["NEG-ERR","a","closed: x"]"#);
    }

    #[test]
    fn out_messages_escape_strings() {
        assert_eq!(out::notice("a\"b"), r#"["NOTICE","a\"b"]"#);
        assert_eq!(out::count("c", 3), r#"["COUNT","c",{"count":3}]"#);
    }
}
