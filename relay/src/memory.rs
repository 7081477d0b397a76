//! Gives freed heap memory back to the operating system.
//!
//! glibc keeps what a thread frees in that thread's arena for reuse; only the top of an arena
//! is ever returned by itself. A relay's allocations come in bursts (a group commit's batch,
//! a page of query results, a spike of connections), spread over a dozen threads (tokio
//! workers, one per SQLite connection), so after a burst most of the freed memory stayed
//! resident: a third of the relay's anonymous memory after a REQ load was free chunks.
//! `malloc_trim(0)` hands the free pages of every arena back (`MADV_DONTNEED`); it runs once
//! per [`PERIOD`] on a blocking thread and takes well under a millisecond on a relay's heap.
//! Other allocators and platforms need nothing here.

use std::time::Duration;

/// How often freed memory is returned.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Returns freed memory every [`PERIOD`], until the task is dropped.
pub async fn release_freed() {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if tokio::task::spawn_blocking(trim).await.is_err() {
            return;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes the arenas' own locks; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
