//! Test harness: the real relay (`dephy_relay::server::serve`) started in-process once per test
//! binary on a free 127.0.0.1 port with a temporary SQLite file (it installs a global metrics
//! recorder, so there is one per binary), and a TCP proxy in front of it that a test can take
//! down and bring back to cut connections.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use dephy_device_sdk::{Client, ClientConfig, Received};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bound for every wait in the tests.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The in-process relay's port.
pub fn relay_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let mut cfg = dephy_relay::config::Config {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            db: format!("sqlite://{}", dir.join("relay.db").display()),
            key_file: dir.join("relay.key"),
            ..Default::default()
        };
        cfg.log.checkpoint_interval_secs = 1;
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            if let Err(e) = rt.block_on(dephy_relay::server::serve(cfg)) {
                panic!("the in-process relay stopped: {e:#}");
            }
        });
        let deadline = Instant::now() + TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the in-process relay did not listen on {port} within {TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        port
    })
}

pub fn relay_url() -> String {
    format!("ws://127.0.0.1:{}", relay_port())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A TCP proxy on its own port in front of the relay.
pub struct Proxy {
    pub port: u16,
    accept: Mutex<Option<JoinHandle<()>>>,
    conns: std::sync::Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn new() -> Proxy {
        let proxy = Proxy { port: free_port(), accept: Mutex::new(None), conns: Default::default() };
        proxy.up().await;
        proxy
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Starts accepting and forwarding connections.
    pub async fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("rebind the proxy port");
        let target = relay_port();
        let conns = self.conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(conn);
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    /// Stops listening and cuts every forwarded connection.
    pub async fn down(&self) {
        let accepting = self.accept.lock().unwrap().take();
        if let Some(task) = accepting {
            task.abort();
            let _ = task.await;
        }
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Receives exactly `n` events, then checks that nothing more arrives within `quiet`.
pub async fn recv_exactly(client: &mut Client, n: usize, quiet: Duration) -> Vec<Received> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.recv_timeout(left).await {
            Some(r) => got.push(r),
            None => panic!("received {} of {n} events within {TIMEOUT:?}", got.len()),
        }
    }
    if let Some(extra) = client.recv_timeout(quiet).await {
        panic!("an extra event arrived after the expected {n}: {:?}", extra.event);
    }
    got
}

/// A client of `url` subscribed with `filters`, state in `dir`, waiting for the subscription.
pub async fn subscriber(url: &str, dir: &std::path::Path, filters: Vec<nostr::Filter>) -> Client {
    let mut config = ClientConfig::new([url], dir).subscribe(filters);
    config.backoff_max = Duration::from_millis(500);
    config.ack_timeout = Duration::from_secs(2);
    let client = Client::start(config).expect("start the client");
    client.wait_subscribed(TIMEOUT).await.expect("subscription established");
    client
}

pub use dephy_device_sdk::nostr;
