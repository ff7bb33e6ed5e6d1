#!/usr/bin/env python3
"""bench/soak.py — a mixed soak of one lambdad (issue 8's "Done when").

    python3 bench/soak.py [--duration 600] [--lambdad build/lambdad] [--out FILE]

For --duration seconds, against one lambdad it starts itself (127.0.0.1,
free port, temporary --data-dir, --ephemeral):

  * 32 threads, each with its own keep-alive connection (boto3 client),
    invoke a set of stable Python functions round robin;
  * a churn thread creates a function, invokes it once and deletes it,
    over and over (creates/deletes);
  * an update thread calls UpdateFunctionCode on one of the stable
    functions every second (new code each time), while they are invoked.

Every 10 s it samples lambdad's RSS, open descriptors, threads and child
processes (/proc). At the end it prints (and with --out writes) a JSON
summary: invokes, failures (with the first few), creates, deletes,
updates, samples. The verdict (exit status 1 when it fails): no invoke
failed, and RSS, descriptors not held by environments (fds_net: open
descriptors minus FDS_PER_ENV per live environment, from
/_lambdad/health) and threads are flat: the mean of the last
quarter of the samples within 20% (fds_net, threads: and +16) of the
mean of the second quarter (the first quarter is warm-up).

run_soak() is also used by tests/e2e/test_engine.py for a 30 s variant
against the e2e fixture's server.
"""
import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
FDS_PER_ENV = 7  # measured: 12 idle environments hold 86 descriptors
HANDLER = "import os\nTAG = {tag!r}\ndef handler(event, context):\n    return {{'tag': TAG, 'n': event.get('n')}}\n"


