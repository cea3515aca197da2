//! Parsing a memcache-over-UDP request frame and building reply frames:
//! in place in the received frame, into fresh buffers, and split into
//! numbered datagrams.
//!
//! # How a front end uses this
//!
//! ```text
//! rx frame --parse_request_frame--> RequestFrame { reply addressing, payload range }
//!   copy the request payload out (it is the engine's input),
//!   then for each datagram of the reply:
//!     DatagramSplitter::next(buf, |area| engine.process(.., area, ..))
//!       buf = the rx frame itself for the first datagram (reply in place),
//!             fresh UMEM frames for the others
//!   and when the engine is done: DatagramSplitter::finish(buf) on each
//!   produced datagram patches the total count (and the UDP checksum).
//! ```
//!
//! # Numbering multi-datagram replies
//!
//! We follow `doc/protocol.txt`: the datagrams of one reply carry sequence
//! numbers 0..n-1 and the same total n, one run per request, e.g. one run for
//! the whole of a multi-key `get`. memcached 1.6.18 behaves differently: it
//! numbers each `VALUE` block of a multi-key `get` as a separate run
//! restarting at 0 with its own total (3 keys gave (seq,total) = (0,1) (0,2)
//! (1,2) (0,3) (1,3) (2,3); see `shared/notes/memcached.md`). Clients that
//! reassemble by protocol.txt's rule handle our numbering; this is a
//! deliberate divergence. Two commands in one request datagram are still two
//! replies (the front end starts one splitter per reply).

use super::checksum;
use super::ethernet::{ETHERNET_HEADER_BYTES, ETHERNET_MIN_FRAME_BYTES};
use super::ipv4::{IPV4_DEFAULT_TTL, IPV4_FLAG_DF, IPV4_HEADER_BYTES};
use super::ipv6::{self, IPV6_DEFAULT_HOP_LIMIT, IPV6_HEADER_BYTES, IPV6_NEXT_HEADER_FRAGMENT};
use super::memcache_udp::UDP_FRAME_TOTAL_OFFSET;
use super::udp::UDP_HEADER_BYTES;
use super::{
    Error, EtherType, EthernetAddress, EthernetFrame, FrameHeader, HeaderRule, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, Ipv6Repr, MemcacheUdpFrame, Result, UdpPacket, IP_PROTOCOL_UDP,
    UDP_FRAME_HEADER_BYTES, UDP_MAX_PAYLOAD_BYTES,
};

pub use super::udp::IpPair;

/// Bytes of Ethernet + IPv4 + UDP + memcache headers: 42 + 8 = 50.
pub const IPV4_REPLY_HEADERS_BYTES: usize =
    ETHERNET_HEADER_BYTES + IPV4_HEADER_BYTES + UDP_HEADER_BYTES + UDP_FRAME_HEADER_BYTES;
/// Bytes of Ethernet + IPv6 + UDP + memcache headers: 62 + 8 = 70.
pub const IPV6_REPLY_HEADERS_BYTES: usize =
    ETHERNET_HEADER_BYTES + IPV6_HEADER_BYTES + UDP_HEADER_BYTES + UDP_FRAME_HEADER_BYTES;

/// What [`parse_request_frame`] checks beyond well-formedness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Verify the IPv4 header checksum (`BadIpChecksum`). Default on.
    pub verify_ipv4_checksum: bool,
    /// Verify the UDP checksum (`BadUdpChecksum`). Default off: NICs verify
    /// it, and veth leaves partial checksums in frames an XSK sees.
    pub verify_udp_checksum: bool,
    /// Accept only this UDP destination port (`WrongPort`); `None` = any.
    pub port: Option<u16>,
    /// Which memcache frame headers [`parse_request_frame`] accepts.
    /// Default: memcached's.
    pub header_rule: HeaderRule,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            verify_ipv4_checksum: true,
            verify_udp_checksum: false,
            port: None,
            header_rule: HeaderRule::Memcached,
        }
    }
}

/// Everything needed to address replies to one request, seen from the
/// replying side (source = us). Plain data: it outlives the request buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyAddressing {
    /// Our MAC (the request's destination).
    pub eth_src: EthernetAddress,
    /// The client's MAC (the request's source).
    pub eth_dst: EthernetAddress,
    /// Our address and the client's (source, destination of the reply).
    pub ips: IpPair,
    /// Our port (the request's destination port).
    pub src_port: u16,
    /// The client's port.
    pub dst_port: u16,
    /// The request id to echo.
    pub request_id: u16,
}

