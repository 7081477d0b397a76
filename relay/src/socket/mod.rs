//! The socket stage: one task per WebSocket connection.
//!
//! The task reads client messages, parses them (`protocol`), and dispatches: EVENT to
//! `ingest`, REQ/COUNT to the store, CLOSE and AUTH locally, NEG-* (NIP-77) to [`negentropy`].
//! It writes replies, stored results and live events (from its outbound queue, filled by
//! `fanout`). OKs for events waiting on the group commit are collected without blocking the
//! read loop, so a client may pipeline many EVENTs.
//!
//! Memory is bounded by bytes ([`crate::budget`]): stored results are streamed in batches of
//! about [`BATCH_BYTES`] (never held whole), each batch charged to the connection while it is
//! written; live events are charged while queued. A write blocked longer than
//! `write_timeout_secs`, or a budget overrun, closes the connection with a NOTICE and a close
//! frame saying why.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{FuturesUnordered, SplitSink};
use futures_util::{FutureExt, SinkExt, StreamExt};
use nostr::{EventId, Filter, PublicKey};

use crate::fanout::{Outbound, Subscriber};
use crate::ingest::{self, Submitted};
use crate::limits::ConnectionSlot;
use crate::metrics as m;
use crate::protocol::{self, ClientMessage, ParseError, out};
use crate::server::AppState;
use crate::store::stream::ResultStream;
use crate::store::writer::WriteResult;

pub mod bulk;
mod negentropy;

/// How long a closing connection may take to send its pending OKs and close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection blocked on a write gets after shutdown or a slow-reader kick.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// JSON bytes of stored results read and written per batch (at least one event).
const BATCH_BYTES: usize = 64 * 1024;

type Sink = SplitSink<WebSocket, Message>;
type PendingAck = std::pin::Pin<Box<dyn Future<Output = (EventId, WriteResult)> + Send>>;

struct Connection {
    state: Arc<AppState>,
    ip: IpAddr,
    host: Option<String>,
    challenge: String,
    authed: HashSet<PublicKey>,
    id: u64,
    subscriber: Arc<Subscriber>,
    /// Per subscription: what the stored query already covered, so it is not sent live again.
    dedup: HashMap<Arc<str>, Covered>,
    /// Subscriptions opened with the `after_seq` cursor: their EVENTs carry the sequence.
    cursors: HashSet<Arc<str>>,
    pending: FuturesUnordered<PendingAck>,
    write_timeout: Duration,
    /// Open NIP-77 negentropy sessions.
    neg: negentropy::Sessions,
}

/// The stored events a subscription's query covered, whose live copies are skipped.
struct Covered {
    /// Every event with a sequence at or below this was committed before the query ran: it
    /// was either among the results or left out by the filter's `limit`.
    upto: i64,
    /// Results committed after `upto` was read, which may still arrive live: only what was
    /// committed while the query ran (8 bytes each), not the whole result.
    returned: HashSet<i64>,
}

/// Why a write failed.
#[derive(Debug)]
enum WriteError {
    /// The connection is gone.
    Closed,
    /// The client did not take the data within `write_timeout_secs`.
    Blocked,
}

impl From<axum::Error> for WriteError {
    fn from(_: axum::Error) -> Self {
        WriteError::Closed
    }
}

type Close = Option<(u16, Cow<'static, str>)>;

/// Serves one upgraded connection until either side closes it.
pub async fn serve(socket: WebSocket, state: Arc<AppState>, ip: IpAddr, host: Option<String>, slot: ConnectionSlot) {
    let (id, subscriber, mut outbound) = state.fanout.subscriber(state.cfg.limits.outbound_queue);
    let mut conn = Connection {
        challenge: crate::auth::challenge(),
        state: state.clone(),
        ip,
        host,
        authed: HashSet::new(),
        id,
        subscriber,
        dedup: HashMap::new(),
        cursors: HashSet::new(),
        pending: FuturesUnordered::new(),
        write_timeout: Duration::from_secs(state.cfg.limits.write_timeout_secs.max(1)),
        neg: negentropy::Sessions::default(),
    };
    metrics::gauge!(m::CONNECTIONS).increment(1.0);
    let (mut sink, mut stream) = socket.split();
    // A write to a client that does not read blocks the loop; shutdown and the slow-reader
    // kick must still end the connection, after a short grace.
    let (shutdown, usage) = (state.shutdown.clone(), conn.subscriber.usage.clone());
    let stop = async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = usage.kicked.cancelled() => {}
        }
        tokio::time::sleep(STOP_GRACE).await;
        match usage.reason() {
            Some(reason) => (1008, Cow::Owned(reason)),
            None => (1001, Cow::Borrowed("relay shutting down")),
        }
    };
    let close = tokio::select! {
        close = conn.run(&mut sink, &mut stream, &mut outbound) => close,
        close = stop => Some(close),
    };
    if let Some((1008, reason)) = &close {
        tracing::info!(ip = %ip, %reason, "closing connection");
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        conn.drain(&mut sink).await;
        if let Some((code, reason)) = close {
            // Budget and slow-reader closes say why in a NOTICE too (clients rarely show close reasons).
            if code == 1008 {
                let _ = sink.send(Message::Text(out::notice(&format!("error: {reason}")).into())).await;
            }
            let frame = CloseFrame { code, reason: Utf8Bytes::from(reason.into_owned()) };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    })
    .await;
    conn.close_all_neg();
    state.fanout.unregister(conn.id);
    metrics::gauge!(m::CONNECTIONS).decrement(1.0);
    drop(slot);
}

