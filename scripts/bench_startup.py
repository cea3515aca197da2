#!/usr/bin/env python3
"""Start-up of one server: time from just before exec to serving (the TCP port accepts and a
`version` request is answered) and its resident memory (VmRSS) right then. Stops the server
(SIGTERM, then SIGKILL after 30 s) by PID. Loopback only; every wait is bounded.

Usage: bench_startup.py PORT COMMAND...
Prints: exec_to_serving_ms=X rss_kb=Y
"""
import os
import signal
import socket
import subprocess
import sys
import time


def main(argv):
    port = int(argv[1])
    cmd = argv[2:]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        while True:
            if p.poll() is not None:
                print("bench_startup: %s exited with %s" % (cmd[0], p.returncode), file=sys.stderr)
                return 1
            if time.monotonic() - t0 > 120:
                print("bench_startup: %s did not serve within 120 s" % cmd[0], file=sys.stderr)
                return 1
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
            except OSError:
                time.sleep(0.001)
                continue
            s.settimeout(10)
            s.sendall(b"version\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                reply += chunk
            s.close()
            if reply.startswith(b"VERSION "):
                break
        ms = (time.monotonic() - t0) * 1000
        with open("/proc/%d/status" % p.pid) as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        print("exec_to_serving_ms=%.1f rss_kb=%d" % (ms, rss))
        return 0
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
