//! The Solana node registry against a real offline surfpool (npm
//! `@solana/surfpool-linux-x64-gnu@1.5.0`; scripts/test installs it into target/npm): registry
//! and `NodeEntry` accounts are written with the `surfnet_setAccount` cheatcode at their real
//! addresses, then read back through `SolanaRegistry` (getProgramAccounts with the registry
//! filters, getAccountInfo of the PDA). Also: deactivating and removing a node, and failover
//! between RPC endpoints (refused connection, silent endpoint, endpoint going away), the shrink
//! guard of `Authorizer` over real endpoints (an empty or undecodable answer revokes nobody
//! until another endpoint agrees or it persists), and replies bounded before parsing
//! (oversized and malformed replies from a tiny in-test HTTP server, which surfpool cannot
//! produce).

#[path = "support/surfpool.rs"]
mod surfpool;

#[path = "support/registry_seed.rs"]
mod registry_seed;

use std::future::Future;
use std::time::{Duration, Instant};

use dephy_bridge::authorize::Authorizer;
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

// ---------------------------------------------------------------------------------------------
// The shrink guard over real endpoints: one bad answer does not revoke everyone.
// ---------------------------------------------------------------------------------------------

/// An authorizer over `reg` (default guard: more than half dropped is suspect, 3 confirmations).
fn authorizer(reg: std::sync::Arc<SolanaRegistry>) -> std::sync::Arc<Authorizer> {
    let (auth, _lookups) = Authorizer::new(reg, Duration::from_secs(60));
    auth
}

/// Writes a garbled (undecodable: wrong discriminator, same size) account over `entry`'s.
async fn garble(surfpool: &Surfpool, seed: &RegistrySeed, entry: &NodeEntry) {
    let mut data = layout::encode_node_entry(&seed.registry.to_bytes(), entry);
    data[..8].copy_from_slice(&layout::account_discriminator("Registry"));
    surfpool.set_account(&seed.node_address(&entry.wallet), LAMPORTS, &data, &seed.program).await;
}

#[tokio::test]
async fn an_endpoint_answering_an_empty_list_revokes_nobody_unless_another_endpoint_agrees() {
    bounded(async {
        let first = Surfpool::start();
        let second = Surfpool::start();
        let seed = RegistrySeed::new("shrink-two");
        let nodes = [node("a", "", 1, true), node("b", "", 1, true), node("c", "", 1, true)];
        for n in &nodes {
            seed.put_node(&first, n).await;
            seed.put_node(&second, n).await;
        }
        let reg = std::sync::Arc::new(registry(&[&first.rpc_url, &second.rpc_url], &seed, RPC_TIMEOUT));
        let auth = authorizer(reg.clone());
        assert_eq!(auth.refresh().await.unwrap().added.len(), 3);

        // The first endpoint loses every account (an empty getProgramAccounts answer).
        for n in &nodes {
            seed.remove_node(&first, &n.wallet).await;
        }
        assert!(reg.list().await.unwrap().is_empty(), "the first endpoint now answers an empty list");
        let changes = auth.refresh().await.unwrap();
        assert!(changes.revoked.is_empty() && changes.held.is_none(), "{changes:?}");
        assert_eq!(auth.status().authorized_nodes, 3);
        assert!(!auth.status().stale, "the second endpoint's full answer is a good answer");
        assert_eq!(reg.current_endpoint(), second.rpc_url, "the endpoint that disagreed is preferred from now on");
        for n in &nodes {
            assert!(auth.is_authorized(&n.wallet));
        }

        // A single deactivation still takes effect at once.
        let c_off = NodeEntry { active: false, ..nodes[2].clone() };
        seed.put_node(&second, &c_off).await;
        assert_eq!(auth.refresh().await.unwrap().revoked, vec![c_off.wallet]);

        // Now the second endpoint loses them too: the first agrees, so the shrink is accepted.
        seed.remove_node(&second, &nodes[0].wallet).await;
        seed.remove_node(&second, &nodes[1].wallet).await;
        seed.remove_node(&second, &c_off.wallet).await;
        let changes = auth.refresh().await.unwrap();
        assert!(changes.held.is_none(), "{changes:?}");
        let mut revoked = changes.revoked.clone();
        revoked.sort();
        assert_eq!(
            revoked,
            sorted(vec![nodes[0].clone(), nodes[1].clone()]).iter().map(|n| n.wallet).collect::<Vec<_>>()
        );
        assert_eq!(auth.status().authorized_nodes, 0);
    })
    .await;
}

