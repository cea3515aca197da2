//! Per-queue figures of the AF_XDP front end: relaxed atomics written only
//! by the queue's worker (single writer, so the cheap `*_owned` updates are
//! used), read by anyone, never allocating.

use petrel_core::histogram::LatencyStats;
use petrel_core::stats::Metric;
use petrel_core::wire::Error as WireError;

/// Number of drop reasons tracked: one per `core::wire::Error` variant.
pub const DROP_REASONS: usize = WireError::ALL.len();

petrel_core::metrics! {
    /// Counters and gauges of one RX/TX queue pair.
    pub struct XdpCounters {
        rx_frames: Counter("frames") "frames taken from the RX ring",
        rx_requests: Counter("datagrams") "request datagrams handed to the datagram layer (frame header, UDP guard, engine; its drops are the udp_* counters)",
        tx_frames: Counter("frames") "reply frames placed on the TX ring",
        tx_completed: Counter("frames") "TX frames the kernel completed",
        tx_ring_full: Counter("datagrams") "reply datagrams dropped because the TX ring stayed full",
        frames_short: Counter("rounds") "rounds that began with fewer free frames than the reserve kept for multi-datagram replies",
        tx_wakeups: Counter("syscalls") "sendto() kicks: frames were on the TX ring and it asked for a wakeup, or it was full",
        tx_kicks_by_poll: Counter("rounds") "TX kicks left to the poll() the worker went to sleep in (poll() sends the TX ring): a sendto() saved each",
        rx_wakeups: Counter("syscalls") "poll() calls: sleeping when idle, or waking the kernel when busy polling",
        rx_batches: Counter("rounds") "rounds that took frames off the RX ring (rx_frames / rx_batches is the average batch)",
        rx_batches_full: Counter("rounds") "rounds that took a full batch (64 frames) off the RX ring",
        napi_busy_polls: Counter("syscalls") "non-blocking recvfrom() calls that drive the device's NAPI (preferred busy polling)",
        frames_in_use: Gauge("frames") "UMEM frames not on the worker's free list (fill, RX, TX rings)",
        kernel_rx_dropped: Counter("frames") "kernel XDP statistics: frames dropped for other reasons",
        kernel_rx_invalid: Counter("descriptors") "kernel XDP statistics: invalid RX descriptors",
        kernel_rx_ring_full: Counter("frames") "kernel XDP statistics: frames dropped because the RX ring was full",
        kernel_fill_ring_empty: Counter("occurrences") "kernel XDP statistics: times the fill ring was found empty",
        kernel_tx_invalid: Counter("descriptors") "kernel XDP statistics: invalid TX descriptors",
        kernel_tx_ring_empty: Counter("occurrences") "kernel XDP statistics: times the TX ring was found empty",
    }
}

/// Everything counted for one queue.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct QueueStats {
    /// Named counters and gauges.
    pub counters: XdpCounters,
    /// Frames dropped before the datagram layer, by `core::wire` error (see
    /// [`QueueStats::drops_for`]): among them bad IPv4 header checksums
    /// (`bad_ip_checksum`) and bad UDP checksums when verified
    /// (`bad_udp_checksum`). Request datagrams the datagram layer drops
    /// (frame header, reply too large) are counted in
    /// `petrel_core::udp::UdpStats`, shared with the kernel UDP path.
    drops: [Metric; DROP_REASONS],
    /// Request latency by command class, in nanoseconds: from the round's
    /// RX batch to its replies' push onto the TX ring (single writer).
    pub latency: LatencyStats,
}

impl QueueStats {
    /// Counts one frame dropped for `reason` (single writer: the worker).
    #[inline]
    pub fn drop_for(&self, reason: WireError) {
        if let Some(c) = self.drops.get(reason.index()) {
            c.incr_owned();
        }
    }

    /// Frames dropped for `reason` so far.
    pub fn drops_for(&self, reason: WireError) -> u64 {
        self.drops.get(reason.index()).map_or(0, Metric::get)
    }

    /// Calls `f(reason_name, value)` for every drop reason, in
    /// `wire::Error::ALL` order.
    pub fn for_each_drop(&self, mut f: impl FnMut(&'static str, u64)) {
        for e in WireError::ALL {
            f(e.name(), self.drops_for(e));
        }
    }

    /// Frames dropped, all reasons together.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(Metric::get).sum()
    }
}

/// The kernel's statistics of one AF_XDP socket (`XDP_STATISTICS`), read
/// at one moment: every field of `struct xdp_statistics`. The worker keeps
/// all six in [`XdpCounters`] as well (`kernel_*`, refreshed now and then).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelSocketStats {
    /// Frames dropped for other reasons than those below.
    pub rx_dropped: u64,
    /// Frames dropped because of an invalid fill-ring descriptor.
    pub rx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Frames that found the fill ring empty (dropped: no frame to receive into).
    pub rx_fill_ring_empty_descs: u64,
    /// Invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Times the kernel found the TX ring empty when asked to send.
    pub tx_ring_empty_descs: u64,
}

impl From<xsk_rs::socket::XdpStatistics> for KernelSocketStats {
    fn from(k: xsk_rs::socket::XdpStatistics) -> Self {
        KernelSocketStats {
            rx_dropped: k.rx_dropped(),
            rx_invalid_descs: k.rx_invalid_descs(),
            rx_ring_full: k.rx_ring_full(),
            rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs(),
            tx_invalid_descs: k.tx_invalid_descs(),
            tx_ring_empty_descs: k.tx_ring_empty_descs(),
        }
    }
}

