import t from 'tap';
import { KeyedBuckets, msUntilToken, newBucket, remainingTokens, takeToken } from '../../src/policy/token-bucket';
import { decideFault, headerPercent } from '../../src/policy/fault';
import { pickWeighted } from '../../src/policy/weighted-split';
import { clientAddress } from '../../src/proxy/client-address';
import { parseCidr } from '../../src/config/cidr';

const shape = { capacity: 3, refillPerMs: 1 / 100 }; // 3 at once, one more every 100ms

t.test('a bucket starts full, empties, and refills at its rate up to its capacity', async (t) => {
  const bucket = newBucket(shape, 0);
  t.same([takeToken(bucket, shape, 0), takeToken(bucket, shape, 0), takeToken(bucket, shape, 0)], [true, true, true]);
  t.equal(remainingTokens(bucket), 0);
  t.notOk(takeToken(bucket, shape, 50), 'half a token is not a token');
  t.equal(msUntilToken(bucket, shape), 50);
  t.ok(takeToken(bucket, shape, 100));
  t.notOk(takeToken(bucket, shape, 100));
  t.ok(takeToken(bucket, shape, 10_000), 'a long pause');
  t.equal(remainingTokens(bucket), 2, 'refills to the capacity, not beyond');
});

t.test('keyed buckets forget the least recently used key beyond maxKeys', async (t) => {
  const buckets = new KeyedBuckets(shape, 2);
  const a = buckets.bucketFor('a', 0);
  takeToken(a, shape, 0);
  buckets.bucketFor('b', 0);
  t.equal(buckets.bucketFor('a', 0), a, 'a is kept and now the most recent');
  buckets.bucketFor('c', 0);
  t.equal(buckets.evictions, 1);
  t.equal(buckets.size, 2);
  t.equal(buckets.bucketFor('a', 0), a, 'b was the least recent, not a');
  t.equal(buckets.evictions, 1);
  t.not(buckets.bucketFor('b', 0), undefined);
  t.equal(buckets.evictions, 2);
});

t.test('fault decisions', async (t) => {
  const policy = { delay: { durationMs: 10, percent: 50 }, abort: { status: 503, percent: 10 }, header: undefined };
  t.equal(decideFault(policy, true, undefined, () => 0.05), 'delay-then-abort');
  t.equal(decideFault(policy, true, undefined, () => 0.3), 'delay');
  t.equal(decideFault(policy, true, undefined, () => 0.99), 'none');
  t.equal(decideFault(policy, false, undefined, () => 0), 'none', 'not eligible');
  t.equal(decideFault(policy, true, 100, () => 0.99), 'delay-then-abort', 'the header overrides');
  t.equal(decideFault(policy, true, 0, () => 0), 'none');
  t.equal(decideFault({ ...policy, delay: undefined }, true, undefined, () => 0), 'abort');
  t.same([headerPercent('100'), headerPercent('0'), headerPercent('true'), headerPercent('150'), headerPercent(''), headerPercent(['5'])], [100, 0, undefined, undefined, undefined, undefined]);
});

t.test('the client address behind trusted proxies', async (t) => {
  const trusted = ['10.0.0.0/8'].map((text) => {
    const parsed = parseCidr(text);
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.block;
  });
  t.equal(clientAddress({ address: '192.0.2.1', trusted: false }, '203.0.113.5', trusted), '192.0.2.1', 'untrusted peer');
  t.equal(clientAddress({ address: '10.0.0.1', trusted: true }, undefined, trusted), '10.0.0.1');
  t.equal(clientAddress({ address: '10.0.0.1', trusted: true }, 'forged, 203.0.113.5, 10.1.1.1', trusted), '203.0.113.5');
  t.equal(clientAddress({ address: '10.0.0.1', trusted: true }, ['10.2.2.2', '10.3.3.3'], trusted), '10.2.2.2', 'all trusted: the left-most');
  t.equal(clientAddress({ address: '10.0.0.1', trusted: true }, ' , ', trusted), '10.0.0.1', 'empty entries');
});

t.test('weighted split: the point picks by cumulative weight', async (t) => {
  const split = { clusters: [{ cluster: 'a', weight: 9 }, { cluster: 'zero', weight: 0 }, { cluster: 'b', weight: 1 }], totalWeight: 10, hashOn: undefined };
  t.equal(pickWeighted(split, 0), 'a');
  t.equal(pickWeighted(split, 0.899), 'a');
  t.equal(pickWeighted(split, 0.9), 'b', 'a weight of 0 gets nothing');
  t.equal(pickWeighted(split, 0.9999999999), 'b');
});
