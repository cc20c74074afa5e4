/** The traffic policies' fields: every bad value is refused with its path and YAML line. */
import t from 'tap';
import { parseConfigText } from '../../src/config/load';
import type { ClusterRoute } from '../../src/config/types';

function errorsOf(routeLines: string, extra = ''): Array<{ path: string; line: number | undefined; message: string }> {
  const yaml = `listeners:
  - name: in
    address: 127.0.0.1:0
    routes:
      - name: r
        match: { prefix: / }
${routeLines}
clusters:
  - { name: app, endpoints: [{ url: http://127.0.0.1:1 }] }
  - { name: shadow, endpoints: [{ url: http://127.0.0.1:2 }] }
${extra}`;
  const loaded = parseConfigText(yaml, '/tmp/traffic.yaml');
  return loaded.ok ? [] : loaded.errors.map((e) => ({ path: e.path, line: e.line, message: e.message }));
}

function routeOf(routeLines: string, workers = 1): ClusterRoute {
  const yaml = `workers: ${workers}
listeners:
  - name: in
    address: 127.0.0.1:0
    routes:
      - name: r
        match: { prefix: / }
${routeLines}
clusters:
  - { name: app, endpoints: [{ url: http://127.0.0.1:1 }] }
`;
  const loaded = parseConfigText(yaml, '/tmp/traffic.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.config.listeners[0].routes[0] as ClusterRoute;
}

t.test('rateLimit: defaults', async (t) => {
  const route = routeOf('        cluster: app\n        rateLimit: { requests: 100, per: 1s }');
  t.same(route.rateLimit, { requests: 100, perMs: 1000, burst: 0, key: { kind: 'client' }, maxKeys: 10_000 });
  t.same(routeOf('        cluster: app\n        rateLimit: { requests: 5, per: 1m, burst: 2, key: header:X-Api-Key }', 4).rateLimit, {
    requests: 5,
    perMs: 60_000,
    burst: 2,
    key: { kind: 'header', header: 'x-api-key' },
    maxKeys: 10_000,
  });
  t.equal(routeOf('        cluster: app').rateLimit, undefined, 'absent when not configured');
});

t.test('rateLimit without per, with a bad key or a zero rate', async (t) => {
  const errors = errorsOf('        cluster: app\n        rateLimit:\n          requests: 0\n          key: user');
  t.same(
    errors.map((e) => [e.path, e.line]).sort(),
    [
      ['listeners[0].routes[0].rateLimit.requests', 9],
      ['listeners[0].routes[0].rateLimit.per', 8],
      ['listeners[0].routes[0].rateLimit.key', 10],
    ].sort(),
    JSON.stringify(errors),
  );
  t.match(errors.find((e) => e.path.endsWith('.key'))?.message, /invalid rate limit key "user": use client, route, header:<name>/);
  t.match(errors.find((e) => e.path.endsWith('.requests'))?.message, /requests must be at least 1/);
  t.match(errors.find((e) => e.path.endsWith('.per'))?.message, /required/);
});

t.test('fault: percent above 100, nothing to inject, a bad status', async (t) => {
  const errors = errorsOf('        cluster: app\n        fault:\n          abort: { status: 99, percent: 150 }');
  t.same(errors.map((e) => e.path).sort(), ['listeners[0].routes[0].fault.abort.percent', 'listeners[0].routes[0].fault.abort.status']);
  t.ok(errors.every((e) => e.line === 9), 'on the line of abort');
  t.match(errors.find((e) => e.path.endsWith('percent'))?.message, /abort.percent must be from 0 to 100 \(a share of requests\), got 150/);
  const empty = errorsOf('        cluster: app\n        fault: { header: x-fault }');
  t.equal(empty.length, 1);
  t.match(empty[0].message, /fault needs `delay`, `abort` or both/);
  t.equal(empty[0].line, 8);
});

t.test('fault compiles with its defaults', async (t) => {
  const route = routeOf('        cluster: app\n        fault: { delay: { duration: 200ms, percent: 5 }, abort: { percent: 1 }, header: X-Fault }');
  t.same(route.fault, { delay: { durationMs: 200, percent: 5 }, abort: { status: 503, percent: 1 }, header: 'x-fault' });
});

t.test('policies of cluster routes are refused on a directResponse route', async (t) => {
  const errors = errorsOf('        directResponse: { status: 200 }\n        rateLimit: { requests: 1, per: 1s }\n        fault: { abort: { percent: 1 } }');
  t.same(errors.map((e) => e.path).sort(), ['listeners[0].routes[0].fault', 'listeners[0].routes[0].rateLimit']);
});

t.test('loadBalancer and hashOn', async (t) => {
  const errors = errorsOf('        cluster: app', '  - name: c3\n    loadBalancer: round-robin\n    hashOn: header:x-user\n    endpoints: [{ url: http://127.0.0.1:3 }]');
  t.equal(errors.length, 1, JSON.stringify(errors));
  t.equal(errors[0].path, 'clusters[2].hashOn');
  t.equal(errors[0].line, 13);
  t.match(errors[0].message, /hashOn is only used with loadBalancer: hash/);
  const bad = errorsOf('        cluster: app', '  - { name: c3, loadBalancer: fastest, endpoints: [{ url: http://127.0.0.1:3 }] }');
  t.equal(bad[0]?.path, 'clusters[2].loadBalancer');
  const yaml = `listeners: [{ name: in, address: 127.0.0.1:0, routes: [{ name: r, match: { prefix: / }, cluster: app }] }]
clusters:
  - { name: app, loadBalancer: hash, endpoints: [{ url: http://127.0.0.1:1 }] }
  - { name: rr, endpoints: [{ url: http://127.0.0.1:2 }] }
`;
  const loaded = parseConfigText(yaml, '/tmp/lb.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  t.same([loaded.config.clusters.get('app')?.loadBalancer, loaded.config.clusters.get('app')?.hashOn], ['hash', { kind: 'client' }]);
  t.same([loaded.config.clusters.get('rr')?.loadBalancer, loaded.config.clusters.get('rr')?.hashOn], ['round-robin', undefined]);
});

t.test('weightedClusters: weights all 0, an unknown or repeated cluster, with cluster too, hashOn without a split', async (t) => {
  const zero = errorsOf('        weightedClusters: [{ cluster: app, weight: 0 }, { cluster: shadow, weight: 0 }]');
  t.equal(zero.length, 1, JSON.stringify(zero));
  t.equal(zero[0].path, 'listeners[0].routes[0].weightedClusters');
  t.equal(zero[0].line, 7);
  t.match(zero[0].message, /every weight of weightedClusters is 0/);
  const unknown = errorsOf('        weightedClusters:\n          - { cluster: app, weight: 1 }\n          - { cluster: nope, weight: 1 }\n          - { cluster: app, weight: 1 }');
  t.same(unknown.map((e) => [e.path, e.line]).sort(), [
    ['listeners[0].routes[0].weightedClusters[1].cluster', 9],
    ['listeners[0].routes[0].weightedClusters[2].cluster', 10],
  ]);
  t.match(unknown.find((e) => e.path.includes('[1]'))?.message, /unknown cluster "nope"/);
  t.match(unknown.find((e) => e.path.includes('[2]'))?.message, /listed twice/);
  const both = errorsOf('        cluster: app\n        weightedClusters: [{ cluster: app, weight: 1 }]');
  t.match(both[0]?.message, /exactly one of `cluster`, `directResponse`, `redirect`, `weightedClusters`/);
  const hashOn = errorsOf('        cluster: app\n        hashOn: client');
  t.equal(hashOn[0]?.path, 'listeners[0].routes[0].hashOn');
  const ok = parseConfigText(
    `listeners: [{ name: in, address: 127.0.0.1:0, routes: [{ name: r, match: { prefix: / }, weightedClusters: [{ cluster: a, weight: 1 }, { cluster: b, weight: 3 }], hashOn: header:X-User }] }]
clusters: [{ name: a, endpoints: [{ url: http://127.0.0.1:1 }] }, { name: b, endpoints: [{ url: http://127.0.0.1:2 }] }]`,
    '/tmp/split.yaml',
  );
  if (!ok.ok) throw new Error(JSON.stringify(ok.errors));
  const route = ok.config.listeners[0].routes[0] as ClusterRoute;
  t.equal(route.cluster, 'b', 'the heaviest cluster is the route\'s cluster');
  t.same(route.split, { clusters: [{ cluster: 'a', weight: 1 }, { cluster: 'b', weight: 3 }], totalWeight: 4, hashOn: { kind: 'header', header: 'x-user' } });
});

t.test('mirror: to the route\'s own cluster, to an unknown cluster, a percent above 100', async (t) => {
  const own = errorsOf('        cluster: app\n        mirror: { cluster: app }');
  t.equal(own.length, 1, JSON.stringify(own));
  t.equal(own[0].path, 'listeners[0].routes[0].mirror.cluster');
  t.equal(own[0].line, 8);
  t.match(own[0].message, /mirror cluster "app" is the route's own cluster/);
  const ownSplit = errorsOf('        weightedClusters: [{ cluster: app, weight: 1 }, { cluster: shadow, weight: 1 }]\n        mirror: { cluster: shadow }');
  t.match(ownSplit[0]?.message, /the route's own cluster/);
  const unknown = errorsOf('        cluster: app\n        mirror: { cluster: nope, percent: 101 }');
  t.same(unknown.map((e) => e.path).sort(), ['listeners[0].routes[0].mirror.cluster', 'listeners[0].routes[0].mirror.percent']);
  t.match(unknown.find((e) => e.path.endsWith('percent'))?.message, /mirror.percent must be from 0 to 100/);
  t.equal(routeOf('        cluster: app').mirror, undefined, 'absent when not configured');
});
