#!/usr/bin/env python3
"""Drives a memcached-compatible server with pymemcache, an independent client library.

Usage: pymemcache_check.py HOST PORT
Every check is an assert; the script prints one line per group and exits 0 only when all pass.
"""
import sys

from pymemcache.client.base import Client


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = Client((host, port), default_noreply=False, connect_timeout=5, timeout=10)

    # set / get / get_many / delete
    assert c.set("a", b"hello") is True
    assert c.get("a") == b"hello"
    assert c.get("missing") is None
    assert c.set("b", b"world", expire=0) is True
    assert c.get_many(["a", "b", "missing"]) == {"a": b"hello", "b": b"world"}
    assert c.set_many({"m1": b"1", "m2": b"2"}) == []
    assert c.get_many(["m1", "m2"]) == {"m1": b"1", "m2": b"2"}
    assert c.delete("b") is True
    assert c.delete("b") is False
    assert c.delete_many(["m1", "m2"]) is True
    print("set/get/get_many/delete ok")

    # add / replace / append / prepend
    assert c.add("a", b"x") is False
    assert c.add("n", b"new") is True
    assert c.replace("missing", b"x") is False
    assert c.replace("n", b"NEW") is True
    assert c.append("n", b"!") is True
    assert c.prepend("n", b"<") is True
    assert c.get("n") == b"<NEW!"
    assert c.append("missing", b"x") is False
    print("add/replace/append/prepend ok")

    # gets / cas
    value, cas = c.gets("a")
    assert value == b"hello" and cas is not None
    assert c.cas("a", b"v2", cas) is True
    assert c.cas("a", b"v3", cas) is False
    assert c.cas("missing", b"x", cas) is None
    assert c.get("a") == b"v2"
    many = c.gets_many(["a", "n"])
    assert set(many) == {"a", "n"} and many["n"][0] == b"<NEW!"
    print("gets/cas ok")

    # incr / decr
    assert c.set("cnt", b"10") is True
    assert c.incr("cnt", 5) == 15
    assert c.decr("cnt", 20) == 0
    assert c.incr("missing", 1) is None
    print("incr/decr ok")

    # touch (pymemcache 4 has no gat/gats; those are covered by the raw TCP tests)
    assert c.touch("a", 100) is True
    assert c.touch("missing", 100) is False
    assert c.get("a") == b"v2"
    print("touch ok")

    # flags round trip through set_many/get with a serializer-free client
    big = bytes(range(256)) * 2000  # 512,000 bytes
    assert c.set("big", big) is True
    assert c.get("big") == big
    print("large value ok")

    # version / stats / flush_all
    v = c.version()
    assert isinstance(v, bytes) and len(v) > 0
    stats = c.stats()
    for name in (b"pid", b"uptime", b"curr_items", b"get_hits", b"cmd_get", b"curr_connections", b"limit_maxbytes"):
        assert name in stats, name
    assert stats[b"limit_maxbytes"] == 64 * 1024 * 1024
    assert c.flush_all() is True
    assert c.get("a") is None
    print("version/stats/flush_all ok")

    # noreply mode (pymemcache's default): fire-and-forget, then read back
    nr = Client((host, port), default_noreply=True, connect_timeout=5, timeout=10)
    for i in range(100):
        nr.set("nr%d" % i, b"v%d" % i)
    nr.version()  # a request with a reply: every noreply set before it has been processed
    assert c.get_many(["nr0", "nr99"]) == {"nr0": b"v0", "nr99": b"v99"}
    print("noreply ok")

    c.close()
    nr.close()
    print("pymemcache: all checks passed")


if __name__ == "__main__":
    main()
