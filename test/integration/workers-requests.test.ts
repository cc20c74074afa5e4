/**
 * `workers: 2`: GET /requests on the primary's admin lists the requests every worker recorded,
 * newest first, each with its worker; GET /requests/{id} finds a request whichever worker
 * served it; the dry-run reload replays the workers' requests; a worker that does not answer
 * is named and does not hold the list; `admin.recorder: false` turns the endpoints off.
 */
import { writeFile } from 'node:fs/promises';
import t from 'tap';
import type { ListedRequest, RequestsPage } from '../../src/admin/requests-endpoint';
import { waitUntil } from '../helpers/wait';
import { startUpstream } from '../helpers/upstream';
import { adminJson, fetchOnce, GROUP_WAIT_MS, startGroup, workersOf } from '../helpers/worker-group';

function groupConfig(upstreamUrl: string, recorder = ''): string {
  return `admin: { address: 127.0.0.1:0${recorder} }
workers: 2
drain: { delay: 0s, timeout: 5s }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { prefix: /api }, cluster: app }
      - { name: rest, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${upstreamUrl} }]
`;
}

t.test('workers: 2, the flight recorder of the group', async (t) => {
  const upstream = await startUpstream((req, res) => {
    req.resume();
    res.statusCode = req.url?.includes('fail') === true ? 500 : 200;
    res.end('x');
  });
  t.teardown(() => upstream.close());
  const yaml = groupConfig(upstream.url);
  const group = await startGroup(t, yaml);
  const base = `http://127.0.0.1:${group.listenerPort}`;
  const list = (query = ''): Promise<RequestsPage> => adminJson<RequestsPage>(group, `/requests${query}`);

  // One connection per request: node:cluster spreads connections over the workers.
  const sent: string[] = [];
  const send = async (): Promise<void> => {
    const n = sent.length;
    const id = `req-${n}`;
    const path = n % 5 === 4 ? `/api/fail/${n}` : n % 2 === 0 ? `/api/ok/${n}` : `/page/${n}`;
    const answer = await fetchOnce(base + path, { headers: { 'x-request-id': id } });
    if (answer.status !== (path.includes('fail') ? 500 : 200)) throw new Error(`${path} answered ${answer.status}: ${answer.body}`);
    sent.push(id);
  };
  const workersListed = async (): Promise<Set<number | undefined>> => new Set((await list('?limit=1000')).requests.map((r) => r.worker));
  for (let i = 0; i < 20; i++) await send();
  for (let round = 0; round < 20 && (await workersListed()).size < 2; round++) for (let i = 0; i < 10; i++) await send();
  const last = sent[sent.length - 1];
  // A request is recorded when its response closes, which may be after the client has read it.
  await waitUntil(async () => (await list('?limit=1000')).requests.length === sent.length, 'every request to be recorded');

  await t.test('GET /requests lists the requests of both workers, newest first, each with its worker', async (t) => {
    const all = await list('?limit=1000');
    t.equal(all.requests.length, sent.length, 'every request sent, once');
    t.same(new Set(all.requests.map((r) => r.requestId)), new Set(sent));
    t.same([...new Set(all.requests.map((r) => r.worker))].sort(), [1, 2], 'both workers');
    t.equal(all.requests[0].requestId, last, 'the last request sent comes first');
    const times = all.requests.map((r) => r.at);
    t.same(times, [...times].sort().reverse(), 'newest first');
    t.equal(all.kept.requests, sent.length, 'what the workers keep, summed');
    t.equal(all.kept.failures, sent.filter((_id, n) => n % 5 === 4).length);
    t.ok(all.bytes > 0);
    t.notOk('unanswered' in all);

    // Each worker's entries are the requests that worker served: /stats counts them per worker.
    const stats = await adminJson<{ workers: Array<{ worker: number; recentRequests: number }> }>(group, '/stats');
    for (const { worker, recentRequests } of stats.workers) {
      t.equal(all.requests.filter((r) => r.worker === worker).length, recentRequests, `worker ${worker}: as many entries as requests it served`);
    }
  });

  await t.test('the filters and the limit apply to the merged list', async (t) => {
    const failures = await list('?status=5xx');
    t.same(failures.requests.map((r) => r.requestId).sort(), sent.filter((_id, n) => n % 5 === 4).sort(), 'the failures of both workers');
    t.ok(failures.requests.every((r) => r.status === 500));
    const api = await list('?route=api&limit=1000');
    t.same(api.requests.map((r) => r.requestId).sort(), sent.filter((_id, n) => n % 2 === 0 || n % 5 === 4).sort(), 'route api');
    const three = await list('?limit=3');
    t.same(
      three.requests.map((r) => r.requestId),
      (await list('?limit=1000')).requests.slice(0, 3).map((r) => r.requestId),
      'limit=3: the three most recent',
    );
    const refused = await fetchOnce(`${group.adminUrl}/requests?status=9xx`);
    t.equal(refused.status, 400);
    t.match(refused.body, /status is a class/);
    t.equal((await fetchOnce(`${group.adminUrl}/requests?limit=0`)).status, 400);
  });

  await t.test('GET /requests/{id} finds a request whichever worker served it', async (t) => {
    const all = (await list('?limit=1000')).requests;
    for (const worker of [1, 2]) {
      const listed = all.find((r) => r.worker === worker) as ListedRequest;
      const one = JSON.parse((await fetchOnce(`${group.adminUrl}/requests/${encodeURIComponent(listed.requestId)}`)).body) as ListedRequest;
      t.equal(one.requestId, listed.requestId);
      t.equal(one.worker, worker, `served by worker ${worker}`);
      t.equal(one.path, listed.path);
      t.equal(one.attempts.length, 1);
    }
    const missing = await fetchOnce(`${group.adminUrl}/requests/no-such-id`);
    t.equal(missing.status, 404);
    t.match(missing.body, /NOT_FOUND/);
    t.equal((await fetchOnce(`${group.adminUrl}/requests/%E0%A4%A`)).status, 400, 'bad percent-encoding');
  });

  await t.test("a dry-run reload replays the workers' recent requests", async (t) => {
    const moved = yaml.replace('prefix: /api }', 'prefix: /api/ok }');
    const answer = await fetchOnce(`${group.adminUrl}/reload?dryRun=true`, { method: 'POST', body: moved });
    t.equal(answer.status, 200, answer.body);
    const preview = JSON.parse(answer.body) as { replay: { total: number; moved: number } };
    t.equal(preview.replay.total, sent.length, 'every recorded request replayed');
    t.equal(preview.replay.moved, sent.filter((_id, n) => n % 5 === 4).length, 'the /api/fail requests move to route rest');
  });

  await t.test('a worker that does not answer: /requests lists the others and names it, within its bound', async (t) => {
    const [stopped] = await workersOf(group);
    const pid = stopped.pid as number;
    const others = (await list('?limit=1000')).requests.filter((r) => r.worker !== stopped.worker).map((r) => r.requestId);
    process.kill(pid, 'SIGSTOP');
    t.teardown(() => {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Gone already.
      }
    });
    const startedAt = Date.now();
    const during = await list('?limit=1000');
    t.ok(Date.now() - startedAt < GROUP_WAIT_MS, 'answered within its bound');
    t.same(
      during.requests.map((r) => r.requestId),
      others,
      "the other worker's requests, in order",
    );
    t.equal(during.unanswered?.length, 1);
    t.equal(during.unanswered?.[0].worker, stopped.worker, 'the silent worker is named');
    t.match(during.unanswered?.[0].error, /did not answer within/);
    process.kill(pid, 'SIGCONT');
    await waitUntil(async () => (await list()).unanswered === undefined, 'every worker to answer again', GROUP_WAIT_MS);
  });

  await t.test('admin.recorder: false turns /requests off for the group', async (t) => {
    await writeFile(group.file, groupConfig(upstream.url, ', recorder: false'));
    const reload = await fetchOnce(`${group.adminUrl}/reload`, { method: 'POST' });
    t.equal(reload.status, 200, reload.body);
    for (const path of ['/requests', `/requests/${last}`]) {
      const off = await fetchOnce(group.adminUrl + path);
      t.equal(off.status, 404);
      t.match(off.body, /RECORDER_OFF/);
    }
  });
});
