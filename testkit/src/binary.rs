//! memcached binary-protocol request frames for tests: the 24-byte header (magic 0x80, opcode,
//! key length, extras length, data type 0, vbucket 0, total body length, opaque, CAS 0) and a whole
//! request built from it.

/// The first 16 bytes of a request header: magic 0x80 through the opaque. The CAS (8 bytes)
/// follows; callers that send a CAS append their own.
pub fn header(op: u8, keylen: u16, extlen: u8, bodylen: u32, opaque: u32) -> Vec<u8> {
    let mut b = vec![0x80, op];
    b.extend_from_slice(&keylen.to_be_bytes());
    b.push(extlen);
    b.extend_from_slice(&[0, 0, 0]);
    b.extend_from_slice(&bodylen.to_be_bytes());
    b.extend_from_slice(&opaque.to_be_bytes());
    b
}

/// A whole request with CAS 0: header, then extras, key and value.
pub fn request(op: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let len = (extras.len() + key.len() + value.len()) as u32;
    let mut b = header(op, key.len() as u16, extras.len() as u8, len, opaque);
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(extras);
    b.extend_from_slice(key);
    b.extend_from_slice(value);
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_lays_out_the_header_then_extras_key_value() {
        let r = super::request(0x01, b"k", &[1, 2, 3, 4], b"vv", 7);
        assert_eq!(r.len(), 24 + 4 + 1 + 2);
        assert_eq!(&r[..8], &[0x80, 0x01, 0, 1, 4, 0, 0, 0]);
        assert_eq!(&r[8..12], &7u32.to_be_bytes());
        assert_eq!(&r[12..16], &7u32.to_be_bytes());
        assert_eq!(&r[16..24], &[0; 8]);
        assert_eq!(&r[24..], &[1, 2, 3, 4, b'k', b'v', b'v']);
    }
}
