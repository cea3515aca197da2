//! The XDP filter: memcache-over-UDP to the cache port goes to the AF_XDP
//! socket of the receiving queue, everything else to the kernel.
//!
//! ```text
//! data+0   Ethernet  dst(6) src(6) type(2)
//!   type 0x0800 -> IPv4 at +14: byte 0 == 0x45 (v4, no options),
//!                  protocol (+9) == 17, flags/fragment (+6..8) without MF
//!                  and with offset 0, UDP at +34: dst port (+36) == port
//!   type 0x86DD -> IPv6 at +14: next header (+6) == 17,
//!                  UDP at +54: dst port (+56) == port
//! match  -> bpf_redirect_map(xskmap, ctx->rx_queue_index, XDP_PASS)
//! else   -> XDP_PASS
//! ```
//!
//! Fragments, IPv4 options, IPv6 extension headers, VLAN tags, ARP, ICMP,
//! TCP and other ports all take the `XDP_PASS` branch, and a queue with no
//! socket in the map falls back to `XDP_PASS` inside the helper, so the
//! kernel keeps answering what Petrel does not.

use super::insn::*;

/// `XDP_PASS`: hand the frame to the kernel stack.
pub const XDP_PASS: i32 = 2;
/// `XDP_REDIRECT`: what `bpf_redirect_map` returns on success.
pub const XDP_REDIRECT: i32 = 4;
/// Helper id of `bpf_redirect_map(map, key, flags)`.
pub const BPF_FUNC_REDIRECT_MAP: i32 = 51;

/// Offset of `data` in `struct xdp_md`.
const XDP_MD_DATA: i16 = 0;
/// Offset of `data_end` in `struct xdp_md`.
const XDP_MD_DATA_END: i16 = 4;
/// Offset of `rx_queue_index` in `struct xdp_md`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

const ETH_HEADER_BYTES: i32 = 14;
const ETH_TYPE_OFFSET: i16 = 12;
const IPV4_HEADER_BYTES: i32 = 20;
const IPV6_HEADER_BYTES: i32 = 40;
const UDP_HEADER_BYTES: i32 = 8;
const IP_PROTO_UDP: i32 = 17;

/// A 16-bit network-order field as a little-endian `BPF_H` load sees it.
const fn be16_as_loaded(v: u16) -> i32 {
    u16::from_ne_bytes(v.to_be_bytes()) as i32
}

/// Builds the filter for UDP destination port `port`, redirecting into the
/// XSKMAP whose file descriptor is `xskmap_fd`.
pub fn udp_port_filter(port: u16, xskmap_fd: i32) -> Vec<Insn> {
    let mut a = Asm::new();
    let pass = a.label();
    let ipv4 = a.label();
    let ipv6 = a.label();
    let redirect = a.label();
    let port_loaded = be16_as_loaded(port);

    a.emit(Insn::mov64_reg(R6, R1))
        .emit(Insn::load(BPF_W, R2, R1, XDP_MD_DATA))
        .emit(Insn::load(BPF_W, R3, R1, XDP_MD_DATA_END))
        .emit(Insn::mov64_reg(R4, R2))
        .emit(Insn::add64_imm(R4, ETH_HEADER_BYTES))
        .jmp_reg(BPF_JGT, R4, R3, pass)
        .emit(Insn::load(BPF_H, R5, R2, ETH_TYPE_OFFSET))
        .jmp_imm(BPF_JEQ, R5, be16_as_loaded(0x0800), ipv4)
        .jmp_imm(BPF_JEQ, R5, be16_as_loaded(0x86dd), ipv6)
        .ja(pass);

    // IPv4 without options, not a fragment, UDP to the port.
    let l4 = ETH_HEADER_BYTES + IPV4_HEADER_BYTES;
    a.bind(ipv4);
    a.emit(Insn::mov64_reg(R4, R2))
        .emit(Insn::add64_imm(R4, l4 + UDP_HEADER_BYTES))
        .jmp_reg(BPF_JGT, R4, R3, pass)
        .emit(Insn::load(BPF_B, R5, R2, 14))
        .jmp_imm(BPF_JNE, R5, 0x45, pass)
        .emit(Insn::load(BPF_B, R5, R2, 14 + 9))
        .jmp_imm(BPF_JNE, R5, IP_PROTO_UDP, pass)
        // flags+offset bytes 6..8: MF (0x2000) and the 13-bit offset must be 0.
        .emit(Insn::load(BPF_H, R5, R2, 14 + 6))
        .emit(Insn::and64_imm(R5, be16_as_loaded(0x3fff)))
        .jmp_imm(BPF_JNE, R5, 0, pass)
        .emit(Insn::load(BPF_H, R5, R2, (l4 + 2) as i16))
        .jmp_imm(BPF_JNE, R5, port_loaded, pass)
        .ja(redirect);

    // IPv6 with UDP as the first next header.
    let l4 = ETH_HEADER_BYTES + IPV6_HEADER_BYTES;
    a.bind(ipv6);
    a.emit(Insn::mov64_reg(R4, R2))
        .emit(Insn::add64_imm(R4, l4 + UDP_HEADER_BYTES))
        .jmp_reg(BPF_JGT, R4, R3, pass)
        .emit(Insn::load(BPF_B, R5, R2, 14 + 6))
        .jmp_imm(BPF_JNE, R5, IP_PROTO_UDP, pass)
        .emit(Insn::load(BPF_H, R5, R2, (l4 + 2) as i16))
        .jmp_imm(BPF_JNE, R5, port_loaded, pass);

    a.bind(redirect);
    a.emit(Insn::load(BPF_W, R2, R6, XDP_MD_RX_QUEUE_INDEX))
        .emit_all(&Insn::ld_map_fd(R1, xskmap_fd))
        .emit(Insn::mov64_imm(R3, XDP_PASS))
        .emit(Insn::call(BPF_FUNC_REDIRECT_MAP))
        .emit(Insn::exit());

    a.bind(pass);
    a.emit(Insn::mov64_imm(R0, XDP_PASS)).emit(Insn::exit());
    a.finish()
        .expect("the filter's labels are all bound and its jumps are short")
}

