"""CloudWatch Logs: invocation logs in /aws/lambda/<function> with AWS's
stream names and START/END/REPORT lines, LoggingConfig (JSON, levels, log
group), every Logs operation through boto3 with its errors and tokens,
filter patterns, retention, the size cap, persistence across restarts and
crashes, hostile input, and handlers that reach lambdad's services with no
configuration."""
import json
import os
import re
import time

import botocore.exceptions
import pytest

from helpers import ACCOUNT, create_function, make_zip, unique_name, wait_for

STREAM_RE = re.compile(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$")
DAY_MS = 86400000


def _code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
def logs(server):
    return server.client(service="logs")


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


def py_fn(lam, code, **kwargs):
    name = unique_name("lg")
    create_function(lam, name, make_zip({"lambda_function.py": code}), **kwargs)
    return name


def invoke_ok(lam, name, payload=None, **kwargs):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kwargs)
    body = resp["Payload"].read()
    assert "FunctionError" not in resp, body
    return resp["ResponseMetadata"]["RequestId"], json.loads(body)


def all_events(logs, group, stream):
    out, tok = [], None
    while True:
        kw = dict(logGroupName=group, logStreamName=stream, startFromHead=True)
        if tok:
            kw["nextToken"] = tok
        r = logs.get_log_events(**kw)
        out += r["events"]
        if r["nextForwardToken"] == tok:
            return out
        tok = r["nextForwardToken"]


def only_stream(logs, group):
    streams = wait_for(lambda: logs.describe_log_streams(logGroupName=group)["logStreams"], 10,
                       what="a log stream")
    assert len(streams) == 1, streams
    return streams[0]


def messages(logs, group, stream, count):
    """The stream's messages once at least count events are in."""
    return [e["message"] for e in wait_for(
        lambda: (lambda ev: ev if len(ev) >= count else None)(all_events(logs, group, stream)),
        10, what=f"{count} events")]


# ------------------------------------------------------------- invocations

PRINTER = """\
print('init output')
def handler(event, context):
    print('hello', event['n'])
    print('two\\nlines')
    return {'ok': True}
"""


@pytest.mark.smoke
def test_invocation_logs_start_end_report(lam, logs):
    name = py_fn(lam, PRINTER, MemorySize=192)
    rid1, _ = invoke_ok(lam, name, {"n": 1})
    rid2, _ = invoke_ok(lam, name, {"n": 2})
    group = f"/aws/lambda/{name}"
    g = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [x["logGroupName"] for x in g] == [group]
    assert g[0]["arn"] == f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{group}:*"
    assert "retentionInDays" not in g[0]
    st = only_stream(logs, group)
    assert STREAM_RE.match(st["logStreamName"]), st
    assert st["logStreamName"][:10] == time.strftime("%Y/%m/%d", time.gmtime(st["creationTime"] / 1000))
    msgs = messages(logs, group, st["logStreamName"], 13)
    assert msgs[0] == "init output\n"
    assert msgs[1] == f"START RequestId: {rid1} Version: $LATEST\n"
    assert msgs[2:4] == ["hello 1\n", "two\n"]
    assert msgs[4] == "lines\n"
    assert msgs[5] == f"END RequestId: {rid1}\n"
    rep = re.fullmatch(rf"REPORT RequestId: {rid1}\tDuration: (\d+\.\d\d) ms\tBilled Duration: "
                       r"(\d+) ms\tMemory Size: 192 MB\tMax Memory Used: \d+ MB\t"
                       r"Init Duration: \d+\.\d\d ms\t\n", msgs[6])
    assert rep, msgs[6]
    assert int(rep.group(2)) >= float(rep.group(1))
    assert msgs[7] == f"START RequestId: {rid2} Version: $LATEST\n"
    assert msgs[8:11] == ["hello 2\n", "two\n", "lines\n"]
    assert msgs[11] == f"END RequestId: {rid2}\n"
    assert msgs[12].startswith(f"REPORT RequestId: {rid2}\tDuration: ")
    assert "Init Duration" not in msgs[12] and len(msgs) == 13
    ev = all_events(logs, group, st["logStreamName"])
    assert [e["timestamp"] for e in ev] == sorted(e["timestamp"] for e in ev)
    assert all(abs(e["timestamp"] - now_ms()) < 120000 for e in ev)


