import t from 'tap';
import { parseConfigText } from '../../src/config/load';
import type { ClusterRoute } from '../../src/config/types';
import { chainFor } from '../../src/pipeline/compose';
import type { Interceptor } from '../../src/pipeline/interceptor';
import { RateLimitInterceptor, type RouteRateLimit } from '../../src/pipeline/rate-limit';

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
  t.same(steps(chainFor(plain).http.head), ['ObserveInterceptor', 'DeadlineInterceptor', 'BreakerInterceptor', 'ConcurrencyInterceptor', 'PoolTerminal']);
  t.same(steps(chainFor(plain).tunnel.head), ['TunnelObserveInterceptor', 'DeadlineInterceptor', 'BreakerInterceptor', 'ConcurrencyInterceptor', 'TunnelTerminal']);
  t.equal(chainFor(plain).http.retry, undefined);
  t.equal(chainFor(plain).tunnel.retry, undefined);
});

t.test('a route with retries has the retry step just above the terminal', async (t) => {
  const [, retried] = routes();
  t.same(steps(chainFor(retried).http.head), ['ObserveInterceptor', 'DeadlineInterceptor', 'BreakerInterceptor', 'ConcurrencyInterceptor', 'RetryInterceptor', 'PoolTerminal']);
  t.same(steps(chainFor(retried).tunnel.head), ['TunnelObserveInterceptor', 'DeadlineInterceptor', 'BreakerInterceptor', 'ConcurrencyInterceptor', 'RetryInterceptor', 'TunnelTerminal']);
});

t.test('the chains are compiled once per route object and link both ways', async (t) => {
  const [plain] = routes();
  const chains = chainFor(plain);
  t.equal(chainFor(plain), chains, 'the same chains for the same route');
  t.not(chainFor(routes()[0]), chains, 'a reloaded route gets its own chains');
  for (const chain of [chains.http, chains.tunnel]) {
    for (let step: Interceptor | undefined = chain.head; step?.next !== undefined; step = step.next) t.equal(step.next.up, step);
    t.equal(chain.head.up, undefined);
    t.equal(chain.terminal.next, undefined);
  }
});

t.test('each kind has its own steps: the timers of one never come back to the other\'s', async (t) => {
  const [, retried] = routes();
  const { http, tunnel } = chainFor(retried);
  t.not(http.deadline, tunnel.deadline);
  t.not(http.concurrency, tunnel.concurrency);
  t.not(http.retry, tunnel.retry);
});

const EVERY_POLICY = `
listeners:
  - name: in
    address: 127.0.0.1:0
    routes:
      - name: guarded
        match: { prefix: / }
        cluster: app
        access: { allow: [127.0.0.1/32] }
        rateLimit: { requests: 1, per: 1s }
        cors: { allowOrigins: ['https://a.example'] }
        auth: { external: { url: http://127.0.0.1:3/check } }
        compression: {}
        fault: { abort: { percent: 1 } }
        mirror: { cluster: shadow }
        hostRewrite: app.internal
        retry: { attempts: 1 }
clusters:
  - { name: app, endpoints: [{ url: http://127.0.0.1:1 }] }
  - { name: shadow, endpoints: [{ url: http://127.0.0.1:2 }] }
`;

function everyPolicyRoute(): ClusterRoute {
  const loaded = parseConfigText(EVERY_POLICY, '/tmp/pipeline.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.config.listeners[0].routes[0] as ClusterRoute;
}

t.test('the HTTP chain: edge steps above the clock, rate limit, fault and mirror above the breaker', async (t) => {
  t.same(steps(chainFor(everyPolicyRoute(), true).http.head), [
    'ObserveInterceptor',
    'AccessInterceptor',
    'RateLimitInterceptor',
    'CorsInterceptor',
    'AuthInterceptor',
    'CompressionInterceptor',
    'DeadlineInterceptor',
    'FaultInterceptor',
    'MirrorInterceptor',
    'BreakerInterceptor',
    'ConcurrencyInterceptor',
    'RetryInterceptor',
    'HostRewriteInterceptor',
    'RecordInterceptor',
    'PoolTerminal',
  ]);
});

t.test('the tunnel chain holds only the policies a tunnel uses', async (t) => {
  t.same(steps(chainFor(everyPolicyRoute(), true).tunnel.head), [
    'TunnelObserveInterceptor',
    'RateLimitInterceptor',
    'DeadlineInterceptor',
    'BreakerInterceptor',
    'ConcurrencyInterceptor',
    'RetryInterceptor',
    'HostRewriteInterceptor',
    'TunnelTerminal',
  ]);
});

t.test('both chains of a route take their rate-limit tokens from the same buckets', async (t) => {
  const { http, tunnel } = chainFor(everyPolicyRoute());
  const limitOf = (head: Interceptor): RouteRateLimit | undefined => {
    for (let step: Interceptor | undefined = head; step !== undefined; step = step.next) if (step instanceof RateLimitInterceptor) return step.limit;
    return undefined;
  };
  t.ok(limitOf(http.head) !== undefined);
  t.equal(limitOf(http.head), limitOf(tunnel.head));
});

t.test('with the recorder off, the record step is not in the chain', async (t) => {
  const [plain] = routes();
  t.notOk(steps(chainFor(plain, false).http.head).includes('RecordInterceptor'));
});
