//! A real Prometheus server scrapes a real Petrel, and what it stores is what the requests
//! sent say.
//!
//! The test starts Debian's `prometheus` (2.42, installed by `scripts/setup`) on a free
//! loopback port with a generated configuration (one job, `petrel`, scraping the admin
//! endpoint every second), its own storage directory and `monitoring/prometheus/alerts.yml`
//! as its rule file; it stops it by PID at the end. Then, through Prometheus' HTTP API:
//!
//! - the target is up, and every counter the requests move has exactly the value sent;
//! - `histogram_quantile(0.99, ...)` over the latency buckets is consistent with the client's
//!   own measurement of the same requests (see [`P99_TOLERANCE`]) and with the server's own
//!   p99 in `stats`;
//! - `petrel_uptime_seconds` is within two seconds of `stats`' `uptime`;
//! - every alert rule evaluates without error against the live data, and none fires;
//! - every expression of the Grafana dashboard (`monitoring/grafana/petrel.json`) is accepted
//!   by the query API, and names only metrics Petrel exposes.
//!
//! Also without a server: `promtool check metrics` accepts `/metrics` with no warning,
//! `promtool check rules` the rules, and `promtool test rules` runs their unit tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petrel_tests::net::free_port;
use petrel_tests::server::{workspace_root, Server, Target};
use petrel_tests::skip::require_program;
use petrel_tests::tcp::Conn;
use petrel_tests::wait::wait_until;
use serde_json::Value;

/// How far Prometheus' p99 may lie above the client's.
///
/// The server measures each request from the moment it is complete in its buffer to the moment
/// its reply is handed to the socket: inside the client's round trip, so every server latency
/// is at most the client's latency of the same request, and so is the server's p99 at most the
/// client's p99. `histogram_quantile` interpolates inside the bucket holding the p99 rank, and
/// can answer up to that bucket's upper bound; consecutive `le` bounds are 2^k and 1.5 x 2^k
/// ns, so the upper bound is at most 1.5 times any value in the bucket.
const P99_TOLERANCE: f64 = 1.5;

