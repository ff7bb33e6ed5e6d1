"""The engine under hostile load and faults (issue 8): invokes during code
updates, handlers that attack their own Runtime API or try to outlive their
environment, out-of-memory kills, and slow environment starts that must not
stall other functions on the same executor.

Every wait is bounded; no test asserts speed beyond generous liveness
limits (the machine may be loaded).
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import new_server, stop_and_check
from helpers import create_function, make_zip, unique_name, wait_for
from test_invoke import admin, envs, healthy, invoke, invoke_ok, pid_alive, py_fn


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = new_server(str(tmp_path_factory.mktemp("engine")), ephemeral=True)
    s.start()
    yield s
    stop_and_check(s)


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


def invoke_loop(client, name, stop, results, payload=None):
    """Invokes name until stop is set; appends (ok, detail) per invoke."""
    while not stop.is_set():
        try:
            resp, body = invoke(client, name, payload or {})
            ok = resp["StatusCode"] == 200 and "FunctionError" not in resp
            results.append((ok, None if ok else body[:400]))
        except Exception as e:  # noqa: BLE001 - a failed call is a result here
            results.append((False, repr(e)[:400]))


# --------------------------------------------------------------------------
# item 2: invokes during UpdateFunctionCode never fail

VERSIONED = """\
import time
time.sleep(0.05)  # a runtime that takes a moment to import its handler
TAG = {tag!r}
def handler(event, context):
    return {{'tag': TAG}}
"""


def test_invokes_during_code_updates_never_fail(srv):
    client = srv.client()
    name = unique_name("upd")
    create_function(client, name, make_zip({"lambda_function.py": VERSIONED.format(tag="v0")}),
                    Timeout=30)
    invoke_ok(client, name, {})
    stop = threading.Event()
    results = []
    loops = [threading.Thread(target=invoke_loop, args=(srv.client(), name, stop, results))
             for _ in range(8)]
    for t in loops:
        t.start()
    updates = 0
    try:
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end:
            updates += 1
            zip_bytes = make_zip({"lambda_function.py": VERSIONED.format(tag=f"v{updates}")})
            client.update_function_code(FunctionName=name, ZipFile=zip_bytes)
            time.sleep(0.3)
    finally:
        stop.set()
        for t in loops:
            t.join(60)
    failed = [d for ok, d in results if not ok]
    assert updates >= 10
    assert len(results) > 20
    assert not failed, f"{len(failed)} of {len(results)} invokes failed: {failed[:3]}"
    # The last code is what runs now.
    assert invoke_ok(client, name, {})["tag"] == f"v{updates}"
    assert healthy(srv)


# --------------------------------------------------------------------------
# item 4: a handler cannot take lambdad down or escape

FLOOD = """\
import os, socket, time
def handler(event, context):
    host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')
    socks, refused = [], 0
    for _ in range(event['n']):
        s = socket.socket()
        try:
            s.connect((host, int(port)))
            socks.append(s)
        except OSError:
            refused += 1
            s.close()
    time.sleep(event.get('hold', 0))
    for s in socks:
        s.close()
    return {'opened': len(socks), 'refused': refused}
"""


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_runtime_api_connection_flood(srv):
    """A handler opening 1,000 connections to its own Runtime API: lambdad
    keeps a handful (RAPI_MAX_CONNS) and keeps serving other functions."""
    client = srv.client()
    other = py_fn(client, "def handler(event, context):\n    return {'ok': 1}\n")
    invoke_ok(client, other, {})
    flood = py_fn(client, FLOOD, Timeout=60)
    fds_before = fd_count(srv.proc.pid)
    stop = threading.Event()
    results = []
    loop = threading.Thread(target=invoke_loop, args=(srv.client(), other, stop, results))
    loop.start()
    peak = [0]

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], fd_count(srv.proc.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        got = invoke_ok(client, flood, {"n": 1000, "hold": 3})
        assert got["opened"] + got["refused"] == 1000
        assert healthy(srv)
    finally:
        stop.set()
        loop.join(60)
        watcher.join(10)
    failed = [d for ok, d in results if not ok]
    assert results and not failed, failed[:3]
    # lambdad never held the flood's connections (16 per environment).
    assert peak[0] - fds_before < 200, (fds_before, peak[0])
    # The flooding environment itself still works.
    assert invoke_ok(client, flood, {"n": 3})["opened"] == 3


ESCAPE = """\
import os, time
def handler(event, context):
    path = event['pidfile']
    pid = os.fork()
    if pid == 0:
        os.setsid()            # leave the environment's process group
        if os.fork() == 0:     # the grandchild: a daemon with no parent
            with open(path + '.tmp', 'w') as f:
                f.write(str(os.getpid()))
            os.rename(path + '.tmp', path)
            while True:
                time.sleep(0.2)
        os._exit(0)
    os.waitpid(pid, 0)
    for _ in range(250):
        if os.path.exists(path):
            break
        time.sleep(0.02)
    with open(path) as f:
        return {'daemon': int(f.read())}
