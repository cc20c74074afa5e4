import t from 'tap';
import { createHook } from 'node:async_hooks';
import path from 'node:path';
import { request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import type { SidecarConfig } from '../../src/config/types';
import { FIXTURE_DIR, startSidecar } from '../helpers/sidecar';
import { cluster, startScriptedUpstream } from '../helpers/resilience';
import { waitUntil } from '../helpers/wait';

/**
 * Timers alive now, unref'd ones included (process.getActiveResourcesInfo lists only the ref'd
 * ones, and every timer of the cluster policies is unref'd).
 */
function liveTimerCounter(): { count: () => number; stop: () => void } {
  const live = new Set<number>();
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout') live.add(id);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return { count: () => live.size, stop: () => hook.disable() };
}

function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

function config(appUrl: string, variant: number, withCluster = true): SidecarConfig {
  // Each variant changes the cluster's settings, so each reload replaces its runtime: a new
  // breaker, new health checks, new pools; the old ones must be shut down.
  const yaml = `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        ${withCluster ? 'cluster: app' : 'directResponse: { status: 200, body: direct }'}
clusters:
${
  withCluster
    ? `  - name: app
    endpoints: [{ url: ${appUrl} }, { url: "http://127.0.0.1:1", priority: 1 }]
    connectTimeout: ${1000 + variant}ms
    circuitBreaker: { window: 1s, resetTimeout: 1s }
    healthCheck: { path: /healthz, interval: 20ms, timeout: 20ms }
    outlierDetection: { consecutive5xx: 1, baseEjectionTime: 1m }`
    : '  []'
}
`;
  const loaded = parseConfigText(yaml, path.join(FIXTURE_DIR, 'inline.yaml'));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.config;
}

t.test('200 reloads leave the count of active handles and timers where it started', async (t) => {
  const app = await startScriptedUpstream((_n, _req, res) => res.end('ok'), { healthPath: '/healthz', health: () => 200 });
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes: [{ name: all, match: { prefix: / }, directResponse: { status: 200, body: direct } }]
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const timers = liveTimerCounter();
  t.teardown(() => timers.stop());
  // Nothing announces the end of the start-up's own work (file reads, first timers): the
  // baseline is taken once two readings 50 ms apart agree.
  let previousReading = '';
  await waitUntil(
    () => {
      const reading = JSON.stringify([Object.entries(resourceCounts()).sort(), timers.count()]);
      const settledNow = reading === previousReading;
      previousReading = reading;
      return settledNow;
    },
    'the start-up resources to settle',
    10_000,
    50,
  );
  const baselineResources = resourceCounts();
  const baselineTimers = timers.count();

  for (let i = 0; i < 200; i++) {
    const next = i % 50 === 49 ? config(app.url, i, false) : config(app.url, i);
    const applied = await proxy.sidecar.applyConfig(next);
    t.ok(applied.ok, `reload ${i + 1}`, { diagnostic: false });
    if (i % 20 === 0 && next.clusters.size > 0) {
      // Some runtimes retire with connections open and requests in flight.
      const res = await request(`${proxy.url()}/`);
      t.equal(await res.body.text(), 'ok', { diagnostic: false });
    }
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  // Back to the config the sidecar started with, then let the retired runtimes close.
  t.ok((await proxy.sidecar.applyConfig(config(app.url, 0, false))).ok);
  const settled = (): boolean => {
    const now = resourceCounts();
    return timers.count() === baselineTimers && Object.keys({ ...now, ...baselineResources }).every((k) => (now[k] ?? 0) === (baselineResources[k] ?? 0));
  };
  await waitUntil(settled, 'handles and timers to return to their baseline', 15_000, 50).catch(() => undefined);
  t.same(resourceCounts(), baselineResources, 'process.getActiveResourcesInfo() is back to its start');
  t.equal(timers.count(), baselineTimers, "no timer is left behind (unref'd ones included)");
});

t.test('a reload that keeps a cluster unchanged keeps its breaker, health and ejection state', async (t) => {
  const app = await startScriptedUpstream((_n, _req, res) => {
    res.statusCode = 500;
    res.end('broken');
  });
  const other = await startScriptedUpstream((_n, _req, res) => res.end('fine'));
  const yaml = (routeName: string): string => `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes: [{ name: ${routeName}, match: { prefix: / }, cluster: app }]
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }, { url: ${other.url} }]
    circuitBreaker: { volumeThreshold: 2, resetTimeout: 1m }
    outlierDetection: { consecutive5xx: 2, baseEjectionTime: 1m }
`;
  const proxy = await startSidecar(yaml('first'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
    await other.close();
  });
  // Round robin: broken, fine, broken. The third request opens the breaker (2 failures of 3
  // calls) and ejects the broken endpoint (2 failures in a row).
  for (let i = 0; i < 3; i++) await (await request(`${proxy.url()}/`)).body.dump();
  await waitUntil(async () => (await cluster(proxy.adminUrl)).circuitBreaker.state === 'open', 'the breaker to open');
  const before = await cluster(proxy.adminUrl);
  t.ok(before.endpoints[0].outlier.ejected, 'the failing endpoint is ejected');

  const runtime = proxy.sidecar.current.clusters.get('app');
  const loaded = parseConfigText(yaml('renamed'), path.join(FIXTURE_DIR, 'inline.yaml'));
  if (!loaded.ok) throw new Error('invalid');
  t.ok((await proxy.sidecar.applyConfig(loaded.config)).ok);
  t.equal(proxy.sidecar.current.clusters.get('app'), runtime, 'the same runtime');
  const after = await cluster(proxy.adminUrl);
  t.equal(after.circuitBreaker.state, 'open', 'the breaker stays open');
  t.ok(after.endpoints[0].outlier.ejected, 'the ejection stays');
  t.equal(after.endpoints[0].requests, before.endpoints[0].requests, 'the counters stay');
  const res = await request(`${proxy.url()}/`);
  t.equal(res.headers['x-sidecar-error'], 'CIRCUIT_OPEN');
  await res.body.dump();
});
