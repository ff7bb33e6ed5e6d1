"""Lambda layers end to end: PublishLayerVersion, GetLayerVersion[ByArn],
ListLayers, ListLayerVersions, DeleteLayerVersion, their persistence across
restarts, and functions that attach layers (configuration, validation, and a
Python handler importing a module from a layer).
"""
import json

import pytest
from botocore.exceptions import ClientError

from helpers import (LAST_MODIFIED_RE, code_sha256, create_function, download, make_zip, strip_meta,
                     tree_snapshot, unique_name)

ACCT = "000000000000"


def unsigned(resp):
    """A layer version response without ResponseMetadata and with
    Content.Location cut at its query: the Location is a fresh signed URL on
    every call (its expiry is now + the TTL, like AWS's presigned S3 URL),
    so two calls a second apart differ there; compare the blob it names."""
    out = strip_meta(resp)
    out["Content"] = dict(out["Content"], Location=out["Content"]["Location"].split("?", 1)[0])
    return out


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


@pytest.fixture(scope="module")
def lam_raw(server):
    """No client-side validation, to reach the server's own checks."""
    return server.client(validate=False)


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def layer_zip(tag, module="mylib"):
    return make_zip({f"python/{module}.py": f"VALUE = {tag!r}\n"})


def publish(client, name, tag, **kwargs):
    return client.publish_layer_version(LayerName=name, Content={"ZipFile": layer_zip(tag)}, **kwargs)


def layer_arn(name, region="us-east-1"):
    return f"arn:aws:lambda:{region}:{ACCT}:layer:{name}"


@pytest.mark.smoke
def test_publish_and_get(server, lam):
    name = unique_name("lay")
    z1, z2 = layer_zip("one"), layer_zip("two")
    r1 = lam.publish_layer_version(LayerName=name, Content={"ZipFile": z1}, Description="first",
                                   CompatibleRuntimes=["python3.12"], LicenseInfo="MIT",
                                   CompatibleArchitectures=["x86_64"])
    assert r1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert r1["Version"] == 1 and isinstance(r1["Version"], int)
    assert r1["LayerArn"] == layer_arn(name)
    assert r1["LayerVersionArn"] == layer_arn(name) + ":1"
    assert r1["Description"] == "first" and r1["LicenseInfo"] == "MIT"
    assert r1["CompatibleRuntimes"] == ["python3.12"]
    assert r1["CompatibleArchitectures"] == ["x86_64"]
    assert LAST_MODIFIED_RE.match(r1["CreatedDate"]), r1["CreatedDate"]
    assert r1["Content"]["CodeSha256"] == code_sha256(z1)
    assert r1["Content"]["CodeSize"] == len(z1)
    status, body = download(r1["Content"]["Location"])
    assert status == 200 and body == z1

    r2 = lam.publish_layer_version(LayerName=name, Content={"ZipFile": z2})
    assert r2["Version"] == 2 and r2["LayerVersionArn"] == layer_arn(name) + ":2"
    assert r2["Description"] == ""
    assert "CompatibleRuntimes" not in r2 and "LicenseInfo" not in r2

    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert unsigned(got) == unsigned(r1)
    status, body = download(got["Content"]["Location"])
    assert status == 200 and body == z1
    # LayerName may be the layer ARN.
    got = lam.get_layer_version(LayerName=layer_arn(name), VersionNumber=2)
    assert unsigned(got) == unsigned(r2)
    by_arn = lam.get_layer_version_by_arn(Arn=r1["LayerVersionArn"])
    assert unsigned(by_arn) == unsigned(r1)


def test_get_errors(lam, lam_raw):
    name = unique_name("lay")
    publish(lam, name, "x")
    with pytest.raises(ClientError) as ei:
        lam.get_layer_version(LayerName=name, VersionNumber=2)
    assert error_of(ei) == (404, "ResourceNotFoundException", "The resource you requested does not exist.")
    with pytest.raises(ClientError) as ei:
        lam.get_layer_version(LayerName=unique_name("none"), VersionNumber=1)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.get_layer_version_by_arn(Arn=layer_arn(name) + ":9")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam_raw.get_layer_version_by_arn(Arn=layer_arn(name))  # not a version ARN
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        lam.get_layer_version(LayerName=name, VersionNumber=0)
    assert error_of(ei) == (400, "InvalidParameterValueException", "Layer Version Cannot be less than 1")
    for bad in ("bad.name", "a" * 65, "has space"):
        with pytest.raises(ClientError) as ei:
            lam_raw.publish_layer_version(LayerName=bad, Content={"ZipFile": layer_zip("x")})
        status, code, msg = error_of(ei)
        assert (status, code) == (400, "ValidationException"), bad
        assert "at 'layerName' failed to satisfy constraint" in msg


