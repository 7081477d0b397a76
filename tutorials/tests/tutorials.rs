//! Runs the tutorial binaries exactly as the markdown walkthroughs do, against the real relay
//! (started in-process once for this test binary, free 127.0.0.1 port, temporary SQLite) and,
//! for the paid machines, a real offline surfpool started by `tutorials/support/surfpool.js`.
//! Asserts on what the binaries print and on what the relay stored.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest one tutorial run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn relay_url() -> String {
    static PORT: OnceLock<u16> = OnceLock::new();
    let port = *PORT.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap().keep();
        let mut cfg = dephy_relay::config::Config::default();
        cfg.listen = SocketAddr::from(([127, 0, 0, 1], port));
        cfg.db = format!("sqlite://{}", dir.join("relay.db").display());
        cfg.key_file = dir.join("relay.key");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            if let Err(e) = rt.block_on(dephy_relay::server::serve(cfg)) {
                panic!("the in-process relay stopped: {e:#}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the relay did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        port
    });
    format!("ws://127.0.0.1:{port}")
}

/// Runs a tutorial binary (bounded); returns (success, stdout, stderr).
fn run(bin: &str, args: &[&str], cwd: &Path) -> (bool, String, String) {
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{bin} {args:?} did not finish within {RUN_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The tutorials' surfpool script, writing its URL to a file as the markdown shows.
struct Surfpool {
    child: Child,
    rpc_url: String,
}

impl Surfpool {
    fn start(dir: &Path) -> Surfpool {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = manifest.join("support/surfpool.js");
        let node_path = std::env::var("NODE_PATH")
            .unwrap_or_else(|_| manifest.join("../target/npm/node_modules").to_string_lossy().into_owned());
        let url_file = dir.join("surfpool-rpc-url");
        let mut child = Command::new("node")
            .arg(&script)
            .arg(&url_file)
            .env("NODE_PATH", &node_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("surfpool prints its URL within 30 s");
        let parsed: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("surfpool.js printed {line:?} ({e}); is surfpool installed under {node_path}?"));
        let rpc_url = parsed["rpcUrl"].as_str().unwrap().to_string();
        assert_eq!(std::fs::read_to_string(&url_file).unwrap().trim(), rpc_url, "the URL file matches");
        Surfpool { child, rpc_url }
    }
}

impl Drop for Surfpool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each role's lines (`machine:` / `user:`) appear in the given order; the two roles run
/// concurrently, so only the order within one role is fixed.
fn lines_in_order(stdout: &str, expected: &[&str]) {
    for role in ["machine:", "user:"] {
        let theirs: Vec<&str> = stdout.lines().filter(|l| l.starts_with(role)).collect();
        let wanted: Vec<&str> = expected.iter().copied().filter(|e| e.starts_with(role)).collect();
        in_order(&theirs.join("\n"), &wanted, stdout);
    }
    let others: Vec<&str> =
        expected.iter().copied().filter(|e| !e.starts_with("machine:") && !e.starts_with("user:")).collect();
    in_order(stdout, &others, stdout);
}

fn in_order(text: &str, expected: &[&str], stdout: &str) {
    let mut rest = text;
    for needle in expected {
        match rest.find(needle) {
            Some(at) => rest = &rest[at + needle.len()..],
            None => panic!("expected {needle:?} (in this order) in the output:\n{stdout}"),
        }
    }
}

#[test]
fn hello_world() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_url();
    let bin = env!("CARGO_BIN_EXE_hello-world");
    let (ok, stdout, stderr) = run(bin, &["--relay", &relay], dir.path());
    assert!(ok, "hello-world failed:\n{stdout}\n{stderr}");
    lines_in_order(
        &stdout,
        &[
            "device key: npub1",
            "subscribed on",
            "published ",
            "received ",
            ", arrival seq ",
            "content: {\"Status\":{\"status\":\"Available\"",
            "hello world: OK",
        ],
    );
    // The key was created with its .pub beside it, under data/ as the tutorial says.
    let key_file: PathBuf = dir.path().join("data/hello-world/device.key");
    assert!(key_file.exists() && dir.path().join("data/hello-world/device.key.pub").exists());
    // A second run reuses the key and receives only its own new event.
    let (ok, again, stderr) = run(bin, &["--relay", &relay], dir.path());
    assert!(ok, "second run failed:\n{again}\n{stderr}");
    let first_key = stdout.lines().next().unwrap();
    assert_eq!(again.lines().next().unwrap(), first_key, "the same device key");

    // A relay that is not there: a clear error, exit 1.
    let dead =
        format!("ws://127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let bad_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args(["--relay", &dead])
        .current_dir(bad_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The client retries for up to 30 s; do not wait that long: it must still be trying, not crashed.
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "hello-world exits at once on a dead relay instead of retrying");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn decharge() {
    let dir = tempfile::tempdir().unwrap();
    let surfpool = Surfpool::start(dir.path());
    let relay = relay_url();
    let (ok, stdout, stderr) =
        run(env!("CARGO_BIN_EXE_decharge"), &["--relay", &relay, "--rpc", &surfpool.rpc_url], dir.path());
    assert!(ok, "decharge failed:\n{stdout}\n{stderr}");
    lines_in_order(
        &stdout,
        &[
            "machine: Available",
            "user: wallet ",
            "user: paid 1000000 lamports to ",
            "user: sent request ",
            "machine: authorization ok",
            "machine: payment ok (1000000 lamports",
            "user: machine is Working: {\"charging\":\"started\"}",
            "user: machine is Available again: {\"charged_kwh\":1.5}",
            "user: done",
            "machine: Working for ",
            "machine: finished, Available",
        ],
    );
}

#[test]
fn gacha() {
    let dir = tempfile::tempdir().unwrap();
    let surfpool = Surfpool::start(dir.path());
    let relay = relay_url();
    let (ok, stdout, stderr) = run(
        env!("CARGO_BIN_EXE_gacha"),
        &["--relay", &relay, "--rpc", &surfpool.rpc_url, "--price", "5000000"],
        dir.path(),
    );
    assert!(ok, "gacha failed:\n{stdout}\n{stderr}");
    lines_in_order(
        &stdout,
        &[
            "user: paid 5000000 lamports",
            "machine: payment ok (5000000 lamports",
            "user: machine is Working: {\"prize\":\"",
            "user: machine is Available again: {\"dispensed\":true}",
            "reusing the first payment and nonce",
            "user: refused as expected: not eligible: nonce ",
            "user: done",
            "machine: refused ",
        ],
    );
}
