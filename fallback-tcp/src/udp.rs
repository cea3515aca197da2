//! memcache over UDP on a kernel socket, with batched `recvmmsg`/`sendmmsg`.
//!
//! Every request datagram starts with memcached's 8-byte frame header (request
//! id, sequence number, datagram count, reserved: big-endian u16 each) and
//! must be a whole request (count 1); anything else is dropped and counted,
//! as memcached 1.6.18 drops it. Like memcached, the sequence number and the
//! reserved field of a request are ignored (memcaslap sends reserved 0x0100).
//! The reply is produced by the service into the payload areas of
//! consecutive reply datagrams (1392 bytes each, 1400 with the header), numbered 0..n-1 with count n as protocol.txt describes
//! (memcached 1.6 restarts the numbering per `VALUE` block of a multi-key get;
//! Petrel numbers the whole reply). A reply of zero bytes (`noreply`) sends
//! no datagram. Several requests in one datagram get one reply run (memcached
//! sends one run per request). Framing comes from `petrel_core::wire`.
//!
//! With a [`UdpGuard`] (the server always has one), every request datagram is
//! first admitted by it: allowlisted sources are answered without limits,
//! rate-limited sources not at all, and for the others the reply may not
//! exceed the guard's byte cap; over it, the reply is replaced by
//! `SERVER_ERROR reply too large for UDP` when that fits, else dropped (see
//! `petrel_core::guard`, which also counts every decision).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

use petrel_core::histogram::{ClassCounts, LatencyStats};
use std::sync::Arc;

use petrel_core::guard::{Admission, Outcome, UdpGuard, TOO_LARGE_REPLY};

use petrel_core::wire::memcache_udp::{FrameHeader, MemcacheUdpFrame};
pub use petrel_core::wire::memcache_udp::{
    UDP_FRAME_HEADER_BYTES, UDP_MAX_DATAGRAM_BYTES, UDP_MAX_PAYLOAD_BYTES,
};
use petrel_core::wire::reply::{DatagramSplitter, ReplyTarget};

use crate::buffer::PageBuf;
use crate::service::{Progress, Service, Status, Time, Transport};
use crate::stats::FrontendStats;
/// Receive slot size: the largest UDP payload, so no request is truncated.
pub const UDP_RX_SLOT_BYTES: usize = 65536;
/// Datagrams taken per `recvmmsg` call.
pub const UDP_RX_BATCH: usize = 32;
/// Datagrams handed to one `sendmmsg` call.
const UDP_TX_BATCH: usize = 64;
/// How long a worker waits for send-buffer room before dropping datagrams.
const UDP_SEND_WAIT_MS: i32 = 10;

/// The reply datagrams of one worker: fixed slots of [`UDP_MAX_DATAGRAM_BYTES`].
pub struct ReplyArea {
    buf: PageBuf,
    lens: Vec<usize>,
    /// Which received datagram (its source address) each reply slot goes to.
    dest: Vec<usize>,
    used: usize,
    /// Requests answered by the queued datagrams, by command class.
    completed: ClassCounts,
}

impl ReplyArea {
    /// An area that holds `slots` reply datagrams (allocated once).
    pub fn new(slots: usize) -> io::Result<Self> {
        let slots = slots.max(1);
        Ok(ReplyArea {
            buf: PageBuf::new(slots * UDP_MAX_DATAGRAM_BYTES)?,
            lens: vec![0; slots],
            dest: vec![0; slots],
            used: 0,
            completed: ClassCounts::new(),
        })
    }

    /// Reply datagrams the area holds.
    pub fn slots(&self) -> usize {
        self.lens.len()
    }

    /// Datagram `i` (header included) as queued.
    pub fn datagram(&self, i: usize) -> &[u8] {
        let at = i * UDP_MAX_DATAGRAM_BYTES;
        &self.buf[at..at + self.lens[i]]
    }

    /// Forgets every queued datagram.
    pub fn clear(&mut self) {
        self.used = 0;
        self.completed = ClassCounts::new();
    }

    /// Requests answered by the queued datagrams, by command class; resets
    /// them (their replies are about to be sent).
    pub fn take_completed(&mut self) -> ClassCounts {
        self.completed.take()
    }
}

