//! `petrel-load`: a memcached load generator with exact latency percentiles, closed or open loop.
//!
//! Closed loop (default): each connection (TCP) or socket (UDP) keeps `--pipeline` requests
//! outstanding; a new request is sent only when a reply arrives. Latency is measured per
//! request from the moment its bytes were handed to the kernel to the moment its reply was
//! complete.
//!
//! Open loop (`--rate R`): requests are sent at R per second in total, whatever the replies
//! do. Every client thread runs its own Poisson arrival process of rate R / threads
//! (exponentially distributed gaps; the superposition is a Poisson process of rate R) and
//! hands each request to its connections in turn, so several may be outstanding on one
//! connection. Latency is measured from the request's INTENDED send time (its arrival in the
//! schedule), so a server or client that falls behind shows up in the latency instead of
//! slowing the schedule down (no coordinated omission). A request handed to the kernel more
//! than `--late-us` after its intended time counts as `late`: many late requests mean the
//! client, not the server, could not keep the rate. At the end of an open-loop run the
//! requests still outstanding get up to 5 more seconds (UDP: the loss timeout) to complete; those
//! that do not are counted as `lost`. In open loop a lost request (UDP: no reply within the loss
//! timeout) enters the latency percentiles with the time it waited until given up.
//!
//! Over UDP a thread reads its readable sockets in turn, each at most as many reply datagrams
//! per turn as it had requests outstanding, so that a socket whose replies keep arriving while
//! it is read cannot hold the thread while replies wait on the others (with a server that
//! answers faster than the client reads, that unfairness made the latency bimodal).
//!
//! Latencies go into an HDR histogram (3 significant digits, 1 ns .. 60 s). The run is
//! bounded: it stops after `--duration` seconds or `--requests` requests, whichever comes
//! first (at least one must be given; the duration is capped at one hour).
//!
//! Requests: `get <key>` with probability `--get-ratio`, otherwise `set <key> 0 0 <len>`.
//! Keys are `--key-size` bytes (`k` + zero-padded index) out of `--keys`, chosen uniformly or,
//! with `--zipf S`, with probability proportional to 1 / rank^S (key `k0..0` is the most
//! popular). With `--preload`, every key is set once over TCP before the measurement.
//!
//! TLS (`--tls-ca FILE`): every TCP connection, the preload's included, speaks TLS (rustls
//! with the ring provider, TLS 1.3 or 1.2 as the server chooses), verifying the server's
//! certificate against FILE for `--tls-server-name` (default: the server's IP address), with a
//! client certificate when `--tls-cert` and `--tls-key` are given. The handshakes complete
//! when the connections are made, before the warm-up and the measured window.
//!
//! Building and sending a request and parsing a single-datagram reply allocate nothing once
//! the buffers have grown to their working size.
//!
//! The last line of output is machine-readable:
//! `RESULT ops_per_sec=.. offered_per_sec=.. requests=.. errors=.. misses=.. lost=.. late=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. max_send_lag_us=..`
//! (`offered_per_sec` is 0 in closed loop).

use clap::Parser;
use hdrhistogram::Histogram;
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use petrel_tests::rng::Rng;
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest run accepted, whatever `--duration` says.
const MAX_DURATION_SECS: f64 = 3600.0;
/// A UDP request without a reply after this long is counted as lost and re-sent.
const UDP_TIMEOUT: Duration = Duration::from_millis(500);
/// Highest latency the histogram records (larger values are clamped).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// In open loop, how long requests still outstanding at the end may take over TCP.
const TCP_DRAIN: Duration = Duration::from_secs(5);
/// Highest accepted `--rate` (requests per second).
const MAX_RATE: f64 = 100_000_000.0;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "petrel-load",
    about = "memcached load generator, closed or open loop (HDR latency percentiles)"
)]
struct Args {
    /// Server address (host:port); the UDP port when --udp is given.
    #[arg(short = 's', long, default_value = "127.0.0.1:11211")]
    server: SocketAddr,
    /// Speak memcache-over-UDP instead of TCP.
    #[arg(long)]
    udp: bool,
    /// TCP port for --preload in UDP mode (default: the same port as --server).
    #[arg(long)]
    tcp_port: Option<u16>,
    /// Connections (TCP) or sockets (UDP), spread over the threads.
    #[arg(short = 'c', long, default_value_t = 20)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(short = 'p', long, default_value_t = 1)]
    pipeline: usize,
    /// Client threads.
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// Measurement time in seconds.
    #[arg(short = 'd', long)]
    duration: Option<f64>,
    /// Total requests to complete (across all connections).
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Warm-up seconds before measuring (requests run but are not recorded).
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Number of distinct keys.
    #[arg(short = 'k', long, default_value_t = 100_000)]
    keys: u64,
    /// Key length in bytes (at least enough digits for --keys, plus one).
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 32)]
    value_size: usize,
    /// Fraction of requests that are gets (the rest are sets).
    #[arg(short = 'g', long, default_value_t = 0.9)]
    get_ratio: f64,
    /// Set every key once before measuring.
    #[arg(long)]
    preload: bool,
    /// Seed of the key/operation choice (and of the open-loop schedule).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Open loop: send this many requests per second in total (Poisson arrivals), measuring
    /// latency from each request's intended send time. Without it the loop is closed.
    #[arg(short = 'r', long)]
    rate: Option<f64>,
    /// Zipf exponent of key popularity (0.99 is the usual skew); 0 chooses keys uniformly.
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// Open loop: a request sent more than this many microseconds after its intended time
    /// counts as late.
    #[arg(long, default_value_t = 100)]
    late_us: u64,
    /// UDP only: the server echoes each request back (petrel --xdp-echo);
    /// a reply is correct when it is a get or set request.
    #[arg(long)]
    echo: bool,
    /// TCP over TLS: verify the server's certificate against the CAs in this PEM file.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// TLS client certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// The name the server's certificate must be valid for (default: the server's IP address).
    #[arg(long)]
    tls_server_name: Option<String>,
}

