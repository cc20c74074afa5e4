'use strict';

// Runs autocannon once, in its own process (bench/run.js pins it to a CPU), and prints one
// JSON line: { requests, seconds, rps, p50Ms, p99Ms, errors, non2xx }.
// Latencies are kept per response at full precision (autocannon's own histogram rounds to
// whole milliseconds, too coarse for sub-millisecond proxies).
// Usage: node autocannon.js --url URL --connections 64 --seconds 6 [--rate 1000]
//        (--rate: a fixed total request rate instead of as fast as possible)

const autocannon = require('autocannon');

/** @type {Record<string, string>} */
const flags = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) flags[argv[i].replace(/^--/, '')] = argv[i + 1];

const url = flags.url;
const connections = Number(flags.connections ?? 64);
const seconds = Number(flags.seconds ?? 6);
const rate = Number(flags.rate ?? 0);
if (!url || !(connections > 0) || !(seconds > 0)) {
  process.stderr.write('usage: node autocannon.js --url URL --connections N --seconds S [--rate R]\n');
  process.exit(2);
}

/** @type {number[]} */
const latencies = [];
const started = process.hrtime.bigint();
const instance = autocannon(
  {
    url,
    connections,
    duration: seconds,
    ...(rate > 0 ? { overallRate: rate } : {}),
    // One request per connection at a time, like wrk and a browser.
    pipelining: 1,
  },
  (err, result) => {
    if (err) {
      process.stderr.write(`autocannon: ${err.message}\n`);
      process.exit(1);
    }
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    const sorted = Float64Array.from(latencies).sort();
    const at = (/** @type {number} */ q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);
    const requests = result.requests.total;
    process.stdout.write(
      JSON.stringify({
        requests,
        seconds: elapsed,
        rps: requests / elapsed,
        p50Ms: at(0.5),
        p99Ms: at(0.99),
        errors: result.errors + result.timeouts,
        non2xx: result.non2xx,
      }) + '\n',
    );
  },
);
instance.on('response', (_client, _statusCode, _bytes, responseTimeMs) => latencies.push(responseTimeMs));
process.on('SIGTERM', () => instance.stop());
