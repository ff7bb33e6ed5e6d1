"""Accounts and regions are walls (issue 8, item 3).

A caller reaches only the functions and layers of its own account (the
12-digit access key id, else --account-id) in its own region (the SigV4
scope). Naming another account's resource by full or partial ARN answers
AWS's AccessDeniedException (403, "User: ... is not authorized to perform:
lambda:<Action> on resource: <arn> because no resource-based policy allows
the lambda:<Action> action"; lambdad evaluates no resource policies); an ARN
of another region answers ResourceNotFoundException "Functions from 'R' are
not reachable in this region ('R2')" (what Lambda says, e.g.
alexcasalboni/aws-lambda-power-tuning#18). Passing another account's role
is InvalidParameterValueException "Cross-account pass role is not
allowed.". The admin endpoints and code downloads respect the account too.
"""
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import new_server, stop_and_check
from helpers import download, make_zip, py_zip, unique_name

OWNER = "111111111111"
OTHER = "000000000000"
OWNER_ROLE = f"arn:aws:iam::{OWNER}:role/lambda-role"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = new_server(str(tmp_path_factory.mktemp("walls")), ephemeral=True)
    s.start()
    yield s
    stop_and_check(s)


@pytest.fixture(scope="module")
def owner(srv):
    return srv.client(access_key=OWNER)


@pytest.fixture(scope="module")
def other(srv):
    return srv.client(access_key=OTHER)


@pytest.fixture(scope="module")
def owner_eu(srv):
    return srv.client(access_key=OWNER, region="eu-west-1")


@pytest.fixture(scope="module")
def fn(owner):
    name = unique_name("walled")
    owner.create_function(FunctionName=name, Runtime="python3.12", Handler="lambda_function.handler",
                          Role=OWNER_ROLE, Code={"ZipFile": py_zip("walls")})
    owner.publish_version(FunctionName=name)
    owner.invoke(FunctionName=name, Payload=b"{}")
    return name


def arn_of(name, account=OWNER, region="us-east-1"):
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def err(excinfo):
    e = excinfo.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"], e["Error"].get("Message", "")


def denied(excinfo, action, resource):
    code, status, msg = err(excinfo)
    assert (code, status) == ("AccessDeniedException", 403), (code, status, msg)
    assert msg == (f"User: arn:aws:iam::{OTHER}:root is not authorized to perform: lambda:{action} on "
                   f"resource: {resource} because no resource-based policy allows the lambda:{action} action"), msg


def calls(name_ref):
    """(IAM action, callable(client)) pairs naming name_ref."""
    return [
        ("GetFunction", lambda c: c.get_function(FunctionName=name_ref)),
        ("GetFunctionConfiguration", lambda c: c.get_function_configuration(FunctionName=name_ref)),
        ("InvokeFunction", lambda c: c.invoke(FunctionName=name_ref, Payload=b"{}")),
        ("UpdateFunctionCode", lambda c: c.update_function_code(FunctionName=name_ref, ZipFile=py_zip("evil"))),
        ("UpdateFunctionConfiguration",
         lambda c: c.update_function_configuration(FunctionName=name_ref, Description="pwned")),
        ("PublishVersion", lambda c: c.publish_version(FunctionName=name_ref)),
        ("ListVersionsByFunction", lambda c: c.list_versions_by_function(FunctionName=name_ref)),
        ("CreateAlias", lambda c: c.create_alias(FunctionName=name_ref, Name="a", FunctionVersion="1")),
        ("PutFunctionConcurrency",
         lambda c: c.put_function_concurrency(FunctionName=name_ref, ReservedConcurrentExecutions=0)),
        ("DeleteFunction", lambda c: c.delete_function(FunctionName=name_ref)),
    ]


