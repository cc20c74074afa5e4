import t from 'tap';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';

// The demo app is plain JavaScript (read by newcomers); its JSDoc gives these types.
const { createDemoApp } = require('../../examples/app/server.js') as {
  createDemoApp: (options?: { log?: boolean }) => http.Server;
};

interface Json {
  [key: string]: unknown;
}

async function startApp(t: { teardown: (fn: () => unknown) => void }) {
  const server = createDemoApp({ log: false });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  const dispatcher = new Agent({ connections: 16 });
  t.teardown(async () => {
    await dispatcher.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const call = async (
    path: string,
    opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
  ) => {
    const res = await request(origin + path, { dispatcher, method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  };
  const json = async (...args: Parameters<typeof call>) => {
    const res = await call(...args);
    return { ...res, body: JSON.parse(res.text) as Json };
  };
  return { server, port, origin, call, json };
}

t.test('GET / shows the headers the sidecar adds', async (t) => {
  const app = await startApp(t);
  const res = await app.json('/', {
    headers: {
      'x-request-id': 'req-1',
      'x-forwarded-for': '10.1.2.3',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'api.example.com',
      'x-sidecar-attempt': '2',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    },
  });
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /application\/json/);
  t.same(res.body, {
    service: 'demo-app',
    message: 'hello from the app behind the sidecar',
    headers: {
      'x-request-id': 'req-1',
      'x-forwarded-for': '10.1.2.3',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'api.example.com',
      'x-sidecar-attempt': '2',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    },
  });

  const bare = await app.json('/');
  t.equal((bare.body.headers as Json)['x-request-id'], null, 'a header not sent is null');

  const post = await app.json('/', { method: 'POST', body: 'x' });
  t.equal(post.status, 405);
  t.equal(post.headers.allow, 'GET, HEAD');
});

t.test('/echo returns method, url, headers and body', async (t) => {
  const app = await startApp(t);
  const res = await app.json('/echo?a=1&b=two', {
    method: 'PUT',
    headers: { 'content-type': 'text/plain', 'x-custom': 'yes' },
    body: 'hello body',
  });
  t.equal(res.status, 200);
  t.equal(res.body.method, 'PUT');
  t.equal(res.body.url, '/echo?a=1&b=two');
  t.equal((res.body.headers as Json)['x-custom'], 'yes');
  t.equal((res.body.headers as Json)['content-type'], 'text/plain');
  t.equal(res.body.body, 'hello body');
  t.equal(res.body.bodyLength, 10);
  t.equal(res.body.bodySha256, createHash('sha256').update('hello body').digest('hex'));

  const get = await app.json('/echo');
  t.equal(get.body.method, 'GET');
  t.equal(get.body.body, '');
  t.equal(get.body.bodyLength, 0);
});

t.test('/echo reports length and sha256 for bodies over 1 MiB', async (t) => {
  const app = await startApp(t);
  const big = Buffer.alloc(1024 * 1024 + 1, 'a');
  const res = await app.json('/echo', { method: 'POST', body: big });
  t.equal(res.status, 200);
  t.equal(res.body.body, null);
  t.equal(res.body.bodyLength, big.length);
  t.equal(res.body.bodySha256, createHash('sha256').update(big).digest('hex'));

  const exact = Buffer.alloc(1024 * 1024, 'b');
  const atLimit = await app.json('/echo', { method: 'POST', body: exact });
  t.equal((atLimit.body.body as string).length, exact.length, 'exactly 1 MiB is still echoed as text');
});

t.test('/slow answers after the delay', async (t) => {
  const app = await startApp(t);
  const started = performance.now();
  const res = await app.json('/slow?ms=60');
  t.equal(res.status, 200);
  t.same(res.body, { sleptMs: 60 });
  t.ok(performance.now() - started >= 55, 'waited about 60 ms');

  t.equal((await app.call('/slow?ms=soon')).status, 400);
  t.equal((await app.call('/slow?ms=-1')).status, 400);
});

t.test('/slow stops its timer when the client goes away', async (t) => {
  const app = await startApp(t);
  const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

  // A raw socket, so that no client library's timers are counted.
  const arrived = once(app.server, 'request') as Promise<[http.IncomingMessage, http.ServerResponse]>;
  const socket = net.connect(app.port, '127.0.0.1');
  socket.write('GET /slow?ms=60000 HTTP/1.1\r\nhost: x\r\n\r\n');
  const [, res] = await arrived;
  await new Promise((resolve) => setImmediate(resolve));
  const whileWaiting = timers();

  const closed = once(res, 'close');
  socket.destroy();
  await closed;
  t.equal(res.writableFinished, false, 'no response was sent');
  t.equal(timers(), whileWaiting - 1, 'the 60 s timer is gone');
});

t.test('/status/:code answers that status for any method', async (t) => {
  const app = await startApp(t);
  const teapot = await app.json('/status/418');
  t.equal(teapot.status, 418);
  t.same(teapot.body, { status: 418, message: "I'm a Teapot" });

  const post = await app.json('/status/503', { method: 'POST', body: '{}' });
  t.equal(post.status, 503);
  t.equal(post.body.status, 503);

  const empty = await app.call('/status/204', { method: 'DELETE' });
  t.equal(empty.status, 204);
  t.equal(empty.text, '');

  t.equal((await app.call('/status/abc')).status, 400);
  t.equal((await app.call('/status/99')).status, 400);
  t.equal((await app.call('/status/600')).status, 400);
});

t.test('/flaky fails N times per key, then succeeds', async (t) => {
  const app = await startApp(t);
  const a1 = await app.json('/flaky?fail=2&key=a');
  const a2 = await app.json('/flaky?fail=2&key=a');
  const b1 = await app.json('/flaky?fail=2&key=b');
  const a3 = await app.json('/flaky?fail=2&key=a');
  t.same([a1.status, a2.status, b1.status, a3.status], [503, 503, 503, 200]);
  t.match(a3.body, { key: 'a', attempt: 3, fail: 2, ok: true });

  // Without a key, the request id is the key: one client request retried by the sidecar.
  const headers = { 'x-request-id': 'rid-7', 'x-sidecar-attempt': '1' };
  const r1 = await app.json('/flaky?fail=1', { headers });
  const r2 = await app.json('/flaky?fail=1', { headers: { ...headers, 'x-sidecar-attempt': '2' } });
  t.equal(r1.status, 503);
  t.equal(r2.status, 200);
  t.match(r2.body, { key: 'rid-7', attempt: 2, sidecarAttempt: '2' });

  const d1 = await app.call('/flaky');
  const d2 = await app.json('/flaky');
  t.equal(d1.status, 503, 'fail defaults to 1');
  t.match(d2, { status: 200, body: { key: 'default' } }, "the key defaults to 'default'");

  const custom = await app.call('/flaky?fail=1&key=c&status=500');
  t.equal(custom.status, 500);
  t.equal((await app.call('/flaky?fail=0&key=z')).status, 200);
  t.equal((await app.call('/flaky?fail=x')).status, 400);
  t.equal((await app.call('/flaky?status=200')).status, 400);
});

t.test('/flaky forgets the oldest keys beyond 10 000', async (t) => {
  const app = await startApp(t);
  t.equal((await app.call('/flaky?fail=1&key=first')).status, 503);
  t.equal((await app.call('/flaky?fail=1&key=kept')).status, 503);
  let next = 0;
  const worker = async () => {
    while (next < 9_999) {
      const i = next++;
      await app.call(`/flaky?fail=0&key=k${i}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  // 10 001 keys were seen: 'first' was the oldest and is forgotten, 'kept' is still known.
  t.equal((await app.call('/flaky?fail=1&key=kept')).status, 200);
  t.equal((await app.call('/flaky?fail=1&key=first')).status, 503, 'counted from 1 again');
});

t.test('/healthz, unknown paths and keep-alive', async (t) => {
  const app = await startApp(t);
  const health = await app.call('/healthz');
  t.equal(health.status, 200);
  t.equal(health.text, 'ok');

  const missing = await app.json('/nope');
  t.equal(missing.status, 404);
  t.equal(missing.body.error, 'NOT_FOUND');

  t.equal(app.server.keepAliveTimeout, 5_000);
});
