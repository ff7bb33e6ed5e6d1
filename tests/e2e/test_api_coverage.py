"""Every operation of botocore's Lambda model, called through boto3 against
lambdad with minimal valid input: none may answer 501, 5xx or
UnknownOperationException, and each either succeeds or answers the error AWS
gives for what does not exist here (listed in EXPECTED_ERRORS). A botocore
upgrade that adds an operation fails test_every_model_operation_is_listed
until the operation is handled and added here.

The list may name operations newer than the installed botocore (NEWER_OPS:
setup installs the newest botocore, which a machine set up earlier may not
have): only the operations of the installed model are called.
"""
import base64
import json

import botocore.loaders
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from helpers import ROLE, create_function, function_arn, make_zip, unique_name

PROFILE = "arn:aws:signer:us-east-1:000000000000:/signing-profiles/P/abcdef1234"
OPERATOR = "arn:aws:iam::000000000000:role/cp-operator"

# What lambdad answers with an error for, and why (nothing of the kind can
# exist here): operation -> (HTTP status, error code).
EXPECTED_ERRORS = {
    "GetDurableExecution": (404, "ResourceNotFoundException"),
    "GetDurableExecutionHistory": (404, "ResourceNotFoundException"),
    "StopDurableExecution": (404, "ResourceNotFoundException"),
    "GetDurableExecutionState": (400, "InvalidParameterValueException"),
    "CheckpointDurableExecution": (400, "InvalidParameterValueException"),
    "SendDurableExecutionCallbackSuccess": (400, "CallbackTimeoutException"),
    "SendDurableExecutionCallbackFailure": (400, "CallbackTimeoutException"),
    "SendDurableExecutionCallbackHeartbeat": (400, "CallbackTimeoutException"),
    "DeleteDurableExecution": (404, "ResourceNotFoundException"),
    "PauseDurableExecution": (404, "ResourceNotFoundException"),
    "ResumeDurableExecution": (404, "ResourceNotFoundException"),
}

# Operations listed here that an older botocore's model lacks (botocore
# 1.43.x has none of them; 1.44.8 has all).
NEWER_OPS = {
    "GetResourcePolicy", "PutResourcePolicy", "DeleteResourcePolicy",
    "DeleteDurableExecution", "PauseDurableExecution", "ResumeDurableExecution",
}


def model_operations():
    loader = botocore.loaders.Loader()
    return set(loader.load_service_model("lambda", "service-2")["operations"])


class Ctx:
    """The resources the calls refer to, created once."""

    def __init__(self, c=None):
        self.fn = unique_name("cov")
        if c is not None:
            create_function(c, self.fn)
            c.get_waiter("function_active_v2").wait(FunctionName=self.fn)
        self.arn = function_arn(self.fn)
        self.layer = unique_name("covl")
        self.cp = unique_name("covcp")
        self.exec_arn = f"{self.arn}:$LATEST/durable-execution/run/abc123"
        self.callback = base64.b64encode(b"callback").decode()


