//! A real offline surfpool node for the payment tests (npm `@solana/surfpool-linux-x64-gnu@1.5.0`,
//! started by the relay's `tests/support/surfpool.js`), and seeding accounts into it in the
//! exact on-chain layout with surfpool's `surfnet_setAccount`.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use solana_commitment_config::CommitmentConfig;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::request::RpcRequest;

/// An offline surfpool node, killed on drop.
pub struct Surfpool {
    child: Child,
    pub rpc_url: String,
}

impl Surfpool {
    pub fn start() -> Surfpool {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = manifest.join("../relay/tests/support/surfpool.js");
        let node_path = std::env::var("NODE_PATH")
            .unwrap_or_else(|_| manifest.join("../target/npm/node_modules").to_string_lossy().into_owned());
        let mut child = Command::new("node")
            .arg(&script)
            .env("NODE_PATH", &node_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node {}` (is Node.js >= 18 installed?): {e}", script.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("surfpool prints its RPC URL within 30 s");
        let parsed: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            panic!("surfpool.js printed {line:?} ({e}); is @solana/surfpool-linux-x64-gnu@1.5.0 under {node_path}?")
        });
        let rpc_url = parsed["rpcUrl"].as_str().expect("rpcUrl").to_string();
        assert!(rpc_url.starts_with("http://127.0.0.1:"), "{rpc_url}");
        Surfpool { child, rpc_url }
    }

    pub fn client(&self) -> RpcClient {
        RpcClient::new_with_commitment(self.rpc_url.clone(), CommitmentConfig::confirmed())
    }
}

impl Drop for Surfpool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates or replaces the account at `address` (surfpool's `surfnet_setAccount`).
pub async fn set_account(rpc: &RpcClient, address: &Pubkey, lamports: u64, data: &[u8], owner: &Pubkey) {
    let params = json!([address.to_string(), {
        "lamports": lamports,
        "data": hex::encode(data),
        "owner": owner.to_string(),
        "executable": false,
    }]);
    let _: Value =
        rpc.send(RpcRequest::Custom { method: "surfnet_setAccount" }, params).await.expect("surfnet_setAccount");
}

/// Anchor's discriminator for account type `name` (`sha256("account:<name>")[..8]`, computed
/// here, not taken from the SDK), then `fields`, concatenated.
pub fn layout(name: &str, fields: &[&[u8]]) -> Vec<u8> {
    use sha2::Digest as _;
    let mut data = sha2::Sha256::digest(format!("account:{name}").as_bytes())[..8].to_vec();
    for field in fields {
        data.extend_from_slice(field);
    }
    data
}
