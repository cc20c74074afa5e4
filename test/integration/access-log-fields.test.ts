import t, { type Test } from 'tap';
import { request } from 'undici';
import { startOtlpReceiver, SPAN_KIND } from '../helpers/otlp-receiver';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { closedPort, startUpstream } from '../helpers/upstream';

/**
 * The access log's `bytes_out` counts the answers the sidecar writes itself, and
 * `accessLog.query` decides, the same way for the log, the spans and the recent errors
 * `sidecar status` shows, whether the query string (which can carry tokens) is kept.
 */

async function start(t: Test, accessLog: string, tracing = ''): Promise<RunningSidecar> {
  const app = await startUpstream((_req, res) => res.end('from the app'));
  const dead = await closedPort();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: ping, match: { path: /ping }, directResponse: { status: 200, body: "pong!" } }
      - { name: dead, match: { prefix: /dead }, cluster: dead }
      - { name: app, match: { prefix: /app }, cluster: app }
clusters:
  - { name: app, endpoints: [{ url: "${app.url}" }] }
  - { name: dead, endpoints: [{ url: "http://127.0.0.1:${dead}" }] }
${accessLog}
${tracing}
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  return proxy;
}

/** Sends a request; resolves with its status and the body's length once the body has been read. */
async function send(url: string, method = 'GET'): Promise<{ status: number; bodyBytes: number }> {
  const res = await request(url, { method });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, bodyBytes: body.length };
}

t.test('bytes_out counts the body of the answers the sidecar writes itself', async (t) => {
  const proxy = await start(t, '');
  const direct = await send(`${proxy.url()}/ping`);
  const head = await send(`${proxy.url()}/ping`, 'HEAD');
  const noRoute = await send(`${proxy.url()}/nowhere`);
  const refused = await send(`${proxy.url()}/dead`);
  const proxied = await send(`${proxy.url()}/app`);
  t.same([direct.status, head.status, noRoute.status, refused.status, proxied.status], [200, 200, 404, 503, 200]);
  t.same(
    proxy.accessLog.map((line) => [line.route ?? '-', line.method, line.bytes_out]),
    [
      ['ping', 'GET', direct.bodyBytes],
      ['ping', 'HEAD', 0],
      ['-', 'GET', noRoute.bodyBytes],
      ['dead', 'GET', refused.bodyBytes],
      ['app', 'GET', proxied.bodyBytes],
    ],
    'each line has the bytes the client received',
  );
  t.equal(direct.bodyBytes, 5, 'the direct response');
  t.ok(noRoute.bodyBytes > 50 && refused.bodyBytes > 50, 'the JSON error bodies');
});

t.test('accessLog.query defaults to drop: not in the log, the spans or the recent errors', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  const proxy = await start(t, '', `tracing: { endpoint: "${receiver.url}" }`);
  t.equal(proxy.sidecar.config.accessLog.query, 'drop');
  await send(`${proxy.url()}/app/x?token=s3cret`);
  await send(`${proxy.url()}/dead/y?token=s3cret`);
  t.same(proxy.accessLog.map((line) => line.path), ['/app/x', '/dead/y'], 'the access log has the path alone');
  t.same(proxy.sidecar.recentErrors.list().map((e) => e.path), ['/dead/y'], 'so do the recent errors');
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.filter((span) => span.kind === SPAN_KIND.CLIENT).length >= 2);
  t.same(JSON.stringify(spans).match(/s3cret/g), null, 'no span attribute has it');
});

t.test('accessLog.query: keep keeps it in the log, the spans (url.query, url.full) and the recent errors', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  const proxy = await start(t, 'accessLog: { query: keep }', `tracing: { endpoint: "${receiver.url}" }`);
  await send(`${proxy.url()}/app/x?token=s3cret`);
  await send(`${proxy.url()}/dead/y?token=s3cret`);
  t.same(proxy.accessLog.map((line) => line.path), ['/app/x?token=s3cret', '/dead/y?token=s3cret']);
  t.same(proxy.sidecar.recentErrors.list().map((e) => e.path), ['/dead/y?token=s3cret']);
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.filter((span) => span.kind === SPAN_KIND.CLIENT).length >= 2);
  const servers = spans.filter((s) => s.kind === SPAN_KIND.SERVER);
  t.same(servers.map((s) => [s.attributes['url.path'], s.attributes['url.query']]), [['/app/x', 'token=s3cret'], ['/dead/y', 'token=s3cret']]);
  const app = spans.find((s) => s.kind === SPAN_KIND.CLIENT && String(s.attributes['url.full']).includes('/app/'));
  t.match(String(app?.attributes['url.full']), /\/app\/x\?token=s3cret$/, 'the attempt\'s url.full');
});
