//! Starting the server under test on free loopback ports.
//!
//! Which server is under test is chosen by the environment:
//! * `PETREL_TEST_TARGET=petrel` (default): the binary at `PETREL_BIN`, or else `petrel` in the
//!   `release` directory of the cargo target directory this test binary was built in (so
//!   `CARGO_TARGET_DIR` is followed the way cargo follows it; see [`petrel_path`]).
//! * `PETREL_TEST_TARGET=memcached`: Debian's `memcached` (`MEMCACHED_BIN` overrides the path),
//!   used to prove that the tests themselves expect memcached's behaviour.
//!
//! When the petrel binary is missing, [`Target::from_env`] returns `None` after a
//! [`crate::skip::skip`] (which fails under `CI`), so a test can return early.
//!
//! Readiness: a server counts as started when `stats` on its TCP port reports the PID of the
//! process this module spawned (`STAT pid`), not merely when something accepts there.
//!
//! Ports: a free port is found by binding port 0 on 127.0.0.1 (TCP and UDP on the same number,
//! which `memcaslap -U` needs), released, and handed to the server. If another process takes the
//! port in between, the server fails to start and [`ServerBuilder::start`] retries with new ports.

use std::fs::File;
use std::io::Read;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take between spawn and accepting a TCP connection.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Which implementation a [`Target`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Petrel's own binary.
    Petrel,
    /// Debian's memcached, the reference implementation.
    Memcached,
}

/// A server binary to start.
#[derive(Clone, Debug)]
pub struct Target {
    /// The implementation.
    pub kind: Kind,
    /// Path of the executable.
    pub path: PathBuf,
}

/// Workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of the release petrel binary: `PETREL_BIN` if set, else
/// [`release_binary_beside`] the running test binary, else `$CARGO_TARGET_DIR/release/petrel`,
/// else `<workspace>/target/release/petrel`.
pub fn petrel_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PETREL_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::current_exe()
        .ok()
        .and_then(|exe| release_binary_beside(&exe, "petrel"))
    {
        return p;
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => Path::new(&dir).join("release/petrel"),
        None => workspace_root().join("target/release/petrel"),
    }
}

/// The release build of binary `name` in the cargo target directory that holds `test_exe`.
/// cargo puts test binaries in `<target dir>/<profile>/deps/` (or
/// `<target dir>/<triple>/<profile>/deps/`) and binaries in `<...>/release/`, wherever the
/// target directory is (`CARGO_TARGET_DIR`, `build.target-dir`). `None` when `test_exe` is not
/// in a `deps` directory.
pub fn release_binary_beside(test_exe: &Path, name: &str) -> Option<PathBuf> {
    let deps = test_exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let profile_parent = deps.parent()?.parent()?;
    Some(profile_parent.join("release").join(name))
}

/// Path of the memcached binary: `MEMCACHED_BIN` or `memcached` from `PATH`.
pub fn memcached_path() -> PathBuf {
    match std::env::var_os("MEMCACHED_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("memcached"),
    }
}

pub use crate::net::free_port_pair;
pub use crate::skip::{in_ci, is_root};

impl Target {
    /// The server under test as chosen by `PETREL_TEST_TARGET` (see the module docs).
    ///
    /// Returns `None` (after a [`crate::skip::skip`]) when the petrel binary does not exist and
    /// `CI` is not set. Panics when it does not exist and `CI` is set, or when the variable
    /// holds an unknown name.
    pub fn from_env() -> Option<Target> {
        let which = std::env::var("PETREL_TEST_TARGET").unwrap_or_else(|_| "petrel".into());
        match which.as_str() {
            "petrel" => Self::petrel(),
            "memcached" => Some(Self::memcached()),
            other => panic!("PETREL_TEST_TARGET={other}: expected petrel or memcached"),
        }
    }

    /// The petrel binary, with the same missing-binary rule as [`Target::from_env`].
    pub fn petrel() -> Option<Target> {
        let path = petrel_path();
        if path.is_file() {
            return Some(Target {
                kind: Kind::Petrel,
                path,
            });
        }
        crate::skip::skip(&format!(
            "{} does not exist; build it with `cargo build --release -p petrel` \
             (or set PETREL_TEST_TARGET=memcached to run the tests against memcached)",
            path.display()
        ));
        None
    }

    /// Debian's memcached (the reference).
    pub fn memcached() -> Target {
        Target {
            kind: Kind::Memcached,
            path: memcached_path(),
        }
    }

