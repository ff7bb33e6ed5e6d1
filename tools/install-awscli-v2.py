#!/usr/bin/env python3
"""Installs the AWS CLI v2 into DEST (DEST/aws is the command).

PyPI's `awscli` is version 1, which has no `aws logs tail`; the e2e tests
of CloudWatch Logs drive `aws logs tail [--follow]`, a v2 command. PyPI
also carries the official v2 bundle (the self-contained Linux x86_64
build, its own Python inside) as the Lambda-layer asset of the CDK
package `aws-cdk-asset-awscli-v2`. This script fetches that package with
pip (no other download), unpacks the layer zip from it (wheel -> .jsii.tgz
-> lib/layer.zip) into DEST/dist and links DEST/aws to its `aws`.

Usage: install-awscli-v2.py DEST [PYTHON]   (PYTHON runs pip; default this one)
Exit status 0 when DEST/aws runs `--version`, 1 otherwise.
"""
import glob
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PACKAGE = "aws-cdk-asset-awscli-v2==2.0.198"


def extract_zip(zf, dest):
    """zipfile.extractall without losing modes and symlinks."""
    for zi in zf.infolist():
        mode = zi.external_attr >> 16
        path = os.path.join(dest, zi.filename)
        if not os.path.abspath(path).startswith(os.path.abspath(dest) + os.sep):
            raise ValueError(f"unsafe path in archive: {zi.filename}")
        if zi.is_dir():
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if stat.S_ISLNK(mode):
            target = zf.read(zi).decode()
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(target, path)
            continue
        with zf.open(zi) as src, open(path, "wb") as out:
            shutil.copyfileobj(src, out)
        if mode & 0o777:
            os.chmod(path, mode & 0o777)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    dest = os.path.abspath(sys.argv[1])
    python = sys.argv[2] if len(sys.argv) > 2 else sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps",
                        "--disable-pip-version-check", "-d", tmp, PACKAGE], check=True)
        wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
        with zipfile.ZipFile(wheel) as wz:
            tgz = [n for n in wz.namelist() if n.endswith(".jsii.tgz")][0]
            with tarfile.open(fileobj=io.BytesIO(wz.read(tgz))) as tf:
                layer = tf.extractfile("package/lib/layer.zip").read()
        staging = dest + ".new"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        with zipfile.ZipFile(io.BytesIO(layer)) as lz:
            extract_zip(lz, os.path.join(staging, "dist"))
        exe = glob.glob(os.path.join(staging, "dist", "awscli", "v2", "*", "dist", "aws"))
        if not exe:
            print("install-awscli-v2: no aws executable in the layer", file=sys.stderr)
            return 1
        os.symlink(os.path.relpath(exe[0], staging), os.path.join(staging, "aws"))
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(staging, dest)
    out = subprocess.run([os.path.join(dest, "aws"), "--version"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.startswith("aws-cli/2."):
        print(f"install-awscli-v2: {dest}/aws does not run: {out.stderr.strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
