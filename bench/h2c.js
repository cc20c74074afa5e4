// @ts-check
'use strict';

// HTTP/2 end to end: h2load against a node:http2 app directly, then through the sidecar
// (an h2c listener, a cluster with protocol: http2). Same app, same load, one after the other;
// GETs, then POSTs with a 1 KB body (a streamed request body, as every gRPC call has).
// Usage: npm run build && node bench/h2c.js [requests] [clients] [streams per client]
// Needs h2load (nghttp2-client). Prints one line per row: req/s, failed, mean and max
// latency, the sidecar's req/s as a ratio of direct, and the connections the app accepted.

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
  // The app reads each request's body to its end before it answers; it prints a line per connection.
  const appCode = `const s = require('node:http2').createServer((q, r) => { q.resume(); q.on('end', () => { r.writeHead(200, { 'content-type': 'application/json' }); r.end(${JSON.stringify(BODY)}); }); }); s.on('session', () => process.stdout.write('c\\n')); s.listen(${appPort}, '127.0.0.1')`;
  const app = spawn(process.execPath, ['-e', appCode], { stdio: ['ignore', 'pipe', 'ignore'] });
  let appConnections = 0;
  app.stdout.on('data', (chunk) => (appConnections += String(chunk).split('\n').length - 1));
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
    const bodyFile = path.join(dir, 'body');
    fs.writeFileSync(bodyFile, 'x'.repeat(1_000));
    for (const [method, extra] of /** @type {const} */ ([['GET', []], ['POST', ['-d', bodyFile]]])) {
      /** @type {number | undefined} */
      let directRps;
      for (const [row, port] of /** @type {const} */ ([['direct', appPort], ['sidecar', sidecarPort]])) {
        const connectionsBefore = appConnections;
        run(port, Math.min(2_000, REQUESTS), extra); // warm-up
        const out = run(port, REQUESTS, extra);
        // h2load runs synchronously: the app's lines are read once this process gets a turn.
        await new Promise((resolve) => setTimeout(resolve, 200));
        const rps = Number(/finished in [^,]+, ([\d.]+) req\/s/.exec(out)?.[1]);
        const failed = /(\d+) failed/.exec(out)?.[1];
        const latency = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
        if (row === 'direct') directRps = rps;
        const ratio = row === 'sidecar' && directRps ? `  ${(rps / directRps).toFixed(2)}x direct` : '';
        console.log(`${method.padEnd(5)} ${row.padEnd(8)} ${rps.toFixed(0).padStart(8)} req/s  failed ${failed}  latency min ${latency?.[1]} max ${latency?.[2]} mean ${latency?.[3]}  app connections ${appConnections - connectionsBefore}${ratio}`);
      }
    }
  } finally {
    sidecar.kill();
    app.kill();
  }
}

/** @param {number} port @param {number} requests @param {readonly string[]} extra */
function run(port, requests, extra) {
  const result = spawnSync('h2load', ['-n', String(requests), '-c', String(CLIENTS), '-m', String(STREAMS), ...extra, `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
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
