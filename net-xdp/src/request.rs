//! Reading a request frame with memcached's rule for the frame header.
//!
//! memcached (`try_read_udp`) checks only the datagram count of a request
//! header: it must be 1; the sequence number and the reserved field are
//! ignored (memcaslap sends reserved = 0x0100). `core::wire`'s
//! `parse_request_frame` is stricter (reserved and sequence must be 0), so a
//! frame it refuses for its header alone is read again under memcached's
//! rule. (A private helper until `core::wire` offers that rule itself.)

use petrel_core::wire::reply::{IPV4_REPLY_HEADERS_BYTES, IPV6_REPLY_HEADERS_BYTES};
use petrel_core::wire::{
    self, EtherType, EthernetFrame, ParseOptions, RequestFrame, UDP_FRAME_HEADER_BYTES,
};

/// `parse_request_frame`, with memcached's header rule: a count other than
/// 1 is `MultiDatagramRequest` (dropped, as memcached drops it); sequence
/// and reserved are accepted whatever they hold, and set to 0 in `frame`.
pub(crate) fn parse_request(
    frame: &mut [u8],
    opts: &ParseOptions,
) -> Result<RequestFrame, wire::Error> {
    match wire::parse_request_frame(frame, opts) {
        Err(wire::Error::BadFrameHeader | wire::Error::MultiDatagramRequest) => {}
        other => return other,
    }
    // Only the memcache header failed, so every earlier check passed: the
    // frame is IPv4 without options or IPv6 without extension headers, and
    // the header sits where a reply's would.
    let payload_at = match EthernetFrame::new_unchecked(&*frame).ethertype() {
        EtherType::Ipv4 => IPV4_REPLY_HEADERS_BYTES,
        EtherType::Ipv6 => IPV6_REPLY_HEADERS_BYTES,
        _ => return Err(wire::Error::BadFrameHeader),
    };
    let at = payload_at - UDP_FRAME_HEADER_BYTES;
    let Some(header) = frame.get_mut(at..payload_at) else {
        return Err(wire::Error::Truncated);
    };
    if header[4..6] != [0, 1] {
        return Err(wire::Error::MultiDatagramRequest);
    }
    header[2..4].fill(0);
    header[6..8].fill(0);
    // The UDP checksum (if asked for) was verified by the first reading,
    // before the header was touched.
    let again = ParseOptions {
        verify_udp_checksum: false,
        ..*opts
    };
    wire::parse_request_frame(frame, &again)
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_core::wire::{
        write_reply_frame, EthernetAddress, IpPair, Ipv4Address, Ipv6Address, ReplyAddressing,
    };

    const PORT: u16 = 11211;

    /// A request frame with `payload` and the given header fields.
    fn frame(v6: bool, sequence: u16, total: u16, reserved: u16) -> Vec<u8> {
        let addr = ReplyAddressing {
            eth_src: EthernetAddress([2, 0, 0, 0, 0, 1]),
            eth_dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ips: if v6 {
                IpPair::V6 {
                    src: Ipv6Address([0xfd; 16]),
                    dst: Ipv6Address([0xfe; 16]),
                }
            } else {
                IpPair::V4 {
                    src: Ipv4Address::new(198, 18, 0, 2),
                    dst: Ipv4Address::new(198, 18, 0, 1),
                }
            },
            src_port: 40000,
            dst_port: PORT,
            request_id: 0x1234,
        };
        let payload = b"get k\r\n";
        let mut buf = vec![0u8; 2048];
        let at = addr.headers_len();
        buf[at..at + payload.len()].copy_from_slice(payload);
        let len = write_reply_frame(&mut buf, &addr, payload.len(), sequence, total).unwrap();
        buf.truncate(len);
        // Reserved is always written as 0: set it (the UDP checksum then no
        // longer matches, which the parser does not check by default).
        buf[at - 2..at].copy_from_slice(&reserved.to_be_bytes());
        buf
    }

    fn opts() -> ParseOptions {
        ParseOptions {
            port: Some(PORT),
            ..ParseOptions::default()
        }
    }

    #[test]
    fn ignores_sequence_and_reserved_like_memcached() {
        for v6 in [false, true] {
            for (seq, reserved) in [(0, 0), (0, 0x0100), (3, 0), (7, 0xffff)] {
                let mut f = frame(v6, seq, 1, reserved);
                let req = parse_request(&mut f, &opts()).unwrap();
                assert_eq!(req.reply.request_id, 0x1234);
                assert_eq!(req.payload(&f), b"get k\r\n");
            }
        }
    }

    #[test]
    fn drops_any_count_but_one() {
        for v6 in [false, true] {
            for total in [0, 2, 0x0100] {
                let mut f = frame(v6, 0, total, 0);
                assert_eq!(
                    parse_request(&mut f, &opts()),
                    Err(wire::Error::MultiDatagramRequest)
                );
            }
        }
    }

    #[test]
    fn other_errors_are_the_wire_modules() {
        let mut f = frame(false, 0, 1, 0);
        f[14 + 10] ^= 0xff; // IPv4 header checksum
        assert_eq!(
            parse_request(&mut f, &opts()),
            Err(wire::Error::BadIpChecksum)
        );
        let mut f = frame(false, 0, 1, 0x0100);
        let wrong_port = ParseOptions {
            port: Some(PORT + 1),
            ..opts()
        };
        assert_eq!(
            parse_request(&mut f, &wrong_port),
            Err(wire::Error::WrongPort)
        );
        let mut short = frame(false, 0, 1, 0);
        short.truncate(40);
        assert!(parse_request(&mut short, &opts()).is_err());
    }
}
