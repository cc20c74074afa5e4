#!/usr/bin/env node
// @ts-check
'use strict';

/**
 * Attack probe (not part of `npm test`): runs a sidecar process (`node dist/cli.js run`) in
 * front of a slow app, attacks it, and measures what a normal client sees meanwhile. The
 * normal client sends one request every ~20 ms (HTTP/1.1 keep-alive, on the plain listener)
 * through three phases:
 *
 *   baseline      nothing else happens
 *   rapid-reset   2 attacking clients open HTTP/2 connections to the TLS listener and send
 *                 500 HEADERS+RST_STREAM(CANCEL) each, reconnecting, for a few seconds
 *   stalled-body  25 clients send `Content-Length: 10` and never send the body
 *
 * For each phase it prints the probes (count, statuses, p50/p99/max latency), and after
 * each attack the endpoint's and the cluster's in-flight counts (once they settled), the
 * circuit breaker, the GOAWAY ENHANCE_YOUR_CALM count and the sidecar's RSS.
 * Loopback only; everything it starts stops by itself (the whole run is bounded).
 *
 *   npm run build && node scripts/attack-probe.js
 *
 * Environment (defaults in brackets):
 *   PROBE_CLI [dist/cli.js]        the sidecar CLI to run (e.g. a build of another commit)
 *   PROBE_BASELINE_S [3]           length of the baseline
 *   PROBE_ATTACK_S [5]             length of the rapid-reset attack
 */

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const http2 = require('node:http2');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { createInterface } = require('node:readline');

const ROOT = path.resolve(__dirname, '..');
const CLI = process.env.PROBE_CLI ?? path.join(ROOT, 'dist', 'cli.js');
const BASELINE_MS = Number(process.env.PROBE_BASELINE_S ?? 3) * 1000;
const ATTACK_MS = Number(process.env.PROBE_ATTACK_S ?? 5) * 1000;
const PROBE_EVERY_MS = 20;
/** A probe that takes longer is counted as a timeout (status 0). */
const PROBE_TIMEOUT_MS = 10_000;
const ATTACKERS = 2;
const STREAMS_PER_CONNECTION = 500;
/** How long an attacking connection stays after its last stream (unless the sidecar closes it first). */
const ATTACKER_LINGER_MS = 200;
const STALLED_CLIENTS = 25;
/** The app answers /slow after this long. */
const APP_SLOW_MS = 1_000;
const ROUTE_TIMEOUT = '3s';
/** The whole run is cut after this long, whatever happens. */
const RUN_BOUND_MS = 120_000;

const cleanups = [];
const bound = setTimeout(() => {
  console.error(`attack-probe: still running after ${RUN_BOUND_MS / 1000}s, stopping`);
  void stopAll().then(() => process.exit(2));
}, RUN_BOUND_MS);

async function stopAll() {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch {
      // best effort
    }
  }
}

/** A self-signed certificate for localhost, made with openssl. */
function makeCertificate(dir) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1'], { stdio: 'ignore' });
  return { key, cert };
}

/** The slow app: /slow answers after APP_SLOW_MS, anything else at once (bodies are read first). */
async function startApp() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/slow') {
        const timer = setTimeout(() => res.end('slow'), APP_SLOW_MS);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      res.end('ok');
    });
  });
  const sockets = new Set();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  cleanups.push(() => new Promise((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve(undefined));
  }));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

async function startSidecar(dir, appUrl, tls) {
  const configPath = path.join(dir, 'sidecar.yaml');
  fs.writeFileSync(configPath, `
admin: { address: 127.0.0.1:0 }
accessLog: { path: /dev/null }
listeners:
  - name: plain
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app, timeout: ${ROUTE_TIMEOUT} }
  - name: secure
    address: 127.0.0.1:0
    tls: { cert: ${JSON.stringify(tls.cert)}, key: ${JSON.stringify(tls.key)} }
    routes:
      - { name: all-tls, match: { prefix: / }, cluster: app, timeout: ${ROUTE_TIMEOUT} }
clusters:
  - name: app
    endpoints: [{ url: ${appUrl} }]
`);
  const child = spawn(process.execPath, [CLI, 'run', '-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
    child.once('exit', () => resolve(undefined));
    child.kill('SIGKILL');
  }));
  const stderr = [];
  const ready = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stderr) });
    lines.on('line', (line) => {
      stderr.push(line);
      if (line.includes('"sidecar ready"')) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`the sidecar exited with ${code}:\n${stderr.join('\n')}`)));
  });
  const address = (name) => {
    const entry = ready.listeners.find((l) => l.startsWith(`${name}@`)) ?? '';
    return entry.slice(entry.indexOf('@') + 1);
  };
  return { pid: child.pid ?? 0, plain: address('plain'), secure: address('secure'), admin: ready.admin };
}

