//! The Solana node registry against a real offline surfpool (npm
//! `@solana/surfpool-linux-x64-gnu@1.5.0`; scripts/test installs it into target/npm): registry
//! and `NodeEntry` accounts are written with the `surfnet_setAccount` cheatcode at their real
//! addresses, then read back through `SolanaRegistry` (getProgramAccounts with the registry
//! filters, getAccountInfo of the PDA). Also: deactivating and removing a node, and failover
//! between RPC endpoints (refused connection, silent endpoint, endpoint going away).

#[path = "support/surfpool.rs"]
mod surfpool;

#[path = "support/registry_seed.rs"]
mod registry_seed;

use std::future::Future;
use std::time::{Duration, Instant};

use dephy_bridge::registry::layout::{self, NODE_ENTRY_LEN};
use dephy_bridge::registry::{NodeEntry, Registry, RegistryError, SolanaRegistry, SolanaRegistryConfig};
use registry_seed::{LAMPORTS, RegistrySeed, test_address};
use solana_account_decoder_client_types::UiAccountEncoding;
use solana_pubkey::Pubkey;
use solana_rpc_client_api::config::{RpcAccountInfoConfig, RpcProgramAccountsConfig};
use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};
use surfpool::Surfpool;

/// Bound on each test.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Per-endpoint RPC timeout of the registries under test.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test).await.expect("the test did not finish within its time bound");
}

fn node(label: &str, domain: &str, online: i32, active: bool) -> NodeEntry {
    NodeEntry { wallet: test_address(label).to_bytes(), domain: domain.into(), online, active }
}

fn sorted(mut entries: Vec<NodeEntry>) -> Vec<NodeEntry> {
    entries.sort_by_key(|e| e.wallet);
    entries
}

fn registry(urls: &[&str], seed: &RegistrySeed, timeout: Duration) -> SolanaRegistry {
    let urls = urls.iter().map(|u| u.to_string()).collect();
    SolanaRegistry::new(urls, seed.program, seed.registry, timeout).expect("registry")
}

/// A 127.0.0.1 URL where nothing listens (bound, then released).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A 127.0.0.1 URL that accepts connections (kernel backlog) but never answers; keep the
/// listener alive while it is used.
fn silent_url() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    (listener, url)
}

