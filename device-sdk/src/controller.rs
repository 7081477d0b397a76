//! The Available/Working state machine of DePHY machines, driven by one controller key.
//!
//! A [`Controller`] signs the Status events of any number of machines with its own key and names
//! the machine in the `p` tag, as DePHY's controller node does ([`Controller::new`] is the
//! single-device case where the machine's key is the controller key). Machines are added and
//! removed at runtime ([`Controller::add_machine`], [`Controller::remove_machine`]); each has
//! its own state ([`MachineState`]).
//!
//! - `Request { to_status: Working }` to an Available machine: the device's eligibility check
//!   (payment, authorization, ...) decides; if it accepts, the machine goes Working with
//!   `initial_request` = the Request's id and the **Request's payload copied into the Status**
//!   (DePHY's settlement server reads the payment from there), and [`Hooks::actuate`] starts the
//!   hardware. The check is async and may run concurrently for several machines: see below.
//! - `Request { to_status: Available }` naming the current session (`initial_request`), from the
//!   user who started it or an admin: the machine stops and goes Available.
//! - `Request { to_status: Available, reason: LockFailed }` naming the current session from a
//!   configured settlement key ([`Controller::with_settlement`]; DePHY's settlement server sends
//!   it when it cannot lock the user's funds): the machine stops, Status Available, reason
//!   `LockFailed`. From any other key it is refused ([`ControllerError::NotSettlement`]).
//! - [`Controller::finish`]: the device ends a session itself (e.g. charging done): Available,
//!   reason `UserBehaviour`.
//!
//! Every Status of a session (Working and the final Available) carries the payload of the
//! Request that started it, so the settlement server can lock at Working and settle the lock at
//! that nonce at Available. Requests are refused with a typed [`ControllerError`].
//!
//! **Eligibility, two ways.** [`Controller::handle`] runs the whole step, awaiting the async
//! [`Hooks::eligible`]. Or, to check several machines' requests concurrently:
//! [`Controller::check`] validates a request synchronously and returns [`Step::Check`] with a
//! [`Pending`] for a start request (or [`Step::Publish`] with the Status of a stop); run the
//! eligibility check (e.g. `payment::eligibility::check`, feature `solana-rpc`) in a task of
//! your own; then [`Controller::decide`] with the [`Decision`]. The state is checked again at `decide`: of two
//! concurrent accepted requests for one machine, the first decided wins and the other gets
//! [`ControllerError::Busy`].
//!
//! [`Controller::recover`] restores every machine's state (status, current request, session
//! payload) from its newest Status signed by the controller ([`Controller::recovery_filters`]);
//! [`Controller::recover_users`] then restores the sessions' users from the Requests that
//! started them ([`Controller::session_requests_filter`]). Status events of the same second
//! are ordered by id, as the relay's `limit` cannot tell them apart either.

use std::collections::BTreeMap;
use std::future::Future;

use nostr::{Event, EventId, Filter, Keys, PublicKey, Timestamp};

use crate::event::{self, ParsedEvent};
use crate::filters;
use crate::message::{Message, Reason, Status};

/// What the device decided about a start request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start. The Status carries the Request's payload (not the device's).
    Accept,
    /// Refuse, saying why.
    Refuse(String),
}

/// The device's own parts of the state machine.
pub trait Hooks {
    /// May the user of `request` start machine `request.machine`? (payment, authorization, ...)
    /// `payload` is the Request's payload. Implement it as `async fn`.
    fn eligible(&mut self, request: &ParsedEvent, payload: &str) -> impl Future<Output = Decision> + Send;
    /// `machine` changed state: drive its hardware.
    fn actuate(&mut self, machine: &PublicKey, status: Status, initial_request: EventId);
}

/// Why a request did not change a machine's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("the event is not a Request")]
    NotARequest,
    #[error("the request is for machine {0}, which this controller does not drive")]
    OtherMachine(PublicKey),
    #[error("the request is for session {0:?}, not this controller's")]
    OtherSession(String),
    #[error("reason {0:?} is reserved to admins")]
    AdminOnly(Reason),
    #[error("LockFailed is accepted only from the settlement key, not from {0}")]
    NotSettlement(PublicKey),
    #[error("reason {reason:?} cannot move a machine to {to_status:?}")]
    InvalidReason { reason: Reason, to_status: Status },
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