function rssMiB(pid, field = 'VmRSS') {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? NaN : Math.round(Number(match[1]) / 1024);
  } catch {
    return NaN;
  }
}

function getJson(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve(res.headers['content-type']?.includes('json') ? JSON.parse(text) : text));
    });
    req.on('timeout', () => req.destroy(new Error('admin timeout')));
    req.on('error', reject);
  });
}

async function clusterState(admin) {
  const body = await getJson(`http://${admin}/clusters`);
  return body.clusters.find((c) => c.name === 'app');
}

async function metricValue(admin, name) {
  const text = await getJson(`http://${admin}/metrics`);
  let total = 0;
  for (const line of String(text).split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

/** The normal client: one GET / every PROBE_EVERY_MS over one keep-alive connection, recorded under the current phase. */
function startProbe(plain) {
  const [host, port] = plain.split(':');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const samples = new Map();
  let phase = 'baseline';
  let running = true;
  const record = (at, status, ms) => {
    const list = samples.get(at) ?? [];
    list.push({ status, ms });
    samples.set(at, list);
  };
  const once = () => new Promise((resolve) => {
    const started = performance.now();
    const req = http.get({ host, port: Number(port), path: '/', agent, timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on('timeout', () => req.destroy(new Error('probe timeout')));
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }));
  });
  const loop = (async () => {
    while (running) {
      const next = performance.now() + PROBE_EVERY_MS;
      const at = phase; // a probe counts in the phase it started in
      const { status, ms } = await once();
      record(at, status, ms);
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  })();
  return {
    setPhase: (name) => (phase = name),
    stop: async () => {
      running = false;
      await loop;
      agent.destroy();
    },
    samples,
  };
}

/**
 * One attacking connection: STREAMS_PER_CONNECTION HEADERS+RST_STREAM, then it waits at most
 * ATTACKER_LINGER_MS for the sidecar's GOAWAY and moves on to a new connection, whatever the
 * sidecar does (so the attack's rate does not depend on the sidecar's defence).
 */
function rapidResetConnection(secure) {
  return new Promise((resolve) => {
    const session = http2.connect(`https://${secure}`, { rejectUnauthorized: false });
    let goaway;
    let timer = setTimeout(() => session.destroy(), 5_000);
    session.on('error', () => {});
    session.once('goaway', (code) => (goaway = code));
    session.once('close', () => {
      clearTimeout(timer);
      resolve(goaway);
    });
    session.once('connect', () => {
      for (let i = 0; i < STREAMS_PER_CONNECTION && !session.closed && !session.destroyed; i++) {
        try {
          const stream = session.request({ ':path': '/slow' });
          stream.on('error', () => {});
          stream.close(http2.constants.NGHTTP2_CANCEL);
        } catch {
          break; // the session got its GOAWAY
        }
      }
      clearTimeout(timer);
      timer = setTimeout(() => session.destroy(), ATTACKER_LINGER_MS);
    });
  });
}

/** The rapid-reset attack, run in its own process so that its work does not slow the probe's event loop. */
function rapidResetAttackProcess(secure, durationMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, '--rapid-reset-attacker', secure, String(durationMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout?.on('data', (chunk) => (out += chunk));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the attacker exited with ${code}`))));
  });
}

async function rapidResetAttack(secure, untilMs) {
  const goaways = new Map();
  let connections = 0;
  await Promise.all(Array.from({ length: ATTACKERS }, async () => {
    while (performance.now() < untilMs) {
      const code = await rapidResetConnection(secure);
      connections++;
      const key = code === undefined ? 'none' : code === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM ? 'ENHANCE_YOUR_CALM' : `code ${code}`;
      goaways.set(key, (goaways.get(key) ?? 0) + 1);
    }
  }));
  return { connections, goaways: Object.fromEntries(goaways) };
}

/** STALLED_CLIENTS connections announcing a 10-byte body and never sending it; resolves with their statuses once all closed. */
async function stalledBodyAttack(plain) {
  const [host, port] = plain.split(':');
  const one = () => new Promise((resolve) => {
    const socket = net.connect(Number(port), host);
    let text = '';
    const timer = setTimeout(() => socket.destroy(), 30_000);
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('connect', () => socket.write('POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\n'));
    socket.on('close', () => {
      clearTimeout(timer);
      const match = /^HTTP\/1\.1 (\d{3})[^]*?x-sidecar-error: (\w+)/i.exec(text);
      resolve(match === null ? 'no answer' : `${match[1]} ${match[2]}`);
    });
  });
  const answers = await Promise.all(Array.from({ length: STALLED_CLIENTS }, one));
  const counts = {};
  for (const answer of answers) counts[answer] = (counts[answer] ?? 0) + 1;
  return counts;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(list = []) {
  const statuses = {};
  for (const { status } of list) statuses[status] = (statuses[status] ?? 0) + 1;
  const ms = list.map((s) => s.ms).sort((a, b) => a - b);
  const f = (v) => (Number.isNaN(v) ? '-' : v.toFixed(1));
  return `${String(list.length).padStart(5)} probes  statuses ${JSON.stringify(statuses)}  p50 ${f(percentile(ms, 50))} ms  p99 ${f(percentile(ms, 99))} ms  max ${f(ms.at(-1) ?? NaN)} ms`;
}

/** Waits (bounded) for the endpoint's in-flight count to return to 0; returns the cluster then. */
async function settled(admin, boundMs = 15_000) {
  const until = performance.now() + boundMs;
  for (;;) {
    const state = await clusterState(admin);
    if ((state.endpoints[0].inFlight === 0 && state.inFlight === 0) || performance.now() > until) return state;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function describeCluster(state, label) {
  const cb = state.circuitBreaker;
  return `${label}: endpoint in-flight ${state.endpoints[0].inFlight}, cluster in-flight ${state.inFlight}, pending ${state.pending}; ` +
    `breaker ${cb.state} (window: ${cb.window.failures} failures / ${cb.window.calls} calls, opened ${cb.opened}x); endpoint failures ${state.endpoints[0].failures}`;
}

async function main() {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attack-probe-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const tls = makeCertificate(dir);
  const appUrl = await startApp();
  const sidecar = await startSidecar(dir, appUrl, tls);
  console.log(`sidecar pid ${sidecar.pid} (${path.relative(ROOT, CLI) || CLI}), plain ${sidecar.plain}, h2 ${sidecar.secure}; app /slow answers after ${APP_SLOW_MS} ms; route timeout ${ROUTE_TIMEOUT}; probe every ${PROBE_EVERY_MS} ms`);

  const probe = startProbe(sidecar.plain);
  await new Promise((resolve) => setTimeout(resolve, BASELINE_MS));
  const rssBefore = rssMiB(sidecar.pid);
  console.log(`baseline      ${summary(probe.samples.get('baseline'))}`);
  console.log(`              RSS ${rssBefore} MiB`);

  probe.setPhase('rapid-reset');
  const attack = await rapidResetAttackProcess(sidecar.secure, ATTACK_MS);
  probe.setPhase('after-rapid-reset');
  const peakDuring = rssMiB(sidecar.pid, 'VmHWM');
  const afterReset = await settled(sidecar.admin);
  console.log(`rapid-reset   ${summary(probe.samples.get('rapid-reset'))}`);
  console.log(`              ${ATTACKERS} attackers, ${attack.connections} connections x ${STREAMS_PER_CONNECTION} HEADERS+RST: GOAWAY ${JSON.stringify(attack.goaways)}; ` +
    `sidecar_http2_premature_reset_closes_total ${await metricValue(sidecar.admin, 'sidecar_http2_premature_reset_closes_total')}`);
  console.log(`              ${describeCluster(afterReset, 'settled')}`);
  console.log(`after reset   ${summary(probe.samples.get('after-rapid-reset'))}`);
  console.log(`              RSS ${rssMiB(sidecar.pid)} MiB (peak so far ${peakDuring} MiB)`);

  probe.setPhase('stalled-body');
  const stalled = await stalledBodyAttack(sidecar.plain);
  probe.setPhase('after');
  const afterStalled = await settled(sidecar.admin);
  console.log(`stalled-body  ${summary(probe.samples.get('stalled-body'))}`);
  console.log(`              ${STALLED_CLIENTS} stalled clients answered: ${JSON.stringify(stalled)}`);
  console.log(`              ${describeCluster(afterStalled, 'after')}`);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  await probe.stop();
  console.log(`after attacks ${summary(probe.samples.get('after'))}`);
  console.log(`              ${describeCluster(await settled(sidecar.admin), 'final')}`);
  console.log(`              RSS ${rssMiB(sidecar.pid)} MiB (before ${rssBefore} MiB, peak ${rssMiB(sidecar.pid, 'VmHWM')} MiB)`);
}

async function attackerMain(secure, durationMs) {
  const result = await rapidResetAttack(secure, performance.now() + durationMs);
  process.stdout.write(JSON.stringify(result));
}

const attackerMode = process.argv[2] === '--rapid-reset-attacker';
(attackerMode ? attackerMain(process.argv[3], Number(process.argv[4])) : main())
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(async () => {
    clearTimeout(bound);
    await stopAll();
  });
