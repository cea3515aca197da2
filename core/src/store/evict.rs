//! Reclaiming memory in a shard: whole segments that expired or were
//! flushed, then eviction by policy (FIFO, random, closest to expiry) or
//! Segcache's merge eviction with compaction (see [`Eviction`]).
//!
//! Every reclaim is a pass ([`Pass`]) whose state lives in the shard:
//! clearing one segment (expired, flushed or evicted), or merging or
//! compacting a run of segments into a destination. A pass does at most
//! [`HOLD_WORK`] units of work per hold of the shard lock, then stops; the
//! next caller that needs room (or [`Store::expire`](super::Store::expire))
//! carries it on after the lock has been let go and taken again, so a
//! request for the shard never waits behind more than one bounded step.
//! Between steps the segments of a pass are ordinary segments: an item not
//! visited yet is live where it was, a moved one lives in the destination,
//! and no other pass starts until this one has ended.

use super::config::Eviction;
use super::ctx::Ctx;
use super::hashtable::Slot;
use super::item::{item_bytes, ItemView, INFO_CAS, INFO_EXPIRY, INFO_FLAGS, INFO_STATE_MASK};
use super::layout::MAX_MERGE_RUN;
use super::pass::{Cause, Pass, PassKind, HOLD_WORK, SEGMENT_WORK};
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

/// What [`Shard::make_room`] achieved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Room {
    /// A segment went to the free list: retry the write.
    Freed,
    /// This hold's eviction work is spent: the operation returns without
    /// effect, and its caller lets the lock go, takes it again and retries
    /// (the pass resumes where it stopped).
    Yield,
    /// Nothing can be freed.
    Full,
}

/// What one call of [`Shard::step_pass`] did.
#[derive(Clone, Copy, Default)]
struct Stepped {
    /// A segment went to the free list (not to the merge reserve).
    to_free_list: bool,
    /// Expired or flushed segments cleared whole.
    dead_cleared: usize,
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
    /// Start a hold of the shard lock: eviction may do [`HOLD_WORK`] units
    /// of work in it (unlimited with `unbounded`).
    #[inline(always)]
    pub(crate) fn begin_hold(&mut self, unbounded: bool) {
        self.hold_work = 0;
        self.yielded = false;
        self.hold_limit = if unbounded { u32::MAX } else { HOLD_WORK };
    }

    /// Whether an operation in this hold stopped because the hold's
    /// eviction work was spent (its caller lets the lock go and retries).
    #[inline(always)]
    pub(crate) fn yielded(&self) -> bool {
        self.yielded
    }

    /// Whether this hold's eviction work is spent.
    #[inline]
    fn spent(&self) -> bool {
        self.hold_work >= self.hold_limit
    }

    fn note_hold(&mut self) {
        self.max_hold_work = self.max_hold_work.max(self.hold_work);
    }

    /// Free a segment: carry on the pass in progress, or start one
    /// (reclaim a dead segment if any, else evict by policy), within this
    /// hold's eviction work. The caller holds the shard lock: the time
    /// this takes is recorded as one eviction pause ([`Ctx::pause_end`]).
    /// On [`Room::Yield`] the operation returns without effect and its
    /// caller retries it after letting the lock go.
    pub(crate) fn make_room(&mut self, cx: &Ctx) -> Room {
        if self.spent() {
            self.yielded = true;
            return Room::Yield;
        }
        let t0 = cx.pause_start();
        let r = self.make_room_untimed(cx);
        cx.pause_end(t0);
        self.note_hold();
        if r == Room::Yield {
            self.yielded = true;
        }
        r
    }

    fn make_room_untimed(&mut self, cx: &Ctx) -> Room {
        loop {
            if self.pass.is_none() && !self.start_pass(cx) {
                return Room::Full;
            }
            if self.step_pass(cx).to_free_list {
                return Room::Freed;
            }
            if self.spent() {
                return Room::Yield;
            }
            // The pass ended with what it freed in the merge reserve:
            // another one.
        }
    }

