/**
 * runtime/reload-history.ts, shared by the single process and the worker primary: what a reload
 * result records and says, and config changes that run one at a time.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { SidecarConfig } from '../../src/config/types';
import { Metrics } from '../../src/telemetry/metrics/metrics';
import { RecentErrors } from '../../src/telemetry/recent-errors';
import { ReloadHistory, SerialRuns } from '../../src/runtime/reload-history';

function setup(): { history: ReloadHistory; metrics: Metrics; errors: RecentErrors; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const metrics = new Metrics({ processMetrics: false });
  const errors = new RecentErrors();
  const running = { sha256: 'abc' } as SidecarConfig;
  return { history: new ReloadHistory(metrics, logger, errors, () => running), metrics, errors, lines };
}

async function counter(metrics: Metrics, result: string): Promise<number> {
  const values = (await metrics.configReloads.get()).values;
  return values.find((v) => v.labels.result === result)?.value ?? 0;
}

t.test('a refusal is counted, kept for /config, listed as a recent error and logged; a restored file says so', async (t) => {
  const { history, metrics, errors, lines } = setup();
  const answer = history.refuse([
    { path: '', message: 'the sidecar is draining' },
    { path: 'listeners[0]', message: 'port in use' },
  ]);
  t.same(answer, {
    ok: false,
    error: 'the sidecar is draining\nlisteners[0]: port in use',
    errors: [
      { path: '', line: undefined, message: 'the sidecar is draining' },
      { path: 'listeners[0]', line: undefined, message: 'port in use' },
    ],
  });
  t.equal(history.lastError, 'the sidecar is draining\nlisteners[0]: port in use');
  t.equal(await counter(metrics, 'failure'), 1);
  t.equal((await metrics.configLastReloadSuccess.get()).values[0]?.value, 0);
  t.same(errors.list().map((e) => e.code), ['CONFIG_REJECTED']);
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(lines.at(-1)?.msg, 'config rejected; the last good config stays');

  history.record('unchanged', undefined);
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(lines.at(-1)?.msg, 'config restored: the file holds the running configuration again', 'info, not debug, after a rejection');
  t.equal(history.lastError, undefined);
  t.equal((await metrics.configLastReloadSuccess.get()).values[0]?.value, 1);

  history.record('unchanged', undefined);
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(lines.at(-1)?.msg, 'config file unchanged', 'a second unchanged look is the quiet one');
  t.equal(await counter(metrics, 'unchanged'), 2);
});

t.test('refusals from workers carry their views', async (t) => {
  const { history } = setup();
  const workers = [{ worker: 1, pid: 42, ok: false, error: 'port in use' }] as never;
  const answer = history.refuse([{ path: 'listeners[0]', message: 'port in use' }], workers);
  t.same(answer.workers, workers);
});

t.test('config changes run one at a time, and a failing one does not stop the next', async (t) => {
  const runs = new SerialRuns();
  const order: string[] = [];
  let releaseFirst: () => void = () => {};
  const first = runs.run(async () => {
    order.push('first starts');
    await new Promise<void>((resolve) => (releaseFirst = resolve));
    order.push('first ends');
    throw new Error('bind failed');
  });
  const second = runs.run(async () => {
    order.push('second');
    return 2;
  });
  await new Promise((resolve) => setImmediate(resolve));
  t.same(order, ['first starts'], 'the second waits for the first');
  releaseFirst();
  await t.rejects(first, /bind failed/, 'the caller of the first sees its failure');
  t.equal(await second, 2);
  t.same(order, ['first starts', 'first ends', 'second']);
  await runs.idle;
});
