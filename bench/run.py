#!/usr/bin/env python3
"""bench/run.py — lambdad's benchmark suite: THE one command.

    python3 bench/run.py [--quick] [--lambdad PATH] [--out DIR]

What it does (details and the JSON schema: bench/README.md):

  0. builds build/lambdad and build/bench/loadgen when missing or older than
     their sources (cmake --build);
  a. "reference": the published table of shared/reference/
     seed-docker-lambda-execution.md reproduced (Simple return / With boto3 /
     Complex handler x subprocess cold/warm, docker cold/warm), measured from
     the client over one raw keep-alive http.client connection, plus one
     boto3-client figure for the simple warm case;
  b. "sweep": invoke throughput/latency at 1/8/64/256/1000 keep-alive connections
     with bench/loadgen against a trivial function and against
     POST /_lambdad/noop (the HTTP ceiling), with lambdad and loadgen pinned
     to different CPUs;
  c. "peers": the same control-plane ops and invoke against moto_server;
  d. "scale": creates/s, ListFunctions pagination, server RSS, RSS/PSS per
     warm environment, invoke p50/p99 round-robin over 1/10/100/1000 warm
     functions (ratios to one function);
  e. "writes": CreateFunction and UpdateFunctionConfiguration from 4 writer
     processes, durable (data dir, group commit) and --ephemeral;
  f. charts (gnuplot) next to the JSON.

It REPORTS and never asserts timings. Missing features (Invoke not
implemented yet, no docker engine or test image, no moto_server, no gnuplot)
become cells "not available here: <reason>". The exit status is non-zero
only when the harness itself breaks: lambdad does not start, the loadgen
cannot be built, or Invoke is implemented but every invoke errors.

Every lambdad it starts listens on 127.0.0.1 on a free port with a temporary
--data-dir and --ephemeral (except the durable writes); every process it
starts is stopped by pid.
"""
import argparse
import base64
import datetime
import http.client
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
HANDLERS = BENCH / "handlers"
SCHEMA_VERSION = 1

# Published figures: shared/reference/seed-docker-lambda-execution.md,
# "Performance Comparison" (M1 Mac), in milliseconds. The reference has one
# "Subprocess" column; it is printed beside both of our subprocess columns.
PUBLISHED = {
    "simple": {"subprocess": 15, "docker_cold": 1200, "docker_warm": 45},
    "boto3": {"subprocess": 180, "docker_cold": 1500, "docker_warm": 180},
    "complex": {"subprocess": 250, "docker_cold": 1800, "docker_warm": 260},
}
SCENARIOS = [
    # key, row label, handler module
    ("simple", "Simple return", "simple"),
    ("boto3", "With boto3", "with_boto3"),
    ("complex", "Complex handler", "complex"),
]
# bench/handlers/complex.py's deterministic result (checked on every invoke)
COMPLEX_DIGEST = "faf785d4bf802dd128593bd3a24596760d30c609ad9809087a3eda4db0aa41a3"
TEST_IMAGE = "lambdad-test/base:bookworm"
RUNTIME = "python3.12"
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
# lambdad (and moto) accept any Authorization header; the credential scope
# carries the region. A static header keeps signing cost out of the timings.
AUTH = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)


class HarnessError(Exception):
    """The harness itself broke: exit non-zero."""


class NotAvailable(Exception):
    """A feature is not available here; the cell says why."""


