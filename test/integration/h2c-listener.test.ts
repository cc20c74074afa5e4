/**
 * A plain listener with `protocols: [http1, h2c]`: HTTP/2 with prior knowledge and HTTP/1.1
 * on one port, told apart by the connection preface.
 */

import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { startSidecarFor } from '../helpers/sidecar';
import { curlSupportsHttp2, runCurl } from '../helpers/tls-clients';
import { startUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';
import { HTTP2_PREFACE } from '../../src/listener/protocol-detect';

async function echoProxy(t: Test, listenerExtra = 'protocols: [http1, h2c]') {
  const app = await startUpstream((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`${req.method} ${req.url} over ${req.httpVersion} host=${req.headers.host}`);
  });
  const proxy = await startSidecarFor(t, app, '', '', listenerExtra);
  return { app, proxy };
}

async function h2c(port: number, path: string): Promise<{ status: number; body: string }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const stream = session.request({ ':path': path });
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    await once(stream, 'end');
    return { status: Number(headers[':status']), body };
  } finally {
    session.close();
  }
}

t.test('node:http2 with prior knowledge and HTTP/1.1 are served on the same port', async (t) => {
  const { proxy } = await echoProxy(t);
  const port = proxy.port();
  const overH2 = await h2c(port, '/a?x=1');
  t.equal(overH2.status, 200);
  t.match(overH2.body, /^GET \/a\?x=1 over 1\.1 host=127\.0\.0\.1:\d+$/, 'the app receives the HTTP/2 request (as HTTP/1.1 to it)');
  const overH1 = await request(`${proxy.url()}/b`);
  t.equal(overH1.statusCode, 200);
  t.match(await overH1.body.text(), /^GET \/b over 1\.1/, 'HTTP/1.1 still works on the same port');
  // Lines are written when each response closes, which may follow the client's end by a turn.
  await waitUntil(() => proxy.accessLog.filter((l) => l.path === '/a' || l.path === '/b').length === 2, 'both requests to be logged (the query is left out of the log)');
});

t.test('curl --http2-prior-knowledge', async (t) => {
  t.ok(await curlSupportsHttp2(), 'this curl speaks HTTP/2 (CI installs one that does)');
  const { proxy } = await echoProxy(t);
  const result = await runCurl(['--http2-prior-knowledge', '-w', '\n%{http_version}', `${proxy.url()}/curl`]);
  t.equal(result.code, 0, result.stderr);
  const [body, version] = result.stdout.split('\n');
  t.equal(version, '2', 'curl spoke HTTP/2');
  t.match(body, /^GET \/curl over 1\.1/);
});

t.test('a client that stalls inside the preface blocks nobody, and is closed after headersTimeout', async (t) => {
  const { proxy } = await echoProxy(t, 'protocols: [http1, h2c]\nheadersTimeout: 500ms');
  const port = proxy.port();
  const stalled = net.connect(port, '127.0.0.1');
  await once(stalled, 'connect');
  stalled.write(HTTP2_PREFACE.subarray(0, 12));
  const stalledClosed = once(stalled, 'close');
  // Others are served meanwhile, over both protocols.
  t.equal((await h2c(port, '/other')).status, 200);
  t.equal((await request(`${proxy.url()}/other1`)).statusCode, 200);
  t.notOk(stalled.destroyed, 'the stalled connection is still open while others were served');
  await stalledClosed;
  t.pass('the stalled connection was closed');
});

t.test('a preface split over many writes is still HTTP/2', async (t) => {
  const { proxy } = await echoProxy(t);
  const socket = net.connect(proxy.port(), '127.0.0.1');
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  socket.setNoDelay(true);
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  for (const piece of [HTTP2_PREFACE.subarray(0, 1), HTTP2_PREFACE.subarray(1, 16), HTTP2_PREFACE.subarray(16)]) {
    socket.write(piece);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
  socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
  await waitUntil(() => Buffer.concat(received).length >= 9, 'the server to answer');
  const answer = Buffer.concat(received);
  t.equal(answer[3], 4, 'the server answers with an HTTP/2 SETTINGS frame');
  t.notOk(answer.toString('latin1').startsWith('HTTP/1.1'), 'not an HTTP/1.1 answer');
});

t.test('protocols: [h2c] alone closes HTTP/1.1 connections and serves HTTP/2', async (t) => {
  const { proxy } = await echoProxy(t, 'protocols: [h2c]');
  const port = proxy.port();
  t.equal((await h2c(port, '/only')).status, 200);
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  await once(socket, 'close');
  t.equal(answer, '', 'no HTTP/1.1 answer: the connection is closed');
});

t.test('without h2c (the default) the preface is an HTTP/1 parse error, not HTTP/2', async (t) => {
  const { proxy } = await echoProxy(t, '');
  const socket = net.connect(proxy.port(), '127.0.0.1');
  await once(socket, 'connect');
  socket.write(HTTP2_PREFACE);
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  await once(socket, 'close');
  t.match(answer, /^HTTP\/1\.1 4\d\d /, 'answered as a malformed HTTP/1 request');
});
