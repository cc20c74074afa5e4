import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createAccessLog, formatAccessLine, isoTimestamp, lineWithin, PIPE_BUF_BYTES, type AccessLogEntry } from '../../src/telemetry/access-log';
import { LINE_WRITER_FLUSH_INTERVAL_MS, LINE_WRITER_MAX_BUFFERED_BYTES, LineWriter } from '../../src/telemetry/line-writer';
import { waitUntil } from '../helpers/wait';

t.test('each access log line is one JSON object with a time', async (t) => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'access-log-')), 'access.log');
  const log = createAccessLog({ path: file });
  const entry: AccessLogEntry = {
    method: 'GET', path: '/a"b', listener: 'main', route: 'all', cluster: 'app', status: 200,
    duration_ms: 1.5, upstream_ms: 1.2, bytes_in: 0, bytes_out: 2, request_id: 'r1', attempts: 1,
    error: undefined, flags: undefined, upstream: 'http://127.0.0.1:3000',
  };
  log.write(entry);
  log.write({ ...entry, request_id: 'r2', status: 503, error: 'UPSTREAM_CONNECT_FAILURE' });
  await log.flush();
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  t.equal(lines.length, 2);
  t.match(lines[0], { method: 'GET', path: '/a"b', status: 200, request_id: 'r1' });
  t.match(String(lines[0].time), /^\d{4}-\d\d-\d\dT/);
  t.notOk('error' in lines[0], 'absent fields are left out');
  t.equal(lines[1].error, 'UPSTREAM_CONNECT_FAILURE');
});

t.test('a line\'s time is Date#toISOString of the moment, at every millisecond and second boundary', async (t) => {
  const at = Date.UTC(2026, 11, 31, 23, 59, 59);
  const moments = [0, 1, 9, 10, 99, 100, 999, 1000, 1001, 59_999, 60_000].map((ms) => at + ms);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Date.UTC(9999, 11, 31) }), (ms) => {
      assert.equal(isoTimestamp(ms), new Date(ms).toISOString());
      // The same second again, then the next one: the cached part must follow.
      assert.equal(isoTimestamp(ms + 1), new Date(ms + 1).toISOString());
      assert.equal(isoTimestamp(ms + 1000), new Date(ms + 1000).toISOString());
    }),
    { numRuns: 2_000 },
  );
  for (const ms of moments) t.equal(isoTimestamp(ms), new Date(ms).toISOString(), new Date(ms).toISOString());
});

t.test('formatAccessLine writes what JSON.stringify of the entry writes, whatever the strings hold', async (t) => {
  const strings = fc.option(fc.string({ unit: 'binary' }), { nil: undefined });
  // Printable ASCII (with `"` and `\` among it) takes the verbatim path of per-request strings.
  const clientText = fc.oneof(fc.string(), fc.string({ unit: 'binary' }));
  const entries = fc.record({
    method: fc.string({ unit: 'binary' }),
    path: clientText,
    listener: fc.string(),
    route: strings,
    cluster: strings,
    status: fc.integer({ min: 0, max: 999 }),
    duration_ms: fc.double({ min: 0, max: 1e7, noNaN: true }),
    upstream_ms: fc.option(fc.double({ min: 0, max: 1e7, noNaN: true }), { nil: undefined }),
    bytes_in: fc.nat(),
    bytes_out: fc.nat(),
    request_id: clientText,
    attempts: fc.nat(10),
    error: strings,
    flags: strings,
    upstream: strings,
    upgrade: strings,
    trace_id: fc.option(clientText, { nil: undefined }),
    span_id: fc.option(clientText, { nil: undefined }),
  });
  // fast-check shrinks and reports the first entry that breaks an assertion.
  fc.assert(
    fc.property(entries, (entry: AccessLogEntry) => {
      const line = formatAccessLine(entry);
      assert.equal(line.indexOf('\n'), line.length - 1, 'one line, ending with a newline');
      const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
      assert.match(String(time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.deepStrictEqual(rest, JSON.parse(JSON.stringify(entry)));
    }),
    { numRuns: 500 },
  );
  t.pass('500 generated entries formatted as JSON.stringify formats them');
});

t.test('lines reach a pipe in order, also when its reader is slow; writing never blocks', async (t) => {
  // `cat` copies the pipe we write into to the pipe we read from; both are non-blocking.
  const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => void cat.kill());
  const fd = (cat.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  const writer = LineWriter.fromDescriptor(fd);
  cat.stdout.pause();
  const lines = 20_000;
  // 2 MiB into a 64 KiB pipe nobody reads yet: write() must return all the same.
  for (let i = 0; i < lines; i++) writer.write(`line ${i} ${'x'.repeat(100)}\n`);
  const received: Buffer[] = [];
  cat.stdout.on('data', (chunk: Buffer) => received.push(chunk));
  cat.stdout.resume();
  await writer.flush();
  cat.stdin.end();
  await once(cat.stdout, 'end');
  const got = Buffer.concat(received).toString().split('\n').filter(Boolean);
  t.equal(got.length, lines, 'every line arrived');
  t.ok(got.every((line, i) => line.startsWith(`line ${i} `)), 'in order');
  t.equal(writer.stats.dropped, 0);
});

t.test('a destination that does not keep up loses lines beyond the buffer, counted, and nothing else', async (t) => {
  const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => void cat.kill());
  const fd = (cat.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  const writer = LineWriter.fromDescriptor(fd);
  cat.stdout.pause();
  const line = `${'y'.repeat(1023)}\n`;
  const lines = Math.ceil(LINE_WRITER_MAX_BUFFERED_BYTES / line.length) + 1000;
  for (let i = 0; i < lines; i++) writer.write(line);
  t.ok(writer.stats.dropped >= 900, `dropped ${writer.stats.dropped} lines beyond the buffer`);
  let bytes = 0;
  cat.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
  cat.stdout.resume();
  await writer.flush();
  cat.stdin.end();
  await once(cat.stdout, 'end');
  t.equal(bytes, (lines - writer.stats.dropped) * line.length, 'every line kept arrived whole');
});

t.test('lines written while earlier batches are being written arrive whole and in order', async (t) => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'access-log-')), 'access.log');
  const writer = LineWriter.open(file);
  const expected: string[] = [];
  for (let round = 0; round < 40; round++) {
    // ~100 KiB a round: more than one batch, so writes are in flight while the next lines come.
    for (let i = 0; i < 500; i++) {
      const line = `${round}.${i} ${'é'.repeat(round % 3)}${'w'.repeat((round * 37 + i) % 300)}\n`;
      expected.push(line);
      writer.write(line);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await writer.close();
  t.equal(readFileSync(file, 'utf8'), expected.join(''), `${expected.length} lines, byte for byte`);
  t.equal(writer.stats.dropped, 0);
});

