//! The explorer page (`/explorer/`) and the federation endpoints it reads (`/federation/*`),
//! end to end: real `dephy-relay` processes on 127.0.0.1 (two federated through a node registry
//! on a real offline surfpool, as in relay/tests/federation.rs, plus one with read auth on), the
//! page driven in a real headless Chromium (Debian's `chromium` through npm puppeteer-core,
//! relay/tests/support/explorer_browser.js) with events published by an independent client
//! (nostr-tools). Also: the committed bundle `explorer/dist/` is what `scripts/build-explorer`
//! makes from the sources. Every wait is bounded.

#[macro_use]
mod common;
#[path = "../../bridge/tests/support/registry_seed.rs"]
mod registry_seed;
#[path = "../../bridge/tests/support/surfpool.rs"]
mod surfpool;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use dephy_bridge::identity::NodeIdentity;
use dephy_bridge::registry::NodeEntry;
use registry_seed::RegistrySeed;
use serde_json::{Value, json};
use surfpool::Surfpool;

/// Longest the relays may take to connect to each other.
const CONNECT: Duration = Duration::from_secs(30);
/// Bound on every wait of the browser script (generous: shared, noisy machine).
const BROWSER_TIMEOUT_MS: u64 = 60_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn node_path() -> String {
    std::env::var("NODE_PATH").unwrap_or_else(|_| {
        let t = workspace().join("target");
        ["npm/node_modules", "npm-nostr-tools/node_modules", "npm-explorer/node_modules"]
            .iter()
            .map(|p| t.join(p).to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":")
    })
}

/// Debian's Chromium (or `DEPHY_TEST_CHROMIUM`); panics saying what to install when missing.
fn chromium() -> String {
    if let Ok(path) = std::env::var("DEPHY_TEST_CHROMIUM") {
        return path;
    }
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(path).exists() {
            return path.to_string();
        }
    }
    panic!(
        "no Chromium found for the explorer's browser tests: install Debian's `chromium` \
         (apt-get install -y chromium; scripts/test does it when run as root) or set DEPHY_TEST_CHROMIUM"
    );
}

/// One federated relay's identity and addresses, chosen before it starts.
struct Node {
    keypair: PathBuf,
    wallet: [u8; 32],
    p2p_port: u16,
}

impl Node {
    fn new(dir: &tempfile::TempDir, name: &str) -> Node {
        let keypair = dir.path().join(format!("{name}-keypair.json"));
        let id = NodeIdentity::load_or_create(&keypair).expect("create node keypair");
        Node { keypair, wallet: id.wallet, p2p_port: free_port() }
    }

    fn wallet(&self) -> String {
        bs58::encode(self.wallet).into_string()
    }

    fn config(&self, registry: &str, extra: &str) -> String {
        format!(
            "{extra}\n[bridge]\nnetwork = \"explorer-test\"\nkeypair_file = \"{}\"\nlisten = [\"/ip4/127.0.0.1/tcp/{}\"]\n\
             bootstrap = []\nrefresh_secs = 1\nretry_secs = 1\n\n[bridge.registry]\n{registry}",
            self.keypair.display(),
            self.p2p_port,
        )
    }

    fn entry(&self) -> NodeEntry {
        NodeEntry {
            wallet: self.wallet,
            domain: format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port),
            online: 1,
            active: true,
        }
    }
}

async fn get_json(relay: &Relay, path: &str) -> Value {
    let resp = http_get(relay.port, path, &[]).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(resp.status, 200, "GET {path}: {}", resp.text());
    resp.json()
}

/// Two relays federated through a surfpool registry; waits until each sees the other.
async fn federated_pair(dir: &tempfile::TempDir, surfpool: &Surfpool) -> (Node, Node, TestDb, Relay, TestDb, Relay) {
    let seed = RegistrySeed::new(&format!("explorer-{:x}", rand::random::<u64>()));
    seed.create(surfpool, "dephy-test").await;
    let (a, b) = (Node::new(dir, "a"), Node::new(dir, "b"));
    for n in [&a, &b] {
        seed.put_node(surfpool, &n.entry()).await;
    }
    let registry = format!(
        "backend = \"solana\"\nrpc_urls = [\"{}\"]\nprogram_id = \"{}\"\nregistry = \"{}\"\n",
        surfpool.rpc_url, seed.program, seed.registry
    );
    let log = "[log]\ncheckpoint_interval_secs = 1\n";
    let da = TestDb::new(Backend::Sqlite).await;
    let ra = Relay::spawn(&da, "a", &a.config(&registry, log)).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let rb = Relay::spawn(&db, "b", &b.config(&registry, log)).await;
    for (relay, other) in [(&ra, &b), (&rb, &a)] {
        let wallet = other.wallet();
        let ok = eventually(CONNECT, || async {
            let peers = get_json(relay, "/federation/peers").await;
            peers["peers"].as_array().is_some_and(|l| l.iter().any(|p| p["wallet"] == wallet && p["online"] == true))
        })
        .await;
        assert!(ok, "relay {} does not list {wallet} online:\n{}", relay.port, relay.log_tail(30));
    }
    (a, b, da, ra, db, rb)
}

