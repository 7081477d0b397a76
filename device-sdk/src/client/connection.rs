//! One task per relay: connect (with exponential backoff), establish the live subscription
//! from the saved position, then flush the outbox, re-send unacknowledged events, serve
//! one-shot queries, and hand new events to the client, until the connection drops; repeat.
//!
//! Catch-up after (re)connecting:
//! - **cursor mode** (the relay answers `after_seq` with `{"seq": N}` on every EVENT): stored
//!   events after the position arrive oldest first in pages of `page_limit`; with several filters
//!   the page is complete up to the `page_limit`-th smallest seq, which is delivered before the
//!   next page is asked for.
//! - **since mode** (any other relay): `since` = newest processed `created_at` minus the overlap;
//!   stored events are sorted by (created_at, id) and ids already processed are skipped.
//!
//! When the filter set changes ([`super::Client::set_filters`]), the live REQ is CLOSEd and a new
//! one is sent from the in-memory position, with the same catch-up rules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use nostr::{Event, EventId, Filter, Timestamp};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{ClientError, Command, Received, Shared};

type Reply = mpsc::UnboundedSender<Result<Vec<Event>, ClientError>>;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("the client was dropped")]
    ClientGone,
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> Ended {
    Ended::Failed(e.to_string())
}

/// Where this process has read up to on this relay (ahead of the committed position).
#[derive(Default)]
struct Position {
    seq: Option<u64>,
    created_at: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Cursor { after: u64 },
    Since,
}

/// The live subscription on the current connection.
struct Live {
    sub_id: String,
    /// The version of the filter set it was sent with.
    version: u64,
    mode: Mode,
    /// Stored events of the current REQ, held until EOSE.
    stored: Vec<(Event, Option<u64>)>,
    established: bool,
}

pub(super) async fn run(shared: Arc<Shared>, url: String, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut backoff = shared.config.backoff_min;
    let mut queued: Vec<(Vec<Filter>, Reply)> = Vec::new();
    let mut position = Position::default();
    let mut generation = 0u64;
    loop {
        let result =
            connection(&shared, &url, &mut commands, &mut queued, &mut position, &mut generation, &mut backoff).await;
        shared.subscribed.send_modify(|set| {
            set.remove(&url);
        });
        match result {
            Ended::ClientGone => return,
            Ended::Failed(reason) => {
                tracing::warn!(relay = %url, reason, retry_in = ?backoff, "relay connection ended")
            }
        }
        // Back off; meanwhile publishes wait in the outbox and queries are queued.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(Command::Publish(_) | Command::Resubscribe) => {}
                    Some(Command::Query { filters, reply }) => queued.push((filters, reply)),
                },
            }
        }
        backoff = (backoff * 2).min(shared.config.backoff_max);
    }
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    shared: &Arc<Shared>,
    url: &str,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    queued: &mut Vec<(Vec<Filter>, Reply)>,
    position: &mut Position,
    generation: &mut u64,
    backoff: &mut Duration,
) -> Ended {
    let config = &shared.config;
    let tls = tokio_tungstenite::Connector::Rustls(shared.tls.clone());
    let connect = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(tls));
    let ws = match tokio::time::timeout(config.connect_timeout, connect).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return failed(format!("cannot connect: {e}")),
        Err(_) => return failed(format!("connecting took longer than {:?}", config.connect_timeout)),
    };
    let (mut sink, mut stream) = ws.split();
    let mut conn = Conn { shared, url, sent_at: HashMap::new(), queries: HashMap::new(), next_query: 0 };

    let mut live = None;
    let (version, filters) = shared.filters();
    if filters.is_empty() {
        if let Err(e) = conn.established(&mut sink, version).await {
            return e;
        }
    } else {
        let l = conn.subscribe(&mut sink, position, generation).await;
        match l {
            Ok(l) => live = Some(l),
            Err(e) => return e,
        }
    }
    for (filters, reply) in queued.drain(..) {
        if let Err(e) = conn.query(&mut sink, filters, reply).await {
            return e;
        }
    }

    let mut tick = tokio::time::interval((config.ack_timeout / 2).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            msg = stream.next() => {
                let text = match msg {
                    None => break failed("the relay closed the connection"),
                    Some(Err(e)) => break failed(format!("WebSocket error: {e}")),
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Close(frame))) => break failed(format!("the relay closed the connection: {frame:?}")),
                    Some(Ok(_)) => continue,
                };
                match conn.on_message(&mut sink, text.as_str(), &mut live, position, generation).await {
                    Ok(true) => *backoff = config.backoff_min,
                    Ok(false) => {}
                    Err(e) => break e,
                }
            }
            cmd = commands.recv() => match cmd {
                None => break Ended::ClientGone,
                Some(Command::Publish(event)) => {
                    let ready = live.as_ref().is_none_or(|l| l.established);
                    if ready && let Err(e) = conn.send_event(&mut sink, &event).await {
                        break e;
                    }
                }
                Some(Command::Query { filters, reply }) => {
                    if let Err(e) = conn.query(&mut sink, filters, reply).await {
                        break e;
                    }
                }
                Some(Command::Resubscribe) => {
                    if let Err(e) = conn.resubscribe(&mut sink, &mut live, position, generation).await {
                        break e;
                    }
                }
            },
            _ = tick.tick() => {
                if live.as_ref().is_none_or(|l| l.established) && let Err(e) = conn.resend_due(&mut sink).await {
                    break e;
                }
            }
        }
    };
    // Queries in flight are asked again on the next connection.
    for (_, (filters, _, reply)) in conn.queries.drain() {
        queued.push((filters, reply));
    }
    result
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsMessage,
>;

