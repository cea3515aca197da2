//! Arena layout: how many bytes a configuration needs and where each region
//! lives.
//!
//! ```text
//! arena: [persist header 4096 B] [pad to 64] [shard 0 region] [shard 1 region] ...
//!        (shard regions 64-aligned; the header is described in `persist.rs`)
//! shard region:
//!   buckets        (main + overflow) x 64 B       cache-line aligned
//!   seg headers    segments x 40 B, rounded up to 64
//!   ttl buckets    1025 x 12 B, rounded up to 64
//!   segment data   segments x segment_bytes
//! ```

use super::config::{ConfigError, Eviction, StoreConfig, MAX_SHARDS};
use super::hashtable::{Bucket, SLOTS};
use super::ptr::{MAX_SEGMENTS, MAX_SEGMENT_BYTES};
use super::segment::{SegHeader, SEG_HEADER_BYTES};
use super::ttl::{TtlBucket, TTL_BUCKETS};
use crate::arena::Carver;

/// Bytes at the start of the arena reserved for the persist header
/// (described in `persist.rs`).
pub const PERSIST_HEADER_BYTES: usize = 4096;

/// Smallest segment size accepted.
pub const MIN_SEGMENT_BYTES: usize = 1024;
/// Fewest segments per shard accepted.
pub const MIN_SEGMENTS_PER_SHARD: usize = 4;
/// Longest run of segments one merge/compaction pass may take.
pub const MAX_MERGE_RUN: usize = 32;
/// Average item size assumed when `hash_power` is 0 (automatic).
pub const AUTO_HASH_ITEM_BYTES: usize = 96;
/// Largest per-shard hash power.
pub const MAX_SHARD_HASH_POWER: u32 = 30;
/// Alignment slack included in the required size.
pub const ALIGN_SLACK_BYTES: usize = 63;

impl StoreConfig {
    /// Exact number of arena bytes [`Store::new`](super::Store::new) needs
    /// for this configuration (including alignment slack for any arena
    /// address), or why the configuration is inconsistent.
    pub fn required_bytes(&self) -> Result<usize, ConfigError> {
        layout(self).map(|l| l.total_bytes)
    }

    /// The resolved layout (segments per shard, buckets, ...) or why the
    /// configuration is inconsistent.
    pub fn layout(&self) -> Result<Layout, ConfigError> {
        layout(self)
    }
}

/// Resolved sizes of one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Shards.
    pub shards: usize,
    /// Segments per shard.
    pub segments: usize,
    /// log2 of the segment size.
    pub seg_shift: u32,
    /// Main buckets per shard (power of two).
    pub main_buckets: usize,
    /// Overflow buckets per shard.
    pub overflow_buckets: usize,
    /// Bytes of one shard region (multiple of 64).
    pub shard_bytes: usize,
    /// Total bytes required including alignment slack.
    pub total_bytes: usize,
}

fn round64(n: usize) -> Option<usize> {
    n.checked_add(63).map(|v| v & !63)
}

/// Validate `cfg` and compute its layout.
pub fn layout(cfg: &StoreConfig) -> Result<Layout, ConfigError> {
    let sb = cfg.segment_bytes;
    if !sb.is_power_of_two() || !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&sb) {
        return Err(ConfigError::SegmentSize);
    }
    if cfg.shards == 0 || !cfg.shards.is_power_of_two() || cfg.shards > MAX_SHARDS {
        return Err(ConfigError::Shards);
    }
    if cfg.max_item_bytes == 0 || cfg.max_item_bytes > sb {
        return Err(ConfigError::MaxItemSize);
    }
    if let Eviction::Merge {
        max,
        merge,
        compact,
    } = cfg.eviction
    {
        if !(2..=MAX_MERGE_RUN).contains(&merge)
            || !(2..=MAX_MERGE_RUN).contains(&max)
            || compact < 2
        {
            return Err(ConfigError::Eviction);
        }
    }
    let segments = cfg.item_memory_bytes / sb / cfg.shards;
    if !(MIN_SEGMENTS_PER_SHARD..=MAX_SEGMENTS).contains(&segments) {
        return Err(ConfigError::SegmentCount);
    }
    let shard_bits = cfg.shards.trailing_zeros();
    let total_power = if cfg.hash_power == 0 {
        let items = (cfg.item_memory_bytes / AUTO_HASH_ITEM_BYTES).max(1);
        let buckets = items.div_ceil(SLOTS).max(cfg.shards);
        buckets.next_power_of_two().trailing_zeros()
    } else {
        cfg.hash_power as u32
    };
    if total_power < shard_bits || total_power - shard_bits > MAX_SHARD_HASH_POWER {
        return Err(ConfigError::HashPower);
    }
    let main_buckets = 1usize << (total_power - shard_bits);
    let overflow_buckets = main_buckets
        .checked_mul(cfg.overflow_percent as usize)
        .ok_or(ConfigError::Overflow)?
        / 100;
    let bucket_bytes = (main_buckets + overflow_buckets)
        .checked_mul(core::mem::size_of::<Bucket>())
        .ok_or(ConfigError::Overflow)?;
    let header_bytes = round64(segments * SEG_HEADER_BYTES).ok_or(ConfigError::Overflow)?;
    let ttl_bytes =
        round64(TTL_BUCKETS * core::mem::size_of::<TtlBucket>()).ok_or(ConfigError::Overflow)?;
    let data_bytes = segments.checked_mul(sb).ok_or(ConfigError::Overflow)?;
    let shard_bytes = bucket_bytes
        .checked_add(header_bytes)
        .and_then(|v| v.checked_add(ttl_bytes))
        .and_then(|v| v.checked_add(data_bytes))
        .ok_or(ConfigError::Overflow)?;
    let total_bytes = shard_bytes
        .checked_mul(cfg.shards)
        .and_then(|v| v.checked_add(PERSIST_HEADER_BYTES + ALIGN_SLACK_BYTES))
        .ok_or(ConfigError::Overflow)?;
    Ok(Layout {
        shards: cfg.shards,
        segments,
        seg_shift: sb.trailing_zeros(),
        main_buckets,
        overflow_buckets,
        shard_bytes,
        total_bytes,
    })
}

