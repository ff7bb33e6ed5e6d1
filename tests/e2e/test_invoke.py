"""Invoke end to end: boto3 against the real lambdad binary running real
Python, Node and provided.* handler processes.

What is checked is AWS's behaviour as written down in
shared/docs/lambda-reference.md: §2 (Invoke request/response, function
errors, timeouts, size limits, Event and DryRun, InvokeAsync), §4 (the
Runtime API a custom runtime talks to) and §5 (environment variables,
context object, START/END/REPORT lines, environment lifecycle). Warm
environments are observed through lambdad's admin API
(GET/DELETE /_lambdad/environments).

Every wait is bounded: helpers.wait_for polls with a deadline, handlers
sleep at most a few hundred milliseconds unless a timeout is under test.
"""
import base64
import datetime
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import new_server, stop_and_check
from helpers import ACCOUNT, REGION, UUID_RE, create_function, function_arn, make_zip, \
    unique_name, wait_for

RETRY_DELAYS_MS = (200, 400)
ASYNC_LIMIT = 300000
SYNC_LIMIT = 6291456

NODE_RUNTIME = "nodejs20.x"


# --------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """One server for the module, with short Event retry delays and a
    non-default async payload limit (so the flag itself is exercised)."""
    s = new_server(str(tmp_path_factory.mktemp("invoke")),
                   args=["--event-retry-delays", ",".join(map(str, RETRY_DELAYS_MS)),
                         "--async-payload-limit", str(ASYNC_LIMIT)])
    s.start()
    yield s
    stop_and_check(s)


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


def invoke(client, name, payload=None, **kwargs):
    """Invoke; returns (response dict, payload bytes)."""
    params = dict(FunctionName=name, **kwargs)
    if payload is not None:
        params["Payload"] = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    resp = client.invoke(**params)
    return resp, resp["Payload"].read()


def invoke_ok(client, name, payload=None, **kwargs):
    """Invoke that must succeed; returns the decoded JSON result."""
    resp, body = invoke(client, name, payload, **kwargs)
    assert resp["StatusCode"] == 200, resp
    assert "FunctionError" not in resp, body
    return json.loads(body)


def invoke_error(client, name, payload=None, **kwargs):
    """Invoke that must end in a function error; returns (resp, error JSON)."""
    resp, body = invoke(client, name, payload, **kwargs)
    assert resp["StatusCode"] == 200, resp
    assert resp.get("FunctionError") == "Unhandled", (resp, body)
    return resp, json.loads(body)


def request_id(resp):
    return resp["ResponseMetadata"]["RequestId"]


def error_of(excinfo):
    """(HTTP status, error code, message) of a ClientError."""
    r = excinfo.value.response
    return (r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"],
            r["Error"].get("Message", ""))


def py_fn(client, source, name=None, files=None, **kwargs):
    """Creates a python3.12 function whose lambda_function.py is source;
    returns its name."""
    name = name or unique_name("inv")
    code = {"lambda_function.py": source}
    code.update(files or {})
    create_function(client, name, make_zip(code), **kwargs)
    return name


def node_fn(client, files, handler="index.handler", runtime=NODE_RUNTIME, **kwargs):
    name = unique_name("node")
    create_function(client, name, make_zip(files), Runtime=runtime, Handler=handler, **kwargs)
    return name


def provided_fn(client, files, runtime="provided.al2023", **kwargs):
    name = unique_name("prov")
    create_function(client, name, make_zip(files), Runtime=runtime, Handler="not.used", **kwargs)
    return name


def admin(server, method, path):
    req = urllib.request.Request(server.url + path, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
        return r.status, (json.loads(body) if body else None)


def envs(server, name=None):
    """Warm environments (all, or only those of function name)."""
    _, data = admin(server, "GET", "/_lambdad/environments")
    assert isinstance(data, list), data
    return [e for e in data if name is None or e["function"] == name]


def healthy(server):
    status, data = admin(server, "GET", "/_lambdad/health")
    return status == 200 and data.get("status") == "ok"


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def assert_platform_error(err, rid, error_type, text):
    """A platform-generated error body: {"errorType", "errorMessage":
    "RequestId: <id> Error: <text...>"}."""
    assert err["errorType"] == error_type, err
    assert err["errorMessage"].startswith(f"RequestId: {rid} Error: "), err
    assert text in err["errorMessage"], err


PID_HANDLER = """\
import os, time
def handler(event, context):
    time.sleep(event.get('sleep', 0) if isinstance(event, dict) else 0)
    return {'pid': os.getpid(), 'event': event}
"""

# Writes event['value'] (and the request id) to event['path'], then fails
# when event['fail'] is set. Appends, so retries are countable.
SIDE_EFFECT_HANDLER = """\
import json, os, time
def handler(event, context):
    with open(event['path'], 'a') as f:
        f.write(json.dumps({'value': event.get('value'), 'rid': context.aws_request_id,
                            't': time.time()}) + '\\n')
    if event.get('fail'):
        raise RuntimeError('failing on purpose')
    return {'written': event['path']}
