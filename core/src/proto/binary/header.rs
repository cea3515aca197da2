//! The 24-byte header every binary-protocol packet starts with, as a view
//! over a buffer (smoltcp style: `new_unchecked` / `check_len` /
//! `new_checked`; after `check_len` succeeds no accessor can panic).
//!
//! ```text
//!  byte  0        1        2        3
//!      +--------+--------+--------+--------+
//!    0 | magic  | opcode |    key length   |
//!      +--------+--------+--------+--------+
//!    4 | extlen |datatype| vbucket/status  |
//!      +--------+--------+--------+--------+
//!    8 |        total body length          |
//!      +--------+--------+--------+--------+
//!   12 |             opaque                |
//!      +--------+--------+--------+--------+
//!   16 |              CAS                  |
//!   20 |                                   |
//!      +--------+--------+--------+--------+
//! ```
//!
//! Every multi-byte field is big-endian. Requests carry the vbucket id in
//! bytes 6..8 (memcached ignores it), responses the status. The body is
//! extras, then key, then value: `body length = extlen + keylen + value`.

/// Bytes of a request or response header.
pub const HEADER_BYTES: usize = 24;

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const MAGIC: usize = 0;
    pub const OPCODE: usize = 1;
    pub const KEY_LENGTH: Field = 2..4;
    pub const EXTRAS_LENGTH: usize = 4;
    pub const DATA_TYPE: usize = 5;
    pub const VBUCKET_OR_STATUS: Field = 6..8;
    pub const BODY_LENGTH: Field = 8..12;
    pub const OPAQUE: Field = 12..16;
    pub const CAS: Field = 16..24;
}

/// The buffer is shorter than [`HEADER_BYTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated;

/// A binary-protocol header over `T` (at least [`HEADER_BYTES`] once
/// checked; bytes after the header are not looked at).
#[derive(Clone, Copy, Debug)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Header { buffer }
    }

    /// Wraps `buffer`, checking that it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Ensures that no accessor panics (the buffer holds a whole header).
    pub fn check_len(&self) -> Result<(), Truncated> {
        if self.buffer.as_ref().len() < HEADER_BYTES {
            Err(Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Magic byte: 0x80 for requests, 0x81 for responses.
    pub fn magic(&self) -> u8 {
        self.b()[field::MAGIC]
    }

    /// Command opcode.
    pub fn opcode(&self) -> u8 {
        self.b()[field::OPCODE]
    }

    /// Key length.
    pub fn key_len(&self) -> u16 {
        let b = &self.b()[field::KEY_LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Extras length.
    pub fn extras_len(&self) -> u8 {
        self.b()[field::EXTRAS_LENGTH]
    }

    /// Data type (0: raw bytes; memcached ignores it in requests).
    pub fn data_type(&self) -> u8 {
        self.b()[field::DATA_TYPE]
    }

    /// vbucket id (request) or status (response).
    pub fn vbucket_or_status(&self) -> u16 {
        let b = &self.b()[field::VBUCKET_OR_STATUS];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Total body length (extras + key + value).
    pub fn body_len(&self) -> u32 {
        let b = &self.b()[field::BODY_LENGTH];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Opaque: copied from request to response unchanged.
    pub fn opaque(&self) -> u32 {
        let b = &self.b()[field::OPAQUE];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// CAS value.
    pub fn cas(&self) -> u64 {
        let b = &self.b()[field::CAS];
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_be_bytes(a)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the magic byte.
    pub fn set_magic(&mut self, v: u8) {
        self.m()[field::MAGIC] = v;
    }

    /// Sets the opcode.
    pub fn set_opcode(&mut self, v: u8) {
        self.m()[field::OPCODE] = v;
    }

    /// Sets the key length.
    pub fn set_key_len(&mut self, v: u16) {
        self.m()[field::KEY_LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the extras length.
    pub fn set_extras_len(&mut self, v: u8) {
        self.m()[field::EXTRAS_LENGTH] = v;
    }

    /// Sets the data type.
    pub fn set_data_type(&mut self, v: u8) {
        self.m()[field::DATA_TYPE] = v;
    }

    /// Sets the vbucket id (request) or status (response).
    pub fn set_vbucket_or_status(&mut self, v: u16) {
        self.m()[field::VBUCKET_OR_STATUS].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the total body length.
    pub fn set_body_len(&mut self, v: u32) {
        self.m()[field::BODY_LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the opaque.
    pub fn set_opaque(&mut self, v: u32) {
        self.m()[field::OPAQUE].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the CAS value.
    pub fn set_cas(&mut self, v: u64) {
        self.m()[field::CAS].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `get "Hello"` from memcached's binary protocol documentation.
    static GET_HELLO: [u8; 29] = [
        0x80, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, b'H', b'e', b'l', b'l', b'o',
    ];

    #[test]
    fn deconstruct() {
        let h = Header::new_checked(&GET_HELLO[..]).unwrap();
        assert_eq!(h.magic(), 0x80);
        assert_eq!(h.opcode(), 0x00);
        assert_eq!(h.key_len(), 5);
        assert_eq!(h.extras_len(), 0);
        assert_eq!(h.data_type(), 0);
        assert_eq!(h.vbucket_or_status(), 0);
        assert_eq!(h.body_len(), 5);
        assert_eq!(h.opaque(), 0);
        assert_eq!(h.cas(), 0);
    }

    #[test]
    fn construct_round_trips() {
        let mut buf = [0u8; HEADER_BYTES];
        let mut h = Header::new_unchecked(&mut buf[..]);
        h.set_magic(0x81);
        h.set_opcode(0x0c);
        h.set_key_len(0x0102);
        h.set_extras_len(4);
        h.set_data_type(0);
        h.set_vbucket_or_status(0x0081);
        h.set_body_len(0x0a0b0c0d);
        h.set_opaque(0xdeadbeef);
        h.set_cas(0x0102030405060708);
        assert_eq!(
            buf,
            [
                0x81, 0x0c, 0x01, 0x02, 0x04, 0x00, 0x00, 0x81, 0x0a, 0x0b, 0x0c, 0x0d, 0xde, 0xad,
                0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8
            ]
        );
        let h = Header::new_checked(&buf[..]).unwrap();
        assert_eq!(h.cas(), 0x0102030405060708);
        assert_eq!(h.opaque(), 0xdeadbeef);
        assert_eq!(h.body_len(), 0x0a0b0c0d);
    }

    #[test]
    fn impossible_lengths() {
        for n in 0..HEADER_BYTES {
            assert_eq!(
                Header::new_checked(&GET_HELLO[..n]).map(|_| ()),
                Err(Truncated)
            );
        }
    }
}
