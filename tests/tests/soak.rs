//! Soak: a mixed workload against one petrel for a bounded time, over TCP
//! and UDP at once, with faults mixed in, every value carrying its own
//! checksum. Reports throughput, p99 latency and resident memory over time,
//! and fails on any corrupted value or unexpected reply.
//!
//! `PETREL_SOAK_SECS` sets the duration (default 4 s, the short version the
//! test suite runs); `scripts/soak [SECONDS]` runs the long one (default
//! 600 s) and prints one line per `PETREL_SOAK_INTERVAL_SECS` (default 1 s
//! here, 10 s from the script).
//!
//! Workload: 3 TCP clients (sets 30%, gets 55%, multi-gets 10%, deletes 5%,
//! sometimes pipelined 8 deep), 1 UDP client (gets and multi-gets; values
//! up to 5,000 bytes span several datagrams), and 1 fault client cycling
//! through: half a value then a close, a reset mid-reply, a burst of
//! garbage, a client that asks for large replies and never reads, a new
//! connection per request.

use hdrhistogram::Histogram;
use petrel_tests::rng::Rng;
use petrel_tests::server::{rss_kib, Kind, Target};
use petrel_tests::tcp::{set_linger_zero, Conn};
use petrel_tests::udp::{ends_with_end, UdpClient, UdpError};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys in play (shared by every client, so values are overwritten under
/// readers' feet).
const KEYS: u64 = 2000;

/// FNV-1a, 64 bits.
fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `key|len|checksum|body`: the checksum covers the key, the length and the
/// body, so a torn, truncated or foreign value is caught.
fn make_value(key: &str, rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => rng.range(1400, 5000),
        1..=3 => rng.range(200, 1400),
        _ => rng.range(8, 200),
    } as usize;
    let seed = rng.next_u64();
    let body: Vec<u8> = (0..len)
        .map(|i| b'a' + ((seed >> (i % 57)) as u8 ^ i as u8) % 26)
        .collect();
    let mut v = format!("{key}|{len}|").into_bytes();
    let sum = fnv(&[&v[..], &body[..]].concat());
    v.extend_from_slice(format!("{sum:016x}|").as_bytes());
    v.extend_from_slice(&body);
    v
}

/// Checks a value read back for `key`.
fn check_value(key: &str, v: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(v);
    let mut parts = text.splitn(4, '|');
    let (k, len, sum) = (parts.next(), parts.next(), parts.next());
    let (Some(k), Some(len), Some(sum)) = (k, len, sum) else {
        return Err(format!("{key}: no header in {} bytes", v.len()));
    };
    if k != key {
        return Err(format!("{key}: holds {k}'s value"));
    }
    let head = format!("{k}|{len}|").len();
    let body_at = head + 17;
    let len: usize = len.parse().map_err(|_| format!("{key}: bad length"))?;
    if v.len() != body_at + len {
        return Err(format!(
            "{key}: {} bytes, header says {}",
            v.len(),
            body_at + len
        ));
    }
    let want = fnv(&[&v[..head], &v[body_at..]].concat());
    if format!("{want:016x}") != sum {
        return Err(format!("{key}: checksum mismatch"));
    }
    Ok(())
}

/// Parses a get reply into (key, value) pairs; Err on malformed replies.
fn parse_values(reply: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let rest = &reply[at..];
        if rest == b"END\r\n" {
            return Ok(out);
        }
        let nl = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("no line end")?;
        let line = String::from_utf8_lossy(&rest[..nl]).to_string();
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 4 || f[0] != "VALUE" {
            return Err(format!("unexpected line {line:?}"));
        }
        let n: usize = f[3]
            .parse()
            .map_err(|_| format!("bad length in {line:?}"))?;
        let start = nl + 2;
        if rest.len() < start + n + 2 || &rest[start + n..start + n + 2] != b"\r\n" {
            return Err(format!("value of {} not terminated", f[1]));
        }
        out.push((f[1].to_string(), rest[start..start + n].to_vec()));
        at += start + n + 2;
    }
}

