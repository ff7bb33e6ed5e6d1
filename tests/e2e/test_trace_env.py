"""_X_AMZN_TRACE_ID in the bundled Python and Node.js runtimes, across many
invokes of one warm environment (runtime/bootstrap/python/lambdad_bootstrap.py
_TraceEnv, runtime/bootstrap/node/bootstrap.js virtualizeTraceEnv).

Lambda sets _X_AMZN_TRACE_ID for every invocation: the handler sees it in
its environment and a child process inherits it (Python: getenv too).
glibc's setenv keeps every value it was ever given, so a new id per invoke
through os.environ / process.env leaked ~144-150 bytes per invoke. The
Python bootstrap writes it with plain os.environ for the first 1,000
invokes of an environment and then through buffers of its own (through
ctypes; with lambdad's C extension, which environments forked from the
zygote have, from the first invoke on); the Node
bootstrap assigns process.env for its first 50,000 (500 here) and then
serves the variable from a Proxy of process.env. Checked here: ids sent
and generated, the handler setting and deleting the variable itself, both
Python phases, with and without the zygote, and the environment's heap
staying flat over 10,000 invokes.

Invokes go over one raw keep-alive HTTP connection, one at a time, so they
all land in the same environment (checked through its pid) and a few
thousand take seconds, not minutes.
"""
import http.client
import json
import re

import pytest

from conftest import new_server, stop_and_check
from helpers import create_function, make_zip, unique_name

SWITCH_AFTER = 1000  # lambdad_bootstrap._TRACE_SWITCH_AFTER

HANDLER = """import ctypes, os, subprocess
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_char_p
class _Mallinfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                              "usmblks", "fsmblks", "uordblks", "fordblks",
                                              "keepcost")]
_mallinfo2 = ctypes.CDLL(None).mallinfo2
_mallinfo2.restype = _Mallinfo2
def handler(event, context):
    if not event:
        return 1
    out = {"pid": os.getpid()}
    boot = __import__("sys").modules.get("lambdad_bootstrap")
    out["fast"] = boot is not None and getattr(boot, "_fast_set_trace", None) is not None
    if event.get("look"):
        c = getenv(b"_X_AMZN_TRACE_ID")
        out["py"] = os.environ.get("_X_AMZN_TRACE_ID")
        out["c"] = c.decode() if c is not None else None
        out["child"] = subprocess.run(
            ["/bin/sh", "-c", 'printf %s "${_X_AMZN_TRACE_ID-<unset>}"'],
            capture_output=True, text=True, check=True).stdout
    if "set" in event:
        os.environ["_X_AMZN_TRACE_ID"] = event["set"]
    if event.get("del"):
        del os.environ["_X_AMZN_TRACE_ID"]
    if "putenv" in event:  # the C environ only
        os.putenv("_X_AMZN_TRACE_ID", event["putenv"])
    if event.get("unsetenv"):
        os.unsetenv("_X_AMZN_TRACE_ID")
    if event.get("heap"):
        out["heap"] = _mallinfo2().uordblks  # bytes in use from malloc
    return out
"""

NODE_HANDLER = r"""const { execFileSync } = require('child_process');
const fs = require('fs');
function heapKb() {
  // the size of the C heap (glibc's brk arena; V8's heap is mmap'd elsewhere)
  const m = fs.readFileSync('/proc/self/smaps', 'utf8').match(/\[heap\]\n(?:.*\n)*?Size:\s+(\d+) kB/);
  return m ? Number(m[1]) : -1;
}
exports.handler = async (event) => {
  if (!event || Object.keys(event).length === 0) return 1;
  const K = '_X_AMZN_TRACE_ID';
  const out = { pid: process.pid };
  if (event.look) {
    out.py = process.env[K] === undefined ? null : process.env[K];
    const copy = { ...process.env };
    out.c = (K in process.env) && Object.keys(process.env).includes(K) ? copy[K] : null;
    out.child = execFileSync('/bin/sh', ['-c', 'printf %s "${_X_AMZN_TRACE_ID-<unset>}"']).toString();
  }
  if ('set' in event) process.env[K] = event.set;
  if (event.del) delete process.env[K];
  if (event.heap) out.heap_kb = heapKb();
  return out;
};
"""

