//! The UDP amplification guard against the real binary over loopback.
//!
//! Loopback is allowlisted by default, so these tests start petrel with
//! `--udp-allow none`: then 127.0.0.1 is an unverified source like any
//! other, its replies are capped at `--udp-max-amplification` times the
//! request's bytes (UDP payloads, frame headers included) and rate-limited
//! per source (`--udp-rate`, `--udp-burst`). Every decision must show in
//! `stats` as `udp_guard_*`.

use petrel_tests::server::{Kind, Server, Target};
use petrel_tests::tcp::{storage_cmd, Conn};
use petrel_tests::udp::{ends_with_end, FrameHeader, UdpClient};
use std::time::{Duration, Instant};

const TOO_LARGE: &[u8] = b"SERVER_ERROR reply too large for UDP\r\n";

fn petrel() -> Option<Target> {
    let t = Target::from_env()?;
    if t.kind != Kind::Petrel {
        petrel_tests::skip::not_applicable("the UDP guard is Petrel's own (memcached has none)");
        return None;
    }
    Some(t)
}

/// `stats` over TCP as (name, value) pairs.
fn stats(server: &Server) -> Vec<(String, String)> {
    let mut c = Conn::connect(server.tcp_addr());
    c.send(b"stats\r\n");
    let text = c.read_until_suffix(b"END\r\n", Duration::from_secs(10));
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let mut it = l.strip_prefix("STAT ")?.splitn(2, ' ');
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

fn stat(server: &Server, name: &str) -> u64 {
    let all = stats(server);
    all.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no STAT {name} in {all:?}"))
        .1
        .parse()
        .unwrap()
}

fn set(server: &Server, key: &str, value: &[u8]) {
    let mut c = Conn::connect(server.tcp_addr());
    c.check(&storage_cmd("set", key, 0, 0, value, false), b"STORED\r\n");
}

fn send(client: &mut UdpClient, payload: &[u8]) -> u16 {
    let id = client.next_request_id();
    client.send_frame(
        FrameHeader {
            request_id: id,
            seq: 0,
            total: 1,
            reserved: 0,
        },
        payload,
    );
    id
}

#[test]
fn loopback_is_trusted_by_default() {
    let Some(target) = petrel() else { return };
    let server = target.start();
    let big = vec![b'b'; 20_000];
    set(&server, "big", &big);
    let mut u = UdpClient::connect(server.udp_addr());
    let r = u
        .request(b"get big\r\n", ends_with_end, Duration::from_secs(10))
        .expect("the whole reply");
    assert_eq!(r.bytes.len(), "VALUE big 0 20000\r\n".len() + 20_002 + 5);
    assert!(r.datagrams.len() > 10);
    assert_eq!(stat(&server, "udp_guard_requests_trusted"), 1);
    assert_eq!(stat(&server, "udp_guard_replies_replaced"), 0);
}

#[test]
fn replies_over_the_cap_are_replaced_or_dropped_and_counted() {
    let Some(target) = petrel() else { return };
    // 10x: "get small\r\n" is 8 + 11 = 19 bytes, so 190 bytes may come back.
    let server = target
        .builder()
        .arg("--udp-allow")
        .arg("none")
        .arg("--udp-rate")
        .arg("0")
        .start();
    set(&server, "small", b"0123456789");
    set(&server, "big", &vec![b'x'; 5000]);
    let mut u = UdpClient::connect(server.udp_addr());
    let r = u
        .request(b"get small\r\n", ends_with_end, Duration::from_secs(10))
        .expect("a small reply passes");
    assert_eq!(r.bytes, b"VALUE small 0 10\r\n0123456789\r\nEND\r\n");
    // 5000 bytes for a 17-byte request: the short error instead.
    let r = u
        .request(
            b"get big\r\n",
            |b| b.ends_with(b"\r\n"),
            Duration::from_secs(10),
        )
        .expect("the error datagram");
    assert_eq!(r.bytes, TOO_LARGE);
    assert_eq!(r.datagrams.len(), 1);
    assert_eq!(stat(&server, "udp_guard_replies_replaced"), 1);
    assert_eq!(stat(&server, "udp_guard_requests_checked"), 1);
    assert_eq!(stat(&server, "udp_guard_requests_trusted"), 0);
    // The value is intact over TCP.
    let mut c = Conn::connect(server.tcp_addr());
    c.send(b"get big\r\n");
    let got = c.read_until_suffix(b"END\r\n", Duration::from_secs(10));
    assert_eq!(got.len(), "VALUE big 0 5000\r\n".len() + 5002 + 5);
    drop(server);

    // 2x: the error (46 bytes) no longer fits a 17-byte request's 34.
    let server = target
        .builder()
        .arg("--udp-allow")
        .arg("none")
        .arg("--udp-max-amplification")
        .arg("2")
        .start();
    set(&server, "s", b"v");
    set(&server, "big", &vec![b'x'; 5000]);
    let mut u = UdpClient::connect(server.udp_addr());
    // 8 + 7 = 15 request bytes, 8 + 21 = 29 reply bytes: within 30.
    let r = u
        .request(b"get s\r\n", ends_with_end, Duration::from_secs(10))
        .expect("29 <= 30 bytes passes");
    assert_eq!(r.bytes, b"VALUE s 0 1\r\nv\r\nEND\r\n");
    send(&mut u, b"get big\r\n");
    let got = u.drain(Duration::from_millis(500));
    assert!(got.is_empty(), "nothing may come back: {got:?}");
    assert_eq!(stat(&server, "udp_guard_replies_dropped_too_large"), 1);
    assert_eq!(stat(&server, "udp_guard_replies_replaced"), 0);
}

#[test]
fn rate_limit_kicks_in_per_source_and_refills() {
    let Some(target) = petrel() else { return };
    let server = target
        .builder()
        .arg("--udp-allow")
        .arg("none")
        .arg("--udp-rate")
        .arg("20")
        .arg("--udp-burst")
        .arg("10")
        .start();
    set(&server, "s", b"v");
    let mut u = UdpClient::connect(server.udp_addr());
    let started = Instant::now();
    let sent = 60;
    for _ in 0..sent {
        send(&mut u, b"get s\r\n");
    }
    let got = u.drain(Duration::from_millis(1000));
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = 10.0 + 20.0 * elapsed + 1.0;
    assert!(
        got.len() >= 10 && got.len() as f64 <= allowed,
        "{} replies in {elapsed:.2} s (burst 10, 20/s: at most {allowed:.0})",
        got.len()
    );
    for d in &got {
        assert_eq!(&d[8..], b"VALUE s 0 1\r\nv\r\nEND\r\n");
    }
    let limited = stat(&server, "udp_guard_dropped_rate_limited");
    let checked = stat(&server, "udp_guard_requests_checked");
    assert_eq!(limited + checked, sent, "every request is accounted for");
    assert!(
        checked >= got.len() as u64 && checked as f64 <= allowed,
        "{checked} answered, {} received, at most {allowed:.0} allowed",
        got.len()
    );
    // (Every loopback client is 127.0.0.1: one source, one bucket.)
    std::thread::sleep(Duration::from_millis(600));
    let r = u
        .request(b"get s\r\n", ends_with_end, Duration::from_secs(5))
        .expect("tokens refill at 20/s");
    assert_eq!(r.bytes, b"VALUE s 0 1\r\nv\r\nEND\r\n");
}

/// The same guard on the AF_XDP path: petrel with `--xdp-iface` in a
/// server namespace (scripts/netns), clients in a client namespace (not
/// loopback, and `--udp-allow none` anyway). Root only; skips otherwise.
#[test]
fn af_xdp_path_applies_the_same_guard() {
    use petrel_tests::server::{petrel_path, workspace_root};
    use petrel_tests::skip;
    use std::process::{Command, Stdio};
    if !skip::require_root("AF_XDP: netns, veth, XDP") {
        return;
    }
    if petrel().is_none() {
        return;
    }
    let bin = petrel_path();
    let help = Command::new(&bin)
        .arg("--help")
        .output()
        .expect("petrel --help");
    if !String::from_utf8_lossy(&help.stdout).contains("--xdp-iface") {
        skip::skip("this petrel was built without AF_XDP (no --xdp-iface)");
        return;
    }
    let id = std::process::id() % 100_000;
    let env = [
        ("SERVER_NS", format!("petrel-guard-s{id}")),
        ("CLIENT_NS", format!("petrel-guard-c{id}")),
        ("SERVER_IF", format!("pgs{id}")),
        ("CLIENT_IF", format!("pgc{id}")),
        ("SERVER_ADDR", "198.18.77.1".to_string()),
        ("CLIENT_ADDR", "198.18.77.2".to_string()),
        ("QUEUES", "1".to_string()),
    ];
    let netns = |action: &str| {
        Command::new(workspace_root().join("scripts/netns"))
            .arg(action)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    struct Down<F: Fn(&str) -> bool>(F);
    impl<F: Fn(&str) -> bool> Drop for Down<F> {
        fn drop(&mut self) {
            (self.0)("down");
        }
    }
    assert!(netns("up"), "scripts/netns up");
    let _down = Down(netns);
    let port = 11311u16.to_string();
    let log = std::env::temp_dir().join(format!("petrel-guard-xdp-{id}.log"));
    let out = std::fs::File::create(&log).unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        Command::new("ip")
            .args(["netns", "exec", &format!("petrel-guard-s{id}")])
            .arg(&bin)
            .args([
                "-l",
                "198.18.77.1",
                "-p",
                &port,
                "-U",
                &port,
                "-m",
                "64",
                "-t",
                "1",
            ])
            .args(["--admin-port", "0", "--xdp-iface", &format!("pgs{id}")])
            .args(["--xdp-mode", "generic", "--xdp-required"])
            .args([
                "--udp-allow",
                "none",
                "--udp-rate",
                "50",
                "--udp-burst",
                "10",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn petrel"),
    );
    // The client: sets over TCP, then UDP gets, then stats; prints what it saw.
    const CLIENT: &str = r#"
import socket, struct, sys, time
host, port = sys.argv[1], int(sys.argv[2])
for _ in range(300):
    try:
        t = socket.create_connection((host, port), timeout=5); break
    except OSError:
        time.sleep(0.05)
t.sendall(b"set small 0 0 10\r\n0123456789\r\nset big 0 0 5000\r\n" + b"x" * 5000 + b"\r\n")
b = b""
while b.count(b"STORED") < 2:
    b += t.recv(4096)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect((host, port))
u.settimeout(0.5)
def ask(rid, req):
    u.send(struct.pack("!HHHH", rid, 0, 1, 0) + req)
def collect(window):
    out = []
    end = time.time() + window
    while time.time() < end:
        try:
            out.append(u.recv(65536))
        except socket.timeout:
            break
    return out
ask(1, b"get small\r\n")
r = collect(0.5)
print("small", len(r), r[0][8:] if r else b"")
ask(2, b"get big\r\n")
r = collect(0.5)
print("big", len(r), r[0][8:] if r else b"")
for i in range(60):
    ask(100 + i, b"get small\r\n")
r = collect(0.5)
print("burst", len(r))
t.sendall(b"stats\r\n")
b = b""
while not b.endswith(b"END\r\n"):
    b += t.recv(65536)
for line in b.decode().splitlines():
    if line.startswith("STAT udp_guard_") or line.startswith("STAT xdp_rx_requests"):
        print(line)
"#;
    let out = Command::new("timeout")
        .args([
            "60",
            "ip",
            "netns",
            "exec",
            &format!("petrel-guard-c{id}"),
            "python3",
            "-c",
        ])
        .arg(CLIENT)
        .args(["198.18.77.1", &port])
        .output()
        .expect("client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        out.status.success(),
        "client failed: {}\n{text}\nserver log:\n{server_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let stat = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}\n{server_log}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        text.contains("small 1 b'VALUE small 0 10\\r\\n0123456789\\r\\nEND\\r\\n'"),
        "{text}"
    );
    assert!(
        text.contains("big 1 b'SERVER_ERROR reply too large for UDP\\r\\n'"),
        "{text}"
    );
    let burst: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("burst "))
        .unwrap()
        .parse()
        .unwrap();
    // 10 tokens, 2 spent, 50/s over well under a second of sending.
    assert!((5..45).contains(&burst), "{burst} of 60 answered\n{text}");
    assert!(
        stat("xdp_rx_requests") >= 62,
        "served through AF_XDP:\n{text}"
    );
    assert_eq!(stat("udp_guard_replies_replaced"), 1);
    assert_eq!(stat("udp_guard_requests_trusted"), 0);
    assert_eq!(stat("udp_guard_dropped_rate_limited"), 60 - burst);
    assert_eq!(stat("udp_guard_requests_checked"), 1 + burst);
}
