//! Item pointers: what a hash slot holds to say where an item lives.
//!
//! ```text
//! ItemPtr (u64):
//! ┌──────────┬──────────┬──────────────────────┬──────────────────────────┐
//! │ TAG (12) │ FREQ (8) │  SEGMENT ID (20)     │   BYTE OFFSET (24)       │
//! └──────────┴──────────┴──────────────────────┴──────────────────────────┘
//!  63      52 51      44 43                  24 23                       0
//! ```
//!
//! TAG is the top 12 bits of the key hash (0 is mapped to 1 so that a
//! pointer is never 0: the all-zero value is an empty slot); only on a tag
//! match is the key compared. FREQ is an 8-bit approximate access counter
//! used by merge eviction and by hash-full eviction. SEGMENT ID is
//! shard-local; OFFSET is the byte offset of the item header in its segment
//! (items are not aligned), which limits segments to 16 MiB.

use crate::arena::Pod;

/// Tag mask (after shifting).
const TAG_MASK: u64 = 0xFFF;
/// Tag shift.
const TAG_SHIFT: u32 = 52;
/// Frequency mask (after shifting).
const FREQ_MASK: u64 = 0xFF;
/// Frequency shift.
const FREQ_SHIFT: u32 = 44;
/// Segment id mask (after shifting).
const SEG_MASK: u64 = 0xF_FFFF;
/// Segment id shift.
const SEG_SHIFT: u32 = 24;
/// Offset mask.
const OFFSET_MASK: u64 = 0xFF_FFFF;
/// Bits that locate the item (segment and offset).
const LOCATION_MASK: u64 = (SEG_MASK << SEG_SHIFT) | OFFSET_MASK;

/// Most segments a shard can address.
pub const MAX_SEGMENTS: usize = 1 << 20;
/// Largest segment the offset can address.
pub const MAX_SEGMENT_BYTES: usize = 1 << 24;

/// One hash slot's item pointer; [`ItemPtr::EMPTY`] is a free slot.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemPtr(u64);

// SAFETY: repr(transparent) over u64: no padding, every bit pattern valid.
unsafe impl Pod for ItemPtr {}

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

impl ItemPtr {
    /// The empty slot.
    pub const EMPTY: ItemPtr = ItemPtr(0);

    /// A pointer to (`seg`, `offset`) with tag `tag` (from [`tag_of`]) and
    /// frequency `freq`.
    #[inline(always)]
    pub fn new(tag: u64, freq: u8, seg: u32, offset: u32) -> Self {
        ItemPtr(
            (tag << TAG_SHIFT)
                | ((freq as u64) << FREQ_SHIFT)
                | (((seg as u64) & SEG_MASK) << SEG_SHIFT)
                | (offset as u64 & OFFSET_MASK),
        )
    }

    /// Whether this is the empty slot.
    #[inline(always)]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The tag (0 only for the empty slot).
    #[inline(always)]
    pub fn tag(self) -> u64 {
        (self.0 >> TAG_SHIFT) & TAG_MASK
    }
    /// The access frequency.
    #[inline(always)]
    pub fn freq(self) -> u8 {
        ((self.0 >> FREQ_SHIFT) & FREQ_MASK) as u8
    }
    /// The shard-local segment id.
    #[inline(always)]
    pub fn seg(self) -> u32 {
        ((self.0 >> SEG_SHIFT) & SEG_MASK) as u32
    }
    /// The item's byte offset in its segment.
    #[inline(always)]
    pub fn offset(self) -> u32 {
        (self.0 & OFFSET_MASK) as u32
    }
    /// The same pointer with frequency `freq`.
    #[inline(always)]
    pub fn with_freq(self, freq: u8) -> Self {
        ItemPtr((self.0 & !(FREQ_MASK << FREQ_SHIFT)) | ((freq as u64) << FREQ_SHIFT))
    }
    /// The same tag and frequency at a new location.
    #[inline(always)]
    pub fn with_location(self, seg: u32, offset: u32) -> Self {
        ItemPtr(
            (self.0 & !LOCATION_MASK)
                | (((seg as u64) & SEG_MASK) << SEG_SHIFT)
                | (offset as u64 & OFFSET_MASK),
        )
    }
    /// Whether this (non-empty) pointer locates (`seg`, `offset`).
    #[inline(always)]
    pub fn is_at(self, seg: u32, offset: u32) -> bool {
        !self.is_empty() && self.0 & LOCATION_MASK == Self::new(0, 0, seg, offset).0
    }
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
        let p = ItemPtr::new(0xABC, 200, 0xF_FFFF, 0xFF_FFFF);
        assert_eq!(p.tag(), 0xABC);
        assert_eq!(p.freq(), 200);
        assert_eq!(p.seg(), 0xF_FFFF);
        assert_eq!(p.offset(), 0xFF_FFFF);
        let q = p.with_freq(3);
        assert_eq!((q.tag(), q.freq(), q.seg()), (0xABC, 3, 0xF_FFFF));
        let r = q.with_location(7, 9);
        assert_eq!((r.tag(), r.freq(), r.seg(), r.offset()), (0xABC, 3, 7, 9));
        assert!(r.is_at(7, 9) && !r.is_at(7, 8) && !ItemPtr::EMPTY.is_at(0, 0));
        assert!(!ItemPtr::new(tag_of(0), 0, 0, 0).is_empty());
        assert!(ItemPtr::EMPTY.is_empty() && ItemPtr::EMPTY.tag() == 0);
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
