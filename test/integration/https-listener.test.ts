/**
 * A TLS listener of a running sidecar, driven by real clients: curl (HTTP/1.1 and --http2),
 * node:https and node:http2, openssl s_client. Requests reach an HTTP/1.1 app with the
 * same routing, headers and errors as on a plain listener.
 */

import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import t, { type Test } from 'tap';
import { issueServerCertificate, makeTestPki, peerCertificate, runOpenssl, type TestPki } from '../helpers/certs';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';
import { connectH2, curlLocalhost, curlSupportsHttp2, h2Request, httpsRequest, runCurl } from '../helpers/tls-clients';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly body: string;
}

interface Setup {
  readonly pki: TestPki;
  readonly app: Upstream;
  readonly proxy: RunningSidecar;
  readonly port: number;
  readonly seen: Seen[];
}

/**
 * The app answers /echo with what it received; /teapot with a custom reason phrase and
 * HTTP/1-only response headers; everything else with "ok".
 */
async function setup(t: Test, listenerExtra = ''): Promise<Setup> {
  const pki = await makeTestPki(t.testdir());
  const seen: Seen[] = [];
  const app = await startUpstream((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      if (req.url?.startsWith('/teapot')) {
        res.statusMessage = 'Short And Stout';
        res.setHeader('keep-alive', 'timeout=5');
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.writeHead(418);
        res.write('tea');
        res.end('pot');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
${listenerExtra}
    routes:
      - name: api-host
        match: { prefix: /, host: api.test }
        directResponse: { status: 200, body: "api host" }
      - name: limited
        match: { path: /app/limited }
        cluster: app
        maxRequestBodyBytes: 10B
      - name: app
        match: { prefix: /app }
        cluster: app
        rewritePrefix: /
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  return { pki, app, proxy, port: proxy.port(), seen };
}

/** Node emits these once per process when HTTP/1-only response features reach an HTTP/2 stream. */
function collectWarnings(t: Test): Error[] {
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => void warnings.push(warning);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  return warnings;
}

t.test('curl --cacert over HTTP/1.1 and HTTP/2', async (t) => {
  const { pki, port, seen } = await setup(t);
  const base = ['--cacert', pki.caCertPath, ...curlLocalhost(port), '--write-out', '\n%{http_version}'];

  const h1 = await runCurl([...base, '--http1.1', `https://localhost:${port}/app/echo?x=1`]);
  t.equal(h1.code, 0, `curl HTTP/1.1 succeeds: ${h1.stderr}`);
  const [h1Body, h1Version] = h1.stdout.split('\n');
  t.equal(h1Version, '1.1');
  const h1Echo = JSON.parse(h1Body ?? '') as { url: string; headers: IncomingHttpHeaders };
  t.equal(h1Echo.url, '/echo?x=1', 'routed and rewritten like on a plain listener');
  t.equal(h1Echo.headers['x-forwarded-proto'], 'https');
  t.equal(h1Echo.headers.host, `localhost:${port}`);
  t.equal(h1Echo.headers['x-forwarded-host'], `localhost:${port}`);

  t.test('curl --http2', { skip: (await curlSupportsHttp2()) ? false : 'this curl has no HTTP/2 support' }, async (t) => {
    const h2 = await runCurl([...base, '--http2', '--data-binary', 'hello over h2', `https://localhost:${port}/app/echo`]);
    t.equal(h2.code, 0, `curl --http2 succeeds: ${h2.stderr}`);
    const [h2Body, h2Version] = h2.stdout.split('\n');
    t.equal(h2Version, '2', 'ALPN chose h2');
    const h2Echo = JSON.parse(h2Body ?? '') as { method: string; url: string; headers: IncomingHttpHeaders; body: string };
    t.equal(h2Echo.method, 'POST');
    t.equal(h2Echo.body, 'hello over h2');
    t.equal(h2Echo.headers.host, `localhost:${port}`, ':authority became the Host header');
    t.equal(h2Echo.headers['x-forwarded-host'], `localhost:${port}`);
    t.equal(h2Echo.headers['x-forwarded-proto'], 'https');
    const appSaw = seen.at(-1);
    t.notOk(appSaw?.rawHeaders.some((name) => name.startsWith(':')), 'no pseudo-header reached the app');
    t.equal(appSaw?.rawHeaders.filter((name) => name.toLowerCase() === 'host').length, 1, 'exactly one Host header');
  });
});

t.test('node:https and node:http2 clients', async (t) => {
  const { pki, port, seen } = await setup(t);
  const warnings = collectWarnings(t);

  const h1 = await httpsRequest({ port, ca: pki.ca, path: '/app/echo' });
  t.equal(h1.status, 200);
  t.equal(h1.alpn, false, 'a client without ALPN gets HTTP/1.1');
  t.equal((JSON.parse(h1.body) as { headers: IncomingHttpHeaders }).headers['x-forwarded-proto'], 'https');

  const session = await connectH2(port, { ca: pki.ca });
  t.teardown(() => session.close());
  t.equal(session.alpnProtocol, 'h2');

  t.test('routing by :authority', async (t) => {
    const api = await h2Request(session, { ':path': '/anything', ':authority': `api.test:${port}` });
    t.equal(api.body, 'api host', 'the host match sees :authority without the port');
    const viaHost = await httpsRequest({ port, ca: pki.ca, path: '/anything', headers: { host: 'api.test' } });
    t.equal(viaHost.body, 'api host', 'HTTP/1.1: the Host header');
  });

  t.test('request headers and a body without content-length', async (t) => {
    const reply = await h2Request(
      session,
      { ':method': 'POST', ':path': '/app/echo?q=1', cookie: ['a=1', 'b=2'], 'x-forwarded-client-cert': 'Subject="CN=forged"', 'x-forwarded-proto': 'http' },
      'streamed body',
    );
    t.equal(reply.status, 200);
    const appSaw = seen.at(-1);
    t.equal(appSaw?.url, '/echo?q=1');
    t.equal(appSaw?.body, 'streamed body', 'DATA frames without content-length are forwarded');
    // The sidecar frames the HTTP/1.1 body itself: chunked, or a content-length when the
    // whole body had already arrived when the request was written.
    const framing = appSaw?.headers['transfer-encoding'] ?? `content-length: ${appSaw?.headers['content-length']}`;
    t.ok(framing === 'chunked' || framing === `content-length: ${Buffer.byteLength('streamed body')}`, `the HTTP/1.1 app gets a framed body (${framing})`);
    t.equal(appSaw?.headers.cookie, 'a=1; b=2', 'cookie fields are joined');
    t.equal(appSaw?.rawHeaders.filter((name) => name.toLowerCase() === 'cookie').length, 1, 'into one Cookie header');
    t.equal(appSaw?.headers['x-forwarded-proto'], 'https', 'a client value is replaced');
    t.equal(appSaw?.headers['x-forwarded-client-cert'], undefined, 'a client-sent x-forwarded-client-cert never passes');
    t.equal(appSaw?.headers.host, `localhost:${port}`);
    t.notOk(appSaw?.rawHeaders.some((name) => name.startsWith(':')), 'no pseudo-headers');
  });

  t.test('responses: reason phrase and HTTP/1-only headers are dropped, repeated headers kept', async (t) => {
    const reply = await h2Request(session, { ':path': '/app/teapot' });
    t.equal(reply.status, 418);
    t.equal(reply.body, 'teapot');
    t.same(reply.headers['set-cookie'], ['a=1', 'b=2']);
    for (const name of ['connection', 'keep-alive', 'transfer-encoding']) t.notOk(name in reply.headers, `no ${name}`);
    t.match(reply.headers['x-request-id'], /^[0-9a-f-]{36}$/);
    const h1Reply = await httpsRequest({ port, ca: pki.ca, path: '/app/teapot' });
    t.equal(h1Reply.status, 418);
    t.equal(h1Reply.body, 'teapot');
  });

  t.test("the sidecar's own errors over HTTP/2", async (t) => {
    const noRoute = await h2Request(session, { ':path': '/nowhere' });
    t.equal(noRoute.status, 404);
    t.equal(noRoute.headers['x-sidecar-error'], 'NO_ROUTE');
    t.equal((JSON.parse(noRoute.body) as { error: string }).error, 'NO_ROUTE');
    const tooLarge = await h2Request(session, { ':method': 'POST', ':path': '/app/limited', 'content-length': '100' }, 'x'.repeat(100));
    t.equal(tooLarge.status, 413);
    t.equal(tooLarge.headers['x-sidecar-error'], 'REQUEST_TOO_LARGE');
    t.notOk('connection' in tooLarge.headers, 'no Connection header on HTTP/2');
    const after = await h2Request(session, { ':path': '/app/echo' });
    t.equal(after.status, 200, 'the session still serves requests');
  });

  t.test('no HTTP/1-only response feature reached an HTTP/2 stream', async (t) => {
    t.same(warnings.map((w) => `${w.name}: ${w.message}`), []);
  });
});

t.test('openssl s_client: TLS 1.0 and 1.1 refused, 1.2 and 1.3 accepted', async (t) => {
  const { pki, port } = await setup(t);
  const sClient = (...args: string[]) =>
    runOpenssl(['s_client', '-brief', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', pki.caCertPath, '-verify_return_error', ...args]);
  for (const version of ['-tls1', '-tls1_1']) {
    // SECLEVEL=0 lets the client offer the old protocol at all, so the refusal is the sidecar's.
    const result = await sClient(version, '-cipher', 'DEFAULT:@SECLEVEL=0');
    t.not(result.code, 0, `${version} is refused`);
    t.match(result.stdout + result.stderr, /alert protocol version|unsupported protocol|no protocols available/);
  }
  for (const [flag, name] of [['-tls1_2', 'TLSv1\\.2'], ['-tls1_3', 'TLSv1\\.3']] as const) {
    const result = await sClient(flag, '-alpn', 'h2,http/1.1');
    t.equal(result.code, 0, `${flag} is accepted: ${result.stderr}`);
    t.match(result.stdout + result.stderr, new RegExp(`Protocol version: ${name}`));
    t.match(result.stdout + result.stderr, /Verification: OK/);
  }
});

t.test('SNI picks the certificate by server name; an unknown name gets the default', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'default'));
  const other = await makeTestPki(path.join(dir, 'other'), { hosts: ['other.test'] });
  const api = await issueServerCertificate(other.dir, path.join(dir, 'api'), ['api.example.com']);
  const wild = await issueServerCertificate(other.dir, path.join(dir, 'wild'), ['*.example.com']);
  const app = await startUpstream((req, res) => res.end(`app saw ${req.headers.host ?? ''}`));
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
      sni:
        - { serverNames: [api.example.com], cert: ${JSON.stringify(api.certPath)}, key: ${JSON.stringify(api.keyPath)} }
        - { serverNames: ["*.example.com"], cert: ${JSON.stringify(wild.certPath)}, key: ${JSON.stringify(wild.keyPath)} }
    routes:
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const port = proxy.port();
  const serial = async (servername: string | undefined) => (await peerCertificate({ port, servername })).serialNumber.toUpperCase();
  t.equal(await serial('api.example.com'), api.serial, 'exact name');
  t.equal(await serial('www.example.com'), wild.serial, 'wildcard name');
  t.equal(await serial('unknown.test'), pki.serverSerial, 'unknown name: the default certificate');
  t.equal(await serial(undefined), pki.serverSerial, 'no SNI: the default certificate');

  const verified = await httpsRequest({ port, ca: other.ca, servername: 'api.example.com', headers: { host: 'api.example.com' } });
  t.equal(verified.body, 'app saw api.example.com', 'a client verifying api.example.com reaches the app');
  const h2 = await connectH2(port, { ca: other.ca, servername: 'www.example.com' });
  t.teardown(() => h2.close());
  const reply = await h2Request(h2, { ':path': '/', ':authority': 'www.example.com' });
  t.equal(reply.body, 'app saw www.example.com', 'HTTP/2 over the wildcard certificate');
  if (await curlSupportsHttp2()) {
    const curl = await runCurl(['--http2', '--cacert', other.caCertPath, '--resolve', `api.example.com:${port}:127.0.0.1`, `https://api.example.com:${port}/`]);
    t.equal(curl.code, 0, `curl verifies the SNI certificate: ${curl.stderr}`);
    t.equal(curl.stdout, `app saw api.example.com:${port}`);
  }
});

t.test('HTTP/1.1 over TLS keeps the parser limits of a plain listener', async (t) => {
  const { pki, port } = await setup(t, '    maxHeaderBytes: 4KiB');
  const big = await httpsRequest({ port, ca: pki.ca, path: '/app/echo', headers: { 'x-big': 'x'.repeat(8 * 1024) } });
  t.equal(big.status, 431);
  t.equal(big.headers['x-sidecar-error'], 'HEADERS_TOO_LARGE');
  const small = await httpsRequest({ port, ca: pki.ca, path: '/app/echo', headers: { 'x-small': 'x'.repeat(1024) } });
  t.equal(small.status, 200);
});
