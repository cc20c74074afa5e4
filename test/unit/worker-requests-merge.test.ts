import t from 'tap';
import type { RequestsPage } from '../../src/admin/requests-endpoint';
import type { RequestRecord } from '../../src/telemetry/flight-recorder';
import { mergeRequestPages, newestRecord } from '../../src/workers/requests-aggregation';

function record(requestId: string, at: string, status = 200): RequestRecord {
  return {
    requestId,
    at,
    method: 'GET',
    path: `/${requestId}`,
    host: '',
    listener: 'main',
    route: 'app',
    cluster: 'app',
    status,
    error: null,
    flags: null,
    durationMs: 1,
    bytesIn: 0,
    bytesOut: 2,
    attempts: [],
    decisions: [],
    requestHeaders: {},
    responseHeaders: {},
  };
}

function page(records: RequestRecord[], failures = 0): RequestsPage {
  return { kept: { requests: records.length, failures }, bytes: records.length * 1000, requests: records };
}

t.test('the lists of the workers merge newest first, each entry naming its worker', async (t) => {
  const one = page([record('a3', '2026-05-01T10:00:03.000Z'), record('a1', '2026-05-01T10:00:01.000Z')], 1);
  const two = page([record('b4', '2026-05-01T10:00:04.000Z'), record('b2', '2026-05-01T10:00:02.000Z')]);
  const merged = mergeRequestPages(
    [
      { worker: 1, pid: 11, page: one },
      { worker: 2, pid: 12, page: two },
    ],
    undefined,
  );
  t.same(
    merged.requests.map((r) => [r.requestId, r.worker]),
    [
      ['b4', 2],
      ['a3', 1],
      ['b2', 2],
      ['a1', 1],
    ],
  );
  t.same(merged.kept, { requests: 4, failures: 1 }, 'what every worker keeps, summed');
  t.equal(merged.bytes, 4000);
  t.notOk('unanswered' in merged, 'no unanswered list when every worker answered');
});

t.test('the limit applies to the merged list; a worker keeps its own order when times tie', async (t) => {
  const sameMs = '2026-05-01T10:00:05.000Z';
  const one = page([record('second', sameMs), record('first', sameMs)]);
  const two = page([record('old', '2026-05-01T09:00:00.000Z')]);
  const merged = mergeRequestPages(
    [
      { worker: 1, pid: 11, page: one },
      { worker: 2, pid: 12, page: two },
    ],
    2,
  );
  t.same(
    merged.requests.map((r) => r.requestId),
    ['second', 'first'],
  );
  t.equal(mergeRequestPages([{ worker: 1, pid: 11, page: one }], 5).requests.length, 2, 'a limit past the end lists everything');
});

t.test('a worker that did not answer is named; the others are listed', async (t) => {
  const merged = mergeRequestPages(
    [
      { worker: 1, pid: 11, page: page([record('a', '2026-05-01T10:00:00.000Z')]) },
      { worker: 2, pid: null, page: undefined, error: 'worker 2 is down (restarting)' },
    ],
    100,
  );
  t.same(
    merged.requests.map((r) => r.requestId),
    ['a'],
  );
  t.same(merged.unanswered, [{ worker: 2, pid: null, error: 'worker 2 is down (restarting)' }]);
  t.same(mergeRequestPages([], 100), { kept: { requests: 0, failures: 0 }, bytes: 0, requests: [] }, 'no worker: an empty list');
});

t.test('one request id: the most recent record of any worker', async (t) => {
  t.equal(newestRecord([{ worker: 1, record: null }, { worker: 2, record: null }]), undefined, 'no worker has it');
  const found = newestRecord([
    { worker: 1, record: record('same', '2026-05-01T10:00:00.000Z', 500) },
    { worker: 2, record: record('same', '2026-05-01T10:00:09.000Z', 200) },
    { worker: 3, record: null },
  ]);
  t.equal(found?.worker, 2);
  t.equal(found?.status, 200);
});
