//! When catch-up sessions run: one at a time per peer, when a connection is established, and
//! again after a pause whenever events from that peer were refused by the relay's rate limits.
//!
//! Rate limits apply to peers' events as to a client's (`RelayPort::check`). An event over them
//! is valid, and the peer that sent it holds it, so it must not be lost: a gossip message over
//! the limits is dropped (not forwarded, no penalty) and the validator asks for a session with
//! its forwarder; a catch-up session that had events deferred asks for a follow-up. A follow-up
//! starts [`RESYNC_DELAY`] after the previous session ends, while the limits refill, and finds
//! the refused events again among those the peer holds and this node does not. Requests for a
//! peer whose session is running are merged into one follow-up, so a flood of refusals costs at
//! most one session per peer per [`RESYNC_DELAY`]; after [`MAX_FOLLOW_UPS`] follow-ups in a row
//! the node stops (with a warning) until the next connection or refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;

use crate::metrics as m;
use crate::port::RelayPort;
use crate::status::Status;
use crate::sync::{self, Requester, SyncLimits};

/// How long after a failed session a peer must stay connected for the failure to be reported
/// (see `CatchUps::stays_connected`).
const DISCONNECT_GRACE: Duration = Duration::from_millis(500);

/// Pause before a follow-up session, so the rate limits refill part of their budget.
pub const RESYNC_DELAY: Duration = Duration::from_secs(3);
/// Most follow-up sessions in a row with one peer.
pub const MAX_FOLLOW_UPS: u32 = 40;

/// Starts catch-up sessions; cheap to clone.
#[derive(Clone)]
pub struct CatchUps {
    requester: Requester,
    relay: Arc<dyn RelayPort>,
    limits: SyncLimits,
    /// Which peers are connected: a session that failed because its connection went away is
    /// not worth a warning (a refusal is reported once, on close).
    status: Arc<Status>,
    /// Peers with a session running or waiting to start; `true` when another was asked for
    /// since it started.
    running: Arc<Mutex<HashMap<PeerId, bool>>>,
}

impl CatchUps {
    pub fn new(requester: Requester, relay: Arc<dyn RelayPort>, limits: SyncLimits, status: Arc<Status>) -> Self {
        Self { requester, relay, limits, status, running: Arc::default() }
    }

    /// A session with `peer` after `delay`; if one is running, a follow-up once it ends.
    pub fn request(&self, peer: PeerId, delay: Duration) {
        {
            let mut running = self.running.lock().expect("catch-up sessions lock");
            if let Some(again) = running.get_mut(&peer) {
                // A quick reconnect, or a refusal while a session runs: one more follows it.
                *again = true;
                metrics::counter!(m::SYNC_SKIPPED).increment(1);
                tracing::debug!(peer = %peer, "catch-up with this peer running: another follows");
                return;
            }
            running.insert(peer, false);
        }
        let this = self.clone();
        tokio::spawn(async move { this.run(peer, delay).await });
    }

    /// Whether `peer` is still connected a moment after a session failed. A session fails the
    /// instant its connection drops, and the node learns of the drop an instant later (a
    /// refusal, or another network, is reported once when it closes); a peer that is gone
    /// within [`DISCONNECT_GRACE`] took the session with it.
    async fn stays_connected(&self, peer: &PeerId) -> bool {
        let deadline = tokio::time::Instant::now() + DISCONNECT_GRACE;
        while self.status.is_connected(peer) {
            if tokio::time::Instant::now() >= deadline {
                return true;
            }
            tokio::time::sleep(DISCONNECT_GRACE / 10).await;
        }
        false
    }

    async fn run(self, peer: PeerId, delay: Duration) {
        tokio::time::sleep(delay).await;
        let mut follow_ups = 0;
        loop {
            let started = std::time::Instant::now();
            let deferred = match sync::catch_up(peer, &self.requester, &self.relay, &self.limits).await {
                Ok(report) => {
                    metrics::counter!(m::SYNC_SESSIONS, "result" => "ok").increment(1);
                    tracing::info!(peer = %peer, needed = report.needed, stored = report.stored,
                        offered = report.offered, deferred = report.deferred, slices = report.slices,
                        rounds = report.rounds, secs = started.elapsed().as_secs_f32(), "catch-up done");
                    report.deferred
                }
                Err(e) => {
                    metrics::counter!(m::SYNC_SESSIONS, "result" => "error").increment(1);
                    if !e.contains(crate::node::NO_SYNC_PROTOCOL) && self.stays_connected(&peer).await {
                        tracing::warn!(peer = %peer, error = %e, "catch-up failed");
                    } else {
                        // The connection went away (a refusal is reported once, on close), or
                        // the peer is of another network (reported once, on identify).
                        tracing::debug!(peer = %peer, error = %e, "catch-up ended");
                    }
                    0
                }
            };
            {
                let mut running = self.running.lock().expect("catch-up sessions lock");
                let again = running.get_mut(&peer).map(std::mem::take).unwrap_or(false);
                if deferred == 0 && !again {
                    running.remove(&peer);
                    return;
                }
                if follow_ups == MAX_FOLLOW_UPS {
                    running.remove(&peer);
                    tracing::warn!(peer = %peer, deferred, "events from this peer are still over this relay's rate \
                        limits after {MAX_FOLLOW_UPS} follow-up catch-up sessions; the next connection or refusal \
                        starts another (raise [limits] events_per_sec_per_pubkey / events_per_sec_per_peer?)");
                    return;
                }
            }
            follow_ups += 1;
            if deferred > 0 {
                tracing::info!(peer = %peer, deferred, "events deferred by rate limits; catch-up again in {RESYNC_DELAY:?}");
            }
            tokio::time::sleep(RESYNC_DELAY).await;
        }
    }
}
