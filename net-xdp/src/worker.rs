//! The poll-mode loop of one RX queue.
//!
//! Frame ownership: each of the queue's UMEM frames is at any time either
//! on this worker's `free` list, or in the kernel's hands (fill ring, RX
//! ring not yet consumed, TX ring until completed), or held by the current
//! round between taking it from one list and giving it to another.
//!
//! ```text
//!   free --fill ring--> kernel --RX ring--> round --TX ring--> kernel --completion ring--> free
//!     ^                                       |  (dropped frames, replies that found no room)
//!     +---------------------------------------+
//! ```
//!
//! A queue starts primed ([`QueueRings::prime`]): every frame but the
//! reserve is on the fill ring before the socket is put in the XSKMAP,
//! so no frame redirected to it finds the fill ring empty while its
//! worker is still starting (the kernel would drop it and count
//! `rx_fill_ring_empty_descs`).
//!
//! One round: reclaim completions, top up the fill ring (keeping a reserve
//! of free frames for multi-datagram replies), take up to [`BATCH`] frames
//! from RX and answer each, push the replies to TX in batches. A round
//! that found nothing is followed by more rounds for up to `idle_spin`
//! (none by default), then the worker sleeps in `poll()` (or spins, with
//! `busy_poll`). With preferred busy polling each spinning round is
//! followed by a non-blocking `recvfrom()` that runs the device's NAPI.
//!
//! Kicks ([`kick_now`]): the kernel is told of TX frames it has not taken
//! yet (a `sendto()`) only when the TX ring's `need_wakeup` flag asks for
//! it (always, in copy mode), and not when the worker is about to sleep in
//! `poll()`, which drives TX itself: a busy period of rounds ends in one
//! `poll()` that sends the last round's replies and then sleeps, instead of
//! a `sendto()` and a `poll()`. A round whose replies were not kicked is
//! followed at once by another; if that one finds requests, everything is
//! kicked after it, so a reply waits at most one round for its kick. In
//! copy mode one `sendto()` or `poll()` sends at most [`KERNEL_TX_BATCH`]
//! frames, so with more than that on the ring the worker kicks and does
//! not sleep until the ring is down to what one `poll()` sends.
//!
//! In echo mode (a diagnostic) the round is the same but each request frame
//! goes back to TX with its addresses swapped instead of through the
//! datagram layer and the engine.

use crate::service::UdpService;
use crate::stats::{KernelSocketStats, QueueStats, RingLevels};
use petrel_clock::{monotonic_ns, UnixSeconds};
use petrel_core::histogram::ClassCounts;
use petrel_core::udp::guard::UdpGuard;
use petrel_core::udp::{DatagramSink, Responder, UdpStats};
use petrel_core::wire::udp::UDP_HEADER_BYTES;
use petrel_core::wire::{
    self, HeaderRule, IpPair, ParseOptions, ReplyTarget, UDP_FRAME_HEADER_BYTES,
};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// Frames taken from the RX ring (and completions reclaimed) per round.
pub const BATCH: usize = 64;
/// How long an idle worker sleeps in `poll()` before it checks for stop.
const IDLE_POLL_MS: i32 = 100;
/// Rounds between refreshes of the kernel's XDP socket statistics (a power of two).
const KERNEL_STATS_ROUNDS: u32 = 4096;

/// What a worker does after the round that just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Another round at once (this one took frames off the RX ring).
    Round,
    /// A spin step (`busy_poll`, `idle_spin`, preferred busy polling).
    Spin,
    /// Sleep in `poll()`, which drives TX (copy mode sends the TX ring,
    /// zero-copy wakes the driver) before it sleeps.
    Sleep,
}

/// Frames the kernel sends per `sendto()` or `poll()` in copy mode
/// (`TX_BATCH_SIZE` of `net/xdp/xsk.c`, the default of its per-socket
/// TX budget).
pub(crate) const KERNEL_TX_BATCH: u32 = 32;

/// Where the worker stands after a round, for [`kick_now`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct KickState {
    /// Frames on the TX ring the kernel has not taken yet.
    pub pending: u32,
    /// The TX ring's `need_wakeup` flag is set.
    pub needs_wakeup: bool,
    /// The socket has preferred busy polling (kick after every round that
    /// produced, as before: the kick is also what runs NAPI).
    pub napi_busy_poll: bool,
    /// The kick was already put off for one round.
    pub deferred: bool,
    /// Frames are waiting on the RX ring (the next round will take them).
    pub rx_waiting: bool,
    pub next: Next,
}

