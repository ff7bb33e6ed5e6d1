"""S3 on lambdad's front (REST-XML): buckets, objects, listing, multipart,
versioning, ranges, aws-chunked uploads, path- and virtual-host-style
addressing, the AWS CLI, persistence and hostile input."""
import base64
import hashlib
import http.client
import io
import json
import os
import shutil
import subprocess
import zlib

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from helpers import aws_cli_v1


def _err(excinfo):
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def s3client(server, style="path", **kw):
    cfg = Config(retries={"max_attempts": 0}, s3={"addressing_style": style})
    return boto3.client("s3", endpoint_url=server.url, region_name=kw.pop("region", "us-east-1"),
                        aws_access_key_id=kw.pop("access_key", "test"), aws_secret_access_key="test",
                        config=cfg)


@pytest.fixture
def s3(server):
    return s3client(server)


def raw(server, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    h = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
                          "SignedHeaders=host, Signature=00"}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


@pytest.mark.smoke
def test_bucket_lifecycle(s3):
    s3.create_bucket(Bucket="life-bkt")
    assert "life-bkt" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="life-bkt")
    assert s3.get_bucket_location(Bucket="life-bkt")["LocationConstraint"] is None
    # us-east-1: re-creating your own bucket is a 200 (legacy behaviour).
    s3.create_bucket(Bucket="life-bkt")
    s3.put_object(Bucket="life-bkt", Key="k", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="life-bkt")
    assert _err(e) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket="life-bkt", Key="k")
    s3.delete_bucket(Bucket="life-bkt")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket="life-bkt")
    assert _err(e) == ("404", 404)
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.delete_bucket(Bucket="life-bkt")
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.list_objects_v2(Bucket="life-bkt")