RUNTIMES = {"python": ("python3.12", "lambda_function.handler", "lambda_function.py", HANDLER),
            "node": ("nodejs20.x", "index.handler", "index.js", NODE_HANDLER)}

GENERATED = re.compile(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0")


def _server(tmp_path_factory, tag, *args):
    s = new_server(str(tmp_path_factory.mktemp(tag)), ephemeral=True, args=list(args))
    s.start()
    return s


@pytest.fixture(scope="module", params=["zygote-on", "zygote-off"])
def srv(request, tmp_path_factory):
    args = ("--python-zygote", "off") if request.param == "zygote-off" else ()
    s = _server(tmp_path_factory, request.param, *args)
    s.zygote = request.param == "zygote-on"
    yield s
    stop_and_check(s)


class Invoker:
    """Invokes over one keep-alive connection, unsigned like any raw client
    lambdad accepts, each with its own X-Amzn-Trace-Id (or the one given)
    unless told not to."""

    def __init__(self, port, name):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.path = f"/2015-03-31/functions/{name}/invocations"
        self.n = 0

    def __call__(self, event, trace=True):
        self.n += 1
        headers = {"Content-Type": "application/json"}
        tid = None
        if trace:
            tid = trace if isinstance(trace, str) else \
                f"Root=1-5f84c7a5-{self.n:024x};Parent={self.n:016x};Sampled=1"
            headers["X-Amzn-Trace-Id"] = tid
        self.conn.request("POST", self.path, body=json.dumps(event), headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body[:300])
        assert r.getheader("X-Amz-Function-Error") is None, body[:2000]
        return tid, json.loads(body)

    def warm(self, count):
        for _ in range(count):
            self({})

    def close(self):
        self.conn.close()


# The Node bootstrap switches to its Proxy after 50,000 invokes by default;
# the tests move that to 500 (the bootstrap reads LAMBDAD_TRACE_ENV_AFTER).
NODE_SWITCH_AFTER = 500


def _fn(srv, runtime="python"):
    rt, handler, path, code = RUNTIMES[runtime]
    lam = srv.client()
    name = unique_name("trace")
    extra = {}
    if runtime == "node":
        extra["Environment"] = {"Variables": {"LAMBDAD_TRACE_ENV_AFTER": str(NODE_SWITCH_AFTER)}}
    create_function(lam, name, make_zip({path: code}), Runtime=rt, Handler=handler, MemorySize=128,
                    **extra)
    return name


def _look(inv, trace=True):
    return inv({"look": True}, trace=trace)


def _check_phase(inv, pid, runtime):
    """One round of the variable's life: sent ids, generated ids, the
    handler setting it and deleting it (Python: also in the C environ
    only)."""
    for _ in range(3):
        tid, out = _look(inv)
        assert out["pid"] == pid
        assert out["py"] == out["c"] == out["child"] == tid, out
    _, a = _look(inv, trace=False)
    _, b = _look(inv, trace=False)
    for out in (a, b):
        assert GENERATED.fullmatch(out["py"]), out
        assert out["py"] == out["c"] == out["child"], out
    assert a["py"] != b["py"]
    # The handler sets the variable: its own invoke sees its value, the next
    # invoke the next id, in os.environ, getenv and a child alike.
    inv({"set": "handler-value-1"})
    tid, out = _look(inv)
    assert out["py"] == out["c"] == out["child"] == tid, out
    _, out = inv({"set": "handler-value-2", "look": True})
    tid, out = _look(inv)
    assert out["py"] == out["c"] == out["child"] == tid, out
    # The handler deletes it: the next invoke has it back everywhere.
    inv({"del": True})
    tid, out = _look(inv)
    assert out["py"] == out["c"] == out["child"] == tid, out
    inv({"del": True, "set": "x"})  # set, then delete, in one invoke
    tid, out = _look(inv)
    assert out["py"] == out["c"] == out["child"] == tid, out
    if runtime == "python":
        # os.putenv / os.unsetenv change only the C environ: the next
        # invoke's id is back in it, as with a setenv per invoke.
        for change in ({"putenv": "c-only"}, {"unsetenv": True}):
            inv(change)
            tid, out = _look(inv)
            assert out["py"] == out["c"] == out["child"] == tid, (change, out)


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_trace_id_before_and_after_the_switch(srv, runtime):
    name = _fn(srv, runtime)
    inv = Invoker(srv.port, name)
    try:
        _, first = _look(inv)
        pid = first["pid"]
        if runtime == "python":
            # Forked from the zygote, the bootstrap sets the id with lambdad's
            # C extension (runtime/bootstrap/python/lambdad_fast.c) from the
            # first invoke; a fresh python3 has no extension (ctypes path).
            assert first["fast"] is srv.zygote, first
        _check_phase(inv, pid, runtime)  # os.environ / process.env
        inv.warm(SWITCH_AFTER + 10 - inv.n)  # past both switches (1,000 and 500)
        _check_phase(inv, pid, runtime)  # the bootstrap's own buffers / Proxy
        # A client's X-Amzn-Trace-Id reaches the handler whole, however long
        # (a Lineage part takes it past 100 bytes); one longer than the
        # bootstrap's 1,024-byte buffer goes the os.environ way, and the
        # short ones after it the buffer's way again.
        for extra in (";Lineage=a87bd80c:1|68fd508a:5|c512fbe3:2", ";Lineage=" + "c" * 1100):
            tid, out = _look(inv, trace="Root=1-5f84c7a5-" + "a" * 24 + ";Parent=" + "b" * 16
                             + ";Sampled=1" + extra)
            assert out["py"] == out["c"] == out["child"] == tid, out
        _check_phase(inv, pid, runtime)
    finally:
        inv.close()


def test_environment_heap_flat_over_many_invokes(srv):
    """10,000 invokes after the switch: the bytes the environment has in use
    from malloc (mallinfo2) grow by less than 100 KB; with a setenv per
    invoke they grew ~144 bytes per invoke, 1.4 MB here. (RSS is no good
    measure: the leak first fills free heap left over from start-up.)"""
    name = _fn(srv)
    inv = Invoker(srv.port, name)
    try:
        inv.warm(SWITCH_AFTER + 1000)
        _, before = inv({"heap": True})
        inv.warm(10000)
        _, after = inv({"heap": True})
        assert after["pid"] == before["pid"]
        grew = after["heap"] - before["heap"]
        assert grew < 100000, f"malloc'd bytes {before['heap']} -> {after['heap']} over 10,000 invokes"
    finally:
        inv.close()


def test_node_environment_heap_flat_over_many_invokes(srv):
    """Node (its Proxy from invoke 500 on): after 12,000 invokes, the C
    heap grows by less than 1,500 KB over 20,000 more (with process.env
    assigned per invoke it grew ~140 bytes per invoke: 2,864 and 2,996 KB;
    with the Proxy 0-476 KB in the runs measured)."""
    name = _fn(srv, "node")
    inv = Invoker(srv.port, name)
    try:
        inv.warm(12000)
        _, before = inv({"heap": True})
        inv.warm(20000)
        _, after = inv({"heap": True})
        assert after["pid"] == before["pid"]
        assert before["heap_kb"] > 0
        grew = after["heap_kb"] - before["heap_kb"]
        assert grew < 1500, f"C heap {before['heap_kb']} -> {after['heap_kb']} kB over 20,000 invokes"
    finally:
        inv.close()
