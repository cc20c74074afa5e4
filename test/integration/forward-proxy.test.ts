/**
 * HTTP_PROXY mode (listeners[].forwardProxy): curl through the sidecar with -x / HTTPS_PROXY /
 * http_proxy. CONNECT to an allowed local TLS server is tunnelled (not decrypted), to any
 * other destination refused 403 EGRESS_DENIED with the destination in the log; absolute-form
 * requests are routed by host; tunnel bytes and duration are metered and logged.
 */

import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import { makeTestPki, type TestPki } from '../helpers/certs';
import { parsePrometheusText } from '../helpers/prometheus';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { captureLogger, runCurl, type CapturedLog } from '../helpers/tls-clients';
import { closedPort, startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream';
import { rawExchange } from '../helpers/raw';
import { waitUntil } from '../helpers/wait';
import { startEcho, type EchoServer } from '../helpers/echo-server';

interface Destination {
  readonly port: number;
  /** TCP connections accepted. */
  connections: number;
  close(): Promise<void>;
}

async function startTlsDestination(pki: TestPki, body: string): Promise<Destination> {
  const server = https.createServer({ cert: pki.serverCert, key: pki.serverKey }, (_req, res) => res.end(body));
  const destination = { port: 0, connections: 0, close: () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }) };
  server.on('connection', () => destination.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(destination, { port: (server.address() as AddressInfo).port });
}

function curlWithEnv(args: readonly string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(https?|all|no)_proxy$/i.test(k)));
  return new Promise((resolve, reject) => {
    execFile('curl', ['--silent', '--show-error', ...args], { env: { ...clean, ...env }, timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
    });
  });
}

interface Setup {
  readonly pki: TestPki;
  readonly allowed: Destination;
  readonly denied: Destination;
  readonly app: RecordingUpstream;
  readonly echo: EchoServer;
  readonly deadPort: number;
  readonly sidecar: RunningSidecar;
  readonly log: CapturedLog;
  readonly proxy: string;
}

async function setup(t: Test): Promise<Setup> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-forward-proxy-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  const pki = await makeTestPki(dir);
  const allowed = await startTlsDestination(pki, 'allowed over tls');
  t.teardown(() => allowed.close());
  const denied = await startTlsDestination(pki, 'never');
  t.teardown(() => denied.close());
  const app = await startRecordingUpstream();
  t.teardown(() => app.close());
  const echo = await startEcho();
  t.teardown(() => echo.close());
  const deadPort = await closedPort();
  const log = captureLogger();
  const sidecar = await startSidecar(
    `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: egress
    address: 127.0.0.1:0
    forwardProxy:
      allow: ["localhost:${allowed.port}", "127.0.0.1:${echo.port}", "127.0.0.1:${deadPort}"]
      connectTimeout: 2s
    routes:
      - { name: app, match: { prefix: /, host: app.test }, cluster: app }
  - name: plain
    address: 127.0.0.1:0
    routes:
      - { name: app, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
`,
    { logger: log.logger },
  );
  t.teardown(() => sidecar.close());
  return { pki, allowed, denied, app, echo, deadPort, sidecar, log, proxy: `http://127.0.0.1:${sidecar.port('egress')}` };
}

async function metrics(sidecar: RunningSidecar): Promise<ReturnType<typeof parsePrometheusText>> {
  const response = await request(`${sidecar.adminUrl}/metrics`);
  return parsePrometheusText(await response.body.text());
}

t.test('curl -x: CONNECT to an allowed TLS server is tunnelled, metered and logged', async (t) => {
  const s = await setup(t);
  const curl = await runCurl(['-x', s.proxy, '--cacert', s.pki.caCertPath, `https://localhost:${s.allowed.port}/`]);
  t.equal(curl.code, 0, `curl succeeds: ${curl.stderr}`);
  t.equal(curl.stdout, 'allowed over tls', 'the TLS server answered through the tunnel (the sidecar does not decrypt it)');

  await waitUntil(() => s.sidecar.accessLog.some((l) => l.method === 'CONNECT'), 'the tunnel line in the access log (written when it closes)');
  const line = s.sidecar.accessLog.find((l) => l.method === 'CONNECT');
  t.match(line, { path: `localhost:${s.allowed.port}`, listener: 'egress', status: 200, upgrade: 'connect', upstream: `localhost:${s.allowed.port}` });
  t.ok((line?.bytes_in ?? 0) > 100, 'bytes_in: the ClientHello and the request, encrypted');
  t.ok((line?.bytes_out ?? 0) > 500, 'bytes_out: the server\'s certificate chain and answer');

  const m = await metrics(s.sidecar);
  const destination = `localhost:${s.allowed.port}`;
  t.equal(m.value('sidecar_egress_tunnels_total', { listener: 'egress', destination, result: 'opened' }), 1);
  t.equal(m.value('sidecar_egress_tunnel_bytes_total', { listener: 'egress', destination, direction: 'upstream' }), line?.bytes_in);
  t.equal(m.value('sidecar_egress_tunnel_bytes_total', { listener: 'egress', destination, direction: 'downstream' }), line?.bytes_out);
  t.equal(m.value('sidecar_egress_tunnel_duration_seconds_count', { listener: 'egress', destination }), 1);
});