def test_bucket_regions_and_owners(server):
    eu = s3client(server, region="eu-west-1")
    eu.create_bucket(Bucket="eu-bkt", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert eu.get_bucket_location(Bucket="eu-bkt")["LocationConstraint"] == "eu-west-1"
    with pytest.raises(eu.exceptions.BucketAlreadyOwnedByYou):
        eu.create_bucket(Bucket="eu-bkt", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        eu.create_bucket(Bucket="eu-bkt2")
    assert _err(e) == ("IllegalLocationConstraintException", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        eu.create_bucket(Bucket="eu-bkt3", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert _err(e) == ("IllegalLocationConstraintException", 400)
    other = s3client(server, access_key="111122223333")
    with pytest.raises(other.exceptions.BucketAlreadyExists):
        other.create_bucket(Bucket="eu-bkt")
    assert "eu-bkt" not in [b["Name"] for b in other.list_buckets()["Buckets"]]


@pytest.mark.parametrize("name", ["ab", "Upper-case", "-start", "end-", "a..b", "192.168.1.1", "xn--abc",
                                  "under_score", "a" * 64, "bucket-s3alias"])
def test_invalid_bucket_names(s3, name):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert _err(e) == ("InvalidBucketName", 400)


def test_objects_roundtrip(s3):
    s3.create_bucket(Bucket="obj-bkt")
    body = os.urandom(100000)
    put = s3.put_object(Bucket="obj-bkt", Key="dir/a b+c%.bin", Body=body, ContentType="application/x-test",
                        Metadata={"Color": "blue"}, ContentDisposition="attachment", CacheControl="no-cache")
    md5 = hashlib.md5(body).hexdigest()
    assert put["ETag"] == f'"{md5}"' and "VersionId" not in put
    got = s3.get_object(Bucket="obj-bkt", Key="dir/a b+c%.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test" and got["Metadata"] == {"color": "blue"}
    assert got["ContentDisposition"] == "attachment" and got["CacheControl"] == "no-cache"
    assert got["ETag"] == f'"{md5}"' and got["ContentLength"] == len(body)
    head = s3.head_object(Bucket="obj-bkt", Key="dir/a b+c%.bin")
    assert head["ContentLength"] == len(body) and head["ETag"] == f'"{md5}"'
    assert s3.get_object(Bucket="obj-bkt", Key="empty" if False else "dir/a b+c%.bin",
                         ResponseContentType="text/x-over")["ContentType"] == "text/x-over"
    # Default content type.
    s3.put_object(Bucket="obj-bkt", Key="plain", Body=b"")
    g = s3.get_object(Bucket="obj-bkt", Key="plain")
    assert g["ContentType"] == "binary/octet-stream" and g["Body"].read() == b""
    assert g["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    with pytest.raises(s3.exceptions.NoSuchKey) as e:
        s3.get_object(Bucket="obj-bkt", Key="missing")
    assert e.value.response["Error"]["Key"] == "missing"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket="obj-bkt", Key="missing")
    assert _err(e) == ("404", 404)
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.put_object(Bucket="no-such-bkt", Key="k", Body=b"x")
    s3.delete_object(Bucket="obj-bkt", Key="missing")  # deleting nothing is fine
    # Conditional GETs
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="obj-bkt", Key="plain", IfMatch='"0000"')
    assert _err(e) == ("PreconditionFailed", 412)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="obj-bkt", Key="plain", IfNoneMatch='"d41d8cd98f00b204e9800998ecf8427e"')
    assert _err(e)[1] == 304


def test_ranges(s3):
    s3.create_bucket(Bucket="rng-bkt")
    data = bytes(range(256)) * 4
    s3.put_object(Bucket="rng-bkt", Key="r", Body=data)
    g = s3.get_object(Bucket="rng-bkt", Key="r", Range="bytes=10-19")
    assert g["Body"].read() == data[10:20] and g["ContentRange"] == "bytes 10-19/1024"
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket="rng-bkt", Key="r", Range="bytes=1000-")["Body"].read() == data[1000:]
    assert s3.get_object(Bucket="rng-bkt", Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert s3.get_object(Bucket="rng-bkt", Key="r", Range="bytes=1020-5000")["Body"].read() == data[1020:]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="rng-bkt", Key="r", Range="bytes=2000-3000")
    assert _err(e) == ("InvalidRange", 416)
    # Syntax S3 does not take: the whole object.
    assert s3.get_object(Bucket="rng-bkt", Key="r", Range="bytes=abc")["Body"].read() == data


def test_copy_object(s3):
    s3.create_bucket(Bucket="cp-src")
    s3.create_bucket(Bucket="cp-dst")
    s3.put_object(Bucket="cp-src", Key="a/b", Body=b"copy me", ContentType="text/x", Metadata={"m": "1"})
    out = s3.copy_object(Bucket="cp-dst", Key="c", CopySource={"Bucket": "cp-src", "Key": "a/b"})
    assert out["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(b"copy me").hexdigest()
    g = s3.get_object(Bucket="cp-dst", Key="c")
    assert g["Body"].read() == b"copy me" and g["ContentType"] == "text/x" and g["Metadata"] == {"m": "1"}
    s3.copy_object(Bucket="cp-dst", Key="d", CopySource="cp-src/a/b", MetadataDirective="REPLACE",
                   ContentType="text/y", Metadata={"n": "2"})
    g = s3.get_object(Bucket="cp-dst", Key="d")
    assert g["ContentType"] == "text/y" and g["Metadata"] == {"n": "2"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket="cp-dst", Key="c", CopySource={"Bucket": "cp-dst", "Key": "c"})
    assert _err(e) == ("InvalidRequest", 400)
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.copy_object(Bucket="cp-dst", Key="e", CopySource={"Bucket": "cp-src", "Key": "nope"})
    # Deleting the source keeps the copy (content is shared, reference counted).
    s3.delete_object(Bucket="cp-src", Key="a/b")
    assert s3.get_object(Bucket="cp-dst", Key="c")["Body"].read() == b"copy me"


def test_list_objects_v2(s3):
    s3.create_bucket(Bucket="list-bkt")
    keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "d e", "f+g", "z/\u00e9"]
    for k in keys:
        s3.put_object(Bucket="list-bkt", Key=k, Body=k.encode())
    out = s3.list_objects_v2(Bucket="list-bkt")
    assert [c["Key"] for c in out["Contents"]] == sorted(keys, key=lambda k: k.encode())
    assert out["KeyCount"] == len(keys) and not out["IsTruncated"]
    out = s3.list_objects_v2(Bucket="list-bkt", Delimiter="/")
    assert [c["Key"] for c in out["Contents"]] == ["c", "d e", "f+g"]
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/", "b/", "z/"]
    out = s3.list_objects_v2(Bucket="list-bkt", Prefix="a/", Delimiter="/")
    assert [c["Key"] for c in out["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/b/"]
    assert [c["Key"] for c in s3.list_objects_v2(Bucket="list-bkt", StartAfter="c")["Contents"]] == \
        ["d e", "f+g", "z/\u00e9"]
    # Pagination with max-keys and continuation tokens, also across common prefixes.
    seen, token = [], None
    while True:
        kw = {"Bucket": "list-bkt", "MaxKeys": 2, "Delimiter": "/"}
        if token:
            kw["ContinuationToken"] = token
        page = s3.list_objects_v2(**kw)
        assert page["KeyCount"] <= 2
        seen += [c["Key"] for c in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == ["a/", "b/", "c", "d e", "f+g", "z/"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="list-bkt", PaginationConfig={"PageSize": 3})
    assert [c["Key"] for p in pages for c in p["Contents"]] == sorted(keys, key=lambda k: k.encode())
    # ListObjects v1 and its marker
    v1 = s3.list_objects(Bucket="list-bkt", Marker="b/1")
    assert [c["Key"] for c in v1["Contents"]] == ["c", "d e", "f+g", "z/\u00e9"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_objects_v2(Bucket="list-bkt", ContinuationToken="not-a-token")
    assert _err(e) == ("InvalidArgument", 400)
    assert s3.list_objects_v2(Bucket="list-bkt", MaxKeys=0)["KeyCount"] == 0


def test_delete_objects(s3):
    s3.create_bucket(Bucket="del-bkt")
    for k in ["x1", "x2", "x3"]:
        s3.put_object(Bucket="del-bkt", Key=k, Body=b"1")
    out = s3.delete_objects(Bucket="del-bkt", Delete={"Objects": [{"Key": "x1"}, {"Key": "x2"}, {"Key": "nope"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["nope", "x1", "x2"]
    assert [c["Key"] for c in s3.list_objects_v2(Bucket="del-bkt")["Contents"]] == ["x3"]
    out = s3.delete_objects(Bucket="del-bkt", Delete={"Objects": [{"Key": "x3"}], "Quiet": True})
    assert "Deleted" not in out
    assert s3.list_objects_v2(Bucket="del-bkt")["KeyCount"] == 0


def test_multipart(s3):
    s3.create_bucket(Bucket="mpu-bkt")
    up = s3.create_multipart_upload(Bucket="mpu-bkt", Key="big", ContentType="application/zip",
                                    Metadata={"k": "v"})["UploadId"]
    p1, p2 = os.urandom(5 * 1024 * 1024), os.urandom(1234)
    e1 = s3.upload_part(Bucket="mpu-bkt", Key="big", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket="mpu-bkt", Key="big", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    parts = s3.list_parts(Bucket="mpu-bkt", Key="big", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, e1, len(p1)), (2, e2, len(p2))]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-bkt", Key="big", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert _err(e) == ("InvalidPartOrder", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-bkt", Key="big", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}]})
    assert _err(e) == ("InvalidPart", 400)
    out = s3.complete_multipart_upload(Bucket="mpu-bkt", Key="big", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    want = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest() + "-2"
    assert out["ETag"] == f'"{want}"'
    g = s3.get_object(Bucket="mpu-bkt", Key="big")
    assert g["Body"].read() == p1 + p2 and g["ETag"] == f'"{want}"'
    assert g["ContentType"] == "application/zip" and g["Metadata"] == {"k": "v"}
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.list_parts(Bucket="mpu-bkt", Key="big", UploadId=up)
    # EntityTooSmall: a part under 5 MB that is not the last.
    up = s3.create_multipart_upload(Bucket="mpu-bkt", Key="small")["UploadId"]
    a = s3.upload_part(Bucket="mpu-bkt", Key="small", UploadId=up, PartNumber=1, Body=b"a" * 100)["ETag"]
    b = s3.upload_part(Bucket="mpu-bkt", Key="small", UploadId=up, PartNumber=2, Body=b"b" * 100)["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpu-bkt", Key="small", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": a}, {"PartNumber": 2, "ETag": b}]})
    assert _err(e) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket="mpu-bkt", Key="small", UploadId=up)
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.upload_part(Bucket="mpu-bkt", Key="small", UploadId=up, PartNumber=1, Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket="mpu-bkt", Key="small", UploadId=up, PartNumber=10001, Body=b"x")
    assert _err(e)[1] == 400
    # boto3's managed transfer (multipart above 8 MB) round-trips.
    blob = os.urandom(18 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(blob), "mpu-bkt", "managed")
    out = io.BytesIO()
    s3.download_fileobj("mpu-bkt", "managed", out)
    assert out.getvalue() == blob


def test_versioning(s3):
    s3.create_bucket(Bucket="ver-bkt")
    assert "Status" not in s3.get_bucket_versioning(Bucket="ver-bkt")
    s3.put_object(Bucket="ver-bkt", Key="k", Body=b"v0")  # the "null" version
    s3.put_bucket_versioning(Bucket="ver-bkt", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="ver-bkt")["Status"] == "Enabled"
    v1 = s3.put_object(Bucket="ver-bkt", Key="k", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket="ver-bkt", Key="k", Body=b"v2")["VersionId"]
    assert v1 != v2 and v1 != "null"
    assert s3.get_object(Bucket="ver-bkt", Key="k")["Body"].read() == b"v2"
    assert s3.get_object(Bucket="ver-bkt", Key="k", VersionId=v1)["Body"].read() == b"v1"
    assert s3.get_object(Bucket="ver-bkt", Key="k", VersionId="null")["Body"].read() == b"v0"
    assert s3.head_object(Bucket="ver-bkt", Key="k", VersionId=v1)["VersionId"] == v1
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="ver-bkt", Key="k", VersionId="A" * 32)
    assert _err(e) == ("NoSuchVersion", 404)
    d = s3.delete_object(Bucket="ver-bkt", Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"]
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="ver-bkt", Key="k")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="ver-bkt", Key="k", VersionId=d["VersionId"])
    assert _err(e) == ("MethodNotAllowed", 405)
    assert s3.list_objects_v2(Bucket="ver-bkt")["KeyCount"] == 0
    vs = s3.list_object_versions(Bucket="ver-bkt")
    assert [v["VersionId"] for v in vs["Versions"]] == [v2, v1, "null"]
    assert [m["VersionId"] for m in vs["DeleteMarkers"]] == [d["VersionId"]]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="ver-bkt")
    assert _err(e) == ("BucketNotEmpty", 409)
    # Removing the marker brings the key back; deleting versions for good.
    s3.delete_object(Bucket="ver-bkt", Key="k", VersionId=d["VersionId"])
    assert s3.get_object(Bucket="ver-bkt", Key="k")["Body"].read() == b"v2"
    for v in (v2, v1, "null"):
        s3.delete_object(Bucket="ver-bkt", Key="k", VersionId=v)
    assert "Versions" not in s3.list_object_versions(Bucket="ver-bkt")
    s3.delete_bucket(Bucket="ver-bkt")


def test_virtual_host_addressing(server):
    path = s3client(server)
    path.create_bucket(Bucket="vhost-bkt")
    path.put_object(Bucket="vhost-bkt", Key="dir/k", Body=b"via path")
    # botocore's virtual style sends Host: vhost-bkt.127.0.0.1 ... which does not resolve; send the
    # Host headers clients use with a localhost endpoint directly.
    for host in [f"vhost-bkt.s3.localhost:{server.port}", f"vhost-bkt.localhost:{server.port}",
                 f"vhost-bkt.s3.us-east-1.amazonaws.com"]:
        r, data = raw(server, "GET", "/dir/k", {"Host": host})
        assert r.status == 200 and data == b"via path", host
        r, data = raw(server, "PUT", "/put-via-host", {"Host": host, "Content-Length": "3"}, b"abc")
        assert r.status == 200, data
        assert path.get_object(Bucket="vhost-bkt", Key="put-via-host")["Body"].read() == b"abc"
        r, data = raw(server, "GET", "/?list-type=2&prefix=dir/", {"Host": host})
        assert r.status == 200 and b"<Key>dir/k</Key>" in data
    # Unsigned (anonymous) requests are routed by Host alone.
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.request("GET", "/dir/k", headers={"Host": f"vhost-bkt.s3.localhost:{server.port}"})
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"via path"
    c.close()


def test_virtual_host_with_botocore(server):
    """botocore's own virtual-host addressing against http://localhost:PORT:
    it sends Host: <bucket>.localhost:PORT. *.localhost may not resolve on
    this machine, so the connection goes to 127.0.0.1 while the Host header
    (and the signature over it) stay botocore's."""
    cfg = Config(retries={"max_attempts": 0}, s3={"addressing_style": "virtual"})
    v = boto3.client("s3", endpoint_url=f"http://localhost:{server.port}", region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test", config=cfg)
    hosts = []

    def to_loopback(request, **kwargs):
        from urllib.parse import urlsplit, urlunsplit
        parts = urlsplit(request.url)
        hosts.append(parts.netloc)
        request.headers["Host"] = parts.netloc
        request.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{server.port}"))

    v.meta.events.register_first("before-send.s3", to_loopback)
    v.create_bucket(Bucket="vhost-bkt2")
    v.put_object(Bucket="vhost-bkt2", Key="a/k", Body=b"v")
    assert v.get_object(Bucket="vhost-bkt2", Key="a/k")["Body"].read() == b"v"
    assert [c["Key"] for c in v.list_objects_v2(Bucket="vhost-bkt2")["Contents"]] == ["a/k"]
    assert hosts and all(h == f"vhost-bkt2.localhost:{server.port}" for h in hosts)
    assert s3client(server).get_object(Bucket="vhost-bkt2", Key="a/k")["Body"].read() == b"v"


def _chunked_body(payload, pieces, trailer=None, signed=False):
    out = b""
    sig = ";chunk-signature=" + "0" * 64 if signed else ""
    for p in pieces:
        out += b"%x%s\r\n" % (len(p), sig.encode()) + p + b"\r\n"
    out += b"0" + sig.encode() + b"\r\n"
    if trailer:
        out += trailer.encode() + b"\r\n"
    out += b"\r\n"
    return out


def test_aws_chunked_uploads(server, s3):
    s3.create_bucket(Bucket="chunk-bkt")
    payload = os.urandom(70000)
    pieces = [payload[:65536], payload[65536:]]
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    body = _chunked_body(payload, pieces, f"x-amz-checksum-crc32:{crc}")
    hdrs = {"Content-Encoding": "aws-chunked", "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(len(payload)), "x-amz-trailer": "x-amz-checksum-crc32",
            "Content-Length": str(len(body)), "Content-Type": "text/x-chunked"}
    r, data = raw(server, "PUT", "/chunk-bkt/c1", hdrs, body)
    assert r.status == 200, data
    assert r.getheader("x-amz-checksum-crc32") == crc
    g = s3.get_object(Bucket="chunk-bkt", Key="c1")
    assert g["Body"].read() == payload and g["ContentType"] == "text/x-chunked"
    assert "ContentEncoding" not in g  # aws-chunked is transport, not content
    assert g["ETag"] == '"%s"' % hashlib.md5(payload).hexdigest()
    # Signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), no trailer.
    body = _chunked_body(payload, pieces, signed=True)
    h2 = dict(hdrs, **{"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "Content-Length": str(len(body))})
    del h2["x-amz-trailer"]
    r, data = raw(server, "PUT", "/chunk-bkt/c2", h2, body)
    assert r.status == 200, data
    assert s3.get_object(Bucket="chunk-bkt", Key="c2")["Body"].read() == payload
    # A wrong checksum is refused and nothing is stored.
    bad = _chunked_body(payload, pieces, "x-amz-checksum-crc32:AAAAAA==")
    r, data = raw(server, "PUT", "/chunk-bkt/c3", dict(hdrs, **{"Content-Length": str(len(bad))}), bad)
    assert r.status == 400 and b"<Code>BadDigest</Code>" in data
    # Broken framing: bad size line, missing CRLF, truncated, length mismatch.
    for broken in [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcX0\r\n\r\n", b"3\r\nab", b"5\r\nabcde\r\n0\r\n\r\nextra",
                   b"3\nabc\r\n0\r\n\r\n", b"ffffffffffffffff\r\n"]:
        h3 = dict(hdrs, **{"x-amz-decoded-content-length": "3", "Content-Length": str(len(broken))})
        del h3["x-amz-trailer"]
        r, data = raw(server, "PUT", "/chunk-bkt/c4", h3, broken)
        assert r.status == 400, (broken, data)
        assert b"<Error>" in data
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="chunk-bkt", Key="c3")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="chunk-bkt", Key="c4")
    # Content-MD5 is checked.
    r, data = raw(server, "PUT", "/chunk-bkt/md5", {"Content-MD5": base64.b64encode(b"0" * 16).decode(),
                                                    "Content-Length": "3"}, b"abc")
    assert r.status == 400 and b"BadDigest" in data


def test_checksum_header_and_sdk_checksums(s3):
    s3.create_bucket(Bucket="ck-bkt")
    for alg in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
        try:
            s3.put_object(Bucket="ck-bkt", Key=alg, Body=b"checksummed " + alg.encode(), ChecksumAlgorithm=alg)
        except botocore.exceptions.MissingDependencyException:
            continue  # CRC32C/CRC64NVME need awscrt on the client side
        assert s3.get_object(Bucket="ck-bkt", Key=alg)["Body"].read() == b"checksummed " + alg.encode()


def test_hostile_input(server, s3):
    s3.create_bucket(Bucket="host-bkt")
    # Keys are data: "../" never leaves anything.
    for key in ["../../etc/passwd", "a/../../b", "/abs", "..", "x/./y", "%2e%2e/z"]:
        s3.put_object(Bucket="host-bkt", Key=key, Body=key.encode())
        assert s3.get_object(Bucket="host-bkt", Key=key)["Body"].read() == key.encode()
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket="host-bkt")["Contents"]]
    assert "../../etc/passwd" in keys
    assert not os.path.exists(os.path.join(server.data_dir, "etc"))
    # Bad XML bodies.
    for body in [b"<CompleteMultipartUpload><Part>", b"not xml", b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><Delete/>",
                 b"<Wrong/>", b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
                 b"<Delete><Object><Key>" + b"k" * 5000 + b"</Key></Object></Delete>"]:
        r, data = raw(server, "POST", "/host-bkt?delete", {"Content-Length": str(len(body))}, body)
        assert r.status == 400 and b"<Code>MalformedXML</Code>" in data, (body[:40], data)
    r, data = raw(server, "PUT", "/host-bkt?versioning", {}, b"<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>")
    assert r.status == 400 and b"MalformedXML" in data
    up = s3.create_multipart_upload(Bucket="host-bkt", Key="m")["UploadId"]
    r, data = raw(server, "POST", f"/host-bkt/m?uploadId={up}", {}, b"<CompleteMultipartUpload></CompleteMultipartUpload>")
    assert r.status == 400 and b"MalformedXML" in data
    # A body declared over the 5 GB limit is refused before it is read.
    r, data = raw(server, "PUT", "/host-bkt/huge", {"Content-Length": str(5 * 1024 ** 3 + 1)}, b"")
    assert r.status == 400 and b"<Code>EntityTooLarge</Code>" in data
    r, data = raw(server, "PUT", f"/host-bkt/m?partNumber=1&uploadId={up}", {"Content-Length": str(6 * 1024 ** 3)}, b"")
    assert r.status == 400 and b"EntityTooLarge" in data
    # Too long keys, broken escapes.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="host-bkt", Key="k" * 1025, Body=b"x")
    assert _err(e) == ("KeyTooLongError", 400)
    r, data = raw(server, "GET", "/host-bkt/%zz", {})
    assert r.status == 400 and b"<Error>" in data
    # Short bodies: the connection ends before Content-Length bytes.
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.putrequest("PUT", "/host-bkt/short")
    c.putheader("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, Signature=0")
    c.putheader("Content-Length", "1000")
    c.endheaders()
    c.send(b"only a little")
    c.sock.shutdown(1)
    r = c.getresponse()
    assert r.status == 400
    c.close()
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="host-bkt", Key="short")
    # Unsupported subresources answer NotImplemented in S3's format.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_bucket_tagging(Bucket="host-bkt", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    assert _err(e) == ("NotImplemented", 501)
    # Server still fine.
    assert s3.list_objects_v2(Bucket="host-bkt")["KeyCount"] >= 6


def test_presigned_urls(server, s3):
    import urllib.request
    s3.create_bucket(Bucket="pre-bkt")
    s3.put_object(Bucket="pre-bkt", Key="p", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "pre-bkt", "Key": "p"})
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"presigned"
    put = s3.generate_presigned_url("put_object", Params={"Bucket": "pre-bkt", "Key": "q"})
    req = urllib.request.Request(put, data=b"uploaded", method="PUT")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
    assert s3.get_object(Bucket="pre-bkt", Key="q")["Body"].read() == b"uploaded"


