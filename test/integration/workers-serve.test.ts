/**
 * `workers: 2`: both worker processes serve the shared listener; the admin listener of the
 * primary answers for the group (/metrics sums every worker, /stats merges them, /clusters
 * lists each worker's breakers); a worker that does not answer does not hold /metrics; the
 * access log of both workers to one pipe never interleaves lines; `sidecar status` works.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { waitUntil } from '../helpers/wait';
import { startUpstream } from '../helpers/upstream';
import { adminJson, CLI, fetchOnce, GROUP_WAIT_MS, scrape, startGroup, workersOf, type RunningGroup } from '../helpers/worker-group';

/** Long enough that a line is near PIPE_BUF: two workers' writes would interleave if one held more than a line. */
const LONG_PATH = `/long/${'p'.repeat(3_500)}`;

function groupConfig(upstreamUrl: string): string {
  return `admin: { address: 127.0.0.1:0 }
workers: 2
accessLog: { path: stdout }
drain: { delay: 0s, timeout: 10s }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: app, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${upstreamUrl} }]
`;
}

interface StatsWorker {
  readonly worker: number;
  readonly pid: number;
  readonly recentRequests: number | null;
  readonly error?: string;
}

async function statsWorkers(group: RunningGroup): Promise<StatsWorker[]> {
  return (await adminJson<{ workers: StatsWorker[] }>(group, '/stats')).workers;
}

