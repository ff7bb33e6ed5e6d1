"""InvokeWithResponseStream end to end with boto3's own event stream parser
(it checks the prelude and message CRCs, so a framing error fails here):
buffered handlers arrive as PayloadChunk events then InvokeComplete;
function errors carry ErrorCode/ErrorDetails; LogType Tail carries
LogResult; a runtime that answers with Lambda-Runtime-Function-Response-Mode:
streaming (chunked transfer) is relayed; large responses are split.

The relay is incremental: causality checks (the handler waits for a file
the test writes only after it received the first chunk) show chunks reach
the client while the handler runs, through InvokeWithResponseStream and a
RESPONSE_STREAM function URL; a 16 MB stream arrives intact past the 6 MB
buffered limit; a client that disconnects mid-stream leaves the environment
serving the next invocation; a timeout mid-stream ends with InvokeComplete
carrying the error; the bundled Node runtime's awslambda.streamifyResponse
and HttpResponseStream stream the same way.
"""
import base64
import json
import struct
import urllib.parse
import urllib.request
import zlib

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, make_zip, unique_name, wait_for


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def collect(resp):
    chunks, complete = [], None
    for ev in resp["EventStream"]:
        if "PayloadChunk" in ev:
            chunks.append(ev["PayloadChunk"]["Payload"])
        elif "InvokeComplete" in ev:
            complete = ev["InvokeComplete"]
    return chunks, complete


PY = ("def handler(event, context):\n"
      "    if event.get('fail'):\n"
      "        raise ValueError('stream boom')\n"
      "    if event.get('big'):\n"
      "        return 'x' * event['big']\n"
      "    print('log line from handler')\n"
      "    return {'a': 1, 'echo': event}\n")

# A custom runtime that streams its response in three chunks.
STREAMING_BOOTSTRAP = """#!/usr/bin/env python3
import http.client, os
host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')
while True:
    c = http.client.HTTPConnection(host, int(port))
    c.request('GET', '/2018-06-01/runtime/invocation/next')
    r = c.getresponse()
    rid = r.getheader('Lambda-Runtime-Aws-Request-Id')
    r.read()
    c.putrequest('POST', '/2018-06-01/runtime/invocation/%s/response' % rid)
    c.putheader('Lambda-Runtime-Function-Response-Mode', 'streaming')
    c.putheader('Transfer-Encoding', 'chunked')
    c.putheader('Content-Type', 'text/plain')
    c.endheaders()
    for part in (b'first ', b'second ', b'third'):
        c.send(b'%x\\r\\n%s\\r\\n' % (len(part), part))
    c.send(b'0\\r\\n\\r\\n')
    c.getresponse().read()
    c.close()
"""


@pytest.mark.smoke
def test_buffered_handler_streams_one_chunk(lam):
    name = unique_name("rs")
    create_function(lam, name, make_zip({"lambda_function.py": PY}))
    resp = lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"k": "v"}')
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert resp["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    chunks, complete = collect(resp)
    assert len(chunks) == 1
    assert json.loads(b"".join(chunks)) == {"a": 1, "echo": {"k": "v"}}
    assert complete is not None and "ErrorCode" not in complete


def test_function_error_and_log_tail(lam):
    name = unique_name("rse")
    create_function(lam, name, make_zip({"lambda_function.py": PY}))
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"fail": true}'))
    assert chunks == []
    assert complete["ErrorCode"] == "Unhandled"
    details = json.loads(complete["ErrorDetails"])
    assert details["errorMessage"] == "stream boom" and details["errorType"] == "ValueError"
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}", LogType="Tail"))
    log = base64.b64decode(complete["LogResult"]).decode()
    assert "log line from handler" in log and "REPORT RequestId" in log


def test_large_response_is_split(lam):
    name = unique_name("rsb")
    create_function(lam, name, make_zip({"lambda_function.py": PY}))
    n = 2_500_000
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=name, Payload=json.dumps({"big": n})))
    assert len(chunks) == 3
    assert json.loads(b"".join(chunks)) == "x" * n


def test_streaming_runtime_is_relayed(lam):
    name = unique_name("rss")
    create_function(lam, name, make_zip({"bootstrap": (STREAMING_BOOTSTRAP, 0o755)}), Runtime="provided.al2023",
                    Handler="x")
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}"))
    assert b"".join(chunks) == b"first second third"
    assert "ErrorCode" not in complete
    # The same function through plain Invoke gets the whole body.
    assert lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read() == b"first second third"