    /// Let at most `limit` segments be in use: lower, reclaim and evict
    /// until the shard is within it (at most one pass per segment; after
    /// a yield the caller calls again once it has let the lock go);
    /// higher, the segments are free for writes again.
    pub fn set_segment_limit(&mut self, cx: &Ctx, limit: u32) {
        self.segs.limit = limit.min(self.segs.len() as u32);
        for _ in 0..self.segs.len() {
            if cx.st.segments_used.get() <= self.segs.limit as u64
                || self.make_room(cx) != Room::Freed
            {
                break;
            }
        }
    }

    /// Carry on the pass in progress, then reclaim whole segments at the
    /// heads of TTL chains that are expired or entirely flushed, up to
    /// `max` of them, within this hold's eviction work (after a yield the
    /// caller calls again once it has let the lock go). Returns how many
    /// dead segments were reclaimed.
    pub fn reclaim_dead(&mut self, cx: &Ctx, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            if self.spent() {
                self.yielded = true;
                break;
            }
            if self.pass.is_none() && !self.start_dead_pass(cx) {
                break;
            }
            n += self.step_pass(cx).dead_cleared;
        }
        self.note_hold();
        n
    }

    /// Choose the next pass: a dead segment, else eviction by policy.
    fn start_pass(&mut self, cx: &Ctx) -> bool {
        if self.start_dead_pass(cx) {
            return true;
        }
        match self.eviction {
            Eviction::None => false,
            Eviction::Merge {
                max,
                merge,
                compact,
            } => self.start_merge(cx, max, merge, compact),
            policy => self.start_evict_one(cx, policy),
        }
    }

    /// Start clearing the first segment at the head of a TTL chain that is
    /// expired or entirely flushed, if any.
    fn start_dead_pass(&mut self, cx: &Ctx) -> bool {
        if cx.now < self.segs.earliest_expiry && cx.flush_cas == self.flush_done {
            return false;
        }
        self.hold_work += SEGMENT_WORK;
        let sb = self.segs.seg_bytes() as u64;
        let mut earliest = Time::MAX;
        for b in 0..TTL_BUCKETS {
            let s = self.segs.ttl[b].head;
            if s == NONE {
                continue;
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
                continue;
            };
            self.begin_pass(PassKind::Clear(cause), &[s], 1, NONE);
            return true;
        }
        self.segs.earliest_expiry = earliest;
        self.flush_done = cx.flush_cas;
        false
    }

    /// Make `run` (`n` of it merged with a per-source budget) the pass in
    /// progress. An open source is sealed first, so that nothing is
    /// appended to it meanwhile.
    fn begin_pass(&mut self, kind: PassKind, run: &[u32], n: usize, d: u32) {
        let mut r = [NONE; MAX_MERGE_RUN];
        r[..run.len()].copy_from_slice(run);
        for &s in run {
            let h = &mut self.segs.headers[s as usize];
            if h.state == OPEN {
                h.state = SEALED;
            }
        }
        self.pass = Some(Pass {
            kind,
            run: r,
            len: run.len(),
            n,
            d,
            i: 0,
            off: 0,
            started: false,
            budget: 0,
            kept: 0,
            seen: 0,
            live_total: 0,
            cutoff: 0,
        });
        self.hold_work += SEGMENT_WORK;
    }

    /// Carry on the pass in progress until it ends, a segment goes to the
    /// free list, or this hold's work is spent.
    fn step_pass(&mut self, cx: &Ctx) -> Stepped {
        let mut out = Stepped::default();
        let Some(mut p) = self.pass.take() else {
            return out;
        };
        let sb = self.segs.seg_bytes();
        loop {
            if p.i == p.len || (p.kind == PassKind::Merge && !p.started && self.merge_full(&p)) {
                out.to_free_list |= self.finish_pass(cx, &p);
                return out;
            }
            let s = p.run[p.i];
            if !p.started {
                self.start_source(&mut p, s, sb);
            }
            let end = self.segs.headers[s as usize].write_offset;
            while p.off < end && !self.spent() {
                let view = self.segs.view(s, p.off);
                let size = view.size() as u32;
                self.hold_work += 1;
                if !view.deleted() {
                    match p.kind {
                        PassKind::Clear(cause) => self.clear_item(cx, s, p.off, &view, cause),
                        _ => self.merge_item(cx, &mut p, s, &view),
                    }
                }
                p.off += size;
            }
            if p.off < end {
                self.pass = Some(p);
                return out;
            }
            // Source `s` holds nothing live any more.
            match p.kind {
                PassKind::Clear(Cause::Expired) => {
                    cx.st.expired_segments.incr_owned();
                    out.dead_cleared += 1;
                }
                PassKind::Clear(Cause::Flushed) => {
                    cx.st.flushed_segments.incr_owned();
                    out.dead_cleared += 1;
                }
                _ => {}
            }
            out.to_free_list |= self.free_segment(cx, s);
            p.i += 1;
            p.off = 0;
            p.started = false;
            if out.to_free_list && p.i < p.len {
                self.pass = Some(p);
                return out;
            }
        }
    }

    /// Merge: whether the sources past the first `n` are left alone (the
    /// destination is 3/4 full or more).
    fn merge_full(&self, p: &Pass) -> bool {
        let sb = self.segs.seg_bytes();
        let room = sb - self.segs.headers[p.d as usize].write_offset as usize;
        p.i >= p.n && room < sb / 4
    }

    /// Set the per-source state for emptying source `s` of pass `p`.
    fn start_source(&self, p: &mut Pass, s: u32, sb: usize) {
        p.started = true;
        p.kept = 0;
        p.seen = 0;
        p.live_total = (self.segs.headers[s as usize].live_bytes as usize).max(1);
        match p.kind {
            PassKind::Clear(_) => {}
            PassKind::Compact => {
                p.budget = sb;
                p.cutoff = 0;
            }
            PassKind::Merge => {
                // The first `n` sources share the destination with a
                // per-source budget, so that the most frequently used items
                // of each are kept; the rest fill what is left.
                let room = sb - self.segs.headers[p.d as usize].write_offset as usize;
                p.budget = if p.i < p.n { room / (p.n - p.i) } else { room };
                p.cutoff = 1;
            }
        }
    }

    /// End pass `p` (its first `p.i` sources freed): free an empty
    /// destination and count the pass. Returns whether a segment went to
    /// the free list.
    fn finish_pass(&mut self, cx: &Ctx, p: &Pass) -> bool {
        if matches!(p.kind, PassKind::Clear(_)) {
            return false;
        }
        let mut to_free_list = false;
        let mut freed = (p.i as u64).saturating_sub(1);
        if self.segs.headers[p.d as usize].write_offset == 0 {
            to_free_list = self.free_segment(cx, p.d);
            freed += 1;
        }
        if p.kind == PassKind::Compact {
            cx.st.compactions.incr_owned();
        } else {
            cx.st.merge_passes.incr_owned();
            cx.st.merge_segments_freed.add_owned(freed);
        }
        to_free_list
    }

    /// Take segment `s` (nothing live in it) out of its chain and free it.
    /// Returns whether it went to the free list (not to the merge reserve).
    fn free_segment(&mut self, cx: &Ctx, s: u32) -> bool {
        let to_free_list = !(self.segs.keeps_reserve && self.segs.reserve == NONE);
        self.segs.unlink(s);
        self.segs.free(cx.st, s);
        self.hold_work += SEGMENT_WORK;
        to_free_list
    }

    /// Unlink the live item `view` of segment `s` being cleared.
    fn clear_item(&mut self, cx: &Ctx, s: u32, off: u32, view: &ItemView, cause: Cause) {
        let hash = self.segs.key_hash(view, cx.seed);
        if let Some(at) = self.table.find_at(hash, s, off) {
            self.table.remove(cx.st, &at);
        }
        self.segs.mark_dead(cx.st, s, view);
        match cause {
            Cause::Evicted => cx.st.evicted_items.incr_owned(),
            Cause::Expired => cx.st.expired_segment_items.incr_owned(),
            Cause::Flushed => cx.st.flushed_items.incr_owned(),
        }
    }

    /// The live item `view` of source `s` of a merge or compaction pass
    /// (at `p.off`): move it into the destination if it is worth keeping
    /// and fits the source's budget, else unlink it.
    fn merge_item(&mut self, cx: &Ctx, p: &mut Pass, s: u32, view: &ItemView) {
        let off = p.off;
        let size = view.size();
        let hash = self.segs.key_hash(view, cx.seed);
        let Some(at) = self.table.find_at(hash, s, off) else {
            self.segs.mark_dead(cx.st, s, view);
            return;
        };
        let h = self.segs.headers[s as usize];
        let e = h.item_expiry(view.exp_delta);
        let cas = view.cas.unwrap_or(h.cas_base + off as u64);
        if e != 0 && e <= cx.now {
            self.table.remove(cx.st, &at);
            self.segs.mark_dead(cx.st, s, view);
            cx.st.expired_passed.incr_owned();
            return;
        }
        if cas < cx.flush_cas {
            self.table.remove(cx.st, &at);
            self.segs.mark_dead(cx.st, s, view);
            cx.st.flushed_items.incr_owned();
            return;
        }
        let keep_all = p.kind == PassKind::Compact;
        let mut moved = false;
        if at.ptr.freq() >= p.cutoff {
            let m = Mover {
                view: *view,
                seg: s,
                e,
                cas,
                at,
            };
            let room = p.budget - p.kept.min(p.budget);
            if let Some(new_size) = self.move_item(cx, &m, p.d, room) {
                p.kept += new_size;
                self.hold_work += (new_size >> 10) as u32;
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
            self.segs.mark_dead(cx.st, s, view);
            cx.st.evicted_items.incr_owned();
        }
        p.seen += size;
        if !keep_all {
            // Steer the cutoff so kept bytes track the budget in
            // proportion to the live bytes seen so far.
            let target = p.budget.saturating_mul(p.seen) / p.live_total;
            if p.kept > target {
                p.cutoff = p.cutoff.saturating_add(1);
            } else if p.kept < target / 2 && p.cutoff > 1 {
                p.cutoff -= 1;
            }
        }
    }

    /// FIFO / random / closest-to-expiry: start clearing one whole
    /// segment, preferring sealed segments over open ones.
    fn start_evict_one(&mut self, cx: &Ctx, policy: Eviction) -> bool {
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
        self.begin_pass(PassKind::Clear(Cause::Evicted), &[best], 1, NONE);
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
    fn start_merge(&mut self, cx: &Ctx, max: usize, merge: usize, compact: usize) -> bool {
        if self.segs.reserve == NONE {
            return self.start_evict_one(cx, Eviction::Fifo);
        }
        self.hold_work += SEGMENT_WORK;
        let want = max.max(merge);
        let mut run = [NONE; MAX_MERGE_RUN];
        // (`compact` above `max` leaves compaction off, as begin_merge does.)
        if compact <= max.min(MAX_MERGE_RUN) {
            if let Some((b, start)) = self.find_compactable(compact) {
                let len = self.collect_run(b, start, compact, &mut run);
                self.begin_merge(cx, b, &run[..len], max, merge, compact);
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
            self.begin_merge(cx, b, &run[..len], max, merge, compact);
            return true;
        }
        self.start_evict_one(cx, Eviction::Fifo)
    }

    /// Start merging or compacting `run` (sealed segments of chain `b`)
    /// into the merge reserve, linked before the run's first segment.
    fn begin_merge(
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
        if compacting {
            self.begin_pass(PassKind::Compact, &run[..k], k, d);
        } else {
            self.begin_pass(PassKind::Merge, run, merge.min(run.len()), d);
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
