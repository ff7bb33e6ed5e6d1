"""Whole-document resource policies (GetResourcePolicy, PutResourcePolicy,
DeleteResourcePolicy, API version 2026-07-09) and the durable-execution
operations of the same botocore release (Delete/Pause/ResumeDurableExecution).

These operations are in botocore >= 1.44 only, so the requests are made on
their REST paths, signed with the installed botocore's own SigV4 signer;
where the installed model has an operation, the round trip also goes
through boto3. The resource policy of a function is the one AddPermission
and GetPolicy work on (AWS: PutResourcePolicy "replaces any existing
policy ... If you previously added permissions using the AddPermission
operation, the new policy overwrites those permissions").
"""
import json
import urllib.error
import urllib.parse
import urllib.request

import botocore.loaders
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, unique_name

RP = "/2026-07-09/resource-policy/"
REVISION_MISMATCH = 412


def model_has(op):
    loader = botocore.loaders.Loader()
    return op in loader.load_service_model("lambda", "service-2")["operations"]


def signed(srv, method, path, body=None, query=None, raw=None):
    """A SigV4-signed request to lambdad; returns (status, headers, parsed
    JSON body or None)."""
    url = srv.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = AWSRequest(method=method, url=url, data=data, headers=headers)
    SigV4Auth(Credentials("test", "test"), "lambda", "us-east-1").add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=p.body, headers=dict(p.headers.items()), method=method)
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            status, hdrs, text = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read()
    return status, hdrs, (json.loads(text) if text else None)


def rp_path(arn):
    return RP + urllib.parse.quote(arn, safe="")


def put(srv, arn, policy, revision=None):
    body = {"Policy": policy if isinstance(policy, str) else json.dumps(policy)}
    if revision is not None:
        body["RevisionId"] = revision
    return signed(srv, "PUT", rp_path(arn), body)


def get(srv, arn):
    return signed(srv, "GET", rp_path(arn))


def delete(srv, arn, revision=None):
    return signed(srv, "DELETE", rp_path(arn), query={"RevisionId": revision} if revision else None)


def err(resp):
    status, hdrs, body = resp
    return status, hdrs["x-amzn-ErrorType"].split(":")[0]


def doc(arn, sid="rp1", principal=None):
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": sid, "Effect": "Allow", "Principal": principal or {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": arn}]}


def new_function(server, **kw):
    c = server.client()
    fn = unique_name("rp")
    create_function(c, fn, **kw)
    return c, fn, function_arn(fn)


def test_put_get_delete_round_trip(server):
    c, fn, arn = new_function(server)
    assert err(get(server, arn)) == (404, "ResourceNotFoundException")
    status, _, body = put(server, arn, doc(arn))
    assert status == 200
    got = json.loads(body["Policy"])
    assert got["Statement"] == doc(arn)["Statement"]
    assert got["Version"] == "2012-10-17"
    assert len(body["RevisionId"]) == 36
    status, _, g = get(server, arn)
    assert status == 200 and g == body
    # The same policy and RevisionId through GetPolicy, and it is the
    # function's RevisionId (a policy change bumps it, as AddPermission does).
    gp = c.get_policy(FunctionName=fn)
    assert gp["Policy"] == body["Policy"] and gp["RevisionId"] == body["RevisionId"]
    assert c.get_function_configuration(FunctionName=fn)["RevisionId"] == body["RevisionId"]
    # Put replaces the whole policy; a lone Statement object is accepted.
    arn2 = doc(arn, sid="other")["Statement"][0]
    status, _, body2 = put(server, arn, {"Version": "2012-10-17", "Statement": arn2})
    assert status == 200 and json.loads(body2["Policy"])["Statement"] == [arn2]
    assert body2["RevisionId"] != body["RevisionId"]
    status, _, _ = delete(server, arn)
    assert status == 204
    assert err(get(server, arn)) == (404, "ResourceNotFoundException")
    assert err(delete(server, arn)) == (404, "ResourceNotFoundException")
    try:
        c.get_policy(FunctionName=fn)
        raise AssertionError("GetPolicy found a deleted policy")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ResourceNotFoundException"


def test_shared_with_add_permission(server):
    c, fn, arn = new_function(server)
    c.add_permission(FunctionName=fn, StatementId="old", Action="lambda:InvokeFunction",
                     Principal="sns.amazonaws.com")
    status, _, g = get(server, arn)
    assert status == 200 and [s["Sid"] for s in json.loads(g["Policy"])["Statement"]] == ["old"]
    # Put overwrites what AddPermission added; AddPermission/RemovePermission
    # then edit the Put policy by Sid.
    assert put(server, arn, doc(arn))[0] == 200
    c.add_permission(FunctionName=fn, StatementId="more", Action="lambda:GetFunction",
                     Principal="123456789012")
    sids = [s["Sid"] for s in json.loads(c.get_policy(FunctionName=fn)["Policy"])["Statement"]]
    assert sids == ["rp1", "more"]
    c.remove_permission(FunctionName=fn, StatementId="rp1")
    status, _, g = get(server, arn)
    assert [s["Sid"] for s in json.loads(g["Policy"])["Statement"]] == ["more"]


