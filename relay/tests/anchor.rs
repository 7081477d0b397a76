//! Solana anchoring of checkpoints, end to end against an offline surfpool (npm
//! `@solana/surfpool-linux-x64-gnu@1.5.0`, started by `tests/support/surfpool.js`; scripts/test
//! installs it into target/npm): the relay writes each checkpoint's root in an SPL Memo
//! transaction and signs the transaction signature into the checkpoint; `dephy-relay audit
//! --rpc` verifies the anchors; `anchor::verify` rejects a transaction that is not the anchor.
//! Also: an unreachable RPC leaves checkpoints unanchored but still published, and an unusable
//! keypair file stops the relay with a message naming it.

#[macro_use]
mod common;
#[path = "../../bridge/tests/support/surfpool.rs"]
mod surfpool;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use dephy_relay::anchor;
use serde_json::Value;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer as _;
use surfpool::Surfpool;

backend_tests!(anchored_checkpoints_verify);

/// Longest the relay may take to sign an anchored checkpoint covering what was published.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one audit run may take.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(120);

/// A fresh keypair funded by an airdrop (bounded wait); returns it and the airdrop signature.
async fn funded_keypair(rpc: &RpcClient) -> (Keypair, String) {
    let keypair = Keypair::new_from_array(rand::random::<[u8; 32]>());
    let signature = rpc.request_airdrop(&keypair.pubkey(), 10_000_000_000).await.expect("requestAirdrop");
    let funded = eventually(Duration::from_secs(30), || async {
        rpc.get_balance(&keypair.pubkey()).await.map(|lamports| lamports > 0).unwrap_or(false)
    })
    .await;
    assert!(funded, "the airdrop to {} did not arrive within 30 s", keypair.pubkey());
    (keypair, signature.to_string())
}

/// Writes `keypair` as a Solana keypair file (JSON array of 64 bytes).
fn write_keypair(dir: &Path, keypair: &Keypair) -> PathBuf {
    let path = dir.join("anchor-keypair.json");
    std::fs::write(&path, serde_json::to_string(&keypair.to_bytes().to_vec()).unwrap()).expect("write keypair");
    path
}

fn anchor_config(rpc_url: &str, keypair_file: &Path) -> String {
    format!(
        "[log]\ncheckpoint_interval_secs = 1\n\n[anchor]\nrpc_url = {:?}\nkeypair_file = {:?}\n",
        rpc_url,
        keypair_file.to_str().expect("UTF-8 temp path")
    )
}

