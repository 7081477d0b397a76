//! The authorized set: which wallets may connect, cached from the registry.
//!
//! - [`Authorizer::refresh`] (every `refresh_secs`, in the background) replaces the set with
//!   the registry's `active` entries and reports who was revoked, so the node can disconnect
//!   them: unlike dTelecom's gater, an authorization is never kept past one refresh.
//! - A wallet outside the set is looked up in the registry once ([`Authorizer::check`] queues
//!   the lookup and answers "not yet"); a miss goes into a negative cache for one refresh
//!   interval, so an unknown peer that keeps dialling cannot flood the RPC.
//! - When the registry is unreachable the last good set stays in force; the failure is
//!   logged and shown in metrics and `/health` ([`RegistryStatus`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::metrics as m;
use crate::registry::{NodeEntry, Registry};

/// How many unknown wallets may wait for a registry lookup at once; more are refused.
const LOOKUP_QUEUE: usize = 64;

/// The answer for one wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    Denied,
}

/// What a refresh changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Wallets authorized before and not any more.
    pub revoked: Vec<[u8; 32]>,
    /// Entries authorized now and not before.
    pub added: Vec<NodeEntry>,
}

/// The registry's health as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryStatus {
    pub backend: &'static str,
    pub authorized_nodes: usize,
    /// Unix seconds of the last successful refresh.
    pub last_refresh: Option<u64>,
    /// The last refresh failed: the set in force is the last good one.
    pub stale: bool,
    pub last_error: Option<String>,
}

struct State {
    authorized: HashMap<[u8; 32], NodeEntry>,
    negative: HashMap<[u8; 32], Instant>,
    pending: HashSet<[u8; 32]>,
    last_refresh: Option<u64>,
    last_error: Option<String>,
}

pub struct Authorizer {
    registry: Arc<dyn Registry>,
    negative_ttl: Duration,
    state: RwLock<State>,
    lookups: mpsc::Sender<[u8; 32]>,
}

impl Authorizer {
    /// Returns the authorizer and the receiver of queued lookups, to be driven by
    /// [`Authorizer::run_lookups`].
    pub fn new(registry: Arc<dyn Registry>, negative_ttl: Duration) -> (Arc<Self>, mpsc::Receiver<[u8; 32]>) {
        let (lookups, rx) = mpsc::channel(LOOKUP_QUEUE);
        let state = State {
            authorized: HashMap::new(),
            negative: HashMap::new(),
            pending: HashSet::new(),
            last_refresh: None,
            last_error: None,
        };
        (Arc::new(Self { registry, negative_ttl, state: RwLock::new(state), lookups }), rx)
    }

    /// Is the wallet in the authorized set (no lookup)?
    pub fn is_authorized(&self, wallet: &[u8; 32]) -> bool {
        self.state.read().expect("authorizer lock").authorized.contains_key(wallet)
    }

    /// Answers from the cache; a wallet that is neither authorized nor negatively cached is
    /// denied for now and queued for one registry lookup (after which a retry may pass).
    pub fn check(&self, wallet: &[u8; 32]) -> Access {
        {
            let st = self.state.read().expect("authorizer lock");
            if st.authorized.contains_key(wallet) {
                return Access::Allowed;
            }
            if st.pending.contains(wallet) {
                return Access::Denied;
            }
            if let Some(at) = st.negative.get(wallet)
                && at.elapsed() < self.negative_ttl
            {
                return Access::Denied;
            }
        }
        let mut st = self.state.write().expect("authorizer lock");
        if st.pending.insert(*wallet) && self.lookups.try_send(*wallet).is_err() {
            // Too many lookups waiting: refuse without asking the registry.
            st.pending.remove(wallet);
            st.negative.insert(*wallet, Instant::now());
        }
        Access::Denied
    }

    /// Every active entry (for bootstrap addresses).
    pub fn entries(&self) -> Vec<NodeEntry> {
        self.state.read().expect("authorizer lock").authorized.values().cloned().collect()
    }

