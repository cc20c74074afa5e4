/**
 * routes[].auth.basic (bcrypt htpasswd, re-read on change, a bad file keeps the last good
 * users) and routes[].auth.external (allow, deny with the service's own answer, timeout and
 * connection failure → 503 AUTH_UNAVAILABLE or a pass with failureMode: allow, cacheFor).
 */
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { request } from 'undici';
import { startSidecarWith } from '../helpers/sidecar';
import { captureLogger } from '../helpers/tls-clients';
import { closedPort, startUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';
import { openWs, refusedWs, startWsEchoApp } from '../helpers/websocket';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

t.test('Basic authentication', async (t) => {
  const dir = t.testdir();
  const usersFile = path.join(dir, 'users.htpasswd');
  await fsp.writeFile(usersFile, `# team\nalice:${bcrypt.hashSync('wonderland', 4)}\n\nbob:${bcrypt.hashSync('builder', 4)}\n`);
  const seen: IncomingHttpHeaders[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.headers);
    res.end('app');
  });
  const log = captureLogger();
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app, auth: { basic: { usersFile: ${JSON.stringify(usersFile)}, realm: staff } } }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app], { logger: log.logger });
  const call = async (authorization?: string) => {
    const res = await request(`${proxy.url()}/x`, { headers: authorization === undefined ? {} : { authorization } });
    await res.body.dump();
    return { status: res.statusCode, challenge: res.headers['www-authenticate'], error: res.headers['x-sidecar-error'] };
  };

  t.equal((await call(basic('alice', 'wonderland'))).status, 200, 'a right password');
  t.equal(seen.at(-1)?.authorization, undefined, 'the password never reaches the app');
  t.equal((await call(basic('alice', 'wonderland'))).status, 200, 'again (remembered)');
  for (const [what, header] of [
    ['none', undefined],
    ['wrong password', basic('alice', 'wrong')],
    ['unknown user', basic('mallory', 'wonderland')],
    ['another user\'s password', basic('bob', 'wonderland')],
    ['no colon', `Basic ${Buffer.from('alice').toString('base64')}`],
    ['bearer instead', 'Bearer abc'],
    ['empty', 'Basic '],
  ] as const) {
    const res = await call(header);
    t.equal(res.status, 401, `${what}: 401`);
    t.equal(res.challenge, 'Basic realm="staff", charset="UTF-8"', `${what}: the challenge`);
    t.equal(res.error, 'UNAUTHENTICATED');
  }

  // The file changes: carol is added, alice removed.
  await fsp.writeFile(usersFile, `carol:${bcrypt.hashSync('secret', 4)}\nbob:${bcrypt.hashSync('builder', 4)}\n`);
  await waitUntil(async () => (await call(basic('carol', 'secret'))).status === 200, 'the new user is admitted');
  t.equal((await call(basic('alice', 'wonderland'))).status, 401, 'the removed user is refused, remembered or not');

  // The file turns bad: the last good users stay.
  await fsp.writeFile(usersFile, 'carol:$apr1$abc$def\n');
  // Requests go on passing until the sidecar has read the bad file and said so.
  await waitUntil(async () => {
    t.equal((await call(basic('carol', 'secret'))).status, 200, 'an MD5 line does not replace the last good users');
    return log.lines.some((line) => line.msg.includes('not a bcrypt hash') && line.msg.includes('last good contents stay'));
  }, 'the bad file is reported');
  t.notOk(log.lines.some((line) => line.msg.includes('$apr1$')), 'the log never quotes a hash');
  t.equal((await call(basic('carol', 'wrong'))).status, 401);
});

