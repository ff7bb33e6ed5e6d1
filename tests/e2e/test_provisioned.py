"""Provisioned concurrency end to end (Put/Get/Delete/List, environments
really started and kept warm past the idle TTL, IN_PROGRESS -> READY,
errors, restart), and the stored settings GetFunctionRecursionConfig /
PutFunctionRecursionConfig / Get/PutRuntimeManagementConfig.
"""
import json
import os
import time

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, make_zip, unique_name, wait_for


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


# Every initialisation appends a line to $OUT_DIR/<name>.inits.
INIT_COUNTER = ("import os\n"
                "with open(os.path.join(os.environ['OUT_DIR'], os.environ['AWS_LAMBDA_FUNCTION_NAME'] + '.inits'),"
                " 'a') as f:\n"
                "    f.write(str(os.getpid()) + '\\n')\n"
                "def handler(event, context):\n"
                "    return os.getpid()\n")


def inits(out, name):
    p = os.path.join(out, name + ".inits")
    if not os.path.exists(p):
        return 0
    with open(p) as f:
        return len(f.read().split())


@pytest.fixture
def env(lambdad_factory, tmp_path):
    # Idle environments are reaped after 1 s: only provisioned ones stay.
    srv = lambdad_factory(args=["--lambda-container-ttl", "1"])
    return srv, srv.client(), str(tmp_path)


def make(c, name, out):
    create_function(c, name, make_zip({"lambda_function.py": INIT_COUNTER}),
                    Environment={"Variables": {"OUT_DIR": out}})
    c.publish_version(FunctionName=name)


def wait_ready(c, name, qualifier):
    def ready():
        g = c.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        return g if g["Status"] == "READY" else None
    return wait_for(ready, 60, 0.2, "provisioned concurrency READY")


@pytest.mark.smoke
def test_provisioned_environments_are_started_and_kept(env):
    srv, c, out = env
    name = unique_name("pc")
    make(c, name, out)
    put = c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] in ("IN_PROGRESS", "READY")
    g = wait_ready(c, name, "1")
    assert g["AllocatedProvisionedConcurrentExecutions"] == 2
    assert g["AvailableProvisionedConcurrentExecutions"] == 2
    # Two environments initialised before any invoke.
    assert inits(out, name) == 2
    # Well past the 1 s idle TTL they are still there: invokes start nothing.
    time.sleep(3)
    pids = {json.loads(c.invoke(FunctionName=name, Qualifier="1")["Payload"].read()) for _ in range(4)}
    assert inits(out, name) == 2
    assert len(pids) <= 2
    # An unprovisioned qualifier ($LATEST) gets an on-demand environment.
    c.invoke(FunctionName=name)
    assert inits(out, name) == 3
    listed = c.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [(i["FunctionArn"], i["RequestedProvisionedConcurrentExecutions"], i["Status"]) for i in listed] == [
        (function_arn(name) + ":1", 2, "READY")]
    assert c.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        c.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert error_of(ei) == (404, "ProvisionedConcurrencyConfigNotFoundException",
                            "No Provisioned Concurrency Config found for this function")
    # Released: the idle reaper takes them now.
    wait_for(lambda: not [e for e in json.loads(
        __import__("urllib.request").request.urlopen(srv.url + "/_lambdad/environments").read())
        if name in json.dumps(e)], 30, 0.2, "environments reaped")


def test_alias_and_errors(env):
    srv, c, out = env
    raw = srv.client(validate=False)
    name = unique_name("pce")
    make(c, name, out)
    c.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    c.create_alias(FunctionName=name, Name="head", FunctionVersion="$LATEST")
    with pytest.raises(ClientError) as ei:
        c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
    assert error_of(ei) == (400, "InvalidParameterValueException",
                            "Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
    with pytest.raises(ClientError) as ei:
        c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="head", ProvisionedConcurrentExecutions=1)
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        raw.put_provisioned_concurrency_config(FunctionName=name, ProvisionedConcurrentExecutions=1)
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        raw.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=0)
    assert "Member must have value greater than or equal to 1" in error_of(ei)[2]
    with pytest.raises(ClientError) as ei:
        c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="9", ProvisionedConcurrentExecutions=1)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    c.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    with pytest.raises(ClientError) as ei:
        c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=2)
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1)
    assert wait_ready(c, name, "live")["AllocatedProvisionedConcurrentExecutions"] == 1
    assert inits(out, name) == 1
    with pytest.raises(ClientError) as ei:
        c.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")


