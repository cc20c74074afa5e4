import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import * as D from '../../src/config/defaults';
import {
  EMBEDDED_SOURCE,
  type LoadResult,
  formatConfigErrors,
  loadConfigFile,
  parseConfigText,
  summarizeConfig,
} from '../../src/config/load';
import { isRouteRegex } from '../../src/config/route-regex';
import type { ClusterRoute, DirectRoute, SidecarConfig } from '../../src/config/types';

const FIXTURES = path.resolve(__dirname, '../fixtures/config');

function mustLoad(result: LoadResult): SidecarConfig {
  if (!result.ok) throw new Error(`expected a valid config:\n${formatConfigErrors('config', result.errors)}`);
  return result.config;
}

function clusterRoute(config: SidecarConfig, listener: number, route: number): ClusterRoute {
  const r = config.listeners[listener].routes[route];
  if (r.action !== 'cluster') throw new Error(`route ${r.name} is not a cluster route`);
  return r;
}

/** A minimal document with `extra` YAML appended at the top level or spliced into the route. */
function minimal(options: { route?: string; top?: string; listener?: string; cluster?: string } = {}): string {
  return [
    'listeners:',
    '  - name: main',
    '    address: 127.0.0.1:8080',
    ...(options.listener ? [options.listener] : []),
    '    routes:',
    '      - name: all',
    '        match: { prefix: / }',
    '        cluster: app',
    ...(options.route ? [options.route] : []),
    'clusters:',
    '  - name: app',
    '    endpoints:',
    '      - url: http://127.0.0.1:3000',
    ...(options.cluster ? [options.cluster] : []),
    ...(options.top ? [options.top] : []),
    '',
  ].join('\n');
}

