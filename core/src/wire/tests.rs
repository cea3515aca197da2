//! Tests across the wire module: whole request frames, replies in place and
//! in fresh buffers against bytes generated independently
//! (`testdata_gen.py`), every drop reason, and seeded random inputs.

use super::ethernet::ETHERNET_MIN_FRAME_BYTES;
use super::testdata::*;
use super::*;

const PORT: u16 = 11211;

fn opts() -> ParseOptions {
    ParseOptions {
        verify_ipv4_checksum: true,
        verify_udp_checksum: true,
        port: Some(PORT),
        header_rule: HeaderRule::Strict,
    }
}

/// A frame buffer the size of a UMEM chunk holding `bytes`.
fn umem(bytes: &[u8]) -> [u8; 2048] {
    let mut b = [0u8; 2048];
    b[..bytes.len()].copy_from_slice(bytes);
    b
}

fn client_v4() -> ReplyAddressing {
    // The client's view: it addresses the server.
    ReplyAddressing {
        eth_src: EthernetAddress([2, 0, 0, 0, 0, 1]),
        eth_dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ips: IpPair::V4 {
            src: Ipv4Address::new(198, 18, 0, 1),
            dst: Ipv4Address::new(198, 18, 0, 2),
        },
        src_port: 40000,
        dst_port: PORT,
        request_id: 0x0102,
    }
}

fn client_v6() -> ReplyAddressing {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut src = a;
    src[15] = 1;
    a[15] = 2;
    ReplyAddressing {
        ips: IpPair::V6 {
            src: Ipv6Address(src),
            dst: Ipv6Address(a),
        },
        ..client_v4()
    }
}

/// Build a request frame with our own emitter (sequence 0, total 1).
fn request(addr: &ReplyAddressing, text: &[u8]) -> ([u8; 2048], usize) {
    let mut b = [0u8; 2048];
    let off = addr.headers_len();
    b[off..off + text.len()].copy_from_slice(text);
    let n = write_reply_frame(&mut b, addr, text.len(), 0, 1).unwrap();
    (b, n)
}

#[test]
fn parse_v4_request() {
    let req = parse_request_frame(&REQ_V4_GET_FOO, &opts()).unwrap();
    assert_eq!(req.payload(&REQ_V4_GET_FOO), b"get foo\r\n");
    assert_eq!(req.payload_offset, 50);
    assert_eq!(
        req.header,
        FrameHeader {
            request_id: 0x0102,
            sequence: 0,
            total: 1,
            reserved: 0
        }
    );
    let r = req.reply;
    assert_eq!(r.eth_src, EthernetAddress([2, 0, 0, 0, 0, 2]));
    assert_eq!(r.eth_dst, EthernetAddress([2, 0, 0, 0, 0, 1]));
    assert_eq!(
        r.ips,
        IpPair::V4 {
            src: Ipv4Address::new(198, 18, 0, 2),
            dst: Ipv4Address::new(198, 18, 0, 1)
        }
    );
    assert_eq!(
        (r.src_port, r.dst_port, r.request_id),
        (PORT, 40000, 0x0102)
    );
    // Our own emitter produces the generated request, except the
    // identification (we emit 0), hence both checksums differ only by that.
    let (ours, n) = request(&client_v4(), b"get foo\r\n");
    assert_eq!(n, 60);
    assert_eq!(parse_request_frame(&ours[..n], &opts()).unwrap(), req);
}

#[test]
fn parse_v6_request() {
    let req = parse_request_frame(&REQ_V6_GET_FOO, &opts()).unwrap();
    assert_eq!(req.payload(&REQ_V6_GET_FOO), b"get foo\r\n");
    assert_eq!(req.payload_offset, 70);
    assert_eq!(req.reply.ips, client_v6().ips.reversed());
    assert_eq!(req.reply.headers_len(), 70);
    let (ours, n) = request(&client_v6(), b"get foo\r\n");
    // Flow label aside (we send 0), our emitter produces the same frame.
    let mut expected = REQ_V6_GET_FOO;
    expected[15] = 0;
    expected[16] = 0;
    expected[17] = 0;
    assert_eq!(&ours[..n], &expected[..]);
}

#[test]
fn ethernet_padding_is_ignored() {
    let mut padded = [0xeeu8; 64];
    padded[..REQ_V4_GET_FOO.len()].copy_from_slice(&REQ_V4_GET_FOO);
    let req = parse_request_frame(&padded, &opts()).unwrap();
    assert_eq!(req.payload(&padded), b"get foo\r\n");
}

