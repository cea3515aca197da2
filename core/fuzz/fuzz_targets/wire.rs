//! The wire views (Ethernet, IPv4, IPv6, UDP, memcache-UDP) on arbitrary
//! bytes: no getter or setter panics, checked or not; `parse_request_frame`
//! never panics; every `Repr` that parses emits back into a fresh buffer and
//! parses again to the same value; a frame accepted as a request has its
//! payload inside the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_core::wire::{
    parse_request_frame, EthernetFrame, EthernetRepr, FrameHeader, IpPair, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, MemcacheUdpFrame, ParseOptions, UdpPacket, UdpRepr,
};

fuzz_target!(|data: &[u8]| {
    let Some((&opts_byte, frame)) = data.split_first() else {
        return;
    };
    let opts = ParseOptions {
        verify_ipv4_checksum: opts_byte & 1 != 0,
        verify_udp_checksum: opts_byte & 2 != 0,
        port: if opts_byte & 4 != 0 {
            Some(11211)
        } else {
            None
        },
        header_rule: if opts_byte & 8 != 0 {
            petrel_core::wire::HeaderRule::Strict
        } else {
            petrel_core::wire::HeaderRule::Memcached
        },
    };
    if let Ok(req) = parse_request_frame(frame, &opts) {
        assert!(req.payload_offset + req.payload_len <= frame.len());
        assert_eq!(req.payload(frame).len(), req.payload_len);
        assert!(req.payload_offset == 50 || req.payload_offset == 70);
        if opts.header_rule == petrel_core::wire::HeaderRule::Strict {
            assert_eq!(req.header.sequence, 0);
        }
        assert_eq!(req.header.total, 1);
    }

    // Every view at every header offset, checked and unchecked.
    for at in [0usize, 14, 34, 42, 54, 62] {
        let Some(b) = frame.get(at..) else { continue };
        let eth = EthernetFrame::new_unchecked(b);
        let _ = (
            eth.dst_addr(),
            eth.src_addr(),
            eth.ethertype(),
            eth.payload().len(),
        );
        if let Ok(r) = EthernetRepr::parse(&eth) {
            let mut buf = [0u8; 14];
            let mut out = EthernetFrame::new_unchecked(&mut buf[..]);
            r.emit(&mut out).expect("emit fits");
            assert_eq!(
                EthernetRepr::parse(&EthernetFrame::new_unchecked(&buf[..])),
                Ok(r)
            );
        }

        let ip4 = Ipv4Packet::new_unchecked(b);
        let _ = (
            ip4.version(),
            ip4.header_len(),
            ip4.total_len(),
            ip4.ident(),
            ip4.is_fragment(),
            ip4.checksum(),
            ip4.verify_checksum(),
            ip4.payload().len(),
        );
        if let Ok(r) = Ipv4Repr::parse(&ip4, opts_byte & 8 != 0) {
            let mut buf = vec![0u8; 20 + r.payload_len];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]))
                .expect("emit fits");
            assert_eq!(
                Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&buf[..]), true),
                Ok(r)
            );
        }

        let ip6 = Ipv6Packet::new_unchecked(b);
        let _ = (
            ip6.version(),
            ip6.traffic_class(),
            ip6.flow_label(),
            ip6.payload_len(),
            ip6.next_header(),
            ip6.payload().len(),
        );
        if let Ok(r) = Ipv6Repr::parse(&ip6) {
            let mut buf = vec![0u8; 40 + r.payload_len];
            r.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]))
                .expect("emit fits");
            assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&buf[..])), Ok(r));
        }

        let udp = UdpPacket::new_unchecked(b);
        let _ = (
            udp.src_port(),
            udp.dst_port(),
            udp.len(),
            udp.checksum(),
            udp.payload().len(),
        );
        let ips = IpPair::V4 {
            src: petrel_core::wire::Ipv4Address::new(198, 18, 0, 1),
            dst: petrel_core::wire::Ipv4Address::new(198, 18, 0, 2),
        };
        let _ = udp.verify_checksum(&ips);
        if let Ok(r) = UdpRepr::parse(&udp, &ips, false) {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), &ips)
                .expect("emit fits");
            let again = UdpPacket::new_unchecked(&buf[..]);
            let r2 = UdpRepr::parse(&again, &ips, true).expect("own checksum verifies");
            assert_eq!(r2, r);
        }

        let mc = MemcacheUdpFrame::new_unchecked(b);
        let _ = (
            mc.request_id(),
            mc.sequence(),
            mc.total(),
            mc.reserved(),
            mc.payload().len(),
        );
        if let Ok(h) = FrameHeader::parse(&mc) {
            let bytes = h.to_bytes();
            assert_eq!(
                FrameHeader::parse(&MemcacheUdpFrame::new_unchecked(&bytes[..])),
                Ok(h)
            );
            let _ = FrameHeader::parse_request(&mc, petrel_core::wire::HeaderRule::Memcached);
            let _ = FrameHeader::parse_request(&mc, petrel_core::wire::HeaderRule::Strict);
        }
    }

    // Setters on a copy of arbitrary length never panic either.
    let mut copy = frame.to_vec();
    let mut ip4 = Ipv4Packet::new_unchecked(&mut copy[..]);
    ip4.set_total_len(0xffff);
    ip4.fill_checksum();
    let _ = ip4.payload_mut().len();
    let mut udp = UdpPacket::new_unchecked(&mut copy[..]);
    udp.set_len(0xffff);
    let _ = udp.payload_mut().len();
    let mut eth = EthernetFrame::new_unchecked(&mut copy[..]);
    eth.swap_addrs();
    let _ = eth.payload_mut().len();
});
