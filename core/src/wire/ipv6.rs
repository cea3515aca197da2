//! IPv6 fixed headers (RFC 8200). Extension headers are not walked: a packet
//! whose next header is not UDP is refused by the frame parser.
//!
//! ```text
//!  0       4               12                                      31
//!  +-------+---------------+---------------------------------------+
//!  |version| traffic class |              flow label               |
//!  +-------+---------------+-------+---------------+---------------+
//!  |         payload length        |  next header  |   hop limit   |
//!  +-------------------------------+---------------+---------------+
//!  |                 source address (16 bytes)                     |
//!  +---------------------------------------------------------------+
//!  |               destination address (16 bytes)                 |
//!  +---------------------------------------------------------------+
//! ```

use super::field::{self, Field};
use super::{Error, Result};

mod fields {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the IPv6 fixed header.
pub const IPV6_HEADER_BYTES: usize = 40;

/// Default hop limit of replies we originate.
pub const IPV6_DEFAULT_HOP_LIMIT: u8 = 64;

/// Next-header value of the IPv6 fragment header.
pub const IPV6_NEXT_HEADER_FRAGMENT: u8 = 44;

/// True for next-header values that are IPv6 extension headers (hop-by-hop,
/// routing, fragment, ESP, AH, destination options, mobility, HIP, shim6).
pub const fn is_extension_header(next_header: u8) -> bool {
    matches!(next_header, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140)
}

/// An IPv6 address, in network byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ipv6Address(pub [u8; 16]);

impl Ipv6Address {
    /// The loopback address `::1`.
    pub const LOOPBACK: Ipv6Address = Ipv6Address([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
}

view! {
    /// A view of an IPv6 packet in a buffer. Accessors never panic (see the
    /// module promise in [`crate::wire`]).
    Ipv6Packet,
    /// The payload (`payload length` bytes after the fixed header; empty when
    /// that does not fit the buffer).
    payload
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// `payload length` bytes after the fixed header.
    fn payload_range(&self) -> Field {
        IPV6_HEADER_BYTES..IPV6_HEADER_BYTES + usize::from(self.payload_len())
    }

    /// `Truncated` unless the 40-byte header and the payload length it
    /// announces lie in the buffer (which may be longer: Ethernet padding).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < IPV6_HEADER_BYTES || len < IPV6_HEADER_BYTES + usize::from(self.payload_len()) {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The version nibble (6 for IPv6).
    pub fn version(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), 0) >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let w = u32::from_be_bytes(field::array_at(self.buffer.as_ref(), fields::VER_TC_FLOW));
        (w >> 20) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        let w = u32::from_be_bytes(field::array_at(self.buffer.as_ref(), fields::VER_TC_FLOW));
        w & 0x000f_ffff
    }

    /// Payload length in bytes (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::LENGTH)
    }

    /// Next header (17 = UDP).
    pub fn next_header(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), fields::NXT_HDR)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), fields::HOP_LIMIT)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Address {
        Ipv6Address(field::array_at(self.buffer.as_ref(), fields::SRC_ADDR))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Address {
        Ipv6Address(field::array_at(self.buffer.as_ref(), fields::DST_ADDR))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Set version 6, traffic class and flow label.
    pub fn set_version_class_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = 6u32 << 28 | u32::from(traffic_class) << 20 | (flow_label & 0x000f_ffff);
        field::set_bytes_at(self.buffer.as_mut(), fields::VER_TC_FLOW, &w.to_be_bytes());
    }

    /// Set the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::LENGTH, v);
    }

    /// Set the next header.
    pub fn set_next_header(&mut self, v: u8) {
        field::set_u8_at(self.buffer.as_mut(), fields::NXT_HDR, v);
    }

    /// Set the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        field::set_u8_at(self.buffer.as_mut(), fields::HOP_LIMIT, v);
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Address) {
        field::set_bytes_at(self.buffer.as_mut(), fields::SRC_ADDR, &a.0);
    }

    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Address) {
        field::set_bytes_at(self.buffer.as_mut(), fields::DST_ADDR, &a.0);
    }
}

/// The high-level form of an IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Address,
    /// Destination address.
    pub dst_addr: Ipv6Address,
    /// Next header.
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Check and read a fixed header: `Truncated` (< 40 bytes), `BadVersion`,
    /// then `Truncated` when the payload length exceeds the buffer.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self> {
        if packet.buffer.as_ref().len() < IPV6_HEADER_BYTES {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        packet.check_len()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        IPV6_HEADER_BYTES
    }

    /// Write the fixed header (traffic class 0, flow label 0).
    /// `BufferTooSmall` when the buffer cannot hold it, `PayloadTooLarge` when
    /// the payload length exceeds 65535 (no jumbograms).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < IPV6_HEADER_BYTES {
            return Err(Error::BufferTooSmall);
        }
        let len = match u16::try_from(self.payload_len) {
            Ok(l) => l,
            Err(_) => return Err(Error::PayloadTooLarge),
        };
        packet.set_version_class_flow(0, 0);
        packet.set_payload_len(len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata;

    fn request() -> &'static [u8] {
        &testdata::REQ_V6_GET_FOO[14..]
    }

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(request()).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(usize::from(p.payload_len()), request().len() - 40);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        let mut src = [0u8; 16];
        src[..2].copy_from_slice(&[0x20, 0x01]);
        src[2..4].copy_from_slice(&[0x0d, 0xb8]);
        src[15] = 1;
        assert_eq!(p.src_addr(), Ipv6Address(src));
        src[15] = 2;
        assert_eq!(p.dst_addr(), Ipv6Address(src));
        assert_eq!(p.payload(), &request()[40..]);
    }

    #[test]
    fn parse_emit_round_trip() {
        let p = Ipv6Packet::new_checked(request()).unwrap();
        let repr = Ipv6Repr::parse(&p).unwrap();
        let mut buf = [0u8; 40];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let mut expected = [0u8; 40];
        expected.copy_from_slice(&request()[..40]);
        // We emit flow label 0.
        expected[1] &= 0xf0;
        expected[2] = 0;
        expected[3] = 0;
        assert_eq!(buf, expected);
        let mut t = Ipv6Packet::new_unchecked(&mut buf[..]);
        t.set_version_class_flow(0xab, 0xfffff);
        assert_eq!(t.traffic_class(), 0xab);
        assert_eq!(t.flow_label(), 0xfffff);
        assert_eq!(t.version(), 6);
    }

    #[test]
    fn malformed() {
        for n in 0..40 {
            assert_eq!(
                Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&request()[..n])),
                Err(Error::Truncated)
            );
        }
        let cut = &request()[..request().len() - 1];
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_unchecked(cut)),
            Err(Error::Truncated)
        );
        let mut b = [0u8; 128];
        let n = request().len();
        b[..n].copy_from_slice(request());
        b[0] = 0x45;
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&b[..n])),
            Err(Error::BadVersion)
        );
        assert!(is_extension_header(IPV6_NEXT_HEADER_FRAGMENT));
        assert!(is_extension_header(0));
        assert!(!is_extension_header(17));
        let repr = Ipv6Repr {
            src_addr: Ipv6Address::LOOPBACK,
            dst_addr: Ipv6Address::LOOPBACK,
            next_header: 17,
            payload_len: 65536,
            hop_limit: 1,
        };
        assert_eq!(
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..])),
            Err(Error::PayloadTooLarge)
        );
        assert_eq!(
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..39])),
            Err(Error::BufferTooSmall)
        );
    }
}
