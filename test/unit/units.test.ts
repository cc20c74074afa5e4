import t from 'tap';
import { parseDurationMs, parseSizeBytes } from '../../src/config/units';

t.test('durations', async (t) => {
  t.equal(parseDurationMs('250ms'), 250);
  t.equal(parseDurationMs('5s'), 5000);
  t.equal(parseDurationMs('1m'), 60_000);
  t.equal(parseDurationMs('1.5s'), 1500);
  t.equal(parseDurationMs('5 parsecs'), undefined);
  t.equal(parseDurationMs('-1s'), undefined);
});

t.test('sizes', async (t) => {
  t.equal(parseSizeBytes('64KiB'), 65536);
  t.equal(parseSizeBytes('10MiB'), 10 * 1024 * 1024);
  t.equal(parseSizeBytes('1kb'), 1000);
  t.equal(parseSizeBytes(512), 512);
  t.equal(parseSizeBytes('lots'), undefined);
});
