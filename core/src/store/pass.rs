//! The state of a reclaim in progress ([`Pass`]) and the bound on the
//! eviction work one hold of a shard lock may do ([`HOLD_WORK`]): the shard
//! keeps the pass between holds, `evict` carries it on.

use super::layout::MAX_MERGE_RUN;

/// Eviction work one hold of a shard lock may do, in units: one per item
/// visited, one more per KiB copied, [`SEGMENT_WORK`] per segment freed
/// and per pass chosen. A step stops once it has spent this much; it
/// finishes the item at hand, so one hold does at most this plus one
/// item's and one segment's units.
pub(crate) const HOLD_WORK: u32 = 512;
/// Units for freeing a segment or choosing a pass.
pub(crate) const SEGMENT_WORK: u32 = 8;

/// Why a whole segment is being cleared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Cause {
    Evicted,
    Expired,
    Flushed,
}

/// What a pass does with the live items of its sources.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PassKind {
    /// Unlink them (one source, no destination).
    Clear(Cause),
    /// Keep the most frequently used ones in the destination.
    Merge,
    /// Keep all of them in the destination.
    Compact,
}

/// A reclaim in progress: the sources it empties (in order, each freed as
/// soon as it is empty), the destination of a merge or compaction, and
/// where it stopped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pass {
    pub(super) kind: PassKind,
    pub(super) run: [u32; MAX_MERGE_RUN],
    pub(super) len: usize,
    /// Merge: how many sources share the destination with a per-source
    /// budget (the rest fill it while it is less than 3/4 full).
    pub(super) n: usize,
    /// Merge and compaction destination (NONE when clearing).
    pub(super) d: u32,
    /// The source being emptied, and the offset of its next item.
    pub(super) i: usize,
    pub(super) off: u32,
    /// Whether the per-source state below is set for source `i`.
    pub(super) started: bool,
    pub(super) budget: usize,
    pub(super) kept: usize,
    pub(super) seen: usize,
    pub(super) live_total: usize,
    pub(super) cutoff: u8,
}
