//! Base64 for meta-command keys (`b` flag), with memcached's decoder rules:
//! characters outside the alphabet are skipped, the count of alphabet
//! characters must be a non-zero multiple of four, and padding ends the input.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const INVALID: u8 = 0x80;

#[inline]
fn decode_char(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        b'=' => 0,
        _ => INVALID,
    }
}

/// Decodes `src` into `dst`, returning the decoded length, or `None` where
/// memcached's decoder returns 0 (nothing to decode, bad count, bad padding,
/// or `dst` shorter than `src.len() / 4 * 3`).
pub fn decode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let count = src.iter().filter(|&&c| decode_char(c) != INVALID).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > dst.len() {
        return None;
    }
    let mut pos = 0usize;
    let mut block = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for &c in src {
        let v = decode_char(c);
        if v == INVALID {
            continue;
        }
        if c == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            dst[pos] = (block[0] << 2) | (block[1] >> 4);
            dst[pos + 1] = (block[1] << 4) | (block[2] >> 2);
            dst[pos + 2] = (block[2] << 6) | block[3];
            pos += 3;
            n = 0;
            if pad > 0 {
                match pad {
                    1 => pos -= 1,
                    2 => pos -= 2,
                    _ => return None,
                }
                break;
            }
        }
    }
    if pos == 0 {
        None
    } else {
        Some(pos)
    }
}

/// Bytes needed to encode `len` bytes.
pub const fn encoded_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

/// Encodes `src` with padding into `dst`; `None` if `dst` is too short.
pub fn encode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let need = encoded_len(src.len());
    let out = dst.get_mut(..need)?;
    for (chunk, o) in src.chunks(3).zip(out.chunks_mut(4)) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        o[0] = ALPHABET[usize::from(b0 >> 2)];
        o[1] = ALPHABET[usize::from(((b0 & 0x03) << 4) | (b1 >> 4))];
        o[2] = if chunk.len() > 1 {
            ALPHABET[usize::from(((b1 & 0x0f) << 2) | (b2 >> 6))]
        } else {
            b'='
        };
        o[3] = if chunk.len() > 2 {
            ALPHABET[usize::from(b2 & 0x3f)]
        } else {
            b'='
        };
    }
    Some(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut enc = [0u8; 16];
        let mut dec = [0u8; 16];
        for src in [&b"a"[..], b"ab", b"abc", b"abcd", b"\x00\xff\x10"] {
            let n = encode(src, &mut enc).unwrap();
            let m = decode(&enc[..n], &mut dec).unwrap();
            assert_eq!(&dec[..m], src);
        }
        let n = encode(b"abc", &mut enc).unwrap();
        assert_eq!(&enc[..n], b"YWJj");
    }

    #[test]
    fn memcached_rules() {
        let mut dec = [0u8; 16];
        assert_eq!(decode(b"YWJ", &mut dec), None);
        assert_eq!(decode(b"", &mut dec), None);
        assert_eq!(decode(b"====", &mut dec), None);
        // characters outside the alphabet are skipped
        assert_eq!(decode(b"Y!WJj", &mut dec), Some(3));
        assert_eq!(&dec[..3], b"abc");
        assert_eq!(decode(b"YQ==", &mut dec), Some(1));
        assert_eq!(decode(b"YWJjYQ==", &mut dec[..2]), None);
    }
}
