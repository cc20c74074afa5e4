/**
 * Method and request-line tricks, asserting what the app receives: lower-case HTTP/2 methods
 * that used to slip past a `methods:` deny route, TRACE (echoes cookies and credentials),
 * and HTTP/0.9 requests, which Node's parser takes.
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
      - { name: no-delete, match: { prefix: /, methods: [DELETE] }, directResponse: { status: 403, body: forbidden } }
      - { name: all, match: { prefix: / }, cluster: app }`;
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0${routes}
  - name: secure
    address: 127.0.0.1:0
    tls: { cert: ${JSON.stringify(pki.serverCertPath)}, key: ${JSON.stringify(pki.serverKeyPath)} }${routes}
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`);
  t.teardown(() => proxy.close());
  const session = await connectH2(proxy.port('secure'), { ca: pki.ca });
  t.teardown(() => session.destroy());
  return { app, proxy, session };
}

t.test('HTTP/2 methods are case-sensitive: a lower-case spelling is refused, never routed past a deny rule', async (t) => {
  const { app, session } = await setup(t);
  for (const method of ['delete', 'Delete', 'dElEtE', 'get', 'post']) {
    const reply = await h2Request(session, { ':method': method, ':path': `/h2/${method}` });
    t.equal(reply.status, 400, `:method ${method} → 400`);
    t.equal(reply.headers['x-sidecar-error'], 'BAD_REQUEST');
  }
  const upper = await h2Request(session, { ':method': 'DELETE', ':path': '/h2/DELETE' });
  t.equal(upper.status, 403, 'DELETE meets the deny route');
  const get = await h2Request(session, { ':method': 'GET', ':path': '/h2/GET' });
  t.equal(get.status, 200, 'GET is served');
  t.same(app.received.map((r) => `${r.method} ${r.url}`), ['GET /h2/GET'], 'only the upper-case GET reached the app');
});

t.test('HTTP/1: Node\'s parser refuses lower-case methods before the sidecar sees them', async (t) => {
  const { app, proxy } = await setup(t);
  const answer = await rawExchange(proxy.port('main'), 'delete /h1 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n');
  t.same(answer.statuses, [400]);
  t.same(app.received, []);
});

t.test('TRACE is refused with 405 on both protocols', async (t) => {
  const { app, proxy, session } = await setup(t);
  const h1 = await rawExchange(proxy.port('main'), 'TRACE /trace HTTP/1.1\r\nHost: app\r\nCookie: session=secret\r\nConnection: close\r\n\r\n');
  t.same(h1.statuses, [405], 'HTTP/1 TRACE → 405');
  t.match(h1.text, /x-sidecar-error: METHOD_NOT_ALLOWED/);
  t.match(h1.text, /\r\nallow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n/i, 'the 405 says which methods are (RFC 9110 §15.5.6)');
  t.notMatch(h1.text, /session=secret/, 'the cookie is not echoed');
  const h2 = await h2Request(session, { ':method': 'TRACE', ':path': '/trace-h2', cookie: 'session=secret' });
  t.equal(h2.status, 405, 'HTTP/2 TRACE → 405');
  t.equal(h2.headers['x-sidecar-error'], 'METHOD_NOT_ALLOWED');
  t.equal(h2.headers.allow, 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS', 'with Allow on HTTP/2 as well');
  // HTTP/1 TRACK never reaches the sidecar (Node's parser knows no such method); HTTP/2 carries any token.
  const track = await h2Request(session, { ':method': 'TRACK', ':path': '/track-h2' });
  t.equal(track.status, 405, 'HTTP/2 TRACK → 405');
  t.equal(track.headers.allow, 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS', 'TRACK\'s 405 carries Allow too');
  t.same(app.received, [], 'no TRACE reached the app');
});

t.test('HTTP/0.9 requests are refused', async (t) => {
  const { app, proxy } = await setup(t);
  for (const bytes of ['GET /simple\r\n\r\n', 'GET /simple\r\nHost: app\r\n\r\n']) {
    const answer = await rawExchange(proxy.port('main'), bytes);
    t.same(answer.statuses, [400], `${JSON.stringify(bytes)} → 400`);
    t.match(answer.text, /HTTP\/0\.9/, 'the message says why');
    t.equal(answer.closedBy, 'server');
  }
  t.same(app.received, [], 'nothing reached the app');
});
