//! Unit tests of the controller: single-device and multi-machine handling, payload copying,
//! LockFailed from the settlement key vs anyone else, recovery, the two-phase check.

use super::*;
use crate::event::{parse, request};

#[derive(Default)]
struct Device {
    refuse: Option<String>,
    actuated: Vec<(PublicKey, Status, EventId)>,
}

impl Hooks for Device {
    async fn eligible(&mut self, _: &ParsedEvent, _: &str) -> Decision {
        // Yield once, as a real (RPC) check would.
        tokio::task::yield_now().await;
        match &self.refuse {
            Some(why) => Decision::Refuse(why.clone()),
            None => Decision::Accept,
        }
    }
    fn actuate(&mut self, machine: &PublicKey, status: Status, initial_request: EventId) {
        self.actuated.push((*machine, status, initial_request));
    }
}

const S: &str = "dephy-decharge-controller";

fn status_of(event: &Event) -> (PublicKey, PublicKey, Message) {
    let p = parse(event).unwrap();
    (p.author, p.machine, p.message)
}

#[tokio::test]
async fn single_device_request_working_finish_available() {
    let machine = Keys::generate();
    let (user, other, admin) = (Keys::generate(), Keys::generate(), Keys::generate());
    let mut c = Controller::new(machine.clone(), S, vec![admin.public_key()], Device::default());
    let m = machine.public_key();

    let start = parse(&request(&user, S, &m, Status::Working, Reason::UserRequest, None, "pay-1")).unwrap();
    let working = c.handle(&start).await.unwrap();
    assert_eq!(
        status_of(&working),
        (
            m,
            m,
            Message::Status {
                status: Status::Working,
                reason: Reason::UserRequest,
                initial_request: start.id,
                payload: "pay-1".into()
            }
        )
    );
    assert_eq!(c.status(&m), Some(Status::Working));

    let second = parse(&request(&other, S, &m, Status::Working, Reason::UserRequest, None, "")).unwrap();
    assert_eq!(c.handle(&second).await, Err(ControllerError::Busy(start.id)));
    let stop_by_other =
        parse(&request(&other, S, &m, Status::Available, Reason::UserRequest, Some(start.id), "")).unwrap();
    assert_eq!(c.handle(&stop_by_other).await, Err(ControllerError::NotSessionUser));
    let stop_wrong =
        parse(&request(&user, S, &m, Status::Available, Reason::UserRequest, Some(second.id), "")).unwrap();
    assert!(matches!(c.handle(&stop_wrong).await, Err(ControllerError::WrongSession { .. })));
    let user_admin_reason =
        parse(&request(&user, S, &m, Status::Available, Reason::Reset, Some(start.id), "")).unwrap();
    assert_eq!(c.handle(&user_admin_reason).await, Err(ControllerError::AdminOnly(Reason::Reset)));

    // The final Available Status carries the session's Request payload, not the device's info.
    let done = c.finish(&m).unwrap();
    assert_eq!(
        status_of(&done).2,
        Message::Status {
            status: Status::Available,
            reason: Reason::UserBehaviour,
            initial_request: start.id,
            payload: "pay-1".into()
        }
    );
    assert_eq!(c.hooks.actuated, vec![(m, Status::Working, start.id), (m, Status::Available, start.id)]);
    assert!(c.finish(&m).is_none());

    // An admin may stop someone else's session; the user may stop their own.
    let again = parse(&request(&user, S, &m, Status::Working, Reason::UserRequest, None, "pay-2")).unwrap();
    c.handle(&again).await.unwrap();
    let admin_stop =
        parse(&request(&admin, S, &m, Status::Available, Reason::AdminRequest, Some(again.id), "")).unwrap();
    let stopped = c.handle(&admin_stop).await.unwrap();
    assert!(matches!(
        status_of(&stopped).2,
        Message::Status { status: Status::Available, reason: Reason::AdminRequest, ref payload, .. } if payload == "pay-2"
    ));
    let third = parse(&request(&user, S, &m, Status::Working, Reason::UserRequest, None, "pay-3")).unwrap();
    c.handle(&third).await.unwrap();
    let user_stop = parse(&request(&user, S, &m, Status::Available, Reason::UserRequest, Some(third.id), "")).unwrap();
    c.handle(&user_stop).await.unwrap();
    assert_eq!(c.status(&m), Some(Status::Available));
    let again_stop = parse(&request(&user, S, &m, Status::Available, Reason::UserRequest, Some(third.id), "")).unwrap();
    assert_eq!(c.handle(&again_stop).await, Err(ControllerError::AlreadyAvailable));
}