"""


def read_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------
# results


@pytest.mark.smoke
def test_python_returns_value(lam):
    name = py_fn(lam, "def handler(event, context):\n    return {'got': event, 'n': 42}\n")
    resp, body = invoke(lam, name, {"a": [1, 2, "three"]})
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in resp
    assert "LogResult" not in resp
    assert json.loads(body) == {"got": {"a": [1, 2, "three"]}, "n": 42}
    assert UUID_RE.match(request_id(resp))


@pytest.mark.parametrize("runtime", ["python3.9", "python3.14"])
def test_python_runtime_range(lam, runtime):
    name = py_fn(lam, "import os\ndef handler(event, context):\n"
                      "    return os.environ['AWS_EXECUTION_ENV']\n", Runtime=runtime)
    assert invoke_ok(lam, name, {}) == f"AWS_Lambda_{runtime}"


def test_python_returns_none(lam):
    name = py_fn(lam, "def handler(event, context):\n    return None\n")
    resp, body = invoke(lam, name, {})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert body == b"null"


def test_node_async_handler(lam):
    name = node_fn(lam, {"index.js": (
        "exports.handler = async (event, context) => {\n"
        "  await new Promise(r => setTimeout(r, 5));\n"
        "  return {kind: 'async', event, rid: context.awsRequestId, fn: context.functionName};\n"
        "};\n")})
    resp, body = invoke(lam, name, {"x": 1})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body
    assert resp["ExecutedVersion"] == "$LATEST"
    assert json.loads(body) == {"kind": "async", "event": {"x": 1}, "rid": request_id(resp),
                                "fn": name}


def test_node_callback_handler(lam):
    name = node_fn(lam, {"index.js": (
        "exports.handler = (event, context, callback) => {\n"
        "  setTimeout(() => callback(null, {kind: 'callback', x: event.x * 2}), 5);\n"
        "};\n")})
    assert invoke_ok(lam, name, {"x": 21}) == {"kind": "callback", "x": 42}


def test_node_esm_handler(lam):
    name = node_fn(lam, {"app.mjs": (
        "import { basename } from 'node:path';\n"
        "export const handler = async (event) => ({kind: 'esm', base: basename('/a/b.txt'), "
        "event});\n")}, handler="app.handler")
    assert invoke_ok(lam, name, [1, "two"]) == {"kind": "esm", "base": "b.txt",
                                                "event": [1, "two"]}


# --------------------------------------------------------------------------
# function errors


@pytest.mark.smoke
def test_python_exception(lam):
    name = py_fn(lam, "def handler(event, context):\n"
                      "    raise ValueError('boom ' + str(event['n']))\n")
    resp, err = invoke_error(lam, name, {"n": 7})
    assert list(err) == ["errorMessage", "errorType", "requestId", "stackTrace"], err
    assert err["errorMessage"] == "boom 7"
    assert err["errorType"] == "ValueError"
    assert err["requestId"] == request_id(resp)
    assert isinstance(err["stackTrace"], list) and err["stackTrace"]
    assert "lambda_function.py" in err["stackTrace"][-1]
    assert "raise ValueError" in err["stackTrace"][-1]
    # The environment survives the exception: the next invoke works, and its
    # log shows the runtime's report of the error (awslambdaric's format).
    resp, err = invoke_error(lam, name, {"n": 8}, LogType="Tail")
    assert err["errorMessage"] == "boom 8"
    log = base64.b64decode(resp["LogResult"]).decode()
    assert "[ERROR] ValueError: boom 8" in log, log
    assert "Traceback (most recent call last):" in log, log


def test_node_throw(lam):
    name = node_fn(lam, {"index.js": (
        "exports.handler = async (event) => { throw new TypeError('nope ' + event.n); };\n")})
    resp, err = invoke_error(lam, name, {"n": 3})
    assert err["errorType"] == "TypeError"
    assert err["errorMessage"] == "nope 3"
    assert isinstance(err["trace"], list) and err["trace"][0] == "TypeError: nope 3"
    assert "stackTrace" not in err and "requestId" not in err


GOOD_CODE = "MARK = 'fixed'\ndef handler(event, context):\n    return MARK\n"

INIT_ERROR_CASES = {
    "missing_module": dict(
        handler="nomod.handler",
        files={"lambda_function.py": GOOD_CODE},
        fixed={"nomod.py": GOOD_CODE},
        error_type="Runtime.ImportModuleError",
        message="Unable to import module 'nomod': No module named 'nomod'"),
    "missing_function": dict(
        handler="lambda_function.nothere",
        files={"lambda_function.py": GOOD_CODE},
        fixed={"lambda_function.py": GOOD_CODE + "nothere = handler\n"},
        error_type="Runtime.HandlerNotFound",
        message="Handler 'nothere' missing on module 'lambda_function'"),
    "syntax_error": dict(
        handler="lambda_function.handler",
        files={"lambda_function.py": "def handler(event, context:\n    return 1\n"},
        fixed={"lambda_function.py": GOOD_CODE},
        error_type="Runtime.UserCodeSyntaxError",
        message="Syntax error in module 'lambda_function'"),
}


@pytest.mark.parametrize("case", sorted(INIT_ERROR_CASES))
def test_init_error_then_fix(lam, srv, case):
    c = INIT_ERROR_CASES[case]
    name = unique_name("init")
    create_function(lam, name, make_zip(c["files"]), Handler=c["handler"])
    # Every invoke re-runs init and fails the same way (no environment stays).
    for _ in range(2):
        resp, err = invoke_error(lam, name, {})
        assert err["errorType"] == c["error_type"], err
        assert err["errorMessage"].startswith(c["message"]), err
        assert err["requestId"] == "", err
        assert isinstance(err["stackTrace"], list)
    wait_for(lambda: not [e for e in envs(srv, name) if not e["draining"]], 5,
             what="failed environment to go away")
    lam.update_function_code(FunctionName=name, ZipFile=make_zip(c["fixed"]))
    assert invoke_ok(lam, name, {}) == "fixed"


# --------------------------------------------------------------------------
# warm environments and concurrency


@pytest.mark.smoke
def test_warm_reuse(lam, srv):
    name = py_fn(lam, "import os\ncount = 0\ndef handler(event, context):\n"
                      "    global count\n    count += 1\n"
                      "    return {'count': count, 'pid': os.getpid()}\n")
    results = [invoke_ok(lam, name, {}) for _ in range(3)]
    assert [r["count"] for r in results] == [1, 2, 3]
    pids = {r["pid"] for r in results}
    assert len(pids) == 1
    live = envs(srv, name)
    assert len(live) == 1, live
    e = live[0]
    assert e["pid"] == pids.pop()
    assert e["invocations"] == 3
    assert e["state"] == "idle" and e["draining"] is False
    assert e["function_key"] == f"{REGION}/{ACCOUNT}/{name}"
    assert e["executor"] == "subprocess"
    assert e["init_ms"] > 0


def burst(server, name, n, sleep_s):
    """n concurrent invokes (one thread and one client each) while another
    thread polls /_lambdad/environments; returns (results, max env count)."""
    results = [None] * n
    errors = []
    done = threading.Event()
    seen = [0]
    clients = [server.client() for _ in range(n)]
    barrier = threading.Barrier(n)

    def worker(i):
        try:
            barrier.wait(10)
            resp, body = invoke(clients[i], name, {"sleep": sleep_s, "i": i})
            results[i] = (resp["StatusCode"], resp.get("FunctionError"), json.loads(body))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    def poller():
        while not done.is_set():
            seen[0] = max(seen[0], len(envs(server)))
            time.sleep(0.01)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    p = threading.Thread(target=poller)
    p.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    p.join(10)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads), "invokes still running after 60 s"
    return results, seen[0]


def test_concurrency_capped(lambdad_factory):
    server = lambdad_factory(ephemeral=True, args=["--lambda-max-containers", "5"])
    client = server.client()
    name = py_fn(client, PID_HANDLER)
    t0 = time.monotonic()
    results, max_envs = burst(server, name, 20, 0.3)
    elapsed = time.monotonic() - t0
    for i, (status, ferr, body) in enumerate(results):
        assert status == 200 and ferr is None, (i, status, ferr, body)
        assert body["event"]["i"] == i
    pids = {body["pid"] for _, _, body in results}
    assert 1 <= len(pids) <= 5, pids
    assert 1 <= max_envs <= 5, max_envs
    # 20 invokes of 0.3 s on at most 5 environments take at least 4 rounds.
    assert elapsed >= 4 * 0.3 - 0.05, elapsed
    assert len(envs(server)) <= 5


def test_concurrency_scales_out(srv):
    client = srv.client()
    name = py_fn(client, PID_HANDLER)
    results, _ = burst(srv, name, 20, 0.3)
    assert all(status == 200 and ferr is None for status, ferr, _ in results), results
    pids = {body["pid"] for _, _, body in results}
    assert len(pids) > 1, pids
    live = envs(srv, name)
    # Every environment that served stays warm. More may be live: one is
    # started per waiting invocation, and under load a fast one can finish
    # its first invocation and take a queued one before a slow one is ready.
    assert len(live) > 1 and pids <= {e["pid"] for e in live}


# --------------------------------------------------------------------------
# updates


def test_update_code_switches_immediately(lam, srv):
    src = "import os\nMARK = {m}\ndef handler(event, context):\n" \
          "    return {{'mark': MARK, 'pid': os.getpid()}}\n"
    name = py_fn(lam, src.format(m=0))
    first = invoke_ok(lam, name, {})
    assert first["mark"] == 0
    pids = [first["pid"]]
    for i in range(1, 6):
        lam.update_function_code(FunctionName=name,
                                 ZipFile=make_zip({"lambda_function.py": src.format(m=i)}))
        got = invoke_ok(lam, name, {})
        assert got["mark"] == i, (i, got)
        pids.append(got["pid"])
    assert len(set(pids)) == 6, pids  # new code never runs in an old process
    wait_for(lambda: [e["pid"] for e in envs(srv, name)] == [pids[-1]], 5,
             what="old environments to drain away")
    for p in pids[:-1]:
        wait_for(lambda: not pid_alive(p), 5, what=f"old runtime pid {p} to exit")


def test_update_configuration_visible_next_invoke(lam, srv):
    name = py_fn(lam, "import os\ndef handler(event, context):\n"
                      "    return {'mark': os.environ.get('MARK'), 'pid': os.getpid(),\n"
                      "            'mem': context.memory_limit_in_mb}\n",
                 Environment={"Variables": {"MARK": "v0"}})
    got = invoke_ok(lam, name, {})
    assert got["mark"] == "v0"
    pids = [got["pid"]]
    for i in range(1, 4):
        lam.update_function_configuration(FunctionName=name,
                                          Environment={"Variables": {"MARK": f"v{i}"}})
        got = invoke_ok(lam, name, {})
        assert got["mark"] == f"v{i}", (i, got)
        pids.append(got["pid"])
    lam.update_function_configuration(FunctionName=name, MemorySize=256)
    got = invoke_ok(lam, name, {})
    assert got["mem"] == "256" and got["mark"] == "v3"
    pids.append(got["pid"])
    assert len(set(pids)) == len(pids), pids
    wait_for(lambda: [e["pid"] for e in envs(srv, name)] == [pids[-1]], 5,
             what="old environments to drain away")


# --------------------------------------------------------------------------
# timeouts and crashes


def test_timeout(lam, srv):
    name = py_fn(lam, PID_HANDLER, Timeout=1)
    warm = invoke_ok(lam, name, {})
    t0 = time.monotonic()
    resp, err = invoke_error(lam, name, {"sleep": 5})
    elapsed = time.monotonic() - t0
    assert elapsed < 3, elapsed
    assert elapsed >= 0.9, elapsed
    assert err["errorType"] == "Sandbox.Timedout", err
    assert err["errorMessage"] == \
        f"RequestId: {request_id(resp)} Error: Task timed out after 1.00 seconds", err
    wait_for(lambda: not pid_alive(warm["pid"]), 5, what="timed-out runtime to be killed")
    again = invoke_ok(lam, name, {})
    assert again["pid"] != warm["pid"]
    assert healthy(srv)


def test_timeout_log_tail(lam):
    name = py_fn(lam, PID_HANDLER, Timeout=1)
    resp, err = invoke_error(lam, name, {"sleep": 5}, LogType="Tail")
    rid = request_id(resp)
    log = base64.b64decode(resp["LogResult"]).decode()
    assert f"{rid} Task timed out after 1.00 seconds" in log, log
    assert re.search(rf"^REPORT RequestId: {rid}\t.*Status: timeout", log, re.M), log


def test_slow_init_not_counted_in_timeout(lam):
    """On-demand init has its own 10 s budget (§4.4): a 2 s import does not
    time out a Timeout=1 function, and the handler then gets its full
    second."""
    name = py_fn(lam, "import time\ntime.sleep(2)\n"
                      "def handler(event, context):\n"
                      "    return context.get_remaining_time_in_millis()\n", Timeout=1)
    resp, body = invoke(lam, name, {}, LogType="Tail")
    assert "FunctionError" not in resp, body
    assert 500 < json.loads(body) <= 1000
    log = base64.b64decode(resp["LogResult"]).decode()
    init = float(re.search(r"\tInit Duration: ([\d.]+) ms", log).group(1))
    assert init >= 2000, log


def test_node_timeout(lam):
    name = node_fn(lam, {"index.js": "exports.handler = async () => "
                                     "new Promise(r => setTimeout(r, 5000));\n"}, Timeout=1)
    t0 = time.monotonic()
    resp, err = invoke_error(lam, name, {})
    assert time.monotonic() - t0 < 3
    assert err == {"errorType": "Sandbox.Timedout",
                   "errorMessage": f"RequestId: {request_id(resp)} Error: "
                                   "Task timed out after 1.00 seconds"}


def test_crash_exit_status(lam, srv):
    name = py_fn(lam, "import os\ndef handler(event, context):\n"
                      "    if event.get('die'):\n        os._exit(1)\n"
                      "    return os.getpid()\n")
    pid = invoke_ok(lam, name, {})
    resp, err = invoke_error(lam, name, {"die": True})
    assert_platform_error(err, request_id(resp), "Runtime.ExitError",
                          "Runtime exited with error: exit status 1")
    assert not pid_alive(pid)
    assert invoke_ok(lam, name, {}) != pid
    assert healthy(srv)


def test_crash_segfault(lam, srv):
    name = py_fn(lam, "import ctypes, os\ndef handler(event, context):\n"
                      "    if event.get('die'):\n        ctypes.string_at(0)\n"
                      "    return os.getpid()\n")
    pid = invoke_ok(lam, name, {})
    resp, err = invoke_error(lam, name, {"die": True})
    assert_platform_error(err, request_id(resp), "Runtime.ExitError",
                          "Runtime exited with error: signal")
    # AWS's platform (Go) spells signals in lower case: "signal: killed",
    # "signal: segmentation fault".
    assert err["errorMessage"].endswith("Error: Runtime exited with error: "
                                        "signal: segmentation fault"), err
    assert invoke_ok(lam, name, {}) != pid
    assert healthy(srv)


# --------------------------------------------------------------------------
# custom runtimes


SH_BOOTSTRAP = r"""#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
HDRS="$(mktemp)"
while true; do
  BODY="$(curl -sS -D "$HDRS" "$API/next")"
  ID="$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$HDRS" | tr -d '\r' | awk '{print $2}')"
  ARN="$(grep -i '^Lambda-Runtime-Invoked-Function-Arn:' "$HDRS" | tr -d '\r' | awk '{print $2}')"
  curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' "$API/$ID/response" \
    --data-binary "{\"echo\":$BODY,\"id\":\"$ID\",\"arn\":\"$ARN\",\"handler\":\"${_HANDLER}\",\"exec_env\":\"${AWS_EXECUTION_ENV:-unset}\",\"pwd\":\"$(pwd)\"}"
