//! The README's metric table, generated from the declarations that name
//! the metrics (`metrics::GROUPS`, `metrics::FIXED`, the latency families
//! and the AF_XDP families of `metrics_xdp`), so it changes exactly when a
//! declaration does; a test keeps README.md in step.

use std::fmt::Write as _;

use petrel_core::histogram::{CommandClass, LE_BOUNDS_NS};
use petrel_core::stats::Kind;

use crate::metrics::{
    exposed, exposed_name, latency_family_shells, le_label, Type, EXPOSED_ELSEWHERE, FIXED, GROUPS,
};

/// The table: one row per family with its type, unit, labels and meaning.
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
        "petrel_info",
        "gauge",
        "info",
        "version",
        "always 1; the label carries the server version",
    );
    for (name, kind, unit, help) in FIXED {
        row(name, kind.name(), unit, "", help);
    }
    for g in GROUPS {
        for d in g.descs {
            if !exposed(g.prefix, d.name) {
                continue;
            }
            let kind = match d.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            row(&exposed_name(g.prefix, d), kind, d.unit, "", d.description);
        }
    }
    for f in latency_family_shells() {
        let labels = f.label_names.join(", ");
        let help = if f.kind == Type::Histogram {
            format!(
                "{}; `_bucket` (cumulative, `le` in seconds: {} bounds, 2^k and 1.5 x 2^k ns from {} to {} s, each an edge of the internal log-linear buckets so every count is exact), `_sum`, `_count`; transports tcp, udp (kernel UDP, when served), xdp (AF_XDP, when attached); classes {}",
                f.help,
                LE_BOUNDS_NS.len(),
                le_label(0),
                le_label(LE_BOUNDS_NS.len() - 1),
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
    for (name, kind, unit, labels, help) in crate::memory::documented() {
        row(&name, kind, unit, labels, &help);
    }
    for (name, kind, unit, labels, help) in crate::pauses::documented() {
        row(&name, kind, unit, labels, &help);
    }
    o
}

/// The figures exposed under another group's name, for the README.
pub fn exposed_elsewhere_list() -> String {
    let mut o = String::new();
    for (group, field, name) in EXPOSED_ELSEWHERE {
        let _ = writeln!(o, "- `{group}` `{field}`: see `{name}`");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_metric_has_a_unit_and_a_description() {
        for (name, _, unit, _, help) in crate::metrics_xdp::documented() {
            assert!(!help.is_empty(), "{name}");
            assert_ne!(
                unit,
                petrel_core::stats::DEFAULT_UNIT,
                "{name} needs a unit"
            );
        }
        assert!(!exposed_elsewhere_list().is_empty());
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
             `cargo test --release -p petrel metrics_doc::tests::print_table -- --ignored --nocapture`"
        );
    }

    /// Prints the table for README.md.
    #[test]
    #[ignore]
    fn print_table() {
        print!("{}", markdown_table());
    }
}
