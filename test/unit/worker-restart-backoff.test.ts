import t from 'tap';
import { restartDelayMs, WORKER_RESTART_BASE_DELAY_MS, WORKER_RESTART_MAX_DELAY_MS } from '../../src/workers/supervisor';

t.test('a crashing worker waits longer after each crash in a row, up to a cap', async (t) => {
  t.same(
    [1, 2, 3, 4, 5, 6, 7, 8].map(restartDelayMs),
    [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000],
  );
  t.equal(restartDelayMs(1), WORKER_RESTART_BASE_DELAY_MS, 'the first restart is quick');
  t.equal(restartDelayMs(10_000), WORKER_RESTART_MAX_DELAY_MS, 'no overflow after many crashes');
  t.ok(restartDelayMs(0) >= WORKER_RESTART_BASE_DELAY_MS, 'never less than the base');
});
