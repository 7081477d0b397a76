//! Cross-process live delivery on PostgreSQL: gap-free and exactly once.
//!
//! Every process tails the `events` table from the last arrival sequence it dispatched (its
//! cursor). `NOTIFY` is only a hint that there is something new; what gets delivered is always
//! read from the database with `seq > cursor ORDER BY seq`, after every notification from
//! another process, after every (re)connection of the listener, and every
//! [`POLL_INTERVAL`] in any case. So a notification lost while the listener reconnects delays
//! delivery, it never loses an event.
//!
//! Why reading `seq > cursor` misses nothing: writers assign sequence numbers and commit while
//! holding one transaction-level advisory lock, and PostgreSQL makes a transaction visible
//! before it releases its locks. So when a reader sees sequence `N`, every transaction that took
//! a smaller number has already ended; a smaller number that is not visible then (a rolled-back
//! batch, an `ON CONFLICT` that consumed a value, a deleted row) never will be.
//!
//! This process's own events reach its fan-out from the writer, right after the commit. The
//! store records their sequence numbers *before* committing (see `PgStore::write_batch`), so the
//! tail skips exactly those and delivers everything else once, in sequence order.
//!
//! Ephemeral events are not stored, so they travel in the notification itself (or in
//! `ephemeral_outbox` when too large): best effort, lost if sent while the listener reconnects.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt;
use nostr::{Event, JsonUtil};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{Notify, mpsc};

use super::postgres::{EPHEMERAL_CHANNEL, EphemeralNote, PgStore, STORED_CHANNEL, StoredNote};
use crate::fanout::Delivery;
use crate::metrics as m;

/// How often the tail reads the database even without a notification.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Sequence numbers looked at per page (one index scan, no event bodies).
const PAGE_SEQS: i64 = 1024;
/// Event bytes read per page: the page stops after the event that reaches this.
const PAGE_BYTES: usize = 4 << 20;
/// Pause before reconnecting a listener whose connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// The `application_name` of this process's LISTEN connection (visible in `pg_stat_activity`).
pub fn listener_name() -> String {
    format!("dephy-relay listener {}", std::process::id())
}

impl PgStore {
    /// Delivers every stored event committed by other processes after arrival sequence `from`
    /// to `deliver`, in sequence order and exactly once, and the ephemeral events they announce.
    /// Survives lost connections; returns when `deliver` is closed.
    pub async fn listen(&self, from: i64, deliver: mpsc::Sender<Delivery>) {
        let cursor = AtomicI64::new(from);
        let wake = Notify::new();
        tokio::select! {
            _ = self.notifications(&cursor, &wake, &deliver) => {}
            _ = self.tail(&cursor, &wake, &deliver) => {}
        }
    }

