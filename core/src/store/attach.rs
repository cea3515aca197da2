//! Reattaching a shard to regions a clean shutdown left behind (warm
//! restart): one pass over the metadata checks its checksum and that its
//! links and counts add up, so a consistent-looking but wrong state is
//! refused instead of trusted.

use super::checksum::xxh64;
use super::config::Eviction;
use super::hashtable::{Bucket, HashTable, NEXT_MASK};
use super::layout::{Layout, Regions};
use super::persist::ShardState;
use super::segment::{SegHeader, FREE, NONE, OPEN, SEALED};
use super::segments::Segments;
use super::shard::{Shard, ShardParams};
use super::ttl::{TtlBucket, TTL_BUCKETS};
use crate::arena::pod_bytes;
use crate::stats::StoreStats;

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

/// Check the segment headers, the free list, the frontier and the TTL
/// chains of a saved shard. Indices are range-checked before use: never
/// panics.
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
    if saved.fresh as usize > n {
        return Err("segment frontier out of range");
    }
    let used_before = |s: u32| s == NONE || s < saved.fresh;
    if !used_before(saved.free_head) || !used_before(saved.reserve) {
        return Err("free list head out of range");
    }
    if !merge && saved.reserve != NONE {
        return Err("merge reserve without merge eviction");
    }
    // Free list: only FREE segments below the frontier, no cycle.
    let mut free = 0usize;
    let mut s = saved.free_head;
    while s != NONE {
        if free >= n || segs[s as usize].state != FREE || s == saved.reserve {
            return Err("free segment list");
        }
        free += 1;
        s = segs[s as usize].next;
        if !used_before(s) {
            return Err("free segment list");
        }
    }
    if saved.reserve != NONE {
        if segs[saved.reserve as usize].state != FREE {
            return Err("merge reserve segment is not free");
        }
        free += 1;
    }
    if segs[saved.fresh as usize..].iter().any(|h| h.state != FREE) {
        return Err("segment beyond the frontier in use");
    }
    free += n - saved.fresh as usize;
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

impl<'a> Shard<'a> {
    /// Reattach to a shard's regions as a clean shutdown left them
    /// ([`Shard::saved_state`]): nothing is initialised or written. One
    /// pass over the metadata computes its checksum (compared with
    /// `saved.checksum` first) and validates the links and counts; the
    /// gauges in `st` are recomputed.
    pub fn attach(
        index: u16,
        r: Regions<'a>,
        p: &ShardParams,
        saved: &ShardState,
        st: &StoreStats,
    ) -> Result<Self, AttachFault> {
        let Regions {
            buckets,
            segs,
            ttl,
            data,
        } = r;
        let layout = &p.layout;
        let nmain = layout.main_buckets;
        let total = buckets.len();
        let ovf_fresh = saved.ovf_fresh as usize;
        let mut h = xxh64(pod_bytes(segs), 0);
        h = xxh64(pod_bytes(ttl), h);
        // Segments, free list, TTL chains (small); judged after the checksum.
        let seg_check = check_segments(segs, ttl, layout, p.eviction, saved);
        // Hash table: checksum and check each piece while it is in cache.
        let n = segs.len();
        let (mut slots, mut bad) = (0u64, None);
        let mut index_of = 0usize;
        for chunk in buckets.chunks(CHECKSUM_CHUNK_BUCKETS) {
            h = xxh64(pod_bytes(chunk), h);
            for b in chunk {
                let next = b.next();
                let fresh = index_of >= ovf_fresh.max(nmain);
                index_of += 1;
                if next != 0 && (next < nmain || next >= ovf_fresh.min(total)) {
                    bad = bad.or(Some("hash chain link"));
                }
                for &p in &b.slots {
                    if p.is_empty() {
                        continue;
                    }
                    let seg = p.seg() as usize;
                    let ok = !fresh
                        && seg < n
                        && segs[seg].state != FREE
                        && p.offset() < segs[seg].write_offset;
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
        if ovf_fresh < nmain || ovf_fresh > total {
            return Err(bad_pool);
        }
        let ovf_free = saved.ovf_free as usize;
        let mut pool = total - ovf_fresh;
        let mut b = ovf_free;
        while b != 0 {
            if pool >= ovf_total || b < nmain || b >= ovf_fresh {
                return Err(bad_pool);
            }
            if !buckets[b].is_empty() {
                return Err(AttachFault::Inconsistent("overflow free list holds items"));
            }
            pool += 1;
            b = (buckets[b].info & NEXT_MASK) as usize;
        }
        st.segments.set(n as u64);
        st.segments_free.set(c.free as u64);
        st.segments_used.set(c.used as u64);
        st.segment_bytes_written.set(c.written);
        st.items.set(c.items);
        st.item_bytes.set(c.bytes);
        st.hash_buckets.set(nmain as u64);
        st.hash_slots_used.set(slots);
        st.overflow_buckets.set(ovf_total as u64);
        st.overflow_buckets_used.set((ovf_total - pool) as u64);
        let merge = matches!(p.eviction, Eviction::Merge { .. });
        Ok(Self {
            table: HashTable {
                buckets,
                nmain,
                ovf_free,
                ovf_fresh,
            },
            segs: Segments {
                data,
                headers: segs,
                ttl,
                shift: layout.seg_shift,
                free_head: saved.free_head,
                fresh: saved.fresh,
                reserve: saved.reserve,
                keeps_reserve: merge,
                limit: n as u32,
                // Unknown until the next scan: make the first expire() look.
                earliest_expiry: 0,
            },
            index,
            max_item_bytes: p.max_item_bytes,
            eviction: p.eviction,
            rng: saved.rng | 1,
            merge_bucket: (saved.merge_bucket as usize) % TTL_BUCKETS,
            flush_done: 0,
            pass: None,
            hold_work: 0,
            hold_limit: super::pass::HOLD_WORK,
            yielded: false,
            max_hold_work: 0,
        })
    }

    /// XXH64 over the hash table, segment headers and TTL buckets (not
    /// the segment data).
    pub fn metadata_checksum(&self) -> u64 {
        metadata_checksum(self.table.buckets, self.segs.headers, self.segs.ttl)
    }
}
