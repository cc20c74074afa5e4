import t from 'tap';
import { LATENCY_BUCKETS_SECONDS, Metrics } from '../../src/telemetry/metrics/metrics';
import { compareTraffic, histogramQuantile, readTraffic, TrafficWindow, type TrafficSnapshot } from '../../src/telemetry/metrics/traffic-window';

t.test('histogramQuantile interpolates inside the bucket, as Prometheus does', async (t) => {
  const bounds = [0.001, 0.01, 0.1];
  // 100 observations: 50 ≤ 1ms, 40 in (1ms, 10ms], 10 in (10ms, 100ms].
  const cumulative = [50, 90, 100, 100];
  t.equal(histogramQuantile(0.5, bounds, cumulative), 0.001);
  t.ok(Math.abs((histogramQuantile(0.99, bounds, cumulative) ?? 0) - (0.01 + 0.09 * 0.9)) < 1e-12);
  t.ok(Math.abs((histogramQuantile(0.25, bounds, cumulative) ?? 0) - 0.0005) < 1e-12, 'the first bucket starts at 0');
  t.equal(histogramQuantile(0.99, bounds, [0, 0, 0, 5]), 0.1, 'in the +Inf bucket: the highest finite bound');
  t.equal(histogramQuantile(0.99, bounds, [0, 0, 0, 0]), null, 'no observation');
});

t.test('readTraffic and compareTraffic give rates, error rates, p50 and p99 per route, and cluster error rates', async (t) => {
  const metrics = new Metrics({ processMetrics: false });
  const before = await readTraffic(metrics);
  for (let i = 0; i < 98; i++) {
    metrics.requestsTotal.labels('main', 'api', 'app', '200').inc();
    metrics.requestDuration.labels('main', 'api', 'app').observe(0.002);
  }
  for (let i = 0; i < 2; i++) {
    metrics.requestsTotal.labels('main', 'api', 'app', '503').inc();
    metrics.requestDuration.labels('main', 'api', 'app').observe(0.4);
  }
  metrics.requestsTotal.labels('main', '', '', '404').inc();
  metrics.requestDuration.labels('main', '', '').observe(0.0001);
  metrics.upstreamAttempts.labels('app', '2xx').inc(98);
  metrics.upstreamAttempts.labels('app', '5xx').inc(1);
  metrics.upstreamAttempts.labels('app', 'UPSTREAM_CONNECT_FAILURE').inc(1);
  const after = await readTraffic(metrics);
  const report = compareTraffic({ ...before, takenAt: after.takenAt - 10_000 }, after);

  t.equal(Math.round(report.windowSeconds), 10);
  t.equal(report.routes.length, 2);
  const [api, noRoute] = report.routes;
  t.equal(api.route, 'api', 'busiest first');
  t.equal(api.requests, 100);
  t.equal(api.requestsPerSecond, 10);
  t.equal(api.errorRate, 0.02);
  t.ok(api.p99Ms !== null && api.p99Ms > 250 && api.p99Ms <= 500, `p99 ${api.p99Ms}ms is in the 250-500ms bucket`);
  t.ok(api.p50Ms !== null && api.p50Ms > 1 && api.p50Ms <= 2.5, `p50 ${api.p50Ms}ms is in the 1-2.5ms bucket`);
  t.equal(noRoute.route, '');
  t.equal(noRoute.errorRate, 0, '404 is not an error');
  t.same(report.clusters.get('app'), { attempts: 100, attemptsPerSecond: 10, errorRate: 0.02 });
});

t.test('the window compares with the snapshot from about a minute ago, not with the start', async (t) => {
  let requests = 0;
  let now = 0;
  const read = async (): Promise<TrafficSnapshot> => ({
    takenAt: now,
    routes: new Map([['k', { listener: 'main', route: 'api', cluster: 'app', requests, errors: 0, buckets: new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(requests) }]]),
    clusters: new Map(),
  });
  const window = new TrafficWindow(read, { windowMs: 60_000, intervalMs: 10_000, now: () => now });
  window.start();
  t.teardown(() => window.stop());
  // The first minute: 1 request per second; then 10 per second.
  for (let second = 10; second <= 120; second += 10) {
    now = second * 1000;
    requests += second <= 60 ? 10 : 100;
    await window.sample();
  }
  now = 125_000;
  requests += 50;
  const report = await window.report();
  t.ok(report.windowSeconds >= 60 && report.windowSeconds <= 70, `window ${report.windowSeconds}s`);
  t.equal(report.routes[0].requestsPerSecond, 10, 'the quiet first minute is out of the window');
});
