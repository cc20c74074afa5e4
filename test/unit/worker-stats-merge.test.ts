import t from 'tap';
import type { ClusterStats, SidecarStats } from '../../src/telemetry/metrics/stats';
import { mergeClusterDetails } from '../../src/status/collect';
import { renderStatus } from '../../src/status/render';
import { mergeStats, type PrimaryStats } from '../../src/workers/stats-aggregation';

function cluster(breaker: ClusterStats['breaker'], healthy: boolean, requests: number, attemptsPerSecond: number, errorRate: number | null): ClusterStats {
  return {
    name: 'app',
    breaker,
    inFlight: 1,
    attemptsPerSecond,
    errorRate,
    endpoints: [{ url: 'http://127.0.0.1:3000', priority: 0, healthy, inFlight: 1, requests, failures: 1, connections: { busy: 1, idle: 2 }, pending: 0 }],
  };
}

function workerStats(clusterStats: ClusterStats, requests: number, p99Ms: number, errors: Array<{ code: string; time: string }>): SidecarStats {
  return {
    ready: true,
    pid: 0,
    startedAt: '2026-05-01T10:00:00.000Z',
    uptimeSeconds: 10,
    config: { source: '/etc/sidecar.yaml', sha256: 'a'.repeat(64), loadedAt: '2026-05-01T10:00:00.000Z', lastReload: { ok: true, at: null, error: null }, reloads: { success: 1, failure: 0 } },
    listeners: [{ name: 'main', address: '127.0.0.1:8080', proto: 'http', mtls: false, routes: 2, connections: 3 }],
    clusters: [clusterStats],
    trafficWindowSeconds: 60,
    routes: [{ listener: 'main', route: 'api', cluster: 'app', requests, requestsPerSecond: requests / 60, errorRate: 0.5, p50Ms: p99Ms / 4, p99Ms }],
    tracing: { exporter: 'none', endpoint: null, serviceName: null, sampler: null, propagators: [], responseHeader: false, spans: { exported: 1, droppedQueueFull: 0, droppedExportFailed: 0 }, sources: {} },
    recentErrors: errors,
    errorsTotal: errors.length,
  };
}

const primary: PrimaryStats = {
  ready: false,
  pid: 4242,
  startedAtMs: Date.parse('2026-05-01T10:00:00.000Z'),
  config: { source: '/etc/sidecar.yaml', sha256: 'a'.repeat(64), loadedAt: '2026-05-01T10:00:00.000Z', lastReload: { ok: false, at: '2026-05-01T10:05:00.000Z', error: 'bad' }, reloads: { success: 1, failure: 1 } },
  recentErrors: [{ code: 'CONFIG_REJECTED', time: '2026-05-01T10:05:00.000Z', message: 'bad' }],
  errorsTotal: 1,
  recentErrorsKept: 20,
};

t.test('/stats of a group: sums, weighted rates, the worst breaker, the workers', async (t) => {
  const one = workerStats(cluster('closed', true, 10, 3, 0.1), 30, 12, [
    { code: 'UPSTREAM_TIMEOUT', time: '2026-05-01T10:06:00.000Z' },
    { code: 'CONFIG_REJECTED', time: '2026-05-01T10:05:00.000Z' },
  ]);
  const two = workerStats(cluster('open', false, 20, 1, 0.5), 10, 40, [{ code: 'CIRCUIT_OPEN', time: '2026-05-01T10:07:00.000Z' }]);
  const merged = mergeStats(primary, [
    { worker: 1, pid: 11, state: 'ready', ready: true, sha256: 'a'.repeat(64), restarts: 0, stats: one },
    { worker: 2, pid: 12, state: 'ready', ready: true, sha256: 'a'.repeat(64), restarts: 2, stats: two },
    { worker: 3, pid: null, state: 'down', ready: false, sha256: null, restarts: 5, stats: undefined, error: 'worker 3 is down (restarting)' },
  ]);
  t.equal(merged.pid, 4242, "the primary's pid");
  t.equal(merged.listeners[0].connections, 6, 'connections summed');
  const app = merged.clusters[0];
  t.equal(app.breaker, 'open', 'the worst breaker');
  t.equal(app.inFlight, 2);
  t.equal(app.attemptsPerSecond, 4);
  t.equal(app.errorRate, 0.2, 'error rate weighted by attempts: (3×0.1 + 1×0.5) / 4');
  t.equal(app.endpoints[0].healthy, false, 'healthy only when every worker sees it healthy');
  t.equal(app.endpoints[0].requests, 30);
  t.same(app.endpoints[0].connections, { busy: 2, idle: 4 });
  t.equal(merged.routes[0].requests, 40);
  t.equal(merged.routes[0].p99Ms, 40, 'the highest p99');
  t.equal(merged.routes[0].p50Ms, 10, 'the highest p50');
  t.equal(merged.tracing.spans.exported, 2);
  t.same(
    merged.recentErrors.map((e) => [e.code, e.worker]),
    [
      ['CIRCUIT_OPEN', 2],
      ['UPSTREAM_TIMEOUT', 1],
      ['CONFIG_REJECTED', undefined],
    ],
    "newest first, each with its worker; the rejected reload once (the primary's)",
  );
  t.equal(merged.errorsTotal, 3);
  t.same(
    merged.workers.map((w) => [w.worker, w.pid, w.recentRequests, w.error ?? null]),
    [
      [1, 11, 30, null],
      [2, 12, 10, null],
      [3, null, null, 'worker 3 is down (restarting)'],
    ],
  );

  const text = renderStatus({ admin: 'http://127.0.0.1:9901', live: true, ready: false, stats: merged, clusters: mergeClusterDetails(merged.clusters, undefined), clusterDetails: false });
  t.match(text, /^workers  2 ready of 3; 7 restarts after crashes$/m);
  t.match(text, /^ {9}worker 3: down, worker 3 is down \(restarting\)$/m);
});

t.test('sidecar status folds per-worker /clusters entries: worst breaker, healthy in every worker, ejected in any', async (t) => {
  const base = cluster('closed', true, 1, 1, 0);
  const [merged] = mergeClusterDetails([base], {
    clusters: [
      { name: 'app', worker: 1, circuitBreaker: { state: 'closed' }, endpoints: [{ url: 'http://127.0.0.1:3000', healthy: true, outlier: {}, ejected: false }] },
      { name: 'app', worker: 2, circuitBreaker: { state: 'half-open' }, endpoints: [{ url: 'http://127.0.0.1:3000', healthy: false, ejected: true }] },
    ],
  });
  t.equal(merged.breaker, 'half-open');
  t.equal(merged.endpoints[0].healthy, false);
  t.same(merged.endpoints[0].notes, ['ejected']);
});
