//! dephy-bridge: federation of dephy relays.
//!
//! Relays mirror events to each other over libp2p GossipSub; only nodes whose Solana wallet
//! is an active entry of the node registry may connect. The relay runs the bridge in-process
//! when its configuration has a `[bridge]` section. The path of an event between relays:
//!
//! ```text
//! relay A: client → ingest → writer (commit) → Bridge::outgoing
//!   → node: outbox (a frame of the events of a few ms) → GossipSub publish (one signature)
//! relay B: node → mirror::validate (authorized source; for every event in the frame: id,
//!   signature, B's policy and rate limits) → RelayPort::submit, event by event in order
//!   → B's writer → log → fan-out to B's subscribers
//! ```
//!
//! Modules: `identity` (Solana keypair = PeerId), `registry` (where node entries come from),
//! `authorize` (the cached authorized set, refresh, negative cache), `gate` (connection
//! gating), `network` (the libp2p stack), `mirror` (frame format, validation), `outbox`
//! (batching local events into frames), `seen` (events already taken), `slice` and
//! `sync` (catch-up with negentropy, slice by slice), `catchups` (when catch-up sessions run,
//! follow-ups after rate limits), `node` (the event loop), `redial` (per-address backoff),
//! `throttle` (log and lookup rate limits), `status` and `metrics`.

pub mod addr;
pub mod authorize;
pub mod catchups;
pub mod config;
pub mod gate;
pub mod identity;
pub mod metrics;
pub mod mirror;
pub mod network;
pub mod node;
pub mod outbox;
pub mod port;
pub mod redial;
pub mod registry;
pub mod seen;
pub mod slice;
pub mod status;
pub mod sync;
pub mod throttle;

use std::sync::Arc;

use anyhow::Context as _;
use libp2p::multiaddr::Protocol;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{BridgeConfig, RegistryConfig};
pub use port::{Committing, Ingested, Inventory, Outgoing, Received, RelayPort};
pub use status::Status;

use authorize::{Authorizer, Standing};
use identity::NodeIdentity;
use node::{Control, Node};
use registry::Registry;

/// Local events waiting to be published; beyond this the relay's writer drops (and counts)
/// them rather than slow down, and catch-up repairs the gap.
pub const OUTGOING_QUEUE: usize = 65_536;

/// The queue from the relay (accepted client events) to the bridge.
pub fn outgoing_channel() -> (mpsc::Sender<Outgoing>, mpsc::Receiver<Outgoing>) {
    mpsc::channel(OUTGOING_QUEUE)
}

/// A running bridge.
pub struct Bridge {
    status: Arc<Status>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Bridge {
    /// Loads the node identity, reads the registry once, starts listening and dialling.
    /// `max_event_bytes` is the relay's largest event: GossipSub's limit is raised to fit a frame
    /// holding it.
    /// `outgoing` receives the events to publish (see [`outgoing_channel`]).
    pub async fn start(
        cfg: &BridgeConfig,
        relay: Arc<dyn RelayPort>,
        max_event_bytes: usize,
        outgoing: mpsc::Receiver<Outgoing>,
    ) -> anyhow::Result<Self> {
        let addrs = cfg.validate()?;
        crate::metrics::register();
        let identity = NodeIdentity::load_or_create(&cfg.keypair_file)?;
        let registry: Arc<dyn Registry> = match &cfg.registry {
            RegistryConfig::Static { nodes } => Arc::new(registry::static_list::StaticRegistry::from_config(nodes)?),
            RegistryConfig::Solana(c) => Arc::new(registry::solana::SolanaRegistry::from_config(c)?),
        };
        let (authorizer, lookups) = Authorizer::with_guard(registry, cfg.refresh_interval(), cfg.shrink_guard());
        match authorizer.refresh().await {
            Ok(_) => {
                own_standing(&authorizer, &identity.wallet, None);
            }
            Err(e) => tracing::warn!(error = %e,
                "node registry unreachable: no peer is authorized until it answers; retrying every {} s", cfg.refresh_secs),
        }

        let names = network::Names::new(&cfg.network)?;
        let mut swarm = network::build_swarm(
            identity.keypair.clone(),
            &names,
            authorizer.clone(),
            mirror::max_frame_bytes(max_event_bytes) + 4096,
        )?;
        for addr in &addrs.listen {
            swarm.listen_on(addr.clone()).with_context(|| format!("bridge cannot listen on {addr} (bridge.listen)"))?;
        }
        for addr in &addrs.external {
            swarm.add_external_address(addr.clone());
        }
        for relay_addr in &addrs.relays {
            if let Err(e) = swarm.listen_on(relay_addr.clone().with(Protocol::P2pCircuit)) {
                tracing::warn!(relay = %relay_addr, error = %e, "cannot reserve a slot on a circuit relay");
            }
        }
        let status =
            Arc::new(Status::new(&cfg.network, identity.peer_id(), identity.wallet_base58(), authorizer.clone()));
        tracing::info!(network = %cfg.network, peer_id = %identity.peer_id(), wallet = %identity.wallet_base58(),
            registry = authorizer.status().backend, authorized = authorizer.status().authorized_nodes, "bridge starting");

        let shutdown = CancellationToken::new();
        let (control_tx, control_rx) = mpsc::channel(64);
        let (allowed_tx, mut allowed_rx) = mpsc::channel(64);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(authorizer.clone().run_lookups(lookups, allowed_tx)));
        let forward = control_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(entry) = allowed_rx.recv().await {
                if forward.send(Control::Authorized(vec![entry])).await.is_err() {
                    break;
                }
            }
        }));
        tasks.push(tokio::spawn(refresher(authorizer.clone(), identity.wallet, cfg.refresh_interval(), control_tx)));
        let node = Node {
            swarm,
            names,
            authorizer,
            relay,
            status: status.clone(),
            bootstrap: addrs.bootstrap,
            default_port: cfg.default_port,
            retry: cfg.retry_interval(),
            backoff: redial::Backoff::new(cfg.retry_interval(), cfg.retry_max()),
            warnings: node::Warnings::default(),
            sync: cfg.sync_limits(),
            outgoing,
            control: control_rx,
            shutdown: shutdown.clone(),
        };
        tasks.push(tokio::spawn(node.run()));
        Ok(Self { status, shutdown, tasks })
    }

    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// Stops the node and its background tasks.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Says where this node's own wallet stands in the registry, at start (`before` = None) and
