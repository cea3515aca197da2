//! Segcache-style segment storage (NSDI'21, after Pelikan's `storage/seg`).
//!
//! ```text
//!   key ──hash──► shard (bits 32..), bucket (low bits), tag (top 12 bits)
//!  ┌──────────────────────────── Store ────────────────────────────────┐
//!  │ shard i: spin::Mutex<Shard>   (one lock per call, never held      │
//!  │          between calls)                                           │
//!  │   hash table: 64 B buckets [info | 7 item pointers] + overflow    │
//!  │   TTL buckets[1025]: chains of segments, oldest first             │
//!  │   segments: fixed size; items appended [hdr 7 B][opt][key][value] │
//!  └───────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * Everything lives in one caller-provided arena
//!   ([`StoreConfig::required_bytes`]).
//! * Writes append to the open segment of the item's TTL bucket; an update
//!   appends a new version and repoints the hash slot (the old bytes die).
//! * Whole segments are reclaimed when they expire ([`Store::expire`]) or
//!   when a write needs a segment and none is free (eviction, [`Eviction`]).
//! * CAS: every segment takes a `cas_base` from a store-wide counter
//!   advanced by `segment_bytes` each time a segment is opened; an item's
//!   cas is `cas_base + offset` unless it was moved (compaction, merge,
//!   touch), in which case its header stores the cas explicitly. Unique per
//!   version, never 0, unchanged by touch/gat/compaction. `flush` records
//!   the counter: items with a smaller cas are invisible, removed lazily.
//! * Statistics are per shard (single writer under the shard lock) and
//!   summed by [`Store::stats`].
//! * Warm restart: the only state outside the arena is the cas counter,
//!   the flush state, each shard's free-list heads and random state, and
//!   the statistics. [`Store::persist`] writes the first of these into a
//!   header page at the start of the arena with the layout settings and
//!   checksums ([`persist`]); [`Store::attach`] validates it and reattaches
//!   in place, recounting the gauges from the arena (counters restart at 0).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::arena::{Carver, Pod};
pub use crate::stats::StoreStats;
use crate::Time;

mod checksum;
mod hash;
mod hashtable;
mod item;
mod layout;
pub mod persist;
mod segment;
mod shard;
mod ttl;

#[cfg(test)]
mod persist_tests;
#[cfg(test)]
mod tests;

pub use hash::hash as hash_key;
pub use item::HEADER_BYTES as ITEM_HEADER_BYTES;
pub use layout::Layout;
pub use persist::{AttachError, PersistSummary, PERSIST_HEADER_BYTES};

use hashtable::Bucket;
use segment::SegHeader;
use shard::{Ctx, Shard};
use ttl::TtlBucket;

// SAFETY: [u64; 8] with align 64: no padding, every bit pattern valid.
unsafe impl Pod for Bucket {}
// SAFETY: repr(C) integers laid out without padding (40 bytes); any bit
// pattern is a valid value.
unsafe impl Pod for SegHeader {}
// SAFETY: repr(C), three u32, no padding.
unsafe impl Pod for TtlBucket {}

/// Largest number of shards a store can have.
pub const MAX_SHARDS: usize = 64;
/// Longest key the store accepts, as memcached.
pub const MAX_KEY_BYTES: usize = 250;

/// Eviction policy used when a write needs a segment and none is free.
///
/// Before any policy runs, a write that finds no free segment first
/// reclaims an expired or entirely flushed segment at the head of a TTL
/// chain, if there is one. Every policy evicts whole segments: all live
/// items of an evicted segment are unlinked (`evicted_items`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Never evict: the write fails with [`StoreError::NoMemory`].
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

impl StoreConfig {
    /// Exact number of arena bytes [`Store::new`] needs for this
    /// configuration (including alignment slack for any arena address), or
    /// why the configuration is inconsistent.
    pub fn required_bytes(&self) -> Result<usize, ConfigError> {
        layout::layout(self).map(|l| l.total_bytes)
    }

