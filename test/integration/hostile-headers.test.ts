/**
 * Header tricks over raw HTTP/1 bytes and HTTP/2 frames, asserting what the app receives:
 * underscore spellings of headers the sidecar owns (X_Forwarded_For reads as X-Forwarded-For
 * to CGI/WSGI apps), more headers than the listener allows (Node's own cap used to drop the
 * framing header silently), and a Connection header that nominates Host.
 */
import http2 from 'node:http2';
import t, { type Test } from 'tap';
import { makeTestPki } from '../helpers/certs';
import { parsePrometheusText } from '../helpers/prometheus';
import { rawExchange } from '../helpers/raw';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { connectH2, h2Request, httpsRequest } from '../helpers/tls-clients';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream';

async function setup(t: Test): Promise<{ app: RecordingUpstream; proxy: RunningSidecar; session: http2.ClientHttp2Session; ca: Buffer }> {
  const pki = await makeTestPki(t.testdir());
  const app = await startRecordingUpstream();
  t.teardown(() => app.close());
  const routes = `
    routes:
      - { name: all, match: { prefix: / }, cluster: app }`;
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0${routes}
  - name: secure
    address: 127.0.0.1:0
    tls: { cert: ${JSON.stringify(pki.serverCertPath)}, key: ${JSON.stringify(pki.serverKeyPath)} }${routes}
  - name: rejecting
    address: 127.0.0.1:0
    headersWithUnderscores: reject${routes}
  - name: allowing
    address: 127.0.0.1:0
    headersWithUnderscores: allow${routes}
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`);
  t.teardown(() => proxy.close());
  const session = await connectH2(proxy.port('secure'), { ca: pki.ca });
  t.teardown(() => session.destroy());
  return { app, proxy, session, ca: pki.ca };
}

function underscoredNames(rawHeaders: readonly string[]): string[] {
  return rawHeaders.filter((name, i) => i % 2 === 0 && name.includes('_'));
}

const FORGED =
  'X_Forwarded_For: 6.6.6.6\r\n' +
  'X_Forwarded_Client_Cert: Hash=00;Subject="CN=admin"\r\n' +
  'X_Custom: 1\r\n';

t.test('headers whose names hold "_" are dropped by default, refused or passed on as configured', async (t) => {
  const { app, proxy, session } = await setup(t);

  const dropped = await rawExchange(proxy.port('main'), `GET /dropped HTTP/1.1\r\nHost: app\r\n${FORGED}Connection: close\r\n\r\n`);
  t.same(dropped.statuses, [200], 'the request itself is served');
  const atApp = app.received.find((r) => r.url === '/dropped');
  t.same(underscoredNames(atApp?.rawHeaders ?? ['missing_request']), [], 'no underscored header reached the app');
  t.equal(atApp?.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the peer, as the sidecar wrote it');
  t.equal(atApp?.headers['x-forwarded-client-cert'], undefined, 'no client certificate claim on a plain listener');

  const h2 = await h2Request(session, { ':path': '/dropped-h2', x_forwarded_for: '6.6.6.6', 'x_forwarded_client_cert': 'Subject="CN=admin"' });
  t.equal(h2.status, 200);
  t.same(underscoredNames(app.received.find((r) => r.url === '/dropped-h2')?.rawHeaders ?? ['missing_request']), [], 'HTTP/2: dropped too');

  const metrics = parsePrometheusText(await (await fetch(`${proxy.adminUrl}/metrics`)).text());
  t.equal(metrics.value('sidecar_request_headers_dropped_total', { listener: 'main', reason: 'underscore' }), 3, 'each dropped header is counted');
  t.equal(metrics.value('sidecar_request_headers_dropped_total', { listener: 'secure', reason: 'underscore' }), 2);

  const refused = await rawExchange(proxy.port('rejecting'), `GET /refused HTTP/1.1\r\nHost: app\r\n${FORGED}Connection: close\r\n\r\n`);
  t.same(refused.statuses, [400], 'headersWithUnderscores: reject → 400');
  t.match(refused.text, /x-sidecar-error: BAD_REQUEST/);
  t.match(refused.text, /X_Forwarded_For/, 'the message names the header');
  t.notOk(app.received.some((r) => r.url === '/refused'), 'the refused request never reached the app');

  const allowed = await rawExchange(proxy.port('allowing'), `GET /allowed HTTP/1.1\r\nHost: app\r\nX_Custom: 1\r\nConnection: close\r\n\r\n`);
  t.same(allowed.statuses, [200]);
  t.same(underscoredNames(app.received.find((r) => r.url === '/allowed')?.rawHeaders ?? []), ['x_custom'], 'headersWithUnderscores: allow → forwarded');
});

/** A request with `count` header fields in all (Host included), framing last so a cut list loses it. */
function manyHeaders(path: string, count: number, body: string): string {
  let head = `POST ${path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n`;
  for (let i = 0; i < count - 3; i++) head += `x-h${i}: v\r\n`;
  return `${head}Content-Length: ${body.length}\r\n\r\n${body}`;
}

t.test('more header fields than maxHeaderCount → 431, never forwarded without its framing', async (t) => {
  const { app, proxy, session, ca } = await setup(t);
  const port = proxy.port('main');

  const atLimit = await rawExchange(port, manyHeaders('/at-limit', 100, 'hello'));
  t.same(atLimit.statuses, [200], '100 header fields (the default limit) are served');
  t.equal(app.received.find((r) => r.url === '/at-limit')?.body, 'hello', 'with their body');

  for (const count of [101, 1_001, 1_500]) {
    const over = await rawExchange(port, manyHeaders(`/over-${count}`, count, 'hello'));
    t.same(over.statuses, [431], `${count} header fields → 431`);
    t.match(over.text, /x-sidecar-error: HEADERS_TOO_LARGE/);
    t.equal(over.closedBy, 'server', 'and the connection is closed');
  }
  t.notOk(app.received.some((r) => r.url.startsWith('/over-')), 'none reached the app (no POST without its body)');

  const tlsHeaders: Record<string, string> = {};
  for (let i = 0; i < 150; i++) tlsHeaders[`x-h${i}`] = 'v';
  const overTls = await httpsRequest({ port: proxy.port('secure'), ca, method: 'POST', path: '/over-tls', headers: tlsHeaders, body: 'hello' });
  t.notOk(overTls.alpn, 'no ALPN: the TLS listener speaks HTTP/1.1');
  t.equal(overTls.status, 431, 'HTTP/1.1 over TLS: 150 fields → 431');
  t.notOk(app.received.some((r) => r.url === '/over-tls'));

  const fields = (count: number): http2.OutgoingHttpHeaders => {
    const headers: http2.OutgoingHttpHeaders = { ':method': 'POST' };
    for (let i = 0; i < count; i++) headers[`x-h${i}`] = 'v';
    return headers;
  };
  const h2AtLimit = await h2Request(session, { ...fields(99), ':path': '/h2-at-limit', 'content-length': '5' }, 'hello');
  t.equal(h2AtLimit.status, 200, 'HTTP/2: 100 fields are served');
  t.equal(app.received.find((r) => r.url === '/h2-at-limit')?.body, 'hello');
  const h2Over = await h2Request(session, { ...fields(150), ':path': '/h2-over', 'content-length': '5' }, 'hello');
  t.equal(h2Over.status, 431, 'HTTP/2: 151 fields → 431');
  t.equal(h2Over.headers['x-sidecar-error'], 'HEADERS_TOO_LARGE');

  // Far over the limit, Node resets the stream before the headers are kept.
  const farOver = session.request({ ...fields(400), ':path': '/h2-far-over' });
  // (events.once would reject on the stream's 'error', which the reset emits.)
  const farOverClosed = new Promise((resolve) => farOver.once('close', resolve));
  farOver.on('error', () => {});
  farOver.end();
  await farOverClosed;
  t.equal(farOver.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 'HTTP/2: 400 fields → stream reset');
  t.notOk(app.received.some((r) => r.url.startsWith('/h2-over') || r.url === '/h2-far-over'), 'none reached the app');

  const after = await h2Request(session, { ':path': '/h2-after' });
  t.equal(after.status, 200, 'the session serves other streams afterwards');
});

t.test('Connection cannot make Host or Content-Length hop-by-hop; other nominations still apply', async (t) => {
  const { app, proxy } = await setup(t);
  const answer = await rawExchange(
    proxy.port('main'),
    'POST /nominated HTTP/1.1\r\nHost: client.example\r\nConnection: host, content-length, x-private, close\r\n' +
      'X-Private: secret\r\nContent-Length: 5\r\n\r\nhello',
  );
  t.same(answer.statuses, [200]);
  const atApp = app.received.find((r) => r.url === '/nominated');
  t.equal(atApp?.headers.host, 'client.example', 'the app sees the Host the client sent, not the upstream address');
  t.equal(atApp?.headers['x-forwarded-host'], 'client.example');
  t.equal(atApp?.headers['content-length'], '5', 'Content-Length is kept');
  t.equal(atApp?.body, 'hello');
  t.equal(atApp?.headers['x-private'], undefined, 'a nominated ordinary header is still removed');
});
