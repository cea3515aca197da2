//! Warm restart (`--persist PATH`), end to end against the real binary.
//!
//! 100,000 items with mixed TTLs and flags are stored (`ms ... c` returns
//! each item's CAS), the server is stopped with SIGTERM and started again
//! on the same file: every item that has not expired reads back (`mg key c
//! f v`) with the same value, flags and CAS, and the short-lived ones miss.
//! Then each way the file must NOT be trusted is tried — SIGKILL, a changed
//! `-m`, a flipped byte in the header — and the start must be cold, with
//! the reason in the log.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use petrel_tests::server::{Server, Target};

const ITEMS: usize = 100_000;
/// Seconds to live of the items meant to expire across the restart.
const SHORT_TTL: u32 = 2;
/// Commands per pipelined batch.
const BATCH: usize = 500;
const MEMORY_MIB: u32 = 64;
/// Byte offset of the saved cas counter in the persist header
/// (`petrel_core::store::persist::CAS_OFFSET`).
const HEADER_CAS_OFFSET: u64 = 104;

struct Item {
    key: String,
    value: Vec<u8>,
    flags: u32,
    ttl: u32,
    cas: u64,
}

fn items() -> Vec<Item> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..ITEMS)
        .map(|i| {
            let r = next();
            let len = 1 + (r % 200) as usize;
            let value = (0..len)
                .map(|j| b'!' + ((r >> (j % 50)) as u8 % 90))
                .collect();
            Item {
                key: format!("wr:{i}:{:x}", r & 0xffff),
                value,
                flags: (r >> 32) as u32,
                ttl: match i % 10 {
                    0..=5 => 0,
                    6..=8 => 3600,
                    _ => SHORT_TTL,
                },
                cas: 0,
            }
        })
        .collect()
}

struct Client {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
}

