"""Benchmark handler "With boto3": the reference table's second row.

The reference ("With boto3", 180 ms subprocess) measures a handler that uses
the AWS SDK. We match its meaning as: per invoke, one real API call through
boto3 to the local endpoint (lambdad itself, via AWS_ENDPOINT_URL). The
client is created at module level (the idiomatic Lambda pattern), so:

* a cold invoke pays `import boto3` + client creation + one call;
* a warm invoke pays one ListFunctions round trip through botocore.

ListFunctions is answered by lambdad's control plane; MaxItems=1 keeps the
response size independent of how many functions the benchmark created.
"""
import os

import boto3

_client = boto3.client(
    "lambda",
    endpoint_url=os.environ["AWS_ENDPOINT_URL"],
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
)


def handler(event, context):
    resp = _client.list_functions(MaxItems=1)
    return {"ok": True, "functions_seen": len(resp.get("Functions", []))}
