/**
 * The life of a worker group: a crashed worker is restarted (with a backoff that grows while
 * it keeps crashing) and the others serve meanwhile; SIGTERM to the primary, or SIGINT to the
 * whole process group as a terminal sends it, drains requests in flight and exits 0; a group
 * that cannot bind exits 1 with the reason; the primary loads none of the request path.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { makeTestPki } from '../helpers/certs';
import { becomesRefused, eventually } from '../helpers/net-probe';
import { startUpstream } from '../helpers/upstream';
import { CLI, fetchOnce, GROUP_WAIT_MS, primaryLog, readyStatus, scrape, startGroup, tempDir, workersOf, type RunningGroup } from '../helpers/worker-group';

function groupConfig(upstreamUrl: string, extra = ''): string {
  return `admin: { address: 127.0.0.1:0 }
workers: 2
accessLog: { path: "off" }
drain: { delay: 1s, timeout: 20s }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: app, match: { prefix: / }, cluster: app }
${extra}
clusters:
  - name: app
    endpoints: [{ url: ${upstreamUrl} }]
`;
}

async function gatedUpstream(t: Test): Promise<{ url: string; release: () => void; seen: () => number }> {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let seen = 0;
  const upstream = await startUpstream((req, res) => {
    seen++;
    if (req.url === '/slow') void gate.then(() => res.end('slow done'));
    else res.end('ok');
  });
  t.teardown(() => upstream.close());
  t.teardown(() => release());
  return { url: upstream.url, release: () => release(), seen: () => seen };
}

/** Slow requests, each on a connection of its own (so that both workers get some). */
function slowRequests(group: RunningGroup, count: number): Promise<Array<{ status: number; body: string }>> {
  return Promise.all(Array.from({ length: count }, () => fetchOnce(`http://127.0.0.1:${group.listenerPort}/slow`, { timeoutMs: 60_000 })));
}

async function drainsInOrder(t: Test, group: RunningGroup, signal: () => void, upstream: Awaited<ReturnType<typeof gatedUpstream>>): Promise<void> {
  const slow = slowRequests(group, 4);
  t.ok(await eventually(() => upstream.seen() === 4, GROUP_WAIT_MS), 'the slow requests reached the app');
  signal();
  t.ok(await eventually(async () => (await readyStatus(group)) === 503, GROUP_WAIT_MS), '/ready turns 503');
  t.ok(await becomesRefused(group.listenerPort, GROUP_WAIT_MS), 'new connections are refused after drain.delay');
  t.equal(group.child.exitCode, null, 'still running: requests are in flight');
  upstream.release();
  t.same(await slow, Array.from({ length: 4 }, () => ({ status: 200, body: 'slow done' })), 'every request in flight completed');
  t.same(await group.exited, { code: 0, signal: null }, 'exit code 0');
  t.ok(primaryLog(group).some((e) => e.msg === 'drained' && e.cutConnections === 0), 'the primary drained, nothing cut');
  t.equal(group.log.filter((e) => e.worker !== undefined && e.msg === 'drained').length, 2, 'both workers drained');
}

t.test('a killed worker is restarted; the other serves meanwhile', async (t) => {
  const upstream = await gatedUpstream(t);
  const group = await startGroup(t, groupConfig(upstream.url));
  const [victim, other] = await workersOf(group);
  process.kill(victim.pid as number, 'SIGKILL');
  // New connections go to the live worker while the other restarts.
  for (let i = 0; i < 20; i++) {
    const answer = await fetchOnce(`http://127.0.0.1:${group.listenerPort}/`);
    t.equal(answer.status, 200, `request ${i + 1} during the restart`);
  }
  t.ok(
    await eventually(async () => {
      const workers = await workersOf(group);
      return (await readyStatus(group)) === 200 && workers[0].pid !== victim.pid && workers[0].state === 'ready';
    }, GROUP_WAIT_MS),
    '/ready is 200 again, with a new worker 1',
  );
  const workers = await workersOf(group);
  t.equal(workers[1].pid, other.pid, 'the other worker was left alone');
  t.equal(workers[0].restarts, 1);
  const metrics = await scrape(group);
  t.equal(metrics.value('sidecar_worker_restarts_total', { worker: '1' }), 1, 'counted');
  t.equal(metrics.value('sidecar_worker_restarts_total', { worker: '2' }), 0);
  t.ok(group.log.some((e) => e.msg === 'worker exited unexpectedly: restarting it' && e.worker === 1 && e.signal === 'SIGKILL' && e.pid === victim.pid), 'logged');
  const answers = await Promise.all(Array.from({ length: 10 }, () => fetchOnce(`http://127.0.0.1:${group.listenerPort}/`)));
  t.same(answers.map((a) => a.status), Array.from({ length: 10 }, () => 200), 'served by the group after the restart');
  group.child.kill('SIGTERM');
  t.equal((await group.exited).code, 0);
});

