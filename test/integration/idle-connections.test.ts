/**
 * 10 000 idle client connections against a sidecar process: its memory stays bounded and
 * other clients keep being served. The sidecar runs as a child process (the built CLI), so
 * its resident set size is measured alone.
 */
import type { Socket } from 'node:net';
import t from 'tap';
import { Agent, request } from 'undici';
import { startChildSidecar } from '../helpers/child-sidecar';
import { openFds, openFileLimit, rssBytes } from '../helpers/proc';
import { connect } from '../helpers/raw';
import { startUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

const WANTED_CONNECTIONS = Number(process.env.SIDECAR_IDLE_CONNECTIONS ?? 10_000);
/** Descriptors this test process keeps for itself (tap, the app, the clients that are served). */
const FD_RESERVE = 500;
/** Per idle connection: a socket, its HTTP parser state and kernel buffers are a few KiB; 64 KiB would be a leak. */
const MAX_RSS_PER_CONNECTION_BYTES = 64 * 1024;
const BATCH = 500;
const WAIT_BOUND_MS = 60_000;

const skip = rssBytes(process.pid) === undefined ? 'needs Linux /proc to measure the sidecar process' : false;

t.test('10 000 idle connections: bounded memory, others served', { skip, timeout: 240_000 }, async (t) => {
  const limit = openFileLimit() ?? 1024;
  const count = Math.min(WANTED_CONNECTIONS, limit - FD_RESERVE);
  if (count < WANTED_CONNECTIONS) t.comment(`open-file limit ${limit}: holding ${count} connections instead of ${WANTED_CONNECTIONS}`);

  const app = await startUpstream((_req, res) => res.end('ok'));
  // Room for every connection from this one address, and well below the 90% of maxConnections
  // from which connections that send nothing are closed early: this measures their cost.
  const sidecar = await startChildSidecar(`
admin: { address: 127.0.0.1:0 }
accessLog: { path: "off" }
listeners:
  - name: main
    address: 127.0.0.1:0
    maxConnections: ${count * 2}
    maxConnectionsPerPeer: ${count * 2}
    headersTimeout: 200s
    requestTimeout: 200s
    routes:
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
`);
  const port = Number(new URL(sidecar.url).port);
  // Before any client: pooled and kept-alive connections come and go during the test.
  const fdsAtStart = openFds(sidecar.pid) as number;
  const held: Socket[] = [];
  const served = new Agent({ connections: 4 });
  t.teardown(async () => {
    for (const socket of held) socket.destroy();
    await served.close();
    await sidecar.stop();
    await app.close();
  });

  const get = async (): Promise<number> => {
    const started = performance.now();
    const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: served });
    if (res.statusCode !== 200 || (await res.body.text()) !== 'ok') throw new Error(`unexpected answer ${res.statusCode}`);
    return performance.now() - started;
  };
  for (let i = 0; i < 200; i++) await get(); // warm up: JIT, pools, buffers
  const rssBefore = rssBytes(sidecar.pid) as number;

  const openedAt = performance.now();
  while (held.length < count) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, count - held.length) }, () => connect(port)));
    for (const socket of batch) {
      socket.on('error', () => {});
      held.push(socket);
    }
  }
  await waitUntil(() => (openFds(sidecar.pid) ?? 0) >= fdsAtStart + count, `the sidecar to accept all ${count} connections`, WAIT_BOUND_MS, 50);
  const openMs = performance.now() - openedAt;
  const rssHeld = rssBytes(sidecar.pid) as number;

  const latencies: number[] = [];
  for (let i = 0; i < 100; i++) latencies.push(await get());
  latencies.sort((a, b) => a - b);
  const admin = await request(`${sidecar.adminUrl}/ready`);
  t.equal(await admin.body.text(), 'ready\n', 'the admin listener answers');
  t.ok(held.every((socket) => !socket.destroyed), 'every idle connection is still open');

  const perConnection = (rssHeld - rssBefore) / count;
  const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
  t.comment(
    `${count} idle connections opened in ${(openMs / 1000).toFixed(1)} s; sidecar RSS ${mib(rssBefore)} MiB → ${mib(rssHeld)} MiB ` +
      `(${(perConnection / 1024).toFixed(1)} KiB per connection); 100 requests meanwhile: ` +
      `p50 ${latencies[49].toFixed(1)} ms, p99 ${latencies[98].toFixed(1)} ms, max ${latencies[99].toFixed(1)} ms`,
  );
  t.ok(perConnection < MAX_RSS_PER_CONNECTION_BYTES, `memory per idle connection is bounded (${(perConnection / 1024).toFixed(1)} KiB)`);

  for (const socket of held.splice(0)) socket.destroy();
  await waitUntil(() => (openFds(sidecar.pid) ?? Infinity) <= fdsAtStart + 20, 'the sidecar to release the connections', WAIT_BOUND_MS, 50);
  await get();
  t.comment(`after closing them: sidecar RSS ${mib(rssBytes(sidecar.pid) as number)} MiB, ${openFds(sidecar.pid)} descriptors`);
  t.pass('served after the idle connections closed');
});
