//! The in-place reply builder: an arbitrary frame that parses as a request
//! is answered in place (arbitrary payload, one or several datagrams), the
//! way the AF_XDP worker does it. Every datagram produced must parse back as
//! a well-formed frame addressed to the client, with both checksums valid,
//! the payload written, and the sequence/total that `finish` patched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_core::wire::{
    parse_request_frame, DatagramSplitter, EthernetFrame, IpPair, ParseOptions, ReplyTarget,
    UdpPacket, UDP_MAX_PAYLOAD_BYTES,
};

/// Frame buffer capacity, as a UMEM frame.
const FRAME_BYTES: usize = 2048;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let reply_len = usize::from(u16::from_le_bytes([data[0], data[1]])) % 5000;
    let frame_cap = FRAME_BYTES - usize::from(data[2]) * 4;
    let rx = &data[3..];
    if rx.len() > frame_cap {
        return;
    }
    let opts = ParseOptions {
        verify_ipv4_checksum: false,
        verify_udp_checksum: false,
        port: None,
        header_rule: petrel_core::wire::HeaderRule::Strict,
    };
    let mut first = vec![0u8; frame_cap];
    first[..rx.len()].copy_from_slice(rx);
    let Ok(req) = parse_request_frame(&first[..rx.len()], &opts) else {
        return;
    };
    // The reply text: a pattern the check can recognise.
    let reply: Vec<u8> = (0..reply_len).map(|i| (i % 251) as u8).collect();
    let mut splitter = DatagramSplitter::new(ReplyTarget::Frame(req.reply));
    let mut frames: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut written = 0;
    let mut buf = first;
    loop {
        let produced = splitter.next(&mut buf, |area| {
            let n = area.len().min(reply.len() - written);
            area[..n].copy_from_slice(&reply[written..written + n]);
            (n, n)
        });
        let p = match produced {
            Ok(p) => p,
            Err(_) => return, // a frame too short for the headers: refused, fine
        };
        written += p.value;
        if p.len == 0 {
            break;
        }
        assert!(p.len <= buf.len());
        frames.push((std::mem::replace(&mut buf, vec![0u8; FRAME_BYTES]), p.len));
        if written == reply.len() {
            break;
        }
    }
    let total = splitter.total();
    assert_eq!(total as usize, frames.len());
    let mut got = Vec::new();
    for (i, (f, len)) in frames.iter_mut().enumerate() {
        splitter.finish(f).expect("finish a produced datagram");
        let f = &f[..*len];
        // The reply parses as a (one-datagram) frame only when total is 1;
        // check its headers directly instead.
        let eth = EthernetFrame::new_checked(f).expect("ethernet");
        assert_eq!(eth.dst_addr(), req.reply.eth_dst);
        assert_eq!(eth.src_addr(), req.reply.eth_src);
        let off = req.reply.headers_len();
        let l4 = off - 16;
        let udp = UdpPacket::new_checked(&f[l4..]).expect("udp");
        assert_eq!(udp.src_port(), req.reply.src_port);
        assert_eq!(udp.dst_port(), req.reply.dst_port);
        assert!(udp.verify_checksum(&req.reply.ips), "UDP checksum");
        if let IpPair::V4 { .. } = req.reply.ips {
            let ip = petrel_core::wire::Ipv4Packet::new_checked(&f[14..]).expect("ipv4");
            assert!(ip.verify_checksum(), "IPv4 header checksum");
        }
        let mc = &udp.payload()[..8];
        assert_eq!(u16::from_be_bytes([mc[0], mc[1]]), req.reply.request_id);
        assert_eq!(u16::from_be_bytes([mc[2], mc[3]]), i as u16);
        assert_eq!(u16::from_be_bytes([mc[4], mc[5]]), total);
        let payload = &udp.payload()[8..];
        assert!(payload.len() <= UDP_MAX_PAYLOAD_BYTES);
        got.extend_from_slice(payload);
        if total == 1 {
            let again = parse_request_frame(f, &opts).expect("a one-datagram reply parses");
            assert_eq!(again.payload(f), payload);
        }
    }
    assert_eq!(got, reply[..written]);
});
