//! Reclaiming memory in a shard: whole segments that expired or were
//! flushed, then eviction by policy (FIFO, random, closest to expiry) or
//! Segcache's merge eviction with compaction (see [`Eviction`]).

use super::config::Eviction;
use super::ctx::Ctx;
use super::hashtable::Slot;
use super::item::{item_bytes, ItemView, INFO_CAS, INFO_EXPIRY, INFO_FLAGS, INFO_STATE_MASK};
use super::layout::MAX_MERGE_RUN;
use super::segment::{FREE, NONE, OPEN, SEALED};
use super::segments::{NewItem, Part, Reserved};
use super::shard::Shard;
use super::ttl::{expiry_delta, TTL_BUCKETS};
use crate::Time;

/// Bytes an item may grow when moved (explicit cas + expiry delta).
const MOVE_GROWTH_BYTES: usize = 10;
/// How many segments (over all TTL chains, oldest first) merge eviction
/// tries as the start of a run it can compact (free without evicting)
/// before it evicts at the head of a chain.
const COMPACT_SCAN_SEGMENTS: usize = 256;

/// Why a whole segment is being cleared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Evicted,
    Expired,
    Flushed,
}

/// A live item of a segment being merged, with where it is linked.
struct Mover {
    view: ItemView,
    seg: u32,
    e: Time,
    cas: u64,
    at: Slot,
}

