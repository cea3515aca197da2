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

use crate::arena::{prefetch, Carver};
pub use crate::stats::StoreStats;
use crate::Time;

mod api;
mod attach;
mod checksum;
mod config;
mod ctx;
mod evict;
mod hash;
mod hashtable;
mod item;
mod layout;
mod ops;
mod pass;
pub mod persist;
mod ptr;
mod segment;
mod segments;
mod shard;
mod ttl;
mod walk;

#[cfg(test)]
mod persist_tests;
#[cfg(test)]
mod tests;

pub use api::{
    ArithRequest, AuditError, AuditFailure, GetOptions, ItemRef, StoreError, StoreMode,
    StoreRequest, ValueLocation, MAX_KEY_BYTES,
};
pub use config::{ConfigError, Eviction, StoreConfig, MAX_SHARDS};
pub use hash::hash as hash_key;
pub use item::HEADER_BYTES as ITEM_HEADER_BYTES;
pub use layout::{Layout, MIN_SEGMENTS_PER_SHARD};
pub use persist::{AttachError, PersistSummary, PERSIST_HEADER_BYTES};
pub use walk::WalkCursor;

use crate::histogram::Histogram;
use ctx::{Ctx, PauseRecorder};
use layout::carve_shard;
use shard::{Shard, ShardParams};

/// What the caller knows about an arena's bytes when building a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaFill {
    /// Anything: the store zero-fills its hash table and segment headers
    /// (writing every page of them, so they become resident at once).
    Unknown,
    /// Every byte is zero: a fresh anonymous mapping, or a file just
    /// truncated and extended. The store then writes only its header page
    /// and TTL buckets (a few KiB per shard); the hash table and the
    /// segments become resident as they are first used. Not checked: on an
    /// arena with other bytes the store's contents and accounting are
    /// wrong and a call may panic.
    Zeroed,
}

/// One shard's segment-data region and how far into it segments have been
/// handed out, from [`Store::frontiers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFrontier {
    /// Address of the region's first byte.
    pub start: usize,
    /// Bytes in the region.
    pub len: usize,
    /// Bytes from `start` that have been handed to segments at least once
    /// since the arena was zeroed; the rest has never been written by the
    /// store. Grows in whole segments, lowest first.
    pub used: usize,
}

/// How many times one call lets a shard lock go for an eviction pass to
/// go on ([`Store::with_shard`]) before it lets the pass run unbounded.
const MAX_YIELDS: u32 = 4096;

/// After letting `slot`'s lock go for an eviction pass: spin a little
/// while nobody has taken it, so that a request waiting for it (spinning)
/// gets it before this thread takes it back.
#[inline]
fn give_way(slot: &ShardSlot<'_>) {
    for _ in 0..64 {
        if slot.lock.is_locked() {
            break;
        }
        core::hint::spin_loop();
    }
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
    /// Address of the shard's segment data (never dereferenced here).
    data_addr: usize,
    /// The shard's segment frontier (see [`DataFrontier::used`]), written
    /// under the lock, read without it.
    frontier: AtomicU32,
}

impl ShardSlot<'_> {
    /// Start loading the home bucket of `hash` into the cache while the
    /// lock is being acquired. A pure hint: no memory is read or written.
    #[inline(always)]
    fn prefetch(&self, hash: u64) {
        prefetch(self.buckets_addr + ((hash as usize) & self.bucket_mask) * 64);
    }
}

/// The store: a sharded Segcache inside one caller-provided arena.
///
/// `Store` is `Sync`: every call locks exactly one shard (chosen by key
/// hash) for its duration, except `flush`, `expire`, `stats` and
/// `set_memory_limit`, which visit shards one at a time. No call allocates,
/// blocks on I/O or panics.
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
    /// Where eviction work records its shard-lock holds (see
    /// [`Store::set_pause_recorder`]).
    pauses: Option<PauseRecorder<'a>>,
    /// What a thread does while a shard lock stays held past
    /// [`LOCK_SPINS`] spins (see [`Store::set_lock_wait`]); without it, it
    /// goes on spinning.
    lock_wait: Option<fn()>,
}

