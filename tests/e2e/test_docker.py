"""The docker executor end to end: boto3 against the real lambdad binary
running handlers in Docker containers through the Docker Engine API.

No registry is reachable where these tests run, so the runtimes are mapped
onto the local plain image tools/build-test-image.sh builds
(lambdad-test/base:bookworm: Debian with python3 and node, no AWS runtime
client); lambdad mounts its bundled bootstraps at /var/lambdad-runtime and
runs them. The whole module is skipped when the engine is unreachable or the
image cannot be built.

What the containers look like from the inside is checked from handlers
(memory limit, /tmp size, read-only code, AWS_ENDPOINT_URL, the container id
in /proc/self/mountinfo); what they look like from the outside through the
Engine API (labels, existence, counts) and lambdad's admin API
(GET /_lambdad/environments: "executor" and "container").

Note: every lambdad start with a docker-capable executor removes all
containers labelled lambdad=1 (leftovers of earlier runs), so starting a
second server removes the idle containers of the module's server too. Tests
here never rely on a container surviving another server's start.

Cold and warm invoke latencies are printed (run with -s to see them), not
asserted.
"""
import base64
import http.client
import io
import json
import os
import re
import socket
import statistics
import subprocess
import tarfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

import enginelock
from conftest import LAMBDAD_BIN, REPO, free_port, new_server, server_env, stop_and_check
from helpers import ROLE, create_function, make_zip, unique_name, wait_for

IMAGE = "lambdad-test/base:bookworm"
MISSING_IMAGE = "lambdad-test/nope:1"
API = "/v1.41"
BUILD_SCRIPT = os.path.join(REPO, "tools", "build-test-image.sh")
NODE_RUNTIME = "nodejs20.x"

# The runtime map every docker server here uses (python3.11 deliberately
# points at an image that does not exist).
IMAGE_ARGS = ["--lambda-image", f"python3.12={IMAGE}",
              "--lambda-image", f"{NODE_RUNTIME}={IMAGE}",
              "--lambda-image", f"python3.11={MISSING_IMAGE}"]
DOCKER_ARGS = ["--lambda-executor", "docker"] + IMAGE_ARGS


# --------------------------------------------------------------------------
# Docker Engine API over the unix socket (http.client, no docker CLI)