/// Whether to kick TX (`sendto()`) now, after a round. Never when the
/// TX ring holds nothing the kernel has not taken; always with preferred
/// busy polling (the kick also runs NAPI); otherwise never when the kernel
/// needs no wakeup; always before spinning; before sleeping in `poll()`
/// (which drives TX) only when more is pending than one `poll()` sends;
/// before another round when requests are already waiting for it, when
/// the kick was already put off once (a reply waits at most one round for
/// its kick), or when more is pending than one kick sends.
pub(crate) fn kick_now(k: KickState) -> bool {
    if k.pending == 0 {
        return false;
    }
    if k.napi_busy_poll {
        return true;
    }
    if !k.needs_wakeup {
        return false;
    }
    match k.next {
        Next::Sleep => k.pending > KERNEL_TX_BATCH,
        Next::Spin => true,
        Next::Round => k.rx_waiting || k.deferred || k.pending > KERNEL_TX_BATCH,
    }
}

/// Largest request datagram copied out of a frame: a whole 4096-byte frame.
const REQUEST_MAX_BYTES: usize = 4096;

/// Free frames a queue keeps out of its fill ring for multi-datagram
/// replies: a quarter of its UMEM frames.
pub(crate) fn reserve_for(frame_count: usize) -> usize {
    frame_count / 4
}

/// Moves the frames of `free` beyond the first `reserve` onto the fill
/// ring, as many as it has room for; returns how many moved (they are off
/// `free` and the kernel's from then on).
fn fill_from(fill: &mut FillQueue, free: &mut Vec<FrameDesc>, reserve: usize) -> usize {
    let spare = free.len().saturating_sub(reserve);
    if spare == 0 {
        return 0;
    }
    let room = fill.nb_free(spare as u32) as usize;
    let k = room.min(spare);
    if k == 0 {
        return 0;
    }
    let from = free.len() - k;
    // SAFETY: the frames are ours (on the free list) and belong to the
    // UMEM of this fill ring; the ones produced are the kernel's after
    // the call, so they are removed from the free list below.
    let done = unsafe { fill.produce(&free[from..]) };
    // `produce` hands over a prefix of the slice (libxdp: all or none).
    free.drain(from..from + done);
    done
}

/// One queue's UMEM, socket and rings, primed: every frame but the reserve
/// on the fill ring, the rest on the free list. What setup hands to the
/// queue's [`Worker`].
pub(crate) struct QueueRings {
    queue: u32,
    umem: Umem,
    fill: FillQueue,
    comp: CompQueue,
    tx: TxQueue,
    rx: RxQueue,
    /// Slots of the fill ring.
    fill_size: u32,
    frame_count: usize,
    /// Frames owned by user space; capacity `frame_count`.
    free: Vec<FrameDesc>,
    /// Frames given to the fill ring and not yet taken off the RX ring.
    rx_side: usize,
}

