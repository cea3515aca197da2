#!/usr/bin/env python3
"""Writes petrel.json, the Grafana dashboard (import it, pick a Prometheus
data source). Edit the panels here and run `python3 generate.py`; the JSON is
checked in so that nobody needs to run this to use it. tests/tests/prometheus.rs
sends every expression to a live Prometheus scraping a live Petrel."""
import json
import os

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SEL = 'instance=~"$instance"'
RI = "$__rate_interval"


def target(expr, legend, ref, **extra):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}
    t.update(extra)
    return t


def panel(pid, title, targets, x, y, w=12, h=8, unit="short", kind="timeseries", desc="", **extra):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }
    p.update(extra)
    return p


def row(pid, title, y):
    return {"id": pid, "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def q(phi, cls):
    return (f'histogram_quantile({phi}, sum by (le) (rate(petrel_request_duration_seconds_bucket'
            f'{{{SEL}, class=~"{cls}"}}[{RI}])))')


panels = [
    row(1, "Traffic", 0),
    panel(2, "Requests per second by class",
          [(f"sum by (class) (rate(petrel_request_duration_seconds_count{{{SEL}}}[{RI}]))", "{{class}}")],
          0, 1, unit="reqps", desc="Requests completed, all transports, by command class."),
    panel(3, "Get hit ratio",
          [(f"sum(rate(petrel_engine_get_hits_total{{{SEL}}}[{RI}])) / sum(rate(petrel_engine_cmd_get_total{{{SEL}}}[{RI}]))", "hit ratio")],
          12, 1, unit="percentunit", desc="get_hits / cmd_get (keys), memcached's figures."),
    panel(4, "Bytes per second",
          [(f"sum(rate(petrel_engine_bytes_read_total{{{SEL}}}[{RI}]))", "read"),
           (f"sum(rate(petrel_engine_bytes_written_total{{{SEL}}}[{RI}]))", "written")],
          0, 9, unit="Bps"),
    panel(5, "Errors per second",
          [(f"sum(rate(petrel_engine_error_unknown_command_total{{{SEL}}}[{RI}]))", "ERROR"),
           (f"sum(rate(petrel_engine_error_bad_format_total{{{SEL}}}[{RI}]))", "bad format"),
           (f"sum(rate(petrel_engine_store_no_memory_total{{{SEL}}}[{RI}]))", "out of memory"),
           (f"sum(rate(petrel_engine_store_too_large_total{{{SEL}}}[{RI}]))", "too large")],
          12, 9, unit="reqps"),
    row(6, "Latency", 17),
    panel(7, "Latency heatmap (get, set, mg, ms)",
          [(f'sum by (le) (rate(petrel_request_duration_seconds_bucket{{{SEL}, class=~"get|set|meta_get|meta_set"}}[{RI}]))', "{{le}}")],
          0, 18, kind="heatmap", unit="s",
          desc="From the histogram's buckets (le = 2^k and 1.5 x 2^k ns).",
          options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                   "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5}}),
    panel(8, "Latency quantiles (get, set, mg, ms)",
          [(q(0.5, "get|set|meta_get|meta_set"), "p50"),
           (q(0.99, "get|set|meta_get|meta_set"), "p99"),
           (q(0.999, "get|set|meta_get|meta_set"), "p99.9")],
          12, 18, unit="s"),
    panel(9, "p99 latency by class and transport",
          [(f"histogram_quantile(0.99, sum by (le, class, transport) (rate(petrel_request_duration_seconds_bucket{{{SEL}}}[{RI}])))",
            "{{transport}} {{class}}")],
          0, 26, w=24, unit="s"),
    row(10, "Memory and evictions", 34),
    panel(11, "Memory",
          [(f"sum(petrel_store_item_bytes{{{SEL}}})", "items (header + key + value)"),
           (f"sum(petrel_memory_limit_bytes{{{SEL}}})", "memory limit"),
           (f"sum(process_resident_memory_bytes{{{SEL}}})", "resident (process)")],
          0, 35, unit="bytes"),
    panel(12, "Items",
          [(f"sum(petrel_store_items{{{SEL}}})", "items")], 12, 35),
    panel(13, "Evictions and expirations per second",
          [(f"sum(rate(petrel_store_evicted_items_total{{{SEL}}}[{RI}]))", "evicted (segments)"),
           (f"sum(rate(petrel_store_hash_full_evictions_total{{{SEL}}}[{RI}]))", "evicted (hash chain full)"),
           (f"sum(rate(petrel_store_expired_segment_items_total{{{SEL}}}[{RI}]) + rate(petrel_store_expired_lazy_total{{{SEL}}}[{RI}]))", "expired")],
          0, 43, unit="short"),
    panel(14, "Segments",
          [(f"sum(petrel_store_segments_used{{{SEL}}})", "used"),
           (f"sum(petrel_store_segments_free{{{SEL}}})", "free"),
           (f"sum(petrel_store_segments{{{SEL}}})", "all")],
          12, 43),
    row(15, "Connections and process", 51),
    panel(16, "Connections against the limit",
          [(f"sum by (instance) (petrel_engine_curr_connections{{{SEL}}})", "{{instance}} open"),
           (f"sum by (instance) (petrel_max_connections{{{SEL}}})", "{{instance}} limit"),
           (f"sum by (instance) (rate(petrel_engine_rejected_connections_total{{{SEL}}}[{RI}]))", "{{instance}} refused/s")],
          0, 52),
    panel(17, "CPU",
          [(f"sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}[{RI}]))", "{{instance}}")],
          12, 52, unit="percentunit", desc="CPU seconds per second (1 = one core)."),
    panel(18, "File descriptors",
          [(f"sum by (instance) (process_open_fds{{{SEL}}})", "{{instance}} open"),
           (f"sum by (instance) (process_max_fds{{{SEL}}})", "{{instance}} limit")],
          0, 60),
    panel(19, "Uptime",
          [(f"petrel_uptime_seconds{{{SEL}}}", "{{instance}}")], 12, 60, unit="s", kind="stat"),
    row(20, "UDP and AF_XDP", 68),
    panel(21, "UDP guard drops per second",
          [(f"sum(rate(petrel_udp_guard_dropped_rate_limited_total{{{SEL}}}[{RI}]))", "rate limited"),
           (f"sum(rate(petrel_udp_guard_replies_dropped_too_large_total{{{SEL}}}[{RI}]))", "reply over the cap, dropped"),
           (f"sum(rate(petrel_udp_guard_replies_replaced_total{{{SEL}}}[{RI}]))", "reply over the cap, replaced")],
          0, 69),
    panel(22, "UDP datagrams per second",
          [(f"sum(rate(petrel_frontend_udp_datagrams_received_total{{{SEL}}}[{RI}]))", "received"),
           (f"sum(rate(petrel_frontend_udp_datagrams_sent_total{{{SEL}}}[{RI}]))", "sent"),
           (f"sum(rate(petrel_frontend_udp_send_dropped_total{{{SEL}}}[{RI}]))", "send dropped"),
           (f"sum(rate(petrel_udp_dropped_malformed_total{{{SEL}}}[{RI}]) + rate(petrel_udp_dropped_multi_datagram_total{{{SEL}}}[{RI}]) + rate(petrel_udp_dropped_reply_too_large_total{{{SEL}}}[{RI}]))",
            "requests dropped (malformed, multi-datagram, reply too large)")],
          12, 69),
    panel(23, "AF_XDP ring events per second",
          [(f"sum by (queue) (rate(petrel_xdp_kernel_rx_ring_full_total{{{SEL}}}[{RI}]))", "q{{queue}} RX ring full"),
           (f"sum by (queue) (rate(petrel_xdp_tx_ring_full_total{{{SEL}}}[{RI}]))", "q{{queue}} TX ring full"),
           (f"sum by (queue) (rate(petrel_xdp_kernel_fill_ring_empty_total{{{SEL}}}[{RI}]))", "q{{queue}} fill ring empty"),
           (f"sum by (queue) (rate(petrel_xdp_kernel_rx_dropped_total{{{SEL}}}[{RI}]))", "q{{queue}} RX dropped")],
          0, 77, desc="Present only where AF_XDP serves (--xdp-iface)."),
    panel(24, "AF_XDP frames per second and UMEM in use",
          [(f"sum(rate(petrel_xdp_rx_frames_total{{{SEL}}}[{RI}]))", "RX frames/s"),
           (f"sum(rate(petrel_xdp_tx_frames_total{{{SEL}}}[{RI}]))", "TX frames/s"),
           (f"sum(petrel_xdp_frames_in_use{{{SEL}}})", "UMEM frames in use")],
          12, 77),
]

dashboard = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "",
                  "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "__requires": [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "9.0.0"},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        {"type": "panel", "id": "heatmap", "name": "Heatmap", "version": ""},
        {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
    ],
    "id": None,
    "uid": "petrel",
    "title": "Petrel",
    "description": "Petrel cache server: traffic, hit ratio, latency, memory, evictions, connections, UDP guard, AF_XDP.",
    "tags": ["petrel", "memcached", "cache"],
    "timezone": "",
    "editable": True,
    "graphTooltip": 1,
    "refresh": "30s",
    "schemaVersion": 38,
    "version": 1,
    "time": {"from": "now-1h", "to": "now"},
    "timepicker": {},
    "annotations": {"list": []},
    "links": [],
    "templating": {"list": [{
        "name": "instance",
        "label": "instance",
        "type": "query",
        "datasource": DS,
        "query": {"query": "label_values(petrel_info, instance)", "refId": "instance"},
        "definition": "label_values(petrel_info, instance)",
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": "All", "value": "$__all"},
        "options": [],
        "sort": 1,
        "hide": 0,
    }]},
    "panels": panels,
}

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "petrel.json"), "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
