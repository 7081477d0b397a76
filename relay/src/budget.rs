//! Output byte budgets: what each connection holds for its client, and the total.
//!
//! Every byte a connection holds on the way to its client is charged here: live events in its
//! outbound queue (charged by the fan-out stage when queued, released by the socket task once
//! written), the batch of stored results it is writing, and the state its NIP-77 negentropy
//! sessions keep between messages (their `(created_at, id)` records). A connection whose live queue alone
//! passes `max_output_bytes_per_connection` is closed as a slow reader. When the total over all
//! connections passes `max_output_bytes_total`, the connections holding the most are closed
//! first, until what the others hold fits again; connections already closing are counted as
//! gone, never closed twice. The socket task reads [`Usage::reason`] for its NOTICE and close
//! frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::metrics as m;

/// The close reason of a connection shed by the global budget.
pub const TOTAL_REASON: &str = "relay output budget exhausted: your connection held the most queued output";

/// One connection's charged bytes.
#[derive(Default)]
pub struct Usage {
    live: AtomicUsize,
    page: AtomicUsize,
    /// Session state kept for the client (negentropy records).
    held: AtomicUsize,
    closing: AtomicBool,
    reason: Mutex<Option<String>>,
    /// Cancelled when the connection must be closed (slow reader, budget).
    pub kicked: CancellationToken,
}

impl Usage {
    /// Bytes charged to this connection.
    pub fn bytes(&self) -> usize {
        self.live.load(Ordering::SeqCst) + self.page.load(Ordering::SeqCst) + self.held.load(Ordering::SeqCst)
    }

    /// Why the connection was told to close, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().expect("reason lock").clone()
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

/// The per-connection and total output budgets.
pub struct Budget {
    per_connection: usize,
    max_total: usize,
    total: AtomicUsize,
    conns: Mutex<HashMap<u64, Arc<Usage>>>,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(usize::MAX, usize::MAX)
    }
}

impl Budget {
    pub fn new(per_connection: usize, max_total: usize) -> Self {
        Self { per_connection, max_total, total: AtomicUsize::new(0), conns: Mutex::default() }
    }

    pub fn per_connection(&self) -> usize {
        self.per_connection
    }

    /// Bytes charged over all connections.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Starts accounting for connection `id`.
    pub fn open(&self, id: u64) -> Arc<Usage> {
        let usage = Arc::new(Usage::default());
        self.conns.lock().expect("budget lock").insert(id, usage.clone());
        usage
    }

    /// Stops accounting for connection `id`, releasing whatever it still held (its queue is
    /// dropped). Called once nothing can charge it any more.
    pub fn close(&self, id: u64) {
        if let Some(u) = self.conns.lock().expect("budget lock").remove(&id) {
            let held =
                u.live.swap(0, Ordering::SeqCst) + u.page.swap(0, Ordering::SeqCst) + u.held.swap(0, Ordering::SeqCst);
            self.sub_total(held);
        }
    }

    /// Charges a live event queued to `u`; closes `u` if its live queue passes its budget.
    pub fn charge_live(&self, u: &Usage, n: usize) {
        let live = u.live.fetch_add(n, Ordering::SeqCst) + n;
        self.add_total(n);
        if live > self.per_connection {
            let reason = format!(
                "slow reader: more than {} bytes of live events queued for this connection",
                self.per_connection
            );
            self.kick(u, reason, "connection_budget");
        }
        self.check_total();
    }

    pub fn release_live(&self, u: &Usage, n: usize) {
        u.live.fetch_sub(n, Ordering::SeqCst);
        self.sub_total(n);
    }

    /// Charges a batch of stored results `u` is writing.
    pub fn charge_page(&self, u: &Usage, n: usize) {
        u.page.fetch_add(n, Ordering::SeqCst);
        self.add_total(n);
        self.check_total();
    }

    pub fn release_page(&self, u: &Usage, n: usize) {
        u.page.fetch_sub(n, Ordering::SeqCst);
        self.sub_total(n);
    }

    /// Charges session state `u` keeps for its client (negentropy records). Like a stored
    /// batch it counts towards the total, so the connection holding the most goes first.
    pub fn charge_held(&self, u: &Usage, n: usize) {
        u.held.fetch_add(n, Ordering::SeqCst);
        self.add_total(n);
        self.check_total();
    }