impl QueueRings {
    /// Takes a freshly bound socket's rings and every frame of its UMEM
    /// (`frames`), and fills the fill ring with all of them but the
    /// reserve ([`reserve_for`]), waking the kernel if the ring asks for
    /// it. Call before the socket is put in the XSKMAP. Fails if the fill
    /// ring (`fill_size` slots) did not take them all.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prime(
        queue: u32,
        umem: Umem,
        frames: Vec<FrameDesc>,
        mut fill: FillQueue,
        comp: CompQueue,
        tx: TxQueue,
        mut rx: RxQueue,
        fill_size: u32,
    ) -> Result<Self, String> {
        let frame_count = frames.len();
        let reserve = reserve_for(frame_count);
        let mut free = frames;
        let want = frame_count - reserve;
        let rx_side = fill_from(&mut fill, &mut free, reserve);
        if rx_side != want {
            return Err(format!(
                "the fill ring ({fill_size} slots) took {rx_side} of {want} frames"
            ));
        }
        if fill.needs_wakeup() {
            fill.wakeup(rx.fd_mut(), 0)
                .map_err(|e| format!("fill ring wakeup: {e}"))?;
        }
        Ok(QueueRings {
            queue,
            umem,
            fill,
            comp,
            tx,
            rx,
            fill_size,
            frame_count,
            free,
            rx_side,
        })
    }

    /// The RX queue.
    pub(crate) fn queue(&self) -> u32 {
        self.queue
    }

    /// The socket's descriptor (for the XSKMAP and socket options).
    pub(crate) fn socket_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.rx.fd().as_raw_fd()
    }

    /// Frames not on the free list (fill, RX, TX rings).
    pub(crate) fn frames_in_use(&self) -> usize {
        self.frame_count - self.free.len()
    }

    /// Where the frames are, read from the rings (see [`RingLevels`]).
    pub(crate) fn levels(&mut self) -> RingLevels {
        RingLevels {
            queue: self.queue,
            frames: self.frame_count as u32,
            fill: self.fill_size - self.fill.nb_free_exact(),
            rx: self.rx.nb_avail_exact(),
            free: self.free.len() as u32,
            kernel: self
                .rx
                .fd()
                .xdp_statistics()
                .ok()
                .map(KernelSocketStats::from),
        }
    }
}

/// What a worker needs besides its rings.
pub(crate) struct WorkerParams<'s, S: UdpService> {
    pub queue: u32,
    pub stats_index: usize,
    pub stats: Arc<[QueueStats]>,
    pub stop: Arc<AtomicBool>,
    pub service: &'s S,
    pub port: u16,
    pub busy_poll: bool,
    /// Rings polled this long after an empty round before sleeping.
    pub idle_spin: std::time::Duration,
    pub verify_udp_checksum: bool,
    /// The process's UDP amplification guard (shared with the kernel UDP
    /// path); None = no limits.
    pub guard: Option<Arc<UdpGuard>>,
    /// The datagram layer's counters (shared with the kernel UDP path).
    pub udp_stats: Arc<UdpStats>,
    /// Send each datagram back unchanged, addresses swapped, instead of
    /// answering it (see [`crate::XdpConfig::echo`]).
    pub echo: bool,
    /// The socket has the kernel's preferred busy polling: drive NAPI with
    /// a non-blocking `recvfrom()` after empty rounds when about to poll
    /// again, and kick TX after every round that produced replies.
    pub napi_busy_poll: bool,
}

/// One queue's worker: owns the queue's UMEM and rings.
pub(crate) struct Worker<'s, S: UdpService> {
    p: WorkerParams<'s, S>,
    umem: Umem,
    fill: FillQueue,
    comp: CompQueue,
    tx: TxQueue,
    rx: RxQueue,
    frame_count: usize,
    /// Frames owned by user space; capacity `frame_count`, never grows.
    free: Vec<FrameDesc>,
    /// Free frames kept out of the fill ring for multi-datagram replies.
    reserve: usize,
    /// Frames given to the fill ring and not yet taken off the RX ring
    /// (on the fill ring, or received and waiting on the RX ring).
    rx_side: usize,
    rx_descs: Vec<FrameDesc>,
    comp_descs: Vec<FrameDesc>,
    /// Frames on the TX ring not yet completed.
    tx_in_flight: usize,
    /// Slots of the TX ring.
    tx_size: u32,
    /// The kick of frames pending on the TX ring was put off for a round.
    tx_deferred: bool,
    /// Replies ready for the TX ring; capacity `frame_count`.
    tx_pending: Vec<FrameDesc>,
    /// Datagrams of the reply being built; capacity `frame_count`.
    reply: Vec<FrameDesc>,
    /// The request datagram being answered (frame header and text), copied
    /// out of its frame, which the reply overwrites.
    request: Vec<u8>,
    /// Requests of this round answered, by class (for latency).
    completed: ClassCounts,
    /// The engine's clock, from the batch's monotonic read.
    unix_seconds: UnixSeconds,
    parse: ParseOptions,
}

