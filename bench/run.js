#!/usr/bin/env node
// @ts-check
'use strict';

// Side-by-side proxy benchmark: the same upstream, the same load, one proxy at a time.
// See bench/README.md. Usage: npm run bench   (or: node bench/run.js after npm run build)

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { SIDECAR_VARIANTS, sidecarConfigYaml } = require('./sidecar-configs');

const ROOT = path.resolve(__dirname, '..');
const UPSTREAM_BODY = '{"ok":true,"service":"bench-upstream","payload":"0123456789abcdef0123456789abcdef"}';
const DEFAULT_SECONDS = 6;
const DEFAULT_WARMUP_SECONDS = 2;
const DEFAULT_CONNECTIONS = 64;
const DEFAULT_FIXED_RATE = 1000;
/** Connections for the fixed-rate run (as peers.sh: hey -c 10 -q 100). */
const FIXED_RATE_CONNECTIONS = 10;
const START_TIMEOUT_MS = Number(process.env.BENCH_START_TIMEOUT_MS ?? 15_000);
const STOP_TIMEOUT_MS = 3_000;
/** Above this share of the proxy's CPU taken by others during a row, the report flags the row. */
const NOISY_OTHERS_PERCENT = 10;
/** A profiled process writes its .cpuprofile at exit: give it time before SIGKILL. */
const PROFILED_STOP_TIMEOUT_MS = 20_000;
const POLL_INTERVAL_MS = 50;
/** The proxy's CPU, and the one the upstream and load generator share, when pinned. */
const PROXY_CPU = '1';
const LOAD_CPU = '0';
const SIDECAR_TARGETS = Object.keys(SIDECAR_VARIANTS);
const PEER_TARGETS = ['bare-undici', 'node-http-proxy', 'fastify-http-proxy', 'nginx', 'haproxy'];
/** Run and table order: the machine's ceiling, the sidecar rows, then the other proxies. */
const ALL_TARGETS = ['direct', ...SIDECAR_TARGETS, ...PEER_TARGETS];
/** The environment variables this script reads, echoed in the command line it prints. */
const OPTION_VARIABLES = [
  'BENCH_SECONDS',
  'BENCH_ROUNDS',
  'BENCH_WARMUP',
  'BENCH_CONNECTIONS',
  'BENCH_RATE',
  'BENCH_ONLY',
  'BENCH_LOADGEN',
  'BENCH_UPSTREAM',
  'BENCH_ACCESS_LOG',
  'BENCH_PIN',
  'BENCH_PROFILE',
  'BENCH_PROFILE_DIR',
  'BENCH_MARKDOWN',
  'BENCH_START_TIMEOUT_MS',
  'BENCH_NODE_FLAGS',
  'SIDECAR_CONFIG',
  'SIDECAR_CLI',
];

// ---------------------------------------------------------------- options

const options = {
  seconds: positiveNumber('BENCH_SECONDS', DEFAULT_SECONDS),
  /**
   * Each row runs this many times, the rows taking turns (a, b, c, a, b, c, ...), and the
   * report shows each row's median run by max req/s: on a shared machine one run of a row
   * can be 20% off the next, which single-run ratios cannot tell from a real difference.
   */
  rounds: Math.max(1, Math.round(positiveNumber('BENCH_ROUNDS', 1))),
  warmupSeconds: positiveNumber('BENCH_WARMUP', DEFAULT_WARMUP_SECONDS, true),
  connections: positiveNumber('BENCH_CONNECTIONS', DEFAULT_CONNECTIONS),
  /** 0 skips the fixed-rate column. */
  fixedRate: positiveNumber('BENCH_RATE', DEFAULT_FIXED_RATE, true),
  only: listOption('BENCH_ONLY', ALL_TARGETS),
  /** wrk | autocannon; default: wrk when installed. */
  loadgen: process.env.BENCH_LOADGEN,
  /** nginx | node; default: nginx when installed. */
  upstream: process.env.BENCH_UPSTREAM,
  /** The access log of the rows that keep one: file (in the work folder) | stdout (to /dev/null) | off. */
  accessLog: process.env.BENCH_ACCESS_LOG || 'file',
  pin: process.env.BENCH_PIN !== '0',
  /** Rows run under `node --cpu-prof`: BENCH_PROFILE=1 means the sidecar row. */
  profile: profileOption(),
  profileDir: path.resolve(process.env.BENCH_PROFILE_DIR || path.join(os.tmpdir(), `sidecar-bench-profiles-${Date.now()}`)),
  /** Tables as markdown, ready to paste into docs/PERFORMANCE.md. */
  markdown: process.env.BENCH_MARKDOWN === '1',
  /**
   * node flags for the proxies under test (the sidecar rows and the Node peers), e.g.
   * --no-maglev as the image runs it: NODE_OPTIONS refuses most V8 flags, and would reach the
   * upstream and the load generator too.
   */
  nodeFlags: (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean),
  sidecarConfig: process.env.SIDECAR_CONFIG,
  /** The sidecar's CLI, e.g. another checkout's build. */
  sidecarCli: path.resolve(process.env.SIDECAR_CLI ?? path.join(ROOT, 'dist', 'cli.js')),
};

/**
 * @param {string} name
 * @param {number} fallback
 * @param {boolean} [zeroAllowed]
 */
function positiveNumber(name, fallback, zeroAllowed = false) {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed)) fail(`${name}=${text} is not a valid number`);
  return value;
}

/**
 * @param {string} name
 * @param {string[]} known
 */
function listOption(name, known) {
  const text = process.env[name];
  if (!text) return known;
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = list.filter((s) => !known.includes(s));
  if (unknown.length) fail(`${name}: unknown target(s) ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return known.filter((s) => list.includes(s));
}

/** BENCH_PROFILE: 1 for the sidecar row, or a comma list of sidecar rows. */
function profileOption() {
  const text = process.env.BENCH_PROFILE;
  if (!text || text === '0') return [];
  if (text === '1') return ['sidecar'];
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = list.filter((s) => !SIDECAR_TARGETS.includes(s));
  if (unknown.length) fail(`BENCH_PROFILE: ${unknown.join(', ')} is not a sidecar row (known: 1, ${SIDECAR_TARGETS.join(', ')})`);
  return list;
}

/** @param {string} message */
function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- child processes

/**
 * Every child still running; killed on any exit.
 * @type {Set<import('node:child_process').ChildProcess>}
 */
const children = new Set();
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidecar-bench-'));
/**
 * Files written outside workDir (a rewritten SIDECAR_CONFIG), removed on exit.
 * @type {string[]}
 */
const extraFiles = [];

process.on('exit', () => {
  for (const child of children) signalGroup(child, 'SIGKILL');
  fs.rmSync(workDir, { recursive: true, force: true });
  for (const file of extraFiles) fs.rmSync(file, { force: true });
});
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping\n`);
    process.exit(130);
  });
}

/**
 * Each child leads its own process group, so that a signal reaches the workers it forked
 * (nginx's and haproxy's would outlive their master otherwise).
 * @param {import('node:child_process').ChildProcess} child
 * @param {NodeJS.Signals} signal
 */
