import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import { explainRequest, type Explanation } from '../../src/router/explain';
import { startSidecar } from '../helpers/sidecar';
import { startRecordingUpstream } from '../helpers/upstream';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

function configYaml(appUrl: string): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: edge
    address: 127.0.0.1:0
    routes:
      - name: ping
        match: { path: /sidecar-ping }
        directResponse: { status: 200, body: pong }
      - name: canary
        match: { prefix: /api, headers: { x-canary: "true" } }
        cluster: app
      - name: admin-api
        match: { prefix: /api, host: admin.example.com, methods: [GET] }
        cluster: app
        rewritePrefix: /
      - name: api
        match: { prefix: /api, methods: [GET, POST] }
        cluster: app
        rewritePrefix: /v1
        retry: { attempts: 2, perTryTimeout: 1s }
      - name: versioned
        match: { regex: "^/v[0-9]+/" }
        cluster: app
      - name: tenants
        match: { prefix: /, host: "*.tenant.example" }
        cluster: app
        hostRewrite: auto
clusters:
  - name: app
    endpoints: [{ url: ${appUrl} }]
`;
}

interface Row {
  readonly method: string;
  readonly url: string;
  readonly host?: string;
  readonly headers?: Record<string, string>;
  readonly route: string | null;
  /** Route → the reasons it was passed over, each checked by substring. */
  readonly missed: Record<string, readonly string[]>;
  readonly upstreamPath?: string;
}

const ROWS: readonly Row[] = [
  { method: 'GET', url: '/sidecar-ping', route: 'ping', missed: {} },
  { method: 'GET', url: '/api/users', headers: { 'x-canary': 'true' }, route: 'canary', missed: { ping: ['path: /api/users is not /sidecar-ping'] }, upstreamPath: '/api/users' },
  {
    method: 'GET',
    url: '/api/users?page=2',
    host: 'admin.example.com',
    route: 'admin-api',
    missed: { ping: ['path'], canary: ['header x-canary: absent, the route wants "true"'] },
    upstreamPath: '/users?page=2',
  },
  {
    method: 'POST',
    url: '/api/users',
    host: 'admin.example.com',
    headers: { 'x-canary': 'false' },
    route: 'api',
    missed: { canary: ['header x-canary: "false"'], 'admin-api': ['method: POST is not one of GET'] },
    upstreamPath: '/v1/users',
  },
  {
    method: 'DELETE',
    url: '/api/x',
    host: 'www.example.com',
    route: null,
    missed: {
      canary: ['header x-canary'],
      'admin-api': ['method: DELETE', 'host: www.example.com is not admin.example.com'],
      api: ['method: DELETE is not one of GET, POST'],
      versioned: ['path: /api/x does not match regex ^/v[0-9]+/'],
      tenants: ['host: www.example.com is not *.tenant.example'],
    },
  },
  { method: 'GET', url: '/v2/thing', route: 'versioned', missed: { api: ['path: /v2/thing does not start with /api'] }, upstreamPath: '/v2/thing' },
  { method: 'GET', url: '/x', host: 'a.tenant.example', route: 'tenants', missed: { versioned: ['path'] }, upstreamPath: '/x' },
  { method: 'GET', url: '/x', host: 'a.b.tenant.example', route: null, missed: { tenants: ['host: a.b.tenant.example is not *.tenant.example'] } },
  // The path is normalised as the listener does before matching.
  { method: 'GET', url: '/web/../api//users', headers: { 'x-canary': 'true' }, route: 'canary', missed: {}, upstreamPath: '/api/users' },
];

function headerList(row: Row): Array<[string, string]> {
  const list: Array<[string, string]> = Object.entries(row.headers ?? {});
  if (row.host !== undefined) list.push(['host', row.host]);
  return list;
}

function checkRow(t: Test, row: Row, e: Explanation): void {
  t.equal(e.route, row.route, 'route');
  t.equal(e.matched, row.route !== null, 'matched');
  const listener = e.listeners[0];
  for (const [route, reasons] of Object.entries(row.missed)) {
    const miss = listener.missed.find((m) => m.route === route);
    t.ok(miss, `${route} is listed as passed over`);
    for (const reason of reasons) t.ok(miss?.reasons.some((r) => r.includes(reason)), `${route}: "${reason}" in ${JSON.stringify(miss?.reasons)}`);
  }
  // Every route before the chosen one is listed with at least one reason, and none after it.
  const routes = ['ping', 'canary', 'admin-api', 'api', 'versioned', 'tenants'];
  const before = row.route === null ? routes : routes.slice(0, routes.indexOf(row.route));
  t.same(listener.missed.map((m) => m.route), before, 'the routes passed over, in order');
  t.ok(listener.missed.every((m) => m.reasons.length > 0), 'each with a reason');
  if (row.upstreamPath !== undefined) t.match(e.upstreamUrls[0], new RegExp(`^http://127\\.0\\.0\\.1:\\d+${row.upstreamPath.replace(/[?]/g, '\\?')}$`), 'upstream URL after rewrites');
}

