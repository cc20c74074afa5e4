import t from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import { startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';
import { waitUntil } from '../helpers/wait';

t.test('a client that leaves mid-response closes the app\'s request at once, not at the route timeout', async (t) => {
  let appRequestClosed: ((at: number) => void) | undefined;
  const closedAt = new Promise<number>((resolve) => (appRequestClosed = resolve));
  const app = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first chunk\n');
    // The response never ends on its own: only the sidecar closing the request stops it.
    res.on('close', () => appRequestClosed?.(performance.now()));
  });
  const proxy = await startSidecar(simpleConfig(app.url, 'timeout: 30s'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  const req = http.get(`${proxy.url()}/stream`);
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  await once(res, 'data');
  const leftAt = performance.now();
  req.destroy();
  const appClosedAt = await closedAt;
  const latency = appClosedAt - leftAt;
  // The route timeout is 30 s: 2 s tells "at once" from "at the timeout" even on a loaded machine.
  t.ok(latency < 2000, `the app saw its request close ${latency.toFixed(1)} ms after the client left`);
  // The access log line is written on the response's 'close', which may come after the app's.
  await waitUntil(() => proxy.accessLog.length === 1, 'the access log line');
  t.equal(proxy.accessLog[0].flags, 'DC', 'logged as a downstream disconnect');
});
