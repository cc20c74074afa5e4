#!/usr/bin/env node
// @ts-check
'use strict';

/**
 * Soak test (not part of `npm test`): a sidecar process under mixed load for N minutes while
 * its config file is rewritten and the apps behind it restart. Every minute it prints the
 * sidecar's RSS, heap, active handles, open descriptors, request rate and every kind of
 * error; the figures must stay flat.
 *
 *   npm run build && node scripts/soak.js
 *
 * Environment (defaults in brackets):
 *   SOAK_MINUTES [30]            how long to run
 *   SOAK_CONCURRENCY [16]        requests in flight at any time
 *   SOAK_RELOAD_EVERY_S [15]     rewrite the config file this often
 *   SOAK_APP_RESTART_EVERY_S [45] kill one of the two apps (SIGKILL) and start it again
 *   SOAK_REPORT_EVERY_S [60]     print a line this often
 *
 * Reloads count only if the sidecar applies file changes (sidecar_config_reloads_total); the
 * line shows how many were applied.
 */

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Agent, request } = require('undici');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const APP = path.join(ROOT, 'examples', 'app', 'server.js');

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 16);
const RELOAD_EVERY_MS = Number(process.env.SOAK_RELOAD_EVERY_S ?? 15) * 1000;
const APP_RESTART_EVERY_MS = Number(process.env.SOAK_APP_RESTART_EVERY_S ?? 45) * 1000;
const REPORT_EVERY_MS = Number(process.env.SOAK_REPORT_EVERY_S ?? 60) * 1000;
const APP_DOWN_MS = 1_000;
const START_TIMEOUT_MS = 30_000;
/** A request that takes longer than this is a hang, counted as an error. */
const CLIENT_BOUND_MS = 30_000;

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** @param {number} port */
async function waitForPort(port) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** @param {number} port */
async function startApp(port) {
  const child = spawn(process.execPath, [APP, '--port', String(port)], { stdio: 'ignore' });
  await waitForPort(port);
  return child;
}

/**
 * @param {{ listenerPort: number, adminPort: number, appPorts: number[], generation: number }} o
 */
