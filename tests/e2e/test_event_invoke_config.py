"""Asynchronous invocation configuration end to end: Put/Get/Update/Delete/
ListFunctionEventInvokeConfigs (shapes, merging, qualifiers, errors), and
its effect on Event invokes: MaximumRetryAttempts, MaximumEventAgeInSeconds,
and OnSuccess/OnFailure destinations to another Lambda function receiving
AWS's invocation record.
"""
import datetime
import json
import os

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, make_zip, unique_name, wait_for


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


# Writes one line per attempt into $OUT_DIR/<function name>.attempts, then
# fails or succeeds as the event asks.
WORKER = ("import json, os\n"
          "def handler(event, context):\n"
          "    with open(os.path.join(os.environ['OUT_DIR'], context.function_name + '.attempts'), 'a') as f:\n"
          "        f.write(context.aws_request_id + '\\n')\n"
          "    if event.get('fail'):\n"
          "        raise RuntimeError('asked to fail')\n"
          "    return {'done': event.get('n')}\n")

# Stores every event it gets in $OUT_DIR/<function name>.records (one JSON per line).
COLLECTOR = ("import json, os\n"
             "def handler(event, context):\n"
             "    with open(os.path.join(os.environ['OUT_DIR'], context.function_name + '.records'), 'a') as f:\n"
             "        f.write(json.dumps(event) + '\\n')\n"
             "    return 'ok'\n")


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l for l in f.read().splitlines() if l]


def test_config_crud_and_errors(server, lam):
    raw = server.client(validate=False)
    name = unique_name("eic")
    create_function(lam, name)
    with pytest.raises(ClientError) as ei:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error_of(ei) == (404, "ResourceNotFoundException",
                            f"The function {function_arn(name)}:$LATEST doesn't have an EventInvokeConfig")
    with pytest.raises(ClientError) as ei:
        lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    dest = function_arn(unique_name("dest"))
    put = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1,
                                               DestinationConfig={"OnFailure": {"Destination": dest}})
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert put["FunctionArn"] == function_arn(name) + ":$LATEST"
    assert put["MaximumRetryAttempts"] == 1 and "MaximumEventAgeInSeconds" not in put
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": dest}}
    assert isinstance(put["LastModified"], datetime.datetime)
    # Update merges; Put replaces.
    up = lam.update_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=300)
    assert up["MaximumRetryAttempts"] == 1 and up["MaximumEventAgeInSeconds"] == 300
    assert up["DestinationConfig"]["OnFailure"] == {"Destination": dest}
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumEventAgeInSeconds"] == 300
    put2 = lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)
    assert "MaximumRetryAttempts" not in put2 and put2["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    # Qualified configurations are separate.
    lam.publish_version(FunctionName=name)
    v1 = lam.put_function_event_invoke_config(FunctionName=name, Qualifier="1", MaximumRetryAttempts=0)
    assert v1["FunctionArn"] == function_arn(name) + ":1"
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"] for c in listed) == [function_arn(name) + ":$LATEST", function_arn(name) + ":1"]
    pages = list(lam.get_paginator("list_function_event_invoke_configs").paginate(
        FunctionName=name, PaginationConfig={"PageSize": 1}))
    assert [len(p["FunctionEventInvokeConfigs"]) for p in pages] == [1, 1]
    assert lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="1")[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="1")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    # Shape errors.
    with pytest.raises(ClientError) as ei:
        raw.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=3, MaximumEventAgeInSeconds=10)
    status, code, msg = error_of(ei)
    assert (status, code) == (400, "ValidationException")
    assert msg == ("2 validation errors detected: Value '3' at 'maximumRetryAttempts' failed to satisfy "
                   "constraint: Member must have value less than or equal to 2; Value '10' at "
                   "'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value greater "
                   "than or equal to 60")
    with pytest.raises(ClientError) as ei:
        raw.put_function_event_invoke_config(FunctionName=name,
                                             DestinationConfig={"OnSuccess": {"Destination": "not an arn"}})
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        lam.put_function_event_invoke_config(FunctionName=unique_name("ghost"), MaximumRetryAttempts=0)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.put_function_event_invoke_config(FunctionName=name, Qualifier="9", MaximumRetryAttempts=0)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")


