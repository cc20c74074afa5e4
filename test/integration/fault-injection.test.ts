import { connect } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { startSidecarFor } from '../helpers/sidecar';
import { metric, startScriptedUpstream } from '../helpers/resilience';
import { waitUntil } from '../helpers/wait';

function okApp() {
  return startScriptedUpstream((_n, _req, res) => res.end('ok'));
}

t.test('abort 100%: the configured status, the app untouched, flagged FI', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'fault: { abort: { status: 418, percent: 100 } }');
  for (let i = 0; i < 5; i++) {
    const res = await request(`${proxy.url()}/x`);
    t.equal(res.statusCode, 418);
    t.equal(res.headers['x-sidecar-error'], 'FAULT_ABORT');
    t.equal(((await res.body.json()) as { error: string }).error, 'FAULT_ABORT');
  }
  t.equal(app.seen.length, 0, 'the app saw nothing');
  t.equal(proxy.accessLog.length, 5);
  t.ok(proxy.accessLog.every((l) => l.flags === 'FI' && l.status === 418 && l.error === 'FAULT_ABORT'), JSON.stringify(proxy.accessLog[0]));
  t.equal(await metric(proxy.adminUrl, 'sidecar_requests_total', { route: 'all', code: '418' }), 5, 'counted under its status');
  t.equal(await metric(proxy.adminUrl, 'sidecar_circuit_rejections_total', { cluster: 'app' }), 0, 'not counted against the cluster');
});

t.test('delay 200ms: every request takes at least 200ms, then reaches the app', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'fault: { delay: { duration: 200ms, percent: 100 } }');
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const res = await request(`${proxy.url()}/`);
    t.equal(await res.body.text(), 'ok');
    const ms = performance.now() - started;
    t.ok(ms >= 200, `${ms.toFixed(0)}ms`);
  }
  t.equal(app.seen.length, 3);
  t.ok(proxy.accessLog.every((l) => l.flags === 'FI' && l.status === 200));
});

t.test('percent 0 never faults', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'fault: { abort: { percent: 0 }, delay: { duration: 5s, percent: 0 } }');
  for (let i = 0; i < 20; i++) t.equal((await request(`${proxy.url()}/`)).statusCode, 200);
  t.ok(proxy.accessLog.every((l) => l.flags === undefined));
});

t.test('header-gated: only requests with the header are faulted; its value overrides the percentage', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'fault: { abort: { status: 503, percent: 100 }, header: x-sidecar-fault }');
  t.equal((await request(`${proxy.url()}/`)).statusCode, 200, 'without the header: untouched');
  t.equal((await request(`${proxy.url()}/`, { headers: { 'x-sidecar-fault': 'yes' } })).statusCode, 503, 'with it: the configured 100%');
  t.equal((await request(`${proxy.url()}/`, { headers: { 'x-sidecar-fault': '0' } })).statusCode, 200, 'a value of 0 turns it off');
  t.equal(app.seen.length, 2);
});

t.test('the route timeout comes during a delay: 504, the app never called', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'timeout: 100ms\nfault: { delay: { duration: 5s, percent: 100 } }');
  const started = performance.now();
  const res = await request(`${proxy.url()}/`);
  t.equal(res.statusCode, 504);
  t.equal(res.headers['x-sidecar-error'], 'UPSTREAM_TIMEOUT');
  await res.body.dump();
  t.ok(performance.now() - started < 2000, 'answered at the deadline, not after the delay');
  t.equal(app.seen.length, 0);
  t.equal(proxy.accessLog[0].flags, 'UT,FI');
});

t.test('a client that leaves during a delay: nothing reaches the app', async (t) => {
  const app = await okApp();
  const proxy = await startSidecarFor(t, app, 'fault: { delay: { duration: 300ms, percent: 100 } }');
  const socket = connect(proxy.port(), '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  await waitUntil(async () => (await metric(proxy.adminUrl, 'sidecar_requests_in_flight', { cluster: 'app' })) === 1, 'the request to be in its delay');
  t.equal(app.seen.length, 0);
  socket.destroy();
  await waitUntil(() => proxy.accessLog.length === 1, 'the exchange to be logged');
  t.equal(proxy.accessLog[0].status, 499);
  t.equal(proxy.accessLog[0].flags, 'DC,FI');
  // Past the delay: the timer was cleared, the app was never called.
  const probe = await request(`${proxy.url()}/`);
  await probe.body.dump();
  t.equal(app.seen.length, 1, 'only the probe');
});
