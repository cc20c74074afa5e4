import type { BreakerState, ClusterStats, EndpointStats, ListenerStats, SidecarStats } from '../telemetry/metrics/stats';
import type { RouteTraffic } from '../telemetry/metrics/traffic-window';
import type { RecentError } from '../telemetry/recent-errors';
import type { TracingDescription } from '../telemetry/tracing';

/**
 * GET /stats of a worker group: the workers' /stats merged into one report of the same shape
 * (so `sidecar status` reads it unchanged), plus a `workers` list. Counts and rates are summed;
 * error rates are weighted by the traffic they are a share of; a cluster's breaker is the worst
 * state any worker's breaker is in (each worker has its own breaker), and an endpoint is
 * healthy only when every worker sees it healthy. A route's p50 and p99 are the highest of the
 * workers': upper bounds of the group's (if every worker has 99 % of its requests under its own
 * p99, the group has 99 % under the highest; exact quantiles need the histograms, which /metrics has).
 */

/** What the primary knows of a worker slot, whether or not the worker answered. */
interface WorkerSlotFacts {
  /** The slot, 1..workers. */
  readonly worker: number;
  readonly pid: number | null;
  /** starting, ready, stopping or down (restarting after a crash). */
  readonly state: string;
  /** Whether it runs the group's config and answered. */
  readonly ready: boolean;
  readonly sha256: string | null;
  readonly restarts: number;
  /** Why there are no figures: the worker is down, or did not answer in time. */
  readonly error?: string;
}

export interface WorkerStatsView extends WorkerSlotFacts {
  /** Requests it answered in the traffic window (about the last minute). */
  readonly recentRequests: number | null;
  readonly connections: number | null;
}

export interface GroupStats extends SidecarStats {
  readonly workers: readonly WorkerStatsView[];
}

export interface WorkerStatsAnswer extends WorkerSlotFacts {
  /** undefined with `error` when it did not answer. */
  readonly stats: SidecarStats | undefined;
}

/** What only the primary knows. */
export interface PrimaryStats {
  readonly ready: boolean;
  readonly pid: number;
  readonly startedAtMs: number;
  readonly config: SidecarStats['config'];
  /** The primary's own errors (rejected reloads). */
  readonly recentErrors: readonly RecentError[];
  readonly errorsTotal: number;
  readonly recentErrorsKept: number;
}

const BREAKER_SEVERITY: Readonly<Record<BreakerState, number>> = { closed: 0, 'half-open': 1, open: 2 };

export function mergeStats(primary: PrimaryStats, answers: readonly WorkerStatsAnswer[]): GroupStats {
  const answered = answers.filter((a): a is WorkerStatsAnswer & { stats: SidecarStats } => a.stats !== undefined);
  const stats = answered.map((a) => a.stats);

  // Workers' rejected reloads are the primary's too (it records every one): listed once.
  const errors: RecentError[] = [...primary.recentErrors];
  for (const a of answered) for (const e of a.stats.recentErrors) if (e.code !== 'CONFIG_REJECTED') errors.push({ ...e, worker: a.worker });
  errors.sort((x, y) => (x.time < y.time ? 1 : x.time > y.time ? -1 : 0));

  return {
    ready: primary.ready,
    pid: primary.pid,
    startedAt: new Date(primary.startedAtMs).toISOString(),
    uptimeSeconds: Math.round((Date.now() - primary.startedAtMs) / 1000),
    config: primary.config,
    listeners: mergeListeners(stats.map((s) => s.listeners)),
    clusters: mergeClusters(stats.map((s) => s.clusters)),
    trafficWindowSeconds: Math.max(0, ...stats.map((s) => s.trafficWindowSeconds)),
    routes: mergeRoutes(stats.map((s) => s.routes)),
    tracing: mergeTracing(stats.map((s) => s.tracing)),
    recentErrors: errors.slice(0, primary.recentErrorsKept),
    errorsTotal: primary.errorsTotal + stats.reduce((n, s) => n + s.errorsTotal - s.recentErrors.filter((e) => e.code === 'CONFIG_REJECTED').length, 0),
    workers: answers.map((a) => ({
      worker: a.worker,
      pid: a.pid,
      state: a.state,
      ready: a.ready,
      sha256: a.sha256,
      restarts: a.restarts,
      recentRequests: a.stats === undefined ? null : a.stats.routes.reduce((n, r) => n + r.requests, 0),
      connections: a.stats === undefined ? null : a.stats.listeners.reduce((n, l) => n + l.connections, 0),
      ...(a.error === undefined ? {} : { error: a.error }),
    })),
  };
}

