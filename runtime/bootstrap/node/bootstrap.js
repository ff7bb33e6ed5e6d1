/*
 * lambdad bundled Node.js runtime client (no dependencies, Node 18+).
 *
 * lambdad starts it as `node <bootstrap_dir>/node/bootstrap.js` with cwd =
 * the code dir and the Lambda environment (see ../README.md). It loads the
 * handler named by _HANDLER and serves invocations through the AWS Lambda
 * Runtime API at http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/..., behaving like
 * AWS's aws-lambda-ric: same handler resolution (CommonJS and ES modules),
 * same handler forms (async, callback, context.succeed/fail/done), same
 * context object, same error payloads ({errorType, errorMessage, trace}),
 * same console log format.
 *
 * DESIGN
 * - One keep-alive TCP connection (noDelay) with hand-written HTTP/1.1
 *   framing: each request is a single socket write and the response parser
 *   only understands what the Runtime API sends (status line, headers,
 *   Content-Length or chunked body). Measured faster than http.Agent with
 *   keepAlive/maxSockets 1 (see ../README.md).
 * - Event-loop semantics of the real runtime: the socket is ref()'d only
 *   while a request is outstanding, so while a handler runs the runtime
 *   holds no handle and 'beforeExit' fires exactly when the handler's own
 *   work has drained. That implements callbackWaitsForEmptyEventLoop and the
 *   "sync handler never called back -> null" / "async handler never settled
 *   -> Runtime.NodeJsExit" rules the way aws-lambda-ric does.
 * - console.* is replaced by synchronous fs.writeSync(1, ...) writers, so all
 *   output of an invocation is in the pipe before its /response is sent.
 * - awslambda.streamifyResponse handlers (aws-lambda-ric's ResponseStream.js
 *   and StreamingContext.js): the stream the handler writes to is the POST
 *   .../response request itself (node:http, its own keep-alive connection),
 *   with Lambda-Runtime-Function-Response-Mode: streaming and chunked
 *   encoding, so every write reaches lambdad (and the caller) at once; a
 *   failure ends it with the Lambda-Runtime-Function-Error-Type/-Body
 *   trailers. awslambda.HttpResponseStream.from writes the JSON prelude and
 *   8 NUL bytes before the first write.
 * - This file is CommonJS (the package.json next to it pins "type":
 *   "commonjs"): CJS start-up is cheaper than the ESM loader; ES module
 *   handlers are loaded with dynamic import().
 */
'use strict';

const net = require('net');
const fs = require('fs');
const path = require('path');
const util = require('util');

const API = '/2018-06-01';

/* ------------------------------------------------------------------------ */
/* Errors (aws-lambda-ric's Errors.js)                                       */
/* ------------------------------------------------------------------------ */

function runtimeError(name) {
  const C = class extends Error {};
  C.prototype.name = `Runtime.${name}`;
  Object.defineProperty(C, 'name', { value: name });
  return C;
}
const ImportModuleError = runtimeError('ImportModuleError');
const HandlerNotFound = runtimeError('HandlerNotFound');
const MalformedHandlerName = runtimeError('MalformedHandlerName');
const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');
const NodeJsExit = runtimeError('NodeJsExit');
const JSONStringifyError = runtimeError('JSONStringifyError');
const InvalidStreamingOperation = runtimeError('InvalidStreamingOperation');
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

