//! Every metric the server exposes, gathered in one place, and the three
//! ways it is written out: Prometheus text (`GET /metrics`), JSON
//! (`GET /metrics.json`) and memcache `STAT` lines (the admin port's
//! `stats`).
//!
//! ```text
//!  EngineStats  StoreStats  FrontendStats  LatencyStats  LogStats  KlogStats  (+ sources added at run time, e.g. AF_XDP)
//!       \___________\____________|______________|____________/_________/
//!                                 collect()  ──▶ Vec<Family>
//!                 ┌─────────────────┼──────────────────┐
//!           prometheus()          json()            stat_lines()
//! ```
//!
//! Names, units and descriptions come from the `metrics!` declarations
//! next to the code that updates them ([`GROUPS`] lists which), so the
//! README's metric table ([`markdown_table`]) is generated from the same
//! place. A metric `name` of group `g` is exposed as `petrel_<g>_<name>`,
//! with `_total` appended for counters. Collecting allocates; it runs on
//! the admin thread, never on a worker.

use std::fmt::Write as _;
use std::time::Instant;

use std::sync::Arc;

use petrel_core::engine::{Engine, EngineStats};
use petrel_core::guard::{GuardStats, UdpGuard};
use petrel_core::histogram::{CommandClass, LatencyStats, Summary, QUANTILES_PPM};
use petrel_core::stats::{Desc, Kind, StoreStats};
use petrel_tcp::{FrontendStats, StatsHandle};

use crate::klog::KlogStats;
use crate::logger::LogStats;

/// A metric's type as Prometheus knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Only grows.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Quantiles, sum and count of a latency histogram.
    Summary,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Summary => "summary",
        }
    }
}

/// One labelled value of a family.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A counter or gauge.
    Scalar(u64),
    /// A latency histogram (nanoseconds).
    Summary(Summary),
}

/// One value with its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label names and values, in order.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: Value,
}

/// All samples of one metric name.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// Full exposed name (`petrel_engine_cmd_get_total`).
    pub name: String,
    /// Counter, gauge or summary.
    pub kind: Type,
    /// What one unit is (for summaries: `seconds`).
    pub unit: &'static str,
    /// One line.
    pub help: String,
    /// Label names every sample carries (for the README table).
    pub label_names: &'static [&'static str],
    /// The values.
    pub samples: Vec<Sample>,
}

// Read by the README table (a test) rather than at run time.
#[allow(dead_code)]
/// A group of `metrics!` declarations: exposed name prefix, the
/// declarations, and where the figures come from.
pub struct Group {
    /// `petrel_<prefix>_...`.
    pub prefix: &'static str,
    /// What the group covers.
    pub about: &'static str,
    /// Its metrics.
    pub descs: &'static [Desc],
}

// Read by the README table (a test) rather than at run time.
#[allow(dead_code)]
/// Every statically declared group, in exposition order.
pub const GROUPS: &[Group] = &[
    Group {
        prefix: "engine",
        about: "protocol counters of the engine (memcached's `stats` names)",
        descs: &EngineStats::DESCS,
    },
    Group {
        prefix: "store",
        about: "the Segcache store: items, segments, hash table, evictions, expirations",
        descs: &StoreStats::DESCS,
    },
    Group {
        prefix: "frontend",
        about: "the kernel-socket front ends: TCP connections and kernel UDP datagrams",
        descs: &FrontendStats::DESCS,
    },
    Group {
        prefix: "udp_guard",
        about: "the UDP amplification guard shared by the UDP paths",
        descs: &GuardStats::DESCS,
    },
    Group {
        prefix: "log",
        about: "the debug log (`log` records, written by a background thread)",
        descs: &LogStats::DESCS,
    },
    Group {
        prefix: "klog",
        about: "the command log (`--klog-file`)",
        descs: &KlogStats::DESCS,
    },
];