def test_qualified_arns(server):
    c, fn, arn = new_function(server, Publish=True)
    c.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    for q in ("1", "live"):
        status, _, body = put(server, f"{arn}:{q}", doc(f"{arn}:{q}", sid=f"s{q}"))
        assert status == 200, body
        gp = c.get_policy(FunctionName=fn, Qualifier=q)
        assert gp["Policy"] == body["Policy"] and gp["RevisionId"] == body["RevisionId"]
    # Each qualifier has its own policy; the unqualified function has none.
    assert err(get(server, arn)) == (404, "ResourceNotFoundException")
    assert err(put(server, f"{arn}:$LATEST", doc(arn))) == (400, "InvalidParameterValueException")
    assert err(get(server, f"{arn}:7")) == (404, "ResourceNotFoundException")
    assert err(put(server, f"{arn}:nope", doc(arn))) == (404, "ResourceNotFoundException")


def test_revision_precondition(server):
    c, fn, arn = new_function(server)
    stale = c.get_function_configuration(FunctionName=fn)["RevisionId"]
    status, _, body = put(server, arn, doc(arn), revision=stale)
    assert status == 200
    # The old RevisionId no longer matches: Put and Delete refuse it.
    assert err(put(server, arn, doc(arn, sid="x"), revision=stale)) == (REVISION_MISMATCH,
                                                                        "PreconditionFailedException")
    assert err(delete(server, arn, revision=stale)) == (REVISION_MISMATCH, "PreconditionFailedException")
    assert err(delete(server, arn, revision="x" * 300)) == (REVISION_MISMATCH, "PreconditionFailedException")
    assert get(server, arn)[2] == body
    status, _, body2 = put(server, arn, doc(arn, sid="x"), revision=body["RevisionId"])
    assert status == 200
    assert delete(server, arn, revision=body2["RevisionId"])[0] == 204


def test_unknown_resources(server):
    _, _, arn = new_function(server)
    gone = function_arn(unique_name("nope"))
    for resp in (get(server, gone), put(server, gone, doc(gone)), delete(server, gone)):
        assert err(resp) == (404, "ResourceNotFoundException")
    runtime = "arn:aws:lambda:us-east-1:000000000000:runtime/python3.12"
    assert err(get(server, runtime)) == (404, "ResourceNotFoundException")
    assert err(put(server, runtime, doc(runtime))) == (404, "ResourceNotFoundException")


def test_malformed_arns(server):
    for bad in ("not-an-arn", "arn:aws:lambda:us-east-1:000000000000:layer:x:1",
                "arn:aws:lambda:us-east-1:12:function:f", "arn:aws:s3:::bucket",
                "arn:aws:lambda:us-east-1:000000000000:function:*",
                "arn:aws:lambda:us-east-1:000000000000:function:" + "f" * 600):
        for resp in (get(server, bad), put(server, bad, doc(bad)), delete(server, bad)):
            assert err(resp) == (400, "InvalidParameterValueException"), bad


def test_malformed_policies(server):
    _, _, arn = new_function(server)
    stmt = doc(arn)["Statement"][0]
    bad_docs = [
        "{not json", "[]", '"s"', "{}", json.dumps({"Statement": []}),
        json.dumps({"Statement": "x"}), json.dumps({"Statement": [1]}),
        json.dumps({"Statement": [dict(stmt, Effect="Maybe")]}),
        json.dumps({"Statement": [{k: v for k, v in stmt.items() if k != "Principal"}]}),
        json.dumps({"Statement": [{k: v for k, v in stmt.items() if k != "Action"}]}),
        json.dumps({"Statement": [stmt, stmt]}),
        json.dumps({"Version": "2099-01-01", "Statement": [stmt]}),
        json.dumps({"Statement": [dict(stmt, Sid=5)]}),
        '{"Statement": [], "Statement": []}',
        "[" * 100000 + "]" * 100000,
    ]
    for text in bad_docs:
        if len(text) > 20480:
            assert err(put(server, arn, text)) == (400, "PolicyLengthExceededException")
        else:
            assert err(put(server, arn, text)) == (400, "InvalidParameterValueException"), text
    deep = '{"Statement": [' + '{"a":' * 200 + "1" + "}" * 200 + "]}"
    assert err(put(server, arn, deep)) == (400, "InvalidParameterValueException")
    # Body members: missing/empty/wrongly typed Policy.
    for body in ({}, {"Policy": ""}, {"Policy": 5}, {"Policy": "x", "RevisionId": 7}):
        assert err(signed(server, "PUT", rp_path(arn), body)) == (400, "ValidationException"), body
    # The request body itself is not JSON, or is too large for any request.
    assert err(signed(server, "PUT", rp_path(arn), raw=b"{")) == (400, "InvalidRequestContentException")
    status, _, _ = signed(server, "PUT", rp_path(arn), raw=b'{"Policy":"' + b"a" * (2 << 20) + b'"}')
    assert status == 413
    assert err(get(server, arn)) == (404, "ResourceNotFoundException")


