//! The Available/Working state machine of a DePHY machine.
//!
//! A [`Controller`] holds the machine's state and turns incoming Requests into the Status events
//! the machine publishes:
//!
//! - `Request { to_status: Working }` while Available: the device's [`Hooks::eligible`] check
//!   (payment, authorization, ...) decides; if it accepts, the machine goes Working with
//!   `initial_request` = the Request's id, and [`Hooks::actuate`] starts the hardware.
//! - `Request { to_status: Available }` naming the current session (`initial_request`), from the
//!   user who started it or an admin: the machine stops and goes Available.
//! - [`Controller::finish`]: the device ends the session itself (e.g. charging done): Available,
//!   reason `UserBehaviour`.
//!
//! Requests are refused with a typed [`ControllerError`] (busy, not the session's user, a
//! non-admin using an admin reason, ...); DePHY's own controller only logged some of these.
//! [`Controller::recover`] restores the state from the machine's last Status event at start.

use nostr::{Event, EventId, Keys, PublicKey};

use crate::event::{self, ParsedEvent};
use crate::message::{Message, Reason, Status};

/// What the device decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start; the string becomes the Status payload.
    Accept(String),
    /// Refuse, saying why.
    Refuse(String),
}

/// The device's own parts of the state machine.
pub trait Hooks {
    /// May the user of `request` start the machine? (payment, authorization, ...)
    fn eligible(&mut self, request: &ParsedEvent, payload: &str) -> Decision;
    /// The machine changed state: drive the hardware.
    fn actuate(&mut self, status: Status, initial_request: EventId);
}

/// Why a request did not change the machine's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("the event is not a Request")]
    NotARequest,
    #[error("the request is for machine {0}, not this one")]
    OtherMachine(PublicKey),
    #[error("the request is for session {0:?}, not this machine's")]
    OtherSession(String),
    #[error("reason {0:?} is reserved to admins")]
    AdminOnly(Reason),
    #[error("the machine is already Working for request {0}")]
    Busy(EventId),
    #[error("the machine is already Available")]
    AlreadyAvailable,
    #[error("the stop request names session {named}, but the machine is working for {current}")]
    WrongSession { named: EventId, current: EventId },
    #[error("only the user who started the session (or an admin) may stop it")]
    NotSessionUser,
    #[error("not eligible: {0}")]
    NotEligible(String),
}

/// A machine's state machine.
pub struct Controller<H: Hooks> {
    keys: Keys,
    session: String,
    admins: Vec<PublicKey>,
    status: Status,
    /// The Request that started the current session and its author.
    current: Option<(EventId, PublicKey)>,
    pub hooks: H,
}

