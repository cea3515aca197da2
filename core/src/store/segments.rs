//! One shard's segments: the headers, the free list and its never-used
//! frontier, the TTL chains, and the item bytes appended to segments.
//!
//! ```text
//! segment ids:  0 .. fresh-1                     fresh .. n-1
//!               FREE (on the free list),         never written since the
//!               OPEN or SEALED (in a TTL chain)  arena was zeroed: FREE
//! ```
//!
//! A free segment is taken from the free list first (memory already
//! written, so already resident), then from the frontier, lowest id first:
//! the memory a shard has touched grows from the start of its data region
//! only as far as it needs, and a background prefaulter can stay a bounded
//! distance ahead of [`Segments::fresh`]. With merge eviction one free
//! segment is kept aside as the merge destination (`reserve`); it still
//! counts as free.

use core::sync::atomic::Ordering;

use super::api::{ItemRef, StoreError, ValueLocation};
use super::ctx::Ctx;
use super::item::{
    self, item_bytes, Header, ItemView, HEADER_BYTES, INFO_CAS, INFO_DELETED, INFO_EXPIRY,
    INFO_FETCHED, INFO_KEY_BINARY, INFO_STALE,
};
use super::ptr::ItemPtr;
use super::segment::{SegHeader, FREE, NONE, OPEN, SEALED};
use super::ttl::{bucket_index, bucket_width, expiry_delta, TtlBucket, TTL_BUCKETS};
use crate::stats::StoreStats;
use crate::Time;

/// Signal that an operation needs a free segment first.
pub(crate) struct NeedRoom;

/// Space reserved in a segment for one item.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reserved {
    pub seg: u32,
    pub off: u32,
    pub info: u8,
    pub delta: u16,
}

/// A piece of an item being written.
#[derive(Clone, Copy)]
pub(crate) enum Part<'p> {
    /// Bytes from outside the store.
    Ext(&'p [u8]),
    /// Bytes already in segment data: (absolute position, length).
    Int(usize, usize),
    /// `n` copies of a byte.
    Fill(u8, usize),
}

impl Part<'_> {
    pub fn len(&self) -> usize {
        match *self {
            Part::Ext(s) => s.len(),
            Part::Int(_, n) | Part::Fill(_, n) => n,
        }
    }
}

/// An item to write into reserved space.
#[derive(Clone, Copy)]
pub(crate) struct NewItem<'p, 'v> {
    pub klen: usize,
    pub key: Part<'p>,
    pub value: &'v [Part<'p>],
    pub flags: u32,
    /// Written explicitly when the reservation's info has INFO_CAS.
    pub cas: u64,
    pub atime: u16,
}

/// The segments of one shard over its regions of the arena.
pub(crate) struct Segments<'a> {
    /// Segment data, `headers.len()` segments of `1 << shift` bytes.
    pub data: &'a mut [u8],
    pub headers: &'a mut [SegHeader],
    pub ttl: &'a mut [TtlBucket],
    pub shift: u32,
    /// Head of the free list (NONE = empty).
    pub free_head: u32,
    /// Segments at and above this id have never been written.
    pub fresh: u32,
    /// The merge destination kept aside (NONE without merge eviction or
    /// while a merge uses it).
    pub reserve: u32,
    /// Whether freed segments refill `reserve` first (merge eviction).
    pub keeps_reserve: bool,
    /// Most segments that may be in use at once (the rest stay free).
    pub limit: u32,
    /// No segment expires before this (a lower bound; 0 = unknown).
    pub earliest_expiry: Time,
}

impl<'a> Segments<'a> {
    /// Segments over zeroed headers (all FREE and never used): writes only
    /// the TTL buckets. With `keeps_reserve`, segment 0 becomes the merge
    /// reserve.
    pub fn new_zeroed(
        data: &'a mut [u8],
        headers: &'a mut [SegHeader],
        ttl: &'a mut [TtlBucket],
        shift: u32,
        keeps_reserve: bool,
        st: &StoreStats,
    ) -> Self {
        for t in ttl.iter_mut() {
            *t = TtlBucket {
                head: NONE,
                tail: NONE,
                segments: 0,
            };
        }
        let n = headers.len() as u32;
        st.segments.set(n as u64);
        st.segments_free.set(n as u64);
        let (reserve, fresh) = if keeps_reserve { (0, 1) } else { (NONE, 0) };
        Segments {
            data,
            headers,
            ttl,
            shift,
            free_head: NONE,
            fresh,
            reserve,
            keeps_reserve,
            limit: n,
            earliest_expiry: Time::MAX,
        }
    }

    /// Segment count.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    #[inline(always)]
    pub fn seg_bytes(&self) -> usize {
        1 << self.shift
    }

    /// Absolute position of byte `off` of segment `seg` in `data`.
    #[inline(always)]
    pub fn pos(&self, seg: u32, off: u32) -> usize {
        ((seg as usize) << self.shift) + off as usize
    }