    /// Releases session state; only before [`Budget::close`] (which releases whatever is left).
    pub fn release_held(&self, u: &Usage, n: usize) {
        u.held.fetch_sub(n, Ordering::SeqCst);
        self.sub_total(n);
    }

    /// Tells `u` to close for `reason` (once); `label` is the metric's reason label.
    pub fn kick(&self, u: &Usage, reason: String, label: &'static str) {
        if u.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        *u.reason.lock().expect("reason lock") = Some(reason);
        metrics::counter!(m::SLOW_READERS, "reason" => label).increment(1);
        u.kicked.cancel();
    }

    fn add_total(&self, n: usize) {
        let t = self.total.fetch_add(n, Ordering::SeqCst) + n;
        metrics::gauge!(m::OUTPUT_BYTES).set(t as f64);
    }

    fn sub_total(&self, n: usize) {
        let t = self.total.fetch_sub(n, Ordering::SeqCst) - n;
        metrics::gauge!(m::OUTPUT_BYTES).set(t as f64);
    }

    /// Over the total budget: closes the largest holders until the rest fits.
    fn check_total(&self) {
        if self.total() <= self.max_total {
            return;
        }
        let conns = self.conns.lock().expect("budget lock");
        let mut projected = self.total();
        let mut open: Vec<(usize, &Arc<Usage>)> = Vec::new();
        for u in conns.values() {
            if u.is_closing() {
                projected = projected.saturating_sub(u.bytes());
            } else {
                open.push((u.bytes(), u));
            }
        }
        open.sort_by_key(|o| std::cmp::Reverse(o.0));
        for (bytes, u) in open {
            if projected <= self.max_total || bytes == 0 {
                break;
            }
            projected -= bytes.min(projected);
            tracing::info!(bytes, "output budget exhausted: closing the largest holder");
            self.kick(u, TOTAL_REASON.to_string(), "total_budget");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_queue_over_the_connection_budget_closes_it() {
        let b = Budget::new(100, usize::MAX);
        let u = b.open(1);
        b.charge_live(&u, 60);
        b.charge_page(&u, 500);
        assert!(!u.is_closing(), "a stored page does not count towards the live limit");
        b.charge_live(&u, 60);
        assert!(u.is_closing());
        assert!(u.reason().unwrap().starts_with("slow reader: "));
        b.close(1);
        assert_eq!(b.total(), 0, "closing releases what the connection held");
    }

    #[test]
    fn total_budget_closes_the_largest_first_and_not_twice() {
        let b = Budget::new(usize::MAX, 1000);
        let (small, mid, big) = (b.open(1), b.open(2), b.open(3));
        b.charge_live(&small, 100);
        b.charge_live(&mid, 300);
        b.charge_live(&big, 500);
        assert!(!small.is_closing() && !mid.is_closing() && !big.is_closing());
        b.charge_live(&small, 200); // total 1100: closing big (500) is enough
        assert!(big.is_closing());
        assert_eq!(big.reason().as_deref(), Some(TOTAL_REASON));
        assert!(!small.is_closing() && !mid.is_closing());
        // Still over while big drains: big counts as gone, so 600 fits and nobody else closes.
        b.charge_page(&mid, 50);
        assert!(!small.is_closing() && !mid.is_closing());
        // Past the budget without big: the largest remaining (mid, 350) goes.
        b.charge_live(&small, 500);
        assert!(!mid.is_closing() && small.is_closing(), "small now holds 800, the most");
    }

    #[test]
    fn held_session_state_counts_towards_the_total_not_the_live_limit() {
        let b = Budget::new(100, 1000);
        let (a, c) = (b.open(1), b.open(2));
        b.charge_held(&a, 600);
        assert!(!a.is_closing(), "held state is not a live queue");
        b.charge_live(&c, 50);
        b.charge_held(&a, 400); // total 1050: a holds the most
        assert!(a.is_closing() && !c.is_closing());
        b.release_held(&a, 1000);
        assert_eq!(a.bytes(), 0);
        b.close(1);
        b.close(2);
        assert_eq!(b.total(), 0);
    }
}
