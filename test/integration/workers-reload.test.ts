/**
 * Reloads with `workers: 2`: the primary validates the file once and every worker applies it;
 * an invalid file keeps the running config in every worker; a worker that cannot apply a
 * valid one (a listener that cannot bind) is reported and nothing changes; listeners are
 * added and removed in every worker.
 */
import net from 'node:net';
import t from 'tap';
import { sha256, writeAtomic } from '../helpers/config-file';
import { connectionRefused } from '../helpers/net-probe';
import { waitUntil } from '../helpers/wait';
import { closedPort, startUpstream } from '../helpers/upstream';
import { adminJson, fetchOnce, GROUP_WAIT_MS, primaryLog, readyStatus, scrape, startGroup, workersOf, type RunningGroup } from '../helpers/worker-group';

/** Requests on connections of their own: enough for each worker to answer many of them. */
const REQUESTS_PER_CHECK = 40;

function groupConfig(upstreamUrl: string, hello: string, extraListeners = ''): string {
  return `admin: { address: 127.0.0.1:0 }
workers: 2
accessLog: { path: "off" }
drain: { delay: 0s, timeout: 5s }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: hello, match: { path: /hello }, directResponse: { status: 200, body: "${hello}" } }
      - { name: app, match: { prefix: / }, cluster: app }
${extraListeners}
clusters:
  - name: app
    endpoints: [{ url: ${upstreamUrl} }]
`;
}