impl Shard<'_> {
    /// Free one or more segments: reclaim a dead segment if any, else evict
    /// by policy. Returns false if nothing could be freed. The caller holds
    /// the shard lock: the time this takes is recorded as one eviction
    /// pause ([`Ctx::pause_end`]).
    pub(crate) fn make_room(&mut self, cx: &Ctx) -> bool {
        let t0 = cx.pause_start();
        let freed = self.make_room_untimed(cx);
        cx.pause_end(t0);
        freed
    }

    fn make_room_untimed(&mut self, cx: &Ctx) -> bool {
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

    /// Let at most `limit` segments be in use: lower, reclaim and evict
    /// until the shard is within it (bounded: at most one pass per segment);
    /// higher, the segments are free for writes again.
    pub fn set_segment_limit(&mut self, cx: &Ctx, limit: u32) {
        self.segs.limit = limit.min(self.segs.len() as u32);
        for _ in 0..self.segs.len() {
            if cx.st.segments_used.get() <= self.segs.limit as u64 || !self.make_room(cx) {
                break;
            }
        }
    }

    /// Reclaim up to `max` whole segments at the heads of TTL chains that
    /// are expired or entirely flushed.
    pub fn reclaim_dead(&mut self, cx: &Ctx, max: usize) -> usize {
        if max == 0 || (cx.now < self.segs.earliest_expiry && cx.flush_cas == self.flush_done) {
            return 0;
        }
        let sb = self.segs.seg_bytes() as u64;
        let mut n = 0;
        let mut earliest = Time::MAX;
        for b in 0..TTL_BUCKETS {
            loop {
                let s = self.segs.ttl[b].head;
                if s == NONE {
                    break;
                }
                let h = self.segs.headers[s as usize];
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
        self.segs.earliest_expiry = earliest;
        self.flush_done = cx.flush_cas;
        n
    }

    /// Unlink every live item of segment `s`, then free it.
    fn clear_segment(&mut self, cx: &Ctx, s: u32, cause: Cause) {
        let end = self.segs.headers[s as usize].write_offset;
        let mut off = 0u32;
        while off < end {
            let view = self.segs.view(s, off);
            let size = view.size() as u32;
            if !view.deleted() {
                let hash = self.segs.key_hash(&view, cx.seed);
                if let Some(at) = self.table.find_at(hash, s, off) {
                    self.table.remove(cx.st, &at);
                }
                self.segs.mark_dead(cx.st, s, &view);
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
        self.segs.unlink(s);
        self.segs.free(cx.st, s);
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
            let h = &self.segs.headers[s];
            if h.state == FREE || s as u32 == self.segs.reserve {
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

    /// Up to `want` consecutive sealed segments of chain `b` from `start`.
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
            let h = &self.segs.headers[s as usize];
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
        let h = &self.segs.headers[s as usize];
        h.live_bytes as usize + h.live_items as usize * MOVE_GROWTH_BYTES
    }

    /// The cheapest run to compact: of the runs of `min_run` consecutive
    /// sealed segments starting at one of the first
    /// [`COMPACT_SCAN_SEGMENTS`] segments of the TTL chains (oldest first),
    /// the one with the fewest live bytes, if they fit in one segment.
    /// Compacting it frees `min_run - 1` segments without evicting anything,
    /// moving as little as possible while the shard is locked.
    fn find_compactable(&self, min_run: usize) -> Option<(usize, u32)> {
        let sb = self.segs.seg_bytes();
        let mut best: Option<(usize, usize, u32)> = None;
        let mut scanned = 0;
        let mut run = [NONE; MAX_MERGE_RUN];
        'chains: for b in 0..TTL_BUCKETS {
            if self.segs.ttl[b].segments < min_run as u32 {
                continue;
            }
            let mut start = self.segs.ttl[b].head;
            while start != NONE {
                if scanned == COMPACT_SCAN_SEGMENTS {
                    break 'chains;
                }
                let k = self.collect_run(b, start, min_run, &mut run);
                let need: usize = run[..k].iter().map(|&s| self.move_need(s)).sum();
                if k == min_run && need <= sb && best.is_none_or(|(n, _, _)| need < n) {
                    best = Some((need, b, start));
                }
                start = self.segs.headers[start as usize].next;
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
        if self.segs.reserve == NONE {
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
            if self.segs.ttl[b].segments < 2 {
                continue;
            }
            // Always start at the oldest segment: following a cursor
            // through the chain ends up chasing (and evicting) young
            // segments near the tail.
            let len = self.collect_run(b, self.segs.ttl[b].head, want, &mut run);
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
        let sb = self.segs.seg_bytes();
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
        let d = self.segs.reserve;
        self.segs.reserve = NONE;
        let expire_at = run
            .iter()
            .map(|&s| self.segs.headers[s as usize].expire_at)
            .max()
            .unwrap_or(0);
        let create_at = self.segs.headers[run[0] as usize].create_at;
        self.segs.open(cx, d, b, expire_at, SEALED);
        self.segs.headers[d as usize].create_at = create_at;
        cx.st.segments_used.add_owned(1);
        cx.st.segments_free.sub_owned(1);
        self.segs.link_before(b, run[0], d);
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
                let room = sb - self.segs.headers[d as usize].write_offset as usize;
                if i >= n && room < sb / 4 {
                    break;
                }
                let budget = if i < n { room / (n - i) } else { room };
                self.merge_segment(cx, s, d, budget, false);
                used = i + 1;
            }
        }
        for &s in &run[..used] {
            self.segs.unlink(s);
            self.segs.free(cx.st, s);
        }
        let mut freed = used as u64 - 1;
        if self.segs.headers[d as usize].write_offset == 0 {
            self.segs.unlink(d);
            self.segs.free(cx.st, d);
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
        let end = self.segs.headers[s as usize].write_offset;
        let live_total = (self.segs.headers[s as usize].live_bytes as usize).max(1);
        let mut cutoff: u8 = if keep_all { 0 } else { 1 };
        let mut seen = 0usize;
        let mut kept = 0usize;
        let mut off = 0u32;
        while off < end {
            let view = self.segs.view(s, off);
            let size = view.size() as u32;
            if !view.deleted() {
                let hash = self.segs.key_hash(&view, cx.seed);
                let Some(at) = self.table.find_at(hash, s, off) else {
                    self.segs.mark_dead(cx.st, s, &view);
                    off += size;
                    continue;
                };
                let h = self.segs.headers[s as usize];
                let e = h.item_expiry(view.exp_delta);
                let cas = view.cas.unwrap_or(h.cas_base + off as u64);
                if e != 0 && e <= cx.now {
                    self.table.remove(cx.st, &at);
                    self.segs.mark_dead(cx.st, s, &view);
                    cx.st.expired_lazy.incr_owned();
                } else if cas < cx.flush_cas {
                    self.table.remove(cx.st, &at);
                    self.segs.mark_dead(cx.st, s, &view);
                    cx.st.flushed_items.incr_owned();
                } else {
                    let mut moved = false;
                    if at.ptr.freq() >= cutoff {
                        let m = Mover {
                            view,
                            seg: s,
                            e,
                            cas,
                            at,
                        };
                        if let Some(new_size) = self.move_item(cx, &m, d, budget - kept.min(budget))
                        {
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
                        self.table.remove(cx.st, &at);
                        self.segs.mark_dead(cx.st, s, &view);
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
    /// and its expiry is representable there; repoint its slot (frequency
    /// halved).
    fn move_item(&mut self, cx: &Ctx, m: &Mover, d: u32, room: usize) -> Option<usize> {
        let view = &m.view;
        let dh = self.segs.headers[d as usize];
        let delta = expiry_delta(dh.expire_at, m.e)?;
        let info = INFO_CAS
            | (view.info & (INFO_FLAGS | INFO_STATE_MASK))
            | if delta != 0 { INFO_EXPIRY } else { 0 };
        let size = item_bytes(info, view.klen, view.vlen);
        if size > room || dh.write_offset as usize + size > self.segs.seg_bytes() {
            return None;
        }
        let r = Reserved {
            seg: d,
            off: dh.write_offset,
            info,
            delta,
        };
        let item = NewItem {
            klen: view.klen,
            key: Part::Int(view.key_at(), view.klen),
            value: &[Part::Int(view.value_at(), view.vlen)],
            flags: view.flags,
            cas: m.cas,
            atime: view.atime,
        };
        self.segs.write(cx.st, &r, &item);
        let p = m.at.ptr;
        self.table.set(
            m.at.b,
            m.at.s,
            p.with_location(d, r.off).with_freq(p.freq() / 2),
        );
        self.segs.mark_dead(cx.st, m.seg, view);
        Some(size)
    }
}