    /// The resolved layout (segments per shard, buckets, ...) or why the
    /// configuration is inconsistent.
    pub fn layout(&self) -> Result<Layout, ConfigError> {
        layout::layout(self)
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

/// A broken invariant found by [`Store::audit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditError {
    /// The shard it was found in.
    pub shard: usize,
    /// What is broken.
    pub failure: AuditFailure,
}

/// What [`Store::audit`] found broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditFailure {
    /// A hash slot links an item marked deleted.
    DeletedItemLinked {
        /// Bucket index (in the shard's bucket array).
        bucket: usize,
        /// Slot in the bucket (1..=7).
        slot: usize,
    },
    /// A hash slot points into a free segment.
    FreeSegmentLinked {
        /// Bucket index (in the shard's bucket array).
        bucket: usize,
        /// Slot in the bucket (1..=7).
        slot: usize,
    },
    /// A recount disagrees with the incremental accounting.
    Mismatch {
        /// The quantity (a counter name, or a per-segment total).
        what: &'static str,
        /// Recounted from the structures.
        counted: u64,
        /// Held by the accounting.
        recorded: u64,
    },
}

impl core::fmt::Display for AuditError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "shard {}: ", self.shard)?;
        match self.failure {
            AuditFailure::DeletedItemLinked { bucket, slot } => {
                write!(f, "bucket {bucket} slot {slot} links a deleted item")
            }
            AuditFailure::FreeSegmentLinked { bucket, slot } => {
                write!(f, "bucket {bucket} slot {slot} points into a free segment")
            }
            AuditFailure::Mismatch {
                what,
                counted,
                recorded,
            } => write!(f, "{what}: counted {counted}, accounted {recorded}"),
        }
    }
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

/// One shard and its statistics (written only under the shard's lock).
#[repr(align(64))]
struct ShardSlot<'a> {
    lock: spin::Mutex<Shard<'a>>,
    stats: StoreStats,
    /// Address of the shard's first hash bucket, only used as a prefetch
    /// hint before taking the lock (never dereferenced outside the lock).
    buckets_addr: usize,
    /// Main buckets - 1.
    bucket_mask: usize,
}

impl ShardSlot<'_> {
    /// Start loading the home bucket of `hash` into the cache while the
    /// lock is being acquired. A pure hint: no memory is read or written.
    #[inline(always)]
    fn prefetch(&self, hash: u64) {
        prefetch(self.buckets_addr + ((hash as usize) & self.bucket_mask) * 64);
    }
}

/// Start loading the cache line holding `addr`. A pure hint: nothing is
/// read or written, whatever the address (a no-op off x86_64).
#[inline(always)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint; it never faults and has no
    // architectural effect, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// The store: a sharded Segcache inside one caller-provided arena.
///
/// `Store` is `Sync`: every call locks exactly one shard (chosen by key
/// hash) for its duration, except `flush`, `expire` and `stats`, which visit
/// shards one at a time. No call allocates, blocks on I/O or panics.
pub struct Store<'a> {
    cfg: StoreConfig,
    layout: Layout,
    shards: heapless::Vec<ShardSlot<'a>, MAX_SHARDS>,
    cas: AtomicU64,
    flush_cas: AtomicU64,
    flush_at: AtomicU32,
    stats: StoreStats,
    seed: u64,
    /// The persist header page at the start of the arena (only written by
    /// `new`, `attach` and `persist`).
    header: &'a mut [u8],
    /// Where shard 0 starts in the arena.
    shard_offset: usize,
    /// When the state this store was attached to had been saved.
    saved_at: Option<Time>,
}

/// One shard's regions carved from the arena.
struct Regions<'a> {
    buckets: &'a mut [Bucket],
    segs: &'a mut [SegHeader],
    ttl: &'a mut [TtlBucket],
    data: &'a mut [u8],
}

/// Carve the next shard's regions; `in_place` keeps the bytes (attach),
/// otherwise the metadata regions are zeroed.
fn carve_shard<'a>(carver: &mut Carver<'a>, l: &Layout, in_place: bool) -> Option<Regions<'a>> {
    let nb = l.main_buckets + l.overflow_buckets;
    let buckets = if in_place {
        carver.slice_in_place::<Bucket>(nb)?
    } else {
        carver.slice::<Bucket>(nb)?
    };
    let segs = if in_place {
        carver.slice_in_place::<SegHeader>(l.segments)?
    } else {
        carver.slice::<SegHeader>(l.segments)?
    };
    carver.align_to(64)?;
    let ttl = if in_place {
        carver.slice_in_place::<TtlBucket>(ttl::TTL_BUCKETS)?
    } else {
        carver.slice::<TtlBucket>(ttl::TTL_BUCKETS)?
    };
    carver.align_to(64)?;
    let data = carver.bytes(l.segments << l.seg_shift)?;
    Some(Regions {
        buckets,
        segs,
        ttl,
        data,
    })
}

