"""The Docker tests' machine-wide lock (issue 8, item 6): it is taken only
once an engine answers, and a non-root user can take it after a root run
left the file behind."""
import os
import stat
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def test_no_engine_no_lock(tmp_path):
    # test_docker.py against an engine that is not there: the module skips
    # and never creates (or waits for) the lock.
    lock = tmp_path / "docker.lock"
    # LAMBDAD_TEST_STRICT=0: this run is meant to skip (tools/test.sh sets 1).
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-such.sock",
               LAMBDAD_E2E_DOCKER_LOCK=str(lock), LAMBDAD_TEST_STRICT="0")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                        os.path.join(HERE, "test_docker.py")],
                       cwd=HERE, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Docker engine not reachable" in p.stdout, p.stdout[-3000:]
    assert not lock.exists(), "the lock was taken before the engine check"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the file and switch to another user")
def test_non_root_after_root(tmp_path):
    d = tempfile.mkdtemp(prefix="lambdad-lock-", dir="/tmp")
    os.chmod(d, 0o1777)
    try:
        # What a root run of the old fixture left: root-owned, 0644.
        old = os.path.join(d, "old.lock")
        with open(old, "a"):
            pass
        os.chmod(old, 0o644)
        # A file the helper creates is usable by everyone.
        sys.path.insert(0, HERE)
        import enginelock
        fd = enginelock.acquire(os.path.join(d, "new.lock"), 5)
        assert fd is not None
        enginelock.release(fd)
        assert stat.S_IMODE(os.stat(os.path.join(d, "new.lock")).st_mode) == 0o666
        # As nobody (the system python: the venv may live under /root).
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import enginelock\n"
                "for p in sys.argv[2:]:\n"
                "    fd = enginelock.acquire(p, 5)\n"
                "    assert fd is not None, p\n"
                "    enginelock.release(fd)\n"
                "print('locked', len(sys.argv) - 2)\n")

        def as_nobody():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)

        p = subprocess.run(["/usr/bin/python3", "-c", code, HERE, old, os.path.join(d, "new.lock")],
                           preexec_fn=as_nobody, capture_output=True, text=True, timeout=60, cwd="/")
        assert p.returncode == 0 and "locked 2" in p.stdout, p.stdout + p.stderr
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)
