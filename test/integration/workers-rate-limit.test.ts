/**
 * `workers: 2` with a route rate limit: the group together passes at most the limit (each
 * worker enforces half of it), however the connections are spread over the workers.
 */
import t from 'tap';
import { startUpstream } from '../helpers/upstream';
import { adminJson, fetchOnce, scrape, startGroup, type RunningGroup } from '../helpers/worker-group';

interface StatsWorker {
  readonly worker: number;
  readonly recentRequests: number | null;
}

async function requestsPerWorker(group: RunningGroup): Promise<number[]> {
  return (await adminJson<{ workers: StatsWorker[] }>(group, '/stats')).workers.map((w) => w.recentRequests ?? 0);
}

t.test('two workers together pass only the limit', async (t) => {
  let seen = 0;
  const upstream = await startUpstream((req, res) => {
    seen++;
    req.resume();
    res.end('ok');
  });
  t.teardown(() => upstream.close());
  // 14 tokens for the sidecar: 7 per worker; one more per worker only every 12s.
  const group = await startGroup(
    t,
    `admin: { address: 127.0.0.1:0 }
workers: 2
accessLog: { path: off }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { prefix: / }, cluster: app, rateLimit: { requests: 10, per: 1m, burst: 4, key: route } }
clusters:
  - name: app
    endpoints: [{ url: ${upstream.url} }]
`,
  );
  const base = `http://127.0.0.1:${group.listenerPort}`;
  let passed = 0;
  let limited = 0;
  // One connection per request: node:cluster spreads connections, so both workers take some.
  for (let i = 0; i < 60; i++) {
    const answer = await fetchOnce(`${base}/`);
    if (answer.status === 200) passed++;
    else if (answer.status === 429) limited++;
    else t.fail(`unexpected ${answer.status}: ${answer.body}`);
  }
  const perWorker = await requestsPerWorker(group);
  t.equal(perWorker.reduce((a, b) => a + b, 0), 60, `every request was served by a worker: ${JSON.stringify(perWorker)}`);
  // Each worker passes at most its half (7) of the 14; without the split, a worker would pass
  // 14 and the group up to 28. The kernel decides how connections spread, hence the sum.
  const expected = perWorker.reduce((sum, n) => sum + Math.min(7, n), 0);
  t.equal(passed, expected, `each worker passed min(7, its requests): ${JSON.stringify(perWorker)}`);
  t.ok(passed <= 14, `${passed} passed: never more than the limit (requests + burst)`);
  t.equal(passed + limited, 60);
  t.equal(seen, passed, 'the app saw only those');
  const exposition = await scrape(group);
  t.equal(exposition.sum('sidecar_rate_limited_total', { route: 'api' }), limited, '/metrics sums the workers\' refusals');
});
