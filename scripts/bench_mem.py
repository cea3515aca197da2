#!/usr/bin/env python3
"""Memory efficiency of a memcached-protocol server (used by scripts/bench).

Fills the server over TCP with `set`s of deterministic keys and values until it starts to
evict (its `stats` report `evictions` > 0, or `curr_items` falls behind the number of
successful stores, which also catches items dropped without an eviction counter), then scans
every key it stored with multi-key `get`s and counts the hits. Every value read back is
checked against what was stored (length and content); a wrong value is a failure (exit 1).

Workloads:
  small  16-byte keys, 32-byte values
  mix    32-byte keys, values 64 B - 4 KiB skewed small: a size class is drawn with weights
         64 B 35 %, 128 B 25 %, 256 B 17 %, 512 B 11 %, 1 KiB 7 %, 2 KiB 3 %, 4 KiB 2 %, then a
         size uniformly within [class, 2 x class) capped at 4096 (mean about 510 B)

The last line printed is machine-readable:
  RESULT stored=.. items_before_eviction=.. curr_items=.. evictions=.. hits=.. hit_value_bytes=..
         stored_value_bytes=.. set_failures=.. keys_sent=.. hash_full_evictions=.. fill_secs=.. scan_secs=..
(hash_full_evictions: Petrel's `store_hash_full_evictions` stat, items dropped because their hash
bucket chain was full, which its `evictions` does not count; 0 for memcached)
The fill is bounded (--max-bytes of values sent, --timeout seconds); hitting a bound without
any eviction is reported (evictions=0) and is not an error.
"""
import argparse
import random
import socket
import sys
import time

SIZE_CLASSES = [(64, 35), (128, 25), (256, 17), (512, 11), (1024, 7), (2048, 3), (4096, 2)]
MAX_VALUE = 4096


class Conn:
    """A blocking memcache text-protocol connection with a read buffer."""

    def __init__(self, addr, timeout):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        if self.pos > (1 << 20):
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                out = bytes(self.buf[self.pos : i])
                self.pos = i + 2
                return out
            self._fill()

    def exact(self, n):
        while len(self.buf) - self.pos < n:
            self._fill()
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def stats(self):
        self.send(b"stats\r\n")
        out = {}
        while True:
            ln = self.line()
            if ln == b"END":
                return out
            parts = ln.split()
            if len(parts) == 3 and parts[0] == b"STAT":
                out[parts[1].decode()] = parts[2].decode()


def key_of(i, key_size):
    return (b"k%0*d" % (key_size - 1, i))[:key_size]


def value_of(i, size):
    """Deterministic content: a per-key byte pattern, so a foreign value is detected."""
    pat = b"%08x|" % (i * 2654435761 % (1 << 32))
    return (pat * (size // len(pat) + 1))[:size]


def sizes(workload, n, seed):
    if workload == "small":
        return None
    rng = random.Random(seed)
    classes = [c for c, _ in SIZE_CLASSES]
    weights = [w for _, w in SIZE_CLASSES]
    out = []
    for _ in range(n):
        c = rng.choices(classes, weights)[0]
        out.append(min(MAX_VALUE, rng.randrange(c, 2 * c)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="host:port (TCP)")
    ap.add_argument("--workload", choices=["small", "mix"], required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-bytes", type=int, default=512 << 20, help="stop after this many value bytes")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds for the fill and for the scan")
    ap.add_argument("--batch", type=int, default=0, help="sets per round trip (default by workload)")
    args = ap.parse_args()

    key_size = 16 if args.workload == "small" else 32
    value_fixed = 32
    batch = args.batch or (1000 if args.workload == "small" else 200)
    # enough sizes for the byte bound at the smallest size
    max_items = args.max_bytes // (value_fixed if args.workload == "small" else 64) + batch
    if args.workload == "mix":
        max_items = min(max_items, 4_000_000)
    size_list = sizes(args.workload, max_items, args.seed)

    def size(i):
        return value_fixed if size_list is None else size_list[i]

    c = Conn(args.server, 30.0)
    t0 = time.monotonic()
    n = 0  # keys sent
    ok = 0  # STORED replies
    failures = 0
    sent_bytes = 0
    stored_bytes = 0
    items_before = 0
    evictions = 0
    curr_items = 0
    hash_full = 0
    while n < max_items and sent_bytes < args.max_bytes and time.monotonic() - t0 < args.timeout:
        m = min(batch, max_items - n)
        parts = []
        for i in range(n, n + m):
            s = size(i)
            parts.append(b"set %s 0 0 %d\r\n%s\r\n" % (key_of(i, key_size), s, value_of(i, s)))
            sent_bytes += s
        c.send(b"".join(parts))
        for i in range(n, n + m):
            r = c.line()
            if r == b"STORED":
                ok += 1
                stored_bytes += size(i)
            else:
                failures += 1
        n += m
        st = c.stats()
        evictions = int(st.get("evictions", "0"))
        curr_items = int(st.get("curr_items", "0"))
        # Petrel only: items dropped because their hash bucket chain was full (not in `evictions`)
        hash_full = int(st.get("store_hash_full_evictions", "0"))
        if evictions > 0 or curr_items < ok:
            break
        items_before = curr_items
    fill_secs = time.monotonic() - t0

    # Full scan: every key sent, 100 per get.
    t1 = time.monotonic()
    hits = 0
    hit_bytes = 0
    bad = 0
    for start in range(0, n, 100):
        if time.monotonic() - t1 > args.timeout:
            print("bench_mem: scan timed out", file=sys.stderr)
            return 2
        ids = range(start, min(n, start + 100))
        c.send(b"get " + b" ".join(key_of(i, key_size) for i in ids) + b"\r\n")
        by_key = {key_of(i, key_size): i for i in ids}
        while True:
            ln = c.line()
            if ln == b"END":
                break
            parts = ln.split()
            if len(parts) != 4 or parts[0] != b"VALUE":
                print("bench_mem: unexpected reply line %r" % ln[:80], file=sys.stderr)
                return 1
            length = int(parts[3])
            data = c.exact(length + 2)[:-2]
            i = by_key.get(parts[1])
            if i is None or data != value_of(i, size(i)):
                bad += 1
                continue
            hits += 1
            hit_bytes += length
    scan_secs = time.monotonic() - t1
    if bad:
        print("bench_mem: %d values read back were wrong" % bad, file=sys.stderr)
        return 1
    print(
        "RESULT stored=%d items_before_eviction=%d curr_items=%d evictions=%d hits=%d hit_value_bytes=%d "
        "stored_value_bytes=%d set_failures=%d keys_sent=%d hash_full_evictions=%d fill_secs=%.2f scan_secs=%.2f"
        % (ok, items_before, curr_items, evictions, hits, hit_bytes, stored_bytes, failures, n, hash_full,
           fill_secs, scan_secs)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