function isError(obj) {
  return (
    obj && typeof obj.name === 'string' && typeof obj.message === 'string' &&
    typeof obj.stack === 'string' && obj.name && obj.message && obj.stack
  );
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/* The body of /error and /init/error. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isError(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: error.stack.split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch (_e) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function withEnumerableProperties(error) {
  if (error instanceof Error) {
    const ret = Object.assign(
      { errorType: error.name, errorMessage: error.message, code: error.code },
      error,
    );
    if (typeof error.stack === 'string') ret.stack = error.stack.split('\n');
    return ret;
  }
  return error;
}

function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => withEnumerableProperties(v));
  } catch (_e) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

/* ------------------------------------------------------------------------ */
/* Logging (aws-lambda-ric's LogPatch.js, synchronous writes)                */
/* ------------------------------------------------------------------------ */

let currentRequestId; // undefined until the first invoke, like the RIC
let currentTenantId;

function writeAllSync(fd, str) {
  let buf = Buffer.from(str, 'utf8');
  while (buf.length) {
    try {
      const n = fs.writeSync(fd, buf);
      buf = buf.subarray(n);
    } catch (e) {
      if (e.code !== 'EAGAIN') return; // stdout gone: drop, never crash
    }
  }
}

const LEVELS = {
  TRACE: { name: 'TRACE', priority: 1 },
  DEBUG: { name: 'DEBUG', priority: 2 },
  INFO: { name: 'INFO', priority: 3 },
  WARN: { name: 'WARN', priority: 4 },
  ERROR: { name: 'ERROR', priority: 5 },
  FATAL: { name: 'FATAL', priority: 6 },
};

const jsonErrorReplacer = (_, value) => {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? 'UnknownError',
        errorMessage: value.message,
        stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      },
      value,
    );
  }
  return value;
};

function formatJsonMessage(requestId, timestamp, level, ...messageParams) {
  const result = { timestamp, level: level.name, requestId };
  if (currentTenantId != null) result.tenantId = currentTenantId;
  if (messageParams.length === 1) {
    result.message = messageParams[0];
    try {
      return JSON.stringify(result, jsonErrorReplacer);
    } catch (_) {
      result.message = util.format(result.message);
      return JSON.stringify(result);
    }
  }
  result.message = util.format(...messageParams);
  for (const param of messageParams) {
    if (param instanceof Error) {
      result.errorType = param?.constructor?.name ?? 'UnknownError';
      result.errorMessage = param.message;
      result.stackTrace = typeof param.stack === 'string' ? param.stack.split('\n') : [];
      break;
    }
  }
  return JSON.stringify(result);
}

const logText = (level, message, ...params) => {
  writeAllSync(
    1,
    `${new Date().toISOString()}\t${currentRequestId}\t${level.name}\t${util.format(message, ...params)}\n`,
  );
};

const logJson = (level, message, ...params) => {
  writeAllSync(
    1,
    formatJsonMessage(currentRequestId, new Date().toISOString(), level, message, ...params) + '\n',
  );
};

let logError; // (label, err): the "Invoke Error" / "Uncaught Exception" record

function patchConsole() {
  const json = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  const log = json ? logJson : logText;
  const min = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] || LEVELS.TRACE;
  const nop = () => {};
  const mk = (lvl) => (lvl.priority >= min.priority ? (msg, ...p) => log(lvl, msg, ...p) : nop);
  console.trace = mk(LEVELS.TRACE);
  console.debug = mk(LEVELS.DEBUG);
  console.info = mk(LEVELS.INFO);
  console.log = console.info;
  console.warn = mk(LEVELS.WARN);
  console.error = mk(LEVELS.ERROR);
  console.fatal = (msg, ...p) => log(LEVELS.FATAL, msg, ...p);
  logError = json
    ? (_label, err) => console.error(intoError(err))
    : (label, err) => console.error(label, toFormatted(intoError(err)));
}

/* ------------------------------------------------------------------------ */
/* Runtime API client: one keep-alive socket, minimal HTTP/1.1               */
/* ------------------------------------------------------------------------ */

class ConnectionLost extends Error {}

