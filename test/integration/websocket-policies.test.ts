/**
 * WebSocket upgrades under the cluster's policies: an open circuit refuses an upgrade with
 * 503 CIRCUIT_OPEN (the app never sees it), and open tunnels hold slots of the cluster's
 * concurrency limit (an upgrade past the limit gets 503 OVERLOADED).
 */
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { openWs, refusedWs } from '../helpers/websocket';
import { waitUntil } from '../helpers/wait';

function wsUrl(proxy: RunningSidecar, path = '/'): string {
  return proxy.url().replace('http:', 'ws:') + path;
}

/** A ws echo app whose plain HTTP requests to /fail get 500; counts the upgrades it sees. */
async function startApp(): Promise<{ url: string; upgrades: () => number; close: () => Promise<void> }> {
  const upstream = await startUpstream((req, res) => {
    res.writeHead(req.url === '/fail' ? 500 : 200);
    res.end();
  });
  const wss = new WebSocketServer({ server: upstream.server });
  let upgrades = 0;
  wss.on('connection', (ws) => {
    upgrades++;
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => ws.terminate());
  });
  return {
    url: upstream.url,
    upgrades: () => upgrades,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await upstream.close();
    },
  };
}

t.test('an open circuit refuses an upgrade with 503 CIRCUIT_OPEN', async (t) => {
  const app = await startApp();
  const proxy = await startSidecar(
    simpleConfig(app.url, '', 'circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 1, resetTimeout: 1m }'),
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const failed = await fetch(proxy.url() + '/fail');
  await failed.arrayBuffer();
  t.equal(failed.status, 500, 'the app failed one request: the circuit opens');
  await waitUntil(() => proxy.sidecar.current.clusters.get('app')?.breaker.state === 'open', 'the circuit to open');

  const refused = await refusedWs(wsUrl(proxy));
  t.equal(refused.status, 503);
  t.equal(refused.headers['x-sidecar-error'], 'CIRCUIT_OPEN');
  t.equal(app.upgrades(), 0, 'the app never saw the upgrade');
  await waitUntil(() => proxy.accessLog.some((line) => line.upgrade === 'websocket'), 'the refused upgrade\'s log line');
  const line = proxy.accessLog.find((l) => l.upgrade === 'websocket');
  t.equal(line?.error, 'CIRCUIT_OPEN');
});

t.test('open tunnels count in the concurrency limit', async (t) => {
  const app = await startApp();
  const proxy = await startSidecar(simpleConfig(app.url, '', 'circuitBreaker: { maxConcurrentRequests: 1, maxPendingRequests: 0 }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const first = await openWs(wsUrl(proxy));
  const refused = await refusedWs(wsUrl(proxy));
  t.equal(refused.status, 503, 'a second tunnel is over the limit');
  t.equal(refused.headers['x-sidecar-error'], 'OVERLOADED');
  t.equal(app.upgrades(), 1, 'the app saw only the first upgrade');

  first.close();
  await waitUntil(() => proxy.sidecar.websockets.openTunnels === 0, 'the first tunnel to close');
  const again: WebSocket = await openWs(wsUrl(proxy));
  t.pass('the slot is free again once the tunnel closed');
  again.terminate();
});
