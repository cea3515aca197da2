#!/usr/bin/env python3
"""Benchmark summaries and the Markdown/PNG report.

Three uses:

  bench_report.py RESULTS.tsv
      Summary of a scripts/bench-tcp run (lines `NAME<TAB>ROUND<TAB>key=value ...`, NAME
      petrel, memcached, memcaslap-petrel or memcaslap-memcached): medians per server and the
      ratio petrel/memcached, printed to stdout.

  bench_report.py criterion CRITERION_DIR ROUND LOG START_EPOCH
      Turns the criterion results of one `cargo bench -p petrel-core --bench store` run (the
      `new/sample.json` of every function measured since START_EPOCH) and the memory report in
      its LOG into scripts/bench result lines on stdout:
        core<TAB>FUNCTION<TAB>ROUND<TAB>group=.. ns_per_op=.. ops_per_sec=.. samples_ns=a,b,..
        corememory<TAB>STORE<TAB>ROUND<TAB>items=.. overhead_segment_b=.. overhead_total_b=..

  bench_report.py report --raw DIR --out REPORT.md
      The report of a scripts/bench run: reads DIR/results.tsv (lines
      `SECTION<TAB>SERVER<TAB>ROUND<TAB>key=value ...`), DIR/machine.tsv and DIR/xdp.txt, writes
      REPORT.md and PNG plots next to it (matplotlib; without it the report says so).
"""
import glob
import json
import math
import os
import re
import statistics
import sys


# --------------------------------------------------------------------------------------------
# scripts/bench-tcp summary (unchanged interface)


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


def tcp_summary(path):
    rows = parse(path)
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


# --------------------------------------------------------------------------------------------
# criterion results -> result lines

STORE_GROUP_PREFIXES = ("get_hit_", "get_miss_", "mix_", "set_")
MEMORY_LINE = re.compile(
    r"^memory: (\S+)\s+(\d+) items .*?overhead ([0-9.]+) B/item \(segment memory only\), ([0-9.]+) B/item"
)


def criterion_lines(crit_dir, rnd, log, start):
    out = []
    for bench in sorted(glob.glob(os.path.join(crit_dir, "*", "*", "new", "benchmark.json"))):
        new = os.path.dirname(bench)
        sample = os.path.join(new, "sample.json")
        if not os.path.exists(sample) or os.path.getmtime(sample) < start:
            continue
        with open(bench) as f:
            meta = json.load(f)
        group = meta.get("group_id", "")
        if not group.startswith(STORE_GROUP_PREFIXES):
            continue
        elems = (meta.get("throughput") or {}).get("Elements") or 1
        with open(sample) as f:
            s = json.load(f)
        per_op = [t / i / elems for i, t in zip(s["iters"], s["times"]) if i > 0]
        if not per_op:
            continue
        ns = statistics.median(per_op)
        out.append("core\t%s\t%s\tgroup=%s ns_per_op=%.3f ops_per_sec=%.0f samples_ns=%s" % (
            meta["function_id"], rnd, group, ns, 1e9 / ns, ",".join("%.2f" % v for v in per_op)))
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("mix hit ratio:"):
                out.append("corenote\t-\t%s\ttext=%s" % (rnd, line.strip().replace(" ", "_")))
            m = MEMORY_LINE.match(line)
            if m:
                out.append("corememory\t%s\t%s\titems=%s overhead_segment_b=%s overhead_total_b=%s" % (
                    m.group(1), rnd, m.group(2), m.group(3), m.group(4)))
    if not any(l.startswith("core\t") for l in out):
        sys.exit("bench_report: no criterion results newer than the run start in %s" % crit_dir)
    print("\n".join(out))


# --------------------------------------------------------------------------------------------
# the report

PEER = {"tcp": "memcached", "udp": "memcached", "tls": "memcached", "mem": "memcached"}
# The TLS section's targets: Petrel's TLS throughput at least this many times memcached's (with a
# p99 no higher), and Petrel's TLS throughput at least this share of its plaintext throughput.
TLS_TARGET_VS_PEER = 1.3
TLS_TARGET_VS_PLAIN = 0.5
CELL_KEYS = ("threads", "get_ratio", "value_size", "pipeline")
# A result line of scripts/bench-udp: `NAME round=N key=value ...`.
XDP_LINE = re.compile(r"^(\S+) round=(\d+) (.*)$")
# Differences smaller than this fraction are ties, not losses.
TIE = 0.03
PCTS = [("p50_us", 50.0), ("p90_us", 90.0), ("p99_us", 99.0), ("p999_us", 99.9)]