t.test('a quiet sidecar\'s lines leave within the flush interval, without a flush call', async (t) => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'access-log-')), 'access.log');
  const writer = LineWriter.open(file);
  writer.write('one\n');
  t.equal(readFileSync(file, 'utf8'), '', 'buffered at first');
  await waitUntil(() => readFileSync(file, 'utf8') !== '', 'the periodic flush to write the line', 10_000, LINE_WRITER_FLUSH_INTERVAL_MS / 5);
  t.equal(readFileSync(file, 'utf8'), 'one\n');
  await writer.close();
});

t.test('a shared access log writes whole lines of at most PIPE_BUF bytes each, in order', async (t) => {
  // Several processes appending to one pipe: a write above PIPE_BUF could interleave.
  const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => void cat.kill());
  const fd = (cat.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  const writer = LineWriter.fromDescriptor(fd, { maxWriteBytes: PIPE_BUF_BYTES });
  // Every write the writer makes, by size.
  const writeSizes: number[] = [];
  const realWrite = fs.write;
  (fs as { write: unknown }).write = (...args: unknown[]) => {
    writeSizes.push((args[1] as Buffer).length);
    return (realWrite as (...a: unknown[]) => void)(...args);
  };
  t.teardown(() => void ((fs as { write: unknown }).write = realWrite));
  const lines = 3_000;
  for (let i = 0; i < lines; i++) writer.write(`${i} ${'z'.repeat(i % 700)}\n`);
  const chunks: Buffer[] = [];
  cat.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  await writer.flush();
  cat.stdin.end();
  await once(cat.stdout, 'end');
  const got = Buffer.concat(chunks).toString().split('\n').filter(Boolean);
  t.equal(got.length, lines);
  t.ok(got.every((line, i) => line.startsWith(`${i} `)), 'in order');
  t.ok(writeSizes.length > 1, `${writeSizes.length} writes`);
  t.ok(writeSizes.every((size) => size <= PIPE_BUF_BYTES), `the largest write was ${Math.max(...writeSizes)} bytes`);
});

t.test('a line of a shared access log is at most PIPE_BUF bytes, so that writers never interleave', async (t) => {
  const entry = (path: string): AccessLogEntry => ({
    method: 'GET', path, listener: 'main', route: 'api', cluster: 'app', status: 200, duration_ms: 1.5,
    upstream_ms: 1.2, bytes_in: 0, bytes_out: 2, request_id: 'r'.repeat(128), attempts: 1,
    error: undefined, flags: undefined, upstream: 'http://127.0.0.1:3000',
  });
  const short = lineWithin(entry('/orders/42'), PIPE_BUF_BYTES);
  t.equal((JSON.parse(short) as { path: string }).path, '/orders/42', 'a short line as it is');
  t.notMatch(short, /path_truncated/);
  for (const path of [`/${'a'.repeat(20_000)}`, `/${'é'.repeat(9_000)}`, `/${'"'.repeat(9_000)}`, `/${'\u0001'.repeat(5_000)}`]) {
    const line = lineWithin(entry(path), PIPE_BUF_BYTES);
    t.ok(Buffer.byteLength(line) <= PIPE_BUF_BYTES, `${Buffer.byteLength(line)} bytes for a path of ${path.length} characters`);
    const parsed = JSON.parse(line) as { path: string; path_truncated: boolean; status: number };
    t.equal(parsed.path_truncated, true);
    t.ok(path.startsWith(parsed.path), 'the path is cut, not changed');
    t.equal(parsed.status, 200, 'the other fields are kept');
  }
});
