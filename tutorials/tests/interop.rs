//! Interoperability with DePHY's own code paths, all parts real: the relay (in-process), an
//! offline surfpool with DePHY's balance-payment accounts in their exact layout, the project's
//! controller (`controller --serve`) and settlement service (`settlement`) binaries, and an
//! independent Node.js implementation of DePHY's dApp and of DePHY's controller
//! (`tests/support/dephy_dapp.mjs`: nostr-tools, @noble/curves, @noble/hashes, bs58,
//! @solana/web3.js; no project code).
//!
//! 0. A stale authorization from DePHY's dApp (signed for an older nonce) is refused by the
//!    project's controller with the typed reason; the machine stays Available.
//! 1. DePHY's dApp reads the user's nonce from the seeded UserAccount, signs with it, and sends
//!    a Request (DePHY's payload key order) to a machine of the project's controller: the
//!    controller's Status events parse as DePHY's settlement server parses them (exact keys,
//!    payload = the payment payload), signed by the controller with p = the machine; the
//!    settlement service's lock is refused by the node (the program is not deployed), its
//!    LockFailed Request stops the machine: Status Available / LockFailed.
//! 2. DePHY's controller (its own key) answers a dApp Request with a Working Status carrying the
//!    payload: the settlement service locks from it, and its LockFailed Request parses as
//!    DePHY's controller parses it; the session's end (UserBehaviour) makes it settle.

mod common;

use common::{Service, Surfpool, anchor_modules, nostr_tools_modules, relay_url, run_node_module};
use dephy_device_sdk::keys::{self, KeyFormat};
use dephy_device_sdk::nostr::Keys;
use dephy_device_sdk::payment::accounts;
use dephy_tutorials::chain;
use serde_json::{Value, json};
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer as _;

