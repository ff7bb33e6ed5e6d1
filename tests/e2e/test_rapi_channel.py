"""The Runtime API's fast paths (runtime/rapi.h): lambdad's private AF_UNIX
channel for its bundled Python bootstrap, its upgrade to a pair of pipes,
and the replies of a pipelined /response + GET /next. Standard clients must
see a plain HTTP endpoint on AWS_LAMBDA_RUNTIME_API, whatever the bundled
bootstraps do.
"""
import json
import os

import pytest

from conftest import new_server, stop_and_check
from test_invoke import invoke, invoke_ok, provided_fn, py_fn


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = new_server(str(tmp_path_factory.mktemp("rapi")), ephemeral=True)
    s.start()
    yield s
    stop_and_check(s)


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


# Reports the Runtime API connection of its own process: the peer address of
# every connected socket, and the pipes above stdin/stdout/stderr.
PEER_HANDLER = """\
import os, socket
def handler(event, context):
    peers, pipes = [], []
    for fd in os.listdir('/proc/self/fd'):
        try:
            link = os.readlink('/proc/self/fd/' + fd)
            if link.startswith('pipe:') and int(fd) > 2:
                pipes.append(link)
            if not link.startswith('socket:'):
                continue
            s = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue
        try:
            p = s.getpeername()
            if isinstance(p, bytes):
                p = p.decode('latin-1')
            peers.append([s.family.name, p if isinstance(p, str) else list(p)])
        except OSError:
            pass
        finally:
            s.close()
    return {'api': os.environ['AWS_LAMBDA_RUNTIME_API'], 'peers': peers, 'pipes': pipes,
            'n': event.get('n')}
"""


def pipes_of(pid):
    """The pipe inodes ("pipe:[n]") process pid holds."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("pipe:"):
            out.add(link)
    return out


def test_bundled_python_uses_the_private_channels_pipes(srv, lam):
    name = py_fn(lam, PEER_HANDLER)
    for i in range(3):  # and keeps using them across invocations
        got = invoke_ok(lam, name, {"n": i})
        assert got["n"] == i
        # No socket to the Runtime API is left: the private AF_UNIX
        # connection was upgraded to two pipes whose other ends lambdad holds.
        assert got["peers"] == [], got
        assert len(got["pipes"]) == 2, got
        assert set(got["pipes"]) <= pipes_of(srv.proc.pid), got


def test_private_channel_can_be_turned_off(lam):
    name = py_fn(lam, PEER_HANDLER, Environment={"Variables": {"LAMBDAD_RAPI_PRIVATE": "0"}})
    got = invoke_ok(lam, name, {"n": 1})
    host, port = got["api"].rsplit(":", 1)
    assert ["AF_INET", [host, int(port)]] in got["peers"], got
    assert not any(f == "AF_UNIX" and "lambdad-rapi" in str(p) for f, p in got["peers"]), got
    assert invoke_ok(lam, name, {"n": 2})["n"] == 2


# A standard TCP client that pipelines: POST /response and GET /next in ONE
# send, then reads two complete HTTP responses from the stream. It echoes
# the event and records every status line it read in $OUT.
PIPELINING_BOOTSTRAP = r"""#!/usr/bin/env python3
import json, os, socket
host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].rsplit(':', 1)
s = socket.create_connection((host, int(port)))
buf = b''
seen = []
def read_response():
    global buf
    while b'\r\n\r\n' not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit('EOF')
        buf += chunk
    head, buf = buf.split(b'\r\n\r\n', 1)
    lines = head.decode('latin-1').split('\r\n')
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(':') for l in lines[1:])}
    n = int(hdrs.get('content-length', '0'))
    while len(buf) < n:
        buf += s.recv(65536)
    body, buf = buf[:n], buf[n:]
    seen.append(lines[0])
    with open(os.environ['OUT'] + '.tmp', 'w') as f:
        json.dump(seen, f)
    os.rename(os.environ['OUT'] + '.tmp', os.environ['OUT'])
    return hdrs, body