/// What a TLS connection is made with.
#[derive(Clone)]
struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

impl TlsClient {
    /// From --tls-ca and the options beside it; None without --tls-ca. The error says which
    /// file or name is bad.
    fn from_args(args: &Args) -> Result<Option<TlsClient>, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let Some(ca) = &args.tls_ca else {
            if args.tls_cert.is_some() || args.tls_server_name.is_some() {
                return Err("--tls-cert and --tls-server-name need --tls-ca".into());
            }
            return Ok(None);
        };
        if args.udp {
            return Err("--tls-ca is for TCP, not --udp".into());
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
            roots
                .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificate", ca.display()));
        }
        // the server's provider (fallback-tcp); rustls deprecates ring's for its lack of
        // post-quantum key exchange
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        let name = match &args.tls_server_name {
            Some(n) => ServerName::try_from(n.clone())
                .map_err(|e| format!("--tls-server-name {n}: {e}"))?,
            None => ServerName::IpAddress(args.server.ip().into()),
        };
        Ok(Some(TlsClient {
            config: Arc::new(config),
            name,
        }))
    }

    /// Completes a handshake on the blocking socket `sock`.
    fn handshake(&self, sock: &mut std::net::TcpStream) -> rustls::ClientConnection {
        let mut c = rustls::ClientConnection::new(self.config.clone(), self.name.clone())
            .unwrap_or_else(|e| panic!("TLS client: {e}"));
        while c.is_handshaking() {
            c.complete_io(sock)
                .unwrap_or_else(|e| panic!("TLS handshake with {:?}: {e}", sock.peer_addr()));
        }
        c
    }
}

fn key_bytes(args: &Args, i: u64) -> Vec<u8> {
    format!("k{:0>width$}", i, width = args.key_size - 1).into_bytes()
}

/// Key popularity.
enum KeyDist {
    /// Every key of `0..n` equally likely.
    Uniform(u64),
    /// Zipf: key `i` (rank `i + 1`) with probability proportional to `1 / (i + 1)^s`, sampled
    /// by binary search in the cumulative distribution (`cdf[i]` = P(key <= i), the last is 1).
    Zipf(Vec<f64>),
}

impl KeyDist {
    /// `s` = 0 is uniform; `count` must be positive.
    fn new(count: u64, s: f64) -> KeyDist {
        if s == 0.0 {
            return KeyDist::Uniform(count);
        }
        let mut cdf = Vec::with_capacity(count as usize);
        let mut sum = 0.0f64;
        for i in 0..count {
            sum += ((i + 1) as f64).powf(-s);
            cdf.push(sum);
        }
        for c in cdf.iter_mut() {
            *c /= sum;
        }
        KeyDist::Zipf(cdf)
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        match self {
            KeyDist::Uniform(n) => rng.below(*n),
            KeyDist::Zipf(cdf) => {
                let u = rng.unit();
                // the first key whose cumulative probability exceeds u (u < 1 = the last one)
                (cdf.partition_point(|&c| c <= u) as u64).min(cdf.len() as u64 - 1)
            }
        }
    }
}

/// An open-loop schedule: the arrival times of a Poisson process in nanoseconds from the
/// start, each gap drawn from the exponential distribution of mean 1 / rate.
struct Schedule {
    next_ns: f64,
    mean_gap_ns: f64,
}

impl Schedule {
    /// The first arrival is one gap after 0.
    fn new(rate_per_sec: f64, rng: &mut Rng) -> Schedule {
        let mut s = Schedule {
            next_ns: 0.0,
            mean_gap_ns: 1e9 / rate_per_sec,
        };
        s.advance(rng);
        s
    }
    /// Intended time of the next request.
    fn due_ns(&self) -> u64 {
        self.next_ns as u64
    }
    /// Moves on to the following arrival.
    fn advance(&mut self, rng: &mut Rng) {
        // 1 - u is in (0, 1]: the logarithm is finite
        self.next_ns += -(1.0 - rng.unit()).ln() * self.mean_gap_ns;
    }
}

/// Every key, precomputed so that building a request allocates nothing.
struct Keys {
    flat: Vec<u8>,
    size: usize,
    dist: KeyDist,
    /// `" 0 0 <value_size>\r\n"`
    set_suffix: Vec<u8>,
}

impl Keys {
    fn new(args: &Args) -> Keys {
        let mut flat = Vec::with_capacity(args.keys as usize * args.key_size);
        for i in 0..args.keys {
            flat.extend_from_slice(&key_bytes(args, i));
        }
        Keys {
            flat,
            size: args.key_size,
            dist: KeyDist::new(args.keys, args.zipf),
            set_suffix: format!(" 0 0 {}\r\n", args.value_size).into_bytes(),
        }
    }
    fn key(&self, i: u64) -> &[u8] {
        let at = i as usize * self.size;
        &self.flat[at..at + self.size]
    }
}

