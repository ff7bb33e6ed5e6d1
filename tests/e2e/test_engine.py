"""The engine under hostile load and faults (issue 8): invokes during code
updates, handlers that attack their own Runtime API or try to outlive their
environment, out-of-memory kills, and slow environment starts that must not
stall other functions on the same executor.

Every wait is bounded; no test asserts speed beyond generous liveness
limits (the machine may be loaded).
"""
import json
import os
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
