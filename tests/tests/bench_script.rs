//! Smoke tests of the benchmark tooling, not benchmarks: `scripts/bench` parses its
//! options, its `--tiny` mode runs end to end against Petrel and memcached and writes a report,
//! and `scripts/bench_report.py` turns result lines into tables and lists every comparison
//! Petrel loses. The real runs are `scripts/bench --quick` and `scripts/bench` (never in CI).

use petrel_tests::server::{petrel_path, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("petrel-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn bench(args: &[&str]) -> Output {
    Command::new(workspace_root().join("scripts/bench"))
        .args(args)
        .output()
        .expect("run scripts/bench")
}

/// The Python the bench script uses (Debian's, which has matplotlib once installed).
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Writes `results` and `machine` as the raw files of a run in `dir/raw`, renders them with
/// `scripts/bench_report.py` and returns the report.
fn render_report(dir: &Path, results: &str, machine: &str) -> String {
    let raw = dir.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    std::fs::write(raw.join("results.tsv"), results).unwrap();
    std::fs::write(raw.join("machine.tsv"), machine).unwrap();
    let report = dir.join("report.md");
    let out = Command::new(python())
        .arg(workspace_root().join("scripts/bench_report.py"))
        .args(["report", "--raw"])
        .arg(&raw)
        .arg("--out")
        .arg(&report)
        .output()
        .expect("run bench_report.py");
    assert!(
        out.status.success(),
        "bench_report.py failed: {}",
        text(&out)
    );
    std::fs::read_to_string(&report).unwrap()
}

#[test]
fn help_and_bad_options() {
    let out = bench(&["--help"]);
    assert!(out.status.success(), "--help failed: {}", text(&out));
    let help = text(&out);
    for word in ["--quick", "--out", "--runs", "--only", "taskset"] {
        assert!(
            help.contains(word),
            "--help does not mention {word}:\n{help}"
        );
    }
    for bad in [
        &["--runs", "2"][..],
        &["--only", "tcp,bogus"],
        &["--frobnicate"],
    ] {
        let out = bench(bad);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{bad:?} accepted: {}",
            text(&out)
        );
    }
}