def test_publish_errors(server, lam, lam_raw):
    name = unique_name("lay")
    before = tree_snapshot(server.data_dir)
    with pytest.raises(ClientError) as ei:
        lam.publish_layer_version(LayerName=name, Content={"ZipFile": b"not a zip"})
    assert error_of(ei) == (400, "InvalidParameterValueException",
                            "Could not unzip uploaded file. Please check your file, then try to upload again.")
    with pytest.raises(ClientError) as ei:
        lam.publish_layer_version(LayerName=name, Content={"S3Bucket": "my-bucket", "S3Key": "k.zip"})
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        lam_raw.publish_layer_version(LayerName=name, Content={"ZipFile": layer_zip("x")},
                                      CompatibleRuntimes=["cobol9"])
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        lam_raw.publish_layer_version(LayerName=name, Content={"ZipFile": layer_zip("x")},
                                      CompatibleArchitectures=["sparc"])
    assert error_of(ei)[:2] == (400, "ValidationException")
    assert tree_snapshot(server.data_dir) - before == set(), "refused publishes left files behind"
    # None of the refused calls consumed a version number.
    assert publish(lam, name, "ok")["Version"] == 1


def test_list_layer_versions_filters_and_pages(lam):
    name = unique_name("lay")
    publish(lam, name, 1, CompatibleRuntimes=["python3.12"], CompatibleArchitectures=["x86_64"])
    publish(lam, name, 2, CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["arm64"])
    publish(lam, name, 3, CompatibleRuntimes=["python3.12", "python3.11"],
            CompatibleArchitectures=["x86_64", "arm64"])
    publish(lam, name, 4)
    full = lam.list_layer_versions(LayerName=name)
    assert [v["Version"] for v in full["LayerVersions"]] == [4, 3, 2, 1]
    assert "NextMarker" not in full
    item = full["LayerVersions"][1]
    assert item["LayerVersionArn"] == layer_arn(name) + ":3"
    assert item["CompatibleRuntimes"] == ["python3.12", "python3.11"]
    assert set(item) >= {"LayerVersionArn", "Version", "Description", "CreatedDate"}
    assert [v["Version"] for v in lam.list_layer_versions(
        LayerName=name, CompatibleRuntime="python3.12")["LayerVersions"]] == [3, 1]
    assert [v["Version"] for v in lam.list_layer_versions(
        LayerName=name, CompatibleArchitecture="arm64")["LayerVersions"]] == [3, 2]
    assert [v["Version"] for v in lam.list_layer_versions(
        LayerName=name, CompatibleRuntime="python3.12",
        CompatibleArchitecture="arm64")["LayerVersions"]] == [3]
    # Pagination, by hand and with the boto3 paginator.
    page = lam.list_layer_versions(LayerName=name, MaxItems=3)
    assert [v["Version"] for v in page["LayerVersions"]] == [4, 3, 2] and page["NextMarker"]
    page2 = lam.list_layer_versions(LayerName=name, MaxItems=3, Marker=page["NextMarker"])
    assert [v["Version"] for v in page2["LayerVersions"]] == [1] and "NextMarker" not in page2
    pages = list(lam.get_paginator("list_layer_versions").paginate(
        LayerName=name, PaginationConfig={"PageSize": 1}))
    assert [p["LayerVersions"][0]["Version"] for p in pages] == [4, 3, 2, 1]
    # A layer that does not exist lists nothing.
    assert lam.list_layer_versions(LayerName=unique_name("none"))["LayerVersions"] == []


