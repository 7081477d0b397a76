//! DePHY payment authorizations: the user's Solana wallet (ed25519) signs
//!
//! ```text
//! "DePHY vending machine/" + <namespace name> + ":\n" + base58(keccak256(extra_data || namespace_id LE || nonce LE || deadline LE))
//! ```
//!
//! with `extra_data` 64 bytes, `namespace_id` and `nonce` u64 and `deadline` i64 (Unix seconds),
//! as the balance-payment program checks it. [`sign`] is the user's (dApp's) side; [`verify`] is
//! the device's: unlike DePHY's own check, a signature that does not verify is rejected, and so
//! are an expired deadline and a nonce the device has already accepted ([`NonceRegistry`]).

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha3::{Digest as _, Keccak256};

use crate::message::{MessageError, Payload, RecoverInfo};

/// The fixed start of every digest.
pub const DIGEST_PREFIX: &str = "DePHY vending machine/";

/// Why an authorization is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizationError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("user {0:?} is not a base58 Solana public key (32 bytes)")]
    BadUser(String),
    #[error("the payment authorization is for namespace {actual}, expected {expected}")]
    WrongNamespace { expected: u64, actual: u64 },
    #[error("the payment signature does not verify for user {user} (wrong key, namespace or tampered fields)")]
    BadSignature { user: String },
    #[error("the payment authorization expired at {deadline} (now {now})")]
    Expired { deadline: i64, now: i64 },
    #[error("nonce {nonce} of user {user} was already used")]
    NonceReused { user: String, nonce: u64 },
    #[error("cannot record used nonces in {path}: {source}")]
    Store { path: PathBuf, source: std::io::Error },
}

/// The bytes that are hashed: `extra_data || namespace_id LE || nonce LE || deadline LE` (88 bytes).
pub fn message(extra_data: &[u8; 64], namespace_id: u64, nonce: u64, deadline: i64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(88);
    msg.extend_from_slice(extra_data);
    msg.extend_from_slice(&namespace_id.to_le_bytes());
    msg.extend_from_slice(&nonce.to_le_bytes());
    msg.extend_from_slice(&deadline.to_le_bytes());
    msg
}

/// The text the wallet signs (its UTF-8 bytes).
pub fn digest(namespace: &str, extra_data: &[u8; 64], namespace_id: u64, nonce: u64, deadline: i64) -> String {
    let hash = Keccak256::digest(message(extra_data, namespace_id, nonce, deadline));
    format!("{DIGEST_PREFIX}{namespace}:\n{}", bs58::encode(hash).into_string())
}

/// Signs an authorization with the user's wallet key; returns the `recover_info` to put in the
/// request [`Payload`].
pub fn sign(
    wallet: &SigningKey,
    namespace: &str,
    namespace_id: u64,
    nonce: u64,
    deadline: i64,
    extra_data: [u8; 64],
) -> RecoverInfo {
    let text = digest(namespace, &extra_data, namespace_id, nonce, deadline);
    let signature = wallet.sign(text.as_bytes());
    RecoverInfo { signature: signature.to_bytes().to_vec(), extra_data: extra_data.to_vec(), deadline }
}

/// A request payload carrying a fresh authorization, ready for [`Payload::to_json`].
pub fn signed_payload(
    wallet: &SigningKey,
    namespace: &str,
    namespace_id: u64,
    nonce: u64,
    deadline: i64,
    extra_data: [u8; 64],
) -> Payload {
    let info = sign(wallet, namespace, namespace_id, nonce, deadline, extra_data);
    Payload { namespace_id, user: wallet_address(wallet), nonce, recover_info: info.to_json() }
}

/// The base58 Solana address of a wallet key.
pub fn wallet_address(wallet: &SigningKey) -> String {
    bs58::encode(wallet.verifying_key().as_bytes()).into_string()
}

/// An authorization that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    pub user: String,
    pub namespace_id: u64,
    pub nonce: u64,
    pub deadline: i64,
}

/// Verifies a request payload's authorization at time `now` (Unix seconds) for the namespace
/// `(namespace_id, namespace)`, without recording the nonce (see [`NonceRegistry::accept`]).
pub fn verify(
    payload: &Payload,
    namespace_id: u64,
    namespace: &str,
    now: i64,
) -> Result<Authorized, AuthorizationError> {
    if payload.namespace_id != namespace_id {
        return Err(AuthorizationError::WrongNamespace { expected: namespace_id, actual: payload.namespace_id });
    }
    let info = payload.recover_info()?;
    let user_bytes: [u8; 32] = bs58::decode(&payload.user)
        .into_vec()
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AuthorizationError::BadUser(payload.user.clone()))?;
    let user = VerifyingKey::from_bytes(&user_bytes).map_err(|_| AuthorizationError::BadUser(payload.user.clone()))?;
    let extra: [u8; 64] = info.extra_data.as_slice().try_into().expect("RecoverInfo::parse checked 64 bytes");
    let sig: [u8; 64] = info.signature.as_slice().try_into().expect("RecoverInfo::parse checked 64 bytes");
    let text = digest(namespace, &extra, payload.namespace_id, payload.nonce, info.deadline);
    user.verify_strict(text.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| AuthorizationError::BadSignature { user: payload.user.clone() })?;
    if info.deadline < now {
        return Err(AuthorizationError::Expired { deadline: info.deadline, now });
    }
    Ok(Authorized { user: payload.user.clone(), namespace_id, nonce: payload.nonce, deadline: info.deadline })
}

