//! Kernel-socket front ends on mio: TCP, and memcache over plain UDP.
//!
//! ```text
//!                 +-------------------------------------------+
//!  SIGINT/TERM -->| control thread (Frontend::run)             |
//!                 |  accept on every listener, enforce the     |
//!                 |  connection limit, hand each connection to |
//!                 |  the least-loaded worker, expire() / 100 ms |
//!                 +------+----------------------+--------------+
//!                        | inbox + waker        |
//!              +---------v--------+    +--------v---------+
//!              | worker 0 (mio)   |... | worker N-1 (mio) |
//!              |  TCP connections |    |  TCP connections |
//!              |  UDP sockets     |    |  UDP sockets     |  (every worker
//!              +---------+--------+    +--------+---------+   polls a dup of
//!                        |   one shared Service (Sync)    |   each UDP socket,
//!                        +--------------------------------+   as memcached does)
//! ```
//!
//! One acceptor rather than an `SO_REUSEPORT` listener per worker: the
//! connection limit is exact (one counter, checked where connections are
//! accepted), connections go to the least-loaded worker instead of wherever
//! the kernel's hash puts them, and binding fails loudly when another
//! process owns the port (`SO_REUSEPORT` would silently share it). Cache
//! connections are long-lived, so the extra hand-off per connection is cheap.

mod buffer;
mod clock;
mod conn;
mod engine_service;
mod service;
mod stats;
mod stream;
mod tls;
mod udp;
mod worker;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use petrel_core::histogram::LatencyStats;

pub use buffer::PageBuf;
pub use clock::{monotonic_ms, unix_now};
pub use service::{ConnectionEvent, Progress, Service, Status, Time, Transport};
pub use stats::FrontendStats;
pub use tls::{
    TlsContext, TlsSettings, TlsStats, VerifyMode, DEFAULT_HANDSHAKE_TIMEOUT,
    TLS_BUFFER_LIMIT_BYTES,
};
pub use udp::{UDP_FRAME_HEADER_BYTES, UDP_MAX_DATAGRAM_BYTES, UDP_MAX_PAYLOAD_BYTES};

/// The reply memcached sends to a connection over the limit, before closing.
pub const TOO_MANY_CONNECTIONS_REPLY: &[u8] = b"SERVER_ERROR too many open connections\r\n";
/// Extra read-buffer room beyond the largest item: its command line.
pub const READ_BUFFER_LINE_BYTES: usize = 2048;