impl<'a> Store<'a> {
    /// Build a store inside `arena`, which must hold at least
    /// `cfg.required_bytes()` bytes. Fails (never panics) if the
    /// configuration is inconsistent or the arena too small.
    pub fn new(cfg: &StoreConfig, arena: &'a mut [u8]) -> Result<Self, ConfigError> {
        let l = layout::layout(cfg)?;
        if arena.len() < l.total_bytes {
            return Err(ConfigError::ArenaTooSmall {
                needed: l.total_bytes,
                given: arena.len(),
            });
        }
        let too_small = ConfigError::ArenaTooSmall {
            needed: l.total_bytes,
            given: arena.len(),
        };
        let arena_len = arena.len();
        let mut carver = Carver::new(arena);
        let header = carver.bytes(PERSIST_HEADER_BYTES).ok_or(too_small)?;
        persist::write_dirty(header);
        carver.align_to(64).ok_or(too_small)?;
        let mut store = Self {
            cfg: *cfg,
            layout: l,
            shards: heapless::Vec::new(),
            cas: AtomicU64::new(1),
            flush_cas: AtomicU64::new(0),
            flush_at: AtomicU32::new(0),
            stats: StoreStats::new(),
            seed: cfg.seed,
            header,
            shard_offset: arena_len - carver.remaining(),
            saved_at: None,
        };
        for i in 0..l.shards {
            let r = carve_shard(&mut carver, &l, false).ok_or(too_small)?;
            let stats = StoreStats::new();
            let buckets_addr = r.buckets.as_ptr() as usize;
            let shard = Shard::new(
                i as u16,
                r.data,
                r.segs,
                r.buckets,
                r.ttl,
                &l,
                cfg.max_item_bytes,
                cfg.eviction,
                cfg.seed,
                &stats,
            );
            store
                .shards
                .push(ShardSlot {
                    lock: spin::Mutex::new(shard),
                    stats,
                    buckets_addr,
                    bucket_mask: l.main_buckets - 1,
                })
                .map_err(|_| ConfigError::Shards)?;
        }
        Ok(store)
    }

    /// Reattach to an arena saved by [`Store::persist`] (in this process
    /// or an earlier one, e.g. through a file mapping): items, expiries,
    /// cas values, flush state and the cas counter come back as they were.
    /// `cfg` must describe the same layout, and the arena must start at the
    /// same offset from a 64-byte boundary (a page-aligned mapping always
    /// does). Checks, in order: the header (magic, format version, clean
    /// shutdown, checksum, every layout setting), each shard's metadata
    /// checksum, then the shard's links and counts. On success the header
    /// is marked in use at once (a later crash is detected), segments that
    /// expired while nobody ran are reclaimed (`expire(now, ..)`), and items
    /// that expired inside live segments disappear when next touched, as
    /// always. On error nothing in the arena has been written: the caller
    /// builds a fresh store with [`Store::new`] instead. Never panics.
    pub fn attach(cfg: &StoreConfig, arena: &'a mut [u8], now: Time) -> Result<Self, AttachError> {
        let l = layout::layout(cfg).map_err(AttachError::Config)?;
        let too_small = AttachError::Config(ConfigError::ArenaTooSmall {
            needed: l.total_bytes,
            given: arena.len(),
        });
        if arena.len() < l.total_bytes {
            return Err(too_small);
        }
        let arena_len = arena.len();
        let mut carver = Carver::new(arena);
        let header = carver.bytes(PERSIST_HEADER_BYTES).ok_or(too_small)?;
        carver.align_to(64).ok_or(too_small)?;
        let shard_offset = arena_len - carver.remaining();
        let saved = persist::check(cfg, &l, header, shard_offset)?;
        let mut store = Self {
            cfg: *cfg,
            layout: l,
            shards: heapless::Vec::new(),
            cas: AtomicU64::new(saved.cas),
            flush_cas: AtomicU64::new(saved.flush_cas),
            flush_at: AtomicU32::new(saved.flush_at),
            stats: StoreStats::new(),
            seed: cfg.seed,
            header,
            shard_offset,
            saved_at: Some(saved.saved_at),
        };
        for i in 0..l.shards {
            let r = carve_shard(&mut carver, &l, true).ok_or(too_small)?;
            let rec = persist::shard_record(store.header, i);
            let stats = StoreStats::new();
            let buckets_addr = r.buckets.as_ptr() as usize;
            let shard = Shard::attach(
                i as u16,
                r.data,
                r.segs,
                r.buckets,
                r.ttl,
                &l,
                cfg.max_item_bytes,
                cfg.eviction,
                &rec,
                &stats,
            )
            .map_err(|f| match f {
                shard::AttachFault::Checksum => AttachError::MetadataChecksum { shard: i },
                shard::AttachFault::Inconsistent(what) => {
                    AttachError::Inconsistent { shard: i, what }
                }
            })?;
            if stats.items.get() != rec.items {
                return Err(AttachError::Inconsistent {
                    shard: i,
                    what: "item count differs from the saved one",
                });
            }
            store
                .shards
                .push(ShardSlot {
                    lock: spin::Mutex::new(shard),
                    stats,
                    buckets_addr,
                    bucket_mask: l.main_buckets - 1,
                })
                .map_err(|_| AttachError::Config(ConfigError::Shards))?;
        }
        persist::mark_dirty(store.header);
        store.expire(now, usize::MAX);
        Ok(store)
    }