def read_results(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            section, server, rnd, fields = line.split("\t", 3)
            vals = {}
            for kv in fields.split():
                k, _, v = kv.partition("=")
                try:
                    vals[k] = float(v)
                except ValueError:
                    vals[k] = v
            rows.append((section, server, int(rnd), vals))
    return rows


def read_machine(path):
    m = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("\t")
                # `rerun` lines (scripts/bench --only after a full run) accumulate.
                m[k] = m[k] + "; " + v if k == "rerun" and k in m else v
    return m


def med(vals):
    return statistics.median(vals) if vals else float("nan")


def spread(vals, fmt):
    if not vals:
        return "-"
    return (fmt + "–" + fmt) % (min(vals), max(vals))


def ratio(a, b):
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def fmt_ratio(r):
    return "-" if math.isnan(r) else "%.2f×" % r


def cell_label(v):
    mix = "%d/%d" % (round(float(v["get_ratio"]) * 100), 100 - round(float(v["get_ratio"]) * 100))
    size = "%d B" % v["value_size"] if v["value_size"] < 1024 else "%g KiB" % (v["value_size"] / 1024)
    return "-t %d, %s, %s, depth %d" % (v["threads"], mix, size, v["pipeline"])


def cell_key(v):
    return tuple(v[k] for k in CELL_KEYS)


LAT_KEYS = ("rate", "ops_per_sec", "p50_us", "p99_us", "p999_us", "max_us", "lost", "errors", "requests",
            "store_lock_waits")


def lat_agg(runs):
    """One open-loop cell of one server over its rounds: the median of every figure, the figures of
    every round in `all`, the number of rounds in `n`."""
    a = {"all": {}, "n": len(runs)}
    for k in LAT_KEYS:
        vals = [r[k] for r in runs if isinstance(r.get(k), float)]
        a["all"][k] = vals
        a[k] = med(vals)
    late = []
    for r in runs:
        n = r.get("requests", 0) + r.get("lost", 0)
        late.append(100.0 * r.get("late", 0) / n if n else float("nan"))
    a["all"]["late_pct"] = [x for x in late if not math.isnan(x)]
    a["late_pct"] = med(a["all"]["late_pct"])
    return a


def with_range(a, key, fmt, unit=""):
    """`median unit (min–max)` of the rounds of an aggregate, or the value alone where the rounds
    do not differ (or there is one)."""
    vals = a["all"].get(key) or []
    if not vals:
        return "-"
    text = fmt % a[key] + unit
    lo, hi = fmt % min(vals), fmt % max(vals)
    if lo != hi:
        text += " (%s–%s)" % (lo, hi)
    return text


def net_cells(rows, section):
    """{cell: {server: [runs]}} in a stable order."""
    cells = {}
    for sec, server, _rnd, v in rows:
        if sec == section:
            cells.setdefault(cell_key(v), {}).setdefault(server, []).append(v)
    return dict(sorted(cells.items()))


class Report:
    def __init__(self, raw, out):
        self.raw = raw
        self.out = out
        self.dir = os.path.dirname(os.path.abspath(out))
        os.makedirs(self.dir, exist_ok=True)
        self.rows = read_results(os.path.join(raw, "results.tsv"))
        self.machine = read_machine(os.path.join(raw, "machine.tsv"))
        self.lines = []
        self.losses = {}
        self.compared = {}
        self.tcp_summary = None
        self.lat_summary = {}
        self.lat_rounds = 0
        self.plots = {}
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            self.plt = plt
        except ImportError:
            self.plt = None

    def w(self, s=""):
        self.lines.append(s)

    def loss(self, category, text, clear=True):
        """A comparison Petrel loses; `clear` is False when the runs' spreads overlap."""
        self.losses.setdefault(category, []).append(text + ("" if clear else " (within the run-to-run spread)"))

    def save(self, fig, name):
        path = os.path.join(self.dir, name)
        fig.savefig(path, dpi=80)
        self.plt.close(fig)
        self.plots[name] = path
        return name

    # --- sections ---------------------------------------------------------------------------

    def header(self):
        m = self.machine
        self.w("# Petrel benchmark report")
        self.w()
        self.w("Generated by `scripts/bench%s` on %s (%s s). Every number below was measured in that run "
               "on the machine described here; rerun the script to get yours." % (
                   " --quick" if m.get("mode") == "quick" else (" --tiny" if m.get("mode") == "tiny" else ""),
                   m.get("date", "?"), m.get("duration_s", "?")))
        self.w()
        if m.get("rerun"):
            self.w("Sections measured again later (`scripts/bench --only`; the others are from the run above): "
                   "%s." % m["rerun"].replace("|", "/"))
            self.w()
        self.w("| machine | |")
        self.w("| --- | --- |")
        for k, label in [("cpu", "CPU"), ("cores", "cores"), ("memory", "memory"), ("kernel", "kernel"),
                         ("os", "OS"), ("petrel", "Petrel"), ("memcached", "memcached"), ("rustc", "rustc"),
                         ("segcache", "segcache"), ("hashbrown", "hashbrown"), ("pinning", "pinning"),
                         ("load_before", "load average before / after")]:
            val = m.get(k, "?")
            if k == "load_before":
                val = "%s / %s" % (m.get("load_before", "?"), m.get("load_after", "?"))
            self.w("| %s | %s |" % (label, val.replace("|", "/")))
        self.w()
        self.w("Method: each network cell is measured in %s alternating rounds (the server order flips "
               "every round), %s s per cell after a warm-up, by the same client (`petrel-load`, closed loop, "
               "%s connections, one client thread, HDR histogram) against a fresh server per round "
               "(`-m 64`, keys preloaded). Tables quote the median of the rounds and the spread (min–max). "
               "Server CPU time per request is the server's user+system time over the measured interval "
               "(`/proc/PID/stat`) divided by the requests completed; RSS is the server's VmRSS after the "
               "cell. The machine has 2 cores: the server is pinned to one and the client to the other, so "
               "a `-t 2` server runs both workers on one core, and the load generator (one core) can be "
               "the bottleneck at depth 1. Other work on the machine during the run shows up as spread."
               % (m.get("runs", "?"), m.get("cell_secs", "?"), m.get("connections", "?")))
        self.w()

    def core(self):
        core = [r for r in self.rows if r[0] == "core"]
        err = os.path.join(self.raw, "core-error.txt")
        if os.path.exists(err):
            with open(err, errors="replace") as f:
                text = f.read().strip()
            self.w("## Core store, in process (criterion): failed")
            self.w()
            self.w("The store benches did not complete in this run%s:" % (
                "; the table below holds the runs that did" if core else ""))
            self.w()
            self.w("```text")
            self.w(text[-3000:])
            self.w("```")
            self.w()
        if not core:
            return
        self.w("## Core store, in process (criterion)")
        self.w()
        self.w("`core/benches/store.rs`: Petrel's store vs Pelikan's `segcache` crate (same item memory, "
               "segment size, hash table size and merge eviction) vs a `hashbrown::HashMap<Vec<u8>, Vec<u8>>` "
               "(`hashbrown_locked`: the same map behind a lock, as a shared cache would need). "
               "`petrel_prefetch` is Petrel's store driven by a caller that knows its next keys: while key i "
               "is looked up, the item of key i+8 and the hash bucket of key i+16 are hinted "
               "(`Store::prefetch_item`, `Store::prefetch_bucket`; the engine does not do this). The ratio "
               "column compares plain "
               "`petrel` with each peer. Time per "
               "operation: median over criterion's samples (%s criterion run(s)); spread: the middle 80 %% "
               "of the samples (p10–p90) over all runs." % self.machine.get("core_runs", "?"))
        self.w()
        groups = {}
        for _s, fn, _r, v in core:
            groups.setdefault(v["group"], {}).setdefault(fn, []).append(v)
        fns_order = ["petrel", "petrel_prefetch", "segcache", "hashbrown", "hashbrown_locked"]
        self.w("| benchmark | store | ns/op (median) | p10–p90 ns/op | Mops/s | Petrel/this (speed) |")
        self.w("| --- | --- | ---: | ---: | ---: | ---: |")
        plot = []
        for g in sorted(groups):
            fns = groups[g]
            stats_ = {}
            for fn, runs in fns.items():
                samples = []
                for r in runs:
                    samples += [float(x) for x in str(r["samples_ns"]).split(",") if x]
                samples.sort()
                p10 = samples[int(0.1 * (len(samples) - 1))]
                p90 = samples[int(0.9 * (len(samples) - 1))]
                stats_[fn] = (med([r["ns_per_op"] for r in runs]), p10, p90)
            pns = stats_.get("petrel", (float("nan"),))[0]
            for fn in sorted(stats_, key=lambda f: fns_order.index(f) if f in fns_order else 9):
                ns, p10, p90 = stats_[fn]
                ours = fn.startswith("petrel")
                rel = "" if ours else fmt_ratio(ratio(ns, pns))
                self.w("| %s | %s | %.1f | %.1f–%.1f | %.2f | %s |" % (g, fn, ns, p10, p90, 1e3 / ns, rel))
                if not ours and not math.isnan(pns) and ns < pns:
                    pf = stats_.get("petrel_prefetch")
                    also = ("; with prefetch hints %.1f ns/op (%.2f×)" % (pf[0], ns / pf[0])) if pf else ""
                    self.loss("Core store, in process (Petrel slower)",
                              "`%s`: %s %.1f vs Petrel %.1f ns/op (Petrel at %.2f× its speed%s)" % (
                                  g, fn, ns, pns, ns / pns, also), clear=stats_["petrel"][1] > p90)
            plot.append((g, stats_))
        self.w()
        for _s, _fn, _r, v in [r for r in self.rows if r[0] == "corenote"]:
            self.w("%s (every key fits in every store, so a get should hit; misses would be cheaper "
                   "than hits)." % str(v["text"]).replace("_", " ").rstrip("."))
            self.w()
        mem = [r for r in self.rows if r[0] == "corememory"]
        if mem:
            self.w("In-process memory report (16 B keys + 32 B values into 64 MiB of segments until the first "
                   "eviction; FIFO eviction):")
            self.w()
            self.w("| store | items resident | overhead B/item (segments only) | overhead B/item (with hash table) |")
            self.w("| --- | ---: | ---: | ---: |")
            by = {}
            for _s, store, _r, v in mem:
                by.setdefault(store, []).append(v)
            for store, vs in by.items():
                self.w("| %s | %d | %.2f | %.2f |" % (store, med([v["items"] for v in vs]),
                                                       med([v["overhead_segment_b"] for v in vs]),
                                                       med([v["overhead_total_b"] for v in vs])))
            self.w()
        if self.plt and plot:
            plt = self.plt
            fig, ax = plt.subplots(figsize=(11, 4.2))
            fns = [f for f in fns_order if any(f in s for _g, s in plot)]
            width = 0.8 / max(1, len(fns))
            for i, fn in enumerate(fns):
                xs, ys, lo, hi = [], [], [], []
                for j, (_g, s) in enumerate(plot):
                    if fn in s:
                        ns, p10, p90 = s[fn]
                        xs.append(j + (i - (len(fns) - 1) / 2) * width)
                        ys.append(1e3 / ns)
                        lo.append(1e3 / ns - 1e3 / p90)
                        hi.append(1e3 / p10 - 1e3 / ns)
                ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=fn)
            ax.set_xticks(range(len(plot)))
            ax.set_xticklabels([g for g, _ in plot], rotation=15, ha="right", fontsize=8)
            ax.set_ylabel("million operations / s (one core)")
            ax.set_title("Store operations in process (error bars: p10–p90 of samples)")
            ax.legend(fontsize=8)
            fig.tight_layout()
            self.w("![core store throughput](%s)" % self.save(fig, "core-store.png"))
            self.w()

    def network(self, section, title, intro):
        cells = net_cells(self.rows, section)
        if not cells:
            return None
        peer = PEER[section]
        self.w("## %s" % title)
        self.w()
        self.w(intro)
        self.w()
        self.w("| workload | server | ops/s (median) | spread ops/s | p50 µs | p99 µs | p99.9 µs | max µs | "
               "CPU µs/req | RSS MiB | Petrel/peer ops/s | p99 | CPU/req |")
        self.w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        summary = []
        for key, servers in cells.items():
            label = cell_label(servers[next(iter(servers))][0])
            agg = {}
            for server, runs in servers.items():
                keys = ("ops_per_sec", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
                        "server_cpu_us_per_req", "rss_kb", "errors", "misses", "lost", "other_cpu_pct",
                        "steal_pct", "tries")
                a = {k: med([r[k] for r in runs if k in r]) for k in keys}
                a["all"] = {k: [r[k] for r in runs if k in r] for k in keys}
                a["runs"] = a["all"]["ops_per_sec"]
                agg[server] = a
            p, m = agg.get("petrel"), agg.get(peer)
            for server in ("petrel", peer):
                a = agg.get(server)
                if not a:
                    continue
                rs = ["-", "-", "-"]
                if server == "petrel" and m:
                    rs = [fmt_ratio(ratio(a["ops_per_sec"], m["ops_per_sec"])),
                          fmt_ratio(ratio(a["p99_us"], m["p99_us"])),
                          fmt_ratio(ratio(a["server_cpu_us_per_req"], m["server_cpu_us_per_req"]))]
                self.w("| %s | %s | %.0f | %s | %.1f | %.1f | %.1f | %.0f | %.2f | %.1f | %s | %s | %s |" % (
                    label, server, a["ops_per_sec"], spread(a["runs"], "%.0f"), a["p50_us"], a["p99_us"],
                    a["p999_us"], a["max_us"], a["server_cpu_us_per_req"], a["rss_kb"] / 1024, *rs))
            if p and m:
                summary.append((label, key, p, m))
                sec = section.upper()
                # (metric, unit, higher is better, format)
                for k, name, better_high, fmt in (
                        ("ops_per_sec", "throughput", True, "%.0f ops/s"),
                        ("p50_us", "p50 latency", False, "%.1f µs"),
                        ("p99_us", "p99 latency", False, "%.1f µs"),
                        ("p999_us", "p99.9 latency", False, "%.1f µs"),
                        ("server_cpu_us_per_req", "server CPU per request", False, "%.2f µs")):
                    cat = "%s %s" % (sec, name)
                    self.compared[cat] = self.compared.get(cat, 0) + 1
                    r = ratio(p[k], m[k])
                    worse = r < 1 - TIE if better_high else r > 1 + TIE
                    if not worse:
                        continue
                    pa, ma = p["all"][k], m["all"][k]
                    clear = (max(pa) < min(ma)) if better_high else (min(pa) > max(ma))
                    self.loss(cat, "%s: %s vs %s (%.2f×)" % (label, fmt % p[k], fmt % m[k], r), clear)
            for server, a in agg.items():
                bad = [k for k in ("errors", "lost") if a.get(k, 0) and a[k] > 0]
                if bad:
                    self.w()
                    self.w("Note: %s in `%s` had %s (median per run)." % (
                        server, label, ", ".join("%s %.0f" % (k, a[k]) for k in bad)))
        self.w()
        if summary:
            # resident memory: one line for the section
            worse = [(p["rss_kb"], m["rss_kb"]) for _l, _k, p, m in summary if p["rss_kb"] > (1 + TIE) * m["rss_kb"]]
            if worse:
                self.loss("%s resident memory" % section.upper(),
                          "Petrel %.0f–%.0f MiB vs %s %.0f–%.0f MiB in %d of %d workloads" % (
                              min(a for a, _ in worse) / 1024, max(a for a, _ in worse) / 1024, peer,
                              min(b for _, b in worse) / 1024, max(b for _, b in worse) / 1024,
                              len(worse), len(summary)))
        other = [v for _l, _k, p, m in summary for a in (p, m) for v in a["all"]["other_cpu_pct"]]
        steal = [v for _l, _k, p, m in summary for a in (p, m) for v in a["all"]["steal_pct"]]
        tries = [v for _l, _k, p, m in summary for a in (p, m) for v in a["all"]["tries"]]
        if other:
            self.w("Interference on the server's core during the kept measurements: other processes' "
                   "user+system time median %.0f %%, max %.0f %% of the core%s. A measurement with more than "
                   "25 %% interference is repeated (up to 3 tries in full mode, 2 in quick mode; the least disturbed "
                   "is kept): %d of %d "
                   "measurements needed a repeat." % (
                       med(other), max(other),
                       "; hypervisor steal median %.0f %%, max %.0f %%" % (med(steal), max(steal)) if steal else "",
                       sum(1 for t in tries if t > 1), len(tries)))
            self.w()
        if summary:
            ratios = [ratio(p["ops_per_sec"], m["ops_per_sec"]) for _l, _k, p, m in summary]
            self.w("Throughput ratio Petrel/%s over the %d workloads: median %.2f×, range %.2f×–%.2f×." % (
                peer, len(ratios), med(ratios), min(ratios), max(ratios)))
            self.w()
        if self.plt and summary:
            self.w("![%s throughput](%s)" % (section, self.throughput_plot(section, summary, peer)))
            self.w()
            self.w("![%s latency percentiles](%s)" % (section, self.latency_plot(section, summary, peer)))
            self.w()
        return summary

    def throughput_plot(self, section, summary, peer):
        plt = self.plt
        fig, ax = plt.subplots(figsize=(max(7, 0.75 * len(summary) + 2), 4.5))
        for i, (server, color) in enumerate((("petrel", "tab:blue"), (peer, "tab:orange"))):
            xs, ys, lo, hi = [], [], [], []
            for j, (_l, _k, p, m) in enumerate(summary):
                a = p if server == "petrel" else m
                xs.append(j + (i - 0.5) * 0.4)
                ys.append(a["ops_per_sec"] / 1e3)
                lo.append((a["ops_per_sec"] - min(a["runs"])) / 1e3)
                hi.append((max(a["runs"]) - a["ops_per_sec"]) / 1e3)
            ax.bar(xs, ys, 0.4, yerr=[lo, hi], capsize=2, label=server, color=color)
        ax.set_xticks(range(len(summary)))
        ax.set_xticklabels([l for l, _k, _p, _m in summary], rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("thousand requests / s")
        ax.set_title("%s throughput, median of %s runs (error bars: min–max) — %s" % (
            section.upper(), self.machine.get("runs", "?"), self.machine.get("date", "")))
        ax.legend(fontsize=8)
        fig.tight_layout()
        return self.save(fig, "%s-throughput.png" % section)

    def latency_plot(self, section, summary, peer):
        plt = self.plt
        n = len(summary)
        cols = min(4, n)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(max(6.4, 3.2 * cols), 2.6 * rows + 0.4), squeeze=False)
        # x: "nines" scale, -log10(1 - q); the max is drawn one step beyond p99.9
        xs = [-math.log10(1 - q / 100) for _k, q in PCTS] + [4.0]
        labels = ["50", "90", "99", "99.9", "max"]
        for idx, (label, _k, p, m) in enumerate(summary):
            ax = axes[idx // cols][idx % cols]
            for server, a, color in (("petrel", p, "tab:blue"), (peer, m, "tab:orange")):
                ys = [a[k] for k, _q in PCTS] + [a["max_us"]]
                ax.plot(xs, ys, marker="o", ms=3, label=server, color=color)
            ax.set_yscale("log")
            ax.set_xticks(xs)
            ax.set_xticklabels(labels, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_title(label, fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
            if idx % cols == 0:
                ax.set_ylabel("latency µs", fontsize=7)
            if idx == 0:
                ax.legend(fontsize=7)
        for idx in range(n, rows * cols):
            axes[idx // cols][idx % cols].axis("off")
        fig.suptitle("%s latency by percentile (median of runs per percentile)" % section.upper(), fontsize=9)
        fig.tight_layout()
        return self.save(fig, "%s-latency.png" % section)

    def tls_targets(self, summary):
        """After the TLS table: Petrel in plaintext beside Petrel over TLS, and the targets."""
        cells = net_cells(self.rows, "tls")
        plain = []
        for key, servers in cells.items():
            if "petrel-plain" in servers and "petrel" in servers:
                runs = servers["petrel-plain"]
                a = {k: med([r[k] for r in runs if k in r]) for k in
                     ("ops_per_sec", "p50_us", "p99_us", "p999_us", "max_us", "server_cpu_us_per_req")}
                a["runs"] = [r["ops_per_sec"] for r in runs]
                t = {k: med([r[k] for r in servers["petrel"] if k in r]) for k in
                     ("ops_per_sec", "p99_us", "server_cpu_us_per_req")}
                plain.append((cell_label(runs[0]), a, t))
        if plain:
            self.w("Petrel without TLS on the same workload (the cost of TLS):")
            self.w()
            self.w("| workload | server | ops/s (median) | spread ops/s | p50 µs | p99 µs | p99.9 µs | max µs | "
                   "CPU µs/req | TLS/plaintext ops/s | p99 | CPU/req |")
            self.w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for label, a, t in plain:
                self.w("| %s | petrel, plaintext | %.0f | %s | %.1f | %.1f | %.1f | %.0f | %.2f | %s | %s | %s |" % (
                    label, a["ops_per_sec"], spread(a["runs"], "%.0f"), a["p50_us"], a["p99_us"], a["p999_us"],
                    a["max_us"], a["server_cpu_us_per_req"],
                    fmt_ratio(ratio(t["ops_per_sec"], a["ops_per_sec"])), fmt_ratio(ratio(t["p99_us"], a["p99_us"])),
                    fmt_ratio(ratio(t["server_cpu_us_per_req"], a["server_cpu_us_per_req"]))))
            self.w()
        lines = []
        for label, _k, p, m in summary:
            r, l99 = ratio(p["ops_per_sec"], m["ops_per_sec"]), ratio(p["p99_us"], m["p99_us"])
            met = r >= TLS_TARGET_VS_PEER and l99 <= 1 + TIE
            lines.append("- %s: throughput %s memcached's, p99 %s: %s" % (
                label, fmt_ratio(r), fmt_ratio(l99), "met" if met else "**not met**"))
            if not met:
                self.loss("TLS targets", "%s: throughput %s memcached's (target ≥ %.1f×), p99 %s" % (
                    label, fmt_ratio(r), TLS_TARGET_VS_PEER, fmt_ratio(l99)))
        for label, a, t in plain:
            r = ratio(t["ops_per_sec"], a["ops_per_sec"])
            met = r >= TLS_TARGET_VS_PLAIN
            lines.append("- %s: Petrel over TLS does %s of its plaintext throughput: %s" % (
                label, fmt_ratio(r), "met" if met else "**not met**"))
            if not met:
                self.loss("TLS targets", "%s: TLS at %s of plaintext throughput (target ≥ %.1f×)" % (
                    label, fmt_ratio(r), TLS_TARGET_VS_PLAIN))
        if lines:
            self.w("Targets: Petrel's TLS throughput at least %.1f× memcached's with a p99 no higher (within %d %%); "
                   "TLS costs Petrel no more than half its plaintext throughput." % (
                       TLS_TARGET_VS_PEER, round(TIE * 100)))
            self.w()
            self.lines += lines
            self.w()

    def latency_load(self):
        """The open-loop section: latency against offered load, per transport. Every cell may have
        several rounds: the tables quote their medians with the range, and the comparisons (ratios,
        losses, the README's counts) use the medians."""
        runs = {}
        peaks = {}
        for sec, server, rnd, v in self.rows:
            if sec not in ("lat", "latpeak"):
                continue
            base = (v.get("transport"), int(v.get("threads", 0)), v.get("dist"))
            if sec == "latpeak":
                peaks.setdefault(base, {}).setdefault(server, []).append(v["ops_per_sec"])
            else:
                runs.setdefault(base, {}).setdefault(int(v["load_pct"]), {}).setdefault(server, []).append(v)
        cells = {base: {pct: {server: lat_agg(rs) for server, rs in servers.items()}
                        for pct, servers in by_pct.items()} for base, by_pct in runs.items()}
        xdp_note = ""
        path = os.path.join(self.raw, "lat-xdp.txt")
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                t = f.read().strip()
            if t and not any(k[0] == "xdp" for k in cells):
                xdp_note = t.splitlines()[-1]
        if not cells and not xdp_note:
            return
        self.lat_summary = {}
        m = self.machine
        self.lat_rounds = 0
        all_runs = [r for by_pct in runs.values() for servers in by_pct.values() for rs in servers.values() for r in rs]
        n_rounds = sorted({a["n"] for by_pct in cells.values() for servers in by_pct.values() for a in servers.values()})
        if n_rounds and n_rounds[-1] > 1:
            self.lat_rounds = n_rounds[-1]
            rounds_text = (
                "Each cell is measured in %s rounds: TCP and kernel UDP go through every cell once per round, with "
                "a fresh server per round (the 4 loads of one server and group run against it in turn) and the "
                "server order flipping from round to round; AF_XDP runs a load's rounds back to back in one "
                "`scripts/bench-udp --rounds` call, which alternates the order too. The tables quote the median "
                "of the rounds with their range (min–max) in brackets; the Petrel/memcached ratios, the counts "
                "and the losses below compare the medians (a loss whose ranges overlap is marked). The "
                "closed-loop peaks are measured once, before the first round, so every round offers the same "
                "rates.%s" % ("%d" % n_rounds[0] if len(n_rounds) == 1 else "%d–%d" % (n_rounds[0], n_rounds[-1]),
                              " The whole section took %s s." % m["secs_lat"] if m.get("secs_lat") else ""))
        elif "lat_rounds" in m:
            rounds_text = "One round per cell in this run; the closed-loop peaks are measured just before it."
        else:
            rounds_text = ("One run per cell (a run of `scripts/bench` from before the section had rounds), the "
                           "closed-loop peaks measured just before it.")
        secs = sorted({r["secs"] for r in all_runs if isinstance(r.get("secs"), float) and r.get("transport") != "xdp"})
        min_req = m.get("lat_min_requests", "0")
        notes = (["at most %s s" % m["lat_max_secs"]] if m.get("lat_max_secs") else []) + (
            ["%s s here" % ("%g" % secs[0] if len(secs) == 1 else "%g–%g" % (secs[0], secs[-1]))] if secs else [])
        bracket = " (%s)" % "; ".join(notes) if notes else ""
        if min_req not in ("", "0"):
            dur_text = ("A TCP or kernel UDP cell lasts %s s or, where the rate is lower, as long as %s requests take"
                        "%s, after a %s s warm-up at the same rate; an AF_XDP cell %s s or, likewise, "
                        "the whole seconds %s requests take." % (
                            m.get("lat_secs", "?"), min_req, bracket,
                            m.get("lat_warm", "?"), m.get("lat_xdp_secs", "?"), min_req))
        elif "lat_warm" in m:
            dur_text = "A TCP or kernel UDP cell lasts %s s after a %s s warm-up at the same rate." % (
                m.get("lat_secs", "?"), m["lat_warm"])
        else:
            dur_text = "A TCP or kernel UDP cell lasts %s s after a warm-up at the same rate." % m.get("lat_secs", "?")
        low = [r["requests"] for r in all_runs if r.get("load_pct") == 10 and isinstance(r.get("requests"), float)]
        if low:
            span = lambda lo, hi: "%d" % lo if lo == hi else "%d–%d" % (lo, hi)
            dur_text += (" At 10 %% load a round's p99.9 rests on the slowest 0.1 %% of its %s requests: %s "
                         "requests." % (span(min(low), max(low)), span(min(low) // 1000, max(low) // 1000)))
        has_locks = any(isinstance(r.get("store_lock_waits"), float) for r in all_runs)
        self.w("## Latency against offered load (open loop)")
        self.w()
        self.w("`petrel-load --rate R`: Poisson arrivals at R requests/s in total over 20 connections (TCP) or "
               "sockets (UDP; 16 on the veth topology), one client thread; latency is measured from each "
               "request's *intended* send time, so a server that falls behind cannot slow the client down and "
               "hide its queue (no coordinated omission). R is 10, 50, 80 and 95 % of the LOWER of the two "
               "servers' closed-loop peak, measured with the same workload (20 connections x 1 "
               "request in flight; on the veth topology scripts/bench-udp's 16 sockets x 4): 90/10 get/set, "
               "32 B values, 100k keys of 16 B preloaded, uniform or Zipf 0.99 popularity. That peak is partly "
               "the one-core client's limit (both servers do more at pipeline depth 8 in the TCP section), so "
               "95 % of it is below the servers' saturation.")
        self.w()
        self.w(rounds_text + " " + dur_text)
        self.w()
        self.w("A UDP request without a reply within 500 ms is lost and enters the percentiles with the time it "
               "waited, so dropping requests cannot look better than answering them late. "
               "*late* is the share of requests the client sent more than 100 µs after their intended time: "
               "where it is large, the one-core client (not the server) is the limit and both servers' "
               "latencies include that client queueing. A TCP or UDP cell in which the client was late on more "
               "than 2 %% of its sends, or with more than 25 %% interference on the server's core, is measured "
               "again within its round (up to 3 tries in full mode, 2 in quick mode) and the least disturbed "
               "try is kept. AF_XDP: Petrel `-t 1` with one AF_XDP worker (native mode) against memcached "
               "`-U -t 1` on kernel UDP, in the same namespaces.%s" % (
                   " *lock waits*: Petrel's `stats` `store_lock_waits` over the measured interval (shard-lock "
                   "acquisitions that found the lock held past a short spin and yielded), read with a `stats` "
                   "request before and after each TCP and kernel UDP cell; scripts/bench-udp does not read it, "
                   "so the AF_XDP cells have none." if has_locks else ""))
        self.w()
        if xdp_note:
            self.w("AF_XDP: %s" % xdp_note)
            self.w()
        names = {"tcp": "TCP", "udp": "kernel UDP", "xdp": "AF_XDP (veth)"}
        for transport in ("tcp", "udp", "xdp"):
            keys = sorted(k for k in cells if k[0] == transport)
            if not keys:
                continue
            self.w("### %s" % names[transport])
            self.w()
            pk = ["-t %d %s: Petrel %s, memcached %s" % (
                k[1], k[2], "%.0f" % med(peaks[k]["petrel"]) if "petrel" in peaks.get(k, {}) else "?",
                "%.0f" % med(peaks[k]["memcached"]) if "memcached" in peaks.get(k, {}) else "?")
                for k in keys]
            self.w("Closed-loop peaks (requests/s): %s." % "; ".join(pk))
            self.w()
            locks = has_locks and transport != "xdp"
            self.w("| cell | offered /s | server | rounds | achieved /s | p50 µs | p99 µs | p99.9 µs | max µs | late "
                   "| lost |%s Petrel/memcached p99 | p99.9 |" % (" lock waits |" if locks else ""))
            self.w("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |%s ---: | ---: |" % (
                " ---: |" if locks else ""))
            summary = []
            for k in keys:
                for pct, servers in sorted(cells[k].items()):
                    label = "-t %d, %s, %d %%" % (k[1], k[2], pct)
                    p, mc = servers.get("petrel"), servers.get("memcached")
                    for server in ("petrel", "memcached"):
                        a = servers.get(server)
                        if not a:
                            continue
                        rs = ["-", "-"]
                        if server == "petrel" and mc:
                            rs = [fmt_ratio(ratio(p["p99_us"], mc["p99_us"])),
                                  fmt_ratio(ratio(p["p999_us"], mc["p999_us"]))]
                        lw = ""
                        if locks:
                            lw = " %s |" % with_range(a, "store_lock_waits", "%.0f")
                        self.w("| %s | %.0f | %s | %d | %s | %s | %s | %s | %.0f | %s | %s |%s %s | %s |" % (
                            label, a["rate"], server, a["n"], with_range(a, "ops_per_sec", "%.0f"),
                            with_range(a, "p50_us", "%.1f"), with_range(a, "p99_us", "%.1f"),
                            with_range(a, "p999_us", "%.1f"), a["max_us"], with_range(a, "late_pct", "%.1f", " %"),
                            with_range(a, "lost", "%.0f"), lw, *rs))
                        if a["all"]["errors"] and max(a["all"]["errors"]) > 0:
                            self.w("| | | (%s: errors %s) |%s" % (
                                server, with_range(a, "errors", "%.0f"), " |" * (10 + locks)))
                    if p and mc:
                        summary.append((k, pct, p, mc))
                        for key, what in (("p99_us", "p99"), ("p999_us", "p99.9")):
                            cat = "%s %s latency against offered load" % (names[transport], what)
                            self.compared[cat] = self.compared.get(cat, 0) + 1
                            r = ratio(p[key], mc[key])
                            if r > 1 + TIE:
                                clear = min(p["all"][key]) > max(mc["all"][key])
                                late = p["late_pct"]
                                self.loss(cat, "%s (%.0f/s): %.1f µs vs %.1f µs (%.2f×)%s" % (
                                    label, p["rate"], p[key], mc[key], r,
                                    " (client late on %.0f %% of sends)" % late if late > 1 else ""), clear)
            self.w()
            self.lat_summary[transport] = summary
            if summary:
                for key, what in (("p99_us", "p99"), ("p999_us", "p99.9")):
                    rs = [ratio(p[key], mc[key]) for _k, _pct, p, mc in summary]
                    ok = sum(1 for r in rs if r <= 1 + TIE)
                    worst = max(range(len(rs)), key=lambda i: rs[i])
                    wk, wpct = summary[worst][0], summary[worst][1]
                    self.w("%s%s: Petrel no higher than memcached (within %d %%) in %d of %d cells; worst "
                           "%.2f× (-t %d, %s, %d %%); median ratio %.2f×." % (
                               what, " (medians of the rounds)" if n_rounds and n_rounds[-1] > 1 else "",
                               round(TIE * 100), ok, len(rs), rs[worst], wk[1], wk[2], wpct, med(rs)))
                    self.w()
            if self.plt and summary:
                self.w("![%s latency against offered load](%s)" % (transport, self.lat_plot(transport, names[transport], cells, keys)))
                self.w()

    def lat_plot(self, transport, title, cells, keys):
        plt = self.plt
        threads = sorted({k[1] for k in keys})
        dists = [d for d in ("uniform", "zipf") if any(k[2] == d for k in keys)]
        fig, axes = plt.subplots(len(threads), len(dists), figsize=(4.2 * len(dists), 2.8 * len(threads) + 0.5),
                                 squeeze=False)
        styles = (("p50_us", "p50", "o"), ("p99_us", "p99", "s"), ("p999_us", "p99.9", "^"))
        for i, t in enumerate(threads):
            for j, d in enumerate(dists):
                ax = axes[i][j]
                by_pct = cells.get((transport, t, d), {})
                pcts = sorted(by_pct)
                for server, color, ls, dx in (("petrel", "tab:blue", "-", -0.8), ("memcached", "tab:orange", "--", 0.8)):
                    for key, name, marker in styles:
                        xs = [pc for pc in pcts if server in by_pct[pc]]
                        ys = [by_pct[pc][server][key] for pc in xs]
                        if not xs:
                            continue
                        # the median of the rounds, with their range as an error bar
                        lo = [y - min(by_pct[pc][server]["all"][key]) for pc, y in zip(xs, ys)]
                        hi = [max(by_pct[pc][server]["all"][key]) - y for pc, y in zip(xs, ys)]
                        ax.errorbar([x + dx for x in xs], ys, yerr=[lo, hi], marker=marker, ms=3, ls=ls, color=color,
                                    elinewidth=0.7, capsize=2, label="%s %s" % (server, name))
                ax.set_yscale("log")
                ax.set_xticks([10, 50, 80, 95])
                ax.set_xlim(0, 100)
                ax.tick_params(labelsize=7)
                ax.set_title("-t %d, %s keys" % (t, d), fontsize=8)
                ax.grid(True, which="both", alpha=0.3)
                if j == 0:
                    ax.set_ylabel("latency µs (log)", fontsize=7)
                if i == len(threads) - 1:
                    ax.set_xlabel("offered load, % of the lower closed-loop peak", fontsize=7)
                if i == 0 and j == 0:
                    ax.legend(fontsize=6, ncol=2)
        fig.suptitle("%s: latency against offered load, open loop (Petrel solid, memcached dashed; median of the "
                     "rounds, bars: range) — %s" % (title, self.machine.get("date", "")), fontsize=9)
        fig.tight_layout()
        return self.save(fig, "lat-%s.png" % transport)

    def xdp(self):
        path = os.path.join(self.raw, "xdp.txt")
        if not os.path.exists(path):
            return
        with open(path, errors="replace") as f:
            text = f.read().strip()
        self.w("## UDP on the veth topology: kernel UDP and AF_XDP (scripts/bench-udp)")
        self.w()
        runs = {}
        for line in text.splitlines():
            m = XDP_LINE.match(line)
            if not m:
                continue
            vals = {}
            for kv in m.group(3).split():
                k, _, v = kv.partition("=")
                try:
                    vals[k] = float(v)
                except ValueError:
                    pass
            if "ops_per_sec" in vals:
                runs.setdefault(m.group(1), []).append(vals)
        if not runs:
            self.w("```text")
            self.w(text[-3000:] if text else "(no output)")
            self.w("```")
            self.w()
            return
        head = text.splitlines()[0] if text else ""
        self.w("`scripts/bench-udp` (another engineer's script, called by `scripts/bench` as root) runs memcached "
               "`-U`, Petrel's kernel-UDP front end and Petrel's AF_XDP front end in generic and native mode "
               "in a server network namespace behind a veth pair, same client (`petrel-load --udp` in the "
               "client namespace), alternating rounds. Its settings: `%s`. Median of the rounds, spread "
               "min–max; ratios against memcached." % head.replace("`", "'"))
        self.w()
        self.w("| server | replies/s (median) | spread | p50 µs | p99 µs | p99.9 µs | max µs | CPU µs/req | "
               "lost | vs memcached: replies/s | p99 | CPU/req |")
        self.w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        keys = ("ops_per_sec", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "server_cpu_us_per_request", "lost")
        agg = {}
        for name, rs in runs.items():
            a = {k: med([r[k] for r in rs if k in r]) for k in keys}
            a["all"] = {k: [r[k] for r in rs if k in r] for k in keys}
            agg[name] = a
        base = agg.get("memcached")
        order = sorted(agg, key=lambda n: (n != "memcached", n))
        for name in order:
            a = agg[name]
            rs = ["-", "-", "-"]
            if base and name != "memcached":
                rs = [fmt_ratio(ratio(a["ops_per_sec"], base["ops_per_sec"])),
                      fmt_ratio(ratio(a["p99_us"], base["p99_us"])),
                      fmt_ratio(ratio(a["server_cpu_us_per_request"], base["server_cpu_us_per_request"]))]
                for k, what, high, fmt in (("ops_per_sec", "throughput", True, "%.0f replies/s"),
                                           ("p99_us", "p99 latency", False, "%.1f µs"),
                                           ("p999_us", "p99.9 latency", False, "%.1f µs"),
                                           ("server_cpu_us_per_request", "server CPU per request", False,
                                            "%.2f µs")):
                    cat = "veth UDP %s" % what
                    self.compared[cat] = self.compared.get(cat, 0) + 1
                    r = ratio(a[k], base[k])
                    if (r < 1 - TIE) if high else (r > 1 + TIE):
                        pa, ma = a["all"][k], base["all"][k]
                        clear = (max(pa) < min(ma)) if high else (min(pa) > max(ma))
                        self.loss(cat, "%s: %s vs %s (%.2f×)" % (name, fmt % a[k], fmt % base[k], r), clear)
            self.w("| %s | %.0f | %s | %.1f | %.1f | %.1f | %.0f | %.2f | %.0f | %s | %s | %s |" % (
                name, a["ops_per_sec"], spread(a["all"]["ops_per_sec"], "%.0f"), a["p50_us"], a["p99_us"],
                a["p999_us"], a["max_us"], a["server_cpu_us_per_request"], a["lost"], *rs))
        self.w()
        if self.plt:
            plt = self.plt
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
            vals = [agg[n]["ops_per_sec"] / 1e3 for n in order]
            lo = [(agg[n]["ops_per_sec"] - min(agg[n]["all"]["ops_per_sec"])) / 1e3 for n in order]
            hi = [(max(agg[n]["all"]["ops_per_sec"]) - agg[n]["ops_per_sec"]) / 1e3 for n in order]
            colors = ["tab:orange" if n == "memcached" else "tab:blue" for n in order]
            ax1.bar(order, vals, yerr=[lo, hi], capsize=3, color=colors)
            ax1.set_ylabel("thousand replies / s")
            ax1.set_title("veth UDP throughput (error bars: min–max)", fontsize=9)
            ax1.tick_params(axis="x", labelsize=8)
            xs = [-math.log10(1 - q / 100) for _k, q in PCTS] + [4.0]
            for n in order:
                a = agg[n]
                ax2.plot(xs, [a[k] for k, _q in PCTS] + [a["max_us"]], marker="o", ms=3, label=n)
            ax2.set_yscale("log")
            ax2.set_xticks(xs)
            ax2.set_xticklabels(["50", "90", "99", "99.9", "max"], fontsize=8)
            ax2.set_ylabel("latency µs")
            ax2.set_title("veth UDP latency by percentile", fontsize=9)
            ax2.grid(True, which="both", alpha=0.3)
            ax2.legend(fontsize=7)
            fig.tight_layout()
            self.w("![veth UDP](%s)" % self.save(fig, "veth-udp.png"))
            self.w()
        self.w("<details><summary>scripts/bench-udp output</summary>")
        self.w()
        self.w("```text")
        self.w(text[-6000:])
        self.w("```")
        self.w()
        self.w("</details>")
        self.w()

    def memory(self):
        mem = [r for r in self.rows if r[0] == "mem"]
        if not mem:
            return
        means = [v["stored_value_bytes"] / v["stored"] for _s, _n, _r, v in mem
                 if v.get("workload") == "mix" and v.get("stored")]
        mix_mean = "%.0f B" % med(means) if means else "?"
        self.w("## Memory efficiency: items kept with `-m 64`")
        self.w()
        self.w("`scripts/bench_mem.py` fills a fresh server (`-m 64 -t 1`) with `set`s until its `stats` show "
               "the first eviction (or `curr_items` falling behind the stores that succeeded), then reads every "
               "key it stored with multi-key `get`s and checks each value; *hits* is what the server still "
               "holds. Workloads: **small** = 16 B keys + 32 B values; **mix** = 32 B keys with values "
               "64 B–4 KiB, skewed small (35 %% 64–127 B … 2 %% 4 KiB; mean of the values stored: %s). %s round(s); median "
               "quoted, spread min–max. Item memory is `-m`; both servers keep their hash table outside it, "
               "so RSS is shown too." % (mix_mean, self.machine.get("mem_rounds", "?")))
        self.w()
        self.w("| workload | server | hits after fill (median) | spread | items before first eviction | "
               "value MiB held | RSS MiB | Petrel/peer hits |")
        self.w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        by = {}
        for _s, server, _r, v in mem:
            by.setdefault(v["workload"], {}).setdefault(server, []).append(v)
        plot = []
        notes = []
        for wl in ("small", "mix"):
            servers = by.get(wl, {})
            agg = {s: {k: med([r[k] for r in rs]) for k in
                       ("hits", "items_before_eviction", "hit_value_bytes", "rss_kb", "evictions")}
                   for s, rs in servers.items()}
            for s, rs in servers.items():
                agg[s]["runs"] = [r["hits"] for r in rs]
            p, m = agg.get("petrel"), agg.get("memcached")
            for server in ("petrel", "memcached"):
                a = agg.get(server)
                if not a:
                    continue
                rr = fmt_ratio(ratio(p["hits"], m["hits"])) if server == "petrel" and p and m else "-"
                self.w("| %s | %s | %d | %s | %d | %.1f | %.1f | %s |" % (
                    wl, server, a["hits"], spread(a["runs"], "%d"), a["items_before_eviction"],
                    a["hit_value_bytes"] / 2**20, a["rss_kb"] / 1024, rr))
                if a["evictions"] == 0:
                    hf = med([r["hash_full_evictions"] for r in servers[server] if "hash_full_evictions" in r])
                    notes.append("Note: %s / %s stopped without an eviction counted: items went missing "
                           "(`curr_items` below the successful stores) before any eviction was reported%s." % (
                               wl, server,
                               "; its `store_hash_full_evictions` was %d: items dropped because their hash bucket "
                               "chain was full (the hash table, not the segments, was the limit), which "
                               "`evictions` does not count" % hf if hf and not math.isnan(hf) else ""))
            if p and m:
                plot.append((wl, p, m))
                cat = "Memory efficiency"
                if p["hits"] < (1 - TIE) * m["hits"]:
                    self.loss(cat, "`%s`: Petrel keeps %d items, memcached %d (%.2f×)" % (
                        wl, p["hits"], m["hits"], p["hits"] / m["hits"]))
                if p["rss_kb"] > (1 + TIE) * m["rss_kb"]:
                    self.loss(cat, "`%s`: Petrel's RSS when full is %.1f MiB, memcached's %.1f MiB (%.2f×)" % (
                        wl, p["rss_kb"] / 1024, m["rss_kb"] / 1024, p["rss_kb"] / m["rss_kb"]))
                if p["items_before_eviction"] > 0 and p["hits"] < 0.95 * p["items_before_eviction"]:
                    self.loss(cat,
                              "`%s`: Petrel's first eviction drops many items at once (it evicts whole "
                              "segments): %d items before it, %d after" % (wl, p["items_before_eviction"], p["hits"]))
        self.w()
        core_items = [v["items"] for sec, store, _r, v in self.rows if sec == "corememory" and store == "petrel"]
        p_small = by.get("small", {}).get("petrel", [])
        hf = med([r.get("hash_full_evictions", 0) for r in p_small]) if p_small else 0
        if core_items and p_small and hf > 0:
            notes.append("For comparison, the core bench above fills the same store in process, with a hash "
                         "table of 2^18 buckets instead of the server's automatic size, to %d items of 16+32 B "
                         "before its first eviction; the server's hash table sizing (one slot per 96 bytes of "
                         "item memory) is what limits it to %d here." % (med(core_items),
                                                                        med([r["hits"] for r in p_small])))
        for n in notes:
            self.w(n)
            self.w()
        if self.plt and plot:
            plt = self.plt
            fig, axes = plt.subplots(1, len(plot), figsize=(4 * len(plot), 3.6), squeeze=False)
            for ax, (wl, p, m) in zip(axes[0], plot):
                names = ["petrel", "memcached"]
                vals = [p["hits"], m["hits"]]
                lo = [p["hits"] - min(p["runs"]), m["hits"] - min(m["runs"])]
                hi = [max(p["runs"]) - p["hits"], max(m["runs"]) - m["hits"]]
                ax.bar(names, vals, yerr=[lo, hi], capsize=3, color=["tab:blue", "tab:orange"])
                ax.bar(names, [p["items_before_eviction"], m["items_before_eviction"]], fill=False,
                       edgecolor="gray", linestyle="--", label="before first eviction")
                ax.set_title("%s (%s)" % (wl, "16 B keys, 32 B values" if wl == "small" else
                                          "32 B keys, 64 B–4 KiB values"), fontsize=9)
                ax.set_ylabel("items retained (hits on full scan)", fontsize=8)
                ax.legend(fontsize=7)
            fig.suptitle("Items kept with -m 64", fontsize=10)
            fig.tight_layout()
            self.w("![items retained](%s)" % self.save(fig, "memory-items.png"))
            self.w()

    def startup(self):
        rows = [r for r in self.rows if r[0] == "startup"]
        if not rows:
            return
        self.w("## Start-up: exec to serving")
        self.w()
        self.w("`scripts/bench_startup.py` starts each server (`-t 4`, no UDP) and measures the time from "
               "just before exec until the TCP port accepts and a `version` request is answered, and the "
               "resident memory (VmRSS) right then. Three rounds, alternating which server goes first; "
               "median quoted, spread min–max.")
        self.w()
        self.w("| `-m` | Petrel exec to serving ms | spread | Petrel RSS MiB | memcached exec to serving ms "
               "| spread | memcached RSS MiB |")
        self.w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        by = {}
        for _s, server, _r, v in rows:
            by.setdefault(int(v["mib"]), {}).setdefault(server, []).append(v)
        for mib in sorted(by):
            cells = []
            for server in ("petrel", "memcached"):
                rs = by[mib].get(server, [])
                ms = [r["exec_to_serving_ms"] for r in rs]
                rss = [r["rss_kb"] / 1024 for r in rs]
                cells += ["%.0f" % med(ms) if ms else "-", spread(ms, "%.0f"),
                          "%.0f" % med(rss) if rss else "-"]
            self.w("| %d | %s |" % (mib, " | ".join(cells)))
        self.w()

    def flood(self):
        """The set-flood section, from raw/flood.txt (scripts/bench-flood's output): its `ROUND` lines
        (every figure of one server and round) or, from an older run without them, its `RESULT` lines."""
        path = os.path.join(self.raw, "flood.txt")
        if not os.path.exists(path):
            return
        rounds, results, failed = {}, {}, False
        with open(path) as f:
            for line in f:
                kind, _, rest = line.strip().partition(" ")
                if kind not in ("ROUND", "RESULT"):
                    failed |= "exited with an error" in line
                    continue
                vals = {}
                for kv in rest.split():
                    k, _, v = kv.partition("=")
                    try:
                        vals[k] = float(v)
                    except ValueError:
                        vals[k] = v
                server = vals.get("server")
                if kind == "ROUND" and server:
                    rounds.setdefault(server, []).append(vals)
                elif kind == "RESULT" and server and rest.startswith("flood "):
                    results[server] = vals
        self.w("## Gets during a set flood")
        self.w()
        self.w("`scripts/bench-flood` starts each server with `-m 64 -t 2`, preloads 10,000 hot keys (100 B "
               "values) and measures gets over them (`petrel-load`, 8 connections) alone, then again while "
               "a second client sets new 1000 B items (24 B keys over 50M, 4 connections, depth 8) as fast "
               "as the server takes them, ten times `-m` or more: the cache fills and evicts for the rest of "
               "the run. A set answered with an error fails the run. Median of the rounds quoted, spread "
               "min–max; the ratio is each server's gets p99.9 during the flood over its own p99.9 alone. "
               "Petrel's eviction pauses are its `stats` `store_evict_pause_*` (how long one eviction step "
               "held a shard lock).")
        self.w()
        if failed or not (rounds or results):
            self.w("The flood run failed or left no results; its output is in `raw/flood.txt`.")
            self.w()
            return
        self.w("| server | rounds | gets p99.9 alone µs | spread | during the flood µs | spread | ratio | "
               "p99 alone → during µs | flood sets/s | flood volume × `-m` | eviction pause p99.9 / max µs |")
        self.w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        agg = {}
        for server in ("petrel", "memcached"):
            rs = rounds.get(server)
            if rs:
                col = lambda k: [r[k] for r in rs if isinstance(r.get(k), float)]
                a = {k: med(col(k)) for k in ("base_p99_us", "base_p999_us", "flood_p99_us", "flood_p999_us",
                                               "ratio", "flood_x_m", "flood_sets_per_sec",
                                               "store_evict_pause_p999_us", "store_evict_pause_max_us")}
                a["all"] = {k: col(k) for k in ("base_p999_us", "flood_p999_us", "store_evict_pause_max_us")}
                a["n"] = len(rs)
            elif server in results:
                a = dict(results[server])
                a["all"] = {}
                a["n"] = "?"
            else:
                continue
            agg[server] = a
            g = lambda k, fmt="%.0f": fmt % a[k] if isinstance(a.get(k), float) and not math.isnan(a[k]) else "-"
            pause = "-"
            if server == "petrel" and isinstance(a.get("store_evict_pause_max_us"), float):
                pause = "%s / %s" % (g("store_evict_pause_p999_us"), g("store_evict_pause_max_us"))
            self.w("| %s | %s | %s | %s | %s | %s | %s | %s → %s | %s | %s | %s |" % (
                server, a["n"], g("base_p999_us"), spread(a["all"].get("base_p999_us", []), "%.0f"),
                g("flood_p999_us"), spread(a["all"].get("flood_p999_us", []), "%.0f"),
                g("ratio", "%.2f×"), g("base_p99_us"), g("flood_p99_us"), g("flood_sets_per_sec"),
                g("flood_x_m", "%.1f"), pause))
        self.w()
        p, m = agg.get("petrel"), agg.get("memcached")
        if p and m:
            for k, name, fmt in (("flood_p999_us", "gets p99.9 during the flood", "%.0f µs"),
                                 ("ratio", "gets p99.9 during the flood over alone", "%.2f×")):
                cat = "Set flood"
                self.compared[cat] = self.compared.get(cat, 0) + 1
                r = ratio(p[k], m[k])
                if r > 1 + TIE:
                    pa, ma = p["all"].get(k), m["all"].get(k)
                    clear = bool(pa and ma) and min(pa) > max(ma)
                    self.loss(cat, ("%s: Petrel " + fmt + ", memcached " + fmt + " (%.2f×)") % (
                        name, p[k], m[k], r), clear)

    def losses_section(self):
        self.w("## Where Petrel loses")
        self.w()
        if not self.losses:
            self.w("In this run Petrel was not behind its peer by more than %d %% on any figure compared below."
                   % round(TIE * 100))
            self.w()
            return
        self.w("Every comparison below in which Petrel is behind its peer by more than %d %% (smaller "
               "differences count as ties), as measured in this run. A loss marked *within the run-to-run "
               "spread* is one where the ranges of the rounds overlap.%s" % (
                   round(TIE * 100), " The open-loop cells (latency against offered load) compare the medians of "
                   "their rounds." if self.lat_rounds > 1 else ""))
        self.w()
        for cat, items in self.losses.items():
            n = self.compared.get(cat)
            self.w("- **%s**%s:" % (cat, " (%d of %d compared)" % (len(items), n) if n else ""))
            for t in items:
                self.w("  - " + t)
        if any("resident memory" in c for c in self.losses):
            self.w()
            self.w("About resident memory: Petrel maps its whole arena (item memory plus hash table) at start-up "
                   "and, running as root, locks it in RAM (`mlock`), so its RSS is the full size from the first "
                   "request; memcached's grows with the data stored. The memory section compares both when full.")
        self.w()

    def interference(self):
        """Median share of the server's core used by other processes during network cells, or None."""
        vals = [v["other_cpu_pct"] for sec, _n, _r, v in self.rows
                if sec in ("tcp", "udp") and isinstance(v.get("other_cpu_pct"), float)]
        return med(vals) if vals else None

    def tail_text(self):
        """The tail-latency comparison in one paragraph: closed-loop TCP cells, then every transport
        of the open-loop section (cells where Petrel's p99 / p99.9 is no higher than memcached's)."""
        parts = []
        for cat_p99, cat_p999, what in (("TCP p99 latency", "TCP p99.9 latency", "closed-loop TCP"),):
            n = self.compared.get(cat_p99)
            if n:
                parts.append("%s: Petrel's p99 no higher than memcached's (within %d %%) in %d of %d cells, "
                             "p99.9 in %d of %d" % (what, round(TIE * 100), n - len(self.losses.get(cat_p99, [])),
                                                   n, n - len(self.losses.get(cat_p999, [])),
                                                   self.compared.get(cat_p999, 0)))
        names = {"tcp": "TCP", "udp": "kernel UDP", "xdp": "AF_XDP"}
        for transport in ("tcp", "udp", "xdp"):
            summary = self.lat_summary.get(transport)
            if not summary:
                continue
            bits = []
            for key, what in (("p99_us", "p99"), ("p999_us", "p99.9")):
                rs = [ratio(p[key], m[key]) for _k, _pct, p, m in summary]
                worst = max(range(len(rs)), key=lambda i: rs[i])
                wk, wpct = summary[worst][0], summary[worst][1]
                bits.append("%s in %d of %d (worst %.2f× at -t %d, %s, %d %%)" % (
                    what, sum(1 for r in rs if r <= 1 + TIE), len(rs), rs[worst], wk[1], wk[2], wpct))
            parts.append("open loop %s at 10–95 %% of the lower peak%s: Petrel no higher than memcached at %s" % (
                names[transport], " (medians of %d rounds)" % self.lat_rounds if self.lat_rounds > 1 else "",
                ", ".join(bits)))
        if not parts:
            return ""
        return "Tail latency: " + "; ".join(parts) + "."

    def update_readme(self, readme):
        """Replace the headline block of `readme` (if it has one) with this run's plot and figures."""
        plot = self.plots.get("tcp-throughput.png")
        if not plot or not os.path.exists(readme):
            print("bench_report: README not updated (no TCP plot or no %s)" % readme)
            return
        with open(readme) as f:
            text = f.read()
        if README_BEGIN not in text or README_END not in text:
            print("bench_report: %s has no bench-headline block; not updated" % readme)
            return
        base = os.path.dirname(os.path.abspath(readme))
        rel = lambda p: os.path.relpath(os.path.abspath(p), base)
        ratios = [ratio(p["ops_per_sec"], m["ops_per_sec"]) for _l, _k, p, m in self.tcp_summary or []]
        cats = ["%s (%d)" % (c, len(v)) if len(v) > 1 else c for c, v in self.losses.items()]
        block = readme_block(rel(self.out), rel(plot), self.machine, ratios, cats, self.interference(),
                             self.tail_text())
        head, rest = text.split(README_BEGIN, 1)
        tail = rest.split(README_END, 1)[1]
        with open(readme, "w") as f:
            f.write(head + block + tail)
        print("bench_report: updated the headline in %s" % readme)

    def write(self):
        self.header()
        if self.plt is None:
            self.w("> matplotlib is not installed for this Python: no plots in this report.")
            self.w()
        body_start = len(self.lines)
        self.core()
        self.tcp_summary = self.network("tcp", "TCP: Petrel vs memcached on loopback",
                     "Same client and workloads for both: `get` with the stated probability, else `set`, "
                     "16 B keys, over 100k keys (32 B values) or 20k keys (1 KiB values), all preloaded. "
                     "Latency is per request, from send to complete reply, including client-side queueing "
                     "at depth 8.")
        self.network("udp", "UDP on loopback: Petrel's kernel-UDP front end vs memcached -U",
                     "One request per datagram (memcache UDP frame), `-t 1`, 32 B values, 100k keys "
                     "preloaded over TCP. A request without a reply within 500 ms counts as lost.")
        tls = self.network("tls", "TLS on loopback: Petrel -Z vs memcached -Z",
                           "Both servers with the same RSA 2048 certificate (`-Z -o ssl_chain_cert=..,ssl_key=..`), "
                           "`-t 1`; the same client (petrel-load with rustls, `--tls-ca`), which completes every "
                           "handshake before the measured window. 90/10 get/set, 16 B keys, 32 B values, 100k keys "
                           "preloaded over TLS, 20 connections.")
        if tls is not None:
            self.tls_targets(tls)
        self.xdp()
        self.latency_load()
        self.memory()
        self.startup()
        self.flood()
        body = self.lines[body_start:]
        self.lines = self.lines[:body_start]
        other = self.interference()
        if other is not None and other > 25:
            stopped = self.machine.get("repeats_stopped")
            self.w("> **Caution: a disturbed run.** Other processes used a median %.0f %% of the server's core "
                   "while the network cells were measured (see each section)%s. The medians and spreads below are "
                   "what was measured, but they say more about this shared machine than about the servers; rerun "
                   "`scripts/bench` on an otherwise idle machine for figures to rely on." % (
                       other, "; repeating disturbed cells stopped %s" % stopped if stopped else ""))
            self.w()
        self.losses_section()
        self.lines += body
        with open(self.out, "w") as f:
            f.write("\n".join(self.lines).rstrip() + "\n")
        print("bench_report: wrote %s and %d plot(s)" % (self.out, len(self.plots)))


README_BEGIN = "<!-- bench-headline: written by scripts/bench, do not edit by hand -->"
README_END = "<!-- /bench-headline -->"


def readme_block(report_rel, plot_rel, machine, tcp_ratios, loss_categories, other_pct, tail=""):
    m = machine
    lines = [README_BEGIN,
             "Latest run: `scripts/bench%s` on %s; %s, %s, %s; %s vs %s; %s." % (
                 " --quick" if m.get("mode") == "quick" else "", m.get("date", "?"), m.get("cpu", "?"),
                 m.get("cores", "?").split(" (")[0] + " cores", m.get("kernel", "?"), m.get("petrel", "?"),
                 m.get("memcached", "?"), m.get("pinning", "?")),
             "Load average before/after the run: %s / %s%s." % (
                 m.get("load_before", "?"), m.get("load_after", "?"),
                 "; other processes used a median %.0f %% of the server's core during the network cells, so "
                 "these figures are indicative only" % other_pct if other_pct is not None and other_pct > 25
                 else "")]
    if tcp_ratios:
        lines.append("")
        lines.append("TCP throughput Petrel/memcached over %d workloads: median %.2f×, range %.2f×–%.2f× "
                     "(full tables, latency, CPU, memory and where Petrel loses: [%s](%s))." % (
                         len(tcp_ratios), med(tcp_ratios), min(tcp_ratios), max(tcp_ratios), report_rel, report_rel))
    if tail:
        lines.append("")
        lines.append(tail)
    if loss_categories:
        lines.append("")
        lines.append("Petrel is behind its peer (by more than %d %%) on: %s." % (
            round(TIE * 100), "; ".join(loss_categories)))
    lines += ["", "![TCP throughput, Petrel vs memcached](%s)" % plot_rel, README_END]
    return "\n".join(lines)


def main(argv):
    if len(argv) >= 2 and argv[1] == "criterion":
        if len(argv) != 6:
            sys.exit("usage: bench_report.py criterion CRITERION_DIR ROUND LOG START_EPOCH")
        criterion_lines(argv[2], int(argv[3]), argv[4], float(argv[5]))
    elif len(argv) >= 2 and argv[1] == "report":
        import argparse

        ap = argparse.ArgumentParser(prog="bench_report.py report")
        ap.add_argument("--raw", required=True)
        ap.add_argument("--out", required=True)
        ap.add_argument("--readme", help="README whose headline block (between README_BEGIN and README_END) "
                                         "is replaced by the headline plot of this report")
        a = ap.parse_args(argv[2:])
        r = Report(a.raw, a.out)
        r.write()
        if a.readme:
            r.update_readme(a.readme)
    elif len(argv) == 2 and os.path.isfile(argv[1]):
        tcp_summary(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
