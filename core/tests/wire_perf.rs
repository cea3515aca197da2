//! Rough timings of the wire fast path (parse a request frame, build the
//! reply in place, checksum a full datagram). Ignored by default; run with
//!
//! ```text
//! cargo test -p petrel-core --release --test wire_perf -- --ignored --nocapture
//! ```
//!
//! Each figure is the best of five runs of a bounded loop, in ns per
//! operation. The test fails only if the results are absurd (> 50 us).

use petrel_core::wire::{
    checksum, finish_reply_in_place, parse_request_frame, write_reply_frame, DatagramSplitter,
    EthernetAddress, IpPair, Ipv4Address, Ipv6Address, ParseOptions, ReplyAddressing, ReplyTarget,
};
use std::hint::black_box;
use std::time::Instant;

const ITERATIONS: u32 = 200_000;

fn best_ns_per_op(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..ITERATIONS {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
    }
    best
}

fn request_frame(v6: bool) -> ([u8; 2048], usize) {
    let ips = if v6 {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        let mut b = a;
        a[15] = 1;
        b[15] = 2;
        IpPair::V6 {
            src: Ipv6Address(a),
            dst: Ipv6Address(b),
        }
    } else {
        IpPair::V4 {
            src: Ipv4Address::new(198, 18, 0, 1),
            dst: Ipv4Address::new(198, 18, 0, 2),
        }
    };
    let client = ReplyAddressing {
        eth_src: EthernetAddress([2, 0, 0, 0, 0, 1]),
        eth_dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ips,
        src_port: 40000,
        dst_port: 11211,
        request_id: 9,
    };
    let mut buf = [0u8; 2048];
    let text = b"get key:000000000123\r\n";
    let off = client.headers_len();
    buf[off..off + text.len()].copy_from_slice(text);
    let n = write_reply_frame(&mut buf, &client, text.len(), 0, 1).unwrap();
    (buf, n)
}

#[test]
#[ignore]
fn wire_perf_report() {
    let opts = ParseOptions {
        port: Some(11211),
        ..ParseOptions::default()
    };
    let strict = ParseOptions {
        verify_udp_checksum: true,
        ..opts
    };
    let mut lines = Vec::new();
    for v6 in [false, true] {
        let fam = if v6 { "ipv6" } else { "ipv4" };
        let (frame, n) = request_frame(v6);
        let parse = best_ns_per_op(|| {
            black_box(parse_request_frame(black_box(&frame[..n]), &opts).unwrap());
        });
        let parse_strict = best_ns_per_op(|| {
            black_box(parse_request_frame(black_box(&frame[..n]), &strict).unwrap());
        });
        let mut work = frame;
        let req = parse_request_frame(&frame[..n], &opts).unwrap();
        for (label, len) in [("END", 5usize), ("1392 B", 1392)] {
            let in_place = best_ns_per_op(|| {
                black_box(finish_reply_in_place(black_box(&mut work), &req, len, 0, 1).unwrap());
            });
            lines.push(format!(
                "{fam} reply in place, {label} payload: {in_place:.0} ns"
            ));
        }
        let split = best_ns_per_op(|| {
            let mut s = DatagramSplitter::new(ReplyTarget::Frame(req.reply));
            let p = s.next(&mut work, |a| (a.len(), ())).unwrap();
            s.finish(&mut work[..p.len]).unwrap();
            black_box(p.len);
        });
        lines.push(format!("{fam} parse request frame: {parse:.0} ns ({parse_strict:.0} ns verifying the UDP checksum)"));
        lines.push(format!(
            "{fam} splitter next+finish, 1392 B datagram: {split:.0} ns"
        ));
        assert!(parse < 50_000.0 && split < 50_000.0);
    }
    let data = [0x5au8; 1392];
    let sum = best_ns_per_op(|| {
        black_box(checksum::data(black_box(&data)));
    });
    lines.push(format!(
        "checksum over 1392 B: {sum:.0} ns ({:.1} GB/s)",
        1392.0 / sum
    ));
    for l in lines {
        println!("{l}");
    }
}
