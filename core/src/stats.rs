//! Named counters and gauges on atomics, iterated without allocation.
//!
//! [`metrics!`](crate::metrics) declares a struct whose fields are [`Metric`]s
//! (one `AtomicU64` each) with a kind, a unit and a one-line description: the
//! one place a metric is named. It generates `new()`, `for_each()` (name,
//! description, kind, value), `DESCS` / `for_each_desc()` (the full
//! [`Desc`], for exporters and the README's metric table), `assign_sum()`
//! (fold per-shard copies into one) and `mark_counters()` / `since()` (a
//! view whose counters start again from a mark, for memcached's `stats
//! reset`, while the counters themselves never go down). All operations use
//! `Relaxed` ordering: metrics are statistics, never synchronisation.

use core::sync::atomic::{AtomicU64, Ordering};

/// What a metric measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonically increasing count of events since start.
    Counter,
    /// A level that goes up and down (items stored, bytes used, ...).
    Gauge,
}

/// Everything known about one metric but its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// Field name (snake case, unique within its struct).
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// What one unit of the value is (`bytes`, `items`, `connections`, ...).
    pub unit: &'static str,
    /// One line: what is counted, and when.
    pub description: &'static str,
}

/// The unit of a metric declared without one.
pub const DEFAULT_UNIT: &str = "events";

/// One named statistic: an `AtomicU64` with convenience helpers.
///
/// `incr`/`add`/`sub` are atomic read-modify-writes and may be used by any
/// number of threads. The `*_owned` variants are a plain load and store: they
/// are only correct when a single writer (e.g. the holder of a shard lock)
/// updates this metric, and are much cheaper on the hot path.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Metric(AtomicU64);

impl Metric {
    /// A metric starting at zero.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }
    /// A metric starting at `v`.
    pub const fn with_value(v: u64) -> Self {
        Self(AtomicU64::new(v))
    }
    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Overwrite the value.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed)
    }
    /// Atomically add one (wrapping).
    #[inline]
    pub fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Atomically add `n` (wrapping).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Atomically subtract `n` (wrapping).
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    /// Add one; only for a metric with a single writer (see type docs).
    #[inline]
    pub fn incr_owned(&self) {
        self.add_owned(1)
    }
    /// Add `n` (wrapping); only for a metric with a single writer.
    #[inline]
    pub fn add_owned(&self, n: u64) {
        self.set(self.get().wrapping_add(n))
    }
    /// Subtract `n` (wrapping); only for a metric with a single writer.
    #[inline]
    pub fn sub_owned(&self, n: u64) {
        self.set(self.get().wrapping_sub(n))
    }
}

