/**
 * A real https/http2 server built from TlsContextProvider, probed with node clients and
 * the openssl binary: protocol floor, ciphers, ALPN, SNI, mTLS and x-forwarded-client-cert.
 */

import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import t from 'tap';
import { forwardedClientCert, TlsContextProvider } from '../../src/tls/context';
import { issueServerCertificate, makeTestPki, peerCertificate, runOpenssl, serialOf } from '../helpers/certs';

interface Running {
  readonly port: number;
  close(): Promise<void>;
}

async function listen(server: https.Server | http2.Http2SecureServer): Promise<Running> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      const closed = once(server, 'close');
      server.close();
      if (server instanceof https.Server) server.closeAllConnections();
      await closed;
    },
  };
}

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly peer: X509Certificate | undefined;
  readonly alpn: string | false | null;
}

// Node passes ALPNProtocols through to tls.connect; @types/node omits it from RequestOptions.
function get(opts: https.RequestOptions & Pick<tls.ConnectionOptions, 'ALPNProtocols'>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', path: '/', agent: false, ...opts }, (res) => {
      const socket = res.socket as tls.TLSSocket;
      const peer = socket.getPeerX509Certificate();
      const alpn = socket.alpnProtocol;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peer, alpn }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('protocol versions, ciphers and ALPN', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const provider = new TlsContextProvider(pki.tlsConfig());
  const server = https.createServer(provider.serverOptions({ alpnProtocols: ['http/1.1'] }), (_req, res) => res.end('ok'));
  provider.attach(server);
  const running = await listen(server);
  t.teardown(() => running.close());

  const reply = await get({ port: running.port, servername: 'localhost', ca: pki.ca, ALPNProtocols: ['h2', 'http/1.1'] });
  t.equal(reply.status, 200, 'a client trusting the CA gets through');
  t.equal(reply.body, 'ok');
  t.equal(reply.alpn, 'http/1.1', 'an HTTP/1-only server never selects h2');
  t.equal(reply.peer?.serialNumber.toUpperCase(), pki.serverSerial);

  const sClient = (...args: string[]) =>
    runOpenssl([
      's_client', '-brief', '-connect', `127.0.0.1:${running.port}`, '-servername', 'localhost',
      '-CAfile', pki.caCertPath, '-verify_return_error', ...args,
    ]);

  // SECLEVEL=0 lets the openssl client offer TLS 1.0/1.1 at all, so the refusal is the server's.
  for (const version of ['-tls1', '-tls1_1']) {
    const result = await sClient(version, '-cipher', 'DEFAULT:@SECLEVEL=0');
    t.not(result.code, 0, `${version} is refused`);
    t.match(result.stdout + result.stderr, /alert protocol version|unsupported protocol|no protocols available/, `${version}: protocol alert`);
  }
  for (const [flag, name] of [['-tls1_2', 'TLSv1.2'], ['-tls1_3', 'TLSv1.3']] as const) {
    const result = await sClient(flag);
    t.equal(result.code, 0, `${flag} succeeds: ${result.stderr}`);
    t.match(result.stdout + result.stderr, new RegExp(`Protocol version: ${name.replace('.', '\\.')}`));
    t.match(result.stdout + result.stderr, /Verification: OK/);
  }
  const tls12 = await sClient('-tls1_2');
  t.match(tls12.stdout + tls12.stderr, /Ciphersuite: ECDHE-RSA-AES128-GCM-SHA256/, 'the server prefers ECDHE + AES-GCM');
  const weak = await sClient('-tls1_2', '-cipher', 'AES128-SHA:AES256-SHA256');
  t.not(weak.code, 0, 'static-RSA / CBC ciphers are refused');
  t.match(weak.stdout + weak.stderr, /handshake failure|no shared cipher/);
});

t.test('HTTP/2 with HTTP/1.1 fallback', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const provider = new TlsContextProvider(pki.tlsConfig());
  const server = http2.createSecureServer({ ...provider.serverOptions(), allowHTTP1: true }, (req, res) => {
    res.end(`v${req.httpVersion}`);
  });
  provider.attach(server);
  const running = await listen(server);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => sessions.add(s));
  t.teardown(async () => {
    for (const s of sessions) s.destroy();
    await running.close();
  });

  const session = http2.connect(`https://localhost:${running.port}`, { ca: pki.ca });
  t.teardown(() => session.close());
  await once(session, 'connect');
  t.equal(session.alpnProtocol, 'h2');
  const stream = session.request({ ':path': '/' });
  let body = '';
  stream.setEncoding('utf8');
  stream.on('data', (c: string) => (body += c));
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  await once(stream, 'end');
  t.equal(headers[':status'], 200);
  t.equal(body, 'v2.0');

  const h1 = await get({ port: running.port, servername: 'localhost', ca: pki.ca, ALPNProtocols: ['http/1.1'] });
  t.equal(h1.body, 'v1.1', 'HTTP/1.1 clients still work');
  t.equal(h1.alpn, 'http/1.1');
});

