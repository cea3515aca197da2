//! The item memory: one mapping made at start-up, never freed, and how it
//! becomes resident.
//!
//! Mapping: explicit huge pages (`MAP_HUGETLB`, needs pages reserved in
//! `/proc/sys/vm/nr_hugepages`) if the kernel has them, otherwise normal
//! pages with transparent huge pages requested (`madvise(MADV_HUGEPAGE)`);
//! each fallback is logged. A fresh anonymous mapping reads as zero and
//! costs no RAM until a page is first written, so nothing here or in the
//! store touches it at start-up: start-up takes the same time at any `-m`.
//!
//! Residency, the operator's choice:
//! - on first use (always): a page becomes resident when the store first
//!   writes it, as memcached's slab pages do; the store takes segments
//!   lowest first, so the touched part grows from the start of each
//!   shard's data region;
//! - `-k` (`--lock-memory`): the mapping is locked with
//!   `mlock2(MLOCK_ONFAULT)`, so each page is locked in RAM (never swapped)
//!   as it becomes resident, without faulting the rest in;
//! - `--prefault-ahead SIZE`: a background thread keeps that much memory
//!   (split over the shards) resident ahead of each shard's segment
//!   frontier with `madvise(MADV_POPULATE_WRITE)` (`fallocate` for a
//!   `--persist` file, see [`Populate`]), so the request path rarely takes the page
//!   fault and the zeroing of a fresh page.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use petrel_core::engine::{Engine, StatsSource};
use petrel_core::store::DataFrontier;

use crate::metrics::{ExtraSource, Family, Type, Value};

/// Huge page size the mapping length is rounded up to.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;
/// `mlock2` flag: lock pages as they are faulted in (Linux 4.4+; not in
/// every libc crate version).
const MLOCK_ONFAULT: libc::c_uint = 1;
/// `madvise` advice: populate (prefault) page tables writable (Linux 5.14+).
const MADV_POPULATE_WRITE: libc::c_int = 23;
/// How the prefault thread makes a range resident.
#[derive(Debug, Clone, Copy)]
pub enum Populate {
    /// Anonymous memory: `madvise(MADV_POPULATE_WRITE)`, the pages are
    /// allocated, zeroed and mapped.
    Anonymous,
    /// A shared file mapping starting at `base` (the file's offset 0):
    /// `fallocate` allocates the file's pages (blocks) without mapping
    /// them into the process, so the first touch is a minor fault and the
    /// exit has no more page-table entries to tear down than the store
    /// touched; a write never fails for lack of space in the file system.
    File {
        /// The file's descriptor.
        fd: std::os::fd::RawFd,
        /// Address of the mapping's first byte.
        base: usize,
    },
}

impl Populate {
    /// Makes `[from, to)` resident (see the variants).
    fn range(self, from: usize, to: usize) -> io::Result<()> {
        let rc = match self {
            // SAFETY: the caller's range lies in the item memory (mapped
            // for the life of the process); populate advice only faults
            // pages in and changes no byte.
            Populate::Anonymous => unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, MADV_POPULATE_WRITE)
            },
            Populate::File { fd, base } => {
                let off = libc::off_t::try_from(from - base).unwrap_or(libc::off_t::MAX);
                let len = libc::off_t::try_from(to - from).unwrap_or(0);
                // SAFETY: fallocate mode 0 on our own descriptor, inside
                // the file's size: it allocates and changes no byte.
                unsafe { libc::fallocate(fd, 0, off, len) }
            }
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// How often the prefault thread looks at the segment frontiers.
const PREFAULT_POLL: Duration = Duration::from_millis(2);

/// How the item memory ended up being backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// Bytes mapped.
    pub mapped_bytes: usize,
    /// Backed by explicit huge pages (`MAP_HUGETLB`).
    pub hugetlb: bool,
    /// Transparent huge pages requested with `MADV_HUGEPAGE`.
    pub thp_advised: bool,
    /// Locked in RAM as it is touched (`mlock2(MLOCK_ONFAULT)`).
    pub locked: bool,
    /// Address of the first byte.
    pub addr: usize,
    /// A shared file mapping (`--persist`) rather than anonymous memory:
    /// the file's descriptor (open for the life of the process); the
    /// mapping starts at the file's offset 0.
    pub file: Option<std::os::fd::RawFd>,
}