function signalGroup(child, signal) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** @param {string} name */
function hasCommand(name) {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/sbin', '/sbin', '/usr/local/sbin']);
  return dirs.some((dir) => {
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
const pinning = options.pin && cores >= 2 && hasCommand('taskset');

/**
 * The command, run on `cpu` when pinning (taskset execs it: the pid stays the command's);
 * `cpu` undefined: on every core (a sidecar with several workers).
 * @param {string | undefined} cpu
 * @param {string} command
 * @param {string[]} args
 * @returns {[string, string[]]}
 */
function onCpu(cpu, command, args) {
  return pinning && cpu !== undefined ? ['taskset', ['-c', cpu, command, ...args]] : [command, args];
}

/**
 * Starts a long-running process; its stdout goes to /dev/null, its stderr to a log file
 * whose tail explains a failed start.
 * @param {string} name
 * @param {string | undefined} cpu  undefined: not pinned
 * @param {string} command
 * @param {string[]} args
 * @param {{ env?: NodeJS.ProcessEnv, stopTimeoutMs?: number }} [settings]
 */
function startProcess(name, cpu, command, args, settings = {}) {
  const logPath = path.join(workDir, `${name}.log`);
  const log = fs.openSync(logPath, 'w');
  const [cmd, argv] = onCpu(cpu, command, args);
  const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', log], detached: true, env: settings.env ?? process.env });
  fs.closeSync(log);
  children.add(child);
  /** @type {{ code: number | null, signal: string | null } | undefined} */
  let exited;
  /** @type {Error | undefined} */
  let spawnError;
  child.on('error', (err) => (spawnError = err));
  const done = new Promise((resolve) =>
    child.on('close', (code, signal) => {
      exited = { code, signal };
      children.delete(child);
      resolve(undefined);
    }),
  );
  return {
    name,
    child,
    logPath,
    /** Why it is not running, or undefined while it runs. */
    failure() {
      if (spawnError) return spawnError.message;
      if (!exited) return undefined;
      const tail = lastLine(logPath);
      return `exited with ${exited.signal ?? `code ${exited.code}`}${tail ? `: ${tail}` : ''}`;
    },
    async stop() {
      if (exited || spawnError) return;
      signalGroup(child, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), settings.stopTimeoutMs ?? STOP_TIMEOUT_MS);
      await done;
      clearTimeout(timer);
    },
  };
}

/**
 * The most telling line of a log: the last error message (a crash ends with a stack and
 * Node's version), else the last line.
 * @param {string} file
 */
function lastLine(file) {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
    const error = lines.findLast((l) => /^(\w*Error|error)\b/.test(l) && !l.startsWith('at '));
    return (error ?? lines.findLast((l) => !/^(Node\.js v|at )/.test(l)) ?? '').slice(0, 200);
  } catch {
    return '';
  }
}

/**
 * Runs a load generator to completion on the load CPU and returns its stdout. Node-based
 * generators trust the bench's CA (NODE_EXTRA_CA_CERTS) once the TLS row has made one; wrk
 * and hey do not verify certificates.
 * @param {string} command
 * @param {string[]} args
 */
function runToEnd(command, args) {
  const [cmd, argv] = onCpu(LOAD_CPU, command, args);
  const env = tlsFiles ? { ...process.env, NODE_EXTRA_CA_CERTS: tlsFiles.ca } : process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`${command} exited with code ${code}: ${err.trim().split('\n').at(-1) ?? ''}`));
    });
  });
}

/**
 * `count` distinct free TCP ports on the loopback, held open together so that none repeats
 * (one may still be taken by someone else before use; unlikely on a bench machine).
 * @param {number} count
 * @returns {Promise<number[]>}
 */
async function freePorts(count) {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        /** @type {Promise<net.Server>} */ (
          new Promise((resolve, reject) => {
            const server = net.createServer();
            server.on('error', reject);
            server.listen(0, '127.0.0.1', () => resolve(server));
          })
        ),
    ),
  );
  const ports = servers.map((s) => /** @type {net.AddressInfo} */ (s.address()).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

async function freePort() {
  return (await freePorts(1))[0];
}

// ---------------------------------------------------------------- readiness

/**
 * One short GET; resolves with status and body, rejects on any socket error.
 * @param {string} url
 * @returns {Promise<{ status: number, body: string }>}
 */
function getOnce(url) {
  const secure = url.startsWith('https:');
  const client = secure ? https : http;
  /** @type {https.RequestOptions} */
  const requestOptions = { agent: false, timeout: 1_000 };
  if (secure && tlsFiles) requestOptions.ca = fs.readFileSync(tlsFiles.ca);
  return new Promise((resolve, reject) => {
    const req = client.get(url, requestOptions, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 1 s')));
    req.on('error', reject);
  });
}

/**
 * Polls `url` until it answers 2xx; fails early when the process has exited.
 * @param {string} url
 * @param {{ failure(): string | undefined } | undefined} proc
 * @returns {Promise<string>} the body of the first good answer
 */
async function waitUntilAnswering(url, proc) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = 'no answer';
  for (;;) {
    const failure = proc?.failure();
    if (failure) throw new Error(failure);
    try {
      const res = await getOnce(url);
      if (res.status >= 200 && res.status < 300) return res.body;
      last = `HTTP ${res.status} ${res.body.slice(0, 120).replace(/\s+/g, ' ')}`;
    } catch (err) {
      last = /** @type {NodeJS.ErrnoException} */ (err).code ?? /** @type {Error} */ (err).message;
    }
    if (Date.now() > deadline) throw new Error(`no good answer within ${START_TIMEOUT_MS / 1000} s (last: ${last})`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

// ---------------------------------------------------------------- /proc accounting

const CLOCK_TICKS = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return n > 0 ? n : 100;
})();
const HAS_PROC = fs.existsSync('/proc/self/stat');

/** @param {number} pid @returns {{ ppid: number, cpuTicks: number } | undefined} */
function readStat(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/**
 * The pid and all its descendants (nginx and haproxy fork workers; the sidecar may too).
 * @param {number} root
 */
function processTree(root) {
  /** @type {Map<number, number[]>} */
  const kids = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const list = kids.get(stat.ppid) ?? [];
    list.push(Number(entry));
    kids.set(stat.ppid, list);
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) ?? []));
  return out;
}

/**
 * CPU seconds (user + system) used so far by the process tree.
 * @param {number} pid
 */
function cpuSeconds(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) ticks += readStat(p)?.cpuTicks ?? 0;
  return ticks / CLOCK_TICKS;
}

/**
 * Ticks one CPU has spent running processes (user, nice, system) or stolen by the hypervisor
 * for another machine, and in all, from /proc/stat. Interrupt and softirq time is left out of
 * `busy`: it is mostly the loopback traffic of the proxy itself, accounted to no process.
 * @param {string} cpu
 * @returns {{ busy: number, total: number } | undefined}
 */