def test_restart_provisions_again(lambdad_factory, tmp_path):
    srv = lambdad_factory()
    c, out = srv.client(), str(tmp_path)
    name = unique_name("pcr")
    make(c, name, out)
    c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    wait_ready(c, name, "1")
    assert inits(out, name) == 1
    srv.restart()
    # Started again at start-up, before anyone asks.
    wait_for(lambda: inits(out, name) == 2, 60, 0.2, "re-provisioned after restart")
    assert wait_ready(srv.client(), name, "1")["RequestedProvisionedConcurrentExecutions"] == 1


def test_recursion_and_runtime_management(server):
    c = server.client()
    raw = server.client(validate=False)
    name = unique_name("rec")
    create_function(c, name)
    assert c.get_function_recursion_config(FunctionName=name)["RecursiveLoop"] == "Terminate"
    assert c.put_function_recursion_config(FunctionName=name, RecursiveLoop="Allow")["RecursiveLoop"] == "Allow"
    assert c.get_function_recursion_config(FunctionName=name)["RecursiveLoop"] == "Allow"
    with pytest.raises(ClientError) as ei:
        raw.put_function_recursion_config(FunctionName=name, RecursiveLoop="Sometimes")
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        c.get_function_recursion_config(FunctionName=unique_name("ghost"))
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")

    got = c.get_runtime_management_config(FunctionName=name)
    assert got["UpdateRuntimeOn"] == "Auto" and got["FunctionArn"] == function_arn(name)
    assert "RuntimeVersionArn" not in got
    ver = "arn:aws:lambda:us-east-1::runtime:0c8f8e3ab0d5f0e1c9e3f3b6f0a4d2b5e3a7c1d9e8f2b4a6c0d1e3f5a7b9c2d4"
    put = c.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual", RuntimeVersionArn=ver)
    assert put["UpdateRuntimeOn"] == "Manual" and put["RuntimeVersionArn"] == ver
    got = c.get_runtime_management_config(FunctionName=name)
    assert got["UpdateRuntimeOn"] == "Manual" and got["RuntimeVersionArn"] == ver
    with pytest.raises(ClientError) as ei:
        c.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual")
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        c.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Auto", RuntimeVersionArn=ver)
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        raw.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Never")
    assert error_of(ei)[:2] == (400, "ValidationException")


INIT_TYPE = ("import os\n"
             "def handler(event, context):\n"
             "    return os.environ['AWS_LAMBDA_INITIALIZATION_TYPE']\n")


def test_initialization_type(env):
    srv, c, out = env
    name = unique_name("pct")
    create_function(c, name, make_zip({"lambda_function.py": INIT_TYPE}))
    c.publish_version(FunctionName=name)
    c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    wait_ready(c, name, "1")
    assert json.loads(c.invoke(FunctionName=name, Qualifier="1")["Payload"].read()) == "provisioned-concurrency"
    assert json.loads(c.invoke(FunctionName=name)["Payload"].read()) == "on-demand"


def envs_of(srv, key_suffix, name):
    import urllib.request
    envs = json.loads(urllib.request.urlopen(srv.url + "/_lambdad/environments").read())
    return [e for e in envs if e.get("function") == name and e.get("function_key", "").endswith(key_suffix)]


def test_moving_the_alias_moves_the_provisioned_environments(env):
    srv, c, out = env
    name = unique_name("pcm")
    make(c, name, out)                       # version 1
    c.update_function_configuration(FunctionName=name, Description="v2")
    c.get_waiter("function_updated_v2").wait(FunctionName=name)
    c.publish_version(FunctionName=name)     # version 2
    c.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    c.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1)
    wait_ready(c, name, "live")
    assert len(envs_of(srv, ":1", name)) == 1
    c.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    wait_ready(c, name, "live")              # provisions version 2, releases version 1
    assert len(envs_of(srv, ":2", name)) == 1
    # Version 1's environment is an ordinary idle one now: the 1 s TTL reaps it.
    wait_for(lambda: not envs_of(srv, ":1", name), 30, 0.2, "version 1 released")
    time.sleep(2)
    assert len(envs_of(srv, ":2", name)) == 1
