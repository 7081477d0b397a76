//! Mirroring: the GossipSub frame format and the validation of what peers send.
//!
//! A gossip message is a frame of one or more events (the publisher batches the events of a
//! few milliseconds, see `outbox.rs`), so GossipSub's message signature is made and checked
//! once per frame, not once per event. Layout (format [`FORMAT`]):
//!
//! ```text
//! byte 0          format (2)
//! bytes 1..3      event count n, big-endian u16, 1 ..= MAX_FRAME_EVENTS
//! n times         32-byte event id, JSON length (big-endian u32), the event's JSON (UTF-8)
//! ```
//!
//! Nothing may follow the last event. Format 1 (one event per message: id then JSON) travelled
//! on another topic (`dephy/<network>/events/1`); the node warns about a peer still on it.
//!
//! A received frame is forwarded to other peers only after [`validate`] accepts it: authorized
//! source and forwarder, and EVERY event in it with an id that matches the event and a valid
//! Schnorr signature; one invalid event rejects the whole frame (an honest publisher only sends
//! events it validated). Each event then passes the relay's own write policy, or not, on its
//! own. Loops end at the GossipSub message id (publisher and sequence number) for frames, and
//! at the event id for events: an event this node already took ([`Seen`]) is skipped before it
//! is parsed, and the relay's store refuses duplicates.

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::gossipsub::{Message, MessageAcceptance};

use crate::authorize::Authorizer;
use crate::identity::wallet_of;
use crate::port::{Received, RelayPort};
use crate::seen::Seen;

/// The frame format this node writes and reads (first byte of every frame).
pub const FORMAT: u8 = 2;
/// Most events in one frame.
pub const MAX_FRAME_EVENTS: usize = 256;
/// A frame is closed before an event would take it past this size; an event larger than this
/// travels alone (up to the relay's largest event).
pub const FRAME_TARGET_BYTES: usize = 60 * 1024;
/// Format byte and event count.
const FRAME_HEADER: usize = 3;
/// Event id and JSON length.
const ENTRY_HEADER: usize = 32 + 4;

/// Largest frame a node with this largest event writes: GossipSub's transmit limit is set to it
/// (plus the protobuf envelope).
pub fn max_frame_bytes(max_event_bytes: usize) -> usize {
    FRAME_HEADER + ENTRY_HEADER + max_event_bytes.max(FRAME_TARGET_BYTES)
}

/// Builds one frame, event by event.
#[derive(Debug)]
pub struct FrameBuilder {
    data: Vec<u8>,
    count: usize,
}

impl Default for FrameBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuilder {
    pub fn new() -> Self {
        let mut data = Vec::with_capacity(4096);
        data.extend_from_slice(&[FORMAT, 0, 0]);
        Self { data, count: 0 }
    }

    /// Events in the frame so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether an event of `json_len` bytes may join: the frame is not full and stays under
    /// [`FRAME_TARGET_BYTES`] (an empty frame takes any event).
    pub fn fits(&self, json_len: usize) -> bool {
        self.count == 0
            || (self.count < MAX_FRAME_EVENTS && self.data.len() + ENTRY_HEADER + json_len <= FRAME_TARGET_BYTES)
    }

    /// Appends an event (callers check [`FrameBuilder::fits`] first).
    ///
    /// # Panics
    /// When the frame already holds [`MAX_FRAME_EVENTS`] events or the JSON is over 4 GiB.
    pub fn push(&mut self, id: &[u8; 32], json: &str) {
        assert!(self.count < MAX_FRAME_EVENTS, "frame full");
        let len = u32::try_from(json.len()).expect("event JSON under 4 GiB");
        self.data.extend_from_slice(id);
        self.data.extend_from_slice(&len.to_be_bytes());
        self.data.extend_from_slice(json.as_bytes());
        self.count += 1;
    }

    /// The frame's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let count = u16::try_from(self.count).expect("MAX_FRAME_EVENTS fits a u16");
        self.data[1..FRAME_HEADER].copy_from_slice(&count.to_be_bytes());
        self.data
    }
}

