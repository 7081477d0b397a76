//! Shared harness for the integration tests: spawns the real `dephy-relay` binary on a free
//! 127.0.0.1 port, against a fresh SQLite file or a fresh PostgreSQL database, and talks to it
//! over raw WebSockets (tokio-tungstenite) and raw HTTP.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nostr::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Default receive timeout for one message.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the harness waits for `/health` to answer 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The custom kind DePHY devices use.
pub const DEPHY_KIND: u16 = 1573;

// ---------------------------------------------------------------------------------------------
// Backends and databases
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn case(backend: Backend)`:
/// `sqlite::<case>` and `postgres::<case>`.
#[allow(unused_macros)]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

pub fn pg_admin_url() -> String {
    std::env::var("DEPHY_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Replaces the database name of a postgres URL.
pub fn pg_url_with_db(admin: &str, db: &str) -> String {
    let (scheme, rest) = admin.split_once("://").expect("postgres URL has a scheme");
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    format!("{scheme}://{authority}/{db}{query}")
}

/// Drops the PostgreSQL test database when the last handle goes away.
pub struct PgGuard {
    pub name: String,
    pub admin_url: String,
}

impl Drop for PgGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = self.admin_url.clone();
        // Drop may run inside a tokio runtime: do the async work on a fresh runtime in a thread.
        let handle = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(_) => return,
            };
            rt.block_on(async move {
                use sqlx::Connection as _;
                let fut = async {
                    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.ok()?;
                    let _ = conn.close().await;
                    Some(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), fut).await;
            });
        });
        let _ = handle.join();
    }
}

/// A database (plus working directory) that one or more relay processes use.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub dir: Arc<tempfile::TempDir>,
    pub pg: Option<Arc<PgGuard>>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = Arc::new(tempfile::tempdir().expect("create tempdir"));
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("relay-test.db");
                TestDb { backend, url: format!("sqlite://{}", path.display()), dir, pg: None }
            }
            Backend::Postgres => {
                use sqlx::Connection as _;
                let admin = pg_admin_url();
                let mut conn =
                    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&admin)).await {
                        Ok(Ok(c)) => c,
                        Ok(Err(e)) => panic!(
                            "PostgreSQL is required for the postgres tests but is unreachable at {admin}: {e}. \
                         Start PostgreSQL on 127.0.0.1:5432 (user `postgres`, trust auth) or set \
                         DEPHY_TEST_PG_URL to an admin URL."
                        ),
                        Err(_) => panic!(
                            "PostgreSQL is required for the postgres tests but connecting to {admin} timed out. \
                         Start PostgreSQL on 127.0.0.1:5432 or set DEPHY_TEST_PG_URL."
                        ),
                    };
                let name = format!("dephy_test_{:016x}", rand::random::<u64>());
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin}: {e}"));
                let _ = conn.close().await;
                let guard = Arc::new(PgGuard { name: name.clone(), admin_url: admin.clone() });
                TestDb { backend, url: pg_url_with_db(&admin, &name), dir, pg: Some(guard) }
            }
        }
    }

    /// Runs `dephy-relay migrate --db URL` and asserts success.
    pub fn migrate(&self) {
        let out = Command::new(relay_bin())
            .arg("migrate")
            .arg("--db")
            .arg(&self.url)
            .current_dir(self.dir.path())
            .env_remove("DEPHY_RELAY_LISTEN")
            .env_remove("DEPHY_RELAY_DB")
            .output()
            .expect("run dephy-relay migrate");
        assert!(
            out.status.success(),
            "`dephy-relay migrate --db {}` failed: {:?}\nstderr:\n{}",
            self.url,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub fn relay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dephy-relay")
}

/// Starts `dephy-relay serve` with `config` as its config file and expects it to refuse to
/// start before it creates the database; returns what it printed on stderr.
pub fn serve_refuses_config(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(relay_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(format!("sqlite://{}", dir.path().join("r.db").display()))
        .current_dir(dir.path())
        .env_remove("DEPHY_RELAY_LISTEN")
        .env_remove("DEPHY_RELAY_DB")
        .output()
        .expect("run dephy-relay");
    assert!(!out.status.success(), "the relay started with {config:?}");
    assert!(!dir.path().join("r.db").exists(), "nothing is created before the config is checked");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port for a server a test starts. Taken below the kernel's ephemeral range, so that no
/// outgoing connection (of this or another test) can grab it between this check and the
/// server's own bind, as a port from `bind(0)` could; each process scans its own slice of that
/// range, and a port is handed out once, only when TCP and UDP (QUIC) are both free on it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const SLICE: u32 = 400;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let slices = ephemeral_low.saturating_sub(10_000) / SLICE;
    if slices == 0 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        return l.local_addr().unwrap().port();
    }
    let base = ephemeral_low - (1 + std::process::id() % slices) * SLICE;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SLICE, "no free port left among {SLICE} from {base}");
        let port = (base + n) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Relay process
// ---------------------------------------------------------------------------------------------

/// A running `dephy-relay serve` process; killed (SIGKILL) on drop.
pub struct Relay {
    pub child: Option<Child>,
    pub port: u16,
    pub db_url: String,
    pub workdir: PathBuf,
    pub log_path: PathBuf,
    pub config: String,
    // Keeps the database / tempdir alive while the process runs.
    _dir: Arc<tempfile::TempDir>,
    _pg: Option<Arc<PgGuard>>,
}

impl Relay {
    /// Fresh database + relay with the given config TOML (may be empty).
    pub async fn start(backend: Backend, config: &str) -> (TestDb, Relay) {
        let db = TestDb::new(backend).await;
        let relay = Relay::spawn(&db, "r0", config).await;
        (db, relay)
    }

    /// Spawns a relay on `db`, with its own working directory `db.dir/<name>`.
    pub async fn spawn(db: &TestDb, name: &str, config: &str) -> Relay {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            match Relay::spawn_on_port(db, name, config, port).await {
                Ok(r) => return r,
                Err(e) => last_err = e,
            }
        }
        panic!("relay did not become ready: {last_err}");
    }

    pub async fn spawn_on_port(db: &TestDb, name: &str, config: &str, port: u16) -> Result<Relay, String> {
        let args = vec!["--listen".to_string(), format!("127.0.0.1:{port}"), "--db".to_string(), db.url.clone()];
        Relay::spawn_custom(db, name, config, port, &args, &[]).await
    }

    /// Spawns `dephy-relay serve --config <file> <args>` with extra environment variables; waits
    /// for `/health` on `port` (which must be where the args/env/config make it listen).
    pub async fn spawn_custom(
        db: &TestDb,
        name: &str,
        config: &str,
        port: u16,
        args: &[String],
        envs: &[(&str, String)],
    ) -> Result<Relay, String> {
        let workdir = db.dir.path().join(name);
        std::fs::create_dir_all(&workdir).expect("create relay workdir");
        let config_path = workdir.join("relay.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log_path = workdir.join(format!("relay-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("create relay log");
        let child = Command::new(relay_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .current_dir(&workdir)
            .env_remove("DEPHY_RELAY_LISTEN")
            .env_remove("DEPHY_RELAY_DB")
            .env_remove("DEPHY_RELAY_CONFIG")
            .envs(envs.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .env("RUST_LOG", std::env::var("DEPHY_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn dephy-relay");
        let mut relay = Relay {
            child: Some(child),
            port,
            db_url: db.url.clone(),
            workdir,
            log_path,
            config: config.to_string(),
            _dir: db.dir.clone(),
            _pg: db.pg.clone(),
        };
        match relay.wait_ready(READY_TIMEOUT).await {
            Ok(()) => Ok(relay),
            Err(e) => {
                let log = relay.log_tail(60);
                relay.kill();
                Err(format!("{e}\n--- relay log ---\n{log}"))
            }
        }
    }

    /// Polls `GET /health` until 200 (bounded), failing early if the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("relay exited before ready: {status}"));
            }
            if let Ok(Ok(resp)) =
                tokio::time::timeout(Duration::from_secs(2), http_get(self.port, "/health", &[])).await
                && resp.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("/health not 200 within {timeout:?} on port {}", self.port));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("relay running").id()
    }

    pub async fn connect(&self) -> Conn {
        Conn::connect(self.port).await
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.pid();
        let st = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("run kill");
        assert!(st.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("relay running");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Spawns the relay again on the same database, working directory (key file) and config,
    /// on a new port. The previous process must be gone.
    pub async fn restart(&mut self, db: &TestDb) {
        self.kill();
        let name = self.workdir.file_name().unwrap().to_string_lossy().to_string();
        let config = self.config.clone();
        let new = Relay::spawn(db, &name, &config).await;
        *self = new;
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        let all: Vec<&str> = s.lines().collect();
        let start = all.len().saturating_sub(lines);
        all[start..].join("\n")
    }

    pub async fn nip11(&self) -> HttpResponse {
        http_get(self.port, "/", &[("Accept", "application/nostr+json")]).await.expect("GET / nip11")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- relay (port {}) log tail, {} ---\n{}",
                self.port,
                self.log_path.display(),
                self.log_tail(40)
            );
        }
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

pub async fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "http read timeout"))??;
    parse_http_response(&buf).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad HTTP response"))
}

fn parse_http_response(buf: &[u8]) -> Option<HttpResponse> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..split]).ok()?;
    let mut body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let pos = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_str = std::str::from_utf8(&rest[..pos]).ok()?;
            let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[pos + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                return None;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size..];
            if rest.starts_with(b"\r\n") {
                rest = &rest[2..];
            }
        }
        body = out;
    }
    Some(HttpResponse { status, headers, body })
}

// ---------------------------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------------------------

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw Nostr client connection. The AUTH challenge the relay sends is captured (never returned
/// by `recv_json`). Messages skipped while waiting for a specific reply are buffered in order.
pub struct Conn {
    pub ws: Ws,
    pub port: u16,
    pub challenge: Option<String>,
    pending: VecDeque<Value>,
    pub closed: bool,
    /// How long `recv_json` / `recv_matching` wait (default `RECV_TIMEOUT`).
    pub timeout: Duration,
}

/// Outcome of a REQ.
#[derive(Debug)]
pub struct ReqResult {
    pub events: Vec<Value>,
    /// `Some(message)` if the relay answered `CLOSED` instead of `EOSE`.
    pub closed: Option<String>,
}

impl Conn {
    pub async fn connect(port: u16) -> Conn {
        Conn::try_connect(port).await.unwrap_or_else(|e| panic!("websocket connect to port {port}: {e}"))
    }

    pub async fn try_connect(port: u16) -> Result<Conn, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://127.0.0.1:{port}/");
        let (ws, _resp) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| {
            tokio_tungstenite::tungstenite::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timeout",
            ))
        })??;
        Ok(Conn::from_ws(ws, port).await)
    }

    /// Wraps an established WebSocket; waits (bounded) for the AUTH challenge.
    pub async fn from_ws(ws: Ws, port: u16) -> Conn {
        let mut c = Conn { ws, port, challenge: None, pending: VecDeque::new(), closed: false, timeout: RECV_TIMEOUT };
        // The relay sends ["AUTH", challenge] right away; capture it (bounded wait).
        if let Some(v) = c.recv_raw(Duration::from_secs(3)).await
            && !c.capture_auth(&v)
        {
            c.pending.push_back(v);
        }
        c
    }

    fn capture_auth(&mut self, v: &Value) -> bool {
        if v.get(0).and_then(Value::as_str) == Some("AUTH")
            && let Some(ch) = v.get(1).and_then(Value::as_str)
        {
            self.challenge = Some(ch.to_string());
            return true;
        }
        false
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        self.ws.send(Message::text(text)).await.expect("websocket send");
    }

    pub async fn try_send_text(
        &mut self,
        text: impl Into<String>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let text: String = text.into();
        self.ws.send(Message::text(text)).await
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(v.to_string()).await
    }

    /// Next JSON message from the socket (not the pending buffer). `None` on timeout or close.
    async fn recv_raw(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => {
                    self.closed = true;
                    return None;
                }
                Ok(Some(Err(_))) => {
                    self.closed = true;
                    return None;
                }
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("relay sent non-JSON text ({e}): {t}"));
                    return Some(v);
                }
                Message::Binary(_) => panic!("relay sent a binary frame"),
                Message::Close(_) => {
                    self.closed = true;
                    return None;
                }
                _ => continue, // ping/pong/frame
            }
        }
    }

    /// Next message (AUTH challenges are captured and skipped), or `None` on timeout/close.
    pub async fn try_recv(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.recv_raw(left).await?;
            if self.capture_auth(&v) {
                continue;
            }
            return Some(v);
        }
    }

    /// Next message; panics after `RECV_TIMEOUT`.
    pub async fn recv_json(&mut self) -> Value {
        match self.try_recv(self.timeout).await {
            Some(v) => v,
            None if self.closed => panic!("connection closed while waiting for a message"),
            None => panic!("no message from relay within {:?}", self.timeout),
        }
    }

    /// Waits for the first message satisfying `pred`, buffering the others (in order).
    pub async fn recv_matching(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut skipped = Vec::new();
        // Look into the pending buffer first.
        if let Some(pos) = self.pending.iter().position(&pred) {
            return self.pending.remove(pos).unwrap();
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_raw(left).await {
                Some(v) => {
                    if self.capture_auth(&v) {
                        continue;
                    }
                    if pred(&v) {
                        self.pending.extend(skipped);
                        return v;
                    }
                    skipped.push(v);
                }
                None => panic!(
                    "waiting for {what}: {} (skipped: {skipped:?})",
                    if self.closed { "connection closed" } else { "timed out" }
                ),
            }
        }
    }

    /// Asserts that nothing (other than AUTH) arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Some(v) = self.try_recv(d).await {
            panic!("expected no message, got {v}");
        }
    }

    // ---- EVENT ----

    /// Sends an event and returns the `OK` message for it.
    pub async fn publish_raw(&mut self, event: &Value) -> Value {
        let id = event.get("id").and_then(Value::as_str).unwrap_or("").to_string();
        self.send_json(&json!(["EVENT", event])).await;
        let id2 = id.clone();
        let ok = self
            .recv_matching(&format!("OK for {id}"), move |v| {
                v.get(0).and_then(Value::as_str) == Some("OK") && v.get(1).and_then(Value::as_str) == Some(&id2)
            })
            .await;
        assert_eq!(ok.as_array().map(|a| a.len()), Some(4), "OK message has 4 elements: {ok}");
        assert!(ok[2].is_boolean(), "OK[2] is a boolean: {ok}");
        assert!(ok[3].is_string(), "OK[3] is a string: {ok}");
        ok
    }

    /// Sends an event; returns (accepted, message).
    pub async fn publish(&mut self, event: &Event) -> (bool, String) {
        let ok = self.publish_raw(&ev_json(event)).await;
        (ok[2].as_bool().unwrap(), ok[3].as_str().unwrap().to_string())
    }

    /// Sends all events pipelined and returns their OK replies (accepted, message) in order;
    /// replies for an id sent twice are taken in arrival order.
    pub async fn publish_pipelined<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) -> Vec<(bool, String)> {
        let events: Vec<&Event> = events.into_iter().collect();
        for e in &events {
            self.send_json(&json!(["EVENT", ev_json(e)])).await;
        }
        let mut out = Vec::new();
        for e in &events {
            let id = e.id.to_hex();
            let v = self.recv_matching(&format!("OK {id}"), |v| v[0] == "OK" && v[1] == json!(id)).await;
            out.push((v[2].as_bool().unwrap(), v[3].as_str().unwrap().to_string()));
        }
        out
    }

    /// Sends an event and asserts `["OK", id, true, ""]`.
    pub async fn publish_ok(&mut self, event: &Event) {
        let (ok, msg) = self.publish(event).await;
        assert!(ok && msg.is_empty(), "expected [OK, {}, true, \"\"], got ({ok}, {msg:?})", event.id);
    }

    /// Sends an event and asserts it is refused with a message starting with `prefix`.
    pub async fn publish_refused(&mut self, event: &Event, prefix: &str) -> String {
        let (ok, msg) = self.publish(event).await;
        assert!(!ok, "expected event {} to be refused with `{prefix}`, it was accepted ({msg:?})", event.id);
        assert!(msg.starts_with(prefix), "expected refusal prefix `{prefix}`, got {msg:?}");
        msg
    }

    // ---- REQ / COUNT / CLOSE ----

    /// Sends a REQ and collects events until EOSE (or CLOSED).
    pub async fn req_result(&mut self, sub: &str, filters: &[Value]) -> ReqResult {
        let mut msg = vec![json!("REQ"), json!(sub)];
        msg.extend(filters.iter().cloned());
        self.send_json(&Value::Array(msg)).await;
        self.collect_until_eose(sub).await
    }

    /// Collects `EVENT`s for `sub` until `EOSE`/`CLOSED` for `sub`; other messages are buffered.
    pub async fn collect_until_eose(&mut self, sub: &str) -> ReqResult {
        let mut events = Vec::new();
        loop {
            let s = sub.to_string();
            let v = self
                .recv_matching(&format!("EVENT/EOSE/CLOSED for {sub}"), move |v| {
                    matches!(v.get(0).and_then(Value::as_str), Some("EVENT" | "EOSE" | "CLOSED"))
                        && v.get(1).and_then(Value::as_str) == Some(&s)
                })
                .await;
            match v[0].as_str().unwrap() {
                "EVENT" => events.push(v[2].clone()),
                "EOSE" => return ReqResult { events, closed: None },
                "CLOSED" => {
                    return ReqResult {
                        events,
                        closed: Some(v.get(2).and_then(Value::as_str).unwrap_or("").to_string()),
                    };
                }
                _ => unreachable!(),
            }
        }
    }

    /// REQ that must end with EOSE; returns the stored events in the order received.
    pub async fn req(&mut self, sub: &str, filters: &[Value]) -> Vec<Value> {
        let r = self.req_result(sub, filters).await;
        if let Some(m) = r.closed {
            panic!("REQ {sub} {filters:?} was CLOSED: {m:?}");
        }
        r.events
    }

    /// REQ returning only the event ids, in order.
    pub async fn req_ids(&mut self, sub: &str, filters: &[Value]) -> Vec<String> {
        ids_of(&self.req(sub, filters).await)
    }

    /// REQ that must be answered by CLOSED; returns the message.
    pub async fn req_closed(&mut self, sub: &str, filters: &[Value]) -> String {
        let r = self.req_result(sub, filters).await;
        match r.closed {
            Some(m) => m,
            None => panic!("expected CLOSED for REQ {sub} {filters:?}, got EOSE after {} events", r.events.len()),
        }
    }

    pub async fn close_sub(&mut self, sub: &str) {
        self.send_json(&json!(["CLOSE", sub])).await;
    }

    /// Sends a COUNT; returns Ok(count) or Err(CLOSED message).
    pub async fn count_result(&mut self, sub: &str, filters: &[Value]) -> Result<u64, String> {
        let mut msg = vec![json!("COUNT"), json!(sub)];
        msg.extend(filters.iter().cloned());
        self.send_json(&Value::Array(msg)).await;
        let s = sub.to_string();
        let v = self
            .recv_matching(&format!("COUNT/CLOSED for {sub}"), move |v| {
                matches!(v.get(0).and_then(Value::as_str), Some("COUNT" | "CLOSED"))
                    && v.get(1).and_then(Value::as_str) == Some(&s)
            })
            .await;
        if v[0] == "COUNT" {
            let n = v[2]
                .get("count")
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("COUNT reply without numeric count: {v}"));
            Ok(n)
        } else {
            Err(v.get(2).and_then(Value::as_str).unwrap_or("").to_string())
        }
    }

    pub async fn count(&mut self, sub: &str, filters: &[Value]) -> u64 {
        match self.count_result(sub, filters).await {
            Ok(n) => n,
            Err(m) => panic!("COUNT {sub} {filters:?} was CLOSED: {m:?}"),
        }
    }

    /// Waits for the next live `EVENT` on `sub` (other messages are buffered).
    pub async fn next_event(&mut self, sub: &str) -> Value {
        let s = sub.to_string();
        let v = self
            .recv_matching(&format!("live EVENT on {sub}"), move |v| {
                v.get(0).and_then(Value::as_str) == Some("EVENT") && v.get(1).and_then(Value::as_str) == Some(&s)
            })
            .await;
        v[2].clone()
    }

    /// Takes all buffered + immediately arriving messages within `d`.
    pub async fn drain(&mut self, d: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_recv(left).await {
                Some(v) => out.push(v),
                None => return out,
            }
        }
    }

    // ---- NIP-42 ----

    pub async fn wait_challenge(&mut self) -> String {
        if let Some(c) = &self.challenge {
            return c.clone();
        }
        let deadline = Instant::now() + RECV_TIMEOUT;
        while self.challenge.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_raw(left).await {
                Some(v) => {
                    if !self.capture_auth(&v) {
                        self.pending.push_back(v);
                    }
                }
                None => panic!("no AUTH challenge received"),
            }
        }
        self.challenge.clone().unwrap()
    }

    /// Sends an AUTH event built with the given relay URL and challenge; returns (ok, message).
    pub async fn auth_with(&mut self, keys: &Keys, relay_url: &str, challenge: &str) -> (bool, String) {
        let ev = EventBuilder::new(Kind::from(22242u16), "")
            .tags([Tag::parse(["relay", relay_url]).unwrap(), Tag::parse(["challenge", challenge]).unwrap()])
            .sign_with_keys(keys)
            .unwrap();
        self.send_json(&json!(["AUTH", ev_json(&ev)])).await;
        let id = ev.id.to_hex();
        let ok = self
            .recv_matching(&format!("OK for AUTH {id}"), move |v| {
                v.get(0).and_then(Value::as_str) == Some("OK") && v.get(1).and_then(Value::as_str) == Some(&id)
            })
            .await;
        (ok[2].as_bool().expect("OK[2] bool"), ok[3].as_str().unwrap_or("").to_string())
    }

    /// Authenticates as `keys` (asserts success).
    pub async fn auth(&mut self, keys: &Keys) {
        let challenge = self.wait_challenge().await;
        let url = format!("ws://127.0.0.1:{}", self.port);
        let (ok, msg) = self.auth_with(keys, &url, &challenge).await;
        assert!(ok, "AUTH as {} refused: {msg:?}", keys.public_key());
    }
}

/// Opens a WebSocket with a tiny receive buffer so the relay's writes back up quickly.
pub async fn slow_conn(port: u16) -> Conn {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/"), MaybeTlsStream::Plain(stream))
        .await
        .expect("slow client handshake");
    Conn::from_ws(ws, port).await
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

pub fn now() -> u64 {
    Timestamp::now().as_secs()
}

pub fn tags_of(tags: &[&[&str]]) -> Vec<Tag> {
    tags.iter().map(|t| Tag::parse(t.iter().copied()).expect("valid tag")).collect()
}

/// Signs an event. `created_at` defaults to now.
pub fn sign(keys: &Keys, kind: u16, content: &str, tags: &[&[&str]], created_at: Option<u64>) -> Event {
    let mut b = EventBuilder::new(Kind::from(kind), content).tags(tags_of(tags)).allow_self_tagging();
    if let Some(ts) = created_at {
        b = b.custom_created_at(Timestamp::from_secs(ts));
    }
    b.sign_with_keys(keys).expect("sign event")
}

/// Kind-1573 event with the given tags at `created_at`.
pub fn dephy(keys: &Keys, content: &str, tags: &[&[&str]], created_at: u64) -> Event {
    sign(keys, DEPHY_KIND, content, tags, Some(created_at))
}

pub fn ev_json(e: &Event) -> Value {
    serde_json::to_value(e).expect("serialize event")
}

pub fn ids_of(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["id"].as_str().expect("event has id").to_string()).collect()
}

pub fn hex_ids(events: &[&Event]) -> Vec<String> {
    events.iter().map(|e| e.id.to_hex()).collect()
}

/// Sorts events the way a REQ must return them: created_at desc, then id asc.
pub fn expected_order(events: &[&Event]) -> Vec<String> {
    let mut v: Vec<&Event> = events.to_vec();
    v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.to_hex().cmp(&b.id.to_hex())));
    hex_ids(&v)
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Asserts that a returned event JSON is exactly `e` (all NIP-01 fields).
pub fn assert_same_event(got: &Value, e: &Event) {
    let want = ev_json(e);
    for k in ["id", "pubkey", "created_at", "kind", "tags", "content", "sig"] {
        assert_eq!(got[k], want[k], "field {k} of returned event differs");
    }
}

pub fn pk(keys: &Keys) -> String {
    keys.public_key().to_hex()
}

/// Polls `f` until it returns true (bounded); returns whether it did.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
