//! The persist header: what a store writes into the first page of its arena
//! so that a later process can reattach to the same memory (warm restart).
//!
//! Everything the store needs lives in the arena already (segments, segment
//! headers, TTL buckets, hash table). What lives outside it — the cas
//! counter, the flush state, each shard's free-list heads and random state —
//! is written here by [`Store::persist`](super::Store::persist), together
//! with the configuration that decides the layout and a checksum of every
//! shard's metadata. Item bytes (keys and values in segments) are not
//! checksummed: they are only reached through checksummed metadata, and
//! hashing a whole cache would make every restart read all of it.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "PETRELWR"
//!      8     4  format version
//!     12     4  state: DIRTY while a process uses the arena, CLEAN once saved
//!     16     4  shards                 20  4  eviction kind (0 none .. 4 merge)
//!     24    12  eviction max, merge, compact (u32 each)
//!     36     4  overflow percent
//!     40     8  item memory bytes      48  8  segment bytes
//!     56     8  max item bytes         64  8  main hash buckets per shard
//!     72     8  segments per shard     80  8  arena bytes (layout total)
//!     88     8  offset of shard 0 in the arena (alignment of the mapping)
//!     96     8  hash seed
//!    104     8  cas counter           112  8  flush cas
//!    120     4  pending flush time    124  4  saved at (Unix s)
//!    128     8  items at save time
//!    192  48*n  shard records: free head u32, reserve u32, merge bucket u32,
//!               segment frontier u32, overflow free head u32, overflow
//!               frontier u32, rng u64, metadata xxh64 u64, items u64
//!   4088     8  xxh64 of bytes 0..4088
//! ```
//!
//! A store built by [`Store::new`](super::Store::new) writes the magic with
//! state DIRTY; [`Store::attach`](super::Store::attach) writes DIRTY back as
//! soon as it has accepted a CLEAN header. So a process that dies without
//! saving (a crash, SIGKILL) always leaves DIRTY behind, and the next attach
//! refuses it.

use core::fmt;

use super::checksum::xxh64;
use super::config::{ConfigError, Eviction, StoreConfig, MAX_SHARDS};
use super::layout::Layout;
use crate::Time;

pub use super::layout::PERSIST_HEADER_BYTES;
/// Version of the on-arena format this build writes and reads (2: shard
/// records carry the segment and overflow-bucket frontiers).
pub const FORMAT_VERSION: u32 = 2;

const MAGIC: [u8; 8] = *b"PETRELWR";
/// State: in use (or died in use).
const STATE_DIRTY: u32 = 0x5954_5244;
/// State: saved by a clean shutdown.
const STATE_CLEAN: u32 = 0x4e41_454c;

mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const STATE: usize = 12;
    pub const SHARDS: usize = 16;
    pub const EVICTION: usize = 20;
    pub const EVICTION_MAX: usize = 24;
    pub const EVICTION_MERGE: usize = 28;
    pub const EVICTION_COMPACT: usize = 32;
    pub const OVERFLOW_PERCENT: usize = 36;
    pub const ITEM_MEMORY: usize = 40;
    pub const SEGMENT_BYTES: usize = 48;
    pub const MAX_ITEM: usize = 56;
    pub const MAIN_BUCKETS: usize = 64;
    pub const SEGMENTS: usize = 72;
    pub const TOTAL_BYTES: usize = 80;
    pub const SHARD_OFFSET: usize = 88;
    pub const SEED: usize = 96;
    pub const CAS: usize = 104;
    pub const FLUSH_CAS: usize = 112;
    pub const FLUSH_AT: usize = 120;
    pub const SAVED_AT: usize = 124;
    pub const ITEMS: usize = 128;
    pub const SHARD_RECORDS: usize = 192;
    pub const SHARD_RECORD_BYTES: usize = 48;
    pub const CHECKSUM: usize = super::PERSIST_HEADER_BYTES - 8;

    pub mod record {
        pub const FREE_HEAD: usize = 0;
        pub const RESERVE: usize = 4;
        pub const MERGE_BUCKET: usize = 8;
        pub const FRESH: usize = 12;
        pub const OVF_FREE: usize = 16;
        pub const OVF_FRESH: usize = 20;
        pub const RNG: usize = 24;
        pub const CHECKSUM: usize = 32;
        pub const ITEMS: usize = 40;
    }
}

