/**
 * The one drain sequence (src/runtime/drain.ts) both runtimes use: its order, its deadline,
 * its idempotency and a stop that cuts the delay short.
 */
import t from 'tap';
import { DrainSequence, type DrainStages } from '../../src/runtime/drain';
import { captureLogger } from '../helpers/tls-clients';

interface Recorded {
  readonly steps: string[];
  stopped: boolean;
  deadline: number | undefined;
  releasedWith: number | undefined;
}

function stages(recorded: Recorded, cut = 0, changesIdle: Promise<unknown> = Promise.resolve()): DrainStages {
  return {
    startMessage: 'draining (test)',
    startFields: { runtime: 'test' },
    stopMessage: 'stopped accepting (test)',
    stopFields: () => ({ serving: 1 }),
    begin: () => void recorded.steps.push('begin'),
    stoppedMeanwhile: () => recorded.stopped,
    changesIdle: () => {
      recorded.steps.push('changesIdle');
      return changesIdle.then(() => void recorded.steps.push('changes done'));
    },
    stopServing: async (deadline) => {
      recorded.steps.push('stopServing');
      recorded.deadline = deadline;
      return { cutConnections: cut, logFields: cut > 0 ? { killedWorkers: [1] } : {} };
    },
    release: async (deadline) => {
      recorded.steps.push('release');
      recorded.releasedWith = deadline;
    },
    close: async () => void recorded.steps.push('close'),
    end: () => void recorded.steps.push('end'),
  };
}

const fresh = (): Recorded => ({ steps: [], stopped: false, deadline: undefined, releasedWith: undefined });

t.test('the stages run in order, once, with the deadline counted from the end of the delay', async (t) => {
  const log = captureLogger();
  const recorded = fresh();
  const drain = new DrainSequence(log.logger, stages(recorded, 2));
  const startedAt = Date.now();
  const first = drain.run(50, 5_000);
  t.same(recorded.steps, ['begin'], 'begin at once, before the delay');
  const second = drain.run(0, 0);
  t.equal(second, first, 'a second call returns the first drain');
  const report = await first;
  t.same(recorded.steps, ['begin', 'changesIdle', 'changes done', 'stopServing', 'release', 'close', 'end']);
  t.equal(report.cutConnections, 2);
  t.ok(report.durationMs >= 50, `the delay was waited (${report.durationMs}ms)`);
  t.ok(recorded.deadline !== undefined && recorded.deadline >= startedAt + 50 + 5_000, 'drain.timeout starts once the delay is over');
  t.equal(recorded.releasedWith, recorded.deadline, 'the release stage gets the same deadline');
  const messages = log.lines.map((l) => l.msg);
  t.same(messages, ['draining (test)', 'stopped accepting (test)', 'drain.timeout reached: busy connections were cut', 'drained']);
  t.match(log.lines[0], { delayMs: 50, timeoutMs: 5_000, runtime: 'test' });
  t.match(log.lines[3], { cutConnections: 2, killedWorkers: [1] });
});

t.test('serving stops only after the config change in progress', async (t) => {
  const recorded = fresh();
  let finishChange = (): void => {};
  const change = new Promise<void>((resolve) => (finishChange = resolve));
  const base = stages(recorded, 0, change);
  let entered = (): void => {};
  const waiting = new Promise<void>((resolve) => (entered = resolve));
  const drain = new DrainSequence(captureLogger().logger, {
    ...base,
    changesIdle: () => {
      const idle = base.changesIdle();
      entered();
      return idle;
    },
  }).run(0, 1_000);
  await waiting;
  // Let everything already due run: still nothing past the change.
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.same(recorded.steps, ['begin', 'changesIdle'], 'waiting for the change');
  finishChange();
  await drain;
  t.same(recorded.steps.slice(2, 4), ['changes done', 'stopServing']);
});

t.test('a stop during the delay cuts it short and ends the sequence there', async (t) => {
  const recorded = fresh();
  const drain = new DrainSequence(captureLogger().logger, stages(recorded));
  const startedAt = performance.now();
  const running = drain.run(60_000, 1_000);
  recorded.stopped = true;
  drain.skipDelay();
  const report = await running;
  t.ok(performance.now() - startedAt < 5_000, 'did not wait out drain.delay');
  t.same(report, { cutConnections: 0, durationMs: report.durationMs });
  t.same(recorded.steps, ['begin'], 'nothing after the delay ran: the stop already cut everything');
});

t.test('skipDelay with no drain running does nothing', async (t) => {
  const recorded = fresh();
  const drain = new DrainSequence(captureLogger().logger, stages(recorded));
  drain.skipDelay();
  t.same(recorded.steps, []);
});
