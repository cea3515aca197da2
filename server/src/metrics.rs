//! Every metric the server exposes, gathered in one place, and the three
//! ways it is written out: Prometheus text (`GET /metrics`), JSON
//! (`GET /metrics.json`) and memcache `STAT` lines (the admin port's
//! `stats`).
//!
//! ```text
//!  EngineStats StoreStats FrontendStats GuardStats LogStats KlogStats LatencyStats  process  (+ sources added at run time, e.g. AF_XDP)
//!       \__________\___________\____________|___________/________/__________/__________/
//!                                        collect()  ──▶ Vec<Family>  ──▶ LatencyWindow::annotate (last 60 s)
//!                        ┌──────────────────┼───────────────────┐
//!                  prometheus()           json()           stat_lines()
//! ```
//!
//! Names, units and descriptions come from the `metrics!` declarations
//! next to the code that updates them ([`GROUPS`] lists which), so the
//! README's metric table (`metrics_doc`) is generated from the same place.
//! A metric `name` of group `g` is exposed as `petrel_<g>_<name>`, with
//! `_total` appended for counters; a figure that two groups both keep is
//! exposed once ([`EXPOSED_ELSEWHERE`]). Values carry their unit: every
//! `seconds` value is in seconds when it leaves [`Sources::collect`], every
//! `bytes` value in bytes; the writers convert nothing. Collecting
//! allocates; it runs on the admin thread, never on a worker.

use std::fmt::Write as _;
use std::sync::Arc;

use petrel_core::engine::{Engine, EngineStats};
use petrel_core::histogram::{
    cumulative_le, CommandClass, Histogram, LatencyStats, Summary, BUCKETS, LE_BOUNDS,
    LE_BOUNDS_NS, QUANTILES_PPM,
};
use petrel_core::stats::{Desc, Kind, StoreStats};
use petrel_core::udp::guard::{GuardStats, UdpGuard};
use petrel_core::udp::UdpStats;
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
    /// Cumulative buckets, sum and count of a latency histogram.
    Histogram,
}

impl Type {
    /// The name in `# TYPE` lines.
    pub fn name(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// A latency histogram read at one moment: the count of every internal
/// bucket ([`BUCKETS`] of them, nanoseconds), their sum and maximum, and,
/// once the latency window (`metrics_window`, which reads this module) has seen it, the
/// figures of the last window.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    /// Values per internal bucket ([`BUCKETS`] entries).
    pub buckets: Vec<u64>,
    /// Sum of the values, nanoseconds.
    pub sum_ns: u64,
    /// Largest value since start, nanoseconds.
    pub max_ns: u64,
    /// The values recorded in the last window (None until annotated).
    pub window: Option<Windowed>,
}

/// Quantiles of the values recorded over a recent stretch of time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Windowed {
    /// Length of the stretch, seconds.
    pub seconds: f64,
    /// Count, sum and quantiles of the values in it (nanoseconds).
    pub summary: Summary,
}

impl Latency {
    /// The histograms of `parts` taken together.
    pub fn of(parts: &[&Histogram]) -> Latency {
        let buckets = (0..BUCKETS)
            .map(|i| parts.iter().fold(0u64, |a, h| a.wrapping_add(h.bucket(i))))
            .collect();
        Latency {
            buckets,
            sum_ns: parts.iter().fold(0u64, |a, h| a.wrapping_add(h.sum())),
            max_ns: parts.iter().map(|h| h.max()).max().unwrap_or(0),
            window: None,
        }
    }

    /// Values recorded (the sum of the bucket counts).
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, c| a.wrapping_add(*c))
    }
}

/// One labelled value of a family.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A whole number in the family's unit.
    Int(u64),
    /// A fractional number in the family's unit (seconds, ...).
    Float(f64),
    /// A latency histogram.
    Latency(Box<Latency>),
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
    /// Counter, gauge or histogram.
    pub kind: Type,
    /// What one unit is (for histograms: `seconds`).
    pub unit: &'static str,
    /// One line.
    pub help: String,
    /// Label names every sample carries (for the README table).
    pub label_names: &'static [&'static str],
    /// The values.
    pub samples: Vec<Sample>,
}

impl Family {
    /// A family of one unlabelled sample.
    pub fn single(name: &str, kind: Type, unit: &'static str, help: &str, value: Value) -> Self {
        Family {
            name: name.to_string(),
            kind,
            unit,
            help: help.to_string(),
            label_names: &[],
            samples: vec![Sample {
                labels: Vec::new(),
                value,
            }],
        }
    }
}