    /// Save the store for [`Store::attach`]: write the persist header (the
    /// configuration, the cas counter and flush state, each shard's free
    /// lists and a checksum of its metadata, then the header's own
    /// checksum) into the first page of the arena, marked clean. Consumes
    /// the store, so nothing can change the arena afterwards; the caller
    /// then makes the arena durable (e.g. `msync`). `now` is recorded as
    /// the save time.
    pub fn persist(self, now: Time) -> PersistSummary {
        let items = self.stats().items.get();
        let mut records = [persist::ShardState::default(); MAX_SHARDS];
        for (i, slot) in self.shards.iter().enumerate() {
            let shard = slot.lock.lock();
            records[i] = shard.saved_state(slot.stats.items.get());
        }
        let snap = persist::Snapshot {
            cfg: &self.cfg,
            layout: &self.layout,
            shard_offset: self.shard_offset,
            cas: self.cas.load(Ordering::Acquire),
            flush_cas: self.flush_cas.load(Ordering::Acquire),
            flush_at: self.flush_at.load(Ordering::Acquire),
            saved_at: now,
            items,
        };
        let n = self.shards.len();
        let Store { header, .. } = self;
        persist::write_clean(header, &snap, &records[..n]);
        PersistSummary {
            items,
            cas: snap.cas,
            shards: n,
        }
    }

