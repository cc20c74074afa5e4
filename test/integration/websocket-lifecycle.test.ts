/**
 * Tunnel lifecycle: either side going away closes the other; answers other than 101 are
 * relayed and both sockets closed; handshake failures get the sidecar's own errors; idle
 * tunnels are closed; and no socket outlives its tunnel.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import WebSocket, { WebSocketServer } from 'ws';
import { closedPort, startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { APP_CLOSE_MESSAGE, openWs, refusedWs, startWsEchoApp } from '../helpers/websocket';
import { waitUntil } from '../helpers/wait';

/** The bound for "the other side closes". */
const OTHER_SIDE_CLOSES_WITHIN_MS = 1000;

function wsUrl(proxy: RunningSidecar, path = '/'): string {
  return proxy.url().replace('http:', 'ws:') + path;
}

/** Everything the sidecar could hold for a tunnel: client connections, upstream sockets, tunnels. */
function sidecarSockets(proxy: RunningSidecar): { clientConnections: number; upstreamSockets: number; tunnels: number } {
  return {
    clientConnections: proxy.sidecar.listeners.reduce((n, l) => n + l.connections, 0),
    upstreamSockets: proxy.sidecar.websockets.openUpstreamSockets,
    tunnels: proxy.sidecar.websockets.openTunnels,
  };
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = once(ws, 'message') as Promise<[Buffer]>;
  ws.send(text);
  const [data] = await reply;
  return data.toString();
}