/// A group of `metrics!` declarations: exposed name prefix, the
/// declarations, and where the running server's values are read.
pub struct Group {
    /// `petrel_<prefix>_...`.
    pub prefix: &'static str,
    /// Its metrics (read by the README table and tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub descs: &'static [Desc],
    /// Calls `f(desc, value)` for each of `descs`, from `Sources`.
    read: Reader,
}

impl Group {
    /// Calls `f(desc, value)` for each of the group's metrics, read from
    /// `sources`, in declaration order.
    pub fn read(&self, sources: &Sources<'_>, f: &mut dyn FnMut(&Desc, u64)) {
        (self.read)(sources, f)
    }
}

/// How a [`Group`]'s values are read.
type Reader = fn(&Sources<'_>, &mut dyn FnMut(&Desc, u64));

/// A [`Group`] (for [`GROUPS`]).
const fn group(prefix: &'static str, descs: &'static [Desc], read: Reader) -> Group {
    Group {
        prefix,
        descs,
        read,
    }
}

/// Every statically declared group, in exposition order: the one list that
/// [`Sources::collect`], the README's table and the tests follow.
pub const GROUPS: &[Group] = &[
    group("engine", &EngineStats::DESCS, |s, f| {
        s.engine.stats().for_each_desc(f)
    }),
    group("store", &StoreStats::DESCS, |s, f| {
        s.engine.store().stats().for_each_desc(f)
    }),
    group("frontend", &FrontendStats::DESCS, |s, f| {
        s.frontend.for_each_desc(f)
    }),
    group("udp", &UdpStats::DESCS, |s, f| {
        s.frontend.udp().for_each_desc(f)
    }),
    // zeros when UDP is not served
    group("udp_guard", &GuardStats::DESCS, |s, f| match &s.guard {
        Some(g) => g.stats().for_each_desc(f),
        None => GuardStats::new().for_each_desc(f),
    }),
    // zeros when TLS is off (-Z not given)
    group("tls", &petrel_tcp::TlsStats::DESCS, |s, f| {
        match s.frontend.tls() {
            Some(t) => t.stats().for_each_desc(f),
            None => petrel_tcp::TlsStats::new().for_each_desc(f),
        }
    }),
    group("log", &LogStats::DESCS, |_, f| {
        crate::logger::stats().for_each_desc(f)
    }),
    group("klog", &KlogStats::DESCS, |_, f| {
        crate::klog::stats().for_each_desc(f)
    }),
];

/// Figures that two groups keep: (group, field, the one exposed name).
/// The group's copy is not exposed; `stats` on the data port still prints
/// both under memcached's and Petrel's names.
pub const EXPOSED_ELSEWHERE: &[(&str, &str, &str)] = &[
    // the store counts a key's lookup once for get/gets/mg (and gat/gats);
    // memcached's cmd_get / get_hits / get_misses are the names operators know
    ("store", "gets", "petrel_engine_cmd_get_total"),
    ("store", "get_hits", "petrel_engine_get_hits_total"),
    ("store", "get_misses", "petrel_engine_get_misses_total"),
];

/// Whether field `name` of group `prefix` is exposed under its own name.
pub fn exposed(prefix: &str, name: &str) -> bool {
    !EXPOSED_ELSEWHERE
        .iter()
        .any(|(g, f, _)| *g == prefix && *f == name)
}

/// Name of the latency histogram family.
pub const LATENCY_FAMILY: &str = "petrel_request_duration_seconds";
/// Name of the latency maximum family.
pub const LATENCY_MAX_FAMILY: &str = "petrel_request_duration_max_seconds";
/// What the latency histogram measures.
pub const LATENCY_HELP: &str = "request latency from the moment the request is complete in the front end's buffer to the moment its reply is handed to the socket or ring, by transport and command class";

/// Figures added at run time by a front end that is not always there
/// (e.g. AF_XDP): called at every collection, appends its families.
pub type ExtraSource = Box<dyn Fn(&mut Vec<Family>) + Send + Sync>;

/// Where the figures are read from.
pub struct Sources<'e> {
    /// The engine (its stats, its store's, its configured limits).
    pub engine: &'e Engine<'static>,
    /// The kernel-socket front ends' counters and latency.
    pub frontend: StatsHandle,
    /// More families (AF_XDP queues, ...).
    pub extra: Vec<ExtraSource>,
    /// The UDP amplification guard, when UDP is served.
    pub guard: Option<Arc<UdpGuard>>,
}

