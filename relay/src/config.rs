//! Relay configuration: a TOML file, overridden by environment variables, overridden by flags.
//!
//! Every field has a default, so an empty (or absent) file is a valid configuration. The
//! precedence (flag > env > file > default) is applied in `cli.rs`; this file only describes
//! the shape and the defaults, and loads the file with errors that name the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Default database: an embedded SQLite file, its directory created on first run.
pub const DEFAULT_DB: &str = "sqlite://data/relay.db";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP/WebSocket server binds.
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://...`.
    pub db: String,
    /// The relay's own Nostr secret key (hex), generated on first run if absent.
    pub key_file: PathBuf,
    /// Public URL of this relay, checked in NIP-42 AUTH events (`relay` tag; when unset, any
    /// URL whose host matches the Host header of the connection is accepted there) and in
    /// NIP-62 requests to vanish (when unset, only `ALL_RELAYS` applies here).
    pub relay_url: Option<String>,
    pub info: InfoConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub anchor: AnchorConfig,
    /// Federation with other relays (`bridge/`); off unless the section is present.
    pub bridge: Option<dephy_bridge::BridgeConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            db: DEFAULT_DB.to_string(),
            key_file: PathBuf::from("data/relay.key"),
            relay_url: None,
            info: InfoConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            anchor: AnchorConfig::default(),
            bridge: None,
        }
    }
}

/// Fields of the NIP-11 relay information document.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfoConfig {
    pub name: String,
    pub description: String,
    pub contact: Option<String>,
}

impl Default for InfoConfig {
    fn default() -> Self {
        Self {
            name: "dephy-relay".into(),
            description: "Nostr relay for physical devices (DePIN messaging layer)".into(),
            contact: None,
        }
    }
}

/// Limits; each is enforced and reported truthfully in NIP-11 `limitation`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest WebSocket message accepted, bytes.
    pub max_message_bytes: usize,
    /// Largest event (its JSON serialization), bytes.
    pub max_event_bytes: usize,
    /// Most tags in one event.
    pub max_event_tags: usize,
    /// Largest `content`, bytes.
    pub max_content_bytes: usize,
    /// Oldest accepted `created_at`, seconds before now (0 = no lower bound).
    pub created_at_past_secs: u64,
    /// Newest accepted `created_at`, seconds after now.
    pub created_at_future_secs: u64,
    /// Open subscriptions per connection.
    pub max_subscriptions: usize,
    /// Filters in one REQ or COUNT.
    pub max_filters: usize,
    /// Values (ids, authors, kinds and tag values together) in one filter. Both databases
    /// bound the parameters of one query, so this stays well under SQLite's 32 766.
    pub max_filter_values: usize,
    /// Largest `limit` honoured; bigger values are clamped.
    pub max_limit: usize,
    /// `limit` used when a filter has none.
    pub default_limit: usize,
    /// Longest subscription id.
    pub max_subid_length: usize,
    /// Open WebSocket connections in total.
    pub max_connections: usize,
    /// Open WebSocket connections from one IP address.
    pub max_connections_per_ip: usize,
    /// EVENT messages per second from one IP (burst = the same number).
    pub events_per_sec_per_ip: u32,
    /// Events per second from one federation peer (keyed by its wallet; the peer's
    /// counterpart of `events_per_sec_per_ip`). A peer forwards the events of all its clients
    /// and of the nodes behind it, so keep this at least the federation's total event rate:
    /// gossip drops the excess (counted in `relay_peer_events_refused_total`), and only a later
    /// catch-up session brings it in.
    pub events_per_sec_per_peer: u32,
    /// Events per second from one author pubkey, whether from clients or federation peers.
    /// Every node of a federation should allow at least what any node accepts from one author.
    pub events_per_sec_per_pubkey: u32,
    /// REQ and COUNT messages per second from one IP.
    pub reqs_per_sec_per_ip: u32,
    /// Messages queued to one connection before it is considered a slow reader and dropped
    /// (a cap on message count; the byte budgets below bound the memory).
    pub outbound_queue: usize,
    /// Bytes one connection may hold on the way to its client: queued live events plus the
    /// stored batch being written. A live queue over it closes the connection (slow reader).
    pub max_output_bytes_per_connection: usize,
    /// Bytes all connections together may hold; past it, the largest holders are closed first.
    pub max_output_bytes_total: usize,
    /// A write to a client blocked longer than this closes the connection (slow reader).
    pub write_timeout_secs: u64,
    /// NIP-77 negentropy sessions open at once on one connection (`NEG-OPEN`).
    pub max_negentropy_sessions: usize,
    /// Most records (events matching the filter) one `NEG-OPEN` may reconcile; past it the
    /// session is refused (`NEG-ERR "blocked: too many records, ..."`). About 40 bytes each
    /// are held while the session is open, counted in the connection's output budget.
    pub max_negentropy_records: usize,
    /// Frame size limit of the relay's negentropy messages, bytes before hex encoding (the
    /// `NEG-MSG` text is about twice as long); at least 4096.
    pub negentropy_frame_bytes: usize,
    /// A negentropy session without a `NEG-MSG` for this long is closed (`NEG-ERR "closed: ..."`).
    pub negentropy_idle_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 256 * 1024,
            max_event_bytes: 128 * 1024,
            max_event_tags: 2000,
            max_content_bytes: 64 * 1024,
            created_at_past_secs: 0,
            created_at_future_secs: 15 * 60,
            max_subscriptions: 64,
            max_filters: 16,
            max_filter_values: 10_000,
            max_limit: 5000,
            default_limit: 500,
            max_subid_length: 64,
            max_connections: 20_000,
            max_connections_per_ip: 256,
            events_per_sec_per_ip: 20_000,
            events_per_sec_per_peer: 50_000,
            events_per_sec_per_pubkey: 10_000,
            reqs_per_sec_per_ip: 20_000,
            outbound_queue: 4096,
            max_output_bytes_per_connection: 4 * 1024 * 1024,
            max_output_bytes_total: 256 * 1024 * 1024,
            write_timeout_secs: 30,
            max_negentropy_sessions: 4,
            max_negentropy_records: 500_000,
            negentropy_frame_bytes: 64 * 1024,
            negentropy_idle_secs: 60,
        }
    }
}

