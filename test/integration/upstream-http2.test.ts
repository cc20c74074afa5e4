/**
 * clusters[].protocol: http2 to a node:http2 app over h2c: the app sees HTTP/2, concurrent
 * requests share a bounded number of connections, and trailers reach the client (HTTP/2
 * and chunked HTTP/1.1).
 */

import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { listenH2App, startSidecarToH2App, type ListeningH2App } from '../helpers/h2-app';

interface H2App extends ListeningH2App {
  /** Connections (sessions) the app accepted. */
  readonly sessions: number;
}

async function startH2App(handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void): Promise<H2App> {
  const server = http2.createServer(handler);
  let sessions = 0;
  server.on('session', () => sessions++);
  const app = await listenH2App(server);
  return {
    ...app,
    get sessions() {
      return sessions;
    },
  };
}

t.test('the app receives HTTP/2; 50 concurrent requests without a body share one connection', async (t) => {
  const app = await startH2App((req, res) => {
    // Held until all are in, so that they are concurrent.
    setTimeout(() => res.end(`${req.httpVersion} ${req.headers[':authority']} ${req.url}`), 50);
  });
  const proxy = await startSidecarToH2App(t, app);
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  t.teardown(() => session.close());
  // The first request opens the connection (requests queued while it connects would each open one).
  const first = session.request({ ':path': '/warm' });
  first.resume();
  await once(first, 'end');
  const bodies = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const stream = session.request({ ':path': `/r${i}` });
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => (body += c));
      await once(stream, 'end');
      return body;
    }),
  );
  t.match(bodies[7], /^2\.0 127\.0\.0\.1:\d+ \/r7$/, 'HTTP/2 to the app, with the client\'s authority and path');
  t.equal(new Set(bodies).size, 50, 'each request got its own answer');
  t.equal(app.sessions, 1, `the streams were multiplexed over one connection (${app.sessions})`);
});

t.test('response trailers reach an HTTP/2 client and a chunked HTTP/1.1 client', async (t) => {
  const app = await startH2App((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('body');
    res.addTrailers({ 'x-checksum': 'abc123' });
    res.end();
  });
  const proxy = await startSidecarToH2App(t, app);
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  t.teardown(() => session.close());
  const stream = session.request({ ':path': '/t' });
  let body = '';
  stream.setEncoding('utf8');
  stream.on('data', (c: string) => (body += c));
  const ended = once(stream, 'end');
  const [trailers] = (await once(stream, 'trailers')) as [http2.IncomingHttpHeaders];
  await ended;
  t.equal(body, 'body');
  t.equal(trailers['x-checksum'], 'abc123', 'HTTP/2 client: trailing HEADERS frame');

  const h1 = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(`${proxy.url()}/t`, resolve);
    req.on('error', reject);
  });
  h1.resume();
  await once(h1, 'end');
  t.equal(h1.headers['transfer-encoding'], 'chunked');
  t.equal(h1.trailers['x-checksum'], 'abc123', 'HTTP/1.1 client: chunked trailer');
});

t.test('an app that is not HTTP/2 fails the attempt: 502, and the sidecar lives on', async (t) => {
  // An HTTP/1.1-only app behind a cluster that says http2: the preface is garbage to it.
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const app: H2App = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessions: 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const proxy = await startSidecarToH2App(t, app);
  const response = await fetch(`${proxy.url()}/x`);
  t.equal(response.status, 502);
  t.match(response.headers.get('x-sidecar-error'), /^UPSTREAM_(RESET|PROTOCOL_ERROR)$/);
  await response.arrayBuffer();
});
