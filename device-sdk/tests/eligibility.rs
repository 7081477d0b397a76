//! On-chain eligibility (`payment::eligibility::check`) against a real offline surfpool node
//! with DePHY's balance-payment accounts seeded in their exact layout (discriminators computed
//! here), for authorizations made by DePHY's dApp code path in an independent Node.js
//! implementation (`tests/support/dephy_dapp.js`: @noble/curves ed25519, @noble/hashes
//! keccak_256, bs58; it reads the user's nonce from the seeded UserAccount over JSON-RPC).
//! Accepted when everything holds; refused with the typed reason for a stale nonce, a wrong
//! namespace name, an insufficient vault balance (because of the locked amount), an expired
//! deadline, and for an unregistered user, an unknown namespace, another namespace than the
//! machine's, and a payload that is not an authorization. The same check as a controller's
//! async eligibility hook: the Working Status carries the dApp's payload byte for byte.

#[path = "support/node.rs"]
mod node;
#[path = "support/surfpool.rs"]
mod surfpool;

use dephy_device_sdk::event::{self, ParsedEvent};
use dephy_device_sdk::message::{Message, Reason, Status};
use dephy_device_sdk::nostr::{EventId, Keys, PublicKey};
use dephy_device_sdk::payment::accounts;
use dephy_device_sdk::payment::eligibility::{self, Refusal, Requirement};
use dephy_device_sdk::{Controller, ControllerError, Decision, Hooks};
use serde_json::{Value, json};
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use surfpool::{Surfpool, layout};

