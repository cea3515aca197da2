//! Faults and hostile clients against the real binary, with small limits so
//! that every test ends in seconds: slow clients (one byte at a time, never
//! reading replies), disconnects mid-value, mid-reply and mid-pipeline, a TCP
//! reset storm, garbage at line rate, SIGTERM under load and SIGKILL with an
//! immediate restart on the same port.
//!
//! What must hold each time: the server keeps serving other clients, its
//! memory stays bounded, stored values are never corrupted, connection
//! accounting returns to where it was, and shutdown is clean.

use petrel_tests::rng::Rng;
use petrel_tests::server::{free_port_pair, rss_kib, Kind, Server, Target};
use petrel_tests::tcp::{set_linger_zero, stat, storage_cmd, value_reply, Conn};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn petrel() -> Option<Target> {
    let t = Target::from_env()?;
    if t.kind != Kind::Petrel {
        petrel_tests::skip::not_applicable(
            "these tests use petrel's flags (--idle-timeout) and /proc of its pid",
        );
        return None;
    }
    Some(t)
}

/// Waits until `curr_connections` is `n` (the stats connection itself
/// counts as one); panics with the last value after `timeout`.
fn wait_connections(addr: SocketAddr, n: u64, timeout: Duration) {
    wait_curr_connections(|| stat(addr, "curr_connections"), n, timeout);
}

/// Waits until `read` (a `curr_connections` reading) returns `n`; panics
/// with the last value after `timeout`.
fn wait_curr_connections(read: impl Fn() -> u64, n: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let c = read();
        if c == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "curr_connections stayed {c}, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set(addr: SocketAddr, key: &str, value: &[u8]) {
    let mut c = Conn::connect(addr);
    c.check(&storage_cmd("set", key, 0, 0, value, false), b"STORED\r\n");
}

fn get(addr: SocketAddr, key: &str) -> Vec<u8> {
    let mut c = Conn::connect(addr);
    c.send(format!("get {key}\r\n").as_bytes());
    c.read_until_suffix(b"END\r\n", Duration::from_secs(10))
}

/// A value whose bytes say which key and version they belong to, so a torn
/// or foreign value is recognised.
fn stamped(key: &str, version: u32, len: usize) -> Vec<u8> {
    let head = format!("{key}:{version}:");
    let mut v = head.into_bytes();
    let mut i = 0u8;
    while v.len() < len {
        v.push(b'a' + i % 26);
        i = i.wrapping_add(1);
    }
    v.truncate(len.max(1));
    v
}

#[test]
fn trickling_client_is_closed_at_the_idle_limit_while_an_active_one_is_not() {
    let Some(target) = petrel() else { return };
    let server = target
        .builder()
        .no_udp()
        .arg("--idle-timeout")
        .arg("2")
        .start();
    let addr = server.tcp_addr();
    // An active client: one request every 400 ms for 4.4 s.
    let active = std::thread::spawn(move || {
        let mut c = Conn::connect(addr);
        for _ in 0..11 {
            c.check(b"mn\r\n", b"MN\r\n");
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let request = b"get a_key_that_never_ends_because_the_client_trickles_it";
    let mut closed_after = None;
    'outer: for b in request.iter().cycle().take(40) {
        if s.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        // ~3 bytes a second, each followed by a look for EOF.
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break 'outer;
            }
            Ok(n) => panic!("unexpected reply {:?}", &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed_after = Some(started.elapsed());
                break 'outer;
            }
        }
    }
    let closed_after = closed_after.expect("a trickling client must be closed");
    // Idle 2 s (whole seconds) plus the 1 s sweep.
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after <= Duration::from_millis(4500),
        "closed after {closed_after:?}"
    );
    active
        .join()
        .expect("the active client was served throughout");
    wait_connections(addr, 1, Duration::from_secs(5));
}

