#!/usr/bin/env python3
"""memcache-over-UDP client for the AF_XDP end-to-end test.

Runs inside the client namespace.
Usage: xdp_client.py memcache|server|echo|flows SERVER_IP PORT TCP_PORT [GETS]
  memcache: gets/sets against the engine (keys "small" and "big" preloaded),
            TCP_PORT answers "ping\n" with "pong\n" (a plain kernel listener)
  server:   the same against the petrel binary: "small" and "big" are set
            over TCP first, and TCP_PORT must answer "version"
  echo:     against the tests' echo service (reply = payload repeated N times,
            N = the payload's first digit)
  flows:    GETS one-datagram echo requests, each from a new socket (flow),
            and nothing else
All modes also send malformed datagrams, ping, and talk TCP to TCP_PORT;
with RAW_IF (this namespace's interface) and RAW_DST_MAC (the server's MAC)
set, also hand-made frames through a packet socket.
Prints one line "ok key=value ..." on success; exits 1 with a reason otherwise.
Every loop is bounded; every socket has a timeout.
"""
import socket
import struct
import sys
import time

MODE, HOST, PORT, TCP_PORT = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
GETS = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
TIMEOUT_S = 2.0


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(TIMEOUT_S)
sock.connect((HOST, PORT))
next_id = [1]


def request(text, expect_reply=True, sequence=0, reserved=0):
    """Sends one request datagram; returns the reassembled reply payload."""
    rid = next_id[0]
    next_id[0] = (next_id[0] + 1) & 0xFFFF
    sock.send(struct.pack("!HHHH", rid, sequence, 1, reserved) + text)
    if not expect_reply:
        return None
    parts, total = {}, None
    deadline = time.time() + TIMEOUT_S
    while total is None or len(parts) < total:
        if time.time() > deadline:
            fail("timeout waiting for reply to %r (%d parts)" % (text[:40], len(parts)))
        data = sock.recv(65536)
        r, seq, tot, res = struct.unpack("!HHHH", data[:8])
        if r != rid:
            continue  # a late reply to an earlier request
        if res != 0 or tot == 0 or seq >= tot or (total is not None and tot != total):
            fail("bad frame header %r" % (data[:8],))
        if len(data) > 1400:
            fail("datagram of %d bytes > 1400" % len(data))
        total = tot
        parts[seq] = data[8:]
    return b"".join(parts[i] for i in range(total)), total


if MODE == "flows":
    # GETS echo requests, each from a socket of its own (its own flow, so
    # flows spread over the RX queues); every one must be answered.
    answered = 0
    for i in range(GETS):
        f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        f.settimeout(TIMEOUT_S)
        f.connect((HOST, PORT))
        msg = b"1flow %d" % i
        f.send(struct.pack("!HHHH", i, 0, 1, 0) + msg)
        try:
            data = f.recv(2048)
        except OSError as e:
            fail("flow %d: %s" % (i, e))
        if data != struct.pack("!HHHH", i, 0, 1, 0) + msg:
            fail("flow %d: %r" % (i, data))
        answered += 1
        f.close()
    print("ok flows=%d" % answered)
    sys.exit(0)


def echo_checks():
    reply, n = request(b"1hello")
    if reply != b"1hello" or n != 1:
        fail("echo: %r in %d" % (reply, n))
    body = b"3" + bytes((i * 13) % 256 for i in range(999))
    reply, n = request(body)
    if reply != body * 3 or n != 3:
        fail("echo x3: %d bytes in %d datagrams" % (len(reply), n))
    t0 = time.time()
    for i in range(GETS):
        msg = b"1#%d" % i
        reply, _ = request(msg)
        if reply != msg:
            fail("echo %d: %r" % (i, reply))
    return n, time.time() - t0


