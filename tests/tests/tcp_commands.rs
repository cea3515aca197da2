//! Every command over TCP, with the exact bytes memcached 1.6 replies (classic and meta).
//! Run against memcached (`PETREL_TEST_TARGET=memcached`) these expectations pass, which is
//! what makes them the specification for petrel.

use petrel_tests::diff::MEMCACHED_QUIET;
use petrel_tests::server::{Kind, Server, Target};
use petrel_tests::tcp::{storage_cmd, value_reply, Conn};
use petrel_tests::wait::wait_until;
use std::collections::HashMap;
use std::time::Duration;

fn start() -> Option<(Server, Conn)> {
    let server = Target::from_env()?.start();
    let conn = Conn::connect(server.tcp_addr());
    Some((server, conn))
}

/// Sends `gets key` and returns the CAS of the single `VALUE` line (asserting the rest).
fn gets_cas(c: &mut Conn, key: &str, flags: u32, value: &[u8]) -> u64 {
    c.send(format!("gets {key}\r\n").as_bytes());
    let line = c.read_line();
    let text = String::from_utf8(line.clone()).expect("ascii");
    let words: Vec<&str> = text.trim_end().split(' ').collect();
    assert_eq!(
        &words[..4],
        &["VALUE", key, &flags.to_string(), &value.len().to_string()],
        "gets line {text:?}"
    );
    let cas: u64 = words[4].parse().expect("cas number");
    assert_ne!(cas, 0, "CAS is never 0");
    let mut rest = value.to_vec();
    rest.extend_from_slice(b"\r\nEND\r\n");
    c.expect(b"gets", &rest);
    cas
}

#[test]
fn storage_and_retrieval_commands() {
    let Some((_s, mut c)) = start() else { return };
    c.check(b"get nope\r\n", b"END\r\n");
    c.check(
        &storage_cmd("set", "a", 0, 0, b"hello", false),
        b"STORED\r\n",
    );
    c.check(b"get a\r\n", &value_reply("a", 0, b"hello"));
    // flags are 32-bit and echoed verbatim
    c.check(
        &storage_cmd("set", "f", 4294967295, 0, b"x", false),
        b"STORED\r\n",
    );
    c.check(b"get f\r\n", &value_reply("f", 4294967295, b"x"));
    // empty value
    c.check(&storage_cmd("set", "e", 7, 0, b"", false), b"STORED\r\n");
    c.check(b"get e\r\n", b"VALUE e 7 0\r\n\r\nEND\r\n");
    // multi-get: hits in request order, misses skipped, duplicates repeated
    c.check(
        b"get a nope e a\r\n",
        b"VALUE a 0 5\r\nhello\r\nVALUE e 7 0\r\n\r\nVALUE a 0 5\r\nhello\r\nEND\r\n",
    );
    // add / replace
    c.check(
        &storage_cmd("add", "a", 0, 0, b"zz", false),
        b"NOT_STORED\r\n",
    );
    c.check(&storage_cmd("add", "b", 3, 0, b"bee", false), b"STORED\r\n");
    c.check(
        &storage_cmd("replace", "nope", 0, 0, b"zz", false),
        b"NOT_STORED\r\n",
    );
    c.check(
        &storage_cmd("replace", "b", 4, 0, b"BEE", false),
        b"STORED\r\n",
    );
    c.check(b"get b\r\n", &value_reply("b", 4, b"BEE"));
    // append / prepend keep the old flags
    c.check(
        &storage_cmd("append", "b", 9, 0, b"!!", false),
        b"STORED\r\n",
    );
    c.check(
        &storage_cmd("prepend", "b", 9, 0, b"<<", false),
        b"STORED\r\n",
    );
    c.check(b"get b\r\n", &value_reply("b", 4, b"<<BEE!!"));
    c.check(
        &storage_cmd("append", "nope", 0, 0, b"x", false),
        b"NOT_STORED\r\n",
    );
    c.check(
        &storage_cmd("prepend", "nope", 0, 0, b"x", false),
        b"NOT_STORED\r\n",
    );
    // gets / cas
    let cas = gets_cas(&mut c, "a", 0, b"hello");
    c.check(
        format!("cas a 1 0 3 {}\r\nbad\r\n", cas + 1000).as_bytes(),
        b"EXISTS\r\n",
    );
    c.check(
        format!("cas a 1 0 3 {cas}\r\nnew\r\n").as_bytes(),
        b"STORED\r\n",
    );
    c.check(
        format!("cas a 1 0 3 {cas}\r\nold\r\n").as_bytes(),
        b"EXISTS\r\n",
    );
    c.check(b"cas nope 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n");
    let cas2 = gets_cas(&mut c, "a", 1, b"new");
    assert_ne!(cas, cas2, "a store gives a new CAS");
    // touch keeps the CAS
    c.check(b"touch a 0\r\n", b"TOUCHED\r\n");
    assert_eq!(gets_cas(&mut c, "a", 1, b"new"), cas2);
    c.check(b"touch nope 0\r\n", b"NOT_FOUND\r\n");
    // gat / gats
    c.check(b"gat 0 a nope\r\n", &value_reply("a", 1, b"new"));
    c.send(b"gats 0 a\r\n");
    c.expect(
        b"gats",
        format!("VALUE a 1 3 {cas2}\r\nnew\r\nEND\r\n").as_bytes(),
    );
    // negative exptime: stored but immediately expired
    c.check(
        &storage_cmd("set", "gone", 0, -1, b"x", false),
        b"STORED\r\n",
    );
    c.check(b"get gone\r\n", b"END\r\n");
    // touch with a negative exptime expires the item
    c.check(b"touch b -1\r\n", b"TOUCHED\r\n");
    c.check(b"get b\r\n", b"END\r\n");
    // delete
    c.check(b"delete a\r\n", b"DELETED\r\n");
    c.check(b"delete a\r\n", b"NOT_FOUND\r\n");
    c.check(b"get a\r\n", b"END\r\n");
    // the longest key is 250 bytes
    let k250 = "k".repeat(250);
    c.check(&storage_cmd("set", &k250, 0, 0, b"v", false), b"STORED\r\n");
    c.check(
        format!("get {k250}\r\n").as_bytes(),
        &value_reply(&k250, 0, b"v"),
    );
    c.check_quiet();
}

