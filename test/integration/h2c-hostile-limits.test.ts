/**
 * Hostile HTTP/2 on an h2c listener, frame by frame: a content-length that disagrees with the
 * DATA sent (fewer bytes, more bytes with a request hidden in them), more streams than the
 * listener allows, and a header list over the limit. Each test asserts what the app received,
 * behind an HTTP/1.1 cluster and behind an HTTP/2 one.
 */

import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { HTTP2_MAX_CONCURRENT_STREAMS } from '../../src/listener/secure-server';
import { DEFAULT_LISTENER_MAX_HEADER_BYTES } from '../../src/config/defaults';
import { startSidecarFor, type RunningSidecar } from '../helpers/sidecar';
import { startRecordingUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';
import { FRAME_GOAWAY, FRAME_HEADERS, FRAME_RST_STREAM, dataFrame, errorCode, headerFrames, isStatus200, rawH2, type Fields, type RawH2 } from '../helpers/h2-frames';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly body: string;
}

/** An app that records each request it read to its end, then answers 200. */
interface App {
  readonly url: string;
  readonly received: Received[];
  /** Requests whose headers arrived (read to the end or not). */
  started(): number;
  close(): Promise<void>;
}

async function http1App(): Promise<App> {
  const app = await startRecordingUpstream();
  let started = 0;
  app.server.prependListener('request', () => started++);
  return { url: app.url, received: app.received, started: () => started, close: () => app.close() };
}

