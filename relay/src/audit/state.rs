//! The audit state file: the latest checkpoint an earlier audit accepted and the key of the
//! relay that signed it, so that the next audit can check that the log only grew since.
//!
//! The file is JSON: `{"relay_pubkey":"<hex>","tree_size":N,"root_hash":"<hex>","timestamp":T}`
//! (plus `"anchor"` when the checkpoint was anchored). It is replaced atomically.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;

use dephy_log::Checkpoint;
use nostr::PublicKey;
use serde::{Deserialize, Serialize};

use super::AuditError;

/// A checkpoint seen by an earlier audit.
#[derive(Debug, Serialize, Deserialize)]
pub struct Seen {
    pub relay_pubkey: PublicKey,
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
}

/// Reads the state file; `None` when it does not exist yet.
pub fn load(path: &Path) -> Result<Option<Seen>, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuditError::Incomplete(format!("cannot read state file {}: {e}", path.display()))),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        AuditError::Incomplete(format!(
            "state file {} does not hold an audit state ({e}); fix it, or remove it to start a new history",
            path.display()
        ))
    })
}

/// Replaces the state file: writes a temporary file next to it, syncs it, renames it over.
pub fn save(path: &Path, seen: &Seen) -> Result<(), AuditError> {
    let cannot = |e: std::io::Error| AuditError::Incomplete(format!("cannot write state file {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| AuditError::Incomplete(format!("state file {} must name a file", path.display())))?;
    let mut temp_name = OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let json = serde_json::to_string_pretty(seen).map_err(|e| cannot(e.into()))?;
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(json.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            // Best effort: do not leave a half-written temporary file behind.
            let _ = std::fs::remove_file(&temp);
            Err(cannot(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.json");
        assert!(load(&path).unwrap().is_none());
        let seen = Seen {
            relay_pubkey: nostr::Keys::generate().public_key(),
            checkpoint: Checkpoint { tree_size: 7, root_hash: [3; 32], timestamp: 1_700_000_000, anchor: None },
        };
        save(&path, &seen).unwrap();
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["tree_size"], 7);
        assert_eq!(json["root_hash"], hex::encode([3; 32]));
        assert_eq!(json["relay_pubkey"], seen.relay_pubkey.to_hex());
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded.checkpoint, seen.checkpoint);
        assert_eq!(loaded.relay_pubkey, seen.relay_pubkey);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        std::fs::write(&path, "{}").unwrap();
        assert!(matches!(load(&path), Err(AuditError::Incomplete(m)) if m.contains("audit state")));
    }
}
