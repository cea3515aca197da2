//! The memcache UDP frame header (memcached `doc/protocol.txt`, "UDP
//! protocol"): eight bytes in front of every datagram's payload.
//!
//! ```text
//!  0               2               4               6               8
//!  +---------------+---------------+---------------+---------------+
//!  |  request id   | sequence no.  | total datagrams|   reserved    |
//!  +---------------+---------------+---------------+---------------+
//!        four big-endian u16; the request id is echoed in every reply
//! ```
//!
//! A request must fit in one datagram. Which request headers are accepted is
//! a [`HeaderRule`]: memcached's by default (see there for what memcached
//! 1.6.18 does with each field). A reply datagram carries at most
//! [`UDP_MAX_DATAGRAM_BYTES`] bytes including this header, with sequence
//! numbers from 0 and reserved 0.

use super::field::{self, Field};
use super::{Error, Result};

mod fields {
    use super::Field;
    pub const REQUEST_ID: Field = 0..2;
    pub const SEQUENCE: Field = 2..4;
    pub const TOTAL: Field = 4..6;
    pub const RESERVED: Field = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// Length of the memcache UDP frame header.
pub const UDP_FRAME_HEADER_BYTES: usize = fields::PAYLOAD;

/// Largest reply datagram memcached sends: header plus payload.
pub const UDP_MAX_DATAGRAM_BYTES: usize = 1400;

/// Reply bytes one datagram carries: 1392.
pub const UDP_MAX_PAYLOAD_BYTES: usize = UDP_MAX_DATAGRAM_BYTES - UDP_FRAME_HEADER_BYTES;

/// Byte offset of the `total datagrams` field inside the frame header (for
/// patching the total after the fact).
pub const UDP_FRAME_TOTAL_OFFSET: usize = fields::TOTAL.start;

view! {
    /// A view of a memcache UDP datagram (frame header + payload). Accessors
    /// never panic (see the module promise in [`crate::wire`]).
    MemcacheUdpFrame,
    /// The payload: memcache ASCII protocol bytes.
    payload
}

impl<T: AsRef<[u8]>> MemcacheUdpFrame<T> {
    /// Everything after the header, to the end of the buffer.
    fn payload_range(&self) -> Field {
        fields::PAYLOAD..self.buffer.as_ref().len()
    }

    /// `Truncated` unless the buffer holds the 8-byte header. Everything after
    /// the header is payload.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < UDP_FRAME_HEADER_BYTES {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Request id (opaque, chosen by the client, echoed in replies).
    pub fn request_id(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::REQUEST_ID)
    }

    /// Sequence number of this datagram, from 0.
    pub fn sequence(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::SEQUENCE)
    }

    /// Total number of datagrams in the message.
    pub fn total(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::TOTAL)
    }

    /// Reserved field (must be 0).
    pub fn reserved(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), fields::RESERVED)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MemcacheUdpFrame<T> {
    /// Set the request id.
    pub fn set_request_id(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::REQUEST_ID, v);
    }

    /// Set the sequence number.
    pub fn set_sequence(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::SEQUENCE, v);
    }

    /// Set the total.
    pub fn set_total(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::TOTAL, v);
    }

    /// Set the reserved field.
    pub fn set_reserved(&mut self, v: u16) {
        field::set_u16_at(self.buffer.as_mut(), fields::RESERVED, v);
    }
}

/// Which request frame headers [`FrameHeader::parse_request`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderRule {
    /// memcached 1.6.18's rule (`try_read_udp`): the datagram count must be
    /// 1, and the sequence number and the reserved field are not looked at.
    /// Seen with memcached 1.6.18 `-U`: requests with reserved 0x0100 (what
    /// memcaslap sends) or 0xffff, or with sequence 5, are answered, the
    /// reply carrying sequence 0 and reserved 0; counts of 0, 2 and 0x0101
    /// get no reply.
    #[default]
    Memcached,
    /// Also require sequence 0 and reserved 0 (`BadFrameHeader` for a
    /// non-zero reserved field).
    Strict,
}

/// The high-level form of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameHeader {
    /// Request id.
    pub request_id: u16,
    /// Sequence number.
    pub sequence: u16,
    /// Total datagrams.
    pub total: u16,
    /// Reserved.
    pub reserved: u16,
}

impl FrameHeader {
    /// Read a header (`Truncated` under 8 bytes); any values are accepted.
    pub fn parse<T: AsRef<[u8]>>(frame: &MemcacheUdpFrame<T>) -> Result<Self> {
        frame.check_len()?;
        Ok(FrameHeader {
            request_id: frame.request_id(),
            sequence: frame.sequence(),
            total: frame.total(),
            reserved: frame.reserved(),
        })
    }

    /// Read a header and accept it only as a one-datagram request under
    /// `rule`: `Truncated` under 8 bytes; then [`check_request`](Self::check_request).
    pub fn parse_request<T: AsRef<[u8]>>(
        frame: &MemcacheUdpFrame<T>,
        rule: HeaderRule,
    ) -> Result<Self> {
        let h = Self::parse(frame)?;
        h.check_request(rule)?;
        Ok(h)
    }

