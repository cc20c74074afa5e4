import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { parsePrometheusText, type Exposition } from './prometheus';

/**
 * The real CLI with `workers` >= 2 (`node dist/cli.js run -c FILE`, built by `npm test`; run
 * `npm run build` first when running a file alone): a primary and its worker processes.
 * Listeners use port 0: node:cluster gives every worker the same port, which the primary's
 * 'sidecar ready' log line and /config report.
 */

export const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');
/** Generous: other test runs share the machine, and each worker loads every dependency. */
export const GROUP_START_TIMEOUT_MS = 60_000;
/** Bound on waiting for something the group does (a restart, a reload, /ready turning). */
export const GROUP_WAIT_MS = 30_000;

export interface RunningGroup {
  readonly child: ChildProcess;
  readonly file: string;
  readonly listenerPort: number;
  readonly adminUrl: string;
  /** Parsed JSON lines of the process log (stderr of the primary and its workers). */
  readonly log: Array<Record<string, unknown>>;
  /** Lines the group wrote on stdout (the access log when it is `stdout`). */
  readonly stdout: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartGroupOptions {
  /** Its own process group (to signal every process at once, as a terminal does). */
  readonly detached?: boolean;
}

export async function tempDir(t: Test): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-workers-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `yaml` to a file in a temporary folder and runs the CLI on it until it logs 'sidecar ready'. */
export async function startGroup(t: Test, yaml: string, options: StartGroupOptions = {}): Promise<RunningGroup> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does it)`);
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, yaml);
  const child = spawn(process.execPath, [CLI, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached === true });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.teardown(() => {
    // The primary kills its workers when it exits; a detached group is killed whole.
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (options.detached === true && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
        return;
      } catch {
        // Already gone.
      }
    }
    child.kill('SIGKILL');
  });
  const log: Array<Record<string, unknown>> = [];
  const stdout: string[] = [];
  eachLine(child.stdout as NodeJS.ReadableStream, (line) => stdout.push(line));
  const ready = new Promise<{ listenerPort: number; adminUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`group not ready within ${GROUP_START_TIMEOUT_MS}ms: ${JSON.stringify(log)}`)), GROUP_START_TIMEOUT_MS);
    eachLine(child.stderr as NodeJS.ReadableStream, (line) => {
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
        resolve({ listenerPort: Number(listeners[0].split(':').pop()), adminUrl: `http://${String(entry.admin)}` });
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`the sidecar exited with ${code} before it was ready: ${JSON.stringify(log)}`));
    });
  });
  return { child, file, log, stdout, exited, ...(await ready) };
}

function eachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffer = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      onLine(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
    }
  });
}

export interface Answer {
  readonly status: number;
  readonly body: string;
}

/**
 * One request on a connection of its own (no keep-alive): with node:cluster, connections are
 * what is spread over the workers.
 */
export function fetchOnce(url: string, init: { method?: string; timeoutMs?: number; headers?: Readonly<Record<string, string>>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { ...init.headers, connection: 'close' };
    const req = http.request(url, { method: init.method ?? 'GET', agent: false, headers, timeout: init.timeoutMs ?? GROUP_WAIT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${init.timeoutMs ?? GROUP_WAIT_MS}ms`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

export async function adminJson<T = Record<string, unknown>>(group: RunningGroup, path: string): Promise<T> {
  const answer = await fetchOnce(group.adminUrl + path);
  if (answer.status !== 200) throw new Error(`${path} answered ${answer.status}: ${answer.body}`);
  return JSON.parse(answer.body) as T;
}

export async function scrape(group: RunningGroup): Promise<Exposition> {
  const answer = await fetchOnce(group.adminUrl + '/metrics');
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}: ${answer.body}`);
  return parsePrometheusText(answer.body);
}

export interface WorkerEntry {
  readonly worker: number;
  readonly pid: number | null;
  readonly state: string;
  readonly sha256: string | null;
  readonly listeners: string[];
  readonly restarts: number;
}

export async function workersOf(group: RunningGroup): Promise<WorkerEntry[]> {
  return (await adminJson<{ workers: WorkerEntry[] }>(group, '/config')).workers;
}

export async function readyStatus(group: RunningGroup): Promise<number> {
  return fetchOnce(group.adminUrl + '/ready').then(
    (a) => a.status,
    () => 0,
  );
}

/** The primary's own log lines (worker lines carry `worker`). */
export function primaryLog(group: RunningGroup): Array<Record<string, unknown>> {
  return group.log.filter((e) => e.worker === undefined);
}