class RuntimeClient {
  constructor(address) {
    let host, port;
    if (address.startsWith('[')) {
      const i = address.indexOf(']');
      host = address.slice(1, i);
      port = address.slice(i + 2);
    } else {
      const i = address.lastIndexOf(':');
      host = i >= 0 ? address.slice(0, i) : address;
      port = i >= 0 ? address.slice(i + 1) : '80';
    }
    this.host = host || '127.0.0.1';
    this.port = parseInt(port, 10) || 80;
    this.hostHeader = `Host: ${address}\r\n`;
    this.sock = null;
    this.used = false; // this socket completed at least one exchange
    this.queue = []; // pending {data, resolve, reject, retried}
    this.cur = null; // request on the wire
    this.resetParser();
  }

  resetParser() {
    this.head = null; // Buffer until the header block is complete
    this.status = 0;
    this.headers = null;
    this.need = -1; // remaining body bytes (content-length), -2 chunked
    this.parts = [];
    this.got = 0;
    this.seen = false; // any byte of the current response arrived
  }

  connect() {
    const s = net.connect({ host: this.host, port: this.port });
    s.setNoDelay(true);
    s.on('data', (d) => this.onData(s, d));
    s.on('error', (e) => this.onLost(s, e));
    s.on('close', () => this.onLost(s, new ConnectionLost('Runtime API closed the connection')));
    this.sock = s;
    this.used = false;
  }

  /* Sends `data` (string, utf8) and resolves {status, headers, body}. */
  request(data) {
    return new Promise((resolve, reject) => {
      this.queue.push({ data, resolve, reject, retried: false });
      if (!this.cur) this.pump();
    });
  }

  pump() {
    const r = this.queue.shift();
    if (!r) {
      this.cur = null;
      if (this.sock) this.sock.unref(); // idle: do not keep the loop alive
      return;
    }
    this.cur = r;
    if (!this.sock) this.connect();
    r.reused = this.used;
    this.resetParser();
    this.sock.ref();
    this.sock.write(r.data);
  }

  onLost(s, err) {
    if (s !== this.sock) return;
    this.sock = null;
    s.destroy();
    const r = this.cur;
    if (!r) return;
    if (r.reused && !this.seen && !r.retried) {
      r.retried = true; // a stale keep-alive connection: resend once
      this.queue.unshift(r);
      this.cur = null;
      this.pump();
      return;
    }
    this.cur = null;
    r.reject(err);
    this.pump();
  }

  onData(s, d) {
    if (s !== this.sock || !this.cur) return;
    this.seen = true;
    if (this.headers === null) {
      this.head = this.head ? Buffer.concat([this.head, d]) : d;
      const i = this.head.indexOf('\r\n\r\n');
      if (i < 0) return;
      const lines = this.head.latin1Slice(0, i).split('\r\n');
      this.status = parseInt(lines[0].split(' ', 2)[1], 10);
      const h = {};
      for (let k = 1; k < lines.length; k++) {
        const line = lines[k];
        const c = line.indexOf(':');
        if (c > 0) h[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
      }
      this.headers = h;
      d = this.head.subarray(i + 4);
      this.head = null;
      if (h['content-length'] !== undefined) this.need = parseInt(h['content-length'], 10);
      else if ((h['transfer-encoding'] || '').toLowerCase().includes('chunked')) this.need = -2;
      else this.need = 0;
    }
    if (d.length) {
      this.parts.push(d);
      this.got += d.length;
    }
    let body;
    if (this.need >= 0) {
      if (this.got < this.need) return;
      body = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.got);
      body = body.subarray(0, this.need);
    } else {
      body = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.got);
      this.parts = [body];
      body = decodeChunked(body);
      if (body === null) return; // incomplete
    }
    const r = this.cur;
    const res = { status: this.status, headers: this.headers, body };
    if ((this.headers.connection || '').toLowerCase() === 'close') {
      this.sock = null;
      s.destroy();
    } else {
      this.used = true;
    }
    this.cur = null;
    this.resetParser();
    r.resolve(res);
    this.pump();
  }

  async next() {
    const res = await this.request(
      `GET ${API}/runtime/invocation/next HTTP/1.1\r\n${this.hostHeader}User-Agent: lambdad-node\r\n\r\n`,
    );
    if (res.status !== 200) {
      throw new Error(`GET /next answered ${res.status}: ${res.body.toString('utf8', 0, 512)}`);
    }
    return res;
  }

  async post(p, body, extraHeaders) {
    const res = await this.request(
      `POST ${p} HTTP/1.1\r\n${this.hostHeader}Content-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders || ''}\r\n${body}`,
    );
    if (res.status < 200 || res.status > 299) {
      writeAllSync(2, `lambdad bootstrap: POST ${p} answered ${res.status}: ${res.body.toString('utf8', 0, 512)}\n`);
    }
    return res;
  }

  postInvocationResponse(id, bodyString) {
    return this.post(`${API}/runtime/invocation/${encodeURIComponent(id)}/response`, bodyString);
  }

  postInvocationError(id, error) {
    return this.post(
      `${API}/runtime/invocation/${encodeURIComponent(id)}/error`,
      serialize(toRapidResponse(error)),
    );
  }

  postInitError(error) {
    const response = toRapidResponse(error);
    return this.post(
      `${API}/runtime/init/error`,
      serialize(response),
      `Lambda-Runtime-Function-Error-Type: ${String(response.errorType).replace(/[\r\n]/g, ' ')}\r\n`,
    );
  }
}

