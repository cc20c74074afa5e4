/**
 * What a reload does to sockets: listeners added, removed, moved and renamed are bound or
 * drained without refusing a connection either config accepts; a bind failure refuses the
 * whole reload and leaves everything as it was; settings fixed at bind time are refused.
 */
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { formatConfigErrors, parseConfigText } from '../../src/config/load';
import type { SidecarConfig } from '../../src/config/types';
import { FIXTURE_DIR, startSidecar } from '../helpers/sidecar';
import { connectionRefused } from '../helpers/net-probe';
import { waitUntil } from '../helpers/wait';
import { closedPort, startUpstream } from '../helpers/upstream';

function compile(yaml: string): SidecarConfig {
  const source = path.join(FIXTURE_DIR, 'inline.yaml');
  const loaded = parseConfigText(yaml, source);
  if (!loaded.ok) throw new Error(formatConfigErrors(source, loaded.errors));
  return loaded.config;
}

function listenerYaml(name: string, address: string, body: string, extra = ''): string {
  return `
  - name: ${name}
    address: ${address}
${extra}
    routes:
      - { name: r, match: { prefix: / }, directResponse: { status: 200, body: "${body}" } }`;
}

function configYaml(listeners: string[], rest = ''): string {
  return `admin: { address: 127.0.0.1:0 }\ndrain: { timeout: 10s }\nlisteners:${listeners.join('')}\n${rest}`;
}

async function get(url: string, dispatcher?: Agent): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const res = await request(url, { dispatcher });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

t.test('a listener added by a reload is bound; removed, it drains: kept-alive requests get 503 DRAINING, new connections are refused', async (t) => {
  const running = await startSidecar(configYaml([listenerYaml('main', '127.0.0.1:0', 'main')]));
  t.teardown(() => running.close());
  const agent = new Agent({ keepAliveTimeout: 30_000 });
  t.teardown(() => agent.close());

  const added = await running.sidecar.applyConfig(compile(configYaml([listenerYaml('main', '127.0.0.1:0', 'main'), listenerYaml('extra', '127.0.0.1:0', 'extra')])));
  t.match(added, { ok: true, changes: [/^listener extra: bound at 127\.0\.0\.1:\d+$/] });
  const extraPort = running.sidecar.listenerPort('extra');
  t.equal((await get(`http://127.0.0.1:${extraPort}/`, agent)).body, 'extra', 'the new listener serves');
  const mainPort = running.sidecar.listenerPort('main');

  // A request in flight on the kept-alive connection is what keeps the removed listener open.
  const removed = await running.sidecar.applyConfig(compile(configYaml([listenerYaml('main', '127.0.0.1:0', 'main')])));
  t.match(removed, { ok: true, changes: ['listener extra: removed (closing once its connections are done)'] });
  t.equal(running.sidecar.listenerPort('main'), mainPort, 'the kept listener keeps its socket');
  await waitUntil(() => connectionRefused(extraPort), 'new connections to the removed listener to be refused');
  t.equal((await get(`http://127.0.0.1:${mainPort}/`, agent)).body, 'main');
});

t.test('a removed listener finishes the response it is streaming; a request sent after the removal gets 503 DRAINING with Connection: close', async (t) => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  // Headers and a first chunk go out at once, the rest later: the response is under way when the reload lands.
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('slow ');
    void gate.then(() => res.end('done'));
  });
  t.teardown(() => upstream.close());
  const clusters = `clusters:\n  - name: app\n    endpoints: [{ url: ${upstream.url} }]\n`;
  const running = await startSidecar(
    configYaml(
      [listenerYaml('main', '127.0.0.1:0', 'main'), `
  - name: extra
    address: 127.0.0.1:0
    routes:
      - { name: slow, match: { prefix: / }, cluster: app }`],
      clusters,
    ),
  );
  t.teardown(() => running.close());
  const extraPort = running.sidecar.listenerPort('extra');

  const socket = net.connect(extraPort, '127.0.0.1');
  t.teardown(() => socket.destroy());
  let received = '';
  socket.setEncoding('utf8');
  const headersArrived = new Promise<void>((resolve) =>
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.includes('slow ')) resolve();
    }),
  );
  socket.write('GET /slow HTTP/1.1\r\nhost: x\r\n\r\n');
  await headersArrived;

  const removed = await running.sidecar.applyConfig(compile(configYaml([listenerYaml('main', '127.0.0.1:0', 'main')], clusters)));
  t.equal(removed.ok, true);
  await waitUntil(() => connectionRefused(extraPort), 'new connections to be refused at once');
  socket.write('GET /again HTTP/1.1\r\nhost: x\r\n\r\n');
  // The second request has reached the sidecar once it is in the access log.
  await waitUntil(() => running.accessLog.some((e) => e.error === 'DRAINING'), 'a DRAINING access log line');
  release();
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const [first, second] = received.split(/(?=HTTP\/1\.1 )/);
  t.match(first, /^HTTP\/1\.1 200 OK\r\n[^]*slow \r\n[^]*done\r\n0\r\n\r\n$/, 'the response under way completes, terminating chunk included');
  t.match(second ?? '', /^HTTP\/1\.1 503 /, 'the request sent after the removal gets 503');
  t.match((second ?? '').toLowerCase(), /connection: close\r\n/);
  t.match(second ?? '', /x-sidecar-error: DRAINING/);
  t.match(second ?? '', /"error":"DRAINING"/);
});