impl<'s, S: UdpService> Worker<'s, S> {
    /// A worker for a primed queue (its fill ring already full).
    pub(crate) fn new(p: WorkerParams<'s, S>, rings: QueueRings) -> Self {
        let QueueRings {
            queue: _,
            umem,
            fill,
            comp,
            tx,
            rx,
            fill_size: _,
            frame_count,
            free,
            rx_side,
        } = rings;
        let parse = ParseOptions {
            verify_ipv4_checksum: true,
            verify_udp_checksum: p.verify_udp_checksum,
            port: Some(p.port),
            header_rule: HeaderRule::Memcached,
        };
        Worker {
            p,
            umem,
            fill,
            comp,
            tx,
            rx,
            frame_count,
            free,
            reserve: reserve_for(frame_count),
            rx_side,
            rx_descs: vec![FrameDesc::default(); BATCH],
            comp_descs: vec![FrameDesc::default(); BATCH],
            tx_in_flight: 0,
            tx_size: frame_count as u32,
            tx_deferred: false,
            tx_pending: Vec::with_capacity(frame_count),
            reply: Vec::with_capacity(frame_count),
            request: vec![0; REQUEST_MAX_BYTES],
            completed: ClassCounts::new(),
            unix_seconds: UnixSeconds::new(),
            parse,
        }
    }

    fn stats(&self) -> &QueueStats {
        &self.p.stats[self.p.stats_index]
    }

    /// The RX queue this worker serves.
    pub(crate) fn queue(&self) -> u32 {
        self.p.queue
    }

    /// Pins the calling thread to `cpu` (a warning if that fails), then
    /// serves the queue until the stop flag is set.
    pub(crate) fn run_pinned(self, cpu: usize) {
        if let Err(e) = crate::iface::pin_current_thread(cpu) {
            log::warn!(
                "AF_XDP queue {}: cannot pin to CPU {cpu}: {e}",
                self.p.queue
            );
        }
        self.run();
    }

    /// Serves the queue until the stop flag is set.
    fn run(mut self) {
        log::debug!("AF_XDP queue {}: worker running", self.p.queue);
        let mut rounds: u32 = 0;
        // When the current run of empty rounds began (spinning before sleep).
        let mut idle_since: Option<Instant> = None;
        while !self.p.stop.load(Relaxed) {
            let got = self.round();
            rounds = rounds.wrapping_add(1);
            if rounds & (KERNEL_STATS_ROUNDS - 1) == 0 {
                self.refresh_kernel_stats();
            }
            let next = if got > 0 {
                idle_since = None;
                Next::Round
            } else if self.p.busy_poll {
                Next::Spin
            } else if self.p.idle_spin.is_zero() {
                Next::Sleep
            } else {
                let now = Instant::now();
                let since = *idle_since.get_or_insert(now);
                if now.duration_since(since) < self.p.idle_spin {
                    Next::Spin
                } else {
                    idle_since = None;
                    Next::Sleep
                }
            };
            let next = self.settle_tx(next);
            match next {
                Next::Round => {}
                Next::Spin => self.spin_once(),
                Next::Sleep => self.idle(),
            }
        }
        self.refresh_kernel_stats();
        if !self.frames_accounted() {
            log::error!(
                "AF_XDP queue {}: frame accounting broken: {} frames, {} free, {} fill/RX, {} TX",
                self.p.queue,
                self.frame_count,
                self.free.len(),
                self.rx_side,
                self.tx_in_flight
            );
        }
        log::debug!("AF_XDP queue {}: worker stopped", self.p.queue);
    }

    /// One round; returns the number of RX frames taken.
    fn round(&mut self) -> usize {
        self.reclaim_completions();
        self.refill();
        // SAFETY: the descriptors are written by the kernel's RX ring of this
        // socket and refer to frames of `self.umem`, now owned by us.
        let n = unsafe { self.rx.consume(&mut self.rx_descs) };
        self.rx_side -= n;
        if n > 0 {
            self.answer_batch(n);
        }
        self.stats()
            .counters
            .frames_in_use
            .set((self.frame_count - self.free.len()) as u64);
        debug_assert!(self.frames_accounted());
        n
    }

    /// Frames on the TX ring the kernel has not taken yet.
    fn tx_pending_in_ring(&mut self) -> u32 {
        if self.tx_in_flight == 0 {
            return 0;
        }
        self.tx_size.saturating_sub(self.tx.nb_free_exact())
    }

