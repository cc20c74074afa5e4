/**
 * wss:// through the production TLS listener (listener/secure-server.ts: an HTTP/2 secure
 * server that also speaks HTTP/1.1, where WebSocket upgrades arrive): the sidecar started from
 * a config with `tls`, a `ws` client over TLS, messages both ways, and an upgrade the chain
 * refuses (open circuit) seen by the client as 503 CIRCUIT_OPEN.
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import fsp from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { makeTestPki, type TestPki } from '../helpers/certs';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { openWs, refusedWs, startWsEchoApp, type WsEchoApp } from '../helpers/websocket';
import { waitUntil } from '../helpers/wait';

async function startTlsSidecar(t: Test, clusterExtra = ''): Promise<{ proxy: RunningSidecar; pki: TestPki; app: WsEchoApp }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-wss-'));
  const pki = await makeTestPki(dir, { hosts: ['localhost', '127.0.0.1'] });
  const app = await startWsEchoApp();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
    routes:
      - { name: chat, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${app.upstream.url} }]
${clusterExtra ? `    ${clusterExtra}` : ''}
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });
  return { proxy, pki, app };
}

function wssUrl(proxy: RunningSidecar, path = '/'): string {
  return proxy.url().replace('https:', 'wss:') + path;
}

t.test('the production TLS listener is the HTTP/2 secure server the sidecar serves h2 on', async (t) => {
  const { proxy, pki } = await startTlsSidecar(t);
  const session = http2.connect(proxy.url(), { ca: pki.ca });
  t.teardown(() => session.close());
  const stream = session.request({ ':path': '/sidecar-h2-check' });
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  stream.resume();
  await once(stream, 'end');
  t.equal(headers[':status'], 200, 'an h2 request through the same listener reaches the app: the wss test below goes through this server');
});

t.test('wss: messages both ways through the production TLS listener', async (t) => {
  const { proxy, pki, app } = await startTlsSidecar(t);
  const ws = await openWs(wssUrl(proxy, '/room'), { ca: pki.ca });
  t.teardown(() => ws.terminate());
  ws.send('from the client');
  const [first] = (await once(ws, 'message')) as [Buffer];
  t.equal(first.toString(), 'from the client', 'a text message makes the round trip');
  const binary = Buffer.from([0, 1, 2, 250, 251, 252]);
  ws.send(binary);
  const [second, isBinary] = (await once(ws, 'message')) as [Buffer, boolean];
  t.ok(isBinary, 'a binary message stays binary');
  t.same([...second], [...binary]);
  const handshake = app.handshakes[0];
  t.equal(handshake.headers['x-forwarded-proto'], 'https', 'the app learns the client used TLS');
  t.equal(handshake.url, '/room');

  ws.close(1000, 'done');
  const [code] = (await once(ws, 'close')) as [number];
  t.equal(code, 1000, 'the close code passes through');
  await waitUntil(() => proxy.accessLog.length === 1 && proxy.sidecar.websockets.openTunnels === 0, 'the tunnel to close on both sides');
  t.match(proxy.accessLog[0], { status: 101, listener: 'secure', route: 'chat', upgrade: 'websocket' });
  t.ok(proxy.accessLog[0].bytes_in > 0 && proxy.accessLog[0].bytes_out > 0, 'bytes both ways are logged');
});

t.test('wss: an upgrade refused by an open circuit is a 503 CIRCUIT_OPEN for the client', async (t) => {
  const { proxy, pki, app } = await startTlsSidecar(t, 'circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 1, resetTimeout: 1m }');
  const breaker = proxy.sidecar.current.clusters.get('app')?.breaker;
  if (breaker === undefined) throw new Error('no breaker');
  // One failed request opens this circuit.
  breaker.admit()?.settle('failure');
  await waitUntil(() => breaker.state === 'open', 'the circuit to open');

  const refused = await refusedWs(wssUrl(proxy), { ca: pki.ca });
  t.equal(refused.status, 503);
  t.equal(refused.headers['x-sidecar-error'], 'CIRCUIT_OPEN');
  t.match(JSON.parse(refused.body), { error: 'CIRCUIT_OPEN' });
  t.equal(app.handshakes.length, 0, 'the app never saw the upgrade');
  await waitUntil(() => proxy.accessLog.length === 1, 'the refusal\'s log line');
  t.match(proxy.accessLog[0], { status: 503, error: 'CIRCUIT_OPEN', upgrade: 'websocket', listener: 'secure' });
});
