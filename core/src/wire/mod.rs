//! Wire formats of memcache over UDP: Ethernet, IPv4, IPv6, UDP, their
//! checksums, the 8-byte memcache UDP frame header, and reply construction.
//!
//! Modelled on smoltcp's `wire` module. Each header has two layers:
//!
//! * a **view** (`EthernetFrame`, `Ipv4Packet`, `Ipv6Packet`, `UdpPacket`,
//!   `MemcacheUdpFrame`) over any `T: AsRef<[u8]>`, with field getters, setters
//!   (for `T: AsMut<[u8]>`) and zero-copy payload accessors;
//! * a **`Repr`**, the checked high-level form, with `parse` from a view,
//!   `emit` into a view and `buffer_len` / `HEADER_LEN` for sizing.
//!
//! # The no-panic promise
//!
//! `new_checked` (or `new_unchecked` followed by `check_len`) verifies that
//! every fixed field *and* the payload range described by the length fields
//! lie inside the buffer. Going further than smoltcp, **no accessor of any
//! view ever panics**, even on a view that never passed `check_len`: a getter
//! whose bytes are missing returns 0 (or an empty slice), and a setter whose
//! bytes are missing does nothing. `check_len` is what tells a caller that the
//! values it reads are real. `Repr::parse`, [`parse_request_frame`] and the
//! reply builders never panic on any input and report every reason to drop a
//! frame as a distinct [`Error`] variant, so callers can count drops by reason.
//!
//! # Layout of a request this module accepts
//!
//! ```text
//!  0      14            34 / 54       42 / 62                50 / 70
//!  +------+-------------+-------------+----------------------+---------------
//!  | Eth  | IPv4 (20 B, | UDP (8 B)   | memcache frame hdr   | request text
//!  | 14 B | no options) |             | id|seq|total|reserved| (ASCII proto)
//!  |      | or IPv6 40B |             | 4 x big-endian u16   |
//!  +------+-------------+-------------+----------------------+---------------
//! ```
//!
//! No 802.1Q tags, no IPv4 options, no fragments, no IPv6 extension headers:
//! those are dropped with their own error, as the XDP program passes them to
//! the kernel before they ever reach this code.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// Declares a view `$name<T: AsRef<[u8]>>` over a buffer with what every view
/// has alike: `new_unchecked`, `new_checked` (through the view's own
/// `check_len`), `into_inner`, and the payload accessors `payload`,
/// `into_payload` and `payload_mut` over the range the view's own
/// `payload_range` gives (which an out-of-buffer range makes empty).
macro_rules! view {
    ($(#[$doc:meta])* $name:ident, $(#[$payload_doc:meta])* payload) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wrap a buffer without checking it.
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wrap a buffer and [`check_len`](Self::check_len) it.
            pub fn new_checked(buffer: T) -> Result<Self> {
                let p = Self::new_unchecked(buffer);
                p.check_len()?;
                Ok(p)
            }

            /// Give back the buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            $(#[$payload_doc])*
            pub fn payload(&self) -> &[u8] {
                field::slice(self.buffer.as_ref(), self.payload_range())
            }
        }

        impl<'a> $name<&'a [u8]> {
            /// Consume the view, returning its payload with the buffer's
            /// lifetime (same range as `payload`).
            pub fn into_payload(self) -> &'a [u8] {
                let range = self.payload_range();
                field::slice(self.buffer, range)
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// The payload, writable (same range as `payload`).
            pub fn payload_mut(&mut self) -> &mut [u8] {
                let range = self.payload_range();
                field::slice_mut(self.buffer.as_mut(), range)
            }
        }
    };
}

pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod memcache_udp;
pub mod reply;
pub mod udp;

#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use ipv4::{Ipv4Address, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Address, Ipv6Packet, Ipv6Repr};
pub use memcache_udp::{
    FrameHeader, HeaderRule, MemcacheUdpFrame, UDP_FRAME_HEADER_BYTES, UDP_MAX_DATAGRAM_BYTES,
    UDP_MAX_PAYLOAD_BYTES,
};
pub use reply::{
    finish_reply_in_place, parse_datagram_frame, parse_request_frame, write_reply_frame,
    DatagramFrame, DatagramSplitter, IpPair, ParseOptions, Produced, ReplyAddressing, ReplyTarget,
    RequestFrame, UdpReply,
};
pub use udp::{UdpPacket, UdpRepr};

/// IP protocol number of UDP (IPv4 `protocol`, IPv6 `next header`).
pub const IP_PROTOCOL_UDP: u8 = 17;