/// The exposed name of metric `d` in group `prefix`.
pub fn exposed_name(prefix: &str, d: &Desc) -> String {
    match d.kind {
        Kind::Counter => format!("petrel_{prefix}_{}_total", d.name),
        Kind::Gauge => format!("petrel_{prefix}_{}", d.name),
    }
}

/// The Prometheus type of a `metrics!` kind.
pub fn type_of(kind: Kind) -> Type {
    match kind {
        Kind::Counter => Type::Counter,
        Kind::Gauge => Type::Gauge,
    }
}

fn scalar_family(prefix: &str, d: &Desc, v: u64) -> Family {
    Family::single(
        &exposed_name(prefix, d),
        type_of(d.kind),
        d.unit,
        d.description,
        Value::Int(v),
    )
}

fn push_group(out: &mut Vec<Family>, prefix: &str, d: &Desc, v: u64) {
    if exposed(prefix, d.name) {
        out.push(scalar_family(prefix, d, v));
    }
}

/// The latency families (histogram and max) over the given transports:
/// every class of every transport, empty ones too (a series that appeared
/// only with its first request would hide that request from `rate()`).
pub fn latency_families(sets: &[(&'static str, &LatencyStats)]) -> [Family; 2] {
    let mut hist = latency_family_shells();
    for (transport, set) in sets {
        for c in CommandClass::ALL {
            push_latency(&mut hist, transport, c, Latency::of(&[set.class(c)]));
        }
    }
    hist
}

/// The two latency families without samples.
pub fn latency_family_shells() -> [Family; 2] {
    [
        Family {
            name: LATENCY_FAMILY.to_string(),
            kind: Type::Histogram,
            unit: "seconds",
            help: LATENCY_HELP.to_string(),
            label_names: &["transport", "class"],
            samples: Vec::new(),
        },
        Family {
            name: LATENCY_MAX_FAMILY.to_string(),
            kind: Type::Gauge,
            unit: "seconds",
            help: "largest request latency seen since start, by transport and command class"
                .to_string(),
            label_names: &["transport", "class"],
            samples: Vec::new(),
        },
    ]
}

/// Adds one (transport, class) histogram and its maximum to `fams` (the
/// two latency families).
pub fn push_latency(fams: &mut [Family], transport: &str, class: CommandClass, l: Latency) {
    let labels = vec![
        ("transport", transport.to_string()),
        ("class", class.name().to_string()),
    ];
    for f in fams.iter_mut() {
        if f.name == LATENCY_MAX_FAMILY {
            f.samples.push(Sample {
                labels: labels.clone(),
                value: Value::Float(seconds(l.max_ns)),
            });
        }
    }
    for f in fams.iter_mut() {
        if f.name == LATENCY_FAMILY {
            f.samples.push(Sample {
                labels,
                value: Value::Latency(Box::new(l)),
            });
            return;
        }
    }
}

/// Seconds since the Unix epoch, now.
fn unix_now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Sources<'_> {
    /// Reads every figure now.
    pub fn collect(&self) -> Vec<Family> {
        let mut out = Vec::new();
        let cfg = self.engine.config();
        out.push(Family {
            name: "petrel_info".into(),
            kind: Type::Gauge,
            unit: "info",
            help: "always 1; the label carries the server version".into(),
            label_names: &["version"],
            samples: vec![Sample {
                labels: vec![("version", cfg.petrel_version.to_string())],
                value: Value::Int(1),
            }],
        });
        for (name, kind, unit, help) in FIXED {
            let value = match *name {
                // the clock of `stats`' uptime: whole seconds there, exact here
                "petrel_uptime_seconds" => {
                    Value::Float((unix_now_f64() - f64::from(cfg.started_at)).max(0.0))
                }
                "petrel_max_connections" => Value::Int(u64::from(cfg.max_connections)),
                "petrel_memory_limit_bytes" => {
                    Value::Int(self.engine.store().memory_limit() as u64)
                }
                "petrel_item_size_limit_bytes" => Value::Int(cfg.item_size_max_bytes as u64),
                _ => continue,
            };
            out.push(Family::single(name, *kind, unit, help, value));
        }
        let p = crate::metrics_process::read();
        for (name, kind, unit, help) in FIXED {
            let value = match *name {
                "process_cpu_seconds_total" => Value::Float(p.cpu_seconds),
                "process_resident_memory_bytes" => Value::Int(p.resident_bytes),
                "process_virtual_memory_bytes" => Value::Int(p.virtual_bytes),
                "process_open_fds" => Value::Int(p.open_fds),
                "process_max_fds" => Value::Int(p.max_fds),
                "process_start_time_seconds" => Value::Float(p.start_time_seconds),
                _ => continue,
            };
            out.push(Family::single(name, *kind, unit, help, value));
        }
        for g in GROUPS {
            g.read(self, &mut |d, v| push_group(&mut out, g.prefix, d, v));
        }
        // kernel UDP only when it is served (AF_XDP adds its own)
        let tcp = ("tcp", self.frontend.tcp_latency());
        let udp = ("udp", self.frontend.udp_latency());
        out.extend(if cfg.udp_port != 0 {
            latency_families(&[tcp, udp])
        } else {
            latency_families(&[tcp])
        });
        for source in &self.extra {
            source(&mut out);
        }
        out
    }
}

/// The single-valued families that no `metrics!` group declares: name,
/// type, unit, meaning. The `process_*` names and meanings are Prometheus'
/// standard ones (its client libraries export the same).
pub const FIXED: &[(&str, Type, &str, &str)] = &[
    (
        "petrel_uptime_seconds",
        Type::Gauge,
        "seconds",
        "seconds since the server started (the clock of stats' uptime)",
    ),
    (
        "petrel_max_connections",
        Type::Gauge,
        "connections",
        "the connection limit (-c, --conn-limit): connections beyond it are refused",
    ),
    (
        "petrel_memory_limit_bytes",
        Type::Gauge,
        "bytes",
        "item memory the store may use (-m, --memory-limit, or cache_memlimit since)",
    ),
    (
        "petrel_item_size_limit_bytes",
        Type::Gauge,
        "bytes",
        "largest item accepted (-I, --max-item-size)",
    ),
    (
        "process_cpu_seconds_total",
        Type::Counter,
        "seconds",
        "user and system CPU time spent by the process",
    ),
    (
        "process_resident_memory_bytes",
        Type::Gauge,
        "bytes",
        "resident memory size of the process",
    ),
    (
        "process_virtual_memory_bytes",
        Type::Gauge,
        "bytes",
        "virtual memory size of the process",
    ),
    (
        "process_open_fds",
        Type::Gauge,
        "descriptors",
        "open file descriptors",
    ),
    (
        "process_max_fds",
        Type::Gauge,
        "descriptors",
        "limit on open file descriptors (RLIMIT_NOFILE, soft)",
    ),
    (
        "process_start_time_seconds",
        Type::Gauge,
        "seconds",
        "start time of the process since the Unix epoch",
    ),
];

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

/// Nanoseconds as seconds.
pub fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A float as the text format and JSON write it: shortest round-trip
/// decimal; never NaN or infinite (0 instead).
fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "0".to_string()
    }
}