t.test('workers: 2', async (t) => {
  const upstream = await startUpstream((req, res) => {
    req.resume();
    res.end('ok');
  });
  t.teardown(() => upstream.close());
  const group = await startGroup(t, groupConfig(upstream.url));
  const base = `http://127.0.0.1:${group.listenerPort}`;
  let sent = 0;
  const send = async (path = '/'): Promise<void> => {
    const answer = await fetchOnce(base + path);
    sent++;
    if (answer.status !== 200) throw new Error(`request ${sent} answered ${answer.status}: ${answer.body}`);
  };

  await t.test('two worker processes, distinct from the primary, both serving the one port', async (t) => {
    t.same(await fetchOnce(group.adminUrl + '/live'), { status: 200, body: 'live\n' });
    t.same(await fetchOnce(group.adminUrl + '/ready'), { status: 200, body: 'ready\n' });
    const workers = await workersOf(group);
    t.equal(workers.length, 2);
    const pids = workers.map((w) => w.pid);
    t.equal(new Set(pids).size, 2, 'two processes');
    t.notOk(pids.includes(group.child.pid ?? -1), 'neither is the primary');
    t.same(
      workers.map((w) => w.listeners),
      [[`main@127.0.0.1:${group.listenerPort}`], [`main@127.0.0.1:${group.listenerPort}`]],
      'the same port in both',
    );

    // Connections are what node:cluster spreads: each request has its own. Round-robin
    // serves both at once; the bound is for a scheduler that would not.
    for (let i = 0; i < 10; i++) await send();
    let both = false;
    for (let round = 0; round < 20 && !both; round++) {
      both = (await statsWorkers(group)).every((w) => (w.recentRequests ?? 0) > 0);
      if (!both) for (let i = 0; i < 10; i++) await send();
    }
    t.ok(both, `both workers answered requests: ${JSON.stringify(await statsWorkers(group))}`);
  });

  await t.test('/metrics is one exposition whose totals are the requests sent', async (t) => {
    const metrics = await scrape(group);
    t.equal(metrics.sum('sidecar_requests_total', { listener: 'main', route: 'app', code: '200' }), sent, 'sidecar_requests_total');
    t.equal(metrics.sum('sidecar_request_duration_seconds_count', { route: 'app' }), sent, 'the histogram count');
    t.equal(metrics.value('sidecar_request_duration_seconds_bucket', { listener: 'main', route: 'app', cluster: 'app', le: '+Inf' }), sent, 'one +Inf bucket, summed');
    t.equal(metrics.sum('sidecar_upstream_attempts_total', { cluster: 'app' }), sent, 'attempts');
    t.equal(metrics.value('sidecar_config_reloads_total', { result: 'success' }), 0, 'the start is not a reload (the workers\' own counts are left out)');
    t.equal(metrics.value('sidecar_worker_up', { worker: '1' }), 1);
    t.equal(metrics.value('sidecar_worker_up', { worker: '2' }), 1);
    t.equal(metrics.value('sidecar_worker_restarts_total', { worker: '1' }), 0);
    t.equal(metrics.value('sidecar_circuit_state', { cluster: 'app', worker: '1' }), 0, "worker 1's breaker");
    t.equal(metrics.value('sidecar_circuit_state', { cluster: 'app', worker: '2' }), 0, "worker 2's breaker");
    t.equal(metrics.value('sidecar_circuit_state', { cluster: 'app' }), undefined, 'breaker states are never summed');
  });

  await t.test('/stats merges the workers; /clusters lists each worker', async (t) => {
    const stats = await adminJson<{ ready: boolean; pid: number; routes: Array<{ route: string; requests: number }>; clusters: Array<{ name: string; breaker: string; endpoints: Array<{ requests: number }> }> }>(group, '/stats');
    t.equal(stats.ready, true);
    t.equal(stats.pid, group.child.pid, 'the pid is the primary');
    t.equal(stats.routes.find((r) => r.route === 'app')?.requests, sent, 'route requests summed over the workers');
    t.equal(stats.clusters[0].breaker, 'closed');
    t.equal(stats.clusters[0].endpoints[0].requests, sent, 'endpoint requests summed');
    const clusters = await adminJson<{ clusters: Array<{ name: string; worker: number; pid: number }> }>(group, '/clusters');
    t.same(
      clusters.clusters.map((c) => [c.name, c.worker]),
      [
        ['app', 1],
        ['app', 2],
      ],
    );
  });

  await t.test('sidecar status reads the group', async (t) => {
    const child = spawn(process.execPath, [CLI, 'status', '--admin', group.adminUrl], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    t.equal(code, 0, out);
    t.match(out, /live, ready/);
    t.match(out, new RegExp(`main\\s+127\\.0\\.0\\.1:${group.listenerPort}`));
    t.match(out, /workers\s+2 ready of 2/);
  });

  await t.test('a worker that does not answer does not hold /metrics, and its counters stay in the sums', async (t) => {
    const before = await scrape(group);
    const total = before.sum('sidecar_requests_total');
    const [stopped] = await workersOf(group);
    const pid = stopped.pid as number;
    process.kill(pid, 'SIGSTOP');
    t.teardown(() => {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Gone already.
      }
    });
    const startedAt = Date.now();
    const during = await scrape(group);
    t.ok(Date.now() - startedAt < GROUP_WAIT_MS, 'answered within its bound');
    t.equal(during.value('sidecar_worker_up', { worker: String(stopped.worker) }), 0, 'the silent worker is named');
    t.equal(during.sum('sidecar_requests_total'), total, 'its last counters are still counted');
    t.ok(
      group.log.some((e) => e.msg === '/metrics: a worker did not answer; its last counters are used' && e.worker === stopped.worker && e.pid === pid),
      'the log says which worker did not answer',
    );
    const silent = (await statsWorkers(group)).find((w) => w.worker === stopped.worker);
    t.match(silent?.error, /did not answer within/, '/stats says so too');
    process.kill(pid, 'SIGCONT');
    await waitUntil(async () => (await scrape(group)).value('sidecar_worker_up', { worker: String(stopped.worker) }) === 1, 'sidecar_worker_up to be 1 again once the worker answers', GROUP_WAIT_MS);
  });

  await t.test('both workers write the access log to one pipe, never interleaving lines', async (t) => {
    const loggedBefore = group.stdout.length;
    const batch = 60;
    await Promise.all(Array.from({ length: batch }, () => send(LONG_PATH)));
    await waitUntil(() => group.stdout.length - loggedBefore >= batch, 'every request to be logged', GROUP_WAIT_MS);
    const lines = group.stdout.slice(loggedBefore);
    let whole = 0;
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as { path: string; status: number };
        if (entry.path === LONG_PATH && entry.status === 200) whole++;
      } catch {
        t.fail(`not one JSON line: ${line.slice(0, 120)}…`);
      }
    }
    t.equal(whole, batch, 'one whole line per request');
  });

  await t.test('SIGTERM: the group exits 0', async (t) => {
    group.child.kill('SIGTERM');
    t.same(await group.exited, { code: 0, signal: null });
  });
});
