//! The outbox: local events waiting to be published, batched into frames (`mirror.rs`).
//!
//! A frame is published when it is full ([`crate::mirror::MAX_FRAME_EVENTS`] events, or the
//! next event would take it past [`crate::mirror::FRAME_TARGET_BYTES`]) or [`LINGER`] after its
//! first event joined, whichever comes first: an event waits at most that long, and under load
//! one GossipSub message (one signature made, and checked by each peer) carries many events.

use std::time::Duration;

use tokio::time::Instant;

use crate::mirror::{FrameBuilder, MAX_FRAME_EVENTS};
use crate::port::Outgoing;

/// Longest an event waits for others to share its frame.
pub const LINGER: Duration = Duration::from_millis(5);

/// A frame ready to publish.
#[derive(Debug)]
pub struct Frame {
    pub data: Vec<u8>,
    /// Events in it.
    pub events: usize,
}

/// The frame being filled, and when it is due.
#[derive(Debug, Default)]
pub struct Outbox {
    frame: FrameBuilder,
    due: Option<Instant>,
}

impl Outbox {
    /// Adds an event; returns a frame to publish now when one is full (the one before, if this
    /// event does not fit it, or the one this event filled).
    pub fn push(&mut self, out: &Outgoing) -> Option<Frame> {
        let before = if self.frame.fits(out.json.len()) { None } else { self.take() };
        if self.frame.is_empty() {
            self.due = Some(Instant::now() + LINGER);
        }
        self.frame.push(&out.id, &out.json);
        if self.frame.len() >= MAX_FRAME_EVENTS {
            debug_assert!(before.is_none(), "a frame that just took its first event is not full");
            return self.take();
        }
        before
    }

    /// When the current frame must be published (None while it is empty).
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The current frame, if it holds any event.
    pub fn take(&mut self) -> Option<Frame> {
        self.due = None;
        if self.frame.is_empty() {
            return None;
        }
        let frame = std::mem::take(&mut self.frame);
        Some(Frame { events: frame.len(), data: frame.finish() })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::mirror::{self, FRAME_TARGET_BYTES};

    fn out(n: u8, len: usize) -> Outgoing {
        Outgoing { id: [n; 32], json: Arc::from("x".repeat(len)) }
    }

    #[tokio::test]
    async fn frames_close_when_full_by_count_or_size_and_keep_the_order() {
        let mut outbox = Outbox::default();
        assert!(outbox.due().is_none() && outbox.take().is_none());
        let mut frames = Vec::new();
        for n in 0..MAX_FRAME_EVENTS + 3 {
            frames.extend(outbox.push(&out(n as u8, 10)));
            assert!(outbox.due().is_some() || n + 1 == MAX_FRAME_EVENTS);
        }
        frames.extend(outbox.take());
        assert!(outbox.due().is_none());
        assert_eq!(frames.iter().map(|f| f.events).collect::<Vec<_>>(), [MAX_FRAME_EVENTS, 3]);
        let ids: Vec<u8> = frames.iter().flat_map(|f| mirror::decode(&f.data).unwrap()).map(|(id, _)| id[0]).collect();
        assert_eq!(ids, (0..MAX_FRAME_EVENTS + 3).map(|n| n as u8).collect::<Vec<_>>());

        // By size: a frame never grows past the target; a larger event travels alone.
        let big = FRAME_TARGET_BYTES / 3;
        let mut frames: Vec<Frame> = (0..4).filter_map(|n| outbox.push(&out(n, big))).collect();
        frames.extend(outbox.push(&out(9, FRAME_TARGET_BYTES * 2)));
        frames.extend(outbox.push(&out(10, 5)));
        frames.extend(outbox.take());
        assert_eq!(frames.iter().map(|f| f.events).collect::<Vec<_>>(), [2, 2, 1, 1]);
        assert!(frames.iter().all(|f| f.data.len() <= FRAME_TARGET_BYTES || f.events == 1));
    }
}
