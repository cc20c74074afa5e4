/**
 * A worker that exits unasked is restarted, with a backoff that grows while it keeps
 * crashing; the other workers serve meanwhile.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { makeTestPki } from '../helpers/certs';
import { waitUntil } from '../helpers/wait';
import { startUpstream } from '../helpers/upstream';
import { fetchOnce, GROUP_WAIT_MS, readyStatus, scrape, startGroup, tempDir, workersOf } from '../helpers/worker-group';

function groupConfig(upstreamUrl: string, extra = ''): string {
  return `admin: { address: 127.0.0.1:0 }
workers: 2
accessLog: { path: "off" }
drain: { delay: 0s, timeout: 5s }
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

async function appUpstream(t: Test): Promise<{ url: string }> {
  const upstream = await startUpstream((_req, res) => res.end('ok'));
  t.teardown(() => upstream.close());
  return upstream;
}

t.test('a killed worker is restarted; the other serves meanwhile', async (t) => {
  const upstream = await appUpstream(t);
  const group = await startGroup(t, groupConfig(upstream.url));
  const [victim, other] = await workersOf(group);
  process.kill(victim.pid as number, 'SIGKILL');
  // New connections go to the live worker while the other restarts.
  for (let i = 0; i < 20; i++) {
    const answer = await fetchOnce(`http://127.0.0.1:${group.listenerPort}/`);
    t.equal(answer.status, 200, `request ${i + 1} during the restart`);
  }
  await waitUntil(
    async () => {
      const workers = await workersOf(group);
      return (await readyStatus(group)) === 200 && workers[0].pid !== victim.pid && workers[0].state === 'ready';
    },
    '/ready to be 200 again, with a new worker 1',
    GROUP_WAIT_MS,
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
  const upstream = await appUpstream(t);
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
  await waitUntil(() => crashes().length >= 3, 'three crashes', GROUP_WAIT_MS);
  const [first, second, third] = crashes();
  t.same([first.restartInMs, second.restartInMs, third.restartInMs], [500, 1000, 2000], 'the delay doubles');
  t.match(second.error, /secure/, 'the reason the restart failed is logged');
  const gapMs = Date.parse(String(third.time)) - Date.parse(String(second.time));
  t.ok(gapMs >= 1000, `a restart waited its delay (${gapMs}ms between crashes)`);
  t.equal(await readyStatus(group), 503, 'not ready while a worker is missing');
  t.equal((await fetchOnce(`http://127.0.0.1:${group.listenerPort}/`)).status, 200, 'the other worker serves');

  await fsp.copyFile(pki.serverKeyPath, keyCopy);
  await waitUntil(async () => (await readyStatus(group)) === 200, '/ready to be 200 again once a restart succeeds', GROUP_WAIT_MS);
  group.child.kill('SIGTERM');
  t.equal((await group.exited).code, 0);
});