#[test]
fn reply_in_place_v4_matches_generated_bytes() {
    let mut frame = umem(&REQ_V4_GET_FOO);
    let req = parse_request_frame(&frame[..REQ_V4_GET_FOO.len()], &opts()).unwrap();
    frame[req.payload_offset..req.payload_offset + 5].copy_from_slice(b"END\r\n");
    let n = finish_reply_in_place(&mut frame, &req, 5, 0, 1).unwrap();
    assert_eq!(n, ETHERNET_MIN_FRAME_BYTES);
    assert_eq!(&frame[..n], &REPLY_V4_END[..]);
}

#[test]
fn reply_in_place_v6_matches_generated_bytes() {
    let mut frame = umem(&REQ_V6_GET_FOO);
    let req = parse_request_frame(&frame[..REQ_V6_GET_FOO.len()], &opts()).unwrap();
    frame[req.payload_offset..req.payload_offset + 5].copy_from_slice(b"END\r\n");
    let n = finish_reply_in_place(&mut frame, &req, 5, 0, 1).unwrap();
    assert_eq!(&frame[..n], &REPLY_V6_END[..]);
    // The UDP checksum is full and non-zero, and the reply parses back (it is
    // a well-formed seq 0 / total 1 datagram) with every checksum verified.
    let back = parse_request_frame(
        &frame[..n],
        &ParseOptions {
            port: Some(40000),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(back.payload(&frame[..n]), b"END\r\n");
}

#[test]
fn reply_into_fresh_buffer() {
    let req = parse_request_frame(&REQ_V4_GET_FOO, &opts()).unwrap();
    let mut buf = [0x55u8; 100];
    buf[50..55].copy_from_slice(b"END\r\n");
    let n = write_reply_frame(&mut buf, &req.reply, 5, 0, 1).unwrap();
    assert_eq!(&buf[..n], &REPLY_V4_END[..]);
    // Without room for padding the exact length comes back.
    let mut exact = [0u8; 55];
    exact[50..].copy_from_slice(b"END\r\n");
    assert_eq!(write_reply_frame(&mut exact, &req.reply, 5, 0, 1), Ok(55));
    assert_eq!(&exact[..], &REPLY_V4_END[..55]);
    // Limits.
    let mut big = [0u8; 2048];
    assert_eq!(
        write_reply_frame(&mut big, &req.reply, 1393, 0, 1),
        Err(Error::PayloadTooLarge)
    );
    assert_eq!(
        write_reply_frame(&mut big, &req.reply, 1392, 0, 1),
        Ok(1442)
    );
    assert_eq!(
        write_reply_frame(&mut big[..1441], &req.reply, 1392, 0, 1),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        write_reply_frame(&mut big[..10], &req.reply, 0, 0, 1),
        Err(Error::BufferTooSmall)
    );
}

fn pattern(buf: &mut [u8], start: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((start + i) * 7 + 3) as u8;
    }
}

/// Check a produced frame's checksums with the views and return its header.
fn verify_frame(frame: &[u8]) -> FrameHeader {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let (ips, udp) = match eth.ethertype() {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            assert!(ip.verify_checksum());
            let r = Ipv4Repr::parse(&ip, true).unwrap();
            (
                IpPair::V4 {
                    src: r.src_addr,
                    dst: r.dst_addr,
                },
                &eth.payload()[20..usize::from(ip.total_len())],
            )
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
            let r = Ipv6Repr::parse(&ip).unwrap();
            (
                IpPair::V6 {
                    src: r.src_addr,
                    dst: r.dst_addr,
                },
                ip.into_payload(),
            )
        }
        other => panic!("ethertype {other:?}"),
    };
    let u = UdpPacket::new_checked(udp).unwrap();
    assert_eq!(usize::from(u.len()), udp.len());
    assert_ne!(u.checksum(), 0);
    assert!(u.verify_checksum(&ips), "udp checksum");
    FrameHeader::parse(&MemcacheUdpFrame::new_checked(u.payload()).unwrap()).unwrap()
}

