//! The hash table: buckets, their overflow chains and the overflow pool.
//!
//! A bucket is one 64-byte cache line: an info word and 7 item pointers
//! ([`ItemPtr`], empty = 0). Main buckets are indexed by the key hash; when
//! all 7 slots of a chain are taken, an overflow bucket from the shard's
//! pool is linked behind it. If the pool is empty, the entry with the
//! lowest frequency in the chain is evicted.
//!
//! ```text
//! Bucket info (word 0):
//! ┌──────────────────────────────────┬──────────────────────────────────────┐
//! │            unused (32)           │  NEXT: overflow bucket index (32)    │
//! └──────────────────────────────────┴──────────────────────────────────────┘
//!  63                              32 31                                   0
//! ```
//!
//! NEXT is the absolute index of the next bucket of the chain in the
//! shard's bucket array (0 = end; index 0 is always a main bucket, so it is
//! never an overflow bucket). The pool is a list of released overflow
//! buckets (linked through NEXT) plus a frontier: overflow buckets at and
//! above it have never been used, so a table built on zeroed memory writes
//! nothing until a chain first overflows.

use super::ptr::{tag_of, ItemPtr};
use crate::arena::Pod;
use crate::stats::StoreStats;

/// Bucket info: overflow link mask.
pub const NEXT_MASK: u64 = 0xFFFF_FFFF;
/// Item slots per bucket.
pub const SLOTS: usize = 7;

/// One cache-line hash bucket.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Bucket {
    /// NEXT (see the module docs).
    pub info: u64,
    /// Item pointers.
    pub slots: [ItemPtr; SLOTS],
}

// SAFETY: repr(C), a u64 and seven repr(transparent) u64 with align 64:
// 64 bytes, no padding, every bit pattern valid.
unsafe impl Pod for Bucket {}

impl Bucket {
    /// Next bucket of the chain (0 = none).
    #[inline(always)]
    pub fn next(&self) -> usize {
        (self.info & NEXT_MASK) as usize
    }
    /// Set the next bucket of the chain.
    #[inline(always)]
    pub fn set_next(&mut self, next: usize) {
        self.info = (self.info & !NEXT_MASK) | (next as u64 & NEXT_MASK);
    }
    /// Whether no slot links an item.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|p| p.is_empty())
    }
}

/// "No bucket" for chain predecessors.
pub const NO_BUCKET: usize = usize::MAX;

/// Where a pointer sits: slot `s` of bucket `b`, whose predecessor in the
/// chain is `prev` ([`NO_BUCKET`] for a home bucket).
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// The bucket before `b` in its chain.
    pub prev: usize,
    /// The bucket.
    pub b: usize,
    /// The slot in `b` (0..SLOTS).
    pub s: usize,
    /// The pointer found there.
    pub ptr: ItemPtr,
}

/// One shard's hash table over its region of the arena.
pub struct HashTable<'a> {
    /// Main buckets, then overflow buckets.
    pub buckets: &'a mut [Bucket],
    /// Main buckets (a power of two).
    pub nmain: usize,
    /// Head of the released overflow buckets (0 = none).
    pub ovf_free: usize,
    /// Overflow buckets at and above this index were never used.
    pub ovf_fresh: usize,
}

impl<'a> HashTable<'a> {
    /// A table over `buckets` whose bytes are all zero (every chain empty,
    /// the overflow pool all fresh). Writes nothing.
    pub fn new_zeroed(buckets: &'a mut [Bucket], nmain: usize, st: &StoreStats) -> Self {
        let total = buckets.len();
        st.hash_buckets.set(nmain as u64);
        st.overflow_buckets.set((total - nmain) as u64);
        Self {
            buckets,
            nmain,
            ovf_free: 0,
            ovf_fresh: nmain,
        }
    }

    /// The home bucket of `hash`.
    #[inline(always)]
    pub fn home(&self, hash: u64) -> usize {
        (hash as usize) & (self.nmain - 1)
    }

    /// The first pointer in the home bucket whose tag matches `hash`.
    #[inline]
    pub fn first_candidate(&self, hash: u64) -> Option<ItemPtr> {
        let tag = tag_of(hash);
        let bucket = self.buckets.get(self.home(hash))?;
        bucket.slots.iter().copied().find(|p| p.tag() == tag)
    }

