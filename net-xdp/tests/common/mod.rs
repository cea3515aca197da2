//! Shared by the veth end-to-end tests: root check, topology guard, client
//! runner, counters summed over queues.
#![allow(dead_code)]

use petrel_xdp::{QueueStats, XdpFrontend};
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

/// True when running as root; AF_XDP, namespaces and veth need it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A veth topology made by `scripts/netns`, removed on drop.
pub struct Topology {
    env: Vec<(&'static str, String)>,
    pub ns: String,
    pub host_if: String,
    pub peer_if: String,
    pub host_addr: String,
}

impl Topology {
    /// Creates namespace `petrel-xdp-TAG-PID` joined to host interface
    /// `pxTAGhPID` (198.18.SUBNET.1) by a veth with `queues` queues a side.
    pub fn up(tag: &str, subnet: u8, queues: u32) -> Topology {
        let id = std::process::id() % 100_000;
        let host_if = format!("px{tag}h{id}");
        let ns = format!("petrel-xdp-{tag}-{id}");
        let host_addr = format!("198.18.{subnet}.1");
        let peer_if = format!("px{tag}p{id}");
        // The server end stays in this (the root) namespace, where the
        // tests attach XDP in-process; the client end gets a namespace.
        let env = vec![
            ("SERVER_NS", "-".to_string()),
            ("CLIENT_NS", ns.clone()),
            ("SERVER_IF", host_if.clone()),
            ("CLIENT_IF", peer_if.clone()),
            ("SERVER_ADDR", host_addr.clone()),
            ("CLIENT_ADDR", format!("198.18.{subnet}.2")),
            ("QUEUES", queues.to_string()),
        ];
        let t = Topology {
            env,
            ns,
            host_if,
            peer_if,
            host_addr,
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
