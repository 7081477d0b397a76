//! Property tests of what federation peers send: GossipSub event frames (`mirror::decode`,
//! `mirror::validate`: hostile headers and lengths, damaged events inside frames), catch-up
//! frames through the CBOR request-response codec the swarm uses (same size limits), the
//! responder (`sync::Responder`) fed arbitrary negentropy
//! messages and slices, and the initiator (`sync::catch_up`) talking to a hostile peer. No
//! panic; nothing but valid, asked-for, correctly signed events gets in; decoding stays within
//! the configured sizes; and both sides stay within their bounds whatever the peer asks or
//! claims: no inventory over `sync_max_items`, nothing read outside the responder's window,
//! no negentropy frame over the limit, no more ids pending than one slice holds.
//!
//! Cases: `PROPTEST_CASES` (default below); long run:
//! `PROPTEST_CASES=100000 cargo test --release -p dephy-bridge --test prop_frames`.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dephy_bridge::authorize::Authorizer;
use dephy_bridge::network::{MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE};
use dephy_bridge::registry::{NodeEntry, StaticRegistry};
use dephy_bridge::seen::Seen;
use dephy_bridge::slice::Slice;
use dephy_bridge::sync::{self, Outbound, Requester, Responder, SyncLimits, SyncRequest, SyncResponse};
use dephy_bridge::{Committing, Ingested, Inventory, Received, RelayPort, mirror};
use futures_util::future::BoxFuture;
use libp2p::gossipsub::{Message, TopicHash};
use libp2p::request_response::Codec as _;
use libp2p::request_response::cbor::codec::Codec;
use libp2p::{PeerId, StreamProtocol};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use nostr::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use tokio::sync::mpsc;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// A relay that holds `stored` (raw JSON by id) and, for inventory only, `extra` keys;
/// accepts what its policy allows, and records what it was handed and every inventory read.
struct MemRelay {
    stored: Vec<Event>,
    extra: Mutex<Vec<(u64, [u8; 32])>>,
    max_json: usize,
    submitted: Mutex<Vec<Event>>,
    /// Every inventory read: the slice, the limit, how many items it returned.
    reads: Mutex<Vec<(Slice, usize, usize)>>,
}

impl MemRelay {
    fn new(stored: Vec<Event>) -> MemRelay {
        MemRelay {
            stored,
            extra: Mutex::new(Vec::new()),
            max_json: 1 << 20,
            submitted: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
        }
    }

    fn max_read(&self) -> usize {
        self.reads.lock().unwrap().iter().map(|r| r.2).max().unwrap_or(0)
    }
}

impl RelayPort for MemRelay {
    fn check(&self, _event: &Event, json_len: usize, _forwarder: &[u8; 32]) -> Result<(), String> {
        if json_len > self.max_json { Err("invalid: event too large".into()) } else { Ok(()) }
    }
    fn submit(&self, event: Received) -> BoxFuture<'static, Committing> {
        self.submitted.lock().unwrap().push(event.event);
        let committed: Committing = Box::pin(std::future::ready(Ingested::New));
        Box::pin(std::future::ready(committed))
    }
    fn inventory(&self, slice: Slice, limit: usize) -> BoxFuture<'static, Result<Inventory, String>> {
        let extra = self.extra.lock().unwrap();
        let items: Inventory = self
            .stored
            .iter()
            .map(|e| (e.created_at.as_secs(), e.id.to_bytes()))
            .chain(extra.iter().copied())
            .filter(|key| slice.contains(key))
            .take(limit)
            .collect();
        drop(extra);
        self.reads.lock().unwrap().push((slice, limit, items.len()));
        Box::pin(async move { Ok(items) })
    }
    fn fetch(&self, ids: Vec<[u8; 32]>) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let found: Vec<String> =
            self.stored.iter().filter(|e| ids.contains(&e.id.to_bytes())).map(|e| e.as_json()).collect();
        Box::pin(async move { Ok(found) })
    }
}

/// The peer a responder under test answers.
fn peer() -> PeerId {
    static PEER: OnceLock<PeerId> = OnceLock::new();
    *PEER.get_or_init(PeerId::random)
}

