//! Latency histograms on atomics: log-linear buckets, fixed size, no
//! allocation, lock-free recording.
//!
//! A [`Histogram`] counts values (nanoseconds, by convention) in
//! [`BUCKETS`] buckets laid out like HdrHistogram's: values below
//! [`SUB_BUCKETS`] have a bucket each; above, every power of two is split
//! into [`SUB_BUCKETS`] equal buckets.
//!
//! ```text
//!  index:  0 1 2 .. 63 | 64 .. 127 | 128 .. 191 | ... | 1920 .. 1983
//!  value:  0 1 2 .. 63 | 64 .. 127 | 128 .. 254 | ... | 2^35 .. 2^36-1   (step 2^(e-6))
//!          exact         step 1      step 2             values >= 2^36 land in the last bucket
//! ```
//!
//! A value is reported as the middle of its bucket, so a quantile is within
//! 1/128 (0.8 %) of a value that was recorded: two significant digits, from
//! 1 ns to 68.7 s. [`Histogram::max`] is exact.
//!
//! Exporters read the buckets, never the recording path: [`cumulative_le`]
//! folds them into Prometheus' cumulative buckets at the fixed bounds
//! [`LE_BOUNDS_NS`] (each an edge of these buckets, so exact), and
//! [`summary_of_counts`] gives the quantiles of any bucket counts, e.g. the
//! difference of two readings (the values of the last minute).
//!
//! [`LatencyStats`] holds one histogram per [`CommandClass`]. The engine
//! tells a front end which classes of request it completed
//! ([`ClassCounts`]); the front end, which owns the clock, records one
//! elapsed time per batch for all of them (`record_n`), so the cost is a few
//! relaxed atomic adds per batch and class, never per byte.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// log2 of the buckets per power of two.
pub const SUB_BUCKET_BITS: u32 = 6;
/// Buckets per power of two (and the values recorded exactly).
pub const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Largest power of two with buckets of its own: values from
/// `2^(MAX_EXPONENT + 1)` (68.7 s in ns) share the last bucket.
pub const MAX_EXPONENT: u32 = 35;
/// Buckets in one histogram.
pub const BUCKETS: usize = (MAX_EXPONENT as usize - SUB_BUCKET_BITS as usize + 2) * SUB_BUCKETS;

/// The bucket of `v`.
#[inline]
pub const fn bucket_of(v: u64) -> usize {
    if v < SUB_BUCKETS as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    if e > MAX_EXPONENT {
        return BUCKETS - 1;
    }
    let shift = e - SUB_BUCKET_BITS;
    (shift as usize + 1) * SUB_BUCKETS + ((v >> shift) as usize & (SUB_BUCKETS - 1))
}

/// The smallest value of bucket `i` and the bucket's width.
pub const fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB_BUCKETS {
        return (i as u64, 1);
    }
    let shift = (i / SUB_BUCKETS - 1) as u32;
    let sub = (i % SUB_BUCKETS) as u64;
    ((SUB_BUCKETS as u64 + sub) << shift, 1 << shift)
}

/// The value a bucket stands for: its middle.
pub const fn bucket_value(i: usize) -> u64 {
    let (low, width) = bucket_range(i);
    low + width / 2
}

/// One histogram: [`BUCKETS`] counters, the sum and the maximum.
///
/// `record*` may be called from any number of threads (relaxed atomic
/// adds); the `*_owned` variants are plain loads and stores for a histogram
/// with a single writer (e.g. one AF_XDP queue's worker). Readers see each
/// counter exactly, but not all counters at one instant: a quantile read
/// while recording goes on is off by at most the values recorded meanwhile.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("sum", &self.sum())
            .field("max", &self.max())
            .finish()
    }
}

/// Quantiles reported for every histogram, in parts per million:
/// p50, p90, p99, p99.9.
pub const QUANTILES_PPM: [u32; 4] = [500_000, 900_000, 990_000, 999_000];

