//! Setting up and tearing down the AF_XDP front end: XDP program, link,
//! XSKMAP, one UMEM and socket per served queue, one pinned worker each.
//!
//! A socket goes into the XSKMAP (from then on the program redirects its
//! queue's frames to it) only once it is complete: bound, its fill ring
//! full ([`QueueRings::prime`]), its socket options set. Frames that
//! arrive before its worker runs wait on its RX ring instead of being
//! dropped for want of a fill-ring frame.

use crate::bpf::{program, sys};
use crate::config::{ResolvedMode, XdpConfig, XdpError};
use crate::iface;
use crate::service::UdpService;
use crate::stats::{QueueStats, RingLevels, XdpStats};
use crate::worker::{QueueRings, Worker, WorkerParams};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{Socket, Umem};

/// `SO_BUSY_POLL`: microseconds to busy-poll the device in blocking calls.
const SO_BUSY_POLL: libc::c_int = 46;
/// `SO_PREFER_BUSY_POLL`: prefer busy polling over interrupts.
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
/// `SO_BUSY_POLL_BUDGET`: packets per busy-poll round.
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// The running AF_XDP front end. Dropping it (or [`XdpFrontend::stop`])
/// stops and joins every worker, then detaches the XDP program.
#[derive(Debug)]
pub struct XdpFrontend {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    stats: Arc<[QueueStats]>,
    queues: Vec<u32>,
    unserved: Vec<u32>,
    mode: ResolvedMode,
    // Field order is drop order: the link (program detached) goes before
    // the program and map fds.
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
}

/// What [`XdpFrontend::attach`] hands to the worker spawner.
struct PendingWorker {
    parts: QueueRings,
    stats_index: usize,
    cpu: usize,
}

/// The front end attached (program, link, sockets) but not yet serving:
/// what [`XdpFrontend::attach`] returns, so that a caller learns of any
/// setup error (no permission, no AF_XDP, no such interface) before it
/// hands over anything. Dropping it detaches everything.
#[derive(Debug)]
pub struct XdpAttachment {
    frontend: XdpFrontend,
    workers: Vec<PendingWorker>,
    cfg: XdpConfig,
}

impl std::fmt::Debug for PendingWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PendingWorker(queue {}, cpu {})",
            self.parts.queue(),
            self.cpu
        )
    }
}

impl XdpAttachment {
    /// The front end to be: mode, queues, (zero) counters.
    pub fn frontend(&self) -> &XdpFrontend {
        &self.frontend
    }

    /// Where each served queue's frames are now, read from its rings, in
    /// the order of [`XdpFrontend::queues`]. Before the workers start,
    /// every frame but the reserve is on the fill ring, so frames that
    /// arrive meanwhile wait on the RX ring (`rx`) and none is dropped for
    /// an empty fill ring (`kernel.rx_fill_ring_empty_descs`).
    pub fn ring_levels(&mut self) -> Vec<RingLevels> {
        self.workers.iter_mut().map(|w| w.parts.levels()).collect()
    }

    /// Starts one worker thread per served queue, each answering
    /// memcache-over-UDP requests to the port with `service` (the core
    /// engine), and returns the running front end.
    pub fn start<S: UdpService>(self, service: &'static S) -> Result<XdpFrontend, XdpError> {
        let XdpAttachment {
            mut frontend,
            workers,
            cfg,
        } = self;
        for w in workers {
            let worker = frontend.worker(&cfg, service, w.parts, w.stats_index);
            let cpu = w.cpu;
            let handle = std::thread::Builder::new()
                .name(format!("petrel-xdp-q{}", worker.queue()))
                .spawn(move || worker.run_pinned(cpu))
                .map_err(|e| XdpError::Setup(format!("spawning a worker: {e}")))?;
            frontend.workers.push(handle);
        }
        Ok(frontend)
    }

    /// Like [`XdpAttachment::start`], for a borrowed service: the workers
    /// run in a thread scope while `while_running` runs (e.g. the
    /// kernel-socket front ends' event loop), and are stopped and joined,
    /// and the program detached, when it returns (or unwinds). Returns what
    /// `while_running` returned.
    pub fn serve<S: UdpService, R>(
        self,
        service: &S,
        while_running: impl FnOnce(&XdpFrontend) -> R,
    ) -> Result<R, XdpError> {
        let XdpAttachment {
            frontend,
            workers,
            cfg,
        } = self;
        std::thread::scope(|scope| {
            // However the scope is left (return, error, unwinding), the
            // workers are told to stop before the scope joins them.
            let _stop = StopOnDrop(&frontend.stop);
            for w in workers {
                let worker = frontend.worker(&cfg, service, w.parts, w.stats_index);
                let cpu = w.cpu;
                std::thread::Builder::new()
                    .name(format!("petrel-xdp-q{}", worker.queue()))
                    .spawn_scoped(scope, move || worker.run_pinned(cpu))
                    .map_err(|e| XdpError::Setup(format!("spawning a worker: {e}")))?;
            }
            Ok(while_running(&frontend))
        })
    }
}

