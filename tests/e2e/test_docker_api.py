"""lambdad's Docker Engine API front end (--docker-api) end to end: the real
`docker` CLI and docker-py against a lambdad whose containers are Lambda
functions run by the docker executor in the local test image
(lambdad-test/base:bookworm, see test_docker.py for how it is built).

Every container is checked from both sides: what the Docker client sees
(output, stream separation, exit codes, ps/inspect/wait) and what the
Lambda API sees (the function behind it, through boto3).

Skipped when the engine is unreachable or the test image is missing;
serialised with test_docker.py by the same lock (docker-mode servers clean
up lambdad containers of dead instances at start).
"""
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import new_server, stop_and_check, free_port
import enginelock
from test_docker import LOCK_PATH, LOCK_WAIT, engine_reachable, image_exists

IMAGE = "lambdad-test/base:bookworm"
PREFIX = "dk"


@pytest.fixture(scope="module", autouse=True)
def _engine():
    """Skips without an engine or the test image; holds test_docker.py's
    engine lock for the module (docker-mode starts clean up containers)."""
    ok, why = engine_reachable()
    if not ok:
        pytest.skip(f"Docker engine not reachable ({why})", allow_module_level=True)
    fd = enginelock.acquire(LOCK_PATH, LOCK_WAIT)
    if fd is None:
        pytest.fail(f"{LOCK_PATH} held by another test run for over {LOCK_WAIT} s")
    try:
        if not image_exists(IMAGE):
            pytest.skip(f"test image {IMAGE} missing (tools/build-test-image.sh)",
                        allow_module_level=True)
        yield
    finally:
        enginelock.release(fd)


def _server(tmp, sock, tcp_port, extra=()):
    args = ["--lambda-executor", "docker", "--docker-api",
            f"unix://{sock},tcp://127.0.0.1:{tcp_port}", "--docker-api-prefix", PREFIX,
            "--docker-api-timeout", "60"] + list(extra)
    return new_server(str(tmp), args=args)


@pytest.fixture(scope="module")
def dapi(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dockerapi")
    sock = str(tmp / "run" / "docker.sock")  # parent created by lambdad
    port = free_port()
    s = _server(tmp, sock, port)
    s.start()
    s.sock = sock
    s.tcp = port
    yield s
    stop_and_check(s)


@pytest.fixture(scope="module")
def lam(dapi):
    return dapi.client()


def dk(srv, *args, timeout=120, tcp=False, input=None):
    env = dict(os.environ)
    env["DOCKER_HOST"] = f"tcp://127.0.0.1:{srv.tcp}" if tcp else f"unix://{srv.sock}"
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, input=input)


class _Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def raw(srv, method, path, body=None, headers=None):
    """One Engine API request over the unix socket: (status, body bytes, headers)."""
    c = _Unix(srv.sock)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()


def fn_of(cid):
    return f"{PREFIX}-{cid[:12]}"


def function_names(lam):
    names = []
    for page in lam.get_paginator("list_functions").paginate():
        names += [f["FunctionName"] for f in page["Functions"]]
    return names


# --------------------------------------------------------------------------


