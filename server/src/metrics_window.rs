//! Latency quantiles over the last minute, for people who read `stats` and
//! `/metrics.json` by eye (Prometheus computes its own windows from the
//! histogram's buckets).
//!
//! A quantile since start barely moves after a week of uptime; these are
//! the quantiles of the values recorded in the last [`WINDOW`]. The
//! histograms only count up, so the window is a difference: every
//! [`STEP`] a reading of every latency histogram is kept (only its
//! non-empty buckets), and a collection subtracts the newest reading at
//! least [`WINDOW`] old. The window is therefore [`WINDOW`] to
//! [`WINDOW`] + [`STEP`] long (shorter only while the server is younger),
//! and its exact length is reported with the figures. Nothing of this runs
//! on a worker: recording a latency costs what it did.
//!
//! ```text
//!  t-65   t-60   t-55  ...  t-5    t        readings every STEP (5 s)
//!   [r0]   [r1]   [r2] ...  [r12]  now      window = now - r1 (newest >= 60 s old)
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use petrel_core::histogram::summary_of_counts;

use crate::metrics::{Family, Value, Windowed};

/// The stretch of time the windowed quantiles cover (at least).
pub const WINDOW: Duration = Duration::from_secs(60);
/// How often the histograms are read.
pub const STEP: Duration = Duration::from_secs(5);

/// One reading of one histogram: its non-empty buckets and sum.
#[derive(Debug, Default)]
struct Reading {
    buckets: Vec<(u32, u64)>,
    sum_ns: u64,
}

/// Every histogram read at one moment, by series key.
#[derive(Debug)]
struct Snapshot {
    at: Instant,
    series: HashMap<String, Reading>,
}

/// The readings of the last [`WINDOW`] + [`STEP`].
#[derive(Debug, Default)]
pub struct LatencyWindow {
    ring: Mutex<VecDeque<Snapshot>>,
}

/// The key of one histogram series: family name and label values.
fn key(family: &str, labels: &[(&'static str, String)]) -> String {
    let mut k = family.to_string();
    for (n, v) in labels {
        k.push('\u{0}');
        k.push_str(n);
        k.push('=');
        k.push_str(v);
    }
    k
}

impl LatencyWindow {
    /// No readings yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps a reading of every histogram in `families` taken at `at`, and
    /// forgets the readings no window will need again.
    pub fn record(&self, at: Instant, families: &[Family]) {
        let mut series = HashMap::new();
        for f in families {
            for s in &f.samples {
                if let Value::Latency(h) = &s.value {
                    let buckets = h
                        .buckets
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| **c != 0)
                        .map(|(i, c)| (i as u32, *c))
                        .collect();
                    series.insert(
                        key(&f.name, &s.labels),
                        Reading {
                            buckets,
                            sum_ns: h.sum_ns,
                        },
                    );
                }
            }
        }
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.push_back(Snapshot { at, series });
        // keep the newest reading that is at least WINDOW old, drop older ones
        while ring.len() >= 2 && at.saturating_duration_since(ring[1].at) >= WINDOW {
            ring.pop_front();
        }
    }

    /// Sets the `window` of every histogram in `families` (read at `now`):
    /// the values recorded since the newest reading at least [`WINDOW`]
    /// old, or since the oldest reading while there is none that old. A
    /// series absent from that reading began after it (all its values are
    /// in the window). Without any reading, windows stay unset.
    pub fn annotate(&self, now: Instant, families: &mut [Family]) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let base = ring
            .iter()
            .rev()
            .find(|s| now.saturating_duration_since(s.at) >= WINDOW)
            .or_else(|| ring.front());
        let Some(base) = base else {
            return;
        };
        let seconds = now.saturating_duration_since(base.at).as_secs_f64();
        let empty = Reading::default();
        for f in families.iter_mut() {
            for s in f.samples.iter_mut() {
                let k = key(&f.name, &s.labels);
                if let Value::Latency(h) = &mut s.value {
                    let then = base.series.get(&k).unwrap_or(&empty);
                    let mut diff = h.buckets.clone();
                    for (i, c) in &then.buckets {
                        if let Some(d) = diff.get_mut(*i as usize) {
                            *d = d.saturating_sub(*c);
                        }
                    }
                    h.window = Some(Windowed {
                        seconds,
                        summary: summary_of_counts(
                            &diff,
                            h.sum_ns.wrapping_sub(then.sum_ns),
                            h.max_ns,
                        ),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{latency_families, LATENCY_FAMILY};
    use petrel_core::histogram::{bucket_of, bucket_value, CommandClass, LatencyStats};

    fn window_of(f: &[Family], class: &str) -> Option<Windowed> {
        f.iter()
            .filter(|f| f.name == LATENCY_FAMILY)
            .flat_map(|f| f.samples.iter())
            .find(|s| s.labels[1].1 == class)
            .and_then(|s| match &s.value {
                Value::Latency(h) => h.window,
                _ => None,
            })
    }

    #[test]
    fn quantiles_cover_only_the_last_window() {
        let l = LatencyStats::new();
        let w = LatencyWindow::new();
        let t0 = Instant::now();
        let read = || latency_families(&[("tcp", &l)]).to_vec();
        // no reading yet: no window
        l.class(CommandClass::Get).record_n(1_000, 1);
        let mut f = read();
        w.annotate(t0, &mut f);
        assert_eq!(window_of(&f, "get"), None);
        w.record(t0, &read());
        // an old slow minute, then a fast one
        l.class(CommandClass::Get).record_n(5_000_000, 1000);
        for i in 1..=12 {
            w.record(t0 + STEP * i, &read());
        }
        l.class(CommandClass::Get).record_n(10_000, 500);
        // 12 steps (60 s) later than the slow values: they are still inside
        let mut f = read();
        w.annotate(t0 + STEP * 12 + Duration::from_secs(1), &mut f);
        let win = window_of(&f, "get").unwrap();
        assert_eq!(win.summary.count, 1500);
        assert_eq!(win.seconds, 61.0);
        // one more step: the reading taken right after them is the base
        w.record(t0 + STEP * 13, &read());
        let mut f = read();
        w.annotate(t0 + STEP * 13 + Duration::from_secs(1), &mut f);
        let win = window_of(&f, "get").unwrap();
        assert_eq!(win.summary.count, 500);
        assert_eq!(win.seconds, 61.0);
        assert_eq!(win.summary.quantiles[3], bucket_value(bucket_of(10_000)));
        assert_eq!(win.summary.sum, 500 * 10_000);
        // a class that began after the base reading: all its values count
        l.class(CommandClass::Set).record_n(7_000, 3);
        let mut f = read();
        w.annotate(t0 + STEP * 13 + Duration::from_secs(2), &mut f);
        assert_eq!(window_of(&f, "set").unwrap().summary.count, 3);
        // readings older than needed are dropped
        assert!(w.ring.lock().unwrap().len() <= 14);
    }

    #[test]
    fn a_young_server_reports_the_window_it_has() {
        let l = LatencyStats::new();
        let w = LatencyWindow::new();
        let t0 = Instant::now();
        w.record(t0, &latency_families(&[("tcp", &l)]));
        l.class(CommandClass::Get).record_n(2_000, 4);
        let mut f = latency_families(&[("tcp", &l)]).to_vec();
        w.annotate(t0 + Duration::from_secs(3), &mut f);
        let win = window_of(&f, "get").unwrap();
        assert_eq!((win.seconds, win.summary.count), (3.0, 4));
    }
}