impl ReplyAddressing {
    /// Bytes of all headers in front of the reply payload (50 for IPv4, 70
    /// for IPv6); also the payload's offset in a reply frame.
    pub const fn headers_len(&self) -> usize {
        match self.ips {
            IpPair::V4 { .. } => IPV4_REPLY_HEADERS_BYTES,
            IpPair::V6 { .. } => IPV6_REPLY_HEADERS_BYTES,
        }
    }

    const fn l4_offset(&self) -> usize {
        match self.ips {
            IpPair::V4 { .. } => ETHERNET_HEADER_BYTES + IPV4_HEADER_BYTES,
            IpPair::V6 { .. } => ETHERNET_HEADER_BYTES + IPV6_HEADER_BYTES,
        }
    }
}

/// A checked UDP frame to the cache port: how to address replies to it and
/// where its UDP payload (the memcache datagram: frame header, then request
/// text) lies. Its frame header is not checked yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramFrame {
    /// Addressing of the replies (`request_id` 0: the frame header is not read).
    pub reply: ReplyAddressing,
    /// Offset of the UDP payload in the frame.
    pub datagram_offset: usize,
    /// Length of the UDP payload.
    pub datagram_len: usize,
}

impl DatagramFrame {
    /// The UDP payload inside `frame` (the buffer that was parsed; empty if
    /// given another, shorter buffer).
    pub fn datagram<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.datagram_offset..self.datagram_offset + self.datagram_len)
            .unwrap_or(&[])
    }
}

/// A checked request frame: how to answer it and where its payload lies.
/// Holds offsets, not borrows, so the frame can be reused for the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFrame {
    /// Addressing of the replies.
    pub reply: ReplyAddressing,
    /// The request's frame header (total 1; see [`HeaderRule`] for the rest).
    pub header: FrameHeader,
    /// Offset of the memcache payload (the ASCII request) in the frame.
    pub payload_offset: usize,
    /// Length of the memcache payload.
    pub payload_len: usize,
}

impl RequestFrame {
    /// The request payload inside `frame` (the buffer that was parsed; empty
    /// if given another, shorter buffer).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.payload_offset..self.payload_offset + self.payload_len)
            .unwrap_or(&[])
    }
}

/// Check a received Ethernet frame as a one-datagram memcache UDP request:
/// [`parse_datagram_frame`], then the frame header under
/// `opts.header_rule` ([`FrameHeader::parse_request`]).
///
/// Never panics. Each reason to drop is a distinct error, in the order
/// checked: `Truncated` (Ethernet), `NotIpv4OrIpv6`; for IPv4 the
/// [`Ipv4Repr::parse`] errors (`BadVersion`, `Ipv4Options`, `BadLength`,
/// `Truncated`, `Fragment`, `BadIpChecksum`) and `NotUdp`; for IPv6 the
/// [`Ipv6Repr::parse`] errors, `Fragment` (fragment header),
/// `Ipv6ExtensionHeader`, `NotUdp`; then `BadLength` (UDP length below 8 or
/// beyond the IP payload; a shorter UDP length is accepted and the rest
/// ignored, as Linux does), `WrongPort`, `BadUdpChecksum` (if asked),
/// `Truncated` (UDP payload under 8 bytes), `BadFrameHeader`,
/// `MultiDatagramRequest`. Trailing Ethernet padding is ignored.
pub fn parse_request_frame(frame: &[u8], opts: &ParseOptions) -> Result<RequestFrame> {
    let d = parse_datagram_frame(frame, opts)?;
    let mc = MemcacheUdpFrame::new_unchecked(d.datagram(frame));
    let header = FrameHeader::parse_request(&mc, opts.header_rule)?;
    Ok(RequestFrame {
        reply: ReplyAddressing {
            request_id: header.request_id,
            ..d.reply
        },
        header,
        payload_offset: d.datagram_offset + UDP_FRAME_HEADER_BYTES,
        payload_len: mc.payload().len(),
    })
}

