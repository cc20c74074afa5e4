import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { startSidecar } from '../helpers/sidecar';
import { metric, startScriptedUpstream, type ScriptedUpstream } from '../helpers/resilience';
import { closedPort, startUpstream, type Upstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

function mirrorConfig(appUrl: string, shadowUrl: string, mirror: string, routeExtra = ''): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: app
        mirror: ${mirror}
${routeExtra}
clusters:
  - { name: app, endpoints: [{ url: ${appUrl} }] }
  - { name: shadow, endpoints: [{ url: ${shadowUrl} }] }
`;
}

async function setup(t: Test, shadow: Upstream | string, mirror: string, routeExtra = '') {
  const app = await startScriptedUpstream((_n, _req, res, body) => res.end(`app:${body.length}`));
  const shadowUrl = typeof shadow === 'string' ? shadow : shadow.url;
  const proxy = await startSidecar(mirrorConfig(app.url, shadowUrl, mirror, routeExtra));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
    if (typeof shadow !== 'string') await shadow.close();
  });
  return { app, proxy };
}

const outcome = (adminUrl: string, value: string): Promise<number> => metric(adminUrl, 'sidecar_mirror_requests_total', { route: 'all', cluster: 'shadow', outcome: value });

t.test('the shadow sees copies with their bodies, marked x-sidecar-shadow; the app does not', async (t) => {
  const shadow: ScriptedUpstream = await startScriptedUpstream((_n, _req, res) => {
    res.statusCode = 500;
    res.end('the shadow answer is never seen');
  });
  const shadowHeaders: Array<string | string[] | undefined> = [];
  shadow.server.prependListener('request', (req) => shadowHeaders.push(req.headers['x-sidecar-shadow']));
  const { app, proxy } = await setup(t, shadow, '{ cluster: shadow }');
  const appShadowHeaders: Array<string | string[] | undefined> = [];
  app.server.prependListener('request', (req) => appShadowHeaders.push(req.headers['x-sidecar-shadow']));
  // A client cannot pass a real request off as a shadow copy.
  const get = await request(`${proxy.url()}/get?q=1`, { headers: { 'x-sidecar-shadow': 'true' } });
  t.equal(await get.body.text(), 'app:0');
  const post = await request(`${proxy.url()}/post`, { method: 'POST', body: 'hello shadow' });
  t.equal(await post.body.text(), 'app:12');
  // A chunked body (no content-length) is copied as it streams.
  const chunked = await request(`${proxy.url()}/chunked`, { method: 'POST', body: Readable.from(['a'.repeat(1000), 'b'.repeat(1000)]) });
  t.equal(await chunked.body.text(), 'app:2000');
  await waitUntil(() => shadow.seen.length === 3, 'the three copies');
  const byPath = new Map(shadow.seen.map((s) => [s.path, s]));
  t.equal(byPath.get('/get?q=1')?.method, 'GET');
  t.equal(byPath.get('/post')?.body.toString(), 'hello shadow');
  t.equal(byPath.get('/chunked')?.body.toString(), 'a'.repeat(1000) + 'b'.repeat(1000));
  t.same(shadowHeaders, ['true', 'true', 'true']);
  t.equal(app.seen.length, 3);
  t.same(appShadowHeaders, [undefined, undefined, undefined], 'the app never sees x-sidecar-shadow, even when the client sent it');
  await waitUntil(async () => (await outcome(proxy.adminUrl, '5xx')) === 3, 'the outcomes to be counted');
  t.ok(proxy.accessLog.every((l) => l.status === 200 && l.cluster === 'app'), 'the client saw the app only');
});

t.test('a hanging shadow changes nothing for the client and holds no more than its cap', async (t) => {
  const hanging: import('node:http').ServerResponse[] = [];
  const shadow = await startUpstream((req, res) => {
    req.resume();
    hanging.push(res); // never answered
  });
  const { proxy } = await setup(t, shadow, '{ cluster: shadow }', '        timeout: 3s');
  const latencies: number[] = [];
  for (let i = 0; i < 110; i++) {
    const started = performance.now();
    const res = await request(`${proxy.url()}/`);
    t.equal(res.statusCode, 200);
    await res.body.dump();
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)];
  t.ok(p99 < 500, `p99 ${p99.toFixed(1)}ms while every copy hangs (the route timeout is 3s)`);
  // 100 copies in flight at most: the rest are not sent.
  t.equal(await outcome(proxy.adminUrl, 'overflow'), 10, 'ten copies refused beyond 100 in flight');
  // The hanging copies end at the route timeout, counted as failed.
  await waitUntil(async () => (await outcome(proxy.adminUrl, 'failed')) === 100, 'the hanging copies to time out', 15_000);
});

t.test('an unreachable shadow, a body over the cap, percent 0', async (t) => {
  await t.test('unreachable: the client gets the app\'s answer, the copy is counted failed', async (t) => {
    const { proxy } = await setup(t, `http://127.0.0.1:${await closedPort()}`, '{ cluster: shadow }');
    const res = await request(`${proxy.url()}/`);
    t.equal(await res.body.text(), 'app:0');
    await waitUntil(async () => (await outcome(proxy.adminUrl, 'failed')) === 1, 'the failure to be counted');
  });
  await t.test('a body over maxBodyBytes: the app gets it whole, the shadow nothing', async (t) => {
    const shadow = await startScriptedUpstream((_n, _req, res) => res.end());
    const { proxy } = await setup(t, shadow, '{ cluster: shadow, maxBodyBytes: 1KiB }');
    const sized = await request(`${proxy.url()}/`, { method: 'POST', body: 'x'.repeat(5000) });
    t.equal(await sized.body.text(), 'app:5000');
    const chunked = await request(`${proxy.url()}/`, { method: 'POST', body: Readable.from(['x'.repeat(800), 'y'.repeat(800)]) });
    t.equal(await chunked.body.text(), 'app:1600');
    t.equal(await outcome(proxy.adminUrl, 'body_too_large'), 2);
    const small = await request(`${proxy.url()}/`, { method: 'POST', body: 'small' });
    t.equal(await small.body.text(), 'app:5');
    await waitUntil(() => shadow.seen.length === 1, 'the small copy');
    t.equal(shadow.seen[0].body.toString(), 'small');
  });
  await t.test('percent 0: nothing is copied', async (t) => {
    const shadow = await startScriptedUpstream((_n, _req, res) => res.end());
    const { proxy } = await setup(t, shadow, '{ cluster: shadow, percent: 0 }');
    for (let i = 0; i < 10; i++) await (await request(`${proxy.url()}/`)).body.dump();
    t.equal(shadow.seen.length, 0);
    t.equal(await outcome(proxy.adminUrl, 'ok'), 0);
  });
});

t.test('a client that leaves mid-body: no copy is sent, it is counted body_incomplete', async (t) => {
  const shadow = await startScriptedUpstream((_n, _req, res) => res.end());
  const { proxy } = await setup(t, shadow, '{ cluster: shadow }');
  const { connect } = await import('node:net');
  const socket = connect(proxy.port(), '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write('POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n' + 'z'.repeat(100));
  await waitUntil(async () => (await metric(proxy.adminUrl, 'sidecar_requests_in_flight', { cluster: 'app' })) === 1, 'the request to be in flight');
  socket.destroy();
  await waitUntil(async () => (await outcome(proxy.adminUrl, 'body_incomplete')) === 1, 'the unsent copy to be counted');
  t.equal(shadow.seen.length, 0, 'the shadow got nothing');
  // The route still mirrors the next request.
  await (await request(`${proxy.url()}/after`, { method: 'POST', body: 'ok' })).body.dump();
  await waitUntil(() => shadow.seen.length === 1, 'the next copy');
  t.equal(shadow.seen[0].path, '/after');
});
