//! The petrel binary with its AF_XDP front end (`--xdp-iface`), end to end
//! over a veth pair made by `scripts/netns-xdp`: the server on the host
//! side, clients in a network namespace. In generic and in native mode:
//! sets over TCP, gets over UDP through AF_XDP (every reply checked, one
//! spanning several datagrams), malformed datagrams, ping and TCP on the
//! cache address answered by the kernel, Debian's `memcaslap -U`, and no
//! XDP program left on the interface after the server exits.
//!
//! Skips with a note when not root, when the release binary is missing
//! (outside CI), or when it has no `--xdp-iface` flag. Traffic goes only to
//! 198.18.0.0/15 addresses of the topology it creates, and the topology is
//! always removed (Drop guard).

use petrel_tests::server::{in_ci, is_root, petrel_path, workspace_root};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A veth topology made by `scripts/netns-xdp`, removed on drop.
struct Topology {
    env: Vec<(&'static str, String)>,
    ns: String,
    host_if: String,
    host_addr: String,
}

impl Topology {
    fn up(tag: &str, subnet: u8) -> Topology {
        let id = std::process::id() % 100_000;
        let ns = format!("petrel-xdp-{tag}-{id}");
        let host_if = format!("pe{tag}h{id}");
        let host_addr = format!("198.18.{subnet}.1");
        let env = vec![
            ("NS", ns.clone()),
            ("HOST_IF", host_if.clone()),
            ("PEER_IF", format!("pe{tag}p{id}")),
            ("HOST_ADDR", host_addr.clone()),
            ("PEER_ADDR", format!("198.18.{subnet}.2")),
            ("QUEUES", "2".to_string()),
        ];
        let t = Topology {
            env,
            ns,
            host_if,
            host_addr,
        };
        assert!(t.script("up"), "scripts/netns-xdp up failed");
        t
    }

    fn script(&self, action: &str) -> bool {
        Command::new(workspace_root().join("scripts/netns-xdp"))
            .arg(action)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .status()
            .is_ok_and(|s| s.success())
    }

    fn in_ns(&self, program: &str) -> Command {
        let mut c = Command::new("timeout");
        c.args(["120", "ip", "netns", "exec", &self.ns, program]);
        c
    }

    fn xdp_attached(&self) -> bool {
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

/// The server process; killed by PID and reaped on drop.
struct Petrel {
    child: Option<Child>,
    log: PathBuf,
}

impl Petrel {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status within 10 s.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on the PID of our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("petrel did not exit on SIGTERM; log:\n{}", self.log());
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
    }
}

fn binary_with_xdp() -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIPPED: the AF_XDP end-to-end test needs root (netns, veth, XDP)");
        return None;
    }
    let path = petrel_path();
    if !path.is_file() {
        assert!(!in_ci(), "{} does not exist (CI is set)", path.display());
        eprintln!(
            "SKIPPED: {} does not exist; cargo build --release -p petrel",
            path.display()
        );
        return None;
    }
    let help = Command::new(&path)
        .arg("--help")
        .output()
        .expect("petrel --help");
    if !String::from_utf8_lossy(&help.stdout).contains("--xdp-iface") {
        eprintln!(
            "SKIPPED: {} has no --xdp-iface flag (AF_XDP not wired into the server)",
            path.display()
        );
        return None;
    }
    Some(path)
}

/// A port free for TCP and UDP on `addr`.
fn free_port(addr: &str) -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((addr, 0)).expect("bind");
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind((addr, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {addr}");
}

fn start(bin: &PathBuf, topo: &Topology, port: u16, mode: &str) -> Petrel {
    let log =
        std::env::temp_dir().join(format!("petrel-xdp-e2e-{}-{mode}.log", std::process::id()));
    let out = std::fs::File::create(&log).expect("log file");
    let child = Command::new(bin)
        .args([
            "-l",
            &topo.host_addr,
            "-p",
            &port.to_string(),
            "-U",
            &port.to_string(),
        ])
        .args(["-m", "64", "-t", "2", "-v"])
        .args(["--xdp-iface", &topo.host_if, "--xdp-mode", mode])
        // The clients are in 198.18.0.0/15, not loopback: trust them (UDP guard).
        .args(["--udp-allow", "198.18.0.0/15"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn petrel");
    let mut p = Petrel {
        child: Some(child),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = format!("{}:{port}", topo.host_addr).parse().unwrap();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(st) = p.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("petrel exited with {st}; log:\n{}", p.log());
        }
        assert!(
            Instant::now() < deadline,
            "petrel did not accept; log:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

fn run(bin: &PathBuf, mode: &str, tag: &str, subnet: u8) {
    let topo = Topology::up(tag, subnet);
    let port = free_port(&topo.host_addr);
    let mut server = start(bin, &topo, port, mode);
    assert!(
        topo.xdp_attached(),
        "no XDP program on {}; log:\n{}",
        topo.host_if,
        server.log()
    );

    let client = workspace_root().join("net-xdp/tests/xdp_client.py");
    let p = port.to_string();
    let out = topo
        .in_ns("python3")
        .arg(&client)
        .args(["server", &topo.host_addr, &p, &p, "10000"])
        .output()
        .expect("client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{mode}: client: {stdout}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    eprintln!("{mode}: {}", stdout.trim());

    // Debian's memcaslap over UDP: a short bounded run without errors.
    let out = topo
        .in_ns("memcaslap")
        .args([
            "-s",
            &format!("{}:{port}", topo.host_addr),
            "-U",
            "-t",
            "2s",
            "-T",
            "1",
            "-c",
            "4",
        ])
        .args(["-X", "100"])
        .output()
        .expect("memcaslap");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{mode}: memcaslap:\n{text}");
    assert!(
        out.status.success(),
        "memcaslap failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ops: u64 = text
        .lines()
        .find(|l| l.starts_with("Run time:"))
        .and_then(|l| l.split("Ops:").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(ops > 1000, "memcaslap -U completed only {ops} operations");

    let status = server.terminate();
    assert!(
        status.success(),
        "petrel exit {status}; log:\n{}",
        server.log()
    );
    assert!(
        !topo.xdp_attached(),
        "XDP program left on {} after exit",
        topo.host_if
    );
}

#[test]
fn petrel_serves_udp_through_af_xdp_in_generic_and_native_mode() {
    let Some(bin) = binary_with_xdp() else {
        return;
    };
    run(&bin, "generic", "g", 50);
    run(&bin, "native", "n", 51);
}