    /// A builder for a server of this target with the common defaults
    /// (`-l 127.0.0.1 -m 64 -t 1`, TCP and UDP on one free port).
    pub fn builder(&self) -> ServerBuilder {
        ServerBuilder {
            target: self.clone(),
            memory_mib: 64,
            threads: 1,
            conn_limit: None,
            max_item: None,
            udp: true,
            extra: Vec::new(),
            taskset: None,
            bare: false,
            probe: None,
            env: Vec::new(),
        }
    }

    /// Starts a server with the defaults of [`Target::builder`].
    pub fn start(&self) -> Server {
        self.builder().start()
    }
}

/// Options for one server process.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    target: Target,
    memory_mib: u32,
    threads: u32,
    conn_limit: Option<u32>,
    max_item: Option<String>,
    udp: bool,
    extra: Vec<String>,
    taskset: Option<String>,
    bare: bool,
    probe: Option<fn(TcpStream) -> Option<u32>>,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    /// Sets an environment variable of the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
    /// Tells readiness (and the answering process's pid) with `probe` instead of an ASCII
    /// `stats`: for servers that answer nothing before authentication.
    pub fn ready_probe(mut self, probe: fn(TcpStream) -> Option<u32>) -> Self {
        self.probe = Some(probe);
        self
    }
    /// Pass only the arguments given with [`ServerBuilder::arg`] (no `-p -U -l -m -t`): for
    /// servers configured by a file. [`ServerBuilder::try_start`] still waits on its `tcp` port.
    pub fn bare(mut self) -> Self {
        self.bare = true;
        self
    }
    /// `-m MiB` of item memory.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }
    /// `-t N` worker threads.
    pub fn threads(mut self, n: u32) -> Self {
        self.threads = n;
        self
    }
    /// `-c N` connection limit.
    pub fn conn_limit(mut self, n: u32) -> Self {
        self.conn_limit = Some(n);
        self
    }
    /// `-I SIZE` item size limit, memcached syntax (`1m`, `2m`, `512k`).
    pub fn max_item(mut self, size: &str) -> Self {
        self.max_item = Some(size.to_string());
        self
    }
    /// Disable UDP (`-U 0`).
    pub fn no_udp(mut self) -> Self {
        self.udp = false;
        self
    }
    /// Extra command-line arguments, appended last.
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_string());
        self
    }
    /// Run the server under `taskset -c CPUS`.
    pub fn taskset(mut self, cpus: &str) -> Self {
        self.taskset = Some(cpus.to_string());
        self
    }

    /// The full argument list for ports `tcp`/`udp` (without the program name).
    pub fn args(&self, tcp: u16, udp: u16) -> Vec<String> {
        if self.bare {
            return self.extra.clone();
        }
        let mut a: Vec<String> = vec![
            "-l".into(),
            "127.0.0.1".into(),
            "-p".into(),
            tcp.to_string(),
            "-U".into(),
            if self.udp {
                udp.to_string()
            } else {
                "0".into()
            },
            "-m".into(),
            self.memory_mib.to_string(),
            "-t".into(),
            self.threads.to_string(),
        ];
        if let Some(c) = self.conn_limit {
            a.push("-c".into());
            a.push(c.to_string());
        }
        if let Some(i) = &self.max_item {
            a.push("-I".into());
            a.push(i.clone());
        }
        if self.target.kind == Kind::Memcached && is_root() {
            a.push("-u".into());
            a.push("memcache".into());
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Spawns the server on free loopback ports and waits until it accepts TCP connections.
    /// Retries with new ports if the process exits early (port taken in between). Panics with
    /// the server's log when it never becomes ready.
    pub fn start(&self) -> Server {
        let mut last_err = String::new();
        for _attempt in 0..4 {
            let port = free_port_pair();
            match self.try_start(port, port) {
                Ok(s) => return s,
                Err(e) => last_err = e,
            }
        }
        panic!("server did not start: {last_err}");
    }

    /// Spawns the server on the given ports; `Err` carries the reason and the server's log.
    pub fn try_start(&self, tcp: u16, udp: u16) -> Result<Server, String> {
        let args = self.args(tcp, udp);
        let log_path = new_log_path();
        let log = File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let mut cmd = match &self.taskset {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&self.target.path);
                c
            }
            None => Command::new(&self.target.path),
        };
        cmd.args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.target.path.display()))?;
        let mut server = Server {
            kind: self.target.kind,
            child: Some(child),
            tcp_port: tcp,
            udp_port: if self.udp { udp } else { 0 },
            log_path,
            args,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                server.child = None;
                return Err(format!(
                    "{:?} {:?} exited with {status} before accepting; log:\n{}",
                    server.kind,
                    server.args,
                    server.log()
                ));
            }
            if let Ok(stream) =
                TcpStream::connect_timeout(&server.tcp_addr(), Duration::from_millis(200))
            {
                let ours = server.pid();
                match self.probe.unwrap_or(stats_pid)(stream) {
                    Some(pid) if Some(pid) == ours => return Ok(server),
                    Some(pid) => {
                        // another process took the port between free_port_pair and the spawn
                        return Err(format!(
                            "{} is answered by pid {pid}, not by the {:?} started (pid {ours:?}); log:\n{}",
                            server.tcp_addr(),
                            server.kind,
                            server.log()
                        ));
                    }
                    // accepted but no `stats` reply yet (still starting): try again
                    None => {}
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{:?} {:?} did not accept on {} within {START_TIMEOUT:?}; log:\n{}",
                    server.kind,
                    server.args,
                    server.tcp_addr(),
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running server process; killed (SIGKILL, by PID) and reaped on drop.
#[derive(Debug)]
pub struct Server {
    /// The implementation.
    pub kind: Kind,
    child: Option<Child>,
    /// TCP port on 127.0.0.1.
    pub tcp_port: u16,
    /// UDP port on 127.0.0.1 (0 when UDP is disabled).
    pub udp_port: u16,
    log_path: PathBuf,
    /// The arguments the server was started with.
    pub args: Vec<String>,
}

impl Server {
    /// TCP address of the server.
    pub fn tcp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tcp_port))
    }
    /// UDP address of the server.
    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.udp_port))
    }
    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) with the PID of a child we spawned and have not reaped yet, so
            // the PID cannot have been reused by another process.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }
    /// Waits up to `timeout` for the process to exit; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

