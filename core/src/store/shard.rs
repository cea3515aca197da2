//! One shard of the store: its segments, hash table and TTL buckets, and
//! every operation on them. A shard is only ever used under its lock; all
//! methods take `&mut self` and complete without blocking.

use core::sync::atomic::{AtomicU64, Ordering};

use super::checksum::xxh64;
use super::hash::hash;
use super::hashtable::{
    bump_freq, make_ptr, next_of, ptr_freq, ptr_offset, ptr_seg, ptr_tag, set_next, tag_of,
    with_freq, with_location, Bucket, LOCATION_MASK, NEXT_MASK, SLOTS,
};
use super::item::{
    self, item_bytes, ItemView, HEADER_BYTES, INFO_CAS, INFO_DELETED, INFO_EXPIRY, INFO_FETCHED,
    INFO_FLAGS, INFO_STALE, INFO_STATE_MASK, INFO_TOKEN_SENT,
};
use super::layout::{Layout, MAX_MERGE_RUN};
use super::persist::ShardState;
use super::segment::{SegHeader, FREE, NONE, OPEN, SEALED};
use super::ttl::{bucket_index, bucket_width, expiry_delta, TtlBucket, TTL_BUCKETS};
use super::{
    ArithRequest, AuditFailure, Eviction, GetOptions, ItemRef, StoreError, StoreMode, StoreRequest,
    ValueLocation,
};
use crate::arena::pod_bytes;
use crate::stats::StoreStats;
use crate::Time;

/// How many times an operation frees memory and retries before giving up.
const MAX_ROOM_ATTEMPTS: usize = 8;
/// "No bucket" for chain predecessors.
const NO_BUCKET: usize = usize::MAX;
/// Bytes an item may grow when moved (explicit cas + expiry delta).
const MOVE_GROWTH_BYTES: usize = 10;
/// How many segments (over all TTL chains, oldest first) merge eviction
/// tries as the start of a run it can compact (free without evicting)
/// before it evicts at the head of a chain.
const COMPACT_SCAN_SEGMENTS: usize = 256;

/// Count one lookup in `gets` and `get_hits` or `get_misses`, unless
/// `opts` asks for it not to be counted.
#[inline(always)]
fn count_lookup(cx: &Ctx, opts: &GetOptions, hit: bool) {
    if opts.count {
        cx.st.gets.incr_owned();
        if hit {
            cx.st.get_hits.incr_owned();
        } else {
            cx.st.get_misses.incr_owned();
        }
    }
}

/// Per-call context: the shard's stats and store-wide state.
pub(crate) struct Ctx<'g> {
    pub st: &'g StoreStats,
    pub cas: &'g AtomicU64,
    pub flush_cas: u64,
    pub now: Time,
    pub seed: u64,
}

/// A located, live item.
#[derive(Clone, Copy, Debug)]
struct Found {
    prev: usize,
    b: usize,
    s: usize,
    ptr: u64,
    seg: u32,
    view: ItemView,
    e: Time,
    cas: u64,
}

/// Space reserved in an open segment.
#[derive(Clone, Copy, Debug)]
struct Reserved {
    seg: u32,
    off: u32,
    info: u8,
    delta: u16,
}

/// A piece of an item being written.
#[derive(Clone, Copy)]
enum Part<'p> {
    /// Bytes from outside the store.
    Ext(&'p [u8]),
    /// Bytes already in segment data: (absolute position, length).
    Int(usize, usize),
    /// `n` copies of a byte.
    Fill(u8, usize),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match *self {
            Part::Ext(s) => s.len(),
            Part::Int(_, n) | Part::Fill(_, n) => n,
        }
    }
}

/// Why a whole segment is being cleared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Evicted,
    Expired,
    Flushed,
}

/// Signal that an operation needs a free segment first.
struct NeedRoom;

/// Hash buckets per step of the metadata checksum (64 KiB): attach checks
/// each piece while it is still in cache.
const CHECKSUM_CHUNK_BUCKETS: usize = 1024;

/// A shard's metadata checksum: XXH64 chained (each result seeds the next)
/// over the segment headers, the TTL buckets, then the hash table in
/// pieces of [`CHECKSUM_CHUNK_BUCKETS`].
pub(crate) fn metadata_checksum(buckets: &[Bucket], segs: &[SegHeader], ttl: &[TtlBucket]) -> u64 {
    let mut h = xxh64(pod_bytes(segs), 0);
    h = xxh64(pod_bytes(ttl), h);
    for chunk in buckets.chunks(CHECKSUM_CHUNK_BUCKETS) {
        h = xxh64(pod_bytes(chunk), h);
    }
    h
}

/// Why [`Shard::attach`] refused a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttachFault {
    /// The metadata does not match its saved checksum.
    Checksum,
    /// The checksum matches but the links or counts do not add up.
    Inconsistent(&'static str),
}

/// Counts from the segment headers, for the gauges.
struct SegCounts {
    free: usize,
    used: usize,
    items: u64,
    bytes: u64,
    written: u64,
}

/// Check the segment headers, the free list and the TTL chains of a saved
/// shard. Indices are range-checked before use: never panics.
fn check_segments(
    segs: &[SegHeader],
    ttl: &[TtlBucket],
    layout: &Layout,
    eviction: Eviction,
    saved: &ShardState,
) -> Result<SegCounts, &'static str> {
    let n = segs.len();
    let seg_bytes = 1usize << layout.seg_shift;
    let in_range = |s: u32| s == NONE || (s as usize) < n;
    let merge = matches!(eviction, Eviction::Merge { .. });
    if !in_range(saved.free_head) || !in_range(saved.reserve) {
        return Err("free list head out of range");
    }
    if !merge && saved.reserve != NONE {
        return Err("merge reserve without merge eviction");
    }
    // Free list: only FREE segments, no cycle.
    let mut free = 0usize;
    let mut s = saved.free_head;
    while s != NONE {
        if free >= n || segs[s as usize].state != FREE || s == saved.reserve {
            return Err("free segment list");
        }
        free += 1;
        s = segs[s as usize].next;
        if !in_range(s) {
            return Err("free segment list");
        }
    }
    if saved.reserve != NONE {
        if segs[saved.reserve as usize].state != FREE {
            return Err("merge reserve segment is not free");
        }
        free += 1;
    }
    let mut c = SegCounts {
        free,
        used: 0,
        items: 0,
        bytes: 0,
        written: 0,
    };
    for h in segs.iter() {
        match h.state {
            FREE => continue,
            OPEN | SEALED => {}
            _ => return Err("segment state"),
        }
        if h.write_offset as usize > seg_bytes
            || h.live_bytes > h.write_offset
            || h.ttl_bucket as usize >= TTL_BUCKETS
            || !in_range(h.next)
            || !in_range(h.prev)
        {
            return Err("segment header");
        }
        c.used += 1;
        c.items += h.live_items as u64;
        c.bytes += h.live_bytes as u64;
        c.written += h.write_offset as u64;
    }
    if c.used + c.free != n {
        return Err("free segments not all on the free list");
    }
    let mut chained = 0u64;
    for t in ttl.iter() {
        if !in_range(t.head) || !in_range(t.tail) {
            return Err("ttl bucket");
        }
        chained += t.segments as u64;
    }
    if chained != c.used as u64 {
        return Err("ttl chains");
    }
    Ok(c)
}

pub(crate) struct Shard<'a> {
    data: &'a mut [u8],
    segs: &'a mut [SegHeader],
    buckets: &'a mut [Bucket],
    ttl: &'a mut [TtlBucket],
    index: u16,
    nmain: usize,
    seg_shift: u32,
    max_item_bytes: usize,
    eviction: Eviction,
    free_head: u32,
    reserve: u32,
    ovf_free: usize,
    rng: u64,
    merge_bucket: usize,
    earliest_expiry: Time,
    flush_done: u64,
}

