/**
 * Host and path spellings that name a denied resource to the app but not to a naive router:
 * a trailing dot, case and port on the Host (HTTP/1 Host and HTTP/2 :authority), `;` path
 * parameters (servlet containers read `/x/..;/admin` as `/admin`) and upper-case paths.
 * Asserts the status the client gets and what the app receives.
 */
import type http2 from 'node:http2';
import t, { type Test } from 'tap';
import { makeTestPki } from '../helpers/certs';
import { rawExchange } from '../helpers/raw';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { connectH2, h2Request } from '../helpers/tls-clients';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream';

async function setup(t: Test): Promise<{ app: RecordingUpstream; proxy: RunningSidecar; session: http2.ClientHttp2Session }> {
  const pki = await makeTestPki(t.testdir());
  const app = await startRecordingUpstream();
  t.teardown(() => app.close());
  const routes = `
    routes:
      - { name: internal, match: { prefix: /, host: internal.example.com }, directResponse: { status: 403, body: internal } }
      - { name: admin, match: { prefix: /admin }, directResponse: { status: 403, body: admin } }
      - { name: exact, match: { path: /private }, directResponse: { status: 403, body: private } }
      - { name: secret, match: { regex: "^/secret/[a-z]+$" }, directResponse: { status: 403, body: secret } }
      - { name: all, match: { prefix: / }, cluster: app }`;
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0${routes}
  - name: secure
    address: 127.0.0.1:0
    tls: { cert: ${JSON.stringify(pki.serverCertPath)}, key: ${JSON.stringify(pki.serverKeyPath)} }${routes}
  - name: parameters
    address: 127.0.0.1:0
    pathMatching: { rejectPathParameters: false }${routes}
  - name: anycase
    address: 127.0.0.1:0
    pathMatching: { caseInsensitive: true }${routes}
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`);
  t.teardown(() => proxy.close());
  const session = await connectH2(proxy.port('secure'), { ca: pki.ca });
  t.teardown(() => session.destroy());
  return { app, proxy, session };
}

function get(target: string, host: string): string {
  return `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
}

t.test('every spelling of a denied host meets its route; the app receives the normalised host', async (t) => {
  const { app, proxy, session } = await setup(t);
  const port = proxy.port('main');
  for (const host of ['internal.example.com', 'internal.example.com.', 'Internal.Example.COM.', 'internal.example.com.:8080', 'internal.example.com:', 'INTERNAL.EXAMPLE.COM.:0080']) {
    const answer = await rawExchange(port, get(`/h1/${host}`, host));
    t.same(answer.statuses, [403], `Host: ${host} → 403`);
  }
  for (const host of ['internal.example.com..', '.', 'internal.example.com:99999']) {
    const answer = await rawExchange(port, get('/h1/bad', host));
    t.same(answer.statuses, [400], `Host: ${host} → 400`);
  }
  for (const authority of ['internal.example.com.', 'Internal.Example.Com.:443']) {
    const reply = await h2Request(session, { ':path': '/h2', ':authority': authority });
    t.equal(reply.status, 403, `:authority ${authority} → 403`);
  }
  t.same(app.received, [], 'no spelling reached the app');

  const served = await rawExchange(port, get('/served', 'Public.Example.COM.:080'));
  t.same(served.statuses, [200]);
  const atApp = app.received.find((r) => r.url === '/served');
  t.equal(atApp?.headers.host, 'public.example.com:80', 'the app receives the normalised Host');
  t.equal(atApp?.headers['x-forwarded-host'], 'public.example.com:80', 'and X-Forwarded-Host');
  const servedH2 = await h2Request(session, { ':path': '/served-h2', ':authority': 'Public.Example.COM.' });
  t.equal(servedH2.status, 200);
  t.equal(app.received.find((r) => r.url === '/served-h2')?.headers.host, 'public.example.com', 'HTTP/2: the normalised :authority is the Host');
  const mismatched = await h2Request(session, { ':path': '/mismatch', ':authority': 'public.example.com', host: 'internal.example.com' });
  t.equal(mismatched.status, 400, 'HTTP/2: a Host that names another authority than :authority → 400');
});

t.test('path parameters are refused by default; with rejectPathParameters: false only dot segments with parameters are', async (t) => {
  const { app, proxy } = await setup(t);
  for (const target of ['/public/..;/admin', '/public/.;/admin', '/admin;x=1', '/public;jsessionid=1', '/public/x;a=b/y']) {
    const answer = await rawExchange(proxy.port('main'), get(target, 'app'));
    t.same(answer.statuses, [400], `${target} → 400 by default`);
  }
  t.same(app.received, [], 'none reached the app');

  for (const target of ['/public/..;/admin', '/public/.;/admin', '/public/%2e%2e;/admin', '/public/..;x=1/admin']) {
    const answer = await rawExchange(proxy.port('parameters'), get(target, 'app'));
    t.same(answer.statuses, [400], `${target} → 400 even when parameters are allowed`);
  }
  const admin = await rawExchange(proxy.port('parameters'), get('/admin;x=1', 'app'));
  t.same(admin.statuses, [403], '/admin;x=1 still meets the /admin prefix');
  const kept = await rawExchange(proxy.port('parameters'), get('/public;jsessionid=1/x', 'app'));
  t.same(kept.statuses, [200]);
  t.same(app.received.map((r) => r.url), ['/public;jsessionid=1/x'], 'only the harmless parameter reached the app, as written');
});

t.test('caseInsensitive: routes ignore case, the app receives the path as sent', async (t) => {
  const { app, proxy } = await setup(t);
  for (const target of ['/ADMIN', '/Admin/users', '/aDmIn', '/PRIVATE', '/Private', '/SECRET/ABC']) {
    const answer = await rawExchange(proxy.port('anycase'), get(target, 'app'));
    t.same(answer.statuses, [403], `${target} → 403 with caseInsensitive`);
  }
  const mixed = await rawExchange(proxy.port('anycase'), get('/Public/MixedCase?Q=A', 'app'));
  t.same(mixed.statuses, [200]);
  t.same(app.received.map((r) => r.url), ['/Public/MixedCase?Q=A'], 'the path is forwarded unchanged');

  const near = await rawExchange(proxy.port('anycase'), get('/Private/x', 'app'));
  t.same(near.statuses, [200], 'a path route still matches the whole path only');
  t.same(app.received.map((r) => r.url), ['/Public/MixedCase?Q=A', '/Private/x']);

  for (const target of ['/ADMIN', '/PRIVATE', '/SECRET/ABC']) {
    const strict = await rawExchange(proxy.port('main'), get(target, 'app'));
    t.same(strict.statuses, [200], `by default matching is case-sensitive (documented): ${target} is served`);
  }
});