fn limits(max_items: usize) -> SyncLimits {
    SyncLimits { window_secs: 3600, max_items, sessions_per_peer: 2, max_sessions: 8 }
}

fn keys() -> &'static [Keys] {
    static KEYS: OnceLock<Vec<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| (0..3).map(|_| Keys::generate()).collect())
}

fn event() -> impl Strategy<Value = Event> {
    (0..keys().len(), any::<u16>(), ".{0,40}", 0u64..120).prop_map(|(k, kind, content, age)| {
        EventBuilder::new(Kind::from(kind), content)
            .custom_created_at(Timestamp::from(Timestamp::now().as_secs() - age))
            .sign_with_keys(&keys()[k])
            .unwrap()
    })
}

/// Byte-level damage.
fn mutate(mut data: Vec<u8>, ops: &[(u8, usize, u8)]) -> Vec<u8> {
    for (op, at, byte) in ops {
        let at = if data.is_empty() { 0 } else { at % data.len() };
        match op % 4 {
            0 if !data.is_empty() => data[at] ^= byte | 1,
            1 => data.truncate(at),
            2 => data.insert(at.min(data.len()), *byte),
            _ => {
                let end = (at + *byte as usize).min(data.len());
                let chunk = data[at.min(end)..end].to_vec();
                data.splice(end..end, chunk);
            }
        }
    }
    data
}

fn ops() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..4)
}

struct Gossip {
    peer: PeerId,
    authorizer: Arc<Authorizer>,
    relay: Arc<dyn RelayPort>,
}

fn gossip() -> &'static Gossip {
    static G: OnceLock<Gossip> = OnceLock::new();
    G.get_or_init(|| {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let wallet = dephy_bridge::identity::wallet_of(&peer).unwrap();
        let registry =
            Arc::new(StaticRegistry::new(vec![NodeEntry { wallet, domain: String::new(), online: 1, active: true }]));
        let (authorizer, _rx) = Authorizer::new(registry, Duration::from_secs(60));
        runtime().block_on(authorizer.refresh()).unwrap();
        let relay: Arc<dyn RelayPort> = Arc::new(MemRelay { max_json: 4096, ..MemRelay::new(Vec::new()) });
        Gossip { peer, authorizer, relay }
    })
}