/// The (user, nonce) pairs a device has accepted, optionally kept in a file (one `user nonce`
/// line each) so that a restart does not accept a replay.
#[derive(Debug, Default)]
pub struct NonceRegistry {
    used: HashSet<(String, u64)>,
    path: Option<PathBuf>,
}

impl NonceRegistry {
    /// An in-memory registry.
    pub fn new() -> NonceRegistry {
        NonceRegistry::default()
    }

    /// A registry persisted in `path` (loaded if it exists).
    pub fn open(path: &Path) -> Result<NonceRegistry, AuthorizationError> {
        let store = |source| AuthorizationError::Store { path: path.into(), source };
        let mut used = HashSet::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some((user, nonce)) = line.split_once(' ')
                        && let Ok(nonce) = nonce.parse()
                    {
                        used.insert((user.to_string(), nonce));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(store(e)),
        }
        Ok(NonceRegistry { used, path: Some(path.into()) })
    }

    /// [`verify`], then records the nonce; a nonce seen before is refused.
    pub fn accept(
        &mut self,
        payload: &Payload,
        namespace_id: u64,
        namespace: &str,
        now: i64,
    ) -> Result<Authorized, AuthorizationError> {
        let authorized = verify(payload, namespace_id, namespace, now)?;
        let key = (authorized.user.clone(), authorized.nonce);
        if self.used.contains(&key) {
            return Err(AuthorizationError::NonceReused { user: key.0, nonce: key.1 });
        }
        if let Some(path) = &self.path {
            let store = |source| AuthorizationError::Store { path: path.clone(), source };
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(store)?;
            file.write_all(format!("{} {}\n", key.0, key.1).as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(store)?;
        }
        self.used.insert(key);
        Ok(authorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wallet() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    #[test]
    fn digest_layout() {
        let text = digest("gacha", &[0; 64], 1, 2, 3);
        let hash = Keccak256::digest(message(&[0; 64], 1, 2, 3));
        assert_eq!(text, format!("DePHY vending machine/gacha:\n{}", bs58::encode(hash).into_string()));
        let msg = message(&[9; 64], 0x0102, 7, -1);
        assert_eq!(msg.len(), 88);
        assert_eq!(&msg[64..72], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&msg[72..80], &[7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&msg[80..88], &[0xff; 8]);
    }

    #[test]
    fn sign_then_verify_and_tampering() {
        let payload = signed_payload(&wallet(), "decharge", 1, 5, 2_000_000_000, [3; 64]);
        let ok = verify(&payload, 1, "decharge", 1_900_000_000).unwrap();
        assert_eq!(ok.nonce, 5);
        assert!(matches!(verify(&payload, 1, "other", 0), Err(AuthorizationError::BadSignature { .. })));
        assert!(matches!(verify(&payload, 2, "decharge", 0), Err(AuthorizationError::WrongNamespace { .. })));
        assert!(matches!(verify(&payload, 1, "decharge", 2_000_000_001), Err(AuthorizationError::Expired { .. })));
        let mut tampered = payload.clone();
        tampered.nonce = 6;
        assert!(matches!(verify(&tampered, 1, "decharge", 0), Err(AuthorizationError::BadSignature { .. })));
        let other = SigningKey::from_bytes(&[8; 32]);
        let mut wrong_user = payload.clone();
        wrong_user.user = wallet_address(&other);
        assert!(matches!(verify(&wrong_user, 1, "decharge", 0), Err(AuthorizationError::BadSignature { .. })));
        let mut info = payload.recover_info().unwrap();
        info.deadline += 1;
        let mut later = payload.clone();
        later.recover_info = info.to_json();
        assert!(matches!(verify(&later, 1, "decharge", 0), Err(AuthorizationError::BadSignature { .. })));
        let mut bad_user = payload.clone();
        bad_user.user = "not-base58-0OIl".into();
        assert!(matches!(verify(&bad_user, 1, "decharge", 0), Err(AuthorizationError::BadUser(_))));
    }

    #[test]
    fn reused_nonce_is_refused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonces");
        let payload = signed_payload(&wallet(), "gacha", 1, 9, 2_000_000_000, [0; 64]);
        let mut registry = NonceRegistry::open(&path).unwrap();
        registry.accept(&payload, 1, "gacha", 0).unwrap();
        assert!(matches!(
            registry.accept(&payload, 1, "gacha", 0),
            Err(AuthorizationError::NonceReused { nonce: 9, .. })
        ));
        let mut reopened = NonceRegistry::open(&path).unwrap();
        assert!(matches!(reopened.accept(&payload, 1, "gacha", 0), Err(AuthorizationError::NonceReused { .. })));
        let next = signed_payload(&wallet(), "gacha", 1, 10, 2_000_000_000, [0; 64]);
        reopened.accept(&next, 1, "gacha", 0).unwrap();
    }
}