def _socket_path():
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def engine(method, path, body=None, headers=None, timeout=30):
    """One Engine API request; returns (status, decoded JSON or raw bytes)."""
    conn = _UnixConnection(_socket_path(), timeout)
    try:
        conn.request(method, API + path if path != "/_ping" else path, body=body,
                     headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    ctype = resp.getheader("Content-Type", "")
    if data and "json" in ctype:
        try:
            return resp.status, json.loads(data)
        except ValueError:
            pass
    return resp.status, data


def engine_reachable():
    try:
        status, body = engine("GET", "/_ping", timeout=5)
        return status == 200, f"GET /_ping answered {status} {body!r}"
    except OSError as e:
        return False, f"{_socket_path()}: {e}"


def containers(label):
    """All containers (any state) carrying label ("k=v")."""
    filters = urllib.parse.quote(json.dumps({"label": [label]}))
    status, data = engine("GET", f"/containers/json?all=1&filters={filters}")
    assert status == 200, (status, data)
    return data


def fn_containers(name):
    return containers(f"lambdad.function={name}")


def container_exists(cid):
    status, _ = engine("GET", f"/containers/{cid}/json")
    assert status in (200, 404), status
    return status == 200


def inspect(cid):
    status, data = engine("GET", f"/containers/{cid}/json")
    assert status == 200, (status, data)
    return data


def image_exists(ref):
    status, _ = engine("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json")
    return status == 200


def build_image(tag, files):
    """docker build through POST /build with an in-memory tar context."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    q = urllib.parse.urlencode({"t": tag, "rm": "1", "forcerm": "1"})
    status, out = engine("POST", f"/build?{q}", body=buf.getvalue(),
                         headers={"Content-Type": "application/x-tar"}, timeout=300)
    text = out.decode("utf-8", "replace") if isinstance(out, bytes) else json.dumps(out)
    assert status == 200, (status, text)
    assert '"error"' not in text, text
    assert image_exists(tag), text


# --------------------------------------------------------------------------
# module set-up


LOCK_PATH = os.environ.get("LAMBDAD_E2E_DOCKER_LOCK", "/tmp/lambdad-e2e-docker.lock")
LOCK_WAIT = 600


@pytest.fixture(scope="module")
def engine_ok():
    """Skips the module without an engine, before anything else (the lock
    included) is touched."""
    ok, why = engine_reachable()
    if not ok:
        pytest.skip(f"Docker engine not reachable ({why})", allow_module_level=True)


@pytest.fixture(scope="module")
def engine_lock(engine_ok):
    """Serialises this module across concurrent pytest runs on one machine:
    every docker-mode lambdad start removes all lambdad=1 containers, so two
    runs at once would kill each other's environments. The lock file is
    shared by every user (see enginelock.py)."""
    fd = enginelock.acquire(LOCK_PATH, LOCK_WAIT)
    if fd is None:
        pytest.fail(f"{LOCK_PATH} held by another test run for over {LOCK_WAIT} s")
    yield
    enginelock.release(fd)


@pytest.fixture(scope="module", autouse=True)
def base_image(engine_lock):
    """Builds the test image (cached), under the lock."""
    if not image_exists(IMAGE):
        try:
            r = subprocess.run([BUILD_SCRIPT, "--quiet"], capture_output=True, text=True,
                               timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"{BUILD_SCRIPT} failed: {e}", allow_module_level=True)
        if r.returncode != 0 or not image_exists(IMAGE):
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"test image {IMAGE} missing and {BUILD_SCRIPT} failed: {last}",
                        allow_module_level=True)
    assert not image_exists(MISSING_IMAGE), f"{MISSING_IMAGE} must not exist for these tests"
    return IMAGE


APP_PY = """\
import os
def handler(event, context):
    return {'handler': 'handler', 'cwd': os.getcwd(), 'event': event,
            'files': sorted(os.listdir('/var/task'))}
def other(event, context):
    return {'handler': 'other', 'cwd': os.getcwd(), 'event': event}
"""


@pytest.fixture(scope="module")
def derived_image(base_image):
    """A tiny image FROM the test image with the code baked in at /var/task
    and lambdad's bootstrap as its entry point, for PackageType=Image."""
    tag = f"lambdad-test/e2e-image-{uuid.uuid4().hex[:10]}:1"
    build_image(tag, {
        "Dockerfile": f"FROM {IMAGE}\n"
                      "COPY app.py /var/task/app.py\n"
                      "WORKDIR /var/task\n"
                      'ENTRYPOINT ["python3", "/var/lambdad-runtime/python/bootstrap.py"]\n'
                      'CMD ["app.handler"]\n',
        "app.py": APP_PY,
    })
    yield tag
    engine("DELETE", f"/images/{urllib.parse.quote(tag, safe='')}?force=1", timeout=60)


@pytest.fixture(scope="module")
def dsrv(tmp_path_factory, derived_image):
    """The module's docker-executor server (torn down before the derived
    image is removed)."""
    s = new_server(str(tmp_path_factory.mktemp("docker")), args=DOCKER_ARGS)
    s.start()
    yield s
    stop_and_check(s)


@pytest.fixture(scope="module")
def lam(dsrv):
    return dsrv.client()


@pytest.fixture(scope="module")
def ssrv(tmp_path_factory):
    """A subprocess-executor server, for comparing payloads."""
    s = new_server(str(tmp_path_factory.mktemp("subproc")))
    s.start()
    yield s
    stop_and_check(s)


# --------------------------------------------------------------------------
# helpers


def admin_get(server, path):
    req = urllib.request.Request(server.url + path)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def envs(server, name):
    status, data = admin_get(server, "/_lambdad/environments")
    assert status == 200 and isinstance(data, list), data
    return [e for e in data if e["function"] == name]


def healthy(server):
    status, data = admin_get(server, "/_lambdad/health")
    return status == 200 and data.get("status") == "ok"


def invoke(client, name, payload=None, **kwargs):
    params = dict(FunctionName=name, **kwargs)
    if payload is not None:
        params["Payload"] = json.dumps(payload)
    resp = client.invoke(**params)
    return resp, resp["Payload"].read()


def invoke_ok(client, name, payload=None, **kwargs):
    resp, body = invoke(client, name, payload, **kwargs)
    assert resp["StatusCode"] == 200, resp
    assert "FunctionError" not in resp, body
    return json.loads(body)


def invoke_error(client, name, payload=None, **kwargs):
    resp, body = invoke(client, name, payload, **kwargs)
    assert resp["StatusCode"] == 200, resp
    assert resp.get("FunctionError") == "Unhandled", (resp, body)
    return resp, json.loads(body)


def request_id(resp):
    return resp["ResponseMetadata"]["RequestId"]


def docker_env(server, name, timeout=10):
    """The single docker environment of function name (waits for its
    container id)."""
    def one():
        es = envs(server, name)
        if len(es) == 1 and es[0].get("container"):
            return es[0]
        return None
    e = wait_for(one, timeout, what=f"one docker environment of {name}: {envs(server, name)}")
    assert e["executor"] == "docker", e
    return e


def same_container(a, b):
    """Engine ids may be given in full or abbreviated."""
    return bool(a) and bool(b) and (a.startswith(b) or b.startswith(a))


# Python handler snippet: the id of the container it runs in (docker bind
# mounts /etc/hostname from /var/lib/docker/containers/<id>/, visible in
# mountinfo on cgroup v1 and v2 alike); None outside a container.
PY_CID = """\
import re as _re
def container_id():
    try:
        with open('/proc/self/mountinfo') as f:
            m = _re.search(r'/containers/([0-9a-f]{64})/', f.read())
        return m.group(1) if m else None
    except OSError:
        return None
"""

COUNTER_HANDLER = PY_CID + """\
import os
N = 0
def handler(event, context):
    global N
    N += 1
    return {'n': N, 'pid': os.getpid(), 'cid': container_id(), 'version': VERSION}
VERSION = 'v1'
"""


def py_fn(client, source, name=None, files=None, **kwargs):
    name = name or unique_name("dk")
    code = {"lambda_function.py": source}
    code.update(files or {})
    create_function(client, name, make_zip(code), **kwargs)
    return name


def gone(cid):
    return not container_exists(cid)


# --------------------------------------------------------------------------
# results: python and node, compared with the subprocess executor


PY_SAME = """\
def handler(event, context):
    return {'event': event, 'sum': sum(event.get('nums', [])), 'name': context.function_name,
            'mem': context.memory_limit_in_mb, 'version': context.function_version,
            'text': 'h\\u00e9llo \\u2713', 'float': 0.1 + 0.2, 'none': None, 'big': 2 ** 60}
"""

NODE_SAME = """\
exports.handler = async (event, context) => ({
  event, sum: (event.nums || []).reduce((a, b) => a + b, 0), name: context.functionName,
  mem: context.memoryLimitInMB, version: context.functionVersion,
  text: 'h\\u00e9llo \\u2713', float: 0.1 + 0.2, none: null, arr: [1, 'two', {three: 3}],
});
"""

SAME_EVENT = {"nums": [1, 2, 3.5], "s": "x\u00e9\U0001F600", "nested": {"a": [None, True, False]}}


def test_python_result_matches_subprocess(dsrv, lam, ssrv):
    """Same code, same name, same event: docker and subprocess payloads are
    byte-identical. Cold and warm latency are printed."""
    name = unique_name("same-py")
    slam = ssrv.client()
    for c in (lam, slam):
        create_function(c, name, make_zip({"lambda_function.py": PY_SAME}))
    t0 = time.monotonic()
    dresp, dbody = invoke(lam, name, SAME_EVENT)
    cold = time.monotonic() - t0
    assert dresp["StatusCode"] == 200 and "FunctionError" not in dresp, dbody
    sresp, sbody = invoke(slam, name, SAME_EVENT)
    assert "FunctionError" not in sresp, sbody
    assert dbody == sbody
    assert json.loads(dbody)["sum"] == 6.5
    e = docker_env(dsrv, name)
    warm = []
    for _ in range(10):
        t0 = time.monotonic()
        _, body = invoke(lam, name, SAME_EVENT)
        warm.append(time.monotonic() - t0)
        assert body == sbody
    assert docker_env(dsrv, name)["container"] == e["container"]
    labels = inspect(e["container"])["Config"]["Labels"]
    assert labels.get("lambdad") == "1" and labels.get("lambdad.function") == name, labels
    assert labels.get("lambdad.instance"), labels
    print(f"\n[latency] docker python3.12: cold (first invoke after create) {cold * 1000:.0f} ms,"
          f" warm median {statistics.median(warm) * 1000:.1f} ms"
          f" (min {min(warm) * 1000:.1f}, max {max(warm) * 1000:.1f}, n={len(warm)})")


def test_node_result_matches_subprocess(dsrv, lam, ssrv):
    name = unique_name("same-node")
    slam = ssrv.client()
    for c in (lam, slam):
        create_function(c, name, make_zip({"index.js": NODE_SAME}), Runtime=NODE_RUNTIME,
                        Handler="index.handler")
    t0 = time.monotonic()
    dresp, dbody = invoke(lam, name, SAME_EVENT)
    cold = time.monotonic() - t0
    assert dresp["StatusCode"] == 200 and "FunctionError" not in dresp, dbody
    sresp, sbody = invoke(slam, name, SAME_EVENT)
    assert "FunctionError" not in sresp, sbody
    assert dbody == sbody
    assert json.loads(dbody)["sum"] == 6.5
    e = docker_env(dsrv, name)
    t0 = time.monotonic()
    _, again = invoke(lam, name, SAME_EVENT)
    warm = time.monotonic() - t0
    assert again == sbody
    assert docker_env(dsrv, name)["container"] == e["container"]
    print(f"\n[latency] docker nodejs20.x: cold {cold * 1000:.0f} ms, warm {warm * 1000:.1f} ms")


# --------------------------------------------------------------------------
# warm reuse and redeploys


def test_warm_reuse_same_container(dsrv, lam):
    name = py_fn(lam, COUNTER_HANDLER)
    r1 = invoke_ok(lam, name, {})
    e1 = docker_env(dsrv, name)
    r2 = invoke_ok(lam, name, {})
    r3 = invoke_ok(lam, name, {})
    assert [r1["n"], r2["n"], r3["n"]] == [1, 2, 3]
    assert r1["pid"] == r2["pid"] == r3["pid"]
    e3 = docker_env(dsrv, name)
    assert e3["container"] == e1["container"]
    assert e3["invocations"] == 3, e3
    # The handler really runs inside that container.
    assert r1["cid"] is not None, r1
    assert same_container(r1["cid"], e1["container"]), (r1, e1)
    listed = fn_containers(name)
    assert len(listed) == 1, listed
    assert same_container(listed[0]["Id"], e1["container"])
    assert listed[0]["State"] == "running", listed[0]


def test_update_code_new_container(dsrv, lam):
    name = py_fn(lam, COUNTER_HANDLER)
    assert invoke_ok(lam, name, {})["version"] == "v1"
    old = docker_env(dsrv, name)["container"]
    lam.update_function_code(FunctionName=name, ZipFile=make_zip(
        {"lambda_function.py": COUNTER_HANDLER.replace("'v1'", "'v2'")}))
    r = invoke_ok(lam, name, {})
    assert r["version"] == "v2" and r["n"] == 1, r
    new = wait_for(lambda: [e for e in envs(dsrv, name) if not e["draining"]
                            and e.get("container")], 10, what="the new environment")
    assert len(new) == 1, new
    assert new[0]["container"] != old
    assert same_container(r["cid"], new[0]["container"]), (r, new)
    wait_for(lambda: gone(old), 15, what=f"old container {old[:12]} to be removed")
    ids = [c["Id"] for c in fn_containers(name)]
    assert len(ids) == 1 and same_container(ids[0], new[0]["container"]), ids


LAYER_HANDLER = PY_CID + """\
import mylib
def handler(event, context):
    return {'value': mylib.VALUE, 'file': mylib.__file__, 'cid': container_id()}
"""


def layer_zip(value):
    return make_zip({"python/mylib.py": f"VALUE = {value!r}\n"})


def test_layer_importable_and_update(dsrv, lam):
    lname = unique_name("dklay")
    v1 = lam.publish_layer_version(LayerName=lname, Content={"ZipFile": layer_zip("one")})
    name = py_fn(lam, LAYER_HANDLER, Layers=[v1["LayerVersionArn"]])
    r = invoke_ok(lam, name, {})
    assert r["value"] == "one", r
    assert r["file"] == "/opt/python/mylib.py", r
    old = docker_env(dsrv, name)["container"]
    assert same_container(r["cid"], old)
    v2 = lam.publish_layer_version(LayerName=lname, Content={"ZipFile": layer_zip("two")})
    assert v2["Version"] == 2
    lam.update_function_configuration(FunctionName=name, Layers=[v2["LayerVersionArn"]])
    r2 = invoke_ok(lam, name, {})
    assert r2["value"] == "two", r2
    assert r2["cid"] and not same_container(r2["cid"], old), (r2, old)
    wait_for(lambda: gone(old), 15, what=f"old container {old[:12]} to be removed")
    new = docker_env(dsrv, name)
    assert same_container(r2["cid"], new["container"])


# --------------------------------------------------------------------------
# the sandbox as seen from inside


SANDBOX_HANDLER = """\
import errno, os
def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
def handler(event, context):
    out = {}
    out['mem_v1'] = read('/sys/fs/cgroup/memory/memory.limit_in_bytes')
    out['mem_v2'] = read('/sys/fs/cgroup/memory.max')
    st = os.statvfs('/tmp')
    out['tmp_bytes'] = st.f_blocks * st.f_frsize
    try:
        with open('/var/task/written.txt', 'w') as f:
            f.write('x')
        out['task_write'] = 'ok'
    except OSError as e:
        out['task_write'] = errno.errorcode.get(e.errno, str(e.errno))
    try:
        with open('/var/task/lambda_function.py', 'a') as f:
            f.write('#')
        out['task_append'] = 'ok'
    except OSError as e:
        out['task_append'] = errno.errorcode.get(e.errno, str(e.errno))
    data = os.urandom(1 << 20)
    with open('/tmp/probe.bin', 'wb') as f:
        f.write(data)
    with open('/tmp/probe.bin', 'rb') as f:
        out['tmp_roundtrip'] = f.read() == data
    os.unlink('/tmp/probe.bin')
    mounts = read('/proc/mounts') or ''
    out['tmp_fstype'] = [l.split()[2] for l in mounts.splitlines() if l.split()[1] == '/tmp']
    out['task_opts'] = [l.split()[3] for l in mounts.splitlines() if l.split()[1] == '/var/task']
    out['runtime_dir'] = os.path.isdir('/var/lambdad-runtime/python')
    return out
"""


def test_memory_tmp_and_readonly_code(dsrv, lam):
    name = py_fn(lam, SANDBOX_HANDLER, MemorySize=256, EphemeralStorage={"Size": 1024})
    r = invoke_ok(lam, name, {})
    mem = r["mem_v1"] if r["mem_v1"] is not None else r["mem_v2"]
    assert mem == "268435456", r
    assert abs(r["tmp_bytes"] - 1024 * 1048576) <= 4 * 1048576, r
    assert r["tmp_fstype"] == ["tmpfs"], r
    assert r["tmp_roundtrip"] is True, r
    assert r["task_write"] == "EROFS", r
    assert r["task_append"] == "EROFS", r
    assert r["task_opts"] and r["task_opts"][0].split(",")[0] == "ro", r
    assert r["runtime_dir"] is True, r
    # The same limits from the outside.
    host = inspect(docker_env(dsrv, name)["container"])["HostConfig"]
    assert host["Memory"] == 268435456, host["Memory"]


# --------------------------------------------------------------------------
# timeouts and crashes


SLEEP_HANDLER = PY_CID + """\
import os, time
def handler(event, context):
    if event.get('die'):
        os._exit(event['die'])
    time.sleep(event.get('sleep', 0))
    return {'cid': container_id(), 'pid': os.getpid()}
"""


def test_timeout_kills_container(dsrv, lam):
    name = py_fn(lam, SLEEP_HANDLER, Timeout=2)
    first = invoke_ok(lam, name, {})
    cid = docker_env(dsrv, name)["container"]
    assert same_container(first["cid"], cid)
    t0 = time.monotonic()
    resp, err = invoke_error(lam, name, {"sleep": 10})
    elapsed = time.monotonic() - t0
    assert 1.9 <= elapsed < 6, elapsed
    assert err["errorType"] == "Sandbox.Timedout", err
    assert err["errorMessage"] == \
        f"RequestId: {request_id(resp)} Error: Task timed out after 2.00 seconds", err
    wait_for(lambda: gone(cid), 10, what=f"timed-out container {cid[:12]} to be removed")
    again = invoke_ok(lam, name, {})
    assert again["cid"] and not same_container(again["cid"], cid), (again, cid)
    assert healthy(dsrv)


def test_crash_exit_status_then_recovery(dsrv, lam):
    name = py_fn(lam, SLEEP_HANDLER)
    first = invoke_ok(lam, name, {})
    cid = docker_env(dsrv, name)["container"]
    resp, err = invoke_error(lam, name, {"die": 3})
    assert err["errorType"] == "Runtime.ExitError", err
    assert err["errorMessage"] == (f"RequestId: {request_id(resp)} Error: "
                                   "Runtime exited with error: exit status 3"), err
    wait_for(lambda: gone(cid), 10, what=f"crashed container {cid[:12]} to be removed")
    again = invoke_ok(lam, name, {})
    assert again["cid"] and not same_container(again["cid"], first["cid"]), (again, first)
    assert healthy(dsrv)


# --------------------------------------------------------------------------
# concurrency cap


def test_concurrent_invokes_capped(lambdad_factory):
    srv = lambdad_factory(ephemeral=True, args=DOCKER_ARGS + ["--lambda-max-containers", "3"])
    lam = srv.client()
    name = py_fn(lam, SLEEP_HANDLER)
    results, errors = [], []
    counts = []
    done = threading.Event()

    def poll():
        while not done.is_set():
            try:
                cs = fn_containers(name)
                counts.append((len(cs), len([c for c in cs if c["State"] == "running"])))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"engine poll: {e!r}")
            time.sleep(0.05)

    def worker():
        try:
            c = srv.client()
            results.append(invoke_ok(c, name, {"sleep": 0.5}))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    poller = threading.Thread(target=poll)
    poller.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - t0
    done.set()
    poller.join(10)
    assert not errors, errors
    assert len(results) == 8
    assert all(r["cid"] for r in results), results
    distinct = {r["cid"] for r in results}
    max_all = max(c[0] for c in counts)
    print(f"\n[concurrency] 8 x 0.5 s invokes, cap 3: {elapsed:.2f} s, {len(distinct)} containers "
          f"served, at most {max_all} containers of the function seen at once "
          f"({len(counts)} polls)")
    assert max_all <= 3, counts
    assert len(distinct) <= 3, distinct
    # 8 invocations of 0.5 s on at most 3 environments need 3 rounds.
    assert elapsed >= 1.4, elapsed
    # And the cap is used, not just respected.
    assert len(distinct) >= 2, distinct
    assert len(envs(srv, name)) <= 3


