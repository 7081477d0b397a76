//! A real offline surfpool node for the payment tests (npm `@solana/surfpool-linux-x64-gnu@1.5.0`,
//! started by the relay's `tests/support/surfpool.js` through the bridge's test module, shared with
//! the bridge's and the relay's tests, with `Surfpool::set_account`), and the exact on-chain layout
//! of the program's accounts to seed into it.
#![allow(dead_code)]

#[path = "../../../bridge/tests/support/surfpool.rs"]
mod node;
pub use node::Surfpool;

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
