//! The datagram layer without sockets: frame-header rule, guard admission
//! and settling, splitting, the over-cap replacement, drop counting.

use core::net::IpAddr;
use std::vec;
use std::vec::Vec;

use super::guard::{Cidr, GuardConfig, UdpGuard, TOO_LARGE_REPLY};
use super::{DatagramSink, Responder, UdpDrop, UdpStats};
use crate::wire::{
    parse_request_frame, EthernetAddress, HeaderRule, IpPair, Ipv4Address, ParseOptions,
    ReplyAddressing, ReplyTarget, UDP_MAX_DATAGRAM_BYTES,
};
use crate::{Progress, Status};

/// Fixed slots, as a kernel front end's reply area.
struct Slots {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    kept: usize,
}

impl Slots {
    fn new(n: usize, size: usize) -> Slots {
        Slots {
            bufs: vec![vec![0u8; size]; n],
            lens: vec![0; n],
            kept: 0,
        }
    }
    fn datagram(&self, i: usize) -> &[u8] {
        assert!(i < self.kept);
        &self.bufs[i][..self.lens[i]]
    }
}

impl DatagramSink for Slots {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        self.bufs.get_mut(self.kept).map(|b| &mut b[..])
    }
    fn keep(&mut self, len: usize) {
        self.lens[self.kept] = len;
        self.kept += 1;
    }
    fn kept(&mut self, i: usize) -> Option<&mut [u8]> {
        if i < self.kept {
            Some(&mut self.bufs[i][..])
        } else {
            None
        }
    }
    fn discard(&mut self) {
        self.kept = 0;
    }
}

/// A line service: `N\n` answers N bytes of `x` and `\r\n`, any other line
/// itself with `\r\n`; a reply that does not fit resumes in the next area.
#[derive(Default)]
struct Lines {
    /// The reply being written and how much of it went out.
    partial: Option<(Vec<u8>, usize)>,
    calls: usize,
}

impl Lines {
    fn process(&mut self, input: &[u8], out: &mut [u8]) -> Progress {
        self.calls += 1;
        let mut consumed = 0;
        let mut written = 0;
        loop {
            if self.partial.is_none() {
                let rest = &input[consumed..];
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    return Progress {
                        consumed,
                        written,
                        status: Status::NeedInput,
                    };
                };
                let line = &rest[..nl];
                let mut reply = match core::str::from_utf8(line).ok().and_then(|s| s.parse().ok()) {
                    Some(n) => vec![b'x'; n],
                    None => line.to_vec(),
                };
                reply.extend_from_slice(b"\r\n");
                self.partial = Some((reply, 0));
            }
            let (reply, at) = self.partial.as_mut().unwrap();
            let n = (reply.len() - *at).min(out.len() - written);
            out[written..written + n].copy_from_slice(&reply[*at..*at + n]);
            written += n;
            *at += n;
            if *at < reply.len() {
                return Progress {
                    consumed,
                    written,
                    status: Status::OutputFull,
                };
            }
            self.partial = None;
            consumed += input[consumed..].iter().position(|&b| b == b'\n').unwrap() + 1;
        }
    }
}

fn datagram(id: u16, seq: u16, total: u16, reserved: u16, text: &[u8]) -> Vec<u8> {
    let mut d: Vec<u8> = [id, seq, total, reserved]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    d.extend_from_slice(text);
    d
}

