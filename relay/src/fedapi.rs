//! The federation's JSON endpoints, for the explorer and operators (public, like `/health`:
//! they show node identities and registry state, never event content, so read auth does not
//! apply to them; see `http_auth`):
//!
//! - `GET /federation/peers`: this node (network, PeerId, wallet, readiness, listen addresses)
//!   and every peer seen since start: wallet, PeerId, `online` (connected now),
//!   `connected_since`, `last_seen` (unix seconds; now while connected), `registry` standing
//!   (`active`, `inactive`, `missing`).
//! - `GET /federation/registry`: the registry's health (`status`: backend, authorized nodes,
//!   last refresh, `stale` with its reason, last error; `refresh_age_secs`) and its entries as
//!   this node holds them: wallet, PeerId, `active`, the registry's `online` field, `domain`,
//!   `connected` (to this node now), `last_seen`, `self`.
//!
//! Both are bounded (`dephy_bridge::status::MAX_LISTED` rows, then `truncated: true`). Without
//! a `[bridge]` section both answer `{"enabled": false}` (200), so a page can say federation
//! is off.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server::AppState;

fn answer(body: Value) -> Response {
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn with_enabled(mut body: Value) -> Value {
    body["enabled"] = json!(true);
    body
}

/// `GET /federation/peers`.
pub async fn peers(State(state): State<Arc<AppState>>) -> Response {
    answer(state.bridge.get().map_or_else(|| json!({ "enabled": false }), |b| with_enabled(b.peers_json())))
}

/// `GET /federation/registry`.
pub async fn registry(State(state): State<Arc<AppState>>) -> Response {
    answer(state.bridge.get().map_or_else(|| json!({ "enabled": false }), |b| with_enabled(b.registry_json())))
}