def test_framing_by_hand_and_errors(server, lam):
    name = unique_name("rsf")
    create_function(lam, name, make_zip({"lambda_function.py": PY}))
    req = urllib.request.Request(f"{server.url}/2021-11-15/functions/{name}/response-streaming-invocations",
                                 data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
        assert r.headers["Content-Type"] == "application/vnd.amazon.eventstream"
    events = []
    while data:
        total, hlen, pcrc = struct.unpack(">III", data[:12])
        assert pcrc == zlib.crc32(data[:8])
        assert struct.unpack(">I", data[total - 4:total])[0] == zlib.crc32(data[:total - 4])
        headers, h = {}, data[12:12 + hlen]
        while h:
            nl = h[0]
            hname = h[1:1 + nl].decode()
            assert h[1 + nl] == 7
            vl = struct.unpack(">H", h[2 + nl:4 + nl])[0]
            headers[hname] = h[4 + nl:4 + nl + vl].decode()
            h = h[4 + nl + vl:]
        events.append((headers, data[12 + hlen:total - 4]))
        data = data[total:]
    assert [e[0][":event-type"] for e in events] == ["PayloadChunk", "InvokeComplete"]
    assert all(e[0][":message-type"] == "event" for e in events)
    assert events[0][0][":content-type"] == "application/octet-stream"
    assert events[1][0][":content-type"] == "application/json"
    with pytest.raises(ClientError) as ei:
        lam.invoke_with_response_stream(FunctionName=unique_name("ghost"), Payload=b"{}")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    raw = server.client(validate=False)
    with pytest.raises(ClientError) as ei:
        raw.invoke_with_response_stream(FunctionName=name, InvocationType="Event", Payload=b"{}")
    assert error_of(ei)[:2] == (400, "ValidationException")


# Streams one chunk, then fails: the error arrives in HTTP trailers, as the
# AWS runtime clients send it for streamed responses.
FAILING_STREAM_BOOTSTRAP = """#!/usr/bin/env python3
import base64, http.client, json, os
host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')
err = base64.b64encode(json.dumps({'errorMessage': 'broke midway', 'errorType': 'StreamError'}).encode())
while True:
    c = http.client.HTTPConnection(host, int(port))
    c.request('GET', '/2018-06-01/runtime/invocation/next')
    r = c.getresponse()
    rid = r.getheader('Lambda-Runtime-Aws-Request-Id')
    r.read()
    c.putrequest('POST', '/2018-06-01/runtime/invocation/%s/response' % rid)
    c.putheader('Lambda-Runtime-Function-Response-Mode', 'streaming')
    c.putheader('Transfer-Encoding', 'chunked')
    c.putheader('Trailer', 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body')
    c.endheaders()
    c.send(b'5\\r\\npart1\\r\\n0\\r\\n')
    c.send(b'Lambda-Runtime-Function-Error-Type: StreamError\\r\\nLambda-Runtime-Function-Error-Body: ' + err + b'\\r\\n\\r\\n')
    c.getresponse().read()
    c.close()
"""


def test_streaming_runtime_error_in_trailers(lam):
    name = unique_name("rst")
    create_function(lam, name, make_zip({"bootstrap": (FAILING_STREAM_BOOTSTRAP, 0o755)}),
                    Runtime="provided.al2023", Handler="x")
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}"))
    assert complete["ErrorCode"] == "Unhandled"
    assert json.loads(complete["ErrorDetails"]) == {"errorMessage": "broke midway", "errorType": "StreamError"}
    resp = lam.invoke(FunctionName=name, Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorMessage"] == "broke midway"


# --- incremental relay ------------------------------------------------------
#
# A custom runtime whose modes let the tests check causality rather than
# time: "handshake" streams a first chunk, then waits (up to 60 s) for a file
# the test creates only after it received that chunk, then streams a second
# chunk saying whether it saw the file, and writes a "done" marker after
# its last write. If lambdad held the stream back until the handler ended,
# the client would get nothing before the handler gave up waiting.
INCREMENTAL_BOOTSTRAP = """#!/usr/bin/env python3
import http.client, json, os, time
host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')
INTEG = 'application/vnd.awslambda.http-integration-response'

def wait_file(path, limit=60.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False

while True:
    c = http.client.HTTPConnection(host, int(port))
    c.request('GET', '/2018-06-01/runtime/invocation/next')
    r = c.getresponse()
    rid = r.getheader('Lambda-Runtime-Aws-Request-Id')
    ev = json.loads(r.read())
    if 'rawPath' in ev:  # a function URL event: the test passes its settings in the query
        ev = dict(ev.get('queryStringParameters') or {}, mode='integration')
    mode = ev.get('mode', 'small')
    c.putrequest('POST', '/2018-06-01/runtime/invocation/%s/response' % rid)
    c.putheader('Lambda-Runtime-Function-Response-Mode', 'streaming')
    c.putheader('Transfer-Encoding', 'chunked')
    c.putheader('Content-Type', INTEG if mode == 'integration' else 'text/plain')
    c.endheaders()
    def send(part):
        c.send(b'%x\\r\\n%s\\r\\n' % (len(part), part))
    if mode in ('handshake', 'integration'):
        if mode == 'integration':
            send(json.dumps({'statusCode': 201, 'headers': {'content-type': 'text/plain',
                                                             'x-incremental': 'yes'}}).encode() + bytes(8))
        send(b'first ')
        saw = wait_file(ev['go'])
        send(b'second:' + (b'go' if saw else b'timeout'))
        open(ev['done'], 'w').close()
    elif mode == 'big':
        send(b'pid:%d\\n' % os.getpid())
        piece = bytes(i % 251 for i in range(65536))
        for _ in range(ev['total'] // 65536):
            send(piece)
        open(ev['done'], 'w').close()
    elif mode == 'hang':
        send(b'before-timeout')
        time.sleep(60)
    elif mode == 'truncate':
        send(b'partial')
        c.close()  # gone without the last chunk; the runtime itself carries on
        continue
    else:
        send(b'pid:%d' % os.getpid())
    c.send(b'0\\r\\n\\r\\n')
    c.getresponse().read()
    c.close()
"""


@pytest.fixture(scope="module")
def incremental_fn(lam):
    name = unique_name("rsi")
    create_function(lam, name, make_zip({"bootstrap": (INCREMENTAL_BOOTSTRAP, 0o755)}),
                    Runtime="provided.al2023", Handler="x", Timeout=60)
    return name


def admin_envs(server, name):
    with urllib.request.urlopen(server.url + "/_lambdad/environments", timeout=10) as r:
        return [e for e in json.loads(r.read()) if e["function"] == name]


def test_first_chunk_arrives_while_the_handler_still_runs(lam, incremental_fn, tmp_path):
    go, done = tmp_path / "go", tmp_path / "done"
    resp = lam.invoke_with_response_stream(
        FunctionName=incremental_fn, LogType="Tail",
        Payload=json.dumps({"mode": "handshake", "go": str(go), "done": str(done)}))
    assert resp["StatusCode"] == 200
    events = iter(resp["EventStream"])
    first = next(events)
    assert first == {"PayloadChunk": {"Payload": b"first "}}
    # The handler is still waiting for us: it has not finished.
    assert not done.exists()
    go.touch()
    rest = list(events)
    assert rest[:-1] == [{"PayloadChunk": {"Payload": b"second:go"}}]
    complete = rest[-1]["InvokeComplete"]
    assert "ErrorCode" not in complete
    assert "REPORT RequestId" in base64.b64decode(complete["LogResult"]).decode()
    assert done.exists()


def test_response_stream_url_streams_as_written(server, lam, incremental_fn, tmp_path):
    import http.client
    cfg = lam.create_function_url_config(FunctionName=incremental_fn, AuthType="NONE",
                                         InvokeMode="RESPONSE_STREAM")
    uid = cfg["FunctionUrl"].split("//", 1)[1].split(".", 1)[0]
    go, done = tmp_path / "go", tmp_path / "done"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("GET", f"/_lambdad/url/{uid}/?" + urllib.parse.urlencode({"go": str(go), "done": str(done)}))
    r = conn.getresponse()
    # Status and headers come from the prelude, before the handler finished.
    assert r.status == 201
    assert r.getheader("x-incremental") == "yes" and r.getheader("Content-Type") == "text/plain"
    got = b""
    while len(got) < len(b"first "):
        piece = r.read1(64)
        assert piece, "the body ended early: %r" % got
        got += piece
    assert got == b"first "
    assert not done.exists()
    go.touch()
    assert got + r.read() == b"first second:go"
    conn.close()
    assert done.exists()


def test_large_stream_passes_the_buffered_limit_intact(lam, incremental_fn, tmp_path):
    total = 16 << 20  # beyond the 6 MB buffered limit
    payload = json.dumps({"mode": "big", "total": total, "done": str(tmp_path / "done")})
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=incremental_fn, Payload=payload))
    assert "ErrorCode" not in complete
    body = b"".join(chunks)
    head, data = body.split(b"\n", 1)
    assert head.startswith(b"pid:")
    assert len(data) == total and data == bytes(i % 251 for i in range(65536)) * (total // 65536)
    assert len(chunks) > 1
    # Plain Invoke still buffers, and still enforces its limit.
    resp = lam.invoke(FunctionName=incremental_fn, Payload=payload)
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"


def test_streamed_response_limit(server, lam, incremental_fn, tmp_path):
    # 200 MB (AWS's current limit for streamed responses); read with
    # http.client and a minimal event-stream splitter (botocore would spend
    # seconds on the CRCs of 200 MB).
    import http.client
    limit = 200 << 20
    body = json.dumps({"mode": "big", "total": limit + (1 << 20), "done": str(tmp_path / "done")})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("POST", f"/2021-11-15/functions/{incremental_fn}/response-streaming-invocations", body=body)
    r = conn.getresponse()
    assert r.status == 200
    buf, payload, last = b"", 0, None
    while True:
        piece = r.read(1 << 20)
        if not piece:
            break
        buf += piece
        while len(buf) >= 12:
            total, hlen = struct.unpack(">II", buf[:8])
            if len(buf) < total:
                break
            if b"PayloadChunk" in buf[12:12 + hlen]:
                payload += total - 16 - hlen
            else:
                last = json.loads(buf[12 + hlen:total - 4])
            buf = buf[total:]
    conn.close()
    assert buf == b""
    assert limit - (1 << 20) < payload <= limit  # everything up to the limit was relayed
    assert last["ErrorCode"] == "Unhandled"
    assert json.loads(last["ErrorDetails"])["errorType"] == "Function.ResponseSizeTooLarge"


def test_client_disconnect_mid_stream_leaves_the_environment_usable(server, lam, tmp_path):
    import socket
    name = unique_name("rsd")
    create_function(lam, name, make_zip({"bootstrap": (INCREMENTAL_BOOTSTRAP, 0o755)}),
                    Runtime="provided.al2023", Handler="x", Timeout=60)
    done = tmp_path / "done"
    body = json.dumps({"mode": "big", "total": 32 << 20, "done": str(done)}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    s.sendall(b"POST /2021-11-15/functions/%s/response-streaming-invocations HTTP/1.1\r\n"
              b"Host: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" % (name.encode(), len(body), body))
    got = b""
    while b"pid:" not in got:  # the 200 and the first PayloadChunk
        piece = s.recv(4096)
        assert piece, got
        got += piece
    assert got.startswith(b"HTTP/1.1 200")
    s.close()  # gone mid-stream, with 32 MB still to come
    # The function runs to its end (its output discarded, the runtime not
    # held back by the queue any more) and its environment is free again.
    wait_for(done.exists, 60, what="the handler to finish")
    wait_for(lambda: [e["state"] for e in admin_envs(server, name)] == ["idle"], 60,
             what="the environment to be idle")
    pid = got.split(b"pid:", 1)[1].split(b"\n", 1)[0]
    resp = lam.invoke(FunctionName=name, Payload=b'{"mode": "small"}')
    assert "FunctionError" not in resp
    assert resp["Payload"].read() == b"pid:" + pid  # the same environment served it
    [env] = admin_envs(server, name)
    assert env["invocations"] == 2


def test_stream_cut_off_by_the_runtime_ends_with_the_error(server, lam, incremental_fn):
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=incremental_fn,
                                                               Payload=b'{"mode": "truncate"}'))
    assert chunks == [b"partial"]
    assert complete["ErrorCode"] == "Unhandled"
    assert json.loads(complete["ErrorDetails"])["errorType"] == "Runtime.TruncatedResponse"
    # Not held until the function's timeout, and the runtime goes on serving.
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=incremental_fn,
                                                               Payload=b'{"mode": "small"}'))
    assert b"".join(chunks).startswith(b"pid:") and "ErrorCode" not in complete