/// Settings of the front ends; fixed once `run` starts.
#[derive(Clone, Debug)]
pub struct FrontendConfig {
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS for the TCP listeners (memcached's `-Z`); None = plain TCP.
    pub tls: Option<Arc<TlsContext>>,
    /// TCP addresses served without TLS even when `tls` is set
    /// (memcached's `-l notls:ADDR`).
    pub notls: Vec<SocketAddr>,
    /// UDP addresses (empty: no UDP).
    pub udp: Vec<SocketAddr>,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// A Unix stream socket to serve as well (memcached's `-s`), with its
    /// permission bits (`-a`).
    pub unix: Option<(std::path::PathBuf, u32)>,
    /// Read/answer/write rounds a connection may take per turn before the
    /// worker serves others (the fairness knob; memcached's `-R`).
    pub turn_steps: usize,
    /// Most TCP connections open at once; more are refused.
    pub max_connections: usize,
    /// Per-connection read buffer: the largest request (max item + line).
    pub read_buffer_bytes: usize,
    /// Per-connection write buffer; longer replies are streamed through it.
    pub write_buffer_bytes: usize,
    /// Largest UDP reply in bytes; larger ones are dropped and counted.
    pub udp_max_reply_bytes: usize,
    /// The UDP amplification guard every UDP request passes (None: no
    /// limits, for tests and embedders; the server always sets one).
    pub udp_guard: Option<Arc<petrel_core::udp::guard::UdpGuard>>,
    /// The datagram layer's counters; one set per process, shared with
    /// every other UDP path (AF_XDP) so each drop has one name.
    pub udp_stats: Arc<petrel_core::udp::UdpStats>,
    /// Close connections without traffic for this many seconds (0 = never).
    pub idle_timeout_secs: u32,
    /// How long shutdown waits for replies in flight.
    pub shutdown_grace: Duration,
    /// How often the control thread calls `Service::expire`.
    pub expire_interval: Duration,
    /// The budget passed to each `Service::expire` call.
    pub expire_budget: usize,
}

impl FrontendConfig {
    /// Defaults for a maximum item of `max_item_bytes`: memcached's
    /// connection limit (1024), 4 threads, 64 KiB write buffers, no idle
    /// timeout, a 2 s shutdown grace, expiry every 100 ms.
    pub fn new(tcp: Vec<SocketAddr>, udp: Vec<SocketAddr>, max_item_bytes: usize) -> Self {
        FrontendConfig {
            tcp,
            tls: None,
            notls: Vec::new(),
            udp,
            unix: None,
            turn_steps: DEFAULT_TURN_STEPS,
            threads: 4,
            max_connections: 1024,
            read_buffer_bytes: max_item_bytes + READ_BUFFER_LINE_BYTES,
            write_buffer_bytes: 64 * 1024,
            udp_max_reply_bytes: max_item_bytes + 64 * 1024,
            udp_guard: None,
            udp_stats: Arc::default(),
            idle_timeout_secs: 0,
            shutdown_grace: Duration::from_secs(2),
            expire_interval: Duration::from_millis(100),
            expire_budget: 16,
        }
    }
}

/// Default read/answer/write rounds per connection per turn.
pub const DEFAULT_TURN_STEPS: usize = 16;

/// State shared by the control thread and the workers.
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    pub(crate) stats: FrontendStats,
    /// Request latency over TCP, by command class.
    pub(crate) tcp_latency: LatencyStats,
    /// Request latency over kernel UDP, by command class.
    pub(crate) udp_latency: LatencyStats,
    /// The datagram layer's counters (the config's).
    pub(crate) udp_stats: Arc<petrel_core::udp::UdpStats>,
    /// Open connections per worker.
    pub(crate) loads: Vec<AtomicUsize>,
    /// TLS, when on (the config's).
    pub(crate) tls: Option<Arc<TlsContext>>,
}

/// Asks a running [`Frontend`] to shut down; cheap to clone, usable from any
/// thread (not from a signal handler: use `run`'s shutdown source for that).
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    /// Starts the shutdown: stop accepting, finish replies, return from `run`.
    pub fn shutdown(&self) {
        self.flag.store(true, SeqCst);
        let _ = self.waker.wake();
    }
}

const CONTROL_WAKER: Token = Token(0);
const CONTROL_SHUTDOWN: Token = Token(1);
const LISTENER_BASE: usize = 2;

/// Bound sockets, ready to serve. Binding happens before privileges are
/// dropped; serving after.
pub struct Frontend {
    config: FrontendConfig,
    listeners: Vec<stream::Listener>,
    udp: Vec<UdpSocket>,
    poll: Poll,
    handle: ShutdownHandle,
    shared: Arc<Shared>,
}

