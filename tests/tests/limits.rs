//! Pipelining, large multi-gets, the item size limit, many connections and the connection
//! limit, over TCP against the real binary.

use petrel_tests::server::{Kind, Target};
use petrel_tests::tcp::{storage_cmd, value_reply, Conn};
use std::time::Duration;

/// 1,000 requests in one write: every reply arrives, in order, byte for byte.
#[test]
fn pipeline_of_1000_requests_in_one_write() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let mut c = Conn::connect(server.tcp_addr());
    let mut req = Vec::new();
    let mut want = Vec::new();
    let mut model = std::collections::HashMap::new();
    for i in 0..1000u32 {
        let key = format!("p{}", i % 300);
        match i % 4 {
            0 | 1 => {
                let v = format!("value-{i}");
                req.extend_from_slice(&storage_cmd("set", &key, i, 0, v.as_bytes(), false));
                want.extend_from_slice(b"STORED\r\n");
                model.insert(key, (i, v));
            }
            2 => {
                req.extend_from_slice(format!("get {key}\r\n").as_bytes());
                match model.get(&key) {
                    Some((f, v)) => want.extend_from_slice(&value_reply(&key, *f, v.as_bytes())),
                    None => want.extend_from_slice(b"END\r\n"),
                }
            }
            _ => {
                req.extend_from_slice(b"mn\r\n");
                want.extend_from_slice(b"MN\r\n");
            }
        }
    }
    c.check(&req, &want);
    c.check_quiet();
}

/// One `get` naming 10,000 keys (8,000 present, 2,000 missing).
#[test]
fn multiget_of_10000_keys() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let mut c = Conn::connect(server.tcp_addr());
    let mut load = Vec::new();
    for i in 0..8000u32 {
        let v = format!("v{i:05}");
        load.extend_from_slice(&storage_cmd(
            "set",
            &format!("key{i}"),
            i,
            0,
            v.as_bytes(),
            true,
        ));
    }
    c.send(&load);
    c.check_quiet();
    let mut req = b"get".to_vec();
    let mut want = Vec::new();
    for i in 0..10_000u32 {
        // interleave misses (key8000..key9999) with hits
        let k = if i % 5 == 4 { 8000 + i / 5 } else { i - i / 5 };
        req.extend_from_slice(format!(" key{k}").as_bytes());
        if k < 8000 {
            want.extend_from_slice(format!("VALUE key{k} {k} 6\r\nv{k:05}\r\n").as_bytes());
        }
    }
    req.extend_from_slice(b"\r\n");
    want.extend_from_slice(b"END\r\n");
    c.check(&req, &want);
    c.check_quiet();
}

fn item_limit_case(limit_arg: Option<&str>, limit_bytes: usize) {
    let Some(target) = Target::from_env() else {
        return;
    };
    let mut b = target.builder().memory_mib(64);
    if let Some(l) = limit_arg {
        b = b.max_item(l);
    }
    let server = b.start();
    let mut c = Conn::connect(server.tcp_addr());
    // Comfortably under the limit (memcached counts ~60 bytes of item header against it).
    let ok: Vec<u8> = (0..limit_bytes - 1024)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    c.check(&storage_cmd("set", "big", 3, 0, &ok, false), b"STORED\r\n");
    c.check(b"get big\r\n", &value_reply("big", 3, &ok));
    // At the limit and over it: rejected, the data swallowed, the connection still usable.
    for len in [limit_bytes, limit_bytes + 1, 2 * limit_bytes] {
        let v = vec![b'z'; len];
        c.check(
            &storage_cmd("set", "big2", 0, 0, &v, false),
            b"SERVER_ERROR object too large for cache\r\n",
        );
        c.check(b"get big2\r\n", b"END\r\n");
    }
    // A failed oversize set of an existing key leaves nothing stale behind (memcached deletes it).
    c.check(
        &storage_cmd("set", "big", 0, 0, &vec![b'z'; limit_bytes + 1], false),
        b"SERVER_ERROR object too large for cache\r\n",
    );
    c.check(b"get big\r\n", b"END\r\n");
    // append growing an item over the limit is refused too (memcached: NOT_STORED)
    c.check(&storage_cmd("set", "grow", 0, 0, &ok, false), b"STORED\r\n");
    c.check(
        &storage_cmd("append", "grow", 0, 0, &vec![b'y'; 2048], false),
        b"NOT_STORED\r\n",
    );
    c.check(b"get grow\r\n", &value_reply("grow", 0, &ok));
    c.check_quiet();
}