def test_timeout_mid_stream_ends_with_the_error(lam, tmp_path):
    name = unique_name("rsto")
    create_function(lam, name, make_zip({"bootstrap": (INCREMENTAL_BOOTSTRAP, 0o755)}),
                    Runtime="provided.al2023", Handler="x", Timeout=1)
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"mode": "hang"}'))
    assert chunks == [b"before-timeout"]
    assert complete["ErrorCode"] == "Unhandled"
    details = json.loads(complete["ErrorDetails"])
    assert details["errorType"] == "Sandbox.Timedout" and "timed out" in details["errorMessage"]
    # A new environment answers the next call.
    assert lam.invoke(FunctionName=name, Payload=b'{"mode": "small"}')["Payload"].read().startswith(b"pid:")


# --- the bundled Node runtime: awslambda.streamifyResponse ------------------

NODE_STREAMING = """import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { existsSync, writeFileSync } from 'node:fs';

const waitFile = async (path) => {
  for (let i = 0; i < 6000 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
  return existsSync(path);
};

export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (event.rawPath !== undefined) {  // a function URL request
    responseStream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 202, headers: {'content-type': 'text/csv', 'x-node': 'streamed'}, cookies: ['c=1']});
    await pipeline(Readable.from(['a,b\\n', '1,2\\n']), responseStream);
    return;
  }
  if (event.mode === 'handshake') {
    responseStream.setContentType('text/plain');
    responseStream.write('first ');
    const saw = await waitFile(event.go);
    responseStream.write('second:' + (saw ? 'go' : 'timeout'));
    writeFileSync(event.done, '');
    responseStream.end();
    return;
  }
  if (event.mode === 'fail') {
    responseStream.write('partial');
    await new Promise((r) => setTimeout(r, 10));
    throw new TypeError('node stream broke');
  }
  if (event.mode === 'unfinished') {
    responseStream.write('never ended');
    return;
  }
  console.log('streaming request', context.awsRequestId);
  await pipeline(Readable.from(['alpha ', 'beta ', 'gamma']), responseStream);
});
"""