t.test('killing the app closes the client within 1 s', async (t) => {
  // The app runs in its own process so it can really be killed (SIGKILL: no close frame).
  const child = spawn(process.execPath, ['-e', `
    const { WebSocketServer } = require('ws');
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' }, () => console.log(wss.address().port));
    wss.on('connection', (ws) => ws.on('message', (d, b) => ws.send(d, { binary: b })));
  `], { cwd: __dirname, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const [portLine] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  const proxy = await startSidecar(simpleConfig(`http://127.0.0.1:${Number(portLine)}`));
  t.teardown(() => proxy.close());

  const ws = await openWs(wsUrl(proxy));
  t.equal(await echo(ws, 'before'), 'before', 'the tunnel works');
  const closed = once(ws, 'close') as Promise<[number]>;
  const killedAt = performance.now();
  child.kill('SIGKILL');
  const [code] = await closed;
  const latency = performance.now() - killedAt;
  t.ok(latency < OTHER_SIDE_CLOSES_WITHIN_MS, `the client saw the close ${latency.toFixed(1)} ms after the app was killed`);
  t.equal(code, 1006, 'abnormal closure: the app sent no close frame');
  await waitUntil(() => sidecarSockets(proxy).upstreamSockets === 0 && sidecarSockets(proxy).clientConnections === 0, 'both sockets closed', 2000);
  await waitUntil(() => proxy.accessLog.length === 1, 'the tunnel log line', 2000);
  t.equal(proxy.accessLog[0].flags, 'UC', 'logged as closed by the app');
});

t.test('killing the client closes the app\'s side within 1 s', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(simpleConfig(app.upstream.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  for (const how of ['terminate', 'reset'] as const) {
    const ws = await openWs(wsUrl(proxy));
    t.equal(await echo(ws, how), how);
    const appSide = [...app.wss.clients].at(-1);
    if (appSide === undefined) throw new Error('the app has no client');
    const appClosed = once(appSide, 'close') as Promise<[number]>;
    const leftAt = performance.now();
    // terminate: the socket is destroyed (FIN); reset: the connection is reset (RST), as when
    // the client's host disappears mid-stream.
    const socket = (ws as unknown as { _socket: Socket })._socket;
    if (how === 'terminate') ws.terminate();
    else socket.resetAndDestroy();
    const [code] = await appClosed;
    const latency = performance.now() - leftAt;
    t.ok(latency < OTHER_SIDE_CLOSES_WITHIN_MS, `${how}: the app saw the close ${latency.toFixed(1)} ms after the client left`);
    t.equal(code, 1006, `${how}: abnormal closure at the app`);
  }
  await waitUntil(() => proxy.accessLog.length === 2, 'two tunnel log lines', 2000);
  t.same(proxy.accessLog.map((l) => l.flags), ['DC', 'DC'], 'logged as closed by the client');
});

t.test('200 connect/disconnect cycles leave no socket behind', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(simpleConfig(app.upstream.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const before = sidecarSockets(proxy);
  t.same(before, { clientConnections: 0, upstreamSockets: 0, tunnels: 0 }, 'nothing open before');

  const CYCLES = 200;
  const CONCURRENCY = 10;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < CYCLES) {
      const i = next++;
      const ws = await openWs(wsUrl(proxy, `/cycle/${i}`));
      if ((await echo(ws, `m${i}`)) !== `m${i}`) throw new Error(`cycle ${i}: wrong echo`);
      const closed = once(ws, 'close');
      // Three ways to leave: a clean close handshake, a destroyed socket, a close frame from the app.
      if (i % 3 === 0) ws.close(1000);
      else if (i % 3 === 1) ws.terminate();
      else ws.send(APP_CLOSE_MESSAGE);
      await closed;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));

  await waitUntil(async () => {
    const now = sidecarSockets(proxy);
    return now.clientConnections === 0 && now.upstreamSockets === 0 && now.tunnels === 0 && (await app.openSockets()) === 0;
  }, 'every socket to close', 5000);
  t.same(sidecarSockets(proxy), before, 'the sidecar holds no client connection, upstream socket or tunnel');
  t.equal(await app.openSockets(), 0, 'the app holds no socket from the sidecar');
  t.equal(app.wss.clients.size, 0, 'the app has no WebSocket client left');
  await waitUntil(() => proxy.accessLog.length === CYCLES, 'one log line per tunnel', 2000);
  t.equal(proxy.accessLog.filter((l) => l.status === 101).length, CYCLES, 'every cycle was a tunnel');
});

t.test('an answer other than 101 is relayed, then both sockets are closed', async (t) => {
  // A ws app that refuses: ws writes 401 with a body and closes its socket itself.
  const refusing = await startUpstream((_req, res) => res.end());
  const wss = new WebSocketServer({ server: refusing.server, verifyClient: (_info, cb) => cb(false, 401, 'who are you', { 'x-app-reason': 'no token' }) });
  // An app that answers 403 on a kept-alive connection with a chunked body and never closes:
  // only the sidecar can end this exchange.
  let appSocket: Socket | undefined;
  const stubborn = await startUpstream((_req, res) => res.end());
  stubborn.server.on('upgrade', (_req: http.IncomingMessage, socket: Socket) => {
    appSocket = socket;
    socket.write('HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nx-app: yes\r\n\r\n5\r\nnope!\r\n0\r\n\r\n');
  });
  const config = `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: refusing, match: { prefix: /refusing }, cluster: refusing }
      - { name: stubborn, match: { prefix: /stubborn }, cluster: stubborn }
clusters:
  - { name: refusing, endpoints: [{ url: ${refusing.url} }] }
  - { name: stubborn, endpoints: [{ url: ${stubborn.url} }] }
`;
  const proxy = await startSidecar(config);
  t.teardown(async () => {
    await proxy.close();
    wss.close();
    await refusing.close();
    await stubborn.close();
  });

  const refused = await refusedWs(wsUrl(proxy, '/refusing'), { headers: { 'x-request-id': 'refused-1' } });
  t.equal(refused.status, 401, 'the app\'s status is relayed');
  t.equal(refused.headers['x-app-reason'], 'no token', 'with the app\'s headers');
  t.equal(refused.headers['x-request-id'], 'refused-1', 'and the request id');
  t.equal(refused.body, 'who are you', 'and the app\'s body');

  const stubbornAnswer = await refusedWs(wsUrl(proxy, '/stubborn'));
  t.equal(stubbornAnswer.status, 403);
  t.equal(stubbornAnswer.headers['x-app'], 'yes');
  t.equal(stubbornAnswer.body, 'nope!', 'a chunked body arrives decoded and complete');
  t.notOk(stubbornAnswer.headers['transfer-encoding'], 'no stale Transfer-Encoding on the relayed head');
  if (appSocket === undefined) throw new Error('the stubborn app saw no upgrade');
  const socket = appSocket;
  // The app's server keeps upgraded sockets half-open: what the sidecar can do is end its
  // side (the app reads end-of-stream) and drop its socket.
  if (!socket.readableEnded) await once(socket, 'end');
  t.pass('the sidecar closed its connection to the app');
  await waitUntil(() => sidecarSockets(proxy).clientConnections === 0 && sidecarSockets(proxy).upstreamSockets === 0, 'both sides closed', 2000);
  await waitUntil(() => proxy.accessLog.length === 2, 'two log lines', 2000);
  t.same(proxy.accessLog.map((l) => l.status).sort(), [401, 403], 'logged with the relayed status');
  const relayed = new Map(proxy.accessLog.map((l) => [l.status, l]));
  t.equal(relayed.get(401)?.bytes_out, Buffer.byteLength('who are you'), 'the relayed refusal body counts as bytes_out');
  t.equal(relayed.get(403)?.bytes_out, 5, 'a chunked refusal counts its decoded body');
});

t.test('handshake failures get the sidecar\'s own errors', async (t) => {
  const silent = await startUpstream((_req, res) => res.end());
  const handshakeSockets: Socket[] = [];
  silent.server.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
    handshakeSockets.push(socket);
    if (req.url === '/huge') {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nx-big: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
    }
    // Anything else: never answers.
  });
  const refusedPort = await closedPort();
  const config = `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: down, match: { prefix: /down }, cluster: down }
      - { name: silent, match: { prefix: / }, cluster: silent, timeout: 300ms }
      - { name: ping, match: { path: /nothing-here }, directResponse: { status: 200, body: pong } }
clusters:
  - { name: down, endpoints: [{ url: http://127.0.0.1:${refusedPort} }] }
  - { name: silent, endpoints: [{ url: ${silent.url} }] }
`;
  const proxy = await startSidecar(config.replace('prefix: / }', 'regex: "^/(slow|huge|leave)" }'));
  t.teardown(async () => {
    await proxy.close();
    await silent.close();
  });

  const noRoute = await refusedWs(wsUrl(proxy, '/elsewhere'));
  t.equal(noRoute.status, 404);
  t.equal(noRoute.headers['x-sidecar-error'], 'NO_ROUTE');
  t.match(JSON.parse(noRoute.body), { error: 'NO_ROUTE' });

  const down = await refusedWs(wsUrl(proxy, '/down'));
  t.equal(down.status, 503);
  t.equal(down.headers['x-sidecar-error'], 'UPSTREAM_CONNECT_FAILURE', 'an app that is down: 503');

  const slow = await refusedWs(wsUrl(proxy, '/slow'));
  t.equal(slow.status, 504);
  t.equal(slow.headers['x-sidecar-error'], 'UPSTREAM_TIMEOUT', 'no answer within the route timeout: 504');

  const huge = await refusedWs(wsUrl(proxy, '/huge'));
  t.equal(huge.status, 502);
  t.equal(huge.headers['x-sidecar-error'], 'UPSTREAM_PROTOCOL_ERROR', 'a 101 with a header block over the cluster limit: 502');

  const direct = await refusedWs(wsUrl(proxy, '/nothing-here'));
  t.equal(direct.status, 200, 'a directResponse route answers the upgrade request without switching');
  t.equal(direct.body, 'pong');

  // A client that leaves during the handshake: the pending upstream request is aborted.
  const leaving = new WebSocket(wsUrl(proxy, '/leave'));
  leaving.on('error', () => {});
  await waitUntil(() => handshakeSockets.length === 3, 'the handshake to reach the app', 2000);
  const pending = handshakeSockets[2];
  const leftAt = performance.now();
  leaving.terminate();
  if (!pending.readableEnded && !pending.destroyed) await Promise.race([once(pending, 'end'), once(pending, 'close')]);
  t.ok(performance.now() - leftAt < OTHER_SIDE_CLOSES_WITHIN_MS, 'the app\'s handshake socket closes when the client leaves');

  await waitUntil(() => sidecarSockets(proxy).clientConnections === 0 && sidecarSockets(proxy).upstreamSockets === 0 && sidecarSockets(proxy).tunnels === 0, 'no socket left', 2000);
  await waitUntil(() => proxy.accessLog.length === 6, 'six log lines', 2000);
  const byPath = new Map(proxy.accessLog.map((l) => [l.path, l]));
  // bytes_out counts the refusal's body as the client received it, as for any local answer.
  t.match(byPath.get('/elsewhere'), { status: 404, error: 'NO_ROUTE', flags: 'NR', bytes_out: Buffer.byteLength(noRoute.body) });
  t.match(byPath.get('/down'), { status: 503, error: 'UPSTREAM_CONNECT_FAILURE', bytes_out: Buffer.byteLength(down.body) });
  t.match(byPath.get('/slow'), { status: 504, error: 'UPSTREAM_TIMEOUT', bytes_out: Buffer.byteLength(slow.body) });
  t.match(byPath.get('/huge'), { status: 502, error: 'UPSTREAM_PROTOCOL_ERROR', bytes_out: Buffer.byteLength(huge.body) });
  t.match(byPath.get('/nothing-here'), { status: 200, bytes_out: 4 });
  t.ok(Buffer.byteLength(noRoute.body) > 0 && Buffer.byteLength(down.body) > 0, 'the refusals have bodies');
  t.match(byPath.get('/leave'), { status: 499, flags: 'DC' });
});

