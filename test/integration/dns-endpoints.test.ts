/**
 * Endpoints given by host name: every address the name resolves to is an endpoint (strict
 * DNS); the name is resolved again every dnsRefresh and sooner after a connect failure; a
 * failed resolution keeps the last good addresses, is logged and counted; /clusters shows each
 * address. A test resolver answers for the names: no network is used.
 */

import { promises as fsp } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import type { HostResolver } from '../../src/upstream/dns';
import { makeTestPki } from '../helpers/certs';
import { parsePrometheusText } from '../helpers/prometheus';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { captureLogger } from '../helpers/tls-clients';
import { waitUntil } from '../helpers/wait';

/** Answers for names the test controls; `calls` counts the questions asked. */
function testResolver(initial: Record<string, readonly string[] | Error>): { resolver: HostResolver; set(name: string, answer: readonly string[] | Error): void; calls: string[] } {
  const records = new Map(Object.entries(initial));
  const calls: string[] = [];
  return {
    calls,
    set: (name, answer) => void records.set(name, answer),
    resolver: async (name) => {
      calls.push(name);
      const answer = records.get(name);
      if (answer === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}

interface App {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * HTTP apps on 127.0.0.1 and 127.0.0.2 with the same port; each answers with the address it
 * was reached on, and /healthz with 200 (503 on the `failingHealth` address).
 */
async function startTwinApps(failingHealth?: string): Promise<App> {
  for (let tries = 0; ; tries++) {
    const first = await listen('127.0.0.1', 0, failingHealth);
    const port = (first.address() as AddressInfo).port;
    try {
      const second = await listen('127.0.0.2', port, failingHealth);
      return { port, close: async () => void (await Promise.all([close(first), close(second)])) };
    } catch (error) {
      await close(first);
      if (tries === 5) throw error;
    }
  }
}

function listen(host: string, port: number, failingHealth: string | undefined): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') res.statusCode = host === failingHealth ? 503 : 200;
    res.end(req.socket.localAddress);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('close', () => sockets.forEach((s) => s.destroy()));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

function close(server: http.Server | https.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

function config(url: string, clusterExtra = ''): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${url} }]
${clusterExtra}
`;
}

interface ClustersView {
  clusters: Array<{
    name: string;
    endpoints: Array<{ name: string; url: string; address: string | null; healthy: boolean }>;
    dns: Array<{ name: string; addresses: string[]; lastError: string | null; resolutions: number; failures: number }>;
  }>;
}

async function clusters(sidecar: RunningSidecar): Promise<ClustersView['clusters'][number]> {
  const response = await request(`${sidecar.adminUrl}/clusters`);
  const view = (await response.body.json()) as ClustersView;
  return view.clusters[0];
}

async function get(sidecar: RunningSidecar): Promise<{ status: number; body: string; error: string | undefined }> {
  const response = await request(`${sidecar.url()}/x`);
  const error = response.headers['x-sidecar-error'];
  return { status: response.statusCode, body: await response.body.text(), error: typeof error === 'string' ? error : undefined };
}

async function metric(sidecar: RunningSidecar, name: string, labels: Record<string, string>): Promise<number> {
  const response = await request(`${sidecar.adminUrl}/metrics`);
  return parsePrometheusText(await response.body.text()).sum(name, labels);
}

t.test('a name with two addresses: both take traffic, /clusters shows each address', async (t) => {
  const apps = await startTwinApps();
  t.teardown(() => apps.close());
  const dns = testResolver({ 'app.test': ['127.0.0.1', '127.0.0.2'] });
  const sidecar = await startSidecar(config(`http://app.test:${apps.port}`), { resolver: dns.resolver });
  t.teardown(() => sidecar.close());

  const served: string[] = [];
  for (let i = 0; i < 6; i++) {
    const answer = await get(sidecar);
    t.equal(answer.status, 200);
    served.push(answer.body);
  }
  t.same(served.filter((a) => a === '127.0.0.1').length, 3, 'round robin: half of the requests to 127.0.0.1');
  t.same(served.filter((a) => a === '127.0.0.2').length, 3, 'and half to 127.0.0.2');

  const view = await clusters(sidecar);
  t.same(
    view.endpoints.map((e) => [e.url, e.address]),
    [
      [`http://app.test:${apps.port}`, '127.0.0.1'],
      [`http://app.test:${apps.port}`, '127.0.0.2'],
    ],
  );
  t.same(view.endpoints.map((e) => e.name), [`http://app.test:${apps.port}[127.0.0.1]`, `http://app.test:${apps.port}[127.0.0.2]`], 'each named by its address');
  const stats = (await (await request(`${sidecar.adminUrl}/stats`)).body.json()) as { clusters: Array<{ endpoints: Array<{ url: string; requests: number }> }> };
  t.same(stats.clusters[0].endpoints.map((e) => [e.url, e.requests]), [[view.endpoints[0].name, 3], [view.endpoints[1].name, 3]], '/stats counts each address apart');
  t.match(view.dns, [{ name: 'app.test', addresses: ['127.0.0.1', '127.0.0.2'], lastError: null, failures: 0 }]);
  t.same(dns.calls, ['app.test'], 'resolved once at start (the refresh is 30s by default)');
  t.equal(await metric(sidecar, 'sidecar_dns_resolutions_total', { cluster: 'app', result: 'success' }), 1);
  t.equal(await metric(sidecar, 'sidecar_endpoint_healthy', { cluster: 'app', endpoint: `http://app.test:${apps.port}[127.0.0.2]` }), 1, 'one health gauge per address');
});

t.test('a change of records is picked up on refresh: new addresses take traffic, removed ones none', async (t) => {
  const apps = await startTwinApps();
  t.teardown(() => apps.close());
  const dns = testResolver({ 'app.test': ['127.0.0.1'] });
  const log = captureLogger();
  const sidecar = await startSidecar(config(`http://app.test:${apps.port}`, '    dnsRefresh: 20ms'), { resolver: dns.resolver, logger: log.logger });
  t.teardown(() => sidecar.close());
  t.equal((await get(sidecar)).body, '127.0.0.1');

  dns.set('app.test', ['127.0.0.2']);
  await waitUntil(async () => (await clusters(sidecar)).endpoints.every((e) => e.address === '127.0.0.2'), 'the endpoints to follow the records');
  for (let i = 0; i < 3; i++) t.equal((await get(sidecar)).body, '127.0.0.2', 'only the new address takes traffic');
  const line = await log.waitFor((l) => l.msg === 'endpoint host name resolves to other addresses: endpoints updated');
  t.match(line, { cluster: 'app', name: 'app.test', addresses: ['127.0.0.2'], previous: ['127.0.0.1'] });
  t.equal(
    await metric(sidecar, 'sidecar_endpoint_healthy', { cluster: 'app', endpoint: `http://app.test:${apps.port}[127.0.0.1]` }),
    0,
    'the gauge of the removed address is withdrawn',
  );
});

t.test('health checks reach an address that appears on refresh: a failing one takes no traffic', async (t) => {
  const apps = await startTwinApps('127.0.0.2');
  t.teardown(() => apps.close());
  const dns = testResolver({ 'app.test': ['127.0.0.1'] });
  const sidecar = await startSidecar(
    config(`http://app.test:${apps.port}`, '    dnsRefresh: 20ms\n    healthCheck: { path: /healthz, interval: 1s, timeout: 1s, unhealthyThreshold: 1 }'),
    { resolver: dns.resolver },
  );
  t.teardown(() => sidecar.close());
  dns.set('app.test', ['127.0.0.1', '127.0.0.2']);
  await waitUntil(async () => (await clusters(sidecar)).endpoints.some((e) => e.address === '127.0.0.2' && !e.healthy), 'the new address to be checked and found unhealthy');
  for (let i = 0; i < 4; i++) t.equal((await get(sidecar)).body, '127.0.0.1', 'traffic stays on the healthy address');
  t.equal(await metric(sidecar, 'sidecar_health_checks_total', { cluster: 'app', endpoint: `http://app.test:${apps.port}[127.0.0.2]`, result: 'fail' }) > 0, true);
});

t.test('a failed resolution keeps the last good addresses, is logged and counted', async (t) => {
  const apps = await startTwinApps();
  t.teardown(() => apps.close());
  const dns = testResolver({ 'app.test': ['127.0.0.1', '127.0.0.2'] });
  const log = captureLogger();
  const sidecar = await startSidecar(config(`http://app.test:${apps.port}`, '    dnsRefresh: 20ms'), { resolver: dns.resolver, logger: log.logger });
  t.teardown(() => sidecar.close());

  dns.set('app.test', Object.assign(new Error('queryA ESERVFAIL app.test'), { code: 'ESERVFAIL' }));
  const line = await log.waitFor((l) => l.msg === 'endpoint host name could not be resolved: keeping its last good addresses');
  t.match(line, { cluster: 'app', name: 'app.test', error: /ESERVFAIL/, kept: ['127.0.0.1', '127.0.0.2'] });
  const view = await clusters(sidecar);
  t.same(view.endpoints.map((e) => e.address), ['127.0.0.1', '127.0.0.2'], 'both addresses still endpoints');
  t.match(view.dns[0], { addresses: ['127.0.0.1', '127.0.0.2'], lastError: /ESERVFAIL/ });
  t.ok(view.dns[0].failures >= 1);
  t.equal((await get(sidecar)).status, 200, 'requests still served');
  t.ok((await metric(sidecar, 'sidecar_dns_resolutions_total', { cluster: 'app', result: 'failure' })) >= 1, 'the failure is counted');

  // An empty answer is no better: it must not empty the cluster either.
  dns.set('app.test', []);
  await log.waitFor((l) => l.msg === 'endpoint host name could not be resolved: keeping its last good addresses' && l.error === 'the name has no A or AAAA record');
  t.same((await clusters(sidecar)).endpoints.map((e) => e.address), ['127.0.0.1', '127.0.0.2']);
  t.equal((await get(sidecar)).status, 200);
});

t.test('a name that never resolved has no endpoint (503 NO_HEALTHY_UPSTREAM) until it does', async (t) => {
  const apps = await startTwinApps();
  t.teardown(() => apps.close());
  const dns = testResolver({});
  const log = captureLogger();
  const sidecar = await startSidecar(config(`http://app.test:${apps.port}`, '    dnsRefresh: 20ms'), { resolver: dns.resolver, logger: log.logger });
  t.teardown(() => sidecar.close());
  const refused = await get(sidecar);
  t.equal(refused.status, 503);
  t.equal(refused.error, 'NO_HEALTHY_UPSTREAM');
  t.match(log.lines.find((l) => l.msg === 'endpoint host name could not be resolved: it has no endpoint until it is'), { name: 'app.test', error: /ENOTFOUND/ });

  dns.set('app.test', ['127.0.0.2']);
  await waitUntil(async () => (await get(sidecar)).status === 200, 'the name to resolve (retried after the failure)');
  t.equal((await get(sidecar)).body, '127.0.0.2');
});

t.test('a connect failure resolves the name again before dnsRefresh, at most once a second', async (t) => {
  const apps = await startTwinApps();
  t.teardown(() => apps.close());
  // Nothing listens on 127.0.0.3 at the apps' port.
  const dns = testResolver({ 'app.test': ['127.0.0.3'] });
  // The breaker stays out of it: it would stop the connect attempts that ask for the new resolution.
  const sidecar = await startSidecar(config(`http://app.test:${apps.port}`, '    dnsRefresh: 1h\n    circuitBreaker: { volumeThreshold: 100000 }'), { resolver: dns.resolver });
  t.teardown(() => sidecar.close());
  const failed = await get(sidecar);
  t.equal(failed.status, 503);
  t.equal(failed.error, 'UPSTREAM_CONNECT_FAILURE');

  dns.set('app.test', ['127.0.0.1']);
  const startedAt = performance.now();
  let attempts = 0;
  await waitUntil(async () => {
    attempts++;
    return (await get(sidecar)).status === 200;
  }, 'a connect failure to trigger a new resolution');
  t.ok(performance.now() - startedAt < 5_000, 'well before the 1h refresh');
  t.ok(dns.calls.length >= 2, 'resolved again');
  t.ok(dns.calls.length <= 3, `not once per failed attempt (${attempts} requests, ${dns.calls.length} resolutions)`);
  t.equal((await get(sidecar)).body, '127.0.0.1');
});

t.test('an https endpoint by name: connects to the resolved address, SNI and verification on the name', async (t) => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-dns-tls-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  const pki = await makeTestPki(dir, { hosts: ['payments.test'] });
  const servernames: string[] = [];
  const server = https.createServer({ cert: pki.serverCert, key: pki.serverKey }, (req, res) => {
    servernames.push(String((req.socket as TLSSocket).servername));
    res.end(`hello ${req.headers.host ?? ''}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => close(server));
  const port = (server.address() as AddressInfo).port;
  const dns = testResolver({ 'payments.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] });
  const tls = `    tls: { ca: ${pki.caCertPath} }`;

  const good = await startSidecar(config(`https://payments.test:${port}`, tls), { resolver: dns.resolver });
  t.teardown(() => good.close());
  const answer = await get(good);
  t.equal(answer.status, 200);
  t.equal(servernames.at(-1), 'payments.test', 'SNI is the name, not the address');

  // Same address, another name: the certificate (for payments.test) does not match it.
  const mismatch = await startSidecar(config(`https://other.test:${port}`, tls), { resolver: dns.resolver });
  t.teardown(() => mismatch.close());
  const refused = await get(mismatch);
  t.equal(refused.status, 502);
  t.equal(refused.error, 'UPSTREAM_TLS_FAILURE');
  t.match(refused.body, /other\.test/, 'verified against the endpoint name');
});

t.test('a reload that adds a named cluster resolves it before it takes traffic', async (t) => {
  const apps = await startTwinApps();
  t.teardown(() => apps.close());
  // Answers 127.0.0.2, once released.
  const asked: string[] = [];
  let release = (): void => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const resolver: HostResolver = async (name) => {
    asked.push(name);
    await held;
    return ['127.0.0.2'];
  };
  const sidecar = await startSidecar(config(`http://127.0.0.1:${apps.port}`), { resolver });
  t.teardown(() => sidecar.close());
  t.equal((await get(sidecar)).body, '127.0.0.1');
  t.same(asked, [], 'an endpoint given by address is not resolved');

  const loaded = parseConfigText(config(`http://app.test:${apps.port}`), path.join(os.tmpdir(), 'reload.yaml'));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const applying = sidecar.sidecar.applyConfig(loaded.config);
  await waitUntil(() => asked.length > 0, 'the reload to ask for the name');
  t.equal((await get(sidecar)).body, '127.0.0.1', 'while the name resolves, the running config serves');
  release();
  const applied = await applying;
  t.ok(applied.ok, 'reload applied', { applied });
  t.equal((await get(sidecar)).body, '127.0.0.2', 'the first request after the reload finds the resolved address');
});

t.test('dnsRefresh is validated with its line', async (t) => {
  const loaded = parseConfigText(config('http://app.test:80', '    dnsRefresh: 0s'), '/tmp/x.yaml');
  t.notOk(loaded.ok);
  if (loaded.ok) return;
  t.match(loaded.errors, [{ path: 'clusters[0].dnsRefresh', message: /must be greater than 0/ }]);
});
