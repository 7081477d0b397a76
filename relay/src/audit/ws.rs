//! The WebSocket side of the audit: one NIP-01 `REQ` for the relay's newest events, read until
//! `EOSE`. Other messages (the NIP-42 `AUTH` challenge the relay sends first, `NOTICE`s) are
//! skipped.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nostr::Event;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::AuditError;
use super::http::Endpoint;

/// Longest the handshake, and then the whole `REQ` up to `EOSE`, may take.
const TIMEOUT: Duration = Duration::from_secs(30);
const SUBSCRIPTION: &str = "audit";

/// The newest `limit` stored events, as the relay serves them (not yet verified).
pub async fn newest_events(endpoint: &Endpoint, limit: u32) -> Result<Vec<Event>, AuditError> {
    let url = endpoint.ws_url();
    let unreachable = |e: String| AuditError::Incomplete(format!("WebSocket {url}: {e}"));
    let (mut socket, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .map_err(|_| unreachable(format!("no handshake within {TIMEOUT:?}")))?
        .map_err(|e| unreachable(format!("cannot connect: {e}")))?;
    let req = json!(["REQ", SUBSCRIPTION, { "limit": limit }]);
    socket.send(Message::text(req.to_string())).await.map_err(|e| unreachable(format!("cannot send REQ: {e}")))?;

    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut events = Vec::new();
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Err(unreachable(format!("no EOSE within {TIMEOUT:?}"))),
            Ok(None) => return Err(unreachable("the relay closed the connection before EOSE".to_string())),
            Ok(Some(Err(e))) => return Err(unreachable(e.to_string())),
            Ok(Some(Ok(message))) => message,
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(text.as_str()) else {
            return Err(AuditError::Failed(format!("the relay sent a message that is not a JSON array: {text}")));
        };
        let kind = parts.first().and_then(Value::as_str);
        if parts.get(1).and_then(Value::as_str) != Some(SUBSCRIPTION) {
            continue;
        }
        match kind {
            Some("EVENT") => {
                let raw = parts.get(2).unwrap_or(&Value::Null);
                let event = Event::deserialize(raw).map_err(|e| {
                    AuditError::Failed(format!("the relay served a malformed event over WebSocket ({e}): {raw}"))
                })?;
                events.push(event);
            }
            Some("EOSE") => break,
            Some("CLOSED") => {
                let reason = parts.get(2).and_then(Value::as_str).unwrap_or_default();
                return Err(unreachable(format!("the relay refused the REQ: {reason:?}")));
            }
            _ => {}
        }
    }
    // The events are in hand; a failed close changes nothing.
    let _ = socket.close(None).await;
    Ok(events)
}