proptest! {
    #![proptest_config(config(1000))]

    /// A gossip frame of one or more events, valid or damaged: accepted only when every event
    /// in it is a valid signed event under its own id; then exactly its events are handed on,
    /// in order, each taken or refused by the relay's policy on its own.
    #[test]
    fn gossip_frames(events in prop::collection::vec(event(), 1..6), damage in ops(), raw in prop::option::weighted(0.2, prop::collection::vec(any::<u8>(), 0..200))) {
        let g = gossip();
        let jsons: Vec<String> = events.iter().map(|e| e.as_json()).collect();
        let mut frame = mirror::FrameBuilder::new();
        for (event, json) in events.iter().zip(&jsons) {
            frame.push(&event.id.to_bytes(), json);
        }
        let clean = frame.finish();
        let data = raw.unwrap_or_else(|| mutate(clean.clone(), &damage));
        let message = Message { source: Some(g.peer), data: data.clone(), sequence_number: Some(1), topic: TopicHash::from_raw("t") };
        let mut seen = Seen::new(0);
        match mirror::validate(&message, &g.peer, &g.authorizer, &g.relay, &mut seen) {
            mirror::Verdict::Accept(checked) => {
                let entries = mirror::decode(&data).expect("an accepted frame decodes");
                prop_assert_eq!(entries.len(), checked.len());
                for ((id, json), c) in entries.iter().zip(&checked) {
                    match c {
                        mirror::Checked::Take(got) => {
                            prop_assert_eq!(&id[..], got.event.id.as_bytes());
                            prop_assert!(got.event.verify().is_ok());
                            prop_assert!(json.len() <= 4096);
                        }
                        mirror::Checked::Refused(_) => prop_assert!(json.len() > 4096),
                        mirror::Checked::Seen => prop_assert!(false, "nothing is remembered with capacity 0"),
                    }
                }
                if data == clean {
                    let taken: Vec<&Event> = checked.iter().filter_map(|c| match c { mirror::Checked::Take(e) => Some(&e.event), _ => None }).collect();
                    let expected: Vec<&Event> = events.iter().zip(&jsons).filter(|(_, j)| j.len() <= 4096).map(|(e, _)| e).collect();
                    prop_assert_eq!(taken, expected);
                }
            }
            mirror::Verdict::Reject(reason) | mirror::Verdict::Ignore(reason) => {
                prop_assert!(data != clean, "the clean frame was refused: {}", reason);
            }
        }
    }

    /// Frames whose header claims more events than the cap, or more than the bytes hold, are
    /// refused from the header alone (before any event is read or anything allocated for them).
    #[test]
    fn oversized_frame_claims_are_refused(count in 0u16.., body in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut data = vec![mirror::FORMAT];
        data.extend_from_slice(&count.to_be_bytes());
        data.extend_from_slice(&body);
        let result = mirror::decode(&data);
        if count == 0 || usize::from(count) > mirror::MAX_FRAME_EVENTS || usize::from(count) * 36 > body.len() {
            prop_assert!(result.is_err());
        }
        if let Ok(entries) = result {
            prop_assert_eq!(entries.len(), usize::from(count));
        }
    }

    /// The catch-up codec (as configured in the swarm): valid frames round-trip, damaged or
    /// arbitrary bytes fail cleanly.
    #[test]
    fn sync_codec_frames(
        request in sync_request(),
        response in sync_response(),
        damage in ops(),
        raw in prop::option::weighted(0.2, prop::collection::vec(any::<u8>(), 0..300)),
    ) {
        runtime().block_on(async {
            let mut codec = swarm_codec();
            let proto = StreamProtocol::new("/dephy/test/sync/2.0.0");
            let mut bytes = Vec::new();
            codec.write_request(&proto, &mut bytes, request.clone()).await.unwrap();
            let back = codec.read_request(&proto, &mut bytes.as_slice()).await.unwrap();
            prop_assert_eq!(format!("{back:?}"), format!("{request:?}"));
            let damaged = raw.clone().unwrap_or_else(|| mutate(bytes, &damage));
            let _ = codec.read_request(&proto, &mut damaged.as_slice()).await;

            let mut bytes = Vec::new();
            codec.write_response(&proto, &mut bytes, response.clone()).await.unwrap();
            let back = codec.read_response(&proto, &mut bytes.as_slice()).await.unwrap();
            prop_assert_eq!(format!("{back:?}"), format!("{response:?}"));
            let damaged = raw.unwrap_or_else(|| mutate(bytes, &damage));
            let _ = codec.read_response(&proto, &mut damaged.as_slice()).await;
            Ok(())
        })?;
    }

    /// The responder answers any Reconcile message (arbitrary or a damaged honest one) and
    /// any Fetch without panicking; Fetch answers only hold stored events.
    #[test]
    fn responder_answers_anything(
        stored in prop::collection::vec(event(), 0..30),
        honest in any::<bool>(),
        damage in ops(),
        raw in prop::collection::vec(any::<u8>(), 0..200),
        from in prop_oneof![Just((0u64, [0u8; 32])), any::<(u64, [u8; 32])>()],
        to in prop_oneof![Just((u64::MAX, [0xffu8; 32])), any::<(u64, [u8; 32])>()],
        max_items in 16usize..40,
        fetch in prop::collection::vec(any::<[u8; 32]>(), 0..300),
    ) {
        runtime().block_on(async {
            let relay = Arc::new(MemRelay::new(stored.clone()));
            let msg = if honest {
                let mut storage = NegentropyStorageVector::new();
                for e in stored.iter().step_by(2) {
                    storage.insert(e.created_at.as_secs(), Id::from_byte_array(e.id.to_bytes())).unwrap();
                }
                storage.seal().unwrap();
                let mut neg = Negentropy::owned(storage, 0).unwrap();
                mutate(neg.initiate().unwrap(), &damage)
            } else {
                raw
            };
            let port: Arc<dyn RelayPort> = relay.clone();
            let responder = Responder::new(port, limits(max_items));
            match responder.answer(peer(), SyncRequest::Reconcile { session: 1, slice: Slice { from, to }, msg }).await {
                SyncResponse::Reconcile { msg } => prop_assert!(msg.len() <= sync::MAX_FRAME_IN),
                SyncResponse::Split => prop_assert!(stored.len() > max_items),
                SyncResponse::Error { message } => prop_assert!(!message.is_empty()),
                other => prop_assert!(false, "Reconcile answered with {:?}", other),
            }
            let window = responder.window();
            for (slice, limit, _) in relay.reads.lock().unwrap().iter() {
                // (The window moves by a minute at most between the read and now.)
                prop_assert!(!slice.is_empty() && slice.from.0 + 60 >= window.from.0 && slice.to <= window.to,
                    "read outside the window {:?}: {:?}", window, slice);
                prop_assert_eq!(*limit, max_items + 1);
            }
            let mut ids = fetch;
            ids.extend(stored.iter().map(|e| e.id.to_bytes()));
            let asked = ids.len();
            match responder.answer(peer(), SyncRequest::Fetch { ids }).await {
                SyncResponse::Events { events } => {
                    prop_assert!(asked <= sync::FETCH_BATCH);
                    for json in events {
                        prop_assert!(stored.iter().any(|e| e.as_json() == json));
                    }
                }
                SyncResponse::Error { message } => prop_assert!(asked > sync::FETCH_BATCH, "{}", message),
                other => prop_assert!(false, "Fetch answered with {:?}", other),
            }
            Ok(())
        })?;
    }
}

