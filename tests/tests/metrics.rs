//! The admin endpoint's metrics, read the way a monitoring system reads them: `/metrics` is
//! parsed by Python's `prometheus_client` text parser (an independent implementation of the
//! exposition format) and `/metrics.json` by Python's `json`; every counter must move exactly as
//! the requests sent say, and no other counter may move. Also: the admin port's text protocol
//! and HTTP errors, and the command log's sampling rate and rotation end to end.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use petrel_tests::server::{free_port_pair, Server, Target};
use petrel_tests::tcp::Conn;
use petrel_tests::udp::UdpClient;

/// Parses the exposition with prometheus_client and the JSON with json; prints one
/// `key value` line per sample (`prom:` / `json:` prefixed), labels sorted.
const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
def key(name, labels):
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
prom = open(sys.argv[1]).read()
types = {}
for fam in text_string_to_metric_families(prom):
    for s in fam.samples:
        types[s.name] = fam.type
        print("prom:" + key(s.name, s.labels), repr(float(s.value)), fam.type)
doc = json.load(open(sys.argv[2]))
for m in doc["metrics"]:
    for s in m["samples"]:
        if "value" in s:
            print("json:" + key(m["name"], s["labels"]), repr(float(s["value"])), m["type"])
        else:
            print("json:" + key(m["name"] + "_count", s["labels"]), repr(float(s["count"])), m["type"])
"#;

struct Scrape {
    prom: BTreeMap<String, f64>,
    json: BTreeMap<String, f64>,
    /// Sample key -> Prometheus family type.
    kind: BTreeMap<String, String>,
}

impl Scrape {
    fn get(&self, key: &str) -> f64 {
        *self
            .prom
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in /metrics"))
    }
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("admin reply");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    assert_eq!(len, body.len(), "Content-Length matches the body");
    (status, body.to_string())
}

fn scrape(admin: SocketAddr) -> Scrape {
    let (st, prom) = http_get(admin, "/metrics");
    assert_eq!(st, 200);
    let (st, json) = http_get(admin, "/metrics.json");
    assert_eq!(st, 200);
    parse(&prom, &json)
}

/// Both expositions through the Python parsers.
fn parse(prom: &str, json: &str) -> Scrape {
    static SCRAPES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir();
    let n = format!(
        "{}-{}",
        std::process::id(),
        SCRAPES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let pp = dir.join(format!("petrel-metrics-{n}.prom"));
    let jp = dir.join(format!("petrel-metrics-{n}.json"));
    std::fs::write(&pp, prom).unwrap();
    std::fs::write(&jp, json).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(PARSER)
        .arg(&pp)
        .arg(&jp)
        .output()
        .expect("python3 (scripts/setup installs it with prometheus_client)");
    let _ = std::fs::remove_file(&pp);
    let _ = std::fs::remove_file(&jp);
    assert!(
        out.status.success(),
        "the parsers rejected the output: {}\n---\n{}",
        String::from_utf8_lossy(&out.stderr),
        &prom[..prom.len().min(2000)]
    );
    let mut s = Scrape {
        prom: BTreeMap::new(),
        json: BTreeMap::new(),
        kind: BTreeMap::new(),
    };
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut w = line.split(' ');
        let (k, v, t) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
        let v: f64 = v.parse().unwrap();
        if let Some(k) = k.strip_prefix("prom:") {
            s.prom.insert(k.to_string(), v);
            s.kind.insert(k.to_string(), t.to_string());
        } else if let Some(k) = k.strip_prefix("json:") {
            s.json.insert(k.to_string(), v);
        }
    }
    s
}

