//! Property tests of what federation peers send: GossipSub event messages
//! (`mirror::validate`), catch-up frames through the CBOR request-response codec the swarm
//! uses (same size limits), the responder (`sync::answer`) fed arbitrary negentropy messages,
//! and the initiator (`sync::catch_up`) talking to a hostile peer. No panic; nothing but valid,
//! asked-for, correctly signed events gets in; decoding stays within the configured sizes.
//!
//! Cases: `PROPTEST_CASES` (default below); long run:
//! `PROPTEST_CASES=100000 cargo test --release -p dephy-bridge --test prop_frames`.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dephy_bridge::authorize::Authorizer;
use dephy_bridge::network::{MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE};
use dephy_bridge::registry::{NodeEntry, StaticRegistry};
use dephy_bridge::sync::{self, Outbound, Requester, SyncRequest, SyncResponse};
use dephy_bridge::{Committing, Ingested, Inventory, RelayPort, mirror};
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

/// A relay that holds `stored` (raw JSON by id), accepts what its policy allows, and records
/// what it was handed.
struct MemRelay {
    stored: Vec<Event>,
    max_json: usize,
    submitted: Mutex<Vec<Event>>,
}

impl RelayPort for MemRelay {
    fn check(&self, _event: &Event, json_len: usize, _forwarder: &[u8; 32]) -> Result<(), String> {
        if json_len > self.max_json { Err("invalid: event too large".into()) } else { Ok(()) }
    }
    fn submit(&self, event: Event) -> BoxFuture<'static, Committing> {
        self.submitted.lock().unwrap().push(event);
        let committed: Committing = Box::pin(std::future::ready(Ingested::New));
        Box::pin(std::future::ready(committed))
    }
    fn inventory(&self, since: u64, until: u64) -> BoxFuture<'static, Result<Inventory, String>> {
        let items: Inventory = self
            .stored
            .iter()
            .filter(|e| (since..=until).contains(&e.created_at.as_secs()))
            .map(|e| (e.created_at.as_secs(), e.id.to_bytes()))
            .collect();
        Box::pin(async move { Ok(items) })
    }
    fn fetch(&self, ids: Vec<[u8; 32]>) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let found: Vec<String> =
            self.stored.iter().filter(|e| ids.contains(&e.id.to_bytes())).map(|e| e.as_json()).collect();
        Box::pin(async move { Ok(found) })
    }
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
        let relay: Arc<dyn RelayPort> =
            Arc::new(MemRelay { stored: Vec::new(), max_json: 4096, submitted: Mutex::new(Vec::new()) });
        Gossip { peer, authorizer, relay }
    })
}

proptest! {
    #![proptest_config(config(1000))]

    /// A gossip payload, valid or damaged: accepted only when it is exactly a valid signed
    /// event under its own id.
    #[test]
    fn gossip_payloads(event in event(), damage in ops(), raw in prop::option::weighted(0.2, prop::collection::vec(any::<u8>(), 0..200))) {
        let g = gossip();
        let json = event.as_json();
        let clean = mirror::encode(&event.id.to_bytes(), &json);
        let data = raw.unwrap_or_else(|| mutate(clean.clone(), &damage));
        let message = Message { source: Some(g.peer), data: data.clone(), sequence_number: Some(1), topic: TopicHash::from_raw("t") };
        match mirror::validate(&message, &g.peer, &g.authorizer, &g.relay) {
            mirror::Verdict::Accept(got) => {
                prop_assert_eq!(&data[..32], got.id.as_bytes());
                prop_assert!(got.verify().is_ok());
                if data == clean {
                    prop_assert_eq!(got, event);
                }
            }
            mirror::Verdict::Reject(reason) | mirror::Verdict::Ignore(reason) => {
                prop_assert!(data != clean || json.len() > 4096, "the clean payload was refused: {}", reason);
            }
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
            let proto = StreamProtocol::new("/dephy/test/sync/1.0.0");
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
        since in prop_oneof![Just(0u64), any::<u64>()],
        until in prop_oneof![Just(u64::MAX), any::<u64>()],
        fetch in prop::collection::vec(any::<[u8; 32]>(), 0..300),
    ) {
        runtime().block_on(async {
            let relay = Arc::new(MemRelay { stored: stored.clone(), max_json: 1 << 20, submitted: Mutex::new(Vec::new()) });
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
            match sync::answer(port.clone(), SyncRequest::Reconcile { since, until, msg }).await {
                SyncResponse::Reconcile { msg } => prop_assert!(msg.len() as u64 <= MAX_SYNC_RESPONSE),
                SyncResponse::Error { message } => prop_assert!(!message.is_empty()),
                other => prop_assert!(false, "Reconcile answered with {:?}", other),
            }
            let mut ids = fetch;
            ids.extend(stored.iter().map(|e| e.id.to_bytes()));
            let asked = ids.len();
            match sync::answer(port, SyncRequest::Fetch { ids }).await {
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
        (any::<u64>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..100))
            .prop_map(|(since, until, msg)| SyncRequest::Reconcile { since, until, msg }),
        prop::collection::vec(any::<[u8; 32]>(), 0..20).prop_map(|ids| SyncRequest::Fetch { ids }),
    ]
}

fn sync_response() -> impl Strategy<Value = SyncResponse> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..100).prop_map(|msg| SyncResponse::Reconcile { msg }),
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
        let proto = StreamProtocol::new("/dephy/test/sync/1.0.0");
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
        let big = SyncRequest::Reconcile { since: 0, until: 1, msg: vec![7; MAX_SYNC_REQUEST as usize] };
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
        let local = Arc::new(MemRelay { stored: ours, max_json: 1 << 20, submitted: Mutex::new(Vec::new()) });
        let peer_relay: Arc<dyn RelayPort> =
            Arc::new(MemRelay { stored: theirs.clone(), max_json: 1 << 20, submitted: Mutex::new(Vec::new()) });
        let (tx, mut rx) = mpsc::channel::<Outbound>(4);
        let peer_task = tokio::spawn(async move {
            let mut n = 0usize;
            while let Some(Outbound { request, reply, .. }) = rx.recv().await {
                let lie = lies.get(n % lies.len().max(1)).cloned().unwrap_or(Lie::Honest);
                n += 1;
                let honest = sync::answer(peer_relay.clone(), request).await;
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
        let result = sync::catch_up(peer, &Requester(tx), &port, 3600).await;
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
