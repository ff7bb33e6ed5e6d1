"""Visible mismatches with AWS, fixed: qualified $LATEST ARNs in version
lists, CreateFunction(Publish=True)'s ARN, AWS_LAMBDA_EXEC_WRAPPER (host and
container), the layer search paths of AWS (python3.X site-packages,
nodejs/nodeNN/node_modules, /opt/bin, /opt/lib), UnknownOperationException
for paths outside the model, and the Pending -> Active /
InProgress -> Successful transitions that boto3's waiters poll for.
"""
import json
import os
import socket
import urllib.request

import pytest
from botocore.exceptions import ClientError

from helpers import ROLE, create_function, function_arn, make_zip, py_zip, unique_name

IMAGE = "lambdad-test/base:bookworm"


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def invoke_json(client, name, payload=None, **kw):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kw)
    body = resp["Payload"].read()
    assert "FunctionError" not in resp, body
    return json.loads(body)


# --- ARNs -------------------------------------------------------------------

def test_list_versions_latest_entry_is_qualified(lam):
    name = unique_name("lv")
    create_function(lam, name)
    lam.publish_version(FunctionName=name)
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    assert versions[0]["FunctionArn"] == function_arn(name) + ":$LATEST"
    assert versions[1]["FunctionArn"] == function_arn(name) + ":1"
    # GetFunction of $LATEST keeps the unqualified ARN.
    assert lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"] == function_arn(name)


def test_list_functions_all_qualifies_latest_only_with_all(lam):
    name = unique_name("lfa")
    create_function(lam, name)
    lam.publish_version(FunctionName=name)
    everything = [f for p in lam.get_paginator("list_functions").paginate(FunctionVersion="ALL")
                  for f in p["Functions"] if f["FunctionName"] == name]
    assert sorted(f["FunctionArn"] for f in everything) == sorted(
        [function_arn(name) + ":$LATEST", function_arn(name) + ":1"])
    plain = [f for p in lam.get_paginator("list_functions").paginate()
             for f in p["Functions"] if f["FunctionName"] == name]
    assert [f["FunctionArn"] for f in plain] == [function_arn(name)]


def test_create_publish_true_returns_unqualified_arn_that_works(lam):
    name = unique_name("pubarn")
    created = create_function(lam, name, Publish=True)
    assert created["Version"] == "1"
    assert created["FunctionArn"] == function_arn(name)
    # The ARN the response gave is usable for every later call.
    upd = lam.update_function_configuration(FunctionName=created["FunctionArn"], Timeout=9)
    assert upd["Timeout"] == 9
    assert lam.get_function_configuration(FunctionName=created["FunctionArn"],
                                          Qualifier="1")["Version"] == "1"


# --- AWS_LAMBDA_EXEC_WRAPPER -------------------------------------------------

WRAPPER = ("#!/bin/sh\n"
           "export WRAPPED_BY=\"$0\"\n"
           "export WRAPPED_ARGS=\"$*\"\n"
           "exec \"$@\"\n")

PY_ENV_HANDLER = ("import os, sys\n"
                  "def handler(event, context):\n"
                  "    return {'by': os.environ.get('WRAPPED_BY'), 'args': os.environ.get('WRAPPED_ARGS'),\n"
                  "            'argv0': sys.argv[0]}\n")

NODE_ENV_HANDLER = ("exports.handler = async () => ({by: process.env.WRAPPED_BY || null,\n"
                    "  args: process.env.WRAPPED_ARGS || null});\n")


def test_exec_wrapper_python_in_code(lam):
    name = unique_name("wrap")
    z = make_zip({"lambda_function.py": PY_ENV_HANDLER, "wrap.sh": (WRAPPER, 0o755)})
    create_function(lam, name, z, Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrap.sh"}})
    out = invoke_json(lam, name)
    assert out["by"] and out["by"].endswith("/wrap.sh"), out
    # The wrapper got the runtime command (interpreter + bootstrap) as arguments.
    assert "python" in out["args"] and "bootstrap" in out["args"], out
    # Removing the wrapper goes back to the plain command.
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {}})
    assert invoke_json(lam, name)["by"] is None


