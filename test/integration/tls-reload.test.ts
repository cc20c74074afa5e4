/**
 * Certificate rotation: files replaced on disk (atomic rename, Kubernetes `..data` swap)
 * are noticed by watchTlsFiles and applied by TlsContextProvider#reload; new handshakes
 * see the new certificate while established connections keep working.
 */

import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import t from 'tap';
import type { TlsConfig } from '../../src/config/types';
import { TlsConfigError, TlsContextProvider, watchTlsFiles } from '../../src/tls/context';
import { issueServerCertificate, makeTestPki, peerCertificate, withTimeout, writeFileAtomic } from '../helpers/certs';

const WATCH_TIMEOUT_MS = 10_000;

interface Reply {
  readonly status: number;
  /** Serial of the certificate the server used on this connection, as the server reports it. */
  readonly servedSerial: string;
  readonly reusedSocket: boolean;
  readonly socket: tls.TLSSocket;
}

function get(opts: https.RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', path: '/', ...opts }, (res) => {
      const socket = res.socket as tls.TLSSocket;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, servedSerial: body, reusedSocket: req.reusedSocket, socket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function startServer(provider: TlsContextProvider): Promise<{ port: number; close(): Promise<void> }> {
  // Answers with the serial of its own certificate on this connection: the client's view
  // of the peer certificate is not kept on sockets an Agent reuses.
  const server = https.createServer(provider.serverOptions({ alpnProtocols: ['http/1.1'] }), (req, res) => {
    res.end((req.socket as tls.TLSSocket).getX509Certificate()?.serialNumber.toUpperCase() ?? '');
  });
  // Long enough that the kept-alive connection cannot time out during the test.
  server.keepAliveTimeout = 60_000;
  provider.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      provider.detach(server);
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

/** Resolves on the next onChange of a watcher; the guard turns a missed event into a failure. */
function nextChange(config: TlsConfig): { changed: Promise<void>; close(): void; calls(): number } {
  let calls = 0;
  let resolveChange: () => void = () => undefined;
  const changed = new Promise<void>((resolve) => (resolveChange = resolve));
  const watcher = watchTlsFiles(config, () => {
    calls += 1;
    resolveChange();
  });
  return {
    changed: withTimeout(changed, WATCH_TIMEOUT_MS, 'the TLS file watcher'),
    close: () => watcher.close(),
    calls: () => calls,
  };
}

t.test('reload swaps certificates for new handshakes and keeps existing connections', async (t) => {
  const dir = t.testdir();
  const live = path.join(dir, 'live');
  const pki = await makeTestPki(live);
  const apiV1 = await issueServerCertificate(live, path.join(dir, 'api-v1'), ['api.example.com']);
  const apiDir = path.join(dir, 'api-live');
  await fsp.mkdir(apiDir);
  const apiCert = path.join(apiDir, 'tls.crt');
  const apiKey = path.join(apiDir, 'tls.key');
  await fsp.writeFile(apiCert, apiV1.cert);
  await fsp.writeFile(apiKey, apiV1.key);

  const provider = new TlsContextProvider(
    pki.tlsConfig({ sni: [{ serverNames: ['api.example.com'], certPath: apiCert, keyPath: apiKey }] }),
  );
  const server = await startServer(provider);
  t.teardown(() => server.close());
  const port = server.port;

  const oldAgent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca });
  t.teardown(() => oldAgent.destroy());
  const first = await get({ port, agent: oldAgent, servername: 'localhost' });
  t.equal(first.servedSerial, pki.serverSerial, 'the original certificate');

  // Rotate: new certificates from the same CA, each file replaced by an atomic rename.
  const next = await issueServerCertificate(live, path.join(dir, 'staging'), ['localhost']);
  const apiV2 = await issueServerCertificate(live, path.join(dir, 'api-v2'), ['api.example.com']);
  await writeFileAtomic(pki.serverKeyPath, next.key);
  await writeFileAtomic(pki.serverCertPath, next.cert, 0o644);
  await writeFileAtomic(apiKey, apiV2.key);
  await writeFileAtomic(apiCert, apiV2.cert, 0o644);

  t.same(provider.reload(), { ok: true, changed: true });
  t.equal(provider.material.defaultCertificate.leaf.serialNumber.toUpperCase(), next.serial);

  const sni = await peerCertificate({ port, servername: 'localhost', ca: pki.ca });
  t.equal(sni.serialNumber.toUpperCase(), next.serial, 'a new handshake with SNI sees the new certificate');
  const noSni = await peerCertificate({ port, ca: pki.ca });
  t.equal(noSni.serialNumber.toUpperCase(), next.serial, 'a new handshake without SNI sees it too (setSecureContext)');
  const api = await peerCertificate({ port, servername: 'api.example.com', ca: pki.ca });
  t.equal(api.serialNumber.toUpperCase(), apiV2.serial, 'SNI certificates are reloaded too');

  const again = await get({ port, agent: oldAgent, servername: 'localhost' });
  t.equal(again.reusedSocket, true, 'the kept-alive connection was reused, not re-established');
  t.equal(again.socket, first.socket);
  t.equal(again.status, 200, 'and it keeps working');
  t.equal(again.servedSerial, pki.serverSerial, 'with the certificate it was established with');
  const fresh = await get({ port, agent: false, ca: pki.ca, servername: 'localhost' });
  t.equal(fresh.servedSerial, next.serial, 'while a new connection is served the new one');

  // A broken rotation (key of another certificate) leaves the current one in place.
  await writeFileAtomic(pki.serverKeyPath, pki.clientKey);
  const broken = provider.reload();
  t.equal(broken.ok, false);
  if (!broken.ok) {
    t.type(broken.error, TlsConfigError);
    t.equal(broken.error.file, pki.serverKeyPath, 'the error names the key file');
    t.match(broken.error.message, /does not match/);
  }
  const still = await peerCertificate({ port, ca: pki.ca });
  t.equal(still.serialNumber.toUpperCase(), next.serial, 'the last good certificate is still served');

  await writeFileAtomic(pki.serverKeyPath, next.key);
  t.same(provider.reload(), { ok: true, changed: false }, 'the fixed key is back to what is loaded');
});

