import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createAccessLog, type AccessLogEntry } from '../../src/telemetry/access-log';

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
