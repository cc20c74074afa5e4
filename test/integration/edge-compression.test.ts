/**
 * routes[].compression: negotiated from Accept-Encoding (q-values), checked with curl
 * --compressed and round-tripped byte-identical for br and gzip; never on encoded, range,
 * no-transform, small or event-stream responses; Vary and a weak ETag; the client's
 * backpressure still reaches the app.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import * as zlib from 'node:zlib';
import t from 'tap';
import { request } from 'undici';
import { startSidecar } from '../helpers/sidecar';
import { runCurl } from '../helpers/tls-clients';
import { startUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

// Compressible but not trivially so: words drawn from a small vocabulary.
const WORDS = ['sidecar', 'route', 'cluster', 'listener', 'retry', 'breaker', 'token', 'origin'];
/** What the flooding app writes when nothing holds it back. */
const FLOOD_BYTES = 16 * 1024 * 1024;
const TEXT = Array.from({ length: 40_000 }, (_, i) => WORDS[(i * 7 + (i >> 3)) % WORDS.length]).join(' ');

t.test('compression', async (t) => {
  let streamed = 0;
  let streamPaused = false;
  const app = await startUpstream((req, res) => {
    const url = req.url ?? '';
    if (url === '/text') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(TEXT), etag: '"v1"' });
      res.end(TEXT);
    } else if (url === '/chunked') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"items":[');
      res.end(`${JSON.stringify(TEXT)}]}`);
    } else if (url === '/small') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 }).end('small');
    } else if (url === '/image') {
      res.writeHead(200, { 'content-type': 'image/png' }).end(randomBytes(4096));
    } else if (url === '/encoded') {
      const gz = zlib.gzipSync(TEXT);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': gz.length }).end(gz);
    } else if (url === '/range') {
      res.writeHead(206, { 'content-type': 'text/plain', 'content-range': `bytes 0-1999/${TEXT.length}`, 'content-length': 2000 }).end(TEXT.slice(0, 2000));
    } else if (url === '/no-transform') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, no-transform' }).end(TEXT);
    } else if (url === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      setTimeout(() => res.end('data: last\n\n'), 50);
    } else if (url === '/flood') {
      // Writes as long as the sidecar takes them; stops when it is pushed back.
      res.writeHead(200, { 'content-type': 'text/plain' });
      const pump = (): void => {
        while (streamed < FLOOD_BYTES) {
          const chunk = randomBytes(64 * 1024).toString('base64');
          streamed += chunk.length;
          if (!res.write(chunk)) {
            streamPaused = true;
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    } else {
      res.end('?');
    }
  });
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: app
        compression: { algorithms: [br, gzip], minBytes: 1KiB, contentTypes: [text/*, application/json] }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const base = proxy.url();
  const raw = async (urlPath: string, acceptEncoding?: string) => {
    const res = await request(`${base}${urlPath}`, { headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body };
  };

  t.test('negotiated, round-tripped byte for byte', async (t) => {
    const br = await raw('/text', 'gzip, deflate, br');
    t.equal(br.headers['content-encoding'], 'br', 'br preferred by the server on a tie');
    t.equal(br.headers['content-length'], undefined, 'no length of the unencoded body');
    t.equal(br.headers.etag, 'W/"v1"', 'the ETag weakened');
    t.match(String(br.headers.vary), /Accept-Encoding/);
    t.ok(br.body.length < Buffer.byteLength(TEXT) / 4, `compressed: ${br.body.length} of ${Buffer.byteLength(TEXT)} bytes`);
    t.equal(zlib.brotliDecompressSync(br.body).toString(), TEXT, 'br round trip');

    const gz = await raw('/text', 'br;q=0.5, gzip;q=1.0');
    t.equal(gz.headers['content-encoding'], 'gzip', 'the client\'s q-values decide');
    t.equal(zlib.gunzipSync(gz.body).toString(), TEXT, 'gzip round trip');

    const chunked = await raw('/chunked', 'gzip');
    t.equal(chunked.headers['content-encoding'], 'gzip', 'a body of unknown length');
    t.equal(zlib.gunzipSync(chunked.body).toString(), `{"items":[${JSON.stringify(TEXT)}]}`);

    const none = await raw('/text');
    t.equal(none.headers['content-encoding'], undefined, 'no Accept-Encoding: identity');
    t.equal(none.headers.etag, '"v1"', 'the strong ETag kept');
    t.match(String(none.headers.vary), /Accept-Encoding/, 'Vary still (another client gets it encoded)');
    t.equal(none.body.toString(), TEXT);
    const refused = await raw('/text', 'br;q=0, gzip;q=0');
    t.equal(refused.headers['content-encoding'], undefined, 'q=0 refuses an encoding');
    const line = proxy.accessLog.find((l) => l.status === 200 && l.bytes_out !== undefined && l.bytes_out < Buffer.byteLength(TEXT) / 4);
    t.ok(line, 'the access log counts the bytes sent, compressed');
  });

  t.test('curl --compressed', async (t) => {
    const dir = t.testdir();
    for (const encoding of ['br', 'gzip']) {
      const out = path.join(dir, `${encoding}.txt`);
      const result = await runCurl(['-s', '--compressed', '-H', `Accept-Encoding: ${encoding}`, '-o', out, '-w', '%{size_download} %{content_type}', `${base}/text`]);
      if (result.code !== 0 && encoding === 'br') {
        t.comment('this curl cannot decode br');
        continue;
      }
      t.equal(result.code, 0, `curl ${encoding}`);
      const [downloaded] = result.stdout.split(' ');
      t.ok(Number(downloaded) < Buffer.byteLength(TEXT) / 4, `${encoding}: ${downloaded} bytes on the wire`);
      t.equal(await fsp.readFile(out, 'utf8'), TEXT, `${encoding}: curl decodes it byte-identical`);
    }
  });

  t.test('never compressed', async (t) => {
    for (const [urlPath, why] of [
      ['/small', 'smaller than minBytes'],
      ['/image', 'a type not listed'],
      ['/encoded', 'already encoded'],
      ['/range', 'a range'],
      ['/no-transform', 'no-transform'],
    ] as const) {
      const res = await raw(urlPath, 'br, gzip');
      t.equal(res.headers['content-encoding'], urlPath === '/encoded' ? 'gzip' : undefined, `${why}: sent as the app sent it`);
      if (urlPath === '/encoded') t.equal(zlib.gunzipSync(res.body).toString(), TEXT, 'not encoded twice');
    }
    const events = await raw('/events', 'gzip');
    t.equal(events.headers['content-encoding'], undefined, 'text/event-stream, although text/* is listed');
    t.equal(events.body.toString(), 'data: first\n\ndata: last\n\n');
    const head = await request(`${base}/text`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
    await head.body.dump();
    t.equal(head.headers['content-encoding'], undefined, 'HEAD');
  });

  t.test('backpressure: a client that does not read stops the app', async (t) => {
    const res = await request(`${base}/flood`, { headers: { 'accept-encoding': 'gzip' } });
    t.equal(res.headers['content-encoding'], 'gzip');
    await waitUntil(() => streamPaused, 'the app is pushed back');
    const before = streamed;
    // The client still reads nothing: the app stays paused (it wrote a bounded amount).
    t.ok(before < FLOOD_BYTES, `the app wrote ${before} bytes, not all`);
    let received = 0;
    for await (const chunk of res.body) received += (chunk as Buffer).length;
    t.ok(received > 0, 'reading resumes the stream to its end');
    t.ok(streamed >= FLOOD_BYTES, 'the app finished');
    t.ok(received > 0 && received < streamed, `compressed on the way: ${received} of ${streamed} bytes`);
  });
});
