//! Carving one caller-provided byte region into the store's regions.
//!
//! [`Carver`] hands out consecutive, non-overlapping pieces of a `&mut [u8]`
//! as byte slices or as slices of plain-old-data types ([`Pod`]), aligned as
//! the type requires. All capacity is fixed when the store is built.

/// Types for which every bit pattern is a valid value and which contain no
/// padding, pointers or interior mutability: they can be viewed in place
/// over arena bytes.
///
/// # Safety
/// Implementors must be `repr(C)` (or `repr(transparent)`) aggregates of
/// integers (or arrays of them) with no padding bytes and no invariants.
pub unsafe trait Pod: Copy {}

// SAFETY: primitive integers have no invalid bit patterns.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}

/// Bytes to add to `addr` to reach a multiple of `align` (a power of two).
#[inline]
pub const fn padding_for(addr: usize, align: usize) -> usize {
    (align - (addr & (align - 1))) & (align - 1)
}

/// Hands out pieces of a byte region, front to back.
#[derive(Debug)]
pub struct Carver<'a> {
    rest: &'a mut [u8],
}

impl<'a> Carver<'a> {
    /// Start carving `region`.
    pub fn new(region: &'a mut [u8]) -> Self {
        Self { rest: region }
    }

    /// Bytes not handed out yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Skip bytes so that the next piece starts at a multiple of `align`.
    /// Returns `None` if the region is too small.
    pub fn align_to(&mut self, align: usize) -> Option<()> {
        let pad = padding_for(self.rest.as_ptr() as usize, align);
        self.bytes(pad).map(|_| ())
    }

    /// The next `n` bytes, or `None` if fewer remain.
    pub fn bytes(&mut self, n: usize) -> Option<&'a mut [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let rest = core::mem::take(&mut self.rest);
        let (head, tail) = rest.split_at_mut(n);
        self.rest = tail;
        Some(head)
    }

    /// The next `count` values of `T`, aligned for `T`, zero-filled.
    /// Returns `None` if the region is too small.
    pub fn slice<T: Pod>(&mut self, count: usize) -> Option<&'a mut [T]> {
        self.align_to(core::mem::align_of::<T>())?;
        let n = count.checked_mul(core::mem::size_of::<T>())?;
        let bytes = self.bytes(n)?;
        bytes.fill(0);
        let ptr = bytes.as_mut_ptr();
        debug_assert_eq!(ptr as usize % core::mem::align_of::<T>(), 0);
        // SAFETY: `bytes` is an exclusively borrowed region of exactly
        // `count * size_of::<T>()` bytes for 'a, aligned for T (align_to
        // above), and all-zero bytes are a valid T because T: Pod.
        Some(unsafe { core::slice::from_raw_parts_mut(ptr.cast::<T>(), count) })
    }
}

impl<'a> Carver<'a> {
    /// The next `count` values of `T`, aligned for `T`, with the bytes left
    /// as they are (reattaching to a region written earlier). Returns `None`
    /// if the region is too small.
    pub fn slice_in_place<T: Pod>(&mut self, count: usize) -> Option<&'a mut [T]> {
        self.align_to(core::mem::align_of::<T>())?;
        let n = count.checked_mul(core::mem::size_of::<T>())?;
        let bytes = self.bytes(n)?;
        let ptr = bytes.as_mut_ptr();
        debug_assert_eq!(ptr as usize % core::mem::align_of::<T>(), 0);
        // SAFETY: as in `slice`: exclusive, aligned, exactly sized; any bit
        // pattern is a valid T because T: Pod, so the old bytes are too.
        Some(unsafe { core::slice::from_raw_parts_mut(ptr.cast::<T>(), count) })
    }
}

/// Start loading the cache line holding `addr`. A pure hint: nothing is
/// read or written, whatever the address (a no-op off x86_64).
#[inline(always)]
pub fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint; it never faults and has no
    // architectural effect, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// The bytes of a slice of plain-old-data values (for checksums).
pub fn pod_bytes<T: Pod>(values: &[T]) -> &[u8] {
    // SAFETY: T: Pod has no padding, so every byte of the slice is
    // initialised; u8 has alignment 1 and the length is the slice's size.
    unsafe {
        core::slice::from_raw_parts(values.as_ptr().cast::<u8>(), core::mem::size_of_val(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct Line([u64; 8]);
    // SAFETY: an array of u64, no padding (64 bytes, align 64).
    unsafe impl Pod for Line {}

    #[test]
    fn carves_aligned_disjoint_pieces() {
        let mut buf = [0xFFu8; 512];
        let mut c = Carver::new(&mut buf[3..]);
        let a = c.bytes(5).unwrap();
        a.fill(1);
        let lines = c.slice::<Line>(2).unwrap();
        assert_eq!(lines.as_ptr() as usize % 64, 0);
        assert_eq!(lines[1].0, [0; 8]);
        lines[0].0[0] = 7;
        let words = c.slice::<u32>(3).unwrap();
        assert_eq!(words, &[0, 0, 0]);
        assert!(c.bytes(10_000).is_none());
        assert!(c.slice::<Line>(100).is_none());
    }

    #[test]
    fn padding_math() {
        assert_eq!(padding_for(64, 64), 0);
        assert_eq!(padding_for(65, 64), 63);
        assert_eq!(padding_for(7, 8), 1);
    }
}
