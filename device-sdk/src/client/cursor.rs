//! Where the client left off, per relay, kept in `<state_dir>/cursor.json` so that a restart
//! resumes without losing or repeating events.
//!
//! - With a relay that offers the arrival-sequence cursor (`after_seq`, EVENTs carrying
//!   `{"seq": N}`), the position is the last sequence number the application processed.
//! - Otherwise it is the newest `created_at` processed; the client asks again from that time minus
//!   an overlap and skips the ids it has already processed (kept here for the overlap window),
//!   because `created_at` is neither unique nor in arrival order.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use nostr::EventId;
use serde::{Deserialize, Serialize};

use super::ClientError;

/// Most processed ids remembered for dedup.
const MAX_SEEN: usize = 10_000;

/// One relay's position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Last processed arrival sequence (relays with the cursor).
    pub seq: Option<u64>,
    /// Newest processed `created_at`.
    pub created_at: Option<u64>,
    /// The relay ignored or refused `after_seq`: use `since` with overlap.
    #[serde(default)]
    pub no_cursor: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    relays: BTreeMap<String, Position>,
    /// Processed ids with their created_at, oldest first.
    seen: VecDeque<(EventId, u64)>,
}

/// The persisted positions and processed ids.
#[derive(Debug)]
pub struct Cursor {
    path: PathBuf,
    file: File,
    seen: HashSet<EventId>,
}

impl Cursor {
    pub fn open(state_dir: &Path) -> Result<Cursor, ClientError> {
        let path = state_dir.join("cursor.json");
        let file: File = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| ClientError::CorruptState { path: path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(source) => return Err(ClientError::State { path, source }),
        };
        let seen = file.seen.iter().map(|(id, _)| *id).collect();
        Ok(Cursor { path, file, seen })
    }

    pub fn position(&self, relay: &str) -> Position {
        self.file.relays.get(relay).copied().unwrap_or_default()
    }

    pub fn is_seen(&self, id: &EventId) -> bool {
        self.seen.contains(id)
    }

    /// The processed ids (for the in-memory dedup at start).
    pub fn seen_ids(&self) -> impl Iterator<Item = &EventId> {
        self.seen.iter()
    }

    /// Marks `relay` as not offering the cursor.
    pub fn set_no_cursor(&mut self, relay: &str) -> Result<(), ClientError> {
        self.file.relays.entry(relay.into()).or_default().no_cursor = true;
        self.save()
    }

    /// Records that the application processed `id` (created at `created_at`) from `relay`,
    /// which gave it arrival sequence `seq`, and saves.
    pub fn commit(
        &mut self,
        relay: &str,
        id: EventId,
        created_at: u64,
        seq: Option<u64>,
        overlap: u64,
    ) -> Result<(), ClientError> {
        let pos = self.file.relays.entry(relay.into()).or_default();
        if let Some(seq) = seq {
            pos.seq = Some(pos.seq.map_or(seq, |s| s.max(seq)));
        }
        pos.created_at = Some(pos.created_at.map_or(created_at, |c| c.max(created_at)));
        let newest = self.file.relays.values().filter_map(|p| p.created_at).max().unwrap_or(created_at);
        if self.seen.insert(id) {
            self.file.seen.push_back((id, created_at));
        }
        // Forget ids older than the overlap window (they cannot come back) or beyond the cap.
        let horizon = newest.saturating_sub(overlap);
        let before = self.file.seen.len();
        self.file.seen.retain(|(_, t)| *t >= horizon);
        while self.file.seen.len() > MAX_SEEN {
            self.file.seen.pop_front();
        }
        if self.file.seen.len() != before || self.seen.len() != self.file.seen.len() {
            self.seen = self.file.seen.iter().map(|(id, _)| *id).collect();
        }
        self.save()
    }

    fn save(&self) -> Result<(), ClientError> {
        let tmp = self.path.with_extension("tmp");
        let io = |source| ClientError::State { path: self.path.clone(), source };
        let file = std::fs::File::create(&tmp).map_err(io)?;
        serde_json::to_writer(&file, &self.file).map_err(|e| io(e.into()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_seen_ids_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut cursor = Cursor::open(dir.path()).unwrap();
        let (a, b) = (EventId::from_byte_array([1; 32]), EventId::from_byte_array([2; 32]));
        cursor.commit("ws://r", a, 1000, Some(5), 120).unwrap();
        cursor.commit("ws://r", b, 990, Some(7), 120).unwrap();
        cursor.set_no_cursor("ws://other").unwrap();
        let cursor = Cursor::open(dir.path()).unwrap();
        assert_eq!(cursor.position("ws://r"), Position { seq: Some(7), created_at: Some(1000), no_cursor: false });
        assert!(cursor.position("ws://other").no_cursor);
        assert!(cursor.is_seen(&a) && cursor.is_seen(&b));
        let mut cursor = cursor;
        cursor.commit("ws://r", EventId::from_byte_array([3; 32]), 2000, None, 120).unwrap();
        assert!(!cursor.is_seen(&a), "ids older than the overlap window are forgotten");
    }
}