/// Name of the latency summary family.
pub const LATENCY_FAMILY: &str = "petrel_request_duration_seconds";
/// Name of the latency maximum family.
pub const LATENCY_MAX_FAMILY: &str = "petrel_request_duration_max_seconds";

/// Figures added at run time by a front end that is not always there
/// (e.g. AF_XDP): called at every collection, appends its families.
pub type ExtraSource = Box<dyn Fn(&mut Vec<Family>) + Send + Sync>;

/// Where the figures are read from.
pub struct Sources<'e> {
    /// The engine (its stats and its store's).
    pub engine: &'e Engine<'static>,
    /// The kernel-socket front ends' counters and latency.
    pub frontend: StatsHandle,
    /// More families (AF_XDP queues, ...).
    pub extra: Vec<ExtraSource>,
    /// The UDP amplification guard, when UDP is served.
    pub guard: Option<Arc<UdpGuard>>,
    /// When the server started.
    pub started: Instant,
}

/// The exposed name of metric `d` in group `prefix`.
pub fn exposed_name(prefix: &str, d: &Desc) -> String {
    match d.kind {
        Kind::Counter => format!("petrel_{prefix}_{}_total", d.name),
        Kind::Gauge => format!("petrel_{prefix}_{}", d.name),
    }
}

fn scalar_family(prefix: &str, d: &Desc, v: u64) -> Family {
    Family {
        name: exposed_name(prefix, d),
        kind: match d.kind {
            Kind::Counter => Type::Counter,
            Kind::Gauge => Type::Gauge,
        },
        unit: d.unit,
        help: d.description.to_string(),
        label_names: &[],
        samples: vec![Sample {
            labels: Vec::new(),
            value: Value::Scalar(v),
        }],
    }
}

/// The latency families (summary and max) over the given transports.
pub fn latency_families(sets: &[(&'static str, &LatencyStats)]) -> [Family; 2] {
    let mut summary = Family {
        name: LATENCY_FAMILY.to_string(),
        kind: Type::Summary,
        unit: "seconds",
        help: "request latency from the moment the request is complete in the front end's buffer to the moment its reply is handed to the socket or ring, by transport and command class".to_string(),
        label_names: &["transport", "class"],
        samples: Vec::new(),
    };
    let mut max = Family {
        name: LATENCY_MAX_FAMILY.to_string(),
        kind: Type::Gauge,
        unit: "seconds",
        help: "largest request latency seen since start, by transport and command class"
            .to_string(),
        label_names: &["transport", "class"],
        samples: Vec::new(),
    };
    for (transport, set) in sets {
        for c in CommandClass::ALL {
            let s = set.class(c).summary();
            let labels = vec![
                ("transport", transport.to_string()),
                ("class", c.name().to_string()),
            ];
            max.samples.push(Sample {
                labels: labels.clone(),
                value: Value::Scalar(s.max),
            });
            summary.samples.push(Sample {
                labels,
                value: Value::Summary(s),
            });
        }
    }
    [summary, max]
}

impl Sources<'_> {
    /// Reads every figure now.
    pub fn collect(&self) -> Vec<Family> {
        let mut out = Vec::new();
        out.push(Family {
            name: "petrel_uptime_seconds".into(),
            kind: Type::Gauge,
            unit: "seconds",
            help: "seconds since the server started".into(),
            label_names: &[],
            samples: vec![Sample {
                labels: Vec::new(),
                value: Value::Scalar(self.started.elapsed().as_secs()),
            }],
        });
        out.push(Family {
            name: "petrel_info".into(),
            kind: Type::Gauge,
            unit: "info",
            help: "always 1; the label carries the server version".into(),
            label_names: &["version"],
            samples: vec![Sample {
                labels: vec![("version", env!("CARGO_PKG_VERSION").to_string())],
                value: Value::Scalar(1),
            }],
        });
        let e = self.engine.stats();
        e.for_each_desc(|d, v| out.push(scalar_family("engine", d, v)));
        self.engine
            .store()
            .stats()
            .for_each_desc(|d, v| out.push(scalar_family("store", d, v)));
        self.frontend
            .for_each_desc(|d, v| out.push(scalar_family("frontend", d, v)));
        match &self.guard {
            Some(g) => g
                .stats()
                .for_each_desc(|d, v| out.push(scalar_family("udp_guard", d, v))),
            None => {
                GuardStats::new().for_each_desc(|d, v| out.push(scalar_family("udp_guard", d, v)))
            }
        }
        crate::logger::stats().for_each_desc(|d, v| out.push(scalar_family("log", d, v)));
        crate::klog::stats().for_each_desc(|d, v| out.push(scalar_family("klog", d, v)));
        out.extend(latency_families(&[
            ("tcp", self.frontend.tcp_latency()),
            ("udp", self.frontend.udp_latency()),
        ]));
        for source in &self.extra {
            source(&mut out);
        }
        out
    }
}

/// A label value or help text escaped for the Prometheus text format.
fn escape(s: &str, quote: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '"' if quote => o.push_str("\\\""),
            c => o.push(c),
        }
    }
    o
}

