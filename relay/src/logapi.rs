//! The verifiable log's HTTP API (JSON), served on the relay's port:
//!
//! - `GET /log/checkpoint`: the latest signed checkpoint.
//! - `GET /log/checkpoints?from=N&limit=M`: checkpoints with tree size >= N, oldest first.
//! - `GET /log/proof/inclusion?id=<event id>&tree_size=N`: RFC 9162 inclusion proof.
//! - `GET /log/proof/consistency?first=N&second=M`: RFC 9162 consistency proof.
//! - `GET /log/entries?start=S&end=E`: leaves `[S, E)`: index, arrival seq, event id, receive time.
//! - `GET /events?after=SEQ&limit=N`: the catch-up cursor: stored events with a higher arrival
//!   sequence, in arrival order, each with its `seq` (over WebSocket: `after_seq` in a filter).
//! - `GET /sessions/{author}/{session}/events?after=SEQ&limit=N`: one (author, `s`) chain in
//!   arrival order with each event's arrival seq and log position, for replay.
//!
//! Bad or out-of-range parameters get a 400 with a message saying what to fix. `/events` and
//! `/sessions/...` bodies stop before [`MAX_BODY_BYTES`] and carry `next_after` (pass it as
//! `after` to continue) and `truncated`; they need NIP-98 auth when reads do (`http_auth`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State, rejection::QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::AppState;
use crate::store::LogError;

/// Most entries or checkpoints in one response.
pub const MAX_PAGE: u64 = 1000;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn log_error(e: LogError) -> Response {
    match e {
        LogError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
        LogError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        LogError::Store(e) => {
            tracing::error!(error = %e, "log request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage error; try again")
        }
    }
}

fn checkpoint_json(event_json: &str) -> Value {
    let event: Value = serde_json::from_str(event_json).unwrap_or(Value::Null);
    let mut body: Value =
        event.get("content").and_then(Value::as_str).and_then(|c| serde_json::from_str(c).ok()).unwrap_or(json!({}));
    body["event"] = event;
    body
}

pub async fn checkpoint(State(state): State<Arc<AppState>>) -> Response {
    match state.store.checkpoints(None, 1).await {
        Ok(list) => match list.first() {
            Some(ev) => Json(checkpoint_json(ev)).into_response(),
            None => error(StatusCode::NOT_FOUND, "no checkpoint has been signed yet"),
        },
        Err(e) => log_error(e.into()),
    }
}

#[derive(Deserialize)]
pub struct CheckpointsQuery {
    from: Option<u64>,
    limit: Option<u64>,
}

