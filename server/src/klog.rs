//! The command log ("klog", as in Pelikan): one line for a random sample of
//! the requests, 1 in N (`--klog-sample N`), written to `--klog-file` by a
//! background thread, with size-based rotation (`--klog-max-bytes`; one
//! old file is kept as `PATH.1`).
//!
//! ```text
//!  worker: Engine::process ─ sample()? (per-thread xorshift, 1 compare)
//!                               │ 1 in N
//!                               ▼
//!          record(): copy key + reply head into a fixed-size Entry,
//!                    try_send into a bounded queue ──full──▶ dropped (counted)
//!                               │
//!  "petrel-klog" thread: format, append to PATH; past the size limit
//!                        rename PATH -> PATH.1 and start a new PATH
//! ```
//!
//! A line: `<time> <client> <transport> <command> <key> <result> <size>`,
//! for example `2026-11-30T03:22:03Z 127.0.0.1:50412 tcp get user:42 HIT 120`.
//! `client` is the TCP peer (`ip:port`), `-` over UDP; `key` is the first
//! key as sent, bytes outside printable ASCII written `\xNN` (`-` for
//! commands without a key); `result` is the first word of the reply, with
//! `VALUE`/`VA` written `HIT` and a get's bare `END`/`EN` written `MISS`,
//! a number written `NUMBER`, and `NOREPLY` when there was no reply;
//! `size` is the value's bytes (stored for storage commands, sent for a
//! hit), 0 otherwise.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use petrel_core::engine::Transport;
use petrel_core::klog::{Client, CommandLog, CommandRecord, REPLY_HEAD_BYTES};
use petrel_core::proto::KEY_MAX_BYTES;

/// Entries the queue holds before new ones are dropped.
pub const KLOG_QUEUE_ENTRIES: usize = 4096;
/// Default rotation size of the command log.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

petrel_core::metrics! {
    /// The command log's figures.
    pub struct KlogStats {
        sampled: Counter("requests") "requests chosen by the 1-in-N sample",
        logged: Counter("lines") "command log lines written",
        dropped: Counter("requests") "sampled requests dropped because the writer's queue was full",
        write_errors: Counter("errors") "failed writes, opens or renames of the command log",
        rotations: Counter("rotations") "times the command log was rotated (PATH moved to PATH.1)",
        written_bytes: Counter("bytes") "bytes written to the command log",
    }
}

static STATS: KlogStats = KlogStats::new();

/// The command log's counters.
pub fn stats() -> &'static KlogStats {
    &STATS
}

/// One sampled request, copied out of the worker's buffers.
struct Entry {
    now: u32,
    udp: bool,
    client: Option<Client>,
    command: &'static str,
    key: [u8; KEY_MAX_BYTES],
    key_len: u8,
    value_bytes: Option<usize>,
    reply: [u8; REPLY_HEAD_BYTES],
    reply_len: u8,
}

/// The command log: installed in the engine with `Engine::set_command_log`.
pub struct Klog {
    /// Sample when a uniform random u64 is below this (`u64::MAX / N`).
    threshold: u64,
    queue: SyncSender<Entry>,
}

