//! What one store call hands a shard besides the shard itself.

use core::sync::atomic::{AtomicU32, AtomicU64};

use crate::stats::StoreStats;
use crate::Time;

/// Per-call context: the shard's statistics and the store-wide state.
pub(crate) struct Ctx<'g> {
    /// The shard's statistics (written only under the shard lock).
    pub st: &'g StoreStats,
    /// The store-wide cas counter.
    pub cas: &'g AtomicU64,
    /// Items with a smaller cas are flushed.
    pub flush_cas: u64,
    /// The time of the call.
    pub now: Time,
    /// The hash seed.
    pub seed: u64,
    /// Where the shard publishes its segment frontier (segments at and
    /// above it have never been written), read without the lock by
    /// [`Store::frontiers`](super::Store::frontiers).
    pub frontier: &'g AtomicU32,
}