def memcache_checks():
    # 1. gets of preloaded keys through AF_XDP
    reply, n = request(b"get small\r\n")
    if reply != b"VALUE small 5 5\r\nhello\r\nEND\r\n":
        fail("get small: %r" % reply)
    reply, n = request(b"get missing\r\n")
    if reply != b"END\r\n":
        fail("get missing: %r" % reply)

    # 2. a reply spanning several datagrams
    reply, n = request(b"get big\r\n")
    big = bytes((i * 7 + 3) % 251 for i in range(5000))
    expect = b"VALUE big 0 5000\r\n" + big + b"\r\nEND\r\n"
    if reply != expect:
        fail("get big: %d bytes in %d datagrams, expected %d bytes" % (len(reply), n, len(expect)))
    if n < 4:
        fail("get big came in %d datagrams" % n)
    multi_datagrams = n

    # 2b. one request whose reply is more datagrams than the kernel sends
    # per sendto()/poll() in copy mode (32): every one must still arrive
    many = 10
    global many_gets, many_datagrams
    for _ in range(3):
        reply, n = request(b"get " + b" ".join([b"big"] * many) + b"\r\n")
        want = b"VALUE big 0 5000\r\n" + big + b"\r\n"
        if reply != want * many + b"END\r\n" or n <= 32:
            fail("get big x%d: %d bytes in %d datagrams" % (many, len(reply), n))
        many_gets += 1
        many_datagrams += n

    # 3. set and get over UDP, then sequential gets, every reply checked
    reply, _ = request(b"set k0 3 0 2\r\nv0\r\n")
    if reply != b"STORED\r\n":
        fail("set over UDP: %r" % reply)
    t0 = time.time()
    for i in range(GETS):
        reply, _ = request(b"get k0\r\n")
        if reply != b"VALUE k0 3 2\r\nv0\r\nEND\r\n":
            fail("get %d: %r" % (i, reply))
    elapsed = time.time() - t0
    return multi_datagrams, elapsed


def tcp_exchange(request, expect_prefix):
    t = socket.create_connection((HOST, TCP_PORT), timeout=TIMEOUT_S)
    t.sendall(request)
    got = b""
    deadline = time.time() + TIMEOUT_S
    while not got.endswith(b"\r\n") and time.time() < deadline:
        chunk = t.recv(4096)
        if not chunk:
            break
        got += chunk
    t.close()
    if not got.startswith(expect_prefix):
        fail("TCP %r: %r" % (request[:30], got[:80]))


if MODE == "server":
    tcp_exchange(b"set small 5 0 5\r\nhello\r\n", b"STORED\r\n")
    big = bytes((i * 7 + 3) % 251 for i in range(5000))
    tcp_exchange(b"set big 0 0 5000\r\n" + big + b"\r\n", b"STORED\r\n")
many_gets = many_datagrams = 0
multi_datagrams, elapsed = echo_checks() if MODE == "echo" else memcache_checks()

# 4. memcached reads only the datagram count of a request header: the
# sequence and reserved fields are ignored (memcaslap sends reserved 0x0100)
probe = b"1probe" if MODE == "echo" else b"get small\r\n"
expect = probe if MODE == "echo" else b"VALUE small 5 5\r\nhello\r\nEND\r\n"
for seq, res in ((0, 0x0100), (3, 7)):
    reply, _ = request(probe, sequence=seq, reserved=res)
    if reply != expect:
        fail("request with sequence %d reserved %#x: %r" % (seq, res, reply))

# 4a. malformed datagrams: counted by the server, no reply, server unharmed
raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
raw.connect((HOST, PORT))
raw.send(b"abc")  # shorter than the frame header
raw.send(struct.pack("!HHHH", 9, 0, 2, 0) + b"1 multi-datagram request")
raw.send(struct.pack("!HHHH", 9, 0, 0, 0) + b"1 datagram count 0")
raw.close()
reply, _ = request(probe)
if reply != expect:
    fail("request after malformed: %r" % reply)

