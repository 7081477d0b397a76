//! The authorized set: which wallets may connect, cached from the registry.
//!
//! - [`Authorizer::refresh`] (every `refresh_secs`, in the background) replaces the set with
//!   the registry's `active` entries and reports who was revoked, so the node can disconnect
//!   them: unlike dTelecom's gater, an authorization is never kept past one refresh — except
//!   when the answer looks like a fault rather than a change (below).
//! - **Shrink guard.** One bad RPC answer (zero accounts, undecodable accounts) would revoke
//!   every peer at once. A refresh that would drop more than `max_shrink_percent` of the set
//!   (`bridge.registry_max_shrink_percent`, default 50) is held back: the last good set stays in
//!   force and the registry is marked stale (with the reason) until another source agrees
//!   ([`Registry::list_elsewhere`]: another RPC endpoint returns the same active set) or the
//!   shrink persists over `shrink_confirmations` consecutive refreshes
//!   (`bridge.registry_shrink_confirmations`, default 3). If the other endpoint disagrees, its
//!   answer is used instead. A small shrink (a single deactivation) takes effect at once.
//! - A wallet outside the set is looked up in the registry once ([`Authorizer::check`] queues
//!   the lookup and answers "not yet"); a miss goes into a negative cache for one refresh
//!   interval, so an unknown peer that keeps dialling cannot flood the RPC. Lookups of all
//!   unknown wallets together are bounded by a token bucket ([`LOOKUP_BURST`],
//!   [`LOOKUPS_PER_SEC`]), so many PeerIds cannot flood it either.
//! - A refused peer is logged with its wallet and the reason ([`Refusal`]) at most once per
//!   wallet per [`REFUSAL_LOG_INTERVAL`].
//! - When the registry is unreachable the last good set stays in force; the failure is
//!   logged and shown in metrics and `/health` ([`RegistryStatus`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::identity::peer_of;
use crate::metrics as m;
use crate::registry::{NodeEntry, Registry};
use crate::throttle::{KeyedThrottle, TokenBucket};

/// How many unknown wallets may wait for a registry lookup at once; more are refused.
const LOOKUP_QUEUE: usize = 64;
/// Registry lookups of unknown wallets: at most this many at once...
pub const LOOKUP_BURST: u32 = 20;
/// ...then this many per second, over all wallets.
pub const LOOKUPS_PER_SEC: f64 = 1.0;
/// Most wallets remembered in the negative cache; beyond it, unknown wallets are refused
/// without being remembered (nor looked up).
const NEGATIVE_CAP: usize = 65_536;
/// At most one "peer refused" line per wallet per interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Default of `bridge.registry_max_shrink_percent`.
pub const DEFAULT_MAX_SHRINK_PERCENT: u8 = 50;
/// Default of `bridge.registry_shrink_confirmations`.
pub const DEFAULT_SHRINK_CONFIRMATIONS: u32 = 3;

/// Why a wallet is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No entry for the wallet in the registry.
    NotRegistered,
    /// The wallet's entry exists but is not active.
    Inactive,
    /// The registry could not be asked (every endpoint failed).
    LookupFailed,
    /// Not in the set yet; a lookup is queued (the final answer is logged when it comes).
    Checking,
    /// Too many unknown wallets are being looked up: refused without asking the registry.
    RateLimited,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NotRegistered => "not in the registry",
            Refusal::Inactive => "registry entry inactive",
            Refusal::LookupFailed => "registry lookup failed",
            Refusal::Checking => "not in the authorized set yet; looking it up in the registry",
            Refusal::RateLimited => "too many unknown peers being looked up; refused without a lookup",
        })
    }
}

/// The answer for one wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    Denied(Refusal),
}

/// Where a wallet stands in the last accepted registry list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    Active,
    Inactive,
    Missing,
}

/// What a refresh changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Wallets authorized before and not any more.
    pub revoked: Vec<[u8; 32]>,
    /// Entries authorized now and not before.
    pub added: Vec<NodeEntry>,
    /// The answer was held back by the shrink guard: why (the set in force is unchanged).
    pub held: Option<String>,
}

/// The shrink guard's settings.
#[derive(Debug, Clone, Copy)]
pub struct ShrinkGuard {
    /// A refresh dropping more than this percentage of the set is suspect (100: never).
    pub max_shrink_percent: u8,
    /// Consecutive suspect refreshes after which the shrink is accepted (1: at once).
    pub confirmations: u32,
}

impl Default for ShrinkGuard {
    fn default() -> Self {
        Self { max_shrink_percent: DEFAULT_MAX_SHRINK_PERCENT, confirmations: DEFAULT_SHRINK_CONFIRMATIONS }
    }
}