/// Check a received Ethernet frame as a UDP datagram to the cache port,
/// without reading its memcache frame header: the errors of
/// [`parse_request_frame`] up to `BadUdpChecksum`. Never panics.
pub fn parse_datagram_frame(frame: &[u8], opts: &ParseOptions) -> Result<DatagramFrame> {
    let eth = EthernetFrame::new_checked(frame)?;
    let ip_bytes = EthernetFrame::new_unchecked(frame).into_payload();
    let (ips, l4_offset, udp_bytes) = match eth.ethertype() {
        EtherType::Ipv4 => {
            let packet = Ipv4Packet::new_unchecked(ip_bytes);
            let repr = Ipv4Repr::parse(&packet, opts.verify_ipv4_checksum)?;
            if repr.protocol != IP_PROTOCOL_UDP {
                return Err(Error::NotUdp);
            }
            let ips = IpPair::V4 {
                src: repr.src_addr,
                dst: repr.dst_addr,
            };
            (
                ips,
                ETHERNET_HEADER_BYTES + IPV4_HEADER_BYTES,
                packet.into_payload(),
            )
        }
        EtherType::Ipv6 => {
            let packet = Ipv6Packet::new_unchecked(ip_bytes);
            let repr = Ipv6Repr::parse(&packet)?;
            match repr.next_header {
                IP_PROTOCOL_UDP => {}
                IPV6_NEXT_HEADER_FRAGMENT => return Err(Error::Fragment),
                nh if ipv6::is_extension_header(nh) => return Err(Error::Ipv6ExtensionHeader),
                _ => return Err(Error::NotUdp),
            }
            let ips = IpPair::V6 {
                src: repr.src_addr,
                dst: repr.dst_addr,
            };
            (
                ips,
                ETHERNET_HEADER_BYTES + IPV6_HEADER_BYTES,
                packet.into_payload(),
            )
        }
        _ => return Err(Error::NotIpv4OrIpv6),
    };
    let udp = UdpPacket::new_unchecked(udp_bytes);
    // The IP header already vouched for where the packet ends, so any length
    // disagreement here is inconsistency, not truncation.
    if udp.check_len().is_err() {
        return Err(Error::BadLength);
    }
    if let Some(port) = opts.port {
        if udp.dst_port() != port {
            return Err(Error::WrongPort);
        }
    }
    if opts.verify_udp_checksum && !udp.verify_checksum(&ips) {
        return Err(Error::BadUdpChecksum);
    }
    let datagram_len = UdpPacket::new_unchecked(udp_bytes).into_payload().len();
    Ok(DatagramFrame {
        reply: ReplyAddressing {
            eth_src: eth.dst_addr(),
            eth_dst: eth.src_addr(),
            ips: ips.reversed(),
            src_port: udp.dst_port(),
            dst_port: udp.src_port(),
            request_id: 0,
        },
        datagram_offset: l4_offset + UDP_HEADER_BYTES,
        datagram_len,
    })
}

/// Write all headers of a reply frame in front of a payload that the caller
/// already placed at `addr.headers_len()` in `buf`, with full IPv4 header and
/// UDP checksums. Returns the frame length to transmit, padded with zeros to
/// the 60-byte Ethernet minimum when `buf` is long enough.
///
/// IPv4 replies carry identification 0 with DF set (RFC 6864), TTL 64,
/// DSCP/ECN 0; IPv6 replies traffic class 0, flow label 0, hop limit 64.
/// Errors: `PayloadTooLarge` above [`UDP_MAX_PAYLOAD_BYTES`],
/// `BufferTooSmall` when headers plus payload do not fit `buf`.
pub fn write_reply_frame(
    buf: &mut [u8],
    addr: &ReplyAddressing,
    payload_len: usize,
    sequence: u16,
    total: u16,
) -> Result<usize> {
    if payload_len > UDP_MAX_PAYLOAD_BYTES {
        return Err(Error::PayloadTooLarge);
    }
    let frame_len = addr.headers_len() + payload_len;
    let Some(frame) = buf.get_mut(..frame_len) else {
        return Err(Error::BufferTooSmall);
    };
    // At most 1400 + 8, fits a u16.
    let udp_len = (UDP_HEADER_BYTES + UDP_FRAME_HEADER_BYTES + payload_len) as u16;

    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    eth.set_dst_addr(addr.eth_dst);
    eth.set_src_addr(addr.eth_src);
    match addr.ips {
        IpPair::V4 { src, dst } => {
            eth.set_ethertype(EtherType::Ipv4);
            let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
            ip.set_version_and_header_len(IPV4_HEADER_BYTES);
            ip.set_dscp_ecn(0);
            ip.set_total_len(IPV4_HEADER_BYTES as u16 + udp_len);
            ip.set_ident(0);
            ip.set_flags_fragment(IPV4_FLAG_DF);
            ip.set_ttl(IPV4_DEFAULT_TTL);
            ip.set_protocol(IP_PROTOCOL_UDP);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            ip.fill_checksum();
        }
        IpPair::V6 { src, dst } => {
            eth.set_ethertype(EtherType::Ipv6);
            let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
            ip.set_version_class_flow(0, 0);
            ip.set_payload_len(udp_len);
            ip.set_next_header(IP_PROTOCOL_UDP);
            ip.set_hop_limit(IPV6_DEFAULT_HOP_LIMIT);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
        }
    }
    let l4 = addr.l4_offset();
    let mut udp = UdpPacket::new_unchecked(field_tail(frame, l4));
    udp.set_src_port(addr.src_port);
    udp.set_dst_port(addr.dst_port);
    udp.set_len(udp_len);
    let mut mc = MemcacheUdpFrame::new_unchecked(udp.payload_mut());
    mc.set_request_id(addr.request_id);
    mc.set_sequence(sequence);
    mc.set_total(total);
    mc.set_reserved(0);
    udp.fill_checksum(&addr.ips);
    Ok(pad_to_minimum(buf, frame_len))
}