    /// Replaces the set with the registry's active entries. On failure the set in force stays.
    pub async fn refresh(&self) -> Result<Changes, String> {
        match self.registry.list().await {
            Ok(entries) => {
                let fresh: HashMap<[u8; 32], NodeEntry> =
                    entries.into_iter().filter(|e| e.active).map(|e| (e.wallet, e)).collect();
                let mut st = self.state.write().expect("authorizer lock");
                let revoked = st.authorized.keys().filter(|w| !fresh.contains_key(*w)).copied().collect();
                let added = fresh.values().filter(|e| !st.authorized.contains_key(&e.wallet)).cloned().collect();
                for w in fresh.keys() {
                    st.negative.remove(w);
                }
                let ttl = self.negative_ttl;
                st.negative.retain(|_, at| at.elapsed() < ttl);
                st.authorized = fresh;
                st.last_refresh = Some(unix_now());
                st.last_error = None;
                metrics::gauge!(m::AUTHORIZED_NODES).set(st.authorized.len() as f64);
                metrics::gauge!(m::REGISTRY_STALE).set(0.0);
                Ok(Changes { revoked, added })
            }
            Err(e) => {
                let msg = e.to_string();
                let mut st = self.state.write().expect("authorizer lock");
                st.last_error = Some(msg.clone());
                metrics::gauge!(m::REGISTRY_STALE).set(1.0);
                metrics::counter!(m::REGISTRY_ERRORS).increment(1);
                Err(msg)
            }
        }
    }

    /// Serves queued lookups one at a time; `on_allowed` is told of each wallet found active.
    pub async fn run_lookups(self: Arc<Self>, mut rx: mpsc::Receiver<[u8; 32]>, on_allowed: mpsc::Sender<NodeEntry>) {
        while let Some(wallet) = rx.recv().await {
            metrics::counter!(m::REGISTRY_LOOKUPS).increment(1);
            let found = self.registry.lookup(wallet).await;
            let entry = {
                let mut st = self.state.write().expect("authorizer lock");
                st.pending.remove(&wallet);
                match found {
                    Ok(Some(entry)) if entry.active && entry.wallet == wallet => {
                        st.authorized.insert(wallet, entry.clone());
                        Some(entry)
                    }
                    Ok(_) => {
                        st.negative.insert(wallet, Instant::now());
                        None
                    }
                    Err(e) => {
                        tracing::warn!(wallet = %bs58::encode(wallet).into_string(), error = %e,
                            "registry lookup failed; the peer stays refused for now");
                        st.negative.insert(wallet, Instant::now());
                        None
                    }
                }
            };
            match entry {
                Some(entry) => {
                    tracing::info!(wallet = %entry.wallet_base58(), "registry lookup: node is authorized");
                    let _ = on_allowed.send(entry).await;
                }
                None => {
                    tracing::debug!(wallet = %bs58::encode(wallet).into_string(), "registry lookup: not authorized")
                }
            }
        }
    }

    pub fn status(&self) -> RegistryStatus {
        let st = self.state.read().expect("authorizer lock");
        RegistryStatus {
            backend: self.registry.backend(),
            authorized_nodes: st.authorized.len(),
            last_refresh: st.last_refresh,
            stale: st.last_error.is_some(),
            last_error: st.last_error.clone(),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::registry::RegistryError;
    use crate::registry::static_list::StaticRegistry;

    /// A static registry that counts single-node lookups, and can be made unreachable.
    struct Counting {
        inner: StaticRegistry,
        lookups: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    impl Registry for Counting {
        fn backend(&self) -> &'static str {
            "static"
        }
        fn list(&self) -> BoxFuture<'_, Result<Vec<NodeEntry>, RegistryError>> {
            if self.down.load(Ordering::SeqCst) {
                return Box::pin(async { Err(RegistryError::Config("unreachable".into())) });
            }
            self.inner.list()
        }
        fn lookup(&self, wallet: [u8; 32]) -> BoxFuture<'_, Result<Option<NodeEntry>, RegistryError>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.inner.lookup(wallet)
        }
    }

