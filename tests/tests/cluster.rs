//! A pool of servers behind twemproxy (Debian's `nutcracker`), started by `scripts/cluster`.
//!
//! One test walks a 3-instance pool through its life, checking every step against each
//! instance's own `stats` and contents (read directly, not through the proxy):
//! 1. 10,000 sets through the proxy: every instance holds a share, the shares add up to
//!    10,000, each instance's `cmd_set` equals its `curr_items`;
//! 2. 10,000 gets through the proxy return every value; each instance's `cmd_get` and
//!    `get_hits` equal its `curr_items`;
//! 3. multi-gets spanning instances (100 keys, and 1,000 keys in one command) return every value;
//! 4. one instance is SIGKILLed (by PID): once twemproxy has ejected it, exactly the keys it held
//!    are lost, every other key still reads back, and new keys are stored and served;
//! 5. the instance is started again (empty): after twemproxy's retry timeout it rejoins, the
//!    keys that were its share land on it again, and every original key reads back.
//!
//! A second test sends the exact command forms mcrouter's ASCII client writes
//! (`mcrouter/lib/network/AsciiSerialized.cpp`) to the server under test and to memcached and
//! compares the replies byte for byte (CAS values and the version string aside).
//!
//! The server under test is chosen as in the other end-to-end tests (`PETREL_TEST_TARGET`,
//! default petrel at `target/release/petrel`). When `nutcracker` is not installed the pool test
//! is skipped with a loud message, unless `CI` is set, where that is a failure.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use petrel_tests::server::{workspace_root, Kind, Target};

/// Instances in the pool.
const INSTANCES: usize = 3;
/// Keys written in the first phase.
const KEYS: usize = 10_000;
/// Commands per pipelined write.
const BATCH: usize = 100;
/// Keys per multi-get in the spanning phase.
const MULTI_GET_KEYS: usize = 100;
/// Keys in the one very large multi-get (spans many of twemproxy's 16 KiB buffers).
const HUGE_MULTI_GET_KEYS: usize = 1_000;
/// Fresh keys written while an instance is down, and again after it rejoined.
const FRESH_KEYS: usize = 1_000;
/// Which instance (1-based, as `scripts/cluster` numbers them) is killed and revived.
const VICTIM: usize = 2;
/// twemproxy `server_retry_timeout`: how long an ejected server stays out of the ring.
const RETRY_MS: u64 = 1_500;
/// twemproxy `timeout`: a server silent this long fails the request.
const PROXY_TIMEOUT_MS: u64 = 5_000;
/// Bound on every socket read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one `scripts/cluster` invocation (its own waits are bounded at 15 s per process).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on waiting for twemproxy to eject the killed instance, or to take it back.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts for one request through the proxy while the pool changes (an ejected server is
/// retried every `RETRY_MS`, and the request that finds it still dead fails once).
const ATTEMPTS: usize = 20;
/// Pause between attempts.
const ATTEMPT_PAUSE: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// The pool: scripts/cluster in a private run directory, stopped on drop.

/// A pool started by `scripts/cluster`; everything it started is stopped (by PID) on drop.
struct Cluster {
    script: PathBuf,
    dir: PathBuf,
    server_bin: PathBuf,
    proxy_port: u16,
    stats_port: u16,
    ports: Vec<u16>,
}

