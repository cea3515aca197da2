//! The Linux kernel as an independent judge of the reply frames `core::wire`
//! builds: frames are injected through a TUN device in a private network
//! namespace (`unshare -n`, root only) and must reach ordinary UDP sockets
//! with their payload intact, with the kernel's `InCsumErrors` counter
//! unchanged. A deliberately corrupted frame is the negative control: it must
//! be dropped and counted, proving the check can fail.
//!
//! Without root, `unshare` or `python3` the test prints why and passes.

use petrel_core::wire::{
    write_reply_frame, DatagramSplitter, EthernetAddress, IpPair, Ipv4Address, Ipv6Address,
    ReplyAddressing, ReplyTarget, UDP_MAX_PAYLOAD_BYTES,
};
use std::io::Write;
use std::process::{Command, Stdio};

/// The helper run inside the namespace: sets up `ptest0`, binds the sockets,
/// injects each hex-encoded IP packet read from stdin, and prints what the
/// sockets received and the UDP checksum error counters.
const HELPER: &str = r#"
import fcntl, os, socket, struct, subprocess, sys
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", b"ptest0", 0x0001 | 0x1000))
def sh(*a): subprocess.check_call(list(a))
sh("ip", "link", "set", "lo", "up")
sh("ip", "addr", "add", "198.18.9.1/24", "dev", "ptest0")
sh("ip", "-6", "addr", "add", "2001:db8:9::1/64", "dev", "ptest0", "nodad")
sh("ip", "link", "set", "ptest0", "up")
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind(("198.18.9.1", 40001))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s6.bind(("2001:db8:9::1", 40001))
for s in (s4, s6):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.settimeout(0.3)
def counters():
    t = open("/proc/net/snmp").read().split("\n")
    u = [l for l in t if l.startswith("Udp: ")]
    h, v = u[0].split()[1:], u[1].split()[1:]
    v4 = int(v[h.index("InCsumErrors")])
    six = dict(l.split() for l in open("/proc/net/snmp6").read().strip().split("\n"))
    return v4, int(six.get("Udp6InCsumErrors", 0))
before = counters()
n = 0
for line in sys.stdin:
    line = line.strip()
    if line:
        os.write(fd, bytes.fromhex(line)); n += 1
for name, s in (("v4", s4), ("v6", s6)):
    while True:
        try:
            data, peer = s.recvfrom(65536)
        except socket.timeout:
            break
        print(name, peer[1], data.hex())
after = counters()
print("csum_errors", after[0] - before[0], after[1] - before[1])
"#;

fn can_run() -> Result<(), String> {
    // Root's real uid is 0 in /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    if uid_line.split_whitespace().nth(1) != Some("0") {
        return Err("not root".into());
    }
    for tool in ["unshare", "python3", "ip"] {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!("{tool} not found"));
        }
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err("no /dev/net/tun".into());
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn addressing(v6: bool) -> ReplyAddressing {
    let ips = if v6 {
        let mut peer = [0u8; 16];
        peer[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 9]);
        let mut local = peer;
        peer[15] = 2;
        local[15] = 1;
        IpPair::V6 {
            src: Ipv6Address(peer),
            dst: Ipv6Address(local),
        }
    } else {
        IpPair::V4 {
            src: Ipv4Address::new(198, 18, 9, 2),
            dst: Ipv4Address::new(198, 18, 9, 1),
        }
    };
    ReplyAddressing {
        eth_src: EthernetAddress([2, 0, 0, 0, 0, 2]),
        eth_dst: EthernetAddress([2, 0, 0, 0, 0, 1]),
        ips,
        src_port: 11311,
        dst_port: 40001,
        request_id: 0xbeef,
    }
}

fn payload_byte(i: usize, salt: usize) -> u8 {
    (i.wrapping_mul(31) ^ salt) as u8
}

