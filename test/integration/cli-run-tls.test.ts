/**
 * `sidecar run` with TLS listeners, as users run it (`npm test` builds dist/ first): a
 * certificate or key that cannot be used stops the start with exit 1 and a message naming
 * the file, before any port is bound; good certificates start a sidecar that answers HTTPS.
 */

import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { makeTestPki, withTimeout } from '../helpers/certs';
import { httpsRequest } from '../helpers/tls-clients';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

function run(configPath: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'run', '-c', configPath], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

function config(adminPort: number, cert: string, key: string): string {
  return `
admin: { address: 127.0.0.1:${adminPort} }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls: { cert: ${cert}, key: ${key} }
    routes:
      - { name: ping, match: { path: /ping }, directResponse: { status: 200, body: pong } }
clusters: []
`;
}

t.test('a certificate or key that cannot be used: exit 1 naming the file, nothing bound', async (t) => {
  const dir = t.testdir();
  await makeTestPki(path.join(dir, 'certs'));
  await makeTestPki(path.join(dir, 'other'));
  // The admin address is taken: a sidecar that bound anything before reading its
  // certificates would fail with "cannot bind" instead of naming the certificate file.
  const blocker = net.createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const takenPort = (blocker.address() as AddressInfo).port;

  // More kinds of broken files are covered by test/unit/tls-context.test.ts; these prove the
  // command's behaviour. They run at once: each is a process start.
  const cases: Array<[string, string, string, string, RegExp]> = [
    ['missing certificate', 'certs/nope.crt', 'certs/server.key', path.join(dir, 'certs', 'nope.crt'), /tls\.cert: .* file not found/],
    ['missing key', 'certs/server.crt', 'certs/nope.key', path.join(dir, 'certs', 'nope.key'), /tls\.key: .* file not found/],
    ['key of another certificate', 'certs/server.crt', 'other/server.key', path.join(dir, 'other', 'server.key'), /does not match the certificate/],
    ['certificate and key swapped', 'certs/server.key', 'certs/server.crt', path.join(dir, 'certs', 'server.key'), /swapped/],
  ];
  const results = await Promise.all(
    cases.map(async ([label, cert, key]) => {
      const configPath = path.join(dir, `${label.replace(/\W+/g, '-')}.yaml`);
      await fsp.writeFile(configPath, config(takenPort, cert, key));
      return run(configPath);
    }),
  );
  cases.forEach(([label, , , file, problem], i) => {
    const result = results[i];
    t.equal(result?.code, 1, `${label}: exit 1`);
    t.ok(result?.stderr.includes(file), `${label}: names ${file}: ${result?.stderr.trim()}`);
    t.match(result?.stderr, problem, `${label}: says what is wrong`);
    t.match(result?.stderr, /listener secure/, `${label}: names the listener`);
    t.notMatch(result?.stderr, /cannot bind|EADDRINUSE/, `${label}: failed before binding`);
  });
});

t.test('good certificates: the sidecar answers HTTPS and /ready is 200', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'certs'));
  const configPath = path.join(dir, 'sidecar.yaml');
  await fsp.writeFile(configPath, config(0, 'certs/server.crt', 'certs/server.key'));
  const child = spawn(process.execPath, [CLI, 'run', '-c', configPath], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const ready = new Promise<{ listeners: string[]; admin: string }>((resolve) => {
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      for (const line of stderr.split('\n')) {
        if (line.includes('"sidecar ready"')) resolve(JSON.parse(line) as { listeners: string[]; admin: string });
      }
    });
  });
  const started = await withTimeout(ready, 20_000, 'the sidecar to start');
  t.match(stderr, /"TLS certificates loaded"/);
  t.notMatch(stderr, /PRIVATE KEY/, 'no key material in the log');
  const port = Number(started.listeners[0]?.split(':').at(-1));
  const reply = await httpsRequest({ port, ca: pki.ca, path: '/ping' });
  t.equal(reply.status, 200);
  t.equal(reply.body, 'pong');
  const readyReply = await fetch(`http://${started.admin}/ready`);
  t.equal(readyReply.status, 200, '/ready');
  child.kill('SIGTERM');
  const [code] = (await withTimeout(exited, 20_000, 'the sidecar to stop')) as [number | null];
  t.equal(code, 0, 'a graceful stop');
});
