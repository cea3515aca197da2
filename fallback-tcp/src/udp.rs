//! memcache over UDP on a kernel socket, with batched `recvmmsg`/`sendmmsg`.
//!
//! Only sockets and buffers live here: each received datagram goes to the
//! core's datagram layer (`petrel_core::udp::Responder`: memcached's
//! frame-header rule, the amplification guard, splitting the reply into
//! numbered datagrams of at most 1400 bytes, the over-cap reply, drop
//! counting), which writes the reply datagrams into this worker's
//! [`ReplyArea`]; a batch of replies goes out with one `sendmmsg`.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use petrel_core::histogram::{ClassCounts, LatencyStats};
use petrel_core::udp::guard::UdpGuard;
use petrel_core::udp::{DatagramSink, Responder, UdpDrop, UdpStats};
use petrel_core::wire::{HeaderRule, ReplyTarget};
pub use petrel_core::wire::{
    UDP_FRAME_HEADER_BYTES, UDP_MAX_DATAGRAM_BYTES, UDP_MAX_PAYLOAD_BYTES,
};

use crate::buffer::PageBuf;
use crate::clock::monotonic_ms;
use crate::service::{ConnectionEvent, Service, Time, Transport};
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

    fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let at = i * UDP_MAX_DATAGRAM_BYTES;
        &mut self.buf[at..at + UDP_MAX_DATAGRAM_BYTES]
    }
}

/// One reply's view of a [`ReplyArea`]: its datagrams go after those
/// already queued, tagged with the received datagram they answer.
struct AreaSink<'a> {
    area: &'a mut ReplyArea,
    /// The first slot of this reply.
    first: usize,
    dest: usize,
}

impl DatagramSink for AreaSink<'_> {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        let i = self.area.used;
        if i < self.area.slots() {
            Some(self.area.slot_mut(i))
        } else {
            None
        }
    }

    fn keep(&mut self, len: usize) {
        let i = self.area.used;
        self.area.lens[i] = len;
        self.area.dest[i] = self.dest;
        self.area.used += 1;
    }

    fn kept(&mut self, i: usize) -> Option<&mut [u8]> {
        let slot = self.first + i;
        if slot < self.area.used {
            Some(self.area.slot_mut(slot))
        } else {
            None
        }
    }

    fn discard(&mut self) {
        self.area.used = self.first;
    }
}

/// Answers one request datagram from `src` through `responder`, with a
/// fresh UDP session of `service`: appends its reply datagrams (headers
/// complete) to `area`, tagged with `dest`. Returns how many were appended
/// (0 for `noreply`), or why the datagram went unanswered (see
/// [`Responder::answer`]; counted there).
#[allow(clippy::too_many_arguments)]
pub fn answer_datagram<S: Service>(
    service: &S,
    responder: &Responder<'_>,
    src: IpAddr,
    datagram: &[u8],
    dest: usize,
    area: &mut ReplyArea,
    now: Time,
    now_ms: u64,
) -> Result<usize, UdpDrop> {
    let mut session = service.session(Transport::Udp);
    let first = area.used;
    let mut sink = AreaSink { area, first, dest };
    let target = ReplyTarget::Datagram { request_id: 0 };
    let r = responder.answer(src, datagram, target, now_ms, &mut sink, |input, out| {
        service.process(&mut session, input, out, now)
    });
    if r.is_ok() {
        area.completed.merge(&service.take_completed(&mut session));
    }
    r
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
    /// The datagram layer's counters (shared by every UDP path).
    udp_stats: Arc<UdpStats>,
    /// The socket may have datagrams waiting (edge-triggered readiness).
    pub ready: bool,
    /// Set after the first receive call: the look at start-up, made
    /// without a readiness event, is not counted when it finds nothing.
    looked: bool,
    /// When the batch being answered was received.
    batch_at: Instant,
}