/// Declare a struct of named [`Metric`]s.
///
/// Each field is `name: Kind "description"` or `name: Kind("unit")
/// "description"`; without a unit the unit is [`DEFAULT_UNIT`].
///
/// ```
/// petrel_core::metrics! {
///     /// Example metrics.
///     pub struct Example {
///         requests: Counter("requests") "requests received",
///         open: Gauge "connections open",
///     }
/// }
/// let m = Example::new();
/// m.requests.incr();
/// let mut seen = 0;
/// m.for_each(|name, _desc, _kind, v| if name == "requests" { seen = v });
/// assert_eq!(seen, 1);
/// assert_eq!(Example::DESCS[0].unit, "requests");
/// assert_eq!(Example::DESCS[1].unit, petrel_core::stats::DEFAULT_UNIT);
/// ```
#[macro_export]
macro_rules! metrics {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $field:ident : $kind:ident $( ( $unit:literal ) )? $desc:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name {
            $( #[doc = $desc] pub $field: $crate::stats::Metric, )*
        }

        impl $name {
            /// Number of metrics in the struct.
            pub const LEN: usize = [$( stringify!($field) ),*].len();

            /// Name, kind, unit and description of every metric, in
            /// declaration order.
            pub const DESCS: [$crate::stats::Desc; Self::LEN] = [$(
                $crate::stats::Desc {
                    name: stringify!($field),
                    kind: $crate::stats::Kind::$kind,
                    unit: $crate::__metric_unit!($($unit)?),
                    description: $desc,
                },
            )*];

            /// Call `f(desc, value)` for every metric, in declaration order.
            /// Never allocates.
            pub fn for_each_desc(&self, mut f: impl FnMut(&$crate::stats::Desc, u64)) {
                let mut i = 0usize;
                $(
                    f(&Self::DESCS[i], self.$field.get());
                    i += 1;
                )*
                let _ = i;
            }

            /// All metrics at zero.
            pub const fn new() -> Self {
                Self { $( $field: $crate::stats::Metric::new(), )* }
            }

            /// Call `f(name, description, kind, value)` for every metric, in
            /// declaration order. Never allocates.
            pub fn for_each(
                &self,
                mut f: impl FnMut(&'static str, &'static str, $crate::stats::Kind, u64),
            ) {
                $( f(stringify!($field), $desc, $crate::stats::Kind::$kind, self.$field.get()); )*
            }

            /// A copy in which every counter reads what it counted since
            /// `base` took its values ([`mark_counters`](Self::mark_counters);
            /// never below zero) and every gauge its current value: a view
            /// that starts again from a reset without ever lowering the
            /// counters themselves. Never allocates.
            pub fn since(&self, base: &Self) -> Self {
                Self { $(
                    $field: $crate::stats::Metric::with_value(
                        match $crate::stats::Kind::$kind {
                            $crate::stats::Kind::Counter => {
                                self.$field.get().saturating_sub(base.$field.get())
                            }
                            $crate::stats::Kind::Gauge => self.$field.get(),
                        },
                    ),
                )* }
            }

            /// Set every counter of `self` to its value in `current` (the
            /// base of [`since`](Self::since)); gauges are left as they are.
            pub fn mark_counters(&self, current: &Self) {
                $(
                    if let $crate::stats::Kind::Counter = $crate::stats::Kind::$kind {
                        self.$field.set(current.$field.get());
                    }
                )*
            }

            /// Set every metric of `self` to the sum of that metric over `parts`.
            pub fn assign_sum<'p>(&self, parts: impl Iterator<Item = &'p Self> + Clone)
            where
                Self: 'p,
            {
                $(
                    self.$field.set(
                        parts.clone().fold(0u64, |acc, p| acc.wrapping_add(p.$field.get())),
                    );
                )*
            }
        }
    };
}

/// The unit of a [`metrics!`](crate::metrics) field (implementation detail).
#[doc(hidden)]
#[macro_export]
macro_rules! __metric_unit {
    () => {
        $crate::stats::DEFAULT_UNIT
    };
    ($unit:literal) => {
        $unit
    };
}

#[cfg(test)]
#[allow(dead_code)]
mod tests {
    use super::*;

    crate::metrics! {
        /// Test metrics.
        pub struct TestStats {
            a: Counter "first",
            b: Gauge "second",
        }
    }

    #[test]
    fn for_each_reports_all_in_order() {
        let s = TestStats::new();
        s.a.add(3);
        s.b.incr();
        s.b.add_owned(4);
        s.b.sub(2);
        let mut out = [("", "", Kind::Counter, 0u64); 2];
        let mut i = 0;
        s.for_each(|n, d, k, v| {
            out[i] = (n, d, k, v);
            i += 1;
        });
        assert_eq!(TestStats::LEN, 2);
        assert_eq!(out[0], ("a", "first", Kind::Counter, 3));
        assert_eq!(out[1], ("b", "second", Kind::Gauge, 3));
    }

    #[test]
    fn descs_carry_units_and_follow_values() {
        crate::metrics! {
            /// With units.
            pub struct Units {
                read: Counter("bytes") "bytes read",
                plain: Gauge "no unit given",
            }
        }
        let u = Units::new();
        u.read.add(9);
        let mut seen = std::vec::Vec::new();
        u.for_each_desc(|d, v| seen.push((*d, v)));
        assert_eq!(seen.len(), Units::LEN);
        assert_eq!(seen[0].0.unit, "bytes");
        assert_eq!(seen[0].0.kind, Kind::Counter);
        assert_eq!(seen[0].1, 9);
        assert_eq!(seen[1].0.unit, DEFAULT_UNIT);
        assert_eq!(seen[1].0.description, "no unit given");
        for d in StoreStats::DESCS {
            assert_ne!(d.unit, DEFAULT_UNIT, "{} needs a unit", d.name);
        }
    }