#[tokio::test]
async fn one_controller_several_machines() {
    let controller = Keys::generate();
    let (m1, m2, m3) = (Keys::generate().public_key(), Keys::generate().public_key(), Keys::generate().public_key());
    let user = Keys::generate();
    let mut c = Controller::for_machines(controller.clone(), S, [m1, m2], vec![], Device::default());
    assert_eq!(c.machines().len(), 2);

    let r1 = parse(&request(&user, S, &m1, Status::Working, Reason::UserRequest, None, "p1")).unwrap();
    let r2 = parse(&request(&user, S, &m2, Status::Working, Reason::UserRequest, None, "p2")).unwrap();
    let s1 = c.handle(&r1).await.unwrap();
    let s2 = c.handle(&r2).await.unwrap();
    // Signed by the controller, p-tagged with each machine, each with its own Request's payload.
    let (a1, p1, msg1) = status_of(&s1);
    let (a2, p2, msg2) = status_of(&s2);
    assert_eq!((a1, p1, a2, p2), (controller.public_key(), m1, controller.public_key(), m2));
    assert!(
        matches!(msg1, Message::Status { ref payload, initial_request, .. } if payload == "p1" && initial_request == r1.id)
    );
    assert!(
        matches!(msg2, Message::Status { ref payload, initial_request, .. } if payload == "p2" && initial_request == r2.id)
    );
    assert_eq!((c.current_request(&m1), c.current_request(&m2)), (Some(r1.id), Some(r2.id)));

    // A machine not driven is refused; added at runtime, it is served; removed, refused again.
    let r3 = parse(&request(&user, S, &m3, Status::Working, Reason::UserRequest, None, "p3")).unwrap();
    assert_eq!(c.handle(&r3).await, Err(ControllerError::OtherMachine(m3)));
    assert!(c.add_machine(m3));
    assert!(!c.add_machine(m3));
    assert_eq!(c.requests_filters(Timestamp::from(0))[0].generic_tags.values().flatten().count(), 4);
    c.handle(&r3).await.unwrap();
    let removed = c.remove_machine(&m2).unwrap();
    assert_eq!(removed.session.unwrap().request, r2.id);
    let stop2 = parse(&request(&user, S, &m2, Status::Available, Reason::UserRequest, Some(r2.id), "")).unwrap();
    assert_eq!(c.handle(&stop2).await, Err(ControllerError::OtherMachine(m2)));
    assert_eq!(c.recovery_filters().len(), 2);

    // Finishing one machine leaves the others Working.
    c.finish(&m1).unwrap();
    assert_eq!((c.status(&m1), c.status(&m3)), (Some(Status::Available), Some(Status::Working)));
    assert!(c.finish(&m2).is_none());
}