#[tokio::test]
async fn list_and_lookup_read_exactly_the_registry() {
    bounded(async {
        let node_ = Surfpool::start();
        let seed = RegistrySeed::new("list");
        let other = seed.sibling("list-other");
        seed.create(&node_, "dephy test").await;
        other.create(&node_, "another registry").await;

        let a = node("a", "/dns4/a.example/udp/4001/quic-v1", 3, true);
        let b = node("b", "b.example", 0, false);
        let c = node("c", "", -1, true);
        for entry in [&a, &b, &c] {
            seed.put_node(&node_, entry).await;
        }
        // The other registry of the same program: its own node, and `a` registered there too.
        let d = node("d", "d.example", 1, true);
        let a_there = NodeEntry { domain: "a.other.example".into(), ..a.clone() };
        other.put_node(&node_, &d).await;
        other.put_node(&node_, &a_there).await;

        // Accounts the filters must exclude or the decoder must skip.
        let registry_bytes = seed.registry.to_bytes();
        let mut short = vec![0u8; 100];
        short[..8].copy_from_slice(&layout::account_discriminator("NodeEntry"));
        short[8..40].copy_from_slice(&registry_bytes);
        node_.set_account(&test_address("short"), LAMPORTS, &short, &seed.program).await;
        let foreign = layout::encode_node_entry(&registry_bytes, &node("foreign", "", 0, true));
        node_.set_account(&test_address("foreign"), LAMPORTS, &foreign, &test_address("another program")).await;
        let mut garbled = layout::encode_node_entry(&registry_bytes, &node("garbled", "", 0, true));
        garbled[..8].copy_from_slice(&layout::account_discriminator("Registry"));
        assert_eq!(garbled.len(), NODE_ENTRY_LEN);
        node_.set_account(&test_address("garbled"), LAMPORTS, &garbled, &seed.program).await;

        // The same filters as SolanaRegistry::list, raw: they let the garbled account through
        // (same size, same registry bytes), so the list below shows it is skipped, not fatal.
        let filters = vec![
            RpcFilterType::Memcmp(Memcmp::new_base58_encoded(8, &registry_bytes)),
            RpcFilterType::DataSize(NODE_ENTRY_LEN as u64),
        ];
        let config = RpcProgramAccountsConfig {
            filters: Some(filters),
            account_config: RpcAccountInfoConfig { encoding: Some(UiAccountEncoding::Base64), ..Default::default() },
            ..Default::default()
        };
        let raw = node_.client().get_program_ui_accounts_with_config(&seed.program, config).await.expect("raw");
        let mut raw: Vec<Pubkey> = raw.into_iter().map(|(address, _)| address).collect();
        raw.sort();
        let mut expected = vec![
            seed.node_address(&a.wallet),
            seed.node_address(&b.wallet),
            seed.node_address(&c.wallet),
            test_address("garbled"),
        ];
        expected.sort();
        assert_eq!(raw, expected);

        let reg = registry(&[&node_.rpc_url], &seed, RPC_TIMEOUT);
        assert_eq!(reg.backend(), "solana");
        assert_eq!(reg.list().await.expect("list"), sorted(vec![a.clone(), b.clone(), c.clone()]));
        let reg_other = registry(&[&node_.rpc_url], &other, RPC_TIMEOUT);
        assert_eq!(reg_other.list().await.expect("list other"), sorted(vec![d.clone(), a_there.clone()]));

        assert_eq!(reg.lookup(a.wallet).await.expect("lookup a"), Some(a.clone()));
        assert_eq!(reg.lookup(b.wallet).await.expect("lookup b"), Some(b.clone()), "inactive entries are returned");
        assert_eq!(reg.lookup(d.wallet).await.expect("lookup d"), None, "d is in the other registry only");
        assert_eq!(reg.lookup(test_address("nobody").to_bytes()).await.expect("lookup absent"), None);
        assert_eq!(reg_other.lookup(a.wallet).await.expect("lookup a there"), Some(a_there));

        // Lamports sent to an unregistered wallet's NodeEntry address leave a system-owned
        // account there: still not registered.
        let lurker = test_address("lurker").to_bytes();
        node_.set_account(&seed.node_address(&lurker), LAMPORTS, &[], &Pubkey::default()).await;
        assert_eq!(reg.lookup(lurker).await.expect("lookup system-owned"), None);

        // A program account at the PDA that is not a NodeEntry, or registers another wallet.
        let broken = test_address("broken").to_bytes();
        node_.set_account(&seed.node_address(&broken), LAMPORTS, &garbled, &seed.program).await;
        match reg.lookup(broken).await {
            Err(RegistryError::InvalidAccount { address, source: layout::LayoutError::Discriminator { .. } }) => {
                assert_eq!(address, seed.node_address(&broken).to_string())
            }
            other => panic!("expected InvalidAccount, got {other:?}"),
        }
        let impostor = test_address("impostor").to_bytes();
        let data = layout::encode_node_entry(&registry_bytes, &a);
        node_.set_account(&seed.node_address(&impostor), LAMPORTS, &data, &seed.program).await;
        let err = reg.lookup(impostor).await.expect_err("wallet mismatch");
        assert!(matches!(err, RegistryError::WalletMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&a.wallet_base58()), "{err}");

        // The Registry account itself, read back over RPC.
        let config = RpcAccountInfoConfig { encoding: Some(UiAccountEncoding::Base64), ..Default::default() };
        let account = node_.client().get_ui_account_with_config(&seed.registry, config).await.expect("getAccountInfo");
        let account = account.value.expect("the registry account exists");
        assert_eq!(account.owner, seed.program.to_string());
        let data = account.data.decode().expect("base64 data");
        let decoded = layout::decode_registry(&data).expect("decode registry");
        assert_eq!(decoded.authority, seed.authority.to_bytes());
        assert_eq!(decoded.name, "dephy test");
    })
    .await;
}

#[tokio::test]
async fn deactivated_and_removed_nodes_are_seen_at_once() {
    bounded(async {
        let node_ = Surfpool::start();
        let seed = RegistrySeed::new("revoke");
        seed.create(&node_, "revoke").await;
        let a = node("a", "a.example", 1, true);
        let b = node("b", "b.example", 1, true);
        seed.put_node(&node_, &a).await;
        seed.put_node(&node_, &b).await;
        let reg = registry(&[&node_.rpc_url], &seed, RPC_TIMEOUT);
        assert_eq!(reg.lookup(a.wallet).await.unwrap(), Some(a.clone()));

        // Deactivate a (the program rewrites the account with active = false).
        let a_off = NodeEntry { active: false, online: 0, ..a.clone() };
        seed.put_node(&node_, &a_off).await;
        assert_eq!(reg.lookup(a.wallet).await.unwrap(), Some(a_off.clone()));
        assert_eq!(reg.list().await.unwrap(), sorted(vec![a_off.clone(), b.clone()]));

        // Reactivate, then remove (account closed).
        seed.put_node(&node_, &a).await;
        assert_eq!(reg.lookup(a.wallet).await.unwrap(), Some(a.clone()));
        seed.remove_node(&node_, &a.wallet).await;
        assert_eq!(reg.lookup(a.wallet).await.unwrap(), None);
        assert_eq!(reg.list().await.unwrap(), vec![b.clone()]);
    })
    .await;
}

