// @ts-check
'use strict';

// A fixed-rate load generator for the "at 1000 req/s" latency column, used when `hey` is
// not installed. It spreads the requests evenly over time (autocannon's `overallRate`
// sends each connection's quota in a burst at the start of every second, which measures
// burst queueing, not latency at a steady rate). Each latency is measured from the moment
// the request was issued. Prints one JSON line like autocannon.js.
// Usage: node paced.js --url URL --rate 1000 --seconds 6 [--connections 10]

const { Pool } = require('undici');

/** @type {Record<string, string>} */
const flags = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) flags[argv[i].replace(/^--/, '')] = argv[i + 1];

const rate = Number(flags.rate ?? 1000);
const seconds = Number(flags.seconds ?? 6);
const connections = Number(flags.connections ?? 10);
if (!flags.url || !(rate > 0) || !(seconds > 0) || !(connections > 0)) {
  process.stderr.write('usage: node paced.js --url URL --rate R --seconds S [--connections N]\n');
  process.exit(2);
}
const url = new URL(flags.url);
const pool = new Pool(url.origin, { connections, pipelining: 1 });
const path = url.pathname + url.search;
const total = Math.round(rate * seconds);

/** @type {number[]} */
const latencies = [];
let sent = 0;
let done = 0;
let errors = 0;
let non2xx = 0;
const start = performance.now();

function issue() {
  const issued = performance.now();
  sent++;
  pool.request({ path, method: 'GET' }).then(
    async (res) => {
      await res.body.dump();
      latencies.push(performance.now() - issued);
      if (res.statusCode < 200 || res.statusCode > 299) non2xx++;
      finishOne();
    },
    () => {
      errors++;
      finishOne();
    },
  );
}

function finishOne() {
  if (++done === total) report();
}

// Timers fire about every millisecond: each tick issues the requests that are due by now.
function tick() {
  const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000));
  while (sent < due) issue();
  if (sent < total) setTimeout(tick, 1);
}

function report() {
  const elapsed = (performance.now() - start) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  const at = (/** @type {number} */ q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);
  process.stdout.write(
    JSON.stringify({ requests: done, seconds: elapsed, rps: done / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), errors, non2xx }) + '\n',
  );
  pool.close().then(() => process.exit(0));
}

tick();
