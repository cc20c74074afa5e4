#!/usr/bin/env node
'use strict';

// What each configured feature costs per request, as CPU microseconds: one process runs an
// app, an OTLP sink, one in-process sidecar per bench row (the configs of
// bench/sidecar-configs.js, plus `sidecar-access-log`: sidecar-bare with the access log to a
// file) and a keep-alive client, and measures the process's CPU per request for each row,
// the rows taking turns round after round. Each figure includes the client's and the app's
// share, which is the same for every row: the difference between a row and the row it
// extends is what its feature adds. CPU time moves far less with other load on the machine
// than req/s does, but it still moves: each round runs every row within seconds, so the
// figures that count are per round: a row's CPU minus its base row's in the same round, and
// its ratio to the `bare-undici` row (bench/peers/bare-undici-proxy.js, run in the same
// process: the floor), each the median over the rounds.
//
// Usage: npm run build && node bench/policy-cost.js [requests per round] [rounds]
//   SIDECAR_DIST=other/dist measures another build (its dist folder).
//   POLICY_ROWS=sidecar-bare,sidecar-trace-1 measures some rows only (with the rows they extend).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Pool } = require('undici');
const { SIDECAR_VARIANTS, sidecarConfigYaml } = require('./sidecar-configs');
const { createBareUndiciProxy } = require('./peers/bare-undici-proxy');
const { listen, startAppAndSink } = require('./in-process-peers');

const DIST = path.resolve(process.env.SIDECAR_DIST ?? path.join(__dirname, '..', 'dist'));
const { parseConfigText } = require(path.join(DIST, 'config', 'load'));
const { Sidecar } = require(path.join(DIST, 'sidecar'));

const REQUESTS = Number(process.argv[2] ?? 4000);
const ROUNDS = Number(process.argv[3] ?? 9);
const CONCURRENCY = 8;

/** Row → the row it adds one feature to (its cost is the difference). */
const ROWS = {
  'bare-undici': undefined,
  'sidecar-bare': undefined,
  'sidecar-retries': 'sidecar-bare',
  'sidecar-trace-1': 'sidecar-bare',
  'sidecar-access-log': 'sidecar-bare',
  'sidecar-recorder': 'sidecar-bare',
  sidecar: 'sidecar-bare',
  'sidecar-ratelimit': 'sidecar',
};

if (process.env.POLICY_ROWS) {
  const wanted = new Set(process.env.POLICY_ROWS.split(',').map((name) => name.trim()));
  wanted.add('bare-undici');
  for (const name of [...wanted]) if (ROWS[name] !== undefined) wanted.add(ROWS[name]);
  for (const name of Object.keys(ROWS)) if (!wanted.has(name)) delete ROWS[name];
}

function variantOf(name) {
  if (name === 'sidecar-access-log') return { ...SIDECAR_VARIANTS['sidecar-bare'], accessLog: true };
  return SIDECAR_VARIANTS[name];
}


async function main() {
  const peers = await startAppAndSink();
  const { appPort, sinkPort } = peers;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'policy-cost-'));
  const rows = {};
  for (const name of Object.keys(ROWS)) {
    if (name === 'bare-undici') {
      const floor = createBareUndiciProxy(`http://127.0.0.1:${appPort}`);
      const port = await listen(floor.server);
      rows[name] = { floor, pool: new Pool(`http://127.0.0.1:${port}`, { connections: CONCURRENCY }), samples: [] };
      continue;
    }
    const yaml = sidecarConfigYaml(variantOf(name), {
      port: 0,
      adminPort: 0,
      upstream: `http://127.0.0.1:${appPort}`,
      otlpEndpoint: `http://127.0.0.1:${sinkPort}`,
      accessLogPath: path.join(dir, `${name}.log`),
      certDir: dir,
    });
    const loaded = parseConfigText(yaml, path.join(dir, `${name}.yaml`));
    if (!loaded.ok) throw new Error(`${name}: ${JSON.stringify(loaded.errors)}`);
    const sidecar = await Sidecar.start(loaded.config, { processMetrics: false });
    rows[name] = { sidecar, pool: new Pool(`http://127.0.0.1:${sidecar.listenerPort('bench')}`, { connections: CONCURRENCY }), samples: [] };
  }
  const round = async ({ pool }, n) => {
    const before = process.cpuUsage();
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
    const used = process.cpuUsage(before);
    return (used.user + used.system) / n;
  };
  for (const row of Object.values(rows)) await round(row, 2000); // warm-up
  const order = Object.values(rows);
  // The order rotates each round, so that no row always follows the same one.
  for (let i = 0; i < ROUNDS; i++) for (let k = 0; k < order.length; k++) { const row = order[(i + k) % order.length]; row.samples.push(await round(row, REQUESTS)); }

  const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
  console.log(`node bench/policy-cost.js ${REQUESTS} ${ROUNDS}  (${DIST}; load average ${os.loadavg()[0].toFixed(1)})`);
  console.log('row                  µs CPU/request (median)   rounds                            x bare-undici   adds to              added µs');
  const floorSamples = rows['bare-undici'].samples;
  for (const [name, base] of Object.entries(ROWS)) {
    const samples = rows[name].samples;
    const m = median(samples);
    // Per round: this row against the floor and against its base, measured seconds apart.
    const toFloor = median(samples.map((v, i) => v / floorSamples[i])).toFixed(3);
    const added = base === undefined ? '' : median(samples.map((v, i) => v - rows[base].samples[i])).toFixed(1);
    console.log(`${name.padEnd(20)} ${m.toFixed(1).padStart(8)}                  ${samples.map((v) => v.toFixed(0)).join(', ').padEnd(33)} ${toFloor.padStart(13)}   ${(base ?? '').padEnd(20)} ${added}`);
  }
  for (const row of Object.values(rows)) {
    await row.pool.close();
    if (row.sidecar) await row.sidecar.stop({ graceful: false });
    else await new Promise((resolve) => row.floor.server.close(resolve)).then(() => row.floor.pool.close());
  }
  peers.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