/// Spins (each a `pause`) a thread makes on a held shard lock before it
/// calls the lock-wait hook ([`Store::set_lock_wait`]): longer than any
/// critical section of a running holder (a lookup or a store: well under
/// a microsecond), so only a holder that is not running makes a thread
/// wait.
pub const LOCK_SPINS: u32 = 200;

impl<'a> Store<'a> {
    /// Build a store inside `arena`, whatever its bytes, which must hold at
    /// least `cfg.required_bytes()` bytes. Fails (never panics) if the
    /// configuration is inconsistent or the arena too small. Zero-fills the
    /// hash table and segment headers; see [`Store::with_fill`] for an
    /// arena known to be zero.
    pub fn new(cfg: &StoreConfig, arena: &'a mut [u8]) -> Result<Self, ConfigError> {
        Self::with_fill(cfg, arena, ArenaFill::Unknown)
    }

    /// [`Store::new`] for an arena whose bytes are as `fill` says. With
    /// [`ArenaFill::Zeroed`] the work done here does not grow with the
    /// arena: nothing but the header page and the TTL buckets is written.
    pub fn with_fill(
        cfg: &StoreConfig,
        arena: &'a mut [u8],
        fill: ArenaFill,
    ) -> Result<Self, ConfigError> {
        let l = layout::layout(cfg)?;
        let too_small = ConfigError::ArenaTooSmall {
            needed: l.total_bytes,
            given: arena.len(),
        };
        if arena.len() < l.total_bytes {
            return Err(too_small);
        }
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
            pauses: None,
            lock_wait: None,
        };
        let params = ShardParams {
            layout: l,
            max_item_bytes: cfg.max_item_bytes,
            eviction: cfg.eviction,
        };
        let zero = fill == ArenaFill::Unknown;
        for i in 0..l.shards {
            let r = carve_shard(&mut carver, &l, zero).ok_or(too_small)?;
            let stats = StoreStats::new();
            let buckets_addr = r.buckets.as_ptr() as usize;
            let data_addr = r.data.as_ptr() as usize;
            let shard = Shard::new_zeroed(i as u16, r, &params, cfg.seed, &stats);
            let frontier = AtomicU32::new(shard.segs.fresh);
            store
                .shards
                .push(ShardSlot {
                    lock: spin::Mutex::new(shard),
                    stats,
                    buckets_addr,
                    bucket_mask: l.main_buckets - 1,
                    data_addr,
                    frontier,
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
            pauses: None,
            lock_wait: None,
        };
        let params = ShardParams {
            layout: l,
            max_item_bytes: cfg.max_item_bytes,
            eviction: cfg.eviction,
        };
        for i in 0..l.shards {
            let r = carve_shard(&mut carver, &l, false).ok_or(too_small)?;
            let rec = persist::shard_record(store.header, i);
            let stats = StoreStats::new();
            let buckets_addr = r.buckets.as_ptr() as usize;
            let data_addr = r.data.as_ptr() as usize;
            let shard = Shard::attach(i as u16, r, &params, &rec, &stats).map_err(|f| match f {
                attach::AttachFault::Checksum => AttachError::MetadataChecksum { shard: i },
                attach::AttachFault::Inconsistent(what) => {
                    AttachError::Inconsistent { shard: i, what }
                }
            })?;
            let frontier = AtomicU32::new(shard.segs.fresh);
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
                    data_addr,
                    frontier,
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
            let shard = self.lock_shard(slot);
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
            frontier: &slot.frontier,
            pauses: self.pauses,
        }
    }

    /// Run `op` on `slot`'s shard under its lock. When an eviction pass
    /// in it has spent one hold's work ([`Shard::yielded`]), `op` returned
    /// without effect: let the lock go so that waiting requests get their
    /// turn, take it again and run `op` anew (the pass resumes where it
    /// stopped). After [`MAX_YIELDS`] turns the last run has no limit.
    #[inline(always)]
    fn with_shard<R>(
        &self,
        slot: &ShardSlot<'a>,
        now: Time,
        mut op: impl FnMut(&mut Shard<'a>, &Ctx<'_>) -> R,
    ) -> R {
        let mut turns = 0;
        loop {
            let cx = self.ctx(slot, now);
            let mut shard = self.lock_shard(slot);
            shard.begin_hold(turns == MAX_YIELDS);
            let r = op(&mut shard, &cx);
            if !shard.yielded() {
                return r;
            }
            drop(shard);
            turns += 1;
            give_way(slot);
        }
    }

    /// The most eviction work (see [`Store`]'s module notes: items visited,
    /// KiB copied, segments freed) any one hold of a shard lock has done
    /// since the store was built: bounded by the per-hold budget plus one
    /// item and one segment, whatever the size of a merge pass.
    pub fn max_evict_hold_work(&self) -> u32 {
        self.shards
            .iter()
            .map(|s| self.lock_shard(s).max_hold_work)
            .max()
            .unwrap_or(0)
    }

    /// From now on, every eviction step (reclaiming an expired or flushed
    /// segment, evicting one, a merge or compaction pass, each under its
    /// shard's lock) records how long it held the lock, in nanoseconds of
    /// `clock` (monotonic), into `histogram`. The store has no clock: a
    /// caller without one leaves this unset and nothing is timed.
    pub fn set_pause_recorder(&mut self, histogram: &'a Histogram, clock: fn() -> u64) {
        self.pauses = Some(PauseRecorder { histogram, clock });
    }

    /// From now on, a thread that finds a shard lock still held after
    /// [`LOCK_SPINS`] spins calls `wait` (then looks again, and calls it
    /// again while the lock stays held) instead of spinning on, and the
    /// shard counts the acquisition in `lock_waits`. The store cannot
    /// block: a caller with threads passes e.g. `std::thread::yield_now`,
    /// so that a waiter on the holder's CPU lets a preempted holder run
    /// and release the lock instead of spinning until its time slice ends.
    pub fn set_lock_wait(&mut self, wait: fn()) {
        self.lock_wait = Some(wait);
    }

    /// The shard's lock: at once when it is free, else
    /// [`Store::lock_contended`].
    #[inline(always)]
    fn lock_shard<'s>(&'s self, slot: &'s ShardSlot<'a>) -> spin::MutexGuard<'s, Shard<'a>> {
        match slot.lock.try_lock() {
            Some(g) => g,
            None => self.lock_contended(slot),
        }
    }

