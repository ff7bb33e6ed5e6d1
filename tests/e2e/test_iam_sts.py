"""IAM and STS on lambdad's front (query protocol, XML responses): roles,
inline and managed policies, STS identities and temporary credentials,
persistence across restarts, and --validate-roles."""
import json
import os
import subprocess
import urllib.parse

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from helpers import aws_cli_v1, py_zip

TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}


def _err(excinfo):
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"].get("Message", "")


@pytest.fixture
def iam(server):
    return server.client(service="iam")


@pytest.fixture
def sts(server):
    return server.client(service="sts")


@pytest.mark.smoke
def test_role_lifecycle(iam):
    r = iam.create_role(RoleName="r-life", AssumeRolePolicyDocument=json.dumps(TRUST), Path="/svc/",
                        Description="d", Tags=[{"Key": "k", "Value": "v"}])["Role"]
    assert r["Arn"] == "arn:aws:iam::000000000000:role/svc/r-life"
    assert r["RoleId"].startswith("AROA") and len(r["RoleId"]) == 21
    assert r["Path"] == "/svc/" and r["MaxSessionDuration"] == 3600
    # boto3 URL-decodes and JSON-decodes policy documents, as AWS sends them encoded.
    assert r["AssumeRolePolicyDocument"] == TRUST
    g = iam.get_role(RoleName="r-life")["Role"]
    assert g["Arn"] == r["Arn"] and g["Description"] == "d" and g["Tags"] == [{"Key": "k", "Value": "v"}]
    assert g["AssumeRolePolicyDocument"] == TRUST
    names = [x["RoleName"] for x in iam.list_roles()["Roles"]]
    assert "r-life" in names
    assert [x["RoleName"] for x in iam.list_roles(PathPrefix="/svc/")["Roles"]] == ["r-life"]
    new_trust = dict(TRUST, Statement=[dict(TRUST["Statement"][0], Principal={"Service": "edgelambda.amazonaws.com"})])
    iam.update_assume_role_policy(RoleName="r-life", PolicyDocument=json.dumps(new_trust))
    assert iam.get_role(RoleName="r-life")["Role"]["AssumeRolePolicyDocument"] == new_trust
    iam.update_role(RoleName="r-life", Description="d2", MaxSessionDuration=7200)
    g = iam.get_role(RoleName="r-life")["Role"]
    assert g["Description"] == "d2" and g["MaxSessionDuration"] == 7200
    iam.tag_role(RoleName="r-life", Tags=[{"Key": "a", "Value": "1"}])
    iam.untag_role(RoleName="r-life", TagKeys=["k"])
    assert iam.list_role_tags(RoleName="r-life")["Tags"] == [{"Key": "a", "Value": "1"}]
    iam.delete_role(RoleName="r-life")
    with pytest.raises(iam.exceptions.NoSuchEntityException) as e:
        iam.get_role(RoleName="r-life")
    assert _err(e) == ("NoSuchEntity", 404, "The role with name r-life cannot be found.")


