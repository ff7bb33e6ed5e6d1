"""Durable-execution operations end to end. lambdad runs no durable
executions (no DurableConfig engine, documented), so every operation
checks its input as the model says and then answers what AWS answers for
an execution, checkpoint token or callback that does not exist, with an
error the model lists for that operation.
"""
import base64
import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, unique_name

CLOSED = ("The callback ID token has either expired or the callback associated with the token has "
          "already been closed.")


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def exec_arn(fn, qualifier="$LATEST", name="run-1", eid="0f1e2d3c"):
    return f"{function_arn(fn)}:{qualifier}/durable-execution/{name}/{eid}"


def test_list_by_function(server):
    c = server.client()
    raw = server.client(validate=False)
    fn = unique_name("du")
    create_function(c, fn, Publish=True)
    r = c.list_durable_executions_by_function(FunctionName=fn)
    assert r["DurableExecutions"] == [] and "NextMarker" not in r
    r = c.list_durable_executions_by_function(FunctionName=function_arn(fn), Qualifier="1",
                                              Statuses=["RUNNING", "FAILED"], DurableExecutionName="order-7",
                                              StartedAfter="2025-01-01T00:00:00Z", ReverseOrder=True, MaxItems=10)
    assert r["DurableExecutions"] == []
    assert list(p for page in c.get_paginator("list_durable_executions_by_function").paginate(FunctionName=fn)
                for p in page["DurableExecutions"]) == []
    with pytest.raises(ClientError) as ei:
        c.list_durable_executions_by_function(FunctionName=unique_name("ghost"))
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        c.list_durable_executions_by_function(FunctionName=fn, Qualifier="9")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    for bad in ({"Statuses": ["SLEEPING"]}, {"Statuses": ["RUNNING"] * 11}, {"MaxItems": 1001},
                {"DurableExecutionName": "bad name"}, {"DurableExecutionName": "x" * 65},
                {"Qualifier": "bad qualifier!"}):
        with pytest.raises(ClientError) as ei:
            raw.list_durable_executions_by_function(FunctionName=fn, **bad)
        assert error_of(ei)[:2] == (400, "ValidationException"), bad


def test_executions_do_not_exist(server):
    c = server.client()
    fn = unique_name("dx")
    create_function(c, fn)
    for arn in (exec_arn(fn), exec_arn(fn, "3"), exec_arn(fn, "$LATEST.PUBLISHED"), exec_arn("nofn")):
        for call in (lambda: c.get_durable_execution(DurableExecutionArn=arn),
                     lambda: c.get_durable_execution_history(DurableExecutionArn=arn, IncludeExecutionData=False,
                                                             MaxItems=5, ReverseOrder=True),
                     lambda: c.stop_durable_execution(DurableExecutionArn=arn,
                                                      Error={"ErrorMessage": "m", "ErrorType": "t",
                                                             "StackTrace": ["a"]}),
                     lambda: c.stop_durable_execution(DurableExecutionArn=arn)):
            with pytest.raises(ClientError) as ei:
                call()
            assert error_of(ei) == (404, "ResourceNotFoundException", f"Durable execution not found: {arn}")
        # The model lists no ResourceNotFoundException for these two: the
        # token (which only a running execution hands out) is refused.
        for call in (lambda: c.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken="dG9rZW4="),
                     lambda: c.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken="dG9rZW4=",
                                                            Updates=[], ClientToken="ct-1")):
            with pytest.raises(ClientError) as ei:
                call()
            assert error_of(ei)[:2] == (400, "InvalidParameterValueException")


