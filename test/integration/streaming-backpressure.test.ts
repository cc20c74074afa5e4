/**
 * A slow client slows the app's stream instead of growing the sidecar's memory, and a client
 * that leaves aborts the app's response. The sidecar runs in its own process (the built CLI)
 * so its resident memory can be read from /proc apart from this test's.
 */
import t from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import { startUpstream } from '../helpers/upstream';
import { startChildSidecar } from '../helpers/child-sidecar';
import { withTimeout } from '../helpers/certs';

const MiB = 1024 * 1024;
const DOWNLOAD_BYTES = 1024 * MiB;
const CHUNK = Buffer.alloc(64 * 1024, 'x');
/** The bound on the sidecar's memory growth while relaying the download. */
const MAX_RSS_GROWTH_BYTES = 50 * MiB;
/**
 * The client reads in bursts of this size and stops after each one until backpressure has
 * reached the app (it wrote nothing for APP_HELD_MS), so every pause proves the sidecar
 * stopped reading from the app instead of buffering for the client.
 */
const BURST_BYTES = 64 * MiB;
const APP_HELD_MS = 200;
/** A pause ends after this long even if the app keeps writing (the test then fails). */
const MAX_PAUSE_MS = 5000;
const RSS_SAMPLE_INTERVAL_MS = 50;
const WARMUP_BYTES = 64 * MiB;
const ABORT_BOUND_MS = 5000;

interface AppStream {
  sent: number;
  closedEarly: boolean;
  closedAt: number | undefined;
  /** Resolves when the app's response closes. */
  closed: Promise<void>;
}

