#!/usr/bin/env node
// @ts-check
'use strict';

// Side-by-side proxy benchmark: the same upstream, the same load, one proxy at a time.
// See bench/README.md. Usage: npm run bench   (or: node bench/run.js after npm run build)

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

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
const POLL_INTERVAL_MS = 50;
/** The proxy's CPU, and the one the upstream and load generator share, when pinned. */
const PROXY_CPU = '1';
const LOAD_CPU = '0';
const ALL_TARGETS = ['direct', 'sidecar', 'bare-undici', 'node-http-proxy', 'nginx', 'haproxy'];
/** The environment variables this script reads, echoed in the command line it prints. */
const OPTION_VARIABLES = [
  'BENCH_SECONDS',
  'BENCH_WARMUP',
  'BENCH_CONNECTIONS',
  'BENCH_RATE',
  'BENCH_ONLY',
  'BENCH_LOADGEN',
  'BENCH_UPSTREAM',
  'BENCH_ACCESS_LOG',
  'BENCH_PIN',
  'BENCH_START_TIMEOUT_MS',
  'SIDECAR_CONFIG',
  'SIDECAR_CLI',
];

// ---------------------------------------------------------------- options

const options = {
  seconds: positiveNumber('BENCH_SECONDS', DEFAULT_SECONDS),
  warmupSeconds: positiveNumber('BENCH_WARMUP', DEFAULT_WARMUP_SECONDS, true),
  connections: positiveNumber('BENCH_CONNECTIONS', DEFAULT_CONNECTIONS),
  /** 0 skips the fixed-rate column. */
  fixedRate: positiveNumber('BENCH_RATE', DEFAULT_FIXED_RATE, true),
  only: listOption('BENCH_ONLY', ALL_TARGETS),
  /** wrk | autocannon; default: wrk when installed. */
  loadgen: process.env.BENCH_LOADGEN,
  /** nginx | node; default: nginx when installed. */
  upstream: process.env.BENCH_UPSTREAM,
  /** off | stdout (stdout goes to /dev/null): for a sidecar that does not accept `off`. */
  accessLog: process.env.BENCH_ACCESS_LOG ?? 'off',
  pin: process.env.BENCH_PIN !== '0',
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
 * The command, run on `cpu` when pinning (taskset execs it: the pid stays the command's).
 * @param {string} cpu
 * @param {string} command
 * @param {string[]} args
 * @returns {[string, string[]]}
 */
function onCpu(cpu, command, args) {
  return pinning ? ['taskset', ['-c', cpu, command, ...args]] : [command, args];
}

/**
 * Starts a long-running process; its stdout goes to /dev/null unless `stdout` is given,
 * its stderr to a log file whose tail explains a failed start.
 * @param {string} name
 * @param {string} cpu
 * @param {string} command
 * @param {string[]} args
 */
function startProcess(name, cpu, command, args) {
  const logPath = path.join(workDir, `${name}.log`);
  const log = fs.openSync(logPath, 'w');
  const [cmd, argv] = onCpu(cpu, command, args);
  const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', log], detached: true });
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
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), STOP_TIMEOUT_MS);
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
 * Runs a command to completion and returns its stdout.
 * @param {string} command
 * @param {string[]} args
 */
function runToEnd(command, args) {
  const [cmd, argv] = onCpu(LOAD_CPU, command, args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
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
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 1_000 }, (res) => {
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
 * @typedef {{ port: number, proc: Proc | undefined }} Started
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
    const args = [script, '--port', String(port), '--upstream', `http://127.0.0.1:${upstreamPort}`];
    return { port, proc: startProcess(file.replace(/\.js$/, ''), PROXY_CPU, process.execPath, args) };
  };
}

/**
 * The sidecar's config: the bench's own (one listener, one prefix route, one cluster,
 * tracing and access log off), or SIDECAR_CONFIG with its addresses pointed at the bench.
 * @param {number} port
 * @param {number} adminPort
 * @param {number} upstreamPort
 */
function sidecarConfigFile(port, adminPort, upstreamPort) {
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  if (!options.sidecarConfig) {
    return writeWork(
      'sidecar.yaml',
      `# Generated by bench/run.js
admin:
  address: 127.0.0.1:${adminPort}
listeners:
  - name: bench
    address: 127.0.0.1:${port}
    routes:
      - name: all
        match: { prefix: / }
        cluster: upstream
clusters:
  - name: upstream
    endpoints:
      - url: ${upstream}
tracing:
  exporter: none
accessLog: { path: ${JSON.stringify(options.accessLog)} }
drain: { delay: 0ms, timeout: 1s }
`,
    );
  }
  // A given config keeps everything but its addresses: the first listener's address, the
  // admin address and every cluster endpoint are replaced, so that it runs against the
  // bench's upstream on free ports. It is written next to the original, because relative
  // paths in it resolve against its folder.
  const YAML = require('yaml');
  const source = path.resolve(options.sidecarConfig);
  const doc = YAML.parse(fs.readFileSync(source, 'utf8'));
  if (!doc?.listeners?.length) throw new Error(`${source} has no listeners`);
  if (doc.listeners[0].tls) throw new Error(`${source}: the first listener uses TLS; the bench speaks plain HTTP`);
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

/** @param {number} upstreamPort */
function sidecarPeer(upstreamPort) {
  return async () => {
    const cli = options.sidecarCli;
    if (!fs.existsSync(cli)) throw new Error(`${path.relative(ROOT, cli)} not found; run npm run build`);
    const [port, adminPort] = await freePorts(2);
    const config = sidecarConfigFile(port, adminPort, upstreamPort);
    return { port, proc: startProcess('sidecar', PROXY_CPU, process.execPath, [cli, 'run', '-c', config]) };
  };
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
 * @property {number} [cpuPer1k] CPU seconds per 1000 requests, proxy only
 * @property {number} [rssMiB]   peak RSS, proxy only
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
    return { name, skipped: `NOT ANSWERING (${/** @type {Error} */ (err).message})` };
  }
  const { port, proc } = started;
  const url = `http://127.0.0.1:${port}/`;
  try {
    let body;
    try {
      body = await waitUntilAnswering(url, proc);
    } catch (err) {
      return { name, skipped: `NOT ANSWERING (${/** @type {Error} */ (err).message})` };
    }
    /** @type {Row} */
    const row = { name };
    if (body !== UPSTREAM_BODY) row.note = 'answered a different body than the upstream';
    if (options.warmupSeconds > 0) {
      progress(`${name}: warm-up ${options.warmupSeconds} s`);
      await maxLoad(url, options.warmupSeconds);
    }
    const pid = proc?.child.pid;
    const track = measureProcess && HAS_PROC && pid !== undefined;
    const cpuBefore = track ? cpuSeconds(pid) : 0;
    progress(`${name}: ${options.seconds} s at ${options.connections} connections`);
    row.max = await maxLoad(url, options.seconds);
    if (track) {
      row.cpuPer1k = ((cpuSeconds(pid) - cpuBefore) * 1000) / row.max.requests;
      row.rssMiB = peakRssMiB(pid);
    }
    const failure = proc?.failure();
    if (failure) return { name, skipped: `DIED DURING THE RUN (${failure})` };
    if (options.fixedRate > 0 && (useHey || hasPaced)) {
      progress(`${name}: ${options.seconds} s at ${options.fixedRate} req/s`);
      row.fixed = await fixedRateLoad(url, options.seconds);
    }
    return row;
  } catch (err) {
    return { name, skipped: `FAILED (${/** @type {Error} */ (err).message})` };
  } finally {
    await proc?.stop();
  }
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

/** @param {string[][]} rows @param {boolean[]} rightAligned */
function table(rows, rightAligned) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (rightAligned[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
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

/** @param {Row[]} rows */
function report(rows) {
  const sidecar = rows.find((r) => r.name === 'sidecar' && r.max);
  const reference = sidecar ?? rows.find((r) => r.name === 'bare-undici' && r.max);
  const showFixed = rows.some((r) => r.fixed);
  const header = ['target', 'max req/s', 'p50 ms', 'p99 ms', `req/s vs ${reference?.name ?? 'sidecar'}`];
  if (showFixed) header.push(`@${options.fixedRate}/s p50 ms`, `@${options.fixedRate}/s p99 ms`);
  header.push('cpu s/1k req', 'peak rss MiB', 'errors');
  /** @type {string[][]} */
  const lines = [header];
  /** @type {string[]} */
  const notes = [];
  for (const row of rows) {
    if (!row.max) {
      lines.push([row.name, row.skipped ?? 'no result']);
      continue;
    }
    const errors = row.max.errors + row.max.non2xx + (row.fixed ? row.fixed.errors + row.fixed.non2xx : 0);
    const line = [row.name, num(row.max.rps, 0), num(row.max.p50Ms, 2), num(row.max.p99Ms, 2), ratio(row.max.rps, reference?.max?.rps)];
    if (showFixed) line.push(num(row.fixed?.p50Ms, 2), num(row.fixed?.p99Ms, 2));
    line.push(num(row.cpuPer1k, 3), num(row.rssMiB, 1), String(errors));
    lines.push(line);
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
  const widthRows = lines.filter((l) => l.length > 2);
  const formatted = table(
    widthRows,
    header.map((_, i) => i > 0),
  ).split('\n');
  // Rows without numbers print their reason after the name column.
  const nameWidth = Math.max(...lines.map((l) => l[0].length));
  let k = 0;
  const out = lines.map((l) => (l.length > 2 ? formatted[k++] : `${l[0].padEnd(nameWidth)}  ${l[1]}`));
  process.stdout.write(`\n${out.join('\n')}\n`);

  if (sidecar) {
    const peers = ['bare-undici', 'node-http-proxy', 'nginx', 'haproxy']
      .map((name) => rows.find((r) => r.name === name && r.max))
      .filter((r) => r !== undefined);
    if (peers.length) {
      /** @type {string[][]} */
      const ratios = [['sidecar / peer', 'req/s', 'p99 ms', 'cpu s/1k req', 'peak rss']];
      for (const peer of peers) {
        ratios.push([
          `sidecar/${peer.name}`,
          ratio(sidecar.max?.rps, peer.max?.rps),
          ratio(sidecar.max?.p99Ms, peer.max?.p99Ms),
          ratio(sidecar.cpuPer1k, peer.cpuPer1k),
          ratio(sidecar.rssMiB, peer.rssMiB),
        ]);
      }
      process.stdout.write(`\n${table(ratios, [false, true, true, true, true])}\n`);
    }
  } else {
    notes.push('no sidecar numbers, so no sidecar/peer ratios');
  }
  if (!showFixed) {
    notes.push(
      options.fixedRate > 0
        ? 'fixed-rate column skipped: needs hey (apt-get install hey) or undici'
        : 'fixed-rate column skipped (BENCH_RATE=0)',
    );
  }
  if (notes.length) process.stdout.write(`\n${notes.map((n) => `note: ${n}`).join('\n')}\n`);
}

// ---------------------------------------------------------------- main

/** Other work on the machine skews every row: say so. */
function loadNote() {
  const [oneMinute] = os.loadavg();
  const busy = oneMinute > 0.5 ? ' (other processes are busy: numbers will be noisy)' : '';
  return `load average before the run: ${oneMinute.toFixed(2)}${busy}`;
}

async function main() {
  const loadgen = useWrk ? `wrk -t1 -c${options.connections}` : `autocannon -c${options.connections} (bench/load/autocannon.js)`;
  const fixedGen = options.fixedRate <= 0 ? 'off' : useHey ? `hey -c${FIXED_RATE_CONNECTIONS} -q${options.fixedRate / FIXED_RATE_CONNECTIONS}` : hasPaced ? `bench/load/paced.js -c${FIXED_RATE_CONNECTIONS}` : 'unavailable';
  process.stdout.write(
    [
      `$ ${commandLine()}`,
      loadNote(),
      `node ${process.version}, ${cores} cores (${os.cpus()[0]?.model?.trim() ?? 'unknown cpu'}), ${os.platform()} ${os.release()}`,
      `upstream: ${useNginxUpstream ? 'nginx (return 200)' : 'node:http (bench/peers/upstream.js)'}, ${UPSTREAM_BODY.length}-byte JSON body`,
      `load: ${loadgen}, warm-up ${options.warmupSeconds} s, measured ${options.seconds} s; fixed rate: ${fixedGen}`,
      `sidecar config: ${options.sidecarConfig ?? `generated (tracing none, access log ${options.accessLog})`}`,
      pinning
        ? `pinning: proxy on CPU ${PROXY_CPU}; upstream and load generator on CPU ${LOAD_CPU}`
        : `pinning: off (${!options.pin ? 'BENCH_PIN=0' : cores < 2 ? 'fewer than 2 cores' : 'taskset not found'})`,
    ].join('\n') + '\n',
  );

  const upstream = await startUpstream();
  try {
    await waitUntilAnswering(`http://127.0.0.1:${upstream.port}/`, upstream.proc);
  } catch (err) {
    fail(`the upstream does not answer: ${/** @type {Error} */ (err).message}`);
  }
  const up = upstream.port;
  /** @type {Record<string, { start: () => Promise<Started>, available: boolean, proxy: boolean }>} */
  const targets = {
    direct: { start: async () => ({ port: up, proc: undefined }), available: true, proxy: false },
    sidecar: { start: sidecarPeer(up), available: true, proxy: true },
    'bare-undici': { start: nodePeer('bare-undici.js', up), available: true, proxy: true },
    'node-http-proxy': { start: nodePeer('node-http-proxy.js', up), available: true, proxy: true },
    nginx: { start: nginxPeer(up), available: hasCommand('nginx'), proxy: true },
    haproxy: { start: haproxyPeer(up), available: hasCommand('haproxy'), proxy: true },
  };
  /** @type {Row[]} */
  const rows = [];
  for (const name of options.only) {
    const target = targets[name];
    if (!target.available) {
      // Optional peers are left out silently unless asked for by name.
      if (process.env.BENCH_ONLY) rows.push({ name, skipped: `NOT INSTALLED (apt-get install ${name === 'nginx' ? 'nginx-light' : name})` });
      continue;
    }
    rows.push(await measure(name, target.start, target.proxy));
    // The upstream must survive every run; a dead upstream would make later rows meaningless.
    const upstreamFailure = upstream.proc?.failure();
    if (upstreamFailure) fail(`the upstream stopped: ${upstreamFailure}`);
  }
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  await upstream.proc?.stop();
  report(rows);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : err}\n`);
    process.exit(1);
  },
);