impl Connection {
    /// The main loop; returns the close frame to send, if any.
    async fn run(
        &mut self,
        sink: &mut Sink,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        outbound: &mut tokio::sync::mpsc::Receiver<Outbound>,
    ) -> Close {
        match self.serve_loop(sink, stream, outbound).await {
            Ok(close) => close,
            Err(WriteError::Closed) => None,
            Err(WriteError::Blocked) => {
                let reason =
                    format!("slow reader: a write was blocked for more than {} s", self.write_timeout.as_secs());
                self.state.fanout.budget().kick(&self.subscriber.usage, reason.clone(), "write_timeout");
                Some((1008, Cow::Owned(reason)))
            }
        }
    }

    async fn serve_loop(
        &mut self,
        sink: &mut Sink,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        outbound: &mut tokio::sync::mpsc::Receiver<Outbound>,
    ) -> Result<Close, WriteError> {
        send(self.write_timeout, sink, out::auth(&self.challenge)).await?;
        let shutdown = self.state.shutdown.clone();
        let usage = self.subscriber.usage.clone();
        loop {
            let neg_idle = self.neg.next_idle(self.neg_idle());
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(Some((1001, Cow::Borrowed("relay shutting down")))),
                _ = usage.kicked.cancelled() => {
                    let reason = usage.reason().unwrap_or_else(|| "slow reader".into());
                    return Ok(Some((1008, Cow::Owned(reason))));
                }
                Some((id, result)) = self.pending.next(), if !self.pending.is_empty() => {
                    // A group commit completes many events at once: write all the OKs that are
                    // ready, then flush once.
                    let mut ready = Some((id, result));
                    while let Some((id, result)) = ready {
                        let (accepted, message) = ingest::answer(result);
                        feed(self.write_timeout, sink, out::ok(&id.to_hex(), accepted, &message)).await?;
                        ready = self.pending.next().now_or_never().flatten();
                    }
                    flush(self.write_timeout, sink).await?;
                }
                _ = until(neg_idle) => self.expire_idle_neg(sink).await?,
                Some(msg) = outbound.recv() => {
                    let n = msg.cost();
                    let sent = self.forward(sink, msg).await;
                    self.state.fanout.budget().release_live(&self.subscriber.usage, n);
                    sent?;
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_text(sink, text.as_str()).await?,
                    Some(Ok(Message::Binary(_))) => {
                        send(self.write_timeout, sink, out::notice("error: binary messages are not supported; send JSON text")).await?
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => return Ok(None),
                    Some(Err(e)) => {
                        tracing::debug!(ip = %self.ip, error = %e, "websocket read error");
                        return Ok(Some((1009, Cow::Borrowed("message too big or malformed frame"))));
                    }
                },
            }
        }
    }

    /// Sends the OKs of events still waiting on the writer (the caller bounds the time).
    async fn drain(&mut self, sink: &mut Sink) {
        while let Some((id, result)) = self.pending.next().await {
            let (accepted, message) = ingest::answer(result);
            if sink.send(Message::Text(out::ok(&id.to_hex(), accepted, &message).into())).await.is_err() {
                return;
            }
        }
    }

    async fn forward(&mut self, sink: &mut Sink, msg: Outbound) -> Result<(), WriteError> {
        let Outbound::Event { sub, seq, json } = msg;
        if let (Some(seq), Some(covered)) = (seq, self.dedup.get_mut(&sub))
            && (seq <= covered.upto || covered.returned.remove(&seq))
        {
            return Ok(());
        }
        match seq {
            Some(seq) if self.cursors.contains(&sub) => {
                send(self.write_timeout, sink, out::event_with_seq(&sub, &json, seq)).await
            }
            _ => send(self.write_timeout, sink, out::event(&sub, &json)).await,
        }
    }

