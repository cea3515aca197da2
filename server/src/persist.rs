//! `--persist PATH`: the item memory as a file-backed shared mapping, so a
//! cleanly stopped Petrel restarts warm.
//!
//! ```text
//! start:  open PATH (create, 0600), lock it (flock, one process per file)
//!         size == arena bytes?  no  -> read its header for the reason, truncate, cold
//!                               yes -> mmap MAP_SHARED, Engine::attach
//!                                      ok  -> "warm restart: N items", header now DIRTY
//!                                      err -> "cold start: <reason>", truncate, Engine::new
//! stop:   (front ends stopped) msync everything, Engine::persist (CLEAN header
//!         with checksums), msync the header page
//! ```
//!
//! The file holds exactly the engine's arena (see `petrel_core::store::persist`
//! for the header). Truncating to zero and back gives the cold start
//! zero-filled pages, like the anonymous mapping without `--persist`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use petrel_core::engine::{Engine, EngineConfig, StatsSource};
use petrel_core::store::{persist::check_header, PERSIST_HEADER_BYTES};

use crate::memory::MemoryReport;

/// How the engine came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Reattached: this many items were linked after expired segments
    /// were dropped.
    Warm {
        /// Items linked.
        items: u64,
    },
    /// Started empty, for this reason.
    Cold(String),
}

/// How this process started, in `stats` as `persist_warm_restart` (1 or 0)
/// and `persist_restored_items`.
struct RestartStats {
    warm: bool,
    items: u64,
}

impl StatsSource for RestartStats {
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        f("persist_", "warm_restart", self.warm as u64);
        f("persist_", "restored_items", self.items);
    }
}

/// The open, locked, mapped persist file. Lives until the process exits.
pub struct PersistFile {
    file: File,
    path: PathBuf,
    ptr: *mut u8,
    len: usize,
}