    /// The request checks of [`parse_request`](Self::parse_request):
    /// `MultiDatagramRequest` for a total other than 1 (both rules); with
    /// [`HeaderRule::Strict`] also `BadFrameHeader` for a non-zero reserved
    /// field and `MultiDatagramRequest` for a non-zero sequence.
    pub const fn check_request(&self, rule: HeaderRule) -> Result<()> {
        match rule {
            HeaderRule::Memcached => {
                if self.total != 1 {
                    Err(Error::MultiDatagramRequest)
                } else {
                    Ok(())
                }
            }
            HeaderRule::Strict => {
                if self.total == 0 || self.reserved != 0 {
                    Err(Error::BadFrameHeader)
                } else if self.sequence != 0 || self.total != 1 {
                    Err(Error::MultiDatagramRequest)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The header of reply datagram `sequence` of `total` to this request.
    pub const fn reply(&self, sequence: u16, total: u16) -> FrameHeader {
        FrameHeader {
            request_id: self.request_id,
            sequence,
            total,
            reserved: 0,
        }
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        UDP_FRAME_HEADER_BYTES
    }

    /// Write the header; `BufferTooSmall` under 8 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        frame: &mut MemcacheUdpFrame<T>,
    ) -> Result<()> {
        if frame.check_len().is_err() {
            return Err(Error::BufferTooSmall);
        }
        frame.set_request_id(self.request_id);
        frame.set_sequence(self.sequence);
        frame.set_total(self.total);
        frame.set_reserved(self.reserved);
        Ok(())
    }

    /// The header as its 8 wire bytes.
    pub const fn to_bytes(&self) -> [u8; UDP_FRAME_HEADER_BYTES] {
        let [a, b] = self.request_id.to_be_bytes();
        let [c, d] = self.sequence.to_be_bytes();
        let [e, f] = self.total.to_be_bytes();
        let [g, h] = self.reserved.to_be_bytes();
        [a, b, c, d, e, f, g, h]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A `get foo` request as memcached's own test client sends it
    // (request id 45, seq 0, total 1).
    static REQUEST_BYTES: [u8; 17] = [
        0x00, 0x2d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, b'g', b'e', b't', b' ', b'f', b'o', b'o',
        b'\r', b'\n',
    ];

    #[test]
    fn deconstruct() {
        let f = MemcacheUdpFrame::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(f.request_id(), 45);
        assert_eq!(f.sequence(), 0);
        assert_eq!(f.total(), 1);
        assert_eq!(f.reserved(), 0);
        assert_eq!(f.payload(), b"get foo\r\n");
        let h = FrameHeader::parse_request(&f, HeaderRule::Strict).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                request_id: 45,
                sequence: 0,
                total: 1,
                reserved: 0
            }
        );
        assert_eq!(h.to_bytes(), REQUEST_BYTES[..8]);
    }

    #[test]
    fn construct_and_emit() {
        let mut buf = [0u8; 17];
        let mut f = MemcacheUdpFrame::new_unchecked(&mut buf[..]);
        FrameHeader {
            request_id: 45,
            sequence: 0,
            total: 1,
            reserved: 0,
        }
        .emit(&mut f)
        .unwrap();
        f.payload_mut().copy_from_slice(b"get foo\r\n");
        assert_eq!(buf, REQUEST_BYTES);
        let reply = FrameHeader::parse(&MemcacheUdpFrame::new_unchecked(&buf[..]))
            .unwrap()
            .reply(2, 3);
        assert_eq!(reply.to_bytes(), [0, 45, 0, 2, 0, 3, 0, 0]);
        assert_eq!(UDP_MAX_PAYLOAD_BYTES, 1392);
        let mut small = [0u8; 7];
        assert_eq!(
            reply.emit(&mut MemcacheUdpFrame::new_unchecked(&mut small[..])),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn malformed() {
        for n in 0..8 {
            let f = MemcacheUdpFrame::new_unchecked(&REQUEST_BYTES[..n]);
            for rule in [HeaderRule::Memcached, HeaderRule::Strict] {
                assert_eq!(FrameHeader::parse_request(&f, rule), Err(Error::Truncated));
            }
            let _ = (
                f.request_id(),
                f.sequence(),
                f.total(),
                f.reserved(),
                f.payload(),
            );
        }
        let check = |seq: u16, total: u16, reserved: u16| {
            FrameHeader {
                request_id: 1,
                sequence: seq,
                total,
                reserved,
            }
            .check_request(HeaderRule::Strict)
        };
        assert_eq!(check(0, 1, 0), Ok(()));
        assert_eq!(check(0, 0, 0), Err(Error::BadFrameHeader));
        assert_eq!(check(0, 1, 1), Err(Error::BadFrameHeader));
        assert_eq!(check(0, 2, 0), Err(Error::MultiDatagramRequest));
        assert_eq!(check(1, 2, 0), Err(Error::MultiDatagramRequest));
        assert_eq!(check(1, 1, 0), Err(Error::MultiDatagramRequest));
        // memcached's rule: only the count matters (the cases seen on
        // memcached 1.6.18, see HeaderRule::Memcached).
        let memcached = |seq: u16, total: u16, reserved: u16| {
            FrameHeader {
                request_id: 1,
                sequence: seq,
                total,
                reserved,
            }
            .check_request(HeaderRule::Memcached)
        };
        assert_eq!(memcached(0, 1, 0), Ok(()));
        assert_eq!(memcached(0, 1, 0x0100), Ok(()));
        assert_eq!(memcached(0, 1, 0xffff), Ok(()));
        assert_eq!(memcached(5, 1, 0), Ok(()));
        for total in [0, 2, 0x0101] {
            assert_eq!(memcached(0, total, 0), Err(Error::MultiDatagramRequest));
        }
        assert_eq!(HeaderRule::default(), HeaderRule::Memcached);
        // An empty request is well formed (and produces no reply).
        let f = MemcacheUdpFrame::new_checked(&REQUEST_BYTES[..8]).unwrap();
        assert_eq!(f.payload(), b"");
    }
}
