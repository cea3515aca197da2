//! Reply composition into a caller-provided `&mut [u8]`: no allocation, no
//! `format!`; integers are formatted by hand.

use super::number::write_u64;

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
