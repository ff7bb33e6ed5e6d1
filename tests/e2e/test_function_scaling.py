"""Function scaling configurations (Get/PutFunctionScalingConfig) end to
end: stored per published version of a function that runs on a capacity
provider, validated as the model says, persisted. lambdad stores and reports
the bounds; it does not enforce them (documented).
"""
import pytest
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, unique_name

VPC = {"SubnetIds": ["subnet-1"], "SecurityGroupIds": []}
PERM = {"CapacityProviderOperatorRoleArn": "arn:aws:iam::000000000000:role/cp-operator"}


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def managed_function(c, publish=True):
    cp = unique_name("cp")
    arn = c.create_capacity_provider(CapacityProviderName=cp, VpcConfig=VPC,
                                     PermissionsConfig=PERM)["CapacityProvider"]["CapacityProviderArn"]
    fn = unique_name("sc")
    create_function(c, fn, Publish=publish,
                    CapacityProviderConfig={"LambdaManagedInstancesCapacityProviderConfig": {"CapacityProviderArn": arn}})
    return fn


def test_put_and_get(server):
    c = server.client()
    fn = managed_function(c)
    r = c.put_function_scaling_config(FunctionName=fn, Qualifier="1",
                                      FunctionScalingConfig={"MinExecutionEnvironments": 2,
                                                             "MaxExecutionEnvironments": 10})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert r["FunctionState"] == "Active"
    g = c.get_function_scaling_config(FunctionName=fn, Qualifier="1")
    assert g["FunctionArn"] == function_arn(fn) + ":1"
    assert g["RequestedFunctionScalingConfig"] == {"MinExecutionEnvironments": 2, "MaxExecutionEnvironments": 10}
    assert g["AppliedFunctionScalingConfig"] == g["RequestedFunctionScalingConfig"]
    # A full ARN names the function too; a second Put replaces the first.
    c.put_function_scaling_config(FunctionName=function_arn(fn), Qualifier="1",
                                  FunctionScalingConfig={"MinExecutionEnvironments": 0})
    g = c.get_function_scaling_config(FunctionName=function_arn(fn), Qualifier="1")
    assert g["RequestedFunctionScalingConfig"] == {"MinExecutionEnvironments": 0}
    # Per version: version 2 has none yet.
    c.update_function_configuration(FunctionName=fn, Description="v2")
    c.get_waiter("function_updated_v2").wait(FunctionName=fn)
    assert c.publish_version(FunctionName=fn)["Version"] == "2"
    g2 = c.get_function_scaling_config(FunctionName=fn, Qualifier="2")
    assert g2["FunctionArn"] == function_arn(fn) + ":2"
    assert "RequestedFunctionScalingConfig" not in g2


def test_errors(server):
    c = server.client()
    raw = server.client(validate=False)
    fn = managed_function(c)
    ghost = unique_name("ghost")
    with pytest.raises(ClientError) as ei:
        c.get_function_scaling_config(FunctionName=ghost, Qualifier="1")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        c.put_function_scaling_config(FunctionName=ghost, Qualifier="1", FunctionScalingConfig={})
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        c.get_function_scaling_config(FunctionName=fn, Qualifier="7")
    assert error_of(ei) == (404, "ResourceNotFoundException", f"Function not found: {function_arn(fn)}:7")
    # lambdad has no $LATEST.PUBLISHED version (PublishTo is not supported).
    with pytest.raises(ClientError) as ei:
        c.get_function_scaling_config(FunctionName=fn, Qualifier="$LATEST.PUBLISHED")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    # The qualifier is required and must name a published version.
    for q in (None, "$LATEST", "prod", "", "1" * 129):
        kw = {} if q is None else {"Qualifier": q}
        with pytest.raises(ClientError) as ei:
            raw.get_function_scaling_config(FunctionName=fn, **kw)
        assert error_of(ei)[:2] == (400, "ValidationException"), q
    with pytest.raises(ClientError) as ei:
        raw.get_function_scaling_config(FunctionName=fn + ":1", Qualifier="1")
    assert error_of(ei)[:2] == (400, "ValidationException")
    for bad in ({"MinExecutionEnvironments": -1}, {"MaxExecutionEnvironments": 15001},
                {"MinExecutionEnvironments": "3"}, {"MaxExecutionEnvironments": 2.5}):
        with pytest.raises(ClientError) as ei:
            raw.put_function_scaling_config(FunctionName=fn, Qualifier="1", FunctionScalingConfig=bad)
        assert error_of(ei)[:2] == (400, "ValidationException"), bad
    with pytest.raises(ClientError) as ei:
        c.put_function_scaling_config(FunctionName=fn, Qualifier="1",
                                      FunctionScalingConfig={"MinExecutionEnvironments": 5,
                                                             "MaxExecutionEnvironments": 4})
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    # Only functions on a capacity provider have one.
    plain = unique_name("plain")
    create_function(c, plain, Publish=True)
    with pytest.raises(ClientError) as ei:
        c.put_function_scaling_config(FunctionName=plain, Qualifier="1",
                                      FunctionScalingConfig={"MaxExecutionEnvironments": 4})
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    # Bad JSON bodies.
    import json
    import urllib.error
    import urllib.request
    for body in (b"{", b"[]", b'{"FunctionScalingConfig": 5}'):
        req = urllib.request.Request(f"{server.url}/2025-11-30/functions/{fn}/function-scaling-config?Qualifier=1",
                                     data=body, method="PUT")
        with pytest.raises(urllib.error.HTTPError) as he:
            urllib.request.urlopen(req, timeout=10)
        assert he.value.code == 400
        assert he.value.headers["x-amzn-ErrorType"] in ("InvalidRequestContentException", "ValidationException")
        json.loads(he.value.read())


def test_survives_restart(lambdad_factory):
    srv = lambdad_factory()
    c = srv.client()
    fn = managed_function(c)
    c.put_function_scaling_config(FunctionName=fn, Qualifier="1",
                                  FunctionScalingConfig={"MinExecutionEnvironments": 1, "MaxExecutionEnvironments": 3})
    srv.restart(kill=True)
    g = srv.client().get_function_scaling_config(FunctionName=fn, Qualifier="1")
    assert g["AppliedFunctionScalingConfig"] == {"MinExecutionEnvironments": 1, "MaxExecutionEnvironments": 3}