@pytest.fixture
def async_server(lambdad_factory, tmp_path):
    srv = lambdad_factory(args=["--event-retry-delays", "100,100"])
    return srv, srv.client(), str(tmp_path)


def make(c, name, code, out_dir):
    create_function(c, name, make_zip({"lambda_function.py": code}),
                    Environment={"Variables": {"OUT_DIR": out_dir}})


def test_retry_attempts_applied(async_server):
    srv, c, out = async_server
    default, none = unique_name("rdef"), unique_name("rzero")
    make(c, default, WORKER, out)
    make(c, none, WORKER, out)
    c.put_function_event_invoke_config(FunctionName=none, MaximumRetryAttempts=0)
    for n in (default, none):
        c.invoke(FunctionName=n, InvocationType="Event", Payload=json.dumps({"fail": True}).encode())
    wait_for(lambda: len(lines(os.path.join(out, default + ".attempts"))) == 3, 60, 0.1, "3 attempts")
    # Give the zero-retry function the same time: still one attempt.
    assert len(lines(os.path.join(out, none + ".attempts"))) == 1


def test_destinations_receive_invocation_record(async_server):
    srv, c, out = async_server
    worker, sink = unique_name("wrk"), unique_name("sink")
    make(c, worker, WORKER, out)
    make(c, sink, COLLECTOR, out)
    c.put_function_event_invoke_config(
        FunctionName=worker, MaximumRetryAttempts=1,
        DestinationConfig={"OnSuccess": {"Destination": function_arn(sink)},
                           "OnFailure": {"Destination": function_arn(sink)}})
    c.invoke(FunctionName=worker, InvocationType="Event", Payload=json.dumps({"n": 1}).encode())
    c.invoke(FunctionName=worker, InvocationType="Event", Payload=json.dumps({"fail": True, "n": 2}).encode())
    recs_path = os.path.join(out, sink + ".records")
    recs = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(lines(recs_path)), 60, 0.1, "2 records")
    recs = sorted((json.loads(r) for r in recs), key=lambda r: r["requestPayload"]["n"])
    ok, bad = recs
    assert ok["version"] == "1.0"
    assert set(ok) == {"version", "timestamp", "requestContext", "requestPayload", "responseContext",
                       "responsePayload"}
    assert ok["requestContext"]["condition"] == "Success"
    assert ok["requestContext"]["functionArn"] == function_arn(worker) + ":$LATEST"
    assert ok["requestContext"]["approximateInvokeCount"] == 1
    assert ok["requestPayload"] == {"n": 1}
    assert ok["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert ok["responsePayload"] == {"done": 1}
    assert bad["requestContext"]["condition"] == "RetriesExhausted"
    assert bad["requestContext"]["approximateInvokeCount"] == 2
    assert bad["responseContext"]["functionError"] == "Unhandled"
    assert bad["responsePayload"]["errorMessage"] == "asked to fail"
    assert len(lines(os.path.join(out, worker + ".attempts"))) == 3


def test_event_age_stops_retries(lambdad_factory, tmp_path):
    # A retry 70 s later would be older than MaximumEventAgeInSeconds=60.
    srv = lambdad_factory(args=["--event-retry-delays", "70000,70000"])
    c, out = srv.client(), str(tmp_path)
    worker, sink = unique_name("age"), unique_name("agesink")
    make(c, worker, WORKER, out)
    make(c, sink, COLLECTOR, out)
    c.put_function_event_invoke_config(FunctionName=worker, MaximumEventAgeInSeconds=60,
                                       DestinationConfig={"OnFailure": {"Destination": function_arn(sink)}})
    c.invoke(FunctionName=worker, InvocationType="Event", Payload=json.dumps({"fail": True}).encode())
    recs = wait_for(lambda: lines(os.path.join(out, sink + ".records")), 60, 0.1, "the failure record")
    rec = json.loads(recs[0])
    assert rec["requestContext"]["condition"] == "EventAgeExceeded"
    assert rec["requestContext"]["approximateInvokeCount"] == 1