fn sync_request() -> impl Strategy<Value = SyncRequest> {
    prop_oneof![
        (any::<(u64, [u8; 32])>(), any::<(u64, [u8; 32])>(), prop::collection::vec(any::<u8>(), 0..100))
            .prop_map(|(from, to, msg)| SyncRequest::Reconcile { session: 1, slice: Slice { from, to }, msg }),
        prop::collection::vec(any::<[u8; 32]>(), 0..20).prop_map(|ids| SyncRequest::Fetch { ids }),
    ]
}

fn sync_response() -> impl Strategy<Value = SyncResponse> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..100).prop_map(|msg| SyncResponse::Reconcile { msg }),
        Just(SyncResponse::Split),
        prop::collection::vec(any::<String>(), 0..5).prop_map(|events| SyncResponse::Events { events }),
        any::<String>().prop_map(|message| SyncResponse::Error { message }),
    ]
}

fn swarm_codec() -> Codec<SyncRequest, SyncResponse> {
    Codec::default().set_request_size_maximum(MAX_SYNC_REQUEST).set_response_size_maximum(MAX_SYNC_RESPONSE)
}

/// CBOR heads that claim enormous lengths with nothing behind them: decoding fails without
/// reserving the claimed size (a reservation of 2^60 bytes would abort the test process).
#[test]
fn claimed_lengths_are_not_allocated() {
    runtime().block_on(async {
        let proto = StreamProtocol::new("/dephy/test/sync/2.0.0");
        // Externally tagged enum: {"Fetch": {"ids": <array of claimed length>}} and friends.
        let huge = [0x1b, 0x10, 0, 0, 0, 0, 0, 0, 0]; // argument 2^60
        let heads: [(&str, &str, u8); 4] = [
            ("Fetch", "ids", 0x80),
            ("Reconcile", "msg", 0x40),
            ("Reconcile", "msg", 0x80),
            ("Events", "events", 0x80),
        ];
        for (variant, field, major) in heads {
            let mut frame = vec![0xa1, 0x60 | variant.len() as u8];
            frame.extend_from_slice(variant.as_bytes());
            frame.extend_from_slice(&[0xa1, 0x60 | field.len() as u8]);
            frame.extend_from_slice(field.as_bytes());
            frame.push(major | huge[0]);
            frame.extend_from_slice(&huge[1..]);
            frame.extend_from_slice(&[0; 16]);
            let mut codec = swarm_codec();
            let req = codec.read_request(&proto, &mut frame.as_slice()).await;
            let resp = codec.read_response(&proto, &mut frame.as_slice()).await;
            assert!(req.is_err() && resp.is_err(), "{variant}.{field} major {major:#x}: {req:?} {resp:?}");
        }
        // A frame over the size limit is cut at the limit and then fails to decode.
        let mut codec = swarm_codec();
        let big =
            SyncRequest::Reconcile { session: 1, slice: Slice::seconds(0, 1), msg: vec![7; MAX_SYNC_REQUEST as usize] };
        let mut bytes = Vec::new();
        codec.write_request(&proto, &mut bytes, big).await.unwrap();
        assert!(bytes.len() as u64 > MAX_SYNC_REQUEST);
        assert!(codec.read_request(&proto, &mut bytes.as_slice()).await.is_err());
    });
}