struct Conn<'a> {
    shared: &'a Arc<Shared>,
    url: &'a str,
    /// When each outbox event was last sent on this connection.
    sent_at: HashMap<EventId, Instant>,
    /// Open one-shot queries: filters, results so far, reply.
    queries: HashMap<String, (Vec<Filter>, Vec<Event>, Reply)>,
    next_query: u64,
}

async fn send(sink: &mut Sink, value: Value) -> Result<(), Ended> {
    sink.send(WsMessage::Text(value.to_string().into())).await.map_err(|e| failed(format!("cannot send: {e}")))
}

impl Conn<'_> {
    /// The filter set changed: CLOSE the live REQ and send the new set (or none).
    async fn resubscribe(
        &mut self,
        sink: &mut Sink,
        live: &mut Option<Live>,
        position: &Position,
        generation: &mut u64,
    ) -> Result<(), Ended> {
        if let Some(l) = live.take() {
            send(sink, json!(["CLOSE", l.sub_id])).await?;
        }
        let (version, filters) = self.shared.filters();
        if filters.is_empty() {
            return self.established(sink, version).await;
        }
        *live = Some(self.subscribe(sink, position, generation).await?);
        Ok(())
    }

    /// Sends the live REQ of the current filter set from the current position.
    async fn subscribe(&mut self, sink: &mut Sink, position: &Position, generation: &mut u64) -> Result<Live, Ended> {
        let config = &self.shared.config;
        let (version, live_filters) = self.shared.filters();
        let saved = self.shared.cursor.lock().expect("cursor lock").position(self.url);
        *generation += 1;
        let sub_id = format!("dephy-live-{generation}");
        let mode =
            if saved.no_cursor { Mode::Since } else { Mode::Cursor { after: position.seq.or(saved.seq).unwrap_or(0) } };
        let filters: Vec<Value> = match mode {
            Mode::Cursor { after } => live_filters
                .iter()
                .map(|f| {
                    let mut v = serde_json::to_value(f).expect("filters serialize");
                    v["after_seq"] = json!(after);
                    v["limit"] = json!(config.page_limit);
                    v
                })
                .collect(),
            Mode::Since => {
                let newest = position.created_at.max(saved.created_at);
                live_filters
                    .iter()
                    .map(|f| {
                        let mut f = f.clone();
                        if let Some(newest) = newest {
                            let since = newest.saturating_sub(config.overlap.as_secs());
                            let since = f.since.map_or(since, |s| s.as_secs().max(since));
                            f = f.since(Timestamp::from(since));
                        }
                        serde_json::to_value(&f).expect("filters serialize")
                    })
                    .collect()
            }
        };
        let mut req = vec![json!("REQ"), json!(sub_id)];
        req.extend(filters);
        tracing::debug!(relay = self.url, ?mode, "subscribing");
        send(sink, Value::Array(req)).await?;
        Ok(Live { sub_id, version, mode, stored: Vec::new(), established: false })
    }

    /// The live subscription (filter set `version`) is in place: mark it, answer
    /// `set_filters`, and send the outbox.
    async fn established(&mut self, sink: &mut Sink, version: u64) -> Result<(), Ended> {
        self.shared.subscribed.send_modify(|set| {
            set.insert(self.url.to_string());
        });
        self.shared.filters_established(self.url, version);
        let pending = self.shared.outbox.lock().expect("outbox lock").pending_for(self.url);
        for event in pending {
            self.send_event(sink, &event).await?;
        }
        Ok(())
    }

    async fn send_event(&mut self, sink: &mut Sink, event: &Event) -> Result<(), Ended> {
        if !self.shared.outbox.lock().expect("outbox lock").is_pending(&event.id, self.url) {
            return Ok(());
        }
        self.sent_at.insert(event.id, Instant::now());
        send(sink, json!(["EVENT", event])).await
    }

    /// Re-sends outbox events not acknowledged within `ack_timeout`.
    async fn resend_due(&mut self, sink: &mut Sink) -> Result<(), Ended> {
        let timeout = self.shared.config.ack_timeout;
        let pending = self.shared.outbox.lock().expect("outbox lock").pending_for(self.url);
        for event in pending {
            if self.sent_at.get(&event.id).is_none_or(|t| t.elapsed() >= timeout) {
                tracing::debug!(relay = self.url, id = %event.id, "re-sending unacknowledged event");
                self.send_event(sink, &event).await?;
            }
        }
        Ok(())
    }

    async fn query(&mut self, sink: &mut Sink, filters: Vec<Filter>, reply: Reply) -> Result<(), Ended> {
        self.next_query += 1;
        let sub_id = format!("dephy-query-{}", self.next_query);
        let mut req = vec![json!("REQ"), json!(sub_id)];
        req.extend(filters.iter().map(|f| serde_json::to_value(f).expect("filters serialize")));
        self.queries.insert(sub_id, (filters, Vec::new(), reply));
        send(sink, Value::Array(req)).await
    }

    /// Hands an event to the application unless it was handed out already; advances the
    /// in-memory position either way.
    async fn deliver(&self, event: Event, seq: Option<u64>, position: &mut Position) -> Result<(), Ended> {
        position.seq = seq.max(position.seq);
        position.created_at = Some(event.created_at.as_secs()).max(position.created_at);
        if !self.shared.delivered.lock().expect("dedup lock").insert(event.id) {
            return Ok(());
        }
        let received = Received { event, relay: self.url.to_string(), seq };
        self.shared.events.send(received).await.map_err(|_| Ended::ClientGone)
    }

    /// Handles one relay message; `Ok(true)` when the live subscription became established.
    async fn on_message(
        &mut self,
        sink: &mut Sink,
        text: &str,
        live: &mut Option<Live>,
        position: &mut Position,
        generation: &mut u64,
    ) -> Result<bool, Ended> {
        let Ok(Value::Array(msg)) = serde_json::from_str::<Value>(text) else {
            tracing::debug!(relay = self.url, text, "ignoring a message that is not a JSON array");
            return Ok(false);
        };
        let kind = msg.first().and_then(Value::as_str).unwrap_or_default();
        let sub = msg.get(1).and_then(Value::as_str).unwrap_or_default();
        match kind {
            "EVENT" => {
                let Some(event) = msg.get(2).and_then(|v| serde_json::from_value::<Event>(v.clone()).ok()) else {
                    tracing::warn!(relay = self.url, "ignoring a malformed EVENT");
                    return Ok(false);
                };
                if event.verify().is_err() {
                    tracing::warn!(relay = self.url, id = %event.id, "ignoring an event with a bad id or signature");
                    return Ok(false);
                }
                let seq = msg.get(3).and_then(|m| m.get("seq")).and_then(Value::as_u64);
                if let Some((_, events, _)) = self.queries.get_mut(sub) {
                    events.push(event);
                    return Ok(false);
                }
                let Some(l) = live.as_mut().filter(|l| l.sub_id == sub) else { return Ok(false) };
                if matches!(l.mode, Mode::Cursor { .. }) && seq.is_none() {
                    // The relay ignored after_seq: fall back to since with overlap.
                    tracing::info!(relay = self.url, "relay does not offer the arrival-sequence cursor; using since");
                    self.shared.cursor.lock().expect("cursor lock").set_no_cursor(self.url).map_err(failed)?;
                    send(sink, json!(["CLOSE", l.sub_id])).await?;
                    *live = Some(self.subscribe(sink, position, generation).await?);
                    return Ok(false);
                }
                if l.established {
                    self.deliver(event, seq, position).await?;
                } else {
                    l.stored.push((event, seq));
                }
                Ok(false)
            }
            "EOSE" => {
                if let Some((_, events, reply)) = self.queries.remove(sub) {
                    let _ = reply.send(Ok(events));
                    send(sink, json!(["CLOSE", sub])).await?;
                    return Ok(false);
                }
                let Some(l) = live.as_mut().filter(|l| l.sub_id == sub && !l.established) else { return Ok(false) };
                let mut stored = std::mem::take(&mut l.stored);
                match l.mode {
                    Mode::Cursor { .. } => {
                        stored.sort_by_key(|(_, seq)| *seq);
                        let page = self.shared.config.page_limit;
                        if stored.len() >= page {
                            // Complete up to the page-th smallest seq; deliver that, then ask again.
                            let cutoff = stored[page - 1].1;
                            for (event, seq) in stored.into_iter().filter(|(_, s)| *s <= cutoff) {
                                self.deliver(event, seq, position).await?;
                            }
                            send(sink, json!(["CLOSE", l.sub_id])).await?;
                            *live = Some(self.subscribe(sink, position, generation).await?);
                            return Ok(false);
                        }
                    }
                    Mode::Since => stored.sort_by_key(|(e, _)| (e.created_at, e.id)),
                }
                for (event, seq) in stored {
                    self.deliver(event, seq, position).await?;
                }
                l.established = true;
                let version = l.version;
                self.established(sink, version).await?;
                Ok(true)
            }
            "CLOSED" => {
                let message = msg.get(2).and_then(Value::as_str).unwrap_or_default().to_string();
                if let Some((_, _, reply)) = self.queries.remove(sub) {
                    let _ = reply.send(Err(ClientError::Closed { relay: self.url.into(), message }));
                    return Ok(false);
                }
                let Some(l) = live.as_ref().filter(|l| l.sub_id == sub) else { return Ok(false) };
                if matches!(l.mode, Mode::Cursor { .. }) && message.starts_with("invalid:") {
                    tracing::info!(relay = self.url, message, "relay refused after_seq; using since");
                    self.shared.cursor.lock().expect("cursor lock").set_no_cursor(self.url).map_err(failed)?;
                    *live = Some(self.subscribe(sink, position, generation).await?);
                    return Ok(false);
                }
                Err(failed(format!("the relay closed the live subscription: {message}")))
            }
            "OK" => {
                let (Some(id), Some(accepted)) = (
                    msg.get(1).and_then(Value::as_str).and_then(|s| EventId::from_hex(s).ok()),
                    msg.get(2).and_then(Value::as_bool),
                ) else {
                    return Ok(false);
                };
                let message = msg.get(3).and_then(Value::as_str).unwrap_or_default();
                if accepted || message.starts_with("duplicate:") {
                    self.shared.acknowledged(self.url, id, Ok(()));
                } else if message.starts_with("rate-limited:") || message.starts_with("error:") || message.is_empty() {
                    tracing::debug!(relay = self.url, %id, message, "relay asked to retry later");
                } else {
                    self.shared.acknowledged(self.url, id, Err(message.to_string()));
                }
                Ok(false)
            }
            "NOTICE" => {
                tracing::info!(relay = self.url, notice = sub, "relay notice");
                Ok(false)
            }
            _ => Ok(false),
        }
    }
}
