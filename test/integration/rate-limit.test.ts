import t from 'tap';
import { request } from 'undici';
import { startSidecarFor } from '../helpers/sidecar';
import { metric, startScriptedUpstream } from '../helpers/resilience';

function okApp() {
  return startScriptedUpstream((_n, _req, res) => res.end('ok'));
}

/** Sends `count` GETs, `parallel` at a time; returns the status of each and the headers of the 429s. */
async function burst(url: string, count: number, parallel: number, headers: Record<string, string> = {}) {
  const statuses: number[] = [];
  const refusals: Array<Record<string, string | string[] | undefined>> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        next++;
        const res = await request(url, { headers });
        statuses.push(res.statusCode);
        if (res.statusCode === 429) refusals.push(res.headers);
        await res.body.dump();
      }
    }),
  );
  return { passed: statuses.filter((s) => s === 200).length, limited: statuses.filter((s) => s === 429).length, refusals };
}

t.test('a burst of 100 against requests 10 per 1s, burst 5: 15 pass, the rest get 429 with the headers', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'rateLimit: { requests: 10, per: 1s, burst: 5, key: route }');
  const started = performance.now();
  const { passed, limited, refusals } = await burst(`${proxy.url()}/x`, 100, 10);
  const elapsedS = (performance.now() - started) / 1000;
  // The bucket starts with 15 tokens and gains 10 per second while the burst runs.
  const refill = Math.floor(elapsedS * 10);
  t.ok(passed >= 15 && passed <= 15 + refill + 1, `${passed} passed in ${elapsedS.toFixed(2)}s: 15, plus at most ${refill} refilled (+1)`);
  t.equal(passed + limited, 100, 'every other request was limited');
  t.equal(app.seen.length, passed, 'the app saw only the requests that passed');
  const first = refusals[0];
  t.equal(first['x-sidecar-error'], 'RATE_LIMITED');
  t.equal(first['retry-after'], '1', 'Retry-After: one token comes within the second');
  t.equal(first['ratelimit-policy'], '"all";q=10;w=1');
  t.match(String(first['ratelimit']), /^"all";r=0;t=1$/);
  t.equal(await metric(proxy.adminUrl, 'sidecar_rate_limited_total', { listener: 'main', route: 'all' }), limited, 'counted');
  const lines = proxy.accessLog.filter((l) => l.status === 429);
  t.equal(lines.length, limited);
  t.equal(lines[0].flags, 'RL', 'flag RL in the access log');
  t.equal(lines[0].error, 'RATE_LIMITED');
  t.equal(lines[0].attempts, 0, 'no attempt was made');
  t.equal(await metric(proxy.adminUrl, 'sidecar_circuit_rejections_total', { cluster: 'app' }), 0, 'not counted as a circuit rejection');
});

t.test('with a slow refill the count is exact', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'rateLimit: { requests: 10, per: 1m, burst: 5, key: route }');
  const { passed, refusals } = await burst(`${proxy.url()}/`, 40, 8);
  t.equal(passed, 15);
  t.equal(refusals[0]['retry-after'], '6', 'a token every 6s');
  t.equal(refusals[0]['ratelimit-policy'], '"all";q=10;w=60');
});

t.test('key client: trusted X-Forwarded-For hops are separate clients, an untrusted peer cannot pick its key', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'rateLimit: { requests: 3, per: 1m }', '', 'trustedProxies: [127.0.0.1/32]');
  const a = await burst(`${proxy.url()}/`, 10, 2, { 'x-forwarded-for': '203.0.113.1' });
  const b = await burst(`${proxy.url()}/`, 10, 2, { 'x-forwarded-for': '203.0.113.2' });
  t.equal(a.passed, 3, 'client a: its 3');
  t.equal(b.passed, 3, 'client b: its own 3, untouched by a');
  // A client that writes its own X-Forwarded-For before the trusted hop: the right-most
  // untrusted entry (the one the trusted proxy appended) is the key.
  const forged = await burst(`${proxy.url()}/`, 5, 1, { 'x-forwarded-for': '198.51.100.9, 203.0.113.1' });
  t.equal(forged.passed, 0, 'a forged left-most entry does not give a fresh bucket');
});

t.test('key client without trusted proxies: X-Forwarded-For is ignored', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'rateLimit: { requests: 3, per: 1m }');
  let passed = 0;
  for (let i = 0; i < 10; i++) {
    const res = await request(`${proxy.url()}/`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } });
    await res.body.dump();
    if (res.statusCode === 200) passed++;
  }
  t.equal(passed, 3, 'one peer, one bucket, whatever it claims');
});

t.test('key header: one bucket per value, requests without it share one, and buckets stay within maxKeys', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'rateLimit: { requests: 2, per: 1m, key: header:x-api-key, maxKeys: 2 }');
  t.equal((await burst(`${proxy.url()}/`, 5, 1, { 'x-api-key': 'a' })).passed, 2);
  t.equal((await burst(`${proxy.url()}/`, 5, 1, { 'x-api-key': 'b' })).passed, 2);
  t.equal((await burst(`${proxy.url()}/`, 5, 1)).passed, 2, 'no header: one shared bucket');
  t.equal(await metric(proxy.adminUrl, 'sidecar_rate_limit_evictions_total', { route: 'all' }), 1, 'a third key evicted the least recent (a)');
  t.equal((await burst(`${proxy.url()}/`, 5, 1, { 'x-api-key': 'a' })).passed, 2, 'a forgotten key starts again with a full bucket');
  // A flood of distinct keys: memory stays bounded, every eviction counted.
  for (let i = 0; i < 50; i++) await (await request(`${proxy.url()}/`, { headers: { 'x-api-key': `k${i}` } })).body.dump();
  t.equal(await metric(proxy.adminUrl, 'sidecar_rate_limit_evictions_total', { route: 'all' }), 52);
});

t.test('a route without rateLimit is never limited', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app);
  t.equal((await burst(`${proxy.url()}/`, 50, 10)).passed, 50);
});
