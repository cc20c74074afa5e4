import t from 'tap';
import { Metrics, PrimaryMetrics } from '../../src/telemetry/metrics/metrics';
import { GroupMetrics, type MetricsJson } from '../../src/workers/metrics-aggregation';
import { parsePrometheusText } from '../helpers/prometheus';

/** A worker's registry: `requests` answered on route main/api, and its breaker in `breaker` state. */
async function workerMetrics(requests: number, breaker: number, seconds = 0.003): Promise<{ metrics: Metrics; json: () => Promise<MetricsJson> }> {
  const metrics = new Metrics({ processMetrics: false });
  const route = metrics.forRoute('main', 'api', 'app');
  for (let i = 0; i < requests; i++) route.answered(200, seconds);
  metrics.upstreamAttempts.labels('app', '2xx').inc(requests);
  metrics.circuitState.labels('app').set(breaker);
  metrics.configReloads.labels('success').inc();
  metrics.websocketTunnelsActive.labels('main', 'app').set(1);
  return { metrics, json: () => metrics.registry.getMetricsAsJSON() };
}

t.test('counters and histograms are summed; state gauges stay per worker; reloads are the primary\'s', async (t) => {
  const primary = new PrimaryMetrics({ processMetrics: false, workers: 2 });
  primary.configReloads.labels('success').inc();
  const group = new GroupMetrics(primary);
  const one = await workerMetrics(3, 0);
  const two = await workerMetrics(4, 2, 0.2);
  const { text } = await group.render([1, 2], [
    { worker: 1, pid: 101, metrics: await one.json() },
    { worker: 2, pid: 102, metrics: await two.json() },
  ]);
  const m = parsePrometheusText(text);
  t.equal(m.value('sidecar_requests_total', { listener: 'main', route: 'api', cluster: 'app', code: '200' }), 7);
  t.equal(m.value('sidecar_request_duration_seconds_count', { listener: 'main', route: 'api', cluster: 'app' }), 7);
  t.equal(m.value('sidecar_request_duration_seconds_bucket', { listener: 'main', route: 'api', cluster: 'app', le: '0.005' }), 3, 'every bucket summed');
  t.equal(m.value('sidecar_request_duration_seconds_bucket', { listener: 'main', route: 'api', cluster: 'app', le: '0.25' }), 7);
  t.equal(m.value('sidecar_request_duration_seconds_bucket', { listener: 'main', route: 'api', cluster: 'app', le: '+Inf' }), 7);
  t.ok(Math.abs((m.value('sidecar_request_duration_seconds_sum', { listener: 'main', route: 'api', cluster: 'app' }) ?? 0) - (3 * 0.003 + 4 * 0.2)) < 1e-9, 'sums summed');
  t.equal(m.value('sidecar_upstream_attempts_total', { cluster: 'app', result: '2xx' }), 7);
  t.equal(m.value('sidecar_websocket_tunnels_active', { listener: 'main', cluster: 'app' }), 2, 'counting gauges are summed');
  t.equal(m.value('sidecar_circuit_state', { cluster: 'app', worker: '1' }), 0);
  t.equal(m.value('sidecar_circuit_state', { cluster: 'app', worker: '2' }), 2);
  t.equal(m.value('sidecar_circuit_state', { cluster: 'app' }), undefined, 'no summed breaker state');
  t.equal(m.value('sidecar_config_reloads_total', { result: 'success' }), 1, 'the workers\' own reload counts are left out');
  t.equal(m.value('sidecar_worker_up', { worker: '1' }), 1);
  t.equal(m.value('sidecar_worker_up', { worker: '2' }), 1);
  t.equal(m.types.get('sidecar_request_duration_seconds'), 'histogram');
});

t.test('a silent worker counts with its last answer; an exited one stays in the sums', async (t) => {
  const primary = new PrimaryMetrics({ processMetrics: false, workers: 2 });
  const group = new GroupMetrics(primary);
  const one = await workerMetrics(5, 1);
  const two = await workerMetrics(2, 0);
  await group.render([1, 2], [
    { worker: 1, pid: 101, metrics: await one.json() },
    { worker: 2, pid: 102, metrics: await two.json() },
  ]);

  const silent = parsePrometheusText(
    (await group.render([1, 2], [
      { worker: 1, pid: 101, metrics: undefined },
      { worker: 2, pid: 102, metrics: await two.json() },
    ])).text,
  );
  t.equal(silent.value('sidecar_requests_total', { listener: 'main', route: 'api', cluster: 'app', code: '200' }), 7, 'the silent worker\'s last counters');
  t.equal(silent.value('sidecar_worker_up', { worker: '1' }), 0, 'named as not answering');
  t.equal(silent.value('sidecar_circuit_state', { cluster: 'app', worker: '1' }), undefined, 'its stale state gauges are not shown');

  group.workerExited(101);
  const fresh = await workerMetrics(1, 0);
  const after = parsePrometheusText(
    (await group.render([1, 2], [
      { worker: 1, pid: 103, metrics: await fresh.json() },
      { worker: 2, pid: 102, metrics: await two.json() },
    ])).text,
  );
  t.equal(after.value('sidecar_requests_total', { listener: 'main', route: 'api', cluster: 'app', code: '200' }), 8, '5 retired + 1 new + 2: the sum never goes down');
  t.equal(after.value('sidecar_request_duration_seconds_count', { listener: 'main', route: 'api', cluster: 'app' }), 8);
  t.equal(after.value('sidecar_circuit_state', { cluster: 'app', worker: '1' }), 0, 'the new worker 1\'s breaker');

  // Many restarts: the retired snapshots are folded, the sums unchanged.
  group.workerExited(103);
  for (let pid = 200; pid < 210; pid++) {
    const short = await workerMetrics(1, 0);
    await group.render([1, 2], [{ worker: 1, pid, metrics: await short.json() }]);
    group.workerExited(pid);
  }
  const folded = parsePrometheusText((await group.render([1, 2], [{ worker: 2, pid: 102, metrics: await two.json() }])).text);
  t.equal(folded.value('sidecar_requests_total', { listener: 'main', route: 'api', cluster: 'app', code: '200' }), 5 + 1 + 10 + 2);
  t.equal(folded.value('sidecar_worker_up', { worker: '1' }), 0, 'a slot without a worker is down');
});