t.test('explain: a table of requests against every match kind agrees with the real routing', async (t) => {
  const app = await startRecordingUpstream();
  const proxy = await startSidecar(configYaml(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  for (const row of ROWS) {
    await t.test(`${row.method} ${row.host ?? ''}${row.url}`, async (t) => {
      const offline = explainRequest(proxy.sidecar.config, { method: row.method, url: row.url, headers: headerList(row) });
      checkRow(t, row, offline);
      t.equal(offline.live, false, 'offline: no live state');

      const query = new URLSearchParams({ method: row.method, url: row.url });
      for (const [name, value] of headerList(row)) query.append('header', `${name}: ${value}`);
      const answer = await request(`${proxy.adminUrl}/explain?${query}`);
      t.equal(answer.statusCode, 200);
      const live = (await answer.body.json()) as Explanation;
      checkRow(t, row, live);

      // What the listener really does with the same request.
      const before = app.received.length;
      const res = await request(`${proxy.url()}${row.url}`, { method: row.method, headers: { ...row.headers, ...(row.host ? { host: row.host } : {}) } });
      await res.body.dump();
      const logged = proxy.accessLog.at(-1);
      t.equal(logged?.route ?? null, row.route, 'the sidecar routed it the same way');
      if (row.route === null) t.equal(res.statusCode, 404);
      if (row.upstreamPath !== undefined) {
        t.equal(app.received.length, before + 1);
        t.equal(app.received.at(-1)?.url, row.upstreamPath, 'the app got the path explain announced');
      }
    });
  }
});

t.test('GET /explain adds the live state; bad input is a 400', async (t) => {
  const app = await startRecordingUpstream();
  const proxy = await startSidecar(configYaml(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.adminUrl}/explain?method=get&url=${encodeURIComponent('/api/a')}`);
  const e = (await res.body.json()) as Explanation;
  t.equal(e.route, 'api');
  t.equal(e.request.method, 'GET', 'the method is upper-cased');
  t.equal(e.live, true);
  t.equal(e.policies?.circuitBreaker.state, 'closed');
  t.type(e.policies?.retryBudget.available, 'number');
  t.equal(e.policies?.healthyEndpoints, 1);
  t.equal(e.policies?.retry?.attempts, 2);
  t.equal(e.policies?.retry?.perTryTimeout, '1000ms');
  t.equal(e.policies?.retry?.methodRetried, true);

  const post = (await (await request(`${proxy.adminUrl}/explain?method=POST&url=/api/a`)).body.json()) as Explanation;
  t.equal(post.policies?.retry?.methodRetried, false, 'POST is not retried by default');

  for (const [query, message] of [
    ['method=GET', /give the request/],
    ['url=nope', /must be a path/],
    ['url=/a%zz', /malformed percent-encoding/],
    ['url=/a&header=nocolon', /name: value/],
    [`url=${encodeURIComponent('http://bad host/')}`, /not a valid host/],
  ] as const) {
    const bad = await request(`${proxy.adminUrl}/explain?${query}`);
    t.equal(bad.statusCode, 400, query);
    t.match(((await bad.body.json()) as { message: string }).message, message);
  }
  // An absolute URL with the listener's port picks that listener and its host.
  const absolute = (await (await request(`${proxy.adminUrl}/explain?url=${encodeURIComponent(`http://a.tenant.example:${proxy.port()}/z`)}`)).body.json()) as Explanation;
  t.equal(absolute.route, 'tenants');
  t.match(absolute.upstreamHost, /^127\.0\.0\.1:\d+$/, 'hostRewrite: auto sends the endpoint host');
});

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, SIDECAR_ADMIN_TOKEN: '' } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

t.test('sidecar explain: exit 0 on a match, 1 on none, 2 when it cannot tell; from a file or a running sidecar', async (t) => {
  const app = await startRecordingUpstream();
  const proxy = await startSidecar(configYaml(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'explain-'));
  const file = path.join(dir, 'sidecar.yaml');
  writeFileSync(file, configYaml(app.url));
  t.ok(parseConfigText(configYaml(app.url), file).ok);

  const matched = await cli('explain', '-c', file, 'POST', '/api/users', '-H', 'Host: admin.example.com');
  t.equal(matched.code, 0, matched.stderr);
  t.match(matched.stdout, /not admin-api:\n\s+method: POST is not one of GET/);
  t.match(matched.stdout, /result: listener edge, route api/);
  t.match(matched.stdout, /upstream http:\/\/127\.0\.0\.1:\d+\/v1\/users/);
  t.match(matched.stdout, /circuit breaker: unknown/);

  const none = await cli('explain', '--admin', proxy.adminUrl, 'DELETE', '/api/x');
  t.equal(none.code, 1);
  t.match(none.stdout, /result: no route/);

  const live = await cli('explain', '--admin', proxy.adminUrl, '--json', 'GET', '/v9/a');
  t.equal(live.code, 0);
  t.equal((JSON.parse(live.stdout) as Explanation).policies?.circuitBreaker.state, 'closed');

  const badHeader = await cli('explain', '-c', file, 'GET', '/', '-H', 'no-colon');
  t.equal(badHeader.code, 2);
  t.match(badHeader.stderr, /name: value/);
  const missing = await cli('explain', '-c', path.join(dir, 'absent.yaml'), 'GET', '/');
  t.equal(missing.code, 2);
  const unreachable = await cli('explain', '--admin', 'http://127.0.0.1:1', 'GET', '/');
  t.equal(unreachable.code, 2);
  t.match(unreachable.stderr, /cannot reach the admin listener/);
});