def test_policy_length_limit(server):
    _, _, arn = new_function(server)
    policy = doc(arn)
    policy["Statement"][0]["Condition"] = {"StringEquals": {"aws:SourceAccount": ""}}
    base = len(json.dumps(policy))
    policy["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] = "a" * (20480 - base)
    text = json.dumps(policy)
    assert len(text) == 20480
    status, _, body = put(server, arn, text)
    assert status == 200, body
    assert err(put(server, arn, text + " ")) == (400, "PolicyLengthExceededException")
    assert get(server, arn)[2] == body


def test_persists_across_restart(lambdad_factory):
    srv = lambdad_factory()
    c, fn, arn = new_function(srv, Publish=True)
    _, _, a = put(srv, arn, doc(arn))
    _, _, b = put(srv, f"{arn}:1", doc(f"{arn}:1", sid="v1"))
    srv.restart()
    assert get(srv, arn)[2] == a
    assert get(srv, f"{arn}:1")[2] == b
    assert delete(srv, arn)[0] == 204
    srv.restart(kill=True)
    assert err(get(srv, arn)) == (404, "ResourceNotFoundException")
    assert get(srv, f"{arn}:1")[2] == b


def test_boto3_when_the_model_has_it(server):
    """Through boto3 when the installed botocore knows the operations (the
    signed requests above are used either way)."""
    if not model_has("PutResourcePolicy"):
        # Older botocore: the same calls, signed by hand, were made above.
        return
    c, fn, arn = new_function(server)
    r = c.put_resource_policy(ResourceArn=arn, Policy=json.dumps(doc(arn)))
    g = c.get_resource_policy(ResourceArn=arn)
    assert (g["Policy"], g["RevisionId"]) == (r["Policy"], r["RevisionId"])
    try:
        c.delete_resource_policy(ResourceArn=arn, RevisionId="0" * 8 + "-0000-0000-0000-" + "0" * 12)
        raise AssertionError("stale RevisionId accepted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "PreconditionFailedException"
    c.delete_resource_policy(ResourceArn=arn, RevisionId=r["RevisionId"])


def test_new_durable_operations(server):
    """Delete/Pause/ResumeDurableExecution: lambdad runs no durable
    executions, so a well-formed ARN names nothing (404) and a malformed one
    is refused as by the other durable operations."""
    _, fn, arn = new_function(server)
    ex = urllib.parse.quote(f"{arn}:$LATEST/durable-execution/run/abc", safe="")
    base = "/2025-12-01/durable-executions/" + ex
    assert err(signed(server, "DELETE", base)) == (404, "ResourceNotFoundException")
    for action in ("pause", "resume"):
        assert err(signed(server, "POST", f"{base}/{action}", {})) == (404, "ResourceNotFoundException")
        assert err(signed(server, "POST", f"{base}/{action}", {"ClientToken": "t", "Reason": "why"})) == \
            (404, "ResourceNotFoundException")
        assert err(signed(server, "POST", f"{base}/{action}", {"ClientToken": ""})) == \
            (400, "ValidationException")
        assert err(signed(server, "POST", f"{base}/{action}", raw=b"{")) == \
            (400, "InvalidRequestContentException")
    assert err(signed(server, "POST", f"{base}/pause", {"ExecutionTimeoutPaused": "yes"})) == \
        (400, "ValidationException")
    assert err(signed(server, "POST", f"{base}/pause", {"ExecutionTimeoutPaused": False})) == \
        (404, "ResourceNotFoundException")
    bad = "/2025-12-01/durable-executions/" + urllib.parse.quote(arn, safe="")
    assert err(signed(server, "DELETE", bad)) == (400, "ValidationException")
    assert err(signed(server, "POST", bad + "/pause", {})) == (400, "ValidationException")
    assert err(signed(server, "POST", bad + "/resume", {})) == (400, "ValidationException")