#[test]
fn client_that_never_reads_costs_bounded_memory_and_is_closed() {
    let Some(target) = petrel() else { return };
    let server = target
        .builder()
        .no_udp()
        .memory_mib(32)
        .arg("--idle-timeout")
        .arg("2")
        // RSS here measures connection buffers: no prefault thread making the arena
        // resident in the background meanwhile (tests/tests/memory.rs measures that).
        .arg("--prefault-ahead")
        .arg("0")
        .start();
    let addr = server.tcp_addr();
    let pid = server.pid().unwrap();
    let big = stamped("big", 1, 256 * 1024);
    set(addr, "big", &big);
    let before = rss_kib(pid).expect("VmRSS");
    // Ask for 1,000 x 256 KiB (250 MiB) of replies and never read them.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut sent = 0;
    let req = b"get big\r\n".repeat(100);
    for _ in 0..10 {
        match s.write_all(&req) {
            Ok(()) => sent += 100,
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let stuck = rss_kib(pid).expect("VmRSS");
    // Another client is served meanwhile.
    let mut other = Conn::connect(addr);
    other.check(b"mn\r\n", b"MN\r\n");
    drop(other);
    // The server buffers at most a read buffer and a write buffer for it
    // (about 1.1 MiB), not the 250 MiB asked for.
    assert!(
        stuck < before + 8 * 1024,
        "RSS grew from {before} KiB to {stuck} KiB with {sent} big gets unread"
    );
    // Closed at the idle limit: no reply byte could be written for 2 s.
    wait_connections(addr, 1, Duration::from_secs(6));
    // Draining now ends in EOF (or a reset), after less than what was asked.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("expected EOF after {got} bytes: {e}"),
        }
    }
    assert!(
        got < sent * big.len(),
        "all {sent} replies arrived: not closed"
    );
}

#[test]
fn disconnects_mid_value_mid_reply_and_mid_pipeline_leave_the_server_sound() {
    let Some(target) = petrel() else { return };
    let server = target.builder().no_udp().start();
    let addr = server.tcp_addr();

    // Mid-value: half of a 100,000-byte set, then a close (and a reset).
    for reset in [false, true] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"set half 0 0 100000\r\n").unwrap();
        s.write_all(&vec![b'h'; 50_000]).unwrap();
        if reset {
            set_linger_zero(&s);
        }
        drop(s);
    }
    wait_connections(addr, 1, Duration::from_secs(5));
    assert_eq!(
        get(addr, "half"),
        b"END\r\n",
        "a half-sent value is not stored"
    );

    // Mid-reply: five 512 KiB values asked for, 1,000 bytes read, gone.
    let big = stamped("big", 7, 512 * 1024);
    set(addr, "big", &big);
    for reset in [false, true] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&b"get big\r\n".repeat(5)).unwrap();
        let mut buf = [0u8; 1000];
        s.read_exact(&mut buf).unwrap();
        if reset {
            set_linger_zero(&s);
        }
        drop(s);
    }
    wait_connections(addr, 1, Duration::from_secs(5));
    assert_eq!(get(addr, "big"), value_reply("big", 0, &big));

    // Mid-pipeline: 2,000 sets and gets written in one go, then a close
    // without reading. Whatever was stored must be whole and correct.
    let mut pipeline = Vec::new();
    for i in 0..2000u32 {
        let key = format!("p{}", i % 500);
        pipeline.extend_from_slice(&storage_cmd(
            "set",
            &key,
            i,
            0,
            &stamped(&key, i, 100),
            false,
        ));
        pipeline.extend_from_slice(format!("get {key}\r\n").as_bytes());
    }
    for reset in [false, true] {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&pipeline);
        if reset {
            set_linger_zero(&s);
        }
        drop(s);
    }
    wait_connections(addr, 1, Duration::from_secs(5));
    let mut c = Conn::connect(addr);
    for k in 0..500u32 {
        let key = format!("p{k}");
        c.send(format!("get {key}\r\n").as_bytes());
        let reply = c.read_until_suffix(b"END\r\n", Duration::from_secs(5));
        if reply == b"END\r\n" {
            continue;
        }
        // VALUE <key> <flags> 100\r\n<value>\r\nEND\r\n, flags = version
        let text = String::from_utf8_lossy(&reply).to_string();
        let header = text.lines().next().unwrap().to_string();
        let flags: u32 = header.split(' ').nth(2).unwrap().parse().unwrap();
        assert_eq!(
            reply,
            value_reply(&key, flags, &stamped(&key, flags, 100)),
            "value of {key} torn or foreign"
        );
    }
    c.check_quiet();
}