    /// Kicks TX or puts the kick off, as [`kick_now`] says for `next`;
    /// returns what to do next: `next`, or another round instead of a
    /// sleep when more is still pending than the `poll()` would send.
    fn settle_tx(&mut self, next: Next) -> Next {
        let pending = self.tx_pending_in_ring();
        if pending == 0 {
            self.tx_deferred = false;
            return next;
        }
        let k = KickState {
            pending,
            needs_wakeup: self.tx.needs_wakeup(),
            napi_busy_poll: self.p.napi_busy_poll,
            deferred: self.tx_deferred,
            rx_waiting: next == Next::Round && self.rx.nb_avail(1) > 0,
            next,
        };
        if !kick_now(k) {
            match next {
                Next::Sleep if k.needs_wakeup => {
                    self.stats().counters.tx_kicks_by_poll.incr_owned();
                }
                Next::Round => self.tx_deferred = true,
                _ => {}
            }
            return next;
        }
        self.kick_tx();
        if next == Next::Sleep && self.tx_pending_in_ring() > KERNEL_TX_BATCH {
            // The poll() would leave frames on the ring while it sleeps.
            return Next::Round;
        }
        next
    }

    /// Answers the `n` frames taken into `rx_descs` and puts the replies on
    /// the TX ring.
    fn answer_batch(&mut self, n: usize) {
        // One clock read per batch: the requests are complete from here on
        // (the latency's start), and the engine's Unix seconds and the UDP
        // guard's milliseconds come from it.
        let batch_ns = monotonic_ns();
        let now = self.unix_seconds.at(batch_ns);
        let now_ms = batch_ns / 1_000_000;
        let c = &self.stats().counters;
        c.rx_frames.add_owned(n as u64);
        c.rx_batches.incr_owned();
        if n == self.rx_descs.len() {
            c.rx_batches_full.incr_owned();
        }
        let (mut read, mut written) = (0u64, 0u64);
        for i in 0..n {
            let desc = self.rx_descs[i];
            let (r, w) = self.answer(desc, now, now_ms);
            read += r as u64;
            written += w as u64;
        }
        self.flush_tx();
        self.p.service.count_bytes(read, written);
        if !self.completed.is_empty() {
            let ns = monotonic_ns().saturating_sub(batch_ns);
            let done = self.completed.take();
            self.stats().latency.record_owned(&done, ns);
        }
    }

    /// Between rounds every UMEM frame is in exactly one place: the free
    /// list, the fill or RX ring, or the TX ring (until completed).
    fn frames_accounted(&self) -> bool {
        self.free.len() + self.rx_side + self.tx_in_flight == self.frame_count
    }

