// @ts-check
'use strict';

/**
 * demo-app: a small HTTP service to put behind the sidecar.
 *
 * It has no dependencies (node:http only) so that it can be read in one sitting.
 * Every endpoint exists to make one sidecar feature visible:
 *
 *   GET  /              the headers the sidecar adds (x-request-id, x-forwarded-*,
 *                       x-sidecar-attempt, traceparent)
 *   ANY  /echo          method, url, headers and body of the request as the app saw it
 *   GET  /slow?ms=N     answers after N ms: try the route's `timeout` and `perTryTimeout`
 *   ANY  /status/:code  answers that status: try `retry.on` and the circuit breaker
 *   GET  /flaky?fail=N  fails N times per request id, then succeeds: try `retry.attempts`
 *   GET  /healthz       200 ok: a target for the cluster's `healthCheck`
 *
 * Run it:   node examples/app/server.js [--port 3000] [--host 127.0.0.1]
 * (PORT and HOST are read too; DEMO_APP_LOG=1 logs one line per request to stderr.)
 */

const http = require('node:http');
const crypto = require('node:crypto');

const DEFAULT_PORT = 3000;
const DEFAULT_HOST = '127.0.0.1';
/** Longer than the sidecar's default idle timeout (3 s), so the sidecar closes idle connections first. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** /echo returns bodies up to this size as text; larger ones as length + sha256. */
const MAX_ECHO_TEXT_BYTES = 1024 * 1024;
const MAX_SLOW_MS = 60_000;
/** /flaky remembers this many keys; the least recently used ones are forgotten first. */
const MAX_FLAKY_KEYS = 10_000;
const DEFAULT_FLAKY_STATUS = 503;

/** The request headers the sidecar adds; GET / shows them. */
const SIDECAR_HEADERS = [
  'x-request-id',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-sidecar-attempt',
  'traceparent',
];

/**
 * @typedef {object} DemoAppOptions
 * @property {boolean} [log] one line per request on stderr (default: DEMO_APP_LOG=1)
 */

/**
 * @typedef {object} RequestContext
 * @property {http.IncomingMessage} req
 * @property {http.ServerResponse} res
 * @property {string} path      the path without the query string
 * @property {URLSearchParams} query
 */

/**
 * Builds the demo app's server (not yet listening).
 * @param {DemoAppOptions} [options]
 * @returns {http.Server}
 */
function createDemoApp(options = {}) {
  const log = options.log ?? process.env.DEMO_APP_LOG === '1';
  /**
   * Requests seen so far per /flaky key. A Map iterates in insertion order: the first key is the oldest.
   * @type {Map<string, number>}
   */
  const flakyCounts = new Map();

  const server = http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    if (log) {
      res.on('close', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const outcome = res.writableFinished ? String(res.statusCode) : 'aborted';
        process.stderr.write(`demo-app ${req.method} ${req.url} ${outcome} ${ms.toFixed(1)}ms\n`);
      });
    }
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    /** @type {RequestContext} */
    const ctx = {
      req,
      res,
      path: q === -1 ? rawUrl : rawUrl.slice(0, q),
      query: new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1)),
    };
    try {
      route(ctx, flakyCounts);
    } catch (err) {
      sendJson(res, 500, { error: 'INTERNAL', message: String(err) });
    }
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  return server;
}

/**
 * Hands a request to its endpoint.
 * @param {RequestContext} ctx
 * @param {Map<string, number>} flakyCounts
 */
function route(ctx, flakyCounts) {
  const { req, res, path } = ctx;
  if (path === '/echo') return echo(ctx);
  const status = /^\/status\/([^/]+)$/.exec(path);
  if (status) return statusCode(ctx, status[1]);

  // The remaining endpoints read no body: drain it so the connection can be reused.
  req.resume();
  const readOnly = req.method === 'GET' || req.method === 'HEAD';
  const known = path === '/' || path === '/slow' || path === '/flaky' || path === '/healthz';
  if (known && !readOnly) {
    res.setHeader('allow', 'GET, HEAD');
    return sendJson(res, 405, { error: 'METHOD_NOT_ALLOWED', message: `${req.method} ${path}` });
  }
  switch (path) {
    case '/':
      return hello(ctx);
    case '/slow':
      return slow(ctx);
    case '/flaky':
      return flaky(ctx, flakyCounts);
    case '/healthz':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 2 });
      return res.end('ok');
    default:
      return sendJson(res, 404, { error: 'NOT_FOUND', message: `no endpoint ${path}` });
  }
}

/**
 * GET / — shows the headers the sidecar adds; a header it did not add is null.
 * @param {RequestContext} ctx
 */
function hello({ req, res }) {
  /** @type {Record<string, string | null>} */
  const headers = {};
  for (const name of SIDECAR_HEADERS) headers[name] = headerValue(req, name) ?? null;
  sendJson(res, 200, {
    service: 'demo-app',
    message: 'hello from the app behind the sidecar',
    headers,
  });
}

/**
 * ANY /echo — the request as the app received it.
 * @param {RequestContext} ctx
 */
