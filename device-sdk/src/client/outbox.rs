//! The on-disk outbox: every event handed to [`Client::publish`](super::Client::publish) is written
//! here (one fsynced JSON file per event, `<state_dir>/outbox/<event id>.json`) before it is sent,
//! and removed only once every relay has acknowledged it (`OK true`, or a duplicate) or refused it
//! for good. Events signed while offline, or unacknowledged when the process stopped, are sent
//! again after reconnect or restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nostr::{Event, EventId};
use serde::{Deserialize, Serialize};

use super::ClientError;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    event: serde_json::Value,
    /// Relays that have not acknowledged the event yet.
    pending: Vec<String>,
}

/// The outbox directory and its entries in memory.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    entries: BTreeMap<EventId, (Event, Vec<String>)>,
}

impl Outbox {
    /// Opens (creates) `<state_dir>/outbox` and loads its entries. Entries for relays that are no
    /// longer configured are sent to all of `relays`.
    pub fn open(state_dir: &Path, relays: &[String]) -> Result<Outbox, ClientError> {
        let dir = state_dir.join("outbox");
        let io = |source| ClientError::State { path: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut entries = BTreeMap::new();
        for file in std::fs::read_dir(&dir).map_err(io)? {
            let path = file.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|source| ClientError::State { path: path.clone(), source })?;
            let entry: Entry = serde_json::from_str(&text)
                .map_err(|e| ClientError::CorruptState { path: path.clone(), reason: e.to_string() })?;
            let event: Event = serde_json::from_value(entry.event)
                .map_err(|e| ClientError::CorruptState { path: path.clone(), reason: e.to_string() })?;
            let mut pending: Vec<String> = entry.pending.into_iter().filter(|r| relays.contains(r)).collect();
            if pending.is_empty() {
                pending = relays.to_vec();
            }
            entries.insert(event.id, (event, pending));
        }
        Ok(Outbox { dir, entries })
    }

    fn path(&self, id: &EventId) -> PathBuf {
        self.dir.join(format!("{}.json", id.to_hex()))
    }

    fn write(&self, id: &EventId) -> Result<(), ClientError> {
        let (event, pending) = &self.entries[id];
        let entry = Entry { event: serde_json::to_value(event).expect("events serialize"), pending: pending.clone() };
        let path = self.path(id);
        let tmp = path.with_extension("tmp");
        let io = |source| ClientError::State { path: path.clone(), source };
        let file = std::fs::File::create(&tmp).map_err(io)?;
        serde_json::to_writer(&file, &entry).map_err(|e| io(e.into()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Stores `event` for delivery to `relays` (a no-op if it is already queued).
    pub fn add(&mut self, event: &Event, relays: &[String]) -> Result<(), ClientError> {
        if self.entries.contains_key(&event.id) {
            return Ok(());
        }
        self.entries.insert(event.id, (event.clone(), relays.to_vec()));
        self.write(&event.id)
    }

    /// `relay` is done with `id` (acknowledged or refused for good). Returns true when no relay
    /// is left and the entry was removed.
    pub fn done(&mut self, id: &EventId, relay: &str) -> Result<bool, ClientError> {
        let Some((_, pending)) = self.entries.get_mut(id) else { return Ok(false) };
        pending.retain(|r| r != relay);
        if !pending.is_empty() {
            self.write(id)?;
            return Ok(false);
        }
        self.entries.remove(id);
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(source) => Err(ClientError::State { path: self.path(id), source }),
        }
    }

    /// The events `relay` still has to acknowledge, oldest first.
    pub fn pending_for(&self, relay: &str) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .entries
            .values()
            .filter(|(_, pending)| pending.iter().any(|r| r == relay))
            .map(|(event, _)| event.clone())
            .collect();
        events.sort_by_key(|e| (e.created_at, e.id));
        events
    }

    /// Whether `relay` still has to acknowledge `id`.
    pub fn is_pending(&self, id: &EventId, relay: &str) -> bool {
        self.entries.get(id).is_some_and(|(_, pending)| pending.iter().any(|r| r == relay))
    }

    /// Number of queued events.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys};

    #[test]
    fn survives_reopen_until_every_relay_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let relays = vec!["ws://a".to_string(), "ws://b".to_string()];
        let keys = Keys::generate();
        let event = EventBuilder::text_note("hi").sign_with_keys(&keys).unwrap();
        let mut outbox = Outbox::open(dir.path(), &relays).unwrap();
        outbox.add(&event, &relays).unwrap();
        assert!(!outbox.done(&event.id, "ws://a").unwrap());

        let mut reopened = Outbox::open(dir.path(), &relays).unwrap();
        assert!(reopened.pending_for("ws://a").is_empty());
        assert_eq!(reopened.pending_for("ws://b"), vec![event.clone()]);
        assert!(reopened.done(&event.id, "ws://b").unwrap());
        assert!(Outbox::open(dir.path(), &relays).unwrap().is_empty());
    }

    #[test]
    fn corrupt_entry_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("outbox")).unwrap();
        std::fs::write(dir.path().join("outbox/x.json"), "{").unwrap();
        let err = Outbox::open(dir.path(), &[]).unwrap_err();
        assert!(matches!(err, ClientError::CorruptState { .. }) && err.to_string().contains("x.json"), "{err}");
    }
}
