//! Metric names of the bridge (exported by the relay's Prometheus endpoint).

/// Gauge: authorized peers this node is connected to.
pub const PEERS: &str = "dephy_bridge_peers";
/// Gauge: 1 once the node has at least one authorized peer.
pub const READY: &str = "dephy_bridge_ready";
/// Gauge: active entries in the authorized set.
pub const AUTHORIZED_NODES: &str = "dephy_bridge_authorized_nodes";
/// Gauge: 1 while the last registry refresh failed or its answer is held back by the shrink
/// guard (the last good set is in force; `/health` `bridge.registry.stale_reason` says why).
pub const REGISTRY_STALE: &str = "dephy_bridge_registry_stale";
/// Counter: failed registry refreshes.
pub const REGISTRY_ERRORS: &str = "dephy_bridge_registry_errors_total";
/// Counter: single-node registry lookups (unknown peers).
pub const REGISTRY_LOOKUPS: &str = "dephy_bridge_registry_lookups_total";
/// Counter: unknown peers refused without a registry lookup (label `reason`: rate_limited,
/// queue_full).
pub const REGISTRY_LOOKUPS_REFUSED: &str = "dephy_bridge_registry_lookups_refused_total";
/// Counter: registry refreshes held back because they would drop most of the authorized set.
pub const REGISTRY_SHRINKS_HELD: &str = "dephy_bridge_registry_shrinks_held_total";
/// Counter: outbound connections a peer closed right after they opened (it most likely refuses
/// this node: wallet not active in its registry, or another network).
pub const REFUSED_BY_PEER: &str = "dephy_bridge_refused_by_peer_total";
/// Counter: connections refused because the peer is not authorized (label `direction`).
pub const DENIED: &str = "dephy_bridge_denied_connections_total";
/// Counter: peers disconnected because their registry entry was removed or deactivated.
pub const REVOKED: &str = "dephy_bridge_revoked_total";
/// Counter: peers disconnected because they belong to another network.
pub const WRONG_NETWORK: &str = "dephy_bridge_wrong_network_total";
/// Counter: local events published on GossipSub.
pub const PUBLISHED: &str = "dephy_bridge_published_total";
/// Counter: GossipSub messages (frames of one or more local events) published.
pub const PUBLISHED_FRAMES: &str = "dephy_bridge_published_frames_total";
/// Counter: local events not published (label `reason`: no_peers, too_large, error).
pub const PUBLISH_FAILED: &str = "dephy_bridge_publish_failed_total";
/// Counter: events received in gossip frames, by validation result (label `result`: accepted,
/// rejected (in a rejected frame), ignored (refused by this relay's policy, or in a frame from
/// a publisher not authorized here), rate_limited (over its rate limits: fetched later by
/// catch-up), duplicate (taken before from an identical copy), overloaded (validation queue
/// full)).
pub const RECEIVED: &str = "dephy_bridge_received_total";
/// Counter: mirrored events newly stored (or, for ephemeral ones, delivered) locally.
pub const INGESTED: &str = "dephy_bridge_ingested_total";
/// Counter: events fetched from a peer during catch-up and stored.
pub const SYNCED: &str = "dephy_bridge_synced_events_total";
/// Counter: events a catch-up session fetched but the relay's rate limits refused; a follow-up
/// session fetches them again.
pub const SYNC_DEFERRED: &str = "dephy_bridge_sync_deferred_events_total";
/// Counter: catch-up sessions (label `result`: ok, error).
pub const SYNC_SESSIONS: &str = "dephy_bridge_sync_sessions_total";
/// Gauge: ids found missing during catch-up and not fetched yet (all sessions).
pub const SYNC_PENDING: &str = "dephy_bridge_sync_pending_ids";
/// Counter: negentropy rounds (label `role`: initiator, responder).
pub const SYNC_ROUNDS: &str = "dephy_bridge_sync_rounds_total";
/// Counter: slices reconciled as initiator.
pub const SYNC_SLICES: &str = "dephy_bridge_sync_slices_total";
/// Counter: `Split` answers (a peer's slice held more than `sync_max_items` events here).
pub const SYNC_SPLITS: &str = "dephy_bridge_sync_splits_total";
/// Counter: catch-up requests of peers refused (label `reason`: peer_busy, node_busy,
/// too_many_ids, bad_message, error).
pub const SYNC_REFUSED: &str = "dephy_bridge_sync_refused_total";
/// Counter: connections to a peer with which a catch-up session was running (another
/// session follows when it ends, instead of two at once).
pub const SYNC_SKIPPED: &str = "dephy_bridge_sync_skipped_total";

/// Creates every bridge series with a zero value; called when the bridge starts, so
/// `/metrics` lists them from start (and only on relays that run the bridge).
pub fn register() {
    for name in [
        REGISTRY_ERRORS,
        REGISTRY_LOOKUPS,
        REGISTRY_SHRINKS_HELD,
        REFUSED_BY_PEER,
        REVOKED,
        WRONG_NETWORK,
        PUBLISHED,
        PUBLISHED_FRAMES,
        INGESTED,
        SYNCED,
        SYNC_DEFERRED,
        SYNC_SLICES,
        SYNC_SPLITS,
        SYNC_SKIPPED,
    ] {
        metrics::counter!(name).absolute(0);
    }
    for reason in ["rate_limited", "queue_full"] {
        metrics::counter!(REGISTRY_LOOKUPS_REFUSED, "reason" => reason).absolute(0);
    }
    for direction in ["inbound", "outbound"] {
        metrics::counter!(DENIED, "direction" => direction).absolute(0);
    }
    for reason in ["no_peers", "too_large", "error"] {
        metrics::counter!(PUBLISH_FAILED, "reason" => reason).absolute(0);
    }
    for result in ["accepted", "rejected", "ignored", "rate_limited", "duplicate", "overloaded"] {
        metrics::counter!(RECEIVED, "result" => result).absolute(0);
    }
    for result in ["ok", "error"] {
        metrics::counter!(SYNC_SESSIONS, "result" => result).absolute(0);
    }
    for role in ["initiator", "responder"] {
        metrics::counter!(SYNC_ROUNDS, "role" => role).absolute(0);
    }
    for reason in ["peer_busy", "node_busy", "too_many_ids", "bad_message", "error"] {
        metrics::counter!(SYNC_REFUSED, "reason" => reason).absolute(0);
    }
    for name in [PEERS, READY, AUTHORIZED_NODES, REGISTRY_STALE, SYNC_PENDING] {
        metrics::gauge!(name).set(0.0);
    }
}
