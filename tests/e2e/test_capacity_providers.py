"""Capacity providers (Lambda Managed Instances) end to end:
Create/Get/Update/Delete/ListCapacityProviders,
ListFunctionVersionsByCapacityProvider, the CapacityProviderConfig member of
CreateFunction/UpdateFunctionConfiguration, AWS's errors, hostile input and
persistence. lambdad launches no instances: it stores and returns what AWS
returns (documented).
"""
import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, unique_name

VPC = {"SubnetIds": ["subnet-0a1b2c3d"], "SecurityGroupIds": ["sg-0a1b2c3d"]}
PERM = {"CapacityProviderOperatorRoleArn": "arn:aws:iam::000000000000:role/cp-operator"}
CP_PREFIX = "arn:aws:lambda:us-east-1:000000000000:capacity-provider:"
MANUAL = {"ScalingMode": "Manual", "MaxVCpuCount": 64,
          "ScalingPolicies": [{"PredefinedMetricType": "LambdaCapacityProviderAverageCPUUtilization",
                               "TargetValue": 60.0}]}


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def create_cp(c, name=None, **kw):
    name = name or unique_name("cp")
    params = dict(CapacityProviderName=name, VpcConfig=VPC, PermissionsConfig=PERM)
    params.update(kw)
    return name, c.create_capacity_provider(**params)


def on_cp(arn, **kw):
    cfg = {"CapacityProviderArn": arn}
    cfg.update(kw)
    return {"LambdaManagedInstancesCapacityProviderConfig": cfg}


