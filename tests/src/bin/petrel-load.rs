//! `petrel-load`: a closed-loop memcached load generator with exact latency percentiles.
//!
//! Each connection (TCP) or socket (UDP) keeps `--pipeline` requests outstanding: a new
//! request is sent only when a reply arrives (closed loop). Latency is measured per request
//! from the moment its bytes were handed to the kernel to the moment its reply was complete,
//! and recorded in an HDR histogram (3 significant digits, 1 ns .. 60 s).
//!
//! The run is bounded: it stops after `--duration` seconds or `--requests` requests, whichever
//! comes first (at least one must be given; the duration is capped at one hour).
//!
//! Requests: `get <key>` with probability `--get-ratio`, otherwise `set <key> 0 0 <len>`.
//! Keys are `--key-size` bytes (`k` + zero-padded index), chosen uniformly from `--keys`.
//! With `--preload`, every key is set once over TCP before the measurement.
//!
//! The last line of output is machine-readable:
//! `RESULT ops_per_sec=.. requests=.. errors=.. misses=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..`

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

#[derive(Parser, Debug, Clone)]
#[command(
    name = "petrel-load",
    about = "Closed-loop memcached load generator (HDR latency percentiles)"
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
    /// Seed of the key/operation choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// An outstanding UDP request: when it was sent, whether it is a get, payloads by seq.
type UdpPending = (Instant, bool, Vec<Option<Vec<u8>>>);

/// Per-thread results.
struct Outcome {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    misses: u64,
    lost: u64,
}

fn key_bytes(args: &Args, i: u64) -> Vec<u8> {
    format!("k{:0>width$}", i, width = args.key_size - 1).into_bytes()
}

/// Every key, precomputed so that building a request allocates nothing.
struct Keys {
    flat: Vec<u8>,
    size: usize,
    count: u64,
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
            count: args.keys,
            set_suffix: format!(" 0 0 {}\r\n", args.value_size).into_bytes(),
        }
    }
    fn key(&self, i: u64) -> &[u8] {
        let at = i as usize * self.size;
        &self.flat[at..at + self.size]
    }
}

