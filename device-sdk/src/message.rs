//! The content of DePHY's kind 1573 events: [`Message`] (`Request`, `Status`, `Transaction`),
//! the request [`Payload`] with its [`RecoverInfo`], and typed parse errors.
//!
//! The JSON is serde's default externally tagged enum encoding with string enum values, exactly
//! as DePHY's Rust code writes it, e.g.
//!
//! ```json
//! {"Request":{"to_status":"Working","reason":"UserRequest","initial_request":"<64 hex zeros>","payload":"<json string>"}}
//! {"Status":{"status":"Working","reason":"UserRequest","initial_request":"<request id>","payload":"<json string>"}}
//! {"Transaction":{"user":"<solana pubkey>","tokens":-120}}
//! ```
//!
//! `payload` is itself a JSON *string*; for machines that take payment it holds a [`Payload`].

use nostr::EventId;
use serde::{Deserialize, Serialize};

/// A machine's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    Available,
    Working,
}

/// Why a request was made or a status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    UserRequest,
    AdminRequest,
    UserBehaviour,
    Reset,
    LockFailed,
}

/// The content of a kind 1573 event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A user (or admin) asks the machine to change state. `initial_request` is all zeros for a
    /// new session and the first Request's id when stopping it.
    Request { to_status: Status, reason: Reason, initial_request: EventId, payload: String },
    /// The machine's state, answering the Request `initial_request`.
    Status { status: Status, reason: Reason, initial_request: EventId, payload: String },
    /// A settlement: `tokens` moved from (negative) or to (positive) `user`.
    Transaction { user: String, tokens: i64 },
}

/// The payment details a user puts in a Request's `payload` (a JSON string):
/// `{"namespace_id":1,"user":"<solana pubkey base58>","nonce":7,"recover_info":"<json string>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub namespace_id: u64,
    /// The user's Solana wallet, base58.
    pub user: String,
    pub nonce: u64,
    /// A [`RecoverInfo`] as a JSON string.
    pub recover_info: String,
}

/// The user's off-chain payment authorization: `{"signature":[64 bytes],"extra_data":[64 bytes],"deadline":<unix>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverInfo {
    pub signature: Vec<u8>,
    pub extra_data: Vec<u8>,
    pub deadline: i64,
}

/// Why event content is not a DePHY message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("content is not a DePHY message (Request, Status or Transaction in externally tagged JSON): {0}")]
    Content(#[source] serde_json::Error),
    #[error("payload is not the JSON of a payment payload (namespace_id, user, nonce, recover_info): {0}")]
    Payload(#[source] serde_json::Error),
    #[error("recover_info is not JSON with signature, extra_data and deadline: {0}")]
    RecoverInfo(#[source] serde_json::Error),
    #[error("recover_info.{field} has {actual} bytes, expected 64")]
    WrongLength { field: &'static str, actual: usize },
    #[error("expected a {expected} message, got {actual}")]
    UnexpectedMessage { expected: &'static str, actual: &'static str },
}

impl Message {
    /// Parses event content.
    pub fn parse(content: &str) -> Result<Message, MessageError> {
        serde_json::from_str(content).map_err(MessageError::Content)
    }

    /// The content JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a message always serializes")
    }

    /// `"Request"`, `"Status"` or `"Transaction"`.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Request { .. } => "Request",
            Message::Status { .. } => "Status",
            Message::Transaction { .. } => "Transaction",
        }
    }
}

impl Payload {
    /// Parses a Request's `payload` string.
    pub fn parse(payload: &str) -> Result<Payload, MessageError> {
        serde_json::from_str(payload).map_err(MessageError::Payload)
    }

    /// The payload as the JSON string that goes into a Request.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a payload always serializes")
    }

    /// Parses and checks `recover_info`.
    pub fn recover_info(&self) -> Result<RecoverInfo, MessageError> {
        RecoverInfo::parse(&self.recover_info)
    }
}

impl RecoverInfo {
    /// Parses the `recover_info` string and checks that both byte arrays have 64 bytes.
    pub fn parse(text: &str) -> Result<RecoverInfo, MessageError> {
        let info: RecoverInfo = serde_json::from_str(text).map_err(MessageError::RecoverInfo)?;
        for (field, bytes) in [("signature", &info.signature), ("extra_data", &info.extra_data)] {
            if bytes.len() != 64 {
                return Err(MessageError::WrongLength { field, actual: bytes.len() });
            }
        }
        Ok(info)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("recover info always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn wire_format_matches_dephy() {
        let request = Message::Request {
            to_status: Status::Working,
            reason: Reason::UserRequest,
            initial_request: EventId::all_zeros(),
            payload: r#"{"a":1}"#.into(),
        };
        assert_eq!(
            request.to_json(),
            format!(
                r#"{{"Request":{{"to_status":"Working","reason":"UserRequest","initial_request":"{ZEROS}","payload":"{{\"a\":1}}"}}}}"#
            )
        );
        let tx = Message::Transaction { user: "Us3r".into(), tokens: -120 };
        assert_eq!(tx.to_json(), r#"{"Transaction":{"user":"Us3r","tokens":-120}}"#);
        let status = format!(
            r#"{{"Status":{{"status":"Available","reason":"UserBehaviour","initial_request":"{ZEROS}","payload":""}}}}"#
        );
        let parsed = Message::parse(&status).unwrap();
        assert_eq!(
            parsed,
            Message::Status {
                status: Status::Available,
                reason: Reason::UserBehaviour,
                initial_request: EventId::all_zeros(),
                payload: String::new()
            }
        );
        assert_eq!(parsed.to_json(), status);
    }

    #[test]
    fn malformed_content_is_rejected() {
        let bad = [
            "not json",
            r#"{"Unknown":{}}"#,
            r#"{"Status":{"status":"Broken","reason":"UserRequest","initial_request":"00","payload":""}}"#,
            r#"{"Status":{"status":"Working","reason":"UserRequest","initial_request":"xyz","payload":""}}"#,
            r#"{"Status":{"status":"Working","reason":"UserRequest","payload":""}}"#,
            r#"{"Transaction":{"user":"u","tokens":"12"}}"#,
            r#""Request""#,
        ];
        for content in bad {
            assert!(matches!(Message::parse(content), Err(MessageError::Content(_))), "{content}");
        }
    }

    #[test]
    fn payload_and_recover_info() {
        let info = RecoverInfo { signature: vec![1; 64], extra_data: vec![2; 64], deadline: 1_800_000_000 };
        let payload = Payload { namespace_id: 1, user: "User".into(), nonce: 7, recover_info: info.to_json() };
        let text = payload.to_json();
        assert!(text.starts_with(r#"{"namespace_id":1,"user":"User","nonce":7,"recover_info":"{\"signature\":[1,"#));
        let back = Payload::parse(&text).unwrap();
        assert_eq!(back.recover_info().unwrap(), info);

        let short = RecoverInfo { signature: vec![1; 63], ..info.clone() };
        assert!(matches!(
            RecoverInfo::parse(&short.to_json()),
            Err(MessageError::WrongLength { field: "signature", actual: 63 })
        ));
        assert!(matches!(Payload::parse("{}"), Err(MessageError::Payload(_))));
        assert!(matches!(RecoverInfo::parse(r#"{"signature":[]}"#), Err(MessageError::RecoverInfo(_))));
    }
}