t.test('a 1 GiB download to a rate-limited client: backpressure, bounded memory, abort on leave', async (t) => {
  const streams: AppStream[] = [];
  const app = await startUpstream((req, res) => {
    let appClosed!: () => void;
    const state: AppStream = { sent: 0, closedEarly: false, closedAt: undefined, closed: new Promise((resolve) => (appClosed = resolve)) };
    streams.push(state);
    const endless = req.url === '/endless';
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...(endless ? {} : { 'content-length': String(DOWNLOAD_BYTES) }) });
    res.on('close', () => {
      state.closedAt = performance.now();
      state.closedEarly = !res.writableFinished;
      appClosed();
    });
    // The app honours backpressure: it writes only while the sidecar keeps reading.
    const pump = (): void => {
      while (!res.destroyed && (endless || state.sent < DOWNLOAD_BYTES)) {
        const chunk = endless ? CHUNK : CHUNK.subarray(0, Math.min(CHUNK.length, DOWNLOAD_BYTES - state.sent));
        state.sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!endless && !res.destroyed) res.end();
    };
    pump();
  });
  const sidecar = await startChildSidecar(`
admin: { address: 127.0.0.1:0 }
accessLog: { path: off }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app, timeout: 30s }
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
`);
  t.teardown(async () => {
    await sidecar.stop();
    await app.close();
  });

  // The baseline is the sidecar at work, not at rest: any sustained stream lifts its RSS by
  // some 40-60 MiB (compiled code, and chunks already relayed that wait for V8's next
  // external-memory collection) whatever its length. What must not happen is growth with
  // the download, which is what is measured from here.
  const idle = await sidecar.rssBytes();
  await download(`${sidecar.url}/warmup`, WARMUP_BYTES);
  const baseline = await sidecar.rssBytes();

  let maxRss = baseline;
  let maxAhead = 0;
  let received = 0;
  const sampler = setInterval(() => {
    sidecar.rssBytes().then((rss) => (maxRss = Math.max(maxRss, rss)), () => {});
    const appStream = streams.at(-1);
    if (appStream !== undefined) maxAhead = Math.max(maxAhead, appStream.sent - received);
  }, RSS_SAMPLE_INTERVAL_MS);
  const startedAt = performance.now();
  let pauses = 0;
  let heldPauses = 0;
  const result = await download(`${sidecar.url}/big`, Infinity, {
    onProgress: (n) => (received = n),
    pauseEvery: BURST_BYTES,
    pause: async () => {
      pauses++;
      const appStream = streams.at(-1);
      if (appStream === undefined) return;
      const pausedAt = performance.now();
      let lastSent = appStream.sent;
      let quietSince = pausedAt;
      while (performance.now() - pausedAt < MAX_PAUSE_MS) {
        // Nothing announces that the app stopped writing: its byte count is read until it stays still.
        await new Promise((resolve) => setTimeout(resolve, 20));
        if (appStream.sent !== lastSent) {
          lastSent = appStream.sent;
          quietSince = performance.now();
        } else if (performance.now() - quietSince >= APP_HELD_MS) {
          heldPauses++;
          return;
        }
      }
    },
  });
  clearInterval(sampler);
  const seconds = (performance.now() - startedAt) / 1000;
  maxRss = Math.max(maxRss, await sidecar.rssBytes());

  t.equal(result.bytes, DOWNLOAD_BYTES, 'every byte arrived');
  t.equal(result.status, 200);
  t.equal(pauses, DOWNLOAD_BYTES / BURST_BYTES, `the client paused ${pauses} times`);
  t.equal(heldPauses, pauses, `in every pause the app was held back (it wrote nothing for ${APP_HELD_MS} ms)`);
  const growth = maxRss - baseline;
  t.ok(
    growth < MAX_RSS_GROWTH_BYTES,
    `the sidecar's RSS grew by ${(growth / MiB).toFixed(1)} MiB (idle ${(idle / MiB).toFixed(1)} MiB, warm baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(maxRss / MiB).toFixed(1)} MiB) over ${seconds.toFixed(1)} s at ${(DOWNLOAD_BYTES / MiB / seconds).toFixed(0)} MiB/s`,
  );
  // Without backpressure the app would run ahead of the client by hundreds of MiB; with it,
  // by what the socket buffers on the way hold.
  t.ok(maxAhead < 160 * MiB, `the app was at most ${(maxAhead / MiB).toFixed(1)} MiB ahead of the client`);

  // A client that leaves mid-stream: the app's response is aborted.
  const endless = http.get(`${sidecar.url}/endless`, { agent: false });
  const [res] = (await once(endless, 'response')) as [http.IncomingMessage];
  let got = 0;
  for await (const chunk of res) {
    got += (chunk as Buffer).length;
    if (got >= 16 * MiB) break; // leaving the loop destroys the response and its socket
  }
  const leftAt = performance.now();
  const appStream = streams.at(-1);
  if (appStream === undefined) throw new Error('the app saw no request');
  // An endless response only ends if the sidecar aborts it; the bound is generous (the test
  // shares two cores with others), the latency is reported.
  await withTimeout(appStream.closed, ABORT_BOUND_MS, "the app's response to close").catch(() => undefined);
  t.ok(appStream.closedEarly, 'the app\'s response was closed before it ended');
  t.ok(appStream.closedAt !== undefined && appStream.closedAt - leftAt < ABORT_BOUND_MS, `the app saw it ${((appStream.closedAt ?? Infinity) - leftAt).toFixed(1)} ms after the client left`);
  t.equal(sidecar.child.exitCode, null, 'the sidecar is still running');
});

/**
 * Reads `url` with node:http up to `maxBytes`; every `pauseEvery` bytes it stops reading
 * until `pause()` resolves.
 */
async function download(
  url: string,
  maxBytes: number,
  options: { onProgress?: (bytes: number) => void; pauseEvery?: number; pause?: () => Promise<void> } = {},
): Promise<{ status: number; bytes: number }> {
  const req = http.get(url, { agent: false });
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  let bytes = 0;
  let nextPauseAt = options.pauseEvery ?? Infinity;
  await new Promise<void>((resolve, reject) => {
    res.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      options.onProgress?.(bytes);
      if (bytes >= maxBytes) {
        res.destroy();
        resolve();
        return;
      }
      if (bytes >= nextPauseAt && options.pause !== undefined) {
        nextPauseAt += options.pauseEvery ?? Infinity;
        res.pause();
        options.pause().then(() => res.resume(), reject);
      }
    });
    res.on('end', () => resolve());
    res.on('error', reject);
  });
  return { status: res.statusCode ?? 0, bytes };
}