# --------------------------------------------------------------------------
# PackageType=Image


def test_package_type_image(dsrv, lam, derived_image):
    # The image's own ENTRYPOINT/CMD (app.handler).
    plain = unique_name("img")
    lam.create_function(FunctionName=plain, PackageType="Image", Role=ROLE,
                        Code={"ImageUri": derived_image})
    r = invoke_ok(lam, plain, {"k": 1})
    assert r == {"handler": "handler", "cwd": "/var/task", "event": {"k": 1},
                 "files": ["app.py"]}, r
    e = docker_env(dsrv, plain)
    assert inspect(e["container"])["Config"]["Image"] == derived_image
    # ImageConfig overrides entry point, command and working directory.
    cfg = unique_name("imgcfg")
    lam.create_function(FunctionName=cfg, PackageType="Image", Role=ROLE,
                        Code={"ImageUri": derived_image},
                        ImageConfig={"EntryPoint": ["python3",
                                                    "/var/lambdad-runtime/python/bootstrap.py"],
                                     "Command": ["app.other"], "WorkingDirectory": "/tmp"})
    got = lam.get_function_configuration(FunctionName=cfg)
    assert got["PackageType"] == "Image"
    assert got["ImageConfigResponse"]["ImageConfig"]["Command"] == ["app.other"], got
    r = invoke_ok(lam, cfg, {"k": 2})
    assert r == {"handler": "other", "cwd": "/tmp", "event": {"k": 2}}, r
    assert docker_env(dsrv, cfg)["executor"] == "docker"