/// One HTTP/1.0 exchange; returns the status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("HTTP reply");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form(v: &str) -> String {
    let mut o = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// Prometheus started by this test, stopped by PID on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(target: SocketAddr, rules: &Path) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("petrel-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: petrel\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, dir, addr };
        wait_until(Duration::from_secs(60), "prometheus ready", || {
            TcpStream::connect(addr).is_ok() && http(addr, "GET", "/-/ready", "").0 == 200
        });
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant query; `Err` carries Prometheus' error.
    fn try_query(&self, expr: &str) -> Result<Value, String> {
        let (status, body) = http(
            self.addr,
            "POST",
            "/api/v1/query",
            &format!("query={}", form(expr)),
        );
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("status {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("status {status}: {body}"));
        }
        Ok(v["data"]["result"].clone())
    }

    /// The single value of an instant query returning one sample, with its timestamp.
    fn scalar_at(&self, expr: &str) -> Option<(f64, f64)> {
        let r = self
            .try_query(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let s = r.as_array()?.first()?;
        let t = s["value"][0].as_f64()?;
        let v = s["value"][1].as_str()?.parse().ok()?;
        Some((v, t))
    }

    fn scalar(&self, expr: &str) -> Option<f64> {
        self.scalar_at(expr).map(|(v, _)| v)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn monitoring() -> PathBuf {
    workspace_root().join("monitoring")
}

fn have_prometheus() -> bool {
    require_program(
        "prometheus",
        "--version",
        "scripts/setup installs Debian's prometheus",
    ) && require_program(
        "promtool",
        "--version",
        "scripts/setup installs Debian's prometheus",
    )
}

fn promtool(args: &[&str], stdin: Option<&str>, dir: &Path) -> (bool, String) {
    let mut c = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    let mut input = c.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = c.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !have_prometheus() {
        return;
    }
    let dir = monitoring().join("prometheus");
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], None, &dir);
    assert!(ok, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yml"], None, &dir);
    assert!(ok, "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

fn start_petrel() -> Option<(Server, SocketAddr)> {
    let target = Target::petrel()?;
    let admin_port = free_port();
    let server = target
        .builder()
        .threads(1)
        .arg("--admin-port")
        .arg(&admin_port.to_string())
        .start();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    wait_until(Duration::from_secs(10), "admin port open", || {
        TcpStream::connect(admin).is_ok()
    });
    Some((server, admin))
}

fn metrics_text(admin: SocketAddr) -> String {
    let (status, body) = http(admin, "GET", "/metrics", "");
    assert_eq!(status, 200);
    body
}

/// A `stats` figure of the admin port (memcached's lines first, then Petrel's).
fn admin_stat(admin: SocketAddr, name: &str) -> String {
    let mut c = Conn::connect(admin);
    c.send(b"stats\r\n");
    let text = String::from_utf8(c.read_until_suffix(b"END\r\n", Duration::from_secs(10)))
        .expect("ascii stats");
    let prefix = format!("STAT {name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in stats:\n{text}"))
        .to_string()
}

#[test]
fn metrics_pass_promtool_check_metrics_without_a_warning() {
    if !have_prometheus() {
        return;
    }
    let Some((server, admin)) = start_petrel() else {
        return;
    };
    // some traffic, so that every family has moved
    let mut c = Conn::connect(server.tcp_addr());
    c.check(b"set a 0 0 1\r\n1\r\n", b"STORED\r\n");
    c.check(b"get a b\r\n", b"VALUE a 0 1\r\n1\r\nEND\r\n");
    let text = metrics_text(admin);
    let (ok, out) = promtool(&["check", "metrics"], Some(&text), &std::env::temp_dir());
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );
    // what promtool would say about a gauge ending in _total: the check can fail
    let (ok, out) = promtool(
        &["check", "metrics"],
        Some("# HELP x_total a gauge\n# TYPE x_total gauge\nx_total 1\n"),
        &std::env::temp_dir(),
    );
    assert!(!ok && out.contains("_total"), "{out}");
}

/// Metric names an expression uses (`petrel_*`, `process_*`, `up`).
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if word_start && (expr[i..].starts_with("petrel_") || expr[i..].starts_with("process_")) {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            out.push(expr[i..j].to_string());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Every metric name Petrel can expose: the live exposition's, plus the families that exist
/// only while AF_XDP serves (from README's generated table).
fn known_names(exposition: &str) -> Vec<String> {
    let mut names: Vec<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    for l in readme.lines() {
        if let Some(rest) = l.strip_prefix("| `petrel_xdp_") {
            names.push(format!("petrel_xdp_{}", rest.split('`').next().unwrap()));
        }
    }
    let mut with_suffixes = Vec::new();
    for n in &names {
        for s in ["_bucket", "_sum", "_count"] {
            with_suffixes.push(format!("{n}{s}"));
        }
    }
    names.extend(with_suffixes);
    names
}

/// The dashboard's expressions with Grafana's variables replaced by what a query of the last
/// minutes would use.
fn dashboard_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring().join("grafana/petrel.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).expect("petrel.json is JSON");
    assert_eq!(doc["uid"], "petrel");
    assert!(doc["__inputs"][0]["name"] == "DS_PROMETHEUS", "importable");
    let mut out = Vec::new();
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(e) = m.get("expr").and_then(Value::as_str) {
                    out.push((title.to_string(), e.to_string()));
                }
                for v in m.values() {
                    walk(v, title, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, title, out)),
            _ => {}
        }
    }
    walk(&doc["panels"], "", &mut out);
    out.into_iter()
        .map(|(t, e)| {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$instance", ".*");
            assert!(!e.contains('$'), "{t}: unknown variable in {e}");
            (t, e)
        })
        .collect()
}

