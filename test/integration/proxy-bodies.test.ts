import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';

// Bodies travel both ways byte for byte: the app echoes what it received (as it receives it,
// so nothing is buffered whole); the client hashes what comes back.
t.test('request and response bodies arrive byte-identical, chunked and with content-length', async (t) => {
  const app = await startUpstream((req, res) => {
    const length = req.headers['content-length'];
    res.writeHead(200, { 'x-request-te': req.headers['transfer-encoding'] ?? 'none', ...(length !== undefined ? { 'content-length': length } : {}) });
    req.on('data', (chunk: Buffer) => res.write(chunk));
    req.on('end', () => res.end());
  });
  const proxy = await startSidecar(simpleConfig(app.url, 'maxRequestBodyBytes: 64MiB'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  const sizes = [0, 1024 * 1024, 50 * 1024 * 1024];
  for (const size of sizes) {
    const payload = size === 0 ? Buffer.alloc(0) : randomBytes(size);
    const expected = createHash('sha256').update(payload).digest('hex');
    for (const framing of ['content-length', 'chunked'] as const) {
      const body = framing === 'chunked' ? Readable.from(chunksOf(payload, 64 * 1024)) : payload;
      const res = await request(`${proxy.url()}/upload`, {
        method: 'POST',
        body,
        headers: framing === 'content-length' ? { 'content-length': String(size) } : {},
      });
      const hash = createHash('sha256');
      for await (const chunk of res.body) hash.update(chunk as Buffer);
      t.equal(res.statusCode, 200, `${size} B ${framing}: status`);
      t.equal(hash.digest('hex'), expected, `${size} B ${framing}: the body came back unchanged`);
      if (framing === 'chunked' && size > 0) t.equal(res.headers['x-request-te'], 'chunked', 'the app received a chunked body');
    }
  }
});

t.test('a large response streams to a client that reads it', async (t) => {
  const payload = randomBytes(8 * 1024 * 1024);
  const app = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(payload);
  });
  const proxy = await startSidecar(simpleConfig(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/download`);
  const got = Buffer.from(await res.body.arrayBuffer());
  t.equal(got.length, payload.length);
  t.ok(got.equals(payload), 'identical bytes');
});

function* chunksOf(buffer: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buffer.length; i += size) yield buffer.subarray(i, i + size);
}
