import http from 'node:http';
import https from 'node:https';
import type { BreakerState, ClusterStats, EndpointStats, SidecarStats } from '../telemetry/metrics/stats';
import type { RecentError } from '../telemetry/recent-errors';
import type { WorkerStatsView } from '../workers/stats-aggregation';
import { LAST_ERRORS_SHOWN } from './render';

/**
 * `sidecar status`: what it reads from the admin listener. /stats is required; /clusters
 * (endpoint health and breaker details) and /requests (the flight recorder: what it keeps, and
 * which of the last errors it has the timeline of) enrich the report when the sidecar has them.
 */

export const DEFAULT_STATUS_TIMEOUT_MS = 5_000;

/**
 * `unknown`: nothing has told yet whether the endpoint answers (an active health check has not
 * run, or, without health checks, no request has been sent to it). It still takes traffic.
 */
export type EndpointHealth = 'healthy' | 'unhealthy' | 'unknown';

export interface EndpointStatus extends EndpointStats {
  /** Extra facts from /clusters, e.g. `ejected`. */
  readonly notes: readonly string[];
  readonly health: EndpointHealth;
}

export interface ClusterStatus extends Omit<ClusterStats, 'endpoints' | 'breaker'> {
  readonly breaker: BreakerState | string | null;
  readonly endpoints: readonly EndpointStatus[];
}

/** The flight recorder as `sidecar status` shows it. */
export type RecorderStatus =
  | { readonly on: false }
  | {
      readonly on: true;
      readonly requests: number;
      readonly failures: number;
      /** The request ids, among the last errors shown, whose timeline the recorder still has (GET /requests/{id}). */
      readonly recordedErrors: readonly string[];
    };

export interface StatusReport {
  readonly admin: string;
  readonly live: boolean;
  readonly ready: boolean;
  /** With `workers` >= 2, `workers` lists each worker process. */
  readonly stats: Omit<SidecarStats, 'clusters'> & { readonly workers?: readonly WorkerStatsView[] };
  readonly clusters: readonly ClusterStatus[];
  /** Whether /clusters answered (it adds breaker and ejection details). */
  readonly clusterDetails: boolean;
  /** undefined when the sidecar has no /requests. */
  readonly recorder?: RecorderStatus;
}

export class StatusError extends Error {}

export interface CollectOptions {
  readonly token?: string;
  readonly timeoutMs?: number;
}

export async function collectStatus(adminUrl: string, options: CollectOptions = {}): Promise<StatusReport> {
  const base = adminUrl.replace(/\/+$/, '');
  const get = (path: string): Promise<AdminAnswer> =>
    getText(base + path, options.token, options.timeoutMs ?? DEFAULT_STATUS_TIMEOUT_MS).catch((error: unknown) => {
      throw new StatusError(`cannot reach the admin listener at ${base}: ${describeError(error)}`);
    });

  const [live, ready, statsAnswer, clustersAnswer, requestsAnswer] = await Promise.all([
    get('/live'),
    get('/ready'),
    get('/stats'),
    get('/clusters'),
    get('/requests?limit=1'),
  ]);
  if (statsAnswer.status === 401) throw new StatusError(`the admin listener at ${base} requires a token: pass --token or set SIDECAR_ADMIN_TOKEN`);
  const stats = statsAnswer.status === 200 ? parseJson(statsAnswer.body) : undefined;
  if (!isRecord(stats) || !Array.isArray(stats.clusters)) {
    throw new StatusError(`${base}/stats answered ${statsAnswer.status}${statsAnswer.status === 200 ? ' with an unexpected body' : ''}: is this a sidecar admin listener?`);
  }
  const details = clustersAnswer.status === 200 ? parseJson(clustersAnswer.body) : undefined;

  const { clusters, ...rest } = stats as unknown as SidecarStats;
  const recorder = await recorderStatus(requestsAnswer, rest.recentErrors.slice(0, LAST_ERRORS_SHOWN), (id) => get(`/requests/${encodeURIComponent(id)}`));
  return {
    admin: base,
    live: live.status === 200,
    ready: ready.status === 200,
    stats: rest,
    clusters: mergeClusterDetails(clusters, details),
    clusterDetails: details !== undefined,
    ...(recorder === undefined ? {} : { recorder }),
  };
}

/** What `GET /requests?limit=1` says of the recorder, and which shown errors it has (one GET /requests/{id} each). */
async function recorderStatus(
  answer: AdminAnswer,
  shownErrors: readonly RecentError[],
  getRecord: (requestId: string) => Promise<AdminAnswer>,
): Promise<RecorderStatus | undefined> {
  const body = parseJson(answer.body);
  if (answer.status === 404 && isRecord(body) && body.error === 'RECORDER_OFF') return { on: false };
  if (answer.status !== 200 || !isRecord(body) || !isRecord(body.kept)) return undefined;
  const { requests, failures } = body.kept;
  if (typeof requests !== 'number' || typeof failures !== 'number') return undefined;
  const ids = [...new Set(shownErrors.map((e) => e.requestId).filter((id): id is string => id !== undefined && id !== ''))];
  const found = await Promise.all(ids.map(async (id) => ((await getRecord(id)).status === 200 ? id : undefined)));
  return { on: true, requests, failures, recordedErrors: found.filter((id): id is string => id !== undefined) };
}

