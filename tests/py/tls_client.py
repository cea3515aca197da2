#!/usr/bin/env python3
"""TLS client scenarios for tests/tests/tls.rs, run the same against Petrel and memcached -Z.

Usage: tls_client.py SCENARIO PORT [ARGS...]; prints one line per outcome, which the test
compares between the two servers (so nothing here depends on which server answers).

Scenarios:
  pymemcache PORT CA            pymemcache over TLS (ssl context with the CA)
  raw PORT CA HEXBYTES          send the bytes over TLS, print everything until the server closes
  cert PORT CA CERT KEY         handshake with a client certificate (or "-" for none), send
                                version, print the reply or the TLS error's reason
  plain PORT HEXBYTES           plaintext socket: send, print what comes back (or how it ended)
  hello-bytes                   print a real TLS ClientHello, hex (for truncated handshakes)
"""
import binascii
import socket
import ssl
import sys


def context(ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert and cert != "-":
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_socket(port, ctx):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_all(s):
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ssl.SSLError as e:
            return out, "ssl-error:" + str(e.reason)
        except ConnectionResetError:
            return out, "reset"
        except socket.timeout:
            return out, "timeout"
        if not d:
            return out, "eof"
        out += d


def pymemcache(port, ca):
    from pymemcache.client.base import Client

    c = Client(("127.0.0.1", port), tls_context=context(ca), timeout=10, connect_timeout=10)
    print("set", c.set("k1", b"v1", noreply=False))
    print("get", c.get("k1"))
    print("add-existing", c.add("k1", b"x", noreply=False))
    print("add-new", c.add("k2", b"22", noreply=False))
    print("get_many", sorted(c.get_many(["k1", "k2", "nope"]).items()))
    v, cas = c.gets("k1")
    print("gets", v)
    print("cas-ok", c.cas("k1", b"v1b", cas, noreply=False))
    print("cas-stale", c.cas("k1", b"v1c", cas, noreply=False))
    print("incr", c.incr("k2", 20))
    print("decr", c.decr("k2", 100))
    print("append", c.append("k1", b"!", noreply=False), c.get("k1"))
    big = bytes(range(256)) * 2000  # 512,000 bytes: many TLS records each way
    print("set-big", c.set("big", big, noreply=False))
    print("get-big", c.get("big") == big)
    print("touch", c.touch("k1", 100, noreply=False))
    print("delete", c.delete("k1", noreply=False), c.delete("k1", noreply=False))
    print("version", c.version())
    c.close()


def raw(port, ca, hexbytes):
    s = tls_socket(port, context(ca))
    s.sendall(binascii.unhexlify(hexbytes))
    out, end = read_all(s)
    print(repr(out))
    print(end)


def cert(port, ca, certfile, keyfile):
    try:
        s = tls_socket(port, context(ca, certfile, keyfile))
        s.sendall(b"version\r\n")
        out = b""
        while not out.endswith(b"\r\n"):
            d = s.recv(4096)
            if not d:
                break
            out += d
        print("reply", repr(out))
    except ssl.SSLError as e:
        print("tls-error", e.reason)
    except (ConnectionResetError, BrokenPipeError):
        print("reset")


def plain(port, hexbytes):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(binascii.unhexlify(hexbytes))
    out, end = b"", ""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                end = "eof"
                break
            out += d
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    print(repr(out))
    print(end)


def hello_bytes():
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    print(outgoing.read().hex())


def main():
    a = sys.argv[1:]
    if a[0] == "pymemcache":
        pymemcache(int(a[1]), a[2])
    elif a[0] == "raw":
        raw(int(a[1]), a[2], a[3])
    elif a[0] == "cert":
        cert(int(a[1]), a[2], a[3], a[4])
    elif a[0] == "plain":
        plain(int(a[1]), a[2])
    elif a[0] == "hello-bytes":
        hello_bytes()
    else:
        sys.exit("unknown scenario " + a[0])


if __name__ == "__main__":
    main()