#[test]
fn values_at_and_over_the_default_item_limit() {
    item_limit_case(None, 1 << 20);
}

#[test]
fn values_at_and_over_a_2m_item_limit() {
    item_limit_case(Some("2m"), 2 << 20);
}

/// 500 connections open at once, each storing and reading its own key.
#[test]
fn five_hundred_concurrent_connections() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let mut conns: Vec<Conn> = (0..500).map(|_| Conn::connect(server.tcp_addr())).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(&storage_cmd(
            "set",
            &format!("c{i}"),
            i as u32,
            0,
            format!("conn{i}").as_bytes(),
            false,
        ));
    }
    for c in conns.iter_mut() {
        c.expect(b"set", b"STORED\r\n");
    }
    // every connection reads every 50th connection's key: all see the same store
    for (i, c) in conns.iter_mut().enumerate() {
        let j = (i * 50) % 500;
        c.send(format!("get c{j}\r\n").as_bytes());
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let j = (i * 50) % 500;
        c.expect(
            b"get",
            &value_reply(&format!("c{j}"), j as u32, format!("conn{j}").as_bytes()),
        );
    }
    let c0 = &mut conns[0];
    c0.send(b"stats\r\n");
    let stats =
        String::from_utf8(c0.read_until_suffix(b"END\r\n", Duration::from_secs(5))).expect("ascii");
    let curr: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT curr_connections "))
        .expect("curr_connections")
        .trim()
        .parse()
        .expect("number");
    assert!(curr >= 500, "curr_connections {curr} with 500 clients open");
}

/// Over `-c`, a new connection gets one error line and is closed; after a client leaves, a
/// new one is served again.
#[test]
fn connection_limit() {
    let Some(target) = Target::from_env() else {
        return;
    };
    const LIMIT: usize = 20;
    let server = target.builder().conn_limit(LIMIT as u32).start();
    let mut open = Vec::new();
    let mut rejected = None;
    for _ in 0..LIMIT + 5 {
        let mut c = Conn::connect(server.tcp_addr());
        c.send(b"mn\r\n");
        let line = c.read_line();
        if line == b"MN\r\n" {
            open.push(c);
            continue;
        }
        let eof = c.read_to_eof(Duration::from_secs(5));
        rejected = Some((line, eof));
        break;
    }
    let (line, eof) =
        rejected.unwrap_or_else(|| panic!("{} connections accepted with -c {LIMIT}", open.len()));
    // memcached 1.6.18 writes "ERROR Too many open connections"; the issue asks petrel for
    // "SERVER_ERROR too many open connections". Either line, then the connection closes.
    assert!(
        line == b"SERVER_ERROR too many open connections\r\n"
            || line == b"ERROR Too many open connections\r\n",
        "rejection line {:?}",
        String::from_utf8_lossy(&line)
    );
    assert_eq!(
        eof,
        Some(Vec::new()),
        "the rejected connection must be closed"
    );
    match target.kind {
        // petrel counts client connections only
        Kind::Petrel => assert_eq!(open.len(), LIMIT, "clients served with -c {LIMIT}"),
        // memcached counts its listening sockets and reserved descriptors too
        Kind::Memcached => assert!(!open.is_empty() && open.len() < LIMIT),
    }
    // everyone admitted still works
    for c in open.iter_mut() {
        c.check_quiet();
    }
    // one leaves; a newcomer is served
    drop(open.pop());
    std::thread::sleep(Duration::from_millis(300));
    let mut c = Conn::connect(server.tcp_addr());
    c.check(b"mn\r\n", b"MN\r\n");
}
