//! memcache over UDP: our own client (written from protocol.txt) and Debian's `memcaslap -U`.

use petrel_tests::server::Target;
use petrel_tests::tcp::{storage_cmd, value_reply, Conn};
use petrel_tests::udp::{
    ends_with_end, ends_with_line, FrameHeader, UdpClient, FRAME_HEADER_BYTES,
    MAX_REPLY_DATAGRAM_BYTES,
};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
/// Reply bytes per datagram (1400 minus the frame header).
const PAYLOAD: usize = MAX_REPLY_DATAGRAM_BYTES - FRAME_HEADER_BYTES;

#[test]
fn small_get_is_one_datagram() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let mut tcp = Conn::connect(server.tcp_addr());
    tcp.check(
        &storage_cmd("set", "u", 9, 0, b"udp-value", false),
        b"STORED\r\n",
    );
    let mut udp = UdpClient::connect(server.udp_addr());
    let reply = udp.request(b"get u\r\n", ends_with_end, T).expect("reply");
    assert_eq!(reply.bytes, value_reply("u", 9, b"udp-value"));
    assert_eq!(reply.datagrams.len(), 1);
    let h = reply.datagrams[0].header;
    assert_eq!((h.seq, h.total, h.reserved), (0, 1, 0));
    // a miss
    let reply = udp
        .request(b"get nope\r\n", ends_with_end, T)
        .expect("reply");
    assert_eq!(reply.bytes, b"END\r\n");
    // meta and gets work over UDP too
    let reply = udp
        .request(b"mg u v f\r\n", ends_with_line, T)
        .expect("reply");
    assert_eq!(reply.bytes, b"VA 9 f9\r\nudp-value\r\n");
}

#[test]
fn large_value_spans_many_datagrams() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let mut tcp = Conn::connect(server.tcp_addr());
    let value: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    tcp.check(
        &storage_cmd("set", "big", 1, 0, &value, false),
        b"STORED\r\n",
    );
    let mut udp = UdpClient::connect(server.udp_addr());
    for _ in 0..3 {
        let reply = udp
            .request(b"get big\r\n", ends_with_end, T)
            .expect("reply");
        let want = value_reply("big", 1, &value);
        assert_eq!(reply.bytes.len(), want.len());
        assert!(reply.bytes == want, "reassembled value differs");
        let n = reply.datagrams.len();
        assert!(
            n >= want.len().div_ceil(PAYLOAD),
            "{n} datagrams for {} bytes",
            want.len()
        );
        for d in &reply.datagrams {
            assert!(d.payload.len() <= PAYLOAD);
            assert_eq!(d.header.reserved, 0);
        }
    }
    // a multi-key get mixing the big value with small ones and a miss
    tcp.check(
        &storage_cmd("set", "s1", 0, 0, b"one", false),
        b"STORED\r\n",
    );
    let reply = udp
        .request(b"get s1 big nope s1\r\n", ends_with_end, T)
        .expect("reply");
    let mut want = b"VALUE s1 0 3\r\none\r\n".to_vec();
    want.extend_from_slice(format!("VALUE big 1 {}\r\n", value.len()).as_bytes());
    want.extend_from_slice(&value);
    want.extend_from_slice(b"\r\nVALUE s1 0 3\r\none\r\nEND\r\n");
    assert!(reply.bytes == want, "multi-get over UDP differs");
}

#[test]
fn storage_over_udp_and_noreply() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let mut udp = UdpClient::connect(server.udp_addr());
    let reply = udp
        .request(
            &storage_cmd("set", "k", 2, 0, b"v1", false),
            ends_with_line,
            T,
        )
        .expect("reply");
    assert_eq!(reply.bytes, b"STORED\r\n");
    let reply = udp
        .request(b"incr n 1\r\n", ends_with_line, T)
        .expect("reply");
    assert_eq!(reply.bytes, b"NOT_FOUND\r\n");
    // noreply: no datagram at all
    let id = udp.next_request_id();
    udp.send_frame(
        FrameHeader {
            request_id: id,
            seq: 0,
            total: 1,
            reserved: 0,
        },
        &storage_cmd("set", "k", 3, 0, b"v2", true),
    );
    let (reply, extra) = udp
        .nothing_before(b"get k\r\n", ends_with_end, T)
        .expect("reply");
    assert!(
        extra.is_empty(),
        "noreply produced {} datagram(s)",
        extra.len()
    );
    assert_eq!(reply.bytes, value_reply("k", 3, b"v2"));
}

#[test]
fn malformed_frames_are_dropped() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    let mut udp = UdpClient::connect(server.udp_addr());
    // A request claiming to be one of several datagrams (memcached drops it; it answers a
    // non-zero reserved field, so that case is not checked here).
    udp.send_frame(
        FrameHeader {
            request_id: 7,
            seq: 0,
            total: 2,
            reserved: 0,
        },
        b"get k\r\n",
    );
    // shorter than a header
    udp.socket().send(b"abc").expect("send");
    // the server still answers good requests, and answered nothing before
    let (reply, got) = udp
        .nothing_before(b"get k\r\n", ends_with_end, T)
        .expect("reply");
    assert!(got.is_empty(), "malformed requests were answered: {got:?}");
    assert_eq!(reply.bytes, b"END\r\n");
}

