//! Payments over Solana RPC against a real offline surfpool (npm
//! `@solana/surfpool-linux-x64-gnu@1.5.0`, started by the relay's `tests/support/surfpool.js`):
//! a direct SOL transfer with the request id as memo (airdrop, pay, find, verify; wrong amount,
//! wrong recipient, wrong memo, unconfirmed, replayed), vault eligibility from the
//! balance-payment PDAs, and the balance-payment account decoders reading every account type
//! fetched with `getAccountInfo` (accounts seeded with surfpool's `surfnet_setAccount` in the
//! exact layout, built byte by byte here).

#[path = "support/surfpool.rs"]
mod surfpool;

use std::time::{Duration, Instant};

use dephy_device_sdk::event;
use dephy_device_sdk::message::{Reason, Status};
use dephy_device_sdk::nostr::Keys;
use dephy_device_sdk::payment::accounts::{self, GlobalAccount, LockAccount, NamespaceAccount, UserAccount};
use dephy_device_sdk::payment::rpc::{self, RpcError};
use dephy_device_sdk::payment::transfer::{self, PaymentLedger, TransferError};
use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer as _;
use surfpool::Surfpool;

async fn funded(rpc: &RpcClient) -> Keypair {
    let keypair = Keypair::new_from_array(rand::random::<[u8; 32]>());
    rpc.request_airdrop(&keypair.pubkey(), 5_000_000_000).await.expect("requestAirdrop");
    let deadline = Instant::now() + Duration::from_secs(30);
    while rpc.get_balance(&keypair.pubkey()).await.unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the airdrop did not arrive within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keypair
}

