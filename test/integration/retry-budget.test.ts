import t from 'tap';
import { request } from 'undici';
import { simpleConfig, startSidecar } from '../helpers/sidecar';
import { cluster, metric, startScriptedUpstream } from '../helpers/resilience';

t.test('under 100% failures the retries stay within the budget', async (t) => {
  const app = await startScriptedUpstream((_n, _req, res) => {
    res.statusCode = 503;
    res.end('down');
  });
  const proxy = await startSidecar(
    simpleConfig(
      app.url,
      'retry: { attempts: 3, backoff: { base: 0ms, max: 0ms } }',
      // The breaker would otherwise open and hide the budget: 100% is never exceeded.
      'retryBudget: { ratio: 0.2, minPerSecond: 0 }\ncircuitBreaker: { errorThresholdPercentage: 100 }',
    ),
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  const requests = 60;
  // Ten clients at a time, as a service under load would see them.
  let next = 0;
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (next < requests) {
        next++;
        const res = await request(`${proxy.url()}/`);
        t.equal(res.statusCode, 503);
        t.equal(res.headers['x-sidecar-error'], undefined, "the app's own answer");
        await res.body.dump();
      }
    }),
  );

  const retries = await metric(proxy.adminUrl, 'sidecar_retries_total', { cluster: 'app', reason: '503' });
  const skipped = await metric(proxy.adminUrl, 'sidecar_retries_skipped_total', { cluster: 'app', reason: 'budget' });
  t.ok(retries <= 0.2 * requests, `${retries} retries for ${requests} requests: at most 20%`);
  t.ok(retries >= 0.2 * requests - 2, `and the budget was used (${retries})`);
  t.ok(skipped > 0, `${skipped} retries were refused by the budget and counted`);
  t.equal(app.seen.length, requests + retries, 'the app saw the first tries plus the budgeted retries, nothing more');
  t.ok(app.seen.length <= requests * 1.2, `the outage cost the app ${app.seen.length} requests, not ${requests * 4}`);
  const budget = (await cluster(proxy.adminUrl)).retryBudget;
  t.equal(budget.requests, requests, '/clusters shows the window');
  t.equal(budget.retries, retries);
});