/// Turn the received request frame in `frame` into its reply, in place: the
/// caller has already written `payload_len` reply bytes at
/// `req.payload_offset` (over the request text, which it copied out first).
/// MACs, IP addresses and ports are swapped, the request id kept, sequence
/// and total set, lengths rewritten and both checksums computed in full
/// (never left partial or zero, also over IPv6). `frame` is the whole frame
/// buffer (its capacity, not only the received length). Returns the length to
/// transmit; errors as [`write_reply_frame`].
///
/// Equivalent to `write_reply_frame(frame, &req.reply, ..)`: because options,
/// fragments and extension headers were refused, the reply headers occupy
/// exactly the bytes of the request headers.
pub fn finish_reply_in_place(
    frame: &mut [u8],
    req: &RequestFrame,
    payload_len: usize,
    sequence: u16,
    total: u16,
) -> Result<usize> {
    write_reply_frame(frame, &req.reply, payload_len, sequence, total)
}

fn field_tail(buf: &mut [u8], from: usize) -> &mut [u8] {
    match buf.get_mut(from..) {
        Some(s) => s,
        None => &mut [],
    }
}

fn pad_to_minimum(buf: &mut [u8], len: usize) -> usize {
    if len >= ETHERNET_MIN_FRAME_BYTES {
        return len;
    }
    match buf.get_mut(len..ETHERNET_MIN_FRAME_BYTES) {
        Some(pad) => {
            pad.fill(0);
            ETHERNET_MIN_FRAME_BYTES
        }
        None => len,
    }
}

/// Where the datagrams of a reply go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyTarget {
    /// Bare memcache datagrams (frame header + payload) for a kernel UDP
    /// socket, which adds IP and UDP itself.
    Datagram {
        /// The request id to echo.
        request_id: u16,
    },
    /// Complete Ethernet frames (AF_XDP).
    Frame(ReplyAddressing),
}

impl ReplyTarget {
    /// Offset of the payload in a datagram buffer: 8, 50 or 70.
    pub const fn payload_offset(&self) -> usize {
        match self {
            ReplyTarget::Datagram { .. } => UDP_FRAME_HEADER_BYTES,
            ReplyTarget::Frame(a) => a.headers_len(),
        }
    }

    /// The same target answering request `request_id`.
    pub const fn with_request_id(self, request_id: u16) -> Self {
        match self {
            ReplyTarget::Datagram { .. } => ReplyTarget::Datagram { request_id },
            ReplyTarget::Frame(a) => ReplyTarget::Frame(ReplyAddressing { request_id, ..a }),
        }
    }

    const fn request_id(&self) -> u16 {
        match self {
            ReplyTarget::Datagram { request_id } => *request_id,
            ReplyTarget::Frame(a) => a.request_id,
        }
    }

    const fn frame_header_offset(&self) -> usize {
        self.payload_offset() - UDP_FRAME_HEADER_BYTES
    }
}

/// One datagram produced by [`DatagramSplitter::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced<R> {
    /// Bytes of the buffer to send; 0 when the fill wrote nothing (then no
    /// datagram was produced and no sequence number used).
    pub len: usize,
    /// Sequence number of this datagram (meaningless when `len` is 0).
    pub sequence: u16,
    /// What the fill closure returned (e.g. the engine's `Progress`).
    pub value: R,
}

/// Splits one reply into numbered datagrams of at most
/// [`UDP_MAX_PAYLOAD_BYTES`] payload bytes, one at a time into buffers the
/// caller owns (e.g. UMEM frames), then patches the total into each.
///
/// Protocol: call [`next`](Self::next) while the reply goes on; when it is
/// complete, [`total`](Self::total) is the datagram count and
/// [`finish`](Self::finish) must be called on every produced datagram (their
/// headers carry total 0 until then; for frames the UDP checksum is updated
/// incrementally, RFC 1624). Sequence numbers run 0..n-1 for the whole reply
/// (see the module docs on numbering).
#[derive(Debug, Clone)]
pub struct DatagramSplitter {
    target: ReplyTarget,
    produced: u16,
}