def test_ping_version_info(dapi):
    st, body, hdr = raw(dapi, "GET", "/_ping")
    assert st == 200 and body == b"OK"
    assert hdr.get("Api-Version") == "1.45"
    st, body, hdr = raw(dapi, "HEAD", "/_ping")
    assert st == 200 and body == b"" and hdr.get("Api-Version") == "1.45"
    st, body, _ = raw(dapi, "GET", "/v1.45/version")
    assert st == 200 and json.loads(body)["ApiVersion"] == "1.45"
    st, body, _ = raw(dapi, "GET", "/v1.99/version")
    assert st == 400 and "too new" in json.loads(body)["message"]
    r = dk(dapi, "version", "--format", "{{.Server.APIVersion}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1.45"
    r = dk(dapi, "info", "--format", "{{.Driver}}")
    assert r.returncode == 0 and r.stdout.strip() == "lambda", r.stderr


def test_run_rm_prints_both_streams_and_exits_with_the_code(dapi, lam):
    before = set(function_names(lam))
    r = dk(dapi, "run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    # --rm: the container and its function are gone.
    r = dk(dapi, "ps", "-a", "-q", "--no-trunc")
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout
    assert not [n for n in set(function_names(lam)) - before if n.startswith(PREFIX + "-")]


def test_run_rm_over_tcp_exit_zero(dapi):
    r = dk(dapi, "run", "--rm", IMAGE, "echo", "hi", tcp=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_run_detached_logs_follow_wait_inspect(dapi, lam):
    r = dk(dapi, "run", "-d", "--name", "follow1", "-e", "FOO=bar", "-l", "app=e2e", IMAGE, "sh", "-c",
           "for i in 1 2 3; do echo line$i $FOO; echo e$i >&2; sleep 1; done; exit 7")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    # Follow while it runs: returns when the container exits, with all lines.
    r = dk(dapi, "logs", "-f", "follow1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "line1 bar\nline2 bar\nline3 bar\n"
    assert r.stderr == "e1\ne2\ne3\n"
    r = dk(dapi, "wait", "follow1")
    assert r.stdout.strip() == "7"
    r = dk(dapi, "inspect", "follow1")
    info = json.loads(r.stdout)[0]
    assert info["Id"] == cid and info["Name"] == "/follow1"
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 7
    assert info["State"]["Running"] is False
    assert info["State"]["StartedAt"] < info["State"]["FinishedAt"]
    assert info["Config"]["Labels"] == {"app": "e2e"}
    assert "FOO=bar" in info["Config"]["Env"]
    # ps -a and filters.
    r = dk(dapi, "ps", "-a", "--filter", "label=app=e2e", "--format", "{{.Names}} {{.Status}}")
    assert r.stdout.startswith("follow1 Exited (7)"), r.stdout
    r = dk(dapi, "ps", "--format", "{{.Names}}")
    assert "follow1" not in r.stdout  # not running
    r = dk(dapi, "ps", "-a", "--filter", "status=running", "-q")
    assert cid[:12] not in r.stdout
    # tail / timestamps / stream selection.
    r = dk(dapi, "logs", "--tail", "2", "follow1")
    assert len((r.stdout + r.stderr).splitlines()) == 2
    r = dk(dapi, "logs", "-t", "follow1")
    first = r.stdout.splitlines()[0]
    assert first.endswith(" line1 bar") and first[:4].isdigit() and "T" in first[:20], first
    # The function behind it: an ordinary Lambda function.
    fn = lam.get_function(FunctionName=fn_of(cid))
    cfg = fn["Configuration"]
    assert cfg["PackageType"] == "Image"
    assert fn["Code"]["ImageUri"] == IMAGE
    assert cfg["Environment"]["Variables"] == {"FOO": "bar"}
    assert cfg["MemorySize"] == 1024 and cfg["Timeout"] == 60
    assert cfg["ImageConfigResponse"]["ImageConfig"]["Command"] == [
        "sh", "-c", "for i in 1 2 3; do echo line$i $FOO; echo e$i >&2; sleep 1; done; exit 7"]
    # The output is also in the function's CloudWatch Logs group, in the
    # environment's stream next to START/END/REPORT.
    # (The executor files END/REPORT just after the answer that ended the
    # run: give it a moment.)
    logs = dapi.client(service="logs")
    deadline = time.monotonic() + 30
    while True:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{fn_of(cid)}")["events"]
        msgs = [e["message"] for e in events]
        if any(m.startswith("REPORT RequestId:") for m in msgs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert msgs[0].startswith("START RequestId:")
    for line in ("line1 bar\n", "line3 bar\n", "e1\n", "e3\n"):
        assert line in msgs, msgs
    assert any(m.startswith("REPORT RequestId:") for m in msgs), msgs
    r = dk(dapi, "rm", "follow1")
    assert r.returncode == 0, r.stderr
    assert fn_of(cid) not in function_names(lam)


def test_create_start_attach_restart_rm(dapi, lam):
    r = dk(dapi, "create", "--name", "c1", "-m", "256m", IMAGE, "sh", "-c", "echo run; exit 4")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    r = dk(dapi, "ps", "-a", "--filter", "name=c1", "--format", "{{.Status}}")
    assert r.stdout.strip() == "Created"
    assert lam.get_function_configuration(FunctionName=fn_of(cid))["MemorySize"] == 256
    r = dk(dapi, "start", "-a", "c1")
    assert r.returncode == 4 and r.stdout == "run\n", (r.returncode, r.stdout, r.stderr)
    # A second start is a second invocation of the same function.
    r = dk(dapi, "start", "-a", "c1")
    assert r.returncode == 4 and r.stdout == "run\n"
    r = dk(dapi, "logs", "c1")
    assert r.stdout == "run\nrun\n"
    r = dk(dapi, "rm", "c1")
    assert r.returncode == 0
    r = dk(dapi, "container", "inspect", "c1")
    assert r.returncode != 0 and "No such container" in r.stderr, r.stderr


def test_stop_sends_sigterm_to_the_command(dapi):
    r = dk(dapi, "run", "-d", "--name", "st1", IMAGE, "sh", "-c",
           "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.2; done")
    assert r.returncode == 0, r.stderr
    _wait_output(dapi, "st1", "ready")
    r = dk(dapi, "stop", "-t", "20", "st1")
    assert r.returncode == 0, r.stderr
    assert dk(dapi, "wait", "st1").stdout.strip() == "42"
    assert "got-term" in dk(dapi, "logs", "st1").stdout
    dk(dapi, "rm", "st1")


def test_stop_kills_after_the_grace_period(dapi):
    r = dk(dapi, "run", "-d", "--name", "st2", IMAGE, "sh", "-c",
           "trap '' TERM; echo ready; while true; do sleep 0.2; done")
    assert r.returncode == 0, r.stderr
    _wait_output(dapi, "st2", "ready")
    t0 = time.monotonic()
    r = dk(dapi, "stop", "-t", "1", "st2")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 1.0
    assert dk(dapi, "wait", "st2").stdout.strip() == "137"
    info = json.loads(dk(dapi, "inspect", "st2").stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 137
    # The function is usable again afterwards (a new environment).
    r = dk(dapi, "start", "-a", "st2")
    assert "ready" in r.stdout
    dk(dapi, "rm", "-f", "st2")


def test_kill_and_force_remove(dapi, lam):
    r = dk(dapi, "run", "-d", "--name", "k1", IMAGE, "sh", "-c", "echo ready; sleep 600")
    cid = r.stdout.strip()
    _wait_output(dapi, "k1", "ready")
    r = dk(dapi, "rm", "k1")
    assert r.returncode != 0 and "cannot remove a running container" in r.stderr
    r = dk(dapi, "kill", "k1")
    assert r.returncode == 0, r.stderr
    assert dk(dapi, "wait", "k1").stdout.strip() == "137"
    r = dk(dapi, "kill", "k1")
    assert r.returncode != 0 and "is not running" in r.stderr
    # rm -f of a running one.
    r = dk(dapi, "start", "k1")
    _wait_output(dapi, "k1", "ready\nready")
    r = dk(dapi, "rm", "-f", "k1")
    assert r.returncode == 0, r.stderr
    assert fn_of(cid) not in function_names(lam)


def test_exec_runs_in_the_running_environment(dapi):
    r = dk(dapi, "run", "-d", "--name", "ex1", IMAGE, "sh", "-c",
           "echo data > /tmp/f; echo ready; sleep 120")
    assert r.returncode == 0, r.stderr
    _wait_output(dapi, "ex1", "ready")
    r = dk(dapi, "exec", "ex1", "cat", "/tmp/f")  # same filesystem as the command
    assert r.returncode == 0 and r.stdout == "data\n", (r.stdout, r.stderr)
    r = dk(dapi, "exec", "-e", "X=1", "ex1", "sh", "-c", "echo o $X; echo e >&2; exit 5")
    assert r.returncode == 5 and r.stdout == "o 1\n" and r.stderr == "e\n", (r.stdout, r.stderr)
    r = dk(dapi, "exec", "ex1", "no-such-command")
    assert r.returncode == 126 and "not found" in r.stdout + r.stderr  # the engine's text, as is
    assert dk(dapi, "kill", "ex1").returncode == 0
    assert dk(dapi, "wait", "ex1").stdout.strip() == "137"
    r = dk(dapi, "exec", "ex1", "true")
    assert r.returncode != 0 and "is not running" in r.stderr, r.stderr
    dk(dapi, "rm", "ex1")


def test_cp_reads_the_running_environment(dapi, tmp_path):
    r = dk(dapi, "run", "-d", "--name", "cp1", IMAGE, "sh", "-c", "echo ready; sleep 120")
    assert r.returncode == 0, r.stderr
    _wait_output(dapi, "cp1", "ready")
    want = dk(dapi, "exec", "cp1", "cat", "/etc/debian_version").stdout
    r = dk(dapi, "cp", "cp1:/etc/debian_version", str(tmp_path / "v"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "v").read_text() == want and want
    r = dk(dapi, "cp", "cp1:/no/such/file", str(tmp_path / "x"))
    assert r.returncode != 0 and "Could not find the file" in r.stderr, r.stderr
    # Lambda's root filesystem is read-only: copying in is refused, clearly.
    (tmp_path / "in.txt").write_text("x")
    r = dk(dapi, "cp", str(tmp_path / "in.txt"), "cp1:/in.txt")
    assert r.returncode != 0 and "read-only" in r.stderr, r.stderr
    dk(dapi, "rm", "-f", "cp1")
    r = dk(dapi, "cp", "cp1:/etc/debian_version", str(tmp_path / "y"))
    assert r.returncode != 0


def test_containers_come_back_after_a_restart(tmp_path):
    """The records are rebuilt from the persisted functions: created state,
    same id, name, command, Env; start works."""
    sock = str(tmp_path / "r.sock")
    srv = new_server(str(tmp_path), args=["--lambda-executor", "docker", "--docker-api",
                                          f"unix://{sock}"])
    srv.start()
    srv.sock = sock
    try:
        r = dk(srv, "create", "--name", "keep", "-e", "KK=v", IMAGE, "sh", "-c", "echo $KK kept; exit 2")
        assert r.returncode == 0, r.stderr
        cid = r.stdout.strip()
        assert dk(srv, "rename", "keep", "kept").returncode == 0
        srv.stop()
        srv.start()
        r = dk(srv, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}")
        assert r.stdout.strip() == f"{cid} kept Created", r.stdout
        r = dk(srv, "start", "-a", "kept")
        assert r.returncode == 2 and r.stdout == "v kept\n", (r.returncode, r.stdout, r.stderr)
        assert dk(srv, "rm", "kept").returncode == 0
        assert fn_of(cid).replace(PREFIX, "docker", 1) not in function_names(srv.client())
    finally:
        stop_and_check(srv)


def test_command_that_outlives_its_timeout(tmp_path):
    sock = str(tmp_path / "d.sock")
    srv = new_server(str(tmp_path), args=["--lambda-executor", "docker", "--docker-api",
                                          f"unix://{sock}", "--docker-api-timeout", "2"])
    srv.start()
    srv.sock = sock
    try:
        t0 = time.monotonic()
        r = dk(srv, "run", "--name", "slow", IMAGE, "sh", "-c", "echo started; sleep 30")
        took = time.monotonic() - t0
        assert r.returncode == 137, (r.returncode, r.stdout, r.stderr)
        assert r.stdout == "started\n"
        assert took < 25
        info = json.loads(dk(srv, "inspect", "slow").stdout)[0]
        assert "timed out" in info["State"]["Error"], info["State"]
    finally:
        stop_and_check(srv)


def test_bad_requests_get_docker_errors(dapi):
    # Unknown image: 404 No such image on create; the CLI's pull fails too.
    body = json.dumps({"Image": "lambdad-test/nope:1", "Cmd": ["true"]})
    st, out, _ = raw(dapi, "POST", "/v1.45/containers/create", body, {"Content-Type": "application/json"})
    assert st == 404 and json.loads(out)["message"] == "No such image: lambdad-test/nope:1"
    r = dk(dapi, "run", "--rm", "lambdad-test/nope:1", "true")
    assert r.returncode == 125 and "lambdad-test/nope" in r.stderr, r.stderr
    # Bind mounts are refused with a clear 400.
    r = dk(dapi, "run", "--rm", "-v", "/tmp:/data", IMAGE, "true")
    assert r.returncode == 125 and "bind mounts are not supported" in r.stderr, r.stderr
    body = json.dumps({"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"Binds": ["/etc:/x"]}})
    st, out, _ = raw(dapi, "POST", "/containers/create", body)
    assert st == 400 and "bind mounts" in json.loads(out)["message"]
    # Bad JSON, wrong types, no command.
    for bad in (b"{", b"[]", b'{"Image": 5}', json.dumps({"Image": IMAGE, "Cmd": [1]}).encode(),
                json.dumps({"Image": IMAGE, "Entrypoint": [], "Cmd": []}).encode(), b"\xff\xfe"):
        st, out, _ = raw(dapi, "POST", "/containers/create", bad)
        assert st == 400, (bad, st, out)
        assert json.loads(out)["message"]
    st, out, _ = raw(dapi, "POST", "/containers/create", b"[" * 100000)
    assert st == 400 and "nesting" in json.loads(out)["message"]
    # Unknown container / route / method.
    st, out, _ = raw(dapi, "POST", "/containers/nope/start")
    assert st == 404 and json.loads(out)["message"] == "No such container: nope"
    st, out, _ = raw(dapi, "GET", "/v1.45/nothing/here")
    assert st == 404 and json.loads(out)["message"] == "page not found"
    st, out, _ = raw(dapi, "POST", "/containers/nope/exec", json.dumps({"Cmd": ["true"]}))
    assert st == 404 and "No such container" in json.loads(out)["message"]
    st, out, _ = raw(dapi, "PUT", "/containers/nope/archive?path=/tmp", b"")
    assert st == 404 and "No such container" in json.loads(out)["message"]
    st, out, _ = raw(dapi, "POST", "/containers/nope/pause")
    assert st == 501 and "not supported" in json.loads(out)["message"]
    # Bad name, bad signal, bad wait condition.
    st, out, _ = raw(dapi, "POST", "/containers/create?name=-bad", json.dumps({"Image": IMAGE, "Cmd": ["true"]}))
    assert st == 400 and "Invalid container name" in json.loads(out)["message"]
    st, out, _ = raw(dapi, "POST", "/containers/x/kill?signal=NOPE")
    assert st == 400 and "Invalid signal" in json.loads(out)["message"]
    # The server is still fine.
    assert dk(dapi, "run", "--rm", IMAGE, "true").returncode == 0


def test_unix_relay_port_refuses_strangers(dapi):
    """The loopback port behind the unix socket answers only the relay."""
    st, body, _ = raw(dapi, "GET", "/_ping")
    assert st == 200
    # Find lambdad's listening ports from /proc (ours: the server's pid).
    import re
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ports = [int(m.group(1)) for line in out.splitlines() if f"pid={dapi.proc.pid}," in line
             for m in [re.search(r"127\.0\.0\.1:(\d+)", line)] if m]
    hidden = [p for p in ports if p not in (dapi.port, dapi.tcp)]
    assert hidden, out
    refused = 0
    for p in hidden:
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
        try:
            c.request("GET", "/containers/json")
            r = c.getresponse()
            r.read()
            refused += r.status == 403
        finally:
            c.close()
    assert refused >= 1


def test_networks_and_volumes_are_records(dapi):
    assert dk(dapi, "network", "create", "netx").returncode == 0
    assert "netx" in dk(dapi, "network", "ls").stdout
    assert dk(dapi, "network", "rm", "netx").returncode == 0
    r = dk(dapi, "network", "rm", "bridge")
    assert r.returncode != 0
    assert dk(dapi, "volume", "create", "volx").returncode == 0
    assert "volx" in dk(dapi, "volume", "ls").stdout
    assert dk(dapi, "volume", "rm", "volx").returncode == 0


def test_docker_py(dapi, lam):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{dapi.tcp}", version="auto", timeout=120)
    try:
        assert client.ping() is True
        out = client.containers.run(IMAGE, ["sh", "-c", "echo py-out; echo py-err >&2"], remove=True)
        assert out == b"py-out\n"
        c = client.containers.run(IMAGE, ["sh", "-c", "echo a; echo b >&2; exit 5"], detach=True,
                                  name="pyc", labels={"via": "docker-py"})
        assert c.wait(timeout=60)["StatusCode"] == 5
        assert c.logs(stdout=True, stderr=False) == b"a\n"
        assert c.logs(stdout=False, stderr=True) == b"b\n"
        listed = client.containers.list(all=True, filters={"label": "via=docker-py"})
        assert [x.name for x in listed] == ["pyc"]
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 5
        assert fn_of(c.id) in function_names(lam)
        with pytest.raises(docker.errors.ImageNotFound):
            client.containers.create("lambdad-test/nope:1", ["true"])
        with pytest.raises(docker.errors.APIError) as ei:
            client.containers.create(IMAGE, ["true"], volumes={"/tmp": {"bind": "/x", "mode": "rw"}})
        assert ei.value.status_code == 400
        c.remove()
        assert fn_of(c.id) not in function_names(lam)
    finally:
        client.close()


def _wait_output(srv, name, text, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = dk(srv, "logs", name)
        if text in r.stdout:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name}: {text!r} not in its output: {r.stdout!r} {r.stderr!r}")