# --------------------------------------------------------------------------
# auto executor


def test_auto_picks_executor(lambdad_factory):
    srv = lambdad_factory(ephemeral=True, args=["--lambda-executor", "auto"] + IMAGE_ARGS)
    lam = srv.client()
    plain = py_fn(lam, COUNTER_HANDLER)
    tagged = py_fn(lam, COUNTER_HANDLER, Tags={"lambdad:executor": "docker"})
    other_tag = py_fn(lam, COUNTER_HANDLER, Tags={"lambdad:executor": "subprocess"})
    v = lam.publish_layer_version(LayerName=unique_name("autolay"),
                                  Content={"ZipFile": layer_zip("auto")})
    layered = py_fn(lam, LAYER_HANDLER, Layers=[v["LayerVersionArn"]])
    got = {n: invoke_ok(lam, n, {}) for n in (plain, tagged, other_tag, layered)}
    assert got[layered]["value"] == "auto"

    def executor_of(n):
        es = wait_for(lambda: envs(srv, n), 5, what=f"environment of {n}")
        assert len(es) == 1, es
        return es[0]

    assert executor_of(plain)["executor"] == "subprocess"
    assert got[plain]["cid"] is None, got[plain]
    assert executor_of(other_tag)["executor"] == "subprocess"
    assert not fn_containers(plain) and not fn_containers(other_tag)
    for n in (tagged, layered):
        e = docker_env(srv, n)
        assert same_container(got[n]["cid"], e["container"]), (n, got[n], e)
        assert len(fn_containers(n)) == 1