/// What a hostile catch-up peer answers.
#[derive(Debug, Clone)]
enum Lie {
    /// A damaged version of the honest answer.
    Damaged(Vec<(u8, usize, u8)>),
    /// Arbitrary bytes as a negentropy message.
    Garbage(Vec<u8>),
    /// Events nobody asked for, tampered ones, non-JSON.
    Unasked,
    /// The wrong kind of answer.
    Wrong,
    Honest,
}

fn lie() -> impl Strategy<Value = Lie> {
    prop_oneof![
        1 => ops().prop_map(Lie::Damaged),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Lie::Garbage),
        1 => Just(Lie::Unasked),
        1 => Just(Lie::Wrong),
        3 => Just(Lie::Honest),
    ]
}

/// Initiator against a hostile peer: terminates, and stores only asked-for valid events.
fn catch_up_case(ours: Vec<Event>, theirs: Vec<Event>, lies: Vec<Lie>, outsider: Event) -> Result<(), TestCaseError> {
    runtime().block_on(async move {
        let local = Arc::new(MemRelay::new(ours));
        let peer_relay: Arc<dyn RelayPort> = Arc::new(MemRelay::new(theirs.clone()));
        // Small slices: splits on both sides are part of what the hostile peer may disturb.
        let responder = Responder::new(peer_relay, limits(16));
        let (tx, mut rx) = mpsc::channel::<Outbound>(4);
        let peer_task = tokio::spawn(async move {
            let mut n = 0usize;
            while let Some(Outbound { request, reply, .. }) = rx.recv().await {
                let lie = lies.get(n % lies.len().max(1)).cloned().unwrap_or(Lie::Honest);
                n += 1;
                let honest = responder.answer(peer(), request).await;
                let answer = match (lie, honest) {
                    (Lie::Honest, h) => h,
                    (Lie::Damaged(d), SyncResponse::Reconcile { msg }) => {
                        SyncResponse::Reconcile { msg: mutate(msg, &d) }
                    }
                    (Lie::Garbage(g), SyncResponse::Reconcile { .. }) => SyncResponse::Reconcile { msg: g },
                    (Lie::Unasked, SyncResponse::Events { mut events }) => {
                        events.push(outsider.as_json());
                        if let Some(first) = events.first().cloned() {
                            events.push(first.replacen("\"content\":\"", "\"content\":\"x", 1));
                        }
                        events.push("{not json".into());
                        SyncResponse::Events { events }
                    }
                    (Lie::Wrong, SyncResponse::Reconcile { .. }) => SyncResponse::Events { events: vec![] },
                    (Lie::Wrong, _) => SyncResponse::Reconcile { msg: vec![0x61] },
                    (_, h) => h,
                };
                let _ = reply.send(Ok(answer));
            }
        });
        let port: Arc<dyn RelayPort> = local.clone();
        let peer = libp2p::identity::Keypair::generate_ed25519().public().to_peer_id();
        let result = sync::catch_up(peer, &Requester(tx), &port, &limits(16)).await;
        peer_task.await.unwrap();
        let submitted = local.submitted.lock().unwrap().clone();
        for e in &submitted {
            prop_assert!(e.verify().is_ok(), "an unverified event got in");
            prop_assert!(theirs.iter().any(|t| t == e), "an event the peer does not hold got in: {:?}", e.id);
        }
        if let Ok(report) = result {
            prop_assert_eq!(report.stored, submitted.len());
        }
        Ok(())
    })
}

