//! Shared parts of the tutorials' tests: the real relay (in-process, once per test binary, free
//! 127.0.0.1 port, temporary SQLite), the tutorials' surfpool helper, bounded runs of the
//! tutorial binaries and long-running services, and the comparison of their output with the
//! walkthroughs' "What you see" blocks.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Longest one tutorial run may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

pub fn relay_url() -> String {
    static PORT: OnceLock<u16> = OnceLock::new();
    let port = *PORT.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap().keep();
        let cfg = dephy_relay::config::Config {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            db: format!("sqlite://{}", dir.join("relay.db").display()),
            key_file: dir.join("relay.key"),
            ..Default::default()
        };
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
pub fn run(bin: &str, args: &[&str], cwd: &Path) -> (bool, String, String) {
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

/// A long-running tutorial binary (a service), its stdout read line by line; killed on drop.
pub struct Service {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    name: String,
}

impl Service {
    pub fn start(bin: &str, args: &[&str], cwd: &Path) -> Service {
        let mut child = Command::new(bin)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Service { child, lines, seen: Vec::new(), name: bin.rsplit('/').next().unwrap_or(bin).to_string() }
    }

    /// Waits (bounded by RUN_TIMEOUT) for a line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{} printed no line containing {needle:?} within {RUN_TIMEOUT:?} (or exited); it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything printed so far, after waiting for `needle`.
    pub fn output(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tutorials' surfpool script, writing its URL to a file as the markdown shows.
pub struct Surfpool {
    pub child: Child,
    pub rpc_url: String,
    pub url_file: PathBuf,
}

pub fn node_path() -> String {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var("NODE_PATH")
        .unwrap_or_else(|_| manifest.join("../target/npm/node_modules").to_string_lossy().into_owned())
}

impl Surfpool {
    pub fn start(dir: &Path) -> Surfpool {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = manifest.join("support/surfpool.js");
        let node_path = node_path();
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
pub fn rpc_call(rpc_url: &str, method: &str, timeout: Duration) -> Result<serde_json::Value, String> {
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

/// `needle`s appear in `text` in this order.
pub fn in_order(text: &str, expected: &[&str], stdout: &str) {
    let mut rest = text;
    for needle in expected {
        match rest.find(needle) {
            Some(at) => rest = &rest[at + needle.len()..],
            None => panic!("expected {needle:?} (in this order) in the output:\n{stdout}"),
        }
    }
}

/// The lines of the ```text block under `## What you see` in `tutorials/<md>` (the `nth`
/// such block, from 0).
pub fn walkthrough(md: &str, nth: usize) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(md);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section =
        text.split("## What you see").nth(nth + 1).unwrap_or_else(|| panic!("{md}: no \"## What you see\" #{nth}"));
    let block = section.split("```text\n").nth(1).unwrap_or_else(|| panic!("{md}: no ```text block"));
    block.split("\n```").next().unwrap().lines().map(str::to_string).collect()
}

/// A line with everything that differs between runs (words holding a digit, hex words, long
/// words: keys, ids, nonces, amounts, ports, signatures) replaced by its kind: `<npub>` for a bech32 public key,
/// `<hex>` for hex digits (ids, Nostr keys, numbers), `<b58>` for the rest (Solana keys,
/// signatures). A key printed in another form than the walkthrough's does not match.
pub fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let hex = word.len() >= 4 && word.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
        // Digit-free keys and ids exist (a short hex part such as `beef`, a rare base58 key):
        // long words and hex-only words count as variable too (on both sides alike).
        if !(hex || word.len() >= 32 || word.chars().any(|c| c.is_ascii_digit())) {
            out.push_str(word);
        } else if word.starts_with("npub1") {
            out.push_str("<npub>");
        } else if word.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            out.push_str("<hex>");
        } else {
            out.push_str("<b58>");
        }
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The role of an output line: the word before its first `": "` when it is one of the
/// tutorials' roles (lines of one role keep their order, roles run concurrently). A
/// controller's lines about one station (`controller: station-2 ...`) are that station's role:
/// the controller serves its stations concurrently.
fn role(line: &str) -> String {
    match line.split_once(": ") {
        Some(("controller", rest)) if rest.starts_with("station-") => {
            let station: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            format!("controller/{station}")
        }
        Some((role, _))
            if ["chain", "machine", "user", "controller", "settlement"].contains(&role)
                || role.starts_with("user-") =>
        {
            role.to_string()
        }
        _ => String::new(),
    }
}

/// The output has exactly the walkthrough's lines, up to what differs between runs, in the
/// walkthrough's order within each role.
pub fn assert_matches_walkthrough(stdout: &str, md: &str, nth: usize) {
    let expected = walkthrough(md, nth);
    let mut roles: Vec<String> = expected.iter().map(|l| role(l)).chain(stdout.lines().map(role)).collect();
    roles.sort();
    roles.dedup();
    for r in roles {
        let want: Vec<String> = expected.iter().filter(|l| role(l) == r).map(|l| shape(l)).collect();
        let got: Vec<String> = stdout.lines().filter(|l| role(l) == r).map(shape).collect();
        assert_eq!(
            got, want,
            "the {r:?} lines differ from {md}'s \"What you see\" (words with digits as their kind)\noutput:\n{stdout}"
        );
    }
}

/// Runs the ES module `tests/support/<script>` with Node (`--experimental-websocket`) and `args`;
/// returns (success, stdout, stderr). ES modules ignore NODE_PATH, so the script runs as a copy
/// (with `once_closing_websocket.mjs`, which it imports) beside a `node_modules` of links:
/// `modules` are (name, path) pairs.
pub fn run_node_module(script: &str, modules: &[(&str, PathBuf)], args: &[&str]) -> (bool, String, String) {
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    let dir = tempfile::tempdir().unwrap();
    let node_modules = dir.path().join("node_modules");
    std::fs::create_dir(&node_modules).unwrap();
    for (name, path) in modules {
        std::os::unix::fs::symlink(path, node_modules.join(name)).unwrap();
    }
    for file in [script, "once_closing_websocket.mjs"] {
        std::fs::copy(support.join(file), dir.path().join(file)).unwrap();
    }
    let script = dir.path().join(script);
    let mut argv = vec!["--experimental-websocket", script.to_str().unwrap()];
    argv.extend_from_slice(args);
    run("node", &argv, dir.path())
}

/// Where nostr-tools is installed: scripts/test puts it into `target/npm-nostr-tools`.
pub fn nostr_tools_modules() -> PathBuf {
    npm_modules("nostr-tools", "npm-nostr-tools", "nostr-tools@2.25.2")
}

/// Where Anchor's npm install (with @noble/curves, @noble/hashes, bs58, @solana/web3.js) is:
/// scripts/test puts it into `target/npm-anchor`.
pub fn anchor_modules() -> PathBuf {
    npm_modules("@coral-xyz/anchor", "npm-anchor", "@coral-xyz/anchor@0.32.1")
}

fn npm_modules(package: &str, prefix: &str, spec: &str) -> PathBuf {
    let from_env = std::env::var("NODE_PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .find(|dir| dir.join(package).join("package.json").exists());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = from_env.unwrap_or_else(|| manifest.join("../target").join(prefix).join("node_modules"));
    assert!(
        dir.join(package).join("package.json").exists(),
        "{package} is not installed ({}); run scripts/test or `npm install --prefix target/{prefix} {spec}`",
        dir.display()
    );
    dir
}