t.test('a removed listener closes a connection whose request is in flight only after the response, with Connection: close', async (t) => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const upstream = await startUpstream((_req, res) => void gate.then(() => res.end('slow done')));
  t.teardown(() => upstream.close());
  const clusters = `clusters:\n  - name: app\n    endpoints: [{ url: ${upstream.url} }]\n`;
  const running = await startSidecar(
    configYaml([listenerYaml('main', '127.0.0.1:0', 'main'), `
  - name: extra
    address: 127.0.0.1:0
    routes:
      - { name: slow, match: { prefix: / }, cluster: app }`], clusters),
  );
  t.teardown(() => running.close());
  const agent = new Agent({ keepAliveTimeout: 30_000 });
  t.teardown(() => agent.close());
  const inFlight = get(`http://127.0.0.1:${running.sidecar.listenerPort('extra')}/`, agent);
  await new Promise<void>((resolve) => upstream.server.once('request', () => resolve()));
  t.equal((await running.sidecar.applyConfig(compile(configYaml([listenerYaml('main', '127.0.0.1:0', 'main')], clusters)))).ok, true);
  release();
  const res = await inFlight;
  t.equal(res.status, 200);
  t.equal(res.body, 'slow done');
  t.equal(res.headers.connection, 'close');
});

t.test('a listener moved to another address is bound there before the old address closes', async (t) => {
  const [from, to] = [await closedPort(), await closedPort()];
  const running = await startSidecar(configYaml([listenerYaml('main', `127.0.0.1:${from}`, 'before')]));
  t.teardown(() => running.close());
  const moved = await running.sidecar.applyConfig(compile(configYaml([listenerYaml('main', `127.0.0.1:${to}`, 'after')])));
  t.match(moved, { ok: true, changes: [`listener main: moved from 127.0.0.1:${from} to 127.0.0.1:${to}`] });
  t.equal((await get(`http://127.0.0.1:${to}/`)).body, 'after');
  await waitUntil(() => connectionRefused(from), 'the old address to be released');
});

t.test('a bind failure refuses the whole reload: nothing half-applied, the other new socket closed, the error names the listener', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const taken = (blocker.address() as net.AddressInfo).port;
  const free = await closedPort();

  const running = await startSidecar(configYaml([listenerYaml('main', '127.0.0.1:0', 'v1')]));
  t.teardown(() => running.close());
  const result = await running.sidecar.applyConfig(
    compile(configYaml([listenerYaml('main', '127.0.0.1:0', 'v2'), listenerYaml('ok', `127.0.0.1:${free}`, 'ok'), listenerYaml('clash', `127.0.0.1:${taken}`, 'x')])),
  );
  t.equal(result.ok, false);
  if (!result.ok) {
    t.match(result.errors, [{ path: 'listeners[2]', message: /listener clash cannot bind 127\.0\.0\.1:\d+: .*EADDRINUSE.*nothing was changed/ }]);
  }
  t.equal((await get(running.url())).body, 'v1', 'the old routes still answer');
  t.same(running.sidecar.listeners.map((l) => l.config.name), ['main']);
  await waitUntil(() => connectionRefused(free), 'the listener bound before the failure to close again');
  t.equal(running.sidecar.isReady(), true);
});

