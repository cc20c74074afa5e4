/**
 * WebSocket tunnels carry everything the protocol has: text and binary messages, ping/pong,
 * close codes both ways, subprotocol negotiation; the handshake gets the same header policy
 * as any request; wss terminates at a TLS listener.
 */
import t from 'tap';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { request } from 'undici';
import { Metrics } from '../../src/telemetry/metrics/metrics';
import { ListenerServer } from '../../src/listener/server';
import { createRequestHandler } from '../../src/listener/handler';
import { createUpgradeHandler } from '../../src/listener/upgrade-handler';
import type { ProxyServices } from '../../src/proxy/state';
import type { AccessLogEntry } from '../../src/telemetry/access-log';
import { disabledTracing } from '../../src/telemetry/tracing';
import { silentLogger } from '../../src/telemetry/logger';
import { WebSocketProxy } from '../../src/upstream/websocket';
import { makeTestPki } from '../helpers/certs';
import { simpleConfig, startSidecar } from '../helpers/sidecar';
import { openWs, startWsEchoApp } from '../helpers/websocket';
import { waitUntil } from '../helpers/wait';

async function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  const [data, isBinary] = (await once(ws, 'message')) as [Buffer, boolean];
  return { data, isBinary };
}

t.test('text, binary, ping/pong and close codes pass through the tunnel', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(simpleConfig(app.upstream.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const wsUrl = proxy.url().replace('http:', 'ws:');

  const ws = await openWs(`${wsUrl}/chat?room=1`, { protocols: ['chat.v1', 'chat.v2'] });
  t.equal(ws.protocol, 'chat.v2', 'the subprotocol the app chose reaches the client');

  ws.send('héllo');
  const text = await nextMessage(ws);
  t.equal(text.data.toString('utf8'), 'héllo', 'a text message comes back');
  t.equal(text.isBinary, false, 'as text');

  const payload = randomBytes(3 * 1024 * 1024);
  ws.send(payload);
  const binary = await nextMessage(ws);
  t.equal(binary.isBinary, true, 'a binary message comes back as binary');
  t.ok(binary.data.equals(payload), 'a 3 MiB binary message comes back byte for byte');

  ws.ping(Buffer.from('client-ping'));
  const [pong] = (await once(ws, 'pong')) as [Buffer];
  t.equal(pong.toString(), 'client-ping', 'the app answers the client\'s ping');

  const serverSide = app.wss.clients.values().next().value;
  if (serverSide === undefined) throw new Error('the app has no client');
  serverSide.ping(Buffer.from('app-ping'));
  const [appPong] = (await once(serverSide, 'pong')) as [Buffer];
  t.equal(appPong.toString(), 'app-ping', 'the client answers the app\'s ping');

  const appSawClose = once(serverSide, 'close') as Promise<[number, Buffer]>;
  ws.close(4001, 'client bye');
  const [clientCode] = (await once(ws, 'close')) as [number, Buffer];
  const [appCode, appReason] = await appSawClose;
  t.equal(appCode, 4001, 'the app gets the client\'s close code');
  t.equal(appReason.toString(), 'client bye', 'and its reason');
  t.equal(clientCode, 4001, 'the client gets the close echoed');

  const second = await openWs(`${wsUrl}/chat`);
  const appSide = [...app.wss.clients].find((c) => c !== serverSide);
  if (appSide === undefined) throw new Error('the app has no second client');
  appSide.close(4002, 'app bye');
  const [code, reason] = (await once(second, 'close')) as [number, Buffer];
  t.equal(code, 4002, 'the client gets the app\'s close code');
  t.equal(reason.toString(), 'app bye', 'and its reason');

  await waitUntil(() => proxy.accessLog.length === 2, 'two tunnel log lines', 2000);
  const line = proxy.accessLog[0];
  t.match(line, { method: 'GET', path: '/chat', status: 101, route: 'all', cluster: 'app', upgrade: 'websocket', attempts: 1 }, 'one access log line per tunnel (the query dropped, as accessLog.query defaults to)');
  t.ok(line.bytes_in > payload.length && line.bytes_out > payload.length, `bytes both ways counted (in ${line.bytes_in}, out ${line.bytes_out})`);
  t.ok(line.duration_ms > 0 && line.upstream_ms !== undefined && line.upstream_ms <= line.duration_ms, 'duration and handshake time');

  const metrics = await (await request(`${proxy.adminUrl}/metrics`)).body.text();
  t.match(metrics, /sidecar_websocket_upgrades_total\{listener="main",route="all",cluster="app",code="101"\} 2/, 'upgrades counted');
  t.match(metrics, /sidecar_websocket_tunnels_active\{listener="main",cluster="app"\} 0/, 'no tunnel left active');
});

t.test('the handshake gets the usual forwarding headers and keeps Upgrade/Connection', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(
    simpleConfig(app.upstream.url, `
rewritePrefix: /
requestHeaders: { add: { x-from: sidecar }, remove: [x-debug] }`).replace('prefix: /', 'prefix: /ws'),
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const ws = await openWs(`${proxy.url().replace('http:', 'ws:')}/ws/feed?x=1`, {
    headers: { 'x-request-id': 'ws-req-1', 'x-forwarded-for': '6.6.6.6', 'x-debug': 'secret' },
  });
  const req = app.handshakes[0];
  t.equal(req.url, '/feed?x=1', 'the path is rewritten as for any request');
  t.equal(req.headers['x-request-id'], 'ws-req-1', 'the client\'s request id is kept');
  t.equal(req.headers['x-forwarded-for'], '127.0.0.1', 'an untrusted peer\'s X-Forwarded-For is replaced');
  t.equal(req.headers['x-forwarded-proto'], 'http');
  t.equal(req.headers['x-sidecar-attempt'], '1');
  t.equal(req.headers['x-from'], 'sidecar', 'route requestHeaders.add applies');
  t.notOk('x-debug' in req.headers, 'route requestHeaders.remove applies');
  t.equal(req.headers.upgrade, 'websocket', 'Upgrade reaches the app');
  t.match(String(req.headers.connection), /upgrade/i, 'Connection: Upgrade reaches the app');
  t.ok(req.headers['sec-websocket-key'], 'the WebSocket key reaches the app');
  ws.close();
  await once(ws, 'close');
});

t.test('the 101 answer carries x-request-id and the route\'s response headers', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(simpleConfig(app.upstream.url, 'responseHeaders: { add: { x-served-by: sidecar } }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const ws = new WebSocket(`${proxy.url().replace('http:', 'ws:')}/`, { headers: { 'x-request-id': 'abc-123' } });
  const upgraded = once(ws, 'upgrade') as Promise<[IncomingMessage]>;
  const opened = once(ws, 'open');
  const [res] = await upgraded;
  await opened;
  t.equal(res.statusCode, 101);
  t.equal(res.headers['x-request-id'], 'abc-123', 'the request id comes back on the 101');
  t.equal(res.headers['x-served-by'], 'sidecar', 'responseHeaders.add applies to the 101');
  t.ok(res.headers['sec-websocket-accept'], 'the app\'s accept key is relayed');
  ws.close();
  await once(ws, 'close');
});

t.test('wss: a TLS listener terminates TLS and tunnels to the plain app', async (t) => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-wss-'));
  const pki = await makeTestPki(dir, { hosts: ['localhost', '127.0.0.1'] });
  const app = await startWsEchoApp();
  // The sidecar supplies the route table and clusters; the TLS listener is built the way a
  // TLS listener's server is: an https server wrapped in ListenerServer, with the same
  // request and upgrade handlers as a plain one.
  const proxy = await startSidecar(simpleConfig(app.upstream.url));
  const lines: AccessLogEntry[] = [];
  const services: ProxyServices = {
    metrics: new Metrics({ processMetrics: false }),
    accessLog: { write: (entry) => void lines.push(entry), flush: async () => {} },
    logger: silentLogger(),
    tracing: disabledTracing(),
  };
  const listenerConfig = proxy.sidecar.config.listeners[0];
  const identity = { name: listenerConfig.name, proto: 'https', config: listenerConfig } as const;
  const handleRequest = createRequestHandler(identity, proxy.sidecar, services);
  const websockets = new WebSocketProxy();
  const server = https.createServer({ cert: pki.serverCert, key: pki.serverKey }, handleRequest);
  const listener = new ListenerServer(listenerConfig, handleRequest, services.logger, server);
  server.on('upgrade', createUpgradeHandler(identity, proxy.sidecar, services, websockets, handleRequest));
  await listener.listen();
  t.teardown(async () => {
    listener.destroy();
    await proxy.close();
    await app.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  const ws = await openWs(`wss://localhost:${listener.port}/secure`, { ca: pki.ca });
  ws.send('over tls');
  const echoed = await nextMessage(ws);
  t.equal(echoed.data.toString(), 'over tls', 'a message makes the round trip through wss');
  t.equal(app.handshakes[0].headers['x-forwarded-proto'], 'https', 'the app learns the client used TLS');
  ws.close(1000, 'done');
  const [code] = (await once(ws, 'close')) as [number];
  t.equal(code, 1000);
  await waitUntil(() => lines.length === 1 && listener.connections === 0 && websockets.openUpstreamSockets === 0, 'the wss tunnel to close on both sides', 2000);
  t.match(lines[0], { status: 101, listener: 'main', upgrade: 'websocket' });
});
