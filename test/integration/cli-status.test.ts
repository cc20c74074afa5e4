import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { request } from 'undici';
import { startSidecar } from '../helpers/sidecar';
import { closedPort, startUpstream } from '../helpers/upstream';

// The real CLI as users run it (`npm test` builds dist/ first). It runs as a child process
// while the sidecar it reads runs in this one, so it must not be spawned synchronously.
const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const WIDTH = 80;

function sidecarCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, SIDECAR_ADMIN_TOKEN: '' } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

async function startTraffic(t: Test, adminExtra = '') {
  const app = await startUpstream((req, res) => {
    res.statusCode = req.url?.startsWith('/fail') ? 500 : 200;
    res.end('ok');
  });
  const dead = await closedPort();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 ${adminExtra} }
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - { name: orders, match: { prefix: /orders }, cluster: orders }
      - { name: web, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }, { url: "http://127.0.0.1:${dead}", priority: 1 }]
  - name: orders
    endpoints: [{ url: "http://127.0.0.1:${dead}" }]
tracing: { exporter: otlp-http, endpoint: "http://127.0.0.1:${dead}", sampleRatio: 0.25 }
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  return { proxy, app, dead };
}

t.test('sidecar status prints every section, fitting 80 columns', async (t) => {
  const { proxy, app, dead } = await startTraffic(t);
  for (let i = 0; i < 12; i++) await (await request(`${proxy.url()}/page/${i}`)).body.text();
  await (await request(`${proxy.url()}/fail`)).body.text();
  const failed = await request(`${proxy.url()}/orders/42?token=secret`);
  await failed.body.text();
  const requestId = String(failed.headers['x-request-id']);

  const result = await sidecarCli('status', '--admin', proxy.adminUrl);
  t.equal(result.code, 0, 'exit 0 for a ready sidecar');
  const out = result.stdout;
  const lines = out.trimEnd().split('\n');
  const tooWide = lines.filter((line) => line.length > WIDTH);
  t.same(tooWide, [], `every line fits ${WIDTH} columns`);

  t.match(lines[0], new RegExp(`^sidecar ${proxy.adminUrl.replace(/\./g, '\\.')}  live, ready  pid ${process.pid}, up \\d+s$`), 'health, readiness and uptime');
  t.match(out, /^config +\S+inline\.yaml$/m, 'the config file');
  t.match(out, new RegExp(`sha256 ${proxy.sidecar.config.sha256.slice(0, 12)}`), 'the config hash');
  t.match(out, /^reloads +none since start$/m, 'no reload yet');
  t.match(out, /^tracing +otlp-http → http:\/\/127\.0\.0\.1:\d+\/v1\/traces/m, 'tracing');
  t.match(out, /sampler parentbased_traceidratio 0\.25; spans: \d+ exported, \d+ dropped/);

  t.match(out, /^LISTENERS\n +NAME +ADDRESS +PROTO +ROUTES +CONNECTIONS\n +ingress +127\.0\.0\.1:\d+ +http +2 +\d+$/m, 'listeners');
  t.match(out, /^CLUSTERS\n +NAME +BREAKER +IN FLIGHT +ATTEMPTS\/S +ERRORS +HEALTHY$/m, 'clusters');
  t.match(out, new RegExp(`^ +app +closed +0 +[\\d.]+ +7\\.7% +2/2$`, 'm'), 'the app cluster: 1 failed attempt in 13');
  t.match(out, new RegExp(`^ +${app.url.replace(/\./g, '\\.')}\\n +healthy  in flight 0  conns \\d+ busy/\\d+ idle  unanswered 0/13$`, 'm'), 'its endpoint');
  t.match(out, new RegExp(`^ +http://127\\.0\\.0\\.1:${dead} p1\\n +unknown  in flight 0 .*unanswered 0/0$`, 'm'), 'the failover endpoint shows its priority, and that nothing has tried it');
  t.match(out, /^ +orders +(closed|open) +0 +[\d.]+ +100\.0% +1\/1$/m, 'the orders cluster fails every attempt');

  t.match(out, /^BUSIEST ROUTES \(last \d+s\)\n +ROUTE +CLUSTER +REQ\/S +ERRORS +P99\n +ingress\/web +app +[\d.]+ +7\.7% +[\d.]+m?s\n +ingress\/orders +orders +[\d.]+ +100\.0% +[\d.]+m?s$/m, 'busiest routes first, with rate, error rate and p99');

  t.match(out, /^LAST ERRORS \(1 shown, 1 since start\)$/m, 'last errors');
  t.match(out, /^ +\d\d-\d\d \d\d:\d\d:\d\dZ  UPSTREAM_CONNECT_FAILURE 503  ingress\/orders → orders$/m);
  t.match(out, /^ +GET \/orders\/42$/m, 'the path, without its query string');
  t.notMatch(out, /secret/, 'the query string never shows');
  t.match(out, new RegExp(`request ${requestId}`), 'the request id to look for in the logs');

  t.match(out, /^recorder 14 recent requests kept, and 2 that ended in a 5xx or an error$/m, 'what the flight recorder keeps');
  t.match(out, new RegExp(`^ {9}${proxy.adminUrl.replace(/\./g, '\\.')}/requests\\?status=5xx$`, 'm'), 'where its 5xx are');
  const timeline = new RegExp(`^ {6}(${proxy.adminUrl.replace(/\./g, '\\.')}/requests/${requestId})$`, 'm').exec(out);
  t.ok(timeline !== null, "the failed request's timeline in the recorder");
  const answer = await request(timeline?.[1] ?? proxy.adminUrl);
  t.equal(answer.statusCode, 200, 'the URL shown answers');
  t.equal(((await answer.body.json()) as { requestId: string }).requestId, requestId);
});