def test_malformed_execution_input(server):
    raw = server.client(validate=False)
    fn = unique_name("dm")
    for arn in ("nope", function_arn(fn), exec_arn(fn, "prod"), exec_arn(fn, name="a b"),
                exec_arn(fn, eid="x" * 1100), "arn:aws:lambda:us-east-1:12:function:f:1/durable-execution/a/b"):
        for call in (lambda: raw.get_durable_execution(DurableExecutionArn=arn),
                     lambda: raw.get_durable_execution_history(DurableExecutionArn=arn),
                     lambda: raw.stop_durable_execution(DurableExecutionArn=arn),
                     lambda: raw.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken="abc"),
                     lambda: raw.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken="abc")):
            with pytest.raises(ClientError) as ei:
                call()
            status, code, msg = error_of(ei)
            assert (status, code) == (400, "ValidationException"), (arn, msg)
            assert "durableExecutionArn" in msg
    good = exec_arn(fn)
    for call in (lambda: raw.get_durable_execution_state(DurableExecutionArn=good, CheckpointToken="not a token"),
                 lambda: raw.get_durable_execution_state(DurableExecutionArn=good),
                 lambda: raw.checkpoint_durable_execution(DurableExecutionArn=good, CheckpointToken="a" * 2049),
                 lambda: raw.checkpoint_durable_execution(DurableExecutionArn=good, CheckpointToken="abc",
                                                          ClientToken="x" * 65),
                 lambda: raw.get_durable_execution_history(DurableExecutionArn=good, MaxItems=1001),
                 lambda: raw.get_durable_execution_history(DurableExecutionArn=good, MaxItems=-1)):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_of(ei)[:2] == (400, "ValidationException")


def test_callbacks(server):
    c = server.client()
    raw = server.client(validate=False)
    cid = base64.b64encode(b"\xfb\xff\xfe callback id").decode()  # has '+' and '/'
    assert "/" in cid and "+" in cid
    for call in (lambda: c.send_durable_execution_callback_success(CallbackId=cid, Result=b'{"ok":true}'),
                 lambda: c.send_durable_execution_callback_success(CallbackId=cid),
                 lambda: c.send_durable_execution_callback_failure(CallbackId=cid,
                                                                   Error={"ErrorMessage": "no", "ErrorData": "{}"}),
                 lambda: c.send_durable_execution_callback_heartbeat(CallbackId=cid)):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_of(ei) == (400, "CallbackTimeoutException", CLOSED)
    for bad in ("a b", "abc===", "x" * 1025, "é"):
        with pytest.raises(ClientError) as ei:
            raw.send_durable_execution_callback_heartbeat(CallbackId=bad)
        assert error_of(ei)[:2] == (400, "ValidationException"), bad


def raw_post(server, path, body):
    req = urllib.request.Request(server.url + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("x-amzn-ErrorType")
    except urllib.error.HTTPError as e:
        json.loads(e.read() or b"{}")
        return e.code, e.headers.get("x-amzn-ErrorType")


def test_hostile_bodies(server):
    arn = urllib.request.quote(exec_arn("f"), safe="")
    for path in (f"/2025-12-01/durable-executions/{arn}/stop", f"/2025-12-01/durable-executions/{arn}/checkpoint",
                 "/2025-12-01/durable-execution-callbacks/abc/fail"):
        for body in (b"{", b"[1]", b"[" * 5000 + b"]" * 5000, b'{"a":1,"a":2}'):
            assert raw_post(server, path, body) == (400, "InvalidRequestContentException"), (path, body[:10])
        assert raw_post(server, path, b'{"x":"' + b"a" * (2 << 20) + b'"}')[0] == 413
    # Wrong member types in the ErrorObject / checkpoint.
    assert raw_post(server, f"/2025-12-01/durable-executions/{arn}/stop",
                    b'{"ErrorMessage": 5}') == (400, "ValidationException")
    assert raw_post(server, "/2025-12-01/durable-execution-callbacks/abc/fail",
                    b'{"StackTrace": "x"}') == (400, "ValidationException")
    assert raw_post(server, f"/2025-12-01/durable-executions/{arn}/checkpoint",
                    b'{"CheckpointToken": "abc", "Updates": {}}') == (400, "ValidationException")
    # The success Result is a blob of at most 256 KiB.
    cb = "/2025-12-01/durable-execution-callbacks/abc/succeed"
    assert raw_post(server, cb, b"\x00\xff" * 1000) == (400, "CallbackTimeoutException")
    assert raw_post(server, cb, b"a" * 262144) == (400, "CallbackTimeoutException")
    assert raw_post(server, cb, b"a" * 262145)[0] == 413
