import t from 'tap';
import { request } from 'undici';
import { startSidecar } from '../helpers/sidecar';
import { startUpstream, type Upstream } from '../helpers/upstream';

interface CountingApp extends Upstream {
  readonly count: () => number;
}

async function app(delayMs: number, name: string): Promise<CountingApp> {
  let n = 0;
  const upstream = await startUpstream((req, res) => {
    n++;
    req.resume();
    setTimeout(() => res.end(name), delayMs);
  });
  return { ...upstream, count: () => n };
}

async function load(url: string, count: number, parallel: number, headers: (i: number) => Record<string, string> = () => ({})): Promise<string[]> {
  const bodies: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const i = next++;
        const res = await request(url, { headers: headers(i) });
        bodies.push(await res.body.text());
      }
    }),
  );
  return bodies;
}

t.test('least-request sends fewer requests to a slow endpoint than round-robin does, in the same run', async (t) => {
  const apps = await Promise.all([app(300, 'slow'), app(0, 'fast'), app(300, 'slow'), app(0, 'fast')]);
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: rr, match: { prefix: /rr }, cluster: rr }
      - { name: lr, match: { prefix: /lr }, cluster: lr }
clusters:
  - { name: rr, endpoints: [{ url: ${apps[0].url} }, { url: ${apps[1].url} }] }
  - { name: lr, loadBalancer: least-request, endpoints: [{ url: ${apps[2].url} }, { url: ${apps[3].url} }] }
`);
  t.teardown(async () => {
    await proxy.close();
    await Promise.all(apps.map((a) => a.close()));
  });
  // The same load on both clusters at once.
  await Promise.all([load(`${proxy.url()}/rr`, 60, 6), load(`${proxy.url()}/lr`, 60, 6)]);
  const rrSlow = apps[0].count();
  const lrSlow = apps[2].count();
  t.equal(rrSlow + apps[1].count(), 60);
  t.equal(lrSlow + apps[3].count(), 60);
  t.equal(rrSlow, 30, 'round-robin: half, whatever the latency');
  // Six in flight, the slow one takes 300ms: least-request gives it a request only while it
  // holds no more than the fast one, about three per 300ms however long the run.
  t.ok(lrSlow < rrSlow * 0.8, `least-request sent ${lrSlow} to the slow endpoint, round-robin ${rrSlow}`);
});

t.test('hash on a header: one value stays on one endpoint; values spread over both', async (t) => {
  const apps = await Promise.all([app(0, 'a'), app(0, 'b')]);
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, loadBalancer: hash, hashOn: header:x-user, endpoints: [{ url: ${apps[0].url} }, { url: ${apps[1].url} }] }
`);
  t.teardown(async () => {
    await proxy.close();
    await Promise.all(apps.map((a) => a.close()));
  });
  const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
  const firstSeen = new Map<string, string>();
  const bodies = await load(`${proxy.url()}/`, 200, 4, (i) => ({ 'x-user': users[i % users.length] }));
  t.equal(bodies.length, 200);
  // Each user, asked again one at a time, lands where it did before.
  for (const user of users) {
    const answers = new Set<string>();
    for (let i = 0; i < 5; i++) answers.add(await (await request(`${proxy.url()}/`, { headers: { 'x-user': user } })).body.text());
    t.equal(answers.size, 1, `${user} stays on ${[...answers].join(',')}`);
    firstSeen.set(user, [...answers][0]);
  }
  const onA = [...firstSeen.values()].filter((v) => v === 'a').length;
  t.ok(onA > 0 && onA < users.length, `${onA} of ${users.length} users on a, the rest on b`);
});