def test_role_errors(iam):
    iam.create_role(RoleName="r-dup", AssumeRolePolicyDocument=json.dumps(TRUST))
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException) as e:
        iam.create_role(RoleName="R-DUP", AssumeRolePolicyDocument=json.dumps(TRUST))
    assert _err(e) == ("EntityAlreadyExists", 409, "Role with name R-DUP already exists.")
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException) as e:
        iam.create_role(RoleName="r-bad", AssumeRolePolicyDocument="{not json")
    assert _err(e)[:2] == ("MalformedPolicyDocument", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_role(RoleName="bad name!", AssumeRolePolicyDocument=json.dumps(TRUST))
    assert _err(e)[:2] == ("ValidationError", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_role(RoleName="r-path", AssumeRolePolicyDocument=json.dumps(TRUST), Path="nopath")
    assert _err(e)[:2] == ("ValidationError", 400)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.delete_role(RoleName="r-missing")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.update_assume_role_policy(RoleName="r-missing", PolicyDocument=json.dumps(TRUST))


def test_inline_policies(iam):
    iam.create_role(RoleName="r-inl", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName="r-inl", PolicyName="p1", PolicyDocument=json.dumps(POLICY))
    iam.put_role_policy(RoleName="r-inl", PolicyName="p0", PolicyDocument=json.dumps(POLICY))
    got = iam.get_role_policy(RoleName="r-inl", PolicyName="p1")
    assert got["PolicyDocument"] == POLICY and got["RoleName"] == "r-inl" and got["PolicyName"] == "p1"
    assert iam.list_role_policies(RoleName="r-inl")["PolicyNames"] == ["p0", "p1"]
    page = iam.list_role_policies(RoleName="r-inl", MaxItems=1)
    assert page["PolicyNames"] == ["p0"] and page["IsTruncated"]
    page = iam.list_role_policies(RoleName="r-inl", MaxItems=1, Marker=page["Marker"])
    assert page["PolicyNames"] == ["p1"] and not page["IsTruncated"]
    with pytest.raises(iam.exceptions.DeleteConflictException) as e:
        iam.delete_role(RoleName="r-inl")
    assert _err(e) == ("DeleteConflict", 409, "Cannot delete entity, must delete policies first.")
    with pytest.raises(iam.exceptions.NoSuchEntityException) as e:
        iam.get_role_policy(RoleName="r-inl", PolicyName="nope")
    assert _err(e)[2] == "The role policy with name nope cannot be found."
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.put_role_policy(RoleName="r-inl", PolicyName="p2", PolicyDocument="[1,")
    iam.delete_role_policy(RoleName="r-inl", PolicyName="p1")
    iam.delete_role_policy(RoleName="r-inl", PolicyName="p0")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.delete_role_policy(RoleName="r-inl", PolicyName="p0")
    iam.delete_role(RoleName="r-inl")


def test_managed_policies(iam):
    p = iam.create_policy(PolicyName="mp", PolicyDocument=json.dumps(POLICY), Path="/team/",
                          Description="x")["Policy"]
    arn = p["Arn"]
    assert arn == "arn:aws:iam::000000000000:policy/team/mp"
    assert p["DefaultVersionId"] == "v1" and p["AttachmentCount"] == 0 and p["PolicyId"].startswith("ANPA")
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException) as e:
        iam.create_policy(PolicyName="mp", PolicyDocument=json.dumps(POLICY))
    assert _err(e)[:2] == ("EntityAlreadyExists", 409)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["PolicyName"] == "mp"
    v = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert v["Document"] == POLICY and v["IsDefaultVersion"]
    v2 = iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
                                   SetAsDefault=True)["PolicyVersion"]
    assert v2["VersionId"] == "v2" and v2["IsDefaultVersion"]
    assert [x["VersionId"] for x in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == ["v2", "v1"]
    with pytest.raises(iam.exceptions.DeleteConflictException):
        iam.delete_policy_version(PolicyArn=arn, VersionId="v2")
    iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
    assert [x["Arn"] for x in iam.list_policies(Scope="Local")["Policies"]].count(arn) == 1

    iam.create_role(RoleName="r-att", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.attach_role_policy(RoleName="r-att", PolicyArn=arn)
    basic = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    iam.attach_role_policy(RoleName="r-att", PolicyArn=basic)
    att = iam.list_attached_role_policies(RoleName="r-att")["AttachedPolicies"]
    assert att == [{"PolicyName": "mp", "PolicyArn": arn},
                   {"PolicyName": "AWSLambdaBasicExecutionRole", "PolicyArn": basic}]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    assert [x["Arn"] for x in iam.list_policies(OnlyAttached=True)["Policies"]] == [arn]
    with pytest.raises(iam.exceptions.DeleteConflictException) as e:
        iam.delete_policy(PolicyArn=arn)
    assert _err(e) == ("DeleteConflict", 409, "Cannot delete a policy attached to entities.")
    with pytest.raises(iam.exceptions.DeleteConflictException) as e:
        iam.delete_role(RoleName="r-att")
    assert _err(e)[2] == "Cannot delete entity, must detach all policies first."
    missing = "arn:aws:iam::000000000000:policy/none"
    with pytest.raises(iam.exceptions.NoSuchEntityException) as e:
        iam.attach_role_policy(RoleName="r-att", PolicyArn=missing)
    assert _err(e)[2] == f"Policy {missing} does not exist or is not attachable."
    iam.detach_role_policy(RoleName="r-att", PolicyArn=arn)
    iam.detach_role_policy(RoleName="r-att", PolicyArn=basic)
    with pytest.raises(iam.exceptions.NoSuchEntityException) as e:
        iam.detach_role_policy(RoleName="r-att", PolicyArn=arn)
    assert _err(e)[2] == f"Policy {arn} was not found."
    iam.delete_role(RoleName="r-att")
    iam.delete_policy(PolicyArn=arn)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=arn)


def test_list_roles_pagination(iam):
    for i in range(5):
        iam.create_role(RoleName=f"pg-{i}", AssumeRolePolicyDocument=json.dumps(TRUST), Path="/pg/")
    seen, marker = [], None
    while True:
        kw = {"PathPrefix": "/pg/", "MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = iam.list_roles(**kw)
        seen += [r["RoleName"] for r in page["Roles"]]
        if not page["IsTruncated"]:
            break
        marker = page["Marker"]
    assert seen == [f"pg-{i}" for i in range(5)]
    paginated = [r["RoleName"] for p in iam.get_paginator("list_roles").paginate(PathPrefix="/pg/",
                 PaginationConfig={"PageSize": 3}) for r in p["Roles"]]
    assert paginated == seen


@pytest.mark.smoke
def test_sts_identity_and_assume_role(server, sts, iam):
    ident = sts.get_caller_identity()
    assert ident["Account"] == "000000000000" and ident["Arn"] == "arn:aws:iam::000000000000:root"
    # A 12-digit access key id selects the account, as for Lambda.
    other = server.client(service="sts", access_key="111122223333")
    assert other.get_caller_identity()["Account"] == "111122223333"

    role_arn = "arn:aws:iam::222233334444:role/deployer"
    out = sts.assume_role(RoleArn=role_arn, RoleSessionName="sess-1", DurationSeconds=900)
    c = out["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and len(c["AccessKeyId"]) == 20
    assert len(c["SecretAccessKey"]) == 40 and c["SessionToken"] and c["Expiration"]
    assert out["AssumedRoleUser"]["Arn"] == "arn:aws:sts::222233334444:assumed-role/deployer/sess-1"
    assert out["AssumedRoleUser"]["AssumedRoleId"].endswith(":sess-1")

    kw = dict(endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
              aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"],
              config=Config(retries={"max_attempts": 0}))
    tsts = boto3.client("sts", **kw)
    ti = tsts.get_caller_identity()
    assert ti["Account"] == "222233334444"
    assert ti["Arn"] == "arn:aws:sts::222233334444:assumed-role/deployer/sess-1"
    assert boto3.client("sts", **kw).get_access_key_info(AccessKeyId=c["AccessKeyId"])["Account"] == "222233334444"
    # Lambda calls signed with the temporary credentials land in the role's account.
    tlam = boto3.client("lambda", **kw)
    fn = tlam.create_function(FunctionName="sts-fn", Runtime="python3.12", Role=role_arn,
                              Handler="lambda_function.handler", Code={"ZipFile": py_zip()})
    assert fn["FunctionArn"] == "arn:aws:lambda:us-east-1:222233334444:function:sts-fn"
    assert "sts-fn" not in [f["FunctionName"] for f in server.client().list_functions()["Functions"]]
    tlam.delete_function(FunctionName="sts-fn")

    tok = sts.get_session_token(DurationSeconds=900)["Credentials"]
    assert tok["AccessKeyId"].startswith("ASIA")


def test_sts_errors(sts):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/x", RoleSessionName="bad session!")
    assert _err(e)[:2] == ("ValidationError", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts.assume_role(RoleArn="arn:aws:s3:::not-a-role-arn-at-all", RoleSessionName="s1")
    assert _err(e)[:2] == ("ValidationError", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/x", RoleSessionName="s1",
                        Policy="{broken")
    assert _err(e)[:2] == ("MalformedPolicyDocument", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts.decode_authorization_message(EncodedMessage="x")
    assert _err(e)[:2] == ("InvalidAction", 400)


def test_hostile_query_bodies(server):
    import http.client
    auth = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, "
            "SignedHeaders=host, Signature=00")
    for body in [b"Action=CreateRole&RoleName=%zz", b"Action=GetRole&RoleName=a%00b", b"&&&=&==",
                 b"Action=" + b"A" * 100000, b"Action=CreateRole&RoleName=x&AssumeRolePolicyDocument=" +
                 urllib.parse.quote("[" * 5000).encode(), b"Action=ListRoles&MaxItems=0",
                 b"Action=ListRoles&MaxItems=abc"]:
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        c.request("POST", "/", body=body, headers={"Authorization": auth,
                                                   "Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        data = r.read()
        c.close()
        assert 400 <= r.status < 500, (body[:60], r.status, data[:200])
        assert data.startswith(b"<ErrorResponse") and b"<Code>" in data


def test_iam_sts_survive_restart(lambdad_factory):
    srv = lambdad_factory()
    iam = srv.client(service="iam")
    iam.create_role(RoleName="keep", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName="keep", PolicyName="inl", PolicyDocument=json.dumps(POLICY))
    arn = iam.create_policy(PolicyName="keep-mp", PolicyDocument=json.dumps(POLICY))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="keep", PolicyArn=arn)
    other = srv.client(service="iam", access_key="123456789012")
    other.create_role(RoleName="keep2", AssumeRolePolicyDocument=json.dumps(TRUST))
    c = srv.client(service="sts").assume_role(RoleArn="arn:aws:iam::999988887777:role/r",
                                             RoleSessionName="s2")["Credentials"]
    srv.restart(kill=True)
    iam = srv.client(service="iam")
    role = iam.get_role(RoleName="keep")["Role"]
    assert role["AssumeRolePolicyDocument"] == TRUST
    assert iam.get_role_policy(RoleName="keep", PolicyName="inl")["PolicyDocument"] == POLICY
    assert iam.list_attached_role_policies(RoleName="keep")["AttachedPolicies"][0]["PolicyArn"] == arn
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["keep"]
    assert [r["RoleName"] for r in srv.client(service="iam", access_key="123456789012").list_roles()["Roles"]] == ["keep2"]
    t = boto3.client("sts", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                     aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
    assert t.get_caller_identity()["Account"] == "999988887777"


def test_ephemeral_keeps_no_iam(lambdad_factory):
    srv = lambdad_factory(ephemeral=True)
    srv.client(service="iam").create_role(RoleName="gone", AssumeRolePolicyDocument=json.dumps(TRUST))
    assert not os.path.exists(os.path.join(srv.data_dir, "iam"))
    srv.restart()
    with pytest.raises(botocore.exceptions.ClientError):
        srv.client(service="iam").get_role(RoleName="gone")


def test_aws_cli_iam(server, tmp_path):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    aws = aws_cli_v1()
    env["AWS_PAGER"] = ""
    out = subprocess.run([aws, "--endpoint-url", server.url, "iam", "create-role", "--role-name", "cli-role",
                          "--assume-role-policy-document", json.dumps(TRUST)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Role"]["Arn"] == "arn:aws:iam::000000000000:role/cli-role"
    out = subprocess.run([aws, "--endpoint-url", server.url, "sts", "get-caller-identity"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Account"] == "000000000000"


def test_validate_roles(lambdad_factory):
    srv = lambdad_factory(args=["--validate-roles"])
    lam, iam = srv.client(), srv.client(service="iam")
    missing = "arn:aws:iam::000000000000:role/not-there"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.create_function(FunctionName="vr", Runtime="python3.12", Role=missing,
                            Handler="lambda_function.handler", Code={"ZipFile": py_zip()})
    assert _err(e) == ("InvalidParameterValueException", 400,
                       "The role defined for the function cannot be assumed by Lambda.")
    arn = iam.create_role(RoleName="exec", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    lam.create_function(FunctionName="vr", Runtime="python3.12", Role=arn,
                        Handler="lambda_function.handler", Code={"ZipFile": py_zip()})
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName="vr", Role=missing)
    iam.create_role(RoleName="exec2", AssumeRolePolicyDocument=json.dumps(TRUST), Path="/p/")
    assert lam.update_function_configuration(FunctionName="vr", Role="arn:aws:iam::000000000000:role/p/exec2")["Role"] \
        == "arn:aws:iam::000000000000:role/p/exec2"
    # The wrong path is not the same role.
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName="vr", Role="arn:aws:iam::000000000000:role/exec2")


def test_validate_roles_env_and_default_off(lambdad_factory):
    srv = lambdad_factory(env={"LAMBDAD_VALIDATE_ROLES": "1"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        srv.client().create_function(FunctionName="vr2", Runtime="python3.12",
                                     Role="arn:aws:iam::000000000000:role/none", Handler="lambda_function.handler",
                                     Code={"ZipFile": py_zip()})
    assert _err(e)[0] == "InvalidParameterValueException"
    off = lambdad_factory()
    off.client().create_function(FunctionName="vr3", Runtime="python3.12",
                                 Role="arn:aws:iam::000000000000:role/none", Handler="lambda_function.handler",
                                 Code={"ZipFile": py_zip()})


def test_instance_profiles_and_policy_entities(iam):
    """What infrastructure tools call around DeleteRole / DeletePolicy."""
    iam.create_role(RoleName="r-ent", AssumeRolePolicyDocument=json.dumps(TRUST), Path="/ent/")
    iam.create_role(RoleName="r-ent2", AssumeRolePolicyDocument=json.dumps(TRUST))
    assert iam.list_instance_profiles_for_role(RoleName="r-ent")["InstanceProfiles"] == []
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.list_instance_profiles_for_role(RoleName="r-none")
    arn = iam.create_policy(PolicyName="ent-mp", PolicyDocument=json.dumps(POLICY))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="r-ent", PolicyArn=arn)
    out = iam.list_entities_for_policy(PolicyArn=arn)
    assert [r["RoleName"] for r in out["PolicyRoles"]] == ["r-ent"]
    assert out["PolicyRoles"][0]["RoleId"].startswith("AROA")
    assert out["PolicyUsers"] == [] and out["PolicyGroups"] == []
    assert iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="User")["PolicyRoles"] == []
    assert iam.list_entities_for_policy(PolicyArn=arn, PathPrefix="/other/")["PolicyRoles"] == []
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.list_entities_for_policy(PolicyArn="arn:aws:iam::000000000000:policy/none")
