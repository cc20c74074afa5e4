import t from 'tap';
import { parseConfigText } from '../../src/config/load';
import type { ClusterConfig, HealthCheckConfig } from '../../src/config/types';
import { ClusterRuntime } from '../../src/upstream/cluster';
import { EndpointHealth } from '../../src/upstream/health-check';
import { OutlierDetector } from '../../src/upstream/outlier-detection';

const hc: HealthCheckConfig = { path: '/healthz', intervalMs: 1000, timeoutMs: 100, unhealthyThreshold: 3, healthyThreshold: 2 };

t.test('health: unhealthy after unhealthyThreshold failures in a row, healthy after healthyThreshold passes', async (t) => {
  const health = new EndpointHealth();
  t.equal(health.status, 'unchecked', 'an endpoint starts unchecked (and takes traffic)');
  t.notOk(health.record(false, 'status 500', hc, 1), '1 failure');
  t.notOk(health.record(false, 'status 500', hc, 2), '2 failures');
  t.ok(health.record(true, undefined, hc, 3), 'a pass breaks the run and makes an unchecked endpoint healthy');
  t.equal(health.status, 'healthy');
  health.record(false, 'x', hc, 4);
  health.record(false, 'x', hc, 5);
  t.ok(health.record(false, 'connection refused', hc, 6), 'the third failure in a row changes the status');
  t.equal(health.status, 'unhealthy');
  t.equal(health.view().lastFailure, 'connection refused');
  t.notOk(health.record(true, undefined, hc, 7), 'one pass is not enough');
  t.ok(health.record(true, undefined, hc, 8), 'the second pass in a row is');
  t.equal(health.status, 'healthy');
  t.equal(health.checks, 8);
  t.equal(health.failedChecks, 5);
});

function clusterConfig(yamlCluster: string): ClusterConfig {
  const loaded = parseConfigText(
    `
listeners:
  - name: main
    address: 127.0.0.1:0
    routes: [{ name: all, match: { prefix: / }, cluster: app }]
clusters:
${yamlCluster}
`,
    '/tmp/inline.yaml',
  );
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const config = loaded.config.clusters.get('app');
  if (config === undefined) throw new Error('no cluster app');
  return config;
}

t.test('outlier detection: ejects after consecutive failures, for base × times ejected, never the last endpoint', async (t) => {
  const config = clusterConfig(`
  - name: app
    endpoints: [{ url: "http://127.0.0.1:1" }, { url: "http://127.0.0.1:2" }]
    outlierDetection: { consecutive5xx: 3, baseEjectionTime: 10s }
`);
  const cluster = new ClusterRuntime(config);
  t.teardown(() => cluster.destroy());
  let now = 1_000_000;
  const ejections: number[] = [];
  const detector = new OutlierDetector(config.outlierDetection ?? { consecutive5xx: 0, baseEjectionTimeMs: 0 }, cluster.endpoints, {
    ejected: (_endpoint, ms) => void ejections.push(ms),
    returned: () => {},
  }, () => now);
  t.teardown(() => detector.stop());
  const [a, b] = cluster.endpoints;

  detector.record(a, true);
  detector.record(a, true);
  detector.record(a, false);
  detector.record(a, true);
  detector.record(a, true);
  t.notOk(a.ejection.ejected, 'a success in between resets the run');
  detector.record(a, true);
  t.ok(a.ejection.ejected, 'three failures in a row eject');
  t.notOk(a.healthy, 'an ejected endpoint takes no traffic');
  t.equal(cluster.pick(), b, 'traffic goes to the other endpoint');
  t.same(ejections, [10_000], 'first ejection: base time');

  for (let i = 0; i < 5; i++) detector.record(b, true);
  t.notOk(b.ejection.ejected, 'the last endpoint that takes traffic is never ejected');

  detector.restore(a);
  t.ok(a.healthy, 'back when the time is up');
  for (let i = 0; i < 3; i++) detector.record(a, true);
  t.same(ejections, [10_000, 20_000], 'second ejection right after: twice the base');
  detector.restore(a);
  now += 15_000;
  for (let i = 0; i < 3; i++) detector.record(a, true);
  t.same(ejections, [10_000, 20_000, 20_000], 'after 15 s of good behaviour the multiplier decayed by one');
});

t.test('pick: priority 1 only while no priority-0 endpoint is healthy; none healthy → undefined', async (t) => {
  const cluster = new ClusterRuntime(clusterConfig(`
  - name: app
    endpoints:
      - { url: "http://127.0.0.1:1" }
      - { url: "http://127.0.0.1:2", priority: 1 }
`));
  t.teardown(() => cluster.destroy());
  const [primary, backup] = cluster.endpoints;
  t.equal(cluster.pick(), primary);
  t.equal(cluster.pick(primary), primary, 'a retry avoiding the only priority-0 endpoint still stays in priority 0');
  primary.health.status = 'unhealthy';
  primary.refreshHealthy();
  t.equal(cluster.pick(), backup, 'failover');
  backup.ejection.ejected = true;
  backup.refreshHealthy();
  t.equal(cluster.pick(), undefined, 'no healthy endpoint at all: no panic mode');
  primary.health.status = 'healthy';
  primary.refreshHealthy();
  t.equal(cluster.pick(), primary, 'back to priority 0');
});
