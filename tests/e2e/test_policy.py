"""Resource-based policies end to end: AddPermission / RemovePermission /
GetPolicy (statement formats, conditions, qualifiers, RevisionId
preconditions, errors, persistence) and the layer-version equivalents.
"""
import json

import pytest
from botocore.exceptions import ClientError

from helpers import ACCOUNT, create_function, function_arn, unique_name


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


@pytest.fixture(scope="module")
def raw(server):
    return server.client(validate=False)


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def policy_of(client, name, **kw):
    resp = client.get_policy(FunctionName=name, **kw)
    return json.loads(resp["Policy"]), resp["RevisionId"]


@pytest.mark.smoke
def test_add_get_remove_statement_formats(lam):
    name = unique_name("pol")
    create_function(lam, name)
    with pytest.raises(ClientError) as ei:
        lam.get_policy(FunctionName=name)
    assert error_of(ei) == (404, "ResourceNotFoundException", "The resource you requested does not exist.")

    r = lam.add_permission(FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction",
                           Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::my-bucket",
                           SourceAccount="123456789012")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    stmt = json.loads(r["Statement"])
    assert stmt == {
        "Sid": "s3", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": function_arn(name),
        "Condition": {"StringEquals": {"AWS:SourceAccount": "123456789012"},
                      "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::my-bucket"}}}
    # Key order as AWS writes it.
    assert list(stmt) == ["Sid", "Effect", "Principal", "Action", "Resource", "Condition"]

    lam.add_permission(FunctionName=name, StatementId="acct", Action="lambda:GetFunction",
                       Principal="111122223333")
    lam.add_permission(FunctionName=name, StatementId="any", Action="lambda:*", Principal="*",
                       PrincipalOrgID="o-abcdefghij", FunctionUrlAuthType="NONE")
    lam.add_permission(FunctionName=name, StatementId="alexa", Action="lambda:InvokeFunction",
                       Principal="alexa-appkit.amazon.com", EventSourceToken="amzn1.ask.skill.x-1")
    pol, rev = policy_of(lam, name)
    assert pol["Version"] == "2012-10-17" and pol["Id"] == "default"
    assert list(pol) == ["Version", "Id", "Statement"]
    assert [s["Sid"] for s in pol["Statement"]] == ["s3", "acct", "any", "alexa"]
    by = {s["Sid"]: s for s in pol["Statement"]}
    assert by["acct"]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert "Condition" not in by["acct"]
    assert by["any"]["Principal"] == "*"
    assert by["any"]["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij",
                                                       "lambda:FunctionUrlAuthType": "NONE"}}
    assert by["alexa"]["Condition"] == {"StringEquals": {"lambda:EventSourceToken": "amzn1.ask.skill.x-1"}}
    # GetPolicy's RevisionId is the function's.
    assert rev == lam.get_function_configuration(FunctionName=name)["RevisionId"]

    r = lam.remove_permission(FunctionName=name, StatementId="acct")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [s["Sid"] for s in policy_of(lam, name)[0]["Statement"]] == ["s3", "any", "alexa"]
    for sid in ("s3", "any", "alexa"):
        lam.remove_permission(FunctionName=name, StatementId=sid)
    with pytest.raises(ClientError) as ei:
        lam.get_policy(FunctionName=name)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")