#[tokio::test]
async fn fails_over_past_a_refused_endpoint_and_remembers_the_working_one() {
    bounded(async {
        let node_ = Surfpool::start();
        let seed = RegistrySeed::new("failover");
        let a = node("a", "a.example", 1, true);
        seed.put_node(&node_, &a).await;
        let dead = dead_url();
        let reg = registry(&[&dead, &node_.rpc_url], &seed, RPC_TIMEOUT);
        assert_eq!(reg.current_endpoint(), dead);
        assert_eq!(reg.list().await.expect("list via the second endpoint"), vec![a.clone()]);
        assert_eq!(reg.current_endpoint(), node_.rpc_url, "the working endpoint is tried first next time");
        assert_eq!(reg.lookup(a.wallet).await.expect("lookup"), Some(a));
    })
    .await;
}

#[tokio::test]
async fn fails_over_past_a_silent_endpoint_within_the_timeout() {
    bounded(async {
        let node_ = Surfpool::start();
        let seed = RegistrySeed::new("silent");
        let a = node("a", "", 0, true);
        seed.put_node(&node_, &a).await;
        let (_listener, silent) = silent_url();
        let timeout = Duration::from_secs(1);
        let reg = registry(&[&silent, &node_.rpc_url], &seed, timeout);
        let started = Instant::now();
        assert_eq!(reg.lookup(a.wallet).await.expect("lookup via the second endpoint"), Some(a));
        let took = started.elapsed();
        assert!(took >= timeout && took < timeout * 4, "failover took {took:?}");
        assert_eq!(reg.current_endpoint(), node_.rpc_url);
    })
    .await;
}

#[tokio::test]
async fn fails_over_when_the_working_endpoint_goes_away() {
    bounded(async {
        let first = Surfpool::start();
        let second = Surfpool::start();
        let seed = RegistrySeed::new("two");
        let a = node("a", "a.example", 1, true);
        seed.put_node(&first, &a).await;
        seed.put_node(&second, &a).await;
        let reg = registry(&[&first.rpc_url, &second.rpc_url], &seed, RPC_TIMEOUT);
        assert_eq!(reg.list().await.unwrap(), vec![a.clone()]);
        assert_eq!(reg.current_endpoint(), first.rpc_url);
        let second_url = second.rpc_url.clone();
        drop(first);
        assert_eq!(reg.list().await.expect("list after the first endpoint went away"), vec![a.clone()]);
        assert_eq!(reg.current_endpoint(), second_url);
        assert_eq!(reg.lookup(a.wallet).await.unwrap(), Some(a));
    })
    .await;
}

#[tokio::test]
async fn errors_naming_every_endpoint_when_all_fail() {
    bounded(async {
        let seed = RegistrySeed::new("dead");
        let dead = dead_url();
        let (_listener, silent) = silent_url();
        let timeout = Duration::from_secs(1);
        let reg = registry(&[&dead, &silent], &seed, timeout);
        let started = Instant::now();
        let err = reg.list().await.expect_err("every endpoint is down");
        assert!(started.elapsed() < timeout * 4, "took {:?}", started.elapsed());
        let RegistryError::Rpc { failures } = &err else { panic!("expected Rpc, got {err:?}") };
        assert_eq!(failures.len(), 2, "{err}");
        assert_eq!(failures[0].endpoint, dead);
        assert!(failures[0].message.contains("getProgramAccounts failed"), "{err}");
        assert_eq!(failures[1].endpoint, silent);
        assert!(failures[1].message.contains("no answer within 1s"), "{err}");
        let text = err.to_string();
        assert!(text.contains(&dead) && text.contains(&silent), "{text}");

        let err = reg.lookup([1; 32]).await.expect_err("every endpoint is down");
        let text = err.to_string();
        assert!(text.contains(&dead) && text.contains(&silent) && text.contains("getAccountInfo"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn from_config_reads_a_seeded_registry() {
    bounded(async {
        let node_ = Surfpool::start();
        let seed = RegistrySeed::new("config");
        let a = node("a", "a.example", 1, true);
        seed.put_node(&node_, &a).await;
        let cfg: SolanaRegistryConfig = serde_json::from_value(serde_json::json!({
            "rpc_urls": [node_.rpc_url],
            "program_id": seed.program.to_string(),
            "registry": seed.registry.to_string(),
            "timeout_secs": 5,
        }))
        .expect("config");
        let reg = SolanaRegistry::from_config(&cfg).expect("from_config");
        assert_eq!(reg.list().await.unwrap(), vec![a]);
    })
    .await;
}
