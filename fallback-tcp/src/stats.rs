//! Counters and gauges of the kernel-socket front ends.
//!
//! The connection figures memcached's `stats` prints (`curr_connections`,
//! `total_connections`, `rejected_connections`, `conn_yields`) have one
//! owner, the service: the front end reports them as
//! [`crate::ConnectionEvent`]s and counts none of them itself. These are the
//! front end's own figures (bytes, idle closes, UDP sockets), iterated
//! without allocation.

petrel_core::metrics! {
    /// The front end's figures: counters only grow; gauges go up and down.
    pub struct FrontendStats {
        idle_closed: Counter("connections") "TCP connections closed by the idle timeout",
        read_buffer_full: Counter("connections") "TCP connections closed because a request did not fit the read buffer",
        tcp_bytes_read: Counter("bytes") "bytes read from TCP connections",
        tcp_bytes_written: Counter("bytes") "bytes written to TCP connections",
        udp_datagrams_received: Counter("datagrams") "UDP datagrams received",
        udp_datagrams_sent: Counter("datagrams") "UDP reply datagrams sent",
        udp_dropped_truncated: Counter("datagrams") "UDP datagrams dropped: larger than the receive slot",
        udp_send_dropped: Counter("datagrams") "UDP reply datagrams the kernel refused to send",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_lists_every_figure_with_its_value() {
        let s = FrontendStats::new();
        s.tcp_bytes_read.add(5);
        let mut seen = Vec::new();
        s.for_each(|n, d, _, v| seen.push((n, d, v)));
        assert_eq!(seen.len(), FrontendStats::LEN);
        assert!(seen.contains(&("tcp_bytes_read", "bytes read from TCP connections", 5)));
        assert!(seen.iter().all(|(_, d, _)| !d.is_empty()));
        for d in FrontendStats::DESCS {
            assert_ne!(
                d.unit,
                petrel_core::stats::DEFAULT_UNIT,
                "{} needs a unit",
                d.name
            );
        }
    }
}
