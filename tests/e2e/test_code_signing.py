"""Code signing configurations end to end: Create/Get/Update/Delete/List,
Put/Get/DeleteFunctionCodeSigningConfig, ListFunctionsByCodeSigningConfig,
errors and persistence. lambdad stores and returns them; it verifies no
signatures (documented), so nothing here deploys signed code.
"""
import re

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, unique_name

PROFILE = "arn:aws:signer:us-east-1:000000000000:/signing-profiles/MyProfile/abcdef1234"
CSC_RE = re.compile(r"^arn:aws:lambda:us-east-1:000000000000:code-signing-config:(csc-[a-z0-9]{17})$")


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def test_code_signing_configs(server):
    c = server.client()
    raw = server.client(validate=False)
    r = c.create_code_signing_config(AllowedPublishers={"SigningProfileVersionArns": [PROFILE]},
                                     Description="strict")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    cfg = r["CodeSigningConfig"]
    m = CSC_RE.match(cfg["CodeSigningConfigArn"])
    assert m and cfg["CodeSigningConfigId"] == m.group(1)
    assert cfg["AllowedPublishers"] == {"SigningProfileVersionArns": [PROFILE]}
    assert cfg["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Warn"}
    assert cfg["Description"] == "strict"
    arn = cfg["CodeSigningConfigArn"]
    assert c.get_code_signing_config(CodeSigningConfigArn=arn)["CodeSigningConfig"] == cfg
    up = c.update_code_signing_config(CodeSigningConfigArn=arn,
                                      CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce"})
    assert up["CodeSigningConfig"]["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"] == "Enforce"
    assert up["CodeSigningConfig"]["Description"] == "strict"
    assert arn in [x["CodeSigningConfigArn"] for x in c.list_code_signing_configs()["CodeSigningConfigs"]]

    name = unique_name("csc")
    create_function(c, name)
    assert c.get_function_code_signing_config(FunctionName=name)["CodeSigningConfigArn"] == ""
    p = c.put_function_code_signing_config(FunctionName=name, CodeSigningConfigArn=arn)
    assert (p["CodeSigningConfigArn"], p["FunctionName"]) == (arn, name)
    assert c.get_function_code_signing_config(FunctionName=name)["CodeSigningConfigArn"] == arn
    assert c.list_functions_by_code_signing_config(CodeSigningConfigArn=arn)["FunctionArns"] == [function_arn(name)]
    with pytest.raises(ClientError) as ei:
        c.delete_code_signing_config(CodeSigningConfigArn=arn)
    assert error_of(ei)[:2] == (409, "ResourceConflictException")
    assert c.delete_function_code_signing_config(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        c.delete_function_code_signing_config(FunctionName=name)
    assert error_of(ei)[:2] == (404, "CodeSigningConfigNotFoundException")
    assert c.delete_code_signing_config(CodeSigningConfigArn=arn)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        c.get_code_signing_config(CodeSigningConfigArn=arn)
    assert error_of(ei) == (404, "ResourceNotFoundException",
                            f"The Lambda code signing configuration {arn} can not be found.")
    with pytest.raises(ClientError) as ei:
        c.put_function_code_signing_config(FunctionName=name, CodeSigningConfigArn=arn)
    assert error_of(ei)[:2] == (404, "CodeSigningConfigNotFoundException")
    with pytest.raises(ClientError) as ei:
        raw.create_code_signing_config(AllowedPublishers={"SigningProfileVersionArns": []})
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        raw.create_code_signing_config(AllowedPublishers={"SigningProfileVersionArns": [PROFILE]},
                                       CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Maybe"})
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        c.put_function_code_signing_config(FunctionName=unique_name("ghost"), CodeSigningConfigArn=arn)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")


def test_code_signing_configs_survive_restart(lambdad_factory):
    srv = lambdad_factory()
    c = srv.client()
    cfg = c.create_code_signing_config(AllowedPublishers={"SigningProfileVersionArns": [PROFILE]})["CodeSigningConfig"]
    name = unique_name("cscp")
    create_function(c, name)
    c.put_function_code_signing_config(FunctionName=name, CodeSigningConfigArn=cfg["CodeSigningConfigArn"])
    srv.restart()
    c = srv.client()
    assert c.get_code_signing_config(CodeSigningConfigArn=cfg["CodeSigningConfigArn"])["CodeSigningConfig"] == cfg
    assert c.get_function_code_signing_config(FunctionName=name)["CodeSigningConfigArn"] == cfg["CodeSigningConfigArn"]
