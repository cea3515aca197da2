#!/usr/bin/env python3
"""Summarises scripts/bench-tcp results: medians per server and the ratio petrel/memcached.

Input: a TSV file with lines `NAME<TAB>ROUND<TAB>key=value key=value ...` as written by
scripts/bench-tcp (NAME is petrel, memcached, memcaslap-petrel or memcaslap-memcached).
"""
import statistics
import sys


def parse(path):
    """Rows grouped by (name, pipeline depth); memcaslap rows have depth 0."""
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            name, _round, fields = line.split("\t", 2)
            values = {}
            for kv in fields.split():
                k, _, v = kv.partition("=")
                try:
                    values[k] = float(v)
                except ValueError:
                    pass
            rows.setdefault((name, int(values.get("pipeline", 0))), []).append(values)
    return rows


def median(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")


def main():
    rows = parse(sys.argv[1])
    cols = [
        ("ops_per_sec", "ops/s", "{:>10.0f}"),
        ("p50_us", "p50 us", "{:>8.1f}"),
        ("p99_us", "p99 us", "{:>8.1f}"),
        ("p999_us", "p99.9 us", "{:>9.1f}"),
        ("server_cpu_pct", "srv CPU%", "{:>8.0f}"),
    ]
    depths = sorted({d for (n, d) in rows if n in ("petrel", "memcached")})
    for depth in depths:
        p, m = rows.get(("petrel", depth)), rows.get(("memcached", depth))
        print()
        print("petrel-load, pipeline depth %d, median of %d runs each:" % (depth, len(p or m or [])))
        print("  {:<10}".format("server") + "".join(" {:>10}".format(h) for _, h, _ in cols))
        for name, rs in (("petrel", p), ("memcached", m)):
            if rs:
                cells = "".join(" " + fmt.format(median(rs, k)).rjust(10) for k, _, fmt in cols)
                print("  {:<10}".format(name) + cells)
        if p and m:
            print("  ratio petrel/memcached: throughput %.2fx, p50 %.2fx, p99 %.2fx, p99.9 %.2fx" % (
                median(p, "ops_per_sec") / median(m, "ops_per_sec"),
                median(p, "p50_us") / median(m, "p50_us"),
                median(p, "p99_us") / median(m, "p99_us"),
                median(p, "p999_us") / median(m, "p999_us"),
            ))
            print("  runs (ops/s): petrel %s; memcached %s" % (
                ", ".join("%.0f" % r["ops_per_sec"] for r in p),
                ", ".join("%.0f" % r["ops_per_sec"] for r in m),
            ))
    mp, mm = rows.get(("memcaslap-petrel", 0)), rows.get(("memcaslap-memcached", 0))
    if mp and mm:
        a, b = median(mp, "ops_per_sec"), median(mm, "ops_per_sec")
        print("memcaslap (independent generator): petrel %.0f ops/s, memcached %.0f ops/s, ratio %.2fx" % (
            a, b, a / b if b else float("nan")))


if __name__ == "__main__":
    main()
