//! memcached's binary protocol end to end: Debian's `memccapable -b` (libmemcached's
//! binary-protocol conformance tests), pylibmc with `binary=True`, the `memcache` crate (binary
//! by default), protocol detection by the first byte and `-B ascii|binary`, each run against
//! memcached 1.6.18 and the server under test with the same expectations.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use petrel_tests::binary::request;
use petrel_tests::server::{Kind, Server, Target};
use petrel_tests::skip::{require_program, skip};

/// memcached is installed (else a visible skip, a failure under `CI`).
fn require_memcached() -> bool {
    require_program(
        "memcached",
        "-h",
        "Debian package memcached; scripts/setup installs it",
    )
}

/// A tool the test needs is missing: a visible skip, a failure under `CI`.
fn missing(what: &str) {
    skip(&format!(
        "{what} is not installed (scripts/setup installs it)"
    ));
}

fn both(target: &Target) -> [(Kind, Server); 2] {
    [
        (Kind::Memcached, Target::memcached().start()),
        (target.kind, target.start()),
    ]
}

/// memccapable's per-test lines (`binary set   [pass]`) and its verdict.
fn memccapable(server: &Server) -> (Vec<String>, String) {
    let out = Command::new("timeout")
        .args([
            "120",
            "memccapable",
            "-b",
            "-t",
            "10",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(server.tcp_port.to_string())
        .output()
        .expect("run memccapable");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let lines = text
        .lines()
        .filter(|l| l.starts_with("binary "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (lines, text)
}

#[test]
fn memccapable_binary_passes_as_against_memcached() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if !require_memcached() {
        return;
    }
    if !Path::new("/usr/bin/memccapable").exists() {
        return missing("memccapable (libmemcached-tools)");
    }
    let [(_, reference), (_, candidate)] = both(&target);
    let (want, ref_text) = memccapable(&reference);
    assert!(
        ref_text.contains("All tests passed") && want.len() >= 27,
        "memccapable -b against memcached:\n{ref_text}"
    );
    let (got, text) = memccapable(&candidate);
    assert_eq!(
        got,
        want,
        "memccapable -b:\n{text}\nserver log:\n{}",
        candidate.log()
    );
    assert!(text.contains("All tests passed"), "{text}");
}

/// pylibmc (Debian's python3-pylibmc, libmemcached underneath) in binary mode: the same
/// operations give the same results from both servers.
#[test]
fn pylibmc_binary_mode() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if !require_memcached() {
        return;
    }
    let python = "/usr/bin/python3";
    let has = Command::new(python)
        .args(["-c", "import pylibmc"])
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        return missing("python3-pylibmc");
    }
    let script = r#"
import pylibmc, sys
c = pylibmc.Client(["127.0.0.1:" + sys.argv[1]], binary=True, behaviors={"cas": True})
def attempt(f):
    try:
        return f()
    except Exception as e:
        return type(e).__name__
out = []
out.append(c.flush_all())
out.append(c.set("a", "1"))
out.append(c.get("a"))
out.append(c.get_multi(["a", "b"]))
out.append(c.add("a", "2"))
out.append(attempt(lambda: c.replace("b", "x")))
out.append(c.incr("a", 5)); out.append(c.decr("a", 2)); out.append(c.decr("a", 100))
v, cas = c.gets("a"); out.append(v)
out.append(c.cas("a", "9", cas)); out.append(attempt(lambda: c.cas("a", "10", cas)))
out.append(c.append("a", "z")); out.append(c.prepend("a", "y")); out.append(c.get("a"))
out.append(c.delete("a")); out.append(c.delete("a"))
out.append(c.set("t", "v", time=100)); out.append(c.touch("t", 0)); out.append(c.touch("nope", 5))
big = b"x" * (1024 * 1024 - 100)
out.append(c.set("big", big)); out.append(c.get("big") == big)
out.append(attempt(lambda: c.set("huge", b"y" * (2 * 1024 * 1024))))
out.append(c.set_multi({"m1": "1", "m2": "2"}))
out.append(sorted(c.get_multi(["m1", "m2", "m3"]).items()))
out.append(c.delete_multi(["m1", "m2", "m3"]))
out.append(attempt(lambda: c.incr("missing", 1)))
stats = c.get_stats()[0][1]
out.append(sorted(k for k in stats if k in ("cmd_get", "cmd_set", "get_hits", "get_misses", "pid")))
print(repr(out))
"#;
    let mut outputs = Vec::new();
    for (kind, server) in both(&target) {
        let out = Command::new("timeout")
            .args(["60", python, "-c", script])
            .arg(server.tcp_port.to_string())
            .output()
            .expect("run python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{kind:?}: pylibmc failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(text);
    }
    assert_eq!(
        outputs[1], outputs[0],
        "pylibmc binary: server under test vs memcached"
    );
    assert!(outputs[0].contains("'y9z'"), "{}", outputs[0]);
}

/// The `memcache` crate speaks the binary protocol unless told otherwise.
#[test]
fn memcache_crate_binary_protocol() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if !require_memcached() {
        return;
    }
    for (kind, server) in both(&target) {
        let url = format!("memcache://127.0.0.1:{}?timeout=10", server.tcp_port);
        let c = memcache::Client::connect(url.as_str()).expect("connect");
        c.set("k", "v", 0).expect("set");
        assert_eq!(c.get::<String>("k").unwrap(), Some("v".into()), "{kind:?}");
        assert_eq!(c.get::<String>("nope").unwrap(), None, "{kind:?}");
        c.set("n", 10u64, 0).expect("set n");
        assert_eq!(c.increment("n", 5).unwrap(), 15, "{kind:?}");
        assert_eq!(c.decrement("n", 20).unwrap(), 0, "{kind:?}");
        assert!(c.add("k", "w", 0).is_err(), "{kind:?}");
        assert!(c.delete("k").unwrap(), "{kind:?}");
        assert!(!c.delete("k").unwrap(), "{kind:?}");
        assert!(c.version().is_ok(), "{kind:?}");
    }
}

/// Sends `data`, then reads until `want` bytes arrived or the peer closed (bounded).
fn exchange(server: &Server, data: &[u8], want: usize) -> (Vec<u8>, bool) {
    exchange_at(server.tcp_addr(), data, want)
}

fn exchange_at(addr: std::net::SocketAddr, data: &[u8], want: usize) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(data).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) if out.len() >= want => break,
            Err(_) => {}
        }
    }
    (out, false)
}

