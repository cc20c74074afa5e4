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
  t.same(steps(chainFor(plain).head), ['HeadPort', 'DeadlineInterceptor', 'BreakerInterceptor', 'ConcurrencyInterceptor', 'TerminalPort']);
  t.equal(chainFor(plain).retry, undefined);
});

t.test('a route with retries has the retry step just above the terminal', async (t) => {
  const [, retried] = routes();
  t.same(steps(chainFor(retried).head), ['HeadPort', 'DeadlineInterceptor', 'BreakerInterceptor', 'ConcurrencyInterceptor', 'RetryInterceptor', 'TerminalPort']);
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

t.test('both kinds of exchange share the route\'s policy steps between their own ends', async (t) => {
  const [, retried] = routes();
  const chain = chainFor(retried);
  const top = chain.head.next;
  const bottom = chain.terminal.up;
  for (const [kind, ends] of [['http', chain.http], ['tunnel', chain.tunnel]] as const) {
    t.equal(ends.head.next, top, `the ${kind} head dispatches to the route's first policy`);
    t.equal(ends.terminal.up, bottom, `the ${kind} terminal reports to the route's last policy`);
  }
  t.same([chain.http.head, chain.http.terminal, chain.tunnel.head, chain.tunnel.terminal].map((step) => step.constructor.name),
    ['ObserveInterceptor', 'PoolTerminal', 'TunnelObserveInterceptor', 'TunnelTerminal']);
});

t.test('rate limit, fault and mirror sit above the breaker, the limit above the clock', async (t) => {
  const yaml = `
listeners:
  - name: in
    address: 127.0.0.1:0
    routes:
      - { name: guarded, match: { prefix: / }, cluster: app, rateLimit: { requests: 1, per: 1s }, fault: { abort: { percent: 1 } }, mirror: { cluster: shadow } }
clusters:
  - { name: app, endpoints: [{ url: http://127.0.0.1:1 }] }
  - { name: shadow, endpoints: [{ url: http://127.0.0.1:2 }] }
`;
  const loaded = parseConfigText(yaml, '/tmp/pipeline.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const route = loaded.config.listeners[0].routes[0] as ClusterRoute;
  t.same(steps(chainFor(route).head), [
    'HeadPort',
    'RateLimitInterceptor',
    'DeadlineInterceptor',
    'FaultInterceptor',
    'MirrorInterceptor',
    'BreakerInterceptor',
    'ConcurrencyInterceptor',
    'TerminalPort',
  ]);
});

t.test('with the recorder on, the record step sits just above the terminal; off, it is not in the chain', async (t) => {
  const [plain, retried] = routes();
  t.same(steps(chainFor(retried, true).head), [
    'HeadPort',
    'DeadlineInterceptor',
    'BreakerInterceptor',
    'ConcurrencyInterceptor',
    'RetryInterceptor',
    'RecordInterceptor',
    'TerminalPort',
  ]);
  t.notOk(steps(chainFor(plain, false).head).includes('RecordInterceptor'));
});
