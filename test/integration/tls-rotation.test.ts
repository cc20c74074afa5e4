/**
 * Certificate rotation on a running sidecar: replacing the files on disk changes the
 * certificate new handshakes see, while requests keep flowing (on kept-alive connections,
 * new connections and an HTTP/2 session) without a single failure. A broken replacement is
 * logged with its file and the last good certificate stays.
 */

import { promises as fsp } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import t from 'tap';
import { issueServerCertificate, makeTestPki, peerCertificate, withTimeout, writeFileAtomic } from '../helpers/certs';
import { startSidecar } from '../helpers/sidecar';
import { captureLogger, connectH2, h2Request, httpsRequest } from '../helpers/tls-clients';
import { startUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

const ROTATION_TIMEOUT_MS = 15_000;
/** Requests each loop completes before the swap and after the new certificate is seen, so the loops span it. */
const REQUESTS_AFTER_SWAP = 20;

interface LoopStats {
  ok: number;
  okAfterSwap: number;
  readonly failures: string[];
  readonly serials: Set<string>;
}

t.test('replacing the certificate on disk: new handshakes get it, no request fails', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'pki'));
  const next = await issueServerCertificate(pki.dir, path.join(dir, 'next'), ['localhost']);
  const live = path.join(dir, 'live');
  await fsp.mkdir(live);
  const certPath = path.join(live, 'server.crt');
  const keyPath = path.join(live, 'server.key');
  await fsp.copyFile(pki.serverCertPath, certPath);
  await fsp.copyFile(pki.serverKeyPath, keyPath);

  const app = await startUpstream((_req, res) => res.end('ok'));
  const log = captureLogger();
  const proxy = await startSidecar(
    `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls: { cert: ${JSON.stringify(certPath)}, key: ${JSON.stringify(keyPath)} }
    keepAliveTimeout: 60s
    routes:
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`,
    { logger: log.logger },
  );
  const agent = new https.Agent({ keepAlive: true, maxSockets: 2 });
  const session = await connectH2(proxy.port(), { ca: pki.ca });
  t.teardown(async () => {
    session.destroy();
    agent.destroy();
    await proxy.close();
    await app.close();
  });
  const port = proxy.port();
  const served = async () => (await peerCertificate({ port, servername: 'localhost', ca: pki.ca })).serialNumber.toUpperCase();
  t.equal(await served(), pki.serverSerial, 'the first certificate is served');
  await log.waitFor((l) => l.msg === 'TLS certificates loaded');

  let swapped = false;
  let running = true;
  const allStats: LoopStats[] = [];
  const loop = async (send: () => Promise<{ status: number; body: string; serial?: string }>): Promise<LoopStats> => {
    const stats: LoopStats = { ok: 0, okAfterSwap: 0, failures: [], serials: new Set() };
    allStats.push(stats);
    while (running) {
      try {
        const reply = await send();
        if (reply.status === 200 && reply.body === 'ok') {
          stats.ok += 1;
          if (swapped) stats.okAfterSwap += 1;
          if (reply.serial !== undefined) stats.serials.add(reply.serial);
        } else {
          stats.failures.push(`status ${reply.status}: ${reply.body}`);
        }
      } catch (error) {
        stats.failures.push(error instanceof Error ? error.message : String(error));
      }
      if (swapped && stats.okAfterSwap >= REQUESTS_AFTER_SWAP) break;
    }
    return stats;
  };
  const loops = {
    'new connection per request': loop(async () => {
      const reply = await httpsRequest({ port, ca: pki.ca, path: '/' });
      return { ...reply, serial: reply.peerSerial };
    }),
    'kept-alive connections': loop(() => httpsRequest({ port, ca: pki.ca, path: '/', agent })),
    'one HTTP/2 session': loop(() => h2Request(session, { ':path': '/' })),
  };

  await waitUntil(() => allStats.every((stats) => stats.ok >= REQUESTS_AFTER_SWAP), 'the request loops to get going', ROTATION_TIMEOUT_MS);
  // Tools replace certificates by renaming new files over the old ones.
  await writeFileAtomic(keyPath, next.key);
  await writeFileAtomic(certPath, next.cert, 0o644);
  await waitUntil(async () => (await served()) === next.serial, 'a new handshake to see the new certificate', ROTATION_TIMEOUT_MS, 50);
  swapped = true;
  const results = await withTimeout(
    Promise.all(Object.entries(loops).map(async ([name, stats]) => [name, await stats] as const)),
    ROTATION_TIMEOUT_MS,
    'the request loops',
  );
  running = false;
  for (const [name, stats] of results) {
    t.same(stats.failures, [], `${name}: no failed request (${stats.ok} succeeded)`);
    t.ok(stats.okAfterSwap >= REQUESTS_AFTER_SWAP, `${name}: kept going after the swap`);
  }
  const perConnection = results.find(([name]) => name === 'new connection per request')?.[1];
  t.ok(perConnection?.serials.has(pki.serverSerial), 'new connections got the old certificate before the swap');
  t.ok(perConnection?.serials.has(next.serial), 'and the new one after it');
  const reloaded = await log.waitFor((l) => l.msg.startsWith('TLS certificates reloaded'));
  t.match(reloaded, { listener: 'secure', certificates: [{ file: certPath, serial: next.serial }] }, 'the reload is logged');
  t.notOk(JSON.stringify(log.lines).includes('PRIVATE KEY'), 'no key material in the log');

  t.test('a broken replacement is logged with its file; the last good certificate stays', async (t) => {
    const from = log.lines.length;
    await writeFileAtomic(keyPath, 'not a key\n');
    const failed = await log.waitFor((l) => l.msg.startsWith('TLS certificate reload failed'), ROTATION_TIMEOUT_MS, from);
    t.match(failed, { listener: 'secure', file: keyPath, field: 'tls.key', error: /not a PEM private key/ }, 'names the file and the problem');
    t.equal(await served(), next.serial, 'new handshakes still get the last good certificate');
    const reply = await httpsRequest({ port, ca: pki.ca, path: '/' });
    t.equal(reply.status, 200, 'and requests are served');
  });

  t.test('the watcher stops with the listener', async (t) => {
    const listener = proxy.sidecar.listeners[0];
    await proxy.close();
    await writeFileAtomic(keyPath, pki.serverKey);
    await writeFileAtomic(certPath, pki.serverCert, 0o644);
    t.equal(await listener?.tls?.checkFiles(), false, 'a closed listener no longer looks at its files');
  });
});