#[test]
fn prometheus_scrapes_petrel_and_agrees_with_the_requests_sent() {
    if !have_prometheus() {
        return;
    }
    let Some((server, admin)) = start_petrel() else {
        return;
    };
    let rules = monitoring().join("prometheus/alerts.yml");
    let prom = Prometheus::start(admin, &rules);

    // the target is up
    wait_until(Duration::from_secs(60), "target up", || {
        prom.scalar("up{job=\"petrel\"}") == Some(1.0)
    });

    // requests, each timed by the client
    const GETS: usize = 2000;
    const SETS: usize = 500;
    let mut c = Conn::connect(server.tcp_addr());
    let mut rtt_get = Vec::with_capacity(GETS);
    for i in 0..SETS {
        c.check(
            format!("set k{i} 0 0 4\r\nv{i:03}\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    for i in 0..GETS {
        let k = i % SETS;
        let req = format!("get k{k}\r\n");
        let reply = format!("VALUE k{k} 0 4\r\nv{k:03}\r\nEND\r\n");
        let t = Instant::now();
        c.check(req.as_bytes(), reply.as_bytes());
        rtt_get.push(t.elapsed().as_secs_f64());
    }
    drop(c);
    rtt_get.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let client_p99 = rtt_get[(GETS * 99).div_ceil(100) - 1];

    // Prometheus has a scrape taken after the last request once the counts are all there
    let count = "petrel_request_duration_seconds_count{class=\"get\",transport=\"tcp\"}";
    wait_until(Duration::from_secs(60), "a scrape with every get", || {
        prom.scalar(count) == Some(GETS as f64)
    });
    for (expr, want) in [
        ("petrel_engine_cmd_get_total", GETS),
        ("petrel_engine_get_hits_total", GETS),
        ("petrel_engine_get_misses_total", 0),
        ("petrel_engine_cmd_set_total", SETS),
        ("petrel_engine_store_stored_total", SETS),
        ("petrel_store_items", SETS),
        (
            "petrel_request_duration_seconds_count{class=\"set\",transport=\"tcp\"}",
            SETS,
        ),
        (
            "petrel_request_duration_seconds_bucket{class=\"get\",transport=\"tcp\",le=\"+Inf\"}",
            GETS,
        ),
    ] {
        assert_eq!(prom.scalar(expr), Some(want as f64), "{expr}");
    }

    // every bucket counts at least the client round trips below its bound (each server
    // latency lies inside its round trip), and the buckets only grow
    let buckets = prom
        .try_query("petrel_request_duration_seconds_bucket{class=\"get\",transport=\"tcp\"}")
        .unwrap();
    let mut seen = Vec::new();
    for s in buckets.as_array().unwrap() {
        let le = s["metric"]["le"].as_str().unwrap();
        let v: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
        let bound: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        let client_below = rtt_get.iter().filter(|r| **r < bound).count() as f64;
        assert!(
            v >= client_below,
            "le {le}: {v} server latencies below, but {client_below} client round trips"
        );
        seen.push((bound, v));
    }
    seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(seen.len(), 52, "51 bounds and +Inf");
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "{seen:?}");

    // p99: Prometheus' interpolation against the client's measurement and the server's own
    let prom_p99 = prom
        .scalar(
            "histogram_quantile(0.99, petrel_request_duration_seconds_bucket{class=\"get\",transport=\"tcp\"})",
        )
        .expect("p99");
    eprintln!(
        "get p99: Prometheus {:.1} us, client {:.1} us",
        prom_p99 * 1e6,
        client_p99 * 1e6
    );
    assert!(
        prom_p99 > 0.0 && prom_p99 <= client_p99 * P99_TOLERANCE,
        "Prometheus p99 {prom_p99} s vs client p99 {client_p99} s (x{P99_TOLERANCE})"
    );
    // the server's p99 (stats, the last minute: all of these requests) lies in the same
    // bucket as the one Prometheus interpolated in
    let server_p99 = admin_stat(admin, "request_duration:tcp:get:p99_us")
        .parse::<f64>()
        .unwrap()
        * 1e-6;
    // stats prints whole microseconds, truncated: the server's figure lies in
    // [printed, printed + 1 us), which can span buckets when it is a few microseconds
    let bucket_of = |v: f64| seen.iter().position(|(b, _)| v < *b).unwrap();
    let (lo, hi) = (
        bucket_of(server_p99),
        bucket_of(server_p99 + 1e-6 * 0.999_999),
    );
    let j = bucket_of(prom_p99 * 0.999_999);
    assert!(
        j + 1 >= lo && j <= hi + 1,
        "server p99 {server_p99} s (buckets {lo}..={hi}) vs Prometheus {prom_p99} s (bucket {j})"
    );
    // (stats reports a bucket's middle: within 1/128 of the value)
    assert!(
        server_p99 <= client_p99 * (1.0 + 1.0 / 128.0),
        "server p99 {server_p99} s vs client p99 {client_p99} s"
    );

    // uptime: Prometheus' last scrape, carried to now, against stats read now
    let (up, at) = prom.scalar_at("petrel_uptime_seconds").unwrap();
    let stats_uptime: f64 = admin_stat(admin, "uptime").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (scraped, _) = prom.scalar_at("timestamp(petrel_uptime_seconds)").unwrap();
    let carried = up + (now - scraped);
    assert!(
        (carried - stats_uptime).abs() <= 2.0,
        "petrel_uptime_seconds {up} at {scraped} (query at {at}), carried to now {carried}, stats uptime {stats_uptime}"
    );

    // the alert rules: loaded, evaluated against this server without error, none firing
    wait_until(Duration::from_secs(30), "rules evaluated", || {
        let (_, body) = http(prom.addr, "GET", "/api/v1/rules", "");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let rules = &v["data"]["groups"][0]["rules"];
        rules.as_array().is_some_and(|r| {
            r.len() == 7
                && r.iter()
                    .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
        })
    });
    // (a p99 over 10 ms on a loaded machine may be pending; none has lasted its `for:`)
    let (_, body) = http(prom.addr, "GET", "/api/v1/alerts", "");
    let alerts: Value = serde_json::from_str(&body).unwrap();
    let alerts = alerts["data"]["alerts"].as_array().expect("alerts").clone();
    assert!(alerts.iter().all(|a| a["state"] != "firing"), "{alerts:?}");

    // the dashboard: every expression is accepted, and names only metrics Petrel exposes
    let exposition = metrics_text(admin);
    let known = known_names(&exposition);
    let exprs = dashboard_expressions();
    assert!(exprs.len() >= 30, "{} expressions", exprs.len());
    let mut with_data = 0;
    for (title, e) in &exprs {
        for n in names_in(e) {
            assert!(known.contains(&n), "{title}: {n} is not a Petrel metric");
        }
        let r = prom
            .try_query(e)
            .unwrap_or_else(|err| panic!("{title}: {e}: {err}"));
        if r.as_array().is_some_and(|a| !a.is_empty()) {
            with_data += 1;
        }
    }
    // AF_XDP's panels are empty here (no AF_XDP); the rest answer
    let xdp = exprs
        .iter()
        .filter(|(_, e)| e.contains("petrel_xdp_"))
        .count();
    assert!(
        with_data >= exprs.len() - xdp - 2,
        "{with_data} of {} expressions returned data",
        exprs.len()
    );
    // and the alert rules name only Petrel's metrics too
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    for n in names_in(&rules_text) {
        assert!(known.contains(&n), "alerts.yml: {n} is not a Petrel metric");
    }
    if !prom.log().is_empty() {
        eprintln!("prometheus log:\n{}", prom.log());
    }
}
