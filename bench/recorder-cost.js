#!/usr/bin/env node
'use strict';

// What the flight recorder costs per request: one process runs an app, two or three sidecars
// (recorder off, on, on but keeping nothing) and a keep-alive client, and measures the
// process's CPU per request for each, alternating rounds. The figure includes the client's
// and the app's share, so the recorder's share of the sidecar's own CPU is larger than the
// ratio printed. Usage: npm run build && node bench/recorder-cost.js [requests per round]

const http = require('node:http');
const { Pool } = require('undici');
const { parseConfigText } = require('../dist/config/load');
const { Sidecar } = require('../dist/sidecar');

const ROUNDS = 7;
const REQUESTS = Number(process.argv[2] ?? 5000);
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
  };
  const round = async ({ pool }, n) => {
    const before = process.cpuUsage();
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
    return (used.user + used.system) / n;
  };
  const samples = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
  for (const v of Object.values(variants)) await round(v, 2000); // warm-up
  for (let i = 0; i < ROUNDS; i++) for (const [name, v] of Object.entries(variants)) samples[name].push(await round(v, REQUESTS));
  const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const off = median(samples.off);
  for (const [name, values] of Object.entries(samples)) {
    const m = median(values);
    console.log(`${name.padEnd(20)} ${m.toFixed(1)} µs CPU per request (median of ${ROUNDS} × ${REQUESTS}; ${values.map((v) => v.toFixed(0)).join(', ')})  ${(m / off).toFixed(3)}x off`);
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
