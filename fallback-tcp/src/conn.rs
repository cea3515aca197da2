//! One TCP connection's buffers and state machine, independent of sockets.
//!
//! ```text
//!   socket --read--> rbuf[rstart..rend] --process--> wbuf[wstart..wend] --write--> socket
//! ```
//!
//! The read buffer holds one maximum-size request; the write buffer is
//! bounded and the service is only called when it is empty, so a reply larger
//! than the buffer is produced in pieces (`Status::OutputFull`) as the socket
//! drains. While replies wait to be written the connection reads nothing
//! (backpressure): a client that does not read its replies cannot make the
//! server buffer more than one write buffer for it.

use std::io::{self, Read, Write};
use std::time::Instant;

use petrel_core::histogram::{ClassCounts, LatencyStats};

use crate::buffer::PageBuf;
use crate::service::{ConnectionEvent, Service, Status, Time, Transport};
use crate::stats::FrontendStats;

/// After a request used more than this much of a buffer, the pages beyond it
/// are returned to the kernel once the buffer is empty again.
const RELEASE_ABOVE_BYTES: usize = 64 * 1024;

/// Bytes moved by [`Connection::drive`] calls, added up by the caller and
/// published to the front end's statistics once per event-loop iteration (not
/// per request, to keep shared cache lines quiet). The service's own figures
/// (`bytes_read` / `bytes_written` in `stats`) are reported to it as each read
/// or write returns instead: as in memcached, the bytes of a request are
/// counted before it is answered, so `stats reset` followed by `stats` shows
/// the `stats` line read and the `RESET` written, not the `stats reset` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes read from sockets.
    pub read: u64,
    /// Bytes written to sockets.
    pub written: u64,
}

/// Why [`Connection::drive`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drive {
    /// Waiting for the socket to become readable.
    WaitRead,
    /// Waiting for the socket to become writable (replies pending).
    WaitWrite,
    /// Used its budget with work left: drive again soon.
    Yield,
    /// Done: close the connection.
    Close,
}

/// A TCP connection's buffers and protocol session.
pub struct Connection<S: Service> {
    session: S::Session,
    rbuf: PageBuf,
    rstart: usize,
    rend: usize,
    rhigh: usize,
    wbuf: PageBuf,
    wstart: usize,
    wend: usize,
    whigh: usize,
    /// The service has not yet seen all of rbuf[rstart..rend], or a reply
    /// stopped at OutputFull and must be continued.
    dirty: bool,
    /// The service asked to close (or the peer closed): flush, then close.
    closing: bool,
    /// Unix seconds of the last request completed or reply byte written
    /// (not of the last byte read: a client trickling a request one byte at
    /// a time is idle until the request is whole).
    last_active: Time,
    /// Closed because a request did not fit the read buffer.
    overflowed: bool,
    /// Requests answered whose replies are in the write buffer, by class.
    completed: ClassCounts,
    /// When the last read that brought bytes returned: every request the
    /// service answers from the buffer became complete at that read.
    read_at: Instant,
    /// The last read returned less than it asked for: the socket was empty
    /// then, and (edge-triggered epoll) new data will raise a new readable
    /// event, so no read is tried until one arrives. Saves the read that
    /// would fail with `WouldBlock` after every reply.
    drained: bool,
    /// The poller reported the peer's close (or an error): the end of the
    /// stream may already be queued behind the data, and no new readable
    /// edge will announce it, so reads go on until they return 0.
    hangup: bool,
}

impl<S: Service> Connection<S> {
    /// A connection with a `read_bytes` read buffer and `write_bytes` write
    /// buffer, both fixed for its life.
    pub fn new(service: &S, read_bytes: usize, write_bytes: usize, now: Time) -> io::Result<Self> {
        Ok(Self::with_buffers(
            service,
            PageBuf::new(read_bytes)?,
            PageBuf::new(write_bytes)?,
            now,
        ))
    }

    /// A connection over buffers of an earlier one (see [`Self::into_buffers`]).
    pub fn with_buffers(service: &S, rbuf: PageBuf, wbuf: PageBuf, now: Time) -> Self {
        Connection {
            session: service.session(Transport::Tcp),
            rbuf,
            rstart: 0,
            rend: 0,
            rhigh: 0,
            wbuf,
            wstart: 0,
            wend: 0,
            whigh: 0,
            dirty: false,
            closing: false,
            last_active: now,
            overflowed: false,
            drained: false,
            hangup: false,
            completed: ClassCounts::new(),
            read_at: Instant::now(),
        }
    }

