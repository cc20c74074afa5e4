/**
 * Connection slots cannot be held by clients that do not use them: idle sockets near
 * maxConnections are closed long before headersTimeout, one peer address is held to
 * maxConnectionsPerPeer (trusted proxies exempt), and the admin listener always lets a probe
 * in however many idle connections it holds.
 */
import type net from 'node:net';
import t from 'tap';
import { closed } from '../helpers/raw';
import { waitUntil } from '../helpers/wait';
import { connectFrom, getFrom, getOn, holdConnections } from '../helpers/peer-sockets';
import { parsePrometheusText } from '../helpers/prometheus';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';

/** Far beyond what the tests wait: on the old code idle sockets stay open this long. */
const LONG = '60s';
/** Bound of a wait the fix must meet; SILENT_CONNECTION_TIMEOUT_NEAR_CAPACITY_MS is 2 s. */
const CLOSE_BOUND_MS = 30_000;

function config(listenerExtra: string): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    headersTimeout: ${LONG}
    requestTimeout: ${LONG}
    keepAliveTimeout: ${LONG}
${listenerExtra}
    routes:
      - { name: ping, match: { prefix: / }, directResponse: { status: 200, body: pong } }
`;
}

async function metric(proxy: RunningSidecar, name: string, labels: Record<string, string>): Promise<number> {
  return parsePrometheusText(await proxy.sidecar.metrics.registry.metrics()).sum(name, labels);
}

function releaseAll(sockets: readonly net.Socket[]): void {
  for (const socket of sockets) socket.destroy();
}

t.test('near maxConnections, connections that sent nothing are closed and a new client is served', async (t) => {
  const proxy = await startSidecar(config('    maxConnections: 50'));
  const held: net.Socket[] = [];
  t.teardown(async () => {
    releaseAll(held);
    await proxy.close();
  });
  const port = proxy.port();
  const listener = proxy.sidecar.listeners[0];

  // A client that uses its kept-alive connection: it has sent bytes, it keeps its slot.
  const keptAlive = await connectFrom(port, '127.0.0.9');
  held.push(keptAlive);
  t.equal(await getOn(keptAlive, '/'), 200, 'a kept-alive client is served');

  const started = performance.now();
  held.push(...(await holdConnections(port, 49)));
  await waitUntil(() => listener.connections === 50, 'the listener to hold 50 of 50 connections');

  const silent = held.slice(1);
  const closedByServer = await Promise.all(silent.map((socket) => closed(socket, CLOSE_BOUND_MS)));
  const seconds = (performance.now() - started) / 1000;
  t.equal(closedByServer.filter(Boolean).length, 49, `every silent connection is closed (headersTimeout is ${LONG})`);
  t.comment(`49 silent connections closed ${seconds.toFixed(1)} s after they were opened`);

  const fresh = await getFrom(port, '/', '127.0.0.1');
  t.equal(fresh.status, 200, 'a new client is served');
  t.equal(await getOn(keptAlive, '/'), 200, 'the kept-alive client still has its connection');
  t.equal(await metric(proxy, 'sidecar_listener_connections_dropped_total', { listener: 'main', reason: 'silent_near_capacity' }), 49, 'counted');
});

t.test('below the near-capacity mark, a silent connection keeps headersTimeout', async (t) => {
  const proxy = await startSidecar(config('    maxConnections: 50'));
  const held = await holdConnections(proxy.port(), 40);
  t.teardown(async () => {
    releaseAll(held);
    await proxy.close();
  });
  await waitUntil(() => proxy.sidecar.listeners[0].connections === 40, 'the listener to hold 40 of 50 connections');
  // A fixed wait is what this checks: nothing happens within the near-capacity deadline.
  t.notOk(await closed(held[0], 3_000), 'the oldest silent connection is still open after 3 s');
});

t.test('one peer address is held to maxConnectionsPerPeer; other peers and trusted proxies get in', async (t) => {
  const proxy = await startSidecar(config('    maxConnections: 1000\n    maxConnectionsPerPeer: 5\n    trustedProxies: [127.0.0.4/32]'));
  const held: net.Socket[] = [];
  t.teardown(async () => {
    releaseAll(held);
    await proxy.close();
  });
  const port = proxy.port();
  const listener = proxy.sidecar.listeners[0];

  const first = await holdConnections(port, 5, '127.0.0.2');
  held.push(...first);
  await waitUntil(() => listener.connections === 5, '5 connections from 127.0.0.2 to be accepted');
  const sixth = await connectFrom(port, '127.0.0.2');
  held.push(sixth);
  t.ok(await closed(sixth, CLOSE_BOUND_MS), `the 6th from 127.0.0.2 is closed at once (headersTimeout is ${LONG})`);
  t.equal((await getFrom(port, '/', '127.0.0.2')).status, undefined, 'a request from 127.0.0.2 is not served either');
  t.equal((await getFrom(port, '/', '127.0.0.3')).status, 200, 'another peer, 127.0.0.3, is served');

  held.push(...(await holdConnections(port, 8, '127.0.0.4')));
  t.equal((await getFrom(port, '/', '127.0.0.4')).status, 200, 'a trusted proxy, 127.0.0.4, is served on its 9th connection');
  t.ok(first.every((socket) => !socket.destroyed), 'the first 5 connections of 127.0.0.2 are still open');

  releaseAll(held.splice(0));
  await waitUntil(() => listener.connections === 0, 'the connections to be released');
  t.equal((await getFrom(port, '/', '127.0.0.2')).status, 200, 'once its connections closed, 127.0.0.2 is served again');
  t.equal(await metric(proxy, 'sidecar_listener_connections_dropped_total', { listener: 'main', reason: 'per_peer_limit' }), 2, 'counted');
});

t.test('the admin listener answers probes whatever idle connections it holds', async (t) => {
  const proxy = await startSidecar(config(''));
  const held: net.Socket[] = [];
  t.teardown(async () => {
    releaseAll(held);
    await proxy.close();
  });
  const port = proxy.sidecar.admin.port;

  // A scraper's kept-alive connection from its own address.
  const scraper = await connectFrom(port, '127.0.0.5');
  held.push(scraper);
  t.equal(await getOn(scraper, '/live'), 200, 'the scraper is served');

  // 300 idle connections from one address, then 300 more spread over six.
  held.push(...(await holdConnections(port, 300, '127.0.0.1')));
  t.equal((await getFrom(port, '/ready')).status, 200, '/ready answers after 300 idle connections from one peer');
  t.equal((await getFrom(port, '/live')).status, 200, '/live answers too');
  for (let peer = 10; peer < 16; peer++) held.push(...(await holdConnections(port, 50, `127.0.0.${peer}`)));
  t.equal((await getFrom(port, '/ready', '127.0.0.20')).status, 200, '/ready answers after 300 more from six peers');
  t.equal(await getOn(scraper, '/live'), 200, "the scraper's kept-alive connection survived");
  t.ok((await metric(proxy, 'sidecar_admin_connections_closed_total', { reason: 'evicted' })) >= 300, 'the evictions are counted');
});
