//! What one store call hands a shard besides the shard itself.

use core::sync::atomic::{AtomicU32, AtomicU64};

use crate::histogram::Histogram;
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
    /// Where eviction steps record how long they held the shard lock, and
    /// the clock (nanoseconds) they read; `None` until
    /// [`Store::set_pause_recorder`](super::Store::set_pause_recorder).
    pub pauses: Option<PauseRecorder<'g>>,
}

/// A histogram of shard-lock holds by eviction work and the clock timing
/// them (monotonic nanoseconds; the store has no clock of its own).
#[derive(Clone, Copy)]
pub struct PauseRecorder<'g> {
    /// Histogram of hold times, nanoseconds.
    pub histogram: &'g Histogram,
    /// Monotonic nanoseconds.
    pub clock: fn() -> u64,
}

impl Ctx<'_> {
    /// The clock now (0 without a recorder), to pass to [`Ctx::pause_end`].
    #[inline]
    pub fn pause_start(&self) -> u64 {
        self.pauses.map_or(0, |p| (p.clock)())
    }

    /// Records the time since `t0` (from [`Ctx::pause_start`]).
    #[inline]
    pub fn pause_end(&self, t0: u64) {
        if let Some(p) = self.pauses {
            p.histogram.record((p.clock)().saturating_sub(t0));
        }
    }
}