def test_list_layers(server):
    # A namespace of its own (region), so other tests' layers do not interfere.
    lam = server.client(region="ap-south-1")
    names = sorted(unique_name(f"l{i}") for i in range(3))
    publish(lam, names[0], "a", CompatibleRuntimes=["python3.12"])
    publish(lam, names[0], "b", CompatibleRuntimes=["nodejs20.x"])
    publish(lam, names[1], "c", CompatibleRuntimes=["python3.12"], CompatibleArchitectures=["arm64"])
    publish(lam, names[2], "d")
    listed = lam.list_layers()["Layers"]
    assert [l["LayerName"] for l in listed] == names
    assert listed[0]["LayerArn"] == layer_arn(names[0], "ap-south-1")
    assert listed[0]["LatestMatchingVersion"]["Version"] == 2
    assert listed[0]["LatestMatchingVersion"]["LayerVersionArn"] == layer_arn(names[0], "ap-south-1") + ":2"
    py = lam.list_layers(CompatibleRuntime="python3.12")["Layers"]
    assert [(l["LayerName"], l["LatestMatchingVersion"]["Version"]) for l in py] == [(names[0], 1), (names[1], 1)]
    arm = lam.list_layers(CompatibleArchitecture="arm64")["Layers"]
    assert [l["LayerName"] for l in arm] == [names[1]]
    pages = list(lam.get_paginator("list_layers").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["Layers"]) for p in pages] == [2, 1]
    assert [l["LayerName"] for p in pages for l in p["Layers"]] == names
    # Namespaces: us-east-1 does not see these.
    assert not set(names) & {l["LayerName"] for l in server.client().list_layers()["Layers"]}
    with pytest.raises(ClientError) as ei:
        server.client(region="ap-south-1", validate=False).list_layers(MaxItems=51)
    assert error_of(ei)[:2] == (400, "ValidationException")


def test_delete_layer_version(lam):
    name = unique_name("lay")
    publish(lam, name, 1)
    publish(lam, name, 2)
    resp = lam.delete_layer_version(LayerName=name, VersionNumber=2)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        lam.get_layer_version(LayerName=name, VersionNumber=2)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    # Idempotent, also for a layer that never existed.
    lam.delete_layer_version(LayerName=name, VersionNumber=2)
    lam.delete_layer_version(LayerName=unique_name("none"), VersionNumber=1)
    # Numbers are never reused, even after every version is gone.
    assert publish(lam, name, 3)["Version"] == 3
    lam.delete_layer_version(LayerName=name, VersionNumber=1)
    lam.delete_layer_version(LayerName=name, VersionNumber=3)
    assert lam.list_layer_versions(LayerName=name)["LayerVersions"] == []
    assert name not in {l["LayerName"] for l in lam.list_layers()["Layers"]}
    assert publish(lam, name, 4)["Version"] == 4


def test_function_with_layer_configuration_and_errors(lam, lam_raw):
    lname = unique_name("lay")
    z = layer_zip("cfg")
    v1 = lam.publish_layer_version(LayerName=lname, Content={"ZipFile": z})
    fn = unique_name("fnl")
    created = create_function(lam, fn, Layers=[v1["LayerVersionArn"]])
    assert created["Layers"] == [{"Arn": v1["LayerVersionArn"], "CodeSize": len(z)}]
    got = lam.get_function(FunctionName=fn)
    assert got["Configuration"]["Layers"] == [{"Arn": v1["LayerVersionArn"], "CodeSize": len(z)}]

    missing = layer_arn(lname) + ":7"
    for call in (lambda: create_function(lam, unique_name("fnl"), Layers=[missing]),
                 lambda: lam.update_function_configuration(FunctionName=fn, Layers=[missing])):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_of(ei) == (400, "InvalidParameterValueException", f"Layer version {missing} does not exist.")
    others = [publish(lam, unique_name("lay"), i)["LayerVersionArn"] for i in range(6)]
    with pytest.raises(ClientError) as ei:
        create_function(lam, unique_name("fnl"), Layers=others)
    assert error_of(ei) == (400, "InvalidParameterValueException", "Cannot reference more than 5 layers.")
    with pytest.raises(ClientError) as ei:
        lam_raw.update_function_configuration(FunctionName=fn, Layers=[layer_arn(lname)])  # no version
    assert error_of(ei)[:2] == (400, "ValidationException")
    v2 = publish(lam, lname, "two")
    with pytest.raises(ClientError) as ei:
        lam.update_function_configuration(FunctionName=fn, Layers=[v1["LayerVersionArn"], v2["LayerVersionArn"]])
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    # The failed updates changed nothing; five layers are fine; [] detaches.
    assert lam.get_function_configuration(FunctionName=fn)["Layers"] == created["Layers"]
    five = lam.update_function_configuration(FunctionName=fn, Layers=others[:5])
    assert [l["Arn"] for l in five["Layers"]] == others[:5]
    cleared = lam.update_function_configuration(FunctionName=fn, Layers=[])
    assert "Layers" not in cleared