/// The name the front ends use for [`DatagramSplitter`].
pub type UdpReply = DatagramSplitter;

impl DatagramSplitter {
    /// A splitter for one reply.
    pub const fn new(target: ReplyTarget) -> Self {
        DatagramSplitter {
            target,
            produced: 0,
        }
    }

    /// Where the datagrams go.
    pub const fn target(&self) -> &ReplyTarget {
        &self.target
    }

    /// Datagrams produced so far: the total once the reply is complete.
    pub const fn total(&self) -> u16 {
        self.produced
    }

    /// Produce the next datagram in `buf`: `fill` gets the payload area (at
    /// most 1392 bytes, less if `buf` is short) and returns how many bytes it
    /// wrote and a value passed back in [`Produced::value`]. Headers are
    /// written with total 0 and full checksums.
    ///
    /// Errors: `TooManyDatagrams` after 65535 datagrams and `BufferTooSmall`
    /// when `buf` cannot hold the headers (both before `fill` runs);
    /// `PayloadTooLarge` when `fill` claims more bytes than its area (nothing
    /// is produced).
    pub fn next<R>(
        &mut self,
        buf: &mut [u8],
        fill: impl FnOnce(&mut [u8]) -> (usize, R),
    ) -> Result<Produced<R>> {
        if self.produced == u16::MAX {
            return Err(Error::TooManyDatagrams);
        }
        let offset = self.target.payload_offset();
        let area_len = match buf.len().checked_sub(offset) {
            Some(n) => n.min(UDP_MAX_PAYLOAD_BYTES),
            None => return Err(Error::BufferTooSmall),
        };
        let area = match buf.get_mut(offset..offset + area_len) {
            Some(a) => a,
            None => return Err(Error::BufferTooSmall),
        };
        let (written, value) = fill(area);
        if written > area_len {
            return Err(Error::PayloadTooLarge);
        }
        let sequence = self.produced;
        if written == 0 {
            return Ok(Produced {
                len: 0,
                sequence,
                value,
            });
        }
        let len = match &self.target {
            ReplyTarget::Datagram { request_id } => {
                let h = FrameHeader {
                    request_id: *request_id,
                    sequence,
                    total: 0,
                    reserved: 0,
                };
                h.emit(&mut MemcacheUdpFrame::new_unchecked(&mut *buf))?;
                offset + written
            }
            ReplyTarget::Frame(addr) => write_reply_frame(buf, addr, written, sequence, 0)?,
        };
        self.produced += 1;
        Ok(Produced {
            len,
            sequence,
            value,
        })
    }

    /// Write the final total into a datagram this splitter produced (`buf`
    /// starts at the datagram; its length is not otherwise used). Frames get
    /// their UDP checksum updated. `BadFrameHeader` when `buf` does not hold
    /// one of this reply's datagrams (other request id, sequence not yet
    /// produced, or total already set to something else).
    pub fn finish(&self, buf: &mut [u8]) -> Result<()> {
        let at = self.target.frame_header_offset();
        let header = {
            let Some(h) = buf.get(at..at + UDP_FRAME_HEADER_BYTES) else {
                return Err(Error::BadFrameHeader);
            };
            FrameHeader::parse(&MemcacheUdpFrame::new_unchecked(h))?
        };
        if header.request_id != self.target.request_id()
            || header.sequence >= self.produced
            || (header.total != 0 && header.total != self.produced)
        {
            return Err(Error::BadFrameHeader);
        }
        patch_total(buf, &self.target, header.total, self.produced)
    }
}

fn patch_total(buf: &mut [u8], target: &ReplyTarget, old: u16, new: u16) -> Result<()> {
    let at = target.frame_header_offset() + UDP_FRAME_TOTAL_OFFSET;
    let Some(field) = buf.get_mut(at..at + 2) else {
        return Err(Error::BufferTooSmall);
    };
    field.copy_from_slice(&new.to_be_bytes());
    if let ReplyTarget::Frame(addr) = target {
        let Some(rest) = buf.get_mut(addr.l4_offset()..) else {
            return Err(Error::BufferTooSmall);
        };
        let mut udp = UdpPacket::new_unchecked(rest);
        // The total sits at an even offset of the UDP datagram (8 + 4).
        let updated = checksum::update_word(udp.checksum(), old, new);
        udp.set_checksum(checksum::udp_field(updated));
    }
    Ok(())
}
