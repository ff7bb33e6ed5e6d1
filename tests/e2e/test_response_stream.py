"""InvokeWithResponseStream end to end with boto3's own event stream parser
(it checks the prelude and message CRCs, so a framing error fails here):
buffered handlers arrive as PayloadChunk events then InvokeComplete;
function errors carry ErrorCode/ErrorDetails; LogType Tail carries
LogResult; a runtime that answers with Lambda-Runtime-Function-Response-Mode:
streaming (chunked transfer) is relayed; large responses are split.
"""
import base64
import json
import struct
import urllib.request
import zlib

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, make_zip, unique_name


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