/// Why a request datagram got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpDrop {
    /// Shorter than the frame header.
    Malformed,
    /// Datagram count != 1: part of a multi-datagram request.
    MultiDatagram,
    /// The reply needs more datagrams than the reply area has free.
    ReplyTooLarge,
    /// The reply exceeded the amplification cap it was given; `replaced`:
    /// one datagram of `SERVER_ERROR reply too large for UDP` was appended
    /// instead (it fit under the cap), else nothing.
    OverCap {
        /// The error datagram was appended.
        replaced: bool,
    },
}

/// Answers one request datagram: appends its reply datagrams (headers
/// complete) to `area`, tagged with `dest`. Returns how many were appended
/// (0 for `noreply`), or why the datagram was dropped (nothing appended,
/// except the error datagram of [`UdpDrop::OverCap`]). The reply's
/// datagrams (frame headers included) may total at most `max_reply_bytes`.
pub fn answer_datagram<S: Service>(
    service: &S,
    datagram: &[u8],
    dest: usize,
    area: &mut ReplyArea,
    now: Time,
    stats: &FrontendStats,
    max_reply_bytes: usize,
) -> Result<usize, UdpDrop> {
    // memcached checks only the datagram count: sequence and reserved are
    // ignored (memcaslap sets reserved to 0x0100), so FrameHeader::parse,
    // not the stricter parse_request.
    let Ok(header) = MemcacheUdpFrame::new_checked(datagram).and_then(|f| FrameHeader::parse(&f))
    else {
        return Err(UdpDrop::Malformed);
    };
    if header.total != 1 {
        return Err(UdpDrop::MultiDatagram);
    }
    let input = &datagram[UDP_FRAME_HEADER_BYTES..];
    let first = area.used;
    let mut splitter = DatagramSplitter::new(ReplyTarget::Datagram {
        request_id: header.request_id,
    });
    let mut session = service.session(Transport::Udp);
    let mut consumed = 0;
    let mut reply_bytes = 0usize;
    loop {
        if area.used == area.slots() {
            area.used = first;
            return Err(UdpDrop::ReplyTooLarge);
        }
        let at = area.used * UDP_MAX_DATAGRAM_BYTES;
        let slot = &mut area.buf[at..at + UDP_MAX_DATAGRAM_BYTES];
        let produced = splitter.next(slot, |out| {
            let p = service.process(&mut session, &input[consumed..], out, now);
            (p.written.min(out.len()), p)
        });
        let Ok(produced) = produced else {
            // More than 65535 datagrams, or a service writing past `out`.
            area.used = first;
            return Err(UdpDrop::ReplyTooLarge);
        };
        let p: Progress = produced.value;
        consumed += p.consumed.min(input.len() - consumed);
        if produced.len > 0 {
            reply_bytes += produced.len;
            if reply_bytes > max_reply_bytes {
                // Over the amplification cap: stop executing, send at most
                // the short error.
                area.used = first;
                let error_len = UDP_FRAME_HEADER_BYTES + TOO_LARGE_REPLY.len();
                if error_len > max_reply_bytes {
                    return Err(UdpDrop::OverCap { replaced: false });
                }
                let at = area.used * UDP_MAX_DATAGRAM_BYTES;
                let slot = &mut area.buf[at..at + error_len];
                let h = FrameHeader {
                    request_id: header.request_id,
                    sequence: 0,
                    total: 1,
                    reserved: 0,
                };
                slot[..UDP_FRAME_HEADER_BYTES].copy_from_slice(&h.to_bytes());
                slot[UDP_FRAME_HEADER_BYTES..].copy_from_slice(TOO_LARGE_REPLY);
                area.lens[area.used] = error_len;
                area.dest[area.used] = dest;
                area.used += 1;
                return Err(UdpDrop::OverCap { replaced: true });
            }
            area.lens[area.used] = produced.len;
            area.dest[area.used] = dest;
            area.used += 1;
        }
        match p.status {
            Status::OutputFull if produced.len > 0 => {}
            Status::OutputFull => {
                // No progress possible: a contract breach; do not spin.
                area.used = first;
                return Err(UdpDrop::ReplyTooLarge);
            }
            Status::NeedInput => {
                if consumed < input.len() {
                    stats.udp_dropped_incomplete.incr();
                }
                break;
            }
            Status::Close => break,
        }
    }
    for slot in first..area.used {
        let at = slot * UDP_MAX_DATAGRAM_BYTES;
        if splitter
            .finish(&mut area.buf[at..at + UDP_MAX_DATAGRAM_BYTES])
            .is_err()
        {
            area.used = first;
            return Err(UdpDrop::ReplyTooLarge);
        }
    }
    area.completed.merge(&service.take_completed(&mut session));
    Ok(area.used - first)
}