@pytest.fixture(scope="module")
def node_stream_fn(lam):
    name = unique_name("rsnode")
    create_function(lam, name, make_zip({"index.mjs": NODE_STREAMING}), Runtime="nodejs20.x",
                    Handler="index.handler", Timeout=60)
    return name


def test_node_streamify_response_streams_as_written(lam, node_stream_fn, tmp_path):
    go, done = tmp_path / "go", tmp_path / "done"
    resp = lam.invoke_with_response_stream(
        FunctionName=node_stream_fn, Payload=json.dumps({"mode": "handshake", "go": str(go), "done": str(done)}))
    events = iter(resp["EventStream"])
    assert next(events) == {"PayloadChunk": {"Payload": b"first "}}
    assert not done.exists()
    go.touch()
    chunks, complete = collect({"EventStream": events})
    assert chunks == [b"second:go"] and "ErrorCode" not in complete
    # pipeline() from a Readable, with the log tail; and the same handler
    # through plain Invoke (lambdad buffers the stream).
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=node_stream_fn, Payload=b"{}",
                                                               LogType="Tail"))
    assert b"".join(chunks) == b"alpha beta gamma" and "ErrorCode" not in complete
    assert "streaming request" in base64.b64decode(complete["LogResult"]).decode()
    resp = lam.invoke(FunctionName=node_stream_fn, Payload=b"{}")
    assert "FunctionError" not in resp and resp["Payload"].read() == b"alpha beta gamma"