/// Result lines in which Petrel wins some comparisons and loses others: the report must quote
/// medians, show the spread and list exactly the losses.
#[test]
fn report_lists_where_petrel_loses() {
    let dir = temp_dir("report");
    let cell = "threads=1 get_ratio=0.9 value_size=32 pipeline=8";
    let net = |server: &str, round: u32, ops: u32, p99: f64, cpu: f64| {
        format!(
            "tcp\t{server}\t{round}\t{cell} ops_per_sec={ops} requests=1000 errors=0 misses=0 lost=0 \
             p50_us=10.0 p90_us=20.0 p99_us={p99} p999_us=50.0 max_us=90.0 server_cpu_s=0.1 \
             server_cpu_us_per_req={cpu} rss_kb=1024\n"
        )
    };
    let mut tsv = String::new();
    for (round, po, mo) in [
        (1, 100_000, 80_000),
        (2, 90_000, 85_000),
        (3, 120_000, 70_000),
    ] {
        // Petrel: faster, but a worse p99 and more CPU per request
        tsv += &net("petrel", round, po, 40.0, 3.0);
        tsv += &net("memcached", round, mo, 30.0, 2.0);
    }
    tsv += "core\tpetrel\t1\tgroup=get_hit_x ns_per_op=100 ops_per_sec=10000000 samples_ns=90,100,110\n";
    tsv += "core\thashbrown\t1\tgroup=get_hit_x ns_per_op=50 ops_per_sec=20000000 samples_ns=50,50,50\n";
    tsv +=
        "core\tsegcache\t1\tgroup=get_hit_x ns_per_op=200 ops_per_sec=5000000 samples_ns=200,200\n";
    for (server, hits) in [("petrel", 900), ("memcached", 1000)] {
        tsv += &format!(
            "mem\t{server}\t1\tworkload=small stored=1000 items_before_eviction={hits} curr_items={hits} \
             evictions=1 hits={hits} hit_value_bytes=32000 stored_value_bytes=32000 set_failures=0 \
             keys_sent=1000 fill_secs=1 scan_secs=1 rss_kb=2048\n"
        );
    }
    let md = render_report(&dir, &tsv, "date\t2026-01-01 00:00 UTC\nruns\t3\n");
    // medians and spreads
    assert!(md.contains("| petrel | 100000 | 90000–120000 |"), "{md}");
    assert!(md.contains("| memcached | 80000 | 70000–85000 |"), "{md}");
    assert!(md.contains("| 1.25× | 1.33× | 1.50× |"), "ratios: {md}");
    let losses: Vec<&str> = md
        .split("## Where Petrel loses")
        .nth(1)
        .expect("a losses section")
        .split("\n## ")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  - "))
        .collect();
    let want = [
        "`get_hit_x`: hashbrown 50.0 vs Petrel 100.0 ns/op",
        "-t 1, 90/10, 32 B, depth 8: 40.0 µs vs 30.0 µs (1.33×)",
        "-t 1, 90/10, 32 B, depth 8: 3.00 µs vs 2.00 µs (1.50×)",
        "`small`: Petrel keeps 900 items, memcached 1000",
    ];
    assert_eq!(losses.len(), want.len(), "losses: {losses:#?}");
    for w in want {
        assert!(
            losses.iter().any(|l| l.contains(w)),
            "missing loss {w:?} in {losses:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Open-loop cells measured in three rounds: the report quotes each figure's median with the
/// range of the rounds, and the ratios and losses come from the medians, not from one round.
#[test]
fn report_quotes_open_loop_medians() {
    let dir = temp_dir("lat");
    let base = "transport=tcp threads=2 dist=uniform get_ratio=0.9 value_size=32";
    let mut tsv = String::new();
    for (server, ops) in [("petrel", 12_000), ("memcached", 10_000)] {
        tsv += &format!(
            "latpeak\t{server}\t1\t{base} ops_per_sec={ops} requests={ops} errors=0 lost=0 late=0 \
             p50_us=50.0 p99_us=200.0 p999_us=400.0 max_us=900.0\n"
        );
    }
    // (load %, server, p99 by round, p99.9 by round, store_lock_waits)
    let cells = [
        // round 2 alone would be a clear loss; the median is a tie-breaker loss within the spread
        (
            10,
            "petrel",
            [100.0, 500.0, 120.0],
            [200.0, 210.0, 220.0],
            " store_lock_waits=7",
        ),
        (
            10,
            "memcached",
            [110.0, 115.0, 130.0],
            [300.0, 310.0, 320.0],
            "",
        ),
        // a clear loss at p99.9: every Petrel round above every memcached round
        (
            50,
            "petrel",
            [90.0, 95.0, 100.0],
            [900.0, 950.0, 1000.0],
            " store_lock_waits=3",
        ),
        (
            50,
            "memcached",
            [90.0, 95.0, 100.0],
            [500.0, 520.0, 540.0],
            "",
        ),
    ];
    for (pct, server, p99, p999, locks) in cells {
        let rate = 10_000 * pct / 100;
        for round in 0..3 {
            tsv += &format!(
                "lat\t{server}\t{}\t{base} load_pct={pct} rate={rate} peak=10000 secs=2.5 \
                 ops_per_sec={rate} requests=25000 errors=0 misses=0 lost={round} late=250 p50_us=40.0 \
                 p99_us={} p999_us={} max_us=2000.0{locks}\n",
                round + 1,
                p99[round],
                p999[round]
            );
        }
    }
    let md = render_report(&dir, &tsv, "date\t2026-01-01 00:00 UTC\nruns\t3\nlat_secs\t1\nlat_warm\t0.2\nlat_min_requests\t25000\nlat_rounds\t3\n");
    for row in [
        "| -t 2, uniform, 10 % | 1000 | petrel | 3 | 1000 | 40.0 | 120.0 (100.0–500.0) | 210.0 (200.0–220.0) \
         | 2000 | 1.0 % | 1 (0–2) | 7 | 1.04× | 0.68× |",
        "| -t 2, uniform, 10 % | 1000 | memcached | 3 | 1000 | 40.0 | 115.0 (110.0–130.0) | 310.0 (300.0–320.0) \
         | 2000 | 1.0 % | 1 (0–2) | - | - | - |",
    ] {
        assert!(md.contains(row), "no row {row:?} in\n{md}");
    }
    assert!(md.contains("Each cell is measured in 3 rounds"), "{md}");
    assert!(
        md.contains("rests on the slowest 0.1 % of its 25000 requests: 25 requests"),
        "{md}"
    );
    let losses: Vec<&str> = md
        .split("## Where Petrel loses")
        .nth(1)
        .expect("a losses section")
        .split("\n## ")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  - "))
        .collect();
    let want = [
        "-t 2, uniform, 10 % (1000/s): 120.0 µs vs 115.0 µs (1.04×) (within the run-to-run spread)",
        "-t 2, uniform, 50 % (5000/s): 950.0 µs vs 520.0 µs (1.83×)",
    ];
    assert_eq!(losses.len(), want.len(), "losses: {losses:#?}");
    for (got, w) in losses.iter().zip(want) {
        assert!(got.ends_with(w), "loss {got:?}, want {w:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scripts/bench --tiny`: one TCP cell, three alternating rounds of 0.2 s against both servers.
#[test]
fn tiny_mode_runs_end_to_end() {
    if !petrel_tests::server::require_memcached() {
        return;
    }
    let petrel = petrel_path();
    assert!(
        petrel.exists(),
        "{} missing: run `cargo build --release -p petrel` first",
        petrel.display()
    );
    let dir = temp_dir("tiny");
    let report = dir.join("report.md");
    let out = Command::new(workspace_root().join("scripts/bench"))
        .args(["--tiny", "--no-build", "--out"])
        .arg(&report)
        .env("PETREL_BIN", &petrel)
        .env("LOAD_BIN", env!("CARGO_BIN_EXE_petrel-load"))
        .output()
        .expect("run scripts/bench --tiny");
    assert!(
        out.status.success(),
        "scripts/bench --tiny failed: {}",
        text(&out)
    );
    let md = std::fs::read_to_string(&report).expect("report written");
    for row in [
        "| -t 1, 90/10, 32 B, depth 1 | petrel |",
        "| -t 1, 90/10, 32 B, depth 1 | memcached |",
    ] {
        assert!(md.contains(row), "no row {row:?} in\n{md}");
    }
    let raw = std::fs::read_to_string(dir.join("raw/results.tsv")).unwrap();
    assert_eq!(raw.lines().count(), 6, "3 rounds x 2 servers:\n{raw}");
    for line in raw.lines() {
        assert!(line.contains("errors=0"), "errors in {line}");
        assert!(
            !line.contains("server_cpu_us_per_req= "),
            "no CPU figure in {line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