/// memcached's `-B`: `auto` tells the protocols apart by the first byte, `ascii` treats 0x80 as
/// an unknown text command, `binary` closes a text client (bad magic) once 24 bytes arrived.
#[test]
fn protocol_detection_and_binding() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if !require_memcached() {
        return;
    }
    let noop = request(0x0a, b"", b"", b"", 7);
    let noop_reply = {
        let mut r = vec![0x81, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        r.extend_from_slice(&[0; 8]);
        r
    };
    for kind in [Kind::Memcached, target.kind] {
        let t = if kind == Kind::Memcached {
            Target::memcached()
        } else {
            target.clone()
        };
        let auto = t.start();
        assert_eq!(exchange(&auto, &noop, 24).0, noop_reply, "{kind:?} auto");
        let (text, _) = exchange(&auto, b"get nothing\r\n", 5);
        assert_eq!(text, b"END\r\n", "{kind:?} auto, text");
        // a text connection stays text: a later 0x80 is an unknown command
        let get = request(0x00, b"abc", b"", b"", 0x0102_0304);
        let mut mixed = b"get nothing\r\n".to_vec();
        mixed.extend_from_slice(&get);
        mixed.extend_from_slice(b"\r\n");
        let (text, _) = exchange(&auto, &mixed, 12);
        assert_eq!(text, b"END\r\nERROR\r\n", "{kind:?} auto, text then 0x80");
        drop(auto);

        let ascii = t.builder().arg("-B").arg("ascii").start();
        let mut b = get.clone();
        b.extend_from_slice(b"\r\n");
        let (text, _) = exchange(&ascii, &b, 7);
        assert_eq!(text, b"ERROR\r\n", "{kind:?} -B ascii");
        drop(ascii);

        // (the test kit's launcher probes with a text `stats`, which `-B binary` refuses)
        let binary = BinaryOnly::start(&t);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], binary.port));
        // (memcached looks at the magic once a whole 24-byte header arrived)
        let (out, closed) = exchange_at(addr, b"get a_key_long_enough_for_a_header\r\n", 1);
        assert!(
            out.is_empty() && closed,
            "{kind:?} -B binary, text: {out:?} {closed}"
        );
        assert_eq!(
            exchange_at(addr, &noop, 24).0,
            noop_reply,
            "{kind:?} -B binary"
        );
    }
}

/// A server started with `-B binary`, ready once a binary `noop` is answered; killed by PID
/// on drop.
struct BinaryOnly {
    child: std::process::Child,
    port: u16,
}

