/**
 * WebSocket upgrades under the route's chain, like any request: a connect failure is retried
 * to another endpoint within the retry policy and the cluster's retry budget (and counted in
 * the retry metrics); an upgrade past the concurrency limit waits for a slot within the route
 * timeout; an app that never answers the upgrade gets the route deadline (504) with the slot
 * and the breaker ticket given back; a client that stops reading is cut by the idle timeout.
 */
import t from 'tap';
import { once } from 'node:events';
import net, { type Socket } from 'node:net';
import WebSocket from 'ws';
import { closedPort, startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { parsePrometheusText, type Exposition } from '../helpers/prometheus';
import { openWs, refusedWs, startWsEchoApp } from '../helpers/websocket';
import { waitUntil } from '../helpers/wait';

function wsUrl(proxy: RunningSidecar, path = '/'): string {
  return proxy.url().replace('http:', 'ws:') + path;
}

async function metrics(proxy: RunningSidecar): Promise<Exposition> {
  const res = await fetch(`${proxy.adminUrl}/metrics`);
  return parsePrometheusText(await res.text());
}

function config(endpoints: string[], route: string, cluster: string): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app${route ? `, ${route}` : ''} }
clusters:
  - name: app
    endpoints: [${endpoints.map((url) => `{ url: ${url} }`).join(', ')}]
${cluster ? `    ${cluster}` : ''}
`;
}

/** The cluster's concurrency limit, read from the running sidecar. */
function limitOf(proxy: RunningSidecar): { active: number; pending: number } {
  const cluster = proxy.sidecar.current.clusters.get('app');
  if (cluster === undefined) throw new Error('no cluster app');
  return { active: cluster.limit.active, pending: cluster.limit.pending };
}

/** A TCP server that accepts connections and never answers anything on them. */
async function startSilentApp(): Promise<{ url: string; sockets: Socket[]; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    // Reads (and drops) what it is sent, so that it sees the sidecar's end of the connection.
    socket.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

t.test('a connect failure is retried to another endpoint and counted as a retry', async (t) => {
  const app = await startWsEchoApp();
  const down = `http://127.0.0.1:${await closedPort()}`;
  // Round robin starts at the first endpoint: the upgrade tries the closed port first.
  const proxy = await startSidecar(config([down, app.upstream.url], 'retry: { attempts: 1, on: [connect-failure], backoff: { base: 1ms, max: 1ms } }', ''));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  const ws = await openWs(wsUrl(proxy, '/chat'));
  ws.send('after a retry');
  const [echoed] = (await once(ws, 'message')) as [Buffer];
  t.equal(echoed.toString(), 'after a retry', 'the tunnel works through the second endpoint');
  t.equal(app.handshakes.length, 1, 'the app saw one upgrade');
  t.equal(app.handshakes[0].headers['x-sidecar-attempt'], '2', 'the app got the second attempt');
  const exposition = await metrics(proxy);
  t.equal(exposition.value('sidecar_retries_total', { cluster: 'app', reason: 'connect-failure' }), 1, 'the retry is counted');
  ws.close();
  await waitUntil(() => proxy.accessLog.length === 1, 'the tunnel\'s log line');
  t.match(proxy.accessLog[0], { status: 101, attempts: 2, upstream: app.upstream.url, upgrade: 'websocket' });
  const endpoints = proxy.sidecar.current.clusters.get('app')?.endpoints ?? [];
  t.same(endpoints.map((e) => e.failures), [1, 0], 'the connect failure counts against the closed endpoint only');
});

t.test('an app\'s 5xx answer to the upgrade is retried when retry.on lists it, and never relayed', async (t) => {
  const app = await startWsEchoApp();
  // An app that answers every upgrade 503 with a body.
  const failing = await startUpstream((_req, res) => res.end());
  let failingUpgrades = 0;
  failing.server.on('upgrade', (_req: unknown, socket: Socket) => {
    failingUpgrades++;
    socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nx-failing: yes\r\n\r\nbusy');
  });
  const proxy = await startSidecar(config([failing.url, app.upstream.url], 'retry: { attempts: 1, on: [5xx], backoff: { base: 1ms, max: 1ms } }', ''));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
    await failing.close();
  });
  const ws = await openWs(wsUrl(proxy));
  t.equal(failingUpgrades, 1, 'the first endpoint answered 503');
  t.equal(app.handshakes.length, 1, 'the retry went to the second endpoint');
  ws.close();
  await waitUntil(() => proxy.accessLog.length === 1, 'the tunnel\'s log line');
  t.match(proxy.accessLog[0], { status: 101, attempts: 2 });
  const exposition = await metrics(proxy);
  t.equal(exposition.value('sidecar_retries_total', { cluster: 'app', reason: '503' }), 1, 'the retry is counted with the status');
  await waitUntil(() => proxy.sidecar.websockets.openUpstreamSockets === 0, 'no socket to the apps left');
});

