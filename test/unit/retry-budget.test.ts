import t from 'tap';
import { RetryBudget } from '../../src/policy/retry-budget';

/** A clock the test moves by hand. */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let time = 1_000;
  return { now: () => time, advance: (ms) => void (time += ms) };
}

/** Retries the budget lets through when each of `requests` first tries fails and asks for `perRequest` retries. */
function retriesUnderFailure(budget: RetryBudget, requests: number, perRequest: number): number {
  let made = 0;
  for (let i = 0; i < requests; i++) {
    budget.recordRequest();
    for (let r = 0; r < perRequest; r++) {
      if (!budget.canRetry()) break;
      budget.recordRetry();
      made++;
    }
  }
  return made;
}

t.test('without a reserve, retries are at most ratio × requests', async (t) => {
  const clock = manualClock();
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 0 }, clock.now);
  t.notOk(budget.canRetry(), 'no request yet, no retry');
  const made = retriesUnderFailure(budget, 100, 3);
  t.equal(made, 20, '100 failing requests asking 3 retries each get 20');
  t.same(budget.view(), { ratio: 0.2, minPerSecond: 0, windowSeconds: 10, requests: 100, retries: 20, available: 0 });
});

t.test('minPerSecond is a reserve over the window', async (t) => {
  const clock = manualClock();
  const budget = new RetryBudget({ ratio: 0, minPerSecond: 2 }, clock.now);
  t.equal(retriesUnderFailure(budget, 50, 1), 20, '2/s over a 10 s window: 20 retries');
  t.notOk(budget.canRetry());
});

t.test('the window slides: old retries and requests are forgotten slice by slice', async (t) => {
  const clock = manualClock();
  const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0 }, clock.now);
  t.equal(retriesUnderFailure(budget, 10, 1), 5);
  t.notOk(budget.canRetry(), 'spent');
  clock.advance(5_000);
  t.notOk(budget.canRetry(), 'half a window later the same requests and retries still count');
  clock.advance(5_000);
  t.equal(budget.view().requests, 0, 'a whole window later nothing is left');
  t.equal(budget.view().retries, 0);
  budget.recordRequest();
  budget.recordRequest();
  t.ok(budget.canRetry(), 'new requests earn new retries');
});

t.test('a long pause clears every slice at once', async (t) => {
  const clock = manualClock();
  const budget = new RetryBudget({ ratio: 1, minPerSecond: 0 }, clock.now);
  retriesUnderFailure(budget, 5, 1);
  clock.advance(3_600_000);
  t.same(budget.view().requests, 0);
  t.same(budget.view().retries, 0);
});

t.test('partial expiry: only the slices older than the window go', async (t) => {
  const clock = manualClock();
  const budget = new RetryBudget({ ratio: 1, minPerSecond: 0 }, clock.now);
  budget.recordRequest(); // slice 0
  clock.advance(4_000);
  budget.recordRequest(); // 4 s later
  clock.advance(6_500);
  t.equal(budget.view().requests, 1, 'the first request expired, the second did not');
});