/// One worker's view of a UDP socket, with its receive batch and reply area.
pub struct UdpPort {
    socket: UdpSocket,
    rx: PageBuf,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    /// Per received datagram: its length and whether it was truncated.
    rx_meta: Vec<(usize, bool)>,
    area: ReplyArea,
    /// Admits each request (allowlist, amplification cap, rate limit).
    guard: Option<Arc<UdpGuard>>,
    /// The socket may have datagrams waiting (edge-triggered readiness).
    pub ready: bool,
    /// When the batch being answered was received.
    batch_at: Instant,
}

impl UdpPort {
    /// Wraps a non-blocking socket; `reply_slots` bounds one reply's
    /// datagrams; `guard` (if any) admits every request.
    pub fn new(
        socket: UdpSocket,
        reply_slots: usize,
        guard: Option<Arc<UdpGuard>>,
    ) -> io::Result<Self> {
        Ok(UdpPort {
            socket,
            rx: PageBuf::new(UDP_RX_BATCH * UDP_RX_SLOT_BYTES)?,
            // SAFETY: sockaddr_storage is plain data; all-zero is valid.
            addrs: vec![unsafe { zeroed() }; UDP_RX_BATCH],
            addr_lens: vec![0; UDP_RX_BATCH],
            rx_meta: vec![(0, false); UDP_RX_BATCH],
            area: ReplyArea::new(reply_slots + UDP_RX_BATCH)?,
            guard,
            ready: true,
            batch_at: Instant::now(),
        })
    }

