//! Petrel as a drop-in for a memcached deployment: Debian's own
//! `systemd-memcached-wrapper` and `/etc/memcached.conf` start it; SIGHUP
//! reopens the log under load and a following SIGTERM still saves the
//! `--persist` cache; the Unix socket (`-s`, `-a`) answers like TCP; the
//! Debian package builds, installs, runs and purges.

use petrel_tests::server::{free_port_pair, petrel_path, workspace_root, Kind, Target};
use petrel_tests::skip;
use petrel_tests::tcp::{storage_cmd, value_reply, Conn};
use petrel_tests::wait::wait_until;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Debian's memcached package: the wrapper its unit runs, and its config as shipped.
const WRAPPER: &str = "/usr/share/memcached/scripts/systemd-memcached-wrapper";
const SHIPPED_CONF: &str = "/usr/share/memcached/memcached.conf.default";

/// Petrel-only: these start the petrel binary itself.
fn petrel_target() -> bool {
    match Target::from_env() {
        Some(t) if t.kind == Kind::Petrel => true,
        Some(_) => {
            skip::not_applicable("starts petrel through memcached's wrapper and package");
            false
        }
        None => false,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("petrel-dropin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Waits for `child` to exit, bounded; kills it and panics if it does not.
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(EXIT_TIMEOUT, what, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status.expect("exit status")
}

/// One request/reply exchange over any stream, reading until `suffix`.
fn exchange(s: &mut (impl Read + Write), request: &[u8], suffix: &[u8]) -> Vec<u8> {
    s.write_all(request).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(suffix) {
        let n = s.read(&mut buf).expect("read reply");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Runs `f` on a thread that has joined the network namespace of `pid`
/// (setns applies to the calling thread only).
fn in_netns_of<T: Send + 'static>(pid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("open netns");
        use std::os::fd::AsRawFd;
        // SAFETY: setns with a namespace descriptor, affecting this thread only.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

fn set_and_get(s: &mut (impl Read + Write), key: &str) {
    let reply = exchange(s, &storage_cmd("set", key, 5, 0, b"hello", false), b"\r\n");
    assert_eq!(reply, b"STORED\r\n");
    let reply = exchange(s, format!("get {key}\r\n").as_bytes(), b"END\r\n");
    assert_eq!(
        reply,
        format!("VALUE {key} 5 5\r\nhello\r\nEND\r\n").as_bytes()
    );
}

/// What a variant of memcached.conf serves on, checked from inside the namespace.
enum Serves {
    /// TCP on these addresses.
    Tcp(Vec<&'static str>),
    /// Only this Unix socket (path inside the namespace), with this mode.
    Unix(&'static str, u32),
}

/// Runs Debian's wrapper (a copy whose one change is the binary's path)
/// on `conf` in a private network and mount namespace (its own loopback and
/// /run, so the shipped port 11211 and pidfile path are free), then checks
/// that Petrel serves, wrote the pidfile with its pid, exits 0 on SIGTERM and
/// removed the pidfile.
fn wrapper_run(name: &str, conf: &str, serves: Serves, log_must_name: &[&str]) {
    let dir = temp_dir(&format!("wrapper-{name}"));
    let petrel = petrel_path();
    let wrapper = std::fs::read_to_string(WRAPPER).expect("read the wrapper");
    let line = "my $memcached = \"/usr/bin/memcached\";";
    assert_eq!(
        wrapper.matches(line).count(),
        1,
        "the wrapper's binary line"
    );
    let wrapper = wrapper.replace(line, &format!("my $memcached = \"{}\";", petrel.display()));
    std::fs::write(dir.join("wrapper"), wrapper).expect("write wrapper");
    std::fs::write(dir.join("memcached.conf"), conf).expect("write conf");
    let script = format!(
        "ip link set lo up && mount -t tmpfs tmpfs /run && mkdir -p /run/memcached && \
         chown memcache /run/memcached && perl {w} {c}; st=$?; \
         if [ -e /run/memcached/memcached.pid ]; then echo PIDFILE-LEFT; fi; exit $st",
        w = dir.join("wrapper").display(),
        c = dir.join("memcached.conf").display()
    );
    let out = std::fs::File::create(dir.join("out")).expect("out");
    let mut sh = Command::new("unshare")
        .args(["--net", "--mount", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn unshare");
    let root = format!("/proc/{}/root", sh.id());
    let pidfile = format!("{root}/run/memcached/memcached.pid");
    let mut pid = 0u32;
    wait_until(START_TIMEOUT, "the pidfile from -P", || {
        pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe of the pidfile's pid");
    assert_eq!(
        exe,
        petrel.canonicalize().expect("petrel path"),
        "the pidfile names the petrel process the wrapper started"
    );
    match serves {
        Serves::Tcp(addrs) => {
            for a in addrs {
                let key = format!("k{}", a.replace([':', '.'], "_"));
                in_netns_of(pid, move || {
                    set_and_get(&mut connect_tcp(a), &key);
                });
            }
            // The shipped config's port in the namespace, nowhere else: no UDP
            // or TCP beyond the -l list was asked for.
        }
        Serves::Unix(path, mode) => {
            let p = format!("{root}{path}");
            wait_until(START_TIMEOUT, "the Unix socket", || Path::new(&p).exists());
            assert_eq!(mode_of(&p), mode, "-a sets the socket's mode");
            let mut s = UnixStream::connect(&p).expect("connect to the socket");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            set_and_get(&mut s, "unix");
            // memcached serves only the socket with -s: nothing on TCP 11211.
            let tcp = in_netns_of(pid, || TcpStream::connect("127.0.0.1:11211").is_ok());
            assert!(!tcp, "with -s there must be no TCP listener");
        }
    }
    // SAFETY: kill(2) on the petrel process started above (checked via /proc/PID/exe).
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let status = wait_exit(&mut sh, "petrel to exit after SIGTERM");
    let log = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "exit status; output:\n{log}");
    assert!(
        !log.contains("PIDFILE-LEFT"),
        "the pidfile was not removed:\n{log}"
    );
    for needle in log_must_name {
        assert!(
            log.contains(needle),
            "output should name {needle:?}:\n{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debian_memcached_wrapper_starts_petrel_with_memcached_conf_and_variants() {
    if !petrel_target()
        || !skip::require_root("network and mount namespaces, -u memcache")
        || !skip::require_program("unshare", "--version", "util-linux")
        || !skip::require_program("ip", "-V", "scripts/setup installs iproute2")
        || !skip::require_program("perl", "-v", "Debian's perl-base")
    {
        return;
    }
    let Ok(shipped) = std::fs::read_to_string(SHIPPED_CONF) else {
        skip::skip("memcached's Debian package is not installed (scripts/setup installs it)");
        return;
    };
    // As shipped: -d (dropped by the wrapper), -m 64, -p 11211, -u memcache,
    // -l 127.0.0.1, -P /var/run/memcached/memcached.pid, and a `logfile` line.
    assert!(
        shipped.contains("\n-P /var/run/memcached/memcached.pid"),
        "{shipped}"
    );
    wrapper_run(
        "shipped",
        &shipped,
        Serves::Tcp(vec!["127.0.0.1:11211"]),
        &[],
    );
    wrapper_run(
        "modern",
        &format!("{shipped}\n-o modern\n-o slab_reassign,lru_crawler\n"),
        Serves::Tcp(vec!["127.0.0.1:11211"]),
        &["-o modern", "-o slab_reassign", "-o lru_crawler"],
    );
    wrapper_run(
        "listen",
        &format!("{shipped}\n-l 127.0.0.2:11300\n-l 127.0.0.3,127.0.0.4:11400\n"),
        Serves::Tcp(vec![
            "127.0.0.1:11211",
            "127.0.0.2:11300",
            "127.0.0.3:11211",
            "127.0.0.4:11400",
        ]),
        &[],
    );
    wrapper_run(
        "unix",
        &format!("{shipped}\n-s /run/memcached/memcached.sock\n-a 0770\n"),
        Serves::Unix("/run/memcached/memcached.sock", 0o770),
        &[],
    );
}

/// Starts petrel with `args`; its output goes to `dir/out`.
fn spawn_petrel(dir: &Path, args: &[&str]) -> Child {
    let out = std::fs::File::create(dir.join("out")).expect("out");
    Command::new(petrel_path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn petrel")
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// 127.0.0.1:`port`.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts petrel with `args` (output to `dir/out`) and waits until it accepts on `addr`.
fn start_petrel(dir: &Path, args: &[&str], addr: SocketAddr, what: &str) -> Child {
    let petrel = spawn_petrel(dir, args);
    wait_until(START_TIMEOUT, what, || TcpStream::connect(addr).is_ok());
    petrel
}

/// Sends SIGTERM to `child` and asserts that it exits 0.
fn stop(child: &mut Child, what: &str) {
    signal(child, libc::SIGTERM);
    assert_eq!(wait_exit(child, what).code(), Some(0), "{what}");
}

/// A TCP connection to `addr` whose reads give up after 10 s.
fn connect_tcp(addr: impl ToSocketAddrs) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// The permission bits of the file at `path`.
fn mode_of(path: impl AsRef<Path>) -> u32 {
    std::fs::metadata(path)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777
}

/// A `--persist` file of this test process in /dev/shm, absent at the start and removed when
/// dropped.
struct PersistFile(PathBuf);

impl PersistFile {
    fn new(name: &str) -> Self {
        let p = PathBuf::from(format!(
            "/dev/shm/petrel-dropin-{name}-{}.pmem",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        PersistFile(p)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for PersistFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Checks that `key` holds `value` (flags 0).
fn check_value(conn: &mut Conn, key: &str, value: &str) {
    conn.check(
        format!("get {key}\r\n").as_bytes(),
        &value_reply(key, 0, value.as_bytes()),
    );
}

#[test]
fn sighup_under_load_reopens_the_log_and_sigterm_still_saves_the_cache() {
    if !petrel_target() {
        return;
    }
    let dir = temp_dir("sighup");
    let log = dir.join("petrel.log");
    let persist = PersistFile::new("h");
    let port = free_port_pair();
    let port_s = port.to_string();
    let args = [
        "-p",
        &port_s,
        "-U",
        "0",
        "-l",
        "127.0.0.1",
        "-m",
        "16",
        "-t",
        "2",
        "--admin-port",
        "0",
        "--log-file",
        log.to_str().expect("utf-8"),
        "--persist",
        persist.arg(),
    ];
    let addr = loopback(port);
    let mut petrel = start_petrel(&dir, &args, addr, "petrel to accept");
    const CLIENTS: usize = 2;
    const KEYS: usize = 3000;
    let load: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut conn = Conn::connect(addr);
                for i in 0..KEYS {
                    let key = format!("c{c}-{i}");
                    let value = format!("value-{c}-{i}");
                    conn.check(
                        &storage_cmd("set", &key, 0, 0, value.as_bytes(), false),
                        b"STORED\r\n",
                    );
                    check_value(&mut conn, &key, &value);
                }
            })
        })
        .collect();
    // logrotate: move the file away, then SIGHUP (its postrotate), while the
    // clients run; then more SIGHUPs during the load.
    let rotated = dir.join("petrel.log.1");
    std::fs::rename(&log, &rotated).expect("mv the log");
    signal(&petrel, libc::SIGHUP);
    wait_until(START_TIMEOUT, "a new log file after SIGHUP", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("SIGHUP: log files reopened"))
    });
    for n in 2..=5 {
        signal(&petrel, libc::SIGHUP);
        wait_until(START_TIMEOUT, "each SIGHUP to be handled", || {
            std::fs::read_to_string(&log)
                .is_ok_and(|t| t.matches("SIGHUP: log files reopened").count() >= n)
        });
    }
    for t in load {
        t.join().expect("no request failed during the SIGHUPs");
    }
    assert!(
        petrel.try_wait().expect("try_wait").is_none(),
        "petrel kept serving"
    );
    let old = std::fs::read_to_string(&rotated).expect("rotated log");
    assert!(
        old.contains("petrel 0.1.0 pid") || old.contains(" pid "),
        "{old}"
    );
    assert!(
        !old.contains("SIGHUP"),
        "lines after the SIGHUP went to the old file:\n{old}"
    );
    stop(&mut petrel, "exit after SIGTERM");
    let new = std::fs::read_to_string(&log).expect("log");
    assert!(
        new.contains("stopped"),
        "the shutdown is logged in the new file:\n{new}"
    );

    // Warm restart: every item is back.
    let mut petrel = start_petrel(&dir, &args, addr, "petrel to accept after the restart");
    let mut conn = Conn::connect(addr);
    for c in 0..CLIENTS {
        for i in 0..KEYS {
            check_value(&mut conn, &format!("c{c}-{i}"), &format!("value-{c}-{i}"));
        }
    }
    stop(&mut petrel, "exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-d -P`: the starting process exits 0 once the daemon serves; the
/// pidfile names the daemon; SIGUSR1 stops it cleanly, saving `--persist`,
/// and removes the pidfile. A daemon that cannot start reports its error
/// through the starting process.
#[test]
fn daemon_with_pidfile_and_sigusr1_saves_the_cache() {
    if !petrel_target() {
        return;
    }
    let dir = temp_dir("daemon");
    let pidfile = dir.join("petrel.pid");
    let persist = PersistFile::new("d");
    let port = free_port_pair();
    let port_s = port.to_string();
    let args = [
        "-d",
        "-P",
        pidfile.to_str().expect("utf-8"),
        "-p",
        &port_s,
        "-U",
        "0",
        "-m",
        "16",
        "--admin-port",
        "0",
        "-e",
        persist.arg(),
    ];
    let mut starter = spawn_petrel(&dir, &args);
    let status = wait_exit(&mut starter, "the starting process to return");
    assert_eq!(status.code(), Some(0));
    // It returned once serving: the pidfile is there and the port answers.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pidfile written before the starter returned")
        .trim()
        .parse()
        .expect("a pid");
    assert_ne!(pid as u32, starter.id(), "the daemon is another process");
    let addr = loopback(port);
    let mut conn = Conn::connect(addr);
    conn.check(
        &storage_cmd("set", "kept", 3, 0, b"yes", false),
        b"STORED\r\n",
    );
    drop(conn);
    // The same port again fails, and the starter says so with the daemon's status.
    let mut second = spawn_petrel(&dir, &args[..args.len() - 2]);
    let status = wait_exit(&mut second, "the second starter to return");
    let out = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    assert_eq!(status.code(), Some(71), "{out}");
    assert!(out.contains("cannot bind"), "{out}");
    // SAFETY: kill(2) on the daemon whose pid it wrote (checked to be petrel).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("daemon exe");
    assert_eq!(exe, petrel_path().canonicalize().unwrap());
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    wait_until(EXIT_TIMEOUT, "the daemon to stop on SIGUSR1", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(!pidfile.exists(), "the pidfile is removed at a clean exit");
    // Warm: the item saved on SIGUSR1 is back (foreground this time).
    let mut petrel = start_petrel(&dir, &args[3..], addr, "petrel to accept");
    let mut conn = Conn::connect(addr);
    conn.check(b"get kept\r\n", b"VALUE kept 3 3\r\nyes\r\nEND\r\n");
    stop(&mut petrel, "exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Signals whose default action would end the process without saving
/// stop it cleanly instead: the --persist cache comes back.
#[test]
fn other_terminating_signals_stop_cleanly_and_save_the_cache() {
    if !petrel_target() {
        return;
    }
    let dir = temp_dir("signals");
    let persist = PersistFile::new("s");
    let port = free_port_pair();
    let port_s = port.to_string();
    let args = [
        "-p",
        &port_s,
        "-U",
        "0",
        "-m",
        "16",
        "--admin-port",
        "0",
        "--persist",
        persist.arg(),
    ];
    let addr = loopback(port);
    for (round, sig) in [libc::SIGQUIT, libc::SIGUSR2, libc::SIGALRM, libc::SIGTERM]
        .into_iter()
        .enumerate()
    {
        let mut petrel = start_petrel(&dir, &args, addr, "petrel to accept");
        let mut conn = Conn::connect(addr);
        // Every earlier round's item survived its signal.
        for r in 0..round {
            check_value(&mut conn, &format!("round{r}"), "x");
        }
        let key = format!("round{round}");
        conn.check(&storage_cmd("set", &key, 0, 0, b"x", false), b"STORED\r\n");
        drop(conn);
        signal(&petrel, sig);
        let status = wait_exit(&mut petrel, "exit after the signal");
        assert_eq!(status.code(), Some(0), "signal {sig}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same requests over TCP (one petrel) and over the Unix socket (another,
/// started with -s): identical replies, byte for byte.
#[test]
fn unix_socket_answers_as_tcp_does_and_follows_the_mask() {
    if !petrel_target() {
        return;
    }
    let dir = temp_dir("unix");
    let sock = dir.join("petrel.sock");
    let port = free_port_pair();
    let port_s = port.to_string();
    let common = ["-m", "16", "-t", "1", "--admin-port", "0"];
    let mut tcp_args = vec!["-p", &port_s, "-U", "0", "-l", "127.0.0.1"];
    tcp_args.extend_from_slice(&common);
    let mut unix_args = vec!["-s", sock.to_str().expect("utf-8"), "-a", "0766"];
    unix_args.extend_from_slice(&common);
    let tcp_dir = temp_dir("unix-tcp");
    let addr = loopback(port);
    let mut unix = spawn_petrel(&dir, &unix_args);
    let mut tcp = start_petrel(&tcp_dir, &tcp_args, addr, "TCP petrel");
    wait_until(START_TIMEOUT, "Unix petrel", || {
        UnixStream::connect(&sock).is_ok()
    });
    assert_eq!(mode_of(&sock), 0o766, "-a 0766");
    let mut t = connect_tcp(addr);
    let mut u = UnixStream::connect(&sock).expect("unix");
    u.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let requests: &[(&[u8], &[u8])] = &[
        (b"set a 1 0 3\r\nabc\r\n", b"\r\n"),
        (b"get a b\r\n", b"END\r\n"),
        (b"gets a\r\n", b"END\r\n"),
        (b"add a 0 0 1\r\nx\r\n", b"\r\n"),
        (b"append a 0 0 2\r\nde\r\n", b"\r\n"),
        (b"prepend a 0 0 1\r\nz\r\n", b"\r\n"),
        (b"get a\r\n", b"END\r\n"),
        (b"cas a 0 0 1 999\r\nq\r\n", b"\r\n"),
        (b"set n 0 0 2\r\n10\r\n", b"\r\n"),
        (b"incr n 5\r\n", b"\r\n"),
        (b"decr n 100\r\n", b"\r\n"),
        (b"touch n 100\r\n", b"\r\n"),
        (b"delete a\r\n", b"\r\n"),
        (b"delete a\r\n", b"\r\n"),
        (b"mn\r\n", b"MN\r\n"),
        (b"ms m 2\r\nhi\r\n", b"\r\n"),
        (b"mg m v f t\r\n", b"\r\n"),
        (b"bogus\r\n", b"\r\n"),
        (b"verbosity 1\r\n", b"\r\n"),
        (b"version\r\n", b"\r\n"),
        (b"flush_all\r\n", b"\r\n"),
        (b"get n m\r\n", b"END\r\n"),
    ];
    for (req, suffix) in requests {
        let over_tcp = exchange(&mut t, req, suffix);
        let over_unix = exchange(&mut u, req, suffix);
        assert_eq!(
            String::from_utf8_lossy(&over_unix),
            String::from_utf8_lossy(&over_tcp),
            "{}",
            String::from_utf8_lossy(req)
        );
    }
    stop(&mut tcp, "tcp exit");
    stop(&mut unix, "unix exit");
    assert!(!sock.exists(), "the socket file is removed at a clean exit");
    // Default mask: memcached's 0700.
    let mut unix = spawn_petrel(&dir, &["-s", sock.to_str().unwrap(), "--admin-port", "0"]);
    wait_until(START_TIMEOUT, "Unix petrel", || {
        UnixStream::connect(&sock).is_ok()
    });
    assert_eq!(mode_of(&sock), 0o700, "default -a");
    stop(&mut unix, "exit");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&tcp_dir);
}

/// Purges the package (and the user it created) however the test ends.
struct Installed {
    user_existed: bool,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "petrel"])
            .stdout(Stdio::null())
            .status();
        if !self.user_existed {
            let _ = Command::new("userdel").arg("petrel").status();
        }
    }
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn debian_package_builds_installs_runs_and_purges() {
    if !petrel_target()
        || !skip::require_root("dpkg -i")
        || !skip::require_program("cargo-deb", "--version", "scripts/setup installs cargo-deb")
        || !skip::require_program(
            "systemd-analyze",
            "--version",
            "scripts/setup installs systemd",
        )
        || !skip::require_program("man", "--version", "scripts/setup installs man-db")
    {
        return;
    }
    let root = workspace_root();
    // The man page renders.
    let (ok, page) = run(Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(root.join("packaging/petrel.1"))
        .env("MANWIDTH", "100"));
    assert!(
        ok && page.contains("--pidfile") && page.contains("--listen"),
        "{page}"
    );

    if Command::new("dpkg")
        .args(["-s", "petrel"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        panic!("a petrel package is already installed on this machine; remove it first");
    }
    let out_dir = temp_dir("deb");
    // The binary scripts/test built; cargo deb strips it into the package.
    let (ok, text) = run(Command::new("cargo")
        .current_dir(&root)
        .args(["deb", "-p", "petrel", "--no-build", "-o"])
        .arg(&out_dir));
    assert!(ok, "cargo deb:\n{text}");
    let deb = std::fs::read_dir(&out_dir)
        .expect("out dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}: {text}", out_dir.display()));
    let (ok, list) = run(Command::new("dpkg").arg("-c").arg(&deb));
    assert!(ok, "{list}");
    for f in [
        "./usr/bin/petrel",
        "./lib/systemd/system/petrel.service",
        "./etc/petrel/petrel.toml",
        "./usr/share/man/man1/petrel.1.gz",
    ] {
        assert!(list.contains(f), "dpkg -c lacks {f}:\n{list}");
    }
    // The release profile keeps debug information (for perf); the package strips it from the
    // binary and ships it in petrel-dbgsym, found by build id.
    let dbgsym = deb.with_file_name(
        deb.file_name()
            .and_then(|n| n.to_str())
            .expect("deb name")
            .replace("petrel_", "petrel-dbgsym_")
            .replace(".deb", ".ddeb"),
    );
    let (ok, list) = run(Command::new("dpkg").arg("-c").arg(&dbgsym));
    assert!(
        ok && list.contains("./usr/lib/debug/.build-id/") && list.contains(".debug"),
        "{}: {list}",
        dbgsym.display()
    );
    let user_existed = Command::new("getent")
        .args(["passwd", "petrel"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let guard = Installed { user_existed };
    let (ok, text) = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(ok, "dpkg -i:\n{text}");
    let (ok, sections) = run(Command::new("readelf").args(["-S", "-W", "/usr/bin/petrel"]));
    assert!(
        ok && sections.contains(".text")
            && sections.contains(".gnu_debuglink")
            && !sections.contains(".debug_info")
            && !sections.contains(".debug_line"),
        "the installed binary is stripped, linked to its debug file:\n{sections}"
    );
    let (ok, version) = run(Command::new("/usr/bin/petrel").arg("--version"));
    assert!(ok && version.starts_with("petrel "), "{version}");
    let (ok, user) = run(Command::new("getent").args(["passwd", "petrel"]));
    assert!(
        ok && user.contains("nologin"),
        "the petrel system user: {user}"
    );
    // The unit verifies with its binary and man page installed.
    let (ok, text) = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(root.join("packaging/petrel.service")));
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    // The installed binary serves with the installed config (ports moved).
    let port = free_port_pair();
    let port_s = port.to_string();
    let mut installed = Command::new("/usr/bin/petrel")
        .args([
            "--config",
            "/etc/petrel/petrel.toml",
            "-p",
            &port_s,
            "-U",
            "0",
        ])
        .args(["--admin-port", "0", "-u", "petrel"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn /usr/bin/petrel");
    let addr = loopback(port);
    wait_until(START_TIMEOUT, "/usr/bin/petrel to accept", || {
        TcpStream::connect(addr).is_ok()
    });
    set_and_get(&mut connect_tcp(addr), "installed");
    stop(&mut installed, "exit");
    drop(guard);
    assert!(!Path::new("/usr/bin/petrel").exists(), "purged");
    assert!(!Path::new("/etc/petrel/petrel.toml").exists(), "purged");
    let _ = std::fs::remove_dir_all(&out_dir);
}