#[derive(Default)]
struct Totals {
    ops: AtomicU64,
    tcp_ops: AtomicU64,
    udp_ops: AtomicU64,
    hits: AtomicU64,
    checked: AtomicU64,
    corrupted: AtomicU64,
    unexpected: AtomicU64,
    udp_timeouts: AtomicU64,
    faults: AtomicU64,
}

struct Shared {
    addr: SocketAddr,
    udp: SocketAddr,
    stop: AtomicBool,
    totals: Totals,
    latency: Mutex<Histogram<u64>>,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, corrupted: bool, what: String) {
        if corrupted {
            self.totals.corrupted.fetch_add(1, Relaxed);
        } else {
            self.totals.unexpected.fetch_add(1, Relaxed);
        }
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(what);
        }
    }

    fn verify(&self, reply: &[u8]) {
        match parse_values(reply) {
            Ok(vals) => {
                for (k, v) in vals {
                    self.totals.hits.fetch_add(1, Relaxed);
                    self.totals.checked.fetch_add(1, Relaxed);
                    if let Err(e) = check_value(&k, &v) {
                        self.fail(true, e);
                    }
                }
            }
            Err(e) => self.fail(false, format!("get reply: {e}")),
        }
    }
}

fn tcp_client(sh: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut c = Conn::connect(sh.addr);
    let mut local = Histogram::<u64>::new(3).unwrap();
    while !sh.stop.load(Relaxed) {
        let depth = if rng.chance(20) { 8 } else { 1 };
        let mut req = Vec::new();
        let mut kinds = Vec::new();
        for _ in 0..depth {
            let key = format!("s{}", rng.below(KEYS));
            match rng.below(100) {
                0..=29 => {
                    let v = make_value(&key, &mut rng);
                    req.extend_from_slice(format!("set {key} 0 0 {}\r\n", v.len()).as_bytes());
                    req.extend_from_slice(&v);
                    req.extend_from_slice(b"\r\n");
                    kinds.push(0);
                }
                30..=84 => {
                    req.extend_from_slice(format!("get {key}\r\n").as_bytes());
                    kinds.push(1);
                }
                85..=94 => {
                    req.extend_from_slice(b"get");
                    for _ in 0..10 {
                        req.extend_from_slice(format!(" s{}", rng.below(KEYS)).as_bytes());
                    }
                    req.extend_from_slice(b"\r\n");
                    kinds.push(1);
                }
                _ => {
                    req.extend_from_slice(format!("delete {key}\r\n").as_bytes());
                    kinds.push(2);
                }
            }
        }
        let t = Instant::now();
        c.send(&req);
        for k in kinds {
            match k {
                0 => {
                    let l = c.read_line();
                    if l != b"STORED\r\n" {
                        sh.fail(false, format!("set: {:?}", String::from_utf8_lossy(&l)));
                    }
                }
                1 => {
                    let r = c.read_until_suffix(b"END\r\n", Duration::from_secs(10));
                    sh.verify(&r);
                }
                _ => {
                    let l = c.read_line();
                    if l != b"DELETED\r\n" && l != b"NOT_FOUND\r\n" {
                        sh.fail(false, format!("delete: {:?}", String::from_utf8_lossy(&l)));
                    }
                }
            }
        }
        let us = t.elapsed().as_micros() as u64;
        local.record(us.max(1)).ok();
        sh.totals.ops.fetch_add(depth, Relaxed);
        sh.totals.tcp_ops.fetch_add(depth, Relaxed);
        if local.len() >= 256 {
            sh.latency.lock().unwrap().add(&local).ok();
            local.reset();
        }
    }
    sh.latency.lock().unwrap().add(&local).ok();
}

