import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { TRACING_FLUSH_TIMEOUT_MS } from '../../src/sidecar';
import { startOtlpReceiver } from '../helpers/otlp-receiver';
import { simpleConfig, startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { closedPort, startUpstream, type Upstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

// Short exporter and batching timings, read by the exporter and the span processor at start,
// so that export failures and full queues happen within the test's time.
process.env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT = '500';
process.env.OTEL_BSP_SCHEDULE_DELAY = '20';
process.env.OTEL_BSP_MAX_QUEUE_SIZE = '16';
process.env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE = '8';

const REQUESTS = 40;
/** Unmeasured requests first: the first ones of a process pay for loading and compiling code. */
const WARM_UP_REQUESTS = 20;
/** Generous on purpose: a loaded 2-core machine runs other suites at the same time. */
const ALLOWED_SLOWDOWN_FACTOR = 3;
const ALLOWED_SLOWDOWN_MS = 15;
const METRIC_WAIT_MS = 10_000;

async function startApp(t: Test): Promise<Upstream> {
  const app = await startUpstream((_req, res) => res.end('ok'));
  t.teardown(() => app.close());
  return app;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Alternates requests between the two sidecars; returns each one's latencies (ms) and statuses. */
async function compare(traced: RunningSidecar, untraced: RunningSidecar, agent: Agent) {
  const result = { traced: [] as number[], untraced: [] as number[], statuses: [] as number[] };
  for (let i = 0; i < WARM_UP_REQUESTS + REQUESTS; i++) {
    for (const [proxy, times] of [[traced, result.traced], [untraced, result.untraced]] as const) {
      const started = performance.now();
      const res = await request(`${proxy.url()}/`, { dispatcher: agent });
      await res.body.text();
      if (i >= WARM_UP_REQUESTS) times.push(performance.now() - started);
      result.statuses.push(res.statusCode);
    }
  }
  return result;
}

async function droppedSpans(proxy: RunningSidecar, reason: string): Promise<number> {
  const text = await (await request(`${proxy.adminUrl}/metrics`)).body.text();
  const match = new RegExp(`^sidecar_tracing_spans_dropped_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return match ? Number(match[1]) : NaN;
}


async function pair(t: Test, app: Upstream, collectorUrl: string): Promise<{ traced: RunningSidecar; untraced: RunningSidecar; agent: Agent }> {
  const traced = await startSidecar(`${simpleConfig(app.url)}\ntracing: { endpoint: "${collectorUrl}" }\n`);
  const untraced = await startSidecar(simpleConfig(app.url));
  const agent = new Agent({ connections: 4 });
  t.teardown(async () => {
    await agent.close();
    await traced.close();
    await untraced.close();
  });
  return { traced, untraced, agent };
}

t.test('with the collector down, every request succeeds, latency stays that of an untraced sidecar, losses are counted', async (t) => {
  const app = await startApp(t);
  const { traced, untraced, agent } = await pair(t, app, `http://127.0.0.1:${await closedPort()}`);
  const run = await compare(traced, untraced, agent);
  t.ok(run.statuses.every((s) => s === 200), `all ${run.statuses.length} requests answered 200`);
  const tracedMs = median(run.traced);
  const untracedMs = median(run.untraced);
  t.ok(tracedMs <= untracedMs * ALLOWED_SLOWDOWN_FACTOR + ALLOWED_SLOWDOWN_MS, `median ${tracedMs.toFixed(2)} ms traced vs ${untracedMs.toFixed(2)} ms untraced`);

  await waitUntil(async () => (await droppedSpans(traced, 'export_failed')) > 0, 'export_failed to be counted', METRIC_WAIT_MS, 50);
  t.ok((await droppedSpans(traced, 'export_failed')) > 0, 'spans lost to failed exports are counted');
  const stats = (await (await request(`${traced.adminUrl}/stats`)).body.json()) as { recentErrors: Array<{ code: string; message: string }> };
  t.match(stats.recentErrors.find((e) => e.code === 'SPAN_EXPORT_FAILED')?.message ?? '', /export failed/, 'the loss is among the recent errors');
});

t.test('with a collector that never answers, the bounded queue drops spans instead of slowing requests; stop is bounded', async (t) => {
  const app = await startApp(t);
  const collector = await startOtlpReceiver({ mode: 'hang' });
  t.teardown(() => collector.close());
  const { traced, untraced, agent } = await pair(t, app, collector.url);
  const run = await compare(traced, untraced, agent);
  t.ok(run.statuses.every((s) => s === 200), `all ${run.statuses.length} requests answered 200`);
  const tracedMs = median(run.traced);
  const untracedMs = median(run.untraced);
  t.ok(tracedMs <= untracedMs * ALLOWED_SLOWDOWN_FACTOR + ALLOWED_SLOWDOWN_MS, `median ${tracedMs.toFixed(2)} ms traced vs ${untracedMs.toFixed(2)} ms untraced`);
  t.ok(collector.requests > 0, 'the exporter did try');
  await waitUntil(async () => (await droppedSpans(traced, 'queue_full')) > 0, 'queue_full to be counted', METRIC_WAIT_MS, 50);
  t.ok((await droppedSpans(traced, 'queue_full')) > 0, `${await droppedSpans(traced, 'queue_full')} spans dropped on a full queue`);

  const started = performance.now();
  await traced.sidecar.stop({ graceful: true });
  const stopMs = performance.now() - started;
  t.ok(stopMs < TRACING_FLUSH_TIMEOUT_MS + 2_000, `stop took ${stopMs.toFixed(0)} ms (flush bound ${TRACING_FLUSH_TIMEOUT_MS} ms)`);
});
