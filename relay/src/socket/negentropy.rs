//! NIP-77 negentropy syncing for clients and other relays: `NEG-OPEN`, `NEG-MSG`, `NEG-CLOSE`.
//!
//! The relay is the responder of negentropy protocol version 1 (the `negentropy` crate the
//! bridge's catch-up uses), messages hex-encoded in JSON. A `NEG-OPEN` reads the keys
//! `(created_at, id)` of the events matching its filter, never their JSON, in keyset pages
//! ([`KeyPages`], each page in a bulk slot like a large REQ's batches) into a sealed vector
//! kept for the session; every `NEG-MSG` is answered from it. Bounds, all in `[limits]`:
//!
//! - `max_negentropy_records` records per session (a filter's own `limit` is honoured, newest
//!   first): past it, `NEG-ERR "blocked: too many records, narrow the filter ..."`, as strfry does;
//! - `negentropy_frame_bytes`: the frame size limit of the relay's messages;
//! - `max_negentropy_sessions` per connection; a `NEG-OPEN` for an open id replaces it;
//! - `negentropy_idle_secs`: a session without a `NEG-MSG` for that long is closed
//!   (`NEG-ERR "closed: ..."`);
//! - the client's messages are bounded by `max_message_bytes` like any frame;
//! - the records held (about 40 bytes each) count in the connection's output budget
//!   ([`crate::budget`]), so the total budget sheds the connection holding the most.
//!
//! Read auth and the REQ rate limit apply as for REQ (the rate limit to every `NEG-MSG` too).
//! A bad message gets `NEG-ERR "invalid: ..."` and ends its session, as does every `NEG-ERR`
//! (NIP-77); `relay_negentropy_sessions_refused_total{reason}` counts them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use negentropy::{Id, Item, Negentropy, NegentropyStorageVector};
use nostr::Filter;

use super::{Connection, Sink, WriteError, send};
use crate::budget::Usage;
use crate::metrics as m;
use crate::protocol::out;
use crate::server::AppState;
use crate::store::stream::KeyPages;

/// Keys read per page while a session's inventory is built.
const PAGE_KEYS: usize = 4096;
/// Bytes charged per record held (the negentropy item; the vector may hold some slack).
const RECORD_BYTES: usize = std::mem::size_of::<Item>();
/// Sessions with more records than this seal and reconcile off the async worker.
const INLINE_RECORDS: usize = 10_000;

/// One open session: the sealed inventory and when the client last spoke.
struct Session {
    neg: Negentropy<'static, NegentropyStorageVector>,
    records: usize,
    last_used: Instant,
}

/// The negentropy sessions of one connection.
#[derive(Default)]
pub struct Sessions {
    open: HashMap<String, Session>,
}

impl Sessions {
    /// When the next session goes idle, if any is open.
    pub fn next_idle(&self, idle: Duration) -> Option<tokio::time::Instant> {
        self.open.values().map(|s| s.last_used + idle).min().map(tokio::time::Instant::from_std)
    }
}

