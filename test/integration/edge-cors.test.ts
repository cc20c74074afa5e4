/**
 * routes[].cors with the headers a browser sends and reads: preflights answered by the
 * sidecar (the app never sees them), Access-Control-* on actual responses replacing the
 * app's, Vary: Origin always, credentials never with "*".
 */
import t from 'tap';
import { request } from 'undici';
import { startSidecar } from '../helpers/sidecar';
import type { IncomingHttpHeaders, RequestListener } from 'node:http';
import { startUpstream } from '../helpers/upstream';

t.test('CORS', async (t) => {
  const seen: { method: string; headers: IncomingHttpHeaders }[] = [];
  let answer: RequestListener | undefined;
  const upstream = await startUpstream((req, res) => {
    seen.push({ method: req.method ?? '', headers: req.headers });
    if (answer !== undefined) answer(req, res);
    else res.end('app');
  });
  const app = {
    url: upstream.url,
    close: () => upstream.close(),
    requests: seen,
    respond: (handler: RequestListener | undefined) => (answer = handler),
  };
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: creds
        match: { prefix: /creds }
        cluster: app
        cors:
          allowOrigins: [https://app.example, "*.example.com"]
          allowMethods: [GET, PUT]
          allowHeaders: [content-type, x-api-key]
          exposeHeaders: [x-total-count]
          maxAge: 10m
          allowCredentials: true
      - { name: public, match: { prefix: / }, cluster: app, cors: { allowOrigins: ["*"] } }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const base = proxy.url();

  t.test('a preflight from an allowed origin', async (t) => {
    const before = app.requests.length;
    const res = await request(`${base}/creds/items`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type, x-api-key' },
    });
    await res.body.dump();
    t.equal(res.statusCode, 204);
    t.equal(res.headers['access-control-allow-origin'], 'https://app.example', 'the origin is echoed, not a pattern');
    t.equal(res.headers['access-control-allow-methods'], 'GET, PUT');
    t.equal(res.headers['access-control-allow-headers'], 'content-type, x-api-key');
    t.equal(res.headers['access-control-allow-credentials'], 'true');
    t.equal(res.headers['access-control-max-age'], '600');
    t.match(String(res.headers.vary), /Origin/);
    t.ok(res.headers['x-request-id'], 'the answer carries the request id');
    t.equal(app.requests.length, before, 'the app never sees a preflight');
  });

  t.test('subdomain patterns admit https subdomains only', async (t) => {
    const preflight = (origin: string) =>
      request(`${base}/creds/items`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
    const sub = await preflight('https://shop.example.com');
    await sub.body.dump();
    t.equal(sub.headers['access-control-allow-origin'], 'https://shop.example.com');
    for (const origin of ['http://shop.example.com', 'https://example.com', 'https://evilexample.com', 'https://shop.example.com.evil.test', 'null']) {
      const res = await preflight(origin);
      await res.body.dump();
      t.equal(res.statusCode, 204, `${origin}: answered`);
      t.equal(res.headers['access-control-allow-origin'], undefined, `${origin}: not allowed`);
      t.equal(res.headers['access-control-allow-credentials'], undefined, `${origin}: no credentials`);
    }
  });

  t.test('an actual request: the route\'s headers replace the app\'s', async (t) => {
    app.respond((_req, res) => {
      res.setHeader('access-control-allow-origin', '*');
      res.setHeader('access-control-allow-credentials', 'true');
      res.setHeader('x-total-count', '3');
      res.end('items');
    });
    const res = await request(`${base}/creds/items`, { headers: { origin: 'https://app.example', cookie: 'session=1' } });
    t.equal(await res.body.text(), 'items');
    t.equal(res.headers['access-control-allow-origin'], 'https://app.example');
    t.equal(res.headers['access-control-allow-credentials'], 'true');
    t.equal(res.headers['access-control-expose-headers'], 'x-total-count');
    t.match(String(res.headers.vary), /Origin/);
    t.equal(app.requests.at(-1)?.headers.origin, 'https://app.example', 'the app still gets the Origin');

    const stranger = await request(`${base}/creds/items`, { headers: { origin: 'https://evil.test' } });
    await stranger.body.dump();
    t.equal(stranger.headers['access-control-allow-origin'], undefined, 'the app\'s "*" is not relayed to a stranger');
    t.equal(stranger.headers['access-control-allow-credentials'], undefined);
    t.match(String(stranger.headers.vary), /Origin/, 'Vary: Origin also when the origin is refused');

    const none = await request(`${base}/creds/items`);
    await none.body.dump();
    t.match(String(none.headers.vary), /Origin/, 'Vary: Origin on a request without Origin (a cache must not reuse it)');
    app.respond(undefined);
  });

  t.test('"*" without credentials', async (t) => {
    const res = await request(`${base}/public`, { headers: { origin: 'https://anyone.test' } });
    await res.body.dump();
    t.equal(res.headers['access-control-allow-origin'], '*');
    t.equal(res.headers['access-control-allow-credentials'], undefined, 'never credentials with *');
    const pre = await request(`${base}/public`, { method: 'OPTIONS', headers: { origin: 'https://anyone.test', 'access-control-request-method': 'POST' } });
    await pre.body.dump();
    t.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD, POST', 'the default methods');
  });

  t.test('an OPTIONS without Access-Control-Request-Method is the app\'s', async (t) => {
    const before = app.requests.length;
    const res = await request(`${base}/public`, { method: 'OPTIONS', headers: { origin: 'https://anyone.test' } });
    await res.body.dump();
    t.equal(app.requests.length, before + 1, 'forwarded');
    t.equal(res.headers['access-control-allow-origin'], '*');
  });
});
