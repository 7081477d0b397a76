//! Controller mode against the real relay (in-process, over WebSocket): one controller key
//! driving two machines, its Status events (signed by the controller, `p` = machine) recovered
//! after a restart with DePHY's recovery query (and the sessions' users from their Requests);
//! and machines added and removed at runtime with
//! the client's filters replaced on the live connection (and kept across a reconnect).

mod common;

use common::nostr::{Event, EventId, Keys, PublicKey, Timestamp};
use common::*;
use dephy_device_sdk::client::cursor::Cursor;
use dephy_device_sdk::event::{self, ParsedEvent};
use dephy_device_sdk::message::{Message, Reason, Status};
use dephy_device_sdk::{Client, ClientConfig, Controller, Decision, Hooks, Received};

struct Accept;

impl Hooks for Accept {
    async fn eligible(&mut self, _: &ParsedEvent, _: &str) -> Decision {
        Decision::Accept
    }
    fn actuate(&mut self, _: &PublicKey, _: Status, _: EventId) {}
}

fn unique_session(name: &str) -> String {
    format!("{name}-{}", Keys::generate().public_key().to_hex().split_at(12).0)
}

async fn publisher() -> Client {
    let dir = tempfile::tempdir().unwrap().keep();
    Client::start(ClientConfig::new([relay_url()], dir)).unwrap()
}

fn start(user: &Keys, session: &str, machine: &PublicKey, payload: &str) -> Event {
    event::request(user, session, machine, Status::Working, Reason::UserRequest, None, payload)
}