/// A histogram's figures at one moment (see [`Histogram::summary`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Their sum (wrapping).
    pub sum: u64,
    /// The largest (exact; 0 when empty).
    pub max: u64,
    /// The values at [`QUANTILES_PPM`] (0 when empty).
    pub quantiles: [u64; QUANTILES_PPM.len()],
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records `n` values equal to `v` (any thread).
    #[inline]
    pub fn record_n(&self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.buckets[bucket_of(v)].fetch_add(n, Relaxed);
        self.sum.fetch_add(v.wrapping_mul(n), Relaxed);
        if v > self.max.load(Relaxed) {
            self.max.fetch_max(v, Relaxed);
        }
    }

    /// Records one value (any thread).
    #[inline]
    pub fn record(&self, v: u64) {
        self.record_n(v, 1)
    }

    /// Records `n` values equal to `v`; only for a single writer.
    #[inline]
    pub fn record_n_owned(&self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        let b = &self.buckets[bucket_of(v)];
        b.store(b.load(Relaxed).wrapping_add(n), Relaxed);
        self.sum.store(
            self.sum.load(Relaxed).wrapping_add(v.wrapping_mul(n)),
            Relaxed,
        );
        if v > self.max.load(Relaxed) {
            self.max.store(v, Relaxed);
        }
    }

    /// Values recorded in bucket `i` (0 past the end).
    pub fn bucket(&self, i: usize) -> u64 {
        self.buckets.get(i).map_or(0, |b| b.load(Relaxed))
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |a, b| a.wrapping_add(b.load(Relaxed)))
    }

    /// Sum of the values recorded (wrapping).
    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    /// Largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }

    /// Count, sum, max and [`QUANTILES_PPM`] of this histogram.
    pub fn summary(&self) -> Summary {
        Self::summary_of(core::slice::from_ref(self))
    }

    /// The summary of the histograms in `parts` taken together (as if all
    /// their values had been recorded in one). One pass over the buckets.
    pub fn summary_of(parts: &[Histogram]) -> Summary {
        Self::summary_by(parts.len(), |p, i| parts[p].bucket(i), |p| &parts[p])
    }

    /// [`Histogram::summary_of`] over references.
    pub fn summary_of_refs(parts: &[&Histogram]) -> Summary {
        Self::summary_by(parts.len(), |p, i| parts[p].bucket(i), |p| parts[p])
    }

    fn summary_by<'h>(
        n: usize,
        bucket: impl Fn(usize, usize) -> u64,
        part: impl Fn(usize) -> &'h Histogram,
    ) -> Summary {
        let mut sum = 0u64;
        let mut max = 0u64;
        for p in 0..n {
            let h = part(p);
            sum = sum.wrapping_add(h.sum());
            max = max.max(h.max());
        }
        let mut counts = [0u64; BUCKETS];
        for (i, c) in counts.iter_mut().enumerate() {
            for p in 0..n {
                *c = c.wrapping_add(bucket(p, i));
            }
        }
        summary_of_counts(&counts, sum, max)
    }
}

/// The [`Summary`] of values whose bucket counts are `counts` (one per
/// bucket, e.g. the difference of two readings of a histogram), whose sum is
/// `sum` and which are known to be at most `max` (quantiles never exceed
/// it). One pass, no allocation.
pub fn summary_of_counts(counts: &[u64], sum: u64, max: u64) -> Summary {
    let mut s = Summary {
        sum,
        max,
        ..Summary::default()
    };
    s.count = counts.iter().fold(0u64, |a, c| a.wrapping_add(*c));
    if s.count == 0 {
        return s;
    }
    // rank r (1-based) of each quantile: ceil(q * count), at least 1
    let mut ranks = [0u64; QUANTILES_PPM.len()];
    for (r, q) in ranks.iter_mut().zip(QUANTILES_PPM) {
        let want = (u128::from(s.count) * u128::from(q)).div_ceil(1_000_000);
        *r = (want as u64).max(1);
    }
    let mut seen = 0u64;
    let mut next = 0usize;
    for (i, c) in counts.iter().enumerate() {
        if *c == 0 {
            continue;
        }
        seen = seen.wrapping_add(*c);
        while next < ranks.len() && seen >= ranks[next] {
            // never above the maximum (it lies in the top bucket)
            s.quantiles[next] = bucket_value(i).min(max);
            next += 1;
        }
        if next == ranks.len() {
            break;
        }
    }
    s
}

/// Upper bounds (`le`) of the Prometheus histogram buckets, in nanoseconds:
/// 2^k and 1.5 x 2^k from 2^10 ns (1.024 us) to 2^35 ns (34.4 s), 51
/// bounds, about two per octave.
///
/// Every bound is the lower edge of a bucket of [`Histogram`] (1.5 x 2^k is
/// 96 x 2^(k-6): the 33rd step of its power of two), so the count below a
/// bound is exact, never interpolated: [`cumulative_le`] counts the values
/// recorded below each bound. Values are whole nanoseconds, so "below
/// `le`" is "at most `le` - 1 ns"; Prometheus' "at most `le`" differs only
/// for values of exactly `le` nanoseconds.
pub const LE_BOUNDS_NS: [u64; LE_BOUNDS] = le_bounds();
/// Number of [`LE_BOUNDS_NS`] (the `+Inf` bucket comes on top).
pub const LE_BOUNDS: usize = 2 * (LE_MAX_EXPONENT - LE_MIN_EXPONENT) as usize + 1;
/// The smallest bound is 2^LE_MIN_EXPONENT ns.
const LE_MIN_EXPONENT: u32 = 10;
/// The largest bound is 2^LE_MAX_EXPONENT ns.
const LE_MAX_EXPONENT: u32 = MAX_EXPONENT;

