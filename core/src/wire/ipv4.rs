//! IPv4 headers (RFC 791). Options and fragments are recognised and refused.
//!
//! ```text
//!  0       4       8              16    19                        31
//!  +-------+-------+--------------+-----+--------------------------+
//!  |version|  IHL  |  DSCP/ECN    |        total length            |
//!  +-------+-------+--------------+-----+--------------------------+
//!  |        identification        |flags|     fragment offset      |
//!  +---------------+--------------+-----+--------------------------+
//!  |      TTL      |   protocol   |       header checksum          |
//!  +---------------+--------------+--------------------------------+
//!  |                        source address                         |
//!  +---------------------------------------------------------------+
//!  |                      destination address                      |
//!  +---------------------------------------------------------------+
//! ```

use super::checksum;
use super::field::{self, Field};
use super::{Error, Result};

mod fields {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_BYTES: usize = 20;

/// "Don't fragment" flag, in the flags/offset word.
pub const IPV4_FLAG_DF: u16 = 0x4000;
/// "More fragments" flag, in the flags/offset word.
pub const IPV4_FLAG_MF: u16 = 0x2000;
/// Fragment offset (in 8-byte units), in the flags/offset word.
pub const IPV4_FRAGMENT_OFFSET_MASK: u16 = 0x1fff;

/// Default TTL of replies we originate.
pub const IPV4_DEFAULT_TTL: u8 = 64;

/// An IPv4 address, in network byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ipv4Address(pub [u8; 4]);

impl Ipv4Address {
    /// Build from four octets, `a.b.c.d`.
    pub const fn new(a: u8, b: u8, c: u8, d: u8) -> Self {
        Ipv4Address([a, b, c, d])
    }
}

view! {
    /// A view of an IPv4 packet in a buffer. Accessors never panic (see the
    /// module promise in [`crate::wire`]).
    Ipv4Packet,
    /// The payload: bytes from the end of the header to `total length`
    /// (empty when the lengths do not fit the buffer).
    payload
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Bytes from the end of the header to `total length`.
    fn payload_range(&self) -> Field {
        self.header_len()..usize::from(self.total_len())
    }

    /// Check that the header and the `total length` the header announces lie
    /// in the buffer (the buffer may be longer: Ethernet padding).
    ///
    /// `Truncated` when the buffer is shorter than 20 bytes, the header
    /// length or the total length; `BadLength` when IHL < 5 or the total
    /// length is shorter than the header.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < IPV4_HEADER_BYTES {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < IPV4_HEADER_BYTES {
            return Err(Error::BadLength);
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::BadLength);
        }
        if len < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The version nibble (4 for IPv4).
    pub fn version(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), fields::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(field::u8_at(self.buffer.as_ref(), fields::VER_IHL) & 0x0f) * 4
    }

    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), fields::DSCP_ECN)
    }

    /// Total length (header + payload) in bytes.
    pub fn total_len(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::IDENT)
    }

    /// The flags and fragment offset word.
    pub fn flags_fragment(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::FLG_OFF)
    }

    /// True when this is a fragment: MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        self.flags_fragment() & (IPV4_FLAG_MF | IPV4_FRAGMENT_OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), fields::TTL)
    }

    /// Protocol of the payload (17 = UDP).
    pub fn protocol(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), fields::PROTOCOL)
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Address {
        Ipv4Address(field::array_at(self.buffer.as_ref(), fields::SRC_ADDR))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Address {
        Ipv4Address(field::array_at(self.buffer.as_ref(), fields::DST_ADDR))
    }

    /// True when the header checksum verifies (over `header_len` bytes).
    /// False on a buffer shorter than the header.
    pub fn verify_checksum(&self) -> bool {
        match self.buffer.as_ref().get(..self.header_len()) {
            Some(h) if h.len() >= IPV4_HEADER_BYTES => checksum::data(h) == 0xffff,
            _ => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        field::set_u8_at(self.buffer.as_mut(), fields::VER_IHL, 0x40 | ihl);
    }

    /// Set the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        field::set_u8_at(self.buffer.as_mut(), fields::DSCP_ECN, v);
    }

    /// Set the total length.
    pub fn set_total_len(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::LENGTH, v);
    }

    /// Set the identification.
    pub fn set_ident(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::IDENT, v);
    }

    /// Set the flags and fragment offset word.
    pub fn set_flags_fragment(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::FLG_OFF, v);
    }

    /// Set the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        field::set_u8_at(self.buffer.as_mut(), fields::TTL, v);
    }

    /// Set the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        field::set_u8_at(self.buffer.as_mut(), fields::PROTOCOL, v);
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::CHECKSUM, v);
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Address) {
        field::set_bytes_at(self.buffer.as_mut(), fields::SRC_ADDR, &a.0);
    }

    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Address) {
        field::set_bytes_at(self.buffer.as_mut(), fields::DST_ADDR, &a.0);
    }

    /// Compute and store the header checksum over `header_len` bytes. Does
    /// nothing when the header does not fit the buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let sum = match self.buffer.as_ref().get(..hl) {
            Some(h) if h.len() >= IPV4_HEADER_BYTES => checksum::data(h),
            _ => return,
        };
        self.set_checksum(!sum);
    }
}

