/**
 * The `redirect` route action (HTTP to HTTPS, host, port, path, prefixRewrite; the query
 * always kept) and listeners[].escapedSlashes in its three modes, attacked with `..%2F` and
 * `%5C` paths against a route that denies a prefix.
 */
import t from 'tap';
import { request } from 'undici';
import { startSidecar } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';
import { runCurl } from '../helpers/tls-clients';
import { rawExchange } from '../helpers/raw';

t.test('redirect routes', async (t) => {
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: old, match: { prefix: /old/ }, redirect: { prefixRewrite: /new/, status: 301 } }
      - { name: moved, match: { path: /moved }, redirect: { host: www.example.com, path: /here } }
      - { name: port, match: { path: /port }, redirect: { port: 8443 } }
      - { name: https, match: { prefix: / }, redirect: { scheme: https } }
`);
  t.teardown(() => proxy.close());
  const port = proxy.port();
  const base = proxy.url();
  const get = async (path: string, host?: string) => {
    const res = await request(`${base}${path}`, { headers: host === undefined ? {} : { host } });
    await res.body.dump();
    return { status: res.statusCode, location: res.headers.location, sidecarError: res.headers['x-sidecar-error'] };
  };

  t.same(await get('/pay?x=1&y=%2F', 'shop.example:80'), { status: 308, location: 'https://shop.example/pay?x=1&y=%2F', sidecarError: undefined },
    'HTTP → HTTPS: the default port of the new scheme, the query kept as sent');
  t.same((await get('/a/b', `127.0.0.1:${port}`)).location, 'https://127.0.0.1/a/b', 'a changed scheme drops the old port');
  t.same((await get('/old/x/y?q', 'shop.example')).location, 'http://shop.example/new/x/y?q', 'prefixRewrite; the status as configured');
  t.equal((await get('/old/x', 'shop.example')).status, 301);
  t.same((await get('/moved?k=v', 'shop.example:8080')).location, 'http://www.example.com/here?k=v', 'host and path replaced; another host drops the port');
  t.same((await get('/port', 'shop.example:8080')).location, 'http://shop.example:8443/port');
  t.same((await get('/a/./b/../c', 'shop.example')).location, 'https://shop.example/a/c', 'the normalised path');
  const line = proxy.accessLog.find((l) => l.route === 'https');
  t.equal(line?.status, 308, 'the redirect is logged with its route');

  // HTTP/1.0 without Host: there is no host to send the client to.
  const noHost = await rawExchange(port, 'GET /a HTTP/1.0\r\n\r\n');
  t.same(noHost.statuses, [400], 'no Host and no redirect host: 400, never "https:///a"');
  t.match(noHost.text, /names no host/);

  const curl = await runCurl(['-s', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-H', 'Host: api.example', `${base}/v1/items?id=7`]);
  t.equal(curl.stdout, '308 https://api.example/v1/items?id=7', 'curl reads the redirect');
});

t.test('escaped slashes', async (t) => {
  const paths: string[] = [];
  const app = await startUpstream((req, res) => {
    paths.push(req.url ?? '');
    res.end(`app:${req.url}`);
  });
  const routes = `
    routes:
      - { name: admin, match: { prefix: /admin }, directResponse: { status: 403, body: denied } }
      - { name: all, match: { prefix: / }, cluster: app }`;
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: keep
    address: 127.0.0.1:0${routes}
  - name: reject
    address: 127.0.0.1:0
    escapedSlashes: reject${routes}
  - name: redirect
    address: 127.0.0.1:0
    escapedSlashes: unescape-and-redirect${routes}
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const attacks = ['/public/..%2Fadmin/users', '/public/..%2fadmin/users', '/public/..%5Cadmin/users', '/public%2F..%2F..%2Fadmin'];
  // Sent raw: a client library would normalise the path first.
  const send = async (listener: string, path: string) => {
    const result = await runCurl(['-s', '--path-as-is', '-o', '-', '-w', '\\n%{http_code} %{redirect_url}', `${proxy.url(listener)}${path}`]);
    const [body, tail] = result.stdout.split('\n');
    const [status, location] = tail.split(' ');
    return { body, status: Number(status), location };
  };

  t.test('keep: forwarded as sent, read by the routes as one segment', async (t) => {
    const res = await send('keep', '/public/..%2Fadmin/users');
    t.equal(res.status, 200);
    t.equal(res.body, 'app:/public/..%2Fadmin/users', 'the app gets the escape as sent (upper-cased)');
    const lower = await send('keep', '/a%2fb');
    t.equal(lower.body, 'app:/a%2Fb');
  });

  t.test('reject: 400 for every spelling', async (t) => {
    const before = paths.length;
    for (const path of attacks) {
      const res = await send('reject', path);
      t.equal(res.status, 400, `${path}: refused`);
      t.match(res.body, /escapedSlashes: reject/);
    }
    t.equal(paths.length, before, 'the app saw none');
    const plain = await send('reject', '/public/a%20b');
    t.equal(plain.status, 200, 'other escapes are forwarded');
  });

  t.test('unescape-and-redirect: to the path the app would read, which then meets the routes', async (t) => {
    const before = paths.length;
    t.same(await send('redirect', '/public/..%2Fadmin/users?x=1'), { body: '', status: 308, location: `${proxy.url('redirect')}/admin/users?x=1` });
    t.equal((await send('redirect', '/public/..%5Cadmin/users')).location, `${proxy.url('redirect')}/admin/users`, '%5C is a slash too');
    t.equal((await send('redirect', '/public%2F..%2F..%2Fadmin')).location, `${proxy.url('redirect')}/admin`, 'dot segments cannot climb above the root');
    t.equal((await send('redirect', '/%2F%2Fevil.example/x')).location, `${proxy.url('redirect')}/evil.example/x`, 'never a scheme-relative //host Location');
    t.equal(paths.length, before, 'the app saw none of them');
    // Following the redirect lands on the admin route, which denies it.
    const followed = await runCurl(['-s', '-L', '--path-as-is', '-o', '-', '-w', '\\n%{http_code}', `${proxy.url('redirect')}/public/..%2Fadmin/users`]);
    t.equal(followed.stdout, 'denied\n403', 'the client that follows meets the admin route');
    t.equal(paths.length, before, 'and the app still saw nothing');
  });
});
