import t from 'tap';
import { parseConfigText } from '../../src/config/load';
import type { ClusterRoute } from '../../src/config/types';
import { chainFor } from '../../src/pipeline/compose';
import type { Interceptor } from '../../src/pipeline/interceptor';

function routes(): ClusterRoute[] {
  const yaml = `
listeners:
  - name: in
    address: 127.0.0.1:0
    routes:
      - { name: plain, match: { prefix: /plain }, cluster: app }
      - { name: retried, match: { prefix: / }, cluster: app, retry: { attempts: 2, perTryTimeout: 1s } }
clusters:
  - { name: app, endpoints: [{ url: http://127.0.0.1:1 }] }
`;
  const loaded = parseConfigText(yaml, '/tmp/pipeline.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.config.listeners[0].routes.filter((r): r is ClusterRoute => r.action === 'cluster');
}

/** The steps from the head down, by class name. */
function steps(head: Interceptor): string[] {
  const names: string[] = [];
  for (let step: Interceptor | undefined = head; step !== undefined; step = step.next) names.push(step.constructor.name);
  return names;
}

t.test('a route without retries has no retry step', async (t) => {
  const [plain] = routes();
  t.same(steps(chainFor(plain).head), ['ObserveInterceptor', 'DeadlineInterceptor', 'BreakerInterceptor', 'ConcurrencyInterceptor', 'PoolTerminal']);
  t.equal(chainFor(plain).retry, undefined);
});

t.test('a route with retries has the retry step just above the terminal', async (t) => {
  const [, retried] = routes();
  t.same(steps(chainFor(retried).head), ['ObserveInterceptor', 'DeadlineInterceptor', 'BreakerInterceptor', 'ConcurrencyInterceptor', 'RetryInterceptor', 'PoolTerminal']);
});

t.test('the chain is compiled once per route object and links both ways', async (t) => {
  const [plain] = routes();
  const chain = chainFor(plain);
  t.equal(chainFor(plain), chain, 'the same chain for the same route');
  t.not(chainFor(routes()[0]), chain, 'a reloaded route gets its own chain');
  for (let step: Interceptor | undefined = chain.head; step?.next !== undefined; step = step.next) t.equal(step.next.up, step);
  t.equal(chain.head.up, undefined);
  t.equal(chain.terminal.next, undefined);
});

t.test('with the recorder on, the record step sits just above the terminal; off, it is not in the chain', async (t) => {
  const [plain, retried] = routes();
  t.same(steps(chainFor(retried, true).head), [
    'ObserveInterceptor',
    'DeadlineInterceptor',
    'BreakerInterceptor',
    'ConcurrencyInterceptor',
    'RetryInterceptor',
    'RecordInterceptor',
    'PoolTerminal',
  ]);
  t.notOk(steps(chainFor(plain, false).head).includes('RecordInterceptor'));
});