/// Parses one complete reply at the start of `buf`: `(bytes consumed, error, miss)`, or
/// `None` when more bytes are needed.
fn parse_reply(buf: &[u8], is_get: bool) -> Option<(usize, bool, bool)> {
    let eol = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = &buf[..eol];
    if is_get {
        if line == b"END" {
            return Some((eol + 2, false, true));
        }
        if line.starts_with(b"VALUE ") {
            let len: usize = std::str::from_utf8(line.rsplit(|&b| b == b' ').next()?)
                .ok()?
                .parse()
                .ok()?;
            let total = eol + 2 + len + 2 + 5;
            if buf.len() < total {
                return None;
            }
            let ok = &buf[total - 5..total] == b"END\r\n";
            return Some((total, !ok, false));
        }
        return Some((eol + 2, true, false));
    }
    Some((eol + 2, line != b"STORED", false))
}

struct Shared {
    tls: Option<TlsClient>,
    stop: AtomicBool,
    started: AtomicU64,
    limit: u64,
}

impl Shared {
    /// Claims permission to start one more request.
    fn claim(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        self.started.fetch_add(1, Ordering::Relaxed) < self.limit
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("histogram bounds")
}

/// Per-thread results.
struct Outcome {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    misses: u64,
    lost: u64,
    late: u64,
    max_send_lag_ns: u64,
}

/// One client thread's state. Times are nanoseconds since `base`.
struct Ctx<'a> {
    args: &'a Args,
    keys: &'a Keys,
    shared: &'a Shared,
    rng: Rng,
    value: Vec<u8>,
    base: Instant,
    /// Requests sent (closed loop) or intended (open loop) before this are not recorded.
    measure_from_ns: u64,
    /// Open loop only.
    schedule: Option<Schedule>,
    late_ns: u64,
    out: Outcome,
}