#[test]
fn arithmetic_commands() {
    let Some((_s, mut c)) = start() else { return };
    c.check(&storage_cmd("set", "n", 5, 0, b"10", false), b"STORED\r\n");
    c.check(b"incr n 5\r\n", b"15\r\n");
    c.check(b"decr n 3\r\n", b"12\r\n");
    c.check(b"decr n 100\r\n", b"0\r\n");
    c.check(b"get n\r\n", &value_reply("n", 5, b"0 "));
    c.check(
        &storage_cmd("set", "m", 0, 0, b"18446744073709551615", false),
        b"STORED\r\n",
    );
    c.check(b"incr m 2\r\n", b"1\r\n");
    // memcached pads a shorter number with spaces in place
    c.check(b"get m\r\n", &value_reply("m", 0, b"1                   "));
    c.check(&storage_cmd("set", "w", 0, 0, b"99", false), b"STORED\r\n");
    c.check(b"incr w 1\r\n", b"100\r\n");
    c.check(b"get w\r\n", &value_reply("w", 0, b"100"));
    c.check(b"incr nope 1\r\n", b"NOT_FOUND\r\n");
    c.check(b"decr nope 1\r\n", b"NOT_FOUND\r\n");
    c.check(
        &storage_cmd("set", "t", 0, 0, b"text", false),
        b"STORED\r\n",
    );
    c.check(
        b"incr t 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    c.check(
        b"incr n abc\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    );
    c.check(
        b"incr n -1\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    );
    c.check_quiet();
}

#[test]
fn noreply_is_silent() {
    let Some((_s, mut c)) = start() else { return };
    c.send(&storage_cmd("set", "a", 0, 0, b"1", true));
    c.send(&storage_cmd("add", "a", 0, 0, b"2", true));
    c.send(&storage_cmd("replace", "a", 0, 0, b"3", true));
    c.send(&storage_cmd("append", "a", 0, 0, b"4", true));
    c.send(&storage_cmd("prepend", "a", 0, 0, b"5", true));
    c.send(b"incr a 1 noreply\r\n");
    c.send(b"decr a 2 noreply\r\n");
    c.send(b"touch a 0 noreply\r\n");
    c.send(b"cas a 0 0 1 1 noreply\r\nx\r\n");
    c.check(b"get a\r\n", &value_reply("a", 0, b"533"));
    c.send(b"delete a noreply\r\n");
    c.send(b"flush_all noreply\r\n");
    c.send(b"verbosity 0 noreply\r\n");
    c.check(b"get a\r\n", b"END\r\n");
    c.check_quiet();
}

/// `stats` over `c`: the values by name, and the reply's text.
fn stats(c: &mut Conn) -> (HashMap<String, String>, String) {
    c.send(b"stats\r\n");
    read_stats(c)
}

/// Reads one `stats` reply from `c`: the values by name, and the reply's text.
fn read_stats(c: &mut Conn) -> (HashMap<String, String>, String) {
    let stats = c.read_until_suffix(b"END\r\n", Duration::from_secs(5));
    let text = String::from_utf8(stats).expect("ascii stats");
    let mut map = HashMap::new();
    for line in text.lines() {
        if line == "END" {
            continue;
        }
        let w: Vec<&str> = line.splitn(3, ' ').collect();
        assert!(w.len() == 3 && w[0] == "STAT", "stats line {line:?}");
        map.insert(w[1].to_string(), w[2].to_string());
    }
    (map, text)
}

/// The numeric `stats` value `name` (panics naming the reply if absent).
fn stat_num(map: &HashMap<String, String>, name: &str) -> u64 {
    map.get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric STAT {name} in {map:?}"))
}

/// The counters memcached 1.6.18's `stats reset` sets to zero that both servers print, and
/// which of them the traffic of `stats_reset_zeroes_counters_and_keeps_gauges` moves first.
const RESET_COUNTERS: &[(&str, bool)] = &[
    ("total_connections", true),
    ("rejected_connections", false),
    ("cmd_get", true),
    ("cmd_set", true),
    ("cmd_flush", true),
    ("cmd_touch", true),
    ("get_hits", true),
    ("get_misses", true),
    ("get_expired", false),
    ("delete_misses", true),
    ("delete_hits", true),
    ("incr_misses", true),
    ("incr_hits", true),
    ("decr_misses", true),
    ("decr_hits", true),
    ("cas_misses", true),
    ("cas_hits", true),
    ("cas_badval", true),
    ("touch_hits", true),
    ("touch_misses", true),
    ("store_too_large", true),
    ("store_no_memory", false),
    ("auth_cmds", false),
    ("auth_errors", false),
    ("conn_yields", false),
    ("total_items", true),
    ("evictions", true),
    ("reclaimed", false),
];

/// Gauges and settings `stats reset` keeps.
const RESET_KEEPS: &[&str] = &[
    "curr_items",
    "bytes",
    "curr_connections",
    "limit_maxbytes",
    "max_connections",
    "threads",
    "pointer_size",
];

#[test]
fn stats_reset_zeroes_counters_and_keeps_gauges() {
    let Some(target) = Target::from_env() else {
        return;
    };
    // 8 MiB of item memory, filled twice over below to make evictions
    let server = target.builder().memory_mib(8).no_udp().start();
    let mut c = Conn::connect(server.tcp_addr());
    c.check(b"flush_all\r\n", b"OK\r\n");
    let big = vec![b'a'; 3000];
    for i in 0..6000 {
        c.check(
            &storage_cmd("set", &format!("fill{i}"), 0, 0, &big, false),
            b"STORED\r\n",
        );
    }
    for i in 0..5 {
        c.check(
            &storage_cmd("set", &format!("k{i}"), 0, 0, b"10", false),
            b"STORED\r\n",
        );
    }
    c.check(b"get k0 nope\r\n", &value_reply("k0", 0, b"10"));
    c.check(b"incr k1 1\r\n", b"11\r\n");
    c.check(b"incr nope 1\r\n", b"NOT_FOUND\r\n");
    c.check(b"decr k1 1\r\n", b"10\r\n");
    c.check(b"decr nope 1\r\n", b"NOT_FOUND\r\n");
    c.check(b"delete k2\r\n", b"DELETED\r\n");
    c.check(b"delete nope\r\n", b"NOT_FOUND\r\n");
    c.check(b"touch k3 0\r\n", b"TOUCHED\r\n");
    c.check(b"touch nope 0\r\n", b"NOT_FOUND\r\n");
    let cas = gets_cas(&mut c, "k4", 0, b"10");
    c.check(
        format!("cas k4 0 0 1 {cas}\r\n5\r\n").as_bytes(),
        b"STORED\r\n",
    );
    c.check(
        format!("cas k4 0 0 1 {cas}\r\n6\r\n").as_bytes(),
        b"EXISTS\r\n",
    );
    c.check(b"cas nope 0 0 1 1\r\n6\r\n", b"NOT_FOUND\r\n");
    let too_large = vec![b'x'; 2 << 20];
    c.check(
        &storage_cmd("set", "huge", 0, 0, &too_large, false),
        b"SERVER_ERROR object too large for cache\r\n",
    );
    // a second connection, closed before the figures are compared
    drop(Conn::connect(server.tcp_addr()));
    let mut before = stats(&mut c).0;
    wait_until(
        Duration::from_secs(10),
        "the second connection closed",
        || {
            if stat_num(&before, "curr_connections") == 1 {
                return true;
            }
            before = stats(&mut c).0;
            false
        },
    );
    for &(name, moved) in RESET_COUNTERS {
        if moved {
            assert_ne!(stat_num(&before, name), 0, "{name} before stats reset");
        }
    }
    assert_ne!(stat_num(&before, "curr_items"), 0);
    assert_ne!(stat_num(&before, "bytes"), 0);

    c.check(b"stats reset\r\n", b"RESET\r\n");
    let after = stats(&mut c).0;
    for &(name, _) in RESET_COUNTERS {
        assert_eq!(stat_num(&after, name), 0, "{name} after stats reset");
    }
    for &name in RESET_KEEPS {
        assert_eq!(
            stat_num(&after, name),
            stat_num(&before, name),
            "{name} is kept by stats reset"
        );
    }
    // the traffic since the reset: the bytes of `stats\r\n` count as read before it is
    // answered, `RESET\r\n` as written, the reply being sent not yet
    assert_eq!(stat_num(&after, "bytes_read"), b"stats\r\n".len() as u64);
    assert_eq!(stat_num(&after, "bytes_written"), b"RESET\r\n".len() as u64);
    // counting goes on from zero
    c.check(b"get k0\r\n", &value_reply("k0", 0, b"10"));
    let again = stats(&mut c).0;
    assert_eq!(stat_num(&again, "cmd_get"), 1);
    assert_eq!(stat_num(&again, "get_hits"), 1);
    assert_eq!(stat_num(&again, "get_misses"), 0);
    c.check_quiet();
}

/// `bytes_read` / `bytes_written` after `stats reset`, as a client sees them: bytes count as
/// read when they arrive, before the requests in them are answered, and as written when the
/// reply is handed to the socket.
#[test]
fn stats_reset_restarts_byte_counts_from_the_next_read() {
    let Some(target) = Target::from_env() else {
        return;
    };
    // one worker thread: a worker counts a write once the write returns, and a client that
    // has the reply may already be asking another worker for `stats`
    let server = target.builder().no_udp().threads(1).start();
    let mut a = Conn::connect(server.tcp_addr());
    let mut b = Conn::connect(server.tcp_addr());
    let stats_line = b"stats\r\n".len() as u64;
    let reset_reply = b"RESET\r\n".len() as u64;
    // `stats` on the connection that reset, and on another one
    for use_b in [false, true] {
        a.check(b"stats reset\r\n", b"RESET\r\n");
        let (seen, text) = if use_b { stats(&mut b) } else { stats(&mut a) };
        assert_eq!(stat_num(&seen, "bytes_read"), stats_line, "other {use_b}");
        assert_eq!(
            stat_num(&seen, "bytes_written"),
            reset_reply,
            "other {use_b}"
        );
        // the next figures include that `stats` exchange in full
        let again = stats(&mut a).0;
        assert_eq!(stat_num(&again, "bytes_read"), 2 * stats_line);
        assert_eq!(
            stat_num(&again, "bytes_written"),
            reset_reply + text.len() as u64
        );
    }
    // `stats reset` and `stats` in one read: both arrived before the reset
    a.send(b"stats reset\r\nstats\r\n");
    a.expect(b"RESET", b"RESET\r\n");
    let (seen, _) = read_stats(&mut a);
    assert_eq!(stat_num(&seen, "bytes_read"), 0);
    assert_eq!(stat_num(&seen, "bytes_written"), 0);
    a.check_quiet();
    b.check_quiet();
}

/// The `stats` names in reply order.
fn stat_names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split(' ').next())
        .collect()
}