static CLUSTER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Runs `scripts/cluster ARGS` for the run directory `dir`; `Err` carries status and output.
fn run_script(dir: &Path, server_bin: &Path, args: &[&str]) -> Result<String, String> {
    let script = workspace_root().join("scripts/cluster");
    let out_path = dir.with_extension(format!(
        "out.{}",
        CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let out = std::fs::File::create(&out_path).map_err(|e| format!("{e}"))?;
    let err = out.try_clone().map_err(|e| format!("{e}"))?;
    let mut child = Command::new(&script)
        .args(args)
        .env("PETREL_CLUSTER_DIR", dir)
        .env("PETREL_BIN", server_bin)
        .env("PETREL_CLUSTER_FAILURE_LIMIT", "1")
        .env("PETREL_CLUSTER_RETRY_MS", RETRY_MS.to_string())
        .env("PETREL_CLUSTER_TIMEOUT_MS", PROXY_TIMEOUT_MS.to_string())
        .env("PETREL_CLUSTER_MEMORY_MIB", "64")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", script.display()))?;
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{e}"))? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break child.wait().map_err(|e| format!("{e}"))?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    if status.success() {
        Ok(output)
    } else {
        Err(format!(
            "scripts/cluster {} exited with {status}:\n{output}",
            args.join(" ")
        ))
    }
}

impl Cluster {
    /// Starts `n` instances of `server_bin` and nutcracker; retries with new ports a few times
    /// (another process may take a port between the script choosing and binding it).
    fn start(server_bin: &Path, n: usize) -> Cluster {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = std::env::temp_dir().join(format!(
                "petrel-cluster-{}-{}",
                std::process::id(),
                CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            match run_script(&dir, server_bin, &["start", &n.to_string()]) {
                Ok(_) => {
                    let env = std::fs::read_to_string(dir.join("cluster.env"))
                        .expect("scripts/cluster start writes cluster.env");
                    let get = |name: &str| -> String {
                        env.lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}=")))
                            .unwrap_or_else(|| panic!("cluster.env has no {name}:\n{env}"))
                            .trim_matches('"')
                            .to_string()
                    };
                    let ports: Vec<u16> = get("SERVER_PORTS")
                        .split_whitespace()
                        .map(|p| p.parse().expect("port number"))
                        .collect();
                    assert_eq!(ports.len(), n, "cluster.env lists {n} server ports");
                    return Cluster {
                        script: workspace_root().join("scripts/cluster"),
                        dir,
                        server_bin: server_bin.to_path_buf(),
                        proxy_port: get("PROXY_PORT").parse().expect("proxy port"),
                        stats_port: get("STATS_PORT").parse().expect("stats port"),
                        ports,
                    };
                }
                Err(e) => {
                    last = e;
                    let _ = run_script(&dir, server_bin, &["stop"]);
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        panic!("the pool did not start:\n{last}");
    }

    fn proxy(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.proxy_port))
    }

    /// Address of instance `i` (1-based).
    fn instance(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i - 1]))
    }

    /// PID recorded for `name` (`petrel-I` or `nutcracker`).
    fn pid(&self, name: &str) -> u32 {
        let text = std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .unwrap_or_else(|e| panic!("{name}.pid: {e}"));
        text.trim().parse().expect("pid file holds a number")
    }

    fn script(&self, args: &[&str]) -> String {
        run_script(&self.dir, &self.server_bin, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The logs of every process of the pool, for failure messages.
    fn logs(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.ports.len() {
            let name = format!("petrel-{i}");
            let log =
                std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            s += &format!("--- {name}.log\n{log}");
        }
        let log = std::fs::read_to_string(self.dir.join("nutcracker.log")).unwrap_or_default();
        s += &format!("--- nutcracker.log\n{log}");
        s
    }

    /// twemproxy's stats document (JSON) from its loopback stats listener.
    fn proxy_stats(&self) -> String {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.stats_port));
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect stats port");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read twemproxy stats");
        text
    }

    /// The pool-wide `server_ejects` counter of twemproxy.
    fn server_ejects(&self) -> u64 {
        let stats = self.proxy_stats();
        json_number(&stats, "server_ejects")
            .unwrap_or_else(|| panic!("no server_ejects in twemproxy stats: {stats}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = Command::new(&self.script)
            .arg("stop")
            .env("PETREL_CLUSTER_DIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())
            .and_then(|s| {
                if s.success() {
                    Ok(())
                } else {
                    Err(s.to_string())
                }
            })
        {
            // The script could not stop them: SIGKILL what it recorded having started.
            eprintln!("scripts/cluster stop failed ({e}); killing the recorded PIDs");
            for i in 0..=self.ports.len() {
                let name = if i == 0 {
                    "nutcracker".to_string()
                } else {
                    format!("petrel-{i}")
                };
                if let Ok(text) = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))) {
                    if let Ok(pid) = text.trim().parse::<i32>() {
                        if pid > 1 {
                            // SAFETY: kill(2) on a PID this pool recorded for a process it
                            // started; no memory is involved.
                            unsafe {
                                libc::kill(pid, libc::SIGKILL);
                            }
                        }
                    }
                }
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("pool logs kept in {}", self.dir.display());
        }
    }
}

/// The first number after `"name":` in a JSON text (twemproxy's stats are flat enough).
fn json_number(json: &str, name: &str) -> Option<u64> {
    let at = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    let digits: String = json[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// True when process `pid` is gone or a zombie (exited, not yet reaped).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
            .unwrap_or(false),
    }
}

/// `nutcracker` from `NUTCRACKER`, `PATH` or `/usr/sbin`.
fn nutcracker_installed() -> bool {
    if let Some(p) = std::env::var_os("NUTCRACKER") {
        return Path::new(&p).is_file();
    }
    let in_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join("nutcracker").is_file()))
        .unwrap_or(false);
    in_path || Path::new("/usr/sbin/nutcracker").is_file()
}

// ---------------------------------------------------------------------------------------------
// A small memcache text-protocol client that survives the proxy's errors.

/// One stored item as the test wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Item {
    key: String,
    flags: u32,
    value: Vec<u8>,
}

/// A request in a pipeline and the shape of its reply.
enum Request {
    /// A storage command whose reply is one line.
    Store(Item),
    /// `get` of one or more keys; the reply is VALUE blocks and END.
    Get(Vec<String>),
}