    fn entry(n: u8, active: bool) -> NodeEntry {
        NodeEntry { wallet: [n; 32], domain: String::new(), online: 1, active }
    }

    fn setup(entries: Vec<NodeEntry>) -> (Arc<Counting>, Arc<Authorizer>, mpsc::Receiver<[u8; 32]>) {
        let registry = Arc::new(Counting {
            inner: StaticRegistry::new(entries),
            lookups: AtomicUsize::new(0),
            down: false.into(),
        });
        let (auth, rx) = Authorizer::new(registry.clone(), Duration::from_secs(60));
        (registry, auth, rx)
    }

    #[tokio::test]
    async fn refresh_authorizes_active_entries_and_reports_revocations() {
        let (registry, auth, _rx) = setup(vec![entry(1, true), entry(2, true), entry(3, false)]);
        let changes = auth.refresh().await.unwrap();
        assert_eq!(changes.added.len(), 2);
        assert!(auth.is_authorized(&[1; 32]) && auth.is_authorized(&[2; 32]));
        assert!(!auth.is_authorized(&[3; 32]), "inactive entries do not authorize");

        registry.inner.set(vec![entry(1, true), entry(2, false), entry(3, true)]);
        let changes = auth.refresh().await.unwrap();
        assert_eq!(changes.revoked, vec![[2; 32]]);
        assert_eq!(changes.added, vec![entry(3, true)]);
        assert!(!auth.is_authorized(&[2; 32]), "a deactivated node loses its authorization at once");
        assert_eq!(auth.check(&[2; 32]), Access::Denied);
    }

    #[tokio::test]
    async fn an_unreachable_registry_keeps_the_last_good_set() {
        let (registry, auth, _rx) = setup(vec![entry(1, true)]);
        auth.refresh().await.unwrap();
        registry.down.store(true, Ordering::SeqCst);
        assert!(auth.refresh().await.is_err());
        assert!(auth.is_authorized(&[1; 32]));
        let status = auth.status();
        assert!(status.stale && status.last_error.is_some() && status.last_refresh.is_some());
        registry.down.store(false, Ordering::SeqCst);
        auth.refresh().await.unwrap();
        assert!(!auth.status().stale);
    }

    #[tokio::test]
    async fn unknown_wallets_are_looked_up_once_then_cached() {
        let (registry, auth, rx) = setup(vec![]);
        auth.refresh().await.unwrap();
        // Registered after the last refresh: the first check queues a lookup.
        registry.inner.set(vec![entry(7, true)]);
        assert_eq!(auth.check(&[7; 32]), Access::Denied);
        // A stranger dialling again and again costs one lookup.
        for _ in 0..100 {
            assert_eq!(auth.check(&[9; 32]), Access::Denied);
        }
        let (allowed_tx, mut allowed_rx) = mpsc::channel(8);
        let worker = tokio::spawn(auth.clone().run_lookups(rx, allowed_tx));
        let allowed = tokio::time::timeout(Duration::from_secs(5), allowed_rx.recv()).await.unwrap().unwrap();
        assert_eq!(allowed.wallet, [7; 32]);
        assert_eq!(auth.check(&[7; 32]), Access::Allowed);
        // Wait until the stranger's lookup has been answered, then hammer it again.
        for _ in 0..50 {
            if registry.lookups.load(Ordering::SeqCst) >= 2 && !auth.state.read().unwrap().pending.contains(&[9; 32]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..100 {
            assert_eq!(auth.check(&[9; 32]), Access::Denied);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(registry.lookups.load(Ordering::SeqCst), 2, "one lookup per unknown wallet");
        worker.abort();
    }
}
