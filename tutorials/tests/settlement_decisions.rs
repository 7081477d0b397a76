//! The settlement service's decisions for what the tutorials' local node cannot produce: a lock,
//! a settle and a pay that succeed (DePHY's program is not deployed there; every refusal path
//! runs against real surfpool in `tutorials.rs` and `interop.rs`). The chain here is a
//! [`Chain`] that accepts every transaction and keeps the LockAccount a `lock` creates, so the
//! `settle` after it finds it. The instructions submitted are compared with the SDK's builders.

use std::collections::HashMap;
use std::sync::Mutex;

use dephy_device_sdk::event;
use dephy_device_sdk::message::{Reason, Status};
use dephy_device_sdk::nostr::{Event, Keys};
use dephy_device_sdk::payment::accounts::{self, LockAccount, NamespaceAccount};
use dephy_device_sdk::payment::authorization;
use dephy_device_sdk::payment::instructions::{Ed25519RecoverInfo, LOCK_DISCRIMINATOR, Lock, Pay, Settle};
use dephy_tutorials::settlement::{Chain, Outcome, Settlement};
use ed25519_dalek::SigningKey;
use solana_instruction::Instruction;
use solana_pubkey::Pubkey;

const SESSION: &str = "dephy-decharge-controller";

struct AcceptingChain {
    bot: Pubkey,
    payer: Pubkey,
    namespaces: HashMap<u64, NamespaceAccount>,
    locks: Mutex<HashMap<Pubkey, LockAccount>>,
    submitted: Mutex<Vec<Instruction>>,
}

impl Chain for AcceptingChain {
    fn program(&self) -> Pubkey {
        accounts::program_id()
    }
    fn bot(&self) -> Pubkey {
        self.bot
    }
    fn payer(&self) -> Pubkey {
        self.payer
    }
    async fn namespace(&self, id: u64) -> Result<Option<NamespaceAccount>, String> {
        Ok(self.namespaces.get(&id).cloned())
    }
    async fn lock_account(&self, user: &Pubkey, nonce: u64) -> Result<Option<LockAccount>, String> {
        Ok(self.locks.lock().unwrap().get(&accounts::lock_pda(&self.program(), user, nonce)).copied())
    }
    async fn submit(&self, ix: Instruction) -> Result<String, String> {
        if ix.data[..8] == LOCK_DISCRIMINATOR {
            // What the program's lock creates: LockAccount {namespace_id, amount} at accounts[3].
            let namespace_id = u64::from_le_bytes(ix.data[8..16].try_into().unwrap());
            let amount = u64::from_le_bytes(ix.data[152..160].try_into().unwrap());
            self.locks.lock().unwrap().insert(ix.accounts[3].pubkey, LockAccount { namespace_id, amount });
        }
        let mut submitted = self.submitted.lock().unwrap();
        submitted.push(ix);
        Ok(format!("accepted-{}", submitted.len()))
    }
}

fn namespace(id: u64, name: &str, bot: Pubkey, treasury: Pubkey) -> NamespaceAccount {
    NamespaceAccount { id, name: name.into(), authority: bot, bot, treasury, created_at: 0, updated_at: 0 }
}

fn status(controller: &Keys, machine: &Keys, status: Status, reason: Reason, request: &Event, payload: &str) -> Event {
    event::status_for(controller, SESSION, &machine.public_key(), status, reason, request.id, payload)
}

/// A user's Request to start `machine` with `payload`, and the controller's Working Status answering it.
fn started(controller: &Keys, machine: &Keys, payload: &str) -> (Event, Event) {
    let request = event::request(
        &Keys::generate(),
        SESSION,
        &machine.public_key(),
        Status::Working,
        Reason::UserRequest,
        None,
        payload,
    );
    let working = status(controller, machine, Status::Working, Reason::UserRequest, &request, payload);
    (request, working)
}

#[tokio::test]
async fn lock_then_settle_and_pay_when_the_chain_accepts() {
    let (bot, payer, treasury) = (Pubkey::new_unique(), Pubkey::new_unique(), Pubkey::new_unique());
    let chain = AcceptingChain {
        bot,
        payer,
        namespaces: HashMap::from([
            (0, namespace(0, "DeCharge", bot, treasury)),
            (1, namespace(1, "Gacha", bot, treasury)),
        ]),
        locks: Mutex::default(),
        submitted: Mutex::default(),
    };
    let controller = Keys::generate();
    let service = Settlement {
        chain,
        keys: Keys::generate(),
        session: SESSION.into(),
        amount: 700_000,
        controllers: vec![controller.public_key()],
    };
    let wallet = SigningKey::from_bytes(&[5; 32]);
    let user = Pubkey::new_from_array(wallet.verifying_key().to_bytes());
    let machine = Keys::generate();
    let program = accounts::program_id();

    // DeCharge: Working -> lock at the payload's nonce.
    let payload = authorization::signed_payload(&wallet, "DeCharge", 0, 9, 4_000_000_000, [1; 64]);
    let (request, working) = started(&controller, &machine, &payload.to_json());
    let outcome = service.on_event(&working).await;
    assert!(matches!(&outcome, Outcome::Locked { nonce: 9, amount: 700_000, .. }), "{outcome:?}");
    let recover_info = Ed25519RecoverInfo::try_from(&payload.recover_info().unwrap()).unwrap();
    let lock =
        Lock { namespace_id: 0, user, user_nonce: 9, bot, payer, recover_info, amount: 700_000 }.instruction(&program);
    assert_eq!(service.chain.submitted.lock().unwrap().last(), Some(&lock));

    // Finished -> settle the lock at that nonce, to the namespace's treasury.
    let done = status(&controller, &machine, Status::Available, Reason::UserBehaviour, &request, &payload.to_json());
    let outcome = service.on_event(&done).await;
    assert!(matches!(&outcome, Outcome::Settled { nonce: 9, amount: 700_000, .. }), "{outcome:?}");
    let settle = Settle { namespace_id: 0, user, nonce: 9, treasury, bot, payer, amount_to_transfer: 700_000 }
        .instruction(&program);
    assert_eq!(service.chain.submitted.lock().unwrap().last(), Some(&settle));

    // Gacha: Working -> pay at once; its end settles nothing.
    let payload = authorization::signed_payload(&wallet, "Gacha", 1, 10, 4_000_000_000, [2; 64]);
    let (request, working) = started(&controller, &machine, &payload.to_json());
    let outcome = service.on_event(&working).await;
    assert!(matches!(&outcome, Outcome::Paid { nonce: 10, amount: 700_000, .. }), "{outcome:?}");
    let recover_info = Ed25519RecoverInfo::try_from(&payload.recover_info().unwrap()).unwrap();
    let pay = Pay { namespace_id: 1, user, treasury, bot, payer, recover_info, amount_to_transfer: 700_000 }
        .instruction(&program);
    assert_eq!(service.chain.submitted.lock().unwrap().last(), Some(&pay));
    let done = status(&controller, &machine, Status::Available, Reason::UserBehaviour, &request, &payload.to_json());
    assert!(matches!(service.on_event(&done).await, Outcome::Ignored(_)));
    assert_eq!(service.chain.submitted.lock().unwrap().len(), 3);
}
