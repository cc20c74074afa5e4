import t from 'tap';
import { request } from 'undici';
import { simpleConfig, startSidecar } from '../helpers/sidecar';
import { capturingLogger, cluster, metric, startScriptedUpstream } from '../helpers/resilience';
import { waitUntil } from '../helpers/wait';

t.test('the breaker opens after the threshold, the app sees nothing while open, a successful probe closes it', async (t) => {
  let failing = true;
  const app = await startScriptedUpstream((_n, _req, res) => {
    res.statusCode = failing ? 500 : 200;
    res.end(failing ? 'broken' : 'fixed');
  });
  const { logger, lines } = capturingLogger();
  // resetTimeout leaves a generous margin for the requests made while the circuit is open.
  const proxy = await startSidecar(
    simpleConfig(app.url, '', 'circuitBreaker: { volumeThreshold: 4, errorThresholdPercentage: 50, window: 30s, resetTimeout: 3s }'),
    { logger },
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  for (let i = 0; i < 4; i++) {
    const res = await request(`${proxy.url()}/`);
    t.equal(res.statusCode, 500, `failure ${i + 1} is the app's own 500`);
    await res.body.dump();
  }
  await waitUntil(async () => (await cluster(proxy.adminUrl)).circuitBreaker.state === 'open', 'the circuit to open');
  t.equal(await metric(proxy.adminUrl, 'sidecar_circuit_state', { cluster: 'app' }), 2, 'sidecar_circuit_state says open');

  const seenBefore = app.seen.length;
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    const res = await request(`${proxy.url()}/`);
    const body = (await res.body.json()) as { error: string };
    t.equal(res.statusCode, 503);
    t.equal(res.headers['x-sidecar-error'], 'CIRCUIT_OPEN');
    t.equal(body.error, 'CIRCUIT_OPEN');
    t.ok(performance.now() - started < 1_000, 'refused at once');
  }
  t.equal(app.seen.length, seenBefore, 'the app received nothing while the circuit was open');
  t.equal(proxy.accessLog.at(-1)?.flags, 'UO', 'the access log flags the refusal');
  t.equal(await metric(proxy.adminUrl, 'sidecar_circuit_rejections_total', { cluster: 'app', reason: 'circuit_open' }), 5);

  failing = false;
  await waitUntil(async () => (await cluster(proxy.adminUrl)).circuitBreaker.state === 'half-open', 'the circuit to turn half-open', 15_000);
  t.equal(await metric(proxy.adminUrl, 'sidecar_circuit_state', { cluster: 'app' }), 1);
  const probe = await request(`${proxy.url()}/`);
  t.equal(probe.statusCode, 200, 'the probe reaches the app');
  t.equal(await probe.body.text(), 'fixed');
  await waitUntil(async () => (await cluster(proxy.adminUrl)).circuitBreaker.state === 'closed', 'the circuit to close');
  t.equal(await metric(proxy.adminUrl, 'sidecar_circuit_state', { cluster: 'app' }), 0);
  const after = await request(`${proxy.url()}/`);
  t.equal(after.statusCode, 200, 'traffic flows again');
  await after.body.dump();

  const changes = lines.filter((l) => l.cluster === 'app' && typeof l.state === 'string').map((l) => l.state);
  t.same(changes, ['open', 'half-open', 'closed'], 'every state change was logged');
});