impl Client {
    fn connect(s: &Server) -> Client {
        let wr = TcpStream::connect(s.tcp_addr()).expect("connect");
        wr.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        wr.set_nodelay(true).unwrap();
        Client {
            rd: BufReader::with_capacity(1 << 16, wr.try_clone().unwrap()),
            wr,
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.rd.read_line(&mut l).expect("reply line");
        assert!(l.ends_with("\r\n"), "truncated reply line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    /// `ms` every item with its flags and TTL; records the CAS returned.
    fn store_all(&mut self, items: &mut [Item]) {
        for chunk in items.chunks_mut(BATCH) {
            let mut req = Vec::new();
            for it in chunk.iter() {
                write!(
                    req,
                    "ms {} {} F{} T{} c\r\n",
                    it.key,
                    it.value.len(),
                    it.flags,
                    it.ttl
                )
                .unwrap();
                req.extend_from_slice(&it.value);
                req.extend_from_slice(b"\r\n");
            }
            self.wr.write_all(&req).unwrap();
            for it in chunk.iter_mut() {
                let l = self.line();
                let cas = l
                    .strip_prefix("HD c")
                    .unwrap_or_else(|| panic!("ms {}: {l}", it.key));
                it.cas = cas.parse().expect("cas");
            }
        }
    }

    /// `mg key c f v` for every item: (value, flags, cas) or None on a miss.
    fn read_all(&mut self, items: &[Item]) -> Vec<Option<(Vec<u8>, u32, u64)>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(BATCH) {
            let mut req = Vec::new();
            for it in chunk {
                write!(req, "mg {} c f v\r\n", it.key).unwrap();
            }
            self.wr.write_all(&req).unwrap();
            for it in chunk {
                let l = self.line();
                if l == "EN" {
                    out.push(None);
                    continue;
                }
                let mut t = l.split(' ');
                assert_eq!(t.next(), Some("VA"), "mg {}: {l}", it.key);
                let n: usize = t.next().unwrap().parse().unwrap();
                let (mut cas, mut flags) = (None, None);
                for tok in t {
                    if let Some(c) = tok.strip_prefix('c') {
                        cas = c.parse().ok();
                    } else if let Some(f) = tok.strip_prefix('f') {
                        flags = f.parse().ok();
                    }
                }
                let mut data = vec![0u8; n + 2];
                self.rd.read_exact(&mut data).unwrap();
                assert_eq!(&data[n..], b"\r\n");
                data.truncate(n);
                out.push(Some((data, flags.expect("f"), cas.expect("c"))));
            }
        }
        out
    }
}

/// One figure of `stats`.
fn stat(s: &Server, name: &str) -> Option<u64> {
    let mut c = Client::connect(s);
    c.wr.write_all(b"stats\r\n").unwrap();
    let mut found = None;
    loop {
        let l = c.line();
        if l == "END" {
            return found;
        }
        let mut t = l.split(' ');
        if t.next() == Some("STAT") && t.next() == Some(name) {
            found = t.next().and_then(|v| v.parse().ok());
        }
    }
}

fn start(target: &Target, file: &Path, memory_mib: u32) -> Server {
    target
        .builder()
        .memory_mib(memory_mib)
        .threads(2)
        .no_udp()
        .arg("--admin-port")
        .arg("0")
        .arg("--persist")
        .arg(file.to_str().unwrap())
        .start()
}

/// SIGTERM, wait for a clean exit, return the log.
fn stop(s: Server) -> String {
    stop_with(s, libc::SIGTERM)
}

/// `signal` (SIGTERM or SIGINT), wait for a clean exit, return the log.
fn stop_with(mut s: Server, signal: i32) -> String {
    s.signal(signal);
    let status = s.wait_timeout(Duration::from_secs(20)).expect("exits");
    let log = s.log();
    assert!(status.success(), "{status}; log:\n{log}");
    log
}

/// The log of a start, checked to say `cold start: <reason>`.
fn assert_cold(s: &Server, reason: &str) {
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("cold start: "))
        .unwrap_or_else(|| panic!("no cold start line; log:\n{log}"));
    assert!(line.contains(reason), "want {reason:?} in {line:?}");
    assert!(!log.contains("warm restart"), "{log}");
}

fn assert_empty(s: &Server, items: &[Item]) {
    assert_eq!(stat(s, "persist_warm_restart"), Some(0));
    let got = Client::connect(s).read_all(&items[..2000]);
    assert!(got.iter().all(Option::is_none), "cold start kept items");
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn warm_restart_and_every_reason_to_start_cold() {
    let Some(target) = Target::petrel() else {
        return;
    };
    let t0 = Instant::now();
    let file = TempFile(
        std::env::temp_dir().join(format!("petrel-warm-restart-{}.pmem", std::process::id())),
    );
    let _ = std::fs::remove_file(&file.0);
    let mut items = items();

    // 1. A new file: cold, then fill.
    let s = start(&target, &file.0, MEMORY_MIB);
    assert_cold(&s, "no saved state");
    let stored_at = Instant::now();
    Client::connect(&s).store_all(&mut items);
    let before = Client::connect(&s).read_all(&items);
    assert!(
        before.iter().all(Option::is_some),
        "all items readable before the restart"
    );
    let log = stop(s);
    assert!(log.contains(&format!("saved {ITEMS} items")), "{log}");
    eprintln!("stored and stopped in {:?}", t0.elapsed());

    // 2. Restart once the short TTLs have passed: warm.
    let wait = Duration::from_secs(SHORT_TTL as u64 + 1);
    if let Some(rest) = wait.checked_sub(stored_at.elapsed()) {
        std::thread::sleep(rest);
    }
    let s = start(&target, &file.0, MEMORY_MIB);
    let log = s.log();
    assert!(log.contains("warm restart: "), "{log}");
    assert_eq!(stat(&s, "persist_warm_restart"), Some(1));
    assert!(stat(&s, "persist_restored_items").unwrap() >= 90_000);
    let after = Client::connect(&s).read_all(&items);
    let (mut kept, mut expired) = (0, 0);
    for (i, it) in items.iter().enumerate() {
        if it.ttl == SHORT_TTL {
            assert!(after[i].is_none(), "{} should have expired", it.key);
            expired += 1;
        } else {
            let (v, f, c) = after[i]
                .as_ref()
                .unwrap_or_else(|| panic!("{} lost", it.key));
            assert_eq!(v, &it.value, "{} value", it.key);
            assert_eq!(*f, it.flags, "{} flags", it.key);
            assert_eq!(*c, it.cas, "{} cas", it.key);
            kept += 1;
        }
    }
    assert_eq!(kept + expired, ITEMS);
    assert!(expired > 0 && kept > 80_000);
    // CAS values stay unique after the restart: a new write gets a new one,
    // and a cas store with the saved value works.
    let mut c = Client::connect(&s);
    let it = &items[1];
    c.wr.write_all(format!("ms {} 1 C{} c\r\nZ\r\n", it.key, it.cas).as_bytes())
        .unwrap();
    let l = c.line();
    let new_cas: u64 = l.strip_prefix("HD c").expect("cas store").parse().unwrap();
    assert!(items.iter().all(|i| i.cas != new_cas), "cas reused");
    eprintln!("warm restart verified at {:?}", t0.elapsed());

    // 3. SIGKILL: the next start must not trust the file.
    let mut s = s;
    s.signal(libc::SIGKILL);
    s.wait_timeout(Duration::from_secs(10)).expect("killed");
    let s = start(&target, &file.0, MEMORY_MIB);
    assert_cold(&s, "did not shut down cleanly");
    assert_empty(&s, &items);
    // Refill a little so the next cases have something to lose.
    Client::connect(&s).store_all(&mut items[..2000]);
    stop(s);

    // 4. A changed configuration (-m).
    let s = start(&target, &file.0, MEMORY_MIB / 2);
    assert_cold(&s, "configuration changed: item memory bytes");
    assert_empty(&s, &items);
    stop(s);
    let s = start(&target, &file.0, MEMORY_MIB);
    assert_cold(&s, "configuration changed: item memory bytes");
    Client::connect(&s).store_all(&mut items[..2000]);
    // A second server on the same file is refused while the first runs.
    let port = petrel_tests::server::free_port_pair();
    let e = target
        .builder()
        .memory_mib(MEMORY_MIB)
        .no_udp()
        .arg("--admin-port")
        .arg("0")
        .arg("--persist")
        .arg(file.0.to_str().unwrap())
        .try_start(port, port)
        .expect_err("a second server on the same file must not start");
    assert!(e.contains("in use by another process"), "{e}");
    // SIGINT saves like SIGTERM: the same configuration is warm again.
    let log = stop_with(s, libc::SIGINT);
    // (200 of the 2000 have a 2 s TTL: their segment may be reclaimed first)
    let saved: u64 = log
        .split("saved ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no saved line: {log}"));
    assert!((1800..=2000).contains(&saved), "{log}");
    let s = start(&target, &file.0, MEMORY_MIB);
    assert!(s.log().contains("warm restart: "), "{}", s.log());
    let got = Client::connect(&s).read_all(&items[..1]);
    assert_eq!(got[0].as_ref().map(|g| g.2), Some(items[0].cas));
    stop(s);

    // 5. One flipped byte in the header (the saved cas counter).
    {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file.0)
            .unwrap();
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(HEADER_CAS_OFFSET)).unwrap();
        f.read_exact(&mut b).unwrap();
        b[0] ^= 0x01;
        f.seek(SeekFrom::Start(HEADER_CAS_OFFSET)).unwrap();
        f.write_all(&b).unwrap();
    }
    let s = start(&target, &file.0, MEMORY_MIB);
    assert_cold(&s, "header checksum mismatch");
    assert_empty(&s, &items);
    stop(s);
    eprintln!("all cases in {:?}", t0.elapsed());
}
