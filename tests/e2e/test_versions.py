"""Function versions and aliases end to end: PublishVersion snapshots,
qualifier resolution on reads, invokes and deletes, alias CRUD and errors,
weighted alias routing, deletion, persistence across a restart, and
Publish=true on CreateFunction / UpdateFunctionCode.

Every version gets code that answers with its own marker, so an invoke
proves which snapshot ran, not just what the header claims.
"""
import json

import pytest
from botocore.exceptions import ClientError

from helpers import code_sha256, create_function, function_arn, make_zip, unique_name


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


def marker_zip(marker):
    return make_zip({"lambda_function.py":
                     f"def handler(event, context):\n    return {{'marker': {marker!r}}}\n"})


def invoke(client, name, qualifier=None):
    """(marker the code returned, X-Amz-Executed-Version)."""
    kw = {"Qualifier": qualifier} if qualifier else {}
    resp = client.invoke(FunctionName=name, Payload=b"{}", **kw)
    assert "FunctionError" not in resp, resp["Payload"].read()
    return json.loads(resp["Payload"].read())["marker"], resp["ExecutedVersion"]


def error_of(excinfo):
    r = excinfo.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def two_versions(client, name):
    """A function whose version 1 runs "one" and version 2 (and $LATEST) "two"."""
    create_function(client, name, marker_zip("one"))
    client.publish_version(FunctionName=name)
    client.update_function_code(FunctionName=name, ZipFile=marker_zip("two"))
    client.publish_version(FunctionName=name)


@pytest.mark.smoke
def test_publish_and_invoke_each_version(lam):
    name = unique_name("ver")
    z1, z2 = marker_zip("one"), marker_zip("two")
    create_function(lam, name, z1, Description="latest desc")
    v1 = lam.publish_version(FunctionName=name)
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Version"] == "1"
    assert v1["FunctionArn"] == function_arn(name) + ":1"
    assert v1["CodeSha256"] == code_sha256(z1)
    assert v1["Description"] == "latest desc"
    # Unchanged $LATEST: the same version again, not a new one.
    again = lam.publish_version(FunctionName=name, Description="ignored")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert again["Version"] == "1" and again["RevisionId"] == v1["RevisionId"]

    # A configuration change (even only the Description) makes a new version.
    lam.update_function_configuration(FunctionName=name, Description="changed")
    v_desc = lam.publish_version(FunctionName=name)
    assert v_desc["Version"] == "2" and v_desc["Description"] == "changed"
    lam.delete_function(FunctionName=name, Qualifier="2")
    latest = lam.update_function_code(FunctionName=name, ZipFile=z2)
    with pytest.raises(ClientError) as ei:
        lam.publish_version(FunctionName=name, CodeSha256=code_sha256(z1))
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        lam.publish_version(FunctionName=name, RevisionId="00000000-0000-0000-0000-000000000000")
    assert error_of(ei)[:2] == (412, "PreconditionFailedException")
    v2 = lam.publish_version(FunctionName=name, Description="second", CodeSha256=code_sha256(z2),
                             RevisionId=latest["RevisionId"])
    assert v2["Version"] == "3" and v2["Description"] == "second"
    assert v2["CodeSha256"] == code_sha256(z2)

    # Versions are immutable: configuration updates only change $LATEST.
    lam.update_function_configuration(FunctionName=name, Timeout=42)
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["Timeout"] == 3
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 42

    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    assert invoke(lam, name) == ("two", "$LATEST")
    assert invoke(lam, name, "$LATEST") == ("two", "$LATEST")
    assert invoke(lam, name, "1") == ("one", "1")
    assert invoke(lam, name, "3") == ("two", "3")
    assert invoke(lam, name, "live") == ("one", "1")
    assert invoke(lam, f"{name}:live") == ("one", "1")
    assert invoke(lam, function_arn(name) + ":3") == ("two", "3")
    with pytest.raises(ClientError) as ei:
        invoke(lam, name, "7")
    assert error_of(ei) == (404, "ResourceNotFoundException",
                            f"Function not found: {function_arn(name)}:7")

    # Qualified reads.
    c1 = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert (c1["Version"], c1["FunctionArn"], c1["CodeSha256"]) == ("1", function_arn(name) + ":1",
                                                                   code_sha256(z1))
    ca = lam.get_function(FunctionName=name, Qualifier="live")["Configuration"]
    assert ca["Version"] == "1" and ca["FunctionArn"] == function_arn(name) + ":live"
    g2 = lam.get_function(FunctionName=f"{name}:3")
    assert g2["Configuration"]["Version"] == "3"


