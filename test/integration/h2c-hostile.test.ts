/**
 * Hostile HTTP/2 on an h2c listener, written frame by frame (a client library would refuse to
 * send most of it): malformed pseudo-headers, CR/LF/NUL in values, and rapid reset. Each is a
 * stream or connection error, the app receives nothing of it, and the sidecar goes on serving.
 */

import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import t, { type Test } from 'tap';
import { startSidecarFor, type RunningSidecar } from '../helpers/sidecar';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';
import { HTTP2_PREFACE } from '../../src/listener/protocol-detect';

const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FRAME_GOAWAY = 0x7;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK "literal header field without indexing, new name", no Huffman coding: any bytes at all. */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  if (n.length > 126 || v.length > 126) throw new Error('short fields only');
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

function headersFrame(streamId: number, fields: ReadonlyArray<readonly [string, string]>): Buffer {
  return frame(FRAME_HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, streamId, Buffer.concat(fields.map(([n, v]) => literal(n, v))));
}

interface Frame {
  readonly type: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** A raw HTTP/2 connection: sends the preface and SETTINGS, and parses what comes back. */
async function rawH2(port: number): Promise<{ socket: net.Socket; frames: Frame[]; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.on('error', () => {});
  const frames: Frame[] = [];
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      frames.push({ type: buffered[3], streamId: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + length) });
      buffered = buffered.subarray(9 + length);
    }
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(Buffer.concat([HTTP2_PREFACE, frame(FRAME_SETTINGS, 0, 0)]));
  return { socket, frames, closed };
}

const GOOD: ReadonlyArray<readonly [string, string]> = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':authority', 'example.test'],
  [':path', '/hostile'],
];

async function setup(t: Test): Promise<{ app: RecordingUpstream; proxy: RunningSidecar }> {
  const app = await startRecordingUpstream();
  const proxy = await startSidecarFor(t, app, '', '', 'protocols: [http1, h2c]');
  return { app, proxy };
}

/** The sidecar still serves HTTP/2 and HTTP/1.1 on the port. */
async function stillServes(t: Test, proxy: RunningSidecar): Promise<void> {
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  const stream = session.request({ ':path': '/after' });
  stream.resume();
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  session.close();
  t.equal(headers[':status'], 200, 'a well-formed HTTP/2 request is served afterwards');
  t.equal((await fetch(`${proxy.url()}/after1`)).status, 200, 'and HTTP/1.1 too');
}

/** Refused outright: no request is made of them. */
const MALFORMED: ReadonlyArray<readonly [string, ReadonlyArray<readonly [string, string]>]> = [
  ['an unknown pseudo-header', [...GOOD, [':foo', 'bar']]],
  ['a pseudo-header after a regular field', [[':method', 'GET'], [':scheme', 'http'], ['x-a', '1'], [':path', '/hostile'], [':authority', 'example.test']]],
  ['no :path', GOOD.filter(([n]) => n !== ':path')],
  ['two :method fields', [...GOOD, [':method', 'POST']]],
  ['an upper-case field name', [...GOOD, ['X-Upper', '1']]],
  ['a connection-specific field', [...GOOD, ['connection', 'keep-alive']]],
];

for (const [name, fields] of MALFORMED) {
  t.test(`${name}: a stream or connection error, never the app`, async (t) => {
    const { app, proxy } = await setup(t);
    const { socket, frames, closed } = await rawH2(proxy.port());
    socket.write(headersFrame(1, fields));
    let gone = false;
    void closed.then(() => (gone = true));
    await waitUntil(() => gone || frames.some((f) => (f.type === FRAME_RST_STREAM && f.streamId === 1) || f.type === FRAME_GOAWAY || (f.type === FRAME_HEADERS && f.streamId === 1)), 'the sidecar to answer the stream');
    const answered = frames.find((f) => f.type === FRAME_HEADERS && f.streamId === 1);
    // Node answers a few malformed requests with a 400 of its own; either way the app is not asked.
    if (answered !== undefined) t.ok(answered.payload.length > 0, 'answered by the sidecar itself');
    else t.pass(`refused: ${gone ? 'connection closed' : frames.some((f) => f.type === FRAME_GOAWAY) ? 'GOAWAY' : 'RST_STREAM'}`);
    socket.destroy();
    t.equal(app.received.filter((r) => r.url === '/hostile').length, 0, 'the app received nothing');
    await stillServes(t, proxy);
  });
}