/// A machine's Working session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The Request that started it.
    pub request: EventId,
    /// Its author; `None` after a recovery (the Status does not name the user) until
    /// [`Controller::recover_users`] finds the Request: meanwhile only an admin, the settlement
    /// key or the device ([`Controller::finish`]) may stop the session.
    pub user: Option<PublicKey>,
    /// The Request's payload, copied into every Status of the session.
    pub payload: String,
}

/// One machine's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineState {
    pub status: Status,
    /// The current session while Working.
    pub session: Option<Session>,
}

impl Default for MachineState {
    fn default() -> MachineState {
        MachineState { status: Status::Available, session: None }
    }
}

/// A start request that passed the synchronous checks and waits for its eligibility
/// [`Decision`] ([`Controller::decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    request: ParsedEvent,
}

impl Pending {
    pub fn request(&self) -> &ParsedEvent {
        &self.request
    }

    pub fn machine(&self) -> PublicKey {
        self.request.machine
    }

    /// The Request's payload (DePHY: the payment authorization).
    pub fn payload(&self) -> &str {
        match &self.request.message {
            Message::Request { payload, .. } => payload,
            _ => unreachable!("a Pending holds a Request"),
        }
    }
}

/// What [`Controller::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A state change that needs no eligibility check (a stop): publish this Status.
    Publish(Event),
    /// A start request: run the eligibility check, then [`Controller::decide`].
    Check(Pending),
}

/// The state machines of the machines one controller key drives.
pub struct Controller<H: Hooks> {
    keys: Keys,
    session: String,
    admins: Vec<PublicKey>,
    settlement: Vec<PublicKey>,
    machines: BTreeMap<PublicKey, MachineState>,
    pub hooks: H,
}

impl<H: Hooks> Controller<H> {
    /// A single machine that signs its own Status events with `keys`, Available, in `session`.
    pub fn new(keys: Keys, session: &str, admins: Vec<PublicKey>, hooks: H) -> Controller<H> {
        let me = keys.public_key();
        Controller::for_machines(keys, session, [me], admins, hooks)
    }

    /// A controller signing with `keys` for `machines` (all Available until [`Controller::recover`]).
    pub fn for_machines(
        keys: Keys,
        session: &str,
        machines: impl IntoIterator<Item = PublicKey>,
        admins: Vec<PublicKey>,
        hooks: H,
    ) -> Controller<H> {
        Controller {
            keys,
            session: session.into(),
            admins,
            settlement: Vec::new(),
            machines: machines.into_iter().map(|m| (m, MachineState::default())).collect(),
            hooks,
        }
    }

    /// The keys whose `LockFailed` requests stop a machine (DePHY's settlement server).
    pub fn with_settlement(mut self, keys: impl IntoIterator<Item = PublicKey>) -> Controller<H> {
        self.settlement = keys.into_iter().collect();
        self
    }

