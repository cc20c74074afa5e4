/**
 * An HTTP/2 response whose trailers reach the sidecar while the client is not reading (a
 * gRPC server stream to a slow client): every byte of the body must still reach the client,
 * then the trailers. undici 7's HTTP/2 client completed the request on the trailers and dropped
 * the body it still held for a paused stream (a server stream lost ~1 000 of 10 000 messages
 * with status OK); the sidecar's own HTTP/2 client ends a response only after its body.
 */

import { once } from 'node:events';
import http2 from 'node:http2';
import t from 'tap';
import { listenH2App } from '../helpers/h2-app';
import { startSidecarFor } from '../helpers/sidecar';

// 48 KiB: more than the client (16 KiB window) and the sidecar's response buffer take, less than one
// HTTP/2 stream window, so the app can send all of it and its trailers while the client is not reading.
const CHUNKS = 48;
const CHUNK = Buffer.alloc(1024, 'x');

t.test('trailers that arrive while the client is not reading come after the whole body', async (t) => {
  let trailersProcessed: () => void = () => {};
  const processed = new Promise<void>((resolve) => (trailersProcessed = resolve));
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
      stream.sendTrailers({ 'x-chunks': String(CHUNKS) });
      // The sidecar acknowledges the PING after it has read every frame before it, the trailers included.
      stream.session?.ping(() => trailersProcessed());
    });
    for (let i = 0; i < CHUNKS; i++) stream.write(CHUNK);
    stream.end();
  });
  const app = await listenH2App(server);
  const proxy = await startSidecarFor(t, app, '', 'protocol: http2', 'protocols: [http1, h2c]');

  // A small window: the client holds 16 KiB, the sidecar's response fills, the sidecar stops reading the app.
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`, { settings: { initialWindowSize: 16384 } });
  t.teardown(() => session.close());
  const stream = session.request({ ':method': 'GET', ':path': '/stream' });
  stream.pause();
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  t.equal(headers[':status'], 200);
  await processed;

  let received = 0;
  let trailers: http2.IncomingHttpHeaders | undefined;
  stream.on('trailers', (fields: http2.IncomingHttpHeaders) => (trailers = fields));
  stream.on('data', (chunk: Buffer) => (received += chunk.length));
  stream.resume();
  await once(stream, 'end');
  t.equal(received, CHUNKS * CHUNK.length, 'every byte of the body arrived');
  t.equal(trailers?.['x-chunks'], String(CHUNKS), 'then the trailers');
});
