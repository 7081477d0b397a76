//! Command line and configuration: flag > environment > file precedence for `listen` and `db`,
//! invalid configuration files, `migrate`. Both backends.

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use nostr::prelude::*;
use serde_json::json;

backend_tests!(listen_precedence, db_precedence);

async fn port_is_listening(port: u16) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), http_get(port, "/health", &[])).await,
        Ok(Ok(r)) if r.status == 200
    )
}

async fn listen_precedence(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (p_file, p_env, p_flag) = (free_port(), free_port(), free_port());
    let cfg = format!("listen = \"127.0.0.1:{p_file}\"\ndb = \"{}\"\n", db.url);

    // File only.
    let r =
        Relay::spawn_custom(&db, "file", &cfg, p_file, &[], &[]).await.unwrap_or_else(|e| panic!("file listen: {e}"));
    assert!(port_is_listening(p_file).await);
    drop(r);

    // Env beats file.
    let env = [("DEPHY_RELAY_LISTEN", format!("127.0.0.1:{p_env}"))];
    let r = Relay::spawn_custom(&db, "env", &cfg, p_env, &[], &env).await.unwrap_or_else(|e| panic!("env listen: {e}"));
    assert!(!port_is_listening(p_file).await, "file listen address used although env is set");
    drop(r);

    // Flag beats env.
    let args = vec!["--listen".to_string(), format!("127.0.0.1:{p_flag}")];
    let r = Relay::spawn_custom(&db, "flag", &cfg, p_flag, &args, &env)
        .await
        .unwrap_or_else(|e| panic!("flag listen: {e}"));
    assert!(!port_is_listening(p_env).await, "env listen address used although the flag is set");
    assert!(!port_is_listening(p_file).await);
    drop(r);
}

async fn db_precedence(backend: Backend) {
    let db = TestDb::new(backend).await;
    let file_db = db.dir.path().join("from-file.db");
    let env_db = db.dir.path().join("from-env.db");
    let cfg = format!("db = \"sqlite://{}\"\n", file_db.display());
    let port = free_port();

    // Env beats file: the real test database is given by env, the file names another sqlite file.
    let env = [("DEPHY_RELAY_DB", db.url.clone())];
    let args = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
    let relay =
        Relay::spawn_custom(&db, "env", &cfg, port, &args, &env).await.unwrap_or_else(|e| panic!("env db: {e}"));
    let k = Keys::generate();
    let e = sign(&k, DEPHY_KIND, "where am I stored", &[], None);
    relay.connect().await.publish_ok(&e).await;
    drop(relay);
    assert!(!file_db.exists(), "the config file's db was used although DEPHY_RELAY_DB is set");

    // Flag beats env: env points to another sqlite file, flag to the test database.
    let port = free_port();
    let env = [("DEPHY_RELAY_DB", format!("sqlite://{}", env_db.display()))];
    let args = vec!["--listen".to_string(), format!("127.0.0.1:{port}"), "--db".to_string(), db.url.clone()];
    let relay =
        Relay::spawn_custom(&db, "flag", &cfg, port, &args, &env).await.unwrap_or_else(|e| panic!("flag db: {e}"));
    let mut c = relay.connect().await;
    assert_eq!(c.req_ids("q", &[json!({"ids": [e.id.to_hex()]})]).await, vec![e.id.to_hex()], "same database");
    assert!(!env_db.exists(), "DEPHY_RELAY_DB was used although --db is set");
    assert!(!file_db.exists());
}

fn run_serve(dir: &std::path::Path, config: &str, extra: &[&str]) -> std::process::Output {
    let path = dir.join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(relay_bin());
    cmd.arg("serve").arg("--config").arg(&path).args(extra).current_dir(dir);
    cmd.env_remove("DEPHY_RELAY_LISTEN").env_remove("DEPHY_RELAY_DB").env_remove("DEPHY_RELAY_CONFIG");
    // Bounded: the relay must refuse to start, not serve forever.
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30); // the relay waits ~10 s for an unreachable database
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("relay kept running with config {config:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn invalid_config_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    for (config, needle) in [
        ("[limits]\nmax_event_tagz = 3\n", "max_event_tagz"),
        ("[limits]\nmax_event_tags = \"many\"\n", "max_event_tags"),
        ("not toml at all [[[", ""),
        ("[nonsense]\nx = 1\n", "nonsense"),
    ] {
        let out = run_serve(dir.path(), config, &["--listen", &listen, "--db", "sqlite://x.db"]);
        assert!(!out.status.success(), "config {config:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "error for {config:?} names {needle:?}: {stderr}");
    }
    // A missing config file is an error too.
    let out = Command::new(relay_bin())
        .args(["serve", "--config", "/nonexistent/dephy.toml", "--listen", &listen])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "missing config file accepted");
}