#[test]
fn splitter_frames_match_generated_headers_and_verify() {
    for (req_bytes, expected) in [
        (&REQ_V6_GET_FOO[..], &REPLY_V6_SEQ1_OF3_HEADERS[..]),
        (&REQ_V4_GET_FOO[..], &REPLY_V4_SEQ1_OF3_HEADERS[..]),
    ] {
        let req = parse_request_frame(req_bytes, &opts()).unwrap();
        let mut splitter = UdpReply::new(ReplyTarget::Frame(req.reply));
        let mut frames = [[0u8; 2048]; 3];
        let mut lens = [0usize; 3];
        // A 3000-byte reply: 1392 + 1392 + 216.
        let mut done = 0usize;
        for (i, f) in frames.iter_mut().enumerate() {
            let p = splitter
                .next(f, |area| {
                    let n = area.len().min(3000 - done);
                    pattern(&mut area[..n], done % 1392);
                    (n, n)
                })
                .unwrap();
            assert_eq!(p.sequence, i as u16);
            done += p.value;
            lens[i] = p.len;
        }
        assert_eq!(done, 3000);
        assert_eq!(splitter.total(), 3);
        // Before finish the headers say total 0, and checksums already verify.
        assert_eq!(verify_frame(&frames[1][..lens[1]]).total, 0);
        for f in frames.iter_mut() {
            splitter.finish(f).unwrap();
            splitter.finish(f).unwrap(); // idempotent
        }
        for (i, f) in frames.iter().enumerate() {
            let h = verify_frame(&f[..lens[i]]);
            assert_eq!(
                h,
                FrameHeader {
                    request_id: 0x0102,
                    sequence: i as u16,
                    total: 3,
                    reserved: 0
                }
            );
        }
        assert_eq!(&frames[1][..expected.len()], expected);
        assert_eq!(lens[2], req.reply.headers_len() + 216);
        // A datagram of another reply is refused.
        let mut other = frames[0];
        other[req.reply.headers_len() - 8] ^= 0xff;
        assert_eq!(splitter.finish(&mut other), Err(Error::BadFrameHeader));
    }
}

#[test]
fn splitter_bare_datagrams() {
    let mut s = DatagramSplitter::new(ReplyTarget::Datagram { request_id: 7 });
    let mut bufs = [[0u8; UDP_MAX_DATAGRAM_BYTES]; 2];
    let p0 = s.next(&mut bufs[0], |a| (a.len(), ())).unwrap();
    assert_eq!(p0.len, UDP_MAX_DATAGRAM_BYTES);
    let p1 = s.next(&mut bufs[1], |a| {
        a[..5].copy_from_slice(b"END\r\n");
        (5, ())
    });
    assert_eq!(p1.unwrap().len, 13);
    // A fill that writes nothing produces nothing.
    let p2 = s.next(&mut [0u8; 100], |_| (0, ())).unwrap();
    assert_eq!((p2.len, s.total()), (0, 2));
    for b in bufs.iter_mut() {
        s.finish(b).unwrap();
    }
    assert_eq!(bufs[1][..13], *b"\x00\x07\x00\x01\x00\x02\x00\x00END\r\n");
    assert_eq!(bufs[0][..8], [0, 7, 0, 0, 0, 2, 0, 0]);
    // Errors.
    assert_eq!(
        s.next(&mut [0u8; 7], |_| (1, ())).err(),
        Some(Error::BufferTooSmall)
    );
    assert_eq!(
        s.next(&mut [0u8; 20], |_| (13, ())).err(),
        Some(Error::PayloadTooLarge)
    );
    let mut big = [0u8; 1500];
    assert_eq!(
        s.next(&mut big, |a| (a.len(), a.len())).unwrap().value,
        UDP_MAX_PAYLOAD_BYTES
    );
    assert_eq!(s.finish(&mut [0u8; 4]), Err(Error::BadFrameHeader));
}

#[test]
fn splitter_stops_at_65535_datagrams() {
    let mut s = DatagramSplitter::new(ReplyTarget::Datagram { request_id: 1 });
    let mut buf = [0u8; 9];
    for _ in 0..u16::MAX {
        s.next(&mut buf, |_| (1, ())).unwrap();
    }
    assert_eq!(
        s.next(&mut buf, |_| (1, ())).err(),
        Some(Error::TooManyDatagrams)
    );
}

/// Rebuild IPv4 and UDP checksums after a test mutated a frame.
fn refix(frame: &mut [u8]) {
    let v6 = frame[12] == 0x86;
    let l4 = if v6 { 54 } else { 34 };
    let ips = if v6 {
        let ip = Ipv6Packet::new_unchecked(&frame[14..]);
        IpPair::V6 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        }
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        ip.fill_checksum();
        IpPair::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        }
    };
    UdpPacket::new_unchecked(&mut frame[l4..]).fill_checksum(&ips);
}

