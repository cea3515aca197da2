//! Ethernet II frames (no 802.1Q tag, no FCS: what AF_XDP hands over).
//!
//! ```text
//!  0                   6                   12        14
//!  +-------------------+-------------------+---------+---------
//!  | destination MAC   | source MAC        |EtherType| payload
//!  +-------------------+-------------------+---------+---------
//! ```

use super::field::{self, Field};
use super::{Error, Result};

mod fields {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of an Ethernet II header in bytes.
pub const ETHERNET_HEADER_BYTES: usize = fields::PAYLOAD;

/// Shortest Ethernet frame without FCS; shorter frames are padded with zeros
/// by the reply builders when the buffer allows.
pub const ETHERNET_MIN_FRAME_BYTES: usize = 60;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// True for group (multicast and broadcast) addresses.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

/// The EtherType field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// 0x0800.
    Ipv4,
    /// 0x0806.
    Arp,
    /// 0x86dd.
    Ipv6,
    /// Any other value (including 802.1Q tags, 0x8100).
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(v) => v,
        }
    }
}

view! {
    /// A view of an Ethernet II frame in a buffer. Accessors never panic (see the
    /// module promise in [`crate::wire`]).
    EthernetFrame,
    /// Everything after the header (up to the end of the buffer, padding
    /// included: the IP header says how much is real).
    payload
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Everything after the header, to the end of the buffer.
    fn payload_range(&self) -> Field {
        fields::PAYLOAD..self.buffer.as_ref().len()
    }

    /// `Err(Truncated)` unless the buffer holds the 14-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < ETHERNET_HEADER_BYTES {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Destination MAC.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(field::array_at(self.buffer.as_ref(), fields::DESTINATION))
    }

    /// Source MAC.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(field::array_at(self.buffer.as_ref(), fields::SOURCE))
    }

    /// EtherType.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(field::u16_at(self.buffer.as_ref(), fields::ETHERTYPE))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Set the destination MAC.
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        field::set_bytes_at(self.buffer.as_mut(), fields::DESTINATION, &a.0);
    }

    /// Set the source MAC.
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        field::set_bytes_at(self.buffer.as_mut(), fields::SOURCE, &a.0);
    }

    /// Set the EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        field::set_u16_at(self.buffer.as_mut(), fields::ETHERTYPE, t.into());
    }

    /// Swap source and destination MACs (for a reply in place).
    pub fn swap_addrs(&mut self) {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        self.set_src_addr(dst);
        self.set_dst_addr(src);
    }
}

/// The high-level form of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src_addr: EthernetAddress,
    /// Destination MAC.
    pub dst_addr: EthernetAddress,
    /// EtherType.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Read the header of a frame (checks the length).
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_HEADER_BYTES
    }

    /// Write the header; `Err(BufferTooSmall)` when it does not fit.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) -> Result<()> {
        if frame.check_len().is_err() {
            return Err(Error::BufferTooSmall);
        }
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME_BYTES: [u8; 16] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb,
    ];

    #[test]
    fn deconstruct() {
        let f = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn construct_and_emit() {
        let mut buf = [0u8; 16];
        let repr =
            EthernetRepr::parse(&EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap()).unwrap();
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        repr.emit(&mut f).unwrap();
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(buf, FRAME_BYTES);
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        f.swap_addrs();
        assert_eq!(f.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.dst_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
    }

    #[test]
    fn ethertypes_round_trip() {
        for v in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x86dd), EtherType::Ipv6);
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress([2, 0, 0, 0, 0, 1]).is_multicast());
    }

    #[test]
    fn truncated() {
        for n in 0..ETHERNET_HEADER_BYTES {
            let f = EthernetFrame::new_unchecked(&FRAME_BYTES[..n]);
            assert_eq!(f.check_len(), Err(Error::Truncated));
            // Accessors on an unchecked short view return zeros, never panic.
            let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload());
            assert_eq!(EthernetRepr::parse(&f), Err(Error::Truncated));
        }
        let mut small = [0u8; 13];
        let repr = EthernetRepr {
            src_addr: EthernetAddress::default(),
            dst_addr: EthernetAddress::default(),
            ethertype: EtherType::Ipv6,
        };
        assert_eq!(
            repr.emit(&mut EthernetFrame::new_unchecked(&mut small[..])),
            Err(Error::BufferTooSmall)
        );
    }
}
