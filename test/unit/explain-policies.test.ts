/**
 * `sidecar explain` shows every policy a route configures (traffic and edge policies
 * included), in the order the chain applies them, and says "none" of what it does not.
 */
import t from 'tap';
import { parseConfigText } from '../../src/config/load';
import { explainRequest } from '../../src/router/explain';
import { renderExplanation } from '../../src/router/explain-text';

const YAML = `
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - name: guarded
        match: { prefix: /api }
        weightedClusters: [{ cluster: blue, weight: 90 }, { cluster: green, weight: 10 }]
        hashOn: header:x-user
        access: { allow: [10.0.0.0/8] }
        rateLimit: { requests: 10, per: 1s, burst: 5, key: client }
        cors: { allowOrigins: [https://app.example] }
        compression: { algorithms: [gzip] }
        fault: { abort: { status: 503, percent: 5 }, header: x-chaos }
        mirror: { cluster: shadow, percent: 50 }
      - name: plain
        match: { prefix: / }
        cluster: blue
clusters:
  - { name: blue, endpoints: [{ url: http://127.0.0.1:3001 }], loadBalancer: least-request }
  - { name: green, endpoints: [{ url: http://127.0.0.1:3002 }] }
  - { name: shadow, endpoints: [{ url: http://127.0.0.1:3003 }] }
`;

function config() {
  const loaded = parseConfigText(YAML, '/tmp/explain-policies.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.config;
}

t.test('a route with traffic and edge policies: each is shown', async (t) => {
  const e = explainRequest(config(), { method: 'GET', url: '/api/orders', headers: [] });
  t.equal(e.route, 'guarded');
  const p = e.policies;
  if (p === null) throw new Error('no policies');
  t.same(p.access, { allow: ['10.0.0.0/8'], deny: [], clientCertSans: [] });
  t.same(p.rateLimit, { requests: 10, per: '1000ms', burst: 5, key: 'client' });
  t.same(p.cors, { allowOrigins: ['https://app.example'], allowCredentials: false });
  t.same(p.compression?.algorithms, ['gzip']);
  t.same(p.fault, { delay: null, abort: '503 for 5%', header: 'x-chaos' });
  t.same(p.mirror?.cluster, 'shadow');
  t.same(p.weightedClusters, { clusters: ['blue=90', 'green=10'], hashOn: 'header:x-user' });
  const text = renderExplanation(e);
  const order = ['access:', 'rate limit:', 'cors:', 'compression:', 'fault:', 'mirror:', 'weighted clusters:', 'load balancer:', 'deadline'];
  const positions = order.map((label) => text.indexOf(`  ${label}`));
  t.notOk(positions.includes(-1), `every policy is in the text:\n${text}`);
  t.same([...positions].sort((a, b) => a - b), positions, 'in the order the chain applies them');
});

t.test('a route without them shows none of them, and its cluster\'s balancer', async (t) => {
  const e = explainRequest(config(), { method: 'GET', url: '/other', headers: [] });
  t.equal(e.route, 'plain');
  const p = e.policies;
  if (p === null) throw new Error('no policies');
  t.same([p.access, p.rateLimit, p.cors, p.auth, p.compression, p.fault, p.mirror, p.weightedClusters], [null, null, null, null, null, null, null, null]);
  t.equal(p.loadBalancer, 'least-request');
  t.notMatch(renderExplanation(e), /rate limit:|fault:|mirror:/);
});

t.test('a WebSocket upgrade is explained down the tunnel chain: no cors, compression, fault or mirror', async (t) => {
  const http = explainRequest(config(), { method: 'GET', url: '/api/chat', headers: [] });
  t.equal(http.policies?.chain, 'http');
  for (const upgrade of ['websocket', 'WebSocket', 'h2c, websocket']) {
    const e = explainRequest(config(), { method: 'GET', url: '/api/chat', headers: [['Upgrade', upgrade]] });
    const p = e.policies;
    if (p === null) throw new Error('no policies');
    t.equal(p.chain, 'tunnel', `Upgrade: ${upgrade}`);
    t.same([p.cors, p.compression, p.fault, p.mirror], [null, null, null, null], 'the steps a tunnel chain does not hold');
    t.same(p.access, { allow: ['10.0.0.0/8'], deny: [], clientCertSans: [] }, 'access is checked at the upgrade');
    t.same(p.rateLimit?.requests, 10, 'an upgrade takes a token like a request');
    const text = renderExplanation(e);
    t.match(text, /chain: WebSocket tunnel/);
    t.notMatch(text, /cors:|compression:|fault:|mirror:/);
  }
  // Not an upgrade the entry would switch: the HTTP chain.
  t.equal(explainRequest(config(), { method: 'POST', url: '/api/chat', headers: [['Upgrade', 'websocket']] }).policies?.chain, 'http');
  t.equal(explainRequest(config(), { method: 'GET', url: '/api/chat', headers: [['Upgrade', 'h2c']] }).policies?.chain, 'http');
});
