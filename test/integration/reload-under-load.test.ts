/**
 * 50 reloads while a load generator sends requests without pause: not one request fails.
 * Every reload rebuilds the cluster (its endpoint alternates between two apps, so the old
 * pools close while requests still use them) and changes a response header; every fifth
 * also adds or removes a second listener. Retries are off: nothing hides a failure.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { appliedText, startSidecarFromFile, writeAtomic } from '../helpers/config-file';
import { waitUntil } from '../helpers/wait';
import { startUpstream } from '../helpers/upstream';

const RELOADS = 50;
const CONCURRENCY = 8;
/** Each reload waits for this many more requests first, so reloads land in the middle of load. */
const REQUESTS_BETWEEN_RELOADS = 10;
const POST_BODY = Buffer.alloc(32 * 1024, 'x');

t.test(`${RELOADS} reloads under continuous load: zero failed requests`, async (t) => {
  const app = async (name: string) =>
    startUpstream((req, res) => {
      let size = 0;
      req.on('data', (chunk: Buffer) => (size += chunk.length));
      req.on('end', () => {
        // A little latency keeps requests in flight across each swap.
        setTimeout(() => res.end(`${name}:${size}`), Math.floor(Math.random() * 3));
      });
    });
  const [one, two] = [await app('one'), await app('two')];
  t.teardown(() => one.close());
  t.teardown(() => two.close());

  const config = (generation: number): string => `admin: { address: 127.0.0.1:0 }
drain: { timeout: 10s }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: app
        responseHeaders: { add: { x-generation: "${generation}" } }
${Math.floor(generation / 5) % 2 === 1 ? `  - name: extra
    address: 127.0.0.1:0
    routes: [{ name: pong, match: { prefix: / }, directResponse: { status: 200, body: pong } }]
` : ''}clusters:
  - name: app
    endpoints: [{ url: ${generation % 2 === 0 ? one.url : two.url} }]
`;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-load-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sidecar.yaml');
  await fsp.writeFile(file, config(0));
  const running = await startSidecarFromFile(file);
  t.teardown(() => running.close());
  const target = running.url();

  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 30_000 });
  t.teardown(() => agent.close());
  let sent = 0;
  const failures: string[] = [];
  const generations = new Set<string>();
  let stop = false;
  const worker = async (id: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const post = (i + id) % 4 === 0;
      try {
        const res = await request(`${target}/work/${id}/${i}`, { dispatcher: agent, method: post ? 'POST' : 'GET', body: post ? POST_BODY : undefined });
        const body = await res.body.text();
        if (res.statusCode !== 200 || !/^(one|two):\d+$/.test(body) || (post && !body.endsWith(`:${POST_BODY.length}`))) {
          failures.push(`${res.statusCode} ${res.headers['x-sidecar-error'] ?? ''} ${body.slice(0, 200)}`);
        }
        generations.add(String(res.headers['x-generation']));
      } catch (error) {
        failures.push(`request error: ${(error as Error).message}`);
      }
      sent++;
    }
  };
  const workers = Array.from({ length: CONCURRENCY }, (_, id) => worker(id));

  for (let generation = 1; generation <= RELOADS; generation++) {
    const before = sent;
    await waitUntil(() => sent >= before + REQUESTS_BETWEEN_RELOADS, `${REQUESTS_BETWEEN_RELOADS} requests before reload ${generation}`);
    const text = config(generation);
    const applied = appliedText(running.sidecar.reloader, text);
    await writeAtomic(file, text);
    await applied;
  }
  const afterLast = sent;
  await waitUntil(() => sent >= afterLast + REQUESTS_BETWEEN_RELOADS, `${REQUESTS_BETWEEN_RELOADS} requests after the last reload`);
  stop = true;
  await Promise.all(workers);

  t.same(failures, [], 'no request failed');
  t.ok(sent >= RELOADS * REQUESTS_BETWEEN_RELOADS, `${sent} requests were sent during the reloads`);
  t.ok(generations.size > RELOADS / 2, `responses came from ${generations.size} generations of the config`);
  t.same(running.sidecar.listeners.map((l) => l.config.name), ['main'], 'the extra listener went with generation 50');
});
