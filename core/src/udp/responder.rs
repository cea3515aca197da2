//! [`Responder`]: one request datagram in, its reply datagrams out, into
//! buffers a front end lends through a [`DatagramSink`].

use core::net::IpAddr;

use super::guard::{Admission, Outcome, UdpGuard, TOO_LARGE_REPLY};
use super::{UdpDrop, UdpStats};
use crate::wire::{
    DatagramSplitter, FrameHeader, HeaderRule, MemcacheUdpFrame, ReplyTarget,
    UDP_FRAME_HEADER_BYTES,
};
use crate::{Progress, Status};

/// The buffers a front end lends for one reply's datagrams: slots of a
/// reply area (kernel sockets), UMEM frames (AF_XDP), ...
///
/// The responder asks for a buffer, lets the splitter write a datagram into
/// it, and either keeps it (it holds a datagram) or asks again (then the
/// same buffer may be handed out again). When the reply is complete it
/// patches every kept datagram through [`kept`](Self::kept); when the reply
/// is abandoned it calls [`discard`](Self::discard).
pub trait DatagramSink {
    /// A buffer for the next datagram of the current reply, starting where
    /// the reply target's headers go (`None` when none is free). A buffer
    /// handed out and not kept may be handed out again.
    fn buffer(&mut self) -> Option<&mut [u8]>;
    /// The buffer last handed out holds a datagram of `len` bytes: keep it
    /// as the reply's next datagram.
    fn keep(&mut self, len: usize);
    /// The `i`th datagram kept for the current reply (`None` past the end).
    fn kept(&mut self, i: usize) -> Option<&mut [u8]>;
    /// Forget every datagram kept for the current reply.
    fn discard(&mut self);
}

/// Answers memcache request datagrams: the frame-header rule, guard
/// admission and settling, splitting the reply into datagrams, the
/// over-cap replacement, and counting why a datagram went unanswered (see
/// the [module docs](super)). Cheap to build; shares the guard and the
/// counters by reference.
#[derive(Clone, Copy, Debug)]
pub struct Responder<'a> {
    guard: Option<&'a UdpGuard>,
    stats: &'a UdpStats,
    rule: HeaderRule,
}

impl<'a> Responder<'a> {
    /// A responder admitting requests through `guard` (`None`: every
    /// source is trusted), counting in `stats`, accepting request frame
    /// headers under `rule`.
    pub const fn new(guard: Option<&'a UdpGuard>, stats: &'a UdpStats, rule: HeaderRule) -> Self {
        Responder { guard, stats, rule }
    }

