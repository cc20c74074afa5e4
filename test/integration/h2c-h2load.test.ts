/**
 * h2load (nghttp2's load generator) against an h2c listener, to an HTTP/2 app: every request
 * succeeds, GETs and POSTs with a body, many streams per connection. CI installs h2load
 * (.ci/run); a dev machine without it skips these tests and says why.
 */

import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { startSidecarFor, type RunningSidecar } from '../helpers/sidecar';

const REQUESTS = 2_000;
const CLIENTS = 10;
const STREAMS = 10;
const BODY = 'x'.repeat(1_000);

const h2loadMissing = spawnSync('h2load', ['--version']).status !== 0;
const skip = h2loadMissing && process.env.CI === undefined ? 'h2load is not installed (Debian: apt-get install nghttp2-client; CI installs it)' : false;

interface App {
  readonly url: string;
  /** Requests answered, and the request body bytes read, by method. */
  readonly seen: { GET: number; POST: number; postBytes: number };
  sessions: number;
  close(): Promise<void>;
}

async function startApp(): Promise<App> {
  const server = http2.createServer();
  const open = new Set<http2.ServerHttp2Session>();
  const app: App = {
    url: '',
    seen: { GET: 0, POST: 0, postBytes: 0 },
    sessions: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of open) session.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('session', (session: http2.ServerHttp2Session) => {
    app.sessions++;
    open.add(session);
    session.on('close', () => open.delete(session));
  });
  server.on('stream', (stream, headers) => {
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    stream.on('end', () => {
      if (headers[':method'] === 'POST') {
        app.seen.POST++;
        app.seen.postBytes += bytes;
      } else app.seen.GET++;
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(app, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

async function setup(t: Test): Promise<{ app: App; proxy: RunningSidecar }> {
  const app = await startApp();
  const proxy = await startSidecarFor(t, app, '', 'protocol: http2', 'protocols: [http1, h2c]');
  return { app, proxy };
}

interface H2loadResult {
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly status2xx: number;
  readonly output: string;
}

async function h2load(args: string[]): Promise<H2loadResult> {
  const { stdout } = await promisify(execFile)('h2load', args, { timeout: 60_000 });
  const requests = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(stdout);
  const codes = /status codes: (\d+) 2xx/.exec(stdout);
  if (requests === null || codes === null) throw new Error(`h2load's summary not found in:\n${stdout}`);
  return { succeeded: Number(requests[1]), failed: Number(requests[2]), errored: Number(requests[3]), status2xx: Number(codes[1]), output: stdout };
}

t.test(`h2load GET: ${REQUESTS} requests, ${CLIENTS} clients × ${STREAMS} streams, 0 failed`, { skip }, async (t) => {
  const { app, proxy } = await setup(t);
  const result = await h2load(['-n', String(REQUESTS), '-c', String(CLIENTS), '-m', String(STREAMS), `http://127.0.0.1:${proxy.port()}/load`]);
  t.equal(result.failed, 0, '0 failed');
  t.equal(result.errored, 0, '0 errored');
  t.equal(result.succeeded, REQUESTS, `${REQUESTS} succeeded`);
  t.equal(result.status2xx, REQUESTS, 'all 2xx');
  t.equal(app.seen.GET, REQUESTS, 'the app answered each one');
});

t.test(`h2load POST with a ${BODY.length}-byte body: ${REQUESTS} requests, 0 failed, every body whole`, { skip }, async (t) => {
  const { app, proxy } = await setup(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'h2load-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bodyFile = path.join(dir, 'body');
  fs.writeFileSync(bodyFile, BODY);
  const result = await h2load(['-n', String(REQUESTS), '-c', String(CLIENTS), '-m', String(STREAMS), '-d', bodyFile, `http://127.0.0.1:${proxy.port()}/load`]);
  t.equal(result.failed, 0, '0 failed');
  t.equal(result.errored, 0, '0 errored');
  t.equal(result.succeeded, REQUESTS, `${REQUESTS} succeeded`);
  t.equal(result.status2xx, REQUESTS, 'all 2xx');
  t.equal(app.seen.POST, REQUESTS, 'the app answered each one');
  t.equal(app.seen.postBytes, REQUESTS * BODY.length, 'and read every body whole');
  // h2load opens its CLIENTS × STREAMS requests at once: undici's pool opens a connection for
  // each request that arrives while the first one is still connecting (a cold burst), then
  // they share connections. Never more than the requests in flight.
  t.ok(app.sessions <= CLIENTS * STREAMS, `the app's connections: at most one per request in flight, not one per request (${app.sessions})`);
  // Once connected, the bursts of POSTs (h2load sends each client's ${STREAMS} in one write) are streams of the open connections.
  const warm = app.sessions;
  const again = await h2load(['-n', String(REQUESTS), '-c', String(CLIENTS), '-m', String(STREAMS), '-d', bodyFile, `http://127.0.0.1:${proxy.port()}/load`]);
  t.equal(again.succeeded, REQUESTS, `${REQUESTS} succeeded again`);
  t.equal(app.sessions, warm, `no new connection to the app for the second run (${app.sessions - warm})`);
});
