import t from 'tap';
import { request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import { startSidecar } from '../helpers/sidecar';
import { metric } from '../helpers/resilience';
import { startUpstream, type Upstream } from '../helpers/upstream';

function named(name: string): Promise<Upstream> {
  return startUpstream((req, res) => {
    req.resume();
    res.end(name);
  });
}

function splitConfig(v1: string, v2: string, routeExtra = '', otherRouteName = 'other'): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: ${otherRouteName}
        match: { prefix: /other }
        cluster: v1
      - name: canary
        match: { prefix: / }
        weightedClusters: [{ cluster: v1, weight: 90 }, { cluster: v2, weight: 10 }]
${routeExtra}
clusters:
  - { name: v1, endpoints: [{ url: ${v1} }] }
  - { name: v2, endpoints: [{ url: ${v2} }] }
`;
}

async function send(url: string, count: number, parallel: number, headers: (i: number) => Record<string, string> = () => ({})): Promise<string[]> {
  const bodies: string[] = new Array<string>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const i = next++;
        bodies[i] = await (await request(url, { headers: headers(i) })).body.text();
      }
    }),
  );
  return bodies;
}

t.test('90/10 over 2 000 requests: v2 gets 10% within binomial bounds', async (t) => {
  const [v1, v2] = await Promise.all([named('v1'), named('v2')]);
  const proxy = await startSidecar(splitConfig(v1.url, v2.url));
  t.teardown(async () => {
    await proxy.close();
    await Promise.all([v1.close(), v2.close()]);
  });
  const bodies = await send(`${proxy.url()}/`, 2000, 16);
  const toV2 = bodies.filter((b) => b === 'v2').length;
  t.equal(bodies.filter((b) => b === 'v1').length + toV2, 2000);
  // Binomial(n = 2000, p = 0.1): mean 200, standard deviation sqrt(2000 * 0.1 * 0.9) = 13.4.
  // ±5 standard deviations, [133, 267], fails by chance about once in 1.7 million runs.
  t.ok(toV2 >= 133 && toV2 <= 267, `${toV2} of 2000 to v2`);
  // The chosen cluster is the request's cluster in metrics and the access log.
  t.equal(await metric(proxy.adminUrl, 'sidecar_requests_total', { route: 'canary', cluster: 'v2', code: '200' }), toV2);
  t.equal(await metric(proxy.adminUrl, 'sidecar_requests_total', { route: 'canary', cluster: 'v1', code: '200' }), 2000 - toV2);
  t.equal(proxy.accessLog.filter((l) => l.cluster === 'v2').length, toV2);
});

t.test('sticky: hashOn keeps each user on one side, across a reload', async (t) => {
  const [v1, v2] = await Promise.all([named('v1'), named('v2')]);
  const sticky = 'hashOn: header:x-user';
  const proxy = await startSidecar(splitConfig(v1.url, v2.url, `        ${sticky}`));
  t.teardown(async () => {
    await proxy.close();
    await Promise.all([v1.close(), v2.close()]);
  });
  const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
  const sideOf = async (): Promise<Map<string, string>> => {
    const bodies = await send(`${proxy.url()}/`, users.length * 3, 8, (i) => ({ 'x-user': users[i % users.length] }));
    const sides = new Map<string, Set<string>>();
    bodies.forEach((body, i) => {
      const user = users[i % users.length];
      sides.set(user, (sides.get(user) ?? new Set()).add(body));
    });
    for (const [user, seen] of sides) if (seen.size !== 1) t.fail(`${user} was sent to ${[...seen].join(' and ')}`);
    return new Map([...sides].map(([user, seen]) => [user, [...seen][0]]));
  };
  const before = await sideOf();
  const onV2 = [...before.values()].filter((s) => s === 'v2').length;
  t.ok(onV2 > 0 && onV2 < 60, `${onV2} of 200 users on v2 (about 20 expected)`);
  // A reload that changes another route: new route objects, the same split.
  const loaded = parseConfigText(splitConfig(v1.url, v2.url, `        ${sticky}`, 'renamed'), '/tmp/split.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const applied = await proxy.sidecar.applyConfig(loaded.config);
  t.ok(applied.ok, 'reloaded');
  const after = await sideOf();
  t.same([...after], [...before], 'every user is where it was');
});
