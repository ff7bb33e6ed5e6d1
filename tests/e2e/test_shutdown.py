"""Graceful shutdown: SIGTERM lets in-flight invokes finish, refuses new
requests with 503 meanwhile, stops every environment and exits 0; a second
signal stops at once."""
import http.client
import signal
import threading
import time

from helpers import create_function, make_zip, unique_name, wait_for

SLOW = "import time\ndef handler(e, c):\n    time.sleep(e.get('s', 1.5))\n    return {'done': True}\n"


def _slow_fn(client):
    name = unique_name("slow")
    create_function(client, name, make_zip({"app.py": SLOW}), Handler="app.handler", Timeout=30)
    return name


def _invoke_in_thread(srv, name, payload, out):
    def go():
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        try:
            conn.request("POST", f"/2015-03-31/functions/{name}/invocations", body=payload)
            r = conn.getresponse()
            out["status"], out["body"] = r.status, r.read()
        except Exception as e:  # noqa: BLE001 - recorded for the assertion
            out["error"] = repr(e)
    t = threading.Thread(target=go)
    t.start()
    return t


def _env_count(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/_lambdad/environments")
    import json
    return len(json.loads(conn.getresponse().read()))


def test_sigterm_lets_inflight_invoke_finish(lambdad_factory):
    srv = lambdad_factory(ephemeral=True)
    client = srv.client()
    name = _slow_fn(client)
    client.invoke(FunctionName=name, Payload=b'{"s": 0}')  # warm it up
    out = {}
    t = _invoke_in_thread(srv, name, b'{"s": 1.5}', out)
    wait_for(lambda: _env_count(srv) == 1, 5, what="warm environment")
    time.sleep(0.3)  # the invoke is now running in the environment
    t0 = time.monotonic()
    srv._expect_exit = True
    srv.proc.send_signal(signal.SIGTERM)
    # While it drains, a new request is refused with 503 (boto3 retries it).
    refused = None
    deadline = time.monotonic() + 1.0
    while refused is None and time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            conn.request("GET", "/_lambdad/health")
            r = conn.getresponse()
            r.read()
            if r.status == 503:
                refused = r
        except OSError:
            break
        time.sleep(0.02)
    t.join(30)
    assert out.get("status") == 200, out
    assert out["body"] == b"{\"done\": true}", out["body"]
    assert refused is not None and refused.getheader("x-amzn-ErrorType") == "ServiceException"
    rc = srv.proc.wait(15)
    assert rc == 0
    # It waited for the invoke (~1.2 s left), not much longer.
    assert 0.8 < time.monotonic() - t0 < 10


def test_second_signal_stops_at_once(lambdad_factory):
    srv = lambdad_factory(ephemeral=True)
    client = srv.client()
    name = _slow_fn(client)
    out = {}
    t = _invoke_in_thread(srv, name, b'{"s": 20}', out)
    wait_for(lambda: _env_count(srv) == 1, 10, what="environment")
    time.sleep(0.3)
    srv._expect_exit = True
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert srv.proc.poll() is None, "exited before the in-flight invoke finished"
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    rc = srv.proc.wait(15)
    assert rc == 0
    assert time.monotonic() - t0 < 5
    t.join(30)
    # The cut invoke got an answer or a closed connection, never a hang.
    assert "status" in out or "error" in out