fn mutate(base: &[u8], f: impl FnOnce(&mut [u8]), fix: bool) -> Result<RequestFrame> {
    let mut b = umem(base);
    f(&mut b[..base.len()]);
    if fix {
        refix(&mut b[..base.len()]);
    }
    parse_request_frame(&b[..base.len()], &opts())
}

#[test]
fn every_drop_reason() {
    let v4 = &REQ_V4_GET_FOO[..];
    let v6 = &REQ_V6_GET_FOO[..];
    for n in 0..v4.len() {
        let e = parse_request_frame(&v4[..n], &opts()).unwrap_err();
        // Cut inside a header: Truncated; cut inside the payload: the IP total
        // length points past the end, also Truncated.
        assert_eq!(e, Error::Truncated, "v4 cut at {n}");
    }
    for n in 0..v6.len() {
        assert_eq!(
            parse_request_frame(&v6[..n], &opts()),
            Err(Error::Truncated),
            "v6 cut at {n}"
        );
    }
    let ok = |r: Result<RequestFrame>| r.map(|_| ());
    assert_eq!(ok(mutate(v4, |_| {}, true)), Ok(()));
    assert_eq!(
        ok(mutate(
            v4,
            |b| b[12..14].copy_from_slice(&[0x08, 0x06]),
            false
        )),
        Err(Error::NotIpv4OrIpv6)
    );
    assert_eq!(
        ok(mutate(
            v4,
            |b| b[12..14].copy_from_slice(&[0x81, 0x00]),
            false
        )),
        Err(Error::NotIpv4OrIpv6)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[14] = 0x65, false)),
        Err(Error::BadVersion)
    );
    assert_eq!(
        ok(mutate(v6, |b| b[14] = 0x45, false)),
        Err(Error::BadVersion)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[14] = 0x46, false)),
        Err(Error::Ipv4Options)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[14] = 0x44, false)),
        Err(Error::BadLength)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[16..18].copy_from_slice(&[0, 19]), true)),
        Err(Error::BadLength)
    );
    assert_eq!(ok(mutate(v4, |b| b[20] = 0x20, true)), Err(Error::Fragment));
    assert_eq!(ok(mutate(v4, |b| b[21] = 0x01, true)), Err(Error::Fragment));
    assert_eq!(
        ok(mutate(v4, |b| b[22] = 1, false)),
        Err(Error::BadIpChecksum)
    );
    assert_eq!(ok(mutate(v4, |b| b[23] = 6, true)), Err(Error::NotUdp));
    assert_eq!(ok(mutate(v6, |b| b[20] = 44, false)), Err(Error::Fragment));
    assert_eq!(
        ok(mutate(v6, |b| b[20] = 0, false)),
        Err(Error::Ipv6ExtensionHeader)
    );
    assert_eq!(
        ok(mutate(v6, |b| b[20] = 60, false)),
        Err(Error::Ipv6ExtensionHeader)
    );
    assert_eq!(ok(mutate(v6, |b| b[20] = 58, false)), Err(Error::NotUdp));
    // UDP length below 8, or beyond the IP payload.
    assert_eq!(
        ok(mutate(v4, |b| b[38..40].copy_from_slice(&[0, 7]), true)),
        Err(Error::BadLength)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[38..40].copy_from_slice(&[0, 26]), true)),
        Err(Error::BadLength)
    );
    assert_eq!(
        ok(mutate(v6, |b| b[58..60].copy_from_slice(&[0, 26]), true)),
        Err(Error::BadLength)
    );
    // IP packet too short for a UDP header.
    assert_eq!(
        ok(mutate(v4, |b| b[16..18].copy_from_slice(&[0, 27]), true)),
        Err(Error::BadLength)
    );
    // UDP shorter than the IP payload: accepted, trailing bytes ignored.
    let r = mutate(v4, |b| b[38..40].copy_from_slice(&[0, 24]), true).unwrap();
    assert_eq!(r.payload(&REQ_V4_GET_FOO), b"get foo\r");
    assert_eq!(
        ok(mutate(v4, |b| b[36..38].copy_from_slice(&[0, 1]), true)),
        Err(Error::WrongPort)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[50] = b'G', false)),
        Err(Error::BadUdpChecksum)
    );
    assert_eq!(
        ok(mutate(v6, |b| b[70] = b'G', false)),
        Err(Error::BadUdpChecksum)
    );
    assert_eq!(
        ok(mutate(v6, |b| b[60..62].copy_from_slice(&[0, 0]), false)),
        Err(Error::BadUdpChecksum)
    );
    // Zero UDP checksum over IPv4 means "none" and is accepted.
    assert_eq!(
        ok(mutate(v4, |b| b[40..42].copy_from_slice(&[0, 0]), false)),
        Ok(())
    );
    // Without verification a corrupted payload passes (NIC/veth offload case).
    let mut b = umem(v4);
    b[50] = b'G';
    let lax = ParseOptions::default();
    assert!(parse_request_frame(&b[..v4.len()], &lax).is_ok());
    b[22] = 1;
    assert_eq!(
        parse_request_frame(&b[..v4.len()], &lax),
        Err(Error::BadIpChecksum)
    );
    let no_ip_check = ParseOptions {
        verify_ipv4_checksum: false,
        ..lax
    };
    assert!(parse_request_frame(&b[..v4.len()], &no_ip_check).is_ok());
    // Memcache frame header problems.
    let (b, n) = request(&client_v4(), b"");
    assert!(parse_request_frame(&b[..n], &opts()).is_ok());
    assert_eq!(
        ok(mutate(v4, |b| b[48..50].copy_from_slice(&[0, 1]), true)),
        Err(Error::BadFrameHeader)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[46..48].copy_from_slice(&[0, 0]), true)),
        Err(Error::BadFrameHeader)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[46..48].copy_from_slice(&[0, 2]), true)),
        Err(Error::MultiDatagramRequest)
    );
    assert_eq!(
        ok(mutate(v4, |b| b[44..46].copy_from_slice(&[0, 1]), true)),
        Err(Error::MultiDatagramRequest)
    );
    // memcached's rule: sequence and reserved are not looked at, the count
    // must be 1; the datagram itself is found either way.
    let memcached = ParseOptions {
        header_rule: HeaderRule::Memcached,
        verify_udp_checksum: false,
        ..opts()
    };
    for (at, bytes, want) in [
        (48, [0, 1], Ok(())),
        (48, [0xff, 0xff], Ok(())),
        (44, [0, 5], Ok(())),
        (46, [0, 0], Err(Error::MultiDatagramRequest)),
        (46, [0, 2], Err(Error::MultiDatagramRequest)),
    ] {
        let mut b = umem(v4);
        b[at..at + 2].copy_from_slice(&bytes);
        let f = &b[..v4.len()];
        assert_eq!(
            parse_request_frame(f, &memcached).map(|r| r.payload_offset),
            want.map(|()| 50),
            "{at} {bytes:?}"
        );
        let d = parse_datagram_frame(f, &memcached).unwrap();
        assert_eq!((d.datagram_offset, d.datagram_len), (42, v4.len() - 42));
        assert_eq!(d.reply.request_id, 0);
    }
    // UDP payload shorter than the frame header.
    let mut short = umem(v4);
    short[16..18].copy_from_slice(&[0, 20 + 8 + 7]);
    short[38..40].copy_from_slice(&[0, 15]);
    refix(&mut short[..49]);
    assert_eq!(
        parse_request_frame(&short[..49], &opts()),
        Err(Error::Truncated)
    );
}