# --------------------------------------------------------------------------
# logs and networking


def test_tail_log_has_print_output(lam):
    marker = f"hello-from-container-{uuid.uuid4().hex}"
    name = py_fn(lam, "def handler(event, context):\n"
                      "    print(event['m'])\n"
                      "    return 'done'\n")
    resp, body = invoke(lam, name, {"m": marker}, LogType="Tail")
    assert "FunctionError" not in resp, body
    log = base64.b64decode(resp["LogResult"]).decode()
    rid = request_id(resp)
    assert marker + "\n" in log, log
    assert f"START RequestId: {rid}" in log, log
    assert re.search(rf"^REPORT RequestId: {rid}\t", log, re.M), log
    assert log.index(f"START RequestId: {rid}") < log.index(marker) < log.index(f"END RequestId: {rid}")
    # Warm: the second invoke's tail has its own output only.
    resp2, _ = invoke(lam, name, {"m": marker + "-2"}, LogType="Tail")
    log2 = base64.b64decode(resp2["LogResult"]).decode()
    assert marker + "-2\n" in log2 and marker + "\n" not in log2, log2


ENDPOINT_HANDLER = """\
import json, os, urllib.request
def handler(event, context):
    url = os.environ['AWS_ENDPOINT_URL']
    with urllib.request.urlopen(url + '/_lambdad/health', timeout=5) as r:
        return {'url': url, 'status': r.status, 'body': json.loads(r.read())}
"""


