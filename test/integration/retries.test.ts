import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { closedPort } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';
import { cluster, metric, startScriptedUpstream } from '../helpers/resilience';
import { waitUntil } from '../helpers/wait';

/** Fails the first `failures` requests with `status`, then answers 200 "ok". */
function failFirst(failures: number, status = 503) {
  return (n: number, _req: unknown, res: import('node:http').ServerResponse): void => {
    res.statusCode = n <= failures ? status : 200;
    res.end(n <= failures ? `failure ${n}` : 'ok');
  };
}

const FAST_BACKOFF = 'backoff: { base: 1ms, max: 5ms }';

t.test('an app failing the first N tries answers 200; the app saw x-sidecar-attempt 1..N+1', async (t) => {
  const app = await startScriptedUpstream(failFirst(2));
  const proxy = await startSidecar(simpleConfig(app.url, `retry: { attempts: 3, ${FAST_BACKOFF} }`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/thing`);
  t.equal(res.statusCode, 200);
  t.equal(await res.body.text(), 'ok', 'the client got the successful answer, nothing of the failed ones');
  t.same(app.seen.map((r) => r.attempt), ['1', '2', '3']);
  t.equal(proxy.accessLog.at(-1)?.attempts, 3, 'the access log counts the attempts');
  t.equal(await metric(proxy.adminUrl, 'sidecar_retries_total', { cluster: 'app', reason: '503' }), 2);
});

t.test('a PUT body is replayed byte for byte on every attempt', async (t) => {
  const app = await startScriptedUpstream(failFirst(2, 502));
  const proxy = await startSidecar(simpleConfig(app.url, `retry: { attempts: 2, ${FAST_BACKOFF} }`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const payload = randomBytes(40 * 1024);
  const res = await request(`${proxy.url()}/doc`, { method: 'PUT', body: Readable.from(chunks(payload, 4096)) });
  t.equal(res.statusCode, 200);
  await res.body.dump();
  const digest = sha256(payload);
  t.same(app.seen.map((r) => sha256(r.body)), [digest, digest, digest], 'three attempts, each with the whole body');
  t.equal(proxy.accessLog.at(-1)?.bytes_in, payload.length, 'the access log counts the client body once');
});

t.test('a POST failing the same way is not retried; with idempotencyKey and the header it is', async (t) => {
  let failures = 0;
  // Each test request starts a fresh run of two failures.
  const app = await startScriptedUpstream((_n, _req, res) => {
    failures++;
    res.statusCode = failures % 3 === 0 ? 200 : 503;
    res.end(res.statusCode === 200 ? 'ok' : 'busy');
  });
  const plain = await startSidecar(simpleConfig(app.url, `retry: { attempts: 2, ${FAST_BACKOFF} }`));
  const keyed = await startSidecar(simpleConfig(app.url, `retry: { attempts: 2, idempotencyKey: true, ${FAST_BACKOFF} }`));
  t.teardown(async () => {
    await plain.close();
    await keyed.close();
    await app.close();
  });

  const refused = await request(`${plain.url()}/orders`, { method: 'POST', body: 'order-1' });
  t.equal(refused.statusCode, 503, "the app's own 503 is relayed");
  t.equal(await refused.body.text(), 'busy');
  t.same(app.seen.map((r) => r.attempt), ['1'], 'a POST is tried once');
  t.equal(await metric(plain.adminUrl, 'sidecar_retries_skipped_total', { cluster: 'app', reason: 'method' }), 1, 'the skipped retry is counted');

  failures = 0;
  app.seen.length = 0;
  const withoutHeader = await request(`${keyed.url()}/orders`, { method: 'POST', body: 'order-2' });
  t.equal(withoutHeader.statusCode, 503, 'idempotencyKey alone is not enough: the request must carry the header');
  await withoutHeader.body.dump();
  t.equal(app.seen.length, 1);

  failures = 0;
  app.seen.length = 0;
  const res = await request(`${keyed.url()}/orders`, { method: 'POST', body: 'order-3', headers: { 'idempotency-key': 'k-123' } });
  t.equal(res.statusCode, 200);
  t.equal(await res.body.text(), 'ok');
  t.same(app.seen.map((r) => [r.attempt, r.idempotencyKey, r.body.toString()]), [
    ['1', 'k-123', 'order-3'],
    ['2', 'k-123', 'order-3'],
    ['3', 'k-123', 'order-3'],
  ]);
});

t.test('perTryTimeout triggers a retry; the stuck attempt is abandoned', async (t) => {
  let stuckClosed: (() => void) | undefined;
  const closed = new Promise<void>((resolve) => (stuckClosed = resolve));
  const app = await startScriptedUpstream((n, _req, res) => {
    if (n === 1) {
      res.on('close', () => stuckClosed?.());
      return; // never answers
    }
    res.end('second try');
  });
  const proxy = await startSidecar(simpleConfig(app.url, `timeout: 10s\nretry: { attempts: 2, perTryTimeout: 200ms, ${FAST_BACKOFF} }`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/slow`);
  t.equal(res.statusCode, 200);
  t.equal(await res.body.text(), 'second try');
  t.same(app.seen.map((r) => r.attempt), ['1', '2']);
  await closed;
  t.pass('the sidecar closed the stuck attempt');
  t.equal(await metric(proxy.adminUrl, 'sidecar_retries_total', { cluster: 'app', reason: 'timeout' }), 1);
});

t.test('the route timeout bounds the whole exchange, retries and backoffs included', async (t) => {
  const app = await startScriptedUpstream(() => {
    // never answers
  });
  const proxy = await startSidecar(simpleConfig(app.url, 'timeout: 700ms\nretry: { attempts: 10, perTryTimeout: 200ms, backoff: { base: 10ms, max: 20ms } }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const started = performance.now();
  const res = await request(`${proxy.url()}/`);
  const elapsed = performance.now() - started;
  t.equal(res.statusCode, 504);
  t.equal(res.headers['x-sidecar-error'], 'UPSTREAM_TIMEOUT');
  await res.body.dump();
  t.ok(elapsed >= 690, `not before the route timeout (${elapsed.toFixed(0)} ms)`);
  t.ok(elapsed < 5_000, `not much after it either, although 10 retries of 200 ms were allowed (${elapsed.toFixed(0)} ms)`);
  t.ok(app.seen.length >= 2 && app.seen.length <= 4, `per-try timeouts led to retries inside the deadline (${app.seen.length} tries)`);
});

t.test('a body larger than maxBodyBytes streams through once and is not retried (counted)', async (t) => {
  const app = await startScriptedUpstream(failFirst(100));
  const proxy = await startSidecar(simpleConfig(app.url, `retry: { attempts: 2, maxBodyBytes: 1KiB, ${FAST_BACKOFF} }`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const payload = randomBytes(100 * 1024);
  for (const framing of ['content-length', 'chunked'] as const) {
    app.seen.length = 0;
    const res = await request(`${proxy.url()}/upload`, {
      method: 'PUT',
      body: framing === 'chunked' ? Readable.from(chunks(payload, 8 * 1024)) : payload,
    });
    t.equal(res.statusCode, 503, `${framing}: the app's failure is relayed`);
    await res.body.dump();
    t.equal(app.seen.length, 1, `${framing}: one attempt`);
    t.equal(sha256(app.seen[0].body), sha256(payload), `${framing}: the app got the whole body`);
  }
  t.equal(await metric(proxy.adminUrl, 'sidecar_retries_skipped_total', { cluster: 'app', reason: 'body_too_large' }), 2);
});

t.test('a retry prefers another endpoint', async (t) => {
  const sick = await startScriptedUpstream((_n, _req, res) => {
    res.statusCode = 503;
    res.end('sick');
  });
  const well = await startScriptedUpstream((_n, _req, res) => res.end('well'));
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: app
        retry: { attempts: 1, ${FAST_BACKOFF} }
clusters:
  - name: app
    endpoints: [{ url: ${sick.url} }, { url: ${well.url} }]
    retryBudget: { minPerSecond: 100 }
`);
  t.teardown(async () => {
    await proxy.close();
    await sick.close();
    await well.close();
  });
  for (let i = 0; i < 6; i++) {
    const res = await request(`${proxy.url()}/`);
    t.equal(await res.body.text(), 'well', `request ${i + 1} answered by the healthy endpoint`);
  }
  t.ok(sick.seen.length >= 3, 'round robin sent first tries to the sick endpoint');
  t.ok(sick.seen.every((r) => r.attempt === '1'), 'no retry went back to the endpoint that just failed');
});

t.test('a refused connection is retried on another endpoint, even for a POST (it was never sent)', async (t) => {
  const port = await closedPort();
  const app = await startScriptedUpstream((_n, _req, res, body) => res.end(`got ${body.toString()}`));
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: app
        retry: { attempts: 1, ${FAST_BACKOFF} }
clusters:
  - name: app
    endpoints: [{ url: "http://127.0.0.1:${port}" }, { url: ${app.url} }]
    retryBudget: { minPerSecond: 100 }
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  for (let i = 0; i < 4; i++) {
    const res = await request(`${proxy.url()}/`, { method: 'POST', body: `p${i}` });
    t.equal(res.statusCode, 200);
    t.equal(await res.body.text(), `got p${i}`);
  }
  t.equal(app.seen.length, 4, 'each POST reached the app exactly once');
  t.ok(await metric(proxy.adminUrl, 'sidecar_retries_total', { cluster: 'app', reason: 'connect-failure' }) >= 1);
});

t.test('Retry-After is honoured, capped by max; one longer than the time left is passed to the client', async (t) => {
  let retryAfter = '1';
  const app = await startScriptedUpstream((n, _req, res) => {
    if (n % 2 === 1) {
      res.writeHead(503, { 'retry-after': retryAfter });
      res.end('later');
    } else res.end('ok');
  });
  const honoured = await startSidecar(simpleConfig(app.url, 'timeout: 20s\nretry: { attempts: 1, backoff: { base: 1ms, max: 3s } }'));
  const capped = await startSidecar(simpleConfig(app.url, 'timeout: 20s\nretry: { attempts: 1, backoff: { base: 1ms, max: 50ms } }'));
  const short = await startSidecar(simpleConfig(app.url, 'timeout: 500ms\nretry: { attempts: 1, backoff: { base: 1ms, max: 10s } }'));
  t.teardown(async () => {
    await honoured.close();
    await capped.close();
    await short.close();
    await app.close();
  });

  let started = performance.now();
  let res = await request(`${honoured.url()}/`);
  t.equal(await res.body.text(), 'ok');
  const waited = performance.now() - started;
  t.ok(waited >= 950, `the retry waited for Retry-After: 1 (${waited.toFixed(0)} ms)`);

  retryAfter = '30';
  started = performance.now();
  res = await request(`${capped.url()}/`);
  t.equal(await res.body.text(), 'ok');
  t.ok(performance.now() - started < 5_000, 'Retry-After: 30 was capped at max (50 ms)');

  res = await request(`${short.url()}/`);
  t.equal(res.statusCode, 503, 'a wait past the route timeout is not made: the 503 goes to the client');
  t.equal(res.headers['retry-after'], '30', 'with its Retry-After');
  await res.body.dump();
  t.equal(await metric(short.adminUrl, 'sidecar_retries_skipped_total', { cluster: 'app', reason: 'deadline' }), 1);
});

t.test('nothing is retried once a response byte went to the client', async (t) => {
  const app = await startScriptedUpstream((_n, _req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const proxy = await startSidecar(simpleConfig(app.url, `retry: { attempts: 3, on: [5xx, reset, connect-failure], ${FAST_BACKOFF} }`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/`);
  t.equal(res.statusCode, 200);
  await t.rejects(res.body.text(), 'the client sees the body cut off');
  t.equal(app.seen.length, 1, 'one attempt only');
});

t.test('a client that leaves during the backoff gets no further attempt', async (t) => {
  // Retry-After makes the backoff a known 2 s, so the client surely leaves during it.
  const app = await startScriptedUpstream((_n, _req, res) => {
    res.writeHead(503, { 'retry-after': '2' });
    res.end();
  });
  const proxy = await startSidecar(simpleConfig(app.url, 'timeout: 20s\nretry: { attempts: 3, backoff: { base: 1ms, max: 5s } }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const controller = new AbortController();
  const pending = request(`${proxy.url()}/`, { signal: controller.signal });
  await waitUntil(() => app.seen.length === 1, 'the first attempt');
  controller.abort();
  await t.rejects(pending);
  await waitUntil(() => proxy.accessLog.length === 1, 'the access log line of the abandoned request');
  t.equal(proxy.accessLog[0].flags, 'DC');
  t.equal(proxy.accessLog[0].status, 499);
  // The absence of an attempt cannot be awaited: wait until the backoff would have ended.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  t.equal(app.seen.length, 1, 'the backoff timer was cancelled with the exchange');
  t.equal((await cluster(proxy.adminUrl)).inFlight, 0);
});

t.test('routes without retries still try once, and the access log says why a request failed', async (t) => {
  const app = await startScriptedUpstream(failFirst(1));
  const proxy = await startSidecar(simpleConfig(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/`);
  t.equal(res.statusCode, 503);
  await res.body.dump();
  t.equal(app.seen.length, 1);
  t.equal(await metric(proxy.adminUrl, 'sidecar_retries_skipped_total', { cluster: 'app', reason: 'method' }), 0, 'no retry policy, nothing counted as skipped');
});

t.test('attempts exhausted: the last answer is relayed and flagged URX', async (t) => {
  const app = await startScriptedUpstream(failFirst(100, 502));
  const proxy = await startSidecar(simpleConfig(app.url, `retry: { attempts: 2, ${FAST_BACKOFF} }`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/`);
  t.equal(res.statusCode, 502);
  t.equal(await res.body.text(), 'failure 3', "the last attempt's answer");
  t.equal(proxy.accessLog.at(-1)?.flags, 'URX');
  t.equal(proxy.accessLog.at(-1)?.attempts, 3);
});

function* chunks(buffer: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buffer.length; i += size) yield buffer.subarray(i, i + size);
}

function sha256(buffer: Buffer): string {
  return createHash('sha256').update(buffer).digest('hex');
}