    /// Between two rounds that will follow each other at once (spinning):
    /// with preferred busy polling a non-blocking `recvfrom()`, which runs
    /// the device's NAPI on this CPU; otherwise a `poll(0)` when the fill
    /// ring asks for a wakeup, else nothing but a spin hint.
    fn spin_once(&mut self) {
        if self.p.napi_busy_poll {
            self.stats().counters.napi_busy_polls.incr_owned();
            let fd = self.rx.fd().as_raw_fd();
            // SAFETY: `fd` is this worker's open AF_XDP socket; a zero-length
            // receive with null buffers and address is what the kernel
            // documents for driving busy polling on it.
            unsafe {
                libc::recvfrom(
                    fd,
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
        } else if self.fill.needs_wakeup() {
            self.stats().counters.rx_wakeups.incr_owned();
            let _ = self.rx.poll(0);
        } else {
            std::hint::spin_loop();
        }
    }

    /// Sleeps in `poll()` until frames arrive (with preferred busy polling
    /// the kernel first polls the device for up to the socket's
    /// `SO_BUSY_POLL` microseconds).
    fn idle(&mut self) {
        self.stats().counters.rx_wakeups.incr_owned();
        // poll() drives TX before it sleeps: the pending frames go now.
        self.tx_deferred = false;
        if let Ok(false) = self.rx.poll(IDLE_POLL_MS) {
            // Idle for a while: a good moment for the statistics call.
            self.refresh_kernel_stats();
        }
    }

    fn reclaim_completions(&mut self) {
        loop {
            // SAFETY: completed descriptors refer to TX frames of this UMEM
            // that the kernel has finished with.
            let n = unsafe { self.comp.consume(&mut self.comp_descs) };
            if n == 0 {
                return;
            }
            self.stats().counters.tx_completed.add_owned(n as u64);
            self.tx_in_flight -= n;
            self.free.extend_from_slice(&self.comp_descs[..n]);
            if n < self.comp_descs.len() {
                return;
            }
        }
    }

    fn refill(&mut self) {
        if self.free.len() < self.reserve {
            self.stats().counters.frames_short.incr_owned();
        }
        self.rx_side += fill_from(&mut self.fill, &mut self.free, self.reserve);
    }

    /// Answers the request in `desc` (or drops it, counting why) through
    /// the core's datagram layer. Consumes the frame: it ends on the TX list
    /// (the reply's first datagram is built in it) or back on the free list.
    /// Returns the bytes memcached would count for it: the request's UDP
    /// payload when longer than the 8-byte frame header (else 0), and the
    /// UDP payloads of the reply datagrams queued for TX.
    fn answer(&mut self, mut desc: FrameDesc, now: u32, now_ms: u64) -> (usize, usize) {
        let rx_len = desc.lengths().data();
        // SAFETY: `desc` came off the RX ring, so the frame is ours alone
        // until we hand it back; no other reference to it exists.
        let buf = unsafe { frame_mut(&self.umem, &mut desc) };
        let rx_len = rx_len.min(buf.len());
        let req = match wire::parse_datagram_frame(&buf[..rx_len], &self.parse) {
            Ok(req) => req,
            Err(e) => {
                self.stats().drop_for(e);
                self.free.push(desc);
                return (0, 0);
            }
        };
        self.stats().counters.rx_requests.incr_owned();
        if self.p.echo {
            echo_in_place(buf, &req);
            set_len(&self.umem, &mut desc, rx_len);
            if self.tx_pending.len() == self.tx_pending.capacity() {
                self.flush_tx();
            }
            self.tx_pending.push(desc);
            return (0, 0);
        }
        let len = req.datagram_len;
        let read = if len > UDP_FRAME_HEADER_BYTES { len } else { 0 };
        if len > self.request.len() {
            self.stats().drop_for(wire::Error::BufferTooSmall);
            self.free.push(desc);
            return (read, 0);
        }
        self.request[..len].copy_from_slice(req.datagram(buf));
        let responder = Responder::new(
            self.p.guard.as_deref(),
            &self.p.udp_stats,
            HeaderRule::Memcached,
        );
        let service = self.p.service;
        let mut session = service.udp_session();
        self.reply.clear();
        let mut sink = FrameSink {
            umem: &self.umem,
            free: &mut self.free,
            current: Some(desc),
            reply: &mut self.reply,
        };
        let result = responder.answer(
            client_ip(&req.reply.ips),
            &self.request[..len],
            ReplyTarget::Frame(req.reply),
            now_ms,
            &mut sink,
            |input, out| service.process_udp(&mut session, input, out, now),
        );
        if let Some(unused) = sink.current.take() {
            self.free.push(unused);
        }
        // Drops were counted by the datagram layer (or its guard).
        if result.is_ok() {
            self.completed.merge(&service.take_completed(&mut session));
        }
        // The reply's datagrams, or the one over-cap error datagram.
        let udp_len_at = req.reply.headers_len() - UDP_FRAME_HEADER_BYTES - UDP_HEADER_BYTES + 4;
        let mut written = 0;
        for i in 0..self.reply.len() {
            if self.tx_pending.len() == self.tx_pending.capacity() {
                self.flush_tx();
            }
            let mut d = self.reply[i];
            // SAFETY: the reply's frames are ours until pushed to TX; the
            // copy keeps the kept descriptor's length.
            let frame = unsafe { frame_mut(&self.umem, &mut d) };
            // The UDP header's length field, less the UDP header: exact
            // whatever padding the frame carries.
            written += usize::from(u16::from_be_bytes([
                frame[udp_len_at],
                frame[udp_len_at + 1],
            ]))
            .saturating_sub(UDP_HEADER_BYTES);
            self.tx_pending.push(self.reply[i]);
        }
        self.reply.clear();
        (read, written)
    }

    /// Puts pending replies on the TX ring (kicking the kernel only if the
    /// ring is full; the round's kick is [`Worker::settle_tx`]'s).
    fn flush_tx(&mut self) {
        let mut at = 0;
        let mut retried = false;
        while at < self.tx_pending.len() {
            let want = self.tx_pending.len() - at;
            let room = (self.tx.nb_free(want as u32) as usize).min(want);
            // SAFETY: the frames are ours, belong to this UMEM and carry
            // their final lengths; they are the kernel's after the produce.
            let done = if room > 0 {
                unsafe { self.tx.produce(&self.tx_pending[at..at + room]) }
            } else {
                0
            };
            at += done;
            self.tx_in_flight += done;
            self.stats().counters.tx_frames.add_owned(done as u64);
            if done < want {
                if retried {
                    let left = self.tx_pending.len() - at;
                    self.stats().counters.tx_ring_full.add_owned(left as u64);
                    self.free.extend_from_slice(&self.tx_pending[at..]);
                    break;
                }
                // Ring full: let the kernel send and complete, then retry once.
                self.kick_tx();
                self.reclaim_completions();
                retried = true;
            }
        }
        self.tx_pending.clear();
    }

    fn kick_tx(&mut self) {
        self.tx_deferred = false;
        self.stats().counters.tx_wakeups.incr_owned();
        if let Err(e) = self.tx.wakeup() {
            log::debug!("AF_XDP queue {}: TX wakeup: {e}", self.p.queue);
        }
    }

    fn refresh_kernel_stats(&self) {
        if let Ok(k) = self.rx.fd().xdp_statistics() {
            let c = &self.stats().counters;
            c.kernel_rx_dropped.set(k.rx_dropped());
            c.kernel_rx_invalid.set(k.rx_invalid_descs());
            c.kernel_rx_ring_full.set(k.rx_ring_full());
            c.kernel_fill_ring_empty.set(k.rx_fill_ring_empty_descs());
            c.kernel_tx_invalid.set(k.tx_invalid_descs());
            c.kernel_tx_ring_empty.set(k.tx_ring_empty_descs());
        }
    }
}

/// The whole data area of frame `desc` (from its start to the end of the
/// UMEM frame), whatever its current length. The descriptor's length is
/// left at the full capacity; set it with [`set_len`] before transmitting.
///
/// # Safety
/// `desc` must be a frame of `umem` owned by user space (on no ring), with
/// no other live reference to its memory while the slice is used.
// The UMEM is memory shared by design; exclusive access to one frame comes
// from owning its descriptor (see Safety), not from a `&mut Umem`.
#[allow(clippy::mut_from_ref)]
unsafe fn frame_mut<'a>(umem: &'a Umem, desc: &mut FrameDesc) -> &'a mut [u8] {
    // SAFETY: per this function's contract.
    let mut data = unsafe { umem.data_mut(desc) };
    let mut cursor = data.cursor();
    let cap = cursor.buf_len();
    cursor.set_pos(cap);
    let s = data.contents_mut();
    // SAFETY: the slice is the frame's data area inside the UMEM mapping,
    // which `umem` keeps alive for 'a; exclusivity is the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr(), s.len()) }
}

