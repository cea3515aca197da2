//! Writing binary-protocol responses into a [`Writer`].
//!
//! A response is a header, extras, key and value. These helpers write the
//! header and fixed parts; a large value is copied by the caller (possibly
//! across several output buffers). Each helper writes all of its bytes or
//! none (`Err(Full)`, the writer unchanged).

use super::header::{Header, HEADER_BYTES};
use super::{Status, RESPONSE_MAGIC};
use crate::proto::compose::{Full, Writer};

/// The header fields of one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The request's opcode.
    pub opcode: u8,
    /// Status.
    pub status: Status,
    /// Extras length.
    pub extras_len: u8,
    /// Key length.
    pub key_len: u16,
    /// Extras + key + value length.
    pub body_len: u32,
    /// The request's opaque.
    pub opaque: u32,
    /// CAS (0 when none).
    pub cas: u64,
}

impl ResponseHeader {
    /// A header with no body and no CAS.
    pub const fn empty(opcode: u8, opaque: u32, status: Status) -> Self {
        ResponseHeader {
            opcode,
            status,
            extras_len: 0,
            key_len: 0,
            body_len: 0,
            opaque,
            cas: 0,
        }
    }

    /// The 24 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        let mut h = Header::new_unchecked(&mut b[..]);
        h.set_magic(RESPONSE_MAGIC);
        h.set_opcode(self.opcode);
        h.set_key_len(self.key_len);
        h.set_extras_len(self.extras_len);
        h.set_data_type(0);
        h.set_vbucket_or_status(self.status as u16);
        h.set_body_len(self.body_len);
        h.set_opaque(self.opaque);
        h.set_cas(self.cas);
        b
    }

    /// Writes the header.
    pub fn emit(&self, w: &mut Writer<'_>) -> Result<(), Full> {
        w.put(&self.to_bytes())
    }
}

/// Bytes of [`put_error`]'s packet for `status`.
pub fn error_len(status: Status) -> usize {
    HEADER_BYTES + status.message().len()
}

/// Writes an error (or bodiless success) packet: the header and the status
/// message as the body, as memcached's `write_bin_error` does.
pub fn put_error(w: &mut Writer<'_>, opcode: u8, opaque: u32, status: Status) -> Result<(), Full> {
    if w.remaining() < error_len(status) {
        return Err(Full);
    }
    let msg = status.message();
    let mut h = ResponseHeader::empty(opcode, opaque, status);
    h.body_len = msg.len() as u32;
    h.emit(w)?;
    w.put(msg)
}

/// Writes a success packet whose body is `value` (no extras, no key).
pub fn put_value(
    w: &mut Writer<'_>,
    opcode: u8,
    opaque: u32,
    cas: u64,
    value: &[u8],
) -> Result<(), Full> {
    if w.remaining() < HEADER_BYTES + value.len() {
        return Err(Full);
    }
    let mut h = ResponseHeader::empty(opcode, opaque, Status::NoError);
    h.body_len = value.len() as u32;
    h.cas = cas;
    h.emit(w)?;
    w.put(value)
}

/// Writes one `stat` packet: `prefix` + `name` as the key, `value` as the
/// value.
pub fn put_stat(
    w: &mut Writer<'_>,
    opaque: u32,
    prefix: &[u8],
    name: &[u8],
    value: &[u8],
) -> Result<(), Full> {
    let key_len = prefix.len() + name.len();
    if w.remaining() < HEADER_BYTES + key_len + value.len() {
        return Err(Full);
    }
    let mut h = ResponseHeader::empty(super::opcode::STAT, opaque, Status::NoError);
    h.key_len = key_len as u16;
    h.body_len = (key_len + value.len()) as u32;
    h.emit(w)?;
    w.put(prefix)?;
    w.put(name)?;
    w.put(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_packet_matches_memcached() {
        // memcached 1.6.18's reply to `get foo` on a miss, opaque 0xdeadbeef
        let expect: [u8; 33] = [
            0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x09, 0xde, 0xad,
            0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, b'N', b'o', b't', b' ', b'f', b'o', b'u', b'n',
            b'd',
        ];
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        put_error(&mut w, 0x00, 0xdeadbeef, Status::KeyNotFound).unwrap();
        assert_eq!(w.written(), &expect[..]);
    }

    #[test]
    fn all_or_nothing() {
        let mut buf = [0u8; 30];
        let mut w = Writer::new(&mut buf);
        assert_eq!(put_error(&mut w, 0, 0, Status::UnknownCommand), Err(Full));
        assert_eq!(w.pos(), 0);
        assert_eq!(put_stat(&mut w, 0, b"", b"pid", b"1234"), Err(Full));
        assert_eq!(w.pos(), 0);
        assert_eq!(put_value(&mut w, 0x0b, 1, 0, b"1.6"), Ok(()));
        assert_eq!(w.pos(), 27);
    }

    #[test]
    fn stat_packet() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        put_stat(&mut w, 7, b"p", b"id", b"42").unwrap();
        let out = w.written();
        let h = Header::new_checked(out).unwrap();
        assert_eq!(
            (h.magic(), h.opcode(), h.key_len(), h.body_len(), h.opaque()),
            (0x81, 0x10, 3, 5, 7)
        );
        assert_eq!(&out[24..], b"pid42");
    }
}
