/**
 * Mutual TLS on a sidecar listener (`tls.clientCa`): clients without a certificate from the
 * client CA are refused at the handshake; a verified client's certificate reaches the app
 * in x-forwarded-client-cert, over HTTP/1.1 and HTTP/2, and a client-sent value never does.
 */

import { createHash, X509Certificate } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import t from 'tap';
import { makeTestPki } from '../helpers/certs';
import { mtlsListenerTls, startSidecarWith } from '../helpers/sidecar';
import { connectH2, curlLocalhost, curlSupportsHttp2, h2Request, httpsRequest, runCurl } from '../helpers/tls-clients';
import { startUpstream } from '../helpers/upstream';

t.test('mTLS through the sidecar', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'pki'), { clientUris: ['spiffe://example.org/ns/default/sa/test'] });
  const stranger = await makeTestPki(path.join(dir, 'stranger'));
  const seen: IncomingHttpHeaders[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.headers);
    res.end(req.headers['x-forwarded-client-cert'] ?? 'none');
  });
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: mutual
    address: 127.0.0.1:0
${mtlsListenerTls(pki)}
    routes:
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app]);
  const port = proxy.port();
  const url = `https://localhost:${port}/whoami`;
  const clientCert = new X509Certificate(pki.clientCert);
  const expected =
    `Hash=${createHash('sha256').update(clientCert.raw).digest('hex')};` +
    'Subject="CN=test-client,O=sidecar";URI=spiffe://example.org/ns/default/sa/test';
  const http2Curl = await curlSupportsHttp2();
  const curlVersions = http2Curl ? ['--http1.1', '--http2'] : ['--http1.1'];

  t.test('no client certificate: the handshake is refused', async (t) => {
    for (const version of curlVersions) {
      const result = await runCurl([version, '--cacert', pki.caCertPath, ...curlLocalhost(port), url]);
      t.not(result.code, 0, `curl ${version} fails`);
    }
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      await t.rejects(httpsRequest({ port, ca: pki.ca, maxVersion }), `node:https ${maxVersion}`);
    }
    await t.rejects(
      (async () => {
        const session = await connectH2(port, { ca: pki.ca });
        try {
          await h2Request(session, { ':path': '/' });
        } finally {
          session.destroy();
        }
      })(),
      'node:http2',
    );
    t.equal(seen.length, 0, 'nothing reached the app');
  });

  t.test('a certificate from another CA: the handshake is refused', async (t) => {
    for (const version of curlVersions) {
      const result = await runCurl([
        version, '--cacert', pki.caCertPath, '--cert', stranger.clientCertPath, '--key', stranger.clientKeyPath, ...curlLocalhost(port), url,
      ]);
      t.not(result.code, 0, `curl ${version} fails`);
    }
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      await t.rejects(httpsRequest({ port, ca: pki.ca, maxVersion, cert: stranger.clientCert, key: stranger.clientKey }), `node:https ${maxVersion}`);
    }
    t.equal(seen.length, 0, 'nothing reached the app');
  });

  t.test('a valid certificate: 200, and the app sees x-forwarded-client-cert', async (t) => {
    for (const version of curlVersions) {
      const result = await runCurl([
        version, '--cacert', pki.caCertPath, '--cert', pki.clientCertPath, '--key', pki.clientKeyPath,
        '-H', 'x-forwarded-client-cert: Subject="CN=admin"', '--write-out', '\n%{http_code}', ...curlLocalhost(port), url,
      ]);
      t.equal(result.code, 0, `curl ${version}: ${result.stderr}`);
      t.equal(result.stdout, `${expected}\n200`, `curl ${version}: the sidecar's value, not the client's`);
    }
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const reply = await httpsRequest({ port, ca: pki.ca, maxVersion, cert: pki.clientCert, key: pki.clientKey, path: '/whoami' });
      t.equal(reply.status, 200);
      t.equal(reply.body, expected, `node:https ${maxVersion}`);
    }
    const session = await connectH2(port, { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    t.teardown(() => session.destroy());
    for (let i = 0; i < 2; i++) {
      const reply = await h2Request(session, { ':path': '/whoami', 'x-forwarded-client-cert': 'By=spiffe://evil;Subject="CN=admin"' });
      t.equal(reply.status, 200);
      t.equal(reply.body, expected, `node:http2 stream ${i + 1} of one session`);
    }
    const last = seen.at(-1);
    t.equal(last?.['x-forwarded-client-cert'], expected, 'exactly one value: a client-sent one is dropped, not joined');
  });
});
