//! Fixed-size byte buffers backed by anonymous memory mappings.
//!
//! A connection's buffers are sized for the worst case (one maximum-size item
//! plus its command line) but most connections only ever touch their first
//! page. Mapping them with `mmap` means untouched pages cost no memory, and
//! [`PageBuf::release_from`] hands pages back to the kernel after a large
//! request, so resident memory follows what connections actually use. The
//! buffer never grows: its size is fixed when it is created (at accept).

use std::io;
use std::ptr::NonNull;

/// The size of a memory page on every Linux target Petrel supports for this
/// purpose (the kernel may use larger pages; 4 KiB alignment is always valid).
const PAGE_BYTES: usize = 4096;

/// A zero-initialised, fixed-length byte buffer in its own anonymous mapping.
pub struct PageBuf {
    ptr: NonNull<u8>,
    len: usize,
    mapped_bytes: usize,
}

// SAFETY: PageBuf exclusively owns its mapping, like a Box<[u8]>.
unsafe impl Send for PageBuf {}

impl PageBuf {
    /// Maps a buffer of exactly `len` bytes (at least one). Pages are only
    /// backed by memory once written.
    pub fn new(len: usize) -> io::Result<Self> {
        let len = len.max(1);
        let mapped_bytes = len.div_ceil(PAGE_BYTES) * PAGE_BYTES;
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(PageBuf {
            ptr,
            len,
            mapped_bytes,
        })
    }

    /// The buffer's fixed length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a buffer holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Returns the whole pages at or after `offset` to the kernel. Their
    /// contents become zero; bytes before `offset` are kept.
    pub fn release_from(&mut self, offset: usize) {
        let start = offset.div_ceil(PAGE_BYTES) * PAGE_BYTES;
        if start >= self.mapped_bytes {
            return;
        }
        // SAFETY: [start, mapped_bytes) lies inside our own mapping and start
        // is page aligned; MADV_DONTNEED on private anonymous memory only
        // zeroes those pages, and no reference into them outlives `&mut self`.
        let rc = unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(start).cast(),
                self.mapped_bytes - start,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            // Only a performance hint: the buffer stays valid either way.
            log::debug!(
                "madvise(MADV_DONTNEED) failed: {}",
                io::Error::last_os_error()
            );
        }
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr points to `len` initialised (zero-filled) bytes that
        // live as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in new(); no slice into it
        // can outlive self.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.mapped_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_fixed_length_and_release_keeps_prefix() {
        let mut b = PageBuf::new(3 * PAGE_BYTES + 10).unwrap();
        assert_eq!(b.len(), 3 * PAGE_BYTES + 10);
        assert!(b.iter().all(|&x| x == 0));
        b.fill(7);
        b.release_from(10);
        assert!(b[..10].iter().all(|&x| x == 7), "prefix kept");
        // Pages after the first page boundary at or after 10 are zero again.
        assert!(b[PAGE_BYTES..].iter().all(|&x| x == 0));
        assert!(b[10..PAGE_BYTES].iter().all(|&x| x == 7));
    }
}