const fn le_bounds() -> [u64; LE_BOUNDS] {
    let mut out = [0u64; LE_BOUNDS];
    let mut k = LE_MIN_EXPONENT;
    let mut i = 0;
    while k <= LE_MAX_EXPONENT {
        out[i] = 1 << k;
        i += 1;
        if k < LE_MAX_EXPONENT {
            out[i] = 3 << (k - 1);
            i += 1;
        }
        k += 1;
    }
    out
}

/// Cumulative counts per [`LE_BOUNDS_NS`] bound (values below it) and, last,
/// of every value (`+Inf`), from per-bucket `counts`. No allocation.
pub fn cumulative_le(counts: &[u64]) -> [u64; LE_BOUNDS + 1] {
    let mut out = [0u64; LE_BOUNDS + 1];
    let mut acc = 0u64;
    let mut next = 0usize;
    for (i, c) in counts.iter().enumerate().take(BUCKETS) {
        let (low, _) = bucket_range(i);
        while next < LE_BOUNDS && LE_BOUNDS_NS[next] <= low {
            out[next] = acc;
            next += 1;
        }
        acc = acc.wrapping_add(*c);
    }
    while next < LE_BOUNDS {
        out[next] = acc;
        next += 1;
    }
    out[LE_BOUNDS] = acc;
    out
}

/// What kind of request a latency is recorded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum CommandClass {
    /// `get`, `gets` (any number of keys).
    Get,
    /// `gat`, `gats`.
    Gat,
    /// `set add replace append prepend cas` (also refused as too large).
    Set,
    /// `delete`.
    Delete,
    /// `incr`, `decr`.
    Arith,
    /// `touch`.
    Touch,
    /// `mg`.
    MetaGet,
    /// `ms`.
    MetaSet,
    /// `md`.
    MetaDelete,
    /// `ma`.
    MetaArith,
    /// `mn`, `me`.
    MetaOther,
    /// `stats version verbosity flush_all quit`.
    Admin,
    /// Requests answered with a protocol error (`ERROR`, `CLIENT_ERROR ...`).
    Invalid,
}

impl CommandClass {
    /// Number of classes.
    pub const COUNT: usize = 13;
    /// Every class, in index order.
    pub const ALL: [CommandClass; Self::COUNT] = [
        CommandClass::Get,
        CommandClass::Gat,
        CommandClass::Set,
        CommandClass::Delete,
        CommandClass::Arith,
        CommandClass::Touch,
        CommandClass::MetaGet,
        CommandClass::MetaSet,
        CommandClass::MetaDelete,
        CommandClass::MetaArith,
        CommandClass::MetaOther,
        CommandClass::Admin,
        CommandClass::Invalid,
    ];

    /// Index in `0..COUNT`.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Name used in metric labels (`get`, `meta_get`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            CommandClass::Get => "get",
            CommandClass::Gat => "gat",
            CommandClass::Set => "set",
            CommandClass::Delete => "delete",
            CommandClass::Arith => "arith",
            CommandClass::Touch => "touch",
            CommandClass::MetaGet => "meta_get",
            CommandClass::MetaSet => "meta_set",
            CommandClass::MetaDelete => "meta_delete",
            CommandClass::MetaArith => "meta_arith",
            CommandClass::MetaOther => "meta_other",
            CommandClass::Admin => "admin",
            CommandClass::Invalid => "invalid",
        }
    }

    /// The commands of the class, for documentation.
    pub const fn commands(self) -> &'static str {
        match self {
            CommandClass::Get => "get gets",
            CommandClass::Gat => "gat gats",
            CommandClass::Set => "set add replace append prepend cas",
            CommandClass::Delete => "delete",
            CommandClass::Arith => "incr decr",
            CommandClass::Touch => "touch",
            CommandClass::MetaGet => "mg",
            CommandClass::MetaSet => "ms",
            CommandClass::MetaDelete => "md",
            CommandClass::MetaArith => "ma",
            CommandClass::MetaOther => "mn me",
            CommandClass::Admin => "stats version verbosity flush_all quit",
            CommandClass::Invalid => "requests answered ERROR / CLIENT_ERROR",
        }
    }
}

