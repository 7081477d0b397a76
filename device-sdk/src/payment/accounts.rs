//! Accounts of DePHY's balance-payment program (feature `solana-rpc`): their PDAs and decoders
//! for the exact Anchor layouts (8-byte discriminator `sha256("account:<Name>")[..8]`, then the
//! fields in borsh, little-endian). Account data read from an RPC node is treated as hostile:
//! every length is checked before it is read or allocated, and a wrong discriminator is refused.
//! As Anchor does, bytes after the last field (space reserved at creation) are ignored.
//!
//! The program itself cannot be built or deployed in this project's test setup; the layouts
//! are checked against an independent encoder (Anchor's `BorshAccountsCoder` from npm) and
//! against accounts seeded into a local surfpool node, not against the deployed program.

use std::str::FromStr as _;

use solana_pubkey::Pubkey;

/// DePHY's balance-payment program (devnet).
pub const BALANCE_PAYMENT_PROGRAM_ID: &str = "8Pna6CZRquk83XT6ecisT9TYVfN3hY299GH2yEJk73dL";

pub fn program_id() -> Pubkey {
    Pubkey::from_str(BALANCE_PAYMENT_PROGRAM_ID).expect("valid program id")
}

/// `["USER", user]`.
pub fn user_pda(program: &Pubkey, user: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[b"USER", user.as_ref()], program).0
}

/// `["VAULT", user]`.
pub fn vault_pda(program: &Pubkey, user: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[b"VAULT", user.as_ref()], program).0
}

/// `["LOCK", user, nonce LE]`.
pub fn lock_pda(program: &Pubkey, user: &Pubkey, nonce: u64) -> Pubkey {
    Pubkey::find_program_address(&[b"LOCK", user.as_ref(), &nonce.to_le_bytes()], program).0
}

/// `["NAMESPACE", id LE]`.
pub fn namespace_pda(program: &Pubkey, namespace_id: u64) -> Pubkey {
    Pubkey::find_program_address(&[b"NAMESPACE", &namespace_id.to_le_bytes()], program).0
}

/// `sha256("account:GlobalAccount")[..8]`.
pub const GLOBAL_ACCOUNT_DISCRIMINATOR: [u8; 8] = [129, 105, 124, 171, 189, 42, 108, 69];
/// `sha256("account:NamespaceAccount")[..8]`.
pub const NAMESPACE_ACCOUNT_DISCRIMINATOR: [u8; 8] = [131, 90, 249, 50, 43, 36, 38, 137];
/// `sha256("account:UserAccount")[..8]`.
pub const USER_ACCOUNT_DISCRIMINATOR: [u8; 8] = [211, 33, 136, 16, 186, 110, 242, 127];
/// `sha256("account:LockAccount")[..8]`.
pub const LOCK_ACCOUNT_DISCRIMINATOR: [u8; 8] = [223, 64, 71, 124, 255, 86, 118, 192];

/// Longest namespace name accepted when decoding (DePHY's are a few bytes; Solana account
/// data is at most 10 MiB, this keeps a hostile length prefix from meaning anything large).
pub const MAX_NAMESPACE_NAME: usize = 1024;

/// `["GLOBAL"]`.
pub fn global_pda(program: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(&[b"GLOBAL"], program).0
}

/// Why account data is not the expected account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{account}: {actual} bytes of data, expected at least {needed}")]
    TooShort { account: &'static str, needed: usize, actual: usize },
    #[error("{account}: discriminator {actual:?}, expected {expected:?} (not this account type)")]
    WrongDiscriminator { account: &'static str, expected: [u8; 8], actual: [u8; 8] },
    #[error("{account}: name of {len} bytes, longer than the {MAX_NAMESPACE_NAME} accepted")]
    NameTooLong { account: &'static str, len: usize },
    #[error("{account}: name is not UTF-8")]
    NameNotUtf8 { account: &'static str },
}

/// A bounds-checked little-endian reader over account data, after the discriminator.
struct Reader<'a> {
    account: &'static str,
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(account: &'static str, data: &'a [u8], discriminator: [u8; 8]) -> Result<Reader<'a>, DecodeError> {
        let mut reader = Reader { account, data, at: 0 };
        let actual: [u8; 8] = reader.take(8)?.try_into().expect("8 bytes");
        if actual != discriminator {
            return Err(DecodeError::WrongDiscriminator { account, expected: discriminator, actual });
        }
        Ok(reader)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.data.len()).ok_or(DecodeError::TooShort {
            account: self.account,
            needed: self.at.saturating_add(n),
            actual: self.data.len(),
        })?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn pubkey(&mut self) -> Result<Pubkey, DecodeError> {
        Ok(Pubkey::new_from_array(self.take(32)?.try_into().expect("32 bytes")))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        if len > MAX_NAMESPACE_NAME {
            return Err(DecodeError::NameTooLong { account: self.account, len });
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NameNotUtf8 { account: self.account })
    }
}

/// `["GLOBAL"]`: the id the next namespace will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalAccount {
    pub namespace_nonce: u64,
}

impl GlobalAccount {
    pub fn decode(data: &[u8]) -> Result<GlobalAccount, DecodeError> {
        let mut r = Reader::new("GlobalAccount", data, GLOBAL_ACCOUNT_DISCRIMINATOR)?;
        Ok(GlobalAccount { namespace_nonce: r.u64()? })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = GLOBAL_ACCOUNT_DISCRIMINATOR.to_vec();
        out.extend_from_slice(&self.namespace_nonce.to_le_bytes());
        out
    }
}