/* Returns the decoded body of a complete chunked message, or null. */
function decodeChunked(buf) {
  const out = [];
  let pos = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', pos);
    if (eol < 0) return null;
    const size = parseInt(buf.latin1Slice(pos, eol).split(';')[0].trim() || '0', 16);
    pos = eol + 2;
    if (size === 0) {
      for (;;) {
        const e = buf.indexOf('\r\n', pos);
        if (e < 0) return null;
        if (e === pos) return Buffer.concat(out);
        pos = e + 2;
      }
    }
    if (buf.length < pos + size + 2) return null;
    out.push(buf.subarray(pos, pos + size));
    pos += size + 2;
  }
}

function serialize(body) {
  try {
    return JSON.stringify(body === undefined ? null : body);
  } catch (_e) {
    throw new JSONStringifyError('Unable to stringify response body');
  }
}

/* ------------------------------------------------------------------------ */
/* Response streaming (aws-lambda-ric's ResponseStream.js, HttpResponseStream.js) */
/* ------------------------------------------------------------------------ */

const INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const TRAILER_ERROR_TYPE = 'Lambda-Runtime-Function-Error-Type';
const TRAILER_ERROR_BODY = 'Lambda-Runtime-Function-Error-Body';
let streamAgent = null; // one keep-alive connection for streamed responses

/* awslambda.HttpResponseStream: a function URL / API Gateway response
 * (status, headers, cookies) ahead of the streamed body. */
class HttpResponseStream {
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType(INTEGRATION_CONTENT_TYPE);
    const metadataPrelude = JSON.stringify(prelude); // no NUL byte can occur in it
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(metadataPrelude);
      write(new Uint8Array(8));
    };
    return underlyingStream;
  }
}

/* The writable a streaming handler gets: the POST .../response request,
 * sent chunked as it is written. Returns {stream, done, fail}: done
 * settles when the Runtime API answered the request; fail(err) ends the
 * stream with the error trailers (false when it had ended already). */
