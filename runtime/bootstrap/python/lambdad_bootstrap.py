"""lambdad bundled Python runtime client (stdlib only, Python 3.9+).

Loaded by the bootstrap.py stub next to it, which lambdad starts as
`python3 <bootstrap_dir>/python/bootstrap.py` with cwd =
the code dir and the Lambda environment (see ../README.md). It loads the
handler named by _HANDLER and then serves invocations through the AWS Lambda
Runtime API at http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/..., behaving like
AWS's awslambdaric: same handler resolution, same init error types and
messages, same context object, same error payloads, same log format.

DESIGN
* Speed first. The Runtime API is spoken over ONE persistent keep-alive TCP
  socket (TCP_NODELAY) with hand-written HTTP/1.1 framing: every request is a
  single sendall(), every response is parsed by a small reader (status line,
  headers, Content-Length or chunked body). No http.client/urllib anywhere,
  and `_socket` instead of `socket` (which drags in selectors/enum).
* Cold start: nothing is imported before the first GET /next that the loop
  does not need. JSON goes straight through the C accelerator `_json` (same
  functions json.dumps/json.loads use, so the same bytes) without importing
  the json package and the re/enum it drags in; the host name is passed to
  getaddrinfo as bytes so the idna codec is not imported either.
  `traceback` is imported only when an error must be
  formatted; `logging` is configured the moment anybody imports it (a
  one-shot sys.meta_path hook) instead of being imported eagerly, so a
  handler that never logs does not pay for it, and one that does sees the
  root logger already configured exactly as awslambdaric leaves it.
* Log ordering: lambdad attributes every byte written to stdout/stderr to
  the running invocation, so stdout is made line-buffered and both streams
  are flushed before each /response, /error or /init/error request.
* The code lives in this module, not in the script lambdad starts: CPython
  never caches the bytecode of its __main__ script, and compiling this file
  costs ~10 ms of every cold start; as an imported module its bytecode is
  cached in __pycache__. The bootstrap directory is then removed from
  sys.path (the task root takes its place) so it cannot shadow user modules.
"""

import os
import sys
import _socket
from marshal import loads as _marshal_loads
from time import time as _time


_API_PREFIX = "/2018-06-01"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_LAMBDA_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in "
    "the function code. However, in rare cases, a Lambda runtime update can "
    "cause unexpected function behavior. For functions using managed runtimes, "
    "runtime updates can be triggered by a function change, or can be applied "
    "automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates "
    "with a change in the runtime version, you may be able to mitigate this "
    "error by temporarily rolling back to the previous runtime version. For "
    "more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)
_ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
    b"Content-Length: 15\r\n\r\n{\"status\":\"OK\"}"
)
_ACCEPTED_LEN = len(_ACCEPTED)
# POST .../<id>/response (prefix, id, Host line, content type, length), and
# the same followed by the body and a pipelined request.
_RESULT_HEAD = b"%s%s/response HTTP/1.1\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
_RESULT_AND_NEXT = _RESULT_HEAD + b"%s%s"
_ERROR_LOG_IDENT = "\u00a0"  # awslambdaric indents traceback lines with NBSP

_environ = os.environ
_int_from_bytes = int.from_bytes
_GLOBAL_AWS_REQUEST_ID = None
_GLOBAL_TENANT_ID = None