function cpuTicks(cpu) {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `));
    if (!line) return undefined;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = user + nice + system + (steal || 0);
    return { busy, total: busy + idle + iowait + irq + softirq };
  } catch {
    return undefined;
  }
}

/**
 * Share (%) of the proxy's CPU that something other than the proxy used between two
 * readings: other engineers' work, or the hypervisor's steal. High values make a row's
 * figures unreliable.
 * @param {{ busy: number, total: number } | undefined} before
 * @param {{ busy: number, total: number } | undefined} after
 * @param {number} proxyCpuSeconds
 */
function othersPercent(before, after, proxyCpuSeconds) {
  if (!before || !after || after.total <= before.total) return undefined;
  const others = after.busy - before.busy - proxyCpuSeconds * CLOCK_TICKS;
  return Math.max(0, (others * 100) / (after.total - before.total));
}

/**
 * Peak resident memory (VmHWM) of the process tree, MiB.
 * @param {number} pid
 */
function peakRssMiB(pid) {
  let kib = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      // the process ended meanwhile
    }
  }
  return kib / 1024;
}

// ---------------------------------------------------------------- load generators

/**
 * @typedef {object} LoadResult
 * @property {number} requests
 * @property {number} rps
 * @property {number} p50Ms
 * @property {number} p99Ms
 * @property {number} errors   socket errors and timeouts
 * @property {number} non2xx
 */

const useWrk = options.loadgen ? options.loadgen === 'wrk' : hasCommand('wrk');
if (!['file', 'stdout', 'off'].includes(options.accessLog)) fail('BENCH_ACCESS_LOG must be file, stdout or off');
if (options.loadgen && !['wrk', 'autocannon'].includes(options.loadgen)) fail('BENCH_LOADGEN must be wrk or autocannon');
if (useWrk && !hasCommand('wrk')) fail('BENCH_LOADGEN=wrk but wrk is not installed (apt-get install wrk)');
const hasAutocannon = (() => {
  try {
    require.resolve('autocannon');
    return true;
  } catch {
    return false;
  }
})();
if (!useWrk && !hasAutocannon) fail('no load generator: install wrk (apt-get install wrk) or run npm install (autocannon)');
const useHey = hasCommand('hey');
const hasPaced = (() => {
  try {
    require.resolve('undici');
    return true;
  } catch {
    return false;
  }
})();

/**
 * Closed-loop load: as many requests as `connections` keep-alive connections carry.
 * @param {string} url
 * @param {number} seconds
 * @returns {Promise<LoadResult>}
 */
async function maxLoad(url, seconds) {
  const connections = String(options.connections);
  if (useWrk) {
    const out = await runToEnd('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', url]);
    return parseWrk(out);
  }
  const out = await runToEnd(process.execPath, [
    path.join(__dirname, 'load', 'autocannon.js'),
    ...['--url', url, '--connections', connections, '--seconds', String(seconds)],
  ]);
  return JSON.parse(out);
}

/**
 * Open-loop load at a fixed rate, for latency without queueing.
 * @param {string} url
 * @param {number} seconds
 * @returns {Promise<LoadResult>}
 */
async function fixedRateLoad(url, seconds) {
  const perConnection = options.fixedRate / FIXED_RATE_CONNECTIONS;
  if (useHey) {
    const out = await runToEnd('hey', ['-z', `${seconds}s`, '-c', String(FIXED_RATE_CONNECTIONS), '-q', String(perConnection), url]);
    return parseHey(out);
  }
  const out = await runToEnd(process.execPath, [
    path.join(__dirname, 'load', 'paced.js'),
    ...['--url', url, '--rate', String(options.fixedRate), '--seconds', String(seconds)],
    ...['--connections', String(FIXED_RATE_CONNECTIONS)],
  ]);
  return JSON.parse(out);
}

/** @param {string} text wrk's duration, e.g. 812.00us, 1.20ms, 2.01s */
function wrkMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[/** @type {'us'|'ms'|'s'|'m'} */ (m[2])];
  return Number(m[1]) * scale;
}

/** @param {string} out @returns {LoadResult} */
function parseWrk(out) {
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50Ms: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99Ms: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    errors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
  };
}

/** @param {string} out @returns {LoadResult} */
function parseHey(out) {
  let requests = 0;
  let ok = 0;
  for (const m of out.matchAll(/\[(\d+)\]\s+(\d+) responses/g)) {
    requests += Number(m[2]);
    if (m[1].startsWith('2')) ok += Number(m[2]);
  }
  const errors = [...out.matchAll(/^\s+\[(\d+)\]\s+Get .*$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  return {
    requests,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50Ms: Number(/ 50% in ([\d.]+) secs/.exec(out)?.[1] ?? NaN) * 1000,
    p99Ms: Number(/ 99% in ([\d.]+) secs/.exec(out)?.[1] ?? NaN) * 1000,
    errors,
    non2xx: requests - ok,
  };
}

// ---------------------------------------------------------------- upstream and proxies

/**
 * @typedef {ReturnType<typeof startProcess>} Proc
 * @typedef {object} Started
 * @property {number} port
 * @property {Proc | undefined} proc
 * @property {'http' | 'https'} [scheme]  default http
 * @property {boolean} [unpinned]          runs on every core
 * @property {boolean} [profiled]          runs under --cpu-prof
 * @property {() => Promise<string[]>} [beforeStop]  what the row did, read while it still runs
 * @property {() => Promise<string[]>} [afterStop]   what the row did, read once it has stopped
 */

/** @param {string} name @param {string} text */
function writeWork(name, text) {
  const file = path.join(workDir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** @param {string} name @param {number} port @param {string} body @param {string} [upstreamBlock] */
function nginxConfig(name, port, body, upstreamBlock = '') {
  const tmp = path.join(workDir, `${name}-tmp`);
  fs.mkdirSync(tmp, { recursive: true });
  return writeWork(
    `${name}.conf`,
    `worker_processes 1; daemon off; pid ${workDir}/${name}.pid; error_log ${workDir}/${name}.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path ${tmp}/body; proxy_temp_path ${tmp}/proxy; fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi; scgi_temp_path ${tmp}/scgi;
  ${upstreamBlock}
  server { listen 127.0.0.1:${port} backlog=4096; ${body} } }
`,
  );
}

/** @param {string} name @param {string} cpu @param {string} conf */
function startNginx(name, cpu, conf) {
  return startProcess(name, cpu, 'nginx', ['-p', workDir, '-e', path.join(workDir, `${name}.err`), '-c', conf]);
}

const useNginxUpstream = options.upstream ? options.upstream === 'nginx' : hasCommand('nginx');
if (options.upstream && !['nginx', 'node'].includes(options.upstream)) fail('BENCH_UPSTREAM must be nginx or node');

/** @returns {Promise<Started>} */
async function startUpstream() {
  const port = await freePort();
  if (useNginxUpstream) {
    const conf = nginxConfig('upstream', port, `location / { default_type application/json; return 200 '${UPSTREAM_BODY}'; }`);
    return { port, proc: startNginx('upstream', LOAD_CPU, conf) };
  }
  const script = path.join(__dirname, 'peers', 'upstream.js');
  return { port, proc: startProcess('upstream', LOAD_CPU, process.execPath, [script, '--port', String(port)]) };
}

/** @param {string} file @param {number} upstreamPort */
function nodePeer(file, upstreamPort) {
  return async () => {
    const port = await freePort();
    const script = path.join(__dirname, 'peers', file);
    const args = [...options.nodeFlags, script, '--port', String(port), '--upstream', `http://127.0.0.1:${upstreamPort}`];
    return { port, proc: startProcess(file.replace(/\.js$/, ''), PROXY_CPU, process.execPath, args) };
  };
}

// ---------------------------------------------------------------- the sidecar rows

/**
 * The OTLP sink the traced rows export to, on the load CPU; started once, when a traced row
 * is selected.
 * @type {{ port: number, proc: Proc } | undefined}
 */
let otlpSink;

/** @returns {Promise<{ requests: number, bytes: number }>} */
async function sinkStats() {
  if (!otlpSink) return { requests: 0, bytes: 0 };
  const res = await getOnce(`http://127.0.0.1:${otlpSink.port}/stats`);
  return JSON.parse(res.body);
}