/// Why a frame was dropped or a reply could not be built.
///
/// One variant per reason so that a front end can keep one counter per
/// variant (see [`Error::ALL`], [`Error::index`] and [`Error::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before a header or before the end its length fields
    /// announce.
    Truncated,
    /// The Ethernet frame carries neither IPv4 nor IPv6 (ARP, VLAN tag, ...).
    NotIpv4OrIpv6,
    /// The IP version nibble does not match the EtherType.
    BadVersion,
    /// An IPv4 header with options (IHL > 5).
    Ipv4Options,
    /// An IPv4 fragment (MF set or non-zero offset) or an IPv6 fragment header.
    Fragment,
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    /// A length field is inconsistent (IHL < 5, IP total length shorter than
    /// its header, UDP length below 8 or beyond the IP payload, ...).
    BadLength,
    /// The IP payload is not UDP.
    NotUdp,
    /// An IPv6 extension header precedes the transport header.
    Ipv6ExtensionHeader,
    /// The UDP checksum does not verify (or is zero over IPv6).
    BadUdpChecksum,
    /// The UDP destination port is not the cache port asked for.
    WrongPort,
    /// The memcache UDP frame header has reserved bits set or a zero total
    /// ([`HeaderRule::Strict`] only), or a reply datagram's header is not
    /// one of the reply's ([`DatagramSplitter::finish`]).
    BadFrameHeader,
    /// The request spans several datagrams (total != 1; under
    /// [`HeaderRule::Strict`] also sequence != 0); memcached drops these, and
    /// so do we.
    MultiDatagramRequest,
    /// A reply payload exceeds [`UDP_MAX_PAYLOAD_BYTES`].
    PayloadTooLarge,
    /// The output buffer cannot hold the reply being built.
    BufferTooSmall,
    /// A reply would need more than 65535 datagrams.
    TooManyDatagrams,
}

impl Error {
    /// Every variant, in [`Error::index`] order: size counter arrays with
    /// `Error::ALL.len()`.
    pub const ALL: [Error; 16] = [
        Error::Truncated,
        Error::NotIpv4OrIpv6,
        Error::BadVersion,
        Error::Ipv4Options,
        Error::Fragment,
        Error::BadIpChecksum,
        Error::BadLength,
        Error::NotUdp,
        Error::Ipv6ExtensionHeader,
        Error::BadUdpChecksum,
        Error::WrongPort,
        Error::BadFrameHeader,
        Error::MultiDatagramRequest,
        Error::PayloadTooLarge,
        Error::BufferTooSmall,
        Error::TooManyDatagrams,
    ];

    /// A stable position in `0..Error::ALL.len()`, for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name for metrics (e.g. `ipv4_options`).
    pub const fn name(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::NotIpv4OrIpv6 => "not_ipv4_or_ipv6",
            Error::BadVersion => "bad_version",
            Error::Ipv4Options => "ipv4_options",
            Error::Fragment => "fragment",
            Error::BadIpChecksum => "bad_ip_checksum",
            Error::BadLength => "bad_length",
            Error::NotUdp => "not_udp",
            Error::Ipv6ExtensionHeader => "ipv6_extension_header",
            Error::BadUdpChecksum => "bad_udp_checksum",
            Error::WrongPort => "wrong_port",
            Error::BadFrameHeader => "bad_frame_header",
            Error::MultiDatagramRequest => "multi_datagram_request",
            Error::PayloadTooLarge => "payload_too_large",
            Error::BufferTooSmall => "buffer_too_small",
            Error::TooManyDatagrams => "too_many_datagrams",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Result of the wire module.
pub type Result<T> = core::result::Result<T, Error>;

/// Panic-free field access shared by the views.
///
/// Reads of bytes outside the buffer yield zeros; writes outside it are
/// ignored. Views only rely on this after `check_len`, where it never happens.
pub(crate) mod field {
    /// A byte range of a header field.
    pub type Field = core::ops::Range<usize>;

    #[inline(always)]
    pub fn u8_at(data: &[u8], at: usize) -> u8 {
        match data.get(at) {
            Some(b) => *b,
            None => 0,
        }
    }

    #[inline(always)]
    pub fn set_u8_at(data: &mut [u8], at: usize, value: u8) {
        if let Some(b) = data.get_mut(at) {
            *b = value;
        }
    }

    #[inline(always)]
    pub fn u16_at(data: &[u8], f: Field) -> u16 {
        match data.get(f) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    #[inline(always)]
    pub fn set_u16_at(data: &mut [u8], f: Field, value: u16) {
        if let Some(dst) = data.get_mut(f) {
            if dst.len() == 2 {
                dst.copy_from_slice(&value.to_be_bytes());
            }
        }
    }

    #[inline(always)]
    pub fn array_at<const N: usize>(data: &[u8], f: Field) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = data.get(f) {
            if src.len() == N {
                out.copy_from_slice(src);
            }
        }
        out
    }

    #[inline(always)]
    pub fn set_bytes_at(data: &mut [u8], f: Field, value: &[u8]) {
        if let Some(dst) = data.get_mut(f) {
            if dst.len() == value.len() {
                dst.copy_from_slice(value);
            }
        }
    }

    #[inline(always)]
    pub fn slice(data: &[u8], f: Field) -> &[u8] {
        data.get(f).unwrap_or(&[])
    }

    #[inline(always)]
    pub fn slice_mut(data: &mut [u8], f: Field) -> &mut [u8] {
        match data.get_mut(f) {
            Some(s) => s,
            None => &mut [],
        }
    }
}
