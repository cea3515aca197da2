//! Reply composition into a caller-provided `&mut [u8]`: no allocation, no
//! `format!`; integers are formatted by hand.

use super::number::{write_u64, U64_DIGITS_MAX};

/// The output buffer is full; nothing of the failed write was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A cursor over an output buffer. Every `put*` either writes all of its
/// bytes or nothing (and returns [`Full`]).
pub struct Writer<'o> {
    buf: &'o mut [u8],
    pos: usize,
}

impl<'o> Writer<'o> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'o mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    /// Bytes still free.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Drops everything written after `mark` (a previous [`Writer::pos`]).
    #[inline]
    pub fn rewind(&mut self, mark: usize) {
        if mark <= self.pos {
            self.pos = mark;
        }
    }

    /// The unwritten rest of the buffer, to fill directly; follow with
    /// [`Writer::advance`].
    #[inline]
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.pos..]
    }

    /// Marks `n` bytes of [`Writer::spare`] as written (clamped to the space).
    #[inline]
    pub fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Makes sure `n` bytes are free: the returned [`Room`] writes up to `n`
    /// bytes without a result to check. `Full` (and nothing written) when
    /// fewer are free.
    #[inline]
    pub fn reserve(&mut self, n: usize) -> Result<Room<'_, 'o>, Full> {
        if self.remaining() < n {
            return Err(Full);
        }
        Ok(Room { w: self, left: n })
    }

    /// Appends `bytes`.
    #[inline]
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let end = self.pos.checked_add(bytes.len()).ok_or(Full)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(Full)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    /// Appends as much of `bytes` as fits; returns the count written.
    #[inline]
    pub fn put_partial(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.remaining());
        self.buf[self.pos..self.pos + n].copy_from_slice(&bytes[..n]);
        self.pos += n;
        n
    }

    /// Appends one byte.
    #[inline]
    pub fn put_byte(&mut self, b: u8) -> Result<(), Full> {
        let dst = self.buf.get_mut(self.pos).ok_or(Full)?;
        *dst = b;
        self.pos += 1;
        Ok(())
    }

    /// Appends `v` in decimal.
    #[inline]
    pub fn put_u64(&mut self, v: u64) -> Result<(), Full> {
        let n = write_u64(v, &mut self.buf[self.pos..]).ok_or(Full)?;
        self.pos += n;
        Ok(())
    }

    /// Appends `v` in decimal with a leading `-` when negative.
    #[inline]
    pub fn put_i64(&mut self, v: i64) -> Result<(), Full> {
        let mark = self.pos;
        if v < 0 {
            self.put_byte(b'-')?;
        }
        self.put_u64(v.unsigned_abs())
            .inspect_err(|_| self.rewind(mark))
    }

    /// Appends `line` and `\r\n`.
    #[inline]
    pub fn line(&mut self, line: &[u8]) -> Result<(), Full> {
        let mark = self.pos;
        self.put(line)
            .and_then(|_| self.put(b"\r\n"))
            .inspect_err(|_| self.rewind(mark))
    }
}

/// Output space made sure of with [`Writer::reserve`]: writes into a `Room`
/// cannot fail, so a reply whose longest form was reserved up front is
/// written without a result to check.
///
/// The reservation is a budget, enforced: a write beyond it is cut at the
/// budget's end (never past it, never a panic), so a reservation too small for
/// what is written shows as a truncated reply in any test, however large the
/// buffer, instead of only when the buffer happens to be nearly full. Debug
/// builds also assert on it.
pub struct Room<'w, 'o> {
    w: &'w mut Writer<'o>,
    /// Bytes of the reservation not yet written.
    left: usize,
}

impl<'w, 'o> Room<'w, 'o> {
    /// Reserved bytes not yet written.
    #[inline]
    pub fn left(&self) -> usize {
        self.left
    }

    /// Appends `bytes`.
    #[inline]
    pub fn put(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= self.left, "write beyond the reservation");
        let n = bytes.len().min(self.left);
        let pos = self.w.pos;
        if let Some(dst) = self.w.buf.get_mut(pos..pos + n) {
            dst.copy_from_slice(&bytes[..n]);
            self.w.pos += n;
            self.left -= n;
        }
    }

    /// Appends one byte.
    #[inline]
    pub fn put_byte(&mut self, b: u8) {
        self.put(&[b]);
    }

    /// Appends `v` in decimal.
    #[inline]
    pub fn put_u64(&mut self, v: u64) {
        let pos = self.w.pos;
        let fits = self.w.buf.get_mut(pos..pos + self.left);
        if let Some(n) = fits.and_then(|dst| write_u64(v, dst)) {
            self.w.pos += n;
            self.left -= n;
        } else {
            // beyond the reservation: cut, as `put` does
            let mut digits = [0u8; U64_DIGITS_MAX];
            let n = write_u64(v, &mut digits).unwrap_or(0);
            self.put(&digits[..n]);
        }
    }

    /// Appends `v` in decimal with a leading `-` when negative.
    #[inline]
    pub fn put_i64(&mut self, v: i64) {
        if v < 0 {
            self.put_byte(b'-');
        }
        self.put_u64(v.unsigned_abs());
    }

    /// Appends `line` and `\r\n`.
    #[inline]
    pub fn line(&mut self, line: &[u8]) {
        self.put(line);
        self.put(b"\r\n");
    }

    /// Ends the reservation and gives the writer back, e.g. to copy a value
    /// that may not fit with [`Writer::put_partial`]. Nothing more can be
    /// written through this `Room`.
    #[inline]
    pub fn release(&mut self) -> &mut Writer<'o> {
        self.left = 0;
        self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing() {
        let mut buf = [0u8; 8];
        let mut w = Writer::new(&mut buf);
        w.put(b"VALUE").unwrap();
        assert_eq!(w.put(b" abcd"), Err(Full));
        assert_eq!(w.pos(), 5);
        assert_eq!(w.line(b"xy"), Err(Full));
        assert_eq!(w.pos(), 5);
        w.put_u64(42).unwrap();
        assert_eq!(w.put_partial(b"xyz"), 1);
        assert_eq!(&buf, b"VALUE42x");
    }

    #[test]
    fn room_writes_what_was_reserved() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        w.put(b"xx").unwrap();
        assert!(w.reserve(31).is_err(), "only 30 bytes are free");
        assert_eq!(w.pos(), 2);
        let mut r = w.reserve(30).unwrap();
        r.put(b"VA ");
        r.put_u64(18446744073709551615);
        r.put_byte(b' ');
        r.put_i64(-1);
        assert_eq!(r.left(), 4);
        r.line(b"");
        assert_eq!(r.left(), 2);
        let w = r.release();
        assert_eq!(w.put_partial(b"abc"), 2);
        assert_eq!(w.written(), b"xxVA 18446744073709551615 -1\r\nab");
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn room_cuts_a_write_beyond_the_reservation() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        let mut r = w.reserve(4).unwrap();
        r.put(b"STORED");
        r.put_u64(12);
        assert_eq!(r.left(), 0);
        assert_eq!(w.written(), b"STOR");
    }

    #[test]
    fn signed() {
        let mut buf = [0u8; 24];
        let mut w = Writer::new(&mut buf);
        w.put_i64(-1).unwrap();
        w.put_byte(b' ').unwrap();
        w.put_i64(i64::MIN).unwrap();
        let n = w.pos();
        assert_eq!(&buf[..n], b"-1 -9223372036854775808");
    }
}