impl Frontend {
    /// Binds every TCP and UDP address of `config`. Fails if any is taken.
    pub fn bind(config: FrontendConfig) -> io::Result<Frontend> {
        if config.threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "threads must be at least 1",
            ));
        }
        let mut listeners = Vec::new();
        for a in &config.tcp {
            let l = TcpListener::bind(*a)
                .map_err(|e| io::Error::new(e.kind(), format!("TCP {a}: {e}")))?;
            listeners.push(match &config.tls {
                Some(ctx) if !config.notls.contains(a) => stream::Listener::Tls(l, ctx.clone()),
                _ => stream::Listener::Tcp(l),
            });
        }
        if let Some((path, mode)) = &config.unix {
            listeners.push(stream::Listener::bind_unix(path, *mode).map_err(|e| {
                io::Error::new(e.kind(), format!("Unix socket {}: {e}", path.display()))
            })?);
        }
        let mut udp = Vec::new();
        for a in &config.udp {
            let s = UdpSocket::bind(a)
                .map_err(|e| io::Error::new(e.kind(), format!("UDP {a}: {e}")))?;
            s.set_nonblocking(true)?;
            set_socket_buffer(&s, libc::SO_RCVBUF, UDP_SOCKET_BUFFER_BYTES);
            set_socket_buffer(&s, libc::SO_SNDBUF, UDP_SOCKET_BUFFER_BYTES);
            udp.push(s);
        }
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), CONTROL_WAKER)?);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            stats: FrontendStats::new(),
            tcp_latency: LatencyStats::new(),
            udp_latency: LatencyStats::new(),
            udp_stats: config.udp_stats.clone(),
            loads: (0..config.threads).map(|_| AtomicUsize::new(0)).collect(),
            tls: config.tls.clone(),
        });
        Ok(Frontend {
            config,
            listeners,
            udp,
            poll,
            handle: ShutdownHandle {
                flag: Arc::new(AtomicBool::new(false)),
                waker,
            },
            shared,
        })
    }

    /// The addresses actually bound: TCP listeners, then UDP sockets.
    pub fn local_addrs(&self) -> io::Result<(Vec<SocketAddr>, Vec<SocketAddr>)> {
        let tcp = self
            .listeners
            .iter()
            .filter_map(|l| l.tcp_addr())
            .collect::<io::Result<_>>()?;
        let udp = self
            .udp
            .iter()
            .map(|u| u.local_addr())
            .collect::<io::Result<_>>()?;
        Ok((tcp, udp))
    }

    /// A handle that stops `run` from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// The front end's counters (live while `run` runs).
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// Serves until shut down: by the handle, or by any readiness of
    /// `shutdown` (e.g. the read end of a signal self-pipe). Returns once the
    /// workers have finished replies in flight (bounded by the grace period).
    pub fn run<S: Service>(
        mut self,
        service: &S,
        shutdown: Option<&mut dyn mio::event::Source>,
    ) -> io::Result<()> {
        let registry = self.poll.registry();
        if let Some(src) = shutdown {
            registry.register(src, CONTROL_SHUTDOWN, Interest::READABLE)?;
        }
        for (i, l) in self.listeners.iter_mut().enumerate() {
            registry.register(l, Token(LISTENER_BASE + i), Interest::READABLE)?;
        }
        let mut polls = Vec::new();
        let mut inboxes = Vec::new();
        for _ in 0..self.config.threads {
            let p = Poll::new()?;
            let waker = Waker::new(p.registry(), worker::WAKER_TOKEN)?;
            inboxes.push(Arc::new(worker::Inbox {
                queue: Mutex::new(Vec::new()),
                waker,
            }));
            polls.push(p);
        }
        let reply_slots = self
            .config
            .udp_max_reply_bytes
            .div_ceil(UDP_MAX_PAYLOAD_BYTES);
        let mut ports = Vec::new();
        for _ in 0..self.config.threads {
            let mut mine = Vec::new();
            for s in &self.udp {
                mine.push(udp::UdpPort::new(
                    s.try_clone()?,
                    reply_slots,
                    self.config.udp_guard.clone(),
                    self.config.udp_stats.clone(),
                )?);
            }
            ports.push(mine);
        }
        let config = self.config.clone();
        let shared = self.shared.clone();
        std::thread::scope(|scope| -> io::Result<()> {
            let mut threads = Vec::new();
            for (i, (p, mine)) in polls.into_iter().zip(ports).enumerate() {
                let w =
                    worker::Worker::new(i, service, &shared, &config, p, inboxes[i].clone(), mine);
                let t = std::thread::Builder::new()
                    .name(format!("petrel-worker-{i}"))
                    .spawn_scoped(scope, move || w.run())?;
                threads.push(t);
            }
            let result = self.control_loop(service, &inboxes);
            shared.stop.store(true, SeqCst);
            self.listeners.clear();
            for inbox in &inboxes {
                let _ = inbox.waker.wake();
            }
            for (i, t) in threads.into_iter().enumerate() {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => log::error!("worker {i} failed: {e}"),
                    Err(_) => log::error!("worker {i} panicked"),
                }
            }
            result
        })
    }

    fn control_loop<S: Service>(
        &mut self,
        service: &S,
        inboxes: &[Arc<worker::Inbox>],
    ) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut next_expire = Instant::now();
        let mut retry_accept = false;
        loop {
            let wait = next_expire.saturating_duration_since(Instant::now());
            let wait = if retry_accept {
                wait.min(Duration::from_millis(100))
            } else {
                wait
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let mut accept = std::mem::take(&mut retry_accept);
            for ev in events.iter() {
                match ev.token() {
                    CONTROL_SHUTDOWN => self.handle.flag.store(true, SeqCst),
                    CONTROL_WAKER => {}
                    _ => accept = true,
                }
            }
            if self.handle.flag.load(SeqCst) {
                log::info!("shutting down: no longer accepting connections");
                return Ok(());
            }
            if accept {
                retry_accept = self.accept_all(service, inboxes);
            }
            if Instant::now() >= next_expire {
                service.expire(unix_now(), self.config.expire_budget);
                next_expire = Instant::now() + self.config.expire_interval;
            }
        }
    }

    /// Accepts every pending connection. Returns true when accepting must be
    /// retried later (out of file descriptors).
    fn accept_all<S: Service>(&mut self, service: &S, inboxes: &[Arc<worker::Inbox>]) -> bool {
        for l in &self.listeners {
            loop {
                let stream = match l.accept() {
                    Ok(s) => s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                        ) {
                            return true;
                        }
                        break;
                    }
                };
                // The workers' open connections: the count the limit is
                // kept against (the service keeps the exported figures).
                let open: usize = self.shared.loads.iter().map(|l| l.load(Relaxed)).sum();
                if open >= self.config.max_connections {
                    service.connection_event(ConnectionEvent::Rejected);
                    reject(stream);
                    continue;
                }
                service.connection_event(ConnectionEvent::Opened);
                let w = (0..inboxes.len())
                    .min_by_key(|&i| self.shared.loads[i].load(Relaxed))
                    .unwrap_or(0);
                self.shared.loads[w].fetch_add(1, Relaxed);
                inboxes[w]
                    .queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(stream);
                if let Err(e) = inboxes[w].waker.wake() {
                    log::warn!("cannot wake worker {w}: {e}");
                }
            }
        }
        false
    }
}