#[test]
fn get_counts_flushed_items() {
    let Some(target) = Target::from_env() else {
        return;
    };
    // memcached's LRU maintainer and crawler would otherwise reclaim the flushed item in the
    // background before the `get` finds it
    let builder = target.builder().no_udp();
    let server = match target.kind {
        Kind::Memcached => builder.arg("-o").arg(MEMCACHED_QUIET).start(),
        Kind::Petrel => builder.start(),
    };
    let mut c = Conn::connect(server.tcp_addr());
    // Petrel's acceptor reclaims whole flushed segments every 100 ms; one that falls between
    // the `flush_all` and the `get` leaves the `get` nothing to count, so the exchange is
    // tried again (a server that never counts fails every try)
    let mut counted = false;
    for attempt in 0..3 {
        c.check(b"stats reset\r\n", b"RESET\r\n");
        c.check(
            format!(
                "set f{attempt} 0 0 1\r\nx\r\nflush_all\r\nget f{attempt}\r\nget f{attempt}\r\n"
            )
            .as_bytes(),
            b"STORED\r\nOK\r\nEND\r\nEND\r\n",
        );
        let (map, text) = stats(&mut c);
        assert_eq!(stat_num(&map, "get_misses"), 2, "{text}");
        assert_eq!(stat_num(&map, "get_expired"), 0, "{text}");
        // memcached's order: get_flushed right after get_expired
        let names = stat_names(&text);
        let at = names
            .iter()
            .position(|&n| n == "get_expired")
            .expect("get_expired");
        assert_eq!(names.get(at + 1), Some(&"get_flushed"), "{text}");
        // the first `get` found the flushed item and removed it; the second found nothing
        if stat_num(&map, "get_flushed") == 1 {
            counted = true;
            break;
        }
        assert_eq!(stat_num(&map, "get_flushed"), 0, "{text}");
    }
    assert!(counted, "no try counted get_flushed 1");
    c.check(b"stats reset\r\n", b"RESET\r\n");
    assert_eq!(stat_num(&stats(&mut c).0, "get_flushed"), 0);
    c.check_quiet();
}