class FaultException(Exception):
    """A runtime-detected failure with an AWS error type (awslambdaric's)."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        Exception.__init__(self, msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


class _ConnectionLost(Exception):
    """The Runtime API connection failed; `fresh` is True when nothing of the
    response had arrived yet (the request may be retried once)."""

    def __init__(self, msg, fresh):
        Exception.__init__(self, msg)
        self.fresh = fresh


# --------------------------------------------------------------------------
# Runtime API client: one keep-alive socket, minimal HTTP/1.1.
# --------------------------------------------------------------------------


class _Pipes(object):
    """lambdad's private channel after the pipe upgrade (rapi.h): events
    are read from one pipe, requests written to another. Offers the socket
    methods RuntimeClient uses. A reader blocked in read() on a pipe is
    woken by writes only, so no poll() is needed as on the socket."""

    __slots__ = ("rfd", "wfd")

    def __init__(self, rfd, wfd):
        self.rfd = rfd
        self.wfd = wfd

    def recv(self, n, _read=os.read):
        return _read(self.rfd, n)

    def recv_into(self, view, n, _readv=os.readv):
        return _readv(self.rfd, (view[:n],))

    def sendall(self, data, _write=os.write):
        n = _write(self.wfd, data)
        if n < len(data):  # a signal interrupted a big write
            view = memoryview(data)
            while n < len(data):
                n += _write(self.wfd, view[n:])

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


def _recv_fds(s, n):
    """recvmsg() on s for up to n descriptors (close-on-exec). Returns
    (data, [fd, ...])."""
    data, anc, _flags, _addr = s.recvmsg(
        4096, _socket.CMSG_SPACE(4 * n), _socket.MSG_CMSG_CLOEXEC
    )
    fds = []
    for level, kind, blob in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.extend(
                int.from_bytes(blob[i:i + 4], sys.byteorder, signed=True)
                for i in range(0, len(blob) - len(blob) % 4, 4)
            )
    return data, fds


class RuntimeClient(object):
    def __init__(self, address):
        self.address = address
        if address.startswith("["):  # [v6]:port
            host, _, port = address[1:].partition("]:")
        else:
            host, _, port = address.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port or 80)
        self.sock = None
        # On the private channel's socket: a poll object for self.sock (see
        # _recv), else None (TCP, or the channel's pipes).
        self.poll = None
        self.used = False  # the socket has completed at least one exchange
        self.buf = b""
        self.next_sent = False  # a GET /next was pipelined behind /response
        self.marshal = False  # events arrive as marshal frames (rapi.h)
        self.private = _environ.get("LAMBDAD_RAPI_PRIVATE", "1") != "0"
        host_hdr = ("Host: %s\r\n" % address).encode("latin-1")
        self._host_hdr = host_hdr
        self._next_req = (
            b"GET " + _API_PREFIX.encode() + b"/runtime/invocation/next HTTP/1.1\r\n"
            + host_hdr + b"User-Agent: lambdad-python\r\n\r\n"
        )
        self._inv_prefix = b"POST " + _API_PREFIX.encode() + b"/runtime/invocation/"

    # -- connection --------------------------------------------------------

    def _connect(self):
        if self._try_private():
            return
        err = None
        host = self.host
        try:
            host = host.encode("ascii")  # a str would import the idna codec
        except UnicodeError:
            pass
        for af, st, proto, _cn, sa in _socket.getaddrinfo(
            host, self.port, 0, _socket.SOCK_STREAM
        ):
            s = _socket.socket(af, st, proto)
            try:
                s.connect(sa)
            except OSError as e:
                s.close()
                err = e
                continue
            if af != _socket.AF_UNIX:
                s.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            self.sock = s
            self.used = False
            self.buf = b""
            return
        raise err if err else OSError("cannot resolve %s" % self.address)

    def _try_private(self):
        """lambdad's private channel: an abstract AF_UNIX socket named after
        the Runtime API address, same HTTP protocol, no TCP/IP stack. Used
        only when lambdad (same uid or root) listens on it; else TCP."""
        if not self.private or not self.host.startswith("127."):
            return False
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.connect(b"\0lambdad-rapi/" + self.address.encode("ascii"))
            uid = int.from_bytes(
                s.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)[4:8], sys.byteorder
            )
            if uid not in (0, os.getuid()):
                raise OSError("private channel owned by uid %d" % uid)
        except (OSError, UnicodeError):
            s.close()
            self.private = False
            return False
        self.sock = s
        self.poll = None
        self.used = False
        self.buf = b""
        try:
            if self._pipes(s):
                return True
        except (OSError, _ConnectionLost):
            self._close()
            self.private = False
            return False
        import select  # already loaded in a zygote's environments

        self.poll = select.poll()
        self.poll.register(s, select.POLLIN)
        return True

    def _pipes(self, s):
        """Asks lambdad to move the private channel onto two pipes (rapi.h:
        a pipe costs less per message than an AF_UNIX socket). True when
        self.sock is now the pipes; False when lambdad refused (its answer
        is consumed and the socket serves on). Raises OSError or
        _ConnectionLost when the socket is unusable."""
        s.sendall(b"GET /_lambdad/rapi-pipes HTTP/1.1\r\n" + self._host_hdr
                  + b"Lambdad-Events: marshal\r\n\r\n")
        data, fds = _recv_fds(s, 2)
        if len(fds) == 2 and data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n"):
            s.close()
            self.sock = _Pipes(fds[0], fds[1])
            self.marshal = b"\r\nLambdad-Events: marshal\r\n" in data
            return True
        for fd in fds:
            os.close(fd)
        if not data:
            raise _ConnectionLost("Runtime API closed the connection", False)
        self.buf = data
        status = self._read_response()[0]  # the refusal: a 404 or 500 with a body
        if status == 200 or self.sock is not s:
            # A 200 whose descriptors did not arrive (MSG_CTRUNC: at the fd
            # limit): lambdad has moved the connection to pipes we lack.
            raise _ConnectionLost("Runtime API closed the connection", False)
        self.used = False
        return False

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.poll = None
        self.buf = b""
        self.next_sent = False
        self.marshal = False

    # -- one exchange ------------------------------------------------------

    def _exchange(self, head, body, read=None):
        """Sends one request and returns (status, headers, body) as read
        (default _read_response). Retries once on a new connection when a
        reused keep-alive socket turns out to be closed before any response
        byte arrived."""
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            reused = self.used
            try:
                if body and len(body) > 65536:
                    self.sock.sendall(head)
                    self.sock.sendall(body)
                else:
                    self.sock.sendall(head + body if body else head)
                return read() if read is not None else self._read_response()
            except (OSError, _ConnectionLost) as e:
                fresh = getattr(e, "fresh", True)
                self._close()
                if attempt or not reused or not fresh:
                    raise
        raise AssertionError("unreachable")

    def _recv(self):
        """Waits for and reads the start of a response."""
        if self.poll is not None:
            # AF_UNIX wakes a reader blocked in recv() whenever the peer
            # reads what this socket sent (unix_write_space wakes every
            # sleeper, whatever it waits for): lambdad reading our /response
            # woke this process once per invoke for nothing. poll() waits
            # for POLLIN only.
            self.poll.poll()
        return self.sock.recv(65536)

    def _read_response(self):
        sock = self.sock
        buf = self.buf
        fresh = True
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            chunk = self._recv()
            if not chunk:
                raise _ConnectionLost("Runtime API closed the connection", fresh and not buf)
            fresh = False
            buf += chunk
        lines = buf[:i].decode("latin-1").split("\r\n")
        rest = buf[i + 4:]
        status_line = lines[0]
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            raise _ConnectionLost("bad status line %r" % status_line, False)
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        cl = headers.get("content-length")
        if cl is not None:
            n = int(cl)
            if len(rest) >= n:
                body = rest[:n]
                self.buf = rest[n:]
            else:
                body = self._read_exact(rest, n)
                self.buf = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked(rest)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
            self.buf = rest
        else:  # body delimited by connection close
            parts = [rest]
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                parts.append(chunk)
            body = b"".join(parts)
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self._close()
        else:
            self.used = True
        return status, headers, body

    def _read_exact(self, have, n):
        out = bytearray(n)
        view = memoryview(out)
        got = len(have)
        view[:got] = have
        sock = self.sock
        while got < n:
            r = sock.recv_into(view[got:], min(n - got, 1 << 20))
            if not r:
                raise _ConnectionLost("Runtime API closed the connection mid-body", False)
            got += r
        return bytes(out)

    def _fill(self, buf):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _ConnectionLost("Runtime API closed the connection mid-body", False)
        return buf + chunk

    def _read_chunked(self, buf):
        parts = []
        while True:
            while b"\r\n" not in buf:
                buf = self._fill(buf)
            line, _, buf = buf.partition(b"\r\n")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # trailers until an empty line
                while True:
                    while b"\r\n" not in buf:
                        buf = self._fill(buf)
                    line, _, buf = buf.partition(b"\r\n")
                    if not line:
                        break
                self.buf = buf
                return b"".join(parts)
            while len(buf) < size + 2:
                buf = self._fill(buf)
            parts.append(buf[:size])
            buf = buf[size + 2:]

    def _read_event(self):
        """The answer to GET /next: a marshal events frame (rapi.h) on a
        channel that asked for them, else (and for any status other than
        an event) an HTTP response. Returns (status, event tuple or headers,
        body)."""
        if not self.marshal:
            return self._read_response()
        buf = self.buf
        fresh = True
        while len(buf) < 5 and not (buf and buf[0]):
            chunk = self._recv()
            if not chunk:
                raise _ConnectionLost("Runtime API closed the connection", fresh and not buf)
            fresh = False
            buf += chunk
        if buf[0]:  # "HTTP/1.1 ...": a status, not an event
            self.buf = buf
            return self._read_response()
        end = 5 + _int_from_bytes(buf[1:5], "little")
        if len(buf) < end:
            buf = self._read_exact(buf, end)
        if len(buf) > end:
            self.buf = buf[end:]
            buf = buf[:end]
        else:
            self.buf = b""
        try:
            event = _marshal_loads(buf[5:])
        except (ValueError, EOFError, TypeError) as e:
            raise _ConnectionLost("bad event frame: %s" % e, False)
        self.used = True
        return 200, event, None

    # -- Runtime API operations --------------------------------------------

    def next_invocation(self):
        """GET /next; blocks with no timeout. Returns the event as
        (request id, deadline ms, invoked function ARN, trace id, client
        context, Cognito identity, tenant id, content type, body); the ids
        and contexts may be None, the deadline a header's text."""
        if self.next_sent:
            # Pipelined behind the previous /response: only read the answer.
            self.next_sent = False
            try:
                status, headers, body = self._read_event()
            except (OSError, _ConnectionLost):
                self._close()
                status, headers, body = self._exchange(self._next_req, b"", self._read_event)
        else:
            status, headers, body = self._exchange(self._next_req, b"", self._read_event)
        if status != 200:
            raise _ConnectionLost(
                "GET /next answered %d: %s" % (status, body[:512].decode("utf-8", "replace")),
                False,
            )
        if body is None:  # a marshal frame: the tuple below
            return headers
        get = headers.get
        return (get("lambda-runtime-aws-request-id"), get("lambda-runtime-deadline-ms"),
                get("lambda-runtime-invoked-function-arn"), get("lambda-runtime-trace-id"),
                get("lambda-runtime-client-context"), get("lambda-runtime-cognito-identity"),
                get("lambda-runtime-aws-tenant-id"), get("content-type"), body)

    def post(self, path, body, content_type, extra=b""):
        head = (
            b"POST " + path + b" HTTP/1.1\r\n" + self._host_hdr
            + b"Content-Type: " + content_type + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n"
        )
        status, _h, rbody = self._exchange(head, body)
        if not 200 <= status < 300:
            _flush()
            sys.stderr.write(
                "lambdad bootstrap: POST %s answered %d: %s\n"
                % (path.decode("latin-1"), status, rbody[:512].decode("utf-8", "replace"))
            )
            sys.stderr.flush()
        return status

    def post_invocation_result(self, invoke_id, body, content_type):
        _flush()
        head = (self._inv_prefix, invoke_id.encode(), self._host_hdr, content_type, len(body))
        if self.sock is not None and len(body) <= 65536:
            # One write carries the result and the next GET /next (HTTP/1.1
            # pipelining, which lambdad's Runtime API host supports): one
            # system call and one wake-up less per invocation.
            try:
                self.sock.sendall(_RESULT_AND_NEXT % (head + (body, self._next_req)))
                # lambdad answers with this exact 202, usually in the same
                # segment as the next event (rapi.h): skip the parser.
                buf = self.buf or self._recv()
                if buf.startswith(_ACCEPTED):
                    self.buf = buf[_ACCEPTED_LEN:]
                    status, rbody = 202, b""
                else:
                    if not buf:
                        raise _ConnectionLost("Runtime API closed the connection", True)
                    self.buf = buf
                    status, _h, rbody = self._read_response()
                self.next_sent = self.sock is not None
            except (OSError, _ConnectionLost):
                self._close()
                self.next_sent = False
                status, _h, rbody = self._exchange(_RESULT_HEAD % head, body)
        else:
            status, _h, rbody = self._exchange(_RESULT_HEAD % head, body)
        if status != 202 and not 200 <= status < 300:
            sys.stderr.write(
                "lambdad bootstrap: POST /response answered %d: %s\n"
                % (status, rbody[:512].decode("utf-8", "replace"))
            )
            sys.stderr.flush()

    def post_invocation_error(self, invoke_id, error_json):
        _flush()
        path = self._inv_prefix[5:] + invoke_id.encode() + b"/error"
        self.post(path, error_json.encode("utf-8", "replace"), b"application/json")

    def post_init_error(self, error_json, error_type):
        _flush()
        extra = (_ERROR_TYPE_HEADER + ": " + error_type + "\r\n").encode("utf-8", "replace")
        path = (_API_PREFIX + "/runtime/init/error").encode()
        self.post(path, error_json.encode("utf-8", "replace"), b"application/json", extra)