#[tokio::test]
async fn committed_bundle_is_a_fresh_build() {
    let out = std::process::Command::new(workspace().join("scripts/build-explorer"))
        .arg("--check")
        .output()
        .expect("run scripts/build-explorer --check (needs Node.js and npm)");
    assert!(
        out.status.success(),
        "explorer/dist/ is stale or the build failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn explorer_files_are_served_with_types_caching_and_csp() {
    let (_db, relay) = Relay::start(Backend::Sqlite, "").await;
    let redirect = http_get(relay.port, "/explorer", &[]).await.unwrap();
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/explorer/"));

    let page = http_get(relay.port, "/explorer/", &[]).await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").expect("CSP header");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let html = page.text();
    assert_eq!(html, std::fs::read_to_string(workspace().join("explorer/dist/index.html")).unwrap());
    assert!(!html.contains("<script>") && html.contains("<script type=\"module\" src=\"explorer.js\">"));

    let etag = page.header("etag").expect("ETag").to_string();
    let again = http_get(relay.port, "/explorer/", &[("If-None-Match", &etag)]).await.unwrap();
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    for (file, ty) in [
        ("explorer.js", "text/javascript; charset=utf-8"),
        ("explorer.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let resp = http_get(relay.port, &format!("/explorer/{file}"), &[]).await.unwrap();
        assert_eq!(resp.status, 200, "{file}");
        assert_eq!(resp.header("content-type"), Some(ty), "{file}");
        assert_eq!(resp.body, std::fs::read(workspace().join("explorer/dist").join(file)).unwrap(), "{file}");
    }
    let missing = http_get(relay.port, "/explorer/secret.txt", &[]).await.unwrap();
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("/explorer/"), "{}", missing.text());

    // Without a [bridge] section the federation endpoints say so.
    for path in ["/federation/peers", "/federation/registry"] {
        assert_eq!(get_json(&relay, path).await, json!({ "enabled": false }), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_endpoints_list_peers_and_registry_entries() {
    let dir = tempfile::tempdir().unwrap();
    let surfpool = Surfpool::start();
    let (a, b, _da, ra, _db, _rb) = federated_pair(&dir, &surfpool).await;

    let peers = get_json(&ra, "/federation/peers").await;
    assert_eq!(peers["enabled"], true);
    assert_eq!(peers["node"]["network"], "explorer-test");
    assert_eq!(peers["node"]["wallet"], a.wallet());
    assert_eq!(peers["node"]["ready"], true);
    assert_eq!(peers["truncated"], false);
    let list = peers["peers"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{peers}");
    let peer = &list[0];
    assert_eq!(peer["wallet"], b.wallet());
    assert_eq!(peer["peer_id"], dephy_bridge::identity::peer_of(&b.wallet).unwrap().to_string());
    assert_eq!(peer["online"], true);
    assert_eq!(peer["registry"], "active");
    assert_eq!(peer["last_seen"], peers["now"]);
    assert!(peer["connected_since"].as_u64().unwrap() <= peers["now"].as_u64().unwrap());

    let registry = get_json(&ra, "/federation/registry").await;
    assert_eq!(registry["enabled"], true);
    assert_eq!(registry["status"]["backend"], "solana");
    assert_eq!(registry["status"]["authorized_nodes"], 2);
    assert_eq!(registry["status"]["stale"], false);
    assert!(registry["refresh_age_secs"].as_u64().is_some(), "{registry}");
    let entries = registry["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{registry}");
    let of = |w: &str| entries.iter().find(|e| e["wallet"] == w).unwrap_or_else(|| panic!("{w} not in {registry}"));
    let (ea, eb) = (of(&a.wallet()), of(&b.wallet()));
    assert_eq!((ea["self"].clone(), ea["active"].clone()), (json!(true), json!(true)));
    assert_eq!(
        (eb["self"].clone(), eb["active"].clone(), eb["connected"].clone()),
        (json!(false), json!(true), json!(true))
    );
    assert_eq!(eb["online"], 1);
    assert_eq!(eb["domain"], format!("/ip4/127.0.0.1/tcp/{}", b.p2p_port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_in_headless_chromium() {
    let chromium = chromium();
    let dir = tempfile::tempdir().unwrap();
    let surfpool = Surfpool::start();
    let (_a, b, _da, ra, _db, _rb) = federated_pair(&dir, &surfpool).await;
    let (_dc, rc) = Relay::start(Backend::Sqlite, "[auth]\nrequired_for_read = true\n").await;

    let input = dir.path().join("explorer-input.json");
    let mut spec = json!({
        "base": format!("http://127.0.0.1:{}", ra.port),
        "auth_base": format!("http://127.0.0.1:{}", rc.port),
        "peer_wallet": b.wallet(),
        "chromium": chromium,
        "timeout_ms": BROWSER_TIMEOUT_MS,
    });
    // scripts/screenshots sets this to write the views' PNGs.
    if let Ok(shots) = std::env::var("DEPHY_EXPLORER_SCREENSHOTS") {
        spec["screenshots"] = json!(shots);
    }
    std::fs::write(&input, spec.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/explorer_browser.js");
    let run = tokio::process::Command::new("node").arg(&script).arg(&input).env("NODE_PATH", node_path()).output();
    let out = tokio::time::timeout(Duration::from_millis(BROWSER_TIMEOUT_MS * 6), run)
        .await
        .expect("the browser script did not finish in time")
        .unwrap_or_else(|e| panic!("cannot run `node {}` (is Node.js >= 20.10 installed?): {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report from the browser script:\n{stdout}\n{stderr}"));
    assert_eq!(report["ok"], true, "browser checks failed: {report}\n{stderr}\n--- relay a ---\n{}", ra.log_tail(30));
    for line in report["checks"].as_array().unwrap() {
        println!("explorer: {}", line.as_str().unwrap_or_default());
    }
    println!("explorer: fleet view latency (publish -> row shown): {} ms", report["fleet_latency_ms"]);
    assert_eq!(report["checks"].as_array().unwrap().len(), 11, "{report}");
}
