#!/usr/bin/env node
// @ts-check
'use strict';

// The garbage collector's pauses per request for one bench row, in a process of its own (a
// row's survivors would otherwise change the next row's collections): an app, the row's
// sidecar and a keep-alive client in one process, a warm-up, then REQUESTS requests with a
// `gc` PerformanceObserver summing the pauses by kind. A feature that keeps objects alive
// across a scavenge (a batch waiting to leave, a ring of entries) shows here even when its own
// code is cheap. Pauses are wall time: on a loaded machine they grow with the load, so compare
// rows run one after the other, twice each.
// Usage: npm run build && node bench/gc-per-request.js ROW [REQUESTS]
//   ROW: a row of bench/sidecar-configs.js, or sidecar-access-log (sidecar-bare + the access log,
//   as in bench/policy-cost.js)
//   SIDECAR_DIST=other/dist measures another build (its dist folder).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { PerformanceObserver, constants } = require('node:perf_hooks');
const { Pool } = require('undici');
const { SIDECAR_VARIANTS, sidecarConfigYaml } = require('./sidecar-configs');
const { startAppAndSink } = require('./in-process-peers');

const DIST = path.resolve(process.env.SIDECAR_DIST ?? path.join(__dirname, '..', 'dist'));
const { parseConfigText } = require(path.join(DIST, 'config', 'load'));
const { Sidecar } = require(path.join(DIST, 'sidecar'));

/** @type {Record<string, import('./sidecar-configs').SidecarVariant>} */
const ROWS = { ...SIDECAR_VARIANTS, 'sidecar-access-log': { ...SIDECAR_VARIANTS['sidecar-bare'], summary: 'sidecar-bare + the access log to a file', accessLog: true } };
const [row = '', requestsText] = process.argv.slice(2);
const REQUESTS = Number(requestsText ?? 30_000);
const WARMUP = 5_000;
const CONCURRENCY = 16;

async function main() {
  const variant = ROWS[row];
  if (variant === undefined || variant.workers !== 1 || !(REQUESTS > 0)) {
    const rows = Object.keys(ROWS).filter((name) => ROWS[name].workers === 1);
    process.stderr.write(`usage: node bench/gc-per-request.js ROW [REQUESTS]\n  ROW: ${rows.join(', ')}\n`);
    process.exit(2);
  }
  const peers = await startAppAndSink();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gc-per-request-'));
  const yaml = sidecarConfigYaml(variant, {
    port: 0,
    adminPort: 0,
    upstream: `http://127.0.0.1:${peers.appPort}`,
    otlpEndpoint: `http://127.0.0.1:${peers.sinkPort}`,
    accessLogPath: path.join(dir, 'access.log'),
    certDir: dir,
  });
  const loaded = parseConfigText(yaml, path.join(dir, `${row}.yaml`));
  if (!loaded.ok) throw new Error(`${row}: ${JSON.stringify(loaded.errors)}`);
  const sidecar = await Sidecar.start(loaded.config, { processMetrics: false });
  const pool = new Pool(`http://127.0.0.1:${sidecar.listenerPort('bench')}`, { connections: CONCURRENCY });
  /** @param {number} n */
  const run = async (n) => {
    let sent = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (sent++ < n) {
          const res = await pool.request({ path: '/orders/42', method: 'GET', headers: { 'user-agent': 'bench', accept: '*/*' } });
          if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
          await res.body.dump();
        }
      }),
    );
  };
  await run(WARMUP);

  const pauses = { scavenge: 0, scavenges: 0, major: 0, majors: 0, other: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = /** @type {{ kind?: number } | undefined} */ (entry.detail)?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        pauses.scavenge += entry.duration;
        pauses.scavenges++;
      } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        pauses.major += entry.duration;
        pauses.majors++;
      } else pauses.other += entry.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const before = process.cpuUsage();
  await run(REQUESTS);
  const cpu = process.cpuUsage(before);
  // The observer is told of the last pauses asynchronously.
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();

  /** @param {number} ms */
  const perRequest = (ms) => ((ms * 1000) / REQUESTS).toFixed(2);
  console.log(
    `${row.padEnd(18)} cpu ${((cpu.user + cpu.system) / REQUESTS).toFixed(1)} µs/request (client, app and sidecar)` +
      `  scavenges ${perRequest(pauses.scavenge)} µs/request (${pauses.scavenges})` +
      `  major ${perRequest(pauses.major)} µs/request (${pauses.majors})  other ${perRequest(pauses.other)}`,
  );
  await pool.close();
  await sidecar.stop({ graceful: false });
  peers.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