#[test]
fn catch_up_against_a_hostile_peer() {
    let strategy = (
        prop::collection::vec(event(), 0..40),
        prop::collection::vec(event(), 0..40),
        prop::collection::vec(any::<bool>(), 0..40),
        prop::collection::vec(lie(), 0..4),
        event(),
    );
    let mut runner = TestRunner::new(config(200));
    runner
        .run(&strategy, |(ours, mut theirs, shared, lies, outsider)| {
            // Some events on both sides.
            for (e, s) in ours.iter().zip(shared) {
                if s {
                    theirs.push(e.clone());
                }
            }
            catch_up_case(ours, theirs, lies, outsider)
        })
        .unwrap();
}

fn fake_keys(n: usize, created_at: impl Fn(usize) -> u64) -> Vec<(u64, [u8; 32])> {
    (0..n)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            id[8..16].copy_from_slice(&(i as u64).to_be_bytes());
            (created_at(i), id)
        })
        .collect()
}

/// The opening message of an initiator holding `keys`.
fn opening(keys: &[(u64, [u8; 32])]) -> Vec<u8> {
    let mut storage = NegentropyStorageVector::new();
    for (t, id) in keys {
        storage.insert(*t, Id::from_byte_array(*id)).unwrap();
    }
    storage.seal().unwrap();
    Negentropy::owned(storage, 0).unwrap().initiate().unwrap()
}

