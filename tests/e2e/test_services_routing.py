"""Service routing on the shared front: requests for companion services
(by SigV4 credential scope, X-Amz-Target or S3 Host) are answered in the
service's own protocol, and a service or operation lambdad does not serve
gets an error botocore parses into a ClientError (never a parse error)."""
import http.client

import botocore.exceptions
import pytest


def _code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.mark.smoke
def test_unknown_service_json_protocol_sqs(server):
    sqs = server.client(service="sqs")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.list_queues()
    assert _code(e) == "UnknownOperationException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_service_query_protocol_sns(server):
    sns = server.client(service="sns")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sns.list_topics()
    assert _code(e) == "NotImplemented"
    assert "sns" in e.value.response["Error"]["Message"]


def test_unknown_service_ec2_and_rest_json(server):
    ec2 = server.client(service="ec2")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.describe_instances()
    assert _code(e) == "NotImplemented"
    apigw = server.client(service="apigateway")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        apigw.get_rest_apis()
    assert _code(e) == "NotImplemented"


def test_unknown_logs_operation_is_json11_error(server):
    logs = server.client(service="logs")
    # An operation lambdad's Logs will not serve.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        logs.describe_destinations()
    assert _code(e) == "UnknownOperationException"


def test_unknown_iam_action_is_invalid_action(server):
    iam = server.client(service="iam")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.list_open_id_connect_providers()
    assert _code(e) == "InvalidAction"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "ListOpenIDConnectProviders" in e.value.response["Error"]["Message"]


def test_lambda_still_routed(server):
    lam = server.client()
    assert "Functions" in lam.list_functions()


def _raw(server, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def test_unsigned_virtual_host_s3_goes_to_s3(server):
    r, data = _raw(server, "GET", "/", {"Host": f"somebucket.s3.localhost:{server.port}"})
    assert r.getheader("Content-Type") == "application/xml"
    assert data.startswith(b"<?xml")
    r, data = _raw(server, "GET", "/", {"Host": f"somebucket.localhost:{server.port}"})
    assert data.startswith(b"<?xml")
    # Plain localhost without a scope is still Lambda's (JSON error).
    r, data = _raw(server, "GET", "/nothing-here", {"Host": f"localhost:{server.port}"})
    assert r.status == 404 and data.startswith(b"{")


def test_unknown_target_prefix_is_json_error(server):
    r, data = _raw(server, "POST", "/", {"X-Amz-Target": "DynamoDB_20120810.ListTables",
                                         "Content-Type": "application/x-amz-json-1.0"}, b"{}")
    assert r.status == 400
    assert r.getheader("x-amzn-ErrorType") == "UnknownOperationException"
    assert b'"__type":"UnknownOperationException"' in data
