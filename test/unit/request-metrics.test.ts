import t from 'tap';
import { Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../src/telemetry/metrics/request-metrics';

t.test('fast counters and histograms render as Prometheus text through the registry', async (t) => {
  const registry = new Registry();
  const counter = new FastCounter('demo_requests_total', 'Requests.', ['route', 'code']).registerIn(registry);
  const histogram = new FastHistogram('demo_duration_seconds', 'Duration.', ['route'], [0.001, 0.01, 0.1]).registerIn(registry);

  counter.labels('api', '200').inc();
  counter.labels('api', '200').inc(2);
  counter.labels('api', '503').inc();
  const child = histogram.labels('api');
  for (const v of [0.0005, 0.001, 0.005, 0.05, 5]) child.observe(v);

  const text = await registry.metrics();
  t.match(text, /# TYPE demo_requests_total counter/);
  t.match(text, /demo_requests_total\{route="api",code="200"\} 3\n/);
  t.match(text, /demo_requests_total\{route="api",code="503"\} 1/);
  t.match(text, /# TYPE demo_duration_seconds histogram/);
  t.match(text, /demo_duration_seconds_bucket\{route="api",le="0.001"\} 2\n/, 'le is inclusive and buckets are cumulative');
  t.match(text, /demo_duration_seconds_bucket\{route="api",le="0.01"\} 3\n/);
  t.match(text, /demo_duration_seconds_bucket\{route="api",le="0.1"\} 4\n/);
  t.match(text, /demo_duration_seconds_bucket\{route="api",le="\+Inf"\} 5\n/);
  t.match(text, /demo_duration_seconds_sum\{route="api"\} 5.0565/);
  t.match(text, /demo_duration_seconds_count\{route="api"\} 5/);
  t.throws(() => counter.labels('only-one'), /takes 2 label values/);
});
