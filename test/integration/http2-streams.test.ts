/**
 * HTTP/2 streams through a TLS listener: a client that resets its stream, a client that
 * reads slowly, idle sessions, slow request bodies and oversized header blocks.
 */

import { once } from 'node:events';
import http2 from 'node:http2';
import type { ServerResponse } from 'node:http';
import t, { type Test } from 'tap';
import { makeTestPki, withTimeout, type TestPki } from '../helpers/certs';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { connectH2, h2Request } from '../helpers/tls-clients';
import { startUpstream, type Upstream } from '../helpers/upstream';

const EVENT_TIMEOUT_MS = 10_000;

async function setup(
  t: Test,
  handler: (req: import('node:http').IncomingMessage, res: ServerResponse) => void,
  listenerExtra = '',
): Promise<{ pki: TestPki; app: Upstream; proxy: RunningSidecar; session: http2.ClientHttp2Session }> {
  const pki = await makeTestPki(t.testdir());
  const app = await startUpstream(handler);
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
${listenerExtra}
    routes:
      - { name: all, match: { prefix: / }, cluster: app, timeout: 60s }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`);
  const session = await connectH2(proxy.port(), { ca: pki.ca });
  t.teardown(async () => {
    session.destroy();
    await proxy.close();
    await app.close();
  });
  return { pki, app, proxy, session };
}

t.test('a client that resets its stream mid-response closes the app request; the session lives on', async (t) => {
  let appRequestClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => (appRequestClosed = resolve));
  const { proxy, session } = await setup(t, (req, res) => {
    if (req.url === '/ok') {
      res.end('ok');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first chunk\n');
    // Never ends on its own: only the sidecar closing the request stops it.
    res.on('close', () => appRequestClosed());
  });

  const stream = session.request({ ':path': '/stream' });
  await once(stream, 'response');
  await once(stream, 'data');
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await withTimeout(closed, EVENT_TIMEOUT_MS, 'the app request to close after the client reset its stream');
  const line = await withTimeout(
    (async () => {
      while (proxy.accessLog.find((l) => l.path === '/stream') === undefined) await new Promise((resolve) => setImmediate(resolve));
      return proxy.accessLog.find((l) => l.path === '/stream');
    })(),
    EVENT_TIMEOUT_MS,
    'the access log line',
  );
  t.equal(line?.flags, 'DC', 'logged as a downstream disconnect');

  const next = await h2Request(session, { ':path': '/ok' });
  t.equal(next.body, 'ok', 'other streams of the session are unaffected');
});

t.test('backpressure: a client that stops reading stops the app from writing', async (t) => {
  const CHUNK_BYTES = 256 * 1024;
  const TOTAL_BYTES = 48 * 1024 * 1024;
  let written = 0;
  const { session } = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL_BYTES) });
    const chunk = Buffer.alloc(CHUNK_BYTES, 0x61);
    const pump = (): void => {
      while (written < TOTAL_BYTES) {
        written += CHUNK_BYTES;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });

  const stream = session.request({ ':path': '/big' });
  await once(stream, 'response');
  // The stream is paused (no 'data' listener): flow control must hold the app back. Nothing
  // announces that the app has stopped for good (it stops and resumes as windows open), so
  // the test reads its byte count until it stays still for 10 readings.
  let stable = 0;
  let last = -1;
  await withTimeout(
    (async () => {
      while (stable < 10) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        stable = written === last ? stable + 1 : 0;
        last = written;
      }
    })(),
    30_000,
    'the app to stop writing',
  );
  t.ok(written < TOTAL_BYTES, `the app stopped after ${(written / 1048576).toFixed(1)} MiB of ${TOTAL_BYTES / 1048576} MiB`);

  let received = 0;
  stream.on('data', (chunk: Buffer) => (received += chunk.length));
  await withTimeout(once(stream, 'end'), 30_000, 'the rest of the body');
  t.equal(received, TOTAL_BYTES, 'every byte arrives once the client reads again');
});

t.test('an idle session is closed after keepAliveTimeout, not one with a stream in flight', async (t) => {
  const { proxy, pki, session } = await setup(
    t,
    (req, res) => {
      const delayMs = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
      setTimeout(() => res.end('done'), delayMs);
    },
    '    keepAliveTimeout: 300ms',
  );
  // A request that outlasts the keep-alive timeout several times over.
  const slow = await h2Request(session, { ':path': '/?ms=1500' });
  t.equal(slow.body, 'done', 'a stream in flight keeps its session open');

  await withTimeout(once(session, 'close'), EVENT_TIMEOUT_MS, 'the idle session to be closed');
  t.pass('the idle session was closed by the sidecar');

  const fresh = await connectH2(proxy.port(), { ca: pki.ca });
  t.teardown(() => fresh.destroy());
  t.equal((await h2Request(fresh, { ':path': '/' })).body, 'done', 'new sessions are accepted');
});

t.test('a stream still sending its body after requestTimeout is cancelled', async (t) => {
  let appAborted: () => void = () => undefined;
  const aborted = new Promise<void>((resolve) => (appAborted = resolve));
  const { session } = await setup(
    t,
    (req, res) => {
      req.on('error', () => undefined);
      req.on('close', () => {
        if (!req.complete) appAborted();
      });
      req.resume();
      req.on('end', () => res.end('complete'));
    },
    '    headersTimeout: 500ms\n    requestTimeout: 500ms',
  );
  const stream = session.request({ ':method': 'POST', ':path': '/upload' });
  stream.on('error', () => undefined);
  stream.write('the first part of a body that never ends');
  await withTimeout(once(stream, 'close'), EVENT_TIMEOUT_MS, 'the stream to be cancelled');
  t.equal(stream.rstCode, http2.constants.NGHTTP2_CANCEL, 'RST_STREAM(CANCEL)');
  await withTimeout(aborted, EVENT_TIMEOUT_MS, 'the app request to be aborted');
  t.pass('the app saw its request aborted');
});

t.test('a header block larger than maxHeaderBytes is refused', async (t) => {
  let served = 0;
  const { session } = await setup(
    t,
    (_req, res) => {
      served += 1;
      res.end('ok');
    },
    '    maxHeaderBytes: 4KiB',
  );
  const small = await h2Request(session, { ':path': '/', 'x-small': 'x'.repeat(1024) });
  t.equal(small.status, 200);
  const stream = session.request({ ':path': '/', 'x-big': 'x'.repeat(8 * 1024) });
  let status: number | undefined;
  stream.on('response', (headers) => (status = Number(headers[':status'])));
  stream.on('error', () => undefined);
  stream.resume();
  await withTimeout(new Promise((resolve) => stream.once('close', resolve)), EVENT_TIMEOUT_MS, 'the oversized stream to end');
  t.equal(status, undefined, 'no response');
  t.not(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, `the stream is reset with an error code (${String(stream.rstCode)})`);
  t.equal(served, 1, 'the app never saw it');
});

t.test('an upstream that fails mid-body resets the stream with an error, not a clean end', async (t) => {
  const { session } = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
    res.write('the first part of the body');
    res.once('finish', () => undefined);
    setImmediate(() => res.socket?.destroy());
  });
  const stream = session.request({ ':path': '/' });
  let ended = false;
  stream.on('end', () => (ended = true));
  stream.on('error', () => undefined);
  stream.resume();
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  t.equal(headers[':status'], 200, 'the response had started');
  await withTimeout(new Promise((resolve) => stream.once('close', resolve)), EVENT_TIMEOUT_MS, 'the stream to close');
  t.equal(stream.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR, 'RST_STREAM(INTERNAL_ERROR)');
  t.notOk(ended, 'the client does not see a complete body');
});

t.test('a graceful stop lets HTTP/2 streams in flight finish and tells clients to go away', async (t) => {
  let appReceived: () => void = () => undefined;
  const received = new Promise<void>((resolve) => (appReceived = resolve));
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const { proxy, session } = await setup(t, (_req, res) => {
    appReceived();
    void released.then(() => res.end('finished'));
  });
  const goaway = once(session, 'goaway');
  const inFlight = h2Request(session, { ':path': '/slow' });
  await withTimeout(received, EVENT_TIMEOUT_MS, 'the request to reach the app');
  const stopped = proxy.sidecar.stop({ graceful: true });
  await withTimeout(goaway, EVENT_TIMEOUT_MS, 'GOAWAY');
  release();
  const reply = await withTimeout(inFlight, EVENT_TIMEOUT_MS, 'the request in flight');
  t.equal(reply.status, 200);
  t.equal(reply.body, 'finished', 'the stream in flight completed');
  await withTimeout(stopped, EVENT_TIMEOUT_MS, 'the sidecar to stop');
  t.pass('the stop completed once the session closed');
});