impl ShrinkGuard {
    fn suspect(&self, dropped: usize, of: usize) -> bool {
        of > 0 && dropped * 100 > of * usize::from(self.max_shrink_percent)
    }
}

/// The registry's health as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryStatus {
    pub backend: &'static str,
    pub authorized_nodes: usize,
    /// Unix seconds of the last successful refresh.
    pub last_refresh: Option<u64>,
    /// The set in force is the last good one: the last refresh failed, or its answer was held
    /// back by the shrink guard.
    pub stale: bool,
    /// Why the registry is stale.
    pub stale_reason: Option<String>,
    /// The last refresh error (RPC failure), if the last refresh failed.
    pub last_error: Option<String>,
}

/// A shrink held back, waiting for confirmation.
struct Suspect {
    /// Consecutive suspect refreshes so far.
    seen: u32,
    reason: String,
}

struct State {
    authorized: HashMap<[u8; 32], NodeEntry>,
    /// Listed but inactive in the last accepted list.
    inactive: HashSet<[u8; 32]>,
    negative: HashMap<[u8; 32], (Instant, Refusal)>,
    pending: HashSet<[u8; 32]>,
    last_refresh: Option<u64>,
    last_error: Option<String>,
    suspect: Option<Suspect>,
}

pub struct Authorizer {
    registry: Arc<dyn Registry>,
    negative_ttl: Duration,
    guard: ShrinkGuard,
    state: RwLock<State>,
    lookups: mpsc::Sender<[u8; 32]>,
    lookup_bucket: TokenBucket,
    refusal_log: KeyedThrottle<[u8; 32]>,
}

impl Authorizer {
    /// Returns the authorizer (default shrink guard) and the receiver of queued lookups, to be
    /// driven by [`Authorizer::run_lookups`].
    pub fn new(registry: Arc<dyn Registry>, negative_ttl: Duration) -> (Arc<Self>, mpsc::Receiver<[u8; 32]>) {
        Self::with_guard(registry, negative_ttl, ShrinkGuard::default())
    }

    /// Like [`Authorizer::new`] with the given shrink guard.
    pub fn with_guard(
        registry: Arc<dyn Registry>,
        negative_ttl: Duration,
        guard: ShrinkGuard,
    ) -> (Arc<Self>, mpsc::Receiver<[u8; 32]>) {
        let (lookups, rx) = mpsc::channel(LOOKUP_QUEUE);
        let state = State {
            authorized: HashMap::new(),
            inactive: HashSet::new(),
            negative: HashMap::new(),
            pending: HashSet::new(),
            last_refresh: None,
            last_error: None,
            suspect: None,
        };
        let auth = Self {
            registry,
            negative_ttl,
            guard,
            state: RwLock::new(state),
            lookups,
            lookup_bucket: TokenBucket::new(LOOKUP_BURST, LOOKUPS_PER_SEC),
            refusal_log: KeyedThrottle::new(REFUSAL_LOG_INTERVAL),
        };
        (Arc::new(auth), rx)
    }

    /// Is the wallet in the authorized set (no lookup)?
    pub fn is_authorized(&self, wallet: &[u8; 32]) -> bool {
        self.state.read().expect("authorizer lock").authorized.contains_key(wallet)
    }

