//! Runs one of the independent JavaScript implementations in `tests/support/` with Node.js:
//! a JSON request on stdin, a JSON answer on stdout. The npm package comes from its own prefix
//! under `target/` (installed by `scripts/test`), ahead of any `NODE_PATH` already set.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// `node tests/support/<script>` with `target/<npm_dir>/node_modules` on `NODE_PATH`; `package`
/// (e.g. `tweetnacl@1.0.3`) names what must be installed there, for the error message.
pub fn run_json(script: &str, npm_dir: &str, package: &str, request: &Value) -> Value {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("tests/support").join(script);
    let default_path = manifest.join("../target").join(npm_dir).join("node_modules");
    let node_path = match std::env::var("NODE_PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", default_path.display()),
        _ => default_path.display().to_string(),
    };
    let mut child = Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &node_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node {}` (is Node.js >= 18 installed?): {e}", script.display()));
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{} failed ({:?}); is {package} under {node_path}?", script.display(), out.status);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{} did not print JSON: {e}", script.display()))
}
