//! One shard of the store: its hash table and its segments, and what every
//! operation needs from both (find a live item, write a new version,
//! re-append one). A shard is only ever used under its lock; all methods
//! take `&mut self` and complete without blocking.
//!
//! The rest of the shard's methods live beside the part they work on:
//! `ops.rs` (the store operations), `evict.rs` (reclaiming memory:
//! expiry, eviction, merge and compaction), `attach.rs` (warm restart).

use super::api::AuditFailure;
use super::config::Eviction;
use super::ctx::Ctx;
use super::hashtable::{HashTable, Slot, SLOTS};
use super::item;
use super::item::{item_bytes, ItemView, INFO_CAS, INFO_EXPIRY, INFO_FLAGS, INFO_STATE_MASK};
use super::layout::Layout;
use super::layout::Regions;
use super::pass::{Pass, HOLD_WORK};
use super::persist::ShardState;
use super::ptr::{bump_freq, tag_of, ItemPtr};
use super::segment::FREE;
use super::segments::{NeedRoom, NewItem, Part, Segments};
use crate::arena::prefetch;
use crate::stats::StoreStats;
use crate::Time;

/// How many times an operation frees memory and retries before giving up.
pub(crate) const MAX_ROOM_ATTEMPTS: usize = 8;

/// A located, live item.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    /// Where its pointer sits.
    pub at: Slot,
    pub seg: u32,
    pub view: ItemView,
    /// Absolute expiry (0 = never).
    pub e: Time,
    pub cas: u64,
}

/// A new version of a key to append and link.
#[derive(Clone, Copy)]
pub(crate) struct Version<'p, 'v> {
    pub key: &'p [u8],
    pub value: &'v [Part<'p>],
    pub flags: u32,
    pub expire_at: Time,
    /// INFO state bits (fetched, stale, token sent).
    pub state: u8,
}

/// The settings every shard of a store shares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardParams {
    pub layout: Layout,
    pub max_item_bytes: usize,
    pub eviction: Eviction,
}

pub(crate) struct Shard<'a> {
    pub(crate) table: HashTable<'a>,
    pub(crate) segs: Segments<'a>,
    pub(crate) index: u16,
    pub(crate) max_item_bytes: usize,
    pub(crate) eviction: Eviction,
    pub(crate) rng: u64,
    /// Where merge eviction looks for a TTL bucket next.
    pub(crate) merge_bucket: usize,
    /// The flush cas up to which flushed segments have been reclaimed.
    pub(crate) flush_done: u64,
    /// The reclaim in progress, carried on across lock holds.
    pub(crate) pass: Option<Pass>,
    /// Eviction work done in the current lock hold, and how much it may do
    /// (see [`Shard::begin_hold`]).
    pub(crate) hold_work: u32,
    pub(crate) hold_limit: u32,
    /// An operation in this hold stopped to let the lock go.
    pub(crate) yielded: bool,
    /// The most eviction work one lock hold has done.
    pub(crate) max_hold_work: u32,
}

impl<'a> Shard<'a> {
    /// A new, empty shard over regions whose bytes are all zero (the hash
    /// table and segment headers are not written; the TTL buckets are).
    pub fn new_zeroed(
        index: u16,
        r: Regions<'a>,
        p: &ShardParams,
        seed: u64,
        st: &StoreStats,
    ) -> Self {
        let merge = matches!(p.eviction, Eviction::Merge { .. });
        Self {
            table: HashTable::new_zeroed(r.buckets, p.layout.main_buckets, st),
            segs: Segments::new_zeroed(r.data, r.segs, r.ttl, p.layout.seg_shift, merge, st),
            index,
            max_item_bytes: p.max_item_bytes,
            eviction: p.eviction,
            rng: seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            merge_bucket: 0,
            flush_done: 0,
            pass: None,
            hold_work: 0,
            hold_limit: HOLD_WORK,
            yielded: false,
            max_hold_work: 0,
        }
    }

    /// What [`Shard::attach`] needs besides the arena regions, with the
    /// checksum of those regions' metadata.
    pub fn saved_state(&self, items: u64) -> ShardState {
        ShardState {
            free_head: self.segs.free_head,
            reserve: self.segs.reserve,
            fresh: self.segs.fresh,
            merge_bucket: self.merge_bucket as u32,
            ovf_free: self.table.ovf_free as u32,
            ovf_fresh: self.table.ovf_fresh as u32,
            rng: self.rng,
            checksum: self.metadata_checksum(),
            items,
        }
    }

    #[inline]
    pub(crate) fn rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Start loading the first item in the home bucket whose tag matches
    /// `hash`: the cache line of its header and the next one (the rest of
    /// a small item: key and value). A hint: nothing changes.
    #[inline]
    pub fn prefetch_item(&self, hash: u64) {
        if let Some(p) = self.table.first_candidate(hash) {
            let addr = self.segs.addr_of(p);
            prefetch(addr);
            prefetch(addr + 64);
        }
    }

    /// Find the slot whose item has `key` (no liveness checks).
    #[inline(always)]
    pub(crate) fn find(&self, key: &[u8], hash: u64) -> Option<Slot> {
        let segs = &self.segs;
        self.table.find(hash, |p| {
            let at = segs.pos(p.seg(), p.offset());
            // The key's last byte (when the item has no optional fields)
            // may sit on the next cache line: ask for that line now rather
            // than after the header arrives.
            prefetch(segs.data.as_ptr() as usize + at + item::HEADER_BYTES + key.len() - 1);
            segs.key_matches(at, key)
        })
    }

