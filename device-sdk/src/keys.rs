//! The device's Nostr key: generate, load and save.
//!
//! A key file holds one secret key, as 64 hex digits or as a bech32 `nsec1...` string
//! (surrounding whitespace ignored). [`load_or_create`] creates the file (mode 0600 on Unix) with
//! the public key in bech32 (`npub1...`) beside it in `<file>.pub` when it does not exist yet.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use nostr::{Keys, SecretKey, ToBech32 as _};

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "key file {path} does not hold a secret key: expected 64 hex digits or a bech32 nsec1... string ({reason})"
    )]
    Invalid { path: PathBuf, reason: String },
}

/// In which text form [`save`] writes the secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    Hex,
    Bech32,
}

/// A new random key.
pub fn generate() -> Keys {
    Keys::generate()
}

/// Parses a secret key given as 64 hex digits or bech32 `nsec`.
pub fn parse(text: &str) -> Result<Keys, String> {
    let text = text.trim();
    SecretKey::parse(text).map(Keys::new).map_err(|e| e.to_string())
}

/// Loads the key in `path` (hex or bech32).
pub fn load(path: &Path) -> Result<Keys, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.into(), source })?;
    parse(&text).map_err(|reason| KeyError::Invalid { path: path.into(), reason })
}

/// Writes `keys` to `path` (mode 0600 on Unix, parent directories created) and its public key,
/// as `npub1...`, to `<path>.pub`. Overwrites both.
pub fn save(keys: &Keys, path: &Path, format: KeyFormat) -> Result<(), KeyError> {
    let write_err = |source| KeyError::Write { path: path.into(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let secret = match format {
        KeyFormat::Hex => keys.secret_key().to_secret_hex(),
        KeyFormat::Bech32 => keys.secret_key().to_bech32().expect("a secret key always encodes"),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(write_err)?;
    file.write_all(format!("{secret}\n").as_bytes()).and_then(|()| file.sync_all()).map_err(write_err)?;
    let npub = keys.public_key().to_bech32().expect("a public key always encodes");
    let pub_path = pub_path(path);
    std::fs::write(&pub_path, format!("{npub}\n")).map_err(|source| KeyError::Write { path: pub_path, source })
}

/// Loads the key in `path`, or creates it (hex) with its `.pub` file when `path` does not exist.
pub fn load_or_create(path: &Path) -> Result<Keys, KeyError> {
    if path.exists() {
        return load(path);
    }
    let keys = generate();
    save(&keys, path, KeyFormat::Hex)?;
    Ok(keys)
}

/// `<path>.pub`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/device.key");
        let created = load_or_create(&path).unwrap();
        let loaded = load_or_create(&path).unwrap();
        assert_eq!(created.public_key(), loaded.public_key());
        let npub = std::fs::read_to_string(pub_path(&path)).unwrap();
        assert_eq!(npub.trim(), created.public_key().to_bech32().unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn hex_and_bech32_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let keys = generate();
        for (name, format) in [("hex.key", KeyFormat::Hex), ("nsec.key", KeyFormat::Bech32)] {
            let path = dir.path().join(name);
            save(&keys, &path, format).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.starts_with("nsec1"), format == KeyFormat::Bech32, "{text}");
            assert_eq!(load(&path).unwrap().secret_key(), keys.secret_key());
        }
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key").unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Invalid { .. }));
        assert!(err.to_string().contains("bad.key") && err.to_string().contains("64 hex digits"), "{err}");
        let missing = dir.path().join("missing.key");
        assert!(matches!(load(&missing), Err(KeyError::Read { .. })));
    }
}