t.test('a worker that keeps crashing is restarted with a growing delay, not in a hot loop', async (t) => {
  const upstream = await gatedUpstream(t);
  const pki = await makeTestPki(await tempDir(t));
  const keyCopy = path.join(path.dirname(pki.serverKeyPath), 'server-copy.key');
  await fsp.copyFile(pki.serverKeyPath, keyCopy);
  const group = await startGroup(
    t,
    groupConfig(
      upstream.url,
      `  - name: secure
    address: 127.0.0.1:0
    tls: { cert: ${pki.serverCertPath}, key: ${keyCopy} }
    routes:
      - { name: secure, match: { prefix: / }, cluster: app }`,
    ),
  );
  // A worker reads its certificates when it starts: without the key, every restart fails.
  await fsp.rm(keyCopy);
  const [victim] = await workersOf(group);
  process.kill(victim.pid as number, 'SIGKILL');
  const crashes = (): Array<Record<string, unknown>> => group.log.filter((e) => e.msg === 'worker exited unexpectedly: restarting it' && e.worker === 1);
  t.ok(await eventually(() => crashes().length >= 3, GROUP_WAIT_MS), 'three crashes');
  const [first, second, third] = crashes();
  t.same([first.restartInMs, second.restartInMs, third.restartInMs], [500, 1000, 2000], 'the delay doubles');
  t.match(second.error, /secure/, 'the reason the restart failed is logged');
  const gapMs = Date.parse(String(third.time)) - Date.parse(String(second.time));
  t.ok(gapMs >= 1000, `a restart waited its delay (${gapMs}ms between crashes)`);
  t.equal(await readyStatus(group), 503, 'not ready while a worker is missing');
  t.equal((await fetchOnce(`http://127.0.0.1:${group.listenerPort}/`)).status, 200, 'the other worker serves');

  await fsp.copyFile(pki.serverKeyPath, keyCopy);
  t.ok(await eventually(async () => (await readyStatus(group)) === 200, GROUP_WAIT_MS), 'ready again once a restart succeeds');
  group.child.kill('SIGTERM');
  t.equal((await group.exited).code, 0);
});

t.test('SIGTERM to the primary: requests in flight in every worker complete, then exit 0', async (t) => {
  const upstream = await gatedUpstream(t);
  const group = await startGroup(t, groupConfig(upstream.url));
  await drainsInOrder(t, group, () => group.child.kill('SIGTERM'), upstream);
});

t.test("SIGINT to the whole process group (a terminal's Ctrl-C): the workers wait for the primary's drain", async (t) => {
  const upstream = await gatedUpstream(t);
  const group = await startGroup(t, groupConfig(upstream.url), { detached: true });
  await drainsInOrder(t, group, () => process.kill(-(group.child.pid as number), 'SIGINT'), upstream);
});

t.test('a group whose listener cannot bind exits 1 with the reason', async (t) => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as net.AddressInfo).port;
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, groupConfig('http://127.0.0.1:9').replace('address: 127.0.0.1:0\n    routes', `address: 127.0.0.1:${port}\n    routes`));
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
  // Allowed: proxy/path.js (the config schema checks route paths with its normal form) and
  // @opentelemetry/api (prom-client's dependency: the API, no SDK, no exporter).
  const requestPath = loaded.filter(
    (file) =>
      /[\\/]node_modules[\\/](undici|@opentelemetry[\\/](?!api[\\/])|opossum|http-proxy)/.test(file) ||
      (file.startsWith(path.join(dist, 'proxy')) && file !== path.join(dist, 'proxy', 'path.js')) ||
      ['upstream', 'listener', 'policy', 'router', 'tls'].some((folder) => file.startsWith(path.join(dist, folder) + path.sep)) ||
      [path.join(dist, 'sidecar.js'), path.join(dist, 'telemetry', 'otel.js')].includes(file),
  );
  t.same(requestPath, [], 'none of the request path');
});
