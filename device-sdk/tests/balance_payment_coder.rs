//! The balance-payment client against an independent encoder: Anchor's TypeScript client (npm
//! `@coral-xyz/anchor@0.32.1`, run by `tests/support/anchor_coder.js` with an IDL written there
//! from the program's interface; scripts/test installs it into target/npm-anchor). For all six
//! instructions the SDK's data bytes, program id and account metas (keys, order, signer and
//! writable flags) must equal Anchor's, whose PDAs are derived on the JS side; the SDK's account
//! encoders must produce Anchor's bytes and its decoders must read them back. Discriminators are
//! recomputed here from their names with sha256 and must match both sides.
//!
//! The program itself cannot be built or deployed here: these instructions are checked, not
//! executed.

#[path = "support/node.rs"]
mod node;

use dephy_device_sdk::payment::accounts::{
    self, GLOBAL_ACCOUNT_DISCRIMINATOR, GlobalAccount, LOCK_ACCOUNT_DISCRIMINATOR, LockAccount,
    NAMESPACE_ACCOUNT_DISCRIMINATOR, NamespaceAccount, USER_ACCOUNT_DISCRIMINATOR, UserAccount,
};
use dephy_device_sdk::payment::instructions::{
    DEPOSIT_DISCRIMINATOR, Deposit, Ed25519RecoverInfo, LOCK_DISCRIMINATOR, Lock, PAY_DISCRIMINATOR, Pay,
    REGISTER_DISCRIMINATOR, Register, SETTLE_DISCRIMINATOR, Settle, WITHDRAW_DISCRIMINATOR, Withdraw,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use solana_instruction::Instruction;
use solana_pubkey::Pubkey;

/// Runs the Anchor script on `request`.
fn anchor(request: &Value) -> Value {
    node::run_json("anchor_coder.js", "npm-anchor", "@coral-xyz/anchor@0.32.1", request)
}

fn sha256_8(preimage: &str) -> [u8; 8] {
    Sha256::digest(preimage.as_bytes())[..8].try_into().unwrap()
}

fn key() -> Pubkey {
    Pubkey::new_from_array(rand::random())
}

#[test]
fn discriminators_recomputed() {
    let all = [
        ("global:register", REGISTER_DISCRIMINATOR),
        ("global:deposit", DEPOSIT_DISCRIMINATOR),
        ("global:withdraw", WITHDRAW_DISCRIMINATOR),
        ("global:lock", LOCK_DISCRIMINATOR),
        ("global:settle", SETTLE_DISCRIMINATOR),
        ("global:pay", PAY_DISCRIMINATOR),
        ("account:GlobalAccount", GLOBAL_ACCOUNT_DISCRIMINATOR),
        ("account:NamespaceAccount", NAMESPACE_ACCOUNT_DISCRIMINATOR),
        ("account:UserAccount", USER_ACCOUNT_DISCRIMINATOR),
        ("account:LockAccount", LOCK_ACCOUNT_DISCRIMINATOR),
    ];
    let js = anchor(&json!({ "program": accounts::BALANCE_PAYMENT_PROGRAM_ID, "instructions": [], "accounts": [] }));
    for (preimage, constant) in all {
        assert_eq!(sha256_8(preimage), constant, "sha256({preimage:?})[..8]");
        assert_eq!(js["discriminators"][preimage], json!(constant.to_vec()), "Anchor's IDL for {preimage}");
    }
}

/// One instruction case: the SDK's instruction and the same inputs for the JS side.
struct Case {
    instruction: Instruction,
    input: Value,
}

fn recover_info() -> Ed25519RecoverInfo {
    let mut signature = [0u8; 64];
    let mut extra_data = [0u8; 64];
    signature.iter_mut().for_each(|b| *b = rand::random());
    extra_data.iter_mut().for_each(|b| *b = rand::random());
    Ed25519RecoverInfo { signature, extra_data, deadline: rand::random() }
}

fn recover_json(info: &Ed25519RecoverInfo) -> Value {
    json!({
        "signature": hex::encode(info.signature),
        "extra_data": hex::encode(info.extra_data),
        "deadline": info.deadline.to_string(),
    })
}

/// All six instructions with random keys and arguments (`amount` and ids as decimal strings
/// so that full u64/i64 values survive JSON); `bot_is_payer` repeats a key as DePHY's servers do.
fn cases(program: &Pubkey, bot_is_payer: bool, big: bool) -> Vec<Case> {
    let (user, bot, treasury) = (key(), key(), key());
    let payer = if bot_is_payer { bot } else { key() };
    let n = |small: u64| if big { u64::MAX - small } else { small };
    let (namespace_id, nonce, amount) = (n(1), n(rand::random::<u16>().into()), n(rand::random::<u32>().into()));
    let info = recover_info();
    let base = json!({
        "user": user.to_string(), "payer": payer.to_string(), "bot": bot.to_string(),
        "treasury": treasury.to_string(), "namespace_id": namespace_id.to_string(),
        "nonce": nonce.to_string(), "amount": amount.to_string(), "recover_info": recover_json(&info),
    });
    let with_name = |name: &str| {
        let mut input = base.clone();
        input["name"] = json!(name);
        input
    };
    vec![
        Case { instruction: Register { user, payer }.instruction(program), input: with_name("register") },
        Case { instruction: Deposit { user, payer, amount }.instruction(program), input: with_name("deposit") },
        Case { instruction: Withdraw { user, payer, amount }.instruction(program), input: with_name("withdraw") },
        Case {
            instruction: Lock { namespace_id, user, user_nonce: nonce, bot, payer, recover_info: info, amount }
                .instruction(program),
            input: with_name("lock"),
        },
        Case {
            instruction: Settle { namespace_id, user, nonce, treasury, bot, payer, amount_to_transfer: amount }
                .instruction(program),
            input: with_name("settle"),
        },
        Case {
            instruction: Pay {
                namespace_id,
                user,
                treasury,
                bot,
                payer,
                recover_info: info,
                amount_to_transfer: amount,
            }
            .instruction(program),
            input: with_name("pay"),
        },
    ]
}

fn instruction_json(ix: &Instruction) -> Value {
    json!({
        "program_id": ix.program_id.to_string(),
        "data": hex::encode(&ix.data),
        "accounts": ix.accounts.iter().map(|m| json!({
            "pubkey": m.pubkey.to_string(), "is_signer": m.is_signer, "is_writable": m.is_writable,
        })).collect::<Vec<_>>(),
    })
}

#[test]
fn instructions_match_anchor() {
    let program = accounts::program_id();
    let mut all = Vec::new();
    for round in 0..4 {
        all.extend(cases(&program, round % 2 == 1, round >= 2));
    }
    // Another program id: nothing is tied to the devnet address.
    all.extend(cases(&key(), false, false));
    let program_of = |i: usize| all[i].instruction.program_id.to_string();
    // The JS side takes one program id per run: run it per program.
    let mut checked = 0;
    for program_id in [program.to_string(), program_of(all.len() - 1)] {
        let group: Vec<&Case> = all.iter().filter(|c| c.instruction.program_id.to_string() == program_id).collect();
        let inputs: Vec<Value> = group.iter().map(|c| c.input.clone()).collect();
        let js = anchor(&json!({ "program": program_id, "instructions": inputs, "accounts": [] }));
        let js = js["instructions"].as_array().expect("instructions");
        assert_eq!(js.len(), group.len());
        for (case, theirs) in group.iter().zip(js) {
            assert_eq!(&instruction_json(&case.instruction), theirs, "{} differs from Anchor's", case.input["name"]);
            checked += 1;
        }
    }
    assert_eq!(checked, 30);
}

/// A tampered instruction is told apart: the comparison is not vacuous.
#[test]
fn tampered_instruction_differs_from_anchor() {
    let program = accounts::program_id();
    let case = cases(&program, false, false).remove(3); // lock
    let js = anchor(&json!({ "program": program.to_string(), "instructions": [case.input], "accounts": [] }));
    let theirs = &js["instructions"][0];
    assert_eq!(&instruction_json(&case.instruction), theirs);
    let mut flipped = case.instruction.clone();
    flipped.accounts[5].is_signer = false;
    assert_ne!(&instruction_json(&flipped), theirs);
    let mut swapped = case.instruction.clone();
    swapped.accounts.swap(1, 3);
    assert_ne!(&instruction_json(&swapped), theirs);
    let mut data = case.instruction;
    *data.data.last_mut().unwrap() ^= 1;
    assert_ne!(&instruction_json(&data), theirs);
}

#[test]
fn accounts_match_anchor() {
    let names = ["DeCharge", "Gacha", "", "naïve ☕ namespace"];
    let namespaces: Vec<NamespaceAccount> = names
        .iter()
        .enumerate()
        .map(|(i, name)| NamespaceAccount {
            id: if i == 3 { u64::MAX } else { i as u64 },
            name: name.to_string(),
            authority: key(),
            bot: key(),
            treasury: key(),
            created_at: rand::random(),
            updated_at: i64::MIN + i as i64,
        })
        .collect();
    let users = [
        UserAccount { nonce: 0, locked_amount: 0, vault: key() },
        UserAccount { nonce: rand::random(), locked_amount: u64::MAX, vault: key() },
    ];
    let locks = [LockAccount { namespace_id: 0, amount: 1 }, LockAccount { namespace_id: 1, amount: rand::random() }];
    let globals = [GlobalAccount { namespace_nonce: 2 }, GlobalAccount { namespace_nonce: u64::MAX }];

    let mut inputs = Vec::new();
    let mut ours: Vec<Vec<u8>> = Vec::new();
    for ns in &namespaces {
        inputs.push(json!({"name": "NamespaceAccount", "value": {
            "id": ns.id.to_string(), "name": ns.name, "authority": ns.authority.to_string(),
            "bot": ns.bot.to_string(), "treasury": ns.treasury.to_string(),
            "created_at": ns.created_at.to_string(), "updated_at": ns.updated_at.to_string(),
        }}));
        ours.push(ns.encode());
    }
    for user in &users {
        inputs.push(json!({"name": "UserAccount", "value": {
            "nonce": user.nonce.to_string(), "locked_amount": user.locked_amount.to_string(),
            "vault": user.vault.to_string(),
        }}));
        ours.push(user.encode());
    }
    for lock in &locks {
        inputs.push(json!({"name": "LockAccount", "value": {
            "namespace_id": lock.namespace_id.to_string(), "amount": lock.amount.to_string(),
        }}));
        ours.push(lock.encode());
    }
    for global in &globals {
        inputs.push(json!({"name": "GlobalAccount", "value": {"namespace_nonce": global.namespace_nonce.to_string()}}));
        ours.push(global.encode());
    }
    let js =
        anchor(&json!({ "program": accounts::BALANCE_PAYMENT_PROGRAM_ID, "instructions": [], "accounts": inputs }));
    let theirs: Vec<Vec<u8>> = js["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(theirs.len(), ours.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(hex::encode(a), hex::encode(b), "account {i} ({}) differs from Anchor's", inputs[i]["name"]);
    }
    // The decoders read Anchor's bytes.
    let mut at = 0;
    for ns in &namespaces {
        assert_eq!(&NamespaceAccount::decode(&theirs[at]).unwrap(), ns);
        at += 1;
    }
    for user in &users {
        assert_eq!(&UserAccount::decode(&theirs[at]).unwrap(), user);
        assert_eq!(theirs[at].len(), 56);
        at += 1;
    }
    for lock in &locks {
        assert_eq!(&LockAccount::decode(&theirs[at]).unwrap(), lock);
        assert_eq!(theirs[at].len(), 24);
        at += 1;
    }
    for global in &globals {
        assert_eq!(&GlobalAccount::decode(&theirs[at]).unwrap(), global);
        at += 1;
    }
}
