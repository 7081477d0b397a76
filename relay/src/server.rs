//! The server: wires the stages together and serves one port.
//!
//! - `GET /` with `Upgrade: websocket` → a `socket` task;
//!   with `Accept: application/nostr+json` → the NIP-11 document (CORS open).
//! - `GET /health` → 200 once the relay accepts events (503 while shutting down).
//! - `GET /metrics` → Prometheus text.
//! - `GET /federation/peers`, `/federation/registry` (public) → `fedapi`.
//! - `GET /explorer/` and its files → `explorer` (the web page, embedded in the binary).
//! - `/log/*` (public) and `/events`, `/sessions/...` (NIP-98 auth when reads need auth): `logapi`.
//!
//! Shutdown (SIGTERM/SIGINT): stop accepting, close sockets after their pending OKs, let the
//! writer commit what is queued, then exit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::distribute::Mirror;
use crate::fanout::Fanout;
use crate::ingest::Ingest;
use crate::limits::{ConnectionLimits, RateLimits, Refusal};
use crate::metrics as m;
use crate::store::Store;
use crate::store::writer::Writer;

/// Bytes each WebSocket connection reads at a time: a few typical events per read, and a
/// small fixed cost per idle connection.
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// Shared state of the running relay.
pub struct AppState {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub ingest: Ingest,
    pub fanout: Fanout,
    pub rates: Arc<RateLimits>,
    pub connections: Arc<ConnectionLimits>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    metrics: PrometheusHandle,
    info: String,
    /// Federation status, when the bridge runs.
    pub bridge: std::sync::OnceLock<Arc<dephy_bridge::Status>>,
    /// Turns for streaming large stored results (see `socket::bulk`).
    pub bulk: crate::socket::bulk::BulkSlots,
}

/// Runs the relay until SIGTERM or SIGINT.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    cfg.validate()?;
    raise_fd_limit();
    let metrics = m::install()?;
    let keys = crate::identity::load_or_create(&cfg.key_file)?;
    let store = Store::open(&cfg.db, &cfg.store).await.with_context(|| format!("cannot open database {}", cfg.db))?;
    let anchor = crate::anchor::Anchor::from_config(&cfg.anchor)?;
    if let Some(anchor) = &anchor {
        tracing::info!(rpc_url = anchor.rpc_url(), pubkey = %anchor.pubkey(), "anchoring checkpoints on Solana");
    }
    let anchor_pubkey = anchor.as_ref().map(|a| a.pubkey().to_string());
    let cfg = Arc::new(cfg);

    let start_seq = store.last_seq().await?;
    let fanout = Fanout::new(start_seq).with_budget(crate::budget::Budget::new(
        cfg.limits.max_output_bytes_per_connection,
        cfg.limits.max_output_bytes_total,
    ));
    let (fanout_tx, fanout_rx) = tokio::sync::mpsc::channel(8192);
    let fanout_task = tokio::spawn(fanout.clone().run(fanout_rx));
    let (mirror, outgoing) = match &cfg.bridge {
        Some(_) => {
            let (tx, rx) = dephy_bridge::outgoing_channel();
            (Some(Mirror(tx)), Some(rx))
        }
        None => (None, None),
    };
    // writer (and ingest, for ephemeral events) → committed stream → distribute → fan-out, bridge
    let (committed_tx, committed_rx) = crate::distribute::stream();
    let distribute_task = tokio::spawn(crate::distribute::run(committed_rx, fanout_tx.clone(), mirror));
    let (writer, writer_task) =
        Writer::spawn(store.clone(), committed_tx.clone(), fanout.committed().clone(), cfg.store.max_batch, 16_384);
    let listener_task = match &store {
        Store::Postgres(pg) => {
            let pg = pg.clone();
            let tx = fanout_tx.clone();
            Some(tokio::spawn(async move { pg.listen(start_seq, tx).await }))
        }
        Store::Sqlite(_) => None,
    };
    // Fan-out stops once distribute and the listener, its only producers, have stopped.
    drop(fanout_tx);
    let rates = Arc::new(RateLimits::new(&cfg.limits));
    let shutdown = CancellationToken::new();
    let state = Arc::new(AppState {
        info: crate::info::document(&cfg, &keys.public_key().to_hex(), anchor_pubkey.as_deref()).to_string(),
        ingest: Ingest::new(cfg.clone(), rates.clone(), writer, committed_tx, store.clone()),
        connections: ConnectionLimits::new(&cfg.limits),
        cfg: cfg.clone(),
        store: store.clone(),
        fanout,
        rates,
        shutdown: shutdown.clone(),
        tracker: TaskTracker::new(),
        metrics,
        bridge: std::sync::OnceLock::new(),
        bulk: crate::socket::bulk::BulkSlots::per_core(),
    });
    let bridge = match (&cfg.bridge, outgoing) {
        (Some(bridge_cfg), Some(outgoing)) => {
            let port = Arc::new(crate::federation::Port::new(&state, keys.public_key().to_bytes()));
            let bridge = dephy_bridge::Bridge::start(bridge_cfg, port, cfg.limits.max_event_bytes, outgoing)
                .await
                .context("cannot start the federation bridge ([bridge] section)")?;
            let _ = state.bridge.set(bridge.status());
            Some(bridge)
        }
        _ => None,
    };
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let release_memory = tokio::spawn(crate::memory::release_freed());
    let checkpoints = tokio::spawn(crate::checkpoint::run(state.clone(), keys.clone(), anchor));

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {} (is another process using it? pass --listen)", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, db = store.backend_name(), pubkey = %keys.public_key(), "relay ready");

    let app = Router::new()
        .route("/", get(root).options(preflight))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/log/checkpoint", get(crate::logapi::checkpoint))
        .route("/log/checkpoints", get(crate::logapi::checkpoints))
        .route("/log/proof/inclusion", get(crate::logapi::inclusion))
        .route("/log/proof/consistency", get(crate::logapi::consistency))
        .route("/log/entries", get(crate::logapi::entries))
        .route("/federation/peers", get(crate::fedapi::peers))
        .route("/federation/registry", get(crate::fedapi::registry))
        .route("/explorer", get(crate::explorer::redirect))
        .route("/explorer/", get(crate::explorer::index))
        .route("/explorer/{file}", get(crate::explorer::file))
        .merge(
            // Paths that return event content: the read-auth policy applies (NIP-98).
            Router::new()
                .route("/events", get(crate::logapi::events_after))
                .route("/sessions/{author}/{session}/events", get(crate::logapi::session_events))
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::http_auth::require_read)),
        )
        .with_state(state.clone());
    let signal = shutdown_signal(shutdown.clone());
    // TCP_NODELAY and TCP_QUICKACK on every connection (see `listener`); `tap_io` only gives
    // axum's `ConnectInfo<SocketAddr>` for a listener of our own.
    let listener = crate::listener::Listener::new(listener).tap_io(|_| ());
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(signal)
        .await
        .context("server error")?;

    tracing::info!("shutting down: closing connections");
    housekeeping.abort();
    release_memory.abort();
    checkpoints.abort();
    let tracker = state.tracker.clone();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(15), tracker.wait()).await.is_err() {
        tracing::warn!("some connections did not close in time");
    }
    if let Some(task) = listener_task {
        task.abort();
    }
    if let Some(bridge) = bridge {
        bridge.stop().await;
    }
    // Dropping the last state handle drops the writer's sender: it commits what is queued, then stops.
    drop(state);
    if tokio::time::timeout(Duration::from_secs(30), writer_task).await.is_err() {
        tracing::error!("writer did not finish in time");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), distribute_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), fanout_task).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = token.cancelled() => {}
    }
    tracing::info!("shutdown signal received");
    token.cancel();
}