/// Requests completed per [`CommandClass`]: what the engine reports to a
/// front end so it can record their latency. Fixed size, `Copy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts([u32; CommandClass::COUNT]);

impl ClassCounts {
    /// All zero.
    pub const fn new() -> Self {
        ClassCounts([0; CommandClass::COUNT])
    }

    /// Counts one request of class `c` (saturating).
    #[inline]
    pub fn add(&mut self, c: CommandClass) {
        let v = &mut self.0[c.index()];
        *v = v.saturating_add(1);
    }

    /// Adds every count of `other` (saturating).
    #[inline]
    pub fn merge(&mut self, other: &ClassCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
    }

    /// Requests of class `c`.
    pub fn get(&self, c: CommandClass) -> u32 {
        self.0[c.index()]
    }

    /// No request counted.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&v| v == 0)
    }

    /// Requests of every class together.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&v| u64::from(v)).sum()
    }

    /// Returns the counts and leaves zeros.
    #[inline]
    pub fn take(&mut self) -> ClassCounts {
        core::mem::take(self)
    }
}

/// One latency [`Histogram`] per [`CommandClass`], in nanoseconds: from the
/// moment a request is complete in the front end's buffer to the moment its
/// reply is handed to the socket or ring.
#[derive(Debug, Default)]
pub struct LatencyStats {
    classes: [Histogram; CommandClass::COUNT],
}

impl LatencyStats {
    /// All empty.
    pub const fn new() -> Self {
        LatencyStats {
            classes: [const { Histogram::new() }; CommandClass::COUNT],
        }
    }

    /// The histogram of class `c`.
    pub fn class(&self, c: CommandClass) -> &Histogram {
        &self.classes[c.index()]
    }

    /// Records `elapsed_ns` once for every request counted in `counts`
    /// (any thread).
    #[inline]
    pub fn record(&self, counts: &ClassCounts, elapsed_ns: u64) {
        for (h, &n) in self.classes.iter().zip(counts.0.iter()) {
            if n != 0 {
                h.record_n(elapsed_ns, u64::from(n));
            }
        }
    }

