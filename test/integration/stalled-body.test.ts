/**
 * Clients that announce a request body and never send it (or send it too slowly) must not
 * open the circuit breaker for everyone: the timeout is the client's fault, answered 408
 * REQUEST_TIMEOUT (flag DT), and counted neither as a failure of the app (breaker, outlier
 * detection) nor retried.
 */

import { once } from 'node:events';
import http2 from 'node:http2';
import type net from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { closed, connect } from '../helpers/raw';
import { cluster, metric } from '../helpers/resilience';
import { waitUntil } from '../helpers/wait';
import { makeTestPki, withTimeout } from '../helpers/certs';
import { startSidecar, startSidecarFor } from '../helpers/sidecar';
import { connectH2, h2Request } from '../helpers/tls-clients';
import { startUpstream, type Upstream } from '../helpers/upstream';

/** Bounds a wait that should end much sooner: only keeps a failing test from hanging. */
const CLOSE_BOUND_MS = 10_000;
const STALLED_CLIENTS = 10;

/** Everything the server sends on `socket`, read when asked. */
function collect(socket: net.Socket): () => string {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return () => Buffer.concat(chunks).toString('latin1');
}

/** Sends headers announcing a 10-byte body and then nothing; resolves with what the server answered once it closed. */
async function stalledUpload(port: number, method: string): Promise<{ text: string; closedByServer: boolean }> {
  const socket = await connect(port);
  const text = collect(socket);
  socket.write(`${method} /upload HTTP/1.1\r\nHost: app\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n`);
  const closedByServer = await closed(socket, CLOSE_BOUND_MS);
  return { text: text(), closedByServer };
}

/** An app that reads each body whole and answers 200. */
async function appWithUploads(): Promise<{ app: Upstream }> {
  const app = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  return { app };
}

t.test('stalled bodies under the route timeout: 408 each, connection closed, the breaker stays closed', async (t) => {
  const { app } = await appWithUploads();
  // Four failures would open this breaker: the stalled clients are well over that.
  const proxy = await startSidecarFor(
    t,
    app,
    'timeout: 300ms',
    'circuitBreaker: { volumeThreshold: 4, errorThresholdPercentage: 50, window: 60s, resetTimeout: 60s }\noutlierDetection: { consecutive5xx: 2 }',
  );
  const port = proxy.sidecar.listenerPort('main');

  const answers = await Promise.all(Array.from({ length: STALLED_CLIENTS }, () => stalledUpload(port, 'POST')));
  for (const [i, answer] of answers.entries()) {
    t.match(answer.text, /^HTTP\/1\.1 408 [^]*\r\nx-sidecar-error: REQUEST_TIMEOUT\r\n/i, `stalled client ${i + 1} got 408 REQUEST_TIMEOUT`);
    t.match(answer.text, /\r\nconnection: close\r\n/i, 'told the connection closes');
    t.ok(answer.closedByServer, 'and the sidecar closed it (the body was never read)');
  }

  const state = await cluster(proxy.adminUrl);
  t.equal(state.circuitBreaker.state, 'closed', 'the breaker stayed closed');
  t.equal(await metric(proxy.adminUrl, 'sidecar_circuit_state', { cluster: 'app' }), 0, 'sidecar_circuit_state says closed');
  t.equal(state.endpoints[0].failures, 0, 'no endpoint failure was counted');
  t.equal(state.endpoints[0].healthy, true, 'outlier detection did not eject the endpoint');
  t.equal(await metric(proxy.adminUrl, 'sidecar_outlier_ejections_total', { cluster: 'app' }), 0);

  const lines = proxy.accessLog.filter((line) => line.path === '/upload');
  t.equal(lines.length, STALLED_CLIENTS, 'one access log line per stalled client');
  t.ok(lines.every((line) => line.status === 408 && line.error === 'REQUEST_TIMEOUT' && line.flags === 'DT'), 'each logged 408 REQUEST_TIMEOUT with flag DT');

  for (let i = 0; i < 5; i++) {
    const res = await request(`${proxy.url()}/`);
    t.equal(res.statusCode, 200, `normal request ${i + 1} is served`);
    await res.body.dump();
  }
});