NEXT = b'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n'
s.sendall(NEXT)
hdrs, event = read_response()
while True:
    rid = hdrs['lambda-runtime-aws-request-id']
    body = json.dumps({'echo': json.loads(event), 'statuses': len(seen)}).encode()
    s.sendall(b'POST /2018-06-01/runtime/invocation/' + rid.encode() + b'/response HTTP/1.1\r\n'
              b'Host: x\r\nContent-Length: ' + str(len(body)).encode() + b'\r\n\r\n' + body + NEXT)
    _, accepted = read_response()
    assert seen[-1].startswith('HTTP/1.1 202'), seen
    assert json.loads(accepted) == {'status': 'OK'}, accepted
    hdrs, event = read_response()
"""


def test_pipelined_response_and_next_over_tcp(lam, tmp_path):
    out = str(tmp_path / "statuses.json")
    name = provided_fn(lam, {"bootstrap": (PIPELINING_BOOTSTRAP, 0o755)}, Timeout=10,
                       Environment={"Variables": {"OUT": out}})
    for i in range(5):
        resp, body = invoke(lam, name, {"i": i})
        assert "FunctionError" not in resp, body
        got = json.loads(body)
        assert got["echo"] == {"i": i}
        # Every earlier exchange completed: 1 event, then 202 + event per invoke.
        assert got["statuses"] == 1 + 2 * i
    with open(out) as f:
        seen = json.load(f)
    assert seen[0].startswith("HTTP/1.1 200")
    assert all(seen[k].startswith("HTTP/1.1 202") for k in range(1, len(seen), 2)), seen
    assert all(seen[k].startswith("HTTP/1.1 200") for k in range(2, len(seen), 2)), seen


# A custom runtime speaking the private channel by hand. At start-up it
# probes the upgrade: over TCP (404), with bytes behind the request (the
# pipes it gets are closed at once), then for real (200 and two pipes), and
# once more while that pipe channel lives (200: a second channel, closed
# again at once). It then serves over the
# pipes: "probe" returns what it saw, "echo" returns {"n": len(data), "data":
# data * times} (events and results bigger than a pipe's 64 KiB), "stream"
# streams `total` bytes (chunked, streaming mode) and "die" exits mid-invoke.
PIPES_BOOTSTRAP = r"""#!/usr/bin/env python3
import json, os, socket
API = os.environ['AWS_LAMBDA_RUNTIME_API']
UPGRADE = b'GET /_lambdad/rapi-pipes HTTP/1.1\r\nHost: x\r\n\r\n'

def unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(b'\0lambdad-rapi/' + API.encode())
    return s

def upgrade(s, extra=b''):
    s.sendall(UPGRADE + extra)
    msg, fds, _f, _a = socket.recv_fds(s, 4096, 2)
    return msg.split(b'\r\n', 1)[0].decode(), fds

class Pipes:
    def __init__(self, fds):
        self.r, self.w = fds
        self.buf = bytearray()
    def send(self, b):
        v, n = memoryview(b), 0
        while n < len(b):
            n += os.write(self.w, v[n:])
    def more(self):
        d = os.read(self.r, 1 << 16)
        if not d:
            raise SystemExit('events pipe closed')
        self.buf += d
    def response(self):
        while b'\r\n\r\n' not in self.buf:
            self.more()
        i = self.buf.index(b'\r\n\r\n')
        lines = bytes(self.buf[:i]).decode('latin-1').split('\r\n')
        del self.buf[:i + 4]
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(':') for l in lines[1:])}
        n = int(hdrs.get('content-length', '0'))
        while len(self.buf) < n:
            self.more()
        body = bytes(self.buf[:n])
        del self.buf[:n]
        return int(lines[0].split()[1]), hdrs, body

seen = {}
host, port = API.rsplit(':', 1)
t = socket.create_connection((host, int(port)))
t.sendall(UPGRADE)
seen['tcp'] = t.recv(4096).split(b'\r\n', 1)[0].decode()
t.close()
s = unix()
line, fds = upgrade(s, b'GET /2018-06-01/ping HTTP/1.1\r\nHost: x\r\n\r\n')
seen['trailing'] = [line, len(fds), [os.read(fds[0], 16).decode() for _ in fds[:1]], s.recv(16).decode()]
for fd in fds:
    os.close(fd)
