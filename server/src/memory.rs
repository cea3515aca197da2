//! The item memory: one anonymous mapping made at start-up, never freed.
//!
//! Tried in order, each fallback logged: huge pages (`MAP_HUGETLB`, needs
//! pages reserved in `/proc/sys/vm/nr_hugepages`), then normal pages with
//! transparent huge pages requested (`madvise(MADV_HUGEPAGE)`); then the
//! region is locked in RAM (`mlock`, needs root or a large
//! `RLIMIT_MEMLOCK`) so the cache is never swapped.

use std::io;

/// Huge page size the mapping length is rounded up to.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// How the item memory ended up being backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// Bytes mapped (the request rounded up to [`HUGE_PAGE_BYTES`]).
    pub mapped_bytes: usize,
    /// Backed by explicit huge pages (`MAP_HUGETLB`).
    pub hugetlb: bool,
    /// Transparent huge pages requested with `MADV_HUGEPAGE`.
    pub thp_advised: bool,
    /// Locked in RAM with `mlock`.
    pub locked: bool,
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
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// Maps `bytes` of zeroed memory for the whole life of the process and
/// returns it with a report of how it is backed. `lock` false skips `mlock`.
pub fn allocate(bytes: usize, lock: bool) -> io::Result<(&'static mut [u8], MemoryReport)> {
    let mapped_bytes = bytes.max(1).div_ceil(HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES;
    let mut report = MemoryReport {
        mapped_bytes,
        hugetlb: false,
        thp_advised: false,
        locked: false,
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
    if lock {
        // SAFETY: [ptr, ptr + mapped_bytes) is our mapping.
        if unsafe { libc::mlock(ptr.cast(), mapped_bytes) } == 0 {
            report.locked = true;
        } else {
            log::warn!(
                "item memory: cannot lock {mapped_bytes} bytes in RAM (mlock: {}); it may be swapped",
                io::Error::last_os_error()
            );
        }
    }
    // SAFETY: the mapping is readable, writable, zero-filled, at least
    // `bytes` long and never unmapped, so a 'static exclusive slice over it
    // is valid; nothing else refers to it.
    let slice = unsafe { std::slice::from_raw_parts_mut(ptr, bytes) };
    Ok((slice, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_zeroed_writable_memory_of_the_requested_size() {
        let (m, r) = allocate(3 << 20, false).unwrap();
        assert_eq!(m.len(), 3 << 20);
        assert_eq!(r.mapped_bytes, 4 << 20);
        assert!(!r.locked);
        assert!(m.iter().step_by(4096).all(|&b| b == 0));
        m[0] = 1;
        m[m.len() - 1] = 2;
        assert_eq!((m[0], m[m.len() - 1]), (1, 2));
    }
}
