/**
 * Slow and greedy clients: slowloris headers, slow bodies, idle connections, too many
 * connections, and peers that never close their side. Each is cut within the listener's
 * limits while other clients keep being served.
 */
import t from 'tap';
import type { Socket } from 'node:net';
import { request } from 'undici';
import { closed, connect } from '../helpers/raw';
import { startSidecarFor } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

/** Far below Node's 30 s check interval, far above the 1 s timeouts under test: a loaded CI machine fits in between. */
const CLOSE_BOUND_MS = 8_000;

/** Sends `line` every `everyMs` until the socket closes. */
function dribble(socket: Socket, first: string, line: string, everyMs: number): void {
  socket.write(first);
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write(line);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

function collect(socket: Socket): () => string {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return () => Buffer.concat(chunks).toString('latin1');
}

t.test('slowloris: slow headers are cut at headersTimeout while others are served', async (t) => {
  const app = await startUpstream((_req, res) => res.end('ok'));
  const proxy = await startSidecarFor(t, app, '', '', 'headersTimeout: 1s\nrequestTimeout: 2s');
  const port = proxy.sidecar.listenerPort('main');

  const started = performance.now();
  const slow = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
  const answers = slow.map((socket) => {
    const text = collect(socket);
    dribble(socket, 'GET / HTTP/1.1\r\nHost: app\r\n', 'X-Slow: 1\r\n', 100);
    return text;
  });
  const allClosed = Promise.all(slow.map((socket) => closed(socket, CLOSE_BOUND_MS)));

  // Others are served while the slow clients hold their connections.
  let served = 0;
  let failed = 0;
  let done = false;
  void allClosed.then(() => (done = true));
  while (!done) {
    const res = await request(`http://127.0.0.1:${port}/`);
    if (res.statusCode === 200 && (await res.body.text()) === 'ok') served++;
    else failed++;
  }
  const elapsed = performance.now() - started;

  t.ok((await allClosed).every(Boolean), `every slow client was closed by the sidecar (after ${elapsed.toFixed(0)} ms)`);
  t.ok(elapsed < CLOSE_BOUND_MS, 'well before Node\'s 30 s check interval would have');
  t.ok(answers.every((text) => /^HTTP\/1\.1 408 /.test(text()) && /x-sidecar-error: REQUEST_TIMEOUT/.test(text())), 'each got 408 REQUEST_TIMEOUT');
  t.ok(served > 0, `${served} requests served meanwhile`);
  t.equal(failed, 0, 'none failed');
});

t.test('a connection that sends nothing is closed at headersTimeout', async (t) => {
  const app = await startUpstream((_req, res) => res.end('ok'));
  const proxy = await startSidecarFor(t, app, '', '', 'headersTimeout: 1s\nrequestTimeout: 2s');
  const socket = await connect(proxy.sidecar.listenerPort('main'));
  t.ok(await closed(socket, CLOSE_BOUND_MS), 'closed by the sidecar');
});

t.test('slow body: cut at requestTimeout, the app sees the upload aborted, the sidecar recovers', async (t) => {
  const appSaw: Array<{ complete: boolean }> = [];
  let appClosed!: () => void;
  const appRequestClosed = new Promise<void>((resolve) => (appClosed = resolve));
  const app = await startUpstream((req, res) => {
    if (req.url === '/upload') {
      req.resume();
      req.on('close', () => {
        appSaw.push({ complete: req.complete });
        appClosed();
      });
      req.on('end', () => res.end('uploaded'));
      return;
    }
    res.end('ok');
  });
  const proxy = await startSidecarFor(t, app, '', '', 'headersTimeout: 1s\nrequestTimeout: 2s');
  const port = proxy.sidecar.listenerPort('main');

  const socket = await connect(port);
  const text = collect(socket);
  dribble(socket, 'POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 1000\r\n\r\n', 'x', 100);
  t.ok(await closed(socket, CLOSE_BOUND_MS), 'the slow uploader was cut');
  t.match(text(), /^HTTP\/1\.1 408 [^]*x-sidecar-error: REQUEST_TIMEOUT/, 'with 408 REQUEST_TIMEOUT');
  await appRequestClosed;
  t.same(appSaw, [{ complete: false }], 'the app saw the upload end incomplete, not hang');

  const res = await request(`http://127.0.0.1:${port}/`);
  t.equal(await res.body.text(), 'ok', 'the next request is served');
});

t.test('maxConnections is enforced per listener', async (t) => {
  const app = await startUpstream((_req, res) => res.end('ok'));
  const proxy = await startSidecarFor(t, app, '', '', 'maxConnections: 5\nheadersTimeout: 60s\nrequestTimeout: 60s');
  const port = proxy.sidecar.listenerPort('main');
  const listener = proxy.sidecar.listeners[0];

  const held = await Promise.all(Array.from({ length: 5 }, () => connect(port)));
  await waitUntil(() => listener.connections === 5, 'the five connections to be accepted', CLOSE_BOUND_MS);
  const sixth = await connect(port);
  const sixthText = collect(sixth);
  sixth.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
  t.ok(await closed(sixth, CLOSE_BOUND_MS), 'the sixth connection is closed at once');
  t.equal(sixthText(), '', 'without being served');
  t.equal(listener.connections, 5);

  held[0].destroy();
  await waitUntil(() => listener.connections === 4, 'a slot to free up', CLOSE_BOUND_MS);
  const res = await request(`http://127.0.0.1:${port}/`, { reset: true });
  t.equal(await res.body.text(), 'ok', 'a new connection is served once a slot is free');
  for (const socket of held) socket.destroy();
});

t.test('a refused client that never closes its side does not keep the connection', async (t) => {
  const app = await startUpstream((_req, res) => res.end('ok'));
  const proxy = await startSidecarFor(t, app, '', '', 'headersTimeout: 60s\nrequestTimeout: 60s');
  const listener = proxy.sidecar.listeners[0];
  const sockets = await Promise.all(Array.from({ length: 10 }, () => connect(proxy.sidecar.listenerPort('main'), { allowHalfOpen: true })));
  for (const socket of sockets) {
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.write('GET / HTTP/1.1\r\nHost: app\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
  }
  await waitUntil(() => listener.connections === 0, 'the sidecar to release every refused connection although no client closed', CLOSE_BOUND_MS);
  t.ok(sockets.every((socket) => !socket.destroyed), 'the clients kept their side open');
  for (const socket of sockets) socket.destroy();
});

t.test('a client that stops reading the response is cut after the route timeout; the app is released', async (t) => {
  let appResponseClosed!: () => void;
  const appReleased = new Promise<void>((resolve) => (appResponseClosed = resolve));
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const app = await startUpstream((req, res) => {
    if (req.url !== '/endless') {
      res.end('ok');
      return;
    }
    res.on('close', appResponseClosed);
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk));
    };
    res.on('drain', pump);
    pump();
  });
  const proxy = await startSidecarFor(t, app, 'timeout: 1s');
  const port = proxy.sidecar.listenerPort('main');
  const listener = proxy.sidecar.listeners[0];

  const reader = await connect(port);
  reader.on('error', () => {});
  reader.write('GET /endless HTTP/1.1\r\nHost: app\r\n\r\n');
  reader.pause(); // and never reads again
  await waitUntil(() => listener.connections === 0, 'the sidecar to cut the client that stopped reading', CLOSE_BOUND_MS);
  await appReleased;
  t.pass('the app\'s response was closed, its connection released');
  t.equal(proxy.accessLog.at(-1)?.flags, 'SI', 'the access log says the stream went idle');
  reader.destroy();

  const res = await request(`http://127.0.0.1:${port}/`);
  t.equal(await res.body.text(), 'ok', 'the next request is served');
});
