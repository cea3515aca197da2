#!/usr/bin/python3
"""Drives a memcached-compatible server with pylibmc (Debian python3-pylibmc, on libmemcached).

Usage: pylibmc_check.py HOST PORT text|binary

Prints a transcript, one line per operation and its result (CAS values and timings left out),
which the caller compares between memcached and the server under test. The asserts catch results
that would be wrong on any server; the comparison catches every other difference.
"""
import sys

import pylibmc

BIG = 1536 * 1024  # over 1 MB: the servers run with -I 2m
HUGE = 3 * 1024 * 1024  # over -I 2m


def main():
    host, port, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    mc = pylibmc.Client(
        ["%s:%s" % (host, port)],
        binary=(mode == "binary"),
        behaviors={"cas": True, "connect_timeout": 5000, "receive_timeout": 10000000,
                   "send_timeout": 10000000},
    )
    out = []

    def log(op, result):
        out.append("%s: %r" % (op, result))

    def attempt(op, f):
        try:
            r = f()
        except pylibmc.Error as e:
            r = "raised %s" % type(e).__name__
        log(op, r)
        return r

    log("stats version", mc.get_stats()[0][1].get("version"))
    mc.flush_all()
    assert attempt("set a", lambda: mc.set("a", b"hello")) is True
    assert attempt("get a", lambda: mc.get("a")) == b"hello"
    assert attempt("get missing", lambda: mc.get("missing")) is None
    attempt("set b flags", lambda: mc.set("b", 42))  # pylibmc stores ints with its own flags
    attempt("get b", lambda: mc.get("b"))
    attempt("add a", lambda: mc.add("a", b"x"))
    attempt("add c", lambda: mc.add("c", b"new"))
    attempt("replace missing", lambda: mc.replace("missing", b"x"))
    attempt("replace c", lambda: mc.replace("c", b"NEW"))
    attempt("append c", lambda: mc.append("c", b"!"))
    attempt("prepend c", lambda: mc.prepend("c", b"<"))
    attempt("append missing", lambda: mc.append("missing", b"x"))
    assert attempt("get c", lambda: mc.get("c")) == b"<NEW!"
    attempt("get_multi", lambda: sorted(mc.get_multi(["a", "b", "c", "missing"]).items()))
    attempt("set_multi", lambda: mc.set_multi({"m1": b"1", "m2": b"2"}))
    attempt("get_multi m", lambda: sorted(mc.get_multi(["m1", "m2"]).items()))
    attempt("delete_multi", lambda: mc.delete_multi(["m1", "m2", "missing"]))

    value, cas = mc.gets("a")
    log("gets a value", value)
    assert cas, "gets returned no CAS"
    assert attempt("cas a", lambda: mc.cas("a", b"v2", cas)) is True
    attempt("cas a stale", lambda: mc.cas("a", b"v3", cas))
    attempt("cas missing", lambda: mc.cas("missing", b"x", cas))
    attempt("get a after cas", lambda: mc.get("a"))

    attempt("set n", lambda: mc.set("n", b"10"))
    assert attempt("incr n", lambda: mc.incr("n", 5)) == 15
    attempt("decr n", lambda: mc.decr("n", 20))
    attempt("incr n big", lambda: mc.incr("n", 2**31 - 1))
    attempt("incr n more", lambda: mc.incr("n", 2**31 - 1))
    attempt("incr missing", lambda: mc.incr("missing", 1))
    attempt("decr missing", lambda: mc.decr("missing", 1))
    attempt("incr non-numeric", lambda: mc.incr("a", 1))

    attempt("touch a", lambda: mc.touch("a", 1000))
    attempt("touch missing", lambda: mc.touch("missing", 1000))
    attempt("delete a", lambda: mc.delete("a"))
    attempt("delete a again", lambda: mc.delete("a"))
    attempt("get a deleted", lambda: mc.get("a"))

    big = bytes(i % 251 for i in range(BIG))
    attempt("set big", lambda: mc.set("big", big))
    got = mc.get("big")
    log("get big equal", got == big)
    assert got == big, "the 1.5 MB value did not come back intact"
    attempt("set huge", lambda: mc.set("huge", b"h" * HUGE))
    attempt("get huge", lambda: mc.get("huge"))
    attempt("get big after huge", lambda: mc.get("big") == big)

    long_key = "k" * 250
    attempt("set key 250", lambda: mc.set(long_key, b"v"))
    attempt("get key 250", lambda: mc.get(long_key))

    stats = dict(mc.get_stats()[0][1])
    log("stats has curr_items", "curr_items" in stats)
    log("stats limit_maxbytes", stats.get("limit_maxbytes"))
    mc.flush_all()
    attempt("get c after flush", lambda: mc.get("c"))
    attempt("get_multi after flush", lambda: mc.get_multi(["b", "c", "big"]))

    print("\n".join(out))
    print("pylibmc %s: done" % mode)


if __name__ == "__main__":
    main()