fn labels_text(labels: &[(&'static str, String)], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v, true)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Nanoseconds as seconds for exposition.
fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A quantile in parts per million as Prometheus writes it (`0.999`).
fn quantile_label(ppm: u32) -> String {
    let mut s = format!("{:.6}", f64::from(ppm) / 1e6);
    while s.ends_with('0') {
        s.pop();
    }
    s
}

/// The families in the Prometheus text exposition format, version 0.0.4.
pub fn prometheus(families: &[Family]) -> String {
    let mut o = String::new();
    for f in families {
        let _ = writeln!(
            o,
            "# HELP {} {} (unit: {})",
            f.name,
            escape(&f.help, false),
            f.unit
        );
        let _ = writeln!(o, "# TYPE {} {}", f.name, f.kind.name());
        for s in &f.samples {
            match &s.value {
                Value::Scalar(v) if f.unit == "seconds" => {
                    let _ = writeln!(
                        o,
                        "{}{} {}",
                        f.name,
                        labels_text(&s.labels, None),
                        seconds(*v)
                    );
                }
                Value::Scalar(v) => {
                    let _ = writeln!(o, "{}{} {v}", f.name, labels_text(&s.labels, None));
                }
                Value::Summary(sum) => {
                    for (q, v) in QUANTILES_PPM.iter().zip(sum.quantiles) {
                        let l = labels_text(&s.labels, Some(("quantile", &quantile_label(*q))));
                        let _ = writeln!(o, "{}{l} {}", f.name, seconds(v));
                    }
                    let l = labels_text(&s.labels, None);
                    let _ = writeln!(o, "{}_sum{l} {}", f.name, seconds(sum.sum));
                    let _ = writeln!(o, "{}_count{l} {}", f.name, sum.count);
                }
            }
        }
    }
    o
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The families as one JSON object:
/// `{"version": ..., "metrics": [{"name", "type", "unit", "help",
/// "samples": [{"labels": {...}, "value": N}]}]}`; a summary sample has
/// `count`, `sum_seconds`, `max_seconds` and `quantiles` (`{"0.5": s, ...}`)
/// instead of `value`.
pub fn json(families: &[Family]) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "{{\"version\":{},\"metrics\":[",
        json_str(env!("CARGO_PKG_VERSION"))
    );
    for (i, f) in families.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(
            o,
            "\n{{\"name\":{},\"type\":\"{}\",\"unit\":{},\"help\":{},\"samples\":[",
            json_str(&f.name),
            f.kind.name(),
            json_str(f.unit),
            json_str(&f.help)
        );
        for (j, s) in f.samples.iter().enumerate() {
            if j > 0 {
                o.push(',');
            }
            o.push_str("{\"labels\":{");
            for (k, (name, value)) in s.labels.iter().enumerate() {
                if k > 0 {
                    o.push(',');
                }
                let _ = write!(o, "{}:{}", json_str(name), json_str(value));
            }
            o.push_str("},");
            match &s.value {
                Value::Scalar(v) if f.unit == "seconds" => {
                    let _ = write!(o, "\"value\":{}", seconds(*v));
                }
                Value::Scalar(v) => {
                    let _ = write!(o, "\"value\":{v}");
                }
                Value::Summary(sum) => {
                    let _ = write!(
                        o,
                        "\"count\":{},\"sum_seconds\":{},\"max_seconds\":{},\"quantiles\":{{",
                        sum.count,
                        seconds(sum.sum),
                        seconds(sum.max)
                    );
                    for (k, (q, v)) in QUANTILES_PPM.iter().zip(sum.quantiles).enumerate() {
                        if k > 0 {
                            o.push(',');
                        }
                        let _ = write!(o, "\"{}\":{}", quantile_label(*q), seconds(v));
                    }
                    o.push('}');
                }
            }
            o.push('}');
        }
        o.push_str("]}");
    }
    o.push_str("\n]}\n");
    o
}

/// `STAT <name> <value>` lines (without the final `END`) for the families
/// that memcached's `stats` does not already print: names without the
/// `petrel_` prefix and `_total` suffix, labels joined with `:`; latency as
/// `<name>:<transport>:<class>:<p50|p90|p99|p999|max|count>` in
/// microseconds (counts as numbers).
pub fn stat_lines(families: &[Family]) -> String {
    let mut o = String::new();
    for f in families {
        let base = f.name.trim_start_matches("petrel_");
        let base = base.strip_suffix("_total").unwrap_or(base);
        for s in &f.samples {
            let mut name = base.to_string();
            for (_, v) in &s.labels {
                name.push(':');
                name.push_str(v);
            }
            match &s.value {
                Value::Scalar(v) if f.unit == "seconds" && f.name != "petrel_uptime_seconds" => {
                    let _ = write!(o, "STAT {name}_us {}\r\n", v / 1000);
                }
                Value::Scalar(v) => {
                    let _ = write!(o, "STAT {name} {v}\r\n");
                }
                Value::Summary(sum) => {
                    for (label, v) in ["p50", "p90", "p99", "p999"].iter().zip(sum.quantiles) {
                        let _ = write!(o, "STAT {name}:{label}_us {}\r\n", v / 1000);
                    }
                    let _ = write!(o, "STAT {name}:count {}\r\n", sum.count);
                }
            }
        }
    }
    o
}

// Read by the README table (a test) rather than at run time.
#[allow(dead_code)]
/// The README's metric table: one row per family with its type, unit and
/// meaning. Built from [`GROUPS`] and the latency families, so it changes
/// exactly when a declaration does (a test keeps README.md in step).
pub fn markdown_table() -> String {
    let mut o = String::from(
        "| metric | type | unit | labels | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    let mut row = |name: &str, kind: &str, unit: &str, labels: &str, help: &str| {
        let _ = writeln!(
            o,
            "| `{name}` | {kind} | {unit} | {labels} | {} |",
            help.replace('|', "\\|")
        );
    };
    row(
        "petrel_uptime_seconds",
        "gauge",
        "seconds",
        "",
        "seconds since the server started",
    );
    row(
        "petrel_info",
        "gauge",
        "info",
        "version",
        "always 1; the label carries the server version",
    );
    for g in GROUPS {
        for d in g.descs {
            let kind = match d.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            row(&exposed_name(g.prefix, d), kind, d.unit, "", d.description);
        }
    }
    let static_latency = LatencyStats::new();
    for f in latency_families(&[("tcp", &static_latency)]) {
        let labels = f.label_names.join(", ");
        let help = if f.kind == Type::Summary {
            format!(
                "{}; quantiles 0.5, 0.9, 0.99, 0.999, with `_sum` and `_count`; transports tcp, udp (kernel), xdp; classes {}",
                f.help,
                CommandClass::ALL
                    .iter()
                    .map(|c| format!("`{}` ({})", c.name(), c.commands()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            f.help.clone()
        };
        row(&f.name, f.kind.name(), f.unit, &labels, &help);
    }
    // families that exist only while their source runs (AF_XDP)
    for (name, kind, unit, labels, help) in crate::metrics_xdp::documented() {
        row(&name, kind, unit, labels, &help);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_families() -> Vec<Family> {
        let l = LatencyStats::new();
        l.class(CommandClass::Get).record_n(2_000, 3);
        let mut v = vec![scalar_family("engine", &EngineStats::DESCS[0], 7)];
        v.extend(latency_families(&[("tcp", &l)]));
        v
    }

    #[test]
    fn prometheus_text_has_help_type_and_summaries() {
        let t = prometheus(&sample_families());
        assert!(t.contains("# TYPE petrel_engine_curr_connections gauge\n"));
        assert!(t.contains("petrel_engine_curr_connections 7\n"));
        assert!(t.contains("# TYPE petrel_request_duration_seconds summary\n"));
        assert!(t.contains(
            "petrel_request_duration_seconds{transport=\"tcp\",class=\"get\",quantile=\"0.999\"} 0.000002\n"
        ));
        assert!(t.contains(
            "petrel_request_duration_seconds_count{transport=\"tcp\",class=\"get\"} 3\n"
        ));
        assert!(t.contains(
            "petrel_request_duration_max_seconds{transport=\"tcp\",class=\"get\"} 0.000002\n"
        ));
    }

    #[test]
    fn json_and_stat_lines() {
        let f = sample_families();
        let j = json(&f);
        assert!(j.contains("\"name\":\"petrel_engine_curr_connections\""));
        assert!(j.contains("\"count\":3,"));
        let s = stat_lines(&f);
        assert!(s.contains("STAT engine_curr_connections 7\r\n"));
        assert!(s.contains("STAT request_duration_seconds:tcp:get:p99_us 2\r\n"));
        assert!(s.contains("STAT request_duration_seconds:tcp:get:count 3\r\n"));
        assert_eq!(json_str("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
        assert_eq!(quantile_label(500_000), "0.5");
        assert_eq!(quantile_label(999_000), "0.999");
    }

    #[test]
    fn every_metric_has_a_unit_and_a_description() {
        for (name, _, unit, _, help) in crate::metrics_xdp::documented() {
            assert!(!help.is_empty(), "{name}");
            assert_ne!(
                unit,
                petrel_core::stats::DEFAULT_UNIT,
                "{name} needs a unit"
            );
        }
        for g in GROUPS {
            for d in g.descs {
                assert!(!d.description.is_empty(), "{}", d.name);
                assert_ne!(
                    d.unit,
                    petrel_core::stats::DEFAULT_UNIT,
                    "{}_{} needs a unit",
                    g.prefix,
                    d.name
                );
            }
        }
    }

    /// README.md's "## Metrics" table is the generated one (with AF_XDP's
    /// rows, so only where AF_XDP is built in).
    #[cfg(all(feature = "xdp", target_os = "linux"))]
    #[test]
    fn readme_metric_table_is_up_to_date() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        let begin = "<!-- metrics-table:begin -->\n";
        let end = "<!-- metrics-table:end -->";
        let (Some(a), Some(b)) = (readme.find(begin), readme.find(end)) else {
            panic!("README.md lacks the {begin:?} / {end:?} markers of the metric table");
        };
        let have = &readme[a + begin.len()..b];
        let want = markdown_table();
        assert!(
            have == want,
            "README.md's metric table is out of date; replace it with the output of \
             `cargo test --release -p petrel metrics::tests::print_table -- --ignored --nocapture`"
        );
    }

    /// Prints the table for README.md.
    #[test]
    #[ignore]
    fn print_table() {
        print!("{}", markdown_table());
    }
}
