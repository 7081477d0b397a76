//! Signed kind 1573 events: builders for DePHY's state, request and payment events, and
//! [`parse`], which checks an incoming event before anything acts on it.
//!
//! Layout, as DePHY writes it: kind 1573, tags `["s", <session>]` then `["p", <machine hex
//! pubkey>]`, content a [`Message`] in JSON. A `Status` event is p-tagged with the machine and
//! signed by its controller (the machine's own key for a single device, [`status`]; a
//! controller's key for several, [`status_for`]); a `Request` is p-tagged with the machine it
//! addresses.

use nostr::{Event, EventBuilder, EventId, Keys, Kind, PublicKey, Tag, Timestamp};

use crate::message::{Message, MessageError, Reason, Status};

/// The one Nostr kind of all DePHY device traffic.
pub const DEPHY_KIND: u16 = 1573;

/// Why an event is not a usable DePHY event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event kind {0} is not the DePHY kind 1573")]
    WrongKind(u16),
    #[error("event id or signature is invalid: {0}")]
    Invalid(#[source] nostr::event::Error),
    #[error("event has no [\"s\", session] tag")]
    MissingSession,
    #[error("event has no [\"p\", machine pubkey] tag")]
    MissingMachine,
    #[error("event has {0} \"{1}\" tags, expected one")]
    DuplicateTag(usize, &'static str),
    #[error("the p tag {0:?} is not a 64-hex public key")]
    BadMachine(String),
    #[error("event is for session {actual:?}, expected {expected:?}")]
    WrongSession { expected: String, actual: String },
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// A checked DePHY event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    pub id: EventId,
    pub author: PublicKey,
    pub created_at: Timestamp,
    pub session: String,
    pub machine: PublicKey,
    pub message: Message,
}

/// Signs a kind 1573 event carrying `message` for `machine` in `session`.
pub fn build(keys: &Keys, session: &str, machine: &PublicKey, message: &Message) -> Event {
    builder(session, machine, message).sign_with_keys(keys).expect("signing with in-memory keys cannot fail")
}

/// The unsigned builder behind [`build`], to add tags (e.g. `expiration`) or set `created_at`.
pub fn builder(session: &str, machine: &PublicKey, message: &Message) -> EventBuilder {
    let tags = [
        Tag::parse(["s", session]).expect("an s tag is valid"),
        Tag::parse(["p", machine.to_hex().as_str()]).expect("a p tag is valid"),
    ];
    EventBuilder::new(Kind::from(DEPHY_KIND), message.to_json()).tags(tags).allow_self_tagging()
}

/// A user's (or admin's) request to `machine`. `initial_request` is `None` for a new session
/// (all zeros on the wire) and the first request's id when stopping it.
pub fn request(
    keys: &Keys,
    session: &str,
    machine: &PublicKey,
    to_status: Status,
    reason: Reason,
    initial_request: Option<EventId>,
    payload: &str,
) -> Event {
    let initial_request = initial_request.unwrap_or_else(EventId::all_zeros);
    build(keys, session, machine, &Message::Request { to_status, reason, initial_request, payload: payload.into() })
}

/// The machine's state event, signed with the machine's key and p-tagged with it.
pub fn status(
    machine_keys: &Keys,
    session: &str,
    status: Status,
    reason: Reason,
    initial_request: EventId,
    payload: &str,
) -> Event {
    status_for(machine_keys, session, &machine_keys.public_key(), status, reason, initial_request, payload)
}

/// A Status of `machine` signed by its controller's key (DePHY's controller node: one key,
/// several machines, each named in the `p` tag). With the machine's own keys this is [`status`].
pub fn status_for(
    controller_keys: &Keys,
    session: &str,
    machine: &PublicKey,
    status: Status,
    reason: Reason,
    initial_request: EventId,
    payload: &str,
) -> Event {
    let message = Message::Status { status, reason, initial_request, payload: payload.into() };
    build(controller_keys, session, machine, &message)
}

/// A payment (settlement) event: `tokens` charged to (negative) or credited to (positive) `user`.
pub fn transaction(keys: &Keys, session: &str, machine: &PublicKey, user: &str, tokens: i64) -> Event {
    build(keys, session, machine, &Message::Transaction { user: user.into(), tokens })
}

/// Checks an incoming event: kind 1573, valid id and signature, exactly one `s` and one `p`
/// tag, and content that is a DePHY [`Message`].
pub fn parse(event: &Event) -> Result<ParsedEvent, EventError> {
    if event.kind.as_u16() != DEPHY_KIND {
        return Err(EventError::WrongKind(event.kind.as_u16()));
    }
    event.verify().map_err(EventError::Invalid)?;
    let session = single_tag(event, "s")?.ok_or(EventError::MissingSession)?;
    let machine = single_tag(event, "p")?.ok_or(EventError::MissingMachine)?;
    let machine = PublicKey::from_hex(&machine).map_err(|_| EventError::BadMachine(machine.clone()))?;
    let message = Message::parse(&event.content)?;
    Ok(ParsedEvent { id: event.id, author: event.pubkey, created_at: event.created_at, session, machine, message })
}

/// [`parse`], and the event must belong to `session`.
pub fn parse_in_session(event: &Event, session: &str) -> Result<ParsedEvent, EventError> {
    let parsed = parse(event)?;
    if parsed.session != session {
        return Err(EventError::WrongSession { expected: session.into(), actual: parsed.session });
    }
    Ok(parsed)
}

fn single_tag(event: &Event, name: &'static str) -> Result<Option<String>, EventError> {
    let values: Vec<&String> = event
        .tags
        .iter()
        .map(Tag::as_slice)
        .filter(|t| t.first().is_some_and(|n| n == name))
        .filter_map(|t| t.get(1))
        .collect();
    match values.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(EventError::DuplicateTag(many.len(), name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let user = Keys::generate();
        let machine = Keys::generate().public_key();
        let event =
            request(&user, "dephy-decharge-controller", &machine, Status::Working, Reason::UserRequest, None, "{}");
        assert_eq!(event.kind.as_u16(), 1573);
        let tags: Vec<Vec<String>> = event.tags.iter().map(|t| t.as_slice().to_vec()).collect();
        assert_eq!(
            tags,
            vec![vec!["s".to_string(), "dephy-decharge-controller".into()], vec!["p".into(), machine.to_hex()]]
        );
        let parsed = parse(&event).unwrap();
        assert_eq!(parsed.machine, machine);
        assert_eq!(parsed.author, user.public_key());
        assert!(matches!(parsed.message, Message::Request { to_status: Status::Working, .. }));
        assert!(matches!(parse_in_session(&event, "other"), Err(EventError::WrongSession { .. })));
    }

    #[test]
    fn status_is_tagged_with_the_machine() {
        let machine = Keys::generate();
        let event = status(&machine, "s1", Status::Available, Reason::Reset, EventId::all_zeros(), "");
        let parsed = parse(&event).unwrap();
        assert_eq!(parsed.machine, machine.public_key());
        assert_eq!(parsed.author, machine.public_key());
    }

    #[test]
    fn bad_events_get_typed_errors() {
        let keys = Keys::generate();
        let machine = keys.public_key();
        let sign = |kind: u16, content: &str, tags: Vec<Vec<&str>>| {
            EventBuilder::new(Kind::from(kind), content)
                .tags(tags.into_iter().map(|t| Tag::parse(t).unwrap()))
                .allow_self_tagging()
                .sign_with_keys(&keys)
                .unwrap()
        };
        let good = Message::Transaction { user: "u".into(), tokens: 1 }.to_json();
        let m = machine.to_hex();
        assert!(matches!(parse(&sign(1, &good, vec![vec!["s", "x"], vec!["p", &m]])), Err(EventError::WrongKind(1))));
        assert!(matches!(parse(&sign(1573, &good, vec![vec!["p", &m]])), Err(EventError::MissingSession)));
        assert!(matches!(parse(&sign(1573, &good, vec![vec!["s", "x"]])), Err(EventError::MissingMachine)));
        assert!(matches!(
            parse(&sign(1573, &good, vec![vec!["s", "x"], vec!["s", "y"], vec!["p", &m]])),
            Err(EventError::DuplicateTag(2, "s"))
        ));
        assert!(matches!(
            parse(&sign(1573, &good, vec![vec!["s", "x"], vec!["p", "zz"]])),
            Err(EventError::BadMachine(_))
        ));
        assert!(matches!(
            parse(&sign(1573, "{}", vec![vec!["s", "x"], vec!["p", &m]])),
            Err(EventError::Message(MessageError::Content(_)))
        ));
        let mut tampered = sign(1573, &good, vec![vec!["s", "x"], vec!["p", &m]]);
        tampered.content = Message::Transaction { user: "u".into(), tokens: 1000 }.to_json();
        assert!(matches!(parse(&tampered), Err(EventError::Invalid(_))));
    }
}