def raw_call(server, method, path, body=None, headers=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("x-amzn-ErrorType"), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-amzn-ErrorType"), json.loads(e.read() or b"{}")


def test_crud(server):
    c = server.client()
    name, r = create_cp(c, InstanceRequirements={"Architectures": ["arm64"],
                                                 "AllowedInstanceTypes": ["m7g.large", "c7g.xlarge"]},
                        KmsKeyArn="arn:aws:kms:us-east-1:000000000000:key/abc", Tags={"team": "a"})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    cp = r["CapacityProvider"]
    arn = CP_PREFIX + name
    assert cp["CapacityProviderArn"] == arn
    assert cp["State"] == "Pending"
    assert cp["VpcConfig"] == VPC and cp["PermissionsConfig"] == PERM
    assert cp["InstanceRequirements"] == {"Architectures": ["arm64"], "AllowedInstanceTypes": ["m7g.large", "c7g.xlarge"],
                                          "ExcludedInstanceTypes": []}
    assert cp["CapacityProviderScalingConfig"] == {"ScalingMode": "Auto"}
    assert cp["KmsKeyArn"] == "arn:aws:kms:us-east-1:000000000000:key/abc"
    got = c.get_capacity_provider(CapacityProviderName=name)["CapacityProvider"]
    assert got["State"] == "Active"
    assert {k: v for k, v in got.items() if k != "State"} == {k: v for k, v in cp.items() if k != "State"}
    # The ARN names it as well as the name.
    assert c.get_capacity_provider(CapacityProviderName=arn)["CapacityProvider"] == got
    assert arn in [x["CapacityProviderArn"] for x in c.list_capacity_providers()["CapacityProviders"]]

    up = c.update_capacity_provider(CapacityProviderName=name, CapacityProviderScalingConfig=MANUAL)
    assert up["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert up["CapacityProvider"]["CapacityProviderScalingConfig"] == MANUAL
    assert up["CapacityProvider"]["VpcConfig"] == VPC
    # Back to Auto drops the Manual policies; MaxVCpuCount stays.
    up = c.update_capacity_provider(CapacityProviderName=arn, CapacityProviderScalingConfig={"ScalingMode": "Auto"})
    assert up["CapacityProvider"]["CapacityProviderScalingConfig"] == {"ScalingMode": "Auto", "MaxVCpuCount": 64}

    d = c.delete_capacity_provider(CapacityProviderName=name)
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert d["CapacityProvider"]["State"] == "Deleting"
    assert d["CapacityProvider"]["CapacityProviderArn"] == arn
    for call in (lambda: c.get_capacity_provider(CapacityProviderName=name),
                 lambda: c.delete_capacity_provider(CapacityProviderName=name),
                 lambda: c.update_capacity_provider(CapacityProviderName=name,
                                                    CapacityProviderScalingConfig={"MaxVCpuCount": 4}),
                 lambda: c.list_function_versions_by_capacity_provider(CapacityProviderName=name)):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_of(ei) == (404, "ResourceNotFoundException", f"Capacity provider not found: {name}")


def test_create_conflict_and_namespaces(server):
    c = server.client()
    name, _ = create_cp(c)
    with pytest.raises(ClientError) as ei:
        create_cp(c, name)
    assert error_of(ei) == (409, "ResourceConflictException", f"Capacity provider already exists: {CP_PREFIX}{name}")
    # Another region or account sees nothing of it.
    other = server.client(region="eu-west-1")
    with pytest.raises(ClientError) as ei:
        other.get_capacity_provider(CapacityProviderName=name)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    assert name not in json.dumps(other.list_capacity_providers())
    # An ARN of another region is not found here, and cannot be created here.
    foreign = f"arn:aws:lambda:eu-west-1:000000000000:capacity-provider:{name}"
    with pytest.raises(ClientError) as ei:
        c.get_capacity_provider(CapacityProviderName=foreign)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        create_cp(c, foreign)
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")


def test_pending_then_active(lambdad_factory):
    srv = lambdad_factory(args=["--state-transition-ms", "60000"], ephemeral=True)
    c = srv.client()
    name, r = create_cp(c)
    assert r["CapacityProvider"]["State"] == "Pending"
    assert c.get_capacity_provider(CapacityProviderName=name)["CapacityProvider"]["State"] == "Pending"
    assert [x["CapacityProviderArn"] for x in c.list_capacity_providers(State="Pending")["CapacityProviders"]] \
        == [CP_PREFIX + name]
    assert c.list_capacity_providers(State="Active")["CapacityProviders"] == []


def test_list_pagination_and_filter(lambdad_factory):
    srv = lambdad_factory(ephemeral=True)
    c = srv.client()
    names = sorted(create_cp(c, f"page-{i:02d}")[0] for i in range(7))
    seen, marker, pages = [], None, 0
    while True:
        kw = {"MaxItems": 3}
        if marker:
            kw["Marker"] = marker
        r = c.list_capacity_providers(**kw)
        pages += 1
        assert len(r["CapacityProviders"]) <= 3
        seen += [x["CapacityProviderArn"].rsplit(":", 1)[1] for x in r["CapacityProviders"]]
        marker = r.get("NextMarker")
        if not marker:
            break
    assert seen == names and pages == 3
    assert [x["CapacityProviderArn"] for x in c.list_capacity_providers(State="Active")["CapacityProviders"]] \
        == [CP_PREFIX + n for n in names]
    assert c.list_capacity_providers(State="Failed")["CapacityProviders"] == []
    # The paginator drives the same Marker protocol.
    got = [x for p in c.get_paginator("list_capacity_providers").paginate(PaginationConfig={"PageSize": 2})
           for x in p["CapacityProviders"]]
    assert len(got) == 7
    raw = srv.client(validate=False)
    for bad in ({"MaxItems": 0}, {"MaxItems": 51}, {"State": "Sleeping"}):
        with pytest.raises(ClientError) as ei:
            raw.list_capacity_providers(**bad)
        assert error_of(ei)[:2] == (400, "ValidationException"), bad
    with pytest.raises(ClientError) as ei:
        c.list_capacity_providers(Marker="not-a-marker")
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")


def test_validation(server):
    raw = server.client(validate=False)
    cases = [
        (dict(CapacityProviderName="bad name!", VpcConfig=VPC, PermissionsConfig=PERM), "capacityProviderName"),
        (dict(CapacityProviderName="x" * 141, VpcConfig=VPC, PermissionsConfig=PERM), "capacityProviderName"),
        (dict(CapacityProviderName=unique_name("v"), PermissionsConfig=PERM), "'vpcConfig'"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig=VPC), "'permissionsConfig'"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig={"SubnetIds": [], "SecurityGroupIds": []},
              PermissionsConfig=PERM), "Value '[]' at 'vpcConfig.subnetIds'"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig={"SubnetIds": ["s"], "SecurityGroupIds": ["g"] * 6},
              PermissionsConfig=PERM), "vpcConfig.securityGroupIds"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig=VPC,
              PermissionsConfig={"CapacityProviderOperatorRoleArn": "not-a-role"}),
         "permissionsConfig.capacityProviderOperatorRoleArn"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig=VPC, PermissionsConfig=PERM,
              InstanceRequirements={"Architectures": ["sparc"]}), "instanceRequirements.architectures.member"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig=VPC, PermissionsConfig=PERM,
              InstanceRequirements={"AllowedInstanceTypes": ["m7g large"]}),
         "instanceRequirements.allowedInstanceTypes"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig=VPC, PermissionsConfig=PERM,
              CapacityProviderScalingConfig={"MaxVCpuCount": 1}), "capacityProviderScalingConfig.maxVCpuCount"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig=VPC, PermissionsConfig=PERM,
              CapacityProviderScalingConfig={"ScalingMode": "Sometimes"}),
         "capacityProviderScalingConfig.scalingMode"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig=VPC, PermissionsConfig=PERM,
              CapacityProviderScalingConfig={"ScalingMode": "Manual", "ScalingPolicies": [
                  {"PredefinedMetricType": "LambdaCapacityProviderAverageCPUUtilization", "TargetValue": 101.0}]}),
         "targetValue"),
        (dict(CapacityProviderName=unique_name("v"), VpcConfig=VPC, PermissionsConfig=PERM, KmsKeyArn="key"),
         "kmsKeyArn"),
    ]
    for params, member in cases:
        with pytest.raises(ClientError) as ei:
            raw.create_capacity_provider(**params)
        status, code, msg = error_of(ei)
        assert (status, code) == (400, "ValidationException"), (params, msg)
        assert member in msg, (member, msg)
    # Rules between members.
    for extra in ({"InstanceRequirements": {"AllowedInstanceTypes": ["m7g.large"],
                                            "ExcludedInstanceTypes": ["c7g.large"]}},
                  {"CapacityProviderScalingConfig": {"ScalingMode": "Manual"}},
                  {"CapacityProviderScalingConfig": {"ScalingMode": "Auto",
                                                     "ScalingPolicies": MANUAL["ScalingPolicies"]}}):
        with pytest.raises(ClientError) as ei:
            create_cp(raw, **extra)
        assert error_of(ei)[:2] == (400, "InvalidParameterValueException"), extra
    name, _ = create_cp(raw)
    with pytest.raises(ClientError) as ei:
        raw.update_capacity_provider(CapacityProviderName=name, CapacityProviderScalingConfig={"MaxVCpuCount": 20000})
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        raw.update_capacity_provider(CapacityProviderName=name, CapacityProviderScalingConfig={"ScalingMode": "Manual"})
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        raw.get_capacity_provider(CapacityProviderName="no/such")
    assert error_of(ei)[:2] == (400, "ValidationException")