function createResponseStream(client, invokeId) {
  const http = require('http'); // only streaming handlers pay for loading it
  if (!streamAgent) streamAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let resolveDone, rejectDone;
  const done = new Promise((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const req = http.request(
    {
      host: client.host,
      port: client.port,
      method: 'POST',
      agent: streamAgent,
      path: `${API}/runtime/invocation/${encodeURIComponent(invokeId)}/response`,
      headers: {
        'Lambda-Runtime-Function-Response-Mode': 'streaming',
        'Content-Type': 'application/octet-stream',
        'Transfer-Encoding': 'chunked',
        Trailer: `${TRAILER_ERROR_TYPE}, ${TRAILER_ERROR_BODY}`,
      },
    },
    (res) => {
      res.resume();
      res.on('end', () => resolveDone(res.statusCode));
      res.on('aborted', () => rejectDone(new ConnectionLost('Runtime API aborted the response')));
    },
  );
  req.on('error', (e) => rejectDone(e));
  const origWrite = req.write.bind(req);
  const origEnd = req.end.bind(req);
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    if (typeof req._onBeforeFirstWrite === 'function') req._onBeforeFirstWrite((ch) => origWrite(ch));
  };
  req.setContentType = (contentType) => {
    if (started) throw new InvalidStreamingOperation('Cannot set content-type, too late.');
    req.setHeader('Content-Type', contentType);
  };
  req.write = function (chunk, encoding, callback) {
    if (typeof chunk !== 'string' && !Buffer.isBuffer(chunk) && !(chunk instanceof Uint8Array)) {
      chunk = JSON.stringify(chunk);
    }
    start();
    return origWrite(chunk, encoding, callback);
  };
  req.end = function (chunk, encoding, callback) {
    if (typeof chunk === 'function') {
      callback = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (chunk !== undefined && chunk !== null) req.write(chunk, encoding);
    start(); // an empty body still carries its prelude
    return origEnd(callback);
  };
  const fail = (err) => {
    if (req.writableEnded) return false;
    const error = toRapidResponse(err);
    req.addTrailers({
      [TRAILER_ERROR_TYPE]: String(error.errorType).replace(/[\r\n]/g, ' '),
      [TRAILER_ERROR_BODY]: Buffer.from(JSON.stringify(error)).toString('base64'),
    });
    origEnd();
    return true;
  };
  return { stream: req, done, fail };
}

/* ------------------------------------------------------------------------ */
/* Handler loading (aws-lambda-ric's UserFunction.js)                        */
/* ------------------------------------------------------------------------ */

function hasPackageJsonTypeModule(folder) {
  if (folder.endsWith('/node_modules')) return false;
  const pj = path.join(folder, 'package.json');
  if (fs.existsSync(pj)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(pj));
      if (pkg) return pkg.type === 'module';
    } catch (e) {
      console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
      return false;
    }
  }
  if (folder === '/') return false;
  return hasPackageJsonTypeModule(path.resolve(folder, '..'));
}

