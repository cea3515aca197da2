//! Segment headers: one per fixed-size segment, kept in a plain array in
//! the arena, separate from the segment data.
//!
//! ```text
//! SegHeader (40 bytes, repr(C), any bit pattern is valid):
//! ┌──────────────────────────────┬──────────────┬────────────┬────────────┐
//! │ cas_base (u64)               │ write_offset │ live_bytes │ live_items │
//! ├──────────────┬───────────────┼──────────────┼────────────┴────────────┤
//! │ next (u32)   │ prev (u32)    │ expire_at    │ create_at  │ttl_bucket u16│state u8│pad│
//! └──────────────┴───────────────┴──────────────┴────────────┴─────────────┘
//! ```
//!
//! A segment is FREE (on the shard's free list, linked by `next`), OPEN
//! (the tail of its TTL bucket's chain, accepting appends) or SEALED.
//! `cas_base` is drawn from the store-wide cas counter every time the
//! segment is (re)opened, so it doubles as the segment's generation.
//! `expire_at` bounds the expiry of every item in the segment (0 = never):
//! once `now >= expire_at` the whole segment is dead.

use crate::arena::Pod;
use crate::Time;

/// "No segment" in links.
pub const NONE: u32 = u32::MAX;

/// Segment state: on the free list.
pub const FREE: u8 = 0;
/// Segment state: accepting appends.
pub const OPEN: u8 = 1;
/// Segment state: full or closed; read-only except for in-place bits.
pub const SEALED: u8 = 2;

/// Header of one segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SegHeader {
    /// First cas of the segment's implicit cas range; its generation.
    pub cas_base: u64,
    /// Bytes appended so far.
    pub write_offset: u32,
    /// Bytes of linked items.
    pub live_bytes: u32,
    /// Number of linked items.
    pub live_items: u32,
    /// Next segment in the TTL chain or free list.
    pub next: u32,
    /// Previous segment in the TTL chain.
    pub prev: u32,
    /// Upper bound of all item expiries in this segment (0 = never).
    pub expire_at: Time,
    /// When the segment was opened.
    pub create_at: Time,
    /// Index of the TTL bucket the segment is chained in.
    pub ttl_bucket: u16,
    /// FREE, OPEN or SEALED.
    pub state: u8,
    /// Padding.
    pub _pad: u8,
}

// SAFETY: repr(C) integers laid out without padding (40 bytes); any bit
// pattern is a valid value.
unsafe impl Pod for SegHeader {}

/// Bytes per header in the arena.
pub const SEG_HEADER_BYTES: usize = core::mem::size_of::<SegHeader>();

impl SegHeader {
    /// Whether every item in the segment has expired at `now`.
    #[inline]
    pub fn expired(&self, now: Time) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }

    /// Exact expiry of an item with this `exp_delta`.
    #[inline]
    pub fn item_expiry(&self, exp_delta: u16) -> Time {
        if self.expire_at == 0 {
            0
        } else {
            self.expire_at.saturating_sub(exp_delta as Time).max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_compact_and_expiry_math() {
        assert_eq!(SEG_HEADER_BYTES, 40);
        let h = SegHeader {
            expire_at: 100,
            ..Default::default()
        };
        assert!(h.expired(100));
        assert!(!h.expired(99));
        assert_eq!(h.item_expiry(30), 70);
        let never = SegHeader::default();
        assert!(!never.expired(u32::MAX));
        assert_eq!(never.item_expiry(0), 0);
    }
}
