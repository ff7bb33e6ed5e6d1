"""Event source mappings end to end: Create/Get/Update/Delete/List with AWS's
validation (per-source defaults and limits, StartingPosition rules, one
mapping per source and function), the Creating -> Enabled / Updating /
Deleting transitions, filters, pagination and persistence. lambdad has no
SQS/Kinesis/DynamoDB, so nothing is polled (not tested: there is nothing).
"""
import datetime
import re

import pytest
from botocore.exceptions import ClientError

from helpers import create_function, function_arn, unique_name

SQS = "arn:aws:sqs:us-east-1:000000000000:{}"
KINESIS = "arn:aws:kinesis:us-east-1:000000000000:stream/{}"
DDB = "arn:aws:dynamodb:us-east-1:000000000000:table/{}/stream/2024-01-01T00:00:00.000"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def error_of(ei):
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


@pytest.fixture(scope="module")
def lam(server):
    return server.client()


@pytest.mark.smoke
def test_sqs_mapping_lifecycle(lam):
    name = unique_name("esm")
    create_function(lam, name)
    q = SQS.format(unique_name("q"))
    m = lam.create_event_source_mapping(FunctionName=name, EventSourceArn=q)
    assert m["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert UUID_RE.match(m["UUID"])
    assert m["State"] == "Creating" and m["StateTransitionReason"] == "USER_INITIATED"
    assert m["BatchSize"] == 10 and m["MaximumBatchingWindowInSeconds"] == 0
    assert m["EventSourceArn"] == q and m["FunctionArn"] == function_arn(name)
    assert m["EventSourceMappingArn"] == f"arn:aws:lambda:us-east-1:000000000000:event-source-mapping:{m['UUID']}"
    assert isinstance(m["LastModified"], datetime.datetime)
    assert "StartingPosition" not in m
    got = lam.get_event_source_mapping(UUID=m["UUID"])
    assert got["State"] == "Enabled"
    with pytest.raises(ClientError) as ei:
        lam.create_event_source_mapping(FunctionName=name, EventSourceArn=q)
    status, code, msg = error_of(ei)
    assert (status, code) == (409, "ResourceConflictException")
    assert m["UUID"] in msg
    up = lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False, BatchSize=5)
    assert up["ResponseMetadata"]["HTTPStatusCode"] == 202 and up["State"] == "Updating"
    got = lam.get_event_source_mapping(UUID=m["UUID"])
    assert got["State"] == "Disabled" and got["BatchSize"] == 5
    listed = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert [x["UUID"] for x in listed] == [m["UUID"]]
    assert lam.list_event_source_mappings(EventSourceArn=q)["EventSourceMappings"][0]["UUID"] == m["UUID"]
    d = lam.delete_event_source_mapping(UUID=m["UUID"])
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 202 and d["State"] == "Deleting"
    with pytest.raises(ClientError) as ei:
        lam.get_event_source_mapping(UUID=m["UUID"])
    assert error_of(ei) == (404, "ResourceNotFoundException", "The resource you requested does not exist.")
    with pytest.raises(ClientError) as ei:
        lam.delete_event_source_mapping(UUID=m["UUID"])
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")


def test_stream_sources_and_validation(server, lam):
    raw = server.client(validate=False)
    name = unique_name("esmv")
    create_function(lam, name)
    k = lam.create_event_source_mapping(FunctionName=name, EventSourceArn=KINESIS.format(unique_name("s")),
                                        StartingPosition="LATEST")
    assert k["BatchSize"] == 100 and k["StartingPosition"] == "LATEST"
    assert k["ParallelizationFactor"] == 1 and k["MaximumRetryAttempts"] == -1
    assert k["LastProcessingResult"] == "No records processed"
    d = lam.create_event_source_mapping(FunctionName=name, EventSourceArn=DDB.format(unique_name("t")),
                                        StartingPosition="TRIM_HORIZON", BatchSize=500, Enabled=False)
    assert d["BatchSize"] == 500
    assert lam.get_event_source_mapping(UUID=d["UUID"])["State"] == "Disabled"
    # Streams need a StartingPosition; SQS refuses one.
    with pytest.raises(ClientError) as ei:
        lam.create_event_source_mapping(FunctionName=name, EventSourceArn=KINESIS.format(unique_name("s")))
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        lam.create_event_source_mapping(FunctionName=name, EventSourceArn=SQS.format(unique_name("q")),
                                        StartingPosition="LATEST")
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    # SQS: more than 10 needs a batching window; FIFO at most 10.
    with pytest.raises(ClientError) as ei:
        lam.create_event_source_mapping(FunctionName=name, EventSourceArn=SQS.format(unique_name("q")), BatchSize=50)
    assert error_of(ei) == (400, "InvalidParameterValueException",
                            "Maximum batch window in seconds must be greater than 0 if maximum batch size is "
                            "greater than 10")
    ok = lam.create_event_source_mapping(FunctionName=name, EventSourceArn=SQS.format(unique_name("q")),
                                         BatchSize=50, MaximumBatchingWindowInSeconds=2)
    assert ok["BatchSize"] == 50
    with pytest.raises(ClientError) as ei:
        lam.create_event_source_mapping(FunctionName=name, EventSourceArn=SQS.format(unique_name("q") + ".fifo"),
                                        BatchSize=20, MaximumBatchingWindowInSeconds=1)
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        raw.create_event_source_mapping(FunctionName=name, EventSourceArn=SQS.format("q"), BatchSize=0)
    assert "Value '0' at 'batchSize' failed to satisfy constraint: Member must have value greater than or " \
           "equal to 1" in error_of(ei)[2]
    with pytest.raises(ClientError) as ei:
        raw.create_event_source_mapping(FunctionName=name, EventSourceArn="not-an-arn")
    assert error_of(ei)[:2] == (400, "ValidationException")
    with pytest.raises(ClientError) as ei:
        lam.create_event_source_mapping(FunctionName=name, EventSourceArn="arn:aws:s3:::bucket")
    assert error_of(ei)[:2] == (400, "InvalidParameterValueException")
    with pytest.raises(ClientError) as ei:
        lam.create_event_source_mapping(FunctionName=unique_name("ghost"), EventSourceArn=SQS.format("q"))
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(ClientError) as ei:
        lam.get_event_source_mapping(UUID="00000000-0000-4000-8000-000000000000")
    assert error_of(ei)[:2] == (404, "ResourceNotFoundException")
    # Qualified function ARNs are kept qualified.
    lam.publish_version(FunctionName=name)
    q = lam.create_event_source_mapping(FunctionName=f"{name}:1", EventSourceArn=SQS.format(unique_name("q")))
    assert q["FunctionArn"] == function_arn(name) + ":1"
    pages = list(lam.get_paginator("list_event_source_mappings").paginate(
        FunctionName=name, PaginationConfig={"PageSize": 2}))
    assert sum(len(p["EventSourceMappings"]) for p in pages) == 3
    assert len(pages) == 2


def test_mappings_survive_restart(lambdad_factory):
    srv = lambdad_factory()
    c = srv.client()
    name = unique_name("esmp")
    create_function(c, name)
    m = c.create_event_source_mapping(FunctionName=name, EventSourceArn=SQS.format(unique_name("q")))
    before = c.get_event_source_mapping(UUID=m["UUID"])
    srv.restart()
    after = srv.client().get_event_source_mapping(UUID=m["UUID"])
    before.pop("ResponseMetadata")
    after.pop("ResponseMetadata")
    assert after == before
    # Another account sees nothing.
    other = srv.client(access_key="111122223333")
    assert other.list_event_source_mappings()["EventSourceMappings"] == []