def test_endpoint_url_reaches_lambdad(dsrv, lam):
    name = py_fn(lam, ENDPOINT_HANDLER)
    r = invoke_ok(lam, name, {})
    assert r["status"] == 200, r
    assert r["body"].get("status") == "ok", r
    assert r["url"].endswith(f":{dsrv.port}"), r
    assert docker_env(dsrv, name)["executor"] == "docker"


CONTAINER_SERVICES_HANDLER = """\
import json, os, urllib.request
KEYS = ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL_CLOUDWATCH_LOGS',
        'AWS_ENDPOINT_URL_LAMBDA', 'AWS_ENDPOINT_URL_IAM', 'AWS_ENDPOINT_URL_STS',
        'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION']
def handler(event, context):
    print('CONTAINER-MARK', event['m'])
    env = {k: os.environ.get(k) for k in KEYS}
    auth = ('AWS4-HMAC-SHA256 Credential=%s/20240101/%s/logs/aws4_request, SignedHeaders=host, '
            'Signature=x' % (env['AWS_ACCESS_KEY_ID'], env['AWS_REGION']))
    req = urllib.request.Request(env['AWS_ENDPOINT_URL_CLOUDWATCH_LOGS'] + '/',
        data=json.dumps({'logGroupNamePrefix': context.log_group_name}).encode(),
        headers={'X-Amz-Target': 'Logs_20140328.DescribeLogGroups',
                 'Content-Type': 'application/x-amz-json-1.1', 'Authorization': auth})
    with urllib.request.urlopen(req, timeout=10) as r:
        groups = [g['logGroupName'] for g in json.loads(r.read())['logGroups']]
    return {'env': env, 'groups': groups}
"""