#[tokio::test]
async fn undecodable_accounts_are_accepted_only_after_persisting_over_consecutive_refreshes() {
    bounded(async {
        let chain = Surfpool::start();
        let seed = RegistrySeed::new("shrink-persist");
        let nodes = [node("a", "", 1, true), node("b", "", 1, true), node("c", "", 1, true)];
        for n in &nodes {
            seed.put_node(&chain, n).await;
        }
        // The second endpoint is down: no second opinion.
        let dead = dead_url();
        let reg = std::sync::Arc::new(registry(&[&chain.rpc_url, &dead], &seed, RPC_TIMEOUT));
        let auth = authorizer(reg.clone());
        auth.refresh().await.unwrap();
        assert_eq!(auth.status().authorized_nodes, 3);

        // Two of three accounts become undecodable: they would be dropped (2 of 3 > half).
        garble(&chain, &seed, &nodes[0]).await;
        garble(&chain, &seed, &nodes[1]).await;
        assert_eq!(reg.list().await.unwrap(), vec![nodes[2].clone()], "the garbled accounts are skipped");
        for seen in 1..=2 {
            let changes = auth.refresh().await.unwrap();
            assert!(changes.revoked.is_empty(), "refresh {seen}: {changes:?}");
            let status = auth.status();
            assert!(status.stale, "refresh {seen}: {status:?}");
            let reason = status.stale_reason.unwrap();
            assert!(
                reason.contains("drops 2 of the 3") && reason.contains("no other endpoint could confirm"),
                "{reason}"
            );
            assert!(reason.contains(&dead) && reason.contains(&format!("({seen} so far")), "{reason}");
            assert_eq!(status.authorized_nodes, 3);
        }
        // The third consecutive answer: accepted.
        let changes = auth.refresh().await.unwrap();
        assert_eq!(changes.revoked.len(), 2);
        assert!(!auth.status().stale);
        assert!(auth.is_authorized(&nodes[2].wallet) && !auth.is_authorized(&nodes[0].wallet));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Replies surfpool cannot produce: a tiny HTTP server answering one fixed body.
// ---------------------------------------------------------------------------------------------

/// Serves `body` (with a Content-Length header, or chunked without one) to every request on a
/// 127.0.0.1 port, until the test ends; returns its URL.
fn fixed_reply_server(body: Vec<u8>, content_length: bool) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                // Read the request head and its body (Content-Length), then answer.
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let head = if content_length {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                        .to_string()
                };
                let _ = stream.write_all(head.as_bytes());
                if content_length {
                    let _ = stream.write_all(&body);
                } else {
                    for chunk in body.chunks(64 * 1024) {
                        if stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
                            || stream.write_all(chunk).is_err()
                            || stream.write_all(b"\r\n").is_err()
                        {
                            return;
                        }
                    }
                    let _ = stream.write_all(b"0\r\n\r\n");
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn oversized_and_malformed_replies_are_refused_before_parsing_and_failed_over() {
    bounded(async {
        let chain = Surfpool::start();
        let seed = RegistrySeed::new("oversized");
        let a = node("a", "", 1, true);
        seed.put_node(&chain, &a).await;
        const CAP: usize = 64 * 1024;
        // A well-formed getProgramAccounts reply, but of 8 MiB (an endless list of junk).
        let mut huge = br#"{"jsonrpc":"2.0","id":0,"result":["#.to_vec();
        while huge.len() < 8 * 1024 * 1024 {
            huge.extend_from_slice(br#"{"pubkey":"11111111111111111111111111111111","account":{}},"#);
        }
        huge.pop();
        huge.extend_from_slice(b"]}");
        let with_length = fixed_reply_server(huge.clone(), true);
        let chunked = fixed_reply_server(huge, false);
        let garbage = fixed_reply_server(b"<html>not json</html>".to_vec(), true);

        for (url, what) in [(&with_length, "Content-Length"), (&chunked, "more than")] {
            let reg =
                SolanaRegistry::with_max_response(vec![url.clone()], seed.program, seed.registry, RPC_TIMEOUT, CAP)
                    .unwrap();
            let err = reg.list().await.expect_err("oversized reply").to_string();
            assert!(err.contains(&format!("larger than {CAP} bytes")) && err.contains(what), "{err}");
            assert!(err.contains("bridge.registry.max_response_bytes"), "{err}");
        }
        let reg =
            SolanaRegistry::with_max_response(vec![garbage.clone()], seed.program, seed.registry, RPC_TIMEOUT, CAP)
                .unwrap();
        let err = reg.list().await.expect_err("not JSON").to_string();
        assert!(err.contains(&garbage), "{err}");

        // Behind them, the real endpoint answers.
        let reg = SolanaRegistry::with_max_response(
            vec![with_length, chunked, garbage, chain.rpc_url.clone()],
            seed.program,
            seed.registry,
            RPC_TIMEOUT,
            CAP,
        )
        .unwrap();
        assert_eq!(reg.list().await.expect("failed over to surfpool"), vec![a.clone()]);
        assert_eq!(reg.lookup(a.wallet).await.unwrap(), Some(a));
    })
    .await;
}
