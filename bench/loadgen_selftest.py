#!/usr/bin/env python3
"""loadgen_selftest.py — checks bench/loadgen's HTTP parsing and accounting.

Starts a small HTTP/1.1 keep-alive server on 127.0.0.1 (a free port) whose
paths answer in the framings loadgen must handle, runs loadgen against each
and checks the JSON it prints:

  /cl        200, Content-Length body          -> requests > 0, no errors
  /chunked   200, chunked body with extension and trailer -> no errors
  /interim   100 Continue, then 200 Content-Length        -> no errors
  /close     200 with Connection: close (loadgen reconnects) -> no errors
  /eof       HTTP/1.0-style body delimited by EOF -> no errors
  /per-conn/{c}/x  each connection always sends its own index
  /seq       -b with {n}: every body carries its own 8-digit sequence number
  /500       500 with a body                   -> every response non2xx
  /slow      answers after 3 s; loadgen -T 0.5  -> timeouts counted as errors
  /garbage   not HTTP                          -> errors, no requests
  -n 50      exactly 50 requests recorded

Usage: python3 bench/loadgen_selftest.py PATH/TO/loadgen
Exit 0 when every check passes; prints "N passed, N failed".
"""
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time


SEEN = {}  # peer port -> paths requested on that connection (/per-conn/...)
BODIES = []  # request bodies sent to /seq


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            path = lines[0].split(" ")[1]
            clen = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    clen = int(v)
            while len(buf) < clen:
                buf += sock.recv(65536)
            if path == "/seq":
                BODIES.append(buf[:clen])
            buf = buf[clen:]
            if not self.respond(sock, path):
                return

    def respond(self, sock, path):
        body = b'{"a":1}'
        if path in ("/cl", "/seq"):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" + body)
        elif path.startswith("/per-conn/"):
            # which paths the connections sent, by connection (peer port)
            SEEN.setdefault(sock.getpeername()[1], set()).add(path)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" + body)
        elif path == "/chunked":
            # split across several sends to exercise partial parsing
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\n{\"a")
            sock.sendall(b"\r\n4\r\n\":1}\r\n")
            sock.sendall(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif path == "/interim":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" + body)
        elif path == "/close":
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 7\r\n\r\n" + body)
            return False
        elif path == "/eof":
            sock.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + body)
            return False
        elif path == "/500":
            sock.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 7\r\n\r\n" + body)
        elif path == "/slow":
            time.sleep(3)
            return False
        elif path == "/garbage":
            sock.sendall(b"SPAM SPAM SPAM\r\n\r\n")
            return False
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def run(loadgen, port, *args):
    out = subprocess.run([loadgen, "-h", "127.0.0.1", "-p", str(port), *args],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen exit {out.returncode}: {out.stderr}")
    return json.loads(out.stdout)


def main():
    loadgen = sys.argv[1]
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    passed = failed = 0

    def check(name, cond, detail):
        nonlocal passed, failed
        if cond:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {name}: {detail}")

    for path in ("/cl", "/chunked", "/interim", "/close", "/eof"):
        r = run(loadgen, port, "-P", path, "-b", "{}", "-c", "2", "-d", "0.5")
        check(path, r["requests"] > 20 and r["errors"] == 0 and r["non2xx"] == 0, r)
    # "{c}" in the path: each connection sends its own index, always the same
    r = run(loadgen, port, "-P", "/per-conn/{c}/x", "-b", "{}", "-c", "3", "-d", "0.5")
    check("{c} per connection", r["requests"] > 20 and r["errors"] == 0 and
          sorted(tuple(v) for v in SEEN.values()) ==
          [("/per-conn/0/x",), ("/per-conn/1/x",), ("/per-conn/2/x",)], (r, SEEN))
    # "{n}" in the body: a sequence number per request, unique across
    # connections, 8 digits (a fixed Content-Length), every {n} of a body alike
    r = run(loadgen, port, "-P", "/seq", "-b", '{"Name": "f-{n}", "Again": "{n}"}', "-c", "3", "-d", "0.5")
    nums = []
    for b in BODIES:
        d = json.loads(b)
        nums.append(d["Again"])
        if d["Name"] != "f-" + d["Again"] or len(d["Again"]) != 8:
            nums.append(None)
    check("{n} per request", r["requests"] > 20 and r["errors"] == 0 and None not in nums and
          sorted(int(n) for n in nums) == list(range(len(nums))) and len(nums) >= r["requests"],
          (r, BODIES[:5], len(BODIES)))
    r = run(loadgen, port, "-P", "/500", "-c", "2", "-d", "0.5")
    check("/500", r["requests"] > 20 and r["non2xx"] == r["requests"] and r["errors"] == 0, r)
    r = run(loadgen, port, "-P", "/slow", "-c", "1", "-d", "1.2", "-T", "0.5")
    check("/slow", r["requests"] == 0 and r["timeouts"] >= 1 and r["errors"] >= 1, r)
    r = run(loadgen, port, "-P", "/garbage", "-c", "1", "-d", "0.3")
    check("/garbage", r["requests"] == 0 and r["errors"] >= 1, r)
    r = run(loadgen, port, "-P", "/cl", "-c", "4", "-t", "2", "-n", "50", "-w", "0.1")
    check("-n 50", r["requests"] == 50 and r["errors"] == 0, r)
    lat = r["latency_us"]
    check("percentiles ordered", lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"] + 1, lat)
    # a closed port: connect errors, bounded run
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    r = run(loadgen, dead, "-c", "2", "-d", "0.5")
    check("refused", r["requests"] == 0 and r["connect_errors"] >= 1 and time.monotonic() - t0 < 5, r)
    # non-loopback targets are refused
    out = subprocess.run([loadgen, "-h", "192.0.2.1", "-p", "80", "-d", "0.1"],
                         capture_output=True, text=True, timeout=10)
    check("loopback only", out.returncode == 2 and "loopback" in out.stderr, out.stderr)
    srv.shutdown()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
