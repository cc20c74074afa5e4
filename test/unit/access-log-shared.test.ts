import t from 'tap';
import { lineWithin, PIPE_BUF_BYTES, type AccessLogEntry } from '../../src/telemetry/access-log';

function entry(path: string): AccessLogEntry {
  return {
    method: 'GET',
    path,
    listener: 'main',
    route: 'api',
    cluster: 'app',
    status: 200,
    duration_ms: 1.5,
    upstream_ms: 1.2,
    bytes_in: 0,
    bytes_out: 2,
    request_id: 'r'.repeat(128),
    attempts: 1,
    error: undefined,
    flags: undefined,
    upstream: 'http://127.0.0.1:3000',
  };
}

t.test('a line of a shared access log is at most PIPE_BUF bytes, so that writers never interleave', async (t) => {
  const short = lineWithin(entry('/orders/42'), PIPE_BUF_BYTES);
  t.ok(short.endsWith('\n'));
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