# probe invokes that reached an implemented Invoke and failed (exit 1 when
# no invoke ever succeeded)
BROKEN_INVOKES = []


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def na(reason):
    return {"not_available": str(reason)}


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(1, min(len(sorted_vals), int(-(-p * len(sorted_vals) // 100))))
    return sorted_vals[k - 1]


def summarize_ms(samples_s, errors=0):
    """Cell for a list of latencies in seconds: median/p99 in ms + run count."""
    v = sorted(x * 1000.0 for x in samples_s)
    if not v:
        return {"runs": 0, "errors": errors, "median_ms": None, "p99_ms": None}
    return {"runs": len(v), "errors": errors, "median_ms": round(statistics.median(v), 3),
            "p99_ms": round(pct(v, 99), 3), "min_ms": round(v[0], 3), "max_ms": round(v[-1], 3)}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------- HTTP

class Client:
    """A raw keep-alive HTTP/1.1 connection to one endpoint (not thread-safe).

    Reconnects transparently (servers that close after each response, like
    moto's werkzeug, pay the reconnect inside the measured time: that is
    what their clients pay too)."""

    def __init__(self, port, host="127.0.0.1", timeout=60):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def connect(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.connect()

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers dict lower-case, body bytes)."""
        hdrs = {"Authorization": AUTH, "X-Amz-Date": "20260101T000000Z"}
        if headers:
            hdrs.update(headers)
        for attempt in (0, 1):
            try:
                self.connect()
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                h = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    self.close()
                return r.status, h, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def q(name):
    return urllib.parse.quote(name, safe="")


def make_zip(module):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(HANDLERS / f"{module}.py", f"{module}.py")
    return base64.b64encode(buf.getvalue()).decode()


def boto3_bundle_zip():
    """handlers/with_boto3.py plus boto3 and its dependencies copied from this
    python's site-packages, botocore's data trimmed to what a Lambda client
    needs (top-level JSON files + lambda/), each module precompiled to an
    unchecked-hash .pyc (code is mounted read-only in containers, so without
    them every cold start would recompile botocore). For images without
    boto3 (the plain test image); the public.ecr.aws/lambda images ship it.
    Cached in ~/.cache/lambdad/ keyed by python and boto3 versions."""
    import importlib.util
    import py_compile
    import boto3
    tag = sys.implementation.cache_tag
    cache = Path(os.path.expanduser("~/.cache/lambdad"))
    src_mtime = os.path.getmtime(HANDLERS / "with_boto3.py")
    cached = cache / f"bench-boto3-{boto3.__version__}-{tag}-{int(src_mtime)}.zip"
    if cached.exists():
        return base64.b64encode(cached.read_bytes()).decode()
    buf = io.BytesIO()
    tmp = tempfile.mkdtemp(prefix="bench-pyc-")

    def add_py(z, path, arc):
        z.write(path, arc)
        pyc = os.path.join(tmp, "x.pyc")
        try:
            py_compile.compile(str(path), cfile=pyc, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        except py_compile.PyCompileError:
            return
        a = Path(arc)
        z.write(pyc, str(a.parent / "__pycache__" / f"{a.stem}.{tag}.pyc"))

    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        add_py(z, HANDLERS / "with_boto3.py", "with_boto3.py")
        for mod in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"):
            spec = importlib.util.find_spec(mod)
            if spec is None or spec.origin is None:
                continue
            origin = Path(spec.origin)
            if origin.name != "__init__.py":  # a single-module package (six.py)
                add_py(z, origin, origin.name)
                continue
            base = origin.parent
            for dirpath, dirnames, files in os.walk(base):
                rel = Path(dirpath).relative_to(base.parent)
                dirnames[:] = [d for d in dirnames if d != "__pycache__"]
                parts = rel.parts
                if parts[:2] == ("boto3", "data"):
                    continue
                if parts[:2] == ("botocore", "data") and len(parts) > 2 and parts[2] != "lambda":
                    continue
                for f in files:
                    if f.endswith(".py"):
                        add_py(z, os.path.join(dirpath, f), str(rel / f))
                    elif not f.endswith(".pyc"):
                        z.write(os.path.join(dirpath, f), str(rel / f))
    shutil.rmtree(tmp, ignore_errors=True)
    data = buf.getvalue()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    except OSError:
        pass
    return base64.b64encode(data).decode()


def create_body(name, module, zip_b64, env=None, role=ROLE, timeout=60, memory=512):
    body = {"FunctionName": name, "Runtime": RUNTIME, "Role": role, "Handler": f"{module}.handler",
            "Code": {"ZipFile": zip_b64}, "Timeout": timeout, "MemorySize": memory}
    if env:
        body["Environment"] = {"Variables": env}
    return json.dumps(body).encode()


def api_create(c, body):
    return c.request("POST", "/2015-03-31/functions", body, {"Content-Type": "application/json"})


def api_get(c, name):
    return c.request("GET", f"/2015-03-31/functions/{q(name)}")


def api_list(c, marker=None, max_items=None):
    qs = {}
    if marker:
        qs["Marker"] = marker
    if max_items:
        qs["MaxItems"] = str(max_items)
    path = "/2015-03-31/functions/" + ("?" + urllib.parse.urlencode(qs) if qs else "")
    return c.request("GET", path)


def api_delete(c, name):
    return c.request("DELETE", f"/2015-03-31/functions/{q(name)}")


def api_invoke(c, name, payload=b"{}"):
    # boto3 sends no Content-Type for the raw event
    return c.request("POST", f"/2015-03-31/functions/{q(name)}/invocations", payload)


def describe(status, body):
    text = body[:300].decode("utf-8", "replace").strip()
    return f"HTTP {status}: {text}"


def wait_active(c, name, limit_s=30):
    """Poll GetFunction until State is no longer Pending (bounded)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        st, _, body = api_get(c, name)
        if st != 200:
            return
        try:
            state = json.loads(body).get("Configuration", {}).get("State", "Active")
        except ValueError:
            return
        if state != "Pending":
            return
        time.sleep(0.01)


def check_result(scenario, status, headers, body):
    """None if the invoke returned what the scenario's handler returns, else
    a description of what went wrong."""
    if status != 200:
        return describe(status, body)
    if headers.get("x-amz-function-error"):
        return f"FunctionError {headers['x-amz-function-error']}: {body[:300].decode('utf-8', 'replace')}"
    try:
        r = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:100]!r}"
    if scenario == "complex":
        ok = isinstance(r, dict) and r.get("digest") == COMPLEX_DIGEST
    else:
        ok = isinstance(r, dict) and r.get("ok") is True
    return None if ok else f"unexpected result {body[:200]!r}"


# ------------------------------------------------------------------ lambdad

class Lambdad:
    """One lambdad process this harness started (stopped by pid)."""

    def __init__(self, binary, extra=(), cpus=None, tag="main", workdir=None, ephemeral=True):
        self.binary, self.extra, self.cpus, self.tag = binary, list(extra), cpus, tag
        self.ephemeral = ephemeral
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.cmd = None
        self.log_path = None

    def start(self, wait_s=20, reuse_data_dir=False):
        self.port = free_port()
        if not reuse_data_dir:
            self.data_dir = tempfile.mkdtemp(prefix=f"lambdad-bench-{self.tag}-", dir=self.workdir)
        self.cmd = [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
                    "--data-dir", self.data_dir] + (["--ephemeral"] if self.ephemeral else []) + [
                    "--log-level", "warn"] + self.extra
        if self.cpus:
            self.cmd = ["taskset", "-c", self.cpus] + self.cmd
        self.log_path = os.path.join(self.workdir, f"lambdad-{self.tag}.log")
        logf = open(self.log_path, "wb")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
        self.proc = subprocess.Popen(self.cmd, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        logf.close()
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise NotAvailable(f"lambdad ({self.tag}) exited with {self.proc.returncode} "
                                   f"at start: {self.log_tail()}")
            try:
                st, _, _ = Client(self.port, timeout=2).request("GET", "/_lambdad/health")
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise NotAvailable(f"lambdad ({self.tag}) did not answer /_lambdad/health within {wait_s} s")

    def log_tail(self, n=400):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace").strip() or "(empty log)"
        except OSError:
            return "(no log)"

    def env_pids(self):
        """Pids of warm environments per GET /_lambdad/environments."""
        st, _, body = Client(self.port).request("GET", "/_lambdad/environments")
        if st != 200:
            raise NotAvailable(f"GET /_lambdad/environments: {describe(st, body)}")
        envs = json.loads(body)
        if isinstance(envs, dict):
            envs = envs.get("environments", [])
        return [e["pid"] for e in envs if isinstance(e, dict) and e.get("pid")]

    def rss_kb(self):
        return proc_status_kb(self.proc.pid, "VmRSS")

    def restart(self):
        """SIGTERM (a clean stop: lambdad checkpoints its journals into the
        documents) and start again on the same data dir."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.start(reuse_data_dir=True)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        leftover = []
        try:
            leftover = self.env_pids()
        except Exception:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        # environments lambdad should have stopped: stop stragglers by pid
        for pid in leftover:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc = None
        shutil.rmtree(self.data_dir, ignore_errors=True)


def proc_status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ------------------------------------------------------------------- build

def newest_mtime(paths):
    m = 0.0
    for p in paths:
        for dirpath, _, files in os.walk(p):
            for f in files:
                if f.endswith((".c", ".h")):
                    m = max(m, os.path.getmtime(os.path.join(dirpath, f)))
    return m


def ensure_built(build_dir, lambdad_override):
    """Build lambdad and loadgen when missing or stale. Returns their paths."""
    build_dir = Path(build_dir)
    lambdad = Path(lambdad_override) if lambdad_override else build_dir / "lambdad"
    loadgen = build_dir / "bench" / "loadgen"
    src_time = max(newest_mtime([ROOT / d for d in ("server", "pool", "runtime")]),
                   os.path.getmtime(ROOT / "CMakeLists.txt"))
    bench_time = os.path.getmtime(BENCH / "loadgen.c")
    targets = []
    if not lambdad_override and (not lambdad.exists() or lambdad.stat().st_mtime < src_time):
        targets.append("lambdad")
    if not loadgen.exists() or loadgen.stat().st_mtime < bench_time:
        targets.append("loadgen")
    if targets:
        if not (build_dir / "CMakeCache.txt").exists():
            log(f"configuring {build_dir}")
            subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir)], check=False,
                           stdout=subprocess.DEVNULL)
        log(f"building {' '.join(targets)} in {build_dir}")
        r = subprocess.run(["cmake", "--build", str(build_dir), "-j2", "--target", *targets],
                           capture_output=True, text=True)
        if r.returncode != 0:
            log("build failed:\n" + (r.stdout + r.stderr)[-2000:])
    if not loadgen.exists():
        raise HarnessError(f"{loadgen} missing and could not be built")
    if not lambdad.exists():
        raise HarnessError(f"{lambdad} missing" + ("" if lambdad_override else " and could not be built"))
    return lambdad, loadgen


# ------------------------------------------------------------------ docker

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=5):
        super().__init__("docker", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def docker_status():
    """None when docker cells can run, else the reason they cannot."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return f"DOCKER_HOST={host} is not a unix socket (the bench checks only local engines)"
    path = host[len("unix://"):]
    try:
        c = UnixHTTPConnection(path)
        c.request("GET", "/v1.41/_ping")
        if c.getresponse().read() != b"OK":
            return "docker engine did not answer _ping"
        c.request("GET", "/v1.41/images/" + urllib.parse.quote(TEST_IMAGE, safe="") + "/json")
        r = c.getresponse()
        r.read()
        if r.status != 200:
            return f"test image {TEST_IMAGE} absent (build it with tools/build-test-image.sh)"
    except OSError as e:
        return f"docker engine not reachable at {path}: {e}"
    return None


# --------------------------------------------------------- a. reference table

def probe_invoke(c, tag):
    """Create a probe function and invoke it. Raises NotAvailable."""
    name = f"bench-probe-{tag}"
    st, _, body = api_create(c, create_body(name, "simple", make_zip("simple")))
    if st not in (200, 201):
        raise NotAvailable(f"CreateFunction {describe(st, body)}")
    wait_active(c, name)
    st, h, body = api_invoke(c, name)
    if st in (404, 405, 501):
        raise NotAvailable(f"Invoke not implemented yet ({describe(st, body)})")
    err = check_result("simple", st, h, body)
    if err:
        BROKEN_INVOKES.append(f"{tag}: {err}")
        raise NotAvailable(f"Invoke is implemented but fails here: {err}")


def time_invoke(c, name, scenario):
    t0 = time.perf_counter()
    st, h, body = api_invoke(c, name)
    dt = time.perf_counter() - t0
    return dt, check_result(scenario, st, h, body)


def measure_executor(ld, mode, n_warm, n_cold, stats, n_warm_complex):
    """Cold and warm cells of every scenario for one executor (one lambdad)."""
    c = Client(ld.port)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{ld.port}"}
    out = {}
    for key, label, module in SCENARIOS:
        zip_b64 = make_zip(module)
        cells = {}
        if key == "boto3" and mode == "docker":
            # the plain test image has no boto3: ship it in the zip
            zip_b64 = boto3_bundle_zip()
            cells["boto3_source"] = ("vendored in the function zip from the host's site-packages "
                                     "(botocore data trimmed to lambda, precompiled .pyc)")
        elif key == "boto3":
            cells["boto3_source"] = "the host python's site-packages"
        # cold: first invoke after CreateFunction, fresh function each run
        samples, errors, first_err = [], 0, None
        for i in range(n_cold):
            name = f"bench-{mode}-{key}-cold-{i}"
            st, _, body = api_create(c, create_body(name, module, zip_b64, env))
            if st not in (200, 201):
                errors += 1
                first_err = first_err or f"CreateFunction {describe(st, body)}"
                continue
            wait_active(c, name)
            c.request("GET", "/_lambdad/health")  # connection is open and warm
            dt, err = time_invoke(c, name, key)
            stats["invokes"] += 1
            if err:
                errors += 1
                stats["invoke_errors"] += 1
                first_err = first_err or err
            else:
                samples.append(dt)
            api_delete(c, name)
        cells["cold"] = summarize_ms(samples, errors)
        if first_err:
            cells["cold"]["first_error"] = first_err
        # warm: one function, first invoke discarded, then n_warm timed
        name = f"bench-{mode}-{key}-warm"
        st, _, body = api_create(c, create_body(name, module, zip_b64, env))
        samples, errors, first_err = [], 0, None
        if st not in (200, 201):
            cells["warm"] = {"error": f"CreateFunction {describe(st, body)}"}
        else:
            wait_active(c, name)
            for _ in range(3):
                _, err = time_invoke(c, name, key)
            if err:
                cells["warm"] = {"error": f"warm-up invoke failed: {err}"}
            else:
                for _ in range(n_warm if key != "complex" else n_warm_complex):
                    dt, err = time_invoke(c, name, key)
                    stats["invokes"] += 1
                    if err:
                        errors += 1
                        stats["invoke_errors"] += 1
                        first_err = first_err or err
                    else:
                        samples.append(dt)
                cells["warm"] = summarize_ms(samples, errors)
                if first_err:
                    cells["warm"]["first_error"] = first_err
        out[key] = cells
        log(f"reference {mode} {key}: cold {fmt_cell(cells['cold'])}, warm {fmt_cell(cells['warm'])}")
    c.close()
    return out


def boto3_simple_warm(port, n):
    """Simple warm invoke through a boto3 client (the SDK's own overhead)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        return na(f"boto3 not importable: {e}")
    cl = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test",
                      config=Config(retries={"max_attempts": 0}))
    name = "bench-subprocess-simple-warm"
    samples, errors = [], 0
    for i in range(n + 3):
        t0 = time.perf_counter()
        try:
            r = cl.invoke(FunctionName=name, Payload=b"{}")
            ok = r["StatusCode"] == 200 and json.loads(r["Payload"].read()) == {"ok": True}
        except Exception:
            ok = False
        dt = time.perf_counter() - t0
        if i < 3:
            continue
        if ok:
            samples.append(dt)
        else:
            errors += 1
    return summarize_ms(samples, errors)


def run_reference(binary, args, workdir, stats):
    n_warm, n_cold = (30, 3) if args.quick else (200, 10)
    # each complex invoke takes ~200 ms: quick mode takes fewer to stay under a minute
    n_warm_complex = 15 if args.quick else n_warm
    res = {"runs_warm": n_warm, "runs_warm_complex": n_warm_complex, "runs_cold": n_cold, "published_ms": PUBLISHED,
           "published_source": "shared/reference/seed-docker-lambda-execution.md, "
                               "Performance Comparison (M1 Mac)",
           "method": "client-side wall time of POST .../invocations over one raw keep-alive "
                     "http.client connection; cold = first invoke after CreateFunction "
                     "(fresh function per run, GetFunction polled until not Pending first)",
           "executors": {}}
    for mode in ("subprocess", "docker"):
        if mode == "docker":
            why = docker_status()
            if why:
                res["executors"][mode] = na(why)
                log(f"reference docker: not available here: {why}")
                continue
            extra = ["--lambda-executor", "docker", "--lambda-image", f"{RUNTIME}={TEST_IMAGE}"]
        else:
            extra = ["--lambda-executor", "subprocess"]
        ld = Lambdad(binary, extra, tag=f"ref-{mode}", workdir=workdir)
        try:
            ld.start()
        except NotAvailable as e:
            if mode == "subprocess":
                raise HarnessError(str(e))
            res["executors"][mode] = na(e)
            continue
        try:
            probe_invoke(Client(ld.port), mode)
            stats["invoke_available"] = True
            res["executors"][mode] = {"lambdad_cmd": ld.cmd,
                                      **measure_executor(ld, mode, n_warm, n_cold, stats, n_warm_complex)}
            if mode == "subprocess":
                res["boto3_client_simple_warm"] = boto3_simple_warm(ld.port, n_warm)
                log(f"reference boto3-client simple warm: {fmt_cell(res['boto3_client_simple_warm'])}")
        except NotAvailable as e:
            res["executors"][mode] = na(e)
            log(f"reference {mode}: not available here: {e}")
            if mode == "subprocess":
                stats["invoke_na_reason"] = str(e)
        finally:
            ld.stop()
    res["docker_over_subprocess_1conn"] = docker_ratio(res["executors"])
    if "boto3_client_simple_warm" not in res:
        sub = res["executors"].get("subprocess", {})
        res["boto3_client_simple_warm"] = na(sub.get("not_available", "subprocess executor unavailable"))
    return res


def docker_ratio(ex):
    """Docker / subprocess for the Simple return warm cells (one keep-alive
    connection): the issue-12 goal is <= 1.5 at the median."""
    sub, dock = ex.get("subprocess", {}), ex.get("docker", {})
    if "not_available" in dock or "not_available" in sub:
        return na(dock.get("not_available") or sub.get("not_available"))
    s, d = sub.get("simple", {}).get("warm", {}), dock.get("simple", {}).get("warm", {})
    if not s.get("median_ms") or not d.get("median_ms"):
        return na("a Simple return warm cell is missing")
    return {"median": round(d["median_ms"] / s["median_ms"], 3),
            "p99": round(d["p99_ms"] / s["p99_ms"], 3) if s.get("p99_ms") and d.get("p99_ms") else None}


# ------------------------------------------------- CPU time per request

CPU_PARTS = ("http", "executor", "lambdad_other", "runtimes", "loadgen", "idle", "steal", "rest")


def _schedstat(pid, tid):
    """(on-CPU ns, times scheduled in) of one thread, from its schedstat."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            v = f.read().split()
        return int(v[0]), int(v[2])
    except (OSError, ValueError, IndexError):
        return 0, 0


def _add_thread(acc, part, pid, tid):
    """Adds a thread's on-CPU time to acc[part] and the times it was
    scheduled in (context switches into it) to acc["switches"][part]."""
    ns, n = _schedstat(pid, tid)
    acc[part] = acc.get(part, 0) + ns
    acc["switches"][part] = acc["switches"].get(part, 0) + n


def _threads_ns(pid, acc, part):
    """_add_thread for every thread of pid."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for t in tids:
        _add_thread(acc, part, pid, t)


def _stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name (index 0 is
    the state, 1 the ppid, 11 utime, 12 stime), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return st[st.rindex(")") + 2:].split()
    except (OSError, ValueError):
        return None


def _ticks_ns(ticks):
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _process_ns(pid):
    """On-CPU time of every thread of pid, live and exited (utime + stime
    of /proc/<pid>/stat: clock-tick resolution)."""
    f = _stat_fields(pid)
    try:
        return _ticks_ns(int(f[11]) + int(f[12])) if f else 0
    except (ValueError, IndexError):
        return 0


_LAMBDAD_THREADS = {}  # lambdad pid -> [(tid, part)] of its threads that are not HTTP workers


def _lambdad_threads(pid):
    """lambdad's executor and other threads (read once per process: its
    2,048 HTTP threads are too many to read twice a second; their share is
    the process total minus these)."""
    if pid not in _LAMBDAD_THREADS:
        out = []
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if not comm.startswith("http-"):
                out.append((t, "executor" if comm.startswith("executor-") else "lambdad_other"))
        _LAMBDAD_THREADS[pid] = out
    return _LAMBDAD_THREADS[pid]


def _descendants(root):
    """Pids of every process below root (its function processes, also those
    a zygote forked)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        f = _stat_fields(d)
        try:
            ppid = int(f[1])
        except (TypeError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _idle_steal_ns():
    """The machine's idle + iowait time, and the time the hypervisor ran
    something else on its vCPUs (steal), from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    steal = int(cpu[8]) if len(cpu) > 8 else 0
    return _ticks_ns(int(cpu[4]) + int(cpu[5])), _ticks_ns(steal)


def cpu_snapshot(ld_pid, lg_pid):
    """On-CPU ns so far of lambdad's HTTP threads, its executors, its other
    threads, the processes below it (the runtimes), loadgen, and the
    machine's idle time (/proc/stat, clock-tick resolution)."""
    idle, steal = _idle_steal_ns()
    acc = {"wall": time.monotonic_ns(), "idle": idle, "steal": steal, "executor": 0,
           "lambdad_other": 0, "switches": {}}
    total = _process_ns(ld_pid)
    for tid, part in _lambdad_threads(ld_pid):
        _add_thread(acc, part, ld_pid, tid)
    acc["http"] = total - acc["executor"] - acc["lambdad_other"]
    for pid in _descendants(ld_pid):
        _threads_ns(pid, acc, "runtimes")
    _threads_ns(lg_pid, acc, "loadgen")
    return acc


def cpu_per_request(a, b, requests):
    """CPU µs per request between snapshots a and b (requests: how many were
    answered between them), by part; "steal" is vCPU time the hypervisor
    gave to others, "rest" what the machine's CPUs did besides (kernel
    threads, other processes); "busy" is neither idle nor steal."""
    if not requests:
        return None
    d = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if k != "switches"}
    capacity = d.pop("wall") * (os.cpu_count() or 1)
    out = {k: round(d.get(k, 0) / requests / 1000, 2) for k in CPU_PARTS if k != "rest"}
    out["rest"] = round((capacity - sum(d.values())) / requests / 1000, 2)
    out["busy"] = round(sum(v for k, v in out.items() if k not in ("idle", "steal")), 2)
    return out


def loadgen_run(loadgen, cpus, port, path, conns, dur, warm, body=b"{}", cpu_of=None,
                method="POST", headers=()):
    """One loadgen run. With cpu_of (lambdad's pid), the result also holds
    "cpu_us_per_request": the CPU time of each part between two snapshots
    inside the measured window (at 5% and 95% of it) divided by the requests
    answered between them (loadgen's rate times the span). Unlike requests/s this does not fall when the
    machine idles, so two builds can be compared on a noisy machine."""
    cmd = [str(loadgen), "-h", "127.0.0.1", "-p", str(port), "-P", path, "-c", str(conns),
           "-t", "1", "-d", str(dur), "-w", str(warm), "-T", "10", "-m", method, "-b", body.decode()]
    for h in headers:
        cmd += ["-H", h]
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    if cpu_of:
        _lambdad_threads(cpu_of)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    snaps = []
    sampler = None
    if cpu_of:
        def sample():
            # Inside the measured window, clear of its ends (loadgen exits
            # at the end): the window's requests are scaled to the span.
            for at in (warm + 0.05 * dur, warm + 0.95 * dur):
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                snaps.append(cpu_snapshot(cpu_of, p.pid))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    try:
        out, err = p.communicate(timeout=dur + warm + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise HarnessError("loadgen did not finish")
    if sampler:
        sampler.join(5)
    if p.returncode != 0:
        raise HarnessError(f"loadgen failed ({p.returncode}): {err.strip()[:300]}")
    r = json.loads(out)
    if len(snaps) == 2 and r.get("rps"):
        span_s = (snaps[1]["wall"] - snaps[0]["wall"]) / 1e9
        n = r["rps"] * span_s
        r["cpu_us_per_request"] = cpu_per_request(snaps[0], snaps[1], n)
        # Times the runtimes' and executors' threads were scheduled in per
        # request (schedstat): each is a sleep and a wake-up.
        a, b = snaps[0]["switches"], snaps[1]["switches"]
        r["switches_per_request"] = {k: round((b.get(k, 0) - a.get(k, 0)) / n, 2)
                                     for k in ("executor", "runtimes")}
    return r


# ------------------------------------------------------------- b. load sweep

def run_sweep(binary, loadgen, args, workdir, stats):
    ncpu = os.cpu_count() or 1
    server_cpus = loadgen_cpus = None
    if ncpu < 2 or not shutil.which("taskset") or args.pin == "none":
        pin = f"not pinned ({ncpu} CPU(s), taskset {'found' if shutil.which('taskset') else 'missing'}, --pin {args.pin})"
    elif args.pin == "split":
        server_cpus, loadgen_cpus = "0", str(ncpu - 1) if ncpu > 2 else "1"
        if ncpu > 2:
            server_cpus = f"0-{ncpu - 2}"
        pin = (f"split: lambdad and every function process it spawns (children inherit the affinity) "
               f"under taskset -c {server_cpus}; loadgen under taskset -c {loadgen_cpus} with 1 thread")
    else:
        loadgen_cpus = str(ncpu - 1)
        pin = (f"loadgen under taskset -c {loadgen_cpus} with 1 thread; lambdad and its function "
               f"processes unpinned (all {ncpu} CPUs, sharing CPU {loadgen_cpus} with loadgen)")
    # Full run: three rounds over the points, each point's figure the median
    # round, so a minute of drift on this class of machine (±15-25%) moves
    # one round, not the figure.
    dur, warm, rounds = (2, 0.25, 1) if args.quick else (4, 1, 3)
    prewarm = 1.5 if args.quick else 5
    conc = [1, 8, 64, 256, 1000]
    res = {"pinning": pin, "server_cpus": server_cpus, "loadgen_cpus": loadgen_cpus,
           "loadgen_threads": 1, "duration_s": dur, "warmup_s": warm, "rounds": rounds,
           "body": "{}", "function": "bench-trivial (handlers/simple.py)", "points": []}
    ld = Lambdad(binary, ["--lambda-executor", "subprocess"], cpus=server_cpus, tag="sweep",
                 workdir=workdir)
    try:
        ld.start()
    except NotAvailable as e:
        raise HarnessError(str(e))
    try:
        res["lambdad_cmd"] = ld.cmd
        c = Client(ld.port)
        invoke_na = None
        try:
            probe_invoke(c, "sweep")
            stats["invoke_available"] = True
            st, _, body = api_create(c, create_body("bench-trivial", "simple", make_zip("simple")))
            if st not in (200, 201):
                raise NotAvailable(f"CreateFunction {describe(st, body)}")
            wait_active(c, "bench-trivial")
            api_invoke(c, "bench-trivial")
        except NotAvailable as e:
            invoke_na = str(e)
        c.close()
        if not invoke_na:
            # let the pool start all the environments the largest point will
            # use, so every point measures a steady state, not cold starts
            loadgen_run(loadgen, loadgen_cpus, ld.port, "/2015-03-31/functions/bench-trivial/invocations",
                        conc[-1], prewarm, 0)
            res["prewarm_s"] = prewarm
        runs = {n: {"noop": [], "invoke": []} for n in conc}
        for rnd in range(rounds):
            for n in conc:
                r = runs[n]
                r["noop"].append(loadgen_run(loadgen, loadgen_cpus, ld.port, "/_lambdad/noop", n, dur,
                                             warm, cpu_of=ld.proc.pid))
                if not invoke_na:
                    inv = loadgen_run(loadgen, loadgen_cpus, ld.port,
                                      "/2015-03-31/functions/bench-trivial/invocations", n, dur, warm,
                                      cpu_of=ld.proc.pid)
                    stats["invokes"] += inv["requests"] + inv["errors"]
                    stats["invoke_errors"] += inv["errors"] + inv["non2xx"]
                    r["invoke"].append(inv)
                log(f"sweep round {rnd + 1}/{rounds} c={n}: noop {fmt_lg(r['noop'][-1])}; invoke "
                    f"{fmt_lg(r['invoke'][-1]) if r['invoke'] else 'n/a'}")
        for n in conc:
            point = {"connections": n}
            point["noop"] = median_run(runs[n]["noop"])
            if point["noop"]["requests"] == 0 or point["noop"]["non2xx"] == point["noop"]["requests"]:
                point["noop"] = {**point["noop"], "note": "noop endpoint answered no 2xx"}
            if invoke_na:
                point["invoke"] = na(invoke_na)
            else:
                point["invoke"] = median_run(runs[n]["invoke"])
                if point["noop"].get("rps"):
                    point["invoke_over_ceiling"] = round(point["invoke"]["rps"] / point["noop"]["rps"], 4)
            if rounds > 1:
                point["noop_rps_rounds"] = [round(x["rps"]) for x in runs[n]["noop"]]
                point["invoke_rps_rounds"] = [round(x["rps"]) for x in runs[n]["invoke"]]
            res["points"].append(point)
            log(f"sweep c={n} (median of {rounds}): noop {fmt_lg(point['noop'])}; "
                f"invoke {fmt_lg(point['invoke'])}")
            cpu = point["invoke"].get("cpu_us_per_request")
            if cpu:
                log(f"sweep c={n} CPU us per invoke: " + ", ".join(f"{k} {cpu[k]}" for k in cpu))
            sw = point["invoke"].get("switches_per_request")
            if sw:
                log(f"sweep c={n} threads scheduled in per invoke: " + ", ".join(f"{k} {sw[k]}" for k in sw))
        res["server_rss_kb_after"] = ld.rss_kb()
    finally:
        ld.stop()
    return res


def median_run(results):
    """The loadgen result of the median round by requests/s (lower median
    for an even count), whole, so its latencies belong to its rate."""
    ordered = sorted(results, key=lambda x: x.get("rps") or 0)
    return ordered[(len(ordered) - 1) // 2]


def fmt_lg(r):
    if "not_available" in r:
        return "n/a"
    lat = r["latency_us"]
    return (f"{r['rps']:.0f}/s p50 {lat['p50']}us p99 {lat['p99']}us p99.9 {lat['p999']}us "
            f"err {r['errors']} non2xx {r['non2xx']}")


# ------------------------------------------------------------------ c. peers

def start_moto(workdir):
    exe = shutil.which("moto_server")
    if not exe:
        raise NotAvailable("moto_server not on PATH (pip install 'moto[server]')")
    port = free_port()
    logf = open(os.path.join(workdir, "moto.log"), "wb")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=logf,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    logf.close()
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise NotAvailable(f"moto_server exited with {proc.returncode}")
        try:
            st, _, _ = Client(port, timeout=2).request("GET", "/moto-api/")
            if st < 500:
                break
        except OSError:
            time.sleep(0.1)
    else:
        stop_proc(proc)
        raise NotAvailable("moto_server did not start within 30 s")
    return proc, port


def stop_proc(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def moto_setup(port):
    """Switch moto to its docker-less Lambda backend and create an IAM role.

    Without this, moto 5 (use_docker=true, the default) tries to pull images
    (busybox, then the lambda image) from Docker Hub on every Invoke, which
    has no network here and would reach outside the machine. Returns
    (role ARN, description of what moto's Invoke executes)."""
    c = Client(port)
    st, _, body = c.request("POST", "/moto-api/config", json.dumps({"lambda": {"use_docker": False}}).encode(),
                            {"Content-Type": "application/json"})
    if st >= 300:
        raise NotAvailable(f"moto /moto-api/config: {describe(st, body)}")
    form = urllib.parse.urlencode({"Action": "CreateRole", "Version": "2010-05-08", "RoleName": "bench",
                                   "AssumeRolePolicyDocument": json.dumps({"Version": "2012-10-17",
                                                                           "Statement": []})})
    st, _, body = c.request("POST", "/", form.encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": AUTH.replace("/lambda/", "/iam/")})
    text = body.decode("utf-8", "replace")
    if "<Arn>" not in text:
        raise NotAvailable(f"moto CreateRole: {describe(st, body)}")
    role = text.split("<Arn>")[1].split("</Arn>")[0]
    return role


def control_plane_ops(port, n, role, invoke_ok):
    """create/get/list/delete xN and invoke xN against one endpoint; returns
    {op: cell} and what one invoke returned."""
    c = Client(port)
    zip_b64 = make_zip("simple")
    times = {k: [] for k in ("CreateFunction", "GetFunction", "ListFunctions", "Invoke", "DeleteFunction")}
    errs = {k: 0 for k in times}
    first = {}
    names = [f"bench-peer-{i}" for i in range(n)]

    def timed(op, fn, ok=(200, 201, 204)):
        t0 = time.perf_counter()
        st, h, body = fn()
        dt = time.perf_counter() - t0
        if st in ok and not h.get("x-amz-function-error"):
            times[op].append(dt)
        else:
            errs[op] += 1
            first.setdefault(op, describe(st, body))
        return st, h, body

    for name in names:
        timed("CreateFunction", lambda: api_create(c, create_body(name, "simple", zip_b64, role=role)))
    for name in names:
        timed("GetFunction", lambda: api_get(c, name))
    for _ in names:
        timed("ListFunctions", lambda: api_list(c))
    sample = None
    if invoke_ok:
        api_invoke(c, names[0], b'{"bench": 1}')  # first (cold) invoke not timed
        for _ in names:
            _, _, body = timed("Invoke", lambda: api_invoke(c, names[0], b'{"bench": 1}'))
            sample = body[:200].decode("utf-8", "replace")
    for name in names:
        timed("DeleteFunction", lambda: api_delete(c, name))
    c.close()
    out = {}
    for op in times:
        if op == "Invoke" and not invoke_ok:
            continue
        out[op] = summarize_ms(times[op], errs[op])
        if op in first:
            out[op]["first_error"] = first[op]
    return out, sample


def run_peers(binary, args, workdir, stats):
    n = 20 if args.quick else 100
    res = {"ops_per_op": n, "method": "raw keep-alive http.client, static Authorization header; "
           "ListFunctions lists the N functions; Invoke repeats one function warm "
           "(its first invoke not timed)", "lambdad": {}, "moto": {}}
    ld = Lambdad(binary, ["--lambda-executor", "subprocess"], tag="peers", workdir=workdir)
    try:
        ld.start()
    except NotAvailable as e:
        raise HarnessError(str(e))
    try:
        invoke_ok = True
        try:
            probe_invoke(Client(ld.port), "peers")
            stats["invoke_available"] = True
        except NotAvailable as e:
            invoke_ok = False
            res["lambdad_invoke"] = na(e)
        ops, sample = control_plane_ops(ld.port, n, ROLE, invoke_ok)
        res["lambdad"] = ops
        if not invoke_ok:
            res["lambdad"]["Invoke"] = na(res["lambdad_invoke"]["not_available"])
        res["lambdad_invoke_executes"] = "the handler (handlers/simple.py) in a warm subprocess environment"
        res["lambdad_invoke_sample"] = sample
    finally:
        ld.stop()
    try:
        proc, port = start_moto(workdir)
    except NotAvailable as e:
        res["moto"] = na(e)
        return res
    try:
        import moto
        res["moto_version"] = getattr(moto, "__version__", "?")
    except ImportError:
        res["moto_version"] = "?"
    try:
        role = moto_setup(port)
        ops, sample = control_plane_ops(port, n, role, True)
        res["moto"] = ops
        res["moto_invoke_sample"] = sample
        echoed = sample is not None and json.loads(sample or "null") == {"bench": 1}
        res["moto_invoke_executes"] = (
            "nothing: moto's docker-less Lambda backend (config lambda.use_docker=false, "
            "LambdaSimpleBackend) does not run the handler; Invoke returns the request payload "
            "back as the result (or 'Simple Lambda happy path OK' for an empty payload). "
            "With use_docker=true (moto's default) it tries to pull images from Docker Hub "
            "per invoke and, offline, returns FunctionError=Handled 'error running docker'."
            + ("" if echoed else f" (observed here: {sample!r})"))
    except NotAvailable as e:
        res["moto"] = na(e)
    finally:
        stop_proc(proc)
    return res


# ------------------------------------------------------------------ d. scale

def parallel_create(port, names, zip_b64, threads=4):
    """CreateFunction for every name using `threads` keep-alive connections.
    Returns (seconds, errors, first error)."""
    chunks = [names[i::threads] for i in range(threads)]
    errs = [0] * threads
    first = [None] * threads

    def work(i):
        c = Client(port)
        for name in chunks[i]:
            st, _, body = api_create(c, create_body(name, "simple", zip_b64))
            if st not in (200, 201):
                errs[i] += 1
                first[i] = first[i] or describe(st, body)
        c.close()

    t0 = time.perf_counter()
    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0, sum(errs), next((f for f in first if f), None)


def run_scale(binary, args, workdir, stats):
    total = 500 if args.quick else 10000
    warm_sets = [1, 10, 100] if args.quick else [1, 10, 100, 1000]
    rr_invokes = 60 if args.quick else 600
    res = {"functions": total, "create_threads": 4, "rss_source": "/proc/<pid>/status VmRSS"}
    # one environment per warm function: the round robin must never evict
    ld = Lambdad(binary, ["--lambda-executor", "subprocess", "--lambda-max-containers",
                          str(max(256, warm_sets[-1] + 64))],
                 tag="scale", workdir=workdir)
    try:
        ld.start()
    except NotAvailable as e:
        raise HarnessError(str(e))
    try:
        res["lambdad_cmd"] = ld.cmd
        time.sleep(0.3)
        rss = [{"functions": 0, "rss_kb": ld.rss_kb()}]
        zip_b64 = make_zip("simple")
        names = [f"bench-scale-{i:05d}" for i in range(total)]
        first_batch = names[:min(1000, total)]
        dt1, e1, f1 = parallel_create(ld.port, first_batch, zip_b64)
        rss.append({"functions": len(first_batch), "rss_kb": ld.rss_kb()})
        dt2, e2, f2 = parallel_create(ld.port, names[len(first_batch):], zip_b64) if total > 1000 else (0, 0, None)
        if total > 1000:
            rss.append({"functions": total, "rss_kb": ld.rss_kb()})
        res["server_rss"] = rss
        created = total - e1 - e2
        res["create"] = {"requested": total, "errors": e1 + e2, "seconds": round(dt1 + dt2, 3),
                         "creates_per_s": round(created / (dt1 + dt2), 1) if created else None}
        if f1 or f2:
            res["create"]["first_error"] = f1 or f2
        log(f"scale: {created}/{total} created in {dt1 + dt2:.2f} s; RSS {rss}")
        if created == 0:
            res["create"] = na(f"CreateFunction failed: {f1 or f2}")
            return res
        # ListFunctions full pagination
        c = Client(ld.port)
        t0 = time.perf_counter()
        marker, pages, seen, err = None, 0, 0, None
        while pages < 100000:
            st, _, body = api_list(c, marker)
            pages += 1
            if st != 200:
                err = describe(st, body)
                break
            d = json.loads(body)
            seen += len(d.get("Functions", []))
            marker = d.get("NextMarker")
            if not marker:
                break
        dt = time.perf_counter() - t0
        res["list_pagination"] = {"seconds": round(dt, 4), "pages": pages, "functions_seen": seen}
        if err:
            res["list_pagination"]["error"] = err
        log(f"scale: ListFunctions {seen} functions in {pages} pages, {dt * 1000:.1f} ms")
        # warm environments and round-robin invoke latency
        try:
            probe_invoke(c, "scale")
            stats["invoke_available"] = True
        except NotAvailable as e:
            res["round_robin"] = na(e)
            res["env_memory"] = na(e)
            return res
        res["round_robin"] = []
        for k in warm_sets:
            fns = names[:k]
            warm_all(ld.port, fns)  # first invoke of each: cold, untimed
            # For k > 1 every round-robin invoke is paired with one of the
            # first function, so the reference is measured in the same
            # seconds (the machine's speed drifts between the sets).
            samples, ref, errors = [], [], {"rr": 0, "ref": 0}

            def timed(fn, out, kind):
                dt, e = time_invoke(c, fn, "simple")
                stats["invokes"] += 1
                if e:
                    errors[kind] += 1
                    stats["invoke_errors"] += 1
                else:
                    out.append(dt)

            steal0 = _idle_steal_ns()[1]
            t0 = time.monotonic_ns()
            for i in range(max(rr_invokes, 2 * k)):
                timed(fns[i % k], samples, "rr")
                if k > 1:
                    timed(names[0], ref, "ref")
            cell = {"warm_functions": k, **summarize_ms(samples, errors["rr"])}
            # vCPU time the hypervisor gave to others while the set ran (its
            # p99 is the first figure a busy host moves)
            cell["host_steal_pct"] = round(100 * (_idle_steal_ns()[1] - steal0) /
                                           ((time.monotonic_ns() - t0) * (os.cpu_count() or 1)), 2)
            one = cell
            if k > 1:
                one = cell["one_function_same_window"] = summarize_ms(ref, errors["ref"])
            if one.get("median_ms") and cell.get("median_ms"):
                # issue-12 goal: within 1.3x of one function at p50 and p99
                compare_with_one(cell, one, added=k > 1)
            res["round_robin"].append(cell)
            log(f"scale: round-robin over {k} warm functions: {fmt_cell(cell)}, "
                f"host steal {cell['host_steal_pct']}%")
            if k == 10:
                res["env_memory"] = env_memory(ld)
            if k == 100:
                res["env_memory_after_100"] = env_memory(ld)
        if warm_sets[-1] > 100:
            res["env_memory_after_1000"] = env_memory(ld)
        res["server_rss"].append({"functions": total, "warm_envs": len(ld.env_pids()),
                                  "rss_kb": ld.rss_kb()})
        c.close()
    finally:
        ld.stop()
    if isinstance(res.get("round_robin"), list):
        res["round_robin_floor"] = round_robin_floor(warm_sets, rr_invokes)
        for cell in res["round_robin_floor"]:
            log(f"scale: round-robin floor over {cell['processes']} bare processes: {fmt_cell(cell)}")
    return res


def compare_with_one(cell, one, added=True):
    """A round-robin cell against its paired one-function (or one-process)
    cell: p50/p99 ratios and, with added, what the set adds at p50."""
    cell["p50_over_one"] = round(cell["median_ms"] / one["median_ms"], 3)
    cell["p99_over_one"] = round(cell["p99_ms"] / one["p99_ms"], 3)
    if added:
        cell["p50_added_ms"] = round(cell["median_ms"] - one["median_ms"], 3)


# A bare Python process answering JSON over pipes: the least an invoke of
# one of k idle processes can cost, with no lambdad in the way.
_FLOOR_CHILD = r"""
import os, json
while True:
    b = os.read(0, 65536)
    if not b:
        break
    json.loads(b)
    os.write(1, json.dumps({"ok": True}).encode())
"""


def round_robin_floor(warm_sets, rr_invokes):
    """The round robin of run_scale, paired the same way, over k bare
    Python processes instead of k warm functions (a JSON echo over pipes, no
    lambdad, no HTTP): how much of a set's ratio is this machine waking one
    of k idle processes whose caches went cold."""
    procs, out = [], []

    def call(p):
        t0 = time.perf_counter()
        os.write(p.stdin.fileno(), b"{}")
        if not os.read(p.stdout.fileno(), 65536):
            raise HarnessError("a floor process exited")
        return time.perf_counter() - t0

    try:
        for k in warm_sets:
            while len(procs) < k:
                procs.append(subprocess.Popen([sys.executable, "-S", "-c", _FLOOR_CHILD],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              bufsize=0))
            for p in procs:
                call(p)  # started and warm, untimed
            samples, ref = [], []
            for i in range(max(rr_invokes, 2 * k)):
                samples.append(call(procs[i % k]))
                if k > 1:
                    ref.append(call(procs[0]))
            cell = {"processes": k, **summarize_ms(samples)}
            if k > 1:
                one = cell["one_process_same_window"] = summarize_ms(ref)
                compare_with_one(cell, one)
            out.append(cell)
    except (OSError, HarnessError) as e:
        return na(f"floor processes: {e}")
    finally:
        for p in procs:
            p.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
    return out


# ------------------------------------------------------------ e. writes

def _writer_proc(port, op, names, zip_b64, q):
    """One writer process (no GIL shared with the others): CreateFunction or
    UpdateFunctionConfiguration for each name over one keep-alive connection."""
    c = Client(port)
    errs, first = 0, None
    for i, name in enumerate(names):
        if op == "create":
            st, _, body = api_create(c, create_body(name, "simple", zip_b64))
        else:
            cfg = {"Timeout": 3 + i % 50, "Environment": {"Variables": {"BENCH_SEQ": str(i)}}}
            st, _, body = c.request("PUT", f"/2015-03-31/functions/{name}/configuration",
                                    json.dumps(cfg).encode(), {"Content-Type": "application/json"})
        if st not in (200, 201):
            errs += 1
            first = first or describe(st, body)
    c.close()
    q.put((errs, first))


def parallel_writes(port, op, names, zip_b64, writers=4):
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    ps = [ctx.Process(target=_writer_proc, args=(port, op, names[i::writers], zip_b64, q))
          for i in range(writers)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    got = [q.get(timeout=600) for _ in ps]
    dt = time.perf_counter() - t0
    for p in ps:
        p.join(10)
    errs = sum(g[0] for g in got)
    cell = {"requested": len(names), "errors": errs, "seconds": round(dt, 3),
            "per_s": round((len(names) - errs) / dt, 1) if dt > 0 else None}
    first = next((g[1] for g in got if g[1]), None)
    if first:
        cell["first_error"] = first
    return cell


def _c_client_writes(loadgen, port, path, dur, warm, body, method, client):
    """One write figure from 4 loadgen connections (C): the loadgen result
    cut to what the writes report keeps, and who wrote."""
    r = loadgen_run(loadgen, None, port, path, 4, dur, warm, body=body, method=method,
                    headers=("Content-Type: application/json",))
    cell = {k: r.get(k) for k in ("requests", "errors", "non2xx", "rps", "latency_us")}
    cell["client"] = client
    return cell


def c_client_updates(loadgen, port, dur, warm):
    """UpdateFunctionConfiguration from 4 loadgen connections (C, one
    keep-alive connection per function bench-w-00000..3): the server's write
    rate without the Python clients' ~170 µs of CPU per request."""
    return _c_client_writes(loadgen, port, "/2015-03-31/functions/bench-w-0000{c}/configuration",
                            dur, warm, b'{"Timeout": 7}', "PUT",
                            "bench/loadgen, 4 connections, 1 thread, one function per connection")


def c_client_creates(loadgen, port, dur, warm, zip_b64):
    """CreateFunction from 4 loadgen connections (C): every request a new
    function bench-c-<8 digits> (loadgen's {n} sequence in the body), the
    same small zip as the Python writers."""
    return _c_client_writes(loadgen, port, "/2015-03-31/functions", dur, warm,
                            create_body("bench-c-{n}", "simple", zip_b64), "POST",
                            "bench/loadgen, 4 connections, 1 thread, a new function per request")


def fmt_c_writes(cc):
    """A C-client write figure in one line (log and report)."""
    return (f"{cc['rps']:.0f}/s, p50 {cc['latency_us']['p50']} us, {cc['errors']} errors, "
            f"{cc['non2xx']} non-2xx")


def sustained_updates(ld, nf, zip_b64):
    """20 UpdateFunctionConfiguration of each of nf new functions from the 4
    writer processes (~24 MB of journal for 1,000: more than one journal
    checkpoint, which the 4,000-change cells may end before). The functions
    are created first and a durable lambdad restarted (its clean stop
    checkpoints), so no checkpoint owed by earlier cells (their new
    documents) lands in this one."""
    names = [f"bench-s-{i:05d}" for i in range(nf)]
    setup = parallel_writes(ld.port, "create", names, zip_b64)
    if setup["errors"]:
        raise HarnessError(f"sustained writes set-up: {setup.get('first_error')}")
    if not ld.ephemeral:
        ld.restart()
    cell = parallel_writes(ld.port, "update", names * 20, zip_b64)
    cell["functions"] = nf
    return cell


def fmt_sustained(c):
    return f"x{c['requested']} over {c['functions']} functions: {c['per_s']}/s, {c['errors']} errors"


def flush_latency(directory, n=200):
    """This disk's fdatasync latency in `directory` (where the durable
    lambdad keeps its journal): 1,150 bytes overwritten in a pre-written
    file, then fdatasync, back to back and after the device sat idle for
    200 us (a busy-wait, so the CPU does not sleep either). On the VMs of
    the README a flush after even 100-200 us of idleness costs ~10x one
    issued back to back: closed-loop writers that think between changes
    (the Python writers) pay the slow one, C clients mostly the fast one."""
    path = os.path.join(directory, "bench-flush-probe")
    out = {"bytes_per_write": 1150, "writes": n}
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.pwrite(fd, b"\0" * (1 << 20), 0)
        os.fsync(fd)
        for key, gap_s in (("back_to_back", 0.0), ("after_200us_idle", 200e-6)):
            ts = []
            for i in range(n):
                if gap_s:
                    t0 = time.perf_counter()
                    while time.perf_counter() - t0 < gap_s:
                        pass
                os.pwrite(fd, b"x" * 1150, (i * 1150) % (1 << 20))
                t = time.perf_counter()
                os.fdatasync(fd)
                ts.append(time.perf_counter() - t)
            ts.sort()
            out[key] = {"p50_us": round(ts[n // 2] * 1e6, 1), "p90_us": round(ts[n * 9 // 10] * 1e6, 1)}
    finally:
        os.close(fd)
        os.unlink(path)
    return out


def run_writes(binary, loadgen, args, workdir, stats):
    """CreateFunction then UpdateFunctionConfiguration from 4 concurrent
    writer processes, each on its own keep-alive connection: with the data
    dir (every answer only after its change is durable: group commit) and,
    for comparison, --ephemeral. Issue-12 goal: >= 5,000/s durable."""
    n = 400 if args.quick else 4000
    res = {"writers": 4, "writer_kind": "processes (one keep-alive connection each)",
           "requests_per_op": n}
    zip_b64 = make_zip("simple")
    try:
        res["disk_flush"] = flush_latency(workdir)
        f = res["disk_flush"]
        log(f"writes: disk flush (fdatasync) p50 {f['back_to_back']['p50_us']} us back to back, "
            f"{f['after_200us_idle']['p50_us']} us after 200 us idle")
    except OSError as e:
        res["disk_flush"] = na(f"flush probe: {e}")
    for mode in ("durable", "ephemeral"):
        ld = Lambdad(binary, ["--lambda-executor", "subprocess"], tag=f"writes-{mode}",
                     workdir=workdir, ephemeral=(mode == "ephemeral"))
        try:
            ld.start()
        except NotAvailable as e:
            raise HarnessError(str(e))
        try:
            names = [f"bench-w-{i:05d}" for i in range(n)]
            out = {"lambdad_cmd": ld.cmd}
            out["create"] = parallel_writes(ld.port, "create", names, zip_b64)
            out["update_configuration"] = parallel_writes(ld.port, "update", names, zip_b64)
            out["update_configuration_c_clients"] = c_client_updates(
                loadgen, ld.port, 1 if args.quick else 3, 0.25)
            out["create_c_clients"] = c_client_creates(
                loadgen, ld.port, 1 if args.quick else 3, 0.25, zip_b64)
            out["update_configuration_sustained"] = sustained_updates(ld, 100 if args.quick else 1000,
                                                                      zip_b64)
            res[mode] = out
            cc = out["update_configuration_c_clients"]
            ccr = out["create_c_clients"]
            log(f"writes {mode}: CreateFunction {out['create']['per_s']}/s "
                f"({out['create']['errors']} errors), UpdateFunctionConfiguration "
                f"{out['update_configuration']['per_s']}/s ({out['update_configuration']['errors']} errors); "
                f"C clients: UpdateFunctionConfiguration {fmt_c_writes(cc)}; "
                f"CreateFunction {fmt_c_writes(ccr)}; sustained UpdateFunctionConfiguration "
                f"{fmt_sustained(out['update_configuration_sustained'])}")
        finally:
            ld.stop()
    return res


def warm_all(port, names, threads=4):
    """Invoke every function once (untimed), from several connections."""
    def work(part):
        c = Client(port)
        for name in part:
            api_invoke(c, name)
        c.close()
    ts = [threading.Thread(target=work, args=(names[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def env_memory(ld):
    try:
        pids = ld.env_pids()
    except NotAvailable as e:
        return na(e)
    rss = [proc_status_kb(p, "VmRSS") for p in pids]
    pss = [proc_pss_kb(p) for p in pids]
    rss = [x for x in rss if x]
    pss = [x for x in pss if x]
    out = {"environments": len(pids),
           "rss_kb_per_env": round(sum(rss) / len(rss)) if rss else None,
           "pss_kb_per_env": round(sum(pss) / len(pss)) if pss else None,
           "method": "sum of VmRSS (/proc/<pid>/status) and of Pss (/proc/<pid>/smaps_rollup) "
                     "over the pids of GET /_lambdad/environments, divided by their count"}
    log(f"scale: {out['environments']} envs, RSS/env {out['rss_kb_per_env']} kB, "
        f"PSS/env {out['pss_kb_per_env']} kB")
    return out


# ------------------------------------------------------------------ output

def fmt_ms(v):
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 10:
        return f"{v:.0f} ms"
    return f"{v:.2f} ms"


def fmt_cell(cell):
    if cell is None:
        return "-"
    if "not_available" in cell:
        return "not available here: " + cell["not_available"]
    if "error" in cell:
        return "error: " + cell["error"]
    if not cell.get("runs"):
        return f"no successful run ({cell.get('errors', 0)} errors: {cell.get('first_error', '')[:80]})"
    s = f"{fmt_ms(cell['median_ms'])} / p99 {fmt_ms(cell['p99_ms'])} (n={cell['runs']}"
    if cell.get("errors"):
        s += f", {cell['errors']} err"
    return s + ")"


def human_report(r):
    L = []
    la = r["host"].get("loadavg_start") or (0, 0, 0)
    L.append(f"lambdad benchmark — {r['date']} on {r['host']['hostname']} "
             f"({r['host']['cpus']} CPUs, python {r['host']['python']}, load average at start "
             f"{la[0]:.2f}){' [quick]' if r['quick'] else ''}")
    L.append(f"(machine speed now: the Complex handler's work takes {r['host'].get('complex_inprocess_ms')} ms "
             f"in a plain python3 process here; calibrated at ~196 ms on an idle machine)")
    L.append("")
    ref = r["reference"]
    L.append("a. Reference table (ours: median / p99 (runs); published: M1 Mac, "
             "shared/reference/seed-docker-lambda-execution.md)")
    ex = ref.get("executors", {}) if isinstance(ref, dict) else {}
    notes = []

    def short(cell):
        """Compact cell text; reasons for n/a go to numbered notes."""
        if cell is None:
            return "-"
        why = cell.get("not_available") or cell.get("error")
        if why:
            if why not in notes:
                notes.append(why)
            return f"n/a [{notes.index(why) + 1}]"
        if not cell.get("runs"):
            return short({"error": f"no successful run: {cell.get('first_error', '')}"})
        t = f"{fmt_ms(cell['median_ms'])}/{fmt_ms(cell['p99_ms'])} n={cell['runs']}"
        return t + (f" err={cell['errors']}" if cell.get("errors") else "")

    cols = [("subprocess", "cold"), ("subprocess", "warm"), ("docker", "cold"), ("docker", "warm")]
    L.append(f"  {'':<16} {'Subprocess cold':<24} {'Subprocess warm':<24} {'Docker cold':<24} "
             f"{'Docker warm':<24} published: Subprocess | Docker cold | Docker warm")
    for key, label, _ in SCENARIOS:
        pub = PUBLISHED[key]
        cells = []
        for mode, temp in cols:
            m = ref if "not_available" in ref else ex.get(mode, {})
            cells.append(short(m if "not_available" in m else m.get(key, {}).get(temp)))
        L.append(f"  {label:<16} " + " ".join(f"{c:<24}" for c in cells) +
                 f" {fmt_ms(pub['subprocess'])} | {fmt_ms(pub['docker_cold'])} | {fmt_ms(pub['docker_warm'])}")
    L.append("  (cells: median/p99 n=runs)")
    b3 = ex.get("docker", {}).get("boto3", {}).get("boto3_source") if isinstance(ex.get("docker"), dict) else None
    if b3:
        L.append(f"  Docker With boto3: boto3 {b3}")
    L.append(f"  boto3 client, Simple return warm (includes the SDK's own overhead): "
             f"{short(ref.get('boto3_client_simple_warm', ref))}")
    dr = ref.get("docker_over_subprocess_1conn")
    if isinstance(dr, dict) and "median" in dr:
        L.append(f"  Docker / subprocess, Simple return warm at 1 connection: median {dr['median']}x, "
                 f"p99 {dr.get('p99')}x (goal <= 1.5x)")
    L.append("")
    sw = r["sweep"]
    L.append("")
    if "not_available" in sw:
        L.append("b. Load sweep: " + short(sw))
    else:
        rounds = sw.get("rounds", 1)
        L.append(f"b. Load sweep ({sw.get('duration_s')} s per point after {sw.get('warmup_s')} s warm-up"
                 + (f", median of {rounds} rounds" if rounds > 1 else "") + "; latencies in µs)")
        L.append(f"   pinning: {sw.get('pinning')}")
        L.append(f"  {'conns':>5}  {'noop rps':>9} {'p50':>6} {'p99':>6} {'p99.9':>6}   "
                 f"{'invoke rps':>10} {'p50':>6} {'p99':>6} {'p99.9':>6}  {'inv/ceil':>8}")
        for p in sw.get("points", []):
            no, inv = p["noop"], p["invoke"]
            lat = no["latency_us"]
            line = f"  {p['connections']:>5}  {no['rps']:>9.0f} {lat['p50']:>6} {lat['p99']:>6} {lat['p999']:>6}   "
            if "not_available" in inv:
                line += f"{short(inv):>10}"
            else:
                il = inv["latency_us"]
                line += (f"{inv['rps']:>10.0f} {il['p50']:>6} {il['p99']:>6} {il['p999']:>6}  "
                         f"{p.get('invoke_over_ceiling', 0):>8.3f}")
                if inv["errors"] or inv["non2xx"]:
                    line += f"  (errors {inv['errors']}, non-2xx {inv['non2xx']})"
            if no["errors"] or no["non2xx"]:
                line += f"  (noop errors {no['errors']}, non-2xx {no['non2xx']})"
            if p.get("invoke_rps_rounds"):
                line += f"  rounds: {'/'.join(str(x) for x in p['invoke_rps_rounds'])}"
            L.append(line)
    L.append("")
    pe = r["peers"]
    if "not_available" in pe:
        L.append("c. Peers: " + short(pe))
    else:
        L.append(f"c. Peers: lambdad vs moto_server {pe.get('moto_version', '')} "
                 f"({pe.get('ops_per_op')} ops each; median/p99 n=runs)")
        mo = pe.get("moto", {})
        for op in ("CreateFunction", "GetFunction", "ListFunctions", "Invoke", "DeleteFunction"):
            lc = pe.get("lambdad", {}).get(op)
            mc = mo if "not_available" in mo else mo.get(op)
            L.append(f"  {op:<15} lambdad {short(lc):<30} moto {short(mc)}")
        if pe.get("moto_invoke_executes"):
            L.append(f"  moto Invoke executes: {pe['moto_invoke_executes']}")
        if "not_available" not in pe.get("lambdad", {}).get("Invoke", {"not_available": 1}):
            L.append(f"  lambdad Invoke executes: {pe.get('lambdad_invoke_executes', '-')}")
    L.append("")
    sc = r["scale"]
    L.append("d. Scale and memory")
    if "not_available" in sc:
        L.append("  " + short(sc))
    else:
        cr = sc.get("create", {})
        if "not_available" in cr:
            L.append("  CreateFunction: " + short(cr))
        else:
            L.append(f"  CreateFunction x{cr.get('requested')} ({sc.get('create_threads')} threads): "
                     f"{cr.get('creates_per_s')} creates/s, {cr.get('errors')} errors")
        lp = sc.get("list_pagination")
        if lp:
            L.append(f"  ListFunctions full pagination: {lp['functions_seen']} functions, {lp['pages']} pages, "
                     f"{lp['seconds'] * 1000:.1f} ms")
        for x in sc.get("server_rss", []):
            extra = f", {x['warm_envs']} warm envs" if "warm_envs" in x else ""
            L.append(f"  server RSS with {x['functions']} functions{extra}: {x['rss_kb']} kB")
        for k in ("env_memory", "env_memory_after_100", "env_memory_after_1000"):
            em = sc.get(k)
            if em and k == "env_memory_after_100" and em == sc.get("env_memory"):
                continue
            if em and "not_available" in em:
                L.append(f"  memory per warm environment: {short(em)}")
            elif em:
                L.append(f"  per warm Python environment ({em['environments']} envs): RSS {em['rss_kb_per_env']} kB, "
                         f"PSS {em['pss_kb_per_env']} kB")
        rr = sc.get("round_robin")
        if isinstance(rr, dict):
            L.append("  invoke round-robin over warm functions: " + short(rr))
        elif rr:
            for cell in rr:
                ref = cell.get("one_function_same_window")
                ref = f", paired: {short(ref)}" if ref else ""
                ratio = (f"  ({cell['p50_over_one']}x / {cell['p99_over_one']}x of one function{ref}"
                         + (f", p50 +{cell['p50_added_ms']} ms" if "p50_added_ms" in cell else "") + ")"
                         if "p50_over_one" in cell else "")
                steal = (f" [host steal {cell['host_steal_pct']}%]"
                         if cell.get("host_steal_pct") is not None else "")
                L.append(f"  invoke round-robin over {cell['warm_functions']:>4} warm functions: "
                         f"{short(cell)}{ratio}{steal}")
        fl = sc.get("round_robin_floor")
        if isinstance(fl, dict):
            L.append("  round-robin floor (bare processes): " + short(fl))
        elif fl:
            for cell in fl:
                ratio = (f"  ({cell['p50_over_one']}x / {cell['p99_over_one']}x of one process, "
                         f"p50 +{cell['p50_added_ms']} ms)" if "p50_over_one" in cell else "")
                L.append(f"  floor: round-robin over {cell['processes']:>4} bare Python processes "
                         f"(pipes, no lambdad): {short(cell)}{ratio}")
    L.append("")
    wr = r.get("writes", {})
    L.append("e. Writes: 4 concurrent writer processes")
    if "not_available" in wr:
        L.append("  " + short(wr))
    else:
        f = wr.get("disk_flush", {})
        if "back_to_back" in f:
            L.append(f"  disk flush (fdatasync of {f['bytes_per_write']} bytes in the data dir's file system), p50 / p90: "
                     f"back to back {f['back_to_back']['p50_us']:.0f} / {f['back_to_back']['p90_us']:.0f} us, "
                     f"after 200 us idle {f['after_200us_idle']['p50_us']:.0f} / {f['after_200us_idle']['p90_us']:.0f} us")
        for mode in ("durable", "ephemeral"):
            m = wr.get(mode, {})
            for op in ("create", "update_configuration"):
                c = m.get(op)
                if c:
                    L.append(f"  {mode:<9} {op:<21} x{c['requested']}: {c['per_s']}/s, "
                             f"{c['errors']} errors")
            c = m.get("update_configuration_sustained")
            if c:
                L.append(f"  {mode:<9} {'update_configuration':<21} sustained {fmt_sustained(c)}")
            for op, key in (("update_configuration", "update_configuration_c_clients"),
                            ("create", "create_c_clients")):
                cc = m.get(key)
                if cc and cc.get("rps") is not None:
                    L.append(f"  {mode:<9} {op:<21} 4 C connections: {fmt_c_writes(cc)}")
    L.append("")
    for i, why in enumerate(notes):
        L.append(f"[{i + 1}] not available here: {why}")
    ch = r.get("charts", {})
    for k, v in ch.items():
        L.append(f"chart {k}: {v}")
    return "\n".join(L)


# ------------------------------------------------------------------ charts

def charts(r, stem):
    """Write <stem>-sweep.png and <stem>-reference.png with gnuplot."""
    gp = shutil.which("gnuplot")
    if not gp:
        return {"sweep": "not available here: gnuplot not installed (apt-get install gnuplot-nox)",
                "reference": "not available here: gnuplot not installed (apt-get install gnuplot-nox)"}
    out = {}
    d = tempfile.mkdtemp(prefix="bench-charts-")
    try:
        # sweep: conns, noop rps, invoke rps, noop p99, invoke p99, ratio
        points = r["sweep"].get("points", []) if isinstance(r["sweep"], dict) else []
        if not points:
            out["sweep"] = "not available here: the sweep did not run"
        has_inv = any("not_available" not in p["invoke"] for p in points)
        rows = []
        for p in points:
            no, inv = p["noop"], p["invoke"]
            ok = "not_available" not in inv
            rows.append(f"{p['connections']} {no['rps']} {inv['rps'] if ok else '?'} "
                        f"{max(no['latency_us']['p99'], 1)} {max(inv['latency_us']['p99'], 1) if ok else '?'} "
                        f"{p.get('invoke_over_ceiling', '?')}")
        with open(f"{d}/sweep.dat", "w") as f:
            f.write("\n".join(rows) + "\n")
        png = f"{stem}-sweep.png"
        sw = r["sweep"]
        pin = ((f"lambdad on CPU {sw['server_cpus']}" if sw.get("server_cpus") else "lambdad unpinned")
               + (f", loadgen (1 thread) on CPU {sw['loadgen_cpus']}" if sw.get("loadgen_cpus")
                  else ", loadgen unpinned"))
        inv_na = "" if has_inv else " (Invoke not available here)"
        inv_rps = ', "" using 1:3 with linespoints lw 2 title "Invoke (trivial python)"' if has_inv else ""
        inv_p99 = ', "" using 1:5 with linespoints lw 2 title "Invoke"' if has_inv else ""
        ratio = (f'plot "{d}/sweep.dat" using 1:6 with linespoints lw 2 title "invoke rps / noop rps"'
                 if has_inv else 'set label 1 "Invoke not available here" at graph 0.5,0.5 center\n'
                                 'plot [1:256] [0:1] NaN notitle')
        script = f"""
set terminal pngcairo noenhanced size 1500,480 font ",10"
set output "{png}"
set datafile missing "?"
set multiplot layout 1,3 title "lambdad load sweep, {pin}{inv_na}"
set logscale x 2
set xlabel "keep-alive connections"
set grid
set key below
set title "throughput"
set ylabel "requests/s"
plot "{d}/sweep.dat" using 1:2 with linespoints lw 2 title "POST /_lambdad/noop (ceiling)"{inv_rps}
set title "p99 latency"
set ylabel "microseconds"
set logscale y
plot "{d}/sweep.dat" using 1:4 with linespoints lw 2 title "noop"{inv_p99}
unset logscale y
set title "invoke / ceiling"
set ylabel "ratio of requests/s"
set yrange [0:*]
{ratio}
unset multiplot
"""
        if points:
            out["sweep"] = run_gnuplot(gp, script, png, d, "sweep")
        # reference: grouped bars, log y, ours vs published (ms)
        ex = r["reference"].get("executors", {})
        cols = [("ours sub cold", "subprocess", "cold"), ("ours sub warm", "subprocess", "warm"),
                ("ours docker cold", "docker", "cold"), ("ours docker warm", "docker", "warm")]
        lines = ['scenario "' + '" "'.join(c[0] for c in cols) +
                 '" "published sub" "published docker cold" "published docker warm"']
        for key, label, _ in SCENARIOS:
            vals = []
            for _, mode, temp in cols:
                cell = ex.get(mode, {}).get(key, {}).get(temp) if "not_available" not in ex.get(mode, {}) else None
                v = cell.get("median_ms") if isinstance(cell, dict) else None
                vals.append(f"{v:.3f}" if v else "?")
            pub = PUBLISHED[key]
            vals += [str(pub["subprocess"]), str(pub["docker_cold"]), str(pub["docker_warm"])]
            lines.append(f'"{label}" ' + " ".join(vals))
        with open(f"{d}/ref.dat", "w") as f:
            f.write("\n".join(lines) + "\n")
        png2 = f"{stem}-reference.png"
        script2 = f"""
set terminal pngcairo noenhanced size 1200,560 font ",10"
set output "{png2}"
set datafile missing "?"
set title "Reference table: lambdad (median, this machine) vs published (M1 Mac); missing bar = not available here"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [0.1:*]
set ylabel "milliseconds (log)"
set grid ytics
set key outside right top
set xtics nomirror
plot for [i=2:5] "{d}/ref.dat" using i:xtic(1) title columnheader(i) fs solid 0.85, \\
     for [i=6:8] "{d}/ref.dat" using i title columnheader(i) fs pattern 4
"""
        out["reference"] = run_gnuplot(gp, script2, png2, d, "ref")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def run_gnuplot(gp, script, png, d, tag):
    with open(f"{d}/{tag}.gp", "w") as f:
        f.write(script)
    p = subprocess.run([gp, f"{d}/{tag}.gp"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or not os.path.exists(png):
        return f"not available here: gnuplot failed: {p.stderr.strip()[:200]}"
    return png


def ensure_gnuplot(quick):
    if shutil.which("gnuplot") or quick or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    log("installing gnuplot-nox for the charts (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "gnuplot-nox"], env=env, capture_output=True,
                   timeout=600)


def complex_inprocess_ms(runs=3):
    """Median time of handlers/complex.py's work in this (plain) python
    process: not a calibration (the constants are fixed) but a machine-speed
    reading to interpret the Complex row against the ~196 ms calibration."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_complex", HANDLERS / "complex.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = mod.work()
        ts.append((time.perf_counter() - t0) * 1000)
        if res["digest"] != COMPLEX_DIGEST:
            raise HarnessError("handlers/complex.py no longer produces COMPLEX_DIGEST")
    return round(statistics.median(ts), 1)


# -------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI mode: under a minute, reports only")
    ap.add_argument("--lambdad", help="lambdad binary (default: <build-dir>/lambdad, built if stale)")
    ap.add_argument("--build-dir", default=str(ROOT / "build"), help="CMake build dir (default build/)")
    ap.add_argument("--out", default=str(BENCH / "results"), help="results directory")
    ap.add_argument("--pin", choices=("loadgen", "split", "none"), default="loadgen",
                    help="sweep CPU pinning: loadgen = loadgen on the last CPU, server unpinned "
                         "(default); split = server on the other CPUs; none")
    ap.add_argument("--only", default="reference,sweep,peers,scale,writes",
                    help="comma-separated subset of reference,sweep,peers,scale,writes")
    args = ap.parse_args()
    t_start = time.monotonic()
    only = set(args.only.split(","))

    try:
        lambdad, loadgen = ensure_built(args.build_dir, args.lambdad)
    except HarnessError as e:
        print(f"HARNESS ERROR: {e}", file=sys.stderr)
        return 1
    ensure_gnuplot(args.quick)
    workdir = tempfile.mkdtemp(prefix="lambdad-bench-")
    stats = {"invokes": 0, "invoke_errors": 0, "invoke_available": False}
    host = os.uname().nodename
    today = datetime.date.today().isoformat()
    r = {"schema_version": SCHEMA_VERSION, "date": today,
         "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "quick": args.quick,
         "host": {"hostname": host, "cpus": os.cpu_count(), "python": sys.version.split()[0],
                  "kernel": os.uname().release, "loadavg_start": os.getloadavg()},
         "lambdad": str(lambdad), "loadgen": str(loadgen),
         "command": " ".join([os.path.basename(sys.executable)] + sys.argv), "elapsed_by_part": {}}
    skipped = na("not run (--only)")
    failure = None
    try:
        r["host"]["complex_inprocess_ms"] = complex_inprocess_ms()
        parts = [("reference", lambda: run_reference(lambdad, args, workdir, stats)),
                 ("sweep", lambda: run_sweep(lambdad, loadgen, args, workdir, stats)),
                 ("peers", lambda: run_peers(lambdad, args, workdir, stats)),
                 ("scale", lambda: run_scale(lambdad, args, workdir, stats)),
                 ("writes", lambda: run_writes(lambdad, loadgen, args, workdir, stats))]
        for name, fn in parts:
            t0 = time.monotonic()
            r[name] = fn() if name in only else skipped
            r["elapsed_by_part"][name] = round(time.monotonic() - t0, 1)
    except HarnessError as e:
        failure = str(e)
    for k in ("reference", "sweep", "peers", "scale", "writes"):
        r.setdefault(k, na(f"not run: harness failed earlier: {failure}"))
    if failure is None and stats["invoke_available"] and stats["invokes"] and \
            stats["invoke_errors"] >= stats["invokes"]:
        failure = f"every one of {stats['invokes']} invokes errored"
    if failure is None and BROKEN_INVOKES and not stats["invoke_available"]:
        failure = "Invoke is implemented but every invoke errored: " + "; ".join(BROKEN_INVOKES)[:500]
    r["invoke_stats"] = stats
    r["harness_error"] = failure
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{today}-{host}"
    r["charts"] = charts(r, str(stem)) if failure is None else {}
    r["elapsed_s"] = round(time.monotonic() - t_start, 1)
    r["host"]["loadavg_end"] = os.getloadavg()
    with open(f"{stem}.json", "w") as f:
        json.dump(r, f, indent=1)
        f.write("\n")
    try:
        print(human_report(r))
    except Exception as e:  # the JSON is written; never lose a run to the printer
        print(f"(human report failed: {e!r}; see the JSON)")
    print(f"\nresults: {stem}.json (elapsed {r['elapsed_s']} s: "
          + ", ".join(f"{k} {v} s" for k, v in r["elapsed_by_part"].items()) + ")")
    shutil.rmtree(workdir, ignore_errors=True)
    if failure:
        print(f"HARNESS ERROR: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
