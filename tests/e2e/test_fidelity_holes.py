"""Small fidelity holes (issue 8, item 6): the 50-tag limit and JSON bodies
with a key given twice. (The code store's EINTR retries are covered by the
unit test tests/unit/runtime/test_codestore_eintr.c, the Docker test lock
by test_docker_lock.py.)
"""
import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import new_server, stop_and_check
from helpers import ROLE, create_function, function_arn, py_zip, unique_name

TOO_MANY = "Number of tags exceeds resource tag limit."


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = new_server(str(tmp_path_factory.mktemp("holes")), ephemeral=True)
    s.start()
    yield s
    stop_and_check(s)


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


def err(ei):
    r = ei.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"].get("Message")


def test_tag_resource_limit_counts_the_total(lam):
    name = unique_name("tags")
    create_function(lam, name, Tags={f"c{i}": "v" for i in range(10)})
    arn = function_arn(name)
    lam.tag_resource(Resource=arn, Tags={f"t{i}": "v" for i in range(40)})  # 50 in all
    assert len(lam.list_tags(Resource=arn)["Tags"]) == 50
    # Re-setting existing keys is fine at the limit.
    lam.tag_resource(Resource=arn, Tags={"c0": "new", "t39": "new"})
    with pytest.raises(ClientError) as ei:
        lam.tag_resource(Resource=arn, Tags={"one-more": "v"})
    assert err(ei) == ("InvalidParameterValueException", 400, TOO_MANY)
    tags = lam.list_tags(Resource=arn)["Tags"]
    assert len(tags) == 50 and "one-more" not in tags and tags["c0"] == "new"
    # After an untag there is room again.
    lam.untag_resource(Resource=arn, TagKeys=["t0"])
    lam.tag_resource(Resource=arn, Tags={"one-more": "v"})
    assert len(lam.list_tags(Resource=arn)["Tags"]) == 50


def test_tag_resource_over_50_in_one_call(lam):
    name = unique_name("tags51")
    create_function(lam, name)
    with pytest.raises(ClientError) as ei:
        lam.tag_resource(Resource=function_arn(name), Tags={f"k{i}": "v" for i in range(51)})
    assert err(ei) == ("InvalidParameterValueException", 400, TOO_MANY)
    assert lam.list_tags(Resource=function_arn(name))["Tags"] == {}


def test_create_function_with_51_tags(lam):
    name = unique_name("ctags")
    with pytest.raises(ClientError) as ei:
        create_function(lam, name, Tags={f"k{i}": "v" for i in range(51)})
    assert err(ei) == ("InvalidParameterValueException", 400, TOO_MANY)
    with pytest.raises(ClientError) as ei:
        lam.get_function(FunctionName=name)
    assert err(ei)[0] == "ResourceNotFoundException"


def raw(srv, method, path, body):
    auth = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host, Signature=00")
    req = urllib.request.Request(srv.url + path, data=body, method=method,
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_duplicate_json_keys_are_refused(srv, lam):
    name = unique_name("dup")
    zip_b64 = __import__("base64").b64encode(py_zip()).decode()
    body = ('{"FunctionName": "%s", "FunctionName": "%s-other", "Runtime": "python3.12", '
            '"Role": "%s", "Handler": "lambda_function.handler", "Code": {"ZipFile": "%s"}}'
            % (name, name, ROLE, zip_b64)).encode()
    status, headers, out = raw(srv, "POST", "/2015-03-31/functions", body)
    assert status == 400, out
    assert headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert "duplicate" in json.loads(out)["message"].lower()
    for n in (name, name + "-other"):
        with pytest.raises(ClientError):
            lam.get_function(FunctionName=n)
    # Nested too: Tags with a key twice.
    create_function(lam, name)
    status, headers, out = raw(srv, "POST", f"/2017-03-31/tags/{function_arn(name)}",
                               b'{"Tags": {"a": "1", "a": "2"}}')
    assert status == 400 and headers["x-amzn-ErrorType"] == "InvalidRequestContentException", out
    assert lam.list_tags(Resource=function_arn(name))["Tags"] == {}
    # A layer publication likewise.
    status, headers, out = raw(srv, "POST", "/2018-10-31/layers/duplayer/versions",
                               b'{"Description": "a", "Description": "b", "Content": {"ZipFile": "%s"}}'
                               % zip_b64.encode())
    assert status == 400 and headers["x-amzn-ErrorType"] == "InvalidRequestContentException", out
    # The same body without the duplicate is accepted (the refusal is the key).
    status, _, out = raw(srv, "POST", f"/2017-03-31/tags/{function_arn(name)}", b'{"Tags": {"a": "1"}}')
    assert status == 204, out