#[tokio::test]
async fn lock_failed_only_from_the_settlement_key() {
    let controller = Keys::generate();
    let m = Keys::generate().public_key();
    let (user, settlement, admin, stranger) = (Keys::generate(), Keys::generate(), Keys::generate(), Keys::generate());
    let mut c = Controller::for_machines(controller, S, [m], vec![admin.public_key()], Device::default())
        .with_settlement([settlement.public_key()]);
    let start = parse(&request(&user, S, &m, Status::Working, Reason::UserRequest, None, "pay")).unwrap();
    c.handle(&start).await.unwrap();

    let lock_failed = |keys: &Keys, to: Status, initial: EventId| {
        parse(&request(keys, S, &m, to, Reason::LockFailed, Some(initial), "")).unwrap()
    };
    for who in [&stranger, &user, &admin] {
        assert_eq!(
            c.handle(&lock_failed(who, Status::Available, start.id)).await,
            Err(ControllerError::NotSettlement(who.public_key()))
        );
    }
    assert_eq!(c.status(&m), Some(Status::Working));
    assert_eq!(
        c.handle(&lock_failed(&settlement, Status::Working, start.id)).await,
        Err(ControllerError::InvalidReason { reason: Reason::LockFailed, to_status: Status::Working })
    );
    let other_session = EventId::from_byte_array([7; 32]);
    assert!(matches!(
        c.handle(&lock_failed(&settlement, Status::Available, other_session)).await,
        Err(ControllerError::WrongSession { .. })
    ));
    // The settlement key is not an admin for anything else.
    let settlement_reset =
        parse(&request(&settlement, S, &m, Status::Available, Reason::Reset, Some(start.id), "")).unwrap();
    assert_eq!(c.handle(&settlement_reset).await, Err(ControllerError::AdminOnly(Reason::Reset)));

    let stopped = c.handle(&lock_failed(&settlement, Status::Available, start.id)).await.unwrap();
    assert_eq!(
        status_of(&stopped).2,
        Message::Status {
            status: Status::Available,
            reason: Reason::LockFailed,
            initial_request: start.id,
            payload: "pay".into()
        }
    );
    assert_eq!(c.status(&m), Some(Status::Available));
    assert_eq!(
        c.handle(&lock_failed(&settlement, Status::Available, start.id)).await,
        Err(ControllerError::AlreadyAvailable)
    );
}

#[tokio::test]
async fn refusals_and_recovery() {
    let controller = Keys::generate();
    let (m1, m2) = (Keys::generate().public_key(), Keys::generate().public_key());
    let (user, admin) = (Keys::generate(), Keys::generate());
    let device = Device { refuse: Some("no funds".into()), ..Default::default() };
    let mut c = Controller::for_machines(controller.clone(), S, [m1], vec![], device);
    let start = parse(&request(&user, S, &m1, Status::Working, Reason::UserRequest, None, "")).unwrap();
    assert_eq!(c.handle(&start).await, Err(ControllerError::NotEligible("no funds".into())));
    assert_eq!(c.status(&m1), Some(Status::Available));
    let elsewhere =
        parse(&request(&user, "other-session", &m1, Status::Working, Reason::UserRequest, None, "")).unwrap();
    assert!(matches!(c.handle(&elsewhere).await, Err(ControllerError::OtherSession(_))));

    // Recovery: the newest Status the controller signed for each machine; forged ones ignored.
    let r1 = EventId::from_byte_array([1; 32]);
    let at = |t: u64, keys: &Keys, m: &PublicKey, status: Status, payload: &str| {
        event::builder(
            S,
            m,
            &Message::Status { status, reason: Reason::UserRequest, initial_request: r1, payload: payload.into() },
        )
        .custom_created_at(Timestamp::from(t))
        .sign_with_keys(keys)
        .unwrap()
    };
    let events = [
        at(100, &controller, &m1, Status::Available, ""),
        at(200, &controller, &m1, Status::Working, "pay-m1"),
        at(300, &Keys::generate(), &m1, Status::Available, ""),
        at(150, &controller, &m2, Status::Available, ""),
    ];
    let mut fresh =
        Controller::for_machines(controller.clone(), S, [m1, m2], vec![admin.public_key()], Device::default());
    let mut found = fresh.recover(&events);
    found.sort();
    let mut expected = vec![m1, m2];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(
        fresh.state(&m1),
        Some(&MachineState {
            status: Status::Working,
            session: Some(Session { request: r1, user: None, payload: "pay-m1".into() })
        })
    );
    assert_eq!(fresh.status(&m2), Some(Status::Available));
    // After recovery the user is unknown: the user cannot stop, an admin can, and the final
    // Status still carries the recovered payload.
    let user_stop = parse(&request(&user, S, &m1, Status::Available, Reason::UserRequest, Some(r1), "")).unwrap();
    assert_eq!(fresh.handle(&user_stop).await, Err(ControllerError::NotSessionUser));
    let admin_stop = parse(&request(&admin, S, &m1, Status::Available, Reason::AdminRequest, Some(r1), "")).unwrap();
    let stopped = fresh.handle(&admin_stop).await.unwrap();
    assert!(matches!(status_of(&stopped).2, Message::Status { ref payload, .. } if payload == "pay-m1"));

    let mut stranger = Controller::for_machines(Keys::generate(), S, [m1], vec![], Device::default());
    assert!(stranger.recover(&events).is_empty());
    assert_eq!(stranger.status(&m1), Some(Status::Available));
}