#[test]
fn tcp_reset_storm() {
    let Some(target) = petrel() else { return };
    let server = target.builder().no_udp().threads(2).start();
    let addr = server.tcp_addr();
    set(addr, "k", b"v");
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut n = 0;
                for i in 0..150 {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    // A request, half of another, then a reset.
                    let _ = s.write_all(b"get k\r\nset x 0 0 10\r\nabc");
                    if (i + t) % 3 == 0 {
                        let mut buf = [0u8; 16];
                        let _ = s.read(&mut buf);
                    }
                    set_linger_zero(&s);
                    drop(s);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 600, "every storm connection was accepted");
    assert!(started.elapsed() < Duration::from_secs(20));
    wait_connections(addr, 1, Duration::from_secs(5));
    assert_eq!(get(addr, "k"), b"VALUE k 0 1\r\nv\r\nEND\r\n");
    assert_eq!(get(addr, "x"), b"END\r\n");
}

#[test]
fn garbage_at_line_rate_is_bounded_and_others_are_served() {
    let Some(target) = petrel() else { return };
    // RSS here measures what garbage costs: no prefault thread making the arena resident
    // in the background meanwhile.
    let server = target
        .builder()
        .no_udp()
        .threads(2)
        .arg("--prefault-ahead")
        .arg("0")
        .start();
    let addr = server.tcp_addr();
    let pid = server.pid().unwrap();
    set(addr, "k", b"v");
    let before = rss_kib(pid).expect("VmRSS");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let blasters: Vec<_> = (0..2)
        .map(|t| {
            let stop = stop.clone();
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(1000 + t);
                let mut chunk = vec![0u8; 64 * 1024];
                let mut connections = 0;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    connections += 1;
                    s.set_write_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    // Thread 0: binary noise (no newline for long: closed
                    // as an over-long line); thread 1: garbage lines
                    // (answered ERROR; never read, so backpressure).
                    for b in chunk.iter_mut() {
                        *b = (rng.next_u64() & 0xff) as u8;
                        if t == 1 && rng.chance(5) {
                            *b = b'\n';
                        } else if t == 0 && *b == b'\n' {
                            *b = b'x';
                        }
                    }
                    while !stop.load(Ordering::Relaxed) {
                        match s.write(&chunk) {
                            Ok(n) => {
                                sent.fetch_add(n as u64, Ordering::Relaxed);
                            }
                            Err(_) => break,
                        }
                    }
                }
                connections
            })
        })
        .collect();
    // A well-behaved client meanwhile: every round trip within 2 s (well
    // under a second here; slack for a loaded CI machine).
    let mut c = Conn::connect(addr);
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    let mut peak = before;
    while Instant::now() < until {
        let t = Instant::now();
        c.check(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
        worst = worst.max(t.elapsed());
        peak = peak.max(rss_kib(pid).expect("VmRSS"));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let connections: u32 = blasters.into_iter().map(|b| b.join().unwrap()).sum();
    drop(c);
    assert!(
        worst < Duration::from_secs(2),
        "a get took {worst:?} during the flood"
    );
    assert!(
        peak < before + 32 * 1024,
        "RSS grew from {before} KiB to {peak} KiB under garbage"
    );
    assert!(connections >= 2);
    eprintln!(
        "garbage: {} MiB sent over {connections} connections; worst get {worst:?}; RSS {before} -> {peak} KiB",
        sent.load(Ordering::Relaxed) >> 20
    );
    wait_connections(addr, 1, Duration::from_secs(5));
}

#[test]
fn sigterm_under_load_finishes_replies_in_flight_and_exits_0() {
    let Some(target) = petrel() else { return };
    let mut server = target.builder().no_udp().threads(2).start();
    let addr = server.tcp_addr();
    let big = stamped("big", 3, 300 * 1024);
    set(addr, "big", &big);
    // Load: 4 clients doing sets and gets until the server goes away.
    let stop = Arc::new(AtomicBool::new(false));
    // Connected here, before the SIGTERM below: a thread that only got to connect after it
    // would find the listener closed.
    let load: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            let mut c = TcpStream::connect(addr).unwrap();
            std::thread::spawn(move || {
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut ops = 0u64;
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) && ops < 1_000_000 {
                    let key = format!("l{t}-{}", ops % 100);
                    let req = [
                        storage_cmd("set", &key, 0, 0, b"0123456789", false),
                        format!("get {key}\r\n").into_bytes(),
                    ]
                    .concat();
                    if c.write_all(&req).is_err() {
                        break;
                    }
                    // STORED + VALUE..END: read until END or EOF.
                    let mut got = Vec::new();
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return ops,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                        if got.ends_with(b"END\r\n") {
                            break;
                        }
                    }
                    ops += 1;
                }
                ops
            })
        })
        .collect();
    // A reply in flight: three big values asked for, not yet read.
    let mut inflight = TcpStream::connect(addr).unwrap();
    inflight.write_all(&b"get big\r\n".repeat(3)).unwrap();
    // the server has started replying (peek leaves the bytes unread)
    inflight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    inflight
        .peek(&mut [0u8; 1])
        .expect("the reply starts within 10 s");
    server.signal(libc::SIGTERM);
    // Read only now: all three replies arrive whole, then EOF.
    inflight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    inflight.read_to_end(&mut got).expect("reply then EOF");
    assert_eq!(
        got,
        value_reply("big", 0, &big).repeat(3),
        "replies in flight finish"
    );
    let status = server
        .wait_timeout(Duration::from_secs(10))
        .expect("petrel exits after SIGTERM");
    stop.store(true, Ordering::Relaxed);
    let ops: u64 = load.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(ops > 0, "the load ran");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; log:\n{}",
        server.log()
    );
}