    /// Find a live item; dead matches (expired, flushed) are removed.
    #[inline]
    pub(crate) fn lookup(&mut self, cx: &Ctx, key: &[u8], hash: u64) -> Option<Found> {
        let at = self.find(key, hash)?;
        let (seg, view, e, cas) = self.segs.read(at.ptr);
        let f = Found {
            at,
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
            cx.st.flushed_lazy.incr_owned();
            return None;
        }
        Some(f)
    }

    /// Unlink a found item and mark it dead.
    pub(crate) fn unlink_found(&mut self, cx: &Ctx, f: &Found) {
        self.table.remove(cx.st, &f.at);
        self.segs.mark_dead(cx.st, f.seg, &f.view);
    }

    /// Link `ptr` for a key not in the table; an entry displaced from a
    /// full chain is marked dead.
    fn insert(&mut self, cx: &Ctx, hash: u64, ptr: ItemPtr) {
        if let Some(old) = self.table.insert(cx.st, hash, ptr) {
            let view = self.segs.view(old.seg(), old.offset());
            self.segs.mark_dead(cx.st, old.seg(), &view);
        }
    }

    /// Append a new version of a key and link it (replacing `existing`).
    pub(crate) fn put_new(
        &mut self,
        cx: &Ctx,
        hash: u64,
        v: &Version<'_, '_>,
        existing: Option<&Found>,
    ) -> Result<u64, NeedRoom> {
        let vlen: usize = v.value.iter().map(|p| p.len()).sum();
        let info = v.state | if v.flags != 0 { INFO_FLAGS } else { 0 };
        let r = self
            .segs
            .reserve(cx, info, v.key.len(), vlen, v.expire_at)?;
        let item = NewItem {
            klen: v.key.len(),
            key: Part::Ext(v.key),
            value: v.value,
            flags: v.flags,
            cas: 0,
            atime: cx.now as u16,
        };
        let cas = self.segs.write(cx.st, &r, &item);
        let ptr = ItemPtr::new(tag_of(hash), 0, r.seg, r.off);
        match existing {
            Some(f) => {
                self.table.set(f.at.b, f.at.s, ptr);
                self.segs.mark_dead(cx.st, f.seg, &f.view);
            }
            None => self.insert(cx, hash, ptr),
        }
        Ok(cas)
    }

    /// Re-append an item with a new expiry, keeping its cas and state.
    pub(crate) fn relocate(
        &mut self,
        cx: &Ctx,
        f: &Found,
        expire_at: Time,
    ) -> Result<Found, NeedRoom> {
        let v = f.view;
        let info = INFO_CAS | (v.info & (INFO_FLAGS | INFO_STATE_MASK));
        let r = self.segs.reserve(cx, info, v.klen, v.vlen, expire_at)?;
        let item = NewItem {
            klen: v.klen,
            key: Part::Int(v.key_at(), v.klen),
            value: &[Part::Int(v.value_at(), v.vlen)],
            flags: v.flags,
            cas: f.cas,
            atime: v.atime,
        };
        self.segs.write(cx.st, &r, &item);
        let ptr = f.at.ptr.with_location(r.seg, r.off);
        self.table.set(f.at.b, f.at.s, ptr);
        self.segs.mark_dead(cx.st, f.seg, &v);
        let view = self.segs.view(r.seg, r.off);
        Ok(Found {
            at: Slot { ptr, ..f.at },
            seg: r.seg,
            view,
            e: self.segs.headers[r.seg as usize].item_expiry(view.exp_delta),
            cas: f.cas,
        })
    }

    /// A fetch of the item that `at` links: its fetched bit and access
    /// time, and its frequency counter.
    #[inline(always)]
    pub(crate) fn record_access(&mut self, at: &Slot, view: &ItemView, now: Time) {
        self.segs.mark_fetched(view.at, view, now);
        let r = self.rand();
        let freq = at.ptr.freq();
        let nf = bump_freq(freq, r);
        if nf != freq {
            self.table.set(at.b, at.s, at.ptr.with_freq(nf));
        }
    }

    /// Size check shared by all writes: the item must fit even after growing
    /// by an explicit cas and expiry delta (so any move fits a segment).
    pub(crate) fn too_large(&self, klen: usize, vlen: usize, flags: u32) -> bool {
        let info = INFO_CAS | INFO_EXPIRY | if flags != 0 { INFO_FLAGS } else { 0 };
        vlen > item::MAX_VALUE_BYTES || item_bytes(info, klen, vlen) > self.max_item_bytes
    }

    /// Consistency check used by tests: recount everything from scratch and
    /// compare with the incremental accounting.
    pub fn audit(&self, st: &StoreStats) -> Result<(), AuditFailure> {
        let (mut slots, mut items, mut bytes) = (0u64, 0u64, 0u64);
        let ovf = self.table.for_each_linked(|c, s, p| {
            slots += 1;
            let v = self.segs.view(p.seg(), p.offset());
            // Reported as 1..=SLOTS: the slot's word in the bucket.
            let slot = s + 1;
            debug_assert!(slot <= SLOTS);
            if v.deleted() {
                return Err(AuditFailure::DeletedItemLinked { bucket: c, slot });
            }
            if self.segs.headers[p.seg() as usize].state == FREE {
                return Err(AuditFailure::FreeSegmentLinked { bucket: c, slot });
            }
            items += 1;
            bytes += v.size() as u64;
            Ok(())
        })?;
        let mut live_items = 0u64;
        let mut live_bytes = 0u64;
        let mut used = 0u64;
        let mut written = 0u64;
        for h in self.segs.headers.iter() {
            if h.state != FREE {
                used += 1;
                live_items += h.live_items as u64;
                live_bytes += h.live_bytes as u64;
                written += h.write_offset as u64;
            }
        }
        let chained: u64 = self.segs.ttl.iter().map(|t| t.segments as u64).sum();
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
