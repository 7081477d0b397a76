//! Latency percentiles (nearest-rank over all samples; runs are small enough to keep them all).

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

/// Percentiles of a set of latencies; all zero when there were no samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let rank = |p: f64| samples[((p / 100.0 * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
        Self {
            count: samples.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: samples[samples.len() - 1],
        }
    }

    /// `{"count":..,"p50_ms":..,"p90_ms":..,"p99_ms":..,"max_ms":..}`.
    pub fn json(&self) -> Value {
        json!({
            "count": self.count,
            "p50_ms": millis(self.p50),
            "p90_ms": millis(self.p90),
            "p99_ms": millis(self.p99),
            "max_ms": millis(self.max),
        })
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return write!(f, "no samples");
        }
        write!(
            f,
            "n={} p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms",
            self.count,
            millis(self.p50),
            millis(self.p90),
            millis(self.p99),
            millis(self.max)
        )
    }
}

/// Milliseconds with microsecond resolution.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Round to three decimals, for JSON summaries.
pub fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}