/// Why a session was refused or ended: the `reason` label of [`m::NEG_REFUSED`] and the NEG-ERR text.
struct Refusal(&'static str, String);

impl Connection {
    /// `["NEG-OPEN", sub, filter, msg]`: builds the session and answers its first message.
    pub(super) async fn on_neg_open(
        &mut self,
        sink: &mut Sink,
        sub_id: String,
        filter: Filter,
        msg: Vec<u8>,
    ) -> Result<(), WriteError> {
        // NIP-77: a NEG-OPEN for an open subscription id closes that session first.
        self.neg_remove(&sub_id);
        let opened = match self.read_allowed() {
            Err(message) => {
                let reason = if message.starts_with("auth-required") { "auth_required" } else { "rate_limited" };
                Err(Refusal(reason, message))
            }
            Ok(()) => open(&self.state, &self.subscriber.usage, self.neg.open.len(), &filter, &msg).await,
        };
        match opened {
            Ok(Some((session, reply))) => {
                metrics::counter!(m::NEG_OPENED).increment(1);
                metrics::gauge!(m::NEG_SESSIONS).increment(1.0);
                metrics::gauge!(m::NEG_RECORDS).increment(session.records as f64);
                let text = out::neg_msg(&sub_id, &reply);
                self.neg.open.insert(sub_id, session);
                send(self.write_timeout, sink, text).await
            }
            // Told to close (budget) while reading: the main loop sends the reason.
            Ok(None) => Ok(()),
            Err(Refusal(reason, message)) => self.neg_err(sink, &sub_id, reason, &message).await,
        }
    }

    /// `["NEG-MSG", sub, msg]`: the next round of an open session.
    pub(super) async fn on_neg_msg(&mut self, sink: &mut Sink, sub_id: String, msg: Vec<u8>) -> Result<(), WriteError> {
        let result = match self.neg.open.get_mut(&sub_id) {
            None => {
                Err(Refusal("closed", "closed: no open negentropy session with this id; send NEG-OPEN first".into()))
            }
            Some(_) if !self.state.rates.req_from_ip(self.ip) => {
                Err(Refusal("rate_limited", "rate-limited: too many requests from your address; slow down".into()))
            }
            Some(session) => {
                session.last_used = Instant::now();
                let records = session.records;
                heavy(records, || session.neg.reconcile(&msg))
                    .map_err(|e| Refusal("invalid", format!("invalid: negentropy: {e}")))
            }
        };
        match result {
            Ok(reply) => send(self.write_timeout, sink, out::neg_msg(&sub_id, &reply)).await,
            Err(Refusal(reason, message)) => self.neg_err(sink, &sub_id, reason, &message).await,
        }
    }

    /// Ends session `sub_id` (if open) with `NEG-ERR message`; `reason` labels the metric.
    pub(super) async fn neg_err(
        &mut self,
        sink: &mut Sink,
        sub_id: &str,
        reason: &'static str,
        message: &str,
    ) -> Result<(), WriteError> {
        self.neg_remove(sub_id);
        metrics::counter!(m::NEG_REFUSED, "reason" => reason).increment(1);
        send(self.write_timeout, sink, out::neg_err(sub_id, message)).await
    }

    /// `["NEG-CLOSE", sub]`: frees the session (no answer).
    pub(super) fn on_neg_close(&mut self, sub_id: &str) {
        self.neg_remove(sub_id);
    }

    /// Closes the sessions idle for `negentropy_idle_secs`, telling their clients.
    pub(super) async fn expire_idle_neg(&mut self, sink: &mut Sink) -> Result<(), WriteError> {
        let idle = self.neg_idle();
        let now = Instant::now();
        let expired: Vec<String> =
            self.neg.open.iter().filter(|(_, s)| now >= s.last_used + idle).map(|(id, _)| id.clone()).collect();
        for sub_id in expired {
            let message = format!("closed: idle for more than {} s; send NEG-OPEN again", idle.as_secs());
            self.neg_err(sink, &sub_id, "idle", &message).await?;
        }
        Ok(())
    }

    /// Frees every session (the connection is ending; before its budget is closed).
    pub(super) fn close_all_neg(&mut self) {
        let ids: Vec<String> = self.neg.open.keys().cloned().collect();
        for sub_id in ids {
            self.neg_remove(&sub_id);
        }
    }

    pub(super) fn neg_idle(&self) -> Duration {
        Duration::from_secs(self.state.cfg.limits.negentropy_idle_secs.max(1))
    }

    fn neg_remove(&mut self, sub_id: &str) {
        if let Some(session) = self.neg.open.remove(sub_id) {
            self.state.fanout.budget().release_held(&self.subscriber.usage, session.records * RECORD_BYTES);
            metrics::gauge!(m::NEG_SESSIONS).decrement(1.0);
            metrics::gauge!(m::NEG_RECORDS).decrement(session.records as f64);
        }
    }
}

/// Checks the session cap, reads the inventory and answers the first message; `Ok(None)`
/// when the connection was told to close meanwhile. On success the records stay charged to
/// `usage`. (Not a method: a `&Connection` held across an await would not be `Send`.)
async fn open(
    state: &AppState,
    usage: &Usage,
    open_now: usize,
    filter: &Filter,
    msg: &[u8],
) -> Result<Option<(Session, Vec<u8>)>, Refusal> {
    let limits = &state.cfg.limits;
    let (max_sessions, cap, frame) =
        (limits.max_negentropy_sessions, limits.max_negentropy_records, limits.negentropy_frame_bytes);
    if open_now >= max_sessions {
        let message = format!("blocked: too many open negentropy sessions (max {max_sessions}); NEG-CLOSE one first");
        return Err(Refusal("too_many_sessions", message));
    }
    // A filter's own limit is honoured; without one (or above the cap) one more than the
    // cap is read, to tell "exactly the cap" from "too many".
    let most = filter.limit.map_or(cap.saturating_add(1), |l| l.min(cap.saturating_add(1)));
    let mut pages = KeyPages::new(filter, most);
    let mut storage = NegentropyStorageVector::new();
    let budget = state.fanout.budget();
    let mut records = 0usize;
    let release = |records: usize| budget.release_held(usage, records * RECORD_BYTES);
    loop {
        let keys = {
            let _slot = state.bulk.acquire().await;
            pages.next_page(&state.store, PAGE_KEYS).await
        };
        let keys = match keys {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!(error = %e, "negentropy inventory query failed");
                release(records);
                return Err(Refusal("error", "error: could not read the events; try again".into()));
            }
        };
        if keys.is_empty() {
            break;
        }
        budget.charge_held(usage, keys.len() * RECORD_BYTES);
        records += keys.len();
        if records > cap {
            release(records);
            let message = format!(
                "blocked: too many records, narrow the filter (more than {cap} events match; \
                 split it by since/until or add a limit)"
            );
            return Err(Refusal("too_many_records", message));
        }
        if usage.is_closing() {
            release(records);
            return Ok(None);
        }
        for key in keys {
            let created_at = key.created_at.max(0) as u64;
            // Cannot fail: the vector is not sealed yet.
            let _ = storage.insert(created_at, Id::from_byte_array(key.id));
        }
    }
    let first = heavy(records, move || -> Result<_, String> {
        storage.seal().map_err(|e| e.to_string())?;
        let mut neg = Negentropy::owned(storage, frame as u64).map_err(|e| e.to_string())?;
        let reply = neg.reconcile(msg).map_err(|e| format!("negentropy: {e}"))?;
        Ok((neg, reply))
    });
    match first {
        Ok((neg, reply)) => Ok(Some((Session { neg, records, last_used: Instant::now() }, reply))),
        Err(e) => {
            release(records);
            Err(Refusal("invalid", format!("invalid: {e}")))
        }
    }
}

/// Runs `f` in place, off the async worker when the session is large (sorting and
/// fingerprinting hundreds of thousands of records takes milliseconds).
fn heavy<R>(records: usize, f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if records > INLINE_RECORDS && multi_thread { tokio::task::block_in_place(f) } else { f() }
}
