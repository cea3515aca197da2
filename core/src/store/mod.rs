//! Segcache-style segment storage (public API; implementation in progress).

use crate::Time;
pub use crate::stats::StoreStats;

/// Largest number of shards a store can have.
pub const MAX_SHARDS: usize = 64;
/// Longest key the store accepts, as memcached.
pub const MAX_KEY_BYTES: usize = 250;

/// Eviction policy used when a write needs a segment and none is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Never evict: the write fails with [`StoreError::NoMemory`].
    None,
    /// Evict the oldest sealed segment of the shard.
    Fifo,
    /// Evict a pseudo-randomly chosen sealed segment.
    Random,
    /// Evict the sealed segment closest to expiry.
    Cte,
    /// Segcache's merge-based eviction (the default).
    Merge {
        /// Most segments examined for one compaction.
        max: usize,
        /// Segments merged into one by a merge-eviction pass (>= 2).
        merge: usize,
        /// Compaction threshold divisor (>= 1).
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
            seed: 0x5eed_0f_9e77e1,
        }
    }
}

impl StoreConfig {
    /// Exact number of arena bytes [`Store::new`] needs for this
    /// configuration (including alignment slack for any arena address), or
    /// why the configuration is inconsistent.
    pub fn required_bytes(&self) -> Result<usize, ConfigError> {
        todo!()
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

/// Why a store operation did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Header + key + value exceeds `max_item_bytes`.
    TooLarge,
    /// add of a present key, replace/append/prepend of an absent key.
    NotStored,
    /// cas given and the item's cas differs.
    Exists,
    /// The key is absent (cas store, delete, arith, touch).
    NotFound,
    /// incr/decr on a value that is not a decimal u64.
    NonNumeric,
    /// No memory could be freed for the item (policy `None`, or all
    /// segments are open).
    NoMemory,
    /// The value a [`ValueLocation`] pointed to has been overwritten,
    /// evicted or reclaimed.
    Gone,
    /// Empty key or key longer than [`MAX_KEY_BYTES`].
    BadKey,
}

/// Options of a lookup (memcached `get`/`gat` and meta `mg` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetOptions {
    /// gat / mg T: set a new absolute expiry (0 = never) on a hit.
    pub touch: Option<Time>,
    /// Mark the access: bump frequency, last-access time, fetched bit.
    pub update_access: bool,
    /// mg N: on a miss, create an empty item with this expiry; the caller
    /// wins ([`ItemRef::won`]) and sees it as [`ItemRef::created`].
    pub vivify: Option<Time>,
    /// mg R: if the remaining TTL is below this many seconds, the first
    /// caller wins the recache token.
    pub recache_below: Option<u32>,
    /// Count the lookup in `gets`/`get_hits`/`get_misses`.
    pub count: bool,
}

impl Default for GetOptions {
    /// A plain `get`: no touch/vivify/recache, access updated, counted.
    fn default() -> Self {
        Self {
            touch: None,
            update_access: true,
            vivify: None,
            recache_below: None,
            count: true,
        }
    }
}

/// Where an item's value lives, to continue copying it later with
/// [`Store::read_value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueLocation {
    pub(crate) shard: u16,
    pub(crate) segment: u32,
    pub(crate) value_offset: u32,
    pub(crate) value_len: u32,
    pub(crate) generation: u64,
}

impl ValueLocation {
    /// Length of the value in bytes.
    pub fn len(&self) -> usize {
        self.value_len as usize
    }
    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.value_len == 0
    }
}

/// A view of one item, valid while the shard lock is held (inside the
/// closure passed to [`Store::get`]).
#[derive(Clone, Copy, Debug)]
pub struct ItemRef<'s> {
    pub(crate) key: &'s [u8],
    pub(crate) value: &'s [u8],
    pub(crate) flags: u32,
    pub(crate) cas: u64,
    pub(crate) expire_at: Time,
    pub(crate) last_access: Time,
    pub(crate) fetched: bool,
    pub(crate) stale: bool,
    pub(crate) won: bool,
    pub(crate) token_sent: bool,
    pub(crate) created: bool,
    pub(crate) location: ValueLocation,
}

