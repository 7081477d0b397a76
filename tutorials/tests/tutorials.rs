//! Runs the tutorial binaries exactly as the markdown walkthroughs do, against the real relay
//! (started in-process once for this test binary, free 127.0.0.1 port, temporary SQLite) and,
//! for the paid machines, a real offline surfpool started by `tutorials/support/surfpool.js`.
//! Asserts on what the binaries print and on what the relay stored. Node.js runs the TypeScript
//! hello world (`hello-world-ts/`) and an independent check of the payment authorizations against
//! DePHY's namespace table (`tests/support/verify_namespaces.mjs`), both with nostr-tools from
//! `target/npm-nostr-tools` (scripts/test installs it); the surfpool helper is also checked to keep
//! the node answering past slot 1100 and to stay up on a terminal.

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
    url_file: PathBuf,
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
        Surfpool { child, rpc_url, url_file }
    }
}

impl Drop for Surfpool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON-RPC call over plain HTTP/1.1 (std only), bounded by `timeout`; the `result` field.
fn rpc_call(rpc_url: &str, method: &str, timeout: Duration) -> Result<serde_json::Value, String> {
    use std::io::{Read as _, Write as _};
    let addr = rpc_url.strip_prefix("http://").ok_or_else(|| format!("not an http URL: {rpc_url}"))?;
    let addr = addr.trim_end_matches('/');
    let sock: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    stream.take(1 << 20).read_to_end(&mut reply).map_err(|e| format!("no answer within {timeout:?}: {e}"))?;
    let reply = String::from_utf8_lossy(&reply);
    let json = reply.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("no HTTP body")?;
    let parsed: serde_json::Value = serde_json::from_str(json.trim()).map_err(|e| format!("{e}: {json:?}"))?;
    parsed.get("result").cloned().ok_or_else(|| format!("no result: {parsed}"))
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
            "machine: authorization ok (namespace 0 \"DeCharge\", user ",
            "machine: payment ok (1000000 lamports",
            "user: machine is Working: {\"charging\":\"started\"}",
            "user: machine is Available again: {\"charged_kwh\":1.5}",
            "user: done",
            "machine: Working for ",
            "machine: finished, Available",
        ],
    );
    // DePHY's DeCharge namespace: id 0, name "DeCharge" in the signed text.
    let checked = verify_namespaces(&relay, "dephy-decharge-controller");
    assert!(checked.contains(r#"namespace 0 "DeCharge": signature ok"#), "{checked}");
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
            "machine: authorization ok (namespace 1 \"Gacha\", user ",
            "machine: payment ok (5000000 lamports",
            "user: machine is Working: {\"prize\":\"",
            "user: machine is Available again: {\"dispensed\":true}",
            "reusing the first payment and nonce",
            "user: refused as expected: not eligible: nonce ",
            "user: done",
            "machine: refused ",
        ],
    );
    // DePHY's Gacha namespace: id 1, name "Gacha" (case-sensitive) in the signed text.
    let checked = verify_namespaces(&relay, "dephy-gacha-controller");
    assert!(checked.contains(r#"namespace 1 "Gacha": signature ok"#), "{checked}");
}

/// Runs `tests/support/verify_namespaces.mjs` (an independent Node.js check of the payment
/// authorizations of `session`'s Requests on the relay, by DePHY's namespace table); its stdout.
fn verify_namespaces(relay: &str, session: &str) -> String {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // ES modules ignore NODE_PATH: run a copy beside a node_modules link.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("verify_namespaces.mjs");
    std::fs::copy(manifest.join("tests/support/verify_namespaces.mjs"), &script).unwrap();
    std::os::unix::fs::symlink(nostr_tools_modules(), dir.path().join("node_modules")).unwrap();
    let (ok, stdout, stderr) =
        run("node", &["--experimental-websocket", script.to_str().unwrap(), relay, session], dir.path());
    assert!(ok, "the independent check of {session}'s authorizations failed:\n{stdout}\n{stderr}");
    stdout
}

/// The helper must keep the node answering after its event channel would have filled: without
/// draining, surfpool's embedded runtime stops answering getSlot / getLatestBlockhash at slot
/// ~1024 (~80 s). Time travel (`timeTravelToSlot`) does not provoke it: the channel fills per
/// slot ticked, not per slot number, so this test waits in real time (bounded) for slot 1100.
#[test]
fn surfpool_keeps_answering_after_1100_slots() {
    const TARGET_SLOT: u64 = 1100;
    let dir = tempfile::tempdir().unwrap();
    let surfpool = Surfpool::start(dir.path());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let mut slot = 0;
    while slot < TARGET_SLOT {
        assert!(Instant::now() < deadline, "surfpool reached only slot {slot} in 300 s");
        std::thread::sleep(Duration::from_secs(2));
        slot = match rpc_call(&surfpool.rpc_url, "getSlot", Duration::from_secs(10)) {
            Ok(v) => v.as_u64().unwrap_or_else(|| panic!("getSlot returned {v}")),
            Err(e) => panic!(
                "surfpool stopped answering getSlot after slot {slot} ({:?} after start): {e}",
                started.elapsed()
            ),
        };
    }
    rpc_call(&surfpool.rpc_url, "getLatestBlockhash", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("getLatestBlockhash at slot {slot}: {e}"));
    // A tutorial that needs getLatestBlockhash (it pays on chain) still runs through.
    let relay = relay_url();
    let (ok, stdout, stderr) =
        run(env!("CARGO_BIN_EXE_decharge"), &["--relay", &relay, "--rpc", &surfpool.rpc_url], dir.path());
    assert!(ok, "decharge failed at slot {slot}:\n{stdout}\n{stderr}");
    lines_in_order(
        &stdout,
        &["user: paid 1000000 lamports to ", "machine: payment ok (1000000 lamports", "user: done"],
    );
    // SIGTERM (as Ctrl-C or a service manager sends) stops it and removes its URL file.
    let mut surfpool = surfpool;
    let status = Command::new("kill").arg("-TERM").arg(surfpool.child.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while surfpool.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "surfpool.js did not stop within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!surfpool.url_file.exists(), "surfpool.js left its URL file behind");
}

/// Where nostr-tools is installed: scripts/test puts it into `target/npm-nostr-tools` (the same
/// pinned version as tutorials/hello-world-ts/package.json); NODE_PATH lists that folder.
fn nostr_tools_modules() -> PathBuf {
    let from_env = std::env::var("NODE_PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .find(|dir| dir.join("nostr-tools/package.json").exists());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = from_env.unwrap_or_else(|| manifest.join("../target/npm-nostr-tools/node_modules"));
    assert!(
        dir.join("nostr-tools/package.json").exists(),
        "nostr-tools is not installed ({}); run scripts/test or `npm install --prefix target/npm-nostr-tools nostr-tools@2.25.2`",
        dir.display()
    );
    dir
}

/// The TypeScript (JSDoc-typed ES module) hello world runs with Node and nostr-tools against a
/// real relay, as tutorials/hello-world-ts.md shows; the Status it published and received back
/// is DePHY's wire format, as the SDK parses it.
#[test]
fn hello_world_ts() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = manifest.join("hello-world-ts");
    let pinned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("package.json")).unwrap()).unwrap();
    let modules = nostr_tools_modules();
    let installed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(modules.join("nostr-tools/package.json")).unwrap()).unwrap();
    assert_eq!(pinned["dependencies"]["nostr-tools"], installed["version"], "the tested nostr-tools is the pinned one");
    // ES modules ignore NODE_PATH: run a copy beside a node_modules link, as `npm install` would lay it out.
    let dir = tempfile::tempdir().unwrap();
    for file in ["hello.mjs", "package.json"] {
        std::fs::copy(src.join(file), dir.path().join(file)).unwrap();
    }
    std::os::unix::fs::symlink(&modules, dir.path().join("node_modules")).unwrap();
    let relay = relay_url();
    let script = dir.path().join("hello.mjs");
    let (ok, stdout, stderr) = run("node", &["--experimental-websocket", script.to_str().unwrap(), &relay], dir.path());
    assert!(ok, "hello.mjs failed:\n{stdout}\n{stderr}");
    in_order(
        &stdout,
        &[
            "device key: npub1",
            &format!("subscribed on {relay} to session hello_session"),
            "published ",
            "(kind 1573, Status Available): OK",
            "received ",
            "content: ",
            "hello world: OK",
        ],
        &stdout,
    );
    let published = stdout.lines().find_map(|l| l.strip_prefix("published ")).unwrap().split(' ').next().unwrap();
    let received = stdout.lines().find_map(|l| l.strip_prefix("received ")).unwrap().split(' ').next().unwrap();
    assert_eq!(published, received, "the event that came back is the one published");
    let content = stdout.lines().find_map(|l| l.strip_prefix("content: ")).unwrap();
    match dephy_device_sdk::message::Message::parse(content) {
        Ok(dephy_device_sdk::message::Message::Status { status, reason, payload, .. }) => {
            assert_eq!(status, dephy_device_sdk::message::Status::Available);
            assert_eq!(reason, dephy_device_sdk::message::Reason::Reset);
            assert!(payload.starts_with(r#"{"hello":"world","run":"#), "payload {payload:?}");
        }
        other => panic!("the content is not a DePHY Status: {other:?}\n{content}"),
    }

    // A relay that is not there: a clear error, exit 1.
    let dead =
        format!("ws://127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let (ok, _, stderr) = run("node", &["--experimental-websocket", script.to_str().unwrap(), &dead], dir.path());
    assert!(!ok && stderr.contains(&format!("cannot connect to {dead}")), "stderr: {stderr}");
    assert!(!stderr.contains("RangeError"), "the unreachable relay overflowed the stack: {stderr}");
}

/// Started from a terminal (stdin a TTY, here through util-linux `script`), the helper stays up
/// until it is told to stop, and removes its URL file when its terminal goes away (SIGHUP).
#[test]
fn surfpool_helper_stays_up_on_a_terminal() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("support/surfpool.js");
    let node_path = std::env::var("NODE_PATH")
        .unwrap_or_else(|_| manifest.join("../target/npm/node_modules").to_string_lossy().into_owned());
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("surfpool-rpc-url");
    let command = format!("node '{}' '{}'", script.display(), url_file.display());
    let mut terminal = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NODE_PATH", &node_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `script` (util-linux) to give the helper a terminal: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !url_file.exists() {
        assert!(terminal.try_wait().unwrap().is_none(), "surfpool.js exited before writing its URL file");
        assert!(Instant::now() < deadline, "surfpool.js wrote no URL file within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(terminal.try_wait().unwrap().is_none(), "surfpool.js exited by itself on a terminal");
    let url = std::fs::read_to_string(&url_file).expect("the URL file is still there while it runs");
    rpc_call(url.trim(), "getSlot", Duration::from_secs(10)).expect("the node answers getSlot");
    // Closing the terminal session (script forwards SIGTERM as a hang-up) stops it and cleans up.
    let status = Command::new("kill").arg("-TERM").arg(terminal.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while terminal.try_wait().unwrap().is_none() || url_file.exists() {
        if Instant::now() > deadline {
            let _ = terminal.kill();
            panic!("surfpool.js did not stop and remove its URL file within 20 s of its terminal closing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