def test_hostile_input(server):
    path = "/2025-11-30/capacity-providers"
    ok = {"CapacityProviderName": unique_name("h"), "VpcConfig": VPC, "PermissionsConfig": PERM}
    # Not JSON, not an object, duplicate keys, too deep.
    for body in (b"{nope", b"[1,2]", b'{"CapacityProviderName":"a","CapacityProviderName":"b"}',
                 b"[" * 100000 + b"]" * 100000):
        status, code, _ = raw_call(server, "POST", path, body)
        assert (status, code) == (400, "InvalidRequestContentException"), body[:40]
    # Wrong member types anywhere in the tree.
    for patch in ({"VpcConfig": "subnet-1"}, {"VpcConfig": {"SubnetIds": "subnet-1", "SecurityGroupIds": []}},
                  {"VpcConfig": {"SubnetIds": [1], "SecurityGroupIds": []}}, {"PermissionsConfig": []},
                  {"PermissionsConfig": {"CapacityProviderOperatorRoleArn": 7}}, {"CapacityProviderName": 5},
                  {"InstanceRequirements": {"Architectures": "arm64"}}, {"InstanceRequirements": 3},
                  {"CapacityProviderScalingConfig": {"MaxVCpuCount": "8"}},
                  {"CapacityProviderScalingConfig": {"MaxVCpuCount": 8.5}},
                  {"CapacityProviderScalingConfig": {"ScalingPolicies": [5]}},
                  {"CapacityProviderScalingConfig": {"ScalingPolicies": "x"}}, {"Tags": ["a"]},
                  {"Tags": {"k": 1}}, {"KmsKeyArn": {"a": 1}}):
        status, code, body = raw_call(server, "POST", path, dict(ok, **patch))
        assert (status, code) == (400, "ValidationException"), (patch, body)
    # A name with NUL bytes or huge length.
    status, code, _ = raw_call(server, "POST", path, dict(ok, CapacityProviderName="a\u0000b"))
    assert status == 400 and code in ("ValidationException", "InvalidRequestContentException")
    status, code, _ = raw_call(server, "GET", path + "/" + "a" * 1500)
    assert (status, code) == (400, "ValidationException")
    # A body over the cap.
    status, code, _ = raw_call(server, "POST", path, b'{"x":"' + b"a" * (2 << 20) + b'"}')
    assert status == 413
    # Unknown members are ignored, as AWS ignores them.
    status, code, body = raw_call(server, "POST", path, dict(ok, Surprise={"deep": [1, 2]}))
    assert status == 202 and "Surprise" not in body["CapacityProvider"], body
    # None of it stored anything else.
    assert len(server.client().list_capacity_providers(MaxItems=50)["CapacityProviders"]) < 50
    assert server.client().get_capacity_provider(CapacityProviderName=ok["CapacityProviderName"])


