//! The store's configuration and why one can be rejected.

/// Largest number of shards a store can have.
pub const MAX_SHARDS: usize = 64;

/// Eviction policy used when a write needs a segment and none is free.
///
/// Before any policy runs, a write that finds no free segment first
/// reclaims an expired or entirely flushed segment at the head of a TTL
/// chain, if there is one. Every policy evicts whole segments: all live
/// items of an evicted segment are unlinked (`evicted_items`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Never evict: the write fails with [`StoreError::NoMemory`](super::StoreError::NoMemory).
    None,
    /// Evict the segment opened longest ago (sealed segments first).
    Fifo,
    /// Evict a pseudo-randomly chosen segment (sealed segments first).
    Random,
    /// Evict the segment that expires soonest, "closest to expiry"
    /// (non-expiring segments last, sealed segments first).
    Cte,
    /// Segcache's merge-based eviction (the default). Dead space goes
    /// first: of the runs of `compact` consecutive sealed segments starting
    /// within the first 256 segments of the TTL chains (oldest first), the
    /// one with the fewest live bytes, if they fit in one segment, is
    /// copied into one segment (compaction: nothing is evicted, and as
    /// little as possible is moved while the shard is locked). Otherwise a
    /// TTL bucket is chosen round-robin among those with at least two
    /// consecutive sealed segments at the head of their chain (the oldest)
    /// and `merge` segments at its head are merged into one: from each, the
    /// items with the
    /// highest access frequency are copied until that source's share
    /// (1/`merge` of a segment) is used, the rest are evicted; while the
    /// destination is less than 3/4 full, further segments of the run (up to
    /// `max`) are consumed the same way. Moved items keep their cas; their
    /// frequency is halved. Falls back to FIFO when no bucket qualifies.
    /// One segment per shard is kept in reserve as the merge destination.
    Merge {
        /// Most segments one pass may consume (2..=32).
        max: usize,
        /// Segments merged into one by a merge-eviction pass (2..=32).
        merge: usize,
        /// Fewest segments a compaction must free room from (>= 2).
        compact: usize,
    },
}

/// Store configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Bytes of segment memory (all shards together); default 64 MiB.
    pub item_memory_bytes: usize,
    /// Bytes per segment: power of two; default 1 MiB.
    pub segment_bytes: usize,
    /// Number of shards: power of two, <= [`MAX_SHARDS`]; default 1.
    pub shards: usize,
    /// log2 of the total number of main hash buckets (0 = automatic).
    pub hash_power: u8,
    /// Overflow bucket pool size in percent of the main buckets.
    pub overflow_percent: u8,
    /// Largest item (header + key + value) accepted; default 1 MiB.
    pub max_item_bytes: usize,
    /// Eviction policy; default `Merge { max: 8, merge: 4, compact: 2 }`.
    pub eviction: Eviction,
    /// Seed for hashing and pseudo-random choices.
    pub seed: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            item_memory_bytes: 64 << 20,
            segment_bytes: 1 << 20,
            shards: 1,
            hash_power: 0,
            overflow_percent: 25,
            max_item_bytes: 1 << 20,
            eviction: Eviction::Merge {
                max: 8,
                merge: 4,
                compact: 2,
            },
            seed: 0x5eed_0f9e_77e1,
        }
    }
}

/// Why a configuration or arena cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `segment_bytes` is not a power of two, or outside the supported range.
    SegmentSize,
    /// `shards` is zero, not a power of two or above [`MAX_SHARDS`].
    Shards,
    /// Fewer segments per shard than the eviction policy needs, or more than
    /// a segment id can address.
    SegmentCount,
    /// `max_item_bytes` is zero or larger than a segment.
    MaxItemSize,
    /// `hash_power` too small for the shard count, or too large.
    HashPower,
    /// Invalid eviction parameters.
    Eviction,
    /// Sizes overflow `usize`.
    Overflow,
    /// The arena is smaller than [`StoreConfig::required_bytes`].
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
}