/// `["NAMESPACE", id LE]`: a namespace (DeCharge = 0, Gacha = 1 in DePHY's examples); its
/// `name` enters the signed payment digest, its `bot` signs lock/settle/pay, its `treasury`
/// receives the payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceAccount {
    pub id: u64,
    pub name: String,
    pub authority: Pubkey,
    pub bot: Pubkey,
    pub treasury: Pubkey,
    pub created_at: i64,
    pub updated_at: i64,
}

impl NamespaceAccount {
    pub fn decode(data: &[u8]) -> Result<NamespaceAccount, DecodeError> {
        let mut r = Reader::new("NamespaceAccount", data, NAMESPACE_ACCOUNT_DISCRIMINATOR)?;
        Ok(NamespaceAccount {
            id: r.u64()?,
            name: r.string()?,
            authority: r.pubkey()?,
            bot: r.pubkey()?,
            treasury: r.pubkey()?,
            created_at: r.i64()?,
            updated_at: r.i64()?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = NAMESPACE_ACCOUNT_DISCRIMINATOR.to_vec();
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&(self.name.len() as u32).to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        for key in [&self.authority, &self.bot, &self.treasury] {
            out.extend_from_slice(key.as_ref());
        }
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&self.updated_at.to_le_bytes());
        out
    }
}

/// `["USER", user]`: the user's next payment nonce, the amount locked by pending charges and
/// the vault PDA holding the user's SOL (56 bytes in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserAccount {
    pub nonce: u64,
    pub locked_amount: u64,
    pub vault: Pubkey,
}

impl UserAccount {
    pub fn decode(data: &[u8]) -> Result<UserAccount, DecodeError> {
        let mut r = Reader::new("UserAccount", data, USER_ACCOUNT_DISCRIMINATOR)?;
        Ok(UserAccount { nonce: r.u64()?, locked_amount: r.u64()?, vault: r.pubkey()? })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = USER_ACCOUNT_DISCRIMINATOR.to_vec();
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&self.locked_amount.to_le_bytes());
        out.extend_from_slice(self.vault.as_ref());
        out
    }
}

/// `["LOCK", user, nonce LE]`: an amount locked by `lock` at that nonce, released by `settle`
/// (24 bytes in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockAccount {
    pub namespace_id: u64,
    pub amount: u64,
}

impl LockAccount {
    pub fn decode(data: &[u8]) -> Result<LockAccount, DecodeError> {
        let mut r = Reader::new("LockAccount", data, LOCK_ACCOUNT_DISCRIMINATOR)?;
        Ok(LockAccount { namespace_id: r.u64()?, amount: r.u64()? })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = LOCK_ACCOUNT_DISCRIMINATOR.to_vec();
        out.extend_from_slice(&self.namespace_id.to_le_bytes());
        out.extend_from_slice(&self.amount.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Pubkey {
        Pubkey::new_from_array([b; 32])
    }

    #[test]
    fn round_trips_and_sizes() {
        let user = UserAccount { nonce: 7, locked_amount: 9, vault: key(1) };
        assert_eq!(user.encode().len(), 56);
        assert_eq!(UserAccount::decode(&user.encode()), Ok(user));
        let lock = LockAccount { namespace_id: 1, amount: 5 };
        assert_eq!(lock.encode().len(), 24);
        assert_eq!(LockAccount::decode(&lock.encode()), Ok(lock));
        let global = GlobalAccount { namespace_nonce: 2 };
        assert_eq!(GlobalAccount::decode(&global.encode()), Ok(global));
        let ns = NamespaceAccount {
            id: 0,
            name: "DeCharge".into(),
            authority: key(2),
            bot: key(3),
            treasury: key(4),
            created_at: -1,
            updated_at: 1_700_000_000,
        };
        let mut data = ns.encode();
        assert_eq!(data.len(), 8 + 8 + 4 + 8 + 96 + 16);
        // Reserved space after the fields is ignored, as Anchor does.
        data.extend_from_slice(&[0; 40]);
        assert_eq!(NamespaceAccount::decode(&data), Ok(ns));
    }

    #[test]
    fn hostile_data_is_refused() {
        let user = UserAccount { nonce: 7, locked_amount: 9, vault: key(1) }.encode();
        assert_eq!(
            UserAccount::decode(&user[..55]),
            Err(DecodeError::TooShort { account: "UserAccount", needed: 56, actual: 55 })
        );
        assert!(matches!(UserAccount::decode(&[]), Err(DecodeError::TooShort { needed: 8, .. })));
        assert!(matches!(LockAccount::decode(&user), Err(DecodeError::WrongDiscriminator { .. })));
        let mut ns = NAMESPACE_ACCOUNT_DISCRIMINATOR.to_vec();
        ns.extend_from_slice(&0u64.to_le_bytes());
        ns.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            matches!(NamespaceAccount::decode(&ns), Err(DecodeError::NameTooLong { len, .. }) if len == u32::MAX as usize)
        );
        let mut ns = NAMESPACE_ACCOUNT_DISCRIMINATOR.to_vec();
        ns.extend_from_slice(&0u64.to_le_bytes());
        ns.extend_from_slice(&100u32.to_le_bytes());
        ns.extend_from_slice(b"short");
        assert!(matches!(NamespaceAccount::decode(&ns), Err(DecodeError::TooShort { needed: 120, .. })));
        let mut ns = NAMESPACE_ACCOUNT_DISCRIMINATOR.to_vec();
        ns.extend_from_slice(&0u64.to_le_bytes());
        ns.extend_from_slice(&2u32.to_le_bytes());
        ns.extend_from_slice(&[0xff, 0xfe]);
        ns.extend_from_slice(&[0; 112]);
        assert!(matches!(NamespaceAccount::decode(&ns), Err(DecodeError::NameNotUtf8 { .. })));
    }
}