/**
 * nghttp2 drops a field whose value holds CR, LF or NUL (RFC 9113 §8.2.1 lets a server treat
 * the request as malformed or ignore such a field); the rest of the request may reach the
 * app, the field never does.
 */
const BAD_VALUES: ReadonlyArray<readonly [string, string, string]> = [
  ['CR LF in a value', 'x-split', 'a\r\nx-injected: 1'],
  ['a bare LF in a value', 'x-split', 'a\nx-injected: 1'],
  ['a NUL in a value', 'x-split', 'a\0b'],
];

for (const [name, field, value] of BAD_VALUES) {
  t.test(`${name}: the field never reaches the app`, async (t) => {
    const { app, proxy } = await setup(t);
    const { socket, frames, closed } = await rawH2(proxy.port());
    socket.write(headersFrame(1, [...GOOD, [field, value]]));
    let gone = false;
    void closed.then(() => (gone = true));
    await waitUntil(() => gone || frames.some((f) => (f.type === FRAME_RST_STREAM || f.type === FRAME_HEADERS) && f.streamId === 1) || frames.some((f) => f.type === FRAME_GOAWAY), 'the sidecar to answer the stream');
    socket.destroy();
    await waitUntil(() => frames.every((f) => f.type !== FRAME_HEADERS || f.streamId !== 1) || app.received.some((r) => r.url === '/hostile'), 'an answered request to have reached the app');
    for (const request of app.received.filter((r) => r.url === '/hostile')) {
      t.equal(request.headers[field], undefined, `the app did not receive ${field}`);
      t.equal(request.headers['x-injected'], undefined, 'no header was injected');
      t.notOk(request.rawHeaders.some((v) => /[\r\n\0]/.test(v)), 'no CR, LF or NUL in anything the app received');
    }
    await stillServes(t, proxy);
  });
}

t.test('rapid reset all in one write: the app does not get a request per stream, others are served', async (t) => {
  const { app, proxy } = await setup(t);
  const { socket } = await rawH2(proxy.port());
  const burst: Buffer[] = [];
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
  for (let i = 0; i < 400; i++) {
    const id = 1 + 2 * i;
    burst.push(frame(FRAME_HEADERS, FLAG_END_HEADERS, id, Buffer.concat(GOOD.map(([n, v]) => literal(n, v)))));
    burst.push(frame(FRAME_RST_STREAM, 0, id, cancel));
  }
  socket.write(Buffer.concat(burst));
  await stillServes(t, proxy);
  socket.destroy();
  t.ok(app.received.filter((r) => r.url === '/hostile').length < 400, 'the app did not get one request per stream');
});

t.test('rapid reset stream by stream: GOAWAY ENHANCE_YOUR_CALM, the app spared, others served', async (t) => {
  const { app, proxy } = await setup(t);
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  session.on('error', () => {});
  let goawayCode: number | undefined;
  session.once('goaway', (code: number) => (goawayCode = code));
  const closed = new Promise<void>((resolve) => session.once('close', resolve));
  await once(session, 'connect');
  for (let i = 0; i < 400 && !session.closed && !session.destroyed; i++) {
    const stream = session.request({ ':path': '/hostile' });
    stream.on('error', () => {});
    stream.close(http2.constants.NGHTTP2_CANCEL);
    // Each stream on its own turn, so that each reaches the server as a request of its own.
    if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
  }
  await closed;
  t.equal(goawayCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM');
  const reached = app.received.filter((r) => r.url === '/hostile').length;
  t.ok(reached < 400, `the app received fewer requests than the 400 streams (${reached})`);
  await stillServes(t, proxy);
});