t.test('sidecar status with the recorder off says so', async (t) => {
  const { proxy } = await startTraffic(t, ', recorder: false');
  await (await request(`${proxy.url()}/orders/1`)).body.text();
  const result = await sidecarCli('status', '--admin', proxy.adminUrl);
  t.equal(result.code, 0);
  t.match(result.stdout, /^recorder off \(admin\.recorder: false\)$/m);
  t.notMatch(result.stdout, /\/requests/, 'no link to the recorder');
  t.match(result.stdout, /UPSTREAM_CONNECT_FAILURE/, 'the last errors are still listed');
});

t.test('sidecar status --json is the same report for scripts', async (t) => {
  const { proxy } = await startTraffic(t);
  await (await request(`${proxy.url()}/orders/1`)).body.text();
  const result = await sidecarCli('status', '--json', '--admin', proxy.adminUrl.replace('http://', ''));
  t.equal(result.code, 0);
  const report = JSON.parse(result.stdout) as {
    live: boolean;
    ready: boolean;
    clusterDetails: boolean;
    clusters: Array<{ name: string; endpoints: Array<{ url: string; healthy: boolean }> }>;
    stats: { routes: Array<{ route: string; requests: number }>; recentErrors: Array<{ code: string }>; config: { sha256: string } };
  };
  t.equal(report.live, true);
  t.equal(report.ready, true);
    t.equal(report.clusterDetails, true, 'the report includes /clusters');
  t.same(report.clusters.map((c) => c.name).sort(), ['app', 'orders']);
  t.same(report.stats.routes.map((r) => [r.route, r.requests]), [['orders', 1]]);
  t.equal(report.stats.recentErrors[0].code, 'UPSTREAM_CONNECT_FAILURE');
  t.equal(report.stats.config.sha256, proxy.sidecar.config.sha256);
});

t.test('sidecar status against a token-protected admin listener, and against nothing', async (t) => {
  const { proxy } = await startTraffic(t, ', token: s3cret');
  const refused = await sidecarCli('status', '--admin', proxy.adminUrl);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /requires a token: pass --token/);
  const allowed = await sidecarCli('status', '--admin', proxy.adminUrl, '--token', 's3cret');
  t.equal(allowed.code, 0);
  t.match(allowed.stdout, /live, ready/);

  const port = await closedPort();
  const nothing = await sidecarCli('status', '--admin', `http://127.0.0.1:${port}`);
  t.equal(nothing.code, 1, 'exit 1 when the admin listener cannot be read');
  t.match(nothing.stderr, new RegExp(`cannot reach the admin listener at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  t.equal(nothing.stdout, '');
});