fn make_request(args: &Args, keys: &Keys, rng: &mut Rng, value: &[u8], out: &mut Vec<u8>) -> bool {
    let key = keys.key(rng.below(keys.count));
    let is_get = rng.unit() < args.get_ratio;
    if is_get {
        out.extend_from_slice(b"get ");
        out.extend_from_slice(key);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(b"set ");
        out.extend_from_slice(key);
        out.extend_from_slice(&keys.set_suffix);
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    is_get
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

struct TcpConn {
    stream: TcpStream,
    inflight: VecDeque<(Instant, bool)>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

struct Shared {
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

fn record(hist: &mut Histogram<u64>, since: Instant, measuring: bool) {
    if measuring {
        let ns = (since.elapsed().as_nanos() as u64).clamp(1, MAX_LATENCY_NS);
        hist.record(ns).expect("value within bounds");
    }
}

fn run_tcp(
    args: &Args,
    keys: &Keys,
    conns: usize,
    tid: usize,
    shared: &Shared,
    measure_from: Instant,
) -> Outcome {
    let mut poll = Poll::new().expect("poll");
    let mut rng = Rng::new(args.seed.wrapping_mul(1000).wrapping_add(tid as u64));
    let value = vec![b'v'; args.value_size];
    let mut cs: Vec<TcpConn> = (0..conns)
        .map(|i| {
            let std = std::net::TcpStream::connect(args.server)
                .unwrap_or_else(|e| panic!("connect {}: {e}", args.server));
            std.set_nodelay(true).expect("nodelay");
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
                inflight: VecDeque::new(),
                rbuf: Vec::with_capacity(64 * 1024),
                wbuf: Vec::new(),
            }
        })
        .collect();
    let mut out = Outcome {
        hist: new_hist(),
        requests: 0,
        errors: 0,
        misses: 0,
        lost: 0,
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    // Fill every pipeline.
    for c in cs.iter_mut() {
        for _ in 0..args.pipeline {
            if !shared.claim() {
                break;
            }
            let g = make_request(args, keys, &mut rng, &value, &mut c.wbuf);
            c.inflight.push_back((Instant::now(), g));
        }
        flush(c);
    }
    loop {
        if cs.iter().all(|c| c.inflight.is_empty()) {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
        for ev in events.iter() {
            let c = &mut cs[ev.token().0];
            if ev.is_writable() {
                flush(c);
            }
            if !ev.is_readable() {
                continue;
            }
            loop {
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
            let mut off = 0;
            while let Some(&(sent, is_get)) = c.inflight.front() {
                let Some((used, err, miss)) = parse_reply(&c.rbuf[off..], is_get) else {
                    break;
                };
                off += used;
                c.inflight.pop_front();
                let measuring = sent >= measure_from;
                record(&mut out.hist, sent, measuring);
                if measuring {
                    out.requests += 1;
                    out.errors += err as u64;
                    out.misses += miss as u64;
                }
                if shared.claim() {
                    let g = make_request(args, keys, &mut rng, &value, &mut c.wbuf);
                    c.inflight.push_back((Instant::now(), g));
                }
            }
            c.rbuf.drain(..off);
            flush(c);
        }
    }
    out
}

fn flush(c: &mut TcpConn) {
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

fn run_udp(
    args: &Args,
    keys: &Keys,
    socks: usize,
    tid: usize,
    shared: &Shared,
    measure_from: Instant,
) -> Outcome {
    let mut poll = Poll::new().expect("poll");
    let mut rng = Rng::new(args.seed.wrapping_mul(1000).wrapping_add(tid as u64));
    let value = vec![b'v'; args.value_size];
    struct Sock {
        sock: UdpSocket,
        next_id: u16,
        /// request id -> (sent, is_get, payloads received, by seq)
        inflight: HashMap<u16, UdpPending>,
    }
    let mut ss: Vec<Sock> = (0..socks)
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
            Sock {
                sock,
                next_id: 1,
                inflight: HashMap::new(),
            }
        })
        .collect();
    let mut out = Outcome {
        hist: new_hist(),
        requests: 0,
        errors: 0,
        misses: 0,
        lost: 0,
    };
    let send = |s: &mut Sock, rng: &mut Rng| {
        let id = s.next_id;
        s.next_id = s.next_id.wrapping_add(1).max(1);
        let mut d = petrel_tests::udp::FrameHeader {
            request_id: id,
            seq: 0,
            total: 1,
            reserved: 0,
        }
        .to_bytes()
        .to_vec();
        let g = make_request(args, keys, rng, &value, &mut d);
        loop {
            match s.sock.send(&d) {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("udp send: {e}"),
            }
        }
        s.inflight.insert(id, (Instant::now(), g, Vec::new()));
    };
    for s in ss.iter_mut() {
        for _ in 0..args.pipeline {
            if !shared.claim() {
                break;
            }
            send(s, &mut rng);
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 65536];
    loop {
        if ss.iter().all(|s| s.inflight.is_empty()) {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .expect("poll");
        for ev in events.iter() {
            let s = &mut ss[ev.token().0];
            loop {
                let n = match s.sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => panic!("udp recv: {e}"),
                };
                let Some(h) = petrel_tests::udp::FrameHeader::parse(&buf[..n]) else {
                    out.errors += 1;
                    continue;
                };
                let Some(entry) = s.inflight.get_mut(&h.request_id) else {
                    continue; // late reply to a request already counted as lost
                };
                if h.total == 0 || h.seq >= h.total {
                    out.errors += 1;
                    continue;
                }
                if entry.2.len() != h.total as usize {
                    entry.2 = vec![None; h.total as usize];
                }
                entry.2[h.seq as usize] = Some(buf[8..n].to_vec());
                if entry.2.iter().any(Option::is_none) {
                    continue;
                }
                let (sent, is_get, parts) = s.inflight.remove(&h.request_id).expect("present");
                let bytes: Vec<u8> = parts.into_iter().flatten().flatten().collect();
                let (err, miss) = match parse_reply(&bytes, is_get) {
                    Some((used, err, miss)) => (err || used != bytes.len(), miss),
                    None => (true, false),
                };
                let measuring = sent >= measure_from;
                record(&mut out.hist, sent, measuring);
                if measuring {
                    out.requests += 1;
                    out.errors += err as u64;
                    out.misses += miss as u64;
                }
                if shared.claim() {
                    send(s, &mut rng);
                }
            }
        }
        // Requests without a reply for too long are lost: count them and send new ones.
        let now = Instant::now();
        for s in ss.iter_mut() {
            let expired: Vec<u16> = s
                .inflight
                .iter()
                .filter(|(_, v)| now.duration_since(v.0) > UDP_TIMEOUT)
                .map(|(k, _)| *k)
                .collect();
            for id in expired {
                s.inflight.remove(&id);
                out.lost += 1;
                if shared.claim() {
                    send(s, &mut rng);
                }
            }
        }
    }
    out
}

fn preload(args: &Args) {
    let port = args.tcp_port.unwrap_or(args.server.port());
    let addr = SocketAddr::new(args.server.ip(), port);
    let mut s = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("preload connect {addr}: {e}"));
    s.set_nodelay(true).ok();
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
    let threads = args.threads.min(args.connections);
    if args.preload {
        let t = Instant::now();
        preload(&args);
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
        stop: AtomicBool::new(false),
        started: AtomicU64::new(0),
        limit: args
            .requests
            .map(|r| r.saturating_add(0))
            .unwrap_or(u64::MAX),
    });
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup.max(0.0));
    let stop_at = measure_from + Duration::from_secs_f64(duration);
    let handles: Vec<_> = (0..threads)
        .map(|tid| {
            let conns = args.connections / threads + usize::from(tid < args.connections % threads);
            let a = args.clone();
            let sh = Arc::clone(&shared);
            let k = Arc::clone(&keys);
            std::thread::spawn(move || {
                if a.udp {
                    run_udp(&a, &k, conns, tid, &sh, measure_from)
                } else {
                    run_tcp(&a, &k, conns, tid, &sh, measure_from)
                }
            })
        })
        .collect();
    // Stop at the deadline (or when every thread finished its share of --requests).
    while Instant::now() < stop_at && !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let end = Instant::now().max(measure_from);
    let mut hist = new_hist();
    let (mut requests, mut errors, mut misses, mut lost) = (0, 0, 0, 0);
    for h in handles {
        let o = h.join().expect("load thread panicked");
        hist.add(&o.hist).expect("merge histograms");
        requests += o.requests;
        errors += o.errors;
        misses += o.misses;
        lost += o.lost;
    }
    let secs = end.duration_since(measure_from).as_secs_f64().max(1e-9);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let ops = requests as f64 / secs;
    println!(
        "petrel-load: {} {} conns={} pipeline={} threads={} keys={} key_size={} value_size={} get_ratio={}",
        if args.udp { "udp" } else { "tcp" },
        args.server,
        args.connections,
        args.pipeline,
        threads,
        args.keys,
        args.key_size,
        args.value_size,
        args.get_ratio
    );
    println!(
        "requests {requests} in {secs:.2}s: {ops:.0} ops/s; errors {errors}, misses {misses}, lost {lost}"
    );
    println!(
        "latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    println!(
        "RESULT ops_per_sec={ops:.0} requests={requests} errors={errors} misses={misses} lost={lost} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
