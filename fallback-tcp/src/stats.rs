//! Counters and gauges of the kernel-socket front ends.
//!
//! Connection gauges that memcached's `stats` prints are also reported to the
//! service through [`crate::ConnectionEvent`]; these are the front end's own
//! figures (bytes, UDP drops by reason, ...), iterated without allocation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! frontend_stats {
    ($(#[$m:meta])* pub struct $name:ident { $($field:ident : $desc:literal,)* }) => {
        $(#[$m])*
        #[derive(Default, Debug)]
        pub struct $name { $(#[doc = $desc] pub $field: AtomicU64,)* }

        impl $name {
            /// Calls `f(name, description, value)` for every figure, in
            /// declaration order.
            pub fn for_each(&self, mut f: impl FnMut(&'static str, &'static str, u64)) {
                $(f(stringify!($field), $desc, self.$field.load(Relaxed));)*
            }
        }
    };
}

frontend_stats! {
    /// The front end's figures. Counters only grow; `curr_connections` is a gauge.
    pub struct FrontendStats {
        curr_connections: "TCP connections currently open",
        total_connections: "TCP connections accepted since start",
        rejected_connections: "TCP connections refused because of the connection limit",
        conn_yields: "times a connection gave up its turn after using its per-event budget",
        idle_closed: "TCP connections closed by the idle timeout",
        read_buffer_full: "TCP connections closed because a request did not fit the read buffer",
        tcp_bytes_read: "bytes read from TCP connections",
        tcp_bytes_written: "bytes written to TCP connections",
        udp_datagrams_received: "UDP datagrams received",
        udp_datagrams_sent: "UDP reply datagrams sent",
        udp_dropped_malformed: "UDP datagrams dropped: shorter than the 8-byte frame header",
        udp_dropped_multi_datagram: "UDP datagrams dropped: request spans several datagrams or reserved field set",
        udp_dropped_truncated: "UDP datagrams dropped: larger than the receive slot",
        udp_dropped_incomplete: "UDP datagrams whose last request was incomplete (ignored)",
        udp_dropped_reply_too_large: "UDP replies dropped: more datagrams than the reply area holds",
        udp_send_dropped: "UDP reply datagrams the kernel refused to send",
    }
}

impl FrontendStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Reads a figure.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_lists_every_figure_with_its_value() {
        let s = FrontendStats::default();
        FrontendStats::add(&s.tcp_bytes_read, 5);
        let mut seen = Vec::new();
        s.for_each(|n, d, v| seen.push((n, d, v)));
        assert_eq!(seen.len(), 16);
        assert!(seen.contains(&("tcp_bytes_read", "bytes read from TCP connections", 5)));
        assert!(seen.iter().all(|(_, d, _)| !d.is_empty()));
    }
}
