import t from 'tap';
import { HashRing, pickLeastRequest, pickRandom } from '../../src/upstream/load-balancer';

interface E {
  name: string;
  healthy: boolean;
  inFlight: number;
}
const endpoints = (n: number): E[] => Array.from({ length: n }, (_, i) => ({ name: `http://10.0.0.${i}:80`, healthy: true, inFlight: 0 }));

t.test('least-request: fewest in flight, ties from the start index, avoid only as a last resort', async (t) => {
  const [a, b, c] = endpoints(3);
  a.inFlight = 3;
  b.inFlight = 1;
  c.inFlight = 1;
  t.equal(pickLeastRequest([a, b, c], 0, undefined), b);
  t.equal(pickLeastRequest([a, b, c], 2, undefined), c, 'the tie goes to the first from start');
  t.equal(pickLeastRequest([a, b, c], 0, b), c);
  b.healthy = false;
  c.healthy = false;
  t.equal(pickLeastRequest([a, b, c], 0, a), a, 'the only healthy one, even avoided');
  a.healthy = false;
  t.equal(pickLeastRequest([a, b, c], 0, undefined), undefined);
});

t.test('random: only healthy endpoints, each drawn', async (t) => {
  const [a, b, c] = endpoints(3);
  b.healthy = false;
  t.equal(pickRandom([a, b, c], () => 0, undefined), a);
  t.equal(pickRandom([a, b, c], () => 0.99, undefined), c);
  t.equal(pickRandom([a, b, c], () => 0.99, c), a);
  a.healthy = false;
  t.equal(pickRandom([a, b, c], () => 0.5, c), c);
});

t.test('hash: a key keeps its endpoint; when one leaves, only its keys move; the spread is even', async (t) => {
  const all = endpoints(4);
  const ring = new HashRing(all, (e) => e.name);
  const keys = Array.from({ length: 4000 }, (_, i) => `user-${i}`);
  const before = keys.map((k) => ring.pick(k, undefined));
  t.same(keys.map((k) => ring.pick(k, undefined)), before, 'stable');
  const counts = all.map((e) => before.filter((p) => p === e).length);
  // 160 points each: every endpoint within ±30% of its 1000 keys.
  t.ok(counts.every((n) => n > 700 && n < 1300), `spread ${JSON.stringify(counts)}`);
  all[1].healthy = false;
  const after = keys.map((k) => ring.pick(k, undefined));
  let moved = 0;
  for (let i = 0; i < keys.length; i++) {
    if (before[i] === all[1]) t.not(after[i], all[1]);
    else if (after[i] !== before[i]) moved++;
  }
  t.equal(moved, 0, 'no key of the other endpoints moved');
  // A rebuilt ring without the endpoint (a reload that removed it) agrees.
  const rebuilt = new HashRing([all[0], all[2], all[3]], (e) => e.name);
  t.same(keys.map((k) => rebuilt.pick(k, undefined)), after);
  t.not(ring.pick('user-1', before[1]), before[1], 'a retry avoids the last endpoint');
});
