import { spawnSync } from 'node:child_process';
import t from 'tap';
import { request } from 'undici';
import { Metrics, PrimaryMetrics } from '../../src/telemetry/metrics/metrics';
import { parseConfigText } from '../../src/config/load';
import { Sidecar } from '../../src/sidecar';
import { GroupMetrics } from '../../src/workers/metrics-aggregation';
import { parsePrometheusText } from '../helpers/prometheus';
import { closedPort, startUpstream } from '../helpers/upstream';

/**
 * The exposition passes Prometheus's own linter, `promtool check metrics` (Debian package
 * `prometheus`; .ci/run installs it). It flags, among others, gauges named `_total`,
 * counters not named `_total`, and names that are not snake_case.
 */

const promtoolMissing = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error !== undefined;
const skip = promtoolMissing ? 'promtool is not installed here (apt-get install prometheus); CI installs it' : false;

/** promtool's problem lines for this exposition (none: it passed). */
function promtoolProblems(exposition: string): { status: number | null; problems: string[] } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  const problems = `${run.stdout}${run.stderr}`.split('\n').filter((line) => line.trim() !== '');
  return { status: run.status, problems };
}

t.test('GET /metrics of a running sidecar passes promtool check metrics', { skip }, async (t) => {
  const app = await startUpstream((_req, res) => res.end('ok'));
  const dead = await closedPort();
  const loaded = parseConfigText(
    `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: ping, match: { path: /ping }, directResponse: { status: 200, body: pong } }
      - { name: dead, match: { prefix: /dead }, cluster: dead, retry: { attempts: 1, backoff: { base: 1ms, max: 1ms } } }
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [{ url: "${app.url}" }] }
  - name: dead
    endpoints: [{ url: "http://127.0.0.1:${dead}" }]
    circuitBreaker: { volumeThreshold: 1, errorThresholdPercentage: 1 }
accessLog: { path: off }
`,
    '/tmp/promtool.yaml',
  );
  if (!loaded.ok) throw new Error('test config is invalid');
  // Process metrics on: prom-client's default families are the ones that broke the conventions.
  const sidecar = await Sidecar.start(loaded.config);
  t.teardown(async () => {
    await sidecar.stop({ graceful: false });
    await app.close();
  });
  const listener = `http://127.0.0.1:${sidecar.listenerPort('main')}`;
  for (const path of ['/ping', '/x', '/dead', '/dead']) await (await request(`${listener}${path}`)).body.text();

  const exposition = await (await request(`http://127.0.0.1:${sidecar.admin.port}/metrics`)).body.text();
  const { status, problems } = promtoolProblems(exposition);
  t.same(problems, [], 'promtool reports no problem');
  t.equal(status, 0, 'promtool exits 0');

  const metrics = parsePrometheusText(exposition);
  const names = [...metrics.types.keys()];
  t.same(names.filter((name) => name.startsWith('sidecar_process_process_')), [], 'no doubled prefix');
  t.equal(metrics.types.get('sidecar_process_cpu_seconds_total'), 'counter');
  t.equal(metrics.types.get('sidecar_nodejs_eventloop_lag_seconds'), 'gauge');
  t.same(
    names.filter((name) => name.endsWith('_total') && metrics.types.get(name) !== 'counter'),
    [],
    'only counters end in _total',
  );
  t.equal(metrics.value('sidecar_circuit_state', { cluster: 'dead' }), 2, 'the contract gauge: 2 open');
  t.equal(metrics.value('sidecar_circuit_breaker_state', { cluster: 'dead', state: 'open' }), 1, 'the state label: open is 1');
  t.equal(metrics.value('sidecar_circuit_breaker_state', { cluster: 'dead', state: 'closed' }), 0);
  t.equal(metrics.value('sidecar_circuit_breaker_state', { cluster: 'dead', state: 'half-open' }), 0);
  t.equal(metrics.value('sidecar_circuit_breaker_state', { cluster: 'app', state: 'closed' }), 1);
  t.equal(metrics.value('sidecar_config_reloads_total', { result: 'success' }), 0, 'the initial load is not a reload');
  t.equal(metrics.value('sidecar_config_reloads_total', { result: 'failure' }), 0, 'every result is there from the start');
  t.equal(metrics.value('sidecar_config_last_reload_success'), 1, 'the initial load is reported here');
});

t.test("a worker group's exposition (the primary's and the workers' families) passes promtool check metrics", { skip }, async (t) => {
  const primary = new PrimaryMetrics({ workers: 2 });
  const group = new GroupMetrics(primary);
  const answers = [];
  for (const worker of [1, 2]) {
    const metrics = new Metrics();
    metrics.forRoute('main', 'api', 'app').answered(200, 0.003);
    metrics.circuitState.labels('app').set(worker === 1 ? 0 : 2);
    answers.push({ worker, pid: 100 + worker, metrics: await metrics.registry.getMetricsAsJSON() });
  }
  const { text } = await group.render([1, 2], answers);
  const { status, problems } = promtoolProblems(text);
  t.same(problems, [], 'promtool reports no problem');
  t.equal(status, 0);
  const metrics = parsePrometheusText(text);
  t.equal(metrics.value('sidecar_circuit_breaker_state', { cluster: 'app', state: 'open', worker: '2' }), 1, 'per worker, like sidecar_circuit_state');
  t.equal(metrics.value('sidecar_circuit_breaker_state', { cluster: 'app', state: 'open' }), undefined, 'never summed');
  t.equal(metrics.value('sidecar_config_reloads_total', { result: 'success' }), 0);
  t.same([...metrics.types.keys()].filter((name) => name.startsWith('sidecar_process_process_')), []);
});
