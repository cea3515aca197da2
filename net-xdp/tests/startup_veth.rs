//! Start-up of the AF_XDP front end over veth: a socket becomes reachable
//! through the XSKMAP only with its fill ring full, so frames that arrive
//! after `attach` but before any worker has run wait on the RX ring and
//! are answered once the workers start; the kernel drops none of them for
//! want of a fill-ring frame (`rx_fill_ring_empty_descs`, "fill ring
//! empty" in `XDP_STATISTICS`).
//!
//! The window is held open on purpose: the burst is sent between
//! `XdpFrontend::attach` and `XdpAttachment::start`, so the outcome does
//! not depend on how fast a worker thread gets scheduled.
//! Needs root; prints why and passes vacuously otherwise.

mod common;

use common::*;
use petrel_xdp::{
    Progress, RingLevels, Status, Time, UdpService, XdpAttachment, XdpConfig, XdpFrontend, XdpMode,
};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// UMEM frames per queue.
const FRAMES: u32 = 256;
/// Frames the front end keeps off the fill ring for multi-datagram
/// replies: a quarter.
const RESERVE: u32 = FRAMES / 4;
/// Requests of the start-up burst, each from a flow of its own.
const BURST: usize = 64;
/// How long the burst may take to reach the sockets' rings.
const ARRIVAL_WAIT: Duration = Duration::from_secs(5);

/// Replies with the request payload.
struct Echo;

impl UdpService for Echo {
    type Session = ();

    fn udp_session(&self) {}

    fn process_udp(&self, _: &mut (), input: &[u8], out: &mut [u8], _: Time) -> Progress {
        let n = input.len().min(out.len());
        out[..n].copy_from_slice(&input[..n]);
        Progress {
            consumed: input.len(),
            written: n,
            status: if n == input.len() {
                Status::NeedInput
            } else {
                Status::OutputFull
            },
        }
    }
}

static ECHO: Echo = Echo;

/// Sends BURST one-datagram requests at once, each from a socket of its
/// own (flows spread over the RX queues), prints "sent N", then waits (at
/// most 10 s) for every reply and prints "ok answered=K".
const BURST_CLIENT: &str = r#"
import socket, struct, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    socks.append(s)
for i, s in enumerate(socks):
    s.send(struct.pack("!HHHH", i, 0, 1, 0) + b"burst %d" % i)
print("sent %d" % n, flush=True)
deadline = time.time() + 10
answered = 0
for i, s in enumerate(socks):
    left = deadline - time.time()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        d = s.recv(2048)
    except OSError:
        break
    if d != struct.pack("!HHHH", i, 0, 1, 0) + b"burst %d" % i:
        print("bad reply to %d: %r" % (i, d))
        sys.exit(1)
    answered += 1
print("ok answered=%d" % answered)
"#;

/// The burst client, stopped (SIGTERM to its `timeout` wrapper, which
/// passes it on) and reaped if the test ends early.
struct Client(Option<Child>);

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SAFETY: kill(2) on the PID of our own unreaped child.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// A UDP port free on `addr` (nothing listens on it: the kernel would
/// answer ICMP port unreachable to anything the XDP program passes).
fn sum_levels(levels: &[RingLevels], f: impl Fn(&RingLevels) -> u64) -> u64 {
    levels.iter().map(f).sum()
}

fn kernel(l: &RingLevels) -> petrel_xdp::KernelSocketStats {
    l.kernel.expect("XDP_STATISTICS of the socket")
}

/// Before any worker runs: every frame but the reserve on each fill ring,
/// nothing received, nothing dropped, and the frames_in_use gauge says so.
fn check_primed(att: &mut XdpAttachment, mode: &str) {
    let levels = att.ring_levels();
    eprintln!("{mode}: after attach: {levels:?}");
    assert_eq!(levels.len(), att.frontend().queues().len());
    for (l, s) in levels.iter().zip(att.frontend().stats()) {
        assert_eq!(l.frames, FRAMES, "{l:?}");
        assert_eq!(
            l.fill,
            FRAMES - RESERVE,
            "queue {}: fill ring not full when the socket became reachable: {l:?}",
            l.queue
        );
        assert_eq!(l.free, RESERVE, "{l:?}");
        assert_eq!(l.rx, 0, "{l:?}");
        assert_eq!(l.fill + l.rx + l.free, l.frames, "{l:?}");
        assert_eq!(kernel(l), Default::default(), "{l:?}");
        assert_eq!(
            s.counters.frames_in_use.get(),
            u64::from(FRAMES - RESERVE),
            "queue {}",
            l.queue
        );
    }
}