def test_errors(lam, raw):
    name = unique_name("polerr")
    create_function(lam, name)
    lam.add_permission(FunctionName=name, StatementId="dup", Action="lambda:InvokeFunction", Principal="*")
    with pytest.raises(ClientError) as ei:
        lam.add_permission(FunctionName=name, StatementId="dup", Action="lambda:InvokeFunction", Principal="*")
    assert error_of(ei) == (409, "ResourceConflictException",
                            "The statement id (dup) provided already exists. Please choose a new statement "
                            "id, or remove the existing statement.")
    with pytest.raises(ClientError) as ei:
        lam.remove_permission(FunctionName=name, StatementId="nope")
    assert error_of(ei) == (404, "ResourceNotFoundException", "Statement nope is not found in resource policy.")
    with pytest.raises(ClientError) as ei:
        lam.add_permission(FunctionName=unique_name("missing"), StatementId="a", Action="lambda:*", Principal="*")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        raw.add_permission(FunctionName=name, StatementId="bad sid", Action="lambda:*", Principal="*")
    status, code, msg = error_of(ei)
    assert (status, code) == (400, "ValidationException")
    assert "Value 'bad sid' at 'statementId' failed to satisfy constraint: Member must satisfy regular " \
           "expression pattern: ([a-zA-Z0-9-_]+)" in msg
    with pytest.raises(ClientError) as ei:
        raw.add_permission(FunctionName=name, StatementId="a", Action="s3:GetObject", Principal="*",
                           SourceAccount="12")
    status, code, msg = error_of(ei)
    assert (status, code) == (400, "ValidationException")
    assert msg.startswith("2 validation errors detected: ")
    assert "at 'action'" in msg and "at 'sourceAccount'" in msg
    with pytest.raises(ClientError) as ei:
        raw.add_permission(FunctionName=name, StatementId="a", Action="lambda:*")
    assert "Value null at 'principal' failed to satisfy constraint: Member must not be null" in error_of(ei)[2]
    with pytest.raises(ClientError) as ei:
        lam.add_permission(FunctionName=name, StatementId="a", Action="lambda:*", Principal="notaprincipal")
    assert error_of(ei) == (400, "InvalidParameterValueException",
                            "The provided principal was invalid. Please check the principal and try again.")
    with pytest.raises(ClientError) as ei:
        lam.add_permission(FunctionName=name, StatementId="a", Action="lambda:*", Principal="*",
                           Qualifier="$LATEST")
    assert error_of(ei) == (400, "InvalidParameterValueException",
                            "We currently do not support adding policies for $LATEST.")
    with pytest.raises(ClientError) as ei:
        lam.add_permission(FunctionName=name, StatementId="a", Action="lambda:*", Principal="*",
                           Qualifier="7")
    assert error_of(ei) == (404, "ResourceNotFoundException", f"Function not found: {function_arn(name)}:7")


def test_revision_id_preconditions(lam):
    name = unique_name("polrev")
    create_function(lam, name)
    rev0 = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    with pytest.raises(ClientError) as ei:
        lam.add_permission(FunctionName=name, StatementId="a", Action="lambda:*", Principal="*",
                           RevisionId="00000000-0000-4000-8000-000000000000")
    status, code, msg = error_of(ei)
    assert (status, code) == (412, "PreconditionFailedException")
    assert "Call the GetPolicy API to retrieve the latest Revision Id" in msg
    lam.add_permission(FunctionName=name, StatementId="a", Action="lambda:*", Principal="*", RevisionId=rev0)
    _, rev1 = policy_of(lam, name)
    assert rev1 != rev0
    # The stale revision no longer works for the next change; the new one does.
    with pytest.raises(ClientError) as ei:
        lam.remove_permission(FunctionName=name, StatementId="a", RevisionId=rev0)
    assert error_of(ei)[:2] == (412, "PreconditionFailedException")
    lam.remove_permission(FunctionName=name, StatementId="a", RevisionId=rev1)