fn start(extra: &[&str]) -> Option<(Server, SocketAddr)> {
    let target = Target::petrel()?;
    let admin_port = free_port_pair();
    let mut b = target
        .builder()
        .threads(2)
        .arg("--admin-port")
        .arg(&admin_port.to_string());
    for a in extra {
        b = b.arg(a);
    }
    let server = b.start();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(admin).is_err() {
        assert!(
            Instant::now() < deadline,
            "admin port never opened:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((server, admin))
}

fn lat(transport: &str, class: &str) -> String {
    format!("petrel_request_duration_seconds_count{{class={class},transport={transport}}}")
}

fn plain(name: &str) -> String {
    format!("{name}{{}}")
}

#[test]
fn every_counter_moves_as_the_requests_say() {
    let Some((server, admin)) = start(&[]) else {
        return;
    };
    // the start-up probe's connection is gone before counting begins
    let deadline = Instant::now() + Duration::from_secs(5);
    let before = loop {
        let s = scrape(admin);
        let settled = s.get(&plain("petrel_engine_curr_connections")) == 0.0
            && s.get(&plain("petrel_engine_total_connections_total")) >= 1.0;
        if settled || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let mut c = Conn::connect(server.tcp_addr());
    let mut sent = 0usize;
    let mut received = 0usize;
    let mut check = |c: &mut Conn, req: &[u8], reply: &[u8]| {
        c.check(req, reply);
        sent += req.len();
        received += reply.len();
    };
    for i in 0..5 {
        check(
            &mut c,
            format!("set k{i} 0 0 2\r\nv{i}\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    check(&mut c, b"get k0\r\n", b"VALUE k0 0 2\r\nv0\r\nEND\r\n");
    check(
        &mut c,
        b"get k1 nope k2\r\n",
        b"VALUE k1 0 2\r\nv1\r\nVALUE k2 0 2\r\nv2\r\nEND\r\n",
    );
    check(&mut c, b"get nope\r\n", b"END\r\n");
    check(&mut c, b"delete k3\r\n", b"DELETED\r\n");
    check(&mut c, b"delete nope\r\n", b"NOT_FOUND\r\n");
    check(&mut c, b"set n 0 0 1\r\n5\r\n", b"STORED\r\n");
    check(&mut c, b"incr n 2\r\n", b"7\r\n");
    check(&mut c, b"decr nope 1\r\n", b"NOT_FOUND\r\n");
    check(&mut c, b"touch k4 100\r\n", b"TOUCHED\r\n");
    check(&mut c, b"mg k0 v\r\n", b"VA 2\r\nv0\r\n");
    check(&mut c, b"mg nope v\r\n", b"EN\r\n");
    check(&mut c, b"ms m 1\r\nx\r\n", b"HD\r\n");
    check(&mut c, b"bogus\r\n", b"ERROR\r\n");
    check(
        &mut c,
        b"version\r\n",
        b"VERSION 1.6.18\r\n", // memcached's version, which Petrel reports
    );

    let mut u = UdpClient::connect(server.udp_addr());
    let mut udp_gets = 0;
    for _ in 0..3 {
        let r = u
            .request(
                b"get k0\r\n",
                |b| b.ends_with(b"END\r\n"),
                Duration::from_secs(5),
            )
            .expect("UDP reply");
        assert_eq!(r.bytes, b"VALUE k0 0 2\r\nv0\r\nEND\r\n");
        udp_gets += 1;
    }

    // (key, expected delta); latency is recorded just after a reply is handed to the socket,
    // which can be a moment after the client has read it: scrape until it is all there
    let expect: Vec<(String, f64)> = vec![
        (
            plain("petrel_engine_cmd_get_total"),
            (1 + 3 + 1 + 2 + udp_gets) as f64,
        ),
        (
            plain("petrel_engine_get_hits_total"),
            (1 + 2 + 1 + udp_gets) as f64,
        ),
        (plain("petrel_engine_get_misses_total"), 3.0),
        (plain("petrel_engine_cmd_set_total"), 7.0),
        (plain("petrel_engine_cmd_touch_total"), 1.0),
        (plain("petrel_engine_touch_hits_total"), 1.0),
        (plain("petrel_engine_cmd_meta_total"), 3.0),
        (plain("petrel_engine_delete_hits_total"), 1.0),
        (plain("petrel_engine_delete_misses_total"), 1.0),
        (plain("petrel_engine_incr_hits_total"), 1.0),
        (plain("petrel_engine_decr_misses_total"), 1.0),
        (plain("petrel_engine_store_stored_total"), 7.0),
        (plain("petrel_engine_error_unknown_command_total"), 1.0),
        (plain("petrel_engine_total_connections_total"), 1.0),
        (plain("petrel_frontend_tcp_bytes_read_total"), sent as f64),
        (
            plain("petrel_frontend_tcp_bytes_written_total"),
            received as f64,
        ),
        (
            plain("petrel_frontend_udp_datagrams_received_total"),
            udp_gets as f64,
        ),
        (
            plain("petrel_frontend_udp_datagrams_sent_total"),
            udp_gets as f64,
        ),
        (plain("petrel_store_stores_total"), 7.0),
        (plain("petrel_store_deletes_total"), 1.0),
        (plain("petrel_store_ariths_total"), 1.0),
        (plain("petrel_store_touches_total"), 1.0),
        // delete nope, decr nope
        (plain("petrel_store_store_not_found_total"), 2.0),
        (lat("tcp", "get"), 3.0),
        (lat("tcp", "set"), 6.0),
        (lat("tcp", "delete"), 2.0),
        (lat("tcp", "arith"), 2.0),
        (lat("tcp", "touch"), 1.0),
        (lat("tcp", "meta_get"), 2.0),
        (lat("tcp", "meta_set"), 1.0),
        (lat("tcp", "invalid"), 1.0),
        (lat("tcp", "admin"), 1.0),
        (lat("udp", "get"), udp_gets as f64),
        // from 127.0.0.1, allowlisted by default
        (
            plain("petrel_udp_guard_requests_trusted_total"),
            udp_gets as f64,
        ),
    ];
    // engine bytes count TCP bytes and UDP payload bytes handled
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let s = scrape(admin);
        let ok = expect
            .iter()
            .all(|(k, d)| s.prom.get(k).is_some_and(|v| v - before.get(k) == *d));
        if ok || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for (k, d) in &expect {
        assert_eq!(after.get(k) - before.get(k), *d, "{k}");
    }
    // gauges
    assert_eq!(
        after.get(&plain("petrel_store_items")),
        6.0,
        "k0..k4 - k3 + n + m"
    );
    assert_eq!(after.get(&plain("petrel_engine_curr_connections")), 1.0);
    // one name per figure: the front end's copies of the engine's figures are not exposed
    for k in [
        "petrel_frontend_curr_connections",
        "petrel_frontend_total_connections_total",
        "petrel_store_gets_total",
    ] {
        assert!(!after.prom.contains_key(&plain(k)), "{k} is exposed");
    }
    assert!(after.get(&plain("petrel_store_item_bytes")) > 0.0);
    assert!(after.get(&plain("petrel_store_segments_used")) >= 1.0);
    assert!(after.get(&plain("petrel_store_hash_slots_used")) >= 6.0);
    // the histogram's buckets are cumulative and end at the count
    let inf = after.get("petrel_request_duration_seconds_bucket{class=get,le=+Inf,transport=tcp}");
    assert_eq!(inf, after.get(&lat("tcp", "get")));
    let max = after.get("petrel_request_duration_max_seconds{class=get,transport=tcp}");
    assert!(max > 0.0 && max < 5.0, "max {max}");

    // Every worker's epoll holds the one UDP socket, so a datagram may wake both
    // workers (threads(2)) and the one that finds it taken counts an empty receive:
    // how many is timing, at most one per worker per datagram.
    let empty = plain("petrel_udp_empty_receives_total");
    let empty_moved = after.get(&empty) - before.get(&empty);
    assert!(
        empty_moved <= (2 * udp_gets) as f64,
        "{empty} moved by {empty_moved} for {udp_gets} datagrams and 2 workers"
    );
    // no other counter moved
    let moved_by_design = |k: &str| {
        k == empty
            || expect.iter().any(|(e, _)| e == k)
            || k.starts_with("petrel_engine_bytes_")
            || k.starts_with("petrel_log_")
            || k.starts_with("petrel_request_duration_seconds_")
            || k.starts_with("process_cpu_seconds_total")
    };
    for (k, v) in &after.prom {
        if after.kind.get(k).map(String::as_str) != Some("counter") || moved_by_design(k) {
            continue;
        }
        let was = before.prom.get(k).copied().unwrap_or(0.0);
        assert_eq!(*v, was, "{k} moved although no request should move it");
    }
    // the JSON (read a moment later) agrees with the text on every counter that the
    // requests moved, and has every family the text has
    for (k, _) in &expect {
        assert_eq!(
            after.json.get(k),
            after.prom.get(k),
            "{k}: /metrics and /metrics.json differ"
        );
    }
    for k in after.prom.keys() {
        let name = k.split('{').next().unwrap();
        let family = name
            .strip_suffix("_sum")
            .or_else(|| name.strip_suffix("_bucket"))
            .unwrap_or(name);
        assert!(
            after.json.keys().any(|j| j.starts_with(family)),
            "{family} missing from /metrics.json"
        );
    }
    drop(c);
}

#[test]
fn admin_text_protocol_and_http_errors() {
    let Some((server, admin)) = start(&["--stats-log-interval", "1"]) else {
        return;
    };
    let mut c = Conn::connect(admin);
    c.send(b"stats\r\n");
    let mut lines = Vec::new();
    loop {
        let l = String::from_utf8(c.read_line()).unwrap();
        if l == "END\r\n" {
            break;
        }
        assert!(l.starts_with("STAT "), "{l:?}");
        lines.push(l);
    }
    assert!(lines[0].starts_with("STAT pid "), "memcached's lines first");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("STAT curr_connections ")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("STAT frontend_tcp_bytes_read ")));
    assert!(lines.iter().any(|l| l.starts_with("STAT rusage_user ")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("STAT request_duration:tcp:admin:p99_us ")));
    c.check(
        b"version\r\n",
        b"VERSION 1.6.18\r\n", // memcached's version, which Petrel reports
    );
    c.check(b"flush_all\r\n", b"ERROR\r\n");
    let (st, _) = http_get(admin, "/nope");
    assert_eq!(st, 404);
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"DELETE /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    // garbage and an over-long line: an answer, and the endpoint still serves
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[b'z'; 10_000]).unwrap();
    let mut r = Vec::new();
    let _ = s.read_to_end(&mut r);
    assert!(
        r.starts_with(b"CLIENT_ERROR"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(http_get(admin, "/metrics").0, 200);
    // at most 8 admin connections at once: a 9th is refused with a line, and
    // once they are gone the endpoint serves again
    drop(c);
    // 8 connections each answered once are admitted; until the server has seen the earlier
    // ones close, one of them may be refused instead, so try again
    let mut idle: Vec<TcpStream> = Vec::new();
    petrel_tests::wait::wait_until(
        Duration::from_secs(10),
        "8 admin connections admitted",
        || {
            idle.clear(); // close the last attempt's first
            idle.extend((0..8).map(|_| TcpStream::connect(admin).unwrap()));
            idle.iter_mut().all(|s| {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(b"version\r\n").unwrap();
                let mut b = [0u8; 64];
                let n = s.read(&mut b).unwrap_or(0);
                b[..n].starts_with(b"VERSION ")
            })
        },
    );
    let mut extra = TcpStream::connect(admin).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r = String::new();
    let _ = extra.read_to_string(&mut r);
    assert_eq!(r, "SERVER_ERROR too many admin connections\r\n");
    for mut i in &idle {
        // the 8 were accepted: nothing to read, no refusal
        i.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut b = [0u8; 64];
        assert!(
            i.read(&mut b).is_err(),
            "an admin connection within the bound was refused"
        );
    }
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = TcpStream::connect(admin).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"version\r\nquit\r\n").unwrap();
        let mut r = String::new();
        let _ = c.read_to_string(&mut r);
        if r.starts_with("VERSION ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "admin endpoint did not recover: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // the periodic one-line stats log
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("stats: curr_connections=") {
        assert!(
            Instant::now() < deadline,
            "no stats line:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn command_log_samples_one_in_n_and_rotates() {
    let dir = std::env::temp_dir().join(format!("petrel-klog-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("klog");
    let p = path.to_str().unwrap().to_string();
    let Some((server, admin)) = start(&[
        "--klog-file",
        &p,
        "--klog-sample",
        "10",
        "--klog-max-bytes",
        "64k",
    ]) else {
        return;
    };
    const REQUESTS: usize = 20_000;
    let mut c = Conn::connect(server.tcp_addr());
    c.check(b"set hot 0 0 3\r\nabc\r\n", b"STORED\r\n");
    // pipelined in chunks: 20k gets
    let one = b"get hot\r\n";
    let reply = b"VALUE hot 0 3\r\nabc\r\nEND\r\n";
    for _ in 0..(REQUESTS - 1) / 1000 {
        c.check(&one.repeat(1000), &reply.repeat(1000));
    }
    c.check(
        &one.repeat((REQUESTS - 1) % 1000),
        &reply.repeat((REQUESTS - 1) % 1000),
    );
    // every sampled request reaches the file (none dropped at this rate)
    let deadline = Instant::now() + Duration::from_secs(10);
    let (sampled, logged, dropped) = loop {
        let s = scrape(admin);
        let v = |n: &str| s.get(&plain(n));
        let t = (
            v("petrel_klog_sampled_total"),
            v("petrel_klog_logged_total"),
            v("petrel_klog_dropped_total"),
        );
        if t.0 == t.1 + t.2 || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(sampled, logged + dropped);
    let peer = format!("127.0.0.1:{}", c.stream().local_addr().unwrap().port());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let cur = read(&path);
    let old = read(&dir.join("klog.1"));
    let lines = cur.lines().count() + old.lines().count();
    // rotation at 64 KiB keeps one old file: more lines than the files hold are gone,
    // so count with the metric and check the files' sizes and format
    assert!(old.len() <= 64 * 1024 && cur.len() <= 64 * 1024);
    assert!(!old.is_empty(), "rotated at least once");
    assert!(
        lines > 0 && (lines as f64) <= logged,
        "{lines} lines in the files, {logged} logged, {sampled} sampled"
    );
    for l in old.lines().chain(cur.lines()) {
        let w: Vec<&str> = l.split(' ').collect();
        assert_eq!(w.len(), 7, "{l}");
        if w[1] != peer {
            // The only other client is the harness's readiness probe: one `stats` on its own
            // connection before the test connects (testkit/src/server.rs), sampled like any request.
            assert_eq!(&w[2..], ["tcp", "stats", "-", "STAT", "0"], "{l}");
            continue;
        }
        if w[3] == "set" {
            assert_eq!(&w[1..], [&peer, "tcp", "set", "hot", "STORED", "3"], "{l}");
        } else {
            assert_eq!(&w[1..], [&peer, "tcp", "get", "hot", "HIT", "3"], "{l}");
        }
    }
    // 1 in 10 at random: binomial(n, 0.1) within 5 sigma
    let n = REQUESTS as f64;
    let (mean, sigma) = (n * 0.1, (n * 0.1 * 0.9).sqrt());
    assert!(
        (sampled - mean).abs() <= 5.0 * sigma,
        "sampled {sampled} of {n}, expected {mean} +- {}",
        5.0 * sigma
    );
    drop(c);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two network namespaces joined by a veth pair (`scripts/netns`), removed on drop.
struct Netns {
    env: Vec<(&'static str, String)>,
}

impl Netns {
    fn script(&self, action: &str) -> bool {
        Command::new(petrel_tests::server::workspace_root().join("scripts/netns"))
            .arg(action)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    fn var(&self, k: &str) -> &str {
        &self.env.iter().find(|(n, _)| *n == k).unwrap().1
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.script("down");
    }
}

/// The server process in its namespace; killed by PID and reaped on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/metrics` and `/metrics.json` fetched inside the server namespace.
fn scrape_in(ns: &str, admin_port: u16) -> Option<Scrape> {
    let fetch = |path: &str| {
        let out = Command::new("timeout")
            .args(["10", "ip", "netns", "exec", ns, "curl", "-sf"])
            .arg(format!("http://127.0.0.1:{admin_port}{path}"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    Some(parse(&fetch("/metrics")?, &fetch("/metrics.json")?))
}

fn sum(s: &Scrape, prefix: &str, must_contain: &str) -> f64 {
    s.prom
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(must_contain))
        .map(|(_, v)| v)
        .sum()
}

/// Through AF_XDP (root only): the worker's latency (transport `xdp`), its
/// per-queue counters and its drops by reason move as the datagrams sent say.
#[test]
fn af_xdp_latency_and_queue_counters() {
    if !petrel_tests::skip::require_root("AF_XDP: CAP_NET_ADMIN, CAP_BPF") {
        return;
    }
    let Some(target) = Target::petrel() else {
        return;
    };
    let id = std::process::id() % 100_000;
    let net = Netns {
        env: vec![
            ("SERVER_NS", format!("petrel-m-s{id}")),
            ("CLIENT_NS", format!("petrel-m-c{id}")),
            ("SERVER_IF", format!("pms{id}")),
            ("CLIENT_IF", format!("pmc{id}")),
            ("SERVER_ADDR", "198.18.61.1".into()),
            ("CLIENT_ADDR", "198.18.61.2".into()),
            ("QUEUES", "2".into()),
        ],
    };
    assert!(net.script("up"), "scripts/netns up failed");
    let (ns, cns, iface) = (
        net.var("SERVER_NS").to_string(),
        net.var("CLIENT_NS").to_string(),
        net.var("SERVER_IF").to_string(),
    );
    let (port, admin) = (11311u16, 11312u16);
    let log = std::env::temp_dir().join(format!("petrel-metrics-xdp-{id}.log"));
    let _server = Child(
        Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&target.path)
            .args([
                "-l",
                "198.18.61.1",
                "-p",
                &port.to_string(),
                "-U",
                &port.to_string(),
            ])
            .args(["-t", "2", "-m", "64", "--admin-port", &admin.to_string()])
            .args(["--udp-allow", "198.18.0.0/15", "--xdp-iface", &iface])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("ip netns exec petrel"),
    );
    let server_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(15);
    let before = loop {
        if let Some(s) = scrape_in(&ns, admin) {
            if server_log().contains("AF_XDP serving") {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no AF_XDP within 15 s:\n{}",
            server_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    const GETS: usize = 50;
    const RUNTS: usize = 3;
    let client = format!(
        r#"
import socket
t = socket.create_connection(("198.18.61.1", {port}), timeout=5)
t.sendall(b"set k 0 0 3\r\nabc\r\n")
assert t.recv(100) == b"STORED\r\n"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
for i in range({GETS}):
    u.sendto(b"\x00\x01\x00\x00\x00\x01\x00\x00get k\r\n", ("198.18.61.1", {port}))
    d = u.recv(2000)
    assert d.endswith(b"VALUE k 0 3\r\nabc\r\nEND\r\n"), d
for i in range({RUNTS}):
    u.sendto(b"\x00\x01\x00\x00", ("198.18.61.1", {port}))
"#
    );
    let out = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", &cns, "python3", "-c", &client])
        .output()
        .expect("client");
    assert!(
        out.status.success(),
        "client: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server_log()
    );
    let key = "petrel_request_duration_seconds_count{class=get,transport=xdp}";
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let s = scrape_in(&ns, admin).expect("admin endpoint");
        let runts = s.get(&plain("petrel_udp_dropped_malformed_total"));
        if (s.get(key) - before.get(key) >= GETS as f64 && runts >= RUNTS as f64)
            || Instant::now() > deadline
        {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(after.get(key) - before.get(key), GETS as f64, "{key}");
    let max = after.get("petrel_request_duration_max_seconds{class=get,transport=xdp}");
    assert!(max > 0.0 && max < 1.0, "xdp get max {max}");
    let rx = |s: &Scrape| sum(s, "petrel_xdp_rx_requests_total", "queue=");
    // Runts reach the datagram layer (udp_*), which drops them.
    assert_eq!(
        rx(&after) - rx(&before),
        (GETS + RUNTS) as f64,
        "AF_XDP request datagrams"
    );
    let runts = |s: &Scrape| s.get(&plain("petrel_udp_dropped_malformed_total"));
    assert_eq!(
        runts(&after) - runts(&before),
        RUNTS as f64,
        "runt datagrams dropped"
    );
    // the kernel UDP socket answered none of them
    assert_eq!(
        after.get(&plain("petrel_frontend_udp_datagrams_received_total")),
        before.get(&plain("petrel_frontend_udp_datagrams_received_total"))
    );
    // every field of the kernel's XDP_STATISTICS is a counter of each queue,
    // in both expositions; no RX or TX descriptor was invalid
    for name in [
        "rx_dropped",
        "rx_invalid",
        "rx_ring_full",
        "fill_ring_empty",
        "tx_invalid",
        "tx_ring_empty",
    ] {
        for q in 0..2 {
            let key = format!("petrel_xdp_kernel_{name}_total{{queue={q}}}");
            let v = after.get(&key);
            assert_eq!(
                after.kind.get(&key).map(String::as_str),
                Some("counter"),
                "{key}"
            );
            assert!(
                after.json.contains_key(&key),
                "{key} missing from /metrics.json"
            );
            eprintln!("{key} {v}");
        }
    }
    assert_eq!(
        sum(&after, "petrel_xdp_kernel_rx_invalid_total", "queue="),
        0.0
    );
    assert_eq!(
        sum(&after, "petrel_xdp_kernel_tx_invalid_total", "queue="),
        0.0
    );
    // with AF_XDP's families too, promtool has nothing to say about the names and types
    let promtool = Command::new("promtool").arg("--version").output();
    if promtool.is_ok() {
        let check = format!(
            "ip netns exec {ns} curl -sf http://127.0.0.1:{admin}/metrics | promtool check metrics"
        );
        let out = Command::new("timeout")
            .args(["20", "sh", "-c", &check])
            .output()
            .expect("promtool");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.trim().is_empty(),
            "promtool check metrics:\n{text}"
        );
    } else {
        petrel_tests::skip::skip("promtool is not installed (scripts/setup installs prometheus)");
    }
    let _ = std::fs::remove_file(&log);
}

/// Every family whose unit is `(unit: seconds)` or `(unit: bytes)` in `/metrics`, by name.
fn families_with_unit(text: &str, units: &[&str]) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter(|l| units.iter().any(|u| l.ends_with(&format!("(unit: {u})"))))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

/// `/proc/PID/stat` fields after the command name: `f[0]` is field 3.
fn proc_stat(pid: u32) -> Vec<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 1..];
    rest.split_ascii_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect()
}

/// A `/proc/PID/status` figure in kB, as bytes.
fn proc_status_bytes(pid: u32, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"));
    kb * 1024.0
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Units: every `seconds` and `bytes` metric against a measurement that does not come from
/// Petrel's own figures: the wall clock around the server's start, `/proc` for the process,
/// the bytes the client sent and received, the command log file's size on disk, the client's
/// round trips (each server latency lies inside one), the flags given. A new `seconds` or
/// `bytes` metric without such a check fails this test.
#[test]
fn every_seconds_and_bytes_metric_matches_an_independent_measurement() {
    let dir = std::env::temp_dir().join(format!("petrel-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let klog = dir.join("klog");
    let spawned = unix_now();
    let Some((server, admin)) = start(&[
        "-I",
        "1m",
        "--klog-file",
        klog.to_str().unwrap(),
        "--klog-sample",
        "1",
    ]) else {
        return;
    };
    let ready = unix_now();
    let pid = server.pid().expect("running");
    // the start-up probe (a `stats`) is counted and its connection gone before counting begins
    let deadline = Instant::now() + Duration::from_secs(5);
    let before = loop {
        let s = scrape(admin);
        let settled = s.get(&plain("petrel_engine_curr_connections")) == 0.0
            && s.get(&plain("petrel_engine_bytes_read_total")) >= 7.0;
        if settled || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    // traffic measured by the client
    let mut c = Conn::connect(server.tcp_addr());
    let (mut sent, mut received) = (0usize, 0usize);
    let mut rtts: Vec<f64> = Vec::new();
    let mut exchange = |c: &mut Conn, req: &[u8], reply: &[u8], rtts: Option<&mut Vec<f64>>| {
        let t = Instant::now();
        c.check(req, reply);
        if let Some(r) = rtts {
            r.push(t.elapsed().as_secs_f64());
        }
        sent += req.len();
        received += reply.len();
    };
    let item_bytes = |s: &Scrape| s.get(&plain("petrel_store_item_bytes"));
    let small = "s".repeat(1000);
    let large = "l".repeat(3000);
    exchange(
        &mut c,
        format!("set k1 0 0 1000\r\n{small}\r\n").as_bytes(),
        b"STORED\r\n",
        None,
    );
    let after_small = scrape(admin);
    exchange(
        &mut c,
        format!("set k2 0 0 3000\r\n{large}\r\n").as_bytes(),
        b"STORED\r\n",
        None,
    );
    let after_large = scrape(admin);
    for _ in 0..200 {
        exchange(
            &mut c,
            b"get k1\r\n",
            format!("VALUE k1 0 1000\r\n{small}\r\nEND\r\n").as_bytes(),
            Some(&mut rtts),
        );
    }
    // a value over -I 1m: refused, its data block swallowed
    const REFUSED: usize = 1_500_000;
    exchange(
        &mut c,
        format!("set big 0 0 {REFUSED}\r\n{}\r\n", "x".repeat(REFUSED)).as_bytes(),
        b"SERVER_ERROR object too large for cache\r\n",
        None,
    );
    // the latency of the last get is recorded just after its reply is handed to the socket
    let deadline = Instant::now() + Duration::from_secs(10);
    let (after, scrape_began) = loop {
        let began = unix_now();
        let s = scrape(admin);
        let logged = s.get(&plain("petrel_klog_written_bytes_total"));
        let on_disk = [&klog, &dir.join("klog.1")]
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum::<u64>() as f64;
        // a worker adds the bytes it moved to the counters after its round of events
        let moved = |k: &str| s.get(&plain(k)) - before.get(&plain(k));
        let all_in = s.get(&lat("tcp", "get")) == 200.0
            && logged == on_disk
            && moved("petrel_frontend_tcp_bytes_read_total") == sent as f64
            && moved("petrel_frontend_tcp_bytes_written_total") == received as f64;
        if all_in || Instant::now() > deadline {
            break (s, began);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let scraped = unix_now();
    let text = http_get(admin, "/metrics").1;
    // /proc after the scrapes: the process is idle, its figures barely move
    let stat = proc_stat(pid);
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let delta = |k: &str| after.get(&plain(k)) - before.get(&plain(k));

    let mut checked: Vec<&str> = Vec::new();
    let mut check = |name: &'static str, ok: bool, what: String| {
        assert!(ok, "{name}: {what}");
        eprintln!("ok {name}: {what}");
        checked.push(name);
    };
    let v = |k: &str| after.get(&plain(k));
    // seconds
    let up = v("petrel_uptime_seconds");
    check(
        "petrel_uptime_seconds",
        // started_at: the whole second of a moment between spawn and ready
        up >= scrape_began - ready && up <= scraped - spawned.floor(),
        format!(
            "{up} for a process spawned {:.2} s before",
            scraped - spawned
        ),
    );
    let st = v("process_start_time_seconds");
    check(
        "process_start_time_seconds",
        // btime is in whole seconds
        st >= spawned.floor() - 1.0 && st <= ready + 1.0,
        format!("{st}, spawned at {spawned:.2}, ready at {ready:.2}"),
    );
    let cpu = v("process_cpu_seconds_total");
    let proc_cpu = (stat[11] + stat[12]) as f64 / ticks;
    check(
        "process_cpu_seconds_total",
        (cpu - proc_cpu).abs() <= 0.05 + 2.0 / ticks,
        format!("{cpu} vs /proc utime+stime {proc_cpu}"),
    );
    let sum = after.get("petrel_request_duration_seconds_sum{class=get,transport=tcp}")
        - before.get("petrel_request_duration_seconds_sum{class=get,transport=tcp}");
    let client_sum: f64 = rtts.iter().sum();
    check(
        "petrel_request_duration_seconds",
        sum > 0.0 && sum <= client_sum,
        format!("sum of 200 get latencies {sum} s, of their round trips {client_sum} s"),
    );
    let max = after.get("petrel_request_duration_max_seconds{class=get,transport=tcp}");
    let client_max = rtts.iter().cloned().fold(0.0, f64::max);
    check(
        "petrel_request_duration_max_seconds",
        max > 0.0 && max <= client_max,
        format!("largest get latency {max} s, largest round trip {client_max} s"),
    );
    // Eviction pauses lie inside the process's life, each inside one worker (four by
    // default): their sum is at most four times the wall time since spawn, the longest at
    // most that wall time.
    let alive = scraped - spawned;
    let pause_sum = v("petrel_store_evict_pause_seconds_sum");
    check(
        "petrel_store_evict_pause_seconds",
        (0.0..=4.0 * alive).contains(&pause_sum),
        format!("sum {pause_sum} s for a process alive {alive:.2} s"),
    );
    let pause_max = v("petrel_store_evict_pause_max_seconds");
    check(
        "petrel_store_evict_pause_max_seconds",
        (0.0..=alive).contains(&pause_max) && pause_max <= pause_sum.max(0.0) + 1e-9,
        format!("max {pause_max} s, sum {pause_sum} s, alive {alive:.2} s"),
    );
    // bytes
    for (name, want) in [
        ("petrel_engine_bytes_read_total", sent),
        ("petrel_frontend_tcp_bytes_read_total", sent),
        ("petrel_engine_bytes_written_total", received),
        ("petrel_frontend_tcp_bytes_written_total", received),
    ] {
        let d = delta(name);
        check(
            name,
            d == want as f64,
            format!("{d}, the client counted {want}"),
        );
    }
    let d = delta("petrel_engine_swallowed_bytes_total");
    check(
        "petrel_engine_swallowed_bytes_total",
        d == (REFUSED + 2) as f64,
        format!("{d} for a refused {REFUSED}-byte value and its \\r\\n"),
    );
    let (i0, i1, i2) = (
        item_bytes(&before),
        item_bytes(&after_small),
        item_bytes(&after_large),
    );
    check(
        "petrel_store_item_bytes",
        // the same key length and header: the two items differ by their values' lengths
        (i2 - i1) - (i1 - i0) == 2000.0 && i1 - i0 >= 1000.0 && i1 - i0 < 1000.0 + 64.0,
        format!(
            "+{} for a 1000-byte value, +{} for a 3000-byte one",
            i1 - i0,
            i2 - i1
        ),
    );
    let w = after_large.get(&plain("petrel_store_segment_bytes_written"))
        - before.get(&plain("petrel_store_segment_bytes_written"));
    check(
        "petrel_store_segment_bytes_written",
        w >= i2 - i0 && w <= i2 - i0 + 2.0 * 64.0,
        format!("+{w} for two new items of {} bytes", i2 - i0),
    );
    let logged = v("petrel_klog_written_bytes_total");
    let on_disk = [&klog, &dir.join("klog.1")]
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum::<u64>() as f64;
    check(
        "petrel_klog_written_bytes_total",
        logged == on_disk && logged > 0.0,
        format!("{logged}, the command log files hold {on_disk}"),
    );
    check(
        "petrel_memory_limit_bytes",
        v("petrel_memory_limit_bytes") == (64u64 << 20) as f64,
        format!("{} for -m 64", v("petrel_memory_limit_bytes")),
    );
    check(
        "petrel_item_size_limit_bytes",
        v("petrel_item_size_limit_bytes") == (1u64 << 20) as f64,
        format!("{} for -I 1m", v("petrel_item_size_limit_bytes")),
    );
    let rss = v("process_resident_memory_bytes");
    let proc_rss = proc_status_bytes(pid, "VmRSS:");
    check(
        "process_resident_memory_bytes",
        // the admin thread's allocations come and go between the two readings
        (rss - proc_rss).abs() <= 0.1 * proc_rss + (4u64 << 20) as f64,
        format!("{rss} vs /proc VmRSS {proc_rss}"),
    );
    let vsz = v("process_virtual_memory_bytes");
    let proc_vsz = stat[20] as f64;
    check(
        "process_virtual_memory_bytes",
        // an admin connection's thread (stack, malloc arena) exists during the scrape only
        (vsz - proc_vsz).abs() <= (160u64 << 20) as f64,
        format!("{vsz} vs /proc vsize {proc_vsz}"),
    );
    // the item memory (arena): within the process's own figures in /proc, and at least -m
    let arena = v("petrel_memory_arena_bytes");
    let proc_size = proc_status_bytes(pid, "VmSize:");
    check(
        "petrel_memory_arena_bytes",
        arena >= (64u64 << 20) as f64 && arena <= proc_size,
        format!("{arena} for -m 64, /proc VmSize {proc_size}"),
    );
    let resident = v("petrel_memory_arena_resident_bytes");
    check(
        "petrel_memory_arena_resident_bytes",
        // the two items stored are resident; the arena is part of the process's RSS
        resident >= 4096.0 && resident <= proc_rss + (4u64 << 20) as f64 && resident <= arena,
        format!("{resident} of {arena}, /proc VmRSS {proc_rss}"),
    );
    let locked = v("petrel_memory_arena_locked_bytes");
    let proc_locked = proc_status_bytes(pid, "VmLck:");
    check(
        "petrel_memory_arena_locked_bytes",
        locked <= proc_locked && locked <= resident + (4u64 << 20) as f64,
        format!("{locked}, /proc VmLck {proc_locked}"),
    );
    // (not seconds or bytes, but read from /proc the same way)
    let fds = v("process_open_fds");
    let proc_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64;
    assert!(
        (fds - proc_fds).abs() <= 3.0,
        "{fds} fds vs /proc {proc_fds}"
    );

    // every seconds and bytes family of the exposition was checked
    for name in families_with_unit(&text, &["seconds", "bytes"]) {
        assert!(
            checked.contains(&name.as_str()),
            "{name} has no independent check in this test"
        );
    }
    drop(c);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stats_reset_lowers_no_metric() {
    let Some((server, admin)) = start(&[]) else {
        return;
    };
    let mut c = Conn::connect(server.tcp_addr());
    for i in 0..5 {
        c.check(
            format!("set k{i} 0 0 2\r\nv{i}\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    c.check(b"get k0 nope\r\n", b"VALUE k0 0 2\r\nv0\r\nEND\r\n");
    c.check(b"delete k1\r\n", b"DELETED\r\n");
    c.check(b"incr nope 1\r\n", b"NOT_FOUND\r\n");
    let before = scrape(admin);
    assert_eq!(before.get(&plain("petrel_engine_cmd_get_total")), 2.0);
    c.check(b"stats reset\r\n", b"RESET\r\n");
    // what `stats` prints starts again from zero ...
    c.send(b"stats\r\n");
    let text = String::from_utf8(c.read_until_suffix(b"END\r\n", Duration::from_secs(5)))
        .expect("ascii stats");
    for line in [
        "STAT cmd_get 0\r\n",
        "STAT cmd_set 0\r\n",
        "STAT curr_items 4\r\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    // ... and no Prometheus counter (nor histogram count, sum or bucket) goes down
    let after = scrape(admin);
    let mut compared = 0;
    for (k, was) in &before.prom {
        let kind = before.kind.get(k).map(String::as_str);
        if !matches!(kind, Some("counter" | "histogram")) {
            continue;
        }
        let now = after
            .prom
            .get(k)
            .unwrap_or_else(|| panic!("{k} gone after stats reset"));
        assert!(
            now >= was,
            "{k} went down across stats reset: {was} -> {now}"
        );
        compared += 1;
    }
    assert!(compared > 50, "only {compared} counters compared");
    for (k, v) in [
        ("petrel_engine_cmd_get_total", 2.0),
        ("petrel_engine_cmd_set_total", 5.0),
        ("petrel_engine_get_hits_total", 1.0),
        ("petrel_engine_delete_hits_total", 1.0),
        ("petrel_store_stores_total", 5.0),
    ] {
        assert_eq!(after.get(&plain(k)), v, "{k} after stats reset");
    }
    assert_eq!(after.get(&plain("petrel_store_items")), 4.0);
}
