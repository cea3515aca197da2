//! How long eviction work holds a shard lock: every eviction step (one
//! hold's share of a pass: reclaiming an expired or flushed segment,
//! evicting a segment, a merge or compaction pass, each bounded to a fixed
//! amount of work per hold) is timed by the store against the clock given
//! here and recorded in one histogram, shown by `stats`
//! (`store_evict_pause_*`) and the metrics endpoint
//! (`petrel_store_evict_pause_seconds`). A request that triggers a step,
//! and every request for the same shard meanwhile, waits that long.

use petrel_core::engine::{Engine, StatsSource};
use petrel_core::histogram::Histogram;

use crate::metrics::{ExtraSource, Family, Latency, Type, Value};

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`, a vDSO call).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The histogram's `stats` lines.
struct PauseStats(&'static Histogram);

impl StatsSource for PauseStats {
    /// `STAT store_evict_pauses`, `store_evict_pause_p99_us`,
    /// `store_evict_pause_p999_us`, `store_evict_pause_max_us`.
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        let s = self.0.summary();
        f("store_", "evict_pauses", s.count);
        f("store_", "evict_pause_p99_us", s.quantiles[2] / 1000);
        f("store_", "evict_pause_p999_us", s.quantiles[3] / 1000);
        f("store_", "evict_pause_max_us", s.max / 1000);
    }
}

/// Gives the store its pause histogram and clock, and `stats` its lines.
pub fn install(engine: &mut Engine<'static>) -> &'static Histogram {
    // One histogram for the life of the process (the engine lives as long).
    let h: &'static Histogram = Box::leak(Box::new(Histogram::new()));
    engine.set_pause_recorder(h, monotonic_ns);
    if !engine.add_stats_source(Box::leak(Box::new(PauseStats(h)))) {
        log::warn!("stats: no room for the eviction pause figures");
    }
    h
}

const FAMILY: &str = "petrel_store_evict_pause_seconds";
const HELP: &str = "time one eviction step held its shard's lock (one hold's share, at most 512 work units, of a pass: an expired or flushed segment reclaimed, a segment evicted, a merge or compaction); requests for that shard wait meanwhile";
const MAX_FAMILY: &str = "petrel_store_evict_pause_max_seconds";
const MAX_HELP: &str = "longest time one eviction step held a shard lock since start";

/// The pause histogram and its maximum for the metrics endpoint.
pub fn metrics_source(h: &'static Histogram) -> ExtraSource {
    Box::new(move |out: &mut Vec<Family>| {
        let l = Latency::of(&[h]);
        let max = l.max_ns as f64 / 1e9;
        out.push(Family::single(
            FAMILY,
            Type::Histogram,
            "seconds",
            HELP,
            Value::Latency(Box::new(l)),
        ));
        out.push(Family::single(
            MAX_FAMILY,
            Type::Gauge,
            "seconds",
            MAX_HELP,
            Value::Float(max),
        ));
    })
}

/// README rows (name, type, unit, labels, meaning).
#[cfg(test)]
pub fn documented() -> Vec<(String, &'static str, &'static str, &'static str, String)> {
    vec![
        (
            FAMILY.to_string(),
            "histogram",
            "seconds",
            "",
            HELP.to_string(),
        ),
        (
            MAX_FAMILY.to_string(),
            "gauge",
            "seconds",
            "",
            MAX_HELP.to_string(),
        ),
    ]
}