def test_qualified_policies_are_separate(lam):
    name = unique_name("polq")
    create_function(lam, name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.add_permission(FunctionName=name, StatementId="v1", Action="lambda:InvokeFunction", Principal="*",
                       Qualifier="1")
    lam.add_permission(FunctionName=f"{name}:live", StatementId="alias", Action="lambda:InvokeFunction",
                       Principal="events.amazonaws.com", SourceArn="arn:aws:events:us-east-1:000000000000:rule/r")
    v1, rev = policy_of(lam, name, Qualifier="1")
    assert [s["Sid"] for s in v1["Statement"]] == ["v1"]
    assert v1["Statement"][0]["Resource"] == function_arn(name) + ":1"
    assert rev == lam.get_function_configuration(FunctionName=name, Qualifier="1")["RevisionId"]
    live, rev = policy_of(lam, name, Qualifier="live")
    assert live["Statement"][0]["Resource"] == function_arn(name) + ":live"
    assert rev == lam.get_alias(FunctionName=name, Name="live")["RevisionId"]
    with pytest.raises(ClientError) as ei:
        lam.get_policy(FunctionName=name)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.remove_permission(FunctionName=name, StatementId="v1")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    lam.remove_permission(FunctionName=name, StatementId="v1", Qualifier="1")


def test_policies_survive_restart(lambdad_factory):
    srv = lambdad_factory()
    c = srv.client()
    name = unique_name("polp")
    create_function(c, name)
    c.add_permission(FunctionName=name, StatementId="keep", Action="lambda:InvokeFunction", Principal="*")
    layer = c.publish_layer_version(LayerName=unique_name("pl"), Content={"ZipFile": b"PK\x05\x06" + b"\0" * 18})
    c.add_layer_version_permission(LayerName=layer["LayerArn"], VersionNumber=1, StatementId="pub",
                                   Action="lambda:GetLayerVersion", Principal="*")
    before = c.get_policy(FunctionName=name)["Policy"]
    lbefore = c.get_layer_version_policy(LayerName=layer["LayerArn"], VersionNumber=1)
    srv.restart()
    c = srv.client()
    assert c.get_policy(FunctionName=name)["Policy"] == before
    lafter = c.get_layer_version_policy(LayerName=layer["LayerArn"], VersionNumber=1)
    assert (lafter["Policy"], lafter["RevisionId"]) == (lbefore["Policy"], lbefore["RevisionId"])


def test_layer_version_permissions(lam, raw):
    lname = unique_name("lp")
    layer = lam.publish_layer_version(LayerName=lname, Content={"ZipFile": b"PK\x05\x06" + b"\0" * 18})
    larn = layer["LayerVersionArn"]
    with pytest.raises(ClientError) as ei:
        lam.get_layer_version_policy(LayerName=lname, VersionNumber=1)
    assert error_of(ei) == (404, "ResourceNotFoundException", "No policy is associated with the given resource.")
    r = lam.add_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="xaccount",
                                         Action="lambda:GetLayerVersion", Principal="210987654321")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(r["Statement"]) == {
        "Sid": "xaccount", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
        "Action": "lambda:GetLayerVersion", "Resource": larn}
    r2 = lam.add_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="org",
                                          Action="lambda:GetLayerVersion", Principal="*",
                                          OrganizationId="o-abcdefghij", RevisionId=r["RevisionId"])
    got = lam.get_layer_version_policy(LayerName=lname, VersionNumber=1)
    assert got["RevisionId"] == r2["RevisionId"] != r["RevisionId"]
    pol = json.loads(got["Policy"])
    assert pol["Version"] == "2012-10-17" and pol["Id"] == "default"
    assert pol["Statement"][1] == {"Sid": "org", "Effect": "Allow", "Principal": "*",
                                   "Action": "lambda:GetLayerVersion", "Resource": larn,
                                   "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}}
    with pytest.raises(ClientError) as ei:
        lam.add_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="org",
                                         Action="lambda:GetLayerVersion", Principal="*")
    assert error_of(ei)[:2] == (409, "ResourceConflictException")
    with pytest.raises(ClientError) as ei:
        raw.add_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="x",
                                         Action="lambda:InvokeFunction", Principal="*")
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        lam.add_layer_version_permission(LayerName=lname, VersionNumber=9, StatementId="x",
                                         Action="lambda:GetLayerVersion", Principal="*")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.remove_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="org",
                                            RevisionId=r["RevisionId"])
    assert error_of(ei)[:2] == (412, "PreconditionFailedException")
    lam.remove_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="org")
    with pytest.raises(ClientError) as ei:
        lam.remove_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="org")
    assert error_of(ei) == (404, "ResourceNotFoundException", "Statement org is not found in resource policy.")
    lam.remove_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="xaccount")
    with pytest.raises(ClientError) as ei:
        lam.get_layer_version_policy(LayerName=lname, VersionNumber=1)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