def test_list_versions_and_pagination(lam):
    name = unique_name("lv")
    create_function(lam, name, marker_zip("a"))
    for i in range(3):
        lam.publish_version(FunctionName=name)
        lam.update_function_configuration(FunctionName=name, Timeout=10 + i)
    listed = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in listed] == ["$LATEST", "1", "2", "3"]
    assert [v["Timeout"] for v in listed] == [12, 3, 10, 11]
    pages = list(lam.get_paginator("list_versions_by_function").paginate(
        FunctionName=name, PaginationConfig={"PageSize": 1}))
    assert len(pages) == 4
    assert [p["Versions"][0]["Version"] for p in pages] == ["$LATEST", "1", "2", "3"]
    # ListFunctions shows versions only with FunctionVersion=ALL.
    plain = lam.get_paginator("list_functions").paginate().build_full_result()["Functions"]
    assert [f["FunctionArn"] for f in plain if f["FunctionName"] == name] == [function_arn(name)]
    every = lam.get_paginator("list_functions").paginate(FunctionVersion="ALL").build_full_result()["Functions"]
    mine = sorted(f["Version"] for f in every if f["FunctionName"] == name)
    assert mine == ["$LATEST", "1", "2", "3"]


def test_alias_crud_and_errors(lam):
    name = unique_name("alias")
    two_versions(lam, name)
    arn = function_arn(name)
    created = lam.create_alias(FunctionName=name, Name="prod", FunctionVersion="1", Description="p")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (created["AliasArn"], created["Name"], created["FunctionVersion"], created["Description"]) == \
        (arn + ":prod", "prod", "1", "p")
    assert created["RevisionId"]
    lam.create_alias(FunctionName=name, Name="dev", FunctionVersion="$LATEST")
    lam.create_alias(FunctionName=name, Name="beta", FunctionVersion="2")

    got = lam.get_alias(FunctionName=name, Name="prod")
    assert {k: got[k] for k in ("AliasArn", "Name", "FunctionVersion", "Description", "RevisionId")} == \
        {k: created[k] for k in ("AliasArn", "Name", "FunctionVersion", "Description", "RevisionId")}
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["beta", "dev", "prod"]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="1")["Aliases"]] == ["prod"]
    pages = list(lam.get_paginator("list_aliases").paginate(FunctionName=name,
                                                            PaginationConfig={"PageSize": 2}))
    assert [[a["Name"] for a in p["Aliases"]] for p in pages] == [["beta", "dev"], ["prod"]]

    with pytest.raises(ClientError) as ei:
        lam.create_alias(FunctionName=name, Name="prod", FunctionVersion="2")
    assert error_of(ei) == (409, "ResourceConflictException", f"Alias already exists: {arn}:prod")
    with pytest.raises(ClientError) as ei:
        lam.create_alias(FunctionName=name, Name="123", FunctionVersion="1")
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        lam.create_alias(FunctionName=name, Name="a" * 129, FunctionVersion="1")
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        lam.create_alias(FunctionName=name, Name="ghost", FunctionVersion="9")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.get_alias(FunctionName=name, Name="nope")
    assert error_of(ei) == (404, "ResourceNotFoundException", f"Cannot find alias arn: {arn}:nope")
    with pytest.raises(ClientError) as ei:
        invoke(lam, name, "nope")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")

    with pytest.raises(ClientError) as ei:
        lam.update_alias(FunctionName=name, Name="prod", FunctionVersion="2",
                         RevisionId="00000000-0000-0000-0000-000000000000")
    assert error_of(ei)[:2] == (412, "PreconditionFailedException")
    upd = lam.update_alias(FunctionName=name, Name="prod", FunctionVersion="2", RevisionId=got["RevisionId"])
    assert upd["FunctionVersion"] == "2" and upd["Description"] == "p"
    assert upd["RevisionId"] != got["RevisionId"]
    assert invoke(lam, name, "prod") == ("two", "2")
    with pytest.raises(ClientError) as ei:
        lam.update_alias(FunctionName=name, Name="missing", FunctionVersion="1")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")

    assert lam.delete_alias(FunctionName=name, Name="prod")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        lam.get_alias(FunctionName=name, Name="prod")
    assert error_of(ei)[0] == 404
    assert lam.delete_alias(FunctionName=name, Name="prod")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["beta", "dev"]