#[test]
fn sigkill_then_restart_on_the_same_port_at_once() {
    let Some(target) = petrel() else { return };
    let builder = target.builder().threads(2);
    let port = free_port_pair();
    let mut first: Server = builder.try_start(port, port).expect("first start");
    let addr = first.tcp_addr();
    // Established connections with traffic, so the port has live and then
    // closing sockets when the process dies.
    let mut conns: Vec<Conn> = (0..20).map(|_| Conn::connect(addr)).collect();
    for c in &mut conns {
        c.check(b"mn\r\n", b"MN\r\n");
    }
    first.signal(libc::SIGKILL);
    first.wait_timeout(Duration::from_secs(5)).expect("killed");
    let t = Instant::now();
    let second = builder
        .try_start(port, port)
        .unwrap_or_else(|e| panic!("restart on port {port} failed: {e}"));
    let up = t.elapsed();
    let mut c = Conn::connect(second.tcp_addr());
    c.check(b"mn\r\n", b"MN\r\n");
    drop(conns);
    assert!(up < Duration::from_secs(5), "restart took {up:?}");
    eprintln!("restart on the same port: accepting after {up:?}");
}

/// A free loopback TCP port (for the admin endpoint).
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the data port counts `n` open connections, asking on the
/// admin port (which does not count against `-c`).
fn wait_admin_connections(admin: u16, n: u64) {
    wait_curr_connections(
        || admin_stat(admin, "curr_connections"),
        n,
        Duration::from_secs(10),
    );
}