/// A reader's handle on the front end's [`FrontendStats`], valid for as long
/// as it is held (also after `run` returned).
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// Latency of requests over TCP: from the read that completed a request
    /// to the write that handed its whole reply to the socket.
    pub fn tcp_latency(&self) -> &LatencyStats {
        &self.0.tcp_latency
    }

    /// TLS's context and counters, when TLS is on.
    pub fn tls(&self) -> Option<&TlsContext> {
        self.0.tls.as_deref()
    }

    /// The datagram layer's counters (shared with the other UDP paths).
    pub fn udp(&self) -> &petrel_core::udp::UdpStats {
        &self.0.udp_stats
    }

    /// Latency of requests over kernel UDP: from the `recvmmsg` that
    /// received the datagram to the `sendmmsg` that sent its reply.
    pub fn udp_latency(&self) -> &LatencyStats {
        &self.0.udp_latency
    }
}

impl std::ops::Deref for StatsHandle {
    type Target = FrontendStats;
    fn deref(&self) -> &FrontendStats {
        &self.0.stats
    }
}

/// Kernel buffer asked for on UDP sockets (the kernel may cap it).
const UDP_SOCKET_BUFFER_BYTES: libc::c_int = 4 << 20;

fn set_socket_buffer(s: &UdpSocket, option: libc::c_int, bytes: libc::c_int) {
    // SAFETY: a valid socket fd and a pointer to a c_int of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!(
            "setsockopt({option}) failed: {}",
            io::Error::last_os_error()
        );
    }
}