t.test('the route\'s hostRewrite applies to the handshake of each attempt', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(config([app.upstream.url], 'hostRewrite: auto', ''));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const ws = await openWs(wsUrl(proxy), { headers: { host: 'chat.example' } });
  t.equal(app.handshakes[0].headers.host, new URL(app.upstream.url).host, 'the app gets its own host, not the client\'s');
  ws.close();
  await once(ws, 'close');
});

t.test('a connect failure is not retried past the retry budget', async (t) => {
  const app = await startWsEchoApp();
  const down = `http://127.0.0.1:${await closedPort()}`;
  const proxy = await startSidecar(
    config([down, app.upstream.url], 'retry: { attempts: 1, on: [connect-failure] }', 'retryBudget: { ratio: 0, minPerSecond: 0 }'),
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  const refused = await refusedWs(wsUrl(proxy));
  t.equal(refused.status, 503);
  t.equal(refused.headers['x-sidecar-error'], 'UPSTREAM_CONNECT_FAILURE');
  t.equal(app.handshakes.length, 0, 'no retry reached the app');
  const exposition = await metrics(proxy);
  t.equal(exposition.value('sidecar_retries_skipped_total', { cluster: 'app', reason: 'budget' }), 1, 'the skipped retry is counted');
  t.equal(exposition.sum('sidecar_retries_total', { cluster: 'app' }), 0);
});

t.test('an app that accepts the connection and never answers the upgrade: 504 at the deadline, slot and ticket released', async (t) => {
  const app = await startSilentApp();
  const proxy = await startSidecar(
    config([app.url], 'timeout: 300ms', 'circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 1, resetTimeout: 1m, maxConcurrentRequests: 1, maxPendingRequests: 0 }'),
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  const startedAt = performance.now();
  const answer = await refusedWs(wsUrl(proxy));
  const elapsed = performance.now() - startedAt;
  t.equal(answer.status, 504);
  t.equal(answer.headers['x-sidecar-error'], 'UPSTREAM_TIMEOUT');
  t.ok(elapsed >= 290, `answered at the route timeout (${Math.round(elapsed)}ms)`);
  t.equal(app.sockets.length, 1, 'the handshake reached the app');
  const held = app.sockets[0];
  if (!held.destroyed) await once(held, 'close');
  t.pass('the sidecar dropped its connection to the app');
  await waitUntil(() => proxy.sidecar.websockets.openTunnels === 0, 'the tunnel to end');
  t.same(limitOf(proxy), { active: 0, pending: 0 }, 'the concurrency slot is given back');
  const exposition = await metrics(proxy);
  t.equal(exposition.value('sidecar_circuit_state', { cluster: 'app' }), 2, 'the ticket was settled as a failure: the circuit opened');
  t.equal(exposition.value('sidecar_websocket_upgrades_total', { listener: 'main', route: 'all', cluster: 'app', code: '504' }), 1, 'the upgrade is counted with its 504');
  const refused = await refusedWs(wsUrl(proxy));
  t.equal(refused.headers['x-sidecar-error'], 'CIRCUIT_OPEN', 'the next upgrade meets the open circuit');
  t.equal(app.sockets.length, 1, 'and never reaches the app');
});

t.test('a per-try timeout ends the handshake and the retry goes to the next endpoint', async (t) => {
  const silent = await startSilentApp();
  const app = await startWsEchoApp();
  const proxy = await startSidecar(config([silent.url, app.upstream.url], 'retry: { attempts: 1, on: [reset, connect-failure, gateway-error], perTryTimeout: 200ms, backoff: { base: 1ms, max: 1ms } }', ''));
  t.teardown(async () => {
    await proxy.close();
    await silent.close();
    await app.close();
  });
  const ws = await openWs(wsUrl(proxy));
  t.equal(app.handshakes.length, 1, 'the second endpoint answered the retry');
  await waitUntil(() => silent.sockets.length === 1 && silent.sockets[0].destroyed, 'the silent handshake to be dropped');
  ws.close();
  await waitUntil(() => proxy.accessLog.length === 1, 'the tunnel\'s log line');
  t.match(proxy.accessLog[0], { status: 101, attempts: 2 });
  const exposition = await metrics(proxy);
  t.equal(exposition.sum('sidecar_retries_total', { cluster: 'app' }), 1, 'one retry counted');
});

t.test('an upgrade past the concurrency limit waits for a slot within the route timeout', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(config([app.upstream.url], 'timeout: 2s', 'circuitBreaker: { maxConcurrentRequests: 1, maxPendingRequests: 1 }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const first = await openWs(wsUrl(proxy));
  const second = new WebSocket(wsUrl(proxy));
  let secondOpened = false;
  second.once('open', () => (secondOpened = true));
  await waitUntil(() => limitOf(proxy).pending === 1, 'the second upgrade to queue');
  t.notOk(secondOpened, 'the second tunnel waits while the first holds the slot');
  t.equal(app.handshakes.length, 1);
  first.close();
  await once(second, 'open');
  t.equal(app.handshakes.length, 2, 'the slot the first tunnel gave back went to the second');
  second.close();
  await once(second, 'close');
  await waitUntil(() => limitOf(proxy).active === 0, 'both slots to be given back');
});

t.test('a queued upgrade whose slot never frees is refused at the route timeout', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(config([app.upstream.url], 'timeout: 300ms', 'circuitBreaker: { maxConcurrentRequests: 1, maxPendingRequests: 1 }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const first = await openWs(wsUrl(proxy));
  const refused = await refusedWs(wsUrl(proxy));
  t.equal(refused.status, 503);
  t.equal(refused.headers['x-sidecar-error'], 'OVERLOADED');
  t.same(limitOf(proxy), { active: 1, pending: 0 }, 'the queued upgrade left the queue; the open tunnel keeps its slot');
  first.terminate();
  await waitUntil(() => limitOf(proxy).active === 0, 'the open tunnel\'s slot to be given back');
});

t.test('a client that leaves while its upgrade waits for a slot leaves the queue', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(config([app.upstream.url], 'timeout: 5s', 'circuitBreaker: { maxConcurrentRequests: 1, maxPendingRequests: 1 }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const first = await openWs(wsUrl(proxy));
  const leaving = new WebSocket(wsUrl(proxy));
  leaving.on('error', () => {});
  await waitUntil(() => limitOf(proxy).pending === 1, 'the second upgrade to queue');
  leaving.terminate();
  await waitUntil(() => limitOf(proxy).pending === 0, 'the queue to empty');
  await waitUntil(() => proxy.accessLog.length === 1, 'the left upgrade\'s log line');
  t.match(proxy.accessLog[0], { status: 499, flags: 'DC', attempts: 0 });
  first.close();
  await waitUntil(() => limitOf(proxy).active === 0, 'the first slot to be given back');
  t.equal(app.handshakes.length, 1, 'the app never saw the upgrade that left');
});

t.test('a client that sends the upgrade and then reads nothing is cut by the idle timeout', async (t) => {
  const app = await startWsEchoApp();
  // The app floods every new tunnel: the client reads none of it.
  let appSent = 0;
  app.wss.on('connection', (ws) => {
    const chunk = Buffer.alloc(64 * 1024, 1);
    const pump = (): void => {
      while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 1024 * 1024) {
        ws.send(chunk);
        appSent += chunk.length;
      }
    };
    pump();
    const timer = setInterval(pump, 20);
    ws.on('close', () => clearInterval(timer));
  });
  const proxy = await startSidecar(config([app.upstream.url], 'websocket: { idleTimeout: 400ms }', 'circuitBreaker: { maxConcurrentRequests: 1 }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const client = net.connect(proxy.port(), '127.0.0.1');
  await once(client, 'connect');
  client.write(
    'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  // Reads nothing from now on: the sidecar's writes to it back up.
  client.pause();
  await waitUntil(() => proxy.sidecar.websockets.openTunnels === 1 && app.handshakes.length === 1, 'the tunnel to open');
  await waitUntil(() => proxy.accessLog.length === 1, 'the tunnel to be closed and logged');
  // What the sidecar managed to write is still unread: the end of the connection comes after it.
  const closed = once(client, 'close');
  client.resume();
  await closed;
  t.pass('the sidecar closed the stalled client\'s connection');
  const line = proxy.accessLog[0];
  t.match(line, { status: 101, flags: 'SI', upgrade: 'websocket' });
  t.ok(line.bytes_out < appSent, `the sidecar did not read all the app sent into memory (${line.bytes_out} of ${appSent} bytes relayed)`);
  t.ok(line.bytes_out < 32 * 1024 * 1024, 'the relayed bytes stay bounded by the socket buffers');
  await waitUntil(() => limitOf(proxy).active === 0 && proxy.sidecar.websockets.openUpstreamSockets === 0, 'the slot and the app\'s socket to be released');
});

t.test('an upgrade first compiles both chains of the route: its HTTP requests are still recorded', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(simpleConfig(app.upstream.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const ws = await openWs(`${proxy.url().replace('http://', 'ws://')}/socket`);
  ws.send('first');
  const [echo] = (await once(ws, 'message')) as [Buffer];
  t.equal(String(echo), 'first');
  ws.close();
  const res = await fetch(`${proxy.url()}/plain`, { headers: { 'x-request-id': 'after-the-upgrade' } });
  t.equal(await res.text(), 'plain');
  // Recorded when the exchange ends, just after the client has the whole answer.
  let entry: unknown;
  await waitUntil(async () => {
    const recorded = await fetch(`${proxy.adminUrl}/requests/after-the-upgrade`);
    entry = recorded.status === 200 ? await recorded.json() : await recorded.text().then(() => undefined);
    return entry !== undefined;
  }, 'the flight recorder to keep the HTTP request', 5_000);
  t.match(entry, { requestId: 'after-the-upgrade', route: 'all', status: 200 });
});