pub async fn checkpoints(
    State(state): State<Arc<AppState>>,
    q: Result<Query<CheckpointsQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(StatusCode::BAD_REQUEST, "from and limit must be non-negative integers");
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return error(StatusCode::BAD_REQUEST, format!("limit must be 1 to {MAX_PAGE}"));
    }
    match state.store.checkpoints(Some(q.from.unwrap_or(0)), limit as u32).await {
        Ok(list) => {
            Json(json!({ "checkpoints": list.iter().map(|e| checkpoint_json(e)).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => log_error(e.into()),
    }
}

#[derive(Deserialize)]
pub struct InclusionQuery {
    id: String,
    tree_size: Option<u64>,
}

pub async fn inclusion(
    State(state): State<Arc<AppState>>,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(StatusCode::BAD_REQUEST, "need id=<64 hex event id> and optionally tree_size=<integer>");
    };
    let mut id = [0u8; 32];
    if q.id.len() != 64 || hex::decode_to_slice(&q.id, &mut id).is_err() {
        return error(StatusCode::BAD_REQUEST, "id must be a 64-character hex event id");
    }
    let tree_size = match q.tree_size {
        Some(n) => n,
        None => match state.store.log_size().await {
            Ok(n) => n,
            Err(e) => return log_error(e.into()),
        },
    };
    match state.store.inclusion_proof(&id, tree_size).await {
        Ok(proof) => Json(proof).into_response(),
        Err(e) => log_error(e),
    }
}

#[derive(Deserialize)]
pub struct ConsistencyQuery {
    first: u64,
    second: u64,
}

pub async fn consistency(
    State(state): State<Arc<AppState>>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(StatusCode::BAD_REQUEST, "need first=<tree size> and second=<tree size>, integers");
    };
    match state.store.consistency_proof(q.first, q.second).await {
        Ok(proof) => Json(json!({
            "first": q.first,
            "second": q.second,
            "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => log_error(e),
    }
}

#[derive(Deserialize)]
pub struct EntriesQuery {
    start: u64,
    end: u64,
}

pub async fn entries(State(state): State<Arc<AppState>>, q: Result<Query<EntriesQuery>, QueryRejection>) -> Response {
    let Ok(Query(q)) = q else {
        return error(StatusCode::BAD_REQUEST, "need start=<leaf index> and end=<leaf index>, integers");
    };
    if q.start >= q.end || q.end - q.start > MAX_PAGE {
        return error(StatusCode::BAD_REQUEST, format!("need start < end and at most {MAX_PAGE} entries"));
    }
    let size = match state.store.log_size().await {
        Ok(n) => n,
        Err(e) => return log_error(e.into()),
    };
    if q.start >= size {
        return error(StatusCode::BAD_REQUEST, format!("start {} is beyond the log ({size} leaves)", q.start));
    }
    match state.store.log_entries(q.start, q.end.min(size)).await {
        Ok(entries) => Json(json!({ "tree_size": size, "entries": entries })).into_response(),
        Err(e) => log_error(e.into()),
    }
}

/// Largest `/events` or `/sessions/...` body: events stop being added before it would be
/// exceeded (at least one is always sent) and `next_after` says where to continue.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Rows fetched from the database at a time while filling a body.
const FETCH_ROWS: u64 = 64;

/// A JSON body of events, filled up to [`MAX_BODY_BYTES`]: `{<head>"events":[...],"next_after":N,
/// "truncated":bool}`. `next_after` is the arrival sequence to pass as `after` for the next page;
/// `truncated` is true when the byte cap (not `limit` or the end of the data) ended the page.
struct EventsBody {
    out: String,
    count: u64,
    next_after: i64,
    truncated: bool,
}

impl EventsBody {
    fn new(head: &str, after: i64) -> Self {
        Self { out: format!("{{{head}\"events\":["), count: 0, next_after: after, truncated: false }
    }

    /// Appends one item (its JSON) for arrival sequence `seq`; false when it would not fit.
    fn push(&mut self, seq: i64, item: &str) -> bool {
        // Room for the closing `],"next_after":<i64>,"truncated":false}`.
        const TAIL: usize = 64;
        if self.count > 0 && self.out.len() + 1 + item.len() + TAIL > MAX_BODY_BYTES {
            self.truncated = true;
            return false;
        }
        if self.count > 0 {
            self.out.push(',');
        }
        self.out.push_str(item);
        self.count += 1;
        self.next_after = seq;
        true
    }

    fn finish(mut self) -> Response {
        self.out.push_str(&format!("],\"next_after\":{},\"truncated\":{}}}", self.next_after, self.truncated));
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.out).into_response()
    }
}

#[derive(Deserialize)]
pub struct SessionQuery {
    after: Option<i64>,
    limit: Option<u64>,
}

pub async fn session_events(
    State(state): State<Arc<AppState>>,
    Path((author, session)): Path<(String, String)>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(StatusCode::BAD_REQUEST, "after must be an arrival sequence number and limit an integer");
    };
    let mut pubkey = [0u8; 32];
    if author.len() != 64 || hex::decode_to_slice(&author, &mut pubkey).is_err() {
        return error(StatusCode::BAD_REQUEST, "author must be a 64-character hex public key");
    }
    let limit = q.limit.unwrap_or(MAX_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return error(StatusCode::BAD_REQUEST, format!("limit must be 1 to {MAX_PAGE}"));
    }
    let head = format!("\"author\":{},\"session\":{},", json!(author), json!(session));
    let mut body = EventsBody::new(&head, q.after.unwrap_or(0));
    'fill: while body.count < limit {
        let want = (limit - body.count).min(FETCH_ROWS);
        let rows = match state.store.session_events(&pubkey, &session, body.next_after, want as u32).await {
            Ok(rows) => rows,
            Err(e) => return log_error(e.into()),
        };
        let got = rows.len() as u64;
        for (seq, index, raw) in rows {
            let item = format!("{{\"seq\":{seq},\"log_index\":{},\"event\":{raw}}}", json!(index));
            if !body.push(seq, &item) {
                break 'fill;
            }
        }
        if got < want {
            break;
        }
    }
    body.finish()
}

#[derive(Deserialize)]
pub struct AfterQuery {
    after: i64,
    limit: Option<u64>,
}

pub async fn events_after(
    State(state): State<Arc<AppState>>,
    q: Result<Query<AfterQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(StatusCode::BAD_REQUEST, "need after=<arrival sequence number> and optionally limit=<integer>");
    };
    let limit = q.limit.unwrap_or(MAX_PAGE);
    if q.after < 0 || limit == 0 || limit > MAX_PAGE {
        return error(StatusCode::BAD_REQUEST, format!("need after >= 0 and limit 1 to {MAX_PAGE}"));
    }
    let mut body = EventsBody::new("", q.after);
    'fill: while body.count < limit {
        let want = (limit - body.count).min(FETCH_ROWS) as usize;
        let filter = nostr::Filter::new().limit(want);
        let events = match state.store.query(&[filter], want, want, Some(body.next_after)).await {
            Ok(events) => events,
            Err(e) => return log_error(e.into()),
        };
        let got = events.len();
        for e in events {
            let item = format!("{{\"seq\":{},\"event\":{}}}", e.seq, e.json);
            if !body.push(e.seq, &item) {
                break 'fill;
            }
        }
        if got < want {
            break;
        }
    }
    body.finish()
}
