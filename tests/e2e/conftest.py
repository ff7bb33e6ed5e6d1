"""End-to-end fixtures: start the real lambdad binary and drive it with boto3.

The binary is $LAMBDAD_BIN (default <repo>/build/lambdad). Each server gets a
free port on 127.0.0.1, a fresh temporary data dir (or --ephemeral) and a log
file that receives its stdout and stderr. After every test, every server the
test used is checked: a sanitizer report in its log (ASan, UBSan, TSan) or a
process that died without being asked to fails the test, with the log tail
in the message.

Fixtures:
  lambdad_factory  function-scoped factory: lambdad_factory(ephemeral=False,
                   args=(), env=None, port=None, data_dir=None) -> Server;
                   for tests that stop, kill or restart the server.
  server           module-scoped Server for read-mostly tests.

Set LAMBDAD_E2E_SMOKE=1 to run only the tests marked @pytest.mark.smoke.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import ctypes

import boto3
import pytest
from botocore.config import Config

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LAMBDAD_BIN = os.environ.get("LAMBDAD_BIN") or os.path.join(REPO, "build", "lambdad")

HEALTH_POLL = 0.02
HEALTH_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ThreadSanitizer",
                     "ERROR: LeakSanitizer")


def free_port():
    """A port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(extra=None):
    """The environment for lambdad: ours, with this Python's bin directory
    first on PATH (so handlers run the venv's python3 with boto3)."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    # Keep the server from picking up settings meant for someone else.
    for k in list(env):
        if k.startswith("LAMBDAD_") and k not in ("LAMBDAD_BIN",):
            del env[k]
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if extra:
        env.update(extra)
    return env


def _die_with_parent():
    """preexec_fn: the server gets SIGKILL if pytest dies, so an interrupted
    run leaves no lambdad behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def sanitizer_findings(text):
    """The sanitizer markers found in text (empty list when clean)."""
    return [m for m in SANITIZER_MARKERS if m in text]


