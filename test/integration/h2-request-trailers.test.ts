/**
 * Request trailers, client → app over an HTTP/2 cluster (src/upstream/http2-pool.ts): from an
 * HTTP/2 client (trailing HEADERS frame) and from an HTTP/1.1 client (chunked trailer), the
 * body whole before them. Hop-by-hop and framing fields never go as trailers.
 */

import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import t from 'tap';
import { listenH2App } from '../helpers/h2-app';
import { startSidecarFor } from '../helpers/sidecar';

interface Seen {
  body: string;
  trailers: http2.IncomingHttpHeaders | undefined;
}

async function startTrailerApp(t: { teardown(fn: () => Promise<void>): void }): Promise<{ seen: Seen[]; proxyPort: () => number; proxyUrl: () => string }> {
  const seen: Seen[] = [];
  const server = http2.createServer();
  server.on('stream', (stream) => {
    const entry: Seen = { body: '', trailers: undefined };
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (entry.body += chunk));
    stream.on('trailers', (trailers: http2.IncomingHttpHeaders) => (entry.trailers = trailers));
    stream.on('end', () => {
      seen.push(entry);
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
  });
  const app = await listenH2App(server);
  const proxy = await startSidecarFor(t, app, '', 'protocol: http2', 'protocols: [http1, h2c]');
  return { seen, proxyPort: () => proxy.port(), proxyUrl: () => proxy.url() };
}

t.test('an HTTP/2 request with trailers: its body arrives whole, then its trailers, and it is answered', async (t) => {
  const { seen, proxyPort } = await startTrailerApp(t);
  const proxy = { port: proxyPort };
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  t.teardown(() => session.close());
  const stream = session.request({ ':method': 'POST', ':path': '/with-trailers', 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123' }));
  stream.write('part one, ');
  stream.end('part two');
  stream.setEncoding('utf8');
  let answer = '';
  stream.on('data', (chunk: string) => (answer += chunk));
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  await once(stream, 'end');

  t.equal(headers[':status'], 200, 'answered');
  t.equal(answer, 'ok');
  t.equal(seen.length, 1, 'the app received the request');
  t.equal(seen[0]?.body, 'part one, part two', 'its body whole');
  t.equal(seen[0]?.trailers?.['x-checksum'], 'abc123', 'the request trailers reached the app');
});

t.test('an HTTP/1.1 chunked request with trailers: the HTTP/2 app gets its body whole, then its trailers', async (t) => {
  const { seen, proxyUrl } = await startTrailerApp(t);
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${proxyUrl()}/chunked`, { method: 'POST', agent: false, headers: { 'content-type': 'text/plain', trailer: 'x-checksum' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.write('chunk one, ');
    req.write('chunk two');
    // A field RFC 9110 §6.5.1 keeps out of trailers (authentication) is never sent as one.
    req.addTrailers({ 'x-checksum': 'def456', authorization: 'Bearer late' });
    req.end();
  });
  t.equal(answer.status, 200, 'answered');
  t.equal(answer.body, 'ok');
  t.equal(seen.length, 1, 'the app received the request');
  t.equal(seen[0]?.body, 'chunk one, chunk two', 'its body whole');
  t.equal(seen[0]?.trailers?.['x-checksum'], 'def456', 'the chunked trailer reached the app as an HTTP/2 trailer');
  t.equal(seen[0]?.trailers?.authorization, undefined, 'an authorization trailer was left out');
});

t.test('a request without trailers ends its stream plainly: the app sees none', async (t) => {
  const { seen, proxyUrl } = await startTrailerApp(t);
  const response = await fetch(`${proxyUrl()}/plain`, { method: 'POST', body: 'just a body' });
  t.equal(response.status, 200);
  t.equal(await response.text(), 'ok');
  t.equal(seen[0]?.body, 'just a body');
  t.equal(seen[0]?.trailers, undefined, 'no trailers');
});
