//! The petrel binary with its AF_XDP front end (`--xdp-iface`), end to end
//! over the veth topology of `scripts/netns`: petrel in the server
//! namespace, clients in the client namespace. In generic and in native
//! mode: sets over TCP, gets over UDP through AF_XDP with the project's
//! client (every reply checked, one spanning several datagrams, 10,000
//! sequential gets), malformed datagrams and hand-made frames (counted, the
//! server unharmed), ping and TCP on the cache address answered by the
//! kernel, Debian's `memcaslap -U`; the `stats` figures and the server
//! namespace's kernel UDP counters show the replies went through AF_XDP and
//! not the kernel socket; after SIGTERM the exit status is 0 and no XDP
//! program is left on the interface. With `--xdp-queues 0` of two queues,
//! the flows hashed to queue 1 are answered by the kernel UDP socket.
//! Without privileges, petrel serves UDP over the kernel socket, or exits 71
//! when AF_XDP is required. With `--xdp-echo` (generic and native mode, and
//! with preferred busy polling) every datagram comes back unchanged through
//! AF_XDP without reaching the engine.
//!
//! Skips with a note when not root, or when the release binary is missing
//! (outside CI). Traffic goes only to 198.18.0.0/15 addresses of the
//! topology it creates, and the topology is always removed (Drop guard).

use petrel_tests::server::{petrel_path, workspace_root};
use petrel_tests::skip;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Sequential gets the project's client sends, every reply checked.
const GETS: usize = 10_000;
/// How long petrel may take to attach and start serving.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A server and a client namespace joined by a veth pair, made by
/// `scripts/netns`, removed on drop.
struct Topology {
    env: Vec<(&'static str, String)>,
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    server_addr: String,
}

impl Topology {
    fn up(tag: &str, subnet: u8) -> Topology {
        let id = std::process::id() % 100_000;
        let server_ns = format!("petrel-e2e-s{tag}-{id}");
        let client_ns = format!("petrel-e2e-c{tag}-{id}");
        let server_if = format!("pes{tag}{id}");
        let client_if = format!("pec{tag}{id}");
        let server_addr = format!("198.18.{subnet}.1");
        let env = vec![
            ("SERVER_NS", server_ns.clone()),
            ("CLIENT_NS", client_ns.clone()),
            ("SERVER_IF", server_if.clone()),
            ("CLIENT_IF", client_if.clone()),
            ("SERVER_ADDR", server_addr.clone()),
            ("CLIENT_ADDR", format!("198.18.{subnet}.2")),
            ("QUEUES", "2".to_string()),
        ];
        let t = Topology {
            env,
            server_ns,
            client_ns,
            server_if,
            client_if,
            server_addr,
        };
        assert!(t.script("up"), "scripts/netns up failed");
        t
    }

