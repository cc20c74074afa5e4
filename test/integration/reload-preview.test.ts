import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import type { ReloadPreview } from '../../src/admin/reload-preview';
import { diffConfigs } from '../../src/config/diff';
import { startSidecar } from '../helpers/sidecar';
import { startRecordingUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

function config(appUrl: string, ordersPrefix: string, extra = ''): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: edge
    address: 127.0.0.1:0
    routes:
      - { name: orders, match: { prefix: ${ordersPrefix} }, cluster: app, timeout: 5s }
      - { name: web, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${appUrl} }]
${extra}`;
}

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, SIDECAR_ADMIN_TOKEN: '' } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

t.test('a config moving a prefix: the structural diff and the share of recent requests that would move; nothing changes', async (t) => {
  const app = await startRecordingUpstream();
  const proxy = await startSidecar(config(app.url, '/orders'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const paths = ['/orders/1', '/orders/2', '/orders/3', '/orders/4', '/orders/5', '/orders/6', '/shop/1', '/', '/about', '/shop/2'];
  for (const p of paths) {
    const res = await request(`${proxy.url()}${p}`);
    await res.body.dump();
  }
  await waitUntil(() => proxy.sidecar.recorder.size.requests === paths.length, 'every request to be recorded');
  const sha = proxy.sidecar.config.sha256;

  const moved = config(app.url, '/shop', '  - name: spare\n    endpoints: [{ url: "http://127.0.0.1:9" }]');
  const res = await request(`${proxy.adminUrl}/reload?dryRun=true`, { method: 'POST', body: moved });
  t.equal(res.statusCode, 200);
  const preview = (await res.body.json()) as ReloadPreview;
  t.equal(preview.replay?.summary, '8 of 10 recent requests would route differently');
  t.same(preview.replay?.moves, [
    { from: 'edge/orders', to: 'edge/web', count: 6 },
    { from: 'edge/web', to: 'edge/orders', count: 2 },
  ]);
  t.same(preview.diff.routes.changed, [{ name: 'edge/orders', fields: [{ field: 'match.prefix', before: '/orders', after: '/shop' }] }]);
  t.same(preview.diff.clusters.added, ['spare']);
  t.same(preview.diff.listeners, { added: [], removed: [], changed: [] });
  t.equal(preview.diff.unchanged, false);

  t.equal(proxy.sidecar.config.sha256, sha, 'the running config is the same');
  const after = await request(`${proxy.url()}/orders/9`);
  await after.body.dump();
  t.equal(proxy.accessLog.at(-1)?.route, 'orders', 'and still routes as before');

  const same = (await (await request(`${proxy.adminUrl}/reload?dryRun=true`, { method: 'POST', body: config(app.url, '/orders') })).body.json()) as ReloadPreview;
  t.equal(same.diff.unchanged, true);
  t.match(same.replay?.summary, /^0 of \d+ recent requests/);

  const invalid = await request(`${proxy.adminUrl}/reload?dryRun=true`, { method: 'POST', body: 'listeners: [{ name: x }]\nnonsense: 1\n' });
  t.equal(invalid.statusCode, 422);
  const body = (await invalid.body.json()) as { valid: boolean; errors: Array<{ path: string; line: number }> };
  t.equal(body.valid, false);
  t.ok(body.errors.some((e) => e.path === 'nonsense' && e.line === 2), 'errors carry their path and line');

  // The CLI, from a file.
  const dir = mkdtempSync(path.join(tmpdir(), 'diff-'));
  writeFileSync(path.join(dir, 'new.yaml'), moved);
  const out = await cli('diff', '-c', path.join(dir, 'new.yaml'), '--admin', proxy.adminUrl);
  t.equal(out.code, 0, out.stderr);
  t.match(out.stdout, /~ route edge\/orders\n\s+match\.prefix: \/orders → \/shop/);
  t.match(out.stdout, /\+ cluster spare/);
  // The request to /orders/9 above is one more that moves.
  t.match(out.stdout, /9 of 11 recent requests would route differently/);
  t.match(out.stdout, /7 × edge\/orders → edge\/web\n\s+2 × edge\/web → edge\/orders/);
  writeFileSync(path.join(dir, 'bad.yaml'), 'listeners: [{ name: x }]\nnonsense: 1\n');
  const bad = await cli('diff', '-c', path.join(dir, 'bad.yaml'), '--admin', proxy.adminUrl);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /bad\.yaml:2/);
  const missing = await cli('diff', '-c', path.join(dir, 'absent.yaml'), '--admin', proxy.adminUrl);
  t.equal(missing.code, 2);
});

t.test('diffConfigs: route order, removed items and settings field by field', async (t) => {
  const before = {
    admin: { address: '127.0.0.1:9901' },
    listeners: [{ name: 'a', address: ':1', routes: [{ name: 'r1', match: { prefix: '/' } }, { name: 'r2', match: { methods: ['GET'] } }] }],
    clusters: [{ name: 'c', endpoints: [{ url: 'http://x' }] }],
  };
  const after = {
    admin: { address: '127.0.0.1:9902' },
    listeners: [{ name: 'a', address: ':2', routes: [{ name: 'r2', match: { methods: ['GET', 'POST'] } }, { name: 'r1', match: { prefix: '/' } }] }],
    clusters: [],
  };
  const d = diffConfigs(before, after);
  t.same(d.listeners.changed, [{ name: 'a', fields: [{ field: 'address', before: ':1', after: ':2' }] }]);
  t.same(
    d.routes.changed.map((c) => [c.name, c.fields.map((f) => f.field)]),
    [
      ['a/r2', ['match.methods', 'position']],
      ['a/r1', ['position']],
    ],
    'a route moved up is a change: first match wins',
  );
  t.same(d.clusters.removed, ['c']);
  t.same(d.settings, [{ field: 'admin.address', before: '127.0.0.1:9901', after: '127.0.0.1:9902' }]);
});
