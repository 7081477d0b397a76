//! Seeds a node registry (dTelecom registry-program layout) on a [`Surfpool`] node: the
//! `Registry` account and `NodeEntry` accounts at their real PDAs, owned by the program, so
//! `dephy_bridge::registry::SolanaRegistry` reads them like on chain. No program is deployed:
//! the accounts are written with the `surfnet_setAccount` cheatcode.
//!
//! Include it next to `surfpool.rs`, both at the test crate root:
//!
//! ```ignore
//! #[path = "../../bridge/tests/support/surfpool.rs"]
//! mod surfpool;
//! #[path = "../../bridge/tests/support/registry_seed.rs"]
//! mod registry_seed;
//! let node = surfpool::Surfpool::start();
//! let seed = registry_seed::RegistrySeed::new("my-test");
//! seed.create(&node, "test").await;
//! seed.put_node(&node, &NodeEntry { wallet, domain: String::new(), online: 1, active: true }).await;
//! let registry = SolanaRegistry::new(vec![node.rpc_url.clone()], seed.program, seed.registry, timeout)?;
//! ```
#![allow(dead_code)]

use dephy_bridge::registry::NodeEntry;
use dephy_bridge::registry::layout;
use dephy_bridge::registry::solana::node_entry_address;
use solana_pubkey::Pubkey;

use super::surfpool::Surfpool;

/// Lamports given to each seeded account (rent is not enforced by the cheatcode).
pub const LAMPORTS: u64 = 10_000_000;

/// A deterministic address derived from `label` (tests need no key material for accounts that
/// are only written through the cheatcode).
/// (FNV-1a over the label, four lanes; no hashing crate needed).
pub fn test_address(label: &str) -> Pubkey {
    let mut bytes = [0u8; 32];
    for (lane, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ lane as u64;
        for byte in label.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        chunk.copy_from_slice(&hash.to_le_bytes());
    }
    Pubkey::new_from_array(bytes)
}

/// One registry of one (undeployed) registry program.
#[derive(Debug, Clone, Copy)]
pub struct RegistrySeed {
    pub program: Pubkey,
    pub registry: Pubkey,
    pub authority: Pubkey,
}

impl RegistrySeed {
    /// Program, registry and authority addresses derived from `label`.
    pub fn new(label: &str) -> Self {
        RegistrySeed {
            program: test_address(&format!("{label}/program")),
            registry: test_address(&format!("{label}/registry")),
            authority: test_address(&format!("{label}/authority")),
        }
    }

    /// Another registry under the same program.
    pub fn sibling(&self, label: &str) -> Self {
        RegistrySeed { registry: test_address(&format!("{label}/registry")), ..*self }
    }

    /// Writes the `Registry` account (name at most 32 bytes).
    pub async fn create(&self, surfpool: &Surfpool, name: &str) {
        let data = layout::encode_registry(&self.authority.to_bytes(), name);
        surfpool.set_account(&self.registry, LAMPORTS, &data, &self.program).await;
    }

    /// The address of `wallet`'s `NodeEntry` in this registry.
    pub fn node_address(&self, wallet: &[u8; 32]) -> Pubkey {
        node_entry_address(&self.program, &self.registry, &Pubkey::new_from_array(*wallet))
    }

    /// Creates or overwrites `entry`'s `NodeEntry` account (334 bytes, at its PDA); returns the
    /// address. Rewrite with `active: false` to deactivate a node.
    pub async fn put_node(&self, surfpool: &Surfpool, entry: &NodeEntry) -> Pubkey {
        let address = self.node_address(&entry.wallet);
        let data = layout::encode_node_entry(&self.registry.to_bytes(), entry);
        surfpool.set_account(&address, LAMPORTS, &data, &self.program).await;
        address
    }

    /// Deletes `wallet`'s `NodeEntry` account (a node removed from the registry).
    pub async fn remove_node(&self, surfpool: &Surfpool, wallet: &[u8; 32]) {
        surfpool.remove_account(&self.node_address(wallet)).await;
    }
}