/// The high-level form of an IPv4 header this module accepts (no options,
/// not a fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Address,
    /// Destination address.
    pub dst_addr: Ipv4Address,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes (total length - 20).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Check and read a header.
    ///
    /// Errors, in the order checked: `Truncated` (< 20 bytes), `BadVersion`,
    /// `Ipv4Options` (IHL > 5), then [`Ipv4Packet::check_len`]'s errors,
    /// `Fragment`, and `BadIpChecksum` when `verify_checksum` is set.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>, verify_checksum: bool) -> Result<Self> {
        if packet.buffer.as_ref().len() < IPV4_HEADER_BYTES {
            return Err(Error::Truncated);
        }
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        if packet.header_len() > IPV4_HEADER_BYTES {
            return Err(Error::Ipv4Options);
        }
        packet.check_len()?;
        if packet.is_fragment() {
            return Err(Error::Fragment);
        }
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::BadIpChecksum);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - IPV4_HEADER_BYTES,
            ttl: packet.ttl(),
        })
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        IPV4_HEADER_BYTES
    }

    /// Write a 20-byte header (DSCP 0, identification 0, DF set) with its
    /// checksum. `BufferTooSmall` when the buffer cannot hold the header,
    /// `PayloadTooLarge` when the total length exceeds 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < IPV4_HEADER_BYTES {
            return Err(Error::BufferTooSmall);
        }
        let total = match u16::try_from(IPV4_HEADER_BYTES + self.payload_len) {
            Ok(t) => t,
            Err(_) => return Err(Error::PayloadTooLarge),
        };
        packet.set_version_and_header_len(IPV4_HEADER_BYTES);
        packet.set_dscp_ecn(0);
        packet.set_total_len(total);
        packet.set_ident(0);
        packet.set_flags_fragment(IPV4_FLAG_DF);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata;

    /// The IPv4 packet of the generated request frame (see testdata).
    fn request() -> &'static [u8] {
        &testdata::REQ_V4_GET_FOO[14..]
    }

    #[test]
    fn deconstruct() {
        let p = Ipv4Packet::new_checked(request()).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(usize::from(p.total_len()), request().len());
        assert_eq!(p.ident(), 0x1234);
        assert_eq!(p.flags_fragment(), IPV4_FLAG_DF);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), Ipv4Address::new(198, 18, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Address::new(198, 18, 0, 2));
        assert_eq!(p.checksum(), testdata::REQ_V4_GET_FOO_IP_CSUM);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), request().len() - 20);
    }

    #[test]
    fn parse_and_emit_round_trip() {
        let p = Ipv4Packet::new_checked(request()).unwrap();
        let repr = Ipv4Repr::parse(&p, true).unwrap();
        assert_eq!(repr.payload_len, request().len() - 20);
        let mut buf = [0u8; 20];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        // Same header except the identification we do not keep.
        let mut expected = [0u8; 20];
        expected.copy_from_slice(&request()[..20]);
        expected[4] = 0;
        expected[5] = 0;
        let mut e = Ipv4Packet::new_unchecked(&mut expected[..]);
        e.fill_checksum();
        assert_eq!(buf, expected);
        assert!(Ipv4Packet::new_unchecked(&buf[..]).verify_checksum());
    }

    #[test]
    fn padding_after_total_length_is_not_payload() {
        let mut buf = [0u8; 80];
        let n = request().len();
        buf[..n].copy_from_slice(request());
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), &request()[20..]);
    }

    fn mutated(f: impl FnOnce(&mut Ipv4Packet<&mut [u8]>), refill: bool) -> [u8; 64] {
        let mut buf = [0u8; 64];
        let n = request().len();
        buf[..n].copy_from_slice(request());
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..n]);
        f(&mut p);
        if refill {
            p.fill_checksum();
        }
        buf
    }

    fn parse(buf: &[u8]) -> Result<Ipv4Repr> {
        Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&buf[..request().len()]), true)
    }

    #[test]
    fn malformed() {
        for n in 0..20 {
            assert_eq!(
                Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&request()[..n]), true),
                Err(Error::Truncated)
            );
        }
        // Cut inside the payload: total length beyond the buffer.
        let short = &request()[..request().len() - 1];
        assert_eq!(Ipv4Packet::new_checked(short).err(), Some(Error::Truncated));
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_unchecked(short), true),
            Err(Error::Truncated)
        );

        let b = mutated(|p| p.set_version_and_header_len(20), true);
        assert!(parse(&b).is_ok());
        let mut b = mutated(|_| {}, false);
        b[0] = 0x65;
        assert_eq!(parse(&b), Err(Error::BadVersion));
        b[0] = 0x46;
        assert_eq!(parse(&b), Err(Error::Ipv4Options));
        b[0] = 0x44;
        assert_eq!(parse(&b), Err(Error::BadLength));
        let b = mutated(|p| p.set_total_len(19), true);
        assert_eq!(parse(&b), Err(Error::BadLength));
        let b = mutated(|p| p.set_total_len(200), true);
        assert_eq!(parse(&b), Err(Error::Truncated));
        let b = mutated(|p| p.set_flags_fragment(IPV4_FLAG_MF), true);
        assert_eq!(parse(&b), Err(Error::Fragment));
        let b = mutated(|p| p.set_flags_fragment(IPV4_FLAG_DF | 1), true);
        assert_eq!(parse(&b), Err(Error::Fragment));
        let b = mutated(|p| p.set_ttl(3), false);
        assert_eq!(parse(&b), Err(Error::BadIpChecksum));
        assert!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&b[..request().len()]), false).is_ok());
    }

    #[test]
    fn emit_errors() {
        let repr = Ipv4Repr {
            src_addr: Ipv4Address::new(1, 2, 3, 4),
            dst_addr: Ipv4Address::new(5, 6, 7, 8),
            protocol: 17,
            payload_len: 70000,
            ttl: 64,
        };
        let mut buf = [0u8; 20];
        assert_eq!(
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])),
            Err(Error::PayloadTooLarge)
        );
        assert_eq!(
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..19])),
            Err(Error::BufferTooSmall)
        );
    }
}