    /// The socket, for registration with a poller.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Serves up to `max_batches` receive batches. Returns true when the
    /// socket was drained (would block), false when work may be left. Each
    /// request's latency, from the `recvmmsg` that received it to the
    /// `sendmmsg` that sent its reply, goes to `latency`.
    pub fn serve<S: Service>(
        &mut self,
        service: &S,
        now: Time,
        max_batches: usize,
        stats: &FrontendStats,
        latency: &LatencyStats,
    ) -> bool {
        let reply_room = self.area.slots() - UDP_RX_BATCH;
        let guard_now_ms = monotonic_ms();
        for _ in 0..max_batches {
            let n = match self.receive_batch() {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("UDP receive failed: {e}");
                    return true;
                }
            };
            self.batch_at = Instant::now();
            stats.udp_datagrams_received.add(n as u64);
            for i in 0..n {
                let (len, truncated) = self.rx_meta[i];
                if truncated {
                    stats.udp_dropped_truncated.incr();
                    continue;
                }
                if self.area.slots() - self.area.used < reply_room {
                    self.flush(stats, latency);
                }
                let at = i * UDP_RX_SLOT_BYTES;
                let dgram = &self.rx[at..at + len];
                let admission = match &self.guard {
                    Some(g) => {
                        let src = sockaddr_ip(&self.addrs[i]);
                        g.admit(src, len, guard_now_ms)
                    }
                    None => Admission::Trusted,
                };
                let Some(max_reply_bytes) = admission.max_reply_bytes() else {
                    // Rate limited: counted by the guard; not even executed.
                    continue;
                };
                let r = answer_datagram(
                    service,
                    dgram,
                    i,
                    &mut self.area,
                    now,
                    stats,
                    max_reply_bytes,
                );
                let outcome = match r {
                    Ok(n) => Outcome::Sent(n),
                    Err(UdpDrop::OverCap { replaced: true }) => Outcome::Replaced,
                    Err(UdpDrop::OverCap { replaced: false }) => Outcome::Dropped,
                    Err(e) => {
                        match e {
                            UdpDrop::Malformed => stats.udp_dropped_malformed.incr(),
                            UdpDrop::MultiDatagram => stats.udp_dropped_multi_datagram.incr(),
                            _ => stats.udp_dropped_reply_too_large.incr(),
                        }
                        Outcome::Unanswered
                    }
                };
                if let Some(g) = &self.guard {
                    g.settle(admission, outcome, guard_now_ms);
                }
            }
            self.flush(stats, latency);
            if n < UDP_RX_BATCH {
                return true;
            }
        }
        false
    }

    /// Receives up to [`UDP_RX_BATCH`] datagrams with one `recvmmsg` call.
    fn receive_batch(&mut self) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain data; all-zero is valid.
        let mut iov: [libc::iovec; UDP_RX_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; UDP_RX_BATCH] = unsafe { zeroed() };
        let base = self.rx.as_mut_ptr();
        for i in 0..UDP_RX_BATCH {
            // SAFETY: slot i lies inside rx (UDP_RX_BATCH slots long).
            iov[i].iov_base = unsafe { base.add(i * UDP_RX_SLOT_BYTES) }.cast();
            iov[i].iov_len = UDP_RX_SLOT_BYTES;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: every pointer in msgs refers to live buffers owned by self
        // or this stack frame, sized as declared; the kernel writes at most
        // that much. The call does not block (MSG_DONTWAIT).
        let n = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                UDP_RX_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, m) in msgs.iter().enumerate().take(n) {
            self.addr_lens[i] = m.msg_hdr.msg_namelen;
            self.rx_meta[i] = (
                (m.msg_len as usize).min(UDP_RX_SLOT_BYTES),
                m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            );
        }
        Ok(n)
    }

    /// Sends every queued reply datagram with `sendmmsg`, waiting briefly for
    /// send-buffer room; what still cannot be sent is dropped and counted.
    fn flush(&mut self, stats: &FrontendStats, latency: &LatencyStats) {
        let total = self.area.used;
        let mut sent = 0;
        let mut waits = 0;
        while sent < total {
            let batch = (total - sent).min(UDP_TX_BATCH);
            // SAFETY: plain data; all-zero is valid.
            let mut iov: [libc::iovec; UDP_TX_BATCH] = unsafe { zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; UDP_TX_BATCH] = unsafe { zeroed() };
            for k in 0..batch {
                let slot = sent + k;
                let d = self.area.dest[slot];
                iov[k].iov_base = self.area.datagram(slot).as_ptr() as *mut libc::c_void;
                iov[k].iov_len = self.area.lens[slot];
                msgs[k].msg_hdr.msg_iov = &mut iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
                msgs[k].msg_hdr.msg_name =
                    (&mut self.addrs[d] as *mut libc::sockaddr_storage).cast();
                msgs[k].msg_hdr.msg_namelen = self.addr_lens[d];
            }
            // SAFETY: the pointers refer to the reply area and addresses owned
            // by self, alive for the call; the kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    batch as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                sent += n as usize;
                stats.udp_datagrams_sent.add(n as u64);
                continue;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock if waits < 3 => {
                    waits += 1;
                    let mut pfd = libc::pollfd {
                        fd: self.socket.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut pfd, 1, UDP_SEND_WAIT_MS) };
                }
                _ => {
                    // Drop this datagram (e.g. an unreachable peer) and go on.
                    log::debug!("UDP send failed: {err}");
                    stats.udp_send_dropped.incr();
                    sent += 1;
                }
            }
        }
        let done = self.area.take_completed();
        if !done.is_empty() {
            let ns = self.batch_at.elapsed().as_nanos();
            latency.record(&done, u64::try_from(ns).unwrap_or(u64::MAX));
        }
        self.area.clear();
    }
}