def test_s3_survives_restart(lambdad_factory):
    srv = lambdad_factory()
    s3 = s3client(srv)
    s3.create_bucket(Bucket="keep-bkt")
    s3.put_bucket_versioning(Bucket="keep-bkt", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="keep-bkt", Key="k", Body=b"one", Metadata={"a": "b"})["VersionId"]
    s3.put_object(Bucket="keep-bkt", Key="k", Body=b"two")
    x_vid = s3.put_object(Bucket="keep-bkt", Key="dir/x", Body=b"x")["VersionId"]
    up = s3.create_multipart_upload(Bucket="keep-bkt", Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket="keep-bkt", Key="mp", UploadId=up, PartNumber=1, Body=b"p" * 10)["ETag"]
    srv.restart(kill=True)
    s3 = s3client(srv)
    assert s3.get_bucket_versioning(Bucket="keep-bkt")["Status"] == "Enabled"
    assert s3.get_object(Bucket="keep-bkt", Key="k")["Body"].read() == b"two"
    g = s3.get_object(Bucket="keep-bkt", Key="k", VersionId=v1)
    assert g["Body"].read() == b"one" and g["Metadata"] == {"a": "b"}
    assert [c["Key"] for c in s3.list_objects_v2(Bucket="keep-bkt")["Contents"]] == ["dir/x", "k"]
    assert s3.list_parts(Bucket="keep-bkt", Key="mp", UploadId=up)["Parts"][0]["ETag"] == e1
    out = s3.complete_multipart_upload(Bucket="keep-bkt", Key="mp", UploadId=up,
                                       MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert out["ETag"].endswith('-1"')
    assert s3.get_object(Bucket="keep-bkt", Key="mp")["Body"].read() == b"p" * 10
    # Blobs no longer referenced are removed from disk.
    blobs = os.path.join(srv.data_dir, "s3", "blobs")
    n = len(os.listdir(blobs))
    s3.delete_object(Bucket="keep-bkt", Key="dir/x", VersionId=x_vid)
    assert len(os.listdir(blobs)) == n - 1


def test_s3_ephemeral_keeps_nothing(lambdad_factory):
    srv = lambdad_factory(ephemeral=True)
    s3 = s3client(srv)
    s3.create_bucket(Bucket="eph-bkt")
    s3.put_object(Bucket="eph-bkt", Key="k", Body=b"x")
    assert not os.path.exists(os.path.join(srv.data_dir, "s3"))
    srv.restart()
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3client(srv).list_objects_v2(Bucket="eph-bkt")


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def aws_cli(version):
    """The AWS CLI v1 (PyPI's awscli, on PATH) or v2 ($LAMBDAD_AWS_CLI_V2 or
    .venv/awscli-v2/aws, which tools/setup.sh installs)."""
    if version == 1:
        return aws_cli_v1()
    for cand in [os.environ.get("LAMBDAD_AWS_CLI_V2"), os.path.join(REPO, ".venv", "awscli-v2", "aws")]:
        if cand and os.access(cand, os.X_OK):
            return cand
    pytest.skip("no AWS CLI v2 (tools/setup.sh installs it into .venv/awscli-v2)")


@pytest.mark.parametrize("version", [1, 2])
def test_aws_cli_s3(server, tmp_path, version):
    aws = aws_cli(version)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_PAGER="")

    def run(*args):
        p = subprocess.run([aws, "--endpoint-url", server.url, *args], env=env, capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout

    bkt = f"cli-bkt-v{version}"
    run("s3", "mb", f"s3://{bkt}")
    src = tmp_path / "up.bin"
    data = os.urandom(12 * 1024 * 1024)  # above the CLI's 8 MB multipart threshold
    src.write_bytes(data)
    run("s3", "cp", str(src), f"s3://{bkt}/dir/up.bin")
    (tmp_path / "small.txt").write_text("small")
    run("s3", "cp", str(tmp_path / "small.txt"), f"s3://{bkt}/small.txt")
    out = run("s3", "ls", f"s3://{bkt}/")
    assert "PRE dir/" in out and "small.txt" in out
    assert "up.bin" in run("s3", "ls", "--recursive", f"s3://{bkt}")
    assert bkt in run("s3", "ls")
    dst = tmp_path / "down.bin"
    run("s3", "cp", f"s3://{bkt}/dir/up.bin", str(dst))
    assert dst.read_bytes() == data
    head = json.loads(run("s3api", "head-object", "--bucket", bkt, "--key", "small.txt"))
    assert head["ContentLength"] == 5 and head["ContentType"] == "text/plain"
    run("s3", "rm", "--recursive", f"s3://{bkt}")
    run("s3", "rb", f"s3://{bkt}")


def test_unconfigured_subresources(s3):
    """What S3 answers for settings never made (read by e.g. Terraform)."""
    s3.create_bucket(Bucket="sub-bkt")
    s3.put_object(Bucket="sub-bkt", Key="o", Body=b"x")
    for call, code in [(s3.get_bucket_cors, "NoSuchCORSConfiguration"),
                       (s3.get_bucket_website, "NoSuchWebsiteConfiguration"),
                       (s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration"),
                       (s3.get_bucket_replication, "ReplicationConfigurationNotFoundError"),
                       (s3.get_object_lock_configuration, "ObjectLockConfigurationNotFoundError"),
                       (s3.get_bucket_tagging, "NoSuchTagSet"),
                       (s3.get_bucket_policy, "NoSuchBucketPolicy"),
                       (s3.get_bucket_ownership_controls, "OwnershipControlsNotFoundError"),
                       (s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration")]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call(Bucket="sub-bkt")
        assert _err(e) == (code, 404), call
    enc = s3.get_bucket_encryption(Bucket="sub-bkt")["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_request_payment(Bucket="sub-bkt")["Payer"] == "BucketOwner"
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket="sub-bkt")
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="sub-bkt")
    acl = s3.get_bucket_acl(Bucket="sub-bkt")
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL" and acl["Owner"]["ID"] == "000000000000"
    assert s3.get_object_acl(Bucket="sub-bkt", Key="o")["Grants"][0]["Permission"] == "FULL_CONTROL"
    assert s3.get_object_tagging(Bucket="sub-bkt", Key="o")["TagSet"] == []
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object_tagging(Bucket="sub-bkt", Key="missing")
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.get_bucket_cors(Bucket="no-such-sub-bkt")


def test_list_multipart_uploads(s3):
    s3.create_bucket(Bucket="lmu-bkt")
    ids = {}
    for key in ["b/2", "a/1", "b/1"]:
        ids[key] = s3.create_multipart_upload(Bucket="lmu-bkt", Key=key)["UploadId"]
    out = s3.list_multipart_uploads(Bucket="lmu-bkt")
    assert [(u["Key"], u["UploadId"]) for u in out["Uploads"]] == [("a/1", ids["a/1"]), ("b/1", ids["b/1"]),
                                                                    ("b/2", ids["b/2"])]
    assert not out["IsTruncated"]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="lmu-bkt", Prefix="b/")["Uploads"]] == ["b/1", "b/2"]
    page = s3.list_multipart_uploads(Bucket="lmu-bkt", MaxUploads=2)
    assert page["IsTruncated"] and len(page["Uploads"]) == 2
    rest = s3.list_multipart_uploads(Bucket="lmu-bkt", KeyMarker=page["NextKeyMarker"],
                                     UploadIdMarker=page["NextUploadIdMarker"])
    assert [u["Key"] for u in rest["Uploads"]] == ["b/2"]
    s3.abort_multipart_upload(Bucket="lmu-bkt", Key="a/1", UploadId=ids["a/1"])
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="lmu-bkt")["Uploads"]] == ["b/1", "b/2"]
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.list_multipart_uploads(Bucket="no-such-lmu-bkt")