function configText(o) {
  return `# soak generation ${o.generation}
admin: { address: 127.0.0.1:${o.adminPort} }
accessLog: { path: "off" }
listeners:
  - name: main
    address: 127.0.0.1:${o.listenerPort}
    headersTimeout: 5s
    requestTimeout: 30s
    routes:
      - name: ping
        match: { path: /sidecar-ping }
        directResponse: { status: 200, body: "pong" }
      - name: admin-deny
        match: { prefix: /admin }
        directResponse: { status: 403, body: "forbidden" }
      - name: app
        match: { prefix: / }
        cluster: app
        timeout: ${o.generation % 2 === 0 ? '5s' : '6s'}
        requestHeaders: { add: { x-soak-generation: "${o.generation}" } }
clusters:
  - name: app
    endpoints:
${o.appPorts.map((p) => `      - url: http://127.0.0.1:${p}`).join('\n')}
    connectTimeout: 500ms
    idleTimeout: 3s
`;
}

/** @param {string} text @param {string} name @param {string} [labels] */
function metric(text, name, labels = '') {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The sum of a family's samples over all its label sets (undefined when it has none). */
function metricSum(text, name) {
  const lines = text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return lines.length === 0 ? undefined : lines.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** @param {number} pid */
function procStats(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number((/^VmRSS:\s+(\d+)/m.exec(status) ?? [0, 0])[1]) * 1024;
    return { rss, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rss: undefined, fds: undefined };
  }
}

/** One request of the mix; resolves with 'ok' or a short description of what went wrong. */
const MIX = [
  { weight: 40, run: (/** @type {string} */ base, /** @type {Agent} */ agent) => expect(request(`${base}/`, { dispatcher: agent }), 200) },
  { weight: 15, run: (base, agent) => expect(request(`${base}/echo`, { dispatcher: agent, method: 'POST', body: crypto.randomBytes(1024 + Math.floor(Math.random() * 63 * 1024)) }), 200) },
  { weight: 10, run: (base, agent) => expect(request(`${base}/slow?ms=${20 + Math.floor(Math.random() * 180)}`, { dispatcher: agent }), 200) },
  { weight: 8, run: (base, agent) => expect(request(`${base}/status/503`, { dispatcher: agent }), 503) },
  { weight: 10, run: (base, agent) => expect(request(`${base}/sidecar-ping`, { dispatcher: agent }), 200) },
  { weight: 3, run: (base, agent) => expect(request(`${base}/echo`, { dispatcher: agent, method: 'PUT', body: crypto.randomBytes(1024 * 1024) }), 200) },
  { weight: 4, run: (base, agent) => expect(request(`${base}/public/%2e%2e/admin`, { dispatcher: agent }), 403) },
  { weight: 5, run: (base, agent) => aborted(base, agent) },
  { weight: 5, run: (base) => smuggle(base) },
];
const TOTAL_WEIGHT = MIX.reduce((n, m) => n + m.weight, 0);

/**
 * @param {Promise<import('undici').Dispatcher.ResponseData>} pending
 * @param {number} status
 */
async function expect(pending, status) {
  const res = await pending;
  await res.body.arrayBuffer();
  if (res.statusCode === status) return 'ok';
  const code = res.headers['x-sidecar-error'];
  return `${res.statusCode}${code === undefined ? '' : ` ${code}`}`;
}

/** A client that gives up mid-request: exercises the disconnect path. */
async function aborted(/** @type {string} */ base, /** @type {Agent} */ agent) {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 5);
  try {
    const res = await request(`${base}/slow?ms=500`, { dispatcher: agent, signal: controller.signal });
    await res.body.arrayBuffer();
  } catch {
    // expected
  }
  return 'ok';
}

/** A smuggling attempt on a raw socket: must get 400 and a closed connection. */
function smuggle(/** @type {string} */ base) {
  const port = Number(new URL(base).port);
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const bound = setTimeout(() => socket.destroy(), CLIENT_BOUND_MS);
    socket.on('connect', () =>
      socket.write('POST / HTTP/1.1\r\nHost: soak\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: soak\r\n\r\n'),
    );
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(bound);
      resolve(/^HTTP\/1\.1 400 /.test(answer) && !answer.includes('forbidden') ? 'ok' : `smuggling answered ${JSON.stringify(answer.slice(0, 20))}`);
    });
  });
}

/** @param {string} base @param {Agent} agent */
async function oneRequest(base, agent) {
  let pick = Math.random() * TOTAL_WEIGHT;
  const entry = MIX.find((m) => (pick -= m.weight) < 0) ?? MIX[0];
  let timer;
  const bound = new Promise((resolve) => (timer = setTimeout(() => resolve('client bound exceeded (hang)'), CLIENT_BOUND_MS)));
  try {
    return await Promise.race([entry.run(base, agent), bound]);
  } catch (error) {
    const code = /** @type {{ code?: string }} */ (error).code;
    return `client ${code ?? (error instanceof Error ? error.message : String(error))}`;
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  if (!fs.existsSync(CLI)) {
    process.stderr.write('dist/cli.js is missing: run `npm run build` first\n');
    process.exit(2);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-soak-'));
  const configFile = path.join(dir, 'sidecar.yaml');
  const [listenerPort, adminPort, appA, appB] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const appPorts = [appA, appB];
  const apps = await Promise.all(appPorts.map(startApp));
  let generation = 0;
  fs.writeFileSync(configFile, configText({ listenerPort, adminPort, appPorts, generation }));

  const sidecar = spawn(process.execPath, [CLI, 'run', '-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let sidecarLog = '';
  sidecar.stderr?.on('data', (chunk) => (sidecarLog = (sidecarLog + chunk.toString()).slice(-20_000)));
  let sidecarExited = false;
  let stopping = false;
  sidecar.once('exit', (code, signal) => {
    sidecarExited = true;
    if (!stopping) process.stderr.write(`\nthe sidecar exited (code ${code}, signal ${signal}); last log lines:\n${sidecarLog}\n`);
  });
  await waitForPort(listenerPort);
  const pid = /** @type {number} */ (sidecar.pid);
  const base = `http://127.0.0.1:${listenerPort}`;
  const adminBase = `http://127.0.0.1:${adminPort}`;
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 4_000 });

  process.stdout.write(
    `soak: ${MINUTES} min, ${CONCURRENCY} in flight, config rewrite every ${RELOAD_EVERY_MS / 1000} s, ` +
      `app restart every ${APP_RESTART_EVERY_MS / 1000} s; sidecar pid ${pid}, node ${process.version}\n`,
  );
  process.stdout.write('min   rss_MiB heap_MiB handles  fds    req/s     ok  errors(this interval)                          reloads restarts\n');

  const startedAt = Date.now();
  const endAt = startedAt + MINUTES * 60_000;
  /** @type {Map<string, number>} */
  let interval = new Map();
  /** @type {Map<string, number>} */
  const total = new Map();
  let intervalStartedAt = startedAt;
  let restarts = 0;
  let reloadsWritten = 0;
  const rows = [];

  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < endAt && !sidecarExited) {
      const outcome = await oneRequest(base, agent);
      interval.set(outcome, (interval.get(outcome) ?? 0) + 1);
      total.set(outcome, (total.get(outcome) ?? 0) + 1);
    }
  });

  const reloadTimer = setInterval(() => {
    generation++;
    reloadsWritten++;
    fs.writeFileSync(configFile, configText({ listenerPort, adminPort, appPorts, generation }));
  }, RELOAD_EVERY_MS);

  let nextRestart = 0;
  /** The restart under way, awaited before the end so no app outlives the script. */
  let restarting = Promise.resolve();
  const restartTimer = setInterval(() => {
    const index = nextRestart++ % apps.length;
    restarting = restarting.then(async () => {
      apps[index].kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, APP_DOWN_MS));
      apps[index] = await startApp(appPorts[index]);
      restarts++;
    }).catch((error) => process.stderr.write(`app restart failed: ${error instanceof Error ? error.message : String(error)}\n`));
  }, APP_RESTART_EVERY_MS);

  const report = async () => {
    const now = Date.now();
    const seconds = (now - intervalStartedAt) / 1000;
    let text = '';
    try {
      const res = await request(`${adminBase}/metrics`);
      text = await res.body.text();
    } catch {
      // the row shows blanks
    }
    const { rss, fds } = procStats(pid);
    // prom-client's default metrics, under the sidecar's prefix (src/telemetry/metrics/metrics.ts).
    const heap = metric(text, 'sidecar_nodejs_heap_size_used_bytes');
    const handles = metricSum(text, 'sidecar_nodejs_active_handles');
    const reloads = metric(text, 'sidecar_config_reloads_total', '{result="success"}');
    const count = [...interval.values()].reduce((a, b) => a + b, 0);
    const ok = interval.get('ok') ?? 0;
    const errors = [...interval].filter(([k]) => k !== 'ok').map(([k, v]) => `${k}:${v}`).join(' ') || '-';
    const mib = (/** @type {number | undefined} */ bytes) => (bytes === undefined ? '?' : (bytes / 1024 / 1024).toFixed(1));
    const row = { minute: (now - startedAt) / 60_000, rss, heap, handles, fds, rate: count / seconds, ok, errors };
    rows.push(row);
    process.stdout.write(
      `${row.minute.toFixed(1).padStart(4)}  ${mib(rss).padStart(7)} ${mib(heap).padStart(8)} ${String(handles ?? '?').padStart(7)} ${String(fds ?? '?').padStart(4)} ` +
        `${row.rate.toFixed(0).padStart(8)} ${String(ok).padStart(6)}  ${errors.padEnd(46)} ${String(reloads ?? '?').padStart(3)}/${reloadsWritten} ${String(restarts).padStart(4)}\n`,
    );
    interval = new Map();
    intervalStartedAt = now;
  };
  const reportTimer = setInterval(() => void report(), REPORT_EVERY_MS);

  await Promise.all(workers);
  clearInterval(reloadTimer);
  clearInterval(restartTimer);
  clearInterval(reportTimer);
  if (!sidecarExited) await report();

  const all = [...total].sort((a, b) => b[1] - a[1]);
  const requests = all.reduce((n, [, v]) => n + v, 0);
  process.stdout.write(`\ntotal: ${requests} requests; ${all.map(([k, v]) => `${k}: ${v}`).join(', ')}\n`);
  const measured = rows.filter((r) => r.rss !== undefined);
  if (measured.length >= 2) {
    const first = measured[0];
    const last = measured[measured.length - 1];
    const mib = (/** @type {number} */ bytes) => (bytes / 1024 / 1024).toFixed(1);
    process.stdout.write(
      `rss first report ${mib(/** @type {number} */ (first.rss))} MiB, last ${mib(/** @type {number} */ (last.rss))} MiB, ` +
        `max ${mib(Math.max(...measured.map((r) => /** @type {number} */ (r.rss))))} MiB; handles first ${first.handles}, last ${last.handles}; fds first ${first.fds}, last ${last.fds}\n`,
    );
  }
  process.stdout.write(`sidecar ${sidecarExited ? 'DIED' : 'stayed up'}\n`);
  const died = sidecarExited;
  stopping = true;

  await agent.close();
  await restarting;
  for (const app of apps) app.kill('SIGKILL');
  if (!sidecarExited) {
    sidecar.kill('SIGTERM');
    await new Promise((resolve) => sidecar.once('exit', resolve));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(died ? 1 : 0);
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