def _flush():
    try:
        sys.stdout.flush()
    except Exception:
        pass
    try:
        sys.stderr.flush()
    except Exception:
        pass


# --------------------------------------------------------------------------
# Context object (attribute for attribute awslambdaric's LambdaContext).
# --------------------------------------------------------------------------

_W3C_ALLOWED_FIELDS = ("traceparent", "tracestate", "baggage")


class LambdaContext(object):
    _env = (None, None, None, None, None)  # filled once at start-up

    def __init__(self, invoke_id, client_context, cognito_identity,
                 epoch_deadline_time_in_ms, invoked_function_arn=None, tenant_id=None):
        self.aws_request_id = invoke_id
        (self.log_group_name, self.log_stream_name, self.function_name,
         self.memory_limit_in_mb, self.function_version) = LambdaContext._env
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        w3c = {}
        if client_context is not None:
            if isinstance(client_context, dict) and "w3c" in client_context:
                raw = client_context.pop("w3c")
                if isinstance(raw, dict):
                    for key in _W3C_ALLOWED_FIELDS:
                        value = raw.get(key)
                        if isinstance(value, str):
                            w3c[key] = value
            cc = ClientContext()
            get = client_context.get
            cc.custom = get("custom")
            cc.env = get("env")
            client = get("client")
            if client is not None:
                c = Client()
                get = client.get
                c.installation_id = get("installation_id")
                c.app_title = get("app_title")
                c.app_version_name = get("app_version_name")
                c.app_version_code = get("app_version_code")
                c.app_package_name = get("app_package_name")
                client = c
            cc.client = client
            self.client_context = cc
        else:
            self.client_context = None
        self._w3c_fields = w3c
        ident = CognitoIdentity()
        if cognito_identity is not None:
            ident.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            ident.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        else:
            ident.cognito_identity_id = None
            ident.cognito_identity_pool_id = None
        self.identity = ident
        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self):
        delta_ms = self._epoch_deadline_time_in_ms - int(_time() * 1000)
        return delta_ms if delta_ms > 0 else 0

    def w3c(self):
        return dict(self._w3c_fields)

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "%s([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,"
            "function_name=%s,memory_limit_in_mb=%s,function_version=%s,"
            "invoked_function_arn=%s,client_context=%s,identity=%s,tenant_id=%s])"
            % (self.__class__.__name__, self.aws_request_id, self.log_group_name,
               self.log_stream_name, self.function_name, self.memory_limit_in_mb,
               self.function_version, self.invoked_function_arn, self.client_context,
               self.identity, self.tenant_id)
        )


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "%s([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.__class__.__name__, self.cognito_identity_id, self.cognito_identity_pool_id)


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name",
                 "app_version_code", "app_package_name"]

    def __repr__(self):
        return ("%s([installation_id=%s,app_title=%s,app_version_name=%s,"
                "app_version_code=%s,app_package_name=%s])") % (
            self.__class__.__name__, self.installation_id, self.app_title,
            self.app_version_name, self.app_version_code, self.app_package_name)


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "%s([custom=%s,env=%s,client=%s])" % (
            self.__class__.__name__, self.custom, self.env, self.client)


