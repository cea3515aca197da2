//! Shared by the veth end-to-end tests: root check, topology guard, client
//! runner, counters summed over queues.
#![allow(dead_code)]

use petrel_xdp::{QueueStats, XdpFrontend};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// True when running as root; AF_XDP, namespaces and veth need it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Subnets the veth tests take, `198.19.N.0/24` for N in this range. The
/// server end of a topology lives in the root namespace, where the host
/// routes by subnet: two topologies with the same subnet at once (two test
/// processes on one machine, e.g. CI and a developer) make the kernel's
/// replies (ICMP, the kernel UDP socket's) leave through the other one's
/// interface and get lost. So each topology holds a machine-wide lock on
/// its subnet for its whole life.
const SUBNETS: std::ops::RangeInclusive<u8> = 100..=227;
/// How long `Topology::up` waits for a free subnet before giving up.
const SUBNET_WAIT: Duration = Duration::from_secs(60);

/// An exclusive `flock` on one subnet's lock file; released when dropped
/// (or when the process dies, so a crashed run never blocks a subnet).
struct SubnetLock {
    subnet: u8,
    _file: File,
}

fn lock_dir() -> PathBuf {
    let run = PathBuf::from("/run/lock");
    if run.is_dir() {
        run
    } else {
        std::env::temp_dir()
    }
}

/// Interface and namespace names of the topology on `subnet`: derived from
/// the subnet only, so a run that holds the subnet's lock owns them, and
/// `scripts/netns up` removes whatever a crashed earlier run left.
fn names(subnet: u8) -> (String, String, String) {
    (
        format!("pxt{subnet}h"),
        format!("pxt{subnet}p"),
        format!("petrel-xdp-{subnet}"),
    )
}

/// Whether an address of `198.19.SUBNET.0/24` is on an interface of the
/// root namespace other than `ours` (someone not taking the locks).
fn subnet_used_elsewhere(subnet: u8, ours: &str) -> bool {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "to"])
        .arg(format!("198.19.{subnet}.0/24"))
        .output()
        .expect("ip addr show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .any(|name| name.split('@').next() != Some(ours))
}

