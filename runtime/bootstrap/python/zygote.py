"""lambdad's Python zygote: a pre-initialised interpreter that forks one
Python execution environment per request (see runtime/zygote.h).

lambdad starts `python3 <bootstrap_dir>/python/zygote.py` once with a
SOCK_SEQPACKET socket on fd 3. The interpreter start-up (site, the
bootstrap module, a few stdlib modules handlers commonly use) is paid here
once instead of in every cold start.

Protocol (one datagram each way, one request at a time):
  request  "<cwd>\\0<K=V>\\0<K=V>..." with the log pipe's write end (SCM_RIGHTS)
  reply    b"<pid>" of the new environment, or b"-<errno>"
After start-up the zygote sends b"ready".

Per request the zygote forks A; A forks B and exits; B calls setsid() (so
kill(-B) reaches its whole group), reports its pid on a pipe, then becomes
what `python3 bootstrap.py` would have been: log fd on 1 and 2, /dev/null on
0, no other fds, cwd, the environment (os.environ and C environ), sys.path
rebuilt from PYTHONPATH as a fresh interpreter builds it, random re-seeded,
then lambdad_bootstrap.main(). lambdad is the child subreaper while a
request is in flight, so B re-parents to lambdad when A exits and lambdad
waits for it like any other environment. Pre-imported modules that the
function's own code shadows (a json.py in the task root...) are dropped
from sys.modules so the function imports its own.

The zygote exits when lambdad closes the socket (EOF)."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# lambdad starts the zygote without PYTHONPATH: this is the path of a fresh
# interpreter minus the PYTHONPATH entries (script dir, stdlib, site).
_BASE_PATH = list(sys.path[1:])
_BASELINE = set(sys.modules)

import lambdad_bootstrap  # noqa: E402

_BASELINE |= set(sys.modules)  # what `python3 bootstrap.py` loads anyway

if len(sys.argv) > 1:
    # lambdad's _lambdad_fast extension (runtime/bootstrap/python/lambdad_fast.c):
    # loaded by path, so it is not on any environment's sys.path.
    try:
        import importlib.machinery
        import importlib.util

        _loader = importlib.machinery.ExtensionFileLoader("_lambdad_fast", sys.argv[1])
        _spec = importlib.util.spec_from_file_location("_lambdad_fast", sys.argv[1], loader=_loader)
        _fast = importlib.util.module_from_spec(_spec)
        _loader.exec_module(_fast)
        lambdad_bootstrap.use_fast(_fast)
        del _loader, _spec, _fast
    except Exception as e:
        sys.stderr.write("lambdad zygote: %s not loaded (%s); the bootstrap runs without it\n"
                         % (sys.argv[1], e))

import _socket  # noqa: E402
import errno  # noqa: E402

for _m in ("json", "traceback", "logging", "importlib", "importlib.util", "socket", "ctypes",
           "datetime", "decimal", "random", "uuid", "base64", "hashlib", "urllib.parse"):
    try:
        __import__(_m)
    except Exception:
        pass
del _m
_EXTRA = sorted({m.partition(".")[0] for m in sys.modules} - {m.partition(".")[0] for m in _BASELINE})

_SOCK_FD = 3


def _pythonpath(value):
    """PYTHONPATH entries as CPython's getpath turns them into sys.path."""
    out = []
    for p in value.split(os.pathsep) if value else ():
        if sys.version_info >= (3, 11):
            out.append(os.path.abspath(p))
        elif p:
            out.append(p)
    return out


def _shadowed(name, dirs):
    for d in dirs:
        try:
            for entry in os.listdir(d):
                if entry == name or entry.partition(".")[0] == name:
                    return True
        except OSError:
            pass
    return False


def _become_environment(cwd, env, log_fd):
    """In B: turn this forked interpreter into a fresh environment process."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.closerange(3, 1 << 16)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)  # putenv: the C environ matches
    try:
        import time

        time.tzset()
    except Exception:
        pass
    script = os.path.join(_HERE, "bootstrap.py")
    sys.argv[:] = [script]
    pp = _pythonpath(env.get("PYTHONPATH", ""))
    sys.path[:] = [_HERE] + pp + _BASE_PATH
    sys.path_importer_cache.clear()
    # Modules this zygote imported early that the function's own code
    # provides must come from the function, as in a fresh interpreter.
    roots = [env.get("LAMBDA_TASK_ROOT") or cwd] + pp
    for name in _EXTRA:
        if _shadowed(name, roots):
            for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[m]
    if "random" in sys.modules:
        sys.modules["random"].seed()
    lambdad_bootstrap._configure_from_env(os.environ)


def _run_environment(cwd, env, log_fd):
    """In B: run the bootstrap like the interpreter runs a script."""
    code = 1
    try:
        _become_environment(cwd, env, log_fd)
        lambdad_bootstrap.main()
        code = 0
    except SystemExit as e:
        c = e.code
        if c is None:
            code = 0
        elif isinstance(c, int):
            code = c & 0xFF
        else:
            try:
                sys.stderr.write(str(c) + "\n")
            except Exception:
                pass
            code = 1
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
        except Exception:
            pass
        code = 1
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(code)


def _spawn(cwd, env, log_fd):
    """Forks A then B; returns the reply bytes."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        a = os.fork()
    except OSError as e:
        os.close(r)
        os.close(w)
        return b"-%d" % (e.errno or errno.EAGAIN)
    if a == 0:  # A
        try:
            os.close(r)
            if os.fork() == 0:  # B
                try:
                    os.setsid()
                    os.write(w, b"%d" % os.getpid())
                    os.close(w)
                except BaseException:
                    os._exit(127)
                _run_environment(cwd, env, log_fd)
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(a, 0)
    data = b""
    while True:
        chunk = os.read(r, 64)
        if not chunk:
            break
        data += chunk
    os.close(r)
    return data if data else b"-%d" % errno.ECHILD


def main():
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, _SOCK_FD)
    sock.send(b"ready")
    fd_size = _socket.CMSG_SPACE(4)
    while True:
        try:
            msg, anc, flags, _ = sock.recvmsg(1 << 20, fd_size)
        except InterruptedError:
            continue
        except ConnectionResetError:
            os._exit(0)  # lambdad went away (killed, or exited with requests queued)
        if not msg:
            os._exit(0)
        fds = []
        for level, kind, data in anc:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                n = len(data) - len(data) % 4
                fds += [int.from_bytes(data[i:i + 4], sys.byteorder) for i in range(0, n, 4)]
        if len(fds) != 1 or flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            sock.send(b"-%d" % errno.EINVAL)
            continue
        parts = msg.split(b"\0")
        cwd = os.fsdecode(parts[0])
        env = {}
        for kv in parts[1:]:
            k, sep, v = kv.partition(b"=")
            if sep and k:
                env[os.fsdecode(k)] = os.fsdecode(v)
        try:
            reply = _spawn(cwd, env, fds[0])
        finally:
            os.close(fds[0])
        sock.send(reply)


if __name__ == "__main__":
    main()
