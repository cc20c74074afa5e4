/**
 * Server-sent events and other chunked streams pass through unbuffered: each chunk reaches
 * the client as soon as the app writes it, and the response headers do not wait for the
 * first chunk.
 *
 * App, sidecar and client share this process, so a moment when the process does not run at
 * all (another test hogging both cores, a GC pause) delays an event without the sidecar
 * holding it. Such stalls are recorded (a 1 ms ticker that fell behind) and taken out of the
 * latency of the events they overlap. Anything the sidecar holds while the process runs
 * (buffering until the next chunk or the end, a Nagle or delayed-ACK wait) still counts.
 */
import t from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import { startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';

/** The bound: each event reaches the client within 50 ms of the app writing it. */
const MAX_EVENT_LATENCY_MS = 50;
const EVENTS = 20;
const EVENT_INTERVAL_MS = 25;
/** The app holds its first event this long after sending the headers. */
const FIRST_EVENT_DELAY_MS = 500;
const TICK_MS = 1;
/** A ticker gap longer than this is a stall of the whole process. */
const STALL_MS = 10;

/** Records the intervals in which this process did not run its event loop. */
function recordStalls(): { stop(): void; stalledMs(from: number, to: number): number } {
  const stalls: Array<[number, number]> = [];
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    if (now - last > STALL_MS) stalls.push([last + TICK_MS, now]);
    last = now;
  }, TICK_MS);
  return {
    stop: () => clearInterval(ticker),
    stalledMs: (from, to) => stalls.reduce((sum, [start, end]) => sum + Math.max(0, Math.min(end, to) - Math.max(start, from)), 0),
  };
}

for (const contentType of ['text/event-stream', 'application/x-ndjson'] as const) {
  t.test(`${contentType}: each chunk reaches the client within ${MAX_EVENT_LATENCY_MS} ms of the app writing it`, async (t) => {
    const writtenAt = new Map<number, number>();
    let headersSentAt = 0;
    const app = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache' });
      res.flushHeaders();
      headersSentAt = performance.now();
      let id = 0;
      const writeNext = (): void => {
        id++;
        const line = contentType === 'text/event-stream' ? `id: ${id}\ndata: {"n":${id}}\n\n` : `{"id":${id}}\n`;
        writtenAt.set(id, performance.now());
        res.write(line);
        if (id === EVENTS) res.end();
        else setTimeout(writeNext, EVENT_INTERVAL_MS);
      };
      setTimeout(writeNext, FIRST_EVENT_DELAY_MS);
    });
    const proxy = await startSidecar(simpleConfig(app.url));
    const stalls = recordStalls();
    t.teardown(async () => {
      stalls.stop();
      await proxy.close();
      await app.close();
    });

    const req = http.get(`${proxy.url()}/events`, { headers: { accept: contentType } });
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    const headersAt = performance.now();
    t.equal(res.statusCode, 200);
    t.equal(res.headers['content-type'], contentType);
    t.equal(writtenAt.size, 0, `the headers arrived before the app wrote its first event (${(headersAt - headersSentAt).toFixed(1)} ms after the app sent them)`);

    const latencies: number[] = [];
    const rawLatencies: number[] = [];
    let buffered = '';
    res.setEncoding('utf8');
    for await (const chunk of res) {
      const arrivedAt = performance.now();
      buffered += chunk as string;
      const pattern = contentType === 'text/event-stream' ? /id: (\d+)\ndata: [^\n]*\n\n/g : /\{"id":(\d+)\}\n/g;
      let consumed = 0;
      for (const match of buffered.matchAll(pattern)) {
        const sentAt = writtenAt.get(Number(match[1]));
        if (sentAt === undefined) throw new Error(`event ${match[1]} arrived before the app wrote it`);
        rawLatencies.push(arrivedAt - sentAt);
        latencies.push(arrivedAt - sentAt - stalls.stalledMs(sentAt, arrivedAt));
        consumed = (match.index ?? 0) + match[0].length;
      }
      buffered = buffered.slice(consumed);
    }
    t.equal(latencies.length, EVENTS, 'every event arrived');
    const worst = Math.max(...latencies);
    const sorted = [...latencies].sort((a, b) => a - b);
    t.ok(
      latencies.every((ms) => ms < MAX_EVENT_LATENCY_MS),
      `each event within ${MAX_EVENT_LATENCY_MS} ms (median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} ms, worst ${worst.toFixed(2)} ms; ` +
        `worst ${Math.max(...rawLatencies).toFixed(2)} ms counting process stalls)`,
    );
  });
}