impl<'s> ItemRef<'s> {
    /// The key.
    pub fn key(&self) -> &'s [u8] {
        self.key
    }
    /// The value.
    pub fn value(&self) -> &'s [u8] {
        self.value
    }
    /// Client flags (memcached's opaque 32-bit flags).
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// CAS unique of this version (never 0).
    pub fn cas(&self) -> u64 {
        self.cas
    }
    /// Absolute expiry time, 0 = never.
    pub fn expire_at(&self) -> Time {
        self.expire_at
    }
    /// Time of the previous access (store or fetch) before this one.
    /// Exact if it lies within 65535 s of now.
    pub fn last_access(&self) -> Time {
        self.last_access
    }
    /// Whether the item had been fetched before this access.
    pub fn fetched(&self) -> bool {
        self.fetched
    }
    /// Whether the item is marked stale (meta invalidation).
    pub fn stale(&self) -> bool {
        self.stale
    }
    /// Whether this caller won the recache/vivify token (meta W flag).
    pub fn won(&self) -> bool {
        self.won
    }
    /// Whether a win token had already been handed out (meta Z flag).
    pub fn token_sent(&self) -> bool {
        self.token_sent
    }
    /// Whether this lookup created the item (mg N on a miss).
    pub fn created(&self) -> bool {
        self.created
    }
    /// Where the value lives, for [`Store::read_value`].
    pub fn location(&self) -> ValueLocation {
        self.location
    }
}

/// How a [`StoreRequest`] combines with an existing item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Store unconditionally.
    Set,
    /// Store only if absent.
    Add,
    /// Store only if present.
    Replace,
    /// Append the value to a present item (flags/expiry kept).
    Append,
    /// Prepend the value to a present item (flags/expiry kept).
    Prepend,
}

/// A write request.
#[derive(Clone, Copy, Debug)]
pub struct StoreRequest<'a> {
    /// How to combine with an existing item.
    pub mode: StoreMode,
    /// Key, 1..=250 bytes.
    pub key: &'a [u8],
    /// Value.
    pub value: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// Absolute expiry, 0 = never; a time <= now stores nothing visible.
    pub expire_at: Time,
    /// Compare-and-swap: 0 = no compare, else must equal the item's cas.
    pub cas: u64,
    /// ms I: if `cas` is older than the item's cas, store as stale instead
    /// of failing with `Exists`.
    pub invalidate: bool,
}

/// incr/decr request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArithRequest {
    /// true = incr (wraps at 2^64), false = decr (floors at 0).
    pub incr: bool,
    /// Amount.
    pub delta: u64,
    /// 0 = no compare, else must equal the item's cas.
    pub cas: u64,
    /// ma N/J: on a miss, create the item with this initial value and expiry.
    pub vivify: Option<(u64, Time)>,
    /// ma T: also set a new expiry.
    pub expire_at: Option<Time>,
}

/// The store: a sharded Segcache inside one caller-provided arena.
pub struct Store<'a> {
    cfg: StoreConfig,
    stats: StoreStats,
    _arena: core::marker::PhantomData<&'a mut [u8]>,
}

impl<'a> Store<'a> {
    /// Build a store inside `arena` (at least `cfg.required_bytes()`).
    pub fn new(cfg: &StoreConfig, arena: &'a mut [u8]) -> Result<Self, ConfigError> {
        let _ = arena;
        Ok(Self {
            cfg: *cfg,
            stats: StoreStats::new(),
            _arena: core::marker::PhantomData,
        })
    }

    /// Look `key` up; `f` sees the item under the shard lock.
    pub fn get<R>(
        &self,
        key: &[u8],
        now: Time,
        opts: GetOptions,
        f: impl FnOnce(&ItemRef<'_>) -> R,
    ) -> Option<R> {
        let _ = (key, now, opts, f);
        todo!()
    }

    /// Store an item; returns its new cas.
    pub fn store(&self, req: &StoreRequest<'_>, now: Time) -> Result<u64, StoreError> {
        let _ = (req, now);
        todo!()
    }

    /// Delete `key` (if `cas != 0`, only if it matches).
    pub fn delete(&self, key: &[u8], cas: u64, now: Time) -> Result<(), StoreError> {
        let _ = (key, cas, now);
        todo!()
    }

    /// incr/decr; returns (new value, new cas).
    pub fn arith(&self, key: &[u8], op: &ArithRequest, now: Time) -> Result<(u64, u64), StoreError> {
        let _ = (key, op, now);
        todo!()
    }

    /// Set a new expiry on a present item.
    pub fn touch(&self, key: &[u8], expire_at: Time, now: Time) -> Result<(), StoreError> {
        let _ = (key, expire_at, now);
        todo!()
    }

    /// Invalidate all items now (`at <= now`) or at time `at`.
    pub fn flush(&self, at: Time, now: Time) {
        let _ = (at, now);
        todo!()
    }

    /// Reclaim up to `max_segments` expired or flushed segments.
    pub fn expire(&self, now: Time, max_segments: usize) -> usize {
        let _ = (now, max_segments);
        todo!()
    }

    /// Copy value bytes `offset..` of the item at `loc` into `dst`.
    pub fn read_value(
        &self,
        loc: ValueLocation,
        offset: usize,
        dst: &mut [u8],
        now: Time,
    ) -> Result<usize, StoreError> {
        let _ = (loc, offset, dst, now);
        todo!()
    }

    /// Current accounting.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// The configuration the store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }
}