def make_zip(source):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("lambda_function.py", (1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        zf.writestr(info, source)
    return buf.getvalue()


def client(url):
    cfg = Config(retries={"max_attempts": 0}, read_timeout=120, connect_timeout=10,
                 max_pool_connections=2)
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test", config=cfg)


def proc_sample(pid):
    """RSS (kB), open fds, threads and child processes of pid."""
    out = {"t": time.time()}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_kb"] = int(line.split()[1])
                elif line.startswith("Threads:"):
                    out["threads"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        kids = 0
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            kids += 1
                except (OSError, ValueError, IndexError):
                    pass
        out["children"] = kids
    except OSError as e:
        out["error"] = repr(e)
    return out


class Soak:
    def __init__(self, url, pid, duration, connections=32, functions=8, update_every=1.0):
        self.url, self.pid, self.duration = url, pid, duration
        self.connections, self.nfun, self.update_every = connections, functions, update_every
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.invokes = self.failed = self.creates = self.deletes = self.updates = 0
        self.churn_invokes = 0
        self.errors = []
        self.samples = []
        self.names = [f"soak-{uuid.uuid4().hex[:10]}" for _ in range(self.nfun)]

    def fail(self, what):
        with self.lock:
            self.failed += 1
            if len(self.errors) < 20:
                self.errors.append(what[:500])

    def invoke_ok(self, c, name, n):
        try:
            r = c.invoke(FunctionName=name, Payload=json.dumps({"n": n}))
            body = r["Payload"].read()
            if r["StatusCode"] != 200 or "FunctionError" in r:
                self.fail(f"{name}: {r['StatusCode']} {r.get('FunctionError')} {body[:300]!r}")
                return False
            if json.loads(body).get("n") != n:
                self.fail(f"{name}: wrong answer {body[:300]!r}")
                return False
            return True
        except Exception as e:  # noqa: BLE001 - every failure counts
            self.fail(f"{name}: {e!r}")
            return False

    def invoker(self, i):
        c = client(self.url)
        k = i
        while not self.stop.is_set():
            name = self.names[k % len(self.names)]
            k += 1
            self.invoke_ok(c, name, k)
            with self.lock:
                self.invokes += 1

    def churn(self):
        c = client(self.url)
        k = 0
        while not self.stop.is_set():
            name = f"churn-{uuid.uuid4().hex[:10]}"
            k += 1
            try:
                c.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE,
                                  Handler="lambda_function.handler",
                                  Code={"ZipFile": make_zip(HANDLER.format(tag=name))})
                with self.lock:
                    self.creates += 1
                ok = self.invoke_ok(c, name, k)
                with self.lock:
                    self.invokes += 1
                    self.churn_invokes += ok
                c.delete_function(FunctionName=name)
                with self.lock:
                    self.deletes += 1
            except Exception as e:  # noqa: BLE001
                self.fail(f"churn {name}: {e!r}")

    def updater(self):
        c = client(self.url)
        k = 0
        while not self.stop.wait(self.update_every):
            k += 1
            name = self.names[k % len(self.names)]
            try:
                c.update_function_code(FunctionName=name,
                                       ZipFile=make_zip(HANDLER.format(tag=f"{name}-{k}")))
                with self.lock:
                    self.updates += 1
            except Exception as e:  # noqa: BLE001
                self.fail(f"update {name}: {e!r}")

    def sample(self):
        """proc_sample plus the live environments (GET /_lambdad/health) and
        fds_net: the descriptors not held for an environment. Each live
        environment holds about FDS_PER_ENV (Runtime API socket and
        connections, log pipe, pidfd, cgroup dirs), and how many are live
        swings with the load, so a leak shows in fds_net, not in fds."""
        x = proc_sample(self.pid)
        try:
            with urllib.request.urlopen(self.url + "/_lambdad/health", timeout=10) as r:
                x["envs_live"] = json.loads(r.read())["pool"]["envs_live"]
            x["fds_net"] = x["fds"] - FDS_PER_ENV * x["envs_live"]
        except (OSError, ValueError, KeyError) as e:
            x["health_error"] = repr(e)
        return x

    def sampler(self):
        while True:
            self.samples.append(self.sample())
            if self.stop.wait(10 if self.duration >= 60 else 2):
                break
        self.samples.append(self.sample())

    def run(self):
        c = client(self.url)
        for name in self.names:
            c.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE,
                              Handler="lambda_function.handler",
                              Code={"ZipFile": make_zip(HANDLER.format(tag=name))}, Timeout=60)
        threads = [threading.Thread(target=self.invoker, args=(i,)) for i in range(self.connections)]
        threads += [threading.Thread(target=self.churn), threading.Thread(target=self.updater),
                    threading.Thread(target=self.sampler)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            self.stop.wait(self.duration)
        finally:
            self.stop.set()
            for t in threads:
                t.join(180)
        elapsed = time.monotonic() - t0
        return self.summary(elapsed)

    def summary(self, elapsed):
        s = [x for x in self.samples if "rss_kb" in x and "fds_net" in x]
        out = {"duration_s": round(elapsed, 1), "connections": self.connections,
               "functions": self.nfun, "invokes": self.invokes, "failed": self.failed,
               "invokes_per_s": round(self.invokes / elapsed, 1) if elapsed else 0,
               "creates": self.creates, "deletes": self.deletes, "updates": self.updates,
               "errors": self.errors, "samples": s}
        verdict = []
        if self.failed:
            verdict.append(f"{self.failed} failures")
        if len(s) >= 8:
            q = len(s) // 4
            second, last = s[q:2 * q], s[-q:]
            for key, slack in (("rss_kb", 0), ("fds_net", 16), ("threads", 16)):
                a = sum(x[key] for x in second) / len(second)
                b = sum(x[key] for x in last) / len(last)
                out[f"{key}_q2_mean"] = round(a, 1)
                out[f"{key}_q4_mean"] = round(b, 1)
                if b > a * 1.2 + slack:
                    verdict.append(f"{key} grew from {a:.0f} to {b:.0f}")
        out["verdict"] = "ok" if not verdict else "; ".join(verdict)
        return out


def run_soak(url, pid, duration, **kwargs):
    """Runs the soak against a running lambdad; returns the summary dict."""
    return Soak(url, pid, duration, **kwargs).run()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--lambdad", default=str(ROOT / "build" / "lambdad"))
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--functions", type=int, default=8)
    ap.add_argument("--out", help="write the JSON summary here too")
    ap.add_argument("args", nargs="*", help="extra lambdad arguments (after --)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="lambdad-soak-")
    port = free_port()
    log = open(os.path.join(work, "lambdad.log"), "wb")
    cmd = [a.lambdad, "--host", "127.0.0.1", "--port", str(port), "--data-dir",
           os.path.join(work, "data"), "--ephemeral"] + a.args
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"lambdad did not start (log: {work}/lambdad.log)")
                time.sleep(0.1)
        before = proc_sample(proc.pid)
        summary = run_soak(url, proc.pid, a.duration, connections=a.connections,
                           functions=a.functions)
        summary["before"] = before
        summary["after"] = proc_sample(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
    summary["lambdad_exit"] = rc
    text = json.dumps(summary, indent=1)
    if a.out:
        Path(a.out).write_text(text)
    brief = {k: v for k, v in summary.items() if k != "samples"}
    print(json.dumps(brief, indent=1))
    if summary["verdict"] == "ok" and rc == 0:
        shutil.rmtree(work, ignore_errors=True)
        return 0
    print(f"soak FAILED: {summary['verdict']} (lambdad exit {rc}; log kept in {work})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
