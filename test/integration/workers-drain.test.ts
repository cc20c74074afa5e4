/**
 * SIGTERM to the primary, or SIGINT to the whole process group as a terminal sends it, drains
 * the requests in flight in every worker and exits 0.
 */
import t, { type Test } from 'tap';
import { connectionRefused } from '../helpers/net-probe';
import { waitUntil } from '../helpers/wait';
import { startUpstream } from '../helpers/upstream';
import { fetchOnce, GROUP_WAIT_MS, primaryLog, readyStatus, startGroup, type RunningGroup } from '../helpers/worker-group';

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
  await waitUntil(() => upstream.seen() === 4, 'the slow requests to reach the app', GROUP_WAIT_MS);
  signal();
  await waitUntil(async () => (await readyStatus(group)) === 503, '/ready to turn 503', GROUP_WAIT_MS);
  await waitUntil(() => connectionRefused(group.listenerPort), 'new connections to be refused after drain.delay', GROUP_WAIT_MS);
  t.equal(group.child.exitCode, null, 'still running: requests are in flight');
  upstream.release();
  t.same(await slow, Array.from({ length: 4 }, () => ({ status: 200, body: 'slow done' })), 'every request in flight completed');
  t.same(await group.exited, { code: 0, signal: null }, 'exit code 0');
  t.ok(primaryLog(group).some((e) => e.msg === 'drained' && e.cutConnections === 0), 'the primary drained, nothing cut');
  t.equal(group.log.filter((e) => e.worker !== undefined && e.msg === 'drained').length, 2, 'both workers drained');
}

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