    async fn on_text(&mut self, sink: &mut Sink, text: &str) -> Result<(), WriteError> {
        let limits = &self.state.cfg.limits;
        if text.len() > limits.max_message_bytes {
            let msg = format!("invalid: message is {} bytes, the limit is {}", text.len(), limits.max_message_bytes);
            return send(self.write_timeout, sink, out::notice(&msg)).await;
        }
        let bounds = protocol::Bounds {
            max_filters: limits.max_filters,
            max_subid: limits.max_subid_length,
            max_values: limits.max_filter_values,
        };
        let msg = match protocol::parse(text, bounds) {
            Ok(msg) => msg,
            Err(e) => return self.on_parse_error(sink, e).await,
        };
        match msg {
            ClientMessage::Event { event, json, raw_len } => {
                let id = event.id;
                let from = ingest::Sender { ip: self.ip, authed: &self.authed };
                match self.state.ingest.submit(event, json, raw_len, from).await {
                    Submitted::Done { accepted, message } => {
                        send(self.write_timeout, sink, out::ok(&id.to_hex(), accepted, &message)).await
                    }
                    Submitted::Pending(rx) => {
                        self.pending.push(Box::pin(async move {
                            (id, rx.await.unwrap_or_else(|_| Err("the relay is shutting down".into())))
                        }));
                        Ok(())
                    }
                }
            }
            // Boxed: a query's state (result stream, database futures) is allocated only while it
            // runs, not held in every idle connection's task.
            ClientMessage::Req { sub_id, filters, after_seq } => {
                Box::pin(self.on_req(sink, sub_id, filters, after_seq)).await
            }
            ClientMessage::Count { sub_id, filters } => Box::pin(self.on_count(sink, sub_id, filters)).await,
            ClientMessage::Close { sub_id } => {
                self.subscriber.remove(&sub_id);
                self.dedup.remove(sub_id.as_str());
                self.cursors.remove(sub_id.as_str());
                Ok(())
            }
            ClientMessage::NegOpen { sub_id, filter, msg } => {
                Box::pin(self.on_neg_open(sink, sub_id, *filter, msg)).await
            }
            ClientMessage::NegMsg { sub_id, msg } => Box::pin(self.on_neg_msg(sink, sub_id, msg)).await,
            ClientMessage::NegClose { sub_id } => {
                self.on_neg_close(&sub_id);
                Ok(())
            }
            ClientMessage::Auth { event } => {
                let cfg = &self.state.cfg;
                let result =
                    crate::auth::verify(&event, &self.challenge, cfg.relay_url.as_deref(), self.host.as_deref());
                let (accepted, message) = match result {
                    Ok(pubkey) => {
                        self.authed.insert(pubkey);
                        (true, String::new())
                    }
                    Err(msg) => (false, msg),
                };
                send(self.write_timeout, sink, out::ok(&event.id.to_hex(), accepted, &message)).await
            }
        }
    }

    async fn on_parse_error(&mut self, sink: &mut Sink, e: ParseError) -> Result<(), WriteError> {
        let msg = e.to_string();
        match e {
            ParseError::BadEvent { id: Some(id), .. } => {
                send(self.write_timeout, sink, out::ok(&id, false, &msg)).await
            }
            ParseError::BadFilter { sub_id, .. } => send(self.write_timeout, sink, out::closed(&sub_id, &msg)).await,
            ParseError::BadNeg { sub_id, .. } => self.neg_err(sink, &sub_id, "invalid", &msg).await,
            _ => send(self.write_timeout, sink, out::notice(&msg)).await,
        }
    }

    /// Checks common to REQ and COUNT; the error is a CLOSED message.
    fn read_allowed(&self) -> Result<(), String> {
        if self.state.cfg.auth.required_for_read && self.authed.is_empty() {
            return Err("auth-required: this relay only serves authenticated clients".into());
        }
        if !self.state.rates.req_from_ip(self.ip) {
            return Err("rate-limited: too many requests from your address; slow down".into());
        }
        Ok(())
    }