const _: () = assert!(
    field::SHARD_RECORDS + MAX_SHARDS * field::SHARD_RECORD_BYTES <= field::CHECKSUM,
    "shard records must fit in the header page"
);

/// Byte offset of the state word in the header (for tests that simulate a
/// crash or corruption).
pub const STATE_OFFSET: usize = field::STATE;
/// Byte offset of the saved cas counter in the header (covered by the
/// header checksum).
pub const CAS_OFFSET: usize = field::CAS;

/// Why a saved arena cannot be reattached. The caller starts cold instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// The configuration itself is invalid or the arena too small.
    Config(ConfigError),
    /// No header at all: a new (zeroed) file or one not written by Petrel.
    NoSavedState,
    /// Written by another format version.
    Version {
        /// Version found in the header.
        found: u32,
    },
    /// The previous process did not shut down cleanly (crash, SIGKILL), or
    /// still uses the arena.
    NotShutDownCleanly,
    /// The header's checksum does not match its contents.
    HeaderChecksum,
    /// A setting that decides the layout differs from the saved one.
    ConfigMismatch {
        /// Which setting.
        what: &'static str,
        /// Value in the saved header.
        saved: u64,
        /// Value now.
        now: u64,
    },
    /// A shard's metadata (hash table, segment headers, TTL buckets) does
    /// not match its saved checksum.
    MetadataChecksum {
        /// The shard.
        shard: usize,
    },
    /// A shard's metadata passed its checksum but is not self-consistent.
    Inconsistent {
        /// The shard.
        shard: usize,
        /// What did not add up.
        what: &'static str,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AttachError::Config(e) => write!(f, "configuration rejected by the store ({e:?})"),
            AttachError::NoSavedState => {
                f.write_str("no saved state (new file, or not written by petrel)")
            }
            AttachError::Version { found } => write!(
                f,
                "saved by format version {found}, this build reads version {FORMAT_VERSION}"
            ),
            AttachError::NotShutDownCleanly => f.write_str(
                "previous process did not shut down cleanly (crash or SIGKILL), or the file is in use",
            ),
            AttachError::HeaderChecksum => f.write_str("header checksum mismatch (corrupt header)"),
            AttachError::ConfigMismatch { what, saved, now } => {
                write!(f, "configuration changed: {what} was {saved}, now {now}")
            }
            AttachError::MetadataChecksum { shard } => {
                write!(f, "metadata checksum mismatch in shard {shard} (corrupt)")
            }
            AttachError::Inconsistent { shard, what } => {
                write!(f, "inconsistent metadata in shard {shard}: {what}")
            }
        }
    }
}

/// What [`Store::persist`](super::Store::persist) saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistSummary {
    /// Items linked at save time (some may expire before the next start).
    pub items: u64,
    /// The cas counter saved.
    pub cas: u64,
    /// Shards saved.
    pub shards: usize,
}

/// Store-wide state read from an accepted header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Saved {
    pub cas: u64,
    pub flush_cas: u64,
    pub flush_at: Time,
    pub saved_at: Time,
}

/// Per-shard state kept outside the shard's arena regions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ShardState {
    pub free_head: u32,
    pub reserve: u32,
    /// Segments at and above this id were never used.
    pub fresh: u32,
    pub merge_bucket: u32,
    pub ovf_free: u32,
    /// Overflow buckets at and above this index were never used.
    pub ovf_fresh: u32,
    pub rng: u64,
    pub checksum: u64,
    pub items: u64,
}

fn get_u32(h: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&h[at..at + 4]);
    u32::from_le_bytes(b)
}

fn get_u64(h: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    u64::from_le_bytes(b)
}

