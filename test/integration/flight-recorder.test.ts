import t from 'tap';
import { Pool, request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import { FlightRecorder, type RecordedExchange, type RequestRecord } from '../../src/telemetry/flight-recorder';
import { DEFAULT_RECORDER_SETTINGS } from '../../src/config/defaults';
import { simpleConfig, startSidecar } from '../helpers/sidecar';
import { startScriptedUpstream } from '../helpers/resilience';
import { closedPort, startUpstream } from '../helpers/upstream';
import { rawExchange } from '../helpers/raw';
import { waitUntil } from '../helpers/wait';

const FAST_BACKOFF = 'backoff: { base: 1ms, max: 5ms }';

async function recorded(adminUrl: string, id: string): Promise<RequestRecord | undefined> {
  const res = await request(`${adminUrl}/requests/${encodeURIComponent(id)}`);
  if (res.statusCode === 404) {
    await res.body.dump();
    return undefined;
  }
  return (await res.body.json()) as RequestRecord;
}

t.test('a request retried twice shows three attempts, each with its endpoint, outcome and retry reason', async (t) => {
  const app = await startScriptedUpstream((n, _req, res) => {
    res.statusCode = n <= 2 ? 503 : 200;
    res.end(n <= 2 ? 'busy' : 'ok');
  });
  const proxy = await startSidecar(simpleConfig(app.url, `retry: { attempts: 3, ${FAST_BACKOFF} }`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/thing?x=1`, { headers: { 'x-request-id': 'retried-twice' } });
  t.equal(res.statusCode, 200);
  await res.body.dump();
  // The exchange is recorded when the client's response closes.
  await waitUntil(async () => (await recorded(proxy.adminUrl, 'retried-twice')) !== undefined, 'the request to be recorded');
  const entry = (await recorded(proxy.adminUrl, 'retried-twice')) as RequestRecord;
  t.equal(entry.route, 'all');
  t.equal(entry.cluster, 'app');
  t.equal(entry.path, '/thing?x=1');
  t.equal(entry.status, 200);
  t.equal(entry.error, null);
  t.equal(entry.attempts.length, 3, 'three attempts');
  t.same(entry.attempts.map((a) => a.outcome), ['503', '503', '200']);
  t.same(entry.attempts.map((a) => a.retryReason), [null, '503', '503'], 'each retry says why');
  t.same(entry.attempts.map((a) => a.attempt), [1, 2, 3]);
  for (const attempt of entry.attempts) {
    t.equal(attempt.endpoint, app.url);
    t.type(attempt.durationMs, 'number');
  }
  t.equal(entry.attempts[0].backoffMs, 0);
  for (const retry of entry.attempts.slice(1)) t.ok(retry.backoffMs >= 0 && retry.backoffMs <= 5, `the backoff before the retry (${retry.backoffMs}ms) is within retry.backoff`);
  t.ok(entry.attempts[1].startMs >= entry.attempts[0].startMs + (entry.attempts[0].durationMs ?? 0), 'attempts in order on one timeline');
  t.match(entry.decisions.join('\n'), /retry: 2 retries; budget left \d+/);
});

t.test('a failure stays findable after 5 000 later successes; GET /requests filters by status and route', async (t) => {
  const app = await startScriptedUpstream((_n, req, res) => {
    res.statusCode = req.url === '/fail' ? 500 : 200;
    res.end('x');
  });
  const proxy = await startSidecar(simpleConfig(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const failed = await request(`${proxy.url()}/fail`, { headers: { 'x-request-id': 'the-failure' } });
  t.equal(failed.statusCode, 500);
  await failed.body.dump();
  const pool = new Pool(proxy.url(), { connections: 8 });
  t.teardown(() => pool.close());
  const SUCCESSES = 5000;
  let sent = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (sent < SUCCESSES) {
        sent++;
        const res = await pool.request({ path: '/ok', method: 'GET' });
        await res.body.dump();
      }
    }),
  );
  await waitUntil(async () => {
    const res = await request(`${proxy.adminUrl}/requests?limit=1`);
    const body = (await res.body.json()) as { kept: { requests: number } };
    return body.kept.requests === 1000;
  }, 'the last successes to be recorded');
  const entry = await recorded(proxy.adminUrl, 'the-failure');
  t.equal(entry?.status, 500, 'the failure is still there');
  const list = (await (await request(`${proxy.adminUrl}/requests?status=5xx&route=all`)).body.json()) as { kept: { requests: number; failures: number }; requests: RequestRecord[] };
  t.same(list.requests.map((r) => r.requestId), ['the-failure'], 'status=5xx lists the failure only');
  t.same(list.kept, { requests: 1000, failures: 1 }, 'the last 1 000 requests plus the failures');
  const ok = (await (await request(`${proxy.adminUrl}/requests?status=200&limit=3`)).body.json()) as { requests: RequestRecord[] };
  t.equal(ok.requests.length, 3);
  t.ok(ok.requests[0].at >= ok.requests[2].at, 'most recent first');
  const none = (await (await request(`${proxy.adminUrl}/requests?route=other`)).body.json()) as { requests: RequestRecord[] };
  t.same(none.requests, []);
  const bad = await request(`${proxy.adminUrl}/requests?status=5x`);
  t.equal(bad.statusCode, 400);
  await bad.body.dump();
  const unknown = await request(`${proxy.adminUrl}/requests/nope`);
  t.equal(unknown.statusCode, 404);
  await unknown.body.dump();
  const malformed = await request(`${proxy.adminUrl}/requests/%zz`);
  t.equal(malformed.statusCode, 400, 'a malformed id is a 400, not a 500');
  await malformed.body.dump();
  const nested = await request(`${proxy.adminUrl}/requests/a/b`);
  t.equal(nested.statusCode, 404, 'one segment only');
  await nested.body.dump();
});

t.test('headers are recorded with authorization, cookie, set-cookie and configured names redacted; bodies never', async (t) => {
  const app = await startScriptedUpstream((_n, _req, res) => {
    res.setHeader('set-cookie', ['session=s3cr3t-session; HttpOnly', 'other=2']);
    res.setHeader('x-app', 'visible');
    res.end('response-body-marker');
  });
  const proxy = await startSidecar(
    simpleConfig(app.url).replace('admin: { address: 127.0.0.1:0 }', 'admin: { address: 127.0.0.1:0, recorder: { redactHeaders: [X-Api-Key] } }'),
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/post`, {
    method: 'POST',
    body: 'request-body-marker',
    headers: { 'x-request-id': 'redact-me', authorization: 'Bearer tok3n', cookie: 'a=cookie-value', 'x-api-key': 'k3y', 'x-plain': 'shown' },
  });
  t.equal(await res.body.text(), 'response-body-marker');
  await waitUntil(async () => (await recorded(proxy.adminUrl, 'redact-me')) !== undefined, 'the request to be recorded');
  const entry = (await recorded(proxy.adminUrl, 'redact-me')) as RequestRecord;
  t.equal(entry.requestHeaders.authorization, '[redacted]');
  t.equal(entry.requestHeaders.cookie, '[redacted]');
  t.equal(entry.requestHeaders['x-api-key'], '[redacted]', 'a configured name, matched whatever its case');
  t.equal(entry.requestHeaders['x-plain'], 'shown');
  t.same(entry.responseHeaders['set-cookie'], ['[redacted]', '[redacted]']);
  t.equal(entry.responseHeaders['x-app'], 'visible');
  const text = JSON.stringify(entry);
  for (const secret of ['tok3n', 'cookie-value', 'k3y', 's3cr3t-session', 'request-body-marker', 'response-body-marker']) {
    t.notOk(text.includes(secret), `${secret} is nowhere in the record`);
  }
  const list = await (await request(`${proxy.adminUrl}/requests`)).body.text();
  t.notOk(list.includes('tok3n'), 'nor in the list');
});

t.test('a refused request is recorded with the decision; the recorder can be turned off', async (t) => {
  const dead = await closedPort();
  const proxy = await startSidecar(simpleConfig(`http://127.0.0.1:${dead}`, '', 'circuitBreaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeout: 1m }'));
  t.teardown(() => proxy.close());
  for (const id of ['first', 'second']) {
    const res = await request(`${proxy.url()}/`, { headers: { 'x-request-id': id } });
    await res.body.dump();
  }
  await waitUntil(async () => (await recorded(proxy.adminUrl, 'second')) !== undefined, 'the request to be recorded');
  const first = (await recorded(proxy.adminUrl, 'first')) as RequestRecord;
  t.equal(first.error, 'UPSTREAM_CONNECT_FAILURE');
  t.same(first.attempts.map((a) => a.outcome), ['connect-failure']);
  const second = (await recorded(proxy.adminUrl, 'second')) as RequestRecord;
  t.equal(second.error, 'CIRCUIT_OPEN');
  t.same(second.attempts, [], 'no attempt');
  t.match(second.decisions[0], /^breaker: open, refused/);

  const off = await startSidecar(simpleConfig(`http://127.0.0.1:${dead}`).replace('admin: { address: 127.0.0.1:0 }', 'admin: { address: 127.0.0.1:0, recorder: false }'));
  t.teardown(() => off.close());
  const res = await request(`${off.url()}/`, { headers: { 'x-request-id': 'not-kept' } });
  await res.body.dump();
  const answer = await request(`${off.adminUrl}/requests/not-kept`);
  t.equal(answer.statusCode, 404);
  t.match(await answer.body.text(), /RECORDER_OFF/);
  t.same(off.sidecar.recorder.size, { requests: 0, failures: 0 }, 'nothing was kept');
});

t.test('admin.recorder is validated with its line', async (t) => {
  const bad = parseConfigText(
    `admin:\n  address: 127.0.0.1:0\n  recorder: { requests: -1, maxBytes: lots, redactHeaders: ["bad name"], extra: 1 }\nlisteners: []\n`,
    '/x/sidecar.yaml',
  );
  t.equal(bad.ok, false);
  const messages = bad.ok ? '' : bad.errors.map((e) => `${e.path}@${e.line}: ${e.message}`).join('\n');
  t.match(messages, /admin\.recorder\.requests@3: /);
  t.match(messages, /admin\.recorder\.maxBytes@3: invalid size "lots"/);
  t.match(messages, /admin\.recorder\.redactHeaders\[0\]@3: invalid header name/);
  t.match(messages, /extra/);
  const on = parseConfigText(`admin: { recorder: true }\nlisteners: []\n`, '/x/sidecar.yaml');
  t.equal(on.ok, false, 'true is not a setting: false or the section');
});

t.test('memory stays within maxBytes: the kept records\' bytes, and the buffers holding them', async (t) => {
  const maxBytes = 256 * 1024;
  const recorder = new FlightRecorder({ ...DEFAULT_RECORDER_SETTINGS, requests: 100_000, failures: 100_000, maxBytes });
  const big = 'v'.repeat(2000);
  for (let i = 0; i < 20_000; i++) {
    const entry = record(`id-${i}`, i % 10 === 0 ? 503 : 200, { 'x-big': big, 'x-i': String(i) });
    recorder.record(entry);
    if (recorder.sizeBytes > maxBytes) {
      t.fail(`over the cap after ${i} entries`);
      break;
    }
  }
  t.ok(recorder.sizeBytes <= maxBytes, `${recorder.sizeBytes} bytes kept, cap ${maxBytes}`);
  const kept = recorder.list();
  t.ok(kept.length > 10 && kept.length < 200, `${kept.length} entries kept`);
  t.equal(kept[0].requestId, 'id-19999', 'the newest is kept');
  t.equal(kept[0].requestHeaders['x-i'], '19999', 'with its own headers');
  // The lists hold contiguous runs of the newest records: no entry is missing between kept ones.
  const successes = kept.filter((e) => e.status === 200).map((e) => Number(e.requestId.slice(3)));
  t.ok(successes.every((id, n) => n === 0 || (successes[n - 1] - id >= 1 && successes[n - 1] - id <= 2)), 'the successes kept are the newest ones, none skipped');
  // The same id recorded twice is shown once, its newest entry; both are held until they leave.
  const small = new FlightRecorder({ ...DEFAULT_RECORDER_SETTINGS, requests: 10, failures: 10 });
  small.record(record('same', 503, {}));
  small.record(record('other', 200, {}));
  small.record(record('same', 200, {}));
  t.same(small.size, { requests: 3, failures: 1 });
  t.equal(small.get('same')?.status, 200, 'the newest entry of the id');
  t.same(small.list().map((e) => `${e.requestId} ${e.status}`), ['same 200', 'other 200'], 'each id once, most recent first');
  t.same(small.list({ status: '5xx' }).map((e) => e.requestId), [], 'the older 503 of the id is not listed');
  small.configure({ ...DEFAULT_RECORDER_SETTINGS, requests: 0, failures: 0 });
  t.same(small.size, { requests: 0, failures: 0 });
  t.equal(small.sizeBytes, 0, 'nothing counted once nothing is kept');
});

function record(requestId: string, status: number, headers: Record<string, string>): RecordedExchange {
  return {
    requestId,
    atMs: Date.now(),
    method: 'GET',
    path: '/p',
    host: 'h',
    listener: 'main',
    route: 'all',
    cluster: 'app',
    status,
    error: null,
    flags: null,
    durationMs: 1,
    bytesIn: 0,
    bytesOut: 0,
    attempts: [{ attempt: 1, endpoint: 'http://127.0.0.1:1', startMs: 0, durationMs: 1, outcome: String(status), retryReason: null, backoffMs: 0 }],
    decisions: [],
    requestHeaders: Object.entries(headers).flat(),
    responseHeaders: [],
  };
}

t.test('the two rings: the newest requests and failures are kept, across wrap-around and a resize', async (t) => {
  const recorder = new FlightRecorder({ ...DEFAULT_RECORDER_SETTINGS, requests: 10, failures: 3 });
  for (let i = 0; i < 25; i++) recorder.record(record(`id-${i}`, i % 5 === 0 ? 503 : 200, {}));
  t.same(recorder.size, { requests: 10, failures: 3 });
  const ids = recorder.list().map((e) => e.requestId);
  // The last ten, and besides them the last three failures (10, 15, 20; 15 and 20 are among the last ten).
  t.same(ids, ['id-24', 'id-23', 'id-22', 'id-21', 'id-20', 'id-19', 'id-18', 'id-17', 'id-16', 'id-15', 'id-10'], 'newest first');
  t.equal(recorder.get('id-10')?.status, 503, 'an old failure is found by id');
  t.equal(recorder.get('id-5'), undefined, 'a fourth-newest failure is gone');
  t.equal(recorder.get('id-11'), undefined, 'an old success is gone');
  t.same(recorder.list({ limit: 2 }).map((e) => e.requestId), ['id-24', 'id-23']);

  recorder.configure({ ...DEFAULT_RECORDER_SETTINGS, requests: 4, failures: 1 });
  t.same(recorder.list().map((e) => e.requestId), ['id-24', 'id-23', 'id-22', 'id-21', 'id-20'], 'a smaller ring keeps the newest');
  recorder.configure({ ...DEFAULT_RECORDER_SETTINGS, requests: 6, failures: 2 });
  recorder.record(record('id-25', 503, {}));
  t.same(recorder.list().map((e) => e.requestId), ['id-25', 'id-24', 'id-23', 'id-22', 'id-21', 'id-20'], 'a larger ring fills again');

  // Each list keeps what fits in its share of maxBytes (in proportion to its length), the oldest leaving first.
  const oneEntry = new FlightRecorder({ ...DEFAULT_RECORDER_SETTINGS, requests: 100, failures: 100 });
  oneEntry.record(record('first', 200, { 'x-big': 'v'.repeat(1000) }));
  const entryBytes = oneEntry.sizeBytes;
  const cap = entryBytes * 20; // a share of ten entries' bytes for each list
  const capped = new FlightRecorder({ ...DEFAULT_RECORDER_SETTINGS, requests: 100, failures: 100, maxBytes: cap });
  capped.record(record('a', 503, { 'x-big': 'v'.repeat(1000) }));
  for (let i = 0; i < 30; i++) capped.record(record(`s${i}`, 200, { 'x-big': 'v'.repeat(1000) }));
  const kept = capped.list().map((e) => e.requestId);
  t.equal(kept.at(-1), 'a', 'the failure stays in its own list');
  const successes = kept.slice(0, -1);
  t.ok(successes.length >= 3 && successes.length <= 10, `${successes.length} requests fit in their share`);
  t.same(successes, successes.map((_, n) => `s${29 - n}`), 'the newest requests, none skipped');
  t.ok(capped.sizeBytes <= cap, `${capped.sizeBytes} bytes kept, cap ${cap}`);
  capped.record(record('e', 200, { 'x-big': 'v'.repeat(1000) }));
  t.same(capped.get('e')?.requestHeaders['x-big'], 'v'.repeat(1000), 'an entry reads back whole');
});

/**
 * The recorder keeps each request as lines of text: a client that gets a line feed into a
 * field it controls could shift the fields after it (a forged status or route in /requests).
 * Raw HTTP/1 bytes: bare-LF line endings, an obsolete folded header, a folded x-request-id,
 * bytes above 0x7f, a header as large as the parser takes. Whatever the parser accepts is
 * recorded with every field in place; whatever it refuses is not recorded as something else.
 */
t.test('raw request bytes cannot shift the recorded fields', async (t) => {
  const app = await startUpstream((_req, res) => {
    res.setHeader('x-app', 'yes');
    res.end('ok');
  });
  const proxy = await startSidecar(simpleConfig(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const port = proxy.port();
  const attacks: Record<string, string> = {
    'bare-lf': 'GET /bare HTTP/1.1\nHost: h\nX-Request-Id: bare-lf\nX-Evil: a\n\n',
    folded: 'GET /folded HTTP/1.1\r\nHost: h\r\nX-Request-Id: folded\r\nX-Evil: first\r\n 500\r\n\r\n',
    'folded-id': 'GET /folded-id HTTP/1.1\r\nHost: h\r\nX-Request-Id: folded-id\r\n 503\r\n\r\n',
    high: 'GET /high HTTP/1.1\r\nHost: h\r\nX-Request-Id: high\r\nX-Evil: caf\xe9 \xff\r\n\r\n',
    large: `GET /large HTTP/1.1\r\nHost: h\r\nX-Request-Id: large\r\nX-Evil: ${'v'.repeat(15_000)}\r\n\r\n`,
  };
  const answered = new Map<string, number>();
  for (const [name, bytes] of Object.entries(attacks)) {
    // One request and the connection closed after it, so that rawExchange returns.
    const closing = bytes.replace(/Host: h(\r?\n)/, 'Host: h$1Connection: close$1');
    const exchange = await rawExchange(port, closing, 3_000);
    answered.set(name, exchange.statuses[0] ?? 0);
  }
  const res = await request(`${proxy.adminUrl}/requests`);
  const listed = (await res.body.json()) as { requests: RequestRecord[] };
  for (const entry of listed.requests) {
    t.equal(entry.method, 'GET', `${entry.requestId}: method in place`);
    t.equal(entry.route, 'all', `${entry.requestId}: route in place`);
    t.equal(entry.cluster, 'app', `${entry.requestId}: cluster in place`);
    t.equal(entry.status, 200, `${entry.requestId}: the status the app gave, not one from a header`);
    t.same(entry.responseHeaders['x-app'], 'yes', `${entry.requestId}: response headers in place`);
    for (const [name, value] of Object.entries(entry.requestHeaders)) {
      for (const v of [value].flat()) t.notMatch(v, /\n/, `${entry.requestId}: ${name} holds no line feed`);
    }
  }
  // Each attack that the parser let through is listed under its own id and path.
  for (const [name, status] of answered) {
    if (status !== 200) continue;
    const entry = listed.requests.find((e) => e.path === `/${name}`);
    t.ok(entry, `${name}: answered 200 and recorded`);
  }
  const high = listed.requests.find((e) => e.path === '/high');
  if (high !== undefined) t.equal(high.requestHeaders['x-evil'], 'caf\xe9 \xff', 'bytes above 0x7f read back as the parser gave them');
  const large = listed.requests.find((e) => e.path === '/large');
  if (large !== undefined) t.equal((large.requestHeaders['x-evil'] as string).length, 15_000, 'a large header reads back whole');
  t.ok(answered.get('high') === 200 && answered.get('large') === 200, `plain requests are answered (${JSON.stringify([...answered])})`);
});
