import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const CLI_PATH = path.join(__dirname, '..', '..', 'dist', 'cli.js');

export interface ChildSidecar {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Base URL of the first listener. */
  readonly url: string;
  readonly adminUrl: string;
  /** Resident set size of the sidecar process now, in bytes (VmRSS). */
  rssBytes(): Promise<number>;
  /** Peak resident set size of the sidecar process so far, in bytes (VmHWM). */
  peakRssBytes(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Runs the built CLI (`node dist/cli.js run -c FILE`) in its own process, as users run it, so
 * its memory can be measured apart from the test's. Needs `npm run build` (npm test does it).
 * The YAML should bind the listener and admin to port 0; the bound ports are read from the
 * 'sidecar ready' line of the process log.
 */
export async function startChildSidecar(yaml: string): Promise<ChildSidecar> {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first (npm test does it)`);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-child-'));
  const configPath = path.join(dir, 'sidecar.yaml');
  await fsp.writeFile(configPath, yaml);
  const child = spawn(process.execPath, [CLI_PATH, 'run', '-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  const lines = createInterface({ input: child.stderr! });
  const ready = new Promise<{ listeners: string[]; admin: string }>((resolve, reject) => {
    lines.on('line', (line) => {
      stderr.push(line);
      if (!line.includes('"sidecar ready"')) return;
      const parsed = JSON.parse(line) as { listeners: string[]; admin: string };
      resolve(parsed);
    });
    child.once('exit', (code) => reject(new Error(`the sidecar exited with ${code} before it was ready:\n${stderr.join('\n')}`)));
  });
  const { listeners, admin } = await ready;
  const listenerAddress = listeners[0].slice(listeners[0].indexOf('@') + 1);
  const pid = child.pid ?? 0;
  const statusField = async (field: string): Promise<number> => {
    const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(match[1]) * 1024;
  };
  return {
    child,
    pid,
    url: `http://${listenerAddress}`,
    adminUrl: `http://${admin}`,
    rssBytes: () => statusField('VmRSS'),
    peakRssBytes: () => statusField('VmHWM'),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