#[test]
fn admin_commands() {
    let Some((_s, mut c)) = start() else { return };
    c.check(&storage_cmd("set", "a", 0, 0, b"1", false), b"STORED\r\n");
    c.check(b"flush_all\r\n", b"OK\r\n");
    c.check(b"get a\r\n", b"END\r\n");
    c.check(&storage_cmd("set", "a", 0, 0, b"1", false), b"STORED\r\n");
    c.check(b"flush_all 0\r\n", b"OK\r\n");
    c.check(b"get a\r\n", b"END\r\n");
    c.check(b"verbosity 1\r\n", b"OK\r\n");
    c.check(b"verbosity 0\r\n", b"OK\r\n");
    // version: one line "VERSION <something>"
    c.send(b"version\r\n");
    let v = c.read_line();
    assert!(
        v.starts_with(b"VERSION ") && v.len() > 10,
        "version line {:?}",
        String::from_utf8_lossy(&v)
    );
    // stats: memcached's names where a stat exists in both
    c.check(
        &storage_cmd("set", "s", 0, 0, b"12345", false),
        b"STORED\r\n",
    );
    c.check(b"get s nope\r\n", &value_reply("s", 0, b"12345"));
    let (map, text) = stats(&mut c);
    for name in [
        "pid",
        "uptime",
        "time",
        "version",
        "rusage_user",
        "rusage_system",
        "curr_connections",
        "total_connections",
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "curr_items",
        "total_items",
        "bytes",
        "limit_maxbytes",
        "evictions",
        "threads",
    ] {
        assert!(map.contains_key(name), "stats lacks {name}:\n{text}");
    }
    let num = |k: &str| {
        map[k]
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{k} = {:?}", map[k]))
    };
    assert_eq!(num("limit_maxbytes"), 64 << 20);
    // memcached's "%ld.%06ld" seconds
    for k in ["rusage_user", "rusage_system"] {
        let (s, us) = map[k].split_once('.').expect(k);
        assert!(
            s.parse::<u64>().is_ok() && us.len() == 6 && us.parse::<u32>().is_ok(),
            "{k} = {:?}",
            map[k]
        );
    }
    assert_eq!(num("threads"), 1);
    assert_eq!(num("curr_items"), 1);
    assert!(num("get_hits") >= 1 && num("get_misses") >= 1);
    assert!(num("cmd_set") >= 3);
    assert!(num("curr_connections") >= 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        num("time").abs_diff(now) <= 5,
        "stats time {} vs {now}",
        num("time")
    );
    c.check_quiet();
    // quit closes the connection without a reply
    c.send(b"quit\r\n");
    assert_eq!(c.read_to_eof(Duration::from_secs(5)), Some(Vec::new()));
}

