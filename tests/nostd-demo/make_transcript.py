#!/usr/bin/env python3
"""Regenerate expected.txt by playing session.txt against the real memcached.

The no_std demo's output must equal what memcached 1.6 answers to the same
session, so the expected transcript comes from memcached itself (Debian's
`memcached` package), not from Petrel. Usage (from this directory):

    python3 make_transcript.py > expected.txt

Transcript format (the demo writes the same): for each step, every request
line echoed as `>>> LINE\\n` (an @advance step as `>>> @advance N\\n`),
followed by the raw reply bytes of that step.
"""
import os
import socket
import subprocess
import sys
import time


def steps(path):
    step = []
    for line in open(path, "rb").read().split(b"\n"):
        if line.startswith(b"#"):
            continue
        if line == b"":
            if step:
                yield step
            step = []
        else:
            step.append(line)
    if step:
        yield step


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_reply(conn, idle_seconds=0.4):
    data = b""
    conn.settimeout(idle_seconds)
    while True:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            return data
        if not chunk:
            return data
        data += chunk


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    port = free_port()
    cmd = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-t", "1"]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "memcache"]
    server = subprocess.Popen(cmd)
    try:
        for _ in range(100):
            try:
                conn = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
        out = sys.stdout.buffer
        for step in steps(os.path.join(here, "session.txt")):
            for line in step:
                out.write(b">>> " + line + b"\n")
            if step[0].startswith(b"@advance"):
                time.sleep(int(step[0].split()[1]))
                continue
            conn.sendall(b"".join(line + b"\r\n" for line in step))
            out.write(read_reply(conn))
        conn.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
