//! Gives freed heap memory back to the operating system.
//!
//! The relay binary allocates through mimalloc (`main.rs`), which returns the pages it frees by
//! itself, within a fraction of a second after they empty (its purge delay). SQLite allocates
//! through glibc's malloc, which keeps what a thread frees in that thread's arena for reuse; only
//! the top of an arena is ever returned by itself. SQLite's allocations come in bursts (a group
//! commit's pages, a page of query results), spread over one thread per connection, so after a
//! burst most of the freed memory stayed resident. `malloc_trim(0)` hands the free pages of every
//! arena back (`MADV_DONTNEED`). It runs when the writer has been idle for a second (see
//! `store::writer`) and every [`PERIOD`], on a blocking thread: not more often, because memory
//! handed back is faulted in again by the next burst (once a second cost up to 10 µs of CPU per
//! ingested event). Other platforms need nothing here.

use std::time::Duration;

/// How often freed memory is returned regardless of load.
pub const PERIOD: Duration = Duration::from_secs(10);

/// Returns freed memory every [`PERIOD`], until the task is dropped.
pub async fn release_freed() {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        release_freed_now().await;
    }
}

/// Returns freed memory now (on a blocking thread).
pub async fn release_freed_now() {
    let _ = tokio::task::spawn_blocking(trim).await;
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
