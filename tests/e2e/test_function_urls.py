"""Function URLs end to end: the configuration operations (shapes, errors,
qualifiers, pagination, persistence) and the URL really serving HTTP through
both local forms (Host <id>.lambda-url.<region>.localhost and the path form
/_lambdad/url/<id>/...): the payload format 2.0 event, the result mapping,
CORS, and AuthType AWS_IAM.
"""
import base64
import http.client
import json
import re

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, make_zip, unique_name

URL_RE = re.compile(r"^https://([a-z0-9]{32})\.lambda-url\.us-east-1\.on\.aws/$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

ECHO = ("import json\n"
        "def handler(event, context):\n"
        "    return {'statusCode': 200, 'headers': {'content-type': 'application/json'},\n"
        "            'body': json.dumps(event)}\n")

SHAPED = ("import base64, json\n"
          "def handler(event, context):\n"
          "    q = event.get('queryStringParameters') or {}\n"
          "    kind = q.get('kind')\n"
          "    if kind == 'full':\n"
          "        return {'statusCode': 201, 'headers': {'X-Custom': 'yes', 'Content-Type': 'text/plain',\n"
          "                'X-Num': 7, 'X-Evil': 'a\\r\\nInjected: 1'},\n"
          "                'cookies': ['a=1; Path=/', 'b=2'], 'body': 'created'}\n"
          "    if kind == 'binary':\n"
          "        return {'statusCode': 200, 'headers': {'content-type': 'application/octet-stream'},\n"
          "                'body': base64.b64encode(bytes(range(256))).decode(), 'isBase64Encoded': True}\n"
          "    if kind == 'dict':\n"
          "        return {'message': 'hi'}\n"
          "    if kind == 'string':\n"
          "        return 'just text'\n"
          "    if kind == 'error':\n"
          "        raise ValueError('boom')\n"
          "    if kind == 'badstatus':\n"
          "        return {'statusCode': 'nope'}\n"
          "    return {'statusCode': 204}\n")


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def url_id(cfg):
    m = URL_RE.match(cfg["FunctionUrl"])
    assert m, cfg["FunctionUrl"]
    return m.group(1)


def request(server, method, path, body=None, headers=None, host=None):
    """(status, headers list, body bytes) of one request to lambdad."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    h = dict(headers or {})
    if host:
        h["Host"] = host
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r.getheaders(), data


def header(hs, name):
    vals = [v for k, v in hs if k.lower() == name.lower()]
    return vals[0] if vals else None


def via_path(server, uid, method="GET", path="/", **kw):
    return request(server, method, f"/_lambdad/url/{uid}{path}", **kw)


def via_host(server, uid, method="GET", path="/", **kw):
    return request(server, method, path, host=f"{uid}.lambda-url.us-east-1.localhost:{server.port}", **kw)


@pytest.mark.smoke
def test_config_crud(lam):
    name = unique_name("url")
    create_function(lam, name)
    with pytest.raises(ClientError) as ei:
        lam.get_function_url_config(FunctionName=name)
    assert error_of(ei) == (404, "ResourceNotFoundException", "The resource you requested does not exist.")
    c = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert c["ResponseMetadata"]["HTTPStatusCode"] == 201
    url_id(c)
    assert c["FunctionArn"] == function_arn(name)
    assert c["AuthType"] == "NONE" and c["InvokeMode"] == "BUFFERED"
    assert TS_RE.match(c["CreationTime"])
    assert "Cors" not in c
    hdrs = c["ResponseMetadata"]["HTTPHeaders"]
    assert hdrs["x-lambdad-local-url"] == f"http://{url_id(c)}.lambda-url.us-east-1.localhost:" \
                                          f"{hdrs['x-lambdad-local-url'].rsplit(':', 1)[1]}"
    g = lam.get_function_url_config(FunctionName=name)
    assert g["FunctionUrl"] == c["FunctionUrl"] and TS_RE.match(g["LastModifiedTime"])
    with pytest.raises(ClientError) as ei:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    status, code, msg = error_of(ei)
    assert (status, code) == (409, "ResourceConflictException")
    assert "FunctionUrlConfig exists for this Lambda function" in msg
    u = lam.update_function_url_config(FunctionName=name, AuthType="AWS_IAM",
                                       Cors={"AllowOrigins": ["https://example.com"], "MaxAge": 60})
    assert u["AuthType"] == "AWS_IAM"
    assert u["Cors"] == {"AllowOrigins": ["https://example.com"], "MaxAge": 60}
    assert u["FunctionUrl"] == c["FunctionUrl"] and u["CreationTime"] == c["CreationTime"]
    lst = lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert len(lst) == 1 and lst[0]["AuthType"] == "AWS_IAM"
    assert lam.delete_function_url_config(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        lam.delete_function_url_config(FunctionName=name)
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    assert lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"] == []


def test_config_errors_and_qualifiers(server, lam):
    raw = server.client(validate=False)
    name = unique_name("urlq")
    create_function(lam, name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(ClientError) as ei:
        lam.create_function_url_config(FunctionName=unique_name("nope"), AuthType="NONE")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE", Qualifier="ghost")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        raw.create_function_url_config(FunctionName=name, AuthType="NONE", Qualifier="1")
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        raw.create_function_url_config(FunctionName=name, AuthType="OPEN")
    status, code, msg = error_of(ei)
    assert (status, code) == (400, "ValidationException")
    assert "Value 'OPEN' at 'authType' failed to satisfy constraint" in msg
    with pytest.raises(ClientError) as ei:
        raw.create_function_url_config(FunctionName=name)
    assert "Value null at 'authType'" in error_of(ei)[2]
    with pytest.raises(ClientError) as ei:
        raw.create_function_url_config(FunctionName=name, AuthType="NONE", Cors={"MaxAge": 90000})
    assert error_of(ei)[:2] == (400, "ValidationException")
    a = lam.create_function_url_config(FunctionName=name, AuthType="NONE", Qualifier="live")
    assert a["FunctionArn"] == function_arn(name) + ":live"
    b = lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    assert a["FunctionUrl"] != b["FunctionUrl"] and b["InvokeMode"] == "RESPONSE_STREAM"
    pages = list(lam.get_paginator("list_function_url_configs").paginate(
        FunctionName=name, PaginationConfig={"PageSize": 1}))
    assert [len(p["FunctionUrlConfigs"]) for p in pages] == [1, 1]
    assert [p["FunctionUrlConfigs"][0]["FunctionArn"] for p in pages] == [function_arn(name),
                                                                         function_arn(name) + ":live"]


def test_event_shape_both_forms(server, lam):
    name = unique_name("urlev")
    create_function(lam, name, make_zip({"lambda_function.py": ECHO}))
    uid = url_id(lam.create_function_url_config(FunctionName=name, AuthType="NONE"))
    for form in (via_path, via_host):
        status, hs, body = form(server, uid, "POST", "/a/b%20c?x=1&x=2&y=z%21",
                                body=b'{"k": "v"}',
                                headers={"Content-Type": "application/json", "X-Multi": "one",
                                         "Cookie": "c1=v1; c2=v2", "User-Agent": "tester/1"})
        assert status == 200, body
        ev = json.loads(body)
        assert ev["version"] == "2.0" and ev["routeKey"] == "$default"
        assert ev["rawPath"] == "/a/b c"
        assert ev["rawQueryString"] == "x=1&x=2&y=z%21"
        assert ev["queryStringParameters"] == {"x": "1,2", "y": "z!"}
        assert ev["cookies"] == ["c1=v1", "c2=v2"]
        assert "cookie" not in ev["headers"]
        assert ev["headers"]["x-multi"] == "one" and ev["headers"]["content-type"] == "application/json"
        assert ev["body"] == '{"k": "v"}' and ev["isBase64Encoded"] is False
        ctx = ev["requestContext"]
        assert ctx["http"]["method"] == "POST" and ctx["http"]["path"] == "/a/b c"
        assert ctx["http"]["userAgent"] == "tester/1" and ctx["http"]["sourceIp"] == "127.0.0.1"
        assert ctx["domainPrefix"] == uid and ctx["apiId"] == uid
        assert ctx["domainName"] == f"{uid}.lambda-url.us-east-1.on.aws"
        assert ctx["requestId"] == header(hs, "x-amzn-RequestId")
        assert isinstance(ctx["timeEpoch"], int)
    # Binary bodies arrive base64-encoded.
    status, _, body = via_path(server, uid, "PUT", "/bin", body=bytes(range(256)),
                               headers={"Content-Type": "application/octet-stream"})
    ev = json.loads(body)
    assert ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == bytes(range(256))
    # No query string: no queryStringParameters; no body: no body.
    ev = json.loads(via_path(server, uid)[2])
    assert "queryStringParameters" not in ev and "body" not in ev and ev["rawPath"] == "/"


def test_result_mapping(server, lam):
    name = unique_name("urlres")
    create_function(lam, name, make_zip({"lambda_function.py": SHAPED}))
    uid = url_id(lam.create_function_url_config(FunctionName=name, AuthType="NONE"))
    status, hs, body = via_path(server, uid, path="/?kind=full")
    assert (status, body) == (201, b"created")
    assert header(hs, "X-Custom") == "yes" and header(hs, "Content-Type") == "text/plain"
    assert header(hs, "X-Num") == "7"
    assert header(hs, "Injected") is None and header(hs, "X-Evil") is None
    assert [v for k, v in hs if k.lower() == "set-cookie"] == ["a=1; Path=/", "b=2"]
    status, hs, body = via_path(server, uid, path="/?kind=binary")
    assert status == 200 and body == bytes(range(256))
    assert header(hs, "Content-Type") == "application/octet-stream"
    status, hs, body = via_path(server, uid, path="/?kind=dict")
    assert status == 200 and json.loads(body) == {"message": "hi"}
    assert header(hs, "Content-Type") == "application/json"
    status, _, body = via_path(server, uid, path="/?kind=string")
    assert status == 200 and json.loads(body) == "just text"
    status, _, body = via_path(server, uid, path="/?kind=error")
    assert status == 502
    status, _, _ = via_path(server, uid, path="/?kind=badstatus")
    assert status == 502
    status, _, body = via_path(server, uid, path="/")
    assert status == 204 and body == b""
    # Unknown ids: 404, never a crash.
    for bad in ("0" * 32, "short", "../../etc", "A" * 32):
        assert via_path(server, bad)[0] == 404
        assert request(server, "GET", "/", host=f"{bad}.lambda-url.us-east-1.localhost")[0] == 404


def test_cors(server, lam):
    name = unique_name("urlcors")
    create_function(lam, name, make_zip({"lambda_function.py": SHAPED}))
    uid = url_id(lam.create_function_url_config(
        FunctionName=name, AuthType="NONE",
        Cors={"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"],
              "AllowHeaders": ["x-token"], "ExposeHeaders": ["x-custom"], "MaxAge": 300,
              "AllowCredentials": True}))
    status, hs, body = via_host(server, uid, "OPTIONS", "/", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert status == 200
    assert header(hs, "Access-Control-Allow-Origin") == "https://app.example"
    assert header(hs, "Access-Control-Allow-Methods") == "GET,POST"
    assert header(hs, "Access-Control-Allow-Headers") == "x-token"
    assert header(hs, "Access-Control-Max-Age") == "300"
    assert header(hs, "Access-Control-Allow-Credentials") == "true"
    status, hs, _ = via_host(server, uid, "OPTIONS", "/", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert header(hs, "Access-Control-Allow-Origin") is None
    status, hs, body = via_host(server, uid, "GET", "/?kind=full", headers={"Origin": "https://app.example"})
    assert status == 201
    assert header(hs, "Access-Control-Allow-Origin") == "https://app.example"
    assert header(hs, "Access-Control-Expose-Headers") == "x-custom"
    status, hs, _ = via_host(server, uid, "GET", "/?kind=full")
    assert header(hs, "Access-Control-Allow-Origin") is None


def test_auth_type_aws_iam(server, lam):
    name = unique_name("urliam")
    create_function(lam, name, make_zip({"lambda_function.py": ECHO}))
    uid = url_id(lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM"))
    status, _, body = via_path(server, uid)
    assert status == 403 and json.loads(body) == {"Message": "Forbidden"}
    auth = ("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240101/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=abc")
    status, _, body = via_host(server, uid, headers={"Authorization": auth, "X-Amz-Date": "20240101T000000Z"})
    assert status == 200, body
    ev = json.loads(body)
    assert "iam" in ev["requestContext"]["authorizer"]
    lam.update_function_url_config(FunctionName=name, AuthType="NONE")
    assert via_path(server, uid)[0] == 200


def test_alias_url_runs_alias_version_and_survives_restart(lambdad_factory):
    srv = lambdad_factory()
    c = srv.client()
    name = unique_name("urlal")
    code = lambda tag: make_zip({"lambda_function.py": f"def handler(e, c):\n    return {{'v': {tag!r}}}\n"})
    create_function(c, name, code("one"))
    c.publish_version(FunctionName=name)
    c.update_function_code(FunctionName=name, ZipFile=code("two"))
    c.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    alias_id = url_id(c.create_function_url_config(FunctionName=f"{name}:prod", AuthType="NONE"))
    latest_id = url_id(c.create_function_url_config(FunctionName=name, AuthType="NONE"))
    assert json.loads(via_path(srv, alias_id)[2]) == {"v": "one"}
    assert json.loads(via_path(srv, latest_id)[2]) == {"v": "two"}
    srv.restart()
    assert json.loads(via_host(srv, alias_id)[2]) == {"v": "one"}
    c = srv.client()
    c.delete_function(FunctionName=name)
    assert via_path(srv, latest_id)[0] == 404


# A custom runtime answering like awslambda.HttpResponseStream: streaming
# mode, content type application/vnd.awslambda.http-integration-response,
# a JSON prelude, 8 NUL bytes, then the body in chunks.
INTEGRATION_BOOTSTRAP = """#!/usr/bin/env python3
import http.client, json, os
host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')
while True:
    c = http.client.HTTPConnection(host, int(port))
    c.request('GET', '/2018-06-01/runtime/invocation/next')
    r = c.getresponse()
    rid = r.getheader('Lambda-Runtime-Aws-Request-Id')
    r.read()
    c.putrequest('POST', '/2018-06-01/runtime/invocation/%s/response' % rid)
    c.putheader('Lambda-Runtime-Function-Response-Mode', 'streaming')
    c.putheader('Transfer-Encoding', 'chunked')
    c.putheader('Content-Type', 'application/vnd.awslambda.http-integration-response')
    c.endheaders()
    prelude = json.dumps({'statusCode': 201, 'headers': {'content-type': 'text/plain', 'x-streamed': 'yes'},
                          'cookies': ['s=1']}).encode() + bytes(8)
    for part in (prelude, b'streamed ', b'body'):
        c.send(b'%x\\r\\n%s\\r\\n' % (len(part), part))
    c.send(b'0\\r\\n\\r\\n')
    c.getresponse().read()
    c.close()
"""


def test_response_stream_url_with_integration_prelude(server, lam):
    name = unique_name("urlstream")
    create_function(lam, name, make_zip({"bootstrap": (INTEGRATION_BOOTSTRAP, 0o755)}),
                    Runtime="provided.al2023", Handler="x")
    uid = url_id(lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"))
    status, hs, body = via_path(server, uid, path="/s")
    assert (status, body) == (201, b"streamed body")
    assert header(hs, "x-streamed") == "yes" and header(hs, "Content-Type") == "text/plain"
    assert [v for k, v in hs if k.lower() == "set-cookie"] == ["s=1"]


def test_text_body_that_is_not_utf8_is_base64(server, lam):
    name = unique_name("urlutf")
    create_function(lam, name, make_zip({"lambda_function.py": ECHO}))
    uid = url_id(lam.create_function_url_config(FunctionName=name, AuthType="NONE"))
    status, _, body = via_path(server, uid, "POST", "/", body=b"\xff\xfe bad", headers={"Content-Type": "text/plain"})
    ev = json.loads(body)
    assert ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == b"\xff\xfe bad"


def test_deleting_an_alias_deletes_its_url_and_policy(server, lam):
    name = unique_name("urldel")
    create_function(lam, name, make_zip({"lambda_function.py": ECHO}))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="a1", FunctionVersion="1")
    uid = url_id(lam.create_function_url_config(FunctionName=name, AuthType="NONE", Qualifier="a1"))
    lam.add_permission(FunctionName=name, Qualifier="a1", StatementId="s", Action="lambda:InvokeFunctionUrl",
                       Principal="*", FunctionUrlAuthType="NONE")
    assert via_path(server, uid)[0] == 200
    lam.delete_alias(FunctionName=name, Name="a1")
    assert via_path(server, uid)[0] == 404
    lam.create_alias(FunctionName=name, Name="a1", FunctionVersion="1")
    with pytest.raises(ClientError) as ei:
        lam.get_function_url_config(FunctionName=name, Qualifier="a1")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.get_policy(FunctionName=name, Qualifier="a1")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")


DEEP_BOOTSTRAP = """#!/usr/bin/env python3
import http.client, os
host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')
body = b'[' * 200000 + b']' * 200000
while True:
    c = http.client.HTTPConnection(host, int(port))
    c.request('GET', '/2018-06-01/runtime/invocation/next')
    r = c.getresponse()
    rid = r.getheader('Lambda-Runtime-Aws-Request-Id')
    r.read()
    c.request('POST', '/2018-06-01/runtime/invocation/%s/response' % rid, body=body)
    c.getresponse().read()
    c.close()
"""


def test_deeply_nested_result_does_not_crash(server, lam):
    name = unique_name("urldeep")
    create_function(lam, name, make_zip({"bootstrap": (DEEP_BOOTSTRAP, 0o755)}), Runtime="provided.al2023",
                    Handler="x")
    uid = url_id(lam.create_function_url_config(FunctionName=name, AuthType="NONE"))
    status, _, body = via_path(server, uid)
    assert status == 200 and len(body) == 400000
    assert via_path(server, uid)[0] == 200  # the server is still there


def test_huge_origin_with_credentials(server, lam):
    name = unique_name("urlorig")
    create_function(lam, name, make_zip({"lambda_function.py": SHAPED}))
    uid = url_id(lam.create_function_url_config(
        FunctionName=name, AuthType="NONE",
        Cors={"AllowOrigins": ["*"], "AllowCredentials": True, "AllowMethods": ["GET"]}))
    origin = "https://" + "a" * 7000 + ".example"
    status, hs, _ = via_path(server, uid, "OPTIONS", "/", headers={"Origin": origin,
                                                                   "Access-Control-Request-Method": "GET"})
    assert status == 200
    # Too long to echo in full: dropped, never truncated or overflowed.
    assert header(hs, "Access-Control-Allow-Origin") in (None, origin)
    status, hs, _ = via_path(server, uid, "GET", "/?kind=full", headers={"Origin": "https://ok.example"})
    assert status == 201 and header(hs, "Access-Control-Allow-Origin") == "https://ok.example"