    #[inline(always)]
    fn shard_of(&self, hash: u64) -> &ShardSlot<'a> {
        let i = ((hash >> 32) as usize) & (self.layout.shards - 1);
        &self.shards[i]
    }

    #[inline(always)]
    fn ctx<'s>(&'s self, slot: &'s ShardSlot<'a>, now: Time) -> Ctx<'s> {
        Ctx {
            st: &slot.stats,
            cas: &self.cas,
            flush_cas: self.flush_cas.load(Ordering::Acquire),
            now,
            seed: self.seed,
        }
    }

    /// Execute a delayed flush that has fallen due.
    #[inline(always)]
    fn check_flush(&self, now: Time) {
        let at = self.flush_at.load(Ordering::Relaxed);
        if at != 0
            && now >= at
            && self
                .flush_at
                .compare_exchange(at, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.flush_now();
        }
    }

    fn flush_now(&self) {
        self.flush_cas
            .fetch_max(self.cas.load(Ordering::Acquire), Ordering::AcqRel);
        for (i, slot) in self.shards.iter().enumerate() {
            slot.lock.lock().seal_open();
            if i == 0 {
                slot.stats.flushes.add(1);
            }
        }
    }

    #[inline(always)]
    fn valid_key(key: &[u8]) -> bool {
        !key.is_empty() && key.len() <= MAX_KEY_BYTES
    }

    /// Look `key` up at time `now`. On a live item, `f` sees it under the
    /// shard lock (copy out what you need; do not call back into the store)
    /// and its result is returned. `opts` selects gat/meta behaviour and
    /// whether the lookup is counted. Expired or flushed items are never
    /// returned (they are removed on the way). Invalid keys miss.
    #[inline]
    pub fn get<R>(
        &self,
        key: &[u8],
        now: Time,
        opts: GetOptions,
        f: impl FnOnce(&ItemRef<'_>) -> R,
    ) -> Option<R> {
        if !Self::valid_key(key) {
            return None;
        }
        self.check_flush(now);
        let h = hash::hash(self.seed, key);
        let slot = self.shard_of(h);
        slot.prefetch(h);
        let cx = self.ctx(slot, now);
        let mut shard = slot.lock.lock();
        shard.get(&cx, h, key, &opts, f)
    }

    /// A hint for a coming `get` of `key`: start loading its hash bucket.
    /// Takes no lock and reads nothing. With [`Store::prefetch_item`] a
    /// caller that knows its next keys (a multi-get, pipelined requests)
    /// overlaps their cache misses: bucket of key i+2d, item of key i+d,
    /// get of key i.
    #[inline]
    pub fn prefetch_bucket(&self, key: &[u8]) {
        let h = hash::hash(self.seed, key);
        self.shard_of(h).prefetch(h);
    }

    /// A hint for a coming `get` of `key`: start loading the item that its
    /// hash bucket points to (the bucket is read under the shard lock; if
    /// it is not cached, this waits for it, so call
    /// [`Store::prefetch_bucket`] some keys earlier). Changes nothing.
    #[inline]
    pub fn prefetch_item(&self, key: &[u8]) {
        if !Self::valid_key(key) {
            return;
        }
        let h = hash::hash(self.seed, key);
        self.shard_of(h).lock.lock().prefetch_item(h);
    }

    /// Store an item (set/add/replace/append/prepend, with optional cas
    /// compare); returns the new version's cas. Errors: `TooLarge` (item
    /// above `max_item_bytes`; a failed `Set` also removes the old value, as
    /// memcached does), `NotStored`, `Exists`, `NotFound` (cas on a missing
    /// key), `NoMemory`, `BadKey`. An `expire_at` in the past (not 0) removes
    /// the key and reports success, like memcached's negative exptime.
    pub fn store(&self, req: &StoreRequest<'_>, now: Time) -> Result<u64, StoreError> {
        if !Self::valid_key(req.key) {
            return Err(StoreError::BadKey);
        }
        self.check_flush(now);
        let h = hash::hash(self.seed, req.key);
        let slot = self.shard_of(h);
        slot.prefetch(h);
        let cx = self.ctx(slot, now);
        let mut shard = slot.lock.lock();
        shard.store(&cx, h, req)
    }

    /// Delete `key`; if `cas != 0` only when it equals the item's cas
    /// (`Exists` otherwise). `NotFound` if absent.
    pub fn delete(&self, key: &[u8], cas: u64, now: Time) -> Result<(), StoreError> {
        if !Self::valid_key(key) {
            return Err(StoreError::BadKey);
        }
        self.check_flush(now);
        let h = hash::hash(self.seed, key);
        let slot = self.shard_of(h);
        slot.prefetch(h);
        let cx = self.ctx(slot, now);
        let mut shard = slot.lock.lock();
        shard.delete(&cx, h, key, cas)
    }

    /// incr/decr with memcached semantics: the value must parse as a decimal
    /// u64 (`NonNumeric` otherwise, also for an empty value); incr wraps at
    /// 2^64, decr floors at 0; the stored value keeps its length (padded
    /// with spaces) when the new number is not longer. Flags and expiry are
    /// kept (unless `op.expire_at`). Returns (new value, new cas).
    pub fn arith(
        &self,
        key: &[u8],
        op: &ArithRequest,
        now: Time,
    ) -> Result<(u64, u64), StoreError> {
        if !Self::valid_key(key) {
            return Err(StoreError::BadKey);
        }
        self.check_flush(now);
        let h = hash::hash(self.seed, key);
        let slot = self.shard_of(h);
        slot.prefetch(h);
        let cx = self.ctx(slot, now);
        let mut shard = slot.lock.lock();
        shard.arith(&cx, h, key, op)
    }

    /// meta `md <key> I`: instead of deleting, mark the item stale (the next
    /// fetch wins the recache token, [`ItemRef::won`]), give it a new cas
    /// (returned), and with `expire_at` also a new expiry. `cas != 0` must
    /// match the item's cas (`Exists`); `NotFound` if absent.
    pub fn invalidate(
        &self,
        key: &[u8],
        cas: u64,
        expire_at: Option<Time>,
        now: Time,
    ) -> Result<u64, StoreError> {
        if !Self::valid_key(key) {
            return Err(StoreError::BadKey);
        }
        self.check_flush(now);
        let h = hash::hash(self.seed, key);
        let slot = self.shard_of(h);
        slot.prefetch(h);
        let cx = self.ctx(slot, now);
        let mut shard = slot.lock.lock();
        shard.invalidate(&cx, h, key, cas, expire_at)
    }

    /// Set a new absolute expiry (0 = never; in the past = expire now) on a
    /// present item, keeping its value, flags and cas. `NotFound` if absent.
    pub fn touch(&self, key: &[u8], expire_at: Time, now: Time) -> Result<(), StoreError> {
        if !Self::valid_key(key) {
            return Err(StoreError::BadKey);
        }
        self.check_flush(now);
        let h = hash::hash(self.seed, key);
        let slot = self.shard_of(h);
        slot.prefetch(h);
        let cx = self.ctx(slot, now);
        let mut shard = slot.lock.lock();
        shard.touch(&cx, h, key, expire_at)
    }

    /// memcached `flush_all`: with `at <= now` (or 0) every item stored so far
    /// becomes invisible at once; otherwise this happens at the first call
    /// with `now >= at` (a later delayed flush replaces an earlier pending
    /// one). Memory is reclaimed lazily and by [`Store::expire`].
    pub fn flush(&self, at: Time, now: Time) {
        // A pending flush that is already due happens before this one.
        self.check_flush(now);
        if at == 0 || at <= now {
            self.flush_at.store(0, Ordering::Relaxed);
            self.flush_now();
        } else {
            self.flush_at.store(at, Ordering::Relaxed);
        }
    }

    /// Reclaim up to `max_segments` whole segments that are expired or
    /// entirely flushed (heads of TTL chains), visiting shards in turn.
    /// Returns how many were reclaimed. Bounded work; call periodically.
    pub fn expire(&self, now: Time, max_segments: usize) -> usize {
        self.check_flush(now);
        let mut n = 0;
        for slot in self.shards.iter() {
            if n >= max_segments {
                break;
            }
            let cx = self.ctx(slot, now);
            n += slot.lock.lock().reclaim_dead(&cx, max_segments - n);
        }
        n
    }

    /// Copy bytes `offset..` of the value at `loc` (from [`ItemRef::location`])
    /// into `dst`; returns the number copied (0 at the end). `Gone` if the
    /// segment holding it has been reclaimed or reused since.
    pub fn read_value(
        &self,
        loc: ValueLocation,
        offset: usize,
        dst: &mut [u8],
        now: Time,
    ) -> Result<usize, StoreError> {
        let _ = now;
        let slot = self
            .shards
            .get(loc.shard as usize)
            .ok_or(StoreError::Gone)?;
        let shard = slot.lock.lock();
        shard.read_value(&loc, offset, dst)
    }

    /// Current accounting, summed over shards at the time of the call.
    pub fn stats(&self) -> &StoreStats {
        self.stats.assign_sum(self.shards.iter().map(|s| &s.stats));
        &self.stats
    }

    /// The configuration the store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// The resolved layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// For a store built by [`Store::attach`]: the `now` its state was
    /// saved at ([`Store::persist`]); `None` for a store built by `new`.
    pub fn saved_at(&self) -> Option<Time> {
        self.saved_at
    }

    /// Recount every structure from scratch and compare with the
    /// incremental accounting (O(memory); for tests and debugging).
    pub fn audit(&self) -> Result<(), AuditError> {
        for (shard, slot) in self.shards.iter().enumerate() {
            slot.lock
                .lock()
                .audit(&slot.stats)
                .map_err(|failure| AuditError { shard, failure })?;
        }
        Ok(())
    }
}
