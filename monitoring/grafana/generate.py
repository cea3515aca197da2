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


def sel(metric, labels=""):
    """`metric` on the chosen instances, with more label matchers if given."""
    matchers = f"{SEL}, {labels}" if labels else SEL
    return f"{metric}{{{matchers}}}"


def per_s(metric, labels=""):
    """The per-second rate of counter `metric`."""
    return f"rate({sel(metric, labels)}[{RI}])"


def total(*terms, by=""):
    """The sum of `terms` over the instances (or by the labels `by`)."""
    body = " + ".join(terms)
    return f"sum by ({by}) ({body})" if by else f"sum({body})"


def q(phi, cls):
    """Quantile `phi` of the request latency of the classes matching `cls`."""
    buckets = total(per_s("petrel_request_duration_seconds_bucket", 'class=~"%s"' % cls), by="le")
    return f"histogram_quantile({phi}, {buckets})"


panels = [
    row(1, "Traffic", 0),
    panel(2, "Requests per second by class",
          [(total(per_s("petrel_request_duration_seconds_count"), by="class"), "{{class}}")],
          0, 1, unit="reqps", desc="Requests completed, all transports, by command class."),
    panel(3, "Get hit ratio",
          [(total(per_s("petrel_engine_get_hits_total")) + " / " + total(per_s("petrel_engine_cmd_get_total")), "hit ratio")],
          12, 1, unit="percentunit", desc="get_hits / cmd_get (keys), memcached's figures."),
    panel(4, "Bytes per second",
          [(total(per_s("petrel_engine_bytes_read_total")), "read"),
           (total(per_s("petrel_engine_bytes_written_total")), "written")],
          0, 9, unit="Bps"),
    panel(5, "Errors per second",
          [(total(per_s("petrel_engine_error_unknown_command_total")), "ERROR"),
           (total(per_s("petrel_engine_error_bad_format_total")), "bad format"),
           (total(per_s("petrel_engine_store_no_memory_total")), "out of memory"),
           (total(per_s("petrel_engine_store_too_large_total")), "too large")],
          12, 9, unit="reqps"),
    row(6, "Latency", 17),
    panel(7, "Latency heatmap (get, set, mg, ms)",
          [(total(per_s("petrel_request_duration_seconds_bucket", 'class=~"get|set|meta_get|meta_set"'), by="le"), "{{le}}")],
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
          [("histogram_quantile(0.99, " + total(per_s("petrel_request_duration_seconds_bucket"), by="le, class, transport") + ")",
            "{{transport}} {{class}}")],
          0, 26, w=24, unit="s"),
    row(10, "Memory and evictions", 34),
    panel(11, "Memory",
          [(total(sel("petrel_store_item_bytes")), "items (header + key + value)"),
           (total(sel("petrel_memory_limit_bytes")), "memory limit"),
           (total(sel("process_resident_memory_bytes")), "resident (process)")],
          0, 35, unit="bytes"),
    panel(12, "Items",
          [(total(sel("petrel_store_items")), "items")], 12, 35),
    panel(13, "Evictions and expirations per second",
          [(total(per_s("petrel_store_evicted_items_total")), "evicted (segments)"),
           (total(per_s("petrel_store_hash_full_evictions_total")), "evicted (hash chain full)"),
           (total(per_s("petrel_store_expired_segment_items_total"), per_s("petrel_store_expired_lazy_total")), "expired")],
          0, 43, unit="short"),
    panel(14, "Segments",
          [(total(sel("petrel_store_segments_used")), "used"),
           (total(sel("petrel_store_segments_free")), "free"),
           (total(sel("petrel_store_segments")), "all")],
          12, 43),
    row(15, "Connections and process", 51),
    panel(16, "Connections against the limit",
          [(total(sel("petrel_engine_curr_connections"), by="instance"), "{{instance}} open"),
           (total(sel("petrel_max_connections"), by="instance"), "{{instance}} limit"),
           (total(per_s("petrel_engine_rejected_connections_total"), by="instance"), "{{instance}} refused/s")],
          0, 52),
    panel(17, "CPU",
          [(total(per_s("process_cpu_seconds_total"), by="instance"), "{{instance}}")],
          12, 52, unit="percentunit", desc="CPU seconds per second (1 = one core)."),
    panel(18, "File descriptors",
          [(total(sel("process_open_fds"), by="instance"), "{{instance}} open"),
           (total(sel("process_max_fds"), by="instance"), "{{instance}} limit")],
          0, 60),
    panel(19, "Uptime",
          [(sel("petrel_uptime_seconds"), "{{instance}}")], 12, 60, unit="s", kind="stat"),
    row(20, "UDP and AF_XDP", 68),
    panel(21, "UDP guard drops per second",
          [(total(per_s("petrel_udp_guard_dropped_rate_limited_total")), "rate limited"),
           (total(per_s("petrel_udp_guard_replies_dropped_too_large_total")), "reply over the cap, dropped"),
           (total(per_s("petrel_udp_guard_replies_replaced_total")), "reply over the cap, replaced")],
          0, 69),
    panel(22, "UDP datagrams per second",
          [(total(per_s("petrel_frontend_udp_datagrams_received_total")), "received"),
           (total(per_s("petrel_frontend_udp_datagrams_sent_total")), "sent"),
           (total(per_s("petrel_frontend_udp_send_dropped_total")), "send dropped"),
           (total(per_s("petrel_udp_dropped_malformed_total"), per_s("petrel_udp_dropped_multi_datagram_total"), per_s("petrel_udp_dropped_reply_too_large_total")),
            "requests dropped (malformed, multi-datagram, reply too large)")],
          12, 69),
    panel(23, "AF_XDP ring events per second",
          [(total(per_s("petrel_xdp_kernel_rx_ring_full_total"), by="queue"), "q{{queue}} RX ring full"),
           (total(per_s("petrel_xdp_tx_ring_full_total"), by="queue"), "q{{queue}} TX ring full"),
           (total(per_s("petrel_xdp_kernel_fill_ring_empty_total"), by="queue"), "q{{queue}} fill ring empty"),
           (total(per_s("petrel_xdp_kernel_rx_dropped_total"), by="queue"), "q{{queue}} RX dropped")],
          0, 77, desc="Present only where AF_XDP serves (--xdp-iface)."),
    panel(24, "AF_XDP frames per second and UMEM in use",
          [(total(per_s("petrel_xdp_rx_frames_total")), "RX frames/s"),
           (total(per_s("petrel_xdp_tx_frames_total")), "TX frames/s"),
           (total(sel("petrel_xdp_frames_in_use")), "UMEM frames in use")],
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