/// `mg key t v` of a one-digit value: whether the item has a TTL.
fn has_ttl(c: &mut Conn, key: &str) -> bool {
    c.send(format!("mg {key} t v\r\n").as_bytes());
    let line = String::from_utf8(c.read_line()).expect("ascii");
    let ttl: i64 = line
        .trim_end()
        .strip_prefix("VA 1 t")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("mg {key} t v: {line:?}"));
    c.read_line();
    ttl != -1
}

#[test]
fn ma_with_an_over_long_opaque_applies_only_the_ttls_before_it() {
    let Some((_s, mut c)) = start() else { return };
    let o = format!("O{}", "a".repeat(33));
    let refused = b"CLIENT_ERROR opaque token too long\r\n";
    // the arithmetic is done either way; T and N's TTL count only before the opaque
    for (key, words, ttl) in [
        ("a", format!("{o} T100"), false),
        ("b", format!("T100 {o}"), true),
        ("c", format!("{o} N100"), false),
        ("d", format!("N100 {o}"), true),
        ("e", format!("T100 {o} N100"), true),
        ("f", format!("N100 {o} T100"), true),
        ("g", format!("{o} N100 T100"), false),
    ] {
        let vivify = words.contains('N');
        if !vivify {
            c.check(&storage_cmd("set", key, 0, 0, b"5", false), b"STORED\r\n");
        }
        c.check(format!("ma {key} {words}\r\n").as_bytes(), refused);
        assert_eq!(has_ttl(&mut c, key), ttl, "ma {key} {words}");
    }
    c.check(b"mg a v\r\nmg c v\r\n", b"VA 1\r\n6\r\nVA 1\r\n0\r\n");
    c.check_quiet();
}