/// The reply to one [`Request`].
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Line(String),
    Values(Vec<Item>),
}

/// Why a request did not get a proper reply: the proxy answered `SERVER_ERROR ...` (a
/// server is unreachable), or the connection failed or closed. Both are worth a retry.
#[derive(Debug)]
enum Failure {
    Server(String),
    Io(io::Error),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Server(line) => format!("proxy replied {line:?}"),
            Failure::Io(e) => format!("connection: {e}"),
        }
    }
}

struct Conn {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn { addr, reader: None }
    }

    fn stream(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        if self.reader.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            s.set_nodelay(true)?;
            self.reader = Some(BufReader::new(s));
        }
        Ok(self.reader.as_mut().expect("just connected"))
    }

    /// Sends `requests` in one write and reads their replies in order. After the first
    /// failure the connection is dropped (the proxy may close it) and the remaining
    /// requests are reported as failed too.
    fn pipeline(&mut self, requests: &[Request]) -> Vec<Result<Reply, Failure>> {
        let mut wire = Vec::new();
        for r in requests {
            match r {
                Request::Store(item) => {
                    wire.extend_from_slice(
                        format!("set {} {} 0 {}\r\n", item.key, item.flags, item.value.len())
                            .as_bytes(),
                    );
                    wire.extend_from_slice(&item.value);
                    wire.extend_from_slice(b"\r\n");
                }
                Request::Get(keys) => {
                    wire.extend_from_slice(format!("get {}\r\n", keys.join(" ")).as_bytes());
                }
            }
        }
        let mut out = Vec::with_capacity(requests.len());
        let sent = self
            .stream()
            .and_then(|s| s.get_mut().write_all(&wire).map(|_| s));
        let stream = match sent {
            Ok(s) => s,
            Err(e) => {
                self.reader = None;
                let kind = e.kind();
                out.push(Err(Failure::Io(e)));
                while out.len() < requests.len() {
                    out.push(Err(Failure::Io(io::Error::from(kind))));
                }
                return out;
            }
        };
        let mut broken = false;
        for r in requests {
            if broken {
                out.push(Err(Failure::Io(io::ErrorKind::NotConnected.into())));
                continue;
            }
            let reply = match r {
                Request::Store(_) => read_line(stream).map(Reply::Line).and_then(|l| match l {
                    Reply::Line(text) if text.starts_with("SERVER_ERROR") => {
                        Err(Failure::Server(text))
                    }
                    other => Ok(other),
                }),
                Request::Get(_) => read_values(stream).map(Reply::Values),
            };
            if reply.is_err() {
                broken = true;
            }
            out.push(reply);
        }
        if broken {
            self.reader = None;
        }
        out
    }
}

fn read_line(r: &mut BufReader<TcpStream>) -> Result<String, Failure> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).map_err(Failure::Io)?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return Err(Failure::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|e| Failure::Io(io::Error::other(e)))
}

/// Reads `VALUE key flags bytes` blocks up to `END`; `SERVER_ERROR` is a [`Failure`], any
/// other line a protocol violation (panic).
fn read_values(r: &mut BufReader<TcpStream>) -> Result<Vec<Item>, Failure> {
    let mut items = Vec::new();
    loop {
        let line = read_line(r)?;
        if line == "END" {
            return Ok(items);
        }
        if line.starts_with("SERVER_ERROR") {
            return Err(Failure::Server(line));
        }
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(
            fields.len() == 4 && fields[0] == "VALUE",
            "unexpected line in a get reply: {line:?}"
        );
        let flags: u32 = fields[2].parse().expect("flags");
        let len: usize = fields[3].parse().expect("length");
        let mut value = vec![0u8; len + 2];
        r.read_exact(&mut value).map_err(Failure::Io)?;
        assert_eq!(
            &value[len..],
            b"\r\n",
            "data block of {} ends in CRLF",
            fields[1]
        );
        value.truncate(len);
        items.push(Item {
            key: fields[1].to_string(),
            flags,
            value,
        });
    }
}

/// Runs `requests` through `conn`, retrying the failed ones (after a pause, on a new
/// connection) up to [`ATTEMPTS`] times. Panics if some request never succeeds.
fn with_retries(conn: &mut Conn, requests: Vec<Request>) -> (Vec<Reply>, usize) {
    let mut done: Vec<Option<Reply>> = (0..requests.len()).map(|_| None).collect();
    let mut pending: Vec<usize> = (0..requests.len()).collect();
    let mut requests: Vec<Option<Request>> = requests.into_iter().map(Some).collect();
    let mut retried = 0;
    let mut last_failure = String::new();
    for attempt in 0..ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            retried += pending.len();
            std::thread::sleep(ATTEMPT_PAUSE);
        }
        let batch: Vec<Request> = pending
            .iter()
            .map(|&i| requests[i].take().expect("pending request"))
            .collect();
        let replies = conn.pipeline(&batch);
        let mut still = Vec::new();
        for ((i, req), reply) in pending.iter().zip(batch).zip(replies) {
            match reply {
                Ok(r) => done[*i] = Some(r),
                Err(f) => {
                    last_failure = f.describe();
                    requests[*i] = Some(req);
                    still.push(*i);
                }
            }
        }
        pending = still;
    }
    assert!(
        pending.is_empty(),
        "{} requests still failing after {ATTEMPTS} attempts; last failure: {last_failure}",
        pending.len()
    );
    (
        done.into_iter().map(|r| r.expect("done")).collect(),
        retried,
    )
}