/// True when the memcached reference runs; otherwise [`crate::skip::skip`]s (scripts/setup
/// installs it).
#[track_caller]
pub fn require_memcached() -> bool {
    crate::skip::require_program(
        &memcached_path().to_string_lossy(),
        "-V",
        "scripts/setup installs Debian's memcached 1.6.18; MEMCACHED_BIN names another",
    )
}

/// `STAT pid` of the server answering on `stream` (one `stats` round trip, at most 2 s);
/// `None` when no complete `stats` reply with a pid arrives.
pub fn stats_pid(mut stream: TcpStream) -> Option<u32> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok()?;
    stream.write_all(b"stats\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(2);
    while !buf.ends_with(b"END\r\n") {
        if Instant::now() > deadline {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .find_map(|l| l.strip_prefix("STAT pid "))
        .and_then(|v| v.trim().parse().ok())
}

fn new_log_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "petrel-tests-{}-{}.log",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Runs the target binary with `args` (no port set-up) and returns its exit status and combined
/// output; kills it and panics if it runs longer than `timeout`.
pub fn run_to_exit(path: &Path, args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let log_path = new_log_path();
    let log = File::create(&log_path).expect("log file");
    let log2 = log.try_clone().expect("log file");
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", path.display()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = std::fs::remove_file(&log_path);
            panic!(
                "{} {args:?} still ran after {timeout:?} (expected it to exit); output:\n{out}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    (status, out)
}

/// Resident memory of process `pid` in KiB (`VmRSS`), if it can be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_binary_follows_the_target_directory() {
        // CARGO_TARGET_DIR=/tmp/t cargo test: tests in /tmp/t/debug/deps, binary in /tmp/t/release
        assert_eq!(
            release_binary_beside(
                Path::new("/tmp/t/debug/deps/cli-0123456789abcdef"),
                "petrel"
            ),
            Some(PathBuf::from("/tmp/t/release/petrel"))
        );
        assert_eq!(
            release_binary_beside(
                Path::new("/w/target/release/deps/x-0123456789abcdef"),
                "petrel"
            ),
            Some(PathBuf::from("/w/target/release/petrel"))
        );
        assert_eq!(
            release_binary_beside(
                Path::new("/w/target/x86_64-unknown-linux-gnu/release/deps/x-0123456789abcdef"),
                "petrel"
            ),
            Some(PathBuf::from(
                "/w/target/x86_64-unknown-linux-gnu/release/petrel"
            ))
        );
        assert_eq!(
            release_binary_beside(Path::new("/usr/bin/x"), "petrel"),
            None
        );
    }

    #[test]
    fn petrel_path_is_in_this_test_binarys_target_directory() {
        if std::env::var_os("PETREL_BIN").is_some() {
            return; // PETREL_BIN names the binary explicitly
        }
        let exe = std::env::current_exe().unwrap();
        let target_dir = exe.parent().unwrap().parent().unwrap().parent().unwrap();
        assert_eq!(petrel_path(), target_dir.join("release/petrel"));
    }
}