#[test]
fn error_names_and_indices_are_unique() {
    for (i, e) in Error::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        for f in &Error::ALL[i + 1..] {
            assert_ne!(e.name(), f.name());
        }
        assert!(e
            .name()
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
    }
}

/// xorshift64*: a seeded generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Call every accessor of every view on `bytes`, whether or not it passed
/// `check_len`; nothing may panic.
fn poke_views(bytes: &mut [u8]) {
    let e = EthernetFrame::new_unchecked(&*bytes);
    let _ = (
        e.check_len(),
        e.src_addr(),
        e.dst_addr(),
        e.ethertype(),
        e.payload().len(),
    );
    let _ = EthernetRepr::parse(&e);
    let p = Ipv4Packet::new_unchecked(&*bytes);
    let _ = (
        p.check_len(),
        p.version(),
        p.header_len(),
        p.total_len(),
        p.ident(),
        p.is_fragment(),
    );
    let _ = (
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
        p.verify_checksum(),
    );
    let _ = (p.payload().len(), Ipv4Repr::parse(&p, true), p.dscp_ecn());
    let p = Ipv6Packet::new_unchecked(&*bytes);
    let _ = (
        p.check_len(),
        p.version(),
        p.traffic_class(),
        p.flow_label(),
        p.payload_len(),
    );
    let _ = (
        p.next_header(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
        p.payload().len(),
        Ipv6Repr::parse(&p),
    );
    let u = UdpPacket::new_unchecked(&*bytes);
    let ips = IpPair::V6 {
        src: Ipv6Address::LOOPBACK,
        dst: Ipv6Address::LOOPBACK,
    };
    let _ = (
        u.check_len(),
        u.src_port(),
        u.dst_port(),
        u.len(),
        u.checksum(),
        u.payload().len(),
    );
    let _ = (u.verify_checksum(&ips), UdpRepr::parse(&u, &ips, true));
    let m = MemcacheUdpFrame::new_unchecked(&*bytes);
    let _ = (
        m.check_len(),
        m.request_id(),
        m.sequence(),
        m.total(),
        m.reserved(),
        m.payload().len(),
    );
    let _ = FrameHeader::parse_request(&m, HeaderRule::Memcached);
    // Setters and fills on arbitrary buffers.
    let mut p = Ipv4Packet::new_unchecked(&mut *bytes);
    p.fill_checksum();
    let _ = p.payload_mut().len();
    let mut u = UdpPacket::new_unchecked(&mut *bytes);
    u.fill_checksum(&ips);
    let _ = u.payload_mut().len();
    let mut p = Ipv6Packet::new_unchecked(&mut *bytes);
    p.set_hop_limit(1);
    let _ = p.payload_mut().len();
    let mut e = EthernetFrame::new_unchecked(&mut *bytes);
    e.swap_addrs();
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5eed_0001);
    let mut buf = [0u8; 256];
    for _ in 0..200_000 {
        let len = rng.below(buf.len() + 1);
        for b in buf[..len].iter_mut() {
            *b = rng.next() as u8;
        }
        // Bias towards frames that get past the first checks.
        if len > 14 && rng.below(2) == 0 {
            let (et, vb) = if rng.below(2) == 0 {
                ([0x08, 0x00], 0x45)
            } else {
                ([0x86, 0xdd], 0x60)
            };
            buf[12..14].copy_from_slice(&et);
            buf[14] = vb;
        }
        if let Ok(req) = parse_request_frame(&buf[..len], &ParseOptions::default()) {
            assert!(req.payload_offset + req.payload_len <= len);
        }
        poke_views(&mut buf[..len]);
    }
}