/// Where one queue's UMEM frames are, read from the rings themselves (the
/// shared producer and consumer positions), not from the worker's own
/// bookkeeping: what [`XdpAttachment::ring_levels`] reports before the
/// workers start.
///
/// The kernel publishes its consumption of the fill ring lazily, so once
/// frames have arrived `fill` can count some that are already on the RX
/// ring; with no traffic yet, `fill + rx + free == frames` exactly.
///
/// [`XdpAttachment::ring_levels`]: crate::XdpAttachment::ring_levels
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLevels {
    /// The RX queue.
    pub queue: u32,
    /// UMEM frames of the queue.
    pub frames: u32,
    /// Frames on the fill ring: the kernel's to receive into.
    pub fill: u32,
    /// Received frames waiting on the RX ring for the worker.
    pub rx: u32,
    /// Frames on the free list (the reserve for multi-datagram replies).
    pub free: u32,
    /// The socket's kernel statistics (None if the call failed).
    pub kernel: Option<KernelSocketStats>,
}

/// A reader's handle on every served queue's [`QueueStats`], cheap to
/// clone, valid for as long as it is held (also after the front end
/// stopped): what a server keeps to print the figures in `stats` or export
/// them elsewhere.
#[derive(Debug, Clone)]
pub struct XdpStats(pub(crate) std::sync::Arc<[QueueStats]>);

impl XdpStats {
    /// Per-queue counters, in the order of `XdpFrontend::queues`.
    pub fn queues(&self) -> &[QueueStats] {
        &self.0
    }

    /// Calls `f(name, description, kind, value)` for every counter and
    /// gauge summed over all queues, always the same names in the same
    /// order. Never allocates.
    pub fn for_each_total(
        &self,
        f: impl FnMut(&'static str, &'static str, petrel_core::stats::Kind, u64),
    ) {
        let total = XdpCounters::new();
        total.assign_sum(self.0.iter().map(|s| &s.counters));
        total.for_each(f);
    }

    /// Calls `f(reason, frames)` for every drop reason
    /// (`wire::Error::name`), summed over all queues, always in
    /// `wire::Error::ALL` order.
    pub fn for_each_drop_total(&self, mut f: impl FnMut(&'static str, u64)) {
        for reason in WireError::ALL {
            f(
                reason.name(),
                self.0.iter().map(|s| s.drops_for(reason)).sum(),
            );
        }
    }
}

/// `name=value` for every non-zero counter, then `drop_reason=value` for
/// every non-zero drop reason, separated by spaces (for logs and tools).
impl std::fmt::Display for QueueStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut result = Ok(());
        let mut sep = "";
        self.counters.for_each(|name, _, _, v| {
            if v != 0 && result.is_ok() {
                result = write!(f, "{sep}{name}={v}");
                sep = " ";
            }
        });
        self.for_each_drop(|name, v| {
            if v != 0 && result.is_ok() {
                result = write!(f, "{sep}drop_{name}={v}");
                sep = " ";
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_name_and_by_reason() {
        let s = QueueStats::default();
        s.counters.rx_frames.incr_owned();
        s.counters.tx_frames.add_owned(3);
        s.drop_for(WireError::Truncated);
        s.drop_for(WireError::Truncated);
        s.drop_for(WireError::TooManyDatagrams);
        let mut seen = Vec::new();
        s.counters.for_each(|n, _, _, v| seen.push((n, v)));
        assert_eq!(seen.len(), XdpCounters::LEN);
        assert!(seen.contains(&("rx_frames", 1)));
        assert!(seen.contains(&("tx_frames", 3)));
        assert_eq!(s.drops_for(WireError::Truncated), 2);
        assert_eq!(s.drops_for(WireError::TooManyDatagrams), 1);
        assert_eq!(s.drops_for(WireError::NotUdp), 0);
        assert_eq!(s.drops_total(), 3);
        let mut names = Vec::new();
        s.for_each_drop(|n, v| names.push((n, v)));
        assert_eq!(names.len(), DROP_REASONS);
        assert!(names.contains(&("truncated", 2)));
        assert_eq!(
            s.to_string(),
            "rx_frames=1 tx_frames=3 drop_truncated=2 drop_too_many_datagrams=1"
        );
        assert_eq!(QueueStats::default().to_string(), "");
    }

    /// Every field of `struct xdp_statistics` has its `kernel_*` counter
    /// (the kernel's figures only grow while the socket lives), in the
    /// kernel's order, with the unit of what it counts.
    #[test]
    fn all_six_kernel_statistics_are_exported() {
        let kernel: Vec<(&str, &str)> = XdpCounters::DESCS
            .iter()
            .filter(|d| d.name.starts_with("kernel_"))
            .map(|d| (d.name, d.unit))
            .collect();
        assert_eq!(
            kernel,
            [
                ("kernel_rx_dropped", "frames"),
                ("kernel_rx_invalid", "descriptors"),
                ("kernel_rx_ring_full", "frames"),
                ("kernel_fill_ring_empty", "occurrences"),
                ("kernel_tx_invalid", "descriptors"),
                ("kernel_tx_ring_empty", "occurrences"),
            ]
        );
        for d in XdpCounters::DESCS
            .iter()
            .filter(|d| d.name.starts_with("kernel_"))
        {
            assert_eq!(d.kind, petrel_core::stats::Kind::Counter, "{}", d.name);
            assert!(
                d.description.starts_with("kernel XDP statistics: "),
                "{}",
                d.name
            );
        }
    }
}
