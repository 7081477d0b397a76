//! Command-line interface: `dephy-relay serve`, `migrate`, `audit` and `node-id`.
//!
//! Settings come from flags, then environment variables, then the TOML config file, then
//! defaults (in that order of precedence).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(name = "dephy-relay", version, about = "A Nostr relay for physical devices (DePIN)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay (applies pending database migrations first).
    Serve {
        /// TOML config file; every key is optional.
        #[arg(long, env = "DEPHY_RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:8000].
        #[arg(long, env = "DEPHY_RELAY_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://data/relay.db].
        #[arg(long, env = "DEPHY_RELAY_DB")]
        db: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long, env = "DEPHY_RELAY_DB")]
        db: String,
    },
    /// Print this node's federation identity: the wallet to register in the node registry, the
    /// PeerId, and the bootstrap multiaddrs other nodes list in `bridge.bootstrap`.
    ///
    /// Uses the keypair of the `[bridge]` section (`keypair_file`, default
    /// data/node-keypair.json), creating it (and its directories) if absent, as `serve` would.
    NodeId {
        /// TOML config file (the one `serve` uses).
        #[arg(long, env = "DEPHY_RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// Print JSON (wallet, peer_id, network, keypair_file, created, bootstrap).
        #[arg(long)]
        json: bool,
    },
    /// Audit a running relay's verifiable log from the outside.
    ///
    /// Checks every signed checkpoint and the consistency proofs between them, that the log
    /// extends the checkpoint an earlier audit saw (--state), and that the newest events served
    /// over WebSocket and the log's leaves are proven in the latest checkpoint; with --rpc, that
    /// each checkpoint's Solana anchor is a successful memo transaction of its tree size and root.
    /// Exit code 0: OK; 1: a check failed; 2: the audit could not run.
    Audit {
        /// The relay's URL: ws://HOST:PORT or http://HOST:PORT (TLS is not supported).
        url: String,
        /// JSON file with the latest checkpoint an earlier audit saw: the relay's log must
        /// extend it. Created or updated when the audit succeeds.
        #[arg(long)]
        state: Option<PathBuf>,
        /// How many of the newest events to fetch over WebSocket and prove in the log.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        sample: u32,
        /// Solana JSON-RPC URL: verify every checkpoint's Solana anchor (its memo transaction)
        /// there. Without it, anchors are reported but not checked.
        #[arg(long, value_name = "URL")]
        rpc: Option<String>,
    },
}

/// Entry point of the binary; returns a failure exit code with a message on error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config, listen, db } => {
                let mut cfg = match config {
                    Some(path) => Config::from_file(&path)?,
                    None => Config::default(),
                };
                if let Some(listen) = listen {
                    cfg.listen = listen;
                }
                if let Some(db) = db {
                    cfg.db = db;
                }
                crate::server::serve(cfg).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Migrate { db } => {
                let store = crate::store::Store::open(&db, &Default::default()).await?;
                store.close().await;
                println!("migrations applied to {db}");
                Ok(ExitCode::SUCCESS)
            }
            Command::NodeId { config, json } => {
                crate::node_id::run(config.as_deref(), json)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Audit { url, state, sample, rpc } => {
                Ok(crate::audit::run(&url, state.as_deref(), sample, rpc.as_deref()).await)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: not in files or pipes, not with NO_COLOR set.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}