fn request_event(machine: &Keys) -> dephy_device_sdk::nostr::Event {
    event::request(
        &Keys::generate(),
        "dephy-decharge-controller",
        &machine.public_key(),
        Status::Working,
        Reason::UserRequest,
        None,
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_sol_payment_with_memo() {
    let surfpool = Surfpool::start();
    let rpc = surfpool.confirmed_client();
    let user = funded(&rpc).await;
    let owner = Pubkey::new_from_array(rand::random());
    let machine = Keys::generate();
    let request = request_event(&machine);
    let price = 1_000_000;

    let signature =
        transfer::pay(&rpc, &user, &owner, price, &request.id).await.expect("payment confirmed").to_string();
    assert_eq!(rpc.get_balance(&owner).await.unwrap(), price);

    // The device finds the payment by its memo and verifies it.
    let found = transfer::find(&rpc, &owner, &request.id).await.unwrap();
    assert_eq!(found.as_deref(), Some(signature.as_str()));
    let paid = transfer::verify(&rpc, &signature, &owner, price, &request.id).await.unwrap();
    assert_eq!((paid.payer, paid.lamports), (user.pubkey().to_string(), price));

    // Failure cases.
    let err = transfer::verify(&rpc, &signature, &owner, price + 1, &request.id).await.unwrap_err();
    assert!(
        matches!(err, TransferError::WrongAmount { expected, actual, .. } if expected == price + 1 && actual == price),
        "{err}"
    );
    let other = Pubkey::new_from_array(rand::random());
    let err = transfer::verify(&rpc, &signature, &other, price, &request.id).await.unwrap_err();
    assert!(matches!(err, TransferError::WrongRecipient { .. }), "{err}");
    let other_request = request_event(&machine);
    let err = transfer::verify(&rpc, &signature, &owner, price, &other_request.id).await.unwrap_err();
    assert!(matches!(&err, TransferError::WrongMemo { found, .. } if found == &vec![request.id.to_hex()]), "{err}");
    assert_eq!(transfer::find(&rpc, &owner, &other_request.id).await.unwrap(), None);
    let unsent = transfer::payment_transaction(&rpc, &user, &owner, price, &other_request.id).await.unwrap();
    let err =
        transfer::verify(&rpc, &unsent.signatures[0].to_string(), &owner, price, &other_request.id).await.unwrap_err();
    assert!(matches!(err, TransferError::NotConfirmed(_)), "{err}");
    let err = transfer::verify(&rpc, "not-a-signature", &owner, price, &request.id).await.unwrap_err();
    assert!(matches!(err, TransferError::BadSignature(_)), "{err}");

    // One payment pays for one request, also across a restart of the device.
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("payments");
    let mut ledger = PaymentLedger::open(&ledger_path).unwrap();
    ledger.accept(&rpc, &signature, &owner, price, &request.id).await.unwrap();
    let err = ledger.accept(&rpc, &signature, &owner, price, &request.id).await.unwrap_err();
    assert!(matches!(err, TransferError::Replayed(_)), "{err}");
    let mut reopened = PaymentLedger::open(&ledger_path).unwrap();
    assert!(matches!(
        reopened.accept(&rpc, &signature, &owner, price, &request.id).await,
        Err(TransferError::Replayed(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_eligibility_from_pdas() {
    let surfpool = Surfpool::start();
    let rpc = surfpool.confirmed_client();
    let program = rpc::program_id();
    let user = Pubkey::new_from_array(rand::random());

    let err = rpc::balance(&rpc, &program, &user.to_string()).await.unwrap_err();
    assert!(matches!(err, RpcError::NotRegistered { .. }), "{err}");
    assert!(matches!(rpc::balance(&rpc, &program, "bad user").await, Err(RpcError::BadUser(_))));

    // USER account: discriminator, nonce 3, locked 400_000, vault.
    let vault = rpc::vault_pda(&program, &user);
    let data = layout("UserAccount", &[&3u64.to_le_bytes(), &400_000u64.to_le_bytes(), vault.as_ref()]);
    surfpool.set_account(&rpc::user_pda(&program, &user), 2_000_000, &data, &program).await;
    surfpool.set_account(&vault, 1_000_000, &[], &Pubkey::default()).await;

    let balance = rpc::balance(&rpc, &program, &user.to_string()).await.unwrap();
    assert_eq!((balance.vault_lamports, balance.locked_amount, balance.nonce), (1_000_000, 400_000, 3));
    assert!(balance.covers(600_000));
    assert!(!balance.covers(600_001));

    // A USER PDA owned by another program is not trusted.
    let impostor = Pubkey::new_from_array(rand::random());
    surfpool.set_account(&rpc::user_pda(&program, &impostor), 2_000_000, &data, &Pubkey::new_from_array([9; 32])).await;
    let err = rpc::balance(&rpc, &program, &impostor.to_string()).await.unwrap_err();
    assert!(matches!(err, RpcError::BadAccount { .. }), "{err}");
    // So is one of the program's with another account type's discriminator.
    let lookalike = Pubkey::new_from_array(rand::random());
    let wrong = layout("LockAccount", &[&3u64.to_le_bytes(), &400_000u64.to_le_bytes(), vault.as_ref()]);
    surfpool.set_account(&rpc::user_pda(&program, &lookalike), 2_000_000, &wrong, &program).await;
    let err = rpc::balance(&rpc, &program, &lookalike.to_string()).await.unwrap_err();
    assert!(matches!(&err, RpcError::BadAccount { reason, .. } if reason.contains("discriminator")), "{err}");
}

use surfpool::layout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_accounts_fetched_and_decoded() {
    let surfpool = Surfpool::start();
    let rpc = surfpool.confirmed_client();
    let program = rpc::program_id();
    let user = Pubkey::new_from_array(rand::random());
    let (authority, bot, treasury) = (Pubkey::new_unique(), Pubkey::new_unique(), Pubkey::new_unique());
    let vault = accounts::vault_pda(&program, &user);

    let global = layout("GlobalAccount", &[&2u64.to_le_bytes()]);
    let name = "Gacha";
    let mut namespace = layout(
        "NamespaceAccount",
        &[
            &1u64.to_le_bytes(),
            &(name.len() as u32).to_le_bytes(),
            name.as_bytes(),
            authority.as_ref(),
            bot.as_ref(),
            treasury.as_ref(),
            &1_700_000_000i64.to_le_bytes(),
            &1_700_000_100i64.to_le_bytes(),
        ],
    );
    // Space reserved for a longer name, as the program allocates it.
    namespace.extend_from_slice(&[0; 27]);
    let user_data = layout("UserAccount", &[&5u64.to_le_bytes(), &300u64.to_le_bytes(), vault.as_ref()]);
    let lock = layout("LockAccount", &[&1u64.to_le_bytes(), &300u64.to_le_bytes()]);
    let global_key = accounts::global_pda(&program);
    let namespace_key = accounts::namespace_pda(&program, 1);
    let user_key = accounts::user_pda(&program, &user);
    let lock_key = accounts::lock_pda(&program, &user, 4);
    for (key, data) in
        [(&global_key, &global), (&namespace_key, &namespace), (&user_key, &user_data), (&lock_key, &lock)]
    {
        surfpool.set_account(key, 10_000_000, data, &program).await;
    }

    let fetch = async |key: &Pubkey| {
        let account = rpc.get_account(key).await.expect("getAccountInfo");
        assert_eq!(account.owner, program);
        account.data
    };
    assert_eq!(GlobalAccount::decode(&fetch(&global_key).await).unwrap(), GlobalAccount { namespace_nonce: 2 });
    assert_eq!(
        NamespaceAccount::decode(&fetch(&namespace_key).await).unwrap(),
        NamespaceAccount {
            id: 1,
            name: name.into(),
            authority,
            bot,
            treasury,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_100,
        }
    );
    let decoded = UserAccount::decode(&fetch(&user_key).await).unwrap();
    assert_eq!(decoded, UserAccount { nonce: 5, locked_amount: 300, vault });
    assert_eq!(LockAccount::decode(&fetch(&lock_key).await).unwrap(), LockAccount { namespace_id: 1, amount: 300 });

    // Each decoder refuses another type's account.
    let err = LockAccount::decode(&fetch(&user_key).await).unwrap_err();
    assert!(matches!(err, accounts::DecodeError::WrongDiscriminator { account: "LockAccount", .. }), "{err}");
    let err = UserAccount::decode(&fetch(&namespace_key).await).unwrap_err();
    assert!(matches!(err, accounts::DecodeError::WrongDiscriminator { account: "UserAccount", .. }), "{err}");
}