"""


def tracked_by_cgroup(srv):
    """Whether this host lets lambdad track processes by cgroup (a writable
    cgroup v2 hierarchy: pure v2, or the v2 half of a hybrid host)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return os.access("/sys/fs/cgroup", os.W_OK)
    return os.access("/sys/fs/cgroup/unified/cgroup.procs", os.W_OK)


@pytest.mark.parametrize("stop_by", ["evict", "delete"])
def test_setsid_daemon_dies_with_its_environment(srv, tmp_path, stop_by):
    if not tracked_by_cgroup(srv):
        pytest.skip("this host gives lambdad no writable cgroup to track processes with")
    client = srv.client()
    name = py_fn(client, ESCAPE, Timeout=30)
    pidfile = str(tmp_path / f"daemon-{stop_by}.pid")
    daemon = invoke_ok(client, name, {"pidfile": pidfile})["daemon"]
    assert pid_alive(daemon)
    if stop_by == "evict":
        status, _ = admin(srv, "DELETE", f"/_lambdad/environments/{name}")
        assert status in (200, 202, 204)
    else:
        client.delete_function(FunctionName=name)
    wait_for(lambda: not pid_alive(daemon), 15, interval=0.1, what=f"daemon {daemon} to die")
    assert healthy(srv)


def test_stale_cgroups_of_dead_runs_removed_at_start(lambdad_factory):
    """env-<pid>-<id> cgroups of a lambdad that is gone are removed (and what
    runs in them killed) at start; those of a live process are left alone
    (other lambdad instances share the host)."""
    root = None
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        root = "/sys/fs/cgroup/lambdad"
    elif os.access("/sys/fs/cgroup/unified/cgroup.procs", os.W_OK):
        root = "/sys/fs/cgroup/unified/lambdad"
    if root is None or not os.access(os.path.dirname(root), os.W_OK):
        pytest.skip("this host gives lambdad no writable cgroup v2 hierarchy")
    os.makedirs(root, exist_ok=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = os.path.join(root, f"env-{gone.pid}-424242")
    alive = os.path.join(root, f"env-{os.getpid()}-424242")
    victim = subprocess.Popen(["sleep", "300"])
    try:
        os.mkdir(stale)
        os.mkdir(alive)
        with open(os.path.join(stale, "cgroup.procs"), "w") as f:
            f.write(str(victim.pid))
        lambdad_factory(ephemeral=True)
        wait_for(lambda: not os.path.exists(stale), 10, what="the stale cgroup to go")
        assert victim.wait(10) == -9  # what ran in it was killed
        assert os.path.isdir(alive)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        for d in (stale, alive):
            if os.path.isdir(d):
                os.rmdir(d)


OOM = """\
def handler(event, context):
    hog = []
    for i in range(event['mb']):
        hog.append(bytearray(b'x' * (1 << 20)))  # touched pages
    return len(hog)
"""


def test_out_of_memory_is_runtime_out_of_memory(srv):
    if "memory limits not enforced" in srv.log:
        pytest.skip("this host gives lambdad no writable memory cgroup (see its start-up log)")
    client = srv.client()
    name = py_fn(client, OOM, MemorySize=128, Timeout=30)
    assert invoke_ok(client, name, {"mb": 8}) == 8
    resp, body = invoke(client, name, {"mb": 400}, LogType="Tail")
    err = json.loads(body)
    assert resp.get("FunctionError") == "Unhandled", err
    rid = resp["ResponseMetadata"]["RequestId"]
    assert err == {"errorType": "Runtime.OutOfMemory",
                   "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: signal: killed"}
    assert invoke_ok(client, name, {"mb": 8}) == 8  # a fresh environment
    assert healthy(srv)


# --------------------------------------------------------------------------
# item 5: no blocking on executor threads


def test_slow_environment_start_does_not_stall_a_warm_function(lambdad_factory):
    """One executor thread: function B's first start merges a layer of 60,000
    files (seconds of disk work); invokes of warm function A on the same
    executor must keep flowing meanwhile."""
    srv = lambdad_factory(args=["--executors", "1"], ephemeral=True)
    client = srv.client()
    a = py_fn(client, "def handler(event, context):\n    return 'a'\n")
    invoke_ok(client, a, {})
    layer = make_zip({f"python/pkg{i // 1000}/m{i}.py": "" for i in range(60000)})
    arn = client.publish_layer_version(LayerName=unique_name("big"),
                                       Content={"ZipFile": layer})["LayerVersionArn"]
    b = py_fn(client, "def handler(event, context):\n    return 'b'\n", Layers=[arn], Timeout=120)
    b_time = []

    def cold_b():
        t0 = time.monotonic()
        invoke_ok(srv.client(), b, {})
        b_time.append(time.monotonic() - t0)

    th = threading.Thread(target=cold_b)
    th.start()
    a_times = []
    while th.is_alive():
        t0 = time.monotonic()
        assert invoke_ok(client, a, {}) == "a"
        a_times.append(time.monotonic() - t0)
    th.join()
    assert b_time, "B's invoke failed"
    # The merge must have been slow enough to prove anything (60,000 files
    # take 0.5 to several s depending on the disk and the page cache; 30,000
    # once took 0.198 s on a fast host): at least 0.2 s, with A served many
    # times meanwhile. And A must have been served throughout it: no A
    # invoke waited for half of B's start (before the fix one waited for
    # all of it).
    assert b_time[0] > 0.2, f"B started in {b_time[0]:.2f}s: the layer was merged too fast to tell"
    assert len(a_times) >= 10, (len(a_times), b_time[0])
    assert max(a_times) < b_time[0] / 2, (max(a_times), b_time[0], len(a_times))


def _executor_of(name, executors, region="us-east-1", account="000000000000"):
    """The executor lambdad's pool gives a function's $LATEST (FNV-1a of its
    key "<region>/<account>/<name>", modulo the executor count)."""
    h = 1469598103934665603
    for b in f"{region}/{account}/{name}".encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % executors


def _name_on(executor, prefix, executors=2):
    while True:
        name = unique_name(prefix)
        if _executor_of(name, executors) == executor:
            return name


def test_every_function_waiting_under_the_cap_gets_room(lambdad_factory):
    """Global cap 2, two executors. H (executor 1) holds both environments
    with two slow invokes; X and then Y (both executor 0) wait for room.
    Before the fix the executor remembered only its latest waiter (Y): when
    H's environments were given up, Y started and X waited for an idle
    timeout (here 600 s) although the cap had room."""
    srv = lambdad_factory(args=["--executors", "2", "--lambda-max-containers", "2",
                                "--lambda-container-ttl", "600"], ephemeral=True)
    client = srv.client()
    slow = "import time\ndef handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 'ok'\n"
    h = py_fn(client, slow, name=_name_on(1, "capH"), Timeout=30)
    x = py_fn(client, slow, name=_name_on(0, "capX"), Timeout=30)
    y = py_fn(client, slow, name=_name_on(0, "capY"), Timeout=30)
    results = {}

    def call(tag, name, payload):
        try:
            results[tag] = invoke_ok(srv.client(), name, payload)
        except Exception as e:  # noqa: BLE001 - reported below
            results[tag] = repr(e)

    holders = [threading.Thread(target=call, args=(f"h{i}", h, {"s": 3})) for i in range(2)]
    for t in holders:
        t.start()
    wait_for(lambda: len(envs(srv, h)) >= 2, 20, what="H's two environments")
    waiters = []
    for tag, name in (("x", x), ("y", y)):
        t = threading.Thread(target=call, args=(tag, name, {"s": 0}))
        t.start()
        waiters.append(t)
        time.sleep(0.3)
    for t in holders + waiters:
        t.join(90)
    assert not any(t.is_alive() for t in holders + waiters), f"invokes still waiting: {results}"
    assert results == {"h0": "ok", "h1": "ok", "x": "ok", "y": "ok"}, results


# --------------------------------------------------------------------------
# the soak (bench/soak.py), short


def test_mixed_soak_30s(lambdad_factory):
    """30 s of bench/soak.py: 32 invoking connections, creates/deletes and an
    UpdateFunctionCode every second: no invoke fails, descriptors and
    threads stay flat (RSS is judged by the 10-minute run only: sanitizer
    builds grow it by design)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
    import soak
    srv = lambdad_factory(ephemeral=True)
    summary = soak.run_soak(srv.url, srv.proc.pid, 30)
    assert summary["failed"] == 0, summary["errors"][:5]
    assert summary["invokes"] > 0 and summary["creates"] > 0 and summary["updates"] > 0
    assert "fds_net grew" not in summary["verdict"] and "threads grew" not in summary["verdict"], summary
    assert healthy(srv)