thread_local! {
    static RNG: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A per-thread xorshift64* step (seeded from the thread's address space
/// and the clock on first use).
fn next_random() -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        if x == 0 {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            x = (c as *const _ as u64) ^ t ^ 0x9E37_79B9_7F4A_7C15;
            if x == 0 {
                x = 1;
            }
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

impl Klog {
    /// Starts the writer thread for `path` (opened now, appended to) and
    /// returns the log sampling 1 in `sample` requests (`sample` >= 1).
    pub fn start(path: &Path, sample: u32, max_bytes: u64) -> io::Result<Klog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (tx, rx) = sync_channel(KLOG_QUEUE_ENTRIES);
        let mut w = Writer {
            path: path.to_path_buf(),
            file: Some(io::BufWriter::new(file)),
            size,
            max_bytes: max_bytes.max(1),
        };
        std::thread::Builder::new()
            .name("petrel-klog".into())
            .spawn(move || w.run(rx))?;
        Ok(Klog::with_queue(sample, tx))
    }

    fn with_queue(sample: u32, queue: SyncSender<Entry>) -> Klog {
        Klog {
            threshold: u64::MAX / u64::from(sample.max(1)),
            queue,
        }
    }
}

impl CommandLog for Klog {
    #[inline]
    fn sample(&self) -> bool {
        next_random() < self.threshold
    }

    fn record(&self, r: &CommandRecord<'_>) {
        STATS.sampled.incr();
        let mut e = Entry {
            now: r.now,
            udp: r.transport == Transport::Udp,
            client: r.client,
            command: r.command,
            key: [0; KEY_MAX_BYTES],
            key_len: 0,
            value_bytes: r.value_bytes,
            reply: [0; REPLY_HEAD_BYTES],
            reply_len: 0,
        };
        let k = r.key.len().min(KEY_MAX_BYTES);
        e.key[..k].copy_from_slice(&r.key[..k]);
        e.key_len = k as u8;
        let n = r.reply_head.len().min(REPLY_HEAD_BYTES);
        e.reply[..n].copy_from_slice(&r.reply_head[..n]);
        e.reply_len = n as u8;
        if self.queue.try_send(e).is_err() {
            STATS.dropped.incr();
        }
    }
}

/// The result word and value size of a reply head (see the module docs).
pub fn result_and_size(command: &str, value_bytes: Option<usize>, reply: &[u8]) -> (String, u64) {
    let line_end = reply
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(reply.len());
    let line = &reply[..line_end];
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let first = words.next().unwrap_or(b"");
    let stored = value_bytes.map_or(0, |v| v as u64);
    let number = |w: Option<&[u8]>| {
        w.and_then(|w| std::str::from_utf8(w).ok())
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let is_get = matches!(command, "get" | "gets" | "gat" | "gats" | "mg");
    match first {
        b"" => ("NOREPLY".into(), stored),
        b"VALUE" => {
            // VALUE <key> <flags> <bytes> [<cas>]
            let mut w = line.split(|&b| b == b' ').skip(3);
            ("HIT".into(), number(w.next()))
        }
        b"VA" if is_get => ("HIT".into(), number(words.next())),
        b"END" | b"EN" if is_get => ("MISS".into(), 0),
        w if w.iter().all(u8::is_ascii_digit) => ("NUMBER".into(), 0),
        w => (String::from_utf8_lossy(w).into_owned(), stored),
    }
}

/// `bytes` with everything outside printable ASCII (and space, backslash)
/// as `\xNN`; `-` when empty.
fn escape_key(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// `ip:port` (`[ip]:port` for IPv6), or `-` when the peer is not known.
fn client_text(c: Option<Client>) -> String {
    match c {
        None => "-".into(),
        Some(c) if c.v4 => {
            let ip = std::net::Ipv4Addr::new(c.ip[0], c.ip[1], c.ip[2], c.ip[3]);
            format!("{ip}:{}", c.port)
        }
        Some(c) => format!("[{}]:{}", std::net::Ipv6Addr::from(c.ip), c.port),
    }
}

/// Formats one log line (with its newline).
fn format_line(e: &Entry) -> String {
    let stamp = crate::logger::format_utc(u64::from(e.now), 0);
    // second resolution: drop the milliseconds the formatter adds
    let stamp = stamp.replace(".000Z", "Z");
    let (result, size) = result_and_size(
        e.command,
        e.value_bytes,
        &e.reply[..usize::from(e.reply_len)],
    );
    format!(
        "{stamp} {} {} {} {} {result} {size}\n",
        client_text(e.client),
        if e.udp { "udp" } else { "tcp" },
        e.command,
        escape_key(&e.key[..usize::from(e.key_len)]),
    )
}

/// Set by [`reopen`]; the writer reopens the file before its next line.
static REOPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks the command log's writer to reopen its file (SIGHUP, after a
/// rename by logrotate): the next line goes to a new file at the path.
pub fn reopen() {
    REOPEN.store(true, std::sync::atomic::Ordering::Relaxed);
}

struct Writer {
    path: PathBuf,
    file: Option<io::BufWriter<File>>,
    size: u64,
    max_bytes: u64,
}

impl Writer {
    fn run(&mut self, rx: Receiver<Entry>) {
        let mut next = rx.recv().ok();
        while let Some(e) = next {
            self.write(&format_line(&e));
            next = match rx.try_recv() {
                Ok(e) => Some(e),
                Err(_) => {
                    self.flush();
                    rx.recv().ok()
                }
            };
        }
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(f) = &mut self.file {
            if f.flush().is_err() {
                STATS.write_errors.incr();
            }
        }
    }

    fn write(&mut self, line: &str) {
        if REOPEN.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.flush();
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(f) => {
                    self.size = f.metadata().map_or(0, |m| m.len());
                    self.file = Some(io::BufWriter::new(f));
                }
                Err(_) => STATS.write_errors.incr(),
            }
        }
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate();
        }
        let Some(f) = &mut self.file else {
            STATS.write_errors.incr();
            return;
        };
        match f.write_all(line.as_bytes()) {
            Ok(()) => {
                self.size += len;
                STATS.logged.incr();
                STATS.written_bytes.add(len);
            }
            Err(_) => STATS.write_errors.incr(),
        }
    }

    /// PATH -> PATH.1 (replacing it), then a new, empty PATH.
    fn rotate(&mut self) {
        self.flush();
        self.file = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        if std::fs::rename(&self.path, &old).is_err() {
            STATS.write_errors.incr();
        }
        match OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
        {
            Ok(f) => {
                self.file = Some(io::BufWriter::new(f));
                STATS.rotations.incr();
            }
            Err(_) => STATS.write_errors.incr(),
        }
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_sizes_from_reply_heads() {
        assert_eq!(
            result_and_size("get", None, b"VALUE k 0 120\r\nxx"),
            ("HIT".into(), 120)
        );
        assert_eq!(result_and_size("get", None, b"END\r\n"), ("MISS".into(), 0));
        assert_eq!(
            result_and_size("mg", None, b"VA 7 f0\r\nabc"),
            ("HIT".into(), 7)
        );
        assert_eq!(result_and_size("mg", None, b"EN\r\n"), ("MISS".into(), 0));
        assert_eq!(
            result_and_size("set", Some(5), b"STORED\r\n"),
            ("STORED".into(), 5)
        );
        assert_eq!(result_and_size("set", Some(5), b""), ("NOREPLY".into(), 5));
        assert_eq!(
            result_and_size("incr", None, b"42\r\n"),
            ("NUMBER".into(), 0)
        );
        assert_eq!(
            result_and_size("delete", None, b"NOT_FOUND\r\n"),
            ("NOT_FOUND".into(), 0)
        );
        assert_eq!(escape_key(b"a b\\\x01"), "a\\x20b\\x5c\\x01");
        assert_eq!(escape_key(b""), "-");
        assert_eq!(client_text(None), "-");
        let mut ip = [0u8; 16];
        ip[15] = 1;
        assert_eq!(
            client_text(Some(Client {
                ip,
                v4: false,
                port: 7
            })),
            "[::1]:7"
        );
    }

    #[test]
    fn sampling_rate_is_within_five_sigma() {
        let (tx, _rx) = sync_channel(1);
        for n in [1u32, 2, 10, 100, 1000] {
            let k = Klog::with_queue(n, tx.clone());
            let trials = 200_000u64;
            let hits = (0..trials).filter(|_| k.sample()).count() as f64;
            let p = 1.0 / f64::from(n);
            let mean = trials as f64 * p;
            let sigma = (trials as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (hits - mean).abs() <= 5.0 * sigma + 1e-9,
                "1 in {n}: {hits} sampled of {trials}, expected {mean} +- {}",
                5.0 * sigma
            );
        }
    }

    #[test]
    fn lines_are_written_and_the_file_rotates() {
        let dir = std::env::temp_dir().join(format!("petrel-klog-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.log");
        let (tx, rx) = sync_channel(KLOG_QUEUE_ENTRIES);
        let k = Klog::with_queue(1, tx);
        let mut w = Writer {
            path: path.clone(),
            file: Some(io::BufWriter::new(File::create(&path).unwrap())),
            size: 0,
            max_bytes: 1000,
        };
        let t = std::thread::spawn(move || w.run(rx));
        for i in 0..100 {
            let key = format!("key{i}");
            k.record(&CommandRecord {
                now: 1_795_603_714,
                transport: Transport::Tcp,
                client: Some(Client {
                    ip: [10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    v4: true,
                    port: 4242,
                }),
                command: "set",
                key: key.as_bytes(),
                value_bytes: Some(i),
                reply_head: b"STORED\r\n",
            });
        }
        drop(k);
        t.join().unwrap();
        let cur = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(dir.join("k.log.1")).unwrap();
        assert!(
            cur.len() <= 1000 && old.len() <= 1000,
            "{} {}",
            cur.len(),
            old.len()
        );
        assert!(
            cur.ends_with("2026-11-25T10:48:34Z 10.1.2.3:4242 tcp set key99 STORED 99\n"),
            "{cur}"
        );
        assert!(old.lines().all(|l| l.split(' ').count() == 7), "{old}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
