// @ts-check
'use strict';

// HTTP/2 end to end: h2load against a node:http2 app directly, then through the sidecar
// (an h2c listener, a cluster with protocol: http2). Same app, same load, one after the other.
// Usage: npm run build && node bench/h2c.js [requests] [clients] [streams per client]
// Needs h2load (nghttp2-client). Prints one line per row: req/s, failed, mean and max latency.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REQUESTS = Number(process.argv[2] ?? 20_000);
const CLIENTS = Number(process.argv[3] ?? 10);
const STREAMS = Number(process.argv[4] ?? 10);
const BODY = JSON.stringify({ id: 42, name: 'widget', tags: ['a', 'b'], price: 9.99 });

async function main() {
  if (spawnSync('h2load', ['--version']).status !== 0) throw new Error('h2load is not installed (apt-get install nghttp2-client)');
  // The app runs in a process of its own: h2load is run synchronously from this one.
  const appPort = 19000 + Math.floor(Math.random() * 1000);
  const appCode = `require('node:http2').createServer((_q, r) => { r.writeHead(200, { 'content-type': 'application/json' }); r.end(${JSON.stringify(BODY)}); }).listen(${appPort}, '127.0.0.1')`;
  const app = spawn(process.execPath, ['-e', appCode], { stdio: 'ignore' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-h2c-'));
  const sidecarPort = 18000 + Math.floor(Math.random() * 1000);
  const config = path.join(dir, 'sidecar.yaml');
  fs.writeFileSync(config, `
admin: { address: 127.0.0.1:0 }
accessLog: { path: off }
tracing: { exporter: none }
listeners:
  - name: h2c
    address: 127.0.0.1:${sidecarPort}
    protocols: [http1, h2c]
    routes: [{ name: all, match: { prefix: / }, cluster: app }]
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: http://127.0.0.1:${appPort} }] }
`);
  const sidecar = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'cli.js'), 'run', '-c', config], { stdio: 'ignore' });
  try {
    await waitForPort(appPort);
    await waitForPort(sidecarPort);
    for (const [row, port] of /** @type {const} */ ([['direct', appPort], ['sidecar', sidecarPort]])) {
      run(port, Math.min(2_000, REQUESTS)); // warm-up
      const out = run(port, REQUESTS);
      const rps = /finished in [^,]+, ([\d.]+) req\/s/.exec(out)?.[1];
      const failed = /(\d+) failed/.exec(out)?.[1];
      const latency = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
      console.log(`${row.padEnd(8)} ${String(rps).padStart(10)} req/s  failed ${failed}  latency min ${latency?.[1]} max ${latency?.[2]} mean ${latency?.[3]}`);
    }
  } finally {
    sidecar.kill();
    app.kill();
  }
}

/** @param {number} port @param {number} requests */
function run(port, requests) {
  const result = spawnSync('h2load', ['-n', String(requests), '-c', String(CLIENTS), '-m', String(STREAMS), `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`h2load failed: ${result.stderr}`);
  return result.stdout;
}

/** @param {number} port */
async function waitForPort(port) {
  for (let i = 0; i < 100; i++) {
    if (spawnSync('h2load', ['-n', '1', '-c', '1', `http://127.0.0.1:${port}/`], { encoding: 'utf8' }).stdout.includes('1 succeeded')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the sidecar did not start');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
