//! Instruction builders for DePHY's balance-payment program (feature `solana-rpc`): `register`,
//! `deposit`, `withdraw` (the user's side), `lock`, `settle` and `pay` (the settlement bot's
//! side). Each returns a `solana_instruction::Instruction` with Anchor's data layout
//! (`sha256("global:<name>")[..8]`, then the borsh arguments) and the program's account list in
//! its order with its signer/writable flags.
//!
//! The program itself cannot be built or deployed in this project's test setup, so these
//! instructions are not executed here: their bytes and account metas are checked against an
//! independent encoder (Anchor's own TypeScript client driven by an IDL written from the
//! program's interface; `tests/balance_payment_coder.rs`).

use solana_instruction::{AccountMeta, Instruction};
use solana_pubkey::Pubkey;

use super::accounts::{lock_pda, namespace_pda, user_pda, vault_pda};
use crate::message::{MessageError, RecoverInfo};

/// `sha256("global:register")[..8]`.
pub const REGISTER_DISCRIMINATOR: [u8; 8] = [211, 124, 67, 15, 211, 194, 178, 240];
/// `sha256("global:deposit")[..8]`.
pub const DEPOSIT_DISCRIMINATOR: [u8; 8] = [242, 35, 198, 137, 82, 225, 242, 182];
/// `sha256("global:withdraw")[..8]`.
pub const WITHDRAW_DISCRIMINATOR: [u8; 8] = [183, 18, 70, 156, 148, 109, 161, 34];
/// `sha256("global:lock")[..8]`.
pub const LOCK_DISCRIMINATOR: [u8; 8] = [21, 19, 208, 43, 237, 62, 255, 87];
/// `sha256("global:settle")[..8]`.
pub const SETTLE_DISCRIMINATOR: [u8; 8] = [175, 42, 185, 87, 144, 131, 102, 212];
/// `sha256("global:pay")[..8]`.
pub const PAY_DISCRIMINATOR: [u8; 8] = [119, 18, 216, 65, 192, 117, 122, 220];

/// The program's `ED25519RecoverInfo` argument: the user's payment authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ed25519RecoverInfo {
    pub signature: [u8; 64],
    pub extra_data: [u8; 64],
    pub deadline: i64,
}

impl Ed25519RecoverInfo {
    /// Borsh: signature, extra_data, deadline LE (136 bytes).
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.extra_data);
        out.extend_from_slice(&self.deadline.to_le_bytes());
    }
}

impl TryFrom<&RecoverInfo> for Ed25519RecoverInfo {
    type Error = MessageError;

    /// From a request payload's `recover_info` (its byte fields must be 64 long).
    fn try_from(info: &RecoverInfo) -> Result<Ed25519RecoverInfo, MessageError> {
        let array = |field: &'static str, bytes: &[u8]| {
            <[u8; 64]>::try_from(bytes).map_err(|_| MessageError::WrongLength { field, actual: bytes.len() })
        };
        Ok(Ed25519RecoverInfo {
            signature: array("signature", &info.signature)?,
            extra_data: array("extra_data", &info.extra_data)?,
            deadline: info.deadline,
        })
    }
}

fn system_program() -> Pubkey {
    solana_system_interface::program::ID
}

fn data(discriminator: [u8; 8], args: &[&[u8]]) -> Vec<u8> {
    let mut out = discriminator.to_vec();
    for arg in args {
        out.extend_from_slice(arg);
    }
    out
}

/// `register`: creates the user's `["USER", user]` account; the user signs, `payer` pays rent.
#[derive(Debug, Clone, Copy)]
pub struct Register {
    pub user: Pubkey,
    pub payer: Pubkey,
}

impl Register {
    pub fn instruction(&self, program: &Pubkey) -> Instruction {
        Instruction::new_with_bytes(
            *program,
            &REGISTER_DISCRIMINATOR,
            vec![
                AccountMeta::new(user_pda(program, &self.user), false),
                AccountMeta::new_readonly(self.user, true),
                AccountMeta::new_readonly(vault_pda(program, &self.user), false),
                AccountMeta::new(self.payer, true),
                AccountMeta::new_readonly(system_program(), false),
            ],
        )
    }
}

/// `deposit` / `withdraw` share their accounts: user_account (w), user (w,s), vault (w),
/// payer (w,s), system_program.
fn vault_transfer(program: &Pubkey, discriminator: [u8; 8], user: &Pubkey, payer: &Pubkey, amount: u64) -> Instruction {
    Instruction::new_with_bytes(
        *program,
        &data(discriminator, &[&amount.to_le_bytes()]),
        vec![
            AccountMeta::new(user_pda(program, user), false),
            AccountMeta::new(*user, true),
            AccountMeta::new(vault_pda(program, user), false),
            AccountMeta::new(*payer, true),
            AccountMeta::new_readonly(system_program(), false),
        ],
    )
}

/// `deposit`: moves `amount` lamports from the user's wallet into the vault.
#[derive(Debug, Clone, Copy)]
pub struct Deposit {
    pub user: Pubkey,
    pub payer: Pubkey,
    pub amount: u64,
}

impl Deposit {
    pub fn instruction(&self, program: &Pubkey) -> Instruction {
        vault_transfer(program, DEPOSIT_DISCRIMINATOR, &self.user, &self.payer, self.amount)
    }
}

/// `withdraw`: moves `amount` lamports from the vault back to the user's wallet.
#[derive(Debug, Clone, Copy)]
pub struct Withdraw {
    pub user: Pubkey,
    pub payer: Pubkey,
    pub amount: u64,
}

impl Withdraw {
    pub fn instruction(&self, program: &Pubkey) -> Instruction {
        vault_transfer(program, WITHDRAW_DISCRIMINATOR, &self.user, &self.payer, self.amount)
    }
}