impl<'a> Shard<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: u16,
        data: &'a mut [u8],
        segs: &'a mut [SegHeader],
        buckets: &'a mut [Bucket],
        ttl: &'a mut [TtlBucket],
        layout: &Layout,
        max_item_bytes: usize,
        eviction: Eviction,
        seed: u64,
        st: &StoreStats,
    ) -> Self {
        let n = segs.len();
        for (i, h) in segs.iter_mut().enumerate() {
            *h = SegHeader {
                next: if i + 1 < n { i as u32 + 1 } else { NONE },
                prev: NONE,
                state: FREE,
                ..Default::default()
            };
        }
        for t in ttl.iter_mut() {
            *t = TtlBucket {
                head: NONE,
                tail: NONE,
                segments: 0,
            };
        }
        let nmain = layout.main_buckets;
        let total = buckets.len();
        for (i, b) in buckets.iter_mut().enumerate() {
            *b = Bucket::default();
            if i >= nmain && i + 1 < total {
                b.0[0] = (i + 1) as u64;
            }
        }
        st.segments_total.set(n as u64);
        st.segments_free.set(n as u64);
        st.hash_buckets.set(nmain as u64);
        st.overflow_buckets_total.set((total - nmain) as u64);
        let mut shard = Self {
            data,
            segs,
            buckets,
            ttl,
            index,
            nmain,
            seg_shift: layout.seg_shift,
            max_item_bytes,
            eviction,
            free_head: 0,
            reserve: NONE,
            ovf_free: if total > nmain { nmain } else { 0 },
            rng: seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            merge_bucket: 0,
            earliest_expiry: Time::MAX,
            flush_done: 0,
        };
        if matches!(eviction, Eviction::Merge { .. }) {
            // Keep one free segment aside as the merge destination; it is
            // still counted in `segments_free`.
            shard.reserve = shard.free_head;
            shard.free_head = shard.segs[shard.reserve as usize].next;
            shard.segs[shard.reserve as usize].next = NONE;
        }
        shard
    }

    /// Reattach to a shard's regions as a clean shutdown left them
    /// ([`Shard::saved_state`]): nothing is initialised or written. One
    /// pass over the metadata computes its checksum (compared with
    /// `saved.checksum` first) and validates the links and counts (so a
    /// consistent-looking but wrong state is refused instead of trusted);
    /// the gauges in `st` are recomputed.
    #[allow(clippy::too_many_arguments)]
    pub fn attach(
        index: u16,
        data: &'a mut [u8],
        segs: &'a mut [SegHeader],
        buckets: &'a mut [Bucket],
        ttl: &'a mut [TtlBucket],
        layout: &Layout,
        max_item_bytes: usize,
        eviction: Eviction,
        saved: &ShardState,
        st: &StoreStats,
    ) -> Result<Self, AttachFault> {
        let nmain = layout.main_buckets;
        let total = buckets.len();
        let mut h = xxh64(pod_bytes(segs), 0);
        h = xxh64(pod_bytes(ttl), h);
        // Segments, free list, TTL chains (small); judged after the checksum.
        let seg_check = check_segments(segs, ttl, layout, eviction, saved);
        // Hash table: checksum and check each piece while it is in cache.
        let n = segs.len();
        let (mut slots, mut bad) = (0u64, None);
        for chunk in buckets.chunks(CHECKSUM_CHUNK_BUCKETS) {
            h = xxh64(pod_bytes(chunk), h);
            for b in chunk {
                let next = next_of(b);
                if next != 0 && (next < nmain || next >= total) {
                    bad = bad.or(Some("hash chain link"));
                }
                for &p in &b.0[1..] {
                    if p == 0 {
                        continue;
                    }
                    let seg = ptr_seg(p) as usize;
                    let ok = seg < n
                        && segs[seg].state != FREE
                        && ptr_offset(p) < segs[seg].write_offset;
                    if !ok {
                        bad = bad.or(Some("item pointer"));
                    }
                    slots += 1;
                }
            }
        }
        if h != saved.checksum {
            return Err(AttachFault::Checksum);
        }
        let c = seg_check.map_err(AttachFault::Inconsistent)?;
        if let Some(what) = bad {
            return Err(AttachFault::Inconsistent(what));
        }
        if slots != c.items {
            return Err(AttachFault::Inconsistent(
                "item count (hash slots vs segment live items)",
            ));
        }
        let ovf_total = total - nmain;
        let bad_pool = AttachFault::Inconsistent("overflow free list");
        let ovf_free = usize::try_from(saved.ovf_free).map_err(|_| bad_pool)?;
        let mut pool = 0usize;
        let mut b = ovf_free;
        while b != 0 {
            if pool >= ovf_total || b < nmain || b >= total {
                return Err(bad_pool);
            }
            if buckets[b].0[1..].iter().any(|&p| p != 0) {
                return Err(AttachFault::Inconsistent("overflow free list holds items"));
            }
            pool += 1;
            b = (buckets[b].0[0] & NEXT_MASK) as usize;
        }
        st.segments_total.set(n as u64);
        st.segments_free.set(c.free as u64);
        st.segments_used.set(c.used as u64);
        st.segment_bytes_written.set(c.written);
        st.items.set(c.items);
        st.item_bytes.set(c.bytes);
        st.hash_buckets.set(nmain as u64);
        st.hash_slots_used.set(slots);
        st.overflow_buckets_total.set(ovf_total as u64);
        st.overflow_buckets_used.set((ovf_total - pool) as u64);
        Ok(Self {
            data,
            segs,
            buckets,
            ttl,
            index,
            nmain,
            seg_shift: layout.seg_shift,
            max_item_bytes,
            eviction,
            free_head: saved.free_head,
            reserve: saved.reserve,
            ovf_free,
            rng: saved.rng | 1,
            merge_bucket: (saved.merge_bucket as usize) % TTL_BUCKETS,
            // Unknown until the next scan: make the first expire() look.
            earliest_expiry: 0,
            flush_done: 0,
        })
    }

    /// What [`Shard::attach`] needs besides the arena regions, with the
    /// checksum of those regions' metadata.
    pub fn saved_state(&self, items: u64) -> ShardState {
        ShardState {
            free_head: self.free_head,
            reserve: self.reserve,
            merge_bucket: self.merge_bucket as u32,
            ovf_free: self.ovf_free as u64,
            rng: self.rng,
            checksum: self.metadata_checksum(),
            items,
        }
    }

    /// XXH64 over the hash table, segment headers and TTL buckets (not
    /// the segment data).
    pub fn metadata_checksum(&self) -> u64 {
        metadata_checksum(self.buckets, self.segs, self.ttl)
    }

    // ----- small helpers -------------------------------------------------

    #[inline(always)]
    fn seg_bytes(&self) -> usize {
        1 << self.seg_shift
    }

    #[inline(always)]
    fn pos(&self, seg: u32, off: u32) -> usize {
        ((seg as usize) << self.seg_shift) + off as usize
    }

    #[inline]
    fn rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        (hash as usize) & (self.nmain - 1)
    }

    #[inline(always)]
    fn key_matches(&self, at: usize, key: &[u8]) -> bool {
        let d = &*self.data;
        if d.get(at).map(|&k| k as usize) != Some(key.len()) {
            return false;
        }
        let info = d.get(at + 4).copied().unwrap_or(0);
        let k = at + HEADER_BYTES + item::optional_bytes(info);
        d.get(k..k + key.len())
            .is_some_and(|s| item::bytes_eq(s, key))
    }

    fn key_hash(&self, view: &ItemView, seed: u64) -> u64 {
        let k = view.key_at();
        hash(seed, self.data.get(k..k + view.klen).unwrap_or(&[]))
    }

    // ----- hash table ------------------------------------------------------

    /// Start loading the first item in the home bucket whose tag matches
    /// `hash`: the cache line of its header and the next one (the rest of
    /// a small item: key and value). A hint: nothing changes.
    #[inline]
    pub fn prefetch_item(&self, hash: u64) {
        let tag = tag_of(hash);
        let Some(bucket) = self.buckets.get(self.home(hash)) else {
            return;
        };
        if let Some(&p) = bucket.0[1..].iter().find(|&&p| ptr_tag(p) == tag) {
            let addr = self.data.as_ptr() as usize + self.pos(ptr_seg(p), ptr_offset(p));
            super::prefetch(addr);
            super::prefetch(addr + 64);
        }
    }

    /// Find the slot whose item has `key` (no liveness checks).
    #[inline(always)]
    fn find(&self, key: &[u8], hash: u64) -> Option<(usize, usize, usize, u64)> {
        let tag = tag_of(hash);
        let mut prev = NO_BUCKET;
        let mut b = self.home(hash);
        loop {
            let bucket = self.buckets.get(b)?;
            for (i, &p) in bucket.0[1..].iter().enumerate() {
                // A pointer is never 0 and an empty slot's tag is 0 while
                // `tag` is not: the tag test alone skips empty slots.
                if ptr_tag(p) == tag {
                    let at = self.pos(ptr_seg(p), ptr_offset(p));
                    // The key's last byte (when the item has no optional
                    // fields) may sit on the next cache line: ask for that
                    // line now rather than after the header arrives.
                    super::prefetch(
                        self.data.as_ptr() as usize + at + HEADER_BYTES + key.len() - 1,
                    );
                    if self.key_matches(at, key) {
                        return Some((prev, b, i + 1, p));
                    }
                }
            }
            let n = next_of(bucket);
            if n == 0 {
                return None;
            }
            prev = b;
            b = n;
        }
    }

    /// Find the slot pointing at (seg, off).
    fn find_location(&self, hash: u64, seg: u32, off: u32) -> Option<(usize, usize, usize, u64)> {
        let want = make_ptr(0, 0, seg, off) & LOCATION_MASK;
        let mut prev = NO_BUCKET;
        let mut b = self.home(hash);
        loop {
            let bucket = self.buckets.get(b)?;
            for s in 1..=SLOTS {
                let p = bucket.0[s];
                if p != 0 && p & LOCATION_MASK == want {
                    return Some((prev, b, s, p));
                }
            }
            let n = next_of(bucket);
            if n == 0 {
                return None;
            }
            prev = b;
            b = n;
        }
    }

    /// Clear a slot; return an emptied overflow bucket to the pool.
    fn remove_slot(&mut self, cx: &Ctx, prev: usize, b: usize, s: usize) {
        self.buckets[b].0[s] = 0;
        cx.st.hash_slots_used.sub_owned(1);
        if b >= self.nmain && prev != NO_BUCKET && self.buckets[b].0[1..].iter().all(|&v| v == 0) {
            let next = next_of(&self.buckets[b]);
            set_next(&mut self.buckets[prev], next);
            self.buckets[b].0[0] = self.ovf_free as u64;
            self.ovf_free = b;
            cx.st.overflow_buckets_used.sub_owned(1);
        }
    }

    /// Mark the item at (seg, view) dead and account for it.
    fn mark_dead(&mut self, cx: &Ctx, seg: u32, view: &ItemView) {
        item::set_info(self.data, view.at, INFO_DELETED, 0);
        let size = view.size() as u32;
        let h = &mut self.segs[seg as usize];
        h.live_bytes = h.live_bytes.saturating_sub(size);
        h.live_items = h.live_items.saturating_sub(1);
        cx.st.items.sub_owned(1);
        cx.st.item_bytes.sub_owned(size as u64);
    }

    fn unlink_found(&mut self, cx: &Ctx, f: &Found) {
        self.remove_slot(cx, f.prev, f.b, f.s);
        self.mark_dead(cx, f.seg, &f.view);
    }

    /// Link a new pointer for a key that is not in the table.
    fn insert_ptr(&mut self, cx: &Ctx, hash: u64, ptr: u64) {
        let mut b = self.home(hash);
        loop {
            if let Some(s) = (1..=SLOTS).find(|&s| self.buckets[b].0[s] == 0) {
                self.buckets[b].0[s] = ptr;
                cx.st.hash_slots_used.add_owned(1);
                return;
            }
            let n = next_of(&self.buckets[b]);
            if n == 0 {
                break;
            }
            b = n;
        }
        if self.ovf_free != 0 {
            let nb = self.ovf_free;
            self.ovf_free = (self.buckets[nb].0[0] & NEXT_MASK) as usize;
            self.buckets[nb] = Bucket::default();
            self.buckets[nb].0[1] = ptr;
            set_next(&mut self.buckets[b], nb);
            cx.st.overflow_buckets_used.add_owned(1);
            cx.st.hash_slots_used.add_owned(1);
            return;
        }
        // Chain full and pool empty: evict the least frequently used entry.
        let mut victim = (self.home(hash), 1usize, u16::MAX);
        let mut c = self.home(hash);
        loop {
            for s in 1..=SLOTS {
                let f = ptr_freq(self.buckets[c].0[s]) as u16;
                if f < victim.2 {
                    victim = (c, s, f);
                }
            }
            let n = next_of(&self.buckets[c]);
            if n == 0 {
                break;
            }
            c = n;
        }
        let (vb, vs, _) = victim;
        let old = self.buckets[vb].0[vs];
        let view = ItemView::read(self.data, self.pos(ptr_seg(old), ptr_offset(old)));
        self.mark_dead(cx, ptr_seg(old), &view);
        self.buckets[vb].0[vs] = ptr;
        cx.st.hash_full_evictions.incr_owned();
    }

    // ----- lookup ----------------------------------------------------------

    /// The item `ptr` points at: its segment, header, absolute expiry and
    /// cas (explicit, or the segment's base plus the item's offset).
    #[inline(always)]
    fn read_item(&self, ptr: u64) -> (u32, ItemView, Time, u64) {
        let seg = ptr_seg(ptr);
        let off = ptr_offset(ptr);
        let view = ItemView::read(self.data, self.pos(seg, off));
        let h = &self.segs[seg as usize];
        let e = h.item_expiry(view.exp_delta);
        let cas = match view.cas {
            Some(c) => c,
            None => h.cas_base + off as u64,
        };
        (seg, view, e, cas)
    }

    /// Find a live item; dead matches (expired, flushed) are removed.
    #[inline]
    fn lookup(&mut self, cx: &Ctx, key: &[u8], hash: u64) -> Option<Found> {
        let (prev, b, s, ptr) = self.find(key, hash)?;
        let (seg, view, e, cas) = self.read_item(ptr);
        let f = Found {
            prev,
            b,
            s,
            ptr,
            seg,
            view,
            e,
            cas,
        };
        if e != 0 && e <= cx.now {
            self.unlink_found(cx, &f);
            cx.st.expired_lazy.incr_owned();
            return None;
        }
        if cas < cx.flush_cas {
            self.unlink_found(cx, &f);
            cx.st.flushed_items.incr_owned();
            return None;
        }
        Some(f)
    }

    // ----- segments --------------------------------------------------------

    fn pop_free(&mut self, cx: &Ctx) -> Option<u32> {
        let s = self.free_head;
        if s == NONE {
            return None;
        }
        self.free_head = self.segs[s as usize].next;
        cx.st.segments_free.sub_owned(1);
        cx.st.segments_used.add_owned(1);
        Some(s)
    }

    fn free_segment(&mut self, cx: &Ctx, s: u32) {
        let h = &mut self.segs[s as usize];
        cx.st.segment_bytes_written.sub_owned(h.write_offset as u64);
        *h = SegHeader {
            next: NONE,
            prev: NONE,
            state: FREE,
            ..Default::default()
        };
        cx.st.segments_free.add_owned(1);
        cx.st.segments_used.sub_owned(1);
        if matches!(self.eviction, Eviction::Merge { .. }) && self.reserve == NONE {
            self.reserve = s;
        } else {
            self.segs[s as usize].next = self.free_head;
            self.free_head = s;
        }
    }

    fn open_segment(&mut self, cx: &Ctx, s: u32, b: usize, expire_at: Time, state: u8) {
        let cas_base = cx.cas.fetch_add(self.seg_bytes() as u64, Ordering::Relaxed);
        self.segs[s as usize] = SegHeader {
            cas_base,
            write_offset: 0,
            live_bytes: 0,
            live_items: 0,
            next: NONE,
            prev: NONE,
            expire_at,
            create_at: cx.now,
            ttl_bucket: b as u16,
            state,
            _pad: 0,
        };
        if expire_at != 0 {
            self.earliest_expiry = self.earliest_expiry.min(expire_at);
        }
    }

    fn link_tail(&mut self, b: usize, s: u32) {
        let tail = self.ttl[b].tail;
        self.segs[s as usize].prev = tail;
        self.segs[s as usize].next = NONE;
        if tail == NONE {
            self.ttl[b].head = s;
        } else {
            self.segs[tail as usize].next = s;
        }
        self.ttl[b].tail = s;
        self.ttl[b].segments += 1;
    }

    fn link_before(&mut self, b: usize, before: u32, s: u32) {
        let prev = self.segs[before as usize].prev;
        self.segs[s as usize].prev = prev;
        self.segs[s as usize].next = before;
        self.segs[before as usize].prev = s;
        if prev == NONE {
            self.ttl[b].head = s;
        } else {
            self.segs[prev as usize].next = s;
        }
        self.ttl[b].segments += 1;
    }

    fn unlink_segment(&mut self, s: u32) {
        let h = self.segs[s as usize];
        let b = h.ttl_bucket as usize;
        if h.prev == NONE {
            self.ttl[b].head = h.next;
        } else {
            self.segs[h.prev as usize].next = h.next;
        }
        if h.next == NONE {
            self.ttl[b].tail = h.prev;
        } else {
            self.segs[h.next as usize].prev = h.prev;
        }
        self.ttl[b].segments = self.ttl[b].segments.saturating_sub(1);
    }

    /// Reserve space for an item in the open segment of its TTL bucket,
    /// opening a new segment from the free list if needed. Never evicts.
    fn reserve(
        &mut self,
        cx: &Ctx,
        info: u8,
        klen: usize,
        vlen: usize,
        expire_at: Time,
    ) -> Result<Reserved, NeedRoom> {
        let b = bucket_index(expire_at, cx.now);
        let tail = self.ttl[b].tail;
        if tail != NONE {
            let h = self.segs[tail as usize];
            if h.state == OPEN {
                if let Some(d) = expiry_delta(h.expire_at, expire_at) {
                    let info = if d != 0 { info | INFO_EXPIRY } else { info };
                    if h.write_offset as usize + item_bytes(info, klen, vlen) <= self.seg_bytes() {
                        return Ok(Reserved {
                            seg: tail,
                            off: h.write_offset,
                            info,
                            delta: d,
                        });
                    }
                }
            }
        }
        let s = self.pop_free(cx).ok_or(NeedRoom)?;
        if tail != NONE && self.segs[tail as usize].state == OPEN {
            self.segs[tail as usize].state = SEALED;
        }
        let seg_expire = if expire_at == 0 {
            0
        } else {
            expire_at.saturating_add(bucket_width(b))
        };
        self.open_segment(cx, s, b, seg_expire, OPEN);
        self.link_tail(b, s);
        let d = expiry_delta(seg_expire, expire_at).unwrap_or(0);
        Ok(Reserved {
            seg: s,
            off: 0,
            info: if d != 0 { info | INFO_EXPIRY } else { info },
            delta: d,
        })
    }

    /// Write an item into reserved space; returns its cas.
    #[allow(clippy::too_many_arguments)]
    fn write_item(
        &mut self,
        cx: &Ctx,
        r: &Reserved,
        klen: usize,
        key: Part<'_>,
        value: &[Part<'_>],
        flags: u32,
        cas: u64,
        atime: u16,
    ) -> u64 {
        let vlen: usize = value.iter().map(|p| p.len()).sum();
        let at = self.pos(r.seg, r.off);
        let mut p = item::write_header(
            self.data, at, klen, vlen, r.info, flags, r.delta, cas, atime,
        );
        for part in core::iter::once(&key).chain(value.iter()) {
            let n = part.len();
            match *part {
                Part::Ext(s) => self.data[p..p + n].copy_from_slice(s),
                Part::Int(src, _) => self.data.copy_within(src..src + n, p),
                Part::Fill(c, _) => self.data[p..p + n].fill(c),
            }
            p += n;
        }
        let size = (p - at) as u32;
        let h = &mut self.segs[r.seg as usize];
        h.write_offset += size;
        h.live_bytes += size;
        h.live_items += 1;
        cx.st.items.add_owned(1);
        cx.st.item_bytes.add_owned(size as u64);
        cx.st.segment_bytes_written.add_owned(size as u64);
        if r.info & INFO_CAS != 0 {
            cas
        } else {
            h.cas_base + r.off as u64
        }
    }

    /// Append a new version of `key` and link it (replacing `existing`).
    #[allow(clippy::too_many_arguments)]
    fn put_new(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        value: &[Part<'_>],
        flags: u32,
        expire_at: Time,
        state: u8,
        existing: Option<&Found>,
    ) -> Result<u64, NeedRoom> {
        let vlen: usize = value.iter().map(|p| p.len()).sum();
        let info = state | if flags != 0 { INFO_FLAGS } else { 0 };
        let r = self.reserve(cx, info, key.len(), vlen, expire_at)?;
        let cas = self.write_item(
            cx,
            &r,
            key.len(),
            Part::Ext(key),
            value,
            flags,
            0,
            cx.now as u16,
        );
        let ptr = make_ptr(tag_of(hash), 0, r.seg, r.off);
        match existing {
            Some(f) => {
                self.buckets[f.b].0[f.s] = ptr;
                self.mark_dead(cx, f.seg, &f.view);
            }
            None => self.insert_ptr(cx, hash, ptr),
        }
        Ok(cas)
    }

    /// Record a fetch of the item at `at` (whose header `view` was read
    /// before any move): the fetched bit and the access time. Only dirties
    /// the item's cache line when something changes.
    #[inline(always)]
    fn mark_fetched(&mut self, at: usize, view: &ItemView, now: Time) {
        if view.info & INFO_FETCHED == 0 {
            item::set_info(self.data, at, INFO_FETCHED, 0);
        }
        if view.atime != now as u16 {
            item::set_atime(self.data, at, now);
        }
    }

    /// Re-append an item with a new expiry, keeping its cas and state.
    fn relocate(&mut self, cx: &Ctx, f: &Found, expire_at: Time) -> Result<Found, NeedRoom> {
        let v = f.view;
        let info = INFO_CAS | (v.info & (INFO_FLAGS | INFO_STATE_MASK));
        let r = self.reserve(cx, info, v.klen, v.vlen, expire_at)?;
        self.write_item(
            cx,
            &r,
            v.klen,
            Part::Int(v.key_at(), v.klen),
            &[Part::Int(v.value_at(), v.vlen)],
            v.flags,
            f.cas,
            v.atime,
        );
        let ptr = with_location(f.ptr, r.seg, r.off);
        self.buckets[f.b].0[f.s] = ptr;
        self.mark_dead(cx, f.seg, &v);
        let view = ItemView::read(self.data, self.pos(r.seg, r.off));
        Ok(Found {
            ptr,
            seg: r.seg,
            view,
            e: self.segs[r.seg as usize].item_expiry(view.exp_delta),
            ..*f
        })
    }

    // ----- reclaiming memory -----------------------------------------------

    /// Free one or more segments: reclaim a dead segment if any, else evict
    /// by policy. Returns false if nothing could be freed.
    fn make_room(&mut self, cx: &Ctx) -> bool {
        if self.reclaim_dead(cx, 1) > 0 {
            return true;
        }
        match self.eviction {
            Eviction::None => false,
            Eviction::Merge {
                max,
                merge,
                compact,
            } => self.merge_evict(cx, max, merge, compact),
            policy => self.evict_one(cx, policy),
        }
    }

    /// Reclaim up to `max` whole segments at the heads of TTL chains that
    /// are expired or entirely flushed.
    pub fn reclaim_dead(&mut self, cx: &Ctx, max: usize) -> usize {
        if max == 0 || (cx.now < self.earliest_expiry && cx.flush_cas == self.flush_done) {
            return 0;
        }
        let sb = self.seg_bytes() as u64;
        let mut n = 0;
        let mut earliest = Time::MAX;
        for b in 0..TTL_BUCKETS {
            loop {
                let s = self.ttl[b].head;
                if s == NONE {
                    break;
                }
                let h = self.segs[s as usize];
                let cause = if h.expired(cx.now) {
                    Cause::Expired
                } else if h.cas_base + sb <= cx.flush_cas {
                    Cause::Flushed
                } else {
                    if h.expire_at != 0 {
                        earliest = earliest.min(h.expire_at);
                    }
                    break;
                };
                if n == max {
                    return n;
                }
                self.clear_segment(cx, s, cause);
                n += 1;
            }
        }
        self.earliest_expiry = earliest;
        self.flush_done = cx.flush_cas;
        n
    }

    /// Unlink every live item of segment `s`, then free it.
    fn clear_segment(&mut self, cx: &Ctx, s: u32, cause: Cause) {
        let end = self.segs[s as usize].write_offset;
        let mut off = 0u32;
        while off < end {
            let view = ItemView::read(self.data, self.pos(s, off));
            let size = view.size() as u32;
            if !view.deleted() {
                let hash = self.key_hash(&view, cx.seed);
                if let Some((prev, b, sl, _)) = self.find_location(hash, s, off) {
                    self.remove_slot(cx, prev, b, sl);
                }
                self.mark_dead(cx, s, &view);
                match cause {
                    Cause::Evicted => cx.st.evicted_items.incr_owned(),
                    Cause::Expired => cx.st.expired_segment_items.incr_owned(),
                    Cause::Flushed => cx.st.flushed_items.incr_owned(),
                }
            }
            off += size;
        }
        match cause {
            Cause::Evicted => {}
            Cause::Expired => cx.st.expired_segments.incr_owned(),
            Cause::Flushed => cx.st.flushed_segments.incr_owned(),
        }
        self.unlink_segment(s);
        self.free_segment(cx, s);
    }

    /// FIFO / random / closest-to-expiry: evict one whole segment,
    /// preferring sealed segments over open ones.
    fn evict_one(&mut self, cx: &Ctx, policy: Eviction) -> bool {
        let n = self.segs.len();
        let start = if policy == Eviction::Random {
            (self.rand() % n as u64) as usize
        } else {
            0
        };
        let mut best = NONE;
        let mut best_key = u64::MAX;
        for i in 0..n {
            let s = (start + i) % n;
            let h = &self.segs[s];
            if h.state == FREE || s as u32 == self.reserve {
                continue;
            }
            let open = (h.state == OPEN) as u64;
            let key = match policy {
                Eviction::Random => open,
                Eviction::Cte => {
                    let e = if h.expire_at == 0 {
                        u32::MAX
                    } else {
                        h.expire_at
                    };
                    (open << 63) | ((e as u64) << 30) | (h.create_at as u64 & 0x3FFF_FFFF)
                }
                _ => (open << 63) | h.cas_base,
            };
            if key < best_key {
                best_key = key;
                best = s as u32;
                if policy == Eviction::Random && open == 0 {
                    break;
                }
            }
        }
        if best == NONE {
            return false;
        }
        match policy {
            Eviction::Random => cx.st.evicted_segments_random.incr_owned(),
            Eviction::Cte => cx.st.evicted_segments_cte.incr_owned(),
            _ => cx.st.evicted_segments_fifo.incr_owned(),
        }
        self.clear_segment(cx, best, Cause::Evicted);
        true
    }

    fn collect_run(
        &self,
        b: usize,
        start: u32,
        want: usize,
        run: &mut [u32; MAX_MERGE_RUN],
    ) -> usize {
        let mut s = start;
        let mut n = 0;
        while s != NONE && n < want.min(MAX_MERGE_RUN) {
            let h = &self.segs[s as usize];
            if h.state != SEALED || h.ttl_bucket as usize != b {
                break;
            }
            run[n] = s;
            n += 1;
            s = h.next;
        }
        n
    }

    /// Bytes the live items of segment `s` need when moved.
    fn move_need(&self, s: u32) -> usize {
        let h = &self.segs[s as usize];
        h.live_bytes as usize + h.live_items as usize * MOVE_GROWTH_BYTES
    }

    /// The cheapest run to compact: of the runs of `min_run` consecutive
    /// sealed segments starting at one of the first
    /// [`COMPACT_SCAN_SEGMENTS`] segments of the TTL chains (oldest first),
    /// the one with the fewest live bytes, if they fit in one segment.
    /// Compacting it frees `min_run - 1` segments without evicting anything,
    /// moving as little as possible while the shard is locked.
    fn find_compactable(&self, min_run: usize) -> Option<(usize, u32)> {
        let sb = self.seg_bytes();
        let mut best: Option<(usize, usize, u32)> = None;
        let mut scanned = 0;
        let mut run = [NONE; MAX_MERGE_RUN];
        'chains: for b in 0..TTL_BUCKETS {
            if self.ttl[b].segments < min_run as u32 {
                continue;
            }
            let mut start = self.ttl[b].head;
            while start != NONE {
                if scanned == COMPACT_SCAN_SEGMENTS {
                    break 'chains;
                }
                let k = self.collect_run(b, start, min_run, &mut run);
                let need: usize = run[..k].iter().map(|&s| self.move_need(s)).sum();
                if k == min_run && need <= sb && best.is_none_or(|(n, _, _)| need < n) {
                    best = Some((need, b, start));
                }
                start = self.segs[start as usize].next;
                scanned += 1;
            }
        }
        best.map(|(_, b, start)| (b, start))
    }

    /// Segcache merge eviction: pick a TTL bucket round-robin, take a run of
    /// consecutive sealed segments, and either compact them (all live items
    /// fit in one segment) or merge `merge` of them into one, keeping the
    /// most frequently accessed items. Falls back to FIFO if no bucket has
    /// two consecutive sealed segments.
    ///
    /// Dead space is reclaimed before live items are evicted: if a run of
    /// `compact` segments near the heads of the chains can be compacted
    /// (overwritten and deleted items leave segments sparse), the sparsest
    /// such run is compacted instead.
    fn merge_evict(&mut self, cx: &Ctx, max: usize, merge: usize, compact: usize) -> bool {
        if self.reserve == NONE {
            return self.evict_one(cx, Eviction::Fifo);
        }
        let want = max.max(merge);
        let mut run = [NONE; MAX_MERGE_RUN];
        // (`compact` above `max` leaves compaction off, as merge_run does.)
        if compact <= max.min(MAX_MERGE_RUN) {
            if let Some((b, start)) = self.find_compactable(compact) {
                let len = self.collect_run(b, start, compact, &mut run);
                self.merge_run(cx, b, &run[..len], max, merge, compact);
                return true;
            }
        }
        for i in 0..TTL_BUCKETS {
            let b = (self.merge_bucket + i) % TTL_BUCKETS;
            if self.ttl[b].segments < 2 {
                continue;
            }
            // Always start at the oldest segment: following a cursor
            // through the chain ends up chasing (and evicting) young
            // segments near the tail.
            let len = self.collect_run(b, self.ttl[b].head, want, &mut run);
            if len < 2 {
                continue;
            }
            self.merge_bucket = (b + 1) % TTL_BUCKETS;
            self.merge_run(cx, b, &run[..len], max, merge, compact);
            return true;
        }
        self.evict_one(cx, Eviction::Fifo)
    }

    fn merge_run(
        &mut self,
        cx: &Ctx,
        b: usize,
        run: &[u32],
        max: usize,
        merge: usize,
        compact: usize,
    ) {
        let sb = self.seg_bytes();
        let mut k = 0;
        let mut need_total = 0;
        for &s in run.iter().take(max) {
            let need = self.move_need(s);
            if need_total + need > sb {
                break;
            }
            need_total += need;
            k += 1;
        }
        let compacting = k >= compact.max(2);
        let d = self.reserve;
        self.reserve = NONE;
        let expire_at = run
            .iter()
            .map(|&s| self.segs[s as usize].expire_at)
            .max()
            .unwrap_or(0);
        let create_at = self.segs[run[0] as usize].create_at;
        self.open_segment(cx, d, b, expire_at, SEALED);
        self.segs[d as usize].create_at = create_at;
        cx.st.segments_used.add_owned(1);
        cx.st.segments_free.sub_owned(1);
        self.link_before(b, run[0], d);
        let mut used = 0;
        if compacting {
            for &s in &run[..k] {
                self.merge_segment(cx, s, d, sb, true);
            }
            used = k;
        } else {
            // Merge `merge` segments with a per-source budget so the most
            // frequently used items of each are kept; then, while the
            // destination is less than 3/4 full, keep consuming the run.
            let n = merge.min(run.len());
            for (i, &s) in run.iter().enumerate() {
                let room = sb - self.segs[d as usize].write_offset as usize;
                if i >= n && room < sb / 4 {
                    break;
                }
                let budget = if i < n { room / (n - i) } else { room };
                self.merge_segment(cx, s, d, budget, false);
                used = i + 1;
            }
        }
        for &s in &run[..used] {
            self.unlink_segment(s);
            self.free_segment(cx, s);
        }
        let mut freed = used as u64 - 1;
        if self.segs[d as usize].write_offset == 0 {
            self.unlink_segment(d);
            self.free_segment(cx, d);
            freed += 1;
        }
        if compacting {
            cx.st.compactions.incr_owned();
        } else {
            cx.st.merge_passes.incr_owned();
            cx.st.merge_segments_freed.add_owned(freed);
        }
    }

    /// Move the live items of `s` worth keeping into `d` (at most `budget`
    /// bytes); unlink the rest.
    fn merge_segment(&mut self, cx: &Ctx, s: u32, d: u32, budget: usize, keep_all: bool) {
        let end = self.segs[s as usize].write_offset;
        let live_total = (self.segs[s as usize].live_bytes as usize).max(1);
        let mut cutoff: u8 = if keep_all { 0 } else { 1 };
        let mut seen = 0usize;
        let mut kept = 0usize;
        let mut off = 0u32;
        while off < end {
            let view = ItemView::read(self.data, self.pos(s, off));
            let size = view.size() as u32;
            if !view.deleted() {
                let hash = self.key_hash(&view, cx.seed);
                let Some((prev, bk, sl, p)) = self.find_location(hash, s, off) else {
                    self.mark_dead(cx, s, &view);
                    off += size;
                    continue;
                };
                let h = self.segs[s as usize];
                let e = h.item_expiry(view.exp_delta);
                let cas = view.cas.unwrap_or(h.cas_base + off as u64);
                if e != 0 && e <= cx.now {
                    self.remove_slot(cx, prev, bk, sl);
                    self.mark_dead(cx, s, &view);
                    cx.st.expired_lazy.incr_owned();
                } else if cas < cx.flush_cas {
                    self.remove_slot(cx, prev, bk, sl);
                    self.mark_dead(cx, s, &view);
                    cx.st.flushed_items.incr_owned();
                } else {
                    let freq = ptr_freq(p);
                    let mut moved = false;
                    if freq >= cutoff {
                        if let Some(new_size) = self.move_item(
                            cx,
                            &view,
                            s,
                            d,
                            e,
                            cas,
                            budget - kept.min(budget),
                            bk,
                            sl,
                            p,
                        ) {
                            kept += new_size;
                            moved = true;
                            if keep_all {
                                cx.st.compacted_items.incr_owned();
                            } else {
                                cx.st.merge_retained_items.incr_owned();
                            }
                        }
                    }
                    if !moved {
                        self.remove_slot(cx, prev, bk, sl);
                        self.mark_dead(cx, s, &view);
                        cx.st.evicted_items.incr_owned();
                    }
                    seen += size as usize;
                    if !keep_all {
                        // Steer the cutoff so kept bytes track the budget
                        // in proportion to the live bytes seen so far.
                        let target = budget.saturating_mul(seen) / live_total;
                        if kept > target {
                            cutoff = cutoff.saturating_add(1);
                        } else if kept < target / 2 && cutoff > 1 {
                            cutoff -= 1;
                        }
                    }
                }
            }
            off += size;
        }
    }

    /// Copy one item into merge destination `d` if it fits in `room` bytes
    /// and its expiry is representable there; repoint its slot.
    #[allow(clippy::too_many_arguments)]
    fn move_item(
        &mut self,
        cx: &Ctx,
        view: &ItemView,
        s: u32,
        d: u32,
        e: Time,
        cas: u64,
        room: usize,
        bk: usize,
        sl: usize,
        p: u64,
    ) -> Option<usize> {
        let dh = self.segs[d as usize];
        let delta = expiry_delta(dh.expire_at, e)?;
        let info = INFO_CAS
            | (view.info & (INFO_FLAGS | INFO_STATE_MASK))
            | if delta != 0 { INFO_EXPIRY } else { 0 };
        let size = item_bytes(info, view.klen, view.vlen);
        if size > room || dh.write_offset as usize + size > self.seg_bytes() {
            return None;
        }
        let r = Reserved {
            seg: d,
            off: dh.write_offset,
            info,
            delta,
        };
        self.write_item(
            cx,
            &r,
            view.klen,
            Part::Int(view.key_at(), view.klen),
            &[Part::Int(view.value_at(), view.vlen)],
            view.flags,
            cas,
            view.atime,
        );
        self.buckets[bk].0[sl] = with_freq(with_location(p, d, r.off), ptr_freq(p) / 2);
        self.mark_dead(cx, s, view);
        Some(size)
    }

    // ----- operations --------------------------------------------------------

    /// Size check shared by all writes: the item must fit even after growing
    /// by an explicit cas and expiry delta (so any move fits a segment).
    fn too_large(&self, klen: usize, vlen: usize, flags: u32) -> bool {
        let info = INFO_CAS | INFO_EXPIRY | if flags != 0 { INFO_FLAGS } else { 0 };
        vlen > item::MAX_VALUE_BYTES || item_bytes(info, klen, vlen) > self.max_item_bytes
    }

    /// The client's view of the live item `view` in segment `seg`, as of
    /// before this access (the caller sets the meta state bits).
    #[inline(always)]
    fn item_ref(
        &self,
        seg: u32,
        view: &ItemView,
        cas: u64,
        expire_at: Time,
        now: Time,
    ) -> ItemRef<'_> {
        let k = view.key_at();
        let v = k + view.klen;
        ItemRef {
            key: &self.data[k..v],
            value: &self.data[v..v + view.vlen],
            flags: view.flags,
            cas,
            expire_at,
            last_access: item::last_access(view.atime, now),
            fetched: view.info & INFO_FETCHED != 0,
            stale: view.info & INFO_STALE != 0,
            won: false,
            token_sent: false,
            created: false,
            location: ValueLocation {
                shard: self.index,
                segment: seg,
                value_offset: (v - self.pos(seg, 0)) as u32,
                value_len: view.vlen as u32,
                generation: self.segs[seg as usize].cas_base,
            },
        }
    }

    /// A fetch of the item that slot `s` of bucket `b` (pointer `ptr`)
    /// links: its fetched bit and access time, and its frequency counter.
    #[inline(always)]
    fn record_access(&mut self, b: usize, s: usize, ptr: u64, view: &ItemView, now: Time) {
        self.mark_fetched(view.at, view, now);
        let r = self.rand();
        let freq = ptr_freq(ptr);
        let nf = bump_freq(freq, r);
        if nf != freq {
            self.buckets[b].0[s] = with_freq(ptr, nf);
        }
    }

    /// `get` for a plain lookup (no touch, vivify or recache), the hot
    /// path: no `Found` is built and moved around. Falls back to the
    /// general path (handing `f` back) for an item that is dead (expired or
    /// flushed: the general path removes and counts it) or stale (a meta
    /// win token may have to be handed out).
    #[inline(always)]
    fn get_plain<R, F: FnOnce(&ItemRef<'_>) -> R>(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        opts: &GetOptions,
        f: F,
    ) -> Result<Option<R>, F> {
        let Some((_, b, s, ptr)) = self.find(key, hash) else {
            count_lookup(cx, opts, false);
            return Ok(None);
        };
        let (seg, view, e, cas) = self.read_item(ptr);
        if (e != 0 && e <= cx.now) || cas < cx.flush_cas || view.info & INFO_STALE != 0 {
            return Err(f);
        }
        count_lookup(cx, opts, true);
        if opts.update_access {
            self.record_access(b, s, ptr, &view, cx.now);
        }
        let mut item = self.item_ref(seg, &view, cas, e, cx.now);
        item.token_sent = view.info & INFO_TOKEN_SENT != 0;
        Ok(Some(f(&item)))
    }

    #[inline(always)]
    pub fn get<R>(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        opts: &GetOptions,
        f: impl FnOnce(&ItemRef<'_>) -> R,
    ) -> Option<R> {
        let f = if opts.touch.is_none() && opts.vivify.is_none() && opts.recache_below.is_none() {
            match self.get_plain(cx, hash, key, opts, f) {
                Ok(r) => return r,
                Err(f) => f,
            }
        } else {
            f
        };
        self.get_general(cx, hash, key, opts, f)
    }

    /// `get` with touch, vivify or recache, or on a dead or stale item.
    /// Kept out of line so that the plain path stays small.
    #[inline(never)]
    fn get_general<R>(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        opts: &GetOptions,
        f: impl FnOnce(&ItemRef<'_>) -> R,
    ) -> Option<R> {
        let mut created = false;
        let mut expire_after = false;
        let mut attempts = 0;
        let found = loop {
            match self.lookup(cx, key, hash) {
                Some(fd) => {
                    if let Some(t) = opts.touch {
                        cx.st.touches.incr_owned();
                        if t != 0 && t <= cx.now {
                            expire_after = true;
                        } else if t != fd.e {
                            match self.relocate(cx, &fd, t) {
                                Ok(nf) => break Some(nf),
                                Err(NeedRoom) => {
                                    attempts += 1;
                                    if attempts < MAX_ROOM_ATTEMPTS && self.make_room(cx) {
                                        continue;
                                    }
                                }
                            }
                        }
                    }
                    break Some(fd);
                }
                None => {
                    let Some(t) = opts.vivify.filter(|&t| t == 0 || t > cx.now) else {
                        break None;
                    };
                    if self.too_large(key.len(), 0, 0) {
                        break None;
                    }
                    match self.put_new(cx, hash, key, &[], 0, t, INFO_TOKEN_SENT, None) {
                        Ok(_) => {
                            created = true;
                            break self.lookup(cx, key, hash);
                        }
                        Err(NeedRoom) => {
                            attempts += 1;
                            if attempts < MAX_ROOM_ATTEMPTS && self.make_room(cx) {
                                continue;
                            }
                            break None;
                        }
                    }
                }
            }
        };
        let Some(fd) = found else {
            count_lookup(cx, opts, false);
            return None;
        };
        // A vivified item answers a miss.
        count_lookup(cx, opts, !created);
        let info = fd.view.info;
        let stale = info & INFO_STALE != 0;
        let token_sent = !created && info & INFO_TOKEN_SENT != 0;
        let mut won = created;
        if !created && !token_sent {
            let recache = opts
                .recache_below
                .is_some_and(|r| fd.e != 0 && fd.e.saturating_sub(cx.now) < r);
            if stale || recache {
                won = true;
                item::set_info(self.data, fd.view.at, INFO_TOKEN_SENT, 0);
            }
        }
        if opts.update_access && !created {
            self.record_access(fd.b, fd.s, fd.ptr, &fd.view, cx.now);
        }
        let expire_at = if expire_after {
            opts.touch.unwrap_or(fd.e)
        } else {
            fd.e
        };
        let mut item = self.item_ref(fd.seg, &fd.view, fd.cas, expire_at, cx.now);
        item.won = won;
        item.token_sent = token_sent;
        item.created = created;
        let r = f(&item);
        if expire_after {
            if let Some(fd) = self.lookup(cx, key, hash) {
                self.unlink_found(cx, &fd);
            }
        }
        Some(r)
    }

    pub fn store(
        &mut self,
        cx: &Ctx,
        hash: u64,
        req: &StoreRequest<'_>,
    ) -> Result<u64, StoreError> {
        let r = self.store_inner(cx, hash, req);
        match r {
            Ok(_) => cx.st.stores.incr_owned(),
            Err(StoreError::NotStored) => cx.st.store_not_stored.incr_owned(),
            Err(StoreError::Exists) => cx.st.store_exists.incr_owned(),
            Err(StoreError::NotFound) => cx.st.store_not_found.incr_owned(),
            Err(StoreError::TooLarge) => cx.st.store_too_large.incr_owned(),
            Err(StoreError::NoMemory) => cx.st.store_no_memory.incr_owned(),
            Err(_) => {}
        }
        if matches!(r, Err(StoreError::TooLarge | StoreError::NoMemory))
            && req.mode == StoreMode::Set
        {
            // memcached: a failed set must not leave the old value behind.
            if let Some(f) = self.lookup(cx, req.key, hash) {
                self.unlink_found(cx, &f);
            }
        }
        r
    }

    fn store_inner(
        &mut self,
        cx: &Ctx,
        hash: u64,
        req: &StoreRequest<'_>,
    ) -> Result<u64, StoreError> {
        if self.too_large(req.key.len(), req.value.len(), req.flags) {
            return Err(StoreError::TooLarge);
        }
        for _ in 0..MAX_ROOM_ATTEMPTS {
            let existing = self.lookup(cx, req.key, hash);
            let mut state = 0;
            if req.cas != 0 {
                match &existing {
                    None => return Err(StoreError::NotFound),
                    Some(f) if f.cas != req.cas => {
                        if req.invalidate && req.cas < f.cas {
                            state = INFO_STALE;
                        } else {
                            return Err(StoreError::Exists);
                        }
                    }
                    Some(_) => {}
                }
            }
            match (req.mode, &existing) {
                (StoreMode::Add, Some(_)) => return Err(StoreError::NotStored),
                (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                    return Err(StoreError::NotStored)
                }
                _ => {}
            }
            let ext = [Part::Ext(req.value)];
            let (flags, expire_at, parts): (u32, Time, [Part<'_>; 2]) = match (req.mode, &existing)
            {
                (StoreMode::Append, Some(f)) => (
                    f.view.flags,
                    f.e,
                    [
                        Part::Int(f.view.value_at(), f.view.vlen),
                        Part::Ext(req.value),
                    ],
                ),
                (StoreMode::Prepend, Some(f)) => (
                    f.view.flags,
                    f.e,
                    [
                        Part::Ext(req.value),
                        Part::Int(f.view.value_at(), f.view.vlen),
                    ],
                ),
                _ => (req.flags, req.expire_at, [ext[0], Part::Fill(0, 0)]),
            };
            let vlen = parts[0].len() + parts[1].len();
            if self.too_large(req.key.len(), vlen, flags) {
                // memcached: an append/prepend that would grow the item past
                // the limit is NOT_STORED and leaves the item as it was.
                return Err(StoreError::NotStored);
            }
            if expire_at != 0 && expire_at <= cx.now {
                if let Some(f) = &existing {
                    self.unlink_found(cx, f);
                }
                return Ok(cx.cas.fetch_add(1, Ordering::Relaxed));
            }
            match self.put_new(
                cx,
                hash,
                req.key,
                &parts,
                flags,
                expire_at,
                state,
                existing.as_ref(),
            ) {
                Ok(cas) => return Ok(cas),
                Err(NeedRoom) => {
                    if !self.make_room(cx) {
                        return Err(StoreError::NoMemory);
                    }
                }
            }
        }
        Err(StoreError::NoMemory)
    }

    pub fn delete(&mut self, cx: &Ctx, hash: u64, key: &[u8], cas: u64) -> Result<(), StoreError> {
        let Some(f) = self.lookup(cx, key, hash) else {
            cx.st.store_not_found.incr_owned();
            return Err(StoreError::NotFound);
        };
        if cas != 0 && cas != f.cas {
            cx.st.store_exists.incr_owned();
            return Err(StoreError::Exists);
        }
        self.unlink_found(cx, &f);
        cx.st.deletes.incr_owned();
        Ok(())
    }

    pub fn invalidate(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        cas: u64,
        expire_at: Option<Time>,
    ) -> Result<u64, StoreError> {
        for _ in 0..MAX_ROOM_ATTEMPTS {
            let Some(f) = self.lookup(cx, key, hash) else {
                cx.st.store_not_found.incr_owned();
                return Err(StoreError::NotFound);
            };
            if cas != 0 && cas != f.cas {
                cx.st.store_exists.incr_owned();
                return Err(StoreError::Exists);
            }
            let e = expire_at.unwrap_or(f.e);
            if e != 0 && e <= cx.now {
                self.unlink_found(cx, &f);
                return Ok(cx.cas.fetch_add(1, Ordering::Relaxed));
            }
            let state = INFO_STALE | (f.view.info & INFO_FETCHED);
            let value = [Part::Int(f.view.value_at(), f.view.vlen)];
            match self.put_new(cx, hash, key, &value, f.view.flags, e, state, Some(&f)) {
                Ok(new_cas) => {
                    cx.st.deletes.incr_owned();
                    return Ok(new_cas);
                }
                Err(NeedRoom) => {
                    if !self.make_room(cx) {
                        break;
                    }
                }
            }
        }
        cx.st.store_no_memory.incr_owned();
        Err(StoreError::NoMemory)
    }

    pub fn touch(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        expire_at: Time,
    ) -> Result<(), StoreError> {
        for _ in 0..MAX_ROOM_ATTEMPTS {
            let Some(f) = self.lookup(cx, key, hash) else {
                cx.st.store_not_found.incr_owned();
                return Err(StoreError::NotFound);
            };
            if expire_at != 0 && expire_at <= cx.now {
                self.unlink_found(cx, &f);
            } else {
                let at = if expire_at != f.e {
                    match self.relocate(cx, &f, expire_at) {
                        Ok(moved) => moved.view.at,
                        Err(_) => {
                            if !self.make_room(cx) {
                                break;
                            }
                            continue;
                        }
                    }
                } else {
                    f.view.at
                };
                // memcached counts a touch as a fetch (meta `h`, LRU bump).
                self.mark_fetched(at, &f.view, cx.now);
            }
            cx.st.touches.incr_owned();
            return Ok(());
        }
        Err(StoreError::NoMemory)
    }

    pub fn arith(
        &mut self,
        cx: &Ctx,
        hash: u64,
        key: &[u8],
        op: &ArithRequest,
    ) -> Result<(u64, u64), StoreError> {
        for _ in 0..MAX_ROOM_ATTEMPTS {
            let existing = self.lookup(cx, key, hash);
            let mut digits = [0u8; 20];
            let (value, flags, expire_at, pad) = match &existing {
                None => {
                    let Some((init, exp)) = op.vivify else {
                        cx.st.store_not_found.incr_owned();
                        return Err(StoreError::NotFound);
                    };
                    (init, 0, exp, 0)
                }
                Some(f) => {
                    if op.cas != 0 && op.cas != f.cas {
                        cx.st.store_exists.incr_owned();
                        return Err(StoreError::Exists);
                    }
                    let v = f.view.value_at();
                    let old = &self.data[v..v + f.view.vlen];
                    if old.is_empty() {
                        return Err(StoreError::NonNumeric);
                    }
                    let cur = item::parse_u64(old).ok_or(StoreError::NonNumeric)?;
                    let new = if op.incr {
                        cur.wrapping_add(op.delta)
                    } else {
                        cur.saturating_sub(op.delta)
                    };
                    let n = item::format_u64(new, &mut digits);
                    // memcached keeps the value's length when the new number
                    // is not longer, padding with spaces.
                    let pad = f.view.vlen.saturating_sub(n);
                    (new, f.view.flags, op.expire_at.unwrap_or(f.e), pad)
                }
            };
            let n = item::format_u64(value, &mut digits);
            if self.too_large(key.len(), n + pad, flags) {
                return Err(StoreError::TooLarge);
            }
            if expire_at != 0 && expire_at <= cx.now {
                if let Some(f) = &existing {
                    self.unlink_found(cx, f);
                }
                cx.st.ariths.incr_owned();
                return Ok((value, cx.cas.fetch_add(1, Ordering::Relaxed)));
            }
            let parts = [Part::Ext(&digits[..n]), Part::Fill(b' ', pad)];
            // memcached rewrites a number that still fits in place, keeping
            // the item's state (fetched, stale, token); a longer one is a new item.
            let state = match &existing {
                Some(f) if n <= f.view.vlen => f.view.info & INFO_STATE_MASK,
                _ => 0,
            };
            match self.put_new(
                cx,
                hash,
                key,
                &parts,
                flags,
                expire_at,
                state,
                existing.as_ref(),
            ) {
                Ok(cas) => {
                    cx.st.ariths.incr_owned();
                    return Ok((value, cas));
                }
                Err(NeedRoom) => {
                    if !self.make_room(cx) {
                        break;
                    }
                }
            }
        }
        cx.st.store_no_memory.incr_owned();
        Err(StoreError::NoMemory)
    }

    /// Seal every open segment (flush: later writes get cas >= flush cas).
    pub fn seal_open(&mut self) {
        for b in 0..TTL_BUCKETS {
            let t = self.ttl[b].tail;
            if t != NONE && self.segs[t as usize].state == OPEN {
                self.segs[t as usize].state = SEALED;
            }
        }
    }

    pub fn read_value(
        &self,
        loc: &ValueLocation,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<usize, StoreError> {
        let h = self
            .segs
            .get(loc.segment as usize)
            .ok_or(StoreError::Gone)?;
        let end = loc.value_offset as usize + loc.value_len as usize;
        if h.state == FREE || h.cas_base != loc.generation || end > h.write_offset as usize {
            return Err(StoreError::Gone);
        }
        if offset >= loc.value_len as usize {
            return Ok(0);
        }
        let n = dst.len().min(loc.value_len as usize - offset);
        let start = self.pos(loc.segment, loc.value_offset) + offset;
        dst[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }

    /// Consistency check used by tests: recount everything from scratch and
    /// compare with the incremental accounting.
    pub fn audit(&self, st: &StoreStats) -> Result<(), AuditFailure> {
        let mut slots = 0u64;
        let mut ovf = 0u64;
        let mut items = 0u64;
        let mut bytes = 0u64;
        for b in 0..self.nmain {
            let mut c = b;
            loop {
                for s in 1..=SLOTS {
                    let p = self.buckets[c].0[s];
                    if p != 0 {
                        slots += 1;
                        let v = ItemView::read(self.data, self.pos(ptr_seg(p), ptr_offset(p)));
                        if v.deleted() {
                            return Err(AuditFailure::DeletedItemLinked { bucket: c, slot: s });
                        }
                        if self.segs[ptr_seg(p) as usize].state == FREE {
                            return Err(AuditFailure::FreeSegmentLinked { bucket: c, slot: s });
                        }
                        items += 1;
                        bytes += v.size() as u64;
                    }
                }
                let n = next_of(&self.buckets[c]);
                if n == 0 {
                    break;
                }
                ovf += 1;
                c = n;
            }
        }
        let mut live_items = 0u64;
        let mut live_bytes = 0u64;
        let mut used = 0u64;
        let mut written = 0u64;
        for h in self.segs.iter() {
            if h.state != FREE {
                used += 1;
                live_items += h.live_items as u64;
                live_bytes += h.live_bytes as u64;
                written += h.write_offset as u64;
            }
        }
        let chained: u64 = self.ttl.iter().map(|t| t.segments as u64).sum();
        let checks = [
            ("hash_slots_used", slots, st.hash_slots_used.get()),
            ("overflow_buckets_used", ovf, st.overflow_buckets_used.get()),
            ("items", items, st.items.get()),
            ("item_bytes", bytes, st.item_bytes.get()),
            ("segment live_items (vs linked items)", live_items, items),
            (
                "segment live_bytes (vs linked item bytes)",
                live_bytes,
                bytes,
            ),
            ("segments_used", used, st.segments_used.get()),
            ("segments in ttl chains (vs used)", chained, used),
            (
                "segments_free",
                self.segs.len() as u64 - used,
                st.segments_free.get(),
            ),
            (
                "segment_bytes_written",
                written,
                st.segment_bytes_written.get(),
            ),
        ];
        for (what, counted, recorded) in checks {
            if counted != recorded {
                return Err(AuditFailure::Mismatch {
                    what,
                    counted,
                    recorded,
                });
            }
        }
        Ok(())
    }
}