def test_version_stream_and_failed_invoke(lam, logs):
    name = py_fn(lam, "def handler(event, context):\n    raise ValueError('boom')\n")
    ver = lam.publish_version(FunctionName=name)["Version"]
    resp = lam.invoke(FunctionName=name, Qualifier=ver, Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"
    rid = resp["ResponseMetadata"]["RequestId"]
    group = f"/aws/lambda/{name}"
    st = only_stream(logs, group)
    assert re.fullmatch(rf"\d{{4}}/\d\d/\d\d/\[{ver}\][0-9a-f]{{32}}", st["logStreamName"])
    msgs = messages(logs, group, st["logStreamName"], 4)
    assert msgs[0] == f"START RequestId: {rid} Version: {ver}\n"
    assert any("boom" in m for m in msgs)
    assert re.search(r"\tStatus: error\t\n$", msgs[-1]) or msgs[-1].startswith("REPORT")


@pytest.mark.parametrize("how", ["init_error", "exit"])
def test_init_failure_report_has_memory_used(lam, logs, how):
    # A failed init still ran the runtime: its REPORT line says how much
    # memory it used, as AWS's does ("Max Memory Used: 0 MB" was a gap).
    code = ("import nosuchmodule_xyz\n" if how == "init_error" else
            "import os, sys\nsys.stdout.flush()\nos._exit(3)\n")
    name = py_fn(lam, code + "def handler(event, context):\n    return 1\n")
    for log_type in ("None", "Tail"):
        resp = lam.invoke(FunctionName=name, Payload=b"{}", LogType=log_type)
        assert resp["FunctionError"] == "Unhandled"
    group = f"/aws/lambda/{name}"

    def reports():
        out = []
        for st in logs.describe_log_streams(logGroupName=group).get("logStreams", []):
            out += [e["message"] for e in all_events(logs, group, st["logStreamName"])
                    if e["message"].startswith("REPORT ")]
        return out if len(out) >= 2 else None
    reps = wait_for(reports, 10, what="two REPORT lines")
    for rep in reps:
        m = re.search(r"\tMax Memory Used: (\d+) MB\t", rep)
        assert m and int(m.group(1)) > 0, rep
        assert "\tStatus: error\t" in rep, rep


def test_timeout_line_and_status(lam, logs):
    name = py_fn(lam, "import time\ndef handler(event, context):\n    time.sleep(5)\n", Timeout=1)
    resp = lam.invoke(FunctionName=name, Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"
    rid = resp["ResponseMetadata"]["RequestId"]
    group = f"/aws/lambda/{name}"
    st = only_stream(logs, group)
    msgs = messages(logs, group, st["logStreamName"], 4)
    assert any(re.fullmatch(rf"\S+Z {rid} Task timed out after 1.00 seconds\n", m) for m in msgs), msgs
    assert msgs[-1].startswith(f"REPORT RequestId: {rid}\t") and "Status: timeout" in msgs[-1]


def test_long_and_many_lines_are_all_kept(lam, logs):
    """More output than the 64 KB log tail keeps: CloudWatch gets all of it;
    a line over 256 KB is split into events of at most 256 KB."""
    name = py_fn(lam, "import sys\ndef handler(event, context):\n"
                      "    for i in range(3000):\n        print('line %05d' % i)\n"
                      "    sys.stdout.write('x' * 300000 + '\\n')\n    return 1\n")
    invoke_ok(lam, name)
    group = f"/aws/lambda/{name}"
    st = only_stream(logs, group)
    msgs = messages(logs, group, st["logStreamName"], 3000 + 5)
    lines = [m for m in msgs if m.startswith("line ")]
    assert lines == ["line %05d\n" % i for i in range(3000)]
    xs = [m for m in msgs if m.startswith("x")]
    assert [len(m) for m in xs] == [262144, 300001 - 262144]


JSON_HANDLER = """\
import logging
logger = logging.getLogger()
def handler(event, context):
    logger.info('info message')
    logger.warning('warn message')
    logger.error('error message %s', 42)
    print('plain print')
    return 1
"""


def test_json_log_format_and_levels(lam, logs):
    name = py_fn(lam, JSON_HANDLER, MemorySize=256,
                 LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    rid, _ = invoke_ok(lam, name)
    group = f"/aws/lambda/{name}"
    st = only_stream(logs, group)
    msgs = messages(logs, group, st["logStreamName"], 5)
    start = json.loads(msgs[0])
    assert start["type"] == "platform.start"
    assert start["record"] == {"requestId": rid, "version": "$LATEST"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", start["time"])
    report = json.loads(msgs[-1])
    assert report["type"] == "platform.report"
    assert report["record"]["requestId"] == rid
    assert report["record"]["status"] == "success"
    m = report["record"]["metrics"]
    assert m["memorySizeMB"] == 256 and m["billedDurationMs"] >= m["durationMs"] > 0
    assert m["initDurationMs"] > 0 and m["maxMemoryUsedMB"] > 0
    app = [json.loads(x) for x in msgs[1:-1] if x.startswith("{")]
    # Python's level names, as awslambdaric's JSON formatter writes them.
    assert [a["level"] for a in app] == ["WARNING", "ERROR"], msgs
    assert app[1]["message"] == "error message 42" and app[1]["requestId"] == rid
    assert "timestamp" in app[0]
    assert "plain print\n" in msgs  # not a logging record: kept as written
    assert not any("END RequestId" in x for x in msgs)


def test_system_log_level_warn_and_log_group_override(lam, logs):
    custom = "/custom/" + unique_name("grp")
    name = py_fn(lam, "def handler(event, context):\n    print('{\"level\": \"DEBUG\", \"m\": 1}')\n"
                      "    print('{\"level\": \"ERROR\", \"m\": 2}')\n    return 1\n",
                 LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "WARN", "LogGroup": custom})
    invoke_ok(lam, name)
    st = only_stream(logs, custom)
    msgs = messages(logs, custom, st["logStreamName"], 1)
    # No platform records at WARN; the DEBUG JSON line is below the default INFO.
    assert msgs == ['{"level": "ERROR", "m": 2}'], msgs
    assert not logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]


# --------------------------------------------------------------- groups

def test_log_group_crud_and_errors(logs):
    base = "/t/" + unique_name("crud")
    for i in range(5):
        logs.create_log_group(logGroupName=f"{base}/g{i}", tags={"team": f"t{i}"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.create_log_group(logGroupName=f"{base}/g0")
    assert _code(e) == "ResourceAlreadyExistsException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.create_log_group(logGroupName="bad name!")
    assert _code(e) == "InvalidParameterException"
    names, tok = [], None
    while True:
        kw = dict(logGroupNamePrefix=base, limit=2)
        if tok:
            kw["nextToken"] = tok
        r = logs.describe_log_groups(**kw)
        assert len(r["logGroups"]) <= 2
        names += [g["logGroupName"] for g in r["logGroups"]]
        tok = r.get("nextToken")
        if not tok:
            break
    assert names == [f"{base}/g{i}" for i in range(5)]
    pat = base.split("/")[-1].upper()  # the pattern is case-insensitive
    assert len(logs.describe_log_groups(logGroupNamePattern=pat)["logGroups"]) == 5
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.describe_log_groups(logGroupNamePrefix=base, logGroupNamePattern="x")
    assert _code(e) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.describe_log_groups(nextToken="garbage")
    assert _code(e) == "InvalidParameterException"
    assert logs.list_tags_log_group(logGroupName=f"{base}/g1")["tags"] == {"team": "t1"}
    logs.tag_log_group(logGroupName=f"{base}/g1", tags={"env": "dev"})
    logs.untag_log_group(logGroupName=f"{base}/g1", tags=["team"])
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{base}/g1"
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "dev"}
    logs.tag_resource(resourceArn=arn, tags={"a": "b"})
    logs.untag_resource(resourceArn=arn, tagKeys=["env"])
    assert logs.list_tags_log_group(logGroupName=f"{base}/g1")["tags"] == {"a": "b"}
    logs.delete_log_group(logGroupName=f"{base}/g0")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.delete_log_group(logGroupName=f"{base}/g0")
    assert _code(e) == "ResourceNotFoundException"
    assert e.value.response["Error"]["Message"] == "The specified log group does not exist."
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.list_tags_log_group(logGroupName=f"{base}/g0")
    assert _code(e) == "ResourceNotFoundException"


def test_regions_and_accounts_are_separate(server):
    a = server.client(service="logs", region="eu-west-1")
    b = server.client(service="logs", region="us-east-1", access_key="111111111111")
    name = "/sep/" + unique_name("g")
    a.create_log_group(logGroupName=name)
    assert not b.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert a.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["arn"].startswith(
        "arn:aws:logs:eu-west-1:")


def test_log_streams_order_and_pagination(logs):
    g = "/t/" + unique_name("streams")
    logs.create_log_group(logGroupName=g)
    t = now_ms()
    for i, name in enumerate(["c", "a", "b", "d"]):
        logs.create_log_stream(logGroupName=g, logStreamName=name)
    # Last event times: a newest, then d, c, b (b has no events).
    for name, ts in (("c", t - 3000), ("d", t - 2000), ("a", t - 1000)):
        logs.put_log_events(logGroupName=g, logStreamName=name,
                            logEvents=[{"timestamp": ts, "message": name}])
    by_name = logs.describe_log_streams(logGroupName=g)["logStreams"]
    assert [s["logStreamName"] for s in by_name] == ["a", "b", "c", "d"]
    b = by_name[1]
    assert "firstEventTimestamp" not in b and "lastEventTimestamp" not in b
    assert by_name[0]["firstEventTimestamp"] == by_name[0]["lastEventTimestamp"] == t - 1000
    newest = logs.describe_log_streams(logGroupName=g, orderBy="LastEventTime", descending=True,
                                       limit=2)
    assert [s["logStreamName"] for s in newest["logStreams"]] == ["a", "d"]
    rest = logs.describe_log_streams(logGroupName=g, orderBy="LastEventTime", descending=True,
                                     nextToken=newest["nextToken"])
    assert [s["logStreamName"] for s in rest["logStreams"]] == ["c", "b"]
    assert "nextToken" not in rest
    pre = logs.describe_log_streams(logGroupIdentifier=f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{g}",
                                    logStreamNamePrefix="c")
    assert [s["logStreamName"] for s in pre["logStreams"]] == ["c"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.describe_log_streams(logGroupName=g, orderBy="LastEventTime", logStreamNamePrefix="a")
    assert _code(e) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.create_log_stream(logGroupName=g, logStreamName="a")
    assert _code(e) == "ResourceAlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.create_log_stream(logGroupName=g, logStreamName="bad:name")
    assert _code(e) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.create_log_stream(logGroupName=g + "-missing", logStreamName="x")
    assert _code(e) == "ResourceNotFoundException"
    logs.delete_log_stream(logGroupName=g, logStreamName="a")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.delete_log_stream(logGroupName=g, logStreamName="a")
    assert _code(e) == "ResourceNotFoundException"
    assert e.value.response["Error"]["Message"] == "The specified log stream does not exist."
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.get_log_events(logGroupName=g, logStreamName="a")
    assert _code(e) == "ResourceNotFoundException"


# --------------------------------------------------------------- events

def make_stream(logs, n, start=None, step=10):
    g = "/t/" + unique_name("ev")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    t0 = start if start is not None else now_ms() - 60000
    logs.put_log_events(logGroupName=g, logStreamName="s",
                        logEvents=[{"timestamp": t0 + i * step, "message": f"m{i:03d}"}
                                   for i in range(n)])
    return g, t0


def test_get_log_events_tokens(logs):
    g, t0 = make_stream(logs, 25)
    # Default: the newest events (limit from the end), oldest first.
    r = logs.get_log_events(logGroupName=g, logStreamName="s", limit=10)
    assert [e["message"] for e in r["events"]] == [f"m{i:03d}" for i in range(15, 25)]
    assert r["nextForwardToken"].startswith("f/") and r["nextBackwardToken"].startswith("b/")
    # Backwards from there.
    r2 = logs.get_log_events(logGroupName=g, logStreamName="s", limit=10,
                             nextToken=r["nextBackwardToken"])
    assert [e["message"] for e in r2["events"]] == [f"m{i:03d}" for i in range(5, 15)]
    r3 = logs.get_log_events(logGroupName=g, logStreamName="s", limit=10,
                             nextToken=r2["nextBackwardToken"])
    assert [e["message"] for e in r3["events"]] == [f"m{i:03d}" for i in range(0, 5)]
    r4 = logs.get_log_events(logGroupName=g, logStreamName="s", nextToken=r3["nextBackwardToken"])
    assert r4["events"] == [] and r4["nextBackwardToken"] == r3["nextBackwardToken"]
    # Forward from the head, page by page; at the end the same token comes back.
    got, tok = [], None
    for _ in range(5):
        kw = dict(logGroupName=g, logStreamName="s", limit=10, startFromHead=True)
        if tok:
            kw["nextToken"] = tok
        r = logs.get_log_events(**kw)
        got += [e["message"] for e in r["events"]]
        if r["nextForwardToken"] == tok:
            break
        tok = r["nextForwardToken"]
    assert got == [f"m{i:03d}" for i in range(25)]
    # New events appear behind the same token.
    logs.put_log_events(logGroupName=g, logStreamName="s",
                        logEvents=[{"timestamp": t0 + 1000, "message": "late"}])
    r = logs.get_log_events(logGroupName=g, logStreamName="s", nextToken=tok)
    assert [e["message"] for e in r["events"]] == ["late"]
    # Time range: startTime inclusive, endTime exclusive.
    r = logs.get_log_events(logGroupName=g, logStreamName="s", startTime=t0 + 50,
                            endTime=t0 + 100, startFromHead=True)
    assert [e["message"] for e in r["events"]] == ["m005", "m006", "m007", "m008", "m009"]
    assert all(set(e) == {"timestamp", "message", "ingestionTime"} for e in r["events"])
    for bad in ("x", "f/123", "q/" + "0" * 40, "f/" + "a" * 40):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            logs.get_log_events(logGroupName=g, logStreamName="s", nextToken=bad)
        assert _code(e) == "InvalidParameterException"


def test_put_log_events_rules(logs):
    g = "/t/" + unique_name("put")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    t = now_ms()

    def put(events):
        return logs.put_log_events(logGroupName=g, logStreamName="s", logEvents=events)

    with pytest.raises(botocore.exceptions.ClientError) as e:
        put([{"timestamp": t, "message": "b"}, {"timestamp": t - 1, "message": "a"}])
    assert _code(e) == "InvalidParameterException"
    assert "chronological" in e.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        put([{"timestamp": t - 2 * DAY_MS, "message": "a"}, {"timestamp": t, "message": "b"}])
    assert "24 hours" in e.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        put([{"timestamp": t, "message": "x" * 600000}, {"timestamp": t, "message": "y" * 600000}])
    assert _code(e) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        put([{"timestamp": t, "message": "m"}] * 10001)
    assert _code(e) == "InvalidParameterException"
    r = put([{"timestamp": t - 15 * DAY_MS, "message": "too old"},
             {"timestamp": t - 14 * DAY_MS - 5000, "message": "too old 2"}])
    assert r["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
    r = put([{"timestamp": t, "message": "fine"},
             {"timestamp": t + 3 * 3600 * 1000, "message": "too new"},
             {"timestamp": t + 4 * 3600 * 1000, "message": "too new 2"}])
    assert r["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    assert r["nextSequenceToken"]
    ev = logs.get_log_events(logGroupName=g, logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in ev] == ["fine"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.put_log_events(logGroupName=g, logStreamName="nope",
                            logEvents=[{"timestamp": t, "message": "m"}])
    assert _code(e) == "ResourceNotFoundException"
    # Out of order across batches is accepted and read back in time order.
    put([{"timestamp": t - 5000, "message": "earlier"}])
    ev = logs.get_log_events(logGroupName=g, logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in ev] == ["earlier", "fine"]


def test_filter_log_events_patterns(logs):
    g = "/t/" + unique_name("flt")
    logs.create_log_group(logGroupName=g)
    t = now_ms() - 10000
    msgs = {
        "s1": ["ERROR disk full", "INFO all good", "WARN disk slow", "ERROR Exiting now"],
        "s2": ['{"level": "ERROR", "latency": 250, "user": {"id": 7}}',
               '{"level": "INFO", "latency": 50}', "[ERROR] bracketed", "user login ok"],
    }
    for k, (s, lines) in enumerate(msgs.items()):
        logs.create_log_stream(logGroupName=g, logStreamName=s)
        logs.put_log_events(logGroupName=g, logStreamName=s,
                            logEvents=[{"timestamp": t + i * 10 + k, "message": m}
                                       for i, m in enumerate(lines)])

    def f(pattern, **kw):
        r = logs.filter_log_events(logGroupName=g, filterPattern=pattern, **kw)
        return [e["message"] for e in r["events"]]

    assert len(f("")) == 8
    # Interleaved: ordered by timestamp across streams.
    all_ev = logs.filter_log_events(logGroupName=g)["events"]
    assert [e["timestamp"] for e in all_ev] == sorted(e["timestamp"] for e in all_ev)
    assert [e["logStreamName"] for e in all_ev[:2]] == ["s1", "s2"]
    assert len({e["eventId"] for e in all_ev}) == 8
    assert f("ERROR") == ["ERROR disk full", '{"level": "ERROR", "latency": 250, "user": {"id": 7}}',
                          "[ERROR] bracketed", "ERROR Exiting now"]
    assert f("ERROR disk") == ["ERROR disk full"]
    assert f('"disk full"') == ["ERROR disk full"]
    assert f("ERROR -Exiting -level -bracketed") == ["ERROR disk full"]
    assert f("?WARN ?INFO") == ["INFO all good", '{"level": "INFO", "latency": 50}', "WARN disk slow"]
    assert f('{ $.level = "ERROR" }') == ['{"level": "ERROR", "latency": 250, "user": {"id": 7}}']
    assert f("{ $.latency > 100 }") == ['{"level": "ERROR", "latency": 250, "user": {"id": 7}}']
    assert f('{ $.latency < 100 || $.user.id = 7 }') == [
        '{"level": "ERROR", "latency": 250, "user": {"id": 7}}', '{"level": "INFO", "latency": 50}']
    assert f('{ $.level = "IN*" && $.latency >= 50 }') == ['{"level": "INFO", "latency": 50}']
    assert f("{ $.user NOT EXISTS }") == ['{"level": "INFO", "latency": 50}']
    assert f("%disk (full|slow)%") == ["ERROR disk full", "WARN disk slow"]
    assert f("ERROR", logStreamNames=["s2"]) == [
        '{"level": "ERROR", "latency": 250, "user": {"id": 7}}', "[ERROR] bracketed"]
    assert f("", logStreamNamePrefix="s1", startTime=t + 10, endTime=t + 30) == [
        "INFO all good", "WARN disk slow"]
    # Bad syntax, and regular expressions whose automaton would explode
    # (found by fuzz_logs_filter: "c+++..." took gigabytes to compile).
    for bad in ('"unbalanced', "{ $.level = }", "{ level = 1 }", "[a, b]", "%(%",
                "%c" + "+" * 40 + "%", "%(a+)+%", "%((a*)*)*%", "%a{1000}%", "%x" * 2 + "y" * 300 + "%"):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            logs.filter_log_events(logGroupName=g, filterPattern=bad)
        assert _code(e) == "InvalidParameterException", bad
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.filter_log_events(logGroupName=g, logStreamNames=["s1"], logStreamNamePrefix="s")
    assert _code(e) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.filter_log_events(logGroupName=g + "x")
    assert _code(e) == "ResourceNotFoundException"


def test_filter_log_events_pagination(logs):
    g, t0 = make_stream(logs, 35)
    got, tok = [], None
    while True:
        kw = dict(logGroupName=g, limit=10)
        if tok:
            kw["nextToken"] = tok
        r = logs.filter_log_events(**kw)
        got += [e["message"] for e in r["events"]]
        tok = r.get("nextToken")
        if not tok:
            break
    assert got == [f"m{i:03d}" for i in range(35)]
    # The paginator (what `aws logs filter-log-events` uses) gets the same.
    pages = logs.get_paginator("filter_log_events").paginate(logGroupName=g, filterPattern="m01",
                                                            PaginationConfig={"PageSize": 3})
    assert [e["message"] for p in pages for e in p["events"]] == [f"m{i:03d}" for i in range(10, 20)]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.filter_log_events(logGroupName=g, nextToken="b/" + "0" * 40)
    assert _code(e) == "InvalidParameterException"


def test_retention_applied(logs):
    g, _ = make_stream(logs, 1, start=now_ms() - 3 * DAY_MS)
    for ts, m in ((now_ms() - 2 * DAY_MS, "m001"), (now_ms() - DAY_MS - 60000, "m002"),
                  (now_ms(), "recent")):
        logs.put_log_events(logGroupName=g, logStreamName="s", logEvents=[{"timestamp": ts, "message": m}])
    assert len(logs.get_log_events(logGroupName=g, logStreamName="s")["events"]) == 4
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.put_retention_policy(logGroupName=g, retentionInDays=2)
    assert _code(e) == "InvalidParameterException"
    logs.put_retention_policy(logGroupName=g, retentionInDays=1)
    ev = logs.get_log_events(logGroupName=g, logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in ev] == ["recent"]
    assert logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]["retentionInDays"] == 1
    # Events older than the retention are refused as expired.
    r = logs.put_log_events(logGroupName=g, logStreamName="s",
                            logEvents=[{"timestamp": now_ms() - 2 * DAY_MS, "message": "old"}])
    assert r["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 0}
    logs.delete_retention_policy(logGroupName=g)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.put_retention_policy(logGroupName=g + "x", retentionInDays=1)
    assert _code(e) == "ResourceNotFoundException"


# --------------------------------------------------------------- hostile

def raw_post(server, target, body, content_type="application/x-amz-json-1.1"):
    import http.client
    host, port = server.url.replace("http://", "").split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": content_type,
               "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/logs/aws4_request, "
                                "SignedHeaders=host, Signature=x"}
    if target:
        headers["X-Amz-Target"] = target
    c.request("POST", "/", body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def test_hostile_requests(server, logs):
    st, body = raw_post(server, "Logs_20140328.CreateLogGroup", b"{not json")
    assert (st, body["__type"]) == (400, "SerializationException")
    st, body = raw_post(server, "Logs_20140328.CreateLogGroup", b"[1, 2]")
    assert (st, body["__type"]) == (400, "SerializationException")
    st, body = raw_post(server, "Logs_20140328.CreateLogGroup", b'{"logGroupName": 5}')
    assert (st, body["__type"]) == (400, "SerializationException")
    st, body = raw_post(server, "Logs_20140328.CreateLogGroup", b"[" * 100000)
    assert (st, body["__type"]) == (400, "SerializationException")
    st, body = raw_post(server, "Logs_20140328.NoSuchOperation", b"{}")
    assert (st, body["__type"]) == (400, "UnknownOperationException")
    st, body = raw_post(server, "Logs_20140328.CreateLogGroup", b"{}")
    assert (st, body["__type"]) == (400, "InvalidParameterException")
    st, body = raw_post(server, "Logs_20140328.PutLogEvents", json.dumps(
        {"logGroupName": "/x", "logStreamName": "y", "logEvents": [{"timestamp": "x", "message": 1}]}))
    assert st == 400
    # A body over the cap is refused before it is read.
    st, _ = raw_post(server, "Logs_20140328.PutLogEvents", b"{" + b" " * (9 << 20) + b"}")
    assert st == 413
    # Messages that are not valid UTF-8 reach the log as U+FFFD, never break JSON.
    g = "/t/" + unique_name("h")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    logs.put_log_events(logGroupName=g, logStreamName="s",
                        logEvents=[{"timestamp": now_ms(), "message": "nul \u0000 and \u00e9"}])
    ev = logs.get_log_events(logGroupName=g, logStreamName="s")["events"]
    assert ev[0]["message"] == "nul \u0000 and \u00e9"
    # The server still answers.
    assert logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"]


def test_binary_function_output(lam, logs):
    name = py_fn(lam, "import sys\ndef handler(event, context):\n"
                      "    sys.stdout.buffer.write(b'bad \\xff\\xfe bytes\\n')\n"
                      "    sys.stdout.flush()\n    return 1\n")
    invoke_ok(lam, name)
    group = f"/aws/lambda/{name}"
    st = only_stream(logs, group)
    msgs = messages(logs, group, st["logStreamName"], 4)
    assert "bad \ufffd\ufffd bytes\n" in msgs


# ------------------------------------------------- handlers reach services

SELF_READER = """\
import os, boto3
def handler(event, context):
    if event.get('mark'):
        print('MARK', event['mark'])
        return {}
    logs = boto3.client('logs')
    ev = logs.get_log_events(logGroupName=context.log_group_name,
                             logStreamName=context.log_stream_name, startFromHead=True)['events']
    lam = boto3.client('lambda')
    fn = lam.get_function_configuration(FunctionName=context.function_name)
    keys = ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL_CLOUDWATCH_LOGS',
            'AWS_ENDPOINT_URL_IAM', 'AWS_ENDPOINT_URL_STS', 'AWS_ENDPOINT_URL_LAMBDA',
            'AWS_ACCESS_KEY_ID', 'AWS_SESSION_TOKEN', 'AWS_REGION']
    return {'marks': [e['message'] for e in ev if e['message'].startswith('MARK')],
            'fn': fn['FunctionName'], 'env': {k: os.environ.get(k) for k in keys}}
"""


def test_handler_reads_its_own_logs_without_configuration(server, lam, logs):
    name = py_fn(lam, SELF_READER, Timeout=30)
    invoke_ok(lam, name, {"mark": "first"})
    _, out = invoke_ok(lam, name, {})
    assert out["marks"] == ["MARK first\n"]
    assert out["fn"] == name
    env = out["env"]
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
              "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_LAMBDA"):
        assert env[k] == server.url, k
    assert env["AWS_ACCESS_KEY_ID"] == ACCOUNT and env["AWS_SESSION_TOKEN"]
    assert env["AWS_REGION"] == "us-east-1"


def test_function_account_and_own_endpoint_respected(server):
    lam = server.client(access_key="222233334444", region="eu-central-1")
    code = ("import os\ndef handler(event, context):\n"
            "    return {k: os.environ.get(k) for k in ('AWS_ACCESS_KEY_ID', 'AWS_ENDPOINT_URL', "
            "'AWS_ENDPOINT_URL_S3', 'AWS_REGION')}\n")
    # The role is the account's own (cross-account pass role is refused).
    name = py_fn(lam, code, Environment={"Variables": {"AWS_ENDPOINT_URL": "http://elsewhere:1"}},
                 Role="arn:aws:iam::222233334444:role/lambda-role")
    _, out = invoke_ok(lam, name)
    assert out == {"AWS_ACCESS_KEY_ID": "222233334444", "AWS_ENDPOINT_URL": "http://elsewhere:1",
                   "AWS_ENDPOINT_URL_S3": None, "AWS_REGION": "eu-central-1"}
    # Its logs live in that account and region.
    lg = server.client(service="logs", access_key="222233334444", region="eu-central-1")
    assert lg.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
    other = server.client(service="logs")
    assert not other.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]


# ------------------------------------------------------------ persistence

def test_restart_and_crash_restore(lambdad_factory):
    srv = lambdad_factory()
    lam, logs = srv.client(), srv.client(service="logs")
    name = py_fn(lam, PRINTER)
    rid, _ = invoke_ok(lam, name, {"n": 7})
    g = "/t/" + unique_name("persist")
    logs.create_log_group(logGroupName=g, tags={"k": "v"})
    logs.put_retention_policy(logGroupName=g, retentionInDays=7)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    t = now_ms()
    logs.put_log_events(logGroupName=g, logStreamName="s",
                        logEvents=[{"timestamp": t + i, "message": f"e{i}"} for i in range(99)] +
                        [{"timestamp": t + 99, "message": "e99 with \u0000 inside"}])
    group = f"/aws/lambda/{name}"
    stream = only_stream(logs, group)["logStreamName"]
    before = messages(logs, group, stream, 6)
    srv.restart()
    logs = srv.client(service="logs")
    assert messages(logs, group, stream, 6) == before
    assert f"START RequestId: {rid} Version: $LATEST\n" in before
    grp = logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]
    assert grp["retentionInDays"] == 7
    assert logs.list_tags_log_group(logGroupName=g)["tags"] == {"k": "v"}
    assert [e["message"] for e in logs.get_log_events(logGroupName=g, logStreamName="s",
                                                      startFromHead=True)["events"]] == \
        [f"e{i}" for i in range(99)] + ["e99 with \u0000 inside"]
    # PutLogEvents is on disk when it answers: a kill -9 right after keeps it.
    logs.put_log_events(logGroupName=g, logStreamName="s",
                        logEvents=[{"timestamp": t + 500, "message": "after"}])
    logs.delete_log_stream(logGroupName=g, logStreamName="s")
    logs.create_log_stream(logGroupName=g, logStreamName="s2")
    logs.put_log_events(logGroupName=g, logStreamName="s2",
                        logEvents=[{"timestamp": t, "message": "survivor"}])
    srv.kill9()
    srv.start()
    logs = srv.client(service="logs")
    assert [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=g)["logStreams"]] == ["s2"]
    assert [e["message"] for e in logs.get_log_events(logGroupName=g, logStreamName="s2")["events"]] == \
        ["survivor"]
    # A torn tail (a crash in the middle of a write) is cut off at start-up.
    files = []
    for root, _, names in os.walk(os.path.join(srv.data_dir, "logs")):
        files += [os.path.join(root, n) for n in names if n.endswith(".log")]
    assert files
    for p in files:
        with open(p, "ab") as fh:
            fh.write(b"LGDL\x00\x00\x01\x00garbage")
    srv.restart()
    logs = srv.client(service="logs")
    assert [e["message"] for e in logs.get_log_events(logGroupName=g, logStreamName="s2")["events"]] == \
        ["survivor"]
    logs.delete_log_group(logGroupName=g)
    srv.restart()
    logs = srv.client(service="logs")
    assert not logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"]


def test_size_cap_drops_oldest(lambdad_factory):
    srv = lambdad_factory(args=("--logs-max-bytes", "100000"))
    logs = srv.client(service="logs")
    g = "/t/cap"
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    t = now_ms() - 100000
    for b in range(10):
        logs.put_log_events(logGroupName=g, logStreamName="s",
                            logEvents=[{"timestamp": t + b * 100 + i, "message": f"{b:02d}{i:02d}" + "x" * 996}
                                       for i in range(20)])
    ev = all_events(logs, g, "s")
    total = sum(len(e["message"]) for e in ev)
    assert total <= 100000
    assert ev[-1]["message"].startswith("0919")  # the newest survive
    assert ev[0]["message"] > "0000"  # the oldest went first
    assert logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]["storedBytes"] == total


def test_size_cap_drops_oldest_across_interleaved_streams(lambdad_factory):
    """Events of three streams interleaved in time (like the streams of
    concurrent environments): the cap drops the oldest events of the whole
    store, whichever stream holds them, so every survivor is newer than
    every dropped event."""
    srv = lambdad_factory(args=("--logs-max-bytes", "100000"))
    logs = srv.client(service="logs")
    g = "/t/cap-interleaved"
    logs.create_log_group(logGroupName=g)
    streams = ["a", "b", "c"]
    for st in streams:
        logs.create_log_stream(logGroupName=g, logStreamName=st)
    t = now_ms() - 100000
    sent = {}  # message -> timestamp
    for b in range(8):
        for k, st in enumerate(streams):
            batch = []
            for i in range(10):
                ts = t + b * 1000 + i * 10 + k  # a0 b0 c0 a1 b1 c1 ... in time
                msg = f"{st}{b:02d}{i:02d}" + "y" * 995
                batch.append({"timestamp": ts, "message": msg})
                sent[msg] = ts
            logs.put_log_events(logGroupName=g, logStreamName=st, logEvents=batch)
    kept = {st: all_events(logs, g, st) for st in streams}
    survivors = [e for ev in kept.values() for e in ev]
    total = sum(len(e["message"]) for e in survivors)
    assert 0 < total <= 100000
    assert len(survivors) < len(sent)  # the cap dropped something
    kept_msgs = {e["message"] for e in survivors}
    dropped = [ts for m, ts in sent.items() if m not in kept_msgs]
    assert max(dropped) < min(e["timestamp"] for e in survivors), "a newer event went before an older one"
    for st in streams:  # every stream keeps its newest events, in order
        assert kept[st] and kept[st][-1]["message"].startswith(f"{st}0709")
        assert [e["timestamp"] for e in kept[st]] == sorted(e["timestamp"] for e in kept[st])
    stored = logs.describe_log_groups(logGroupNamePrefix=g)["logGroups"][0]["storedBytes"]
    assert stored == total


def test_ephemeral_writes_nothing(lambdad_factory):
    srv = lambdad_factory(ephemeral=True)
    logs = srv.client(service="logs")
    logs.create_log_group(logGroupName="/t/eph")
    logs.create_log_stream(logGroupName="/t/eph", logStreamName="s")
    logs.put_log_events(logGroupName="/t/eph", logStreamName="s",
                        logEvents=[{"timestamp": now_ms(), "message": "m"}])
    assert logs.get_log_events(logGroupName="/t/eph", logStreamName="s")["events"][0]["message"] == "m"
    srv.restart()
    logs = srv.client(service="logs")
    assert not logs.describe_log_groups(logGroupNamePrefix="/t/eph")["logGroups"]


# ------------------------------------------------------------ AWS CLI v2

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def aws_cli_v2():
    """The AWS CLI v2 (`aws logs tail` is a v2 command; PyPI's awscli is v1):
    $LAMBDAD_AWS_CLI_V2, .venv/awscli-v2/aws (tools/setup.sh), or a v2 `aws`
    on PATH."""
    import shutil
    import subprocess
    cands = [os.environ.get("LAMBDAD_AWS_CLI_V2"), os.path.join(REPO, ".venv", "awscli-v2", "aws"),
             shutil.which("aws")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            out = subprocess.run([c, "--version"], capture_output=True, text=True, timeout=60)
            if out.stdout.startswith("aws-cli/2."):
                return c
    pytest.skip("no AWS CLI v2 (tools/setup.sh installs it into .venv/awscli-v2)")


def cli_env(server):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=server.url, AWS_PAGER="",
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_MAX_ATTEMPTS="1")
    env.pop("AWS_PROFILE", None)
    return env


MARKER = "def handler(event, context):\n    print('MARKER', event['m'])\n    return 1\n"

TAIL_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00) (\S+) (.*)$")


def test_aws_logs_tail(server, lam):
    import subprocess
    aws = aws_cli_v2()
    name = py_fn(lam, MARKER)
    rid, _ = invoke_ok(lam, name, {"m": "one"})
    out = subprocess.run([aws, "logs", "tail", f"/aws/lambda/{name}", "--since", "10m"],
                         capture_output=True, text=True, timeout=120, env=cli_env(server))
    assert out.returncode == 0, out.stderr
    lines = [TAIL_LINE.match(x) for x in out.stdout.splitlines() if x.strip()]
    assert all(lines), out.stdout
    assert {m.group(2) for m in lines} == {only_stream(server.client(service="logs"),
                                                      f"/aws/lambda/{name}")["logStreamName"]}
    texts = [m.group(3) for m in lines]
    assert f"START RequestId: {rid} Version: $LATEST" in texts
    assert "MARKER one" in texts
    assert f"END RequestId: {rid}" in texts
    # --filter-pattern goes to FilterLogEvents.
    out = subprocess.run([aws, "logs", "tail", f"/aws/lambda/{name}", "--since", "10m",
                          "--filter-pattern", "MARKER", "--format", "short"],
                         capture_output=True, text=True, timeout=120, env=cli_env(server))
    assert out.returncode == 0, out.stderr
    assert [x.split(" ", 1)[1] for x in out.stdout.splitlines() if x.strip()] == ["MARKER one"]
    # A missing group is the CLI's ResourceNotFoundException.
    out = subprocess.run([aws, "logs", "tail", "/aws/lambda/nope-" + name], capture_output=True,
                         text=True, timeout=120, env=cli_env(server))
    assert out.returncode != 0 and "ResourceNotFoundException" in out.stderr


def test_aws_logs_tail_follow(server, lam):
    """`aws logs tail --follow` (which polls FilterLogEvents every 5 s with
    the newest timestamp it saw and drops events it already printed by
    eventId) prints new invocations' lines as they come, each once."""
    import subprocess
    import threading
    aws = aws_cli_v2()
    name = py_fn(lam, MARKER)
    invoke_ok(lam, name, {"m": "before"})
    proc = subprocess.Popen([aws, "logs", "tail", f"/aws/lambda/{name}", "--follow", "--since", "5m",
                             "--format", "short"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env(server))
    got = []
    reader = threading.Thread(target=lambda: got.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("MARKER before" in x for x in got), 60, interval=0.1,
                 what="the first lines from aws logs tail --follow")
        rids = [invoke_ok(lam, name, {"m": f"after{i}"})[0] for i in range(3)]
        try:
            wait_for(lambda: any(f"REPORT RequestId: {rids[-1]}" in x for x in got), 60, interval=0.1,
                     what="lines of invocations made while following")
        except AssertionError:
            # Say why: the CLI may have exited (its error is on stderr).
            status = proc.poll()
            err = proc.stderr.read() if status is not None else "(still running)"
            raise AssertionError(f"no REPORT of {rids[-1]}; aws exit status {status}, stderr: {err}; "
                                 f"lines so far: {got}")
        time.sleep(6)  # one more poll: nothing may come twice
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    texts = [x.rstrip("\n").split(" ", 1)[1] for x in got if x.strip()]
    assert [t for t in texts if t.startswith("MARKER")] == ["MARKER before", "MARKER after0",
                                                          "MARKER after1", "MARKER after2"]
    starts = [t for t in texts if t.startswith("START RequestId")]
    assert len(starts) == len(set(starts)) == 4


S3_WRITER = """\
import boto3
def handler(event, context):
    s3 = boto3.client('s3')
    s3.create_bucket(Bucket=event['bucket'])
    s3.put_object(Bucket=event['bucket'], Key='from-lambda.txt', Body=b'written by ' + context.aws_request_id.encode())
    print('wrote', event['bucket'])
    body = s3.get_object(Bucket=event['bucket'], Key='from-lambda.txt')['Body'].read().decode()
    return {'body': body}
"""


def test_handler_writes_to_s3_without_configuration(server, lam, logs):
    """boto3.client('s3') in a handler, with no endpoint or credentials set,
    talks to lambdad's S3 in the function's account and region; its print
    reaches the function's log group."""
    name = py_fn(lam, S3_WRITER, Timeout=30)
    bucket = unique_name("bkt").lower()
    rid, out = invoke_ok(lam, name, {"bucket": bucket})
    assert out == {"body": f"written by {rid}"}
    s3 = server.client(service="s3")
    assert s3.get_object(Bucket=bucket, Key="from-lambda.txt")["Body"].read() == f"written by {rid}".encode()
    st = only_stream(logs, f"/aws/lambda/{name}")
    assert f"wrote {bucket}\n" in messages(logs, f"/aws/lambda/{name}", st["logStreamName"], 4)


def test_logs_max_bytes_flag_checked():
    import subprocess
    from conftest import LAMBDAD_BIN
    for bad in ("abc", "-5", "12x", ""):
        r = subprocess.run([LAMBDAD_BIN, "--ephemeral", "--logs-max-bytes", bad], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 2, (bad, r.stderr)
        assert "logs-max-bytes" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([LAMBDAD_BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert "--logs-max-bytes" in r.stdout and "LAMBDAD_LOGS_MAX_BYTES" in r.stdout


# ------------------------------------------------------------- live tail

def live_client(server):
    """StartLiveTail's model puts a "streaming-" host prefix before the
    endpoint; against lambdad the prefix is turned off."""
    from botocore.config import Config
    import boto3
    return boto3.client("logs", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(inject_host_prefix=False, read_timeout=30,
                                      retries={"max_attempts": 0}))


def test_start_live_tail(lambdad_factory):
    import threading
    srv = lambdad_factory()
    lam, logs = srv.client(), srv.client(service="logs")
    name = py_fn(lam, MARKER)
    invoke_ok(lam, name, {"m": "before"})  # creates the group
    group = f"/aws/lambda/{name}"
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{group}"
    live = live_client(srv)
    resp = live.start_live_tail(logGroupIdentifiers=[arn], logEventFilterPattern="MARKER")
    stream = resp["responseStream"]
    events = iter(stream)
    first = next(events)
    assert first["sessionStart"]["logGroupIdentifiers"] == [arn]
    assert first["sessionStart"]["logEventFilterPattern"] == "MARKER"
    threading.Thread(target=lambda: (time.sleep(1.2), invoke_ok(lam, name, {"m": "live"})),
                     daemon=True).start()
    got = []
    deadline = time.monotonic() + 30
    for ev in events:
        upd = ev["sessionUpdate"]
        assert upd["sessionMetadata"] == {"sampled": False}
        got += upd["sessionResults"]
        if got or time.monotonic() > deadline:
            break
    stream.close()
    assert [r["message"] for r in got] == ["MARKER live\n"]  # only new events, filtered
    assert got[0]["logGroupIdentifier"] == arn and STREAM_RE.match(got[0]["logStreamName"])
    # Errors are plain JSON errors before the stream starts.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        live.start_live_tail(logGroupIdentifiers=[arn + "-missing"])
    assert _code(e) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        live.start_live_tail(logGroupIdentifiers=[arn], logStreamNames=["a"], logStreamNamePrefixes=["b"])
    assert _code(e) == "InvalidParameterException"
    # A session still open when lambdad stops ends with the graceful shutdown.
    resp = live.start_live_tail(logGroupIdentifiers=[arn], logStreamNamePrefixes=["20"])
    assert "sessionStart" in next(iter(resp["responseStream"]))
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 10


def test_aws_logs_start_live_tail_cli(server, logs):
    """`aws logs start-live-tail` (CLI v2) with host-prefix injection off
    prints events put while it runs."""
    import subprocess
    import threading
    aws = aws_cli_v2()
    g = "/t/" + unique_name("clilive")
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="s")
    env = dict(cli_env(server), AWS_DISABLE_HOST_PREFIX_INJECTION="true")
    proc = subprocess.Popen([aws, "logs", "start-live-tail", "--log-group-identifiers",
                             f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{g}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    got = []
    threading.Thread(target=lambda: got.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        def put_and_check():
            logs.put_log_events(logGroupName=g, logStreamName="s",
                                logEvents=[{"timestamp": now_ms(), "message": "hello-from-cli-test"}])
            time.sleep(1.5)
            return any("hello-from-cli-test" in x for x in got)
        wait_for(put_and_check, 60, interval=0.1, what="aws logs start-live-tail output")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_output_flood_stays_bounded(lambdad_factory):
    """A function printing far faster than the store takes lines in (500 MB
    in a few seconds) does not grow lambdad: queued output is capped at
    32 MB (the rest dropped with a warning in lambdad's log) and the store
    at --logs-max-bytes. Without the queue cap the server's RSS followed
    the output (295 MB for 400 MB printed)."""
    import threading
    srv = lambdad_factory(args=("--logs-max-bytes", "20000000"))
    lam = srv.client()
    name = py_fn(lam, "import sys\ndef handler(event, context):\n    line = 'x' * 999999 + '\\n'\n"
                      "    for i in range(500):\n        sys.stdout.write(line)\n"
                      "    sys.stdout.flush()\n    return 1\n", Timeout=120)
    peak, done = [0], [False]

    def watch():
        while not done[0]:
            with open(f"/proc/{srv.proc.pid}/status") as fh:
                rss = int(fh.read().split("VmRSS:")[1].split()[0])
            peak[0] = max(peak[0], rss)
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        invoke_ok(lam, name)
        time.sleep(1)
    finally:
        done[0] = True
        t.join()
    logs = srv.client(service="logs")
    stored = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"][0]["storedBytes"]
    assert stored <= 20000000
    # Sanitizer allocators keep freed memory in quarantine (ASan: 256 MB by
    # default), so RSS says nothing about lambdad's own bound there.
    from conftest import LAMBDAD_BIN
    with open(LAMBDAD_BIN, "rb") as fh:
        binary = fh.read()
    if b"__asan_init" not in binary and b"__tsan_init" not in binary:
        assert peak[0] < 200 * 1024, f"peak RSS {peak[0] // 1024} MB"