t.test('a stalled body under a per-try timeout: 408 at once, never retried', async (t) => {
  const { app } = await appWithUploads();
  const proxy = await startSidecarFor(
    t,
    app,
    'timeout: 5s\nretry: { attempts: 3, perTryTimeout: 200ms, on: [reset, gateway-error], backoff: { base: 10ms, max: 10ms } }',
    'circuitBreaker: { volumeThreshold: 2, errorThresholdPercentage: 50, window: 60s, resetTimeout: 60s }',
  );
  const port = proxy.sidecar.listenerPort('main');

  const answers = await Promise.all([stalledUpload(port, 'PUT'), stalledUpload(port, 'PUT'), stalledUpload(port, 'PUT')]);
  for (const answer of answers) {
    t.match(answer.text, /^HTTP\/1\.1 408 [^]*\r\nx-sidecar-error: REQUEST_TIMEOUT\r\n/i, 'a PUT (retriable) with a stalled body gets 408');
    t.ok(answer.closedByServer, 'its connection closed');
  }
  t.equal(await metric(proxy.adminUrl, 'sidecar_retries_total', { cluster: 'app', reason: 'timeout' }), 0, 'no retry made');
  t.equal(await metric(proxy.adminUrl, 'sidecar_upstream_attempts_total', { cluster: 'app', result: 'REQUEST_TIMEOUT' }), 3, 'one attempt each, counted as the client\'s timeout');
  const lines = proxy.accessLog.filter((line) => line.path === '/upload');
  t.same(lines.map((line) => [line.status, line.attempts, line.flags]), [[408, 1, 'DT'], [408, 1, 'DT'], [408, 1, 'DT']], 'logged: 408 after one attempt, flag DT');
  t.equal((await cluster(proxy.adminUrl)).circuitBreaker.state, 'closed', 'the breaker stayed closed');

  const res = await request(`${proxy.url()}/`);
  t.equal(res.statusCode, 200, 'normal requests are served');
  await res.body.dump();
});

t.test('an app that stops reading a body it got is still the app\'s timeout (504), not the client\'s', async (t) => {
  // The client sent its whole body; the app never reads it nor answers.
  const app = await startUpstream(() => {});
  const proxy = await startSidecarFor(t, app, 'timeout: 300ms');
  const port = proxy.sidecar.listenerPort('main');
  const socket = await connect(port);
  const text = collect(socket);
  socket.write('POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\n0123456789');
  t.teardown(() => void socket.destroy());
  await waitUntil(() => text().includes('\r\n\r\n'), 'the answer');
  t.match(text(), /^HTTP\/1\.1 504 [^]*x-sidecar-error: UPSTREAM_TIMEOUT/i, '504 UPSTREAM_TIMEOUT');
  t.equal(proxy.accessLog.at(-1)?.flags, 'UT', 'flagged as the upstream\'s timeout');
});

t.test('HTTP/2: a stream that stalls its body gets 408 and the exchange ends (nothing left in flight)', async (t) => {
  const pki = await makeTestPki(t.testdir());
  const { app } = await appWithUploads();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
    routes:
      - { name: all, match: { prefix: / }, cluster: app, timeout: 300ms }
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
    circuitBreaker: { volumeThreshold: 2, errorThresholdPercentage: 50, window: 60s, resetTimeout: 60s }
`);
  const session = await connectH2(proxy.port(), { ca: pki.ca });
  t.teardown(async () => {
    session.destroy();
    await proxy.close();
    await app.close();
  });

  const statuses = await Promise.all(
    [1, 2, 3].map(async () => {
      // The body is announced and never sent (the stream stays open on the client's side).
      const stream = session.request({ ':method': 'POST', ':path': '/upload', 'content-length': '10' }, { endStream: false });
      stream.on('error', () => {});
      const closed = new Promise<void>((resolve) => stream.once('close', resolve));
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      stream.resume();
      // The client never ends its side: the sidecar closes the stream (RST_STREAM NO_ERROR).
      await withTimeout(closed, CLOSE_BOUND_MS, 'the sidecar to close the stalled stream');
      return [headers[':status'], headers['x-sidecar-error'], stream.rstCode];
    }),
  );
  const expected = [408, 'REQUEST_TIMEOUT', http2.constants.NGHTTP2_NO_ERROR];
  t.same(statuses, [expected, expected, expected], 'each stalled stream got 408 REQUEST_TIMEOUT, then the stream was closed without error');
  await waitUntil(async () => (await cluster(proxy.adminUrl)).endpoints[0].inFlight === 0, 'the attempts to be cancelled');
  await waitUntil(() => proxy.accessLog.filter((line) => line.path === '/upload').length === 3, 'the three exchanges to end');
  t.ok(proxy.accessLog.every((line) => line.path !== '/upload' || (line.status === 408 && line.flags === 'DT')), 'logged 408, flag DT');
  t.equal((await cluster(proxy.adminUrl)).circuitBreaker.state, 'closed', 'the breaker stayed closed');
  t.equal((await h2Request(session, { ':path': '/' })).status, 200, 'the session serves normal requests');
});
