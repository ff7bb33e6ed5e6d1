"""Lambda code from lambdad's S3: CreateFunction / UpdateFunctionCode with
S3Bucket/S3Key/S3ObjectVersion and PublishLayerVersion with Content.S3*,
AWS's errors for a missing bucket, key or version, and a 100 MB multipart
package that never sits whole in lambdad's memory."""
import io
import json
import os
import threading
import time
import zipfile

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from helpers import ROLE, code_sha256, make_zip, py_zip

HANDLER = "import os\ndef handler(event, context):\n    return {'tag': %r, 'files': sorted(os.listdir('/opt')) if os.path.isdir('/opt') else []}\n"


def clients(server, region="us-east-1"):
    cfg = Config(retries={"max_attempts": 0}, read_timeout=300)
    kw = dict(endpoint_url=server.url, region_name=region, aws_access_key_id="test",
              aws_secret_access_key="test", config=cfg)
    return boto3.client("s3", **kw), boto3.client("lambda", **kw)


def _err(excinfo):
    r = excinfo.value.response
    return r["Error"]["Code"], r["Error"]["Message"]


@pytest.mark.smoke
def test_ruststack_flow(server):
    """Create a bucket, upload the zip, CreateFunction from S3, invoke."""
    s3, lam = clients(server)
    s3.create_bucket(Bucket="deploy-bkt")
    zip_bytes = make_zip({"lambda_function.py": HANDLER % "from-s3"})
    s3.put_object(Bucket="deploy-bkt", Key="builds/fn.zip", Body=zip_bytes)
    fn = lam.create_function(FunctionName="from-s3", Runtime="python3.12", Role=ROLE,
                             Handler="lambda_function.handler",
                             Code={"S3Bucket": "deploy-bkt", "S3Key": "builds/fn.zip"})
    assert fn["CodeSha256"] == code_sha256(zip_bytes) and fn["CodeSize"] == len(zip_bytes)
    out = lam.invoke(FunctionName="from-s3", Payload=b"{}")
    assert json.loads(out["Payload"].read())["tag"] == "from-s3"
    # UpdateFunctionCode from S3 too.
    z2 = make_zip({"lambda_function.py": HANDLER % "updated"})
    s3.put_object(Bucket="deploy-bkt", Key="builds/fn2.zip", Body=z2)
    up = lam.update_function_code(FunctionName="from-s3", S3Bucket="deploy-bkt", S3Key="builds/fn2.zip")
    assert up["CodeSha256"] == code_sha256(z2)
    lam.get_waiter("function_updated_v2").wait(FunctionName="from-s3", WaiterConfig={"Delay": 0.2})
    assert json.loads(lam.invoke(FunctionName="from-s3")["Payload"].read())["tag"] == "updated"
    # The object can be deleted afterwards: the function keeps its code.
    s3.delete_object(Bucket="deploy-bkt", Key="builds/fn2.zip")
    assert json.loads(lam.invoke(FunctionName="from-s3")["Payload"].read())["tag"] == "updated"
    lam.delete_function(FunctionName="from-s3")


def test_object_versions(server):
    s3, lam = clients(server)
    s3.create_bucket(Bucket="ver-deploy")
    s3.put_bucket_versioning(Bucket="ver-deploy", VersioningConfiguration={"Status": "Enabled"})
    z1 = make_zip({"lambda_function.py": HANDLER % "v1"})
    v1 = s3.put_object(Bucket="ver-deploy", Key="fn.zip", Body=z1)["VersionId"]
    s3.put_object(Bucket="ver-deploy", Key="fn.zip", Body=make_zip({"lambda_function.py": HANDLER % "v2"}))
    fn = lam.create_function(FunctionName="from-s3-ver", Runtime="python3.12", Role=ROLE,
                             Handler="lambda_function.handler",
                             Code={"S3Bucket": "ver-deploy", "S3Key": "fn.zip", "S3ObjectVersion": v1})
    assert fn["CodeSha256"] == code_sha256(z1)
    assert json.loads(lam.invoke(FunctionName="from-s3-ver")["Payload"].read())["tag"] == "v1"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.update_function_code(FunctionName="from-s3-ver", S3Bucket="ver-deploy", S3Key="fn.zip",
                                 S3ObjectVersion="A" * 32)
    assert _err(e) == ("InvalidParameterValueException", "Error occurred while GetObject. S3 Error Code: "
                       "NoSuchVersion. S3 Error Message: The specified version does not exist.")
    # A key whose latest version is a delete marker is missing.
    s3.delete_object(Bucket="ver-deploy", Key="fn.zip")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.update_function_code(FunctionName="from-s3-ver", S3Bucket="ver-deploy", S3Key="fn.zip")
    assert "NoSuchKey" in _err(e)[1]


