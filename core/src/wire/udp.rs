//! UDP headers (RFC 768) and their checksum over the IPv4 or IPv6
//! pseudo-header.
//!
//! ```text
//!  0               16              31
//!  +---------------+---------------+
//!  |  source port  |   dest port   |
//!  +---------------+---------------+
//!  |    length     |   checksum    |
//!  +---------------+---------------+
//! ```

use super::checksum;
use super::field::{self, Field};
use super::{Error, Ipv4Address, Ipv6Address, Result, IP_PROTOCOL_UDP};

mod fields {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of a UDP header.
pub const UDP_HEADER_BYTES: usize = 8;

/// The IP addresses a UDP checksum covers (its pseudo-header), source first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpPair {
    /// IPv4 source and destination.
    V4 {
        /// Source address.
        src: Ipv4Address,
        /// Destination address.
        dst: Ipv4Address,
    },
    /// IPv6 source and destination.
    V6 {
        /// Source address.
        src: Ipv6Address,
        /// Destination address.
        dst: Ipv6Address,
    },
}

impl IpPair {
    /// The same pair seen from the other end (source and destination swapped).
    pub const fn reversed(&self) -> IpPair {
        match *self {
            IpPair::V4 { src, dst } => IpPair::V4 { src: dst, dst: src },
            IpPair::V6 { src, dst } => IpPair::V6 { src: dst, dst: src },
        }
    }

    /// Partial checksum of the pseudo-header for a UDP datagram of `udp_len`
    /// bytes (header included).
    pub fn pseudo_header_sum(&self, udp_len: u16) -> u16 {
        match self {
            IpPair::V4 { src, dst } => {
                checksum::pseudo_header_v4(src, dst, IP_PROTOCOL_UDP, udp_len)
            }
            IpPair::V6 { src, dst } => {
                checksum::pseudo_header_v6(src, dst, IP_PROTOCOL_UDP, u32::from(udp_len))
            }
        }
    }
}

view! {
    /// A view of a UDP datagram in a buffer. Accessors never panic (see the
    /// module promise in [`crate::wire`]).
    UdpPacket,
    /// The payload: the bytes after the header up to the length field.
    payload
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Bytes after the header up to the length field.
    fn payload_range(&self) -> Field {
        UDP_HEADER_BYTES..usize::from(self.len())
    }

    /// `Truncated` when the buffer is shorter than 8 bytes or than the length
    /// field; `BadLength` when the length field is below 8. The buffer may be
    /// longer than the length field says (the rest is not payload).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < UDP_HEADER_BYTES {
            return Err(Error::Truncated);
        }
        let ulen = usize::from(self.len());
        if ulen < UDP_HEADER_BYTES {
            return Err(Error::BadLength);
        }
        if len < ulen {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::DST_PORT)
    }

    /// Length field: header plus payload, in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::LENGTH)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::CHECKSUM)
    }

    /// True when the checksum verifies over the pseudo-header of `ips` and
    /// the `len` bytes of the datagram. A zero checksum means "not computed"
    /// and verifies over IPv4; over IPv6 it is invalid (RFC 8200) and fails.
    /// False when the length field does not fit the buffer.
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        if self.checksum() == 0 {
            return matches!(ips, IpPair::V4 { .. });
        }
        let ulen = self.len();
        match self.buffer.as_ref().get(..usize::from(ulen)) {
            Some(d) if d.len() >= UDP_HEADER_BYTES => {
                checksum::combine(&[ips.pseudo_header_sum(ulen), checksum::data(d)]) == 0xffff
            }
            _ => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set the source port.
    pub fn set_src_port(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::SRC_PORT, v);
    }

    /// Set the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::DST_PORT, v);
    }

    /// Set the length field.
    pub fn set_len(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::LENGTH, v);
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::CHECKSUM, v);
    }

    /// Compute the full checksum over the pseudo-header of `ips` and the `len`
    /// bytes of the datagram and store it (a computed 0 is stored as 0xffff).
    /// Does nothing when the length field does not fit the buffer.
    pub fn fill_checksum(&mut self, ips: &IpPair) {
        self.set_checksum(0);
        let ulen = self.len();
        let sum = match self.buffer.as_ref().get(..usize::from(ulen)) {
            Some(d) if d.len() >= UDP_HEADER_BYTES => {
                checksum::combine(&[ips.pseudo_header_sum(ulen), checksum::data(d)])
            }
            _ => return,
        };
        self.set_checksum(checksum::udp_field(!sum));
    }
}

/// The high-level form of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload, borrowed from the packet.
    pub payload: &'a [u8],
}