    /// [`LatencyStats::record`] for a single writer.
    #[inline]
    pub fn record_owned(&self, counts: &ClassCounts, elapsed_ns: u64) {
        for (h, &n) in self.classes.iter().zip(counts.0.iter()) {
            if n != 0 {
                h.record_n_owned(elapsed_ns, u64::from(n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut prev_end = 0u64;
        for i in 0..BUCKETS {
            let (low, width) = bucket_range(i);
            assert_eq!(low, prev_end, "bucket {i}");
            assert_eq!(bucket_of(low), i);
            assert_eq!(bucket_of(low + width - 1), i);
            prev_end = low + width;
        }
        assert_eq!(prev_end, 1 << (MAX_EXPONENT + 1));
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(1 << 40), BUCKETS - 1);
    }

    #[test]
    fn reported_values_have_two_significant_digits() {
        // every value's bucket middle is within 1/128 of it
        let mut v = 1u64;
        while v < (1 << (MAX_EXPONENT + 1)) {
            for x in [v, v + v / 3, v * 2 - 1] {
                if x >= 1 << (MAX_EXPONENT + 1) {
                    continue;
                }
                let m = bucket_value(bucket_of(x));
                let err = m.abs_diff(x) as f64 / x as f64;
                assert!(err <= 1.0 / 128.0 + 1e-12, "{x} -> {m}");
            }
            v = v * 2 + 1;
        }
    }

    #[test]
    fn quantiles_match_a_sorted_reference() {
        let h = Histogram::new();
        let mut values: Vec<u64> = (1..=10_000u64)
            .map(|i| i * i * 37 % 5_000_000 + 1)
            .collect();
        for &v in &values {
            h.record(v);
        }
        values.sort();
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.max, *values.last().unwrap());
        assert_eq!(s.sum, values.iter().sum::<u64>());
        for (q, got) in QUANTILES_PPM.iter().zip(s.quantiles) {
            let rank = (values.len() as u64 * u64::from(*q)).div_ceil(1_000_000) as usize;
            let want = values[rank - 1];
            let err = got.abs_diff(want) as f64 / want as f64;
            assert!(err <= 1.0 / 128.0, "q={q} got {got} want {want}");
        }
    }

    #[test]
    fn record_n_owned_and_merge_agree() {
        let a = Histogram::new();
        let b = Histogram::new();
        a.record_n(1000, 3);
        b.record_n_owned(1000, 2);
        b.record_n_owned(5, 0);
        b.record_n_owned(2_000_000, 1);
        let s = Histogram::summary_of_refs(&[&a, &b]);
        assert_eq!(s.count, 6);
        assert_eq!(s.max, 2_000_000);
        assert_eq!(s.sum, 5000 + 2_000_000);
        assert_eq!(s.quantiles[0], bucket_value(bucket_of(1000)));
        assert_eq!(s.quantiles[3], 2_000_000);
        assert_eq!(Histogram::new().summary(), Summary::default());
    }

    #[test]
    fn huge_values_clamp_and_max_stays_exact() {
        let h = Histogram::new();
        h.record(u64::MAX / 2);
        let s = h.summary();
        assert_eq!(s.count, 1);
        assert_eq!(s.max, u64::MAX / 2);
        assert_eq!(s.quantiles[0], bucket_value(BUCKETS - 1));
    }

    #[test]
    fn le_bounds_are_bucket_edges_and_counts_below_them_are_exact() {
        assert_eq!(LE_BOUNDS, 51);
        assert_eq!(LE_BOUNDS_NS[0], 1024);
        assert_eq!(LE_BOUNDS_NS[1], 1536);
        assert_eq!(LE_BOUNDS_NS[LE_BOUNDS - 1], 1 << 35);
        for w in LE_BOUNDS_NS.windows(2) {
            assert!(w[0] < w[1]);
            let ratio = w[1] as f64 / w[0] as f64;
            assert!(ratio == 1.5 || (ratio - 4.0 / 3.0).abs() < 1e-12, "{w:?}");
        }
        for b in LE_BOUNDS_NS {
            assert_eq!(bucket_range(bucket_of(b)).0, b, "{b} is a bucket edge");
        }
        // values on both sides of every bound, and beyond the last one
        let h = Histogram::new();
        let mut values = Vec::new();
        for b in LE_BOUNDS_NS {
            values.extend([b - 1, b, b + 1]);
        }
        values.extend([0, 5, 1 << 40, u64::MAX]);
        for &v in &values {
            h.record(v);
        }
        let counts: Vec<u64> = (0..BUCKETS).map(|i| h.bucket(i)).collect();
        let le = cumulative_le(&counts);
        for (i, b) in LE_BOUNDS_NS.iter().enumerate() {
            let below = values.iter().filter(|&&v| v < *b).count() as u64;
            assert_eq!(le[i], below, "le {b}");
        }
        assert_eq!(le[LE_BOUNDS], values.len() as u64);
        assert_eq!(cumulative_le(&[]), [0; LE_BOUNDS + 1]);
    }

    #[test]
    fn summary_of_counts_of_a_difference() {
        let h = Histogram::new();
        h.record_n(1_000, 100);
        let before: Vec<u64> = (0..BUCKETS).map(|i| h.bucket(i)).collect();
        h.record_n(50_000, 10);
        let diff: Vec<u64> = (0..BUCKETS).map(|i| h.bucket(i) - before[i]).collect();
        let s = summary_of_counts(&diff, 500_000, h.max());
        assert_eq!(s.count, 10);
        assert_eq!(
            s.quantiles,
            [bucket_value(bucket_of(50_000)).min(50_000); 4]
        );
        assert_eq!(
            summary_of_counts(&[], 0, 9),
            Summary {
                max: 9,
                ..Summary::default()
            }
        );
    }

    #[test]
    fn class_counts_and_latency_stats() {
        let mut c = ClassCounts::new();
        c.add(CommandClass::Get);
        c.add(CommandClass::Get);
        c.add(CommandClass::MetaSet);
        let mut d = ClassCounts::new();
        d.add(CommandClass::Get);
        d.merge(&c);
        assert_eq!(d.get(CommandClass::Get), 3);
        assert_eq!(d.total(), 4);
        let l = LatencyStats::new();
        l.record(&d.take(), 500);
        assert!(d.is_empty());
        assert_eq!(l.class(CommandClass::Get).count(), 3);
        assert_eq!(l.class(CommandClass::MetaSet).summary().quantiles[0], 500);
        for (i, c) in CommandClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert!(!c.name().is_empty() && !c.commands().is_empty());
        }
    }
}