impl XdpFrontend {
    /// [`XdpFrontend::attach`] then [`XdpAttachment::start`].
    pub fn start<S: UdpService>(cfg: XdpConfig, service: &'static S) -> Result<Self, XdpError> {
        Self::attach(cfg)?.start(service)
    }

    /// [`XdpFrontend::attach`] then [`XdpAttachment::serve`].
    pub fn serve<S: UdpService, R>(
        cfg: XdpConfig,
        service: &S,
        while_running: impl FnOnce(&XdpFrontend) -> R,
    ) -> Result<R, XdpError> {
        Self::attach(cfg)?.serve(service, while_running)
    }

    fn worker<'s, S: UdpService>(
        &self,
        cfg: &XdpConfig,
        service: &'s S,
        p: QueueRings,
        stats_index: usize,
    ) -> Worker<'s, S> {
        let params = WorkerParams {
            queue: p.queue(),
            stats_index,
            stats: self.stats.clone(),
            stop: self.stop.clone(),
            service,
            port: cfg.port,
            busy_poll: cfg.busy_poll,
            idle_spin: std::time::Duration::from_micros(u64::from(cfg.idle_spin_micros)),
            verify_udp_checksum: cfg.verify_udp_checksum,
            guard: cfg.udp_guard.clone(),
            udp_stats: cfg.udp_stats.clone(),
            echo: cfg.echo,
            napi_busy_poll: cfg.prefer_busy_poll_micros > 0,
        };
        Worker::new(params, p)
    }

    /// Checks `cfg`, loads the XDP program and attaches it to
    /// `cfg.interface`, and opens a socket on every served queue: everything
    /// but the worker threads. Tries the modes `cfg.mode` allows in order and
    /// logs the one that took; on error nothing stays attached.
    pub fn attach(cfg: XdpConfig) -> Result<XdpAttachment, XdpError> {
        if !cfg.frame_size.is_power_of_two() || !(2048..=4096).contains(&cfg.frame_size) {
            return Err(XdpError::Config("frame_size must be 2048 or 4096"));
        }
        if !cfg.frame_count.is_power_of_two() || !(64..=1 << 20).contains(&cfg.frame_count) {
            return Err(XdpError::Config(
                "frame_count must be a power of two in 64..=1048576",
            ));
        }
        let ifindex = iface::ifindex(&cfg.interface)
            .map_err(|e| XdpError::NoInterface(cfg.interface.clone(), e))?;
        let queue_count = iface::rx_queue_count(&cfg.interface)
            .map_err(|e| XdpError::NoInterface(cfg.interface.clone(), e))?
            .max(1);
        let queues: Vec<u32> = match &cfg.queues {
            Some(q) if q.is_empty() => return Err(XdpError::Config("no queue to serve")),
            Some(q) if q.iter().any(|&q| q >= queue_count) => {
                return Err(XdpError::Config(
                    "a queue id is beyond the interface's RX queues",
                ))
            }
            Some(q) => q.clone(),
            None => (0..queue_count).collect(),
        };
        let unserved: Vec<u32> = (0..queue_count).filter(|q| !queues.contains(q)).collect();

        let map =
            sys::create_xskmap(queue_count).map_err(|e| XdpError::from_os(e, XdpError::Map))?;
        let insns = program::udp_port_filter(cfg.port, map.as_raw_fd());
        let prog = sys::load_xdp_program(&insns, "petrel_xdp").map_err(|e| {
            XdpError::from_os(e.error, |err| XdpError::ProgramLoad(err, e.verifier_log))
        })?;

        let mut tried = Vec::new();
        let mut chosen = None;
        for mode in cfg.mode.candidates() {
            match setup_mode(&cfg, mode, ifindex, &queues, &prog, &map) {
                Ok(done) => {
                    chosen = Some((mode, done));
                    break;
                }
                Err(SetupError::Fatal(e)) => return Err(e),
                Err(SetupError::Mode(e)) => {
                    log::info!("AF_XDP on {}: {mode} not available: {e}", cfg.interface);
                    tried.push((mode, e));
                }
            }
        }
        let Some((mode, (link, parts))) = chosen else {
            return Err(XdpError::NoMode(tried));
        };
        log::info!(
            "AF_XDP on {} (ifindex {ifindex}): {mode} mode, UDP port {}, queues {queues:?}",
            cfg.interface,
            cfg.port
        );
        if cfg.prefer_busy_poll_micros > 0 {
            log::info!(
                "AF_XDP on {}: preferred busy polling, {} us per poll, budget {}",
                cfg.interface,
                cfg.prefer_busy_poll_micros,
                crate::worker::BATCH
            );
        }
        if cfg.echo {
            log::warn!(
                "AF_XDP on {}: echo mode (diagnostic): UDP to port {} is sent back unchanged, not answered",
                cfg.interface,
                cfg.port
            );
        }
        if !unserved.is_empty() {
            log::warn!(
                "AF_XDP on {}: RX queues {unserved:?} have no socket; their UDP goes to the kernel UDP socket",
                cfg.interface
            );
        }

        let cpus = if cfg.cores.is_empty() {
            iface::allowed_cpus()
        } else {
            cfg.cores.clone()
        };
        let workers: Vec<PendingWorker> = parts
            .into_iter()
            .enumerate()
            .map(|(i, parts)| PendingWorker {
                parts,
                stats_index: i,
                cpu: cpus[i % cpus.len()],
            })
            .collect();
        let frontend = XdpFrontend {
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
            stats: queues.iter().map(|_| QueueStats::default()).collect(),
            queues,
            unserved,
            mode,
            _link: link,
            _prog: prog,
            _map: map,
        };
        for w in &workers {
            frontend.stats[w.stats_index]
                .counters
                .frames_in_use
                .set(w.parts.frames_in_use() as u64);
        }
        Ok(XdpAttachment {
            frontend,
            workers,
            cfg,
        })
    }

    /// The mode that took.
    pub fn mode(&self) -> ResolvedMode {
        self.mode
    }

    /// The RX queues served, in the order of [`XdpFrontend::stats`].
    pub fn queues(&self) -> &[u32] {
        &self.queues
    }

    /// RX queues of the interface left to the kernel.
    pub fn unserved_queues(&self) -> &[u32] {
        &self.unserved
    }

    /// Per-queue counters, in the order of [`XdpFrontend::queues`].
    pub fn stats(&self) -> &[QueueStats] {
        &self.stats
    }

    /// A handle on the counters that outlives the front end.
    pub fn stats_handle(&self) -> XdpStats {
        XdpStats(self.stats.clone())
    }

    /// Calls `f(name, description, kind, value)` for every counter and
    /// gauge summed over all queues. Never allocates. A server prints these
    /// with an `xdp_` prefix.
    pub fn for_each_total(
        &self,
        f: impl FnMut(&'static str, &'static str, petrel_core::stats::Kind, u64),
    ) {
        XdpStats(self.stats.clone()).for_each_total(f)
    }

    /// Calls `f(reason, frames)` for every drop reason (`wire::Error::name`),
    /// summed over all queues. A server prints these as `xdp_drop_<reason>`.
    pub fn for_each_drop_total(&self, f: impl FnMut(&'static str, u64)) {
        XdpStats(self.stats.clone()).for_each_drop_total(f)
    }

    /// Stops and joins every worker, then detaches the program.
    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for XdpFrontend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Sets the stop flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

enum SetupError {
    /// This mode is unavailable; try the next.
    Mode(String),
    /// No mode can work (e.g. no permission).
    Fatal(XdpError),
}

fn setup_mode(
    cfg: &XdpConfig,
    mode: ResolvedMode,
    ifindex: u32,
    queues: &[u32],
    prog: &OwnedFd,
    map: &OwnedFd,
) -> Result<(OwnedFd, Vec<QueueRings>), SetupError> {
    let (xdp_flags, bind) = match mode {
        ResolvedMode::NativeZeroCopy => (sys::XDP_FLAGS_DRV_MODE, BindFlags::XDP_ZEROCOPY),
        ResolvedMode::NativeCopy => (sys::XDP_FLAGS_DRV_MODE, BindFlags::XDP_COPY),
        ResolvedMode::GenericCopy => (sys::XDP_FLAGS_SKB_MODE, BindFlags::XDP_COPY),
    };
    let link = sys::attach_xdp_link(prog, ifindex, xdp_flags).map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => SetupError::Fatal(XdpError::Permission(e)),
        Some(libc::EBUSY) | Some(libc::EEXIST) => SetupError::Fatal(XdpError::Setup(format!(
            "another XDP program is attached to {} ({e}); remove it first (ip link set dev {} xdp off)",
            cfg.interface, cfg.interface
        ))),
        _ => SetupError::Mode(format!("attaching the XDP program: {e}")),
    })?;
    let mut parts = Vec::with_capacity(queues.len());
    for &q in queues {
        // Bound and primed (fill ring full): only then reachable.
        let p = open_queue(cfg, q, bind)?;
        if cfg.prefer_busy_poll_micros > 0 {
            set_busy_poll(p.socket_fd(), q, cfg.prefer_busy_poll_micros)
                .map_err(|e| SetupError::Fatal(XdpError::Setup(e)))?;
        }
        sys::xskmap_set(map, q, p.socket_fd())
            .map_err(|e| SetupError::Mode(format!("queue {q}: XSKMAP update: {e}")))?;
        parts.push(p);
    }
    Ok((link, parts))
}