impl MemoryReport {
    /// The mapping's residency figures.
    pub fn residency(&self) -> Residency {
        Residency::new(self.addr as *const u8, self.mapped_bytes)
    }
}

fn map(len: usize, extra_flags: libc::c_int) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping without address hint has no
    // preconditions; the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
            -1,
            0,
        )
    };
    mapped(p)
}

/// A shared read-write mapping of the first `len` bytes of `file` (opened
/// read-write, at least `len` bytes long): `--persist`'s arena. It stays
/// mapped after `file` is closed, until `munmap`.
pub fn map_file(file: &std::fs::File, len: usize) -> io::Result<*mut u8> {
    use std::os::fd::AsRawFd;
    // SAFETY: a shared mapping of `len` bytes of an open file; no address
    // hint; the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    mapped(p)
}

/// `mmap`'s result as an address, or the error it set.
fn mapped(p: *mut libc::c_void) -> io::Result<*mut u8> {
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// Locks `[ptr, ptr + len)` in RAM page by page as it becomes resident
/// (`mlock2(MLOCK_ONFAULT)`): nothing is faulted in by this call. Needs
/// `CAP_IPC_LOCK` or a `RLIMIT_MEMLOCK` of at least `len`.
pub fn lock_on_fault(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: mlock2 only changes how the kernel treats pages of this
    // range (a mapping the caller owns); it reads and writes no memory.
    if unsafe { libc::mlock2(ptr.cast(), len, MLOCK_ONFAULT) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Maps `bytes` of zeroed memory for the whole life of the process and
/// returns it with a report of how it is backed. With `lock`, the memory is
/// locked in RAM as it becomes resident ([`lock_on_fault`]); a failure is
/// logged and leaves it unlocked. No page is touched here.
pub fn allocate(bytes: usize, lock: bool) -> io::Result<(&'static mut [u8], MemoryReport)> {
    let mapped_bytes = bytes.max(1).div_ceil(HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES;
    let mut report = MemoryReport {
        mapped_bytes,
        hugetlb: false,
        thp_advised: false,
        locked: false,
        addr: 0,
        file: None,
    };
    let ptr = match map(mapped_bytes, libc::MAP_HUGETLB) {
        Ok(p) => {
            report.hugetlb = true;
            log::info!("item memory: {mapped_bytes} bytes on explicit huge pages");
            p
        }
        Err(e) => {
            log::info!(
                "item memory: huge pages (MAP_HUGETLB) unavailable ({e}); using normal pages"
            );
            let p = map(mapped_bytes, 0)?;
            // SAFETY: [p, p + mapped_bytes) is the mapping just made.
            if unsafe { libc::madvise(p.cast(), mapped_bytes, libc::MADV_HUGEPAGE) } == 0 {
                report.thp_advised = true;
            } else {
                log::info!(
                    "item memory: transparent huge pages unavailable (madvise: {})",
                    io::Error::last_os_error()
                );
            }
            p
        }
    };
    report.addr = ptr as usize;
    if lock {
        match lock_on_fault(ptr, mapped_bytes) {
            Ok(()) => report.locked = true,
            Err(e) => log::warn!(
                "item memory: cannot lock {mapped_bytes} bytes in RAM (mlock2 MLOCK_ONFAULT: {e}); \
                 it may be swapped (raise the memlock limit or run with CAP_IPC_LOCK)"
            ),
        }
    }
    // SAFETY: the mapping is readable, writable, zero-filled, at least
    // `bytes` long and never unmapped, so a 'static exclusive slice over it
    // is valid; nothing else refers to it.
    let slice = unsafe { std::slice::from_raw_parts_mut(ptr, bytes) };
    Ok((slice, report))
}

/// `lo-hi` of a mapping's header line in `/proc/self/smaps`
/// (`7f..-7f.. rw-p ...`); `None` for the other lines.
fn vma_range(line: &[u8]) -> Option<(usize, usize)> {
    let end = line.iter().position(|&c| c == b' ')?;
    let range = std::str::from_utf8(&line[..end]).ok()?;
    let (lo, hi) = range.split_once('-')?;
    Some((
        usize::from_str_radix(lo, 16).ok()?,
        usize::from_str_radix(hi, 16).ok()?,
    ))
}

/// The value of a `Name:   123 kB` line of `/proc/self/smaps`.
fn kib_field(line: &[u8], name: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(name)?;
    let text = std::str::from_utf8(rest).ok()?.trim();
    text.strip_suffix("kB")?.trim().parse().ok()
}

/// Bytes of a system page.
fn page_bytes() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096).max(1)
}

/// The item memory's address range, for residency figures. Holds no
/// reference: it only asks the kernel about the range.
#[derive(Debug, Clone, Copy)]
pub struct Residency {
    addr: usize,
    len: usize,
}

impl Residency {
    /// The range `[addr, addr + len)`.
    pub fn new(addr: *const u8, len: usize) -> Self {
        Self {
            addr: addr as usize,
            len,
        }
    }

    /// Bytes of the range resident in RAM now (its mapping's `Rss` in
    /// `/proc/self/smaps`: pages only read so far, which map the shared
    /// zero page, do not count). 0 if it cannot be read.
    pub fn resident_bytes(&self) -> u64 {
        self.smaps().map_or(0, |(rss, _)| rss.min(self.len as u64))
    }

    /// Bytes of the range locked in RAM (its mapping's `Locked` in
    /// `/proc/self/smaps`). 0 if it cannot be read.
    pub fn locked_bytes(&self) -> u64 {
        self.smaps()
            .map_or(0, |(_, locked)| locked.min(self.len as u64))
    }

    /// `Rss` and `Locked` (bytes) of the mapping holding the range's first
    /// byte, read from `/proc/self/smaps` through a fixed buffer: nothing
    /// is allocated.
    fn smaps(&self) -> Option<(u64, u64)> {
        use std::io::Read;
        let mut f = std::fs::File::open("/proc/self/smaps").ok()?;
        let mut buf = [0u8; 8192];
        let (mut filled, mut in_ours, mut rss, mut locked) = (0usize, false, None, None);
        loop {
            let n = f.read(&mut buf[filled..]).ok()?;
            filled += n;
            let mut start = 0;
            while let Some(nl) = buf[start..filled].iter().position(|&c| c == b'\n') {
                let line = &buf[start..start + nl];
                start += nl + 1;
                if let Some((lo, hi)) = vma_range(line) {
                    if in_ours {
                        return Some((rss?, locked?));
                    }
                    in_ours = lo <= self.addr && self.addr < hi;
                } else if in_ours {
                    if let Some(v) = kib_field(line, b"Rss:") {
                        rss = Some(v * 1024);
                    } else if let Some(v) = kib_field(line, b"Locked:") {
                        locked = Some(v * 1024);
                    }
                }
            }
            buf.copy_within(start..filled, 0);
            filled -= start;
            if n == 0 || filled == buf.len() {
                return if in_ours { Some((rss?, locked?)) } else { None };
            }
        }
    }

    /// The range's length.
    pub fn len(&self) -> u64 {
        self.len as u64
    }
}

impl StatsSource for Residency {
    /// `STAT memory_arena_bytes`, `memory_arena_resident_bytes`,
    /// `memory_arena_locked_bytes`.
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        f("memory_", "arena_bytes", self.len());
        f("memory_", "arena_resident_bytes", self.resident_bytes());
        f("memory_", "arena_locked_bytes", self.locked_bytes());
    }
}

/// Calls its argument with every shard's [`DataFrontier`].
pub type Frontiers<'a> = dyn Fn(&mut dyn FnMut(DataFrontier)) + 'a;

/// Keeps memory resident ahead of each shard's segment frontier until
/// `stop`: every [`PREFAULT_POLL`], for each shard, the range from where it
/// stopped last (at first: the frontier) to `ahead_bytes / shards` (at
/// least one segment) past the frontier is made resident ([`Populate`]).
/// Its work is bounded by how far the frontiers move. Logs once if the
/// kernel cannot populate (`MADV_POPULATE_WRITE` needs Linux 5.14; a file
/// system may not support `fallocate`) and stops.
pub fn prefault_ahead(
    frontiers: &Frontiers<'_>,
    segment_bytes: usize,
    ahead_bytes: usize,
    populate: Populate,
    stop: &AtomicBool,
) {
    let page = page_bytes();
    let mut done: Vec<usize> = Vec::new();
    let mut shards = 0;
    frontiers(&mut |_| shards += 1);
    let per_shard = (ahead_bytes / shards.max(1)).max(segment_bytes);
    let t0 = Instant::now();
    let mut logged_first = false;
    while !stop.load(Ordering::Relaxed) {
        let mut i = 0;
        let mut failed = None;
        frontiers(&mut |f| {
            if done.len() <= i {
                // Start at the frontier as first seen: the segments below
                // it hold items (a warm restart), their pages come in with
                // the first read of each. Populating them too would map
                // the whole saved cache into this process, delay the first
                // requests and make the exit's unmapping longer.
                done.push(f.used);
            }
            let target = (f.used + per_shard).min(f.len);
            if target > done[i] && failed.is_none() {
                let from = (f.start + done[i]) & !(page - 1);
                let to = f.start + target;
                match populate.range(from, to) {
                    Ok(()) => done[i] = target,
                    Err(e) => failed = Some(e),
                }
            }
            i += 1;
        });
        if let Some(e) = failed {
            log::warn!("item memory: prefault thread stops: {populate:?}: {e}");
            return;
        }
        if !logged_first {
            logged_first = true;
            log::info!(
                "item memory: {} bytes per shard prefaulted ahead of the segment frontier ({} ms)",
                per_shard,
                t0.elapsed().as_millis()
            );
        }
        std::thread::sleep(PREFAULT_POLL);
    }
}

/// The residency gauges: (name, meaning), exposed as
/// `petrel_memory_<name>` in bytes.
const GAUGES: [(&str, &str); 3] = [
    ("arena_bytes", "bytes of item memory mapped (the arena: segments, hash table and store metadata)"),
    ("arena_resident_bytes", "bytes of the item memory resident in RAM (Rss of its mapping in /proc/self/smaps): it grows as segments are first used or prefaulted"),
    ("arena_locked_bytes", "bytes of the item memory locked in RAM (Locked of its mapping in /proc/self/smaps; with -k every resident page is locked)"),
];

/// The residency gauges for the metrics endpoint.
pub fn metrics_source(r: Residency) -> ExtraSource {
    Box::new(move |out: &mut Vec<Family>| {
        let values = [r.len(), r.resident_bytes(), r.locked_bytes()];
        for ((name, help), v) in GAUGES.iter().zip(values) {
            out.push(Family::single(
                &format!("petrel_memory_{name}"),
                Type::Gauge,
                "bytes",
                help,
                Value::Int(v),
            ));
        }
    })
}

/// README rows of the residency gauges (name, type, unit, labels, meaning).
#[cfg(test)]
pub fn documented() -> Vec<(String, &'static str, &'static str, &'static str, String)> {
    GAUGES
        .iter()
        .map(|(name, help)| {
            (
                format!("petrel_memory_{name}"),
                "gauge",
                "bytes",
                "",
                help.to_string(),
            )
        })
        .collect()
}

/// Starts the `petrel-prefault` thread in `scope` (see [`prefault_ahead`])
/// unless `ahead_bytes` is 0; it runs until `stop`.
pub fn start_prefault<'s, 'e: 's>(
    scope: &'s std::thread::Scope<'s, 'e>,
    engine: &'e Engine<'static>,
    ahead_bytes: u64,
    report: &MemoryReport,
    stop: &'e AtomicBool,
) {
    if ahead_bytes == 0 {
        return;
    }
    let populate = match report.file {
        Some(fd) => Populate::File {
            fd,
            base: report.addr,
        },
        None => Populate::Anonymous,
    };
    let segment_bytes = engine.store().config().segment_bytes;
    let spawned = std::thread::Builder::new()
        .name("petrel-prefault".into())
        .spawn_scoped(scope, move || {
            let frontiers = |f: &mut dyn FnMut(DataFrontier)| engine.store().frontiers(f);
            prefault_ahead(
                &frontiers,
                segment_bytes,
                usize::try_from(ahead_bytes).unwrap_or(usize::MAX),
                populate,
                stop,
            );
        });
    if let Err(e) = spawned {
        log::warn!("item memory: no prefault thread ({e}); memory becomes resident on first use");
    }
}

