import t from 'tap';
import { DEFAULT_RECORDER_SETTINGS } from '../../src/config/defaults';
import { FlightRecorder, type RecordedExchange } from '../../src/telemetry/flight-recorder';
import { exchangeFromText, exchangeToText } from '../../src/telemetry/recorded-exchange-text';

function exchange(requestId: string, over: Partial<RecordedExchange> = {}): RecordedExchange {
  return {
    requestId,
    atMs: 1_700_000_000_123.5,
    method: 'GET',
    path: '/p?q=1',
    host: 'Example.com:8080',
    listener: 'main',
    route: 'all',
    cluster: 'app',
    status: 200,
    error: null,
    flags: null,
    durationMs: 1.25,
    bytesIn: 3,
    bytesOut: 11,
    attempts: [{ attempt: 1, endpoint: 'http://127.0.0.1:1', startMs: 0.5, durationMs: 0.75, outcome: '200', retryReason: null, backoffMs: 0 }],
    decisions: [],
    requestHeaders: ['Host', 'Example.com:8080', 'X-Empty', ''],
    responseHeaders: ['content-type', 'text/plain'],
    ...over,
  };
}

t.test('an exchange reads back from its text as it was recorded', async (t) => {
  const full = exchange('id-1', {
    status: 503,
    error: 'UPSTREAM_TIMEOUT',
    flags: 'UT,URX',
    route: null,
    cluster: null,
    attempts: [
      { attempt: 1, endpoint: 'http://a:1', startMs: 0, durationMs: 10, outcome: 'timeout', retryReason: null, backoffMs: 0 },
      { attempt: 2, endpoint: 'http://b:2', startMs: 12.5, durationMs: null, outcome: null, retryReason: '5xx', backoffMs: 2.5 },
    ],
    decisions: ['retry: 1 retries; budget left 9', 'breaker: closed'],
    requestHeaders: ['x-utf', 'café ☕ 𝄞', 'x-empty', '', 'x-tab', 'a\tb'],
    responseHeaders: [],
  });
  const { atMs, status, durationMs, bytesIn, bytesOut } = full;
  t.same(exchangeFromText(exchangeToText(full), { atMs, status, durationMs, bytesIn, bytesOut }), full);
  const plain = exchange('id-2', { attempts: [], decisions: [], requestHeaders: [], responseHeaders: [] });
  t.same(exchangeFromText(exchangeToText(plain), { atMs, status, durationMs, bytesIn, bytesOut }), { ...plain, status }, 'empty lists');
});

t.test('a line feed in a configured name or a decision becomes a space and shifts no field', async (t) => {
  const odd = exchange('id-3', { route: 'two\nlines', decisions: ['auth: refused\nby the service'], attempts: [] });
  const back = exchangeFromText(exchangeToText(odd), { atMs: 1, status: 200, durationMs: 1, bytesIn: 0, bytesOut: 0 });
  t.equal(back.route, 'two lines');
  t.same(back.decisions, ['auth: refused by the service']);
  t.same(back.requestHeaders, odd.requestHeaders, 'the fields after them are in place');
});

/**
 * The rings against a model: whatever the sizes, the requests list holds the newest records
 * without a gap, at most `requests` of them and within its byte share, and each reads back
 * whole; failures stay in their own list.
 */
t.test('the rings keep the newest records without a gap, within their counts and bytes, through growth and wrap-around', async (t) => {
  let seed = 7;
  const random = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  for (let run = 0; run < 40; run++) {
    const requests = 1 + Math.floor(random() * 60);
    const failures = Math.floor(random() * 10);
    const maxBytes = 2_000 + Math.floor(random() * 200_000);
    const recorder = new FlightRecorder({ ...DEFAULT_RECORDER_SETTINGS, requests, failures, maxBytes });
    const written: RecordedExchange[] = [];
    for (let i = 0; i < 400; i++) {
      const failed = random() < 0.1;
      const entry = exchange(`r${run}-${i}`, {
        status: failed ? 502 : 200,
        requestHeaders: ['x-fill', 'é'.repeat(Math.floor(random() * random() * 3_000))],
      });
      written.push(entry);
      recorder.record(entry);
      if (recorder.sizeBytes > maxBytes) t.fail(`run ${run}: ${recorder.sizeBytes} bytes over ${maxBytes}`);
    }
    const kept = recorder.list();
    const byId = new Map(written.map((e) => [e.requestId, e]));
    for (const view of kept) {
      const original = byId.get(view.requestId)!;
      if (view.requestHeaders['x-fill'] !== original.requestHeaders[1] || view.status !== original.status) t.fail(`run ${run}: ${view.requestId} reads back changed`);
    }
    const keptIds = new Set(kept.map((e) => e.requestId));
    // The newest record kept, then every older one down to the oldest kept of the requests list.
    const newestFirst = written.slice().reverse();
    let gap = false;
    let run_ = 0;
    for (const entry of newestFirst) {
      if (keptIds.has(entry.requestId)) {
        if (gap && entry.status < 500) t.fail(`run ${run}: ${entry.requestId} kept after a newer one was dropped`);
        run_++;
      } else gap = true;
    }
    if (recorder.size.requests > requests || recorder.size.failures > failures) t.fail(`run ${run}: over the counts`);
    t.ok(keptIds.has(written.at(-1)!.requestId) || written.at(-1)!.requestHeaders[1].length * 6 > maxBytes, `run ${run}: the newest is kept (${run_} in all)`);
  }
});

t.test('a record larger than its list\'s share is not kept, and the others stay', async (t) => {
  const recorder = new FlightRecorder({ ...DEFAULT_RECORDER_SETTINGS, requests: 10, failures: 0, maxBytes: 8_192 });
  recorder.record(exchange('small'));
  recorder.record(exchange('huge', { requestHeaders: ['x', 'y'.repeat(10_000)] }));
  t.same(recorder.list().map((e) => e.requestId), ['small']);
  recorder.record(exchange('after'));
  t.same(recorder.list().map((e) => e.requestId), ['after', 'small']);
});
