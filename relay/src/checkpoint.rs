//! The checkpoint signer: periodically signs {tree_size, root_hash, timestamp} of the
//! verifiable log with the relay's key and publishes it as a kind-1574 event, stored, logged
//! and fanned out like any other event.
//!
//! With `[anchor]` configured, the root is first written to Solana (`crate::anchor`) and the
//! transaction signature goes into the checkpoint's `anchor`, so the relay's signature covers
//! it. A failed anchor is logged and the checkpoint is published unanchored: Solana being
//! unreachable never stops the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dephy_log::Checkpoint;
use nostr::{JsonUtil, Keys};

use crate::anchor::Anchor;
use crate::server::AppState;

/// Runs until the task is aborted.
pub async fn run(state: Arc<AppState>, keys: Keys, anchor: Option<Anchor>) {
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
        // With several processes on one PostgreSQL database, exactly one signs.
        if !state.store.is_checkpoint_signer().await {
            continue;
        }
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
        match sign(&state, &keys, anchor.as_ref(), size).await {
            Ok(cp) => {
                tracing::info!(
                    tree_size = cp.tree_size,
                    root = %hex::encode(cp.root_hash),
                    anchor = cp.anchor.as_deref().unwrap_or("none"),
                    "signed checkpoint"
                );
                last_size = size;
                last_time = Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "cannot sign a checkpoint"),
        }
    }
}

/// Signs and publishes a checkpoint of the first `size` leaves, anchored first when `anchor`
/// is given (unanchored, with a warning, if that fails).
pub async fn sign(state: &AppState, keys: &Keys, anchor: Option<&Anchor>, size: u64) -> anyhow::Result<Checkpoint> {
    let root = state.store.log_root(size).await?;
    let anchor = match anchor {
        Some(anchor) => match anchor.anchor(size, &root).await {
            Ok(signature) => Some(signature),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), tree_size = size, "cannot anchor the checkpoint on Solana; publishing it unanchored");
                None
            }
        },
        None => None,
    };
    let cp = Checkpoint { tree_size: size, root_hash: root, timestamp: crate::store::now_secs() as u64, anchor };
    let event = cp.to_event(keys);
    state.store.save_checkpoint(&cp, &event.as_json()).await?;
    let _ = state.ingest.submit_own(event).await.await;
    Ok(cp)
}