#[tokio::test]
async fn two_phase_checks_run_concurrently() {
    let controller = Keys::generate();
    let (m1, m2) = (Keys::generate().public_key(), Keys::generate().public_key());
    let (u1, u2) = (Keys::generate(), Keys::generate());
    let mut c = Controller::for_machines(controller, S, [m1, m2], vec![], Device::default());
    let r1 = parse(&request(&u1, S, &m1, Status::Working, Reason::UserRequest, None, "a")).unwrap();
    let r2 = parse(&request(&u2, S, &m2, Status::Working, Reason::UserRequest, None, "b")).unwrap();
    let r1b = parse(&request(&u2, S, &m1, Status::Working, Reason::UserRequest, None, "c")).unwrap();
    let pending: Vec<Pending> = [&r1, &r2, &r1b]
        .into_iter()
        .map(|r| match c.check(r).unwrap() {
            Step::Check(p) => p,
            Step::Publish(_) => panic!("a start needs a check"),
        })
        .collect();
    assert_eq!(pending[2].payload(), "c");
    // Both checks run at once in their own tasks; the decisions come back in any order.
    let tasks: Vec<_> = pending
        .into_iter()
        .map(|p| {
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let decision = if p.payload() == "b" { Decision::Refuse("stale".into()) } else { Decision::Accept };
                (p, decision)
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        let (p, d) = t.await.unwrap();
        results.push(c.decide(p, d));
    }
    assert!(results[0].is_ok());
    assert_eq!(results[1], Err(ControllerError::NotEligible("stale".into())));
    // The second accepted start for m1 lost the race.
    assert_eq!(results[2], Err(ControllerError::Busy(r1.id)));
    assert_eq!((c.status(&m1), c.status(&m2)), (Some(Status::Working), Some(Status::Available)));
}

#[tokio::test]
async fn session_users_restored_from_their_requests() {
    let controller = Keys::generate();
    let (m1, m2) = (Keys::generate().public_key(), Keys::generate().public_key());
    let (user, other) = (Keys::generate(), Keys::generate());
    let mut before = Controller::for_machines(controller.clone(), S, [m1, m2], vec![], Device::default());
    let request = request(&user, S, &m1, Status::Working, Reason::UserRequest, None, "pay");
    let working = before.handle(&parse(&request).unwrap()).await.unwrap();

    let mut after = Controller::for_machines(controller, S, [m1, m2], vec![], Device::default());
    assert!(after.session_requests_filter().is_none());
    assert_eq!(after.recover(&[working]), vec![m1]);
    let filter = serde_json::to_value(after.session_requests_filter().unwrap()).unwrap();
    assert_eq!(filter["ids"], serde_json::json!([request.id.to_hex()]));
    // Other requests (another user's, another machine's) restore nothing.
    let unrelated = [
        event::request(&other, S, &m1, Status::Working, Reason::UserRequest, None, "pay"),
        event::request(&user, S, &m2, Status::Working, Reason::UserRequest, None, "pay"),
    ];
    assert_eq!(after.recover_users(&unrelated), 0);
    assert_eq!(after.recover_users(std::slice::from_ref(&request)), 1);
    assert_eq!(after.state(&m1).unwrap().session.as_ref().unwrap().user, Some(user.public_key()));
    assert_eq!(after.recover_users(&[request]), 0, "already known");
}