/// A frame of one event.
pub fn encode(id: &[u8; 32], json: &str) -> Vec<u8> {
    let mut frame = FrameBuilder::new();
    frame.push(id, json);
    frame.finish()
}

/// The event count a frame claims (0 when it is not a frame of this format), read without
/// decoding it.
pub fn claimed_count(data: &[u8]) -> usize {
    match data {
        [FORMAT, hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => 0,
    }
}

/// Splits a frame into `(claimed id, JSON)` pairs. Every length is checked against what is
/// left of the frame before anything is taken, and the count against [`MAX_FRAME_EVENTS`]
/// before anything is allocated.
pub fn decode(data: &[u8]) -> Result<Vec<(&[u8; 32], &str)>, String> {
    let Some((&format, rest)) = data.split_first() else {
        return Err("empty frame".into());
    };
    if format != FORMAT {
        return Err(format!(
            "frame format {format}, this node reads format {FORMAT} (the peer runs another dephy-bridge version)"
        ));
    }
    let Some((count, mut rest)) = rest.split_first_chunk::<2>() else {
        return Err("frame shorter than its header".into());
    };
    let count = usize::from(u16::from_be_bytes(*count));
    if count == 0 {
        return Err("frame without events".into());
    }
    if count > MAX_FRAME_EVENTS {
        return Err(format!("frame of {count} events, over the limit of {MAX_FRAME_EVENTS}"));
    }
    if count * ENTRY_HEADER > rest.len() {
        return Err(format!("frame claims {count} events but holds {} bytes", rest.len()));
    }
    let mut entries = Vec::with_capacity(count);
    for n in 1..=count {
        let Some((id, after)) = rest.split_first_chunk::<32>() else {
            return Err(format!("frame truncated in event {n} of {count}"));
        };
        let Some((len, after)) = after.split_first_chunk::<4>() else {
            return Err(format!("frame truncated in event {n} of {count}"));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > after.len() {
            return Err(format!("event {n} of {count} claims {len} bytes, the frame holds {}", after.len()));
        }
        let (json, after) = after.split_at(len);
        let json = std::str::from_utf8(json).map_err(|_| format!("event {n} of {count}: JSON is not UTF-8"))?;
        entries.push((id, json));
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last of {count} events", rest.len()));
    }
    Ok(entries)
}

/// What became of one event of an accepted frame.
// `Take` is the usual case: boxing it would cost an allocation per mirrored event to shrink
// a short-lived list of at most one frame's events.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Checked {
    /// Valid and within this relay's policy: ingest it.
    Take(Received),
    /// Valid, refused by this relay's policy (the reason, with its NIP-01 prefix).
    Refused(String),
    /// Taken before, from an identical copy: skipped unparsed.
    Seen,
}

/// The verdict on one received frame.
#[derive(Debug)]
pub enum Verdict {
    /// Every event valid: forward the frame (when it holds one this relay takes, see
    /// [`Verdict::acceptance`]) and handle each event as its [`Checked`] says, in order.
    Accept(Vec<Checked>),
    /// Invalid (a malformed frame, or any event in it), or forwarded by an unauthorized node:
    /// drop it whole and penalise the forwarder (GossipSub peer scoring, see `network.rs`).
    Reject(String),
    /// Published by a node this relay does not (yet, or any more) authorize: drop it, no
    /// penalty.
    Ignore(String),
}

impl Verdict {
    /// A valid frame none of whose events this relay takes (all refused by its policy, or
    /// already taken) is dropped without penalty, not forwarded.
    pub fn acceptance(&self) -> MessageAcceptance {
        match self {
            Verdict::Accept(events) if events.iter().any(|e| matches!(e, Checked::Take(_))) => {
                MessageAcceptance::Accept
            }
            Verdict::Accept(_) | Verdict::Ignore(_) => MessageAcceptance::Ignore,
            Verdict::Reject(_) => MessageAcceptance::Reject,
        }
    }
}

/// Validates a frame that `forwarder` relayed to us.
///
/// Every event's id and signature are checked (events already in `seen` excepted: an identical
/// copy was checked and taken), all of them before any policy check, so a rejected frame costs
/// no rate-limit budget. The relay's policy includes its rate limits (per author, and per
/// forwarder in place of a client's IP): an event over them is [`Checked::Refused`] like any
/// other policy refusal, so it is not stored here; the caller counts it and has it fetched
/// later by catch-up (the forwarder holds it). Events the policy takes are added to `seen`.
pub fn validate(
    message: &Message,
    forwarder: &PeerId,
    authorizer: &Authorizer,
    relay: &Arc<dyn RelayPort>,
    seen: &mut Seen,
) -> Verdict {
    let authorized = |peer: &PeerId| wallet_of(peer).is_some_and(|w| authorizer.is_authorized(&w));
    let Some(forwarder_wallet) = wallet_of(forwarder).filter(|w| authorizer.is_authorized(w)) else {
        return Verdict::Reject(format!("forwarded by {forwarder}, which is not an authorized node"));
    };
    match &message.source {
        Some(source) if authorized(source) => {}
        // The forwarder is authorized and may just see the registry differently for a moment (a
        // node registered or revoked since one of our refreshes): dropped, without the penalty
        // that peer scoring gives to invalid messages.
        Some(source) => return Verdict::Ignore(format!("published by {source}, which is not an authorized node here")),
        None => return Verdict::Reject("unsigned message".into()),
    }
    let entries = match decode(&message.data) {
        Ok(entries) => entries,
        Err(e) => return Verdict::Reject(e),
    };
    let count = entries.len();
    let mut verified = Vec::with_capacity(count);
    for (n, (id, json)) in entries.into_iter().enumerate() {
        if seen.contains(id, json) {
            verified.push(None);
            continue;
        }
        let n = n + 1;
        let received = match relay.read(json) {
            Ok(received) => received,
            Err(e) => return Verdict::Reject(format!("event {n} of {count}: {e}")),
        };
        if received.event.id.as_bytes() != id {
            return Verdict::Reject(format!("event {n} of {count}: the frame's id is not the event id"));
        }
        verified.push(Some((received, json)));
    }
    let checked = verified
        .into_iter()
        .map(|event| match event {
            None => Checked::Seen,
            Some((received, json)) => match relay.check(&received.event, json.len(), &forwarder_wallet) {
                Ok(()) => {
                    seen.insert(received.event.id.as_bytes(), json);
                    Checked::Take(received)
                }
                Err(reason) => Checked::Refused(reason),
            },
        })
        .collect();
    Verdict::Accept(checked)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::future::BoxFuture;
    use libp2p::gossipsub::TopicHash;
    use nostr::{Event, EventBuilder, JsonUtil as _, Keys, Kind};

    use super::*;
    use crate::port::{Committing, Ingested, Inventory, Received};
    use crate::registry::NodeEntry;
    use crate::registry::static_list::StaticRegistry;

    /// The relay's policy reduced to a size limit; nothing is stored in these tests.
    struct Policy {
        max_json: usize,
    }

    impl RelayPort for Policy {
        fn check(&self, _event: &Event, json_len: usize, _forwarder: &[u8; 32]) -> Result<(), String> {
            if json_len > self.max_json { Err("invalid: event too large".into()) } else { Ok(()) }
        }
        fn submit(&self, _event: Received) -> BoxFuture<'static, Committing> {
            let committed: Committing = Box::pin(std::future::ready(Ingested::New));
            Box::pin(std::future::ready(committed))
        }
        fn inventory(&self, _: crate::slice::Slice, _: usize) -> BoxFuture<'static, Result<Inventory, String>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn fetch(&self, _: Vec<[u8; 32]>) -> BoxFuture<'static, Result<Vec<String>, String>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn node() -> (PeerId, [u8; 32]) {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        (peer, crate::identity::wallet_of(&peer).unwrap())
    }

    async fn authorizer(wallets: &[[u8; 32]]) -> Arc<Authorizer> {
        let entries = wallets.iter().map(|w| NodeEntry { wallet: *w, domain: String::new(), online: 1, active: true });
        let registry = Arc::new(StaticRegistry::new(entries.collect()));
        let (auth, _rx) = Authorizer::new(registry, Duration::from_secs(60));
        auth.refresh().await.unwrap();
        auth
    }

    fn message(source: PeerId, data: Vec<u8>) -> Message {
        Message { source: Some(source), data, sequence_number: Some(1), topic: TopicHash::from_raw("t") }
    }

    fn take(verdict: Verdict) -> Vec<Event> {
        match verdict {
            Verdict::Accept(events) => events
                .into_iter()
                .filter_map(|c| match c {
                    Checked::Take(e) => Some(e.event),
                    _ => None,
                })
                .collect(),
            other => panic!("frame not accepted: {other:?}"),
        }
    }

    fn signed(content: &str) -> Event {
        EventBuilder::new(Kind::from(1573u16), content).sign_with_keys(&Keys::generate()).unwrap()
    }

    fn frame(events: &[(&[u8; 32], &str)]) -> Vec<u8> {
        let mut frame = FrameBuilder::new();
        for (id, json) in events {
            frame.push(id, json);
        }
        frame.finish()
    }

    #[tokio::test]
    async fn only_valid_events_from_authorized_nodes_are_accepted() {
        let (good, good_wallet) = node();
        let (rogue, _) = node();
        let auth = authorizer(&[good_wallet]).await;
        let relay: Arc<dyn RelayPort> = Arc::new(Policy { max_json: 2000 });
        let seen = &mut Seen::new(0);
        let event = signed("x");
        let json = event.as_json();
        let data = encode(&event.id.to_bytes(), &json);

        let verdict = validate(&message(good, data.clone()), &good, &auth, &relay, seen);
        assert_eq!(verdict.acceptance(), MessageAcceptance::Accept);
        assert_eq!(take(verdict), std::slice::from_ref(&event));

        // Published by a node outside our registry view, forwarded by an authorized one: dropped
        // without penalty (registry views may differ for a refresh interval); forwarded by a node
        // outside the registry: rejected.
        assert!(matches!(validate(&message(rogue, data.clone()), &good, &auth, &relay, seen), Verdict::Ignore(_)));
        assert!(matches!(validate(&message(good, data.clone()), &rogue, &auth, &relay, seen), Verdict::Reject(_)));
        let mut unsigned = message(good, data.clone());
        unsigned.source = None;
        assert!(matches!(validate(&unsigned, &good, &auth, &relay, seen), Verdict::Reject(_)));

        // The frame's id must be the event id.
        let other = signed("y");
        let wrong_id = encode(&other.id.to_bytes(), &json);
        assert!(
            matches!(validate(&message(good, wrong_id), &good, &auth, &relay, seen), Verdict::Reject(r) if r.contains("id"))
        );

        // A tampered event (content changed after signing) fails verification.
        let tampered = json.replace("\"content\":\"x\"", "\"content\":\"z\"");
        assert_ne!(tampered, json);
        let verdict = validate(&message(good, encode(&event.id.to_bytes(), &tampered)), &good, &auth, &relay, seen);
        assert!(matches!(verdict, Verdict::Reject(_)));

        // Garbage and truncated payloads.
        assert!(matches!(validate(&message(good, vec![1, 2, 3]), &good, &auth, &relay, seen), Verdict::Reject(_)));
        let garbage = encode(&event.id.to_bytes(), "{not json");
        assert!(matches!(validate(&message(good, garbage), &good, &auth, &relay, seen), Verdict::Reject(_)));

        // Valid but over this relay's own limit: refused here, and the frame is not forwarded.
        let strict: Arc<dyn RelayPort> = Arc::new(Policy { max_json: 10 });
        let verdict = validate(&message(good, data), &good, &auth, &strict, seen);
        assert_eq!(verdict.acceptance(), MessageAcceptance::Ignore);
        assert!(matches!(&verdict, Verdict::Accept(c) if matches!(c[..], [Checked::Refused(_)])));
    }

    #[tokio::test]
    async fn a_frame_is_taken_whole_in_order_or_rejected_whole() {
        let (good, good_wallet) = node();
        let auth = authorizer(&[good_wallet]).await;
        let relay: Arc<dyn RelayPort> = Arc::new(Policy { max_json: 2000 });
        let seen = &mut Seen::new(100);
        let events: Vec<Event> = (0..5).map(|n| signed(&format!("e{n}"))).collect();
        let jsons: Vec<String> = events.iter().map(|e| e.as_json()).collect();
        let ids: Vec<[u8; 32]> = events.iter().map(|e| e.id.to_bytes()).collect();
        let entries: Vec<(&[u8; 32], &str)> = ids.iter().zip(&jsons).map(|(i, j)| (i, j.as_str())).collect();

        // One tampered event among valid ones: nothing of the frame is taken.
        let tampered = jsons[3].replace("\"content\":\"e3\"", "\"content\":\"f3\"");
        let mut bad = entries.clone();
        bad[3].1 = &tampered;
        let verdict = validate(&message(good, frame(&bad)), &good, &auth, &relay, seen);
        assert!(matches!(&verdict, Verdict::Reject(r) if r.contains("event 4 of 5")), "{verdict:?}");
        assert!(seen.is_empty(), "nothing of a rejected frame is remembered");

        let verdict = validate(&message(good, frame(&entries)), &good, &auth, &relay, seen);
        assert_eq!(take(verdict), events);

        // The same events again (another publisher's frame), one of them new: only it is taken,
        // the others are skipped before parsing.
        let fresh = signed("new");
        let (fresh_id, fresh_json) = (fresh.id.to_bytes(), fresh.as_json());
        let mut again = entries.clone();
        again.insert(2, (&fresh_id, &fresh_json));
        let verdict = validate(&message(good, frame(&again)), &good, &auth, &relay, seen);
        assert_eq!(verdict.acceptance(), MessageAcceptance::Accept);
        let Verdict::Accept(checked) = verdict else { unreachable!() };
        assert_eq!(checked.iter().filter(|c| matches!(c, Checked::Seen)).count(), 5);
        assert!(matches!(&checked[2], Checked::Take(e) if e.event == fresh && e.json == fresh_json));
        // Only copies: valid, nothing to take, not forwarded.
        let verdict = validate(&message(good, frame(&entries[..2])), &good, &auth, &relay, seen);
        assert_eq!(verdict.acceptance(), MessageAcceptance::Ignore);
    }

    #[test]
    fn hostile_frames_fail_cleanly_before_allocating() {
        let id = [7u8; 32];
        let ok = frame(&[(&id, "{}"), (&id, "[]")]);
        assert_eq!(decode(&ok).unwrap(), [(&id, "{}"), (&id, "[]")]);
        assert_eq!(claimed_count(&ok), 2);
        let err = |data: &[u8]| decode(data).unwrap_err();
        assert!(err(&[]).contains("empty"));
        assert!(err(&[1, 0, 1]).contains("format 1"), "another version's frame says so");
        assert!(err(&[FORMAT, 0]).contains("header"));
        assert!(err(&[FORMAT, 0, 0]).contains("without events"));
        // A count over the cap is refused before anything is read or allocated.
        let mut over = vec![FORMAT];
        over.extend_from_slice(&(MAX_FRAME_EVENTS as u16 + 1).to_be_bytes());
        over.resize(3 + (MAX_FRAME_EVENTS + 1) * 40, 0);
        assert!(err(&over).contains("over the limit"));
        // A count the bytes cannot hold, a length beyond the frame, trailing bytes, bad UTF-8.
        assert!(err(&[FORMAT, 0xff, 0xff]).contains("over the limit"));
        assert!(err(&[FORMAT, 0, 200, 1, 2]).contains("holds"));
        let mut long = ok.clone();
        long[3 + 32..3 + 36].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(err(&long).contains("claims"));
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(err(&trailing).contains("after the last"));
        let mut count_high = ok.clone();
        count_high[2] = 3;
        assert!(decode(&count_high).is_err());
        let bad_utf8 = frame(&[(&id, "ab")]);
        let mut bad_utf8 = bad_utf8.clone();
        let last = bad_utf8.len() - 1;
        bad_utf8[last] = 0xff;
        assert!(err(&bad_utf8).contains("UTF-8"));
        assert!(max_frame_bytes(0) >= FRAME_TARGET_BYTES && max_frame_bytes(1 << 20) > 1 << 20);
    }
}