impl UdpPort {
    /// Wraps a non-blocking socket; `reply_slots` bounds one reply's
    /// datagrams; `guard` (if any) admits every request; `udp_stats`
    /// counts what the datagram layer drops.
    pub fn new(
        socket: UdpSocket,
        reply_slots: usize,
        guard: Option<Arc<UdpGuard>>,
        udp_stats: Arc<UdpStats>,
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
            udp_stats,
            ready: true,
            looked: false,
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
        let (guard, udp_stats) = (self.guard.clone(), self.udp_stats.clone());
        let responder = Responder::new(guard.as_deref(), &udp_stats, HeaderRule::Memcached);
        for _ in 0..max_batches {
            let n = match self.receive_batch() {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.looked {
                        udp_stats.empty_receives.incr();
                    }
                    self.looked = true;
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("UDP receive failed: {e}");
                    return true;
                }
            };
            self.looked = true;
            self.batch_at = Instant::now();
            stats.udp_datagrams_received.add(n as u64);
            // memcached adds each recvfrom() result longer than the 8-byte
            // frame header (header included) to bytes_read, before answering
            // it and whether or not it is answered; here once per batch.
            let read: usize = self.rx_meta[..n]
                .iter()
                .map(|&(len, _)| len)
                .filter(|&len| len > UDP_FRAME_HEADER_BYTES)
                .sum();
            if read > 0 {
                service.connection_event(ConnectionEvent::BytesRead(read as u64));
            }
            for i in 0..n {
                let (len, truncated) = self.rx_meta[i];
                if truncated {
                    stats.udp_dropped_truncated.incr();
                    continue;
                }
                if self.area.slots() - self.area.used < reply_room {
                    self.flush(service, stats, latency);
                }
                let at = i * UDP_RX_SLOT_BYTES;
                let src = sockaddr_ip(&self.addrs[i]);
                // Counted by the responder or the guard when dropped.
                let _ = answer_datagram(
                    service,
                    &responder,
                    src,
                    &self.rx[at..at + len],
                    i,
                    &mut self.area,
                    now,
                    guard_now_ms,
                );
            }
            self.flush(service, stats, latency);
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
    /// The bytes sent (frame headers included, as memcached counts each
    /// sendmsg() result) go to the service's `bytes_written`.
    fn flush<S: Service>(&mut self, service: &S, stats: &FrontendStats, latency: &LatencyStats) {
        let total = self.area.used;
        let mut sent = 0;
        let mut written = 0u64;
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
                let n = n as usize;
                written += self.area.lens[sent..sent + n].iter().sum::<usize>() as u64;
                sent += n;
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
        if written > 0 {
            service.connection_event(ConnectionEvent::BytesWritten(written));
        }
        let done = self.area.take_completed();
        if !done.is_empty() {
            let ns = self.batch_at.elapsed().as_nanos();
            latency.record(&done, u64::try_from(ns).unwrap_or(u64::MAX));
        }
        self.area.clear();
    }
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
    use petrel_core::udp::guard::{GuardConfig, TOO_LARGE_REPLY};

    fn header(id: u16, seq: u16, total: u16, reserved: u16) -> Vec<u8> {
        [id, seq, total, reserved]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Answers `d` from `src` with a responder over `guard` into `area`.
    fn answer(
        guard: Option<&UdpGuard>,
        stats: &UdpStats,
        src: IpAddr,
        d: &[u8],
        dest: usize,
        area: &mut ReplyArea,
    ) -> Result<usize, UdpDrop> {
        let r = Responder::new(guard, stats, HeaderRule::Memcached);
        answer_datagram(&LineService, &r, src, d, dest, area, 0, 0)
    }

    #[test]
    fn replies_follow_the_queued_ones_in_the_area_tagged_with_their_source() {
        let stats = UdpStats::new();
        let mut area = ReplyArea::new(8).unwrap();
        let mut d = header(0xBEEF, 0, 1, 0x0100);
        d.extend_from_slice(b"hello\n");
        assert_eq!(answer(None, &stats, LOCAL, &d, 3, &mut area), Ok(1));
        // 1391 + 2 = 1393 reply bytes: two datagrams (1392 + 1).
        let mut d = header(7, 0, 1, 0);
        d.extend_from_slice(b"1391\n");
        assert_eq!(answer(None, &stats, LOCAL, &d, 5, &mut area), Ok(2));
        assert_eq!(
            area.datagram(0),
            [&header(0xBEEF, 0, 1, 0)[..], b"hello\r\n"].concat()
        );
        assert_eq!(area.datagram(1).len(), 1400);
        assert_eq!(&area.datagram(1)[..8], &header(7, 0, 2, 0)[..]);
        assert_eq!(area.datagram(2), [&header(7, 1, 2, 0)[..], b"\n"].concat());
        assert_eq!(area.dest[..3], [3, 5, 5]);
        assert_eq!(
            area.take_completed(),
            ClassCounts::new(),
            "LineService reports none"
        );
    }

    #[test]
    fn a_reply_beyond_the_free_slots_leaves_the_queued_ones_alone() {
        let stats = UdpStats::new();
        let mut area = ReplyArea::new(3).unwrap();
        let mut d = header(1, 0, 1, 0);
        d.extend_from_slice(b"a\n");
        assert_eq!(answer(None, &stats, LOCAL, &d, 0, &mut area), Ok(1));
        let mut d = header(2, 0, 1, 0);
        d.extend_from_slice(b"3000\n");
        assert_eq!(
            answer(None, &stats, LOCAL, &d, 1, &mut area),
            Err(UdpDrop::ReplyTooLarge)
        );
        assert_eq!(area.used, 1);
        assert_eq!(
            area.datagram(0),
            [&header(1, 0, 1, 0)[..], b"a\r\n"].concat()
        );
        assert_eq!(stats.dropped_reply_too_large.get(), 1);
        // Bad frames: nothing queued, counted by name.
        assert_eq!(
            answer(None, &stats, LOCAL, b"short", 0, &mut area),
            Err(UdpDrop::Malformed)
        );
        assert_eq!(
            answer(None, &stats, LOCAL, &header(1, 0, 2, 0), 0, &mut area),
            Err(UdpDrop::MultiDatagram)
        );
        assert_eq!(area.used, 1);
        assert_eq!(
            (
                stats.dropped_malformed.get(),
                stats.dropped_multi_datagram.get()
            ),
            (1, 1)
        );
    }

    #[test]
    fn over_the_cap_one_error_datagram_goes_to_the_source() {
        let guard = UdpGuard::new(&GuardConfig {
            allow: Default::default(),
            rate_per_sec: 0,
            ..GuardConfig::default()
        })
        .unwrap();
        let stats = UdpStats::new();
        let mut area = ReplyArea::new(8).unwrap();
        let mut d = header(9, 0, 1, 0);
        d.extend_from_slice(b"3000\n");
        let src: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            answer(Some(&guard), &stats, src, &d, 2, &mut area),
            Err(UdpDrop::OverCap { replaced: true })
        );
        assert_eq!(area.used, 1);
        assert_eq!(
            area.datagram(0),
            [&header(9, 0, 1, 0)[..], TOO_LARGE_REPLY].concat()
        );
        assert_eq!(area.dest[0], 2);
        assert_eq!(guard.stats().replies_replaced.get(), 1);
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
    }

    #[test]
    fn a_receive_that_finds_nothing_is_counted_except_the_first_look() {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.set_nonblocking(true).unwrap();
        let addr = socket.local_addr().unwrap();
        let udp_stats = Arc::new(UdpStats::new());
        let mut port = UdpPort::new(socket, 4, None, udp_stats.clone()).unwrap();
        let (stats, latency) = (FrontendStats::new(), LatencyStats::new());
        // The look at start-up, without a readiness event, finds nothing.
        assert!(port.serve(&LineService, 0, 4, &stats, &latency));
        assert_eq!(udp_stats.empty_receives.get(), 0);
        // Later looks that find nothing are counted, one per call.
        assert!(port.serve(&LineService, 0, 4, &stats, &latency));
        assert!(port.serve(&LineService, 0, 4, &stats, &latency));
        assert_eq!(udp_stats.empty_receives.get(), 2);
        // A call that receives a datagram is not an empty one.
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut d = header(1, 0, 1, 0);
        d.extend_from_slice(b"hi\n");
        client.send_to(&d, addr).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while stats.udp_datagrams_received.get() == 0 {
            assert!(Instant::now() < deadline, "the datagram did not arrive");
            port.serve(&LineService, 0, 4, &stats, &latency);
        }
        let empty_while_waiting = udp_stats.empty_receives.get();
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[8..n], b"hi\r\n");
        assert_eq!(udp_stats.empty_receives.get(), empty_while_waiting);
    }
}