#[test]
fn meta_commands() {
    let Some((_s, mut c)) = start() else { return };
    c.check(b"mn\r\n", b"MN\r\n");
    c.check(b"mg nope v\r\n", b"EN\r\n");
    c.check(b"mg nope v q\r\nmn\r\n", b"MN\r\n");
    c.check(b"ms a 3 F7\r\nabc\r\n", b"HD\r\n");
    c.check(b"mg a v f s k\r\n", b"VA 3 f7 s3 ka\r\nabc\r\n");
    c.check(b"mg a\r\n", b"HD\r\n");
    c.check(b"mg a k O123\r\n", b"HD ka O123\r\n");
    c.check(b"mg a v q\r\n", b"VA 3\r\nabc\r\n");
    // CAS via meta: c returns it, C compares
    c.send(b"mg a c\r\n");
    let line = String::from_utf8(c.read_line()).expect("ascii");
    let cas: u64 = line
        .trim_end()
        .strip_prefix("HD c")
        .unwrap_or_else(|| panic!("mg c reply {line:?}"))
        .parse()
        .expect("cas");
    c.check(
        format!("ms a 1 C{}\r\nx\r\n", cas + 1000).as_bytes(),
        b"EX\r\n",
    );
    c.check(format!("ms a 1 C{cas}\r\ny\r\n").as_bytes(), b"HD\r\n");
    c.check(b"mg a v\r\n", b"VA 1\r\ny\r\n");
    // modes: E (add), A (append), P (prepend), R (replace)
    c.check(b"ms a 1 ME\r\nz\r\n", b"NS\r\n");
    c.check(b"ms a 2 MA\r\n12\r\n", b"HD\r\n");
    c.check(b"ms a 2 MP\r\n00\r\n", b"HD\r\n");
    c.check(b"mg a v\r\n", b"VA 5\r\n00y12\r\n");
    c.check(b"ms nope 1 MR\r\nz\r\n", b"NS\r\n");
    c.check(
        b"ms a 1 MX\r\nz\r\n",
        b"CLIENT_ERROR invalid mode for ms M token\r\n",
    );
    // hit-before flag
    c.check(b"ms h 1\r\n1\r\n", b"HD\r\n");
    c.check(b"mg h h\r\n", b"HD h0\r\n");
    c.check(b"mg h h\r\n", b"HD h1\r\n");
    // touch and gat count as a fetch in memcached
    c.check(b"ms h2 1\r\n1\r\ntouch h2 0\r\n", b"HD\r\nTOUCHED\r\n");
    c.check(b"mg h2 h\r\n", b"HD h1\r\n");
    c.check(
        b"ms h3 1\r\n1\r\ngat 0 h3\r\n",
        b"HD\r\nVALUE h3 0 1\r\n1\r\nEND\r\n",
    );
    c.check(b"mg h3 h\r\n", b"HD h1\r\n");
    // md
    c.check(b"md a\r\n", b"HD\r\n");
    c.check(b"md a\r\n", b"NF\r\n");
    // q hides HD but not NF
    c.check(b"ms a 1\r\nx\r\nmd a q\r\nmn\r\n", b"HD\r\nMN\r\n");
    c.check(b"md a q\r\nmn\r\n", b"NF\r\nMN\r\n");
    // ma: incr by default, D delta, MD decr, N/J autovivify, v returns the value
    c.check(b"ma n\r\n", b"NF\r\n");
    c.check(b"ma n N0 J13 v\r\n", b"VA 2\r\n13\r\n");
    c.check(b"ma n v\r\n", b"VA 2\r\n14\r\n");
    c.check(b"ma n D10 v\r\n", b"VA 2\r\n24\r\n");
    c.check(b"ma n MD D30 v\r\n", b"VA 1\r\n0\r\n");
    c.check(b"ma n\r\n", b"HD\r\n");
    c.check(b"ms t 1\r\nx\r\n", b"HD\r\n");
    c.check(
        b"ma t\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    // vivify on miss: the first client wins (W), later ones see Z
    c.check(b"mg viv N30 v\r\n", b"VA 0 W\r\n\r\n");
    c.check(b"mg viv v\r\n", b"VA 0 Z\r\n\r\n");
    // errors
    c.check(b"mg a !\r\n", b"CLIENT_ERROR invalid flag\r\n");
    c.check(b"mg a v v\r\n", b"CLIENT_ERROR duplicate flag\r\n");
    c.check_quiet();
}

#[test]
fn errors_match_memcached() {
    let Some((_s, mut c)) = start() else { return };
    c.check(b"bogus\r\n", b"ERROR\r\n");
    c.check(b"\r\n", b"ERROR\r\n");
    c.check(b"GET a\r\n", b"ERROR\r\n");
    c.check(b"get\r\n", b"ERROR\r\n");
    let k251 = "k".repeat(251);
    c.check(
        format!("get {k251}\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\n",
    );
    // a bad storage line: the data line is then read as a command
    c.check(
        b"set a abc 0 1\r\nx\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    c.check(
        format!("set {k251} 0 0 1\r\nx\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    // data longer than announced
    c.check(
        b"set a 0 0 3\r\nabcde\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    c.check(
        b"touch a abc\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    );
    c.check_quiet();
}