/// The `le` label of bound `i` of [`LE_BOUNDS_NS`] (seconds), or `+Inf`.
pub fn le_label(i: usize) -> String {
    match LE_BOUNDS_NS.get(i) {
        Some(ns) => float(seconds(*ns)),
        None => "+Inf".to_string(),
    }
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
            let l = labels_text(&s.labels, None);
            match &s.value {
                Value::Int(v) => {
                    let _ = writeln!(o, "{}{l} {v}", f.name);
                }
                Value::Float(v) => {
                    let _ = writeln!(o, "{}{l} {}", f.name, float(*v));
                }
                Value::Latency(h) => {
                    let cum = cumulative_le(&h.buckets);
                    for (i, c) in cum.iter().enumerate() {
                        let le = le_label(i);
                        let l = labels_text(&s.labels, Some(("le", &le)));
                        let _ = writeln!(o, "{}_bucket{l} {c}", f.name);
                    }
                    let _ = writeln!(o, "{}_sum{l} {}", f.name, float(seconds(h.sum_ns)));
                    let _ = writeln!(o, "{}_count{l} {}", f.name, cum[LE_BOUNDS]);
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

fn json_quantiles(o: &mut String, s: &Summary) {
    o.push('{');
    for (k, (q, v)) in QUANTILES_PPM.iter().zip(s.quantiles).enumerate() {
        if k > 0 {
            o.push(',');
        }
        let _ = write!(o, "\"{}\":{}", quantile_label(*q), float(seconds(v)));
    }
    o.push('}');
}

/// The families as one JSON object:
/// `{"version": ..., "metrics": [{"name", "type", "unit", "help",
/// "samples": [{"labels": {...}, "value": N}]}]}`. A histogram sample has,
/// instead of `value`, `count`, `sum_seconds` and `max_seconds` since start
/// and `window`: `{"seconds": S, "count": N, "quantiles": {"0.5": s, ...}}`
/// over the last minute (`metrics_window`; null until the first
/// reading of the window).
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
                Value::Int(v) => {
                    let _ = write!(o, "\"value\":{v}");
                }
                Value::Float(v) => {
                    let _ = write!(o, "\"value\":{}", float(*v));
                }
                Value::Latency(h) => {
                    let _ = write!(
                        o,
                        "\"count\":{},\"sum_seconds\":{},\"max_seconds\":{},\"window\":",
                        h.count(),
                        float(seconds(h.sum_ns)),
                        float(seconds(h.max_ns))
                    );
                    match &h.window {
                        None => o.push_str("null"),
                        Some(w) => {
                            let _ = write!(
                                o,
                                "{{\"seconds\":{},\"count\":{},\"quantiles\":",
                                float(w.seconds),
                                w.summary.count
                            );
                            json_quantiles(&mut o, &w.summary);
                            o.push('}');
                        }
                    }
                }
            }
            o.push('}');
        }
        o.push_str("]}");
    }
    o.push_str("\n]}\n");
    o
}

