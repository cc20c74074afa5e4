import t from 'tap';
import { Agent, request } from 'undici';
import { LATENCY_BUCKETS_SECONDS } from '../../src/telemetry/metrics/metrics';
import { parseConfigText } from '../../src/config/load';
import { Sidecar } from '../../src/sidecar';
import { parsePrometheusText, type Exposition } from '../helpers/prometheus';
import { startSidecar } from '../helpers/sidecar';
import { closedPort, startUpstream } from '../helpers/upstream';

/** Every name DESIGN.md promises, and the ones this sidecar adds. */
const EXPECTED_FAMILIES: Record<string, string> = {
  sidecar_requests_total: 'counter',
  sidecar_request_duration_seconds: 'histogram',
  sidecar_upstream_attempts_total: 'counter',
  sidecar_upstream_duration_seconds: 'histogram',
  sidecar_retries_total: 'counter',
  sidecar_circuit_state: 'gauge',
  sidecar_circuit_breaker_state: 'gauge',
  sidecar_config_reloads_total: 'counter',
  sidecar_config_last_reload_success: 'gauge',
  sidecar_requests_in_flight: 'gauge',
  sidecar_upstream_connections: 'gauge',
  sidecar_upstream_pending_requests: 'gauge',
  sidecar_tracing_spans_exported_total: 'counter',
  sidecar_tracing_spans_dropped_total: 'counter',
  sidecar_process_cpu_seconds_total: 'counter',
  sidecar_process_resident_memory_bytes: 'gauge',
  sidecar_nodejs_eventloop_lag_seconds: 'gauge',
};

/** prom-client's process and Node.js families (off in the test helper). */
const PROCESS_FAMILY = /^sidecar_(process|nodejs)_/;

t.test('/metrics parses as Prometheus text, has every family, and its counters move as requests flow', async (t) => {
  const releases: Array<() => void> = [];
  let holdArrived = (): void => {};
  const arrived = new Promise<void>((resolve) => (holdArrived = resolve));
  const app = await startUpstream((req, res) => {
    if (req.url !== '/hold') {
      res.end('ok');
      return;
    }
    releases.push(() => res.end('late'));
    holdArrived();
  });
  const dead = await closedPort();
  const proxy = await startSidecar(
    `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: dead, match: { prefix: /dead }, cluster: dead }
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
  - { name: dead, endpoints: [{ url: "http://127.0.0.1:${dead}" }] }
`,
  );
  const agent = new Agent({ connections: 8 });
  t.teardown(async () => {
    for (const release of releases) release();
    await agent.close();
    await proxy.close();
    await app.close();
  });
  const scrape = async (): Promise<Exposition> => {
    const res = await request(`${proxy.adminUrl}/metrics`);
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(await res.body.text());
  };

  const before = await scrape();
  t.equal(before.sum('sidecar_requests_total'), 0);
  t.equal(before.value('sidecar_tracing_spans_dropped_total', { reason: 'queue_full' }), 0, 'dropped spans are exported from the start');
  t.equal(before.value('sidecar_config_reloads_total', { result: 'success' }), 0, 'the initial load is not counted as a reload');

  for (let i = 0; i < 5; i++) await (await request(`${proxy.url()}/x`, { dispatcher: agent })).body.text();
  await (await request(`${proxy.url()}/dead`, { dispatcher: agent })).body.text();
  // One request held at the app: in flight, on a busy upstream connection.
  const held = request(`${proxy.url()}/hold`, { dispatcher: agent });
  await arrived;

  const during = await scrape();
  for (const [family, type] of Object.entries(EXPECTED_FAMILIES)) {
    if (PROCESS_FAMILY.test(family)) continue;
    t.equal(during.types.get(family), type, `${family} is a ${type}`);
  }
  t.equal(during.value('sidecar_requests_total', { listener: 'main', route: 'all', cluster: 'app', code: '200' }), 5);
  t.equal(during.value('sidecar_requests_total', { listener: 'main', route: 'dead', cluster: 'dead', code: '503' }), 1);
  t.equal(during.value('sidecar_request_duration_seconds_count', { listener: 'main', route: 'all', cluster: 'app' }), 5);
  t.equal(during.value('sidecar_upstream_attempts_total', { cluster: 'app', result: '2xx' }), 5);
  t.equal(during.value('sidecar_upstream_attempts_total', { cluster: 'dead', result: 'UPSTREAM_CONNECT_FAILURE' }), 1);
  t.equal(during.value('sidecar_upstream_duration_seconds_count', { cluster: 'app' }), 5, 'per-cluster upstream latency');
  t.equal(during.value('sidecar_requests_in_flight', { cluster: 'app' }), 1, 'the held request is in flight');
  t.equal(during.value('sidecar_requests_in_flight', { cluster: 'dead' }), 0);
  t.ok((during.value('sidecar_upstream_connections', { cluster: 'app', state: 'busy' }) ?? 0) >= 1, 'its connection is busy');
  t.type(during.value('sidecar_upstream_connections', { cluster: 'app', state: 'idle' }), 'number');
  t.equal(during.value('sidecar_upstream_pending_requests', { cluster: 'app' }), 0);

  const buckets = during.samples.filter((s) => s.name === 'sidecar_request_duration_seconds_bucket' && s.labels.route === 'all');
  t.same(buckets.map((s) => s.labels.le), [...LATENCY_BUCKETS_SECONDS.map(String), '+Inf'], 'buckets from 100µs up');
  t.ok(LATENCY_BUCKETS_SECONDS[0] < 0.001, 'sub-millisecond latencies are resolved');
  const labelNames = new Set(during.samples.flatMap((s) => Object.keys(s.labels)));
  t.notOk(labelNames.has('path'), 'no raw path label');

  releases.shift()?.();
  await (await held).body.text();
  const after = await scrape();
  t.equal(after.value('sidecar_requests_in_flight', { cluster: 'app' }), 0, 'in flight goes back to 0');
  t.equal(after.value('sidecar_requests_total', { listener: 'main', route: 'all', cluster: 'app', code: '200' }), 6);
});

t.test('process metrics are there when not turned off (the test helper turns them off)', async (t) => {
  const loaded = parseConfigText(
    'admin: { address: 127.0.0.1:0 }\nlisteners: [{ name: m, address: 127.0.0.1:0, routes: [{ name: p, match: { path: /p }, directResponse: { status: 200 } }] }]\naccessLog: { path: off }\n',
    '/tmp/m.yaml',
  );
  if (!loaded.ok) throw new Error('bad config');
  const sidecar = await Sidecar.start(loaded.config);
  t.teardown(() => sidecar.stop({ graceful: false }));
  const metrics = parsePrometheusText(await (await request(`http://127.0.0.1:${sidecar.admin.port}/metrics`)).body.text());
  for (const [family, type] of Object.entries(EXPECTED_FAMILIES)) {
    if (PROCESS_FAMILY.test(family)) t.equal(metrics.types.get(family), type, `${family} is a ${type}`);
  }
});
