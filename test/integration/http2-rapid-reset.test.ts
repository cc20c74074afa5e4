/**
 * HTTP/2 rapid reset (CVE-2023-44487) and the upstream queue it used to fill: clients that
 * open streams and reset them at once must not leave attempts queued for the app after they
 * are gone, the queue of attempts waiting for a connection is bounded by
 * `maxPendingRequests`, and a connection that resets more streams than it completes is
 * closed with GOAWAY ENHANCE_YOUR_CALM.
 */

import http2 from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { makeTestPki, withTimeout } from '../helpers/certs';
import { connect } from '../helpers/raw';
import { cluster, metric } from '../helpers/resilience';
import { waitUntil } from '../helpers/wait';
import { startSidecar } from '../helpers/sidecar';
import { connectH2, h2Request } from '../helpers/tls-clients';
import { startUpstream } from '../helpers/upstream';

const EVENT_TIMEOUT_MS = 10_000;
/** Streams one attacking connection opens and resets at once. */
const STREAMS_PER_CONNECTION = 200;
const ATTACKERS = 2;
const ROUNDS_PER_ATTACKER = 3;

/** An app whose /slow never answers (only the sidecar closing the request ends it); anything else is 200 ok. */
function slowApp(held: Set<ServerResponse>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (req.url === '/slow') {
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    res.end('ok');
  };
}

/**
 * One attacking connection: STREAMS_PER_CONNECTION requests, each reset (CANCEL) right after
 * its HEADERS. Resolves with the error code of the GOAWAY the sidecar sent, or undefined when
 * the connection closed without one.
 */
async function rapidResetConnection(port: number, ca: Buffer): Promise<number | undefined> {
  const session = await connectH2(port, { ca });
  session.on('error', () => {}); // the sidecar cuts it
  let goawayCode: number | undefined;
  session.once('goaway', (code: number) => (goawayCode = code));
  // (not events.once: it rejects on the session's 'error', which the GOAWAY's code causes)
  const closed = new Promise<void>((resolve) => session.once('close', resolve));
  for (let i = 0; i < STREAMS_PER_CONNECTION && !session.closed && !session.destroyed; i++) {
    const stream = session.request({ ':path': '/slow' });
    stream.on('error', () => {});
    stream.close(http2.constants.NGHTTP2_CANCEL);
  }
  await withTimeout(closed, EVENT_TIMEOUT_MS, 'the sidecar to close the attacking connection');
  return goawayCode;
}

t.test('rapid reset: GOAWAY ENHANCE_YOUR_CALM, nothing left queued for the app, normal clients served', async (t) => {
  const pki = await makeTestPki(t.testdir());
  const held = new Set<ServerResponse>();
  const app = await startUpstream(slowApp(held));
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
    routes:
      - { name: all, match: { prefix: / }, cluster: app, timeout: 30s }
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
    maxConnections: 8
`);
  const normal = await connectH2(proxy.port(), { ca: pki.ca });
  t.teardown(async () => {
    normal.destroy();
    await proxy.close();
    await app.close();
  });

  // A normal client asks for /ok, one request after the other, for as long as the attack lasts.
  let attacking = true;
  const normalStatuses: number[] = [];
  const probing = (async () => {
    while (attacking) normalStatuses.push((await h2Request(normal, { ':path': '/ok' })).status);
  })();

  const goaways = await Promise.all(
    Array.from({ length: ATTACKERS }, async () => {
      const codes: Array<number | undefined> = [];
      for (let round = 0; round < ROUNDS_PER_ATTACKER; round++) codes.push(await rapidResetConnection(proxy.port(), pki.ca));
      return codes;
    }),
  );
  attacking = false;
  await probing;

  t.same(
    goaways.flat(),
    Array.from({ length: ATTACKERS * ROUNDS_PER_ATTACKER }, () => http2.constants.NGHTTP2_ENHANCE_YOUR_CALM),
    'every attacking connection was closed with GOAWAY ENHANCE_YOUR_CALM',
  );
  t.equal(
    await metric(proxy.adminUrl, 'sidecar_http2_premature_reset_closes_total', { listener: 'secure' }),
    ATTACKERS * ROUNDS_PER_ATTACKER,
    'each close is counted',
  );
  t.ok(normalStatuses.length > 0, `the normal client made ${normalStatuses.length} requests during the attack`);
  t.same([...new Set(normalStatuses)], [200], 'and every one got 200');

  // Nothing of the attack stays queued for the app or held in flight.
  await waitUntil(async () => {
    const state = await cluster(proxy.adminUrl);
    return state.endpoints[0].inFlight === 0 && state.inFlight === 0 && state.pending === 0;
  }, 'the endpoint\'s in-flight count to return to 0');
  await waitUntil(() => held.size === 0, 'the app to see every attacking request closed');

  const after = await h2Request(normal, { ':path': '/ok' });
  t.equal(after.status, 200, 'normal requests are served after the attack');
  t.equal(after.body, 'ok');
});

t.test('attempts waiting for a connection count against maxPendingRequests; abandoned ones are dropped without costing a connection', async (t) => {
  const held: ServerResponse[] = [];
  let appConnections = 0;
  const slowRequests: string[] = [];
  const app = await startUpstream((req, res) => {
    if (req.url === '/hold') {
      slowRequests.push(req.url);
      held.push(res);
      return;
    }
    res.end('ok');
  });
  app.server.on('connection', () => appConnections++);
  // One connection to the app: a held request makes every other attempt wait for it.
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app, timeout: 10s }
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
    maxConnections: 1
    circuitBreaker: { maxPendingRequests: 2 }
`);
  const sockets: net.Socket[] = [];
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy();
    await proxy.close();
    await app.close();
  });
  const port = proxy.port();
  const raw = async (path: string): Promise<net.Socket> => {
    const socket = await connect(port);
    socket.on('error', () => {});
    sockets.push(socket);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`);
    return socket;
  };

  await raw('/hold');
  await waitUntil(() => held.length === 1, 'the app to hold the first request');
  // Two more wait for the only connection: the pending queue is full.
  const waiting = [await raw('/hold'), await raw('/hold')];
  await waitUntil(async () => (await cluster(proxy.adminUrl)).endpoints[0].inFlight === 3, 'two attempts to wait for the connection');

  const refused = await request(`${proxy.url()}/ok`);
  t.equal(refused.statusCode, 503, 'a further request is refused at once rather than queued behind them');
  t.equal(refused.headers['x-sidecar-error'], 'OVERLOADED');
  await refused.body.dump();

  // Their clients leave: the attempts stay in the pool's queue (undici cannot take them out)
  // and still count, until the connection frees up.
  for (const socket of waiting) socket.destroy();
  await waitUntil(() => proxy.accessLog.filter((line) => line.status === 499).length === 2, 'the two abandoned requests to end');
  t.equal((await cluster(proxy.adminUrl)).pending, 2, 'the abandoned attempts still count as pending');

  held[0].end('done');
  await waitUntil(async () => {
    const state = await cluster(proxy.adminUrl);
    return state.endpoints[0].inFlight === 0 && state.pending === 0;
  }, 'the abandoned attempts to be dropped once the connection was free');
  t.same(slowRequests, ['/hold'], 'the abandoned attempts never reached the app');

  const res = await request(`${proxy.url()}/ok`);
  t.equal(res.statusCode, 200, 'the next request is served');
  await res.body.dump();
  t.equal(appConnections, 1, 'on the same connection: dropping an abandoned attempt does not close it');
});
