//! Hash buckets and item pointers.
//!
//! A bucket is one 64-byte cache line, `[u64; 8]`. Slot 0 holds bucket info;
//! slots 1..=7 hold item pointers (0 = empty). Main buckets are indexed by
//! the key hash; when all 7 slots of a chain are taken, an overflow bucket
//! from the shard's pool is linked behind it. If the pool is empty, the
//! entry with the lowest frequency in the chain is evicted.
//!
//! ```text
//! Item pointer (u64):
//! ┌──────────┬──────────┬──────────────────────┬──────────────────────────┐
//! │ TAG (12) │ FREQ (8) │  SEGMENT ID (20)     │   BYTE OFFSET (24)       │
//! └──────────┴──────────┴──────────────────────┴──────────────────────────┘
//!  63      52 51      44 43                  24 23                       0
//!
//! Bucket info (slot 0):
//! ┌──────────────────────────────────┬──────────────────────────────────────┐
//! │            unused (32)           │  NEXT: overflow bucket index (32)    │
//! └──────────────────────────────────┴──────────────────────────────────────┘
//!  63                              32 31                                   0
//! ```
//!
//! TAG is the top 12 bits of the key hash (0 is mapped to 1 so that a
//! pointer is never 0); only on a tag match is the key compared. FREQ is an
//! 8-bit approximate access counter used by merge eviction and by
//! hash-full eviction. SEGMENT ID is shard-local; OFFSET is the byte offset
//! of the item header in its segment (items are not aligned), which limits
//! segments to 16 MiB. NEXT is the absolute index of the next bucket of the
//! chain in the shard's bucket array (0 = end; index 0 is always a main
//! bucket, so it is never an overflow bucket).

/// Item pointer: tag mask (after shifting).
pub const TAG_MASK: u64 = 0xFFF;
/// Item pointer: tag shift.
pub const TAG_SHIFT: u32 = 52;
/// Item pointer: frequency mask (after shifting).
pub const FREQ_MASK: u64 = 0xFF;
/// Item pointer: frequency shift.
pub const FREQ_SHIFT: u32 = 44;
/// Item pointer: segment id mask (after shifting).
pub const SEG_MASK: u64 = 0xF_FFFF;
/// Item pointer: segment id shift.
pub const SEG_SHIFT: u32 = 24;
/// Item pointer: offset mask.
pub const OFFSET_MASK: u64 = 0xFF_FFFF;
/// Item pointer: bits that locate the item (segment and offset).
pub const LOCATION_MASK: u64 = (SEG_MASK << SEG_SHIFT) | OFFSET_MASK;
/// Bucket info: overflow link mask.
pub const NEXT_MASK: u64 = 0xFFFF_FFFF;

/// Item slots per bucket.
pub const SLOTS: usize = 7;
/// Most segments a shard can address.
pub const MAX_SEGMENTS: usize = 1 << 20;
/// Largest segment the offset can address.
pub const MAX_SEGMENT_BYTES: usize = 1 << 24;

/// One cache-line hash bucket.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Bucket(pub [u64; 8]);

/// Tag of a key hash (never 0).
#[inline(always)]
pub fn tag_of(hash: u64) -> u64 {
    let t = hash >> TAG_SHIFT;
    if t == 0 {
        1
    } else {
        t
    }
}

/// Build an item pointer.
#[inline(always)]
pub fn make_ptr(tag: u64, freq: u8, seg: u32, offset: u32) -> u64 {
    (tag << TAG_SHIFT)
        | ((freq as u64) << FREQ_SHIFT)
        | (((seg as u64) & SEG_MASK) << SEG_SHIFT)
        | (offset as u64 & OFFSET_MASK)
}