    /// Address of the item `ptr` points at (for prefetching).
    #[inline(always)]
    pub fn addr_of(&self, ptr: ItemPtr) -> usize {
        self.data.as_ptr() as usize + self.pos(ptr.seg(), ptr.offset())
    }

    /// The header of the item at (`seg`, `off`).
    #[inline(always)]
    pub fn view(&self, seg: u32, off: u32) -> ItemView {
        ItemView::read(self.data, self.pos(seg, off))
    }

    /// Whether the item at absolute position `at` has key `key`.
    #[inline(always)]
    pub fn key_matches(&self, at: usize, key: &[u8]) -> bool {
        let d = &*self.data;
        if d.get(at).map(|&k| k as usize) != Some(key.len()) {
            return false;
        }
        let info = d.get(at + 4).copied().unwrap_or(0);
        let k = at + HEADER_BYTES + item::optional_bytes(info);
        d.get(k..k + key.len())
            .is_some_and(|s| item::bytes_eq(s, key))
    }

    /// The key hash of the item `view`.
    pub fn key_hash(&self, view: &ItemView, seed: u64) -> u64 {
        let k = view.key_at();
        super::hash::hash(seed, self.data.get(k..k + view.klen).unwrap_or(&[]))
    }

    /// The item `ptr` points at: its segment, header, absolute expiry and
    /// cas (explicit, or the segment's base plus the item's offset).
    #[inline(always)]
    pub fn read(&self, ptr: ItemPtr) -> (u32, ItemView, Time, u64) {
        let seg = ptr.seg();
        let off = ptr.offset();
        let view = self.view(seg, off);
        let h = &self.headers[seg as usize];
        let e = h.item_expiry(view.exp_delta);
        let cas = match view.cas {
            Some(c) => c,
            None => h.cas_base + off as u64,
        };
        (seg, view, e, cas)
    }

    /// Mark the item `view` of segment `seg` dead and account for it.
    pub fn mark_dead(&mut self, st: &StoreStats, seg: u32, view: &ItemView) {
        item::set_info(self.data, view.at, INFO_DELETED, 0);
        let size = view.size() as u32;
        let h = &mut self.headers[seg as usize];
        h.live_bytes = h.live_bytes.saturating_sub(size);
        h.live_items = h.live_items.saturating_sub(1);
        st.items.sub_owned(1);
        st.item_bytes.sub_owned(size as u64);
    }

    /// Record a fetch of the item at `at` (whose header `view` was read
    /// before any move): the fetched bit and the access time. Only dirties
    /// the item's cache line when something changes.
    #[inline(always)]
    pub fn mark_fetched(&mut self, at: usize, view: &ItemView, now: Time) {
        if view.info & INFO_FETCHED == 0 {
            item::set_info(self.data, at, INFO_FETCHED, 0);
        }
        if view.atime != now as u16 {
            item::set_atime(self.data, at, now);
        }
    }

    // ----- the free list and the frontier ----------------------------------

    /// A free segment: from the free list, else the frontier. `None` when
    /// there is none or `limit` segments are in use.
    pub fn pop_free(&mut self, cx: &Ctx) -> Option<u32> {
        if cx.st.segments_used.get() >= self.limit as u64 {
            return None;
        }
        let s = if self.free_head != NONE {
            let s = self.free_head;
            self.free_head = self.headers[s as usize].next;
            s
        } else if (self.fresh as usize) < self.headers.len() {
            self.fresh += 1;
            cx.frontier.store(self.fresh, Ordering::Relaxed);
            self.fresh - 1
        } else {
            return None;
        };
        cx.st.segments_free.sub_owned(1);
        cx.st.segments_used.add_owned(1);
        Some(s)
    }

    /// Return segment `s` (already out of its TTL chain) to the free list,
    /// or make it the merge reserve if that is missing.
    pub fn free(&mut self, st: &StoreStats, s: u32) {
        let h = &mut self.headers[s as usize];
        st.segment_bytes_written.sub_owned(h.write_offset as u64);
        *h = SegHeader {
            next: NONE,
            prev: NONE,
            state: FREE,
            ..Default::default()
        };
        st.segments_free.add_owned(1);
        st.segments_used.sub_owned(1);
        if self.keeps_reserve && self.reserve == NONE {
            self.reserve = s;
        } else {
            self.headers[s as usize].next = self.free_head;
            self.free_head = s;
        }
    }