def test_container_reaches_services_and_logs_to_cloudwatch(dsrv, lam):
    """A container gets AWS_ENDPOINT_URL and its per-service variants (the
    address a container reaches lambdad at) and the account's dummy
    credentials; its Logs call answers in its own account; its output lands
    in /aws/lambda/<fn> with START/END/REPORT."""
    name = py_fn(lam, CONTAINER_SERVICES_HANDLER)
    invoke_ok(lam, name, {"m": "warmup"})
    r = invoke_ok(lam, name, {"m": "second"})
    env = r["env"]
    assert env["AWS_ENDPOINT_URL"].endswith(f":{dsrv.port}"), env
    for k in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ENDPOINT_URL_LAMBDA",
              "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS"):
        assert env[k] == env["AWS_ENDPOINT_URL"], (k, env)
    assert env["AWS_ACCESS_KEY_ID"] == "000000000000" and env["AWS_SESSION_TOKEN"], env
    assert r["groups"] == [f"/aws/lambda/{name}"], r
    logs = dsrv.client(service="logs")
    group = f"/aws/lambda/{name}"

    def msgs():
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        if len(streams) != 1:
            return None
        ev = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"],
                                 startFromHead=True)["events"]
        texts = [e["message"] for e in ev]
        return texts if "CONTAINER-MARK second\n" in texts and sum(
            t.startswith("REPORT RequestId") for t in texts) == 2 else None

    texts = wait_for(msgs, 30, interval=0.1, what="the container's lines in CloudWatch Logs")
    assert sum(t.startswith("START RequestId") for t in texts) == 2
    # Each invocation's output sits between its START and its END, although
    # the Engine's log stream delivers it after the Runtime API result.
    for mark in ("warmup", "second"):
        i = texts.index(f"CONTAINER-MARK {mark}\n")
        before = [t for t in texts[:i] if t.startswith(("START", "END"))]
        assert before and before[-1].startswith("START"), texts
        assert texts[i + 1].startswith("END RequestId"), texts