/// `lock`: the namespace's bot locks `amount` of the user's vault under the user's
/// authorization. `user_nonce` must be the user's **current** on-chain `UserAccount.nonce`: the
/// LockAccount is created at that nonce (and the program checks the signature against it).
#[derive(Debug, Clone, Copy)]
pub struct Lock {
    pub namespace_id: u64,
    pub user: Pubkey,
    pub user_nonce: u64,
    pub bot: Pubkey,
    pub payer: Pubkey,
    pub recover_info: Ed25519RecoverInfo,
    pub amount: u64,
}

impl Lock {
    pub fn instruction(&self, program: &Pubkey) -> Instruction {
        let mut bytes = data(LOCK_DISCRIMINATOR, &[&self.namespace_id.to_le_bytes()]);
        self.recover_info.encode_into(&mut bytes);
        bytes.extend_from_slice(&self.amount.to_le_bytes());
        Instruction::new_with_bytes(
            *program,
            &bytes,
            vec![
                AccountMeta::new_readonly(namespace_pda(program, self.namespace_id), false),
                AccountMeta::new(user_pda(program, &self.user), false),
                AccountMeta::new(self.user, false),
                AccountMeta::new(lock_pda(program, &self.user, self.user_nonce), false),
                AccountMeta::new_readonly(vault_pda(program, &self.user), false),
                AccountMeta::new_readonly(self.bot, true),
                AccountMeta::new(self.payer, true),
                AccountMeta::new_readonly(system_program(), false),
            ],
        )
    }
}

/// `settle`: the bot releases the lock at `nonce` and transfers `amount_to_transfer` (at most
/// the locked amount) from the vault to the namespace `treasury`. `namespace_id` must be the
/// lock's (`LockAccount.namespace_id`).
#[derive(Debug, Clone, Copy)]
pub struct Settle {
    pub namespace_id: u64,
    pub user: Pubkey,
    pub nonce: u64,
    pub treasury: Pubkey,
    pub bot: Pubkey,
    pub payer: Pubkey,
    pub amount_to_transfer: u64,
}

impl Settle {
    pub fn instruction(&self, program: &Pubkey) -> Instruction {
        let bytes = data(SETTLE_DISCRIMINATOR, &[&self.nonce.to_le_bytes(), &self.amount_to_transfer.to_le_bytes()]);
        Instruction::new_with_bytes(
            *program,
            &bytes,
            vec![
                AccountMeta::new_readonly(namespace_pda(program, self.namespace_id), false),
                AccountMeta::new(user_pda(program, &self.user), false),
                AccountMeta::new(self.user, false),
                AccountMeta::new(self.treasury, false),
                AccountMeta::new(lock_pda(program, &self.user, self.nonce), false),
                AccountMeta::new(vault_pda(program, &self.user), false),
                AccountMeta::new_readonly(self.bot, true),
                AccountMeta::new(self.payer, true),
                AccountMeta::new_readonly(system_program(), false),
            ],
        )
    }
}

/// `pay`: the bot transfers `amount_to_transfer` from the vault to the namespace `treasury` at
/// once under the user's authorization (Gacha).
#[derive(Debug, Clone, Copy)]
pub struct Pay {
    pub namespace_id: u64,
    pub user: Pubkey,
    pub treasury: Pubkey,
    pub bot: Pubkey,
    pub payer: Pubkey,
    pub recover_info: Ed25519RecoverInfo,
    pub amount_to_transfer: u64,
}

impl Pay {
    pub fn instruction(&self, program: &Pubkey) -> Instruction {
        let mut bytes = data(PAY_DISCRIMINATOR, &[&self.namespace_id.to_le_bytes()]);
        self.recover_info.encode_into(&mut bytes);
        bytes.extend_from_slice(&self.amount_to_transfer.to_le_bytes());
        Instruction::new_with_bytes(
            *program,
            &bytes,
            vec![
                AccountMeta::new_readonly(namespace_pda(program, self.namespace_id), false),
                AccountMeta::new(user_pda(program, &self.user), false),
                AccountMeta::new(self.user, false),
                AccountMeta::new(self.treasury, false),
                AccountMeta::new(vault_pda(program, &self.user), false),
                AccountMeta::new_readonly(self.bot, true),
                AccountMeta::new(self.payer, true),
                AccountMeta::new_readonly(system_program(), false),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_info_from_payload_checks_lengths() {
        let info = RecoverInfo { signature: vec![1; 64], extra_data: vec![2; 64], deadline: 5 };
        let args = Ed25519RecoverInfo::try_from(&info).unwrap();
        assert_eq!((args.signature, args.extra_data, args.deadline), ([1; 64], [2; 64], 5));
        let short = RecoverInfo { signature: vec![1; 63], ..info };
        assert!(matches!(
            Ed25519RecoverInfo::try_from(&short),
            Err(MessageError::WrongLength { field: "signature", actual: 63 })
        ));
    }

    #[test]
    fn lock_data_layout() {
        let recover_info = Ed25519RecoverInfo { signature: [1; 64], extra_data: [2; 64], deadline: -2 };
        let key = Pubkey::new_from_array([3; 32]);
        let ix = Lock { namespace_id: 1, user: key, user_nonce: 4, bot: key, payer: key, recover_info, amount: 6 }
            .instruction(&super::super::accounts::program_id());
        assert_eq!(ix.data.len(), 8 + 8 + 136 + 8);
        assert_eq!(&ix.data[..8], &LOCK_DISCRIMINATOR);
        assert_eq!(&ix.data[8..16], &1u64.to_le_bytes());
        assert_eq!(&ix.data[144..152], &(-2i64).to_le_bytes());
        assert_eq!(&ix.data[152..], &6u64.to_le_bytes());
    }
}
