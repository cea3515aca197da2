//! The datagram layer: memcache over UDP from a request datagram to its
//! reply datagrams, the same for every UDP front end (kernel sockets,
//! AF_XDP queues), which keep only their sockets, rings and buffers around
//! it. Like quinn-proto's endpoint, it owns the anti-amplification rules
//! and never does I/O or reads a clock.
//!
//! ```text
//!  request datagram (UDP payload) from src
//!     |
//!     +-- frame header under the HeaderRule ---- fails --> UdpDrop::Malformed / MultiDatagram
//!     |   (memcached's: count must be 1)
//!     +-- UdpGuard::admit(src, bytes) ---------- empty bucket --> UdpDrop::RateLimited
//!     |
//!     +-- process(input, area) into datagram after datagram (DatagramSplitter),
//!     |   each in a buffer of the front end's DatagramSink
//!     |       over the cap ---> discard, SERVER_ERROR reply too large for UDP
//!     |                         if it fits the cap --> UdpDrop::OverCap
//!     |       no buffer left --> discard -------------> UdpDrop::ReplyTooLarge
//!     +-- patch the total into each datagram, UdpGuard::settle
//!     v
//!  Ok(datagrams kept in the sink)
//! ```
//!
//! Every outcome is counted once: the guard's decisions in
//! [`guard::GuardStats`] (`udp_guard_*`), the rest in [`UdpStats`]
//! (`udp_*`).
//!
//! # Bytes under the amplification cap
//!
//! The cap compares like with like: the request's UDP payload (frame header
//! included) against the sum of the reply datagrams' UDP payloads (frame
//! header included, `8 + reply bytes` per datagram). IP, UDP and Ethernet
//! headers count on neither side, so the same request gets the same answer
//! whether a kernel socket or an AF_XDP queue serves it (a frame's header
//! size differs between IPv4 and IPv6, a socket's is invisible).

pub mod guard;
mod responder;
#[cfg(test)]
mod tests;

pub use responder::{DatagramSink, Responder};

use crate::wire::Error as WireError;

/// Why a request datagram got no reply (or, for [`UdpDrop::OverCap`], not
/// the reply it asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpDrop {
    /// Shorter than the 8-byte frame header (or, under
    /// [`HeaderRule::Strict`](crate::wire::HeaderRule::Strict), a non-zero
    /// reserved field). Counted in [`UdpStats::dropped_malformed`].
    Malformed,
    /// Its frame header's count is not 1: part of a multi-datagram request,
    /// which memcached drops too. Counted in
    /// [`UdpStats::dropped_multi_datagram`].
    MultiDatagram,
    /// The source's token bucket was empty; not executed. Counted by the
    /// guard (`dropped_rate_limited`).
    RateLimited,
    /// The reply exceeded the amplification cap; `replaced`: one datagram
    /// of `SERVER_ERROR reply too large for UDP` was kept instead. Counted
    /// by the guard (`replies_replaced`, `replies_dropped_too_large`).
    OverCap {
        /// The error datagram was kept in the sink.
        replaced: bool,
    },
    /// The reply needs more datagrams than the front end had buffers for
    /// (or than 65535), or the service broke its contract (wrote past its
    /// area, or reported a full area without writing). Counted in
    /// [`UdpStats::dropped_reply_too_large`].
    ReplyTooLarge,
}

impl UdpDrop {
    /// The drop a frame-header error stands for.
    fn from_header_error(e: WireError) -> UdpDrop {
        match e {
            WireError::MultiDatagramRequest => UdpDrop::MultiDatagram,
            _ => UdpDrop::Malformed,
        }
    }
}

crate::metrics! {
    /// What the datagram layer did with request datagrams, beyond the
    /// guard's decisions. One set per process, shared by every UDP front
    /// end (as the guard is).
    pub struct UdpStats {
        dropped_malformed: Counter("datagrams") "UDP request datagrams dropped: shorter than the 8-byte frame header",
        dropped_multi_datagram: Counter("datagrams") "UDP request datagrams dropped: part of a multi-datagram request (datagram count != 1)",
        dropped_reply_too_large: Counter("datagrams") "UDP request datagrams unanswered: the reply needed more datagrams than the front end had room for",
        incomplete: Counter("datagrams") "UDP request datagrams whose last command was incomplete (that part ignored)",
        multi_datagram_replies: Counter("replies") "UDP replies that needed more than one datagram",
        empty_receives: Counter("calls") "kernel UDP receive calls that found no datagram (the worker was woken after another worker had taken them; the look at start-up is not counted)",
    }
}

impl UdpStats {
    /// Counts `drop` here if it is one of this set's (the guard counts the others).
    pub fn count(&self, drop: UdpDrop) {
        match drop {
            UdpDrop::Malformed => self.dropped_malformed.incr(),
            UdpDrop::MultiDatagram => self.dropped_multi_datagram.incr(),
            UdpDrop::ReplyTooLarge => self.dropped_reply_too_large.incr(),
            UdpDrop::RateLimited | UdpDrop::OverCap { .. } => {}
        }
    }
}

/// `stats` prints these counters as `udp_<name>`.
impl crate::engine::StatsSource for UdpStats {
    fn for_each_stat(&self, f: &mut dyn FnMut(&str, &str, u64)) {
        self.for_each(|name, _, _, v| f("udp_", name, v));
    }
}