    /// Where `wallet` stands in the set in force (active), or the last accepted list (inactive).
    pub fn standing(&self, wallet: &[u8; 32]) -> Standing {
        let st = self.state.read().expect("authorizer lock");
        if st.authorized.contains_key(wallet) {
            Standing::Active
        } else if st.inactive.contains(wallet) {
            Standing::Inactive
        } else {
            Standing::Missing
        }
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
                return Access::Denied(Refusal::Checking);
            }
            if let Some((at, why)) = st.negative.get(wallet)
                && at.elapsed() < self.negative_ttl
            {
                return Access::Denied(*why);
            }
        }
        let mut st = self.state.write().expect("authorizer lock");
        if st.pending.contains(wallet) {
            return Access::Denied(Refusal::Checking);
        }
        if !self.lookup_bucket.take() {
            metrics::counter!(m::REGISTRY_LOOKUPS_REFUSED, "reason" => "rate_limited").increment(1);
            Self::remember(&mut st, *wallet, Refusal::RateLimited, self.negative_ttl);
            return Access::Denied(Refusal::RateLimited);
        }
        st.pending.insert(*wallet);
        if self.lookups.try_send(*wallet).is_err() {
            // Too many lookups waiting: refuse without asking the registry.
            metrics::counter!(m::REGISTRY_LOOKUPS_REFUSED, "reason" => "queue_full").increment(1);
            st.pending.remove(wallet);
            Self::remember(&mut st, *wallet, Refusal::RateLimited, self.negative_ttl);
            return Access::Denied(Refusal::RateLimited);
        }
        Access::Denied(Refusal::Checking)
    }

    /// Puts `wallet` in the negative cache (bounded: when full of live entries, not remembered).
    fn remember(st: &mut State, wallet: [u8; 32], why: Refusal, ttl: Duration) {
        if st.negative.len() >= NEGATIVE_CAP && !st.negative.contains_key(&wallet) {
            st.negative.retain(|_, (at, _)| at.elapsed() < ttl);
            if st.negative.len() >= NEGATIVE_CAP {
                return;
            }
        }
        st.negative.insert(wallet, (Instant::now(), why));
    }

    /// Logs that `wallet` was refused and why, at most once per wallet per
    /// [`REFUSAL_LOG_INTERVAL`]; "checking" (an answer is on its way) is not logged.
    pub fn log_refusal(&self, wallet: &[u8; 32], why: Refusal, direction: &str) {
        if why == Refusal::Checking || !self.refusal_log.allow(wallet) {
            return;
        }
        let peer = peer_of(wallet).map(|p| p.to_string()).unwrap_or_default();
        tracing::info!(wallet = %bs58::encode(wallet).into_string(), %peer, direction, reason = %why,
            "peer refused: {why} (logged at most once a minute per peer)");
    }

    /// Every active entry (for bootstrap addresses).
    pub fn entries(&self) -> Vec<NodeEntry> {
        self.state.read().expect("authorizer lock").authorized.values().cloned().collect()
    }

    /// The entries of the last accepted registry list as held: the active ones in full, the
    /// inactive ones by wallet (`active: false`, `online: 0`, no domain).
    pub fn registry_entries(&self) -> Vec<NodeEntry> {
        let st = self.state.read().expect("authorizer lock");
        let inactive =
            st.inactive.iter().map(|w| NodeEntry { wallet: *w, domain: String::new(), online: 0, active: false });
        st.authorized.values().cloned().chain(inactive).collect()
    }

    /// Replaces the set with the registry's active entries, unless the shrink guard holds the
    /// answer back (see the module doc). On failure the set in force stays.
    pub async fn refresh(&self) -> Result<Changes, String> {
        let entries = match self.registry.list().await {
            Ok(entries) => entries,
            Err(e) => {
                let msg = e.to_string();
                let mut st = self.state.write().expect("authorizer lock");
                st.last_error = Some(msg.clone());
                metrics::gauge!(m::REGISTRY_STALE).set(1.0);
                metrics::counter!(m::REGISTRY_ERRORS).increment(1);
                return Err(msg);
            }
        };
        let (dropped, of) = self.shrink_of(&entries);
        if !self.guard.suspect(dropped, of) {
            return Ok(self.apply(entries));
        }
        let first = format!("the registry answered a list that drops {dropped} of the {of} authorized nodes");
        // A second opinion from another source, when the backend has one.
        let held = match self.registry.list_elsewhere().await {
            Some(Ok(second)) if active_set(&second) == active_set(&entries) => {
                tracing::warn!(dropped, of, "{first}; another registry endpoint gives the same answer: accepting it");
                return Ok(self.apply(entries));
            }
            Some(Ok(second)) => {
                let (dropped2, _) = self.shrink_of(&second);
                if !self.guard.suspect(dropped2, of) {
                    tracing::warn!(
                        dropped,
                        of,
                        dropped_by_other = dropped2,
                        "{first}; another registry endpoint disagrees: using its answer"
                    );
                    return Ok(self.apply(second));
                }
                format!("{first}, and another endpoint a different one dropping {dropped2}")
            }
            Some(Err(e)) => format!("{first}; no other endpoint could confirm it ({e})"),
            None => first,
        };
        let mut st = self.state.write().expect("authorizer lock");
        let seen = st.suspect.as_ref().map_or(0, |s| s.seen) + 1;
        if seen >= self.guard.confirmations {
            drop(st);
            tracing::warn!(
                dropped,
                of,
                refreshes = seen,
                "the registry shrink persisted over {seen} consecutive refreshes: accepting it"
            );
            return Ok(self.apply(entries));
        }
        let reason = format!(
            "{held}; keeping the last good set until another endpoint confirms it or it persists over {} \
             consecutive refreshes ({seen} so far; bridge.registry_shrink_confirmations)",
            self.guard.confirmations
        );
        st.suspect = Some(Suspect { seen, reason: reason.clone() });
        st.last_error = None;
        metrics::gauge!(m::REGISTRY_STALE).set(1.0);
        metrics::counter!(m::REGISTRY_SHRINKS_HELD).increment(1);
        Ok(Changes { held: Some(reason), ..Changes::default() })
    }

    /// How many authorized wallets `entries` would drop, of how many.
    fn shrink_of(&self, entries: &[NodeEntry]) -> (usize, usize) {
        let fresh = active_set(entries);
        let st = self.state.read().expect("authorizer lock");
        (st.authorized.keys().filter(|w| !fresh.contains(*w)).count(), st.authorized.len())
    }

    /// Makes `entries` the set in force.
    fn apply(&self, entries: Vec<NodeEntry>) -> Changes {
        let inactive: HashSet<[u8; 32]> = entries.iter().filter(|e| !e.active).map(|e| e.wallet).collect();
        let fresh: HashMap<[u8; 32], NodeEntry> =
            entries.into_iter().filter(|e| e.active).map(|e| (e.wallet, e)).collect();
        let mut st = self.state.write().expect("authorizer lock");
        let revoked = st.authorized.keys().filter(|w| !fresh.contains_key(*w)).copied().collect();
        let added = fresh.values().filter(|e| !st.authorized.contains_key(&e.wallet)).cloned().collect();
        for w in fresh.keys() {
            st.negative.remove(w);
        }
        let ttl = self.negative_ttl;
        st.negative.retain(|_, (at, _)| at.elapsed() < ttl);
        st.authorized = fresh;
        st.inactive = inactive;
        st.last_refresh = Some(unix_now());
        st.last_error = None;
        st.suspect = None;
        metrics::gauge!(m::AUTHORIZED_NODES).set(st.authorized.len() as f64);
        metrics::gauge!(m::REGISTRY_STALE).set(0.0);
        Changes { revoked, added, held: None }
    }

    /// Serves queued lookups one at a time; `on_allowed` is told of each wallet found active.
    pub async fn run_lookups(self: Arc<Self>, mut rx: mpsc::Receiver<[u8; 32]>, on_allowed: mpsc::Sender<NodeEntry>) {
        while let Some(wallet) = rx.recv().await {
            metrics::counter!(m::REGISTRY_LOOKUPS).increment(1);
            let found = self.registry.lookup(wallet).await;
            let outcome = {
                let mut st = self.state.write().expect("authorizer lock");
                st.pending.remove(&wallet);
                let ttl = self.negative_ttl;
                match found {
                    Ok(Some(entry)) if entry.active && entry.wallet == wallet => {
                        st.authorized.insert(wallet, entry.clone());
                        Ok(entry)
                    }
                    Ok(Some(entry)) if entry.wallet == wallet => {
                        Self::remember(&mut st, wallet, Refusal::Inactive, ttl);
                        Err(Refusal::Inactive)
                    }
                    Ok(_) => {
                        Self::remember(&mut st, wallet, Refusal::NotRegistered, ttl);
                        Err(Refusal::NotRegistered)
                    }
                    Err(e) => {
                        tracing::warn!(wallet = %bs58::encode(wallet).into_string(), error = %e,
                            "registry lookup failed; the peer stays refused for now");
                        Self::remember(&mut st, wallet, Refusal::LookupFailed, ttl);
                        Err(Refusal::LookupFailed)
                    }
                }
            };
            match outcome {
                Ok(entry) => {
                    tracing::info!(wallet = %entry.wallet_base58(), "registry lookup: node is authorized");
                    let _ = on_allowed.send(entry).await;
                }
                Err(why) => self.log_refusal(&wallet, why, "lookup"),
            }
        }
    }

    pub fn status(&self) -> RegistryStatus {
        let st = self.state.read().expect("authorizer lock");
        let stale_reason = match (&st.last_error, &st.suspect) {
            (Some(e), _) => Some(format!("the last refresh failed: {e}")),
            (None, Some(s)) => Some(s.reason.clone()),
            (None, None) => None,
        };
        RegistryStatus {
            backend: self.registry.backend(),
            authorized_nodes: st.authorized.len(),
            last_refresh: st.last_refresh,
            stale: stale_reason.is_some(),
            stale_reason,
            last_error: st.last_error.clone(),
        }
    }
}