# --------------------------------------------------------------------------
# Marshalling (awslambdaric's LambdaMarshaller on the stdlib json module).
# --------------------------------------------------------------------------

_decimal_raw = []  # str(Decimal) values of the encode in progress


def _json_default(o):
    # Decimal the way awslambdaric's simplejson RawJSON writes it (str(d),
    # NaN as NaN): a placeholder string swapped for the digits afterwards.
    if type(o).__name__ == "Decimal" and hasattr(o, "is_nan"):
        if o.is_nan():
            return float("nan")
        _decimal_raw.append(str(o))
        return "\x00%d\x00" % (len(_decimal_raw) - 1)
    raise TypeError("Object of type %s is not JSON serializable" % o.__class__.__name__)


def _ensure_ascii_for(exec_env):
    # awslambdaric emits non-ASCII unescaped on the python3.12+ runtimes.
    prefix = "AWS_Lambda_python3."
    if exec_env and exec_env.startswith(prefix):
        try:
            return int(exec_env[len(prefix):].split(".")[0]) < 12
        except ValueError:
            return True
    return True


class _ScanContext(object):
    # What json.decoder.JSONDecoder hands the C scanner by default.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan"),
    }.__getitem__
    memo = {}


def _make_codec(ensure_ascii):
    """Returns (loads, encode) built straight on the C accelerator `_json`
    with json.dumps()/json.loads() defaults, so the json package (and the
    `re`/`enum` it imports, ~5 ms) stays out of the cold start. Output is
    identical by construction (json uses the same C functions); a self-check
    falls back to the json package if this Python's `_json` differs."""
    try:
        import _json

        scan = _json.make_scanner(_ScanContext())
        markers = {}
        c_encode = _json.make_encoder(
            markers, _json_default,
            _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring,
            None, ": ", ", ", False, False, True,
        )
        clear = markers.clear
        join = "".join

        def encode(obj):
            try:
                return join(c_encode(obj, 0))
            except BaseException:
                clear()  # an aborted encode leaves stale ids behind
                raise

        ws = " \t\n\r"

        def loads(data):
            try:
                s = data.decode("utf-8") if data.__class__ is bytes else data
                if s[:1] == "\ufeff":
                    raise ValueError("BOM")
                obj, end = scan(s, len(s) - len(s.lstrip(ws)))
                if end != len(s) and s[end:].strip(ws):
                    raise ValueError("extra data")
                return obj
            except Exception:
                import json  # the exact json.loads result or error message

                return json.loads(data)

        sample = {"a": [1, 2.5, None, True, "\u00e9", float("inf")]}
        want = '{"a": [1, 2.5, null, true, %s, Infinity]}' % (
            '"\\u00e9"' if ensure_ascii else '"\u00e9"')
        if encode(sample) != want or loads(want.encode()) != sample:
            raise ValueError("_json self-check failed")
        return loads, encode
    except Exception:
        import json

        enc = json.JSONEncoder(ensure_ascii=ensure_ascii, default=_json_default).encode
        return json.loads, enc




