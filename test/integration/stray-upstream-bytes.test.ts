/**
 * An app that writes bytes no request asked for (a second response after a complete one) on a
 * kept-alive connection. HTTP/1 cannot tell which request bytes belong to, so bytes that
 * arrive after the next request was written read as its response: that is how a stray
 * response reaches another request (another client's, through the shared pool). The sidecar
 * closes a connection on which such bytes arrive, and the endpoint's connections then carry
 * one request each for a while, so stray bytes have no later request to reach.
 */
import type net from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { startRawApp } from '../helpers/raw-app';
import { metric } from '../helpers/resilience';
import { startSidecarFor } from '../helpers/sidecar';

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const STRAY = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!';
const REQUESTS_PER_CLIENT = 20;

/**
 * Stray bytes as the app's TCP stack delivers them (Nagle holds a small write until the
 * peer's next segment acknowledges the previous one): they go out just before the answer to
 * the next request on the connection. `revealFirst`: the very first connection's stray
 * bytes arrive while it is idle instead (the app disables Nagle there), so the sidecar can
 * see the app misbehave before any stray byte meets a request.
 */
async function strayBytesApp(revealFirst: boolean) {
  const served = new WeakMap<net.Socket, number>();
  let connections = 0;
  let firstConnectionClosed: () => void = () => {};
  const firstClosed = new Promise<void>((resolve) => {
    firstConnectionClosed = resolve;
  });
  const app = await startRawApp(() => (socket) => {
    let count = served.get(socket);
    if (count === undefined) {
      connections++;
      if (revealFirst && connections === 1) {
        socket.setNoDelay(true);
        socket.on('close', () => firstConnectionClosed());
        socket.write(OK + STRAY);
        served.set(socket, 1);
        return;
      }
      count = 0;
    }
    served.set(socket, count + 1);
    // One write: two would let Nagle hold the answer behind the stray bytes in turn.
    socket.write(count + 1 > 1 ? STRAY + OK : OK);
  });
  return { app, firstClosed, connections: () => connections };
}

async function run(url: string, requests: number): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < requests; i++) {
    const res = await request(`${url}/item/${i}`);
    answers.push(`${res.statusCode} ${await res.body.text()}`);
  }
  return answers;
}

t.test('after an idle connection got stray bytes, no stray response reaches a request of one client or two', async (t) => {
  const { app, firstClosed } = await strayBytesApp(true);
  const proxy = await startSidecarFor(t, app);

  const first = await request(`${proxy.url()}/first`);
  t.equal(await first.body.text(), 'ok');
  // The stray bytes arrive on the idle connection: it is closed.
  await firstClosed;

  const one = await run(proxy.url(), REQUESTS_PER_CLIENT);
  const [a, b] = await Promise.all([run(proxy.url(), REQUESTS_PER_CLIENT), run(proxy.url(), REQUESTS_PER_CLIENT)]);
  const answers = [...one, ...a, ...b];
  t.same(answers.filter((answer) => answer !== '200 ok'), [], `${answers.length} requests, every answer the app's own`);
  t.ok((await metric(proxy.adminUrl, 'sidecar_upstream_stray_bytes_total', { cluster: 'app' })) >= 1, 'counted');
});

t.test('stray bytes that first meet a request reach that one request at most, never a later one', async (t) => {
  const { app } = await strayBytesApp(false);
  const proxy = await startSidecarFor(t, app);

  const one = await run(proxy.url(), REQUESTS_PER_CLIENT);
  const [a, b] = await Promise.all([run(proxy.url(), REQUESTS_PER_CLIENT), run(proxy.url(), REQUESTS_PER_CLIENT)]);
  const answers = [...one, ...a, ...b];
  const stray = answers.filter((answer) => answer.includes('EVIL'));
  // The first stray response meets the request written just before it: HTTP/1 has nothing
  // to tell it from that request's answer. The answer that follows it gives the app away.
  t.ok(stray.length <= 1, `at most the first stray response is taken for an answer (got ${stray.length} of ${answers.length})`);
  t.same(answers.filter((answer) => answer !== '200 ok' && !answer.includes('EVIL')), [], 'every other answer is the app\'s own');
  t.ok((await metric(proxy.adminUrl, 'sidecar_upstream_stray_bytes_total', { cluster: 'app' })) >= 1, 'counted');
});