function echo({ req, res }) {
  const hash = crypto.createHash('sha256');
  /** @type {Buffer[]} */
  let chunks = [];
  let length = 0;
  req.on('data', (/** @type {Buffer} */ chunk) => {
    hash.update(chunk);
    length += chunk.length;
    // Past the limit only the length and the hash are kept, so memory stays bounded.
    if (length <= MAX_ECHO_TEXT_BYTES) chunks.push(chunk);
    else chunks = [];
  });
  req.on('end', () => {
    sendJson(res, 200, {
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      headers: req.headers,
      body: length <= MAX_ECHO_TEXT_BYTES ? Buffer.concat(chunks).toString('utf8') : null,
      bodyLength: length,
      bodySha256: hash.digest('hex'),
    });
  });
  req.on('error', () => res.destroy());
}

/**
 * GET /slow?ms=N — answers after N ms (at most 60 s); stops waiting if the client leaves.
 * @param {RequestContext} ctx
 */
function slow({ query, res }) {
  const ms = Number(query.get('ms') ?? '1000');
  if (!Number.isFinite(ms) || ms < 0) {
    return sendJson(res, 400, { error: 'BAD_REQUEST', message: 'ms must be a number >= 0' });
  }
  const delayMs = Math.min(Math.round(ms), MAX_SLOW_MS);
  const timer = setTimeout(() => sendJson(res, 200, { sleptMs: delayMs }), delayMs);
  // 'close' fires when the response is done or the client went away; either way no timer is left.
  res.on('close', () => clearTimeout(timer));
}

/**
 * ANY /status/:code — answers that status with a small JSON body.
 * @param {RequestContext} ctx
 * @param {string} text
 */
function statusCode({ req, res }, text) {
  req.resume();
  const code = Number(text);
  if (!Number.isInteger(code) || code < 200 || code > 599) {
    return sendJson(res, 400, { error: 'BAD_REQUEST', message: 'status must be 200..599' });
  }
  if (code === 204 || code === 304) {
    res.writeHead(code);
    return res.end();
  }
  sendJson(res, code, { status: code, message: http.STATUS_CODES[code] ?? 'Unknown' });
}

/**
 * GET /flaky?fail=N[&key=K][&status=503] — the first N requests for key K fail with
 * `status`, the next ones succeed. K defaults to the request's x-request-id, which the
 * sidecar keeps across retries: one client request through a retrying route succeeds.
 * @param {RequestContext} ctx
 * @param {Map<string, number>} counts
 */
function flaky({ req, res, query }, counts) {
  const fail = Number(query.get('fail') ?? '1');
  const status = Number(query.get('status') ?? String(DEFAULT_FLAKY_STATUS));
  if (!Number.isInteger(fail) || fail < 0) {
    return sendJson(res, 400, { error: 'BAD_REQUEST', message: 'fail must be an integer >= 0' });
  }
  if (!Number.isInteger(status) || status < 400 || status > 599) {
    return sendJson(res, 400, { error: 'BAD_REQUEST', message: 'status must be 400..599' });
  }
  const key = query.get('key') ?? headerValue(req, 'x-request-id') ?? 'default';
  const attempt = (counts.get(key) ?? 0) + 1;
  // Delete then set moves the key to the end: the first key is the least recently used.
  counts.delete(key);
  counts.set(key, attempt);
  if (counts.size > MAX_FLAKY_KEYS) {
    const oldest = counts.keys().next().value;
    if (oldest !== undefined) counts.delete(oldest);
  }
  const ok = attempt > fail;
  sendJson(res, ok ? 200 : status, {
    key,
    attempt,
    fail,
    ok,
    sidecarAttempt: headerValue(req, 'x-sidecar-attempt') ?? null,
  });
}

/**
 * @param {http.IncomingMessage} req
 * @param {string} name lower-case
 * @returns {string | undefined}
 */
function headerValue(req, name) {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 */
function sendJson(res, status, body) {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Reads --port/--host (also --port=N), then PORT/HOST, then the defaults.
 * @param {string[]} argv
 * @returns {{ port: number, host: string }}
 */
function parseArgs(argv) {
  /** @type {Record<string, string>} */
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--(port|host)(?:=(.*))?$/.exec(arg);
    if (m) {
      const value = m[2] ?? argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      flags[m[1]] = value;
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write('usage: node examples/app/server.js [--port 3000] [--host 127.0.0.1]\n');
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${arg}`);
    }
  }
  const port = Number(flags.port ?? process.env.PORT ?? DEFAULT_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port ${flags.port ?? process.env.PORT}`);
  return { port, host: flags.host ?? process.env.HOST ?? DEFAULT_HOST };
}

function main() {
  /** @type {{ port: number, host: string }} */
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`demo-app: ${err instanceof Error ? err.message : err}\n`);
    process.exit(2);
  }
  const server = createDemoApp();
  server.on('error', (err) => {
    process.stderr.write(`demo-app: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(args.port, args.host, () => {
    const address = /** @type {import('node:net').AddressInfo} */ (server.address());
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    process.stdout.write(`demo-app listening on http://${host}:${address.port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

module.exports = { createDemoApp };

if (require.main === module) main();
