//! TTL buckets (Pelikan's scheme): segments are chained by the TTL their
//! items had when written, so that segments of one bucket expire in order
//! and are reclaimed whole.
//!
//! ```text
//! bucket index   TTL range (s)           width (s)
//!    0 ..  255   [0, 2048)               8
//!  256 ..  511   [2048, 32768)           128
//!  512 ..  767   [32768, 524288)         2048
//!  768 .. 1023   [524288, inf)           32768 (clamped at 1023)
//!  1024          never expires           -
//! ```
//!
//! A new segment of bucket `b` opened for an item expiring at `e` gets
//! `expire_at = e + width(b)`. An item fits an open segment if it expires
//! no later than the segment and at most 65535 s before (its header then
//! stores the difference as a u16). A fixed TTL thus shares a segment for
//! about `width` seconds, and no segment outlives its items by more than
//! two widths.

use crate::arena::Pod;
use crate::Time;

/// Number of TTL buckets including the "never" bucket.
pub const TTL_BUCKETS: usize = 1025;
/// Index of the bucket for items that never expire.
pub const NEVER_BUCKET: usize = 1024;

const N_BIT_1: u32 = 3;
const N_BIT_2: u32 = 7;
const N_BIT_3: u32 = 11;
const N_BIT_4: u32 = 15;
const BOUNDARY_1: u32 = 1 << (N_BIT_1 + 8);
const BOUNDARY_2: u32 = 1 << (N_BIT_2 + 8);
const BOUNDARY_3: u32 = 1 << (N_BIT_3 + 8);

/// One TTL bucket: a doubly linked chain of segments, oldest first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TtlBucket {
    /// Oldest segment or NONE.
    pub head: u32,
    /// Newest segment (the open one, if any) or NONE.
    pub tail: u32,
    /// Segments in the chain.
    pub segments: u32,
}

// SAFETY: repr(C), three u32, no padding.
unsafe impl Pod for TtlBucket {}

/// Bucket for an absolute expiry `expire_at` written at `now`.
#[inline]
pub fn bucket_index(expire_at: Time, now: Time) -> usize {
    if expire_at == 0 {
        return NEVER_BUCKET;
    }
    let ttl = expire_at.saturating_sub(now);
    let i = if ttl < BOUNDARY_1 {
        ttl >> N_BIT_1
    } else if ttl < BOUNDARY_2 {
        (ttl >> N_BIT_2) + 256
    } else if ttl < BOUNDARY_3 {
        (ttl >> N_BIT_3) + 512
    } else {
        ((ttl >> N_BIT_4) + 768).min(1023)
    };
    i as usize
}

/// Width in seconds of bucket `b`.
#[inline]
pub fn bucket_width(b: usize) -> Time {
    match b {
        0..=255 => 1 << N_BIT_1,
        256..=511 => 1 << N_BIT_2,
        512..=767 => 1 << N_BIT_3,
        _ => 1 << N_BIT_4,
    }
}

/// Expiry delta of an item expiring at `e` in a segment expiring at
/// `seg_expire`, if the item may live there.
#[inline]
pub fn expiry_delta(seg_expire: Time, e: Time) -> Option<u16> {
    match (seg_expire, e) {
        (0, 0) => Some(0),
        (0, _) | (_, 0) => None,
        (s, e) if e <= s && s - e <= u16::MAX as Time => Some((s - e) as u16),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_pelikan_tiers() {
        assert_eq!(bucket_index(0, 5), NEVER_BUCKET);
        assert_eq!(bucket_index(105, 100), 0);
        assert_eq!(bucket_index(100 + 2047, 100), 255);
        assert_eq!(bucket_index(100 + 2048, 100), 272);
        assert_eq!(bucket_index(100 + 40_000, 100), 531);
        assert_eq!(bucket_index(u32::MAX, 0), 1023);
        assert_eq!(bucket_width(0), 8);
        assert_eq!(bucket_width(1023), 32768);
    }

    #[test]
    fn delta_rules() {
        assert_eq!(expiry_delta(0, 0), Some(0));
        assert_eq!(expiry_delta(0, 5), None);
        assert_eq!(expiry_delta(5, 0), None);
        assert_eq!(expiry_delta(100, 90), Some(10));
        assert_eq!(expiry_delta(100, 101), None);
        assert_eq!(expiry_delta(70_000, 1), None);
    }
}
