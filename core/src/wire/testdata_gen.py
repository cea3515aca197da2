#!/usr/bin/env python3
"""Generate core/src/wire/testdata.rs: real packet bytes for the wire tests.

The frames and their checksums are computed here, in Python, independently of
the Rust code (a plain 16-bit RFC 1071 loop), so the Rust tests compare
against a second implementation. Run from the repository root:

    python3 core/src/wire/testdata_gen.py > core/src/wire/testdata.rs
"""
import struct

MAC_CLIENT = bytes([0x02, 0, 0, 0, 0, 0x01])
MAC_SERVER = bytes([0x02, 0, 0, 0, 0, 0x02])
V4_CLIENT = bytes([198, 18, 0, 1])
V4_SERVER = bytes([198, 18, 0, 2])
V6_CLIENT = bytes.fromhex("20010db8000000000000000000000001")
V6_SERVER = bytes.fromhex("20010db8000000000000000000000002")
CLIENT_PORT = 40000
SERVER_PORT = 11211
REQUEST_ID = 0x0102


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def udp(src_port, dst_port, payload, pseudo):
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", src_port, dst_port, length, 0)
    c = (~csum(pseudo(length) + hdr + payload)) & 0xFFFF
    if c == 0:
        c = 0xFFFF
    return struct.pack("!HHHH", src_port, dst_port, length, c) + payload, c


def ipv4(src, dst, ident, ttl, payload_fn):
    def pseudo(length):
        return src + dst + struct.pack("!BBH", 0, 17, length)

    seg, ucsum = payload_fn(pseudo)
    total = 20 + len(seg)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000, ttl, 17, 0, src, dst)
    c = (~csum(hdr)) & 0xFFFF
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + seg, c, ucsum


def ipv6(src, dst, flow, hop, payload_fn):
    def pseudo(length):
        return src + dst + struct.pack("!IxxxB", length, 17)

    seg, ucsum = payload_fn(pseudo)
    word = (6 << 28) | flow
    hdr = struct.pack("!IHBB16s16s", word, len(seg), 17, hop, src, dst)
    return hdr + seg, ucsum


def eth(dst, src, ethertype, payload, pad=True):
    f = dst + src + struct.pack("!H", ethertype) + payload
    if pad and len(f) < 60:
        f += b"\0" * (60 - len(f))
    return f


def mc(req_id, seq, total, payload):
    return struct.pack("!HHHH", req_id, seq, total, 0) + payload


def pattern(n):
    return bytes((i * 7 + 3) % 256 for i in range(n))


def rust(name, data, doc):
    out = [f"/// {doc}", f"pub static {name}: [u8; {len(data)}] = ["]
    for i in range(0, len(data), 16):
        out.append("    " + " ".join(f"0x{b:02x}," for b in data[i : i + 16]))
    out.append("];")
    return "\n".join(out)


def main():
    items = []
    consts = []
    req = mc(REQUEST_ID, 0, 1, b"get foo\r\n")

    # IPv4 request, no Ethernet padding (59 bytes: the tests add padding).
    ip, ipc, uc = ipv4(V4_CLIENT, V4_SERVER, 0x1234, 64,
                       lambda ph: udp(CLIENT_PORT, SERVER_PORT, req, ph))
    items.append(rust("REQ_V4_GET_FOO", eth(MAC_SERVER, MAC_CLIENT, 0x0800, ip, pad=False),
                      "198.18.0.1:40000 -> 198.18.0.2:11211, id 0x0102, `get foo\\r\\n` (unpadded)."))
    consts.append(f"pub const REQ_V4_GET_FOO_IP_CSUM: u16 = 0x{ipc:04x};")
    consts.append(f"pub const REQ_V4_GET_FOO_UDP_CSUM: u16 = 0x{uc:04x};")

    ip6, uc6 = ipv6(V6_CLIENT, V6_SERVER, 0x12345, 64,
                    lambda ph: udp(CLIENT_PORT, SERVER_PORT, req, ph))
    items.append(rust("REQ_V6_GET_FOO", eth(MAC_SERVER, MAC_CLIENT, 0x86DD, ip6),
                      "[2001:db8::1]:40000 -> [2001:db8::2]:11211, flow 0x12345, same request."))
    consts.append(f"pub const REQ_V6_GET_FOO_UDP_CSUM: u16 = 0x{uc6:04x};")

    # Replies with payload END\r\n, seq 0 of 1: what the reply builders must emit
    # (identification 0, DF, TTL/hop limit 64, DSCP/ECN 0, flow label 0,
    # padded to the 60-byte Ethernet minimum).
    rep = mc(REQUEST_ID, 0, 1, b"END\r\n")
    rip, _, _ = ipv4(V4_SERVER, V4_CLIENT, 0, 64, lambda ph: udp(SERVER_PORT, CLIENT_PORT, rep, ph))
    items.append(rust("REPLY_V4_END", eth(MAC_CLIENT, MAC_SERVER, 0x0800, rip),
                              "Reply to REQ_V4_GET_FOO carrying `END\\r\\n`, seq 0 of 1, padded to 60."))
    rip6, _ = ipv6(V6_SERVER, V6_CLIENT, 0, 64, lambda ph: udp(SERVER_PORT, CLIENT_PORT, rep, ph))
    items.append(rust("REPLY_V6_END", eth(MAC_CLIENT, MAC_SERVER, 0x86DD, rip6),
                      "Reply to REQ_V6_GET_FOO carrying `END\\r\\n`, seq 0 of 1."))

    # Datagram 1 of 3 of a long IPv6 reply: a full 1392-byte payload whose
    # byte i is (i*7+3) mod 256; only the 70 header bytes are stored.
    big = mc(REQUEST_ID, 1, 3, pattern(1392))
    rb6, _ = ipv6(V6_SERVER, V6_CLIENT, 0, 64, lambda ph: udp(SERVER_PORT, CLIENT_PORT, big, ph))
    items.append(rust("REPLY_V6_SEQ1_OF3_HEADERS", eth(MAC_CLIENT, MAC_SERVER, 0x86DD, rb6)[:70],
                      "Headers of datagram 1 of 3, IPv6, payload byte i = (i*7+3) % 256, 1392 bytes."))
    rb4, _, _ = ipv4(V4_SERVER, V4_CLIENT, 0, 64, lambda ph: udp(SERVER_PORT, CLIENT_PORT, big, ph))
    items.append(rust("REPLY_V4_SEQ1_OF3_HEADERS", eth(MAC_CLIENT, MAC_SERVER, 0x0800, rb4)[:50],
                      "Headers of datagram 1 of 3, IPv4, same payload."))

    print("//! Packet bytes for the wire tests, generated by `testdata_gen.py`")
    print("//! (checksums computed there, independently of the Rust code). Do not edit.")
    print("#![allow(dead_code)]")
    print()
    for c in consts:
        print("/// Checksum field computed by the generator.")
        print(c)
    for it in items:
        print()
        print(it)


if __name__ == "__main__":
    main()