def test_function_versions_and_delete_in_use(server):
    c = server.client()
    name, _ = create_cp(c)
    arn = CP_PREFIX + name
    fn = unique_name("cpf")
    created = create_function(c, fn, CapacityProviderConfig=on_cp(arn, PerExecutionEnvironmentMaxConcurrency=8,
                                                                  ExecutionEnvironmentMemoryGiBPerVCpu=4.0))
    assert created["CapacityProviderConfig"] == on_cp(arn, PerExecutionEnvironmentMaxConcurrency=8,
                                                      ExecutionEnvironmentMemoryGiBPerVCpu=4.0)
    assert c.get_function_configuration(FunctionName=fn)["CapacityProviderConfig"]["LambdaManagedInstancesCapacity" \
                                                                                    "ProviderConfig"]["CapacityProviderArn"] == arn
    v1 = c.publish_version(FunctionName=fn)
    assert v1["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]["CapacityProviderArn"] == arn
    plain = unique_name("plain")
    create_function(c, plain)
    r = c.list_function_versions_by_capacity_provider(CapacityProviderName=name)
    assert r["CapacityProviderArn"] == arn
    assert sorted(x["FunctionArn"] for x in r["FunctionVersions"]) == sorted(
        [function_arn(fn) + ":$LATEST", function_arn(fn) + ":1"])
    assert {x["State"] for x in r["FunctionVersions"]} == {"Active"}
    page = c.list_function_versions_by_capacity_provider(CapacityProviderName=arn, MaxItems=1)
    assert len(page["FunctionVersions"]) == 1 and page["NextMarker"]
    rest = c.list_function_versions_by_capacity_provider(CapacityProviderName=arn, Marker=page["NextMarker"])
    assert len(rest["FunctionVersions"]) == 1 and "NextMarker" not in rest

    with pytest.raises(ClientError) as ei:
        c.delete_capacity_provider(CapacityProviderName=name)
    status, code, msg = error_of(ei)
    assert (status, code) == (409, "ResourceConflictException") and fn in msg
    # Removing the function releases the provider.
    c.delete_function(FunctionName=fn)
    assert c.list_function_versions_by_capacity_provider(CapacityProviderName=name)["FunctionVersions"] == []
    assert c.delete_capacity_provider(CapacityProviderName=name)["CapacityProvider"]["State"] == "Deleting"


def test_function_capacity_provider_config_errors(server):
    c = server.client()
    raw = server.client(validate=False)
    ghost = CP_PREFIX + unique_name("ghost")
    with pytest.raises(ClientError) as ei:
        create_function(c, unique_name("cpg"), CapacityProviderConfig=on_cp(ghost))
    assert error_of(ei) == (400, "InvalidParameterValueException", f"The capacity provider {ghost} does not exist.")
    name, _ = create_cp(c)
    for cfg, member in ((on_cp("capacity-provider:x"), "capacityProviderArn"),
                        (on_cp(CP_PREFIX + name, PerExecutionEnvironmentMaxConcurrency=0),
                         "perExecutionEnvironmentMaxConcurrency"),
                        (on_cp(CP_PREFIX + name, ExecutionEnvironmentMemoryGiBPerVCpu=9.0),
                         "executionEnvironmentMemoryGiBPerVCpu"),
                        ({}, "lambdaManagedInstancesCapacityProviderConfig"),
                        ({"LambdaManagedInstancesCapacityProviderConfig": {}}, "capacityProviderArn")):
        with pytest.raises(ClientError) as ei:
            create_function(raw, unique_name("cpv"), CapacityProviderConfig=cfg)
        status, code, msg = error_of(ei)
        assert (status, code) == (400, "ValidationException") and member in msg, msg
    # UpdateFunctionConfiguration moves a function onto a provider.
    fn = unique_name("cpu")
    create_function(c, fn)
    c.get_waiter("function_active_v2").wait(FunctionName=fn)
    up = c.update_function_configuration(FunctionName=fn, CapacityProviderConfig=on_cp(CP_PREFIX + name))
    assert up["CapacityProviderConfig"] == on_cp(CP_PREFIX + name)
    with pytest.raises(ClientError) as ei:
        c.update_function_configuration(FunctionName=fn, CapacityProviderConfig=on_cp(ghost))
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    assert [x["FunctionArn"] for x in c.list_function_versions_by_capacity_provider(
        CapacityProviderName=name)["FunctionVersions"]] == [function_arn(fn) + ":$LATEST"]


def test_survive_restart(lambdad_factory):
    srv = lambdad_factory()
    c = srv.client()
    name, _ = create_cp(c, CapacityProviderScalingConfig=MANUAL, Tags={"k": "v"})
    fn = unique_name("cpr")
    create_function(c, fn, CapacityProviderConfig=on_cp(CP_PREFIX + name), Publish=True)
    gone, _ = create_cp(c)
    c.delete_capacity_provider(CapacityProviderName=gone)
    before = c.get_capacity_provider(CapacityProviderName=name)["CapacityProvider"]
    c.tag_resource(Resource=CP_PREFIX + name, Tags={"k2": "v2"})
    srv.restart(kill=True)
    c = srv.client()
    assert c.get_capacity_provider(CapacityProviderName=name)["CapacityProvider"] == before
    assert c.list_tags(Resource=CP_PREFIX + name)["Tags"] == {"k": "v", "k2": "v2"}
    assert [x["CapacityProviderArn"] for x in c.list_capacity_providers()["CapacityProviders"]] == [CP_PREFIX + name]
    assert len(c.list_function_versions_by_capacity_provider(CapacityProviderName=name)["FunctionVersions"]) == 2
    with pytest.raises(ClientError) as ei:
        c.delete_capacity_provider(CapacityProviderName=name)
    assert error_of(ei)[:2] == (409, "ResourceConflictException")


def test_tags(server):
    c = server.client()
    raw = server.client(validate=False)
    name, r = create_cp(c, Tags={"team": "a"})
    arn = r["CapacityProvider"]["CapacityProviderArn"]
    assert c.list_tags(Resource=arn)["Tags"] == {"team": "a"}
    c.tag_resource(Resource=arn, Tags={"env": "dev", "team": "b"})
    assert c.list_tags(Resource=arn)["Tags"] == {"team": "b", "env": "dev"}
    c.untag_resource(Resource=arn, TagKeys=["team", "absent"])
    assert c.list_tags(Resource=arn)["Tags"] == {"env": "dev"}
    c.untag_resource(Resource=arn, TagKeys=["env"])
    assert c.list_tags(Resource=arn)["Tags"] == {}
    for bad in ({"aws:x": "1"}, {"k" * 129: "v"}, {"k": "v" * 257}, {f"k{i}": "v" for i in range(51)}):
        with pytest.raises(ClientError) as ei:
            c.tag_resource(Resource=arn, Tags=bad)
        assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
        with pytest.raises(ClientError) as ei:
            create_cp(c, Tags=bad)
        assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    ghost = CP_PREFIX + unique_name("ghost")
    for call in (lambda: c.list_tags(Resource=ghost), lambda: c.tag_resource(Resource=ghost, Tags={"a": "b"}),
                 lambda: c.untag_resource(Resource=ghost, TagKeys=["a"])):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        raw.list_tags(Resource=CP_PREFIX + "bad name")
    assert error_of(ei)[:2] == (400, "ValidationException")
    status, code, _ = raw_call(server, "POST", "/2017-03-31/tags/" + arn.replace(":", "%3A"), {"Tags": "x"})
    assert (status, code) == (400, "ValidationException")
    # Deleting the provider deletes its tags.
    c.delete_capacity_provider(CapacityProviderName=name)
    with pytest.raises(ClientError) as ei:
        c.list_tags(Resource=arn)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