/// whenever that changes. With the static backend the list only decides whom this node
/// accepts (peers decide from their own lists), so it is not said that peers will refuse it.
fn own_standing(authorizer: &Authorizer, wallet: &[u8; 32], before: Option<Standing>) -> Standing {
    let now = authorizer.standing(wallet);
    if before == Some(now) {
        return now;
    }
    let wallet = bs58::encode(wallet).into_string();
    let backend = authorizer.status().backend;
    match (now, backend) {
        (Standing::Active, _) if before.is_some() => {
            tracing::info!(%wallet, "this node's wallet is an active registry entry now: peers reading the registry accept it")
        }
        (Standing::Active, _) => {}
        (Standing::Missing, "static") => tracing::info!(%wallet,
            "this node's wallet is not in its own bridge.registry.nodes: that list only decides whom this node accepts; a peer accepts this node if its own list names this wallet"),
        (Standing::Inactive, "static") => tracing::info!(%wallet,
            "this node's wallet is listed inactive in its own bridge.registry.nodes: that list only decides whom this node accepts; a peer accepts this node if its own list names this wallet as active"),
        (Standing::Missing, _) => tracing::warn!(%wallet,
            "this node's wallet is not in the registry: peers reading the registry refuse it until it is registered (register this wallet as an active NodeEntry)"),
        (Standing::Inactive, _) => tracing::warn!(%wallet,
            "this node's registry entry is inactive: peers reading the registry refuse it until it is activated"),
    }
    now
}

/// Refreshes the authorized set every `interval` and tells the node what changed.
async fn refresher(
    authorizer: Arc<Authorizer>,
    own_wallet: [u8; 32],
    interval: std::time::Duration,
    control: mpsc::Sender<Control>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut failing = false;
    // None until a refresh succeeded (then the first standing is logged like at start).
    let mut standing = authorizer.status().last_refresh.map(|_| authorizer.standing(&own_wallet));
    loop {
        tick.tick().await;
        match authorizer.refresh().await {
            Ok(changes) => {
                if failing {
                    tracing::info!("node registry reachable again");
                    failing = false;
                }
                if let Some(reason) = &changes.held {
                    tracing::warn!(
                        authorized = authorizer.status().authorized_nodes,
                        "registry answer held back: {reason}"
                    );
                }
                standing = Some(own_standing(&authorizer, &own_wallet, standing));
                if !changes.revoked.is_empty() && control.send(Control::Revoked(changes.revoked)).await.is_err() {
                    break;
                }
                if !changes.added.is_empty() && control.send(Control::Authorized(changes.added)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failing = true;
                tracing::warn!(error = %e, authorized = authorizer.status().authorized_nodes,
                    "node registry unreachable: keeping the last good authorized set");
            }
        }
    }
}
