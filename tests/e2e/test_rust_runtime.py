"""The real Rust runtime client (`lambda_runtime` from crates.io) against
lambdad: a provided.al2023 function whose `bootstrap` is the binary built
from tests/e2e/rust/lambda-stream, driven with boto3's Invoke and
InvokeWithResponseStream (boto3 parses the event stream and checks its CRCs).

The crate's streaming handler posts its response with
Lambda-Runtime-Function-Response-Mode: streaming, Transfer-Encoding: chunked,
a Trailer header and Content-Type
application/vnd.awslambda.http-integration-response; its body is the
metadata prelude (JSON), 8 NUL bytes, then what the handler wrote. AWS hands
those bytes to InvokeWithResponseStream and Invoke callers as they are (only
function URLs read the prelude), so that is what the tests expect; a
RESPONSE_STREAM function URL answers with the prelude's status and headers
and the bytes after it.

The binary is built with `cargo build --release --locked` into
$LAMBDAD_RUST_TARGET_DIR (default ~/.cache/lambdad/rust-target), outside the
repo, so the second e2e run (ASan) and later runs reuse it. A cold build
downloads the crates from crates.io. cargo missing is a failure, not a skip:
CI machines have it (tools/setup.sh).
"""
import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from helpers import create_function, make_zip, unique_name

PROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rust", "lambda-stream")
TARGET_DIR = os.environ.get("LAMBDAD_RUST_TARGET_DIR") or os.path.join(
    os.path.expanduser("~"), ".cache", "lambdad", "rust-target")
# A cold build on a loaded 2-core machine took ~2.5 min; leave a wide margin.
BUILD_TIMEOUT = 40 * 60
CHUNKS = 5
NUL8 = b"\0" * 8


def find_cargo():
    cargo = shutil.which("cargo")
    if not cargo:
        home = os.path.join(os.path.expanduser("~"), ".cargo", "bin", "cargo")
        cargo = home if os.access(home, os.X_OK) else None
    return cargo


@pytest.fixture(scope="module")
def rust_zip():
    cargo = find_cargo()
    if not cargo:
        pytest.fail("cargo not found (PATH or ~/.cargo/bin): test_rust_runtime.py builds a Rust "
                    "function with the lambda_runtime crate; install Rust (tools/setup.sh) and rerun")
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET_DIR)
    r = subprocess.run([cargo, "build", "--release", "--locked", "--quiet"], cwd=PROJECT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
    assert r.returncode == 0, "cargo build of %s failed:\n%s" % (PROJECT, r.stdout.decode(errors="replace")[-4000:])
    with open(os.path.join(TARGET_DIR, "release", "bootstrap"), "rb") as f:
        binary = f.read()
    return make_zip({"bootstrap": (binary, 0o755)})


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


@pytest.fixture(scope="module")
def rust_fn(lam, rust_zip):
    """handler name -> function name: one function per handler mode, all from
    the same zip (the binary picks its handler from _HANDLER)."""
    made = {}

    def get(handler):
        if handler not in made:
            name = unique_name("rust-" + handler)
            create_function(lam, name, rust_zip, Runtime="provided.al2023", Handler=handler)
            made[handler] = name
        return made[handler]
    return get


def collect(resp):
    chunks, complete, others = [], None, []
    for ev in resp["EventStream"]:
        if "PayloadChunk" in ev:
            assert complete is None, "PayloadChunk after InvokeComplete"
            chunks.append(ev["PayloadChunk"]["Payload"])
        elif "InvokeComplete" in ev:
            complete = ev["InvokeComplete"]
        else:
            others.append(ev)
    assert others == []
    assert complete is not None, "the stream ended without InvokeComplete"
    return chunks, complete


def expected_lines(name):
    return "".join("chunk %d of %d for %s\n" % (i + 1, CHUNKS, name) for i in range(CHUNKS)).encode()


def split_prelude(body):
    """The crate's streamed body: prelude JSON, 8 NULs, the handler's bytes."""
    assert NUL8 in body, body[:200]
    prelude, rest = body.split(NUL8, 1)
    return json.loads(prelude), rest


def test_streaming_handler_through_invoke_with_response_stream(lam, rust_fn):
    name = rust_fn("stream")
    resp = lam.invoke_with_response_stream(FunctionName=name, Payload=json.dumps({"name": "ferris"}))
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    chunks, complete = collect(resp)
    assert chunks, "no PayloadChunk"
    assert "ErrorCode" not in complete and "ErrorDetails" not in complete
    prelude, rest = split_prelude(b"".join(chunks))
    assert prelude == {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                       "cookies": []}
    assert rest == expected_lines("ferris")


def test_streaming_handler_through_invoke(lam, rust_fn):
    name = rust_fn("stream")
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"name": "crab"}))
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    prelude, rest = split_prelude(resp["Payload"].read())
    assert prelude["statusCode"] == 200
    assert rest == expected_lines("crab")


def test_streaming_handler_repeated_warm(lam, rust_fn):
    # The same runtime process serves one invocation after another: its
    # keep-alive connection must be left in a state where the next /next and
    # the next chunked POST parse.
    name = rust_fn("stream")
    for i in range(4):
        chunks, complete = collect(lam.invoke_with_response_stream(
            FunctionName=name, Payload=json.dumps({"name": "n%d" % i})))
        assert "ErrorCode" not in complete
        assert split_prelude(b"".join(chunks))[1] == expected_lines("n%d" % i)


def test_streaming_handler_through_function_url(server, lam, rust_fn):
    name = rust_fn("stream")
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    uid = url["FunctionUrl"].split("//", 1)[1].split(".", 1)[0]
    with urllib.request.urlopen(f"{server.url}/_lambdad/url/{uid}/", timeout=120) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert r.read() == expected_lines("nobody")


def test_buffered_handler_through_both_apis(lam, rust_fn):
    name = rust_fn("buffered")
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"name": "ferris"}))
    assert "FunctionError" not in resp
    out = json.loads(resp["Payload"].read())
    assert out["hello"] == "ferris" and out["runtime"] == "rust"
    assert out["request_id"] == resp["ResponseMetadata"]["RequestId"]

    chunks, complete = collect(lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"name": "crab"})))
    assert "ErrorCode" not in complete
    out = json.loads(b"".join(chunks))
    assert out["hello"] == "crab" and out["runtime"] == "rust"


def test_handler_error_through_both_apis(lam, rust_fn):
    name = rust_fn("fail")
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"name": "ferris"}))
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["Payload"].read())
    assert err["errorMessage"] == "rust handler refused ferris"
    assert err["errorType"]

    chunks, complete = collect(lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"name": "crab"})))
    assert chunks == []
    assert complete["ErrorCode"] == "Unhandled"
    assert json.loads(complete["ErrorDetails"])["errorMessage"] == "rust handler refused crab"
