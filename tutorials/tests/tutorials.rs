//! Runs the tutorial binaries exactly as the markdown walkthroughs do, against the real relay
//! (started in-process once for this test binary) and, for the paid machines, a real offline
//! surfpool started by `tutorials/support/surfpool.js`, with DePHY's balance-payment accounts
//! written into it. Each run's output is compared line by line with its walkthrough's "What you
//! see" block (per role, up to keys, ids and numbers), and with what the relay stored. Node.js
//! runs the TypeScript hello world (`hello-world-ts/`) and an independent check of the payment
//! authorizations against DePHY's namespace table (`tests/support/verify_namespaces.mjs`); the
//! surfpool helper is also checked to keep the node answering past slot 1100, to stay up on a
//! terminal and to start again when the port surfpool picked was taken before it could bind it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Service, Surfpool, assert_matches_walkthrough, in_order, node_path, nostr_tools_modules, relay_url, rpc_call, run,
    run_node_module,
};

/// The entries a tutorial run left in its working directory besides the test's own.
fn left_behind(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "surfpool-rpc-url")
        .collect();
    names.sort();
    names
}

#[test]
fn hello_world() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_url();
    let bin = env!("CARGO_BIN_EXE_hello-world");
    let (ok, stdout, stderr) = run(bin, &["--relay", &relay], dir.path());
    assert!(ok, "hello-world failed:\n{stdout}\n{stderr}");
    assert_matches_walkthrough(&stdout, "hello-world.md", 0);
    in_order(&stdout, &["content: {\"Status\":{\"status\":\"Available\"", "hello world: OK"], &stdout);
    // The key was created with its .pub beside it, under target/tutorials/ as the tutorial says.
    let key_file: PathBuf = dir.path().join("target/tutorials/hello-world/device.key");
    assert!(key_file.exists() && dir.path().join("target/tutorials/hello-world/device.key.pub").exists());
    assert_eq!(left_behind(dir.path()), ["target"], "state only under target/");
    // A second run reuses the key and receives only its own new event.
    let (ok, again, stderr) = run(bin, &["--relay", &relay], dir.path());
    assert!(ok, "second run failed:\n{again}\n{stderr}");
    let first_key = stdout.lines().next().unwrap();
    assert_eq!(again.lines().next().unwrap(), first_key, "the same device key");

    // A relay that is not there: it keeps retrying (it must still be trying, not crashed).
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
    assert_matches_walkthrough(&stdout, "decharge.md", 0);
    in_order(
        &stdout,
        &[
            "chain: namespace 0 \"DeCharge\" of program 8Pna6CZRquk83XT6ecisT9TYVfN3hY299GH2yEJk73dL",
            "namespace 0 \"DeCharge\", 1000000 of 10000000 lamports available)",
        ],
        &stdout,
    );
    // The nonce signed is the one seeded on chain, and the machine found it equal.
    let seeded =
        stdout.lines().find_map(|l| l.strip_prefix("user: on-chain nonce ")).unwrap().split(',').next().unwrap();
    assert!(stdout.contains(&format!(", nonce {seeded} = on-chain nonce,")), "{stdout}");
    assert!(stdout.contains("user: machine is Working (Status payload = my Request's payload)"), "{stdout}");
    assert!(
        stdout
            .contains("user: machine is Available again, reason UserBehaviour (Status payload = my Request's payload)"),
        "{stdout}"
    );
    assert_eq!(left_behind(dir.path()), ["target"], "state only under target/");
    assert!(dir.path().join("target/tutorials/decharge/machine.key").exists());
    // Run again, as a newcomer would: the same station recovers its state, a new user pays.
    let (ok, again, stderr) =
        run(env!("CARGO_BIN_EXE_decharge"), &["--relay", &relay, "--rpc", &surfpool.rpc_url], dir.path());
    assert!(ok, "the second decharge run failed:\n{again}\n{stderr}");
    let recovered = "machine: decharge recovered state Available from the relay";
    assert_eq!(again.lines().filter(|l| *l == recovered).count(), 1, "{again}");
    let rest: Vec<&str> = again.lines().filter(|l| *l != recovered).collect();
    assert_matches_walkthrough(&rest.join("\n"), "decharge.md", 0);
    assert_eq!(stdout.lines().nth(1), again.lines().nth(1), "the same station key");
    // DePHY's DeCharge namespace: id 0, name "DeCharge" in the signed text (independent check).
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
    assert_matches_walkthrough(&stdout, "gacha.md", 0);
    in_order(&stdout, &["namespace 1 \"Gacha\", 5000000 of 50000000 lamports available)", "was already used"], &stdout);
    assert!(stdout.contains("user: refused as expected"), "{stdout}");
    // DePHY's Gacha namespace: id 1, name "Gacha" (case-sensitive) in the signed text.
    let checked = verify_namespaces(&relay, "dephy-gacha-controller");
    assert!(checked.contains(r#"namespace 1 "Gacha": signature ok"#), "{checked}");
}

/// One controller key, three stations: two serve a user each; station-3 is added and station-1
/// removed at runtime; user-1's later request to station-1 is not received by the controller.
#[test]
fn controller() {
    let dir = tempfile::tempdir().unwrap();
    let surfpool = Surfpool::start(dir.path());
    let relay = relay_url();
    let (ok, stdout, stderr) =
        run(env!("CARGO_BIN_EXE_controller"), &["--relay", &relay, "--rpc", &surfpool.rpc_url], dir.path());
    assert!(ok, "controller failed:\n{stdout}\n{stderr}");
    assert_matches_walkthrough(&stdout, "controller.md", 0);
    let orphan = stdout
        .lines()
        .find_map(|l| l.strip_prefix("user-1: no answer from station-1 for "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    // The controller handles requests in the relay's order: had the request to the removed
    // station reached it (it was sent before user-3's), it would have printed it before
    // station-3 went Working.
    assert!(!stdout.lines().any(|l| l.starts_with("controller:") && l.contains(orphan)), "{stdout}");
    // Every Status was signed by the controller key and named its station in p.
    let controller_line = stdout.lines().find(|l| l.starts_with("controller: key ")).unwrap();
    assert!(controller_line.contains("(target/tutorials/controller/controller.key)"), "{controller_line}");
    assert_eq!(left_behind(dir.path()), ["target"], "state only under target/");
}

/// The settlement service against real surfpool, where DePHY's program is not deployed: the
/// lock transaction is built, signed and submitted, the node's refusal reported as it gives
/// it, and the machine told LockFailed (a Request signed by the settlement key), which stops it.
#[test]
fn settlement_reports_the_refused_lock() {
    let dir = tempfile::tempdir().unwrap();
    let surfpool = Surfpool::start(dir.path());
    let relay = relay_url();
    // The relay is shared with the other tests, whose DeCharge stations publish Status events in
    // the same session: the service acts only on this test's station (its key made beforehand,
    // where decharge keeps it), or its output would depend on their timing.
    let station =
        dephy_device_sdk::keys::load_or_create(&dir.path().join("target/tutorials/decharge/machine.key")).unwrap();
    let station = station.public_key().to_hex();
    let mut service = Service::start(
        env!("CARGO_BIN_EXE_settlement"),
        &["--relay", &relay, "--rpc", &surfpool.rpc_url, "--controller", &station],
        dir.path(),
    );
    service.wait_for("settlement: watching Status events of session dephy-decharge-controller");
    let key_file = dir.path().join("target/tutorials/settlement/settlement.key.pub");
    let settlement_key = std::fs::read_to_string(&key_file).unwrap().trim().to_string();
    let (ok, stdout, stderr) = run(
        env!("CARGO_BIN_EXE_decharge"),
        &["--relay", &relay, "--rpc", &surfpool.rpc_url, "--settlement", &settlement_key, "--work-ms", "60000"],
        dir.path(),
    );
    assert!(ok, "decharge failed:\n{stdout}\n{stderr}");
    service.wait_for("settlement: sent Request Available/LockFailed");
    assert_matches_walkthrough(&service.output(), "settlement.md", 0);
    assert_matches_walkthrough(&stdout, "settlement.md", 1);
    // The node's own words for the missing program, reported as it gave them.
    let refused = service.seen.iter().find(|l| l.contains(": lock: ")).unwrap();
    assert!(
        refused.ends_with(
            ": lock: RPC response error -32002: Transaction simulation failed: This program may not be used for executing instructions"
        ),
        "{refused}"
    );
    assert!(stdout.contains("user: machine is Available again, reason LockFailed"), "{stdout}");
    // Both terminals of one run (shown with --nocapture; the walkthrough's samples come from such a run).
    println!("terminal 3:\n{}\nterminal 4:\n{stdout}", service.output());
    assert_eq!(left_behind(dir.path()), ["target"], "state only under target/");
}

/// Runs `tests/support/verify_namespaces.mjs` (an independent Node.js check of the payment
/// authorizations of `session`'s Requests on the relay, by DePHY's namespace table); its stdout.
fn verify_namespaces(relay: &str, session: &str) -> String {
    // nostr-tools' install holds its @noble and @scure dependencies too.
    let modules = ["nostr-tools", "@noble", "@scure"].map(|package| (package, nostr_tools_modules().join(package)));
    let (ok, stdout, stderr) = run_node_module("verify_namespaces.mjs", &modules, &[relay, session]);
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
    assert_matches_walkthrough(&stdout, "decharge.md", 0);
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

/// A start whose port another process took between the runtime's pick and its bind (made to
/// happen here: an LD_PRELOAD shim, `tests/support/refuse_first_bind.c`, refuses the first bind
/// once) hangs inside surfpool 1.5.0; the helper gives that attempt up, starts the node again on a
/// new port and says so, and the node it reports answers.
#[test]
fn surfpool_helper_retries_a_start_that_lost_its_port() {
    use std::io::{BufRead as _, Read as _};
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("refuse_first_bind.so");
    let source = manifest.join("tests/support/refuse_first_bind.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (set CC) to build the bind shim: {e}"));
    assert!(status.success(), "{cc} could not build {}", source.display());
    let marker = dir.path().join("refuse-next-bind");
    std::fs::write(&marker, b"").unwrap();
    let url_file = dir.path().join("surfpool-rpc-url");
    let mut helper = Command::new("node")
        .arg(manifest.join("support/surfpool.js"))
        .arg(&url_file)
        .env("NODE_PATH", node_path())
        .env("LD_PRELOAD", &shim)
        .env("REFUSE_BIND_ONCE", &marker)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = helper.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    // One attempt is given 7 s; the retry starts in well under a second.
    let line = rx.recv_timeout(Duration::from_secs(60));
    let stop_and_read_stderr = |mut helper: std::process::Child| {
        drop(helper.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while helper.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = helper.kill();
                panic!("surfpool.js did not stop within 20 s of its stdin closing");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut stderr = String::new();
        helper.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        stderr
    };
    let Ok(line) = line else {
        let stderr = stop_and_read_stderr(helper);
        panic!("surfpool.js printed no URL within 60 s; stderr:\n{stderr}");
    };
    assert!(!marker.exists(), "the shim never refused a bind, so nothing was retried");
    let parsed: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let url = parsed["rpcUrl"].as_str().expect("rpcUrl").to_string();
    let answer = rpc_call(&url, "getSlot", Duration::from_secs(10));
    let stderr = stop_and_read_stderr(helper);
    answer.unwrap_or_else(|e| panic!("the node does not answer getSlot: {e}\n{stderr}"));
    assert!(stderr.contains("already in use"), "the first attempt did not lose its port: {stderr}");
    assert!(stderr.contains("started on attempt 2"), "the helper did not say it retried: {stderr}");
    assert!(!url_file.exists(), "surfpool.js left its URL file behind");
}

/// Started from a terminal (stdin a TTY, here through util-linux `script`), the helper stays up
/// until it is told to stop, and removes its URL file when its terminal goes away (SIGHUP).
#[test]
fn surfpool_helper_stays_up_on_a_terminal() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("support/surfpool.js");
    let node_path = node_path();
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
