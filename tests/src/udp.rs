//! A small memcache-over-UDP client, written from memcached's `doc/protocol.txt`.
//!
//! Every datagram starts with an 8-byte frame header of four big-endian u16 fields:
//!
//! ```text
//!  0       2       4       6       8
//!  +-------+-------+-------+-------+---------------------
//!  | req id|  seq  | total | rsvd  | payload (text protocol)
//!  +-------+-------+-------+-------+---------------------
//! ```
//!
//! A request is one datagram (seq 0, total 1). A reply is one or more datagrams carrying the
//! client's request id; the payloads, ordered by sequence number, form the reply bytes.
//!
//! Reassembly accepts both numberings seen in practice: protocol.txt's single run
//! `0..total-1` for the whole reply, and memcached 1.6's multi-key `get`, where each `VALUE`
//! block is its own run restarting at seq 0 with its own total. A datagram joins the oldest
//! incomplete run with the same total whose slot `seq` is still empty; otherwise it starts a
//! new run. Runs are concatenated in the order they started.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Length of the memcache UDP frame header.
pub const FRAME_HEADER_BYTES: usize = 8;
/// Largest reply datagram memcached sends, header included.
pub const MAX_REPLY_DATAGRAM_BYTES: usize = 1400;

/// The 8-byte frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Request id chosen by the client, echoed in every reply datagram.
    pub request_id: u16,
    /// Sequence number of this datagram within its reply.
    pub seq: u16,
    /// Number of datagrams in the reply.
    pub total: u16,
    /// Reserved, must be 0.
    pub reserved: u16,
}

impl FrameHeader {
    /// The header as 8 big-endian bytes.
    pub fn to_bytes(self) -> [u8; FRAME_HEADER_BYTES] {
        let mut b = [0u8; FRAME_HEADER_BYTES];
        b[0..2].copy_from_slice(&self.request_id.to_be_bytes());
        b[2..4].copy_from_slice(&self.seq.to_be_bytes());
        b[4..6].copy_from_slice(&self.total.to_be_bytes());
        b[6..8].copy_from_slice(&self.reserved.to_be_bytes());
        b
    }
    /// Parses the first 8 bytes of `d`; `None` when shorter.
    pub fn parse(d: &[u8]) -> Option<FrameHeader> {
        if d.len() < FRAME_HEADER_BYTES {
            return None;
        }
        let f = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
        Some(FrameHeader {
            request_id: f(0),
            seq: f(2),
            total: f(4),
            reserved: f(6),
        })
    }
}

/// One received datagram.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// Its frame header.
    pub header: FrameHeader,
    /// Bytes after the header.
    pub payload: Vec<u8>,
}

/// A reassembled reply.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Payloads concatenated in order.
    pub bytes: Vec<u8>,
    /// Every datagram in arrival order (for checks on sizes and numbering).
    pub datagrams: Vec<Datagram>,
}

/// Errors of [`UdpClient::request`].
#[derive(Debug)]
pub enum UdpError {
    /// Not every datagram arrived (or the reply never looked complete) before the deadline.
    Timeout {
        /// What had been reassembled so far.
        partial: Vec<u8>,
        /// Datagrams received.
        datagrams: usize,
    },
    /// A datagram violated the framing (short, reserved != 0, seq >= total, total == 0).
    BadFrame(String),
}

/// A connected UDP socket speaking the memcache UDP framing.
#[derive(Debug)]
pub struct UdpClient {
    sock: UdpSocket,
    next_id: u16,
    /// Datagrams that arrived while a reply to another request id was collected.
    stray: Vec<Vec<u8>>,
}

impl UdpClient {
    /// A client bound to an ephemeral loopback port and connected to `server`, with a 4 MiB
    /// receive buffer so that long replies are not dropped by the client's kernel.
    pub fn connect(server: SocketAddr) -> UdpClient {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        sock.connect(server).expect("connect udp");
        set_recv_buffer(&sock, 4 << 20);
        UdpClient {
            sock,
            next_id: 1,
            stray: Vec::new(),
        }
    }

    /// The socket (for raw sends in tests).
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// A fresh request id.
    pub fn next_request_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Sends `payload` behind the given header.
    pub fn send_frame(&self, header: FrameHeader, payload: &[u8]) {
        let mut d = header.to_bytes().to_vec();
        d.extend_from_slice(payload);
        self.sock.send(&d).expect("send udp");
    }