/// Waits until all of the burst is on the RX rings or counted as dropped
/// by the kernel (bounded by ARRIVAL_WAIT); returns the last levels.
fn wait_for_arrival(att: &mut XdpAttachment) -> Vec<RingLevels> {
    let deadline = Instant::now() + ARRIVAL_WAIT;
    loop {
        let levels = att.ring_levels();
        let arrived = sum_levels(&levels, |l| {
            let k = kernel(l);
            u64::from(l.rx) + k.rx_dropped + k.rx_ring_full + k.rx_invalid_descs
        });
        if arrived >= BURST as u64 || Instant::now() >= deadline {
            return levels;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run(mode: &str) {
    let topo = Topology::up(2);
    let port = petrel_testkit::net::free_udp_port(&topo.host_addr);
    let mut cfg = XdpConfig::new(topo.host_if.clone(), port);
    cfg.mode = mode.parse::<XdpMode>().unwrap();
    cfg.frame_count = FRAMES;
    let mut att = XdpFrontend::attach(cfg).unwrap_or_else(|e| panic!("attach {mode}: {e}"));
    eprintln!(
        "{mode}: attached {} on queues {:?}",
        att.frontend().mode(),
        att.frontend().queues()
    );
    assert!(topo.xdp_attached(), "no XDP program on {}", topo.host_if);
    check_primed(&mut att, mode);

    // The burst, while the sockets are in the XSKMAP and no worker runs.
    let child = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", &topo.ns, "python3", "-c"])
        .args([BURST_CLIENT, &topo.host_addr, &port.to_string()])
        .arg(BURST.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the burst client");
    let mut client = Client(Some(child));
    let mut out = BufReader::new(client.0.as_mut().unwrap().stdout.take().unwrap());
    let mut sent = String::new();
    out.read_line(&mut sent).expect("client output");
    assert_eq!(sent.trim(), format!("sent {BURST}"), "burst client");

    let levels = wait_for_arrival(&mut att);
    eprintln!("{mode}: burst before start: {levels:?}");
    let waiting = sum_levels(&levels, |l| u64::from(l.rx));
    let fill_empty = sum_levels(&levels, |l| kernel(l).rx_fill_ring_empty_descs);
    let dropped = sum_levels(&levels, |l| kernel(l).rx_dropped);
    assert_eq!(
        (waiting, fill_empty, dropped),
        (BURST as u64, 0, 0),
        "{mode}: of {BURST} frames sent before the workers started, (on the RX rings, \
         found the fill ring empty, dropped by the kernel)"
    );

    // Now the workers: the waiting frames are answered.
    let fe = att.start(&ECHO).expect("start");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("client output");
    let status = client.0.take().unwrap().wait().expect("client exit");
    eprintln!("{mode}: client: {}", rest.trim());
    assert!(status.success(), "burst client failed: {rest}");
    assert_eq!(rest.trim(), format!("ok answered={BURST}"));
    settle(&fe, BURST as u64, BURST as u64);
    dump(&fe);
    let stats = fe.stats_handle();
    fe.stop();
    assert!(!topo.xdp_attached(), "XDP program left on {}", topo.host_if);
    // The workers read the kernel's statistics once more as they stop.
    let total = |f: fn(&petrel_xdp::QueueStats) -> u64| stats.queues().iter().map(f).sum::<u64>();
    assert_eq!(total(|s| s.counters.rx_requests.get()), BURST as u64);
    assert_eq!(total(|s| s.counters.tx_frames.get()), BURST as u64);
    assert_eq!(total(|s| s.counters.kernel_fill_ring_empty.get()), 0);
    assert_eq!(total(|s| s.counters.kernel_rx_dropped.get()), 0);
    assert_eq!(total(|s| s.counters.kernel_rx_invalid.get()), 0);
    assert_eq!(total(|s| s.counters.kernel_rx_ring_full.get()), 0);
    assert_eq!(total(|s| s.counters.kernel_tx_invalid.get()), 0);
    // Not a fault: the kernel counts each time its TX loop, having sent
    // what was on the ring, finds it empty; sending the 64 replies did so.
    let tx_empty = total(|s| s.counters.kernel_tx_ring_empty.get());
    eprintln!("{mode}: kernel_tx_ring_empty={tx_empty}");
    assert!(tx_empty >= 1, "{mode}: kernel_tx_ring_empty {tx_empty}");
}

#[test]
fn frames_arriving_before_the_workers_run_wait_on_the_rx_ring() {
    if !petrel_testkit::skip::require_root("AF_XDP end-to-end: netns, veth, XDP") {
        return;
    }
    run("generic");
    run("native");
}