/// Sets every item through `conn` in pipelined batches (retrying while the pool changes);
/// every reply must be `STORED`. Returns how many requests had to be retried.
fn set_all(conn: &mut Conn, items: &[Item]) -> usize {
    let mut retried = 0;
    for chunk in items.chunks(BATCH) {
        let (replies, r) = with_retries(conn, chunk.iter().cloned().map(Request::Store).collect());
        retried += r;
        for (item, reply) in chunk.iter().zip(replies) {
            assert_eq!(
                reply,
                Reply::Line("STORED".into()),
                "set {} through the proxy",
                item.key
            );
        }
    }
    retried
}

/// How a multi-get reply must order its values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    /// In the order the keys were asked for: memcached's order, which twemproxy keeps when
    /// it reassembles a split multi-get while its ring is unchanged.
    AsAsked,
    /// Any order. After an ejection twemproxy 0.5.0 was seen to return the values of a split
    /// multi-get grouped by server instead (every value still there exactly once).
    Any,
}

/// Multi-gets `keys` through `conn` in commands of `per_get` keys; returns what was found.
/// Each reply must hold only keys that were asked for, each once, ordered as `order` says.
fn get_all(
    conn: &mut Conn,
    keys: &[String],
    per_get: usize,
    order: Order,
) -> HashMap<String, Item> {
    let mut found = HashMap::new();
    let gets: Vec<&[String]> = keys.chunks(per_get).collect();
    for window in gets.chunks(BATCH.div_ceil(per_get).max(1)) {
        let requests = window.iter().map(|k| Request::Get(k.to_vec())).collect();
        let (replies, _) = with_retries(conn, requests);
        for (asked, reply) in window.iter().zip(replies) {
            let Reply::Values(items) = reply else {
                panic!("get reply is not VALUE/END: {reply:?}")
            };
            let mut rest = asked.iter();
            for item in items {
                let in_order = rest.any(|k| *k == item.key);
                assert!(
                    in_order || (order == Order::Any && asked.contains(&item.key)),
                    "reply holds {} out of order or not asked for",
                    item.key
                );
                assert!(
                    found.insert(item.key.clone(), item).is_none(),
                    "a key came back twice"
                );
            }
        }
    }
    found
}

/// `stats` of one instance, read directly.
fn stats(addr: SocketAddr) -> HashMap<String, u64> {
    let mut conn = Conn::new(addr);
    let stream = conn.stream().expect("connect to an instance");
    stream
        .get_mut()
        .write_all(b"stats\r\n")
        .expect("send stats");
    let mut out = HashMap::new();
    loop {
        let line =
            read_line(stream).unwrap_or_else(|f| panic!("stats from {addr}: {}", f.describe()));
        if line == "END" {
            return out;
        }
        let mut f = line.splitn(3, ' ');
        assert_eq!(f.next(), Some("STAT"), "stats line {line:?}");
        let name = f.next().expect("stat name").to_string();
        if let Ok(v) = f.next().unwrap_or("").parse::<u64>() {
            out.insert(name, v);
        }
    }
}

fn stat(s: &HashMap<String, u64>, name: &str) -> u64 {
    *s.get(name)
        .unwrap_or_else(|| panic!("stats have no numeric {name}"))
}

/// The test data: key `i` has flags and a value derived from `i` and `tag`, with lengths
/// from 1 byte to a few KiB, and a 100 KiB value every 997th key.
fn items(tag: &str, n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let len = if i % 997 == 0 {
                100 * 1024
            } else {
                1 + (i * 7919) % 3000
            };
            let value = (0..len)
                .map(|j| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i + j * 31) % 36])
                .collect();
            Item {
                key: format!("{tag}:{i}"),
                flags: (i as u32).wrapping_mul(2_654_435_761) >> 8,
                value,
            }
        })
        .collect()
}

fn keys_of(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| i.key.clone()).collect()
}