fn udp_client(sh: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut u = UdpClient::connect(sh.udp);
    let mut local = Histogram::<u64>::new(3).unwrap();
    while !sh.stop.load(Relaxed) {
        let mut req = b"get".to_vec();
        let n = if rng.chance(20) { 4 } else { 1 };
        for _ in 0..n {
            req.extend_from_slice(format!(" s{}", rng.below(KEYS)).as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let t = Instant::now();
        match u.request(&req, ends_with_end, Duration::from_millis(500)) {
            Ok(r) => {
                sh.verify(&r.bytes);
                local.record((t.elapsed().as_micros() as u64).max(1)).ok();
                sh.totals.ops.fetch_add(1, Relaxed);
                sh.totals.udp_ops.fetch_add(1, Relaxed);
            }
            Err(UdpError::Timeout { .. }) => {
                sh.totals.udp_timeouts.fetch_add(1, Relaxed);
            }
            Err(e) => sh.fail(false, format!("udp: {e:?}")),
        }
        if local.len() >= 256 {
            sh.latency.lock().unwrap().add(&local).ok();
            local.reset();
        }
    }
    sh.latency.lock().unwrap().add(&local).ok();
}

fn fault_client(sh: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut step = 0u64;
    while !sh.stop.load(Relaxed) {
        let Ok(mut s) = TcpStream::connect(sh.addr) else {
            sh.fail(false, "fault client cannot connect".into());
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        s.set_write_timeout(Some(Duration::from_millis(200))).ok();
        s.set_read_timeout(Some(Duration::from_millis(200))).ok();
        match step % 5 {
            // Half a value under a soak key, then a close: never stored.
            0 => {
                let key = format!("s{}", rng.below(KEYS));
                let _ = s.write_all(format!("set {key} 0 0 4000\r\n").as_bytes());
                let _ = s.write_all(&[b'z'; 1500]);
            }
            // A reset in the middle of a multi-get's reply.
            1 => {
                let mut req = b"get".to_vec();
                for i in 0..50 {
                    req.extend_from_slice(format!(" s{i}").as_bytes());
                }
                req.extend_from_slice(b"\r\n");
                let _ = s.write_all(&req);
                let mut buf = [0u8; 700];
                let _ = s.read(&mut buf);
                set_linger_zero(&s);
            }
            // Garbage: noise and junk lines for a moment.
            2 => {
                let junk: Vec<u8> = (0..16 * 1024)
                    .map(|_| match rng.below(40) {
                        0 => b'\n',
                        _ => (rng.next_u64() & 0xff) as u8,
                    })
                    .collect();
                for _ in 0..8 {
                    if s.write_all(&junk).is_err() {
                        break;
                    }
                }
            }
            // Large replies asked for and never read, then gone.
            3 => {
                let _ = s.write_all(&b"get s1 s2 s3 s4 s5 s6 s7 s8\r\n".repeat(200));
                std::thread::sleep(Duration::from_millis(100));
            }
            // A connection per request, closed politely.
            _ => {
                // The check is that the reply comes, not how fast: a loaded machine may take
                // longer than the 200 ms the other faults allow themselves.
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let _ = s.write_all(b"mn\r\n");
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_err() || &buf != b"MN\r\n" {
                    sh.fail(false, "fresh connection not answered".into());
                }
            }
        }
        drop(s);
        sh.totals.faults.fetch_add(1, Relaxed);
        step += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn soak_mixed_workload_with_faults() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if target.kind != Kind::Petrel {
        petrel_tests::skip::not_applicable("the soak reads petrel's resident memory");
        return;
    }
    let secs = env_secs("PETREL_SOAK_SECS", 4).max(1);
    let interval = env_secs("PETREL_SOAK_INTERVAL_SECS", 1).max(1);
    let server = target.builder().memory_mib(32).threads(2).start();
    let pid = server.pid().unwrap();
    let sh = Arc::new(Shared {
        addr: server.tcp_addr(),
        udp: server.udp_addr(),
        stop: AtomicBool::new(false),
        totals: Totals::default(),
        latency: Mutex::new(Histogram::new(3).unwrap()),
        errors: Mutex::new(Vec::new()),
    });
    let seed = 0x50a6_0000 ^ u64::from(std::process::id());
    eprintln!("soak: {secs}s, seed {seed:#x}, petrel pid {pid}");
    let mut threads = Vec::new();
    for i in 0..3 {
        let sh = sh.clone();
        threads.push(std::thread::spawn(move || tcp_client(sh, seed + i)));
    }
    {
        let sh = sh.clone();
        threads.push(std::thread::spawn(move || udp_client(sh, seed + 10)));
    }
    {
        let sh = sh.clone();
        threads.push(std::thread::spawn(move || fault_client(sh, seed + 20)));
    }
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut last_ops = 0;
    let mut rss = Vec::new();
    eprintln!(
        "  time    ops/s     p99(us)   rss(KiB)  corrupted  unexpected  udp-timeouts  faults"
    );
    while Instant::now() < end {
        let next = (Instant::now() + Duration::from_secs(interval)).min(end);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let ops = sh.totals.ops.load(Relaxed);
        let p99 = {
            let mut h = sh.latency.lock().unwrap();
            let p = h.value_at_quantile(0.99);
            h.reset();
            p
        };
        let r = rss_kib(pid).unwrap_or(0);
        rss.push(r);
        let t = &sh.totals;
        eprintln!(
            "{:6.1}s {:8.0} {:10} {:10} {:10} {:11} {:13} {:7}",
            started.elapsed().as_secs_f64(),
            (ops - last_ops) as f64 / interval as f64,
            p99,
            r,
            t.corrupted.load(Relaxed),
            t.unexpected.load(Relaxed),
            t.udp_timeouts.load(Relaxed),
            t.faults.load(Relaxed)
        );
        last_ops = ops;
    }
    sh.stop.store(true, Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let t = &sh.totals;
    let (ops, udp_ops, timeouts) = (
        t.ops.load(Relaxed),
        t.udp_ops.load(Relaxed),
        t.udp_timeouts.load(Relaxed),
    );
    eprintln!(
        "soak done: {ops} ops ({} TCP, {udp_ops} UDP) in {:.1}s, {} values checked, {} hits, \
         {} corrupted, {} unexpected, {timeouts} UDP timeouts, {} faults injected, RSS {}..{} KiB",
        t.tcp_ops.load(Relaxed),
        started.elapsed().as_secs_f64(),
        t.checked.load(Relaxed),
        t.hits.load(Relaxed),
        t.corrupted.load(Relaxed),
        t.unexpected.load(Relaxed),
        t.faults.load(Relaxed),
        rss.iter().min().unwrap_or(&0),
        rss.iter().max().unwrap_or(&0),
    );
    let errors = sh.errors.lock().unwrap().clone();
    assert_eq!(t.corrupted.load(Relaxed), 0, "corrupted values: {errors:?}");
    assert_eq!(
        t.unexpected.load(Relaxed),
        0,
        "unexpected replies: {errors:?}"
    );
    assert!(ops > 0 && udp_ops > 0, "both transports ran");
    // Loopback UDP should not lose replies; allow a little under load.
    assert!(
        timeouts * 100 <= udp_ops.max(1),
        "{timeouts} UDP timeouts in {udp_ops} requests"
    );
    assert!(t.faults.load(Relaxed) > 0, "faults were injected");
    // The server is still healthy.
    let mut c = Conn::connect(server.tcp_addr());
    c.check(b"mn\r\n", b"MN\r\n");
}

#[test]
fn the_checksum_catches_torn_foreign_and_truncated_values() {
    let mut rng = Rng::new(7);
    let v = make_value("s1", &mut rng);
    assert_eq!(check_value("s1", &v), Ok(()));
    assert!(check_value("s2", &v).is_err(), "foreign");
    assert!(check_value("s1", &v[..v.len() - 1]).is_err(), "truncated");
    let mut torn = v.clone();
    let last = torn.len() - 1;
    torn[last] ^= 1;
    assert!(check_value("s1", &torn).is_err(), "torn");
    assert!(parse_values(b"VALUE s1 0 3\r\nabcEND\r\n").is_err());
}
