import t from 'tap';
import { once, EventEmitter } from 'node:events';
import type { CircuitBreakerConfig } from '../../src/config/types';
import { ClusterBreaker, type BreakerOutcome, type BreakerState } from '../../src/policy/circuit-breaker';
import { ConcurrencyLimit } from '../../src/policy/concurrency-limit';
import { withTimeout } from '../helpers/certs';

function config(overrides: Partial<CircuitBreakerConfig> = {}): CircuitBreakerConfig {
  return {
    errorThresholdPercentage: 50,
    volumeThreshold: 4,
    windowMs: 60_000,
    resetTimeoutMs: 50,
    maxConcurrentRequests: 10,
    maxPendingRequests: 10,
    ...overrides,
  };
}

/** A breaker whose state changes are also events, so tests wait for them instead of sleeping. */
function observed(cfg: CircuitBreakerConfig): { breaker: ClusterBreaker; changes: BreakerState[]; events: EventEmitter } {
  const events = new EventEmitter();
  const changes: BreakerState[] = [];
  const breaker = new ClusterBreaker(cfg, (state) => {
    changes.push(state);
    events.emit(state);
  });
  return { breaker, changes, events };
}

/** Admits and settles one call; false when the breaker refused it. */
function call(breaker: ClusterBreaker, outcome: BreakerOutcome): boolean {
  const ticket = breaker.admit();
  if (ticket === undefined) return false;
  ticket.settle(outcome);
  return true;
}

/** The breaker's timers are unref'd: the guard's timer also keeps the test process alive meanwhile. */
const halfOpen = (events: EventEmitter): Promise<unknown> => withTimeout(once(events, 'half-open'), 10_000, 'the breaker to turn half-open');

/** Promise callbacks of opossum run on the microtask queue: let them. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('opens once failures pass the threshold with enough volume, then refuses', async (t) => {
  const { breaker, changes } = observed(config());
  t.teardown(() => breaker.shutdown());
  call(breaker, 'failure');
  call(breaker, 'failure');
  call(breaker, 'success');
  await settled();
  t.equal(breaker.state, 'closed', 'below the volume threshold nothing opens, whatever the rate');
  call(breaker, 'failure');
  await settled();
  t.equal(breaker.state, 'open', '3 failures of 4 calls (75% > 50%) open it');
  t.same(changes, ['open']);
  t.equal(breaker.admit(), undefined, 'an open breaker admits nothing');
  t.equal(breaker.view().rejected, 1);
});

t.test('4xx-like successes never open it', async (t) => {
  const { breaker } = observed(config());
  t.teardown(() => breaker.shutdown());
  for (let i = 0; i < 200; i++) call(breaker, 'success');
  await settled();
  t.equal(breaker.state, 'closed');
  t.equal(breaker.view().window.successes, 200);
});

t.test('half-open lets one probe through; its success closes the circuit with a clean window', async (t) => {
  const { breaker, events, changes } = observed(config());
  t.teardown(() => breaker.shutdown());
  for (let i = 0; i < 4; i++) call(breaker, 'failure');
  await settled();
  t.equal(breaker.state, 'open');
  await halfOpen(events);
  const probe = breaker.admit();
  t.ok(probe, 'the first request after resetTimeout is the probe');
  t.equal(breaker.admit(), undefined, 'a second one is refused while the probe is in flight');
  probe?.settle('success');
  await settled();
  t.equal(breaker.state, 'closed');
  t.same(changes, ['open', 'half-open', 'closed']);
  t.equal(breaker.view().window.failures, 0, 'the failures that opened it are forgotten');
  call(breaker, 'failure');
  await settled();
  t.equal(breaker.state, 'closed', 'one new failure does not reopen it');
});

t.test('a failed probe reopens it; a probe that told nothing reopens it too', async (t) => {
  const { breaker, events } = observed(config());
  t.teardown(() => breaker.shutdown());
  for (let i = 0; i < 4; i++) call(breaker, 'failure');
  await halfOpen(events);
  t.ok(call(breaker, 'failure'));
  await settled();
  t.equal(breaker.state, 'open', 'failed probe');
  await halfOpen(events);
  t.ok(call(breaker, 'neutral'));
  await settled();
  t.equal(breaker.state, 'open', 'a probe whose client left does not close the circuit');
  await halfOpen(events);
  t.ok(call(breaker, 'success'));
  await settled();
  t.equal(breaker.state, 'closed');
});

t.test('shutdown refuses further calls', async (t) => {
  const { breaker } = observed(config());
  breaker.shutdown();
  t.equal(breaker.admit(), undefined);
});

t.test('concurrency limit: admits, queues in order, refuses beyond', async (t) => {
  const limit = new ConcurrencyLimit(2, 1);
  const admitted: string[] = [];
  const waiter = (name: string): { admit: () => void } => ({ admit: () => void admitted.push(name) });
  const a = waiter('a');
  const b = waiter('b');
  const c = waiter('c');
  const d = waiter('d');
  t.equal(limit.enter(a), 'admitted');
  t.equal(limit.enter(b), 'admitted');
  t.equal(limit.enter(c), 'queued');
  t.equal(limit.enter(d), 'rejected', 'one waiting slot only');
  t.equal(limit.pending, 1);
  limit.leave();
  t.same(admitted, ['c'], 'the waiting request takes the freed slot');
  t.equal(limit.active, 2);
  t.equal(limit.enter(d), 'queued');
  t.ok(limit.cancel(d), 'a waiting request can give up');
  t.notOk(limit.cancel(d));
  limit.leave();
  limit.leave();
  t.equal(limit.active, 0);
  t.same(admitted, ['c']);
});
