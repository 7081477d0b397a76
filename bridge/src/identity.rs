//! A node's identity: its Solana keypair file, which is also its libp2p identity.
//!
//! The file is the 64-byte JSON array `solana-keygen` writes (32-byte ed25519 seed followed by
//! the 32-byte public key). The libp2p keypair is built from the same seed, so the PeerId
//! embeds the public key and a peer's wallet address can be read back from its PeerId
//! ([`wallet_of`]) without any lookup.

use std::path::Path;

use anyhow::{Context, bail};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, ed25519};

/// The node's keys: libp2p keypair and the wallet (ed25519 public key) it stands for.
#[derive(Clone)]
pub struct NodeIdentity {
    pub keypair: Keypair,
    pub wallet: [u8; 32],
}

impl NodeIdentity {
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    pub fn wallet_base58(&self) -> String {
        bs58::encode(self.wallet).into_string()
    }

    /// Builds the identity from the 64 bytes of a Solana keypair (seed || public key).
    pub fn from_solana_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        if bytes.len() != 64 {
            bail!("a Solana keypair is 64 bytes (seed then public key), got {}", bytes.len());
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[..32]);
        let secret = ed25519::SecretKey::try_from_bytes(&mut seed).context("invalid ed25519 seed")?;
        let pair = ed25519::Keypair::from(secret);
        let wallet = pair.public().to_bytes();
        if wallet[..] != bytes[32..] {
            bail!("the public key half does not match the secret seed (corrupted keypair?)");
        }
        Ok(Self { keypair: Keypair::from(pair), wallet })
    }

    /// Loads a Solana keypair file, or creates one (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes: Vec<u8> = serde_json::from_str(text.trim()).with_context(|| {
                    format!(
                        "{} is not a Solana keypair file (a JSON array of 64 numbers, as `solana-keygen new` writes)",
                        path.display()
                    )
                })?;
                Self::from_solana_bytes(&bytes)
                    .with_context(|| format!("invalid Solana keypair file {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pair = ed25519::Keypair::generate();
                let bytes = pair.to_bytes().to_vec();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create directory {}", dir.display()))?;
                }
                write_private(path, &serde_json::to_string(&bytes)?)
                    .with_context(|| format!("cannot write keypair file {}", path.display()))?;
                let id = Self::from_solana_bytes(&bytes)?;
                tracing::info!(path = %path.display(), wallet = %id.wallet_base58(),
                    "generated a node keypair; register this wallet in the node registry so peers accept this node");
                Ok(id)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read keypair file {}", path.display())),
        }
    }
}

/// The wallet (ed25519 public key) a PeerId stands for; `None` for non-ed25519 peers.
pub fn wallet_of(peer: &PeerId) -> Option<[u8; 32]> {
    let digest = peer.as_ref().digest();
    let key = PublicKey::try_decode_protobuf(digest).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

/// The PeerId of a wallet.
pub fn peer_of(wallet: &[u8; 32]) -> Option<PeerId> {
    let key = ed25519::PublicKey::try_from_bytes(wallet).ok()?;
    Some(PublicKey::from(key).to_peer_id())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_round_trips_to_the_wallet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let a = NodeIdentity::load_or_create(&path).unwrap();
        let b = NodeIdentity::load_or_create(&path).unwrap();
        assert_eq!(a.wallet, b.wallet);
        assert_eq!(wallet_of(&a.peer_id()), Some(a.wallet));
        assert_eq!(peer_of(&a.wallet), Some(a.peer_id()));
        let text = std::fs::read_to_string(&path).unwrap();
        let bytes: Vec<u8> = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(bytes.len(), 64);
        assert_eq!(&bytes[32..], &a.wallet);
    }

    #[test]
    fn bad_keypair_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "[1,2,3]").unwrap();
        let err = NodeIdentity::load_or_create(&path).err().unwrap();
        assert!(format!("{err:#}").contains("64 bytes"), "{err:#}");
        std::fs::write(&path, "not json").unwrap();
        let err = NodeIdentity::load_or_create(&path).err().unwrap();
        assert!(format!("{err:#}").contains("JSON array of 64 numbers"), "{err:#}");
        let mut bytes = ed25519::Keypair::generate().to_bytes().to_vec();
        bytes[40] ^= 1;
        std::fs::write(&path, serde_json::to_string(&bytes).unwrap()).unwrap();
        let err = NodeIdentity::load_or_create(&path).err().unwrap();
        assert!(format!("{err:#}").contains("does not match"), "{err:#}");
    }
}