async function startOtlpSink() {
  const port = await freePort();
  const script = path.join(__dirname, 'peers', 'otlp-sink.js');
  const proc = startProcess('otlp-sink', LOAD_CPU, process.execPath, [script, '--port', String(port)]);
  await waitUntilAnswering(`http://127.0.0.1:${port}/stats`, proc);
  otlpSink = { port, proc };
}

/**
 * The TLS row's certificates, made once by the sidecar's own `certs` command.
 * @type {{ dir: string, ca: string } | undefined}
 */
let tlsFiles;

/** @param {string} cli */
function makeCertificates(cli) {
  if (tlsFiles) return tlsFiles;
  const dir = path.join(workDir, 'certs');
  const made = spawnSync(process.execPath, [cli, 'certs', '--out', dir, '--ip', '127.0.0.1', '--host', 'localhost'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`sidecar certs failed: ${(made.stderr || made.stdout).trim().split('\n').at(-1)}`);
  tlsFiles = { dir, ca: path.join(dir, 'ca.crt') };
  return tlsFiles;
}

/**
 * `sidecar validate FILE`: a generated config that the schema refuses is a bench bug, shown
 * in the row rather than as a sidecar that does not start.
 * @param {string} cli
 * @param {string} file
 */
function validateConfig(cli, file) {
  const checked = spawnSync(process.execPath, [cli, 'validate', file], { encoding: 'utf8' });
  if (checked.status !== 0) throw new Error(`invalid config ${path.basename(file)}: ${(checked.stderr || checked.stdout).trim().replace(/\s+/g, ' ').slice(0, 300)}`);
}

/** The bench's environment without OTEL_* variables: the generated tracing section alone decides. */
function sidecarEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OTEL_')));
}

/**
 * SIDECAR_CONFIG with its addresses pointed at the bench: the first listener's address, the
 * admin address and every cluster endpoint are replaced, so that it runs against the bench's
 * upstream on free ports; everything else is kept. It is written next to the original,
 * because relative paths in it resolve against its folder.
 * @param {string} given
 * @param {number} port
 * @param {number} adminPort
 * @param {string} upstream
 */
function rewrittenConfigFile(given, port, adminPort, upstream) {
  const YAML = require('yaml');
  const source = path.resolve(given);
  const doc = YAML.parse(fs.readFileSync(source, 'utf8'));
  if (!doc?.listeners?.length) throw new Error(`${source} has no listeners`);
  if (doc.listeners[0].tls) throw new Error(`${source}: the first listener uses TLS; the sidecar row speaks plain HTTP`);
  doc.admin = { ...(doc.admin ?? {}), address: `127.0.0.1:${adminPort}` };
  doc.listeners[0].address = `127.0.0.1:${port}`;
  for (const cluster of doc.clusters ?? []) {
    for (const endpoint of cluster.endpoints ?? []) endpoint.url = upstream;
  }
  const file = path.join(path.dirname(source), `.bench-${process.pid}-${path.basename(source)}`);
  fs.writeFileSync(file, `# Generated by bench/run.js from ${path.basename(source)}\n${YAML.stringify(doc)}`);
  extraFiles.push(file);
  return file;
}

/**
 * The Prometheus samples of one metric family summed over their labels, optionally only
 * those whose labels contain `labelText`.
 * @param {string} exposition
 * @param {string} name
 * @param {string} [labelText]
 */
