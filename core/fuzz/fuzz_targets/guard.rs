//! The UDP guard driven by arbitrary sources, sizes, outcomes and times:
//! never panics, allowlisted sources are always trusted and others never,
//! caps never overflow, and a source's answered requests over a window stay
//! within its burst plus what the rate refilled.
#![no_main]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use libfuzzer_sys::fuzz_target;
use petrel_core::udp::guard::{Admission, Cidr, GuardConfig, Outcome, UdpGuard};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (head, ops) = data.split_at(8);
    let rate = u32::from(u16::from_le_bytes([head[0], head[1]]));
    let burst = u32::from(head[2]).max(1);
    let amp = u32::from(head[3]);
    let mut cfg = GuardConfig {
        rate_per_sec: rate,
        burst,
        max_amplification: amp,
        seed: u64::from(head[4]),
        ..GuardConfig::default()
    };
    if head[5] & 1 != 0 {
        cfg.allow.clear();
        let _ = cfg.allow.push(Cidr::parse("10.0.0.0/8").unwrap());
    }
    let g = UdpGuard::new(&cfg).expect("valid config");
    let mut now: u64 = u64::from(head[6]) << 40;
    let mut admitted_one = 0u64;
    let start = now;
    for op in ops.chunks(6) {
        if op.len() < 6 {
            break;
        }
        now = now.wrapping_add(u64::from(op[0] >> 4));
        let src = match op[0] & 3 {
            0 => IpAddr::V4(Ipv4Addr::new(10, op[1], 0, 1)),
            1 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, op[1] & 1)),
            2 => IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                u16::from(op[1]),
            )),
            _ => IpAddr::V6(Ipv4Addr::new(127, 0, 0, op[1]).to_ipv6_mapped()),
        };
        let size = usize::from(u16::from_le_bytes([op[2], op[3]]));
        let a = g.admit(src, size, now);
        let trusted = cfg.allow.iter().any(|c| c.contains(src));
        assert_eq!(matches!(a, Admission::Trusted), trusted);
        if let Admission::Checked {
            max_reply_bytes, ..
        } = a
        {
            if amp > 0 {
                assert_eq!(max_reply_bytes, size.saturating_mul(amp as usize));
            }
        }
        let outcome = match op[4] % 4 {
            0 => Outcome::Sent(usize::from(op[5] % 4)),
            1 => Outcome::Replaced,
            2 => Outcome::Dropped,
            _ => Outcome::Unanswered,
        };
        // Replies that sent something cost at least one token each (a
        // reply of nothing gives its token back).
        let sent = matches!(outcome, Outcome::Replaced | Outcome::Sent(1..));
        if sent
            && matches!(a, Admission::Checked { .. })
            && src == IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0))
        {
            admitted_one += 1;
        }
        g.settle(a, outcome, now);
    }
    if rate > 0 && now >= start {
        // 192.0.2.0 may have shared its bucket with another source, which
        // only lowers what it got.
        let elapsed_ms = now - start;
        let bound = u64::from(burst) + elapsed_ms * u64::from(rate) / 1000 + 1;
        assert!(admitted_one <= bound, "{admitted_one} > {bound}");
    }
});
