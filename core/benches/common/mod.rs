//! Shared by the benches.

/// The arena, mapped the way the server maps it (`server/src/memory.rs`):
/// anonymous memory with transparent huge pages requested. Falls back to
/// the heap when mmap fails.
pub fn arena(bytes: usize) -> &'static mut [u8] {
    const HUGE: usize = 2 << 20;
    let len = bytes.div_ceil(HUGE) * HUGE;
    // SAFETY: a fresh private anonymous mapping, never unmapped: it lives
    // for the rest of the process, like the leaked Vec it replaces.
    unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return vec![0u8; bytes].leak();
        }
        let thp = libc::madvise(p, len, libc::MADV_HUGEPAGE) == 0;
        if std::env::var_os("PETREL_BENCH_NO_THP").is_some() {
            libc::madvise(p, len, libc::MADV_NOHUGEPAGE);
        } else if !thp {
            eprintln!("bench arena: transparent huge pages unavailable");
        }
        core::slice::from_raw_parts_mut(p.cast(), len)
    }
}
