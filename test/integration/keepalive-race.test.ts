/**
 * The keep-alive race, as it happens: the app closes a kept-alive connection when its idle
 * timer fires, and the sidecar sends its next request on that connection at about the same
 * moment. The app here keeps connections alive without advertising its timeout (many apps
 * send no `Keep-Alive: timeout=N` hint), so the pool cannot retire the connection early; the
 * client paces its requests so that each one reaches the app close to the app's idle timer.
 * The app counts the requests that arrive on a connection it has already decided to close:
 * the test asserts that the race was hit, and that every client request still succeeded
 * (the stale-connection retry sends an idempotent request again on a fresh connection).
 * stale-keepalive-retry.test.ts holds the deterministic version of each outcome.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { metric } from '../helpers/resilience';
import { simpleConfig, startSidecar } from '../helpers/sidecar';

/** The app's idle timeout on a kept-alive connection. */
const APP_IDLE_MS = 40;
/**
 * After each answer the client waits APP_IDLE_MS minus a lead swept over these values, so
 * its next request reaches the app just before, at, or just after the app's idle close (the
 * relay through the sidecar takes about a millisecond each way).
 */
const LEADS_MS = [-1, 0, 1, 2, 3];
/** The test stops pacing once the race was hit this often... */
const WANTED_RACES = 3;
/** ...or after this many requests. */
const MAX_REQUESTS = 400;

interface IdleClosingApp {
  readonly url: string;
  /** Connections the app closed because they stayed idle for APP_IDLE_MS. */
  readonly idleCloses: number;
  /** Requests that arrived on a connection the app had already closed for idleness: the race. */
  readonly racedRequests: number;
  /** Requests answered. */
  readonly answered: number;
  close(): Promise<void>;
}

/**
 * An HTTP/1.1 app that answers bodiless requests with keep-alive and no timeout hint, and
 * ends a connection that stays idle for APP_IDLE_MS. It ends its side (FIN) rather than
 * destroying it, so that a request already on its way can still be read, and counted, before
 * the connection is dropped unanswered, as an app that has closed would drop it.
 */
async function startIdleClosingApp(): Promise<IdleClosingApp> {
  let idleCloses = 0;
  let racedRequests = 0;
  let answered = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let closing = false;
    let idle: NodeJS.Timeout | undefined;
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
        buffered = buffered.slice(end + 4);
        if (closing) {
          racedRequests++;
          socket.destroy();
          return;
        }
        clearTimeout(idle);
        answered++;
        socket.write('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok');
        idle = setTimeout(() => {
          closing = true;
          idleCloses++;
          socket.end();
        }, APP_IDLE_MS);
      }
    });
    socket.on('close', () => clearTimeout(idle));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get idleCloses() {
      return idleCloses;
    },
    get racedRequests() {
      return racedRequests;
    },
    get answered() {
      return answered;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

t.test('keep-alive race: the app closes an idle connection as the sidecar reuses it, and no client request fails', async (t) => {
  const app = await startIdleClosingApp();
  // The pool's own idle timeout is far above the app's: only the app closes idle connections.
  const proxy = await startSidecar(simpleConfig(app.url, '', 'idleTimeout: 30s'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  const failures: string[] = [];
  let sent = 0;
  while (app.racedRequests < WANTED_RACES && sent < MAX_REQUESTS) {
    // GET only: a POST caught by the race is not repeated (stale-keepalive-retry.test.ts).
    const res = await request(`${proxy.url()}/race`);
    const text = await res.body.text();
    if (res.statusCode !== 200) failures.push(`#${sent}: ${res.statusCode} ${text}`);
    sent++;
    // The pacing is the scenario, not a wait for an event: the next request is timed to meet
    // the app's idle close.
    await new Promise((resolve) => setTimeout(resolve, APP_IDLE_MS - LEADS_MS[sent % LEADS_MS.length]));
  }
  const retried = await metric(proxy.adminUrl, 'sidecar_retries_total', { cluster: 'app', reason: 'stale-connection' });
  t.comment(`${sent} requests; the app closed ${app.idleCloses} idle connections, ${app.racedRequests} with a request of the sidecar arriving; ${retried} stale-connection retries`);
  t.ok(app.racedRequests >= 1, 'the race was hit: a request arrived on a connection the app was closing');
  t.equal(retried, app.racedRequests, 'each raced request was sent once more on a fresh connection');
  t.same(failures, [], `${sent} requests, none failed`);
  t.equal(app.answered, sent, 'the app answered every request once');
});