class Server:
    """One lambdad process (and its restarts) on a fixed port and data dir."""

    def __init__(self, workdir, ephemeral=False, args=(), env=None, port=None, data_dir=None,
                 port_flag=True):
        self.workdir = workdir
        self.port = port or free_port()
        self.data_dir = data_dir or os.path.join(workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.ephemeral = ephemeral
        self.args = list(args)
        self.extra_env = dict(env or {})
        # port_flag=False passes the port as LAMBDAD_PORT instead of --port.
        self.port_flag = port_flag
        if not port_flag:
            self.extra_env["LAMBDAD_PORT"] = str(self.port)
        self.log_path = os.path.join(workdir, "lambdad.log")
        self.proc = None
        self.problems = []  # crash / shutdown findings, reported at test end
        self._expect_exit = False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        cmd = [LAMBDAD_BIN, "--host", "127.0.0.1"]
        if self.port_flag:
            cmd += ["--port", str(self.port)]
        cmd += ["--data-dir", self.data_dir]
        if self.ephemeral:
            cmd.append("--ephemeral")
        return cmd + self.args

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=server_env(self.extra_env),
                                         cwd=self.workdir,
                                         preexec_fn=_die_with_parent)
        self._expect_exit = False
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout=HEALTH_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self._expect_exit = True
                raise AssertionError(f"lambdad exited with status {rc} during start-up\n"
                                     + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/_lambdad/health", timeout=1) as r:
                    if r.status == 200:
                        return
                    last = f"status {r.status}"
            except (urllib.error.URLError, OSError) as e:
                last = repr(e)
            time.sleep(HEALTH_POLL)
        raise AssertionError(f"lambdad not healthy after {timeout}s ({last})\n" + self.log_tail())

    def client(self, region="us-east-1", access_key="test", secret_key="test", validate=True,
               service="lambda"):
        """A boto3 client for this server with no retries (a retried request
        would hide server errors and re-run handlers)."""
        cfg = Config(retries={"max_attempts": 0}, read_timeout=120, connect_timeout=10,
                     parameter_validation=validate)
        return boto3.client(service, endpoint_url=self.url, region_name=region,
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                            config=cfg)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; a server that does not exit in time is killed and
        recorded as a problem, as is an exit status other than 0."""
        if self.proc is None or self.proc.poll() is not None:
            self._note_unexpected_exit()
            return
        self._expect_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self.problems.append(f"lambdad did not exit within {timeout}s of SIGTERM")
            return
        if rc != 0:
            self.problems.append(f"lambdad exited with status {rc} after SIGTERM (expected 0)")

    def kill9(self):
        """SIGKILL, as a power cut would."""
        assert self.proc is not None and self.proc.poll() is None, "not running"
        self._expect_exit = True
        self.proc.kill()
        self.proc.wait(10)

    def restart(self, kill=False):
        """Stops (SIGTERM, or SIGKILL with kill=True) and starts again on the
        same port and data dir."""
        if kill:
            self.kill9()
        else:
            self.stop()
        self.start()
        return self

    def _note_unexpected_exit(self):
        if self.proc is not None and self.proc.poll() is not None and not self._expect_exit:
            self._expect_exit = True
            self.problems.append(f"lambdad died unexpectedly with status {self.proc.returncode}")

    @property
    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        lines = self.log.splitlines()
        return f"--- last {min(n, len(lines))} lines of {self.log_path}:\n" + "\n".join(lines[-n:])

    def check(self):
        """Findings so far (crash, bad shutdown, sanitizer report); clears
        the crash/shutdown list so one finding fails one test."""
        self._note_unexpected_exit()
        found = list(self.problems)
        self.problems.clear()
        text = self.log
        new = text[getattr(self, "_checked_upto", 0):]
        self._checked_upto = len(text)
        hits = sanitizer_findings(new)
        if hits:
            # The report from its first line: the tail alone would cut off
            # the faulting access and its stack.
            first = min(new.index(m) for m in hits)
            start = new.rfind("\n", 0, first) + 1
            excerpt = "\n".join(new[start:].splitlines()[:150])
            found.append("sanitizer report in server log: " + ", ".join(hits)
                         + f"\n--- report from {self.log_path}:\n" + excerpt)
        return found


class _Registry:
    """Servers a test touches, so the per-test check can see them."""

    def __init__(self):
        self.servers = []


_registry = _Registry()


def new_server(tmp_root, **kwargs):
    if not os.access(LAMBDAD_BIN, os.X_OK):
        pytest.fail(f"lambdad binary not found or not executable: {LAMBDAD_BIN} "
                    "(build it or set LAMBDAD_BIN)")
    workdir = tempfile.mkdtemp(prefix="lambdad-e2e-", dir=tmp_root)
    srv = Server(workdir, **kwargs)
    _registry.servers.append(srv)
    return srv


@pytest.fixture
def lambdad_factory(tmp_path):
    """Function-scoped factory; every server it made is stopped at teardown."""
    made = []

    def factory(start=True, **kwargs):
        srv = new_server(str(tmp_path), **kwargs)
        made.append(srv)
        return srv.start() if start else srv

    yield factory
    for srv in made:
        srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Module-scoped server with a persistent data dir."""
    srv = new_server(str(tmp_path_factory.mktemp("srv")))
    srv.start()
    yield srv
    stop_and_check(srv)


def stop_and_check(srv):
    """Stops a long-lived (module/class) server and fails the current
    teardown if it shut down badly or its log shows a sanitizer report."""
    srv.stop()
    found = srv.check()
    if srv in _registry.servers:
        _registry.servers.remove(srv)
    if found:
        pytest.fail("\n".join(found) + "\n" + srv.log_tail(30), pytrace=False)


@pytest.fixture(autouse=True)
def _check_servers(request):
    """After each test: fail it if any server crashed, shut down badly or
    reported a sanitizer error. Autouse fixtures are set up first and so torn
    down last: the factory has already stopped its servers (SIGTERM) here,
    so problems at shutdown are caught too."""
    yield
    _fail_on_findings()


def _fail_on_findings():
    msgs = []
    for srv in list(_registry.servers):
        found = srv.check()
        if found:
            msgs.append("\n".join(found) + "\n" + srv.log_tail(30))
        if srv.proc is None or srv.proc.poll() is not None:
            # Its test is over and it is stopped: nothing more to watch.
            _registry.servers.remove(srv)
    if msgs:
        pytest.fail("\n\n".join(msgs), pytrace=False)


class E2ETimeout(Exception):
    """Raised inside a test that ran longer than LAMBDAD_E2E_TEST_TIMEOUT."""


@pytest.fixture(autouse=True)
def _test_time_limit():
    """A safety net on top of the per-wait timeouts: SIGALRM after
    LAMBDAD_E2E_TEST_TIMEOUT seconds (default 300) fails the test, and the
    fixtures still stop the servers."""
    limit = int(os.environ.get("LAMBDAD_E2E_TEST_TIMEOUT", "300"))

    def on_alarm(signum, frame):
        raise E2ETimeout(f"test exceeded {limit}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# tools/test.sh sets LAMBDAD_TEST_STRICT=1: there every prerequisite (Docker
# engine, test image, cgroups, AWS CLI v2) must be present, so a skip is
# reported as a failure instead of hiding a test that did not run.
STRICT = os.environ.get("LAMBDAD_TEST_STRICT") == "1"


def _strict(rep):
    if STRICT and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped under LAMBDAD_TEST_STRICT=1 (a missing prerequisite): {rep.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _strict(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _strict(outcome.get_result())


def pytest_collection_modifyitems(config, items):
    if os.environ.get("LAMBDAD_E2E_SMOKE") == "1":
        keep = [i for i in items if i.get_closest_marker("smoke")]
        drop = [i for i in items if not i.get_closest_marker("smoke")]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
