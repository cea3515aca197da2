//! The AF_XDP front end end to end over veth with a small echo service, so
//! the rings, in-place replies, multi-datagram replies, drops and the
//! kernel's share of the traffic are tested independently of the engine.
//! Needs root; prints why and passes vacuously otherwise.

mod common;

use common::*;
use petrel_core::udp::UdpStats;
use petrel_core::wire::Error as W;
use petrel_xdp::{
    Progress, ResolvedMode, Status, Time, UdpService, XdpConfig, XdpFrontend, XdpMode,
};
use std::sync::Arc;

/// Replies with the request payload repeated N times, N = its first byte
/// as a digit (1..=9); resumable across output areas like the engine.
struct Echo;

impl UdpService for Echo {
    /// Bytes of the reply already written.
    type Session = usize;

    fn udp_session(&self) -> usize {
        0
    }

    fn process_udp(&self, sent: &mut usize, input: &[u8], out: &mut [u8], _: Time) -> Progress {
        let reps = match input.first() {
            Some(d @ b'1'..=b'9') => (d - b'0') as usize,
            _ => 0,
        };
        let total = reps * input.len();
        let n = (total - *sent).min(out.len());
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = input[(*sent + i) % input.len()];
        }
        *sent += n;
        if *sent < total {
            Progress {
                consumed: 0,
                written: n,
                status: Status::OutputFull,
            }
        } else {
            Progress {
                consumed: input.len(),
                written: n,
                status: Status::NeedInput,
            }
        }
    }
}

static ECHO: Echo = Echo;

fn run(mode: &str, busy_poll: bool) -> ResolvedMode {
    let topo = Topology::up(2);
    let (port, tcp) = port_with_tcp_pong(&topo.host_addr);
    let mut cfg = XdpConfig::new(topo.host_if.clone(), port);
    cfg.mode = mode.parse::<XdpMode>().unwrap();
    cfg.frame_count = 1024;
    cfg.busy_poll = busy_poll;
    // The busy-poll run also verifies UDP checksums: the topology turns TX
    // checksum offload off on the client side, so every checksum is whole.
    cfg.verify_udp_checksum = busy_poll;
    let udp = Arc::new(UdpStats::new());
    cfg.udp_stats = udp.clone();
    let fe = XdpFrontend::start(cfg, &ECHO).unwrap_or_else(|e| panic!("start {mode}: {e}"));
    eprintln!(
        "{mode} (busy poll {busy_poll}): took {} on queues {:?}",
        fe.mode(),
        fe.queues()
    );
    assert!(topo.xdp_attached(), "no XDP program on {}", topo.host_if);

    let line = topo.client("echo", port, 1000);
    eprintln!("{mode}: {line}");
    assert!(
        tcp.join().unwrap(),
        "TCP on the cache port did not reach the kernel"
    );
    // 1 + 1 (x3) + 1000 + 4 probes answered; the x3 one in 3 frames; the
    // hand-made frame with a wrong UDP checksum unless checksums are verified.
    let bad_udp = u64::from(busy_poll);
    // Answered, and dropped: 3 malformed datagrams, 2 hand-made frames.
    settle(&fe, 1006 + 1 + 5, 1006 + 1 - bad_udp + 2);
    dump(&fe);

    let rx = sum(&fe, |s| s.counters.rx_requests.get());
    let tx = sum(&fe, |s| s.counters.tx_frames.get());
    // The 3 malformed datagrams reach the datagram layer, which drops them.
    assert_eq!(rx, 1006 + 1 - bad_udp + 3, "rx_requests");
    assert_eq!(tx, 1006 + 1 - bad_udp + 2, "tx_frames");
    assert_eq!(udp.multi_datagram_replies.get(), 1);
    assert_eq!(
        udp.dropped_malformed.get(),
        1,
        "shorter than the frame header"
    );
    assert_eq!(udp.dropped_multi_datagram.get(), 2, "counts 2 and 0");
    assert_eq!(udp.dropped_reply_too_large.get(), 0);
    assert_eq!(udp.incomplete.get(), 0);
    assert_eq!(sum(&fe, |s| s.drops_for(W::Truncated)), 0);
    assert_eq!(sum(&fe, |s| s.drops_for(W::BadFrameHeader)), 0);
    assert_eq!(sum(&fe, |s| s.drops_for(W::MultiDatagramRequest)), 0);
    // Hand-made frames: redirected and dropped with their reason, or (IPv4
    // options, fragments) passed to the kernel by the XDP program.
    assert_eq!(sum(&fe, |s| s.drops_for(W::BadIpChecksum)), 1);
    assert_eq!(sum(&fe, |s| s.drops_for(W::BadLength)), 1);
    assert_eq!(sum(&fe, |s| s.drops_for(W::Ipv4Options)), 0);
    assert_eq!(sum(&fe, |s| s.drops_for(W::Fragment)), 0);
    assert_eq!(sum(&fe, |s| s.drops_for(W::BadUdpChecksum)), bad_udp);
    assert_eq!(sum(&fe, |s| s.drops_total()), 2 + bad_udp);

    let took = fe.mode();
    fe.stop();
    assert!(!topo.xdp_attached(), "XDP program left on {}", topo.host_if);
    took
}

#[test]
fn echo_over_veth_in_each_mode() {
    if !petrel_testkit::skip::require_root("AF_XDP end-to-end: netns, veth, XDP") {
        return;
    }
    assert_eq!(run("generic", false), ResolvedMode::GenericCopy);
    assert_eq!(run("native", false), ResolvedMode::NativeCopy);
    // veth has no zero-copy: auto falls back to native copy.
    assert_eq!(run("auto", false), ResolvedMode::NativeCopy);
    assert_eq!(run("native", true), ResolvedMode::NativeCopy);
}

/// Answers memcache-UDP echo requests ("1..." payloads) on a kernel UDP
/// socket, as the server's kernel front end would for unserved queues;
/// returns how many it answered once `stop` is set.
fn kernel_echo(
    sock: std::net::UdpSocket,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        let mut answered = 0;
        let mut buf = [0u8; 2048];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if n > 8 && buf[8] == b'1' && sock.send_to(&buf[..n], from).is_ok() {
                    answered += 1;
                }
            }
        }
        answered
    })
}

#[test]
fn unserved_queues_are_left_to_the_kernel_socket() {
    if !petrel_testkit::skip::require_root("AF_XDP end-to-end: netns, veth, XDP") {
        return;
    }
    let topo = Topology::up(2);
    let udp = std::net::UdpSocket::bind((topo.host_addr.as_str(), 0)).unwrap();
    let port = udp.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kernel = kernel_echo(udp, stop.clone());

    let mut cfg = XdpConfig::new(topo.host_if.clone(), port);
    cfg.mode = XdpMode::NATIVE;
    cfg.queues = Some(vec![0]);
    cfg.frame_count = 256;
    let fe = XdpFrontend::start(cfg, &ECHO).expect("start");
    assert_eq!(fe.queues(), &[0]);
    assert_eq!(fe.unserved_queues(), &[1]);

    let flows = 64;
    let line = topo.client("flows", port, flows);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let by_kernel = kernel.join().unwrap();
    let by_xdp = sum(&fe, |s| s.counters.rx_requests.get());
    eprintln!("{line}: {by_xdp} through AF_XDP on queue 0, {by_kernel} by the kernel socket");
    assert_eq!(by_xdp + by_kernel, flows as u64);
    assert!(
        by_xdp > 0 && by_kernel > 0,
        "flows did not spread over both queues"
    );
}
