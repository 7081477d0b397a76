//! The relay client against the real relay (in-process, over WebSocket): subscribe then publish,
//! the on-disk outbox across an outage and a restart, resuming after a disconnect and after a
//! restart without loss or duplicates (with the arrival-sequence cursor and with the
//! since-with-overlap fallback), state recovery by query; and a `wss://` relay behind
//! TLS with a private root certificate.

mod common;

use std::time::Duration;

use common::*;
use dephy_device_sdk::client::cursor::Cursor;
use dephy_device_sdk::event;
use dephy_device_sdk::message::{Message, Reason, Status};
use dephy_device_sdk::nostr::{Alphabet, EventId, Filter, Keys, Kind, SingleLetterTag, Timestamp};
use dephy_device_sdk::{Client, ClientConfig};

const QUIET: Duration = Duration::from_millis(700);

fn session_filter(session: &str) -> Filter {
    Filter::new().kind(Kind::from(1573)).custom_tag(SingleLetterTag::lowercase(Alphabet::S), session)
}

fn unique_session(name: &str) -> String {
    format!("{name}-{}", Keys::generate().public_key().to_hex().split_at(12).0)
}

/// Signs `n` transaction events in `session` numbered from `from`.
fn events(keys: &Keys, session: &str, from: i64, n: i64) -> Vec<dephy_device_sdk::nostr::Event> {
    (from..from + n).map(|i| event::transaction(keys, session, &keys.public_key(), "user", i)).collect()
}

