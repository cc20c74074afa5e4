/**
 * Size limits: a request body over the route's maxRequestBodyBytes gets 413 whether it
 * declares its length or crosses the limit midway as a chunked stream; header blocks over
 * the limit get 431 from clients and 502 from apps.
 */
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import { startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';

const KiB = 1024;
const MiB = 1024 * KiB;
const LIMIT_BYTES = 1 * MiB;

interface AppRequest {
  bytes: number;
  completed: boolean;
  closed: Promise<void>;
}

/** An app that reads the whole body before answering with its size, and records what it got. */
async function countingApp(): Promise<{ url: string; requests: AppRequest[]; close(): Promise<void> }> {
  const requests: AppRequest[] = [];
  const upstream = await startUpstream((req, res) => {
    let resolveClosed: () => void = () => {};
    const seen: AppRequest = { bytes: 0, completed: false, closed: new Promise((resolve) => (resolveClosed = resolve)) };
    requests.push(seen);
    req.on('data', (chunk: Buffer) => (seen.bytes += chunk.length));
    req.on('end', () => {
      seen.completed = true;
      res.end(String(seen.bytes));
    });
    req.on('error', () => {});
    req.on('close', () => resolveClosed());
  });
  return { url: upstream.url, requests, close: () => upstream.close() };
}

/**
 * Sends a request head and then the body slowly, as `chunks` chunks of `chunkBytes`, over a raw
 * socket, and returns whatever the sidecar answered (it may answer before the body ends).
 */
async function rawUpload(port: number, head: string, chunks: number, chunkBytes: number, chunked: boolean): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => (answer += text));
  socket.on('error', () => {}); // the sidecar may close while the rest of the body is in flight
  const ended = once(socket, 'close');
  socket.write(head);
  const chunk = Buffer.alloc(chunkBytes, 'b');
  for (let i = 0; i < chunks && !socket.destroyed && answer === ''; i++) {
    socket.write(chunked ? Buffer.concat([Buffer.from(`${chunkBytes.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk);
    // A slow upload is the scenario: the sidecar must answer while the body is still coming.
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (!socket.destroyed && answer === '' && chunked) socket.write('0\r\n\r\n');
  await ended;
  return answer;
}

t.test('a body over maxRequestBodyBytes gets 413 REQUEST_TOO_LARGE', async (t) => {
  const app = await countingApp();
  const proxy = await startSidecar(simpleConfig(app.url, `maxRequestBodyBytes: ${LIMIT_BYTES}`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const port = proxy.sidecar.listenerPort('main');

  t.test('declared with Content-Length: refused before the app is contacted', async (t) => {
    const size = 2 * LIMIT_BYTES;
    const answer = await rawUpload(port, `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`, 32, size / 32, false);
    t.match(answer, /^HTTP\/1\.1 413 /, '413');
    t.match(answer, /x-sidecar-error: REQUEST_TOO_LARGE/i);
    t.match(answer, /connection: close/i, 'and the connection is closed (the rest of the body is not read)');
    t.equal(app.requests.length, 0, 'the app never saw the request');
  });

  t.test('chunked, crossing the limit midway: 413, and the app\'s request is aborted', async (t) => {
    const before = app.requests.length;
    const answer = await rawUpload(port, 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', 64, 64 * KiB, true);
    t.match(answer, /^HTTP\/1\.1 413 /, '413 once the limit is crossed');
    t.match(answer, /x-sidecar-error: REQUEST_TOO_LARGE/i);
    t.match(answer, /"error":"REQUEST_TOO_LARGE"/);
    t.equal(app.requests.length, before + 1, 'the app had started receiving the body');
    const seen = app.requests[before];
    await seen.closed;
    t.notOk(seen.completed, 'the app\'s request was aborted, not completed');
    t.ok(seen.bytes <= LIMIT_BYTES, `the app got at most the limit (${seen.bytes} bytes)`);
    const line = proxy.accessLog.at(-1);
    t.match(line, { status: 413, error: 'REQUEST_TOO_LARGE' }, 'logged as REQUEST_TOO_LARGE');
    const endpoint = proxy.sidecar.current.clusters.get('app')?.endpoints[0];
    t.equal(endpoint?.failures, 0, 'the endpoint is not blamed for the client\'s body');
  });

  t.test('chunked, with undici as the client', async (t) => {
    async function* slowBody(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 64; i++) {
        yield Buffer.alloc(64 * KiB, 'c');
        // Paced on purpose: the limit must trip while the body is still arriving.
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }
    try {
      const res = await request(`${proxy.url()}/upload`, { method: 'POST', body: Readable.from(slowBody()) });
      t.equal(res.statusCode, 413);
      t.equal(res.headers['x-sidecar-error'], 'REQUEST_TOO_LARGE');
      await res.body.dump();
    } catch (error) {
      // A client still writing when the connection closes may see the reset first; the raw
      // socket test above reads the answer either way.
      t.match(error, { code: /ECONNRESET|EPIPE|UND_ERR_SOCKET/ }, 'or the connection was cut while it was still sending');
    }
  });

  t.test('chunked bodies up to the limit pass', async (t) => {
    for (const size of [LIMIT_BYTES - 1, LIMIT_BYTES]) {
      const res = await request(`${proxy.url()}/upload`, {
        method: 'POST',
        body: Readable.from([Buffer.alloc(size - 1, 'd'), Buffer.alloc(1, 'd')]),
      });
      t.equal(res.statusCode, 200, `${size} bytes chunked`);
      t.equal(await res.body.text(), String(size), 'the app got every byte');
    }
  });
});

t.test('a body crossing the limit after the app started answering: the connection is cut', async (t) => {
  const upstream = await startUpstream((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('started\n');
    req.on('data', () => {});
    req.on('error', () => {});
  });
  const proxy = await startSidecar(simpleConfig(upstream.url, `maxRequestBodyBytes: ${LIMIT_BYTES}`));
  t.teardown(async () => {
    await proxy.close();
    await upstream.close();
  });
  const req = http.request(`${proxy.url()}/upload`, { method: 'POST' });
  req.on('error', () => {});
  // The upstream request leaves with the first body bytes.
  req.write(Buffer.alloc(16 * KiB));
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  t.equal(res.statusCode, 200, 'the app\'s answer started');
  const cut = new Promise<boolean>((resolve) => {
    res.on('error', () => resolve(true));
    res.on('aborted', () => resolve(true));
    res.on('end', () => resolve(false));
  });
  res.resume();
  for (let i = 0; i < 40 && !req.destroyed; i++) {
    req.write(Buffer.alloc(64 * KiB));
    // Paced on purpose: the body crosses the limit after the response has started.
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  t.equal(await cut, true, 'the response is cut: the only honest signal once it has started');
});

t.test('header blocks over the limit: 431 from the client, 502 from the app', async (t) => {
  const upstream = await startUpstream((req, res) => {
    if (req.url === '/big-header') res.setHeader('x-big', 'h'.repeat(8 * KiB));
    res.end('ok');
  });
  const proxy = await startSidecar(
    simpleConfig(upstream.url, '', 'maxResponseHeaderBytes: 4KiB', 'maxHeaderBytes: 4KiB'),
  );
  t.teardown(async () => {
    await proxy.close();
    await upstream.close();
  });

  const small = await request(`${proxy.url()}/`, { headers: { 'x-fits': 'a'.repeat(2 * KiB) } });
  t.equal(small.statusCode, 200, 'a header block under the limit passes');
  await small.body.dump();

  const big = await request(`${proxy.url()}/`, { headers: { 'x-big': 'a'.repeat(8 * KiB) } });
  t.equal(big.statusCode, 431, 'request headers over the listener\'s maxHeaderBytes: 431');
  t.equal(big.headers['x-sidecar-error'], 'HEADERS_TOO_LARGE');
  await big.body.dump();

  const fromApp = await request(`${proxy.url()}/big-header`);
  t.equal(fromApp.statusCode, 502, 'response headers over the cluster\'s maxResponseHeaderBytes: 502');
  t.equal(fromApp.headers['x-sidecar-error'], 'UPSTREAM_PROTOCOL_ERROR');
  await fromApp.body.dump();
});

t.test('the header limits are equal on both sides by default', async (t) => {
  const loaded = parseConfigText(simpleConfig('http://127.0.0.1:3000'), '/tmp/inline.yaml');
  if (!loaded.ok) throw new Error('config rejected');
  const listenerLimit = loaded.config.listeners[0].maxHeaderBytes;
  const clusterLimit = loaded.config.clusters.get('app')?.maxResponseHeaderBytes;
  t.equal(listenerLimit, 16 * KiB, 'listeners accept 16 KiB of request headers');
  t.equal(clusterLimit, listenerLimit, 'clusters accept as much of response headers');
});
