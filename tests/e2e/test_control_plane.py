"""Control-plane behaviour of lambdad, checked with boto3 against the real
binary: response shapes, identifiers, pagination, updates, deletes, waiters,
validation and error encoding, namespaces, raw HTTP edge cases, the AWS CLI
and the binary's own flags.

Expected values come from AWS's behaviour as written down in
shared/docs/lambda-reference.md (§1, §2.7, §6) and the botocore model.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import (LAMBDAD_BIN, free_port, new_server, sanitizer_findings, server_env,
                      stop_and_check)
from helpers import (ACCOUNT, aws_cli_v1, LAST_MODIFIED_RE, ROLE, UUID_RE, code_sha256, create_function, settled,
                     download, function_arn, make_zip, py_zip, strip_meta, tree_snapshot,
                     unique_name)


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


@pytest.fixture(scope="module")
def lam_raw(server):
    """A client without botocore's client-side checks, to send values that
    only the server can refuse (below a model minimum, etc.)."""
    return server.client(validate=False)


def error_of(excinfo):
    """(HTTP status, error code, message) of a ClientError."""
    r = excinfo.value.response
    return (r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"].get("Message", ""))


def assert_not_found(client, name):
    with pytest.raises(ClientError) as ei:
        client.get_function(FunctionName=name)
    status, code, _ = error_of(ei)
    assert (status, code) == (404, "ResourceNotFoundException")


# --------------------------------------------------------------------------
# health and creation


@pytest.mark.smoke
def test_health(server):
    with urllib.request.urlopen(server.url + "/_lambdad/health", timeout=5) as r:
        assert r.status == 200
        body = json.loads(r.read())
    assert body["status"] == "ok"


@pytest.mark.smoke
def test_create_function_response_fields(lam):
    name = unique_name("create")
    zip_bytes = py_zip(name)
    resp = create_function(lam, name, zip_bytes)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["FunctionName"] == name
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert resp["Runtime"] == "python3.12"
    assert resp["Role"] == ROLE
    assert resp["Handler"] == "lambda_function.handler"
    assert resp["CodeSize"] == len(zip_bytes)
    assert resp["CodeSha256"] == code_sha256(zip_bytes)
    assert resp["Description"] == ""
    assert resp["Timeout"] == 3
    assert resp["MemorySize"] == 128
    assert LAST_MODIFIED_RE.match(resp["LastModified"]), resp["LastModified"]
    assert resp["Version"] == "$LATEST"
    assert UUID_RE.match(resp["RevisionId"]), resp["RevisionId"]
    # As AWS: the create answers Pending; reads afterwards show Active.
    assert resp["State"] == "Pending"
    assert resp["StateReason"] == "The function is being created."
    assert resp["StateReasonCode"] == "Creating"
    assert "LastUpdateStatus" not in resp
    assert resp["PackageType"] == "Zip"
    assert resp["Architectures"] == ["x86_64"]
    assert resp["EphemeralStorage"] == {"Size": 512}
    assert resp["TracingConfig"] == {"Mode": "PassThrough"}
    assert "Environment" not in resp  # only when variables are set

    got = lam.get_function(FunctionName=name)
    assert settled(resp) == got["Configuration"]
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["LastUpdateStatus"] == "Successful"
    assert "Tags" not in got or got["Tags"] == {}


def test_create_with_environment_tags_and_settings(lam):
    name = unique_name("full")
    resp = create_function(lam, name, Description="a test function", Timeout=30, MemorySize=256,
                           Environment={"Variables": {"GREETING": "hello", "COUNT": "3"}},
                           Tags={"team": "e2e", "cost-center": "42"},
                           EphemeralStorage={"Size": 1024}, Architectures=["x86_64"])
    assert resp["Description"] == "a test function"
    assert resp["Timeout"] == 30
    assert resp["MemorySize"] == 256
    assert resp["Environment"] == {"Variables": {"GREETING": "hello", "COUNT": "3"}}
    assert resp["EphemeralStorage"] == {"Size": 1024}
    got = lam.get_function(FunctionName=name)
    assert got["Tags"] == {"team": "e2e", "cost-center": "42"}
    assert got["Configuration"]["Environment"] == {"Variables": {"GREETING": "hello", "COUNT": "3"}}
    assert settled(resp) == got["Configuration"]


@pytest.mark.smoke
def test_get_function_code_location_downloads_exact_zip(lam):
    name = unique_name("code")
    zip_bytes = make_zip({"lambda_function.py": "def handler(e, c):\n    return 1\n",
                          "data/blob.bin": os.urandom(3000)})
    create_function(lam, name, zip_bytes)
    got = lam.get_function(FunctionName=name)
    assert got["Code"]["RepositoryType"] == "S3"
    status, body = download(got["Code"]["Location"])
    assert status == 200
    assert body == zip_bytes


@pytest.mark.parametrize("form", ["name", "partial_arn", "full_arn"])
def test_get_by_name_partial_arn_and_full_arn(lam, form):
    name = unique_name("ident")
    created = create_function(lam, name)
    ident = {"name": name,
             "partial_arn": f"{ACCOUNT}:function:{name}",
             "full_arn": function_arn(name)}[form]
    got = lam.get_function(FunctionName=ident)
    cfg = lam.get_function_configuration(FunctionName=ident)
    assert got["Configuration"]["FunctionName"] == name  # bare name, never the ARN
    assert cfg["FunctionName"] == name
    assert got["Configuration"]["FunctionArn"] == function_arn(name)
    assert strip_meta(cfg) == got["Configuration"] == settled(created)


def test_function_name_with_latest_qualifier(lam):
    name = unique_name("qual")
    create_function(lam, name)
    assert lam.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]["Version"] == "$LATEST"
    assert lam.get_function_configuration(FunctionName=f"{name}:$LATEST")["FunctionName"] == name


# --------------------------------------------------------------------------
# ListFunctions: its own server so the set of functions is known exactly


LIST_COUNT = 120


@pytest.fixture(scope="class")
def listing(tmp_path_factory):
    """A server holding exactly LIST_COUNT functions: (client, names)."""
    srv = new_server(str(tmp_path_factory.mktemp("list")), ephemeral=True)
    srv.start()
    client = srv.client()
    zip_bytes = py_zip("list")
    names = [f"list-{i:03d}-{os.urandom(3).hex()}" for i in range(LIST_COUNT)]
    for n in names:
        create_function(client, n, zip_bytes)
    yield client, set(names)
    stop_and_check(srv)


class TestListFunctions:
    COUNT = LIST_COUNT

    @staticmethod
    def walk(client, **kwargs):
        items, pages, marker = [], 0, None
        for _ in range(1000):  # bounded
            params = dict(kwargs)
            if marker:
                params["Marker"] = marker
            resp = client.list_functions(**params)
            pages += 1
            items.append([f["FunctionName"] for f in resp["Functions"]])
            marker = resp.get("NextMarker")
            if not marker:
                return items, pages
        raise AssertionError("pagination did not terminate")

    @pytest.mark.smoke
    def test_manual_pagination_max_items_7(self, listing):
        client, names = listing
        pages, count = self.walk(client, MaxItems=7)
        assert all(len(p) <= 7 for p in pages)
        assert all(len(p) == 7 for p in pages[:-1]), [len(p) for p in pages]
        flat = [n for p in pages for n in p]
        assert len(flat) == len(set(flat)), "duplicates across pages"
        assert set(flat) == names
        assert count == -(-self.COUNT // 7)
        again = [n for p in self.walk(client, MaxItems=7)[0] for n in p]
        assert again == flat, "order is not stable between traversals"

    def test_paginator(self, listing):
        client, names = listing
        manual = [n for p in self.walk(client, MaxItems=7)[0] for n in p]
        pager = client.get_paginator("list_functions")
        pages = list(pager.paginate(PaginationConfig={"PageSize": 7}))
        flat = [f["FunctionName"] for p in pages for f in p["Functions"]]
        assert all(len(p["Functions"]) <= 7 for p in pages)
        assert flat == manual
        # Default page size: the service caps pages at 50.
        pages = list(pager.paginate())
        sizes = [len(p["Functions"]) for p in pages]
        assert sizes == [50, 50, 20], sizes
        assert {f["FunctionName"] for p in pages for f in p["Functions"]} == names

    def test_default_and_large_max_items_capped_at_50(self, listing):
        client, _ = listing
        first = client.list_functions()
        assert len(first["Functions"]) == 50
        assert first.get("NextMarker")
        big = client.list_functions(MaxItems=1000)
        assert len(big["Functions"]) == 50
        assert big.get("NextMarker")

    def test_list_items_are_full_configurations(self, listing):
        client, _ = listing
        f = client.list_functions(MaxItems=1)["Functions"][0]
        assert f["FunctionArn"] == function_arn(f["FunctionName"])
        assert f["Version"] == "$LATEST"
        assert f["Runtime"] == "python3.12"
        assert f["State"] == "Active"


# --------------------------------------------------------------------------
# updates


def test_update_function_code(lam):
    name = unique_name("upcode")
    old = create_function(lam, name, py_zip("v1"))
    new_zip = py_zip("v2-" + "x" * 100)
    time.sleep(0.01)  # LastModified has millisecond resolution
    resp = lam.update_function_code(FunctionName=name, ZipFile=new_zip)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["CodeSha256"] == code_sha256(new_zip) != old["CodeSha256"]
    assert resp["CodeSize"] == len(new_zip)
    assert UUID_RE.match(resp["RevisionId"]) and resp["RevisionId"] != old["RevisionId"]
    assert LAST_MODIFIED_RE.match(resp["LastModified"])
    assert resp["LastModified"] != old["LastModified"]
    assert resp["LastUpdateStatus"] == "InProgress"
    assert resp["LastUpdateStatusReasonCode"] == "Creating"
    got = lam.get_function(FunctionName=name)
    assert got["Configuration"] == settled(resp)
    assert download(got["Code"]["Location"])[1] == new_zip


def test_update_function_code_revision_id(lam):
    name = unique_name("rev")
    old = create_function(lam, name)
    with pytest.raises(ClientError) as ei:
        lam.update_function_code(FunctionName=name, ZipFile=py_zip("other"),
                                 RevisionId="00000000-0000-4000-8000-000000000000")
    assert error_of(ei)[:2] == (412, "PreconditionFailedException")
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == old["CodeSha256"]
    ok = lam.update_function_code(FunctionName=name, ZipFile=py_zip("other"), RevisionId=old["RevisionId"])
    assert ok["RevisionId"] != old["RevisionId"]
    # The old revision is stale now.
    with pytest.raises(ClientError) as ei:
        lam.update_function_configuration(FunctionName=name, Timeout=9, RevisionId=old["RevisionId"])
    assert error_of(ei)[:2] == (412, "PreconditionFailedException")
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 3


@pytest.fixture(scope="module")
def layer_arn(lam):
    zip_bytes = make_zip({"python/helper_mod.py": "VALUE = 1\n"})
    resp = lam.publish_layer_version(LayerName=unique_name("layer"), Content={"ZipFile": zip_bytes},
                                     CompatibleRuntimes=["python3.12"])
    return resp["LayerVersionArn"], len(zip_bytes)


CONFIG_UPDATES = {
    "Environment": ({"Variables": {"MODE": "test", "LEVEL": "3"}},
                    lambda cfg: cfg["Environment"] == {"Variables": {"MODE": "test", "LEVEL": "3"}}),
    "MemorySize": (1024, lambda cfg: cfg["MemorySize"] == 1024),
    "Timeout": (900, lambda cfg: cfg["Timeout"] == 900),
    "Handler": ("app.main", lambda cfg: cfg["Handler"] == "app.main"),
    "Description": ("updated description", lambda cfg: cfg["Description"] == "updated description"),
    "EphemeralStorage": ({"Size": 10240}, lambda cfg: cfg["EphemeralStorage"] == {"Size": 10240}),
}


@pytest.mark.parametrize("field", sorted(CONFIG_UPDATES))
def test_update_function_configuration(lam, field):
    name = unique_name("upcfg")
    old = create_function(lam, name)
    value, check = CONFIG_UPDATES[field]
    time.sleep(0.01)
    resp = lam.update_function_configuration(FunctionName=name, **{field: value})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert check(resp), resp
    assert resp["RevisionId"] != old["RevisionId"]
    assert resp["LastModified"] != old["LastModified"]
    assert resp["CodeSha256"] == old["CodeSha256"]
    cfg = lam.get_function_configuration(FunctionName=name)
    assert check(cfg), cfg
    assert strip_meta(cfg) == settled(resp)
    # Fields not mentioned keep their values.
    for other in ("Runtime", "Role", "PackageType", "Architectures"):
        assert cfg[other] == old[other]


def test_update_function_configuration_layers(lam, layer_arn):
    arn, size = layer_arn
    name = unique_name("uplayer")
    create_function(lam, name)
    resp = lam.update_function_configuration(FunctionName=name, Layers=[arn])
    assert [l["Arn"] for l in resp["Layers"]] == [arn]
    assert resp["Layers"][0]["CodeSize"] == size
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["Layers"] == resp["Layers"]


def test_update_configuration_validation(lam_raw):
    name = unique_name("upbad")
    create_function(lam_raw, name)
    for kwargs in ({"MemorySize": 10241}, {"Timeout": 901}, {"EphemeralStorage": {"Size": 511}}):
        with pytest.raises(ClientError) as ei:
            lam_raw.update_function_configuration(FunctionName=name, **kwargs)
        assert error_of(ei)[:2] == (400, "ValidationException"), kwargs
    with pytest.raises(ClientError) as ei:
        lam_raw.update_function_configuration(FunctionName=name,
                                              Environment={"Variables": {"AWS_REGION": "x"}})
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    cfg = lam_raw.get_function_configuration(FunctionName=name)
    assert (cfg["MemorySize"], cfg["Timeout"], cfg["EphemeralStorage"]) == (128, 3, {"Size": 512})
    assert "Environment" not in cfg


# --------------------------------------------------------------------------
# delete


@pytest.mark.smoke
def test_delete_function(lam):
    name = unique_name("del")
    create_function(lam, name)
    resp = lam.delete_function(FunctionName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as ei:
        lam.get_function(FunctionName=name)
    status, code, msg = error_of(ei)
    assert status == 404
    assert msg == f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{name}"
    names = {f["FunctionName"] for f in lam.get_paginator("list_functions").paginate().build_full_result()["Functions"]}
    assert name not in names
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName=name)
    # The name is free again.
    assert create_function(lam, name)["FunctionName"] == name


# --------------------------------------------------------------------------
# waiters


def test_waiter_function_active_v2_and_updated_v2(lam):
    name = unique_name("wait")
    create_function(lam, name)
    t0 = time.monotonic()
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    lam.update_function_configuration(FunctionName=name, Timeout=10)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    lam.get_waiter("function_active").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    lam.get_waiter("function_updated").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    # Active/Successful right away: each waiter succeeds on its first poll.
    assert time.monotonic() - t0 < 3


def test_waiter_function_exists(server, lam):
    name = unique_name("exists")
    creator = server.client()
    errors = []

    def create_later():
        try:
            time.sleep(0.5)
            create_function(creator, name)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=create_later)
    t0 = time.monotonic()
    t.start()
    try:
        lam.get_waiter("function_exists").wait(FunctionName=name,
                                                WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    finally:
        t.join(30)
    assert not errors, errors
    assert time.monotonic() - t0 >= 0.5  # it really had to wait (retrying on 404)
    assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


# --------------------------------------------------------------------------
# validation and errors


def test_duplicate_name_conflict(lam):
    name = unique_name("dup")
    first = create_function(lam, name)
    with pytest.raises(lam.exceptions.ResourceConflictException) as ei:
        create_function(lam, name, py_zip("second"))
    assert error_of(ei) == (409, "ResourceConflictException", f"Function already exist: {name}")
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == first["CodeSha256"]


ENV_4K = {f"VAR{i}": "v" * 100 for i in range(45)}  # > 4 KB in total

INVALID_CREATES = {
    # name: (overrides, expected code)
    "bad-name-chars": ({"FunctionName": "bad name!"}, "ValidationException"),
    "name-65-chars": ({"FunctionName": "n" * 65}, "ValidationException"),
    "memory-127": ({"MemorySize": 127}, "ValidationException"),
    "memory-10241": ({"MemorySize": 10241}, "ValidationException"),
    "timeout-0": ({"Timeout": 0}, "ValidationException"),
    "timeout-901": ({"Timeout": 901}, "ValidationException"),
    "ephemeral-511": ({"EphemeralStorage": {"Size": 511}}, "ValidationException"),
    "ephemeral-10241": ({"EphemeralStorage": {"Size": 10241}}, "ValidationException"),
    "unknown-runtime": ({"Runtime": "python9.9"}, "ValidationException"),
    "bad-role": ({"Role": "not-a-role-arn"}, "ValidationException"),
    "missing-handler": ({"Handler": None}, "InvalidParameterValueException"),
    "env-over-4kb": ({"Environment": {"Variables": ENV_4K}}, "InvalidParameterValueException"),
    "reserved-env-key": ({"Environment": {"Variables": {"AWS_REGION": "eu-west-1"}}},
                         "InvalidParameterValueException"),
}


@pytest.mark.parametrize("case", sorted(INVALID_CREATES))
def test_create_validation_errors(lam_raw, case):
    overrides, expected = INVALID_CREATES[case]
    name = unique_name("invalid")
    params = dict(FunctionName=name, Runtime="python3.12", Role=ROLE,
                  Handler="lambda_function.handler", Code={"ZipFile": py_zip(case)})
    for k, v in overrides.items():
        if v is None:
            params.pop(k)
        else:
            params[k] = v
    with pytest.raises(ClientError) as ei:
        lam_raw.create_function(**params)
    status, code, msg = error_of(ei)
    assert (status, code) == (400, expected), msg
    assert msg, "error without a message"
    if expected == "ValidationException":
        assert re.match(r"^\d+ validation errors? detected: ", msg), msg
    assert ei.value.response["ResponseMetadata"]["RequestId"]
    if params["FunctionName"] == name:
        assert_not_found(lam_raw, name)
    else:  # an invalid name cannot be looked up; it must not be listed either
        listed = lam_raw.get_paginator("list_functions").paginate().build_full_result()["Functions"]
        assert params["FunctionName"] not in {f["FunctionName"] for f in listed}


def test_env_under_4kb_is_accepted(lam):
    # 3 KB of variables is within the 4 KB limit however it is counted.
    name = unique_name("env3k")
    variables = {"KEY": "v" * 3000}
    resp = create_function(lam, name, Environment={"Variables": variables})
    assert resp["Environment"] == {"Variables": variables}


HOSTILE_ZIPS = {
    "corrupt": b"PK\x03\x04 this is not a zip archive at all" + os.urandom(64),
    "empty-bytes-garbage": os.urandom(256),
    "dotdot-entry": make_zip({"lambda_function.py": "x = 1\n", "../evil": "pwned\n"}),
    "nested-dotdot-entry": make_zip({"lambda_function.py": "x = 1\n", "a/../../evil": "pwned\n"}),
    "absolute-entry": make_zip({"lambda_function.py": "x = 1\n", "/tmp/lambdad-evil": "pwned\n"}),
    "symlink-escape": make_zip({"lambda_function.py": "x = 1\n", "link": ("../../../../../etc", 0o120777)}),
    "symlink-absolute": make_zip({"lambda_function.py": "x = 1\n", "link": ("/etc/passwd", 0o120777)}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ZIPS))
def test_hostile_or_corrupt_zip_refused(server, lam, case):
    before = tree_snapshot(server.data_dir)
    name = unique_name("zip")
    with pytest.raises(ClientError) as ei:
        create_function(lam, name, HOSTILE_ZIPS[case])
    status, code, msg = error_of(ei)
    assert (status, code) == (400, "InvalidParameterValueException"), msg
    if case in ("corrupt", "empty-bytes-garbage"):
        assert msg == "Could not unzip uploaded file. Please check your file, then try to upload again."
    assert_not_found(lam, name)
    added = tree_snapshot(server.data_dir) - before
    assert not added, f"refused upload left files behind: {sorted(added)}"
    assert not os.path.exists("/tmp/lambdad-evil")


def test_update_code_with_corrupt_zip_keeps_old_code(server, lam):
    name = unique_name("zipupd")
    zip_bytes = py_zip(name)
    create_function(lam, name, zip_bytes)
    before = tree_snapshot(server.data_dir)
    with pytest.raises(ClientError) as ei:
        lam.update_function_code(FunctionName=name, ZipFile=HOSTILE_ZIPS["dotdot-entry"])
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    assert tree_snapshot(server.data_dir) - before == set()
    got = lam.get_function(FunctionName=name)
    assert got["Configuration"]["CodeSha256"] == code_sha256(zip_bytes)
    assert download(got["Code"]["Location"])[1] == zip_bytes


def test_zip_with_internal_symlink_and_exec_bit_accepted(lam):
    name = unique_name("zipok")
    zip_bytes = make_zip({"lambda_function.py": "def handler(e, c):\n    return 1\n",
                          "bin/tool": ("#!/bin/sh\necho hi\n", 0o755),
                          "alias.py": ("lambda_function.py", 0o120777)})
    resp = create_function(lam, name, zip_bytes)
    assert resp["CodeSha256"] == code_sha256(zip_bytes)


def test_s3_code_refused(lam):
    name = unique_name("s3")
    with pytest.raises(ClientError) as ei:
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE,
                            Handler="lambda_function.handler",
                            Code={"S3Bucket": "my-bucket", "S3Key": "code.zip"})
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    assert_not_found(lam, name)


def _missing_ops(name):
    arn = function_arn(name)
    return {
        "get_function": lambda c: c.get_function(FunctionName=name),
        "get_function_configuration": lambda c: c.get_function_configuration(FunctionName=name),
        "update_function_code": lambda c: c.update_function_code(FunctionName=name, ZipFile=py_zip()),
        "update_function_configuration": lambda c: c.update_function_configuration(FunctionName=name, Timeout=5),
        "delete_function": lambda c: c.delete_function(FunctionName=name),
        "invoke": lambda c: c.invoke(FunctionName=name, Payload=b"{}"),
        "publish_version": lambda c: c.publish_version(FunctionName=name),
        "list_versions_by_function": lambda c: c.list_versions_by_function(FunctionName=name),
        "create_alias": lambda c: c.create_alias(FunctionName=name, Name="live", FunctionVersion="1"),
        "list_aliases": lambda c: c.list_aliases(FunctionName=name),
        "put_function_concurrency": lambda c: c.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=1),
        "get_function_concurrency": lambda c: c.get_function_concurrency(FunctionName=name),
        "add_permission": lambda c: c.add_permission(FunctionName=name, StatementId="s1",
                                                     Action="lambda:InvokeFunction",
                                                     Principal="s3.amazonaws.com"),
        "get_policy": lambda c: c.get_policy(FunctionName=name),
        "list_tags": lambda c: c.list_tags(Resource=arn),
        "tag_resource": lambda c: c.tag_resource(Resource=arn, Tags={"a": "b"}),
        "get_function_url_config": lambda c: c.get_function_url_config(FunctionName=name),
    }


CORE_OPS = {"get_function", "get_function_configuration", "update_function_code",
            "update_function_configuration", "delete_function", "invoke"}


@pytest.mark.parametrize("op", sorted(_missing_ops("x")))
def test_unknown_function_is_404_on_every_operation(lam, op):
    name = unique_name("missing")
    with pytest.raises(ClientError) as ei:
        _missing_ops(name)[op](lam)
    status, code, msg = error_of(ei)
    assert (status, code) == (404, "ResourceNotFoundException"), msg
    assert ei.value.response["ResponseMetadata"]["RequestId"]
    if op in CORE_OPS:
        assert msg == f"Function not found: {function_arn(name)}"


@pytest.mark.smoke
def test_request_id_on_success_and_error(lam):
    name = unique_name("rid")
    a = create_function(lam, name)["ResponseMetadata"]["RequestId"]
    b = lam.get_function(FunctionName=name)["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as ei:
        lam.get_function(FunctionName=name + "-nope")
    c = ei.value.response["ResponseMetadata"]["RequestId"]
    assert a and b and c
    assert len({a, b, c}) == 3


# --------------------------------------------------------------------------
# namespaces: region from the SigV4 scope, account from a 12-digit key id


def test_region_namespace(server, lam):
    name = unique_name("region")
    create_function(lam, name)
    eu = server.client(region="eu-west-1")
    eu_names = {f["FunctionName"] for f in eu.get_paginator("list_functions").paginate().build_full_result()["Functions"]}
    assert name not in eu_names
    assert_not_found(eu, name)
    # Same name, other region: no conflict, eu-west-1 ARN.
    resp = create_function(eu, name)
    assert resp["FunctionArn"] == f"arn:aws:lambda:eu-west-1:000000000000:function:{name}"
    assert eu.get_function(FunctionName=name)["Configuration"]["FunctionArn"] == resp["FunctionArn"]
    assert lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"] == function_arn(name)
    eu.delete_function(FunctionName=name)
    assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


def test_account_from_access_key_id(server, lam):
    other = server.client(access_key="123456789012")
    name = unique_name("acct")
    # The role must be the account's own (cross-account pass role is refused).
    resp = create_function(other, name, Role="arn:aws:iam::123456789012:role/lambda-role")
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    assert_not_found(lam, name)
    names = {f["FunctionName"] for f in lam.get_paginator("list_functions").paginate().build_full_result()["Functions"]}
    assert name not in names
    other_names = {f["FunctionName"] for f in other.list_functions(MaxItems=50)["Functions"]}
    assert name in other_names
    assert other.get_function(FunctionName=f"123456789012:function:{name}")["Configuration"]["FunctionName"] == name


# --------------------------------------------------------------------------
# raw HTTP


def _raw(server, method, path, body=None, headers=None, timeout=10):
    req = urllib.request.Request(server.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _hget(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


@pytest.mark.smoke
def test_unknown_route_404(server):
    status, headers, body = _raw(server, "GET", "/2015-03-31/no-such-thing")
    assert status == 404
    assert _hget(headers, "x-amzn-ErrorType")
    assert _hget(headers, "x-amzn-RequestId")


def test_malformed_json_body_400(server):
    status, headers, body = _raw(server, "POST", "/2015-03-31/functions", body=b'{"FunctionName": "x",',
                                 headers={"Content-Type": "application/json"})
    assert status == 400
    code = _hget(headers, "x-amzn-ErrorType")
    assert code and re.match(r"^[A-Z][A-Za-z]+(Exception)?$", code.split(":")[0]), code
    assert _hget(headers, "x-amzn-RequestId")
    json.loads(body)  # the error body is JSON


def test_huge_content_length_413(server):
    # Announce a body far above any CreateFunction limit and send none of it:
    # the server must answer from the headers alone.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /2015-03-31/functions HTTP/1.1\r\n"
                  b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1073741824\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
    assert re.match(r"^HTTP/1\.[01] 413 ", status_line), status_line
    # And the server is still fine.
    assert _raw(server, "GET", "/_lambdad/health")[0] == 200


# --------------------------------------------------------------------------
# AWS CLI


def test_aws_cli_list_functions(server, lam, tmp_path):
    aws = aws_cli_v1()
    name = unique_name("cli")
    create_function(lam, name)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_PAGER="")
    p = subprocess.run([aws, "lambda", "list-functions", "--endpoint-url", server.url,
                        "--output", "json"], env=env, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout)
    assert name in {f["FunctionName"] for f in out["Functions"]}


# --------------------------------------------------------------------------
# the binary's flags


def _run_bin(args, env=None, timeout=20):
    p = subprocess.run([LAMBDAD_BIN] + args, env=server_env(env), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    assert not sanitizer_findings(out + err), out + err
    return p.returncode, out, err


@pytest.mark.smoke
def test_flag_help_exits_0():
    rc, out, err = _run_bin(["--help"])
    assert rc == 0, err
    text = out + err
    for flag in ("--port", "--host", "--data-dir", "--ephemeral", "--lambda-executor"):
        assert flag in text, f"--help does not mention {flag}"


def test_bad_flag_exits_2_with_one_line():
    rc, out, err = _run_bin(["--no-such-flag"])
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    rc, out, err = _run_bin(["--port", "not-a-number", "--ephemeral"])
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err


def test_port_from_env(lambdad_factory):
    srv = lambdad_factory(ephemeral=True, port_flag=False)
    assert "--port" not in srv.command()
    assert srv.client().list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_port_flag_wins_over_env(lambdad_factory):
    decoy = free_port()
    srv = lambdad_factory(ephemeral=True, env={"LAMBDAD_PORT": str(decoy)})
    assert srv.client().list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", decoy), timeout=2).close()