impl<'a> Ctx<'a> {
    fn new(
        args: &'a Args,
        keys: &'a Keys,
        shared: &'a Shared,
        tid: usize,
        measure_from: Instant,
    ) -> Self {
        let base = Instant::now();
        let mut rng = Rng::new(args.seed.wrapping_mul(1000).wrapping_add(tid as u64));
        let threads = args.threads.min(args.connections) as f64;
        let schedule = args.rate.map(|r| Schedule::new(r / threads, &mut rng));
        Ctx {
            args,
            keys,
            shared,
            rng,
            value: vec![b'v'; args.value_size],
            base,
            measure_from_ns: measure_from.saturating_duration_since(base).as_nanos() as u64,
            schedule,
            late_ns: args.late_us.saturating_mul(1000),
            out: Outcome {
                hist: new_hist(),
                requests: 0,
                errors: 0,
                misses: 0,
                lost: 0,
                late: 0,
                max_send_lag_ns: 0,
            },
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Appends one request to `out`; true for a get.
    fn request(&mut self, out: &mut Vec<u8>) -> bool {
        let args = self.args;
        let key = self.keys.key(self.keys.dist.sample(&mut self.rng));
        let is_get = self.rng.unit() < args.get_ratio;
        if is_get {
            out.extend_from_slice(b"get ");
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(b"set ");
            out.extend_from_slice(key);
            out.extend_from_slice(&self.keys.set_suffix);
            out.extend_from_slice(&self.value);
            out.extend_from_slice(b"\r\n");
        }
        is_get
    }

    /// Open loop: the intended time of the next request if it is due at `now`, claimed (and
    /// the schedule moved on); `None` when it is not due yet or no more may be sent.
    fn due(&mut self, now: u64) -> Option<u64> {
        let s = self.schedule.as_mut()?;
        let due = s.due_ns();
        if due > now || !self.shared.claim() {
            return None;
        }
        s.advance(&mut self.rng);
        if due >= self.measure_from_ns {
            let lag = now.saturating_sub(due);
            self.out.max_send_lag_ns = self.out.max_send_lag_ns.max(lag);
            self.out.late += u64::from(lag > self.late_ns);
        }
        Some(due)
    }

    /// How long the poll may sleep before the next open-loop request is due: epoll's
    /// timeout has millisecond resolution, so within 1.5 ms of it the thread polls without
    /// sleeping.
    fn poll_timeout(&self, now: u64, closed: Duration) -> Duration {
        match &self.schedule {
            None => closed,
            Some(s) => {
                let wait = s.due_ns().saturating_sub(now);
                if wait > 1_500_000 {
                    Duration::from_nanos(wait - 1_000_000).min(closed)
                } else {
                    Duration::ZERO
                }
            }
        }
    }

    /// Records one reply complete at `now` to a request sent (or intended) at `sent`.
    fn complete(&mut self, sent: u64, now: u64, err: bool, miss: bool) {
        if sent < self.measure_from_ns {
            return;
        }
        let ns = now.saturating_sub(sent).clamp(1, MAX_LATENCY_NS);
        self.out.hist.record(ns).expect("value within bounds");
        self.out.requests += 1;
        self.out.errors += err as u64;
        self.out.misses += miss as u64;
    }

    /// Counts a request without a reply as lost. In open loop its latency is also recorded as
    /// the time it waited until given up (at least the loss timeout), so that dropping requests
    /// cannot make a server's percentiles look better than answering them late.
    fn lose(&mut self, sent: u64) {
        if sent >= self.measure_from_ns {
            self.out.lost += 1;
            if self.schedule.is_some() {
                let ns = self.now_ns().saturating_sub(sent).clamp(1, MAX_LATENCY_NS);
                self.out.hist.record(ns).expect("value within bounds");
            }
        }
    }
}

struct TcpConn {
    stream: TcpStream,
    /// The TLS session (handshake done) when --tls-ca is given.
    tls: Option<rustls::ClientConnection>,
    /// (sent or intended time, is a get), oldest first
    inflight: VecDeque<(u64, bool)>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

/// Opens `conns` connections (TLS handshakes included), registered with a new poll.
fn connect_tcp(args: &Args, tls: Option<&TlsClient>, conns: usize) -> (Poll, Vec<TcpConn>) {
    let poll = Poll::new().expect("poll");
    let cs: Vec<TcpConn> = (0..conns)
        .map(|i| {
            let mut std = std::net::TcpStream::connect(args.server)
                .unwrap_or_else(|e| panic!("connect {}: {e}", args.server));
            std.set_nodelay(true).expect("nodelay");
            let tls = tls.map(|t| t.handshake(&mut std));
            if let (0, Some(c)) = (i, &tls) {
                eprintln!(
                    "TLS: {:?}, {:?}",
                    c.protocol_version(),
                    c.negotiated_cipher_suite().map(|s| s.suite())
                );
            }
            std.set_nonblocking(true).expect("nonblocking");
            let mut stream = TcpStream::from_std(std);
            poll.registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .expect("register");
            TcpConn {
                stream,
                tls,
                inflight: VecDeque::with_capacity(1024),
                rbuf: Vec::with_capacity(64 * 1024),
                wbuf: Vec::with_capacity(64 * 1024),
            }
        })
        .collect();
    (poll, cs)
}

fn run_tcp(ctx: &mut Ctx, mut poll: Poll, mut cs: Vec<TcpConn>) {
    let args = ctx.args;
    let open = ctx.schedule.is_some();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    if !open {
        // Fill every pipeline.
        for c in cs.iter_mut() {
            for _ in 0..args.pipeline {
                if !ctx.shared.claim() {
                    break;
                }
                let g = ctx.request(&mut c.wbuf);
                c.inflight.push_back((ctx.now_ns(), g));
            }
            flush(c);
        }
    }
    let mut next_conn = 0;
    let mut drain_until: Option<u64> = None;
    loop {
        let now = ctx.now_ns();
        if open {
            if drain_until.is_none() {
                while let Some(due) = ctx.due(now) {
                    let n = cs.len();
                    let c = &mut cs[next_conn];
                    next_conn = (next_conn + 1) % n;
                    let g = ctx.request(&mut c.wbuf);
                    c.inflight.push_back((due, g));
                }
                for c in cs.iter_mut().filter(|c| !c.wbuf.is_empty()) {
                    flush(c);
                }
                if ctx.shared.stop.load(Ordering::Relaxed)
                    || ctx.shared.started.load(Ordering::Relaxed) >= ctx.shared.limit
                {
                    drain_until = Some(now + TCP_DRAIN.as_nanos() as u64);
                }
            }
            if let Some(until) = drain_until {
                if cs.iter().all(|c| c.inflight.is_empty()) {
                    break;
                }
                if now >= until {
                    for c in cs.iter_mut() {
                        for (sent, _) in std::mem::take(&mut c.inflight) {
                            ctx.lose(sent);
                        }
                    }
                    break;
                }
            }
        } else if cs.iter().all(|c| c.inflight.is_empty()) {
            break;
        }
        let timeout = if drain_until.is_some() {
            Duration::from_millis(10)
        } else {
            ctx.poll_timeout(now, Duration::from_millis(100))
        };
        poll.poll(&mut events, Some(timeout)).expect("poll");
        for ev in events.iter() {
            let c = &mut cs[ev.token().0];
            if ev.is_writable() {
                flush(c);
            }
            if !ev.is_readable() {
                continue;
            }
            if c.tls.is_some() {
                tls_read(c, &mut buf);
            }
            while c.tls.is_none() {
                match c.stream.read(&mut buf) {
                    Ok(0) => panic!("server closed a connection"),
                    Ok(n) => {
                        c.rbuf.extend_from_slice(&buf[..n]);
                        // A short read took everything the socket held: stop without the extra
                        // read that would only say WouldBlock (new data raises a new edge).
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
            let now = ctx.now_ns();
            let mut off = 0;
            while let Some(&(sent, is_get)) = c.inflight.front() {
                let Some((used, err, miss)) = parse_reply(&c.rbuf[off..], is_get) else {
                    break;
                };
                off += used;
                c.inflight.pop_front();
                ctx.complete(sent, now, err, miss);
                if !open && ctx.shared.claim() {
                    let g = ctx.request(&mut c.wbuf);
                    c.inflight.push_back((ctx.now_ns(), g));
                }
            }
            c.rbuf.drain(..off);
            flush(c);
        }
    }
}

/// Reads every record the socket holds and appends their plaintext to `c.rbuf`.
fn tls_read(c: &mut TcpConn, buf: &mut [u8]) {
    let tls = c.tls.as_mut().expect("a TLS connection");
    loop {
        match tls.read_tls(&mut c.stream) {
            Ok(0) => panic!("server closed a connection"),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e}"),
        }
        if let Err(e) = tls.process_new_packets() {
            panic!("TLS: {e}");
        }
        loop {
            match tls.reader().read(buf) {
                Ok(0) => panic!("server ended the TLS session"),
                Ok(n) => c.rbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("TLS read: {e}"),
            }
        }
    }
}

fn flush(c: &mut TcpConn) {
    if let Some(tls) = c.tls.as_mut() {
        // plaintext into records (as much as rustls' buffer limit takes), records to the socket
        loop {
            if !c.wbuf.is_empty() {
                let n = tls.writer().write(&c.wbuf).expect("TLS write");
                c.wbuf.drain(..n);
            }
            if !tls.wants_write() {
                return;
            }
            match tls.write_tls(&mut c.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("write: {e}"),
            }
        }
    }
    while !c.wbuf.is_empty() {
        match c.stream.write(&c.wbuf) {
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("write: {e}"),
        }
    }
}

struct UdpSock {
    sock: UdpSocket,
    next_id: u16,
    /// request id -> (sent or intended time, is a get)
    inflight: HashMap<u16, (u64, bool)>,
    /// Payloads by seq of replies that span several datagrams, until complete.
    parts: HashMap<u16, Vec<Option<Vec<u8>>>>,
    /// (request id, time) in sending order, to find the requests that timed out.
    order: VecDeque<(u16, u64)>,
}

/// Sends one request on `s` (the datagram is built in `d`), recorded as sent at `at` (the
/// intended time in open loop) or, when `None`, now.
fn send_udp(ctx: &mut Ctx, s: &mut UdpSock, d: &mut Vec<u8>, at: Option<u64>) {
    let id = s.next_id;
    s.next_id = s.next_id.wrapping_add(1).max(1);
    if let Some((old, _)) = s.inflight.remove(&id) {
        // the id wrapped around while that request was outstanding
        s.parts.remove(&id);
        ctx.lose(old);
    }
    d.clear();
    d.extend_from_slice(
        &petrel_tests::udp::FrameHeader {
            request_id: id,
            seq: 0,
            total: 1,
            reserved: 0,
        }
        .to_bytes(),
    );
    let g = ctx.request(d);
    loop {
        match s.sock.send(d) {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("udp send: {e}"),
        }
    }
    let t = at.unwrap_or_else(|| ctx.now_ns());
    s.inflight.insert(id, (t, g));
    s.order.push_back((id, t));
}

/// Reads and completes up to `budget` reply datagrams from `s` (closed loop: sends a new
/// request for each reply); true when the socket has nothing more to read now.
fn recv_udp(
    ctx: &mut Ctx,
    s: &mut UdpSock,
    buf: &mut [u8],
    d: &mut Vec<u8>,
    budget: usize,
) -> bool {
    let args = ctx.args;
    let open = ctx.schedule.is_some();
    for _ in 0..budget {
        let n = match s.sock.recv(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("udp recv: {e}"),
        };
        let Some(h) = petrel_tests::udp::FrameHeader::parse(&buf[..n]) else {
            ctx.out.errors += 1;
            continue;
        };
        let Some(&(sent, is_get)) = s.inflight.get(&h.request_id) else {
            continue; // late reply to a request already counted as lost
        };
        if h.total == 0 || h.seq >= h.total {
            ctx.out.errors += 1;
            continue;
        }
        let payload = &buf[petrel_tests::udp::FRAME_HEADER_BYTES..n];
        let now = ctx.now_ns();
        let (err, miss) = if h.total == 1 {
            s.inflight.remove(&h.request_id);
            if args.echo {
                let want: &[u8] = if is_get { b"get " } else { b"set " };
                (!payload.starts_with(want), false)
            } else {
                match parse_reply(payload, is_get) {
                    Some((used, err, miss)) => (err || used != payload.len(), miss),
                    None => (true, false),
                }
            }
        } else {
            // a reply in several datagrams: collect them (this allocates)
            let parts = s.parts.entry(h.request_id).or_default();
            if parts.len() != h.total as usize {
                *parts = vec![None; h.total as usize];
            }
            parts[h.seq as usize] = Some(payload.to_vec());
            if parts.iter().any(Option::is_none) {
                continue;
            }
            let parts = s.parts.remove(&h.request_id).expect("present");
            s.inflight.remove(&h.request_id);
            let bytes: Vec<u8> = parts.into_iter().flatten().flatten().collect();
            match parse_reply(&bytes, is_get) {
                Some((used, err, miss)) => (err || used != bytes.len(), miss),
                None => (true, false),
            }
        };
        ctx.complete(sent, now, err, miss);
        if !open && ctx.shared.claim() {
            send_udp(ctx, s, d, None);
        }
    }
    false
}

fn run_udp(ctx: &mut Ctx, socks: usize) {
    let args = ctx.args;
    let mut poll = Poll::new().expect("poll");
    let mut ss: Vec<UdpSock> = (0..socks)
        .map(|i| {
            // Any local address of the server's family: the route picks
            // the source (loopback for a loopback server).
            let local = if args.server.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let std = std::net::UdpSocket::bind(local).expect("bind");
            std.connect(args.server).expect("connect");
            petrel_tests::udp::set_recv_buffer(&std, 4 << 20);
            std.set_nonblocking(true).expect("nonblocking");
            let mut sock = UdpSocket::from_std(std);
            poll.registry()
                .register(&mut sock, Token(i), Interest::READABLE)
                .expect("register");
            UdpSock {
                sock,
                next_id: 1,
                inflight: HashMap::with_capacity(4096),
                parts: HashMap::new(),
                order: VecDeque::with_capacity(4096),
            }
        })
        .collect();
    let open = ctx.schedule.is_some();
    let timeout_ns = UDP_TIMEOUT.as_nanos() as u64;
    let mut d = Vec::with_capacity(1024);
    if !open {
        for s in ss.iter_mut() {
            for _ in 0..args.pipeline {
                if !ctx.shared.claim() {
                    break;
                }
                send_udp(ctx, s, &mut d, None);
            }
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 65536];
    let mut next_sock = 0;
    let mut stopping = false;
    // Sockets read up to their share last pass with replies possibly left (read first next
    // pass); `queued[i]` when socket i is in `again` or `ready`.
    let mut again: Vec<usize> = Vec::with_capacity(socks);
    let mut ready: Vec<usize> = Vec::with_capacity(socks);
    let mut queued = vec![false; socks];
    loop {
        let now = ctx.now_ns();
        if open && !stopping {
            while let Some(due) = ctx.due(now) {
                let n = ss.len();
                let s = &mut ss[next_sock];
                next_sock = (next_sock + 1) % n;
                send_udp(ctx, s, &mut d, Some(due));
            }
            stopping = ctx.shared.stop.load(Ordering::Relaxed)
                || ctx.shared.started.load(Ordering::Relaxed) >= ctx.shared.limit;
        }
        if (!open || stopping) && ss.iter().all(|s| s.inflight.is_empty()) {
            break;
        }
        let timeout = if !again.is_empty() {
            Duration::ZERO
        } else if stopping {
            Duration::from_millis(10)
        } else {
            ctx.poll_timeout(now, Duration::from_millis(50))
        };
        poll.poll(&mut events, Some(timeout)).expect("poll");
        // Sockets to read this pass: those left with replies unread last pass, then those
        // that became readable. Each reads at most as many datagrams as it had requests
        // outstanding when its turn came: a socket whose next replies keep arriving while it
        // is read (a fast server answers a request before the client is done with the
        // previous reply) would otherwise hold the thread while the replies waiting on every
        // other socket age, and the latency would measure the client's unfairness.
        ready.clear();
        ready.append(&mut again);
        for ev in events.iter() {
            let i = ev.token().0;
            if !queued[i] {
                queued[i] = true;
                ready.push(i);
            }
        }
        for &i in &ready {
            queued[i] = false;
            let s = &mut ss[i];
            let budget = s.inflight.len().max(1);
            if !recv_udp(ctx, s, &mut buf, &mut d, budget) {
                // Edge-triggered readiness: no new event will come for what is still
                // queued, so it is read next pass.
                queued[i] = true;
                again.push(i);
            }
        }
        // Requests without a reply for too long are lost: count them (and, in closed loop,
        // send new ones in their place).
        let now = ctx.now_ns();
        for s in ss.iter_mut() {
            let mut expired = 0;
            while let Some(&(id, t)) = s.order.front() {
                match s.inflight.get(&id) {
                    Some(&(t2, _)) if t2 == t => {
                        if now.saturating_sub(t) <= timeout_ns {
                            break;
                        }
                        s.inflight.remove(&id);
                        s.parts.remove(&id);
                        ctx.lose(t);
                        expired += 1;
                    }
                    _ => {} // answered (or its id reused) already
                }
                s.order.pop_front();
            }
            if !open {
                for _ in 0..expired {
                    if ctx.shared.claim() {
                        send_udp(ctx, s, &mut d, None);
                    }
                }
            }
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn preload(args: &Args, tls: Option<&TlsClient>) {
    let port = args.tcp_port.unwrap_or(args.server.port());
    let addr = SocketAddr::new(args.server.ip(), port);
    let mut sock = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("preload connect {addr}: {e}"));
    sock.set_nodelay(true).ok();
    let mut s: Box<dyn ReadWrite> = match tls {
        Some(t) => {
            let c = t.handshake(&mut sock);
            Box::new(rustls::StreamOwned::new(c, sock))
        }
        None => Box::new(sock),
    };
    let value = vec![b'v'; args.value_size];
    const BATCH: u64 = 1000;
    let mut i = 0;
    let mut rbuf = Vec::new();
    let mut buf = vec![0u8; 65536];
    while i < args.keys {
        let n = BATCH.min(args.keys - i);
        let mut w = Vec::new();
        for j in i..i + n {
            let k = key_bytes(args, j);
            w.extend_from_slice(b"set ");
            w.extend_from_slice(&k);
            w.extend_from_slice(format!(" 0 0 {} noreply\r\n", value.len()).as_bytes());
            w.extend_from_slice(&value);
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"mn\r\n");
        s.write_all(&w).expect("preload write");
        rbuf.clear();
        while !rbuf.ends_with(b"MN\r\n") {
            let r = s.read(&mut buf).expect("preload read");
            assert!(r > 0, "server closed the preload connection");
            rbuf.extend_from_slice(&buf[..r]);
        }
        assert_eq!(rbuf, b"MN\r\n", "preload: unexpected reply");
        i += n;
    }
}

fn main() {
    let args = Args::parse();
    if args.duration.is_none() && args.requests.is_none() {
        eprintln!("petrel-load: give --duration and/or --requests (the run must be bounded)");
        std::process::exit(64);
    }
    let digits = args.keys.saturating_sub(1).to_string().len();
    if args.key_size < digits + 1 || args.key_size > 250 {
        eprintln!(
            "petrel-load: --key-size must be in {}..=250 for {} keys",
            digits + 1,
            args.keys
        );
        std::process::exit(64);
    }
    if args.connections == 0 || args.threads == 0 || args.pipeline == 0 || args.keys == 0 {
        eprintln!("petrel-load: --connections, --threads, --pipeline and --keys must be positive");
        std::process::exit(64);
    }
    if !(0.0..=1.0).contains(&args.get_ratio) {
        eprintln!("petrel-load: --get-ratio must be within 0..=1");
        std::process::exit(64);
    }
    if let Some(r) = args.rate {
        if !(r > 0.0 && r <= MAX_RATE) {
            eprintln!(
                "petrel-load: --rate must be within 0..={MAX_RATE} requests/s (exclusive of 0)"
            );
            std::process::exit(64);
        }
    }
    if !(0.0..=10.0).contains(&args.zipf) {
        eprintln!("petrel-load: --zipf must be within 0..=10");
        std::process::exit(64);
    }
    let tls = match TlsClient::from_args(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("petrel-load: {e}");
            std::process::exit(64);
        }
    };
    let threads = args.threads.min(args.connections);
    if args.preload {
        let t = Instant::now();
        preload(&args, tls.as_ref());
        eprintln!(
            "preloaded {} keys in {:.2}s",
            args.keys,
            t.elapsed().as_secs_f64()
        );
    }
    let keys = Arc::new(Keys::new(&args));
    let duration = args
        .duration
        .unwrap_or(MAX_DURATION_SECS)
        .min(MAX_DURATION_SECS);
    let shared = Arc::new(Shared {
        tls,
        stop: AtomicBool::new(false),
        started: AtomicU64::new(0),
        limit: args
            .requests
            .map(|r| r.saturating_add(0))
            .unwrap_or(u64::MAX),
    });
    // Every thread makes its TCP connections (and TLS handshakes) first and says so; then the
    // warm-up and the measured window start, at the same instant for all.
    let connecting = Instant::now();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let mut go = Vec::with_capacity(threads);
    let handles: Vec<_> = (0..threads)
        .map(|tid| {
            let conns = args.connections / threads + usize::from(tid < args.connections % threads);
            let a = args.clone();
            let sh = Arc::clone(&shared);
            let k = Arc::clone(&keys);
            let ready = ready_tx.clone();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<Instant>();
            go.push(go_tx);
            std::thread::spawn(move || {
                let tcp = (!a.udp).then(|| connect_tcp(&a, sh.tls.as_ref(), conns));
                let _ = ready.send(());
                let measure_from = go_rx.recv().expect("start time");
                let mut ctx = Ctx::new(&a, &k, &sh, tid, measure_from);
                match tcp {
                    Some((poll, cs)) => run_tcp(&mut ctx, poll, cs),
                    None => run_udp(&mut ctx, conns),
                }
                ctx.out
            })
        })
        .collect();
    let mut connected = 0;
    while connected < threads {
        match ready_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(()) => connected += 1,
            Err(_) if handles.iter().any(|h| h.is_finished()) => {
                eprintln!("petrel-load: a client thread failed while connecting");
                std::process::exit(1);
            }
            Err(_) => {}
        }
    }
    if !args.udp {
        eprintln!(
            "connected {} connections{} in {:.3}s",
            args.connections,
            if args.tls_ca.is_some() {
                " (TLS handshakes included)"
            } else {
                ""
            },
            connecting.elapsed().as_secs_f64()
        );
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup.max(0.0));
    let stop_at = measure_from + Duration::from_secs_f64(duration);
    for g in go {
        let _ = g.send(measure_from);
    }
    // Stop at the deadline (or when every thread finished its share of --requests).
    while Instant::now() < stop_at && !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let end = Instant::now().max(measure_from);
    let mut hist = new_hist();
    let (mut requests, mut errors, mut misses, mut lost, mut late, mut lag) = (0, 0, 0, 0, 0, 0);
    for h in handles {
        let o = h.join().expect("load thread panicked");
        hist.add(&o.hist).expect("merge histograms");
        requests += o.requests;
        errors += o.errors;
        misses += o.misses;
        lost += o.lost;
        late += o.late;
        lag = lag.max(o.max_send_lag_ns);
    }
    let secs = end.duration_since(measure_from).as_secs_f64().max(1e-9);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let ops = requests as f64 / secs;
    let offered = args.rate.unwrap_or(0.0);
    println!(
        "petrel-load: {} {} {} conns={} pipeline={} threads={} keys={} ({}) key_size={} value_size={} get_ratio={}",
        if args.udp {
            "udp"
        } else if args.tls_ca.is_some() {
            "tls"
        } else {
            "tcp"
        },
        args.server,
        match args.rate {
            Some(r) => format!("open loop at {r:.0}/s"),
            None => "closed loop".to_string(),
        },
        args.connections,
        args.pipeline,
        threads,
        args.keys,
        if args.zipf > 0.0 {
            format!("zipf {}", args.zipf)
        } else {
            "uniform".to_string()
        },
        args.key_size,
        args.value_size,
        args.get_ratio
    );
    println!(
        "requests {requests} in {secs:.2}s: {ops:.0} ops/s; errors {errors}, misses {misses}, lost {lost}"
    );
    if args.rate.is_some() {
        println!(
            "open loop: offered {offered:.0}/s; {late} requests sent more than {} us late (largest lag {:.1} us)",
            args.late_us,
            lag as f64 / 1000.0
        );
    }
    println!(
        "latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    println!(
        "RESULT ops_per_sec={ops:.0} offered_per_sec={offered:.0} requests={requests} errors={errors} misses={misses} lost={lost} late={late} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} max_send_lag_us={:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0,
        lag as f64 / 1000.0
    );
    if errors > 0 {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyDist, Rng, Schedule};

    /// Frequency of the most popular keys, and of two groups of less popular ones, against the
    /// exact Zipf probabilities (within four standard errors of the sample).
    #[test]
    fn zipf_sampler_follows_the_distribution() {
        let (n, s, samples) = (1000u64, 0.99f64, 400_000u64);
        let dist = KeyDist::new(n, s);
        let mut rng = Rng::new(42);
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            let k = dist.sample(&mut rng);
            assert!(k < n, "key {k} out of range");
            counts[k as usize] += 1;
        }
        let norm: f64 = (1..=n).map(|r| (r as f64).powf(-s)).sum();
        let p = |i: u64| ((i + 1) as f64).powf(-s) / norm;
        let check = |what: &str, observed: u64, prob: f64| {
            let expected = prob * samples as f64;
            let sigma = (samples as f64 * prob * (1.0 - prob)).sqrt();
            assert!(
                (observed as f64 - expected).abs() <= 4.0 * sigma,
                "{what}: {observed} samples, expected {expected:.0} +- {:.0}",
                4.0 * sigma
            );
        };
        for i in 0..10 {
            check(&format!("key {i}"), counts[i as usize], p(i));
        }
        let group = |lo: u64, hi: u64| -> (u64, f64) {
            (
                counts[lo as usize..hi as usize].iter().sum(),
                (lo..hi).map(p).sum(),
            )
        };
        let (c, q) = group(10, 100);
        check("keys 10..100", c, q);
        let (c, q) = group(100, 1000);
        check("keys 100..1000", c, q);
        // the most popular key is about 2^0.99 times as popular as the second
        let r = counts[0] as f64 / counts[1] as f64;
        assert!((r - 2f64.powf(s)).abs() < 0.1, "ratio {r}");
    }

    #[test]
    fn zipf_zero_is_uniform() {
        let dist = KeyDist::new(10, 0.0);
        assert!(matches!(dist, KeyDist::Uniform(10)));
        let mut rng = Rng::new(7);
        let mut counts = [0u64; 10];
        for _ in 0..100_000 {
            counts[dist.sample(&mut rng) as usize] += 1;
        }
        // 10_000 expected each; sigma ~95
        assert!(
            counts.iter().all(|&c| (9_600..=10_400).contains(&c)),
            "{counts:?}"
        );
    }

    /// The schedule's gaps are exponential with mean 1 / rate: mean and standard deviation
    /// both 1 / rate, P(gap > mean) = 1/e, and the number of arrivals in a window is the
    /// rate times the window. Computed from the schedule alone: no clock is read.
    #[test]
    fn schedule_is_poisson_at_the_rate() {
        let rate = 50_000.0;
        let mean = 1e9 / rate;
        let mut rng = Rng::new(3);
        let mut s = Schedule::new(rate, &mut rng);
        let n = 200_000;
        let mut prev = 0.0f64;
        let (mut sum, mut sum_sq, mut above) = (0.0f64, 0.0f64, 0u64);
        let mut in_first_second = 0u64;
        for _ in 0..n {
            let t = s.next_ns;
            assert!(t >= prev, "arrivals go backwards: {t} after {prev}");
            let gap = t - prev;
            sum += gap;
            sum_sq += gap * gap;
            above += u64::from(gap > mean);
            in_first_second += u64::from(t < 1e9);
            assert_eq!(s.due_ns(), t as u64);
            prev = t;
            s.advance(&mut rng);
        }
        let m = sum / n as f64;
        let sd = (sum_sq / n as f64 - m * m).sqrt();
        assert!(
            (m / mean - 1.0).abs() < 0.01,
            "mean gap {m} ns, want {mean}"
        );
        assert!(
            (sd / mean - 1.0).abs() < 0.02,
            "gap sd {sd} ns, want {mean}"
        );
        let frac = above as f64 / n as f64;
        assert!(
            (frac - (-1f64).exp()).abs() < 0.005,
            "P(gap > mean) = {frac}"
        );
        // Poisson count: 50_000 +- 4 * sqrt(50_000)
        assert!(
            (in_first_second as f64 - rate).abs() < 4.0 * rate.sqrt(),
            "{in_first_second} arrivals in the first second"
        );
    }
}