/// A hostile initiator asks for everything (`0..u64::MAX`) from a responder holding many
/// events, most of them older than its window: the responder reads nothing outside its
/// window, never more than `max_items + 1` keys at once, answers `Split` while the slice is
/// too large, and its frames stay under the limit however much it would have to list.
#[test]
fn responder_bounds_a_huge_window_and_its_frames() {
    runtime().block_on(async {
        let now = Timestamp::now().as_secs();
        let relay = MemRelay::new(Vec::new());
        // 20,000 keys a day old (outside the one-hour window), 12,000 of the last minutes.
        *relay.extra.lock().unwrap() = fake_keys(20_000, |_| now - 86_400);
        relay.extra.lock().unwrap().extend(fake_keys(12_000, |i| now - (i as u64 % 600)).into_iter().map(
            |(t, mut id)| {
                id[31] = 1;
                (t, id)
            },
        ));
        let relay = Arc::new(relay);
        let port: Arc<dyn RelayPort> = relay.clone();

        let small = Responder::new(port.clone(), limits(1000));
        let everything = Slice::seconds(0, u64::MAX);
        let answer =
            small.answer(peer(), SyncRequest::Reconcile { session: 1, slice: everything, msg: opening(&[]) }).await;
        assert!(matches!(answer, SyncResponse::Split), "{answer:?}");
        let window = small.window();
        for (slice, limit, got) in relay.reads.lock().unwrap().iter() {
            assert!(slice.from >= window.from && slice.to <= window.to, "read outside the window: {slice:?}");
            assert!(*limit == 1001 && *got <= 1001, "read {got} of limit {limit}");
        }

        // A slice entirely outside the window: answered as if empty, without reading.
        relay.reads.lock().unwrap().clear();
        let old = Slice::seconds(0, now - 86_000);
        match small.answer(peer(), SyncRequest::Reconcile { session: 1, slice: old, msg: opening(&[]) }).await {
            SyncResponse::Reconcile { msg } => assert!(msg.len() < 64, "{} bytes", msg.len()),
            other => panic!("{other:?}"),
        }
        assert!(relay.reads.lock().unwrap().is_empty());

        // Large enough to hold the window (12,000 ids = 384 KB to list): frames are cut.
        relay.reads.lock().unwrap().clear();
        let large = Responder::new(port.clone(), limits(50_000));
        for msg in [opening(&[]), opening(&fake_keys(9_000, |i| now - 3 * (i as u64 % 900)))] {
            assert!(msg.len() as u64 <= MAX_SYNC_REQUEST);
            match large.answer(peer(), SyncRequest::Reconcile { session: 1, slice: everything, msg }).await {
                SyncResponse::Reconcile { msg } => {
                    assert!(msg.len() as u64 <= sync::FRAME_LIMIT, "frame of {} bytes", msg.len())
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(relay.max_read() <= 12_000);

        // The inventory is read once for the rounds of a session (cached), not every round.
        for _ in 0..5 {
            let _ =
                large.answer(peer(), SyncRequest::Reconcile { session: 1, slice: everything, msg: opening(&[]) }).await;
        }
        assert_eq!(relay.reads.lock().unwrap().len(), 1, "inventory re-read in later rounds");

        // Too many requests at a time from one peer, or in all: refused as rate-limited.
        let peer = PeerId::random();
        let held: Vec<_> = (0..2).map(|_| small.admit(peer).unwrap()).collect();
        assert!(small.admit(peer).err().unwrap().starts_with("rate-limited:"));
        let others: Vec<_> = (0..6).map(|_| small.admit(PeerId::random()).unwrap()).collect();
        assert!(small.admit(PeerId::random()).err().unwrap().starts_with("rate-limited:"));
        drop((held, others));
        assert!(small.admit(peer).is_ok());
    });
}

/// A negentropy message that claims `n` ids for the whole range (what an endless liar sends).
fn claim_ids(n: usize, seed: u64) -> Vec<u8> {
    let mut msg = vec![0x61, 0x00, 0x00, 0x02]; // version; bound: infinity, no id; IdList
    let mut count = Vec::new();
    let mut v = n as u64;
    loop {
        count.push((v & 0x7f) as u8);
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for (i, b) in count.iter().rev().enumerate() {
        msg.push(if i + 1 < count.len() { b | 0x80 } else { *b });
    }
    for (_, id) in fake_keys(n, |_| 0).iter().map(|(t, id)| {
        (t, {
            let mut id = *id;
            id[24..].copy_from_slice(&seed.to_be_bytes());
            id
        })
    }) {
        msg.extend_from_slice(&id);
    }
    msg
}

/// A hostile responder that claims endless ids, or asks to split forever: the initiator
/// never holds more ids than one slice may (`max_items`; more claimed, and it splits the
/// slice instead of fetching), and the session ends after a bounded number of requests.
#[test]
fn initiator_against_a_peer_claiming_endless_ids() {
    runtime().block_on(async {
        for (per_round, split_forever) in [(8_000usize, false), (300, false), (0, true)] {
            let local = Arc::new(MemRelay::new(Vec::new()));
            let port: Arc<dyn RelayPort> = local.clone();
            let (tx, mut rx) = mpsc::channel::<Outbound>(4);
            let peer = tokio::spawn(async move {
                let (mut requests, mut fetched_since_round, mut most_between_rounds, mut round) = (0usize, 0, 0, 0u64);
                while let Some(Outbound { request, reply, .. }) = rx.recv().await {
                    requests += 1;
                    let answer = match request {
                        SyncRequest::Reconcile { .. } if split_forever => SyncResponse::Split,
                        SyncRequest::Reconcile { .. } => {
                            most_between_rounds = most_between_rounds.max(fetched_since_round);
                            fetched_since_round = 0;
                            round += 1;
                            SyncResponse::Reconcile { msg: claim_ids(per_round, round) }
                        }
                        SyncRequest::Fetch { ids } => {
                            assert!(ids.len() <= sync::FETCH_BATCH);
                            fetched_since_round += ids.len();
                            SyncResponse::Events { events: vec![] }
                        }
                    };
                    let _ = reply.send(Ok(answer));
                }
                (requests, most_between_rounds.max(fetched_since_round))
            });
            let result = sync::catch_up(
                libp2p::identity::Keypair::generate_ed25519().public().to_peer_id(),
                &Requester(tx),
                &port,
                &limits(1000),
            )
            .await;
            let (requests, most_fetched) = peer.await.unwrap();
            assert!(most_fetched <= 1000, "{most_fetched} ids fetched for one slice");
            assert!(requests <= 2 * sync::MAX_SLICES, "{requests} requests");
            assert!(local.submitted.lock().unwrap().is_empty());
            match (per_round, result) {
                (8_000, Err(e)) => assert!(e.contains("single key"), "{e}"),
                (300, Ok(report)) => assert_eq!(report.needed, 300),
                (0, Err(e)) => assert!(e.contains("split"), "{e}"),
                (_, other) => panic!("{per_round} ids per round: {other:?}"),
            }
        }
    });
}

/// Honest peers with a small `max_items`: the window is split (by time, then by id within
/// one second) until every slice fits, and everything missing arrives; no inventory read
/// ever holds more than `max_items + 1` keys. Also when the responder allows larger slices
/// than the initiator (each node has its own `sync_max_items`).
#[test]
fn sliced_catch_up_brings_everything() {
    for responder_max in [32, 1000] {
        sliced_catch_up_case(responder_max);
    }
}

fn sliced_catch_up_case(responder_max: usize) {
    runtime().block_on(async {
        let keys = Keys::generate();
        let second = Timestamp::from(Timestamp::now().as_secs() - 30);
        let all: Vec<Event> = (0..400)
            .map(|i| {
                let at = if i < 300 { second } else { Timestamp::from(second.as_secs() - i as u64) };
                EventBuilder::new(Kind::from(1u16), format!("{i}")).custom_created_at(at).sign_with_keys(&keys).unwrap()
            })
            .collect();
        let local = Arc::new(MemRelay::new(all.iter().step_by(4).cloned().collect()));
        let remote = Arc::new(MemRelay::new(all.clone()));
        let remote_port: Arc<dyn RelayPort> = remote.clone();
        let responder = Responder::new(remote_port, limits(responder_max));
        let (tx, mut rx) = mpsc::channel::<Outbound>(4);
        tokio::spawn(async move {
            while let Some(Outbound { request, reply, .. }) = rx.recv().await {
                let _ = reply.send(Ok(responder.answer(peer(), request).await));
            }
        });
        let port: Arc<dyn RelayPort> = local.clone();
        let report = sync::catch_up(
            libp2p::identity::Keypair::generate_ed25519().public().to_peer_id(),
            &Requester(tx),
            &port,
            &limits(32),
        )
        .await
        .unwrap();
        let mut got: Vec<EventId> = local.submitted.lock().unwrap().iter().map(|e| e.id).collect();
        got.sort();
        let mut want: Vec<EventId> = all.iter().enumerate().filter(|(i, _)| i % 4 != 0).map(|(_, e)| e.id).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!((report.needed, report.stored), (300, 300));
        assert!(report.splits > 0 && report.slices > 400 / 32, "{report:?}");
        assert!(local.max_read() <= 33 && remote.max_read() <= responder_max + 1);
    });
}

/// Inventories are reused only within one session: a new session (a peer reconnecting a few
/// seconds later) sees the events stored since.
#[test]
fn a_new_session_sees_events_stored_since_the_last() {
    runtime().block_on(async {
        let relay = Arc::new(MemRelay::new(Vec::new()));
        let port: Arc<dyn RelayPort> = relay.clone();
        let responder = Responder::new(port, limits(100));
        let window = Slice::seconds(Timestamp::now().as_secs() - 600, Timestamp::now().as_secs() + 600);
        let need_after = |session: u64| {
            let responder = responder.clone();
            async move {
                let mut storage = NegentropyStorageVector::new();
                storage.seal().unwrap();
                let mut neg = Negentropy::owned(storage, 0).unwrap();
                let msg = neg.initiate().unwrap();
                let SyncResponse::Reconcile { msg } =
                    responder.answer(peer(), SyncRequest::Reconcile { session, slice: window, msg }).await
                else {
                    panic!("no Reconcile answer")
                };
                let (mut have, mut need) = (Vec::new(), Vec::new());
                neg.reconcile_with_ids(&msg, &mut have, &mut need).unwrap();
                need.len()
            }
        };
        assert_eq!(need_after(1).await, 0);
        relay.extra.lock().unwrap().extend(fake_keys(3, |_| Timestamp::now().as_secs() - 5));
        assert_eq!(need_after(2).await, 3, "a new session answered from an older session's inventory");
    });
}