/// The `STAT` name of a family: without the `petrel_` prefix and the
/// `_total` suffix; the latency histogram is `request_duration` (its
/// figures are printed in microseconds).
fn stat_base(name: &str) -> &str {
    if name == LATENCY_FAMILY {
        return "request_duration";
    }
    if name == LATENCY_MAX_FAMILY {
        return "request_duration_max";
    }
    let base = name.strip_prefix("petrel_").unwrap_or(name);
    base.strip_suffix("_total").unwrap_or(base)
}

/// `STAT <name> <value>` lines (without the final `END`) for the families
/// that memcached's `stats` does not already print: names as
/// [`stat_base`] makes them, labels joined with `:`; fractional values
/// with six decimals (memcached's `rusage_*` format). A latency histogram
/// prints `<name>:<transport>:<class>:count` (since start) and, over the
/// last window, `:window_s` (its length in seconds), `:window_count` and
/// `:p50_us :p90_us :p99_us :p999_us` (microseconds).
pub fn stat_lines(families: &[Family]) -> String {
    let mut o = String::new();
    for f in families {
        if f.name == LATENCY_MAX_FAMILY {
            // its figure is printed with the histogram's (`:max_us`)
            continue;
        }
        let base = stat_base(&f.name);
        for s in &f.samples {
            let mut name = base.to_string();
            for (_, v) in &s.labels {
                name.push(':');
                name.push_str(v);
            }
            match &s.value {
                Value::Int(v) => {
                    let _ = write!(o, "STAT {name} {v}\r\n");
                }
                Value::Float(v) => {
                    let _ = write!(o, "STAT {name} {v:.6}\r\n");
                }
                Value::Latency(h) => {
                    let _ = write!(o, "STAT {name}:count {}\r\n", h.count());
                    let _ = write!(o, "STAT {name}:max_us {}\r\n", h.max_ns / 1000);
                    let w = h.window.unwrap_or(Windowed {
                        seconds: 0.0,
                        summary: Summary::default(),
                    });
                    let _ = write!(o, "STAT {name}:window_s {}\r\n", w.seconds.round() as u64);
                    let _ = write!(o, "STAT {name}:window_count {}\r\n", w.summary.count);
                    for (label, v) in ["p50", "p90", "p99", "p999"]
                        .iter()
                        .zip(w.summary.quantiles)
                    {
                        let _ = write!(o, "STAT {name}:{label}_us {}\r\n", v / 1000);
                    }
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_families() -> Vec<Family> {
        let l = LatencyStats::new();
        l.class(CommandClass::Get).record_n(2_000, 3);
        l.class(CommandClass::Get).record_n(100_000, 1);
        let mut v = vec![scalar_family("engine", &EngineStats::DESCS[0], 7)];
        v.push(Family::single(
            "petrel_uptime_seconds",
            Type::Gauge,
            "seconds",
            "x",
            Value::Float(19.25),
        ));
        v.extend(latency_families(&[("tcp", &l)]));
        v
    }

    #[test]
    fn prometheus_text_has_help_type_and_histograms() {
        let t = prometheus(&sample_families());
        assert!(t.contains("# TYPE petrel_engine_curr_connections gauge\n"));
        assert!(t.contains("petrel_engine_curr_connections 7\n"));
        assert!(t.contains("petrel_uptime_seconds 19.25\n"), "{t}");
        assert!(t.contains("# TYPE petrel_request_duration_seconds histogram\n"));
        // 2000 ns is below 2.048 us, above 1.536 us
        assert!(t.contains(
            "petrel_request_duration_seconds_bucket{transport=\"tcp\",class=\"get\",le=\"0.000001536\"} 0\n"
        ), "{t}");
        assert!(t.contains(
            "petrel_request_duration_seconds_bucket{transport=\"tcp\",class=\"get\",le=\"0.000002048\"} 3\n"
        ));
        assert!(t.contains(
            "petrel_request_duration_seconds_bucket{transport=\"tcp\",class=\"get\",le=\"+Inf\"} 4\n"
        ));
        assert!(t.contains(
            "petrel_request_duration_seconds_sum{transport=\"tcp\",class=\"get\"} 0.000106\n"
        ));
        assert!(t.contains(
            "petrel_request_duration_seconds_count{transport=\"tcp\",class=\"get\"} 4\n"
        ));
        assert!(t.contains(
            "petrel_request_duration_max_seconds{transport=\"tcp\",class=\"get\"} 0.0001\n"
        ));
        // empty classes too
        assert!(t.contains(
            "petrel_request_duration_seconds_count{transport=\"tcp\",class=\"set\"} 0\n"
        ));
        assert_eq!(
            t.matches("petrel_request_duration_seconds_bucket").count(),
            (LE_BOUNDS + 1) * CommandClass::COUNT
        );
    }

    #[test]
    fn json_and_stat_lines() {
        let mut f = sample_families();
        let j = json(&f);
        assert!(j.contains("\"name\":\"petrel_engine_curr_connections\""));
        assert!(j.contains("\"count\":4,"));
        assert!(j.contains("\"window\":null"));
        assert!(j.contains("\"value\":19.25"));
        for fam in f.iter_mut() {
            for s in fam.samples.iter_mut() {
                if let Value::Latency(h) = &mut s.value {
                    h.window = Some(Windowed {
                        seconds: 60.0,
                        summary: petrel_core::histogram::summary_of_counts(
                            &h.buckets, h.sum_ns, h.max_ns,
                        ),
                    });
                }
            }
        }
        let j = json(&f);
        assert!(
            j.contains(
                "\"window\":{\"seconds\":60,\"count\":4,\"quantiles\":{\"0.5\":0.000002008,"
            ),
            "{j}"
        );
        let s = stat_lines(&f);
        assert!(s.contains("STAT engine_curr_connections 7\r\n"));
        assert!(s.contains("STAT uptime_seconds 19.250000\r\n"));
        assert!(
            s.contains("STAT request_duration:tcp:get:p50_us 2\r\n"),
            "{s}"
        );
        assert!(
            s.contains("STAT request_duration:tcp:get:p999_us 99\r\n"),
            "{s}"
        );
        assert!(s.contains("STAT request_duration:tcp:get:count 4\r\n"));
        assert!(s.contains("STAT request_duration:tcp:get:window_count 4\r\n"));
        assert!(s.contains("STAT request_duration:tcp:get:window_s 60\r\n"));
        assert!(s.contains("STAT request_duration:tcp:get:max_us 100\r\n"));
        assert!(!s.contains("request_duration_max"));
        assert_eq!(json_str("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
        assert_eq!(quantile_label(500_000), "0.5");
        assert_eq!(quantile_label(999_000), "0.999");
        assert_eq!(float(f64::NAN), "0");
    }

    #[test]
    fn every_metric_has_a_unit_and_a_description() {
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

    #[test]
    fn a_figure_exposed_elsewhere_is_exposed_once() {
        for (group, field, name) in EXPOSED_ELSEWHERE {
            let target = GROUPS
                .iter()
                .flat_map(|g| g.descs.iter().map(move |d| (g.prefix, d)))
                .find(|(p, d)| exposed(p, d.name) && exposed_name(p, d) == *name);
            assert!(
                target.is_some(),
                "{group}.{field}: {name} is not an exposed name"
            );
        }
    }
}