/// Classifies a failed UMEM or socket creation: no permission and no
/// AF_XDP in the kernel end the search; anything else only rules out the
/// mode being tried (e.g. EOPNOTSUPP for zero-copy on veth).
fn classify(what: String, err: &(dyn std::error::Error + 'static)) -> SetupError {
    let os = err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error)
        .map(std::io::Error::from_raw_os_error);
    match os {
        Some(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
            SetupError::Fatal(XdpError::Permission(e))
        }
        Some(e) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT)) => {
            SetupError::Fatal(XdpError::Unsupported(e))
        }
        Some(e) => SetupError::Mode(format!("{what}: {err}: {e}")),
        None => SetupError::Mode(format!("{what}: {err}")),
    }
}

/// Creates queue `queue`'s UMEM and socket, binds it and primes its fill
/// ring; not yet in the XSKMAP.
fn open_queue(cfg: &XdpConfig, queue: u32, bind: BindFlags) -> Result<QueueRings, SetupError> {
    let config = |e: String| SetupError::Fatal(XdpError::Setup(e));
    let ring = QueueSize::new(cfg.frame_count).map_err(|e| config(e.to_string()))?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(cfg.frame_size).map_err(|e| config(e.to_string()))?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .map_err(|e| config(e.to_string()))?;
    let count = NonZeroU32::new(cfg.frame_count).ok_or_else(|| config("no frames".into()))?;
    // Huge pages (MAP_HUGETLB) when some are reserved (vm.nr_hugepages):
    // fewer TLB misses on the frames; else normal pages.
    let (umem, frames) = match Umem::new(umem_cfg, count, true) {
        Ok(u) => {
            log::info!("AF_XDP queue {queue}: UMEM in huge pages");
            u
        }
        Err(huge) => {
            log::info!(
                "AF_XDP queue {queue}: UMEM in normal pages (huge pages: {huge}; reserve some with sysctl vm.nr_hugepages)"
            );
            Umem::new(umem_cfg, count, false)
                .map_err(|e| classify(format!("queue {queue}: UMEM"), &e))?
        }
    };
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(bind | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let name: Interface = cfg
        .interface
        .parse()
        .map_err(|_| config("interface name contains NUL".into()))?;
    // SAFETY: the UMEM is fresh and not shared with any other socket, so
    // the shared-UMEM precondition of `Socket::new` does not apply.
    let (tx, rx, fq_cq) = unsafe { Socket::new(sock_cfg, &umem, &name, queue) }
        .map_err(|e| classify(format!("queue {queue}: socket"), &e))?;
    let (fill, comp) = fq_cq.ok_or_else(|| {
        SetupError::Mode(format!(
            "queue {queue}: socket came without fill/completion rings"
        ))
    })?;
    QueueRings::prime(queue, umem, frames, fill, comp, tx, rx, cfg.frame_count)
        .map_err(|e| SetupError::Fatal(XdpError::Setup(format!("queue {queue}: {e}"))))
}

/// Asks the kernel for preferred busy polling on socket `fd`: poll the
/// device for up to `micros` in blocking calls, up to a batch per poll.
fn set_busy_poll(fd: i32, queue: u32, micros: u32) -> Result<(), String> {
    let micros = libc::c_int::try_from(micros).unwrap_or(libc::c_int::MAX);
    for (opt, name, val) in [
        (SO_PREFER_BUSY_POLL, "SO_PREFER_BUSY_POLL", 1),
        (SO_BUSY_POLL, "SO_BUSY_POLL", micros),
        (
            SO_BUSY_POLL_BUDGET,
            "SO_BUSY_POLL_BUDGET",
            crate::worker::BATCH as libc::c_int,
        ),
    ] {
        // SAFETY: `fd` is an open AF_XDP socket and `val` an int that lives
        // across the call, whose size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &val as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(format!(
                "queue {queue}: setsockopt {name} = {val}: {} (Linux 5.11 or later)",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