def test_exec_wrapper_node_from_layer(lam):
    name = unique_name("wrapn")
    layer = lam.publish_layer_version(LayerName=unique_name("wl"),
                                      Content={"ZipFile": make_zip({"wrapper": (WRAPPER, 0o755)})})
    z = make_zip({"index.js": NODE_ENV_HANDLER})
    create_function(lam, name, z, Runtime="nodejs20.x", Handler="index.handler",
                    Layers=[layer["LayerVersionArn"]],
                    Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper"}})
    out = invoke_json(lam, name)
    assert out["by"] and out["by"].endswith("/wrapper"), out
    assert "node" in out["args"] and "bootstrap" in out["args"], out


def test_exec_wrapper_missing_is_an_init_error(lam):
    name = unique_name("wrapx")
    create_function(lam, name, Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/nope.sh"}})
    resp = lam.invoke(FunctionName=name, Payload=b"{}")
    assert resp.get("FunctionError") or resp["StatusCode"] >= 500, resp


def test_exec_wrapper_ignored_by_custom_runtime(lam):
    name = unique_name("wrapc")
    boot = ("#!/bin/sh\n"
            "while true; do\n"
            "  H=$(mktemp)\n"
            "  curl -sS -D \"$H\" -o /dev/null \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\"\n"
            "  ID=$(grep -i Lambda-Runtime-Aws-Request-Id \"$H\" | tr -d '\\r' | cut -d' ' -f2)\n"
            "  curl -sS -X POST -d \"\\\"${WRAPPED_BY:-none}\\\"\" \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/response\" >/dev/null\n"
            "done\n")
    z = make_zip({"bootstrap": (boot, 0o755), "wrap.sh": (WRAPPER, 0o755)})
    create_function(lam, name, z, Runtime="provided.al2023", Handler="x",
                    Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrap.sh"}})
    resp = lam.invoke(FunctionName=name, Payload=b"{}")
    assert json.loads(resp["Payload"].read()) == "none"


def _docker_image_present():
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect("/var/run/docker.sock")
        s.sendall(f"GET /images/{IMAGE}/json HTTP/1.0\r\n\r\n".encode())
        head = s.recv(64)
        s.close()
        return b" 200 " in head
    except OSError:
        return False


@pytest.mark.skipif(not _docker_image_present(), reason=f"docker or {IMAGE} not available")
def test_exec_wrapper_in_container(lambdad_factory):
    srv = lambdad_factory(args=["--lambda-executor", "docker", "--lambda-image", f"python3.12={IMAGE}"])
    c = srv.client()
    name = unique_name("wrapd")
    z = make_zip({"lambda_function.py": PY_ENV_HANDLER, "wrap.sh": (WRAPPER, 0o755)})
    create_function(c, name, z, Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrap.sh"}})
    out = invoke_json(c, name)
    assert out["by"] == "/var/task/wrap.sh", out
    assert out["args"].startswith("python3 "), out


# --- layer search paths ------------------------------------------------------

def test_python_layer_versioned_site_packages(lam):
    lz = make_zip({"python/lib/python3.12/site-packages/deep_mod.py": "WHERE = 'site-packages'\n",
                   "python/flat_mod.py": "WHERE = 'python'\n",
                   "bin/layer-tool": ("#!/bin/sh\necho tool-ok\n", 0o755)})
    layer = lam.publish_layer_version(LayerName=unique_name("pl"), Content={"ZipFile": lz})
    name = unique_name("pyl")
    code = ("import subprocess, deep_mod, flat_mod\n"
            "def handler(event, context):\n"
            "    tool = subprocess.run(['layer-tool'], capture_output=True, text=True).stdout.strip()\n"
            "    return [deep_mod.WHERE, flat_mod.WHERE, tool]\n")
    create_function(lam, name, make_zip({"lambda_function.py": code}), Layers=[layer["LayerVersionArn"]])
    assert invoke_json(lam, name) == ["site-packages", "python", "tool-ok"]


def test_node_layer_versioned_node_modules(lam):
    lz = make_zip({"nodejs/node20/node_modules/deepmod/index.js": "module.exports = 'node20';\n",
                   "nodejs/node_modules/flatmod/index.js": "module.exports = 'flat';\n"})
    layer = lam.publish_layer_version(LayerName=unique_name("nl"), Content={"ZipFile": lz})
    name = unique_name("nodel")
    code = ("exports.handler = async () => [require('deepmod'), require('flatmod'),\n"
            "  process.env.LD_LIBRARY_PATH.split(':').some(p => p.endsWith('/lib'))];\n")
    create_function(lam, name, make_zip({"index.js": code}), Runtime="nodejs20.x",
                    Handler="index.handler", Layers=[layer["LayerVersionArn"]])
    assert invoke_json(lam, name) == ["node20", "flat", True]


# --- operations outside the model -----------------------------------------

def test_unknown_paths_answer_unknown_operation(server, lam):
    # Every modelled operation is implemented (test_api_coverage.py); a path
    # outside the model answers 404 UnknownOperationException.
    req = urllib.request.Request(server.url + "/2015-03-31/nothing-here", method="GET")
    with pytest.raises(urllib.error.HTTPError) as he:
        urllib.request.urlopen(req, timeout=10)
    assert he.value.code == 404
    assert he.value.headers["x-amzn-ErrorType"] == "UnknownOperationException"


# --- state transitions ------------------------------------------------------

def test_states_and_waiters(lambdad_factory):
    srv = lambdad_factory(args=["--state-transition-ms", "1500"])
    c = srv.client()
    name = unique_name("st")
    created = create_function(c, name)
    assert created["State"] == "Pending" and created["StateReasonCode"] == "Creating"
    got = c.get_function(FunctionName=name)["Configuration"]
    assert got["State"] == "Pending", got
    # Invoke and updates wait for Active, as in AWS.
    with pytest.raises(ClientError) as ei:
        c.invoke(FunctionName=name, Payload=b"{}")
    assert error_of(ei)[:2] == (409, "ResourceConflictException")
    assert "Pending" in error_of(ei)[2]
    with pytest.raises(ClientError) as ei:
        c.update_function_configuration(FunctionName=name, Timeout=5)
    assert error_of(ei)[:2] == (409, "ResourceConflictException")
    c.get_waiter("function_exists").wait(FunctionName=name)
    c.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    got = c.get_function(FunctionName=name)["Configuration"]
    assert got["State"] == "Active" and got["LastUpdateStatus"] == "Successful"
    assert "StateReason" not in got
    c.invoke(FunctionName=name, Payload=b"{}")

    upd = c.update_function_code(FunctionName=name, ZipFile=py_zip("two"))
    assert upd["LastUpdateStatus"] == "InProgress" and upd["State"] == "Active"
    assert c.get_function_configuration(FunctionName=name)["LastUpdateStatus"] == "InProgress"
    with pytest.raises(ClientError) as ei:
        c.update_function_configuration(FunctionName=name, Timeout=5)
    status, code, msg = error_of(ei)
    assert (status, code) == (409, "ResourceConflictException")
    assert msg == ("The operation cannot be performed at this time. An update is in progress for "
                   f"resource: {function_arn(name)}")
    c.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    cfg = c.get_function_configuration(FunctionName=name)
    assert cfg["LastUpdateStatus"] == "Successful"
    assert c.update_function_configuration(FunctionName=name, Timeout=5)["LastUpdateStatus"] == "InProgress"