#[test]
fn mutated_requests_never_panic_and_replies_always_verify() {
    let mut rng = Rng(0x5eed_0002);
    let mut accepted = 0;
    for round in 0..50_000 {
        let addr = if round % 2 == 0 {
            client_v4()
        } else {
            client_v6()
        };
        let text_len = rng.below(300);
        let mut text = [0u8; 300];
        for b in text[..text_len].iter_mut() {
            *b = rng.next() as u8;
        }
        let (mut frame, n) = request(&addr, &text[..text_len]);
        // Flip a few bytes in the headers (or nowhere).
        for _ in 0..rng.below(3) {
            let at = rng.below(addr.headers_len());
            frame[at] ^= 1 << rng.below(8);
        }
        let opts = if rng.below(2) == 0 {
            opts()
        } else {
            ParseOptions::default()
        };
        let Ok(req) = parse_request_frame(&frame[..n], &opts) else {
            continue;
        };
        accepted += 1;
        assert!(req.payload_offset + req.payload_len <= n);
        // Reply in place with a random payload of random length.
        let reply_len = rng.below(UDP_MAX_PAYLOAD_BYTES + 1);
        for b in frame[req.payload_offset..req.payload_offset + reply_len].iter_mut() {
            *b = rng.next() as u8;
        }
        let seq = rng.next() as u16;
        let len =
            finish_reply_in_place(&mut frame, &req, reply_len, seq, seq.saturating_add(1)).unwrap();
        let h = verify_frame(&frame[..len]);
        assert_eq!(
            (h.request_id, h.sequence, h.total, h.reserved),
            (req.header.request_id, seq, seq.saturating_add(1), 0)
        );
        assert!(len >= ETHERNET_MIN_FRAME_BYTES);
    }
    assert!(accepted > 10_000, "too few accepted: {accepted}");
}