#[cfg(test)]
mod tests {
    //! The filter is run on real frames by a small interpreter of exactly
    //! the instructions it uses, which also fails any packet read the
    //! bounds checks did not cover (what the kernel verifier would reject).
    use super::*;

    const PORT: u16 = 11311;
    const MAP_FD: i32 = 77;

    #[derive(Debug, PartialEq, Eq)]
    enum Verdict {
        Pass,
        Redirect { queue: u64 },
    }

    fn run(insns: &[Insn], pkt: &[u8], rx_queue: u32) -> Verdict {
        const CTX: u64 = 0x100;
        const DATA: u64 = 0x10000;
        let mut r = [0u64; 11];
        r[1] = CTX;
        let mut pc = 0usize;
        let mut redirected = None;
        let load = |addr: u64, size: u8| -> u64 {
            let bytes = match size {
                BPF_B => 1,
                BPF_H => 2,
                BPF_W => 4,
                _ => panic!("unexpected load size"),
            };
            if (CTX..CTX + 24).contains(&addr) {
                let off = addr - CTX;
                return match off {
                    0 => DATA,
                    4 => DATA + pkt.len() as u64,
                    16 => rx_queue as u64,
                    _ => panic!("unexpected ctx offset {off}"),
                };
            }
            let off = addr.checked_sub(DATA).expect("load below packet") as usize;
            assert!(off + bytes <= pkt.len(), "unchecked packet read at {off}");
            let mut v = 0u64;
            for i in 0..bytes {
                v |= (pkt[off + i] as u64) << (8 * i);
            }
            v
        };
        for _ in 0..1000 {
            let i = insns[pc];
            let (d, s) = (i.dst() as usize, i.src() as usize);
            let imm = i.imm as i64 as u64;
            pc += 1;
            match i.code {
                0xbf => r[d] = r[s],
                0xb7 => r[d] = imm,
                0x07 => r[d] = r[d].wrapping_add(imm),
                0x57 => r[d] &= imm,
                c if c & 0x07 == BPF_LDX => {
                    r[d] = load(r[s].wrapping_add(i.off as i64 as u64), c & 0x18)
                }
                0x18 => {
                    assert_eq!(s, BPF_PSEUDO_MAP_FD as usize);
                    r[d] = 0xfeed_0000 + i.imm as u64;
                    pc += 1;
                }
                0x85 => {
                    assert_eq!(i.imm, BPF_FUNC_REDIRECT_MAP);
                    assert_eq!(r[1], 0xfeed_0000 + MAP_FD as u64);
                    assert_eq!(r[3], XDP_PASS as u64);
                    redirected = Some(r[2]);
                    r[0] = XDP_REDIRECT as u64;
                }
                0x95 => {
                    return match (r[0] as i32, redirected) {
                        (XDP_PASS, None) => Verdict::Pass,
                        (XDP_REDIRECT, Some(queue)) => Verdict::Redirect { queue },
                        other => panic!("inconsistent exit {other:?}"),
                    };
                }
                c => {
                    let taken = match (c & 0xf0, c & 0x08) {
                        (BPF_JA, 0) if c == 0x05 => true,
                        (op, src) => {
                            let b = if src == BPF_X { r[s] } else { imm };
                            match op {
                                BPF_JEQ => r[d] == b,
                                BPF_JNE => r[d] != b,
                                BPF_JGT => r[d] > b,
                                _ => panic!("unexpected opcode {c:#x}"),
                            }
                        }
                    };
                    if taken {
                        pc = (pc as isize + i.off as isize) as usize;
                    }
                }
            }
        }
        panic!("program did not terminate");
    }