#[test]
fn unreachable_database_fails_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = run_serve(
        dir.path(),
        "",
        &["--listen", &format!("127.0.0.1:{port}"), "--db", "postgres://postgres@127.0.0.1:1/nope"],
    );
    assert!(!out.status.success(), "relay started without its database");
    let out = run_serve(dir.path(), "", &["--listen", &format!("127.0.0.1:{port}"), "--db", "mysql://x/y"]);
    assert!(!out.status.success(), "unsupported database URL accepted");
}

/// `dephy-relay serve ARGS` in `dir`, stderr to `log`, without the relay's environment variables.
fn serve_logging_to(dir: &std::path::Path, args: &[&str], log: &std::path::Path) -> Command {
    let mut cmd = Command::new(relay_bin());
    cmd.arg("serve").args(args).current_dir(dir);
    cmd.env_remove("DEPHY_RELAY_LISTEN").env_remove("DEPHY_RELAY_DB").env_remove("DEPHY_RELAY_CONFIG");
    cmd.env("NO_COLOR", "1").stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
    cmd.stderr(std::process::Stdio::from(std::fs::File::create(log).unwrap()));
    cmd
}

/// Logs written to a file carry no ANSI colour codes (colour is only for a terminal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_file_have_no_ansi_codes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log_path = dir.path().join("relay.log");
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let mut cmd = serve_logging_to(dir.path(), &["--listen", &format!("127.0.0.1:{port}"), "--db", &db], &log_path);
    // Neither NO_COLOR nor a terminal: the file alone must turn colour off.
    let mut child = cmd.env_remove("NO_COLOR").env("RUST_LOG", "debug").spawn().unwrap();
    // "relay ready" is logged just after the port opens: wait for both.
    let ready = eventually(READY_TIMEOUT, || async {
        port_is_listening(port).await
            && String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).contains("relay ready")
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read(&log_path).unwrap();
    assert!(ready, "relay did not start: {}", String::from_utf8_lossy(&text));
    assert!(String::from_utf8_lossy(&text).contains("relay ready"), "the log has the startup lines");
    assert!(!text.contains(&0x1b), "ESC byte in a log file: {}", String::from_utf8_lossy(&text).escape_debug());
}

/// `node-id` creates the keypair (and its directories) with relative paths from the working
/// directory, prints the wallet, PeerId and dialable bootstrap addresses, prints the same on a
/// second run, and the relay that `serve` starts with that configuration is that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_id_prints_the_identity_serve_uses() {
    let dir = tempfile::tempdir().unwrap();
    let (port, p2p) = (free_port(), free_port());
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndb = \"sqlite://data/relay.db\"\n\n[bridge]\nnetwork = \"cli-test\"\n\
         keypair_file = \"keys/node/keypair.json\"\nlisten = [\"/ip4/127.0.0.1/tcp/{p2p}\", \"/ip4/0.0.0.0/udp/{p2p}/quic-v1\"]\n\n\
         [bridge.registry]\nbackend = \"static\"\n"
    );
    std::fs::write(dir.path().join("relay.toml"), &config).unwrap();
    let node_id = |json: bool| {
        let mut cmd = Command::new(relay_bin());
        cmd.args(["node-id", "--config", "relay.toml"]).current_dir(dir.path()).env_remove("DEPHY_RELAY_CONFIG");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "node-id failed: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (text, notes) = node_id(false);
    assert!(dir.path().join("keys/node/keypair.json").exists(), "keypair created under the working directory");
    assert!(notes.contains("created the node keypair"), "{notes}");
    assert!(notes.contains("register wallet"), "{notes}");
    assert!(notes.contains("bind all interfaces"), "the 0.0.0.0 listener is explained: {notes}");
    let (json, notes) = node_id(true);
    assert!(!notes.contains("created the node keypair"), "the second run reuses the keypair: {notes}");
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    let (wallet, peer) = (info["wallet"].as_str().unwrap(), info["peer_id"].as_str().unwrap());
    assert!(text.contains(&format!("wallet     {wallet}")) && text.contains(&format!("peer_id    {peer}")), "{text}");
    assert_eq!(info["bootstrap"], json!([format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer}")]));
    assert_eq!(info["network"], "cli-test");

    let mut child =
        serve_logging_to(dir.path(), &["--config", "relay.toml"], &dir.path().join("relay.log")).spawn().unwrap();
    let health = async {
        for _ in 0..300 {
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), http_get(port, "/health", &[])).await
                && r.status == 200
            {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                if body["bridge"]["listen"].as_array().is_some_and(|l| !l.is_empty()) {
                    return Some(body);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let body = health.unwrap_or_else(|| {
        panic!("relay did not start: {}", std::fs::read_to_string(dir.path().join("relay.log")).unwrap_or_default())
    });
    assert_eq!(body["bridge"]["wallet"], wallet);
    assert_eq!(body["bridge"]["peer_id"], peer);
    assert_eq!(body["bridge"]["network"], "cli-test");
}
