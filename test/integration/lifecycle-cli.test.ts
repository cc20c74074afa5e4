/**
 * The real CLI (`node dist/cli.js`, built by `npm test`; run `npm run build` first when
 * running this file alone): SIGHUP reloads, SIGTERM drains and exits 0 with every request in
 * flight completed, a second signal exits at once, and `wait-ready` waits for /ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { writeAtomic } from '../helpers/config-file';
import { connectionRefused } from '../helpers/net-probe';
import { waitUntil } from '../helpers/wait';
import { closedPort, startUpstream } from '../helpers/upstream';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');
/** Generous: other test runs share the machine, and a cold start loads every dependency. */
const START_TIMEOUT_MS = 60_000;
/** Bound on waiting for something the child process does (log line, /ready turning 503, a port closing). */
const CHILD_WAIT_MS = 30_000;

interface RunningCli {
  readonly child: ChildProcess;
  readonly listenerPort: number;
  readonly adminPort: number;
  /** Parsed JSON lines of the process log (stderr). */
  readonly log: Array<Record<string, unknown>>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runCli(args: string[]): { child: ChildProcess; stdout: Promise<string>; stderr: Promise<string>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (stream: NodeJS.ReadableStream): Promise<string> =>
    new Promise((resolve) => {
      let text = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (text += chunk));
      stream.on('end', () => resolve(text));
    });
  return { child, stdout: collect(child.stdout as NodeJS.ReadableStream), stderr: collect(child.stderr as NodeJS.ReadableStream), exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function startCli(t: Test, file: string): Promise<RunningCli> {
  const child = spawn(process.execPath, [CLI, 'run', '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const log: Array<Record<string, unknown>> = [];
  const ready = new Promise<{ listenerPort: number; adminPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sidecar not ready within ${START_TIMEOUT_MS}ms: ${JSON.stringify(log)}`)), START_TIMEOUT_MS);
    let buffer = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          entry = { msg: line };
        }
        log.push(entry);
        if (entry.msg === 'sidecar ready') {
          clearTimeout(timer);
          const listeners = entry.listeners as string[];
          resolve({ listenerPort: Number(listeners[0].split(':').pop()), adminPort: Number(String(entry.admin).split(':').pop()) });
        }
      }
    });
    void exited.then(({ code }) => reject(new Error(`sidecar exited with ${code} before it was ready: ${JSON.stringify(log)}`)));
  });
  return { child, log, exited, ...(await ready) };
}

async function tempDir(t: Test): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-cli-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  return dir;
}

function config(upstreamUrl: string, body: string, admin = '127.0.0.1:0'): string {
  return `admin: { address: ${admin} }
accessLog: { path: off }
drain: { delay: 1s, timeout: 20s }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: hello, match: { path: /hello }, directResponse: { status: 200, body: "${body}" } }
      - { name: app, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    endpoints: [{ url: ${upstreamUrl} }]
`;
}

async function gatedUpstream(t: Test) {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let seen = 0;
  const upstream = await startUpstream((_req, res) => {
    seen++;
    void gate.then(() => res.end('slow done'));
  });
  t.teardown(() => upstream.close());
  t.teardown(() => release());
  return { upstream, release: () => release(), seen: () => seen };
}

t.test('SIGTERM with slow requests in flight: all complete, new connections refused after drain.delay, exit code 0', async (t) => {
  const { upstream, release, seen } = await gatedUpstream(t);
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, config(upstream.url, 'v1'));
  const cli = await startCli(t, file);
  const agent = new Agent({ connections: 4 });
  t.teardown(() => agent.close());

  const slow = Array.from({ length: 4 }, () =>
    request(`http://127.0.0.1:${cli.listenerPort}/slow`, { dispatcher: agent }).then(async (res) => ({ status: res.statusCode, body: await res.body.text() })),
  );
  await waitUntil(() => seen() === 4, 'the slow requests to reach the app', CHILD_WAIT_MS);
  cli.child.kill('SIGTERM');
  await waitUntil(
    async () => (await request(`http://127.0.0.1:${cli.adminPort}/ready`).then((r) => r.body.text().then(() => r.statusCode), () => 0)) === 503,
    '/ready to turn 503',
    CHILD_WAIT_MS,
  );
  await waitUntil(() => connectionRefused(cli.listenerPort), 'new connections to be refused after drain.delay', CHILD_WAIT_MS);
  t.equal(cli.child.exitCode, null, 'still running: requests are in flight');
  release();
  t.same(await Promise.all(slow), Array.from({ length: 4 }, () => ({ status: 200, body: 'slow done' })), 'every request in flight completed');
  t.same(await cli.exited, { code: 0, signal: null }, 'exit code 0');
  t.ok(cli.log.some((e) => e.msg === 'drained' && e.cutConnections === 0));
});

t.test('a second SIGTERM exits at once, without waiting for requests in flight', async (t) => {
  const { upstream, seen } = await gatedUpstream(t);
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, config(upstream.url, 'v1'));
  const cli = await startCli(t, file);
  const stuck = request(`http://127.0.0.1:${cli.listenerPort}/slow`).then(
    () => 'answered',
    () => 'cut',
  );
  await waitUntil(() => seen() === 1, 'the slow request to reach the app', CHILD_WAIT_MS);
  cli.child.kill('SIGTERM');
  await waitUntil(() => cli.log.some((e) => e.msg === 'stop signal: draining'), "the 'stop signal: draining' log line", CHILD_WAIT_MS);
  cli.child.kill('SIGTERM');
  t.same(await cli.exited, { code: 1, signal: null });
  t.equal(await stuck, 'cut');
});

t.test('SIGHUP reloads the file', async (t) => {
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, config('http://127.0.0.1:9', 'v1'));
  const cli = await startCli(t, file);
  const hello = async (): Promise<string> => (await request(`http://127.0.0.1:${cli.listenerPort}/hello`)).body.text();
  t.equal(await hello(), 'v1');

  const sighupOutcomes = (): unknown[] => cli.log.filter((e) => e.msg === 'reload after SIGHUP').map((e) => e.result);
  cli.child.kill('SIGHUP');
  await waitUntil(() => sighupOutcomes().length === 1, 'the first SIGHUP reload outcome', CHILD_WAIT_MS);
  t.same(sighupOutcomes(), ['unchanged'], 'an unchanged file: nothing to do');

  await writeAtomic(file, config('http://127.0.0.1:9', 'v2'));
  cli.child.kill('SIGHUP');
  await waitUntil(() => sighupOutcomes().length === 2, 'the second SIGHUP reload outcome', CHILD_WAIT_MS);
  // The file watcher may have applied the change first; either way the SIGHUP reload saw it.
  t.match(sighupOutcomes()[1], /^(applied|unchanged)$/);
  t.equal(await hello(), 'v2', 'the new config is served');
  cli.child.kill('SIGTERM');
  t.equal((await cli.exited).code, 0);
});

t.test('wait-ready exits 0 once /ready answers 200, and 1 with a reason on timeout', async (t) => {
  const adminPort = await closedPort();
  const waiting = runCli(['wait-ready', '--admin', `http://127.0.0.1:${adminPort}`, '--timeout', '90s']);
  t.teardown(() => void waiting.child.kill());
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, config('http://127.0.0.1:9', 'v1', `127.0.0.1:${adminPort}`));
  const cli = await startCli(t, file);
  t.equal(await waiting.exited, 0);
  t.match(await waiting.stdout, `ready: http://127.0.0.1:${adminPort}/ready`);
  cli.child.kill('SIGTERM');
  await cli.exited;

  const timedOut = runCli(['wait-ready', '--admin', `http://127.0.0.1:${await closedPort()}`, '--timeout', '3s']);
  t.equal(await timedOut.exited, 1);
  // A few probes fit in 3 s even when the process is slow to start on a loaded machine.
  t.match(await timedOut.stderr, /not ready after 3s \(last answer: .*ECONNREFUSED/);

  const bad = runCli(['wait-ready', '--timeout', 'soon']);
  t.equal(await bad.exited, 1);
  t.match(await bad.stderr, /expected a duration/);
});