/// NIP-42 authentication requirements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// EVENT is refused (`auth-required:`) until the connection has authenticated.
    pub required_for_write: bool,
    /// REQ and COUNT are refused (`CLOSED auth-required:`) until the connection has authenticated.
    pub required_for_read: bool,
}

/// Storage tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Most events written in one group-commit transaction. Batches only grow past a few
    /// events when the writer falls behind; then a larger one rewrites each touched index page
    /// once for more events (4096 against 1024 on a fresh SQLite database: a quarter fewer
    /// bytes written and ~8% less CPU per event, README "Benchmarks").
    pub max_batch: usize,
    /// Connections in the read pool.
    pub read_connections: u32,
    /// Seconds between background purges of expired (NIP-40) events.
    pub purge_interval_secs: u64,
    /// SQLite: WAL size, bytes, past which the background checkpoint makes the writer wait
    /// until the WAL is copied and can be rewound (a passive checkpoint never catches up under
    /// a steady write load). The WAL file keeps twice this when rewound; an idle one is
    /// truncated to nothing.
    pub wal_restart_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { max_batch: 4096, read_connections: 8, purge_interval_secs: 60, wal_restart_bytes: 64 << 20 }
    }
}

/// The verifiable log's signed checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Sign a checkpoint at least this often while the log grows (0 = never by time).
    pub checkpoint_interval_secs: u64,
    /// Sign a checkpoint once this many leaves were added since the last (0 = never by count).
    pub checkpoint_every_events: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { checkpoint_interval_secs: 60, checkpoint_every_events: 100_000 }
    }
}

/// Anchoring of checkpoints on Solana (`relay/src/anchor.rs`); off unless `rpc_url` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnchorConfig {
    /// Solana JSON-RPC URL (e.g. `https://api.devnet.solana.com`); unset = no anchoring.
    pub rpc_url: Option<String>,
    /// Solana keypair JSON file (a 64-byte array, as `solana-keygen new` writes) that pays for
    /// and signs the memo transactions.
    pub keypair_file: PathBuf,
    /// Commitment to wait for: `processed`, `confirmed` (default) or `finalized`.
    pub commitment: Option<String>,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self { rpc_url: None, keypair_file: crate::anchor::default_keypair_file(), commitment: None }
    }
}

impl Config {
    /// Loads a TOML config file; an error names the file and the problem.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read config file {}: {e} (check the --config path)", path.display())
        })?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }

    /// Checks values that parse but cannot work; the error names the key and what to set.
    pub fn validate(&self) -> anyhow::Result<()> {
        let l = &self.limits;
        if l.negentropy_frame_bytes < MIN_NEGENTROPY_FRAME {
            anyhow::bail!(
                "limits.negentropy_frame_bytes = {} is too small: negentropy needs at least {MIN_NEGENTROPY_FRAME} bytes per frame",
                l.negentropy_frame_bytes
            );
        }
        if l.negentropy_idle_secs == 0 {
            anyhow::bail!("limits.negentropy_idle_secs must be at least 1 (seconds a NEG session may stay idle)");
        }
        if !(1..=MAX_WAL_RESTART_BYTES).contains(&self.store.wal_restart_bytes) {
            anyhow::bail!(
                "store.wal_restart_bytes = {} is out of range: set 1 to {MAX_WAL_RESTART_BYTES} bytes (default 67108864, 64 MiB)",
                self.store.wal_restart_bytes
            );
        }
        Ok(())
    }
}

/// Largest `store.wal_restart_bytes` accepted (1 TiB).
pub const MAX_WAL_RESTART_BYTES: u64 = 1 << 40;

/// Smallest negentropy frame size limit the protocol implementation accepts.
pub const MIN_NEGENTROPY_FRAME: usize = 4096;