    /// The slot of `hash`'s chain whose pointer's tag matches and for which
    /// `is_key` holds (it compares the key).
    #[inline(always)]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(ItemPtr) -> bool) -> Option<Slot> {
        let tag = tag_of(hash);
        let mut prev = NO_BUCKET;
        let mut b = self.home(hash);
        loop {
            let bucket = self.buckets.get(b)?;
            for (s, &ptr) in bucket.slots.iter().enumerate() {
                // A pointer's tag is never 0 and an empty slot's is: the
                // tag test alone skips empty slots.
                if ptr.tag() == tag && is_key(ptr) {
                    return Some(Slot { prev, b, s, ptr });
                }
            }
            let n = bucket.next();
            if n == 0 {
                return None;
            }
            prev = b;
            b = n;
        }
    }

    /// The slot of `hash`'s chain pointing at (`seg`, `off`).
    pub fn find_at(&self, hash: u64, seg: u32, off: u32) -> Option<Slot> {
        let mut prev = NO_BUCKET;
        let mut b = self.home(hash);
        loop {
            let bucket = self.buckets.get(b)?;
            for (s, &ptr) in bucket.slots.iter().enumerate() {
                if ptr.is_at(seg, off) {
                    return Some(Slot { prev, b, s, ptr });
                }
            }
            let n = bucket.next();
            if n == 0 {
                return None;
            }
            prev = b;
            b = n;
        }
    }

    /// Replace the pointer in slot `s` of bucket `b`.
    #[inline(always)]
    pub fn set(&mut self, b: usize, s: usize, ptr: ItemPtr) {
        self.buckets[b].slots[s] = ptr;
    }

    /// Clear a slot; an overflow bucket left empty goes back to the pool.
    pub fn remove(&mut self, st: &StoreStats, at: &Slot) {
        let (prev, b) = (at.prev, at.b);
        self.buckets[b].slots[at.s] = ItemPtr::EMPTY;
        st.hash_slots_used.sub_owned(1);
        if b >= self.nmain && prev != NO_BUCKET && self.buckets[b].is_empty() {
            let next = self.buckets[b].next();
            self.buckets[prev].set_next(next);
            self.buckets[b].info = self.ovf_free as u64;
            self.ovf_free = b;
            st.overflow_buckets_used.sub_owned(1);
        }
    }

    /// An empty overflow bucket from the pool (released ones first).
    fn take_overflow(&mut self) -> Option<usize> {
        let nb = if self.ovf_free != 0 {
            let nb = self.ovf_free;
            self.ovf_free = self.buckets[nb].next();
            nb
        } else if self.ovf_fresh < self.buckets.len() {
            self.ovf_fresh += 1;
            self.ovf_fresh - 1
        } else {
            return None;
        };
        self.buckets[nb] = Bucket::default();
        Some(nb)
    }

    /// Link `ptr` for a key that is not in the table. If the chain is full
    /// and the pool empty, the chain's least frequently used entry is
    /// replaced and returned (the caller marks its item dead).
    pub fn insert(&mut self, st: &StoreStats, hash: u64, ptr: ItemPtr) -> Option<ItemPtr> {
        let home = self.home(hash);
        let mut b = home;
        loop {
            if let Some(s) = self.buckets[b].slots.iter().position(|p| p.is_empty()) {
                self.buckets[b].slots[s] = ptr;
                st.hash_slots_used.add_owned(1);
                return None;
            }
            let n = self.buckets[b].next();
            if n == 0 {
                break;
            }
            b = n;
        }
        if let Some(nb) = self.take_overflow() {
            self.buckets[nb].slots[0] = ptr;
            self.buckets[b].set_next(nb);
            st.overflow_buckets_used.add_owned(1);
            st.hash_slots_used.add_owned(1);
            return None;
        }
        // Chain full and pool empty: evict the least frequently used entry.
        let mut victim = (home, 0usize, u16::MAX);
        let mut c = home;
        loop {
            for (s, p) in self.buckets[c].slots.iter().enumerate() {
                let f = p.freq() as u16;
                if f < victim.2 {
                    victim = (c, s, f);
                }
            }
            let n = self.buckets[c].next();
            if n == 0 {
                break;
            }
            c = n;
        }
        let (vb, vs, _) = victim;
        let old = self.buckets[vb].slots[vs];
        self.buckets[vb].slots[vs] = ptr;
        st.hash_full_evictions.incr_owned();
        Some(old)
    }

    /// Visit every linked pointer, chain by chain: `f(bucket, slot, ptr)`.
    /// Returns the number of overflow buckets in the chains.
    pub fn for_each_linked<E>(
        &self,
        mut f: impl FnMut(usize, usize, ItemPtr) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut ovf = 0;
        for home in 0..self.nmain {
            let mut c = home;
            loop {
                for (s, &p) in self.buckets[c].slots.iter().enumerate() {
                    if !p.is_empty() {
                        f(c, s, p)?;
                    }
                }
                let n = self.buckets[c].next();
                if n == 0 {
                    break;
                }
                ovf += 1;
                c = n;
            }
        }
        Ok(ovf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_a_cache_line_and_links() {
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
        assert_eq!(core::mem::align_of::<Bucket>(), 64);
        let mut b = Bucket::default();
        b.set_next(12345);
        assert_eq!(b.next(), 12345);
    }

    #[test]
    fn chains_grow_from_the_fresh_pool_and_give_buckets_back() {
        let st = StoreStats::new();
        let mut buckets = [Bucket::default(); 4];
        let mut t = HashTable::new_zeroed(&mut buckets, 2, &st);
        // Hash 0: home bucket 0, tag 1.
        for i in 0..SLOTS as u32 + 1 {
            assert_eq!(t.insert(&st, 0, ItemPtr::new(1, 0, 0, i)), None);
        }
        assert_eq!(t.ovf_fresh, 3);
        assert_eq!(t.buckets[0].next(), 2);
        let last = t.find(0, |p| p.offset() == SLOTS as u32).unwrap();
        assert_eq!((last.prev, last.b, last.s), (0, 2, 0));
        t.remove(&st, &last);
        assert_eq!((t.ovf_free, t.buckets[0].next()), (2, 0));
        assert_eq!(st.overflow_buckets_used.get(), 0);
        // The released bucket is reused before a fresh one.
        t.insert(&st, 0, ItemPtr::new(1, 0, 0, 99));
        assert_eq!((t.ovf_free, t.ovf_fresh, t.buckets[0].next()), (0, 3, 2));
        assert_eq!(t.find_at(0, 0, 99).map(|s| s.b), Some(2));
    }
}
