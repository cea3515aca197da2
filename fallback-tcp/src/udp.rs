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

use std::io;
use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

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
}

/// Answers one request datagram: appends its reply datagrams (headers
/// complete) to `area`, tagged with `dest`. Returns how many were appended
/// (0 for `noreply`), or why the datagram was dropped (nothing appended).
pub fn answer_datagram<S: Service>(
    service: &S,
    datagram: &[u8],
    dest: usize,
    area: &mut ReplyArea,
    now: Time,
    stats: &FrontendStats,
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
    /// The socket may have datagrams waiting (edge-triggered readiness).
    pub ready: bool,
}

impl UdpPort {
    /// Wraps a non-blocking socket; `reply_slots` bounds one reply's datagrams.
    pub fn new(socket: UdpSocket, reply_slots: usize) -> io::Result<Self> {
        Ok(UdpPort {
            socket,
            rx: PageBuf::new(UDP_RX_BATCH * UDP_RX_SLOT_BYTES)?,
            // SAFETY: sockaddr_storage is plain data; all-zero is valid.
            addrs: vec![unsafe { zeroed() }; UDP_RX_BATCH],
            addr_lens: vec![0; UDP_RX_BATCH],
            rx_meta: vec![(0, false); UDP_RX_BATCH],
            area: ReplyArea::new(reply_slots + UDP_RX_BATCH)?,
            ready: true,
        })
    }

    /// The socket, for registration with a poller.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Serves up to `max_batches` receive batches. Returns true when the
    /// socket was drained (would block), false when work may be left.
    pub fn serve<S: Service>(
        &mut self,
        service: &S,
        now: Time,
        max_batches: usize,
        stats: &FrontendStats,
    ) -> bool {
        let reply_room = self.area.slots() - UDP_RX_BATCH;
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
            stats.udp_datagrams_received.add(n as u64);
            for i in 0..n {
                let (len, truncated) = self.rx_meta[i];
                if truncated {
                    stats.udp_dropped_truncated.incr();
                    continue;
                }
                if self.area.slots() - self.area.used < reply_room {
                    self.flush(stats);
                }
                let at = i * UDP_RX_SLOT_BYTES;
                let dgram = &self.rx[at..at + len];
                match answer_datagram(service, dgram, i, &mut self.area, now, stats) {
                    Ok(_) => {}
                    Err(UdpDrop::Malformed) => stats.udp_dropped_malformed.incr(),
                    Err(UdpDrop::MultiDatagram) => stats.udp_dropped_multi_datagram.incr(),
                    Err(UdpDrop::ReplyTooLarge) => stats.udp_dropped_reply_too_large.incr(),
                }
            }
            self.flush(stats);
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
    fn flush(&mut self, stats: &FrontendStats) {
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
        self.area.clear();
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
            answer_datagram(&LineService, &d, 3, &mut area, 0, &stats),
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
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats),
            Ok(2)
        );
        assert_eq!(area.datagram(0).len(), 1400);
        assert_eq!(&area.datagram(0)[..8], &header(7, 0, 2, 0)[..]);
        assert_eq!(area.datagram(1), [&header(7, 1, 2, 0)[..], b"\n"].concat());
        // Exactly 1392 bytes: one datagram.
        let mut d = header(8, 0, 1, 0);
        d.extend_from_slice(b"1390\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats),
            Ok(1)
        );
    }

    #[test]
    fn bad_frames_are_dropped_and_leave_the_area_unchanged() {
        let stats = FrontendStats::new();
        let mut area = ReplyArea::new(2).unwrap();
        assert_eq!(
            answer_datagram(&LineService, b"short", 0, &mut area, 0, &stats),
            Err(UdpDrop::Malformed)
        );
        let mut d = header(1, 0, 2, 0);
        d.extend_from_slice(b"a\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats),
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
                answer_datagram(&LineService, &d, 0, &mut area, 0, &stats),
                why
            );
        }
        area.clear();
        let mut d = header(1, 0, 1, 0);
        d.extend_from_slice(b"5000\n");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats),
            Err(UdpDrop::ReplyTooLarge)
        );
        assert_eq!(area.used, 0);
    }

    #[test]
    fn incomplete_request_is_counted() {
        let stats = FrontendStats::new();
        let mut area = ReplyArea::new(2).unwrap();
        let mut d = header(1, 0, 1, 0);
        d.extend_from_slice(b"a\nb");
        assert_eq!(
            answer_datagram(&LineService, &d, 0, &mut area, 0, &stats),
            Ok(1)
        );
        assert_eq!(stats.udp_dropped_incomplete.get(), 1);
    }
}