def to_json(obj):
    if _decimal_raw:
        del _decimal_raw[:]
    s = _encode(obj)
    if _decimal_raw:
        for i, raw in enumerate(_decimal_raw):
            s = s.replace('"\\u0000%d\\u0000"' % i, raw, 1)
        del _decimal_raw[:]
    return s


def marshal_response(response):
    if isinstance(response, bytes):
        return response, b"application/unknown"
    try:
        return to_json(response).encode("utf-8"), b"application/json"
    except Exception as e:
        raise FaultException(
            FaultException.MARSHAL_ERROR, "Unable to marshal response: {}".format(str(e)), None
        )


# --------------------------------------------------------------------------
# Errors and the error log record.
# --------------------------------------------------------------------------


def make_error(error_message, error_type, stack_trace, invoke_id=None):
    return {
        "errorMessage": error_message if error_message else "",
        "errorType": error_type if error_type else "",
        "requestId": invoke_id if invoke_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _user_frames(tb):
    import traceback

    tuples = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i in range(len(tuples)):
        name = tuples[i][0]
        if "/bootstrap.py" not in name and not name.endswith("/lambdad_bootstrap.py"):
            tuples = tuples[i:]
            break
    return traceback.format_list(tuples)


def build_fault_result(exc_info, msg):
    etype, value, tb = exc_info
    return make_error(msg if msg else str(value), etype.__name__, _user_frames(tb))


def _replace_line_indentation(line, indent_char, new_indent_char):
    n = len(line) - len(line.lstrip(indent_char))
    return (new_indent_char * n) + line[n:]


def log_error(error_result):
    """Writes the "[ERROR] Type: message / Traceback ..." record awslambdaric
    writes for an unhandled error (lines joined with "\\n" as the service's
    log shows them; JSON when AWS_LAMBDA_LOG_FORMAT=JSON)."""
    if _LOG_FORMAT_JSON:
        import time

        rec = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "level": "ERROR"}
        rec.update(error_result)
        text = to_json(rec) + "\n"
    else:
        desc = "[ERROR]"
        etype = error_result.get("errorType")
        if etype:
            desc += " " + etype
        emsg = error_result.get("errorMessage")
        if emsg:
            if etype:
                desc += ":"
            desc += " " + emsg
        lines = [desc]
        stack = error_result.get("stackTrace")
        if stack is not None:
            lines.append("Traceback (most recent call last):")
            for element in stack:
                if element == "":
                    lines.append("")
                else:
                    for tl in element.splitlines():
                        lines.append(_replace_line_indentation(tl, " ", _ERROR_LOG_IDENT))
        text = "\n".join(lines) + "\n"
    _flush()
    sys.stdout.write(text)
    _flush()


