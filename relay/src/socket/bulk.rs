//! Turns for streaming large stored results, so a few big REQs cannot crowd out small ones.
//!
//! A REQ whose filters may return more than [`SMALL_REQ_EVENTS`] events in all is *bulk*: each
//! of its batches is read from the database and written to the client while holding one of a
//! few slots (about one per core). The slots are handed out in FIFO order, so bulk REQs take
//! turns batch by batch, and at most that many of them use the database pool and the CPU at
//! once. Small REQs (DePHY's state recovery, a page of a session) never wait for a slot: a
//! client asking one gets its answer while hundreds of bulk REQs stream.
//!
//! A connection keeps its slot only while its write makes progress: once a write has waited
//! [`SLOT_HOLD`] on a client that does not read, the slot goes to the next bulk REQ and the write
//! goes on without it (bounded by `write_timeout_secs` as any write).

use std::sync::Arc;
use std::time::Duration;

use nostr::Filter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// REQs whose filters together may return at most this many events are never queued.
pub const SMALL_REQ_EVENTS: usize = 256;
/// How long a bulk write may wait on its client while holding a slot.
pub const SLOT_HOLD: Duration = Duration::from_millis(20);

/// The bulk streaming slots of the relay.
pub struct BulkSlots(Arc<Semaphore>);

impl BulkSlots {
    /// `slots` bulk batches at a time (at least one).
    pub fn new(slots: usize) -> Self {
        Self(Arc::new(Semaphore::new(slots.max(1))))
    }

    /// One slot per core of this machine.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// Waits for a slot (FIFO).
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        self.0.clone().acquire_owned().await.expect("the bulk semaphore is never closed")
    }
}

/// Whether a REQ with these filters may return more than [`SMALL_REQ_EVENTS`] events.
pub fn is_bulk(filters: &[Filter], default_limit: usize, max_limit: usize) -> bool {
    let most: usize = filters.iter().map(|f| f.limit.unwrap_or(default_limit).min(max_limit)).sum();
    most > SMALL_REQ_EVENTS
}

/// Runs `work` (a write), giving `slot` back as soon as the work has taken [`SLOT_HOLD`].
pub async fn hold_while_progressing<F: Future>(slot: Option<OwnedSemaphorePermit>, work: F) -> F::Output {
    let Some(slot) = slot else { return work.await };
    let mut work = std::pin::pin!(work);
    tokio::select! {
        out = &mut work => out,
        _ = tokio::time::sleep(SLOT_HOLD) => {
            drop(slot);
            work.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_bulk_reqs() {
        let one = Filter::new().limit(1);
        assert!(!is_bulk(&[one.clone(), one.clone()], 500, 5000));
        assert!(is_bulk(&[Filter::new()], 500, 5000), "no limit: the default (500) applies");
        assert!(!is_bulk(&[Filter::new().limit(100), Filter::new().limit(100)], 500, 5000));
        assert!(is_bulk(&vec![Filter::new().limit(600); 16], 500, 5000));
        assert!(!is_bulk(&[Filter::new().limit(100_000)], 500, 200), "limits are clamped first");
    }

    #[tokio::test]
    async fn a_stalled_write_gives_its_slot_back() {
        let slots = BulkSlots::new(1);
        let slot = slots.acquire().await;
        let stalled =
            tokio::spawn(async move { hold_while_progressing(Some(slot), std::future::pending::<()>()).await });
        // The only slot comes back while the write is still stalled.
        let again = tokio::time::timeout(Duration::from_secs(10), slots.acquire()).await;
        assert!(again.is_ok(), "the slot was not released by a stalled write");
        assert!(!stalled.is_finished());
        stalled.abort();
    }

    #[tokio::test]
    async fn a_fast_write_keeps_its_slot_until_done() {
        let slots = BulkSlots::new(1);
        let slot = slots.acquire().await;
        assert_eq!(hold_while_progressing(Some(slot), async { 7 }).await, 7);
        assert!(slots.0.available_permits() == 1);
    }
}