#[test]
fn wire_kernel_accepts_our_replies_and_rejects_a_corrupt_one() {
    if let Err(why) = can_run() {
        petrel_testkit::skip::skip(&format!(
            "{why} (needs root, unshare, ip, python3, /dev/net/tun)"
        ));
        return;
    }
    let mut packets: Vec<Vec<u8>> = Vec::new(); // IP packets (Ethernet stripped)
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for v6 in [false, true] {
        let addr = addressing(v6);
        let name = if v6 { "v6" } else { "v4" };
        // Single datagrams of many sizes, odd and even, through write_reply_frame.
        for (k, len) in [0usize, 1, 2, 5, 17, 100, 1391, UDP_MAX_PAYLOAD_BYTES]
            .into_iter()
            .enumerate()
        {
            let mut buf = vec![0u8; 2048];
            let off = addr.headers_len();
            for i in 0..len {
                buf[off + i] = payload_byte(i, k);
            }
            let n = write_reply_frame(&mut buf, &addr, len, 0, 1).unwrap();
            assert_eq!(n, (off + len).max(60));
            // The IP packet, without Ethernet header and padding.
            packets.push(buf[14..off + len].to_vec());
            let mut dgram = vec![0xbe, 0xef, 0, 0, 0, 1, 0, 0];
            dgram.extend((0..len).map(|i| payload_byte(i, k)));
            expected.push((name.to_string(), dgram));
        }
        // A 4000-byte reply through the splitter: 3 datagrams, totals patched.
        let mut splitter = DatagramSplitter::new(ReplyTarget::Frame(addr));
        let mut frames = Vec::new();
        let mut done = 0usize;
        while done < 4000 {
            let mut buf = vec![0u8; 2048];
            let p = splitter
                .next(&mut buf, |area| {
                    let n = area.len().min(4000 - done);
                    for (i, b) in area[..n].iter_mut().enumerate() {
                        *b = payload_byte(done + i, 99);
                    }
                    (n, n)
                })
                .unwrap();
            done += p.value;
            buf.truncate(p.len);
            frames.push(buf);
        }
        assert_eq!(splitter.total(), 3);
        let mut at = 0usize;
        for (seq, f) in frames.iter_mut().enumerate() {
            splitter.finish(f).unwrap();
            let off = addr.headers_len();
            let body = &f[off..];
            let mut dgram = vec![0xbe, 0xef, 0, seq as u8, 0, 3, 0, 0];
            dgram.extend_from_slice(body);
            for (i, b) in body.iter().enumerate() {
                assert_eq!(*b, payload_byte(at + i, 99));
            }
            at += body.len();
            expected.push((name.to_string(), dgram));
            packets.push(f[14..].to_vec());
        }
        // Negative control: a frame with one payload bit flipped after the
        // checksum was computed must be dropped and counted.
        let mut buf = vec![0u8; 2048];
        let off = addr.headers_len();
        buf[off..off + 4].copy_from_slice(b"BAD!");
        write_reply_frame(&mut buf, &addr, 4, 0, 1).unwrap();
        buf[off] ^= 0x20;
        packets.push(buf[14..off + 4].to_vec());
    }

    let mut child = Command::new("unshare")
        .args(["-n", "python3", "-c", HELPER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    {
        let mut stdin = child.stdin.take().unwrap();
        for p in &packets {
            writeln!(stdin, "{}", hex(p)).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );

    let mut got: Vec<(String, Vec<u8>)> = Vec::new();
    let mut csum_errors = None;
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["csum_errors", v4, v6] => {
                csum_errors = Some((v4.parse::<u32>().unwrap(), v6.parse::<u32>().unwrap()))
            }
            [name, port, data] => {
                assert_eq!(*port, "11311");
                let bytes = (0..data.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&data[i..i + 2], 16).unwrap())
                    .collect();
                got.push((name.to_string(), bytes));
            }
            _ => panic!("unexpected helper line: {line}"),
        }
    }
    // Every good datagram arrived, in order per family, byte for byte; the
    // corrupt ones did not arrive and were counted as checksum errors.
    assert_eq!(
        got.len(),
        expected.len(),
        "received {} of {}",
        got.len(),
        expected.len()
    );
    assert_eq!(got, expected);
    assert_eq!(csum_errors, Some((1, 1)));
}