s.close()
s = unix()
line, fds = upgrade(s)
seen['upgrade'] = [line, len(fds)]
s.close()
ch = Pipes(fds)
s2 = unix()
line, fds2 = upgrade(s2)
seen['second'] = [line, len(fds2)]
s2.close()
for fd in fds2:
    os.close(fd)
while True:
    ch.send(b'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n')
    st, h, body = ch.response()
    rid = h['lambda-runtime-aws-request-id'].encode()
    ev = json.loads(body)
    mode = ev.get('mode')
    post = b'POST /2018-06-01/runtime/invocation/' + rid + b'/response HTTP/1.1\r\nHost: x\r\n'
    if mode == 'die':
        os._exit(3)
    if mode == 'stream':
        ch.send(post + b'Lambda-Runtime-Function-Response-Mode: streaming\r\n'
                b'Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n')
        piece = bytes(i % 251 for i in range(65536))
        for _ in range(ev['total'] // 65536):
            ch.send(b'%x\r\n' % len(piece) + piece + b'\r\n')
        ch.send(b'0\r\n\r\n')
    else:
        if mode == 'probe':
            out = json.dumps(dict(seen, pid=os.getpid())).encode()
        else:
            out = json.dumps({'n': len(ev['data']), 'data': ev['data'] * ev.get('times', 1)}).encode()
        ch.send(post + b'Content-Length: %d\r\n\r\n' % len(out) + out)
    st, _, body = ch.response()
    assert st == 202, (st, body)
"""


@pytest.fixture(scope="module")
def pipes_fn(lam):
    return provided_fn(lam, {"bootstrap": (PIPES_BOOTSTRAP, 0o755)}, Timeout=30, MemorySize=512)


def test_pipe_upgrade_is_private_and_exclusive(srv, lam, pipes_fn):
    got = invoke_ok(lam, pipes_fn, {"mode": "probe"})
    # Only on the private AF_UNIX channel: over TCP the path is unknown.
    assert got["tcp"].startswith("HTTP/1.1 404"), got
    # Bytes behind the upgrade request would be lost with the socket: the
    # connection and the pipes just handed over are closed.
    line, nfds, reads, sock_read = got["trailing"]
    assert line.startswith("HTTP/1.1 200") and nfds == 2, got
    assert reads == [""] and sock_read == "", got
    assert got["upgrade"] == ["HTTP/1.1 200 OK", 2], got
    # A second connection may upgrade too (and is closed again at once).
    assert got["second"] == ["HTTP/1.1 200 OK", 2], got
    # The runtime serves over the pipes: no socket to lambdad is left open.
    peers = [os.readlink(f"/proc/{got['pid']}/fd/{fd}") for fd in os.listdir(f"/proc/{got['pid']}/fd")]
    assert not [p for p in peers if p.startswith("socket:")], peers
    assert len([p for p in peers if p in pipes_of(srv.proc.pid)]) >= 4, peers  # stdout, stderr, 2 channel


def test_pipe_channel_carries_events_and_results_bigger_than_a_pipe(lam, pipes_fn):
    for size, times in ((10, 1), (200_000, 1), (3_000_000, 1), (1000, 4000)):
        data = "x" * size
        got = invoke_ok(lam, pipes_fn, {"mode": "echo", "data": data, "times": times})
        assert got["n"] == size and got["data"] == data * times


def test_pipe_channel_relays_a_large_stream(lam, pipes_fn):
    total = 16 << 20
    resp = lam.invoke_with_response_stream(FunctionName=pipes_fn,
                                           Payload=json.dumps({"mode": "stream", "total": total}))
    chunks, complete = [], None
    for ev in resp["EventStream"]:
        if "PayloadChunk" in ev:
            chunks.append(ev["PayloadChunk"]["Payload"])
        else:
            complete = ev["InvokeComplete"]
    assert complete is not None and "ErrorCode" not in complete, complete
    body = b"".join(chunks)
    assert len(body) == total and body == bytes(i % 251 for i in range(65536)) * (total // 65536)
    assert invoke_ok(lam, pipes_fn, {"mode": "echo", "data": "after"})["data"] == "after"


def test_runtime_dying_on_the_pipe_channel(lam, pipes_fn):
    resp, body = invoke(lam, pipes_fn, {"mode": "die"})
    assert resp.get("FunctionError") == "Unhandled", body
    assert json.loads(body)["errorType"] == "Runtime.ExitError", body
    # A new environment serves the next invoke over new pipes.
    assert invoke_ok(lam, pipes_fn, {"mode": "echo", "data": "again"})["data"] == "again"


# What a handler sees of its invocation: the context object, the trace id in
# os.environ and in the C environ, the event.
CONTEXT_HANDLER = """\
import ctypes, os
def handler(event, context):
    cc = context.client_context
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    c_trace = getenv(b'_X_AMZN_TRACE_ID')
    return {
        'event': event,
        'request_id': context.aws_request_id,
        'arn': context.invoked_function_arn,
        'deadline_type': type(context._epoch_deadline_time_in_ms).__name__,
        'remaining_ok': 0 < context.get_remaining_time_in_millis() <= 7000,
        'memory': context.memory_limit_in_mb,
        'version': context.function_version,
        'tenant_id': context.tenant_id,
        'custom': cc.custom if cc else None,
        'env': cc.env if cc else None,
        'client': [cc.client.installation_id, cc.client.app_title] if cc and cc.client else None,
        'identity': [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        'trace': os.environ.get('_X_AMZN_TRACE_ID'),
        'c_trace': c_trace.decode('utf-8', 'surrogateescape') if c_trace else None,
    }
"""


def raw_invoke(srv, name, event, headers):
    """POST /invocations with the given headers as raw bytes (http.client
    sends str values as Latin-1); returns the decoded result."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("POST", f"/2015-03-31/functions/{name}/invocations",
                     body=json.dumps(event).encode(), headers=headers)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200 and r.getheader("X-Amz-Function-Error") is None, (r.status, body)
        return json.loads(body), r.getheader("X-Amz-Request-Id") or r.getheader("x-amzn-RequestId")
    finally:
        conn.close()


def test_marshal_events_carry_what_http_events_carry(srv, lam):
    """The bundled bootstrap reads events as marshal frames on the pipes
    (rapi.h); over TCP (the private channel off) it reads the HTTP form.
    A handler sees the same invocation either way: ids, ARN, deadline,
    client context with non-ASCII text, a trace id with a Latin-1 byte in
    os.environ and the C environ, a Unicode event."""
    import base64
    marshal_fn = py_fn(lam, CONTEXT_HANDLER)
    http_fn = py_fn(lam, CONTEXT_HANDLER, Environment={"Variables": {"LAMBDAD_RAPI_PRIVATE": "0"}})
    ctx = {"custom": {"k": "caf\u00e9 \u2713", "n": 1}, "env": {"locale": "fr_FR"},
           "client": {"installation_id": "inst-1", "app_title": "T\u00eete"}}
    trace = "Root=1-5f84c7a5-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1;x=\u00e9"
    event = {"text": "\u00e9\u2713\U0001F600", "n": [1, 2.5, None]}
    seen = {}
    for name in (marshal_fn, http_fn):
        got, rid = raw_invoke(srv, name, event, {
            "Content-Type": "application/json", "X-Amzn-Trace-Id": trace,
            "X-Amz-Client-Context": base64.b64encode(json.dumps(ctx).encode()).decode()})
        assert got["request_id"] == rid, (got, rid)
        assert got["arn"].endswith(":function:" + name), got
        for k in ("request_id", "arn"):
            got.pop(k)
        seen[name] = got
    assert seen[marshal_fn] == seen[http_fn], seen
    got = seen[marshal_fn]
    assert got["event"] == event and got["deadline_type"] == "int" and got["remaining_ok"], got
    assert got["custom"] == ctx["custom"] and got["env"] == ctx["env"], got
    assert got["client"] == ["inst-1", "T\u00eete"], got
    assert got["trace"] == trace, got
    # the C environ holds the Latin-1 byte as os.environ encodes it (UTF-8)
    assert got["c_trace"] == trace, got
    assert got["identity"] == [None, None] and got["tenant_id"] is None, got
    # and the marshal function really is on the pipes
    peers = invoke_ok(lam, py_fn(lam, PEER_HANDLER), {"n": 0})
    assert peers["peers"] == [] and len(peers["pipes"]) == 2, peers