fn active_set(entries: &[NodeEntry]) -> HashSet<[u8; 32]> {
    entries.iter().filter(|e| e.active).map(|e| e.wallet).collect()
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
        assert!(matches!(auth.check(&[2; 32]), Access::Denied(_)));
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
        assert_eq!(auth.check(&[7; 32]), Access::Denied(Refusal::Checking));
        // A stranger dialling again and again costs one lookup.
        for _ in 0..100 {
            assert!(matches!(auth.check(&[9; 32]), Access::Denied(_)));
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
            assert!(matches!(auth.check(&[9; 32]), Access::Denied(_)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(registry.lookups.load(Ordering::SeqCst), 2, "one lookup per unknown wallet");
        assert_eq!(auth.check(&[9; 32]), Access::Denied(Refusal::NotRegistered), "the reason is remembered");
        worker.abort();
    }

    #[tokio::test]
    async fn lookups_of_many_unknown_wallets_are_rate_limited() {
        let (_registry, auth, _rx) = setup(vec![]);
        let answers: Vec<Access> = (0..LOOKUP_BURST + 10).map(|n| auth.check(&[n as u8 + 1; 32])).collect();
        let checking = answers.iter().filter(|a| **a == Access::Denied(Refusal::Checking)).count();
        let limited = answers.iter().filter(|a| **a == Access::Denied(Refusal::RateLimited)).count();
        assert_eq!(checking, LOOKUP_BURST as usize, "a burst of lookups is queued");
        assert_eq!(limited, 10, "the rest are refused without a lookup");
        assert_eq!(auth.state.read().unwrap().pending.len(), LOOKUP_BURST as usize);
    }

    #[tokio::test]
    async fn a_large_shrink_is_held_until_it_persists() {
        let (registry, auth, _rx) = setup((1..=4).map(|n| entry(n, true)).collect());
        auth.refresh().await.unwrap();
        // One node deactivated: a small shrink takes effect at once.
        registry.inner.set((1..=4).map(|n| entry(n, n != 4)).collect());
        let changes = auth.refresh().await.unwrap();
        assert_eq!(changes.revoked, vec![[4; 32]]);
        assert!(changes.held.is_none() && !auth.status().stale);
        assert_eq!(auth.standing(&[4; 32]), Standing::Inactive);
        assert_eq!(auth.standing(&[5; 32]), Standing::Missing);

        // An empty answer (a bad RPC reply): held twice, accepted at the third in a row.
        registry.inner.set(vec![]);
        for seen in 1..DEFAULT_SHRINK_CONFIRMATIONS {
            let changes = auth.refresh().await.unwrap();
            assert!(changes.revoked.is_empty(), "refresh {seen} revoked {:?}", changes.revoked);
            let held = changes.held.expect("held back");
            assert!(held.contains("drops 3 of the 3") && held.contains(&format!("{seen} so far")), "{held}");
            let status = auth.status();
            assert!(status.stale && status.last_error.is_none(), "{status:?}");
            assert_eq!(status.stale_reason.as_deref(), Some(held.as_str()));
            assert_eq!(status.authorized_nodes, 3);
            assert!(auth.is_authorized(&[1; 32]));
        }
        let changes = auth.refresh().await.unwrap();
        assert_eq!(changes.revoked.len(), 3, "accepted once it persisted");
        assert!(!auth.status().stale);
    }

    #[tokio::test]
    async fn a_held_shrink_is_forgotten_when_the_next_answer_is_good() {
        let (registry, auth, _rx) = setup((1..=3).map(|n| entry(n, true)).collect());
        auth.refresh().await.unwrap();
        registry.inner.set(vec![entry(1, true)]);
        assert!(auth.refresh().await.unwrap().held.is_some(), "2 of 3 dropped: suspect");
        registry.inner.set((1..=3).map(|n| entry(n, true)).collect());
        let changes = auth.refresh().await.unwrap();
        assert!(changes.held.is_none() && changes.revoked.is_empty() && !auth.status().stale);
        // The count starts again: one bad answer is held again.
        registry.inner.set(vec![]);
        assert!(auth.refresh().await.unwrap().held.unwrap().contains("1 so far"));
    }

    #[tokio::test]
    async fn the_guard_can_be_turned_off() {
        let registry = Arc::new(StaticRegistry::new(vec![entry(1, true), entry(2, true)]));
        let guard = ShrinkGuard { max_shrink_percent: 100, confirmations: 1 };
        let (auth, _rx) = Authorizer::with_guard(registry.clone(), Duration::from_secs(60), guard);
        auth.refresh().await.unwrap();
        registry.set(vec![]);
        assert_eq!(auth.refresh().await.unwrap().revoked.len(), 2);
    }
}
