"""The lock that serialises the Docker e2e tests of every run on one
machine, whoever runs them (test_docker.py's engine_lock fixture).

The lock file is opened read-only: flock(2) needs no write access, so a
file created by another user (root's 0644 from an older run included)
still serves. A missing file is created with mode 0666 (umask undone), so
the next run of any user can open it too. Only the standard library is
used, so any python3 can import this (test_docker_lock.py runs it as
another user).
"""
import fcntl
import os
import time


def open_lock(path):
    """A read-only descriptor of the lock file, creating it (0666) if absent."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    os.fchmod(fd, 0o666)
    return fd


def acquire(path, wait_s):
    """Takes the lock (exclusive), waiting up to wait_s seconds. Returns the
    descriptor to pass to release(), or None when it stayed taken."""
    fd = open_lock(path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.5)


def release(fd):
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