t.test('an idle tunnel is closed after the route\'s websocket idleTimeout', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(simpleConfig(app.upstream.url, 'websocket: { idleTimeout: 300ms }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const ws = await openWs(wsUrl(proxy));
  const openedAt = performance.now();
  // Traffic keeps it open past the idle timeout...
  const closed = once(ws, 'close') as Promise<[number]>;
  for (let i = 0; i < 6; i++) {
    // Spaced traffic is the scenario: six messages 100 ms apart outlast the idle timeout.
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    t.equal(await echo(ws, `keep ${i}`), `keep ${i}`);
  }
  t.ok(performance.now() - openedAt > 500, 'traffic kept the tunnel open longer than the idle timeout');
  // ...silence closes it.
  const silentFrom = performance.now();
  const [code] = await closed;
  const idle = performance.now() - silentFrom;
  t.ok(idle >= 250 && idle < 3000, `closed after ${idle.toFixed(0)} ms of silence`);
  t.equal(code, 1006);
  await waitUntil(() => proxy.accessLog.length === 1 && sidecarSockets(proxy).upstreamSockets === 0, 'the tunnel to end', 2000);
  t.equal(proxy.accessLog[0].flags, 'SI', 'logged as an idle timeout');
});

t.test('other upgrades (h2c) are served as ordinary requests', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(simpleConfig(app.upstream.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const req = http.get(`${proxy.url()}/`, {
    headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' },
  });
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  let body = '';
  for await (const chunk of res) body += String(chunk);
  t.equal(res.statusCode, 200, 'the app answered');
  t.equal(body, 'plain');
  t.ok(res.headers['x-request-id'], 'through the usual proxy path');
  t.equal(app.upstream.server.listenerCount('upgrade') > 0 && app.handshakes.length, 0, 'no tunnel was opened');

  const withBody = net.connect(proxy.sidecar.listenerPort('main'), '127.0.0.1');
  withBody.write('POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nhi');
  let raw = '';
  withBody.setEncoding('utf8');
  for await (const chunk of withBody) raw += chunk as string;
  t.match(raw, /^HTTP\/1\.1 400 /, 'an upgrade request with a body that cannot be switched is refused');
  t.match(raw, /x-sidecar-error: BAD_REQUEST/);
});

t.test('stopping the sidecar cuts open tunnels instead of waiting for them', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecar(simpleConfig(app.upstream.url));
  t.teardown(() => app.close());
  const ws = await openWs(wsUrl(proxy));
  t.equal(await echo(ws, 'still here'), 'still here');
  const closed = once(ws, 'close');
  const stoppedAt = performance.now();
  // A graceful stop without the drain delay (which only waits for load balancers).
  await proxy.sidecar.drain({ delayMs: 0 });
  await closed;
  t.ok(performance.now() - stoppedAt < 5000, 'a graceful stop is not held open by a tunnel');
  await waitUntil(() => proxy.accessLog.length === 1, 'the tunnel log line', 2000);
  t.match(proxy.accessLog[0], { status: 101, error: 'DRAINING' }, 'logged as cut by the shutdown');
  t.equal(proxy.sidecar.websockets.openUpstreamSockets, 0, 'no upstream socket left');
});
