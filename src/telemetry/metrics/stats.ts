import type { SidecarConfig } from '../../config/types';
import type { RecentError, RecentErrors } from '../recent-errors';
import type { Tracing, TracingDescription } from '../tracing';
import type { ClusterRuntime } from '../../upstream/cluster';
import type { Metrics } from './metrics';
import type { RouteTraffic, TrafficWindow } from './traffic-window';

/**
 * GET /stats: one JSON summary of the running sidecar for `sidecar status` and for scripts.
 * Rates, error rates and p99 cover the traffic window (about the last minute); counts of
 * endpoints (`requests`, `failures`) are since the cluster was loaded.
 */
export interface SidecarStats {
  readonly ready: boolean;
  readonly pid: number;
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  readonly config: {
    readonly source: string;
    readonly sha256: string;
    readonly loadedAt: string;
    readonly lastReload: { readonly ok: boolean; readonly at: string | null; readonly error: string | null };
    readonly reloads: { readonly success: number; readonly failure: number };
  };
  readonly listeners: readonly ListenerStats[];
  readonly clusters: readonly ClusterStats[];
  readonly trafficWindowSeconds: number;
  /** Busiest first. */
  readonly routes: readonly RouteTraffic[];
  readonly tracing: TracingDescription;
  /** Newest first. */
  readonly recentErrors: readonly RecentError[];
  readonly errorsTotal: number;
}

export interface ListenerStats {
  readonly name: string;
  readonly address: string;
  readonly proto: 'http' | 'https';
  readonly mtls: boolean;
  readonly routes: number;
  readonly connections: number;
}

export type BreakerState = 'closed' | 'half-open' | 'open';

export interface ClusterStats {
  readonly name: string;
  /** From sidecar_circuit_state; null while the cluster has no breaker state to report. */
  readonly breaker: BreakerState | null;
  readonly inFlight: number;
  readonly attemptsPerSecond: number;
  readonly errorRate: number | null;
  readonly endpoints: readonly EndpointStats[];
}

export interface EndpointStats {
  /** The endpoint's name: its URL, with the resolved address in brackets for a named endpoint. */
  readonly url: string;
  readonly priority: number;
  readonly healthy: boolean;
  readonly inFlight: number;
  readonly requests: number;
  readonly failures: number;
  readonly connections: { readonly busy: number; readonly idle: number };
  readonly pending: number;
}

/** What the stats are read from (the Sidecar). */
export interface StatsSource {
  readonly ready: boolean;
  readonly startedAtMs: number;
  readonly config: SidecarConfig;
  readonly lastReload: { readonly ok: boolean; readonly at: Date | undefined; readonly error: string | undefined };
  readonly listeners: readonly { readonly name: string; readonly host: string; readonly port: number; readonly tls: boolean; readonly mtls: boolean; readonly routes: number; readonly connections: number }[];
  readonly clusters: Iterable<ClusterRuntime>;
  readonly metrics: Metrics;
  readonly traffic: TrafficWindow;
  readonly tracing: Tracing;
  readonly recentErrors: RecentErrors;
}

const BREAKER_STATES: readonly BreakerState[] = ['closed', 'half-open', 'open'];

export async function buildStats(source: StatsSource): Promise<SidecarStats> {
  const traffic = await source.traffic.report();
  const breakers = new Map<string, BreakerState>();
  for (const { labels, value } of (await source.metrics.circuitState.get()).values) {
    const state = BREAKER_STATES[value];
    if (state !== undefined) breakers.set(String(labels.cluster), state);
  }
  const reloads = { success: 0, failure: 0 };
  for (const { labels, value } of (await source.metrics.configReloads.get()).values) {
    if (labels.result === 'success') reloads.success += value;
    else if (labels.result === 'failure') reloads.failure += value;
  }

  const clusters: ClusterStats[] = [];
  for (const cluster of source.clusters) {
    const name = cluster.config.name;
    const recent = traffic.clusters.get(name);
    clusters.push({
      name,
      breaker: breakers.get(name) ?? null,
      inFlight: cluster.inFlight,
      attemptsPerSecond: round(recent?.attemptsPerSecond ?? 0, 2),
      errorRate: recent?.errorRate === undefined || recent.errorRate === null ? null : round(recent.errorRate, 4),
      endpoints: cluster.endpoints.map((endpoint) => {
        const stats = endpoint.pool.stats;
        return {
          url: endpoint.name,
          priority: endpoint.config.priority,
          healthy: endpoint.healthy,
          inFlight: endpoint.inFlight,
          requests: endpoint.requests,
          failures: endpoint.failures,
          connections: { busy: stats.connected - stats.free, idle: stats.free },
          pending: stats.pending,
        };
      }),
    });
  }

  const config = source.config;
  return {
    ready: source.ready,
    pid: process.pid,
    startedAt: new Date(source.startedAtMs).toISOString(),
    uptimeSeconds: Math.round((Date.now() - source.startedAtMs) / 1000),
    config: {
      source: config.source,
      sha256: config.sha256,
      loadedAt: config.loadedAt.toISOString(),
      lastReload: { ok: source.lastReload.ok, at: source.lastReload.at?.toISOString() ?? null, error: source.lastReload.error ?? null },
      reloads,
    },
    listeners: source.listeners.map((l) => ({
      name: l.name,
      address: `${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`,
      proto: l.tls ? 'https' : 'http',
      mtls: l.mtls,
      routes: l.routes,
      connections: l.connections,
    })),
    clusters,
    trafficWindowSeconds: Math.round(traffic.windowSeconds),
    routes: traffic.routes.map((r) => ({
      ...r,
      requestsPerSecond: round(r.requestsPerSecond, 2),
      errorRate: r.errorRate === null ? null : round(r.errorRate, 4),
      p50Ms: r.p50Ms === null ? null : round(r.p50Ms, 3),
      p99Ms: r.p99Ms === null ? null : round(r.p99Ms, 3),
    })),
    tracing: source.tracing.describe(),
    recentErrors: source.recentErrors.list().reverse(),
    errorsTotal: source.recentErrors.count,
  };
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