function tryRequire(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function tryImport(file) {
  if (!fs.existsSync(file)) return undefined;
  return import(require('url').pathToFileURL(file).href);
}

async function loadModule(appRoot, moduleRoot, module) {
  const lambdaStylePath = path.resolve(appRoot, moduleRoot, module);
  const extensionless = tryRequire(lambdaStylePath);
  if (extensionless) return extensionless;
  const pjHasModule = hasPackageJsonTypeModule(path.dirname(lambdaStylePath));
  if (!pjHasModule) {
    const loaded = tryRequire(lambdaStylePath + '.js');
    if (loaded) return loaded;
  }
  const loaded =
    (pjHasModule && (await tryImport(lambdaStylePath + '.js'))) ||
    (await tryImport(lambdaStylePath + '.mjs')) ||
    tryRequire(lambdaStylePath + '.cjs');
  if (loaded) return loaded;
  // Fall back to Node resolution from the app root (e.g. a package in
  // node_modules or on NODE_PATH).
  return require(require.resolve(module, { paths: [appRoot, moduleRoot] }));
}

function resolveHandlerPath(object, nested) {
  return nested.split('.').reduce((o, key) => o && o[key], object);
}

const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');

async function loadHandler(appRoot, fullHandlerString) {
  if (fullHandlerString.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandlerString}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const handlerString = path.basename(fullHandlerString);
  const moduleRoot = fullHandlerString.substring(0, fullHandlerString.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, module, handlerPath] = match;

  globalThis.awslambda = {
    streamifyResponse: (handler, options) => {
      handler[HANDLER_STREAMING] = 'response';
      return handler;
    },
    HttpResponseStream,
  };

  let userApp;
  try {
    userApp = await loadModule(appRoot, moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) {
      const err = new UserCodeSyntaxError(String(e));
      err.stack = e.stack;
      throw err;
    }
    if (e && e.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(String(e));
    throw e;
  }
  let fn = resolveHandlerPath(userApp, handlerPath);
  if (!fn && userApp && typeof userApp === 'object' && 'default' in userApp) {
    fn = resolveHandlerPath(userApp.default, handlerPath);
  }
  if (!fn) throw new HandlerNotFound(`${fullHandlerString} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandlerString} is not a function`);
  return fn;
}

/* ------------------------------------------------------------------------ */
/* The invoke loop (aws-lambda-ric's Runtime.js + CallbackContext.js)        */
/* ------------------------------------------------------------------------ */

const NO_OP = () => {};
let beforeExitListener = NO_OP;

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

// _X_AMZN_TRACE_ID per invoke. Assigning to process.env ends in glibc's
// setenv, which keeps a copy of every value it was ever given (old environ
// pointers must stay valid): with a new trace id per invoke a warm
// environment grew by ~150 bytes per invoke (a 128 MB environment, ~83 MB
// at start, would be OOM-killed after ~300,000 invokes), and Node cannot
// putenv a buffer of its own without a native addon. So the first
// TRACE_SWITCH_AFTER invokes of an environment (LAMBDAD_TRACE_ENV_AFTER
// overrides it) assign process.env exactly as aws-lambda-ric does (leak
// bounded at ~7.5 MB); after that process.env becomes a Proxy of the real
// one that serves this one key itself (get, in, keys, spread, delete,
// assignment by the handler) and forwards every other key. From then on
// child processes still inherit it (child_process builds their environment
// from process.env's keys); worker threads created without an env option,
// native getenv() and references to the original object taken earlier no
// longer see it, and structuredClone(process.env) throws.
const TRACE_KEY = '_X_AMZN_TRACE_ID';
const TRACE_SWITCH_AFTER = 50000;
function traceEnvSetter() {
  let after = parseInt(process.env.LAMBDAD_TRACE_ENV_AFTER, 10);
  if (!(after >= 0)) after = TRACE_SWITCH_AFTER;
  let count = 0;
  let setVirtual = null;
  return (v) => {
    if (setVirtual) {
      setVirtual(v);
      return;
    }
    if (v === undefined) delete process.env[TRACE_KEY];
    else process.env[TRACE_KEY] = v;
    if (++count >= after) setVirtual = virtualizeTraceEnv();
  };
}

function virtualizeTraceEnv() {
  const real = process.env;
  const K = TRACE_KEY;
  let value;
  if (K in real) {
    value = real[K];
    delete real[K];
  }
  process.env = new Proxy(real, {
    get: (t, k) => (k === K ? value : t[k]),
    set: (t, k, v) => {
      if (k === K) value = `${v}`;
      else t[k] = v;
      return true;
    },
    has: (t, k) => (k === K ? value !== undefined : k in t),
    deleteProperty: (t, k) => {
      if (k === K) value = undefined;
      else delete t[k];
      return true;
    },
    ownKeys: (t) => {
      // (K filtered: native code may have put it into the real object)
      const keys = Reflect.ownKeys(t).filter((k) => k !== K);
      if (value !== undefined) keys.push(K);
      return keys;
    },
    getOwnPropertyDescriptor: (t, k) => {
      if (k !== K) return Reflect.getOwnPropertyDescriptor(t, k);
      return value === undefined ? undefined : { value, writable: true, enumerable: true, configurable: true };
    },
    defineProperty: (t, k, d) => {
      if (k !== K) return Reflect.defineProperty(t, k, d);
      if ('get' in d || 'set' in d) {
        throw new TypeError("'process.env' only accepts a configurable, writable, and enumerable data descriptor");
      }
      value = `${d.value}`;
      return true;
    },
  });
  return (v) => {
    value = v;
  };
}

function main() {
  patchConsole();
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    writeAllSync(2, 'lambdad bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(1);
  }
  const client = new RuntimeClient(address);
  const setTraceId = traceEnvSetter();
  const env = process.env;
  const envData = {
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
  };

  const die = (what, err) => {
    writeAllSync(2, `lambdad bootstrap: ${what}: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  };

  // Init phase: failures go to /init/error.
  const errorCallbacks = {
    uncaughtException: (error) => {
      client.postInitError(error).then(() => process.exit(1), () => process.exit(1));
    },
    unhandledRejection: (error) => {
      client.postInitError(error).then(() => process.exit(1), () => process.exit(1));
    },
  };
  process.on('uncaughtException', (error) => {
    logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    logError('Unhandled Promise Rejection', error);
    errorCallbacks.unhandledRejection(error);
  });
  process.on('beforeExit', () => beforeExitListener());

  let handler;
  let isAsync;

  const scheduleIteration = () => {
    setImmediate(() => {
      handleOnce().catch((err) => {
        console.log(`Unexpected Top Level Error: ${err.toString()}`);
        errorCallbacks.uncaughtException(err);
      });
    });
  };

  async function handleOnce() {
    let res;
    try {
      res = await client.next();
    } catch (err) {
      die('GET /next failed', err);
      return;
    }
    const headers = res.headers;
    const invokeId = headers['lambda-runtime-aws-request-id'];
    if (!invokeId) die('GET /next', 'no Lambda-Runtime-Aws-Request-Id header');
    currentRequestId = invokeId;
    currentTenantId = headers['lambda-runtime-aws-tenant-id'];

    // --- callback context (only the first completion counts) ---
    let finished = false;
    let completeInvoked = false;
    let waitForEmptyEventLoop = true;
    const postError = (err) => {
      logError('Invoke Error', err);
      client.postInvocationError(invokeId, err).then(scheduleIteration, (e) => die('POST /error failed', e));
    };
    const complete = (result) => {
      if (completeInvoked) {
        console.error('Invocation has already been reported as done. Cannot call complete more than once per invocation.');
        return;
      }
      let body;
      try {
        body = serialize(result);
      } catch (e) {
        postError(e);
        completeInvoked = true;
        return;
      }
      completeInvoked = true;
      client.postInvocationResponse(invokeId, body).then(scheduleIteration, (e) => die('POST /response failed', e));
    };
    const once = (fn) =>
      function () {
        if (!finished) {
          finished = true;
          fn.apply(null, arguments);
        }
      };
    const done = (err, result) => {
      beforeExitListener = NO_OP;
      if (err !== undefined && err !== null) postError(err);
      else complete(result);
    };
    const callback = once((err, result) => {
      beforeExitListener = NO_OP;
      if (err !== undefined && err !== null) postError(err);
      else if (!waitForEmptyEventLoop) complete(result);
      else beforeExitListener = () => setImmediate(() => complete(result));
    });
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
      succeed: once((result) => done(null, result)),
      fail: once((err) => done(err === undefined || err === null ? 'handled' : err, null)),
      done: once(done),
    };

    // --- per-invoke error routing and the empty-event-loop rule ---
    errorCallbacks.uncaughtException = (error) => {
      client.postInvocationError(invokeId, error).then(() => process.exit(129), () => process.exit(129));
    };
    errorCallbacks.unhandledRejection = (error) => {
      client.postInvocationError(invokeId, error).then(() => process.exit(128), () => process.exit(128));
    };
    let returnedPromise = false;
    beforeExitListener = () => {
      beforeExitListener = NO_OP;
      finished = true;
      if (isAsync || returnedPromise) {
        completeInvoked = true;
        const err = new NodeJsExit(
          'Runtime exited without providing a reason: the handler returned a Promise that was never settled',
        );
        logError('Invoke Error', err);
        client.postInvocationError(invokeId, err).then(scheduleIteration, (e) => die('POST /error failed', e));
      } else {
        complete(null);
      }
    };

    try {
      const deadline = parseInt(headers['lambda-runtime-deadline-ms'], 10) || 0;
      const trace = headers['lambda-runtime-trace-id'];
      setTraceId(trace || undefined);
      Object.assign(context, envData, {
        clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
        identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        awsRequestId: invokeId,
        tenantId: currentTenantId,
        getRemainingTimeInMillis: () => deadline - Date.now(),
      });
      const event = JSON.parse(res.body.toString('utf8'));
      if (handler[HANDLER_STREAMING]) {
        const ctx = Object.assign({}, envData, context);
        delete ctx.succeed;
        delete ctx.fail;
        delete ctx.done;
        Object.defineProperty(ctx, 'callbackWaitsForEmptyEventLoop', {
          get: () => waitForEmptyEventLoop,
          set: (value) => {
            waitForEmptyEventLoop = value;
          },
        });
        streamInvoke(client, invokeId, event, ctx);
        return;
      }
      const result = handler(event, context, callback);
      if (result && typeof result.then === 'function') {
        returnedPromise = true;
        result.then(context.succeed, context.fail).catch(context.fail);
      } else if (result !== undefined && handler.length < 3) {
        // A synchronous handler that returns its result (Node 24 runtime
        // semantics); callback-style handlers keep the RIC rule.
        context.succeed(result);
      }
    } catch (err) {
      callback(err); // errors are posted at once, never wait for the loop
    }
  }

  /* One invocation of an awslambda.streamifyResponse handler (aws-lambda-ric's
   * handleOnceStreaming): the next one starts once the handler settled and
   * the Runtime API answered the streamed response. */
  function streamInvoke(client, invokeId, event, ctx) {
    const { stream, done, fail } = createResponseStream(client, invokeId);
    let failed = false;
    const failWith = (err) => {
      if (failed) return;
      failed = true;
      logError('Invoke Error', err);
      if (!fail(err)) console.error('The response stream had ended already: the error is not reported to the caller.');
    };
    let settle;
    const settled = new Promise((resolve) => {
      settle = resolve;
    });
    beforeExitListener = () => {
      // The handler's promise never settled and nothing else is pending.
      beforeExitListener = NO_OP;
      failWith(new NodeJsExit('Runtime exited without providing a reason: the handler returned a Promise that was never settled'));
      settle();
    };
    Promise.all([settled, done]).then(
      () => {
        beforeExitListener = NO_OP;
        scheduleIteration();
      },
      (e) => die('POST /response (streaming) failed', e),
    );
    let result;
    try {
      result = handler(event, stream, ctx);
    } catch (err) {
      failWith(err);
      settle();
      return;
    }
    if (!result || typeof result.then !== 'function') {
      failWith(new InvalidStreamingOperation('Streaming does not support non-async handlers.'));
      settle();
      return;
    }
    result.then(
      (value) => {
        if (value !== undefined) console.warn('Streaming handlers ignore return values.');
        if (!stream.writableEnded) failWith(new InvalidStreamingOperation('Response stream is not finished.'));
        settle();
      },
      (err) => {
        failWith(err);
        settle();
      },
    );
  }

  const appRoot = env.LAMBDA_TASK_ROOT || process.cwd();
  loadHandler(appRoot, env._HANDLER || process.argv[2] || '').then(
    (fn) => {
      handler = fn;
      isAsync = fn.constructor && fn.constructor.name === 'AsyncFunction';
      scheduleIteration();
    },
    (err) => {
      logError('Uncaught Exception', err);
      client.postInitError(err).then(
        () => process.exit(1),
        (e) => die('POST /init/error failed', e),
      );
    },
  );
}

main();
