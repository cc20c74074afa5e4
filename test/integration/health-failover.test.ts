import t from 'tap';
import { request } from 'undici';
import { startSidecar } from '../helpers/sidecar';
import { cluster, metric, startScriptedUpstream, type ScriptedUpstream } from '../helpers/resilience';
import { waitUntil } from '../helpers/wait';

function twoEndpoints(primary: string, backup: string, clusterExtra: string, backupPriority = 1): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: app
clusters:
  - name: app
    endpoints:
      - { url: ${primary} }
      - { url: ${backup}, priority: ${backupPriority} }
${clusterExtra}
`;
}

async function answeredBy(url: string, count: number): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request(url);
    answers.push(await res.body.text());
  }
  return answers;
}

function namedApp(name: string, health: () => number | 'no answer'): Promise<ScriptedUpstream> {
  return startScriptedUpstream((_n, _req, res) => res.end(name), { healthPath: '/healthz', health });
}

t.test('failover to priority 1 while priority 0 fails its health checks, and back on recovery', async (t) => {
  let primaryHealth = 200;
  const primary = await namedApp('primary', () => primaryHealth);
  const backup = await namedApp('backup', () => 200);
  const proxy = await startSidecar(
    twoEndpoints(primary.url, backup.url, '    healthCheck: { path: /healthz, interval: 200ms, timeout: 200ms, unhealthyThreshold: 2, healthyThreshold: 2 }'),
  );
  t.teardown(async () => {
    await proxy.close();
    await primary.close();
    await backup.close();
  });
  const url = `${proxy.url()}/`;
  const endpoint = async (index: number) => (await cluster(proxy.adminUrl)).endpoints[index];

  await waitUntil(async () => (await endpoint(0)).healthCheck.status === 'healthy', 'the first passed check');
  t.same(await answeredBy(url, 4), ['primary', 'primary', 'primary', 'primary'], 'priority 0 takes all traffic');

  primaryHealth = 503;
  await waitUntil(async () => !(await endpoint(0)).healthy, 'the primary to be marked unhealthy');
  const failed = await endpoint(0);
  t.equal(failed.healthCheck.status, 'unhealthy');
  t.match(failed.healthCheck.lastFailure, /answered 503/, '/clusters says why');
  t.same(await answeredBy(url, 4), ['backup', 'backup', 'backup', 'backup'], 'priority 1 takes over');
  t.equal(await metric(proxy.adminUrl, 'sidecar_endpoint_healthy', { cluster: 'app', endpoint: primary.url }), 0);
  const view = await cluster(proxy.adminUrl);
  t.same(view.endpoints.map((e) => e.active), [false, true], '/clusters shows which level takes traffic');

  primaryHealth = 200;
  await waitUntil(async () => (await endpoint(0)).healthy, 'the primary to recover');
  t.same(await answeredBy(url, 4), ['primary', 'primary', 'primary', 'primary'], 'traffic goes back to priority 0');
  t.equal(await metric(proxy.adminUrl, 'sidecar_endpoint_healthy', { cluster: 'app', endpoint: primary.url }), 1);
  t.ok(primary.healthChecks > 4 && backup.healthChecks > 4, 'both endpoints are checked');
});

t.test('no healthy endpoint at all → 503 NO_HEALTHY_UPSTREAM, and the app is not sent the request', async (t) => {
  const one = await namedApp('one', () => 500);
  const two = await namedApp('two', () => 500);
  const proxy = await startSidecar(
    twoEndpoints(one.url, two.url, '    healthCheck: { path: /healthz, interval: 200ms, timeout: 200ms, unhealthyThreshold: 1 }', 0),
  );
  t.teardown(async () => {
    await proxy.close();
    await one.close();
    await two.close();
  });
  await waitUntil(async () => (await cluster(proxy.adminUrl)).endpoints.every((e) => !e.healthy), 'both endpoints to fail their checks');
  const res = await request(`${proxy.url()}/`);
  t.equal(res.statusCode, 503);
  t.equal(res.headers['x-sidecar-error'], 'NO_HEALTHY_UPSTREAM');
  await res.body.dump();
  t.equal(one.seen.length + two.seen.length, 0);
  t.equal(proxy.accessLog.at(-1)?.flags, 'UH');
});

t.test('a health check that does not answer in time fails', async (t) => {
  const hanging = await startScriptedUpstream((_n, _req, res) => res.end('app'), { healthPath: '/healthz', health: () => 'no answer' });
  const backup = await namedApp('backup', () => 200);
  const proxy = await startSidecar(
    twoEndpoints(hanging.url, backup.url, '    healthCheck: { path: /healthz, interval: 300ms, timeout: 300ms, unhealthyThreshold: 1 }'),
  );
  t.teardown(async () => {
    await proxy.close();
    await hanging.close();
    await backup.close();
  });
  await waitUntil(async () => !(await cluster(proxy.adminUrl)).endpoints[0].healthy, 'the silent endpoint to be marked unhealthy');
  t.match((await cluster(proxy.adminUrl)).endpoints[0].healthCheck.lastFailure, /got no answer within 300ms/);
  t.ok(hanging.healthChecks >= 1);
});

t.test('outlier detection ejects an endpoint after consecutive 5xx; it returns when the time is up', async (t) => {
  let sick = true;
  const flaky = await startScriptedUpstream((_n, _req, res) => {
    res.statusCode = sick ? 500 : 200;
    res.end('flaky');
  });
  const steady = await startScriptedUpstream((_n, _req, res) => res.end('steady'));
  const proxy = await startSidecar(
    twoEndpoints(flaky.url, steady.url, '    outlierDetection: { consecutive5xx: 2, baseEjectionTime: 2s }\n    circuitBreaker: { errorThresholdPercentage: 100 }', 0),
  );
  t.teardown(async () => {
    await proxy.close();
    await flaky.close();
    await steady.close();
  });
  const url = `${proxy.url()}/`;
  await answeredBy(url, 4); // round robin: two 500s from the flaky endpoint
  const ejected = (await cluster(proxy.adminUrl)).endpoints[0];
  t.ok(ejected.outlier.ejected, 'ejected after two consecutive 5xx');
  t.equal(ejected.outlier.timesEjected, 1);
  t.equal(await metric(proxy.adminUrl, 'sidecar_outlier_ejections_total', { cluster: 'app', endpoint: flaky.url }), 1);
  const before = flaky.seen.length;
  t.same(await answeredBy(url, 3), ['steady', 'steady', 'steady'], 'an ejected endpoint gets no traffic');
  t.equal(flaky.seen.length, before);

  sick = false;
  await waitUntil(async () => !(await cluster(proxy.adminUrl)).endpoints[0].outlier.ejected, 'the ejection to end', 15_000);
  t.ok((await answeredBy(url, 4)).includes('flaky'), 'back in rotation');
});

t.test('GET /clusters shows health, ejection, breaker state, in-flight and counters per cluster and endpoint', async (t) => {
  const app = await namedApp('app', () => 200);
  const proxy = await startSidecar(
    twoEndpoints(app.url, 'http://127.0.0.1:1', '    healthCheck: { path: /healthz, interval: 1s }\n    outlierDetection: {}'),
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  await answeredBy(`${proxy.url()}/`, 3);
  const view = await cluster(proxy.adminUrl);
  t.match(view, {
    name: 'app',
    inFlight: 0,
    pending: 0,
    maxConcurrentRequests: 1024,
    maxPendingRequests: 1024,
    circuitBreaker: { state: 'closed', errorThresholdPercentage: 50, volumeThreshold: 20, windowMs: 10_000, resetTimeoutMs: 5_000, window: { calls: 3, successes: 3, failures: 0 } },
    retryBudget: { ratio: 0.2, minPerSecond: 10, requests: 3, retries: 0 },
    healthCheck: { path: '/healthz', intervalMs: 1000 },
    outlierDetection: { consecutive5xx: 5, baseEjectionTimeMs: 30_000 },
  });
  t.match(view.endpoints[0], {
    url: app.url,
    priority: 0,
    healthy: true,
    active: true,
    inFlight: 0,
    requests: 3,
    failures: 0,
    responses5xx: 0,
    healthCheck: { status: String },
    outlier: { ejected: false, until: null, timesEjected: 0, consecutiveFailures: 0 },
  });
  t.match(view.endpoints[1], { priority: 1, active: false, requests: 0 });
});
