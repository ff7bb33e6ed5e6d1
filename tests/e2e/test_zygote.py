"""End-to-end tests of the Python zygote (--python-zygote, runtime/zygote.h):
python environments forked from one pre-initialised interpreter must behave
exactly like freshly started ones, and be reported as "spawn": "zygote" in
GET /_lambdad/environments.
"""
import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import new_server, stop_and_check
from helpers import create_function, make_zip, unique_name, wait_for

ENV_HANDLER = """import ctypes, os, sys
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_char_p
def handler(event, context):
    c_mine = getenv(b"MINE")
    return {"mine": os.environ.get("MINE"), "other": os.environ.get("OTHER"),
            "c_mine": c_mine.decode() if c_mine else None,
            "cwd": os.getcwd(), "pid": os.getpid(), "path0": sys.path[0],
            "task_root": os.environ.get("LAMBDA_TASK_ROOT")}
"""

IMPORT_HANDLER = """import helper_mod
import layer_mod
def handler(event, context):
    return [helper_mod.VALUE, layer_mod.VALUE, helper_mod.__file__]
"""

EXIT_HANDLER = """import os
def handler(event, context):
    print("about to exit", flush=True)
    os._exit(event["code"])
"""

TRIVIAL = "def handler(event, context):\n    return 1\n"


def _server(tmp_path_factory, name, *args):
    s = new_server(str(tmp_path_factory.mktemp(name)), args=list(args))
    s.start()
    return s


@pytest.fixture(scope="module")
def zsrv(tmp_path_factory):
    s = _server(tmp_path_factory, "zygote-on")
    yield s
    stop_and_check(s)


@pytest.fixture(scope="module")
def lam(zsrv):
    return zsrv.client()


def envs(server, name):
    with urllib.request.urlopen(server.url + "/_lambdad/environments", timeout=10) as r:
        return [e for e in json.loads(r.read()) if e["function"] == name]


def invoke(client, name, payload=None, **kw):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}), **kw)
    return resp, resp["Payload"].read()


def py_fn(client, source, files=None, **kw):
    name = unique_name("zyg")
    code = {"lambda_function.py": source}
    code.update(files or {})
    create_function(client, name, make_zip(code), **kw)
    return name


def init_ms(resp):
    log = base64.b64decode(resp["LogResult"]).decode()
    m = re.search(r"\tInit Duration: ([\d.]+) ms", log)
    assert m, log
    return float(m.group(1))