    /// A held shard lock: spins [`LOCK_SPINS`] times, then calls the
    /// lock-wait hook until the lock is free (spins on without one).
    #[cold]
    #[inline(never)]
    fn lock_contended<'s>(&'s self, slot: &'s ShardSlot<'a>) -> spin::MutexGuard<'s, Shard<'a>> {
        let mut spins = 0u32;
        loop {
            while slot.lock.is_locked() {
                if spins < LOCK_SPINS {
                    spins += 1;
                    core::hint::spin_loop();
                } else if let Some(wait) = self.lock_wait {
                    wait();
                } else {
                    core::hint::spin_loop();
                }
            }
            if let Some(g) = slot.lock.try_lock() {
                if spins >= LOCK_SPINS {
                    // Under the lock: the counter's only writer.
                    slot.stats.lock_waits.incr_owned();
                }
                return g;
            }
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
            self.lock_shard(slot).seal_open();
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
        let mut f = f;
        let mut turns = 0;
        loop {
            let cx = self.ctx(slot, now);
            let mut shard = self.lock_shard(slot);
            shard.begin_hold(turns == MAX_YIELDS);
            match shard.get(&cx, h, key, &opts, f) {
                Ok(r) => return r,
                Err(back) => f = back,
            }
            drop(shard);
            turns += 1;
            give_way(slot);
        }
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
        self.lock_shard(self.shard_of(h)).prefetch_item(h);
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
        self.with_shard(slot, now, |shard, cx| shard.store(cx, h, req))
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
        let mut shard = self.lock_shard(slot);
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
        self.with_shard(slot, now, |shard, cx| shard.arith(cx, h, key, op))
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
        self.with_shard(slot, now, |shard, cx| {
            shard.invalidate(cx, h, key, cas, expire_at)
        })
    }

    /// Marks the version of `key` stored with CAS `cas` as stored under a
    /// base64 key (`ms ... b`; [`ItemRef::key_binary`]). memcached keeps
    /// that bit per item: meta replies print such a key base64-encoded with
    /// ` b` even to a request without `b`, and a plain key as it is even to
    /// a request with `b`. `false` (and nothing marked) when that version is
    /// gone already.
    pub fn mark_key_binary(&self, key: &[u8], cas: u64, now: Time) -> bool {
        if !Self::valid_key(key) {
            return false;
        }
        self.check_flush(now);
        let h = hash::hash(self.seed, key);
        let slot = self.shard_of(h);
        let cx = self.ctx(slot, now);
        let mut shard = self.lock_shard(slot);
        shard.mark_key_binary(&cx, h, key, cas)
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
        self.with_shard(slot, now, |shard, cx| shard.touch(cx, h, key, expire_at))
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
            // One hold at a time: a pass that spends a hold's work lets
            // the lock go and is carried on in the next.
            loop {
                let cx = self.ctx(slot, now);
                let mut shard = self.lock_shard(slot);
                shard.begin_hold(false);
                let t0 = cx.pause_start();
                n += shard.reclaim_dead(&cx, max_segments - n);
                if shard.hold_work > 0 {
                    cx.pause_end(t0);
                }
                let again = shard.yielded() && n < max_segments;
                drop(shard);
                if !again {
                    break;
                }
                give_way(slot);
            }
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
        let shard = self.lock_shard(slot);
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

    /// Each shard's segment-data region and how much of it segments have
    /// been taken from ([`DataFrontier`]), read without locking: for a
    /// caller that makes memory resident ahead of use (the figures only
    /// grow while the store lives).
    pub fn frontiers(&self, mut f: impl FnMut(DataFrontier)) {
        let seg_bytes = self.cfg.segment_bytes;
        for slot in self.shards.iter() {
            let used = slot.frontier.load(Ordering::Relaxed) as usize;
            f(DataFrontier {
                start: slot.data_addr,
                len: self.layout.segments * seg_bytes,
                used: used * seg_bytes,
            });
        }
    }

    /// memcached's `cache_memlimit`: from now on use at most `bytes` of
    /// segment memory (whole segments per shard, at least
    /// [`MIN_SEGMENTS_PER_SHARD`] each, at most the arena's
    /// `item_memory_bytes`). Lowering it reclaims expired segments and then
    /// evicts by the configured policy, shard by shard, until each shard
    /// is within its share (as far as the policy can: [`Eviction::None`]
    /// frees only dead segments; the rest is refused to new writes until
    /// it empties). Raising it gives the segments back. Returns the limit
    /// in effect, in bytes. The memory stays in the arena (and resident
    /// if it was).
    pub fn set_memory_limit(&self, bytes: usize, now: Time) -> usize {
        self.check_flush(now);
        let l = &self.layout;
        let per_shard =
            (bytes / self.cfg.segment_bytes / l.shards).clamp(MIN_SEGMENTS_PER_SHARD, l.segments);
        for slot in self.shards.iter() {
            self.with_shard(slot, now, |shard, cx| {
                shard.set_segment_limit(cx, per_shard as u32)
            });
        }
        self.memory_limit()
    }

    /// The segment memory the store may use, in bytes: the arena's
    /// `item_memory_bytes` (in whole segments) unless lowered by
    /// [`Store::set_memory_limit`].
    pub fn memory_limit(&self) -> usize {
        let shard0 = self
            .shards
            .first()
            .map_or(0, |s| self.lock_shard(s).segs.limit);
        shard0 as usize * self.cfg.segment_bytes * self.layout.shards
    }

    /// Recount every structure from scratch and compare with the
    /// incremental accounting (O(memory); for tests and debugging).
    pub fn audit(&self) -> Result<(), AuditError> {
        for (shard, slot) in self.shards.iter().enumerate() {
            self.lock_shard(slot)
                .audit(&slot.stats)
                .map_err(|failure| AuditError { shard, failure })?;
        }
        Ok(())
    }
}