fn put_u32(h: &mut [u8], at: usize, v: u32) {
    h[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(h: &mut [u8], at: usize, v: u64) {
    h[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn eviction_words(e: Eviction) -> [u32; 4] {
    match e {
        Eviction::None => [0, 0, 0, 0],
        Eviction::Fifo => [1, 0, 0, 0],
        Eviction::Random => [2, 0, 0, 0],
        Eviction::Cte => [3, 0, 0, 0],
        Eviction::Merge {
            max,
            merge,
            compact,
        } => [4, max as u32, merge as u32, compact as u32],
    }
}

/// A layout-deciding setting: name, header offset, 8 bytes wide?, value.
type Setting = (&'static str, usize, bool, u64);

/// The layout-deciding settings, in the order a mismatch is reported
/// (those a user sets directly first).
fn settings(cfg: &StoreConfig, l: &Layout, shard_offset: usize) -> [Setting; 14] {
    use field::*;
    let ev = eviction_words(cfg.eviction);
    let memory = cfg.item_memory_bytes as u64;
    [
        ("item memory bytes", ITEM_MEMORY, true, memory),
        ("max item bytes", MAX_ITEM, true, cfg.max_item_bytes as u64),
        (
            "segment bytes",
            SEGMENT_BYTES,
            true,
            cfg.segment_bytes as u64,
        ),
        ("shards", SHARDS, false, l.shards as u64),
        ("eviction policy", EVICTION, false, ev[0] as u64),
        ("eviction max", EVICTION_MAX, false, ev[1] as u64),
        ("eviction merge", EVICTION_MERGE, false, ev[2] as u64),
        ("eviction compact", EVICTION_COMPACT, false, ev[3] as u64),
        (
            "overflow percent",
            OVERFLOW_PERCENT,
            false,
            cfg.overflow_percent as u64,
        ),
        (
            "hash buckets per shard",
            MAIN_BUCKETS,
            true,
            l.main_buckets as u64,
        ),
        ("segments per shard", SEGMENTS, true, l.segments as u64),
        ("arena bytes", TOTAL_BYTES, true, l.total_bytes as u64),
        (
            "arena alignment offset",
            SHARD_OFFSET,
            true,
            shard_offset as u64,
        ),
        ("hash seed", SEED, true, cfg.seed),
    ]
}

/// Header of a store in use: magic, version, DIRTY; the rest zero.
pub(crate) fn write_dirty(header: &mut [u8]) {
    header.fill(0);
    header[field::MAGIC..field::MAGIC + 8].copy_from_slice(&MAGIC);
    put_u32(header, field::VERSION, FORMAT_VERSION);
    put_u32(header, field::STATE, STATE_DIRTY);
}

/// Mark an accepted header as in use again (keeps the rest for inspection).
pub(crate) fn mark_dirty(header: &mut [u8]) {
    put_u32(header, field::STATE, STATE_DIRTY);
}

/// Check a saved header against the configuration that wants to attach:
/// magic, version, clean state, checksum, then every layout setting.
/// `header` is the first [`PERSIST_HEADER_BYTES`] of the arena;
/// `shard_offset` where shard 0 starts in this arena.
pub(crate) fn check(
    cfg: &StoreConfig,
    l: &Layout,
    header: &[u8],
    shard_offset: usize,
) -> Result<Saved, AttachError> {
    if header.len() < PERSIST_HEADER_BYTES || header[field::MAGIC..field::MAGIC + 8] != MAGIC {
        return Err(AttachError::NoSavedState);
    }
    let version = get_u32(header, field::VERSION);
    if version != FORMAT_VERSION {
        return Err(AttachError::Version { found: version });
    }
    match get_u32(header, field::STATE) {
        STATE_CLEAN => {}
        STATE_DIRTY => return Err(AttachError::NotShutDownCleanly),
        _ => return Err(AttachError::HeaderChecksum),
    }
    if xxh64(&header[..field::CHECKSUM], 0) != get_u64(header, field::CHECKSUM) {
        return Err(AttachError::HeaderChecksum);
    }
    for (what, at, wide, now) in settings(cfg, l, shard_offset) {
        let saved = if wide {
            get_u64(header, at)
        } else {
            get_u32(header, at) as u64
        };
        if saved != now {
            return Err(AttachError::ConfigMismatch { what, saved, now });
        }
    }
    Ok(Saved {
        cas: get_u64(header, field::CAS),
        flush_cas: get_u64(header, field::FLUSH_CAS),
        flush_at: get_u32(header, field::FLUSH_AT),
        saved_at: get_u32(header, field::SAVED_AT),
    })
}

/// Check only the header of a saved arena (without the arena), e.g. to
/// name the reason when a saved file has the wrong size for `cfg`.
/// `shard_offset` is where shard 0 would start ([`PERSIST_HEADER_BYTES`]
/// for a page-aligned arena).
pub fn check_header(
    cfg: &StoreConfig,
    header: &[u8],
    shard_offset: usize,
) -> Result<Time, AttachError> {
    let l = super::layout::layout(cfg).map_err(AttachError::Config)?;
    check(cfg, &l, header, shard_offset).map(|s| s.saved_at)
}

/// The saved record of shard `i` (after [`check`] succeeded).
pub(crate) fn shard_record(header: &[u8], i: usize) -> ShardState {
    let r = field::SHARD_RECORDS + i * field::SHARD_RECORD_BYTES;
    ShardState {
        free_head: get_u32(header, r + field::record::FREE_HEAD),
        reserve: get_u32(header, r + field::record::RESERVE),
        fresh: get_u32(header, r + field::record::FRESH),
        merge_bucket: get_u32(header, r + field::record::MERGE_BUCKET),
        ovf_free: get_u32(header, r + field::record::OVF_FREE),
        ovf_fresh: get_u32(header, r + field::record::OVF_FRESH),
        rng: get_u64(header, r + field::record::RNG),
        checksum: get_u64(header, r + field::record::CHECKSUM),
        items: get_u64(header, r + field::record::ITEMS),
    }
}

/// Everything a clean shutdown writes, in one place.
pub(crate) struct Snapshot<'s> {
    pub cfg: &'s StoreConfig,
    pub layout: &'s Layout,
    pub shard_offset: usize,
    pub cas: u64,
    pub flush_cas: u64,
    pub flush_at: Time,
    pub saved_at: Time,
    pub items: u64,
}

/// Write a complete CLEAN header: settings, state, shard records, checksum.
pub(crate) fn write_clean(header: &mut [u8], snap: &Snapshot<'_>, shards: &[ShardState]) {
    write_dirty(header);
    for (_, at, wide, v) in settings(snap.cfg, snap.layout, snap.shard_offset) {
        if wide {
            put_u64(header, at, v);
        } else {
            put_u32(header, at, v as u32);
        }
    }
    put_u64(header, field::CAS, snap.cas);
    put_u64(header, field::FLUSH_CAS, snap.flush_cas);
    put_u32(header, field::FLUSH_AT, snap.flush_at);
    put_u32(header, field::SAVED_AT, snap.saved_at);
    put_u64(header, field::ITEMS, snap.items);
    for (i, s) in shards.iter().enumerate().take(MAX_SHARDS) {
        let r = field::SHARD_RECORDS + i * field::SHARD_RECORD_BYTES;
        put_u32(header, r + field::record::FREE_HEAD, s.free_head);
        put_u32(header, r + field::record::RESERVE, s.reserve);
        put_u32(header, r + field::record::MERGE_BUCKET, s.merge_bucket);
        put_u32(header, r + field::record::FRESH, s.fresh);
        put_u32(header, r + field::record::OVF_FREE, s.ovf_free);
        put_u32(header, r + field::record::OVF_FRESH, s.ovf_fresh);
        put_u64(header, r + field::record::RNG, s.rng);
        put_u64(header, r + field::record::CHECKSUM, s.checksum);
        put_u64(header, r + field::record::ITEMS, s.items);
    }
    put_u32(header, field::STATE, STATE_CLEAN);
    let sum = xxh64(&header[..field::CHECKSUM], 0);
    put_u64(header, field::CHECKSUM, sum);
}