/// Turns the request frame in `buf` into its echo: Ethernet, IP and UDP
/// source and destination swapped, everything else unchanged. The IPv4 and
/// UDP checksums stay valid (a one's-complement sum does not depend on the
/// order of its words), so the echo is correct when the request's were;
/// veth's TX offload leaves partial UDP checksums, which the sender must
/// turn off (`ethtool -K IF tx off`, as `scripts/netns` does).
fn echo_in_place(buf: &mut [u8], req: &wire::DatagramFrame) {
    let r = &req.reply;
    let l4 = req.datagram_offset - wire::udp::UDP_HEADER_BYTES;
    buf[0..6].copy_from_slice(&r.eth_dst.0);
    buf[6..12].copy_from_slice(&r.eth_src.0);
    match &r.ips {
        IpPair::V4 { src, dst } => {
            buf[26..30].copy_from_slice(&src.0);
            buf[30..34].copy_from_slice(&dst.0);
        }
        IpPair::V6 { src, dst } => {
            buf[22..38].copy_from_slice(&src.0);
            buf[38..54].copy_from_slice(&dst.0);
        }
    }
    buf[l4..l4 + 2].copy_from_slice(&r.src_port.to_be_bytes());
    buf[l4 + 2..l4 + 4].copy_from_slice(&r.dst_port.to_be_bytes());
}

