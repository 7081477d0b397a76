//! An offline surfpool node for tests (npm `@solana/surfpool-linux-x64-gnu@1.5.0`, a real
//! Solana JSON-RPC server on a random 127.0.0.1 port), started by the relay's
//! `tests/support/surfpool.js` and stopped on drop, with the `surfnet_setAccount` cheatcode to
//! write accounts directly.
//!
//! Reusable from any test crate of the workspace that depends on `solana-rpc-client`,
//! `solana-rpc-client-api`, `solana-commitment-config`, `solana-pubkey` and `serde_json` (the
//! bridge's, the relay's and the device SDK's tests include it):
//!
//! ```ignore
//! #[path = "../../bridge/tests/support/surfpool.rs"] // path relative to the including file
//! mod surfpool;
//! let node = surfpool::Surfpool::start();
//! node.set_account(&address, 1_000_000_000, &data, &owner).await;
//! ```
//!
//! The package is found through `NODE_PATH`, else in `<workspace>/target/npm/node_modules`
//! (scripts/test installs it there:
//! `npm install --no-save --prefix target/npm @solana/surfpool-linux-x64-gnu@1.5.0`).
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::request::RpcRequest;

/// The node script, from the including crate's directory: every crate of the workspace is a
/// sibling of `relay/`. It retries a start whose port another process took (see the script).
const SCRIPT: &str = "../relay/tests/support/surfpool.js";
/// Longest surfpool may take to print its RPC URL (one lost start costs the script 7 s).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one cheatcode call.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// An offline surfpool node, killed on drop.
pub struct Surfpool {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub rpc_url: String,
}

impl Surfpool {
    /// Starts a fresh, empty node (about 0.1 s); panics with what to install when it cannot.
    pub fn start() -> Surfpool {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let node_path = std::env::var("NODE_PATH")
            .unwrap_or_else(|_| manifest.join("../target/npm/node_modules").to_string_lossy().into_owned());
        let mut child = Command::new("node")
            .arg(manifest.join(SCRIPT))
            .env("NODE_PATH", &node_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node` (is Node.js >= 18 installed?): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut surfpool = Surfpool { child: Some(child), rpc_url: String::new() };
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .unwrap_or_else(|_| panic!("surfpool did not print its RPC URL within {START_TIMEOUT:?}"));
        let parsed: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            panic!(
                "surfpool printed {line:?} ({e}); is @solana/surfpool-linux-x64-gnu@1.5.0 installed under \
                 {node_path}? scripts/test installs it"
            )
        });
        surfpool.rpc_url = parsed["rpcUrl"].as_str().expect("rpcUrl in surfpool's line").to_string();
        assert!(
            surfpool.rpc_url.starts_with("http://127.0.0.1:"),
            "surfpool RPC not on 127.0.0.1: {}",
            surfpool.rpc_url
        );
        surfpool
    }

    /// A client of this node (10 s timeout, default commitment).
    pub fn client(&self) -> RpcClient {
        RpcClient::new_with_timeout(self.rpc_url.clone(), RPC_TIMEOUT)
    }

    /// A client of this node at `confirmed` commitment (10 s timeout), for tests that send
    /// transactions and read what they did.
    pub fn confirmed_client(&self) -> RpcClient {
        RpcClient::new_with_timeout_and_commitment(
            self.rpc_url.clone(),
            RPC_TIMEOUT,
            solana_commitment_config::CommitmentConfig::confirmed(),
        )
    }

    /// Creates or overwrites the account at `address` (non-executable, `data` exactly as given)
    /// with the `surfnet_setAccount` cheatcode:
    /// `[address, {"lamports": N, "data": "<hex>", "owner": "<base58>", "executable": false}]`.
    /// The change is visible to the next RPC call.
    pub async fn set_account(&self, address: &Pubkey, lamports: u64, data: &[u8], owner: &Pubkey) {
        assert!(lamports > 0, "set_account with 0 lamports deletes the account; use remove_account");
        let update = serde_json::json!({
            "lamports": lamports,
            "data": hex(data),
            "owner": owner.to_string(),
            "executable": false,
        });
        self.cheatcode("surfnet_setAccount", serde_json::json!([address.to_string(), update])).await;
    }

    /// Deletes the account at `address` (`surfnet_setAccount` with 0 lamports).
    pub async fn remove_account(&self, address: &Pubkey) {
        self.cheatcode("surfnet_setAccount", serde_json::json!([address.to_string(), { "lamports": 0 }])).await;
    }

    async fn cheatcode(&self, method: &'static str, params: serde_json::Value) {
        let client = self.client();
        let call = client.send::<serde_json::Value>(RpcRequest::Custom { method }, params.clone());
        match tokio::time::timeout(RPC_TIMEOUT, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{method} {params} on {} failed: {e}", self.rpc_url),
            Err(_) => panic!("{method} on {} got no answer within {RPC_TIMEOUT:?}", self.rpc_url),
        }
    }
}

impl Drop for Surfpool {
    /// Stops the node and returns once it is gone (a test may rely on its port refusing
    /// connections right after): closing the script's stdin makes it stop the node process it
    /// started and exit after it. Killing the script instead would leave that process to notice
    /// on its own. Killed after 10 s.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        drop(child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}