/// Tag of a pointer.
#[inline(always)]
pub fn ptr_tag(p: u64) -> u64 {
    (p >> TAG_SHIFT) & TAG_MASK
}
/// Frequency of a pointer.
#[inline(always)]
pub fn ptr_freq(p: u64) -> u8 {
    ((p >> FREQ_SHIFT) & FREQ_MASK) as u8
}
/// Segment id of a pointer.
#[inline(always)]
pub fn ptr_seg(p: u64) -> u32 {
    ((p >> SEG_SHIFT) & SEG_MASK) as u32
}
/// Offset of a pointer.
#[inline(always)]
pub fn ptr_offset(p: u64) -> u32 {
    (p & OFFSET_MASK) as u32
}
/// Pointer with a new frequency.
#[inline(always)]
pub fn with_freq(p: u64, freq: u8) -> u64 {
    (p & !(FREQ_MASK << FREQ_SHIFT)) | ((freq as u64) << FREQ_SHIFT)
}
/// Pointer with a new location, keeping tag and frequency.
#[inline(always)]
pub fn with_location(p: u64, seg: u32, offset: u32) -> u64 {
    (p & !LOCATION_MASK) | (((seg as u64) & SEG_MASK) << SEG_SHIFT) | (offset as u64 & OFFSET_MASK)
}
/// Next bucket of a chain (0 = none).
#[inline(always)]
pub fn next_of(b: &Bucket) -> usize {
    (b.0[0] & NEXT_MASK) as usize
}
/// Set the next bucket of a chain.
#[inline(always)]
pub fn set_next(b: &mut Bucket, next: usize) {
    b.0[0] = (b.0[0] & !NEXT_MASK) | (next as u64 & NEXT_MASK);
}

/// Approximate frequency increment: +1 below 16, then with probability
/// 1/freq (when the low 32 bits of `rand`, as a fraction of 2^32, fall
/// below 1/freq: a multiply instead of a division on every hit),
/// saturating at 255.
#[inline]
pub fn bump_freq(freq: u8, rand: u64) -> u8 {
    if freq < 16 || (freq < 255 && (rand as u32 as u64) * (freq as u64) < 1 << 32) {
        freq + 1
    } else {
        freq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_fields_roundtrip() {
        let p = make_ptr(0xABC, 200, 0xF_FFFF, 0xFF_FFFF);
        assert_eq!(ptr_tag(p), 0xABC);
        assert_eq!(ptr_freq(p), 200);
        assert_eq!(ptr_seg(p), 0xF_FFFF);
        assert_eq!(ptr_offset(p), 0xFF_FFFF);
        let q = with_freq(p, 3);
        assert_eq!((ptr_tag(q), ptr_freq(q), ptr_seg(q)), (0xABC, 3, 0xF_FFFF));
        let r = with_location(q, 7, 9);
        assert_eq!(
            (ptr_tag(r), ptr_freq(r), ptr_seg(r), ptr_offset(r)),
            (0xABC, 3, 7, 9)
        );
        assert_ne!(make_ptr(tag_of(0), 0, 0, 0), 0);
    }

    #[test]
    fn bucket_is_a_cache_line_and_links() {
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
        assert_eq!(core::mem::align_of::<Bucket>(), 64);
        let mut b = Bucket::default();
        set_next(&mut b, 12345);
        assert_eq!(next_of(&b), 12345);
    }

    #[test]
    fn freq_saturates() {
        assert_eq!(bump_freq(0, 1), 1);
        assert_eq!(bump_freq(255, 0), 255);
        assert_eq!(bump_freq(100, 1), 101);
        assert_eq!(bump_freq(100, u32::MAX as u64), 100);
        assert_eq!(bump_freq(100, (1 << 32) / 100 - 1), 101);
        assert_eq!(bump_freq(100, (1 << 32) / 100 + 1), 100);
    }

    #[test]
    fn freq_increments_with_probability_one_over_freq() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for freq in [16u8, 50, 200] {
            let n = 200_000u32;
            let mut bumps = 0u32;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bumps += (bump_freq(freq, x) != freq) as u32;
            }
            let want = n / freq as u32;
            assert!(
                bumps.abs_diff(want) < want / 10 + 20,
                "freq {freq}: {bumps} of {n}"
            );
        }
    }
}