/// `stats` from the admin endpoint (the front end's counters live there).
fn admin_stat(port: u16, name: &str) -> u64 {
    stat(SocketAddr::from(([127, 0, 0, 1], port)), name)
}

#[test]
fn limits_answer_like_memcached_and_are_counted() {
    let Some(target) = petrel() else { return };
    let admin = free_tcp_port();
    let server = target
        .builder()
        .no_udp()
        .max_item("2k")
        .conn_limit(4)
        .arg("--read-buffer")
        .arg("8k")
        .arg("--write-buffer")
        .arg("4k")
        .arg("--idle-timeout")
        .arg("2")
        .arg("--admin-port")
        .arg(&admin.to_string())
        .start();
    let addr = server.tcp_addr();
    let mut c = Conn::connect(addr);
    // Item size: memcached's reply, the data swallowed, the connection kept.
    c.check(
        &storage_cmd("set", "big", 0, 0, &[b'x'; 3000], false),
        b"SERVER_ERROR object too large for cache\r\n",
    );
    c.check(&storage_cmd("set", "k", 0, 0, b"v", false), b"STORED\r\n");
    // A multi-get line within the 8k read buffer less 2k (about 3,000
    // keys)...
    let mut line = b"get".to_vec();
    while line.len() < 6000 {
        line.extend_from_slice(b" k");
    }
    line.extend_from_slice(b"\r\n");
    let keys = (line.len() - 5) / 2;
    c.send(&line);
    let reply = c.read_until_suffix(b"END\r\n", Duration::from_secs(10));
    assert_eq!(
        reply,
        b"VALUE k 0 1\r\nv\r\n"
            .repeat(keys)
            .into_iter()
            .chain(b"END\r\n".iter().copied())
            .collect::<Vec<u8>>()
    );
    // ... and one that does not: closed, as memcached closes on lines it
    // cannot hold.
    let mut long = Conn::connect(addr);
    let mut line = b"get".to_vec();
    while line.len() < 7000 {
        line.extend_from_slice(b" k");
    }
    line.extend_from_slice(b"\r\n");
    long.send(&line);
    assert_eq!(long.read_to_eof(Duration::from_secs(5)), Some(Vec::new()));
    // Any other line over 2048 bytes without a newline: closed (memcached).
    let mut junk = Conn::connect(addr);
    junk.send(&[b'x'; 2100]);
    assert_eq!(junk.read_to_eof(Duration::from_secs(5)), Some(Vec::new()));
    // Connections: 4 allowed (c + three more), the fifth is told and closed.
    // First the server must have counted `long` and `junk` out (asked on the
    // admin port, which does not count against -c), and `c` must be fresh,
    // or the 2 s idle timeout could close it while the others connect.
    wait_admin_connections(admin, 1);
    c.check(b"mn\r\n", b"MN\r\n");
    let _a = Conn::connect(addr);
    let _b = Conn::connect(addr);
    let _d = Conn::connect(addr);
    let mut over = Conn::connect(addr);
    assert_eq!(
        over.read_to_eof(Duration::from_secs(5)),
        Some(b"SERVER_ERROR too many open connections\r\n".to_vec())
    );
    drop((_a, _b, _d));
    // (Asked on the admin port: a data-port connection could be refused
    // while the server has not yet counted the dropped ones out.)
    wait_admin_connections(admin, 1);
    assert_eq!(stat(addr, "petrel_error_closed"), 2);
    assert_eq!(admin_stat(admin, "engine_rejected_connections"), 1);
    assert_eq!(stat(addr, "store_too_large"), 1);
    // Idle: the first connection, unused since, is closed after 2 s.
    assert_eq!(c.read_to_eof(Duration::from_secs(5)), Some(Vec::new()));
    assert!(admin_stat(admin, "frontend_idle_closed") >= 1);
}