    /// The counters.
    pub const fn stats(&self) -> &'a UdpStats {
        self.stats
    }

    /// Answers the request `datagram` (a UDP payload: frame header, then
    /// request text) from `src`: its reply datagrams, each addressed as
    /// `target` says (with the request's id), end up kept in `sink`.
    /// `process(input, area)` executes the complete requests at the start of
    /// `input` and writes their replies into `area` (the engine's contract:
    /// see [`Status`]); it is called until the input is answered. `now_ms`
    /// is the guard's clock (monotonic milliseconds shared by every user of
    /// the guard).
    ///
    /// Returns the number of datagrams kept (0 for `noreply`), or why the
    /// request got no reply: then nothing is kept, except the one error
    /// datagram of [`UdpDrop::OverCap`]` { replaced: true }`. Every outcome
    /// is counted (see [`UdpDrop`]).
    pub fn answer<S: DatagramSink>(
        &self,
        src: IpAddr,
        datagram: &[u8],
        target: ReplyTarget,
        now_ms: u64,
        sink: &mut S,
        process: impl FnMut(&[u8], &mut [u8]) -> Progress,
    ) -> Result<usize, UdpDrop> {
        let frame = MemcacheUdpFrame::new_unchecked(datagram);
        let header = match FrameHeader::parse_request(&frame, self.rule) {
            Ok(h) => h,
            Err(e) => {
                let drop = UdpDrop::from_header_error(e);
                self.stats.count(drop);
                return Err(drop);
            }
        };
        let admission = match self.guard {
            Some(g) => g.admit(src, datagram.len(), now_ms),
            None => Admission::Trusted,
        };
        let Some(max_reply_bytes) = admission.max_reply_bytes() else {
            // Counted by the guard; not even executed.
            return Err(UdpDrop::RateLimited);
        };
        let target = target.with_request_id(header.request_id);
        let result = self.reply(frame.payload(), target, max_reply_bytes, sink, process);
        let outcome = match result {
            Ok(n) => {
                if n > 1 {
                    self.stats.multi_datagram_replies.incr();
                }
                Outcome::Sent(n)
            }
            Err(UdpDrop::OverCap { .. }) => {
                if UdpGuard::error_fits(admission) && too_large(target, sink) {
                    self.settle(admission, Outcome::Replaced, now_ms);
                    return Err(UdpDrop::OverCap { replaced: true });
                }
                self.settle(admission, Outcome::Dropped, now_ms);
                return Err(UdpDrop::OverCap { replaced: false });
            }
            Err(drop) => {
                self.stats.count(drop);
                Outcome::Unanswered
            }
        };
        self.settle(admission, outcome, now_ms);
        result
    }

    fn settle(&self, admission: Admission, outcome: Outcome, now_ms: u64) {
        if let Some(g) = self.guard {
            g.settle(admission, outcome, now_ms);
        }
    }

    /// Builds the reply to `input` into `sink`; on any error nothing is
    /// left kept.
    fn reply<S: DatagramSink>(
        &self,
        input: &[u8],
        target: ReplyTarget,
        max_reply_bytes: usize,
        sink: &mut S,
        mut process: impl FnMut(&[u8], &mut [u8]) -> Progress,
    ) -> Result<usize, UdpDrop> {
        let mut splitter = DatagramSplitter::new(target);
        let mut consumed = 0usize;
        // UDP payload bytes of the datagrams kept (see the module docs).
        let mut reply_bytes = 0usize;
        let failed = loop {
            let Some(buf) = sink.buffer() else {
                break UdpDrop::ReplyTooLarge;
            };
            let rest = input.get(consumed..).unwrap_or(&[]);
            let produced = splitter.next(buf, |area| {
                let p = process(rest, area);
                (p.written, p)
            });
            let Ok(produced) = produced else {
                // More than 65535 datagrams, a buffer too small for the
                // headers, or a service writing past its area.
                break UdpDrop::ReplyTooLarge;
            };
            let p = produced.value;
            consumed += p.consumed.min(rest.len());
            if produced.len > 0 {
                reply_bytes = reply_bytes.saturating_add(UDP_FRAME_HEADER_BYTES + p.written);
                if reply_bytes > max_reply_bytes {
                    // Stop executing: nothing of this reply goes out.
                    break UdpDrop::OverCap { replaced: false };
                }
                sink.keep(produced.len);
            }
            match p.status {
                Status::OutputFull if produced.len > 0 => {}
                // No progress possible: a contract breach; do not spin.
                Status::OutputFull => break UdpDrop::ReplyTooLarge,
                Status::NeedInput => {
                    if consumed < input.len() {
                        self.stats.incomplete.incr();
                    }
                    return finish(&splitter, sink);
                }
                Status::Close => return finish(&splitter, sink),
            }
        };
        sink.discard();
        Err(failed)
    }
}

/// Patches the total into every kept datagram of the reply; its count.
fn finish<S: DatagramSink>(splitter: &DatagramSplitter, sink: &mut S) -> Result<usize, UdpDrop> {
    let n = usize::from(splitter.total());
    for i in 0..n {
        let patched = match sink.kept(i) {
            Some(buf) => splitter.finish(buf).is_ok(),
            None => false,
        };
        if !patched {
            sink.discard();
            return Err(UdpDrop::ReplyTooLarge);
        }
    }
    Ok(n)
}

/// Keeps one datagram of [`TOO_LARGE_REPLY`] to `target` in `sink`; false
/// (nothing kept) when no buffer was free.
fn too_large<S: DatagramSink>(target: ReplyTarget, sink: &mut S) -> bool {
    let mut splitter = DatagramSplitter::new(target);
    let Some(buf) = sink.buffer() else {
        return false;
    };
    let produced = splitter.next(buf, |area| {
        let n = TOO_LARGE_REPLY.len().min(area.len());
        area[..n].copy_from_slice(&TOO_LARGE_REPLY[..n]);
        (n, ())
    });
    match produced {
        Ok(p) if p.len > 0 => sink.keep(p.len),
        _ => return false,
    }
    finish(&splitter, sink).is_ok()
}
