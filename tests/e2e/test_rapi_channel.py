"""The Runtime API's fast paths (runtime/rapi.h): lambdad's private AF_UNIX
channel for its bundled Python bootstrap, and the replies of a pipelined
/response + GET /next. Standard clients must see a plain HTTP endpoint on
AWS_LAMBDA_RUNTIME_API, whatever the bundled bootstraps do.
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
# every connected socket (the bootstrap holds exactly one).
PEER_HANDLER = """\
import os, socket
def handler(event, context):
    peers = []
    for fd in os.listdir('/proc/self/fd'):
        try:
            if not os.readlink('/proc/self/fd/' + fd).startswith('socket:'):
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
    return {'api': os.environ['AWS_LAMBDA_RUNTIME_API'], 'peers': peers, 'n': event.get('n')}
"""


def test_bundled_python_uses_the_private_channel(lam):
    name = py_fn(lam, PEER_HANDLER)
    for i in range(3):  # and keeps using it across invocations
        got = invoke_ok(lam, name, {"n": i})
        assert got["n"] == i
        assert ["AF_UNIX", "\0lambdad-rapi/" + got["api"]] in got["peers"], got


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
