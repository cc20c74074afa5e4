/**
 * Graceful drain, in-process: /ready turns 503 at once, everything keeps serving for
 * drain.delay, then new connections are refused while requests in flight complete (told
 * `Connection: close`), and only then do the pools close and the onDrained hooks run.
 */
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { connectionRefused } from '../helpers/net-probe';
import { waitUntil } from '../helpers/wait';
import { simpleConfig, startSidecar } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';

const SLOW_REQUESTS = 5;

async function gatedUpstream(t: Test) {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let slowSeen = 0;
  let onSlow: () => void = () => {};
  const upstream = await startUpstream((req, res) => {
    if (req.url === '/slow') {
      slowSeen++;
      onSlow();
      void gate.then(() => res.end('slow done'));
    } else res.end('fast');
  });
  t.teardown(() => upstream.close());
  const slowArrived = (n: number): Promise<void> =>
    new Promise((resolve) => {
      onSlow = () => slowSeen >= n && resolve();
      onSlow();
    });
  return { upstream, release: () => release(), slowArrived };
}

t.test('SIGTERM-style drain: ready 503 at once, serving during the delay, then refusing connections while requests in flight complete', async (t) => {
  const { upstream, release, slowArrived } = await gatedUpstream(t);
  const running = await startSidecar(simpleConfig(upstream.url) + 'drain: { delay: 1500ms, timeout: 20s }\n');
  t.teardown(() => running.close());
  const port = running.sidecar.listenerPort('main');
  let completedWhenHookRan: number | undefined;
  running.sidecar.onDrained.push(async () => {
    completedWhenHookRan = running.accessLog.filter((e) => e.path === '/slow' && e.status === 200).length;
  });

  const agent = new Agent({ connections: SLOW_REQUESTS, keepAliveTimeout: 30_000 });
  t.teardown(() => agent.close());
  const slow = Array.from({ length: SLOW_REQUESTS }, () =>
    request(`${running.url()}/slow`, { dispatcher: agent }).then(async (res) => {
      return { status: res.statusCode, connection: res.headers.connection, body: await res.body.text() };
    }),
  );
  await slowArrived(SLOW_REQUESTS);

  const drained = running.sidecar.drain();
  const ready = await request(`${running.adminUrl}/ready`);
  t.equal(ready.statusCode, 503, '/ready answers 503 at once');
  t.equal(await ready.body.text(), 'draining\n');

  // Within drain.delay a new connection is still served, and kept alive.
  const during = await request(`${running.url()}/fast`, { dispatcher: new Agent() });
  t.equal(during.statusCode, 200, 'a new connection during drain.delay is served');
  t.not(during.headers.connection, 'close');
  await during.body.dump();

  await waitUntil(() => connectionRefused(port), 'new connections to be refused after drain.delay');
  t.equal(running.accessLog.filter((e) => e.path === '/slow').length, 0, 'the slow requests are still in flight');
  t.equal(completedWhenHookRan, undefined);
  release();
  const results = await Promise.all(slow);
  t.same(results, Array.from({ length: SLOW_REQUESTS }, () => ({ status: 200, connection: 'close', body: 'slow done' })), 'every request in flight completes, told to close');
  const report = await drained;
  t.equal(report.cutConnections, 0);
  t.equal(completedWhenHookRan, SLOW_REQUESTS, 'the onDrained hooks run after the last request completed');
  t.equal(running.sidecar.current.clusters.get('app')?.endpoints[0].pool.closed, true, 'the pools are closed');
  t.ok(await connectionRefused(running.sidecar.admin.port), 'the admin listener closes last');
});

t.test('requests still running at drain.timeout are cut, and the report says how many', async (t) => {
  const { upstream, release, slowArrived } = await gatedUpstream(t);
  t.teardown(release);
  const running = await startSidecar(simpleConfig(upstream.url) + 'drain: { delay: 0ms, timeout: 300ms }\n');
  t.teardown(() => running.close());
  const stuck = request(`${running.url()}/slow`).then(
    (res) => res.body.text(),
    (error: Error) => error,
  );
  await slowArrived(1);
  const report = await running.sidecar.drain();
  t.equal(report.cutConnections, 1);
  t.type(await stuck, Error, 'the client sees its connection cut');
});

t.test('reloads are refused while draining; a second drain() is the same drain', async (t) => {
  const { upstream } = await gatedUpstream(t);
  const running = await startSidecar(simpleConfig(upstream.url) + 'drain: { delay: 500ms, timeout: 5s }\n');
  t.teardown(() => running.close());
  const first = running.sidecar.drain();
  t.equal(running.sidecar.drain(), first);
  const res = await request(`${running.adminUrl}/reload`, { method: 'POST' });
  t.match(await res.body.json(), { result: 'rejected', message: /shutting down/ });
  await first;
});