def python_c_pass_ms():
    """Median wall time of the interpreter lambdad uses running `-c pass`."""
    exe = subprocess.run([sys.executable, "-S", "-c", "import sys; print(sys.executable)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([exe, "-c", "pass"], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[2]


def test_env_isolation_and_cwd(zsrv, lam):
    a = py_fn(lam, ENV_HANDLER, Environment={"Variables": {"MINE": "a-value"}})
    b = py_fn(lam, ENV_HANDLER, Environment={"Variables": {"MINE": "b-value", "OTHER": "x"}})
    ra = json.loads(invoke(lam, a)[1])
    rb = json.loads(invoke(lam, b)[1])
    assert ra["mine"] == "a-value" and ra["other"] is None, ra
    assert rb["mine"] == "b-value" and rb["other"] == "x", rb
    for r in (ra, rb):
        assert r["cwd"] == r["task_root"] == r["path0"], r
        assert r["c_mine"] == r["mine"], r
    for name, r in ((a, ra), (b, rb)):
        (env,) = envs(zsrv, name)
        assert env["spawn"] == "zygote", env
        assert env["pid"] == r["pid"]
        # lambdad (the subreaper during the fork) is the parent.
        with open(f"/proc/{r['pid']}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert int(fields[1]) == zsrv.proc.pid, fields  # ppid
        assert int(fields[3]) == r["pid"], fields       # session id: its own


def test_imports_from_task_root_and_layer(zsrv, lam):
    layer = make_zip({"python/layer_mod.py": "VALUE = 'from-layer'\n"})
    lv = lam.publish_layer_version(LayerName=unique_name("zlay"), Content={"ZipFile": layer})
    name = py_fn(lam, IMPORT_HANDLER, files={"helper_mod.py": "VALUE = 'from-task-root'\n",
                                             # shadows a module the zygote pre-imports
                                             "json.py": "raise ImportError('own json')\n"},
                 Layers=[lv["LayerVersionArn"]])
    resp, body = invoke(lam, name)
    assert "FunctionError" not in resp, body
    got = json.loads(body)
    assert got[:2] == ["from-task-root", "from-layer"], got
    assert envs(zsrv, name)[0]["spawn"] == "zygote"


def test_shadowing_module_is_the_functions_own(zsrv, lam):
    name = py_fn(lam, "import json\ndef handler(e, c):\n    return json.MARK\n",
                 files={"json.py": "MARK = 'mine'\n"})
    resp, body = invoke(lam, name)
    assert "FunctionError" not in resp, body
    assert json.loads(body) == "mine"


def test_exit_status_and_timeout_unchanged(zsrv, lam):
    name = py_fn(lam, EXIT_HANDLER)
    resp, body = invoke(lam, name, {"code": 3}, LogType="Tail")
    assert resp.get("FunctionError") == "Unhandled", body
    err = json.loads(body)
    assert err["errorType"] == "Runtime.ExitError", err
    assert "exit status 3" in err["errorMessage"], err
    assert "about to exit" in base64.b64decode(resp["LogResult"]).decode()

    slow = py_fn(lam, "import time\ndef handler(e, c):\n    time.sleep(5)\n", Timeout=1)
    t0 = time.monotonic()
    resp, body = invoke(lam, slow)
    assert time.monotonic() - t0 < 4
    assert json.loads(body)["errorType"] == "Sandbox.Timedout", body
    # The timed-out environment is killed (process group) and replaced.
    wait_for(lambda: not envs(zsrv, slow), 5, what="timed-out environment to go")


def test_cold_start_faster_than_interpreter_start(zsrv, lam):
    base = python_c_pass_ms()
    inits = []
    for _ in range(3):
        name = py_fn(lam, TRIVIAL)
        resp, body = invoke(lam, name, LogType="Tail")
        assert json.loads(body) == 1
        inits.append(init_ms(resp))
        assert envs(zsrv, name)[0]["spawn"] == "zygote"
    print(f"\npython3 -c pass: {base:.1f} ms; zygote Init Duration: "
          + ", ".join(f"{i:.1f}" for i in inits) + " ms")


def test_zygote_off(tmp_path_factory):
    s = _server(tmp_path_factory, "zygote-off", "--python-zygote", "off")
    try:
        c = s.client()
        name = py_fn(c, ENV_HANDLER, Environment={"Variables": {"MINE": "off"}})
        resp, body = invoke(c, name, LogType="Tail")
        assert json.loads(body)["mine"] == "off"
        assert envs(s, name)[0]["spawn"] == "spawn"
        print(f"\nspawn Init Duration: {init_ms(resp):.1f} ms")
    finally:
        stop_and_check(s)


def test_python_env_vars_fall_back_to_spawn(zsrv, lam):
    """PYTHON* variables are read at interpreter start-up: such functions
    get a fresh interpreter."""
    name = py_fn(lam, "import sys\ndef handler(e, c):\n    return sys.flags.optimize\n",
                 Environment={"Variables": {"PYTHONOPTIMIZE": "1"}})
    resp, body = invoke(lam, name)
    assert json.loads(body) == 1, body
    assert envs(zsrv, name)[0]["spawn"] == "spawn"


def test_zygote_killed_is_restarted(zsrv, lam):
    def zygote_pids():
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # Environments forked from it run the same command line but
            # lead their own session.
            ppid, sid = int(fields[1]), int(fields[3])
            if ppid == zsrv.proc.pid and sid != int(p) and any(a.endswith(b"/python/zygote.py") for a in cmd):
                out.append(int(p))
        return out

    (zpid,) = zygote_pids()
    os.kill(zpid, 9)
    name = py_fn(lam, TRIVIAL)
    resp, body = invoke(lam, name)
    assert json.loads(body) == 1, body
    assert envs(zsrv, name)[0]["spawn"] == "zygote"
    (new,) = zygote_pids()
    assert new != zpid