    /// Receives one datagram, waiting at most until `deadline`.
    pub fn recv(&self, deadline: Instant) -> Option<Vec<u8>> {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        self.sock
            .set_read_timeout(Some(deadline - now))
            .expect("set_read_timeout");
        let mut buf = vec![0u8; 65536];
        match self.sock.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(_) => None,
        }
    }

    /// Sends `payload` as one request and reassembles the reply, which is complete when every
    /// run of datagrams is complete and `done(bytes)` holds. Datagrams with another request id
    /// are kept for [`UdpClient::take_stray`].
    pub fn request(
        &mut self,
        payload: &[u8],
        done: impl Fn(&[u8]) -> bool,
        timeout: Duration,
    ) -> Result<Reply, UdpError> {
        let id = self.next_request_id();
        self.send_frame(
            FrameHeader {
                request_id: id,
                seq: 0,
                total: 1,
                reserved: 0,
            },
            payload,
        );
        self.collect(id, done, timeout)
    }

    /// Reassembles the reply to request `id` (see [`UdpClient::request`]).
    pub fn collect(
        &mut self,
        id: u16,
        done: impl Fn(&[u8]) -> bool,
        timeout: Duration,
    ) -> Result<Reply, UdpError> {
        let deadline = Instant::now() + timeout;
        let mut runs: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
        let mut datagrams = Vec::new();
        loop {
            let complete = runs.iter().all(|r| r.iter().all(Option::is_some));
            let bytes: Vec<u8> = runs.iter().flatten().flatten().flatten().copied().collect();
            if complete && !runs.is_empty() && done(&bytes) {
                return Ok(Reply { bytes, datagrams });
            }
            let Some(d) = self.recv(deadline) else {
                return Err(UdpError::Timeout {
                    partial: bytes,
                    datagrams: datagrams.len(),
                });
            };
            let Some(h) = FrameHeader::parse(&d) else {
                return Err(UdpError::BadFrame(format!("datagram of {} bytes", d.len())));
            };
            if h.request_id != id {
                self.stray.push(d);
                continue;
            }
            if h.reserved != 0 || h.total == 0 || h.seq >= h.total {
                return Err(UdpError::BadFrame(format!("header {h:?}")));
            }
            if d.len() > MAX_REPLY_DATAGRAM_BYTES {
                return Err(UdpError::BadFrame(format!(
                    "datagram of {} bytes exceeds {MAX_REPLY_DATAGRAM_BYTES}",
                    d.len()
                )));
            }
            let payload = d[FRAME_HEADER_BYTES..].to_vec();
            let slot = runs.iter_mut().find(|r| {
                r.len() == h.total as usize
                    && r.iter().any(Option::is_none)
                    && r[h.seq as usize].is_none()
            });
            match slot {
                Some(run) => run[h.seq as usize] = Some(payload.clone()),
                None => {
                    let mut run = vec![None; h.total as usize];
                    run[h.seq as usize] = Some(payload.clone());
                    runs.push(run);
                }
            }
            datagrams.push(Datagram { header: h, payload });
        }
    }

    /// The datagrams that arrived for other request ids while replies were collected, since
    /// the last call.
    pub fn take_stray(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.stray)
    }

    /// Proves that nothing was sent for the requests sent before: sends `barrier` (a request
    /// with a reply `done` recognises) and collects its reply; the server answers the datagrams
    /// of one socket in order and loopback keeps that order, so any earlier reply arrives
    /// first. Returns the barrier's reply and every datagram of another request id before it.
    pub fn nothing_before(
        &mut self,
        barrier: &[u8],
        done: impl Fn(&[u8]) -> bool,
        timeout: Duration,
    ) -> Result<(Reply, Vec<Vec<u8>>), UdpError> {
        let earlier = self.take_stray();
        let reply = self.request(barrier, done, timeout)?;
        let mut stray = earlier;
        stray.extend(self.take_stray());
        Ok((reply, stray))
    }

    /// Receives every datagram arriving within `window`.
    pub fn drain(&self, window: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(d) = self.recv(deadline) {
            out.push(d);
        }
        out
    }
}

/// True when `bytes` ends with `END\r\n` (a complete `get`/`gets` reply).
pub fn ends_with_end(bytes: &[u8]) -> bool {
    bytes.ends_with(b"END\r\n")
}

/// True when `bytes` ends with a line (any complete one-line reply).
pub fn ends_with_line(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\r\n")
}

/// Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE when permitted, else SO_RCVBUF).
pub fn set_recv_buffer(sock: &UdpSocket, bytes: i32) {
    let fd = sock.as_raw_fd();
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `fd` is an open socket owned by `sock`; the option value points to a live
        // i32 whose size is passed alongside.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &bytes as *const i32 as *const libc::c_void,
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}