def calls(ctx, state):
    """(operation, kwargs or a callable returning them), in an order where
    every create precedes its use and every delete comes last."""
    fn, arn = ctx.fn, ctx.arn
    return [
        ("GetAccountSettings", {}),
        ("ListFunctions", {}),
        ("CreateFunction", lambda: dict(FunctionName=unique_name("cov2"), Role=ROLE,
                                        Runtime="python3.12", Handler="lambda_function.handler",
                                        Code={"ZipFile": make_zip({"lambda_function.py":
                                                                   "def handler(e, c):\n    return 1\n"})})),
        ("GetFunction", dict(FunctionName=fn)),
        ("GetFunctionConfiguration", dict(FunctionName=fn)),
        ("UpdateFunctionConfiguration", dict(FunctionName=fn, Description="coverage")),
        ("UpdateFunctionCode", lambda: dict(FunctionName=fn, ZipFile=make_zip(
            {"lambda_function.py": "def handler(e, c):\n    return 2\n"}))),
        ("PublishVersion", dict(FunctionName=fn)),
        ("ListVersionsByFunction", dict(FunctionName=fn)),
        ("CreateAlias", dict(FunctionName=fn, Name="live", FunctionVersion="1")),
        ("GetAlias", dict(FunctionName=fn, Name="live")),
        ("UpdateAlias", dict(FunctionName=fn, Name="live", Description="d")),
        ("ListAliases", dict(FunctionName=fn)),
        ("Invoke", dict(FunctionName=fn, Payload=b"{}")),
        ("InvokeAsync", dict(FunctionName=fn, InvokeArgs=b"{}")),
        ("InvokeWithResponseStream", dict(FunctionName=fn, Payload=b"{}")),
        ("TagResource", dict(Resource=arn, Tags={"k": "v"})),
        ("ListTags", dict(Resource=arn)),
        ("UntagResource", dict(Resource=arn, TagKeys=["k"])),
        ("PutFunctionConcurrency", dict(FunctionName=fn, ReservedConcurrentExecutions=5)),
        ("GetFunctionConcurrency", dict(FunctionName=fn)),
        ("DeleteFunctionConcurrency", dict(FunctionName=fn)),
        ("AddPermission", dict(FunctionName=fn, StatementId="s1", Action="lambda:InvokeFunction",
                               Principal="s3.amazonaws.com")),
        ("GetPolicy", dict(FunctionName=fn)),
        ("RemovePermission", dict(FunctionName=fn, StatementId="s1")),
        ("PutResourcePolicy", dict(ResourceArn=arn, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Sid": "rp", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "lambda:InvokeFunction", "Resource": arn}]}))),
        ("GetResourcePolicy", dict(ResourceArn=arn)),
        ("DeleteResourcePolicy", dict(ResourceArn=arn)),
        ("PublishLayerVersion", dict(LayerName=ctx.layer, Content={"ZipFile": make_zip({"python/x.py": ""})})),
        ("ListLayers", {}),
        ("ListLayerVersions", dict(LayerName=ctx.layer)),
        ("GetLayerVersion", dict(LayerName=ctx.layer, VersionNumber=1)),
        ("GetLayerVersionByArn", dict(Arn=f"arn:aws:lambda:us-east-1:000000000000:layer:{ctx.layer}:1")),
        ("AddLayerVersionPermission", dict(LayerName=ctx.layer, VersionNumber=1, StatementId="s1",
                                           Action="lambda:GetLayerVersion", Principal="*")),
        ("GetLayerVersionPolicy", dict(LayerName=ctx.layer, VersionNumber=1)),
        ("RemoveLayerVersionPermission", dict(LayerName=ctx.layer, VersionNumber=1, StatementId="s1")),
        ("CreateFunctionUrlConfig", dict(FunctionName=fn, AuthType="NONE")),
        ("GetFunctionUrlConfig", dict(FunctionName=fn)),
        ("UpdateFunctionUrlConfig", dict(FunctionName=fn, AuthType="AWS_IAM")),
        ("ListFunctionUrlConfigs", dict(FunctionName=fn)),
        ("PutFunctionEventInvokeConfig", dict(FunctionName=fn, MaximumRetryAttempts=1)),
        ("GetFunctionEventInvokeConfig", dict(FunctionName=fn)),
        ("UpdateFunctionEventInvokeConfig", dict(FunctionName=fn, MaximumRetryAttempts=0)),
        ("ListFunctionEventInvokeConfigs", dict(FunctionName=fn)),
        ("PutProvisionedConcurrencyConfig", dict(FunctionName=fn, Qualifier="live",
                                                 ProvisionedConcurrentExecutions=1)),
        ("GetProvisionedConcurrencyConfig", dict(FunctionName=fn, Qualifier="live")),
        ("ListProvisionedConcurrencyConfigs", dict(FunctionName=fn)),
        ("PutFunctionRecursionConfig", dict(FunctionName=fn, RecursiveLoop="Allow")),
        ("GetFunctionRecursionConfig", dict(FunctionName=fn)),
        ("PutRuntimeManagementConfig", dict(FunctionName=fn, UpdateRuntimeOn="Auto")),
        ("GetRuntimeManagementConfig", dict(FunctionName=fn)),
        ("CreateCodeSigningConfig", dict(AllowedPublishers={"SigningProfileVersionArns": [PROFILE]})),
        ("ListCodeSigningConfigs", {}),
        ("GetCodeSigningConfig", lambda: dict(CodeSigningConfigArn=state["csc"])),
        ("UpdateCodeSigningConfig", lambda: dict(CodeSigningConfigArn=state["csc"], Description="d")),
        ("PutFunctionCodeSigningConfig", lambda: dict(FunctionName=fn, CodeSigningConfigArn=state["csc"])),
        ("GetFunctionCodeSigningConfig", dict(FunctionName=fn)),
        ("ListFunctionsByCodeSigningConfig", lambda: dict(CodeSigningConfigArn=state["csc"])),
        ("DeleteFunctionCodeSigningConfig", dict(FunctionName=fn)),
        ("CreateEventSourceMapping", dict(FunctionName=fn,
                                          EventSourceArn="arn:aws:sqs:us-east-1:000000000000:q")),
        ("ListEventSourceMappings", {}),
        ("GetEventSourceMapping", lambda: dict(UUID=state["esm"])),
        ("UpdateEventSourceMapping", lambda: dict(UUID=state["esm"], BatchSize=5)),
        ("CreateCapacityProvider", dict(CapacityProviderName=ctx.cp,
                                        VpcConfig={"SubnetIds": ["subnet-1"], "SecurityGroupIds": []},
                                        PermissionsConfig={"CapacityProviderOperatorRoleArn": OPERATOR})),
        ("GetCapacityProvider", dict(CapacityProviderName=ctx.cp)),
        ("UpdateCapacityProvider", dict(CapacityProviderName=ctx.cp,
                                        CapacityProviderScalingConfig={"MaxVCpuCount": 8})),
        ("ListCapacityProviders", {}),
        ("ListFunctionVersionsByCapacityProvider", dict(CapacityProviderName=ctx.cp)),
        ("PutFunctionScalingConfig", lambda: dict(FunctionName=state["managed"], Qualifier="1",
                                                  FunctionScalingConfig={"MaxExecutionEnvironments": 2})),
        ("GetFunctionScalingConfig", lambda: dict(FunctionName=state["managed"], Qualifier="1")),
        ("ListDurableExecutionsByFunction", dict(FunctionName=fn)),
        ("GetDurableExecution", dict(DurableExecutionArn=ctx.exec_arn)),
        ("GetDurableExecutionHistory", dict(DurableExecutionArn=ctx.exec_arn)),
        ("GetDurableExecutionState", dict(DurableExecutionArn=ctx.exec_arn, CheckpointToken="dG9rZW4=")),
        ("CheckpointDurableExecution", dict(DurableExecutionArn=ctx.exec_arn, CheckpointToken="dG9rZW4=")),
        ("StopDurableExecution", dict(DurableExecutionArn=ctx.exec_arn)),
        ("PauseDurableExecution", dict(DurableExecutionArn=ctx.exec_arn, Reason="r")),
        ("ResumeDurableExecution", dict(DurableExecutionArn=ctx.exec_arn)),
        ("DeleteDurableExecution", dict(DurableExecutionArn=ctx.exec_arn)),
        ("SendDurableExecutionCallbackSuccess", dict(CallbackId=ctx.callback, Result=b"{}")),
        ("SendDurableExecutionCallbackFailure", dict(CallbackId=ctx.callback, Error={"ErrorMessage": "x"})),
        ("SendDurableExecutionCallbackHeartbeat", dict(CallbackId=ctx.callback)),
        # Deletes last.
        ("DeleteEventSourceMapping", lambda: dict(UUID=state["esm"])),
        ("DeleteCodeSigningConfig", lambda: dict(CodeSigningConfigArn=state["csc"])),
        ("DeleteProvisionedConcurrencyConfig", dict(FunctionName=fn, Qualifier="live")),
        ("DeleteFunctionEventInvokeConfig", dict(FunctionName=fn)),
        ("DeleteFunctionUrlConfig", dict(FunctionName=fn)),
        ("DeleteLayerVersion", dict(LayerName=ctx.layer, VersionNumber=1)),
        ("DeleteAlias", dict(FunctionName=fn, Name="live")),
        ("DeleteFunction", dict(FunctionName=fn)),
        ("DeleteCapacityProvider", lambda: dict(CapacityProviderName=state["delete_cp"])),
    ]


def installed_calls(ctx, state):
    """calls() restricted to the operations of the installed model."""
    ops = model_operations()
    return [(op, kw) for op, kw in calls(ctx, state) if op in ops]


def test_every_model_operation_is_listed():
    listed = [op for op, _ in calls(Ctx(), {})]
    assert len(listed) == len(set(listed))
    missing = model_operations() - set(listed)
    assert not missing, f"operations of the installed model not handled/listed here: {sorted(missing)}"
    unknown = set(listed) - model_operations() - NEWER_OPS
    assert not unknown, f"listed operations in no botocore model: {sorted(unknown)}"


def test_every_model_operation_answers(server):
    c = server.client()
    ctx = Ctx(c)
    state = {}
    outcomes = {}
    for op, kw in installed_calls(ctx, state):
        params = kw() if callable(kw) else kw
        method = getattr(c, xform_name(op))
        try:
            resp = method(**params)
            if op == "InvokeWithResponseStream":
                list(resp["EventStream"])
            outcomes[op] = (resp["ResponseMetadata"]["HTTPStatusCode"], None)
        except ClientError as e:
            outcomes[op] = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
            resp = None
        # What later calls refer to.
        if op == "CreateCodeSigningConfig":
            state["csc"] = resp["CodeSigningConfig"]["CodeSigningConfigArn"]
        elif op == "CreateEventSourceMapping":
            state["esm"] = resp["UUID"]
        elif op == "CreateCapacityProvider":
            managed = unique_name("covm")
            create_function(c, managed, Publish=True, CapacityProviderConfig={
                "LambdaManagedInstancesCapacityProviderConfig": {
                    "CapacityProviderArn": resp["CapacityProvider"]["CapacityProviderArn"]}})
            state["managed"] = managed
            state["delete_cp"] = c.create_capacity_provider(
                CapacityProviderName=unique_name("covd"), VpcConfig={"SubnetIds": ["s"], "SecurityGroupIds": []},
                PermissionsConfig={"CapacityProviderOperatorRoleArn": OPERATOR})["CapacityProvider"]["CapacityProviderArn"]
    assert set(outcomes) == model_operations()
    bad = {op: o for op, o in outcomes.items()
           if o[0] == 501 or o[0] >= 500 or o[1] == "UnknownOperationException"}
    assert not bad, json.dumps(bad, indent=1)
    wrong = {op: o for op, o in outcomes.items() if (o[1] is not None or op in EXPECTED_ERRORS)
             and o != EXPECTED_ERRORS.get(op)}
    assert not wrong, json.dumps(wrong, indent=1)


@pytest.mark.parametrize("path,method", [
    ("/2015-03-31/nothing-here", "GET"),
    ("/2025-11-30/capacity-providers/a/b/c", "GET"),
    ("/2025-12-01/durable-executions", "GET"),
])
def test_paths_outside_the_model(server, path, method):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(server.url + path, method=method)
    with pytest.raises(urllib.error.HTTPError) as he:
        urllib.request.urlopen(req, timeout=10)
    assert he.value.code == 404
    assert he.value.headers["x-amzn-ErrorType"] == "UnknownOperationException"
