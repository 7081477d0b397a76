//! Prometheus metrics: names, descriptions and the recorder behind `GET /metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS: &str = "relay_connections";
pub const CONNECTIONS_REFUSED: &str = "relay_connections_refused_total";
pub const EVENTS_RECEIVED: &str = "relay_events_received_total";
pub const EVENTS_STORED: &str = "relay_events_stored_total";
pub const EVENTS_REJECTED: &str = "relay_events_rejected_total";
pub const EVENTS_DELIVERED: &str = "relay_events_delivered_total";
pub const SLOW_READERS: &str = "relay_slow_readers_disconnected_total";
pub const OUTPUT_BYTES: &str = "relay_output_queued_bytes";
pub const QUERY_SECONDS: &str = "relay_query_seconds";
pub const WRITE_BATCH_SIZE: &str = "relay_write_batch_size";
pub const READS_MOVED_OFF_THREAD: &str = "relay_reads_moved_off_thread_total";
pub const EXPIRED_PURGED: &str = "relay_expired_events_purged_total";
pub const EVENTS_RECEIVED_FROM_PEERS: &str = "relay_events_received_from_peers_total";
pub const PEER_EVENTS_REFUSED: &str = "relay_peer_events_refused_total";
pub const MIRROR_DROPPED: &str = "relay_mirror_dropped_total";
pub const PG_LISTENER_RECONNECTS: &str = "relay_pg_listener_reconnects_total";
pub const PG_EVENTS_FROM_OTHERS: &str = "relay_pg_events_from_other_processes_total";
pub const NEG_OPENED: &str = "relay_negentropy_sessions_opened_total";
pub const NEG_REFUSED: &str = "relay_negentropy_sessions_refused_total";
pub const NEG_SESSIONS: &str = "relay_negentropy_sessions";
pub const NEG_RECORDS: &str = "relay_negentropy_records";

/// Installs the global recorder; the handle renders the text exposition format.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(QUERY_SECONDS.into()),
            &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(WRITE_BATCH_SIZE.into()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0],
        )?
        .install_recorder()?;
    metrics::describe_gauge!(CONNECTIONS, "Open WebSocket connections");
    metrics::describe_counter!(CONNECTIONS_REFUSED, "WebSocket upgrades refused by connection limits");
    metrics::describe_counter!(EVENTS_RECEIVED, "EVENT messages received");
    metrics::describe_counter!(EVENTS_STORED, "Events committed to the database");
    metrics::describe_counter!(EVENTS_REJECTED, "Events answered OK false, by reason prefix");
    metrics::describe_counter!(EVENTS_DELIVERED, "Live events queued to subscribers");
    metrics::describe_counter!(
        SLOW_READERS,
        "Connections closed for not reading their output, by reason (queue_full, connection_budget, total_budget, write_timeout)"
    );
    metrics::describe_gauge!(
        OUTPUT_BYTES,
        "Bytes queued for clients over all connections (live queues and stored batches)"
    );
    metrics::describe_histogram!(QUERY_SECONDS, "REQ query latency until EOSE, seconds");
    metrics::describe_histogram!(WRITE_BATCH_SIZE, "Events per group-commit transaction");
    metrics::describe_counter!(
        READS_MOVED_OFF_THREAD,
        "Small SQLite read statements that ran out of their inline step budget and were run again on the blocking pool"
    );
    metrics::describe_counter!(EXPIRED_PURGED, "Expired (NIP-40) events purged");
    metrics::describe_counter!(EVENTS_RECEIVED_FROM_PEERS, "Events received from federation peers (bridge)");
    metrics::describe_counter!(
        PEER_EVENTS_REFUSED,
        "Events from federation peers refused by this relay's policy, by reason (rate-limited, vanish, invalid, blocked)"
    );
    metrics::describe_counter!(MIRROR_DROPPED, "Accepted client events not handed to the bridge (queue full)");
    metrics::describe_counter!(PG_LISTENER_RECONNECTS, "PostgreSQL LISTEN connections re-established");
    metrics::describe_counter!(PG_EVENTS_FROM_OTHERS, "Stored events of other processes read for live delivery");
    metrics::describe_counter!(NEG_OPENED, "NIP-77 negentropy sessions opened (NEG-OPEN answered with NEG-MSG)");
    metrics::describe_counter!(
        NEG_REFUSED,
        "NIP-77 sessions refused or ended with NEG-ERR, by reason (auth_required, rate_limited, too_many_sessions, too_many_records, invalid, idle, closed, error)"
    );
    metrics::describe_gauge!(NEG_SESSIONS, "NIP-77 negentropy sessions open over all connections");
    metrics::describe_gauge!(NEG_RECORDS, "Records (created_at, id) held by open negentropy sessions");
    register_all();
    Ok(handle)
}