/// Which instance (1-based) holds each key, read directly from every instance.
fn placement(cluster: &Cluster, keys: &[String], live: &[usize]) -> HashMap<String, usize> {
    let mut owner = HashMap::new();
    for &i in live {
        let mut conn = Conn::new(cluster.instance(i));
        for (key, _) in get_all(&mut conn, keys, MULTI_GET_KEYS, Order::AsAsked) {
            if let Some(other) = owner.insert(key.clone(), i) {
                panic!("{key} is on instance {other} and on instance {i}");
            }
        }
    }
    owner
}

fn assert_found(found: &HashMap<String, Item>, expected: &[Item], what: &str) {
    for item in expected {
        let got = found
            .get(&item.key)
            .unwrap_or_else(|| panic!("{what}: {} is missing", item.key));
        assert!(
            got == item,
            "{what}: {} came back with flags {} and {} bytes, expected flags {} and {} bytes",
            item.key,
            got.flags,
            got.value.len(),
            item.flags,
            item.value.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn pool_behind_twemproxy_shards_survives_a_crash_and_rejoins() {
    if !nutcracker_installed() {
        petrel_tests::skip::skip(
            "nutcracker (twemproxy) is not installed: scripts/setup installs the Debian package",
        );
        return;
    }
    let Some(target) = Target::from_env() else {
        return;
    };
    let started = Instant::now();
    let cluster = Cluster::start(&target.path, INSTANCES);
    let all: Vec<usize> = (1..=INSTANCES).collect();
    let mut proxy = Conn::new(cluster.proxy());
    let data = items("pool", KEYS);
    let keys = keys_of(&data);

    // 1. Sets through the proxy land on every instance. No server is down: no retries.
    assert_eq!(
        set_all(&mut proxy, &data),
        0,
        "a set failed in a healthy pool"
    );
    let before: Vec<HashMap<String, u64>> =
        all.iter().map(|&i| stats(cluster.instance(i))).collect();
    let mut total = 0;
    for (i, s) in all.iter().zip(&before) {
        let items = stat(s, "curr_items");
        eprintln!("instance {i}: {items} of {KEYS} keys");
        assert!(
            items as usize >= KEYS / (INSTANCES * 4),
            "instance {i} got only {items} of {KEYS} keys: twemproxy does not spread them"
        );
        assert_eq!(
            stat(s, "cmd_set"),
            items,
            "instance {i}: one set per stored key"
        );
        total += items;
    }
    assert_eq!(
        total as usize, KEYS,
        "the instances hold every key exactly once in total"
    );

    // 2. Single-key gets through the proxy: every value, each get answered by its owner.
    let found = get_all(&mut proxy, &keys, 1, Order::AsAsked);
    assert_eq!(found.len(), KEYS);
    assert_found(&found, &data, "get through the proxy");
    for (i, s0) in all.iter().zip(&before) {
        let s = stats(cluster.instance(*i));
        let items = stat(s0, "curr_items");
        assert_eq!(
            stat(&s, "cmd_get") - stat(s0, "cmd_get"),
            items,
            "instance {i}: cmd_get"
        );
        assert_eq!(
            stat(&s, "get_hits") - stat(s0, "get_hits"),
            items,
            "instance {i}: get_hits"
        );
    }

    // Where each key lives, read from the instances themselves.
    let owner = placement(&cluster, &keys, &all);
    assert_eq!(owner.len(), KEYS, "every key is on some instance");
    for (i, s) in all.iter().zip(&before) {
        let held = owner.values().filter(|&&o| o == *i).count() as u64;
        assert_eq!(
            held,
            stat(s, "curr_items"),
            "instance {i}: keys found vs curr_items"
        );
    }

    // 3. Multi-gets spanning instances, in an order unlike the insertion order.
    let mut shuffled = keys.clone();
    let n = shuffled.len();
    for i in 0..n {
        shuffled.swap(i, (i * 7_919 + 13) % n);
    }
    let spanning = shuffled
        .chunks(MULTI_GET_KEYS)
        .filter(|c| {
            let mut seen: Vec<usize> = c.iter().map(|k| owner[k]).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len() == INSTANCES
        })
        .count();
    assert!(
        spanning * 2 >= KEYS / MULTI_GET_KEYS,
        "only {spanning} multi-gets span all instances"
    );
    let found = get_all(&mut proxy, &shuffled, MULTI_GET_KEYS, Order::AsAsked);
    assert_eq!(found.len(), KEYS, "multi-gets of {MULTI_GET_KEYS} keys");
    assert_found(&found, &data, "multi-get through the proxy");
    let found = get_all(
        &mut proxy,
        &shuffled[..HUGE_MULTI_GET_KEYS],
        HUGE_MULTI_GET_KEYS,
        Order::AsAsked,
    );
    assert_eq!(
        found.len(),
        HUGE_MULTI_GET_KEYS,
        "one multi-get of 1,000 keys"
    );
    let by_key: HashMap<&str, &Item> = data.iter().map(|d| (d.key.as_str(), d)).collect();
    for key in &shuffled[..HUGE_MULTI_GET_KEYS] {
        assert_eq!(
            &found[key],
            by_key[key.as_str()],
            "1,000-key multi-get: {key}"
        );
    }

    // 4. Kill one instance by PID: only its share is lost and the pool keeps serving.
    let lost: Vec<&Item> = data.iter().filter(|d| owner[&d.key] == VICTIM).collect();
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != VICTIM).collect();
    let victim_pid = cluster.pid(&format!("petrel-{VICTIM}"));
    let ejects_before = cluster.server_ejects();
    cluster.script(&["kill", &VICTIM.to_string()]);
    assert!(
        process_gone(victim_pid),
        "instance {VICTIM} (pid {victim_pid}) is gone"
    );
    let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
    let probe = lost[0].key.clone();
    while cluster.server_ejects() <= ejects_before {
        assert!(
            Instant::now() < deadline,
            "twemproxy did not eject the dead instance within {MEMBERSHIP_TIMEOUT:?}\n{}",
            cluster.logs()
        );
        // Traffic for the dead server makes twemproxy notice; the reply does not matter.
        let _ = proxy.pipeline(&[Request::Get(vec![probe.clone()])]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let found = get_all(&mut proxy, &keys, MULTI_GET_KEYS, Order::Any);
    let kept: Vec<Item> = data
        .iter()
        .filter(|d| owner[&d.key] != VICTIM)
        .cloned()
        .collect();
    assert_found(&found, &kept, "after the kill");
    for item in &lost {
        assert!(
            !found.contains_key(&item.key),
            "{} was on the killed instance and still reads back",
            item.key
        );
    }
    assert_eq!(
        found.len(),
        KEYS - lost.len(),
        "exactly the killed instance's share is lost"
    );
    eprintln!(
        "killed instance {VICTIM}: {} of {KEYS} keys lost, {} still served",
        lost.len(),
        found.len()
    );
    let during = items("down", FRESH_KEYS);
    let survivor_items_before: u64 = survivors
        .iter()
        .map(|&i| stat(&stats(cluster.instance(i)), "curr_items"))
        .sum();
    let retried = set_all(&mut proxy, &during);
    let found = get_all(&mut proxy, &keys_of(&during), MULTI_GET_KEYS, Order::Any);
    assert_eq!(
        found.len(),
        FRESH_KEYS,
        "keys set while an instance is down read back"
    );
    assert_found(&found, &during, "set while an instance is down");
    let survivor_items_after: u64 = survivors
        .iter()
        .map(|&i| stat(&stats(cluster.instance(i)), "curr_items"))
        .sum();
    assert_eq!(
        survivor_items_after - survivor_items_before,
        FRESH_KEYS as u64,
        "the survivors took every new key ({retried} requests retried)"
    );

    // 5. Start the instance again (empty): after the retry timeout twemproxy takes it back,
    // and the keys that were its share land on it again.
    cluster.script(&["revive", &VICTIM.to_string()]);
    let new_pid = cluster.pid(&format!("petrel-{VICTIM}"));
    assert_ne!(new_pid, victim_pid, "a new process");
    let victim = cluster.instance(VICTIM);
    let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
    while stat(&stats(victim), "cmd_get") == 0 {
        assert!(
            Instant::now() < deadline,
            "the revived instance got no request within {MEMBERSHIP_TIMEOUT:?}\n{}",
            cluster.logs()
        );
        // A get stores nothing, so probing does not disturb the survivors' contents.
        let _ = with_retries(&mut proxy, vec![Request::Get(vec![probe.clone()])]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let survivor_items: Vec<u64> = survivors
        .iter()
        .map(|&i| stat(&stats(cluster.instance(i)), "curr_items"))
        .collect();
    let lost_items: Vec<Item> = lost.iter().map(|&i| i.clone()).collect();
    set_all(&mut proxy, &lost_items);
    let s = stats(victim);
    assert_eq!(
        stat(&s, "curr_items"),
        lost.len() as u64,
        "the revived instance holds exactly its old share again"
    );
    assert_eq!(
        stat(&s, "cmd_set"),
        lost.len() as u64,
        "revived instance: cmd_set"
    );
    for (i, before) in survivors.iter().zip(&survivor_items) {
        assert_eq!(
            stat(&stats(cluster.instance(*i)), "curr_items"),
            *before,
            "instance {i} took none of the revived instance's keys"
        );
    }
    let found = get_all(&mut proxy, &keys, MULTI_GET_KEYS, Order::Any);
    assert_eq!(
        found.len(),
        KEYS,
        "every original key reads back after the rejoin"
    );
    assert_found(&found, &data, "after the rejoin");
    let after = items("rejoined", FRESH_KEYS);
    set_all(&mut proxy, &after);
    let placed = placement(&cluster, &keys_of(&after), &all);
    let on_victim = placed.values().filter(|&&o| o == VICTIM).count();
    assert!(on_victim > 0, "new keys land on the revived instance again");
    assert_eq!(placed.len(), FRESH_KEYS);
    eprintln!(
        "rejoined: {on_victim} of {FRESH_KEYS} new keys on instance {VICTIM}; whole test {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// mcrouter's command forms against the server under test and memcached.

/// The requests mcrouter's ASCII client writes to a memcached backend, in its exact forms
/// (`mcrouter/lib/network/AsciiSerialized.cpp`): one key per get, `gat EXPTIME KEY`,
/// `delete KEY` (with ` EXPTIME` only when non-zero), `flush_all` with an optional delay.
/// `metaget`, `lease-get` and `lease-set` are Facebook-memcached extensions that memcached
/// 1.6 answers with `ERROR`; they are included to show the server does the same.
/// `CAS` in a request is replaced by the CAS value from the last `gets`/`gats` reply.
const MCROUTER_TRANSCRIPT: &[&str] = &[
    "version\r\n",
    "get k1\r\n",
    "set k1 5 0 3\r\nabc\r\n",
    "get k1\r\n",
    "gets k1\r\n",
    "cas k1 6 0 3 CAS\r\nxyz\r\n",
    "cas k1 6 0 3 CAS\r\nzzz\r\n",
    "get k1\r\n",
    "add k1 0 0 1\r\na\r\n",
    "add k2 0 0 2\r\n10\r\n",
    "replace k2 0 0 2\r\n20\r\n",
    "replace k3 0 0 1\r\nx\r\n",
    "append k1 0 0 2\r\n++\r\n",
    "prepend k1 0 0 2\r\n--\r\n",
    "append k3 0 0 1\r\nx\r\n",
    "get k1\r\n",
    "incr k2 5\r\n",
    "decr k2 30\r\n",
    "incr k1 1\r\n",
    "incr k3 1\r\n",
    "touch k2 100\r\n",
    "touch k3 100\r\n",
    "gat 100 k2\r\n",
    "gats 100 k2\r\n",
    "gat 100 k3\r\n",
    "delete k2\r\n",
    "delete k2\r\n",
    "delete k1 10\r\n",
    "metaget k1\r\n",
    "lease-get k1\r\n",
    "lease-set k1 1 0 0 1\r\nx\r\n",
    "flush_all 0\r\n",
    "get k1\r\n",
    "set k4 0 0 1\r\nx\r\n",
    "flush_all\r\n",
    "get k4\r\n",
    "flush_all 5\r\n",
];

/// Reads one reply: nothing for `noreply`, through `END` for retrieval commands, else one
/// line; for `lease-set`,
/// which memcached does not know, two `ERROR` lines (its data block is a second unknown command).
fn read_reply(r: &mut BufReader<TcpStream>, request: &str) -> Result<String, Failure> {
    let retrieval = ["get ", "gets ", "gat ", "gats "]
        .iter()
        .any(|p| request.starts_with(p));
    let mut out = String::new();
    if request
        .lines()
        .next()
        .is_some_and(|l| l.ends_with(" noreply"))
    {
        return Ok(out);
    }
    if request.starts_with("lease-set ") {
        out += &read_line(r)?;
        out += "\r\n";
    }
    loop {
        let line = read_line(r)?;
        out += &line;
        out += "\r\n";
        if !retrieval || line == "END" || line.starts_with("SERVER_ERROR") || line == "ERROR" {
            return Ok(out);
        }
        if line.starts_with("VALUE ") {
            out += &read_line(r)?;
            out += "\r\n";
        }
    }
}

/// What a transcript records when the peer closed the connection instead of replying
/// (twemproxy does this for commands it does not forward); the next request reconnects.
const CLOSED: &str = "<connection closed>";

/// Runs `transcript` on `addr`; returns the replies with CAS values and version text masked.
fn run_transcript(addr: SocketAddr, transcript: &[&str]) -> Vec<String> {
    let mut conn = Conn::new(addr);
    let mut cas = String::from("0");
    let mut replies = Vec::new();
    for request in transcript {
        let wire = request.replace("CAS", &cas);
        let stream = conn.stream().expect("connect");
        stream.get_mut().write_all(wire.as_bytes()).expect("send");
        let mut reply = match read_reply(stream, request) {
            Ok(r) => r,
            Err(Failure::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                conn.reader = None;
                CLOSED.to_string()
            }
            Err(f) => panic!("reply to {request:?} from {addr}: {}", f.describe()),
        };
        if request.starts_with("gets ") || request.starts_with("gats ") {
            // CAS values are the server's own (and per instance in a pool): keep the first
            // for the next `cas` request, mask them all.
            let mut masked = String::new();
            for line in reply.split_inclusive("\r\n") {
                let fields: Vec<&str> = line.trim_end().split(' ').collect();
                if fields.len() == 5 && fields[0] == "VALUE" {
                    if masked.is_empty() {
                        cas = fields[4].to_string();
                    }
                    masked += &format!("{} <cas>\r\n", fields[..4].join(" "));
                } else {
                    masked += line;
                }
            }
            reply = masked;
        }
        if request.starts_with("version") && reply != CLOSED {
            assert!(reply.starts_with("VERSION "), "version reply {reply:?}");
            reply = "VERSION <text>\r\n".into();
        }
        replies.push(reply);
    }
    replies
}

#[test]
fn mcrouter_command_forms_match_memcached() {
    let Some(target) = Target::from_env() else {
        return;
    };
    if target.kind == Kind::Memcached {
        eprintln!("the server under test is memcached itself: nothing to compare");
        return;
    }
    let reference = Target::memcached().builder().no_udp().start();
    let server = target.builder().no_udp().start();
    let want = run_transcript(reference.tcp_addr(), MCROUTER_TRANSCRIPT);
    let got = run_transcript(server.tcp_addr(), MCROUTER_TRANSCRIPT);
    for ((request, w), g) in MCROUTER_TRANSCRIPT.iter().zip(&want).zip(&got) {
        assert_eq!(g, w, "reply to {request:?} differs from memcached's");
    }
}

/// Every command twemproxy 0.5.0 forwards for the memcache protocol (retrieval, storage,
/// `cas`, `incr`/`decr`, `delete`, `touch`), with keys on different instances, and some it
/// does not forward (`gat`, `version`, `flush_all`, `stats`, meta commands: it closes the
/// connection). The keys lie on both instances (placement depends only on the server names
/// `petrel-1`, `petrel-2` in the generated config), so multi-key gets are split by the proxy.
const PROXY_TRANSCRIPT: &[&str] = &[
    "set alpha 1 0 1\r\nA\r\n",
    "set bravo 2 0 2\r\nBB\r\n",
    "set charlie 3 0 3\r\nCCC\r\n",
    "set india 4 0 1\r\n7\r\n",
    "set papa 6 0 4\r\nPAPA\r\n",
    "add kilo 5 0 1\r\nE\r\n",
    "add alpha 0 0 1\r\nX\r\n",
    "replace lima 0 0 1\r\nF\r\n",
    "replace bravo 9 0 2\r\nbb\r\n",
    "append charlie 0 0 1\r\n+\r\n",
    "prepend charlie 0 0 1\r\n-\r\n",
    "get alpha bravo charlie india kilo lima mike papa\r\n",
    "gets alpha\r\n",
    "cas alpha 7 0 2 CAS\r\naa\r\n",
    "cas alpha 7 0 2 CAS\r\nzz\r\n",
    "gets alpha bravo charlie india kilo lima mike papa\r\n",
    "incr india 10\r\n",
    "decr india 100\r\n",
    "incr charlie 1\r\n",
    "incr mike 1\r\n",
    "touch bravo 100\r\n",
    "touch mike 100\r\n",
    "delete kilo\r\n",
    "delete kilo\r\n",
    "set india 0 0 1 noreply\r\n1\r\n",
    "get india kilo\r\n",
    "gat 100 alpha\r\n",
    "version\r\n",
    "flush_all\r\n",
    "stats\r\n",
    "mg alpha v\r\n",
    "get alpha bravo charlie india\r\n",
];

#[test]
fn commands_through_twemproxy_match_a_memcached_pool() {
    if !nutcracker_installed() {
        petrel_tests::skip::skip(
            "nutcracker (twemproxy) is not installed: scripts/setup installs the Debian package",
        );
        return;
    }
    let Some(target) = Target::from_env() else {
        return;
    };
    if target.kind == Kind::Memcached {
        eprintln!("the server under test is memcached itself: nothing to compare");
        return;
    }
    let reference = Cluster::start(&Target::memcached().path, 2);
    let pool = Cluster::start(&target.path, 2);
    let want = run_transcript(reference.proxy(), PROXY_TRANSCRIPT);
    let got = run_transcript(pool.proxy(), PROXY_TRANSCRIPT);
    for ((request, w), g) in PROXY_TRANSCRIPT.iter().zip(&want).zip(&got) {
        eprintln!("through twemproxy: {request:?} -> {g:?}");
        assert_eq!(
            g, w,
            "reply through twemproxy to {request:?} differs from memcached's"
        );
    }
    // The transcript must exercise both instances of each pool.
    for (name, cluster) in [("memcached", &reference), ("server under test", &pool)] {
        for i in 1..=2 {
            let items = stat(&stats(cluster.instance(i)), "curr_items");
            assert!(
                items > 0,
                "{name} instance {i} holds none of the transcript's keys"
            );
        }
    }
}