t.test('HTTPS_PROXY: CONNECT to a destination not allowed gets 403 EGRESS_DENIED, the destination logged', async (t) => {
  const s = await setup(t);
  const curl = await curlWithEnv(['--cacert', s.pki.caCertPath, `https://localhost:${s.denied.port}/`], { HTTPS_PROXY: s.proxy });
  t.not(curl.code, 0, 'curl fails');
  t.match(curl.stderr, /403/, 'curl reports the 403 of the CONNECT');
  t.equal(s.denied.connections, 0, 'the sidecar never connected to the denied destination');
  const warning = await s.log.waitFor((l) => l.msg === 'CONNECT refused: the destination is not in forwardProxy.allow');
  t.match(warning, { listener: 'egress', destination: `localhost:${s.denied.port}` });
  const line = s.sidecar.accessLog.find((l) => l.method === 'CONNECT');
  t.match(line, { status: 403, error: 'EGRESS_DENIED', flags: 'DPE', path: `localhost:${s.denied.port}` });
  t.equal((await metrics(s.sidecar)).value('sidecar_egress_tunnels_total', { listener: 'egress', destination: '', result: 'denied' }), 1);

  // The same port under another name is another destination.
  const other = await rawExchange(s.sidecar.port('egress'), `CONNECT 127.0.0.1:${s.allowed.port} HTTP/1.1\r\nHost: 127.0.0.1:${s.allowed.port}\r\n\r\n`);
  t.same(other.statuses, [403], 'allow entries name hosts, not what they resolve to');
});

t.test('http_proxy: an absolute-form GET is routed by host, proxied and logged', async (t) => {
  const s = await setup(t);
  const curl = await curlWithEnv([`http://app.test:8080/hello`], { http_proxy: s.proxy });
  t.equal(curl.code, 0, curl.stderr);
  t.equal(curl.stdout, 'app:/hello', 'the app got the origin-form path');
  t.equal(s.app.received[0]?.headers.host, 'app.test:8080', 'the app sees the Host the client named');
  t.match(s.sidecar.accessLog.at(-1), { method: 'GET', route: 'app', cluster: 'app', status: 200, listener: 'egress' });

  const unrouted = await curlWithEnv(['--write-out', '%{http_code}', '--output', '/dev/null', 'http://elsewhere.test/'], { http_proxy: s.proxy });
  t.equal(unrouted.stdout, '404', 'a host no route matches is not proxied anywhere (NO_ROUTE)');
});