fn tokens(received: &[dephy_device_sdk::Received]) -> Vec<i64> {
    received
        .iter()
        .map(|r| match event::parse(&r.event).unwrap().message {
            Message::Transaction { tokens, .. } => tokens,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

async fn publisher() -> Client {
    let dir = tempfile::tempdir().unwrap().keep();
    Client::start(ClientConfig::new([relay_url()], dir)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_subscribe() {
    let session = unique_session("hello");
    let dir = tempfile::tempdir().unwrap();
    let mut sub = subscriber(&relay_url(), dir.path(), vec![session_filter(&session)]).await;
    let keys = Keys::generate();
    let publisher = publisher().await;
    for e in events(&keys, &session, 1, 3) {
        publisher.publish_and_wait(&e, TIMEOUT).await.expect("the relay accepts the event");
    }
    assert_eq!(publisher.outbox_len(), 0);
    let got = recv_exactly(&mut sub, 3, QUIET).await;
    assert_eq!(tokens(&got), vec![1, 2, 3]);
    assert!(got.iter().all(|r| r.seq.is_some()), "the relay's cursor gives every event a seq");

    // An invalid event is refused for good with the relay's reason.
    let mut bad = events(&keys, &session, 9, 1).remove(0);
    bad.content = "tampered".into();
    let err = publisher.publish_and_wait(&bad, TIMEOUT).await.unwrap_err();
    assert!(err.to_string().contains("invalid"), "{err}");
    assert_eq!(publisher.outbox_len(), 0, "a refused event leaves the outbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_delivers_after_outage_and_restart() {
    let session = unique_session("outbox");
    let proxy = Proxy::new().await;
    proxy.down().await;
    let state = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let offline = events(&keys, &session, 1, 2);
    {
        // Offline: the events are signed and queued on disk, then the process "stops".
        let client = Client::start(ClientConfig::new([proxy.url()], state.path())).unwrap();
        for e in &offline {
            client.publish(e).unwrap();
        }
        assert_eq!(client.outbox_len(), 2);
    }
    assert_eq!(std::fs::read_dir(state.path().join("outbox")).unwrap().count(), 2);

    proxy.up().await;
    let mut config = ClientConfig::new([proxy.url()], state.path());
    config.backoff_max = Duration::from_millis(300);
    let client = Client::start(config).unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while client.outbox_len() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the outbox was not delivered within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = publisher().await.query(vec![session_filter(&session)], TIMEOUT).await.unwrap();
    let mut ids: Vec<EventId> = stored.iter().map(|e| e.id).collect();
    ids.sort();
    let mut expected: Vec<EventId> = offline.iter().map(|e| e.id).collect();
    expected.sort();
    assert_eq!(ids, expected, "the relay stores exactly the events signed offline");
}

/// Disconnect, events while away, reconnect; then a restart with events while stopped.
async fn resume_scenario(force_since_mode: bool) {
    let session = unique_session(if force_since_mode { "since" } else { "cursor" });
    let proxy = Proxy::new().await;
    let state = tempfile::tempdir().unwrap();
    if force_since_mode {
        Cursor::open(state.path()).unwrap().set_no_cursor(&proxy.url()).unwrap();
    }
    let keys = Keys::generate();
    let publisher = publisher().await;
    let publish = |from, n| {
        let list = events(&keys, &session, from, n);
        let publisher = &publisher;
        async move {
            for e in list {
                publisher.publish_and_wait(&e, TIMEOUT).await.unwrap();
            }
        }
    };
    let filters = vec![session_filter(&session)];

    let mut sub = subscriber(&proxy.url(), state.path(), filters.clone()).await;
    publish(1, 3).await;
    assert_eq!(tokens(&recv_exactly(&mut sub, 3, QUIET).await), vec![1, 2, 3]);

    proxy.down().await;
    publish(4, 3).await;
    proxy.up().await;
    let got = recv_exactly(&mut sub, 3, QUIET).await;
    let mut t = tokens(&got);
    t.sort();
    assert_eq!(t, vec![4, 5, 6], "after a reconnect: exactly the events published while away");
    assert_eq!(got.iter().all(|r| r.seq.is_some()), !force_since_mode);
    drop(sub);

    publish(7, 2).await;
    let mut sub = subscriber(&proxy.url(), state.path(), filters).await;
    let mut t = tokens(&recv_exactly(&mut sub, 2, QUIET).await);
    t.sort();
    assert_eq!(t, vec![7, 8], "after a restart: exactly the events published while stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_with_the_arrival_cursor() {
    resume_scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_with_since_overlap_and_dedup() {
    resume_scenario(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_pages_through_the_cursor() {
    let session = unique_session("pages");
    let keys = Keys::generate();
    let publisher = publisher().await;
    for e in events(&keys, &session, 1, 7) {
        publisher.publish_and_wait(&e, TIMEOUT).await.unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let mut config = ClientConfig::new([relay_url()], state.path()).subscribe([session_filter(&session)]);
    config.page_limit = 3;
    let mut sub = Client::start(config).unwrap();
    assert_eq!(tokens(&recv_exactly(&mut sub, 7, QUIET).await), (1..=7).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_recovers_the_last_state() {
    let session = unique_session("recover");
    let machine = Keys::generate();
    let publisher = publisher().await;
    let now = Timestamp::now().as_secs();
    let first = event::builder(
        &session,
        &machine.public_key(),
        &Message::Status {
            status: Status::Available,
            reason: Reason::Reset,
            initial_request: EventId::all_zeros(),
            payload: String::new(),
        },
    )
    .custom_created_at(Timestamp::from(now - 10))
    .sign_with_keys(&machine)
    .unwrap();
    let request_id = EventId::from_byte_array([5; 32]);
    let mut second = event::builder(
        &session,
        &machine.public_key(),
        &Message::Status {
            status: Status::Working,
            reason: Reason::UserRequest,
            initial_request: request_id,
            payload: String::new(),
        },
    );
    second = second.custom_created_at(Timestamp::from(now - 5));
    let second = second.sign_with_keys(&machine).unwrap();
    publisher.publish_and_wait(&first, TIMEOUT).await.unwrap();
    publisher.publish_and_wait(&second, TIMEOUT).await.unwrap();

    struct Nothing;
    impl dephy_device_sdk::Hooks for Nothing {
        async fn eligible(&mut self, _: &event::ParsedEvent, _: &str) -> dephy_device_sdk::Decision {
            dephy_device_sdk::Decision::Refuse("test".into())
        }
        fn actuate(&mut self, _: &nostr::PublicKey, _: Status, _: EventId) {}
    }
    let m = machine.public_key();
    let mut controller = dephy_device_sdk::Controller::new(machine, &session, vec![], Nothing);
    let last = publisher.query(controller.recovery_filters(), TIMEOUT).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(controller.recover(&last), vec![m]);
    assert_eq!((controller.status(&m), controller.current_request(&m)), (Some(Status::Working), Some(request_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inclusion_proof_of_own_event() {
    let keys = Keys::generate();
    let publisher = publisher().await;
    let e = events(&keys, &unique_session("proof"), 1, 1).remove(0);
    publisher.publish_and_wait(&e, TIMEOUT).await.unwrap();
    let url = relay_url();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let included = loop {
        match dephy_device_sdk::proof::verify_event(&url, None, &e.id).await {
            Ok(included) => break included,
            Err(err) => {
                assert!(tokio::time::Instant::now() < deadline, "no verifiable proof within {TIMEOUT:?}: {err}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    assert!(included.leaf_index < included.checkpoint.tree_size);
    let relay_key = dephy_device_sdk::proof::relay_pubkey(&url).await.unwrap();
    assert_eq!(included.relay_pubkey, relay_key);
    // A checkpoint signed by another key is refused.
    let err =
        dephy_device_sdk::proof::verify_event(&url, Some(Keys::generate().public_key()), &e.id).await.unwrap_err();
    assert!(matches!(err, dephy_device_sdk::proof::ProofError::Checkpoint(_)), "{err}");
    // An event that is not in the log has no proof.
    let err = dephy_device_sdk::proof::verify_event(&url, None, &EventId::from_byte_array([1; 32])).await.unwrap_err();
    assert!(matches!(err, dephy_device_sdk::proof::ProofError::Status { status: 404, .. }), "{err}");
}

/// A TLS terminator on 127.0.0.1 in front of the relay, with a self-signed certificate for
/// 127.0.0.1; returns its `wss://` URL and the certificate's PEM file.
async fn tls_front(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use tokio_rustls::rustls;
    let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let pem = dir.join("relay-ca.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let relay = relay_port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", relay)).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    (url, pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_relay_with_a_private_root_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (url, pem) = tls_front(dir.path()).await;
    let session = unique_session("wss");

    // Trusting the relay's CA: subscribe, publish and receive over TLS.
    let mut config =
        ClientConfig::new([url.clone()], dir.path().join("trusting")).subscribe([session_filter(&session)]);
    config.root_certificates = vec![pem.clone()];
    let mut client = Client::start(config).unwrap();
    client.wait_subscribed(TIMEOUT).await.expect("subscribed over wss://");
    let keys = Keys::generate();
    let e = events(&keys, &session, 1, 1).remove(0);
    client.publish_and_wait(&e, TIMEOUT).await.expect("accepted over wss://");
    let got = recv_exactly(&mut client, 1, QUIET).await;
    assert_eq!(got[0].event.id, e.id);

    // Without it the certificate is refused: the client never subscribes (it keeps retrying).
    let mut config = ClientConfig::new([url], dir.path().join("default-roots")).subscribe([session_filter(&session)]);
    config.backoff_max = Duration::from_millis(500);
    let untrusting = Client::start(config).unwrap();
    let err = untrusting.wait_subscribed(Duration::from_secs(3)).await.unwrap_err();
    assert!(matches!(err, dephy_device_sdk::ClientError::Timeout(_)), "{err}");

    // A root certificate file that is missing or holds no certificate is a clear error at start.
    for (path, expect) in [(dir.path().join("missing.pem"), "missing.pem"), (dir.path().join("empty.pem"), "no PEM")] {
        if expect == "no PEM" {
            std::fs::write(&path, "not a certificate\n").unwrap();
        }
        let mut config = ClientConfig::new([relay_url()], dir.path().join("bad"));
        config.root_certificates = vec![path];
        let err = Client::start(config).err().expect("a bad root certificate file is refused");
        assert!(matches!(err, dephy_device_sdk::ClientError::Tls { .. }) && err.to_string().contains(expect), "{err}");
    }
}