/// Debian's memcaslap over UDP, 10,000 operations (TCP and UDP on the same port, as it needs):
/// a count, not a duration, so a loaded machine makes the run slower, never smaller.
#[test]
fn memcaslap_udp() {
    let Some(target) = Target::from_env() else {
        return;
    };
    let server = target.start();
    assert_eq!(server.tcp_port, server.udp_port);
    let out = Command::new("timeout")
        .args(["30", "memcaslap", "-s"])
        .arg(format!("127.0.0.1:{}", server.tcp_port))
        .args(["-U", "-x", "10000", "-c", "8", "-T", "1"])
        .output()
        .expect("run memcaslap (Debian libmemcached-tools)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "memcaslap failed: {}\n{text}",
        out.status
    );
    let stat = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("memcaslap printed no {name}:\n{text}"))
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} not a number:\n{text}"))
    };
    let gets = stat("cmd_get");
    let sets = stat("cmd_set");
    // memcaslap's default mix: 9 gets to 1 set
    assert_eq!((gets, sets), (9000, 1000), "operations run:\n{text}");
    assert!(stat("get_misses") * 10 < gets, "too many misses:\n{text}");
    assert!(
        stat("udp_timeout") * 100 < gets + sets,
        "too many UDP timeouts:\n{text}"
    );
    eprintln!("{text}");
}

/// Reads `stats` over TCP: `bytes_read` and `bytes_written`.
fn tcp_byte_stats(tcp: &mut Conn) -> (usize, usize) {
    tcp.send(b"stats\r\n");
    let text = tcp.read_until_suffix(b"END\r\n", T);
    let text = String::from_utf8(text).expect("ascii stats");
    let stat = |name: &str| -> usize {
        let prefix = format!("STAT {name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric STAT {name} in {text}"))
    };
    (stat("bytes_read"), stat("bytes_written"))
}

/// Sends `request` in one datagram and checks the reply is `reply`; returns the datagram's
/// length and the lengths of the reply datagrams (frame headers included).
fn exchange(udp: &mut UdpClient, request: &[u8], reply: &[u8]) -> (usize, Vec<usize>) {
    let got = udp.request(request, ends_with_line, T).expect("reply");
    assert_eq!(got.bytes, reply);
    let sent = got
        .datagrams
        .iter()
        .map(|d| FRAME_HEADER_BYTES + d.payload.len())
        .collect();
    (FRAME_HEADER_BYTES + request.len(), sent)
}

/// UDP traffic counts in `bytes_read` / `bytes_written` as memcached 1.6.18 counts it: every
/// request datagram longer than the 8-byte frame header adds its whole length (header
/// included) to `bytes_read` whether or not it is answered; every reply datagram sent adds
/// its whole length (header included) to `bytes_written`.
#[test]
fn udp_datagrams_count_in_bytes_read_and_written() {
    let Some(target) = Target::from_env() else {
        return;
    };
    // one worker thread serves TCP and UDP: a reply datagram is counted before the worker
    // reads the `stats` that follows it
    let server = target.builder().threads(1).start();
    let mut tcp = Conn::connect(server.tcp_addr());
    tcp.check(&storage_cmd("set", "k", 0, 0, b"v", false), b"STORED\r\n");
    let big: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    tcp.check(&storage_cmd("set", "big", 0, 0, &big, false), b"STORED\r\n");
    tcp.check(b"stats reset\r\n", b"RESET\r\n");
    let mut udp = UdpClient::connect(server.udp_addr());
    // a hit, a miss and a set: one datagram each way
    let (r, w) = exchange(&mut udp, b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
    assert_eq!((r, &w[..]), (15, &[29][..]));
    let (r, w) = exchange(&mut udp, b"get nope\r\n", b"END\r\n");
    assert_eq!((r, &w[..]), (18, &[13][..]));
    let (r, w) = exchange(&mut udp, b"set s 0 0 3\r\nabc\r\n", b"STORED\r\n");
    assert_eq!((r, &w[..]), (26, &[16][..]));
    let mut read = 15 + 18 + 26;
    let mut written = b"RESET\r\n".len() + 29 + 13 + 16;
    // a reply of 3 datagrams: each with its frame header
    let (r, w) = exchange(&mut udp, b"get big\r\n", &value_reply("big", 0, &big));
    assert_eq!(w.len(), 3);
    assert_eq!(
        w.iter().sum::<usize>(),
        3 * FRAME_HEADER_BYTES + value_reply("big", 0, &big).len()
    );
    read += r;
    written += w.iter().sum::<usize>();
    // 7 bytes and a bare frame header: not longer than the frame header, neither counted
    // nor answered
    udp.socket().send(b"get k\r\n").expect("send");
    let header = FrameHeader {
        request_id: 7,
        seq: 0,
        total: 1,
        reserved: 0,
    };
    udp.send_frame(header, b"");
    // the first of a multi-datagram request: read, then dropped unanswered
    let first = FrameHeader { total: 2, ..header };
    udp.send_frame(first, b"get k\r\n");
    read += FRAME_HEADER_BYTES + b"get k\r\n".len();
    // `noreply`: read, nothing written
    let quiet = b"set q 0 0 1 noreply\r\nx\r\n";
    udp.send_frame(header, quiet);
    read += FRAME_HEADER_BYTES + quiet.len();
    // taken after the datagrams above, so its reply says they were handled
    let (r, w) = exchange(&mut udp, b"get q\r\n", b"VALUE q 0 1\r\nx\r\nEND\r\n");
    read += r;
    written += w.iter().sum::<usize>();
    // the `stats` request counts as read before it is answered
    read += b"stats\r\n".len();
    assert_eq!(tcp_byte_stats(&mut tcp), (read, written));
    assert!(udp.take_stray().is_empty());
}
