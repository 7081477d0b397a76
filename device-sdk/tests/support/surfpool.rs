//! A real offline surfpool node for the payment tests (npm `@solana/surfpool-linux-x64-gnu@1.5.0`,
//! started by the relay's `tests/support/surfpool.js` through the bridge's test module, shared with
//! the bridge's and the relay's tests), and seeding accounts into it in the exact on-chain layout
//! with surfpool's `surfnet_setAccount`.
#![allow(dead_code)]

use serde_json::{Value, json};
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::request::RpcRequest;

#[path = "../../../bridge/tests/support/surfpool.rs"]
mod node;
pub use node::Surfpool;

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
