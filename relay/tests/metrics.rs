//! `/metrics` on a fresh relay: every series defined in `relay/src/metrics.rs` is listed from
//! start (zeros), before any connection or event; the bridge's series only when it runs.

#[macro_use]
mod common;

use common::*;

backend_tests!(fresh_relay_lists_every_metric);

/// Metric names declared in `relay/src/metrics.rs` (`pub const NAME: &str = "...";`), read from
/// the source so that a metric added later is covered too.
fn declared_names() -> Vec<String> {
    include_str!("../src/metrics.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const ")?.split_once(": &str = \"").map(|(_, r)| r))
        .filter_map(|r| r.strip_suffix("\";").map(str::to_string))
        .collect()
}

async fn fresh_relay_lists_every_metric(backend: Backend) {
    let names = declared_names();
    assert!(names.len() >= 12, "metric names parsed from metrics.rs: {names:?}");
    let (_db, relay) = Relay::start(backend, "").await;
    let resp = http_get(relay.port, "/metrics", &[]).await.expect("GET /metrics");
    assert_eq!(resp.status, 200);
    let text = resp.text();
    // Histograms render as <name>_bucket / _sum / _count lines; the rest under their own name.
    let has = |name: &str| {
        text.lines().any(|l| {
            let series = l.split([' ', '{']).next().unwrap_or("");
            !l.starts_with('#') && (series == name || series.strip_prefix(name).is_some_and(|s| s == "_count"))
        })
    };
    let missing: Vec<&String> = names.iter().filter(|n| !has(n)).collect();
    assert!(missing.is_empty(), "series missing from a fresh relay's /metrics: {missing:?}\n{text}");
    for reason in ["invalid", "blocked", "rate-limited", "duplicate", "auth-required", "restricted", "error"] {
        let line = format!("relay_events_rejected_total{{reason=\"{reason}\"}} 0");
        assert!(text.contains(&line), "rejections by reason {reason:?} listed with 0:\n{text}");
    }
    assert!(!text.contains("dephy_bridge_"), "bridge series without a bridge:\n{text}");
}
