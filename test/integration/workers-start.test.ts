/**
 * A worker group that cannot bind exits 1 with the reason; the primary loads none of the
 * request path.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { CLI, GROUP_WAIT_MS, tempDir } from '../helpers/worker-group';

function groupConfig(listenerPort: number): string {
  return `admin: { address: 127.0.0.1:0 }
workers: 2
accessLog: { path: "off" }
listeners:
  - name: main
    address: 127.0.0.1:${listenerPort}
    routes:
      - { name: app, match: { prefix: / }, directResponse: { status: 200, body: "ok" } }
`;
}

t.test('a group whose listener cannot bind exits 1 with the reason', async (t) => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as net.AddressInfo).port;
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, groupConfig(port));
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [CLI, 'run', '-c', file], { timeout: GROUP_WAIT_MS * 2 }, (_error, _stdout, stderr) => resolve({ code: child.exitCode, stderr }));
  });
  t.equal(result.code, 1);
  t.match(result.stderr, new RegExp(`sidecar: listener main cannot bind 127\\.0\\.0\\.1:${port}`));
});

t.test('the primary loads neither the proxy, undici nor OpenTelemetry', async (t) => {
  const dist = path.dirname(CLI);
  const script = `
    require(${JSON.stringify(path.join(dist, 'main.js'))});
    require(${JSON.stringify(path.join(dist, 'workers', 'primary.js'))});
    process.stdout.write(JSON.stringify(Object.keys(require.cache)));
  `;
  const loaded = await new Promise<string[]>((resolve, reject) => {
    execFile(process.execPath, ['-e', script], (error, stdout) => (error ? reject(error) : resolve(JSON.parse(stdout) as string[])));
  });
  t.ok(loaded.some((file) => file.endsWith(path.join('workers', 'supervisor.js'))), 'the primary modules were loaded');
  // Allowed: policy/breaker-state.js (the names and metric values of the breaker's states, no
  // breaker) and @opentelemetry/api (prom-client's dependency: the API, no SDK, no exporter).
  const allowed = [path.join(dist, 'policy', 'breaker-state.js')];
  const requestPath = loaded.filter(
    (file) =>
      /[\\/]node_modules[\\/](undici|@opentelemetry[\\/](?!api[\\/])|opossum|http-proxy)/.test(file) ||
      (!allowed.includes(file) && ['proxy', 'upstream', 'listener', 'policy', 'router', 'tls'].some((folder) => file.startsWith(path.join(dist, folder) + path.sep))) ||
      [path.join(dist, 'sidecar.js'), path.join(dist, 'telemetry', 'otel.js')].includes(file),
  );
  t.same(requestPath, [], 'none of the request path');
});