/// The next Request the client receives (skipping the Status events the same filter matches).
async fn next_request(client: &mut Client) -> ParsedEvent {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(Received { event, .. }) = client.recv_timeout(left).await else {
            panic!("no request within {TIMEOUT:?}")
        };
        let parsed = event::parse(&event).unwrap();
        if matches!(parsed.message, Message::Request { .. }) {
            return parsed;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_status_recovered_after_restart() {
    let session = unique_session("ctl");
    let controller_keys = Keys::generate();
    let (m1, m2) = (Keys::generate().public_key(), Keys::generate().public_key());
    let user = Keys::generate();
    let publisher = publisher().await;
    let now = Timestamp::now().as_secs();

    // Older history: m2 was reset 10 s ago; a stranger's newer Status for m1 must be ignored.
    let old = event::builder(
        &session,
        &m2,
        &Message::Status {
            status: Status::Available,
            reason: Reason::Reset,
            initial_request: EventId::all_zeros(),
            payload: String::new(),
        },
    )
    .custom_created_at(Timestamp::from(now - 10))
    .sign_with_keys(&controller_keys)
    .unwrap();
    publisher.publish_and_wait(&old, TIMEOUT).await.unwrap();

    let (r1, r2) = {
        let dir = tempfile::tempdir().unwrap();
        let mut controller = Controller::for_machines(controller_keys.clone(), &session, [m1, m2], vec![], Accept);
        let mut client =
            subscriber(&relay_url(), dir.path(), controller.requests_filters(Timestamp::from(now - 5))).await;
        let r1 = start(&user, &session, &m1, "pay-m1");
        let r2 = start(&user, &session, &m2, "pay-m2");
        publisher.publish_and_wait(&r1, TIMEOUT).await.unwrap();
        publisher.publish_and_wait(&r2, TIMEOUT).await.unwrap();
        for _ in 0..2 {
            let request = next_request(&mut client).await;
            let status = controller.handle(&request).await.expect("accepted");
            client.publish_and_wait(&status, TIMEOUT).await.unwrap();
        }
        (r1.id, r2.id)
        // The controller and its client stop here.
    };
    let forged = event::status_for(&Keys::generate(), &session, &m1, Status::Available, Reason::Reset, r1, "");
    publisher.publish_and_wait(&forged, TIMEOUT).await.unwrap();

    // Restart: a new controller with the same key, DePHY's recovery query (one filter per machine).
    let mut controller = Controller::for_machines(controller_keys.clone(), &session, [m1, m2], vec![], Accept);
    let filters = controller.recovery_filters();
    let value = serde_json::to_value(&filters[0]).unwrap();
    assert_eq!(
        (value["limit"].as_u64(), &value["authors"]),
        (Some(1), &serde_json::json!([controller_keys.public_key().to_hex()]))
    );
    let last = publisher.query(filters, TIMEOUT).await.unwrap();
    assert_eq!(last.len(), 2, "one newest Status per machine: {last:?}");
    let mut found = controller.recover(&last);
    found.sort();
    let mut both = vec![m1, m2];
    both.sort();
    assert_eq!(found, both);
    assert_eq!((controller.status(&m1), controller.current_request(&m1)), (Some(Status::Working), Some(r1)));
    assert_eq!((controller.status(&m2), controller.current_request(&m2)), (Some(Status::Working), Some(r2)));
    assert_eq!(controller.state(&m2).unwrap().session.as_ref().unwrap().payload, "pay-m2");
    // The sessions' users, from the Requests that started them.
    let requests = publisher.query(vec![controller.session_requests_filter().unwrap()], TIMEOUT).await.unwrap();
    assert_eq!(controller.recover_users(&requests), 2);
    assert_eq!(controller.state(&m1).unwrap().session.as_ref().unwrap().user, Some(user.public_key()));
    assert!(controller.session_requests_filter().is_none());
    let user_stop = event::request(&user, &session, &m1, Status::Available, Reason::UserRequest, Some(r1), "");
    let stopped = event::parse(&controller.handle(&event::parse(&user_stop).unwrap()).await.unwrap()).unwrap();
    assert!(
        matches!(stopped.message, Message::Status { status: Status::Available, ref payload, .. } if payload == "pay-m1")
    );

    // The sessions go on: the final Status carries each session's Request payload.
    let done = event::parse(&controller.finish(&m2).unwrap()).unwrap();
    assert_eq!(done.author, controller_keys.public_key());
    assert_eq!(
        done.message,
        Message::Status {
            status: Status::Available,
            reason: Reason::UserBehaviour,
            initial_request: r2,
            payload: "pay-m2".into()
        }
    );
    assert_eq!(controller.status(&m1), Some(Status::Available));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_added_and_removed_at_runtime() {
    runtime_filters(false).await;
}

/// The same on a relay used without the arrival-sequence cursor (`since` with overlap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_added_and_removed_at_runtime_without_the_cursor() {
    runtime_filters(true).await;
}

async fn runtime_filters(since_mode: bool) {
    let session = unique_session("runtime");
    let controller_keys = Keys::generate();
    let (m1, m2) = (Keys::generate().public_key(), Keys::generate().public_key());
    let user = Keys::generate();
    let publisher = publisher().await;
    let proxy = Proxy::new().await;
    let since = Timestamp::from(Timestamp::now().as_secs() - 5);
    let dir = tempfile::tempdir().unwrap();
    if since_mode {
        Cursor::open(dir.path()).unwrap().set_no_cursor(&proxy.url()).unwrap();
    }
    let mut controller = Controller::for_machines(controller_keys, &session, [m1], vec![], Accept);
    let mut client = subscriber(&proxy.url(), dir.path(), controller.requests_filters(since)).await;

    // m2 is not driven yet: its request is not delivered; m1's, published after it, is.
    let early_m2 = start(&user, &session, &m2, "early");
    let first_m1 = start(&user, &session, &m1, "m1-a");
    publisher.publish_and_wait(&early_m2, TIMEOUT).await.unwrap();
    publisher.publish_and_wait(&first_m1, TIMEOUT).await.unwrap();
    let got = client.recv_timeout(TIMEOUT).await.expect("m1's request");
    assert_eq!(got.event.id, first_m1.id);
    assert_eq!(got.seq.is_some(), !since_mode);

    // Add m2 at runtime: its requests arrive on the same client, without a restart. The
    // added filter resumes from the client's position: with the cursor, after the last event
    // received, so the earlier request is not replayed; with `since`, from the newest
    // created_at received minus the overlap, so it is (its filter's own `since` bounds that).
    assert!(controller.add_machine(m2));
    client.set_filters(controller.requests_filters(since), TIMEOUT).await.unwrap();
    assert_eq!(client.filters().len(), 1);
    if since_mode {
        assert_eq!(next_request(&mut client).await.id, early_m2.id);
    }
    let r2 = start(&user, &session, &m2, "m2-a");
    publisher.publish_and_wait(&r2, TIMEOUT).await.unwrap();
    let got = next_request(&mut client).await;
    assert_eq!(got.id, r2.id);
    let working = controller.handle(&got).await.unwrap();
    client.publish_and_wait(&working, TIMEOUT).await.unwrap();

    // Remove m1: a request to m1 published after that is not delivered, while one to m2
    // published after it is (so it would have come first).
    controller.remove_machine(&m1).unwrap();
    client.set_filters(controller.requests_filters(since), TIMEOUT).await.unwrap();
    let late_m1 = start(&user, &session, &m1, "m1-late");
    let stop_m2 = event::request(&user, &session, &m2, Status::Available, Reason::UserRequest, Some(r2.id), "");
    publisher.publish_and_wait(&late_m1, TIMEOUT).await.unwrap();
    publisher.publish_and_wait(&stop_m2, TIMEOUT).await.unwrap();
    let got = next_request(&mut client).await;
    assert_eq!(got.id, stop_m2.id, "the removed machine's request was delivered");
    let stopped = event::parse(&controller.handle(&got).await.unwrap()).unwrap();
    assert!(
        matches!(stopped.message, Message::Status { status: Status::Available, ref payload, .. } if payload == "m2-a")
    );

    // The new filter set is kept across a reconnect: while the connection is down, a request
    // to m1 then one to m2 are published; after reconnecting only m2's arrives.
    proxy.down().await;
    let offline_m1 = start(&user, &session, &m1, "m1-offline");
    let offline_m2 = start(&user, &session, &m2, "m2-offline");
    publisher.publish_and_wait(&offline_m1, TIMEOUT).await.unwrap();
    publisher.publish_and_wait(&offline_m2, TIMEOUT).await.unwrap();
    proxy.up().await;
    assert_eq!(next_request(&mut client).await.id, offline_m2.id);
}