/// Periodic chores: purge expired events, forget idle rate-limit keys.
async fn housekeeping(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(state.cfg.store.purge_interval_secs.max(1)));
    loop {
        tick.tick().await;
        match state.store.purge_expired().await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!(m::EXPIRED_PURGED).increment(n);
                tracing::debug!(purged = n, "purged expired events");
            }
            Err(e) => tracing::warn!(error = %e, "purging expired events failed"),
        }
        state.rates.forget_idle();
    }
}

async fn root(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let wants_info = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("application/nostr+json"));
    match ws {
        Ok(ws) if !wants_info => upgrade(state, addr.ip(), headers, ws),
        _ if wants_info => {
            let mut resp = (StatusCode::OK, state.info.clone()).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/nostr+json"));
            cors(h);
            resp
        }
        _ => (
            StatusCode::OK,
            "This is a Nostr relay: connect with a Nostr client over WebSocket, or request \
             application/nostr+json for its NIP-11 information document.\n",
        )
            .into_response(),
    }
}

fn upgrade(state: Arc<AppState>, ip: IpAddr, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "relay is shutting down\n").into_response();
    }
    let slot = match state.connections.acquire(ip) {
        Ok(slot) => slot,
        Err(refusal) => {
            metrics::counter!(m::CONNECTIONS_REFUSED).increment(1);
            return match refusal {
                Refusal::TooManyConnections => {
                    (StatusCode::SERVICE_UNAVAILABLE, "too many connections; try again later\n").into_response()
                }
                Refusal::TooManyFromIp => {
                    (StatusCode::TOO_MANY_REQUESTS, "too many connections from your address\n").into_response()
                }
            };
        }
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
    let limits = &state.cfg.limits;
    // Frames past the configured limit (up to twice it) are read and answered with a NOTICE;
    // anything larger closes the connection.
    let hard_limit = limits.max_message_bytes.saturating_mul(2).max(64 * 1024);
    let tracker = state.tracker.clone();
    // The read buffer is held by every connection, idle or not (it grows for a larger frame).
    ws.max_message_size(hard_limit)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(8 * 1024)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| tracker.track_future(crate::socket::serve(socket, state, ip, host, slot)))
}

async fn preflight() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    cors(resp.headers_mut());
    resp
}

fn cors(h: &mut HeaderMap) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, OPTIONS"));
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let mut body = serde_json::json!({
        "status": "ok",
        "db": state.store.backend_name(),
        "connections": state.connections.open(),
    });
    if let Some(bridge) = state.bridge.get() {
        body["bridge"] = bridge.json();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

/// Raises the open-file soft limit to the hard limit: every connection is a descriptor.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