# --------------------------------------------------------------------------
# failures of the engine or the image


def test_missing_image_fails_fast(dsrv, lam):
    name = py_fn(lam, "def handler(e, c):\n    return 1\n", Runtime="python3.11")
    for attempt in range(2):
        t0 = time.monotonic()
        with pytest.raises(ClientError) as ei:
            invoke(lam, name, {})
        elapsed = time.monotonic() - t0
        r = ei.value.response
        print(f"\n[missing image] attempt {attempt}: {elapsed:.2f} s, "
              f"{r['ResponseMetadata']['HTTPStatusCode']} {r['Error']}")
        assert elapsed < 10, elapsed
        assert r["ResponseMetadata"]["HTTPStatusCode"] >= 400, r
        assert MISSING_IMAGE in r["Error"].get("Message", ""), r["Error"]
    assert healthy(dsrv)
    assert not fn_containers(name)
    # Other functions are unaffected.
    ok = py_fn(lam, "def handler(e, c):\n    return 'fine'\n")
    assert invoke_ok(lam, ok, {}) == "fine"


def test_unreachable_engine_exits_at_startup(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cmd = [LAMBDAD_BIN, "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir", str(data),
           "--ephemeral", "--lambda-executor", "docker"]
    env = server_env({"DOCKER_HOST": "unix:///nonexistent.sock"})
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=5)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"lambdad still running 5 s after start with an unreachable engine: {e}")
    elapsed = time.monotonic() - t0
    out = (r.stdout + r.stderr).strip()
    print(f"\n[no engine] exit {r.returncode} after {elapsed:.2f} s: {out!r}")
    assert r.returncode != 0, out
    assert elapsed < 5
    lines = [ln for ln in out.splitlines() if "engine" in ln.lower()]
    assert len(lines) == 1, out
    assert "/nonexistent.sock" in lines[0], out


# --------------------------------------------------------------------------
# shutdown and leftovers


def test_sigterm_removes_instance_containers(lambdad_factory):
    srv = lambdad_factory(ephemeral=True, args=DOCKER_ARGS)
    lam = srv.client()
    names = [py_fn(lam, SLEEP_HANDLER) for _ in range(2)]
    for n in names:
        invoke_ok(lam, n, {})
    # One idle, one busy at SIGTERM time.
    outcome = []

    def busy_invoke():
        try:
            outcome.append(invoke(srv.client(), names[1], {"sleep": 1})[1])
        except Exception as e:  # noqa: BLE001 - printed below
            outcome.append(repr(e))

    busy = threading.Thread(target=busy_invoke)
    busy.start()
    instance = inspect(docker_env(srv, names[0])["container"])["Config"]["Labels"]["lambdad.instance"]
    assert len(containers(f"lambdad.instance={instance}")) == 2
    time.sleep(0.2)
    srv.stop()
    busy.join(30)
    print(f"\n[sigterm] invoke in flight at SIGTERM ended with: {outcome}")
    assert srv.proc.returncode == 0, srv.log_tail()
    assert containers(f"lambdad.instance={instance}") == []


def test_restart_removes_leftovers_of_killed_run(lambdad_factory):
    first = lambdad_factory(ephemeral=True, args=DOCKER_ARGS)
    lam = first.client()
    name = py_fn(lam, SLEEP_HANDLER, Timeout=60)
    invoke_ok(lam, name, {})
    # Keep the runtime busy in a handler so the container outlives lambdad.
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"sleep": 40}))
    cid = docker_env(first, name)["container"]
    instance = inspect(cid)["Config"]["Labels"]["lambdad.instance"]
    wait_for(lambda: envs(first, name)[0]["state"] == "busy", 10, what="the Event invoke to run")
    first.kill9()
    left = containers(f"lambdad.instance={instance}")
    assert [c["Id"] for c in left] == [inspect(cid)["Id"]], left
    assert left[0]["State"] == "running", left
    second = lambdad_factory(ephemeral=True, args=DOCKER_ARGS)
    wait_for(lambda: gone(cid), 5, what=f"leftover container {cid[:12]} to be removed")
    assert containers(f"lambdad.instance={instance}") == []
    # The new instance works.
    lam2 = second.client()
    n2 = py_fn(lam2, SLEEP_HANDLER)
    assert invoke_ok(lam2, n2, {})["cid"]