# --------------------------------------------------------------------------
# Logging (awslambdaric's _setup_logging), configured lazily.
# --------------------------------------------------------------------------

def _configure_from_env(env):
    """Reads the settings that depend on the environment. Runs at import;
    lambdad's zygote (zygote.py) imports this module once and calls it again
    in every forked environment after installing that environment."""
    global _loads, _encode, _LOG_FORMAT_JSON, _LOG_LEVEL
    _loads, _encode = _make_codec(_ensure_ascii_for(env.get("AWS_EXECUTION_ENV")))
    _LOG_FORMAT_JSON = (env.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"
    lvl = env.get("AWS_LAMBDA_LOG_LEVEL")
    _LOG_LEVEL = {None: "", "TRACE": "DEBUG"}.get(lvl, lvl).upper()


_configure_from_env(_environ)


def _setup_logging(logging):
    import time

    logging.Formatter.converter = time.gmtime
    logger = logging.getLogger()

    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            sys.stdout.write(self.format(record))

    class LambdaLoggerFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _GLOBAL_AWS_REQUEST_ID or ""
            record.tenant_id = _GLOBAL_TENANT_ID
            return True

    handler = LambdaLoggerHandler()
    handler.log_sink = sys.stdout  # awslambdaric handlers expose a log_sink
    if _LOG_FORMAT_JSON:
        handler.setFormatter(_make_json_formatter(logging))
    else:
        handler.setFormatter(
            logging.Formatter(
                "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
                "%Y-%m-%dT%H:%M:%S",
            )
        )
    if _LOG_LEVEL in logging._nameToLevel:
        logger.setLevel(_LOG_LEVEL)
    handler.addFilter(LambdaLoggerFilter())
    logger.addHandler(handler)


_RESERVED_FIELDS = frozenset((
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
    "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
    "relativeCreated", "thread", "threadName", "processName", "process",
    "aws_request_id", "tenant_id", "_frame_type", "taskName",
))


def _make_json_formatter(logging):
    from datetime import datetime, timezone
    import json
    import traceback

    enc = json.JSONEncoder(ensure_ascii=False).encode

    class JsonFormatter(logging.Formatter):
        def formatTime(self, record, datefmt=None):
            dt = datetime.fromtimestamp(record.created, tz=timezone.utc)
            return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

        def format(self, record):
            record.levelno = min(50, max(0, record.levelno)) // 10 * 10
            record.levelname = logging.getLevelName(record.levelno)
            ei = record.exc_info
            result = {
                "timestamp": self.formatTime(record),
                "level": record.levelname,
                "message": record.getMessage(),
                "logger": record.name,
                "stackTrace": traceback.format_tb(ei[2]) if ei else None,
                "errorType": ei[0].__name__ if ei else None,
                "errorMessage": str(ei[1]) if ei else None,
                "requestId": getattr(record, "aws_request_id", None),
                "location": "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
                if ei else None,
            }
            if getattr(record, "tenant_id", None) is not None:
                result["tenantId"] = record.tenant_id
            result.update(
                (k, v) for k, v in record.__dict__.items()
                if k not in _RESERVED_FIELDS and k not in result
            )
            result = {k: v for k, v in result.items() if v is not None}
            try:
                return enc(result) + "\n"
            except TypeError:
                return json.JSONEncoder(ensure_ascii=False, default=str).encode(result) + "\n"

    return JsonFormatter()


class _LoggingHook(object):
    """One-shot meta path finder: lets the normal machinery find `logging`,
    then configures the root logger right after the module has executed."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "logging":
            return None
        try:
            sys.meta_path.remove(cls)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_and_setup(module):
            exec_module(module)
            _setup_logging(module)

        try:
            loader.exec_module = exec_and_setup
        except (AttributeError, TypeError):  # frozen/builtin loaders: eager fallback
            return spec
        return spec


def _install_logging():
    if "logging" in sys.modules:
        _setup_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _LoggingHook)


# --------------------------------------------------------------------------
# Handler loading (awslambdaric's _get_handler).
# --------------------------------------------------------------------------


def _get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(
            FaultException.MALFORMED_HANDLER_NAME, "Bad handler '{}': {}".format(handler, str(e))
        )
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module {} as a handler module".format(modname),
            )
        import importlib

        m = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR,
            "Unable to import module '{}': {}".format(modname, str(e)),
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR,
            "Syntax error in module '{}': {}".format(modname, str(e)),
            trace,
        )
    try:
        request_handler = getattr(m, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND,
            "Handler '{}' missing on module '{}'".format(fname, modname),
            None,
        )
    return request_handler


# --------------------------------------------------------------------------
# The invoke loop.
# --------------------------------------------------------------------------


_TRACE_KEY = "_X_AMZN_TRACE_ID"
# Invokes served with plain os.environ before _TraceEnv switches to its own
# buffers: the switch imports ctypes (~1-2 ms unless the zygote preloaded
# it), which a cold start should not pay; 1,000 leaked ids are ~140 KB.
# LAMBDAD_TRACE_ENV_AFTER in the function's environment overrides it.
_TRACE_SWITCH_AFTER = 1000
_TRACE_OFF = len(_TRACE_KEY) + 1  # the value's offset in "_X_AMZN_TRACE_ID=..."


# _lambdad_fast.set_trace (runtime/bootstrap/python/lambdad_fast.c) when the
# zygote loaded lambdad's extension (use_fast), else None.
_fast_set_trace = None


def use_fast(mod):
    """Called by the zygote with lambdad's _lambdad_fast extension."""
    global _fast_set_trace
    _fast_set_trace = mod.set_trace


class _TraceEnv(object):
    """Sets _X_AMZN_TRACE_ID for each invoke in os.environ and in the C
    environ (child processes, getenv), as awslambdaric does, without glibc's
    setenv leak. setenv copies every "name=value" it has not seen before and
    never frees it (old environ pointers must stay valid), keeping all of
    them in a search tree: with a new trace id per invoke a warm runtime grew
    by ~144 bytes per invoke (an environment with 128 MB of memory was
    OOM-killed after ~870,000 invokes) and every setenv searched a tree of
    all earlier ids. After the first invokes the C environ entry is one of
    two buffers this process allocates once and never frees (they must
    outlive anything that may still read environ, exit included): each
    invoke writes the id into the buffer not in use and putenv()s it, which
    only swaps the environ pointer (putenv keeps the pointer it is given, no
    copy, no tree), so a thread reading the previous value never sees it
    half rewritten, and a handler's own os.putenv/unsetenv/os.environ
    change is overridden at the next invoke as setenv did. os.environ's
    mapping is set directly. Anything unusual (no ctypes, an id of 1,024
    bytes or more, a NUL byte, a failing putenv) takes the os.environ
    path. With lambdad's C extension (_fast_set_trace, loaded by the
    zygote) the same two-buffer putenv runs in C from the first invoke on:
    no ctypes, no switch."""

    _CAP = 1024

    def __init__(self, env):
        self.env = env
        self.count = 0
        self.views = None  # the two buffers' memoryviews, once switched
        self.fast = _fast_set_trace
        # os.environ's own mapping and encoding, for both buffer paths
        self.data, self.key = env._data, env.encodekey(_TRACE_KEY)
        self.encoding = sys.getfilesystemencoding()  # os.environ's encodevalue
        try:
            self.after = int(env.get("LAMBDAD_TRACE_ENV_AFTER", _TRACE_SWITCH_AFTER))
        except ValueError:
            self.after = _TRACE_SWITCH_AFTER

    def _switch(self):
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            malloc, putenv = libc.malloc, libc.putenv
            malloc.argtypes, malloc.restype = (ctypes.c_size_t,), ctypes.c_void_p
            putenv.argtypes, putenv.restype = (ctypes.c_void_p,), ctypes.c_int
            size = _TRACE_OFF + self._CAP
            addrs = (malloc(size), malloc(size))
            if not addrs[0] or not addrs[1]:
                return
            views = []
            for addr in addrs:
                view = memoryview((ctypes.c_char * size).from_address(addr)).cast("B")
                view[:_TRACE_OFF] = _TRACE_KEY.encode() + b"="
                views.append(view)
        except Exception:
            return
        self.addrs, self.views, self.putenv = addrs, views, putenv
        self.which = 0

    def set(self, value):
        fast = self.fast
        if fast is not None:
            v = value.encode(self.encoding, "surrogateescape")
            if fast(v):
                self.data[self.key] = v
            else:
                self.env[_TRACE_KEY] = value  # raises for a NUL, as os.environ does
            return
        if self.views is None:
            self.count += 1
            if self.count >= self.after:
                self._switch()
                if self.views is None:
                    self.after = float("inf")  # no ctypes: os.environ for good
            self.env[_TRACE_KEY] = value
            return
        v = value.encode(self.encoding, "surrogateescape")
        n = len(v)
        if n >= self._CAP or b"\0" in v:
            self.env[_TRACE_KEY] = value  # raises for a NUL, as os.environ does
            return
        w = self.which = 1 - self.which
        mv = self.views[w]
        end = _TRACE_OFF + n
        mv[_TRACE_OFF:end] = v
        mv[end] = 0
        if self.putenv(self.addrs[w]) != 0:
            self.env[_TRACE_KEY] = value
            return
        self.data[self.key] = v

    def unset(self):
        if _TRACE_KEY in self.env:
            del self.env[_TRACE_KEY]


def _parse_json_header(value, name):
    try:
        return _loads(value.encode("latin-1"))
    except Exception as e:
        raise FaultException(
            FaultException.LAMBDA_CONTEXT_UNMARSHAL_ERROR,
            "Unable to parse {} JSON: {}".format(name, str(e)),
            None,
        )


def _handle(client, request_handler, invoke_id, deadline, arn, cc, ci, tenant_id, content_type,
            body):
    try:
        context = LambdaContext(
            invoke_id,
            _parse_json_header(cc, "Client Context") if cc else None,
            _parse_json_header(ci, "Cognito Identity") if ci else None,
            int(deadline) if deadline else 0,
            arn,
            tenant_id,
        )
        if content_type == "application/json":
            try:
                event = _loads(body)
            except Exception as e:
                raise FaultException(
                    FaultException.UNMARSHAL_ERROR,
                    "Unable to unmarshal input: {}".format(str(e)),
                    None,
                )
        else:
            event = body
        response = request_handler(event, context)
        result, content_type = marshal_response(response)
    except FaultException as e:
        error_result = make_error(e.msg, e.exception_type, e.trace, invoke_id)
    except Exception:
        etype, value, tb = sys.exc_info()
        error_result = make_error(str(value), etype.__name__, _user_frames(tb), invoke_id)
        del tb
    else:
        client.post_invocation_result(invoke_id, result, content_type)
        return
    log_error(error_result)
    client.post_invocation_error(invoke_id, to_json(error_result))


def _die(msg):
    _flush()
    sys.stderr.write("lambdad bootstrap: %s\n" % msg)
    _flush()
    os._exit(1)


def main():
    global _GLOBAL_AWS_REQUEST_ID, _GLOBAL_TENANT_ID

    env = _environ
    task_root = env.get("LAMBDA_TASK_ROOT") or os.getcwd()
    # The bootstrap's own directory must not shadow user modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, task_root)

    try:
        sys.stdout.reconfigure(line_buffering=True)
    except Exception:
        pass

    api = env.get("AWS_LAMBDA_RUNTIME_API")
    if not api:
        _die("AWS_LAMBDA_RUNTIME_API is not set")
    client = RuntimeClient(api)
    LambdaContext._env = (
        env.get("AWS_LAMBDA_LOG_GROUP_NAME"),
        env.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        env.get("AWS_LAMBDA_FUNCTION_NAME"),
        env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        env.get("AWS_LAMBDA_FUNCTION_VERSION"),
    )
    _install_logging()

    handler_name = env.get("_HANDLER") or (sys.argv[1] if len(sys.argv) > 1 else "")
    try:
        request_handler = _get_handler(handler_name)
    except Exception as e:
        if isinstance(e, FaultException):
            error_result = make_error(e.msg, e.exception_type, e.trace)
        else:
            error_result = build_fault_result(sys.exc_info(), None)
        import logging

        logging.warning(_LAMBDA_WARNING)
        log_error(error_result)
        try:
            client.post_init_error(to_json(error_result), error_result["errorType"])
        except (OSError, _ConnectionLost) as ce:
            _die("cannot post init error: %s" % ce)
        _flush()
        sys.exit(1)

    next_invocation = client.next_invocation
    trace_env = _TraceEnv(env)
    while True:
        try:
            invoke_id, deadline, arn, trace_id, cc, ci, tenant_id, content_type, body = (
                next_invocation())
        except (OSError, _ConnectionLost, ValueError) as e:
            _die("GET /next failed: %s" % e)
        if not invoke_id:
            _die("GET /next returned no Lambda-Runtime-Aws-Request-Id")
        _GLOBAL_AWS_REQUEST_ID = invoke_id
        _GLOBAL_TENANT_ID = tenant_id
        if trace_id is not None:
            trace_env.set(trace_id)
        else:
            trace_env.unset()
        try:
            _handle(client, request_handler, invoke_id, deadline, arn, cc, ci, tenant_id,
                    content_type, body)
        except (OSError, _ConnectionLost) as e:
            _die("posting the result of %s failed: %s" % (invoke_id, e))