    fn ipv4_udp(dst_port: u16, ver_ihl: u8, frag: u16, proto: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[12..14].copy_from_slice(&[0x08, 0x00]);
        p[14] = ver_ihl;
        p[20..22].copy_from_slice(&frag.to_be_bytes());
        p[23] = proto;
        if len >= 38 {
            p[36..38].copy_from_slice(&dst_port.to_be_bytes());
        }
        p
    }

    fn ipv6_udp(dst_port: u16, next: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[12..14].copy_from_slice(&[0x86, 0xdd]);
        p[14] = 0x60;
        p[20] = next;
        if len >= 58 {
            p[56..58].copy_from_slice(&dst_port.to_be_bytes());
        }
        p
    }

    #[test]
    fn redirects_ipv4_udp_to_the_port_on_the_receiving_queue() {
        let prog = udp_port_filter(PORT, MAP_FD);
        let p = ipv4_udp(PORT, 0x45, 0x4000 /* DF */, 17, 60);
        assert_eq!(run(&prog, &p, 3), Verdict::Redirect { queue: 3 });
        assert_eq!(run(&prog, &p[..42], 0), Verdict::Redirect { queue: 0 });
    }

    #[test]
    fn passes_everything_else_over_ipv4() {
        let prog = udp_port_filter(PORT, MAP_FD);
        for p in [
            ipv4_udp(PORT + 1, 0x45, 0, 17, 60),  // other port
            ipv4_udp(PORT, 0x46, 0, 17, 64),      // options
            ipv4_udp(PORT, 0x45, 0x2000, 17, 60), // MF set
            ipv4_udp(PORT, 0x45, 0x0001, 17, 60), // non-zero offset
            ipv4_udp(PORT, 0x45, 0x1000, 17, 60), // offset high bit
            ipv4_udp(PORT, 0x45, 0, 6, 60),       // TCP
            ipv4_udp(PORT, 0x45, 0, 1, 60),       // ICMP
            ipv4_udp(PORT, 0x45, 0, 17, 41),      // truncated UDP header
        ] {
            assert_eq!(run(&prog, &p, 0), Verdict::Pass, "{p:?}");
        }
    }

    #[test]
    fn redirects_ipv6_udp_and_passes_the_rest() {
        let prog = udp_port_filter(PORT, MAP_FD);
        assert_eq!(
            run(&prog, &ipv6_udp(PORT, 17, 80), 1),
            Verdict::Redirect { queue: 1 }
        );
        assert_eq!(run(&prog, &ipv6_udp(PORT, 58, 80), 1), Verdict::Pass); // ICMPv6
        assert_eq!(run(&prog, &ipv6_udp(PORT, 44, 80), 1), Verdict::Pass); // fragment hdr
        assert_eq!(run(&prog, &ipv6_udp(PORT - 1, 17, 80), 1), Verdict::Pass);
        assert_eq!(run(&prog, &ipv6_udp(PORT, 17, 61), 1), Verdict::Pass);
    }

    #[test]
    fn passes_arp_and_runts() {
        let prog = udp_port_filter(PORT, MAP_FD);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(run(&prog, &arp, 0), Verdict::Pass);
        for n in 0..14 {
            assert_eq!(run(&prog, &vec![0u8; n], 0), Verdict::Pass);
        }
    }
}