def test_alias_routing_weights(lam):
    name = unique_name("route")
    two_versions(lam, name)
    a = lam.create_alias(FunctionName=name, Name="canary", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    assert a["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}
    seen = {}
    for _ in range(40):
        marker, ver = invoke(lam, name, "canary")
        assert (marker, ver) in (("one", "1"), ("two", "2"))
        seen[ver] = seen.get(ver, 0) + 1
    assert set(seen) == {"1", "2"}, seen
    with pytest.raises(ClientError) as ei:
        lam.create_alias(FunctionName=name, Name="bad", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        lam.create_alias(FunctionName=name, Name="bad", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"8": 0.5}})
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    # Removing the routing sends everything to the primary again.
    lam.update_alias(FunctionName=name, Name="canary", RoutingConfig={"AdditionalVersionWeights": {}})
    assert {invoke(lam, name, "canary")[1] for _ in range(10)} == {"1"}


def test_delete_version(lam):
    name = unique_name("delv")
    two_versions(lam, name)
    lam.create_alias(FunctionName=name, Name="pin", FunctionVersion="2")
    with pytest.raises(ClientError) as ei:
        lam.delete_function(FunctionName=name, Qualifier="2")
    assert error_of(ei)[:2] == (409, "ResourceConflictException")
    with pytest.raises(ClientError) as ei:
        lam.delete_function(FunctionName=name, Qualifier="$LATEST")
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        lam.delete_function(FunctionName=name, Qualifier="9")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")

    assert invoke(lam, name, "1") == ("one", "1")  # warm environment for version 1
    lam.delete_function(FunctionName=name, Qualifier="1")
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]] == \
        ["$LATEST", "2"]
    with pytest.raises(ClientError) as ei:
        invoke(lam, name, "1")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.get_function(FunctionName=name, Qualifier="1")
    assert error_of(ei)[0] == 404
    # The rest is untouched, and numbers are never reused.
    assert invoke(lam, name, "pin") == ("two", "2")
    assert invoke(lam, name) == ("two", "$LATEST")
    lam.update_function_code(FunctionName=name, ZipFile=marker_zip("three"))
    assert lam.publish_version(FunctionName=name)["Version"] == "3"
    assert invoke(lam, name, "3") == ("three", "3")


def test_delete_function_removes_versions_and_aliases(lam):
    name = unique_name("delall")
    two_versions(lam, name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.delete_function(FunctionName=name)
    for call in (lambda: lam.get_function(FunctionName=name, Qualifier="1"),
                 lambda: lam.get_alias(FunctionName=name, Name="live"),
                 lambda: invoke(lam, name, "live")):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_of(ei)[0] == 404
    create_function(lam, name, marker_zip("fresh"))
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]] == ["$LATEST"]
    assert lam.list_aliases(FunctionName=name)["Aliases"] == []
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    assert invoke(lam, name, "1") == ("fresh", "1")


def test_publish_true_on_create_and_update(lam):
    name = unique_name("pub")
    z1 = marker_zip("c1")
    created = create_function(lam, name, z1, Publish=True)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    # As AWS: the unqualified ARN with Version "1" (and that ARN works).
    assert created["Version"] == "1" and created["FunctionArn"] == function_arn(name)
    assert lam.get_function(FunctionName=created["FunctionArn"])["Configuration"]["Version"] == "$LATEST"
    assert lam.get_function_configuration(FunctionName=name)["Version"] == "$LATEST"
    updated = lam.update_function_code(FunctionName=name, ZipFile=marker_zip("c2"), Publish=True)
    assert updated["Version"] == "2" and updated["FunctionArn"] == function_arn(name) + ":2"
    assert invoke(lam, name, "1") == ("c1", "1")
    assert invoke(lam, name, "2") == ("c2", "2")


def test_restart_keeps_versions_and_aliases(lambdad_factory):
    srv = lambdad_factory()
    c = srv.client()
    name = unique_name("persist")
    two_versions(c, name)
    lam_alias = c.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                               RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}})
    c.update_function_code(FunctionName=name, ZipFile=marker_zip("latest"))
    before_versions = c.list_versions_by_function(FunctionName=name)["Versions"]
    srv.restart()
    c = srv.client()
    after_versions = c.list_versions_by_function(FunctionName=name)["Versions"]
    assert after_versions == before_versions
    got = c.get_alias(FunctionName=name, Name="live")
    assert got["RevisionId"] == lam_alias["RevisionId"]
    assert got["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.25}}
    # Code blobs of every version survived the restart.
    assert invoke(c, name, "1") == ("one", "1")
    assert invoke(c, name, "2") == ("two", "2")
    assert invoke(c, name) == ("latest", "$LATEST")
    # The counter survived too: the next publish is 3.
    assert c.publish_version(FunctionName=name)["Version"] == "3"
