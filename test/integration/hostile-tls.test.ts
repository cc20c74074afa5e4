/**
 * The hostile-client rules on a TLS listener: HTTP/1.1 over TLS gets the same framing
 * refusals and timeouts as plain HTTP (Node runs its HTTP/1 code on the HTTP/2 server), and
 * HTTP/2 requests get the same path normalisation.
 */
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { makeTestPki, type TestPki } from '../helpers/certs';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { connectH2, h2Request } from '../helpers/tls-clients';
import { startUpstream, type Upstream } from '../helpers/upstream';

const CLOSE_BOUND_MS = 8_000;

interface Setup {
  readonly pki: TestPki;
  readonly app: Upstream;
  readonly proxy: RunningSidecar;
  readonly port: number;
  readonly seen: string[];
}

async function setup(t: Test): Promise<Setup> {
  const pki = await makeTestPki(t.testdir());
  const seen: string[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.url ?? '');
    req.resume();
    req.on('end', () => res.end(`app:${req.url}`));
  });
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    headersTimeout: 1s
    requestTimeout: 2s
    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
    routes:
      - { name: admin, match: { prefix: /admin }, directResponse: { status: 403, body: forbidden } }
      - { name: public, match: { prefix: /public }, cluster: app }
      - { name: rest, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  return { pki, app, proxy, port: proxy.sidecar.listenerPort('secure'), seen };
}

/** An HTTP/1.1 connection over TLS (ALPN http/1.1) that writes `bytes` and collects the answer until the server closes. */
function tlsExchange(setup: Setup, bytes: string | ((socket: tls.TLSSocket) => void)): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: setup.port, servername: 'localhost', ca: setup.pki.ca, ALPNProtocols: ['http/1.1'] });
    let text = '';
    let closedByServer = true;
    const bound = setTimeout(() => {
      closedByServer = false;
      socket.destroy();
    }, CLOSE_BOUND_MS);
    socket.once('secureConnect', () => {
      if (typeof bytes === 'string') socket.write(bytes);
      else bytes(socket);
    });
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
    });
    socket.on('close', () => {
      clearTimeout(bound);
      resolve({ text, closedByServer });
    });
  });
}

t.test('HTTP/1.1 over TLS: a smuggling attempt gets 400 and the app sees nothing', async (t) => {
  const s = await setup(t);
  const answer = await tlsExchange(
    s,
    'POST /public HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n',
  );
  t.ok(answer.closedByServer, 'the sidecar closed the connection');
  t.match(answer.text, /^HTTP\/1\.1 400 [^]*x-sidecar-error: BAD_REQUEST/);
  t.same(s.seen, [], 'the app saw nothing');

  const twoHosts = await tlsExchange(s, 'GET /public HTTP/1.1\r\nHost: localhost\r\nHost: other\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n');
  t.match(twoHosts.text, /^HTTP\/1\.1 400 [^]*x-sidecar-error: BAD_REQUEST/, 'two Host headers: 400');
  t.same(s.seen, [], 'the app still saw nothing');
});

t.test('HTTP/1.1 over TLS: slow headers are cut at headersTimeout', async (t) => {
  const s = await setup(t);
  const started = performance.now();
  const answer = await tlsExchange(s, (socket) => {
    socket.write('GET /public HTTP/1.1\r\nHost: localhost\r\n');
    const timer = setInterval(() => socket.write('X-Slow: 1\r\n'), 100);
    socket.once('close', () => clearInterval(timer));
  });
  t.ok(answer.closedByServer, `closed by the sidecar after ${(performance.now() - started).toFixed(0)} ms`);
  t.match(answer.text, /^HTTP\/1\.1 408 [^]*REQUEST_TIMEOUT/, '408 REQUEST_TIMEOUT');
});

t.test('HTTP/2: path tricks are normalised before routing', async (t) => {
  const s = await setup(t);
  const session = await connectH2(s.port, { ca: s.pki.ca });
  t.teardown(() => session.close());
  for (const path of ['/public/../admin', '/public/%2e%2e/admin', '//admin', '/%61dmin']) {
    const reply = await h2Request(session, { ':path': path });
    t.equal(reply.status, 403, `${path} → 403`);
  }
  const refused = await h2Request(session, { ':path': '/public/%zz' });
  t.equal(refused.status, 400, 'a malformed escape → 400');
  t.equal(refused.headers['x-sidecar-error'], 'BAD_REQUEST');
  const served = await h2Request(session, { ':path': '/public/./a/../b?x=/../y' });
  t.equal(served.body, 'app:/public/b?x=/../y', 'the app receives the normalised path');
  const after = await h2Request(session, { ':path': '/public/after' });
  t.equal(after.status, 200, 'the session still serves after a refused stream');
  t.ok(s.seen.every((url) => url.startsWith('/public/')), `the app only saw /public paths: ${s.seen.join(' ')}`);
});