impl<'a> UdpRepr<'a> {
    /// Check and read a datagram whose pseudo-header is `ips`: the length
    /// checks of [`UdpPacket::check_len`], then `BadUdpChecksum` when
    /// `verify_checksum` is set and the checksum fails.
    pub fn parse(
        packet: &UdpPacket<&'a [u8]>,
        ips: &IpPair,
        verify_checksum: bool,
    ) -> Result<Self> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(ips) {
            return Err(Error::BadUdpChecksum);
        }
        let buf: &'a [u8] = packet.buffer;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload: field::slice(buf, UDP_HEADER_BYTES..usize::from(packet.len())),
        })
    }

    /// Bytes the datagram takes (header + payload).
    pub const fn buffer_len(&self) -> usize {
        UDP_HEADER_BYTES + self.payload.len()
    }

    /// Write header, payload and full checksum. `BufferTooSmall` when the
    /// buffer is shorter than [`buffer_len`](Self::buffer_len),
    /// `PayloadTooLarge` above 65535 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        ips: &IpPair,
    ) -> Result<()> {
        let len = match u16::try_from(self.buffer_len()) {
            Ok(l) => l,
            Err(_) => return Err(Error::PayloadTooLarge),
        };
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.payload_mut().copy_from_slice(self.payload);
        packet.fill_checksum(ips);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata;

    // smoltcp's UDP test vector: 192.168.1.1:48896 -> 192.168.1.2:53.
    static PACKET_BYTES: [u8; 12] = [
        0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x4d, 0xaa, 0x00, 0x00, 0xff,
    ];
    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];
    const IPS: IpPair = IpPair::V4 {
        src: Ipv4Address::new(192, 168, 1, 1),
        dst: Ipv4Address::new(192, 168, 1, 2),
    };

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 48896);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert_eq!(p.checksum(), 0x124d);
        assert_eq!(p.payload(), &PAYLOAD_BYTES[..]);
        assert!(p.verify_checksum(&IPS));
        // Swapping addresses keeps the sum; another address breaks it.
        assert!(p.verify_checksum(&IPS.reversed()));
        let other = IpPair::V4 {
            src: Ipv4Address::new(192, 168, 1, 1),
            dst: Ipv4Address::new(10, 0, 0, 1),
        };
        assert!(!p.verify_checksum(&other));
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 12];
        let mut p = UdpPacket::new_unchecked(&mut bytes[..]);
        p.set_src_port(48896);
        p.set_dst_port(53);
        p.set_len(12);
        p.set_checksum(0xffff);
        p.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        p.fill_checksum(&IPS);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn parse_and_emit() {
        let p = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        let repr = UdpRepr::parse(&p, &IPS, true).unwrap();
        assert_eq!(
            repr,
            UdpRepr {
                src_port: 48896,
                dst_port: 53,
                payload: &PAYLOAD_BYTES
            }
        );
        let mut bytes = [0u8; 12];
        repr.emit(&mut UdpPacket::new_unchecked(&mut bytes[..]), &IPS)
            .unwrap();
        assert_eq!(bytes, PACKET_BYTES);
        assert_eq!(
            repr.emit(&mut UdpPacket::new_unchecked(&mut bytes[..11]), &IPS),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn generated_v6_request_verifies() {
        let ip = &testdata::REQ_V6_GET_FOO[14..];
        let ips = IpPair::V6 {
            src: Ipv6Address(ip[8..24].try_into().unwrap()),
            dst: Ipv6Address(ip[24..40].try_into().unwrap()),
        };
        let p = UdpPacket::new_checked(&ip[40..]).unwrap();
        assert_eq!(p.checksum(), testdata::REQ_V6_GET_FOO_UDP_CSUM);
        assert!(p.verify_checksum(&ips));
        let mut copy = [0u8; 128];
        let n = ip.len() - 40;
        copy[..n].copy_from_slice(&ip[40..]);
        let mut q = UdpPacket::new_unchecked(&mut copy[..n]);
        q.fill_checksum(&ips);
        assert_eq!(q.checksum(), testdata::REQ_V6_GET_FOO_UDP_CSUM);
        // Zero checksum: "none" over IPv4, invalid over IPv6.
        q.set_checksum(0);
        assert!(!q.verify_checksum(&ips));
        assert!(q.verify_checksum(&IPS));
    }

    #[test]
    fn malformed() {
        for n in 0..8 {
            assert_eq!(
                UdpPacket::new_checked(&PACKET_BYTES[..n]).err(),
                Some(Error::Truncated)
            );
        }
        assert_eq!(
            UdpPacket::new_checked(&PACKET_BYTES[..11]).err(),
            Some(Error::Truncated)
        );
        let mut b = PACKET_BYTES;
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]).err(), Some(Error::BadLength));
        let p = UdpPacket::new_unchecked(&b[..]);
        assert!(!p.verify_checksum(&IPS));
        assert_eq!(p.payload(), &[] as &[u8]);
        let mut b = PACKET_BYTES;
        b[9] ^= 1;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, &IPS, true), Err(Error::BadUdpChecksum));
        assert!(UdpRepr::parse(&p, &IPS, false).is_ok());
    }
}
