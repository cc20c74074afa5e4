/**
 * Helpers for the resilience tests: a scripted upstream that records what it saw, the admin
 * API's /clusters and /metrics, and bounded polling (never a blind sleep).
 */
import type http from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import { request } from 'undici';
import type { ClusterView } from '../../src/upstream/cluster';
import type { Logger } from '../../src/telemetry/logger';
import { startUpstream, type Upstream } from './upstream';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly attempt: string | undefined;
  readonly idempotencyKey: string | undefined;
  readonly body: Buffer;
}

export interface ScriptedUpstream extends Upstream {
  /** Requests the app received (all of them, health checks excluded), in arrival order. */
  readonly seen: SeenRequest[];
  /** Health check requests received. */
  readonly healthChecks: number;
}

/**
 * An app that reads each request's body whole, records it, then lets `script` answer. The
 * script gets the number of the request (1-based, health checks not counted).
 */
export async function startScriptedUpstream(
  script: (n: number, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void,
  options: { healthPath?: string; health?: () => number | 'no answer' } = {},
): Promise<ScriptedUpstream> {
  const seen: SeenRequest[] = [];
  const state = { healthChecks: 0 };
  const upstream = await startUpstream((req, res) => {
    if (options.healthPath !== undefined && req.url === options.healthPath) {
      state.healthChecks++;
      const status = options.health?.() ?? 200;
      if (status === 'no answer') return; // left hanging until the upstream closes
      res.statusCode = status;
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({
        method: req.method ?? '',
        path: req.url ?? '',
        attempt: header(req, 'x-sidecar-attempt'),
        idempotencyKey: header(req, 'idempotency-key'),
        body,
      });
      script(seen.length, req, res, body);
    });
  });
  return {
    ...upstream,
    seen,
    get healthChecks() {
      return state.healthChecks;
    },
  };
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

export async function clusters(adminUrl: string): Promise<ClusterView[]> {
  const res = await request(`${adminUrl}/clusters`);
  const body = (await res.body.json()) as { clusters: ClusterView[] };
  return body.clusters;
}

export async function cluster(adminUrl: string, name = 'app'): Promise<ClusterView> {
  const found = (await clusters(adminUrl)).find((c) => c.name === name);
  if (found === undefined) throw new Error(`no cluster ${name} in /clusters`);
  return found;
}

/** The value of one sample of /metrics, or 0 when the series does not exist yet. */
export async function metric(adminUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await request(`${adminUrl}/metrics`);
  const text = await res.body.text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((pair) => line.includes(pair))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** A logger whose JSON lines are kept in memory. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}