/// Reasons (OK message prefixes) an event is rejected for: the `reason` label values.
pub const REJECT_REASONS: &[&str] =
    &["invalid", "blocked", "rate-limited", "duplicate", "auth-required", "restricted", "error"];

/// Why an event from a federation peer was refused: the `reason` label values of
/// [`PEER_EVENTS_REFUSED`]. `vanish` is a request to vanish addressed to another relay.
pub const PEER_REFUSE_REASONS: &[&str] = &["rate-limited", "vanish", "invalid", "blocked"];

/// The [`PEER_REFUSE_REASONS`] label for a refusal message (by its NIP-01 prefix).
pub fn peer_refuse_reason(message: &str) -> &'static str {
    let prefix = message.split(':').next().unwrap_or_default();
    PEER_REFUSE_REASONS.iter().find(|r| **r == prefix).copied().unwrap_or("invalid")
}

/// Why a connection was closed for not reading its output: the `reason` label values of
/// [`SLOW_READERS`].
pub const SLOW_READER_REASONS: &[&str] = &["queue_full", "connection_budget", "total_budget", "write_timeout"];

/// Why a negentropy session was refused or ended with NEG-ERR: the `reason` label values of
/// [`NEG_REFUSED`] (`closed`: a NEG-MSG for no open session).
pub const NEG_REFUSED_REASONS: &[&str] =
    &["auth_required", "rate_limited", "too_many_sessions", "too_many_records", "invalid", "idle", "closed", "error"];

/// Creates every series with a zero value, so `/metrics` lists them all from start.
fn register_all() {
    for name in [
        CONNECTIONS_REFUSED,
        EVENTS_RECEIVED,
        EVENTS_STORED,
        EVENTS_DELIVERED,
        EXPIRED_PURGED,
        READS_MOVED_OFF_THREAD,
        EVENTS_RECEIVED_FROM_PEERS,
        MIRROR_DROPPED,
        PG_LISTENER_RECONNECTS,
        PG_EVENTS_FROM_OTHERS,
        NEG_OPENED,
    ] {
        metrics::counter!(name).absolute(0);
    }
    for reason in REJECT_REASONS {
        metrics::counter!(EVENTS_REJECTED, "reason" => *reason).absolute(0);
    }
    for reason in PEER_REFUSE_REASONS {
        metrics::counter!(PEER_EVENTS_REFUSED, "reason" => *reason).absolute(0);
    }
    for reason in SLOW_READER_REASONS {
        metrics::counter!(SLOW_READERS, "reason" => *reason).absolute(0);
    }
    for reason in NEG_REFUSED_REASONS {
        metrics::counter!(NEG_REFUSED, "reason" => *reason).absolute(0);
    }
    metrics::gauge!(CONNECTIONS).set(0.0);
    metrics::gauge!(NEG_SESSIONS).set(0.0);
    metrics::gauge!(NEG_RECORDS).set(0.0);
    metrics::gauge!(OUTPUT_BYTES).set(0.0);
    for name in [QUERY_SECONDS, WRITE_BATCH_SIZE] {
        // A registered histogram renders its (empty) buckets, `_sum` and `_count`.
        let _ = metrics::histogram!(name);
    }
}
