//! The AF_XDP front end's figures in `/metrics` and `/metrics.json`:
//! every per-queue counter as `petrel_xdp_<name>{queue="q"}`, frames
//! dropped by reason as `petrel_xdp_dropped_frames_total{queue, reason}`,
//! and request latency as transport `xdp` of the latency histogram (all
//! queues together). Only present while AF_XDP serves.
//!
//! This module uses `metrics`' types; `metrics` does not use this module
//! (the server's wiring and the README table, `metrics_doc`, use both).

use crate::metrics::ExtraSource;

#[cfg(all(feature = "xdp", target_os = "linux"))]
mod imp {
    use petrel_core::histogram::{CommandClass, Histogram};
    use petrel_xdp::stats::XdpCounters;

    use crate::metrics::{exposed_name, push_latency, type_of, Family, Latency, Sample, Value};

    /// Name of the per-reason drop family.
    pub const DROPS_FAMILY: &str = "petrel_xdp_dropped_frames_total";

    /// The source reading `stats` (queue ids in the same order).
    pub fn source(stats: petrel_xdp::XdpStats, queues: Vec<u32>) -> crate::metrics::ExtraSource {
        Box::new(move |out: &mut Vec<Family>| {
            let qs = stats.queues();
            for (i, d) in XdpCounters::DESCS.iter().enumerate() {
                let mut f = Family {
                    name: exposed_name("xdp", d),
                    kind: type_of(d.kind),
                    unit: d.unit,
                    help: d.description.to_string(),
                    label_names: &["queue"],
                    samples: Vec::new(),
                };
                for (q, st) in queues.iter().zip(qs) {
                    let mut k = 0usize;
                    let mut v = 0u64;
                    st.counters.for_each(|_, _, _, value| {
                        if k == i {
                            v = value;
                        }
                        k += 1;
                    });
                    f.samples.push(Sample {
                        labels: vec![("queue", q.to_string())],
                        value: Value::Int(v),
                    });
                }
                out.push(f);
            }
            let mut drops = Family {
                name: DROPS_FAMILY.to_string(),
                kind: crate::metrics::Type::Counter,
                unit: "frames",
                help: "frames dropped by the AF_XDP worker, by queue and reason".to_string(),
                label_names: &["queue", "reason"],
                samples: Vec::new(),
            };
            for (q, st) in queues.iter().zip(qs) {
                st.for_each_drop(|reason, v| {
                    drops.samples.push(Sample {
                        labels: vec![("queue", q.to_string()), ("reason", reason.to_string())],
                        value: Value::Int(v),
                    })
                });
            }
            out.push(drops);
            // transport "xdp": every queue's histograms together
            for c in CommandClass::ALL {
                let parts: Vec<&Histogram> = qs.iter().map(|s| s.latency.class(c)).collect();
                push_latency(out, "xdp", c, Latency::of(&parts));
            }
        })
    }

    /// README rows (name, type, unit, labels, meaning) of the AF_XDP families.
    #[cfg(test)]
    pub fn documented() -> Vec<(String, &'static str, &'static str, &'static str, String)> {
        let mut rows: Vec<_> = XdpCounters::DESCS
            .iter()
            .map(|d| {
                (
                    exposed_name("xdp", d),
                    type_of(d.kind).name(),
                    d.unit,
                    "queue",
                    format!("AF_XDP: {}", d.description),
                )
            })
            .collect();
        rows.push((
            DROPS_FAMILY.to_string(),
            "counter",
            "frames",
            "queue, reason",
            format!(
                "AF_XDP: frames dropped by the worker, by queue and reason ({})",
                petrel_core::wire::Error::ALL
                    .iter()
                    .map(|e| format!("`{}`", e.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        rows
    }
}

#[cfg(all(test, feature = "xdp", target_os = "linux"))]
pub use imp::documented;

/// The AF_XDP source for an attached front end (none without AF_XDP).
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub fn sources(attachment: Option<&crate::xdp::Attachment>) -> Vec<ExtraSource> {
    match attachment {
        Some(a) => {
            let fe = a.frontend();
            vec![imp::source(fe.stats_handle(), fe.queues().to_vec())]
        }
        None => Vec::new(),
    }
}

/// Without AF_XDP built in there is nothing to read.
#[cfg(not(all(feature = "xdp", target_os = "linux")))]
pub fn sources(attachment: Option<&crate::xdp::Attachment>) -> Vec<ExtraSource> {
    let _ = attachment;
    Vec::new()
}

/// Without AF_XDP built in there is nothing to document.
#[cfg(all(test, not(all(feature = "xdp", target_os = "linux"))))]
pub fn documented() -> Vec<(String, &'static str, &'static str, &'static str, String)> {
    Vec::new()
}
