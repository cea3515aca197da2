#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into seeds/<target>/:
real memcache requests (classic and meta, with data blocks, pipelined) and
real Ethernet/IPv4/IPv6/UDP/memcache-UDP request frames with correct
checksums. Run from core/fuzz: ./make_seeds.py (deterministic output)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

REQUESTS = [
    b"get k\r\n",
    b"gets a b c\r\n",
    b"set k 5 0 3\r\nabc\r\n",
    b"set k 0 0 3 noreply\r\nabc\r\nget k\r\n",
    b"add k 0 60 1\r\nx\r\nreplace k 1 0 2\r\nyy\r\n",
    b"append k 0 0 2\r\nzz\r\nprepend k 0 0 2\r\naa\r\n",
    b"gets k\r\ncas k 0 0 1 1\r\nq\r\n",
    b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\n",
    b"touch k 10\r\ngat 0 k\r\ngats 100 k j\r\n",
    b"delete k\r\ndelete k 0\r\ndelete k noreply\r\n",
    b"flush_all\r\nflush_all 10 noreply\r\nversion\r\nverbosity 1\r\n",
    b"stats\r\nstats settings\r\nstats detail dump\r\nstats slabs\r\n",
    b"ms k 3 T60 F5 c\r\nabc\r\nmg k v f t c k s O123 q\r\nmn\r\n",
    b"ms k 2 MA\r\nzz\r\nms k 2 MP I\r\nyy\r\nmd k q I T30\r\nmg k v\r\n",
    b"ma n N60 J13 D2 MI v\r\nma n MD v\r\nmg n v h l t\r\nme n\r\n",
    b"mg YWJj b v\r\nms YWJj 1 b\r\nx\r\nmd YWJj b\r\n",
    b"set big 0 0 9000\r\n" + b"x" * 9000 + b"\r\nget big big big\r\n",
    b"set k 0 0 3\r\nabcd\r\n",
    b"get " + b"k" * 251 + b"\r\n",
    b"GET / HTTP/1.1\r\n",
    b"x" * 2100,
    b"quit\r\n",
    b"get a\r\n" * 50,
]


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame_v4(payload, sport=40000, dport=11211, rid=1):
    mc = struct.pack("!HHHH", rid, 0, 1, 0) + payload
    udp_len = 8 + len(mc)
    src, dst = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + mc
    c = csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = bytes.fromhex("020000000001" "020000000002") + b"\x08\x00"
    return eth + ip + udp


def frame_v6(payload, sport=40000, dport=11211, rid=2):
    mc = struct.pack("!HHHH", rid, 0, 1, 0) + payload
    udp_len = 8 + len(mc)
    src = bytes.fromhex("20010db8000000000000000000000002")
    dst = bytes.fromhex("20010db8000000000000000000000001")
    pseudo = src + dst + struct.pack("!IxxxB", udp_len, 17)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + mc
    c = csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!IHBB16s16s", 0x60000000, udp_len, 17, 64, src, dst)
    eth = bytes.fromhex("020000000001" "020000000002") + b"\x86\xdd"
    return eth + ip + udp


def main():
    for i, r in enumerate(REQUESTS):
        write("parser", "req%02d" % i, b"\x00" + r)
        write("parser", "req%02d-default" % i, b"\x01" + r)
        # engine: transport (even TCP / odd UDP), output size, chunk size
        write("engine", "tcp%02d" % i, bytes([0, 0, 255]) + r)
        write("engine", "tcp%02d-split" % i, bytes([0, 40, 6]) + r)
        write("engine", "udp%02d" % i, bytes([1, 46, 255]) + r)
    frames = [
        frame_v4(b"get k\r\n"),
        frame_v4(b"gets a b c\r\n", rid=7),
        frame_v4(b"mg k v f t\r\n"),
        frame_v4(b"set k 0 0 3\r\nabc\r\n"),
        frame_v6(b"get k\r\n"),
        frame_v6(b"stats\r\n"),
    ]
    # a few broken ones: fragment flag, options, bad checksum, multi-datagram
    f = bytearray(frame_v4(b"get k\r\n"))
    f[20] |= 0x20
    frames.append(bytes(f))
    f = bytearray(frame_v4(b"get k\r\n"))
    f[14] = 0x46
    frames.append(bytes(f))
    f = bytearray(frame_v4(b"get k\r\n"))
    f[-1] ^= 0xFF
    frames.append(bytes(f))
    f = bytearray(frame_v4(b"get k\r\n"))
    f[46] = 2
    frames.append(bytes(f))
    for i, fr in enumerate(frames):
        for opts in (0, 1, 3, 7):
            write("wire", "frame%02d-opts%d" % (i, opts), bytes([opts]) + fr)
        for n, reply_len in enumerate((5, 1392, 1393, 4000)):
            write("reply", "frame%02d-%d" % (i, n), struct.pack("<H", reply_len) + b"\x00" + fr)
    # guard: rate/burst/amp/seed/allow/time, then 6-byte operations
    write("guard", "default", bytes([100, 0, 10, 10, 1, 0, 0, 0]) + bytes([0x11, 0, 20, 0, 0, 1]) * 40)
    write("guard", "none", bytes([20, 0, 5, 2, 9, 1, 3, 0]) + bytes([0x21, 0, 15, 0, 1, 2, 0xF3, 7, 200, 0, 2, 0]) * 30)


if __name__ == "__main__":
    main()