t.test('reload of the client CA: mTLS stays on and trusts the new CA', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'pki'));
  const successor = await makeTestPki(path.join(dir, 'successor'));
  const provider = new TlsContextProvider(pki.tlsConfig({ mtls: true }));
  const server = await startServer(provider);
  t.teardown(() => server.close());
  const port = server.port;
  const asClient = (client: { clientCert: Buffer; clientKey: Buffer } | undefined, servername?: string) =>
    get({ port, agent: false, ca: pki.ca, servername, cert: client?.clientCert, key: client?.clientKey });

  t.equal((await asClient(pki, 'localhost')).status, 200);
  await t.rejects(asClient(successor, 'localhost'), 'the successor CA is not trusted yet');

  await writeFileAtomic(pki.caCertPath, successor.ca, 0o644);
  t.same(provider.reload(), { ok: true, changed: true });
  for (const servername of ['localhost', undefined]) {
    const label = servername === undefined ? 'without SNI' : 'with SNI';
    t.equal((await asClient(successor, servername)).status, 200, `${label}: the new client CA is trusted`);
    await t.rejects(asClient(pki, servername), `${label}: the old client CA no longer is`);
    await t.rejects(asClient(undefined, servername), `${label}: a client certificate is still required`);
  }
});

t.test('watchTlsFiles fires on an atomic rename', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const watch = nextChange(pki.tlsConfig({ mtls: true }));
  t.teardown(() => watch.close());

  const next = await issueServerCertificate(dir, path.join(dir, 'staging'), ['localhost']);
  await writeFileAtomic(pki.serverCertPath, next.cert, 0o644);
  await watch.changed;
  t.pass('onChange was called');
});