impl BinaryOnly {
    fn start(t: &Target) -> BinaryOnly {
        let port = petrel_tests::net::free_port_pair();
        let args = t.builder().no_udp().arg("-B").arg("binary").args(port, 0);
        let child = Command::new(&t.path)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn server");
        let server = BinaryOnly { child, port };
        let noop = request(0x0a, b"", b"", b"", 1);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut reply = [0u8; 24];
                if s.write_all(&noop).is_ok() && s.read_exact(&mut reply).is_ok() {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{args:?} did not answer a binary noop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BinaryOnly {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// memcached 1.6.18 answers binary requests in UDP datagrams too (the first byte after the
/// 8-byte frame header decides, per datagram); so does the server under test.
#[test]
fn binary_over_udp() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if !require_memcached() {
        return;
    }
    let mut replies = Vec::new();
    for (kind, server) in both(&target) {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let requests = [
            request(0x01, b"u", &[0, 0, 0, 3, 0, 0, 0, 0], b"val", 1),
            request(0x00, b"u", b"", b"", 2),
            request(0x0c, b"nope", b"", b"", 3),
            b"get u\r\n".to_vec(),
        ];
        for (id, r) in requests.iter().enumerate() {
            let mut d = vec![0, id as u8, 0, 0, 0, 1, 0, 0];
            d.extend_from_slice(r);
            sock.send_to(&d, server.udp_addr()).unwrap();
            let mut buf = [0u8; 2048];
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("{kind:?}: no reply to datagram {id}: {e}"));
            let mut reply = buf[..n].to_vec();
            if reply.len() >= 24 && reply[8] == 0x81 {
                // CAS (bytes 16..24 of the binary header) differs in numbering only
                reply[24..32].fill(0);
            }
            got.push(reply);
        }
        replies.push(got);
    }
    assert_eq!(
        replies[1], replies[0],
        "binary over UDP: server under test vs memcached"
    );
    assert_eq!(&replies[0][1][8 + 24 + 4..], b"val");
}

/// Reads one binary response packet (header and body) from `s`.
fn read_packet(s: &mut TcpStream) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    s.read_exact(&mut p).expect("response header");
    assert_eq!(p[0], 0x81, "response magic in {p:?}");
    let body = u32::from_be_bytes([p[8], p[9], p[10], p[11]]) as usize;
    p.resize(24 + body, 0);
    s.read_exact(&mut p[24..]).expect("response body");
    p
}

/// A binary `stat` of `group`: every (key, value) before the terminator, and the terminator
/// packet itself.
fn binary_stats(s: &mut TcpStream, group: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    s.write_all(&request(0x10, group, b"", b"", 0x5157))
        .unwrap();
    let mut pairs = Vec::new();
    loop {
        let p = read_packet(s);
        assert_eq!((p[1], &p[6..8]), (0x10, &[0u8, 0][..]), "stat reply {p:?}");
        let keylen = u16::from_be_bytes([p[2], p[3]]) as usize;
        let extlen = p[4] as usize;
        if keylen == 0 && p.len() == 24 {
            return (pairs, p);
        }
        let key = &p[24 + extlen..24 + extlen + keylen];
        let value = &p[24 + extlen + keylen..];
        pairs.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
}

/// The binary protocol's `stat reset` answers the terminator alone and sets the same counters to
/// zero as the text `stats reset`, on memcached and the server under test alike; the gauges stay.
#[test]
fn binary_stat_reset_zeroes_counters_and_keeps_gauges() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if !require_memcached() {
        return;
    }
    let counters = [
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "total_items",
    ];
    let gauges = ["curr_items", "bytes", "curr_connections", "limit_maxbytes"];
    let mut seen = Vec::new();
    for (kind, server) in both(&target) {
        let mut s = TcpStream::connect(server.tcp_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let extras = [0u8; 8]; // flags 0, exptime 0
        let mut replies = Vec::new();
        for (i, key) in [b"k0", b"k1", b"k2"].iter().enumerate() {
            s.write_all(&request(0x01, *key, &extras, b"12", i as u32))
                .unwrap();
            replies.push(read_packet(&mut s)[..8].to_vec());
        }
        for (op, key, extras) in [
            (0x00u8, &b"k0"[..], &[][..]),
            (0x00, b"nope", &[]),
            (0x04, b"k1", &[]),
            (0x04, b"nope", &[]),
            // incr by 1, initial 0, exptime 0xffffffff: no vivify
            (
                0x05,
                b"k2",
                &[
                    0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                ],
            ),
            (
                0x05,
                b"nope",
                &[
                    0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                ],
            ),
        ] {
            s.write_all(&request(op, key, extras, b"", 9)).unwrap();
            replies.push(read_packet(&mut s)[..8].to_vec());
        }
        let num = |pairs: &[(String, String)], name: &str| -> u64 {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or_else(|| panic!("{kind:?}: no numeric stat {name} in {pairs:?}"))
        };
        let (before, _) = binary_stats(&mut s, b"");
        for name in counters {
            assert_ne!(num(&before, name), 0, "{kind:?}: {name} before reset");
        }
        let (none, reset) = binary_stats(&mut s, b"reset");
        assert!(none.is_empty(), "{kind:?}: stat reset sent {none:?}");
        let (after, _) = binary_stats(&mut s, b"");
        for name in counters {
            assert_eq!(num(&after, name), 0, "{kind:?}: {name} after reset");
        }
        for name in gauges {
            assert_eq!(
                num(&after, name),
                num(&before, name),
                "{kind:?}: {name} kept"
            );
        }
        assert_eq!(num(&after, "curr_items"), 2, "{kind:?}: k0 and k2");
        seen.push((replies, reset));
    }
    assert_eq!(
        seen[0], seen[1],
        "memcached's replies, then the server under test's"
    );
}