    #[test]
    fn since_counts_counters_from_the_mark_and_keeps_gauges() {
        let cur = TestStats::new();
        let base = TestStats::new();
        cur.a.add(5);
        cur.b.add(3);
        let v = cur.since(&base);
        assert_eq!((v.a.get(), v.b.get()), (5, 3));
        base.mark_counters(&cur);
        assert_eq!(base.b.get(), 0, "gauges are never marked");
        cur.a.add(2);
        cur.b.incr();
        let v = cur.since(&base);
        assert_eq!((v.a.get(), v.b.get()), (2, 4));
        assert_eq!(cur.a.get(), 7, "the counter itself keeps counting");
        // a base ahead of the counter (a reset racing a reader) reads 0
        base.a.set(100);
        assert_eq!(cur.since(&base).a.get(), 0);
    }

    #[test]
    fn assign_sum_adds_parts() {
        let parts = [TestStats::new(), TestStats::new()];
        parts[0].a.set(5);
        parts[1].a.set(7);
        parts[1].b.set(1);
        let total = TestStats::new();
        total.assign_sum(parts.iter());
        assert_eq!(total.a.get(), 12);
        assert_eq!(total.b.get(), 1);
    }
}

crate::metrics! {
    /// Accounting of one [`Store`](crate::store::Store). Gauges are exact at
    /// the moment [`Store::stats`](crate::store::Store::stats) returns (summed
    /// over shards); counters count events since construction.
    #[repr(align(64))]
    pub struct StoreStats {
        items: Gauge("items") "items currently linked in the hash table",
        item_bytes: Gauge("bytes") "bytes of linked items: header + key + value",
        segments: Gauge("segments") "segments in the store",
        segments_free: Gauge("segments") "segments on the free lists",
        segments_used: Gauge("segments") "segments holding items (open or sealed)",
        segment_bytes_written: Gauge("bytes") "bytes appended to used segments, live or dead",
        hash_buckets: Gauge("buckets") "main hash buckets (7 item slots each)",
        hash_slots_used: Gauge("slots") "hash slots holding an item pointer",
        overflow_buckets: Gauge("buckets") "overflow buckets in the pool",
        overflow_buckets_used: Gauge("buckets") "overflow buckets chained to a main bucket",
        gets: Counter("lookups") "counted lookups",
        get_hits: Counter("lookups") "counted lookups that found a live item",
        get_misses: Counter("lookups") "counted lookups that found nothing live",
        stores: Counter("requests") "successful set/add/replace/append/prepend/cas",
        store_not_stored: Counter("requests") "stores refused: add of present or replace/append/prepend of absent key",
        store_exists: Counter("requests") "stores/deletes/arith refused: cas mismatch",
        store_not_found: Counter("requests") "cas stores/deletes/arith/touches on an absent key",
        store_too_large: Counter("requests") "stores refused because the item exceeds max_item_bytes",
        store_no_memory: Counter("requests") "stores refused because no segment could be freed",
        deletes: Counter("requests") "successful deletes",
        ariths: Counter("requests") "successful incr/decr",
        touches: Counter("requests") "successful touches (including gat)",
        evicted_items: Counter("items") "live items removed by segment eviction (all policies)",
        evicted_segments_fifo: Counter("segments") "segments evicted by the FIFO policy",
        evicted_segments_random: Counter("segments") "segments evicted by the random policy",
        evicted_segments_cte: Counter("segments") "segments evicted by the closest-to-expiry policy",
        merge_passes: Counter("passes") "merge-eviction passes",
        merge_segments_freed: Counter("segments") "segments freed by merge eviction",
        merge_retained_items: Counter("items") "items copied (kept) by merge eviction",
        compactions: Counter("passes") "compaction passes (all live items kept)",
        compacted_items: Counter("items") "items moved by compaction",
        hash_full_evictions: Counter("items") "items evicted because their hash chain was full and no overflow bucket was free",
        expired_lazy: Counter("items") "expired items removed when accessed",
        expired_segments: Counter("segments") "expired segments reclaimed whole by expire()",
        expired_segment_items: Counter("items") "live items reclaimed with their expired segment",
        expired_passed: Counter("items") "expired items dropped by a merge or compaction pass (not by a lookup: memcached's get_expired counts only those)",
        flushes: Counter("flushes") "flush_all executions (immediate or when a delayed flush fell due)",
        flushed_items: Counter("items") "items removed because a flush invalidated them",
        flushed_lazy: Counter("items") "flushed items removed when accessed",
        flushed_segments: Counter("segments") "segments reclaimed whole because a flush invalidated them",
        lock_waits: Counter("acquisitions") "shard-lock acquisitions that found the lock held past a short spin and waited for it (with threads: yielding the CPU to the holder)",
    }
}