t.test('the tunnel relays both ways (bytes sent with the CONNECT included) and closes the destination when the client leaves', async (t) => {
  const s = await setup(t);
  const socket = net.connect(s.sidecar.port('egress'), '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.write(`CONNECT 127.0.0.1:${s.echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${s.echo.port}\r\n\r\nearly,`);
  await waitUntil(() => received.endsWith('early,'), 'the bytes sent along with the CONNECT to come back');
  t.match(received, /^HTTP\/1\.1 200 Connection Established\r\n\r\nearly,$/);
  socket.write('late');
  await waitUntil(() => received.endsWith('early,late'), 'the echo through the open tunnel');
  socket.destroy();
  await waitUntil(() => s.echo.closed === 1, 'the destination connection to close after the client left');
  await waitUntil(() => s.sidecar.accessLog.some((l) => l.method === 'CONNECT'), 'the tunnel line');
  t.match(s.sidecar.accessLog.find((l) => l.method === 'CONNECT'), { status: 200, bytes_in: 10, bytes_out: 10 });
});

t.test('refused CONNECTs: malformed target 400, unreachable destination 503, listener without forwardProxy 405', async (t) => {
  const s = await setup(t);
  const port = s.sidecar.port('egress');
  const malformed = await rawExchange(port, 'CONNECT nohostport HTTP/1.1\r\nHost: x\r\n\r\n');
  t.same(malformed.statuses, [400]);
  t.match(malformed.text, /x-sidecar-error: BAD_REQUEST/i);
  const badPort = await rawExchange(port, 'CONNECT localhost:99999 HTTP/1.1\r\nHost: x\r\n\r\n');
  t.same(badPort.statuses, [400]);

  const dead = await rawExchange(port, `CONNECT 127.0.0.1:${s.deadPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
  t.same(dead.statuses, [503]);
  t.match(dead.text, /x-sidecar-error: UPSTREAM_CONNECT_FAILURE/i);
  t.match(dead.text, /ECONNREFUSED/, 'the reason is in the body');
  t.match(s.log.lines.find((l) => l.msg === 'CONNECT: the destination could not be reached'), { destination: `127.0.0.1:${s.deadPort}`, reason: 'ECONNREFUSED' });

  const plain = await rawExchange(s.sidecar.port('plain'), `CONNECT 127.0.0.1:${s.echo.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
  t.same(plain.statuses, [405]);
  t.equal(s.echo.closed, 0, 'no connection was made for the refused CONNECTs');
});

t.test('a silent tunnel is closed after idleTimeout, both sides, and logged', async (t) => {
  const echo = await startEcho();
  t.teardown(() => echo.close());
  const sidecar = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: egress
    address: 127.0.0.1:0
    forwardProxy: { allow: ["127.0.0.1:${echo.port}"], idleTimeout: 300ms }
    routes: [{ name: r, match: { prefix: / }, directResponse: { status: 200 } }]
clusters: []
`);
  t.teardown(() => sidecar.close());
  const socket = net.connect(sidecar.port(), '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (received += chunk));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\nping`);
  await waitUntil(() => received.endsWith('ping'), 'the echo');
  const openedAt = performance.now();
  await closed;
  const lived = performance.now() - openedAt;
  t.ok(lived >= 250, `not closed before the idle timeout (${Math.round(lived)}ms)`);
  await waitUntil(() => echo.closed === 1, 'the destination side to close too');
  await waitUntil(() => sidecar.accessLog.some((l) => l.method === 'CONNECT'), 'the tunnel line');
  t.match(sidecar.accessLog.find((l) => l.method === 'CONNECT'), { status: 200, bytes_in: 4, bytes_out: 4, upgrade: 'connect' });
});

t.test("an open tunnel is not cut by the listener's HTTP timeouts (headers, request, keep-alive)", async (t) => {
  const echo = await startEcho();
  t.teardown(() => echo.close());
  const sidecar = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: egress
    address: 127.0.0.1:0
    headersTimeout: 100ms
    requestTimeout: 150ms
    keepAliveTimeout: 100ms
    forwardProxy: { allow: ["127.0.0.1:${echo.port}"] }
    routes: [{ name: r, match: { prefix: / }, directResponse: { status: 200 } }]
clusters: []
`);
  t.teardown(() => sidecar.close());
  const socket = net.connect(sidecar.port(), '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\none,`);
  await waitUntil(() => received.endsWith('one,'), 'the first echo');
  // Silent for longer than every HTTP timeout of the listener (and its 1s connection check).
  const quietUntil = performance.now() + 1_500;
  await waitUntil(() => performance.now() > quietUntil || socket.destroyed, 'time to pass', 5_000, 100);
  t.notOk(socket.destroyed, 'the tunnel is still open');
  socket.write('two');
  await waitUntil(() => received.endsWith('one,two'), 'the echo after the silence');
  socket.destroy();
});

t.test('forwardProxy.allow is validated', async (t) => {
  const yaml = (allow: string): string => `
listeners:
  - name: egress
    address: 127.0.0.1:0
    forwardProxy: { allow: [${allow}] }
    routes: [{ name: r, match: { prefix: / }, directResponse: { status: 200 } }]
clusters: []
`;
  const star = parseConfigText(yaml('"*"'), '/tmp/x.yaml');
  t.notOk(star.ok);
  if (!star.ok) t.match(star.errors, [{ path: 'listeners[0].forwardProxy.allow[0]', message: /"\*" alone would allow every destination/ }]);
  const scheme = parseConfigText(yaml('"https://api.example"'), '/tmp/x.yaml');
  if (!scheme.ok) t.match(scheme.errors, [{ message: /without a scheme/ }]);
  else t.fail('a URL is not an allow entry');
  const port = parseConfigText(yaml('"api.example:0"'), '/tmp/x.yaml');
  if (!port.ok) t.match(port.errors, [{ message: /the port must be 1\.\.65535/ }]);
  else t.fail('port 0 is not a destination');
  const empty = parseConfigText(yaml(''), '/tmp/x.yaml');
  if (!empty.ok) t.match(empty.errors, [{ message: /at least one destination/ }]);
  else t.fail('an empty allow list is refused');
  t.ok(parseConfigText(yaml('"*.example:443", "api.example", "10.0.0.1:8443", "[::1]:443"'), '/tmp/x.yaml').ok, 'the valid forms load');
});
