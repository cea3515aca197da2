//! Serves memcache-over-UDP through the AF_XDP front end for a bounded
//! time, outside the server binary (a bare engine; `scripts/bench-udp`
//! measures the petrel binary itself).
//!
//! `xdp_serve IFACE PORT MODE SECONDS [VALUE_BYTES] [busy]` builds an
//! engine, stores key `bench` with a VALUE_BYTES (default 32) value, serves
//! for SECONDS, then prints one line:
//! `mode=.. requests=N cpu_s=C cpu_us_per_request=..` (process CPU time,
//! user + system, from getrusage) followed by the per-queue counters.

use petrel_core::engine::{Engine, EngineConfig};
use petrel_xdp::{UdpService, XdpConfig, XdpFrontend, XdpMode};
use std::time::Duration;

fn cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data, filled by getrusage.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: xdp_serve IFACE PORT MODE SECONDS [VALUE_BYTES] [busy]");
        std::process::exit(2);
    }
    let port: u16 = args[2].parse().expect("port");
    let mode: XdpMode = args[3].parse().expect("mode");
    let secs: f64 = args[4].parse().expect("seconds");
    let value_bytes: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(32);
    let busy = args.get(6).is_some_and(|s| s == "busy");

    let cfg = EngineConfig::default();
    let arena = Box::leak(vec![0u8; Engine::required_bytes(&cfg).unwrap()].into_boxed_slice());
    let engine: &'static Engine<'static> = Box::leak(Box::new(Engine::new(&cfg, arena).unwrap()));
    let mut req = format!("set bench 0 0 {value_bytes}\r\n").into_bytes();
    req.extend(std::iter::repeat_n(b'v', value_bytes));
    req.extend_from_slice(b"\r\n");
    let mut out = [0u8; petrel_core::engine::MIN_OUTPUT_BYTES];
    let p = engine.process_udp(&mut engine.udp_session(), &req, &mut out, 1);
    assert_eq!(&out[..p.written], b"STORED\r\n");

    let mut xcfg = XdpConfig::new(args[1].clone(), port);
    xcfg.mode = mode;
    xcfg.busy_poll = busy;
    let fe = match XdpFrontend::start(xcfg, engine) {
        Ok(fe) => fe,
        Err(e) => {
            eprintln!("xdp_serve: {e}");
            std::process::exit(1);
        }
    };
    println!("ready mode={} queues={:?}", fe.mode(), fe.queues());
    let cpu0 = cpu_seconds();
    let rx0: u64 = fe
        .stats()
        .iter()
        .map(|s| s.counters.rx_requests.get())
        .sum();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let cpu = cpu_seconds() - cpu0;
    let rx: u64 = fe
        .stats()
        .iter()
        .map(|s| s.counters.rx_requests.get())
        .sum::<u64>()
        - rx0;
    println!(
        "mode={} requests={rx} cpu_s={cpu:.3} cpu_us_per_request={:.2}",
        fe.mode(),
        if rx > 0 { cpu * 1e6 / rx as f64 } else { 0.0 }
    );
    for (q, s) in fe.queues().iter().zip(fe.stats()) {
        println!("queue {q}: {s}");
    }
    fe.stop();
}
