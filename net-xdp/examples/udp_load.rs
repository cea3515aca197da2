//! A bounded memcache-over-UDP load generator for the veth benchmarks.
//!
//! `udp_load HOST PORT [REQUESTS] [SECONDS] [WINDOW] [KEY]` sends `get KEY`
//! requests from one socket, keeping WINDOW of them outstanding, until
//! REQUESTS replies came back or SECONDS passed, and prints one line:
//! `replies=N secs=S replies_per_s=R p50_us=.. p99_us=.. p999_us=.. lost=L bad=B`.
//! A request without a reply within 200 ms counts as lost. Send only to
//! test addresses (198.18.0.0/15 or loopback).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

const LOSS_TIMEOUT: Duration = Duration::from_millis(200);

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: udp_load HOST PORT [REQUESTS] [SECONDS] [WINDOW] [KEY]");
        std::process::exit(2);
    }
    let host = &args[1];
    let port: u16 = arg(&args, 2, 0);
    let requests: u64 = arg(&args, 3, 200_000);
    let secs: f64 = arg(&args, 4, 10.0);
    let window: usize = arg::<usize>(&args, 5, 16).clamp(1, 4096);
    let key = args.get(6).cloned().unwrap_or_else(|| "bench".to_string());

    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.connect((host.as_str(), port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();

    let mut sent_at: Vec<Option<Instant>> = vec![None; 65536];
    let mut lat_ns: Vec<u64> = Vec::with_capacity(requests.min(10_000_000) as usize);
    let mut next_id: u16 = 0;
    let mut inflight = 0usize;
    let (mut sent, mut lost, mut bad) = (0u64, 0u64, 0u64);
    let mut req = Vec::with_capacity(64);
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut last_reply = Instant::now();

    while (lat_ns.len() as u64) < requests && Instant::now() < deadline {
        while inflight < window && sent < requests {
            let id = next_id;
            next_id = next_id.wrapping_add(1);
            if sent_at[id as usize].is_some() {
                // The id space wrapped onto a request still unanswered.
                lost += 1;
                inflight -= 1;
            }
            req.clear();
            req.extend_from_slice(&id.to_be_bytes());
            req.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
            req.extend_from_slice(format!("get {key}\r\n").as_bytes());
            if sock.send(&req).is_err() {
                break;
            }
            sent_at[id as usize] = Some(Instant::now());
            inflight += 1;
            sent += 1;
        }
        match sock.recv(&mut buf) {
            Ok(n) if n >= 8 => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let ok = buf[2..8] == [0, 0, 0, 1, 0, 0] && buf[8..n].starts_with(b"VALUE ");
                if let Some(t) = sent_at[id as usize].take() {
                    inflight -= 1;
                    if ok {
                        lat_ns.push(t.elapsed().as_nanos() as u64);
                    } else {
                        bad += 1;
                    }
                    last_reply = Instant::now();
                }
            }
            Ok(_) => bad += 1,
            Err(_) => {
                if last_reply.elapsed() > LOSS_TIMEOUT && inflight > 0 {
                    // Give up on everything outstanding and refill the window.
                    for s in sent_at.iter_mut() {
                        *s = None;
                    }
                    lost += inflight as u64;
                    inflight = 0;
                    last_reply = Instant::now();
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat_ns.is_empty() {
            return 0.0;
        }
        let i = ((lat_ns.len() as f64 - 1.0) * p).round() as usize;
        lat_ns[i] as f64 / 1000.0
    };
    println!(
        "replies={} secs={:.3} replies_per_s={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} lost={} bad={}",
        lat_ns.len(),
        elapsed,
        lat_ns.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        lost,
        bad
    );
}