    fn script(&self, action: &str) -> bool {
        Command::new(workspace_root().join("scripts/netns"))
            .arg(action)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `program` in the client namespace, bounded to 120 s.
    fn client(&self, program: &str) -> Command {
        let mut c = Command::new("timeout");
        c.args(["120", "ip", "netns", "exec", &self.client_ns, program]);
        c
    }

    /// Output of `args` run in the server namespace.
    fn in_server(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.server_ns])
            .args(args)
            .output()
            .expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip link show` of the server's interface (no mention of xdp when no
    /// program is attached).
    fn link(&self) -> String {
        self.in_server(&["ip", "-d", "link", "show", "dev", &self.server_if])
    }

    /// The server namespace's kernel UDP counters (`/proc/net/snmp`):
    /// (InDatagrams, OutDatagrams).
    fn kernel_udp(&self) -> (u64, u64) {
        let snmp = self.in_server(&["cat", "/proc/net/snmp"]);
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
        let (names, values) = (udp.next().expect("Udp header"), udp.next().expect("Udp"));
        let field = |name: &str| {
            let i = names.split_whitespace().position(|n| n == name).unwrap();
            values.split_whitespace().nth(i).unwrap().parse().unwrap()
        };
        (field("InDatagrams"), field("OutDatagrams"))
    }

    /// `stats` over TCP from the client namespace, as name -> value.
    fn stats(&self, port: u16) -> HashMap<String, String> {
        const FETCH: &str = "import socket,sys\n\
            s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=5)\n\
            s.sendall(b'stats\\r\\n'); b=b''\n\
            while not b.endswith(b'END\\r\\n'):\n    c=s.recv(65536)\n    if not c: break\n    b+=c\n\
            sys.stdout.write(b.decode())\n";
        let out = self
            .client("python3")
            .args(["-c", FETCH, &self.server_addr, &port.to_string()])
            .output()
            .expect("stats client");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.ends_with("END\r\n"), "stats: {text}");
        text.lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.script("down");
    }
}

/// The server process; killed by PID and reaped on drop.
struct Petrel {
    child: Option<Child>,
    log: PathBuf,
}

impl Petrel {
    /// Starts `prefix... petrel args...` in the server namespace, its log
    /// in a file; returns at once.
    fn spawn(topo: &Topology, prefix: &[&str], bin: &Path, args: &[String], tag: &str) -> Petrel {
        let log =
            std::env::temp_dir().join(format!("petrel-xdp-e2e-{}-{tag}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("log file");
        // `ip netns exec` execs the program: the child's PID is petrel's.
        let child = Command::new("ip")
            .args(["netns", "exec", &topo.server_ns])
            .args(prefix)
            .arg(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn petrel");
        Petrel {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log shows `needle`; panics if petrel exits first or
    /// it takes longer than [`START_TIMEOUT`].
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.log().contains(needle) {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("petrel exited with {st}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "petrel did not log {needle:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status within 10 s (after `signal`, if any).
    fn finish(&mut self, signal: Option<libc::c_int>) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        if let Some(sig) = signal {
            // SAFETY: kill(2) on the PID of our own unreaped child.
            unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("petrel did not exit; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Petrel {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The release binary, or `None` (with a note) when this test cannot run.
fn binary() -> Option<PathBuf> {
    if !skip::require_root("AF_XDP end-to-end: netns, veth, XDP") {
        return None;
    }
    let path = petrel_path();
    if !path.is_file() {
        skip::skip(&format!(
            "{} does not exist; cargo build --release -p petrel",
            path.display()
        ));
        return None;
    }
    let help = Command::new(&path)
        .arg("--help")
        .output()
        .expect("petrel --help");
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--xdp-iface"),
        "{} has no --xdp-iface flag",
        path.display()
    );
    Some(path)
}

fn args(topo: &Topology, port: u16, extra: &[&str]) -> Vec<String> {
    let p = port.to_string();
    let mut v: Vec<String> = ["-l", &topo.server_addr, "-p", &p, "-U", &p]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(
        // The client's addresses are allowlisted: the UDP amplification
        // guard's rate limit is not what this test measures.
        [
            "-m",
            "64",
            "-t",
            "2",
            "--admin-port",
            "0",
            "--udp-allow",
            "198.18.0.0/15",
            "--xdp-iface",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    v.push(topo.server_if.clone());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn ok(out: &Output, what: &str, server: &Petrel) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: {stdout}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    stdout
}

fn num(stats: &HashMap<String, String>, name: &str) -> u64 {
    stats
        .get(name)
        .unwrap_or_else(|| panic!("no STAT {name} in {stats:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("STAT {name} is not a number"))
}

fn run(bin: &Path, mode: &str, tag: &str, subnet: u8) {
    let topo = Topology::up(tag, subnet);
    let port = 11211;
    let mut server = Petrel::spawn(
        &topo,
        &[],
        bin,
        &args(&topo, port, &["-v", "--xdp-mode", mode]),
        tag,
    );
    server.wait_for("AF_XDP serving");
    let link = topo.link();
    assert!(
        link.contains("prog/xdp"),
        "no XDP program on {}: {link}",
        topo.server_if
    );
    let expect_mode = format!("AF_XDP serving: {mode} copy mode");
    assert!(server.log().contains(&expect_mode), "{}", server.log());
    let udp_before = topo.kernel_udp();

    // The project's client: TCP sets, UDP gets (one spanning several
    // datagrams, GETS sequential ones), malformed datagrams and hand-made
    // frames, ping, TCP on the same port.
    let mac = topo.in_server(&["cat", &format!("/sys/class/net/{}/address", topo.server_if)]);
    let p = port.to_string();
    let out = topo
        .client("python3")
        .env("RAW_IF", &topo.client_if)
        .env("RAW_DST_MAC", mac.trim())
        .arg(workspace_root().join("net-xdp/tests/xdp_client.py"))
        .args(["server", &topo.server_addr, &p, &p, &GETS.to_string()])
        .output()
        .expect("client");
    let line = ok(&out, "client", &server);
    eprintln!("{mode}: {}", line.trim());
    assert!(line.contains("raw_frames=5"), "{line}");

    let stats = topo.stats(port);
    let udp_after = topo.kernel_udp();
    let (rx, tx) = (num(&stats, "xdp_rx_requests"), num(&stats, "xdp_tx_frames"));
    eprintln!(
        "{mode}: xdp_rx_requests={rx} xdp_tx_frames={tx} kernel UDP in/out {}/{}",
        udp_after.0 - udp_before.0,
        udp_after.1 - udp_before.1
    );
    assert_eq!(num(&stats, "xdp_queues"), 2);
    assert!(rx >= GETS as u64, "{rx} requests through AF_XDP");
    assert!(tx >= GETS as u64 + 3, "{tx} replies through AF_XDP");
    // The datagram layer's counters (udp_*) are shared by every UDP path.
    assert!(num(&stats, "udp_multi_datagram_replies") >= 1);
    // Replies went out with the poll() the worker slept in, without a
    // sendto() of their own (copy mode).
    assert!(num(&stats, "xdp_tx_kicks_by_poll") >= 1, "{stats:?}");
    // Malformed: a datagram shorter than its header and two with a datagram
    // count other than 1 (dropped by the datagram layer), a frame with a bad
    // IPv4 checksum and one whose UDP length exceeds the IP payload (dropped
    // by the AF_XDP worker before it).
    assert!(num(&stats, "udp_dropped_malformed") >= 1, "{stats:?}");
    assert!(num(&stats, "udp_dropped_multi_datagram") >= 2, "{stats:?}");
    assert!(num(&stats, "xdp_drop_bad_ip_checksum") >= 1, "{stats:?}");
    assert!(num(&stats, "xdp_drop_bad_length") >= 1, "{stats:?}");
    let drops: u64 = stats
        .iter()
        .filter(|(k, _)| k.starts_with("xdp_drop_"))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    assert!(drops >= 2, "{drops} drops counted: {stats:?}");
    // The kernel's UDP stack saw next to nothing of the GETS requests and
    // sent none of their replies: they went through AF_XDP.
    assert!(
        udp_after.0 - udp_before.0 < 100 && udp_after.1 - udp_before.1 < 100,
        "kernel UDP in/out {udp_before:?} -> {udp_after:?}"
    );
    assert!(num(&stats, "get_hits") >= GETS as u64);
    // The kernel's XDP_STATISTICS, all six (tx_ring_empty is checked after
    // memcaslap); no RX or TX descriptor was invalid.
    for k in [
        "rx_dropped",
        "rx_invalid",
        "rx_ring_full",
        "fill_ring_empty",
        "tx_invalid",
        "tx_ring_empty",
    ] {
        num(&stats, &format!("xdp_kernel_{k}"));
    }
    assert_eq!(num(&stats, "xdp_kernel_rx_invalid"), 0, "{stats:?}");
    assert_eq!(num(&stats, "xdp_kernel_tx_invalid"), 0, "{stats:?}");

    // Debian's memcaslap over UDP: 3,000 operations without errors (a count, not a
    // duration, so a loaded machine makes the run slower, never smaller).
    let memcaslap_started = Instant::now();
    let out = topo
        .client("memcaslap")
        .args(["-s", &format!("{}:{port}", topo.server_addr), "-U"])
        .args(["-x", "3000", "-T", "1", "-c", "4", "-X", "100"])
        .output()
        .expect("memcaslap");
    // memcaslap does not retransmit over UDP: a reply it never gets stalls
    // that connection for 30 s (SOCK_WAIT_TIMEOUT in memaslap's
    // ms_conn.h, counted as `udp_timeout`) and its run ends only when every
    // connection is done. Printed before the checks, so a failure shows
    // how long memcaslap took, whether it saw lost replies, and where the
    // server counted drops (kernel ring statistics, TX ring full, ...).
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{mode}: memcaslap exited {} after {:?}: {}",
        out.status,
        memcaslap_started.elapsed(),
        stdout
            .lines()
            .filter(|l| l.contains("packet_drop")
                || l.contains("udp_timeout")
                || l.starts_with("Run time"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let mut counters: Vec<_> = topo
        .stats(port)
        .into_iter()
        .filter(|(k, v)| (k.starts_with("xdp_") || k.starts_with("udp_")) && v != "0")
        .collect();
    counters.sort();
    eprintln!("{mode}: server counters after memcaslap: {counters:?}");
    let text = ok(&out, "memcaslap -U", &server);
    let ops: u64 = text
        .lines()
        .find(|l| l.starts_with("Run time:"))
        .and_then(|l| l.split("Ops:").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(ops, 3000, "memcaslap -U operations:\n{text}");
    let rx2 = num(&topo.stats(port), "xdp_rx_requests");
    assert!(
        rx2 >= rx + ops / 2,
        "{mode}: memcaslap's {ops} operations: AF_XDP requests {rx} -> {rx2}"
    );
    // The kernel counts each time its TX loop, having sent what was on the
    // ring, finds it empty: not a fault, and certain after these replies.
    // The workers read the kernel's figures when idle for a poll timeout.
    let deadline = Instant::now() + Duration::from_secs(5);
    let tx_empty = loop {
        let v = num(&topo.stats(port), "xdp_kernel_tx_ring_empty");
        if v >= 1 || Instant::now() >= deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("{mode}: xdp_kernel_tx_ring_empty={tx_empty}");
    assert!(tx_empty >= 1, "{mode}: xdp_kernel_tx_ring_empty {tx_empty}");
    assert_eq!(num(&topo.stats(port), "xdp_kernel_rx_invalid"), 0);

    let status = server.finish(Some(libc::SIGTERM));
    assert!(
        status.success(),
        "petrel exit {status}; log:\n{}",
        server.log()
    );
    assert!(
        server.log().contains("XDP program detached"),
        "{}",
        server.log()
    );
    let link = topo.link();
    assert!(
        !link.contains("xdp"),
        "XDP left on {} after exit: {link}",
        topo.server_if
    );
}

#[test]
fn petrel_serves_udp_through_af_xdp_in_generic_and_native_mode() {
    let Some(bin) = binary() else {
        return;
    };
    run(&bin, "generic", "g", 50);
    run(&bin, "native", "n", 51);
}

/// `--xdp-echo` in `mode` (with `extra` flags): every datagram to the port,
/// whatever its content, comes back byte for byte from the server's address
/// and port (the client kernel checks the UDP checksum), through AF_XDP
/// (the server's kernel UDP counters do not move), and the engine sees none.
fn echo_run(
    bin: &Path,
    mode: &str,
    extra: &[&str],
    tag: &str,
    subnet: u8,
) -> HashMap<String, String> {
    let topo = Topology::up(tag, subnet);
    let port = 11211;
    let mut flags = vec!["-v", "--xdp-echo", "--xdp-mode", mode];
    flags.extend_from_slice(extra);
    let mut server = Petrel::spawn(&topo, &[], bin, &args(&topo, port, &flags), tag);
    server.wait_for("AF_XDP serving");
    assert!(server.log().contains("echo mode"), "{}", server.log());
    let udp_before = topo.kernel_udp();
    let mut c = topo.client("python3");
    c.args(["-c", ECHO, &topo.server_addr, &port.to_string()]);
    let line = ok(&c.output().expect("echo client"), "echo client", &server);
    let udp_after = topo.kernel_udp();
    let stats = topo.stats(port);
    eprintln!(
        "echo {mode} {extra:?}: {} xdp_rx_requests={} xdp_tx_frames={} kernel UDP in/out {}/{}",
        line.trim(),
        num(&stats, "xdp_rx_requests"),
        num(&stats, "xdp_tx_frames"),
        udp_after.0 - udp_before.0,
        udp_after.1 - udp_before.1
    );
    assert!(line.starts_with("ok echoed=1024 sockets=32"), "{line}");
    assert!(num(&stats, "xdp_rx_requests") >= 1024, "{stats:?}");
    assert!(num(&stats, "xdp_tx_frames") >= 1024, "{stats:?}");
    assert!(num(&stats, "xdp_rx_batches") >= 1, "{stats:?}");
    assert!(
        num(&stats, "xdp_rx_frames") >= num(&stats, "xdp_rx_batches"),
        "{stats:?}"
    );
    // Not one request reached the engine or the kernel's UDP stack.
    assert_eq!(num(&stats, "cmd_get"), 0, "{stats:?}");
    assert!(
        udp_after.0 - udp_before.0 < 100 && udp_after.1 - udp_before.1 < 100,
        "kernel UDP in/out {udp_before:?} -> {udp_after:?}"
    );
    let status = server.finish(Some(libc::SIGTERM));
    assert!(status.success(), "{status}: {}", server.log());
    assert!(!topo.link().contains("xdp"), "XDP left on the interface");
    stats
}

/// 32 sockets (flows over both queues) x 32 datagrams each, of varied
/// sizes and contents (memcache or not, any frame header): each must come
/// back unchanged from the server's address and port.
const ECHO: &str = r#"
import os, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
socks = []
for i in range(32):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((host, port))
    socks.append(s)
n = 0
for r in range(32):
    for i, s in enumerate(socks):
        size = (r * 37 + i * 11) % 1300
        d = struct.pack("!HHHH", r * 32 + i, r % 3, 1 + i % 4, i) + os.urandom(size)
        s.send(d)
        got, frm = s.recvfrom(2048)
        if got != d or frm != (host, port):
            sys.exit("datagram %d/%d of %d bytes: got %d bytes from %r" % (r, i, len(d), len(got), frm))
        n += 1
print("ok echoed=%d sockets=%d" % (n, len(socks)))
"#;

#[test]
fn echo_mode_sends_every_datagram_back_unchanged_through_af_xdp() {
    let Some(bin) = binary() else {
        return;
    };
    echo_run(&bin, "generic", &[], "eg", 54);
    echo_run(&bin, "native", &[], "en", 55);
}

#[test]
fn preferred_busy_polling_serves_and_drives_napi_from_the_worker() {
    let Some(bin) = binary() else {
        return;
    };
    // Spinning 200 us after each round: the worker's recvfrom() calls drive
    // NAPI (counted), and every datagram still comes back.
    let stats = echo_run(
        &bin,
        "native",
        &["--xdp-prefer-busy-poll", "50", "--xdp-idle-spin-us", "200"],
        "bp",
        56,
    );
    assert!(num(&stats, "xdp_napi_busy_polls") >= 1, "{stats:?}");
}

#[test]
fn without_privileges_petrel_serves_kernel_udp_or_exits_when_required() {
    let Some(bin) = binary() else {
        return;
    };
    let topo = Topology::up("u", 52);
    let port = 11211;
    let nobody = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
    ];

    // Required: exit 71 with the reason and the missing capabilities.
    let mut server = Petrel::spawn(
        &topo,
        &nobody,
        &bin,
        &args(&topo, port, &["--xdp-required"]),
        "u1",
    );
    let status = server.finish(None);
    assert_eq!(status.code(), Some(71), "{}", server.log());
    let log = server.log();
    assert!(
        log.contains("CAP_NET_ADMIN") && log.contains("lacks") && log.contains("required"),
        "{log}"
    );

    // Not required: the reason logged, UDP served by the kernel socket.
    let mut server = Petrel::spawn(&topo, &nobody, &bin, &args(&topo, port, &[]), "u2");
    server.wait_for("AF_XDP off");
    let log = server.log();
    assert!(log.contains("lacks CAP_NET_ADMIN"), "{log}");
    let p = port.to_string();
    let out = topo
        .client("python3")
        .arg(workspace_root().join("net-xdp/tests/xdp_client.py"))
        .args(["server", &topo.server_addr, &p, &p, "200"])
        .output()
        .expect("client");
    ok(&out, "client over kernel UDP", &server);
    let stats = topo.stats(port);
    assert!(!stats.contains_key("xdp_rx_requests"), "{stats:?}");
    assert!(!topo.link().contains("xdp"));
    let status = server.finish(Some(libc::SIGTERM));
    assert!(status.success(), "{status}: {}", server.log());
}

#[test]
fn queues_left_unserved_are_answered_by_the_kernel_udp_socket() {
    let Some(bin) = binary() else {
        return;
    };
    let topo = Topology::up("q", 53);
    let port = 11211;
    let mut server = Petrel::spawn(
        &topo,
        &[],
        &bin,
        // Native: veth records the RX queue only with native XDP (in
        // generic mode every frame arrives on queue 0).
        &args(&topo, port, &["--xdp-queues", "0", "--xdp-mode", "native"]),
        "q",
    );
    server.wait_for("AF_XDP serving");
    assert!(
        server
            .log()
            .contains("queues [1] left to the kernel UDP socket"),
        "{}",
        server.log()
    );
    let mut c = topo.client("python3");
    c.args(["-c", FLOWS, &topo.server_addr, &port.to_string()]);
    let line = ok(&c.output().expect("flows client"), "flows", &server);
    let kernel = topo.kernel_udp();
    let xdp = num(&topo.stats(port), "xdp_rx_requests");
    eprintln!(
        "{}: {xdp} through AF_XDP; kernel UDP in/out {kernel:?}",
        line.trim()
    );
    assert!(line.starts_with("ok answered=64"), "{line}");
    assert!(
        xdp > 0 && xdp < 64,
        "{xdp} of 64 flows through AF_XDP: flows did not spread over both queues"
    );
    // The rest went through the kernel's UDP stack (the stats request is TCP).
    assert!(kernel.0 >= 64 - xdp, "{kernel:?}");
    let status = server.finish(Some(libc::SIGTERM));
    assert!(status.success(), "{status}: {}", server.log());
}

/// 64 gets, each from a socket of its own (its own flow, so flows spread
/// over the RX queues); every one must be answered.
const FLOWS: &str = r#"
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
ok = 0
for i in range(64):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((host, port))
    s.send(struct.pack("!HHHH", i, 0, 1, 0) + b"get nothing\r\n")
    d = s.recv(2048)
    if d != struct.pack("!HHHH", i, 0, 1, 0) + b"END\r\n":
        sys.exit("flow %d: %r" % (i, d))
    ok += 1
    s.close()
print("ok answered=%d" % ok)
"#;

#[test]
fn bad_xdp_flags_exit_64_naming_the_flag() {
    let path = petrel_path();
    if !path.is_file() {
        skip::skip(&format!(
            "{} does not exist; cargo build --release -p petrel",
            path.display()
        ));
        return;
    }
    for (args, flag) in [
        (
            &["--xdp-iface", "lo", "--xdp-mode", "fast"][..],
            "--xdp-mode",
        ),
        (&["--xdp-queues", "0"][..], "--xdp-queues"),
        (&["--xdp-iface", "lo", "-U", "0"][..], "--xdp-iface"),
        (
            &["--xdp-iface", "lo", "--xdp-cpus", "1,1"][..],
            "--xdp-cpus",
        ),
    ] {
        let out = Command::new(&path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run petrel");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