t.test('external authorization', async (t) => {
  const asked: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
  const auth = await startUpstream((req, res) => {
    asked.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const token = req.headers.authorization;
    if (token === 'Bearer slow') return; // never answers
    if (token === 'Bearer verbose') {
      res.writeHead(401, { 'content-type': 'text/plain', connection: 'x-private', 'x-private': 'hop' }).end('n'.repeat(1024 * 1024));
      return;
    }
    if (token === 'Bearer good') {
      res.writeHead(200, { 'x-user-id': 'alice', 'x-internal': 'no' }).end('ok');
      return;
    }
    res.writeHead(403, { 'content-type': 'application/json', 'x-auth-reason': 'bad-token' }).end('{"denied":"by the auth service"}');
  });
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const app = await startUpstream((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    res.end('app');
  });
  const down = await closedPort();
  const external = (url: string, extra = '') =>
    `{ external: { url: ${url}, timeout: 300ms, pathPrefix: /check, requestHeaders: [authorization], responseHeaders: [x-user-id]${extra} } }`;
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: open, match: { prefix: /open }, cluster: app, auth: ${external(auth.url, ', failureMode: allow')} }
      - { name: down, match: { prefix: /down }, cluster: app, auth: ${external(`http://127.0.0.1:${down}`)} }
      - { name: cached, match: { prefix: /cached }, cluster: app, auth: ${external(auth.url, ', cacheFor: 1m')} }
      - { name: all, match: { prefix: / }, cluster: app, auth: ${external(`${auth.url}/v1/`)} }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app, auth]);
  const call = async (path: string, token: string, headers: Record<string, string> = {}, method = 'GET') => {
    const res = await request(`${proxy.url()}${path}`, { method: method as 'GET', headers: { authorization: `Bearer ${token}`, ...headers } });
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  };

  t.test('allowed', async (t) => {
    const res = await call('/orders/7?full=1', 'good', { 'x-user-id': 'forged', cookie: 'session=1' }, 'DELETE');
    t.equal(res.status, 200);
    const check = asked.at(-1);
    t.equal(check?.method, 'DELETE', 'the service is asked with the method');
    t.equal(check?.url, '/v1/check/orders/7?full=1', 'the URL\'s path, pathPrefix, the path and query');
    t.equal(check?.headers.authorization, 'Bearer good');
    t.equal(check?.headers.cookie, undefined, 'headers not listed are not sent');
    t.ok(check?.headers['x-request-id'], 'the request id is');
    const got = seen.at(-1);
    t.equal(got?.headers['x-user-id'], 'alice', 'the service\'s header, not the client\'s');
    t.equal(got?.headers['x-internal'], undefined, 'only the listed response headers');
    t.equal(got?.headers.authorization, 'Bearer good', 'the credentials are the app\'s too');
  });

  t.test('denied: the service\'s answer as it sent it', async (t) => {
    const before = seen.length;
    const res = await call('/orders', 'bad', { 'x-user-id': 'forged' });
    t.equal(res.status, 403);
    t.equal(res.body, '{"denied":"by the auth service"}');
    t.equal(res.headers['x-auth-reason'], 'bad-token');
    t.equal(res.headers['x-sidecar-error'], undefined, 'not a sidecar error');
    t.equal(seen.length, before, 'the app never saw it');
    const post = await request(`${proxy.url()}/orders`, { method: 'POST', headers: { authorization: 'Bearer bad' }, body: 'x'.repeat(200_000) });
    t.equal(post.statusCode, 403, 'a refused upload is answered');
    await post.body.dump();
  });

  t.test('a service that says too much', async (t) => {
    const res = await call('/orders', 'verbose');
    t.equal(res.status, 401);
    t.equal(res.body.length, 64 * 1024, 'the relayed body is cut at 64 KiB');
    t.equal(res.headers.connection === 'x-private', false, 'its Connection header is not relayed');
    t.equal(res.headers['x-private'], undefined, 'nor a header its Connection names');
  });

  t.test('no answer in time, no connection', async (t) => {
    const before = seen.length;
    const slow = await call('/orders', 'slow');
    t.equal(slow.status, 503);
    t.equal(slow.headers['x-sidecar-error'], 'AUTH_UNAVAILABLE');
    const refused = await call('/down/x', 'good');
    t.equal(refused.status, 503, 'connection refused');
    t.equal(refused.headers['x-sidecar-error'], 'AUTH_UNAVAILABLE');
    t.equal(seen.length, before, 'the app saw neither');
    const allowed = await call('/open/x', 'slow', { 'x-user-id': 'forged' });
    t.equal(allowed.status, 200, 'failureMode: allow lets it through');
    t.equal(seen.at(-1)?.headers['x-user-id'], undefined, 'without the client\'s copy of the service\'s headers');
  });

  t.test('cacheFor', async (t) => {
    const before = asked.length;
    t.equal((await call('/cached/a', 'good')).status, 200);
    t.equal((await call('/cached/a', 'good')).status, 200);
    t.equal(asked.length, before + 1, 'asked once');
    t.equal((await call('/cached/a', 'bad')).status, 403, 'other credentials are asked about');
    t.equal(asked.length, before + 2);
  });
});

t.test('WebSocket upgrades are authenticated', async (t) => {
  const dir = t.testdir();
  const usersFile = path.join(dir, 'users.htpasswd');
  await fsp.writeFile(usersFile, `alice:${bcrypt.hashSync('wonderland', 4)}\n`);
  const app = await startWsEchoApp();
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app, auth: { basic: { usersFile: ${JSON.stringify(usersFile)} } } }
clusters:
  - { name: app, endpoints: [{ url: ${app.upstream.url} }] }
`, [app]);
  const wsUrl = `${proxy.url().replace('http://', 'ws://')}/socket`;
  const refused = await refusedWs(wsUrl, { headers: { authorization: basic('alice', 'wrong') } });
  t.equal(refused.status, 401, 'a wrong password: no tunnel');
  t.match(String(refused.headers['www-authenticate']), /^Basic realm="all"/);
  t.equal(app.handshakes.length, 0, 'the app never saw the handshake');
  const ws = await openWs(wsUrl, { headers: { authorization: basic('alice', 'wonderland') } });
  ws.send('hi');
  const [echo] = (await once(ws, 'message')) as [Buffer];
  t.equal(String(echo), 'hi', 'the right password opens the tunnel');
  t.equal(app.handshakes[0]?.headers.authorization, undefined, 'the password does not reach the app');
  ws.close();
});