t.test('a stream of 404s never opens the breaker', async (t) => {
  const app = await startScriptedUpstream((_n, _req, res) => {
    res.statusCode = 404;
    res.end('no such thing');
  });
  const proxy = await startSidecar(simpleConfig(app.url, '', 'circuitBreaker: { volumeThreshold: 4, errorThresholdPercentage: 1, window: 30s }'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  for (let i = 0; i < 40; i++) {
    const res = await request(`${proxy.url()}/missing`);
    t.equal(res.statusCode, 404);
    await res.body.dump();
  }
  const view = (await cluster(proxy.adminUrl)).circuitBreaker;
  t.equal(view.state, 'closed');
  t.equal(view.window.failures, 0, 'no 404 counted as a failure');
  t.equal(app.seen.length, 40, 'every request reached the app');
});

t.test('the breaker counts requests by their final outcome: a request a retry saved is a success', async (t) => {
  // Every first try fails, every retry succeeds.
  const app = await startScriptedUpstream((n, _req, res) => {
    res.statusCode = n % 2 === 1 ? 503 : 200;
    res.end();
  });
  const proxy = await startSidecar(
    simpleConfig(app.url, 'retry: { attempts: 1, backoff: { base: 1ms, max: 2ms } }', 'circuitBreaker: { volumeThreshold: 4, errorThresholdPercentage: 10, window: 30s }'),
  );
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  for (let i = 0; i < 10; i++) {
    const res = await request(`${proxy.url()}/`);
    t.equal(res.statusCode, 200);
    await res.body.dump();
  }
  t.equal(app.seen.length, 20, 'every request took two tries');
  t.match((await cluster(proxy.adminUrl)).circuitBreaker, { state: 'closed', window: { calls: 10, successes: 10, failures: 0 } });
});

t.test('connect failures count: a dead app opens the breaker', async (t) => {
  const proxy = await startSidecar(simpleConfig('http://127.0.0.1:1', '', 'circuitBreaker: { volumeThreshold: 3, window: 30s, resetTimeout: 30s }'));
  t.teardown(() => proxy.close());
  const codes: string[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await request(`${proxy.url()}/`);
    codes.push(String(res.headers['x-sidecar-error']));
    await res.body.dump();
  }
  t.same(codes, ['UPSTREAM_CONNECT_FAILURE', 'UPSTREAM_CONNECT_FAILURE', 'UPSTREAM_CONNECT_FAILURE', 'CIRCUIT_OPEN', 'CIRCUIT_OPEN']);
});

t.test('concurrency limits: beyond maxConcurrentRequests requests wait, beyond maxPendingRequests 503 OVERLOADED', async (t) => {
  const held: Array<() => void> = [];
  const app = await startScriptedUpstream((n, _req, res) => held.push(() => res.end(`answer ${n}`)));
  const proxy = await startSidecar(simpleConfig(app.url, '', 'circuitBreaker: { maxConcurrentRequests: 1, maxPendingRequests: 1 }'));
  t.teardown(async () => {
    for (const release of held) release();
    await proxy.close();
    await app.close();
  });

  const first = request(`${proxy.url()}/1`);
  await waitUntil(() => held.length === 1, 'the first request to reach the app');
  const second = request(`${proxy.url()}/2`);
  await waitUntil(async () => (await cluster(proxy.adminUrl)).pending === 1, 'the second request to wait');
  const third = await request(`${proxy.url()}/3`);
  t.equal(third.statusCode, 503);
  t.equal(third.headers['x-sidecar-error'], 'OVERLOADED', 'no slot and no room to wait');
  await third.body.dump();
  t.equal(app.seen.length, 1, 'the waiting request has not reached the app yet');

  held[0]();
  t.equal(await (await first).body.text(), 'answer 1');
  await waitUntil(() => held.length === 2, 'the waiting request to get the freed slot');
  held[1]();
  t.equal(await (await second).body.text(), 'answer 2');
  t.equal(await metric(proxy.adminUrl, 'sidecar_circuit_rejections_total', { cluster: 'app', reason: 'overloaded' }), 1);
});

t.test('a request still waiting for a slot at its route timeout gets 503 OVERLOADED and never reaches the app', async (t) => {
  // The first request holds the only slot with a response that has started (so its own
  // timeout no longer applies) and does not end.
  const held: Array<() => void> = [];
  const app = await startScriptedUpstream((n, _req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('streaming ');
    held.push(() => res.end(`answer ${n}`));
  });
  const proxy = await startSidecar(simpleConfig(app.url, 'timeout: 300ms', 'circuitBreaker: { maxConcurrentRequests: 1, maxPendingRequests: 1 }'));
  t.teardown(async () => {
    for (const release of held) release();
    await proxy.close();
    await app.close();
  });
  const first = await request(`${proxy.url()}/1`);
  t.equal(first.statusCode, 200);
  const second = await request(`${proxy.url()}/2`);
  t.equal(second.statusCode, 503);
  t.equal(second.headers['x-sidecar-error'], 'OVERLOADED', 'it waited its whole timeout for a slot');
  await second.body.dump();
  held[0]();
  t.equal(await first.body.text(), 'streaming answer 1');
  await waitUntil(async () => (await cluster(proxy.adminUrl)).inFlight === 0, 'the slot to be free');
  t.equal(app.seen.length, 1, 'the request that gave up was not sent when the slot freed up');
  t.equal((await cluster(proxy.adminUrl)).pending, 0);
});
