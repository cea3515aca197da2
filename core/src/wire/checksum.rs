//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! All sums here are *ones' complement sums* folded to 16 bits, in network
//! byte order as numbers (the first byte of a pair is the high byte). A
//! checksum *field* holds the complement of the sum; a header verifies when
//! the sum over it, checksum field included, is `0xffff`.

use super::{Ipv4Address, Ipv6Address};

/// Fold a wide accumulator of 16-bit quantities into a 16-bit ones'
/// complement sum.
#[inline]
pub const fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Ones' complement sum of `data` (RFC 1071). An odd trailing byte is padded
/// with a zero byte, as the RFC prescribes.
///
/// Sums 32-bit big-endian words into a 64-bit accumulator (allowed by the
/// sum's associativity, RFC 1071 section 2) and folds at the end. Never
/// panics; inputs up to 2^34 bytes cannot overflow the accumulator.
pub fn data(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
    }
    fold(sum)
}

/// Ones' complement sum of several partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    let mut sum: u64 = 0;
    for s in sums {
        sum += u64::from(*s);
    }
    fold(sum)
}

/// Partial sum of the IPv4 pseudo-header (RFC 768): source, destination,
/// zero, protocol, and the transport length.
pub fn pseudo_header_v4(src: &Ipv4Address, dst: &Ipv4Address, protocol: u8, length: u16) -> u16 {
    let mut sum = u64::from(data(&src.0)) + u64::from(data(&dst.0));
    sum += u64::from(protocol);
    sum += u64::from(length);
    fold(sum)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source,
/// destination, 32-bit upper-layer length, three zero bytes, next header.
pub fn pseudo_header_v6(src: &Ipv6Address, dst: &Ipv6Address, next_header: u8, length: u32) -> u16 {
    let mut sum = u64::from(data(&src.0)) + u64::from(data(&dst.0));
    sum += u64::from(length >> 16) + u64::from(length & 0xffff);
    sum += u64::from(next_header);
    fold(sum)
}

/// Incrementally update a checksum *field* after one 16-bit word of the
/// covered data changed from `old` to `new` (RFC 1624, equation 3:
/// `HC' = ~(~HC + ~m + m')`).
///
/// The result is a valid checksum field for the changed data (`0x0000` and
/// `0xffff` are the same value in ones' complement, both accepted as input). A
/// UDP caller passes the result through [`udp_field`] before storing it.
#[inline]
pub fn update_word(field: u16, old: u16, new: u16) -> u16 {
    let sum = u64::from(!field) + u64::from(!old) + u64::from(new);
    !fold(sum)
}

/// Incrementally update a checksum field after the bytes `old` at an even
/// offset of the covered data were replaced by `new` of the same length.
/// Returns `None` when the lengths differ.
pub fn update_bytes(field: u16, old: &[u8], new: &[u8]) -> Option<u16> {
    if old.len() != new.len() {
        return None;
    }
    // ~HC + ~sum(old) + sum(new), RFC 1624 extended to several words.
    let sum = u64::from(!field) + u64::from(!data(old)) + u64::from(data(new));
    Some(!fold(sum))
}

/// Turn a computed UDP checksum into the value to transmit: a computed zero is
/// sent as `0xffff`, because zero on the wire means "no checksum" (RFC 768)
/// and is forbidden over IPv6 (RFC 8200).
#[inline]
pub const fn udp_field(checksum: u16) -> u16 {
    if checksum == 0 {
        0xffff
    } else {
        checksum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference implementation: the textbook 16-bit loop of RFC 1071 4.1.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < bytes.len() {
            sum += u32::from(bytes[i]) << 8 | u32::from(bytes[i + 1]);
            i += 2;
        }
        if i < bytes.len() {
            sum += u32::from(bytes[i]) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn ipv4_header_known_vector() {
        // A well-known IPv4 header whose checksum field is 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!data(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(data(&h), 0xffff);
    }

    #[test]
    fn odd_lengths_and_empty() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0xab, 0xcd, 0xef]), 0x9ace);
    }

    #[test]
    fn matches_reference_on_random_data() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = [0u8; 1500];
        for len in 0..buf.len() {
            for b in buf.iter_mut().take(len) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            assert_eq!(data(&buf[..len]), reference(&buf[..len]), "len {len}");
        }
        let ones = [0xffu8; 1500];
        assert_eq!(data(&ones), reference(&ones));
    }

    #[test]
    fn incremental_equals_recompute() {
        let mut x: u64 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut buf = [0u8; 64];
        for _ in 0..2000 {
            for b in buf.iter_mut() {
                *b = next() as u8;
            }
            let field = !data(&buf);
            let at = (next() as usize % 31) * 2;
            let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
            let new = next() as u16;
            buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let updated = update_word(field, old, new);
            // Verifies: sum over data plus field is all ones.
            assert_eq!(combine(&[data(&buf), updated]), 0xffff);
            let new4 = (next() as u32).to_be_bytes();
            let before = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            buf[at..at + 4].copy_from_slice(&new4);
            let updated2 = update_bytes(updated, &before, &new4).unwrap();
            assert_eq!(combine(&[data(&buf), updated2]), 0xffff);
        }
        assert_eq!(update_bytes(0, &[1], &[1, 2]), None);
    }

    #[test]
    fn udp_zero_is_sent_as_ones() {
        assert_eq!(udp_field(0), 0xffff);
        assert_eq!(udp_field(0x1234), 0x1234);
    }
}
