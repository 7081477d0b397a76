//! Byte layout of the registry program's accounts (dTelecom registry-program layout, Anchor).
//!
//! ```text
//! Registry  (76 bytes):  discriminator(8) | authority(32) | name (u32 LE length + bytes, max 32)
//! NodeEntry (334 bytes): discriminator(8) | registry(32) @8 | wallet(32) @40
//!                        | domain (u32 LE length + bytes, max 253) @72 | online (i32 LE) | active (u8 bool)
//! ```
//!
//! Anchor allocates each account at its maximum size, so the bytes after the last field are
//! zero padding. The discriminator of an account type is `sha256("account:<TypeName>")[..8]`.

use sha2::{Digest as _, Sha256};

use super::NodeEntry;

/// Length of an Anchor account discriminator.
pub const DISCRIMINATOR_LEN: usize = 8;
/// Longest `NodeEntry` domain, in bytes.
pub const MAX_DOMAIN_LEN: usize = 253;
/// Allocated size of a `NodeEntry` account: 8 + 32 + 32 + 4 + 253 + 4 + 1.
pub const NODE_ENTRY_LEN: usize = DISCRIMINATOR_LEN + 32 + 32 + 4 + MAX_DOMAIN_LEN + 4 + 1;
/// Offset of the parent registry's address in a `NodeEntry` (the `memcmp` filter offset).
pub const NODE_ENTRY_REGISTRY_OFFSET: usize = DISCRIMINATOR_LEN;
/// Offset of the registered wallet in a `NodeEntry`.
pub const NODE_ENTRY_WALLET_OFFSET: usize = NODE_ENTRY_REGISTRY_OFFSET + 32;
/// Offset of the domain's length prefix in a `NodeEntry`.
pub const NODE_ENTRY_DOMAIN_OFFSET: usize = NODE_ENTRY_WALLET_OFFSET + 32;
/// Longest `Registry` name, in bytes.
pub const MAX_REGISTRY_NAME_LEN: usize = 32;
/// Allocated size of a `Registry` account: 8 + 32 + 4 + 32.
pub const REGISTRY_LEN: usize = DISCRIMINATOR_LEN + 32 + 4 + MAX_REGISTRY_NAME_LEN;

const _: () = assert!(NODE_ENTRY_LEN == 334);

/// The decoded `Registry` account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccount {
    pub authority: [u8; 32],
    pub name: String,
}