t.test('watchTlsFiles fires on a Kubernetes ..data symlink swap', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'pki'));
  const next = await issueServerCertificate(pki.dir, path.join(dir, 'staging'), ['localhost']);

  // The layout kubelet gives a mounted secret:
  //   secret/..2026_01_01_00_00_00.1/server.crt   the files
  //   secret/..data -> ..2026_01_01_00_00_00.1     swapped atomically on update
  //   secret/server.crt -> ..data/server.crt       what the config points at
  const secret = path.join(dir, 'secret');
  const v1 = path.join(secret, '..2026_01_01_00_00_00.1');
  await fsp.mkdir(v1, { recursive: true });
  await fsp.writeFile(path.join(v1, 'server.crt'), pki.serverCert);
  await fsp.writeFile(path.join(v1, 'server.key'), pki.serverKey);
  await fsp.symlink('..2026_01_01_00_00_00.1', path.join(secret, '..data'));
  await fsp.symlink('..data/server.crt', path.join(secret, 'server.crt'));
  await fsp.symlink('..data/server.key', path.join(secret, 'server.key'));
  const config: TlsConfig = {
    certPath: path.join(secret, 'server.crt'),
    keyPath: path.join(secret, 'server.key'),
    clientCaPath: undefined,
    sni: [],
  };
  const provider = new TlsContextProvider(config);
  t.equal(provider.material.defaultCertificate.leaf.serialNumber.toUpperCase(), pki.serverSerial);

  const reloads: boolean[] = [];
  let resolveChange: () => void = () => undefined;
  const changed = new Promise<void>((resolve) => (resolveChange = resolve));
  const watcher = watchTlsFiles(config, () => {
    reloads.push(provider.reload().ok);
    resolveChange();
  });
  t.teardown(() => watcher.close());

  // kubelet's update: new timestamped folder, a temporary link, renamed over ..data, old folder removed.
  const v2 = path.join(secret, '..2026_01_01_00_05_00.2');
  await fsp.mkdir(v2);
  await fsp.writeFile(path.join(v2, 'server.crt'), next.cert);
  await fsp.writeFile(path.join(v2, 'server.key'), next.key);
  await fsp.symlink('..2026_01_01_00_05_00.2', path.join(secret, '..data_tmp'));
  await fsp.rename(path.join(secret, '..data_tmp'), path.join(secret, '..data'));
  await fsp.rm(v1, { recursive: true });

  await withTimeout(changed, WATCH_TIMEOUT_MS, 'the TLS file watcher');
  t.same(reloads, [true], 'one change, one successful reload');
  t.equal(provider.material.defaultCertificate.leaf.serialNumber.toUpperCase(), next.serial, 'the new certificate is loaded');
});

t.test('watchTlsFiles compares contents, not events', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  let calls = 0;
  // Long debounce and poll: this test drives check() itself.
  const watcher = watchTlsFiles(pki.tlsConfig({ mtls: true }), () => (calls += 1), { debounceMs: 60_000, pollIntervalMs: 60_000 });
  t.teardown(() => watcher.close());

  await writeFileAtomic(pki.serverCertPath, pki.serverCert, 0o644);
  await fsp.utimes(pki.caCertPath, new Date(), new Date());
  t.equal(await watcher.check(), false, 'identical bytes and touched files are no change');
  t.equal(calls, 0);

  await fsp.rename(pki.caCertPath, `${pki.caCertPath}.moved`);
  t.equal(await watcher.check(), true, 'a file disappearing is a change');
  await fsp.rename(`${pki.caCertPath}.moved`, pki.caCertPath);
  t.equal(await watcher.check(), true, 'and its return is one too');
  t.equal(await watcher.check(), false, 'reported once');
  t.equal(calls, 2);

  watcher.close();
  await writeFileAtomic(pki.serverCertPath, pki.clientCert, 0o644);
  t.equal(await watcher.check(), false, 'a closed watcher reports nothing');
  t.equal(calls, 2);
});

t.test('watchTlsFiles reports errors thrown by onChange', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const errors: unknown[] = [];
  const watcher = watchTlsFiles(
    pki.tlsConfig(),
    () => {
      throw new Error('boom');
    },
    { debounceMs: 60_000, pollIntervalMs: 60_000, onError: (err) => errors.push(err) },
  );
  t.teardown(() => watcher.close());
  await writeFileAtomic(pki.serverCertPath, pki.clientCert, 0o644);
  t.equal(await watcher.check(), true);
  t.match(errors, [{ message: 'boom' }]);
});