    async fn on_req(
        &mut self,
        sink: &mut Sink,
        sub_id: String,
        filters: Vec<Filter>,
        after_seq: Option<i64>,
    ) -> Result<(), WriteError> {
        if let Err(msg) = self.read_allowed() {
            return send(self.write_timeout, sink, out::closed(&sub_id, &msg)).await;
        }
        let sub: Arc<str> = sub_id.into();
        let max = self.state.cfg.limits.max_subscriptions;
        if self.subscriber.remove(&sub) {
            self.dedup.remove(&sub);
            self.cursors.remove(&sub);
        } else if self.subscriber.len() >= max {
            let msg = format!("blocked: too many open subscriptions (max {max}); CLOSE one first");
            return send(self.write_timeout, sink, out::closed(&sub, &msg)).await;
        }
        // Register, THEN read the committed mark (see `fanout::CommittedSeq`): live copies at or
        // below it are skipped, as are those of results committed later. The stored query is
        // not bounded by the mark: on PostgreSQL another process's event is committed (and
        // acknowledged) before this process's mark reaches it, and a REQ must still see it.
        let filters: Arc<[Filter]> = filters.into();
        self.subscriber.set(sub.clone(), filters.clone());
        self.state.fanout.register(self.id, &self.subscriber);
        let visible = self.state.fanout.committed().get();

        let limits = &self.state.cfg.limits;
        let started = Instant::now();
        let mut results = ResultStream::new(&filters, limits.default_limit, limits.max_limit, after_seq, i64::MAX);
        let mut returned = HashSet::new();
        let budget = self.state.fanout.budget();
        let bulk = bulk::is_bulk(&filters, limits.default_limit, limits.max_limit);
        loop {
            // A large result streams batch by batch in turn with the other large ones.
            let slot = match bulk {
                true => Some(self.state.bulk.acquire().await),
                false => None,
            };
            let batch = match results.next_batch(&self.state.store, BATCH_BYTES).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "query failed");
                    self.subscriber.remove(&sub);
                    return send(
                        self.write_timeout,
                        sink,
                        out::closed(&sub, "error: could not run the query; try again"),
                    )
                    .await;
                }
            };
            if batch.is_empty() {
                break;
            }
            // The batch is charged while it is written: a client that does not read holds it.
            let bytes: usize = batch.iter().map(|e| e.json.len()).sum();
            returned.extend(batch.iter().map(|e| e.seq).filter(|seq| *seq > visible));
            budget.charge_page(&self.subscriber.usage, bytes);
            let wt = self.write_timeout;
            // The last batch goes out with the EOSE, in one write.
            let last = results.is_finished();
            let written = bulk::hold_while_progressing(slot, async {
                for e in batch {
                    let text = match after_seq {
                        Some(_) => out::event_with_seq(&sub, &e.json, e.seq),
                        None => out::event(&sub, &e.json),
                    };
                    drop(e);
                    feed(wt, sink, text).await?;
                }
                if last { Ok(()) } else { flush(wt, sink).await }
            })
            .await;
            budget.release_page(&self.subscriber.usage, bytes);
            written?;
            if self.subscriber.usage.is_closing() {
                // Told to close (budget): the main loop sends the reason.
                return Ok(());
            }
        }
        metrics::histogram!(m::QUERY_SECONDS).record(started.elapsed().as_secs_f64());
        if after_seq.is_some() {
            self.cursors.insert(sub.clone());
        }
        self.dedup.insert(sub.clone(), Covered { upto: visible, returned });
        send(self.write_timeout, sink, out::eose(&sub)).await
    }

    async fn on_count(&mut self, sink: &mut Sink, sub_id: String, filters: Vec<Filter>) -> Result<(), WriteError> {
        if let Err(msg) = self.read_allowed() {
            return send(self.write_timeout, sink, out::closed(&sub_id, &msg)).await;
        }
        let started = Instant::now();
        let result = self.state.store.count(&filters).await;
        metrics::histogram!(m::QUERY_SECONDS).record(started.elapsed().as_secs_f64());
        match result {
            Ok(n) => send(self.write_timeout, sink, out::count(&sub_id, n)).await,
            Err(e) => {
                tracing::error!(error = %e, "count failed");
                send(self.write_timeout, sink, out::closed(&sub_id, "error: could not run the count; try again")).await
            }
        }
    }
}

/// Completes at `at`, never without one.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes `text` and flushes, within the write timeout.
async fn send(timeout: Duration, sink: &mut Sink, text: String) -> Result<(), WriteError> {
    match tokio::time::timeout(timeout, sink.send(Message::Text(text.into()))).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(WriteError::Blocked),
    }
}

/// Queues `text` without flushing (it may still write when the buffer is full), within the
/// write timeout.
async fn feed(timeout: Duration, sink: &mut Sink, text: String) -> Result<(), WriteError> {
    match tokio::time::timeout(timeout, sink.feed(Message::Text(text.into()))).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(WriteError::Blocked),
    }
}

async fn flush(timeout: Duration, sink: &mut Sink) -> Result<(), WriteError> {
    match tokio::time::timeout(timeout, sink.flush()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(WriteError::Blocked),
    }
}
