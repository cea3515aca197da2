//! Stable-toolchain property tests for the entry points the cargo-fuzz
//! targets in `core/fuzz` exercise beyond the parser and the engine (those
//! are in `proto_fuzz.rs`): the wire views and request-frame parser on
//! arbitrary and on mutated real frames, the in-place reply builder, and the
//! UDP amplification guard. Same oracles as the fuzz targets, run on every
//! `cargo test`.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use petrel_core::udp::guard::{Admission, Cidr, GuardConfig, Outcome, UdpGuard};
use petrel_core::wire::{
    parse_request_frame, write_reply_frame, DatagramSplitter, EthernetAddress, EthernetFrame,
    HeaderRule, IpPair, Ipv4Address, Ipv4Packet, Ipv6Address, ParseOptions, ReplyAddressing,
    ReplyTarget, UdpPacket, UDP_MAX_PAYLOAD_BYTES,
};
use proptest::prelude::*;

fn opts(verify_udp: bool) -> ParseOptions {
    ParseOptions {
        verify_ipv4_checksum: true,
        verify_udp_checksum: verify_udp,
        port: None,
        header_rule: HeaderRule::Strict,
    }
}

/// A real request frame, built as a client would send it.
fn request_frame(v6: bool, id: u16, sport: u16, payload: &[u8]) -> Vec<u8> {
    let ips = if v6 {
        IpPair::V6 {
            src: Ipv6Address([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            dst: Ipv6Address([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        }
    } else {
        IpPair::V4 {
            src: Ipv4Address::new(198, 18, 0, 2),
            dst: Ipv4Address::new(198, 18, 0, 1),
        }
    };
    let client = ReplyAddressing {
        eth_src: EthernetAddress([2, 0, 0, 0, 0, 2]),
        eth_dst: EthernetAddress([2, 0, 0, 0, 0, 1]),
        ips,
        src_port: sport,
        dst_port: 11211,
        request_id: id,
    };
    let mut buf = vec![0u8; 2048];
    let at = client.headers_len();
    buf[at..at + payload.len()].copy_from_slice(payload);
    let len = write_reply_frame(&mut buf, &client, payload.len(), 0, 1).expect("frame");
    buf.truncate(len);
    buf
}

/// The reply-builder oracle of the `reply` fuzz target.
fn check_reply(frame: &[u8], reply_len: usize) {
    let Ok(req) = parse_request_frame(frame, &opts(false)) else {
        return;
    };
    let reply: Vec<u8> = (0..reply_len).map(|i| (i % 251) as u8).collect();
    let mut splitter = DatagramSplitter::new(ReplyTarget::Frame(req.reply));
    let mut buf = vec![0u8; 2048];
    buf[..frame.len()].copy_from_slice(frame);
    let mut frames = Vec::new();
    let mut written = 0;
    loop {
        let p = splitter
            .next(&mut buf, |area| {
                let n = area.len().min(reply.len() - written);
                area[..n].copy_from_slice(&reply[written..written + n]);
                (n, n)
            })
            .expect("a 2048-byte frame holds the headers");
        written += p.value;
        if p.len == 0 {
            break;
        }
        frames.push((std::mem::replace(&mut buf, vec![0u8; 2048]), p.len));
        if written == reply.len() {
            break;
        }
    }
    let total = splitter.total();
    assert_eq!(usize::from(total), frames.len());
    let mut got = Vec::new();
    for (i, (f, len)) in frames.iter_mut().enumerate() {
        splitter.finish(f).expect("finish");
        let f = &f[..*len];
        let eth = EthernetFrame::new_checked(f).expect("ethernet");
        assert_eq!(eth.dst_addr(), req.reply.eth_dst);
        let l4 = req.reply.headers_len() - 16;
        let udp = UdpPacket::new_checked(&f[l4..]).expect("udp");
        assert_eq!(
            (udp.src_port(), udp.dst_port()),
            (req.reply.src_port, req.reply.dst_port)
        );
        assert!(udp.verify_checksum(&req.reply.ips), "UDP checksum");
        if let IpPair::V4 { .. } = req.reply.ips {
            assert!(Ipv4Packet::new_checked(&f[14..]).unwrap().verify_checksum());
        }
        let mc = &udp.payload()[..8];
        assert_eq!(u16::from_be_bytes([mc[0], mc[1]]), req.reply.request_id);
        assert_eq!(u16::from_be_bytes([mc[2], mc[3]]), i as u16);
        assert_eq!(u16::from_be_bytes([mc[4], mc[5]]), total);
        assert!(udp.payload().len() - 8 <= UDP_MAX_PAYLOAD_BYTES);
        got.extend_from_slice(&udp.payload()[8..]);
    }
    assert_eq!(got, reply[..written]);
    assert_eq!(written, reply.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn request_frames_never_panic_and_payload_lies_inside(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        verify in any::<bool>(),
    ) {
        if let Ok(req) = parse_request_frame(&bytes, &opts(verify)) {
            prop_assert!(req.payload_offset + req.payload_len <= bytes.len());
        }
    }

    #[test]
    fn mutated_real_frames_never_panic(
        v6 in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        flips in prop::collection::vec((0usize..400, any::<u8>()), 0..6),
        cut in 0usize..400,
    ) {
        let mut f = request_frame(v6, 7, 40000, &payload);
        // Unmutated, it parses and carries the payload.
        let req = parse_request_frame(&f, &opts(true)).expect("a real frame parses");
        prop_assert_eq!(req.payload(&f), &payload[..]);
        for (at, b) in flips {
            if let Some(x) = f.get_mut(at) {
                *x ^= b;
            }
        }
        f.truncate(cut.max(1).min(f.len()));
        if let Ok(req) = parse_request_frame(&f, &opts(true)) {
            prop_assert!(req.payload_offset + req.payload_len <= f.len());
        }
    }

    #[test]
    fn replies_built_in_place_parse_back(
        v6 in any::<bool>(),
        id in any::<u16>(),
        sport in 1u16..,
        payload in prop::collection::vec(any::<u8>(), 0..100),
        reply_len in prop_oneof![0usize..50, 1380usize..1400, 2780usize..2790, 0usize..6000],
    ) {
        let f = request_frame(v6, id, sport, &payload);
        check_reply(&f, reply_len);
    }

    #[test]
    fn guard_trusts_exactly_the_allowlist_and_bounds_each_source(
        rate in 1u32..200,
        burst in 1u32..20,
        amp in 0u32..20,
        none in any::<bool>(),
        ops in prop::collection::vec((0u8..4, any::<u8>(), any::<u16>(), 0u8..4, 0u8..4, 0u8..16), 0..300),
    ) {
        let mut cfg = GuardConfig {
            rate_per_sec: rate,
            burst,
            max_amplification: amp,
            seed: 5,
            ..GuardConfig::default()
        };
        if none {
            cfg.allow.clear();
            cfg.allow.push(Cidr::parse("10.0.0.0/8").unwrap()).unwrap();
        }
        let g = UdpGuard::new(&cfg).unwrap();
        let start = 1u64 << 40;
        let mut now = start;
        let mut answered = 0u64;
        let watched = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0));
        for (kind, b, size, outcome, datagrams, dt) in ops {
            now += u64::from(dt);
            let src = match kind {
                0 => IpAddr::V4(Ipv4Addr::new(10, b, 0, 1)),
                1 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, b & 1)),
                2 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(b))),
                _ => IpAddr::V6(Ipv4Addr::new(127, 0, 0, b).to_ipv6_mapped()),
            };
            let a = g.admit(src, usize::from(size), now);
            let trusted = cfg.allow.iter().any(|c| c.contains(src));
            prop_assert_eq!(matches!(a, Admission::Trusted), trusted);
            if let Admission::Checked { max_reply_bytes, .. } = a {
                if amp > 0 {
                    prop_assert_eq!(max_reply_bytes, usize::from(size) * amp as usize);
                }
            }
            let outcome = match outcome {
                0 => Outcome::Sent(usize::from(datagrams)),
                1 => Outcome::Replaced,
                2 => Outcome::Dropped,
                _ => Outcome::Unanswered,
            };
            let sent = matches!(outcome, Outcome::Replaced | Outcome::Sent(1..));
            if sent && matches!(a, Admission::Checked { .. }) && src == watched {
                answered += 1;
            }
            g.settle(a, outcome, now);
        }
        let bound = u64::from(burst) + (now - start) * u64::from(rate) / 1000 + 1;
        prop_assert!(answered <= bound, "{} answered > {}", answered, bound);
    }
}