/** What every one of many requests to `url` answered, counted by answer. */
async function answersOf(url: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < REQUESTS_PER_CHECK; i++) {
    const answer = await fetchOnce(url);
    const key = `${answer.status} ${answer.body}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** POST /reload; the watcher may have taken the change first (then the answer is `unchanged`). */
async function reload(group: RunningGroup): Promise<{ status: number; outcome: Record<string, unknown> }> {
  const answer = await fetchOnce(group.adminUrl + '/reload', { method: 'POST' });
  return { status: answer.status, outcome: JSON.parse(answer.body) as Record<string, unknown> };
}

async function everyWorkerRuns(group: RunningGroup, text: string): Promise<boolean> {
  const expected = sha256(text);
  const config = await adminJson<{ sha256: string; workers: Array<{ sha256: string; state: string }> }>(group, '/config');
  return config.sha256 === expected && config.workers.every((w) => w.state === 'ready' && w.sha256 === expected);
}

t.test('reloads reach every worker', async (t) => {
  const upstream = await startUpstream((_req, res) => res.end('app'));
  t.teardown(() => upstream.close());
  const v1 = groupConfig(upstream.url, 'v1');
  const group = await startGroup(t, v1);
  const hello = `http://127.0.0.1:${group.listenerPort}/hello`;
  t.same(await answersOf(hello), { '200 v1': REQUESTS_PER_CHECK });

  await t.test('a changed route: every worker serves it', async (t) => {
    const v2 = groupConfig(upstream.url, 'v2');
    await writeAtomic(group.file, v2);
    const { status, outcome } = await reload(group);
    t.equal(status, 200);
    t.match(outcome.result, /^(applied|unchanged)$/);
    t.ok(await everyWorkerRuns(group, v2), 'the primary and every worker run the new file');
    t.same(await answersOf(hello), { '200 v2': REQUESTS_PER_CHECK }, 'every request sees the new route');
    t.equal(await readyStatus(group), 200);
  });

  await t.test('an invalid file: rejected with its line, the running config kept in every worker', async (t) => {
    const running = groupConfig(upstream.url, 'v2');
    await writeAtomic(group.file, running.replace('directResponse: { status: 200', 'directResponse: { status: "two hundred"'));
    const { status, outcome } = await reload(group);
    t.equal(status, 422);
    t.equal(outcome.result, 'rejected');
    t.match(outcome.message, new RegExp(`${group.file}:9:\\d+ listeners\\[0\\]\\.routes\\[0\\]\\.directResponse\\.status`), 'path:line of the error');
    t.ok(await everyWorkerRuns(group, running), 'every worker still runs the last good file');
    t.same(await answersOf(hello), { '200 v2': REQUESTS_PER_CHECK });
    t.equal(await readyStatus(group), 200, 'still ready');
    const config = await adminJson<{ lastReloadError: string | null }>(group, '/config');
    t.match(config.lastReloadError, /directResponse\.status/);
    const metrics = await scrape(group);
    const rejections = primaryLog(group).filter((e) => e.msg === 'config rejected; the last good config stays').length;
    t.ok(rejections >= 1);
    t.equal(metrics.value('sidecar_config_reloads_total', { result: 'failure' }), rejections, 'each rejection counted once, by the primary');
    t.equal(metrics.value('sidecar_config_last_reload_success'), 0);
    t.notOk(group.log.some((e) => e.worker !== undefined && e.msg === 'config rejected; the last good config stays'), 'the workers never saw the invalid file');
  });

  await t.test('a listener that cannot bind: every worker refuses, it is reported, nothing changes', async (t) => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as net.AddressInfo).port;
    const running = groupConfig(upstream.url, 'v2');
    const clashing = groupConfig(
      upstream.url,
      'v3',
      `  - name: extra
    address: 127.0.0.1:${port}
    routes:
      - { name: extra, match: { prefix: / }, directResponse: { status: 200, body: "extra" } }`,
    );
    await writeAtomic(group.file, clashing);
    // The watcher may be first: then this reload reads the same bytes and is refused again.
    const { status, outcome } = await reload(group);
    t.equal(status, 422, JSON.stringify(outcome));
    t.match(outcome.message, new RegExp(`listeners\\[1\\]: listener extra cannot bind 127\\.0\\.0\\.1:${port}.*nothing was changed \\(workers 1, 2\\)`), 'the reason, and which workers');
    t.same(
      (outcome.workers as Array<{ worker: number; result: string }>).map((w) => [w.worker, w.result]),
      [
        [1, 'rejected'],
        [2, 'rejected'],
      ],
    );
    t.ok(await everyWorkerRuns(group, running), 'the running config everywhere');
    t.same(await answersOf(hello), { '200 v2': REQUESTS_PER_CHECK }, 'the running routes are served');
    t.equal(await readyStatus(group), 200);
  });

  await t.test('a listener added, moved, then removed, in every worker', async (t) => {
    const withExtra = groupConfig(
      upstream.url,
      'v4',
      `  - name: extra
    address: 127.0.0.1:0
    routes:
      - { name: extra, match: { prefix: / }, directResponse: { status: 200, body: "extra" } }`,
    );
    await writeAtomic(group.file, withExtra);
    t.match((await reload(group)).outcome.result, /^(applied|unchanged)$/);
    t.ok(await everyWorkerRuns(group, withExtra));
    const workers = await workersOf(group);
    const extra = workers.map((w) => w.listeners.find((l) => l.startsWith('extra@')));
    t.ok(extra[0] !== undefined && extra.every((l) => l === extra[0]), `both workers have it, on one port: ${JSON.stringify(extra)}`);
    const extraPort = Number(extra[0]?.split(':').pop());
    t.same(await answersOf(`http://127.0.0.1:${extraPort}/`), { '200 extra': REQUESTS_PER_CHECK }, 'served');
    t.same(await answersOf(hello), { '200 v4': REQUESTS_PER_CHECK });

    const movedTo = await closedPort();
    const moved = withExtra.replace('address: 127.0.0.1:0\n    routes:\n      - { name: extra', `address: 127.0.0.1:${movedTo}\n    routes:\n      - { name: extra`);
    t.not(moved, withExtra);
    await writeAtomic(group.file, moved);
    t.match((await reload(group)).outcome.result, /^(applied|unchanged)$/);
    t.ok(await everyWorkerRuns(group, moved));
    t.same(
      (await workersOf(group)).map((w) => w.listeners.find((l) => l.startsWith('extra@'))),
      [`extra@127.0.0.1:${movedTo}`, `extra@127.0.0.1:${movedTo}`],
      'moved in both workers',
    );
    t.same(await answersOf(`http://127.0.0.1:${movedTo}/`), { '200 extra': REQUESTS_PER_CHECK }, 'served at the new address');
    await waitUntil(() => connectionRefused(extraPort), 'the old address to close', GROUP_WAIT_MS);

    const without = groupConfig(upstream.url, 'v5');
    await writeAtomic(group.file, without);
    t.match((await reload(group)).outcome.result, /^(applied|unchanged)$/);
    t.ok(await everyWorkerRuns(group, without));
    await waitUntil(() => connectionRefused(movedTo), 'the removed listener to close in every worker', GROUP_WAIT_MS);
    await waitUntil(async () => (await workersOf(group)).every((w) => w.listeners.length === 1), 'every worker to report one listener', GROUP_WAIT_MS);
    t.same(await answersOf(hello), { '200 v5': REQUESTS_PER_CHECK });
  });

  group.child.kill('SIGTERM');
  t.equal((await group.exited).code, 0);
});