t.test('the DESIGN.md example compiles with ms, bytes, defaults and resolved paths', async (t) => {
  const file = path.join(FIXTURES, 'full.yaml');
  const config = mustLoad(await loadConfigFile(file));
  const certs = path.resolve(FIXTURES, '../certs');

  t.equal(config.source, file);
  t.equal(config.sha256, createHash('sha256').update(readFileSync(file)).digest('hex'));
  t.ok(config.loadedAt instanceof Date);
  t.same(config.admin, { host: '127.0.0.1', port: 9901, token: undefined, recorder: D.DEFAULT_RECORDER_SETTINGS });
  t.equal(config.workers, 1);
  t.same(config.accessLog, { path: 'stdout', query: 'drop' });
  t.same(config.drain, { delayMs: 5000, timeoutMs: 25000 });
  t.same(config.tracing, {
    serviceName: 'orders',
    exporter: 'otlp-http',
    endpoint: 'http://127.0.0.1:4318',
    sampleRatio: 1,
    propagators: ['tracecontext', 'baggage', 'b3'],
    responseHeader: false,
  });

  t.equal(config.listeners.length, 1);
  const listener = config.listeners[0];
  t.equal(listener.name, 'ingress');
  t.equal(listener.host, '0.0.0.0');
  t.equal(listener.port, 8443);
  t.same(listener.trustedProxies, [{ text: '10.0.0.0/8', family: 'ipv4', address: '10.0.0.0', prefix: 8 }]);
  t.same(listener.tls, {
    certPath: path.join(certs, 'server.crt'),
    keyPath: path.join(certs, 'server.key'),
    clientCaPath: path.join(certs, 'ca.crt'),
    sni: [{ serverNames: ['api.example.com'], certPath: path.join(certs, 'api.crt'), keyPath: path.join(certs, 'api.key') }],
  });
  t.equal(listener.maxHeaderBytes, 16 * 1024);
  t.equal(listener.headersTimeoutMs, 10_000);
  t.equal(listener.requestTimeoutMs, 300_000);
  t.equal(listener.keepAliveTimeoutMs, 5_000);
  t.equal(listener.maxConnections, 10_000);

  const api = clusterRoute(config, 0, 0);
  t.equal(api.name, 'api');
  t.equal(api.cluster, 'app');
  t.equal(api.rewritePrefix, '/');
  t.equal(api.timeoutMs, 15_000);
  t.equal(api.maxRequestBodyBytes, 10 * 1024 * 1024);
  t.equal(api.match.kind, 'prefix');
  t.equal(api.match.value, '/api');
  t.equal(api.match.regex, undefined);
  t.same([...(api.match.methods ?? [])], ['GET', 'POST']);
  t.same(api.match.headers, [['x-canary', 'true']]);
  t.equal(api.match.host, 'api.example.com');
  t.same(api.requestHeaders, { add: [['x-from', 'sidecar']], remove: ['x-debug'] });
  t.same(api.responseHeaders, { add: [], remove: ['server'] });
  t.equal(api.retry.attempts, 2);
  t.same([...api.retry.on], ['5xx', 'gateway-error', 'connect-failure', 'reset', 'retriable-status-codes']);
  t.same([...api.retry.statusCodes], [409]);
  t.equal(api.retry.perTryTimeoutMs, 2000);
  t.same(api.retry.backoff, { baseMs: 25, maxMs: 250 });
  t.same([...api.retry.methods], ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
  t.equal(api.retry.idempotencyKey, false);
  t.equal(api.retry.maxBodyBytes, 65_536);

  const health = config.listeners[0].routes[1] as DirectRoute;
  t.equal(health.action, 'directResponse');
  t.same(health.directResponse, { status: 200, body: 'pong', contentType: 'text/plain' });
  t.equal(health.match.kind, 'path');
  t.equal(health.match.value, '/sidecar-ping');
  t.equal(health.match.methods, undefined);
  t.equal(health.maxRequestBodyBytes, D.DEFAULT_MAX_REQUEST_BODY_BYTES);

  t.same([...config.clusters.keys()], ['app']);
  const app = config.clusters.get('app');
  t.ok(app);
  t.same(app?.endpoints, [
    { url: 'http://127.0.0.1:3000', priority: 0 },
    { url: 'http://127.0.0.1:3001', priority: 1 },
  ]);
  t.equal(app?.connectTimeoutMs, 1000);
  t.equal(app?.idleTimeoutMs, 3000);
  t.equal(app?.maxConnections, 128);
  t.same(app?.circuitBreaker, {
    errorThresholdPercentage: 50,
    volumeThreshold: 20,
    windowMs: 10_000,
    resetTimeoutMs: 5_000,
    maxConcurrentRequests: 1024,
    maxPendingRequests: 1024,
  });
  t.same(app?.healthCheck, { path: '/healthz', intervalMs: 5000, timeoutMs: 1000, unhealthyThreshold: 3, healthyThreshold: 2 });
  t.same(app?.outlierDetection, { consecutive5xx: 5, baseEjectionTimeMs: 30_000 });
  t.same(app?.retryBudget, { ratio: 0.2, minPerSecond: 10 });
  t.type(app?.fingerprint, 'string');

  t.equal(summarizeConfig(config), 'ok: 1 listener, 2 routes, 1 cluster (2 endpoints), tracing otlp-http');
});

t.test('defaults fill every omitted field', async (t) => {
  const config = mustLoad(await loadConfigFile(path.join(FIXTURES, 'minimal.yaml')));
  t.same(config.admin, { host: '127.0.0.1', port: 9901, token: undefined, recorder: D.DEFAULT_RECORDER_SETTINGS });
  t.same(config.tracing, {
    serviceName: 'sidecar',
    exporter: 'none',
    endpoint: undefined,
    sampleRatio: 1,
    propagators: ['tracecontext', 'baggage'],
    responseHeader: false,
  });
  t.same(config.accessLog, { path: 'stdout', query: 'drop' });
  t.same(config.drain, { delayMs: D.DEFAULT_DRAIN_DELAY_MS, timeoutMs: D.DEFAULT_DRAIN_TIMEOUT_MS });
  t.equal(config.workers, 1);

  const listener = config.listeners[0];
  t.same(listener.trustedProxies, []);
  t.equal(listener.tls, undefined);

  const route = clusterRoute(config, 0, 0);
  t.equal(route.timeoutMs, D.DEFAULT_ROUTE_TIMEOUT_MS);
  t.equal(route.rewritePrefix, undefined);
  t.equal(route.retry.attempts, 0, 'no retry section: tried once');
  t.same([...route.retry.on], ['connect-failure', 'reset', 'gateway-error']);
  t.same([...route.retry.methods], ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
  t.equal(route.retry.perTryTimeoutMs, undefined);
  t.same(route.requestHeaders, { add: [], remove: [] });

  const app = config.clusters.get('app');
  t.equal(app?.connectTimeoutMs, D.DEFAULT_CONNECT_TIMEOUT_MS);
  t.equal(app?.idleTimeoutMs, D.DEFAULT_IDLE_TIMEOUT_MS);
  t.equal(app?.maxConnections, D.DEFAULT_MAX_CONNECTIONS);
  t.equal(app?.healthCheck, undefined, 'no health checks unless configured');
  t.equal(app?.outlierDetection, undefined, 'no outlier detection unless configured');
  t.same(app?.retryBudget, { ratio: 0.2, minPerSecond: 10 });
  t.equal(app?.circuitBreaker.maxPendingRequests, 1024);

  t.equal(summarizeConfig(config), 'ok: 1 listener, 1 route, 1 cluster (1 endpoint), tracing off');
});

t.test('a retry section without attempts retries twice', async (t) => {
  const config = mustLoad(parseConfigText(minimal({ route: '        retry: {}' }), EMBEDDED_SOURCE));
  const retry = clusterRoute(config, 0, 0).retry;
  t.equal(retry.attempts, D.DEFAULT_RETRY_ATTEMPTS);
  t.same([...retry.on], [...D.DEFAULT_RETRY_ON]);
  t.same(retry.backoff, { baseMs: 25, maxMs: 250 });
  t.equal(retry.maxBodyBytes, 64 * 1024);
});

t.test('a tracing section without exporter exports over otlp-http', async (t) => {
  const config = mustLoad(parseConfigText(minimal({ top: 'tracing: { serviceName: shop }' }), EMBEDDED_SOURCE));
  t.equal(config.tracing.exporter, 'otlp-http');
  t.equal(config.tracing.serviceName, 'shop');
});

t.test('names, methods and hosts are normalised; regexes are precompiled', async (t) => {
  const text = [
    'listeners:',
    '  - name: main',
    '    address: "[::]:8443"',
    '    trustedProxies: ["::ffff:10.0.0.0/104", "fd00::/8"]',
    '    routes:',
    '      - name: v',
    '        match:',
    '          regex: ^/v[0-9]+/',
    '          methods: [get, Post]',
    '          headers: { X-Canary: "yes" }',
    '          host: "*.Example.COM"',
    '        cluster: app',
    '        requestHeaders: { add: { X-From: sidecar }, remove: [X-Debug] }',
    'clusters:',
    '  - name: app',
    '    endpoints: [{ url: "http://[::1]:3000/" }, { url: "HTTP://LocalHost:3001" }]',
    '',
  ].join('\n');
  const config = mustLoad(parseConfigText(text, EMBEDDED_SOURCE));
  const listener = config.listeners[0];
  t.equal(listener.host, '::');
  t.equal(listener.port, 8443);
  t.same(
    listener.trustedProxies.map((b) => [b.family, b.address, b.prefix]),
    [
      ['ipv4', '10.0.0.0', 8],
      ['ipv6', 'fd00::', 8],
    ],
  );
  const route = clusterRoute(config, 0, 0);
  t.equal(route.match.kind, 'regex');
  t.ok(isRouteRegex(route.match.regex), 'compiled with RE2');
  t.equal(route.match.regex?.test('/v2/users'), true);
  t.equal(route.match.regex?.test('/api'), false);
  t.same([...(route.match.methods ?? [])], ['GET', 'POST']);
  t.same(route.match.headers, [['x-canary', 'yes']]);
  t.equal(route.match.host, '*.example.com');
  t.same(route.requestHeaders, { add: [['x-from', 'sidecar']], remove: ['x-debug'] });
  t.same(
    config.clusters.get('app')?.endpoints.map((e) => e.url),
    ['http://[::1]:3000', 'http://localhost:3001'],
  );
});

t.test('relative paths resolve against the file folder; embedded text against the working directory', async (t) => {
  const tlsAndLog = [
    '    tls: { cert: certs/a.crt, key: /etc/ssl/a.key }',
  ].join('\n');
  const fromFile = mustLoad(parseConfigText(minimal({ listener: tlsAndLog, top: 'accessLog: { path: logs/access.log }' }), '/srv/conf/sidecar.yaml'));
  t.equal(fromFile.source, '/srv/conf/sidecar.yaml');
  t.equal(fromFile.listeners[0].tls?.certPath, '/srv/conf/certs/a.crt');
  t.equal(fromFile.listeners[0].tls?.keyPath, '/etc/ssl/a.key', 'absolute paths are kept');
  t.equal(fromFile.listeners[0].tls?.clientCaPath, undefined);
  t.same(fromFile.listeners[0].tls?.sni, []);
  t.equal(fromFile.accessLog.path, '/srv/conf/logs/access.log');

  const embedded = mustLoad(parseConfigText(minimal({ listener: tlsAndLog, top: 'accessLog: { path: stderr }' }), EMBEDDED_SOURCE));
  t.equal(embedded.source, EMBEDDED_SOURCE);
  t.equal(embedded.listeners[0].tls?.certPath, path.resolve(process.cwd(), 'certs/a.crt'));
  t.equal(embedded.accessLog.path, 'stderr', 'stdout, stderr and off are not paths');
});

t.test('workers: auto is the number of cores', async (t) => {
  const config = mustLoad(parseConfigText(minimal({ top: 'workers: auto' }), EMBEDDED_SOURCE));
  t.equal(config.workers, availableParallelism());
});

t.test('listener tuning fields', async (t) => {
  const listener = [
    '    maxHeaderBytes: 32KiB',
    '    headersTimeout: 2s',
    '    requestTimeout: 0s',
    '    keepAliveTimeout: 65s',
    '    maxConnections: 50',
  ].join('\n');
  const config = mustLoad(parseConfigText(minimal({ listener }), EMBEDDED_SOURCE));
  const l = config.listeners[0];
  t.equal(l.maxHeaderBytes, 32 * 1024);
  t.equal(l.headersTimeoutMs, 2000);
  t.equal(l.requestTimeoutMs, 0, '0s disables the request timeout');
  t.equal(l.keepAliveTimeoutMs, 65_000);
  t.equal(l.maxConnections, 50);
  t.equal(l.maxConnectionsPerPeer, 50, 'the per-peer default never exceeds maxConnections');
});

t.test('maxConnectionsPerPeer: a tenth of maxConnections by default, at least 100', async (t) => {
  const perPeer = (listener: string): number => mustLoad(parseConfigText(minimal({ listener }), EMBEDDED_SOURCE)).listeners[0].maxConnectionsPerPeer;
  t.equal(perPeer(''), 1_000, 'with the default maxConnections (10 000)');
  t.equal(perPeer('    maxConnections: 40000'), 4_000);
  t.equal(perPeer('    maxConnections: 500'), 100, 'at least 100');
  t.equal(perPeer('    maxConnections: 500\n    maxConnectionsPerPeer: 7'), 7, 'as written');
  t.notOk(parseConfigText(minimal({ listener: '    maxConnectionsPerPeer: 0' }), EMBEDDED_SOURCE).ok, '0 is refused');
});

t.test('two listeners on port 0 do not clash (tests bind free ports)', async (t) => {
  const text = minimal().replace('127.0.0.1:8080', '127.0.0.1:0') +
    'admin: { address: "127.0.0.1:0" }\n';
  const doubled = text.replace(
    'clusters:',
    ['  - name: second', '    address: 127.0.0.1:0', '    routes:', '      - { name: r, match: { path: /x }, directResponse: { status: 204 } }', 'clusters:'].join('\n'),
  );
  const config = mustLoad(parseConfigText(doubled, EMBEDDED_SOURCE));
  t.same(config.listeners.map((l) => l.port), [0, 0]);
  t.equal(config.admin.port, 0);
});

t.test('the snapshot is deep-frozen; the admin token is not in the document', async (t) => {
  const config = mustLoad(parseConfigText(minimal({ top: 'admin: { token: s3cret-admin-token }' }), EMBEDDED_SOURCE));
  t.equal(config.admin.token, 's3cret-admin-token');
  t.ok(Object.isFrozen(config));
  t.ok(Object.isFrozen(config.listeners));
  t.ok(Object.isFrozen(config.listeners[0].routes[0]));
  t.ok(Object.isFrozen(config.listeners[0].routes[0].match.headers));
  t.ok(Object.isFrozen(config.clusters.get('app')?.circuitBreaker));
  t.ok(Object.isFrozen(config.document));
  t.throws(() => {
    (config.listeners[0] as { name: string }).name = 'changed';
  }, TypeError);
  const document = config.document as { admin: { token: string } };
  t.equal(document.admin.token, '<redacted>');
  t.notMatch(JSON.stringify(config.document), /s3cret/);
});

t.test('document is the validated document as written', async (t) => {
  const config = mustLoad(parseConfigText(minimal({ route: '        timeout: 3s' }), EMBEDDED_SOURCE));
  t.same(config.document, {
    listeners: [{ name: 'main', address: '127.0.0.1:8080', routes: [{ name: 'all', match: { prefix: '/' }, cluster: 'app', timeout: '3s' }] }],
    clusters: [{ name: 'app', endpoints: [{ url: 'http://127.0.0.1:3000' }] }],
  });
});

t.test('cluster fingerprints: equal settings, equal text; any change, another text', async (t) => {
  const a = mustLoad(parseConfigText(minimal({ cluster: '    connectTimeout: 2s\n    maxConnections: 7' }), EMBEDDED_SOURCE));
  const b = mustLoad(parseConfigText(minimal({ cluster: '    maxConnections: 7\n    connectTimeout: 2000ms' }), EMBEDDED_SOURCE));
  const c = mustLoad(parseConfigText(minimal({ cluster: '    maxConnections: 8\n    connectTimeout: 2s' }), EMBEDDED_SOURCE));
  t.equal(a.clusters.get('app')?.fingerprint, b.clusters.get('app')?.fingerprint);
  t.not(a.clusters.get('app')?.fingerprint, c.clusters.get('app')?.fingerprint);
  t.equal(a.sha256, createHash('sha256').update(minimal({ cluster: '    connectTimeout: 2s\n    maxConnections: 7' })).digest('hex'));
});

t.test('YAML anchors and merge keys are allowed', async (t) => {
  const text = [
    'x-retry: &retry { attempts: 3, perTryTimeout: 1s }',
    'listeners: []',
  ].join('\n');
  // An unknown top-level key is still an error, anchors or not.
  const result = parseConfigText(text, EMBEDDED_SOURCE);
  t.equal(result.ok, false);

  const ok = [
    'listeners:',
    '  - name: main',
    '    address: 127.0.0.1:8080',
    '    routes:',
    '      - name: a',
    '        match: { prefix: /a }',
    '        cluster: app',
    '        retry: &retry { attempts: 3, perTryTimeout: 1s }',
    '      - name: b',
    '        match: { prefix: /b }',
    '        cluster: app',
    '        retry: { <<: *retry, attempts: 1 }',
    'clusters:',
    '  - { name: app, endpoints: [{ url: "http://127.0.0.1:3000" }] }',
  ].join('\n');
  const config = mustLoad(parseConfigText(ok, EMBEDDED_SOURCE));
  t.equal(clusterRoute(config, 0, 0).retry.attempts, 3);
  t.equal(clusterRoute(config, 0, 1).retry.attempts, 1);
  t.equal(clusterRoute(config, 0, 1).retry.perTryTimeoutMs, 1000);
});

t.test('an unreadable file is an error naming the file', async (t) => {
  const missing = path.join(FIXTURES, 'does-not-exist.yaml');
  const result = await loadConfigFile(missing);
  t.equal(result.ok, false);
  if (result.ok) return;
  t.equal(result.errors.length, 1);
  t.equal(result.errors[0].line, undefined);
  t.equal(result.errors[0].message, `config file ${missing} does not exist`);

  const dir = await loadConfigFile(FIXTURES);
  t.equal(dir.ok, false);
  if (!dir.ok) t.match(dir.errors[0].message, /is a directory/);
});

t.test('formatConfigErrors: file:line:column path: message', async (t) => {
  t.equal(
    formatConfigErrors('examples/bad.yaml', [
      { path: 'listeners[0].routes[1].timeout', line: 12, column: 7, message: 'invalid duration "5 parsecs"' },
      { path: '', line: 1, column: 1, message: 'the file is empty' },
      { path: '', line: undefined, message: 'config file x does not exist' },
      { path: 'workers', line: 3, message: 'bad' },
    ]),
    [
      'examples/bad.yaml:12:7 listeners[0].routes[1].timeout: invalid duration "5 parsecs"',
      'examples/bad.yaml:1:1 the file is empty',
      'examples/bad.yaml config file x does not exist',
      'examples/bad.yaml:3 workers: bad',
    ].join('\n'),
  );
});