/// Runs `dephy_dapp.mjs` with `config`; its output lines as JSON.
fn dephy_dapp(config: &Value) -> Vec<Value> {
    let mut modules = vec![("nostr-tools", nostr_tools_modules().join("nostr-tools"))];
    modules.extend(["@noble", "@solana", "bs58"].map(|package| (package, anchor_modules().join(package))));
    let (ok, stdout, stderr) = run_node_module("dephy_dapp.mjs", &modules, &[&config.to_string()]);
    assert!(ok, "dephy_dapp.mjs ({}) failed:\n{stdout}\n{stderr}", config["mode"]);
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn find<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dephy_dapp_and_controller_through_the_project_controller_and_settlement() {
    let dir = tempfile::tempdir().unwrap();
    let surfpool = Surfpool::start(dir.path());
    let relay = relay_url();
    let rpc = RpcClient::new_with_commitment(surfpool.rpc_url.clone(), CommitmentConfig::confirmed());
    let program = accounts::program_id();

    // Keys known before the services start (each one names the other).
    let settlement_keys = Keys::generate();
    let controller_keys = Keys::generate();
    let dephy_controller = Keys::generate();
    keys::save(&settlement_keys, &dir.path().join("settlement/settlement.key"), KeyFormat::Hex).unwrap();
    keys::save(&controller_keys, &dir.path().join("controller/controller.key"), KeyFormat::Hex).unwrap();
    let machine_a = Keys::generate().public_key(); // driven by the project's controller
    let machine_b = Keys::generate().public_key(); // driven by the DePHY-style controller (Node)

    let mut settlement = Service::start(
        env!("CARGO_BIN_EXE_settlement"),
        &[
            "--relay",
            &relay,
            "--rpc",
            &surfpool.rpc_url,
            "--state",
            "settlement",
            "--controller",
            &controller_keys.public_key().to_hex(),
            "--controller",
            &dephy_controller.public_key().to_hex(),
        ],
        dir.path(),
    );
    settlement.wait_for("settlement: watching Status events");
    let mut controller = Service::start(
        env!("CARGO_BIN_EXE_controller"),
        &[
            "--relay",
            &relay,
            "--rpc",
            &surfpool.rpc_url,
            "--state",
            "controller",
            "--serve",
            "--machine",
            &machine_a.to_hex(),
            "--settlement",
            &settlement_keys.public_key().to_hex(),
            "--work-ms",
            "60000",
        ],
        dir.path(),
    );
    controller.wait_for("controller: serving 1 machines");

    // Two registered users (UserAccount nonce, vault), as register + deposit would leave them.
    let seed_user = |nonce: u64| {
        let wallet = Keypair::new_from_array(rand::random());
        let rpc = &rpc;
        async move {
            chain::seed_user(rpc, &program, &wallet.pubkey(), nonce, 0, 5_000_000).await.unwrap();
            wallet
        }
    };
    let user_a = seed_user(17).await;
    let user_b = seed_user(42).await;
    let config = |mode: &str, machine: &str, wallet: &Keypair| {
        json!({
            "mode": mode,
            "relay": relay,
            "rpc": surfpool.rpc_url,
            "program": program.to_string(),
            "session": "dephy-decharge-controller",
            "machine": machine,
            "wallet_seed": hex::encode(wallet.secret_bytes()),
            "namespace_id": 0,
            "namespace": "DeCharge",
            "timeout_ms": 90_000,
            "until": ["Available", "LockFailed"],
            "controller_secret": dephy_controller.secret_key().to_secret_hex(),
        })
    };

    // 0. DePHY's dApp with a stale authorization (signed for nonce 16, the chain says 17): the
    //    project's controller refuses it with the typed reason and stays Available.
    let mut stale = config("dapp", &machine_a.to_hex(), &user_a);
    stale["nonce_delta"] = json!(-1);
    stale["until"] = json!(["Available", "UserRequest"]);
    let lines = tokio::task::block_in_place(|| dephy_dapp(&stale));
    let sent = find(&lines, "sent")[0];
    assert_eq!((sent["nonce"].as_u64(), sent["signed_nonce"].as_u64()), (Some(17), Some(16)));
    let statuses = find(&lines, "status");
    assert_eq!(statuses.len(), 1, "{lines:#?}");
    assert_eq!(
        statuses[0]["refused"], "the authorization is for nonce 16, the user's on-chain nonce is 17",
        "{lines:#?}"
    );
    assert_eq!(statuses[0]["initial_request"], sent["id"]);

    // 1. DePHY's dApp -> the project's controller -> the settlement service -> LockFailed.
    let lines = tokio::task::block_in_place(|| dephy_dapp(&config("dapp", &machine_a.to_hex(), &user_a)));
    let sent = find(&lines, "sent")[0];
    assert_eq!(sent["nonce"], 17, "the dApp signed with the nonce seeded on chain");
    let statuses = find(&lines, "status");
    let seen: Vec<(&str, &str)> =
        statuses.iter().map(|s| (s["status"].as_str().unwrap(), s["reason"].as_str().unwrap())).collect();
    assert_eq!(seen, [("Working", "UserRequest"), ("Available", "LockFailed")], "{lines:#?}");
    for status in &statuses {
        assert_eq!(status["initial_request"], sent["id"]);
        assert_eq!(status["payload_is_request_payload"], true, "the Status carries the Request's payload: {status}");
        assert_eq!(status["author"], controller_keys.public_key().to_hex(), "signed by the controller");
        assert_eq!(status["p"], machine_a.to_hex(), "p = the machine");
        assert_eq!(status["s"], "dephy-decharge-controller");
        assert_eq!((status["namespace_id"].as_u64(), status["nonce"].as_u64()), (Some(0), Some(17)));
        assert_eq!(status["user"], user_a.pubkey().to_string());
    }
    let refused = settlement.wait_for(": lock: ");
    assert!(refused.contains(&sent["id"].as_str().unwrap()[..12]), "{refused}");
    settlement.wait_for("settlement: sent Request Available/LockFailed");
    controller.wait_for("LockFailed request ");

    // 2. DePHY's controller -> the settlement service -> LockFailed Request, then settle.
    let lines = tokio::task::block_in_place(|| dephy_dapp(&config("dephy-controller", &machine_b.to_hex(), &user_b)));
    let sent = find(&lines, "sent")[0];
    assert_eq!(sent["nonce"], 42);
    let requests = find(&lines, "request");
    assert_eq!(requests.len(), 1, "{lines:#?}");
    let lock_failed = requests[0];
    assert_eq!(
        (&lock_failed["to_status"], &lock_failed["reason"], &lock_failed["initial_request"]),
        (&json!("Available"), &json!("LockFailed"), &sent["id"])
    );
    assert_eq!(lock_failed["author"], settlement_keys.public_key().to_hex(), "signed by the settlement key");
    assert_eq!(lock_failed["p"], machine_b.to_hex(), "p-tagged to the machine");
    let controller_statuses: Vec<&str> =
        find(&lines, "controller-status").iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(controller_statuses, ["Working", "Available"]);
    let settle = settlement.wait_for("settle refused: settle: ");
    assert!(settle.contains("settle: "), "{settle}");
}