done
"""


@pytest.mark.parametrize("runtime", ["provided.al2023", "provided.al2"])
def test_provided_shell_bootstrap(lam, srv, runtime):
    name = provided_fn(lam, {"bootstrap": (SH_BOOTSTRAP, 0o755)}, runtime=runtime)
    for i in range(2):
        resp, body = invoke(lam, name, {"hello": "world", "i": i})
        assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body
        got = json.loads(body)
        assert got["echo"] == {"hello": "world", "i": i}
        assert got["id"] == request_id(resp)
        assert got["arn"] == function_arn(name)
        assert got["handler"] == "not.used"
        assert got["exec_env"] == "unset"  # not defined for provided.* (§5.1)
        assert os.path.isfile(os.path.join(got["pwd"], "bootstrap"))
    assert len(envs(srv, name)) == 1


def test_provided_without_bootstrap(lam, srv):
    name = provided_fn(lam, {"main.sh": ("#!/bin/sh\nexit 0\n", 0o755)})
    resp, err = invoke_error(lam, name, {})
    assert err["errorType"] == "Runtime.InvalidEntrypoint", err
    assert healthy(srv)


# --------------------------------------------------------------------------
# environment and context


ENV_HANDLER = """\
import json, os, urllib.request
def handler(event, context):
    with urllib.request.urlopen(os.environ['AWS_ENDPOINT_URL'].rstrip('/') + '/_lambdad/health',
                                timeout=5) as r:
        health = json.loads(r.read())
    root = os.environ.get('LAMBDA_TASK_ROOT', '')
    return {'env': dict(os.environ), 'cwd': os.getcwd(), 'health': health,
            'root_files': sorted(os.listdir(root)) if root else None}
