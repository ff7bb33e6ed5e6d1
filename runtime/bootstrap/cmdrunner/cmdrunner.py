"""lambdad's command runner: the runtime client of the functions behind
lambdad's Docker Engine API front end (server/docker_api.c).

Each invocation is one `docker start` of the container: the command is the
runner's own arguments (the function's ImageConfig.Command: the container's
resolved ENTRYPOINT + CMD; an event "argv" overrides it), the event says
where its output goes. The runner runs the command, streams its stdout and stderr (kept
apart, as Docker's multiplexed frames: 8-byte header, stream 1 or 2) to
lambdad in one chunked POST, and answers the invocation with
{"StatusCode": <exit code>} (128+N when the command died of signal N).

Event: {"tty": bool, "output": {"port": P, "path": "/..."}, "argv"?: [...]}.
Without "output" (e.g. a plain Lambda Invoke of the function) the command's
output goes to the runner's stdout/stderr, i.e. the function's log.
The output listener is on the host that serves the Runtime API
(AWS_LAMBDA_RUNTIME_API), so it is reachable from wherever the runtime is.

Signals sent to the environment (docker stop / kill reach the container's
PID 1, which is this process) are forwarded to the running command; with no
command running the runner exits 128+N.

stdlib only (Python 3.9+); lambdad runs it as
`python3 /var/lambdad-runtime/cmdrunner/cmdrunner.py`."""
import http.client
import json
import os
import signal
import struct
import subprocess
import sys
import threading

API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
PREFIX = "/2018-06-01/runtime"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)

_child = None


def _split_hostport(hp):
    if hp.startswith("["):
        host, _, port = hp[1:].partition("]:")
        return host, int(port)
    host, _, port = hp.rpartition(":")
    return host, int(port)


HOST, PORT = _split_hostport(API) if API else ("", 0)


def _on_signal(sig, _frame):
    child = _child
    if child is not None and child.poll() is None:
        try:
            child.send_signal(sig)
        except OSError:
            pass
    elif sig != signal.SIGWINCH:
        os._exit(128 + sig)


def _rapi(conn, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, PREFIX + path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp, resp.read()


class Output:
    """One chunked POST carrying Docker stream frames; falls back to the
    runner's own stdout/stderr (the function's log) if lambdad is gone."""

    def __init__(self, spec):
        self.lock = threading.Lock()
        self.conn = None
        if not spec:
            return
        try:
            c = http.client.HTTPConnection(HOST, int(spec["port"]), timeout=None)
            c.putrequest("POST", spec["path"], skip_accept_encoding=True)
            c.putheader("Transfer-Encoding", "chunked")
            c.putheader("Content-Type", "application/vnd.docker.multiplexed-stream")
            # lambdad also files the output under the function's log group,
            # in this environment's stream (next to START/END/REPORT).
            stream = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
            if stream.isprintable() and len(stream) < 256:
                c.putheader("Lambdad-Log-Stream", stream)
            c.endheaders()
            self.conn = c
        except (OSError, KeyError, ValueError) as e:
            sys.stderr.write(f"cmdrunner: output stream: {e}\n")

    def write(self, stream, data):
        with self.lock:
            if self.conn is not None:
                frame = struct.pack(">BxxxI", stream, len(data)) + data
                try:
                    self.conn.send(b"%x\r\n%s\r\n" % (len(frame), frame))
                    return
                except OSError as e:
                    sys.stderr.write(f"cmdrunner: output stream lost: {e}\n")
                    self.conn = None
            (sys.stdout if stream == 1 else sys.stderr).buffer.write(data)

    def close(self):
        with self.lock:
            if self.conn is None:
                return
            try:
                self.conn.send(b"0\r\n\r\n")
                self.conn.getresponse().read()
            except OSError:
                pass
            self.conn.close()
            self.conn = None


def _pump(fd, stream, out):
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            break
        out.write(stream, data)
    os.close(fd)


def run(event):
    global _child
    argv = event.get("argv") or sys.argv[1:]
    tty = bool(event.get("tty"))
    out = Output(event.get("output"))
    code = 0
    try:
        if not argv or not all(isinstance(a, str) for a in argv):
            out.write(2, b"cmdrunner: no command specified\n")
            return 125
        r1, w1 = os.pipe()
        r2, w2 = (r1, w1) if tty else os.pipe()
        try:
            _child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=w1, stderr=w2,
                                      close_fds=True)
        except FileNotFoundError:
            out.write(2, f'exec: "{argv[0]}": executable file not found in $PATH\n'.encode())
            code = 127
        except PermissionError:
            out.write(2, f'exec: "{argv[0]}": permission denied\n'.encode())
            code = 126
        except OSError as e:
            out.write(2, f'exec: "{argv[0]}": {e.strerror}\n'.encode())
            code = 126
        os.close(w1)
        if not tty:
            os.close(w2)
        pumps = [threading.Thread(target=_pump, args=(r1, 1, out), daemon=True)]
        if not tty:
            pumps.append(threading.Thread(target=_pump, args=(r2, 2, out), daemon=True))
        for t in pumps:
            t.start()
        if _child is not None:
            rc = _child.wait()
            code = rc if rc >= 0 else 128 - rc
        for t in pumps:
            t.join()
        return code
    finally:
        _child = None
        out.close()


def main():
    if not API:
        sys.stderr.write("cmdrunner: AWS_LAMBDA_RUNTIME_API is not set\n")
        return 1
    for s in FORWARDED:
        signal.signal(s, _on_signal)
    conn = http.client.HTTPConnection(HOST, PORT, timeout=None)
    while True:
        resp, body = _rapi(conn, "GET", "/invocation/next")
        rid = resp.getheader("Lambda-Runtime-Aws-Request-Id", "")
        try:
            event = json.loads(body or b"{}")
            if not isinstance(event, dict):
                raise ValueError("the event is not an object")
        except ValueError as e:
            err = json.dumps({"errorMessage": f"bad command event: {e}",
                              "errorType": "Runtime.BadEvent"})
            _rapi(conn, "POST", f"/invocation/{rid}/error", err)
            continue
        code = run(event)
        _rapi(conn, "POST", f"/invocation/{rid}/response", json.dumps({"StatusCode": code}))


if __name__ == "__main__":
    sys.exit(main())