/// Milliseconds of `CLOCK_MONOTONIC`: the clock every user of one
/// [`UdpGuard`] shares (the AF_XDP workers read the same clock).
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// The IP address in a `sockaddr_storage` filled by `recvmmsg`
/// (unspecified for a family other than IPv4/IPv6, which UDP never reports).
fn sockaddr_ip(a: &libc::sockaddr_storage) -> IpAddr {
    match a.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which
            // is smaller than sockaddr_storage and has no invalid bit patterns.
            let sin = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
        }
        _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::tests::LineService;

    fn header(id: u16, seq: u16, total: u16, reserved: u16) -> Vec<u8> {
        [id, seq, total, reserved]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    }

    #[test]
    fn small_reply_is_one_datagram_with_the_request_id() {
        let stats = FrontendStats::new();
        let mut area = ReplyArea::new(4).unwrap();
        let mut d = header(0xBEEF, 0, 1, 0);
        d.extend_from_slice(b"hello\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 3, &mut area, 0, &stats, usize::MAX),
            Ok(1)
        );
        assert_eq!(
            area.datagram(0),
            [&header(0xBEEF, 0, 1, 0)[..], b"hello\r\n"].concat()
        );
        assert_eq!(area.dest[0], 3);
    }

    #[test]
    fn long_reply_spans_numbered_datagrams_of_at_most_1400_bytes() {
        let stats = FrontendStats::new();
        let mut area = ReplyArea::new(8).unwrap();
        let mut d = header(7, 0, 1, 0);
        // 1391 + 2 = 1393 reply bytes: two datagrams (1392 + 1).
        d.extend_from_slice(b"1391\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, usize::MAX),
            Ok(2)
        );
        assert_eq!(area.datagram(0).len(), 1400);
        assert_eq!(&area.datagram(0)[..8], &header(7, 0, 2, 0)[..]);
        assert_eq!(area.datagram(1), [&header(7, 1, 2, 0)[..], b"\n"].concat());
        // Exactly 1392 bytes: one datagram.
        let mut d = header(8, 0, 1, 0);
        d.extend_from_slice(b"1390\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, usize::MAX),
            Ok(1)
        );
    }

    #[test]
    fn bad_frames_are_dropped_and_leave_the_area_unchanged() {
        let stats = FrontendStats::new();
        let mut area = ReplyArea::new(2).unwrap();
        assert_eq!(
            answer_datagram(&LineService, b"short", 0, &mut area, 0, &stats, usize::MAX),
            Err(UdpDrop::Malformed)
        );
        let mut d = header(1, 0, 2, 0);
        d.extend_from_slice(b"a\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, usize::MAX),
            Err(UdpDrop::MultiDatagram)
        );
        for (seq, total, reserved, why) in [
            (0, 2, 0, Err(UdpDrop::MultiDatagram)),
            (0, 0, 0, Err(UdpDrop::MultiDatagram)),
            (1, 1, 0, Ok(1)),
            (0, 1, 0x100, Ok(1)),
        ] {
            area.clear();
            let mut d = header(1, seq, total, reserved);
            d.extend_from_slice(b"a\n");
            assert_eq!(
                answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, usize::MAX),
                why
            );
        }
        area.clear();
        let mut d = header(1, 0, 1, 0);
        d.extend_from_slice(b"5000\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, usize::MAX),
            Err(UdpDrop::ReplyTooLarge)
        );
        assert_eq!(area.used, 0);
    }

    #[test]
    fn reply_over_the_cap_is_replaced_by_an_error_or_dropped() {
        let stats = FrontendStats::new();
        let mut area = ReplyArea::new(8).unwrap();
        let mut d = header(9, 0, 1, 0);
        d.extend_from_slice(b"3000\n");
        // 3002 reply bytes in 3 datagrams; a cap of 200 stops at the first.
        assert_eq!(
            answer_datagram(&LineService, &d, 2, &mut area, 0, &stats, 200),
            Err(UdpDrop::OverCap { replaced: true })
        );
        assert_eq!(area.used, 1);
        assert_eq!(
            area.datagram(0),
            [&header(9, 0, 1, 0)[..], TOO_LARGE_REPLY].concat()
        );
        assert_eq!(area.dest[0], 2);
        area.clear();
        // Even the error (46 bytes) is over a cap of 45: nothing.
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, 45),
            Err(UdpDrop::OverCap { replaced: false })
        );
        assert_eq!(area.used, 0);
        // Within the cap (8 + 4 bytes): the reply itself.
        let mut d = header(9, 0, 1, 0);
        d.extend_from_slice(b"ab\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, 12),
            Ok(1)
        );
        assert_eq!(
            area.datagram(0),
            [&header(9, 0, 1, 0)[..], b"ab\r\n"].concat()
        );
        area.clear();
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, 11),
            Err(UdpDrop::OverCap { replaced: false })
        );
    }

    #[test]
    fn sockaddr_conversion() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a: std::net::SocketAddr = s.local_addr().unwrap();
        // SAFETY: plain data; all-zero is valid.
        let mut st: libc::sockaddr_storage = unsafe { zeroed() };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(Ipv4Addr::new(192, 0, 2, 7)).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sockaddr_in fits in sockaddr_storage.
        unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin) };
        assert_eq!(sockaddr_ip(&st), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert!(monotonic_ms() > 0);
    }

    #[test]
    fn incomplete_request_is_counted() {
        let stats = FrontendStats::new();
        let mut area = ReplyArea::new(2).unwrap();
        let mut d = header(1, 0, 1, 0);
        d.extend_from_slice(b"a\nb");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats, usize::MAX),
            Ok(1)
        );
        assert_eq!(stats.udp_dropped_incomplete.get(), 1);
    }
}