const SESSION: &str = "dephy-decharge-controller";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A user of the dApp: wallet seed and address (derived here with ed25519-dalek; the Node side
/// derives it again and the two must agree).
struct User {
    seed: [u8; 32],
    key: Pubkey,
}

fn user() -> User {
    let seed: [u8; 32] = rand::random();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    User { seed, key: Pubkey::new_from_array(key) }
}

/// Seeds `["USER", user]` (nonce, locked) and the vault PDA (lamports).
async fn register(node: &Surfpool, program: &Pubkey, user: &Pubkey, nonce: u64, locked: u64, vault_lamports: u64) {
    let vault = accounts::vault_pda(program, user);
    let data = layout("UserAccount", &[&nonce.to_le_bytes(), &locked.to_le_bytes(), vault.as_ref()]);
    node.set_account(&accounts::user_pda(program, user), 1_447_680, &data, program).await;
    node.set_account(&vault, vault_lamports, &[], &Pubkey::default()).await;
}

async fn namespace(node: &Surfpool, program: &Pubkey, id: u64, name: &str) {
    let keys = [Pubkey::new_unique(), Pubkey::new_unique(), Pubkey::new_unique()];
    let mut data = layout(
        "NamespaceAccount",
        &[
            &id.to_le_bytes(),
            &(name.len() as u32).to_le_bytes(),
            name.as_bytes(),
            keys[0].as_ref(),
            keys[1].as_ref(),
            keys[2].as_ref(),
            &1_700_000_000i64.to_le_bytes(),
            &1_700_000_000i64.to_le_bytes(),
        ],
    );
    data.extend_from_slice(&[0; 24]);
    node.set_account(&accounts::namespace_pda(program, id), 2_000_000, &data, program).await;
}

/// One authorization by the dApp: namespace (name, id), nonce (`None`: the on-chain one), deadline.
fn case(user: &User, name: &str, namespace_id: u64, nonce: Option<u64>, deadline: i64) -> Value {
    json!({
        "seed": hex::encode(user.seed),
        "namespace": name,
        "namespace_id": namespace_id,
        "nonce": nonce,
        "deadline": deadline,
        "extra_data": hex::encode(rand::random::<[u8; 32]>().repeat(2)),
    })
}

/// Runs the dApp on `cases`; returns (nonce used, payload) for each.
fn dapp(rpc_url: &str, program: &Pubkey, users: &[&User], cases: Vec<Value>) -> Vec<(u64, String)> {
    let out = node::run_json(
        "dephy_dapp.js",
        "npm-anchor",
        "@coral-xyz/anchor@0.32.1 (with @noble/curves, @noble/hashes, bs58)",
        &json!({ "rpc": rpc_url, "program": program.to_string(), "cases": cases }),
    );
    let out = out.as_array().expect("an array").clone();
    assert_eq!(out.len(), users.len());
    out.iter()
        .zip(users)
        .map(|(o, u)| {
            assert_eq!(o["user"], json!(u.key.to_string()), "the Node side derives the same wallet address");
            (o["nonce"].as_u64().unwrap(), o["payload"].as_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dapp_authorizations_checked_on_chain() {
    let surfpool = Surfpool::start();
    let rpc = surfpool.confirmed_client();
    let program = accounts::program_id();
    namespace(&surfpool, &program, 0, "DeCharge").await;
    namespace(&surfpool, &program, 1, "Gacha").await;

    // Alice: nonce 41, 1_000_000 locked of 5_000_000. Bob: 1_500_000 locked of 2_000_000.
    let (alice, bob, carol) = (user(), user(), user());
    register(&surfpool, &program, &alice.key, 41, 1_000_000, 5_000_000).await;
    register(&surfpool, &program, &bob.key, 7, 1_500_000, 2_000_000).await;
    let t = now();
    let requirement = Requirement { program, namespace_id: Some(0), amount: 1_000_000 };

    let cases = vec![
        case(&alice, "DeCharge", 0, None, t + 600),     // 0: good
        case(&alice, "DeCharge", 0, Some(40), t + 600), // 1: stale nonce (already used)
        case(&alice, "DeCharge", 0, Some(42), t + 600), // 2: a nonce from the future
        case(&alice, "decharge", 0, None, t + 600),     // 3: wrong namespace name (case matters)
        case(&bob, "DeCharge", 0, None, t + 600),       // 4: insufficient (locked)
        case(&alice, "DeCharge", 0, None, t - 1),       // 5: expired
        case(&carol, "DeCharge", 0, Some(0), t + 600),  // 6: not registered
        case(&alice, "Gacha", 1, None, t + 600),        // 7: another namespace than the machine's
        case(&alice, "Nowhere", 9, None, t + 600),      // 8: no such namespace
    ];
    let users = [&alice, &alice, &alice, &alice, &bob, &alice, &carol, &alice, &alice];
    let signed = dapp(&surfpool.rpc_url, &program, &users, cases);
    assert_eq!((signed[0].0, signed[4].0), (41, 7), "the dApp read the seeded on-chain nonces");
    let check =
        async |i: usize, requirement: &Requirement| eligibility::check(&rpc, requirement, &signed[i].1, now()).await;

    let ok = check(0, &requirement).await.expect("DePHY's dApp authorization is eligible");
    assert_eq!(
        (ok.user, ok.namespace_id, ok.namespace.as_str(), ok.nonce, ok.available, ok.amount),
        (alice.key, 0, "DeCharge", 41, 4_000_000, 1_000_000)
    );
    assert_eq!(Decision::from(check(0, &requirement).await), Decision::Accept);

    assert_eq!(check(1, &requirement).await, Err(Refusal::StaleNonce { on_chain: 41, signed: 40 }));
    assert_eq!(check(2, &requirement).await, Err(Refusal::StaleNonce { on_chain: 41, signed: 42 }));
    assert_eq!(
        check(3, &requirement).await,
        Err(Refusal::BadSignature { user: alice.key, namespace: "DeCharge".into() })
    );
    assert_eq!(
        check(4, &requirement).await,
        Err(Refusal::InsufficientBalance { available: 500_000, amount: 1_000_000 })
    );
    let expired = check(5, &requirement).await;
    assert!(matches!(expired, Err(Refusal::Expired { deadline, now }) if deadline == t - 1 && now >= t), "{expired:?}");
    assert_eq!(
        check(6, &requirement).await,
        Err(Refusal::NotRegistered { user: carol.key, account: accounts::user_pda(&program, &carol.key) })
    );
    assert_eq!(check(7, &requirement).await, Err(Refusal::WrongNamespace { expected: 0, actual: 1 }));
    // A machine taking any namespace accepts the Gacha one, and refuses one that does not exist.
    let any = Requirement { namespace_id: None, ..requirement };
    assert_eq!(check(7, &any).await.unwrap().namespace, "Gacha");
    assert_eq!(
        check(8, &any).await,
        Err(Refusal::UnknownNamespace { namespace_id: 9, account: accounts::namespace_pda(&program, 9) })
    );
    // Exactly the available amount is enough; one lamport more is not.
    let exact = Requirement { amount: 4_000_000, ..requirement };
    assert!(check(0, &exact).await.is_ok());
    let over = Requirement { amount: 4_000_001, ..requirement };
    assert_eq!(check(0, &over).await, Err(Refusal::InsufficientBalance { available: 4_000_000, amount: 4_000_001 }));

    // Not an authorization at all.
    for bad in ["", "not json", r#"{"namespace_id":0,"user":"x","nonce":1,"recover_info":"{}"}"#] {
        let got = eligibility::check(&rpc, &requirement, bad, now()).await;
        assert!(matches!(got, Err(Refusal::BadPayload(_))), "{bad:?}: {got:?}");
    }

    // Through the controller: the check as its async hook; the Working Status carries the
    // dApp's payload byte for byte (DePHY's settlement server locks with it), a refusal is typed.
    struct OnChain {
        rpc: RpcClient,
        requirement: Requirement,
    }
    impl Hooks for OnChain {
        async fn eligible(&mut self, _: &ParsedEvent, payload: &str) -> Decision {
            eligibility::check(&self.rpc, &self.requirement, payload, now()).await.into()
        }
        fn actuate(&mut self, _: &PublicKey, _: Status, _: EventId) {}
    }
    let machine = Keys::generate().public_key();
    let hooks = OnChain { rpc: surfpool.confirmed_client(), requirement };
    let mut controller = Controller::for_machines(Keys::generate(), SESSION, [machine], vec![], hooks);
    let dephy_user = Keys::generate();
    let stale =
        event::request(&dephy_user, SESSION, &machine, Status::Working, Reason::UserRequest, None, &signed[1].1);
    let refused = controller.handle(&event::parse(&stale).unwrap()).await.unwrap_err();
    assert!(matches!(&refused, ControllerError::NotEligible(why) if why.contains("on-chain nonce is 41")), "{refused}");
    let good = event::request(&dephy_user, SESSION, &machine, Status::Working, Reason::UserRequest, None, &signed[0].1);
    let working = event::parse(&controller.handle(&event::parse(&good).unwrap()).await.unwrap()).unwrap();
    assert!(
        matches!(&working.message, Message::Status { status: Status::Working, payload, .. } if *payload == signed[0].1),
        "{working:?}"
    );

    // After the program's `lock` (nonce incremented, amount locked), the same authorization is
    // stale: simulated by updating the seeded account as the program would.
    register(&surfpool, &program, &alice.key, 42, 2_000_000, 5_000_000).await;
    assert_eq!(check(0, &requirement).await, Err(Refusal::StaleNonce { on_chain: 42, signed: 41 }));

    // A USER account not owned by the program is not trusted.
    surfpool.set_account(&accounts::user_pda(&program, &alice.key), 1_447_680, &[0; 56], &Pubkey::new_unique()).await;
    assert!(matches!(check(0, &requirement).await, Err(Refusal::BadAccount { .. })));
}