"""


def test_environment_variables(lam, srv):
    name = unique_name("env")
    create_function(lam, name, make_zip({"lambda_function.py": ENV_HANDLER,
                                         "data/extra.txt": "x"}),
                    MemorySize=256, Timeout=9,
                    Environment={"Variables": {"MY_VAR": "hello world", "EQ": "a=b=c",
                                               "EMPTYISH": " "}})
    got = invoke_ok(lam, name, {})
    env = got["env"]
    assert env["_HANDLER"] == "lambda_function.handler"
    assert env["LAMBDA_TASK_ROOT"] == got["cwd"]
    assert os.path.isabs(env["LAMBDA_TASK_ROOT"])
    assert got["root_files"] == ["data", "lambda_function.py"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    m = re.fullmatch(r"(\d{4}/\d\d/\d\d)/\[\$LATEST\][0-9a-f]{32}",
                     env["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert m, env["AWS_LAMBDA_LOG_STREAM_NAME"]
    now = datetime.datetime.now(datetime.timezone.utc)
    days = {(now - datetime.timedelta(days=d)).strftime("%Y/%m/%d") for d in (0, 1)}
    assert m.group(1) in days
    assert env["AWS_REGION"] == REGION
    assert env["AWS_DEFAULT_REGION"] == REGION
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert re.fullmatch(r"(127\.0\.0\.1|localhost|\[::1\]):\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["AWS_LAMBDA_RUNTIME_API"] != f"127.0.0.1:{srv.port}"  # its own listener
    assert env["TZ"] == ":UTC"
    assert env.get("AWS_ACCESS_KEY_ID")
    assert env.get("AWS_SECRET_ACCESS_KEY")
    assert env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "on-demand"
    assert got["health"]["status"] == "ok"
    assert env["MY_VAR"] == "hello world"
    assert env["EQ"] == "a=b=c"
    assert env["EMPTYISH"] == " "
    for forbidden in ("AWS_LAMBDA_MAX_CONCURRENCY", "_LAMBDA_TELEMETRY_LOG_FD",
                      "_X_AMZN_TRACE_ID_AT_START"):
        assert forbidden not in env


def test_handler_calls_lambdad_with_boto3(lam):
    """AWS_ENDPOINT_URL makes an unconfigured boto3 client in the handler
    talk to lambdad (as a handler calling Lambda in AWS would)."""
    name = py_fn(lam, "import boto3, os\ndef handler(event, context):\n"
                      "    c = boto3.client('lambda')\n"
                      "    cfg = c.get_function_configuration(FunctionName=context.function_name)\n"
                      "    return {'name': cfg['FunctionName'], 'timeout': cfg['Timeout']}\n",
                 Timeout=20)
    assert invoke_ok(lam, name, {}) == {"name": name, "timeout": 20}


CONTEXT_HANDLER = """\
import os
def handler(event, context):
    cc = context.client_context
    ident = context.identity
    return {
        'function_name': context.function_name,
        'function_version': context.function_version,
        'invoked_function_arn': context.invoked_function_arn,
        'memory_limit_in_mb': context.memory_limit_in_mb,
        'aws_request_id': context.aws_request_id,
        'log_group_name': context.log_group_name,
        'log_stream_name': context.log_stream_name,
        'env_stream': os.environ['AWS_LAMBDA_LOG_STREAM_NAME'],
        'remaining': context.get_remaining_time_in_millis(),
        'client_context': None if cc is None else {
            'custom': cc.custom, 'env': cc.env,
            'installation_id': cc.client.installation_id if cc.client else None,
            'app_title': cc.client.app_title if cc.client else None},
        'identity': None if ident is None else {
            'id': ident.cognito_identity_id, 'pool': ident.cognito_identity_pool_id},
    }