impl<H: Hooks> Controller<H> {
    /// A machine that is Available, signing with `keys` in `session`.
    pub fn new(keys: Keys, session: &str, admins: Vec<PublicKey>, hooks: H) -> Controller<H> {
        Controller { keys, session: session.into(), admins, status: Status::Available, current: None, hooks }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// The request id of the current Working session.
    pub fn current_request(&self) -> Option<EventId> {
        self.current.map(|(id, _)| id)
    }

    pub fn machine(&self) -> PublicKey {
        self.keys.public_key()
    }

    /// The filter of the machine's last Status event, for state recovery at start (DePHY's
    /// `{"kinds":[1573],"#s":[session],"#p":[machine],"authors":[machine],"limit":1}`).
    pub fn recovery_filter(&self) -> nostr::Filter {
        let me = self.keys.public_key();
        nostr::Filter::new()
            .kind(nostr::Kind::from(event::DEPHY_KIND))
            .custom_tag(nostr::SingleLetterTag::lowercase(nostr::Alphabet::S), self.session.clone())
            .pubkey(me)
            .author(me)
            .until(nostr::Timestamp::now())
            .limit(1)
    }

    /// The filter of requests addressed to this machine, from `since`.
    pub fn requests_filter(&self, since: nostr::Timestamp) -> nostr::Filter {
        nostr::Filter::new()
            .kind(nostr::Kind::from(event::DEPHY_KIND))
            .custom_tag(nostr::SingleLetterTag::lowercase(nostr::Alphabet::S), self.session.clone())
            .pubkey(self.keys.public_key())
            .since(since)
    }

    /// Restores the state from the machine's newest own Status event (ignores anything else).
    /// Returns whether a state was found.
    pub fn recover(&mut self, last_status: &[Event]) -> bool {
        let me = self.keys.public_key();
        let newest = last_status
            .iter()
            .filter_map(|e| event::parse_in_session(e, &self.session).ok())
            .filter(|p| p.author == me && p.machine == me)
            .filter_map(|p| match p.message {
                Message::Status { status, initial_request, .. } => Some((p.created_at, status, initial_request)),
                _ => None,
            })
            .max_by_key(|(t, _, _)| *t);
        let Some((_, status, initial_request)) = newest else { return false };
        self.status = status;
        // The session's user is not in the Status event: after a restart, only admins (or
        // the device itself, via finish) may stop a recovered session.
        self.current = (status == Status::Working).then_some((initial_request, me));
        true
    }

    /// Handles a Request; returns the Status event to publish.
    pub fn handle(&mut self, request: &ParsedEvent) -> Result<Event, ControllerError> {
        let Message::Request { to_status, reason, initial_request, payload } = &request.message else {
            return Err(ControllerError::NotARequest);
        };
        if request.machine != self.keys.public_key() {
            return Err(ControllerError::OtherMachine(request.machine));
        }
        if request.session != self.session {
            return Err(ControllerError::OtherSession(request.session.clone()));
        }
        let is_admin = self.admins.contains(&request.author);
        if !is_admin && *reason != Reason::UserRequest {
            return Err(ControllerError::AdminOnly(*reason));
        }
        match (to_status, self.status) {
            (Status::Working, Status::Working) => {
                Err(ControllerError::Busy(self.current_request().unwrap_or(EventId::all_zeros())))
            }
            (Status::Working, Status::Available) => match self.hooks.eligible(request, payload) {
                Decision::Refuse(why) => Err(ControllerError::NotEligible(why)),
                Decision::Accept(status_payload) => {
                    self.current = Some((request.id, request.author));
                    Ok(self.transition(Status::Working, *reason, request.id, &status_payload))
                }
            },
            (Status::Available, Status::Available) => Err(ControllerError::AlreadyAvailable),
            (Status::Available, Status::Working) => {
                let (current, user) = self.current.expect("Working has a session");
                if *initial_request != current {
                    return Err(ControllerError::WrongSession { named: *initial_request, current });
                }
                if !is_admin && request.author != user {
                    return Err(ControllerError::NotSessionUser);
                }
                self.current = None;
                Ok(self.transition(Status::Available, *reason, current, ""))
            }
        }
    }

    /// The device ends the current session itself (reason `UserBehaviour`). `None` when
    /// the machine is not Working.
    pub fn finish(&mut self, payload: &str) -> Option<Event> {
        let (current, _) = self.current.take()?;
        Some(self.transition(Status::Available, Reason::UserBehaviour, current, payload))
    }

    fn transition(&mut self, status: Status, reason: Reason, initial_request: EventId, payload: &str) -> Event {
        self.status = status;
        self.hooks.actuate(status, initial_request);
        event::status(&self.keys, &self.session, status, reason, initial_request, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse, request};

    #[derive(Default)]
    struct Device {
        refuse: Option<String>,
        actuated: Vec<(Status, EventId)>,
    }

    impl Hooks for Device {
        fn eligible(&mut self, _: &ParsedEvent, payload: &str) -> Decision {
            match &self.refuse {
                Some(why) => Decision::Refuse(why.clone()),
                None => Decision::Accept(format!("ok:{payload}")),
            }
        }
        fn actuate(&mut self, status: Status, initial_request: EventId) {
            self.actuated.push((status, initial_request));
        }
    }

    const S: &str = "dephy-decharge-controller";

    #[test]
    fn request_working_finish_available() {
        let machine = Keys::generate();
        let (user, other, admin) = (Keys::generate(), Keys::generate(), Keys::generate());
        let mut c = Controller::new(machine.clone(), S, vec![admin.public_key()], Device::default());
        let m = machine.public_key();

        let start = parse(&request(&user, S, &m, Status::Working, Reason::UserRequest, None, "p")).unwrap();
        let status = parse(&c.handle(&start).unwrap()).unwrap();
        assert_eq!(
            status.message,
            Message::Status {
                status: Status::Working,
                reason: Reason::UserRequest,
                initial_request: start.id,
                payload: "ok:p".into()
            }
        );
        assert_eq!(status.author, m);
        assert_eq!(c.status(), Status::Working);

        let second = parse(&request(&other, S, &m, Status::Working, Reason::UserRequest, None, "")).unwrap();
        assert_eq!(c.handle(&second), Err(ControllerError::Busy(start.id)));
        let stop_by_other =
            parse(&request(&other, S, &m, Status::Available, Reason::UserRequest, Some(start.id), "")).unwrap();
        assert_eq!(c.handle(&stop_by_other), Err(ControllerError::NotSessionUser));
        let stop_wrong =
            parse(&request(&user, S, &m, Status::Available, Reason::UserRequest, Some(second.id), "")).unwrap();
        assert!(matches!(c.handle(&stop_wrong), Err(ControllerError::WrongSession { .. })));
        let user_admin_reason =
            parse(&request(&user, S, &m, Status::Available, Reason::Reset, Some(start.id), "")).unwrap();
        assert_eq!(c.handle(&user_admin_reason), Err(ControllerError::AdminOnly(Reason::Reset)));

        let done = parse(&c.finish("42 kWh").unwrap()).unwrap();
        assert!(matches!(
            done.message,
            Message::Status { status: Status::Available, reason: Reason::UserBehaviour, .. }
        ));
        assert_eq!(c.hooks.actuated, vec![(Status::Working, start.id), (Status::Available, start.id)]);
        assert!(c.finish("").is_none());

        // An admin may stop someone else's session.
        let again = parse(&request(&user, S, &m, Status::Working, Reason::UserRequest, None, "2")).unwrap();
        c.handle(&again).unwrap();
        let admin_stop =
            parse(&request(&admin, S, &m, Status::Available, Reason::AdminRequest, Some(again.id), "")).unwrap();
        c.handle(&admin_stop).unwrap();
        assert_eq!(c.status(), Status::Available);
    }

    #[test]
    fn refusals_and_recovery() {
        let machine = Keys::generate();
        let user = Keys::generate();
        let m = machine.public_key();
        let device = Device { refuse: Some("no funds".into()), ..Default::default() };
        let mut c = Controller::new(machine.clone(), S, vec![], device);
        let start = parse(&request(&user, S, &m, Status::Working, Reason::UserRequest, None, "")).unwrap();
        assert_eq!(c.handle(&start), Err(ControllerError::NotEligible("no funds".into())));
        let elsewhere =
            parse(&request(&user, S, &Keys::generate().public_key(), Status::Working, Reason::UserRequest, None, ""))
                .unwrap();
        assert!(matches!(c.handle(&elsewhere), Err(ControllerError::OtherMachine(_))));

        let working = event::status(&machine, S, Status::Working, Reason::UserRequest, start.id, "");
        let forged = event::status(&Keys::generate(), S, Status::Available, Reason::Reset, start.id, "");
        let mut fresh = Controller::new(machine, S, vec![], Device::default());
        assert!(fresh.recover(&[forged.clone(), working]));
        assert_eq!((fresh.status(), fresh.current_request()), (Status::Working, Some(start.id)));
        let mut empty = Controller::new(Keys::generate(), S, vec![], Device::default());
        assert!(!empty.recover(&[forged]));
        assert_eq!(empty.status(), Status::Available);
    }
}