@pytest.mark.parametrize("form", ["full", "partial", "qualified"])
def test_other_account_is_denied_everything(owner, other, fn, form):
    ref = {"full": arn_of(fn), "partial": f"{OWNER}:function:{fn}", "qualified": arn_of(fn) + ":1"}[form]
    for action, call in calls(ref):
        with pytest.raises(ClientError) as ei:
            call(other)
        denied(ei, action, ref if form != "partial" else arn_of(fn))
    # Nothing changed for the owner.
    cfg = owner.get_function_configuration(FunctionName=fn)
    assert cfg["Description"] == "" and cfg["FunctionArn"] == arn_of(fn)
    assert owner.invoke(FunctionName=fn, Payload=b"{}")["StatusCode"] == 200
    assert "Concurrency" not in owner.get_function(FunctionName=fn)


def test_other_account_tags_denied(owner, other, fn):
    with pytest.raises(ClientError) as ei:
        other.tag_resource(Resource=arn_of(fn), Tags={"k": "v"})
    denied(ei, "TagResource", arn_of(fn))
    with pytest.raises(ClientError) as ei:
        other.list_tags(Resource=arn_of(fn))
    denied(ei, "ListTags", arn_of(fn))
    with pytest.raises(ClientError) as ei:
        other.untag_resource(Resource=arn_of(fn), TagKeys=["k"])
    denied(ei, "UntagResource", arn_of(fn))
    assert owner.list_tags(Resource=arn_of(fn))["Tags"] == {}


def test_other_region_is_not_reachable(owner, owner_eu, fn):
    for ref in (arn_of(fn), arn_of(fn) + ":1"):
        for action, call in calls(ref):
            with pytest.raises(ClientError) as ei:
                call(owner_eu)
            code, status, msg = err(ei)
            assert (code, status) == ("ResourceNotFoundException", 404), (action, code, status, msg)
            assert msg == "Functions from 'us-east-1' are not reachable in this region ('eu-west-1')", msg
    with pytest.raises(ClientError) as ei:
        owner_eu.tag_resource(Resource=arn_of(fn), Tags={"k": "v"})
    assert err(ei)[0] == "ResourceNotFoundException"
    assert owner.get_function(FunctionName=fn)["Configuration"]["FunctionName"] == fn


def test_same_name_in_each_account_stays_apart(owner, other, fn):
    # The other account may create its own function of the same name; each
    # sees its own.
    other.create_function(FunctionName=fn, Runtime="python3.12", Handler="lambda_function.handler",
                          Role=f"arn:aws:iam::{OTHER}:role/r", Code={"ZipFile": py_zip("mine")},
                          Description="other's")
    try:
        assert other.get_function_configuration(FunctionName=fn)["Description"] == "other's"
        assert owner.get_function_configuration(FunctionName=fn)["Description"] == ""
        assert other.get_function_configuration(FunctionName=arn_of(fn, OTHER))["Description"] == "other's"
    finally:
        other.delete_function(FunctionName=fn)


def test_create_in_other_account_denied(other):
    name = unique_name("hijack")
    with pytest.raises(ClientError) as ei:
        other.create_function(FunctionName=arn_of(name), Runtime="python3.12", Handler="lambda_function.handler",
                              Role=f"arn:aws:iam::{OTHER}:role/r", Code={"ZipFile": py_zip()})
    denied(ei, "CreateFunction", arn_of(name))


def test_cross_account_pass_role(other):
    name = unique_name("passrole")
    with pytest.raises(ClientError) as ei:
        other.create_function(FunctionName=name, Runtime="python3.12", Handler="lambda_function.handler",
                              Role=OWNER_ROLE, Code={"ZipFile": py_zip()})
    code, status, msg = err(ei)
    assert (code, status, msg) == ("InvalidParameterValueException", 400, "Cross-account pass role is not allowed.")
    other.create_function(FunctionName=name, Runtime="python3.12", Handler="lambda_function.handler",
                          Role=f"arn:aws:iam::{OTHER}:role/r", Code={"ZipFile": py_zip()})
    try:
        with pytest.raises(ClientError) as ei:
            other.update_function_configuration(FunctionName=name, Role=OWNER_ROLE)
        assert err(ei)[2] == "Cross-account pass role is not allowed."
    finally:
        other.delete_function(FunctionName=name)