/// Tells a connection over the limit why, then closes it, as memcached does.
fn reject(stream: stream::Stream) {
    use std::io::{Read, Write};
    let mut s = stream;
    let _ = s.write(TOO_MANY_CONNECTIONS_REPLY);
    let _ = s.shutdown_write();
    // Read what the client already sent, so closing does not reset the
    // connection and destroy the reply before the client reads it.
    let mut sink = [0u8; 512];
    while let Ok(n) = s.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::tests::LineService;
    use std::io::{Read, Write};
    use std::net::{TcpStream as StdTcp, UdpSocket as StdUdp};

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn start(
        cfg: impl FnOnce(&mut FrontendConfig),
    ) -> (
        ShutdownHandle,
        SocketAddr,
        SocketAddr,
        StatsHandle,
        std::thread::JoinHandle<io::Result<()>>,
    ) {
        let mut c = FrontendConfig::new(vec![loopback()], vec![loopback()], 1 << 20);
        c.threads = 2;
        cfg(&mut c);
        let f = Frontend::bind(c).unwrap();
        let (tcp, udp) = f.local_addrs().unwrap();
        let h = f.shutdown_handle();
        let stats = f.stats();
        let t = std::thread::spawn(move || f.run(&LineService, None));
        (h, tcp[0], udp[0], stats, t)
    }

    fn read_exactly(s: &mut StdTcp, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        s.read_exact(&mut v).unwrap();
        v
    }

    #[test]
    fn tcp_pipelining_streaming_limit_and_shutdown() {
        let (h, tcp, _, stats, t) = start(|c| c.max_connections = 2);
        let mut a = StdTcp::connect(tcp).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req: Vec<u8> = (0..1000)
            .flat_map(|i| format!("r{i}\n").into_bytes())
            .collect();
        let want: Vec<u8> = (0..1000)
            .flat_map(|i| format!("r{i}\r\n").into_bytes())
            .collect();
        a.write_all(&req).unwrap();
        assert_eq!(read_exactly(&mut a, want.len()), want);
        a.write_all(b"300000\n").unwrap();
        let big = read_exactly(&mut a, 300_002);
        assert!(big[..300_000].iter().all(|&b| b == b'x'));

        let mut b = StdTcp::connect(tcp).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        b.write_all(b"b\n").unwrap();
        assert_eq!(read_exactly(&mut b, 3), b"b\r\n");
        // Third connection: over the limit.
        let mut c = StdTcp::connect(tcp).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, TOO_MANY_CONNECTIONS_REPLY);

        // quit closes.
        b.write_all(b"quit\n").unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());

        h.shutdown();
        t.join().unwrap().unwrap();
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).unwrap();
        assert_eq!(
            stats.0.loads.iter().map(|l| l.load(Relaxed)).sum::<usize>(),
            0
        );
    }

    #[test]
    fn udp_request_gets_framed_reply() {
        let (h, _, udp, stats, t) = start(|_| {});
        let s = StdUdp::bind(loopback()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut d = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0];
        d.extend_from_slice(b"3000\n");
        s.send_to(&d, udp).unwrap();
        let mut total = 0;
        let mut seqs = Vec::new();
        for _ in 0..3 {
            let mut buf = [0u8; 2000];
            let n = s.recv(&mut buf).unwrap();
            assert!(n <= UDP_MAX_DATAGRAM_BYTES);
            assert_eq!(&buf[..2], &[0x12, 0x34]);
            assert_eq!(&buf[4..8], &[0, 3, 0, 0]);
            seqs.push(u16::from_be_bytes([buf[2], buf[3]]));
            total += n - 8;
        }
        seqs.sort();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(total, 3002);
        // A fragment is dropped and counted.
        s.send_to(&[0, 1, 0, 0, 0, 2, 0, 0, b'a', b'\n'], udp)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.udp().dropped_multi_datagram.get() == 0 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        h.shutdown();
        t.join().unwrap().unwrap();
    }

    #[test]
    fn udp_with_four_workers_answers_each_datagram_once() {
        let (h, _, udp, stats, t) = start(|c| c.threads = 4);
        let clients: Vec<StdUdp> = (0..4).map(|_| StdUdp::bind(loopback()).unwrap()).collect();
        let mut answered = vec![0u32; 400];
        for batch in 0..8u16 {
            for i in batch * 50..batch * 50 + 50 {
                let mut d = [i.to_be_bytes(), [0, 0], [0, 1], [0, 0]].concat();
                d.extend_from_slice(format!("r{i}\n").as_bytes());
                clients[usize::from(i) % 4].send_to(&d, udp).unwrap();
            }
            for i in batch * 50..batch * 50 + 50 {
                let c = &clients[usize::from(i) % 4];
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut buf = [0u8; 64];
                let n = c.recv(&mut buf).unwrap();
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                assert_eq!(&buf[8..n], format!("r{id}\r\n").as_bytes());
                assert_eq!(
                    usize::from(id) % 4,
                    usize::from(i) % 4,
                    "reply to another socket"
                );
                answered[usize::from(id)] += 1;
            }
        }
        assert!(answered.iter().all(|&n| n == 1), "{answered:?}");
        assert_eq!(stats.udp_datagrams_received.get(), 400);
        h.shutdown();
        t.join().unwrap().unwrap();
        assert_eq!(stats.udp_datagrams_sent.get(), 400);
    }

    #[test]
    fn udp_guard_caps_replies_to_sources_outside_the_allowlist() {
        use petrel_core::udp::guard::{GuardConfig, UdpGuard, TOO_LARGE_REPLY};
        let guard = Arc::new(
            UdpGuard::new(&GuardConfig {
                allow: Default::default(),
                rate_per_sec: 0,
                ..GuardConfig::default()
            })
            .unwrap(),
        );
        let g = guard.clone();
        let (h, _, udp, _, t) = start(move |c| c.udp_guard = Some(g));
        let s = StdUdp::bind(loopback()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // 13 request bytes: 130 allowed; "3000" asks for 3002.
        s.send_to(
            &[0, 7, 0, 0, 0, 1, 0, 0, b'3', b'0', b'0', b'0', b'\n'],
            udp,
        )
        .unwrap();
        let mut buf = [0u8; 2000];
        let n = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..8], &[0, 7, 0, 0, 0, 1, 0, 0]);
        assert_eq!(&buf[8..n], TOO_LARGE_REPLY);
        // A small reply passes.
        s.send_to(&[0, 8, 0, 0, 0, 1, 0, 0, b'h', b'i', b'\n'], udp)
            .unwrap();
        let n = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[8..n], b"hi\r\n");
        assert_eq!(guard.stats().replies_replaced.get(), 1);
        assert_eq!(guard.stats().requests_checked.get(), 1);
        h.shutdown();
        t.join().unwrap().unwrap();
    }

    #[test]
    fn idle_connections_are_closed() {
        let (h, tcp, _, stats, t) = start(|c| c.idle_timeout_secs = 1);
        let mut a = StdTcp::connect(tcp).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(stats.idle_closed.get(), 1);
        h.shutdown();
        t.join().unwrap().unwrap();
    }
}