t.test('settings a bound socket cannot take are refused; those it can are applied in place', async (t) => {
  const running = await startSidecar(configYaml([listenerYaml('main', '127.0.0.1:0', 'v1')]));
  t.teardown(() => running.close());
  const port = running.sidecar.listenerPort('main');

  const fixed = await running.sidecar.applyConfig(compile(configYaml([listenerYaml('main', '127.0.0.1:0', 'v2', '    maxHeaderBytes: 32KiB')])));
  t.equal(fixed.ok, false);
  if (!fixed.ok) t.match(fixed.error, /listeners\[0\]: listener main: maxHeaderBytes cannot change while it stays bound/);
  t.equal((await get(running.url())).body, 'v1');

  const inPlace = await running.sidecar.applyConfig(
    compile(configYaml([listenerYaml('main', '127.0.0.1:0', 'v3', '    keepAliveTimeout: 7s\n    maxConnections: 77\n    trustedProxies: [10.0.0.0/8]')])),
  );
  // maxConnectionsPerPeer follows maxConnections when not set (a tenth, at least 100, at most maxConnections).
  t.match(inPlace, { ok: true, changes: ['listener main: trustedProxies, keepAliveTimeoutMs, maxConnections, maxConnectionsPerPeer updated in place'] });
  const listener = running.sidecar.listeners[0];
  t.equal(listener.port, port, 'same socket');
  t.equal((listener.server as import('node:http').Server).keepAliveTimeout, 7000);
  t.equal(listener.server.maxConnections, 77);
  t.equal(listener.config.maxConnectionsPerPeer, 77);
  t.equal((await get(running.url())).body, 'v3');
});

t.test('unchanged clusters keep their runtime; a changed one is rebuilt and closes after the request it is serving', async (t) => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const upstream = await startUpstream((req, res) => {
    if (req.url === '/slow') void gate.then(() => res.end('slow done'));
    else res.end('fast');
  });
  t.teardown(() => upstream.close());
  const yaml = (connectTimeout: string): string =>
    configYaml(
      [`
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: a, match: { prefix: /a/ }, cluster: a, rewritePrefix: / }
      - { name: b, match: { prefix: /b/ }, cluster: b, rewritePrefix: / }`],
      `clusters:\n  - { name: a, endpoints: [{ url: ${upstream.url} }] }\n  - { name: b, connectTimeout: ${connectTimeout}, endpoints: [{ url: ${upstream.url} }] }\n`,
    );
  const running = await startSidecar(yaml('1s'));
  t.teardown(() => running.close());
  const [a, b] = [running.sidecar.current.clusters.get('a'), running.sidecar.current.clusters.get('b')];

  const inFlight = get(`${running.url()}/b/slow`);
  await new Promise<void>((resolve) => upstream.server.once('request', () => resolve()));
  const result = await running.sidecar.applyConfig(compile(yaml('2s')));
  t.match(result, { ok: true, changes: ['cluster b: rebuilt'] });
  t.equal(running.sidecar.current.clusters.get('a'), a, 'cluster a (unchanged) is the same runtime');
  t.not(running.sidecar.current.clusters.get('b'), b, 'cluster b (changed) is new');
  t.equal(b?.endpoints[0].pool.closed, false, 'the replaced cluster stays open for its request in flight');
  t.equal((await get(`${running.url()}/b/x`)).body, 'fast', 'new requests use the new cluster');
  release();
  t.match(await inFlight, { status: 200, body: 'slow done' }, 'the request in flight finishes on the config it began with');
  t.equal(b?.endpoints[0].pool.closed, true, 'then the replaced cluster is closed');
});

t.test('the admin listener moves with admin.address; the old one closes', async (t) => {
  const running = await startSidecar(configYaml([listenerYaml('main', '127.0.0.1:0', 'v1')]));
  t.teardown(() => running.close());
  const oldPort = running.sidecar.admin.port;
  const newPort = await closedPort();
  const result = await running.sidecar.applyConfig(compile(configYaml([listenerYaml('main', '127.0.0.1:0', 'v1')]).replace('127.0.0.1:0 }', `127.0.0.1:${newPort} }`)));
  t.match(result, { ok: true, changes: [`admin: moved to 127.0.0.1:${newPort}`] });
  t.equal((await get(`http://127.0.0.1:${newPort}/ready`)).status, 200);
  await waitUntil(() => connectionRefused(oldPort), 'the old port to close');
});