/// What start-up did with the item memory, for the start-up log line.
pub fn describe(report: &MemoryReport, ahead_bytes: u64) -> String {
    let backing = if report.file.is_some() {
        "a --persist file mapping"
    } else if report.hugetlb {
        "explicit huge pages"
    } else if report.thp_advised {
        "anonymous memory with transparent huge pages"
    } else {
        "anonymous memory"
    };
    let mut d = format!(
        "{} bytes of item memory mapped ({backing}), none of it touched; it becomes resident as segments are first used",
        report.mapped_bytes
    );
    if report.locked {
        d.push_str(", locked in RAM as it is touched (-k, mlock2 MLOCK_ONFAULT)");
    }
    if ahead_bytes > 0 {
        d.push_str(&format!(
            ", and a background thread keeps {} MiB resident ahead of the segment frontiers",
            ahead_bytes >> 20
        ));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One mapping at a time: two with the same flags side by side would
    /// be merged into one by the kernel, and smaps would add them up.
    static ONE_MAPPING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn allocates_zeroed_memory_that_becomes_resident_only_when_written() {
        let _one = ONE_MAPPING.lock().unwrap_or_else(|e| e.into_inner());
        let (m, r) = allocate(6 << 20, false).unwrap();
        assert_eq!(m.len(), 6 << 20);
        assert_eq!(r.mapped_bytes, 6 << 20);
        assert!(!r.locked);
        let res = Residency::new(m.as_ptr(), m.len());
        assert_eq!(res.resident_bytes(), 0, "nothing touched yet");
        m[0] = 1;
        m[m.len() - 1] = 2;
        assert_eq!((m[0], m[m.len() - 1]), (1, 2));
        let resident = res.resident_bytes();
        // Two pages (or two huge pages with THP).
        assert!(
            (2 * 4096..=4 << 20).contains(&resident),
            "resident {resident}"
        );
        assert_eq!(res.locked_bytes(), 0);
        // Pages only read map the shared zero page: not resident.
        assert!(m[1..m.len() - 1].iter().step_by(4096).all(|&b| b == 0));
        assert_eq!(res.resident_bytes(), resident);
        unmap(m);
    }

    /// Gives a test's mapping back (so the next test's is not merged with it).
    fn unmap(m: &'static mut [u8]) {
        let len = m.len().div_ceil(HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES;
        // SAFETY: `m` is a whole mapping made by `allocate` (rounded up as
        // it rounds), and the test holds its only reference.
        unsafe { libc::munmap(m.as_mut_ptr().cast(), len) };
    }

    #[test]
    fn prefault_stays_a_bounded_distance_ahead_of_the_frontier() {
        let _one = ONE_MAPPING.lock().unwrap_or_else(|e| e.into_inner());
        let (m, _) = allocate(32 << 20, false).unwrap();
        let start = m.as_ptr() as usize;
        let used = std::sync::atomic::AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let frontiers = |f: &mut dyn FnMut(DataFrontier)| {
            f(DataFrontier {
                start,
                len: 32 << 20,
                used: used.load(Ordering::Relaxed),
            })
        };
        let res = Residency::new(m.as_ptr(), m.len());
        std::thread::scope(|s| {
            s.spawn(|| prefault_ahead(&frontiers, 1 << 20, 4 << 20, Populate::Anonymous, &stop));
            let wait_for = |want: u64| {
                let t = Instant::now();
                while res.resident_bytes() < want && t.elapsed() < Duration::from_secs(20) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                res.resident_bytes()
            };
            assert!(wait_for(4 << 20) >= 4 << 20);
            used.store(10 << 20, Ordering::Relaxed);
            assert!(wait_for(14 << 20) >= 14 << 20);
            stop.store(true, Ordering::Relaxed);
        });
        // Never further than the distance (THP may round up to 2 MiB).
        assert!(res.resident_bytes() <= 16 << 20, "{}", res.resident_bytes());
        unmap(m);
    }

    /// A file mapping: the file's blocks ahead of the frontier are
    /// allocated, none of its pages is mapped into the process.
    #[test]
    fn prefault_of_a_file_allocates_it_without_mapping_it() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let _one = ONE_MAPPING.lock().unwrap_or_else(|e| e.into_inner());
        let path = std::env::temp_dir().join(format!("petrel-prefault-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let len = 32usize << 20;
        file.set_len(len as u64).unwrap();
        let p = map_file(&file, len).unwrap();
        let start = p as usize;
        let stop = AtomicBool::new(false);
        let frontiers = |f: &mut dyn FnMut(DataFrontier)| {
            f(DataFrontier {
                start: start + (4 << 20),
                len: 28 << 20,
                used: 8 << 20,
            })
        };
        let populate = Populate::File {
            fd: file.as_raw_fd(),
            base: start,
        };
        let allocated = || file.metadata().unwrap().blocks() * 512;
        assert_eq!(allocated(), 0, "a new file has no blocks");
        std::thread::scope(|s| {
            s.spawn(|| prefault_ahead(&frontiers, 1 << 20, 4 << 20, populate, &stop));
            let t = Instant::now();
            while allocated() < 4 << 20 && t.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
        });
        // File bytes [12 MiB, 16 MiB): 4 MiB past the frontier (a file
        // system may round an allocation out a little).
        let bytes = allocated();
        assert!((4 << 20..6 << 20).contains(&bytes), "{bytes}");
        let res = Residency::new(p, len);
        assert_eq!(res.resident_bytes(), 0, "nothing mapped");
        // SAFETY: the mapping made above; nothing refers to it.
        unsafe { libc::munmap(p.cast(), len) };
    }

    /// A store reattached from a file has its frontier far into each
    /// shard: the memory below it (saved items) is left alone.
    #[test]
    fn prefault_starts_at_the_frontier_not_below_it() {
        let _one = ONE_MAPPING.lock().unwrap_or_else(|e| e.into_inner());
        let (m, _) = allocate(32 << 20, false).unwrap();
        let start = m.as_ptr() as usize;
        let stop = AtomicBool::new(false);
        let frontiers = |f: &mut dyn FnMut(DataFrontier)| {
            f(DataFrontier {
                start,
                len: 32 << 20,
                used: 20 << 20,
            })
        };
        let res = Residency::new(m.as_ptr(), m.len());
        std::thread::scope(|s| {
            s.spawn(|| prefault_ahead(&frontiers, 1 << 20, 4 << 20, Populate::Anonymous, &stop));
            let t = Instant::now();
            while res.resident_bytes() < 4 << 20 && t.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
        });
        let resident = res.resident_bytes();
        assert!(resident >= 4 << 20, "{resident}");
        // The 4 MiB past the frontier (THP may round out to 2 MiB pages),
        // none of the 20 MiB below it.
        assert!(resident <= 6 << 20, "{resident}");
        unmap(m);
    }
}