/// Why account data does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("{account} account data is {len} bytes, shorter than the {needed} bytes its fields use")]
    TooShort { account: &'static str, len: usize, needed: usize },
    #[error(
        "not a {account} account: discriminator {found} instead of {expected} (sha256(\"account:{account}\")[..8])"
    )]
    Discriminator { account: &'static str, found: String, expected: String },
    #[error("the NodeEntry belongs to registry {found}, not to the configured registry {expected}")]
    WrongRegistry { found: String, expected: String },
    #[error("{account} {field} is {len} bytes long, more than the {max} the program allows")]
    StringTooLong { account: &'static str, field: &'static str, len: usize, max: usize },
    #[error("{account} {field} is not valid UTF-8: {source}")]
    InvalidUtf8 {
        account: &'static str,
        field: &'static str,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("NodeEntry active flag is {0}, expected 0 (false) or 1 (true)")]
    InvalidBool(u8),
}

/// The Anchor discriminator of account type `type_name`: `sha256("account:<TypeName>")[..8]`.
pub fn account_discriminator(type_name: &str) -> [u8; 8] {
    let digest = Sha256::new().chain_update(b"account:").chain_update(type_name.as_bytes()).finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn check_discriminator(account: &'static str, data: &[u8]) -> Result<(), LayoutError> {
    let expected = account_discriminator(account);
    if data[..DISCRIMINATOR_LEN] != expected {
        return Err(LayoutError::Discriminator {
            account,
            found: hex::encode(&data[..DISCRIMINATOR_LEN]),
            expected: hex::encode(expected),
        });
    }
    Ok(())
}

fn too_short(account: &'static str, data: &[u8], needed: usize) -> Result<(), LayoutError> {
    if data.len() < needed {
        return Err(LayoutError::TooShort { account, len: data.len(), needed });
    }
    Ok(())
}

/// Reads a borsh string (u32 LE length + UTF-8 bytes) at `offset`; returns it and the offset
/// after it. `data` must hold at least the 4 length bytes.
fn read_string(
    account: &'static str,
    field: &'static str,
    data: &[u8],
    offset: usize,
    max: usize,
) -> Result<(String, usize), LayoutError> {
    let len = u32::from_le_bytes(data[offset..offset + 4].try_into().expect("4 bytes")) as usize;
    if len > max {
        return Err(LayoutError::StringTooLong { account, field, len, max });
    }
    let start = offset + 4;
    too_short(account, data, start + len)?;
    let text = std::str::from_utf8(&data[start..start + len]).map_err(|source| LayoutError::InvalidUtf8 {
        account,
        field,
        source,
    })?;
    Ok((text.to_string(), start + len))
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Decodes a `NodeEntry` account of registry `expected_registry`: checks the discriminator, the
/// parent registry, the domain (at most 253 bytes of UTF-8), the active flag (0 or 1) and that
/// the data holds every field (trailing padding is ignored).
pub fn decode_node_entry(data: &[u8], expected_registry: &[u8; 32]) -> Result<NodeEntry, LayoutError> {
    const ACCOUNT: &str = "NodeEntry";
    too_short(ACCOUNT, data, NODE_ENTRY_DOMAIN_OFFSET + 4)?;
    check_discriminator(ACCOUNT, data)?;
    let registry = &data[NODE_ENTRY_REGISTRY_OFFSET..NODE_ENTRY_REGISTRY_OFFSET + 32];
    if registry != expected_registry {
        return Err(LayoutError::WrongRegistry {
            found: bs58::encode(registry).into_string(),
            expected: bs58::encode(expected_registry).into_string(),
        });
    }
    let wallet: [u8; 32] = data[NODE_ENTRY_WALLET_OFFSET..NODE_ENTRY_WALLET_OFFSET + 32].try_into().expect("32 bytes");
    let (domain, offset) = read_string(ACCOUNT, "domain", data, NODE_ENTRY_DOMAIN_OFFSET, MAX_DOMAIN_LEN)?;
    too_short(ACCOUNT, data, offset + 4 + 1)?;
    let online = i32::from_le_bytes(data[offset..offset + 4].try_into().expect("4 bytes"));
    let active = match data[offset + 4] {
        0 => false,
        1 => true,
        other => return Err(LayoutError::InvalidBool(other)),
    };
    Ok(NodeEntry { wallet, domain, online, active })
}

/// Encodes `entry` as a `NodeEntry` account of `registry`: always [`NODE_ENTRY_LEN`] bytes,
/// zero padded (for tests and tooling that seed accounts).
///
/// # Panics
/// If the domain is longer than [`MAX_DOMAIN_LEN`] bytes.
pub fn encode_node_entry(registry: &[u8; 32], entry: &NodeEntry) -> Vec<u8> {
    assert!(
        entry.domain.len() <= MAX_DOMAIN_LEN,
        "NodeEntry domain is {} bytes, more than {MAX_DOMAIN_LEN}",
        entry.domain.len()
    );
    let mut out = Vec::with_capacity(NODE_ENTRY_LEN);
    out.extend_from_slice(&account_discriminator("NodeEntry"));
    out.extend_from_slice(registry);
    out.extend_from_slice(&entry.wallet);
    write_string(&mut out, &entry.domain);
    out.extend_from_slice(&entry.online.to_le_bytes());
    out.push(u8::from(entry.active));
    out.resize(NODE_ENTRY_LEN, 0);
    out
}

/// Decodes a `Registry` account: checks the discriminator and the name (at most 32 bytes of
/// UTF-8).
pub fn decode_registry(data: &[u8]) -> Result<RegistryAccount, LayoutError> {
    const ACCOUNT: &str = "Registry";
    too_short(ACCOUNT, data, DISCRIMINATOR_LEN + 32 + 4)?;
    check_discriminator(ACCOUNT, data)?;
    let authority: [u8; 32] = data[DISCRIMINATOR_LEN..DISCRIMINATOR_LEN + 32].try_into().expect("32 bytes");
    let (name, _) = read_string(ACCOUNT, "name", data, DISCRIMINATOR_LEN + 32, MAX_REGISTRY_NAME_LEN)?;
    Ok(RegistryAccount { authority, name })
}

/// Encodes a `Registry` account: always [`REGISTRY_LEN`] bytes, zero padded.
///
/// # Panics
/// If the name is longer than [`MAX_REGISTRY_NAME_LEN`] bytes.
pub fn encode_registry(authority: &[u8; 32], name: &str) -> Vec<u8> {
    assert!(
        name.len() <= MAX_REGISTRY_NAME_LEN,
        "Registry name is {} bytes, more than {MAX_REGISTRY_NAME_LEN}",
        name.len()
    );
    let mut out = Vec::with_capacity(REGISTRY_LEN);
    out.extend_from_slice(&account_discriminator("Registry"));
    out.extend_from_slice(authority);
    write_string(&mut out, name);
    out.resize(REGISTRY_LEN, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: [u8; 32] = [9; 32];

    fn entry() -> NodeEntry {
        NodeEntry { wallet: [3; 32], domain: "node1.example.org".into(), online: -7, active: true }
    }

    /// Offset of the domain's bytes, the online field and the active flag for `entry()`.
    fn active_offset(domain_len: usize) -> usize {
        NODE_ENTRY_DOMAIN_OFFSET + 4 + domain_len + 4
    }

    #[test]
    fn discriminators_are_anchor_ones() {
        // sha256("account:NodeEntry") and sha256("account:Registry"), first 8 bytes.
        let node = Sha256::digest(b"account:NodeEntry");
        assert_eq!(account_discriminator("NodeEntry"), node[..8]);
        let registry = Sha256::digest(b"account:Registry");
        assert_eq!(account_discriminator("Registry"), registry[..8]);
        assert_ne!(account_discriminator("NodeEntry"), account_discriminator("Registry"));
    }

    #[test]
    fn node_entry_round_trip_and_layout() {
        let data = encode_node_entry(&REGISTRY, &entry());
        assert_eq!(data.len(), NODE_ENTRY_LEN);
        assert_eq!(&data[8..40], &REGISTRY);
        assert_eq!(&data[40..72], &[3; 32]);
        assert_eq!(&data[72..76], &17u32.to_le_bytes());
        assert_eq!(&data[76..93], b"node1.example.org");
        assert_eq!(&data[93..97], &(-7i32).to_le_bytes());
        assert_eq!(data[97], 1);
        assert!(data[98..].iter().all(|b| *b == 0));
        assert_eq!(decode_node_entry(&data, &REGISTRY).unwrap(), entry());

        for e in [
            NodeEntry { domain: String::new(), active: false, online: 0, ..entry() },
            NodeEntry { domain: "d".repeat(MAX_DOMAIN_LEN), online: i32::MAX, ..entry() },
        ] {
            let data = encode_node_entry(&REGISTRY, &e);
            assert_eq!(data.len(), NODE_ENTRY_LEN);
            assert_eq!(decode_node_entry(&data, &REGISTRY).unwrap(), e);
        }
    }

    #[test]
    fn node_entry_ignores_trailing_bytes_but_needs_every_field() {
        let e = entry();
        let data = encode_node_entry(&REGISTRY, &e);
        let used = active_offset(e.domain.len()) + 1;
        assert_eq!(decode_node_entry(&data[..used], &REGISTRY).unwrap(), e);
        let mut longer = data.clone();
        longer.extend_from_slice(&[0xff; 10]);
        assert_eq!(decode_node_entry(&longer, &REGISTRY).unwrap(), e);

        for len in [0, 7, 8, 40, 75, 80, used - 5, used - 1] {
            let err = decode_node_entry(&data[..len], &REGISTRY).unwrap_err();
            assert!(matches!(err, LayoutError::TooShort { account: "NodeEntry", .. }), "len {len}: {err}");
        }
        let err = decode_node_entry(&data[..used - 1], &REGISTRY).unwrap_err();
        assert_eq!(err, LayoutError::TooShort { account: "NodeEntry", len: used - 1, needed: used });
    }

    #[test]
    fn node_entry_rejects_wrong_discriminator() {
        let mut data = encode_node_entry(&REGISTRY, &entry());
        data[..8].copy_from_slice(&account_discriminator("Registry"));
        let err = decode_node_entry(&data, &REGISTRY).unwrap_err();
        assert!(matches!(err, LayoutError::Discriminator { account: "NodeEntry", .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&hex::encode(account_discriminator("NodeEntry"))), "{text}");
    }

    #[test]
    fn node_entry_rejects_other_registry() {
        let data = encode_node_entry(&[1; 32], &entry());
        let err = decode_node_entry(&data, &REGISTRY).unwrap_err();
        assert_eq!(
            err,
            LayoutError::WrongRegistry {
                found: bs58::encode([1u8; 32]).into_string(),
                expected: bs58::encode(REGISTRY).into_string()
            }
        );
    }

    #[test]
    fn node_entry_rejects_too_long_domain() {
        let mut data = encode_node_entry(&REGISTRY, &entry());
        data[72..76].copy_from_slice(&254u32.to_le_bytes());
        let err = decode_node_entry(&data, &REGISTRY).unwrap_err();
        assert_eq!(err, LayoutError::StringTooLong { account: "NodeEntry", field: "domain", len: 254, max: 253 });
        data[72..76].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decode_node_entry(&data, &REGISTRY).unwrap_err();
        assert!(matches!(err, LayoutError::StringTooLong { .. }), "{err}");
    }

    #[test]
    fn node_entry_rejects_invalid_utf8_domain() {
        let mut data = encode_node_entry(&REGISTRY, &entry());
        data[76] = 0xff;
        let err = decode_node_entry(&data, &REGISTRY).unwrap_err();
        assert!(matches!(err, LayoutError::InvalidUtf8 { account: "NodeEntry", field: "domain", .. }), "{err}");
    }

    #[test]
    fn node_entry_rejects_invalid_bool() {
        let e = entry();
        let mut data = encode_node_entry(&REGISTRY, &e);
        data[active_offset(e.domain.len())] = 2;
        assert_eq!(decode_node_entry(&data, &REGISTRY).unwrap_err(), LayoutError::InvalidBool(2));
    }

    #[test]
    #[should_panic(expected = "more than 253")]
    fn encode_node_entry_panics_on_too_long_domain() {
        encode_node_entry(&REGISTRY, &NodeEntry { domain: "d".repeat(254), ..entry() });
    }

    #[test]
    fn registry_round_trip_and_malformed() {
        let data = encode_registry(&[5; 32], "dephy");
        assert_eq!(data.len(), REGISTRY_LEN);
        assert_eq!(&data[40..44], &5u32.to_le_bytes());
        let decoded = decode_registry(&data).unwrap();
        assert_eq!(decoded, RegistryAccount { authority: [5; 32], name: "dephy".into() });
        let full = "n".repeat(MAX_REGISTRY_NAME_LEN);
        assert_eq!(decode_registry(&encode_registry(&[5; 32], &full)).unwrap().name, full);

        assert!(matches!(decode_registry(&data[..43]).unwrap_err(), LayoutError::TooShort { .. }));
        assert!(matches!(decode_registry(&data[..46]).unwrap_err(), LayoutError::TooShort { needed: 49, .. }));

        let mut bad = data.clone();
        bad[0] ^= 1;
        assert!(matches!(decode_registry(&bad).unwrap_err(), LayoutError::Discriminator { account: "Registry", .. }));
        let node = encode_node_entry(&REGISTRY, &entry());
        assert!(matches!(decode_registry(&node).unwrap_err(), LayoutError::Discriminator { .. }));

        let mut bad = data.clone();
        bad[40..44].copy_from_slice(&33u32.to_le_bytes());
        assert_eq!(
            decode_registry(&bad).unwrap_err(),
            LayoutError::StringTooLong { account: "Registry", field: "name", len: 33, max: 32 }
        );

        let mut bad = data;
        bad[44] = 0xc3; // a lone UTF-8 lead byte
        bad[45] = b'a';
        assert!(matches!(decode_registry(&bad).unwrap_err(), LayoutError::InvalidUtf8 { field: "name", .. }));
    }

    #[test]
    #[should_panic(expected = "more than 32")]
    fn encode_registry_panics_on_too_long_name() {
        encode_registry(&[0; 32], &"n".repeat(33));
    }
}