/// Sets the length that will be transmitted for frame `desc`.
fn set_len(umem: &Umem, desc: &mut FrameDesc, len: usize) {
    // SAFETY: only the descriptor's length is changed; no frame bytes are
    // touched.
    let mut data = unsafe { umem.data_mut(desc) };
    data.cursor().set_pos(len);
}

/// The client of a request: the destination of its reply.
fn client_ip(ips: &IpPair) -> std::net::IpAddr {
    match ips {
        IpPair::V4 { dst, .. } => std::net::IpAddr::from(dst.0),
        IpPair::V6 { dst, .. } => std::net::IpAddr::from(dst.0),
    }
}

/// The UMEM frames of one reply, lent to the datagram layer: the request's
/// own frame first (the reply is built in place), then frames off the free
/// list.
struct FrameSink<'w> {
    umem: &'w Umem,
    free: &'w mut Vec<FrameDesc>,
    /// The frame handed out last and not kept (the RX frame at first).
    current: Option<FrameDesc>,
    /// The reply's datagrams so far.
    reply: &'w mut Vec<FrameDesc>,
}

impl DatagramSink for FrameSink<'_> {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        if self.current.is_none() {
            self.current = Some(self.free.pop()?);
        }
        let d = self.current.as_mut()?;
        // SAFETY: `d` is the RX frame of this request or came off the free
        // list: ours alone; the slice is used before the next call.
        Some(unsafe { frame_mut(self.umem, d) })
    }

    fn keep(&mut self, len: usize) {
        if let Some(mut d) = self.current.take() {
            set_len(self.umem, &mut d, len);
            self.reply.push(d);
        }
    }

    fn kept(&mut self, i: usize) -> Option<&mut [u8]> {
        // A copy: `frame_mut` resets the length of the descriptor it is
        // given, and the kept one carries the length to transmit.
        let mut d = *self.reply.get(i)?;
        // SAFETY: the reply's frames are ours until pushed to TX.
        Some(unsafe { frame_mut(self.umem, &mut d) })
    }

    fn discard(&mut self) {
        self.free.append(self.reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pending: u32, next: Next) -> KickState {
        KickState {
            pending,
            needs_wakeup: true,
            napi_busy_poll: false,
            deferred: false,
            rx_waiting: false,
            next,
        }
    }

    #[test]
    fn nothing_pending_is_never_kicked() {
        for next in [Next::Round, Next::Spin, Next::Sleep] {
            let mut k = state(0, next);
            k.napi_busy_poll = true;
            k.deferred = true;
            k.rx_waiting = true;
            assert!(!kick_now(k), "{next:?}");
        }
    }

    #[test]
    fn a_sleep_in_poll_sends_what_fits_in_one_kernel_batch() {
        assert!(!kick_now(state(1, Next::Sleep)));
        assert!(!kick_now(state(KERNEL_TX_BATCH, Next::Sleep)));
        assert!(kick_now(state(KERNEL_TX_BATCH + 1, Next::Sleep)));
    }

    #[test]
    fn the_kick_before_another_round_is_put_off_once() {
        let k = state(3, Next::Round);
        assert!(!kick_now(k), "first round: put off");
        assert!(
            kick_now(KickState {
                deferred: true,
                ..k
            }),
            "second: kicked"
        );
        assert!(
            kick_now(KickState {
                rx_waiting: true,
                ..k
            }),
            "requests already waiting: kicked before answering them"
        );
        assert!(kick_now(state(KERNEL_TX_BATCH + 1, Next::Round)));
    }

    #[test]
    fn spinning_kicks_at_once() {
        assert!(kick_now(state(1, Next::Spin)));
    }

    #[test]
    fn no_wakeup_needed_means_no_kick_except_for_busy_polling() {
        for next in [Next::Round, Next::Spin, Next::Sleep] {
            let mut k = state(KERNEL_TX_BATCH + 5, next);
            k.needs_wakeup = false;
            k.deferred = true;
            assert!(!kick_now(k), "{next:?}");
            k.napi_busy_poll = true;
            assert!(kick_now(k), "{next:?}: busy polling kicks to run NAPI");
        }
    }
}
