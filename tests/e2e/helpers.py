"""Helpers shared by the end-to-end tests: in-memory deployment packages,
AWS-shaped constants and small assertions.

Nothing here starts a server; see conftest.py for that.
"""
import base64
import os
import shutil
import hashlib
import io
import re
import stat
import time
import urllib.request
import uuid
import zipfile

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
ACCOUNT = "000000000000"
REGION = "us-east-1"

LAST_MODIFIED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# A fixed timestamp keeps the zip bytes (and so CodeSha256) a pure function
# of the contents.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

PY_HANDLER = "def handler(event, context):\n    return {'ok': True, 'event': event}\n"


def make_zip(files):
    """Builds a zip in memory and returns its bytes.

    files maps an entry name to either its content (str or bytes; a regular
    file, mode 0644) or a (content, mode) pair. A mode without file-type bits
    is a regular file with those permissions (e.g. 0o755); a mode with
    file-type bits is used as is, so (target, 0o120777) makes a symlink whose
    target is the content. Entry names are stored verbatim ("../x" and "/x"
    included), which is what the hostile-archive tests need.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, spec in files.items():
            if isinstance(spec, tuple):
                content, mode = spec
            else:
                content, mode = spec, 0o644
            if isinstance(content, str):
                content = content.encode()
            if not mode & 0o170000:
                mode |= stat.S_IFREG
            info = zipfile.ZipInfo(name, _ZIP_EPOCH)
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def py_zip(tag=""):
    """A minimal Python handler package (lambda_function.handler). tag makes
    the bytes (and CodeSha256) unique without changing behaviour."""
    return make_zip({"lambda_function.py": PY_HANDLER + f"# {tag}\n"})


def code_sha256(data):
    """CodeSha256 as AWS reports it: base64 of the raw SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def unique_name(prefix="fn"):
    """A valid, unique function name (letters, digits, '-', '_'; <= 64)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def function_arn(name, region=REGION, account=ACCOUNT):
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def create_function(client, name, zip_bytes=None, **kwargs):
    """CreateFunction with sensible defaults (python3.12, lambda_function.handler)."""
    params = dict(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="lambda_function.handler",
        Code={"ZipFile": zip_bytes if zip_bytes is not None else py_zip(name)},
    )
    params.update(kwargs)
    return client.create_function(**params)


def download(url, timeout=10):
    """GETs url and returns (status, body bytes)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def strip_meta(resp):
    """A response dict without ResponseMetadata, for comparisons."""
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


TRANSIENT_STATE_KEYS = ("StateReason", "StateReasonCode", "LastUpdateStatusReason",
                        "LastUpdateStatusReasonCode")


def settled(cfg):
    """A FunctionConfiguration (ResponseMetadata dropped) as it reads once the
    create/update finished: CreateFunction answers State Pending and the
    updates LastUpdateStatus InProgress, as AWS does; later reads show
    Active / Successful."""
    out = {k: v for k, v in strip_meta(cfg).items() if k not in TRANSIENT_STATE_KEYS}
    out["State"] = "Active"
    out["LastUpdateStatus"] = "Successful"
    return out


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value or timeout seconds
    pass; returns the value or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def tree_snapshot(root):
    """Every file and directory under root (relative paths), as a set."""
    import os

    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames + filenames:
            out.add(os.path.normpath(os.path.join(rel, n)))
    return out


def aws_cli_v1():
    """The AWS CLI v1 (PyPI's awscli): .venv/bin/aws when tools/setup.sh
    installed it there, else `aws` on PATH (a system install). Missing is a
    failure: setup installs it."""
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    for cand in (os.path.join(repo, ".venv", "bin", "aws"), shutil.which("aws")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise AssertionError("the AWS CLI v1 is neither in .venv/bin nor on PATH (tools/setup.sh installs it)")
