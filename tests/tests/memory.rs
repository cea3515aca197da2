//! Memory stays bounded: a set flood of ten times the configured memory keeps
//! the resident set flat (within 5% after warm-up) while hot keys keep
//! hitting, and 1,000 connections cost a bounded amount beyond `-m`.
//!
//! Figures are printed (`cargo test --release -p petrel-tests --test memory
//! -- --nocapture`); the README's "Limits and safety" section quotes them.

use petrel_tests::server::{rss_kib, Kind, Target};
use petrel_tests::tcp::{stat, storage_cmd, Conn};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn petrel() -> Option<Target> {
    let t = Target::from_env()?;
    if t.kind != Kind::Petrel {
        petrel_tests::skip::not_applicable(
            "these figures are petrel's (memcached allocates differently)",
        );
        return None;
    }
    Some(t)
}

/// Sends `n` noreply sets of `value_len`-byte values under fresh keys
/// `prefix-<i>` in pipelined batches, then a `mn` to wait for them.
fn flood(c: &mut Conn, prefix: &str, from: u64, n: u64, value: &[u8]) {
    let mut batch = Vec::with_capacity(256 * (value.len() + 64));
    for i in from..from + n {
        batch.extend_from_slice(&storage_cmd(
            "set",
            &format!("{prefix}-{i}"),
            0,
            0,
            value,
            true,
        ));
        if batch.len() > 200 * value.len() {
            c.send(&batch);
            batch.clear();
        }
    }
    c.send(&batch);
    c.check(b"mn\r\n", b"MN\r\n");
}

/// Gets every hot key; returns how many hit. Missing ones are set again, as
/// a cache client does.
fn read_hot(c: &mut Conn, hot: &[(String, Vec<u8>)]) -> usize {
    let mut req = b"get".to_vec();
    for (k, _) in hot {
        req.push(b' ');
        req.extend_from_slice(k.as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    c.send(&req);
    let reply = c.read_until_suffix(b"END\r\n", Duration::from_secs(10));
    let text = String::from_utf8_lossy(&reply).to_string();
    let mut hits = 0;
    let mut missing = Vec::new();
    for (k, v) in hot {
        let header = format!("VALUE {k} 0 {}\r\n", v.len());
        match text.find(&header) {
            Some(at) => {
                let start = at + header.len();
                assert_eq!(
                    &reply[start..start + v.len()],
                    &v[..],
                    "hot key {k} has a wrong value"
                );
                hits += 1;
            }
            None => missing.push((k, v)),
        }
    }
    for (k, v) in missing {
        c.check(&storage_cmd("set", k, 0, 0, v, false), b"STORED\r\n");
    }
    hits
}

#[test]
fn set_flood_of_ten_times_memory_keeps_rss_flat_and_hot_keys_hitting() {
    let Some(target) = petrel() else { return };
    let mib = 32u64;
    let server = target
        .builder()
        .no_udp()
        .memory_mib(mib as u32)
        .threads(2)
        .start();
    let addr = server.tcp_addr();
    let pid = server.pid().unwrap();
    let value = vec![b'f'; 1000];
    let hot: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| {
            (
                format!("hot-{i}"),
                format!("hot value {i} ").repeat(8).into_bytes(),
            )
        })
        .collect();
    let mut c = Conn::connect(addr);
    for (k, v) in &hot {
        c.check(&storage_cmd("set", k, 0, 0, v, false), b"STORED\r\n");
    }
    // ~1,060 bytes per item: one -m worth is about 15,800 sets.
    let per_round = (mib << 20) / 1060 / 4;
    let rounds = 40; // 10x the memory in quarters
    let started = Instant::now();
    let mut samples = Vec::new();
    let (mut hits, mut reads) = (0usize, 0usize);
    for r in 0..rounds {
        flood(&mut c, "flood", r * per_round, per_round, &value);
        // Hot keys are read often (four times per quarter of memory written).
        for _ in 0..4 {
            hits += read_hot(&mut c, &hot);
            reads += hot.len();
        }
        samples.push(rss_kib(pid).expect("VmRSS"));
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "flood too slow: round {r} after {:?}",
            started.elapsed()
        );
    }
    let evictions = stat(addr, "evictions");
    // Warm-up: the first 2x of memory written.
    let steady = &samples[8..];
    let lo = *steady.iter().min().unwrap();
    let hi = *steady.iter().max().unwrap();
    let hit_ratio = hits as f64 / reads as f64;
    eprintln!(
        "flood: {} MiB written into -m {mib} in {:.1}s; RSS after warm-up {lo}..{hi} KiB \
         ({:+.1}%); {evictions} evictions; hot-key hit ratio {:.3}",
        (rounds * per_round * 1060) >> 20,
        started.elapsed().as_secs_f64(),
        (hi as f64 - lo as f64) * 100.0 / lo as f64,
        hit_ratio
    );
    assert!(evictions > 0, "the flood must have evicted");
    assert!(
        (hi - lo) as f64 <= lo as f64 * 0.05,
        "RSS not flat after warm-up: {lo}..{hi} KiB; samples {samples:?}"
    );
    assert!(
        hit_ratio >= 0.9,
        "hot keys hit only {hits} of {reads} times during the flood"
    );
    // Nothing crashed: still serving, accounting audits in the store's own
    // stats (items are what is resident).
    c.check(b"mn\r\n", b"MN\r\n");
}

#[test]
fn a_thousand_connections_cost_bounded_memory_beyond_m() {
    let Some(target) = petrel() else { return };
    // The test process needs a descriptor per connection.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < 4096 {
            lim.rlim_cur = lim.rlim_max.min(4096);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    if lim.rlim_cur < 1100 {
        petrel_tests::skip::skip(&format!(
            "open-file limit {} is below 1,100 (the hard limit too)",
            lim.rlim_cur
        ));
        return;
    }
    let mib = 64u64;
    let server = target
        .builder()
        .no_udp()
        .memory_mib(mib as u32)
        .threads(2)
        .conn_limit(1100)
        .start();
    let addr = server.tcp_addr();
    let pid = server.pid().unwrap();
    let mut c = Conn::connect(addr);
    c.check(
        &storage_cmd("set", "k", 0, 0, &[b'v'; 100], false),
        b"STORED\r\n",
    );
    let idle = rss_kib(pid).expect("VmRSS");
    // 1,000 connections, each with a get and a set answered (buffers used).
    let mut conns = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = [
            storage_cmd("set", &format!("c{i}"), 0, 0, b"0123456789", false),
            b"get k\r\n".to_vec(),
        ]
        .concat();
        s.write_all(&req).unwrap();
        conns.push(s);
    }
    let want = b"STORED\r\n".len() + "VALUE k 0 100\r\n".len() + 102 + 5;
    for s in &mut conns {
        let mut buf = vec![0u8; want];
        s.read_exact(&mut buf).expect("reply");
        assert!(buf.ends_with(b"END\r\n"));
    }
    assert_eq!(stat(addr, "curr_connections"), 1002);
    let busy = rss_kib(pid).expect("VmRSS");
    let beyond_kib = busy as i64 - (mib as i64) * 1024;
    eprintln!(
        "1000 connections: RSS {busy} KiB (idle {idle} KiB) with -m {mib}: {} KiB beyond -m, \
         {} KiB per connection",
        beyond_kib,
        (busy as i64 - idle as i64) / 1000
    );
    // Each connection keeps at most a page or two of each buffer resident.
    assert!(
        busy < idle + 64 * 1024,
        "1000 connections grew RSS from {idle} to {busy} KiB"
    );
    drop(conns);
}