/// Runs `dephy-relay audit <args>` (bounded); returns (exit code, stdout + stderr).
async fn audit(args: &[&str]) -> (Option<i32>, String) {
    let run = tokio::process::Command::new(relay_bin()).arg("audit").args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(AUDIT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("`dephy-relay audit {args:?}` did not finish within {AUDIT_TIMEOUT:?}"))
        .expect("run dephy-relay audit");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn get(relay: &Relay, path: &str) -> (u16, Value) {
    let resp = http_get(relay.port, path, &[]).await.expect("http");
    (resp.status, resp.json())
}

/// Publishes `n` events, then waits (bounded) for a checkpoint covering them that satisfies
/// `accept`; returns it (the `/log/checkpoint` body).
async fn publish_and_wait(relay: &Relay, n: u64, timeout: Duration, accept: impl Fn(&Value) -> bool) -> Value {
    let mut c = relay.connect().await;
    let keys = nostr::Keys::generate();
    let t = now() - 100;
    for i in 0..n {
        c.publish_ok(&dephy(&keys, &format!("anchored {i}"), &[], t + i)).await;
    }
    let (status, body) = get(relay, "/log/entries?start=0&end=1000").await;
    assert_eq!(status, 200, "{body}");
    let size = body["tree_size"].as_u64().expect("tree_size");
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = get(relay, "/log/checkpoint").await;
        if status == 200 && body["tree_size"].as_u64() >= Some(size) && accept(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no acceptable checkpoint of tree_size >= {size} within {timeout:?}: {status} {body}\n{}",
            relay.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn anchored_checkpoints_verify(backend: Backend) {
    let surfpool = Surfpool::start();
    let rpc = surfpool.confirmed_client();
    let (keypair, airdrop_signature) = funded_keypair(&rpc).await;
    let db = TestDb::new(backend).await;
    let keypair_file = write_keypair(db.dir.path(), &keypair);
    let relay = Relay::spawn(&db, "r0", &anchor_config(&surfpool.rpc_url, &keypair_file)).await;

    let info = relay.nip11().await.json();
    assert_eq!(info["anchor_pubkey"].as_str(), Some(keypair.pubkey().to_string().as_str()), "NIP-11: {info}");

    let cp = publish_and_wait(&relay, 5, CHECKPOINT_TIMEOUT, |cp| cp["anchor"].is_string()).await;
    let tree_size = cp["tree_size"].as_u64().unwrap();
    let mut root = [0u8; 32];
    hex::decode_to_slice(cp["root_hash"].as_str().expect("root_hash"), &mut root).expect("hex root");
    let signature = cp["anchor"].as_str().unwrap().to_string();

    // The anchor is the memo transaction of exactly this tree size and root, paid by our keypair.
    let verified = anchor::verify(&rpc, &signature, tree_size, &root).await.expect("the anchor verifies");
    assert_eq!(verified.fee_payer, keypair.pubkey().to_string());

    // The auditor verifies every anchor over RPC; without --rpc it says they were not checked.
    let (code, output) = audit(&[&relay.url(), "--rpc", &surfpool.rpc_url]).await;
    assert_eq!(code, Some(0), "audit --rpc failed:\n{output}");
    let line = output
        .lines()
        .find(|l| l.starts_with("anchors: ") && l.contains("anchored checkpoints verified"))
        .unwrap_or_else(|| panic!("no line saying the anchors verified:\n{output}"));
    assert!(line.contains(&keypair.pubkey().to_string()), "the line names the fee payer: {line}");
    let (code, output) = audit(&[&relay.url()]).await;
    assert_eq!(code, Some(0), "audit without --rpc failed:\n{output}");
    assert!(
        output.contains("not checked (pass --rpc URL"),
        "audit without --rpc says anchors were not checked:\n{output}"
    );

    // Another transaction (the airdrop) is not an anchor.
    let err = anchor::verify(&rpc, &airdrop_signature, tree_size, &root).await.expect_err("an airdrop is no anchor");
    assert!(err.contains("has no SPL Memo instruction") && err.contains(&airdrop_signature), "{err}");
    // The anchor of this checkpoint does not anchor another tree size or root.
    let err = anchor::verify(&rpc, &signature, tree_size + 1, &root).await.expect_err("wrong tree size");
    assert!(
        err.contains(&format!("has memo \"dephy-log checkpoint tree_size={tree_size} root="))
            && err.contains(&format!("expected \"dephy-log checkpoint tree_size={} root=", tree_size + 1)),
        "{err}"
    );
    let err = anchor::verify(&rpc, &signature, tree_size, &[7; 32]).await.expect_err("wrong root");
    assert!(err.contains("has memo") && err.contains(&hex::encode([7u8; 32])), "{err}");
    // A signature the chain never saw.
    let unknown = solana_signature::Signature::from([9u8; 64]).to_string();
    let err = anchor::verify(&rpc, &unknown, tree_size, &root).await.expect_err("unknown signature");
    assert!(err.contains("not found"), "{err}");
}

/// An unreachable RPC does not stop the log: checkpoints are published unanchored, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_rpc_publishes_unanchored() {
    let db = TestDb::new(Backend::Sqlite).await;
    let keypair = Keypair::new_from_array(rand::random::<[u8; 32]>());
    let keypair_file = write_keypair(db.dir.path(), &keypair);
    let dead_rpc = format!("http://127.0.0.1:{}", free_port());
    let relay = Relay::spawn(&db, "r0", &anchor_config(&dead_rpc, &keypair_file)).await;
    let cp = publish_and_wait(&relay, 3, Duration::from_secs(30), |_| true).await;
    assert!(cp.get("anchor").is_none(), "unanchored checkpoint expected: {cp}");
    assert!(relay.log_tail(200).contains("publishing it unanchored"), "{}", relay.log_tail(40));
}

/// A keypair file that is not a 64-byte JSON array stops the relay with a message naming it.
#[tokio::test]
async fn bad_keypair_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let keypair_file = dir.path().join("not-a-keypair.json");
    std::fs::write(&keypair_file, "[1, 2, 3]").unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, anchor_config("http://127.0.0.1:1", &keypair_file)).unwrap();
    let run = tokio::process::Command::new(relay_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--db")
        .arg(format!("sqlite://{}", dir.path().join("relay.db").display()))
        .current_dir(dir.path())
        .env_remove("DEPHY_RELAY_LISTEN")
        .env_remove("DEPHY_RELAY_DB")
        .env_remove("DEPHY_RELAY_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("serve with a bad keypair file did not exit within 30 s")
        .expect("run dephy-relay serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve accepted a bad keypair file:\n{stderr}");
    assert!(
        stderr.contains(&keypair_file.display().to_string()) && stderr.contains("JSON array of 64 numbers"),
        "{stderr}"
    );
}
