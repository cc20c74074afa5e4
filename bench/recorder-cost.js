#!/usr/bin/env node
'use strict';

// What the flight recorder costs per request: one process runs an app, four sidecars
// (recorder off, on, on but keeping nothing, and off again as a control: the spread between
// the two that are off is what the run cannot tell apart) and a keep-alive client, and
// measures the process's CPU per request for each, in rounds whose order rotates. The figure
// includes the client's and the app's share, so the recorder's share of the sidecar's own CPU
// is larger than the ratio printed; the garbage collector's pauses are shown per request too.
// Usage: npm run build && node bench/recorder-cost.js [requests per round]
//   SIDECAR_DIST=other/dist measures another build (its dist folder).

const http = require('node:http');
const path = require('node:path');
const { PerformanceObserver } = require('node:perf_hooks');
const { Pool } = require('undici');

const DIST = path.resolve(process.env.SIDECAR_DIST ?? path.join(__dirname, '..', 'dist'));
const { parseConfigText } = require(path.join(DIST, 'config/load'));
const { Sidecar } = require(path.join(DIST, 'sidecar'));

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const REQUESTS = Number(process.argv[2] ?? 3000);
const CONCURRENCY = 8;

async function main() {
  const app = http.createServer((_req, res) => res.end('{"ok":true}'));
  await new Promise((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appUrl = `http://127.0.0.1:${app.address().port}`;
  const start = async (recorder) => {
    const yaml = `admin: { address: 127.0.0.1:0, recorder: ${recorder} }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${appUrl} }]
accessLog: { path: off }
tracing: { exporter: none }
`;
    const loaded = parseConfigText(yaml, '/tmp/recorder-cost.yaml');
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const sidecar = await Sidecar.start(loaded.config, { processMetrics: false });
    return { sidecar, pool: new Pool(`http://127.0.0.1:${sidecar.listenerPort('main')}`, { connections: CONCURRENCY }) };
  };
  const variants = {
    off: await start('false'),
    on: await start('{}'),
    'on, keeping nothing': await start('{ requests: 0, failures: 0 }'),
    'off again': await start('false'),
  };
  // Garbage collection pauses, summed for the round that is running.
  let gcMs = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  }).observe({ entryTypes: ['gc'] });
  const round = async ({ pool }, n) => {
    const before = process.cpuUsage();
    gcMs = 0;
    let sent = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (sent++ < n) {
          const res = await pool.request({ path: '/x', method: 'GET', headers: { 'user-agent': 'bench', accept: '*/*', authorization: 'Bearer x' } });
          await res.body.dump();
        }
      }),
    );
    const used = process.cpuUsage(before);
    // The observer reports a pause on a later turn of the loop: let it.
    await new Promise((resolve) => setImmediate(resolve));
    return { cpu: (used.user + used.system) / n, gc: (gcMs * 1000) / n };
  };
  const names = Object.keys(variants);
  const samples = Object.fromEntries(names.map((name) => [name, []]));
  const pauses = Object.fromEntries(names.map((name) => [name, []]));
  for (const v of Object.values(variants)) await round(v, 2000); // warm-up
  for (let i = 0; i < ROUNDS; i++) {
    // Rotate the order, so that no variant always follows the same one.
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length];
      const { cpu, gc } = await round(variants[name], REQUESTS);
      samples[name].push(cpu);
      pauses[name].push(gc);
    }
  }
  const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
  // The machine's speed drifts between rounds (a shared VM: the same build's rounds spread by
  // 2x at times); a round runs every variant within a few seconds, so each round's ratio to
  // its own 'off' is the figure, and the median of those ratios is what is printed.
  for (const name of names) {
    const values = samples[name];
    const ratios = values.map((v, i) => v / samples.off[i]);
    console.log(
      `${name.padEnd(20)} ${median(ratios).toFixed(3)}x off (median of ${ROUNDS} rounds' ratios)  ${median(values).toFixed(1)} µs CPU per request` +
        ` (${values.map((v) => v.toFixed(0)).join(', ')});  GC pauses ${median(pauses[name]).toFixed(2)} µs per request`,
    );
  }
  for (const v of Object.values(variants)) {
    await v.pool.close();
    await v.sidecar.stop({ graceful: false });
  }
  app.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