fn header(id: u16, seq: u16, total: u16) -> Vec<u8> {
    datagram(id, seq, total, 0, b"")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const SOCKET: ReplyTarget = ReplyTarget::Datagram { request_id: 0 };
const STRANGER: &str = "192.0.2.1";

/// Answers `d` from `src` with a fresh [`Lines`]; the result and how many
/// times the service ran.
fn answer(r: &Responder, src: &str, d: &[u8], sink: &mut Slots) -> (Result<usize, UdpDrop>, usize) {
    let mut lines = Lines::default();
    let res = r.answer(ip(src), d, SOCKET, 0, sink, |i, o| lines.process(i, o));
    (res, lines.calls)
}

fn guard(amp: u32, rate: u32, burst: u32) -> UdpGuard {
    let mut allow = heapless::Vec::new();
    allow.push(Cidr::LOOPBACK_V4).unwrap();
    UdpGuard::new(&GuardConfig {
        allow,
        max_amplification: amp,
        rate_per_sec: rate,
        burst,
        seed: 7,
    })
    .unwrap()
}

#[test]
fn reply_echoes_the_request_id_with_sequence_and_reserved_zero() {
    let stats = UdpStats::new();
    let r = Responder::new(None, &stats, HeaderRule::Memcached);
    let mut sink = Slots::new(4, UDP_MAX_DATAGRAM_BYTES);
    // memcaslap's reserved 0x0100 and a stray sequence number are ignored.
    let d = datagram(0xBEEF, 5, 1, 0x0100, b"hello\n");
    assert_eq!(answer(&r, "127.0.0.1", &d, &mut sink).0, Ok(1));
    assert_eq!(
        sink.datagram(0),
        [&header(0xBEEF, 0, 1)[..], b"hello\r\n"].concat()
    );
    // The strict rule refuses both.
    let strict = Responder::new(None, &stats, HeaderRule::Strict);
    let mut sink = Slots::new(4, UDP_MAX_DATAGRAM_BYTES);
    assert_eq!(
        answer(&strict, "127.0.0.1", &d, &mut sink).0,
        Err(UdpDrop::Malformed)
    );
    let d = datagram(1, 5, 1, 0, b"hello\n");
    assert_eq!(
        answer(&strict, "127.0.0.1", &d, &mut sink).0,
        Err(UdpDrop::MultiDatagram)
    );
    assert_eq!(sink.kept, 0);
}

#[test]
fn long_reply_is_numbered_0_to_n_minus_1_in_datagrams_of_at_most_1400_bytes() {
    let stats = UdpStats::new();
    let r = Responder::new(None, &stats, HeaderRule::Memcached);
    let mut sink = Slots::new(8, UDP_MAX_DATAGRAM_BYTES);
    // 1391 + 2 = 1393 reply bytes: 1392 + 1.
    assert_eq!(
        answer(&r, "::1", &datagram(7, 0, 1, 0, b"1391\n"), &mut sink).0,
        Ok(2)
    );
    assert_eq!(sink.datagram(0).len(), 1400);
    assert_eq!(&sink.datagram(0)[..8], &header(7, 0, 2)[..]);
    assert_eq!(sink.datagram(1), [&header(7, 1, 2)[..], b"\n"].concat());
    assert_eq!(stats.multi_datagram_replies.get(), 1);
    // Exactly 1392 bytes: one datagram.
    let mut sink = Slots::new(8, UDP_MAX_DATAGRAM_BYTES);
    assert_eq!(
        answer(&r, "::1", &datagram(8, 0, 1, 0, b"1390\n"), &mut sink).0,
        Ok(1)
    );
    assert_eq!(stats.multi_datagram_replies.get(), 1);
    // Two commands in one datagram: one reply run.
    let mut sink = Slots::new(8, UDP_MAX_DATAGRAM_BYTES);
    assert_eq!(
        answer(&r, "::1", &datagram(9, 0, 1, 0, b"a\nb\n"), &mut sink).0,
        Ok(1)
    );
    assert_eq!(
        sink.datagram(0),
        [&header(9, 0, 1)[..], b"a\r\nb\r\n"].concat()
    );
}

#[test]
fn drops_are_counted_once_under_one_name_and_keep_nothing() {
    let stats = UdpStats::new();
    let r = Responder::new(None, &stats, HeaderRule::Memcached);
    let mut sink = Slots::new(2, UDP_MAX_DATAGRAM_BYTES);
    for short in 0..8 {
        let d = datagram(1, 0, 1, 0, b"");
        let (res, calls) = answer(&r, "127.0.0.1", &d[..short], &mut sink);
        assert_eq!((res, calls), (Err(UdpDrop::Malformed), 0));
    }
    for total in [0, 2, 0x0101] {
        let d = datagram(1, 0, total, 0, b"a\n");
        let (res, calls) = answer(&r, "127.0.0.1", &d, &mut sink);
        assert_eq!((res, calls), (Err(UdpDrop::MultiDatagram), 0));
    }
    // 5002 bytes need 4 datagrams; the sink has 2.
    let (res, _) = answer(&r, "127.0.0.1", &datagram(1, 0, 1, 0, b"5000\n"), &mut sink);
    assert_eq!(res, Err(UdpDrop::ReplyTooLarge));
    assert_eq!(sink.kept, 0);
    // A last command cut short: the complete one is answered, the rest counted.
    let (res, _) = answer(&r, "127.0.0.1", &datagram(1, 0, 1, 0, b"a\nb"), &mut sink);
    assert_eq!(res, Ok(1));
    assert_eq!(
        (
            stats.dropped_malformed.get(),
            stats.dropped_multi_datagram.get(),
            stats.dropped_reply_too_large.get(),
            stats.incomplete.get(),
        ),
        (8, 3, 1, 1)
    );
    // An empty request (8 bytes) and a reply of nothing: no datagram.
    sink.discard();
    assert_eq!(
        answer(&r, "127.0.0.1", &datagram(1, 0, 1, 0, b""), &mut sink).0,
        Ok(0)
    );
    // A service that reports a full area without writing: no spinning.
    let mut calls = 0;
    let res = r.answer(
        ip("::1"),
        &datagram(1, 0, 1, 0, b"x\n"),
        SOCKET,
        0,
        &mut sink,
        |_, _| {
            calls += 1;
            Progress {
                consumed: 0,
                written: 0,
                status: Status::OutputFull,
            }
        },
    );
    assert_eq!((res, calls), (Err(UdpDrop::ReplyTooLarge), 1));
    // One writing past its area is refused, not trusted.
    let res = r.answer(
        ip("::1"),
        &datagram(1, 0, 1, 0, b"x\n"),
        SOCKET,
        0,
        &mut sink,
        |_, o| Progress {
            consumed: 2,
            written: o.len() + 1,
            status: Status::NeedInput,
        },
    );
    assert_eq!(res, Err(UdpDrop::ReplyTooLarge));
    assert_eq!(sink.kept, 0);
}

/// A service that writes `k` bytes (k <= 1392) and has answered its input.
fn fixed(k: usize) -> impl FnMut(&[u8], &mut [u8]) -> Progress {
    move |input, out| {
        out[..k].fill(b'v');
        Progress {
            consumed: input.len(),
            written: k,
            status: Status::NeedInput,
        }
    }
}

fn frame_target() -> ReplyTarget {
    ReplyTarget::Frame(ReplyAddressing {
        eth_src: EthernetAddress([2, 0, 0, 0, 0, 1]),
        eth_dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ips: IpPair::V4 {
            src: Ipv4Address::new(198, 18, 0, 1),
            dst: Ipv4Address::new(192, 0, 2, 1),
        },
        src_port: 11211,
        dst_port: 40000,
        request_id: 0,
    })
}

#[test]
fn over_the_cap_the_reply_is_replaced_by_one_error_datagram_or_dropped() {
    let g = guard(10, 0, 0);
    let stats = UdpStats::new();
    let r = Responder::new(Some(&g), &stats, HeaderRule::Memcached);
    // 13 request bytes: a cap of 130; 3002 reply bytes are far over.
    let d = datagram(9, 0, 1, 0, b"3000\n");
    let mut sink = Slots::new(8, UDP_MAX_DATAGRAM_BYTES);
    let (res, calls) = answer(&r, STRANGER, &d, &mut sink);
    assert_eq!(res, Err(UdpDrop::OverCap { replaced: true }));
    assert_eq!(
        calls, 1,
        "execution stops at the first datagram over the cap"
    );
    assert_eq!(
        sink.datagram(0),
        [&header(9, 0, 1)[..], TOO_LARGE_REPLY].concat()
    );
    assert_eq!(sink.kept, 1);
    // The same request from the allowlist: the whole reply.
    let mut sink = Slots::new(8, UDP_MAX_DATAGRAM_BYTES);
    assert_eq!(answer(&r, "127.0.0.1", &d, &mut sink).0, Ok(3));
    // A cap of 5 x 8 = 40 bytes: even the 8 + 38 bytes of the error are over.
    let g5 = guard(5, 0, 0);
    let r5 = Responder::new(Some(&g5), &stats, HeaderRule::Memcached);
    let mut sink = Slots::new(8, UDP_MAX_DATAGRAM_BYTES);
    let res = r5.answer(
        ip(STRANGER),
        &header(3, 0, 1),
        SOCKET,
        0,
        &mut sink,
        fixed(33),
    );
    assert_eq!(res, Err(UdpDrop::OverCap { replaced: false }));
    assert_eq!(sink.kept, 0);
    let res = r5.answer(
        ip(STRANGER),
        &header(3, 0, 1),
        SOCKET,
        0,
        &mut sink,
        fixed(32),
    );
    assert_eq!(res, Ok(1), "8 + 32 = 40 bytes: at the cap");
    assert_eq!(g.stats().replies_replaced.get(), 1);
    assert_eq!(g5.stats().replies_dropped_too_large.get(), 1);
    assert_eq!(g5.stats().requests_checked.get(), 1);
    assert_eq!(
        stats.dropped_reply_too_large.get(),
        0,
        "the guard counts these"
    );
}

/// The cap counts UDP payloads on both sides, so a kernel socket (bare
/// datagrams) and an AF_XDP queue (whole frames, 50 bytes of headers more)
/// give the same request the same answer.
#[test]
fn the_cap_counts_the_same_bytes_for_datagrams_and_frames() {
    for target in [SOCKET, frame_target()] {
        let g = guard(10, 0, 0);
        let stats = UdpStats::new();
        let r = Responder::new(Some(&g), &stats, HeaderRule::Memcached);
        // 11 request bytes: a cap of 110 = 8 + 102.
        let d = datagram(4, 0, 1, 0, b"ab\n");
        let mut sink = Slots::new(4, 2048);
        assert_eq!(
            r.answer(ip(STRANGER), &d, target, 0, &mut sink, fixed(102)),
            Ok(1)
        );
        let mut sink = Slots::new(4, 2048);
        assert_eq!(
            r.answer(ip(STRANGER), &d, target, 0, &mut sink, fixed(103)),
            Err(UdpDrop::OverCap { replaced: true }),
            "{target:?}"
        );
        if let ReplyTarget::Frame(_) = target {
            // A whole frame the wire module reads back: the error, to the client.
            let f = sink.datagram(0).to_vec();
            let opts = ParseOptions {
                port: Some(40000),
                header_rule: HeaderRule::Strict,
                ..ParseOptions::default()
            };
            let req = parse_request_frame(&f, &opts).unwrap();
            assert_eq!(req.header.request_id, 4);
            assert_eq!(req.payload(&f), TOO_LARGE_REPLY);
        }
    }
}

#[test]
fn rate_limited_requests_are_not_executed_and_empty_replies_cost_nothing() {
    let g = guard(10, 1, 1);
    let stats = UdpStats::new();
    let r = Responder::new(Some(&g), &stats, HeaderRule::Memcached);
    let mut sink = Slots::new(4, UDP_MAX_DATAGRAM_BYTES);
    // A reply of no datagram (noreply) gives its token back.
    for _ in 0..3 {
        let res = r.answer(
            ip(STRANGER),
            &header(1, 0, 1),
            SOCKET,
            0,
            &mut sink,
            fixed(0),
        );
        assert_eq!(res, Ok(0));
    }
    let d = datagram(1, 0, 1, 0, b"a\n");
    assert_eq!(answer(&r, STRANGER, &d, &mut sink), (Ok(1), 1));
    sink.discard();
    assert_eq!(
        answer(&r, STRANGER, &d, &mut sink),
        (Err(UdpDrop::RateLimited), 0)
    );
    assert_eq!(g.stats().dropped_rate_limited.get(), 1);
    // Other sources are not affected; malformed ones never reach the guard.
    assert_eq!(answer(&r, "192.0.2.99", &d, &mut sink).0, Ok(1));
    assert_eq!(
        answer(&r, STRANGER, &d[..7], &mut sink).0,
        Err(UdpDrop::Malformed)
    );
    assert_eq!(g.stats().dropped_rate_limited.get(), 1);
}

/// Random datagrams, caps, services and sinks: never a panic; whatever is
/// kept is a well-numbered run of datagrams of at most 1400 bytes whose UDP
/// payloads stay within the cap (or the one error datagram).
#[test]
fn random_requests_keep_the_rules() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let amp = (next() % 12) as u32;
        let g = guard(amp, 0, 0);
        let stats = UdpStats::new();
        let rule = if next() % 2 == 0 {
            HeaderRule::Memcached
        } else {
            HeaderRule::Strict
        };
        let r = Responder::new(Some(&g), &stats, rule);
        let len = (next() % 40) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 8 && next() % 2 == 0 {
            d[4..6].copy_from_slice(&[0, 1]);
        }
        let reply_len = (next() % 6000) as usize;
        let mut sent = 0usize;
        let mut process = |_: &[u8], out: &mut [u8]| {
            let n = (reply_len - sent).min(out.len());
            out[..n].fill(b'r');
            sent += n;
            Progress {
                consumed: 0,
                written: n,
                status: if sent < reply_len {
                    Status::OutputFull
                } else {
                    Status::NeedInput
                },
            }
        };
        let mut sink = Slots::new((next() % 6) as usize, UDP_MAX_DATAGRAM_BYTES);
        let src = if next() % 4 == 0 {
            "127.0.0.1"
        } else {
            STRANGER
        };
        let res = r.answer(ip(src), &d, SOCKET, 0, &mut sink, &mut process);
        let id = if d.len() >= 2 { [d[0], d[1]] } else { [0, 0] };
        match res {
            Ok(n) => {
                assert_eq!(n, sink.kept);
                assert_eq!(n, reply_len.div_ceil(1392));
                let mut payload = 0;
                for i in 0..n {
                    let dg = sink.datagram(i);
                    assert!(dg.len() <= UDP_MAX_DATAGRAM_BYTES);
                    assert_eq!(
                        &dg[..8],
                        &header(u16::from_be_bytes(id), i as u16, n as u16)[..]
                    );
                    payload += dg.len();
                }
                if src == STRANGER && amp > 0 {
                    assert!(payload <= d.len() * amp as usize, "{payload} {}", d.len());
                }
            }
            Err(UdpDrop::OverCap { replaced: true }) => {
                assert_eq!(sink.kept, 1);
                assert_eq!(&sink.datagram(0)[8..], TOO_LARGE_REPLY);
            }
            Err(_) => assert_eq!(sink.kept, 0),
        }
    }
}
