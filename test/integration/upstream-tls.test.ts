/**
 * TLS origination to https:// endpoints: the upstream's certificate is verified against the
 * cluster's CA and name; a failure is 502 UPSTREAM_TLS_FAILURE naming its reason (unknown CA,
 * name mismatch, expired, client certificate required) and is not retried to the same
 * endpoint; a client certificate is presented for mTLS; rotated files on either side take
 * effect without a restart.
 */

import { promises as fsp } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import forge from 'node-forge';
import t from 'tap';
import { request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import { makeTestPki, writeFileAtomic, type TestPki } from '../helpers/certs';
import { startSidecar } from '../helpers/sidecar';
import { captureLogger } from '../helpers/tls-clients';
import { waitUntil } from '../helpers/wait';
import { refusedWs } from '../helpers/websocket';

interface TlsUpstream {
  readonly port: number;
  readonly server: https.Server;
  /** TCP connections accepted. */
  connections: number;
  /** Requests answered, with the client certificate's CN ('' when none). */
  readonly seen: string[];
  close(): Promise<void>;
}

async function startTlsUpstream(options: https.ServerOptions): Promise<TlsUpstream> {
  const seen: string[] = [];
  const server = https.createServer(options, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    seen.push(typeof peer.subject?.CN === 'string' ? peer.subject.CN : '');
    // One request per connection: every request makes a new handshake.
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end(`hello ${req.headers.host ?? ''}`);
  });
  const upstream: TlsUpstream = {
    port: 0,
    server,
    connections: 0,
    seen,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  server.on('connection', () => upstream.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(upstream, { port: (server.address() as AddressInfo).port });
}

/** A certificate for localhost signed by `pki`'s CA that expired yesterday. */
async function expiredCertificate(pki: TestPki): Promise<{ cert: string; key: string }> {
  const caKey = forge.pki.privateKeyFromPem(await fsp.readFile(pki.files.caKeyPath, 'utf8'));
  const caCert = forge.pki.certificateFromPem(pki.ca.toString());
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '0badc0de';
  const day = 24 * 60 * 60 * 1000;
  cert.validity.notBefore = new Date(Date.now() - 30 * day);
  cert.validity.notAfter = new Date(Date.now() - day);
  cert.setSubject([{ name: 'commonName', value: 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

function config(port: number, tls: string, extraRoute = ''): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: remote
${extraRoute}
clusters:
  - name: remote
    endpoints: [{ url: https://localhost:${port} }]
    tls: ${tls}
`;
}

interface Answer {
  readonly status: number;
  readonly error: string | undefined;
  readonly body: string;
}

async function get(url: string): Promise<Answer> {
  const res = await request(`${url}/x`);
  const error = res.headers['x-sidecar-error'];
  return { status: res.statusCode, error: typeof error === 'string' ? error : undefined, body: await res.body.text() };
}

t.test('verified TLS to an https endpoint, and each verification failure named', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'pki'));
  const other = await makeTestPki(path.join(dir, 'other'));
  const upstream = await startTlsUpstream({ cert: pki.serverCert, key: pki.serverKey });
  t.teardown(() => upstream.close());

  t.test('the CA that signed it: 200', async (t) => {
    const sidecar = await startSidecar(config(upstream.port, `{ ca: ${pki.caCertPath} }`));
    t.teardown(() => sidecar.close());
    const answer = await get(sidecar.url());
    t.equal(answer.status, 200);
    t.equal(answer.body, `hello 127.0.0.1:${sidecar.port()}`, 'the client Host is sent by default');
    // The client's Host never chooses the name sent as SNI and verified: that is the endpoint's host.
    const res = await request(`${sidecar.url()}/x`, { headers: { host: 'evil.example' } });
    t.equal(res.statusCode, 200);
    t.equal(await res.body.text(), 'hello evil.example');
  });

  t.test('hostRewrite: auto sends the endpoint host, a name sends that name', async (t) => {
    const auto = await startSidecar(config(upstream.port, `{ ca: ${pki.caCertPath} }`, '        hostRewrite: auto'));
    t.teardown(() => auto.close());
    t.equal((await get(auto.url())).body, `hello localhost:${upstream.port}`);
    const named = await startSidecar(config(upstream.port, `{ ca: ${pki.caCertPath} }`, '        hostRewrite: API.example'));
    t.teardown(() => named.close());
    t.equal((await get(named.url())).body, 'hello api.example');
  });

  t.test('attack: a WebSocket upgrade to an https endpoint is refused, never sent in plaintext', async (t) => {
    const sidecar = await startSidecar(config(upstream.port, `{ ca: ${pki.caCertPath} }`));
    t.teardown(() => sidecar.close());
    const before = upstream.connections;
    const refused = await refusedWs(`ws://127.0.0.1:${sidecar.port()}/ws`);
    t.equal(refused.status, 502);
    t.equal(refused.headers['x-sidecar-error'], 'UPSTREAM_TLS_FAILURE');
    t.equal(upstream.connections, before, 'no connection to the upstream');
  });

  t.test('another CA: UPSTREAM_TLS_FAILURE naming the unknown CA, in the body and the log, not retried', async (t) => {
    const log = captureLogger();
    const retry = '        retry: { attempts: 3, backoff: { base: 1ms, max: 2ms } }';
    const sidecar = await startSidecar(config(upstream.port, `{ ca: ${other.caCertPath} }`, retry), { logger: log.logger });
    t.teardown(() => sidecar.close());
    const before = upstream.connections;
    const seenBefore = upstream.seen.length;
    const answer = await get(sidecar.url());
    t.equal(answer.status, 502);
    t.equal(answer.error, 'UPSTREAM_TLS_FAILURE');
    t.match(JSON.parse(answer.body).message, /unknown CA/);
    const line = await log.waitFor((l) => l.msg === 'TLS handshake with the upstream failed');
    t.match(String(line.reason), /unknown CA/);
    t.equal(upstream.connections - before, 1, 'one handshake: the only endpoint is not tried again');
    t.equal(upstream.seen.length, seenBefore, 'no request reached the upstream');
  });

  t.test('a serverName the certificate does not cover: name mismatch', async (t) => {
    const sidecar = await startSidecar(config(upstream.port, `{ ca: ${pki.caCertPath}, serverName: payments.example }`));
    t.teardown(() => sidecar.close());
    const answer = await get(sidecar.url());
    t.equal(answer.status, 502);
    t.equal(answer.error, 'UPSTREAM_TLS_FAILURE');
    t.match(JSON.parse(answer.body).message, /name mismatch.*payments\.example/);
  });

  t.test('the system roots by default: the test CA is not trusted', async (t) => {
    const sidecar = await startSidecar(config(upstream.port, '{}'));
    t.teardown(() => sidecar.close());
    const answer = await get(sidecar.url());
    t.equal(answer.error, 'UPSTREAM_TLS_FAILURE');
  });

  t.test('an expired certificate', async (t) => {
    const expired = await expiredCertificate(pki);
    const old = await startTlsUpstream(expired);
    t.teardown(() => old.close());
    const sidecar = await startSidecar(config(old.port, `{ ca: ${pki.caCertPath} }`));
    t.teardown(() => sidecar.close());
    const answer = await get(sidecar.url());
    t.equal(answer.status, 502);
    t.equal(answer.error, 'UPSTREAM_TLS_FAILURE');
    t.match(JSON.parse(answer.body).message, /expired/);
  });
});

t.test('config: tls only with https endpoints, cert and key together', async (t) => {
  const base = (endpoint: string, tls: string): string =>
    `listeners: [{ name: main, address: 127.0.0.1:0, routes: [{ name: all, match: { prefix: / }, cluster: c }] }]\nclusters: [{ name: c, endpoints: [{ url: ${endpoint} }], tls: ${tls} }]\n`;
  const plain = parseConfigText(base('http://127.0.0.1:3000', '{}'), 'inline.yaml');
  t.notOk(plain.ok);
  if (!plain.ok) t.match(plain.errors[0].message, /tls applies to https:\/\/ endpoints/);
  const half = parseConfigText(base('https://localhost:3443', '{ cert: a.crt }'), 'inline.yaml');
  t.notOk(half.ok);
  if (!half.ok) t.match(half.errors[0].message, /cert and key go together/);
  const noPort = parseConfigText(base('https://localhost', '{}'), 'inline.yaml');
  t.notOk(noPort.ok, 'an https endpoint names its port');
  const good = parseConfigText(base('https://LOCALHOST:3443', '{ serverName: Payments.Example }'), 'inline.yaml');
  t.ok(good.ok);
  if (good.ok) {
    const cluster = good.config.clusters.get('c');
    t.equal(cluster?.endpoints[0].url, 'https://localhost:3443');
    t.equal(cluster?.tls?.serverName, 'payments.example');
    t.equal(cluster?.tls?.minVersion, 'TLSv1.2');
  }
});

t.test('mTLS upstream: the client certificate, and rotation on both sides without restart', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'pki'), { client: 'first-client' });
  const next = await makeTestPki(path.join(dir, 'next'), { client: 'second-client' });
  const upstream = await startTlsUpstream({ cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requestCert: true, rejectUnauthorized: true });
  t.teardown(() => upstream.close());
  const live = path.join(dir, 'live');
  await fsp.mkdir(live);
  const caFile = path.join(live, 'ca.crt');
  const certFile = path.join(live, 'client.crt');
  const keyFile = path.join(live, 'client.key');
  await Promise.all([fsp.writeFile(caFile, pki.ca), fsp.writeFile(certFile, pki.clientCert), fsp.writeFile(keyFile, pki.clientKey)]);

  t.test('without a client certificate: 502, nothing reaches the upstream', async (t) => {
    const sidecar = await startSidecar(config(upstream.port, `{ ca: ${caFile} }`));
    t.teardown(() => sidecar.close());
    const seenBefore = upstream.seen.length;
    const answer = await get(sidecar.url());
    t.equal(answer.status, 502);
    // In TLS 1.3 the server checks the client certificate after the client's handshake ends;
    // Node's client then sees the connection close (no alert surfaces), i.e. a reset.
    t.match(answer.error, /^(UPSTREAM_TLS_FAILURE|UPSTREAM_RESET)$/);
    t.equal(upstream.seen.length, seenBefore, 'the request was refused before the app');
  });

  t.test('with cert and key; then both sides rotate', async (t) => {
    const log = captureLogger();
    const sidecar = await startSidecar(config(upstream.port, `{ ca: ${caFile}, cert: ${certFile}, key: ${keyFile} }`), { logger: log.logger });
    t.teardown(() => sidecar.close());
    t.equal((await get(sidecar.url())).status, 200);
    t.equal(upstream.seen.at(-1), 'first-client', 'the upstream saw the configured client certificate');

    // The upstream moves to the next CA (its certificate and the client CA it trusts).
    upstream.server.setSecureContext({ cert: next.serverCert, key: next.serverKey, ca: next.ca, requestCert: true, rejectUnauthorized: true } as Parameters<https.Server['setSecureContext']>[0]);
    const failed = await get(sidecar.url());
    t.equal(failed.error, 'UPSTREAM_TLS_FAILURE', 'the old CA does not verify the new server certificate');

    // The sidecar's files follow: the CA bundle first, then the client certificate.
    await writeFileAtomic(caFile, Buffer.concat([pki.ca, next.ca]));
    await writeFileAtomic(keyFile, next.clientKey);
    await writeFileAtomic(certFile, next.clientCert);
    await waitUntil(async () => (await get(sidecar.url())).status === 200, 'the rotated files to be used');
    t.equal(upstream.seen.at(-1), 'second-client', 'the rotated client certificate is presented');
    t.ok(log.lines.some((l) => l.msg === 'upstream TLS files changed: new connections use them'), 'the reload is logged');
  });
});