    /// Gives back the buffers for reuse, with pages beyond the first
    /// [`RELEASE_ABOVE_BYTES`] returned to the kernel if they were used.
    pub fn into_buffers(mut self) -> (PageBuf, PageBuf) {
        if self.rhigh.max(self.rend) > RELEASE_ABOVE_BYTES {
            self.rbuf.release_from(RELEASE_ABOVE_BYTES);
        }
        if self.whigh.max(self.wend) > RELEASE_ABOVE_BYTES {
            self.wbuf.release_from(RELEASE_ABOVE_BYTES);
        }
        (self.rbuf, self.wbuf)
    }

    /// Records that the poller reported the peer's close or an error (see
    /// `hangup`): the connection will read until end of stream.
    pub fn note_hangup(&mut self) {
        self.hangup = true;
    }

    /// Tells the session which peer it serves (for the command log).
    pub fn set_client(&mut self, service: &S, peer: std::net::SocketAddr) {
        service.set_client(&mut self.session, peer);
    }

    /// Unix seconds of the last completed request or reply byte written:
    /// what the idle timeout measures.
    pub fn last_active(&self) -> Time {
        self.last_active
    }

    /// Moves bytes between `io` and the service until the connection has to
    /// wait, used `budget` steps, or is done. `readable` says a readable
    /// event arrived since the last call (after a short read, reading waits
    /// for one). With `accept_input` false (server shutting down) nothing
    /// more is read: requests already received are answered, replies
    /// flushed, and then the connection closes. Each request's latency,
    /// from the end of the read that completed it to the start of the write
    /// that handed the last of its reply to the socket (both inside the
    /// client's round trip), goes to `latency`.
    #[allow(clippy::too_many_arguments)]
    pub fn drive(
        &mut self,
        service: &S,
        io: &mut (impl Read + Write),
        now: Time,
        budget: usize,
        readable: bool,
        accept_input: bool,
        traffic: &mut Traffic,
        stats: &FrontendStats,
        latency: &LatencyStats,
    ) -> Drive {
        if readable {
            self.drained = false;
        }
        let r = self.drive_inner(service, io, now, budget, accept_input, traffic, latency);
        if r == Drive::Close && self.overflowed {
            stats.read_buffer_full.incr();
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn drive_inner(
        &mut self,
        service: &S,
        io: &mut (impl Read + Write),
        now: Time,
        budget: usize,
        accept_input: bool,
        traffic: &mut Traffic,
        latency: &LatencyStats,
    ) -> Drive {
        let mut steps = 0usize;
        loop {
            // 1. Flush pending replies; nothing else happens until they are out.
            let mut handed_at = None;
            while self.wstart < self.wend {
                let at = Instant::now();
                match io.write(&self.wbuf[self.wstart..self.wend]) {
                    Ok(0) => return Drive::Close,
                    Ok(n) => {
                        handed_at = Some(at);
                        self.wstart += n;
                        self.last_active = now;
                        traffic.written += n as u64;
                        service.connection_event(ConnectionEvent::BytesWritten(n as u64));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drive::WaitWrite,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Drive::Close,
                }
            }
            // A transport that buffers (TLS) hands its bytes to the socket.
            loop {
                match io.flush() {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drive::WaitWrite,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Drive::Close,
                }
            }
            if !self.completed.is_empty() {
                // every reply in the buffer is now with the socket: the latency ends when the
                // write that handed over its last byte began (a clock read after that write
                // can come after the client already holds the reply, when the woken client
                // runs first); without output (noreply) it ends now
                let end = handed_at.unwrap_or_else(Instant::now);
                let ns = end.saturating_duration_since(self.read_at).as_nanos();
                latency.record(
                    &self.completed.take(),
                    u64::try_from(ns).unwrap_or(u64::MAX),
                );
            }
            self.whigh = self.whigh.max(self.wend);
            self.wstart = 0;
            self.wend = 0;
            if self.whigh > RELEASE_ABOVE_BYTES {
                self.wbuf.release_from(RELEASE_ABOVE_BYTES);
                self.whigh = 0;
            }
            if self.closing {
                return Drive::Close;
            }
            steps += 1;
            if steps > budget {
                return Drive::Yield;
            }

            // 2. Answer what has been received.
            if self.dirty {
                let input = &self.rbuf[self.rstart..self.rend];
                let p = service.process(&mut self.session, input, &mut self.wbuf, now);
                self.completed
                    .merge(&service.take_completed(&mut self.session));
                let consumed = p.consumed.min(input.len());
                self.rstart += consumed;
                if consumed > 0 {
                    self.last_active = now;
                }
                self.wend = p.written.min(self.wbuf.len());
                match p.status {
                    Status::NeedInput => self.dirty = false,
                    Status::OutputFull => {
                        if p.written == 0 && consumed == 0 {
                            // No progress possible: a contract breach; do not spin.
                            log::warn!("service made no progress with a full output buffer");
                            self.closing = true;
                        }
                    }
                    Status::Close => self.closing = true,
                }
                if self.rstart == self.rend {
                    self.rhigh = self.rhigh.max(self.rend);
                    self.rstart = 0;
                    self.rend = 0;
                    if self.rhigh > RELEASE_ABOVE_BYTES {
                        self.rbuf.release_from(RELEASE_ABOVE_BYTES);
                        self.rhigh = 0;
                    }
                }
                continue;
            }
            if !accept_input {
                return Drive::Close;
            }

            // 3. Read more.
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            if self.rend == self.rbuf.len() {
                // The service needs more than the buffer holds for one request.
                self.overflowed = true;
                return Drive::Close;
            }
            if self.drained && !self.hangup {
                return Drive::WaitRead;
            }
            let room = self.rbuf.len() - self.rend;
            match io.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Drive::Close,
                Ok(n) => {
                    self.read_at = Instant::now();
                    self.drained = n < room;
                    self.rend += n;
                    self.dirty = true;
                    traffic.read += n as u64;
                    service.connection_event(ConnectionEvent::BytesRead(n as u64));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drive::WaitRead,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Drive::Close,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::service::Progress;

    /// Latency sink for tests that do not look at it.
    static LATENCY: LatencyStats = LatencyStats::new();

    /// A small line service that follows the engine's contract, for tests:
    /// `N\n` replies N bytes of 'x' then "\r\n" (resumable across OutputFull),
    /// `quit\n` closes, anything else is echoed back.
    pub struct LineService;

    #[derive(Default)]
    pub struct LineSession {
        /// Bytes of the current reply already written.
        offset: usize,
    }

    impl Service for LineService {
        type Session = LineSession;
        fn session(&self, _: Transport) -> LineSession {
            LineSession::default()
        }
        fn process(
            &self,
            s: &mut LineSession,
            input: &[u8],
            out: &mut [u8],
            _now: Time,
        ) -> Progress {
            let (mut consumed, mut written) = (0, 0);
            loop {
                let rest = &input[consumed..];
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    return Progress {
                        consumed,
                        written,
                        status: Status::NeedInput,
                    };
                };
                let line = &rest[..nl];
                if line == b"quit" {
                    return Progress {
                        consumed: consumed + nl + 1,
                        written,
                        status: Status::Close,
                    };
                }
                let numeric = std::str::from_utf8(line)
                    .ok()
                    .and_then(|t| t.parse::<usize>().ok());
                let body_len = numeric.unwrap_or(line.len());
                let reply_len = body_len + 2;
                while s.offset < reply_len {
                    if written == out.len() {
                        return Progress {
                            consumed,
                            written,
                            status: Status::OutputFull,
                        };
                    }
                    let i = s.offset;
                    out[written] = if i >= body_len {
                        b"\r\n"[i - body_len]
                    } else if numeric.is_some() {
                        b'x'
                    } else {
                        line[i]
                    };
                    written += 1;
                    s.offset += 1;
                }
                s.offset = 0;
                consumed += nl + 1;
            }
        }
        fn expire(&self, _: Time, _: usize) -> usize {
            0
        }
    }

    /// A socket double: reads come from `input` at most `read_chunk` bytes at
    /// a time; writes accept at most `write_room` bytes before WouldBlock.
    struct FakeIo {
        input: Vec<u8>,
        read_pos: usize,
        read_chunk: usize,
        eof: bool,
        output: Vec<u8>,
        write_room: usize,
        reads: usize,
        traffic: Traffic,
    }

    impl FakeIo {
        fn new(input: &[u8], read_chunk: usize, write_room: usize) -> Self {
            FakeIo {
                input: input.to_vec(),
                read_pos: 0,
                read_chunk,
                eof: false,
                output: Vec::new(),
                write_room,
                reads: 0,
                traffic: Traffic::default(),
            }
        }
    }

    impl Read for FakeIo {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let left = self.input.len() - self.read_pos;
            if left == 0 {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = left.min(self.read_chunk).min(buf.len());
            buf[..n].copy_from_slice(&self.input[self.read_pos..self.read_pos + n]);
            self.read_pos += n;
            Ok(n)
        }
    }

    impl Write for FakeIo {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.write_room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.write_room);
            self.write_room -= n;
            self.output.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// One `drive` call whose traffic figures the test does not check.
    fn drive_once(
        c: &mut Connection<LineService>,
        io: &mut FakeIo,
        now: Time,
        budget: usize,
        readable: bool,
        accept_input: bool,
        stats: &FrontendStats,
    ) -> Drive {
        let mut t = Traffic::default();
        c.drive(
            &LineService,
            io,
            now,
            budget,
            readable,
            accept_input,
            &mut t,
            stats,
            &LATENCY,
        )
    }

    fn run_to_wait(
        c: &mut Connection<LineService>,
        io: &mut FakeIo,
        stats: &FrontendStats,
    ) -> Drive {
        loop {
            let mut t = Traffic::default();
            let r = c.drive(&LineService, io, 1, 4, true, true, &mut t, stats, &LATENCY);
            io.traffic.read += t.read;
            io.traffic.written += t.written;
            match r {
                Drive::Yield => continue,
                // More bytes (or EOF) are waiting: the poller would report readable.
                Drive::WaitRead if io.read_pos < io.input.len() || io.eof => continue,
                other => return other,
            }
        }
    }

    #[test]
    fn data_and_close_reported_in_one_event_are_answered_then_closed() {
        // Found by tests/tests/faults.rs: a client that sends half a value
        // and closes at once left the server connection in CLOSE-WAIT.
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 256, 0).unwrap();
        let mut io = FakeIo::new(b"one\ntw", 4096, usize::MAX);
        io.eof = true;
        let mut tr = Traffic::default();
        // Without the hang-up note a short read means "wait for an edge".
        c.note_hangup();
        let r = c.drive(
            &LineService,
            &mut io,
            1,
            16,
            true,
            true,
            &mut tr,
            &stats,
            &LATENCY,
        );
        assert_eq!(r, Drive::Close);
        assert_eq!(io.output, b"one\r\n");
    }

    #[test]
    fn a_trickled_request_does_not_reset_the_idle_clock() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 256, 100).unwrap();
        // Bytes arrive at 101..103 but no request completes: still idle
        // since 100.
        for (t, b) in [(101, b"h"), (102, b"e"), (103, b"y")] {
            let mut io = FakeIo::new(b, 1, usize::MAX);
            let mut tr = Traffic::default();
            c.drive(
                &LineService,
                &mut io,
                t,
                4,
                true,
                true,
                &mut tr,
                &stats,
                &LATENCY,
            );
            assert_eq!(c.last_active(), 100);
        }
        // The newline completes it: active now (read and reply).
        let mut io = FakeIo::new(b"\n", 1, usize::MAX);
        let mut tr = Traffic::default();
        c.drive(
            &LineService,
            &mut io,
            110,
            4,
            true,
            true,
            &mut tr,
            &stats,
            &LATENCY,
        );
        assert_eq!(c.last_active(), 110);
        assert_eq!(io.output, b"hey\r\n");
    }

    #[test]
    fn pipelined_requests_split_across_reads_are_all_answered_in_order() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..1000 {
            input.extend_from_slice(format!("hello{i}\n").as_bytes());
            expected.extend_from_slice(format!("hello{i}\r\n").as_bytes());
        }
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 256, 0).unwrap();
        let mut io = FakeIo::new(&input, 7, usize::MAX);
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::WaitRead);
        assert_eq!(io.output, expected);
        assert_eq!(
            io.traffic,
            Traffic {
                read: input.len() as u64,
                written: expected.len() as u64
            }
        );
    }

    #[test]
    fn large_reply_is_streamed_through_a_small_write_buffer() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 100, 0).unwrap();
        let mut io = FakeIo::new(b"100000\nab\n", 4096, usize::MAX);
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::WaitRead);
        assert_eq!(io.output.len(), 100_002 + 4);
        assert!(io.output[..100_000].iter().all(|&b| b == b'x'));
        assert_eq!(&io.output[100_000..], b"\r\nab\r\n");
    }

    #[test]
    fn unread_replies_stop_reading_until_drained() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 64, 0).unwrap();
        let input: Vec<u8> = b"1000\n".repeat(50);
        let mut io = FakeIo::new(&input, 4096, 10);
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::WaitWrite);
        let reads_when_blocked = io.reads;
        // Still blocked: driving again must not read more.
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::WaitWrite);
        assert_eq!(io.reads, reads_when_blocked);
        // Drain in small steps; everything arrives.
        let mut rounds = 0;
        loop {
            io.write_room = 333;
            rounds += 1;
            if run_to_wait(&mut c, &mut io, &stats) == Drive::WaitRead {
                break;
            }
            assert!(rounds < 100_000);
        }
        assert_eq!(io.output.len(), 50 * 1002);
    }

    #[test]
    fn quit_flushes_earlier_replies_then_closes() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 64, 0).unwrap();
        let mut io = FakeIo::new(b"a\nquit\nb\n", 4096, usize::MAX);
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::Close);
        assert_eq!(io.output, b"a\r\n");
    }

    #[test]
    fn peer_eof_closes_after_answering() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 64, 0).unwrap();
        let mut io = FakeIo::new(b"a\nb\n", 3, usize::MAX);
        io.eof = true;
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::Close);
        assert_eq!(io.output, b"a\r\nb\r\n");
    }

    #[test]
    fn request_larger_than_read_buffer_closes_and_counts() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 16, 64, 0).unwrap();
        let mut io = FakeIo::new(&[b'z'; 40], 4096, usize::MAX);
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::Close);
        assert_eq!(stats.read_buffer_full.get(), 1);
    }

    #[test]
    fn budget_yields_with_work_left() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 8, 0).unwrap();
        let mut io = FakeIo::new(b"1000\n", 4096, usize::MAX);
        assert_eq!(
            drive_once(&mut c, &mut io, 0, 3, true, true, &stats),
            Drive::Yield
        );
        assert!(io.output.len() < 1002);
    }

    #[test]
    fn shutdown_answers_buffered_requests_without_reading() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 64, 0).unwrap();
        let mut io = FakeIo::new(b"a\nb", 4096, usize::MAX);
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::WaitRead);
        io.input.extend_from_slice(b"\nc\n");
        let reads = io.reads;
        assert_eq!(
            drive_once(&mut c, &mut io, 0, 100, true, false, &stats),
            Drive::Close
        );
        assert_eq!(io.reads, reads);
        assert_eq!(io.output, b"a\r\n");
    }

    #[test]
    fn reused_buffers_serve_a_new_connection_and_large_pages_are_released() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 256 * 1024, 128 * 1024, 0).unwrap();
        let long: Vec<u8> = [vec![b'y'; 200_000], b"\n".to_vec()].concat();
        let mut io = FakeIo::new(&long, 1 << 20, usize::MAX);
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::WaitRead);
        assert_eq!(io.output.len(), 200_002);
        let (r, w) = c.into_buffers();
        assert!(
            r[RELEASE_ABOVE_BYTES..].iter().all(|&b| b == 0),
            "pages released"
        );
        let mut c = Connection::with_buffers(&LineService, r, w, 0);
        let mut io = FakeIo::new(b"again\n", 4096, usize::MAX);
        assert_eq!(run_to_wait(&mut c, &mut io, &stats), Drive::WaitRead);
        assert_eq!(io.output, b"again\r\n");
    }

    #[test]
    fn short_read_waits_for_the_next_readable_event() {
        let stats = FrontendStats::new();
        let mut c = Connection::new(&LineService, 4096, 64, 0).unwrap();
        let mut io = FakeIo::new(b"a\n", 4096, usize::MAX);
        assert_eq!(
            drive_once(&mut c, &mut io, 0, 16, true, true, &stats),
            Drive::WaitRead
        );
        assert_eq!(io.reads, 1, "no read after a short read");
        io.input.extend_from_slice(b"b\n");
        // Driven without a readable event (e.g. writable): still no read.
        assert_eq!(
            drive_once(&mut c, &mut io, 0, 16, false, true, &stats),
            Drive::WaitRead
        );
        assert_eq!(io.reads, 1);
        assert_eq!(
            drive_once(&mut c, &mut io, 0, 16, true, true, &stats),
            Drive::WaitRead
        );
        assert_eq!(io.output, b"a\r\nb\r\n");
    }
}
