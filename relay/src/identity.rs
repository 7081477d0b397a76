//! The relay's own Nostr identity, kept in a key file (hex secret key), created on first run.

use std::path::Path;

use anyhow::Context;
use nostr::{Keys, SecretKey};

/// Loads the relay key from `path`, or generates one and writes it there (mode 0600).
pub fn load_or_create(path: &Path) -> anyhow::Result<Keys> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = SecretKey::parse(text.trim())
                .with_context(|| format!("key file {} does not hold a hex or nsec secret key", path.display()))?;
            Ok(Keys::new(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = Keys::generate();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
            }
            write_private(path, &keys.secret_key().to_secret_hex())
                .with_context(|| format!("cannot write key file {}", path.display()))?;
            tracing::info!(path = %path.display(), pubkey = %keys.public_key(), "generated relay key");
            Ok(keys)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read key file {}", path.display())),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