"""


def test_context_attributes(lam):
    name = py_fn(lam, CONTEXT_HANDLER, MemorySize=192, Timeout=7)
    resp, body = invoke(lam, name, {})
    assert "FunctionError" not in resp, body
    ctx = json.loads(body)
    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == function_arn(name)
    assert ctx["memory_limit_in_mb"] == "192"
    assert ctx["aws_request_id"] == request_id(resp)
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", ctx["log_stream_name"])
    assert ctx["log_stream_name"] == ctx["env_stream"]
    assert 0 < ctx["remaining"] <= 7000
    assert ctx["remaining"] > 7000 - 2000  # the deadline starts when the invoke starts
    assert ctx["client_context"] is None
    assert ctx["identity"] == {"id": None, "pool": None}


@pytest.mark.parametrize("how", ["name_qualified", "qualifier_param", "full_arn",
                                 "full_arn_qualified", "partial_arn"])
def test_context_invoked_arn(lam, how):
    name = py_fn(lam, CONTEXT_HANDLER)
    arn = function_arn(name)
    kwargs, want = {
        "name_qualified": (dict(FunctionName=f"{name}:$LATEST"), arn + ":$LATEST"),
        "qualifier_param": (dict(FunctionName=name, Qualifier="$LATEST"), arn + ":$LATEST"),
        "full_arn": (dict(FunctionName=arn), arn),
        "full_arn_qualified": (dict(FunctionName=arn + ":$LATEST"), arn + ":$LATEST"),
        "partial_arn": (dict(FunctionName=f"{ACCOUNT}:function:{name}"), arn),
    }[how]
    resp = lam.invoke(Payload=b"{}", **kwargs)
    body = resp["Payload"].read()
    assert "FunctionError" not in resp, body
    assert resp["ExecutedVersion"] == "$LATEST"
    ctx = json.loads(body)
    assert ctx["invoked_function_arn"] == want
    assert ctx["function_name"] == name


def test_context_client_context(lam):
    name = py_fn(lam, CONTEXT_HANDLER)
    cc = {"custom": {"k": "v", "n": 1}, "env": {"platform": "test"},
          "client": {"installation_id": "inst-1", "app_title": "App",
                     "app_version_name": "1", "app_version_code": "2",
                     "app_package_name": "pkg"}}
    ctx = invoke_ok(lam, name, {},
                    ClientContext=base64.b64encode(json.dumps(cc).encode()).decode())
    assert ctx["client_context"] == {"custom": {"k": "v", "n": 1}, "env": {"platform": "test"},
                                     "installation_id": "inst-1", "app_title": "App"}


def test_context_client_context_not_base64_json(lam):
    name = py_fn(lam, CONTEXT_HANDLER)
    with pytest.raises(ClientError) as ei:
        lam.invoke(FunctionName=name, Payload=b"{}",
                   ClientContext=base64.b64encode(b"not json").decode())
    status, code, _ = error_of(ei)
    assert (status, code) == (400, "InvalidRequestContentException")


# --------------------------------------------------------------------------
# logs


REPORT_RE = (r"REPORT RequestId: {rid}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
             r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t")


@pytest.mark.smoke
def test_log_tail(lam):
    name = py_fn(lam, "def handler(event, context):\n"
                      "    print('hello from', event['who'])\n    return 1\n")
    cold, body = invoke(lam, name, {"who": "cold"}, LogType="Tail")
    assert body == b"1"
    warm, _ = invoke(lam, name, {"who": "warm"}, LogType="Tail")
    for resp, who, is_cold in ((cold, "cold", True), (warm, "warm", False)):
        rid = request_id(resp)
        log = base64.b64decode(resp["LogResult"], validate=True).decode()
        lines = log.rstrip("\n").split("\n")
        assert lines[0] == f"START RequestId: {rid} Version: $LATEST", log
        assert f"hello from {who}" in lines[1:-2], log
        assert lines[-2] == f"END RequestId: {rid}", log
        assert re.match(REPORT_RE.format(rid=rid), lines[-1]), lines[-1]
        assert ("\tInit Duration: " in lines[-1]) == is_cold, lines[-1]
        if is_cold:
            assert re.search(r"\tInit Duration: \d+\.\d\d ms\t", lines[-1])
        billed = int(re.search(r"Billed Duration: (\d+) ms", lines[-1]).group(1))
        duration = float(re.search(r"\tDuration: ([\d.]+) ms", lines[-1]).group(1))
        assert billed >= duration and billed - duration <= 1.0 + 1e-9
    # Without LogType=Tail there is no LogResult.
    resp, _ = invoke(lam, name, {"who": "x"})
    assert "LogResult" not in resp


def test_log_tail_truncated(lam):
    name = py_fn(lam, "def handler(event, context):\n"
                      "    for i in range(100):\n        print(str(i).zfill(4) + 'y' * 96)\n"
                      "    return 'done'\n")
    resp, body = invoke(lam, name, {}, LogType="Tail")
    assert body == b'"done"'
    raw = base64.b64decode(resp["LogResult"], validate=True)
    assert 4000 <= len(raw) <= 4096, len(raw)
    log = raw.decode("utf-8", "replace")
    last = log.rstrip("\n").split("\n")[-1]
    assert re.match(REPORT_RE.format(rid=request_id(resp)), last), last
    assert "0099" + "y" * 96 in log  # the tail, not the head
    assert "START RequestId" not in log


# --------------------------------------------------------------------------
# Event, InvokeAsync, DryRun


def test_event_invoke(lam, tmp_path):
    name = py_fn(lam, SIDE_EFFECT_HANDLER)
    path = str(tmp_path / "event.out")
    t0 = time.monotonic()
    resp, body = invoke(lam, name, {"path": path, "value": "evt-1"}, InvocationType="Event")
    assert time.monotonic() - t0 < 1.0  # answered before the (cold) run ends
    assert resp["StatusCode"] == 202
    assert body == b""
    assert "FunctionError" not in resp and "ExecutedVersion" not in resp
    lines = wait_for(lambda: read_lines(path), 5, what="Event side effect")
    assert [(x["value"], x["rid"]) for x in lines] == [("evt-1", request_id(resp))]


def test_event_retries(lam, tmp_path):
    name = py_fn(lam, SIDE_EFFECT_HANDLER)
    path = str(tmp_path / "retries.out")
    resp, body = invoke(lam, name, {"path": path, "value": "r", "fail": True},
                        InvocationType="Event")
    assert resp["StatusCode"] == 202 and body == b""
    lines = wait_for(lambda: len(read_lines(path)) >= 3 and read_lines(path), 10,
                     what="3 Event attempts")
    time.sleep(sum(RETRY_DELAYS_MS) / 1000.0 + 0.3)  # a 4th attempt would show by now
    lines = read_lines(path)
    assert len(lines) == 3, lines
    assert {x["rid"] for x in lines} == {request_id(resp)}
    gaps = [lines[i + 1]["t"] - lines[i]["t"] for i in range(2)]
    for gap, delay_ms in zip(gaps, RETRY_DELAYS_MS):
        assert gap >= delay_ms / 1000.0 * 0.9, gaps


def test_event_payload_limit(lam, tmp_path):
    name = py_fn(lam, "def handler(event, context):\n    return len(event)\n")
    at_limit = '"' + "a" * (ASYNC_LIMIT - 2) + '"'
    resp, _ = invoke(lam, name, at_limit, InvocationType="Event")
    assert resp["StatusCode"] == 202
    with pytest.raises(ClientError) as ei:
        invoke(lam, name, at_limit + " ", InvocationType="Event")
    status, code, msg = error_of(ei)
    assert (status, code) == (413, "RequestEntityTooLargeException")
    assert f"{ASYNC_LIMIT + 1} byte payload is too large for the Event invocation type" in msg
    # Over the Event limit is still fine for a synchronous invoke.
    assert invoke_ok(lam, name, at_limit + " ") == ASYNC_LIMIT - 2


def test_invoke_async_legacy(lam, tmp_path):
    name = py_fn(lam, SIDE_EFFECT_HANDLER)
    path = str(tmp_path / "legacy.out")
    resp = lam.invoke_async(FunctionName=name,
                            InvokeArgs=json.dumps({"path": path, "value": "legacy"}))
    assert resp["Status"] == 202
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    lines = wait_for(lambda: read_lines(path), 5, what="InvokeAsync side effect")
    assert [x["value"] for x in lines] == ["legacy"]


def test_dry_run(lam, srv, tmp_path):
    name = py_fn(lam, SIDE_EFFECT_HANDLER)
    path = str(tmp_path / "dry.out")
    resp, body = invoke(lam, name, {"path": path, "value": "dry"}, InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    assert body == b""
    assert envs(srv, name) == []
    time.sleep(0.3)
    assert not os.path.exists(path)
    with pytest.raises(ClientError) as ei:
        lam.invoke(FunctionName=unique_name("absent"), InvocationType="DryRun")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")


# --------------------------------------------------------------------------
# request validation and limits


def test_empty_payload_is_empty_object(lam):
    name = py_fn(lam, "def handler(event, context):\n    return {'event': event}\n")
    assert invoke_ok(lam, name) == {"event": {}}
    assert invoke_ok(lam, name, b"") == {"event": {}}
    node = node_fn(lam, {"index.js": "exports.handler = async (e) => ({event: e});\n"})
    assert invoke_ok(lam, node) == {"event": {}}


@pytest.mark.parametrize("payload", ["[1,2]", '"just a string"', "42", "null", "true",
                                     ' {"spaced": true} '])
def test_any_json_value_accepted(lam, payload):
    name = py_fn(lam, "def handler(event, context):\n    return {'event': event}\n")
    assert invoke_ok(lam, name, payload) == {"event": json.loads(payload)}


@pytest.mark.parametrize("payload", [b"value", b"{'single': 1}", b'{"a": 1', b"{} {}",
                                     b"[1,]", b"\xff\xfe"])
def test_non_json_payload(lam, payload):
    name = py_fn(lam, PID_HANDLER)
    with pytest.raises(ClientError) as ei:
        lam.invoke(FunctionName=name, Payload=payload)
    status, code, msg = error_of(ei)
    assert (status, code) == (400, "InvalidRequestContentException"), msg
    assert msg.startswith("Could not parse request body into json"), msg


def test_sync_payload_limit(lam):
    name = py_fn(lam, "def handler(event, context):\n    return len(event)\n")
    at_limit = '"' + "b" * (SYNC_LIMIT - 2) + '"'
    assert invoke_ok(lam, name, at_limit) == SYNC_LIMIT - 2
    with pytest.raises(ClientError) as ei:
        lam.invoke(FunctionName=name, Payload=at_limit + " ")
    status, code, msg = error_of(ei)
    assert (status, code) == (413, "RequestEntityTooLargeException")
    assert msg == "Request must be smaller than 6291456 bytes for the InvokeFunction operation"


def test_unknown_function(lam):
    name = unique_name("absent")
    with pytest.raises(ClientError) as ei:
        lam.invoke(FunctionName=name, Payload=b"{}")
    status, code, msg = error_of(ei)
    assert (status, code) == (404, "ResourceNotFoundException")
    assert msg == f"Function not found: {function_arn(name)}"
    assert isinstance(ei.value, lam.exceptions.ResourceNotFoundException)


def test_unknown_qualifier(lam):
    name = py_fn(lam, PID_HANDLER)
    with pytest.raises(ClientError) as ei:
        lam.invoke(FunctionName=name, Qualifier="7", Payload=b"{}")
    status, code, msg = error_of(ei)
    assert (status, code) == (404, "ResourceNotFoundException")
    assert msg == f"Function not found: {function_arn(name)}:7"


def raw_invoke(server, name, body=b"{}", headers=None):
    """A plain HTTP invoke (no boto3); returns (status, headers, body)."""
    req = urllib.request.Request(
        f"{server.url}/2015-03-31/functions/{name}/invocations", data=body, method="POST",
        headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.mark.parametrize("value", ["Bogus", "event", "requestresponse"])
def test_bad_invocation_type_header(srv, lam, value):
    name = py_fn(lam, PID_HANDLER)
    status, headers, body = raw_invoke(srv, name, headers={"X-Amz-Invocation-Type": value})
    assert status == 400, body
    assert headers.get("x-amzn-ErrorType", "").split(":")[0] == "ValidationException"
    assert json.loads(body).get("message")


def test_bad_log_type_header(srv, lam):
    name = py_fn(lam, PID_HANDLER)
    status, headers, body = raw_invoke(srv, name, headers={"X-Amz-Log-Type": "Everything"})
    assert status == 400, body
    assert headers.get("x-amzn-ErrorType", "").split(":")[0] == "ValidationException"


def test_response_too_large(lam, srv):
    name = py_fn(lam, "import os\ndef handler(event, context):\n"
                      "    if event.get('n'):\n        return 'x' * event['n']\n"
                      "    return os.getpid()\n")
    resp, err = invoke_error(lam, name, {"n": 7_000_000})
    assert err == {"errorMessage": "Response payload size exceeded maximum allowed payload "
                                   "size (6291556 bytes).",
                   "errorType": "Function.ResponseSizeTooLarge"}, str(err)[:300]
    assert healthy(srv)
    pid = invoke_ok(lam, name, {})
    assert isinstance(pid, int)
    # Just under the limit is returned in full.
    resp, body = invoke(lam, name, {"n": 6_000_000})
    assert "FunctionError" not in resp and len(body) == 6_000_002


def test_reserved_concurrency_zero(lam):
    name = py_fn(lam, PID_HANDLER)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as ei:
        lam.invoke(FunctionName=name, Payload=b"{}")
    status, code, _ = error_of(ei)
    assert (status, code) == (429, "TooManyRequestsException")
    assert ei.value.response.get("Reason") == \
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.delete_function_concurrency(FunctionName=name)
    assert invoke_ok(lam, name, {})["pid"] > 0


def test_reserved_concurrency_one_serialises(srv):
    """Reserved concurrency 1 caps the function at one environment; extra
    concurrent invokes either wait (lambdad's queue) or get 429 (AWS)."""
    client = srv.client()
    name = py_fn(client, PID_HANDLER)
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    results, _ = burst(srv, name, 4, 0.2)
    assert all(status in (200, 429) for status, _, _ in results)
    ok = [body for status, ferr, body in results if status == 200 and ferr is None]
    assert ok, results
    assert len({b["pid"] for b in ok}) == 1
    assert len(envs(srv, name)) == 1


# --------------------------------------------------------------------------
# eviction and TTL


def test_evict_environments(lam, srv):
    name = py_fn(lam, PID_HANDLER)
    pid = invoke_ok(lam, name, {})["pid"]
    assert [e["pid"] for e in envs(srv, name)] == [pid]
    status, _ = admin(srv, "DELETE", f"/_lambdad/environments/{name}")
    assert status in (200, 202, 204)
    wait_for(lambda: envs(srv, name) == [], 5, what="evicted environment to disappear")
    wait_for(lambda: not pid_alive(pid), 5, what="evicted runtime to exit")
    again = invoke_ok(lam, name, {})["pid"]
    assert again != pid


def test_delete_function_stops_environments(lam, srv):
    name = py_fn(lam, PID_HANDLER)
    pid = invoke_ok(lam, name, {})["pid"]
    lam.delete_function(FunctionName=name)
    wait_for(lambda: envs(srv, name) == [], 5, what="environment of deleted function to go")
    wait_for(lambda: not pid_alive(pid), 5, what="runtime of deleted function to exit")
    with pytest.raises(ClientError) as ei:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")


def test_container_ttl_counts_from_the_last_invoke(lambdad_factory):
    """The idle TTL restarts with every invocation: an environment used
    again before its TTL ran out lives a full TTL after that use."""
    server = lambdad_factory(ephemeral=True, args=["--lambda-container-ttl", "3"])
    client = server.client()
    name = py_fn(client, PID_HANDLER)
    pid = invoke_ok(client, name, {})["pid"]
    t0 = time.monotonic()
    time.sleep(2.0)
    assert invoke_ok(client, name, {})["pid"] == pid
    t1 = time.monotonic()
    # past the first invocation's TTL (t0 + 3), well inside the second's
    time.sleep(max(0.0, t0 + 3.5 - time.monotonic()))
    assert [e["pid"] for e in envs(server, name)] == [pid], "reaped at the first invocation's TTL"
    wait_for(lambda: envs(server, name) == [], 6, what="idle environment to be reaped")
    assert time.monotonic() - t1 >= 2.9
    wait_for(lambda: not pid_alive(pid), 3, what="reaped runtime to exit")


def test_container_ttl(lambdad_factory):
    server = lambdad_factory(ephemeral=True, args=["--lambda-container-ttl", "1"])
    client = server.client()
    name = py_fn(client, PID_HANDLER)
    pid = invoke_ok(client, name, {})["pid"]
    t0 = time.monotonic()
    assert [e["pid"] for e in envs(server, name)] == [pid]
    time.sleep(0.5)
    assert [e["pid"] for e in envs(server, name)] == [pid], "reaped before its TTL"
    wait_for(lambda: envs(server, name) == [], 4, what="idle environment to be reaped")
    assert time.monotonic() - t0 >= 0.9
    wait_for(lambda: not pid_alive(pid), 3, what="reaped runtime to exit")
    assert invoke_ok(client, name, {})["pid"] != pid


# ----------------------------------------------- --invoke-spin-us (issue 12)

SPIN_ECHO = """
import time
def handler(event, context):
    time.sleep(event["sleep_ms"] / 1000.0)
    return {"i": event["i"], "rid": context.aws_request_id}
"""


@pytest.mark.parametrize("spin_us", ["0", "10000"])
def test_invoke_spin_flag_every_caller_gets_its_own_result(lambdad_factory, spin_us):
    """A lone waiter polls for its result for up to --invoke-spin-us before it
    sleeps; more waiters sleep at once. With no polling (0) and with a 10 ms
    poll (handlers both shorter and longer than it; alone and 12 at a time)
    every caller gets its own invocation's answer."""
    server = lambdad_factory(ephemeral=True, args=["--invoke-spin-us", spin_us])
    lam = server.client()
    name = unique_name("spin")
    create_function(lam, name, make_zip({"lambda_function.py": SPIN_ECHO}))

    def call(i, sleep_ms, out):
        r = lam.invoke(FunctionName=name, Payload=json.dumps({"i": i, "sleep_ms": sleep_ms}))
        body = json.loads(r["Payload"].read())
        out[i] = (body, r["ResponseMetadata"]["RequestId"], r.get("FunctionError"))

    seq = {}
    for i, ms in enumerate([0, 0, 25, 0, 40, 1, 0]):  # alone: polled for, or slept on
        call(i, ms, seq)
    results = {}
    threads = [threading.Thread(target=call, args=(100 + i, (i * 7) % 30, results)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    results.update(seq)
    assert sorted(results) == list(range(7)) + list(range(100, 112))
    for i, (body, rid, err) in results.items():
        assert err is None, body
        assert body["i"] == i and body["rid"] == rid, (i, body, rid)


def test_invoke_spin_flag_checked(lambdad_factory):
    import subprocess
    for bad in ("x", "-1", "10001", ""):
        srv = lambdad_factory(ephemeral=True, start=False, args=["--invoke-spin-us", bad])
        p = subprocess.run(srv.command(), capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (bad, p.stderr)
        assert "--invoke-spin-us" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    srv = lambdad_factory(ephemeral=True, env={"LAMBDAD_INVOKE_SPIN_US": "0"})
    lam = srv.client()
    name = unique_name("spin")
    create_function(lam, name)
    assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200


def _executor_cpu_ns(pid):
    """CPU time (ns, /proc schedstat) of lambdad's executor threads."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().startswith("executor-"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError):
            pass  # a thread that ended meanwhile
    return total


@pytest.mark.parametrize("spin_us", ["0", "10000"])
def test_executor_polls_after_a_lone_invocation(lambdad_factory, spin_us):
    """After the only running invocation finished, its executor polls for the
    next one for --invoke-spin-us (yielding the CPU) before it sleeps, as
    long as the last invocation after a lone one came within the poll.
    Invokes 40 ms apart (a caller now and then): no polls after the first
    miss. Pairs 2 ms apart, 40 ms between pairs: a 10 ms poll after each
    pair's second invoke, ~80 ms of the executors' CPU for 8 pairs (a
    quarter of it asserted: the machine may be busy); with 0, none. Every
    caller gets its own answer, also when it lands during a poll."""
    server = lambdad_factory(ephemeral=True, args=["--invoke-spin-us", spin_us])
    lam = server.client()
    name = unique_name("spinex")
    create_function(lam, name, make_zip({"lambda_function.py": SPIN_ECHO}))
    pid = server.proc.pid

    def call(i):
        r = lam.invoke(FunctionName=name, Payload=json.dumps({"i": i, "sleep_ms": 0}))
        body = json.loads(r["Payload"].read())
        assert r.get("FunctionError") is None and body["i"] == i, body

    call(-1)  # cold start
    time.sleep(0.1)
    before = _executor_cpu_ns(pid)
    for i in range(8):
        call(i)
        time.sleep(0.04)
    sparse_ms = (_executor_cpu_ns(pid) - before) / 1e6
    before = _executor_cpu_ns(pid)
    for i in range(8):
        call(100 + i)
        time.sleep(0.002)
        call(200 + i)
        time.sleep(0.04)
    pairs_ms = (_executor_cpu_ns(pid) - before) / 1e6
    assert sparse_ms < 20, (sparse_ms, pairs_ms)
    if spin_us == "0":
        assert pairs_ms < 20, (sparse_ms, pairs_ms)
    else:
        assert pairs_ms >= 20, (sparse_ms, pairs_ms)


def _kernel_has_futex_hash():
    """Whether this kernel has PR_FUTEX_HASH (Linux 6.16+): GET_SLOTS on
    ourselves answers >= 0 there and -1 (EINVAL) before."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(78, 2, 0, 0, 0) >= 0


@pytest.mark.parametrize("threads,slots", [(None, 16384), (100, 1024), (500, 4096)])
def test_futex_hash_sized_to_the_http_threads(lambdad_factory, threads, slots):
    # lambdad sizes its private futex hash to its threads (4 slots per
    # thread, a power of two, 1,024-65,536) before any starts, and logs what
    # the kernel then reports; a kernel without the option keeps its own.
    args = [] if threads is None else ["--http-threads", str(threads)]
    srv = lambdad_factory(ephemeral=True, args=args)
    lines = [l for l in srv.log.splitlines() if "futex hash:" in l]
    assert len(lines) == 1, srv.log_tail()
    if _kernel_has_futex_hash():
        assert lines[0].endswith(f"futex hash: {slots} slots"), lines
    else:
        assert "futex hash: the kernel's (PR_FUTEX_HASH: " in lines[0], lines
    lam = srv.client()
    name = unique_name("fh")
    create_function(lam, name)
    out = lam.invoke(FunctionName=name, Payload=b'{"n": 1}')
    assert out["StatusCode"] == 200 and "FunctionError" not in out, out