@pytest.fixture(scope="module")
def layer(owner):
    resp = owner.publish_layer_version(LayerName=unique_name("walllayer"),
                                       Content={"ZipFile": make_zip({"python/x.py": "X = 1\n"})})
    return resp["LayerVersionArn"]


def test_other_account_layer_denied(owner, other, layer):
    with pytest.raises(ClientError) as ei:
        other.get_layer_version_by_arn(Arn=layer)
    denied(ei, "GetLayerVersion", layer)
    layer_arn, version = layer.rsplit(":", 1)
    with pytest.raises(ClientError) as ei:
        other.get_layer_version(LayerName=layer_arn, VersionNumber=int(version))
    assert err(ei)[:2] == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as ei:
        other.delete_layer_version(LayerName=layer_arn, VersionNumber=int(version))
    assert err(ei)[:2] == ("AccessDeniedException", 403)
    name = unique_name("uselayer")
    with pytest.raises(ClientError) as ei:
        other.create_function(FunctionName=name, Runtime="python3.12", Handler="lambda_function.handler",
                              Role=f"arn:aws:iam::{OTHER}:role/r", Code={"ZipFile": py_zip()}, Layers=[layer])
    denied(ei, "GetLayerVersion", layer)
    assert owner.get_layer_version_by_arn(Arn=layer)["LayerVersionArn"] == layer


def test_other_region_layer_not_found(owner_eu, layer):
    with pytest.raises(ClientError) as ei:
        owner_eu.get_layer_version_by_arn(Arn=layer)
    assert err(ei)[:2] == ("ResourceNotFoundException", 404)


def signed_get(srv, path, account, method="GET"):
    """A request carrying a SigV4-shaped Authorization header for account
    (lambdad reads the account and region from the credential scope)."""
    auth = (f"AWS4-HMAC-SHA256 Credential={account}/20260101/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host, Signature=00")
    req = urllib.request.Request(srv.url + path, method=method, headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
            return r.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body else None


def test_admin_environments_are_per_account(srv, owner, fn):
    owner.invoke(FunctionName=fn, Payload=b"{}")
    st, mine = signed_get(srv, "/_lambdad/environments", OWNER)
    assert st == 200 and any(e["function"] == fn for e in mine), mine
    st, theirs = signed_get(srv, "/_lambdad/environments", OTHER)
    assert st == 200 and not any(e["function_key"].split("/")[1] == OWNER for e in theirs), theirs
    st, body = signed_get(srv, "/_lambdad/environments/" + urllib.parse.quote(arn_of(fn), safe=""), OTHER,
                          method="DELETE")
    assert st == 403, (st, body)
    st, mine = signed_get(srv, "/_lambdad/environments", OWNER)
    assert any(e["function"] == fn for e in mine), "another account evicted the owner's environments"


def test_code_url_is_signed(srv, owner, fn):
    loc = owner.get_function(FunctionName=fn)["Code"]["Location"]
    status, body = download(loc)
    assert status == 200 and body == py_zip("walls")
    bare = loc.split("?", 1)[0]
    for url in (bare, bare + "?expires=9999999999&signature=" + "0" * 64,
                loc.replace("signature=", "signature=0")[:len(loc)]):
        with pytest.raises(urllib.error.HTTPError) as ei:
            download(url)
        assert ei.value.code == 403, url
    # A valid signature for one blob does not open another.
    other_hex = "0" * 64
    forged = loc.replace(bare.rsplit("/", 1)[1][:64], other_hex)
    with pytest.raises(urllib.error.HTTPError) as ei:
        download(forged)
    assert ei.value.code in (403, 404)