/// Takes the first free subnet (starting at a per-process offset), waiting
/// up to [`SUBNET_WAIT`] when all are taken.
fn claim_subnet() -> SubnetLock {
    let dir = lock_dir();
    let count = SUBNETS.len();
    let offset = std::process::id() as usize % count;
    let deadline = Instant::now() + SUBNET_WAIT;
    loop {
        for i in 0..count {
            let subnet = SUBNETS.start() + ((offset + i) % count) as u8;
            let path = dir.join(format!("petrel-xdp-test-198.19.{subnet}.lock"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            // SAFETY: flock on a descriptor owned by `file`, which outlives the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            if subnet_used_elsewhere(subnet, &names(subnet).0) {
                continue;
            }
            return SubnetLock {
                subnet,
                _file: file,
            };
        }
        assert!(
            Instant::now() < deadline,
            "no free test subnet 198.19.{SUBNETS:?}.0/24 in {SUBNET_WAIT:?} (locks in {})",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A veth topology made by `scripts/netns`, removed on drop.
pub struct Topology {
    env: Vec<(&'static str, String)>,
    pub ns: String,
    pub host_if: String,
    pub peer_if: String,
    pub host_addr: String,
    /// Held until the topology is gone (declared last: dropped after `drop`
    /// has removed the interfaces).
    _lock: SubnetLock,
}

impl Topology {
    /// Takes a free subnet N (see [`SUBNETS`]) and creates namespace
    /// `petrel-xdp-N` joined to host interface `pxtNh` (198.19.N.1) by a
    /// veth with `queues` queues a side.
    pub fn up(queues: u32) -> Topology {
        let lock = claim_subnet();
        let subnet = lock.subnet;
        let (host_if, peer_if, ns) = names(subnet);
        let host_addr = format!("198.19.{subnet}.1");
        // The server end stays in this (the root) namespace, where the
        // tests attach XDP in-process; the client end gets a namespace.
        let env = vec![
            ("SERVER_NS", "-".to_string()),
            ("CLIENT_NS", ns.clone()),
            ("SERVER_IF", host_if.clone()),
            ("CLIENT_IF", peer_if.clone()),
            ("SERVER_ADDR", host_addr.clone()),
            ("CLIENT_ADDR", format!("198.19.{subnet}.2")),
            ("QUEUES", queues.to_string()),
        ];
        let t = Topology {
            env,
            ns,
            host_if,
            peer_if,
            host_addr,
            _lock: lock,
        };
        let status = t.script("up");
        assert!(status, "scripts/netns up failed");
        t
    }

    fn script(&self, action: &str) -> bool {
        Command::new(repo_root().join("scripts/netns"))
            .arg(action)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Runs `tests/xdp_client.py MODE` in the namespace against `port`,
    /// hand-made frames included; returns its "ok ..." line, panicking with
    /// its output on failure.
    pub fn client(&self, mode: &str, port: u16, gets: usize) -> String {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/xdp_client.py");
        let port = port.to_string();
        let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", self.host_if))
            .expect("host MAC");
        let out = Command::new("timeout")
            .env("RAW_IF", &self.peer_if)
            .env("RAW_DST_MAC", mac.trim())
            .args(["120", "ip", "netns", "exec", &self.ns, "python3"])
            .arg(script)
            .args([mode, &self.host_addr, &port, &port, &gets.to_string()])
            .output()
            .expect("run the client");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "client failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout.trim().to_string()
    }

    /// Runs `memcaslap -U` for 2 s from the namespace against `port`;
    /// returns the operations it completed (panics if it failed).
    pub fn memcaslap_udp(&self, port: u16) -> u64 {
        let server = format!("{}:{port}", self.host_addr);
        let out = Command::new("timeout")
            .args(["30", "ip", "netns", "exec", &self.ns, "memcaslap"])
            .args([
                "-s", &server, "-U", "-t", "2s", "-T", "1", "-c", "4", "-X", "100",
            ])
            .output()
            .expect("run memcaslap");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("memcaslap -U:\n{text}");
        assert!(
            out.status.success(),
            "memcaslap failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .find(|l| l.starts_with("Run time:"))
            .and_then(|l| l.split("Ops:").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Whether an XDP program is attached to the host interface.
    pub fn xdp_attached(&self) -> bool {
        let out = Command::new("ip")
            .args(["-d", "link", "show", "dev", &self.host_if])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.script("down");
    }
}

/// A port free for UDP and TCP on `addr`, with a kernel TCP listener bound
/// to it that answers one "ping\n" with "pong\n" (proof that TCP to the
/// cache port still reaches the kernel).
pub fn port_with_tcp_pong(addr: &str) -> (u16, JoinHandle<bool>) {
    for _ in 0..50 {
        let udp = UdpSocket::bind((addr, 0)).expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        drop(udp);
        if let Ok(tcp) = TcpListener::bind((addr, port)) {
            let h = std::thread::spawn(move || {
                let Ok((mut c, _)) = tcp.accept() else {
                    return false;
                };
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut b = [0u8; 5];
                c.read_exact(&mut b).is_ok() && &b == b"ping\n" && c.write_all(b"pong\n").is_ok()
            });
            return (port, h);
        }
    }
    panic!("no free port");
}

/// `f` summed over every queue of `fe`.
pub fn sum(fe: &XdpFrontend, f: impl Fn(&QueueStats) -> u64) -> u64 {
    fe.stats().iter().map(f).sum()
}

/// Prints every non-zero counter of every queue (for the test log).
pub fn dump(fe: &XdpFrontend) {
    for (q, s) in fe.queues().iter().zip(fe.stats()) {
        eprintln!("queue {q}: {s}");
    }
}

/// How long [`settle`] waits for the workers to catch up.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// Waits until `fe`'s workers have taken at least `frames` frames to the
/// end (answered or dropped with a reason) and put at least `tx_frames`
/// replies on the TX rings, for up to [`SETTLE_WAIT`]. The client does not
/// wait for frames that get no reply to it (malformed datagrams, hand-made
/// frames), and they may ride a queue whose worker has not run yet when
/// the client exits; the tests' exact assertions follow either way.
pub fn settle(fe: &XdpFrontend, frames: u64, tx_frames: u64) {
    let deadline = Instant::now() + SETTLE_WAIT;
    while Instant::now() < deadline {
        let done = sum(fe, |s| s.counters.rx_requests.get() + s.drops_total());
        if done >= frames && sum(fe, |s| s.counters.tx_frames.get()) >= tx_frames {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