def test_missing_bucket_key_and_errors(server):
    s3, lam = clients(server)
    s3.create_bucket(Bucket="err-deploy")
    kw = dict(Runtime="python3.12", Role=ROLE, Handler="lambda_function.handler")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.create_function(FunctionName="s3-err", Code={"S3Bucket": "no-such-deploy", "S3Key": "k.zip"}, **kw)
    assert _err(e)[1] == ("Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: "
                          "The specified bucket does not exist")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.create_function(FunctionName="s3-err", Code={"S3Bucket": "err-deploy", "S3Key": "k.zip"}, **kw)
    assert _err(e)[1] == ("Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: "
                          "The specified key does not exist.")
    s3.put_object(Bucket="err-deploy", Key="bad.zip", Body=b"this is not a zip")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.create_function(FunctionName="s3-err", Code={"S3Bucket": "err-deploy", "S3Key": "bad.zip"}, **kw)
    assert _err(e)[1] == "Could not unzip uploaded file. Please check your file, then try to upload again."
    # A bucket of another region.
    eu_s3, eu_lam = clients(server, "eu-west-1")
    eu_s3.create_bucket(Bucket="eu-deploy", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    eu_s3.put_object(Bucket="eu-deploy", Key="fn.zip", Body=py_zip())
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.create_function(FunctionName="s3-err", Code={"S3Bucket": "eu-deploy", "S3Key": "fn.zip"}, **kw)
    assert "PermanentRedirect" in _err(e)[1] and "eu-west-1" in _err(e)[1]
    eu_lam.create_function(FunctionName="s3-eu", Code={"S3Bucket": "eu-deploy", "S3Key": "fn.zip"}, **kw)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="s3-err")


def test_layer_from_s3(server):
    s3, lam = clients(server)
    s3.create_bucket(Bucket="layer-deploy")
    layer = make_zip({"python/shared_mod.py": "X = 42\n"})
    s3.put_object(Bucket="layer-deploy", Key="layer.zip", Body=layer)
    lv = lam.publish_layer_version(LayerName="s3-layer", Content={"S3Bucket": "layer-deploy", "S3Key": "layer.zip"},
                                   CompatibleRuntimes=["python3.12"])
    assert lv["Content"]["CodeSha256"] == code_sha256(layer) and lv["Content"]["CodeSize"] == len(layer)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.publish_layer_version(LayerName="s3-layer", Content={"S3Bucket": "layer-deploy", "S3Key": "nope.zip"})
    assert "S3 Error Code: NoSuchKey" in _err(e)[1]
    code = "import shared_mod\ndef handler(e, c):\n    return {'x': shared_mod.X}\n"
    lam.create_function(FunctionName="uses-s3-layer", Runtime="python3.12", Role=ROLE,
                        Handler="lambda_function.handler", Code={"ZipFile": make_zip({"lambda_function.py": code})},
                        Layers=[lv["LayerVersionArn"]])
    assert json.loads(lam.invoke(FunctionName="uses-s3-layer")["Payload"].read()) == {"x": 42}


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_100mb_package_multipart_bounded_memory(lambdad_factory, tmp_path):
    srv = lambdad_factory()
    s3, lam = clients(srv)
    s3.create_bucket(Bucket="big-deploy")
    # 100 MB of incompressible data plus a handler that reports its size.
    zpath = tmp_path / "big.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("lambda_function.py", "import os\ndef handler(e, c):\n"
                    "    return {'size': os.path.getsize(os.path.join(os.path.dirname(__file__), 'blob.bin'))}\n")
        with zf.open("blob.bin", "w", force_zip64=True) as w:
            for _ in range(100):
                w.write(os.urandom(1024 * 1024))
    size = zpath.stat().st_size
    assert size > 100 * 1024 * 1024
    pid = srv.proc.pid
    base = _rss_kb(pid)
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_kb(pid))
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    try:
        s3.upload_file(str(zpath), "big-deploy", "big.zip")  # multipart (8 MB parts)
        head = s3.head_object(Bucket="big-deploy", Key="big.zip")
        assert head["ContentLength"] == size and head["ETag"].endswith('-13"')
        fn = lam.create_function(FunctionName="big-from-s3", Runtime="python3.12", Role=ROLE,
                                 Handler="lambda_function.handler", Timeout=60,
                                 Code={"S3Bucket": "big-deploy", "S3Key": "big.zip"})
        assert fn["CodeSize"] == size
    finally:
        stop.set()
        t.join()
    growth_mb = (peak[0] - base) / 1024
    print(f"lambdad RSS: base {base / 1024:.1f} MB, peak {peak[0] / 1024:.1f} MB, growth {growth_mb:.1f} MB")
    assert growth_mb < 100, f"RSS grew by {growth_mb:.1f} MB while handling a {size >> 20} MB package"
    out = json.loads(lam.invoke(FunctionName="big-from-s3")["Payload"].read())
    assert out == {"size": 100 * 1024 * 1024}
