/**
 * A TLS 1.3 upstream that requires a client certificate checks it after the client's
 * handshake has ended: the refusal is the alert "certificate required" (116), read once the
 * request is on its way. It is answered 502 UPSTREAM_TLS_FAILURE naming the reason, not
 * UPSTREAM_RESET. The upstream is `openssl s_server -Verify 1 -tls1_3`, which sends the alert
 * (Node's TLS server closes without it).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { makeTestPki, type TestPki } from '../helpers/certs';
import { startSidecar } from '../helpers/sidecar';
import { captureLogger } from '../helpers/tls-clients';

/** openssl s_server on a free port, requiring a client certificate from the test CA, TLS 1.3 only. */
function startOpensslServer(pki: TestPki): Promise<{ port: number; child: ChildProcess }> {
  const args = ['s_server', '-accept', '127.0.0.1:0', '-cert', pki.serverCertPath, '-key', pki.serverKeyPath, '-CAfile', pki.caCertPath, '-Verify', '1', '-tls1_3', '-www'];
  const child = spawn('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      out += chunk;
      const m = /^ACCEPT 127\.0\.0\.1:(\d+)$/m.exec(out);
      if (m) resolve({ port: Number(m[1]), child });
    });
    child.stderr?.resume();
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`openssl s_server exited (${code}) before accepting: ${out}`)));
  });
}

function config(port: number, tls: string): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: api
        retry: { attempts: 2, on: [5xx, reset, connect-failure] }
clusters:
  - name: api
    endpoints: [{ url: https://127.0.0.1:${port} }]
    tls: ${tls}
`;
}

t.test('TLS 1.3 upstream requiring a client certificate', async (t) => {
  const pki = await makeTestPki(path.join(t.testdir(), 'pki'));
  const server = await startOpensslServer(pki);
  t.teardown(() => void server.child.kill());

  t.test('without cert/key: 502 UPSTREAM_TLS_FAILURE naming the reason, not retried to the same endpoint', async (t) => {
    const log = captureLogger();
    const sidecar = await startSidecar(config(server.port, `{ ca: ${pki.caCertPath}, serverName: localhost }`), { logger: log.logger });
    t.teardown(() => sidecar.close());
    const response = await request(`${sidecar.url()}/`);
    const body = (await response.body.json()) as { error: string; message: string };
    t.equal(response.statusCode, 502);
    t.equal(response.headers['x-sidecar-error'], 'UPSTREAM_TLS_FAILURE');
    t.match(body.message, /requires a client certificate \(set clusters\[\]\.tls\.cert and key\)/);
    t.match(sidecar.accessLog.at(-1), { status: 502, attempts: 1, error: 'UPSTREAM_TLS_FAILURE' });
    t.match(log.lines.find((l) => l.msg === 'TLS handshake with the upstream failed'), { cluster: 'api', reason: /requires a client certificate/ });
  });

  t.test('with cert and key: 200', async (t) => {
    const sidecar = await startSidecar(config(server.port, `{ ca: ${pki.caCertPath}, serverName: localhost, cert: ${pki.clientCertPath}, key: ${pki.clientKeyPath} }`));
    t.teardown(() => sidecar.close());
    const response = await request(`${sidecar.url()}/`);
    await response.body.dump();
    t.equal(response.statusCode, 200);
  });
});
