//! Federation: the relay's side of the bridge (`dephy-bridge`).
//!
//! When the configuration has a `[bridge]` section, the relay starts the bridge in-process.
//! Events a client got accepted go to the bridge through the writer's [`Mirror`] hand-off;
//! events from peers come back through [`Port`], into the same ingest stage as a client's
//! event (policy → writer → log → fan-out), so they are stored, logged and delivered to local
//! subscribers like any other. The policy is a client's too, rate limits included, with the
//! forwarding peer's wallet where a client is limited by IP (`Ingest::check_peer`).

use std::sync::{Arc, Weak};

use dephy_bridge::slice::Slice;
use dephy_bridge::{Committing, Ingested, Inventory, Received, RelayPort};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use nostr::Event;

use crate::ingest::answer;
use crate::server::AppState;
use crate::store::WriteOutcome;

/// The relay as the bridge sees it. Holds the relay state weakly, so a stopping relay is
/// never kept alive by its bridge.
pub struct Port {
    state: Weak<AppState>,
    /// The relay's own Nostr key: its checkpoints are not reconciled with peers.
    own_pubkey: [u8; 32],
}

impl Port {
    pub fn new(state: &Arc<AppState>, own_pubkey: [u8; 32]) -> Self {
        Self { state: Arc::downgrade(state), own_pubkey }
    }
}

const STOPPING: &str = "error: the relay is shutting down";

impl RelayPort for Port {
    fn check(&self, event: &Event, json_len: usize, forwarder: &[u8; 32]) -> Result<(), String> {
        let state = self.state.upgrade().ok_or(STOPPING)?;
        state.ingest.check_peer(event, json_len, forwarder)
    }

    /// A peer's event is read and checked as a client's EVENT is (`protocol::read_event`, then
    /// the ingest stage's id and signature check), and its text kept when it is canonical.
    fn read(&self, json: &str) -> Result<Received, String> {
        let state = self.state.upgrade().ok_or(STOPPING)?;
        let (event, json) = crate::protocol::read_event(json)?;
        state.ingest.verify(&event)?;
        Ok(Received { event: *event, json })
    }

    // The outer future resolves once the event is queued (so peers' events keep their order),
    // the `Committing` it yields once it is committed: yielding a future is the point.
    #[allow(clippy::async_yields_async)]
    fn submit(&self, event: Received) -> BoxFuture<'static, Committing> {
        let state = self.state.clone();
        async move {
            let Some(state) = state.upgrade() else {
                return async { Ingested::Refused(STOPPING.into()) }.boxed();
            };
            match state.ingest.submit_peer(event.event, event.json).await {
                None => async { Ingested::New }.boxed(),
                Some(rx) => async move {
                    match rx.await {
                        Ok(Ok(WriteOutcome::Stored { .. })) => Ingested::New,
                        Ok(Ok(WriteOutcome::Duplicate | WriteOutcome::Superseded)) => Ingested::Duplicate,
                        Ok(result) => Ingested::Refused(answer(result).1),
                        Err(_) => Ingested::Refused(STOPPING.into()),
                    }
                }
                .boxed(),
            }
        }
        .boxed()
    }

    fn inventory(&self, slice: Slice, limit: usize) -> BoxFuture<'static, Result<Inventory, String>> {
        let (state, own) = (self.state.clone(), self.own_pubkey);
        async move {
            let state = state.upgrade().ok_or(STOPPING)?;
            // Timestamps are stored as i64: a slice reaching beyond is cut at i64::MAX (no
            // stored event lies there), never wrapped.
            let secs = |s: u64| i64::try_from(s).ok();
            let from = secs(slice.from.0).ok_or("invalid: slice starts beyond the largest timestamp")?;
            let to = match secs(slice.to.0) {
                Some(to) => (to, slice.to.1),
                None => (i64::MAX, [0xff; 32]),
            };
            let rows = state
                .store
                .inventory((from, &slice.from.1), (to.0, &to.1), &own, limit)
                .await
                .map_err(|e| format!("error: {e}"))?;
            Ok(rows
                .into_iter()
                .filter_map(|(created_at, id)| Some((u64::try_from(created_at).ok()?, <[u8; 32]>::try_from(id).ok()?)))
                .collect())
        }
        .boxed()
    }

    fn fetch(&self, ids: Vec<[u8; 32]>) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let state = self.state.clone();
        async move {
            let state = state.upgrade().ok_or(STOPPING)?;
            state.store.raw_by_ids(&ids).await.map_err(|e| format!("error: {e}"))
        }
        .boxed()
    }
}