# 4b. hand-made Ethernet frames through a packet socket (when RAW_IF and
# RAW_DST_MAC are set): two the XDP program redirects and the front end must
# drop and count (bad IPv4 header checksum, UDP length beyond the IP payload),
# two it must pass to the kernel untouched (IPv4 options, a fragment), and one
# with a wrong UDP checksum.
import os


# Frames come from the port of a socket of their own, so that anything the
# kernel answers (ICMP port unreachable, a kernel UDP server's reply) goes
# there and not to `sock`.
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind((sock.getsockname()[0], 0))


def ipv4_frame(src_mac, dst_mac, payload, ihl=5, frag=0, udp_len_delta=0, break_csum=False, udp_csum=0):
    src_ip = socket.inet_aton(sock.getsockname()[0])
    dst_ip = socket.inet_aton(HOST)
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", sink.getsockname()[1], PORT, udp_len + udp_len_delta, udp_csum) + payload
    options = b"\x01" * (4 * (ihl - 5))  # NOPs
    total = 4 * ihl + len(udp)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0, frag, 64, 17, 0, src_ip, dst_ip) + options
    csum = inet_checksum(hdr)
    if break_csum:
        csum ^= 0x5555
    hdr = hdr[:10] + struct.pack("!H", csum) + hdr[12:]
    return dst_mac + src_mac + b"\x08\x00" + hdr + udp


def inet_checksum(b):
    if len(b) % 2:
        b += b"\0"
    total = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


raw_frames = 0
if os.environ.get("RAW_IF"):
    ifname = os.environ["RAW_IF"]
    dst_mac = bytes.fromhex(os.environ["RAW_DST_MAC"].replace(":", ""))
    src_mac = bytes.fromhex(open("/sys/class/net/%s/address" % ifname).read().strip().replace(":", ""))
    pk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    pk.bind((ifname, 0))
    body = struct.pack("!HHHH", 77, 0, 1, 0) + (b"get small\r\n" if MODE != "echo" else b"1raw")
    for f in (
        ipv4_frame(src_mac, dst_mac, body, break_csum=True),
        ipv4_frame(src_mac, dst_mac, body, udp_len_delta=16),
        ipv4_frame(src_mac, dst_mac, body, ihl=6),
        ipv4_frame(src_mac, dst_mac, body, frag=0x2000),
        # A wrong UDP checksum: answered (to `sink`) unless the server
        # verifies checksums.
        ipv4_frame(src_mac, dst_mac, body, udp_csum=0x1234),
    ):
        pk.send(f)
        raw_frames += 1
    pk.close()
    reply, _ = request(probe)
    if reply != expect:
        fail("request after raw frames: %r" % reply)

# 5. ping (ICMP echo) answered by the kernel
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
icmp.settimeout(TIMEOUT_S)
payload = b"petrel-xdp-ping!"  # even length


csum = inet_checksum(struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + payload)
icmp.sendto(struct.pack("!BBHHH", 8, 0, csum, 0x1234, 1) + payload, (HOST, 0))
pong = False
deadline = time.time() + TIMEOUT_S
while time.time() < deadline:
    try:
        data, addr = icmp.recvfrom(2048)
    except socket.timeout:
        break
    ihl = (data[0] & 0x0F) * 4
    if addr[0] == HOST and data[ihl] == 0 and data[ihl + 8:] == payload:
        pong = True
        break
if not pong:
    fail("no ICMP echo reply from %s in %.0f s" % (HOST, TIMEOUT_S))

# 6. TCP to the same port is the kernel's
if MODE == "server":
    tcp_exchange(b"version\r\n", b"VERSION ")
else:
    t = socket.create_connection((HOST, TCP_PORT), timeout=TIMEOUT_S)
    t.sendall(b"ping\n")
    if t.recv(64) != b"pong\n":
        fail("TCP through the kernel")
    t.close()

print("ok gets=%d gets_per_s=%.0f multi_datagrams=%d many_gets=%d many_datagrams=%d raw_frames=%d" % (GETS, GETS / elapsed, multi_datagrams, many_gets, many_datagrams, raw_frames))