def invoke_json(client, name, payload=None):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode())
    body = resp["Payload"].read()
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp, body
    return json.loads(body)


IMPORT_HANDLER = ("import mylib\n"
                  "def handler(event, context):\n"
                  "    return {'value': mylib.VALUE, 'file': mylib.__file__}\n")


@pytest.mark.smoke
def test_python_function_imports_module_from_layer(lam):
    lname = unique_name("lay")
    v = lam.publish_layer_version(LayerName=lname, Content={"ZipFile": layer_zip("from-layer")},
                                  CompatibleRuntimes=["python3.12"])
    fn = unique_name("fnimp")
    create_function(lam, fn, make_zip({"lambda_function.py": IMPORT_HANDLER}), Layers=[v["LayerVersionArn"]])
    out = invoke_json(lam, fn)
    assert out["value"] == "from-layer", out
    # A later layer overrides an earlier one (attach order), and the new
    # layer set is what the next invocation sees.
    v2 = lam.publish_layer_version(LayerName=unique_name("lay"), Content={"ZipFile": layer_zip("second")})
    lam.update_function_configuration(FunctionName=fn, Layers=[v["LayerVersionArn"], v2["LayerVersionArn"]])
    assert invoke_json(lam, fn)["value"] == "second"
    # Deleting the attached versions does not break the function (it keeps its copy).
    lam.delete_layer_version(LayerName=lname, VersionNumber=1)
    lam.update_function_configuration(FunctionName=fn, Timeout=10)
    assert invoke_json(lam, fn)["value"] == "second"


def test_layers_survive_restart(lambdad_factory):
    srv = lambdad_factory()
    lam = srv.client()
    name = unique_name("lay")
    z = layer_zip("persist")
    v1 = lam.publish_layer_version(LayerName=name, Content={"ZipFile": z}, CompatibleRuntimes=["python3.12"],
                                   Description="kept")
    publish(lam, name, "gone")
    lam.delete_layer_version(LayerName=name, VersionNumber=2)
    fn = unique_name("fnl")
    create_function(lam, fn, make_zip({"lambda_function.py": IMPORT_HANDLER}), Layers=[v1["LayerVersionArn"]])
    before = lam.list_layer_versions(LayerName=name)["LayerVersions"]

    srv.restart()
    lam = srv.client()
    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert unsigned(got) == unsigned(v1)
    assert lam.list_layer_versions(LayerName=name)["LayerVersions"] == before
    assert publish(lam, name, "next")["Version"] == 3  # 2 stays burnt
    assert lam.get_function(FunctionName=fn)["Configuration"]["Layers"] == [
        {"Arn": v1["LayerVersionArn"], "CodeSize": len(z)}]
    assert invoke_json(lam, fn)["value"] == "persist"
    # Kill -9 after a delete: the delete was durable.
    lam.delete_layer_version(LayerName=name, VersionNumber=1)
    srv.restart(kill=True)
    lam = srv.client()
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name)["LayerVersions"]] == [3]
    # The function still runs with its copy of the deleted version.
    assert invoke_json(lam, fn)["value"] == "persist"


def test_ephemeral_writes_nothing(lambdad_factory):
    srv = lambdad_factory(ephemeral=True)
    lam = srv.client()
    name = unique_name("lay")
    publish(lam, name, "x")
    assert lam.get_layer_version(LayerName=name, VersionNumber=1)["Version"] == 1
    assert tree_snapshot(srv.data_dir) == set()
    srv.restart()
    with pytest.raises(ClientError) as ei:
        srv.client().get_layer_version(LayerName=name, VersionNumber=1)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