    /// The controller's public key (the author of its Status events).
    pub fn controller(&self) -> PublicKey {
        self.keys.public_key()
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// The machines driven, in key order.
    pub fn machines(&self) -> Vec<PublicKey> {
        self.machines.keys().copied().collect()
    }

    /// Starts driving `machine` (Available). `false` if it was driven already (state kept).
    pub fn add_machine(&mut self, machine: PublicKey) -> bool {
        if self.machines.contains_key(&machine) {
            return false;
        }
        self.machines.insert(machine, MachineState::default());
        true
    }

    /// Stops driving `machine`; returns its last state. Its requests are refused from then on
    /// ([`ControllerError::OtherMachine`]); update the client's filters too
    /// ([`Controller::requests_filters`], [`crate::Client::set_filters`]).
    pub fn remove_machine(&mut self, machine: &PublicKey) -> Option<MachineState> {
        self.machines.remove(machine)
    }

    pub fn state(&self, machine: &PublicKey) -> Option<&MachineState> {
        self.machines.get(machine)
    }

    pub fn status(&self, machine: &PublicKey) -> Option<Status> {
        self.machines.get(machine).map(|s| s.status)
    }

    /// The request id of `machine`'s current Working session.
    pub fn current_request(&self, machine: &PublicKey) -> Option<EventId> {
        self.machines.get(machine)?.session.as_ref().map(|s| s.request)
    }

    /// The live filter of every driven machine's requests from `since` (one filter naming all
    /// machines in `#p`; empty when no machine is driven).
    pub fn requests_filters(&self, since: Timestamp) -> Vec<Filter> {
        if self.machines.is_empty() {
            return Vec::new();
        }
        vec![filters::requests_for(&self.session, &self.machines(), since)]
    }

    /// DePHY's recovery query, one filter per machine (`limit` 1 applies per filter), newest
    /// Status signed by the controller up to now. Send them in one query, then [`Controller::recover`].
    pub fn recovery_filters(&self) -> Vec<Filter> {
        let until = Timestamp::now();
        let me = self.controller();
        self.machines.keys().map(|m| filters::recovery(&self.session, &me, m, until)).collect()
    }

    /// Restores each driven machine's state from its newest Status in `events` signed by the
    /// controller key and p-tagged with the machine (anything else is ignored). Returns the
    /// machines whose state was found.
    pub fn recover(&mut self, events: &[Event]) -> Vec<PublicKey> {
        let me = self.controller();
        let mut newest: BTreeMap<PublicKey, (Timestamp, EventId, Status, EventId, String)> = BTreeMap::new();
        for parsed in events.iter().filter_map(|e| event::parse_in_session(e, &self.session).ok()) {
            if parsed.author != me || !self.machines.contains_key(&parsed.machine) {
                continue;
            }
            let Message::Status { status, initial_request, payload, .. } = parsed.message else { continue };
            let key = (parsed.created_at, parsed.id);
            if newest.get(&parsed.machine).is_none_or(|(t, id, ..)| (*t, *id) < key) {
                newest.insert(parsed.machine, (parsed.created_at, parsed.id, status, initial_request, payload));
            }
        }
        for (machine, (_, _, status, initial_request, payload)) in &newest {
            let state = self.machines.get_mut(machine).expect("filtered on driven machines");
            state.status = *status;
            state.session = (*status == Status::Working).then(|| Session {
                request: *initial_request,
                user: None,
                payload: payload.clone(),
            });
        }
        newest.into_keys().collect()
    }

    /// After [`Controller::recover`]: the filter of the Requests that started the recovered
    /// Working sessions whose user is unknown (by id), `None` if there are none. Query it and
    /// pass the events to [`Controller::recover_users`], so that users can stop their own
    /// recovered sessions again.
    pub fn session_requests_filter(&self) -> Option<Filter> {
        let ids: Vec<EventId> = self
            .machines
            .values()
            .filter_map(|s| s.session.as_ref())
            .filter(|s| s.user.is_none())
            .map(|s| s.request)
            .collect();
        (!ids.is_empty()).then(|| filters::session(&self.session).ids(ids))
    }

    /// Restores the users of recovered sessions from the Requests that started them: a
    /// Request (valid signature) whose id is a session's `request` and that addresses that
    /// session's machine. Returns how many sessions got their user back.
    pub fn recover_users(&mut self, requests: &[Event]) -> usize {
        let mut restored = 0;
        for parsed in requests.iter().filter_map(|e| event::parse_in_session(e, &self.session).ok()) {
            if !matches!(parsed.message, Message::Request { to_status: Status::Working, .. }) {
                continue;
            }
            let Some(session) = self.machines.get_mut(&parsed.machine).and_then(|s| s.session.as_mut()) else {
                continue;
            };
            if session.request == parsed.id && session.user.is_none() {
                session.user = Some(parsed.author);
                restored += 1;
            }
        }
        restored
    }

    /// Checks a Request synchronously: a stop is applied at once ([`Step::Publish`]); a start
    /// returns [`Step::Check`] for the eligibility check and [`Controller::decide`].
    pub fn check(&mut self, request: &ParsedEvent) -> Result<Step, ControllerError> {
        let Message::Request { to_status, reason, initial_request, .. } = &request.message else {
            return Err(ControllerError::NotARequest);
        };
        if request.session != self.session {
            return Err(ControllerError::OtherSession(request.session.clone()));
        }
        let machine = request.machine;
        let state = self.machines.get(&machine).ok_or(ControllerError::OtherMachine(machine))?;
        if *reason == Reason::LockFailed {
            if !self.settlement.contains(&request.author) {
                return Err(ControllerError::NotSettlement(request.author));
            }
            if *to_status != Status::Available {
                return Err(ControllerError::InvalidReason { reason: *reason, to_status: *to_status });
            }
        } else if *reason != Reason::UserRequest && !self.admins.contains(&request.author) {
            return Err(ControllerError::AdminOnly(*reason));
        }
        match (to_status, state.status) {
            (Status::Working, Status::Working) => {
                Err(ControllerError::Busy(state.session.as_ref().map_or(EventId::all_zeros(), |s| s.request)))
            }
            (Status::Working, Status::Available) => Ok(Step::Check(Pending { request: request.clone() })),
            (Status::Available, Status::Available) => Err(ControllerError::AlreadyAvailable),
            (Status::Available, Status::Working) => {
                let session = state.session.as_ref().expect("Working has a session");
                if *initial_request != session.request {
                    return Err(ControllerError::WrongSession { named: *initial_request, current: session.request });
                }
                let privileged = self.admins.contains(&request.author) || *reason == Reason::LockFailed;
                if !privileged && session.user != Some(request.author) {
                    return Err(ControllerError::NotSessionUser);
                }
                Ok(Step::Publish(self.stop(&machine, *reason).expect("Working")))
            }
        }
    }

    /// Applies the eligibility decision on a [`Pending`] start: the Working Status to publish,
    /// or why not (refused, or the machine is no longer Available / driven).
    pub fn decide(&mut self, pending: Pending, decision: Decision) -> Result<Event, ControllerError> {
        let request = pending.request;
        let Message::Request { reason, payload, .. } = &request.message else {
            unreachable!("a Pending holds a Request")
        };
        if let Decision::Refuse(why) = decision {
            return Err(ControllerError::NotEligible(why));
        }
        let state = self.machines.get_mut(&request.machine).ok_or(ControllerError::OtherMachine(request.machine))?;
        if let Some(session) = &state.session {
            return Err(ControllerError::Busy(session.request));
        }
        state.status = Status::Working;
        state.session = Some(Session { request: request.id, user: Some(request.author), payload: payload.clone() });
        Ok(self.publishable(&request.machine, Status::Working, *reason, request.id, payload))
    }

    /// [`Controller::check`], the async [`Hooks::eligible`] for a start, and [`Controller::decide`]:
    /// the Status event to publish.
    pub async fn handle(&mut self, request: &ParsedEvent) -> Result<Event, ControllerError> {
        match self.check(request)? {
            Step::Publish(status) => Ok(status),
            Step::Check(pending) => {
                let decision = self.hooks.eligible(pending.request(), pending.payload()).await;
                self.decide(pending, decision)
            }
        }
    }

    /// The device ends `machine`'s session itself (reason `UserBehaviour`); the Status carries
    /// the session's payload. `None` when the machine is not driven or not Working.
    pub fn finish(&mut self, machine: &PublicKey) -> Option<Event> {
        self.stop(machine, Reason::UserBehaviour)
    }

    fn stop(&mut self, machine: &PublicKey, reason: Reason) -> Option<Event> {
        let state = self.machines.get_mut(machine)?;
        let session = state.session.take()?;
        state.status = Status::Available;
        Some(self.publishable(machine, Status::Available, reason, session.request, &session.payload))
    }

    fn publishable(
        &mut self,
        machine: &PublicKey,
        status: Status,
        reason: Reason,
        initial_request: EventId,
        payload: &str,
    ) -> Event {
        self.hooks.actuate(machine, status, initial_request);
        event::status_for(&self.keys, &self.session, machine, status, reason, initial_request, payload)
    }
}

#[cfg(test)]
mod tests;