    /// Give segment `s` a fresh header: a new cas base (its generation),
    /// TTL bucket `b`, segment expiry `expire_at`, `state`.
    pub fn open(&mut self, cx: &Ctx, s: u32, b: usize, expire_at: Time, state: u8) {
        let cas_base = cx.cas.fetch_add(self.seg_bytes() as u64, Ordering::Relaxed);
        self.headers[s as usize] = SegHeader {
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

    // ----- TTL chains -------------------------------------------------------

    pub fn link_tail(&mut self, b: usize, s: u32) {
        let tail = self.ttl[b].tail;
        self.headers[s as usize].prev = tail;
        self.headers[s as usize].next = NONE;
        if tail == NONE {
            self.ttl[b].head = s;
        } else {
            self.headers[tail as usize].next = s;
        }
        self.ttl[b].tail = s;
        self.ttl[b].segments += 1;
    }

    pub fn link_before(&mut self, b: usize, before: u32, s: u32) {
        let prev = self.headers[before as usize].prev;
        self.headers[s as usize].prev = prev;
        self.headers[s as usize].next = before;
        self.headers[before as usize].prev = s;
        if prev == NONE {
            self.ttl[b].head = s;
        } else {
            self.headers[prev as usize].next = s;
        }
        self.ttl[b].segments += 1;
    }

    pub fn unlink(&mut self, s: u32) {
        let h = self.headers[s as usize];
        let b = h.ttl_bucket as usize;
        if h.prev == NONE {
            self.ttl[b].head = h.next;
        } else {
            self.headers[h.prev as usize].next = h.next;
        }
        if h.next == NONE {
            self.ttl[b].tail = h.prev;
        } else {
            self.headers[h.next as usize].prev = h.prev;
        }
        self.ttl[b].segments = self.ttl[b].segments.saturating_sub(1);
    }

    /// Seal every open segment (flush: later writes get cas >= flush cas).
    pub fn seal_open(&mut self) {
        for b in 0..TTL_BUCKETS {
            let t = self.ttl[b].tail;
            if t != NONE && self.headers[t as usize].state == OPEN {
                self.headers[t as usize].state = SEALED;
            }
        }
    }

    // ----- appending items --------------------------------------------------

    /// Reserve space for an item in the open segment of its TTL bucket,
    /// opening a new segment from the free list if needed. Never evicts.
    pub fn reserve(
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
            let h = self.headers[tail as usize];
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
        if tail != NONE && self.headers[tail as usize].state == OPEN {
            self.headers[tail as usize].state = SEALED;
        }
        let seg_expire = if expire_at == 0 {
            0
        } else {
            expire_at.saturating_add(bucket_width(b))
        };
        self.open(cx, s, b, seg_expire, OPEN);
        self.link_tail(b, s);
        let d = expiry_delta(seg_expire, expire_at).unwrap_or(0);
        Ok(Reserved {
            seg: s,
            off: 0,
            info: if d != 0 { info | INFO_EXPIRY } else { info },
            delta: d,
        })
    }

    /// Write item `it` into reserved space `r`; returns its cas.
    pub fn write(&mut self, st: &StoreStats, r: &Reserved, it: &NewItem<'_, '_>) -> u64 {
        let vlen: usize = it.value.iter().map(|p| p.len()).sum();
        let at = self.pos(r.seg, r.off);
        let header = Header {
            klen: it.klen,
            vlen,
            info: r.info,
            flags: it.flags,
            exp_delta: r.delta,
            cas: it.cas,
            atime: it.atime,
        };
        let mut p = item::write_header(self.data, at, &header);
        for part in core::iter::once(&it.key).chain(it.value.iter()) {
            let n = part.len();
            match *part {
                Part::Ext(s) => self.data[p..p + n].copy_from_slice(s),
                Part::Int(src, _) => self.data.copy_within(src..src + n, p),
                Part::Fill(c, _) => self.data[p..p + n].fill(c),
            }
            p += n;
        }
        let size = (p - at) as u32;
        let h = &mut self.headers[r.seg as usize];
        h.write_offset += size;
        h.live_bytes += size;
        h.live_items += 1;
        st.items.add_owned(1);
        st.item_bytes.add_owned(size as u64);
        st.segment_bytes_written.add_owned(size as u64);
        if r.info & INFO_CAS != 0 {
            it.cas
        } else {
            h.cas_base + r.off as u64
        }
    }

    // ----- reading ----------------------------------------------------------

    /// The client's view of the live item `view` in segment `seg` of shard
    /// `shard`, as of before this access (the caller sets the meta state
    /// bits).
    #[inline(always)]
    pub fn item_ref(
        &self,
        shard: u16,
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
            key_binary: view.info & INFO_KEY_BINARY != 0,
            location: ValueLocation {
                shard,
                segment: seg,
                value_offset: (v - self.pos(seg, 0)) as u32,
                value_len: view.vlen as u32,
                generation: self.headers[seg as usize].cas_base,
            },
        }
    }

    /// Copy bytes `offset..` of the value at `loc` into `dst`.
    pub fn read_value(
        &self,
        loc: &ValueLocation,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<usize, StoreError> {
        let h = self
            .headers
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
}