export function mergeListeners(lists: readonly (readonly ListenerStats[])[]): ListenerStats[] {
  const byName = new Map<string, ListenerStats>();
  for (const list of lists) {
    for (const l of list) {
      const seen = byName.get(l.name);
      byName.set(l.name, seen === undefined ? { ...l } : { ...seen, connections: seen.connections + l.connections });
    }
  }
  return [...byName.values()];
}

export function mergeClusters(lists: readonly (readonly ClusterStats[])[]): ClusterStats[] {
  const byName = new Map<string, ClusterStats[]>();
  for (const list of lists) for (const c of list) byName.set(c.name, [...(byName.get(c.name) ?? []), c]);
  return [...byName.entries()].map(([name, parts]) => {
    const attemptsPerSecond = sum(parts.map((c) => c.attemptsPerSecond));
    return {
      name,
      breaker: worstBreaker(parts.map((c) => c.breaker)),
      inFlight: sum(parts.map((c) => c.inFlight)),
      attemptsPerSecond: round(attemptsPerSecond, 2),
      errorRate: weightedRate(parts.map((c) => [c.errorRate, c.attemptsPerSecond])),
      endpoints: mergeEndpoints(parts.map((c) => c.endpoints)),
    };
  });
}

function mergeEndpoints(lists: readonly (readonly EndpointStats[])[]): EndpointStats[] {
  const byUrl = new Map<string, EndpointStats>();
  for (const list of lists) {
    for (const e of list) {
      const seen = byUrl.get(e.url);
      byUrl.set(
        e.url,
        seen === undefined
          ? { ...e, connections: { ...e.connections } }
          : {
              ...seen,
              healthy: seen.healthy && e.healthy,
              inFlight: seen.inFlight + e.inFlight,
              requests: seen.requests + e.requests,
              failures: seen.failures + e.failures,
              connections: { busy: seen.connections.busy + e.connections.busy, idle: seen.connections.idle + e.connections.idle },
              pending: seen.pending + e.pending,
            },
      );
    }
  }
  return [...byUrl.values()];
}

export function mergeRoutes(lists: readonly (readonly RouteTraffic[])[]): RouteTraffic[] {
  const byKey = new Map<string, RouteTraffic[]>();
  for (const list of lists) {
    for (const r of list) {
      const key = `${r.listener}\u0000${r.route}\u0000${r.cluster}`;
      byKey.set(key, [...(byKey.get(key) ?? []), r]);
    }
  }
  const routes = [...byKey.values()].map((parts): RouteTraffic => {
    const highest = (values: ReadonlyArray<number | null>): number | null => {
      const known = values.filter((p): p is number => p !== null);
      return known.length === 0 ? null : Math.max(...known);
    };
    return {
      listener: parts[0].listener,
      route: parts[0].route,
      cluster: parts[0].cluster,
      requests: sum(parts.map((r) => r.requests)),
      requestsPerSecond: round(sum(parts.map((r) => r.requestsPerSecond)), 2),
      errorRate: weightedRate(parts.map((r) => [r.errorRate, r.requests])),
      p50Ms: highest(parts.map((r) => r.p50Ms)),
      p99Ms: highest(parts.map((r) => r.p99Ms)),
    };
  });
  return routes.sort((a, b) => b.requests - a.requests || a.route.localeCompare(b.route));
}

function mergeTracing(list: readonly TracingDescription[]): TracingDescription {
  const first = list[0] ?? { exporter: 'none', endpoint: null, serviceName: null, sampler: null, propagators: [], responseHeader: false, sources: {}, spans: { exported: 0, droppedQueueFull: 0, droppedExportFailed: 0 } };
  return {
    ...first,
    spans: {
      exported: sum(list.map((t) => t.spans.exported)),
      droppedQueueFull: sum(list.map((t) => t.spans.droppedQueueFull)),
      droppedExportFailed: sum(list.map((t) => t.spans.droppedExportFailed)),
    },
  };
}

export function worstBreaker(states: readonly (BreakerState | null)[]): BreakerState | null {
  let worst: BreakerState | null = null;
  for (const state of states) if (state !== null && (worst === null || BREAKER_SEVERITY[state] > BREAKER_SEVERITY[worst])) worst = state;
  return worst;
}

/** Σ rate·weight / Σ weight over the parts that have a rate; null when none has traffic. */
function weightedRate(parts: readonly (readonly [number | null, number])[]): number | null {
  let weight = 0;
  let total = 0;
  for (const [rate, w] of parts) {
    if (rate === null || w <= 0) continue;
    weight += w;
    total += rate * w;
  }
  return weight === 0 ? null : round(total / weight, 4);
}

function sum(values: readonly number[]): number {
  return values.reduce((n, v) => n + v, 0);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