t.test('SNI chooses the certificate by server name', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'default'));
  // A second CA for example.com names; both certificates below are signed by it.
  const other = await makeTestPki(path.join(dir, 'other'), { hosts: ['other.test'] });
  const api = await issueServerCertificate(other.dir, path.join(dir, 'api'), ['api.example.com']);
  const wild = await issueServerCertificate(other.dir, path.join(dir, 'wild'), ['*.example.com']);
  const provider = new TlsContextProvider(
    pki.tlsConfig({
      sni: [
        { serverNames: ['*.example.com'], certPath: wild.certPath, keyPath: wild.keyPath },
        { serverNames: ['api.example.com'], certPath: api.certPath, keyPath: api.keyPath },
      ],
    }),
  );
  const server = https.createServer(provider.serverOptions({ alpnProtocols: ['http/1.1'] }), (_req, res) => res.end('ok'));
  provider.attach(server);
  const running = await listen(server);
  t.teardown(() => running.close());
  const port = running.port;

  const serialFor = async (servername: string | undefined) =>
    (await peerCertificate({ port, servername })).serialNumber.toUpperCase();
  t.equal(await serialFor('api.example.com'), api.serial, 'exact name');
  t.equal(await serialFor('www.example.com'), wild.serial, 'wildcard');
  t.equal(await serialFor('a.b.example.com'), pki.serverSerial, 'wildcard covers one label only: default');
  t.equal(await serialFor('unknown.test'), pki.serverSerial, 'unknown name: default');
  t.equal(await serialFor(undefined), pki.serverSerial, 'no SNI: default');

  const verified = await get({ port, servername: 'api.example.com', ca: other.ca });
  t.equal(verified.status, 200, 'a client verifying api.example.com against the second CA succeeds');
  const wildVerified = await get({ port, servername: 'www.example.com', ca: other.ca });
  t.equal(wildVerified.peer?.serialNumber.toUpperCase(), wild.serial);
  await t.rejects(get({ port, servername: 'api.example.com', ca: pki.ca }), 'the first CA does not vouch for it');
});

t.test('mTLS: client certificates from the client CA only', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'pki'), { clientUris: ['spiffe://example.org/ns/default/sa/test'] });
  const stranger = await makeTestPki(path.join(dir, 'stranger'));
  const api = await issueServerCertificate(stranger.dir, path.join(dir, 'api'), ['api.example.com']);
  const provider = new TlsContextProvider(
    pki.tlsConfig({ mtls: true, sni: [{ serverNames: ['api.example.com'], certPath: api.certPath, keyPath: api.keyPath }] }),
  );
  let handled = 0;
  const server = https.createServer(provider.serverOptions({ alpnProtocols: ['http/1.1'] }), (req, res) => {
    handled += 1;
    const socket = req.socket as tls.TLSSocket;
    const first = forwardedClientCert(socket);
    t.equal(forwardedClientCert(socket), first, 'stable per connection');
    res.end(first ?? '-');
  });
  provider.attach(server);
  const running = await listen(server);
  t.teardown(() => running.close());
  const port = running.port;

  const clientCert = new X509Certificate(pki.clientCert);
  const expected =
    `Hash=${createHash('sha256').update(clientCert.raw).digest('hex')};` +
    'Subject="CN=test-client,O=sidecar";URI=spiffe://example.org/ns/default/sa/test';

  for (const [label, base] of [
    ['SNI localhost (SNI context)', { servername: 'localhost', ca: pki.ca }],
    ['no SNI (server context)', { ca: pki.ca }],
    ['SNI api.example.com (another certificate)', { servername: 'api.example.com', ca: stranger.ca }],
  ] as const) {
    t.test(label, async (t) => {
      for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
        const before = handled;
        await t.rejects(get({ port, maxVersion, ...base }), `${maxVersion}: no client certificate is refused`);
        await t.rejects(
          get({ port, maxVersion, ...base, cert: stranger.clientCert, key: stranger.clientKey }),
          `${maxVersion}: a client certificate from another CA is refused`,
        );
        t.equal(handled, before, 'refused connections never reach the handler');
        const ok = await get({ port, maxVersion, ...base, cert: pki.clientCert, key: pki.clientKey });
        t.equal(ok.status, 200, `${maxVersion}: a client certificate from the client CA is accepted`);
        t.equal(ok.body, expected, 'x-forwarded-client-cert carries Hash, Subject and URI');
      }
    });
  }
  t.test('a server certificate is not a client certificate', async (t) => {
    await t.rejects(get({ port, servername: 'localhost', ca: pki.ca, cert: pki.serverCert, key: pki.serverKey }));
  });
  t.test('no value without a verified peer', async (t) => {
    const plain = new TlsContextProvider(pki.tlsConfig());
    const plainServer = https.createServer(plain.serverOptions({ alpnProtocols: ['http/1.1'] }), (req, res) => {
      res.end(forwardedClientCert(req.socket as tls.TLSSocket) ?? 'none');
    });
    const plainRunning = await listen(plainServer);
    t.teardown(() => plainRunning.close());
    const reply = await get({ port: plainRunning.port, servername: 'localhost', ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    t.equal(reply.body, 'none', 'without clientCa no certificate is requested, so none is forwarded');
    t.equal(serialOf(pki.serverCert), reply.peer?.serialNumber.toUpperCase());
  });
});
