import t from 'tap';
import { backoffDelayMs, parseRetryAfterMs, retryAfterFromRawHeaders, retryDelayMs } from '../../src/policy/backoff';

const backoff = { baseMs: 25, maxMs: 250 };
/** Just below 1: the top of the jitter range. */
const TOP = 1 - Number.EPSILON;

t.test('retry N waits in [0, (2^N − 1) · base), capped at max', async (t) => {
  const ceilings = [25, 75, 175, 250, 250, 250];
  for (let retry = 1; retry <= ceilings.length; retry++) {
    const ceiling = ceilings[retry - 1];
    t.equal(backoffDelayMs(retry, backoff, () => 0), 0, `retry ${retry}: the lowest draw waits 0`);
    const highest = backoffDelayMs(retry, backoff, () => TOP);
    t.ok(highest < ceiling && highest >= ceiling - 1, `retry ${retry}: the highest draw waits ${highest}, just under ${ceiling}`);
    t.equal(backoffDelayMs(retry, backoff, () => 0.5), Math.floor(ceiling / 2), `retry ${retry}: a middle draw waits half the range`);
  }
});

t.test('every draw stays within its bounds (seeded random)', async (t) => {
  let seed = 42;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  let outside = 0;
  for (let retry = 1; retry <= 10; retry++) {
    const ceiling = Math.min((2 ** retry - 1) * backoff.baseMs, backoff.maxMs);
    for (let i = 0; i < 1000; i++) {
      const delay = backoffDelayMs(retry, backoff, random);
      if (delay < 0 || delay >= ceiling || !Number.isInteger(delay)) outside++;
    }
  }
  t.equal(outside, 0, '10 000 draws, none outside [0, ceiling)');
});

t.test('a zero base retries at once', async (t) => {
  t.equal(backoffDelayMs(3, { baseMs: 0, maxMs: 0 }, () => TOP), 0);
});

t.test('Retry-After replaces the backoff, capped at max', async (t) => {
  t.equal(retryDelayMs(1, backoff, 100, () => TOP), 100, 'Retry-After below max is waited exactly');
  t.equal(retryDelayMs(1, backoff, 5_000, () => 0), 250, 'a longer Retry-After is capped at max');
  t.equal(retryDelayMs(1, backoff, 0, () => TOP), 0, 'Retry-After: 0 retries at once');
  t.equal(retryDelayMs(2, backoff, undefined, () => 0.5), 37, 'without Retry-After, the jittered backoff');
});

t.test('Retry-After parsing: delay-seconds and HTTP-date against an injected clock', async (t) => {
  const now = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT');
  t.equal(parseRetryAfterMs('2', now), 2000);
  t.equal(parseRetryAfterMs(' 0 ', now), 0);
  t.equal(parseRetryAfterMs('Sun, 06 Nov 1994 08:49:40 GMT', now), 3000, 'a date 3 s ahead');
  t.equal(parseRetryAfterMs('Sun, 06 Nov 1994 08:49:00 GMT', now), 0, 'a date in the past means now');
  t.equal(parseRetryAfterMs('soon', now), undefined, 'garbage falls back to the backoff');
  t.equal(parseRetryAfterMs('-1', now), undefined, 'negative seconds are not delay-seconds');
  t.equal(parseRetryAfterMs('1.5', now), undefined, 'fractions are not delay-seconds');
});

t.test('Retry-After is read from raw header buffers, any case', async (t) => {
  const raw = [Buffer.from('Content-Type'), Buffer.from('text/plain'), Buffer.from('Retry-After'), Buffer.from('1')];
  t.equal(retryAfterFromRawHeaders(raw, 0), 1000);
  t.equal(retryAfterFromRawHeaders([Buffer.from('retry-after'), Buffer.from('3')], 0), 3000);
  t.equal(retryAfterFromRawHeaders([Buffer.from('x-retry-after'), Buffer.from('3')], 0), undefined);
});