    /// Keeps a LISTEN connection open; wakes the tail after each (re)connection and for each
    /// notification of new rows past the cursor; forwards ephemeral events.
    async fn notifications(&self, cursor: &AtomicI64, wake: &Notify, deliver: &mpsc::Sender<Delivery>) {
        let opts = match PgConnectOptions::from_str(&self.url) {
            Ok(o) => o.application_name(&listener_name()),
            Err(e) => {
                tracing::error!(error = %e, "invalid PostgreSQL URL for the listener; no cross-process delivery");
                return std::future::pending().await;
            }
        };
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(opts);
        let mut connected_before = false;
        loop {
            let listener = async {
                let mut l = PgListener::connect_with(&pool).await?;
                l.ignore_pool_close_event(true);
                l.listen_all([STORED_CHANNEL, EPHEMERAL_CHANNEL]).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = match listener.await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL listener cannot connect; retrying");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            };
            if connected_before {
                metrics::counter!(m::PG_LISTENER_RECONNECTS).increment(1);
                tracing::info!("PostgreSQL listener reconnected; reading what was missed");
            }
            connected_before = true;
            // LISTEN is active: whatever commits from now on is notified, the rest is read.
            wake.notify_one();
            loop {
                match listener.try_recv().await {
                    Ok(Some(note)) if note.channel() == STORED_CHANNEL => {
                        if let Ok(n) = serde_json::from_str::<StoredNote>(note.payload())
                            && n.o != self.origin
                            && n.last > cursor.load(Ordering::SeqCst)
                        {
                            wake.notify_one();
                        }
                    }
                    Ok(Some(note)) => {
                        if let Some(d) = self.ephemeral(note.payload()).await
                            && deliver.send(d).await.is_err()
                        {
                            return;
                        }
                    }
                    // Lost and already re-established (eager reconnect, LISTEN re-issued).
                    Ok(None) => {
                        metrics::counter!(m::PG_LISTENER_RECONNECTS).increment(1);
                        tracing::info!("PostgreSQL listener reconnected; reading what was missed");
                        wake.notify_one();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "PostgreSQL listener failed; reconnecting");
                        break;
                    }
                }
            }
            drop(listener);
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    /// An ephemeral event announced by another process, if it can still be read.
    async fn ephemeral(&self, payload: &str) -> Option<Delivery> {
        let n = serde_json::from_str::<EphemeralNote>(payload).ok().filter(|n| n.o != self.origin)?;
        let raw = match (n.e, n.x) {
            (Some(e), _) => e.get().to_string(),
            (None, Some(id)) => {
                let row: Result<Option<(String,)>, _> =
                    sqlx::query_as("SELECT raw FROM ephemeral_outbox WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await;
                match row {
                    Ok(row) => row?.0,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read an ephemeral event from ephemeral_outbox");
                        return None;
                    }
                }
            }
            (None, None) => return None,
        };
        let ev = Event::from_json(&raw).ok()?;
        Some(Delivery::new(None, Arc::new(ev), raw.into()))
    }

    /// Reads and delivers everything after the cursor whenever woken, and every
    /// [`POLL_INTERVAL`]. Returns when `deliver` is closed.
    async fn tail(&self, cursor: &AtomicI64, wake: &Notify, deliver: &mpsc::Sender<Delivery>) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tick.tick() => {}
            }
            loop {
                match self.tail_page(cursor, deliver).await {
                    Ok(Page::More) => continue,
                    Ok(Page::Done) => break,
                    Ok(Page::Closed) => return,
                    Err(e) => {
                        // Retried on the next wake-up or tick, from the same cursor.
                        tracing::warn!(error = %e, "reading events of other processes failed");
                        break;
                    }
                }
            }
        }
    }

    /// One bounded page: up to [`PAGE_SEQS`] sequence numbers and about [`PAGE_BYTES`] of events.
    async fn tail_page(&self, cursor: &AtomicI64, deliver: &mpsc::Sender<Delivery>) -> Result<Page, sqlx::Error> {
        let from = self.skip_own_run(cursor.load(Ordering::SeqCst));
        cursor.store(from, Ordering::SeqCst);
        let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(from)
            .bind(PAGE_SEQS)
            .fetch_all(&self.pool)
            .await?;
        let Some(&last) = seqs.last() else {
            return Ok(Page::Done);
        };
        let full = seqs.len() as i64 == PAGE_SEQS;
        let foreign: Vec<i64> = {
            let own = self.own.lock().expect("own seqs lock");
            seqs.into_iter().filter(|s| !own.contains(s)).collect()
        };
        // Everything up to `upto` has been dispatched (by the writer, by us, or never existed).
        let mut upto = last;
        let mut cut = false;
        if !foreign.is_empty() {
            let mut rows =
                sqlx::query_as::<_, (i64, String)>("SELECT seq, raw FROM events WHERE seq = ANY($1) ORDER BY seq")
                    .bind(&foreign)
                    .fetch(&self.pool);
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            while let Some((seq, raw)) = rows.try_next().await? {
                bytes += raw.len();
                match Event::from_json(&raw) {
                    Ok(ev) => batch.push(Delivery::new(Some(seq), Arc::new(ev), raw.into())),
                    Err(e) => tracing::error!(seq, error = %e, "stored event does not parse; not delivered live"),
                }
                if bytes >= PAGE_BYTES && foreign.last() != Some(&seq) {
                    upto = seq;
                    cut = true;
                    break;
                }
            }
            drop(rows);
            metrics::counter!(m::PG_EVENTS_FROM_OTHERS).increment(batch.len() as u64);
            for d in batch {
                if deliver.send(d).await.is_err() {
                    return Ok(Page::Closed);
                }
            }
        }
        cursor.store(upto, Ordering::SeqCst);
        self.forget_own_through(upto);
        Ok(if full || cut { Page::More } else { Page::Done })
    }

    /// Moves the cursor over this process's own sequence numbers that directly follow it: no
    /// other process can hold a number inside that run, so there is nothing to read there.
    fn skip_own_run(&self, mut cursor: i64) -> i64 {
        let mut own = self.own.lock().expect("own seqs lock");
        while own.remove(&(cursor + 1)) {
            cursor += 1;
        }
        cursor
    }

    /// Forgets own sequence numbers at or below `seq`: dispatched by the writer or never committed.
    fn forget_own_through(&self, seq: i64) {
        let mut own = self.own.lock().expect("own seqs lock");
        *own = own.split_off(&(seq + 1));
    }
}

enum Page {
    More,
    Done,
    Closed,
}