def test_node_streaming_errors(lam, node_stream_fn):
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=node_stream_fn,
                                                               Payload=b'{"mode": "fail"}'))
    assert chunks == [b"partial"]
    assert complete["ErrorCode"] == "Unhandled"
    details = json.loads(complete["ErrorDetails"])
    assert details["errorType"] == "TypeError" and details["errorMessage"] == "node stream broke"
    resp = lam.invoke(FunctionName=node_stream_fn, Payload=b'{"mode": "fail"}')
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorMessage"] == "node stream broke"
    # Resolving without ending the stream is the runtime client's error.
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=node_stream_fn,
                                                               Payload=b'{"mode": "unfinished"}'))
    assert chunks == [b"never ended"]
    assert json.loads(complete["ErrorDetails"])["errorType"] == "Runtime.InvalidStreamingOperation"
    # The runtime serves the next invocation normally.
    chunks, complete = collect(lam.invoke_with_response_stream(FunctionName=node_stream_fn, Payload=b"{}"))
    assert b"".join(chunks) == b"alpha beta gamma" and "ErrorCode" not in complete


def test_node_http_response_stream_through_a_function_url(server, lam, node_stream_fn):
    import http.client
    cfg = lam.create_function_url_config(FunctionName=node_stream_fn, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    uid = cfg["FunctionUrl"].split("//", 1)[1].split(".", 1)[0]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", f"/_lambdad/url/{uid}/report.csv")
    r = conn.getresponse()
    assert r.status == 202
    assert r.getheader("Content-Type") == "text/csv" and r.getheader("x-node") == "streamed"
    assert r.getheader("Set-Cookie") == "c=1"
    assert r.read() == b"a,b\n1,2\n"
    conn.close()