/// One shard's regions carved from the arena.
pub(crate) struct Regions<'a> {
    pub buckets: &'a mut [Bucket],
    pub segs: &'a mut [SegHeader],
    pub ttl: &'a mut [TtlBucket],
    pub data: &'a mut [u8],
}

/// Carve the next shard's regions. With `zero`, the hash table and the
/// segment headers are zero-filled; otherwise their bytes are left as they
/// are (memory known to be zero already, or a saved arena to reattach).
/// The TTL buckets and segment data are never written here.
pub(crate) fn carve_shard<'a>(
    carver: &mut Carver<'a>,
    l: &Layout,
    zero: bool,
) -> Option<Regions<'a>> {
    let nb = l.main_buckets + l.overflow_buckets;
    let buckets = if zero {
        carver.slice::<Bucket>(nb)?
    } else {
        carver.slice_in_place::<Bucket>(nb)?
    };
    let segs = if zero {
        carver.slice::<SegHeader>(l.segments)?
    } else {
        carver.slice_in_place::<SegHeader>(l.segments)?
    };
    carver.align_to(64)?;
    let ttl = carver.slice_in_place::<TtlBucket>(TTL_BUCKETS)?;
    carver.align_to(64)?;
    let data = carver.bytes(l.segments << l.seg_shift)?;
    Some(Regions {
        buckets,
        segs,
        ttl,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let l = layout(&StoreConfig::default()).unwrap();
        assert_eq!(l.segments, 64);
        assert_eq!(l.seg_shift, 20);
        assert_eq!(l.main_buckets, 1 << 17);
        assert_eq!(l.overflow_buckets, (1 << 17) / 4);
        assert_eq!(l.shard_bytes % 64, 0);
        assert!(l.total_bytes > 64 << 20);
    }

    #[test]
    fn rejects_inconsistent_configs() {
        let d = StoreConfig::default();
        let bad = |c: StoreConfig| layout(&c).unwrap_err();
        assert_eq!(
            bad(StoreConfig {
                segment_bytes: 1000,
                max_item_bytes: 1000,
                ..d
            }),
            ConfigError::SegmentSize
        );
        assert_eq!(
            bad(StoreConfig {
                segment_bytes: 32 << 20,
                ..d
            }),
            ConfigError::SegmentSize
        );
        assert_eq!(bad(StoreConfig { shards: 3, ..d }), ConfigError::Shards);
        assert_eq!(bad(StoreConfig { shards: 128, ..d }), ConfigError::Shards);
        assert_eq!(
            bad(StoreConfig {
                max_item_bytes: 2 << 20,
                ..d
            }),
            ConfigError::MaxItemSize
        );
        assert_eq!(
            bad(StoreConfig {
                item_memory_bytes: 3 << 20,
                ..d
            }),
            ConfigError::SegmentCount
        );
        assert_eq!(
            bad(StoreConfig {
                shards: 8,
                hash_power: 2,
                ..d
            }),
            ConfigError::HashPower
        );
        let ev = Eviction::Merge {
            max: 8,
            merge: 1,
            compact: 2,
        };
        assert_eq!(
            bad(StoreConfig { eviction: ev, ..d }),
            ConfigError::Eviction
        );
        assert_eq!(
            bad(StoreConfig {
                item_memory_bytes: usize::MAX,
                segment_bytes: 1024,
                max_item_bytes: 1024,
                ..d
            }),
            ConfigError::SegmentCount
        );
    }
}