function metricSum(exposition, name, labelText) {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name) || !/[ {]/.test(line[name.length] ?? '')) continue;
    if (labelText && !line.includes(labelText)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * Lines and bytes of a file, read in chunks (an access log of a row runs to tens of MB).
 * @param {string} file
 */
function countLines(file) {
  const fd = fs.openSync(file, 'r');
  const buffer = Buffer.alloc(1 << 20);
  let lines = 0;
  let bytes = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      bytes += n;
      for (let i = buffer.indexOf(10); i !== -1 && i < n; i = buffer.indexOf(10, i + 1)) lines++;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { lines, bytes };
}

/** @param {number} n */
function grouped(n) {
  return Math.round(n).toLocaleString('en-US');
}

/**
 * A sidecar row: its variant's config (or SIDECAR_CONFIG for the `sidecar` row), validated,
 * then `node dist/cli.js run -c FILE` on the proxy CPU (every core with several workers).
 * @param {string} name
 * @param {number} upstreamPort
 */
function sidecarPeer(name, upstreamPort) {
  return async () => {
    const variant = SIDECAR_VARIANTS[name];
    const cli = options.sidecarCli;
    if (!fs.existsSync(cli)) throw new Error(`${path.relative(ROOT, cli)} not found; run npm run build`);
    const [port, adminPort] = await freePorts(2);
    const upstream = `http://127.0.0.1:${upstreamPort}`;
    const given = name === 'sidecar' ? options.sidecarConfig : undefined;
    const accessLogFile = path.join(workDir, `${name}-access.log`);
    let config;
    if (given) {
      config = rewrittenConfigFile(given, port, adminPort, upstream);
    } else {
      if (variant.tls) makeCertificates(cli);
      config = writeWork(
        `${name}.yaml`,
        sidecarConfigYaml(variant, {
          port,
          adminPort,
          upstream,
          otlpEndpoint: `http://127.0.0.1:${otlpSink?.port ?? 0}`,
          accessLogPath: options.accessLog === 'file' ? accessLogFile : options.accessLog,
          certDir: 'certs',
        }),
      );
    }
    validateConfig(cli, config);
    const profiled = options.profile.includes(name);
    const nodeArgs = [...options.nodeFlags, ...(profiled ? ['--cpu-prof', `--cpu-prof-dir=${path.join(options.profileDir, name)}`] : [])];
    const unpinned = !given && variant.workers > 1;
    const proc = startProcess(name, unpinned ? undefined : PROXY_CPU, process.execPath, [...nodeArgs, cli, 'run', '-c', config], {
      env: sidecarEnv(),
      stopTimeoutMs: profiled ? PROFILED_STOP_TIMEOUT_MS : STOP_TIMEOUT_MS,
    });
    const traced = !given && variant.sampleRatio !== undefined;
    const sinkBefore = traced ? await sinkStats() : undefined;
    return {
      port,
      proc,
      scheme: !given && variant.tls ? 'https' : 'http',
      unpinned,
      profiled,
      async beforeStop() {
        /** @type {string[]} */
        const seen = [];
        const pid = proc.child.pid;
        if (HAS_PROC && pid !== undefined) {
          const processes = processTree(pid).length;
          if (!given && variant.workers > 1) {
            seen.push(
              processes > 1
                ? `${processes} processes (workers: ${variant.workers})`
                : `ran 1 process: this build accepts workers: ${variant.workers} but does not fork workers, so the row measures one process on unpinned cores`,
            );
          }
        }
        try {
          const metrics = (await getOnce(`http://127.0.0.1:${adminPort}/metrics`)).body;
          seen.push(`sidecar_requests_total ${grouped(metricSum(metrics, 'sidecar_requests_total'))}`);
          if (traced) {
            seen.push(
              `spans exported ${grouped(metricSum(metrics, 'sidecar_tracing_spans_exported_total'))}, ` +
                `dropped (queue full) ${grouped(metricSum(metrics, 'sidecar_tracing_spans_dropped_total', 'queue_full'))}, ` +
                `(export failed) ${grouped(metricSum(metrics, 'sidecar_tracing_spans_dropped_total', 'export_failed'))} before stop`,
            );
          }
        } catch (err) {
          seen.push(`admin /metrics unreadable: ${/** @type {Error} */ (err).message}`);
        }
        return seen;
      },
      async afterStop() {
        /** @type {string[]} */
        const seen = [];
        if (sinkBefore) {
          const after = await sinkStats();
          seen.push(`OTLP sink received ${grouped(after.requests - sinkBefore.requests)} export requests (${num((after.bytes - sinkBefore.bytes) / 1e6, 2)} MB)`);
        }
        if (!given && variant.accessLog && options.accessLog === 'file') {
          if (fs.existsSync(accessLogFile)) {
            const { lines, bytes } = countLines(accessLogFile);
            seen.push(`access log ${grouped(lines)} lines (${num(bytes / 1e6, 1)} MB)`);
            fs.rmSync(accessLogFile, { force: true });
          } else seen.push('access log file missing');
        }
        if (profiled) {
          const dir = path.join(options.profileDir, name);
          const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
          seen.push(files.length ? `CPU profile: ${files.map((f) => path.join(dir, f)).join(', ')}` : `no CPU profile written in ${dir}`);
        }
        return seen;
      },
    };
  };
}

/** @param {string} name */
function hasModule(name) {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** @param {number} upstreamPort */
function nginxPeer(upstreamPort) {
  return async () => {
    const port = await freePort();
    const conf = nginxConfig(
      'nginx',
      port,
      'location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }',
      `upstream app { server 127.0.0.1:${upstreamPort}; keepalive 128; }`,
    );
    return { port, proc: startNginx('nginx', PROXY_CPU, conf) };
  };
}

/** @param {number} upstreamPort */
function haproxyPeer(upstreamPort) {
  return async () => {
    const port = await freePort();
    const cfg = writeWork(
      'haproxy.cfg',
      `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server app 127.0.0.1:${upstreamPort}
`,
    );
    return { port, proc: startProcess('haproxy', PROXY_CPU, 'haproxy', ['-f', cfg, '-db', '-q']) };
  };
}

// ---------------------------------------------------------------- measuring one target

/**
 * @typedef {object} Row
 * @property {string} name
 * @property {string} [skipped]  why there are no numbers
 * @property {LoadResult} [max]
 * @property {LoadResult} [fixed]
 * @property {number} [cpuPer1k]     CPU seconds per 1000 requests in the max-load run, proxy only
 * @property {number} [fixedCores]   CPU cores the proxy used during the fixed-rate run
 * @property {number} [rssMiB]       peak RSS over the row's life, proxy only
 * @property {number} [rssAtRateMiB] peak RSS up to the end of the fixed-rate run (before any max load), proxy only
 * @property {number} [othersPercent] share of the proxy's CPU used by other processes (or stolen) during the max-load run
 * @property {boolean} [unpinned]    ran on every core
 * @property {boolean} [profiled]    ran under --cpu-prof
 * @property {string[]} [seen]       what the row did (requests counted, spans, access log lines)
 * @property {string} [note]
 */

/**
 * @param {string} name
 * @param {() => Promise<Started>} start
 * @param {boolean} measureProcess  false for `direct` (no proxy process)
 * @returns {Promise<Row>}
 */
async function measure(name, start, measureProcess) {
  progress(`${name}: starting`);
  /** @type {Started} */
  let started;
  try {
    started = await start();
  } catch (err) {
    return { name, skipped: `NOT STARTED (${/** @type {Error} */ (err).message})` };
  }
  const { port, proc } = started;
  const url = `${started.scheme ?? 'http'}://127.0.0.1:${port}/`;
  /** @type {Row} */
  const row = { name, unpinned: started.unpinned, profiled: started.profiled, seen: [] };
  try {
    let body;
    try {
      body = await waitUntilAnswering(url, proc);
    } catch (err) {
      return { ...row, skipped: `NOT ANSWERING (${/** @type {Error} */ (err).message})` };
    }
    if (body !== UPSTREAM_BODY) row.note = 'answered a different body than the upstream';
    const pid = proc?.child.pid;
    const track = measureProcess && HAS_PROC && pid !== undefined;
    // The fixed rate first, on a process that has seen no more than that rate: its memory is
    // then what serving that rate takes (a max-load run grows V8's heap, which stays grown).
    if (options.fixedRate > 0 && (useHey || hasPaced)) {
      if (options.warmupSeconds > 0) {
        progress(`${name}: warm-up ${options.warmupSeconds} s at ${options.fixedRate} req/s`);
        await fixedRateLoad(url, options.warmupSeconds);
      }
      progress(`${name}: ${options.seconds} s at ${options.fixedRate} req/s`);
      const cpuBefore = track ? cpuSeconds(pid) : 0;
      const wallBefore = performance.now();
      row.fixed = await fixedRateLoad(url, options.seconds);
      if (track) {
        row.fixedCores = (cpuSeconds(pid) - cpuBefore) / ((performance.now() - wallBefore) / 1000);
        row.rssAtRateMiB = peakRssMiB(pid);
      }
    }
    if (options.warmupSeconds > 0) {
      progress(`${name}: warm-up ${options.warmupSeconds} s`);
      await maxLoad(url, options.warmupSeconds);
    }
    const cpuBefore = track ? cpuSeconds(pid) : 0;
    const proxyCpuBefore = track && pinning && !started.unpinned ? cpuTicks(PROXY_CPU) : undefined;
    progress(`${name}: ${options.seconds} s at ${options.connections} connections`);
    row.max = await maxLoad(url, options.seconds);
    if (track) {
      const used = cpuSeconds(pid) - cpuBefore;
      row.cpuPer1k = (used * 1000) / row.max.requests;
      row.othersPercent = othersPercent(proxyCpuBefore, proxyCpuBefore && cpuTicks(PROXY_CPU), used);
    }
    if (track) row.rssMiB = peakRssMiB(pid);
    const failure = proc?.failure();
    if (failure) return { ...row, max: undefined, skipped: `DIED DURING THE RUN (${failure})` };
    if (started.beforeStop) row.seen?.push(...(await started.beforeStop()));
    return row;
  } catch (err) {
    return { ...row, max: undefined, skipped: `FAILED (${/** @type {Error} */ (err).message})` };
  } finally {
    await proc?.stop();
    if (started.afterStop) {
      try {
        row.seen?.push(...(await started.afterStop()));
      } catch (err) {
        row.seen?.push(`after stop: ${/** @type {Error} */ (err).message}`);
      }
    }
  }
}

/**
 * The run of a row with the median max req/s (the lower middle one of an even count), its
 * figures kept together; with more than one run, a note gives every run's req/s.
 * @param {Row[]} rowRuns
 * @returns {Row}
 */
function medianRun(rowRuns) {
  const measured = rowRuns.filter((r) => r.max !== undefined);
  if (measured.length === 0) return rowRuns[0];
  const sorted = [...measured].sort((a, b) => (a.max?.rps ?? 0) - (b.max?.rps ?? 0));
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  if (rowRuns.length === 1) return median;
  const spread = `median of ${rowRuns.length} runs by max req/s (${measured.map((r) => num(r.max?.rps, 0)).join(', ')}${measured.length < rowRuns.length ? `; ${rowRuns.length - measured.length} failed` : ''})`;
  // Peak memory is the worst run's: a peak is an upper bound, not a typical value.
  const rssMiB = Math.max(...measured.map((r) => r.rssMiB ?? 0)) || undefined;
  const rssAtRateMiB = Math.max(...measured.map((r) => r.rssAtRateMiB ?? 0)) || undefined;
  return { ...median, rssMiB, rssAtRateMiB, note: median.note ? `${median.note}; ${spread}` : spread };
}

/**
 * The median of the per-round ratios of a figure of two rows (round i of one against round i
 * of the other), e.g. `1.02x (0.98, 1.02, 1.05)`; '-' when no round has both.
 * @param {Row[] | undefined} a @param {Row[] | undefined} b @param {(row: Row) => number | undefined} figure
 */
function roundRatios(a, b, figure) {
  if (!a || !b) return '-';
  const ratios = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = figure(a[i]);
    const y = figure(b[i]);
    if (x !== undefined && y !== undefined && y > 0) ratios.push(x / y);
  }
  if (ratios.length === 0) return '-';
  const sorted = [...ratios].sort((p, q) => p - q);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  return `${median.toFixed(2)}x (${ratios.map((r) => r.toFixed(2)).join(', ')})`;
}

/** @param {string} text */
function progress(text) {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
  else process.stderr.write(`${text}\n`);
}

// ---------------------------------------------------------------- output

/** @param {number | undefined} n @param {number} digits */
function num(n, digits) {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

/** @param {number | undefined} a @param {number | undefined} b */
function ratio(a, b) {
  return a === undefined || b === undefined || !(b > 0) || !Number.isFinite(a) ? '-' : `${(a / b).toFixed(2)}x`;
}

/**
 * A table as aligned text, or as a markdown table with BENCH_MARKDOWN=1. A row of two cells
 * (a name and why it has no numbers) spans the table.
 * @param {string[][]} rows  the first is the header
 * @param {boolean[]} rightAligned
 */
function table(rows, rightAligned) {
  const columns = rows[0].length;
  if (options.markdown) {
    const line = (/** @type {string[]} */ cells) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
    const rule = rows[0].map((_, i) => (rightAligned[i] ? '---:' : '---'));
    const body = rows.slice(1).map((r) => line(r.length < columns ? [...r, ...Array(columns - r.length).fill('')] : r));
    return [line(rows[0]), line(rule), ...body].join('\n');
  }
  const full = rows.filter((r) => r.length === columns);
  const widths = rows[0].map((_, i) => Math.max(...full.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r.length < columns
        ? r.map((cell, i) => (i === 0 ? cell.padEnd(widths[0]) : cell)).join('  ')
        : r
            .map((cell, i) => (rightAligned[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
            .join('  ')
            .trimEnd(),
    )
    .join('\n');
}

/** @param {string} title @param {string} body */
function section(title, body) {
  return options.markdown ? `\n**${title}**\n\n${body}\n` : `\n${title}\n${body}\n`;
}

/** @param {string[]} items */
function list(items) {
  return items.map((item) => (options.markdown ? `- ${item}` : `  ${item}`)).join('\n');
}

function commandLine() {
  const env = OPTION_VARIABLES.filter((name) => process.env[name] !== undefined).map(
    (name) => `${name}=${shellQuote(process.env[name] ?? '')}`,
  );
  const script = path.relative(process.cwd(), process.argv[1]) || process.argv[1];
  return [...env, 'node', script, ...process.argv.slice(2).map(shellQuote)].join(' ');
}

/** @param {string} s */
function shellQuote(s) {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** @param {Row} row */
function displayName(row) {
  return `${row.name}${row.unpinned ? ' *' : ''}${row.profiled ? ' (profiled)' : ''}`;
}

/**
 * Differences between two rows that differ in one thing, as the targets name them.
 * [what, row, baseline]
 */
const FEATURE_PAIRS = [
  ['the product row vs a bare undici proxy', 'sidecar', 'bare-undici'],
  ['proxying alone vs a bare undici proxy', 'sidecar-bare', 'bare-undici'],
  ['retries + breaker configured, not firing', 'sidecar-retries', 'sidecar-bare'],
  ['flight recorder on vs off', 'sidecar-recorder', 'sidecar-bare'],
  ['tracing 1% vs none', 'sidecar-trace-1', 'sidecar-bare'],
  ['tracing 100% vs none', 'sidecar-trace-100', 'sidecar-bare'],
  ['tracing 100% vs 1%', 'sidecar-trace-100', 'sidecar-trace-1'],
  ['every feature (the product row) vs none', 'sidecar', 'sidecar-bare'],
  ['TLS vs plain HTTP', 'sidecar-tls', 'sidecar'],
  ['2 workers (every core) vs 1 (pinned)', 'sidecar-workers-2', 'sidecar'],
  ['rateLimit (one bucket) vs the product row', 'sidecar-ratelimit', 'sidecar'],
];

/** MiB → MB, for targets stated in MB. */
const MB_PER_MIB = 1.048576;

/**
 * @param {Row[]} rows
 * @returns {string[][]}
 */
function targetRows(rows) {
  /** @param {string} name */
  const get = (name) => rows.find((r) => r.name === name && r.max);
  const sidecar = get('sidecar');
  /** @type {string[][]} */
  const out = [['target', 'wanted', 'measured', 'read from', 'met']];
  /** @param {boolean | undefined} ok */
  const verdict = (ok) => (ok === undefined ? '-' : ok ? 'yes' : 'NO');
  /**
   * @param {string} what @param {number} wanted @param {string} peerName
   */
  const throughput = (what, wanted, peerName) => {
    const peer = get(peerName);
    const r = sidecar?.max && peer?.max ? sidecar.max.rps / peer.max.rps : undefined;
    out.push([what, `>= ${wanted.toFixed(2)}x`, r === undefined ? '-' : `${r.toFixed(2)}x`, `max req/s: sidecar / ${peerName}`, verdict(r === undefined ? undefined : r >= wanted)]);
  };
  throughput('throughput vs a bare undici proxy', 0.8, 'bare-undici');
  throughput('throughput vs node-http-proxy', 1.5, 'node-http-proxy');
  throughput('throughput vs @fastify/http-proxy', 1.5, 'fastify-http-proxy');
  throughput('throughput vs nginx', 0.35, 'nginx');

  const floor = get('bare-undici');
  const added = sidecar?.fixed && floor?.fixed ? sidecar.fixed.p99Ms - floor.fixed.p99Ms : undefined;
  out.push([
    `p99 at ${options.fixedRate} req/s over bare undici's`,
    '<= 1.5 ms',
    added === undefined ? '-' : `${added.toFixed(2)} ms`,
    `@${options.fixedRate}/s p99: sidecar - bare-undici`,
    verdict(added === undefined ? undefined : added <= 1.5),
  ]);

  const perThousand = sidecar?.fixedCores === undefined || !(options.fixedRate > 0) ? undefined : (sidecar.fixedCores * 1000) / options.fixedRate;
  out.push([
    'CPU per 1000 req/s, tracing 1%',
    '<= 0.250 cores',
    perThousand === undefined ? '-' : `${perThousand.toFixed(3)} cores (max load: ${num(sidecar?.cpuPer1k, 3)})`,
    `sidecar: cpu @${options.fixedRate}/s` + (options.fixedRate === 1000 ? '' : ` x 1000/${options.fixedRate}`),
    verdict(perThousand === undefined ? undefined : perThousand <= 0.25),
  ]);

  for (const name of ['sidecar', 'sidecar-trace-100']) {
    const row = get(name);
    const mb = row?.rssAtRateMiB === undefined ? undefined : row.rssAtRateMiB * MB_PER_MIB;
    out.push([
      `RSS serving ${options.fixedRate} req/s, tracing ${name === 'sidecar' ? '1%' : '100%'}`,
      '<= 100 MB',
      mb === undefined ? '-' : `${mb.toFixed(1)} MB`,
      `${name}: rss @${options.fixedRate}/s (peak until then; before any max load)`,
      verdict(mb === undefined ? undefined : mb <= 100),
    ]);
  }

  /** @param {string} what @param {string} name @param {string} base @param {number} maxLoss */
  const cost = (what, name, base, maxLoss) => {
    const a = get(name);
    const b = get(base);
    const r = a?.max && b?.max ? a.max.rps / b.max.rps : undefined;
    out.push([
      what,
      `<= ${(maxLoss * 100).toFixed(0)}% of req/s`,
      r === undefined ? '-' : `${((1 - r) * 100).toFixed(1)}% (${r.toFixed(2)}x)`,
      `max req/s: ${name} / ${base}`,
      verdict(r === undefined ? undefined : 1 - r <= maxLoss),
    ]);
  };
  cost('tracing 100% costs (vs 1%)', 'sidecar-trace-100', 'sidecar-trace-1', 0.25);
  cost('tracing 100% costs (vs none)', 'sidecar-trace-100', 'sidecar-bare', 0.25);
  cost('retries + breaker cost', 'sidecar-retries', 'sidecar-bare', 0.05);
  cost('rateLimit (one bucket) cost', 'sidecar-ratelimit', 'sidecar', 0.03);
  cost('flight recorder cost', 'sidecar-recorder', 'sidecar-bare', 0.05);
  return out;
}

/** @param {Row[]} rows the median run of each row @param {Map<string, Row[]>} [runs] every run of each row, round by round */
function report(rows, runs) {
  const sidecar = rows.find((r) => r.name === 'sidecar' && r.max);
  const reference = sidecar ?? rows.find((r) => r.name === 'bare-undici' && r.max);
  const showFixed = rows.some((r) => r.fixed);
  const at = `@${options.fixedRate}/s`;
  const header = ['target', 'max req/s', 'p50 ms', 'p99 ms', `req/s vs ${reference?.name ?? 'sidecar'}`];
  if (showFixed) header.push(`${at} p50 ms`, `${at} p99 ms`);
  header.push('cpu s/1k req');
  if (showFixed) header.push(`cpu ${at} cores`);
  if (showFixed) header.push(`rss ${at} MiB`);
  header.push('peak rss MiB', 'errors');
  const showOthers = rows.some((r) => r.othersPercent !== undefined);
  if (showOthers) header.push(`others on cpu${PROXY_CPU} %`);
  /** @type {string[][]} */
  const lines = [header];
  /** @type {string[]} */
  const notes = [];
  for (const row of rows) {
    if (!row.max) {
      lines.push([displayName(row), row.skipped ?? 'no result']);
      continue;
    }
    const errors = row.max.errors + row.max.non2xx + (row.fixed ? row.fixed.errors + row.fixed.non2xx : 0);
    const line = [displayName(row), num(row.max.rps, 0), num(row.max.p50Ms, 2), num(row.max.p99Ms, 2), ratio(row.max.rps, reference?.max?.rps)];
    if (showFixed) line.push(num(row.fixed?.p50Ms, 2), num(row.fixed?.p99Ms, 2));
    line.push(num(row.cpuPer1k, 3));
    if (showFixed) line.push(num(row.fixedCores, 3));
    if (showFixed) line.push(num(row.rssAtRateMiB, 1));
    line.push(num(row.rssMiB, 1), String(errors));
    if (showOthers) line.push(num(row.othersPercent, 0));
    lines.push(line);
    if ((row.othersPercent ?? 0) > NOISY_OTHERS_PERCENT) {
      notes.push(`${row.name}: other processes (or the hypervisor) took ${num(row.othersPercent, 0)}% of CPU ${PROXY_CPU} during its max-load run: its figures are unreliable`);
    }
    if (row.note) notes.push(`${row.name}: ${row.note}`);
    if (errors > 0) {
      notes.push(
        `${row.name}: ${row.max.non2xx} non-2xx and ${row.max.errors} socket errors at max load` +
          (row.fixed ? `, ${row.fixed.non2xx} and ${row.fixed.errors} at ${options.fixedRate}/s` : ''),
      );
    }
    if (row.fixed && row.fixed.rps < options.fixedRate * 0.95) {
      notes.push(`${row.name}: the fixed-rate run reached only ${num(row.fixed.rps, 0)} req/s`);
    }
  }
  let out = `\n${table(lines, header.map((_, i) => i > 0))}\n`;
  if (rows.some((r) => r.unpinned && r.max)) {
    out += `${options.markdown ? '\n' : ''}* not pinned: runs on every core, sharing them with the upstream and the load generator\n`;
  }

  if (sidecar) {
    const peers = PEER_TARGETS.map((name) => rows.find((r) => r.name === name && r.max)).filter((r) => r !== undefined);
    if (peers.length) {
      /** @type {string[][]} */
      const ratios = [['sidecar / peer', 'req/s', 'p99 ms', `${at} p99 ms`, 'cpu s/1k req', 'peak rss']];
      for (const peer of peers) {
        ratios.push([
          `sidecar/${peer.name}`,
          ratio(sidecar.max?.rps, peer.max?.rps),
          ratio(sidecar.max?.p99Ms, peer.max?.p99Ms),
          ratio(sidecar.fixed?.p99Ms, peer.fixed?.p99Ms),
          ratio(sidecar.cpuPer1k, peer.cpuPer1k),
          ratio(sidecar.rssMiB, peer.rssMiB),
        ]);
      }
      out += section('The sidecar against each peer (above 1.00x: more req/s, or more time, CPU or memory)', table(ratios, [false, true, true, true, true, true]));
    }
  } else {
    notes.push('no sidecar numbers, so no sidecar/peer ratios');
  }

  // With several rounds, each round's ratio of the two rows (run one after the other, seconds
  // apart) is steadier on a shared machine than the ratio of the medians: the machine's speed
  // drifts between rounds more than between two neighbouring runs.
  const paired = runs !== undefined && [...runs.values()].some((rowRuns) => rowRuns.length > 1);
  /** @type {string[][]} */
  const costs = [['what it costs', 'rows compared', 'req/s', ...(paired ? ['req/s, median of the rounds\' ratios', `cpu ${at}, median of the rounds' ratios`] : []), 'cpu s/1k req', `${at} p99 added ms`]];
  for (const [what, name, base] of FEATURE_PAIRS) {
    const a = rows.find((r) => r.name === name && r.max);
    const b = rows.find((r) => r.name === base && r.max);
    if (!a || !b) continue;
    const addedP99 = a.fixed && b.fixed ? a.fixed.p99Ms - b.fixed.p99Ms : undefined;
    const perRound = paired ? [roundRatios(runs?.get(name), runs?.get(base), (r) => r.max?.rps), roundRatios(runs?.get(name), runs?.get(base), (r) => r.fixedCores)] : [];
    costs.push([what, `${name} / ${base}`, ratio(a.max?.rps, b.max?.rps), ...perRound, ratio(a.cpuPer1k, b.cpuPer1k), addedP99 === undefined ? '-' : addedP99.toFixed(2)]);
  }
  if (costs.length > 1) out += section('What each feature costs (rows that differ in that feature alone)', table(costs, [false, false, true, ...(paired ? [true, true] : []), true, true]));

  const caveat = sidecar?.profiled ? 'the sidecar row ran under --cpu-prof: these verdicts do not count' : 'one run: a ratio near its threshold can fall either side on another run';
  const [targetHeader, ...targetLines] = targetRows(rows);
  const measured = targetLines.filter((line) => line[2] !== '-');
  if (measured.length < targetLines.length) {
    notes.push(`targets not shown (their rows were not run or have no numbers): ${targetLines.filter((line) => line[2] === '-').map((line) => line[0]).join('; ')}`);
  }
  if (measured.length) out += section(`Targets (${caveat})`, table([targetHeader, ...measured], [false, true, true, false, false]));

  const seen = rows.filter((r) => r.seen?.length).map((r) => `${r.name}: ${r.seen?.join('; ')}`);
  if (seen.length) out += section('What the sidecar rows did (read from their admin /metrics, the OTLP sink and the access log)', list(seen));

  if (!showFixed) {
    notes.push(
      options.fixedRate > 0
        ? 'fixed-rate column skipped: needs hey (apt-get install hey) or undici'
        : 'fixed-rate column skipped (BENCH_RATE=0)',
    );
  }
  if (rows.some((r) => r.name === 'sidecar-tls' && r.max)) {
    notes.push('sidecar-tls: HTTP/1.1 over TLS on keep-alive connections: the handshakes happen when connections open, so the row is the steady-state cost of encryption');
  }
  if (rows.some((r) => r.profiled)) notes.push('(profiled) rows ran under node --cpu-prof, which slows them: do not compare their figures');
  if (notes.length) out += section('Notes', list(notes));
  process.stdout.write(out);
}

// ---------------------------------------------------------------- main

/** The load average (1, 5, 15 min): other work on the machine skews every row, so say so. */
function loadAverage() {
  const [oneMinute, fiveMinutes, fifteenMinutes] = os.loadavg();
  const busy = oneMinute > 0.5 ? ' (other processes are busy: numbers will be noisy)' : '';
  return `${oneMinute.toFixed(2)}, ${fiveMinutes.toFixed(2)}, ${fifteenMinutes.toFixed(2)} (1, 5, 15 min)${busy}`;
}

async function main() {
  const loadgen = useWrk ? `wrk -t1 -c${options.connections}` : `autocannon -c${options.connections} (bench/load/autocannon.js)`;
  const fixedGen = options.fixedRate <= 0 ? 'off' : useHey ? `hey -c${FIXED_RATE_CONNECTIONS} -q${options.fixedRate / FIXED_RATE_CONNECTIONS}` : hasPaced ? `bench/load/paced.js -c${FIXED_RATE_CONNECTIONS}` : 'unavailable';
  const selectedSidecars = SIDECAR_TARGETS.filter((name) => options.only.includes(name));
  const header = [
    `$ ${commandLine()}`,
    `load average before the run: ${loadAverage()}`,
    `node ${process.version}, ${cores} cores (${os.cpus()[0]?.model?.trim() ?? 'unknown cpu'}), ${os.platform()} ${os.release()}`,
    `upstream: ${useNginxUpstream ? 'nginx (return 200)' : 'node:http (bench/peers/upstream.js)'}, ${UPSTREAM_BODY.length}-byte JSON body`,
    `load: ${loadgen}, warm-up ${options.warmupSeconds} s, measured ${options.seconds} s; fixed rate: ${fixedGen}`,
    pinning
      ? `pinning: proxy on CPU ${PROXY_CPU}; upstream, OTLP sink and load generator on CPU ${LOAD_CPU}`
      : `pinning: off (${!options.pin ? 'BENCH_PIN=0' : cores < 2 ? 'fewer than 2 cores' : 'taskset not found'})`,
    ...(selectedSidecars.length ? ['sidecar rows:'] : []),
    ...selectedSidecars.map((name) =>
      name === 'sidecar' && options.sidecarConfig
        ? `  sidecar: ${options.sidecarConfig} (SIDECAR_CONFIG, addresses pointed at the bench)`
        : `  ${name}: ${SIDECAR_VARIANTS[name].summary}` +
          (SIDECAR_VARIANTS[name].accessLog && options.accessLog !== 'file' ? ` [access log: ${options.accessLog}]` : ''),
    ),
  ];
  process.stdout.write(options.markdown ? `\`\`\`text\n${header.join('\n')}\n\`\`\`\n` : `${header.join('\n')}\n`);

  const upstream = await startUpstream();
  try {
    await waitUntilAnswering(`http://127.0.0.1:${upstream.port}/`, upstream.proc);
  } catch (err) {
    fail(`the upstream does not answer: ${/** @type {Error} */ (err).message}`);
  }
  const traced = selectedSidecars.some((name) => SIDECAR_VARIANTS[name].sampleRatio !== undefined && !(name === 'sidecar' && options.sidecarConfig));
  if (traced) {
    try {
      await startOtlpSink();
    } catch (err) {
      fail(`the OTLP sink does not answer: ${/** @type {Error} */ (err).message}`);
    }
  }
  const up = upstream.port;
  /** @type {Record<string, { start: () => Promise<Started>, missing?: string, proxy: boolean }>} */
  const targets = {
    direct: { start: async () => ({ port: up, proc: undefined }), proxy: false },
    ...Object.fromEntries(SIDECAR_TARGETS.map((name) => [name, { start: sidecarPeer(name, up), proxy: true }])),
    'bare-undici': { start: nodePeer('bare-undici.js', up), proxy: true },
    'node-http-proxy': { start: nodePeer('node-http-proxy.js', up), proxy: true },
    'fastify-http-proxy': {
      start: nodePeer('fastify-http-proxy.js', up),
      missing: hasModule('fastify') && hasModule('@fastify/http-proxy') ? undefined : 'fastify and @fastify/http-proxy not installed (npm install: they are devDependencies)',
      proxy: true,
    },
    nginx: { start: nginxPeer(up), missing: hasCommand('nginx') ? undefined : 'nginx not installed (apt-get install nginx-light)', proxy: true },
    haproxy: { start: haproxyPeer(up), missing: hasCommand('haproxy') ? undefined : 'haproxy not installed (apt-get install haproxy)', proxy: true },
  };
  /** @type {Map<string, Row[]>} every run of each row, in order */
  const runs = new Map(options.only.map((name) => [name, []]));
  for (let round = 1; round <= options.rounds; round++) {
    for (const name of options.only) {
      const target = targets[name];
      const rowRuns = /** @type {Row[]} */ (runs.get(name));
      if (target.missing) {
        if (round === 1) progress(`${name}: skipped, ${target.missing}`);
        rowRuns.push({ name, skipped: `SKIPPED: ${target.missing}` });
        continue;
      }
      if (options.rounds > 1) progress(`round ${round} of ${options.rounds}`);
      rowRuns.push(await measure(name, target.start, target.proxy));
      // The upstream must survive every run; a dead upstream would make later rows meaningless.
      const upstreamFailure = upstream.proc?.failure();
      if (upstreamFailure) fail(`the upstream stopped: ${upstreamFailure}`);
    }
  }
  const rows = options.only.map((name) => medianRun(/** @type {Row[]} */ (runs.get(name))));
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  await otlpSink?.proc.stop();
  await upstream.proc?.stop();
  report(rows, runs);
  process.stdout.write(`\nload average after the run: ${loadAverage()}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : err}\n`);
    process.exit(1);
  },
);
