/**
 * 200 reloads (each adds or removes a listener and rebuilds a cluster, with requests through
 * both) leave the active handles and the heap where they started. Runs the built code in a
 * child process with --expose-gc (test/fixtures/reload-soak.js; `npm test` builds dist/
 * first, run `npm run build` when running this file alone).
 *
 * Margins: servers must match exactly (a retired listener that never closed is the leak this
 * looks for); other handles within SOCKETS_AND_TIMERS_MARGIN (kept-alive client sockets
 * come and go); every retired listener and cluster runtime must have been collected; and
 * heap within HEAP_MARGIN_BYTES — 200 reloads measured ~0.9 MiB, nearly all of it JIT
 * code and V8's dependent-code lists, which stop growing as the code warms up.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';

const RELOADS = 200;
const SOCKETS_AND_TIMERS_MARGIN = 2;
const HEAP_MARGIN_BYTES = 4 * 1024 * 1024;

interface Snapshot {
  readonly resources: Record<string, number>;
  readonly heapUsedBytes: number;
}

t.test(`${RELOADS} reloads leave handles and memory where they started`, async (t) => {
  const script = path.join(__dirname, '..', 'fixtures', 'reload-soak.js');
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', script, String(RELOADS)], { timeout: 120_000 });
  const { before, after, retained } = JSON.parse(stdout) as { before: Snapshot; after: Snapshot; retained: Record<string, number> };
  t.comment(`resources before ${JSON.stringify(before.resources)} after ${JSON.stringify(after.resources)}`);
  t.comment(`heap before ${before.heapUsedBytes} after ${after.heapUsedBytes} (+${after.heapUsedBytes - before.heapUsedBytes} bytes)`);

  t.equal(after.resources.TCPServerWrap, before.resources.TCPServerWrap, 'listening sockets: exactly as many as before');
  for (const type of new Set([...Object.keys(before.resources), ...Object.keys(after.resources)])) {
    if (type === 'TCPServerWrap') continue;
    const delta = (after.resources[type] ?? 0) - (before.resources[type] ?? 0);
    t.ok(delta <= SOCKETS_AND_TIMERS_MARGIN, `${type}: ${before.resources[type] ?? 0} → ${after.resources[type] ?? 0}`);
  }
  t.same(retained, { listener: 0, cluster: 0 }, 'every retired listener and cluster runtime was garbage-collected');
  t.ok(after.heapUsedBytes - before.heapUsedBytes <= HEAP_MARGIN_BYTES, `heap grew ${after.heapUsedBytes - before.heapUsedBytes} bytes (margin ${HEAP_MARGIN_BYTES})`);
});
