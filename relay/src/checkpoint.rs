//! The checkpoint signer: periodically signs {tree_size, root_hash, timestamp} of the
//! verifiable log with the relay's key and publishes it as a kind-1574 event, stored, logged
//! and fanned out like any other event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dephy_log::Checkpoint;
use nostr::{JsonUtil, Keys};

use crate::server::AppState;

/// Runs until the task is aborted.
pub async fn run(state: Arc<AppState>, keys: Keys) {
    let cfg = state.cfg.log.clone();
    if cfg.checkpoint_interval_secs == 0 && cfg.checkpoint_every_events == 0 {
        return;
    }
    let mut last_size = match state.store.checkpoints(None, 1).await {
        Ok(latest) => latest
            .first()
            .and_then(|json| nostr::Event::from_json(json).ok())
            .and_then(|ev| Checkpoint::from_event(&ev, None).ok())
            .map_or(0, |cp| cp.tree_size),
        Err(_) => 0,
    };
    let mut last_time = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let size = match state.store.log_size().await {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the log size");
                continue;
            }
        };
        // The previous checkpoint event is itself a leaf: a log that grew only by it needs none.
        let grown = size.saturating_sub(last_size);
        let by_count = cfg.checkpoint_every_events > 0 && grown >= cfg.checkpoint_every_events;
        let by_time = cfg.checkpoint_interval_secs > 0
            && grown > 1
            && last_time.elapsed() >= Duration::from_secs(cfg.checkpoint_interval_secs);
        if !(by_count || by_time) {
            continue;
        }
        match sign(&state, &keys, size).await {
            Ok(cp) => {
                tracing::info!(tree_size = cp.tree_size, root = %hex::encode(cp.root_hash), "signed checkpoint");
                last_size = size;
                last_time = Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "cannot sign a checkpoint"),
        }
    }
}

/// Signs and publishes a checkpoint of the first `size` leaves.
pub async fn sign(state: &AppState, keys: &Keys, size: u64) -> anyhow::Result<Checkpoint> {
    let root = state.store.log_root(size).await?;
    let cp = Checkpoint { tree_size: size, root_hash: root, timestamp: crate::store::now_secs() as u64, anchor: None };
    let event = cp.to_event(keys);
    state.store.save_checkpoint(&cp, &event.as_json()).await?;
    let _ = state.ingest.submit_own(event).await.await;
    Ok(cp)
}
