/**
 * The stale keep-alive race, made deterministic: the app reads the request that arrives on a
 * kept-alive connection and closes that connection without answering, as an app whose idle
 * timeout fires just as the sidecar reuses the connection does. With no retry configured on
 * the route, an idempotent request is sent once more on a fresh connection and succeeds; a
 * POST is not repeated.
 */
import type net from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { startRawApp } from '../helpers/raw-app';
import { metric } from '../helpers/resilience';
import { startSidecarFor } from '../helpers/sidecar';

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

/** An app that answers the first request of each connection and drops the connection at the second. */
async function appClosingReusedConnections() {
  const served = new WeakMap<net.Socket, number>();
  return startRawApp(() => (socket) => {
    const count = (served.get(socket) ?? 0) + 1;
    served.set(socket, count);
    if (count === 1) socket.write(OK);
    else socket.destroy();
  });
}

function attemptHeader(head: string): string | undefined {
  return /\r\nx-sidecar-attempt: (\d+)/i.exec(head)?.[1];
}

for (const method of ['GET', 'DELETE', 'OPTIONS']) {
  t.test(`an idempotent ${method} reset on a reused connection is retried once on a fresh one, with no retry policy`, async (t) => {
    const app = await appClosingReusedConnections();
    const proxy = await startSidecarFor(t, app);

    const first = await request(`${proxy.url()}/first`, { method });
    await first.body.text();
    t.equal(first.statusCode, 200, 'the first request of a connection is answered');
    const heads = app.heads.length;
    const second = await request(`${proxy.url()}/second`, { method });
    const text = await second.body.text();
    t.equal(second.statusCode, 200, 'the request reset on the reused connection got 200');
    t.equal(text, 'ok');
    const sent = app.heads.slice(heads);
    t.same(sent.map(attemptHeader), ['1', '2'], 'the app saw the reset attempt and the retry (x-sidecar-attempt 1, 2)');
    t.equal(await metric(proxy.adminUrl, 'sidecar_retries_total', { cluster: 'app', reason: 'stale-connection' }), 1);
  });
}

t.test('a POST reset on a reused connection is not repeated', async (t) => {
  const app = await appClosingReusedConnections();
  const proxy = await startSidecarFor(t, app);

  const first = await request(`${proxy.url()}/first`, { method: 'POST' });
  await first.body.text();
  t.equal(first.statusCode, 200);
  const heads = app.heads.length;
  const second = await request(`${proxy.url()}/second`, { method: 'POST' });
  await second.body.text();
  t.equal(second.statusCode, 502, 'the POST gets 502');
  t.equal(second.headers['x-sidecar-error'], 'UPSTREAM_RESET');
  t.equal(app.heads.length - heads, 1, 'the app saw the POST once');
  t.equal(await metric(proxy.adminUrl, 'sidecar_retries_total', { cluster: 'app', reason: 'stale-connection' }), 0);
});

t.test('the retry happens once: a second reset is answered with 502', async (t) => {
  // Every request on every connection after the very first one is dropped.
  let served = 0;
  const app = await startRawApp(() => (socket) => {
    served++;
    if (served === 1) socket.write(OK);
    else socket.destroy();
  });
  const proxy = await startSidecarFor(t, app);
  const first = await request(`${proxy.url()}/first`);
  await first.body.text();
  const heads = app.heads.length;
  const second = await request(`${proxy.url()}/second`);
  await second.body.text();
  t.equal(second.statusCode, 502);
  t.equal(app.heads.length - heads, 2, 'one retry, then the error');
});