async function http2App(): Promise<App> {
  const received: Received[] = [];
  let started = 0;
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    started++;
    stream.on('error', () => {});
    let body = '';
    stream.setEncoding('latin1');
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      // Node ends the readable side of a reset stream too, and reports the reset just after:
      // only a stream still open a turn later was half-closed by the client.
      setImmediate(() => {
        if (stream.aborted || stream.destroyed) return;
        received.push({ method: String(headers[':method']), url: String(headers[':path']), body });
        stream.respond({ ':status': 200 });
        stream.end(`app:${String(headers[':path'])}`);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    started: () => started,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}

const KINDS = [
  ['an HTTP/1.1 cluster', http1App, ''],
  ['an HTTP/2 cluster', http2App, 'protocol: http2'],
] as const;

async function setup(t: Test, makeApp: () => Promise<App>, clusterExtra: string): Promise<{ app: App; proxy: RunningSidecar }> {
  const app = await makeApp();
  const proxy = await startSidecarFor(t, app, '', clusterExtra, 'protocols: [http1, h2c]');
  return { app, proxy };
}

function post(path: string, extra: Fields = []): Fields {
  return [[':method', 'POST'], [':scheme', 'http'], [':authority', 'example.test'], [':path', path], ...extra];
}

/** The stream got its answer: a reset, a response, or the whole connection went. */
async function answered(raw: RawH2, streamId: number): Promise<string> {
  await waitUntil(() => raw.gone() || raw.frames.some((f) => ((f.type === FRAME_RST_STREAM || f.type === FRAME_HEADERS) && f.streamId === streamId) || f.type === FRAME_GOAWAY), `stream ${streamId} to be answered`);
  const reset = raw.frames.find((f) => f.type === FRAME_RST_STREAM && f.streamId === streamId);
  if (reset !== undefined) return `RST_STREAM ${errorCode(reset)}`;
  const goaway = raw.frames.find((f) => f.type === FRAME_GOAWAY);
  if (goaway !== undefined) return `GOAWAY ${errorCode(goaway)}`;
  if (raw.gone()) return 'connection closed';
  return 'HEADERS';
}

/** A well-formed request on a new connection reaches the app, and so the sidecar is done with what came before on that connection's listener. */
async function stillServes(t: Test, proxy: RunningSidecar, app: App, path: string): Promise<void> {
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  const stream = session.request({ ':path': path, ':method': 'POST' });
  stream.end('fine');
  stream.resume();
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  await once(stream, 'end');
  session.close();
  t.equal(headers[':status'], 200, 'a well-formed request is served afterwards');
  t.same(
    app.received.filter((r) => r.url === path).map((r) => ({ method: r.method, url: r.url, body: r.body })),
    [{ method: 'POST', url: path, body: 'fine' }],
    'the app received it whole',
  );
}

for (const [kind, makeApp, clusterExtra] of KINDS) {
  t.test(`${kind}: content-length above the DATA sent is refused, the app never gets a complete request`, async (t) => {
    const { app, proxy } = await setup(t, makeApp, clusterExtra);
    const raw = await rawH2(proxy.port());
    raw.socket.write(Buffer.concat([headerFrames(1, post('/short', [['content-length', '10']]), false), dataFrame(1, 'abc', true)]));
    const answer = await answered(raw, 1);
    t.notOk(raw.frames.some((f) => f.streamId === 1 && isStatus200(f)), `no 200 for the short body (${answer})`);
    raw.socket.destroy();
    await stillServes(t, proxy, app, '/after-short');
    t.same(app.received.filter((r) => r.url === '/short'), [], 'the app never read a complete /short request');
  });

  t.test(`${kind}: DATA beyond content-length is refused, no byte past it reaches the app (no request hidden there)`, async (t) => {
    const { app, proxy } = await setup(t, makeApp, clusterExtra);
    const raw = await rawH2(proxy.port());
    const hidden = 'GET /smuggled HTTP/1.1\r\nhost: example.test\r\n\r\n';
    raw.socket.write(Buffer.concat([headerFrames(1, post('/long', [['content-length', '4']]), false), dataFrame(1, `abcd${hidden}`, true)]));
    const answer = await answered(raw, 1);
    t.notOk(raw.frames.some((f) => f.streamId === 1 && isStatus200(f)), `no 200 for the long body (${answer})`);
    raw.socket.destroy();
    await stillServes(t, proxy, app, '/after-long');
    t.same(app.received.filter((r) => r.url === '/smuggled'), [], 'the bytes past content-length were never read as a request');
    t.notOk(app.received.some((r) => r.body.includes('smuggled')), 'nor as a body');
  });

  t.test(`${kind}: more streams than SETTINGS_MAX_CONCURRENT_STREAMS: that connection is closed, another one's call goes on`, async (t) => {
    const { app, proxy } = await setup(t, makeApp, clusterExtra);
    // A well-behaved client with a call in flight, its body half sent.
    const neighbour = http2.connect(`http://127.0.0.1:${proxy.port()}`);
    t.teardown(() => neighbour.close());
    const call = neighbour.request({ ':path': '/neighbour', ':method': 'POST' });
    call.write('first half, ');
    await waitUntil(() => app.started() === 1, 'the neighbour call to reach the app');
    const raw = await rawH2(proxy.port());
    // The server's SETTINGS acknowledged first: its limit is in force.
    await waitUntil(() => raw.frames.length > 0, 'the server SETTINGS');
    const ids = Array.from({ length: HTTP2_MAX_CONCURRENT_STREAMS + 20 }, (_, i) => 1 + 2 * i);
    // Every stream stays open (its body still due) while the next ones are opened.
    raw.socket.write(Buffer.concat(ids.map((id) => headerFrames(id, post(`/flood/${id}`), false))));
    await raw.closed;
    // Node (nghttp2) takes a stream past the acknowledged limit for a connection error: the
    // flooding connection goes, with every stream it opened.
    const goaway = raw.frames.find((f) => f.type === FRAME_GOAWAY);
    t.ok(goaway !== undefined, `the flooding connection got GOAWAY (${goaway === undefined ? 'none' : errorCode(goaway)})`);
    t.notOk(raw.frames.some((f) => isStatus200(f)), 'none of its streams was answered by the app');
    call.end('second half');
    call.setEncoding('utf8');
    let answer = '';
    call.on('data', (chunk: string) => (answer += chunk));
    const [headers] = (await once(call, 'response')) as [http2.IncomingHttpHeaders];
    await once(call, 'end');
    t.equal(headers[':status'], 200, "the other connection's call was answered");
    t.equal(answer, 'app:/neighbour');
    t.same(
      app.received.filter((r) => r.url === '/neighbour').map((r) => r.body),
      ['first half, second half'],
      'the app received its whole body',
    );
    // (An HTTP/2 cluster cancels an attempt with RST_STREAM CANCEL at once, never with an
    // END_STREAM first that an app could take for the end of a whole body.)
    t.equal(app.received.filter((r) => r.url.startsWith('/flood/')).length, 0, 'the app read no complete request of the flood');
    await stillServes(t, proxy, app, '/after-flood');
  });

  t.test(`${kind}: a header list over maxHeaderBytes never reaches the app`, async (t) => {
    const { app, proxy } = await setup(t, makeApp, clusterExtra);
    const raw = await rawH2(proxy.port());
    await waitUntil(() => raw.frames.length > 0, 'the server SETTINGS');
    const big = 'x'.repeat(DEFAULT_LISTENER_MAX_HEADER_BYTES + 1024);
    raw.socket.write(headerFrames(1, post('/big', [['x-big', big]]), true));
    const answer = await answered(raw, 1);
    const response = raw.frames.find((f) => f.type === FRAME_HEADERS && f.streamId === 1);
    // A 431 of the sidecar's own, or a reset of the stream or the connection: never the app's 200.
    t.ok(response === undefined || !isStatus200(response), `refused (${answer})`);
    raw.socket.destroy();
    await stillServes(t, proxy, app, '/after-big');
    t.equal(app.received.filter((r) => r.url === '/big').length, 0, 'the app received nothing of it');
  });
}

t.test('the app saw no request start for the refused cases (an HTTP/2 cluster)', async (t) => {
  // Stream by stream: a reset, oversized or mis-framed stream costs the app nothing at all.
  const { app, proxy } = await setup(t, http2App, 'protocol: http2');
  const raw = await rawH2(proxy.port());
  await waitUntil(() => raw.frames.length > 0, 'the server SETTINGS');
  raw.socket.write(headerFrames(1, post('/big', [['x-big', 'x'.repeat(DEFAULT_LISTENER_MAX_HEADER_BYTES + 1024)]]), true));
  await answered(raw, 1);
  raw.socket.destroy();
  await stillServes(t, proxy, app, '/after');
  t.equal(app.started(), 1, 'only the well-formed request reached the app');
});