interface AdminAnswer {
  readonly status: number;
  readonly body: string;
}

/** Admin answers are small JSON or text documents; anything beyond this is not one. */
const MAX_ADMIN_ANSWER_BYTES = 8 * 1024 * 1024;

function getText(url: string, token: string | undefined, timeoutMs: number): Promise<AdminAnswer> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ADMIN_ANSWER_BYTES) req.destroy(new Error('the answer is too large'));
        else chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Folds what /clusters says into the clusters of /stats. /clusters belongs to the resilience
 * features and its shape may grow, so only recognisable fields are read: a cluster's breaker
 * state, and per endpoint `healthy`/`health` and `ejected`. With worker processes /clusters
 * has one entry per worker and cluster: the worst breaker state counts, an endpoint is healthy
 * when every worker sees it healthy, and ejected when one worker ejected it.
 */
export function mergeClusterDetails(clusters: readonly ClusterStats[], details: unknown): ClusterStatus[] {
  const byName = new Map<string, Record<string, unknown>[]>();
  const add = (name: string, entry: Record<string, unknown>): void => void byName.set(name, [...(byName.get(name) ?? []), entry]);
  const list = isRecord(details) && 'clusters' in details ? details.clusters : details;
  if (Array.isArray(list)) {
    for (const entry of list) if (isRecord(entry) && typeof entry.name === 'string') add(entry.name, entry);
  } else if (isRecord(list)) {
    for (const [name, entry] of Object.entries(list)) if (isRecord(entry)) add(name, entry);
  }
  return clusters.map((cluster) => {
    const entries = byName.get(cluster.name) ?? [];
    const endpointDetails = new Map<string, Record<string, unknown>[]>();
    for (const detail of entries) {
      if (!Array.isArray(detail.endpoints)) continue;
      for (const endpoint of detail.endpoints) {
        // `name` (the /stats url) tells apart the addresses of a named endpoint; older sidecars have `url` only.
        const key = isRecord(endpoint) ? (typeof endpoint.name === 'string' ? endpoint.name : endpoint.url) : undefined;
        if (isRecord(endpoint) && typeof key === 'string') endpointDetails.set(key, [...(endpointDetails.get(key) ?? []), endpoint]);
      }
    }
    return {
      ...cluster,
      breaker: worstBreaker(entries.map(breakerOf)) ?? cluster.breaker,
      endpoints: cluster.endpoints.map((endpoint) => {
        const notes: string[] = [];
        let detailed: boolean | undefined;
        let ejected = false;
        let checked = false;
        for (const extra of endpointDetails.get(endpoint.url) ?? []) {
          const said = typeof extra.healthy === 'boolean' ? extra.healthy : typeof extra.health === 'string' ? extra.health === 'healthy' : undefined;
          if (said !== undefined) detailed = (detailed ?? true) && said;
          if (extra.ejected === true) ejected = true;
          if (isRecord(extra.healthCheck) && typeof extra.healthCheck.status === 'string' && extra.healthCheck.status !== 'unchecked') checked = true;
        }
        if (ejected) notes.push('ejected');
        const healthy = detailed ?? endpoint.healthy;
        // Healthy by default is not healthy by evidence: without a passed check or an attempt, say so.
        const health: EndpointHealth = !healthy ? 'unhealthy' : checked || endpoint.requests > 0 ? 'healthy' : 'unknown';
        return { ...endpoint, healthy, health, notes };
      }),
    };
  });
}

const BREAKER_SEVERITY = ['closed', 'half-open', 'open'];

/** The state furthest from `closed`; an unknown state counts as the worst. */
function worstBreaker(states: readonly (string | undefined)[]): string | undefined {
  let worst: string | undefined;
  const severity = (state: string): number => (BREAKER_SEVERITY.includes(state) ? BREAKER_SEVERITY.indexOf(state) : BREAKER_SEVERITY.length);
  for (const state of states) if (state !== undefined && (worst === undefined || severity(state) > severity(worst))) worst = state;
  return worst;
}

function breakerOf(detail: Record<string, unknown> | undefined): string | undefined {
  if (detail === undefined) return undefined;
  for (const key of ['breaker', 'circuit', 'circuitBreaker']) {
    const value = detail[key];
    if (typeof value === 'string') return value;
    if (isRecord(value) && typeof value.state === 'string') return value.state;
  }
  return typeof detail.circuitState === 'string' ? detail.circuitState : undefined;
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return typeof code === 'string' ? code : error.message;
  }
  return String(error);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