impl PersistFile {
    /// Opens (creating) and locks `path`. Returns the file and, when its
    /// size does not fit `len`, why it cannot hold a saved arena (after
    /// which it has been emptied to `len` zero bytes).
    fn open(path: &Path, len: usize, cfg: &EngineConfig) -> io::Result<(File, Option<String>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "in use by another process (locked)",
                )
            } else {
                e
            });
        }
        let size = file.metadata()?.len();
        if size == len as u64 {
            return Ok((file, None));
        }
        let reason = if size == 0 {
            "no saved state (new or empty file)".to_string()
        } else {
            let mut header = vec![0u8; PERSIST_HEADER_BYTES];
            let n = file.read(&mut header)?;
            match check_header(&cfg.store, &header[..n], PERSIST_HEADER_BYTES) {
                Err(e) => e.to_string(),
                Ok(_) => format!("file is {size} bytes, this configuration needs {len}"),
            }
        };
        file.set_len(0)?;
        file.set_len(len as u64)?;
        Ok((file, Some(reason)))
    }

    /// The whole mapping as the engine's arena.
    ///
    /// # Safety
    /// At most one slice returned by this function may be alive at a time.
    unsafe fn arena(&self) -> &'static mut [u8] {
        // SAFETY: the mapping is readable, writable, `len` bytes, and never
        // unmapped (the file lives until exit); the caller keeps it unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Drops the file's contents: `len` zero bytes from now on (the pages
    /// of the mapping read as zero).
    fn clear(&self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.set_len(self.len as u64)
    }

    /// Writes the first `bytes` of the mapping to the file (`MS_SYNC`).
    fn sync(&self, bytes: usize) -> io::Result<()> {
        // SAFETY: msync over a prefix of our own live mapping; it reads
        // nothing through Rust references.
        if unsafe { libc::msync(self.ptr.cast(), bytes.min(self.len), libc::MS_SYNC) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Asks for transparent huge pages and, with `lock`, locks the mapping in
/// RAM as it becomes resident (`mlock2(MLOCK_ONFAULT)`): nothing is faulted
/// in here, so serving starts at once whatever the file's size; pages come
/// in on first use, or ahead of it from the prefault thread
/// (`memory::prefault_ahead`).
fn advise_and_lock(ptr: *mut u8, len: usize, lock: bool, report: &mut MemoryReport) {
    // SAFETY: [ptr, ptr + len) is our mapping; advice is only a hint.
    report.thp_advised = unsafe { libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE) } == 0;
    if lock {
        match crate::memory::lock_on_fault(ptr, len) {
            Ok(()) => report.locked = true,
            Err(e) => log::warn!(
                "item memory: cannot lock {len} bytes in RAM (mlock2 MLOCK_ONFAULT: {e}); it may be swapped"
            ),
        }
    }
}

/// Opens `path`, maps it and builds the engine: warm if the file holds a
/// cleanly saved arena of a compatible configuration, cold otherwise.
/// Logs one line saying which and why. Errors are the file's (open, lock,
/// size, map), with the path named.
pub fn start(
    path: &Path,
    cfg: &EngineConfig,
    arena_bytes: usize,
    lock: bool,
    now: u32,
) -> Result<(Engine<'static>, PersistFile, MemoryReport, Start), String> {
    let t0 = Instant::now();
    let named = |e: io::Error| format!("petrel: --persist {}: {e}", path.display());
    let (file, size_reason) = PersistFile::open(path, arena_bytes, cfg).map_err(named)?;
    let ptr = crate::memory::map_file(&file, arena_bytes).map_err(named)?;
    let pf = PersistFile {
        file,
        path: path.to_path_buf(),
        ptr,
        len: arena_bytes,
    };
    let mut report = MemoryReport {
        mapped_bytes: arena_bytes,
        hugetlb: false,
        thp_advised: false,
        locked: false,
        addr: ptr as usize,
        file: Some(pf.file.as_raw_fd()),
    };
    let attached = match size_reason {
        Some(reason) => Err(reason),
        // SAFETY: the first slice of this mapping.
        None => Engine::attach(cfg, unsafe { pf.arena() }, now).map_err(|e| e.to_string()),
    };
    let (engine, start) = match attached {
        Ok(engine) => {
            // The header says DIRTY now: make that durable before serving.
            pf.sync(PERSIST_HEADER_BYTES).map_err(named)?;
            let items = engine.store().stats().items.get();
            let saved_at = engine.store().saved_at().unwrap_or(now);
            log::info!(
                "warm restart: {items} items from {} (saved {} s ago, attached in {} ms)",
                path.display(),
                now.saturating_sub(saved_at),
                t0.elapsed().as_millis()
            );
            if now < saved_at {
                log::warn!(
                    "the clock is {} s behind the time the cache was saved at: items live that much longer",
                    saved_at - now
                );
            }
            (engine, Start::Warm { items })
        }
        Err(reason) => {
            log::warn!("cold start: {reason} ({})", path.display());
            pf.clear().map_err(named)?;
            // SAFETY: the slice handed to the failed attach is gone: the
            // error it returned borrows nothing, so this is the only one.
            let arena = unsafe { pf.arena() };
            // The file was just emptied and extended: it reads as zeros.
            // Building writes a few pages per shard: without read-ahead
            // (MADV_RANDOM) each write fault reads (zero-fills) one page,
            // not a window of them.
            // SAFETY: advice on our own mapping; it changes no byte.
            unsafe { libc::madvise(pf.ptr.cast(), pf.len, libc::MADV_RANDOM) };
            let built = crate::cache::build_on_zeroed(cfg, arena);
            // SAFETY: as above.
            unsafe { libc::madvise(pf.ptr.cast(), pf.len, libc::MADV_NORMAL) };
            let engine = built.map_err(|e| format!("petrel: {e}"))?;
            (engine, Start::Cold(reason))
        }
    };
    let figures = match start {
        Start::Warm { items } => RestartStats { warm: true, items },
        Start::Cold(_) => RestartStats {
            warm: false,
            items: 0,
        },
    };
    // One small allocation for the life of the process (the engine is too).
    if !engine.add_stats_source(Box::leak(Box::new(figures))) {
        log::warn!("persist: no room for the warm-restart figures in stats");
    }
    advise_and_lock(pf.ptr, pf.len, lock, &mut report);
    Ok((engine, pf, report, start))
}

/// Saves the engine into its file after the front ends stopped: syncs the
/// item memory, writes the clean header (with checksums), syncs it. Logs
/// what was saved or why it was not.
pub fn save(engine: Engine<'static>, pf: &PersistFile, now: u32) {
    let t0 = Instant::now();
    if let Err(e) = pf.sync(pf.len) {
        log::error!(
            "not saved for a warm restart: msync {}: {e}",
            pf.path.display()
        );
        return;
    }
    let summary = engine.persist(now);
    match pf.sync(PERSIST_HEADER_BYTES) {
        Ok(()) => log::info!(
            "saved {} items to {} for a warm restart ({} ms)",
            summary.items,
            pf.path.display(),
            t0.elapsed().as_millis()
        ),
        Err(e) => log::error!(
            "not saved for a warm restart: msync header {}: {e}",
            pf.path.display()
        ),
    }
}
